//! The Raft log in its own RocksDB database.
//!
//! Column family `logs` maps a big-endian log index to the strictly encoded
//! entry followed by a checksum (the first [`CHECKSUM_LEN`] bytes of its
//! SHA-256), so an entry altered on disk is reported, not replayed; `raft_meta` holds the vote, the committed log id and the last
//! purged log id. Appends, truncations, purges and votes are written with
//! `sync = true` and the flush callback is called only after that write
//! returned. Entries read back are decoded strictly and must carry the index
//! of their key; anything else is reported as a storage error, never a panic.
//! RocksDB calls run on the blocking thread pool.
//!
//! The newest entries (up to [`RECENT_BYTES`] of encoded size) are also kept
//! decoded in memory, as a contiguous suffix of the stored log: the leader
//! reads each new entry once per follower and once to apply it, and a
//! follower reads it to apply, all shortly after the append. Served from
//! memory, those reads neither touch RocksDB nor decode again.

use crate::types::{NodeId, TypeConfig};
use ledger::codec;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogId,
    RaftLogReader, StorageError, StorageIOError, Vote,
};
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

const CF_LOGS: &str = "logs";
const CF_META: &str = "raft_meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

type SResult<T> = Result<T, StorageError<NodeId>>;

/// Bytes of SHA-256 stored after each encoded entry.
pub const CHECKSUM_LEN: usize = 8;

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let d = ledger::hash::sha256(bytes);
    let mut c = [0u8; CHECKSUM_LEN];
    c.copy_from_slice(&d.0[..CHECKSUM_LEN]);
    c
}

/// An entry's stored form: its strict encoding, then its checksum.
fn seal_entry(e: &Entry<TypeConfig>) -> Result<Vec<u8>, codec::CodecError> {
    let mut bytes = codec::encode(e)?;
    let c = checksum(&bytes);
    bytes.extend_from_slice(&c);
    Ok(bytes)
}

/// What [`RocksLogStore::verify`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCheck {
    /// Entries stored (after the purged prefix).
    pub entries: u64,
    /// Index of the last entry (or of the last purged one).
    pub last: Option<u64>,
    /// Term of the stored vote.
    pub vote_term: Option<u64>,
}

/// Encoded bytes of recent entries kept decoded in memory. An entry held
/// here costs its encoded bytes (a batch keeps them, see `TxBatch`) plus
/// about twice that decoded; 8 MiB is over a second of entries at 3,000
/// transactions per second, longer than replication and apply lag behind
/// the append.
pub const RECENT_BYTES: usize = 8 << 20;

/// A contiguous suffix of the stored log, decoded, with encoded sizes.
#[derive(Default)]
struct Recent {
    entries: BTreeMap<u64, (Entry<TypeConfig>, usize)>,
    bytes: usize,
}

impl Recent {
    fn push(&mut self, e: Entry<TypeConfig>, len: usize) {
        // Keep the suffix contiguous: an append that does not follow the
        // newest cached entry starts a new suffix.
        let follows = self
            .entries
            .last_key_value()
            .is_none_or(|(i, _)| i.checked_add(1) == Some(e.log_id.index));
        if !follows {
            self.clear();
        }
        self.bytes += len;
        self.entries.insert(e.log_id.index, (e, len));
        while self.bytes > RECENT_BYTES {
            match self.entries.pop_first() {
                Some((_, (_, n))) => self.bytes -= n,
                None => break,
            }
        }
    }

    /// Drop entries from `index` on.
    fn truncate(&mut self, index: u64) {
        let gone = self.entries.split_off(&index);
        self.bytes -= gone.values().map(|(_, n)| n).sum::<usize>();
    }

    /// Drop entries up to and including `index`.
    fn purge(&mut self, index: u64) {
        let keep = match index.checked_add(1) {
            Some(next) => self.entries.split_off(&next),
            None => BTreeMap::new(),
        };
        self.entries = keep;
        self.bytes = self.entries.values().map(|(_, n)| n).sum();
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries of `[start, end)` if the cache holds all of them.
    fn range(&self, start: u64, end: Bound<u64>) -> Option<Vec<Entry<TypeConfig>>> {
        let (&first, _) = self.entries.first_key_value()?;
        if start < first {
            return None;
        }
        Some(
            self.entries
                .range((Bound::Included(start), end))
                .map(|(_, (e, _))| e.clone())
                .collect(),
        )
    }
}

/// RocksDB-backed [`RaftLogStorage`]. Cloning shares the database and the
/// recent-entry cache (the clone is also the log reader).
#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<DB>,
    recent: Arc<Mutex<Recent>>,
}

fn recent(m: &Mutex<Recent>) -> MutexGuard<'_, Recent> {
    // Every update leaves the cache a valid suffix; a panic elsewhere cannot
    // leave it half-changed, and clearing it is always safe anyway.
    m.lock().unwrap_or_else(|p| {
        let mut g = p.into_inner();
        g.clear();
        g
    })
}

impl std::fmt::Debug for RocksLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksLogStore({})", self.db.path().display())
    }
}

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn decode_strict<T: Serialize + DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    codec::decode(bytes).map_err(|e| format!("corrupt {what}: {e}"))
}

fn index_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn key_index(k: &[u8]) -> Result<u64, String> {
    let b: [u8; 8] = k
        .try_into()
        .map_err(|_| format!("log key of {} bytes", k.len()))?;
    Ok(u64::from_be_bytes(b))
}

impl RocksLogStore {
    /// Open or create the log database at `path`.
    pub fn open(path: &Path) -> Result<Self, crate::ConsensusError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // A torn record at the end of the write-ahead log is a write that was
        // never acknowledged (appends are synced before they are): drop it.
        // A damaged record anywhere before the end is corruption: refuse to
        // open rather than silently lose acknowledged entries after it.
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
        opts.set_paranoid_checks(true);
        opts.create_missing_column_families(true);
        // Memtables capped as the ledger's are (an entry lives in one until
        // it is flushed, whether or not a snapshot has purged it since).
        opts.set_db_write_buffer_size(ledger::store::MEMTABLE_BUDGET_BYTES);
        // SST files bypass the page cache where the filesystem allows it.
        opts.set_use_direct_io_for_flush_and_compaction(ledger::store::direct_io_supported(path));
        ledger::store::limit_background_writes(&mut opts);
        // Entries are mostly sealed (encrypted) fields and live until the
        // next snapshot: compressing them costs CPU and saves almost nothing.
        let cfs = [CF_LOGS, CF_META].into_iter().map(|n| {
            let mut cf = Options::default();
            if n == CF_LOGS {
                cf.set_compression_type(rocksdb::DBCompressionType::None);
            }
            ColumnFamilyDescriptor::new(n, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)
            .map_err(|e| crate::ConsensusError::LogStore(e.to_string()))?;
        Ok(RocksLogStore {
            db: Arc::new(db),
            recent: Arc::new(Mutex::new(Recent::default())),
        })
    }

    /// Read every stored entry and the metadata, as the node does at startup
    /// before Raft runs: each entry must pass its checksum, decode strictly,
    /// carry the index of its key and follow its predecessor (consecutive
    /// indexes, terms never decreasing), and the vote, committed and purged
    /// ids must decode. The first problem is returned as an error naming it.
    pub fn verify(&self) -> Result<LogCheck, String> {
        let db = &self.db;
        let vote: Option<Vote<NodeId>> = Self::get_meta(db, KEY_VOTE).map_err(|e| e.to_string())?;
        let _: Option<Option<LogId<NodeId>>> =
            Self::get_meta(db, KEY_COMMITTED).map_err(|e| e.to_string())?;
        let purged: Option<LogId<NodeId>> =
            Self::get_meta(db, KEY_PURGED).map_err(|e| e.to_string())?;
        let cf = Self::cf(db, CF_LOGS).map_err(|e| e.to_string())?;
        let mut check = LogCheck {
            entries: 0,
            last: purged.map(|l| l.index),
            vote_term: vote.map(|v| v.leader_id.term),
        };
        let mut prev: Option<LogId<NodeId>> = purged;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| format!("raft log: {e}"))?;
            let e = Self::decode_entry(&k, &v).map_err(|e| e.to_string())?;
            let id = e.log_id;
            if let Some(p) = prev {
                if id.index != p.index + 1 || id.leader_id.term < p.leader_id.term {
                    return Err(format!(
                        "corrupt raft log: entry {} (term {}) does not follow entry {} (term {})",
                        id.index, id.leader_id.term, p.index, p.leader_id.term
                    ));
                }
            }
            prev = Some(id);
            check.entries += 1;
            check.last = Some(id.index);
        }
        Ok(check)
    }

    /// The stored vote, read directly (repair keeps it across a rebuild, so
    /// the node never votes twice in one term).
    pub fn stored_vote(&self) -> Result<Option<Vote<NodeId>>, String> {
        Self::get_meta(&self.db, KEY_VOTE).map_err(|e| e.to_string())
    }

    /// Store `vote`, synced (repair only; Raft itself goes through `save_vote`).
    pub fn put_vote(&self, vote: &Vote<NodeId>) -> Result<(), String> {
        Self::put_meta(&self.db, KEY_VOTE, vote, true).map_err(|e| e.to_string())
    }

    /// The stored bytes of the last entry with its index (corruption tests
    /// and repair tools only).
    pub fn last_raw(&self) -> Result<Option<(u64, Vec<u8>)>, crate::ConsensusError> {
        let err = |e: String| crate::ConsensusError::LogStore(e);
        let cf = Self::cf(&self.db, CF_LOGS).map_err(|e| err(e.to_string()))?;
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(|e| err(e.to_string()))?;
                Ok(Some((key_index(&k).map_err(err)?, v.to_vec())))
            }
        }
    }

    /// Overwrite the stored bytes of entry `index` (corruption tests and
    /// repair tools only).
    pub fn put_raw(&self, index: u64, bytes: &[u8]) -> Result<(), crate::ConsensusError> {
        recent(&self.recent).clear();
        let cf = Self::cf(&self.db, CF_LOGS)
            .map_err(|e| crate::ConsensusError::LogStore(e.to_string()))?;
        self.db
            .put_cf_opt(cf, index_key(index), bytes, &synced())
            .map_err(|e| crate::ConsensusError::LogStore(e.to_string()))
    }

    /// Run `f` against the database on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> SResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&DB) -> SResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?
    }

    fn cf<'a>(db: &'a DB, name: &str) -> SResult<&'a rocksdb::ColumnFamily> {
        db.cf_handle(name).ok_or_else(|| {
            io_err(
                ErrorSubject::Store,
                ErrorVerb::Read,
                format!("missing column family {name}"),
            )
        })
    }

    fn get_meta<T: Serialize + DeserializeOwned>(
        db: &DB,
        key: &'static [u8],
    ) -> SResult<Option<T>> {
        let subject = || ErrorSubject::Store;
        match db
            .get_cf(Self::cf(db, CF_META)?, key)
            .map_err(|e| io_err(subject(), ErrorVerb::Read, e))?
        {
            None => Ok(None),
            Some(b) => decode_strict(&b, &String::from_utf8_lossy(key))
                .map(Some)
                .map_err(|e| io_err(subject(), ErrorVerb::Read, e)),
        }
    }

    fn put_meta<T: Serialize>(db: &DB, key: &'static [u8], v: &T, sync: bool) -> SResult<()> {
        let bytes =
            codec::encode(v).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let opts = if sync {
            synced()
        } else {
            WriteOptions::default()
        };
        db.put_cf_opt(Self::cf(db, CF_META)?, key, bytes, &opts)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    fn last_entry_id(db: &DB) -> SResult<Option<LogId<NodeId>>> {
        let mut it = db.iterator_cf(Self::cf(db, CF_LOGS)?, IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                let e = Self::decode_entry(&k, &v)?;
                Ok(Some(e.log_id))
            }
        }
    }

    fn decode_entry(k: &[u8], v: &[u8]) -> SResult<Entry<TypeConfig>> {
        let index = key_index(k).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let bad = |what: &str| io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read, what);
        let Some(split) = v.len().checked_sub(CHECKSUM_LEN) else {
            return Err(bad("corrupt log entry: shorter than its checksum"));
        };
        let (v, sum) = v.split_at(split);
        if checksum(v) != sum {
            return Err(bad("corrupt log entry: checksum does not match"));
        }
        let entry: Entry<TypeConfig> = decode_strict(v, "log entry")
            .map_err(|e| io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read, e))?;
        if entry.get_log_id().index != index {
            return Err(io_err(
                ErrorSubject::LogIndex(index),
                ErrorVerb::Read,
                format!(
                    "entry under key {index} has index {}",
                    entry.get_log_id().index
                ),
            ));
        }
        Ok(entry)
    }

    fn read_range(db: &DB, start: u64, end: Bound<u64>) -> SResult<Vec<Entry<TypeConfig>>> {
        let mut out = Vec::new();
        let it = db.iterator_cf(
            Self::cf(db, CF_LOGS)?,
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let index =
                key_index(&k).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let past_end = match end {
                Bound::Included(e) => index > e,
                Bound::Excluded(e) => index >= e,
                Bound::Unbounded => false,
            };
            if past_end {
                break;
            }
            out.push(Self::decode_entry(&k, &v)?);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> SResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = range.end_bound().cloned();
        if let Some(v) = recent(&self.recent).range(start, end) {
            return Ok(v);
        }
        self.blocking(move |db| Self::read_range(db, start, end))
            .await
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = RocksLogStore;

    async fn get_log_state(&mut self) -> SResult<LogState<TypeConfig>> {
        self.blocking(|db| {
            let last_purged: Option<LogId<NodeId>> = Self::get_meta(db, KEY_PURGED)?;
            let last = Self::last_entry_id(db)?.or(last_purged);
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> SResult<()> {
        let vote = *vote;
        self.blocking(move |db| Self::put_meta(db, KEY_VOTE, &vote, true))
            .await
    }

    async fn read_vote(&mut self) -> SResult<Option<Vote<NodeId>>> {
        self.blocking(|db| Self::get_meta(db, KEY_VOTE)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> SResult<()> {
        // Only a hint for faster restart: not synced.
        self.blocking(move |db| Self::put_meta(db, KEY_COMMITTED, &committed, false))
            .await
    }

    async fn read_committed(&mut self) -> SResult<Option<LogId<NodeId>>> {
        self.blocking(
            |db| Ok(Self::get_meta::<Option<LogId<NodeId>>>(db, KEY_COMMITTED)?.flatten()),
        )
        .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> SResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Encode on the blocking pool too: a batch entry is up to a few MB,
        // which must not stall the Raft core's async thread.
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let cache = self.recent.clone();
        let res = self
            .blocking(move |db| {
                let cf = Self::cf(db, CF_LOGS)?;
                let mut b = WriteBatch::default();
                let mut lens = Vec::with_capacity(entries.len());
                for e in &entries {
                    let bytes = seal_entry(e).map_err(|err| {
                        io_err(ErrorSubject::Log(e.log_id), ErrorVerb::Write, err)
                    })?;
                    lens.push(bytes.len());
                    b.put_cf(cf, index_key(e.log_id.index), bytes);
                }
                db.write_opt(b, &synced())
                    .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
                let mut r = recent(&cache);
                for (e, len) in entries.into_iter().zip(lens) {
                    r.push(e, len);
                }
                Ok(())
            })
            .await;
        // The callback is called only once the synced write has returned.
        match &res {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        res
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> SResult<()> {
        recent(&self.recent).truncate(log_id.index);
        self.blocking(move |db| {
            let cf = Self::cf(db, CF_LOGS)?;
            let mut b = WriteBatch::default();
            b.delete_range_cf(cf, index_key(log_id.index), index_key(u64::MAX));
            b.delete_cf(cf, index_key(u64::MAX));
            db.write_opt(b, &synced())
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> SResult<()> {
        recent(&self.recent).purge(log_id.index);
        self.blocking(move |db| {
            let bytes = codec::encode(&log_id)
                .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
            let mut b = WriteBatch::default();
            b.put_cf(Self::cf(db, CF_META)?, KEY_PURGED, bytes);
            b.delete_range_cf(
                Self::cf(db, CF_LOGS)?,
                index_key(0),
                index_key(log_id.index.saturating_add(1)),
            );
            db.write_opt(b, &synced())
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(i: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
            payload: EntryPayload::Blank,
        }
    }

    fn indices(v: Option<Vec<Entry<TypeConfig>>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn recent_entries_stay_a_bounded_contiguous_suffix() {
        let mut r = Recent::default();
        for i in 5..10 {
            r.push(entry(i), 10);
        }
        assert_eq!(indices(r.range(6, Bound::Excluded(8))), Some(vec![6, 7]));
        assert_eq!(indices(r.range(7, Bound::Unbounded)), Some(vec![7, 8, 9]));
        assert_eq!(
            indices(r.range(4, Bound::Unbounded)),
            None,
            "before the suffix"
        );
        r.truncate(8);
        assert_eq!(indices(r.range(5, Bound::Unbounded)), Some(vec![5, 6, 7]));
        r.purge(5);
        assert_eq!(indices(r.range(6, Bound::Unbounded)), Some(vec![6, 7]));
        assert_eq!(r.bytes, 20);
        // A gap starts a new suffix.
        r.push(entry(20), 10);
        assert_eq!(indices(r.range(6, Bound::Unbounded)), None);
        assert_eq!(indices(r.range(20, Bound::Unbounded)), Some(vec![20]));
        // The byte bound evicts the oldest.
        r.push(entry(21), RECENT_BYTES);
        assert_eq!(indices(r.range(21, Bound::Unbounded)), Some(vec![21]));
        assert_eq!(r.bytes, RECENT_BYTES);
    }
}
