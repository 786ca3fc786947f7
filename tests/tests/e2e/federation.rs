//! Federation, issue 8: actors at the URLs of their pages, WebFinger, NodeInfo and the
//! followers collection, read by plain HTTP clients and by the `federation` crate's own
//! guarded fetcher the way another instance reads them.

use axum::response::IntoResponse;
use convene::activitypub::LocalDirectory;
use convene_federation::directory::Directory;
use convene_federation::fetch::{FetchClient, FetchSettings};
use convene_federation::protocol::Id;
use convene_federation::receive::FetchKeySource;
use convene_federation::{Address, webfinger};
use serde_json::Value;

use super::*;

const AP: &str = "application/activity+json";
const LD: &str = "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"";

/// GETs `url` with `accept`, giving the status, the content type and the body.
async fn get(url: &str, accept: &str) -> (StatusCode, String, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.expect("body");
    (status, content_type, body)
}

async fn get_json(url: &str, accept: &str) -> Value {
    let (status, content_type, body) = get(url, accept).await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    assert!(
        content_type.contains("json"),
        "{url} answered {content_type}"
    );
    serde_json::from_str(&body).expect("JSON")
}

on_both!(
    actors_are_served_at_their_pages_by_content_negotiation,
    |backend| async move {
        let (inst, _owner) = instance_with_space(backend).await;
        let space_url = inst.url("/spaces/book-club");

        let space = get_json(&space_url, AP).await;
        assert_eq!(space["type"], "Group");
        assert_eq!(space["id"], space_url.as_str());
        assert_eq!(space["preferredUsername"], "book-club");
        assert_eq!(space["name"], "Book Club");
        assert_eq!(space["summary"], "<p>We read.</p>");
        assert_eq!(space["inbox"], format!("{space_url}/inbox"));
        assert_eq!(space["followers"], format!("{space_url}/followers"));
        assert_eq!(space["endpoints"]["sharedInbox"], inst.url("/inbox"));
        assert_eq!(space["manuallyApprovesFollowers"], false);
        assert_eq!(space["publicKey"]["id"], format!("{space_url}#main-key"));
        assert_eq!(space["publicKey"]["owner"], space_url.as_str());
        let pem = space["publicKey"]["publicKeyPem"].as_str().unwrap_or("");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        let contexts = space["@context"].to_string();
        assert!(contexts.contains("https://www.w3.org/ns/activitystreams"));
        assert!(contexts.contains("https://w3id.org/security/v1"));

        // The key is made once and kept.
        let again = get_json(&space_url, LD).await;
        assert_eq!(again["publicKey"], space["publicKey"]);

        // Browsers still get the page, and caches are told the two differ.
        let response = reqwest::Client::new()
            .get(&space_url)
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .expect("page");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response
                .headers()
                .get_all("vary")
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("Accept")))
        );
        let html = response.text().await.expect("html");
        assert!(html.contains("<html"), "{html}");

        // Rooms: Groups attributed to their Space, with the convene: properties.
        for (slug, access) in [
            ("lobby", "open"),
            ("circle", "members-only"),
            ("vault", "locked"),
        ] {
            let room = get_json(&inst.url(&format!("/spaces/book-club/rooms/{slug}")), AP).await;
            assert_eq!(room["type"], "Group", "{slug}");
            assert_eq!(room["attributedTo"], space_url.as_str());
            assert_eq!(room["accessMode"], access);
            assert_eq!(room["capacity"], 12);
            assert_eq!(room["headCount"], 0);
            assert!(room["@context"].to_string().contains("convene"));
        }
        // An unlisted Room has no public actor; unknown ones are 404, not 500.
        for path in [
            "/spaces/book-club/rooms/hideout",
            "/spaces/book-club/rooms/nowhere",
            "/spaces/nowhere",
            "/people/nobody",
            "/people/NOT%20A%20HANDLE",
        ] {
            let (status, _, body) = get(&inst.url(path), AP).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }

        // A Passport is a Person, with a page for browsers at the same URL.
        let person = get_json(&inst.url("/people/olive"), AP).await;
        assert_eq!(person["type"], "Person");
        assert_eq!(person["preferredUsername"], "olive");
        assert_eq!(person["name"], "Olive Owner");
        let (status, content_type, body) = get(&inst.url("/people/olive"), "text/html").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"));
        assert!(body.contains("Olive Owner"));
        assert!(body.contains(&format!("@olive@{}", inst.settings.domain())));

        // The instance actor answers anyone, whatever they accept.
        let actor = get_json(&inst.url("/actor"), "*/*").await;
        assert_eq!(actor["type"], "Application");
        assert_eq!(actor["preferredUsername"], "instance");
        assert!(actor.get("followers").is_none());

        // Collections.
        let followers = get_json(&format!("{space_url}/followers"), AP).await;
        assert_eq!(followers["type"], "OrderedCollection");
        assert_eq!(followers["totalItems"], 0);
        let outbox = get_json(&format!("{space_url}/outbox"), AP).await;
        assert_eq!(outbox["totalItems"], 0);
        let (status, _, _) = get(&inst.url("/spaces/nowhere/followers"), AP).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The convene: vocabulary is published.
        let context = get_json(&inst.url("/ns/convene.jsonld"), "*/*").await;
        assert!(context["@context"]["headCount"].is_object());
    }
);

on_both!(
    webfinger_and_nodeinfo_describe_the_instance,
    |backend| async move {
        let (inst, _owner) = instance_with_space(backend).await;
        let domain = inst.settings.domain();
        let finger = |resource: String| {
            let url = reqwest::Url::parse_with_params(
                &inst.url("/.well-known/webfinger"),
                &[("resource", resource)],
            )
            .expect("url");
            async move { get(url.as_str(), "application/jrd+json").await }
        };
        for (name, path) in [
            ("book-club", "/spaces/book-club"),
            ("olive", "/people/olive"),
            ("instance", "/actor"),
        ] {
            let (status, content_type, body) = finger(format!("acct:{name}@{domain}")).await;
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            assert!(content_type.starts_with("application/jrd+json"));
            let jrd: Value = serde_json::from_str(&body).expect("JRD");
            assert_eq!(jrd["subject"], format!("acct:{name}@{domain}"));
            let self_link = jrd["links"]
                .as_array()
                .and_then(|links| links.iter().find(|l| l["rel"] == "self"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(self_link["type"], AP);
            assert_eq!(self_link["href"], inst.url(path));
            assert!(body.contains("http://ostatus.org/schema/1.0/subscribe"));
        }
        // The actor's URL is a resource too.
        let (status, _, _) = finger(inst.url("/spaces/book-club")).await;
        assert_eq!(status, StatusCode::OK);
        // Unknown handles and other domains: 404. Malformed resources: 400.
        for resource in [
            format!("acct:nobody@{domain}"),
            "acct:book-club@elsewhere.example".to_owned(),
        ] {
            let (status, _, body) = finger(resource.clone()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{resource}: {body}");
        }
        for resource in ["book-club", "acct:", "acct:@@", "mailto:x@y", ""] {
            let (status, _, body) = finger(resource.to_owned()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{resource:?}: {body}");
        }
        let (status, _, _) = get(&inst.url("/.well-known/webfinger"), "*/*").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let links = get_json(&inst.url("/.well-known/nodeinfo"), "*/*").await;
        assert_eq!(
            links["links"][0]["rel"],
            "http://nodeinfo.diaspora.software/ns/schema/2.1"
        );
        assert_eq!(links["links"][0]["href"], inst.url("/nodeinfo/2.1"));
        let info = get_json(&inst.url("/nodeinfo/2.1"), "*/*").await;
        assert_eq!(info["version"], "2.1");
        assert_eq!(info["software"]["name"], "convene");
        assert_eq!(info["protocols"][0], "activitypub");
        assert_eq!(info["openRegistrations"], true);
        assert_eq!(info["usage"]["users"]["total"], 1);
        assert_eq!(info["usage"]["users"]["activeMonth"], 1);
    }
);

on_both!(
    another_instance_resolves_a_space_with_the_federation_crate,
    |backend| async move {
        let (b, _owner) = instance_with_space(backend).await;
        let a = TestInstance::spawn(backend).await;
        let client = FetchClient::new(FetchSettings {
            allow_loopback: true,
            ..FetchSettings::default()
        })
        .expect("client");

        // WebFinger, as A would resolve @book-club@B.
        let address = Address::parse(&format!("@book-club@{}", b.settings.domain())).expect("a");
        let url = webfinger::query_url(&address, "http").expect("query url");
        let jrd = client
            .get(&url, "application/jrd+json", None)
            .await
            .expect("webfinger");
        let resolved = webfinger::parse(&jrd.body, &address).expect("a usable JRD");
        assert_eq!(resolved.actor.as_str(), b.url("/spaces/book-club"));
        assert!(resolved.subscribe_template.is_some());

        // The actor behind the key, fetched with a GET signed by A's instance actor, passes
        // every check a verifier makes (owner, key id, inboxes on the actor's host).
        let a_actor = Id::parse(&a.url("/actor")).expect("id");
        let a_keys = LocalDirectory::new(a.state().core.clone())
            .keys_of(&a_actor)
            .await
            .expect("A's instance actor has keys");
        let keys = FetchKeySource {
            client: client.clone(),
            signer: Some((a_actor.with_suffix("#main-key").expect("key id"), a_keys)),
        };
        let key_id = resolved.actor.with_suffix("#main-key").expect("key id");
        let actor = keys
            .fetch_actor(&key_id)
            .await
            .expect("B's Space as an actor");
        assert_eq!(actor.id, resolved.actor);
        assert_eq!(
            actor
                .endpoints
                .and_then(|e| e.shared_inbox)
                .map(|i| i.to_string()),
            Some(b.url("/inbox"))
        );
        // And B can read A's instance actor the same way.
        let back = FetchKeySource {
            client,
            signer: None,
        }
        .fetch_actor(&a_actor.with_suffix("#main-key").expect("key id"))
        .await
        .expect("A's instance actor");
        assert_eq!(back.id, a_actor);
    }
);

on_both!(
    passports_and_spaces_share_one_namespace,
    |backend| async move {
        let (inst, owner) = instance_with_space(backend).await;
        // A Space may not take a Passport's handle...
        let page = owner
            .submit(
                "/spaces",
                &[
                    ("name", "Olive's"),
                    ("slug", "olive"),
                    ("description", ""),
                    ("listed", "true"),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(
            page.body.contains("person&#39;s address") || page.body.contains("person's address")
        );
        // ...nor a Passport a Space's slug.
        let page = owner
            .submit(
                "/spaces",
                &[
                    ("name", "Readers"),
                    ("slug", "readers"),
                    ("description", ""),
                    ("listed", "true"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let visitor = inst.browser();
        visitor.get("/signup").await;
        let page = visitor
            .submit(
                "/signup",
                &[
                    ("email", "rae@example.org"),
                    ("handle", "readers"),
                    ("display_name", "Rae"),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(page.body.contains("address of a Space"), "{}", page.body);
        // So WebFinger names exactly one actor for each.
        let (status, _, body) = get(
            &inst.url(&format!(
                "/.well-known/webfinger?resource=acct:readers@{}",
                inst.settings.domain()
            )),
            "*/*",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(&inst.url("/spaces/readers")), "{body}");
    }
);

/// A remote ActivityPub server played by the test: one Person whose document it serves, and
/// an inbox that keeps what it is sent.
struct RemoteServer {
    base: String,
    actor: Id,
    keys: convene_federation::ActorKeys,
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl RemoteServer {
    async fn start() -> Self {
        use convene_federation::protocol::actor::{Actor, ActorKind, LocalActor};
        use convene_federation::protocol::context::with_context;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let base = format!("http://localhost:{port}");
        let keys = convene_federation::ActorKeys::generate().expect("keys");
        let actor = Id::parse(&format!("{base}/users/rae")).expect("id");
        let mut documents = std::collections::HashMap::new();
        // Two people on this server: deliveries to both go to its one shared inbox.
        for name in ["rae", "sam"] {
            let id = Id::parse(&format!("{base}/users/{name}")).expect("id");
            let document = Actor::local(LocalActor {
                kind: ActorKind::Person,
                id,
                preferred_username: name.into(),
                name: Some(format!("{name} remote")),
                summary: None,
                url: None,
                icon: None,
                public_key_pem: keys.public_key_pem().to_owned(),
                shared_inbox: Id::parse(&format!("{base}/inbox")).expect("id"),
                attributed_to: None,
                room: None,
                manually_approves_followers: false,
            })
            .expect("actor");
            let json = serde_json::to_string(&with_context(document)).expect("json");
            documents.insert(name.to_owned(), json);
        }
        let documents = std::sync::Arc::new(documents);
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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
            .route(
                "/users/{name}",
                axum::routing::get(
                    move |axum::extract::Path(name): axum::extract::Path<String>| {
                        let document = documents.get(&name).cloned();
                        async move {
                            match document {
                                Some(d) => ([("content-type", "application/activity+json")], d)
                                    .into_response(),
                                None => StatusCode::NOT_FOUND.into_response(),
                            }
                        }
                    },
                ),
            )
            .route("/users/{name}/inbox", axum::routing::post(keep.clone()))
            .route("/inbox", axum::routing::post(keep));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            actor,
            keys,
            received,
        }
    }

    fn key_id(&self) -> Id {
        self.actor.with_suffix("#main-key").expect("key id")
    }

    /// POSTs `body` to `url` signed by this server's Person.
    async fn post_signed(&self, url: &str, body: &[u8]) -> StatusCode {
        self.post_signed_as(&self.key_id(), url, body).await
    }

    /// POSTs `body` to `url` signed with `key_id` (rae's or sam's: they share a key pair).
    async fn post_signed_as(&self, key_id: &Id, url: &str, body: &[u8]) -> StatusCode {
        let url = reqwest::Url::parse(url).expect("url");
        let signed = convene_federation::signature::sign_request(
            &axum::http::Method::POST,
            &url,
            Some(body),
            key_id.url(),
            &self.keys,
            std::time::SystemTime::now(),
        )
        .expect("sign");
        reqwest::Client::new()
            .post(url)
            .headers(signed.to_header_map().expect("headers"))
            .header("content-type", AP)
            .body(body.to_vec())
            .send()
            .await
            .expect("post")
            .status()
    }

    /// Waits until the inbox holds `n` activities.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let got = self.received.lock().expect("lock").clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the remote inbox did not receive {n} activities");
    }
}

async fn follower_count(inst: &TestInstance, space: &str) -> u64 {
    get_json(&inst.url(&format!("/spaces/{space}/followers")), AP).await["totalItems"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

on_both!(
    a_remote_actor_follows_a_space_and_receives_the_accept,
    |backend| async move {
        let (b, _owner) = instance_with_space(backend).await;
        // Fetching the remote server on loopback needs the development setting; a second
        // instance on the default settings refuses the same follower (below).
        let remote = RemoteServer::start().await;
        let space = b.url("/spaces/book-club");
        let follow = serde_json::json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{}/follows/1", remote.base),
            "type": "Follow",
            "actor": remote.actor.as_str(),
            "object": space,
        })
        .to_string();
        let status = remote
            .post_signed(&format!("{space}/inbox"), follow.as_bytes())
            .await;
        // B runs with default settings: loopback peers are refused (the follower's key cannot
        // be fetched), never a 500.
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(follower_count(&b, "book-club").await, 0);
        drop(b);

        let b = TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true)
            .await;
        let owner = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
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
        assert_eq!(page.status, StatusCode::OK);
        let space = b.url("/spaces/book-club");
        let follow = serde_json::json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{}/follows/1", remote.base),
            "type": "Follow",
            "actor": remote.actor.as_str(),
            "object": space,
        })
        .to_string();
        let status = remote
            .post_signed(&format!("{space}/inbox"), follow.as_bytes())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let received = remote.wait_for(1).await;
        let accept = &received[0];
        assert_eq!(accept["type"], "Accept");
        assert_eq!(accept["actor"], space.as_str());
        assert_eq!(accept["object"]["type"], "Follow");
        assert_eq!(accept["object"]["id"], format!("{}/follows/1", remote.base));
        assert_eq!(follower_count(&b, "book-club").await, 1);

        // The same Follow again (a new signature, the same activity id) changes nothing.
        let status = remote
            .post_signed(&b.url("/inbox"), follow.as_bytes())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(remote.received.lock().expect("lock").len(), 1);
        assert_eq!(follower_count(&b, "book-club").await, 1);

        // A Follow of something that is not a Space here: 404.
        let stray = serde_json::json!({
            "id": format!("{}/follows/2", remote.base),
            "type": "Follow",
            "actor": remote.actor.as_str(),
            "object": b.url("/spaces/nowhere"),
        })
        .to_string();
        let status = remote.post_signed(&b.url("/inbox"), stray.as_bytes()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Undo ends the follow.
        let undo = serde_json::json!({
            "id": format!("{}/undos/1", remote.base),
            "type": "Undo",
            "actor": remote.actor.as_str(),
            "object": serde_json::from_str::<Value>(&follow).expect("json"),
        })
        .to_string();
        let status = remote.post_signed(&b.url("/inbox"), undo.as_bytes()).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(follower_count(&b, "book-club").await, 0);
    }
);

on_both!(
    the_inbox_answers_bad_requests_with_4xx,
    |backend| async move {
        let b = TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true)
            .await;
        let remote = RemoteServer::start().await;
        let inbox = b.url("/inbox");
        let client = reqwest::Client::new();
        let follow = serde_json::json!({
            "id": format!("{}/follows/9", remote.base),
            "type": "Follow",
            "actor": remote.actor.as_str(),
            "object": b.url("/actor"),
        })
        .to_string();

        // Unsigned.
        let status = client
            .post(&inbox)
            .header("content-type", AP)
            .body(follow.clone())
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Signed with RFC 9421 only.
        let status = client
            .post(&inbox)
            .header("content-type", AP)
            .header(
                "signature-input",
                "sig1=(\"@method\" \"@target-uri\");keyid=\"k\"",
            )
            .header("signature", "sig1=:AAAA:")
            .body(follow.clone())
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Forged: signed for one body, sent with another.
        let url = reqwest::Url::parse(&inbox).expect("url");
        let signed = convene_federation::signature::sign_request(
            &axum::http::Method::POST,
            &url,
            Some(follow.as_bytes()),
            remote.key_id().url(),
            &remote.keys,
            std::time::SystemTime::now(),
        )
        .expect("sign");
        let tampered = follow.replace("follows/9", "follows/10");
        let status = client
            .post(url.clone())
            .headers(signed.to_header_map().expect("headers"))
            .header("content-type", AP)
            .body(tampered)
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Replayed: the exact same signed request twice.
        let send = || {
            client
                .post(url.clone())
                .headers(signed.to_header_map().expect("headers"))
                .header("content-type", AP)
                .body(follow.clone())
                .send()
        };
        let first = send().await.expect("post").status();
        let second = send().await.expect("post").status();
        // The Follow names the instance actor, which takes no followers: 404 the first time;
        // the captured copy is refused as a replay.
        assert_eq!(first, StatusCode::NOT_FOUND);
        assert_eq!(second, StatusCode::UNAUTHORIZED);
        // Signed, but not JSON.
        let status = remote.post_signed(&inbox, b"{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Signed, JSON, but not an activity.
        let status = remote.post_signed(&inbox, b"{\"type\": 7}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Over 1 MiB.
        let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1024 * 1024 + 10));
        let status = client
            .post(&inbox)
            .header("content-type", AP)
            .body(big)
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
);

on_both!(
    a_space_announces_new_and_deleted_rooms_to_its_followers,
    |backend| async move {
        let b = TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true)
            .await;
        let owner = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
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
        assert_eq!(page.status, StatusCode::OK);
        let space = b.url("/spaces/book-club");
        let remote = RemoteServer::start().await;
        // Two followers on one remote server.
        for name in ["rae", "sam"] {
            let actor = format!("{}/users/{name}", remote.base);
            let follow = serde_json::json!({
                "id": format!("{actor}/follows/1"),
                "type": "Follow",
                "actor": actor,
                "object": space,
            })
            .to_string();
            let key_id = Id::parse(&format!("{actor}#main-key")).expect("key id");
            let status = remote
                .post_signed_as(&key_id, &b.url("/inbox"), follow.as_bytes())
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{name}");
        }
        remote.wait_for(2).await;
        assert_eq!(follower_count(&b, "book-club").await, 2);

        let room = |slug: &'static str, listed: &'static str| {
            vec![
                ("name", "Garden Room"),
                ("slug", slug),
                ("topic", "Plants <b>and</b> people"),
                ("access", "open"),
                ("access_code", ""),
                ("capacity", "8"),
                ("listed", listed),
            ]
        };
        // An unlisted Room is not announced; a listed one is, once per shared inbox.
        let page = owner
            .submit("/spaces/book-club/rooms", &room("hidden", "false"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let page = owner
            .submit("/spaces/book-club/rooms", &room("garden", "true"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        // Two Announces, once per shared inbox: FEP-1b12's of the Create, and a Note for
        // Mastodon-like timelines.
        let received = remote.wait_for(4).await;
        let announced = |kind: &str| {
            received[2..]
                .iter()
                .find(|a| a["object"]["type"] == kind)
                .cloned()
                .unwrap_or_else(|| panic!("an Announce of a {kind}: {received:?}"))
        };
        let announce = announced("Create");
        assert_eq!(announce["type"], "Announce");
        assert_eq!(announce["actor"], space.as_str());
        assert_eq!(announce["audience"], space.as_str());
        let note = announced("Note");
        assert_eq!(note["type"], "Announce");
        assert_eq!(note["actor"], space.as_str());
        assert_eq!(
            note["to"][0],
            "https://www.w3.org/ns/activitystreams#Public"
        );
        assert_eq!(
            note["object"]["url"],
            b.url("/spaces/book-club/rooms/garden")
        );
        let content = note["object"]["content"].as_str().unwrap_or_default();
        assert!(
            content.contains("Garden Room")
                && content.contains(&format!(
                    "href=\"{}\"",
                    b.url("/spaces/book-club/rooms/garden")
                )),
            "{content}"
        );
        let created = &announce["object"]["object"];
        assert_eq!(created["type"], "Group");
        assert_eq!(created["id"], b.url("/spaces/book-club/rooms/garden"));
        assert_eq!(created["attributedTo"], space.as_str());
        assert_eq!(created["capacity"], 8);
        assert_eq!(
            created["summary"],
            "<p>Plants &lt;b&gt;and&lt;/b&gt; people</p>"
        );

        // Changing it is announced as an Update of the Room, with its new properties.
        owner.get("/spaces/book-club/rooms/garden/edit").await;
        let mut changed = room("garden", "true");
        changed[0] = ("name", "Greenhouse");
        changed[5] = ("capacity", "20");
        let page = owner
            .submit("/spaces/book-club/rooms/garden/edit", &changed)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let received = remote.wait_for(5).await;
        let announce = &received[4];
        assert_eq!(announce["type"], "Announce");
        assert_eq!(announce["audience"], space.as_str());
        assert_eq!(announce["object"]["type"], "Update");
        assert_eq!(announce["object"]["object"]["name"], "Greenhouse");
        assert_eq!(announce["object"]["object"]["capacity"], 20);

        // Deleting it is announced too.
        owner.get("/spaces/book-club/rooms/garden/delete").await;
        let page = owner
            .submit(
                "/spaces/book-club/rooms/garden/delete",
                &[("confirm", "true")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let received = remote.wait_for(6).await;
        let announce = &received[5];
        assert_eq!(announce["type"], "Announce");
        assert_eq!(announce["object"]["type"], "Delete");
        assert_eq!(
            announce["object"]["object"],
            b.url("/spaces/book-club/rooms/garden")
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(remote.received.lock().expect("lock").len(), 6);
    }
);

impl RemoteServer {
    /// GETs `url` as ActivityPub JSON, signed by rae.
    async fn get_signed(&self, url: &str) -> StatusCode {
        let url = reqwest::Url::parse(url).expect("url");
        let signed = convene_federation::signature::sign_request(
            &axum::http::Method::GET,
            &url,
            None,
            self.key_id().url(),
            &self.keys,
            std::time::SystemTime::now(),
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
    }

    fn domain(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }
}

on_both!(
    the_partner_policy_refuses_blocked_instances_everywhere,
    |backend| async move {
        let b = TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true)
            .await;
        let owner = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
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
        assert_eq!(page.status, StatusCode::OK);
        let space = b.url("/spaces/book-club");
        let remote = RemoteServer::start().await;
        let follow = |n: u32| {
            serde_json::json!({
                "id": format!("{}/follows/{n}", remote.base),
                "type": "Follow",
                "actor": remote.actor.as_str(),
                "object": space,
            })
            .to_string()
        };
        assert_eq!(
            remote
                .post_signed(&b.url("/inbox"), follow(1).as_bytes())
                .await,
            StatusCode::ACCEPTED
        );
        remote.wait_for(1).await;
        assert_eq!(follower_count(&b, "book-club").await, 1);
        assert_eq!(remote.get_signed(&space).await, StatusCode::OK);

        // Allow-list without this partner: nothing is delivered to it.
        b.admin(&["federation", "policy", "allow-list"]).await;
        let room = |slug: &'static str| {
            vec![
                ("name", "A Room"),
                ("slug", slug),
                ("topic", ""),
                ("access", "open"),
                ("access_code", ""),
                ("capacity", "8"),
                ("listed", "true"),
            ]
        };
        let page = owner
            .submit("/spaces/book-club/rooms", &room("first"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(remote.get_signed(&space).await, StatusCode::FORBIDDEN);
        // Once a partner, it hears of the next Room.
        b.admin(&["federation", "allow", &remote.domain()]).await;
        let page = owner
            .submit("/spaces/book-club/rooms", &room("second"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        // FEP-1b12's Announce of the Create, and the Note for timelines.
        let received = remote.wait_for(3).await;
        assert!(
            received[1..].iter().any(|a| a["object"]["type"] == "Create"
                && a["object"]["object"]["id"] == b.url("/spaces/book-club/rooms/second")),
            "{received:?}"
        );

        // Blocked: 403 on every federated endpoint, its follows gone.
        b.admin(&["federation", "policy", "open"]).await;
        b.admin(&["federation", "block", &remote.domain()]).await;
        assert_eq!(follower_count(&b, "book-club").await, 0);
        let webfinger = b.url(&format!(
            "/.well-known/webfinger?resource=acct:book-club@{}",
            b.settings.domain()
        ));
        for url in [
            space.clone(),
            b.url("/actor"),
            webfinger,
            b.url("/nodeinfo/2.1"),
            format!("{space}/followers"),
        ] {
            assert_eq!(
                remote.get_signed(&url).await,
                StatusCode::FORBIDDEN,
                "{url}"
            );
        }
        for inbox in [b.url("/inbox"), format!("{space}/inbox")] {
            assert_eq!(
                remote.post_signed(&inbox, follow(2).as_bytes()).await,
                StatusCode::FORBIDDEN,
                "{inbox}"
            );
        }
        assert_eq!(follower_count(&b, "book-club").await, 0);
        let page = owner
            .submit("/spaces/book-club/rooms", &room("third"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(remote.received.lock().expect("lock").len(), 3);

        // Unblocked, it may follow again.
        b.admin(&["federation", "unblock", &remote.domain()]).await;
        assert_eq!(
            remote
                .post_signed(&b.url("/inbox"), follow(3).as_bytes())
                .await,
            StatusCode::ACCEPTED
        );
        assert_eq!(follower_count(&b, "book-club").await, 1);
    }
);

on_both!(
    a_follow_of_an_unlisted_space_waits_for_its_owner,
    |backend| async move {
        let b = TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true)
            .await;
        let owner = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
        let page = owner
            .submit(
                "/spaces",
                &[
                    // An unticked "listed" box is not sent at all.
                    ("name", "Quiet Corner"),
                    ("slug", "quiet"),
                    ("description", ""),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let space = b.url("/spaces/quiet");
        let document = get_json(&space, AP).await;
        assert_eq!(document["manuallyApprovesFollowers"], true);
        let remote = RemoteServer::start().await;
        let follow = serde_json::json!({
            "id": format!("{}/follows/1", remote.base),
            "type": "Follow",
            "actor": remote.actor.as_str(),
            "object": space,
        })
        .to_string();
        assert_eq!(
            remote
                .post_signed(&b.url("/inbox"), follow.as_bytes())
                .await,
            StatusCode::ACCEPTED
        );
        // Held: no Accept goes out, and the follower is not counted yet.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(remote.received.lock().expect("lock").is_empty());
        assert_eq!(follower_count(&b, "quiet").await, 0);
        let held: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM federation_followers WHERE accepted_at IS NULL")
                .fetch_one(&b.state().db.pool)
                .await
                .and_then(|row| sqlx::Row::try_get(&row, "n"))
                .expect("count");
        assert_eq!(held, 1);
    }
);
