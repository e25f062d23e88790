//! The integer semantic table: a language model distilled into something a
//! validator can run in microseconds with integers only (ADR 0020).
//!
//! `customsctl hs distil` runs all-MiniLM-L6-v2 once per WordPiece vocabulary
//! entry (and once per nomenclature text), and writes this table: for every
//! vocabulary entry an integer weight and an `i8` direction, and for every
//! chapter, heading and subheading of the nomenclature an `i16` anchor vector
//! of fixed norm. Embedding a goods description is then a BERT WordPiece
//! tokenisation ([`WordPiece`], the model's own rules, no model pass), a
//! weighted integer sum of token directions, and an integer normalisation;
//! comparing it with an anchor is an integer dot product. The table's SHA-256
//! is pinned in the chain config like the nomenclature's, so every customs
//! node scores with the same bytes; nothing here uses floats, clocks or map
//! order. The file is untrusted input: [`SemanticTable::parse`] checks every
//! length and refuses anything malformed.

use super::wordmap::WordMap;

use sha2::{Digest, Sha256};

/// First bytes of a table file.
pub const MAGIC: &[u8; 8] = b"HSSEM\0\x01\n";
/// Where setup writes the table, relative to the repository root.
pub const RELATIVE_PATH: &str = ".cache/hs-minilm.sem";
/// Environment variable naming the table file (overrides the search).
pub const ENV_VAR: &str = "CUSTOMS_HS_SEMANTIC";
/// The L2 norm of every anchor and every normalised query vector.
pub const UNIT: i64 = 4096;
/// Most WordPiece tokens of a description that count.
pub const MAX_PIECES: usize = 96;
/// Longest word (in chars) WordPiece splits; longer ones are unknown.
const MAX_WORD_CHARS: usize = 100;
/// Largest weight of a vocabulary entry a table may carry.
pub const MAX_WEIGHT: u16 = 4096;
/// Largest dimension count accepted.
const MAX_DIMS: usize = 1024;
/// Largest vocabulary accepted.
const MAX_VOCAB: usize = 200_000;
/// Most anchors per level accepted.
const MAX_ANCHORS: usize = 20_000;

/// A table that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SemanticError {
    /// Not a table file, or a different format version.
    #[error("not an HS semantic table (bad magic)")]
    Magic,
    /// The file ends early or a length is out of range.
    #[error("malformed HS semantic table: {0}")]
    Malformed(&'static str),
}

/// One level of the nomenclature (chapters, headings or subheadings) with an
/// anchor vector per code.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    codes: Vec<String>,
    index: WordMap<String, u32>,
    vectors: Vec<i16>,
}

impl Anchors {
    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// True when the level has no anchors.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Code of anchor `i`.
    pub fn code(&self, i: usize) -> Option<&str> {
        self.codes.get(i).map(String::as_str)
    }

    /// Index of `code`.
    pub fn position(&self, code: &str) -> Option<usize> {
        self.index.get(code).map(|&i| i as usize)
    }

    fn vector(&self, i: usize, dims: usize) -> Option<&[i16]> {
        self.vectors.get(i * dims..(i + 1) * dims)
    }
}

/// Builder input for [`SemanticTable::build`]: everything the distiller
/// computed, already quantised.
#[derive(Debug, Clone, Default)]
pub struct TableParts {
    /// Provenance line (model, wheel hash, method).
    pub meta: String,
    /// Vector dimensions.
    pub dims: usize,
    /// WordPiece vocabulary in id order.
    pub vocab: Vec<String>,
    /// Weight per vocabulary entry (0: ignored).
    pub weights: Vec<u16>,
    /// `vocab.len() × dims` token directions.
    pub vectors: Vec<i8>,
    /// Chapters, headings, subheadings: codes and `codes.len() × dims`
    /// anchors of norm about [`UNIT`].
    pub levels: [(Vec<String>, Vec<i16>); 3],
}

/// The distilled table (see the module docs).
#[derive(Debug, Clone)]
pub struct SemanticTable {
    meta: String,
    dims: usize,
    vocab: WordMap<String, u32>,
    /// Characters of the longest piece (without its `##`): longer
    /// substrings are never looked up.
    max_piece_chars: usize,
    weights: Vec<u16>,
    vectors: Vec<i8>,
    levels: [Anchors; 3],
    hash: [u8; 32],
}

/// Level index of chapters in [`SemanticTable::anchors`].
pub const CHAPTERS: usize = 0;
/// Level index of headings.
pub const HEADINGS: usize = 1;
/// Level index of subheadings.
pub const SUBHEADINGS: usize = 2;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SemanticError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(SemanticError::Malformed(what))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(SemanticError::Malformed(what))?;
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, SemanticError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn count(&mut self, max: usize, what: &'static str) -> Result<usize, SemanticError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(SemanticError::Malformed(what));
        }
        Ok(n)
    }

    fn string(&mut self, what: &'static str) -> Result<String, SemanticError> {
        let n = self.take(1, what)?[0] as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| SemanticError::Malformed(what))
    }
}

impl SemanticTable {
    /// Serialises distilled parts into the table file format.
    pub fn build(parts: &TableParts) -> Result<Vec<u8>, SemanticError> {
        let d = parts.dims;
        if d == 0 || d > MAX_DIMS {
            return Err(SemanticError::Malformed("dims"));
        }
        if parts.weights.len() != parts.vocab.len() || parts.vectors.len() != parts.vocab.len() * d
        {
            return Err(SemanticError::Malformed("vocabulary sizes"));
        }
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        let meta = parts.meta.as_bytes();
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(meta);
        out.extend_from_slice(&(d as u32).to_le_bytes());
        out.extend_from_slice(&(parts.vocab.len() as u32).to_le_bytes());
        for (t, w) in parts.vocab.iter().zip(&parts.weights) {
            let b = t.as_bytes();
            let len = u8::try_from(b.len()).map_err(|_| SemanticError::Malformed("token"))?;
            out.push(len);
            out.extend_from_slice(b);
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend(parts.vectors.iter().map(|&v| v as u8));
        for (codes, vectors) in &parts.levels {
            if vectors.len() != codes.len() * d {
                return Err(SemanticError::Malformed("anchor sizes"));
            }
            out.extend_from_slice(&(codes.len() as u32).to_le_bytes());
            for c in codes {
                let b = c.as_bytes();
                let len = u8::try_from(b.len()).map_err(|_| SemanticError::Malformed("code"))?;
                out.push(len);
                out.extend_from_slice(b);
            }
            for v in vectors {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Reads a table file (untrusted bytes).
    pub fn parse(bytes: &[u8]) -> Result<SemanticTable, SemanticError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len(), "magic").ok() != Some(&MAGIC[..]) {
            return Err(SemanticError::Magic);
        }
        let meta_len = r.count(4096, "meta")?;
        let meta = String::from_utf8(r.take(meta_len, "meta")?.to_vec())
            .map_err(|_| SemanticError::Malformed("meta"))?;
        let dims = r.count(MAX_DIMS, "dims")?;
        if dims == 0 {
            return Err(SemanticError::Malformed("dims"));
        }
        let n = r.count(MAX_VOCAB, "vocabulary size")?;
        let mut vocab = WordMap::with_capacity_and_hasher(n, Default::default());
        let mut max_piece_chars = 0;
        let mut weights = Vec::with_capacity(n);
        for id in 0..n {
            let t = r.string("token")?;
            let w = r.take(2, "weight")?;
            let w = u16::from_le_bytes([w[0], w[1]]);
            if w > MAX_WEIGHT {
                return Err(SemanticError::Malformed("weight"));
            }
            weights.push(w);
            let piece = t.strip_prefix("##").unwrap_or(&t);
            max_piece_chars = max_piece_chars.max(piece.chars().count());
            // A repeated token keeps its first id, as WordPiece would.
            vocab.entry(t).or_insert(id as u32);
        }
        let vectors: Vec<i8> = r
            .take(n * dims, "token vectors")?
            .iter()
            .map(|&b| b as i8)
            .collect();
        let mut levels: [Anchors; 3] = Default::default();
        for level in &mut levels {
            let m = r.count(MAX_ANCHORS, "anchor count")?;
            let mut codes = Vec::with_capacity(m);
            for _ in 0..m {
                codes.push(r.string("anchor code")?);
            }
            let raw = r.take(m * dims * 2, "anchor vectors")?;
            let vectors = raw
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            let index = codes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i as u32))
                .collect();
            *level = Anchors {
                codes,
                index,
                vectors,
            };
        }
        if r.at != bytes.len() {
            return Err(SemanticError::Malformed("trailing bytes"));
        }
        Ok(SemanticTable {
            meta,
            dims,
            vocab,
            max_piece_chars,
            weights,
            vectors,
            levels,
            hash: Sha256::digest(bytes).into(),
        })
    }

    /// Reads the table at `path`.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<SemanticTable, String> {
        let bytes = std::fs::read(path.as_ref()).map_err(|e| e.to_string())?;
        SemanticTable::parse(&bytes).map_err(|e| e.to_string())
    }

    /// Reads the table at `path` and checks it is the one the chain pins
    /// (errors name the file and, on a mismatch, both hashes).
    pub fn load_pinned(path: &std::path::Path, pinned: &[u8; 32]) -> Result<SemanticTable, String> {
        let t = SemanticTable::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if &t.hash != pinned {
            return Err(format!(
                "semantic table {} has hash {}, but the chain pins {}",
                path.display(),
                t.hash_hex(),
                hex::encode(pinned)
            ));
        }
        Ok(t)
    }

    /// SHA-256 of the file bytes (what the chain config pins).
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// [`SemanticTable::hash`] in hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// Provenance line written by the distiller.
    pub fn meta(&self) -> &str {
        &self.meta
    }

    /// Vector dimensions.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Anchors of one level ([`CHAPTERS`], [`HEADINGS`], [`SUBHEADINGS`]).
    pub fn anchors(&self, level: usize) -> &Anchors {
        &self.levels[level.min(2)]
    }

    /// WordPiece ids of `text` under the model's uncased BERT rules
    /// (at most [`MAX_PIECES`]; unknown words are dropped).
    pub fn pieces(&self, text: &str) -> Vec<u32> {
        self.pieces_up_to(text, MAX_PIECES)
    }

    /// WordPiece ids of `text`, at most `max`.
    pub fn pieces_up_to(&self, text: &str, max: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut scratch = Scratch::default();
        for_each_basic_token(text, |word| {
            if out.len() >= max {
                return false;
            }
            self.word_pieces(word, &mut out, &mut scratch);
            true
        });
        out.truncate(max);
        out
    }

    /// Weighted sum of the token directions of `pieces`, each id counted
    /// `times` over (the distiller builds anchors with it).
    pub fn accumulate(&self, pieces: &[u32], times: i64, acc: &mut [i64]) {
        let d = self.dims;
        for &id in pieces {
            let w = i64::from(self.weights.get(id as usize).copied().unwrap_or(0));
            if let Some(v) = self.vectors.get(id as usize * d..(id as usize + 1) * d) {
                for (a, &x) in acc.iter_mut().zip(v) {
                    *a += times * w * i64::from(x);
                }
            }
        }
    }

    fn word_pieces(&self, word: &str, out: &mut Vec<u32>, scratch: &mut Scratch) {
        let Scratch { chars, found, key } = scratch;
        chars.clear();
        chars.extend(word.char_indices());
        if chars.len() > MAX_WORD_CHARS {
            return;
        }
        found.clear();
        let mut start = 0;
        while start < chars.len() {
            // Longest match first, from the longest piece the vocabulary has.
            let mut end = chars.len().min(start + self.max_piece_chars);
            let mut hit = None;
            while end > start {
                let from = chars[start].0;
                let to = chars.get(end).map_or(word.len(), |c| c.0);
                key.clear();
                if start > 0 {
                    key.push_str("##");
                }
                key.push_str(&word[from..to]);
                if let Some(&id) = self.vocab.get(key.as_str()) {
                    hit = Some(id);
                    break;
                }
                end -= 1;
            }
            match hit {
                Some(id) => {
                    found.push(id);
                    start = end;
                }
                // A word WordPiece cannot split is one unknown token.
                None => return,
            }
        }
        out.extend_from_slice(found);
    }

    /// The description's vector, normalised to norm [`UNIT`]; `None` when no
    /// token carries weight.
    pub fn embed(&self, text: &str) -> Option<Vec<i16>> {
        // A long description names the goods first ("The product is ...");
        // its first sentence counts HEAD_TIMES over the rest.
        let (head, rest) = split_first_sentence(text);
        let head_pieces = self.pieces(head);
        let rest_pieces = self.pieces_up_to(rest, MAX_PIECES.saturating_sub(head_pieces.len()));
        let mut acc = vec![0i32; self.dims];
        self.accumulate_query(&head_pieces, HEAD_TIMES as i32, &mut acc);
        self.accumulate_query(&rest_pieces, 1, &mut acc);
        normalise(&acc.iter().map(|&x| i64::from(x)).collect::<Vec<_>>())
    }

    /// [`SemanticTable::accumulate`] for a query in `i32` lanes (which the
    /// compiler vectorises): at most [`MAX_PIECES`] pieces, weights at most
    /// [`MAX_WEIGHT`], `times` at most [`HEAD_TIMES`], directions within
    /// ±127, so a lane stays below 2^28.
    fn accumulate_query(&self, pieces: &[u32], times: i32, acc: &mut [i32]) {
        let d = self.dims;
        for &id in pieces.iter().take(MAX_PIECES) {
            let w = i32::from(self.weights.get(id as usize).copied().unwrap_or(0)) * times;
            if w == 0 {
                continue;
            }
            if let Some(v) = self.vectors.get(id as usize * d..(id as usize + 1) * d) {
                for (a, &x) in acc.iter_mut().zip(v) {
                    *a += w * i32::from(x);
                }
            }
        }
    }

    /// [`SemanticTable::embed`] from WordPiece ids.
    pub fn embed_pieces(&self, pieces: &[u32]) -> Option<Vec<i16>> {
        let mut acc = vec![0i32; self.dims];
        self.accumulate_query(pieces, 1, &mut acc);
        normalise(&acc.iter().map(|&x| i64::from(x)).collect::<Vec<_>>())
    }

    /// Cosine of `query` with anchor `i` of `level`, in units of 1/1000
    /// (−1000..=1000).
    pub fn cosine(&self, query: &[i16], level: usize, i: usize) -> i32 {
        match self.anchors(level).vector(i, self.dims) {
            Some(a) => milli(dot(query, a)),
            None => 0,
        }
    }

    /// Cosines of `query` with every anchor of `level`.
    pub fn cosines(&self, query: &[i16], level: usize) -> Vec<i32> {
        let anchors = self.anchors(level);
        anchors
            .vectors
            .chunks_exact(self.dims)
            .map(|a| milli(dot(query, a)))
            .collect()
    }
}

/// How much more a description's first sentence counts.
pub const HEAD_TIMES: i64 = 4;

/// The text up to and including its first sentence end (". ", "; " or a
/// line break after at least a few characters), and the rest.
pub fn split_first_sentence(text: &str) -> (&str, &str) {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let end = matches!(b, b'.' | b';' | b'\n')
            && i >= 12
            && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        if end {
            return text.split_at(i + 1);
        }
    }
    (text, "")
}

/// Integer dot product; with both vectors of norm [`UNIT`] it stays within
/// `UNIT²` (Cauchy–Schwarz), so `i32` lanes do not overflow.
///
/// Summed in [`DOT_LANES`] independent lanes so the compiler can use vector
/// multiply-adds: wrapping addition is exact modulo 2^32 in any order, so
/// the result is the one running sum's, bit for bit.
fn dot(a: &[i16], b: &[i16]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (a_chunks, a_tail) = a.as_chunks::<DOT_LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<DOT_LANES>();
    let mut lanes = [0i32; DOT_LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l = l.wrapping_add(i32::from(x) * i32::from(y));
        }
    }
    let tail = a_tail
        .iter()
        .zip(b_tail)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .fold(0i32, i32::wrapping_add);
    lanes.iter().fold(tail, |s, &l| s.wrapping_add(l))
}

/// Lanes of [`dot`].
const DOT_LANES: usize = 16;

fn milli(dot: i32) -> i32 {
    (i64::from(dot) * 1000 / (UNIT * UNIT)) as i32
}

/// Integer square root (floor).
fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    let mut x = 1u128 << ((128 - n.leading_zeros()).div_ceil(2));
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// Scales `v` to norm [`UNIT`] (rounded to nearest, integers only). Small
/// vectors are scaled up first, so the norm's integer square root keeps
/// at least 20 significant bits.
pub fn normalise(v: &[i64]) -> Option<Vec<i16>> {
    let (wide, norm) = widened_with_norm(v)?;
    let divisor = 2 * norm;
    // Queries' values fit 64 bits, where division is many times cheaper;
    // both divisions truncate toward zero, so the quotient is the same.
    let narrow_divisor = i64::try_from(divisor).ok();
    Some(
        wide.iter()
            .map(|&x| {
                let num = x * i128::from(UNIT);
                let dividend = 2 * num + num.signum() * norm;
                let q = match (i64::try_from(dividend), narrow_divisor) {
                    (Ok(n), Some(d)) => i128::from(n / d),
                    _ => dividend / divisor,
                };
                q.clamp(i128::from(i16::MIN), i128::from(i16::MAX)) as i16
            })
            .collect(),
    )
}

/// `v` in 128 bits (scaled up when its norm has fewer than 20 significant
/// bits) and that vector's integer norm; `None` for a zero vector.
fn widened_with_norm(v: &[i64]) -> Option<(Vec<i128>, i128)> {
    let wide: Vec<i128> = v.iter().map(|&x| i128::from(x)).collect();
    let sq = |w: &[i128]| -> u128 { w.iter().map(|&x| x.unsigned_abs() * x.unsigned_abs()).sum() };
    let mut norm = isqrt(sq(&wide));
    if norm == 0 {
        return None;
    }
    let bits = 128 - norm.leading_zeros();
    let wide: Vec<i128> = if bits < 20 {
        let k = 20 - bits;
        let w: Vec<i128> = wide.iter().map(|&x| x << k).collect();
        norm = isqrt(sq(&w));
        w
    } else {
        wide
    };
    Some((wide, i128::try_from(norm).ok()?))
}

/// BERT's basic uncased tokenisation: control characters dropped, CJK
/// ideographs split out, lowercased, accents stripped, split on whitespace
/// and punctuation (each punctuation character is a token).
pub fn basic_tokens(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for_each_basic_token(text, |w| {
        words.push(w.to_string());
        true
    });
    words
}

/// Buffers [`SemanticTable::word_pieces`] reuses from word to word.
#[derive(Default)]
struct Scratch {
    chars: Vec<(usize, char)>,
    found: Vec<u32>,
    key: String,
}

/// [`basic_tokens`] without a `String` per token: calls `f` with each
/// token in order until it returns `false`.
fn for_each_basic_token(text: &str, mut f: impl FnMut(&str) -> bool) {
    let mut cur = String::new();
    let mut one = [0u8; 4];
    // Hands the current word to `f` (if any); false once `f` wants no more.
    let flush = |cur: &mut String, f: &mut dyn FnMut(&str) -> bool| {
        let more = cur.is_empty() || f(cur);
        cur.clear();
        more
    };
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || (c.is_control() && !c.is_whitespace()) || is_format(c) {
            continue;
        }
        if c.is_whitespace() {
            if !flush(&mut cur, &mut f) {
                return;
            }
            continue;
        }
        if is_cjk(c) || is_punctuation(c) {
            if !flush(&mut cur, &mut f) || !f(c.encode_utf8(&mut one)) {
                return;
            }
            continue;
        }
        for l in c.to_lowercase() {
            if matches!(l as u32, 0x300..=0x36F) {
                continue; // combining marks (accents in NFD input)
            }
            match strip_accent(l) {
                Some(s) => cur.push_str(s),
                None => cur.push(l),
            }
        }
    }
    flush(&mut cur, &mut f);
}

/// Unicode format characters (category Cf) BERT's cleaning drops: soft
/// hyphen, zero-width and direction marks, word joiners, the BOM.
fn is_format(c: char) -> bool {
    matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c as u32,
            0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF
            | 0x2010..=0x2027 | 0x2030..=0x205E | 0x3001..=0x3003 | 0x3008..=0x3011
            | 0x3014..=0x301F | 0xFF01..=0xFF0F | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40
            | 0xFF5B..=0xFF65)
}

/// The base letter of a lowercase Latin letter whose canonical decomposition
/// is that letter plus combining marks (what BERT's accent stripping keeps).
fn strip_accent(c: char) -> Option<&'static str> {
    Some(match c as u32 {
        0xE0..=0xE5 | 0x101 | 0x103 | 0x105 | 0x1CE | 0x1EA1..=0x1EB7 => "a",
        0xE7 | 0x107 | 0x109 | 0x10B | 0x10D => "c",
        0x10F => "d",
        0xE8..=0xEB | 0x113 | 0x115 | 0x117 | 0x119 | 0x11B | 0x1EB9..=0x1EC7 => "e",
        0x11D | 0x11F | 0x121 | 0x123 => "g",
        0xEC..=0xEF | 0x129 | 0x12B | 0x12D | 0x12F | 0x1EC9 | 0x1ECB => "i",
        0xF1 | 0x144 | 0x146 | 0x148 => "n",
        0xF2..=0xF6 | 0x14D | 0x14F | 0x151 | 0x1A1 | 0x1ECD..=0x1EE3 => "o",
        0x155 | 0x157 | 0x159 => "r",
        0x15B | 0x15D | 0x15F | 0x161 => "s",
        0x163 | 0x165 => "t",
        0xF9..=0xFC | 0x169 | 0x16B | 0x16D | 0x16F | 0x171 | 0x173 | 0x1B0 | 0x1EE5..=0x1EF1 => {
            "u"
        }
        0xFD | 0xFF | 0x1EF3..=0x1EF9 => "y",
        0x17A | 0x17C | 0x17E => "z",
        _ => return None,
    })
}

/// Where to find the table: `$CUSTOMS_HS_SEMANTIC` if set, else the first
/// existing [`RELATIVE_PATH`] in the current directory or an ancestor.
pub fn locate() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os(ENV_VAR) {
        if !p.is_empty() {
            return Some(std::path::PathBuf::from(p));
        }
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|dir| dir.join(RELATIVE_PATH))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain running sum and the all-`i128` division that [`dot`] and
    /// [`normalise`] replaced for speed (the widening and norm are shared).
    fn dot_reference(a: &[i16], b: &[i16]) -> i32 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .fold(0i32, i32::wrapping_add)
    }

    fn normalise_reference(v: &[i64]) -> Option<Vec<i16>> {
        let (wide, norm) = widened_with_norm(v)?;
        Some(
            wide.iter()
                .map(|&x| {
                    let num = x * i128::from(UNIT);
                    let q = (2 * num + num.signum() * norm) / (2 * norm);
                    q.clamp(i128::from(i16::MIN), i128::from(i16::MAX)) as i16
                })
                .collect(),
        )
    }

    #[test]
    fn fast_dot_and_normalise_equal_the_reference_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..3000u64 {
            let len = [384usize, 383, 17, 16, 1, 0, 400][(case % 7) as usize];
            // Extremes as well as ordinary values (every lane at i16::MIN
            // overflows i32 and must wrap the same way).
            let pick = |r: u64| match r % 5 {
                0 => i16::MIN,
                1 => i16::MAX,
                _ => (r >> 8) as i16,
            };
            let a: Vec<i16> = (0..len).map(|_| pick(next())).collect();
            let b: Vec<i16> = (0..len + (case as usize % 3))
                .map(|_| pick(next()))
                .collect();
            assert_eq!(dot(&a, &b), dot_reference(&a, &b), "dot, case {case}");
            assert_eq!(
                dot(&b, &a),
                dot_reference(&b, &a),
                "dot swapped, case {case}"
            );
            // Query sums (below 2^28), tiny vectors (scaled up first) and
            // values too wide for the 64-bit path.
            let shift = [28u32, 56, 44, 36, 8][(case % 5) as usize];
            let v: Vec<i64> = (0..len)
                .map(|_| {
                    let r = next();
                    let m = (r >> (64 - shift.min(63))) as i64;
                    if r & 1 == 0 {
                        m
                    } else {
                        -m
                    }
                })
                .collect();
            assert_eq!(
                normalise(&v),
                normalise_reference(&v),
                "normalise, case {case}"
            );
        }
    }

    fn tiny() -> Vec<u8> {
        let vocab: Vec<String> = ["[UNK]", "cotton", "shirt", "##s", "t", "-", "men"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let dims = 4;
        let vectors: Vec<i8> = vec![
            0, 0, 0, 0, //
            100, 0, 0, 0, //
            0, 100, 0, 0, //
            0, 0, 0, 0, //
            0, 50, 50, 0, //
            0, 0, 0, 0, //
            0, 0, 0, 100,
        ];
        let parts = TableParts {
            meta: "test".into(),
            dims,
            vocab,
            weights: vec![0, 3, 3, 0, 1, 0, 1],
            vectors,
            levels: [
                (vec!["61".into()], vec![0, 4096, 0, 0]),
                (vec!["6109".into()], vec![2896, 2896, 0, 0]),
                (vec!["610910".into()], vec![4096, 0, 0, 0]),
            ],
        };
        SemanticTable::build(&parts).unwrap()
    }

    #[test]
    fn round_trips_and_pins_its_bytes() {
        let bytes = tiny();
        let t = SemanticTable::parse(&bytes).unwrap();
        assert_eq!(t.dims(), 4);
        assert_eq!(t.hash(), <[u8; 32]>::from(Sha256::digest(&bytes)));
        assert_eq!(t.anchors(HEADINGS).code(0), Some("6109"));
        assert_eq!(t.anchors(SUBHEADINGS).position("610910"), Some(0));
    }

    #[test]
    fn wordpiece_follows_bert_rules() {
        let t = SemanticTable::parse(&tiny()).unwrap();
        // "Shirts" -> shirt ##s; "T-shirts" -> t - shirt ##s; unknown word dropped.
        assert_eq!(t.pieces("Cotton Shirts"), vec![1, 2, 3]);
        assert_eq!(t.pieces("T-shirts, xyz"), vec![4, 5, 2, 3]);
        assert_eq!(basic_tokens("Café  Crème\u{0}!"), ["cafe", "creme", "!"]);
        assert_eq!(basic_tokens("cafe\u{301}"), ["cafe"]);
        assert_eq!(basic_tokens("棉T恤"), ["棉", "t", "恤"]);
    }

    #[test]
    fn embedding_is_integer_and_normalised() {
        let t = SemanticTable::parse(&tiny()).unwrap();
        let q = t.embed("cotton shirts").unwrap();
        let norm2: i64 = q.iter().map(|&x| i64::from(x) * i64::from(x)).sum();
        assert!((norm2 - UNIT * UNIT).abs() < 2 * UNIT, "{norm2}");
        // Equal weights on the two axes: 45 degrees from each.
        assert_eq!(t.cosine(&q, HEADINGS, 0), 999);
        assert_eq!(t.cosine(&q, SUBHEADINGS, 0), 707);
        assert_eq!(t.cosines(&q, CHAPTERS), vec![707]);
        assert_eq!(t.embed("xyz"), None);
    }

    #[test]
    fn refuses_malformed_files() {
        let bytes = tiny();
        assert_eq!(
            SemanticTable::parse(b"nonsense").unwrap_err(),
            SemanticError::Magic
        );
        for cut in [9, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(SemanticTable::parse(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SemanticTable::parse(&longer).is_err());
        // A huge declared count is refused before any allocation.
        let mut huge = bytes[..12].to_vec();
        huge.extend_from_slice(&[0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(SemanticTable::parse(&huge).is_err());
    }

    #[test]
    fn isqrt_is_exact() {
        for n in [
            0u128,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            1 << 40,
            (1 << 40) + 1,
            u64::MAX as u128,
        ] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
    }
}
