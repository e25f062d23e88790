//! Collects submitted transactions into Raft batches.
//!
//! A batch is proposed when `max_batch` transactions are pending or
//! `max_delay` has passed since the first pending one, whichever comes
//! first; an idle node therefore proposes a lone transaction after at most
//! `max_delay`. Batches are queued to Raft in submission order and the
//! batcher does not wait for one to commit before collecting the next.
//! Every submitter gets the [`TxReceipt`] of its own transaction (block,
//! index and result, or the rejection), resolved in one pass per batch.
//!
//! Declarations are judged here, not at admission: a batch holding one
//! waits until every batch before it has been applied on this node, then
//! its declarations are judged against that ledger state and the batch
//! names its height (`judged_at`). It therefore lands on exactly that
//! parent, and every customs node recomputes the same outcome (ADR 0014).
//! Batches without declarations are still pipelined.

use crate::error::ProposeError;
use crate::node::ConsensusNode;
use crate::types::TxReceipt;
use ledger::chain::{ContentOutcome, Rejection};
use ledger::config::ChainConfig;
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
    /// Propose at most this long after the first pending transaction.
    pub max_delay: Duration,
    /// Submissions that may wait in the channel.
    pub queue: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_batch: 256,
            max_bytes: 2 * 1024 * 1024,
            max_delay: Duration::from_millis(20),
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
}

/// Batches proposed and not yet applied here, and a wake-up when one is.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    applied: tokio::sync::Notify,
}

impl InFlight {
    async fn drained(&self) {
        loop {
            let woken = self.applied.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            woken.await;
        }
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

/// Judge the declarations of `pending` (every earlier batch applied);
/// refused ones are answered and dropped. Returns the height judged
/// against.
async fn judge_batch(
    node: &ConsensusNode,
    judge: Option<&Arc<dyn Judge>>,
    pending: &mut Vec<Item>,
) -> Option<u64> {
    let (config, height) = match node
        .ledger()
        .with_ledger(|l| (l.shared_config(), l.tip().height))
    {
        Ok(x) => x,
        Err(e) => {
            for it in pending.drain(..) {
                let _ = it.reply.send(Err(ProposeError::Raft(e.to_string())));
            }
            return None;
        }
    };
    let Some(judge) = judge else {
        return Some(height);
    };
    let judge = judge.clone();
    let work: Vec<(usize, SignedTransaction, Hash32)> = pending
        .iter()
        .enumerate()
        .filter(|(_, it)| it.stx.tx.kind.carries_declaration())
        .map(|(i, it)| (i, it.stx.clone(), it.id))
        .collect();
    let judged = tokio::task::spawn_blocking(move || {
        work.into_iter()
            .map(|(i, stx, id)| (i, judge.judge(&config, &stx, &id)))
            .collect::<Vec<_>>()
    })
    .await;
    let judged = match judged {
        Ok(j) => j,
        Err(e) => {
            for it in pending.drain(..) {
                let _ = it
                    .reply
                    .send(Err(ProposeError::Raft(format!("judging failed: {e}"))));
            }
            return None;
        }
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
    Some(height)
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
    loop {
        // Wait for the first transaction of the next batch.
        let first = match carried.take() {
            Some(it) => it,
            None => match rx.recv().await {
                Some(it) => it,
                None => return,
            },
        };
        let deadline = Instant::now() + config.max_delay;
        let mut batch = Collecting {
            bytes: item_bytes(&first),
            pending: vec![first],
        };
        let mut closed = false;
        while batch.has_room(max_batch, config.max_bytes) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
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
            // This batch waits for every earlier one to apply; what queued
            // meanwhile joins it (in order) instead of waiting a full round
            // more in the next batch.
            in_flight.drained().await;
            while carried.is_none() && batch.has_room(max_batch, config.max_bytes) {
                let Ok(item) = rx.try_recv() else { break };
                if let Err(item) = batch.push(item, config.max_bytes) {
                    carried = Some(item);
                }
            }
            judged_at = judge_batch(&node, judge.as_ref(), &mut batch.pending).await;
        }
        let pending = batch.pending;
        if pending.is_empty() {
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
