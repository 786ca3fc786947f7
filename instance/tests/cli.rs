//! The `convene` binary: admin commands a script can use, and `--help`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The binary under test; cargo builds it for this package's integration tests.
fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_convene"))
}

fn run(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env("CONVENE_DATA_DIR", data)
        .env("CONVENE_PUBLIC_URL", "https://convene.example.org")
        .env_remove("CONVENE_DATABASE_URL")
        .output()
        .expect("run convene");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn admin_commands_create_and_list() {
    let data = std::env::temp_dir().join(format!("convene-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (ok, out, err) = run(
        &data,
        &[
            "admin",
            "passport",
            "create",
            "--email",
            "ops@example.org",
            "--handle",
            "ops",
            "--operator",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["passport"]["address"], "@ops@convene.example.org");

    let (ok, out, err) = run(
        &data,
        &[
            "admin",
            "space",
            "create",
            "--owner",
            "ops",
            "--slug",
            "town",
            "--name",
            "Town Hall",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["space"]["url"], "https://convene.example.org/spaces/town");

    let (ok, out, err) = run(
        &data,
        &[
            "admin",
            "room",
            "create",
            "--space",
            "town",
            "--slug",
            "council",
            "--name",
            "Council",
            "--access",
            "locked",
            "--code",
            "1234",
            "--unlisted",
            "--capacity",
            "8",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v["room"]["url"],
        "https://convene.example.org/spaces/town/rooms/council"
    );
    assert_eq!(v["room"]["capacity"], 8);

    let (ok, out, _) = run(&data, &["admin", "list"]);
    assert!(ok);
    assert!(
        out.contains("@ops@convene.example.org")
            && out.contains("/spaces/town")
            && out.contains("/council")
    );

    // Mistakes are explained, with a failing exit code.
    let (ok, _, err) = run(
        &data,
        &[
            "admin", "space", "create", "--owner", "ops", "--slug", "town", "--name", "Again",
        ],
    );
    assert!(!ok);
    assert!(err.contains("already uses the address"), "{err}");
    let (ok, _, err) = run(
        &data,
        &[
            "admin", "room", "create", "--space", "town", "--slug", "xy", "--name", "X",
            "--access", "locked",
        ],
    );
    assert!(!ok);
    assert!(err.contains("access code"), "{err}");
    let (ok, _, err) = run(
        &data,
        &[
            "admin", "passport", "create", "--email", "bad", "--handle", "h",
        ],
    );
    assert!(!ok);
    assert!(err.contains("--email"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn help_lists_the_settings() {
    let out = Command::new(binary()).arg("--help").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for setting in [
        "CONVENE_LISTEN",
        "CONVENE_PUBLIC_URL",
        "CONVENE_DATA_DIR",
        "CONVENE_DATABASE_URL",
        "CONVENE_SMTP_URL",
    ] {
        assert!(text.contains(setting), "--help mentions {setting}");
    }
}

/// `convene tally` recounts a published BLT file offline (issue 4).
#[test]
fn tally_recounts_a_blt_file() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../governance/tests/data/glasgow_2022_ward22_dennistoun.blt");
    let file = file.to_str().expect("utf-8 path");
    let data = std::env::temp_dir().join(format!("convene-tally-{}", std::process::id()));
    let (ok, out, err) = run(&data, &["tally", "--json", file]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    let elected: Vec<&str> = v["elected"]
        .as_array()
        .expect("elected list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The official declaration: McDougall and Carroll at stage 1, Casey at stage 3; three
    // seats taken from the file when --seats is not given.
    assert_eq!(elected.len(), 3, "{elected:?}");
    assert!(elected[0].starts_with("Elaine MCDOUGALL"), "{elected:?}");
    assert!(elected[1].starts_with("Anthony CARROLL"), "{elected:?}");
    assert!(elected[2].starts_with("Allan CASEY"), "{elected:?}");
    assert!(v["rounds"].as_array().is_some_and(|r| r.len() >= 3));

    let (ok, out, _) = run(&data, &["tally", "--method", "irv", "--seats", "1", file]);
    assert!(ok);
    assert!(
        out.contains("Instant-runoff") && out.contains("Round 1"),
        "{out}"
    );

    let (ok, _, err) = run(&data, &["tally", "--method", "borda", file]);
    assert!(!ok);
    assert!(err.contains("unknown counting method"), "{err}");
    let bad = data.join("bad.blt");
    std::fs::create_dir_all(&data).expect("temp dir");
    std::fs::write(&bad, "2 1\n1 3 0\n0\n\"A\"\n\"B\"\n\"T\"\n").expect("write");
    let (ok, _, err) = run(&data, &["tally", bad.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(err.contains("BLT line 2"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}
