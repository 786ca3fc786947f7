//! Passports: sign-up and sign-in by emailed code, sessions, sign-out, CSRF.

use super::*;

on_both!(sign_up_sign_out_and_sign_in, |backend| async move {
    let inst = TestInstance::spawn(backend).await;
    let ada = inst.sign_up("ada@example.org", "ada", "Ada Lovelace").await;
    let home = ada.get("/").await;
    assert!(home.body.contains("@ada"));
    // The first Passport is the operator: it may create Spaces.
    let page = ada.get("/spaces/new").await;
    assert_eq!(page.status, StatusCode::OK);

    let page = ada.submit("/signout", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("@ada"));
    assert_eq!(
        ada.get("/me").await.path,
        "/signin",
        "signed out visitors are sent to sign in"
    );

    let ada = inst.sign_in("ada@example.org").await;
    let me = ada.get("/me").await;
    assert!(me.body.contains("Ada Lovelace"));

    // A second Passport is not an operator: the instance does not let it create Spaces.
    let bob = inst.sign_up("bob@example.org", "bob", "Bob").await;
    assert_eq!(bob.get("/spaces/new").await.status, StatusCode::FORBIDDEN);
});

on_both!(handles_and_addresses_are_unique, |backend| async move {
    let inst = TestInstance::spawn(backend).await;
    inst.sign_up("ada@example.org", "ada", "Ada").await;
    let other = inst.browser();
    other.get("/signup").await;
    let page = other
        .submit(
            "/signup",
            &[
                ("email", "ada2@example.org"),
                ("handle", "ADA"),
                ("display_name", "Another"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("already taken"), "{}", page.body);
    let page = other
        .submit(
            "/signup",
            &[
                ("email", "Ada@Example.org"),
                ("handle", "ada_two"),
                ("display_name", "Another"),
            ],
        )
        .await;
    // A taken address is not revealed (issue 10, item 6): the form answers as it does for a
    // new address, and the mail tells the address's owner to sign in instead.
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.path, "/verify");
    assert!(!page.body.contains("already uses"), "{}", page.body);
    let mail = inst.mailbox.wait_for("ada@example.org", 2).await;
    assert!(
        mail.subject.contains("already have a Passport"),
        "{}",
        mail.subject
    );
    assert!(mail.body.contains("/signin?email="), "{}", mail.body);
    let page = other
        .submit(
            "/signup",
            &[
                ("email", "not-an-email"),
                ("handle", "9lives"),
                ("display_name", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for message in [
        "like name@example.org",
        "starts with a letter",
        "Enter a name",
    ] {
        assert!(page.body.contains(message), "missing {message:?}");
    }
    assert!(page.body.contains("aria-invalid=\"true\""));
});

on_both!(
    codes_are_single_use_limited_and_expire,
    |backend| async move {
        let inst = TestInstance::spawn(backend).await;
        inst.sign_up("ada@example.org", "ada", "Ada").await;
        let mail_count = inst.mailbox.to("ada@example.org").len();

        // Reusing the sign-up code fails.
        let first_code = code_in(&inst.mailbox.to("ada@example.org")[0].body);
        let b = inst.browser();
        b.get("/signin").await;
        let page = b
            .submit(
                "/verify",
                &[("email", "ada@example.org"), ("code", &first_code)],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("used already"), "{}", page.body);

        // Five wrong tries kill a fresh code, even the right one afterwards.
        b.submit("/signin", &[("email", "ada@example.org")]).await;
        let mail = inst
            .mailbox
            .wait_for("ada@example.org", mail_count + 1)
            .await;
        let code = code_in(&mail.body);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..5 {
            let page = b
                .submit("/verify", &[("email", "ada@example.org"), ("code", wrong)])
                .await;
            assert!(page.body.contains("not right"));
        }
        let page = b
            .submit("/verify", &[("email", "ada@example.org"), ("code", &code)])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("Too many wrong tries"));

        // An expired code is refused.
        b.submit("/signin", &[("email", "ada@example.org")]).await;
        let mail = inst
            .mailbox
            .wait_for("ada@example.org", mail_count + 2)
            .await;
        let code = code_in(&mail.body);
        inst.advance_clock(16 * 60);
        let page = b
            .submit("/verify", &[("email", "ada@example.org"), ("code", &code)])
            .await;
        assert!(page.body.contains("expired"));
        assert!(b.get("/me").await.path == "/signin", "still signed out");
    }
);

on_both!(
    sign_in_does_not_reveal_who_has_a_passport,
    |backend| async move {
        let inst = TestInstance::spawn(backend).await;
        inst.sign_up("ada@example.org", "ada", "Ada").await;
        let b = inst.browser();
        b.get("/signin").await;
        let known = b.submit("/signin", &[("email", "ada@example.org")]).await;
        let unknown = b
            .submit("/signin", &[("email", "nobody@example.org")])
            .await;
        assert_eq!(known.status, unknown.status);
        assert_eq!(known.path, "/verify");
        assert_eq!(unknown.path, "/verify");
        // The stranger is told by email how to sign up instead.
        let mail = inst.mailbox.wait_for("nobody@example.org", 1).await;
        assert!(mail.body.contains("no Passport uses it"));
        assert!(mail.body.contains("/signup?email="));

        // Guards issue 10 (item 6): the limits answer alike too. Each address gets five
        // mails an hour, known or not, and then both are refused the same way.
        // Ada has had two (her sign-up code and the sign-in above). Mail leaves through the
        // queue, so her second may still be on its way when the stranger's has arrived.
        inst.mailbox.wait_for("ada@example.org", 2).await;
        assert_eq!(inst.mailbox.to("ada@example.org").len(), 2);
        for _ in 0..4 {
            b.submit("/signin", &[("email", "ada@example.org")]).await;
            b.submit("/signin", &[("email", "nobody@example.org")])
                .await;
        }
        let known = b.submit("/signin", &[("email", "ada@example.org")]).await;
        let unknown = b
            .submit("/signin", &[("email", "nobody@example.org")])
            .await;
        assert_eq!(
            known.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            known.body
        );
        assert_eq!(unknown.status, known.status);
        inst.mailbox.wait_for("nobody@example.org", 5).await;
        inst.mailbox.wait_for("ada@example.org", 5).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            inst.mailbox.to("nobody@example.org").len(),
            5,
            "no more than five"
        );
        assert_eq!(
            inst.mailbox.to("ada@example.org").len(),
            5,
            "no more than five"
        );

        // One client cannot spread a flood over many addresses either.
        let flood = inst.browser();
        flood.get("/signin").await;
        let mut refused = 0;
        for i in 0..25 {
            let page = flood
                .submit("/signin", &[("email", &format!("victim{i}@example.org"))])
                .await;
            if page.status == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
            }
        }
        // Everyone here shares 127.0.0.1: 10 mails went out above, 20 an hour per client.
        assert_eq!(refused, 15, "the client's hourly share is twenty mails");
        // An hour later the address may be mailed again.
        inst.advance_clock(3601);
        let page = b
            .submit("/signin", &[("email", "nobody@example.org")])
            .await;
        assert_eq!(page.path, "/verify");
    }
);

on_both!(
    forms_without_a_valid_csrf_token_are_refused,
    |backend| async move {
        let inst = TestInstance::spawn(backend).await;
        let ada = inst.sign_up("ada@example.org", "ada", "Ada").await;
        let forged = ada
            .post(
                "/spaces",
                &[
                    ("name", "Forged"),
                    ("slug", "forged"),
                    ("csrf", "0123456789abcdef0123456789abcdef01234567"),
                ],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert!(forged.body.contains("Form expired"));
        let missing = ada
            .post("/me", &[("display_name", "Mallory"), ("csrf", "")])
            .await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN);
        // A token from another browser does not work either.
        let other = inst.browser();
        let token = other
            .get("/signin")
            .await
            .csrf()
            .expect("token on the page");
        let cross = ada
            .post("/me", &[("display_name", "Mallory"), ("csrf", &token)])
            .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        assert!(ada.get("/me").await.body.contains("Ada"));
        assert_eq!(
            ada.get("/spaces/forged").await.status,
            StatusCode::NOT_FOUND
        );
    }
);

on_both!(a_restart_keeps_everything, |backend| async move {
    let (mut inst, owner) = instance_with_space(backend).await;
    inst.restart().await;
    // The session cookie still works, and the Space and its Rooms are there.
    let page = owner.get("/spaces/book-club").await;
    assert_eq!(page.status, StatusCode::OK);
    for room in ["Lobby", "Members Circle", "The Vault", "Hideout"] {
        assert!(page.body.contains(room), "{room} survived the restart");
    }
    assert!(page.body.contains("@olive"));
    let code_page = inst.browser().get("/spaces/book-club/rooms/vault").await;
    assert!(code_page.body.contains("name=\"code\""));
});
