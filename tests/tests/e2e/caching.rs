//! Bursts and caches (issue 13): single-flight loads of the page cache under concurrent
//! requests, validators and 304s, who may keep a copy of which page, and writes showing at once.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, SET_COOKIE, VARY};

use super::*;

/// Lifetime of a cached Space in these tests: long enough that a burst of 200 requests on a
/// busy debug build ends well inside it, so exactly one reload is expected.
const TTL_MS: u64 = 5000;

/// An instance whose page cache lives [`TTL_MS`] and may serve an expired Space for a minute
/// while it is reloaded, with a Space `book-club` and its open Room `lobby`.
async fn instance(backend: Backend) -> (TestInstance, Browser) {
    let inst = TestInstance::spawn_with(backend, |s| {
        s.page_cache.ttl = Duration::from_millis(TTL_MS);
        s.page_cache.max_stale = Duration::from_secs(60);
    })
    .await;
    let owner = inst
        .sign_up("olive@example.org", "olive", "Olive Owner")
        .await;
    let page = owner
        .submit(
            "/spaces",
            &[
                ("name", "Book Club"),
                ("slug", "book-club"),
                ("description", "We read."),
                ("listed", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = owner
        .submit("/spaces/book-club/rooms", &room_fields("Talk"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.path, "/spaces/book-club/rooms/lobby");
    (inst, owner)
}

fn room_fields(topic: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("name", "Lobby"),
        ("slug", "lobby"),
        ("topic", topic),
        ("access", "open"),
        ("access_code", ""),
        ("capacity", "12"),
        ("listed", "true"),
    ]
}

/// A counter or gauge from `/metrics`.
async fn metric(inst: &TestInstance, name: &str) -> u64 {
    let body = inst.browser().get("/metrics").await.body;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

/// 200 anonymous requests at once, half for the Space page and half for its Room's page (both
/// read the same cached Space); every one must succeed. Returns the bodies.
async fn burst(inst: &TestInstance) -> Vec<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let requests = (0..200).map(|i| {
        let url = if i % 2 == 0 {
            inst.url("/spaces/book-club")
        } else {
            inst.url("/spaces/book-club/rooms/lobby")
        };
        let client = client.clone();
        async move {
            let response = client.get(&url).send().await.expect("GET in the burst");
            assert_eq!(response.status(), StatusCode::OK, "{url}");
            response.text().await.expect("body")
        }
    });
    futures_util::future::join_all(requests).await
}

// Regression test for issue 13: when a cached Space expires under a burst, one request
// reloads it and the database sees one load, not one per request in flight.
on_both!(
    an_expired_space_is_loaded_once_under_200_concurrent_requests,
    |backend| async move {
        let (inst, _owner) = instance(backend).await;
        // Warm the entry, then let it expire.
        let warm = inst.browser().get("/spaces/book-club").await;
        assert_eq!(warm.status, StatusCode::OK);
        let loads = metric(&inst, "convene_page_cache_loads_total").await;
        let stale = metric(&inst, "convene_page_cache_stale_total").await;
        tokio::time::sleep(Duration::from_millis(TTL_MS + 300)).await;

        let pages = burst(&inst).await;
        assert!(pages.iter().all(|p| p.contains("Book Club")));
        assert_eq!(
            metric(&inst, "convene_page_cache_loads_total").await - loads,
            1,
            "one load reached the database for the expired Space"
        );
        assert!(
            metric(&inst, "convene_page_cache_stale_total").await > stale,
            "the expired snapshot was served while it was reloaded"
        );
        assert!(metric(&inst, "convene_db_pool_acquires_total").await >= 2);
        for name in [
            "convene_page_cache_hits_total",
            "convene_page_cache_misses_total",
            "convene_page_cache_waits_total",
            "convene_db_pool_wait_seconds_total",
        ] {
            let body = inst.browser().get("/metrics").await.body;
            assert!(body.contains(&format!("\n{name} ")), "{name} in /metrics");
        }
    }
);

// Regression test for issue 13: after a write nothing stale may be served, so a burst waits
// for one fresh load (single flight) and every request shows the write.
on_both!(
    a_burst_after_a_write_waits_for_one_fresh_load,
    |backend| async move {
        let (inst, owner) = instance(backend).await;
        let warm = inst.browser().get("/spaces/book-club").await;
        assert!(warm.body.contains("We read."));
        owner.get("/spaces/book-club/edit").await;
        let saved = owner
            .post(
                "/spaces/book-club/edit",
                &[
                    ("name", "Book Club"),
                    ("description", "We read aloud."),
                    ("listed", "true"),
                    ("entrance_room", ""),
                ],
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
        let loads = metric(&inst, "convene_page_cache_loads_total").await;
        let misses = metric(&inst, "convene_page_cache_misses_total").await;

        let pages = burst(&inst).await;
        let spaces: Vec<_> = pages.iter().step_by(2).collect();
        assert!(
            spaces.iter().all(|p| p.contains("We read aloud.")),
            "every request after the write shows it"
        );
        assert_eq!(
            metric(&inst, "convene_page_cache_loads_total").await - loads,
            1,
            "the requests after the write shared one load"
        );
        assert!(metric(&inst, "convene_page_cache_misses_total").await > misses);
    }
);

on_both!(
    anonymous_pages_carry_validators_and_answer_304,
    |backend| async move {
        let (inst, _owner) = instance(backend).await;
        let client = reqwest::Client::new();

        // The Space page: the same for every anonymous visitor, so shared caches may keep it.
        let first = client
            .get(inst.url("/spaces/book-club"))
            .send()
            .await
            .expect("GET");
        assert_eq!(first.status(), StatusCode::OK);
        let headers = first.headers().clone();
        let etag = headers
            .get(ETAG)
            .expect("the Space page has an ETag")
            .clone();
        assert_eq!(
            headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()),
            Some("public, max-age=2")
        );
        assert_eq!(
            headers.get(VARY).and_then(|v| v.to_str().ok()),
            Some("Cookie")
        );
        assert!(
            headers.get(SET_COOKIE).is_none(),
            "a shared page sets no cookie"
        );
        let body = first.text().await.expect("body");
        assert!(
            !body.contains("name=\"csrf\""),
            "a shared page has no CSRF token"
        );

        let again = client
            .get(inst.url("/spaces/book-club"))
            .header(IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .expect("conditional GET");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers().get(ETAG), Some(&etag));
        assert!(again.text().await.expect("body").is_empty());
        let other = client
            .get(inst.url("/spaces/book-club"))
            .header(IF_NONE_MATCH, "\"something-else\"")
            .send()
            .await
            .expect("conditional GET");
        assert_eq!(other.status(), StatusCode::OK);

        // The Room page carries each browser's own CSRF token: private to that browser, which
        // revalidates it.
        let ann = inst.browser();
        let bob = inst.browser();
        let ann_page = ann.get("/spaces/book-club/rooms/lobby").await;
        let bob_page = bob.get("/spaces/book-club/rooms/lobby").await;
        assert_eq!(ann_page.status, StatusCode::OK);
        assert_eq!(
            ann_page
                .headers
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("private, no-cache")
        );
        let ann_token = ann_page.csrf().expect("the Room page has a CSRF token");
        let bob_token = bob_page.csrf().expect("the Room page has a CSRF token");
        assert_ne!(ann_token, bob_token, "each browser gets its own token");
        assert!(
            ann_page
                .body
                .contains(&format!("data-csrf=\"{ann_token}\"")),
            "the client's token is the browser's own"
        );
        let ann_etag = ann_page.headers.get(ETAG).expect("ETag").clone();
        assert_ne!(Some(&ann_etag), bob_page.headers.get(ETAG));
        let again = ann
            .client
            .get(inst.url("/spaces/book-club/rooms/lobby"))
            .header(IF_NONE_MATCH, ann_etag.clone())
            .send()
            .await
            .expect("conditional GET");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        // Bob's copy is not Ann's.
        let crossed = bob
            .client
            .get(inst.url("/spaces/book-club/rooms/lobby"))
            .header(IF_NONE_MATCH, ann_etag)
            .send()
            .await
            .expect("conditional GET");
        assert_eq!(crossed.status(), StatusCode::OK);

        // The token in the cached page works: the guest may ask for a media token with it.
        let token = ann
            .client
            .post(inst.url("/spaces/book-club/rooms/lobby/token"))
            .header("x-csrf-token", ann_token)
            .header("accept", "application/json")
            .form(&[("guest_name", "Ann")])
            .send()
            .await
            .expect("POST token");
        assert_eq!(token.status(), StatusCode::OK);
    }
);

on_both!(
    signed_in_and_personal_pages_are_never_stored,
    |backend| async move {
        let (inst, owner) = instance(backend).await;
        for path in [
            "/spaces/book-club",
            "/spaces/book-club/rooms/lobby",
            "/",
            "/me",
        ] {
            let page = owner.get(path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert_eq!(
                page.headers
                    .get(CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok()),
                Some("private, no-store"),
                "{path} signed in"
            );
            assert!(page.headers.get(ETAG).is_none(), "{path} signed in");
        }
        // Pages for anonymous visitors that carry a form are personal too.
        let guest = inst.browser();
        for path in ["/signin", "/signup", "/"] {
            let page = guest.get(path).await;
            assert_eq!(
                page.headers
                    .get(CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok()),
                Some("private, no-store"),
                "{path} anonymous"
            );
        }
        // The same browser, still anonymous, gets the shared Space page, which sets no cookie.
        let page = guest.get("/spaces/book-club").await;
        assert_eq!(
            page.headers
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("public, max-age=2")
        );
        assert!(page.headers.get(SET_COOKIE).is_none());
    }
);

on_both!(a_write_is_visible_on_the_next_read, |backend| async move {
    let (inst, owner) = instance(backend).await;
    let visitor = reqwest::Client::new();
    let space = visitor
        .get(inst.url("/spaces/book-club"))
        .send()
        .await
        .expect("GET");
    let etag = space.headers().get(ETAG).expect("ETag").clone();
    assert!(space.text().await.expect("body").contains("We read."));
    let room = inst.browser();
    assert!(
        room.get("/spaces/book-club/rooms/lobby")
            .await
            .body
            .contains("Talk")
    );

    owner.get("/spaces/book-club/rooms/lobby/edit").await;
    let saved = owner
        .post(
            "/spaces/book-club/rooms/lobby/edit",
            &room_fields("Poetry night"),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    // Well within the cache's lifetime: only the invalidation makes these fresh.
    let page = room.get("/spaces/book-club/rooms/lobby").await;
    assert!(page.body.contains("Poetry night"), "{}", page.body);
    let page = visitor
        .get(inst.url("/spaces/book-club"))
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the old validator no longer matches"
    );
    assert_ne!(page.headers().get(ETAG), Some(&etag));
    assert!(page.text().await.expect("body").contains("Poetry night"));
});

/// The federation documents a burst of servers asks for when a Space is announced: its actor,
/// its followers collection, WebFinger for its handle and NodeInfo.
fn federation_documents(inst: &TestInstance) -> Vec<(String, &'static str)> {
    let activity = "application/activity+json";
    vec![
        (inst.url("/spaces/book-club"), activity),
        (inst.url("/spaces/book-club/followers"), activity),
        (
            inst.url(&format!(
                "/.well-known/webfinger?resource=acct:book-club@{}",
                inst.settings.domain()
            )),
            "application/jrd+json",
        ),
        (inst.url("/nodeinfo/2.1"), "application/json"),
    ]
}

// Regression test for issue 13: actor and collection JSON, WebFinger and NodeInfo are loaded
// once per expiry however many servers ask at once, carry validators and answer 304, and a
// write shows in them at once.
on_both!(
    federation_documents_are_loaded_once_under_a_burst_and_answer_304,
    |backend| async move {
        let (inst, owner) = instance(backend).await;
        let client = reqwest::Client::new();
        let documents = federation_documents(&inst);
        let fetch = |url: String, accept: &'static str, etag: Option<String>| {
            let client = client.clone();
            async move {
                let mut request = client.get(&url).header("accept", accept);
                if let Some(etag) = etag {
                    request = request.header(IF_NONE_MATCH, etag);
                }
                let response = request.send().await.expect("GET");
                let status = response.status();
                let etag = response
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let control = response
                    .headers()
                    .get(CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                (status, etag, control, response.text().await.expect("body"))
            }
        };
        // Warm every document (the Space's key is made on first need), then let them expire.
        let mut etags = Vec::new();
        for (url, accept) in &documents {
            let (status, etag, control, body) = fetch(url.clone(), accept, None).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            assert!(control.is_some_and(|c| c.starts_with("public")), "{url}");
            etags.push(etag.unwrap_or_else(|| panic!("{url} has an ETag")));
        }
        let loads = metric(&inst, "convene_document_cache_loads_total").await;
        tokio::time::sleep(Duration::from_millis(TTL_MS + 300)).await;

        let requests = (0..200).map(|i| {
            let (url, accept) = documents[i % documents.len()].clone();
            fetch(url, accept, None)
        });
        for (status, _, _, body) in futures_util::future::join_all(requests).await {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        assert_eq!(
            metric(&inst, "convene_document_cache_loads_total").await - loads,
            documents.len() as u64,
            "one load per document reached the database"
        );
        assert!(metric(&inst, "convene_document_cache_stale_total").await > 0);

        // A copy a server already has is confirmed without a body.
        for ((url, accept), etag) in documents.iter().zip(&etags) {
            let (status, again, _, body) = fetch(url.clone(), accept, Some(etag.clone())).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{url}");
            assert_eq!(again.as_ref(), Some(etag));
            assert!(body.is_empty());
        }

        // A write shows at once: the actor's name changes and its old copy is no longer current.
        owner.get("/spaces/book-club/edit").await;
        let saved = owner
            .post(
                "/spaces/book-club/edit",
                &[
                    ("name", "Reading Circle"),
                    ("description", "We read."),
                    ("listed", "true"),
                    ("entrance_room", ""),
                ],
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
        let (url, accept) = documents[0].clone();
        let (status, _, _, body) = fetch(url, accept, Some(etags[0].clone())).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("Reading Circle"), "{body}");
    }
);
