//! SHA-256 hashing with domain separation, and the fixed-size byte newtypes
//! every hashed or signed record uses.
//!
//! Each kind of hashed object has its own domain tag, so a transaction id can
//! never collide with a block hash or a field commitment even when the
//! encoded bytes happen to agree. Merkle leaf/node prefixes (RFC 9162) live in
//! `merkle` and are not domain tags.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

/// Domain tags: one per hashed or signed object kind. Never reuse a tag.
pub mod tag {
    /// Transaction id: `SHA-256(TX_ID || canonical unsigned transaction)`.
    pub const TX_ID: &[u8] = b"customs-ledger/v1/tx-id\0";
    /// Message signed by a transaction's submitter: `TX_SIG || tx_id`.
    pub const TX_SIG: &[u8] = b"customs-ledger/v1/tx-sig\0";
    /// Block hash: `SHA-256(BLOCK || canonical header)`.
    pub const BLOCK: &[u8] = b"customs-ledger/v1/block\0";
    /// Validation result leaf data inside a block's results tree.
    pub const RESULT: &[u8] = b"customs-ledger/v1/result\0";
    /// Checkpoint digest signed by cosigners.
    pub const CHECKPOINT: &[u8] = b"customs-ledger/v1/checkpoint\0";
    /// Salted commitment to one declaration field.
    pub const FIELD_COMMITMENT: &[u8] = b"customs-ledger/v1/field\0";
    /// Chain config (genesis and governance) digest.
    pub const CONFIG: &[u8] = b"customs-ledger/v1/config\0";
    /// Signed gRPC request metadata.
    pub const REQUEST: &[u8] = b"customs-ledger/v1/request\0";
}

/// SHA-256 of `tag || parts...`.
pub fn tagged_hash(tag: &[u8], parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(tag);
    for p in parts {
        h.update(p);
    }
    Bytes(h.finalize().into())
}

/// Plain SHA-256 (used for file pins such as the nomenclature table).
pub fn sha256(data: &[u8]) -> Hash32 {
    Bytes(Sha256::digest(data).into())
}

/// Fixed-size byte string. Encodes as raw bytes in bincode and as lowercase
/// hex in human-readable formats (JSON, TOML).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes<const N: usize>(pub [u8; N]);

/// A SHA-256 digest.
pub type Hash32 = Bytes<32>;
/// A 64-byte Ed25519 signature.
pub type Sig64 = Bytes<64>;

impl<const N: usize> Bytes<N> {
    /// All-zero value (used as the previous hash of the genesis block).
    pub const ZERO: Self = Bytes([0u8; N]);

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse exactly `2*N` hex digits.
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let v = hex::decode(s).map_err(|e| format!("invalid hex: {e}"))?;
        let arr: [u8; N] = v
            .try_into()
            .map_err(|v: Vec<u8>| format!("expected {N} bytes, got {}", v.len()))?;
        Ok(Bytes(arr))
    }

    /// Borrow the bytes.
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> Default for Bytes<N> {
    fn default() -> Self {
        Self::ZERO
    }
}

impl<const N: usize> fmt::Debug for Bytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> fmt::Display for Bytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> From<[u8; N]> for Bytes<N> {
    fn from(b: [u8; N]) -> Self {
        Bytes(b)
    }
}

// In binary formats the bytes are a fixed-length tuple with no length
// prefix. They are written as little-endian u64 words (then any remaining
// single bytes): with the codec's pinned little-endian, fixed-width integer
// configuration those are the same bytes as one element per byte, in an
// eighth of the serializer calls. Hashes, keys and signatures are written
// and read several times per transaction on every node, so this shows in
// profiles. The golden vectors of `tx`, `block` and `checkpoint` pin the bytes.
const WORD: usize = 8;

/// Elements of the binary tuple of a `Bytes<N>`: whole words, then bytes.
const fn tuple_len(n: usize) -> usize {
    n / WORD + n % WORD
}

impl<const N: usize> Serialize for Bytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            use serde::ser::SerializeTuple;
            let words = self.0.chunks_exact(WORD);
            let tail = words.remainder();
            let mut t = s.serialize_tuple(tuple_len(N))?;
            for w in words {
                let mut word = [0u8; WORD];
                word.copy_from_slice(w);
                t.serialize_element(&u64::from_le_bytes(word))?;
            }
            for b in tail {
                t.serialize_element(b)?;
            }
            t.end()
        }
    }
}

impl<'de, const N: usize> Deserialize<'de> for Bytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Bytes::from_hex(&s).map_err(de::Error::custom)
        } else {
            struct V<const N: usize>;
            impl<'de, const N: usize> de::Visitor<'de> for V<N> {
                type Value = Bytes<N>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, "{N} bytes")
                }
                fn visit_seq<A: de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Bytes<N>, A::Error> {
                    let mut out = [0u8; N];
                    let mut words = out.chunks_exact_mut(WORD);
                    for (i, w) in words.by_ref().enumerate() {
                        let word: u64 = seq
                            .next_element()?
                            .ok_or_else(|| de::Error::invalid_length(i * WORD, &self))?;
                        w.copy_from_slice(&word.to_le_bytes());
                    }
                    let tail = words.into_remainder();
                    let done = N - tail.len();
                    for (i, slot) in tail.iter_mut().enumerate() {
                        *slot = seq
                            .next_element()?
                            .ok_or_else(|| de::Error::invalid_length(done + i, &self))?;
                    }
                    Ok(Bytes(out))
                }
            }
            d.deserialize_tuple(tuple_len(N), V::<N>)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_distinct_and_nul_terminated() {
        let tags = [
            tag::TX_ID,
            tag::TX_SIG,
            tag::BLOCK,
            tag::RESULT,
            tag::CHECKPOINT,
            tag::FIELD_COMMITMENT,
            tag::CONFIG,
            tag::REQUEST,
        ];
        for (i, a) in tags.iter().enumerate() {
            assert_eq!(
                a.last(),
                Some(&0u8),
                "tag must end in NUL so no tag prefixes another"
            );
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn domain_separation_changes_digest() {
        let a = tagged_hash(tag::TX_ID, &[b"x"]);
        let b = tagged_hash(tag::BLOCK, &[b"x"]);
        assert_ne!(a, b);
    }

    #[test]
    fn hex_round_trip_and_json() {
        let h = sha256(b"abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let j = serde_json::to_string(&h).unwrap();
        let back: Hash32 = serde_json::from_str(&j).unwrap();
        assert_eq!(back, h);
        assert!(Hash32::from_hex("abcd").is_err());
        assert!(Hash32::from_hex("zz").is_err());
    }

    /// In the codec a `Bytes<N>` is exactly its N bytes, whatever the split
    /// into words and single bytes, and anything shorter does not decode.
    fn check_binary<const N: usize>() {
        let mut raw = [0u8; N];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(201);
        }
        let v = Bytes(raw);
        let enc = crate::codec::encode(&v).unwrap();
        assert_eq!(enc, raw.to_vec(), "Bytes<{N}>");
        assert_eq!(crate::codec::decode::<Bytes<N>>(&enc).unwrap(), v);
        assert!(crate::codec::decode::<Bytes<N>>(&enc[..N - 1]).is_err());
        let mut longer = enc.clone();
        longer.push(0);
        assert!(crate::codec::decode::<Bytes<N>>(&longer).is_err());
    }

    #[test]
    fn binary_encoding_is_the_raw_bytes() {
        check_binary::<1>();
        check_binary::<7>();
        check_binary::<8>();
        check_binary::<13>();
        check_binary::<32>();
        check_binary::<64>();
    }
}
