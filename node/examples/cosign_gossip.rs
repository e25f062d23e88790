//! Equivocation drill: publish a cosignature message on the cosign gossip
//! topic as one node identity, and do nothing else. The message is taken
//! as given (JSON of `node::cosign::CosignMessage`), so it can carry a
//! checkpoint signed for a block the network never committed; honest nodes
//! must refuse it, never cosign it, keep it as evidence and count it
//! (`customs_equivocations_total`). `cli/tests/equivocation.rs` runs it.
//!
//! ```sh
//! cargo run --example cosign_gossip -- --node-key net/keys/broker.node \
//!     --peer 12D3KooW...=/ip4/127.0.0.1/tcp/9101 --message forged.json
//! ```
//!
//! It republishes every `--every-ms` (each publish is a new gossip message;
//! receivers keep one evidence record per statement) until `--for-s`
//! seconds have passed or it is killed.

use anyhow::{anyhow, Context, Result};

#[path = "support/mod.rs"]
mod support;
use clap::Parser;
use node::cosign::CosignMessage;
use node::p2p::{self, P2p, P2pConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{parse_peer, Mute};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    id: support::Identity,
    /// The message to publish (JSON).
    #[arg(long)]
    message: PathBuf,
    /// Republish interval.
    #[arg(long, default_value_t = 500)]
    every_ms: u64,
    /// Stop after this long.
    #[arg(long, default_value_t = 120)]
    for_s: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let msg: CosignMessage = serde_json::from_str(
        &std::fs::read_to_string(&args.message)
            .with_context(|| format!("cannot read {}", args.message.display()))?,
    )
    .context("not a cosignature message")?;
    let bytes = ledger::codec::encode(&msg)?;
    let seed = node::keys::read_secret(&args.id.node_key)?;
    let mut cfg = P2pConfig::new(p2p::keypair_from_seed(seed), Arc::new(Mute));
    cfg.listen_addrs = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.topics = vec![node::transport::COSIGN_TOPIC.to_string()];
    for p in &args.id.peers {
        let (id, addr) = parse_peer(p)?;
        cfg.allowlist.insert(id);
        cfg.known_peers.push((id, addr));
    }
    let (handle, _task) = P2p::spawn(cfg).await.map_err(|e| anyhow!("p2p: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(args.for_s);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        let subscribed = handle
            .gossip_peers(node::transport::COSIGN_TOPIC)
            .await
            .unwrap_or_default();
        if !subscribed.is_empty() {
            match handle
                .publish(node::transport::COSIGN_TOPIC, bytes.clone())
                .await
            {
                Ok(()) => {
                    sent += 1;
                    println!(
                        "published cosignature of {} at height {} to {} peers ({sent})",
                        msg.cosignature.party,
                        msg.checkpoint.height,
                        subscribed.len()
                    );
                }
                Err(e) => eprintln!("publish: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(args.every_ms)).await;
    }
    let _ = handle.shutdown().await;
    Ok(())
}
