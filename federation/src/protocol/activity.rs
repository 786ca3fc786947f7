//! Activities: Follow, Accept, Reject, TentativeAccept, Undo, Announce, Create, Update, Delete,
//! Join, Leave, Invite, as variants of one internally tagged [`Activity`].
//!
//! Shapes shared by several types have one struct: [`Action`] (Follow, Join, Leave, Invite: an
//! actor does something to an object), [`Response`] (Accept, Reject, TentativeAccept: an answer
//! to an earlier activity, embedded or named), [`Publish`] (Create, Update).
//!
//! Spaces announce the way Lemmy communities do (FEP-1b12): an `Announce` by the Space whose
//! object is the original activity and whose `audience` is the Space, addressed to the public
//! and the Space's followers. For Mastodon timelines a Space also announces a `Note`/`Page`
//! linking to the Room ([`Announce::new`] takes either).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::protocol::actor::Actor;
use crate::protocol::object::Note;
use crate::protocol::{Embedded, Id, PUBLIC, one_or_many};
use crate::urls::authority;

/// An actor does something to an object: Follow (object = the followed actor), Join and Leave
/// (object = the Room), Invite (object = the invited Person, target = the Room).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub id: Id,
    pub actor: Id,
    pub object: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Id>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub to: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
}

impl Action {
    /// An action addressed to its object.
    pub fn new(id: Id, actor: Id, object: Id) -> Self {
        Self {
            to: vec![object.to_string()],
            id,
            actor,
            object,
            target: None,
            cc: Vec::new(),
            audience: None,
            published: None,
        }
    }
}

/// An answer (Accept, Reject, TentativeAccept) to an earlier activity, which it embeds (we
/// always embed; peers may only name it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub id: Id,
    pub actor: Id,
    pub object: Embedded<Activity>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub to: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub cc: Vec<String>,
    /// A reason, for a Reject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
}

impl Response {
    /// An answer to `original`, addressed to its actor.
    pub fn new(id: Id, actor: Id, original: Activity) -> Self {
        Self {
            to: vec![original.actor().to_string()],
            id,
            actor,
            object: Embedded::Object(Box::new(original)),
            cc: Vec::new(),
            summary: None,
            published: None,
        }
    }
}

/// Takes back an earlier activity of the same actor (Follow, Join, Announce).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Undo {
    pub id: Id,
    pub actor: Id,
    pub object: Embedded<Activity>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub to: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Id>,
}

/// What an Announce carries: an activity (FEP-1b12) or a Note/Page (for timelines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Announced {
    Activity(Activity),
    Note(Note),
}

/// A Space repeats something to its followers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Announce {
    pub id: Id,
    pub actor: Id,
    pub object: Embedded<Announced>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub to: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
}

impl Announce {
    /// FEP-1b12: `space` announces `object` to the public and its followers, `audience` = space.
    pub fn new(id: Id, space: Id, followers: &Id, object: Announced) -> Self {
        Self {
            id,
            actor: space.clone(),
            object: Embedded::Object(Box::new(object)),
            to: vec![PUBLIC.to_owned()],
            cc: vec![followers.to_string()],
            audience: Some(space),
            published: None,
        }
    }
}

impl Announce {
    /// The announced activity when it can be trusted as embedded: it is by an actor on the
    /// announcer's host and passes its own [`Activity::check_origin`]. `Ok(None)` when the
    /// object is a Note/Page or only named (fetch it from its origin); an embedded activity
    /// from another host is refused, because the announcer cannot vouch for it (fetch it from
    /// its origin instead).
    pub fn trusted_activity(&self) -> Result<Option<&Activity>> {
        let Embedded::Object(announced) = &self.object else {
            return Ok(None);
        };
        let Announced::Activity(inner) = announced.as_ref() else {
            return Ok(None);
        };
        if authority(inner.actor()) != authority(&self.actor) {
            return Err(Error::Refused(format!(
                "Announce {} embeds an activity from another host; fetch {} instead",
                self.id,
                inner.id()
            )));
        }
        inner.check_origin()?;
        Ok(Some(inner))
    }
}

/// What Create and Update carry: an actor (a Room, a changed profile) or a Note/Page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Object {
    Actor(Box<Actor>),
    Note(Box<Note>),
}

impl Object {
    pub fn id(&self) -> &Id {
        match self {
            Self::Actor(a) => &a.id,
            Self::Note(n) => &n.id,
        }
    }
}

/// Create or Update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Publish {
    pub id: Id,
    pub actor: Id,
    pub object: Embedded<Object>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub to: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
}

/// Removes an object (a Room, a Note); the object may be a Tombstone or only its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delete {
    pub id: Id,
    pub actor: Id,
    pub object: Id,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub to: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Id>,
}

/// Every activity Convene sends or reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Activity {
    Follow(Action),
    Accept(Response),
    Reject(Response),
    TentativeAccept(Response),
    Undo(Undo),
    Announce(Announce),
    Create(Publish),
    Update(Publish),
    Delete(Delete),
    Join(Action),
    Leave(Action),
    Invite(Action),
}

impl Activity {
    /// Every `type` this enum reads.
    pub const TYPES: &'static [&'static str] = &[
        "Follow",
        "Accept",
        "Reject",
        "TentativeAccept",
        "Undo",
        "Announce",
        "Create",
        "Update",
        "Delete",
        "Join",
        "Leave",
        "Invite",
    ];

    pub fn id(&self) -> &Id {
        match self {
            Self::Follow(a) | Self::Join(a) | Self::Leave(a) | Self::Invite(a) => &a.id,
            Self::Accept(r) | Self::Reject(r) | Self::TentativeAccept(r) => &r.id,
            Self::Undo(u) => &u.id,
            Self::Announce(a) => &a.id,
            Self::Create(p) | Self::Update(p) => &p.id,
            Self::Delete(d) => &d.id,
        }
    }

    pub fn actor(&self) -> &Id {
        match self {
            Self::Follow(a) | Self::Join(a) | Self::Leave(a) | Self::Invite(a) => &a.actor,
            Self::Accept(r) | Self::Reject(r) | Self::TentativeAccept(r) => &r.actor,
            Self::Undo(u) => &u.actor,
            Self::Announce(a) => &a.actor,
            Self::Create(p) | Self::Update(p) => &p.actor,
            Self::Delete(d) => &d.actor,
        }
    }

    /// The `type`, as written.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Follow(_) => "Follow",
            Self::Accept(_) => "Accept",
            Self::Reject(_) => "Reject",
            Self::TentativeAccept(_) => "TentativeAccept",
            Self::Undo(_) => "Undo",
            Self::Announce(_) => "Announce",
            Self::Create(_) => "Create",
            Self::Update(_) => "Update",
            Self::Delete(_) => "Delete",
            Self::Join(_) => "Join",
            Self::Leave(_) => "Leave",
            Self::Invite(_) => "Invite",
        }
    }

    /// Refuses activities that claim what their actor cannot own. Run after the signature
    /// check (which ties the actor to the signer), before acting:
    /// - the activity's id is on its actor's host;
    /// - an Undo takes back an activity of the same actor;
    /// - an Accept/Reject/TentativeAccept answers an activity addressed to its actor (a Follow
    ///   or Join of it, or an Invite of it);
    /// - Create/Update/Delete touch only objects on the actor's host.
    ///
    /// When the object is only named (an Undo or Accept with an id), the instance looks the
    /// named activity up in its own records and applies the same rule there.
    ///
    /// Announce may carry others' activities (a Space repeats its members); the instance
    /// trusts an announced activity only after fetching it from its origin or checking that
    /// it is on the announcer's host.
    pub fn check_origin(&self) -> Result<()> {
        let actor = self.actor();
        let refuse = |why: &str| {
            Err(Error::Refused(format!(
                "{} {}: {why}",
                self.kind(),
                self.id()
            )))
        };
        if authority(self.id()) != authority(actor) {
            return refuse("id on another host than its actor");
        }
        match self {
            Self::Undo(undo) => match undo.object.object() {
                Some(inner) if inner.actor() != actor => refuse("undoes another actor's activity"),
                _ => Ok(()),
            },
            Self::Accept(r) | Self::Reject(r) | Self::TentativeAccept(r) => match r.object.object()
            {
                Some(Activity::Follow(a) | Activity::Join(a) | Activity::Invite(a))
                    if &a.object != actor =>
                {
                    refuse("answers an activity addressed to someone else")
                }
                _ => Ok(()),
            },
            Self::Create(p) | Self::Update(p) => {
                let object = match &p.object {
                    Embedded::Object(o) => o.id(),
                    Embedded::Id(id) => id,
                };
                if authority(object) != authority(actor) {
                    refuse("object on another host")
                } else {
                    Ok(())
                }
            }
            Self::Delete(d) if authority(&d.object) != authority(actor) => {
                refuse("object on another host")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;
    use crate::protocol::object::NoteKind;

    fn id(s: &str) -> Result<Id> {
        Id::parse(s)
    }

    fn room_actor() -> Result<Actor> {
        use crate::protocol::actor::{AccessMode, ActorKind, LocalActor, RoomProperties};
        Actor::local(LocalActor {
            kind: ActorKind::Group,
            id: id("https://b.example/rooms/shed")?,
            preferred_username: "shed".into(),
            name: None,
            summary: None,
            url: None,
            icon: None,
            public_key_pem: crate::keys::tests::test_keys().public_key_pem().into(),
            shared_inbox: id("https://b.example/inbox")?,
            attributed_to: Some(id("https://b.example/spaces/garden")?),
            room: Some(RoomProperties {
                access_mode: AccessMode::Open,
                capacity: 8,
                head_count: 0,
            }),
            manually_approves_followers: false,
        })
    }

    fn follow() -> Result<Activity> {
        Ok(Activity::Follow(Action::new(
            id("https://a.example/activities/1")?,
            id("https://a.example/passports/ada")?,
            id("https://b.example/spaces/garden")?,
        )))
    }

    #[test]
    fn every_activity_type_round_trips() -> Result<()> {
        let space = id("https://b.example/spaces/garden")?;
        let room = id("https://b.example/rooms/shed")?;
        let note = Note {
            kind: NoteKind::Page,
            id: id("https://b.example/rooms/shed/page")?,
            attributed_to: space.clone(),
            name: Some("Potting Shed".into()),
            content: Some("<p>A new Room</p>".into()),
            summary: None,
            url: Some(room.clone()),
            to: vec![PUBLIC.into()],
            cc: vec![],
            audience: Some(space.clone()),
            published: None,
        };
        let create = Activity::Create(Publish {
            id: id("https://b.example/activities/c1")?,
            actor: space.clone(),
            object: Embedded::Object(Box::new(Object::Note(Box::new(note.clone())))),
            to: vec![PUBLIC.into()],
            cc: vec![],
            audience: Some(space.clone()),
            published: None,
        });
        let mut invite = Action::new(
            id("https://b.example/activities/i1")?,
            space.clone(),
            id("https://a.example/passports/ada")?,
        );
        invite.target = Some(room.clone());
        let all = vec![
            follow()?,
            Activity::Accept(Response::new(
                id("https://b.example/activities/2")?,
                space.clone(),
                follow()?,
            )),
            Activity::Reject(Response {
                summary: Some("members only".into()),
                ..Response::new(
                    id("https://b.example/activities/3")?,
                    room.clone(),
                    follow()?,
                )
            }),
            Activity::TentativeAccept(Response::new(
                id("https://b.example/activities/4")?,
                room.clone(),
                follow()?,
            )),
            Activity::Undo(Undo {
                id: id("https://a.example/activities/5")?,
                actor: id("https://a.example/passports/ada")?,
                object: Embedded::Object(Box::new(follow()?)),
                to: vec![],
                cc: vec![],
                audience: None,
            }),
            Activity::Announce(Announce::new(
                id("https://b.example/activities/6")?,
                space.clone(),
                &id("https://b.example/spaces/garden/followers")?,
                Announced::Activity(create.clone()),
            )),
            Activity::Announce(Announce::new(
                id("https://b.example/activities/7")?,
                space.clone(),
                &id("https://b.example/spaces/garden/followers")?,
                Announced::Note(note),
            )),
            create,
            Activity::Delete(Delete {
                id: id("https://b.example/activities/8")?,
                actor: space.clone(),
                object: room.clone(),
                to: vec![PUBLIC.into()],
                cc: vec![],
                audience: Some(space.clone()),
            }),
            Activity::Join(Action::new(
                id("https://a.example/activities/9")?,
                id("https://a.example/passports/ada")?,
                room.clone(),
            )),
            Activity::Leave(Action::new(
                id("https://a.example/activities/10")?,
                id("https://a.example/passports/ada")?,
                room,
            )),
            Activity::Invite(invite),
            Activity::Update(Publish {
                id: id("https://b.example/activities/u1")?,
                actor: space.clone(),
                object: Embedded::Object(Box::new(Object::Actor(Box::new(room_actor()?)))),
                to: vec![PUBLIC.into()],
                cc: vec![],
                audience: Some(space.clone()),
                published: None,
            }),
        ];
        let mut kinds: Vec<&str> = Vec::new();
        for activity in &all {
            let body = json::to_vec(activity)?;
            let value: serde_json::Value = json::from_slice(&body)?;
            assert_eq!(value["type"], activity.kind());
            let back: Activity = json::from_slice(&body)?;
            assert_eq!(&back, activity);
            kinds.push(activity.kind());
        }
        for kind in Activity::TYPES {
            assert!(kinds.contains(kind), "{kind} not covered");
        }
        Ok(())
    }

    #[test]
    fn an_announce_follows_fep_1b12() -> Result<()> {
        let space = id("https://b.example/spaces/garden")?;
        let announce = Announce::new(
            id("https://b.example/activities/6")?,
            space.clone(),
            &id("https://b.example/spaces/garden/followers")?,
            Announced::Activity(follow()?),
        );
        let value = serde_json::to_value(Activity::Announce(announce))
            .map_err(|e| Error::BadJson(e.to_string()))?;
        assert_eq!(value["audience"], space.as_str());
        assert_eq!(value["to"][0], PUBLIC);
        assert_eq!(value["cc"][0], "https://b.example/spaces/garden/followers");
        assert_eq!(value["object"]["type"], "Follow");
        Ok(())
    }

    #[test]
    fn only_same_host_embedded_activities_are_trusted_from_an_announce() -> Result<()> {
        let space = id("https://b.example/spaces/garden")?;
        let followers = id("https://b.example/spaces/garden/followers")?;
        let by_space = Activity::Delete(Delete {
            id: id("https://b.example/activities/d1")?,
            actor: space.clone(),
            object: id("https://b.example/rooms/shed")?,
            to: vec![],
            cc: vec![],
            audience: Some(space.clone()),
        });
        let announce = Announce::new(
            id("https://b.example/activities/a1")?,
            space.clone(),
            &followers,
            Announced::Activity(by_space.clone()),
        );
        assert_eq!(announce.trusted_activity()?, Some(&by_space));
        // A member's Join on another host, repeated by the Space: fetch it from its origin.
        let announce_foreign = Announce::new(
            id("https://b.example/activities/a2")?,
            space.clone(),
            &followers,
            Announced::Activity(follow()?),
        );
        assert!(matches!(
            announce_foreign.trusted_activity(),
            Err(Error::Refused(_))
        ));
        // The Space claiming to delete another host's object.
        let forged = Activity::Delete(Delete {
            id: id("https://b.example/activities/d2")?,
            actor: space.clone(),
            object: id("https://c.example/rooms/x")?,
            to: vec![],
            cc: vec![],
            audience: None,
        });
        let announce_forged = Announce::new(
            id("https://b.example/activities/a3")?,
            space,
            &followers,
            Announced::Activity(forged),
        );
        assert!(announce_forged.trusted_activity().is_err());
        Ok(())
    }

    #[test]
    fn a_lemmy_shaped_announce_with_named_object_parses() -> Result<()> {
        let body = br#"{"@context":"https://www.w3.org/ns/activitystreams","type":"Announce",
            "id":"https://l.example/activities/announce/1","actor":"https://l.example/c/garden",
            "to":"https://www.w3.org/ns/activitystreams#Public","cc":["https://l.example/c/garden/followers"],
            "object":"https://l.example/activities/create/9","audience":"https://l.example/c/garden"}"#;
        let Activity::Announce(announce) = json::from_slice::<Activity>(body)? else {
            return Err(Error::BadJson("not an Announce".into()));
        };
        assert!(matches!(announce.object, Embedded::Id(_)));
        assert_eq!(announce.to, vec![PUBLIC.to_owned()]);
        Ok(())
    }

    #[test]
    fn forged_origins_are_refused() -> Result<()> {
        follow()?.check_origin()?;
        // An Undo of someone else's Follow.
        let undo = Activity::Undo(Undo {
            id: id("https://c.example/activities/1")?,
            actor: id("https://c.example/passports/eve")?,
            object: Embedded::Object(Box::new(follow()?)),
            to: vec![],
            cc: vec![],
            audience: None,
        });
        assert!(matches!(undo.check_origin(), Err(Error::Refused(_))));
        // An Accept of a Follow addressed to another actor.
        let accept = Activity::Accept(Response::new(
            id("https://c.example/activities/2")?,
            id("https://c.example/spaces/fake")?,
            follow()?,
        ));
        assert!(accept.check_origin().is_err());
        // A Delete of an object on another host.
        let delete = Activity::Delete(Delete {
            id: id("https://c.example/activities/3")?,
            actor: id("https://c.example/spaces/x")?,
            object: id("https://b.example/rooms/shed")?,
            to: vec![],
            cc: vec![],
            audience: None,
        });
        assert!(delete.check_origin().is_err());
        // An id minted on another host than the actor's.
        let mut stolen = Action::new(
            id("https://b.example/activities/9")?,
            id("https://c.example/u/eve")?,
            id("https://b.example/rooms/shed")?,
        );
        stolen.to.clear();
        assert!(Activity::Join(stolen).check_origin().is_err());
        Ok(())
    }

    #[test]
    fn hostile_activities_are_errors() {
        for bad in [
            &br#"{"type":"Follow","id":"https://a.example/1","actor":"https://a.example/u","object":{"id":5}}"#[..],
            br#"{"type":"Follow","id":"https://a.example/1","actor":["https://a.example/u"],"object":"https://b.example/s"}"#,
            br#"{"type":"Follow","id":"https://a.example/1","object":"https://b.example/s"}"#,
            br#"{"type":["Follow"],"id":"https://a.example/1","actor":"https://a.example/u","object":"https://b.example/s"}"#,
            br#"{"type":"Accept","id":"https://a.example/1","actor":"https://a.example/u","object":{"type":"Nope"}}"#,
            br#"{"type":"Follow","id":"https://a.example/1","actor":"https://a.example/u","object":"https://b.example/s","to":{"a":1}}"#,
            br#"[]"#,
            br#"null"#,
        ] {
            assert!(json::from_slice::<Activity>(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
