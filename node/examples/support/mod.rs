//! Shared by the adversary programs in `node/examples/`: a handler that
//! serves nothing and the `--peer <peer id>=<multiaddr>` argument.

use anyhow::{anyhow, Result};
use node::p2p::{BoxFuture, InboundHandler, Multiaddr, PeerId};
use std::path::PathBuf;

/// Who the program is and whom it talks to.
#[derive(clap::Args, Debug)]
pub struct Identity {
    /// libp2p identity: a `<party>.node` key file of a party in the chain config.
    #[arg(long)]
    pub node_key: PathBuf,
    /// A node to reach: `<peer id>=<multiaddr>` (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<String>,
}

/// Serves nothing.
pub struct Mute;

impl InboundHandler for Mute {
    fn handle(
        &self,
        _from: PeerId,
        _kind: u8,
        _payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        Box::pin(async { Err("not serving".to_string()) })
    }
}

/// Parse a `--peer` argument: `<peer id>=<multiaddr>`.
pub fn parse_peer(p: &str) -> Result<(PeerId, Multiaddr)> {
    let (id, addr) = p
        .split_once('=')
        .ok_or_else(|| anyhow!("--peer wants <peer id>=<multiaddr>, got {p}"))?;
    let id: PeerId = id.parse().map_err(|e| anyhow!("peer id {id}: {e}"))?;
    let addr: Multiaddr = addr.parse().map_err(|e| anyhow!("address {addr}: {e}"))?;
    Ok((id, addr))
}
