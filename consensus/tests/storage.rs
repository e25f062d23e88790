//! openraft's own storage test suite against the RocksDB log store and the
//! ledger state machine, plus corruption checks of the log store.

use consensus::openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine};
use consensus::openraft::testing::{StoreBuilder, Suite};
use consensus::openraft::StorageError;
use consensus::{LedgerStateMachine, NodeId, RocksLogStore, TypeConfig};
use ledger::chain::NoContent;
use ledger::testkit;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, RocksLogStore, LedgerStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, RocksLogStore, LedgerStateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = RocksLogStore::open(&dir.path().join("log")).expect("log store");
        let sm = LedgerStateMachine::open(
            &dir.path().join("ledger"),
            testkit::config(),
            testkit::T0,
            Box::new(NoContent),
        )
        .expect("state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

#[tokio::test]
async fn corrupt_log_entry_is_an_error_not_a_panic() {
    let (_dir, mut log, mut sm) = Builder.build().await.unwrap();
    // Applied state of a fresh ledger: nothing.
    assert_eq!(sm.applied_state().await.unwrap().0, None);
    for (i, bytes) in [vec![], vec![0xff; 3], vec![0u8; 64]]
        .into_iter()
        .enumerate()
    {
        log.put_raw(i as u64 + 1, &bytes).unwrap();
    }
    assert!(log.try_get_log_entries(0..10).await.is_err());
    assert!(log.get_log_state().await.is_err());
}

/// Applies one batch of bookings (shipments `tag-0..n`) as log entry `index`.
async fn apply_bookings(sm: &mut LedgerStateMachine, index: u64, tag: &str, n: u64) {
    let txs = (0..n)
        .map(|i| {
            testkit::event(
                ledger::event::EventKind::ShipmentBooked,
                &format!("{tag}-{i}"),
                "exporter",
                index * 1000 + i,
                testkit::T0 + 1000,
            )
        })
        .collect();
    apply_judged(sm, index, txs, None).await;
}

/// Moves `from`'s current snapshot into `to` as if received over the network.
async fn transfer(
    from: &mut LedgerStateMachine,
    to: &mut LedgerStateMachine,
) -> Result<(), StorageError<NodeId>> {
    use consensus::openraft::storage::RaftSnapshotBuilder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut snap = from.get_snapshot_builder().await.build_snapshot().await?;
    let mut bytes = Vec::new();
    snap.snapshot.read_to_end(&mut bytes).await.unwrap();
    let mut file = to.begin_receiving_snapshot().await?;
    file.write_all(&bytes).await.unwrap();
    file.flush().await.unwrap();
    to.install_snapshot(&snap.meta, file).await
}

/// A snapshot that forks the receiver's committed ledger is refused, and
/// the receiver keeps its own; one that extends it (or a fresh node) is
/// installed.
#[tokio::test]
async fn snapshot_forking_the_receivers_ledger_is_refused() {
    let (_da, _la, mut a) = Builder.build().await.unwrap();
    let (_db, _lb, mut b) = Builder.build().await.unwrap();
    let (_dc, _lc, mut c) = Builder.build().await.unwrap();
    apply_bookings(&mut a, 1, "A", 2).await;
    apply_bookings(&mut b, 1, "B", 2).await;
    apply_bookings(&mut b, 2, "B2", 2).await;
    apply_bookings(&mut c, 1, "B", 2).await;
    let before = a.applied_state().await.unwrap().0;
    let err = transfer(&mut b, &mut a).await.unwrap_err();
    assert!(
        err.to_string().contains("forks this node's ledger"),
        "{err}"
    );
    assert_eq!(a.applied_state().await.unwrap().0, before);
    // c holds b's first block: b's snapshot extends it.
    transfer(&mut b, &mut c).await.unwrap();
    assert_eq!(
        c.applied_state().await.unwrap().0,
        b.applied_state().await.unwrap().0
    );
}

/// Applies `txs` as log entry `index`, judged at `judged_at`; returns the
/// apply report.
async fn apply_judged(
    sm: &mut LedgerStateMachine,
    index: u64,
    txs: Vec<ledger::SignedTransaction>,
    judged_at: Option<u64>,
) -> consensus::ApplyReport {
    use consensus::openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
    use consensus::Batch;
    let entry = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Batch {
            ctx: ledger::chain::BlockContext {
                timestamp_ms: testkit::T0 + 1000,
                raft_term: 0,
                raft_index: 0,
                proposer: "de-customs".into(),
            },
            txs: ledger::TxBatch::from_txs(txs).unwrap(),
            outcomes: Vec::new().into(),
            judged_at,
        }),
    };
    let mut reports = sm.apply(vec![entry]).await.unwrap();
    reports.pop().unwrap()
}

/// A declaration commits only in the block its leader judged it for (a
/// block at height `h` is judged against the state folded through
/// `h - 1 - JUDGEMENT_LAG`): one judged against another state is refused on
/// every node alike (`STALE_JUDGEMENT`), while the rest of its batch
/// commits.
#[tokio::test]
async fn declarations_judged_against_another_parent_are_refused() {
    use ledger::event::EventKind as K;
    let (_d, _l, mut sm) = Builder.build().await.unwrap();
    let book =
        |s: &str, n: u64| testkit::event(K::ShipmentBooked, s, "exporter", n, testkit::T0 + 1000);
    let file =
        |s: &str, n: u64| testkit::event(K::DeclarationFiled, s, "broker", n, testkit::T0 + 1000);
    let r = apply_judged(&mut sm, 1, vec![book("J-1", 1), book("J-2", 2)], None).await;
    assert_eq!((r.height, r.accepted.len()), (1, 2), "{r:?}");
    assert_eq!(ledger::validate::learned::judged_through(2), 0);
    // Judged against the state after block 1, landing at height 2 (which
    // calls for the state after block 0): the filing is stale, the booking
    // in the same batch is not.
    let stale = file("J-1", 3);
    let r = apply_judged(&mut sm, 2, vec![stale.clone(), book("J-3", 4)], Some(1)).await;
    assert_eq!(r.height, 2);
    assert_eq!(r.accepted.len(), 1, "{r:?}");
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    assert_eq!(r.rejected[0].0, stale.id().unwrap());
    assert_eq!(r.rejected[0].1.code, "STALE_JUDGEMENT");
    // Unjudged batches may not carry declarations either.
    let r = apply_judged(&mut sm, 3, vec![file("J-2", 5)], None).await;
    assert_eq!(r.rejected[0].1.code, "STALE_JUDGEMENT", "{r:?}");
    // Judged against the state block 4 calls for (after block 2): committed.
    let r = apply_judged(&mut sm, 4, vec![stale], Some(2)).await;
    assert_eq!((r.accepted.len(), r.rejected.len()), (1, 0), "{r:?}");
}

/// Blocks are kept for the in-order reader only once it asks; what it
/// takes is the block the store holds; asking for a height drops the
/// blocks below it; a snapshot install forgets every kept block.
#[tokio::test]
async fn applied_blocks_are_handed_to_the_folding_reader() {
    use ledger::store::Store;
    let (_da, _la, mut a) = Builder.build().await.unwrap();
    let handle = a.handle();
    apply_bookings(&mut a, 1, "A", 2).await;
    assert!(handle.take_applied_block(1).is_none(), "kept before asked");
    handle.keep_applied_blocks();
    for i in 2..=4 {
        apply_bookings(&mut a, i, &format!("A{i}"), 3).await;
    }
    let stored = handle
        .with_store(|s| s.block(3))
        .unwrap()
        .unwrap()
        .expect("stored block");
    // Asking for height 3 drops height 2.
    let three = handle.take_applied_block(3).expect("kept block 3");
    assert_eq!(*three, stored);
    assert!(handle.take_applied_block(2).is_none());
    assert!(handle.take_applied_block(3).is_none(), "taken once");
    assert!(handle.take_applied_block(4).is_some());

    // c holds b's first block, kept; installing b's snapshot forgets it.
    let (_db, _lb, mut b) = Builder.build().await.unwrap();
    let (_dc, _lc, mut c) = Builder.build().await.unwrap();
    apply_bookings(&mut b, 1, "B", 2).await;
    apply_bookings(&mut b, 2, "B2", 2).await;
    c.handle().keep_applied_blocks();
    apply_bookings(&mut c, 1, "B", 2).await;
    transfer(&mut b, &mut c).await.unwrap();
    assert!(c.handle().take_applied_block(1).is_none());
}
