//! In-process transport for cluster tests: a router that delivers Raft
//! messages between [`Raft`] instances in one process, through the same
//! encode/decode path a real transport uses, with a partition knob.

use crate::network::{handle_rpc, RaftRpc, RaftRpcReply, Transport, TransportError};
use crate::types::{NodeId, PeerNode, TypeConfig};
use openraft::Raft;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    nodes: BTreeMap<NodeId, Raft<TypeConfig>>,
    isolated: BTreeSet<NodeId>,
}

/// Routes messages between registered nodes. Cloning shares the routes.
#[derive(Clone, Default)]
pub struct Router {
    state: Arc<Mutex<State>>,
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

    /// Make `raft` reachable as node `id`.
    pub fn register(&self, id: NodeId, raft: Raft<TypeConfig>) {
        self.with(|s| s.nodes.insert(id, raft));
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
        let raft = self.router.with(|s| {
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
        let reply = handle_rpc(&raft, rpc).await;
        RaftRpcReply::decode(&reply.encode()?)
    }
}
