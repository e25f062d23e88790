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
