//! Collects submitted transactions into Raft batches.
//!
//! A batch is proposed when `max_batch` transactions are pending or
//! `max_delay` has passed since the first pending one, whichever comes
//! first; an idle node therefore proposes a lone transaction after at most
//! `max_delay`. While an earlier batch is still in flight the wait grows to
//! `busy_delay`, ending early once every earlier batch has applied, so a
//! loaded leader proposes fewer, larger entries (each node pays per-entry
//! costs less often) without delaying a quiet network's transactions.
//! Batches are queued to Raft in submission order and the batcher does not
//! wait for one to commit before collecting the next.
//! Every submitter gets the [`TxReceipt`] of its own transaction (block,
//! index and result, or the rejection), resolved in one pass per batch.
//!
//! Declarations are judged here, not at admission, against the learned
//! state a block at the batch's height is judged against: folded through
//! `height - 1 - JUDGEMENT_LAG` (ADR 0014, ADR 0016). The batch names that
//! height (`judged_at`), every customs node recomputes the same outcome
//! against the same state, and a batch that lands elsewhere has its
//! declarations refused. With a lag of one, a batch with declarations may
//! be proposed while one batch before it is still in flight: the batcher
//! waits until at most `JUDGEMENT_LAG` are, and until any batch carrying
//! governance has applied (the config it is judged under must be the one
//! in force at its height). Batches without declarations are pipelined.

use crate::error::ProposeError;
use crate::node::ConsensusNode;
use crate::types::TxReceipt;
use ledger::chain::{ContentOutcome, Rejection};
use ledger::config::ChainConfig;
use ledger::validate::learned::JUDGEMENT_LAG;
use ledger::Store;
use ledger::{Hash32, SignedTransaction, TxBatch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Batching limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Propose as soon as this many transactions are pending (keep it at
    /// or below the chain's `max_block_txs`).
    pub max_batch: usize,
    /// Propose before the batch's transactions would exceed this many
    /// encoded bytes (a batch always holds at least one transaction). Keep
    /// it well under [`crate::MAX_RPC_BYTES`] divided by openraft's
    /// `max_payload_entries`, so any append a leader sends can be read; see
    /// [`BatcherConfig::entry_bytes_for`].
    pub max_bytes: usize,
    /// Propose at most this long after the first pending transaction
    /// while no earlier batch is in flight.
    pub max_delay: Duration,
    /// While an earlier batch is still in flight, wait up to this long
    /// (at least `max_delay`) for companions, but no longer than until
    /// every earlier batch has applied: under load entries grow and every
    /// node pays the per-entry costs less often; a quiet network keeps
    /// `max_delay`.
    pub busy_delay: Duration,
    /// Submissions that may wait in the channel.
    pub queue: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_batch: 256,
            max_bytes: 2 * 1024 * 1024,
            max_delay: Duration::from_millis(20),
            busy_delay: Duration::from_millis(20),
            queue: 4096,
        }
    }
}

impl BatcherConfig {
    /// The largest entry (in transaction bytes) that keeps an
    /// `AppendEntries` of `max_payload_entries` entries, with each
    /// transaction's outcome and framing, at or under half of
    /// [`crate::MAX_RPC_BYTES`], and a block under `max_block_bytes`.
    pub fn entry_bytes_for(max_payload_entries: u64, max_block_bytes: u32) -> usize {
        let per_entry = crate::MAX_RPC_BYTES / 2 / (max_payload_entries.max(1) as usize);
        per_entry.min(max_block_bytes as usize).max(1)
    }
}

/// Encoded bytes a transaction adds to an entry beyond its own encoding
/// (its outcome and framing), counted against `max_bytes`.
const PER_TX_OVERHEAD: usize = 256;

type Reply = oneshot::Sender<Result<TxReceipt, ProposeError>>;

/// Judges declarations on the leader, against the ledger as it stands
/// (every earlier batch applied). Customs nodes implement it.
pub trait Judge: Send + Sync + 'static {
    /// The sealed outcome of one declaration-carrying transaction, or why
    /// it is refused.
    fn judge(
        &self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        id: &Hash32,
    ) -> Result<ContentOutcome, Rejection>;

    /// Bring the learned state to the one a batch is judged against
    /// (folded through block `at`) before its declarations are judged.
    fn prepare(&self, at: u64) -> Result<(), String>;
}

/// Batches proposed and not yet applied here, and a wake-up when one is.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    applied: tokio::sync::Notify,
}

impl InFlight {
    async fn drained(&self) {
        self.at_most(0).await
    }

    /// Wait until at most `n` batches are in flight.
    async fn at_most(&self, n: usize) {
        loop {
            let woken = self.applied.notified();
            if self.count.load(Ordering::Acquire) <= n {
                return;
            }
            woken.await;
        }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    fn done(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.applied.notify_waiters();
    }
}

/// One queued submission: the transaction, its id and canonical bytes.
struct Item {
    stx: SignedTransaction,
    id: Hash32,
    bytes: Vec<u8>,
    outcome: ContentOutcome,
    reply: Reply,
}

/// Submits transactions to a running batcher. Cloning is cheap; the batcher
/// stops when every handle is dropped.
#[derive(Clone, Debug)]
pub struct BatcherHandle {
    tx: mpsc::Sender<Item>,
}

impl BatcherHandle {
    /// Submit one transaction and wait for its receipt.
    pub async fn submit(&self, stx: SignedTransaction) -> Result<TxReceipt, ProposeError> {
        let (id, bytes) = stx
            .id_and_encoding()
            .map_err(|e| ProposeError::Raft(format!("unencodable transaction: {e}")))?;
        self.submit_with(stx, id, bytes, ContentOutcome::default())
            .await
    }

    /// Submit one strictly decoded transaction with the id and the bytes
    /// [`SignedTransaction::decode_with_id`] gave for it, and the leader's
    /// content outcome for it; wait for its receipt.
    pub async fn submit_with(
        &self,
        stx: SignedTransaction,
        id: Hash32,
        bytes: Vec<u8>,
        outcome: ContentOutcome,
    ) -> Result<TxReceipt, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Item {
                stx,
                id,
                bytes,
                outcome,
                reply,
            })
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }
}

/// Start a batcher proposing through `node`; `judge` judges declarations
/// (customs nodes).
pub fn spawn_batcher(
    node: ConsensusNode,
    config: BatcherConfig,
    judge: Option<Arc<dyn Judge>>,
) -> (BatcherHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let task = tokio::spawn(run(node, config, judge, rx));
    (BatcherHandle { tx }, task)
}

fn item_bytes(it: &Item) -> usize {
    it.bytes.len() + PER_TX_OVERHEAD
}

/// A batch being collected.
struct Collecting {
    pending: Vec<Item>,
    bytes: usize,
}

impl Collecting {
    /// Add `item` unless it would push the batch over `max_bytes`; then it
    /// is handed back to open the next batch.
    fn push(&mut self, item: Item, max_bytes: usize) -> Result<(), Item> {
        let b = item_bytes(&item);
        if self.bytes + b > max_bytes {
            return Err(item);
        }
        self.bytes += b;
        self.pending.push(item);
        Ok(())
    }

    fn has_room(&self, max_batch: usize, max_bytes: usize) -> bool {
        self.pending.len() < max_batch && self.bytes < max_bytes
    }
}

/// Answer every item of `pending` with `error`; nothing is proposed.
fn fail_all<T>(pending: &mut Vec<Item>, error: String) -> Option<T> {
    for it in pending.drain(..) {
        let _ = it.reply.send(Err(ProposeError::Raft(error.clone())));
    }
    None
}

/// Judge the declarations of `pending`, which will be the block at
/// `height` (`None`: no batch in flight, the tip's successor); refused
/// ones are answered and dropped. Returns the height of the learned state
/// judged against (the batch's `judged_at`).
async fn judge_batch(
    node: &ConsensusNode,
    judge: Option<&Arc<dyn Judge>>,
    pending: &mut Vec<Item>,
    height: Option<u64>,
) -> Option<(u64, u64)> {
    // The config from the shared store handle: the ledger lock is held
    // while the batch in flight applies, and no governance is in flight.
    let read = node
        .ledger()
        .with_store(|s| -> Result<(ChainConfig, u64), String> {
            let config = s
                .config()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "no chain config stored".to_string())?;
            let tip = s.tip().map_err(|e| e.to_string())?.map_or(0, |t| t.height);
            Ok((config, tip))
        });
    let (config, tip) = match read {
        Ok(Ok(x)) => x,
        Ok(Err(e)) | Err(crate::ConsensusError::Raft(e)) => return fail_all(pending, e),
        Err(e) => return fail_all(pending, e.to_string()),
    };
    let height = height.unwrap_or(tip + 1);
    let at = ledger::validate::learned::judged_through(height);
    let Some(judge) = judge else {
        return Some((height, at));
    };
    let judge = judge.clone();
    let work: Vec<(usize, SignedTransaction, Hash32)> = pending
        .iter()
        .enumerate()
        .filter(|(_, it)| it.stx.tx.kind.carries_declaration())
        .map(|(i, it)| (i, it.stx.clone(), it.id))
        .collect();
    let judged = tokio::task::spawn_blocking(move || {
        if let Err(e) = judge.prepare(at) {
            let r = Rejection {
                code: "STALE_JUDGEMENT".into(),
                message: format!("cannot judge against block {at} now ({e}); resubmit"),
            };
            return work
                .into_iter()
                .map(|(i, _, _)| (i, Err(r.clone())))
                .collect();
        }
        work.into_iter()
            .map(|(i, stx, id)| (i, judge.judge(&config, &stx, &id)))
            .collect::<Vec<_>>()
    })
    .await;
    let judged = match judged {
        Ok(j) => j,
        Err(e) => return fail_all(pending, format!("judging failed: {e}")),
    };
    let mut refused = vec![None; pending.len()];
    for (i, r) in judged {
        match r {
            Ok(o) => pending[i].outcome = o,
            Err(r) => refused[i] = Some(r),
        }
    }
    let mut kept = Vec::with_capacity(pending.len());
    for (it, r) in pending.drain(..).zip(refused) {
        match r {
            None => kept.push(it),
            Some(r) => {
                let _ = it.reply.send(Ok(TxReceipt {
                    height,
                    block_hash: Hash32::ZERO,
                    outcome: Err(r),
                }));
            }
        }
    }
    *pending = kept;
    Some((height, at))
}

async fn run(
    node: ConsensusNode,
    config: BatcherConfig,
    judge: Option<Arc<dyn Judge>>,
    mut rx: mpsc::Receiver<Item>,
) {
    let max_batch = config.max_batch.max(1);
    let in_flight = Arc::new(InFlight::default());
    // A transaction that would have pushed the last batch over `max_bytes`
    // opens the next one.
    let mut carried: Option<Item> = None;
    // The height the last proposed batch will commit at, while known.
    let mut last_height: Option<u64> = None;
    loop {
        // Wait for the first transaction of the next batch.
        let first = match carried.take() {
            Some(it) => it,
            None => match rx.recv().await {
                Some(it) => it,
                None => return,
            },
        };
        let started = Instant::now();
        let quiet_deadline = started + config.max_delay;
        // With a batch in flight, collect until the busy deadline or until
        // the pipeline drains, then as on a quiet network.
        let mut deadline = if in_flight.count() == 0 {
            quiet_deadline
        } else {
            started + config.busy_delay.max(config.max_delay)
        };
        let mut batch = Collecting {
            bytes: item_bytes(&first),
            pending: vec![first],
        };
        let mut closed = false;
        while batch.has_room(max_batch, config.max_bytes) {
            let next = tokio::select! {
                r = tokio::time::timeout_at(deadline, rx.recv()) => r,
                _ = in_flight.drained(), if deadline > quiet_deadline => {
                    deadline = quiet_deadline;
                    continue;
                }
            };
            match next {
                Ok(Some(item)) => {
                    if let Err(item) = batch.push(item, config.max_bytes) {
                        carried = Some(item);
                        break;
                    }
                }
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut judged_at = None;
        if batch
            .pending
            .iter()
            .any(|it| it.stx.tx.kind.carries_declaration())
        {
            // This batch waits until at most JUDGEMENT_LAG batches are in
            // flight (all of them when their heights are not known); what
            // queued meanwhile joins it (in order) instead of waiting a
            // full round more in the next batch.
            in_flight.at_most(JUDGEMENT_LAG as usize).await;
            let height = loop {
                if in_flight.count() == 0 {
                    break None;
                }
                if let Some(h) = last_height {
                    break Some(h + 1);
                }
                in_flight.drained().await;
            };
            while carried.is_none() && batch.has_room(max_batch, config.max_bytes) {
                let Ok(item) = rx.try_recv() else { break };
                if let Err(item) = batch.push(item, config.max_bytes) {
                    carried = Some(item);
                }
            }
            match judge_batch(&node, judge.as_ref(), &mut batch.pending, height).await {
                Some((h, at)) => {
                    judged_at = Some(at);
                    last_height = Some(h);
                }
                None => last_height = None,
            }
        } else {
            // Its height is known only behind a batch of known height.
            last_height = match last_height {
                Some(h) if in_flight.count() > 0 => Some(h + 1),
                _ => None,
            };
        }
        if batch
            .pending
            .iter()
            .any(|it| it.stx.tx.governance.is_some())
        {
            // The next declarations are judged under the config after it
            // (what joined the batch while it waited counts too).
            last_height = None;
        }
        let pending = batch.pending;
        if pending.is_empty() {
            // Nothing proposed: the height reserved for it is not used.
            last_height = last_height.and_then(|h| h.checked_sub(1));
            if in_flight.count() == 0 {
                last_height = None;
            }
            if closed {
                return;
            }
            continue;
        }
        let mut txs = Vec::with_capacity(pending.len());
        let mut outcomes = Vec::with_capacity(pending.len());
        let mut ids = Vec::with_capacity(pending.len());
        let mut replies = Vec::with_capacity(pending.len());
        for it in pending {
            txs.push((it.stx, it.id, it.bytes));
            outcomes.push(it.outcome);
            ids.push(it.id);
            replies.push(it.reply);
        }
        match node
            .propose_queued(TxBatch::from_decoded(txs), outcomes, judged_at)
            .await
        {
            Ok(fut) => {
                in_flight.count.fetch_add(1, Ordering::AcqRel);
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    let applied = fut.await;
                    in_flight.done();
                    match applied {
                        Ok(report) => {
                            for (receipt, r) in report.receipts(&ids).into_iter().zip(replies) {
                                let _ = r.send(receipt.ok_or_else(|| {
                                    ProposeError::Raft(
                                        "transaction missing from its batch report".into(),
                                    )
                                }));
                            }
                        }
                        Err(e) => {
                            for r in replies {
                                let _ = r.send(Err(e.clone()));
                            }
                        }
                    }
                });
            }
            Err(e) => {
                last_height = None;
                for r in replies {
                    let _ = r.send(Err(e.clone()));
                }
            }
        }
        if closed {
            return;
        }
    }
}
