//! Persistent state of one node: blocks, indexes, shipment states, the
//! ledger-wide Merkle tree, checkpoints and metadata.
//!
//! [`Store`] is the port; `RocksStore` (column families, one atomic synced
//! `WriteBatch` per block; feature `rocksdb`, on by default) and
//! [`MemStore`] are its adapters, and
//! [`testing::run_store_suite`] is the behaviour both must show. Every block
//! is written with [`Store::commit`] as one [`BlockWrite`], so a crash leaves
//! either the whole block or none of it. Records read back are decoded
//! strictly; a record that does not decode is reported as corruption, never
//! served.

mod mem;
#[cfg(feature = "rocksdb")]
mod rocks;
pub mod testing;

pub use mem::MemStore;
#[cfg(feature = "rocksdb")]
pub use rocks::{direct_io_supported, limit_background_writes, RocksStore, MEMTABLE_BUDGET_BYTES};

use crate::block::{Block, BlockHeader, CosignedCheckpoint};
use crate::codec::CodecError;
use crate::config::ChainConfig;
use crate::event::ShipmentState;
use crate::hash::Hash32;
use serde::{Deserialize, Serialize};

/// Where a transaction was committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
}

/// The newest committed block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash32,
    /// Block time.
    pub timestamp_ms: u64,
}

/// Everything one block changes, written atomically.
#[derive(Clone, Debug, Default)]
pub struct BlockWrite {
    /// Height of the block.
    pub height: u64,
    /// Canonical block bytes.
    pub block: Vec<u8>,
    /// New tip.
    pub tip: Option<Tip>,
    /// Transaction index entries.
    pub tx_locations: Vec<(Hash32, TxLocation)>,
    /// New shipment states.
    pub shipment_states: Vec<(String, ShipmentState)>,
    /// Shipment history entries (shipment id, location, tx id).
    pub shipment_events: Vec<(String, TxLocation, Hash32)>,
    /// New perfect-subtree nodes of the ledger-wide tree.
    pub merkle_nodes: Vec<(u8, u64, [u8; 32])>,
    /// New chain config, when governance changed it.
    pub config: Option<ChainConfig>,
    /// Extra metadata written in the same batch (e.g. the applied Raft log id).
    pub meta: Vec<(Vec<u8>, Vec<u8>)>,
    /// What a content validator learned from this block (ADR 0015).
    pub learned: Option<LearnedWrite>,
}

/// Sealed learned-state records a content validator writes with a block
/// (ADR 0015). The store does not read them; it keeps the newest checkpoint
/// and the journal records after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LearnedWrite {
    /// The journal record of this block's height (what the block taught).
    pub journal: Option<Vec<u8>>,
    /// The whole learned state after this block. Replaces the stored
    /// checkpoint and drops every journal record at or below this height.
    pub checkpoint: Option<Vec<u8>>,
}

/// Storage failures. Corruption names the record.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("storage backend: {0}")]
    Backend(String),
    /// A stored record does not decode or does not match its key.
    #[error("corrupt record {what}: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        detail: String,
    },
    /// A write would break an invariant (e.g. not the next height).
    #[error("refused write: {0}")]
    Refused(String),
    /// Encoding failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

pub(crate) fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// The storage port.
pub trait Store: Send + Sync {
    /// Newest block, if any.
    fn tip(&self) -> Result<Option<Tip>, StoreError>;
    /// Canonical bytes of the block at `height`.
    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Where a transaction committed.
    fn tx_location(&self, id: &Hash32) -> Result<Option<TxLocation>, StoreError>;
    /// A shipment's state.
    fn shipment_state(&self, shipment: &str) -> Result<Option<ShipmentState>, StoreError>;
    /// A shipment's events in commit order, starting after `after` (exclusive), at most `limit`.
    fn shipment_events(
        &self,
        shipment: &str,
        after: Option<TxLocation>,
        limit: usize,
    ) -> Result<Vec<(TxLocation, Hash32)>, StoreError>;
    /// A perfect-subtree node of the ledger-wide tree.
    fn merkle_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError>;
    /// Chain config in force.
    fn config(&self) -> Result<Option<ChainConfig>, StoreError>;
    /// Stored checkpoint at `height`.
    fn checkpoint(&self, height: u64) -> Result<Option<CosignedCheckpoint>, StoreError>;
    /// Store (replace) a checkpoint with its cosignatures. Need not be
    /// synced: peers' cosignatures lost in a crash are gossiped again, and
    /// what a node must not forget about its own signing (the last
    /// checkpoint it cosigned) goes through the synced [`Store::put_meta`],
    /// which also makes every earlier write durable.
    fn put_checkpoint(&self, cp: &CosignedCheckpoint) -> Result<(), StoreError>;
    /// Highest stored checkpoint.
    fn latest_checkpoint(&self) -> Result<Option<CosignedCheckpoint>, StoreError>;
    /// Metadata value.
    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Write metadata (synced).
    fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Delete metadata (synced); deleting an absent key is not an error.
    fn delete_meta(&self, key: &[u8]) -> Result<(), StoreError>;
    /// Atomically write one block and everything it changes. Refuses a
    /// height that is not exactly the tip's successor (or 0 on an empty store).
    fn commit(&self, write: BlockWrite) -> Result<(), StoreError>;
    /// The stored learned-state checkpoint (sealed bytes).
    fn learned_checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Learned-state journal records at heights `from..`, at most `limit`,
    /// in height order.
    fn learned_journal(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Write learned-state records for `height` outside a block commit
    /// (synced): a checkpoint after the state was rebuilt from the blocks.
    fn put_learned(&self, height: u64, write: &LearnedWrite) -> Result<(), StoreError>;

    /// The header of the block at `height`, its body left undecoded.
    fn block_header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.block_bytes(height)?
            .map(|b| header_of(height, &b))
            .transpose()
    }

    /// Decoded block at `height`.
    fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        match self.block_bytes(height)? {
            None => Ok(None),
            Some(b) => Block::decode(&b)
                .map(Some)
                .map_err(|e| corrupt(format!("block {height}"), e)),
        }
    }
}

/// The header of stored block `height` from its bytes (what every
/// [`Store::block_header`] decodes, whether it owns the bytes or not).
pub(crate) fn header_of(height: u64, bytes: &[u8]) -> Result<BlockHeader, StoreError> {
    Block::decode_header(bytes).map_err(|e| corrupt(format!("block {height} header"), e))
}

pub(crate) fn check_next_height(tip: Option<&Tip>, height: u64) -> Result<(), StoreError> {
    let expected = tip.map_or(0, |t| t.height + 1);
    if height != expected {
        return Err(StoreError::Refused(format!(
            "block height {height} is not the next height {expected}"
        )));
    }
    Ok(())
}

/// Key of a shipment history entry: `shipment || 0x00 || height(8 BE) || index(4 BE)`.
pub(crate) fn shipment_event_key(shipment: &str, loc: TxLocation) -> Vec<u8> {
    let mut k = Vec::with_capacity(shipment.len() + 13);
    k.extend_from_slice(shipment.as_bytes());
    k.push(0);
    k.extend_from_slice(&loc.height.to_be_bytes());
    k.extend_from_slice(&loc.index.to_be_bytes());
    k
}

/// Key of a learned-state journal record: `'j' || height(8 BE)`.
pub(crate) fn learned_journal_key(height: u64) -> [u8; 9] {
    let mut k = [b'j'; 9];
    k[1..].copy_from_slice(&height.to_be_bytes());
    k
}

/// Key of the learned-state checkpoint.
pub(crate) const LEARNED_CHECKPOINT_KEY: &[u8] = b"c";

pub(crate) fn merkle_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}
