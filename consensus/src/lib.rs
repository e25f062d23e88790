//! Raft replication of the customs ledger, on openraft 0.9.
//!
//! This crate orders batches of signed transactions with Raft and applies
//! every committed batch to the ledger through `ledger`'s deterministic
//! apply path, on voters (customs validators) and learners (every other
//! party) alike. It provides the openraft type config ([`TypeConfig`]), a
//! RocksDB Raft log ([`RocksLogStore`], fsynced before acknowledging), the
//! ledger state machine ([`LedgerStateMachine`], whose applied log id is
//! written in the same atomic batch as each block, and whose snapshots are
//! RocksDB checkpoints streamed as files), a transport *port*
//! ([`Transport`]) with the openraft network adapter over it, the
//! [`ConsensusNode`] facade and a transaction [`Batcher`].
//!
//! It deliberately contains no transport code: the `node` crate implements
//! [`Transport`] over libp2p and feeds incoming messages to [`handle_rpc`].
//! [`testing`] has an in-process router for cluster tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// openraft's storage traits fix `StorageError` (over 200 bytes) as the error
// type; boxing it here would only add conversions at every trait boundary.
#![allow(clippy::result_large_err)]

pub mod authz;
mod batcher;
pub mod election;
mod error;
pub mod integrity;
mod log_store;
mod network;
mod node;
mod snapshot;
mod state_machine;
pub mod testing;
mod types;

pub use batcher::{spawn_batcher, BatcherConfig, BatcherHandle, Judge};
pub use error::{ConsensusError, ProposeError};
pub use log_store::{LogCheck, RocksLogStore};
pub use network::{
    handle_rpc, MembershipView, Network, NetworkConnection, RaftRpc, RaftRpcReply, Transport,
    TransportError, MAX_RPC_BYTES,
};
pub use node::{system_clock, Clock, ConsensusNode, Genesis, NodeConfig};
pub use state_machine::{
    divergence, Divergence, LedgerHandle, LedgerSnapshotBuilder, LedgerStateMachine,
    APPLIED_META_KEY, DIVERGENCES, DIVERGENCE_META_KEY,
};
pub use types::{ApplyReport, Batch, NodeId, PeerNode, TxReceipt, TypeConfig};

/// openraft re-exported, so callers use the same version.
pub use openraft;
