//! The storage test suite, written once and run against every [`Store`]
//! adapter (RocksDB and in-memory) by the tests of this crate and of
//! `consensus`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::block::{Checkpoint, Cosignature};
use crate::event::Status;
use crate::hash::Bytes;

fn state(status: Status, events: u32) -> ShipmentState {
    ShipmentState {
        declared: true,
        events,
        parties: vec!["exporter".into()],
        ..ShipmentState::new(status)
    }
}

fn write(height: u64) -> BlockWrite {
    let h = Bytes([height as u8; 32]);
    BlockWrite {
        height,
        block: vec![height as u8; 3],
        tip: Some(Tip {
            height,
            hash: h,
            timestamp_ms: 1000 + height,
        }),
        tx_locations: vec![(
            Bytes([100 + height as u8; 32]),
            TxLocation { height, index: 0 },
        )],
        shipment_states: vec![("S1".into(), state(Status::Declared, height as u32 + 1))],
        shipment_events: vec![
            (
                "S1".into(),
                TxLocation { height, index: 0 },
                Bytes([100 + height as u8; 32]),
            ),
            (
                "S10".into(),
                TxLocation { height, index: 1 },
                Bytes([200; 32]),
            ),
        ],
        merkle_nodes: vec![(0, height, [height as u8; 32])],
        config: None,
        meta: vec![(b"applied".to_vec(), height.to_be_bytes().to_vec())],
        learned: None,
    }
}

/// Run every storage behaviour check against a fresh store from `make`.
pub fn run_store_suite<S: Store>(make: impl Fn() -> S) {
    empty_store(&make());
    commits_are_sequential(&make());
    indexes_and_pagination(&make());
    checkpoints_and_meta(&make());
    learned_records_go_with_blocks(&make());
}

fn empty_store<S: Store>(s: &S) {
    assert_eq!(s.tip().unwrap(), None);
    assert_eq!(s.block_bytes(0).unwrap(), None);
    assert_eq!(s.tx_location(&Bytes([1; 32])).unwrap(), None);
    assert_eq!(s.shipment_state("S1").unwrap(), None);
    assert!(s.shipment_events("S1", None, 10).unwrap().is_empty());
    assert_eq!(s.merkle_node(0, 0).unwrap(), None);
    assert_eq!(s.config().unwrap(), None);
    assert_eq!(s.latest_checkpoint().unwrap(), None);
}

fn commits_are_sequential<S: Store>(s: &S) {
    assert!(matches!(s.commit(write(1)), Err(StoreError::Refused(_))));
    s.commit(write(0)).unwrap();
    assert!(matches!(s.commit(write(0)), Err(StoreError::Refused(_))));
    assert!(matches!(s.commit(write(2)), Err(StoreError::Refused(_))));
    // A refused write changed nothing.
    assert_eq!(s.tip().unwrap().unwrap().height, 0);
    assert_eq!(s.block_bytes(2).unwrap(), None);
    s.commit(write(1)).unwrap();
    let tip = s.tip().unwrap().unwrap();
    assert_eq!(tip.height, 1);
    assert_eq!(tip.hash, Bytes([1; 32]));
    assert_eq!(s.block_bytes(1).unwrap(), Some(vec![1, 1, 1]));
    assert_eq!(s.merkle_node(0, 1).unwrap(), Some([1; 32]));
    assert_eq!(
        s.meta(b"applied").unwrap(),
        Some(1u64.to_be_bytes().to_vec())
    );
    assert_eq!(
        s.shipment_state("S1").unwrap(),
        Some(state(Status::Declared, 2))
    );
}

fn indexes_and_pagination<S: Store>(s: &S) {
    for h in 0..5 {
        s.commit(write(h)).unwrap();
    }
    assert_eq!(
        s.tx_location(&Bytes([103; 32])).unwrap(),
        Some(TxLocation {
            height: 3,
            index: 0
        })
    );
    // "S1" must not see "S10"'s events (prefix separation).
    let all = s.shipment_events("S1", None, 100).unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].0.height < w[1].0.height));
    let page1 = s.shipment_events("S1", None, 2).unwrap();
    assert_eq!(page1.len(), 2);
    let page2 = s.shipment_events("S1", Some(page1[1].0), 2).unwrap();
    assert_eq!(page2[0].0.height, 2);
    let rest = s.shipment_events("S1", Some(page2[1].0), 100).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(s.shipment_events("S10", None, 100).unwrap().len(), 5);
    assert!(s.shipment_events("S", None, 100).unwrap().is_empty());
}

fn checkpoints_and_meta<S: Store>(s: &S) {
    let cp = |height: u64| CosignedCheckpoint {
        checkpoint: Checkpoint {
            chain_id: "c".into(),
            height,
            block_hash: Bytes([height as u8; 32]),
            tree_size: height + 1,
            tree_root: Bytes([9; 32]),
        },
        cosignatures: vec![Cosignature {
            party: "p".into(),
            signature: Bytes([1; 64]),
        }],
    };
    s.put_checkpoint(&cp(3)).unwrap();
    s.put_checkpoint(&cp(12)).unwrap();
    s.put_checkpoint(&cp(7)).unwrap();
    assert_eq!(s.checkpoint(7).unwrap(), Some(cp(7)));
    assert_eq!(s.latest_checkpoint().unwrap(), Some(cp(12)));
    s.put_meta(b"k", b"v").unwrap();
    assert_eq!(s.meta(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(s.meta(b"missing").unwrap(), None);
}

fn learned_records_go_with_blocks<S: Store>(s: &S) {
    assert_eq!(s.learned_checkpoint().unwrap(), None);
    assert!(s.learned_journal(0, 10).unwrap().is_empty());
    let journal = |h: u64| LearnedWrite {
        journal: Some(vec![h as u8; 4]),
        checkpoint: None,
    };
    for h in 0..5 {
        let mut w = write(h);
        w.learned = Some(journal(h));
        s.commit(w).unwrap();
    }
    let all = s.learned_journal(0, 100).unwrap();
    assert_eq!(
        all.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(all[3].1, vec![3; 4]);
    assert_eq!(s.learned_journal(2, 2).unwrap().len(), 2);
    assert_eq!(s.learned_journal(2, 2).unwrap()[0].0, 2);
    // A checkpoint with block 5 replaces the journal up to it.
    let mut w = write(5);
    w.learned = Some(LearnedWrite {
        journal: Some(vec![5; 4]),
        checkpoint: Some(b"state@5".to_vec()),
    });
    s.commit(w).unwrap();
    assert_eq!(s.learned_checkpoint().unwrap(), Some(b"state@5".to_vec()));
    assert!(s.learned_journal(0, 100).unwrap().is_empty());
    let mut w = write(6);
    w.learned = Some(journal(6));
    s.commit(w).unwrap();
    assert_eq!(s.learned_journal(0, 100).unwrap(), vec![(6, vec![6; 4])]);
    // Outside a block (a state rebuilt from the blocks).
    s.put_learned(
        6,
        &LearnedWrite {
            journal: None,
            checkpoint: Some(b"state@6".to_vec()),
        },
    )
    .unwrap();
    assert_eq!(s.learned_checkpoint().unwrap(), Some(b"state@6".to_vec()));
    assert!(s.learned_journal(0, 100).unwrap().is_empty());
}
