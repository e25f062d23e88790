//! Blocks served by an untrusted node (`customsctl verify`, exported chain
//! files, proof answers): `Block::decode`, the header and result records
//! decoded on their own, and the replay of a served block on top of genesis
//! through `verify_chain`.
#![no_main]

use ledger_fuzz::ledger::block::{body_roots, BlockHeader, TxResult};
use ledger_fuzz::ledger::codec::MAX_RECORD_BYTES;
use ledger_fuzz::ledger::{verify_chain, Block};
use ledger_fuzz::strict;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Block::decode(data) {
        Ok(block) => {
            // Strict codec: the canonical encoding is the input.
            assert_eq!(block.encode().as_deref(), Ok(data));
            let _ = block.hash();
            let ids: Vec<_> = block.results.iter().map(|r| r.tx_id).collect();
            let _ = body_roots(&ids, &block.results);
            for i in 0..block.results.len().min(4) {
                let _ = block.tx_proof(i as u32);
            }
            let _ = block.tx_proof(u32::MAX);
            replay(data);
        }
        Err(_) => {
            assert!(strict::<Block>(data, MAX_RECORD_BYTES).is_none());
        }
    }
    let _ = strict::<BlockHeader>(data, MAX_RECORD_BYTES).map(|h| h.hash());
    let _ = strict::<TxResult>(data, MAX_RECORD_BYTES).map(|r| r.leaf_data());
});

/// Replay a decoded block as a served chain of one block after genesis, and
/// as a genesis block.
fn replay(data: &[u8]) {
    let cfg = ledger_fuzz::config();
    let genesis = ledger_fuzz::genesis_bytes().to_vec();
    if let Ok(report) = verify_chain(cfg, [Ok(genesis), Ok(data.to_vec())], |_| {}) {
        assert_eq!(report.blocks, 2);
    }
    let _ = verify_chain(cfg, [Ok(data.to_vec())], |_| {});
}
