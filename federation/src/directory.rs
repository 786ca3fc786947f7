//! What the federation crate needs from the instance, as four small traits, and the functions
//! that use them to answer federation requests.
//!
//! | trait | the instance implements it with |
//! |---|---|
//! | [`Directory`] | its Passports, Spaces and Rooms (one handle namespace), their keys (made and stored on first need) and their followers |
//! | [`KeySource`] | a table of remote actors' keys, refreshed when stale, filled with [`FetchKeySource`](crate::receive::FetchKeySource) |
//! | [`SeenActivities`] | a table of received activity ids (unique), written in the same transaction as the activity's effect |
//! | [`crate::signature::ReplayGuard`] | a table of recent signature fingerprints, or [`crate::signature::MemoryReplayGuard`] for one process |
//!
//! The functions here ([`webfinger_document`], [`actor_document`], [`followers_document`],
//! [`fan_out`]) are what the instance's routes call; each route's doc there starts with its
//! path: `GET /.well-known/webfinger`, `GET {actor}` with `Accept: application/activity+json`,
//! `GET {actor}/followers`, and the delivery step of any use case that federates.

use std::future::Future;

use crate::address::Address;
use crate::delivery::{DeliveryJob, Recipient, plan};
use crate::error::{Error, Result};
use crate::keys::ActorKeys;
use crate::policy::PartnerPolicy;
use crate::protocol::Id;
use crate::protocol::activity::Activity;
use crate::protocol::actor::{Actor, LocalActor};
use crate::protocol::context::with_context;
use crate::protocol::object::OrderedCollection;
use crate::signature::RemoteKey;
use crate::urls::authority;
use crate::webfinger::{self, Resource, Webfinger};

/// The instance's own actors. Implementations map their storage errors to
/// [`Error::Directory`].
pub trait Directory: Send + Sync {
    /// The local actor whose handle is `name` (the part before `@`): a Passport or a Space,
    /// which share one namespace, or the instance actor.
    fn actor_by_name(&self, name: &str) -> impl Future<Output = Result<Option<LocalActor>>> + Send;
    /// The local actor with this id (Passport, Space, Room or the instance).
    fn actor_by_id(&self, id: &Id) -> impl Future<Output = Result<Option<LocalActor>>> + Send;
    /// The actor's key pair, made and stored on first need.
    fn keys_of(&self, actor: &Id) -> impl Future<Output = Result<ActorKeys>> + Send;
    /// The actor's accepted followers, with their inboxes.
    fn followers_of(&self, actor: &Id) -> impl Future<Output = Result<Vec<Recipient>>> + Send;
}

/// Remote actors' public keys.
pub trait KeySource: Send + Sync {
    /// The key named `key_id`. With `refresh`, skip any cache and fetch it again: a signature
    /// that fails with a cached key is retried once with a fresh one (key rotation).
    fn public_key(
        &self,
        key_id: &Id,
        refresh: bool,
    ) -> impl Future<Output = Result<RemoteKey>> + Send;
}

/// Activity ids already processed.
pub trait SeenActivities: Send + Sync {
    /// Whether an activity with this id has been processed. The instance records the id in
    /// the same transaction as the activity's effect (a unique key), so a repeat changes nothing
    /// and a failure leaves nothing half-written.
    fn seen(&self, activity_id: &Id) -> impl Future<Output = Result<bool>> + Send;
}

/// `GET /.well-known/webfinger?resource=...`: the JRD, `Ok(None)` for 404 (unknown handle, or
/// a handle on another domain). `subscribe_template` is our remote-interaction URL with `{uri}`.
pub async fn webfinger_document(
    directory: &impl Directory,
    resource: &str,
    local_domain: &str,
    subscribe_template: &str,
) -> Result<Option<Webfinger>> {
    let actor = match Resource::parse(resource)? {
        Resource::Acct(address) => {
            if !address.is_local_to(local_domain) {
                return Ok(None);
            }
            directory.actor_by_name(address.name()).await?
        }
        Resource::Url(id) => directory.actor_by_id(&id).await?,
    };
    let Some(actor) = actor else {
        return Ok(None);
    };
    let address = Address::new(&actor.preferred_username, local_domain)?;
    Ok(Some(webfinger::build(
        &address,
        &actor.id,
        actor.url.as_ref(),
        Some(subscribe_template),
    )))
}

/// `GET {actor}` for ActivityPub clients: the actor document with our `@context`, `Ok(None)`
/// for 404.
pub async fn actor_document(
    directory: &impl Directory,
    id: &Id,
) -> Result<Option<serde_json::Value>> {
    let Some(actor) = directory.actor_by_id(id).await? else {
        return Ok(None);
    };
    let document = Actor::local(actor)?;
    serde_json::to_value(with_context(document))
        .map(Some)
        .map_err(|e| Error::BadJson(e.to_string()))
}

/// `GET {actor}/followers`: the count only (who follows a Space is not public).
pub async fn followers_document(
    directory: &impl Directory,
    actor: &Id,
) -> Result<Option<OrderedCollection<Id>>> {
    if directory.actor_by_id(actor).await?.is_none() {
        return Ok(None);
    }
    let count = directory.followers_of(actor).await?.len() as u64;
    Ok(Some(OrderedCollection::count_only(
        actor.with_suffix("/followers")?,
        count,
    )))
}

/// The delivery jobs for `activity` by its (local) actor to that actor's followers plus
/// `extra` recipients (the Room's actor for a Join, a Passport for an Invite).
pub async fn fan_out(
    directory: &impl Directory,
    activity: &Activity,
    extra: Vec<Recipient>,
    policy: &PartnerPolicy,
    local_domain: &str,
) -> Result<Vec<DeliveryJob>> {
    let actor = activity.actor();
    if authority(actor).as_deref() != Some(&local_domain.to_ascii_lowercase()) {
        return Err(Error::Refused(format!("{actor} is not a local actor")));
    }
    let mut recipients = directory.followers_of(actor).await?;
    recipients.extend(extra);
    plan(
        activity,
        &actor.with_suffix("#main-key")?,
        recipients,
        policy,
        local_domain,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::keys::tests::test_keys;
    use crate::protocol::activity::{Action, Announce, Announced};
    use crate::protocol::actor::ActorKind;

    /// An in-memory directory: one Space with two followers on one remote server.
    pub(crate) struct FakeDirectory {
        pub actors: HashMap<String, LocalActor>,
        pub followers: Vec<Recipient>,
    }

    impl FakeDirectory {
        pub(crate) fn new() -> Result<Self> {
            let space = LocalActor {
                kind: ActorKind::Group,
                id: Id::parse("http://localhost:8080/spaces/garden")?,
                preferred_username: "garden".into(),
                name: Some("Garden".into()),
                summary: None,
                url: Some(Id::parse("http://localhost:8080/spaces/garden")?),
                icon: None,
                public_key_pem: test_keys().public_key_pem().into(),
                shared_inbox: Id::parse("http://localhost:8080/inbox")?,
                attributed_to: None,
                room: None,
                manually_approves_followers: false,
            };
            Ok(Self {
                actors: HashMap::from([("garden".to_owned(), space)]),
                followers: vec![
                    Recipient {
                        inbox: Id::parse("https://m.example/users/1/inbox")?,
                        shared_inbox: Some(Id::parse("https://m.example/inbox")?),
                    },
                    Recipient {
                        inbox: Id::parse("https://m.example/users/2/inbox")?,
                        shared_inbox: Some(Id::parse("https://m.example/inbox")?),
                    },
                ],
            })
        }
    }

    impl Directory for FakeDirectory {
        async fn actor_by_name(&self, name: &str) -> Result<Option<LocalActor>> {
            Ok(self.actors.get(name).cloned())
        }
        async fn actor_by_id(&self, id: &Id) -> Result<Option<LocalActor>> {
            Ok(self.actors.values().find(|a| &a.id == id).cloned())
        }
        async fn keys_of(&self, _: &Id) -> Result<ActorKeys> {
            Ok(test_keys().clone())
        }
        async fn followers_of(&self, _: &Id) -> Result<Vec<Recipient>> {
            Ok(self.followers.clone())
        }
    }

    #[tokio::test]
    async fn webfinger_answers_local_handles_only() -> Result<()> {
        let dir = FakeDirectory::new()?;
        let template = "http://localhost:8080/interact?uri={uri}";
        let jrd = webfinger_document(
            &dir,
            "acct:garden@localhost:8080",
            "localhost:8080",
            template,
        )
        .await?;
        let jrd = jrd.ok_or_else(|| Error::BadDocument("no JRD".into()))?;
        assert_eq!(jrd.subject, "acct:garden@localhost:8080");
        assert_eq!(
            jrd.links[0].href.as_ref().map(|u| u.as_str()),
            Some("http://localhost:8080/spaces/garden")
        );
        let by_url = webfinger_document(
            &dir,
            "http://localhost:8080/spaces/garden",
            "localhost:8080",
            template,
        )
        .await?;
        assert!(by_url.is_some());
        assert!(
            webfinger_document(
                &dir,
                "acct:nobody@localhost:8080",
                "localhost:8080",
                template
            )
            .await?
            .is_none()
        );
        assert!(
            webfinger_document(
                &dir,
                "acct:garden@elsewhere.example",
                "localhost:8080",
                template
            )
            .await?
            .is_none()
        );
        assert_eq!(
            webfinger_document(&dir, "garden", "localhost:8080", template)
                .await
                .map_err(|e| e.status()),
            Err(400)
        );
        Ok(())
    }

    #[tokio::test]
    async fn actor_and_followers_documents_come_from_the_directory() -> Result<()> {
        let dir = FakeDirectory::new()?;
        let space = Id::parse("http://localhost:8080/spaces/garden")?;
        let doc = actor_document(&dir, &space)
            .await?
            .ok_or_else(|| Error::BadDocument("none".into()))?;
        assert_eq!(doc["type"], "Group");
        assert_eq!(
            doc["publicKey"]["id"],
            "http://localhost:8080/spaces/garden#main-key"
        );
        assert!(
            actor_document(&dir, &Id::parse("http://localhost:8080/spaces/none")?)
                .await?
                .is_none()
        );
        let followers = followers_document(&dir, &space)
            .await?
            .ok_or_else(|| Error::BadDocument("none".into()))?;
        assert_eq!(followers.total_items, 2);
        assert!(followers.ordered_items.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn fan_out_sends_one_job_per_shared_inbox() -> Result<()> {
        let dir = FakeDirectory::new()?;
        let space = Id::parse("http://localhost:8080/spaces/garden")?;
        let room_created = Activity::Join(Action::new(
            Id::parse("http://localhost:8080/activities/1")?,
            space.clone(),
            Id::parse("http://localhost:8080/rooms/shed")?,
        ));
        let announce = Activity::Announce(Announce::new(
            Id::parse("http://localhost:8080/activities/2")?,
            space.clone(),
            &space.with_suffix("/followers")?,
            Announced::Activity(room_created),
        ));
        let extra = vec![Recipient {
            inbox: Id::parse("https://solo.example/u/1/inbox")?,
            shared_inbox: None,
        }];
        let jobs = fan_out(
            &dir,
            &announce,
            extra,
            &PartnerPolicy::default(),
            "localhost:8080",
        )
        .await?;
        let inboxes: Vec<&str> = jobs.iter().map(|j| j.inbox.as_str()).collect();
        assert_eq!(
            inboxes,
            ["https://m.example/inbox", "https://solo.example/u/1/inbox"]
        );
        assert_eq!(
            jobs[0].key_id.as_str(),
            "http://localhost:8080/spaces/garden#main-key"
        );
        // Only our own actors' activities go out.
        let foreign = Activity::Follow(Action::new(
            Id::parse("https://m.example/a/1")?,
            Id::parse("https://m.example/users/1")?,
            space,
        ));
        assert!(
            fan_out(
                &dir,
                &foreign,
                vec![],
                &PartnerPolicy::default(),
                "localhost:8080"
            )
            .await
            .is_err()
        );
        Ok(())
    }
}
