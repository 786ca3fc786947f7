//! One Passport, Rooms anywhere (issue 9), the refusals: three instances on loopback, A (Ada's
//! home), B (the Book Club's) and C (Cid's, which B blocks), and every bad input of the way in.
//! Each is refused with the right status and a sentence for the person, and leaves nothing
//! half-written behind (no ticket, no session, no membership).

use super::federation_safety::{Peer, count};
use super::visits::{location, on, ticket_for, two_instances, until_page_shows, urlencode};
use super::*;

async fn tickets(inst: &TestInstance) -> i64 {
    count(inst, "SELECT COUNT(*) AS n FROM admission_tickets").await
}

/// Sessions on `inst` held by Passports of other instances.
async fn visitor_sessions(inst: &TestInstance) -> i64 {
    count(
        inst,
        "SELECT COUNT(*) AS n FROM sessions s JOIN passports p ON p.id = s.passport_id \
         WHERE p.domain <> ''",
    )
    .await
}

/// Memberships of Spaces on `inst` held by Passports of other instances.
async fn remote_members(inst: &TestInstance) -> i64 {
    count(
        inst,
        "SELECT COUNT(*) AS n FROM space_members m JOIN passports p ON p.id = m.passport_id \
         WHERE p.domain <> ''",
    )
    .await
}

/// The flash or page text after following a redirect on the same instance.
async fn after(browser: &Browser, page: &convene_tests::Page) -> convene_tests::Page {
    browser.get(&location(page)).await
}

/// Makes Ada a member of B's Book Club: B's owner invites her, she accepts on A.
async fn make_member(a: &TestInstance, ada: &Browser, owner: &Browser) {
    let address = format!("@ada@{}", a.settings.domain());
    owner.get("/spaces/book-club/members").await;
    let invited = owner
        .submit(
            "/spaces/book-club/invitations/remote",
            &[("address", address.as_str())],
        )
        .await;
    assert!(invited.body.contains("is invited"), "{}", invited.body);
    let page = until_page_shows(ada, "/visit", "Invitations from other instances").await;
    let invite_id = page
        .body
        .split("name=\"invite\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an invitation id")
        .replace("&amp;", "&");
    let accepted = ada
        .submit(
            "/visit/invitations/accept",
            &[("invite", invite_id.as_str())],
        )
        .await;
    assert!(accepted.body.contains("You accepted"), "{}", accepted.body);
    until_page_shows(owner, "/spaces/book-club/members", &address).await;
}

on_both!(
    a_blocked_instance_a_blocked_passport_and_an_ended_membership_are_refused_at_each_step,
    |backend| async move {
        let (a, ada, b, owner) = two_instances(backend).await;
        let c = TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true)
            .await;
        let cid = c.sign_up("cid@example.org", "cid", "Cid Campeador").await;
        let lobby = b.url("/spaces/book-club/rooms/lobby");
        let circle = b.url("/spaces/book-club/rooms/circle");
        let ada_address = format!("@ada@{}", a.settings.domain());

        // B's operator blocks C on the federation page.
        owner.get("/admin/federation").await;
        let blocked = owner
            .submit(
                "/admin/federation/partners",
                &[
                    ("domain", c.settings.domain().as_str()),
                    ("action", "block"),
                ],
            )
            .await;
        assert!(blocked.body.contains("is blocked"), "{}", blocked.body);

        // C cannot read B's Room (its signed fetch gets 403), and asking for a ticket anyway
        // brings Cid back with B's reason. Nothing is stored on B.
        let page = cid.get(&format!("/visit?room={}", urlencode(&lobby))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains("That Room could not be read") && page.body.contains("403"),
            "{}",
            page.body
        );
        let refused = cid.post("/visit", &[("room", lobby.as_str())]).await;
        assert_eq!(refused.status, StatusCode::SEE_OTHER, "{}", refused.body);
        let back = after(&cid, &refused).await;
        assert!(
            back.body
                .contains("The Room&#39;s instance did not let you in")
                || back.body.contains("The Room's instance did not let you in"),
            "{}",
            back.body
        );
        assert!(
            back.body.contains("does not federate with yours"),
            "{}",
            back.body
        );
        assert_eq!(tickets(&b).await, 0);
        assert_eq!(visitor_sessions(&b).await, 0);

        // Forged and malformed entry links: 410 for one that never existed, 400 for one that
        // is not a ticket at all; neither starts a session.
        let forged = b
            .browser()
            .get("/enter?ticket=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await;
        assert_eq!(forged.status, StatusCode::GONE, "{}", forged.body);
        assert!(forged.body.contains("Start again from your own instance"));
        let empty = b.browser().get("/enter?ticket=").await;
        assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.body);
        let long = b
            .browser()
            .get(&format!("/enter?ticket={}", "x".repeat(300)))
            .await;
        assert_eq!(long.status, StatusCode::BAD_REQUEST, "{}", long.body);
        assert_eq!(visitor_sessions(&b).await, 0);

        // A ticket for the open Lobby is no key to other Rooms: the visitor session it starts
        // gets no media token for the members-only Room, nor for the locked one without its
        // code.
        let enter = ticket_for(&a, &ada, &b, "lobby").await;
        let visitor = b.browser();
        let arrived = visitor.get(&on(&b, &enter)).await;
        assert_eq!(arrived.path, "/spaces/book-club/rooms/lobby");
        // (A members-only Room is not shown to others at all: 404, as to B's own guests.)
        for (room, status) in [
            ("circle", StatusCode::NOT_FOUND),
            ("vault", StatusCode::FORBIDDEN),
        ] {
            let refusal = super::media::ticket(&b, &visitor, room, None)
                .await
                .map(|_| ())
                .expect_err("no media token for another Room");
            assert_eq!(refusal.status, status, "{room}: {:?}", refusal.problem);
        }

        // A membership that ends between the ticket and the door: the ticket is spent but
        // admits nobody, and says why.
        make_member(&a, &ada, &owner).await;
        assert_eq!(remote_members(&b).await, 1);
        let enter = ticket_for(&a, &ada, &b, "circle").await;
        let remote_handle = urlencode(&format!("ada@{}", a.settings.domain()));
        owner.get("/spaces/book-club/members").await;
        let removed = owner
            .submit(
                &format!("/spaces/book-club/members/{remote_handle}/remove"),
                &[],
            )
            .await;
        assert!(
            removed.body.contains("is no longer a member"),
            "{}",
            removed.body
        );
        let sessions_before = visitor_sessions(&b).await;
        let late = b.browser().get(&on(&b, &enter)).await;
        assert_eq!(late.status, StatusCode::FORBIDDEN, "{}", late.body);
        assert!(
            late.body.contains("no longer a member of this Room"),
            "{}",
            late.body
        );
        assert_eq!(
            visitor_sessions(&b).await,
            sessions_before,
            "no session started"
        );

        // Ada is in the Lobby with media when B's operator blocks her Passport (only hers):
        // her media ends at once, her visitor sessions and unspent tickets go.
        let mut ada_peer = super::media::connect(
            &b,
            &super::media::ticket(&b, &visitor, "lobby", None)
                .await
                .unwrap_or_else(|r| panic!("media token: {r:?}")),
            1,
        )
        .await;
        let unspent = ticket_for(&a, &ada, &b, "lobby").await;
        owner.get("/admin/federation").await;
        let bad = owner
            .submit(
                "/admin/federation/passports",
                &[("address", "not an address")],
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.body.contains("like @ada@example.org"), "{}", bad.body);
        let own = owner
            .submit(
                "/admin/federation/passports",
                &[("address", &format!("@olive@{}", b.settings.domain()))],
            )
            .await;
        assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", own.body);
        let blocked = owner
            .submit(
                "/admin/federation/passports",
                &[("address", ada_address.as_str())],
            )
            .await;
        assert!(
            blocked.body.contains(&format!("{ada_address} is blocked")),
            "{}",
            blocked.body
        );
        assert!(
            blocked.body.contains("their media ended"),
            "{}",
            blocked.body
        );
        assert_eq!(ada_peer.closed().await.1, "no longer allowed in this room");
        ada_peer.end().await;
        assert_eq!(visitor_sessions(&b).await, 0);
        let spent = b.browser().get(&on(&b, &unspent)).await;
        assert_eq!(spent.status, StatusCode::GONE, "{}", spent.body);

        // Blocked, she gets no new ticket (A tells her why), and her Join is rejected with
        // the reason, which A shows.
        let refused = ada.post("/visit", &[("room", lobby.as_str())]).await;
        let back = after(&ada, &refused).await;
        assert!(
            back.body
                .contains("This Passport is blocked on this instance"),
            "{}",
            back.body
        );
        let asked = ada.post("/visit/join", &[("room", circle.as_str())]).await;
        assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
        let visit_path = format!("/visit?room={}", urlencode(&circle));
        until_page_shows(&ada, &visit_path, "This Passport is blocked on the Room").await;
        assert_eq!(
            count(&b, "SELECT COUNT(*) AS n FROM join_requests").await,
            0
        );
        assert_eq!(tickets(&b).await, 0);

        // The block is listed, and lifted: she is let in again.
        let listed = owner.get("/admin/federation").await;
        assert!(listed.body.contains(&ada_address), "{}", listed.body);
        let unblocked = owner
            .submit(
                &format!(
                    "/admin/federation/passports/unblock?address={}",
                    urlencode(&ada_address)
                ),
                &[],
            )
            .await;
        assert!(
            unblocked.body.contains("is no longer blocked"),
            "{}",
            unblocked.body
        );
        let enter = ticket_for(&a, &ada, &b, "lobby").await;
        let again = b.browser().get(&on(&b, &enter)).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    }
);

/// A Passport blocked after its ticket was issued is refused at the door; so is one whose
/// instance was blocked meanwhile. Each ticket is spent by the refusal.
#[tokio::test]
async fn a_block_between_the_ticket_and_the_door_is_refused_there() {
    let _share = convene_tests::share_machine().await;
    let (a, ada, b, _owner) = two_instances(Backend::Sqlite).await;
    let ada_address = format!("@ada@{}", a.settings.domain());
    let enter = ticket_for(&a, &ada, &b, "lobby").await;
    // Blocked from the command line's use case, which leaves this process's tickets alone
    // until the door checks them.
    sqlx::query("INSERT INTO blocked_passports (handle, domain, created_at) VALUES ($1, $2, 0)")
        .bind("ada")
        .bind(a.settings.domain())
        .execute(&b.state().db.pool)
        .await
        .expect("block");
    let refused = b.browser().get(&on(&b, &enter)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body.contains("no longer welcome"),
        "{}",
        refused.body
    );
    assert_eq!(tickets(&b).await, 0);
    assert!(
        convene::core::passport_blocks::unblock(&b.state().core, &ada_address)
            .await
            .expect("unblock")
    );

    // Her instance blocked by a policy change (allow-list without A) after the ticket.
    let enter = ticket_for(&a, &ada, &b, "lobby").await;
    convene::core::partners::set_mode(&b.state().core, convene_federation::PolicyMode::AllowList)
        .await
        .expect("allow-list");
    let refused = b.browser().get(&on(&b, &enter)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(visitor_sessions(&b).await, 0);
    // Asking again under the allow-list: A shows B's reason.
    let lobby = b.url("/spaces/book-club/rooms/lobby");
    let again = ada.post("/visit", &[("room", lobby.as_str())]).await;
    let back = after(&ada, &again).await;
    assert!(
        back.body.contains("does not federate with yours"),
        "{}",
        back.body
    );

    // An instance that does not answer at all: a clear sentence, not a hang.
    let nobody = "http://localhost:9/spaces/x/rooms/y";
    let page = ada.get(&format!("/visit?room={}", urlencode(nobody))).await;
    assert!(
        page.body.contains("That Room could not be read"),
        "{}",
        page.body
    );
    let refused = ada.post("/visit", &[("room", nobody)]).await;
    let back = after(&ada, &refused).await;
    assert!(
        back.body
            .contains("The Room&#39;s instance could not be asked")
            || back.body.contains("The Room's instance could not be asked"),
        "{}",
        back.body
    );
}

/// Bad input at B's doors from a server: a `Join` for a Room that does not exist (404, nothing
/// stored), for an unlisted Room (404), and for a members-only Room by a non-member (held for
/// the owners, never accepted outright).
#[tokio::test]
async fn joins_for_rooms_that_do_not_exist_or_are_for_members_are_not_accepted() {
    let _share = convene_tests::share_machine().await;
    let (b, _owner) = instance_with_space_and(Backend::Sqlite, |s| {
        s.federation_allow_private_addresses = true
    })
    .await;
    let peer = Peer::start().await;
    let inbox = b.url("/inbox");
    let join = |n: u32, room: &str| {
        serde_json::json!({
            "id": format!("{}/joins/{n}", peer.base),
            "type": "Join",
            "actor": peer.actor(),
            "object": b.url(&format!("/spaces/book-club/rooms/{room}")),
        })
        .to_string()
    };
    for (n, room) in [(1, "nowhere"), (2, "hideout")] {
        let response = peer.post(&inbox, &join(n, room)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{room}");
        let body = response.text().await.unwrap_or_default();
        assert!(body.contains("\"status\":404"), "a problem body: {body}");
    }
    let nowhere = serde_json::json!({
        "id": format!("{}/joins/3", peer.base),
        "type": "Join",
        "actor": peer.actor(),
        "object": "http://elsewhere.invalid/spaces/x/rooms/y",
    })
    .to_string();
    assert_eq!(
        peer.post(&inbox, &nowhere).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        count(&b, "SELECT COUNT(*) AS n FROM join_requests").await,
        0
    );

    assert_eq!(
        peer.post(&inbox, &join(4, "circle")).await.status(),
        StatusCode::ACCEPTED
    );
    let answers = peer.wait_for(1).await;
    assert_eq!(answers[0]["type"], "TentativeAccept", "{answers:?}");
    assert_eq!(
        count(&b, "SELECT COUNT(*) AS n FROM join_requests").await,
        1
    );
    assert_eq!(remote_members(&b).await, 0);
}

/// B's "Join with your Passport from another instance" only ever sends the browser to the
/// Passport's own instance: a WebFinger answer whose remote-interaction link names another
/// host, another scheme or no link at all is refused on the Room's page with the reason; a
/// Passport on a private address is not looked up at all when private addresses are off;
/// and an address that names a Space, not a person, is refused for an invitation.
#[tokio::test]
async fn remote_interaction_links_lead_only_to_the_passports_own_instance() {
    let _share = convene_tests::share_machine().await;
    let (b, owner) = instance_with_space_and(Backend::Sqlite, |s| {
        s.federation_allow_private_addresses = true
    })
    .await;
    // A WebFinger server that answers with whatever template the test sets.
    let template = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = format!("localhost:{}", listener.local_addr().expect("addr").port());
    let (served, doc_host) = (template.clone(), host.clone());
    let app = axum::Router::new().route(
        "/.well-known/webfinger",
        axum::routing::get(move || {
            let template = served.lock().expect("lock").clone();
            let host = doc_host.clone();
            async move {
                let mut links = vec![serde_json::json!({
                    "rel": "self",
                    "type": "application/activity+json",
                    "href": format!("http://{host}/users/eve"),
                })];
                if !template.is_empty() {
                    links.push(serde_json::json!({
                        "rel": "http://ostatus.org/schema/1.0/subscribe",
                        "template": template,
                    }));
                }
                axum::Json(serde_json::json!({
                    "subject": format!("acct:eve@{host}"),
                    "links": links,
                }))
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let guest = b.browser();
    let address = format!("@eve@{host}");
    let room = "/spaces/book-club/rooms/lobby";
    let ask = async |link: &str| {
        *template.lock().expect("lock") = link.to_owned();
        guest.get(room).await;
        let sent = guest
            .post(
                &format!("{room}/elsewhere"),
                &[("address", address.as_str())],
            )
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        location(&sent)
    };
    let fine = ask(&format!("http://{host}/authorize_interaction?uri={{uri}}")).await;
    assert!(
        fine.starts_with(&format!("http://{host}/authorize_interaction?uri=")),
        "{fine}"
    );
    for (link, why) in [
        (
            "http://192.168.1.1/authorize_interaction?uri={uri}".to_owned(),
            "leads to another host",
        ),
        (
            "http://attacker.example/authorize_interaction?uri={uri}".to_owned(),
            "leads to another host",
        ),
        (
            "javascript:alert(1)//{uri}".to_owned(),
            "not an http(s) URL",
        ),
        (String::new(), "no remote-interaction link"),
    ] {
        let to = ask(&link).await;
        assert_eq!(to, room, "{link} is not followed");
        let page = guest.get(room).await;
        assert!(
            page.body
                .contains("Your instance could not be asked to let you in")
                && page.body.contains(why),
            "{link}: {}",
            page.body
        );
    }

    // With private addresses off (the default), a Passport on one is not even looked up.
    let strict = instance_with_space(Backend::Sqlite).await;
    let guest = strict.0.browser();
    guest.get(room).await;
    let sent = guest
        .post(
            &format!("{room}/elsewhere"),
            &[("address", "@eve@127.0.0.1:9")],
        )
        .await;
    assert_eq!(location(&sent), room);
    let page = guest.get(room).await;
    assert!(
        page.body
            .contains("Your instance could not be asked to let you in")
            && page.body.contains("refused"),
        "{}",
        page.body
    );

    // An invitation by an address that names a Space is refused: not a person's Passport.
    let other = instance_with_space_and(Backend::Sqlite, |s| {
        s.federation_allow_private_addresses = true
    })
    .await;
    owner.get("/spaces/book-club/members").await;
    let space_address = format!("@book-club@{}", other.0.settings.domain());
    let refused = owner
        .submit(
            "/spaces/book-club/invitations/remote",
            &[("address", space_address.as_str())],
        )
        .await;
    assert!(refused.body.contains("not a person"), "{}", refused.body);
    assert_eq!(
        count(&b, "SELECT COUNT(*) AS n FROM remote_invitations").await,
        0
    );
}
