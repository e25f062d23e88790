//! The openraft type config and the application types it names.

use ledger::block::TxResult;
use ledger::chain::{BlockContext, ContentOutcome, Rejection};
use ledger::{Hash32, TxBatch};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Raft node id.
pub type NodeId = u64;

/// A Raft entry's payload: a batch of signed transactions proposed by the
/// leader, with the block context it fixed (time, proposer). `raft_term`
/// and `raft_index` in `ctx` are overwritten at apply time from the entry's
/// log id, so every node builds the same block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Block context chosen by the leader.
    pub ctx: BlockContext,
    /// Transactions in proposal order, with their ids and canonical bytes
    /// (one byte string on the wire and in the log; see [`TxBatch`]).
    /// Shared: openraft clones an entry for every follower it replicates to
    /// and for apply, and a batch is megabytes of transactions.
    pub txs: TxBatch,
    /// The leader's content-validation outcome of each transaction
    /// (classification, risk), in `txs` order; empty means none. Every node
    /// builds the block with these, so learners that cannot decrypt build
    /// the same block as customs nodes (ADR 0001).
    pub outcomes: Arc<[ContentOutcome]>,
    /// The learned state the leader judged this batch's declarations
    /// against: folded through this block height. A declaration commits
    /// only if it is the one its block's height calls for
    /// (`judged_through(height)`), so every customs node recomputes its
    /// outcome against exactly that state (ADR 0014, ADR 0016); `None` for
    /// a batch without declarations.
    pub judged_at: Option<u64>,
}

/// What applying one Raft entry produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Ledger height after the entry (the new block's height for a batch;
    /// the unchanged tip for blank and membership entries).
    pub height: u64,
    /// Hash of the block at `height`.
    pub block_hash: Hash32,
    /// Accepted transactions and their index in the block.
    pub accepted: Vec<(Hash32, u32)>,
    /// Refused transactions and why.
    pub rejected: Vec<(Hash32, Rejection)>,
    /// Validation results of the accepted transactions, in block order
    /// (so a submitter learns its result without reading the block back).
    pub results: Vec<TxResult>,
}

/// What became of one submitted transaction: the block it was decided in,
/// and its index and result there, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxReceipt {
    /// Height of the block the transaction's batch produced.
    pub height: u64,
    /// Hash of that block.
    pub block_hash: Hash32,
    /// `Ok((index, result))` if committed, else the rejection.
    pub outcome: Result<(u32, TxResult), Rejection>,
}

impl ApplyReport {
    /// One receipt per id of `ids` (a batch's submissions, in any order),
    /// in one pass over the report; `None` for an id not in the batch.
    pub fn receipts(&self, ids: &[Hash32]) -> Vec<Option<TxReceipt>> {
        let mut by_id: std::collections::BTreeMap<&Hash32, Result<(u32, &TxResult), &Rejection>> =
            std::collections::BTreeMap::new();
        for (id, r) in &self.rejected {
            by_id.insert(id, Err(r));
        }
        for ((id, i), res) in self.accepted.iter().zip(&self.results) {
            by_id.insert(id, Ok((*i, res)));
        }
        ids.iter()
            .map(|id| {
                by_id.get(id).map(|o| TxReceipt {
                    height: self.height,
                    block_hash: self.block_hash,
                    outcome: match o {
                        Ok((i, r)) => Ok((*i, (*r).clone())),
                        Err(r) => Err((*r).clone()),
                    },
                })
            })
            .collect()
    }

    /// Outcome of one transaction of the batch: `Ok(index)` if accepted,
    /// `Err(rejection)` if refused, `None` if it was not in the batch.
    pub fn outcome(&self, tx_id: &Hash32) -> Option<Result<u32, Rejection>> {
        if let Some((_, i)) = self.accepted.iter().find(|(id, _)| id == tx_id) {
            return Some(Ok(*i));
        }
        self.rejected
            .iter()
            .find(|(id, _)| id == tx_id)
            .map(|(_, r)| Err(r.clone()))
    }
}

/// Address book entry of a Raft member: which party runs it and where the
/// transport reaches it (opaque to this crate, e.g. a libp2p multiaddr).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// Party id from the chain config.
    pub party: String,
    /// Transport address.
    pub addr: String,
}

impl PeerNode {
    /// A peer entry.
    pub fn new(party: impl Into<String>, addr: impl Into<String>) -> Self {
        PeerNode {
            party: party.into(),
            addr: addr.into(),
        }
    }
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.party, self.addr)
    }
}

openraft::declare_raft_types!(
    /// Raft types of the customs ledger.
    pub TypeConfig:
        D = Batch,
        R = ApplyReport,
        NodeId = NodeId,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);
