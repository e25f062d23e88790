//! Mirrors of the Raft message types of `consensus` (which links RocksDB,
//! so the fuzz crate cannot depend on it): the same openraft version,
//! features and type config, the same enums with the same variant order and
//! the same structs with the same field order, hence the same wire bytes.

use ledger::chain::{BlockContext, ContentOutcome};
use ledger::TxBatch;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `consensus::network::MAX_RPC_BYTES`.
pub const MAX_RPC_BYTES: usize = 16 * 1024 * 1024;

pub type NodeId = u64;

/// `consensus::types::Batch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub ctx: BlockContext,
    pub txs: TxBatch,
    pub outcomes: Vec<ContentOutcome>,
}

/// `consensus::types::PeerNode`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    pub party: String,
    pub addr: String,
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.party, self.addr)
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Batch,
        R = (),
        NodeId = NodeId,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// `consensus::network::RaftRpc`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// `consensus::network::RaftRpcReply`.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RaftRpcReply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
}
