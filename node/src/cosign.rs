//! Checkpoint cosigning. Every node (voter or learner) cosigns checkpoints
//! of its own ledger only: it computes the checkpoint itself, checks with a
//! consistency proof that it extends the last checkpoint it cosigned, signs,
//! stores and gossips the cosignature. Cosignatures from peers are accepted
//! only when the checkpoint they sign equals this node's own at that height;
//! a conflicting one is never merged or cosigned: once its signature
//! verifies it is logged as equivocation, counted, and kept as evidence
//! (bounded, in the ledger store's metadata, see [`Cosigner::evidence`]).
//!
//! Before signing, the node also checks its own ledger: the block it names
//! must be the leaf at that height of the tree it names (a block edited on
//! disk is not), and the checkpoint must extend the last one it cosigned.
//! Failing either stops this node from cosigning for good.

use crate::metrics::Metrics;
use consensus::LedgerHandle;
use ledger::block::equivocation::{self, Evidence};
use ledger::block::{Checkpoint, Cosignature, CosignedCheckpoint};
use ledger::chain::Ledger;
use ledger::codec;
use ledger::crypto::{self, Keypair};
use ledger::{merkle, RocksStore, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A gossiped cosignature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignMessage {
    /// The checkpoint signed.
    pub checkpoint: Checkpoint,
    /// The signature.
    pub cosignature: Cosignature,
    /// The sender has no quorum at this height yet: receivers that cosigned
    /// it answer with their own cosignature (anti-entropy for lost gossip,
    /// and for a node that restarted or was cut off).
    pub wants_quorum: bool,
}

const META_LAST_COSIGNED: &[u8] = b"cosign/last";
/// Metadata key of the kept evidence (a codec-encoded `Vec<Evidence>`).
pub const META_EVIDENCE: &[u8] = b"cosign/evidence";
const MAX_PENDING: usize = 4096;
/// Cosignatures more than this many heights above this node's tip are
/// dropped, not kept pending (they are gossiped again while they lack a
/// quorum).
pub const MAX_PENDING_AHEAD: u64 = 256;
/// Evidence records kept at most, and at most per signing party (so one
/// party's flood cannot push out the evidence against another).
pub const MAX_EVIDENCE: usize = 64;
/// See [`MAX_EVIDENCE`].
pub const MAX_EVIDENCE_PER_PARTY: usize = 4;

/// Cosigning state of one node.
pub struct Cosigner {
    party: String,
    key: Keypair,
    ledger: LedgerHandle,
    metrics: std::sync::Arc<Metrics>,
    /// Highest height with a quorum of cosignatures.
    pub quorum_height: AtomicU64,
    /// Cosignatures of heights this node has not reached, one per
    /// (height, signing party), at most [`MAX_PENDING_AHEAD`] heights ahead.
    pending: Mutex<BTreeMap<(u64, String), CosignMessage>>,
    refused: Mutex<bool>,
    /// The rotated-key warning was logged.
    key_warned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cosigner({})", self.party)
    }
}

/// Why a cosignature was not merged.
#[derive(Debug, PartialEq, Eq)]
pub enum Merge {
    /// Merged (or already known).
    Merged,
    /// Kept until this node reaches the height.
    Pending,
    /// Signature or signer invalid.
    Invalid(String),
    /// The signed checkpoint conflicts with this node's ledger: never
    /// merged, never cosigned.
    Equivocation {
        /// What conflicts.
        why: String,
        /// Evidence records held after keeping this one (`None` when it
        /// could not be written).
        kept: Option<usize>,
    },
}

impl Cosigner {
    /// A cosigner for `party`.
    pub fn new(
        party: &str,
        key: Keypair,
        ledger: LedgerHandle,
        metrics: std::sync::Arc<Metrics>,
    ) -> Self {
        Cosigner {
            party: party.to_string(),
            key,
            ledger,
            metrics,
            quorum_height: AtomicU64::new(0),
            pending: Mutex::new(BTreeMap::new()),
            refused: Mutex::new(false),
            key_warned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Recover the highest quorum height from the stored checkpoints (after
    /// a restart the in-memory value starts at zero).
    pub fn recover_quorum(&self) {
        let q = self.ledger.with_ledger(|l| {
            l.store()
                .latest_checkpoint()
                .ok()
                .flatten()
                .filter(|c| has_quorum(l, c))
                .map(|c| c.checkpoint.height)
        });
        if let Ok(Some(h)) = q {
            self.quorum_height.fetch_max(h, Ordering::Relaxed);
        }
        let kept = self.evidence().len() as u64;
        self.metrics
            .equivocation_evidence
            .store(kept, Ordering::Relaxed);
    }

    /// The conflicting signed checkpoints this node has kept as evidence,
    /// oldest first.
    pub fn evidence(&self) -> Vec<Evidence> {
        self.ledger
            .with_ledger(|l| load_evidence(l).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Has this node itself cosigned `height`?
    pub fn has_own(&self, height: u64) -> bool {
        self.ledger
            .with_ledger(|l| {
                l.store()
                    .checkpoint(height)
                    .ok()
                    .flatten()
                    .is_some_and(|cp| cp.cosignatures.iter().any(|s| s.party == self.party))
            })
            .unwrap_or(false)
    }

    /// Stop cosigning for good (after a detected divergence).
    pub fn refuse(&self) {
        if let Ok(mut r) = self.refused.lock() {
            *r = true;
        }
    }

    fn refused(&self) -> bool {
        self.refused.lock().map(|r| *r).unwrap_or(true)
    }

    /// Cosign the checkpoint at `height` of the own ledger (if consistent
    /// with the last cosigned one). Returns the message to gossip.
    pub fn cosign_height(&self, height: u64) -> Option<CosignMessage> {
        if self.refused() {
            return None;
        }
        let r = self
            .ledger
            .with_ledger(|l| -> Result<Option<CosignMessage>, String> {
                if height > l.tip().height {
                    return Ok(None);
                }
                // This node disagreed with an outcome at or below `height`:
                // it vouches for nothing from that block on (ADR 0014).
                if let Some(d) = consensus::divergence(l.store())? {
                    self.metrics
                        .cosign_halted_at
                        .store(d.height, Ordering::Relaxed);
                    if height >= d.height {
                        return Ok(None);
                    }
                }
                // A cosignature is checked against the config in force at
                // its height: sign only with the key that config registers
                // for this party, and only heights whose config is still
                // the one in force (after a key rotation, older heights are
                // left to the cosignatures made before it).
                let config = l.config();
                let registered = config.party(&self.party).map(|p| p.signing_key);
                if registered != Some(self.key.public()) {
                    if !self.key_warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "the chain config registers another signing key for {} (rotated by governance): this node cosigns nothing until it is restarted with that key",
                            self.party
                        );
                    }
                    return Ok(None);
                }
                let config_seq = config.seq;
                let at = l
                    .store()
                    .block_header(height)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no block {height}"))?;
                if at.config_seq != config_seq {
                    return Ok(None);
                }
                let cp = l.checkpoint_at(height).map_err(|e| e.to_string())?;
                // The block named must be the leaf of the tree named (a block
                // edited on disk is not).
                let path = l
                    .block_inclusion_proof(height, cp.tree_size)
                    .map_err(|e| e.to_string())?;
                merkle::verify_inclusion(
                    &merkle::leaf_hash(&cp.block_hash.0),
                    height,
                    cp.tree_size,
                    &path,
                    &cp.tree_root.0,
                )
                .map_err(|e| {
                    format!("own block {height} is not the one in the own ledger tree: {e}")
                })?;
                // Never cosign something inconsistent with the last cosigned checkpoint.
                if let Some(last) = l
                    .store()
                    .meta(META_LAST_COSIGNED)
                    .map_err(|e| e.to_string())?
                {
                    let last: Checkpoint = codec::decode(&last).map_err(|e| e.to_string())?;
                    let (small, big) = if last.tree_size <= cp.tree_size {
                        (&last, &cp)
                    } else {
                        (&cp, &last)
                    };
                    if small.tree_size < big.tree_size {
                        let proof = l
                            .consistency_proof(small.tree_size, big.tree_size)
                            .map_err(|e| e.to_string())?;
                        merkle::verify_consistency(
                            small.tree_size,
                            big.tree_size,
                            &proof,
                            &small.tree_root.0,
                            &big.tree_root.0,
                        )
                        .map_err(|e| {
                            format!("own ledger inconsistent with last cosigned checkpoint: {e}")
                        })?;
                    } else if small != big {
                        return Err("two different checkpoints of the same size".into());
                    }
                }
                let sig = cp
                    .cosign(&self.party, &self.key)
                    .map_err(|e| e.to_string())?;
                merge_into(l, &cp, sig.clone()).map_err(|e| e.to_string())?;
                if cp.height >= last_height(l) {
                    let bytes = codec::encode(&cp).map_err(|e| e.to_string())?;
                    l.store()
                        .put_meta(META_LAST_COSIGNED, &bytes)
                        .map_err(|e| e.to_string())?;
                }
                Ok(Some(CosignMessage {
                    checkpoint: cp,
                    cosignature: sig,
                    wants_quorum: false,
                }))
            });
        match r {
            Ok(Ok(m)) => {
                self.refresh_quorum(height);
                m
            }
            Ok(Err(e)) | Err(consensus::ConsensusError::Raft(e)) => {
                tracing::error!("not cosigning height {height}: {e}");
                self.metrics.divergences.fetch_add(1, Ordering::Relaxed);
                self.refuse();
                None
            }
            Err(e) => {
                tracing::warn!("cosign: {e}");
                None
            }
        }
    }

    fn refresh_quorum(&self, height: u64) {
        let q = self.ledger.with_ledger(|l| {
            l.store()
                .checkpoint(height)
                .ok()
                .flatten()
                .is_some_and(|c| has_quorum(l, &c))
        });
        if q.unwrap_or(false) {
            self.quorum_height.fetch_max(height, Ordering::Relaxed);
        }
    }

    /// Take in a gossiped cosignature.
    pub fn receive(&self, msg: CosignMessage) -> Merge {
        let h = msg.checkpoint.height;
        // The signature is checked against the committed config outside
        // the ledger lock (a flood of gossip must not hold up apply).
        let r = match self.check_signature(&msg) {
            Err(m) => Ok(m),
            Ok(seq) => self.ledger.with_ledger(|l| merge_verified(l, &msg, seq)),
        };
        let outcome = r.unwrap_or_else(|e| Merge::Invalid(e.to_string()));
        match &outcome {
            Merge::Pending => {
                if let Ok(mut p) = self.pending.lock() {
                    // One per (height, party): a replayed or repeated
                    // cosignature replaces, never adds.
                    let key = (h, msg.cosignature.party.clone());
                    if p.len() < MAX_PENDING || p.contains_key(&key) {
                        p.insert(key, msg);
                    }
                }
            }
            Merge::Equivocation { why, kept } => {
                tracing::error!("EQUIVOCATION: {why}");
                self.metrics.divergences.fetch_add(1, Ordering::Relaxed);
                self.metrics.equivocations.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = kept {
                    self.metrics
                        .equivocation_evidence
                        .store(*n as u64, Ordering::Relaxed);
                }
            }
            Merge::Invalid(why) => tracing::warn!("cosignature refused: {why}"),
            Merge::Merged => self.refresh_quorum(h),
        }
        outcome
    }

    /// The cosignature in `msg` is by an unrevoked party of this chain and
    /// verifies (strict) over the checkpoint, under the committed config.
    /// Returns that config's sequence number.
    fn check_signature(&self, msg: &CosignMessage) -> Result<u64, Merge> {
        let config = self
            .ledger
            .with_ledger(|l| l.shared_config())
            .map_err(|e| Merge::Invalid(e.to_string()))?;
        let p = config
            .party(&msg.cosignature.party)
            .filter(|p| !p.revoked)
            .ok_or_else(|| Merge::Invalid(format!("unknown cosigner {}", msg.cosignature.party)))?;
        if msg.checkpoint.chain_id != config.chain_id {
            return Err(Merge::Invalid(format!(
                "{} cosigned a checkpoint of chain {:?}",
                p.id, msg.checkpoint.chain_id
            )));
        }
        let bytes = msg
            .checkpoint
            .signing_bytes()
            .map_err(|_| Merge::Invalid("unencodable".into()))?;
        crypto::verify(&p.signing_key, &bytes, &msg.cosignature.signature)
            .map_err(|_| Merge::Invalid(format!("bad cosignature from {}", p.id)))?;
        Ok(config.seq)
    }

    /// Retry pending cosignatures for heights now reached.
    pub fn drain_pending(&self, tip: u64) {
        let ready: Vec<CosignMessage> = match self.pending.lock() {
            Ok(mut p) => {
                let later = p.split_off(&(tip.saturating_add(1), String::new()));
                let ready = std::mem::replace(&mut *p, later);
                ready.into_values().collect()
            }
            Err(_) => return,
        };
        for m in ready {
            self.receive(m);
        }
    }
}

/// Merge a cosignature whose signature [`Cosigner::check_signature`]
/// accepted, under the ledger lock: pending when this node has not reached
/// its height (dropped when far above), merged when it matches this node's
/// checkpoint, kept as evidence when it conflicts.
fn merge_verified(l: &Ledger<RocksStore>, msg: &CosignMessage, checked_seq: u64) -> Merge {
    let h = msg.checkpoint.height;
    let tip = l.tip().height;
    if h > tip {
        if h > tip.saturating_add(MAX_PENDING_AHEAD) {
            return Merge::Invalid(format!(
                "cosignature for height {h}, more than {MAX_PENDING_AHEAD} above this node's tip {tip}"
            ));
        }
        return Merge::Pending;
    }
    // The signature was checked under config `checked_seq`: it counts only
    // if that is the config in force at height `h` (auditors check it
    // under that one) and still the committed one.
    match l.store().block_header(h) {
        Ok(Some(at)) if at.config_seq == checked_seq && l.config().seq == checked_seq => {}
        Ok(Some(_)) => {
            return Merge::Invalid(format!(
                "cosignature by {} for height {h}, whose chain config governance has since changed",
                msg.cosignature.party
            ))
        }
        Ok(None) => return Merge::Invalid(format!("no block {h}")),
        Err(e) => return Merge::Invalid(e.to_string()),
    }
    match l.checkpoint_at(h) {
        Ok(own) if own == msg.checkpoint => match merge_into(l, &own, msg.cosignature.clone()) {
            Ok(()) => Merge::Merged,
            Err(e) => Merge::Invalid(e.to_string()),
        },
        Ok(own) => {
            let why = format!(
                "{} cosigned height {h} with block {} and root {}, but this node has block {} and root {}",
                msg.cosignature.party,
                msg.checkpoint.block_hash,
                msg.checkpoint.tree_root,
                own.block_hash,
                own.tree_root
            );
            match keep_evidence(l, &own, msg) {
                Ok(n) => Merge::Equivocation { why, kept: Some(n) },
                Err(e) => {
                    tracing::warn!("cannot keep equivocation evidence: {e}");
                    Merge::Equivocation { why, kept: None }
                }
            }
        }
        Err(e) => Merge::Invalid(e.to_string()),
    }
}

/// Does `c` carry the chain config's quorum of cosignatures?
pub fn has_quorum(l: &Ledger<RocksStore>, c: &CosignedCheckpoint) -> bool {
    c.cosignatures.len() >= l.config().checkpoint_quorum as usize
}

fn load_evidence(l: &Ledger<RocksStore>) -> Result<Vec<Evidence>, String> {
    match l.store().meta(META_EVIDENCE).map_err(|e| e.to_string())? {
        None => Ok(Vec::new()),
        Some(b) => codec::decode(&b).map_err(|e| format!("stored evidence: {e}")),
    }
}

/// Keep `msg` (whose signature the caller verified) as evidence against
/// this node's checkpoint `own` at the same height. Bounded: one record per
/// (party, conflicting checkpoint), [`MAX_EVIDENCE_PER_PARTY`] per party and
/// [`MAX_EVIDENCE`] in all; the oldest records are kept. Returns the number
/// of records held.
fn keep_evidence(
    l: &Ledger<RocksStore>,
    own: &Checkpoint,
    msg: &CosignMessage,
) -> Result<usize, String> {
    let mut all = load_evidence(l)?;
    let party = &msg.cosignature.party;
    let signed_by = |e: &Evidence| e.conflicting.cosignatures.iter().any(|c| &c.party == party);
    if all
        .iter()
        .any(|e| signed_by(e) && e.conflicting.checkpoint == msg.checkpoint)
    {
        return Ok(all.len());
    }
    if all.len() >= MAX_EVIDENCE
        || all.iter().filter(|e| signed_by(e)).count() >= MAX_EVIDENCE_PER_PARTY
    {
        return Ok(all.len());
    }
    let own = l
        .store()
        .checkpoint(own.height)
        .map_err(|e| e.to_string())?
        .filter(|c| &c.checkpoint == own)
        .unwrap_or_else(|| CosignedCheckpoint {
            checkpoint: own.clone(),
            cosignatures: Vec::new(),
        });
    let ev = Evidence {
        own: own.clone(),
        conflicting: CosignedCheckpoint {
            checkpoint: msg.checkpoint.clone(),
            cosignatures: vec![msg.cosignature.clone()],
        },
    };
    if !ev.holds(l.config()) {
        return Err("not a validly signed conflict".into());
    }
    // Name the party as an equivocator when this node also holds its
    // signature on the own checkpoint (then the pair alone proves it).
    let proven = equivocation::conflicting_signers(&ev.own, &ev.conflicting, l.config(), None);
    tracing::warn!(
        signer = %party,
        height = own.checkpoint.height,
        "kept equivocation evidence{}",
        if proven.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                proven
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    );
    all.push(ev);
    let bytes = codec::encode(&all).map_err(|e| e.to_string())?;
    l.store()
        .put_meta(META_EVIDENCE, &bytes)
        .map_err(|e| e.to_string())?;
    Ok(all.len())
}

fn last_height(l: &Ledger<RocksStore>) -> u64 {
    l.store()
        .meta(META_LAST_COSIGNED)
        .ok()
        .flatten()
        .and_then(|b| codec::decode::<Checkpoint>(&b).ok())
        .map_or(0, |c| c.height)
}

fn merge_into(
    l: &Ledger<RocksStore>,
    cp: &Checkpoint,
    sig: Cosignature,
) -> Result<(), ledger::store::StoreError> {
    let mut stored = l
        .store()
        .checkpoint(cp.height)?
        .filter(|c| &c.checkpoint == cp)
        .unwrap_or(CosignedCheckpoint {
            checkpoint: cp.clone(),
            cosignatures: Vec::new(),
        });
    if stored.cosignatures.iter().any(|c| c.party == sig.party) {
        return Ok(());
    }
    stored.cosignatures.push(sig);
    stored.cosignatures.sort_by(|a, b| a.party.cmp(&b.party));
    l.store().put_checkpoint(&stored)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ledger::chain::{BlockContext, NoContent};
    use ledger::testkit::{self, T0};
    use std::sync::Arc;

    /// A ledger of `blocks` empty blocks on disk, opened the way the node
    /// opens it, and a cosigner for `party` over it.
    fn cosigner(
        dir: &std::path::Path,
        party: &str,
        blocks: u64,
    ) -> (Cosigner, consensus::LedgerStateMachine) {
        let path = dir.join("ledger");
        {
            let store = RocksStore::open(&path).unwrap();
            let mut l = Ledger::init(store, testkit::config(), T0).unwrap();
            for h in 1..=blocks {
                let ctx = BlockContext {
                    timestamp_ms: T0 + h * 1000,
                    raft_term: 1,
                    raft_index: h,
                    proposer: "de-customs".into(),
                };
                l.apply(&[], &ctx, &mut NoContent).unwrap();
            }
        }
        let sm =
            consensus::LedgerStateMachine::open(&path, testkit::config(), T0, Box::new(NoContent))
                .unwrap();
        let c = Cosigner::new(
            party,
            testkit::key(party),
            sm.handle(),
            Arc::new(Metrics::default()),
        );
        (c, sm)
    }

    fn own(c: &Cosigner, h: u64) -> Checkpoint {
        c.ledger
            .with_ledger(|l| l.checkpoint_at(h))
            .unwrap()
            .unwrap()
    }

    fn stored(c: &Cosigner, h: u64) -> Option<CosignedCheckpoint> {
        c.ledger
            .with_ledger(|l| l.store().checkpoint(h))
            .unwrap()
            .unwrap()
    }

    fn msg(cp: &Checkpoint, by: &str) -> CosignMessage {
        CosignMessage {
            checkpoint: cp.clone(),
            cosignature: cp.cosign(by, &testkit::key(by)).unwrap(),
            wants_quorum: false,
        }
    }

    /// The same height, another block (a fork or a leader signing a block
    /// it never committed).
    /// Pretend `cp` is the last checkpoint `c` cosigned.
    fn set_last_cosigned(c: &Cosigner, cp: &Checkpoint) {
        c.ledger
            .with_ledger(|l| {
                l.store()
                    .put_meta(META_LAST_COSIGNED, &codec::encode(cp).unwrap())
            })
            .unwrap()
            .unwrap();
    }

    fn forged(cp: &Checkpoint, n: u8) -> Checkpoint {
        let mut f = cp.clone();
        f.block_hash.0[0] ^= n;
        f.tree_root.0[0] ^= n;
        f
    }

    #[test]
    fn merges_equal_cosignatures_and_keeps_conflicting_ones_as_evidence() {
        let d = tempfile::tempdir().unwrap();
        let (c, _sm) = cosigner(d.path(), "fr-customs", 3);
        let mine = c.cosign_height(2).expect("cosigns its own checkpoint");
        assert_eq!(mine.checkpoint, own(&c, 2));
        assert_eq!(c.receive(msg(&own(&c, 2), "de-customs")), Merge::Merged);

        // The leader's key on another block at height 2: refused, kept.
        let bad = forged(&own(&c, 2), 1);
        let r = c.receive(msg(&bad, "de-customs"));
        assert!(
            matches!(&r, Merge::Equivocation { kept: Some(1), why } if why.contains("de-customs")),
            "{r:?}"
        );
        let cp = stored(&c, 2).unwrap();
        assert_eq!(
            cp.checkpoint,
            own(&c, 2),
            "the stored checkpoint is still ours"
        );
        let parties: Vec<&str> = cp.cosignatures.iter().map(|s| s.party.as_str()).collect();
        assert_eq!(parties, ["de-customs", "fr-customs"]);
        assert_eq!(c.metrics.equivocations.load(Ordering::Relaxed), 1);
        assert_eq!(c.metrics.equivocation_evidence.load(Ordering::Relaxed), 1);
        let ev = c.evidence();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].conflicting.checkpoint, bad);
        let named = equivocation::conflicting_signers(
            &ev[0].own,
            &ev[0].conflicting,
            &testkit::config(),
            None,
        );
        assert_eq!(equivocation::parties(&named), ["de-customs"]);

        // The same statement again is counted but not kept twice.
        assert!(matches!(
            c.receive(msg(&bad, "de-customs")),
            Merge::Equivocation { kept: Some(1), .. }
        ));
        assert_eq!(c.metrics.equivocations.load(Ordering::Relaxed), 2);
        // Bounded per party and in all.
        for n in 2..=20 {
            c.receive(msg(&forged(&own(&c, 1), n), "de-customs"));
        }
        let ev = c.evidence();
        assert_eq!(ev.len(), MAX_EVIDENCE_PER_PARTY);
        assert!(ev.iter().all(|e| e.holds(&testkit::config())));
        // Kept across a restart of the cosigner.
        let again = Cosigner::new(
            "fr-customs",
            testkit::key("fr-customs"),
            c.ledger.clone(),
            Arc::new(Metrics::default()),
        );
        again.recover_quorum();
        assert_eq!(again.evidence(), ev);
        assert_eq!(
            again.metrics.equivocation_evidence.load(Ordering::Relaxed),
            MAX_EVIDENCE_PER_PARTY as u64
        );

        // A signature that does not verify is refused and not evidence.
        let mut m = msg(&forged(&own(&c, 3), 9), "pl-customs");
        m.cosignature.signature.0[5] ^= 1;
        assert!(matches!(c.receive(m), Merge::Invalid(_)));
        let mut m = msg(&forged(&own(&c, 3), 9), "pl-customs");
        m.cosignature.party = "fr-customs".into();
        assert!(matches!(c.receive(m), Merge::Invalid(_)));
        // Another chain's checkpoint is not about this ledger.
        let mut other = own(&c, 3);
        other.chain_id = "elsewhere".into();
        assert!(matches!(
            c.receive(msg(&other, "pl-customs")),
            Merge::Invalid(_)
        ));
        // Above the tip: judged once the node gets there.
        let mut ahead = own(&c, 3);
        ahead.height = 7;
        ahead.tree_size = 8;
        assert_eq!(c.receive(msg(&ahead, "pl-customs")), Merge::Pending);
        assert_eq!(c.evidence().len(), MAX_EVIDENCE_PER_PARTY);
        // Never cosigned by this node: the only checkpoints it signed are its own.
        for h in 0..=3 {
            if let Some(cp) = stored(&c, h) {
                assert_eq!(cp.checkpoint, own(&c, h));
            }
        }
    }

    #[test]
    fn never_cosigns_two_inconsistent_checkpoints() {
        // Same height: the last cosigned checkpoint at 3 differs from the ledger's now.
        let d = tempfile::tempdir().unwrap();
        let (c, _sm) = cosigner(d.path(), "pl-customs", 3);
        assert!(c.cosign_height(3).is_some());
        let other = forged(&own(&c, 3), 1);
        set_last_cosigned(&c, &other);
        assert_eq!(
            c.cosign_height(3),
            None,
            "same height, different checkpoint"
        );
        assert_eq!(c.metrics.divergences.load(Ordering::Relaxed), 1);
        assert_eq!(c.cosign_height(2), None, "refuses for good");

        // Lower height: the ledger does not extend the last cosigned tree.
        let d = tempfile::tempdir().unwrap();
        let (c, _sm) = cosigner(d.path(), "pl-customs", 3);
        assert!(c.cosign_height(1).is_some());
        let other = forged(&own(&c, 1), 1);
        set_last_cosigned(&c, &other);
        assert_eq!(c.cosign_height(3), None, "not an extension");
        let signed_by_me = stored(&c, 3)
            .map(|cp| cp.cosignatures.iter().any(|s| s.party == "pl-customs"))
            .unwrap_or(false);
        assert!(!signed_by_me);
    }

    #[test]
    fn refuses_to_cosign_a_block_edited_on_disk() {
        let d = tempfile::tempdir().unwrap();
        let (c, _sm) = cosigner(d.path(), "carrier", 3);
        assert!(c.cosign_height(2).is_some());
        // Block 2 edited in place (its hash changes; the tree does not).
        c.ledger
            .with_ledger(|l| {
                let mut b = l.store().block(2).unwrap().unwrap();
                b.header.timestamp_ms += 1;
                l.store().put_raw_block(2, &b.encode().unwrap())
            })
            .unwrap()
            .unwrap();
        assert_eq!(c.cosign_height(2), None);
        assert_eq!(c.metrics.divergences.load(Ordering::Relaxed), 1);
        // The node stops cosigning altogether (its ledger is not trustworthy).
        assert_eq!(c.cosign_height(3), None);
    }
}
