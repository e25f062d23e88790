//! Shared fixtures of the fuzz targets in `fuzz_targets/`: the standard test
//! network (`ledger::testkit`), its genesis block, fresh in-memory ledgers,
//! and the strict-codec check every decoder target applies.
//!
//! Each target feeds arbitrary bytes to one decoder of untrusted input, as
//! the node, `customsctl` or a peer would, and then drives what the caller
//! does next with a decoded value (admission, replay, proof checks) so that
//! crashes there are found too. Panics are the findings; errors are fine.
//! Seeds come from `examples/seeds.rs` (see `testnet/fuzz.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ledger::chain::BlockContext;
use ledger::codec::{self, CodecError};
use ledger::disclosure::DecryptionKey;
use ledger::testkit::{self, T0};
use ledger::{ChainConfig, Ledger, MemStore, Store};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::OnceLock;

pub mod raft;

pub use ledger;
pub use serde_json;

/// The standard test network's genesis config (computed once).
pub fn config() -> &'static ChainConfig {
    static CFG: OnceLock<ChainConfig> = OnceLock::new();
    CFG.get_or_init(testkit::config)
}

/// Canonical bytes of the genesis block of [`config`] at [`T0`].
pub fn genesis_bytes() -> &'static [u8] {
    static G: OnceLock<Vec<u8>> = OnceLock::new();
    G.get_or_init(|| {
        fresh_ledger()
            .store()
            .block_bytes(0)
            .expect("read genesis")
            .expect("genesis stored")
    })
}

/// A fresh ledger holding only the genesis block (fresh per input, so no
/// state or signature cache carries over from one input to the next).
pub fn fresh_ledger() -> Ledger<MemStore> {
    Ledger::init(MemStore::new(), config().clone(), T0).expect("genesis")
}

/// The X25519 key of a fixture party (to open sealed fields as it would).
pub fn decryption_key(party: &str) -> DecryptionKey {
    let i = testkit::PARTIES
        .iter()
        .position(|p| p.0 == party)
        .expect("fixture party");
    DecryptionKey::from_secret(testkit::parties()[i].x25519_secret)
}

/// A block context as a leader would propose it right after genesis.
pub fn context(i: u64) -> BlockContext {
    BlockContext {
        timestamp_ms: T0 + i,
        raft_term: 1,
        raft_index: i,
        proposer: "de-customs".into(),
    }
}

/// The strict-codec property: if `bytes` decode (at most `limit` bytes),
/// re-encoding the value reproduces them exactly. Returns the value.
pub fn strict<T: Serialize + DeserializeOwned>(bytes: &[u8], limit: usize) -> Option<T> {
    match codec::decode_limited::<T>(bytes, limit) {
        Ok(v) => {
            let again = codec::encode(&v).expect("a decoded value encodes");
            assert_eq!(again, bytes, "decoded value re-encodes differently");
            Some(v)
        }
        Err(CodecError::Encode(e)) => panic!("decoder reported an encode error: {e}"),
        Err(_) => None,
    }
}
