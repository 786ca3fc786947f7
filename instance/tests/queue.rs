//! The job queue across real `convene` processes (issue 7): a `kill -9` in the middle of a
//! mail-out loses nothing and repeats a message only under its own Message-ID; two processes on
//! one PostgreSQL database send each message once; dead mail is listed by
//! `convene admin queue --json`.
//!
//! The SMTP server here is the test's own: it records every message it accepts with its
//! Message-ID, and can be slowed down (so a kill lands while messages are in flight) or made
//! to refuse everything for good.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use support::{fresh_postgres, postgres_url, temp_dir};

/// One accepted message: (Message-ID, subject, body).
type Received = (String, String, String);

#[derive(Clone, Default)]
struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
    /// Pause after a message's final `.` before answering 250: the message is in the sink's
    /// hands while the instance still waits to hear so, which is where a kill hurts most.
    delay: Duration,
    reject: Arc<AtomicBool>,
}

impl Sink {
    fn all(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    async fn start(delay: Duration) -> (u16, Self) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("addr").port();
        let sink = Self {
            delay,
            ..Self::default()
        };
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(socket).await;
                });
            }
        });
        (port, sink)
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        socket.set_nodelay(true)?;
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 sink\r\n").await?;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let upper = line.trim_end().to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
            } else if upper == "DATA" {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(&line);
                }
                if self.reject.load(Ordering::SeqCst) {
                    write.write_all(b"550 nobody here by that name\r\n").await?;
                    continue;
                }
                if let Ok(mut r) = self.received.lock() {
                    r.push(parse(&data));
                }
                tokio::time::sleep(self.delay).await;
                write.write_all(b"250 queued\r\n").await?;
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                write.write_all(b"250 ok\r\n").await?;
            }
        }
    }
}

fn parse(data: &str) -> Received {
    let data = data.replace("\r\n", "\n");
    let (head, body) = data.split_once("\n\n").unwrap_or((&data, ""));
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    (header("Message-ID"), header("Subject"), body.to_string())
}

/// One instance's configuration, shared by its processes.
struct Setup {
    data: PathBuf,
    database_url: String,
    smtp_port: u16,
}

impl Setup {
    fn sqlite(name: &str, smtp_port: u16) -> Self {
        let data = temp_dir(name);
        Self {
            database_url: format!("sqlite://{}", data.join("convene.db").display()),
            data,
            smtp_port,
        }
    }

    fn command(&self, args: &[&str], log: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_convene"));
        c.args(args)
            .env("CONVENE_DATA_DIR", &self.data)
            .env("CONVENE_DATABASE_URL", &self.database_url)
            .env("CONVENE_PUBLIC_URL", "https://convene.example.org")
            .env("CONVENE_LISTEN", "127.0.0.1:0")
            .env(
                "CONVENE_SMTP_URL",
                format!("smtp://127.0.0.1:{}", self.smtp_port),
            )
            // A crashed process's jobs come back after this long.
            .env("CONVENE_QUEUE_LEASE_SECONDS", "4")
            .env("CONVENE_MEDIA_UDP_PORT_MIN", "0")
            .env("CONVENE_MEDIA_UDP_PORT_MAX", "0")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Ok(file) = std::fs::File::create(self.data.join(log)) {
            c.stderr(file);
        }
        c
    }

    async fn run(&self, args: &[&str]) -> String {
        std::fs::create_dir_all(&self.data).expect("data dir");
        let out = self
            .command(args, "admin.log")
            .stderr(Stdio::piped())
            .output()
            .await
            .expect("run convene");
        assert!(
            out.status.success(),
            "convene {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn queue(&self) -> Value {
        let out = self.run(&["admin", "queue", "--json"]).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn serve(&self, log: &str) -> Child {
        std::fs::create_dir_all(&self.data).expect("data dir");
        self.command(&["serve"], log)
            .stdout(Stdio::null())
            .spawn()
            .expect("start convene serve")
    }

    /// Waits until `convene admin queue --json` shows `want` mail jobs done.
    async fn wait_done(&self, want: i64, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let q = self.queue().await;
            if mail(&q, "done") >= want {
                return q;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {want} mail jobs done: {q}",
                mail(&q, "done")
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The count of mail jobs in `state` in `convene admin queue --json` output.
fn mail(q: &Value, state: &str) -> i64 {
    q["kinds"]
        .as_array()
        .and_then(|kinds| kinds.iter().find(|k| k["kind"] == "mail"))
        .and_then(|k| k[state].as_i64())
        .unwrap_or(0)
}

/// Checks what the sink received against `count` test messages: every one arrived, and no
/// Message-ID stands for two different messages. Returns how many repeats of a Message-ID
/// arrived (the repeats a destination deduplicates).
fn check_delivery(received: &[Received], count: usize) -> usize {
    let mut by_id: HashMap<&str, &Received> = HashMap::new();
    let mut repeats = 0;
    for r in received {
        assert!(
            r.0.starts_with('<') && r.0.ends_with('>'),
            "a Message-ID: {r:?}"
        );
        match by_id.get(r.0.as_str()) {
            Some(first) => {
                assert_eq!(
                    (&first.1, &first.2),
                    (&r.1, &r.2),
                    "Message-ID {} names two different messages",
                    r.0
                );
                repeats += 1;
            }
            None => {
                by_id.insert(&r.0, r);
            }
        }
    }
    assert_eq!(
        by_id.len(),
        count,
        "every message arrived under its own Message-ID"
    );
    let mut subjects: Vec<&str> = by_id.values().map(|r| r.1.as_str()).collect();
    subjects.sort_unstable();
    subjects.dedup();
    assert_eq!(subjects.len(), count, "each message is a different one");
    repeats
}

fn log_of(data: &Path, name: &str) -> String {
    std::fs::read_to_string(data.join(name)).unwrap_or_default()
}

/// Kills a serving process mid-mail-out with SIGKILL, starts another on the same database,
/// and checks that every message arrives and repeats only under its own Message-ID.
async fn kill_9_mid_delivery(setup: &Setup, sink: &Sink, count: usize) {
    let out = setup
        .run(&[
            "admin",
            "mail",
            "test",
            "--to",
            "crowd@example.org",
            "--count",
            &count.to_string(),
        ])
        .await;
    assert!(out.contains(&format!("Queued {count}")), "{out}");
    let mut first = setup.serve("serve-1.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sink.all().len() < count / 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first process sent too little: {}",
            log_of(&setup.data, "serve-1.log")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.start_kill().expect("kill -9");
    first.wait().await.expect("reap");
    let at_kill = sink.all().len();
    let q = setup.queue().await;
    let done_at_kill = mail(&q, "done");
    assert!(
        usize::try_from(done_at_kill).unwrap_or(0) < count,
        "the kill landed mid-drain: {q}"
    );
    let mut second = setup.serve("serve-2.log");
    let q = setup
        .wait_done(i64::try_from(count).unwrap_or(0), Duration::from_secs(60))
        .await;
    second.start_kill().expect("stop");
    second.wait().await.expect("reap");
    assert_eq!(mail(&q, "dead"), 0, "{q}");
    let received = sink.all();
    let repeats = check_delivery(&received, count);
    eprintln!(
        "kill -9 after {at_kill} messages received ({done_at_kill} marked sent): {} received in all \
         for {count} messages, {repeats} repeated under the same Message-ID",
        received.len()
    );
    // Only messages in flight at the kill may come twice: at most one batch.
    assert!(
        repeats <= 8,
        "{repeats} repeats; first process: {}\nsecond process: {}",
        log_of(&setup.data, "serve-1.log"),
        log_of(&setup.data, "serve-2.log")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_no_mail_and_repeats_only_under_the_same_message_id_sqlite() {
    let (port, sink) = Sink::start(Duration::from_millis(15)).await;
    let setup = Setup::sqlite("kill9", port);
    kill_9_mid_delivery(&setup, &sink, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_no_mail_and_repeats_only_under_the_same_message_id_postgres() {
    let Some(base) = postgres_url("kill_9_mid_delivery (PostgreSQL)") else {
        return;
    };
    let (port, sink) = Sink::start(Duration::from_millis(15)).await;
    let mut setup = Setup::sqlite("kill9-pg", port);
    setup.database_url = fresh_postgres(&base).await;
    kill_9_mid_delivery(&setup, &sink, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_database_send_each_message_once() {
    let Some(base) = postgres_url("two_processes_on_one_postgres_database") else {
        return;
    };
    let (port, sink) = Sink::start(Duration::from_millis(5)).await;
    let mut setup = Setup::sqlite("two-procs", port);
    setup.database_url = fresh_postgres(&base).await;
    let count = 400;
    setup.run(&["migrate"]).await;
    let mut a = setup.serve("serve-a.log");
    let mut b = setup.serve("serve-b.log");
    // Both are idle and polling; the mail-out arrives from a third process.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    setup
        .run(&[
            "admin",
            "mail",
            "test",
            "--to",
            "crowd@example.org",
            "--count",
            &count.to_string(),
        ])
        .await;
    let q = setup.wait_done(count, Duration::from_secs(90)).await;
    a.start_kill().expect("stop a");
    b.start_kill().expect("stop b");
    a.wait().await.expect("reap a");
    b.wait().await.expect("reap b");
    let received = sink.all();
    let repeats = check_delivery(&received, usize::try_from(count).unwrap_or(0));
    assert_eq!(repeats, 0, "no message was sent twice");
    assert_eq!(received.len(), usize::try_from(count).unwrap_or(0));
    assert_eq!(mail(&q, "dead"), 0, "{q}");
    eprintln!(
        "two processes sent {} messages, {repeats} twice",
        received.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_queue_json_lists_dead_mail_and_retry_revives_it() {
    let (port, sink) = Sink::start(Duration::ZERO).await;
    sink.reject.store(true, Ordering::SeqCst);
    let setup = Setup::sqlite("dead", port);
    setup
        .run(&["admin", "mail", "test", "--to", "nobody@example.org"])
        .await;
    let mut serve = setup.serve("serve.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let q = loop {
        let q = setup.queue().await;
        if mail(&q, "dead") == 1 {
            break q;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead job: {q}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let dead = &q["dead"][0];
    assert_eq!(dead["kind"], "mail");
    assert_eq!(dead["tag"], "test");
    assert_eq!(dead["destination"], format!("smtp://127.0.0.1:{port}"));
    assert_eq!(dead["retryable"], true);
    assert!(
        dead["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("550") && e.contains("nobody here by that name")),
        "{dead}"
    );
    let text = setup.run(&["admin", "queue"]).await;
    assert!(
        text.contains("Dead jobs (1)") && text.contains("550"),
        "{text}"
    );
    let id = dead["id"].as_i64().expect("an id").to_string();

    sink.reject.store(false, Ordering::SeqCst);
    let out = setup.run(&["admin", "queue", "retry", &id]).await;
    assert!(out.contains("tried again"), "{out}");
    // The running process finds it within its poll interval.
    let q = setup.wait_done(1, Duration::from_secs(20)).await;
    assert_eq!(mail(&q, "dead"), 0, "{q}");
    assert_eq!(sink.all().len(), 1);
    // A job that is not dead cannot be retried.
    let out = setup
        .command(&["admin", "queue", "retry", &id], "admin.log")
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    serve.start_kill().expect("stop");
    serve.wait().await.expect("reap");
}
