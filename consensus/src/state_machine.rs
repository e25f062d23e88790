//! The ledger as openraft state machine.
//!
//! Every committed entry goes through the same deterministic path on every
//! node, voter or learner: a `Normal` batch becomes exactly one block
//! (`Ledger::build_block` then `Ledger::commit`), with the entry's log id
//! and the last membership written in the same atomic RocksDB batch as the
//! block, so "block appended" and "log id applied" cannot disagree after a
//! crash. Blank and membership entries only record the applied state.
//!
//! Snapshots are RocksDB checkpoints of the ledger database packed into one
//! file (see `snapshot`), which openraft streams in chunks. Installing one
//! unpacks it into a fresh directory, checks it, and swaps it in for the
//! ledger directory by rename. Directories used, next to `ledger_dir`:
//! `<ledger_dir>.snapshots/` (snapshot files), `<ledger_dir>.incoming/` and
//! `<ledger_dir>.old/` (transient, during an install; cleaned up on open).

use crate::snapshot::{self, SnapshotHeader};
use crate::types::{ApplyReport, Batch, NodeId, PeerNode, TypeConfig};
use ledger::chain::{
    BlockContext, ContentOutcome, ContentValidator, Ledger, LedgerError, Rejection,
};
use ledger::config::ChainConfig;
use ledger::store::{RocksStore, Store, Tip};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Ledger metadata key holding the applied log id and last membership.
pub const APPLIED_META_KEY: &[u8] = b"raft/applied";

/// Meta key of the first content divergence this node saw (a
/// [`Divergence`]); while it is there the node cosigns nothing at or above
/// its height (ADR 0014).
pub const DIVERGENCE_META_KEY: &[u8] = b"content/divergence";

/// Evidence of a leader-recorded outcome this customs node's own judgement
/// contradicts: written with the block it concerns, kept until an operator
/// clears it (`customs-node --clear-divergence`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Divergence {
    /// Height of the block holding the transaction.
    pub height: u64,
    /// The transaction.
    pub tx_id: ledger::Hash32,
    /// The proposing leader's party.
    pub leader: String,
    /// Raft term and index of the entry.
    pub raft_term: u64,
    /// Raft log index of the entry.
    pub raft_index: u64,
    /// The outcome the leader recorded (sealed).
    pub recorded: ContentOutcome,
    /// This node's outcome (sealed), when it could judge.
    pub own: Option<ContentOutcome>,
}

/// The divergence this node keeps as evidence, if any.
pub fn divergence(store: &RocksStore) -> Result<Option<Divergence>, String> {
    match store.meta(DIVERGENCE_META_KEY).map_err(|e| e.to_string())? {
        Some(b) => ledger::codec::decode(&b)
            .map(Some)
            .map_err(|e| format!("divergence record: {e}")),
        None => Ok(None),
    }
}
const CURRENT_META: &str = "current.meta";

type SResult<T> = Result<T, StorageError<NodeId>>;

/// Applied state as persisted in the ledger's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct AppliedState {
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, PeerNode>,
}

/// Which file holds the current snapshot, and its meta.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CurrentSnapshot {
    file: String,
    meta: SnapshotMeta<NodeId, PeerNode>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn read_sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, String> {
    m.lock()
        .map_err(|_| "state machine lock poisoned".to_string())
}

/// Where the snapshots of the ledger at `ledger_dir` live.
pub(crate) fn snapshot_dir_of(ledger_dir: &Path) -> PathBuf {
    sibling(ledger_dir, ".snapshots")
}

fn sibling(p: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

struct Shared {
    ledger: Mutex<Option<Ledger<RocksStore>>>,
    /// A second handle on the ledger's database for readers (the API):
    /// reading committed blocks takes only this lock's shared side, never
    /// the ledger lock that apply needs. A snapshot install takes it
    /// exclusively while it swaps the database.
    reader: std::sync::RwLock<Option<RocksStore>>,
    ledger_dir: PathBuf,
    snapshot_dir: PathBuf,
    genesis: ChainConfig,
    genesis_time_ms: u64,
    /// Serialises snapshot file operations (build, install, read).
    snap_lock: Mutex<()>,
    /// Blocks just applied, for the one reader that folds every block in
    /// height order (the KPI follower), so it need not read them back
    /// from the store and decode them again.
    applied: Mutex<AppliedBlocks>,
}

/// Most transactions [`AppliedBlocks`] holds (older blocks are dropped
/// first; their reader then reads them from the store).
const APPLIED_BLOCK_TXS: usize = 4096;

/// Recently applied blocks in height order, kept only once a reader has
/// asked for them ([`LedgerHandle::keep_applied_blocks`]).
#[derive(Default)]
struct AppliedBlocks {
    enabled: bool,
    blocks: std::collections::VecDeque<Arc<ledger::Block>>,
    txs: usize,
}

impl AppliedBlocks {
    fn push(&mut self, block: Arc<ledger::Block>) {
        self.txs += block.txs.len();
        self.blocks.push_back(block);
        while self.txs > APPLIED_BLOCK_TXS && self.blocks.len() > 1 {
            self.pop();
        }
    }

    fn pop(&mut self) -> Option<Arc<ledger::Block>> {
        let b = self.blocks.pop_front()?;
        self.txs -= b.txs.len();
        Some(b)
    }

    /// The block at `height`, dropping every block below it.
    fn take(&mut self, height: u64) -> Option<Arc<ledger::Block>> {
        while self.blocks.front()?.header.height < height {
            self.pop();
        }
        if self.blocks.front()?.header.height == height {
            self.pop()
        } else {
            None
        }
    }

    fn clear(&mut self) {
        self.blocks.clear();
        self.txs = 0;
    }
}

impl Shared {
    fn with_store<R>(&self, f: impl FnOnce(&RocksStore) -> R) -> Result<R, String> {
        let guard = self
            .reader
            .read()
            .map_err(|_| "ledger reader lock poisoned".to_string())?;
        let store = guard
            .as_ref()
            .ok_or_else(|| "ledger is closed (snapshot install failed?)".to_string())?;
        Ok(f(store))
    }

    fn with_ledger<R>(&self, f: impl FnOnce(&Ledger<RocksStore>) -> R) -> Result<R, String> {
        let guard = lock(&self.ledger)?;
        let ledger = guard
            .as_ref()
            .ok_or_else(|| "ledger is closed (snapshot install failed?)".to_string())?;
        Ok(f(ledger))
    }

    fn read_current(&self) -> Result<Option<CurrentSnapshot>, String> {
        let p = self.snapshot_dir.join(CURRENT_META);
        match fs::read(&p) {
            Ok(b) => ledger::codec::decode(&b)
                .map(Some)
                .map_err(|e| format!("corrupt {}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Make `file` (already in the snapshot dir, fsynced) the current
    /// snapshot, atomically, and delete older snapshot files.
    fn set_current(&self, file: &str, meta: &SnapshotMeta<NodeId, PeerNode>) -> Result<(), String> {
        let cur = CurrentSnapshot {
            file: file.to_string(),
            meta: meta.clone(),
        };
        let bytes = ledger::codec::encode(&cur).map_err(|e| e.to_string())?;
        let tmp = self.snapshot_dir.join("current.meta.tmp");
        {
            let mut f = fs::File::create(&tmp).map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut f, &bytes).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
        }
        fs::rename(&tmp, self.snapshot_dir.join(CURRENT_META)).map_err(|e| e.to_string())?;
        snapshot::sync_dir(&self.snapshot_dir).map_err(|e| e.to_string())?;
        for ent in fs::read_dir(&self.snapshot_dir).map_err(|e| e.to_string())? {
            let ent = ent.map_err(|e| e.to_string())?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if name != file && name != CURRENT_META {
                let p = ent.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
        Ok(())
    }
}

fn read_applied(ledger: &Ledger<RocksStore>) -> Result<AppliedState, String> {
    match ledger
        .store()
        .meta(APPLIED_META_KEY)
        .map_err(|e| e.to_string())?
    {
        None => Ok(AppliedState::default()),
        Some(b) => ledger::codec::decode(&b).map_err(|e| format!("corrupt applied state: {e}")),
    }
}

fn open_ledger(
    dir: &Path,
    genesis: &ChainConfig,
    time_ms: u64,
) -> Result<Ledger<RocksStore>, String> {
    let mut store = RocksStore::open(dir).map_err(|e| e.to_string())?;
    // The synced Raft log is this database's write-ahead log (ADR 0023):
    // a block commit is written to RocksDB's own log but not fsynced. A
    // killed process loses nothing (the data is in the page cache); a
    // machine that loses power may come back with the newest blocks
    // missing, all or nothing per block, and openraft applies those entries
    // again from the log (it purges only entries a snapshot holds, and a
    // snapshot's checkpoint flushes the database first).
    store.set_sync(false);
    Ledger::init(store, genesis.clone(), time_ms).map_err(|e| e.to_string())
}

/// Read access to the node's ledger (for queries, metrics and tests).
/// Cloning is cheap.
#[derive(Clone)]
pub struct LedgerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LedgerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerHandle({})", self.shared.ledger_dir.display())
    }
}

impl LedgerHandle {
    /// Run `f` with the ledger locked (keep it short: apply waits).
    pub fn with_ledger<R>(
        &self,
        f: impl FnOnce(&Ledger<RocksStore>) -> R,
    ) -> Result<R, crate::ConsensusError> {
        self.shared
            .with_ledger(f)
            .map_err(crate::ConsensusError::Raft)
    }

    /// Read committed data through the shared database handle, without
    /// the ledger lock (apply goes on meanwhile). What `f` reads is
    /// committed; its tip may be a block newer than the ledger's at entry.
    pub fn with_store<R>(
        &self,
        f: impl FnOnce(&RocksStore) -> R,
    ) -> Result<R, crate::ConsensusError> {
        self.shared
            .with_store(f)
            .map_err(crate::ConsensusError::Raft)
    }

    /// The ledger's newest block.
    pub fn tip(&self) -> Result<Tip, crate::ConsensusError> {
        self.with_ledger(|l| l.tip().clone())
    }

    /// From now on keep applied blocks for [`LedgerHandle::take_applied_block`]
    /// (up to a bound; for one reader that folds every block in order).
    pub fn keep_applied_blocks(&self) {
        lock(&self.shared.applied)
            .map(|mut a| a.enabled = true)
            .unwrap_or_default();
    }

    /// The block at `height` as this node applied it, if it is still
    /// kept; blocks below `height` are dropped. `None` means: read it from
    /// the store.
    pub fn take_applied_block(&self, height: u64) -> Option<Arc<ledger::Block>> {
        lock(&self.shared.applied).ok()?.take(height)
    }
}

/// The ledger state machine. See the module docs.
pub struct LedgerStateMachine {
    shared: Arc<Shared>,
    content: Arc<Mutex<Box<dyn ContentValidator + Send>>>,
}

impl std::fmt::Debug for LedgerStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LedgerStateMachine({})",
            self.shared.ledger_dir.display()
        )
    }
}

impl LedgerStateMachine {
    /// Open (or initialise with `genesis`) the ledger at `ledger_dir`,
    /// finishing or rolling back an interrupted snapshot install first.
    pub fn open(
        ledger_dir: &Path,
        genesis: ChainConfig,
        genesis_time_ms: u64,
        content: Box<dyn ContentValidator + Send>,
    ) -> Result<Self, crate::ConsensusError> {
        let old = sibling(ledger_dir, ".old");
        let incoming = sibling(ledger_dir, ".incoming");
        if !ledger_dir.exists() && old.exists() {
            // Crashed between the two renames of an install: roll back.
            fs::rename(&old, ledger_dir)?;
        }
        if old.exists() {
            fs::remove_dir_all(&old)?;
        }
        if incoming.exists() {
            fs::remove_dir_all(&incoming)?;
        }
        let snapshot_dir = snapshot_dir_of(ledger_dir);
        fs::create_dir_all(&snapshot_dir)?;
        let ledger = open_ledger(ledger_dir, &genesis, genesis_time_ms)
            .map_err(crate::ConsensusError::Raft)?;
        let mut content = content;
        restore_learned(&ledger, content.as_mut()).map_err(crate::ConsensusError::Raft)?;
        Ok(LedgerStateMachine {
            shared: Arc::new(Shared {
                reader: std::sync::RwLock::new(Some(ledger.store().clone())),
                ledger: Mutex::new(Some(ledger)),
                ledger_dir: ledger_dir.to_path_buf(),
                snapshot_dir,
                genesis,
                genesis_time_ms,
                snap_lock: Mutex::new(()),
                applied: Mutex::new(AppliedBlocks::default()),
            }),
            content: Arc::new(Mutex::new(content)),
        })
    }

    /// A read handle on the ledger.
    pub fn handle(&self) -> LedgerHandle {
        LedgerHandle {
            shared: self.shared.clone(),
        }
    }
}

/// Bring the content validator's learned state to the ledger's tip: from
/// the stored checkpoint and journal, and the blocks they do not cover
/// (ADR 0015). A stored record that opens but is damaged is an error.
fn restore_learned(
    ledger: &Ledger<RocksStore>,
    content: &mut dyn ContentValidator,
) -> Result<(), String> {
    let start = std::time::Instant::now();
    let r = ledger
        .restore_learned(content)
        .map_err(|e| format!("restoring the learned state: {e}"))?;
    if r != ledger::chain::LearnedRestore::default() {
        tracing::info!(
            checkpoint = r.checkpoint,
            journal_records = r.journal,
            blocks_relearned = r.replayed,
            height = ledger.tip().height,
            ms = start.elapsed().as_millis() as u64,
            "learned state restored"
        );
    }
    Ok(())
}

/// Bring `content`'s learned state to the one `batch` was judged against.
/// A leader folds ahead as it judges later batches; that is fine while every
/// declaration of the batch is one it judged itself. Otherwise (it lost its
/// lead, or forgot its own judgement) it takes the state every node has from
/// the stored records (ADR 0016).
fn prepare_judging(
    ledger: &Ledger<RocksStore>,
    content: &mut dyn ContentValidator,
    at: u64,
    batch: &Batch,
) -> Result<(), String> {
    let declarations: Vec<(&ledger::Hash32, &ContentOutcome)> = batch
        .txs
        .txs()
        .iter()
        .zip(batch.txs.ids())
        .zip(batch.outcomes.iter())
        .filter(|((stx, _), _)| stx.tx.kind.carries_declaration())
        .map(|((_, id), o)| (id, o))
        .collect();
    if declarations.is_empty() {
        return Ok(());
    }
    if content.prepare_judging(at)? {
        return Ok(());
    }
    if declarations
        .iter()
        .all(|(id, o)| content.own_outcome(id).as_ref() == Some(*o))
    {
        return Ok(());
    }
    tracing::info!(
        at,
        "the learned state is folded past the one this batch was judged against; restoring it"
    );
    restore_learned(ledger, content)?;
    if content.prepare_judging(at)? {
        Ok(())
    } else {
        Err(format!("cannot bring the learned state back to block {at}"))
    }
}

fn tip_report(ledger: &Ledger<RocksStore>) -> ApplyReport {
    let tip = ledger.tip();
    ApplyReport {
        height: tip.height,
        block_hash: tip.hash,
        accepted: Vec::new(),
        rejected: Vec::new(),
        results: Vec::new(),
    }
}

/// Content outcomes this node disagreed with (process-wide; see metrics).
pub static DIVERGENCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn apply_batch(
    ledger: &mut Ledger<RocksStore>,
    content: &mut dyn ContentValidator,
    log_id: LogId<NodeId>,
    batch: Batch,
    state: &AppliedState,
) -> Result<(ApplyReport, ledger::Block), String> {
    // Declarations commit only if the leader judged them against the state
    // this block's height calls for (ADR 0014, 0016): public data, so every
    // node agrees on it.
    let judged_at = ledger::validate::learned::judged_through(ledger.tip().height + 1);
    let stale = batch.judged_at != Some(judged_at);
    if !stale {
        prepare_judging(ledger, content, judged_at, &batch)?;
    }
    let ctx = BlockContext {
        raft_term: log_id.leader_id.term,
        raft_index: log_id.index,
        ..batch.ctx
    };
    let mut refused = Vec::new();
    let mut diverged: Option<Divergence> = None;
    // Build with the leader's recorded content outcomes (ADR 0001); a
    // validator that can judge them says whether it agrees.
    for (((stx, id), o), i) in batch
        .txs
        .txs()
        .iter()
        .zip(batch.txs.ids())
        .zip(batch.outcomes.iter())
        .zip(0..)
    {
        if stale && stx.tx.kind.carries_declaration() {
            continue;
        }
        if !content.agrees(ledger.config(), stx, id, o) {
            if diverged.is_none() {
                diverged = Some(Divergence {
                    height: ledger.tip().height + 1,
                    tx_id: *id,
                    leader: ctx.proposer.clone(),
                    raft_term: log_id.leader_id.term,
                    raft_index: log_id.index,
                    recorded: o.clone(),
                    own: content.own_outcome(id),
                });
            }
            tracing::error!(tx = %id, index = i, "content outcome recorded by the leader differs from this node's judgement");
            DIVERGENCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let mut recorded = ledger::chain::RecordedContent::from_outcomes(
        batch
            .txs
            .ids()
            .iter()
            .copied()
            .zip(batch.outcomes.iter().cloned()),
    )
    .stale(stale);
    let built = match ledger.build_block_from(&batch.txs, &ctx, &mut recorded) {
        Ok(b) => b,
        Err(LedgerError::BatchTooLarge(msg)) => {
            // Deterministic on every node: an empty block, all refused.
            for id in batch.txs.ids() {
                refused.push((
                    *id,
                    Rejection {
                        code: "BATCH_TOO_LARGE".into(),
                        message: msg.clone(),
                    },
                ));
            }
            ledger
                .build_block(&[], &ctx, &mut recorded)
                .map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let hash = built.hash;
    let meta = ledger::codec::encode(state).map_err(|e| e.to_string())?;
    let mut extra_meta = vec![(APPLIED_META_KEY.to_vec(), meta)];
    if let Some(d) = diverged {
        // Kept with the block it concerns; the first one stays.
        let kept = ledger
            .store()
            .meta(DIVERGENCE_META_KEY)
            .map_err(|e| e.to_string())?;
        if kept.is_none() {
            tracing::error!(
                height = d.height,
                tx = %d.tx_id,
                leader = %d.leader,
                "content outcome recorded by the leader differs from this node's: cosigning stops at this block until an operator clears it"
            );
            extra_meta.push((
                DIVERGENCE_META_KEY.to_vec(),
                ledger::codec::encode(&d).map_err(|e| e.to_string())?,
            ));
        }
    }
    let (block, mut rejected) = ledger
        .commit(built, extra_meta, content)
        .map_err(|e| e.to_string())?;
    rejected.extend(refused);
    let report = ApplyReport {
        height: block.header.height,
        block_hash: hash,
        accepted: block
            .results
            .iter()
            .enumerate()
            .map(|(i, r)| (r.tx_id, i as u32))
            .collect(),
        rejected,
        // Filled by the caller, which decides whether the block is kept.
        results: Vec::new(),
    };
    Ok((report, block))
}

impl RaftStateMachine<TypeConfig> for LedgerStateMachine {
    type SnapshotBuilder = LedgerSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> SResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerNode>)> {
        let shared = self.shared.clone();
        let st = tokio::task::spawn_blocking(move || shared.with_ledger(read_applied)?)
            .await
            .map_err(read_sm_err)?
            .map_err(read_sm_err)?;
        Ok((st.applied, st.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<ApplyReport>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let shared = self.shared.clone();
        let content = self.content.clone();
        tokio::task::spawn_blocking(move || -> SResult<Vec<ApplyReport>> {
            let mut guard = lock(&shared.ledger).map_err(sm_err)?;
            let ledger = guard.as_mut().ok_or_else(|| sm_err("ledger is closed"))?;
            let mut content = lock(&content).map_err(sm_err)?;
            let mut state = read_applied(ledger).map_err(sm_err)?;
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let log_id = e.log_id;
                state.applied = Some(log_id);
                let apply_err = |m: String| {
                    StorageError::from(StorageIOError::apply(log_id, AnyError::error(m)))
                };
                match e.payload {
                    EntryPayload::Blank => {
                        let b =
                            ledger::codec::encode(&state).map_err(|e| apply_err(e.to_string()))?;
                        ledger
                            .store()
                            .put_meta(APPLIED_META_KEY, &b)
                            .map_err(|e| apply_err(e.to_string()))?;
                        out.push(tip_report(ledger));
                    }
                    EntryPayload::Membership(m) => {
                        state.membership = StoredMembership::new(Some(log_id), m);
                        let b =
                            ledger::codec::encode(&state).map_err(|e| apply_err(e.to_string()))?;
                        ledger
                            .store()
                            .put_meta(APPLIED_META_KEY, &b)
                            .map_err(|e| apply_err(e.to_string()))?;
                        out.push(tip_report(ledger));
                    }
                    EntryPayload::Normal(batch) => {
                        let (mut report, mut block) =
                            apply_batch(ledger, &mut **content, log_id, batch, &state)
                                .map_err(apply_err)?;
                        let mut applied = lock(&shared.applied).map_err(sm_err)?;
                        if applied.enabled {
                            report.results = block.results.clone();
                            applied.push(Arc::new(block));
                        } else {
                            report.results = std::mem::take(&mut block.results);
                        }
                        out.push(report);
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(sm_err)?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        LedgerSnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<tokio::fs::File>> {
        let dir = self.shared.snapshot_dir.clone();
        // An unlinked temporary file: nothing is left behind if the
        // transfer is abandoned.
        let f = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        Ok(Box::new(tokio::fs::File::from_std(f)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> SResult<()> {
        let received = snapshot.into_std().await;
        let shared = self.shared.clone();
        let content = self.content.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            install(&shared, &meta, received)?;
            // What the validators learned comes with the installed chain
            // (locks in apply's order: ledger, then content).
            shared.with_ledger(|l| -> Result<(), String> {
                let mut content = lock(&content)?;
                restore_learned(l, content.as_mut())
            })?
        })
        .await
        .map_err(snap_err)?
        .map_err(snap_err)
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || -> Result<Option<Snapshot<TypeConfig>>, String> {
            let _s = lock(&shared.snap_lock)?;
            let Some(cur) = shared.read_current()? else {
                return Ok(None);
            };
            let f =
                fs::File::open(shared.snapshot_dir.join(&cur.file)).map_err(|e| e.to_string())?;
            Ok(Some(Snapshot {
                meta: cur.meta,
                snapshot: Box::new(tokio::fs::File::from_std(f)),
            }))
        })
        .await
        .map_err(snap_err)?
        .map_err(|e| StorageIOError::read_snapshot(None, AnyError::error(e)).into())
    }
}

fn install(
    shared: &Shared,
    meta: &SnapshotMeta<NodeId, PeerNode>,
    mut received: fs::File,
) -> Result<(), String> {
    let _s = lock(&shared.snap_lock)?;
    let e = |e: std::io::Error| e.to_string();
    // 1. Keep a copy as our current snapshot file (to serve other nodes).
    let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
    let file = format!("snap-{index}-{}.snap", now_nanos());
    let tmp = shared.snapshot_dir.join(format!("{file}.tmp"));
    received.seek(SeekFrom::Start(0)).map_err(e)?;
    {
        let mut out = fs::File::create(&tmp).map_err(e)?;
        std::io::copy(&mut received, &mut out).map_err(e)?;
        out.sync_all().map_err(e)?;
    }
    drop(received);
    // 2. Unpack into a fresh directory and check it.
    let incoming = sibling(&shared.ledger_dir, ".incoming");
    if incoming.exists() {
        fs::remove_dir_all(&incoming).map_err(e)?;
    }
    let header = snapshot::unpack(fs::File::open(&tmp).map_err(e)?, &incoming)
        .map_err(|x| format!("bad snapshot: {x}"))?;
    if header.applied != meta.last_log_id || header.membership != meta.last_membership {
        return Err(format!(
            "snapshot content (applied {:?}) does not match its meta (last log {:?})",
            header.applied, meta.last_log_id
        ));
    }
    {
        let candidate = open_ledger(&incoming, &shared.genesis, shared.genesis_time_ms)
            .map_err(|x| format!("snapshot ledger does not open: {x}"))?;
        let st = read_applied(&candidate)?;
        if st.applied != header.applied
            || st.membership != header.membership
            || candidate.tip().height != header.tip_height
            || candidate.tip().hash != header.tip_hash
        {
            return Err("snapshot ledger does not match its header".into());
        }
        prove_snapshot(shared, &candidate)?;
    }
    // 3. Swap directories.
    let old = sibling(&shared.ledger_dir, ".old");
    let mut guard = lock(&shared.ledger)?;
    // Readers finish first: the old database closes with its last handle.
    let mut reader = shared
        .reader
        .write()
        .map_err(|_| "ledger reader lock poisoned".to_string())?;
    drop(reader.take());
    drop(guard.take());
    lock(&shared.applied)?.clear();
    fs::rename(&shared.ledger_dir, &old).map_err(e)?;
    fs::rename(&incoming, &shared.ledger_dir).map_err(e)?;
    snapshot::sync_dir(&parent_of(&shared.ledger_dir)).map_err(e)?;
    let reopened = open_ledger(&shared.ledger_dir, &shared.genesis, shared.genesis_time_ms)?;
    *reader = Some(reopened.store().clone());
    *guard = Some(reopened);
    drop(reader);
    drop(guard);
    fs::remove_dir_all(&old).map_err(e)?;
    // 4. Record the snapshot file as current.
    fs::rename(&tmp, shared.snapshot_dir.join(&file)).map_err(e)?;
    shared.set_current(&file, meta)?;
    tracing::info!(
        last_log_id = ?meta.last_log_id,
        tip = header.tip_height,
        "installed ledger snapshot"
    );
    Ok(())
}

/// A received snapshot must prove itself before it replaces this node's
/// ledger (ADR 0011): its stored chain passes the full integrity walk of
/// the startup check; it agrees with this node's own ledger tree on every
/// height both hold (this node's ledger is committed history, so a snapshot
/// that forks it is refused whoever sent it); and its newest cosigned
/// checkpoint, when that carries a quorum of valid cosignatures under the
/// snapshot's committed config, is the snapshot's own checkpoint at that
/// height.
fn prove_snapshot(shared: &Shared, candidate: &Ledger<RocksStore>) -> Result<(), String> {
    candidate
        .verify_store(|_, _| {})
        .map_err(|x| format!("snapshot ledger fails the integrity walk: {x}"))?;
    let own = {
        let guard = lock(&shared.ledger)?;
        match guard.as_ref() {
            Some(l) => {
                let h = l.tip().height.min(candidate.tip().height);
                Some((h, l.checkpoint_at(h).map_err(|x| x.to_string())?))
            }
            None => None,
        }
    };
    if let Some((h, mine)) = own {
        let theirs = candidate.checkpoint_at(h).map_err(|x| x.to_string())?;
        if theirs != mine {
            return Err(format!(
                "snapshot forks this node's ledger at height {h}: block {} root {}, ours block {} root {}",
                theirs.block_hash, theirs.tree_root, mine.block_hash, mine.tree_root
            ));
        }
    }
    if let Some(cp) = candidate
        .store()
        .latest_checkpoint()
        .map_err(|x| x.to_string())?
    {
        let (valid, _) = ledger::block::equivocation::check_cosignatures(&cp, candidate.config());
        if valid.len() >= candidate.config().checkpoint_quorum as usize {
            let theirs = candidate
                .checkpoint_at(cp.checkpoint.height)
                .map_err(|x| x.to_string())?;
            if theirs != cp.checkpoint {
                return Err(format!(
                    "snapshot's quorum checkpoint at height {} does not match its own blocks",
                    cp.checkpoint.height
                ));
            }
        }
    }
    Ok(())
}

/// Builds snapshots: a RocksDB checkpoint of the ledger, packed into a file.
pub struct LedgerSnapshotBuilder {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LedgerSnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerSnapshotBuilder")
    }
}

fn build(shared: &Shared) -> Result<Snapshot<TypeConfig>, String> {
    let _s = lock(&shared.snap_lock)?;
    let e = |e: std::io::Error| e.to_string();
    let nanos = now_nanos();
    let ckpt = shared.snapshot_dir.join(format!("build-{nanos}.ckpt"));
    if ckpt.exists() {
        fs::remove_dir_all(&ckpt).map_err(e)?;
    }
    // The checkpoint is taken with the ledger locked, so the applied state
    // read here is exactly the state inside the checkpoint.
    let header = {
        let guard = lock(&shared.ledger)?;
        let ledger = guard.as_ref().ok_or("ledger is closed")?;
        let st = read_applied(ledger)?;
        rocksdb::checkpoint::Checkpoint::new(ledger.store().db())
            .and_then(|c| c.create_checkpoint(&ckpt))
            .map_err(|x| format!("checkpoint: {x}"))?;
        SnapshotHeader {
            applied: st.applied,
            membership: st.membership,
            tip_height: ledger.tip().height,
            tip_hash: ledger.tip().hash,
        }
    };
    let index = header.applied.map(|l| l.index).unwrap_or(0);
    let term = header.applied.map(|l| l.leader_id.term).unwrap_or(0);
    let file = format!("snap-{index}-{nanos}.snap");
    let tmp = shared.snapshot_dir.join(format!("{file}.tmp"));
    snapshot::pack(&ckpt, &header, &tmp).map_err(e)?;
    fs::remove_dir_all(&ckpt).map_err(e)?;
    fs::rename(&tmp, shared.snapshot_dir.join(&file)).map_err(e)?;
    let meta = SnapshotMeta {
        last_log_id: header.applied,
        last_membership: header.membership,
        snapshot_id: format!("{term}-{index}-{nanos}"),
    };
    shared.set_current(&file, &meta)?;
    let f = fs::File::open(shared.snapshot_dir.join(&file)).map_err(e)?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(tokio::fs::File::from_std(f)),
    })
}

impl RaftSnapshotBuilder<TypeConfig> for LedgerSnapshotBuilder {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || build(&shared))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)
    }
}
