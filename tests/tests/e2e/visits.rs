//! One Passport, Rooms anywhere (issue 9): a person with a Passport on instance A enters a
//! Room on instance B, shown there as `@name@A`, through A's "Visit a Room elsewhere" page or
//! starting from B's Room page; B admits them with a single-use ticket its own checks granted.

use std::time::Duration;

use convene_media::signaling::ServerMessage;
use convene_media::testing;

use super::*;

/// A (home of Ada) and B (home of the Book Club with its Rooms), both fetching from loopback.
pub(super) async fn two_instances(
    backend: Backend,
) -> (TestInstance, Browser, TestInstance, Browser) {
    let (b, owner) =
        instance_with_space_and(backend, |s| s.federation_allow_private_addresses = true).await;
    let a =
        TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true).await;
    let ada = a.sign_up("ada@example.org", "ada", "Ada Lovelace").await;
    (a, ada, b, owner)
}

/// The path and query of an absolute URL on `inst`.
pub(super) fn on(inst: &TestInstance, url: &str) -> String {
    url.strip_prefix(&inst.url(""))
        .unwrap_or_else(|| panic!("{url} is not on {}", inst.url("")))
        .to_owned()
}

pub(super) fn location(page: &convene_tests::Page) -> String {
    page.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a redirect, got {}: {}", page.status, page.body))
        .to_owned()
}

/// Ada reads B's Room on A, confirms, and A answers with a redirect to B's entry link.
pub(super) async fn ticket_for(
    a: &TestInstance,
    ada: &Browser,
    b: &TestInstance,
    room: &str,
) -> String {
    let room_url = b.url(&format!("/spaces/book-club/rooms/{room}"));
    let page = ada
        .get(&format!("/visit?room={}", urlencode(&room_url)))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let confirmed = ada.post("/visit", &[("room", room_url.as_str())]).await;
    assert_eq!(
        confirmed.status,
        StatusCode::SEE_OTHER,
        "{}",
        confirmed.body
    );
    let enter = location(&confirmed);
    assert!(
        enter.starts_with(&b.url("/enter?ticket=")),
        "to B with a ticket: {enter} (A is {})",
        a.url("")
    );
    enter
}

pub(super) fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

on_both!(
    a_passport_from_another_instance_enters_an_open_room_by_ticket,
    |backend| async move {
        let (a, ada, b, _owner) = two_instances(backend).await;
        let address = format!("@ada@{}", a.settings.domain());

        // On A: what the Room is, and the question.
        let room_url = b.url("/spaces/book-club/rooms/lobby");
        let page = ada
            .get(&format!("/visit?room={}", urlencode(&room_url)))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Book Club"), "{}", page.body);
        assert!(
            page.body.contains(&format!(
                "Join <strong>Lobby</strong> on {} as <strong>{address}</strong>?",
                b.settings.domain()
            )),
            "{}",
            page.body
        );

        // Confirmed: off to B with a ticket, which B spends for a visitor session.
        let enter = ticket_for(&a, &ada, &b, "lobby").await;
        let visitor = b.browser();
        let arrived = visitor.get(&on(&b, &enter)).await;
        assert_eq!(arrived.status, StatusCode::OK, "{}", arrived.body);
        assert_eq!(arrived.path, "/spaces/book-club/rooms/lobby");
        assert!(
            arrived
                .body
                .contains(&format!("<strong>Ada Lovelace</strong> ({address})")),
            "{}",
            arrived.body
        );

        // The ticket is single use: the same link admits nobody else.
        let again = b.browser().get(&on(&b, &enter)).await;
        assert_eq!(again.status, StatusCode::GONE, "{}", again.body);

        // In the Room, Ada meets the people there under her address: Bob, a guest of B, is
        // told that Ada Lovelace (@ada@A) joined, and they exchange media.
        let bob = b.browser();
        let mut bob_peer = super::media::enter(&b, &bob, "lobby", 0, Some("Bob")).await;
        let ticket = super::media::ticket(&b, &visitor, "lobby", None)
            .await
            .unwrap_or_else(|r| panic!("a media token for the visitor: {r:?}"));
        assert_eq!(ticket.display_name, "Ada Lovelace");
        let ada_peer = super::media::connect(&b, &ticket, 1).await;
        let joined = bob_peer
            .client
            .wait_event(Duration::from_secs(20), |e| {
                matches!(e, ServerMessage::ParticipantJoined { id, .. } if *id == ada_peer.participant)
            })
            .await;
        let ServerMessage::ParticipantJoined { handle, .. } = joined else {
            unreachable!("waited for a join")
        };
        assert_eq!(handle.as_deref(), Some(address.as_str()));
        let epoch = std::time::Instant::now();
        let publishing = testing::start_publishing(&ada_peer.client, 30, 1, 1000, epoch);
        let ids = [bob_peer.participant.clone(), ada_peer.participant.clone()];
        testing::receive_from(
            &mut bob_peer.client,
            &ids,
            &[1],
            30,
            &mut testing::Tally::default(),
            Duration::from_secs(20),
        )
        .await;
        publishing.abort();

        // B blocks A: Ada's media ends at once and her visitor session is gone.
        let mut ada_peer = ada_peer;
        convene::core::partners::block(&b.state().core, &a.settings.domain())
            .await
            .expect("block");
        assert_eq!(ada_peer.closed().await.1, "no longer allowed in this room");
        bob_peer
            .client
            .wait_event(Duration::from_secs(20), |e| {
                matches!(e, ServerMessage::ParticipantLeft { id } if *id == ada_peer.participant)
            })
            .await;
        let after = visitor.get("/spaces/book-club/rooms/lobby").await;
        assert!(
            !after.body.contains(&address),
            "the visitor session ended with the block"
        );
        ada_peer.end().await;
        bob_peer.end().await;

        // A visitor is not one of B's Passports: nothing but Rooms.
        let spaces = visitor.get("/spaces/new").await;
        assert_eq!(spaces.path, "/signin", "a visitor is asked to sign in here");
        let nodeinfo: serde_json::Value = reqwest::get(b.url("/nodeinfo/2.1"))
            .await
            .expect("nodeinfo")
            .json()
            .await
            .expect("json");
        assert_eq!(nodeinfo["usage"]["users"]["total"], 1, "B counts its own");
    }
);

on_both!(
    tickets_are_refused_to_the_wrong_signer_for_members_rooms_and_when_expired,
    |backend| async move {
        let (a, ada, b, _owner) = two_instances(backend).await;

        // Members-only: B says no, and A tells Ada why.
        let room_url = b.url("/spaces/book-club/rooms/circle");
        let refused = ada.post("/visit", &[("room", room_url.as_str())]).await;
        assert_eq!(refused.status, StatusCode::SEE_OTHER);
        let back = ada.get(&on(&a, &a.url(&location(&refused)))).await;
        assert!(
            back.body.contains("for its Space&#39;s members")
                || back.body.contains("for its Space's members"),
            "{}",
            back.body
        );

        // An unlisted Room has no actor: nothing to visit.
        let hidden = b.url("/spaces/book-club/rooms/hideout");
        let page = ada
            .get(&format!("/visit?room={}", urlencode(&hidden)))
            .await;
        assert!(page.body.contains("could not be read"), "{}", page.body);

        // An unsigned ticket request is 401; one signed by A for a Passport of another
        // host is 403.
        let unsigned = reqwest::Client::new()
            .post(b.url("/spaces/book-club/rooms/lobby/tickets"))
            .header("content-type", "application/activity+json")
            .body(format!(
                r#"{{"passport":"{}","room":"{}"}}"#,
                a.url("/people/ada"),
                b.url("/spaces/book-club/rooms/lobby")
            ))
            .send()
            .await
            .expect("POST");
        assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
        let core = a.state().core.clone();
        let client = a.state().federation.client.clone();
        let handle = convene::domain::values::Handle::parse("ada").expect("handle");
        let passport = convene::domain::passports::by_handle(&a.state().db, &handle)
            .await
            .expect("lookup")
            .expect("ada");
        let mut impostor = passport;
        impostor.domain = "elsewhere.example".into();
        let refused = convene::core::admission::visit(
            &core,
            &client,
            &impostor,
            &convene_federation::protocol::Id::parse(&b.url("/spaces/book-club/rooms/lobby"))
                .expect("id"),
        )
        .await;
        assert!(refused.is_err(), "only local Passports visit from A");

        // A ticket not used within its two minutes admits nobody.
        let enter = ticket_for(&a, &ada, &b, "lobby").await;
        b.advance_clock(121);
        let late = b.browser().get(&on(&b, &enter)).await;
        assert_eq!(late.status, StatusCode::GONE, "{}", late.body);
    }
);

on_both!(
    starting_from_the_rooms_page_leads_to_the_home_instance_to_confirm,
    |backend| async move {
        let (a, ada, b, _owner) = two_instances(backend).await;
        let guest = b.browser();
        let page = guest.get("/spaces/book-club/rooms/lobby").await;
        assert!(
            page.body
                .contains("Join with your Passport from another instance")
        );
        let address = format!("@ada@{}", a.settings.domain());
        let sent = guest
            .post(
                "/spaces/book-club/rooms/lobby/elsewhere",
                &[("address", address.as_str())],
            )
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        let interaction = location(&sent);
        assert!(
            interaction.starts_with(&a.url("/authorize_interaction?uri=")),
            "{interaction}"
        );
        // On A, signed in, it is the visit page for that Room.
        let page = ada.get(&on(&a, &interaction)).await;
        assert_eq!(page.path, "/visit");
        assert!(
            page.body.contains("Join <strong>Lobby</strong>"),
            "{}",
            page.body
        );

        // A bad address is answered on the Room's page.
        let bad = guest
            .submit(
                "/spaces/book-club/rooms/lobby/elsewhere",
                &[("address", "not an address")],
            )
            .await;
        assert!(bad.body.contains("@ada@example.org"), "{}", bad.body);
    }
);

/// Polls `browser`'s page at `path` until its body contains `needle` (deliveries between the
/// instances are queued jobs, so answers arrive within moments, not at once).
pub(super) async fn until_page_shows(
    browser: &Browser,
    path: &str,
    needle: &str,
) -> convene_tests::Page {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = browser.get(path).await;
        if page.body.contains(needle) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never showed {needle:?}:\n{}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_both!(
    a_members_only_room_elsewhere_is_joined_by_asking_its_owners,
    |backend| async move {
        let (a, ada, b, owner) = two_instances(backend).await;
        let address = format!("@ada@{}", a.settings.domain());
        let circle = b.url("/spaces/book-club/rooms/circle");
        let visit_path = format!("/visit?room={}", urlencode(&circle));

        // Ada asks: A sends a Join from her Passport, B holds it for the owners.
        let page = ada.get(&visit_path).await;
        assert!(page.body.contains("Ask to join"), "{}", page.body);
        let asked = ada.post("/visit/join", &[("room", circle.as_str())]).await;
        assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
        until_page_shows(&ada, &visit_path, "You asked to join").await;
        let members = until_page_shows(&owner, "/spaces/book-club/members", &address).await;
        assert!(members.body.contains("Asking to join from other instances"));

        // Until the owners decide, B grants no ticket for the members-only Room.
        let refused = ada.post("/visit", &[("room", circle.as_str())]).await;
        assert!(
            location(&refused).starts_with("/visit"),
            "back to A: {}",
            location(&refused)
        );

        // The owner lets her in: she is a member on B, and A hears the Accept.
        let request = members
            .body
            .split("action=\"")
            .filter_map(|rest| rest.split('"').next())
            .find(|action| action.ends_with("/approve"))
            .expect("an approve button")
            .to_owned();
        let approved = owner.submit(&request, &[]).await;
        assert!(
            approved
                .body
                .contains(&format!("{address} is a member now.")),
            "{}",
            approved.body
        );
        assert!(
            !approved
                .body
                .contains("Asking to join from other instances")
        );
        until_page_shows(&ada, &visit_path, "Join <strong>Members Circle</strong>").await;
        let rooms = ada.get("/visit").await;
        assert!(
            rooms.body.contains("Your Rooms elsewhere")
                && rooms.body.contains(">Members Circle</a>"),
            "{}",
            rooms.body
        );
        assert!(rooms.body.contains(">member · <"), "{}", rooms.body);

        // Her Rooms elsewhere show who is inside, live from the Room's actor and kept briefly.
        assert!(
            rooms
                .body
                .contains("<span class=\"head-count\">nobody inside</span>"),
            "{}",
            rooms.body
        );
        let bob_peer = super::media::enter(&b, &owner, "circle", 0, None).await;
        let kept = ada.get("/visit").await;
        assert!(
            kept.body.contains(">nobody inside<"),
            "read again only after a while: {}",
            kept.body
        );
        a.advance_clock(convene::core::admission::HEAD_COUNT_TTL_SECS);
        let live = ada.get("/visit").await;
        assert!(live.body.contains(">1 of 12 inside<"), "{}", live.body);
        bob_peer.end().await;

        // One click to enter: the same ticket and redirect as confirming on the visit page.
        let entered = ada.post("/visit", &[("room", circle.as_str())]).await;
        assert!(
            location(&entered).starts_with(&b.url("/enter?ticket=")),
            "{}",
            location(&entered)
        );
        assert!(
            live.body.contains(&format!(
                "<input type=\"hidden\" name=\"room\" value=\"{circle}\">"
            )),
            "{}",
            live.body
        );

        // Now B grants her a ticket for the members-only Room.
        let enter = ticket_for(&a, &ada, &b, "circle").await;
        let visitor = b.browser();
        let arrived = visitor.get(&on(&b, &enter)).await;
        assert_eq!(
            arrived.path, "/spaces/book-club/rooms/circle",
            "{}",
            arrived.body
        );
        // As a member, she gets the Room's page and a media token like B's own members.
        assert_eq!(arrived.status, StatusCode::OK, "{}", arrived.body);
        assert!(
            arrived.body.contains("visiting with your Passport"),
            "{}",
            arrived.body
        );
        let media = super::media::ticket(&b, &visitor, "circle", None)
            .await
            .unwrap_or_else(|r| panic!("a media token for the member visiting: {r:?}"));
        assert_eq!(media.display_name, "Ada Lovelace");

        // Removed like anyone: no more tickets for the members-only Room.
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
        let refused = ada.post("/visit", &[("room", circle.as_str())]).await;
        assert!(location(&refused).starts_with("/visit"));
    }
);

on_both!(
    owners_invite_a_passport_of_another_instance_by_its_address,
    |backend| async move {
        let (a, ada, b, owner) = two_instances(backend).await;
        let address = format!("@ada@{}", a.settings.domain());

        // Bob's side: the owner invites Ada by her address.
        owner.get("/spaces/book-club/members").await;
        let invited = owner
            .submit(
                "/spaces/book-club/invitations/remote",
                &[("address", address.as_str())],
            )
            .await;
        assert!(
            invited.body.contains(&format!("{address} is invited")),
            "{}",
            invited.body
        );
        // Not a person: refused with a reason.
        let not_a_person = owner
            .submit(
                "/spaces/book-club/invitations/remote",
                &[("address", "instance@nowhere.invalid")],
            )
            .await;
        assert!(
            not_a_person.body.contains("could not be read"),
            "{}",
            not_a_person.body
        );

        // Ada's side: the invitation arrives; she accepts.
        let page = until_page_shows(&ada, "/visit", "Invitations from other instances").await;
        assert!(page.body.contains(">Book Club</a>"), "{}", page.body);
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
        assert!(
            accepted
                .body
                .contains("You accepted the invitation to Book Club."),
            "{}",
            accepted.body
        );

        // She is a member on B, and B grants her tickets for the members-only Room.
        until_page_shows(&owner, "/spaces/book-club/members", &address).await;
        let enter = ticket_for(&a, &ada, &b, "circle").await;
        let arrived = b.browser().get(&on(&b, &enter)).await;
        assert_eq!(
            arrived.path, "/spaces/book-club/rooms/circle",
            "{}",
            arrived.body
        );
    }
);

/// Browsers hold a form's redirect to `form-action` too: B's Room page lets its "Join with
/// your Passport from another instance" go on to any instance, A's visit page lets "Join" go on
/// to the Room's instance, and other pages keep `form-action 'self'`.
#[tokio::test]
async fn forms_that_lead_to_another_instance_are_allowed_to() {
    let _share = convene_tests::share_machine().await;
    let (a, ada, b, owner) = two_instances(Backend::Sqlite).await;
    let csp = |page: &convene_tests::Page| {
        page.headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let room = b.browser().get("/spaces/book-club/rooms/lobby").await;
    assert!(
        room.body
            .contains("Join with your Passport from another instance")
    );
    assert!(
        csp(&room).contains("form-action 'self' http:;"),
        "{}",
        csp(&room)
    );
    let signed_in = owner.get("/spaces/book-club/rooms/lobby").await;
    assert!(
        csp(&signed_in).contains("form-action 'self';"),
        "{}",
        csp(&signed_in)
    );
    let room_url = b.url("/spaces/book-club/rooms/lobby");
    let visit = ada
        .get(&format!("/visit?room={}", urlencode(&room_url)))
        .await;
    assert!(
        csp(&visit).contains(&format!("form-action 'self' {};", b.url(""))),
        "{}",
        csp(&visit)
    );
    let home = ada.get("/visit").await;
    assert!(csp(&home).contains("form-action 'self';"), "{}", csp(&home));
    drop(a);
}
