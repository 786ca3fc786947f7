//! Interoperability of a whole instance with an independent ActivityPub implementation:
//! bovine (PyPI, MIT), run as its own verifying test server. bovine resolves a Space by
//! WebFinger, fetches it with a signed GET, and follows it; the instance's `Accept` and its
//! `Announce` of a new Room reach bovine's inbox, which verifies their signatures (a delivery
//! job is done only when bovine answered 2xx). The other way round, a Passport follows
//! bovine's actor (served as a Group) from the Network page, and bovine's inbox verifies the
//! Follow and the Undo signed with the Passport's key.
//!
//! Skipped (with a `SKIPPED` line) when bovine is not installed, unless
//! `CONVENE_TEST_REQUIRE_ALL=1`. Python comes from `CONVENE_BOVINE_PYTHON`, else
//! `/work/.venv-bovine/bin/python`, else `python3`, whichever can import `bovine.testing`.

use std::process::Stdio;
use std::time::Duration;

use sqlx::Row;

use super::*;

fn python_with_bovine() -> Option<String> {
    let candidates = [
        std::env::var("CONVENE_BOVINE_PYTHON").ok(),
        Some("/work/.venv-bovine/bin/python".to_owned()),
        Some("python3".to_owned()),
    ];
    candidates.into_iter().flatten().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import bovine.testing.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// As bovine's test actor: WebFinger the handle, GET the actor signed, POST a Follow to its
/// inbox. Prints `{"space": ..., "type": ..., "status": ...}`.
const BOVINE_FOLLOW: &str = r#"
import asyncio, json, sys
from bovine.clients import lookup_uri_with_webfinger
from bovine.testing.server import ServerConfig

async def main(config_file, handle, base):
    config = ServerConfig.load(config_file)
    actor = config.create_actor()
    await actor.init()
    try:
        space, _ = await lookup_uri_with_webfinger(actor.session, "acct:" + handle, domain=base)
        document = await actor.get(space)
        follow = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "type": "Follow",
            "id": config.make_id(),
            "actor": config.actor_id,
            "object": space,
        }
        response = await actor.post(document["inbox"], follow)
        print(json.dumps({"space": space, "type": document["type"], "status": response.status}))
    finally:
        await actor.session.close()

asyncio.run(main(*sys.argv[1:4]))
"#;

/// The states of the instance's ActivityPub delivery jobs with `tag`.
async fn delivery_states(inst: &TestInstance, tag: &str) -> Vec<(String, Option<String>)> {
    let rows =
        sqlx::query("SELECT state, last_error FROM jobs WHERE kind = 'activitypub' AND tag = $1")
            .bind(tag)
            .fetch_all(&inst.state().db.pool)
            .await
            .expect("jobs");
    rows.iter()
        .map(|r| {
            (
                r.try_get::<String, _>("state").unwrap_or_default(),
                r.try_get::<Option<String>, _>("last_error").ok().flatten(),
            )
        })
        .collect()
}

/// Waits until every delivery with `tag` is done (and there is at least one).
async fn wait_delivered(inst: &TestInstance, tag: &str) {
    let mut states = Vec::new();
    for _ in 0..150 {
        states = delivery_states(inst, tag).await;
        if !states.is_empty() && states.iter().all(|(s, _)| s == "done") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deliveries {tag} not done: {states:?}");
}

on_both!(bovine_finds_and_follows_a_space, |backend| async move {
    let Some(python) = python_with_bovine() else {
        assert!(
            !convene_tests::require_all(),
            "bovine is not installed and CONVENE_TEST_REQUIRE_ALL=1"
        );
        println!("SKIPPED bovine_finds_and_follows_a_space: bovine is not installed");
        return;
    };
    let b =
        TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true).await;
    let owner = b.sign_up("olive@example.org", "olive", "Olive Owner").await;
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
    assert_eq!(page.status, StatusCode::OK);

    let (mut child, _host, config_file) =
        start_bovine(&python, &b, &["-m", "bovine.testing", "serve"]).await;
    let config_arg = config_file.to_string_lossy().into_owned();

    let handle = format!("book-club@{}", b.settings.domain());
    let output = tokio::process::Command::new(&python)
        .args(["-c", BOVINE_FOLLOW, &config_arg, &handle, &b.base])
        .output()
        .await
        .expect("bovine client runs");
    assert!(
        output.status.success(),
        "bovine's client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("bovine's client printed JSON");
    assert_eq!(answer["space"], b.url("/spaces/book-club"));
    assert_eq!(answer["type"], "Group");
    assert_eq!(answer["status"], 202);
    assert_eq!(
        super::federation_followers(&b, "book-club").await,
        1,
        "bovine follows the Space"
    );

    // The Accept, then the Announce of a new Room, are verified and taken by bovine's inbox.
    wait_delivered(&b, "federation:accept").await;
    let page = owner
        .submit(
            "/spaces/book-club/rooms",
            &[
                ("name", "Garden"),
                ("slug", "garden"),
                ("topic", ""),
                ("access", "open"),
                ("access_code", ""),
                ("capacity", "8"),
                ("listed", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    wait_delivered(&b, "federation:announce").await;
    let _ = child.kill().await;
});

/// bovine's test server with its actor as a Group, so that a Passport can follow it from the
/// Network page (which follows Spaces and other groups). Arguments: `--port N --save_config F`.
const BOVINE_GROUP_SERVER: &str = r#"
import sys
from bovine.testing.server import ServerConfig, create_app

port, config_file = int(sys.argv[2]), sys.argv[4]
config = ServerConfig.from_env()
person = ServerConfig.create_actor_object

def as_group(self):
    actor = person(self)
    actor["type"] = "Group"
    return actor

ServerConfig.create_actor_object = as_group
app = create_app(config)
config.save(config_file)
app.run(port=port, host="127.0.0.1")
"#;

/// Starts bovine's verifying server on `localhost:PORT` with `command` (its module's `serve`,
/// or a script) and waits until it answers; gives the process, its host and its config file.
async fn start_bovine(
    python: &str,
    inst: &TestInstance,
    command: &[&str],
) -> (tokio::process::Child, String, std::path::PathBuf) {
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let host = format!("localhost:{port}");
    std::fs::create_dir_all(&inst.data_dir).expect("a folder for bovine");
    let config_file = inst.data_dir.join("bovine.toml");
    let config_arg = config_file.to_string_lossy().into_owned();
    let port_arg = port.to_string();
    let mut args: Vec<&str> = command.to_vec();
    args.extend(["--port", &port_arg, "--save_config", &config_arg]);
    let mut child = tokio::process::Command::new(python)
        .args(&args)
        .env("BOVINE_TEST_PROTOCOL", "http")
        .env("BOVINE_TEST_HOSTNAME", &host)
        // Its own folder: two bovine servers (SQLite and PostgreSQL runs) must not share files.
        .current_dir(&inst.data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("bovine starts");
    let client = reqwest::Client::new();
    for _ in 0..150 {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = stderr.read_to_string(&mut err).await;
            }
            panic!("bovine exited with {status}: {err}");
        }
        if config_file.exists()
            && client
                .get(format!("http://{host}/actor"))
                .send()
                .await
                .is_ok()
        {
            return (child, host, config_file);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("bovine did not start within 30 s");
}

on_both!(a_passport_follows_a_bovine_actor, |backend| async move {
    let Some(python) = python_with_bovine() else {
        assert!(
            !convene_tests::require_all(),
            "bovine is not installed and CONVENE_TEST_REQUIRE_ALL=1"
        );
        println!("SKIPPED a_passport_follows_a_bovine_actor: bovine is not installed");
        return;
    };
    let a =
        TestInstance::spawn_with(backend, |s| s.federation_allow_private_addresses = true).await;
    let ada = a.sign_up("ada@example.org", "ada", "Ada").await;
    let (mut child, host, _config) = start_bovine(&python, &a, &["-c", BOVINE_GROUP_SERVER]).await;

    // Ada follows bovine's actor by its handle, through the Network page: WebFinger, a signed
    // GET, then the Follow, which bovine's inbox takes only once it has verified the
    // signature with Ada's key (a delivery is done only on a 2xx answer).
    let page = ada
        .submit(
            "/network/follow",
            &[("handle", &format!("@buttercup@{host}"))],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Buttercup the exemplary bovine"),
        "{}",
        page.body
    );
    wait_delivered(&a, "federation:follow").await;

    // The Undo is signed and verified the same way.
    let page = ada
        .submit(
            &format!(
                "/network/unfollow?space={}",
                url::form_urlencoded::byte_serialize(format!("http://{host}/actor").as_bytes())
                    .collect::<String>()
            ),
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    wait_delivered(&a, "federation:unfollow").await;
    let _ = child.kill().await;
});
