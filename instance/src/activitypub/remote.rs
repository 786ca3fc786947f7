//! Remote actors, fetched once and kept: the [`KeySource`] the inbox and signed GETs verify with.
//!
//! Verifying a delivery needs the sender's public key, which lives in its actor document on
//! its server. Fetching it for every POST would double the traffic between two instances and
//! put the other server's latency into every delivery, so each actor fetched is stored in
//! `federation_remote_actors` (shared by every process on the database) and reused:
//! - for [`STALE_AFTER`] (a day) after it was fetched, then fetched again on next use;
//! - until a signature fails with the stored key: then the federation crate's
//!   [`authenticate`](convene_federation::receive::authenticate) asks once more with
//!   `refresh`, the document is fetched again, and the check is retried with what it says now
//!   (the sender rotated its key). A key that still fails is refused (401).
//!
//! Fetches are signed by the instance actor, whose keys are read once per process
//! ([`Federation::instance_signer`]), so servers in authorized-fetch mode answer them.
//!
//! Each process also keeps the actors it has read in memory ([`KnownActors`]), with their
//! decoded keys and the time their document was fetched: an inbox delivery then costs no
//! query, no JSON parse and no PEM decoding (which alone costs about as much as verifying the
//! signature) for its signer. The copy in memory follows the same rules as the row: it is
//! used while fresh by the instance's clock, and a signature that fails with it makes the
//! document be fetched again. So a key rotated and fetched by another process sharing the
//! database costs this one a fetch of its own, not a refusal.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use convene_federation::directory::KeySource;
use convene_federation::protocol::Id;
use convene_federation::protocol::actor::Actor;
use convene_federation::receive::FetchKeySource;
use convene_federation::signature::RemoteKey;
use sqlx::Row;

use super::{FedResult, Federation};
use crate::core::Core;

/// Seconds a stored actor is used before it is fetched again.
pub const STALE_AFTER: i64 = 86_400;

/// Actors kept in memory at most; past that the memo starts over (the table still holds every
/// actor, so that costs one read and one decode per sender).
const KNOWN_CAPACITY: usize = 10_000;

/// Remote actors by key id: from the table while fresh, else fetched (and stored).
pub struct RemoteActors {
    core: Core,
    federation: Federation,
    fetcher: FetchKeySource,
}

impl RemoteActors {
    /// The cache as this process sees it; reads the instance actor's keys on first use.
    pub async fn new(core: Core, federation: Federation) -> FedResult<Self> {
        let signer = federation.instance_signer(&core).await?;
        let fetcher = FetchKeySource {
            client: federation.client.clone(),
            signer: Some(signer),
        };
        Ok(Self {
            core,
            federation,
            fetcher,
        })
    }

    /// The actor that owns `key_id`: the stored document while it is fresh, unless `refresh`;
    /// else fetched, checked (the key is the actor's own) and stored.
    pub async fn actor(&self, key_id: &Id, refresh: bool) -> FedResult<Actor> {
        Ok(self.known(key_id, refresh).await?.actor.clone())
    }

    /// [`FetchKeySource::fetch_actor`]'s answer, from the stored copy while it is fresh: what
    /// the inbox's use cases call for the signer's document (its inboxes, its name).
    pub async fn fetch_actor(&self, key_id: &Id) -> FedResult<Actor> {
        self.actor(key_id, false).await
    }

    /// The actor and its decoded key: from memory, else the table, else fetched.
    async fn known(&self, key_id: &Id, refresh: bool) -> FedResult<Arc<Known>> {
        let fresh_since = self.core.db.now() - STALE_AFTER;
        if !refresh {
            if let Some(known) = self.remembered(key_id, fresh_since) {
                return Ok(known);
            }
            if let Some((actor, fetched_at)) = self.stored(key_id, fresh_since).await? {
                return self.remember(actor, fetched_at);
            }
        }
        self.federation
            .stats
            .actor_fetches
            .fetch_add(1, Ordering::Relaxed);
        let actor = self.fetcher.fetch_actor(key_id).await?;
        let fetched_at = self.store(&actor).await?;
        self.remember(actor, fetched_at)
    }

    /// The copy in memory, if it was fetched at `fresh_since` or later.
    fn remembered(&self, key_id: &Id, fresh_since: i64) -> Option<Arc<Known>> {
        let memo = self.federation.known_actors.lock().ok()?;
        memo.get(key_id.as_str())
            .filter(|known| known.fetched_at >= fresh_since)
            .cloned()
    }

    /// Keeps `actor` in memory with its key, decoded unless the same key is there already.
    fn remember(&self, actor: Actor, fetched_at: i64) -> FedResult<Arc<Known>> {
        let memo = &self.federation.known_actors;
        let key_id = actor.public_key.id.clone();
        let decoded = memo.lock().ok().and_then(|memo| {
            memo.get(&key_id)
                .filter(|known| {
                    known.key.key().public_key_pem == actor.public_key.public_key_pem
                        && known.key.key().owner == actor.public_key.owner
                })
                .map(|known| known.key.clone())
        });
        let key = match decoded {
            Some(key) => key,
            None => RemoteKey::new(actor.public_key.clone())?,
        };
        let known = Arc::new(Known {
            actor,
            key,
            fetched_at,
        });
        if let Ok(mut memo) = memo.lock() {
            if memo.len() >= KNOWN_CAPACITY && !memo.contains_key(&key_id) {
                memo.clear();
            }
            memo.insert(key_id, known.clone());
        }
        Ok(known)
    }

    /// The stored actor whose document publishes `key_id`, if fetched at `fresh_since` or
    /// later, with the time it was fetched.
    async fn stored(&self, key_id: &Id, fresh_since: i64) -> FedResult<Option<(Actor, i64)>> {
        let db = &self.core.db;
        let row = sqlx::query(
            "SELECT document, fetched_at FROM federation_remote_actors \
             WHERE key_id = $1 AND fetched_at >= $2 ORDER BY fetched_at DESC LIMIT 1",
        )
        .bind(key_id.as_str())
        .bind(fresh_since)
        .fetch_optional(&db.pool)
        .await
        .map_err(storage)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let document: String = row.try_get("document").map_err(storage)?;
        let fetched_at: i64 = row.try_get("fetched_at").map_err(storage)?;
        // A row that no longer reads (a newer shape of the document) is fetched again.
        match Actor::parse(document.as_bytes()) {
            Ok(actor) if actor.public_key.id == key_id.as_str() => Ok(Some((actor, fetched_at))),
            _ => Ok(None),
        }
    }

    /// Stores `actor` as fetched now; when that was.
    async fn store(&self, actor: &Actor) -> FedResult<i64> {
        let now = self.core.db.now();
        let document = serde_json::to_string(actor)
            .map_err(|e| convene_federation::Error::BadJson(e.to_string()))?;
        let shared_inbox = actor
            .endpoints
            .as_ref()
            .and_then(|e| e.shared_inbox.as_ref())
            .map(|i| i.to_string());
        sqlx::query(
            "INSERT INTO federation_remote_actors \
             (actor_id, key_id, inbox, shared_inbox, public_key_pem, document, fetched_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (actor_id) DO UPDATE SET key_id = $2, inbox = $3, shared_inbox = $4, \
             public_key_pem = $5, document = $6, fetched_at = $7",
        )
        .bind(actor.id.as_str())
        .bind(&actor.public_key.id)
        .bind(actor.inbox.as_str())
        .bind(shared_inbox)
        .bind(&actor.public_key.public_key_pem)
        .bind(document)
        .bind(now)
        .execute(&self.core.db.pool)
        .await
        .map_err(storage)?;
        Ok(now)
    }
}

impl KeySource for RemoteActors {
    async fn public_key(&self, key_id: &Id, refresh: bool) -> FedResult<RemoteKey> {
        Ok(self.known(key_id, refresh).await?.key.clone())
    }
}

/// A remote actor as this process last read it.
pub struct Known {
    actor: Actor,
    key: RemoteKey,
    /// When its document was fetched, by the instance's clock.
    fetched_at: i64,
}

/// Remote actors by key id (see the module docs).
pub type KnownActors = Mutex<HashMap<String, Arc<Known>>>;

fn storage(err: sqlx::Error) -> convene_federation::Error {
    tracing::error!(error = %err, "remote actors");
    convene_federation::Error::Directory("storage".into())
}
