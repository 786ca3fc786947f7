//! Spaces: creating, editing, members, invitations by email.

use super::*;

on_both!(invite_accept_and_manage_members, |backend| async move {
    let (inst, owner) = instance_with_space(backend).await;
    let bea = inst.sign_up("bea@example.org", "bea", "Bea Member").await;
    // Before the invitation Bea does not see the members-only Room.
    assert_eq!(
        bea.get("/spaces/book-club/rooms/circle").await.status,
        StatusCode::NOT_FOUND
    );

    owner.get("/spaces/book-club/members").await;
    let page = owner
        .submit(
            "/spaces/book-club/invitations",
            &[("email", "Bea@Example.org"), ("role", "member")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("bea@example.org"),
        "pending invitation listed"
    );
    let mail = inst.mailbox.wait_for("bea@example.org", 2).await;
    assert!(mail.subject.contains("Book Club"));
    let link = link_in(&mail.body, &inst.url("/invitations/"));
    let path = link.trim_start_matches(&inst.base).to_string();

    // Someone else cannot accept Bea's invitation.
    let carl = inst.sign_up("carl@example.org", "carl", "Carl").await;
    let page = carl.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    let refused = carl.submit(&format!("{path}/accept"), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // A guest is asked to sign in first.
    let guest = inst.browser().get(&path).await;
    assert!(guest.body.contains("/signin?next="), "{}", guest.body);

    let page = bea.get(&path).await;
    assert!(page.body.contains("Olive Owner"));
    let page = bea.submit(&format!("{path}/accept"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.path, "/spaces/book-club");
    assert!(
        page.body.contains("Members Circle"),
        "members see members-only rooms"
    );
    assert!(page.body.contains("Hideout"), "members see unlisted rooms");
    assert_eq!(
        bea.get("/spaces/book-club/rooms/circle").await.status,
        StatusCode::OK
    );

    // The link is spent.
    let again = bea.submit(&format!("{path}/accept"), &[]).await;
    assert_eq!(again.status, StatusCode::GONE);

    // Members may not manage members; owners may remove them.
    let members = bea.get("/spaces/book-club/members").await;
    assert!(members.body.contains("Bea Member"));
    let not_owner = bea
        .submit("/spaces/book-club/members/olive/remove", &[])
        .await;
    assert_eq!(not_owner.status, StatusCode::FORBIDDEN);
    let page = owner
        .submit("/spaces/book-club/members/bea/remove", &[])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("no longer a member"));
    assert!(
        !owner
            .get("/spaces/book-club/members")
            .await
            .body
            .contains("@bea")
    );
    assert_eq!(
        bea.get("/spaces/book-club/rooms/circle").await.status,
        StatusCode::NOT_FOUND
    );

    // The last owner cannot leave.
    let page = owner.submit("/spaces/book-club/leave", &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
});

on_both!(
    invitations_expire_and_can_be_revoked_or_declined,
    |backend| async move {
        let (inst, owner) = instance_with_space(backend).await;
        let dan = inst.sign_up("dan@example.org", "dan", "Dan").await;
        owner.get("/spaces/book-club/members").await;
        // Sends an invitation to Dan and returns the path of its link.
        let invite = |n: usize| {
            let owner = &owner;
            let inst = &inst;
            async move {
                let page = owner
                    .submit(
                        "/spaces/book-club/invitations",
                        &[("email", "dan@example.org"), ("role", "member")],
                    )
                    .await;
                assert_eq!(page.status, StatusCode::OK);
                let mail = inst.mailbox.wait_for("dan@example.org", 1 + n).await;
                link_in(&mail.body, &inst.url("/invitations/"))
                    .trim_start_matches(&inst.base)
                    .to_string()
            }
        };
        let first = invite(1).await;
        let second = invite(2).await;
        // A newer invitation replaces the older pending one.
        assert_eq!(
            dan.submit(&format!("{first}/accept"), &[]).await.status,
            StatusCode::GONE
        );

        // Declined.
        dan.get(&second).await;
        assert_eq!(
            dan.submit(&format!("{second}/decline"), &[]).await.status,
            StatusCode::OK
        );
        assert_eq!(
            dan.submit(&format!("{second}/accept"), &[]).await.status,
            StatusCode::GONE
        );

        // Expired after 14 days.
        let third = invite(3).await;
        inst.advance_clock(15 * 86400);
        let page = dan.get(&third).await;
        assert!(
            page.body.to_lowercase().contains("expired"),
            "{}",
            page.body
        );
        assert_eq!(
            dan.submit(&format!("{third}/accept"), &[]).await.status,
            StatusCode::GONE
        );

        // Revoked by the owner.
        let fourth = invite(4).await;
        let id: i64 = {
            use sqlx::Row;
            sqlx::query("SELECT id FROM invitations WHERE revoked_at IS NULL AND accepted_at IS NULL AND declined_at IS NULL AND expires_at > 1")
            .fetch_one(&inst.state().db.pool)
            .await
            .expect("the pending invitation")
            .try_get("id")
            .expect("id")
        };
        let page = owner
            .submit(&format!("/spaces/book-club/invitations/{id}/revoke"), &[])
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            dan.submit(&format!("{fourth}/accept"), &[]).await.status,
            StatusCode::GONE
        );
        assert!(
            !dan.get("/spaces/book-club")
                .await
                .body
                .contains("Members Circle")
        );
    }
);

on_both!(spaces_are_edited_and_listed, |backend| async move {
    let (inst, owner) = instance_with_space(backend).await;
    let home = inst.browser().get("/").await;
    assert!(home.body.contains("Book Club"));
    owner.get("/spaces/book-club/edit").await;
    let page = owner
        .submit(
            "/spaces/book-club/edit",
            &[
                ("name", "Readers"),
                ("description", "Chapter by chapter"),
                ("entrance_room", "vault"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Readers"));
    // Unlisted now: gone from the landing page, still reachable by link.
    let home = inst.browser().get("/").await;
    assert!(!home.body.contains("Readers"));
    assert_eq!(
        inst.browser().get("/spaces/book-club").await.status,
        StatusCode::OK
    );
    // A non-owner cannot edit.
    let eve = inst.sign_up("eve@example.org", "eve", "Eve").await;
    assert_eq!(
        eve.get("/spaces/book-club/edit").await.status,
        StatusCode::FORBIDDEN
    );
    // Duplicate slugs are refused with a message.
    let page = owner
        .submit(
            "/spaces",
            &[("name", "Again"), ("slug", "book-club"), ("listed", "true")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("already uses the address"));
});

// Guards issue 10 (item 7): two owners leaving at the same moment: one leaves, the other is
// told a Space needs an owner. Never a 500 ("database is locked"), never no owner at all.
on_both!(
    two_owners_leaving_at_once_leave_one_owner,
    |backend| async move {
        let (inst, owner) = instance_with_space(backend).await;
        let bea = inst.sign_up("bea@example.org", "bea", "Bea Owner").await;
        owner.get("/spaces/book-club/members").await;
        owner
            .submit(
                "/spaces/book-club/invitations",
                &[("email", "bea@example.org"), ("role", "owner")],
            )
            .await;
        let mail = inst.mailbox.wait_for("bea@example.org", 2).await;
        let path = link_in(&mail.body, &inst.url("/invitations/"))
            .trim_start_matches(&inst.base)
            .to_string();
        bea.get(&path).await;
        assert_eq!(
            bea.submit(&format!("{path}/accept"), &[]).await.status,
            StatusCode::OK
        );
        for _ in 0..5 {
            owner.get("/spaces/book-club").await;
            bea.get("/spaces/book-club").await;
            let (a, b) = tokio::join!(
                owner.post("/spaces/book-club/leave", &[]),
                bea.post("/spaces/book-club/leave", &[])
            );
            let mut statuses = [a.status, b.status];
            statuses.sort();
            assert_eq!(
                statuses,
                [StatusCode::SEE_OTHER, StatusCode::FORBIDDEN],
                "{} / {}",
                a.body,
                b.body
            );
            let owners: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM space_members WHERE role = 'owner'")
                    .fetch_one(&inst.state().db.pool)
                    .await
                    .expect("count owners");
            assert_eq!(owners, 1);
            // Whoever left is invited back as an owner for the next round.
            let (left, email) = if a.status == StatusCode::SEE_OTHER {
                (&owner, "olive@example.org")
            } else {
                (&bea, "bea@example.org")
            };
            let stayed = if a.status == StatusCode::SEE_OTHER {
                &bea
            } else {
                &owner
            };
            let before = inst.mailbox.to(email).len();
            stayed.get("/spaces/book-club/members").await;
            stayed
                .submit(
                    "/spaces/book-club/invitations",
                    &[("email", email), ("role", "owner")],
                )
                .await;
            let mail = inst.mailbox.wait_for(email, before + 1).await;
            let path = link_in(&mail.body, &inst.url("/invitations/"))
                .trim_start_matches(&inst.base)
                .to_string();
            left.get(&path).await;
            assert_eq!(
                left.submit(&format!("{path}/accept"), &[]).await.status,
                StatusCode::OK
            );
        }
    }
);
