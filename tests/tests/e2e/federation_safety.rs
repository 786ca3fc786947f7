//! Federation, issue 8, the inbound side's safety: remote actors kept and refreshed on key
//! rotation, replays across a restart and across two processes, authorized fetch, per-instance
//! rate limits, and delivery to an instance that was down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::response::IntoResponse;
use convene::activitypub::LocalDirectory;
use convene_federation::ActorKeys;
use convene_federation::directory::Directory;
use convene_federation::protocol::Id;
use convene_federation::signature::sign_request;
use serde_json::Value;

use super::*;

const AP: &str = "application/activity+json";

/// Another ActivityPub server, played by the test: people whose documents it serves with its
/// current key (which the test can rotate), counting every fetch of them, and an inbox that
/// keeps what it is sent.
pub(super) struct Peer {
    pub(super) base: String,
    keys: Arc<Mutex<ActorKeys>>,
    fetches: Arc<AtomicUsize>,
    pub(super) received: Arc<Mutex<Vec<Value>>>,
}

impl Peer {
    pub(super) async fn start() -> Self {
        use convene_federation::protocol::actor::{Actor, ActorKind, LocalActor};
        use convene_federation::protocol::context::with_context;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let base = format!("http://localhost:{port}");
        let keys = Arc::new(Mutex::new(ActorKeys::generate().expect("keys")));
        let fetches = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (doc_keys, doc_fetches, doc_base) = (keys.clone(), fetches.clone(), base.clone());
        let document = move |axum::extract::Path(name): axum::extract::Path<String>| {
            doc_fetches.fetch_add(1, Ordering::SeqCst);
            let pem = doc_keys.lock().expect("lock").public_key_pem().to_owned();
            let base = doc_base.clone();
            async move {
                let actor = Actor::local(LocalActor {
                    kind: ActorKind::Person,
                    id: Id::parse(&format!("{base}/users/{name}")).expect("id"),
                    preferred_username: name.clone(),
                    name: None,
                    summary: None,
                    url: None,
                    icon: None,
                    public_key_pem: pem,
                    shared_inbox: Id::parse(&format!("{base}/inbox")).expect("id"),
                    attributed_to: None,
                    room: None,
                    manually_approves_followers: false,
                })
                .expect("actor");
                (
                    [("content-type", AP)],
                    serde_json::to_string(&with_context(actor)).expect("json"),
                )
                    .into_response()
            }
        };
        let store = received.clone();
        let keep = move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                    store.lock().expect("lock").push(value);
                }
                StatusCode::ACCEPTED
            }
        };
        let app = axum::Router::new()
            .route("/users/{name}", axum::routing::get(document))
            .route("/users/{name}/inbox", axum::routing::post(keep.clone()))
            .route("/inbox", axum::routing::post(keep));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            keys,
            fetches,
            received,
        }
    }

    pub(super) fn actor(&self) -> String {
        format!("{}/users/rae", self.base)
    }

    pub(super) fn domain(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Publishes a new key from now on; returns the old one.
    fn rotate(&self) -> ActorKeys {
        let fresh = ActorKeys::generate().expect("keys");
        std::mem::replace(&mut *self.keys.lock().expect("lock"), fresh)
    }

    /// An activity of rae's that changes nothing where it lands: the Undo of a Follow the
    /// receiver never saw.
    fn harmless(&self, n: u32) -> String {
        serde_json::json!({
            "id": format!("{}/undos/{n}", self.base),
            "type": "Undo",
            "actor": self.actor(),
            "object": format!("{}/follows/never-{n}", self.base),
        })
        .to_string()
    }

    fn follow(&self, n: u32, object: &str) -> String {
        serde_json::json!({
            "id": format!("{}/follows/{n}", self.base),
            "type": "Follow",
            "actor": self.actor(),
            "object": object,
        })
        .to_string()
    }

    /// Headers of `body` POSTed to `url` by rae, signed with `keys` (the current key if
    /// `None`) as of `when`.
    pub(super) fn sign(
        &self,
        url: &str,
        body: &str,
        keys: Option<&ActorKeys>,
        when: SystemTime,
    ) -> reqwest::header::HeaderMap {
        let current = self.keys.lock().expect("lock").clone();
        let url = reqwest::Url::parse(url).expect("url");
        let key_id = reqwest::Url::parse(&format!("{}#main-key", self.actor())).expect("key id");
        sign_request(
            &axum::http::Method::POST,
            &url,
            Some(body.as_bytes()),
            &key_id,
            keys.unwrap_or(&current),
            when,
        )
        .expect("sign")
        .to_header_map()
        .expect("headers")
    }

    /// POSTs `body` to `url`, signed now with the current key.
    pub(super) async fn post(&self, url: &str, body: &str) -> reqwest::Response {
        let headers = self.sign(url, body, None, SystemTime::now());
        send(url, headers, body).await
    }

    /// GETs `url` as ActivityPub JSON, signed by rae now.
    async fn get_signed(&self, url: &str) -> StatusCode {
        let parsed = reqwest::Url::parse(url).expect("url");
        let key_id = reqwest::Url::parse(&format!("{}#main-key", self.actor())).expect("key id");
        let keys = self.keys.lock().expect("lock").clone();
        let signed = sign_request(
            &axum::http::Method::GET,
            &parsed,
            None,
            &key_id,
            &keys,
            SystemTime::now(),
        )
        .expect("sign");
        reqwest::Client::new()
            .get(parsed)
            .headers(signed.to_header_map().expect("headers"))
            .header("accept", AP)
            .send()
            .await
            .expect("get")
            .status()
    }

    /// Waits until the inbox holds `n` activities.
    pub(super) async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            let got = self.received.lock().expect("lock").clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the peer's inbox did not receive {n} activities");
    }
}

/// POSTs `body` with already signed `headers` to `url`.
async fn send(url: &str, headers: reqwest::header::HeaderMap, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .headers(headers)
        .header("content-type", AP)
        .body(body.to_owned())
        .send()
        .await
        .expect("post")
}

async fn followers_stored(inst: &TestInstance) -> i64 {
    count(inst, "SELECT COUNT(*) AS n FROM federation_followers").await
}

pub(super) async fn count(inst: &TestInstance, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(&inst.state().db.pool)
        .await
        .and_then(|row| sqlx::Row::try_get(&row, "n"))
        .expect("count")
}

/// The value of a counter at `/metrics`.
async fn metric(inst: &TestInstance, name: &str) -> u64 {
    let body = reqwest::get(inst.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {body}"))
}

async fn federating_instance_with_space(backend: Backend) -> (TestInstance, Browser) {
    instance_with_space_and(backend, |s| s.federation_allow_private_addresses = true).await
}

on_both!(
    a_sender_is_fetched_once_and_again_when_its_key_rotates_or_grows_stale,
    |backend| async move {
        let (b, _owner) = federating_instance_with_space(backend).await;
        let peer = Peer::start().await;
        let space = b.url("/spaces/book-club");
        let inbox = b.url("/inbox");

        // The first activity fetches rae; the Follow reads rae's inboxes from the same copy.
        let response = peer.post(&inbox, &peer.follow(1, &space)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        peer.wait_for(1).await;
        assert_eq!(peer.fetches(), 1);
        // More activities from rae: no fetch.
        for n in 0..3 {
            let response = peer.post(&inbox, &peer.harmless(n)).await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
        assert_eq!(peer.fetches(), 1);
        assert_eq!(
            metric(&b, "convene_federation_actor_fetches_total").await,
            1
        );
        let stored = count(
            &b,
            "SELECT COUNT(*) AS n FROM federation_remote_actors WHERE public_key_pem <> ''",
        )
        .await;
        assert_eq!(stored, 1);

        // rae's server rotates its key: the stored key fails, rae is fetched again once, and
        // the activity is taken.
        let old = peer.rotate();
        let response = peer.post(&inbox, &peer.harmless(10)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(peer.fetches(), 2);
        let response = peer.post(&inbox, &peer.harmless(11)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(peer.fetches(), 2);
        // The old key is no good any more (one more fetch to be sure, then 401).
        let body = peer.harmless(12);
        let headers = peer.sign(&inbox, &body, Some(&old), SystemTime::now());
        assert_eq!(
            send(&inbox, headers, &body).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(peer.fetches(), 3);

        // A day later the stored copy is stale and rae is fetched again.
        b.advance_clock(86_400 + 60);
        let later = SystemTime::now() + Duration::from_secs(86_400 + 60);
        let body = peer.harmless(13);
        let headers = peer.sign(&inbox, &body, None, later);
        assert_eq!(
            send(&inbox, headers, &body).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(peer.fetches(), 4);
        let body = peer.harmless(14);
        let headers = peer.sign(&inbox, &body, None, later);
        assert_eq!(
            send(&inbox, headers, &body).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(peer.fetches(), 4);
    }
);

on_both!(
    a_replayed_activity_changes_nothing_across_a_restart_and_two_processes,
    |backend| async move {
        let (mut b, _owner) = federating_instance_with_space(backend).await;
        let peer = Peer::start().await;
        let space = b.url("/spaces/book-club");
        let inbox = b.url("/inbox");
        let follow = peer.follow(1, &space);
        let captured = peer.sign(&inbox, &follow, None, SystemTime::now());
        assert_eq!(
            send(&inbox, captured.clone(), &follow).await.status(),
            StatusCode::ACCEPTED
        );
        peer.wait_for(1).await;
        assert_eq!(followers_stored(&b).await, 1);
        let undo = serde_json::json!({
            "id": format!("{}/undos/1", peer.base),
            "type": "Undo",
            "actor": peer.actor(),
            "object": serde_json::from_str::<Value>(&follow).expect("json"),
        })
        .to_string();
        assert_eq!(
            peer.post(&inbox, &undo).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(followers_stored(&b).await, 0);

        // After a restart the captured request (still within its Date window) and the same
        // Follow signed afresh are both taken as seen: the follow does not come back, and no
        // second Accept goes out.
        // RSA signatures are deterministic: a copy signed in the same second as the captured
        // one would be the captured request itself, so the fresh copies are dated later.
        b.restart().await;
        assert_eq!(
            send(&inbox, captured.clone(), &follow).await.status(),
            StatusCode::ACCEPTED
        );
        let resigned = peer.sign(
            &inbox,
            &follow,
            None,
            SystemTime::now() + Duration::from_secs(1),
        );
        assert_eq!(
            send(&inbox, resigned, &follow).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(followers_stored(&b).await, 0);

        // A second process on the same database, behind the same public URL.
        let database_url = b.settings.database_url.clone();
        let public_url = b.settings.public_url.clone();
        let b2 = TestInstance::spawn_with(backend, |s| {
            s.database_url = database_url;
            s.public_url = public_url;
            s.federation_allow_private_addresses = true;
        })
        .await;
        let via_b2 = b2.url("/inbox").replace("localhost", "127.0.0.1");
        let to_b2 = |headers: reqwest::header::HeaderMap, body: String| {
            let via = via_b2.clone();
            async move {
                let response = reqwest::Client::new()
                    .post(via)
                    // The signed headers carry `Host: B's domain`, as a balancer passes it on.
                    .headers(headers)
                    .header("content-type", AP)
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                assert!(status.is_success(), "{status}: {body}");
                status
            }
        };
        assert_eq!(
            to_b2(captured.clone(), follow.clone()).await,
            StatusCode::ACCEPTED
        );
        let fresh = peer.sign(
            &inbox,
            &follow,
            None,
            SystemTime::now() + Duration::from_secs(2),
        );
        assert_eq!(to_b2(fresh, follow.clone()).await, StatusCode::ACCEPTED);
        assert_eq!(followers_stored(&b).await, 0);
        // A new Follow through the second process is taken once; its copies through the
        // first change nothing.
        let again = peer.follow(2, &space);
        let signed = peer.sign(&inbox, &again, None, SystemTime::now());
        assert_eq!(to_b2(signed, again.clone()).await, StatusCode::ACCEPTED);
        assert_eq!(
            peer.post(&inbox, &again).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(followers_stored(&b).await, 1);
        peer.wait_for(2).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(peer.received.lock().expect("lock").len(), 2);
    }
);

/// Polls `check` until it holds, for at most 30 s.
async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Activity ids `inst` has taken whose id starts with `prefix`.
async fn seen_with_prefix(inst: &TestInstance, prefix: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM federation_seen_activities WHERE activity_id LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_one(&inst.state().db.pool)
        .await
        .and_then(|row| sqlx::Row::try_get(&row, "n"))
        .expect("count")
}

/// `handle`'s Passport on `from` follows the Space at `space` (on another instance): a Follow
/// signed with the Passport's key, delivered to the Space's inbox as `from` would send it.
async fn follow_from(from: &TestInstance, handle: &str, space: &str) -> StatusCode {
    let actor = Id::parse(&from.url(&format!("/people/{handle}"))).expect("id");
    let keys = LocalDirectory::new(from.state().core.clone())
        .keys_of(&actor)
        .await
        .expect("the Passport's keys");
    let follow = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/follows/{}", actor, space.len()),
        "type": "Follow",
        "actor": actor.as_str(),
        "object": space,
    })
    .to_string();
    let inbox = format!("{space}/inbox");
    let url = reqwest::Url::parse(&inbox).expect("url");
    let key_id = reqwest::Url::parse(&format!("{actor}#main-key")).expect("key id");
    let headers = sign_request(
        &axum::http::Method::POST,
        &url,
        Some(follow.as_bytes()),
        &key_id,
        &keys,
        SystemTime::now(),
    )
    .expect("sign")
    .to_header_map()
    .expect("headers");
    send(&inbox, headers, &follow).await.status()
}

/// GETs `url` unsigned with `accept`.
async fn get_status(url: &str, accept: &str) -> StatusCode {
    reqwest::Client::new()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .expect("get")
        .status()
}

on_both!(
    authorized_fetch_needs_signed_gets_and_two_such_instances_still_follow_each_other,
    |backend| async move {
        let strict = |s: &mut convene::Settings| {
            s.federation_allow_private_addresses = true;
            s.federation_authorized_fetch = true;
        };
        let (b, _olive) = instance_with_space_and(backend, strict).await;
        let a = TestInstance::spawn_with(backend, strict).await;
        let ada = a.sign_up("ada@example.org", "ada", "Ada").await;
        let page = ada
            .submit(
                "/spaces",
                &[
                    ("name", "Garden"),
                    ("slug", "garden"),
                    ("description", ""),
                    ("listed", "true"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let space = b.url("/spaces/book-club");

        // Unsigned: actor documents and collections are refused, the rest is served.
        for url in [
            space.clone(),
            b.url("/people/olive"),
            b.url("/spaces/book-club/rooms/lobby"),
            format!("{space}/followers"),
            format!("{space}/outbox"),
        ] {
            assert_eq!(
                get_status(&url, AP).await,
                StatusCode::UNAUTHORIZED,
                "{url}"
            );
        }
        for (url, accept) in [
            (space.clone(), "text/html"),
            (b.url("/actor"), AP),
            (
                b.url(&format!(
                    "/.well-known/webfinger?resource=acct:book-club@{}",
                    b.settings.domain()
                )),
                "application/jrd+json",
            ),
            (b.url("/nodeinfo/2.1"), "*/*"),
        ] {
            assert_eq!(get_status(&url, accept).await, StatusCode::OK, "{url}");
        }
        // Signed by someone whose key checks out: served.
        let peer = Peer::start().await;
        assert_eq!(peer.get_signed(&space).await, StatusCode::OK);
        assert_eq!(
            peer.get_signed(&format!("{space}/followers")).await,
            StatusCode::OK
        );
        // Signed with a key that is not the one published: 401. Blocked: 403.
        peer.rotate();
        let stale = {
            let url = reqwest::Url::parse(&space).expect("url");
            let key_id =
                reqwest::Url::parse(&format!("{}#main-key", peer.actor())).expect("key id");
            let wrong = ActorKeys::generate().expect("keys");
            let signed = sign_request(
                &axum::http::Method::GET,
                &url,
                None,
                &key_id,
                &wrong,
                SystemTime::now(),
            )
            .expect("sign");
            reqwest::Client::new()
                .get(url)
                .headers(signed.to_header_map().expect("headers"))
                .header("accept", AP)
                .send()
                .await
                .expect("get")
                .status()
        };
        assert_eq!(stale, StatusCode::UNAUTHORIZED);
        b.admin(&["federation", "block", &peer.domain()]).await;
        assert_eq!(peer.get_signed(&space).await, StatusCode::FORBIDDEN);
        assert!(metric(&b, "convene_federation_unsigned_fetches_refused_total").await >= 6);

        // Both in authorized-fetch mode, each follows the other's Space: every key fetch on
        // the way is signed by an instance actor, which each serves unsigned, so nobody waits.
        assert_eq!(follow_from(&a, "ada", &space).await, StatusCode::ACCEPTED);
        assert_eq!(
            follow_from(&b, "olive", &a.url("/spaces/garden")).await,
            StatusCode::ACCEPTED
        );
        let accept_from_b = format!("{space}#accept-");
        let accept_from_a = a.url("/spaces/garden#accept-");
        wait_until("both Accepts to arrive", || async {
            seen_with_prefix(&a, &accept_from_b).await == 1
                && seen_with_prefix(&b, &accept_from_a).await == 1
        })
        .await;
        assert_eq!(followers_stored(&a).await, 1);
        assert_eq!(followers_stored(&b).await, 1);
    }
);

on_both!(
    the_inboxes_hold_each_instance_to_its_rate,
    |backend| async move {
        let (b, _owner) = instance_with_space_and(backend, |s| {
            s.federation_allow_private_addresses = true;
            s.federation_inbox_rate = 1;
            s.federation_inbox_burst = 3;
        })
        .await;
        let inbox = b.url("/inbox");
        let peer = Peer::start().await;
        for n in 0..3 {
            assert_eq!(
                peer.post(&inbox, &peer.harmless(n)).await.status(),
                StatusCode::ACCEPTED
            );
        }
        // The fourth within the minute: 429, told when to come back; any inbox.
        for url in [inbox.clone(), b.url("/spaces/book-club/inbox")] {
            let response = peer.post(&url, &peer.harmless(9)).await;
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{url}");
            let retry_after: u64 = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("Retry-After in seconds");
            assert!((1..=60).contains(&retry_after), "{retry_after}");
        }
        assert_eq!(
            metric(&b, "convene_federation_inbox_throttled_total").await,
            2
        );
        // Another instance has its own allowance; unsigned requests are still 401.
        let other = Peer::start().await;
        assert_eq!(
            other.post(&inbox, &other.harmless(0)).await.status(),
            StatusCode::ACCEPTED
        );
        let unsigned = reqwest::Client::new()
            .post(&inbox)
            .header("content-type", AP)
            .body(peer.harmless(20))
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(unsigned, StatusCode::UNAUTHORIZED);
    }
);

/// Delivery counts of `kind` at `inst`: (done, not yet done, dead).
async fn deliveries(inst: &TestInstance) -> (i64, i64, i64) {
    let s = convene::jobs::status::status(&inst.state().db)
        .await
        .expect("queue status");
    s.kinds
        .iter()
        .find(|k| k.kind == "activitypub")
        .map_or((0, 0, 0), |k| {
            (k.done, k.queued + k.running + k.retrying, k.dead)
        })
}

on_both!(
    an_instance_that_was_down_gets_each_activity_exactly_once,
    |backend| async move {
        let (a, olive) = federating_instance_with_space(backend).await;
        let mut b =
            TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true)
                .await;
        // Bea follows A's Space from B's Network page: B takes the Space's announcements
        // only for Spaces someone there follows.
        let bea = b.sign_up("bea@example.org", "bea", "Bea").await;
        let space = a.url("/spaces/book-club");
        bea.get("/network").await;
        let followed = bea
            .post("/network/follow", &[("handle", space.as_str())])
            .await;
        assert!(followed.status.is_redirection(), "{}", followed.body);
        let accept = format!("{space}#accept-");
        wait_until("B to take A's Accept", || async {
            seen_with_prefix(&b, &accept).await == 1
        })
        .await;

        // B goes down; A's Space gets five new Rooms, each announced to B twice (the Create,
        // and a Note for Mastodon-like timelines): ten activities.
        b.stop().await;
        for n in 0..5 {
            let slug = format!("room-{n}");
            let fields = vec![
                ("name", "A Room"),
                ("slug", slug.as_str()),
                ("topic", ""),
                ("access", "open"),
                ("access_code", ""),
                ("capacity", "8"),
                ("listed", "true"),
            ];
            let page = olive.submit("/spaces/book-club/rooms", &fields).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        }
        wait_until("A to find B unreachable", || async {
            let s = convene::jobs::status::status(&a.state().db)
                .await
                .expect("status");
            s.destinations
                .iter()
                .any(|d| d.destination == b.settings.domain() && d.consecutive_failures >= 3)
        })
        .await;
        let (done, pending, dead) = deliveries(&a).await;
        assert_eq!((done, pending, dead), (1, 10, 0));

        // B comes back; an hour later (on both clocks) A's queue tries again and drains.
        b.restart().await;
        a.advance_clock(3700);
        b.advance_clock(3700);
        let announced = format!("{space}#announce-");
        wait_until("A's queue to drain into B", || async {
            deliveries(&a).await == (11, 0, 0)
        })
        .await;
        assert_eq!(seen_with_prefix(&b, &announced).await, 10);
        // Nothing more comes later.
        a.advance_clock(86_400);
        b.advance_clock(86_400);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(deliveries(&a).await, (11, 0, 0));
        assert_eq!(seen_with_prefix(&b, &announced).await, 10);
    }
);
