//! Checkpoints from peers and files: `CosignedCheckpoint` and `Checkpoint`
//! records (gRPC answers, the ledger store), the gossiped cosignature
//! message (node `cosign::CosignMessage`, decoded with a 4096-byte limit; its
//! wire form is the tuple of its fields), the JSON files `customsctl` reads
//! (`--trust`, `check-checkpoints --checkpoint`), and the cosignature check.
#![no_main]

use ledger_fuzz::ledger::block::{Checkpoint, Cosignature, CosignedCheckpoint};
use ledger_fuzz::ledger::codec::MAX_RECORD_BYTES;
use ledger_fuzz::ledger::disclosure::verify_cosignatures;
use ledger_fuzz::{serde_json, strict};
use libfuzzer_sys::fuzz_target;

/// Same fields in the same order as `node::cosign::CosignMessage`.
type CosignMessage = (Checkpoint, Cosignature, bool);

fn check(cp: &CosignedCheckpoint) {
    let cfg = ledger_fuzz::config();
    let _ = cp.checkpoint.digest();
    let _ = verify_cosignatures(cfg, cp, cfg.checkpoint_quorum);
    let _ = verify_cosignatures(cfg, cp, 0);
}

fuzz_target!(|data: &[u8]| {
    if let Some(cp) = strict::<CosignedCheckpoint>(data, MAX_RECORD_BYTES) {
        check(&cp);
    }
    if let Some(c) = strict::<Checkpoint>(data, MAX_RECORD_BYTES) {
        let _ = c.signing_bytes();
    }
    if let Some((checkpoint, cosignature, _)) = strict::<CosignMessage>(data, 4096) {
        check(&CosignedCheckpoint {
            checkpoint,
            cosignatures: vec![cosignature],
        });
    }
    if let Ok(cp) = serde_json::from_slice::<CosignedCheckpoint>(data) {
        check(&cp);
        let text = serde_json::to_string(&cp).expect("a parsed checkpoint prints");
        let again: CosignedCheckpoint = serde_json::from_str(&text).expect("printed JSON parses");
        assert_eq!(again, cp);
    }
});
