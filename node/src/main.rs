//! `customs-node`: runs one node of the customs ledger.

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;

// mimalloc instead of glibc malloc: the node allocates and frees many
// short-lived buffers per transaction (decoding, sealing, encoding), and
// glibc malloc showed as a top cost under load (ADR 0008; `no_thp`
// keeps resident memory within budget).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "customs-node", version, about = "Customs ledger node")]
struct Args {
    /// Node config file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override a config key: `--set key=value` (repeatable), e.g. `--set grpc_listen=127.0.0.1:8101`.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Move this node's stores aside (into data_dir/quarantine/) and rebuild
    /// it from its peers, keeping its identity and Raft vote. For a node that
    /// refused to start with STORE_CORRUPT; repair one voter at a time.
    #[arg(long)]
    repair: bool,
    /// Remove the content-divergence record this node keeps (after an
    /// operator has investigated it), so it cosigns checkpoints again.
    #[arg(long)]
    clear_divergence: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,openraft=warn,libp2p=warn")
            }),
        )
        // Logs on stderr; stdout carries only the READY line for supervisors.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let cfg = node::config::NodeConfig::load(args.config.as_deref(), std::env::vars(), &args.set)?;
    if args.repair {
        node::repair(&cfg)?;
    }
    if args.clear_divergence {
        match node::clear_divergence(&cfg)? {
            Some(d) => eprintln!(
                "cleared the divergence at block {} (tx {}, leader {})",
                d.height, d.tx_id, d.leader
            ),
            None => eprintln!("no divergence recorded"),
        }
    }
    let running = node::start(cfg).await?;
    println!("READY grpc={}", running.grpc_addr);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // A node whose Raft core stopped on a fatal error serves nothing useful:
    // exit non-zero so a supervisor restarts it from its durable state.
    let mut metrics = running.core.consensus.metrics();
    let fatal = async move {
        loop {
            if let Err(e) = &metrics.borrow().running_state {
                return e.to_string();
            }
            if metrics.changed().await.is_err() {
                return "Raft stopped".to_string();
            }
        }
    };
    let failed = tokio::select! {
        _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); None }
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupt: shutting down"); None }
        why = fatal => { tracing::error!("Raft failed: {why}; exiting"); Some(why) }
    };
    running.shutdown().await;
    tracing::info!("stopped");
    if let Some(why) = failed {
        anyhow::bail!("Raft failed: {why}");
    }
    Ok(())
}
