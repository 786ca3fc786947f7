//! Email outbox delivery rate: queues N election notices (one row per recipient, as a ballot
//! mail-out does) and times how fast the outbox worker's `drain` hands them to an SMTP server on
//! loopback.
//!
//! `cargo run --release -p convene --example outbox_bench -- [N] [DATABASE_URL]`
//! (default 5000 messages on a fresh SQLite file; give a `postgres://` URL to measure there).
//!
//! The SMTP sink below accepts everything and keeps only a count, so the number measures the
//! instance's side: claiming rows, building messages, the SMTP dialogue over a pooled
//! connection and marking rows sent.
//!
//! Measured on a 2-core machine: queuing 8,100 messages/s on SQLite and 2,200/s on PostgreSQL;
//! sending about 22 messages/s on either. Sending is bound by the network, not the CPU (under
//! 1 s of CPU for 1,000 messages): lettre writes the message and its closing `.` line as two
//! small flushed writes on a socket without TCP_NODELAY, so the second waits for the server's
//! delayed ACK (about 40 ms on Linux) on every message. Sending over several connections at
//! once, or a transport with TCP_NODELAY, is what would raise the rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use convene::config::{ConfigArgs, FileConfig, Settings};
use convene::db::Db;
use convene::jobs::{Queue, QueueConfig};
use convene::mail::{Email, Mailer};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let data_dir =
        std::env::temp_dir().join(format!("convene-outbox-bench-{}", std::process::id()));
    let database_url = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("bench.db").display()));
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
    let mailer = Mailer::new(&settings, queue)?;

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
    let queued = started.elapsed();
    let started = Instant::now();
    let sent = mailer.drain().await?;
    let delivered = started.elapsed();
    db.pool.close().await;
    let _ = std::fs::remove_dir_all(&data_dir);

    let backend = if database_url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("outbox on {backend}, {n} messages, SMTP on loopback");
    println!(
        "  queue: {:>8.1} ms  ({:>8.0} messages/s)",
        queued.as_secs_f64() * 1e3,
        n as f64 / queued.as_secs_f64()
    );
    println!(
        "  send:  {:>8.1} ms  ({:>8.0} messages/s), {sent} sent, {} received by the sink",
        delivered.as_secs_f64() * 1e3,
        sent as f64 / delivered.as_secs_f64(),
        received.load(Ordering::Relaxed)
    );
    anyhow::ensure!(sent == n, "only {sent} of {n} messages were sent");
    Ok(())
}
