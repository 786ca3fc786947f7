//! The JSON API: personal access tokens from the UI, bearer auth, problem+json errors.

use serde_json::{Value, json};

use super::*;

async fn token_for(inst: &TestInstance, who: &Browser) -> String {
    who.get("/me/tokens").await;
    let page = who.submit("/me/tokens", &[("name", "script")]).await;
    assert_eq!(page.status, StatusCode::OK);
    let at = page.body.find("cvn_").expect("the new token is shown once");
    let token: String = page.body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    // Shown once: the list afterwards does not contain it.
    assert!(!who.get("/me/tokens").await.body.contains(&token));
    let _ = inst;
    token
}

on_both!(api_with_a_personal_token, |backend| async move {
    let (inst, owner) = instance_with_space(backend).await;
    let token = token_for(&inst, &owner).await;
    let http = reqwest::Client::new();
    let auth = format!("Bearer {token}");

    let me: Value = http
        .get(inst.url("/api/v1/me"))
        .header("authorization", &auth)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["handle"], "olive");
    assert_eq!(me["spaces"][0]["role"], "owner");

    let created = http
        .post(inst.url("/api/v1/spaces/book-club/rooms"))
        .header("authorization", &auth)
        .json(&json!({"slug": "workshop", "name": "Workshop", "access": "locked", "access_code": "hammer", "capacity": 6}))
        .send()
        .await
        .expect("create room");
    assert_eq!(created.status(), StatusCode::CREATED);
    let room: Value = created.json().await.expect("json");
    assert_eq!(room["access"], "locked");
    assert_eq!(room["url"], inst.url("/spaces/book-club/rooms/workshop"));

    // Anonymous callers see public data but not members-only rooms or codes.
    let public: Value = http
        .get(inst.url("/api/v1/spaces/book-club"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = public["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|r| r["slug"].as_str())
        .collect();
    assert!(names.contains(&"workshop") && names.contains(&"lobby"));
    assert!(!names.contains(&"circle") && !names.contains(&"hideout"));
    assert!(
        public["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .all(|r| r.get("access_code").is_none())
    );
    let hidden = http
        .get(inst.url("/api/v1/spaces/book-club/rooms/circle"))
        .send()
        .await
        .expect("get");
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    assert_eq!(hidden.headers()["content-type"], "application/problem+json");

    let patched: Value = http
        .patch(inst.url("/api/v1/spaces/book-club/rooms/workshop"))
        .header("authorization", &auth)
        .json(&json!({"access": "open"}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(patched["access"], "open");

    let invited = http
        .post(inst.url("/api/v1/spaces/book-club/invitations"))
        .header("authorization", &auth)
        .json(&json!({"email": "fay@example.org"}))
        .send()
        .await
        .expect("invite");
    assert_eq!(invited.status(), StatusCode::CREATED);
    inst.mailbox.wait_for("fay@example.org", 1).await;

    let deleted = http
        .delete(inst.url("/api/v1/spaces/book-club/rooms/workshop"))
        .header("authorization", &auth)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    // Errors are problem+json with the field named.
    let bad = http
        .post(inst.url("/api/v1/spaces/book-club/rooms"))
        .header("authorization", &auth)
        .json(&json!({"slug": "Bad Slug!", "name": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    let problem: Value = bad.json().await.expect("json");
    assert_eq!(problem["status"], 422);
    assert_eq!(problem["errors"][0]["field"], "slug");

    let dup = http
        .post(inst.url("/api/v1/spaces/book-club/rooms"))
        .header("authorization", &auth)
        .json(&json!({"slug": "lobby", "name": "Lobby again"}))
        .send()
        .await
        .expect("post");
    assert_eq!(dup.status(), StatusCode::CONFLICT);

    for (body, what) in [
        ("{not json", "malformed JSON"),
        ("{\"name\": 5}", "wrong type"),
        ("{\"unknown\": 1}", "unknown field"),
    ] {
        let r = http
            .post(inst.url("/api/v1/spaces"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert!(r.status().is_client_error(), "{what}: {}", r.status());
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
    }

    // Revoked tokens stop working.
    let id: i64 = {
        use sqlx::Row;
        sqlx::query("SELECT id FROM api_tokens")
            .fetch_one(&inst.state().db.pool)
            .await
            .expect("token row")
            .try_get("id")
            .expect("id")
    };
    owner.get("/me/tokens").await;
    owner.submit(&format!("/me/tokens/{id}/revoke"), &[]).await;
    let r = http
        .get(inst.url("/api/v1/me"))
        .header("authorization", &auth)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(inst.url("/api/v1/me"))
        .header("authorization", "Bearer cvn_forged")
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
});

on_both!(
    openapi_document_lists_paths_that_answer,
    |backend| async move {
        let (inst, _owner) = instance_with_space(backend).await;
        let http = reqwest::Client::new();
        let doc: Value = http
            .get(inst.url("/api/v1/openapi.json"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 8);
        for (path, ops) in paths {
            let concrete = path
                .replace("{space}", "book-club")
                .replace("{room}", "lobby")
                .replace("{handle}", "olive")
                .replace("{id}", "1");
            for method in ops
                .as_object()
                .expect("ops")
                .keys()
                .filter(|m| *m != "parameters")
            {
                let r = http
                    .request(
                        method.to_uppercase().parse().expect("method"),
                        inst.url(&format!("/api/v1{concrete}")),
                    )
                    .send()
                    .await
                    .expect("request");
                assert_ne!(
                    r.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert!(!r.status().is_server_error(), "{method} {path}");
            }
        }
    }
);

/// Guards issue 10 (item 7): invitations are limited per Space, so a script cannot make the
/// instance mail hundreds of strangers in a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_limited_per_space() {
    let _share = convene_tests::share_machine().await;
    let (inst, owner) = instance_with_space(Backend::Sqlite).await;
    let token = token_for(&inst, &owner).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..101 {
        let response = http
            .post(inst.url("/api/v1/spaces/book-club/invitations"))
            .header("authorization", format!("Bearer {token}"))
            .json(&json!({"email": format!("friend{i}@example.org")}))
            .send()
            .await
            .expect("invite");
        statuses.push(response.status());
    }
    assert!(
        statuses[..100].iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    assert_eq!(statuses[100], StatusCode::TOO_MANY_REQUESTS);
}
