//! End-to-end tests: real instances on loopback, driven over HTTP like a person or a script
//! would, each on SQLite and (when configured) on PostgreSQL.

mod accounts;
mod api;
mod bad_input;
mod bovine;
mod browser;
mod browser_visits;
mod caching;
mod clashes;
mod elections;
mod federation;
mod federation_safety;
mod media;
mod network;
mod queue;
mod rooms;
mod spaces;
mod visits;
mod visits_refused;

pub use convene_tests::{Backend, Browser, TestInstance, code_in, link_in, on_both};
pub use reqwest::StatusCode;

/// Signs up an operator (the first Passport) and gives them a Space with a Room of each kind.
pub async fn instance_with_space(backend: Backend) -> (TestInstance, Browser) {
    instance_with_space_and(backend, |_| {}).await
}

/// [`instance_with_space`] with settings adjusted by `tweak`.
pub async fn instance_with_space_and(
    backend: Backend,
    tweak: impl FnOnce(&mut convene::Settings),
) -> (TestInstance, Browser) {
    let inst = TestInstance::spawn_with(backend, tweak).await;
    let owner = inst
        .sign_up("olive@example.org", "olive", "Olive Owner")
        .await;
    let page = owner
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
    assert_eq!(page.path, "/spaces/book-club");
    for (slug, name, access, code, listed) in [
        ("lobby", "Lobby", "open", "", "true"),
        ("circle", "Members Circle", "members", "", "true"),
        ("vault", "The Vault", "locked", "open sesame", "true"),
        ("hideout", "Hideout", "open", "", "false"),
    ] {
        let fields = vec![
            ("name", name),
            ("slug", slug),
            ("topic", "Talk"),
            ("access", access),
            ("access_code", code),
            ("capacity", "12"),
            ("listed", listed),
        ];
        let page = owner.submit("/spaces/book-club/rooms", &fields).await;
        assert_eq!(page.status, StatusCode::OK, "room {slug}: {}", page.body);
        assert_eq!(page.path, format!("/spaces/book-club/rooms/{slug}"));
    }
    (inst, owner)
}

/// How many remote actors follow the Space at `slug`, from its followers collection.
pub async fn federation_followers(inst: &TestInstance, slug: &str) -> u64 {
    let url = inst.url(&format!("/spaces/{slug}/followers"));
    let body: serde_json::Value = reqwest::Client::new()
        .get(url)
        .header("accept", "application/activity+json")
        .send()
        .await
        .expect("followers")
        .json()
        .await
        .expect("followers JSON");
    body["totalItems"].as_u64().unwrap_or(u64::MAX)
}
