//! Throughput figures for `BENCHMARKS.md` (issue 8), as ignored tests that assert the targets:
//!
//! ```text
//! cargo test --release -p convene-federation --test throughput -- --ignored --nocapture
//! ```
//!
//! - inbound: signed activities verified and parsed per second, against the raw RSA-2048
//!   verify rate measured in the same run (target: at least half);
//! - outbound: one activity to 1,000 followers spread over 50 instances (50 shared inboxes on
//!   loopback, each verifying every signature), planned, signed and delivered (target: < 2 s).

use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::post;
use futures_util::future::join_all;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};
use url::Url;

use convene_federation::delivery::{DeliveryOutcome, Recipient, deliver, plan};
use convene_federation::fetch::{FetchClient, FetchSettings};
use convene_federation::protocol::Id;
use convene_federation::protocol::activity::{Action, Activity};
use convene_federation::protocol::context::with_context;
use convene_federation::protocol::inbox::{GroupInbox, parse_inbox};
use convene_federation::signature::{
    InboundRequest, MemoryReplayGuard, PublicKey, RemoteKey, sign_request, verify_request,
};
use convene_federation::{ActorKeys, PartnerPolicy, json};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const ADA: &str = "http://localhost/passports/ada";
const KEY: &str = "http://localhost/passports/ada#main-key";

fn public_key(keys: &ActorKeys) -> Result<RemoteKey, Box<dyn std::error::Error + Send + Sync>> {
    Ok(RemoteKey::new(PublicKey {
        id: KEY.into(),
        owner: Url::parse(ADA)?,
        public_key_pem: keys.public_key_pem().into(),
    })?)
}

#[test]
#[ignore = "benchmark: run with --release --ignored"]
fn inbound_verification_keeps_up_with_raw_rsa() -> TestResult {
    const N: usize = 500;
    let keys = ActorKeys::generate()?;
    let inbox = Url::parse("http://localhost:8080/inbox")?;
    let key_id = Url::parse(KEY)?;
    let now = SystemTime::now();
    let mut requests = Vec::with_capacity(N);
    for i in 0..N {
        let body = json::to_vec(&with_context(Activity::Join(Action::new(
            Id::parse(&format!("{ADA}/activities/{i}"))?,
            Id::parse(ADA)?,
            Id::parse("http://localhost:8080/rooms/shed")?,
        ))))?;
        let headers = sign_request(&Method::POST, &inbox, Some(&body), &key_id, &keys, now)?
            .to_header_map()?;
        requests.push((headers, body));
    }

    // The raw rate: RSA-2048 PKCS#1 v1.5 SHA-256 verifications of one signature.
    let public = RsaPublicKey::from_public_key_pem(keys.public_key_pem())?;
    let signature = {
        // A real signature and the string it signs, made through the public API.
        let signed = sign_request(&Method::GET, &inbox, None, &key_id, &keys, now)?;
        let raw = signed
            .signature
            .rsplit("signature=\"")
            .next()
            .unwrap_or("")
            .trim_end_matches('"')
            .to_owned();
        let signing_string = format!(
            "(request-target): get /inbox\nhost: {}\ndate: {}",
            signed.host, signed.date
        );
        (base64_decode(&raw)?, signing_string)
    };
    let raw_started = Instant::now();
    for _ in 0..N {
        let ok = public
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(signature.1.as_bytes()),
                &signature.0,
            )
            .is_ok();
        assert!(ok, "the raw loop must verify a real signature");
    }
    let raw_rate = N as f64 / raw_started.elapsed().as_secs_f64();

    let key = public_key(&keys)?;
    let guard = MemoryReplayGuard::new(N * 2);
    let started = Instant::now();
    for (headers, body) in &requests {
        let request = InboundRequest {
            method: &Method::POST,
            path_and_query: "/inbox",
            headers,
            body,
            host: Some("localhost:8080"),
        };
        let verified = verify_request(&request, &key, now, &guard)?;
        let GroupInbox::Join(join) = parse_inbox::<GroupInbox>(body)? else {
            return Err("not a Join".into());
        };
        verified.check_actor(&join.actor)?;
    }
    let rate = N as f64 / started.elapsed().as_secs_f64();
    println!(
        "raw RSA-2048 verify: {raw_rate:.0}/s; signed activities verified and parsed: {rate:.0}/s ({:.0}%)",
        100.0 * rate / raw_rate
    );
    assert!(
        rate >= raw_rate / 2.0,
        "{rate:.0}/s is under half of {raw_rate:.0}/s"
    );
    Ok(())
}

fn base64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s)
}

/// A shared inbox that verifies every delivery and counts the good ones.
async fn shared_inbox(
    axum::extract::State(key): axum::extract::State<RemoteKey>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let request = InboundRequest::post(&uri, &headers, &body);
    let guard = MemoryReplayGuard::new(4);
    match verify_request(&request, &key, SystemTime::now(), &guard) {
        Ok(_) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --release --ignored"]
async fn one_activity_reaches_1000_followers_on_50_instances_quickly() -> TestResult {
    let keys = ActorKeys::generate()?;
    let key = public_key(&keys)?;
    let mut recipients = Vec::with_capacity(1000);
    for _ in 0..50 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let app = Router::new()
            .route("/inbox", post(shared_inbox))
            .with_state(key.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        for follower in 0..20 {
            recipients.push(Recipient {
                inbox: Id::parse(&format!("http://localhost:{port}/users/{follower}/inbox"))?,
                shared_inbox: Some(Id::parse(&format!("http://localhost:{port}/inbox"))?),
            });
        }
    }
    let client = FetchClient::new(FetchSettings {
        allow_loopback: true,
        ..FetchSettings::default()
    })?;
    let announce = Activity::Join(Action::new(
        Id::parse(&format!("{ADA}/activities/1"))?,
        Id::parse(ADA)?,
        Id::parse("http://localhost/rooms/shed")?,
    ));

    let started = Instant::now();
    let jobs = plan(
        &announce,
        &Id::parse(KEY)?,
        recipients,
        &PartnerPolicy::default(),
        "localhost",
    )?;
    assert_eq!(jobs.len(), 50, "one job per shared inbox");
    let outcomes = join_all(
        jobs.iter()
            .map(|job| deliver(&client, job, &keys, SystemTime::now())),
    )
    .await;
    let elapsed = started.elapsed();
    let delivered = outcomes
        .iter()
        .filter(|o| **o == DeliveryOutcome::Delivered)
        .count();
    println!("1,000 followers on 50 instances: {delivered} deliveries in {elapsed:?}");
    assert_eq!(delivered, 50);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    Ok(())
}
