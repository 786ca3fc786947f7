//! Starting and stopping an instance: the shared [`AppState`] and the [`Instance`] handle that
//! `convene serve` and the end-to-end tests use alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use rand::RngCore;
use sqlx::Row;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::Settings;
use crate::core::Core;
use crate::db::Db;
use crate::jobs::{Queue, QueueConfig, Worker};
use crate::mail::Mailer;
use crate::shutdown::{self, Trigger};

/// Everything handlers share. One `Arc` inside, so the many clones a request makes (one per
/// extractor and layer) cost one atomic increment each.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds: the [`Core`] that use cases work with (its fields read through
/// `Deref`: `state.db`, `state.settings`, ...), plus what only the HTTP doors need.
pub struct Shared {
    pub core: Core,
    /// The instance's SFU, where Rooms gather (the same handle as the core's).
    pub sfu: convene_media::Sfu,
    /// Key for CSRF tokens; kept in the database so forms survive a restart.
    pub csrf_key: Arc<[u8; 32]>,
    pub metrics: Arc<Metrics>,
    /// Outbound federation HTTP (key fetches, deliveries) and the inbox's replay guard.
    pub federation: crate::activitypub::Federation,
}

impl std::ops::Deref for Shared {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

/// Counters exported at `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Joins refused at the signaling door (spent or unknown grant, access lost).
    pub joins_refused: AtomicU64,
}

/// A running instance.
pub struct Instance {
    pub addr: SocketAddr,
    pub state: AppState,
    trigger: Trigger,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl AppState {
    /// Connects and migrates the database and loads the instance's secrets.
    pub async fn new(settings: Settings) -> anyhow::Result<Self> {
        Self::with_clock(settings, Clock::system()).await
    }

    /// Like [`AppState::new`], reading time from `clock` (tests hold it and advance it).
    pub async fn with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        // One TLS crypto provider for everything (SMTP, PostgreSQL, outbound HTTP). Installing
        // it twice (tests start many instances) is harmless, so the error is ignored.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut db = Db::connect_with(&settings.database_url, settings.db_max_connections).await?;
        db.clock = clock;
        db.migrate().await?;
        match crate::core::handles::clashes(&db).await {
            Ok(clashes) if !clashes.is_empty() => tracing::warn!(
                count = clashes.len(),
                names = ?clashes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
                "names held by both a Passport and a Space; \
                 `convene admin federation clashes --resolve` renames the later of each"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "checking for handle clashes"),
        }
        let csrf_key = secret(&db, "csrf_key").await?;
        let media_key = secret(&db, "media_key").await?;
        let queue = Queue::new(
            db.clone(),
            QueueConfig {
                lease: settings.queue_lease,
                ..QueueConfig::default()
            },
        );
        let mailer = Mailer::new(&settings, queue.clone())?;
        mailer
            .adopt_pending()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let sfu = convene_media::Sfu::new(convene_media::SfuConfig {
            udp_port_min: settings.media_udp_ports.0,
            udp_port_max: settings.media_udp_ports.1,
            media_threads: settings.media_threads,
            public_ip: settings.media_public_ip,
            bind_ip: settings.media_bind_ip,
            ice_servers: settings.ice_servers()?,
            token_key: convene_media::TokenKey::from_bytes(media_key),
            max_participants_default: u32::try_from(crate::domain::rooms::MAX_CAPACITY)
                .unwrap_or(100),
            media_grace: convene_media::sfu::MEDIA_GRACE,
        })?;
        let pages = Arc::new(crate::cache::PageCache::new(settings.page_cache));
        let (node_url, node_lease) = (settings.node_url.clone(), settings.gathering_lease_seconds);
        let federation = crate::activitypub::Federation::new(&settings)?;
        Ok(Self(Arc::new(Shared {
            core: Core {
                db,
                settings: Arc::new(settings),
                mailer,
                queue,
                sfu: Some(sfu.clone()),
                pages,
                node: Arc::new(crate::core::gathering::Node::new(&node_url, node_lease)),
                key_making: Arc::default(),
                signing_keys: Arc::default(),
            },
            sfu,
            csrf_key: Arc::new(csrf_key),
            metrics: Arc::new(Metrics::default()),
            federation,
        })))
    }
}

impl Instance {
    /// Binds `settings.listen` and serves until [`Instance::shutdown`].
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        Self::start_on(settings, listener).await
    }

    /// Serves on an already bound listener (tests bind port 0 first to learn the port).
    pub async fn start_on(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        Self::start_with_clock(settings, listener, Clock::system()).await
    }

    /// Serves on `listener` with time read from `clock`.
    pub async fn start_with_clock(
        settings: Settings,
        listener: TcpListener,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let state = AppState::with_clock(settings, clock).await?;
        let (trigger, signal) = shutdown::channel();
        let workers = vec![
            // Every job kind's handler is registered here; federation deliveries join the mailer.
            Worker::new(state.queue.clone())
                .handle(Arc::new(state.mailer.clone()))
                .handle(Arc::new(crate::activitypub::Deliveries::new(
                    state.core.clone(),
                    state.federation.client.clone(),
                )))
                .spawn(signal.clone()),
            spawn_housekeeping(state.db.clone(), signal.clone()),
            crate::governance::spawn_worker(state.core.clone(), signal.clone()),
            crate::core::gathering::spawn_reconciler(state.core.clone(), signal.clone()),
            crate::core::followers::spawn_head_count_announcer(state.core.clone(), signal.clone()),
        ];
        let app = crate::http::router(state.clone());
        let mut server_signal = signal;
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { server_signal.wait().await })
            .await
        });
        tracing::info!(
            %addr,
            public_url = %state.settings.public_url,
            database = ?state.db.dialect,
            "{}",
            state.mailer.describe()
        );
        Ok(Self {
            addr,
            state,
            trigger,
            server,
            workers,
        })
    }

    /// Stops accepting connections, lets requests in flight finish, stops the workers and
    /// closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.trigger.fire();
        self.server.await.context("server task")??;
        for worker in self.workers {
            worker.await.context("worker task")?;
        }
        self.state.db.close().await;
        Ok(())
    }

    /// Waits for the server to end by itself (it does not, unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.server).await.context("server task")??;
        Ok(())
    }
}

/// Reads a 32-byte secret from `instance_settings`, creating it on first use.
async fn secret(db: &Db, key: &str) -> anyhow::Result<[u8; 32]> {
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    let hex: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
    sqlx::query(
        "INSERT INTO instance_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(&hex)
    .execute(&db.pool)
    .await?;
    let stored: String = sqlx::query("SELECT value FROM instance_settings WHERE key = $1")
        .bind(key)
        .fetch_one(&db.pool)
        .await?
        .try_get("value")?;
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = stored
            .get(i * 2..i * 2 + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .with_context(|| format!("instance secret {key} is corrupt"))?;
    }
    Ok(out)
}

/// Deletes expired sessions, codes, old access attempts and old activity ids every ten
/// minutes.
fn spawn_housekeeping(db: Db, mut shutdown: shutdown::Signal) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(err) = crate::domain::auth::sweep(&db).await {
                tracing::warn!(error = %err, "housekeeping: sessions");
            }
            if let Err(err) = crate::core::accounts::sweep(&db).await {
                tracing::warn!(error = %err, "housekeeping: sign-in mail counts");
            }
            if let Err(err) = crate::domain::rooms::sweep_attempts(&db).await {
                tracing::warn!(error = %err, "housekeeping: access attempts");
            }
            match crate::core::followers::sweep_seen(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(forgotten = n, "housekeeping: old activity ids"),
                Err(err) => tracing::warn!(error = %err, "housekeeping: activity ids"),
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
                () = shutdown.wait() => break,
            }
        }
    })
}
