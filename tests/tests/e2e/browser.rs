//! Headless Chromium through the pages and the room client, driven by playwright-core scripts
//! in `tests/browser/`.
//!
//! Each test starts an instance on SQLite and a loopback endpoint serving its mailbox as JSON
//! (so a script can read sign-in codes), then runs one node script and asserts it passed. The
//! script's own steps and timings are printed. Without node, Debian's chromium or the npm
//! packages (`npm ci` in `tests/browser`), a test prints `SKIPPED` and returns, unless
//! `CONVENE_TEST_REQUIRE_ALL=1` (CI), where that is a failure. Screenshots go to
//! `<target dir>/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use convene_tests::{Backend, TestInstance, mailhttp, require_all};

use super::StatusCode;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Each script limits itself to under a minute; this is the backstop.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The workspace's target dir (or `$CARGO_TARGET_DIR`) + `/screenshots`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots")
}

/// Whether everything a browser test needs is installed; prints why not (or fails under
/// `CONVENE_TEST_REQUIRE_ALL=1`).
pub(super) fn tools_present(test: &str) -> bool {
    let mut missing = Vec::new();
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        missing.push("node (apt-get install nodejs npm)".to_owned());
    }
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
    }
    let playwright = browser_dir().join("node_modules/playwright-core");
    if !playwright.exists() {
        missing.push(format!(
            "{} (run npm ci in tests/browser)",
            playwright.display()
        ));
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    assert!(
        !require_all(),
        "CONVENE_TEST_REQUIRE_ALL=1 but {test} cannot run: missing {what}"
    );
    eprintln!("SKIPPED {test}: missing {what}");
    false
}

/// Runs `tests/browser/{script}` against `inst` with extra environment; asserts it passed and
/// prints what it said.
///
/// The test calling it holds [`convene_tests::machine_alone`] from its start: each script runs
/// a call of several people with real encoders, and beside another such call or a busy test on
/// a small machine a page's media starves (its bandwidth estimate collapses, video stalls for
/// seconds) and the test fails for the machine's sake, not the product's.
pub(super) async fn run_script(inst: &TestInstance, script: &str, env: &[(&str, String)]) {
    let mail_url = mailhttp::serve(inst.mailbox.clone()).await;
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).expect("create the screenshot folder");
    let started = Instant::now();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .current_dir(browser_dir())
        .env("CONVENE_BASE_URL", &inst.base)
        .env("CONVENE_MAIL_URL", &mail_url)
        .env("CONVENE_SCREENSHOTS", &shots)
        .env("CONVENE_CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} ran longer than {SCRIPT_TIMEOUT:?}"))
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "--- {script} ({:.1} s) ---\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// Issue 2: sign up, create a Space and a Room, visit the main pages; desktop and phone
/// screenshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_the_ui() {
    if !tools_present("browser::pages_through_the_ui") {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let inst = TestInstance::spawn(Backend::Sqlite).await;
    run_script(&inst, "pages.mjs", &[]).await;
    // What the script created through the pages is really there.
    let page = inst
        .browser()
        .get("/spaces/garden-club/rooms/potting-shed")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Potting Shed"));
}

/// The Room and its owner that [`instance_with_open_room`] made, as the room scripts read them,
/// followed by `more`.
fn open_room_env(more: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "CONVENE_ROOM_PATH",
            "/spaces/book-club/rooms/reading".to_owned(),
        ),
        ("CONVENE_OWNER_EMAIL", "olive@example.org".to_owned()),
        ("CONVENE_OWNER_HANDLE", "olive".to_owned()),
    ];
    env.extend_from_slice(more);
    env
}

/// A signed-in owner with an open Room, created over HTTP; the scripts sign in through the UI.
async fn instance_with_open_room() -> TestInstance {
    let inst = TestInstance::spawn(Backend::Sqlite).await;
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
    let page = owner
        .submit(
            "/spaces/book-club/rooms",
            &[
                ("name", "Reading Room"),
                ("slug", "reading"),
                ("topic", "This month's book"),
                ("access", "open"),
                ("access_code", ""),
                ("capacity", "12"),
                ("listed", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    inst
}

/// Issue 3: a signed-in person and a guest meet in an open Room through the UI; each decodes
/// the other's video and receives audio; chat, mute, a dropped connection and leaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_two_people_meet() {
    if !tools_present("browser::room_two_people_meet") {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let inst = instance_with_open_room().await;
    run_script(&inst, "room.mjs", &open_room_env(&[])).await;
    // Everyone left: the SFU holds nobody in the Room any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = inst.browser().get("/spaces/book-club/rooms/reading").await;
        if page.body.contains("Nobody is here yet.") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Room still lists people after everyone left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 3: with camera and microphone blocked, the page says so clearly and the person still
/// joins to watch and listen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_listen_only_when_devices_are_blocked() {
    if !tools_present("browser::room_listen_only_when_devices_are_blocked") {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let inst = instance_with_open_room().await;
    run_script(
        &inst,
        "room-denied.mjs",
        &[(
            "CONVENE_ROOM_PATH",
            "/spaces/book-club/rooms/reading".into(),
        )],
    )
    .await;
}

/// Issue 12: three people join one after another, all publishing simulcast (the room client's
/// default), and each keeps decoding both others' cameras for twelve seconds after the last join.
/// Each join renegotiates the connections of those already there; webrtc-rs 0.21.1 would rebuild
/// their simulcast receivers without the SSRCs the layers were bound to, and Chromium no longer
/// names a layer in its packets once the SFU's receiver reports acknowledged it, so without
/// `core::keep_flowing_receivers` the earlier people's pictures froze after a few packets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_simulcast_publishers_keep_their_pictures_as_others_join() {
    if !tools_present("browser::room_simulcast_publishers_keep_their_pictures_as_others_join") {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let inst = instance_with_open_room().await;
    run_script(&inst, "room-simulcast-publishers.mjs", &open_room_env(&[])).await;
}

/// Issue 12: the owner publishes simulcast through the room client (its default): Chromium
/// sends all three layers, a window of thumbnails decodes the quarter layer and receives fewer
/// video bytes than a large tile, and the layer no tile needs is not encoded.
///
/// Chromium's uplink estimate needs the SFU's transport-wide feedback to report when packets
/// reached the machine rather than when a busy media thread read them; with the latter it stayed
/// near 100-900 kbit/s on this loaded 2-core machine and the full layer was never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_simulcast_follows_tile_sizes() {
    if !tools_present("browser::room_simulcast_follows_tile_sizes") {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let inst = instance_with_open_room().await;
    run_script(&inst, "room-simulcast.mjs", &open_room_env(&[])).await;
    let metrics = inst.browser().get("/metrics").await;
    assert!(
        metrics
            .body
            .contains("# TYPE convene_media_layer_switches_total counter"),
        "{}",
        metrics.body
    );
    // Chromium probes its uplink with copies of packets it sent (155 in one run here); the
    // SFU counts them rather than forwarding them.
    assert!(
        metrics
            .body
            .contains("# TYPE convene_media_duplicate_packets_total counter"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("convene_media_participants_by_quality{level=\"poor\"} "),
        "{}",
        metrics.body
    );
}

/// Issue 12: the owner publishes their camera and shares their screen; the screen goes out in
/// the two layers that suit text (half and full resolution), a desktop watcher decodes it at the
/// screen's full size and a window of thumbnails at less, and its tile leaves both pages when
/// the sharing stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_screen_share_goes_out_in_layers_for_text() {
    if !tools_present("browser::room_screen_share_goes_out_in_layers_for_text") {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let inst = instance_with_open_room().await;
    run_script(&inst, "room-screen-share.mjs", &open_room_env(&[])).await;
}

/// A Room on a phone held sideways: in 740x330 and 640x360 windows the stage keeps most of the
/// height, every control is on screen and over no one's picture, the others' video decodes, the
/// tile sizes reported to the SFU are the sizes shown, and a shared screen keeps at least 60 %
/// of the stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_short_window_gives_the_stage_the_height() {
    if !tools_present("browser::room_short_window_gives_the_stage_the_height") {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let inst = instance_with_open_room().await;
    run_script(&inst, "room-short-window.mjs", &open_room_env(&[])).await;
}

/// Issue 12: four webrtc-rs peers publish video into the Room and the owner joins on a small
/// phone-sized screen: the grid pages, the one peer who speaks (loud audio levels) is kept on
/// the first page, a person on another page sends the browser no video bytes, and turning to
/// their page (with the keyboard) shows them and their video flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_pages_when_more_people_are_present_than_fit() {
    if !tools_present("browser::room_pages_when_more_people_are_present_than_fit") {
        return;
    }
    let _alone = convene_tests::machine_alone().await;
    let inst = instance_with_open_room().await;
    let epoch = Instant::now();
    let mut peers = Vec::new();
    let mut sending = Vec::new();
    // The test client sends loud audio levels as publisher 0 only: the last to join speaks.
    for (n, index) in [1u8, 2, 3, 0].into_iter().enumerate() {
        let name = format!("Peer {}", n + 1);
        let peer = super::media::enter(&inst, &inst.browser(), "reading", index, Some(&name)).await;
        sending.push(convene_media::testing::start_publishing(
            &peer.client,
            15,
            1,
            600,
            epoch,
        ));
        peers.push(peer);
    }
    run_script(
        &inst,
        "room-paging.mjs",
        &open_room_env(&[
            ("CONVENE_PEERS", peers.len().to_string()),
            (
                "CONVENE_SPEAKER",
                peers
                    .last()
                    .map(|p| p.participant.clone())
                    .unwrap_or_default(),
            ),
        ]),
    )
    .await;
    for s in sending {
        s.abort();
    }
    for p in peers {
        p.end().await;
    }
}
