//! Bad input of every kind gets a clear answer, never a 500, and loses nothing.

use super::*;

on_both!(bad_requests_get_clear_pages, |backend| async move {
    let (inst, owner) = instance_with_space(backend).await;
    let guest = inst.browser();

    let page = guest.get("/spaces/no-such-space").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Not found") && page.body.contains("<main"));
    assert_eq!(
        guest.get("/nowhere/at/all").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        guest.get("/invitations/forged-token").await.status,
        StatusCode::NOT_FOUND
    );

    // A non-numeric id in a path.
    owner.get("/me/tokens").await;
    let page = owner.post("/me/tokens/abc/revoke", &[]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("<h1>"));

    // An oversize form body.
    let huge = "x".repeat(200 * 1024);
    let page = owner.post("/me", &[("display_name", &huge)]).await;
    assert!(
        page.status == StatusCode::PAYLOAD_TOO_LARGE || page.status == StatusCode::BAD_REQUEST,
        "{}",
        page.status
    );
    assert!(page.body.contains("<h1>"));

    // Fields that are far too long are refused with a message, not stored.
    let long_name = "n".repeat(500);
    let page = owner.submit("/me", &[("display_name", &long_name)]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(owner.get("/me").await.body.contains("Olive Owner"));

    // A wrong method on a page.
    let r = owner
        .client
        .delete(inst.url("/spaces/book-club"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Non-UTF-8 and wrong-type forms.
    let token = owner.get("/me").await.csrf().expect("csrf");
    let r = owner
        .client
        .post(inst.url("/me"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token}&display_name=%FF%FE"))
        .send()
        .await
        .expect("post");
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = owner
        .client
        .post(inst.url("/me"))
        .header("content-type", "application/json")
        .header("x-csrf-token", &token)
        .body("{}")
        .send()
        .await
        .expect("post");
    assert!(r.status().is_client_error(), "{}", r.status());

    // An invalid email for an invitation, and a bogus role.
    owner.get("/spaces/book-club/members").await;
    let page = owner
        .submit(
            "/spaces/book-club/invitations",
            &[("email", "nope"), ("role", "member")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = owner
        .submit(
            "/spaces/book-club/invitations",
            &[("email", "x@example.org"), ("role", "emperor")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Capacity out of range and nonsense.
    for capacity in ["0", "101", "-5", "twelve", "99999999999999999999"] {
        let page = owner
            .submit(
                "/spaces/book-club/rooms",
                &[
                    ("name", "Big"),
                    ("slug", "big"),
                    ("access", "open"),
                    ("listed", "true"),
                    ("capacity", capacity),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "capacity {capacity}"
        );
    }

    // Everything accepted before is still there, and nothing failed on our side.
    let page = owner.get("/spaces/book-club").await;
    for room in ["Lobby", "Members Circle", "The Vault", "Hideout"] {
        assert!(page.body.contains(room));
    }
    let metrics = guest.get("/metrics").await.body;
    assert!(metrics.contains("convene_http_errors_total 0"), "{metrics}");
});

on_both!(hostile_text_is_escaped, |backend| async move {
    let (_inst, owner) = instance_with_space(backend).await;
    let page = owner
        .submit(
            "/spaces/book-club/rooms",
            &[
                ("name", "<script>alert(1)</script>"),
                ("slug", "xss"),
                ("access", "open"),
                ("listed", "true"),
                ("capacity", "5"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(page.body.contains("&lt;script&gt;"));
    // And even if markup slipped through, the page forbids inline scripts.
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
});
