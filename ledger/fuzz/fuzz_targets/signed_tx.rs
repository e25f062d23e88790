//! A signed transaction as submitted over gRPC, forwarded by a peer, or
//! carried in a block: `SignedTransaction::decode` / `decode_with_id`, then
//! what a node does with it (admission against genesis state, opening the
//! sealed fields as a customs party).
#![no_main]

use ledger_fuzz::ledger::codec::MAX_RECORD_BYTES;
use ledger_fuzz::ledger::disclosure;
use ledger_fuzz::ledger::testkit::T0;
use ledger_fuzz::ledger::SignedTransaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = SignedTransaction::decode(data, MAX_RECORD_BYTES);
    let with_id = SignedTransaction::decode_with_id(data, MAX_RECORD_BYTES);
    let (stx, id) = match (decoded, with_id) {
        (Ok(a), Ok((b, id))) => {
            assert_eq!(a, b, "decode and decode_with_id disagree");
            (a, id)
        }
        (Err(_), Err(_)) => return,
        (a, b) => panic!("decode and decode_with_id disagree: {a:?} vs {b:?}"),
    };
    // Strict codec: the canonical encoding is the input.
    assert_eq!(stx.encode().as_deref(), Ok(data));
    // The id from the body prefix is the id of the body.
    assert_eq!(stx.id(), Ok(id));
    assert_eq!(stx.id_and_len(), Ok((id, data.len())));
    // Admission (never panics; an invalid transaction is a rejection).
    let ledger = ledger_fuzz::fresh_ledger();
    let _ = ledger.check_tx(&stx, &id, data.len(), T0);
    // Opening as a recipient: tampered ciphertexts are errors, not panics.
    let _ = disclosure::fields_root(&stx.tx);
    let _ = disclosure::open(
        &stx.tx,
        "de-customs",
        &[ledger_fuzz::decryption_key("de-customs")],
    );
});
