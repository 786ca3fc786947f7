//! Job queue and mail rates: how fast jobs are enqueued and drained, on SQLite or PostgreSQL.
//!
//! `cargo run --release -p convene --example outbox_bench -- [N] [DATABASE_URL]`
//! (default 5000 jobs on a fresh SQLite file; give a `postgres://` URL to measure there: the
//! bench creates a fresh database next to the one named and drops it afterwards).
//!
//! It measures, each on its own N jobs:
//! - **enqueue, one per transaction**: `Mailer::enqueue`, as a sign-in code or an invitation
//!   is queued (an INSERT and a commit each);
//! - **enqueue, one transaction**: `Mailer::enqueue_in` N times then one commit, as a ballot
//!   mail-out is queued with the roll it belongs to;
//! - **drain, no-op handler**: the queue's own cost per job (claim with a lease, run, mark
//!   done), with a handler that does nothing;
//! - **drain, mail over SMTP**: the mail handler sending to the SMTP sink below on loopback,
//!   which accepts everything and keeps only a count.
//!
//! Sending is bound by the SMTP exchange, not the CPU: lettre writes a message and its closing
//! `.` line as two small writes on a socket without TCP_NODELAY, so the second waits for the
//! server's delayed ACK (about 40 ms on Linux); the worker keeps several messages in flight
//! over pooled connections to make up for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use convene::config::{ConfigArgs, FileConfig, Settings};
use convene::db::Db;
use convene::jobs::{self, Handler, Job, NewJob, Outcome, Queue, QueueConfig, Worker};
use convene::mail::{Email, Mailer};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An SMTP server that accepts every message and counts them.
async fn sink(received: Arc<AtomicU64>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                let mut line = String::new();
                if write.write_all(b"220 sink\r\n").await.is_err() {
                    return;
                }
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if upper == "DATA" {
                        if write.write_all(b"354 go ahead\r\n").await.is_err() {
                            return;
                        }
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" || line == ".\n" {
                                break;
                            }
                        }
                        received.fetch_add(1, Ordering::Relaxed);
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// A handler that does nothing: what is left is the queue's own cost.
struct Nothing;

impl Handler for Nothing {
    fn kind(&self) -> &'static str {
        "bench"
    }

    fn run<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Outcome::Done })
    }
}

fn rate(what: &str, n: usize, took: Duration) {
    println!(
        "  {what:<34} {:>9.1} ms  {:>9.0} jobs/s",
        took.as_secs_f64() * 1e3,
        n as f64 / took.as_secs_f64()
    );
}

/// A fresh database next to the one `url` names, so runs do not see each other's jobs.
async fn fresh_postgres(url: &str) -> anyhow::Result<(String, String)> {
    sqlx::any::install_default_drivers();
    let name = format!("convene_bench_{}", std::process::id());
    let pool = sqlx::AnyPool::connect(url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let at = url
        .rfind('/')
        .ok_or_else(|| anyhow::anyhow!("the URL names no database"))?;
    Ok((format!("{}/{name}", &url[..at]), name))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let data_dir =
        std::env::temp_dir().join(format!("convene-outbox-bench-{}", std::process::id()));
    let (database_url, created) = match args.get(2) {
        Some(url) if url.starts_with("postgres") => {
            let (url, name) = fresh_postgres(url).await?;
            (url, Some((args[2].clone(), name)))
        }
        Some(url) => (url.clone(), None),
        None => (
            format!("sqlite://{}", data_dir.join("bench.db").display()),
            None,
        ),
    };
    let received = Arc::new(AtomicU64::new(0));
    let port = sink(received.clone()).await?;
    let settings = Settings::resolve(
        &ConfigArgs {
            public_url: Some("http://localhost:8080".into()),
            data_dir: Some(data_dir.clone()),
            database_url: Some(database_url.clone()),
            smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
            ..ConfigArgs::default()
        },
        FileConfig::default(),
    )?;
    let db = Db::connect(&settings.database_url).await?;
    db.migrate().await?;
    let queue = Queue::new(db.clone(), QueueConfig::default());
    let mailer = Mailer::new(&settings, queue.clone())?;
    let backend = if database_url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("job queue on {backend}, {n} jobs per step, SMTP on loopback");

    let body = "Hello,\n\nVoting is open. This is your personal ballot link; it works once.\n\n\
                http://localhost:8080/governance/elections/1/ballot/0123456789abcdef0123456789abcdef\n";
    let started = Instant::now();
    for i in 0..n {
        let to = format!("voter{i}@example.org");
        mailer
            .enqueue(Email {
                to: &to,
                subject: "Your ballot: Resident Representatives",
                body,
                kind: "election:1:ballot",
            })
            .await?;
    }
    rate("enqueue mail, one per transaction", n, started.elapsed());

    let started = Instant::now();
    let mut tx = db.pool.begin().await?;
    for i in 0..n {
        let to = format!("reminded{i}@example.org");
        mailer
            .enqueue_in(
                &mut tx,
                Email {
                    to: &to,
                    subject: "Reminder: vote in Resident Representatives",
                    body,
                    kind: "election:1:reminder",
                },
            )
            .await?;
    }
    queue.commit(tx).await?;
    rate("enqueue mail, one transaction", n, started.elapsed());

    let mut tx = db.pool.begin().await?;
    for i in 0..n {
        let key = format!("bench:{i}");
        jobs::enqueue(
            &mut tx,
            db.now(),
            &NewJob {
                kind: "bench",
                key: &key,
                destination: "nowhere",
                tag: "bench",
                payload: "{}",
                max_attempts: 3,
            },
        )
        .await?;
    }
    tx.commit().await?;
    let started = Instant::now();
    let drained = Worker::new(queue.clone())
        .handle(Arc::new(Nothing))
        .drain()
        .await?;
    rate("drain, no-op handler", drained.done, started.elapsed());
    anyhow::ensure!(
        drained.done == n,
        "drained {} of {n} no-op jobs",
        drained.done
    );

    let started = Instant::now();
    let sent = mailer.drain().await?;
    rate("drain mail over SMTP", sent, started.elapsed());
    db.pool.close().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    if let Some((url, name)) = created {
        let pool = sqlx::AnyPool::connect(&url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    println!(
        "  {sent} mails sent, {} received by the sink",
        received.load(Ordering::Relaxed)
    );
    anyhow::ensure!(sent == 2 * n, "only {sent} of {} messages were sent", 2 * n);
    Ok(())
}
