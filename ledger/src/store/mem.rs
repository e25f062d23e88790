//! In-memory [`Store`] for tests and offline verification.

use super::*;
use crate::codec;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Inner {
    tip: Option<Tip>,
    blocks: BTreeMap<u64, Vec<u8>>,
    txs: BTreeMap<Hash32, TxLocation>,
    states: BTreeMap<String, ShipmentState>,
    events: BTreeMap<Vec<u8>, Hash32>,
    merkle: BTreeMap<[u8; 9], [u8; 32]>,
    config: Option<ChainConfig>,
    checkpoints: BTreeMap<u64, CosignedCheckpoint>,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
    learned_checkpoint: Option<Vec<u8>>,
    learned_journal: BTreeMap<u64, Vec<u8>>,
}

impl Inner {
    fn put_learned(&mut self, height: u64, w: &LearnedWrite) {
        if let Some(c) = &w.checkpoint {
            self.learned_checkpoint = Some(c.clone());
            self.learned_journal = self.learned_journal.split_off(&(height.saturating_add(1)));
        } else if let Some(j) = &w.journal {
            self.learned_journal.insert(height, j.clone());
        }
    }
}

/// A [`Store`] held in memory.
#[derive(Default)]
pub struct MemStore(Mutex<Inner>);

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemStore")
    }
}

impl MemStore {
    /// Empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }

    /// Overwrite a stored block's bytes (tests of corruption detection).
    pub fn tamper_block(&self, height: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.lock()?.blocks.insert(height, bytes);
        Ok(())
    }
}

impl Store for MemStore {
    fn tip(&self) -> Result<Option<Tip>, StoreError> {
        Ok(self.lock()?.tip.clone())
    }
    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.blocks.get(&height).cloned())
    }
    fn tx_location(&self, id: &Hash32) -> Result<Option<TxLocation>, StoreError> {
        Ok(self.lock()?.txs.get(id).copied())
    }
    fn shipment_state(&self, shipment: &str) -> Result<Option<ShipmentState>, StoreError> {
        Ok(self.lock()?.states.get(shipment).cloned())
    }
    fn shipment_events(
        &self,
        shipment: &str,
        after: Option<TxLocation>,
        limit: usize,
    ) -> Result<Vec<(TxLocation, Hash32)>, StoreError> {
        let g = self.lock()?;
        let mut prefix = shipment.as_bytes().to_vec();
        prefix.push(0);
        let start = match after {
            Some(loc) => {
                let mut k = shipment_event_key(shipment, loc);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for (k, v) in g.events.range(start..) {
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push((decode_event_loc(k, prefix.len())?, *v));
        }
        Ok(out)
    }
    fn merkle_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self.lock()?.merkle.get(&merkle_key(level, index)).copied())
    }
    fn config(&self) -> Result<Option<ChainConfig>, StoreError> {
        Ok(self.lock()?.config.clone())
    }
    fn checkpoint(&self, height: u64) -> Result<Option<CosignedCheckpoint>, StoreError> {
        Ok(self.lock()?.checkpoints.get(&height).cloned())
    }
    fn put_checkpoint(&self, cp: &CosignedCheckpoint) -> Result<(), StoreError> {
        self.lock()?
            .checkpoints
            .insert(cp.checkpoint.height, cp.clone());
        Ok(())
    }
    fn latest_checkpoint(&self) -> Result<Option<CosignedCheckpoint>, StoreError> {
        Ok(self.lock()?.checkpoints.values().next_back().cloned())
    }
    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.meta.get(key).cloned())
    }
    fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.lock()?.meta.insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn delete_meta(&self, key: &[u8]) -> Result<(), StoreError> {
        self.lock()?.meta.remove(key);
        Ok(())
    }
    fn commit(&self, w: BlockWrite) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        check_next_height(g.tip.as_ref(), w.height)?;
        // Validate encodability before touching anything (all-or-nothing).
        if let Some(c) = &w.config {
            codec::encode(c)?;
        }
        g.blocks.insert(w.height, w.block);
        for (id, loc) in w.tx_locations {
            g.txs.insert(id, loc);
        }
        for (s, st) in w.shipment_states {
            g.states.insert(s, st);
        }
        for (s, loc, id) in w.shipment_events {
            g.events.insert(shipment_event_key(&s, loc), id);
        }
        for (l, i, h) in w.merkle_nodes {
            g.merkle.insert(merkle_key(l, i), h);
        }
        if let Some(c) = w.config {
            g.config = Some(c);
        }
        for (k, v) in w.meta {
            g.meta.insert(k, v);
        }
        if let Some(l) = &w.learned {
            g.put_learned(w.height, l);
        }
        if w.tip.is_some() {
            g.tip = w.tip;
        }
        Ok(())
    }
    fn learned_checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.learned_checkpoint.clone())
    }
    fn learned_journal(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()?
            .learned_journal
            .range(from..)
            .take(limit)
            .map(|(h, v)| (*h, v.clone()))
            .collect())
    }
    fn put_learned(&self, height: u64, write: &LearnedWrite) -> Result<(), StoreError> {
        self.lock()?.put_learned(height, write);
        Ok(())
    }
}

pub(crate) fn decode_event_loc(key: &[u8], prefix_len: usize) -> Result<TxLocation, StoreError> {
    let rest = key
        .get(prefix_len..)
        .filter(|r| r.len() == 12)
        .ok_or_else(|| corrupt("shipment index key", "wrong length"))?;
    let mut h = [0u8; 8];
    let mut i = [0u8; 4];
    h.copy_from_slice(&rest[..8]);
    i.copy_from_slice(&rest[8..]);
    Ok(TxLocation {
        height: u64::from_be_bytes(h),
        index: u32::from_be_bytes(i),
    })
}
