//! `convene`: serve an instance, migrate its database, administer it, recount elections.

use clap::Parser;
use convene::app::Instance;
use convene::cli::{Cli, Command};
use convene::config::Settings;
use tracing_subscriber::EnvFilter;

/// A request allocates and frees many small buffers on both worker threads; mimalloc's
/// thread-local free lists serve that pattern faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(Settings::load(&cli.config)?).await,
        Command::Migrate => {
            let settings = Settings::load(&cli.config)?;
            let db = convene::db::Db::connect(&settings.database_url).await?;
            db.migrate().await?;
            println!("Database is up to date.");
            Ok(())
        }
        Command::Admin { json, command } => convene::cli::admin(&cli.config, json, command).await,
        Command::Tally {
            method,
            seats,
            seed,
            json,
            file,
        } => convene::cli::tally(&method, seats, seed, json, &file),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let public = settings.public_url.clone();
    let instance = Instance::start(settings).await?;
    eprintln!(
        "Convene is serving {public} (listening on {})",
        instance.addr
    );
    let mut stop = std::pin::pin!(shutdown_signal());
    let mut instance = instance;
    tokio::select! {
        () = &mut stop => {
            tracing::info!("shutting down");
            instance.shutdown().await
        }
        result = instance.wait() => result,
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "listening for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "listening for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
