//! A keyed, in-process cache whose loads are single-flight: however many requests want an
//! entry at once, one load runs.
//!
//! Why: a Space announced on the fediverse is fetched by hundreds of servers and people within
//! seconds. A plain time-to-live cache lets every request in flight miss together when an entry
//! expires, and each of them then queues for the database pool with the same queries; the
//! latency of the whole burst becomes the pool's queue. Here, for each key:
//!
//! - a *fresh* entry (younger than [`Policy::ttl`]) is served as is (a hit);
//! - an entry past its lifetime but younger than `ttl + max_stale` is served as is (a stale
//!   serve) while one background load replaces it (stale-while-revalidate), so no request waits;
//! - with no usable entry (never loaded, too old, or invalidated), the first request starts the
//!   load and every other request waits for that same load (a single-flight wait).
//!
//! Writes call [`SingleFlight::invalidate`], which bumps a generation number. Every entry and
//! every load is tagged with the generation read *before* its load started, and a request only
//! accepts entries and joins loads of its own generation or later, so once `invalidate` has
//! returned no request is served data read before it (the write it follows is visible), and
//! stale serving never crosses a write.
//!
//! Loads run in their own task, not in the request that started them: a visitor who closes the
//! tab must not cancel the load 200 others are waiting for, and a stale serve must return at
//! once. Errors are shared with the waiters of that load but never stored, so the next request
//! tries again. The type is generic so that every public read that bursts (Space snapshots
//! today; actor JSON, WebFinger and NodeInfo once federation lands) can use one mechanism and
//! show up in `/metrics` the same way.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long entries live and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long an entry is served without reloading it.
    pub ttl: Duration,
    /// How long past `ttl` an entry may still be served while it is being reloaded. Bounds how
    /// old a served value can be: `ttl + max_stale` (plus one load's duration).
    pub max_stale: Duration,
    /// Entries kept at most; beyond it the entries with no load in flight are dropped (a cheap
    /// bound against key probing, such as requests for made-up slugs).
    pub max_entries: usize,
}

/// What a caller gets when the value could not be loaded.
#[derive(Debug)]
pub enum LoadError<E> {
    /// The loader's own error, shared with everyone who waited for that load.
    Load(Arc<E>),
    /// The load ended without an answer (its task panicked or the runtime is shutting down).
    Abandoned,
}

/// Counters for `/metrics`, all since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests served a fresh entry.
    pub hits: AtomicU64,
    /// Requests served an entry past its lifetime while it was being reloaded.
    pub stale: AtomicU64,
    /// Requests that found no usable entry and waited for a load.
    pub misses: AtomicU64,
    /// Of the misses, those that joined a load another request had started.
    pub waits: AtomicU64,
    /// Loads started: each is one run of the loader, the only path to the database.
    pub loads: AtomicU64,
    /// Loads that failed.
    pub load_errors: AtomicU64,
    /// Total time spent in loads, in microseconds.
    pub load_micros: AtomicU64,
}

type Outcome<V, E> = Option<Result<Arc<V>, Arc<E>>>;

struct Stored<V> {
    value: Arc<V>,
    generation: u64,
    loaded: Instant,
}

struct Flight<V, E> {
    id: u64,
    generation: u64,
    done: watch::Receiver<Outcome<V, E>>,
}

struct Slot<V, E> {
    stored: Option<Stored<V>>,
    flight: Option<Flight<V, E>>,
}

struct Inner<K, V, E> {
    policy: Policy,
    generation: AtomicU64,
    next_flight: AtomicU64,
    slots: Mutex<HashMap<K, Slot<V, E>>>,
    stats: Stats,
}

impl<K, V, E> Inner<K, V, E> {
    fn slots(&self) -> MutexGuard<'_, HashMap<K, Slot<V, E>>> {
        // Nothing panics while holding the lock; if something ever did, the map is still a
        // valid map, so carry on with it.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A keyed cache with single-flight loads; cheap to clone (clones share everything).
pub struct SingleFlight<K, V, E> {
    inner: Arc<Inner<K, V, E>>,
}

impl<K, V, E> Clone for SingleFlight<K, V, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// What a request does, decided under the lock and carried out after it.
enum Plan<V, E> {
    Serve(Arc<V>),
    Wait(watch::Receiver<Outcome<V, E>>),
}

/// Removes a finished (or abandoned) load from its slot, whatever way its task ends.
struct FlightGuard<K: Eq + Hash, V, E> {
    inner: Arc<Inner<K, V, E>>,
    key: K,
    id: u64,
}

impl<K: Eq + Hash, V, E> Drop for FlightGuard<K, V, E> {
    fn drop(&mut self) {
        let mut slots = self.inner.slots();
        if let Some(slot) = slots.get_mut(&self.key) {
            if slot.flight.as_ref().is_some_and(|f| f.id == self.id) {
                slot.flight = None;
            }
            if slot.flight.is_none() && slot.stored.is_none() {
                slots.remove(&self.key);
            }
        }
    }
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub fn new(policy: Policy) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy,
                generation: AtomicU64::new(0),
                next_flight: AtomicU64::new(0),
                slots: Mutex::new(HashMap::new()),
                stats: Stats::default(),
            }),
        }
    }

    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Forgets every entry: something was written. Returns once no later request can be
    /// served anything loaded before the call.
    pub fn invalidate(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The value for `key`: fresh or stale-while-revalidating from the cache, or from one load
    /// shared by every request that asks meanwhile. `load` is called only when this request
    /// starts that load; the future it returns runs in a task of its own.
    pub async fn get<Q, F, Fut>(&self, key: &Q, load: F) -> Result<Arc<V>, LoadError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let inner = &self.inner;
        let stats = &inner.stats;
        // Read before looking: anything tagged with this generation or later was loaded after
        // every write whose invalidation had returned by now.
        let generation = inner.generation.load(Ordering::SeqCst);
        let now = Instant::now();
        let plan = {
            let mut slots = inner.slots();
            if !slots.contains_key(key) {
                if slots.len() >= inner.policy.max_entries {
                    // Keep only what others are waiting for; everything else reloads on demand.
                    slots.retain(|_, slot| slot.flight.is_some());
                }
                slots.insert(
                    key.to_owned(),
                    Slot {
                        stored: None,
                        flight: None,
                    },
                );
            }
            let Some(slot) = slots.get_mut(key) else {
                // Inserted just above, under the same lock.
                return Err(LoadError::Abandoned);
            };
            let usable = slot
                .stored
                .as_ref()
                .filter(|s| s.generation >= generation)
                .map(|s| (s.value.clone(), now.saturating_duration_since(s.loaded)));
            let flying = slot
                .flight
                .as_ref()
                .filter(|f| f.generation >= generation)
                .map(|f| f.done.clone());
            match (usable, flying) {
                (Some((value, age)), _) if age < inner.policy.ttl => {
                    stats.hits.fetch_add(1, Ordering::Relaxed);
                    Plan::Serve(value)
                }
                (Some((value, age)), flying)
                    if age < inner.policy.ttl.saturating_add(inner.policy.max_stale) =>
                {
                    stats.stale.fetch_add(1, Ordering::Relaxed);
                    if flying.is_none() {
                        // Nobody is reloading it yet: this request starts the reload and does
                        // not wait for it.
                        let _ = self.start(slot, key.to_owned(), generation, load);
                    }
                    Plan::Serve(value)
                }
                (_, Some(done)) => {
                    stats.misses.fetch_add(1, Ordering::Relaxed);
                    stats.waits.fetch_add(1, Ordering::Relaxed);
                    Plan::Wait(done)
                }
                (_, None) => {
                    stats.misses.fetch_add(1, Ordering::Relaxed);
                    Plan::Wait(self.start(slot, key.to_owned(), generation, load))
                }
            }
        };
        match plan {
            Plan::Serve(value) => Ok(value),
            Plan::Wait(mut done) => {
                let outcome = done
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| LoadError::Abandoned)?;
                match &*outcome {
                    Some(Ok(value)) => Ok(value.clone()),
                    Some(Err(err)) => Err(LoadError::Load(err.clone())),
                    None => Err(LoadError::Abandoned),
                }
            }
        }
    }

    /// Starts a load for `key` in its own task and records it in `slot` (the lock is held).
    fn start<F, Fut>(
        &self,
        slot: &mut Slot<V, E>,
        key: K,
        generation: u64,
        load: F,
    ) -> watch::Receiver<Outcome<V, E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let inner = self.inner.clone();
        let id = inner.next_flight.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        slot.flight = Some(Flight {
            id,
            generation,
            done: rx.clone(),
        });
        let future = load();
        let guard = FlightGuard { inner, key, id };
        tokio::spawn(async move {
            let stats = &guard.inner.stats;
            stats.loads.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = future.await.map(Arc::new).map_err(Arc::new);
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            stats.load_micros.fetch_add(micros, Ordering::Relaxed);
            match &result {
                Ok(value) => {
                    let mut slots = guard.inner.slots();
                    if let Some(slot) = slots.get_mut(&guard.key)
                        && slot
                            .stored
                            .as_ref()
                            .is_none_or(|s| s.generation <= generation)
                    {
                        slot.stored = Some(Stored {
                            value: value.clone(),
                            generation,
                            loaded: started,
                        });
                    }
                }
                Err(_) => {
                    stats.load_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Out of the slot before the answer goes out, so a request that arrives after it
            // finds the stored value rather than a finished load.
            drop(guard);
            let _ = tx.send(Some(result));
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Semaphore;

    use super::*;

    fn policy(ttl_ms: u64, stale_ms: u64) -> Policy {
        Policy {
            ttl: Duration::from_millis(ttl_ms),
            max_stale: Duration::from_millis(stale_ms),
            max_entries: 16,
        }
    }

    /// A loader that counts its runs and answers once `gate` gives it a permit.
    fn loader(
        runs: &Arc<AtomicUsize>,
        gate: &Arc<Semaphore>,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<usize, String>> + Send>> + use<>
    {
        let runs = runs.clone();
        let gate = gate.clone();
        move || {
            Box::pin(async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                // The gate is never closed, so acquiring fails only if the test is over.
                if let Ok(permit) = gate.acquire().await {
                    permit.forget();
                }
                Ok(n)
            })
        }
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load() -> Result<(), String> {
        let cache: SingleFlight<String, usize, String> = SingleFlight::new(policy(60_000, 0));
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let key = "k".to_string();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = cache.clone();
            let load = loader(&runs, &gate);
            let key = key.clone();
            tasks.push(tokio::spawn(async move { cache.get(&key, load).await }));
        }
        // Let every request reach the cache before the load answers.
        while cache.stats().misses.load(Ordering::SeqCst) < 50 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        for task in tasks {
            let value = task.await.map_err(|e| e.to_string())?;
            assert_eq!(value.map(|v| *v).map_err(|_| "load failed")?, 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().waits.load(Ordering::SeqCst), 49);
        Ok(())
    }

    #[tokio::test]
    async fn an_expired_entry_is_served_stale_while_one_request_reloads_it() {
        let cache: SingleFlight<u8, usize, String> = SingleFlight::new(policy(20, 60_000));
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let first = cache.get(&1, loader(&runs, &gate));
        let opener = async {
            while runs.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            gate.add_permits(1);
        };
        let (first, ()) = tokio::join!(first, opener);
        assert_eq!(first.ok().map(|v| *v), Some(1));
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Expired: every request is answered at once with the old value, one reload starts.
        for _ in 0..20 {
            let value = cache.get(&1, loader(&runs, &gate)).await;
            assert_eq!(value.ok().map(|v| *v), Some(1));
        }
        assert_eq!(cache.stats().stale.load(Ordering::SeqCst), 20);
        while runs.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        // Once the reload lands, the new value is served fresh.
        let mut value = 1;
        for _ in 0..1000 {
            value = cache
                .get(&1, loader(&runs, &gate))
                .await
                .map(|v| *v)
                .unwrap_or(0);
            if value == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(value, 2);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn invalidation_is_never_answered_with_older_data() {
        let cache: SingleFlight<u8, usize, String> = SingleFlight::new(policy(60_000, 60_000));
        let version = Arc::new(AtomicUsize::new(1));
        let read = |version: &Arc<AtomicUsize>| {
            let version = version.clone();
            move || async move { Ok::<_, String>(version.load(Ordering::SeqCst)) }
        };
        assert_eq!(
            cache.get(&1, read(&version)).await.ok().map(|v| *v),
            Some(1)
        );
        version.store(2, Ordering::SeqCst);
        // Not invalidated: the cached value stands.
        assert_eq!(
            cache.get(&1, read(&version)).await.ok().map(|v| *v),
            Some(1)
        );
        cache.invalidate();
        // Invalidated: neither fresh nor stale serving may answer with version 1.
        assert_eq!(
            cache.get(&1, read(&version)).await.ok().map(|v| *v),
            Some(2)
        );
        assert_eq!(cache.stats().stale.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn errors_reach_the_waiters_and_are_not_kept() {
        let cache: SingleFlight<u8, usize, String> = SingleFlight::new(policy(60_000, 0));
        let failing = || async { Err::<usize, _>("no such thing".to_string()) };
        match cache.get(&1, failing).await {
            Err(LoadError::Load(err)) => assert_eq!(err.as_str(), "no such thing"),
            other => panic!("expected the load's error, got {other:?}"),
        }
        let working = || async { Ok::<_, String>(7) };
        assert_eq!(cache.get(&1, working).await.ok().map(|v| *v), Some(7));
        assert_eq!(cache.stats().loads.load(Ordering::SeqCst), 2);
        assert_eq!(cache.stats().load_errors.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_entry_bound_holds() {
        let cache: SingleFlight<u32, u32, String> = SingleFlight::new(Policy {
            max_entries: 4,
            ..policy(60_000, 0)
        });
        for k in 0..100 {
            let _ = cache
                .get(&k, move || async move { Ok::<_, String>(k) })
                .await;
        }
        assert!(cache.inner.slots().len() <= 4);
    }
}
