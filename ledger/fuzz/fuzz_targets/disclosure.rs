//! Single-field disclosure proofs checked offline (`customsctl
//! verify-disclosure` reads them as JSON; the codec form is checked too):
//! `FieldDisclosure` decoding and `verify_disclosure` on arbitrary proofs.
#![no_main]

use ledger_fuzz::ledger::codec::MAX_RECORD_BYTES;
use ledger_fuzz::ledger::disclosure::{verify_disclosure, FieldDisclosure};
use ledger_fuzz::{serde_json, strict};
use libfuzzer_sys::fuzz_target;

fn check(d: &FieldDisclosure) {
    let cfg = ledger_fuzz::config();
    if let Ok(v) = verify_disclosure(d, cfg, cfg.checkpoint_quorum) {
        // What it vouches for is what the proof carries.
        assert_eq!(v.field, d.field.field);
        assert_eq!(d.tx.id(), Ok(v.tx_id));
        assert_eq!(v.height, d.header.height);
        assert!(v.cosigners.len() as u64 >= u64::from(cfg.checkpoint_quorum));
    }
    // No quorum the trusted parties cannot reach is ever met.
    let parties = cfg.parties.len() as u32;
    assert!(verify_disclosure(d, cfg, parties + 1).is_err());
}

fuzz_target!(|data: &[u8]| {
    if let Some(d) = strict::<FieldDisclosure>(data, MAX_RECORD_BYTES) {
        check(&d);
    }
    if let Ok(d) = serde_json::from_slice::<FieldDisclosure>(data) {
        check(&d);
    }
});
