//! Runs every JSON vector under `testdata/merkle-vectors` against the
//! `merkle` module. Each file carries `wantErr`; `false` must verify, `true`
//! must be rejected. Folders:
//! - `inclusion/`: RFC 9162 §2.1.3.2 inclusion proofs.
//! - `consistency/`: RFC 9162 §2.1.4.2 consistency proofs.
//! - `subtreeinclusion/`: inclusion of a leaf in a subtree `[start, end)`
//!   (Merkle Tree Certificates draft §4.3).
//! - `subtreeconsistency/`: a subtree `[start, end)` inside a tree of `size`
//!   leaves (Merkle Tree Certificates draft §4.4).
//!
//! Hashes are standard base64. The API takes `[u8; 32]`, so a field that does
//! not decode to exactly 32 bytes cannot be passed to it: such a vector counts
//! as rejected when it expects an error, and the few that expect success are
//! listed in `UNREPRESENTABLE_ACCEPTS` (they rely on byte-slice comparison of
//! non-hash values in the reference implementation).
//!
//! Run with `-- --nocapture` to see the per-folder counts.

// The one line to change when this file moves into the ledger crate:
use ledger::merkle;

use merkle::Hash;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const VECTORS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/merkle-vectors");

const FOLDERS: [&str; 4] = [
    "inclusion",
    "consistency",
    "subtreeinclusion",
    "subtreeconsistency",
];

/// Vectors that expect success but carry a root that is not 32 bytes long
/// (e.g. base64 of "don't care 2"); the typed API cannot express them.
const UNREPRESENTABLE_ACCEPTS: [&str; 4] = [
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
    "subtreeconsistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
    "subtreeconsistency/additional/subtree-is-empty-sizes-are-equal-one-subtree-root-valid-tree-root-random-proof-is-empty.json",
    "subtreeconsistency/additional/subtree-is-empty-sizes-are-equal-zero-subtree-root-valid-tree-root-random-proof-is-empty.json",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    #[allow(dead_code)]
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    #[allow(dead_code)]
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubtreeInclusionVector {
    leaf_idx: u64,
    start: u64,
    end: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    #[allow(dead_code)]
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubtreeConsistencyVector {
    start: u64,
    end: u64,
    size: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    #[allow(dead_code)]
    desc: String,
    want_err: bool,
}

/// Strict standard-alphabet base64 with `=` padding.
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "base64 length {} is not a multiple of 4",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.chunks(4);
    let last = chunks.len().saturating_sub(1);
    for (ci, chunk) in chunks.enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && ci != last) {
            return Err("bad base64 padding".into());
        }
        let mut acc = 0u32;
        for &c in &chunk[..4 - pad] {
            acc = acc << 6 | val(c).ok_or_else(|| format!("bad base64 char {c:#x}"))?;
        }
        acc <<= 6 * pad as u32;
        let b = acc.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Ok(out)
}

/// Decode a hash field; `Err` names a field that is not exactly 32 bytes.
fn hash(field: &str, s: &str) -> Result<Hash, String> {
    let v = base64_decode(s).unwrap_or_else(|e| panic!("{field}: {e}"));
    let n = v.len();
    v.try_into()
        .map_err(|_| format!("{field} is {n} bytes, not 32"))
}

fn proof(p: &Option<Vec<String>>) -> Result<Vec<Hash>, String> {
    p.as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| hash(&format!("proof[{i}]"), s))
        .collect()
}

/// Result of running one vector through the API.
enum Run {
    /// The verifier was called; `Ok` or the error it returned.
    Verified(Result<(), merkle::MerkleError>),
    /// A field cannot be expressed as a 32-byte hash.
    Unrepresentable(String),
}

fn run_file(folder: &str, text: &str) -> (bool, Run) {
    fn go(f: impl FnOnce() -> Result<Result<(), merkle::MerkleError>, String>) -> Run {
        match f() {
            Ok(r) => Run::Verified(r),
            Err(why) => Run::Unrepresentable(why),
        }
    }
    match folder {
        "inclusion" => {
            let v: InclusionVector = serde_json::from_str(text).expect("inclusion schema");
            let run = go(|| {
                Ok(merkle::verify_inclusion(
                    &hash("leafHash", &v.leaf_hash)?,
                    v.leaf_idx,
                    v.tree_size,
                    &proof(&v.proof)?,
                    &hash("root", &v.root)?,
                ))
            });
            (v.want_err, run)
        }
        "consistency" => {
            let v: ConsistencyVector = serde_json::from_str(text).expect("consistency schema");
            let run = go(|| {
                Ok(merkle::verify_consistency(
                    v.size1,
                    v.size2,
                    &proof(&v.proof)?,
                    &hash("root1", &v.root1)?,
                    &hash("root2", &v.root2)?,
                ))
            });
            (v.want_err, run)
        }
        "subtreeinclusion" => {
            let v: SubtreeInclusionVector =
                serde_json::from_str(text).expect("subtree inclusion schema");
            let run = go(|| {
                Ok(merkle::verify_subtree_inclusion(
                    &hash("leafHash", &v.leaf_hash)?,
                    v.leaf_idx,
                    v.start,
                    v.end,
                    &proof(&v.proof)?,
                    &hash("root", &v.root)?,
                ))
            });
            (v.want_err, run)
        }
        "subtreeconsistency" => {
            let v: SubtreeConsistencyVector =
                serde_json::from_str(text).expect("subtree consistency schema");
            let run = go(|| {
                Ok(merkle::verify_subtree_consistency(
                    v.start,
                    v.end,
                    v.size,
                    &proof(&v.proof)?,
                    &hash("root1", &v.root1)?,
                    &hash("root2", &v.root2)?,
                ))
            });
            (v.want_err, run)
        }
        other => panic!("unknown vector folder {other}"),
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[derive(Default, Debug)]
struct Counts {
    happy_run: usize,
    happy_ok: usize,
    corrupted_run: usize,
    corrupted_rejected_by_verifier: usize,
    corrupted_rejected_at_decode: usize,
    unrepresentable_accepts: usize,
}

#[test]
fn merkle_vectors() {
    let root = Path::new(VECTORS_DIR);
    assert!(root.is_dir(), "vector folder {} is missing", root.display());
    let mut top: Vec<String> = fs::read_dir(root)
        .expect("read vector root")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    let mut expected_top: Vec<String> = FOLDERS.iter().map(|s| s.to_string()).collect();
    expected_top.sort();
    assert_eq!(top, expected_top, "unexpected vector folders");

    let mut counts: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut unrepresentable_seen = Vec::new();
    for folder in FOLDERS {
        let mut files = Vec::new();
        json_files(&root.join(folder), &mut files);
        files.sort();
        let c = counts.entry(folder).or_default();
        for path in files {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            let text = fs::read_to_string(&path).expect("read vector");
            let (want_err, run) = run_file(folder, &text);
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("happy-path") {
                assert!(!want_err, "{rel}: happy path vector expects an error");
            }
            if want_err {
                c.corrupted_run += 1;
                match run {
                    Run::Verified(Ok(())) => failures.push(format!("{rel}: accepted, want error")),
                    Run::Verified(Err(_)) => c.corrupted_rejected_by_verifier += 1,
                    Run::Unrepresentable(_) => c.corrupted_rejected_at_decode += 1,
                }
            } else {
                c.happy_run += 1;
                match run {
                    Run::Verified(Ok(())) => c.happy_ok += 1,
                    Run::Verified(Err(e)) => failures.push(format!("{rel}: rejected ({e})")),
                    Run::Unrepresentable(why) => {
                        if UNREPRESENTABLE_ACCEPTS.contains(&rel.as_str()) {
                            c.unrepresentable_accepts += 1;
                            unrepresentable_seen.push(rel.clone());
                        } else {
                            failures.push(format!("{rel}: cannot run ({why})"));
                        }
                    }
                }
            }
        }
    }

    let mut total = 0;
    for (folder, c) in &counts {
        eprintln!(
            "{folder:>18}: valid {}/{} verified{}; corrupted {}/{} rejected ({} by the verifier, {} malformed hash length)",
            c.happy_ok,
            c.happy_run,
            if c.unrepresentable_accepts > 0 {
                format!(
                    " (+{} valid-but-unrepresentable, skipped)",
                    c.unrepresentable_accepts
                )
            } else {
                String::new()
            },
            c.corrupted_rejected_by_verifier + c.corrupted_rejected_at_decode,
            c.corrupted_run,
            c.corrupted_rejected_by_verifier,
            c.corrupted_rejected_at_decode,
        );
        assert!(c.happy_ok > 0, "{folder}: no valid vector verified");
        assert!(c.corrupted_run > 0, "{folder}: no corrupted vector ran");
        total += c.happy_run + c.corrupted_run;
    }
    eprintln!("{:>18}: {total} vectors", "total");
    assert!(total > 0, "no vectors ran");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    unrepresentable_seen.sort();
    let mut allow: Vec<String> = UNREPRESENTABLE_ACCEPTS
        .iter()
        .map(|s| s.to_string())
        .collect();
    allow.sort();
    assert_eq!(
        unrepresentable_seen, allow,
        "stale UNREPRESENTABLE_ACCEPTS list"
    );
}

#[test]
fn base64_decoder() {
    assert_eq!(base64_decode("").unwrap(), b"");
    assert_eq!(base64_decode("Zg==").unwrap(), b"f");
    assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
    assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
    assert_eq!(base64_decode("ZG9uJ3QgY2FyZSAy").unwrap(), b"don't care 2");
    assert!(base64_decode("Zg=").is_err());
    assert!(base64_decode("Z===").is_err());
    assert!(base64_decode("Zg==Zm9v").is_err());
    assert!(base64_decode("Zm9*").is_err());
    assert_eq!(
        hex::encode(base64_decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").unwrap()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
