//! Checkpoint cosigning. Every node (voter or learner) cosigns checkpoints
//! of its own ledger only: it computes the checkpoint itself, checks with a
//! consistency proof that it extends the last checkpoint it cosigned, signs,
//! stores and gossips the cosignature. Cosignatures from peers are accepted
//! only when the checkpoint they sign equals this node's own at that height;
//! a conflicting one is logged as equivocation and never merged.

use crate::metrics::Metrics;
use consensus::LedgerHandle;
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
const MAX_PENDING: usize = 4096;

/// Cosigning state of one node.
pub struct Cosigner {
    party: String,
    key: Keypair,
    ledger: LedgerHandle,
    metrics: std::sync::Arc<Metrics>,
    /// Highest height with a quorum of cosignatures.
    pub quorum_height: AtomicU64,
    pending: Mutex<BTreeMap<u64, Vec<CosignMessage>>>,
    refused: Mutex<bool>,
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
    /// The signed checkpoint conflicts with this node's ledger.
    Equivocation(String),
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
                let cp = l.checkpoint_at(height).map_err(|e| e.to_string())?;
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
        let r = self.ledger.with_ledger(|l| -> Merge {
            let Some(p) = l
                .config()
                .party(&msg.cosignature.party)
                .filter(|p| !p.revoked)
            else {
                return Merge::Invalid(format!("unknown cosigner {}", msg.cosignature.party));
            };
            let Ok(bytes) = msg.checkpoint.signing_bytes() else {
                return Merge::Invalid("unencodable".into());
            };
            if crypto::verify_strict(&p.signing_key, &bytes, &msg.cosignature.signature).is_err() {
                return Merge::Invalid(format!("bad cosignature from {}", p.id));
            }
            if h > l.tip().height {
                return Merge::Pending;
            }
            match l.checkpoint_at(h) {
                Ok(own) if own == msg.checkpoint => {
                    match merge_into(l, &own, msg.cosignature.clone()) {
                        Ok(()) => Merge::Merged,
                        Err(e) => Merge::Invalid(e.to_string()),
                    }
                }
                Ok(own) => Merge::Equivocation(format!(
                    "{} cosigned height {h} with root {} but this node has root {}",
                    msg.cosignature.party, msg.checkpoint.tree_root, own.tree_root
                )),
                Err(e) => Merge::Invalid(e.to_string()),
            }
        });
        let outcome = r.unwrap_or_else(|e| Merge::Invalid(e.to_string()));
        match &outcome {
            Merge::Pending => {
                if let Ok(mut p) = self.pending.lock() {
                    if p.len() < MAX_PENDING {
                        p.entry(h).or_default().push(msg);
                    }
                }
            }
            Merge::Equivocation(why) => {
                tracing::error!("EQUIVOCATION: {why}");
                self.metrics.divergences.fetch_add(1, Ordering::Relaxed);
            }
            Merge::Invalid(why) => tracing::warn!("cosignature refused: {why}"),
            Merge::Merged => self.refresh_quorum(h),
        }
        outcome
    }

    /// Retry pending cosignatures for heights now reached.
    pub fn drain_pending(&self, tip: u64) {
        let ready: Vec<CosignMessage> = match self.pending.lock() {
            Ok(mut p) => {
                let later = p.split_off(&(tip + 1));
                let ready = std::mem::replace(&mut *p, later);
                ready.into_values().flatten().collect()
            }
            Err(_) => return,
        };
        for m in ready {
            self.receive(m);
        }
    }
}

/// Does `c` carry the chain config's quorum of cosignatures?
pub fn has_quorum(l: &Ledger<RocksStore>, c: &CosignedCheckpoint) -> bool {
    c.cosignatures.len() >= l.config().checkpoint_quorum as usize
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
