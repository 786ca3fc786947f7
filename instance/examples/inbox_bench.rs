//! Inbound federation through the whole instance: signed activities POSTed to the shared inbox
//! of a real instance, verified **and processed** (rate limit, partner policy, the stored
//! remote actor, the signature, the seen-activities table, the core's use case and its
//! transaction), beside OpenSSL's raw RSA-2048 verify rate measured in the same run.
//!
//! Run: `cargo run --release -p convene --example inbox_bench [-- ACTIVITIES]` (default 6,000).
//! PostgreSQL is measured too when `CONVENE_BENCH_POSTGRES_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`): a fresh database is created beside it and
//! dropped afterwards. Needs the `openssl` command.
//!
//! What runs, all on loopback in this process:
//! - the instance (`Instance::start_on`, its own tokio runtime, threads named `instance`), with
//!   a public Space `commons`; the per-instance inbox rate limit is off (the bench floods from
//!   four hosts, which the limiter would rightly slow to 5 deliveries a second each) and
//!   private addresses are allowed (the peers are on loopback);
//! - four remote instances (`localhost:PORT`, one HTTP server each, on a second runtime whose
//!   threads are named `bench-load`) serving 64 Person actors each; their documents are
//!   fetched by the instance on first use and then read from its `federation_remote_actors`
//!   table (the bench checks that each was fetched exactly once). The 256 actors share 16
//!   RSA-2048 keys (generating 256 takes minutes; each actor still has its own key id, so the
//!   instance decodes and verifies exactly as with 256 keys). The same servers take the
//!   instance's `Accept`s, which its delivery worker sends while the bench runs;
//! - a client on the second runtime that POSTs the pre-signed activities, 64 in flight, each
//!   actor's activities in order (as a sending instance's queue delivers them). Before it
//!   starts, the Space's actor document is fetched once, as a server does before it follows
//!   a Space, and the instance actor's: serving them makes their key pairs, one-time work
//!   that is not part of the measurement.
//!
//! The mix per actor: a `Follow` of the Space, `Create`s of Notes, an `Update` of one, a
//! redelivery of the Follow and of a Create (same id, signed a second earlier, so not a
//! replayed signature: the instance answers 202 and changes nothing), and for one actor in
//! four an `Undo` of its Follow. Every answer must be 202; afterwards the Space must have one
//! accepted follower per actor that did not undo, and the seen-activities table one row per
//! distinct activity id.
//!
//! Then, on the same instance, **the fan-out**: the Space's followers are replaced by 1,000 on
//! 50 more remote instances (20 each, all behind their instance's shared inbox), and an owner
//! creates a listed Room three times in a row through the core's use case, as the web page
//! does. Each creation is announced to the followers through the instance's durable queue:
//! the delivery jobs are written with the Room, and the delivery worker signs and sends them.
//! Each remote instance verifies every signature with the Space's key (read from its actor
//! document, as a follower's server does). Measured per announcement: from the call until
//! every one of the 50 instances has verified as many deliveries of it as any other and the
//! queue holds no unfinished job.
//!
//! Reported: activities/s over the whole run (first request to last answer), p50/p99 latency,
//! and the instance's CPU time per activity: the process's CPU time minus the `bench-load`
//! threads' (so the client and the peers are not counted; PostgreSQL's own processes are not
//! either, SQLite's work is, as it runs in the instance's threads).

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use convene::app::Instance;
use convene::config::{ConfigArgs, FileConfig, Settings};
use convene::domain::passports::{self, NewPassport};
use convene::domain::rooms::{Access, RoomFields};
use convene::domain::spaces::{self, SpaceFields};
use convene::domain::values::{DisplayName, Email, Handle, Slug};
use convene_federation::ActorKeys;
use convene_federation::protocol::Id;
use convene_federation::protocol::actor::{Actor, ActorKind, LocalActor};
use convene_federation::protocol::context::{ACTIVITY_CONTENT_TYPE, with_context};
use convene_federation::signature::{
    InboundRequest, MemoryReplayGuard, PublicKey, RemoteKey, sign_request, verify_request,
};
use serde_json::json;
use sqlx::Row;
use url::Url;

/// Remote instances, actors on each, keys shared among the actors, requests in flight.
const PEERS: usize = 4;
const ACTORS_PER_PEER: usize = 64;
const KEYS: usize = 16;
const IN_FLIGHT: usize = 64;
const AS_CONTEXT: &str = "https://www.w3.org/ns/activitystreams";
const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";
/// Name prefix of the load side's threads, whose CPU time is not the instance's.
const LOAD_THREADS: &str = "bench-load";
/// The fan-out: remote instances, followers behind each, announcements timed.
const FAN_OUT_INSTANCES: usize = 50;
const FOLLOWERS_PER_INSTANCE: usize = 20;
const ANNOUNCEMENTS: usize = 3;

/// The allocator `convene` itself uses, so the instance here behaves as the binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One remote actor: its id, key id and which of the shared keys it signs with.
#[derive(Clone)]
struct RemoteActor {
    id: String,
    key: usize,
}

/// A POST ready to send: signed headers and body.
struct Signed {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// What one backend's run gave.
struct Run {
    activities: usize,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    followers: i64,
    seen: i64,
    fetches: u64,
    accepts_delivered: u64,
    /// Each announcement's time until every follower's instance had it.
    fan_out: Vec<Duration>,
    /// Deliveries each instance verified per announcement.
    fan_out_deliveries: u64,
}

fn main() -> anyhow::Result<()> {
    let activities: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("ACTIVITIES must be a number")?,
        None => 6_000,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `CONVENE_BENCH_LOG=info` shows the instance's logs (why an activity was refused).
    if let Ok(filter) = std::env::var("CONVENE_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let openssl = openssl_verify_rate()?;
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(LOAD_THREADS)
        // Its blocking threads (key generation, signing) must outlive the measurement, or
        // their CPU time would move to the instance's side of the account when they exit.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()?;
    let server = tokio::runtime::Builder::new_multi_thread()
        .thread_name("instance")
        .enable_all()
        .build()?;
    let keys = load.block_on(generate_keys())?;

    let mut backends = vec![("SQLite", None)];
    if let Ok(url) = std::env::var("CONVENE_BENCH_POSTGRES_URL") {
        backends.push(("PostgreSQL", Some(url)));
    }
    let mut rows = Vec::new();
    for (name, postgres) in backends {
        let run = measure(&server, &load, &keys, postgres, activities)
            .with_context(|| format!("the {name} run"))?;
        rows.push((name, run));
    }

    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "openssl speed -seconds 3 rsa2048: {openssl:.0} verify/s; load average {}",
        load_average
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| database | activities | activities/s | share of raw verify | p50 ms | p99 ms | \
         instance CPU µs/activity | followers | seen ids | actor fetches | Accepts delivered |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, run) in &rows {
        println!(
            "| {name} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {:.0} | {} | {} | {} | {} |",
            run.activities,
            run.rate,
            run.rate / openssl,
            run.p50_ms,
            run.p99_ms,
            run.cpu_us,
            run.followers,
            run.seen,
            run.fetches,
            run.accepts_delivered,
        );
    }
    println!(
        "({IN_FLIGHT} in flight, {PEERS} remote instances, {} actors)",
        PEERS * ACTORS_PER_PEER
    );
    println!();
    println!(
        "| database | one Room announced to {} followers on {FAN_OUT_INSTANCES} instances: ms each | deliveries per instance |",
        FAN_OUT_INSTANCES * FOLLOWERS_PER_INSTANCE
    );
    println!("|---|---|---:|");
    for (name, run) in &rows {
        let times: Vec<String> = run
            .fan_out
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
            .collect();
        println!(
            "| {name} | {} | {} |",
            times.join(", "),
            run.fan_out_deliveries
        );
    }
    Ok(())
}

/// Verifications per second of `openssl speed -seconds 3 rsa2048`.
fn openssl_verify_rate() -> anyhow::Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "3", "rsa2048"])
        .output()
        .context("running openssl speed (is openssl installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 2048 bits 0.000946s 0.000024s   1056.9  41856.5": sign/s, then verify/s.
    text.lines()
        .find(|l| l.starts_with("rsa 2048 bits") || l.starts_with("rsa  2048 bits"))
        .and_then(|l| l.split_whitespace().nth(6))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no verify/s in openssl's report:\n{text}"))
}

async fn generate_keys() -> anyhow::Result<Arc<Vec<ActorKeys>>> {
    let mut tasks = Vec::new();
    for _ in 0..KEYS {
        tasks.push(tokio::task::spawn_blocking(ActorKeys::generate));
    }
    let mut keys = Vec::new();
    for task in tasks {
        keys.push(task.await??);
    }
    Ok(Arc::new(keys))
}

/// One remote instance's state: its actors' documents by index and the deliveries it took.
struct Peer {
    documents: Vec<Vec<u8>>,
    received: Arc<AtomicU64>,
}

/// Starts a remote instance serving `ACTORS_PER_PEER` Persons; their ids.
async fn start_peer(
    keys: &[ActorKeys],
    first_key: usize,
    received: Arc<AtomicU64>,
) -> anyhow::Result<Vec<RemoteActor>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://localhost:{}", listener.local_addr()?.port());
    let mut documents = Vec::new();
    let mut actors = Vec::new();
    for i in 0..ACTORS_PER_PEER {
        let key = (first_key + i) % keys.len();
        let id = Id::parse(&format!("{base}/users/u{i}"))?;
        let document = Actor::local(LocalActor {
            kind: ActorKind::Person,
            id: id.clone(),
            preferred_username: format!("u{i}"),
            name: Some(format!("Visitor {i}")),
            summary: None,
            url: Some(id.clone()),
            icon: None,
            public_key_pem: keys[key].public_key_pem().to_owned(),
            shared_inbox: Id::parse(&format!("{base}/inbox"))?,
            attributed_to: None,
            room: None,
            manually_approves_followers: false,
        })?;
        documents.push(serde_json::to_vec(&with_context(document))?);
        actors.push(RemoteActor {
            id: id.to_string(),
            key,
        });
    }
    let peer = Arc::new(Peer {
        documents,
        received,
    });
    let app = axum::Router::new()
        .route("/users/{name}", get(peer_actor))
        .route("/users/{name}/inbox", post(peer_inbox))
        .route("/inbox", post(peer_inbox))
        .with_state(peer);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(actors)
}

/// `GET /users/u{i}`: the actor document.
async fn peer_actor(State(peer): State<Arc<Peer>>, Path(name): Path<String>) -> impl IntoResponse {
    let document = name
        .strip_prefix('u')
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| peer.documents.get(i));
    match document {
        Some(body) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, ACTIVITY_CONTENT_TYPE)],
            body.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /inbox`: the instance's answers (Accepts), counted.
async fn peer_inbox(State(peer): State<Arc<Peer>>) -> StatusCode {
    peer.received.fetch_add(1, Ordering::Relaxed);
    StatusCode::ACCEPTED
}

/// The activities of one actor, in the order it sends them, and whether it undoes its Follow.
fn actor_activities(
    actor: &str,
    space: &str,
    creates: usize,
    undo: bool,
) -> Vec<(serde_json::Value, bool)> {
    let follow = json!({
        "@context": AS_CONTEXT,
        "id": format!("{actor}/activities/follow"),
        "type": "Follow",
        "actor": actor,
        "object": space,
    });
    let note = |j: usize, content: &str| {
        json!({
            "type": "Note",
            "id": format!("{actor}/notes/{j}"),
            "attributedTo": actor,
            "content": content,
            "to": [PUBLIC],
        })
    };
    let create = |j: usize| {
        json!({
            "@context": AS_CONTEXT,
            "id": format!("{actor}/activities/create-{j}"),
            "type": "Create",
            "actor": actor,
            "object": note(j, &format!("<p>Note {j}: see you in the Commons tonight.</p>")),
            "to": [PUBLIC],
        })
    };
    // (activity, signed a second earlier: a redelivery of an id already sent)
    let mut list = vec![(follow.clone(), false)];
    for j in 0..creates {
        list.push((create(j), false));
    }
    list.push((
        json!({
            "@context": AS_CONTEXT,
            "id": format!("{actor}/activities/update-0"),
            "type": "Update",
            "actor": actor,
            "object": note(0, "<p>Note 0, edited: see you in the Commons at eight.</p>"),
            "to": [PUBLIC],
        }),
        false,
    ));
    list.push((follow.clone(), true));
    list.push((create(0), true));
    if undo {
        let mut embedded = follow;
        if let Some(object) = embedded.as_object_mut() {
            object.remove("@context");
        }
        list.push((
            json!({
                "@context": AS_CONTEXT,
                "id": format!("{actor}/activities/undo-follow"),
                "type": "Undo",
                "actor": actor,
                "object": embedded,
            }),
            false,
        ));
    }
    list
}

/// Signs every actor's activities (on blocking threads: RSA signing is slow).
async fn sign_all(
    keys: Arc<Vec<ActorKeys>>,
    inbox: Url,
    plan: Vec<(RemoteActor, Vec<(serde_json::Value, bool)>)>,
) -> anyhow::Result<Vec<Vec<Signed>>> {
    let now = SystemTime::now();
    let mut tasks = Vec::new();
    for (actor, activities) in plan {
        let keys = keys.clone();
        let inbox = inbox.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let key_id = Url::parse(&format!("{}#main-key", actor.id))?;
            activities
                .into_iter()
                .map(|(activity, earlier)| {
                    let body = serde_json::to_vec(&activity)?;
                    let at = if earlier {
                        now - Duration::from_secs(1)
                    } else {
                        now
                    };
                    let headers = sign_request(
                        &Method::POST,
                        &inbox,
                        Some(&body),
                        &key_id,
                        &keys[actor.key],
                        at,
                    )?
                    .to_header_map()?;
                    Ok(Signed { headers, body })
                })
                .collect::<anyhow::Result<Vec<_>>>()
        }));
    }
    let mut signed = Vec::new();
    for task in tasks {
        signed.push(task.await??);
    }
    Ok(signed)
}

fn measure(
    server: &tokio::runtime::Runtime,
    load: &tokio::runtime::Runtime,
    keys: &Arc<Vec<ActorKeys>>,
    postgres: Option<String>,
    activities: usize,
) -> anyhow::Result<Run> {
    let dir = std::env::temp_dir().join(format!("convene-inbox-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let database_url = match &postgres {
        Some(base) => server.block_on(fresh_postgres(base))?,
        None => format!("sqlite://{}/convene.db", dir.display()),
    };
    let (instance, port) = server.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let args = ConfigArgs {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            public_url: Some(format!("http://localhost:{port}")),
            data_dir: Some(dir.clone()),
            database_url: Some(database_url.clone()),
            ..ConfigArgs::default()
        };
        let mut settings = Settings::resolve(&args, FileConfig::default())?;
        settings.media_udp_ports = (0, 0);
        settings.federation_allow_private_addresses = true;
        settings.federation_inbox_rate = 0;
        let instance = Instance::start_on(settings, listener).await?;
        seed(&instance).await?;
        anyhow::Ok((instance, port))
    })?;
    let base = format!("http://localhost:{port}");
    let space = format!("{base}/spaces/commons");
    let inbox = Url::parse(&format!("{base}/inbox"))?;

    let received = Arc::new(AtomicU64::new(0));
    let actors = load.block_on(async {
        let mut actors = Vec::new();
        for p in 0..PEERS {
            actors.extend(start_peer(keys, p * ACTORS_PER_PEER, received.clone()).await?);
        }
        anyhow::Ok(actors)
    })?;
    // Follow, Update, two redeliveries and a quarter Undo: 4.25 besides the Creates.
    let creates = (activities * 4 / actors.len()).saturating_sub(17).max(4) / 4;
    let plan: Vec<_> = actors
        .iter()
        .enumerate()
        .map(|(i, actor)| {
            (
                actor.clone(),
                actor_activities(&actor.id, &space, creates, i % 4 == 0),
            )
        })
        .collect();
    let undone = plan
        .iter()
        .filter(|(_, list)| list.len() > creates + 4)
        .count();
    let total: usize = plan.iter().map(|(_, list)| list.len()).sum();
    let redeliveries: usize = plan
        .iter()
        .map(|(_, list)| list.iter().filter(|(_, earlier)| *earlier).count())
        .sum();
    let signed = load.block_on(sign_all(keys.clone(), inbox.clone(), plan))?;
    // A server fetches a Space's actor document before it follows it (WebFinger, then the
    // actor), and serving it makes the Space's key pair; the instance actor's pair, which
    // signs its fetches of remote actors, was made when the instance first federated. Both
    // are one-time work, done here before the measurement.
    load.block_on(async {
        for actor in [space.clone(), format!("{base}/actor")] {
            let response = reqwest::Client::new()
                .get(&actor)
                .header(reqwest::header::ACCEPT, ACTIVITY_CONTENT_TYPE)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "the actor document {actor}: {}",
                response.status()
            );
        }
        anyhow::Ok(())
    })?;

    let fetches_before = instance
        .state
        .federation
        .stats
        .actor_fetches
        .load(Ordering::Relaxed);
    let cpu_before = instance_cpu_seconds()?;
    let started = Instant::now();
    let latencies = load.block_on(post_all(inbox.clone(), signed))?;
    let elapsed = started.elapsed();
    let cpu = instance_cpu_seconds()? - cpu_before;
    let accepts_delivered = received.load(Ordering::Relaxed);
    let fetches = instance
        .state
        .federation
        .stats
        .actor_fetches
        .load(Ordering::Relaxed)
        - fetches_before;

    let (followers, seen) = server.block_on(async {
        let db = &instance.state.db;
        let followers: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM federation_followers \
             WHERE local_actor = $1 AND accepted_at IS NOT NULL",
        )
        .bind(&space)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
        let seen: i64 = sqlx::query("SELECT COUNT(*) AS n FROM federation_seen_activities")
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?;
        anyhow::Ok((followers, seen))
    })?;
    let expected_followers = actors.len() - undone;
    let expected_seen = total - redeliveries;
    if usize::try_from(followers)? != expected_followers {
        bail!("the Space has {followers} followers, expected {expected_followers}");
    }
    if usize::try_from(seen)? != expected_seen {
        bail!("{seen} activity ids recorded as seen, expected {expected_seen}");
    }
    if fetches != actors.len() as u64 {
        bail!(
            "the instance fetched {fetches} actor documents for {} actors",
            actors.len()
        );
    }

    let (fan_out, fan_out_deliveries) = fan_out(server, load, &instance, &space)?;

    server.block_on(instance.shutdown())?;
    if let Some(base) = &postgres {
        server.block_on(drop_postgres(base, &database_url))?;
    }
    let _ = std::fs::remove_dir_all(&dir);

    let mut latencies = latencies;
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(Run {
        fan_out,
        fan_out_deliveries,
        activities: total,
        rate: total as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        cpu_us: cpu * 1e6 / total as f64,
        followers,
        seen,
        fetches,
        accepts_delivered,
    })
}

/// POSTs every actor's activities in order, `IN_FLIGHT` actors at a time; the latency of each.
/// Any answer but 202 ends the run with an error.
async fn post_all(inbox: Url, signed: Vec<Vec<Signed>>) -> anyhow::Result<Vec<Duration>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let queue = Arc::new(std::sync::Mutex::new(signed));
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let client = client.clone();
        let inbox = inbox.clone();
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let next = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some(activities) = next else {
                    return anyhow::Ok(latencies);
                };
                for Signed { headers, body } in activities {
                    let started = Instant::now();
                    let response = client
                        .post(inbox.clone())
                        .headers(headers)
                        .header(reqwest::header::CONTENT_TYPE, ACTIVITY_CONTENT_TYPE)
                        .body(body)
                        .send()
                        .await?;
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    latencies.push(started.elapsed());
                    if status != reqwest::StatusCode::ACCEPTED {
                        bail!("the inbox answered {status}: {text}");
                    }
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(latencies)
}

/// A public Space with an owner.
/// One follower's instance in the fan-out: verifies every delivery with the Space's key.
struct FanOutPeer {
    key: RemoteKey,
    verified: AtomicU64,
    refused: AtomicU64,
}

/// `POST /inbox` of a follower's instance: 202 and counted when the signature verifies.
async fn fan_out_inbox(
    State(peer): State<Arc<FanOutPeer>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let request = InboundRequest::post(&uri, &headers, &body);
    let guard = MemoryReplayGuard::new(16);
    match verify_request(&request, &peer.key, SystemTime::now(), &guard) {
        Ok(_) => {
            peer.verified.fetch_add(1, Ordering::Relaxed);
            StatusCode::ACCEPTED
        }
        Err(_) => {
            peer.refused.fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED
        }
    }
}

/// The fan-out (see the module docs): each announcement's time, and the deliveries each
/// follower's instance verified per announcement.
fn fan_out(
    server: &tokio::runtime::Runtime,
    load: &tokio::runtime::Runtime,
    instance: &Instance,
    space: &str,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let key = load.block_on(async {
        let document: serde_json::Value = reqwest::Client::new()
            .get(space)
            .header(reqwest::header::ACCEPT, ACTIVITY_CONTENT_TYPE)
            .send()
            .await?
            .json()
            .await?;
        let field = |name: &str| {
            document["publicKey"][name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("no publicKey.{name} in the Space's document"))
        };
        anyhow::Ok(RemoteKey::new(PublicKey {
            id: field("id")?,
            owner: Url::parse(space)?,
            public_key_pem: field("publicKeyPem")?,
        })?)
    })?;
    let peers = load.block_on(async {
        let mut peers = Vec::new();
        for _ in 0..FAN_OUT_INSTANCES {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let base = format!("http://localhost:{}", listener.local_addr()?.port());
            let peer = Arc::new(FanOutPeer {
                key: key.clone(),
                verified: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            });
            let app = axum::Router::new()
                .route("/inbox", post(fan_out_inbox))
                .with_state(peer.clone());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            peers.push((base, peer));
        }
        anyhow::Ok(peers)
    })?;
    let core = &instance.state.core;
    let (owner, commons) = server.block_on(async {
        let db = &instance.state.db;
        let mut tx = db.begin_write().await?;
        sqlx::query("DELETE FROM federation_followers WHERE local_actor = $1")
            .bind(space)
            .execute(&mut *tx)
            .await?;
        let now = db.now();
        for (base, _) in &peers {
            for f in 0..FOLLOWERS_PER_INSTANCE {
                let follower = format!("{base}/users/f{f}");
                sqlx::query(
                    "INSERT INTO federation_followers (local_actor, remote_actor, remote_host, \
                     inbox, shared_inbox, follow_id, created_at, accepted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(space)
                .bind(&follower)
                .bind(base.trim_start_matches("http://"))
                .bind(format!("{follower}/inbox"))
                .bind(format!("{base}/inbox"))
                .bind(format!("{follower}/follows/1"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        let owner = passports::by_handle(
            db,
            &Handle::parse("owner").map_err(|e| anyhow::anyhow!(e.0))?,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .context("the owner's Passport")?;
        let commons = spaces::by_slug(db, "commons")
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        anyhow::Ok((owner, commons))
    })?;

    let mut times = Vec::new();
    let mut per_announcement = 0;
    for n in 0..ANNOUNCEMENTS {
        let before: Vec<u64> = peers
            .iter()
            .map(|(_, p)| p.verified.load(Ordering::Relaxed))
            .collect();
        let fields = RoomFields {
            name: DisplayName::parse(&format!("Workshop {n}")).map_err(|e| anyhow::anyhow!(e.0))?,
            topic: String::new(),
            access: Access::Open,
            access_code: None,
            listed: true,
            capacity: 12,
        };
        let slug = Slug::parse(&format!("workshop-{n}")).map_err(|e| anyhow::anyhow!(e.0))?;
        let started = Instant::now();
        server
            .block_on(convene::core::rooms::create(
                core,
                convene::core::Actor::Person(&owner),
                &commons,
                &slug,
                &fields,
            ))
            .map_err(|e| anyhow::anyhow!("creating a Room: {e:?}"))?;
        loop {
            let got: Vec<u64> = peers
                .iter()
                .zip(&before)
                .map(|((_, p), b)| p.verified.load(Ordering::Relaxed) - b)
                .collect();
            let least = got.iter().copied().min().unwrap_or(0);
            let most = got.iter().copied().max().unwrap_or(0);
            if least > 0 && least == most {
                let unfinished: i64 = server.block_on(async {
                    sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE finished_at IS NULL")
                        .fetch_one(&instance.state.db.pool)
                        .await?
                        .try_get("n")
                })?;
                if unfinished == 0 {
                    times.push(started.elapsed());
                    per_announcement = least;
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("announcement {n}: after 60 s the instances had {got:?} deliveries");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let refused: u64 = peers
        .iter()
        .map(|(_, p)| p.refused.load(Ordering::Relaxed))
        .sum();
    if refused > 0 {
        bail!("{refused} deliveries failed their signature check");
    }
    Ok((times, per_announcement))
}

async fn seed(instance: &Instance) -> anyhow::Result<()> {
    let db = &instance.state.db;
    let err = |e: convene::error::AppError| anyhow::anyhow!("{e:?}");
    let owner = passports::create(
        db,
        NewPassport {
            email: Email::parse("owner@example.org").map_err(|e| anyhow::anyhow!(e.0))?,
            handle: Handle::parse("owner").map_err(|e| anyhow::anyhow!(e.0))?,
            display_name: DisplayName::parse("Owner").map_err(|e| anyhow::anyhow!(e.0))?,
            operator: true,
        },
    )
    .await
    .map_err(err)?;
    spaces::create(
        db,
        &owner,
        &Slug::parse("commons").map_err(|e| anyhow::anyhow!(e.0))?,
        &SpaceFields {
            name: DisplayName::parse("The Commons").map_err(|e| anyhow::anyhow!(e.0))?,
            description: "Where the neighbourhood meets.".into(),
            listed: true,
        },
    )
    .await
    .map_err(err)?;
    Ok(())
}

async fn fresh_postgres(base: &str) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let name = format!("convene_inbox_bench_{}", std::process::id());
    let pool = sqlx::AnyPool::connect(base).await?;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&pool)
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let mut url = Url::parse(base)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

async fn drop_postgres(base: &str, database_url: &str) -> anyhow::Result<()> {
    let name = Url::parse(database_url)?
        .path()
        .trim_start_matches('/')
        .to_owned();
    let pool = sqlx::AnyPool::connect(base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&pool)
    .await?;
    pool.close().await;
    Ok(())
}

/// CPU time (user + system, seconds) of this process minus that of the load side's threads:
/// the instance's, including SQLite's worker threads.
fn instance_cpu_seconds() -> anyhow::Result<f64> {
    let total = cpu_of(&std::fs::read_to_string("/proc/self/stat")?)?;
    let mut load = 0.0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if name.starts_with(LOAD_THREADS) {
            // A thread may end between the listing and the read; it then counts as ours.
            if let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
                load += cpu_of(&stat)?;
            }
        }
    }
    Ok(total - load)
}

/// utime + stime from a `stat` line, in seconds (100 clock ticks a second on Linux).
fn cpu_of(stat: &str) -> anyhow::Result<f64> {
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("stat line")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("stat line is short")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
