//! The instance's side of the `federation` crate's [`Directory`] trait: which local actors
//! exist, what their documents say, and their keys.
//!
//! Every local actor is named by the URL its page already has, so one URL serves HTML to
//! browsers and the actor document to ActivityPub clients (see `http::federation`):
//!
//! | actor | id | type | handle |
//! |---|---|---|---|
//! | the instance | `/actor` | Application | `instance` (a reserved Passport handle) |
//! | a Passport | `/people/{handle}` | Person | `@handle@domain` |
//! | a Space | `/spaces/{slug}` | Group | `@slug@domain` |
//! | a listed Room | `/spaces/{slug}/rooms/{room}` | Group, `attributedTo` its Space | none |
//!
//! Passports and Spaces share one handle namespace, so `@name@domain` names one actor; the
//! domain's create functions refuse a handle or slug the other already holds
//! ([`crate::domain::names`]).
//!
//! Keys are RSA-2048, one pair per actor id, made on first need (on a blocking thread: key
//! generation takes a good part of a second) and kept in `actor_keys`. In one process, pairs
//! are made one at a time ([`crate::core::Core::key_making`]), and requests that waited read
//! the pair made meanwhile. Two processes racing for a new actor's key both generate one, and
//! the first insert wins; both then read the stored pair, so an actor never publishes two keys.

pub mod limits;
pub mod remote;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use convene_federation::ActorKeys;
use convene_federation::delivery::{DeliveryJob, DeliveryOutcome, Recipient, deliver};
use convene_federation::directory::Directory;
use convene_federation::fetch::{FetchClient, FetchSettings};
use convene_federation::protocol::Id;
use convene_federation::protocol::actor::{AccessMode, ActorKind, LocalActor, RoomProperties};
use convene_federation::urls::authority;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::core::Core;
use crate::domain::values::Handle;
use crate::domain::{passports, rooms, spaces};
use crate::error::AppError;
use crate::jobs::{Handler, Job, Outcome};

pub use remote::RemoteActors;

type FedResult<T> = convene_federation::Result<T>;

/// The instance actor's handle: a reserved Passport handle, so no person can take it.
pub const INSTANCE_ACTOR_NAME: &str = "instance";
/// The instance actor's path.
pub const INSTANCE_ACTOR_PATH: &str = "/actor";
/// The shared inbox's path.
pub const SHARED_INBOX_PATH: &str = "/inbox";

/// Which local actor a path names, before looking it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorPath {
    Instance,
    Person(String),
    Space(String),
    Room { space: String, room: String },
}

impl ActorPath {
    /// Reads an actor's path (`/actor`, `/people/h`, `/spaces/s`, `/spaces/s/rooms/r`);
    /// anything else, including a trailing slash or an empty segment, is not an actor.
    pub fn parse(path: &str) -> Option<Self> {
        if path == INSTANCE_ACTOR_PATH {
            return Some(Self::Instance);
        }
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if segments.iter().any(|s| s.is_empty() || s.len() > 100) {
            return None;
        }
        match segments.as_slice() {
            ["people", handle] => Some(Self::Person((*handle).to_owned())),
            ["spaces", space] => Some(Self::Space((*space).to_owned())),
            ["spaces", space, "rooms", room] => Some(Self::Room {
                space: (*space).to_owned(),
                room: (*room).to_owned(),
            }),
            _ => None,
        }
    }
}

/// The path of a Passport's actor (and its page).
pub fn person_path(handle: &str) -> String {
    format!("/people/{handle}")
}

/// The instance's actors, read from its database. Cheap to make per request.
#[derive(Clone)]
pub struct LocalDirectory {
    core: Core,
}

impl LocalDirectory {
    pub fn new(core: Core) -> Self {
        Self { core }
    }

    fn id(&self, path: &str) -> FedResult<Id> {
        Id::parse(&self.core.settings.url(path))
    }

    /// The local actor at `path`, if there is one.
    pub async fn actor_at(&self, path: &ActorPath) -> FedResult<Option<LocalActor>> {
        self.load(path).await.map_err(directory_error)
    }

    async fn load(&self, path: &ActorPath) -> Result<Option<LocalActor>, AppError> {
        let settings = &self.core.settings;
        let shared_inbox = self.id(SHARED_INBOX_PATH)?;
        let actor = match path {
            ActorPath::Instance => {
                let id = self.id(INSTANCE_ACTOR_PATH)?;
                LocalActor {
                    kind: ActorKind::Application,
                    preferred_username: INSTANCE_ACTOR_NAME.to_owned(),
                    name: Some(settings.instance_name.clone()),
                    summary: None,
                    url: Some(self.id("/")?),
                    icon: None,
                    public_key_pem: self.public_key_pem(&id).await?,
                    shared_inbox,
                    attributed_to: None,
                    room: None,
                    manually_approves_followers: false,
                    id,
                }
            }
            ActorPath::Person(handle) => {
                let Ok(handle) = Handle::parse(handle) else {
                    return Ok(None);
                };
                let Some(passport) = passports::by_handle(&self.core.db, &handle).await? else {
                    return Ok(None);
                };
                let id = self.id(&person_path(passport.handle.as_str()))?;
                LocalActor {
                    kind: ActorKind::Person,
                    preferred_username: passport.handle.to_string(),
                    name: Some(passport.display_name.to_string()),
                    summary: None,
                    url: Some(id.clone()),
                    icon: None,
                    public_key_pem: self.public_key_pem(&id).await?,
                    shared_inbox,
                    attributed_to: None,
                    room: None,
                    manually_approves_followers: false,
                    id,
                }
            }
            ActorPath::Space(slug) => {
                let Some(space) = found(spaces::by_slug(&self.core.db, slug).await)? else {
                    return Ok(None);
                };
                let id = self.id(&convene_web::routes::space(space.slug.as_str()))?;
                LocalActor {
                    kind: ActorKind::Group,
                    preferred_username: space.slug.to_string(),
                    name: Some(space.name.to_string()),
                    summary: summary_html(&space.description),
                    url: Some(id.clone()),
                    icon: None,
                    public_key_pem: self.public_key_pem(&id).await?,
                    shared_inbox,
                    attributed_to: None,
                    room: None,
                    // Unlisted Spaces keep follows for an owner to approve.
                    manually_approves_followers: !space.listed,
                    id,
                }
            }
            ActorPath::Room { space, room } => {
                let Some(space) = found(spaces::by_slug(&self.core.db, space).await)? else {
                    return Ok(None);
                };
                let Some(room) = found(rooms::by_slug(&self.core.db, &space, room).await)? else {
                    return Ok(None);
                };
                // An unlisted Room is for those who know its link; it has no public actor.
                if !room.listed {
                    return Ok(None);
                }
                let id = self.room_id(&space, &room.slug)?;
                let head_count = self.core.sfu.as_ref().map_or(0, |sfu| {
                    sfu.room_presence(&crate::core::gathering::media_room_id(&room))
                });
                let pem = self.public_key_pem(&id).await?;
                self.room_actor(&space, &room, pem, head_count)?
            }
        };
        Ok(Some(actor))
    }

    /// A Space's actor id.
    pub fn space_id(&self, space: &spaces::Space) -> FedResult<Id> {
        self.id(&convene_web::routes::space(space.slug.as_str()))
    }

    /// The actor id of the Room at `slug` in `space`.
    pub fn room_id(
        &self,
        space: &spaces::Space,
        slug: &crate::domain::values::Slug,
    ) -> FedResult<Id> {
        self.id(&convene_web::routes::room(
            space.slug.as_str(),
            slug.as_str(),
        ))
    }

    /// A Room's actor, from its rows and its (already made) public key.
    pub fn room_actor(
        &self,
        space: &spaces::Space,
        room: &rooms::Room,
        public_key_pem: String,
        head_count: usize,
    ) -> FedResult<LocalActor> {
        let id = self.room_id(space, &room.slug)?;
        Ok(LocalActor {
            kind: ActorKind::Group,
            preferred_username: room.slug.to_string(),
            name: Some(room.name.to_string()),
            summary: summary_html(&room.topic),
            url: Some(id.clone()),
            icon: None,
            public_key_pem,
            shared_inbox: self.id(SHARED_INBOX_PATH)?,
            attributed_to: Some(self.space_id(space)?),
            room: Some(RoomProperties {
                access_mode: match room.access {
                    rooms::Access::Open => AccessMode::Open,
                    rooms::Access::Members => AccessMode::MembersOnly,
                    rooms::Access::Locked => AccessMode::Locked,
                },
                capacity: u32::try_from(room.capacity).unwrap_or(0),
                head_count: u32::try_from(head_count).unwrap_or(u32::MAX),
            }),
            manually_approves_followers: false,
            id,
        })
    }

    /// The local path of `id`, if `id` is one of our URLs without query or fragment.
    pub fn local_path(&self, id: &Id) -> Option<ActorPath> {
        let ours = authority(id)? == self.core.settings.domain().to_ascii_lowercase()
            && id.scheme() == self.core.settings.public_url.scheme();
        if !ours || id.query().is_some() || id.fragment().is_some() {
            return None;
        }
        ActorPath::parse(id.path())
    }

    /// The actor's public key, making the pair first if needed.
    pub(crate) async fn public_key_pem(&self, actor: &Id) -> Result<String, AppError> {
        Ok(self.stored_keys(actor).await?.1)
    }

    /// (private PEM, public PEM) of `actor`, made and stored on first need.
    async fn stored_keys(&self, actor: &Id) -> Result<(String, String), AppError> {
        let db = &self.core.db;
        let select = "SELECT private_key_pem, public_key_pem FROM actor_keys WHERE actor_id = $1";
        let row = sqlx::query(select)
            .bind(actor.as_str())
            .fetch_optional(&db.pool)
            .await?;
        if let Some(row) = row {
            return Ok((
                row.try_get("private_key_pem")?,
                row.try_get("public_key_pem")?,
            ));
        }
        // One generation at a time in this process: whoever waited finds the pair the first
        // one stored (a burst of Follows of a new Space made one key each before, dozens of
        // seconds of CPU). Other processes may still race; the first insert wins below.
        let _making = self.core.key_making.lock().await;
        if let Some(row) = sqlx::query(select)
            .bind(actor.as_str())
            .fetch_optional(&db.pool)
            .await?
        {
            return Ok((
                row.try_get("private_key_pem")?,
                row.try_get("public_key_pem")?,
            ));
        }
        let (private, public) = tokio::task::spawn_blocking(|| {
            let keys = ActorKeys::generate()?;
            let private = keys.private_key_pem()?.to_string();
            Ok::<_, convene_federation::Error>((private, keys.public_key_pem().to_owned()))
        })
        .await
        .map_err(|e| anyhow::anyhow!("key generation task: {e}"))?
        .map_err(|e| anyhow::anyhow!("key generation: {e}"))?;
        sqlx::query(
            "INSERT INTO actor_keys (actor_id, private_key_pem, public_key_pem, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (actor_id) DO NOTHING",
        )
        .bind(actor.as_str())
        .bind(&private)
        .bind(&public)
        .bind(db.now())
        .execute(&db.pool)
        .await?;
        let row = sqlx::query(select)
            .bind(actor.as_str())
            .fetch_one(&db.pool)
            .await?;
        Ok((
            row.try_get("private_key_pem")?,
            row.try_get("public_key_pem")?,
        ))
    }
}

impl Directory for LocalDirectory {
    async fn actor_by_name(&self, name: &str) -> FedResult<Option<LocalActor>> {
        if name == INSTANCE_ACTOR_NAME {
            return self.actor_at(&ActorPath::Instance).await;
        }
        // One namespace: a Passport's handle, else a Space's slug (never both, see the module
        // docs).
        if let Some(person) = self.actor_at(&ActorPath::Person(name.to_owned())).await? {
            return Ok(Some(person));
        }
        self.actor_at(&ActorPath::Space(name.to_owned())).await
    }

    async fn actor_by_id(&self, id: &Id) -> FedResult<Option<LocalActor>> {
        match self.local_path(id) {
            Some(path) => self.actor_at(&path).await,
            None => Ok(None),
        }
    }

    async fn keys_of(&self, actor: &Id) -> FedResult<ActorKeys> {
        let (private, _) = self.stored_keys(actor).await.map_err(directory_error)?;
        self.core.signing_keys.read(&private)
    }

    async fn followers_of(&self, actor: &Id) -> FedResult<Vec<Recipient>> {
        let rows = sqlx::query(
            "SELECT inbox, shared_inbox FROM federation_followers \
             WHERE local_actor = $1 AND accepted_at IS NOT NULL ORDER BY remote_actor",
        )
        .bind(actor.as_str())
        .fetch_all(&self.core.db.pool)
        .await
        .map_err(|e| directory_error(e.into()))?;
        let mut recipients = Vec::with_capacity(rows.len());
        for row in rows {
            let inbox: String = row
                .try_get("inbox")
                .map_err(|e| directory_error(e.into()))?;
            let shared: Option<String> = row
                .try_get("shared_inbox")
                .map_err(|e| directory_error(e.into()))?;
            // Stored inboxes were checked when the follow arrived; a row that no longer
            // parses is skipped rather than failing every delivery of the Space.
            let Ok(inbox) = Id::parse(&inbox) else {
                tracing::warn!(%inbox, "follower with an unusable inbox");
                continue;
            };
            recipients.push(Recipient {
                inbox,
                shared_inbox: shared.and_then(|s| Id::parse(&s).ok()),
            });
        }
        Ok(recipients)
    }
}

/// `Ok(None)` for a domain "not found", other errors kept.
fn found<T>(result: crate::error::Result<T>) -> crate::error::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(AppError::NotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

fn directory_error(err: AppError) -> convene_federation::Error {
    tracing::error!(error = %err, "federation directory");
    convene_federation::Error::Directory("storage".into())
}

impl From<convene_federation::Error> for AppError {
    fn from(err: convene_federation::Error) -> Self {
        match err.status() {
            400 | 413 => AppError::BadRequest(err.to_string()),
            _ => AppError::Internal(anyhow::anyhow!("federation: {err}")),
        }
    }
}

/// What the inbox needs beside the core: the guarded HTTP client, the signatures seen
/// recently (a captured request replayed within the `Date` window is refused even before its
/// activity id is looked at), the instance actor's keys for signing fetches, the remote actors
/// read so far ([`remote`]), the inbound rate limits ([`limits`]) and counters for `/metrics`.
#[derive(Clone)]
pub struct Federation {
    pub client: FetchClient,
    pub replay: Arc<convene_federation::signature::MemoryReplayGuard>,
    pub limits: Arc<limits::InboxLimits>,
    pub stats: Arc<FederationStats>,
    /// Head counts of Rooms elsewhere, as the "Rooms elsewhere" list shows them.
    pub head_counts: Arc<crate::core::admission::HeadCounts>,
    signer: Arc<tokio::sync::OnceCell<(Id, ActorKeys)>>,
    known_actors: Arc<remote::KnownActors>,
}

/// Federation counters for `/metrics`.
#[derive(Debug, Default)]
pub struct FederationStats {
    /// Remote actor documents fetched (to check a signature or read a follower).
    pub actor_fetches: AtomicU64,
    /// Inbox deliveries refused with 429 by [`limits::InboxLimits`].
    pub inbox_throttled: AtomicU64,
    /// GETs refused in authorized-fetch mode for want of a valid signature.
    pub unsigned_fetches_refused: AtomicU64,
}

impl Federation {
    pub fn new(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        Ok(Self {
            client: fetch_client(settings)?,
            replay: Arc::new(convene_federation::signature::MemoryReplayGuard::new(
                100_000,
            )),
            limits: Arc::new(limits::InboxLimits::new(
                settings.federation_inbox_rate,
                settings.federation_inbox_burst,
            )),
            stats: Arc::new(FederationStats::default()),
            head_counts: Arc::default(),
            signer: Arc::new(tokio::sync::OnceCell::new()),
            known_actors: Arc::new(remote::KnownActors::default()),
        })
    }

    /// The instance actor's key id and keys, read (or made) once per process: every fetch
    /// the instance makes is signed with them.
    pub async fn instance_signer(&self, core: &Core) -> FedResult<(Id, ActorKeys)> {
        self.signer
            .get_or_try_init(|| async {
                let actor = Id::parse(&core.settings.url(INSTANCE_ACTOR_PATH))?;
                let keys = LocalDirectory::new(core.clone()).keys_of(&actor).await?;
                Ok::<_, convene_federation::Error>((actor.with_suffix("#main-key")?, keys))
            })
            .await
            .cloned()
    }
}

/// Outbound HTTP for federation, shared by the inbox (fetching signers' keys) and the delivery
/// worker.
pub fn fetch_client(settings: &crate::config::Settings) -> anyhow::Result<FetchClient> {
    let allow = settings.federation_allow_private_addresses;
    FetchClient::new(FetchSettings {
        allow_loopback: allow,
        allow_private_networks: allow,
        ..FetchSettings::default()
    })
    .map_err(|e| anyhow::anyhow!("federation HTTP client: {e}"))
}

/// Time by the instance's clock, as the federation crate takes it.
pub fn system_time(core: &Core) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(core.db.now()).unwrap_or(0))
}

/// Runs the queue's ActivityPub delivery jobs: one signed POST per attempt, signed afresh each
/// time (a retried delivery carries a new `Date`), with the peer's answer mapped onto the
/// queue's outcomes (`Retry-After` kept).
pub struct Deliveries {
    core: Core,
    client: FetchClient,
}

impl Deliveries {
    pub fn new(core: Core, client: FetchClient) -> Self {
        Self { core, client }
    }

    async fn attempt(&self, job: &Job) -> Outcome {
        let delivery: DeliveryJob = match serde_json::from_str(&job.payload) {
            Ok(delivery) => delivery,
            Err(err) => return Outcome::Dead(format!("unreadable delivery: {err}")),
        };
        match crate::core::partners::policy(&self.core.db).await {
            Ok(policy) if !policy.allows(&delivery.host()) => {
                return Outcome::Dead(format!(
                    "{} is blocked by the partner policy",
                    delivery.host()
                ));
            }
            Ok(_) => {}
            Err(err) => {
                return Outcome::Retry {
                    after: None,
                    error: format!("partner policy: {err}"),
                };
            }
        }
        let mut actor = delivery.key_id.url().clone();
        actor.set_fragment(None);
        let keys = match Id::try_from(actor) {
            Ok(actor) => LocalDirectory::new(self.core.clone()).keys_of(&actor).await,
            Err(err) => Err(err),
        };
        let keys = match keys {
            Ok(keys) => keys,
            Err(err) => {
                return Outcome::Retry {
                    after: None,
                    error: format!("signing key: {err}"),
                };
            }
        };
        match deliver(&self.client, &delivery, &keys, system_time(&self.core)).await {
            DeliveryOutcome::Delivered => Outcome::Done,
            DeliveryOutcome::Retry { after, reason } => Outcome::Retry {
                after,
                error: reason,
            },
            DeliveryOutcome::Gone => {
                // The inbox is gone for good: so are the follows delivered through it.
                let removed = sqlx::query(
                    "DELETE FROM federation_followers WHERE inbox = $1 OR shared_inbox = $1",
                )
                .bind(delivery.inbox.as_str())
                .execute(&self.core.db.pool)
                .await;
                match removed {
                    Ok(_) => self.core.pages.invalidate(),
                    Err(err) => {
                        tracing::warn!(error = %err, "removing the follows of a gone inbox");
                    }
                }
                Outcome::Dead("the inbox is gone (410)".into())
            }
            DeliveryOutcome::Permanent { reason } => Outcome::Dead(reason),
        }
    }
}

impl Handler for Deliveries {
    fn kind(&self) -> &'static str {
        crate::core::followers::DELIVERY_KIND
    }

    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome> {
        Box::pin(self.attempt(job))
    }
}

/// Plain text as the HTML `summary` ActivityPub expects: escaped, paragraphs kept.
pub(crate) fn summary_html(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let escaped = maud::html! { (text) }.into_string();
    let paragraphs: Vec<String> = escaped
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>")))
        .collect();
    Some(paragraphs.concat())
}

/// Local actors' private keys, decoded, by the SHA-256 of their stored PEM.
///
/// Every delivery and signed fetch signs with its actor's key, and decoding one (PEM, then the
/// consistency checks `ring` runs before it signs with a key) costs far more than the
/// signature. The key is still read from the database each time and looked up here by its
/// own text, so a key that moved to another actor or was replaced is never used for the
/// wrong actor.
#[derive(Default)]
pub struct SigningKeys(std::sync::Mutex<HashMap<[u8; 32], ActorKeys>>);

/// Decoded keys kept at most; past that the memo starts over.
const SIGNING_KEYS_CAPACITY: usize = 10_000;

impl SigningKeys {
    /// The decoded keys of `private_pem`, decoded now if they were not before.
    pub fn read(&self, private_pem: &str) -> FedResult<ActorKeys> {
        let digest: [u8; 32] = Sha256::digest(private_pem.as_bytes()).into();
        if let Some(keys) = self
            .0
            .lock()
            .ok()
            .and_then(|memo| memo.get(&digest).cloned())
        {
            return Ok(keys);
        }
        let keys = ActorKeys::from_private_pem(private_pem)?;
        if let Ok(mut memo) = self.0.lock() {
            if memo.len() >= SIGNING_KEYS_CAPACITY {
                memo.clear();
            }
            memo.insert(digest, keys.clone());
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys are found by their own text: each PEM reads as its own key pair, also after the
    /// other was read, and a bad one is refused rather than remembered.
    #[test]
    fn signing_keys_are_read_by_their_own_text() -> anyhow::Result<()> {
        let one = ActorKeys::generate()?;
        let two = ActorKeys::generate()?;
        let memo = SigningKeys::default();
        for _ in 0..2 {
            for keys in [&one, &two] {
                let read = memo.read(&keys.private_key_pem()?)?;
                assert_eq!(read.public_key_pem(), keys.public_key_pem());
            }
        }
        assert!(memo.read("not a key").is_err());
        assert_eq!(memo.0.lock().map(|m| m.len()).unwrap_or_default(), 2);
        Ok(())
    }

    #[test]
    fn actor_paths_are_exactly_the_actor_pages() {
        assert_eq!(ActorPath::parse("/actor"), Some(ActorPath::Instance));
        assert_eq!(
            ActorPath::parse("/people/olive"),
            Some(ActorPath::Person("olive".into()))
        );
        assert_eq!(
            ActorPath::parse("/spaces/book-club"),
            Some(ActorPath::Space("book-club".into()))
        );
        assert_eq!(
            ActorPath::parse("/spaces/book-club/rooms/lobby"),
            Some(ActorPath::Room {
                space: "book-club".into(),
                room: "lobby".into()
            })
        );
        for not_actor in [
            "/",
            "/spaces",
            "/spaces/",
            "/spaces/book-club/",
            "/spaces/book-club/members",
            "/spaces/book-club/rooms",
            "/spaces/book-club/rooms/lobby/edit",
            "/people//x",
            "/actor/x",
        ] {
            assert_eq!(ActorPath::parse(not_actor), None, "{not_actor}");
        }
    }

    #[test]
    fn summaries_are_escaped_html() {
        assert_eq!(
            summary_html("We read <b>books</b>.\n\nAnd talk."),
            Some("<p>We read &lt;b&gt;books&lt;/b&gt;.</p><p>And talk.</p>".into())
        );
        assert_eq!(summary_html("  "), None);
    }
}
