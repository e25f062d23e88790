//! Conflicting checkpoints: which parties signed statements about the
//! ledger that cannot both be true of one history.
//!
//! A checkpoint says "at height h the ledger's block is B and the
//! ledger-wide tree root is R". Two checkpoints of one chain at the same
//! height must be identical; at different heights the larger tree must
//! extend the smaller (an RFC 9162 consistency proof). A party whose valid
//! signature is on both halves of a conflicting pair has equivocated; a
//! cosignature that does not verify against the checkpoint body is named
//! too (its party did not sign what it is presented with).
//!
//! Pure functions over signed statements: the node keeps the conflicting
//! statements it receives as [`Evidence`]; the auditor names the parties.
//! Nothing here does IO or decides what to trust.

use super::{Checkpoint, CosignedCheckpoint};
use crate::config::ChainConfig;
use crate::crypto;
use crate::merkle;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// How two checkpoints relate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relation {
    /// The same statement.
    Equal,
    /// The larger extends the smaller (the consistency proof verifies).
    Extends,
    /// They cannot both be true of one history; why.
    Conflict(String),
    /// Different heights and no consistency proof to decide with.
    Undecided,
    /// Statements about different chains (a party may sign for several).
    OtherChain,
}

/// Is the checkpoint shaped like one of a real ledger (`tree_size` is
/// `height + 1`: one leaf per block, genesis included)?
pub fn well_formed(c: &Checkpoint) -> bool {
    c.height.checked_add(1) == Some(c.tree_size)
}

/// How `a` and `b` relate. `proof` is a consistency proof from the smaller
/// tree to the larger one (ignored at equal heights). A proof that fails to
/// verify is reported as a conflict: a caller that took the proof from an
/// untrusted node says so when it reports (the node may have lied).
pub fn relation(a: &Checkpoint, b: &Checkpoint, proof: Option<&[merkle::Hash]>) -> Relation {
    if a.chain_id != b.chain_id {
        return Relation::OtherChain;
    }
    if a == b {
        return Relation::Equal;
    }
    for c in [a, b] {
        if !well_formed(c) {
            return Relation::Conflict(format!(
                "the checkpoint at height {} claims tree size {}",
                c.height, c.tree_size
            ));
        }
    }
    if a.height == b.height {
        let mut diffs = Vec::new();
        if a.block_hash != b.block_hash {
            diffs.push(format!("block {} vs {}", a.block_hash, b.block_hash));
        }
        if a.tree_root != b.tree_root {
            diffs.push(format!("tree root {} vs {}", a.tree_root, b.tree_root));
        }
        return Relation::Conflict(diffs.join(", "));
    }
    let (small, big) = if a.tree_size < b.tree_size {
        (a, b)
    } else {
        (b, a)
    };
    let Some(proof) = proof else {
        return Relation::Undecided;
    };
    match merkle::verify_consistency(
        small.tree_size,
        big.tree_size,
        proof,
        &small.tree_root.0,
        &big.tree_root.0,
    ) {
        Ok(()) => Relation::Extends,
        Err(e) => Relation::Conflict(format!(
            "the tree at height {} does not extend the tree at height {}: {e}",
            big.height, small.height
        )),
    }
}

/// Parties whose cosignatures on `cp` verify against its body under `cfg`
/// (registered, not revoked, strict Ed25519), and the parties named by
/// cosignatures that do not, each once and sorted.
pub fn check_cosignatures(
    cp: &CosignedCheckpoint,
    cfg: &ChainConfig,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut valid = BTreeSet::new();
    let mut bad = BTreeSet::new();
    let Ok(msg) = cp.checkpoint.signing_bytes() else {
        // Unencodable: nothing can have signed it.
        bad.extend(cp.cosignatures.iter().map(|c| c.party.clone()));
        return (valid, bad);
    };
    for c in &cp.cosignatures {
        match cfg.party(&c.party).filter(|p| !p.revoked) {
            Some(p) if crypto::verify(&p.signing_key, &msg, &c.signature).is_ok() => {
                valid.insert(p.id.clone());
            }
            _ => {
                bad.insert(c.party.clone());
            }
        }
    }
    // A party with one good and one bad cosignature on the same body is
    // named as bad: someone attached a signature it did not make.
    (valid, bad)
}

/// Why a party is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A cosignature attributed to the party does not verify against the
    /// body of the checkpoint at this height (or the party is unknown or
    /// revoked in the trusted config).
    BadSignature {
        /// Height of the checkpoint carrying it.
        height: u64,
    },
    /// The party validly signed two checkpoints that cannot both be true.
    Equivocation {
        /// Heights of the two checkpoints (equal for a same-height fork).
        heights: (u64, u64),
        /// What conflicts.
        why: String,
    },
}

/// A party and what its signatures show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Party id as it appears on the cosignature.
    pub party: String,
    /// What is wrong.
    pub fault: Fault,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fault {
            Fault::BadSignature { height } => write!(
                f,
                "the cosignature attributed to {} on the checkpoint at height {height} does not verify against the checkpoint",
                self.party
            ),
            Fault::Equivocation {
                heights: (a, b),
                why,
            } if a == b => write!(
                f,
                "{} signed two different checkpoints at height {a} ({why})",
                self.party
            ),
            Fault::Equivocation {
                heights: (a, b),
                why,
            } => write!(
                f,
                "{} signed checkpoints at heights {a} and {b} that do not extend each other ({why})",
                self.party
            ),
        }
    }
}

/// The parties whose signatures on `a` and `b` conflict: every cosignature
/// that does not verify, and, when the two checkpoints cannot both be true
/// (see [`relation`]), every party that validly signed both. Sorted, each
/// (party, fault) once; empty when nothing conflicts or nothing can be
/// decided without a consistency proof.
pub fn conflicting_signers(
    a: &CosignedCheckpoint,
    b: &CosignedCheckpoint,
    cfg: &ChainConfig,
    proof: Option<&[merkle::Hash]>,
) -> Vec<Conflict> {
    let (valid_a, bad_a) = check_cosignatures(a, cfg);
    let (valid_b, bad_b) = check_cosignatures(b, cfg);
    let mut out = Vec::new();
    for (bad, cp) in [(&bad_a, a), (&bad_b, b)] {
        for party in bad {
            let c = Conflict {
                party: party.clone(),
                fault: Fault::BadSignature {
                    height: cp.checkpoint.height,
                },
            };
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if let Relation::Conflict(why) = relation(&a.checkpoint, &b.checkpoint, proof) {
        let (lo, hi) = if a.checkpoint.height <= b.checkpoint.height {
            (a.checkpoint.height, b.checkpoint.height)
        } else {
            (b.checkpoint.height, a.checkpoint.height)
        };
        for party in valid_a.intersection(&valid_b) {
            out.push(Conflict {
                party: party.clone(),
                fault: Fault::Equivocation {
                    heights: (lo, hi),
                    why: why.clone(),
                },
            });
        }
    }
    out.sort_by(|x, y| x.party.cmp(&y.party));
    out
}

/// Party ids of `conflicts`, each once, sorted.
pub fn parties(conflicts: &[Conflict]) -> Vec<String> {
    conflicts
        .iter()
        .map(|c| c.party.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A signed statement a node refused because it conflicts with its own
/// ledger, kept as evidence: the node's own checkpoint at that height (with
/// the cosignatures it held then) and the conflicting checkpoint with the
/// cosignature that came with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// This node's checkpoint at the height.
    pub own: CosignedCheckpoint,
    /// The conflicting checkpoint and its cosignature(s).
    pub conflicting: CosignedCheckpoint,
}

impl Evidence {
    /// Is this a conflict at all, with every cosignature on the conflicting
    /// statement valid under `cfg`? (What a node checks before keeping it.)
    pub fn holds(&self, cfg: &ChainConfig) -> bool {
        let (valid, bad) = check_cosignatures(&self.conflicting, cfg);
        bad.is_empty()
            && !valid.is_empty()
            && matches!(
                relation(&self.own.checkpoint, &self.conflicting.checkpoint, None),
                Relation::Conflict(_)
            )
    }

    /// Parties that signed the conflicting statement.
    pub fn signers(&self, cfg: &ChainConfig) -> Vec<String> {
        check_cosignatures(&self.conflicting, cfg)
            .0
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Bytes;
    use crate::testkit;

    /// A real tree of `n` leaves (block hashes `[i; 32]`), its checkpoint at
    /// height `n - 1`, and the leaves.
    fn chain(n: u64, fork_at: Option<u64>) -> (Checkpoint, Vec<merkle::Hash>) {
        let leaves: Vec<merkle::Hash> = (0..n)
            .map(|i| {
                let mut b = [i as u8; 32];
                if fork_at.is_some_and(|f| i >= f) {
                    b[31] ^= 0xff;
                }
                merkle::leaf_hash(&b)
            })
            .collect();
        let last = [(n - 1) as u8; 32];
        let mut block = last;
        if fork_at.is_some_and(|f| n > f) {
            block[31] ^= 0xff;
        }
        (
            Checkpoint {
                chain_id: "customs-test".into(),
                height: n - 1,
                block_hash: Bytes(block),
                tree_size: n,
                tree_root: Bytes(merkle::root(&leaves)),
            },
            leaves,
        )
    }

    fn signed(c: &Checkpoint, by: &[&str]) -> CosignedCheckpoint {
        CosignedCheckpoint {
            checkpoint: c.clone(),
            cosignatures: by
                .iter()
                .map(|p| c.cosign(p, &testkit::key(p)).unwrap())
                .collect(),
        }
    }

    /// One case: the named parties with their kind of fault.
    fn check(
        a: &CosignedCheckpoint,
        b: &CosignedCheckpoint,
        proof: Option<&[merkle::Hash]>,
        expected: &[(&str, &str)],
    ) {
        let got: Vec<(String, &str)> = conflicting_signers(a, b, &testkit::config(), proof)
            .into_iter()
            .map(|c| {
                let kind = match c.fault {
                    Fault::BadSignature { .. } => "bad-signature",
                    Fault::Equivocation { heights, .. } if heights.0 == heights.1 => "same-height",
                    Fault::Equivocation { .. } => "not-extending",
                };
                (c.party, kind)
            })
            .collect();
        let expected: Vec<(String, &str)> =
            expected.iter().map(|(p, k)| (p.to_string(), *k)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn identical_and_extending_checkpoints_conflict_with_nobody() {
        let (c5, leaves) = chain(6, None);
        let (c9, big) = chain(10, None);
        assert_eq!(leaves[..], big[..6]);
        let all = ["de-customs", "fr-customs", "pl-customs"];
        check(&signed(&c5, &all), &signed(&c5, &all[..1]), None, &[]);
        let proof = merkle::consistency_proof(&big, 6).unwrap();
        assert_eq!(
            relation(&c5, &c9, Some(&proof)),
            Relation::Extends,
            "real extension"
        );
        check(&signed(&c5, &all), &signed(&c9, &all), Some(&proof), &[]);
        // Without a proof nothing is decided, so nobody is named.
        check(&signed(&c5, &all), &signed(&c9, &all), None, &[]);
    }

    #[test]
    fn same_height_fork_names_only_parties_that_signed_both() {
        let (honest, _) = chain(8, None);
        let (forged, _) = chain(8, Some(7));
        assert_ne!(honest.block_hash, forged.block_hash);
        let a = signed(&honest, &["de-customs", "fr-customs", "pl-customs"]);
        let b = signed(&forged, &["de-customs", "carrier"]);
        check(&a, &b, None, &[("de-customs", "same-height")]);
        check(&b, &a, None, &[("de-customs", "same-height")]);
        let c = conflicting_signers(&a, &b, &testkit::config(), None);
        let text = c[0].to_string();
        assert!(
            text.contains("de-customs signed two different checkpoints at height 7"),
            "{text}"
        );
        // A different block with the same root is a conflict too.
        let mut same_root = honest.clone();
        same_root.block_hash.0[0] ^= 1;
        check(
            &a,
            &signed(&same_root, &["fr-customs"]),
            None,
            &[("fr-customs", "same-height")],
        );
    }

    #[test]
    fn non_extending_checkpoints_name_their_common_signers() {
        let (c5, _) = chain(6, None);
        // A fork from block 3 on: its tree of 10 does not extend c5's tree.
        let (f9, fork_leaves) = chain(10, Some(3));
        let proof = merkle::consistency_proof(&fork_leaves, 6).unwrap();
        assert!(matches!(
            relation(&c5, &f9, Some(&proof)),
            Relation::Conflict(_)
        ));
        check(
            &signed(&c5, &["de-customs", "fr-customs"]),
            &signed(&f9, &["fr-customs", "pl-customs"]),
            Some(&proof),
            &[("fr-customs", "not-extending")],
        );
        // Deliberately corrupted proof of a real extension: reported (the
        // caller says whose proof it was).
        let (c9, big) = chain(10, None);
        let mut bad = merkle::consistency_proof(&big, 6).unwrap();
        bad[0][0] ^= 1;
        check(
            &signed(&c5, &["de-customs"]),
            &signed(&c9, &["de-customs"]),
            Some(&bad),
            &[("de-customs", "not-extending")],
        );
    }

    #[test]
    fn cosignatures_that_do_not_verify_are_named() {
        let (c, _) = chain(4, None);
        let mut cp = signed(&c, &["de-customs", "fr-customs"]);
        // fr-customs's signature moved onto another body; pl-customs's made with the wrong key;
        // mallory is not registered.
        let mut other = c.clone();
        other.block_hash.0[1] ^= 1;
        cp.cosignatures[1] = other
            .cosign("fr-customs", &testkit::key("fr-customs"))
            .unwrap();
        cp.cosignatures
            .push(c.cosign("pl-customs", &testkit::key("carrier")).unwrap());
        cp.cosignatures
            .push(c.cosign("mallory", &testkit::key("carrier")).unwrap());
        let (valid, bad) = check_cosignatures(&cp, &testkit::config());
        assert_eq!(valid.into_iter().collect::<Vec<_>>(), ["de-customs"]);
        assert_eq!(
            bad.into_iter().collect::<Vec<_>>(),
            ["fr-customs", "mallory", "pl-customs"]
        );
        check(
            &cp,
            &cp,
            None,
            &[
                ("fr-customs", "bad-signature"),
                ("mallory", "bad-signature"),
                ("pl-customs", "bad-signature"),
            ],
        );
        // A revoked party's signature does not count either.
        let mut cfg = testkit::config();
        if let Some(p) = cfg.parties.iter_mut().find(|p| p.id == "de-customs") {
            p.revoked = true;
        }
        let (valid, bad) = check_cosignatures(&signed(&c, &["de-customs"]), &cfg);
        assert!(valid.is_empty());
        assert!(bad.contains("de-customs"));
    }

    #[test]
    fn malformed_and_foreign_checkpoints() {
        let (c, _) = chain(4, None);
        let mut m = c.clone();
        m.tree_size = 2;
        assert!(!well_formed(&m));
        check(
            &signed(&c, &["de-customs"]),
            &signed(&m, &["de-customs"]),
            None,
            &[("de-customs", "same-height")],
        );
        let mut other_chain = c.clone();
        other_chain.chain_id = "elsewhere".into();
        other_chain.block_hash.0[0] ^= 1;
        assert_eq!(relation(&c, &other_chain, None), Relation::OtherChain);
    }

    #[test]
    fn evidence_holds_only_for_a_validly_signed_conflict() {
        let (honest, _) = chain(8, None);
        let (forged, _) = chain(8, Some(7));
        let cfg = testkit::config();
        let ev = Evidence {
            own: signed(&honest, &["fr-customs"]),
            conflicting: signed(&forged, &["de-customs"]),
        };
        assert!(ev.holds(&cfg));
        assert_eq!(ev.signers(&cfg), ["de-customs"]);
        let same = Evidence {
            own: signed(&honest, &[]),
            conflicting: signed(&honest, &["de-customs"]),
        };
        assert!(!same.holds(&cfg), "no conflict");
        let mut unsigned = ev.clone();
        unsigned.conflicting.cosignatures[0] = honest
            .cosign("de-customs", &testkit::key("de-customs"))
            .unwrap();
        assert!(
            !unsigned.holds(&cfg),
            "signature is not on the conflicting body"
        );
    }
}
