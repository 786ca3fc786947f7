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
//! ([`Federation::instance_signer`]), so servers in authorized-fetch mode answer them. Decoded
//! keys are also kept in memory by key id and PEM: decoding a PEM costs about as much as the
//! verification itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

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

/// Decoded keys kept in memory at most; past that the memo starts over (the table still holds
/// every actor, so that costs one decode per sender).
const DECODED_CAPACITY: usize = 10_000;

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
        if !refresh && let Some(actor) = self.stored(key_id).await? {
            return Ok(actor);
        }
        self.federation
            .stats
            .actor_fetches
            .fetch_add(1, Ordering::Relaxed);
        let actor = self.fetcher.fetch_actor(key_id).await?;
        self.store(&actor).await?;
        Ok(actor)
    }

    /// [`FetchKeySource::fetch_actor`]'s answer, from the stored copy while it is fresh: what
    /// the inbox's use cases call for the signer's document (its inboxes, its name).
    pub async fn fetch_actor(&self, key_id: &Id) -> FedResult<Actor> {
        self.actor(key_id, false).await
    }

    /// The fresh stored actor whose document publishes `key_id`.
    async fn stored(&self, key_id: &Id) -> FedResult<Option<Actor>> {
        let db = &self.core.db;
        let row = sqlx::query(
            "SELECT document FROM federation_remote_actors \
             WHERE key_id = $1 AND fetched_at >= $2 ORDER BY fetched_at DESC LIMIT 1",
        )
        .bind(key_id.as_str())
        .bind(db.now() - STALE_AFTER)
        .fetch_optional(&db.pool)
        .await
        .map_err(storage)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let document: String = row.try_get("document").map_err(storage)?;
        // A row that no longer reads (a newer shape of the document) is fetched again.
        match Actor::parse(document.as_bytes()) {
            Ok(actor) if actor.public_key.id == key_id.as_str() => Ok(Some(actor)),
            _ => Ok(None),
        }
    }

    async fn store(&self, actor: &Actor) -> FedResult<()> {
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
        .bind(self.core.db.now())
        .execute(&self.core.db.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    /// The key, decoded once per process for each (key id, PEM).
    fn decode(&self, actor: Actor) -> FedResult<RemoteKey> {
        let memo = &self.federation.decoded_keys;
        let key_id = actor.public_key.id.clone();
        if let Ok(memo) = memo.lock()
            && let Some(key) = memo.get(&key_id)
            && key.key().public_key_pem == actor.public_key.public_key_pem
            && key.key().owner == actor.public_key.owner
        {
            return Ok(key.clone());
        }
        let key = RemoteKey::new(actor.public_key)?;
        if let Ok(mut memo) = memo.lock() {
            if memo.len() >= DECODED_CAPACITY {
                memo.clear();
            }
            memo.insert(key_id, key.clone());
        }
        Ok(key)
    }
}

impl KeySource for RemoteActors {
    async fn public_key(&self, key_id: &Id, refresh: bool) -> FedResult<RemoteKey> {
        let actor = self.actor(key_id, refresh).await?;
        self.decode(actor)
    }
}

/// Decoded remote keys by key id (see the module docs).
pub type DecodedKeys = Mutex<HashMap<String, RemoteKey>>;

fn storage(err: sqlx::Error) -> convene_federation::Error {
    tracing::error!(error = %err, "remote actors");
    convene_federation::Error::Directory("storage".into())
}
