//! A gathering's holder dies (issue 11): two real `convene serve` processes share one
//! PostgreSQL database; two guests meet in a Room on the process holding its gathering, one
//! having entered through each process; the holder is killed with SIGKILL, its claim runs out,
//! and the two meet again on the other process.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use convene_media::signaling::ClientMessage;
use convene_media::testing::{self, Client, Tally};
use futures_util::{SinkExt, StreamExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use support::{fresh_postgres, postgres_url, temp_dir};

const LIMIT: Duration = Duration::from_secs(20);
/// How long a claim lasts unless renewed: short, so the test does not wait long for it.
const LEASE_SECONDS: u64 = 3;

/// A port nobody listens on right now (the process binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One instance: its data directory, database and public URL, shared by its processes.
struct Setup {
    data: PathBuf,
    database_url: String,
    public_url: String,
}

impl Setup {
    fn command(&self, port: u16) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_convene"));
        c.env("CONVENE_DATA_DIR", &self.data)
            .env("CONVENE_DATABASE_URL", &self.database_url)
            .env("CONVENE_PUBLIC_URL", &self.public_url)
            .env("CONVENE_LISTEN", format!("127.0.0.1:{port}"))
            .env("CONVENE_NODE_URL", format!("http://127.0.0.1:{port}"))
            .env("CONVENE_GATHERING_LEASE_SECONDS", LEASE_SECONDS.to_string())
            .env("CONVENE_MEDIA_BIND_IP", "127.0.0.1")
            .env("CONVENE_MEDIA_PUBLIC_IP", "127.0.0.1")
            .env("CONVENE_MEDIA_UDP_PORT_MIN", "0")
            .env("CONVENE_MEDIA_UDP_PORT_MAX", "0")
            .env("CONVENE_MEDIA_THREADS", "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if let Ok(file) = std::fs::File::create(self.data.join(format!("serve-{port}.log"))) {
            c.stderr(file);
        }
        c
    }

    async fn admin(&self, args: &[&str]) {
        let out = self
            .command(0)
            .arg("admin")
            .args(args)
            .stderr(Stdio::piped())
            .output()
            .await
            .expect("run convene admin");
        assert!(
            out.status.success(),
            "convene admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `convene serve` on `port` and waits until it answers.
    async fn serve(&self, port: u16) -> Child {
        let child = self
            .command(port)
            .arg("serve")
            .spawn()
            .expect("start serve");
        let deadline = Instant::now() + LIMIT;
        let url = format!("http://127.0.0.1:{port}/");
        while reqwest::get(&url).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "convene serve on {port} did not answer: {}",
                self.log(port)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        child
    }

    fn log(&self, port: u16) -> String {
        std::fs::read_to_string(self.data.join(format!("serve-{port}.log"))).unwrap_or_default()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A guest browser: a cookie jar on one process.
struct Guest {
    http: reqwest::Client,
    port: u16,
    name: &'static str,
}

impl Guest {
    fn new(port: u16, name: &'static str) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("http client");
        Self { http, port, name }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Enters the Room as the room client does: the page (for its CSRF token), a media token,
    /// the signaling socket, and a webrtc-rs peer publishing as `index`.
    async fn enter(&self, index: u8) -> (Client, String) {
        let room = "/spaces/garden/rooms/shed";
        let page = self
            .http
            .get(self.url(room))
            .send()
            .await
            .expect("room page")
            .text()
            .await
            .expect("page body");
        let csrf = page
            .split_once("name=\"csrf\"")
            .and_then(|(_, rest)| rest.split_once("value=\""))
            .and_then(|(_, rest)| rest.split('"').next())
            .unwrap_or_else(|| panic!("a CSRF token on the Room page: {page}"))
            .to_owned();
        let response = self
            .http
            .post(self.url(&format!("{room}/token")))
            .header("x-csrf-token", csrf)
            .header("accept", "application/json")
            .form(&[("guest_name", self.name)])
            .send()
            .await
            .expect("token request");
        let status = response.status();
        let body = response.text().await.expect("token body");
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        let ticket: serde_json::Value = serde_json::from_str(&body).expect("ticket json");
        let (signal_url, token, participant) = (
            ticket["signal_url"].as_str().expect("signal_url"),
            ticket["token"].as_str().expect("token"),
            ticket["participant"]
                .as_str()
                .expect("participant")
                .to_owned(),
        );
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}{signal_url}", self.port))
                .await
                .expect("signaling socket");
        let (mut sink, mut stream) = ws.split();
        let join = serde_json::to_string(&ClientMessage::Join {
            token: token.to_owned(),
        })
        .expect("join json");
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
        let client = testing::start(&participant, index, true, to_server, from_server)
            .await
            .unwrap_or_else(|why| panic!("{} did not get in: {why}", self.name));
        (client, participant)
    }
}

/// Both publish and each receives 30 packets in a row of the other's media.
async fn meet(first: &mut (Client, String), second: &mut (Client, String)) {
    let epoch = Instant::now();
    let publishing = [
        testing::start_publishing(&first.0, 30, 1, 1000, epoch),
        testing::start_publishing(&second.0, 30, 1, 1000, epoch),
    ];
    let ids = [first.1.clone(), second.1.clone()];
    testing::receive_from(&mut first.0, &ids, &[1], 30, &mut Tally::default(), LIMIT).await;
    testing::receive_from(&mut second.0, &ids, &[0], 30, &mut Tally::default(), LIMIT).await;
    for p in publishing {
        p.abort();
    }
}

/// The node URL holding the Room's gathering, from the database.
async fn holder(database_url: &str) -> Option<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url)
        .await
        .expect("connect to the test database");
    let row: Option<(String,)> = sqlx::query_as("SELECT node_url FROM gathering_nodes")
        .fetch_optional(&pool)
        .await
        .expect("read the claim");
    pool.close().await;
    row.map(|(url,)| url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_holder_is_killed_the_gathering_moves_to_the_other_process() {
    let Some(base) = postgres_url("gathering handover after kill -9") else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (port_a, port_b) = (free_port(), free_port());
    let setup = Setup {
        data: temp_dir("handover"),
        database_url: fresh_postgres(&base).await,
        public_url: format!("http://127.0.0.1:{port_a}"),
    };
    std::fs::create_dir_all(&setup.data).expect("data dir");
    setup
        .admin(&[
            "passport",
            "create",
            "--email",
            "olive@example.org",
            "--handle",
            "olive",
        ])
        .await;
    setup
        .admin(&[
            "space", "create", "--owner", "olive", "--slug", "garden", "--name", "Garden",
        ])
        .await;
    setup
        .admin(&[
            "room", "create", "--space", "garden", "--slug", "shed", "--name", "Shed",
        ])
        .await;
    let mut a = setup.serve(port_a).await;
    let b = setup.serve(port_b).await;

    // Ada enters through A, which claims the gathering; Bob enters through B, which passes
    // his signaling on to A: they meet on A's SFU.
    let ada = Guest::new(port_a, "Ada");
    let bob = Guest::new(port_b, "Bob");
    let mut ada_peer = ada.enter(0).await;
    let mut bob_peer = bob.enter(1).await;
    let node_a = format!("http://127.0.0.1:{port_a}");
    assert_eq!(holder(&setup.database_url).await.as_deref(), Some(&*node_a));
    meet(&mut ada_peer, &mut bob_peer).await;

    // A dies without a word: no shutdown, no release of its claim.
    a.start_kill().expect("kill -9");
    a.wait().await.expect("A is gone");
    ada_peer.0.close().await;
    bob_peer.0.close().await;
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 1)).await;

    // Once A's claim ran out, the next join through B claims the gathering there.
    let ada = Guest::new(port_b, "Ada");
    let mut ada_peer = ada.enter(0).await;
    let mut bob_peer = bob.enter(1).await;
    let node_b = format!("http://127.0.0.1:{port_b}");
    assert_eq!(
        holder(&setup.database_url).await.as_deref(),
        Some(&*node_b),
        "{}",
        setup.log(port_b)
    );
    meet(&mut ada_peer, &mut bob_peer).await;
    ada_peer.0.close().await;
    bob_peer.0.close().await;
    drop(b);
}
