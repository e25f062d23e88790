//! The transport port and the openraft network adapter over it.
//!
//! [`Transport`] is what the node crate implements (over libp2p): deliver a
//! [`RaftRpc`] to a peer and return its [`RaftRpcReply`]. On the receiving
//! side the node decodes the message and calls [`handle_rpc`]. Snapshots
//! travel as `InstallSnapshot` chunks (openraft's chunked transport reads
//! them from the snapshot file), so no message holds a whole ledger.
//! Messages encode with the ledger codec (strict bincode, size-limited).

use crate::authz;
use crate::election::SplitVotes;
use crate::types::{NodeId, PeerNode, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Raft, RaftMetrics};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// Largest encoded RPC or reply accepted (a 3 MiB snapshot chunk or an
/// append of several blocks fits).
pub const MAX_RPC_BYTES: usize = 16 * 1024 * 1024;

/// A Raft message from one node to another.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    /// Replicate entries / heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Request a vote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The reply to a [`RaftRpc`], including a Raft-level error of the remote.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpcReply {
    /// Reply to `AppendEntries`.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Reply to `Vote`.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Reply to `InstallSnapshot`.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
}

macro_rules! codec_impl {
    ($t:ty) => {
        impl $t {
            /// Canonical bytes.
            pub fn encode(&self) -> Result<Vec<u8>, TransportError> {
                ledger::codec::encode(self).map_err(|e| TransportError::Codec(e.to_string()))
            }
            /// Strictly decode untrusted bytes (at most [`MAX_RPC_BYTES`]).
            pub fn decode(bytes: &[u8]) -> Result<Self, TransportError> {
                ledger::codec::decode_limited(bytes, MAX_RPC_BYTES)
                    .map_err(|e| TransportError::Codec(e.to_string()))
            }
        }
    };
}
codec_impl!(RaftRpc);
codec_impl!(RaftRpcReply);

/// Why a message could not be delivered or answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer is not reachable now; openraft backs off before retrying.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The message was lost or timed out; openraft may retry at once.
    #[error("network: {0}")]
    Network(String),
    /// A message did not encode or decode.
    #[error("codec: {0}")]
    Codec(String),
    /// The encoded message is larger than [`MAX_RPC_BYTES`]; openraft sends
    /// fewer entries next time.
    #[error("message of {0} bytes is over the {MAX_RPC_BYTES}-byte limit")]
    TooLarge(usize),
    /// The peer's reply was refused by [`authz::check_reply`].
    #[error("{0}")]
    BadReply(String),
}

impl RaftRpc {
    /// Encode for the wire, refusing anything a peer could not read.
    pub fn encode_bounded(&self) -> Result<Vec<u8>, TransportError> {
        let bytes = self.encode()?;
        if bytes.len() > MAX_RPC_BYTES {
            return Err(TransportError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }
}

/// The current Raft membership as the network client sees it (set once the
/// Raft instance exists; before that no target counts as a voter).
pub type MembershipView = Arc<OnceLock<watch::Receiver<RaftMetrics<NodeId, PeerNode>>>>;

/// Voters of every configuration of the (possibly joint) membership in
/// `m`, each once per configuration it is in.
pub(crate) fn joint_voters(m: &RaftMetrics<NodeId, PeerNode>) -> impl Iterator<Item = NodeId> + '_ {
    m.membership_config
        .membership()
        .get_joint_config()
        .iter()
        .flatten()
        .copied()
}

fn is_voter(view: &MembershipView, target: NodeId) -> bool {
    view.get()
        .is_some_and(|m| joint_voters(&m.borrow()).any(|v| v == target))
}

/// The port the node crate implements to carry Raft messages.
pub trait Transport: Send + Sync + 'static {
    /// Send `rpc` to node `target` (whose address book entry is `node`) and
    /// await its reply.
    fn send(
        &self,
        target: NodeId,
        node: &PeerNode,
        rpc: RaftRpc,
    ) -> impl Future<Output = Result<RaftRpcReply, TransportError>> + Send;
}

/// Answer an incoming Raft message with the local Raft instance.
pub async fn handle_rpc(raft: &Raft<TypeConfig>, rpc: RaftRpc) -> RaftRpcReply {
    match rpc {
        RaftRpc::AppendEntries(r) => RaftRpcReply::AppendEntries(raft.append_entries(r).await),
        RaftRpc::Vote(r) => RaftRpcReply::Vote(raft.vote(r).await),
        RaftRpc::InstallSnapshot(r) => {
            RaftRpcReply::InstallSnapshot(raft.install_snapshot(r).await)
        }
    }
}

/// openraft network factory over a [`Transport`].
#[derive(Debug)]
pub struct Network<T> {
    transport: Arc<T>,
    membership: MembershipView,
    splits: Arc<SplitVotes>,
}

impl<T> Network<T> {
    /// Wrap a transport; replies are judged against `membership`, and the
    /// answers to this node's vote requests are reported to `splits`.
    pub fn new(transport: Arc<T>, membership: MembershipView, splits: Arc<SplitVotes>) -> Self {
        Network {
            transport,
            membership,
            splits,
        }
    }
}

/// A client to one peer.
#[derive(Debug)]
pub struct NetworkConnection<T> {
    transport: Arc<T>,
    target: NodeId,
    node: PeerNode,
    membership: MembershipView,
    splits: Arc<SplitVotes>,
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for Network<T> {
    type Network = NetworkConnection<T>;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> Self::Network {
        NetworkConnection {
            transport: self.transport.clone(),
            target,
            node: node.clone(),
            membership: self.membership.clone(),
            splits: self.splits.clone(),
        }
    }
}

fn transport_err<E: std::error::Error>(
    e: TransportError,
    entries: usize,
) -> RPCError<NodeId, PeerNode, E> {
    match e {
        TransportError::Unreachable(_) | TransportError::BadReply(_) => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        TransportError::TooLarge(_) if entries > 1 => RPCError::PayloadTooLarge(
            PayloadTooLarge::new_entries_hint((entries / 2) as u64).with_source_error(&e),
        ),
        TransportError::Network(_) | TransportError::Codec(_) | TransportError::TooLarge(_) => {
            RPCError::Network(NetworkError::new(&e))
        }
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, PeerNode, E> {
    RPCError::Network(NetworkError::new(&TransportError::Codec(
        "reply does not match the request".into(),
    )))
}

impl<T: Transport> NetworkConnection<T> {
    /// Send `rpc` and check the reply (a learner's claim of a higher vote,
    /// an absurd term or an out-of-range match is an error, never a reason
    /// to step down; see [`authz::check_reply`]).
    async fn call(&self, rpc: RaftRpc) -> Result<RaftRpcReply, TransportError> {
        let request = match &rpc {
            // Cheap to keep: the reply check needs only the vote and the
            // sent range, so entries are cut before the copy.
            RaftRpc::AppendEntries(r) => {
                RaftRpc::AppendEntries(openraft::raft::AppendEntriesRequest {
                    vote: r.vote,
                    prev_log_id: r.prev_log_id,
                    entries: r.entries.last().cloned().into_iter().collect(),
                    leader_commit: r.leader_commit,
                })
            }
            RaftRpc::Vote(r) => RaftRpc::Vote(r.clone()),
            RaftRpc::InstallSnapshot(r) => {
                RaftRpc::InstallSnapshot(openraft::raft::InstallSnapshotRequest {
                    vote: r.vote,
                    meta: r.meta.clone(),
                    offset: r.offset,
                    data: Vec::new(),
                    done: r.done,
                })
            }
        };
        let reply = self.transport.send(self.target, &self.node, rpc).await?;
        let voter = is_voter(&self.membership, self.target);
        if let Err(e) = authz::check_reply(&request, &reply, self.target, voter) {
            let n = authz::REFUSED_REPLIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    target = self.target,
                    refused = n,
                    "refused a peer's reply: {e}"
                );
            }
            return Err(TransportError::BadReply(e.to_string()));
        }
        Ok(reply)
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeId, PeerNode, E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.node.clone(),
            e,
        ))
    }
}

impl<T: Transport> RaftNetwork<TypeConfig> for NetworkConnection<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        let entries = rpc.entries.len();
        match self.call(RaftRpc::AppendEntries(rpc)).await {
            Ok(RaftRpcReply::AppendEntries(r)) => r.map_err(|e| self.remote(e)),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(transport_err(e, entries)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, PeerNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(RaftRpc::InstallSnapshot(rpc)).await {
            Ok(RaftRpcReply::InstallSnapshot(r)) => r.map_err(|e| self.remote(e)),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(transport_err(e, 0)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        let req = rpc.clone();
        match self.call(RaftRpc::Vote(rpc)).await {
            Ok(RaftRpcReply::Vote(r)) => {
                if let Ok(resp) = &r {
                    self.splits.observe(&req, resp);
                }
                r.map_err(|e| self.remote(e))
            }
            Ok(_) => Err(unexpected()),
            Err(e) => Err(transport_err(e, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    #[test]
    fn rpc_round_trips_and_corrupt_bytes_are_errors() {
        let rpc = RaftRpc::Vote(VoteRequest {
            vote: Vote::new(3, 1),
            last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), 7)),
        });
        let bytes = rpc.encode().unwrap();
        match RaftRpc::decode(&bytes).unwrap() {
            RaftRpc::Vote(v) => assert_eq!(v.vote, Vote::new(3, 1)),
            other => panic!("decoded {other:?}"),
        }
        for n in 0..bytes.len() {
            assert!(RaftRpc::decode(&bytes[..n]).is_err(), "prefix {n} accepted");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(RaftRpc::decode(&trailing).is_err());
        let mut bad_tag = bytes;
        bad_tag[0] = 9;
        assert!(RaftRpc::decode(&bad_tag).is_err());
        assert!(RaftRpcReply::decode(&[0xff; 40]).is_err());
    }
}
