//! Issue 9 in headless Chromium: one Passport, Rooms anywhere, across two instances on
//! loopback (`tests/browser/visit.mjs`). Skipped like the other browser tests when node,
//! Chromium or playwright-core are missing, except under `CONVENE_TEST_REQUIRE_ALL=1`.

use convene_tests::{Backend, TestInstance, mailhttp};

use super::StatusCode;
use super::browser::{run_script, tools_present};

/// B: Bob owns the Book Club with an open, a members-only and a locked Room, created over HTTP
/// (the script signs him in through the pages).
async fn bobs_instance() -> TestInstance {
    let b = TestInstance::spawn_with(Backend::Sqlite, |s| {
        s.federation_allow_private_addresses = true
    })
    .await;
    let bob = b.sign_up("bob@example.org", "bob", "Bob Baker").await;
    let page = bob
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
    for (slug, name, access, code) in [
        ("lobby", "Lobby", "open", ""),
        ("circle", "Members Circle", "members", ""),
        ("vault", "The Vault", "locked", "open sesame"),
    ] {
        let page = bob
            .submit(
                "/spaces/book-club/rooms",
                &[
                    ("name", name),
                    ("slug", slug),
                    ("topic", "Talk"),
                    ("access", access),
                    ("access_code", code),
                    ("capacity", "12"),
                    ("listed", "true"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "room {slug}: {}", page.body);
    }
    b
}

/// Issue 9: Ada, with a Passport on A, enters Bob's open, members-only and locked Rooms on B
/// from her own browser, and they see each other's video; B shows her as `@ada@A`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passport_from_another_instance_meets_people_in_rooms_there() {
    if !tools_present(
        "browser_visits::a_passport_from_another_instance_meets_people_in_rooms_there",
    ) {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let b = bobs_instance().await;
    let a = TestInstance::spawn_with(Backend::Sqlite, |s| {
        s.federation_allow_private_addresses = true
    })
    .await;
    let a_mail = mailhttp::serve(a.mailbox.clone()).await;
    run_script(
        &b,
        "visit.mjs",
        &[
            ("CONVENE_A_URL", a.base.clone()),
            ("CONVENE_A_MAIL_URL", a_mail),
        ],
    )
    .await;

    // What the script did through the pages is on B: Ada is a member of the Book Club,
    // under her address.
    let address = format!("@ada@{}", a.settings.domain());
    let bob = b.sign_in("bob@example.org").await;
    let members = bob.get("/spaces/book-club/members").await;
    assert!(members.body.contains(&address), "{}", members.body);
}
