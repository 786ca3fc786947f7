//! Rooms: each access mode for guests, members and non-members; locked-room codes.

use super::*;

on_both!(
    access_modes_for_guests_members_and_outsiders,
    |backend| async move {
        let (inst, owner) = instance_with_space(backend).await;
        let guest = inst.browser();
        let outsider = inst
            .sign_up("out@example.org", "outsider", "Outsider")
            .await;

        let space = guest.get("/spaces/book-club").await;
        assert!(space.body.contains("Lobby"));
        assert!(space.body.contains("The Vault"));
        assert!(
            !space.body.contains("Members Circle"),
            "members-only rooms are not shown to guests"
        );
        assert!(
            !space.body.contains("Hideout"),
            "unlisted rooms are not shown to guests"
        );

        for who in [&guest, &outsider] {
            // Open: the join panel, with a name field for guests.
            let lobby = who.get("/spaces/book-club/rooms/lobby").await;
            assert_eq!(lobby.status, StatusCode::OK);
            assert!(lobby.body.contains("id=\"room-app\""));
            // Members-only: a 404 that does not reveal the room.
            let circle = who.get("/spaces/book-club/rooms/circle").await;
            assert_eq!(circle.status, StatusCode::NOT_FOUND);
            assert!(!circle.body.contains("Members Circle"));
            // Locked: the code form, no join panel.
            let vault = who.get("/spaces/book-club/rooms/vault").await;
            assert!(vault.body.contains("name=\"code\""));
            assert!(!vault.body.contains("id=\"room-app\""));
            // Unlisted: reachable by its link.
            assert_eq!(
                who.get("/spaces/book-club/rooms/hideout").await.status,
                StatusCode::OK
            );
        }
        let guest_lobby = guest.get("/spaces/book-club/rooms/lobby").await;
        assert!(guest_lobby.body.contains("Your name"));

        // Members enter every room without a code.
        for room in ["lobby", "circle", "vault", "hideout"] {
            let page = owner.get(&format!("/spaces/book-club/rooms/{room}")).await;
            assert!(page.body.contains("id=\"room-app\""), "owner enters {room}");
        }
    }
);

on_both!(
    locked_rooms_take_the_code_and_limit_wrong_ones,
    |backend| async move {
        let (inst, _owner) = instance_with_space(backend).await;
        let guest = inst.browser();
        guest.get("/spaces/book-club/rooms/vault").await;
        let page = guest
            .submit(
                "/spaces/book-club/rooms/vault/unlock",
                &[("code", "open sesame")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("id=\"room-app\""), "unlocked");
        // Remembered for the session.
        assert!(
            guest
                .get("/spaces/book-club/rooms/vault")
                .await
                .body
                .contains("id=\"room-app\"")
        );

        let thief = inst.browser();
        thief.get("/spaces/book-club/rooms/vault").await;
        for _ in 0..5 {
            let page = thief
                .submit("/spaces/book-club/rooms/vault/unlock", &[("code", "guess")])
                .await;
            assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(page.body.contains("not right"));
        }
        let page = thief
            .submit(
                "/spaces/book-club/rooms/vault/unlock",
                &[("code", "open sesame")],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::TOO_MANY_REQUESTS,
            "even the right code waits once limited"
        );
        assert!(page.headers.contains_key("retry-after"));
        assert!(!page.body.contains("id=\"room-app\""));
    }
);

on_both!(
    rooms_are_edited_and_deleted_by_members,
    |backend| async move {
        let (inst, owner) = instance_with_space(backend).await;
        let guest = inst.browser();
        guest.get("/spaces/book-club/rooms/vault").await;
        guest
            .submit(
                "/spaces/book-club/rooms/vault/unlock",
                &[("code", "open sesame")],
            )
            .await;

        owner.get("/spaces/book-club/rooms/vault/edit").await;
        let page = owner
            .submit(
                "/spaces/book-club/rooms/vault/edit",
                &[
                    ("name", "The Vault"),
                    ("slug", "vault"),
                    ("topic", ""),
                    ("access", "locked"),
                    ("access_code", "new code 42"),
                    ("listed", "true"),
                    ("capacity", "4"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        // A changed code must be given again.
        assert!(
            guest
                .get("/spaces/book-club/rooms/vault")
                .await
                .body
                .contains("name=\"code\"")
        );

        // A locked room without a code is refused.
        let page = owner
            .submit(
                "/spaces/book-club/rooms",
                &[
                    ("name", "Safe"),
                    ("slug", "safe"),
                    ("access", "locked"),
                    ("access_code", ""),
                    ("listed", "true"),
                    ("capacity", "12"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("needs an access code"));
        // A duplicate slug is refused.
        let page = owner
            .submit(
                "/spaces/book-club/rooms",
                &[
                    ("name", "Lobby 2"),
                    ("slug", "lobby"),
                    ("access", "open"),
                    ("listed", "true"),
                    ("capacity", "12"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("already has a Room"));

        // Delete asks for confirmation.
        owner.get("/spaces/book-club/rooms/lobby/delete").await;
        let page = owner
            .submit("/spaces/book-club/rooms/lobby/delete", &[])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        let page = owner
            .submit(
                "/spaces/book-club/rooms/lobby/delete",
                &[("confirm", "true")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.path, "/spaces/book-club");
        assert_eq!(
            inst.browser()
                .get("/spaces/book-club/rooms/lobby")
                .await
                .status,
            StatusCode::NOT_FOUND
        );

        // Outsiders cannot edit.
        let out = inst.sign_up("out@example.org", "outsider", "Out").await;
        assert_eq!(
            out.get("/spaces/book-club/rooms/hideout/edit").await.status,
            StatusCode::FORBIDDEN
        );
    }
);

async fn guess(who: &Browser, code: &str) -> StatusCode {
    who.submit("/spaces/book-club/rooms/vault/unlock", &[("code", code)])
        .await
        .status
}

/// Guards issue 10 (item 5): behind a trusted proxy, code limits key on the client the proxy
/// names, so one person's wrong guesses do not lock everyone out; from anyone else the
/// forwarding header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_limits_follow_the_client_a_trusted_proxy_names() {
    let _share = convene_tests::share_machine().await;
    let inst = TestInstance::spawn_with(Backend::Sqlite, |s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    })
    .await;
    let owner = inst
        .sign_up("olive@example.org", "olive", "Olive Owner")
        .await;
    owner
        .submit(
            "/spaces",
            &[
                ("name", "Book Club"),
                ("slug", "book-club"),
                ("listed", "true"),
            ],
        )
        .await;
    let page = owner
        .submit(
            "/spaces/book-club/rooms",
            &[
                ("name", "The Vault"),
                ("slug", "vault"),
                ("access", "locked"),
                ("access_code", "open sesame"),
                ("capacity", "12"),
                ("listed", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);

    let thief = Browser::forwarded_for(&inst.base, "203.0.113.66");
    thief.get("/spaces/book-club/rooms/vault").await;
    for _ in 0..5 {
        assert_eq!(
            guess(&thief, "guess").await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(
        guess(&thief, "open sesame").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not locked out.
    let friend = Browser::forwarded_for(&inst.base, "203.0.113.77");
    friend.get("/spaces/book-club/rooms/vault").await;
    assert_eq!(guess(&friend, "open sesame").await, StatusCode::OK);
    // The thief cannot escape the limit by naming another address through the proxy: the
    // proxy appends the real one, and that is the one believed.
    let sly = Browser::forwarded_for(&inst.base, "198.51.100.1, 203.0.113.66");
    sly.get("/spaces/book-club/rooms/vault").await;
    assert_eq!(
        guess(&sly, "open sesame").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Without trusted proxies the header means nothing: every client here is 127.0.0.1.
    let (plain, plain_owner) = instance_with_space(Backend::Sqlite).await;
    drop(plain_owner);
    let thief = Browser::forwarded_for(&plain.base, "203.0.113.66");
    thief.get("/spaces/book-club/rooms/vault").await;
    for _ in 0..5 {
        assert_eq!(
            guess(&thief, "guess").await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let friend = Browser::forwarded_for(&plain.base, "203.0.113.77");
    friend.get("/spaces/book-club/rooms/vault").await;
    assert_eq!(
        guess(&friend, "open sesame").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A refused attempt leaves no guest session behind (issue 10, item 7).
    let sessions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE passport_id IS NULL")
            .fetch_one(&plain.state().db.pool)
            .await
            .expect("count guest sessions");
    assert_eq!(
        sessions, 1,
        "only the thief's first wrong guesses made a session"
    );
}
