//! Errors at this crate's boundary.

use crate::types::{NodeId, PeerNode};

/// Failures starting or running a consensus node.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The Raft log database failed.
    #[error("raft log store: {0}")]
    LogStore(String),
    /// The ledger could not be opened or written.
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::chain::LedgerError),
    /// Ledger storage failed.
    #[error("ledger store: {0}")]
    Store(#[from] ledger::store::StoreError),
    /// A file operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// openraft refused the configuration.
    #[error("raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    /// openraft stopped.
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a proposal (or membership change) did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the leader; forward to `leader` if known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// Current leader, if known.
        leader: Option<(NodeId, Option<PeerNode>)>,
    },
    /// Raft failed or is shutting down.
    #[error("raft: {0}")]
    Raft(String),
    /// The batcher or node has stopped.
    #[error("consensus stopped")]
    Stopped,
}
