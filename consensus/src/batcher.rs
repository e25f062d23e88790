//! Collects submitted transactions into Raft batches.
//!
//! A batch is proposed when `max_batch` transactions are pending or
//! `max_delay` has passed since the first pending one, whichever comes
//! first; an idle node therefore proposes a lone transaction after at most
//! `max_delay`. Batches are queued to Raft in submission order and the
//! batcher does not wait for one to commit before collecting the next.
//! Every submitter gets the [`ApplyReport`] of the batch that carried its
//! transaction (or the error).

use crate::error::ProposeError;
use crate::node::ConsensusNode;
use crate::types::ApplyReport;
use ledger::chain::ContentOutcome;
use ledger::SignedTransaction;
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
    /// Propose at most this long after the first pending transaction.
    pub max_delay: Duration,
    /// Submissions that may wait in the channel.
    pub queue: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_batch: 256,
            max_delay: Duration::from_millis(20),
            queue: 4096,
        }
    }
}

type Reply = oneshot::Sender<Result<ApplyReport, ProposeError>>;

/// Submits transactions to a running batcher. Cloning is cheap; the batcher
/// stops when every handle is dropped.
#[derive(Clone, Debug)]
pub struct BatcherHandle {
    tx: mpsc::Sender<(SignedTransaction, ContentOutcome, Reply)>,
}

impl BatcherHandle {
    /// Submit one transaction and wait for the report of its batch.
    pub async fn submit(&self, stx: SignedTransaction) -> Result<ApplyReport, ProposeError> {
        self.submit_with(stx, ContentOutcome::default()).await
    }

    /// Submit one transaction with the leader's content outcome for it.
    pub async fn submit_with(
        &self,
        stx: SignedTransaction,
        outcome: ContentOutcome,
    ) -> Result<ApplyReport, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((stx, outcome, reply))
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

async fn run(
    node: ConsensusNode,
    config: BatcherConfig,
    mut rx: mpsc::Receiver<(SignedTransaction, ContentOutcome, Reply)>,
) {
    let max_batch = config.max_batch.max(1);
    loop {
        // Wait for the first transaction of the next batch.
        let Some(first) = rx.recv().await else {
            return;
        };
        let deadline = Instant::now() + config.max_delay;
        let mut pending = vec![first];
        let mut closed = false;
        while pending.len() < max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => pending.push(item),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut txs = Vec::with_capacity(pending.len());
        let mut outcomes = Vec::with_capacity(pending.len());
        let mut replies = Vec::with_capacity(pending.len());
        for (t, o, r) in pending {
            txs.push(t);
            outcomes.push(o);
            replies.push(r);
        }
        match node.propose_queued(txs, outcomes).await {
            Ok(fut) => {
                tokio::spawn(async move {
                    let res = fut.await;
                    for r in replies {
                        let _ = r.send(res.clone());
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
