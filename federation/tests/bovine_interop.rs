//! Interoperability with an independent ActivityPub implementation: bovine (PyPI, MIT),
//! through its verifying test server `python -m bovine.testing serve`.
//!
//! One exchange exercises both directions:
//! - our [`deliver`] POSTs a signed Follow to bovine's inbox; bovine verifies it (it answers
//!   202 only for a good signature and digest), which makes it fetch our actor with a signed GET;
//! - our [`authenticate`] verifies that GET, fetching bovine's actor through [`FetchKeySource`];
//! - bovine's `BovineActor` (with the test server's own key, saved with `--save_config`) signs
//!   a POST of a Follow to our inbox, and our [`receive`] accepts it as a new activity.
//!
//! Skipped (with a `SKIPPED` line) when bovine is not installed, unless
//! `CONVENE_TEST_REQUIRE_ALL=1`. Python is taken from `CONVENE_BOVINE_PYTHON`, else
//! `/work/.venv-bovine/bin/python`, else `python3`, whichever can import `bovine.testing`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use convene_federation::delivery::{DeliveryOutcome, Recipient, deliver, plan};
use convene_federation::directory::SeenActivities;
use convene_federation::fetch::{FetchClient, FetchSettings};
use convene_federation::protocol::Id;
use convene_federation::protocol::activity::{Action, Activity};
use convene_federation::protocol::actor::{Actor, ActorKind, LocalActor};
use convene_federation::protocol::context::with_context;
use convene_federation::receive::{FetchKeySource, Received, authenticate, receive};
use convene_federation::signature::{InboundRequest, MemoryReplayGuard};
use convene_federation::{ActorKeys, Address, PartnerPolicy, webfinger};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn python_with_bovine() -> Option<String> {
    let candidates = [
        std::env::var("CONVENE_BOVINE_PYTHON").ok(),
        Some("/work/.venv-bovine/bin/python".to_owned()),
        Some("python3".to_owned()),
    ];
    candidates.into_iter().flatten().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import bovine.testing.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn settings() -> FetchSettings {
    FetchSettings {
        allow_loopback: true,
        total_timeout: Duration::from_secs(15),
        ..FetchSettings::default()
    }
}

/// What our server saw of bovine's signed GETs: the verified signer, or the error.
#[derive(Clone)]
struct Ours {
    /// `localhost:PORT`: requests must be addressed to it.
    host: String,
    actor: serde_json::Value,
    keys: FetchKeySource,
    guard: Arc<MemoryReplayGuard>,
    seen: Arc<Mutex<Vec<Result<String, String>>>>,
    /// What our inbox made of bovine's POSTs: the activity type and actor, or the error.
    inbox: Arc<Mutex<Vec<Result<String, String>>>>,
}

struct NothingSeen;

impl SeenActivities for NothingSeen {
    async fn seen(&self, _: &Id) -> convene_federation::Result<bool> {
        Ok(false)
    }
}

async fn inbox_route(
    State(ours): State<Ours>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = InboundRequest {
        method: &Method::POST,
        path_and_query: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        headers: &headers,
        body: &body,
        host: Some(&ours.host),
    };
    let outcome = receive::<Activity>(
        &request,
        &ours.keys,
        &PartnerPolicy::default(),
        &NothingSeen,
        ours.guard.as_ref(),
        SystemTime::now(),
    )
    .await;
    let (status, record) = match outcome {
        Ok(Received::New(inbound)) => (
            StatusCode::ACCEPTED,
            Ok(format!("{} by {}", inbound.activity.kind(), inbound.actor)),
        ),
        Ok(Received::Duplicate(id)) => (StatusCode::ACCEPTED, Err(format!("duplicate {id}"))),
        Err(e) => (
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            Err(e.to_string()),
        ),
    };
    if let Ok(mut inbox) = ours.inbox.lock() {
        inbox.push(record);
    }
    status.into_response()
}

/// Signs and POSTs a Follow of `object` to `inbox` as bovine's test actor.
const BOVINE_POST: &str = r#"
import asyncio, sys
from bovine.testing.server import ServerConfig

async def main(config_file, inbox, object_id):
    config = ServerConfig.load(config_file)
    actor = config.create_actor()
    await actor.init()
    follow = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "type": "Follow",
        "id": config.make_id(),
        "actor": config.actor_id,
        "object": object_id,
    }
    try:
        response = await actor.post(inbox, follow)
        print(response.status)
    finally:
        await actor.session.close()

asyncio.run(main(*sys.argv[1:4]))
"#;

async fn actor_route(State(ours): State<Ours>, uri: Uri, headers: HeaderMap) -> Response {
    if headers.contains_key("signature") {
        let request = InboundRequest {
            method: &Method::GET,
            path_and_query: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            headers: &headers,
            body: b"",
            host: Some(&ours.host),
        };
        let outcome = authenticate(
            &request,
            &ours.keys,
            &PartnerPolicy::default(),
            ours.guard.as_ref(),
            SystemTime::now(),
        )
        .await
        .map(|v| v.signer.to_string())
        .map_err(|e| e.to_string());
        if let Ok(mut seen) = ours.seen.lock() {
            seen.push(outcome);
        }
    }
    (
        [("content-type", "application/activity+json")],
        axum::Json(ours.actor.clone()),
    )
        .into_response()
}

async fn free_port() -> Result<u16, std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

#[tokio::test]
async fn bovine_verifies_our_post_and_we_verify_its_get() -> TestResult {
    let Some(python) = python_with_bovine() else {
        if std::env::var("CONVENE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            return Err("bovine is not installed and CONVENE_TEST_REQUIRE_ALL=1".into());
        }
        println!("SKIPPED bovine_verifies_our_post_and_we_verify_its_get: bovine is not installed");
        return Ok(());
    };

    // bovine, on localhost:PORT.
    let bovine_port = free_port().await?;
    let bovine_host = format!("localhost:{bovine_port}");
    let config_file = std::env::temp_dir().join(format!("convene-bovine-{bovine_port}.toml"));
    let config_arg = config_file.to_string_lossy().into_owned();
    let mut child = tokio::process::Command::new(&python)
        .args([
            "-m",
            "bovine.testing",
            "serve",
            "--port",
            &bovine_port.to_string(),
            "--save_config",
            &config_arg,
        ])
        .env("BOVINE_TEST_PROTOCOL", "http")
        .env("BOVINE_TEST_HOSTNAME", &bovine_host)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;

    // Us: a Passport actor on localhost:PORT.
    let keys = ActorKeys::generate()?;
    let client = FetchClient::new(settings())?;
    let state = Ours {
        host: String::new(),
        actor: serde_json::Value::Null,
        keys: FetchKeySource {
            client: client.clone(),
            signer: None,
        },
        guard: Arc::new(MemoryReplayGuard::new(100)),
        seen: Arc::new(Mutex::new(Vec::new())),
        inbox: Arc::new(Mutex::new(Vec::new())),
    };
    // The actor document names our port, so listen first, then fill it in.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let our_port = listener.local_addr()?.port();
    let ada = Id::parse(&format!("http://localhost:{our_port}/passports/ada"))?;
    let actor = Actor::local(LocalActor {
        kind: ActorKind::Person,
        id: ada.clone(),
        preferred_username: "ada".into(),
        name: Some("Ada".into()),
        summary: None,
        url: None,
        icon: None,
        public_key_pem: keys.public_key_pem().into(),
        shared_inbox: Id::parse(&format!("http://localhost:{our_port}/inbox"))?,
        attributed_to: None,
        room: None,
        manually_approves_followers: false,
    })?;
    let state = Ours {
        host: format!("localhost:{our_port}"),
        actor: serde_json::to_value(with_context(actor))?,
        ..state
    };
    let app = Router::new()
        .route("/passports/ada", get(actor_route))
        .route("/inbox", post(inbox_route))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // Wait for bovine to answer WebFinger, then resolve its actor the way the instance will.
    let buttercup = Address::new("buttercup", &bovine_host)?;
    let wf_url = webfinger::query_url(&buttercup, "http")?;
    let mut jrd = None;
    for _ in 0..100 {
        if let Ok(answer) = client.get(&wf_url, webfinger::JRD_CONTENT_TYPE, None).await
            && answer.status.is_success()
        {
            jrd = Some(answer.body);
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("bovine exited with {status}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let jrd = jrd.ok_or("bovine did not start within 20 s")?;
    let resolved = webfinger::parse(&jrd, &buttercup)?;
    assert_eq!(
        resolved.actor.as_str(),
        format!("http://{bovine_host}/actor")
    );
    let their_actor = Actor::parse(&client.get_activity(resolved.actor.url(), None).await?.body)?;
    assert_eq!(their_actor.kind, ActorKind::Person);

    // A Follow from ada to buttercup, delivered and verified by bovine.
    let follow = Activity::Follow(Action::new(
        ada.with_suffix("/activities/follow-1")?,
        ada.clone(),
        their_actor.id.clone(),
    ));
    let recipient = Recipient {
        inbox: their_actor.inbox.clone(),
        shared_inbox: None,
    };
    let key_id = ada.with_suffix("#main-key")?;
    let jobs = plan(
        &follow,
        &key_id,
        [recipient],
        &PartnerPolicy::default(),
        "convene.invalid",
    )?;
    let [job] = jobs.as_slice() else {
        return Err(format!("expected one job, got {}", jobs.len()).into());
    };
    assert_eq!(
        deliver(&client, job, &keys, SystemTime::now()).await,
        DeliveryOutcome::Delivered
    );

    // bovine fetched our actor with a signed GET, and we verified it.
    let seen = state.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen.contains(&Ok(format!("http://{bovine_host}/actor"))),
        "our verifier's view of bovine's GETs: {seen:?}"
    );

    // bovine really checks: the same Follow signed with a key that is not ada's is refused.
    let impostor = ActorKeys::generate()?;
    let outcome = deliver(&client, job, &impostor, SystemTime::now()).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Permanent { ref reason } if reason == "HTTP 401"),
        "{outcome:?}"
    );

    // bovine signs a POST to our inbox; we fetch its key and accept the Follow.
    let posted = tokio::process::Command::new(&python)
        .args([
            "-c",
            BOVINE_POST,
            &config_arg,
            &format!("http://localhost:{our_port}/inbox"),
            ada.as_str(),
        ])
        .output()
        .await?;
    let inbox = state.inbox.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        posted.status.success(),
        "bovine's POST failed: {}\nour inbox: {inbox:?}",
        String::from_utf8_lossy(&posted.stderr)
    );
    assert_eq!(
        inbox,
        vec![Ok(format!("Follow by http://{bovine_host}/actor"))]
    );

    child.kill().await?;
    let _ = std::fs::remove_file(&config_file);
    Ok(())
}
