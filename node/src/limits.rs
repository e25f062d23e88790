//! Per-party budgets for what one caller can make this node hold: open
//! streams, fire-and-forget submissions still in flight, concurrent
//! history and proof reads, and the bytes a stream may buffer. A party at
//! its budget is answered `RESOURCE_EXHAUSTED` with a reason code and may
//! retry; other parties are unaffected.

use crate::status;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tonic::Status;

/// Streams (`StreamBlocks`, `SubscribeEvents`) one party may hold open.
pub const STREAMS_PER_PARTY: usize = 8;
/// Fire-and-forget submissions one party may have waiting for commit.
pub const PENDING_PER_PARTY: usize = 4096;
/// History and transaction-proof reads one party may run at once.
pub const READS_PER_PARTY: usize = 8;
/// Bytes one stream may hold encoded and not yet taken by the transport.
pub const STREAM_BUFFER_BYTES: usize = 16 << 20;

/// How many of one resource each party holds.
#[derive(Debug)]
pub struct Budget {
    what: &'static str,
    reason: &'static str,
    max: usize,
    held: Mutex<BTreeMap<String, usize>>,
}

/// Held units of a [`Budget`], returned when dropped.
#[derive(Debug)]
pub struct Slot {
    budget: Arc<Budget>,
    party: String,
    n: usize,
}

impl Budget {
    /// A budget of `max` per party; refusals carry `reason`.
    pub fn new(what: &'static str, reason: &'static str, max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            what,
            reason,
            max,
            held: Mutex::new(BTreeMap::new()),
        })
    }

    /// Take `n` units for `party`, or refuse without taking any.
    pub fn take(self: &Arc<Self>, party: &str, n: usize) -> Result<Slot, Status> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let cur = held.get(party).copied().unwrap_or(0);
        if cur.saturating_add(n) > self.max {
            return Err(status::exhausted(
                self.reason,
                format!(
                    "{party} holds {cur} {} on this node (limit {}); retry later",
                    self.what, self.max
                ),
            ));
        }
        held.insert(party.to_string(), cur + n);
        Ok(Slot {
            budget: self.clone(),
            party: party.to_string(),
            n,
        })
    }

    /// Units `party` holds now.
    pub fn held(&self, party: &str) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(party).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = held.get_mut(&self.party) {
            *c = c.saturating_sub(self.n);
            if *c == 0 {
                held.remove(&self.party);
            }
        }
    }
}

/// The node's per-party budgets.
#[derive(Debug, Clone)]
pub struct PartyLimits {
    /// Open streams.
    pub streams: Arc<Budget>,
    /// Fire-and-forget submissions in flight.
    pub pending: Arc<Budget>,
    /// Concurrent history and proof reads.
    pub reads: Arc<Budget>,
}

impl Default for PartyLimits {
    fn default() -> Self {
        PartyLimits {
            streams: Budget::new("open streams", "TOO_MANY_STREAMS", STREAMS_PER_PARTY),
            pending: Budget::new(
                "unconfirmed submissions",
                "TOO_MANY_PENDING",
                PENDING_PER_PARTY,
            ),
            reads: Budget::new("reads in progress", "TOO_MANY_READS", READS_PER_PARTY),
        }
    }
}

/// A stream whose producer may buffer at most [`STREAM_BUFFER_BYTES`]:
/// each item carries a permit for its encoded size, released when the
/// transport takes the item.
pub mod bounded {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
    use tokio_stream::Stream;

    /// The producing side.
    #[derive(Debug)]
    pub struct Sender<T> {
        tx: mpsc::Sender<(T, OwnedSemaphorePermit)>,
        bytes: Arc<Semaphore>,
        /// The buffer's size: the most one item may take.
        cap: u32,
    }

    /// The consuming side (what the handler returns).
    #[derive(Debug)]
    pub struct Receiver<T> {
        rx: mpsc::Receiver<(T, OwnedSemaphorePermit)>,
        /// Held so the stream's slot in the party budget lasts as long as
        /// the stream.
        _slot: super::Slot,
    }

    /// A channel holding at most `bytes` of items (an item larger than
    /// that waits until the buffer is empty).
    pub fn channel<T>(bytes: usize, slot: super::Slot) -> (Sender<T>, Receiver<T>) {
        let (tx, rx) = mpsc::channel(1024);
        let cap = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        (
            Sender {
                tx,
                bytes: Arc::new(Semaphore::new(cap)),
                cap: cap as u32,
            },
            Receiver { rx, _slot: slot },
        )
    }

    impl<T> Sender<T> {
        /// Send `item` of `size` encoded bytes once the buffer has room.
        /// `false` when the receiver is gone.
        pub async fn send(&self, item: T, size: usize) -> bool {
            let want = (size.min(u32::MAX as usize) as u32).clamp(1, self.cap);
            let Ok(permit) = self.bytes.clone().acquire_many_owned(want).await else {
                return false;
            };
            self.tx.send((item, permit)).await.is_ok()
        }

        /// Whether the receiver is gone.
        pub fn is_closed(&self) -> bool {
            self.tx.is_closed()
        }
    }

    impl<T> Stream for Receiver<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            // The permit drops here: the item has left the buffer.
            self.rx.poll_recv(cx).map(|o| o.map(|(item, _permit)| item))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_at_its_budget_is_refused_and_others_are_not() {
        let b = Budget::new("things", "TOO_MANY_THINGS", 3);
        let a1 = b.take("a", 2).unwrap();
        let a2 = b.take("a", 1).unwrap();
        let e = b.take("a", 1).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status::reason_of(&e), "TOO_MANY_THINGS");
        // Another party has its own budget.
        let _b1 = b.take("b", 3).unwrap();
        // Returned on drop.
        drop(a1);
        assert_eq!(b.held("a"), 1);
        let _a3 = b.take("a", 2).unwrap();
        drop(a2);
        assert_eq!(b.held("a"), 2);
    }

    #[tokio::test]
    async fn a_stream_buffers_at_most_its_bytes() {
        use tokio_stream::StreamExt;
        let budget = Budget::new("streams", "TOO_MANY_STREAMS", 1);
        let slot = budget.take("a", 1).unwrap();
        assert!(budget.take("a", 1).is_err(), "one stream per party here");
        let (tx, mut rx) = bounded::channel::<u32>(STREAM_BUFFER_BYTES, slot);
        // Three items of 40% of the buffer: the third waits for the first
        // to be taken.
        let size = STREAM_BUFFER_BYTES * 2 / 5;
        assert!(tx.send(1, size).await);
        assert!(tx.send(2, size).await);
        let third = tokio::spawn(async move {
            let ok = tx.send(3, size).await;
            (ok, tx)
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "the buffer held more than its bytes");
        assert_eq!(rx.next().await, Some(1));
        let (ok, tx) = third.await.unwrap();
        assert!(ok);
        assert_eq!(rx.next().await, Some(2));
        assert_eq!(rx.next().await, Some(3));
        // The stream's slot is released with the stream.
        drop(rx);
        assert!(!tx.send(4, 1).await || tx.is_closed());
        assert_eq!(budget.held("a"), 0);
    }
}
