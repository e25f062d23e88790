//! Collects submitted transactions into Raft batches.
//!
//! A batch is proposed when `max_batch` transactions are pending or
//! `max_delay` has passed since the first pending one, whichever comes
//! first; an idle node therefore proposes a lone transaction after at most
//! `max_delay`. Batches are queued to Raft in submission order and the
//! batcher does not wait for one to commit before collecting the next.
//! Every submitter gets the [`TxReceipt`] of its own transaction (block,
//! index and result, or the rejection), resolved in one pass per batch.

use crate::error::ProposeError;
use crate::node::ConsensusNode;
use crate::types::TxReceipt;
use ledger::chain::ContentOutcome;
use ledger::{Hash32, SignedTransaction, TxBatch};
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

/// Start a batcher proposing through `node`.
pub fn spawn_batcher(
    node: ConsensusNode,
    config: BatcherConfig,
) -> (BatcherHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let task = tokio::spawn(run(node, config, rx));
    (BatcherHandle { tx }, task)
}

fn item_bytes(it: &Item) -> usize {
    it.bytes.len() + PER_TX_OVERHEAD
}

async fn run(node: ConsensusNode, config: BatcherConfig, mut rx: mpsc::Receiver<Item>) {
    let max_batch = config.max_batch.max(1);
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
        let mut bytes = item_bytes(&first);
        let mut pending = vec![first];
        let mut closed = false;
        while pending.len() < max_batch && bytes < config.max_bytes {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => {
                    let b = item_bytes(&item);
                    if bytes + b > config.max_bytes {
                        carried = Some(item);
                        break;
                    }
                    bytes += b;
                    pending.push(item);
                }
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
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
            .propose_queued(TxBatch::from_decoded(txs), outcomes)
            .await
        {
            Ok(fut) => {
                tokio::spawn(async move {
                    match fut.await {
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
