//! Sealed validation outcomes.
//!
//! What the customs validators conclude about a declaration is data like
//! any field: the classification of a sealed description reveals the
//! description, and a risk score is customs' business. Outcomes are
//! committed sealed, by class:
//!
//! - the classification part (`Commercial`: verdicts, declared codes,
//!   suggestions) under a key derived from the transaction's own
//!   `Commercial` class key, so exactly the parties that may read the
//!   declaration's commercial fields may read how it was classified;
//! - the risk part (`Security`: score, level, reasons) under a key derived
//!   from the chain's outcome secret, which the chain config carries wrapped
//!   (HPKE) to every party whose roles read `Security` (customs; auditors
//!   where the policy grants it). A declaration without a `Commercial` field
//!   has its classification sealed this way too.
//!
//! Sealing is deterministic: the key is derived from (base key, class,
//! transaction id) and used once, so the nonce is fixed and every customs
//! node that reaches the same judgement produces the same bytes. Nodes that
//! cannot decrypt store the leader's bytes from the Raft entry, so all
//! blocks stay identical, and a holder of the key checks an outcome against
//! the block's `results_root` like any committed data.

use crate::block::{ClassificationOutcome, RiskOutcome};
use crate::codec;
use crate::config::{ChainConfig, FieldClass};
use crate::disclosure::{self, DecryptionKey, DisclosureError};
use crate::hash::{tagged_hash, Bytes, Hash32};
use crate::tx::{Recipient, Transaction};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Domain tag of outcome keys.
const OUTCOME_KEY: &[u8] = b"customs-ledger/v1/outcome-key\0";
/// Domain tag naming a chain outcome secret.
const OUTCOME_SECRET_ID: &[u8] = b"customs-ledger/v1/outcome-secret\0";
/// Largest plaintext an outcome may open to.
const MAX_OUTCOME_BYTES: usize = 64 * 1024;

/// What the validators concluded about one transaction, in the clear.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    /// Per goods item.
    pub classification: Vec<ClassificationOutcome>,
    /// Risk.
    pub risk: Option<RiskOutcome>,
    /// Non-blocking warnings (stable codes).
    pub warnings: Vec<String>,
    /// Duty and VAT as customs assess them, compared with the checkout
    /// quote the declaration names (`Commercial`).
    pub assessment: Option<crate::quote::Assessment>,
}

impl Judgement {
    /// Nothing concluded (not a declaration).
    pub fn is_empty(&self) -> bool {
        self.classification.is_empty()
            && self.risk.is_none()
            && self.warnings.is_empty()
            && self.assessment.is_none()
    }

    /// The part of this judgement of `class`: classification and its
    /// warnings are `Commercial`, the risk outcome and its warnings
    /// `Security`.
    fn part(&self, class: FieldClass) -> Judgement {
        let commercial = |w: &String| w.starts_with("HS_") || w.starts_with("ASSESS_");
        match class {
            FieldClass::Commercial => Judgement {
                classification: self.classification.clone(),
                assessment: self.assessment.clone(),
                risk: None,
                warnings: self
                    .warnings
                    .iter()
                    .filter(|w| commercial(w))
                    .cloned()
                    .collect(),
            },
            _ => Judgement {
                classification: Vec::new(),
                assessment: None,
                risk: self.risk.clone(),
                warnings: self
                    .warnings
                    .iter()
                    .filter(|w| !commercial(w))
                    .cloned()
                    .collect(),
            },
        }
    }

    fn merge(&mut self, other: Judgement) {
        self.classification.extend(other.classification);
        if other.risk.is_some() {
            self.risk = other.risk;
        }
        if other.assessment.is_some() {
            self.assessment = other.assessment;
        }
        self.warnings.extend(other.warnings);
    }
}

/// One sealed part of an outcome, as committed in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedOutcome {
    /// Disclosure class of this part.
    pub class: FieldClass,
    /// Key it is sealed under: zero for the transaction's own class key,
    /// else the id of the chain outcome secret.
    pub key_id: Hash32,
    /// ChaCha20-Poly1305 ciphertext of the padded canonical encoding.
    pub ciphertext: Vec<u8>,
}

/// The chain's outcome secret, wrapped to the parties that read `Security`
/// (part of the chain config; replaced by governance).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeKey {
    /// `SHA-256(tag || secret)`: names the secret and lets a holder check
    /// that it unwrapped the right one.
    pub id: Hash32,
    /// HPKE wraps of the secret, one per reader, sorted by party.
    pub wraps: Vec<Recipient>,
}

/// Why an outcome cannot be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OutcomeError {
    /// This party holds no key for the part.
    #[error("no key for the {0:?} outcome")]
    NoKey(FieldClass),
    /// Ciphertext or padding did not authenticate, or the bytes do not decode.
    #[error("outcome does not open: {0}")]
    Tampered(String),
    /// Wrapping failed.
    #[error("cannot seal outcome: {0}")]
    Seal(String),
}

/// The id of an outcome secret.
pub fn secret_id(secret: &[u8; 32]) -> Hash32 {
    tagged_hash(OUTCOME_SECRET_ID, &[secret])
}

impl OutcomeKey {
    /// Wrap `secret` to every active party of `cfg` whose roles read
    /// `Security`. Uses randomness (HPKE); run once per key, not per block.
    pub fn wrap(cfg: &ChainConfig, secret: &[u8; 32]) -> Result<OutcomeKey, OutcomeError> {
        OutcomeKey::wrap_with_rng(cfg, secret, &mut rand::rng())
    }

    /// [`OutcomeKey::wrap`] drawing HPKE randomness from `rng` (fixtures).
    pub fn wrap_with_rng(
        cfg: &ChainConfig,
        secret: &[u8; 32],
        rng: &mut impl rand::CryptoRng,
    ) -> Result<OutcomeKey, OutcomeError> {
        let readers = cfg.readers_of(FieldClass::Security);
        let mut wraps = Vec::new();
        for p in cfg.parties.iter().filter(|p| !p.revoked) {
            if p.roles.iter().any(|r| readers.contains(r)) {
                let w = disclosure::wrap_with_rng(
                    cfg,
                    p,
                    &[(FieldClass::Security, Bytes(*secret))],
                    rng,
                )
                .map_err(|e| OutcomeError::Seal(e.to_string()))?;
                wraps.push(w);
            }
        }
        wraps.sort_by(|a, b| a.party.cmp(&b.party));
        Ok(OutcomeKey {
            id: secret_id(secret),
            wraps,
        })
    }

    /// A fresh random secret wrapped to the `Security` readers of `cfg`;
    /// the secret itself is not kept.
    pub fn generate(cfg: &ChainConfig) -> Result<OutcomeKey, OutcomeError> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        OutcomeKey::wrap(cfg, &secret)
    }

    /// The secret as `party` unwraps it with `keys`, checked against `id`.
    pub fn unwrap(
        &self,
        chain_id: &str,
        party: &str,
        keys: &[DecryptionKey],
    ) -> Result<[u8; 32], OutcomeError> {
        let grants =
            disclosure::unwrap_grants(chain_id, &self.wraps, party, keys).map_err(|e| match e {
                DisclosureError::NotRecipient => OutcomeError::NoKey(FieldClass::Security),
                e => OutcomeError::Tampered(e.to_string()),
            })?;
        let s = grants
            .get(&FieldClass::Security)
            .ok_or(OutcomeError::NoKey(FieldClass::Security))?;
        if secret_id(s) != self.id {
            return Err(OutcomeError::Tampered(
                "unwrapped outcome secret does not match its id".into(),
            ));
        }
        Ok(*s)
    }
}

/// The keys one party holds for sealing or opening outcomes: outcome
/// secrets by id, and the class keys of the transaction at hand.
#[derive(Clone, Debug, Default)]
pub struct OutcomeKeys {
    /// Chain outcome secrets this party unwrapped, by id.
    pub secrets: BTreeMap<Hash32, [u8; 32]>,
}

impl OutcomeKeys {
    /// The outcome secret of `cfg` that `party` unwraps with `keys`, if
    /// the config wraps it to that party.
    pub fn for_party(cfg: &ChainConfig, party: &str, keys: &[DecryptionKey]) -> OutcomeKeys {
        let mut k = OutcomeKeys::default();
        if let Ok(s) = cfg.outcome_key.unwrap(&cfg.chain_id, party, keys) {
            k.secrets.insert(cfg.outcome_key.id, s);
        }
        k
    }
}

fn part_key(base: &[u8; 32], class: FieldClass, tx_id: &Hash32) -> [u8; 32] {
    tagged_hash(OUTCOME_KEY, &[&[class as u8], base, &tx_id.0]).0
}

fn aad(chain_id: &str, tx_id: &Hash32, class: FieldClass) -> Vec<u8> {
    let mut a = Vec::with_capacity(chain_id.len() + 37);
    a.extend_from_slice(&(chain_id.len() as u32).to_le_bytes());
    a.extend_from_slice(chain_id.as_bytes());
    a.extend_from_slice(&tx_id.0);
    a.push(class as u8);
    a
}

fn seal_part(
    chain_id: &str,
    tx_id: &Hash32,
    class: FieldClass,
    key_id: Hash32,
    base: &[u8; 32],
    part: &Judgement,
) -> Result<SealedOutcome, OutcomeError> {
    let bytes = codec::encode(part).map_err(|e| OutcomeError::Seal(e.to_string()))?;
    // The padding's salt slot is unused here (the key is single-use).
    let pt = disclosure::padded_plaintext(&Bytes::ZERO, &bytes);
    let cipher = ChaCha20Poly1305::new((&part_key(base, class, tx_id)).into());
    let ciphertext = cipher
        .encrypt(
            &[0u8; 12].into(),
            Payload {
                msg: &pt,
                aad: &aad(chain_id, tx_id, class),
            },
        )
        .map_err(|_| OutcomeError::Seal("encryption failed".into()))?;
    Ok(SealedOutcome {
        class,
        key_id,
        ciphertext,
    })
}

fn open_part(
    chain_id: &str,
    tx_id: &Hash32,
    sealed: &SealedOutcome,
    base: &[u8; 32],
) -> Result<Judgement, OutcomeError> {
    let cipher = ChaCha20Poly1305::new((&part_key(base, sealed.class, tx_id)).into());
    let pt = cipher
        .decrypt(
            &[0u8; 12].into(),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad(chain_id, tx_id, sealed.class),
            },
        )
        .map_err(|_| OutcomeError::Tampered("ciphertext does not authenticate".into()))?;
    let (_, bytes) = disclosure::unpad_plaintext(&pt)
        .ok_or_else(|| OutcomeError::Tampered("bad padding".into()))?;
    let part: Judgement = codec::decode_limited(bytes, MAX_OUTCOME_BYTES)
        .map_err(|e| OutcomeError::Tampered(e.to_string()))?;
    // A commercial part holds only the classification (a security part may
    // hold everything: see `seal`).
    if sealed.class == FieldClass::Commercial && part.part(FieldClass::Commercial) != part {
        return Err(OutcomeError::Tampered(format!(
            "{:?} part holds fields of another class",
            sealed.class
        )));
    }
    Ok(part)
}

/// Seal `judgement` of transaction `tx` (id `tx_id`) under `config`:
/// deterministic, so every customs node reaching the same judgement
/// produces the same bytes. `class_keys` are the transaction's class keys
/// as this (customs) party unwrapped them; `secret` is the config's outcome
/// secret. An empty judgement seals to nothing.
pub fn seal(
    config: &ChainConfig,
    tx_id: &Hash32,
    judgement: &Judgement,
    class_keys: &BTreeMap<FieldClass, [u8; 32]>,
    secret: &[u8; 32],
) -> Result<Vec<SealedOutcome>, OutcomeError> {
    if judgement.is_empty() {
        return Ok(Vec::new());
    }
    let id = config.outcome_key.id;
    if secret_id(secret) != id {
        return Err(OutcomeError::Seal(
            "the outcome secret is not the config's".into(),
        ));
    }
    let commercial = judgement.part(FieldClass::Commercial);
    let mut security = judgement.part(FieldClass::Security);
    let mut out = Vec::with_capacity(2);
    match class_keys.get(&FieldClass::Commercial) {
        Some(k) if !commercial.is_empty() => out.push(seal_part(
            &config.chain_id,
            tx_id,
            FieldClass::Commercial,
            Hash32::ZERO,
            k,
            &commercial,
        )?),
        // No commercial key: customs alone reads the classification.
        _ => security.merge(commercial),
    }
    if !security.is_empty() {
        out.push(seal_part(
            &config.chain_id,
            tx_id,
            FieldClass::Security,
            id,
            secret,
            &security,
        )?);
    }
    Ok(out)
}

/// Open what `party` may read of the outcome of `tx`: the parts whose keys
/// it holds (the transaction's class keys, unwrapped with `keys`, and the
/// outcome secrets in `secrets`). Parts it cannot open are listed by class.
pub fn open(
    tx: &Transaction,
    tx_id: &Hash32,
    sealed: &[SealedOutcome],
    party: &str,
    keys: &[DecryptionKey],
    secrets: &OutcomeKeys,
) -> (Judgement, Vec<FieldClass>) {
    let mut out = Judgement::default();
    let mut closed = Vec::new();
    let class_keys = if sealed.iter().any(|s| s.key_id == Hash32::ZERO) {
        disclosure::class_keys(tx, party, keys).unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    for s in sealed {
        let base = if s.key_id == Hash32::ZERO {
            class_keys.get(&s.class)
        } else {
            secrets.secrets.get(&s.key_id)
        };
        match base.map(|b| open_part(&tx.chain_id, tx_id, s, b)) {
            Some(Ok(part)) => out.merge(part),
            _ => closed.push(s.class),
        }
    }
    (out, closed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit;

    fn judgement() -> Judgement {
        Judgement {
            classification: vec![ClassificationOutcome {
                item: 0,
                declared: "847130".into(),
                verdict: "mismatch".into(),
                suggestions: vec![("610910".into(), 9000)],
            }],
            risk: Some(RiskOutcome {
                score: 53,
                level: "review".into(),
                reasons: vec![("RISK_VALUE_PER_KG_LOW".into(), 30)],
            }),
            warnings: vec!["HS_MISMATCH:item0".into(), "RISK_REVIEW".into()],
            assessment: None,
        }
    }

    #[test]
    fn sealing_is_deterministic_and_opens_by_class() {
        let cfg = testkit::config();
        let secret = testkit::OUTCOME_SECRET;
        let tx_id = Bytes([9; 32]);
        let ck = BTreeMap::from([(FieldClass::Commercial, [5u8; 32])]);
        let a = seal(&cfg, &tx_id, &judgement(), &ck, &secret).unwrap();
        let b = seal(&cfg, &tx_id, &judgement(), &ck, &secret).unwrap();
        assert_eq!(a, b, "same judgement, same bytes");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].class, FieldClass::Commercial);
        assert_eq!(a[1].class, FieldClass::Security);
        // Another transaction id gives other bytes.
        let c = seal(&cfg, &Bytes([8; 32]), &judgement(), &ck, &secret).unwrap();
        assert_ne!(a[1].ciphertext, c[1].ciphertext);
        // The commercial part opens with the transaction's class key only.
        let part = open_part(&cfg.chain_id, &tx_id, &a[0], &[5u8; 32]).unwrap();
        assert_eq!(part.classification, judgement().classification);
        assert!(part.risk.is_none());
        assert_eq!(part.warnings, ["HS_MISMATCH:item0"]);
        assert!(open_part(&cfg.chain_id, &tx_id, &a[1], &[5u8; 32]).is_err());
        let risk = open_part(&cfg.chain_id, &tx_id, &a[1], &secret).unwrap();
        assert_eq!(risk.risk, judgement().risk);
        assert!(risk.classification.is_empty());
        // A flipped byte does not open.
        let mut bad = a[1].clone();
        bad.ciphertext[0] ^= 1;
        assert!(open_part(&cfg.chain_id, &tx_id, &bad, &secret).is_err());
    }

    #[test]
    fn without_a_commercial_key_customs_alone_reads_the_classification() {
        let cfg = testkit::config();
        let tx_id = Bytes([9; 32]);
        let s = seal(
            &cfg,
            &tx_id,
            &judgement(),
            &BTreeMap::new(),
            &testkit::OUTCOME_SECRET,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        let all = open_part(&cfg.chain_id, &tx_id, &s[0], &testkit::OUTCOME_SECRET).unwrap();
        assert_eq!(all.classification, judgement().classification);
        assert_eq!(all.risk, judgement().risk);
    }

    #[test]
    fn only_security_readers_unwrap_the_outcome_secret() {
        let cfg = testkit::config();
        let parties = testkit::parties();
        for p in &parties {
            let keys = [DecryptionKey::from_secret(p.x25519_secret)];
            let got = cfg.outcome_key.unwrap(&cfg.chain_id, p.id, &keys);
            if p.id.ends_with("-customs") {
                assert_eq!(got.unwrap(), testkit::OUTCOME_SECRET, "{}", p.id);
            } else {
                assert_eq!(
                    got.unwrap_err(),
                    OutcomeError::NoKey(FieldClass::Security),
                    "{}",
                    p.id
                );
            }
        }
        // A secret that is not the config's is refused when sealing.
        let r = seal(
            &cfg,
            &Bytes([1; 32]),
            &judgement(),
            &BTreeMap::new(),
            &[0u8; 32],
        );
        assert!(r.is_err());
    }
}
