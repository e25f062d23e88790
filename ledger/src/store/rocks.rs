//! RocksDB adapter of [`Store`]: one column family per record kind, one
//! synced `WriteBatch` per block.

use super::mem::decode_event_loc;
use super::*;
use crate::codec;
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use std::path::Path;

const CF_BLOCKS: &str = "blocks";
const CF_TX: &str = "tx_index";
const CF_SHIP_IDX: &str = "shipment_index";
const CF_SHIP_STATE: &str = "shipment_state";
const CF_MERKLE: &str = "merkle";
const CF_CHECKPOINTS: &str = "checkpoints";
const CF_META: &str = "meta";
const CF_LEARNED: &str = "learned";

/// Column families, in creation order.
pub const COLUMN_FAMILIES: [&str; 8] = [
    CF_BLOCKS,
    CF_TX,
    CF_SHIP_IDX,
    CF_SHIP_STATE,
    CF_MERKLE,
    CF_CHECKPOINTS,
    CF_META,
    CF_LEARNED,
];

const META_TIP: &[u8] = b"\0tip";
const META_CONFIG: &[u8] = b"\0config";

/// Block cache shared by a ledger database's column families.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// Memtables of all column families together, per database: past this the
/// largest is flushed. Without a cap each column family may hold two 64 MB
/// memtables, and the benchmark's customs nodes peaked at 501-523 MB, past
/// their 512 MB budget; with it, 399-430 MB (ADR 0021). The Raft log
/// database uses the same cap.
pub const MEMTABLE_BUDGET_BYTES: usize = 64 << 20;

/// Background writes (memtable flushes, compactions) of one database, in
/// bytes per second, granted in slices every [`BACKGROUND_REFILL_US`]. A
/// 64 MB flush written at once queues every fsync on the disk behind it,
/// the Raft log's included; in slices, a synced append waits for a slice at
/// most (ADR 0023). Well above what a database writes on average (about
/// 10 MB/s per node at 4,000 tx/s).
pub const BACKGROUND_WRITE_BYTES_PER_SEC: i64 = 64 << 20;

/// Refill period of [`BACKGROUND_WRITE_BYTES_PER_SEC`] (a 320 KB slice).
pub const BACKGROUND_REFILL_US: i64 = 5_000;

/// Apply the background write limit to a database's options.
pub fn limit_background_writes(opts: &mut Options) {
    opts.set_ratelimiter(BACKGROUND_WRITE_BYTES_PER_SEC, BACKGROUND_REFILL_US, 10);
}

/// A [`Store`] in a RocksDB database. Clones share the open database, so
/// readers need not hold the ledger; the database closes with the last.
#[derive(Clone)]
pub struct RocksStore {
    db: std::sync::Arc<DB>,
    sync: bool,
    states: std::sync::Arc<std::sync::Mutex<StateCache>>,
    headers: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<u64, BlockHeader>>>,
}

/// Headers of the newest blocks this process committed, kept so a header
/// read (every gossiped cosignature asks for one) does not copy the whole
/// block out of the memtable. Filled by [`Store::commit`] only.
const HEADER_CACHE_BLOCKS: usize = 1024;

/// Shipment states this process committed, newest per shipment, so the
/// lifecycle check of a shipment's next event reads memory instead of the
/// database. Filled only by [`Store::commit`] after its batch is written
/// (never from a read, which could race a commit and keep an older
/// value), so an entry always equals the stored value. Two generations
/// of at most [`STATE_CACHE_GENERATION`] entries each: when the newer
/// fills, the older is dropped.
#[derive(Default)]
struct StateCache {
    newer: std::collections::HashMap<String, ShipmentState>,
    older: std::collections::HashMap<String, ShipmentState>,
}

/// Entries per generation of the shipment-state cache (a few hundred
/// bytes each: a node keeps at most a few megabytes).
const STATE_CACHE_GENERATION: usize = 8192;

impl StateCache {
    fn get(&self, shipment: &str) -> Option<&ShipmentState> {
        self.newer
            .get(shipment)
            .or_else(|| self.older.get(shipment))
    }

    fn put(&mut self, shipment: &str, state: &ShipmentState) {
        if self.newer.len() >= STATE_CACHE_GENERATION && !self.newer.contains_key(shipment) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.older.remove(shipment);
        self.newer.insert(shipment.to_string(), state.clone());
    }
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksStore({})", self.db.path().display())
    }
}

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Share of a memtable's size spent on its whole-key Bloom filter.
const MEMTABLE_BLOOM_RATIO: f64 = 0.05;

/// Whether files under `dir` (created if missing) accept `O_DIRECT` writes.
/// Where they do, a database's flushes and compactions bypass the page
/// cache: under load, copying every SST into the page cache showed as one
/// of each node's top costs (ADR 0010). Some filesystems refuse `O_DIRECT`
/// (tmpfs before Linux 6.6, some overlays), and RocksDB does not fall back
/// by itself, so the probe writes one aligned block first.
pub fn direct_io_supported(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        const BLOCK: usize = 4096;
        if std::fs::create_dir_all(dir).is_err() {
            return false;
        }
        let probe = dir.join(".direct-io-probe");
        let buf = vec![0u8; 2 * BLOCK];
        let at = buf.as_ptr().align_offset(BLOCK);
        let ok = buf.get(at..at + BLOCK).is_some_and(|block| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(&probe)
                .and_then(|mut f| f.write_all(block))
                .is_ok()
        });
        let _ = std::fs::remove_file(&probe);
        ok
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

impl RocksStore {
    /// Open or create the database at `path`. Block commits are fsynced.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET_BYTES);
        opts.set_use_direct_io_for_flush_and_compaction(direct_io_supported(path));
        limit_background_writes(&mut opts);
        // One block cache for all column families; Bloom filters where
        // lookups are by exact key and mostly miss (admission asks the
        // transaction index whether each new id exists, and the shipment
        // state of every new shipment). The memtable gets one too: under
        // load most of those misses are answered there, and without a filter
        // each walks the skiplist.
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = COLUMN_FAMILIES.iter().map(|n| {
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            let mut cf = Options::default();
            if *n == CF_BLOCKS {
                // Mostly sealed fields, signatures and hashes: compressing
                // them at every flush and compaction cost CPU for little.
                cf.set_compression_type(rocksdb::DBCompressionType::None);
            }
            if [CF_TX, CF_SHIP_STATE, CF_META].contains(n) {
                table.set_bloom_filter(10.0, false);
                table.set_cache_index_and_filter_blocks(true);
                table.set_pin_l0_filter_and_index_blocks_in_cache(true);
                cf.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
                cf.set_memtable_whole_key_filtering(true);
            }
            cf.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*n, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(backend)?;
        Ok(RocksStore {
            db: std::sync::Arc::new(db),
            sync: true,
            states: Default::default(),
            headers: Default::default(),
        })
    }

    /// Turn fsync of block commits off: for a ledger whose writes can be
    /// replayed from a synced log of their own (the Raft state machine,
    /// ADR 0023) and for benchmarks. Commits still go through RocksDB's
    /// write-ahead log, so a killed process loses nothing; a power loss may
    /// lose the newest commits, whole ones only.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// Write every column family's memtable to SST files (through direct
    /// I/O where [`direct_io_supported`]).
    pub fn flush(&self) -> Result<(), StoreError> {
        for n in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(n)?).map_err(backend)?;
        }
        Ok(())
    }

    fn state_cache(&self) -> std::sync::MutexGuard<'_, StateCache> {
        // Every entry is a whole value written after its batch: a panic
        // elsewhere cannot leave one half-made.
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn header_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, BlockHeader>> {
        // Whole headers only, inserted after their batch is written.
        self.headers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The underlying database (for snapshots/checkpoints by the node).
    pub fn db(&self) -> &DB {
        &self.db
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Backend(format!("missing column family {name}")))
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(backend)
    }

    fn get_decoded<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        key: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>, StoreError> {
        match self.get(cf, key)? {
            None => Ok(None),
            Some(b) => codec::decode(&b).map(Some).map_err(|e| corrupt(what(), e)),
        }
    }

    fn write_opts(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync);
        w
    }

    /// Overwrite a stored ledger-tree node (used by tests that play a node
    /// operator rewriting history, and by repair tools).
    pub fn put_raw_merkle_node(
        &self,
        level: u8,
        index: u64,
        hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.db
            .put_cf_opt(
                self.cf(CF_MERKLE)?,
                merkle_key(level, index),
                hash,
                &self.write_opts(),
            )
            .map_err(backend)
    }

    fn learned_into(
        &self,
        b: &mut WriteBatch,
        height: u64,
        w: &LearnedWrite,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_LEARNED)?;
        if let Some(c) = &w.checkpoint {
            b.put_cf(cf, LEARNED_CHECKPOINT_KEY, c);
            b.delete_range_cf(
                cf,
                learned_journal_key(0),
                learned_journal_key(height.saturating_add(1)),
            );
        } else if let Some(j) = &w.journal {
            b.put_cf(cf, learned_journal_key(height), j);
        }
        Ok(())
    }

    /// Overwrite a stored learned-state record (corruption tests).
    pub fn put_raw_learned(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf_opt(self.cf(CF_LEARNED)?, key, bytes, &self.write_opts())
            .map_err(backend)
    }

    /// Overwrite raw bytes of a block (used by corruption tests and repair).
    pub fn put_raw_block(&self, height: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.header_cache().remove(&height);
        self.db
            .put_cf_opt(
                self.cf(CF_BLOCKS)?,
                height.to_be_bytes(),
                bytes,
                &self.write_opts(),
            )
            .map_err(backend)
    }
}

impl Store for RocksStore {
    fn tip(&self) -> Result<Option<Tip>, StoreError> {
        self.get_decoded(CF_META, META_TIP, || "tip".into())
    }
    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_BLOCKS, &height.to_be_bytes())
    }
    fn block_header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        if let Some(h) = self.header_cache().get(&height) {
            return Ok(Some(h.clone()));
        }
        // Pinned: the header is decoded in place, the body never copied out.
        let pinned = self
            .db
            .get_pinned_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes())
            .map_err(backend)?;
        pinned.map(|b| header_of(height, &b)).transpose()
    }
    fn tx_location(&self, id: &Hash32) -> Result<Option<TxLocation>, StoreError> {
        self.get_decoded(CF_TX, &id.0, || format!("tx index {id}"))
    }
    fn shipment_state(&self, shipment: &str) -> Result<Option<ShipmentState>, StoreError> {
        if let Some(s) = self.state_cache().get(shipment) {
            return Ok(Some(s.clone()));
        }
        self.get_decoded(CF_SHIP_STATE, shipment.as_bytes(), || {
            format!("shipment state {shipment}")
        })
    }
    fn shipment_events(
        &self,
        shipment: &str,
        after: Option<TxLocation>,
        limit: usize,
    ) -> Result<Vec<(TxLocation, Hash32)>, StoreError> {
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
        let iter = self.db.iterator_cf(
            self.cf(CF_SHIP_IDX)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let loc = decode_event_loc(&k, prefix.len())?;
            let id: [u8; 32] = v
                .as_ref()
                .try_into()
                .map_err(|_| corrupt("shipment index value", "not 32 bytes"))?;
            out.push((loc, crate::hash::Bytes(id)));
        }
        Ok(out)
    }
    fn merkle_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        match self.get(CF_MERKLE, &merkle_key(level, index))? {
            None => Ok(None),
            Some(v) => v
                .as_slice()
                .try_into()
                .map(Some)
                .map_err(|_| corrupt(format!("merkle node {level}/{index}"), "not 32 bytes")),
        }
    }
    fn config(&self) -> Result<Option<ChainConfig>, StoreError> {
        self.get_decoded(CF_META, META_CONFIG, || "chain config".into())
    }
    fn checkpoint(&self, height: u64) -> Result<Option<CosignedCheckpoint>, StoreError> {
        self.get_decoded(CF_CHECKPOINTS, &height.to_be_bytes(), || {
            format!("checkpoint {height}")
        })
    }
    fn put_checkpoint(&self, cp: &CosignedCheckpoint) -> Result<(), StoreError> {
        // Not synced (see the trait): the next synced write, or the WAL's
        // own flush, makes it durable.
        let bytes = codec::encode(cp)?;
        self.db
            .put_cf(
                self.cf(CF_CHECKPOINTS)?,
                cp.checkpoint.height.to_be_bytes(),
                bytes,
            )
            .map_err(backend)
    }
    fn latest_checkpoint(&self) -> Result<Option<CosignedCheckpoint>, StoreError> {
        let mut iter = self
            .db
            .iterator_cf(self.cf(CF_CHECKPOINTS)?, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, v) = item.map_err(backend)?;
                codec::decode(&v)
                    .map(Some)
                    .map_err(|e| corrupt("latest checkpoint", e))
            }
        }
    }
    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_META, key)
    }
    fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if key.first() == Some(&0) {
            return Err(StoreError::Refused(
                "meta keys starting with 0x00 are reserved".into(),
            ));
        }
        self.db
            .put_cf_opt(self.cf(CF_META)?, key, value, &self.write_opts())
            .map_err(backend)
    }
    fn delete_meta(&self, key: &[u8]) -> Result<(), StoreError> {
        if key.first() == Some(&0) {
            return Err(StoreError::Refused(
                "meta keys starting with 0x00 are reserved".into(),
            ));
        }
        self.db
            .delete_cf_opt(self.cf(CF_META)?, key, &self.write_opts())
            .map_err(backend)
    }
    fn commit(&self, w: BlockWrite) -> Result<(), StoreError> {
        check_next_height(self.tip()?.as_ref(), w.height)?;
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_BLOCKS)?, w.height.to_be_bytes(), &w.block);
        let tx_cf = self.cf(CF_TX)?;
        for (id, loc) in &w.tx_locations {
            b.put_cf(tx_cf, id.0, codec::encode(loc)?);
        }
        let st_cf = self.cf(CF_SHIP_STATE)?;
        for (s, st) in &w.shipment_states {
            b.put_cf(st_cf, s.as_bytes(), codec::encode(st)?);
        }
        let idx_cf = self.cf(CF_SHIP_IDX)?;
        for (s, loc, id) in &w.shipment_events {
            b.put_cf(idx_cf, shipment_event_key(s, *loc), id.0);
        }
        let m_cf = self.cf(CF_MERKLE)?;
        for (l, i, h) in &w.merkle_nodes {
            b.put_cf(m_cf, merkle_key(*l, *i), h);
        }
        let meta_cf = self.cf(CF_META)?;
        if let Some(c) = &w.config {
            b.put_cf(meta_cf, META_CONFIG, codec::encode(c)?);
        }
        for (k, v) in &w.meta {
            if k.first() == Some(&0) {
                return Err(StoreError::Refused(
                    "meta keys starting with 0x00 are reserved".into(),
                ));
            }
            b.put_cf(meta_cf, k, v);
        }
        if let Some(t) = &w.tip {
            b.put_cf(meta_cf, META_TIP, codec::encode(t)?);
        }
        if let Some(l) = &w.learned {
            self.learned_into(&mut b, w.height, l)?;
        }
        self.db.write_opt(b, &self.write_opts()).map_err(backend)?;
        let mut cache = self.state_cache();
        for (s, st) in &w.shipment_states {
            cache.put(s, st);
        }
        drop(cache);
        if let Ok(header) = header_of(w.height, &w.block) {
            let mut headers = self.header_cache();
            headers.insert(w.height, header);
            while headers.len() > HEADER_CACHE_BLOCKS {
                headers.pop_first();
            }
        }
        Ok(())
    }
    fn learned_checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_LEARNED, LEARNED_CHECKPOINT_KEY)
    }
    fn learned_journal(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = learned_journal_key(from);
        let iter = self.db.iterator_cf(
            self.cf(CF_LEARNED)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(backend)?;
            if k.first() != Some(&b'j') {
                break;
            }
            let h: [u8; 8] = k
                .get(1..)
                .and_then(|r| r.try_into().ok())
                .ok_or_else(|| corrupt("learned journal key", "wrong length"))?;
            out.push((u64::from_be_bytes(h), v.to_vec()));
        }
        Ok(out)
    }
    fn put_learned(&self, height: u64, write: &LearnedWrite) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        self.learned_into(&mut b, height, write)?;
        self.db.write_opt(b, &self.write_opts()).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_io_probe_creates_the_directory_and_leaves_nothing_in_it() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("db");
        let _ = direct_io_supported(&dir);
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        // A path under a regular file can hold no database.
        let file = d.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(!direct_io_supported(&file.join("db")));
    }

    #[test]
    fn state_cache_keeps_the_newest_state_and_two_generations_at_most() {
        let mut c = StateCache::default();
        let st = |events| ShipmentState {
            events,
            ..ShipmentState::new(crate::event::Status::Booked)
        };
        c.put("S1", &st(1));
        c.put("S1", &st(2));
        assert_eq!(c.get("S1").map(|s| s.events), Some(2));
        for i in 0..STATE_CACHE_GENERATION {
            c.put(&format!("X{i}"), &st(9));
        }
        // S1 moved to the older generation, still the newest value.
        assert_eq!(c.get("S1").map(|s| s.events), Some(2));
        c.put("S1", &st(3));
        assert_eq!(c.get("S1").map(|s| s.events), Some(3));
        for i in 0..2 * STATE_CACHE_GENERATION {
            c.put(&format!("Y{i}"), &st(9));
        }
        assert_eq!(c.get("S1"), None, "dropped with its generation");
        assert!(c.newer.len() + c.older.len() <= 2 * STATE_CACHE_GENERATION);
    }
}
