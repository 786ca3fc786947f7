//! Actors: who sends and receives activities.
//!
//! | Convene | type | notes |
//! |---|---|---|
//! | the instance | `Application` | signs fetches; served unsigned even in authorized-fetch mode |
//! | a Passport | `Person` | |
//! | a Space | `Group` | followable, announces its Rooms (FEP-1b12) |
//! | a Room | `Group` | `attributedTo` its Space, with [`RoomProperties`] |
//!
//! Remote actors may also be `Service` or `Organization` (bots, Lemmy instances); we read them
//! the same way.

use activitypub_federation::protocol::helpers::deserialize_skip_error;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json;
use crate::keys::parse_public_key_pem;
use crate::protocol::Id;
use crate::signature::PublicKey;
use crate::urls::authority;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActorKind {
    Application,
    Person,
    Group,
    Service,
    Organization,
}

/// Who may enter a Room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessMode {
    Open,
    MembersOnly,
    Locked,
}

/// A Room's `convene:` properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomProperties {
    pub access_mode: AccessMode,
    pub capacity: u32,
    /// People in the Room's gathering right now.
    pub head_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_inbox: Option<Id>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    #[serde(rename = "type")]
    pub kind: ImageKind,
    pub url: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageKind {
    Image,
}

/// An actor document, ours or a remote one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorKind,
    pub id: Id,
    pub inbox: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followers: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub following: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The HTML page for people. Decorative, so a shape we do not understand (some servers
    /// send a Link object or a list) reads as absent rather than refusing the actor.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_skip_error"
    )]
    pub url: Option<Id>,
    /// Decorative too, read like `url`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_skip_error"
    )]
    pub icon: Option<Image>,
    pub public_key: PublicKey,
    /// A Room's Space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributed_to: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manually_approves_followers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_count: Option<u32>,
}

/// What the instance knows about one of its own actors; [`Actor::local`] turns it into the
/// document, deriving `inbox`, `outbox`, `followers` and the key id from `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalActor {
    pub kind: ActorKind,
    pub id: Id,
    pub preferred_username: String,
    pub name: Option<String>,
    pub summary: Option<String>,
    /// The HTML page.
    pub url: Option<Id>,
    pub icon: Option<Id>,
    pub public_key_pem: String,
    /// The instance's shared inbox (`https://domain/inbox`).
    pub shared_inbox: Id,
    /// For a Room: its Space.
    pub attributed_to: Option<Id>,
    /// For a Room.
    pub room: Option<RoomProperties>,
    /// Follows wait for an owner (unlisted Spaces).
    pub manually_approves_followers: bool,
}

impl Actor {
    /// Our own actor document. Paths: `{id}/inbox`, `{id}/outbox`, `{id}/followers`,
    /// key `{id}#main-key`; the instance serves those routes.
    pub fn local(actor: LocalActor) -> Result<Self> {
        let key_id = actor.id.with_suffix("#main-key")?;
        let has_collections = actor.kind != ActorKind::Application;
        Ok(Self {
            kind: actor.kind,
            inbox: actor.id.with_suffix("/inbox")?,
            outbox: Some(actor.id.with_suffix("/outbox")?),
            followers: if has_collections {
                Some(actor.id.with_suffix("/followers")?)
            } else {
                None
            },
            following: None,
            endpoints: Some(Endpoints {
                shared_inbox: Some(actor.shared_inbox),
            }),
            preferred_username: Some(actor.preferred_username),
            name: actor.name,
            summary: actor.summary,
            url: actor.url,
            icon: actor.icon.map(|url| Image {
                kind: ImageKind::Image,
                url,
                media_type: None,
            }),
            public_key: PublicKey {
                id: key_id.to_string(),
                owner: actor.id.url().clone(),
                public_key_pem: actor.public_key_pem,
            },
            attributed_to: actor.attributed_to,
            manually_approves_followers: Some(actor.manually_approves_followers),
            access_mode: actor.room.map(|r| r.access_mode),
            capacity: actor.room.map(|r| r.capacity),
            head_count: actor.room.map(|r| r.head_count),
            id: actor.id,
        })
    }

    /// Reads and checks a remote actor document: the shape, then [`Actor::validate`].
    pub fn parse(body: &[u8]) -> Result<Self> {
        let actor: Self = json::from_slice(body)?;
        actor.validate()?;
        Ok(actor)
    }

    /// The rules serde cannot express: the key is this actor's own (owner = id, key id on the
    /// same host), the inboxes are on the actor's host, and the key is a usable RSA key.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::BadDocument(format!("actor {}: {why}", self.id)));
        let host = authority(&self.id);
        if self.public_key.owner != *self.id.url() {
            return bad("publicKey.owner is another actor");
        }
        let key_id = Id::parse(&self.public_key.id)?;
        if authority(&key_id) != host {
            return bad("publicKey.id is on another host");
        }
        if authority(&self.inbox) != host {
            return bad("inbox is on another host");
        }
        parse_public_key_pem(&self.public_key.public_key_pem)?;
        for text in [&self.name, &self.summary, &self.preferred_username]
            .into_iter()
            .flatten()
        {
            if text.len() > 64 * 1024 {
                return bad("text field too long");
            }
        }
        Ok(())
    }

    /// Where to deliver to this actor: its shared inbox when it has one.
    pub fn delivery_inbox(&self) -> &Id {
        self.endpoints
            .as_ref()
            .and_then(|e| e.shared_inbox.as_ref())
            .unwrap_or(&self.inbox)
    }

    /// A Room's properties, when all three are present.
    pub fn room_properties(&self) -> Option<RoomProperties> {
        Some(RoomProperties {
            access_mode: self.access_mode?,
            capacity: self.capacity?,
            head_count: self.head_count?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::test_keys;
    use crate::protocol::context::with_context;

    fn room() -> Result<Actor> {
        Actor::local(LocalActor {
            kind: ActorKind::Group,
            id: Id::parse("https://b.example/rooms/potting-shed")?,
            preferred_username: "potting-shed".into(),
            name: Some("Potting Shed".into()),
            summary: Some("<p>Seedlings</p>".into()),
            url: Some(Id::parse("https://b.example/rooms/potting-shed")?),
            icon: Some(Id::parse("https://b.example/media/shed.png")?),
            public_key_pem: test_keys().public_key_pem().into(),
            shared_inbox: Id::parse("https://b.example/inbox")?,
            attributed_to: Some(Id::parse("https://b.example/spaces/garden")?),
            room: Some(RoomProperties {
                access_mode: AccessMode::MembersOnly,
                capacity: 12,
                head_count: 3,
            }),
            manually_approves_followers: false,
        })
    }

    #[test]
    fn a_room_serializes_with_every_field_peers_expect() -> Result<()> {
        let doc = serde_json::to_value(with_context(room()?))
            .map_err(|e| Error::BadJson(e.to_string()))?;
        assert_eq!(doc["type"], "Group");
        assert_eq!(doc["inbox"], "https://b.example/rooms/potting-shed/inbox");
        assert_eq!(doc["outbox"], "https://b.example/rooms/potting-shed/outbox");
        assert_eq!(
            doc["followers"],
            "https://b.example/rooms/potting-shed/followers"
        );
        assert_eq!(doc["endpoints"]["sharedInbox"], "https://b.example/inbox");
        assert_eq!(doc["preferredUsername"], "potting-shed");
        assert_eq!(
            doc["publicKey"]["id"],
            "https://b.example/rooms/potting-shed#main-key"
        );
        assert_eq!(
            doc["publicKey"]["owner"],
            "https://b.example/rooms/potting-shed"
        );
        assert!(
            doc["publicKey"]["publicKeyPem"]
                .as_str()
                .is_some_and(|p| p.contains("BEGIN PUBLIC KEY"))
        );
        assert_eq!(doc["attributedTo"], "https://b.example/spaces/garden");
        assert_eq!(doc["accessMode"], "members-only");
        assert_eq!(doc["capacity"], 12);
        assert_eq!(doc["headCount"], 3);
        assert_eq!(doc["icon"]["type"], "Image");
        assert_eq!(doc["@context"][1], "https://w3id.org/security/v1");
        Ok(())
    }

    #[test]
    fn an_actor_round_trips_and_validates() -> Result<()> {
        let room = room()?;
        let body = json::to_vec(&with_context(&room))?;
        let parsed = Actor::parse(&body)?;
        assert_eq!(parsed, room);
        assert_eq!(parsed.room_properties().map(|r| r.capacity), Some(12));
        assert_eq!(parsed.delivery_inbox().as_str(), "https://b.example/inbox");
        Ok(())
    }

    #[test]
    fn a_mastodon_shaped_person_parses() -> Result<()> {
        let body = serde_json::json!({
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1",
                         {"toot": "http://joinmastodon.org/ns#", "discoverable": "toot:discoverable"}],
            "id": "https://m.example/users/ada",
            "type": "Person",
            "following": "https://m.example/users/ada/following",
            "followers": "https://m.example/users/ada/followers",
            "inbox": "https://m.example/users/ada/inbox",
            "outbox": "https://m.example/users/ada/outbox",
            "featured": "https://m.example/users/ada/collections/featured",
            "preferredUsername": "ada",
            "name": "Ada",
            "summary": "",
            "url": "https://m.example/@ada",
            "discoverable": true,
            "publicKey": {"id": "https://m.example/users/ada#main-key", "owner": "https://m.example/users/ada",
                          "publicKeyPem": test_keys().public_key_pem()},
            "tag": [],
            "endpoints": {"sharedInbox": "https://m.example/inbox"},
            "icon": {"type": "Image", "mediaType": "image/png", "url": "https://m.example/a.png"}
        });
        let actor = Actor::parse(body.to_string().as_bytes())?;
        assert_eq!(actor.kind, ActorKind::Person);
        assert_eq!(actor.delivery_inbox().as_str(), "https://m.example/inbox");
        assert_eq!(actor.room_properties(), None);
        Ok(())
    }

    #[test]
    fn actors_with_foreign_keys_or_inboxes_are_refused() -> Result<()> {
        let good = serde_json::to_value(room()?).map_err(|e| Error::BadJson(e.to_string()))?;
        let mutations: [(&str, &str, serde_json::Value); 5] = [
            ("publicKey", "owner", "https://b.example/rooms/other".into()),
            ("publicKey", "id", "https://evil.example/k#main-key".into()),
            ("publicKey", "publicKeyPem", "garbage".into()),
            ("", "inbox", "https://evil.example/inbox".into()),
            ("", "inbox", "file:///etc/passwd".into()),
        ];
        for (outer, field, value) in mutations {
            let mut doc = good.clone();
            if outer.is_empty() {
                doc[field] = value;
            } else {
                doc[outer][field] = value;
            }
            assert!(
                Actor::parse(doc.to_string().as_bytes()).is_err(),
                "{outer}.{field}"
            );
        }
        let mut wrong_type = good.clone();
        wrong_type["capacity"] = "twelve".into();
        assert!(Actor::parse(wrong_type.to_string().as_bytes()).is_err());
        // Decorative fields of an unknown shape are dropped, not fatal.
        let mut odd_icon = good.clone();
        odd_icon["icon"] = serde_json::json!([{"type": "Image", "url": "https://b.example/a.png"}]);
        odd_icon["url"] = serde_json::json!({"type": "Link", "href": "https://b.example/@x"});
        let parsed = Actor::parse(odd_icon.to_string().as_bytes())?;
        assert_eq!((parsed.icon, parsed.url), (None, None));
        let mut unknown_kind = good;
        unknown_kind["type"] = "Bird".into();
        assert!(Actor::parse(unknown_kind.to_string().as_bytes()).is_err());
        Ok(())
    }
}
