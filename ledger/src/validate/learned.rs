//! The customs validator's learned state as ledger state (ADR 0015).
//!
//! What a committed block teaches is reduced to [`Fact`]s (a declaration's
//! risk inputs and goods labels, a release, an inspection finding), in
//! commit order. Folding them into a [`Learned`] state (risk history,
//! shipments awaiting release) and the classifier's evidence is the only way
//! either changes, and it involves no decryption, clock, randomness or
//! float: replaying the same facts gives the same state.
//!
//! Customs nodes persist the facts of each block as a sealed journal record
//! in the block's own `WriteBatch`, and from time to time the whole state as
//! a sealed checkpoint (which prunes the journal). Each journal record names
//! the digest of everything learned before it, so records that do not
//! follow each other are refused. Records are sealed (ChaCha20-Poly1305)
//! under a key derived from the chain's outcome secret, which only the
//! `Security` readers unwrap, because snapshots carry them to every node.

use super::risk::{RiskHistory, RiskInput};
use crate::codec;
use crate::config::ChainConfig;
use crate::hash::{tagged_hash, Bytes, Hash32};
use crate::hs::classifier::{Classifier, Evidence};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Blocks between a declaration's block and the state it is judged
/// against: a declaration committed at height `h` is judged against what
/// blocks `1..=h - 1 - JUDGEMENT_LAG` taught (ADR 0016). With a lag of one
/// the leader may propose a declaration batch while the batch before it is
/// still being replicated.
pub const JUDGEMENT_LAG: u64 = 1;

/// The learned state a declaration committed at block `height` is judged
/// against: the state folded through this height.
pub fn judged_through(height: u64) -> u64 {
    height.saturating_sub(1 + JUDGEMENT_LAG)
}

/// Shipments remembered between their declaration and their release or
/// inspection (a released shipment is forgotten: nothing after it teaches).
pub const MAX_REMEMBERED: usize = 200_000;

const LEARNED_KEY: &[u8] = b"customs-ledger/v1/learned-key\0";
const LEARNED_DIGEST: &[u8] = b"customs-ledger/v1/learned-digest\0";

const KIND_JOURNAL: u8 = 0;
const KIND_CHECKPOINT: u8 = 1;
const FORMAT: u8 = 1;

/// What one committed transaction teaches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// A declaration committed: each goods item's risk inputs (sequence
    /// unset; folding assigns it) and its label (description, declared HS).
    Declared {
        /// Shipment id.
        shipment: String,
        /// Risk inputs, one per goods item.
        inputs: Vec<RiskInput>,
        /// (description, declared code) per goods item.
        labels: Vec<(String, String)>,
    },
    /// Customs released the shipment under its declared codes.
    Released {
        /// Shipment id.
        shipment: String,
    },
    /// An inspection of the shipment found fraud, or not.
    Inspected {
        /// Shipment id.
        shipment: String,
        /// Whether fraud was found.
        fraud: bool,
    },
}

/// A declaration waiting for its release or inspection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Remembered {
    seq: u64,
    inputs: Vec<RiskInput>,
    labels: Vec<(String, String)>,
}

/// The learned state besides the classifier's evidence.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    /// Risk history.
    pub history: RiskHistory,
    /// Declarations folded so far (the risk history's logical clock).
    pub seq: u64,
    /// shipment → its declaration's facts.
    remembered: BTreeMap<String, Remembered>,
    /// sequence → shipment of `remembered` (oldest evicted first).
    remembered_order: BTreeMap<u64, String>,
    /// Digest of every fact learned since the genesis (folded or not).
    pub digest: Hash32,
    /// Height of the last block learned.
    pub height: u64,
    /// Height of the last block folded into the state (the delay line:
    /// `height - JUDGEMENT_LAG` on a node that only applies blocks).
    pub folded: u64,
    /// Facts learned but not yet folded, by block, oldest first.
    pending: VecDeque<(u64, Vec<Fact>)>,
}

impl Learned {
    /// Nothing learned.
    pub fn new(history: RiskHistory) -> Self {
        Learned {
            history,
            seq: 0,
            remembered: BTreeMap::new(),
            remembered_order: BTreeMap::new(),
            digest: Bytes::ZERO,
            height: 0,
            folded: 0,
            pending: VecDeque::new(),
        }
    }

    /// Fold the learned blocks up to `target` into the state. Folding is
    /// one way: a state folded beyond `target` is an error, as is a target
    /// above the blocks learned.
    pub fn fold_through(&mut self, classifier: &mut Classifier, target: u64) -> Result<(), String> {
        if self.folded > target {
            return Err(format!(
                "the learned state is folded through block {}, past {target}",
                self.folded
            ));
        }
        if target > self.height {
            return Err(format!(
                "block {target} is not learned yet (learned through {})",
                self.height
            ));
        }
        while let Some((h, _)) = self.pending.front() {
            if *h > target {
                break;
            }
            if let Some((h, facts)) = self.pending.pop_front() {
                self.fold(classifier, &facts);
                self.folded = h;
            }
        }
        self.folded = target;
        Ok(())
    }

    /// Learn block `height`'s facts: they wait in the delay line, and the
    /// blocks `JUDGEMENT_LAG` behind are folded (unless a leader's judging
    /// folded them already).
    fn push(&mut self, classifier: &mut Classifier, height: u64, facts: Vec<Fact>) {
        self.pending.push_back((height, facts));
        self.height = height;
        let target = height.saturating_sub(JUDGEMENT_LAG);
        if self.folded < target {
            let _ = self.fold_through(classifier, target);
        }
    }

    /// Declarations remembered until release or inspection.
    pub fn remembered(&self) -> usize {
        self.remembered.len()
    }

    /// Fold one block's facts (in commit order) into this state and
    /// `classifier`'s evidence. Deterministic.
    fn fold(&mut self, classifier: &mut Classifier, facts: &[Fact]) {
        for f in facts {
            match f {
                Fact::Declared {
                    shipment,
                    inputs,
                    labels,
                } => {
                    self.seq += 1;
                    let seq = self.seq;
                    let inputs: Vec<RiskInput> = inputs
                        .iter()
                        .map(|i| RiskInput { seq, ..i.clone() })
                        .collect();
                    for input in &inputs {
                        self.history.observe(input);
                    }
                    if !self.remembered.contains_key(shipment)
                        && self.remembered.len() >= MAX_REMEMBERED
                    {
                        if let Some((_, oldest)) = self.remembered_order.pop_first() {
                            self.remembered.remove(&oldest);
                        }
                    }
                    let r = Remembered {
                        seq,
                        inputs,
                        labels: labels.clone(),
                    };
                    if let Some(old) = self.remembered.insert(shipment.clone(), r) {
                        self.remembered_order.remove(&old.seq);
                    }
                    self.remembered_order.insert(seq, shipment.clone());
                }
                Fact::Released { shipment } => {
                    // The declared codes become labelled examples.
                    if let Some(r) = self.remembered.remove(shipment) {
                        self.remembered_order.remove(&r.seq);
                        for (description, code) in &r.labels {
                            if let Some(hs6) = code.get(..6) {
                                let _ = classifier.learn(description, hs6);
                            }
                        }
                    }
                }
                Fact::Inspected { shipment, fraud } => {
                    if let Some(r) = self.remembered.get(shipment) {
                        for input in &r.inputs {
                            self.history.observe_outcome(input, *fraud);
                        }
                    }
                }
            }
        }
    }
}

/// Learn a block's journal body: `body_bytes` is its canonical encoding
/// (the previous digest, then the facts), and the digest of everything
/// learned becomes `SHA-256(tag || body_bytes)`.
fn advance(
    state: &mut Learned,
    classifier: &mut Classifier,
    height: u64,
    body_bytes: &[u8],
    facts: Vec<Fact>,
) {
    state.digest = tagged_hash(LEARNED_DIGEST, &[body_bytes]);
    state.push(classifier, height, facts);
}

/// A sealed record as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Envelope {
    format: u8,
    kind: u8,
    height: u64,
    /// Id of the outcome secret the key derives from.
    key_id: Hash32,
    /// Fresh per record, so a record rewritten at the same height is
    /// sealed under another key.
    salt: Hash32,
    #[serde(with = "crate::codec::bytes")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct JournalBody {
    /// Digest of everything learned before this block.
    prev: Hash32,
    facts: Vec<Fact>,
}

#[derive(Serialize)]
struct CheckpointRef<'a> {
    evidence: &'a Evidence,
    learned: &'a Learned,
}

#[derive(Serialize, Deserialize)]
struct CheckpointBody {
    evidence: Evidence,
    learned: Learned,
}

fn aad(chain_id: &str, kind: u8, height: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(chain_id.len() + 13);
    a.extend_from_slice(&(chain_id.len() as u32).to_le_bytes());
    a.extend_from_slice(chain_id.as_bytes());
    a.push(kind);
    a.extend_from_slice(&height.to_be_bytes());
    a
}

fn cipher(secret: &[u8; 32], salt: &Hash32) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new((&tagged_hash(LEARNED_KEY, &[secret, &salt.0]).0).into())
}

fn seal(
    config: &ChainConfig,
    secret: &[u8; 32],
    kind: u8,
    height: u64,
    plaintext: &[u8],
) -> Result<Vec<u8>, String> {
    let mut salt = [0u8; 32];
    rand::fill(&mut salt);
    let salt = Bytes(salt);
    let ciphertext = cipher(secret, &salt)
        .encrypt(
            &[0u8; 12].into(),
            Payload {
                msg: plaintext,
                aad: &aad(&config.chain_id, kind, height),
            },
        )
        .map_err(|_| "sealing the learned state failed".to_string())?;
    codec::encode_large(&Envelope {
        format: FORMAT,
        kind,
        height,
        key_id: config.outcome_key.id,
        salt,
        ciphertext,
    })
    .map_err(|e| e.to_string())
}

/// Kind and height of a stored record, read without any key (the startup
/// integrity walk).
pub fn record_height(bytes: &[u8]) -> Result<(bool, u64), String> {
    let e: Envelope = codec::decode_large(bytes).map_err(|e| e.to_string())?;
    Ok((e.kind == KIND_CHECKPOINT, e.height))
}

/// Open a record of `kind` with the secret of `config`'s outcome key:
/// `Ok(None)` when it is sealed under another secret.
fn open(
    config: &ChainConfig,
    secret: &[u8; 32],
    kind: u8,
    bytes: &[u8],
) -> Result<Option<(u64, Vec<u8>)>, String> {
    let e: Envelope = codec::decode_large(bytes).map_err(|e| e.to_string())?;
    if e.format != FORMAT || e.kind != kind {
        return Err(format!("record format {} kind {}", e.format, e.kind));
    }
    if e.key_id != config.outcome_key.id {
        return Ok(None);
    }
    let pt = cipher(secret, &e.salt)
        .decrypt(
            &[0u8; 12].into(),
            Payload {
                msg: &e.ciphertext,
                aad: &aad(&config.chain_id, kind, e.height),
            },
        )
        .map_err(|_| "record does not authenticate".to_string())?;
    Ok(Some((e.height, pt)))
}

/// Seal block `height`'s facts, and fold them into `state` and
/// `classifier` (the digest chain advances with them).
pub fn journal(
    config: &ChainConfig,
    secret: Option<&[u8; 32]>,
    state: &mut Learned,
    classifier: &mut Classifier,
    height: u64,
    facts: Vec<Fact>,
) -> Result<Option<Vec<u8>>, String> {
    let body = JournalBody {
        prev: state.digest,
        facts,
    };
    let pt = codec::encode_large(&body).map_err(|e| e.to_string())?;
    advance(state, classifier, height, &pt, body.facts);
    let Some(secret) = secret else {
        return Ok(None);
    };
    seal(config, secret, KIND_JOURNAL, height, &pt).map(Some)
}

/// Open a journal record of block `height` and fold it: it must follow
/// `state` exactly. `Ok(false)`: sealed under another secret.
pub fn restore_journal(
    config: &ChainConfig,
    secret: &[u8; 32],
    state: &mut Learned,
    classifier: &mut Classifier,
    height: u64,
    bytes: &[u8],
) -> Result<bool, String> {
    let Some((h, pt)) = open(config, secret, KIND_JOURNAL, bytes)? else {
        return Ok(false);
    };
    if h != height || height != state.height + 1 {
        return Err(format!(
            "record of block {h} stored at {height}, after block {}",
            state.height
        ));
    }
    let body: JournalBody = codec::decode_large(&pt).map_err(|e| e.to_string())?;
    if body.prev != state.digest {
        return Err(format!(
            "record of block {h} does not follow the learned state before it"
        ));
    }
    advance(state, classifier, height, &pt, body.facts);
    Ok(true)
}

/// Seal the whole state as of its height. Returns the record and its
/// plaintext length (the validator sizes its checkpoint interval by it).
pub fn checkpoint(
    config: &ChainConfig,
    secret: &[u8; 32],
    state: &Learned,
    classifier: &Classifier,
) -> Result<(Vec<u8>, usize), String> {
    let pt = codec::encode_large(&CheckpointRef {
        evidence: classifier.evidence(),
        learned: state,
    })
    .map_err(|e| e.to_string())?;
    let len = pt.len();
    seal(config, secret, KIND_CHECKPOINT, state.height, &pt).map(|r| (r, len))
}

/// Open a checkpoint into (state, evidence). `Ok(None)`: sealed under
/// another secret.
pub fn restore_checkpoint(
    config: &ChainConfig,
    secret: &[u8; 32],
    bytes: &[u8],
) -> Result<Option<(Learned, Evidence, usize)>, String> {
    let Some((h, pt)) = open(config, secret, KIND_CHECKPOINT, bytes)? else {
        return Ok(None);
    };
    let body: CheckpointBody = codec::decode_large(&pt).map_err(|e| e.to_string())?;
    let l = &body.learned;
    let pending_ok = l
        .pending
        .iter()
        .map(|(h, _)| *h)
        .eq(l.folded + 1..=l.height);
    if l.height != h || !pending_ok {
        return Err(format!(
            "checkpoint sealed for block {h} holds the state after block {} (folded through {})",
            l.height, l.folded
        ));
    }
    Ok(Some((body.learned, body.evidence, pt.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hs::nomenclature::Nomenclature;
    use crate::testkit;

    const NOM: &str = "# hs2022 test 00\n\
        85\t2\tTOTAL\tElectrical machinery and equipment\n\
        8517\t4\t85\tTelephone sets, including smartphones\n\
        851713\t6\t8517\tSmartphones\n\
        851714\t6\t8517\tOther telephones for cellular networks\n";

    fn classifier() -> Classifier {
        Classifier::new(&Nomenclature::parse(NOM.as_bytes()).unwrap())
    }

    fn declared(ship: &str, value: u64) -> Fact {
        Fact::Declared {
            shipment: ship.into(),
            inputs: vec![RiskInput {
                hs6: "851713".into(),
                origin: "CN".into(),
                net_mass_g: 100_000,
                value_minor: value,
                value_eur_cents: value,
                currency: "EUR".into(),
                importer: "I".into(),
                consignee: "I".into(),
                seller: "S".into(),
                ..RiskInput::default()
            }],
            labels: vec![(
                "Smartphones for cellular networks".into(),
                "85171300".into(),
            )],
        }
    }

    /// Blocks of facts: declarations, a release, an inspection.
    fn blocks() -> Vec<Vec<Fact>> {
        (0..6u64)
            .map(|i| {
                let mut b = vec![declared(&format!("S{i}"), 2_500_000 + i)];
                if i > 0 {
                    b.push(Fact::Released {
                        shipment: format!("S{}", i - 1),
                    });
                }
                if i == 3 {
                    b.push(Fact::Inspected {
                        shipment: "S3".into(),
                        fraud: true,
                    });
                }
                b
            })
            .collect()
    }

    fn fresh() -> (Learned, Classifier) {
        (Learned::new(RiskHistory::default()), classifier())
    }

    /// Learn `blocks` from nothing (heights from 1), sealing each journal
    /// record when `secret` is given: the state, the classifier and the
    /// records.
    fn learn_all(
        secret: Option<&[u8; 32]>,
        blocks: Vec<Vec<Fact>>,
    ) -> (Learned, Classifier, Vec<Option<Vec<u8>>>) {
        let cfg = testkit::config();
        let (mut s, mut c) = fresh();
        let records = blocks
            .into_iter()
            .zip(1u64..)
            .map(|(facts, h)| journal(&cfg, secret, &mut s, &mut c, h, facts).unwrap())
            .collect();
        (s, c, records)
    }

    /// [`learn_all`] with the fixture secret: every record sealed.
    fn sealed_all(blocks: Vec<Vec<Fact>>) -> (Learned, Classifier, Vec<Vec<u8>>) {
        let (s, c, records) = learn_all(Some(&testkit::OUTCOME_SECRET), blocks);
        (s, c, records.into_iter().map(Option::unwrap).collect())
    }

    #[test]
    fn journal_and_checkpoint_restore_the_same_state() {
        let cfg = testkit::config();
        let secret = testkit::OUTCOME_SECRET;
        let mut all = blocks();
        let later = all.split_off(3);
        let (mut live, mut live_c, mut records) = sealed_all(all);
        let cp = checkpoint(&cfg, &secret, &live, &live_c).unwrap().0;
        for (facts, h) in later.into_iter().zip(4u64..) {
            let r = journal(&cfg, Some(&secret), &mut live, &mut live_c, h, facts).unwrap();
            records.push(r.unwrap());
        }
        let records: Vec<(u64, Vec<u8>)> = (1u64..).zip(records).collect();
        assert_eq!(live.height, 6);
        // Block 6 waits in the delay line: releases of S0..S3 are folded.
        assert_eq!(live.folded, 5);
        assert_eq!(live_c.learned_examples(), 4);
        assert_eq!(live.history.totals().inspected, 1);
        assert_eq!(live.remembered(), 1);

        // The whole journal from nothing...
        let (mut a, mut a_c) = fresh();
        for (h, r) in &records {
            assert!(restore_journal(&cfg, &secret, &mut a, &mut a_c, *h, r).unwrap());
        }
        assert_eq!(a, live);
        assert_eq!(a_c.evidence(), live_c.evidence());
        // ...or the checkpoint at 3 and the journal after it.
        let (mut b, ev, _) = restore_checkpoint(&cfg, &secret, &cp).unwrap().unwrap();
        let mut b_c = classifier();
        b_c.set_evidence(ev).unwrap();
        assert_eq!((b.height, b.folded), (3, 2));
        for (h, r) in &records[3..] {
            assert!(restore_journal(&cfg, &secret, &mut b, &mut b_c, *h, r).unwrap());
        }
        assert_eq!(b, live);
        assert_eq!(b_c.evidence(), live_c.evidence());
    }

    #[test]
    fn damaged_reordered_or_foreign_records_are_refused() {
        let cfg = testkit::config();
        let secret = testkit::OUTCOME_SECRET;
        let (_, _, records) = sealed_all(blocks());
        // A flipped ciphertext byte does not authenticate.
        let mut bad = records[0].clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let (mut s, mut c) = fresh();
        assert!(restore_journal(&cfg, &secret, &mut s, &mut c, 1, &bad).is_err());
        assert_eq!(s, fresh().0, "nothing folded");
        // A record out of order, or stored under another height.
        assert!(restore_journal(&cfg, &secret, &mut s, &mut c, 2, &records[1]).is_err());
        assert!(restore_journal(&cfg, &secret, &mut s, &mut c, 2, &records[0]).is_err());
        // The right secret id with the wrong secret does not open.
        assert!(restore_journal(&cfg, &[1; 32], &mut s, &mut c, 1, &records[0]).is_err());
        // Another chain outcome secret (rotated): not this node's to open.
        let mut other = cfg.clone();
        other.outcome_key.id = Bytes([9; 32]);
        assert!(!restore_journal(&other, &secret, &mut s, &mut c, 1, &records[0]).unwrap());
        // The framing is readable without a key.
        assert_eq!(record_height(&records[4]).unwrap(), (false, 5));
        assert!(record_height(b"garbage").is_err());
        // Spliced: record 2 of another history does not follow record 1.
        let mut fork = blocks();
        fork[0] = vec![declared("X", 1)];
        let (_, _, forked) = sealed_all(fork);
        let (mut s, mut c) = fresh();
        assert!(restore_journal(&cfg, &secret, &mut s, &mut c, 1, &records[0]).unwrap());
        let e = restore_journal(&cfg, &secret, &mut s, &mut c, 2, &forked[1]).unwrap_err();
        assert!(e.contains("does not follow"), "{e}");
    }

    #[test]
    fn folding_runs_one_block_behind_and_never_backwards() {
        let cfg = testkit::config();
        let (mut s, mut c) = fresh();
        let mut all = blocks().into_iter();
        journal(&cfg, None, &mut s, &mut c, 1, all.next().unwrap()).unwrap();
        assert_eq!((s.height, s.folded, s.seq), (1, 0, 0));
        journal(&cfg, None, &mut s, &mut c, 2, all.next().unwrap()).unwrap();
        assert_eq!((s.height, s.folded, s.seq), (2, 1, 1));
        // A leader judging ahead folds the newest block too...
        s.fold_through(&mut c, 2).unwrap();
        assert_eq!((s.folded, s.seq), (2, 2));
        // ...but never unfolds, and cannot fold what it has not learned.
        assert!(s.fold_through(&mut c, 1).is_err());
        assert!(s.fold_through(&mut c, 3).is_err());
        // Learning the next block after folding ahead keeps the order.
        journal(&cfg, None, &mut s, &mut c, 3, all.next().unwrap()).unwrap();
        assert_eq!((s.height, s.folded, s.seq), (3, 2, 2));
        assert_eq!(judged_through(1), 0);
        assert_eq!(judged_through(5), 3);
    }

    #[test]
    fn the_state_is_a_function_of_the_facts() {
        let run = || {
            let (s, c, records) = learn_all(None, blocks());
            assert!(
                records.iter().all(Option::is_none),
                "nothing sealed without a key"
            );
            (s, c.evidence().clone())
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert_ne!(a.0.digest, Bytes::ZERO);
        // The risk history survives an encode/decode round trip exactly.
        let bytes = codec::encode_large(&a.0).unwrap();
        let back: Learned = codec::decode_large(&bytes).unwrap();
        assert_eq!(back, a.0);
    }
}
