//! RFC 9162 (Certificate Transparency v2) Merkle trees over SHA-256.
//!
//! What this module does:
//! - Hashing: `leaf_hash(d) = SHA-256(0x00 || d)`, `node_hash(l, r) =
//!   SHA-256(0x01 || l || r)`, and the empty-tree root `SHA-256("")`.
//! - In-memory Merkle Tree Hash ([`root`]), inclusion proofs
//!   ([`inclusion_proof`], RFC 9162 §2.1.3.1 `PATH`) and consistency proofs
//!   ([`consistency_proof`], RFC 9162 §2.1.4.1 `SUBPROOF`) over a slice of
//!   leaf hashes.
//! - Verification of inclusion proofs ([`verify_inclusion`],
//!   [`root_from_inclusion_proof`], RFC 9162 §2.1.3.2) and consistency proofs
//!   ([`verify_consistency`], RFC 9162 §2.1.4.2). Proof inputs are never
//!   indexed unchecked, all arithmetic is overflow-free, and every failure is
//!   reported as a [`MerkleError`]; nothing in here panics on untrusted input.
//! - Subtree proofs as defined by the Merkle Tree Certificates draft
//!   (draft-ietf-plants-merkle-tree-certs §4): a subtree `[start, end)` is
//!   valid when `start < end` and `start` is a multiple of
//!   `BIT_CEIL(end - start)`. [`verify_subtree_inclusion`] checks a leaf
//!   against a subtree hash, [`verify_subtree_consistency`] checks that a
//!   subtree hash sits at `[start, end)` of a tree with a given root. For
//!   `start == 0` these are exactly the RFC 9162 inclusion and consistency
//!   proofs.
//! - A persistent, append-only tree over an abstract [`NodeStore`] that holds
//!   only hashes of *perfect* subtrees: key `(level, index)` is the hash of
//!   leaves `[index * 2^level, (index + 1) * 2^level)`. [`append_nodes`]
//!   returns the nodes to write for one appended leaf (the caller writes them
//!   atomically); [`root_at`], [`inclusion_proof_at`],
//!   [`consistency_proof_at`] and [`subtree_consistency_proof_at`] answer for
//!   any historical size using `O(log n)` store reads. [`MemNodeStore`] is an
//!   in-memory store for tests and tools.
//!
//! What it does not do:
//! - It does not sign or check signed tree heads/checkpoints; a verified root
//!   only means something once the caller has authenticated it (and its tree
//!   size). An inclusion proof on its own does not bind the tree size beyond
//!   the shape of the path.
//! - It does not know the current tree size of a store; asking for a size
//!   larger than what has been appended yields [`MerkleError::MissingNode`].
//! - It does not detect a caller passing a wrong `size_before` to
//!   [`append_nodes`] beyond refusing to overwrite an existing leaf.
//! - No domain tags beyond the RFC 9162 `0x00`/`0x01` prefixes: what goes
//!   into a leaf (block hash, transaction id) is the caller's business.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::convert::Infallible;

/// A SHA-256 digest: leaf hash, interior node hash, or tree root.
pub type Hash = [u8; 32];

/// RFC 9162 prefix of leaf hash inputs.
pub const LEAF_PREFIX: u8 = 0x00;
/// RFC 9162 prefix of interior node hash inputs.
pub const NODE_PREFIX: u8 = 0x01;

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a proof was rejected or could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not below the tree (or subtree) size.
    #[error("leaf index {index} is out of range for tree size {tree_size}")]
    IndexOutOfRange {
        /// Offending leaf index.
        index: u64,
        /// Size of the tree the index was checked against.
        tree_size: u64,
    },
    /// The leaf index is not inside the subtree `[start, end)`.
    #[error("leaf index {index} is outside the subtree [{start}, {end})")]
    IndexOutsideSubtree {
        /// Offending leaf index.
        index: u64,
        /// Subtree start (inclusive).
        start: u64,
        /// Subtree end (exclusive).
        end: u64,
    },
    /// The proof does not have the number of hashes its sizes require.
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength {
        /// Length implied by the index and sizes.
        expected: usize,
        /// Length received.
        actual: usize,
    },
    /// The root computed from an inclusion proof differs from the given one.
    #[error("computed root does not match the expected root")]
    RootMismatch,
    /// The old (first / subtree) root computed from a consistency proof differs.
    #[error("computed first root (root1) does not match")]
    Root1Mismatch,
    /// The new (second) root computed from a consistency proof differs.
    #[error("computed second root (root2) does not match")]
    Root2Mismatch,
    /// The second tree is smaller than the first.
    #[error("size2 ({size2}) is smaller than size1 ({size1})")]
    SizeDecreased {
        /// First (older) size.
        size1: u64,
        /// Second (newer) size.
        size2: u64,
    },
    /// Equal sizes are consistent only through an empty proof.
    #[error("sizes are equal but the consistency proof is not empty")]
    NonEmptyProofForEqualSizes,
    /// A consistency proof from the empty tree to a non-empty one is not defined.
    #[error("consistency proof from the empty tree to a non-empty tree is not defined")]
    EmptyOldTree,
    /// RFC 9162 §2.1.4.2 step 1: a consistency proof between different sizes
    /// is never empty.
    #[error("consistency proof is empty")]
    EmptyProof,
    /// `[start, end)` is not a valid subtree (needs `start < end` and `start`
    /// a multiple of `BIT_CEIL(end - start)`).
    #[error("[{start}, {end}) is not a valid subtree")]
    InvalidSubtree {
        /// Subtree start (inclusive).
        start: u64,
        /// Subtree end (exclusive).
        end: u64,
    },
    /// The subtree extends past the tree.
    #[error("subtree end {end} exceeds tree size {tree_size}")]
    SubtreeOutOfRange {
        /// Subtree end (exclusive).
        end: u64,
        /// Tree size.
        tree_size: u64,
    },
    /// A size exceeds the number of leaves available in memory.
    #[error("size {size} exceeds the {available} leaves available")]
    SizeOutOfRange {
        /// Requested size.
        size: u64,
        /// Number of leaves available.
        available: u64,
    },
    /// The node store lacks a perfect-subtree node that must exist for the
    /// requested size (size larger than the stored tree, or a corrupt store).
    #[error("node store has no node at level {level}, index {index}")]
    MissingNode {
        /// Level (0 = leaves).
        level: u8,
        /// Index within the level.
        index: u64,
    },
    /// [`append_nodes`] was asked to append at a position already holding a leaf.
    #[error("a leaf already exists at index {index}")]
    LeafAlreadyExists {
        /// Index of the existing leaf.
        index: u64,
    },
    /// The tree already holds `u64::MAX` leaves.
    #[error("the tree is full")]
    TreeFull,
}

/// Largest power of two strictly below `n`. Callers pass `n >= 2`; smaller
/// values return 0 instead of panicking.
fn split_point(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    1u64 << (63 - (n - 1).leading_zeros())
}

fn len_u64(len: usize) -> u64 {
    // usize is at most 64 bits on every supported target.
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Whether `[start, end)` is a valid subtree in the Merkle Tree Certificates
/// sense: `start < end` and `start` is a multiple of `BIT_CEIL(end - start)`.
/// Exactly these intervals are nodes (or right-edge ragged nodes) of some
/// RFC 9162 tree.
pub fn is_valid_subtree(start: u64, end: u64) -> bool {
    if start >= end {
        return false;
    }
    match (end - start).checked_next_power_of_two() {
        Some(p) => start.is_multiple_of(p),
        // BIT_CEIL is 2^64: only 0 is a multiple of it.
        None => start == 0,
    }
}

// ---------------------------------------------------------------------------
// In-memory construction (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1)
// ---------------------------------------------------------------------------

/// RFC 9162 Merkle Tree Hash `MTH(D[n])` of a list of leaf hashes.
pub fn root(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => empty_root(),
        [only] => *only,
        _ => {
            let k = usize::try_from(split_point(len_u64(leaf_hashes.len())))
                .unwrap_or(leaf_hashes.len() / 2);
            let (left, right) = leaf_hashes.split_at(k);
            node_hash(&root(left), &root(right))
        }
    }
}

/// RFC 9162 §2.1.3.1 `PATH(index, D[n])`: the inclusion proof of leaf `index`
/// in the tree over `leaf_hashes`.
pub fn inclusion_proof(leaf_hashes: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    let n = len_u64(leaf_hashes.len());
    if index >= n {
        return Err(MerkleError::IndexOutOfRange {
            index,
            tree_size: n,
        });
    }
    let mut proof = Vec::new();
    path(leaf_hashes, index, &mut proof);
    Ok(proof)
}

/// Appends `PATH(m, leaves)` to `out` (bottom-up order). `m < leaves.len()`.
fn path(leaves: &[Hash], m: u64, out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_point(len_u64(leaves.len()));
    let (left, right) = leaves.split_at(usize::try_from(k).unwrap_or(leaves.len() / 2));
    if m < k {
        path(left, m, out);
        out.push(root(right));
    } else {
        path(right, m - k, out);
        out.push(root(left));
    }
}

/// RFC 9162 §2.1.4.1 `PROOF(old_size, D[n])`: the consistency proof from the
/// first `old_size` leaves to all of `leaf_hashes`. Equal sizes give an empty
/// proof; `old_size == 0 < n` is [`MerkleError::EmptyOldTree`].
pub fn consistency_proof(leaf_hashes: &[Hash], old_size: u64) -> Result<Vec<Hash>, MerkleError> {
    let n = len_u64(leaf_hashes.len());
    if old_size > n {
        return Err(MerkleError::SizeDecreased {
            size1: old_size,
            size2: n,
        });
    }
    if old_size == n {
        return Ok(Vec::new());
    }
    if old_size == 0 {
        return Err(MerkleError::EmptyOldTree);
    }
    let mut proof = Vec::new();
    subproof(leaf_hashes, old_size, true, &mut proof);
    Ok(proof)
}

/// Appends `SUBPROOF(m, leaves, b)` to `out`. `0 < m <= leaves.len()`.
fn subproof(leaves: &[Hash], m: u64, known: bool, out: &mut Vec<Hash>) {
    let n = len_u64(leaves.len());
    if m >= n {
        if !known {
            out.push(root(leaves));
        }
        return;
    }
    let k = split_point(n);
    let (left, right) = leaves.split_at(usize::try_from(k).unwrap_or(leaves.len() / 2));
    if m <= k {
        subproof(left, m, known, out);
        out.push(root(right));
    } else {
        subproof(right, m - k, false, out);
        out.push(root(left));
    }
}

/// Subtree consistency proof (Merkle Tree Certificates draft §4.4) showing
/// that the subtree `[start, end)` is part of the tree over `leaf_hashes`.
/// For `start == 0` this equals [`consistency_proof`] with `old_size = end`.
pub fn subtree_consistency_proof(
    leaf_hashes: &[Hash],
    start: u64,
    end: u64,
) -> Result<Vec<Hash>, MerkleError> {
    let n = len_u64(leaf_hashes.len());
    let plan = Plan::new(start, end, n)?;
    plan.build(|s, e| {
        let range = usize::try_from(s)
            .ok()
            .zip(usize::try_from(e).ok())
            .and_then(|(s, e)| leaf_hashes.get(s..e))
            .ok_or(MerkleError::SizeOutOfRange {
                size: e,
                available: n,
            })?;
        Ok(root(range))
    })
}

// ---------------------------------------------------------------------------
// Verification (RFC 9162 §2.1.3.2, §2.1.4.2)
// ---------------------------------------------------------------------------

/// Number of hashes in the inclusion proof of `index` in a tree of `size`
/// leaves (`index < size`).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut lo, mut hi, mut count) = (0u64, size, 0usize);
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            hi = mid;
        } else {
            lo = mid;
        }
        count += 1;
    }
    count
}

/// RFC 9162 §2.1.3.2: recompute the root from `leaf_hash` at `index` in a
/// tree of `tree_size` leaves and its inclusion proof. The caller compares
/// the result with a trusted root (or uses [`verify_inclusion`]).
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    // Step 1.
    if index >= tree_size {
        return Err(MerkleError::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_proof_len(index, tree_size);
    let length_error = MerkleError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(length_error);
    }
    // Steps 2-3.
    let mut fnode = index;
    let mut snode = tree_size - 1;
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if snode == 0 {
            return Err(length_error);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5 (the root comparison is the caller's, or verify_inclusion's).
    if snode != 0 {
        return Err(length_error);
    }
    Ok(r)
}

/// RFC 9162 §2.1.3.2: check that `leaf_hash` is the leaf at `index` of the
/// tree of `tree_size` leaves with root `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if root_from_inclusion_proof(leaf_hash, index, tree_size, proof)? == *root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// RFC 9162 §2.1.4.2: check that the tree of `size2` leaves with root `root2`
/// extends the tree of `size1` leaves with root `root1`.
///
/// Edge cases: `size1 == size2` requires an empty proof and `root1 == root2`
/// (and, for size 0, that both equal [`empty_root`]); `size1 == 0 < size2`
/// is rejected ([`MerkleError::EmptyOldTree`]) as in RFC 9162, which defines
/// no proof for it.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), MerkleError> {
    if size2 < size1 {
        return Err(MerkleError::SizeDecreased { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(MerkleError::NonEmptyProofForEqualSizes);
        }
        if root1 != root2 {
            return Err(MerkleError::Root2Mismatch);
        }
        if size1 == 0 && *root1 != empty_root() {
            return Err(MerkleError::Root1Mismatch);
        }
        return Ok(());
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyOldTree);
    }
    // Step 1.
    if proof.is_empty() {
        return Err(MerkleError::EmptyProof);
    }
    let expected = Plan::new(0, size1, size2)?.proof_len();
    let length_error = MerkleError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(length_error);
    }
    // Step 2: prepend first_hash when size1 is a power of two.
    let prefix = if size1.is_power_of_two() {
        Some(root1)
    } else {
        None
    };
    let mut path = prefix.into_iter().chain(proof.iter());
    // Step 3.
    let mut fnode = size1 - 1;
    let mut snode = size2 - 1;
    // Step 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let first = path.next().ok_or(MerkleError::EmptyProof)?;
    let mut fr = *first;
    let mut sr = *first;
    // Step 6.
    for c in path {
        if snode == 0 {
            return Err(length_error);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(length_error);
    }
    if fr != *root1 {
        return Err(MerkleError::Root1Mismatch);
    }
    if sr != *root2 {
        return Err(MerkleError::Root2Mismatch);
    }
    Ok(())
}

/// Check that `leaf_hash` is the leaf at `index` of the valid subtree
/// `[start, end)` whose hash is `subtree_root` (Merkle Tree Certificates
/// draft §4.3). Equivalent to [`verify_inclusion`] of `index - start` in a
/// tree of `end - start` leaves, after the subtree bounds checks.
pub fn verify_subtree_inclusion(
    leaf_hash: &Hash,
    index: u64,
    start: u64,
    end: u64,
    proof: &[Hash],
    subtree_root: &Hash,
) -> Result<(), MerkleError> {
    if !is_valid_subtree(start, end) {
        return Err(MerkleError::InvalidSubtree { start, end });
    }
    if index < start || index >= end {
        return Err(MerkleError::IndexOutsideSubtree { index, start, end });
    }
    verify_inclusion(leaf_hash, index - start, end - start, proof, subtree_root)
}

/// Check that the subtree `[start, end)` with hash `subtree_root` is part of
/// the tree of `tree_size` leaves with root `root` (Merkle Tree Certificates
/// draft §4.4). For `0 == start < end` this accepts exactly what
/// [`verify_consistency`] accepts for `size1 = end`, `size2 = tree_size`.
///
/// An empty subtree (`start == end <= tree_size`) is contained in every tree:
/// it verifies with an empty proof and `subtree_root == empty_root()`,
/// whatever `root` is (it proves nothing about that tree).
pub fn verify_subtree_consistency(
    start: u64,
    end: u64,
    tree_size: u64,
    proof: &[Hash],
    subtree_root: &Hash,
    root: &Hash,
) -> Result<(), MerkleError> {
    if start > end {
        return Err(MerkleError::InvalidSubtree { start, end });
    }
    if end > tree_size {
        return Err(MerkleError::SubtreeOutOfRange { end, tree_size });
    }
    if start == end {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if *subtree_root != empty_root() {
            return Err(MerkleError::Root1Mismatch);
        }
        return Ok(());
    }
    let plan = Plan::new(start, end, tree_size)?;
    let (computed_subtree, computed_root) = plan.evaluate(proof, subtree_root)?;
    if computed_subtree != *subtree_root {
        return Err(MerkleError::Root1Mismatch);
    }
    if computed_root != *root {
        return Err(MerkleError::Root2Mismatch);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Proof plan: which subtree hashes a (subtree) proof consists of
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// One sibling met on the way from the root down to the target subtree.
#[derive(Debug, Clone, Copy)]
struct Sibling {
    start: u64,
    end: u64,
    side: Side,
    /// Whether the sibling's leaves lie inside the target subtree (so it
    /// also contributes to the target subtree's hash).
    inside_target: bool,
}

/// Structure of the proof for subtree `[start, end)` in a tree of `n`
/// leaves: the siblings from the root down (proof order is bottom-up), and
/// the final node reached. If that node is the target itself its hash is
/// known to the verifier and not sent; otherwise (the target straddled a
/// split) the final node is the target's right-edge remainder and is sent
/// first. With `[index, index + 1)` this is RFC 9162 `PATH`; with `[0, m)`
/// it is RFC 9162 `SUBPROOF(m, D[n], true)`.
#[derive(Debug)]
struct Plan {
    siblings: Vec<Sibling>,
    last: (u64, u64),
    last_known: bool,
}

impl Plan {
    fn new(start: u64, end: u64, n: u64) -> Result<Self, MerkleError> {
        if !is_valid_subtree(start, end) {
            return Err(MerkleError::InvalidSubtree { start, end });
        }
        if end > n {
            return Err(MerkleError::SubtreeOutOfRange { end, tree_size: n });
        }
        let mut siblings = Vec::new();
        let (mut lo, mut hi) = (0u64, n);
        // Start of the still-unproven part of the target: once the target
        // straddles a split, the part left of the split is covered by a
        // sibling and only the remainder `[cur, end)` is followed.
        let mut cur = start;
        let mut straddled = false;
        while !(lo == cur && hi == end) {
            let size = hi - lo;
            if size < 2 {
                // Unreachable for a valid subtree; refuse rather than loop.
                return Err(MerkleError::InvalidSubtree { start, end });
            }
            let mid = lo + split_point(size);
            if end <= mid {
                siblings.push(Sibling {
                    start: mid,
                    end: hi,
                    side: Side::Right,
                    inside_target: false,
                });
                hi = mid;
            } else if cur >= mid {
                siblings.push(Sibling {
                    start: lo,
                    end: mid,
                    side: Side::Left,
                    inside_target: false,
                });
                lo = mid;
            } else {
                // cur < mid < end: only possible when the target starts at lo.
                if cur != lo {
                    return Err(MerkleError::InvalidSubtree { start, end });
                }
                straddled = true;
                siblings.push(Sibling {
                    start: lo,
                    end: mid,
                    side: Side::Left,
                    inside_target: true,
                });
                lo = mid;
                cur = mid;
            }
        }
        Ok(Plan {
            siblings,
            last: (lo, hi),
            last_known: !straddled,
        })
    }

    fn proof_len(&self) -> usize {
        self.siblings.len() + usize::from(!self.last_known)
    }

    /// Produce the proof hashes (bottom-up), asking `hash_of(start, end)` for
    /// the hash of each needed subtree.
    fn build<E>(
        &self,
        mut hash_of: impl FnMut(u64, u64) -> Result<Hash, E>,
    ) -> Result<Vec<Hash>, E> {
        let mut out = Vec::with_capacity(self.proof_len());
        if !self.last_known {
            out.push(hash_of(self.last.0, self.last.1)?);
        }
        for s in self.siblings.iter().rev() {
            out.push(hash_of(s.start, s.end)?);
        }
        Ok(out)
    }

    /// Fold a proof bottom-up, returning (target subtree hash, tree root).
    fn evaluate(&self, proof: &[Hash], target_hash: &Hash) -> Result<(Hash, Hash), MerkleError> {
        let expected = self.proof_len();
        if proof.len() != expected {
            return Err(MerkleError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        let mut items = proof.iter();
        let (mut target, mut tree) = if self.last_known {
            (*target_hash, *target_hash)
        } else {
            let first = items.next().ok_or(MerkleError::WrongProofLength {
                expected,
                actual: proof.len(),
            })?;
            (*first, *first)
        };
        for (s, p) in self.siblings.iter().rev().zip(items) {
            match s.side {
                Side::Right => tree = node_hash(&tree, p),
                Side::Left => {
                    tree = node_hash(p, &tree);
                    if s.inside_target {
                        target = node_hash(p, &target);
                    }
                }
            }
        }
        Ok((target, tree))
    }
}

// ---------------------------------------------------------------------------
// Persistent tree over perfect-subtree nodes
// ---------------------------------------------------------------------------

/// Read access to stored perfect-subtree hashes. `(level, index)` is the hash
/// of leaves `[index * 2^level, (index + 1) * 2^level)`; level 0 holds leaf
/// hashes.
pub trait NodeStore {
    /// Error of the underlying storage.
    type Error;
    /// The node at `(level, index)`, or `None` if it has not been written.
    fn get_node(&self, level: u8, index: u64) -> Result<Option<Hash>, Self::Error>;
}

impl<S: NodeStore + ?Sized> NodeStore for &S {
    type Error = S::Error;
    fn get_node(&self, level: u8, index: u64) -> Result<Option<Hash>, Self::Error> {
        (**self).get_node(level, index)
    }
}

/// A node to write: `(level, index, hash)` of a perfect subtree.
pub type NodeWrite = (u8, u64, Hash);

/// Failure of a store-backed operation: the store itself, or the tree logic.
#[derive(Debug, thiserror::Error)]
pub enum MerkleStoreError<E> {
    /// The node store returned an error.
    #[error("node store error: {0}")]
    Store(E),
    /// Invalid arguments or missing nodes.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

fn get_required<S: NodeStore + ?Sized>(
    store: &S,
    level: u8,
    index: u64,
) -> Result<Hash, MerkleStoreError<S::Error>> {
    store
        .get_node(level, index)
        .map_err(MerkleStoreError::Store)?
        .ok_or(MerkleStoreError::Merkle(MerkleError::MissingNode {
            level,
            index,
        }))
}

/// The perfect-subtree nodes to write when appending `leaf` to a stored tree
/// of `size_before` leaves: the leaf at `(0, size_before)` followed by every
/// parent it completes, bottom-up. Write them in one atomic batch.
pub fn append_nodes<S: NodeStore + ?Sized>(
    store: &S,
    size_before: u64,
    leaf: Hash,
) -> Result<Vec<NodeWrite>, MerkleStoreError<S::Error>> {
    if size_before == u64::MAX {
        return Err(MerkleError::TreeFull.into());
    }
    if store
        .get_node(0, size_before)
        .map_err(MerkleStoreError::Store)?
        .is_some()
    {
        return Err(MerkleError::LeafAlreadyExists { index: size_before }.into());
    }
    let mut out = vec![(0u8, size_before, leaf)];
    let (mut level, mut index, mut hash) = (0u8, size_before, leaf);
    // A right child (odd index) completes its parent.
    while index & 1 == 1 {
        let left = get_required(store, level, index - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        index >>= 1;
        out.push((level, index, hash));
    }
    Ok(out)
}

/// Hash of the RFC 9162 subtree `[start, end)` (`start < end`) from stored
/// perfect nodes: a perfect aligned range is one read, a ragged one is split
/// at its largest power of two.
fn stored_range_hash<S: NodeStore + ?Sized>(
    store: &S,
    start: u64,
    end: u64,
) -> Result<Hash, MerkleStoreError<S::Error>> {
    let size = end.saturating_sub(start);
    if size == 0 {
        return Err(MerkleError::InvalidSubtree { start, end }.into());
    }
    if size.is_power_of_two() && start.is_multiple_of(size) {
        // trailing_zeros of a u64 is at most 63: fits in u8.
        let level = u8::try_from(size.trailing_zeros()).unwrap_or(u8::MAX);
        return get_required(store, level, start >> level);
    }
    let mid = start + split_point(size);
    let left = stored_range_hash(store, start, mid)?;
    let right = stored_range_hash(store, mid, end)?;
    Ok(node_hash(&left, &right))
}

/// Root of the stored tree as it was at `size` leaves.
pub fn root_at<S: NodeStore + ?Sized>(
    store: &S,
    size: u64,
) -> Result<Hash, MerkleStoreError<S::Error>> {
    if size == 0 {
        return Ok(empty_root());
    }
    stored_range_hash(store, 0, size)
}

/// Inclusion proof of leaf `index` in the stored tree as it was at `size`
/// leaves. Equal to [`inclusion_proof`] over the first `size` leaves.
pub fn inclusion_proof_at<S: NodeStore + ?Sized>(
    store: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, MerkleStoreError<S::Error>> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange {
            index,
            tree_size: size,
        }
        .into());
    }
    Plan::new(index, index + 1, size)?.build(|s, e| stored_range_hash(store, s, e))
}

/// Consistency proof from stored size `size1` to stored size `size2`. Equal
/// to [`consistency_proof`] over the first `size2` leaves.
pub fn consistency_proof_at<S: NodeStore + ?Sized>(
    store: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, MerkleStoreError<S::Error>> {
    if size1 > size2 {
        return Err(MerkleError::SizeDecreased { size1, size2 }.into());
    }
    if size1 == size2 {
        return Ok(Vec::new());
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyOldTree.into());
    }
    Plan::new(0, size1, size2)?.build(|s, e| stored_range_hash(store, s, e))
}

/// Subtree consistency proof for `[start, end)` in the stored tree as it was
/// at `size` leaves. Equal to [`subtree_consistency_proof`].
pub fn subtree_consistency_proof_at<S: NodeStore + ?Sized>(
    store: &S,
    start: u64,
    end: u64,
    size: u64,
) -> Result<Vec<Hash>, MerkleStoreError<S::Error>> {
    Plan::new(start, end, size)?.build(|s, e| stored_range_hash(store, s, e))
}

/// In-memory [`NodeStore`] (a `BTreeMap`) that also tracks its size.
#[derive(Debug, Clone, Default)]
pub struct MemNodeStore {
    nodes: BTreeMap<(u8, u64), Hash>,
    size: u64,
}

impl MemNodeStore {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of stored nodes (about twice the number of leaves).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Append one leaf hash, returning the new root.
    pub fn append(&mut self, leaf: Hash) -> Result<Hash, MerkleError> {
        self.push(leaf)?;
        self.root()
    }

    /// Append one leaf hash, returning the nodes it wrote (as
    /// [`append_nodes`] lists them).
    pub fn push(&mut self, leaf: Hash) -> Result<Vec<NodeWrite>, MerkleError> {
        let nodes = append_nodes(&*self, self.size, leaf).map_err(|e| match e {
            MerkleStoreError::Merkle(m) => m,
            MerkleStoreError::Store(never) => match never {},
        })?;
        for (level, index, hash) in &nodes {
            self.nodes.insert((*level, *index), *hash);
        }
        self.size += 1;
        Ok(nodes)
    }

    /// Current root.
    pub fn root(&self) -> Result<Hash, MerkleError> {
        root_at(self, self.size).map_err(|e| match e {
            MerkleStoreError::Merkle(m) => m,
            MerkleStoreError::Store(never) => match never {},
        })
    }
}

impl NodeStore for MemNodeStore {
    type Error = Infallible;
    fn get_node(&self, level: u8, index: u64) -> Result<Option<Hash>, Infallible> {
        Ok(self.nodes.get(&(level, index)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn store_with(n: u64) -> MemNodeStore {
        let mut s = MemNodeStore::new();
        for l in leaves(n) {
            s.append(l).unwrap();
        }
        s
    }

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// Roots of the RFC 6962 / CT reference tree for sizes 1..=8.
    #[test]
    fn reference_tree_roots() {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let lh: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let mut store = MemNodeStore::new();
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(root(&lh[..=i]), h(want), "size {}", i + 1);
            assert_eq!(store.append(lh[i]).unwrap(), h(want));
        }
        assert_eq!(
            empty_root(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(root(&[]), empty_root());
        assert_eq!(root_at(&store, 0).unwrap(), empty_root());
    }

    #[test]
    fn split_point_values() {
        assert_eq!(split_point(0), 0);
        assert_eq!(split_point(1), 0);
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    /// Sizes 0..=70, every index and every (size1, size2) pair: store proofs
    /// (historical sizes of one 70-leaf store) equal in-memory RFC proofs and
    /// verify; subtree proofs over all valid subtrees verify too.
    #[test]
    fn exhaustive_small_trees() {
        const MAX: u64 = 70;
        let all = leaves(MAX);
        let store = store_with(MAX);
        assert_eq!(store.size(), MAX);
        let mut counts = (0usize, 0usize, 0usize);
        for n in 0..=MAX {
            let d = &all[..n as usize];
            let r = root(d);
            assert_eq!(root_at(&store, n).unwrap(), r, "root {n}");
            for i in 0..n {
                let p = inclusion_proof(d, i).unwrap();
                assert_eq!(inclusion_proof_at(&store, i, n).unwrap(), p, "incl {i}/{n}");
                assert_eq!(p.len(), inclusion_proof_len(i, n));
                verify_inclusion(&d[i as usize], i, n, &p, &r).unwrap();
                verify_subtree_inclusion(&d[i as usize], i, 0, n, &p, &r).unwrap();
                counts.0 += 1;
            }
            assert!(inclusion_proof(d, n).is_err());
            for m in 0..=n {
                let rm = root(&d[..m as usize]);
                if m == 0 && n > 0 {
                    assert_eq!(consistency_proof(d, 0), Err(MerkleError::EmptyOldTree));
                    assert!(verify_consistency(0, n, &[], &rm, &r).is_err());
                    continue;
                }
                let p = consistency_proof(d, m).unwrap();
                assert_eq!(
                    consistency_proof_at(&store, m, n).unwrap(),
                    p,
                    "cons {m}/{n}"
                );
                verify_consistency(m, n, &p, &rm, &r).unwrap();
                if m > 0 {
                    assert_eq!(subtree_consistency_proof(d, 0, m).unwrap(), p);
                    verify_subtree_consistency(0, m, n, &p, &rm, &r).unwrap();
                }
                counts.1 += 1;
            }
            for start in 0..n {
                for end in start + 1..=n {
                    if !is_valid_subtree(start, end) {
                        assert!(subtree_consistency_proof(d, start, end).is_err());
                        continue;
                    }
                    let sr = root(&d[start as usize..end as usize]);
                    let p = subtree_consistency_proof(d, start, end).unwrap();
                    assert_eq!(
                        subtree_consistency_proof_at(&store, start, end, n).unwrap(),
                        p
                    );
                    verify_subtree_consistency(start, end, n, &p, &sr, &r).unwrap();
                    for i in start..end {
                        let ip =
                            inclusion_proof(&d[start as usize..end as usize], i - start).unwrap();
                        verify_subtree_inclusion(&d[i as usize], i, start, end, &ip, &sr).unwrap();
                    }
                    counts.2 += 1;
                }
            }
        }
        assert_eq!(counts.0, (MAX * (MAX + 1) / 2) as usize);
        assert!(counts.1 > 2400 && counts.2 > 500, "{counts:?}");
    }

    #[test]
    fn append_nodes_writes_perfect_nodes_only() {
        let store = store_with(8);
        // 8 leaves + 4 + 2 + 1 perfect nodes.
        assert_eq!(store.node_count(), 15);
        let new = append_nodes(&store, 7, [0; 32]);
        assert!(matches!(
            new,
            Err(MerkleStoreError::Merkle(MerkleError::LeafAlreadyExists {
                index: 7
            }))
        ));
        let new = append_nodes(&store, 8, [1; 32]).unwrap();
        assert_eq!(new, vec![(0, 8, [1; 32])]);
        let s7 = store_with(7);
        let new = append_nodes(&s7, 7, leaves(8)[7]).unwrap();
        let levels: Vec<(u8, u64)> = new.iter().map(|(l, i, _)| (*l, *i)).collect();
        assert_eq!(levels, vec![(0, 7), (1, 3), (2, 1), (3, 0)]);
        assert_eq!(new[3].2, root(&leaves(8)));
        // Skipping a leaf leaves a hole: the parent cannot be built.
        let s6 = store_with(6);
        assert!(matches!(
            append_nodes(&s6, 7, [2; 32]),
            Err(MerkleStoreError::Merkle(MerkleError::MissingNode {
                level: 0,
                index: 6
            }))
        ));
        assert!(matches!(
            append_nodes(&s6, u64::MAX, [2; 32]),
            Err(MerkleStoreError::Merkle(MerkleError::TreeFull))
        ));
    }

    #[test]
    fn store_sizes_beyond_current_are_missing_nodes() {
        let store = store_with(5);
        assert!(matches!(
            root_at(&store, 6),
            Err(MerkleStoreError::Merkle(MerkleError::MissingNode { .. }))
        ));
        assert!(inclusion_proof_at(&store, 0, 9).is_err());
        assert!(consistency_proof_at(&store, 3, 6).is_err());
        assert!(matches!(
            consistency_proof_at(&store, 4, 3),
            Err(MerkleStoreError::Merkle(MerkleError::SizeDecreased { .. }))
        ));
    }

    /// A store whose reads fail: errors propagate as `Store`.
    #[derive(Debug)]
    struct FailingStore;
    impl NodeStore for FailingStore {
        type Error = String;
        fn get_node(&self, _: u8, _: u64) -> Result<Option<Hash>, String> {
            Err("disk on fire".into())
        }
    }

    #[test]
    fn store_errors_propagate() {
        assert!(
            matches!(root_at(&FailingStore, 3), Err(MerkleStoreError::Store(ref s)) if s == "disk on fire")
        );
        assert!(matches!(
            append_nodes(&FailingStore, 1, [0; 32]),
            Err(MerkleStoreError::Store(_))
        ));
        assert!(matches!(
            inclusion_proof_at(&FailingStore, 0, 2),
            Err(MerkleStoreError::Store(_))
        ));
        assert!(matches!(
            consistency_proof_at(&FailingStore, 1, 2),
            Err(MerkleStoreError::Store(_))
        ));
        let e = root_at(&FailingStore, 3).unwrap_err();
        assert_eq!(e.to_string(), "node store error: disk on fire");
    }

    #[test]
    fn edge_cases_do_not_panic() {
        let r = [7u8; 32];
        assert!(verify_inclusion(&r, 0, 0, &[], &r).is_err());
        assert!(verify_inclusion(&r, u64::MAX, u64::MAX, &[], &r).is_err());
        assert!(verify_inclusion(&r, u64::MAX - 1, u64::MAX, &[r; 64], &r).is_err());
        assert!(verify_inclusion(&r, 0, 1, &[], &r).is_ok());
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &[r; 3], &r, &r).is_err());
        assert!(verify_consistency(1, u64::MAX, &[r; 200], &r, &r).is_err());
        assert_eq!(
            verify_consistency(0, 0, &[], &r, &r),
            Err(MerkleError::Root1Mismatch)
        );
        assert!(verify_consistency(0, 0, &[], &empty_root(), &empty_root()).is_ok());
        assert!(verify_consistency(5, 5, &[], &r, &r).is_ok());
        assert_eq!(
            verify_consistency(5, 5, &[r], &r, &r),
            Err(MerkleError::NonEmptyProofForEqualSizes)
        );
        assert_eq!(
            verify_consistency(5, 4, &[], &r, &r),
            Err(MerkleError::SizeDecreased { size1: 5, size2: 4 })
        );
        assert!(!is_valid_subtree(1, 1 << 63 | 2));
        assert!(is_valid_subtree(0, u64::MAX));
        assert!(verify_subtree_consistency(0, u64::MAX, u64::MAX, &[], &r, &r).is_ok());
        assert!(verify_subtree_consistency(1, u64::MAX, u64::MAX, &[], &r, &r).is_err());
        assert!(
            verify_subtree_consistency(u64::MAX - 1, u64::MAX, u64::MAX, &[r; 63], &r, &r).is_err()
        );
        assert!(verify_subtree_inclusion(&r, 1, 1, 1 << 63 | 2, &[], &r).is_err());
        assert!(verify_subtree_inclusion(&r, 2, 2, 2, &[], &r).is_err());
    }

    /// Documents an inherent RFC 9162 property: the proof binds the tree size
    /// only through the shape of the path, so a size with the same shape
    /// verifies too. Trust in (size, root) must come from a signed tree head.
    #[test]
    fn tree_size_is_bound_only_by_path_shape() {
        let d = leaves(3);
        let p = inclusion_proof(&d, 0).unwrap();
        let r = root(&d);
        verify_inclusion(&d[0], 0, 3, &p, &r).unwrap();
        verify_inclusion(&d[0], 0, 4, &p, &r).unwrap();
        assert!(verify_inclusion(&d[0], 0, 5, &p, &r).is_err());
        assert!(verify_inclusion(&d[0], 0, 2, &p, &r).is_err());
    }

    // ----- proptest: tampered proofs are rejected --------------------------

    /// Sequence of RFC 9162 §2.1.3.2 hashing operations for (index, size):
    /// the part of the verification that depends on index and size only.
    fn inclusion_shape(index: u64, size: u64) -> Option<Vec<bool>> {
        if index >= size {
            return None;
        }
        let (mut f, mut s, mut ops) = (index, size - 1, Vec::new());
        while s != 0 {
            if f & 1 == 1 || f == s {
                ops.push(true);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                ops.push(false);
            }
            f >>= 1;
            s >>= 1;
        }
        Some(ops)
    }

    /// Same for RFC 9162 §2.1.4.2 (0 < size1 < size2).
    fn consistency_shape(size1: u64, size2: u64) -> Option<(bool, Vec<bool>)> {
        if size1 == 0 || size1 >= size2 {
            return None;
        }
        let (mut f, mut s, mut ops) = (size1 - 1, size2 - 1, Vec::new());
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        while s != 0 {
            if f & 1 == 1 || f == s {
                ops.push(true);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                ops.push(false);
            }
            f >>= 1;
            s >>= 1;
        }
        Some((size1.is_power_of_two(), ops))
    }

    #[derive(Debug, Clone)]
    enum Tamper {
        FlipProofBit(usize, usize),
        FlipLeafOrRoot1Bit(usize),
        FlipRootBit(usize),
        Index(u64),
        Size(u64),
        Truncate(usize),
        Extend(usize, Hash),
        DropFirst,
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            (any::<usize>(), 0usize..256).prop_map(|(i, b)| Tamper::FlipProofBit(i, b)),
            (0usize..256).prop_map(Tamper::FlipLeafOrRoot1Bit),
            (0usize..256).prop_map(Tamper::FlipRootBit),
            (0u64..80).prop_map(Tamper::Index),
            (0u64..80).prop_map(Tamper::Size),
            any::<usize>().prop_map(Tamper::Truncate),
            (any::<usize>(), any::<[u8; 32]>()).prop_map(|(i, h)| Tamper::Extend(i, h)),
            Just(Tamper::DropFirst),
        ]
    }

    fn flip(h: &mut Hash, bit: usize) {
        h[bit / 8 % 32] ^= 1 << (bit % 8);
    }

    /// Apply `t` to the proof; returns false if the tamper is a no-op here.
    fn tamper_proof(proof: &mut Vec<Hash>, t: &Tamper) -> bool {
        match *t {
            Tamper::FlipProofBit(i, b) if !proof.is_empty() => {
                let n = proof.len();
                flip(&mut proof[i % n], b);
                true
            }
            Tamper::Truncate(k) if !proof.is_empty() => {
                proof.truncate(k % proof.len());
                true
            }
            Tamper::Extend(i, h) => {
                let n = proof.len();
                proof.insert(i % (n + 1), h);
                true
            }
            Tamper::DropFirst if !proof.is_empty() => {
                proof.remove(0);
                true
            }
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            max_global_rejects: 10_000,
            ..ProptestConfig::default()
        })]

        #[test]
        fn tampered_inclusion_rejected(n in 1u64..=70, i in any::<u64>(), t in tamper()) {
            let d = leaves(n);
            let index = i % n;
            let r = root(&d);
            let mut proof = inclusion_proof(&d, index).unwrap();
            let mut leaf = d[index as usize];
            let mut rt = r;
            let (mut idx, mut size) = (index, n);
            let changed = match t {
                Tamper::FlipLeafOrRoot1Bit(b) => { flip(&mut leaf, b); true }
                Tamper::FlipRootBit(b) => { flip(&mut rt, b); true }
                Tamper::Index(x) => { idx = x; x != index }
                Tamper::Size(x) => { size = x; x != n }
                ref other => tamper_proof(&mut proof, other),
            };
            prop_assume!(changed);
            let res = verify_inclusion(&leaf, idx, size, &proof, &rt);
            // Only an index/size with an identical hashing shape can still
            // verify: RFC 9162 inclusion proofs bind the size through the
            // signed tree head, not through the proof.
            let same_shape = matches!(t, Tamper::Index(_) | Tamper::Size(_))
                && inclusion_shape(idx, size) == inclusion_shape(index, n);
            prop_assert!(res.is_err() || same_shape, "accepted {t:?}");
            if matches!(t, Tamper::Index(_)) {
                prop_assert!(res.is_err(), "wrong index accepted {t:?}");
            }
        }

        #[test]
        fn tampered_consistency_rejected(n in 2u64..=70, m0 in any::<u64>(), t in tamper()) {
            let d = leaves(n);
            let m = 1 + m0 % (n - 1); // 0 < m < n
            let (r1, r2) = (root(&d[..m as usize]), root(&d));
            let mut proof = consistency_proof(&d, m).unwrap();
            let (mut a, mut b) = (r1, r2);
            let (mut s1, mut s2) = (m, n);
            let changed = match t {
                Tamper::FlipLeafOrRoot1Bit(x) => { flip(&mut a, x); true }
                Tamper::FlipRootBit(x) => { flip(&mut b, x); true }
                Tamper::Index(x) => { s1 = x; x != m }
                Tamper::Size(x) => { s2 = x; x != n }
                ref other => tamper_proof(&mut proof, other),
            };
            prop_assume!(changed);
            let res = verify_consistency(s1, s2, &proof, &a, &b);
            let same_shape = matches!(t, Tamper::Index(_) | Tamper::Size(_))
                && consistency_shape(s1, s2) == consistency_shape(m, n);
            prop_assert!(res.is_err() || same_shape, "accepted {t:?}");
            // The subtree verifier must agree with the RFC one on [0, size1).
            if s1 > 0 && s1 <= s2 {
                prop_assert_eq!(
                    res.is_ok(),
                    verify_subtree_consistency(0, s1, s2, &proof, &a, &b).is_ok()
                );
            }
        }

        #[test]
        fn tampered_subtree_consistency_rejected(
            n in 1u64..=70, s0 in any::<u64>(), l0 in any::<u64>(), t in tamper()
        ) {
            let d = leaves(n);
            // Build a valid subtree: start aligned to BIT_CEIL(len), clipped at n.
            let len = 1 + l0 % n;
            let align = len.next_power_of_two();
            let start = (s0 % n) / align * align;
            let end = (start + len).min(n);
            prop_assert!(is_valid_subtree(start, end));
            let sr = root(&d[start as usize..end as usize]);
            let r = root(&d);
            let mut proof = subtree_consistency_proof(&d, start, end).unwrap();
            verify_subtree_consistency(start, end, n, &proof, &sr, &r).unwrap();
            let (mut a, mut b) = (sr, r);
            let changed = match t {
                Tamper::FlipLeafOrRoot1Bit(x) => { flip(&mut a, x); true }
                Tamper::FlipRootBit(x) => { flip(&mut b, x); true }
                Tamper::Index(_) | Tamper::Size(_) => false,
                ref other => tamper_proof(&mut proof, other),
            };
            prop_assume!(changed);
            prop_assert!(verify_subtree_consistency(start, end, n, &proof, &a, &b).is_err());
        }

        #[test]
        fn arbitrary_inputs_never_panic(
            i in any::<u64>(), s in any::<u64>(), e in any::<u64>(),
            proof in proptest::collection::vec(any::<[u8; 32]>(), 0..80),
            x in any::<[u8; 32]>(), y in any::<[u8; 32]>(),
        ) {
            let _ = verify_inclusion(&x, i, s, &proof, &y);
            let _ = verify_consistency(i, s, &proof, &x, &y);
            let _ = verify_subtree_inclusion(&x, i, s, e, &proof, &y);
            let _ = verify_subtree_consistency(i, s, e, &proof, &x, &y);
            let _ = verify_subtree_consistency(i & 0xff, s & 0xff, e & 0xff, &proof, &x, &y);
        }
    }
}
