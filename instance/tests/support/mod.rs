//! Helpers shared by the tests that run real `convene` processes.
#![allow(dead_code)]

use std::path::PathBuf;

/// A fresh directory name under the system's temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("convene-{name}-{}-{nonce}", std::process::id()))
}

/// The PostgreSQL server for tests, or `None` (and a SKIPPED line) when none is configured;
/// under `CONVENE_TEST_REQUIRE_ALL=1` a missing server fails the test instead.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("CONVENE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CONVENE_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "CONVENE_TEST_REQUIRE_ALL=1 but CONVENE_TEST_POSTGRES_URL is not set ({test})"
            );
            eprintln!("SKIPPED {test}: set CONVENE_TEST_POSTGRES_URL to run it");
            None
        }
    }
}

/// A new, empty database on the server at `base`; returns its URL.
pub async fn fresh_postgres(base: &str) -> String {
    sqlx::any::install_default_drivers();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("convene_q_{}_{nonce}", std::process::id());
    let pool = sqlx::AnyPool::connect(base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create a database");
    pool.close().await;
    match base.rfind('/') {
        Some(at) => format!("{}/{name}", &base[..at]),
        None => panic!("CONVENE_TEST_POSTGRES_URL has no database part: {base}"),
    }
}
