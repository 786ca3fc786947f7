//! Following from here, issue 8: a Passport on one instance follows a Space on another through
//! the Network page, as a browser would, and sees the Space's Rooms come and go as the Space
//! announces them; a blocked third instance is refused everywhere and hears nothing more.

use convene::activitypub::LocalDirectory;
use convene_federation::directory::Directory;
use convene_federation::protocol::Id;
use sqlx::Row;

use super::*;

fn federating(settings: &mut convene::Settings) {
    settings.federation_allow_private_addresses = true;
}

/// Loads `path` until `done` holds for its body (deliveries go through the queue).
async fn wait_for_page(browser: &Browser, path: &str, what: &str, done: impl Fn(&str) -> bool) {
    for _ in 0..300 {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        if done(&page.body) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} never showed {what}");
}

async fn create_space(owner: &Browser, slug: &str, name: &str, listed: bool) {
    let mut fields = vec![("name", name), ("slug", slug), ("description", "We grow.")];
    if listed {
        fields.push(("listed", "true"));
    }
    let page = owner.submit("/spaces", &fields).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

async fn create_room(owner: &Browser, space: &str, slug: &str, name: &str) {
    let fields = vec![
        ("name", name),
        ("slug", slug),
        ("topic", "Seedlings"),
        ("access", "open"),
        ("access_code", ""),
        ("capacity", "9"),
        ("listed", "true"),
    ];
    let page = owner
        .submit(&format!("/spaces/{space}/rooms"), &fields)
        .await;
    assert_eq!(page.status, StatusCode::OK, "room {slug}: {}", page.body);
}

async fn jobs_to(inst: &TestInstance, destination: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE destination = $1")
        .bind(destination)
        .fetch_one(&inst.state().db.pool)
        .await
        .and_then(|row| row.try_get::<i64, _>("n"))
        .expect("count jobs")
}

/// A request to `url` signed by `signer`'s instance actor, as that instance would send it.
async fn signed_by_instance(
    signer: &TestInstance,
    method: axum::http::Method,
    url: &str,
    body: Option<&[u8]>,
) -> StatusCode {
    let actor = Id::parse(&signer.url("/actor")).expect("id");
    let keys = LocalDirectory::new(signer.state().core.clone())
        .keys_of(&actor)
        .await
        .expect("instance keys");
    let url = reqwest::Url::parse(url).expect("url");
    let signed = convene_federation::signature::sign_request(
        &method,
        &url,
        body,
        actor.with_suffix("#main-key").expect("key id").url(),
        &keys,
        std::time::SystemTime::now(),
    )
    .expect("sign");
    let request = reqwest::Client::new()
        .request(method, url)
        .headers(signed.to_header_map().expect("headers"))
        .header("accept", "application/activity+json")
        .header("content-type", "application/activity+json");
    let request = match body {
        Some(body) => request.body(body.to_vec()),
        None => request,
    };
    request.send().await.expect("request").status()
}

on_both!(
    a_passport_follows_a_space_elsewhere_and_sees_its_rooms,
    |backend| async move {
        let a = TestInstance::spawn_with(backend, federating).await;
        let b = TestInstance::spawn_with(backend, federating).await;
        let c = TestInstance::spawn_with(backend, federating).await;
        let ada = a.sign_up("ada@example.org", "ada", "Ada").await;
        let olive = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
        let cleo = c.sign_up("cleo@example.org", "cleo", "Cleo").await;
        create_space(&olive, "garden", "Garden Club", true).await;
        let b_domain = b.settings.domain();
        let c_domain = c.settings.domain();

        // The Network page is in the navigation of signed-in people.
        let page = ada.get("/").await;
        assert!(page.body.contains("href=\"/network\""), "{}", page.body);
        let page = ada.get("/network").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Follow a Space elsewhere"));
        // Signed out, it asks for a sign-in.
        let stranger = a.browser();
        let page = stranger.get("/network").await;
        assert_eq!(page.path, "/signin", "{}", page.body);

        // Bad input is explained on the form (422), never a 500.
        for (handle, says) in [
            ("not a handle", "Write the address"),
            ("", "Give the Space"),
            (&format!("@nobody@{b_domain}") as &str, "does not know"),
            (&format!("@olive@{b_domain}"), "not a Space"),
            (&format!("@ada@{}", a.settings.domain()), "on this instance"),
            ("@garden@unreachable.invalid", "could not be reached"),
            (&b.url("/spaces/garden/rooms/nowhere"), "answered 404"),
        ] {
            let page = ada.post("/network/follow", &[("handle", handle)]).await;
            assert_eq!(
                page.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{handle}: {}",
                page.body
            );
            assert!(page.body.contains(says), "{handle}: {}", page.body);
        }

        // Ada follows the Space by its handle; B accepts it.
        let page = ada
            .submit(
                "/network/follow",
                &[("handle", &format!("@garden@{b_domain}"))],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.path, "/network");
        assert!(page.body.contains("Garden Club"), "{}", page.body);
        wait_for_page(&ada, "/network", "the Accept", |body| {
            body.contains(">following<")
        })
        .await;
        assert_eq!(federation_followers(&b, "garden").await, 1);
        // Cleo on C follows it by its link.
        let page = cleo
            .submit("/network/follow", &[("handle", &b.url("/spaces/garden"))])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        wait_for_page(&cleo, "/network", "the Accept", |body| {
            body.contains(">following<")
        })
        .await;
        assert_eq!(federation_followers(&b, "garden").await, 2);

        // B's owner renames the Space: its followers elsewhere hear of it (an Update of it).
        olive.get("/spaces/garden/edit").await;
        let page = olive
            .submit(
                "/spaces/garden/edit",
                &[
                    ("name", "Garden Society"),
                    ("description", "We grow <b>seeds</b> & friends."),
                    ("listed", "true"),
                    ("entrance_room", ""),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        wait_for_page(&ada, "/network", "the new name", |body| {
            // Text from elsewhere is shown as text: what the owner typed, escaped.
            body.contains("Garden Society")
                && body.contains("We grow &lt;b&gt;seeds&lt;/b&gt; &amp; friends.")
        })
        .await;

        // B's owner opens a Room: it appears on both Network pages, with its link and count.
        create_room(&olive, "garden", "potting-shed", "Potting Shed").await;
        let room_url = b.url("/spaces/garden/rooms/potting-shed");
        for browser in [&ada, &cleo] {
            wait_for_page(browser, "/network", "the new Room", |body| {
                body.contains("Potting Shed") && body.contains(&room_url)
            })
            .await;
        }
        let page = ada.get("/network").await;
        assert!(page.body.contains("0 inside"), "{}", page.body);

        // Someone walks into the Room on B: its followers hear the head count.
        olive.get("/spaces/garden/rooms/potting-shed").await;
        let page = olive
            .post("/spaces/garden/rooms/potting-shed/token", &[])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let ticket: serde_json::Value = serde_json::from_str(&page.body).expect("a ticket");
        // A seat counts once media connects: a real peer enters.
        let (socket, _) = tokio_tungstenite::connect_async(format!(
            "ws://{}{}",
            b.settings.listen,
            ticket["signal_url"].as_str().unwrap_or_default()
        ))
        .await
        .expect("the signaling socket opens");
        let (mut sink, mut stream) = futures_util::StreamExt::split(socket);
        let join = serde_json::to_string(&convene_media::signaling::ClientMessage::Join {
            token: ticket["token"].as_str().unwrap_or_default().to_owned(),
        })
        .expect("json");
        futures_util::SinkExt::send(
            &mut sink,
            tokio_tungstenite::tungstenite::Message::text(join),
        )
        .await
        .expect("join sent");
        let (to_server, mut outgoing) = tokio::sync::mpsc::channel::<String>(256);
        let (incoming, from_server) = tokio::sync::mpsc::channel::<String>(64);
        tokio::spawn(async move {
            while let Some(text) = outgoing.recv().await {
                let frame = tokio_tungstenite::tungstenite::Message::text(text);
                if futures_util::SinkExt::send(&mut sink, frame).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(Ok(frame)) = futures_util::StreamExt::next(&mut stream).await {
                if let tokio_tungstenite::tungstenite::Message::Text(text) = frame
                    && incoming.send(text.as_str().to_owned()).await.is_err()
                {
                    break;
                }
            }
        });
        let peer = convene_media::testing::start(
            ticket["participant"].as_str().unwrap_or_default(),
            0,
            true,
            to_server,
            from_server,
        )
        .await
        .expect("Olive's media connects");
        wait_for_page(&ada, "/network", "one person inside", |body| {
            body.contains("1 inside")
        })
        .await;
        peer.close().await;

        // B's owner renames it and lets more in: A shows the Room as changed.
        olive.get("/spaces/garden/rooms/potting-shed/edit").await;
        let page = olive
            .submit(
                "/spaces/garden/rooms/potting-shed/edit",
                &[
                    ("name", "Seed Library"),
                    ("slug", "potting-shed"),
                    ("topic", "Seedlings"),
                    ("access", "members"),
                    ("access_code", ""),
                    ("capacity", "30"),
                    ("listed", "true"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        wait_for_page(&ada, "/network", "the changed Room", |body| {
            body.contains("Seed Library") && !body.contains("Potting Shed")
        })
        .await;
        let page = ada.get("/network").await;
        assert!(page.body.contains("members only"), "{}", page.body);
        assert!(page.body.contains("of 30"), "{}", page.body);

        // B's owner deletes it: it disappears on A.
        olive.get("/spaces/garden/rooms/potting-shed/delete").await;
        let page = olive
            .submit(
                "/spaces/garden/rooms/potting-shed/delete",
                &[("confirm", "true")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        wait_for_page(&ada, "/network", "the Room gone", |body| {
            !body.contains("Seed Library")
        })
        .await;

        // A visitor from C is a member of the Space on B (as part 2's joins will make them).
        let pool = &b.state().db.pool;
        sqlx::query(
            "INSERT INTO passports (handle, domain, display_name, actor_url, created_at) \
             VALUES ('cleo', $1, 'Cleo', $2, 0)",
        )
        .bind(&c_domain)
        .bind(c.url("/people/cleo"))
        .execute(pool)
        .await
        .expect("a remote Passport");
        sqlx::query(
            "INSERT INTO space_members (space_id, passport_id, role, created_at) \
             SELECT s.id, p.id, 'member', 0 FROM spaces s, passports p \
             WHERE s.slug = 'garden' AND p.domain = $1",
        )
        .bind(&c_domain)
        .execute(pool)
        .await
        .expect("a membership");
        let memberships_from_c = || async {
            sqlx::query(
                "SELECT COUNT(*) AS n FROM space_members m JOIN passports p ON p.id = m.passport_id \
                 WHERE p.domain = $1",
            )
            .bind(&c_domain)
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get::<i64, _>("n"))
            .expect("count")
        };
        assert_eq!(memberships_from_c().await, 1);

        // B's operator blocks C on the federation page: C's follow and membership are gone,
        // C's signed requests get 403, nothing goes to C.
        let page = olive.get("/admin/federation").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let page = olive
            .submit(
                "/admin/federation/partners",
                &[("domain", &c_domain), ("action", "block")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("1 follow(s)"), "{}", page.body);
        assert!(page.body.contains("1 membership(s)"), "{}", page.body);
        assert_eq!(memberships_from_c().await, 0);
        let blocked = &page.body[page.body.find("fed-blocked").expect("a blocked list")..];
        assert!(blocked.contains(&c_domain), "{}", page.body);
        assert_eq!(federation_followers(&b, "garden").await, 1);
        let space = b.url("/spaces/garden");
        for url in [
            space.clone(),
            b.url("/actor"),
            format!("{space}/followers"),
            b.url("/nodeinfo/2.1"),
        ] {
            assert_eq!(
                signed_by_instance(&c, axum::http::Method::GET, &url, None).await,
                StatusCode::FORBIDDEN,
                "{url}"
            );
        }
        let follow = serde_json::json!({
            "id": c.url("/actor#follow-again"),
            "type": "Follow",
            "actor": c.url("/actor"),
            "object": space,
        })
        .to_string();
        for inbox in [b.url("/inbox"), format!("{space}/inbox")] {
            assert_eq!(
                signed_by_instance(
                    &c,
                    axum::http::Method::POST,
                    &inbox,
                    Some(follow.as_bytes())
                )
                .await,
                StatusCode::FORBIDDEN,
                "{inbox}"
            );
        }
        let to_c = jobs_to(&b, &c_domain).await;
        create_room(&olive, "garden", "greenhouse", "Greenhouse").await;
        wait_for_page(&ada, "/network", "the second Room", |body| {
            body.contains("Greenhouse")
        })
        .await;
        assert_eq!(jobs_to(&b, &c_domain).await, to_c, "nothing queued for C");
        let page = cleo.get("/network").await;
        assert!(!page.body.contains("Greenhouse"), "{}", page.body);
        assert_eq!(federation_followers(&b, "garden").await, 1);

        // Ada unfollows: B hears the Undo, and A forgets the Space and its Rooms.
        let page = ada.get("/network").await;
        let action = format!(
            "/network/unfollow?space={}",
            url::form_urlencoded::byte_serialize(space.as_bytes()).collect::<String>()
        );
        assert!(
            page.body.contains(&action.replace('&', "&amp;")),
            "{}",
            page.body
        );
        let page = ada.submit(&action, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(!page.body.contains("Greenhouse"), "{}", page.body);
        for _ in 0..200 {
            if federation_followers(&b, "garden").await == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(federation_followers(&b, "garden").await, 0);
    }
);

on_both!(
    announcements_are_taken_only_from_followed_spaces_about_their_own_rooms,
    |backend| async move {
        let a = TestInstance::spawn_with(backend, federating).await;
        let b = TestInstance::spawn_with(backend, federating).await;
        let _ada = a.sign_up("ada@example.org", "ada", "Ada").await;
        let olive = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
        create_space(&olive, "garden", "Garden Club", true).await;
        let space = b.url("/spaces/garden");
        // B's Space, signing as itself: nobody on A follows it, so A refuses its news.
        let keys = LocalDirectory::new(b.state().core.clone())
            .keys_of(&Id::parse(&space).expect("id"))
            .await
            .expect("Space keys");
        let announce = |n: u32, room: &str| {
            serde_json::json!({
                "id": format!("{space}#announce-{n}"),
                "type": "Announce",
                "actor": space,
                "audience": space,
                "to": ["https://www.w3.org/ns/activitystreams#Public"],
                "object": {
                    "id": format!("{space}#delete-{n}"),
                    "type": "Delete",
                    "actor": space,
                    "object": room,
                },
            })
            .to_string()
        };
        let post = |body: String| {
            let keys = &keys;
            let space = &space;
            let inbox = a.url("/inbox");
            async move {
                let url = reqwest::Url::parse(&inbox).expect("url");
                let signed = convene_federation::signature::sign_request(
                    &axum::http::Method::POST,
                    &url,
                    Some(body.as_bytes()),
                    &reqwest::Url::parse(&format!("{space}#main-key")).expect("key id"),
                    keys,
                    std::time::SystemTime::now(),
                )
                .expect("sign");
                reqwest::Client::new()
                    .post(url)
                    .headers(signed.to_header_map().expect("headers"))
                    .header("content-type", "application/activity+json")
                    .body(body)
                    .send()
                    .await
                    .expect("post")
                    .status()
            }
        };
        assert_eq!(
            post(announce(1, &b.url("/spaces/garden/rooms/x"))).await,
            StatusCode::FORBIDDEN
        );
        // Once someone on A follows it, the same kind of news is taken...
        let ada = a.sign_in("ada@example.org").await;
        let page = ada.submit("/network/follow", &[("handle", &space)]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        wait_for_page(&ada, "/network", "the Accept", |body| {
            body.contains(">following<")
        })
        .await;
        assert_eq!(
            post(announce(2, &b.url("/spaces/garden/rooms/x"))).await,
            StatusCode::ACCEPTED
        );
        // An Announce whose audience is another Space is malformed (400); one that only names
        // what it announces, or an answer to a Follow nobody here sent, changes nothing (202).
        let mut misaddressed: serde_json::Value =
            serde_json::from_str(&announce(9, &b.url("/spaces/garden/rooms/x"))).expect("json");
        misaddressed["audience"] = b.url("/spaces/other").into();
        assert_eq!(
            post(misaddressed.to_string()).await,
            StatusCode::BAD_REQUEST
        );
        let named = serde_json::json!({
            "id": format!("{space}#announce-named"),
            "type": "Announce",
            "actor": space,
            "object": format!("{space}#create-elsewhere"),
        })
        .to_string();
        assert_eq!(post(named).await, StatusCode::ACCEPTED);
        let stray_accept = serde_json::json!({
            "id": format!("{space}#accept-stray"),
            "type": "Accept",
            "actor": space,
            "object": a.url("/people/ada#follow-never-sent"),
        })
        .to_string();
        assert_eq!(post(stray_accept).await, StatusCode::ACCEPTED);
        let page = ada.get("/network").await;
        assert!(page.body.contains(">following<"), "{}", page.body);
        // ...but not a Delete of another host's object (403), nor a Room claimed by the Space
        // that says it belongs elsewhere (403).
        assert_eq!(
            post(announce(3, "https://elsewhere.example/rooms/y")).await,
            StatusCode::FORBIDDEN
        );
        let room_doc = |attributed_to: &str| {
            let mut doc: serde_json::Value = serde_json::from_str(
                &serde_json::to_string(
                    &convene_federation::protocol::actor::Actor::local(
                        convene_federation::protocol::actor::LocalActor {
                            kind: convene_federation::protocol::actor::ActorKind::Group,
                            id: Id::parse(&format!("{space}/rooms/stolen")).expect("id"),
                            preferred_username: "stolen".into(),
                            name: Some("<b>Stolen</b> Room".into()),
                            summary: None,
                            url: None,
                            icon: None,
                            public_key_pem: keys.public_key_pem().to_owned(),
                            shared_inbox: Id::parse(&b.url("/inbox")).expect("id"),
                            attributed_to: Some(Id::parse(attributed_to).expect("id")),
                            room: Some(convene_federation::protocol::actor::RoomProperties {
                                access_mode: convene_federation::protocol::actor::AccessMode::Open,
                                capacity: 4,
                                head_count: 2,
                            }),
                            manually_approves_followers: false,
                        },
                    )
                    .expect("actor"),
                )
                .expect("doc"),
            )
            .expect("json");
            doc["publicKey"]["owner"] = doc["id"].clone();
            doc
        };
        let create = |n: u32, attributed_to: &str| {
            serde_json::json!({
                "id": format!("{space}#announce-c{n}"),
                "type": "Announce",
                "actor": space,
                "audience": space,
                "object": {
                    "id": format!("{space}#create-c{n}"),
                    "type": "Create",
                    "actor": space,
                    "object": room_doc(attributed_to),
                },
            })
            .to_string()
        };
        assert_eq!(
            post(create(1, &b.url("/spaces/other"))).await,
            StatusCode::FORBIDDEN
        );
        let page = ada.get("/network").await;
        assert!(!page.body.contains("Stolen"), "{}", page.body);
        // Its own Room is kept, with its name stripped of markup and its head count.
        assert_eq!(post(create(2, &space)).await, StatusCode::ACCEPTED);
        let page = ada.get("/network").await;
        assert!(page.body.contains("Stolen Room"), "{}", page.body);
        assert!(!page.body.contains("<b>Stolen"), "{}", page.body);
        assert!(page.body.contains("2 inside"), "{}", page.body);
    }
);

on_both!(
    a_follow_of_an_unlisted_space_waits_for_its_owners_answer,
    |backend| async move {
        let a = TestInstance::spawn_with(backend, federating).await;
        let b = TestInstance::spawn_with(backend, federating).await;
        let ada = a.sign_up("ada@example.org", "ada", "Ada").await;
        let bea = a.sign_up("bea@example.org", "bea", "Bea").await;
        let olive = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
        let nosy = b.sign_up("nosy@example.org", "nosy", "Nosy").await;
        create_space(&olive, "quiet", "Quiet Corner", false).await;
        let space = b.url("/spaces/quiet");

        // Ada arrives through her own instance's remote-interaction template, as a "follow"
        // button elsewhere sends her: A's WebFinger names it, and it shows the follow form
        // filled in for her to confirm (a GET follows nothing by itself).
        let jrd: serde_json::Value = reqwest::Client::new()
            .get(a.url(&format!(
                "/.well-known/webfinger?resource=acct:ada@{}",
                a.settings.domain()
            )))
            .send()
            .await
            .expect("webfinger")
            .json()
            .await
            .expect("JRD");
        let template = jrd["links"]
            .as_array()
            .and_then(|links| {
                links
                    .iter()
                    .find(|l| l["rel"] == "http://ostatus.org/schema/1.0/subscribe")
            })
            .and_then(|l| l["template"].as_str())
            .expect("a subscribe template")
            .to_owned();
        let go = template.replace(
            "{uri}",
            &url::form_urlencoded::byte_serialize(space.as_bytes()).collect::<String>(),
        );
        let path = go.strip_prefix(&a.base).expect("on A");
        let page = ada.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains(&format!("value=\"{space}\"")),
            "{}",
            page.body
        );
        assert!(
            !page.body.contains("waiting for the Space"),
            "{}",
            page.body
        );
        let stranger = a.browser();
        let page = stranger.get(path).await;
        assert_eq!(page.path, "/signin", "signing in first");

        for browser in [&ada, &bea] {
            let page = browser
                .submit("/network/follow", &[("handle", &space)])
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            assert!(page.body.contains("waiting for the Space"), "{}", page.body);
        }
        // Both wait on the owner's members page; nobody follows yet.
        let members = "/spaces/quiet/members";
        for person in ["ada", "bea"] {
            wait_for_page(&olive, members, "the follow request", |body| {
                body.contains(&a.url(&format!("/people/{person}")))
            })
            .await;
        }
        assert_eq!(federation_followers(&b, "quiet").await, 0);
        let approve = |person: &str, action: &str| {
            format!(
                "/spaces/quiet/follow-requests/{action}?actor={}",
                url::form_urlencoded::byte_serialize(
                    a.url(&format!("/people/{person}")).as_bytes()
                )
                .collect::<String>()
            )
        };
        // Only an owner answers.
        nosy.get("/").await;
        let page = nosy.post(&approve("ada", "approve"), &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);

        // Approved: Ada follows, and hears of the Space's Rooms.
        let page = olive.submit(&approve("ada", "approve"), &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        wait_for_page(&ada, "/network", "the Accept", |body| {
            body.contains(">following<")
        })
        .await;
        assert_eq!(federation_followers(&b, "quiet").await, 1);
        // Rejected: Bea's follow is refused and gone from the owner's list.
        let page = olive.submit(&approve("bea", "reject"), &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("is refused"), "{}", page.body);
        // Nobody waits any more, so the list is gone.
        assert!(
            !page.body.contains("follow-requests-title"),
            "{}",
            page.body
        );
        wait_for_page(&bea, "/network", "the Reject", |body| {
            body.contains(">refused<")
        })
        .await;
        assert_eq!(federation_followers(&b, "quiet").await, 1);
        // A request that is not waiting (any more) is 404.
        let page = olive.post(&approve("bea", "approve"), &[]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
        let page = olive
            .post("/spaces/quiet/follow-requests/maybe?actor=x", &[])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);

        create_room(&olive, "quiet", "nook", "Reading Nook").await;
        wait_for_page(&ada, "/network", "the Room", |body| {
            body.contains("Reading Nook")
        })
        .await;
        let page = bea.get("/network").await;
        assert!(!page.body.contains("Reading Nook"), "{}", page.body);
    }
);

on_both!(
    operators_choose_partners_on_the_federation_page,
    |backend| async move {
        let a = TestInstance::spawn_with(backend, federating).await;
        let mut b = TestInstance::spawn_with(backend, federating).await;
        let ada = a.sign_up("ada@example.org", "ada", "Ada").await;
        let bea = a.sign_up("bea@example.org", "bea", "Bea").await;
        let olive = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
        create_space(&olive, "garden", "Garden & Club", true).await;
        create_space(&olive, "quiet", "Quiet Corner", false).await;
        let b_domain = b.settings.domain();

        // Operators only.
        let page = bea.get("/admin/federation").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        let page = ada.get("/admin/federation").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("href=\"/admin/federation\""));

        // Adding a partner reads its NodeInfo.
        let page = ada
            .submit(
                "/admin/federation/partners",
                &[("domain", &b_domain), ("action", "allow")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("it runs convene"), "{}", page.body);
        let partners = &page.body[page.body.find("fed-partners").expect("partners")..];
        assert!(partners.contains(&b_domain), "{}", page.body);
        assert!(
            partners.contains(env!("CARGO_PKG_VERSION")),
            "{}",
            page.body
        );
        assert!(partners.contains(">reachable<"), "{}", page.body);
        // One that does not answer is still added, and shown as unreachable.
        let page = ada
            .submit(
                "/admin/federation/partners",
                &[("domain", "nobody.invalid"), ("action", "allow")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("could not be read"), "{}", page.body);
        assert!(page.body.contains(">unreachable<"), "{}", page.body);
        // The command line checks a listed instance the same way.
        a.admin(&["--json", "federation", "check", "nobody.invalid"])
            .await;
        // Bad input is explained.
        let page = ada
            .post(
                "/admin/federation/partners",
                &[("domain", "not a host!"), ("action", "allow")],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        let page = ada
            .post("/admin/federation/policy", &[("mode", "closed")])
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );

        // Partners only: B may follow nothing here unless a partner; C (unlisted) is refused.
        let page = ada
            .submit("/admin/federation/policy", &[("mode", "allow-list")])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("allow-list"), "{}", page.body);
        let c = TestInstance::spawn_with(backend, federating).await;
        let page = bea
            .post(
                "/network/follow",
                &[("handle", &format!("@someone@{}", c.settings.domain()))],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(page.body.contains("does not federate"), "{}", page.body);

        // The Network page lists the partners as a directory, with a Convene partner's
        // listed Spaces (not its unlisted ones), each one click from being followed.
        let page = bea.get("/network").await;
        let directory = &page.body[page.body.find("network-partners").expect("partners")..];
        assert!(directory.contains(&b_domain), "{}", page.body);
        assert!(directory.contains("convene"), "{}", page.body);
        assert!(directory.contains("Garden &amp; Club"), "{}", page.body);
        assert!(!directory.contains("Quiet Corner"), "{}", page.body);
        let garden = b.url("/spaces/garden");
        assert!(
            directory.contains(&format!("name=\"handle\" value=\"{garden}\"")),
            "{}",
            page.body
        );
        let page = bea.submit("/network/follow", &[("handle", &garden)]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        wait_for_page(&bea, "/network", "the Accept", |body| {
            body.contains(">following<")
        })
        .await;

        // B goes down while A has something for it: the partner's row shows the delivery
        // waiting and why.
        b.stop().await;
        let page = bea
            .submit(
                &format!(
                    "/network/unfollow?space={}",
                    url::form_urlencoded::byte_serialize(garden.as_bytes()).collect::<String>()
                ),
                &[],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        wait_for_page(&ada, "/admin/federation", "the waiting delivery", |body| {
            body.find("fed-partners")
                .is_some_and(|at| body[at..].contains("1 waiting ·"))
        })
        .await;

        // Removing a partner takes it off the list.
        let remove = format!(
            "/admin/federation/remove?domain={}",
            url::form_urlencoded::byte_serialize(b_domain.as_bytes()).collect::<String>()
        );
        let page = ada.submit(&remove, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let partners = &page.body[page.body.find("fed-partners").unwrap_or(0)..];
        assert!(!partners.contains(&b_domain), "{}", page.body);
    }
);
