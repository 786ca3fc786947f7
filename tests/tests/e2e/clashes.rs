//! Handle clashes, issue 8: a Passport and a Space stored under one name (before names were
//! checked, or by two creations racing) are reported, and the later of the two is renamed.

use serde_json::Value;

use super::*;

const AP: &str = "application/activity+json";

on_both!(
    stored_handle_clashes_are_reported_and_the_later_one_renamed,
    |backend| async move {
        let (inst, _olive) = instance_with_space(backend).await;
        let db = &inst.state().db;
        let now = db.now();
        // Clashes from before names were checked: a Space made after the Passport @olive,
        // and a Passport made after the Space @zed.
        for (slug, created_at) in [("olive", now + 10), ("zed", now - 1000)] {
            sqlx::query(
                "INSERT INTO spaces (slug, domain, name, description, listed, created_at) \
                 VALUES ($1, '', $2, '', 1, $3)",
            )
            .bind(slug)
            .bind(format!("Space {slug}"))
            .bind(created_at)
            .execute(&db.pool)
            .await
            .expect("insert a Space");
        }
        sqlx::query(
            "INSERT INTO passports (handle, domain, email, display_name, created_at) \
             VALUES ('zed', '', 'zed@example.org', 'Zed', $1)",
        )
        .bind(now)
        .execute(&db.pool)
        .await
        .expect("insert a Passport");
        let clashes = convene::core::handles::clashes(db).await.expect("clashes");
        let names: Vec<&str> = clashes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["olive", "zed"]);
        // The Space @olive has a key and a follower, under its URL.
        let space_doc: Value = reqwest::Client::new()
            .get(inst.url("/spaces/olive"))
            .header("accept", AP)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        sqlx::query(
            "INSERT INTO federation_followers (local_actor, remote_actor, remote_host, inbox, \
             follow_id, created_at, accepted_at) VALUES ($1, 'https://r.example/u/a', \
             'r.example', 'https://r.example/u/a/inbox', 'https://r.example/f/1', $2, $2)",
        )
        .bind(inst.url("/spaces/olive"))
        .bind(now)
        .execute(&db.pool)
        .await
        .expect("insert a follower");

        // Listing changes nothing.
        inst.admin(&["federation", "clashes"]).await;
        assert_eq!(
            convene::core::handles::clashes(db)
                .await
                .expect("clashes")
                .len(),
            2
        );
        inst.admin(&["federation", "clashes", "--resolve"]).await;
        assert!(
            convene::core::handles::clashes(db)
                .await
                .expect("clashes")
                .is_empty()
        );
        // The later of each pair moved: the Space to @olive2, the Passport to @zed2.
        let domain = inst.settings.domain();
        for (name, path) in [
            ("olive", "/people/olive"),
            ("olive2", "/spaces/olive2"),
            ("zed", "/spaces/zed"),
            ("zed2", "/people/zed2"),
        ] {
            let jrd: Value = reqwest::get(inst.url(&format!(
                "/.well-known/webfinger?resource=acct:{name}@{domain}"
            )))
            .await
            .expect("webfinger")
            .json()
            .await
            .expect("jrd");
            assert_eq!(
                jrd["links"]
                    .as_array()
                    .and_then(|l| l.iter().find(|l| l["rel"] == "self"))
                    .map(|l| l["href"].clone()),
                Some(Value::from(inst.url(path))),
                "{name}"
            );
        }
        // The renamed Space kept its key and its follower.
        let moved: Value = reqwest::Client::new()
            .get(inst.url("/spaces/olive2"))
            .header("accept", AP)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            moved["publicKey"]["publicKeyPem"],
            space_doc["publicKey"]["publicKeyPem"]
        );
        assert_eq!(federation_followers(&inst, "olive2").await, 1);
    }
);

on_both!(
    a_passport_and_a_space_made_at_once_under_one_name_do_not_both_succeed,
    |backend| async move {
        let (inst, olive) = instance_with_space(backend).await;
        let db = inst.state().db.clone();
        // The Passport @twin is being made: its transaction has claimed the name and written
        // its row, and has not committed yet...
        let mut tx = db.begin_write().await.expect("transaction");
        convene::domain::names::claim(&mut tx, "twin")
            .await
            .expect("claim");
        sqlx::query(
            "INSERT INTO passports (handle, domain, email, display_name, created_at) \
             VALUES ('twin', '', 'twin@example.org', 'Twin', $1)",
        )
        .bind(db.now())
        .execute(&mut *tx)
        .await
        .expect("insert");
        // ...when the Space @twin is asked for. It waits for the Passport's transaction, then
        // finds the name taken.
        let request = tokio::spawn(async move {
            olive
                .submit(
                    "/spaces",
                    &[
                        ("name", "Twin"),
                        ("slug", "twin"),
                        ("description", ""),
                        ("listed", "true"),
                    ],
                )
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        tx.commit().await.expect("commit");
        let page = request.await.expect("request");
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(
            convene::core::handles::clashes(&db)
                .await
                .expect("clashes")
                .is_empty()
        );
    }
);
