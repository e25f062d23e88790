//! `customs-node`: runs one node of the customs ledger.

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "customs-node", version, about = "Customs ledger node")]
struct Args {
    /// Node config file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override a config key: `--set key=value` (repeatable), e.g. `--set grpc_listen=127.0.0.1:8101`.
    #[arg(long = "set")]
    set: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,openraft=warn,libp2p=warn")
            }),
        )
        .init();
    let args = Args::parse();
    let cfg = node::config::NodeConfig::load(args.config.as_deref(), std::env::vars(), &args.set)?;
    let running = node::start(cfg).await?;
    println!("READY grpc={}", running.grpc_addr);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
