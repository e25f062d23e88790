//! In-process transport for cluster tests: a router that delivers Raft
//! messages between [`ConsensusNode`]s in one process, through the same
//! encode/decode path a real transport uses, with a partition knob and a
//! hold knob (messages wait until released, so tests can make them cross).

use crate::network::{RaftRpc, RaftRpcReply, Transport, TransportError};
use crate::node::ConsensusNode;
use crate::types::{NodeId, PeerNode};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    nodes: BTreeMap<NodeId, ConsensusNode>,
    isolated: BTreeSet<NodeId>,
}

/// Routes messages between registered nodes. Cloning shares the routes.
#[derive(Clone)]
pub struct Router {
    state: Arc<Mutex<State>>,
    /// `true` while messages are held back.
    held: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Router {
    fn default() -> Self {
        Router {
            state: Arc::default(),
            held: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Router")
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// The transport node `id` sends through.
    pub fn transport(&self, id: NodeId) -> Arc<RouterTransport> {
        Arc::new(RouterTransport {
            from: id,
            router: self.clone(),
        })
    }

    /// Make `node` reachable as node `id`.
    pub fn register(&self, id: NodeId, node: ConsensusNode) {
        self.with(|s| s.nodes.insert(id, node));
    }

    /// Make node `id` unreachable (e.g. after shutting it down).
    pub fn remove(&self, id: NodeId) {
        self.with(|s| s.nodes.remove(&id));
    }

    /// Cut node `id` off: nothing it sends or is sent is delivered.
    pub fn isolate(&self, id: NodeId) {
        self.with(|s| s.isolated.insert(id));
    }

    /// Undo [`Router::isolate`].
    pub fn heal(&self, id: NodeId) {
        self.with(|s| s.isolated.remove(&id));
    }

    /// Hold every message sent from now on until [`Router::release`].
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Deliver the held messages and stop holding.
    pub fn release(&self) {
        self.held.send_replace(false);
    }
}

/// One node's view of the [`Router`].
#[derive(Debug)]
pub struct RouterTransport {
    from: NodeId,
    router: Router,
}

impl Transport for RouterTransport {
    async fn send(
        &self,
        target: NodeId,
        _node: &PeerNode,
        rpc: RaftRpc,
    ) -> Result<RaftRpcReply, TransportError> {
        let mut held = self.router.held.subscribe();
        if held.wait_for(|h| !*h).await.is_err() {
            return Err(TransportError::Unreachable("router dropped".into()));
        }
        let node = self.router.with(|s| {
            if s.isolated.contains(&self.from) || s.isolated.contains(&target) {
                return Err(TransportError::Unreachable(format!(
                    "{} -> {target} partitioned",
                    self.from
                )));
            }
            s.nodes
                .get(&target)
                .cloned()
                .ok_or_else(|| TransportError::Unreachable(format!("no node {target}")))
        })?;
        // Through the wire format, as a real transport would.
        let rpc = RaftRpc::decode(&rpc.encode()?)?;
        let reply = node.handle_rpc(rpc).await;
        RaftRpcReply::decode(&reply.encode()?)
    }
}
