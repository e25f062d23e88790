//! Lookup tables keyed by words, for the classifier's hot path.
//!
//! The classifier looks up every token of a description in several tables
//! built once from trusted data (the nomenclature's postings, the model's
//! WordPiece vocabulary, the stop words). Those lookups were a quarter of
//! a classification in a profile (B-tree key comparisons, SipHash). These
//! tables hash with a small multiply-rotate function instead. Nothing here
//! is iterated, so the order of entries never reaches a score: only
//! membership and the value found matter, and both are the same for any
//! hash function. Tables whose contents an outsider influences (learned
//! evidence from committed declarations) stay ordered maps.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing over 8-byte words (the scheme of the Firefox
/// and rustc hashers, written out here). Not keyed: use it only for tables
/// whose keys come from trusted data.
#[derive(Debug, Default, Clone, Copy)]
pub struct WordHasher(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map from trusted words (see the module docs).
pub type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;
/// A set of trusted words.
pub type WordSet<K> = HashSet<K, BuildHasherDefault<WordHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_put_and_nothing_else() {
        let words = [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefghi",
            "cotton",
            "##s",
            "t-shirt",
        ];
        let map: WordMap<String, usize> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i))
            .collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(map.get(*w), Some(&i));
        }
        for w in ["b", "abcdefgh\0", "cotton ", "abcdefghij", "\0"] {
            assert_eq!(map.get(w), None, "{w:?}");
        }
    }

    #[test]
    fn short_keys_of_different_lengths_hash_apart() {
        let h = |b: &[u8]| {
            let mut x = WordHasher::default();
            x.write(b);
            x.finish()
        };
        assert_ne!(h(b"a"), h(b"a\0"));
        assert_ne!(h(b""), h(b"\0"));
    }
}
