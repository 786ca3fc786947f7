//! From "Join" to the first frame: how long a Passport of another instance waits to see the
//! people in a Room, against a person of the Room's own instance.
//!
//! Two instances run in this process on loopback (SQLite each): A, Ada's home, and B, where
//! Bob sits in an open Room publishing video (30 fps) and audio. Each round times, alternately:
//! - **visitor**: Ada confirms "Join" on A (`POST /visit`: A signs a ticket request to B, B
//!   checks it and answers), her browser spends the ticket at B (`GET /enter`, which leads to
//!   the Room's page), asks for a media token, opens the signaling socket, connects media and
//!   receives Bob's first video frame;
//! - **local**: Lou, signed in on B, opens the Room's page, asks for a media token, and the
//!   rest as above.
//!
//! Run: `cargo run --release -p convene-tests --example visit_bench [-- ROUNDS]` (default 30).

use std::time::{Duration, Instant};

use convene_media::signaling::ClientMessage;
use convene_media::testing::{self, Client};
use convene_tests::{Backend, Browser, TestInstance};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const ROOM: &str = "/spaces/bench/rooms/lobby";
const LIMIT: Duration = Duration::from_secs(20);
/// Between entries.
const PAUSE: Duration = Duration::from_secs(1);

#[derive(serde::Deserialize)]
struct Token {
    token: String,
    signal_url: String,
    participant: String,
}

/// Milliseconds of each phase of one entry.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Visitor: `POST /visit` on A until B's entry link; local: nothing.
    ticket: f64,
    /// The Room's page (after `/enter` for the visitor) and the media token.
    page_and_token: f64,
    /// Signaling socket, offer and answer, ICE and DTLS.
    connect: f64,
    /// From connected media to Bob's first video frame.
    first_frame: f64,
    total: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Asks for a media token as the room client does (CSRF from the Room's page).
async fn token(inst: &TestInstance, browser: &Browser, page: &convene_tests::Page) -> Token {
    let csrf = page.csrf().expect("the Room's page carries a CSRF token");
    let response = browser
        .client
        .post(inst.url(&format!("{ROOM}/token")))
        .header("x-csrf-token", csrf)
        .header("accept", "application/json")
        .form(&Vec::<(&str, &str)>::new())
        .send()
        .await
        .expect("token request");
    assert!(
        response.status().is_success(),
        "token: {}",
        response.status()
    );
    response.json().await.expect("token JSON")
}

/// Opens the signaling socket and connects a webrtc-rs peer as publisher `index`.
async fn connect(inst: &TestInstance, token: &Token, index: u8) -> Client {
    let url = format!("ws://{}{}", inst.settings.listen, token.signal_url);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("signaling opens");
    let (mut sink, mut stream) = ws.split();
    let join = serde_json::to_string(&ClientMessage::Join {
        token: token.token.clone(),
    })
    .expect("json");
    sink.send(Message::text(join)).await.expect("join sent");
    let (to_server, mut outgoing) = mpsc::channel::<String>(256);
    let (incoming, from_server) = mpsc::channel::<String>(64);
    tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(text) = frame
                && incoming.send(text.as_str().to_owned()).await.is_err()
            {
                break;
            }
        }
    });
    testing::start(&token.participant, index, true, to_server, from_server)
        .await
        .expect("media connects")
}

/// Waits for the first video packet that `bob` (publisher 0) sent, as received by `client`.
async fn first_video_frame(client: &mut Client, bob: &str) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let received = tokio::time::timeout_at(deadline, client.received.recv())
            .await
            .expect("Bob's video arrives in time")
            .expect("receiver alive");
        if received.stream_id == bob
            && testing::decode(&received.payload)
                .is_some_and(|(sender, kind, _, _)| sender == 0 && kind == 1)
        {
            return;
        }
    }
}

async fn enter_as_visitor(ada: &Browser, b: &TestInstance, bob: &str) -> Entry {
    let room_url = b.url(ROOM);
    let start = Instant::now();
    let confirmed = ada.post("/visit", &[("room", room_url.as_str())]).await;
    let enter = confirmed
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("A sends the browser to B")
        .to_owned();
    let ticket_done = Instant::now();
    let visitor = b.browser();
    let page = visitor
        .get(enter.strip_prefix(&b.url("")).expect("an entry link on B"))
        .await;
    assert_eq!(page.path, ROOM, "the ticket leads to the Room");
    let token = token(b, &visitor, &page).await;
    let token_done = Instant::now();
    let mut client = connect(b, &token, 1).await;
    let connected = Instant::now();
    first_video_frame(&mut client, bob).await;
    let seen = Instant::now();
    client.close().await;
    Entry {
        ticket: ms(ticket_done - start),
        page_and_token: ms(token_done - ticket_done),
        connect: ms(connected - token_done),
        first_frame: ms(seen - connected),
        total: ms(seen - start),
    }
}

async fn enter_as_local(b: &TestInstance, lou: &Browser, bob: &str) -> Entry {
    let start = Instant::now();
    let page = lou.get(ROOM).await;
    let token = token(b, lou, &page).await;
    let token_done = Instant::now();
    let mut client = connect(b, &token, 2).await;
    let connected = Instant::now();
    first_video_frame(&mut client, bob).await;
    let seen = Instant::now();
    client.close().await;
    Entry {
        ticket: 0.0,
        page_and_token: ms(token_done - start),
        connect: ms(connected - token_done),
        first_frame: ms(seen - connected),
        total: ms(seen - start),
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn row(who: &str, entries: &[Entry]) -> String {
    let col = |f: fn(&Entry) -> f64| {
        let values: Vec<f64> = entries.iter().map(f).collect();
        format!(
            "{:.1} / {:.1}",
            percentile(&values, 50.0),
            percentile(&values, 95.0)
        )
    };
    format!(
        "| {who} | {} | {} | {} | {} | {} | {} |",
        entries.len(),
        col(|e| e.ticket),
        col(|e| e.page_and_token),
        col(|e| e.connect),
        col(|e| e.first_frame),
        col(|e| e.total),
    )
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ROUNDS is a number"))
        .unwrap_or(30);
    let loopback = |s: &mut convene::Settings| s.federation_allow_private_addresses = true;
    let b = TestInstance::spawn_with(Backend::Sqlite, loopback).await;
    let a = TestInstance::spawn_with(Backend::Sqlite, loopback).await;
    let owner = b.sign_up("bob@example.org", "bob", "Bob Baker").await;
    let made = owner
        .submit(
            "/spaces",
            &[
                ("name", "Bench"),
                ("slug", "bench"),
                ("description", "Timing entries."),
                ("listed", "true"),
            ],
        )
        .await;
    assert_eq!(made.path, "/spaces/bench", "{}", made.body);
    let made = owner
        .submit(
            "/spaces/bench/rooms",
            &[
                ("name", "Lobby"),
                ("slug", "lobby"),
                ("topic", "Talk"),
                ("access", "open"),
                ("access_code", ""),
                ("capacity", "12"),
                ("listed", "true"),
            ],
        )
        .await;
    assert_eq!(made.path, ROOM, "{}", made.body);
    let lou = b.sign_up("lou@example.org", "lou", "Lou Local").await;
    let ada = a.sign_up("ada@example.org", "ada", "Ada Okafor").await;

    // Bob is inside, publishing.
    let bob_page = owner.get(ROOM).await;
    let bob_token = token(&b, &owner, &bob_page).await;
    let bob = connect(&b, &bob_token, 0).await;
    let publishing = testing::start_publishing(&bob, 30, 1, 1000, Instant::now());

    // One untimed entry of each kind: A fetches B's Room and B fetches Ada's actor once.
    enter_as_visitor(&ada, &b, &bob_token.participant).await;
    enter_as_local(&b, &lou, &bob_token.participant).await;

    let (mut visitors, mut locals) = (Vec::new(), Vec::new());
    // Alternating which goes first, with a pause that lets the Room settle after each leaves.
    for round in 0..rounds {
        for visitor_turn in [round % 2 == 0, round % 2 == 1] {
            if visitor_turn {
                visitors.push(enter_as_visitor(&ada, &b, &bob_token.participant).await);
            } else {
                locals.push(enter_as_local(&b, &lou, &bob_token.participant).await);
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    publishing.abort();
    bob.close().await;

    println!("rounds: {rounds}, p50 / p95 in ms");
    println!(
        "| who | entries | ticket from A | Room page and media token | media connected | first video frame | Join to first frame |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!("{}", row("visitor (@ada@A)", &visitors));
    println!("{}", row("local (Lou on B)", &locals));
    let total =
        |entries: &[Entry], p| percentile(&entries.iter().map(|e| e.total).collect::<Vec<_>>(), p);
    println!(
        "visitor / local, Join to first frame: p50 {:.2}, p95 {:.2}",
        total(&visitors, 50.0) / total(&locals, 50.0),
        total(&visitors, 95.0) / total(&locals, 95.0)
    );
}
