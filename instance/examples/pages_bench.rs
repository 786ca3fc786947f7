//! Pages under load: the Space page and the Room page of a real instance, next to a bare axum
//! "hello world" on the same machine, measured with `wrk` at 64 connections and at 1,000 (a
//! burst of link previews and visitors after a Space is announced on the fediverse), on SQLite
//! and on PostgreSQL; and the resident memory of an idle instance.
//!
//! Run: `ulimit -n 65536; cargo run --release -p convene --example pages_bench [-- --seconds 10]`
//! Needs `wrk` (Debian package `wrk`). PostgreSQL is measured when `CONVENE_BENCH_POSTGRES_URL`
//! is set (e.g. `postgres://postgres@127.0.0.1:5432/test`); a fresh database is created in it.
//!
//! Each server runs alone while `wrk` drives it, so the numbers compare like with like; the
//! instance serves the Space page to an anonymous visitor, as most of its traffic would be.
//! Rows last longer than several page cache lifetimes (2 s by default), so expiries under load
//! are part of what is measured; the "loads" column counts the Space's reloads during a row.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use convene::app::Instance;
use convene::config::{ConfigArgs, FileConfig, Settings};
use convene::domain::passports::{self, NewPassport};
use convene::domain::rooms::{self, Access, RoomFields};
use convene::domain::spaces::{self, SpaceFields};
use convene::domain::values::{AccessCode, DisplayName, Email, Handle, Slug};

/// Connections of each row: the earlier benchmark's 64, and a burst of 1,000.
const CONNECTIONS: [u32; 2] = [64, 1000];

/// The allocator `convene` itself uses, so the instance here behaves as the binary does (the
/// hello-world server gets it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time of the server's process per request, in microseconds.
    cpu_us: f64,
    /// Socket errors wrk reported (connect, read, write, timeout), summed.
    socket_errors: u64,
    /// Page cache loads of the Space during the run (instance rows only).
    loads: Option<u64>,
}

/// One row of the table.
struct Row {
    name: String,
    connections: u32,
    run: Run,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--idle-instance") {
        return idle_instance(&args[2]);
    }
    let seconds: u64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed (apt-get install wrk)");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new()?;

    let mut rows = Vec::new();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        for connections in CONNECTIONS {
            let run = wrk(&format!("http://{addr}/"), connections, seconds)?;
            rows.push(Row {
                name: "bare axum hello world".into(),
                connections,
                run,
            });
        }
        server.abort();
        anyhow::Ok(())
    })?;

    let mut backends = vec![("SQLite", None)];
    if let Ok(url) = std::env::var("CONVENE_BENCH_POSTGRES_URL") {
        backends.push(("PostgreSQL", Some(url)));
    }
    for (name, pg) in backends {
        let results = runtime.block_on(measure_instance(pg, seconds))?;
        for (page, connections, run) in results {
            rows.push(Row {
                name: format!("{page} ({name})"),
                connections,
                run,
            });
        }
    }
    let idle_mb = idle_rss_mb()?;

    println!(
        "| server / page | connections | requests/s | ratio to hello world | p50 ms | p99 ms | \
         p99 ratio to hello world | server CPU µs/request | socket errors | Space loads |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for connections in CONNECTIONS {
        let Some(base) = rows
            .iter()
            .find(|r| r.connections == connections)
            .map(|r| (r.run.rps, r.run.p99_ms))
        else {
            continue;
        };
        for row in rows.iter().filter(|r| r.connections == connections) {
            let run = &row.run;
            println!(
                "| {} | {connections} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |",
                row.name,
                run.rps,
                run.rps / base.0,
                run.p50_ms,
                run.p99_ms,
                run.p99_ms / base.1,
                run.cpu_us,
                run.socket_errors,
                run.loads.map_or("".to_string(), |n| n.to_string()),
            );
        }
    }
    println!("\nIdle instance resident memory: {idle_mb:.1} MB");
    println!("(2 wrk threads, {seconds} s per row)");
    Ok(())
}

async fn measure_instance(
    postgres: Option<String>,
    seconds: u64,
) -> anyhow::Result<Vec<(String, u32, Run)>> {
    let dir = std::env::temp_dir().join(format!("convene-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let database_url = match postgres {
        Some(base) => fresh_postgres(&base).await?,
        None => format!("sqlite://{}/convene.db", dir.display()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let args = ConfigArgs {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        data_dir: Some(dir.clone()),
        database_url: Some(database_url),
        ..ConfigArgs::default()
    };
    let mut settings = Settings::resolve(&args, FileConfig::default())?;
    settings.media_udp_ports = (0, 0);
    let instance = Instance::start_on(settings, listener).await?;
    seed(&instance).await?;
    let base = format!("http://127.0.0.1:{port}");
    let mut results = Vec::new();
    for connections in CONNECTIONS {
        for (page, path) in [
            ("Space page", "/spaces/commons"),
            ("Room page", "/spaces/commons/rooms/lobby"),
        ] {
            let stats = instance.state.pages.stats();
            let before = stats.loads.load(Ordering::Relaxed);
            let mut run = wrk(&format!("{base}{path}"), connections, seconds)?;
            run.loads = Some(stats.loads.load(Ordering::Relaxed) - before);
            results.push((page.to_string(), connections, run));
        }
    }
    instance.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(results)
}

/// A Space with a dozen Rooms of every kind, as a small community would have.
async fn seed(instance: &Instance) -> anyhow::Result<()> {
    let db = &instance.state.db;
    let err = |e: convene::error::AppError| anyhow::anyhow!("{e:?}");
    let owner = passports::create(
        db,
        NewPassport {
            email: Email::parse("owner@example.org").map_err(|e| anyhow::anyhow!(e.0))?,
            handle: Handle::parse("owner").map_err(|e| anyhow::anyhow!(e.0))?,
            display_name: DisplayName::parse("Owner").map_err(|e| anyhow::anyhow!(e.0))?,
            operator: true,
        },
    )
    .await
    .map_err(err)?;
    let space = spaces::create(
        db,
        &owner,
        &Slug::parse("commons").map_err(|e| anyhow::anyhow!(e.0))?,
        &SpaceFields {
            name: DisplayName::parse("The Commons").map_err(|e| anyhow::anyhow!(e.0))?,
            description: "Where the neighbourhood meets.".into(),
            listed: true,
        },
    )
    .await
    .map_err(err)?;
    for i in 0..12 {
        let (slug, access, code) = match i {
            0 => ("lobby".to_string(), Access::Open, None),
            i if i % 3 == 0 => (format!("room-{i}"), Access::Members, None),
            i if i % 3 == 1 => (
                format!("room-{i}"),
                Access::Locked,
                Some(AccessCode::parse("secret code").map_err(|e| anyhow::anyhow!(e.0))?),
            ),
            i => (format!("room-{i}"), Access::Open, None),
        };
        let mut conn = db.pool.acquire().await?;
        rooms::create(
            &mut conn,
            db.now(),
            &space,
            &Slug::parse(&slug).map_err(|e| anyhow::anyhow!(e.0))?,
            &RoomFields {
                name: DisplayName::parse(&format!("Room {i}")).map_err(|e| anyhow::anyhow!(e.0))?,
                topic: "A place to talk".into(),
                access,
                access_code: code,
                listed: true,
                capacity: 12,
            },
        )
        .await
        .map_err(err)?;
    }
    Ok(())
}

async fn fresh_postgres(base: &str) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let name = format!("convene_bench_{}", std::process::id());
    let pool = sqlx::AnyPool::connect(base).await?;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&pool)
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let mut url = url::Url::parse(base)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Runs wrk against `url` and reads requests/s and latency percentiles from its report.
fn wrk(url: &str, connections: u32, seconds: u64) -> anyhow::Result<Run> {
    let cpu_before = process_cpu_seconds()?;
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .context("running wrk")?;
    let cpu = process_cpu_seconds()? - cpu_before;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.contains("Non-2xx") {
        bail!("wrk failed or saw errors for {url}:\n{text}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in:\n{text}"))?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(p)
                    .map(|v| parse_duration_ms(v.trim()))
            })
            .flatten()
            .with_context(|| format!("no {p} latency in:\n{text}"))
    };
    // "Socket errors: connect 0, read 0, write 0, timeout 0", only when there were some.
    let socket_errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |v| {
            v.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        });
    // "123456 requests in 10.00s, 1.2GB read"
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .with_context(|| format!("no request count in:\n{text}"))?;
    Ok(Run {
        rps,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        cpu_us: cpu * 1e6 / requests.max(1.0),
        socket_errors,
        loads: None,
    })
}

/// CPU time this process (the server under test, not wrk) has used: user + system, from
/// `/proc/self/stat`, in seconds. Under CPU contention from other programs, the time per
/// request stays comparable where requests/s and latency do not.
fn process_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the parenthesised command name; utime and stime are the 14th and 15th
    // of the whole line, in clock ticks (100 per second on Linux).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("/proc/self/stat is short")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn parse_duration_ms(v: &str) -> Option<f64> {
    let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => return None,
    })
}

/// Starts this program as an idle instance in a child process and reads its resident memory
/// after it has settled.
fn idle_rss_mb() -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("convene-idle-{}", std::process::id()));
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--idle-instance", &dir.display().to_string()])
        .spawn()?;
    std::thread::sleep(Duration::from_secs(5));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS in /proc status")?;
    Ok(kb / 1024.0)
}

/// The child: an instance with default settings (SQLite) on a free port, doing nothing.
fn idle_instance(dir: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let args = ConfigArgs {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: Some(dir.into()),
            ..ConfigArgs::default()
        };
        let settings = Settings::resolve(&args, FileConfig::default())?;
        let instance = Instance::start(settings).await?;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        instance.shutdown().await
    })
}
