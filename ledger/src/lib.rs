//! Customs ledger core: the data model, canonical encoding, hashing and
//! signatures, Merkle trees, validators, the deterministic apply path and
//! the RocksDB store.
//!
//! This crate is synchronous and deterministic. It knows nothing about the
//! network, Raft, gRPC or async runtimes: `consensus` and `node` drive it.
//! Anything that is hashed or committed is computed without the clock,
//! randomness, floating point or hash-map iteration order; randomness is
//! used only by the submitter-side helpers that create keys, nonces, salts
//! and data keys.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod block;
pub mod chain;
pub mod co2;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod declaration;
pub mod disclosure;
pub mod event;
pub mod hash;
pub mod history;
mod hpke_open;
pub mod hs;
pub mod kpi;
pub mod merkle;
pub mod outcome;
pub mod quote;
pub mod store;
pub mod tariff;
pub mod testkit;
pub mod tx;
pub mod validate;

pub use block::{Block, BlockHeader, Checkpoint, CosignedCheckpoint, TxResult};
pub use chain::{verify_chain, BlockContext, ChainFault, Ledger, Rejection};
pub use config::{ChainConfig, FieldClass, Party, Role};
pub use event::{EventKind, ShipmentState, Status};
pub use hash::{Bytes, Hash32, Sig64};
#[cfg(feature = "rocksdb")]
pub use store::RocksStore;
pub use store::{MemStore, Store};
pub use tx::{SignedTransaction, Transaction, TxBatch};
