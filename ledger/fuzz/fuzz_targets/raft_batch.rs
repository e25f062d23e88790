//! The application payload of a replicated Raft entry (`consensus::Batch`:
//! the leader's block context, the signed transactions and the content
//! outcomes), decoded with the peer-message limit and applied the way the
//! consensus state machine applies it (`consensus` links RocksDB, so the
//! batch type is mirrored in `ledger_fuzz::raft`).
//!
//! Every node applies every entry, so a batch that makes block building fail
//! (other than the deterministic "too large") would stop the whole cluster:
//! that is asserted never to happen.
#![no_main]

use ledger_fuzz::ledger::chain::{LedgerError, NoContent, RecordedContent};
use ledger_fuzz::ledger::{Block, Store};
use ledger_fuzz::raft::{Batch, MAX_RPC_BYTES};
use ledger_fuzz::strict;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(Batch { ctx, txs, outcomes }) = strict::<Batch>(data, MAX_RPC_BYTES) else {
        return;
    };
    let mut recorded =
        RecordedContent::from_outcomes(txs.ids().iter().copied().zip(outcomes.iter().cloned()));
    let mut ledger = ledger_fuzz::fresh_ledger();
    let tip = ledger.tip().clone();
    let built = match ledger.build_block_from(&txs, &ctx, &mut recorded) {
        Ok(b) => b,
        Err(LedgerError::BatchTooLarge(_)) => return,
        Err(e) => panic!("a decoded batch stops the state machine: {e}"),
    };
    assert_eq!(built.block.header.height, tip.height + 1);
    assert_eq!(
        built.block.txs.len() + built.rejected.len(),
        txs.len(),
        "every transaction is committed or refused"
    );
    let (block, _) = ledger
        .commit(built, Vec::new(), &mut NoContent)
        .expect("a built block commits");
    let bytes = block.encode().expect("a built block encodes");
    assert_eq!(Block::decode(&bytes).as_ref(), Ok(&block));
    let stored = ledger
        .store()
        .block_bytes(block.header.height)
        .expect("the store answers")
        .expect("the block is stored");
    assert_eq!(stored, bytes, "stored bytes are the block's canonical encoding");
});
