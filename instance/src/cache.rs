//! A short-lived, in-process cache of what public pages show: a Space with its Rooms.
//!
//! The Space and Room pages are the instance's busiest reads, and between edits they show
//! the same rows to every visitor. When a Space is announced on the fediverse, hundreds of
//! servers and people ask for it within seconds, so the cache is a [`SingleFlight`]: however
//! many requests arrive when an entry expires, one of them reloads it while the others are
//! served the previous snapshot (within a bounded age) or wait for that one load.
//!
//! Entries are dropped when anything is written through this process (every successful unsafe
//! request calls [`PageCache::invalidate`]; a request that starts after it returns never sees
//! the old rows) and are reloaded after [`Policy::ttl`] regardless, which bounds how stale a
//! page can be when another process sharing the PostgreSQL database (or `convene admin`) made
//! the change. Live presence is never cached: pages rendered from a snapshot are kept per
//! presence count and re-rendered when it changes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;

use crate::db::Db;
use crate::domain::rooms::{self, Room};
use crate::domain::spaces::{self, Space};
use crate::error::{AppError, Result};
pub use crate::single_flight::Policy;
use crate::single_flight::{LoadError, SingleFlight, Stats};

/// How long an entry is served without being reloaded, by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);
/// How long past its lifetime an entry may be served while one request reloads it, by default.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(10);
/// Spaces kept at most, by default.
pub const DEFAULT_MAX_ENTRIES: usize = 1024;

/// The cache's policy when no setting says otherwise.
pub const DEFAULT_POLICY: Policy = Policy {
    ttl: DEFAULT_TTL,
    max_stale: DEFAULT_MAX_STALE,
    max_entries: DEFAULT_MAX_ENTRIES,
};

/// A page rendered once from a snapshot and served to every anonymous visitor whose view of it
/// is the same (same presence counts, same stage), with its validator.
#[derive(Clone, Debug)]
pub struct RenderedPage {
    /// A digest of what the page shows besides the snapshot (presence, stage): the page is
    /// reused only while that is unchanged.
    pub inputs: u64,
    pub body: Bytes,
    /// The strong validator of `body`.
    pub etag: HeaderValue,
    /// Byte offsets where a per-visitor value of fixed length (the Room page's CSRF token)
    /// replaces a placeholder; empty when the page holds nothing of the visitor.
    pub holes: Vec<usize>,
    /// The length of each hole: the value written there must be exactly as long.
    pub hole_len: usize,
}

/// A Space as its pages need it.
#[derive(Debug)]
pub struct SpaceSnapshot {
    pub space: Space,
    /// Every Room of the Space, by name; pages filter what a visitor may see.
    pub rooms: Vec<Room>,
    /// Each Room's id at the SFU, in the order of `rooms`, for presence lookups.
    pub media_ids: Vec<String>,
    pub member_count: usize,
    /// Pages rendered from this snapshot for anonymous visitors, by page ("" for the Space
    /// page, a Room's slug for its page). Bounded by the number of Rooms.
    rendered: Mutex<HashMap<String, RenderedPage>>,
}

impl SpaceSnapshot {
    pub fn room(&self, slug: &str) -> Result<&Room> {
        self.rooms
            .iter()
            .find(|r| r.slug.as_str() == slug)
            .ok_or(AppError::NotFound)
    }

    /// The page `which` rendered earlier from this snapshot for the same `inputs`, if any.
    pub fn rendered(&self, which: &str, inputs: u64) -> Option<RenderedPage> {
        let rendered = self.rendered.lock().ok()?;
        rendered.get(which).filter(|p| p.inputs == inputs).cloned()
    }

    /// Keeps a page for [`SpaceSnapshot::rendered`]; only pages that hold nothing of one
    /// visitor (beyond the `holes`) may be kept.
    pub fn keep_rendered(&self, which: &str, page: RenderedPage) {
        if let Ok(mut rendered) = self.rendered.lock() {
            rendered.insert(which.to_string(), page);
        }
    }

    /// The Rooms a visitor sees, with their SFU ids: members all, others the listed ones that
    /// are not members-only.
    pub fn visible_rooms(&self, is_member: bool) -> impl Iterator<Item = (&Room, &str)> {
        self.rooms
            .iter()
            .zip(&self.media_ids)
            .filter(move |(r, _)| is_member || (r.listed && r.access != rooms::Access::Members))
            .map(|(r, id)| (r, id.as_str()))
    }
}

/// A public document that is the same for every client who asks (an actor, a collection,
/// WebFinger, NodeInfo), serialised once per load with its validator. `None` when there is
/// nothing at that address: a burst of requests for it is answered from here too.
#[derive(Debug)]
pub struct Document {
    pub body: Bytes,
    pub etag: HeaderValue,
}

/// Why a document could not be loaded; shared with everyone who waited for that load.
pub type DocumentError = convene_federation::Error;

/// The cache of Space snapshots and public documents, shared by every request of the process.
pub struct PageCache {
    spaces: SingleFlight<String, SpaceSnapshot, AppError>,
    documents: SingleFlight<String, Option<Document>, DocumentError>,
}

impl Default for PageCache {
    fn default() -> Self {
        Self::new(DEFAULT_POLICY)
    }
}

impl PageCache {
    pub fn new(policy: Policy) -> Self {
        Self {
            spaces: SingleFlight::new(policy),
            documents: SingleFlight::new(policy),
        }
    }

    pub fn policy(&self) -> Policy {
        self.spaces.policy()
    }

    /// Hits, stale serves, misses, single-flight waits and loads of the Space snapshots.
    pub fn stats(&self) -> &Stats {
        self.spaces.stats()
    }

    /// Forgets everything: something was written. Once this returns, no request is served a
    /// snapshot read before the call.
    pub fn invalidate(&self) {
        self.spaces.invalidate();
        self.documents.invalidate();
    }

    /// Hits, stale serves, misses, single-flight waits and loads of the public documents.
    pub fn document_stats(&self) -> &Stats {
        self.documents.stats()
    }

    /// The document under `key` (a kind and an address: `actor /spaces/s`): from the cache
    /// when fresh (or being refreshed), else from the one run of `load` that every concurrent
    /// request for it shares.
    pub async fn document<F, Fut>(
        &self,
        key: &str,
        load: F,
    ) -> std::result::Result<Arc<Option<Document>>, Arc<DocumentError>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Option<Document>, DocumentError>> + Send + 'static,
    {
        self.documents
            .get(key, load)
            .await
            .map_err(|err| match err {
                LoadError::Load(err) => err,
                LoadError::Abandoned => Arc::new(convene_federation::Error::Directory(format!(
                    "loading {key} was abandoned"
                ))),
            })
    }

    /// The Space at `slug` with its Rooms: from the cache when fresh (or being refreshed), else
    /// from the one load that every concurrent request for it shares.
    pub async fn space(&self, db: &Db, slug: &str) -> Result<Arc<SpaceSnapshot>> {
        let loaded = self
            .spaces
            .get(slug, || {
                let db = db.clone();
                let slug = slug.to_string();
                async move { load_space(&db, &slug).await }
            })
            .await;
        loaded.map_err(|err| match err {
            LoadError::Load(err) => Arc::try_unwrap(err).unwrap_or_else(|shared| share(&shared)),
            LoadError::Abandoned => {
                AppError::Internal(anyhow::anyhow!("loading Space {slug:?} was abandoned"))
            }
        })
    }

    /// The cache's lines for `/metrics`, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        stats_metrics("page_cache", "Space", self.stats())
            + &stats_metrics("document_cache", "public document", self.document_stats())
    }
}

/// Prometheus lines for one single-flight cache's counters.
fn stats_metrics(prefix: &str, what: &str, s: &Stats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let load_seconds = s.load_micros.load(Relaxed) as f64 / 1e6;
    let mut out = String::new();
    for (name, kind, help, value) in [
        (
            "hits_total",
            "counter",
            format!("Requests served a fresh cached {what}."),
            s.hits.load(Relaxed).to_string(),
        ),
        (
            "stale_total",
            "counter",
            format!("Requests served an expired {what} while one request reloaded it."),
            s.stale.load(Relaxed).to_string(),
        ),
        (
            "misses_total",
            "counter",
            format!("Requests that found no usable {what} and waited for a load."),
            s.misses.load(Relaxed).to_string(),
        ),
        (
            "waits_total",
            "counter",
            "Misses that waited for a load another request had started (single flight).".to_owned(),
            s.waits.load(Relaxed).to_string(),
        ),
        (
            "loads_total",
            "counter",
            format!("Loads of a {what} from the database."),
            s.loads.load(Relaxed).to_string(),
        ),
        (
            "load_errors_total",
            "counter",
            "Loads that failed (unknown addresses included).".to_owned(),
            s.load_errors.load(Relaxed).to_string(),
        ),
        (
            "load_seconds_total",
            "counter",
            format!("Time spent loading each {what} from the database."),
            format!("{load_seconds:.6}"),
        ),
    ] {
        out.push_str(&format!(
            "# HELP convene_{prefix}_{name} {help}\n\
             # TYPE convene_{prefix}_{name} {kind}\n\
             convene_{prefix}_{name} {value}\n"
        ));
    }
    out
}

/// The one database read behind a snapshot: the Space, its Rooms and its member count.
async fn load_space(db: &Db, slug: &str) -> Result<SpaceSnapshot> {
    // How long this load waits for a connection is what a burst costs the pool; /metrics
    // shows it (see `Db::measure_pool_wait`).
    db.measure_pool_wait().await?;
    let space = spaces::by_slug(db, slug).await?;
    let rooms = rooms::visible(db, &space, true).await?;
    let member_count = spaces::member_count(db, &space).await?;
    let media_ids = rooms
        .iter()
        .map(crate::core::gathering::media_room_id)
        .collect();
    Ok(SpaceSnapshot {
        space,
        rooms,
        media_ids,
        member_count,
        rendered: Mutex::new(HashMap::new()),
    })
}

/// The error a waiter of a failed load reports: the same kind as the loader's. Details of
/// internal errors were logged by the loader's caller and are never shown anyway.
fn share(err: &AppError) -> AppError {
    match err {
        AppError::NotFound => AppError::NotFound,
        AppError::Forbidden(message) => AppError::Forbidden(message),
        AppError::Gone(message) => AppError::Gone(message),
        other => AppError::Internal(anyhow::anyhow!("{other}")),
    }
}
