//! Signed-request metadata of the gRPC API: `auth::parse` on arbitrary
//! header values, then `auth::verify` against the fixture network.
//!
//! Input: up to six fields separated by `\n` (party, target node, time,
//! nonce, signature, request body); a missing field or one that is not UTF-8
//! is an absent header.
#![no_main]

use ledger_fuzz::ledger::auth;
use ledger_fuzz::ledger::testkit::T0;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(6, |b| *b == b'\n');
    let mut next = || parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let (party, node, time, nonce, sig) = (next(), next(), next(), next(), next());
    let body = data.splitn(6, |b| *b == b'\n').nth(5).unwrap_or_default();
    let Ok(a) = auth::parse(party, node, time, nonce, sig) else {
        return;
    };
    // What parse accepts is canonical and parses back to itself.
    assert_eq!(a.nonce.len(), 32);
    assert!(a
        .nonce
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    let time = a.time_ms.to_string();
    let sig = a.signature.to_hex();
    let again = auth::parse(
        Some(&a.party),
        Some(&a.node),
        Some(&time),
        Some(&a.nonce),
        Some(&sig),
    );
    assert_eq!(again.as_ref(), Ok(&a));
    let cfg = ledger_fuzz::config();
    let method = "/customs.v1.Ledger/Status";
    let _ = auth::verify(cfg, &a, "de-customs", method, body, T0, 60_000);
    let _ = auth::verify(cfg, &a, "de-customs", method, body, a.time_ms, 0);
    let _ = auth::verify(cfg, &a, &a.node, method, body, u64::MAX, u64::MAX);
});
