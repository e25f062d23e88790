//! Adapters between the consensus port and libp2p: Raft RPCs and forwarded
//! submissions travel as request-response messages; checkpoint
//! cosignatures as gossip. The libp2p swarm itself lives in `p2p`.

use crate::p2p::{InboundHandler, P2pHandle, PeerId};
use crate::peers::Directory;
use consensus::{NodeId, PeerNode, RaftRpc, RaftRpcReply, Transport, TransportError};
use futures::future::BoxFuture;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// Request kinds on the wire.
pub mod kind {
    /// A Raft RPC (bincode `RaftRpc`).
    pub const RAFT: u8 = 1;
    /// Submissions forwarded to the leader (protobuf `SubmitBatchRequest`
    /// in, `SubmitBatchResponse` out).
    pub const FORWARD: u8 = 2;
}

/// Gossip topic of checkpoint cosignatures.
pub const COSIGN_TOPIC: &str = "customs-ledger/cosign/1";

/// Raft over libp2p: node ids map to peer ids through this node's address
/// book and the committed chain config ([`Directory`]).
#[derive(Debug)]
pub struct P2pTransport {
    p2p: P2pHandle,
    directory: Arc<Directory>,
}

impl P2pTransport {
    /// A transport that reaches the nodes `directory` knows.
    pub fn new(p2p: P2pHandle, directory: Arc<Directory>) -> Self {
        P2pTransport { p2p, directory }
    }
}

impl Transport for P2pTransport {
    fn send(
        &self,
        target: NodeId,
        _node: &PeerNode,
        rpc: RaftRpc,
    ) -> impl std::future::Future<Output = Result<RaftRpcReply, TransportError>> + Send {
        let peer = self.directory.peer_of_node(target);
        let p2p = self.p2p.clone();
        async move {
            let peer = peer.ok_or_else(|| {
                TransportError::Unreachable(format!("no peer id for node {target}"))
            })?;
            let timeout = match rpc {
                RaftRpc::InstallSnapshot(_) => Duration::from_secs(30),
                _ => Duration::from_secs(3),
            };
            let bytes = rpc.encode_bounded()?;
            let reply = p2p
                .request(peer, kind::RAFT, bytes, timeout)
                .await
                .map_err(|e| TransportError::Unreachable(e.to_string()))?;
            RaftRpcReply::decode(&reply)
        }
    }
}

/// What the node does with inbound peer messages.
pub trait PeerService: Send + Sync + 'static {
    /// A Raft RPC (encoded [`RaftRpc`]) from peer `from`, answered with an
    /// encoded [`RaftRpcReply`]; refused (with a reason code) unless the
    /// committed chain config lets `from` send it. A sender that may send no
    /// Raft message at all is refused before its bytes are decoded.
    fn raft(&self, from: PeerId, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>>;
    /// A forwarded submission (protobuf bytes in, protobuf bytes out).
    fn forward(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>>;
    /// A gossip message.
    fn gossip(&self, from: PeerId, topic: &str, data: Vec<u8>);
}

/// Inbound handler that dispatches to a [`PeerService`] set after start
/// (the service needs the transport, the transport needs the handler).
#[derive(Default)]
pub struct Dispatcher {
    service: OnceLock<Weak<dyn PeerService>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dispatcher")
    }
}

impl Dispatcher {
    /// Route messages to `service` from now on.
    pub fn set(&self, service: Weak<dyn PeerService>) {
        let _ = self.service.set(service);
    }

    fn get(&self) -> Option<Arc<dyn PeerService>> {
        self.service.get().and_then(Weak::upgrade)
    }
}

impl InboundHandler for Dispatcher {
    fn handle(
        &self,
        from: PeerId,
        kind: u8,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let Some(svc) = self.get() else {
            return Box::pin(async { Err("node starting".to_string()) });
        };
        match kind {
            kind::RAFT => svc.raft(from, payload),
            kind::FORWARD => svc.forward(from, payload),
            other => {
                tracing::warn!(%from, kind = other, "unknown peer request kind");
                Box::pin(async move { Err(format!("unknown request kind {other}")) })
            }
        }
    }

    fn gossip(&self, from: PeerId, topic: &str, data: Vec<u8>) {
        if let Some(svc) = self.get() {
            svc.gossip(from, topic, data);
        }
    }
}
