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
