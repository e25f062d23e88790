//! The one place where storage and wire records are encoded and decoded.
//!
//! Encoding is bincode 2.0.1 (pinned) through serde, with a fixed
//! configuration: little endian, fixed-width integers (so no integer has two
//! encodings) and a hard size limit checked before anything is allocated.
//! Decoding is strict: trailing bytes are an error, and the decoded value must
//! re-encode to exactly the input, which rejects any remaining non-canonical
//! form (for example a bool byte other than 0 or 1 is already refused by
//! bincode; anything bincode would tolerate is caught by the round trip).
//!
//! bincode is flagged unmaintained (RUSTSEC-2025-0141); keeping every call
//! here means a later swap touches one file, and the golden vectors in the
//! tests of `tx`, `block` and `checkpoint` pin the bytes.

use serde::{de::DeserializeOwned, Serialize};

/// Largest record the codec will decode or produce (16 MiB). Blocks are
/// bounded further by the chain config's limits.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

type Cfg = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<MAX_RECORD_BYTES>,
>;

const CONFIG: Cfg = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<MAX_RECORD_BYTES>();

/// Largest state record [`encode_large`] writes and [`decode_large`] reads
/// (1 GiB): a node's own learned state, authenticated before it is decoded.
pub const MAX_STATE_BYTES: usize = 1 << 30;

type LargeCfg = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<MAX_STATE_BYTES>,
>;

const LARGE_CONFIG: LargeCfg = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<MAX_STATE_BYTES>();

/// Why bytes could not be decoded (or a value encoded).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// Input longer than the caller's limit, refused before decoding.
    #[error("record of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Input length.
        len: usize,
        /// Applicable limit.
        limit: usize,
    },
    /// bincode refused the bytes.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Valid prefix followed by extra bytes.
    #[error("{0} trailing bytes after record")]
    TrailingBytes(usize),
    /// Decoded, but the value does not re-encode to the same bytes.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// Encoding failed (only possible for oversized values).
    #[error("cannot encode record: {0}")]
    Encode(String),
}

/// Canonical bytes of `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Canonical bytes of a state record that may exceed [`MAX_RECORD_BYTES`]
/// (same encoding, larger limit). Never for wire records.
pub fn encode_large<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, LARGE_CONFIG)
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Strictly decode what [`encode_large`] wrote (trailing bytes and
/// non-canonical forms refused). Only for authenticated local state.
pub fn decode_large<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_strict(bytes, MAX_STATE_BYTES, LARGE_CONFIG)
}

/// Refuse `bytes` longer than `limit`, decode them with `config`, and
/// refuse trailing bytes and any form that does not re-encode to them.
fn decode_strict<T: Serialize + DeserializeOwned, C: bincode::config::Config>(
    bytes: &[u8],
    limit: usize,
    config: C,
) -> Result<T, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, read): (T, usize) = bincode::serde::borrow_decode_from_slice(bytes, config)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - read));
    }
    if !encodes_to(&value, bytes, config) {
        return Err(CodecError::NonCanonical);
    }
    Ok(value)
}

/// Strictly decode a record of at most [`MAX_RECORD_BYTES`].
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_limited(bytes, MAX_RECORD_BYTES)
}

/// Strictly decode a record, refusing inputs longer than `limit` up front.
pub fn decode_limited<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, CodecError> {
    decode_strict(bytes, limit.min(MAX_RECORD_BYTES), CONFIG)
}

/// Strictly decode the record at the start of `bytes` (a record that
/// begins a larger one, such as a block's header), returning it and its
/// length. The prefix it was decoded from must be its canonical encoding;
/// what follows is not looked at.
pub fn decode_prefix<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, usize), CodecError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit: MAX_RECORD_BYTES,
        });
    }
    let (value, read): (T, usize) = bincode::serde::borrow_decode_from_slice(bytes, CONFIG)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    match bytes.get(..read) {
        Some(prefix) if encodes_to(&value, prefix, CONFIG) => Ok((value, read)),
        _ => Err(CodecError::NonCanonical),
    }
}

/// Whether `value` encodes to exactly `bytes`, compared as the encoder
/// writes (no buffer allocated; stops at the first difference).
fn encodes_to<T: Serialize + ?Sized, C: bincode::config::Config>(
    value: &T,
    bytes: &[u8],
    config: C,
) -> bool {
    /// Compares written bytes against the expected ones.
    struct Compare<'a> {
        rest: &'a [u8],
    }
    impl bincode::enc::write::Writer for Compare<'_> {
        fn write(&mut self, b: &[u8]) -> Result<(), bincode::error::EncodeError> {
            match self.rest.strip_prefix(b) {
                Some(rest) => {
                    self.rest = rest;
                    Ok(())
                }
                None => Err(bincode::error::EncodeError::Other("differs")),
            }
        }
    }
    let mut w = Compare { rest: bytes };
    bincode::serde::encode_into_writer(value, &mut w, config).is_ok() && w.rest.is_empty()
}

/// `#[serde(with = "crate::codec::bytes")]` for `Vec<u8>` fields: encoded
/// as one byte string instead of a sequence of single bytes. With the pinned
/// config both give the same bytes on the wire (a u64 length, then the
/// bytes), so the golden vectors do not change, but encoding and decoding
/// copy the buffer at once instead of visiting every byte. Other formats
/// (JSON) still read and write an array of numbers.
pub mod bytes {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    /// Serialize as a byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Cap the pre-allocation: the hint comes from untrusted input.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    /// Deserialize from a byte string (or a sequence of bytes). Asks for
    /// borrowed bytes: the codec decodes from a slice, so the buffer is
    /// allocated once and copied into, where an owned byte buffer would
    /// first be zero-filled and then overwritten.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Rec {
        a: u32,
        b: bool,
        s: String,
        v: Vec<u16>,
        o: Option<u8>,
    }

    fn sample() -> Rec {
        Rec {
            a: 7,
            b: true,
            s: "hi".into(),
            v: vec![1, 2],
            o: None,
        }
    }

    #[test]
    fn golden_bytes_of_a_small_record() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(
            hex::encode(&bytes),
            "07000000010200000000000000686902000000000000000100020000"
        );
        assert_eq!(decode::<Rec>(&bytes).unwrap(), sample());
    }

    #[test]
    fn decodable_but_non_canonical_rejected() {
        // A map travels as a length and its pairs; bincode accepts pairs out
        // of order or repeated, but the map re-encodes sorted and unique.
        use std::collections::BTreeMap;
        let unsorted = encode(&vec![(2u8, 0u8), (1u8, 0u8)]).unwrap();
        let repeated = encode(&vec![(1u8, 0u8), (1u8, 0u8)]).unwrap();
        for bytes in [unsorted, repeated] {
            assert_eq!(
                decode::<BTreeMap<u8, u8>>(&bytes),
                Err(CodecError::NonCanonical)
            );
        }
        let sorted = encode(&vec![(1u8, 0u8), (2u8, 0u8)]).unwrap();
        let m: BTreeMap<u8, u8> = decode(&sorted).unwrap();
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        assert_eq!(decode::<Rec>(&bytes), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn bad_bool_and_bad_option_tag_rejected() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[4] = 2; // bool
        assert!(matches!(
            decode::<Rec>(&bytes),
            Err(CodecError::Malformed(_))
        ));
        let mut bytes = encode(&sample()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] = 7; // option tag
        assert!(matches!(
            decode::<Rec>(&bytes),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn truncation_rejected_everywhere() {
        let bytes = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            assert!(decode::<Rec>(&bytes[..n]).is_err(), "prefix {n} accepted");
        }
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // Vec<u16> claiming 2^62 elements.
        let mut bytes = encode(&sample()).unwrap();
        bytes[15..23].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode::<Rec>(&bytes).is_err());
    }

    #[test]
    fn limit_is_checked_before_decoding() {
        let bytes = encode(&sample()).unwrap();
        assert!(matches!(
            decode_limited::<Rec>(&bytes, 3),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
