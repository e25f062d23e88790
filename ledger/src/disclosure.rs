//! Selective disclosure: per-class field encryption, salted field
//! commitments, opening by role, and single-field proofs.
//!
//! Sealing (submitter side, uses randomness): every non-public field is
//! encrypted with ChaCha20-Poly1305 under a fresh key for its class (one key
//! per class per transaction, so a party given the transport key learns
//! nothing about commercial fields). Each recipient gets the class keys its
//! roles allow, wrapped with HPKE (RFC 9180: X25519-HKDF-SHA256,
//! HKDF-SHA256, ChaCha20-Poly1305) to its registered X25519 key. Every field,
//! public or sealed, gets a salted commitment leaf; their RFC 9162 root is
//! `fields_root`, which the submitter signs. Sealed fields carry their leaf
//! hash, so anyone can recompute the root, and a holder of one field can
//! prove it to a third party without revealing any other.
//!
//! Opening and verification are deterministic and need no network.

use crate::block::{BlockHeader, Checkpoint, CosignedCheckpoint};
use crate::codec;
use crate::config::{ChainConfig, FieldClass, Party, Role};
use crate::crypto;
use crate::event::EventKind;
use crate::hash::{sha256, tag, Bytes, Hash32};
use crate::merkle;
use crate::tx::{Governance, PublicField, Recipient, SealedField, SignedTransaction, Transaction};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hpke::{Deserializable, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// HPKE `info` prefix; the chain id follows.
const HPKE_INFO: &[u8] = b"customs-ledger/v1/hpke\0";
/// Field AEAD nonce derivation prefix.
const FIELD_NONCE: &[u8] = b"customs-ledger/v1/field-nonce\0";

/// A field in the clear, as the submitter writes it or a reader opens it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Path, e.g. `goods[0].value`.
    pub path: String,
    /// Disclosure class.
    pub class: FieldClass,
    /// Value.
    pub value: String,
}

/// An opened field with its salt (what a disclosure reveals).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenedField {
    /// The field.
    pub field: Field,
    /// Its commitment salt.
    pub salt: Bytes<32>,
}

/// What a submitter wants to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// Chain id.
    pub chain_id: String,
    /// Kind.
    pub kind: EventKind,
    /// Shipment id.
    pub shipment_id: String,
    /// Submitter party id.
    pub submitter: String,
    /// Claimed time (ms).
    pub claimed_time_ms: u64,
    /// Fields in any order (paths must be unique).
    pub fields: Vec<Field>,
    /// Parties named on the shipment (its broker, exporter, importer,
    /// carrier): they receive the classes their roles may read.
    pub shipment_parties: Vec<String>,
    /// Governance action, for governance kinds.
    pub governance: Option<Governance>,
}

/// Disclosure failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DisclosureError {
    /// Draft is not sealable.
    #[error("cannot seal: {0}")]
    Seal(String),
    /// This key holder is not a recipient of the transaction.
    #[error("no wrapped key for this party and key")]
    NotRecipient,
    /// A wrapped key or ciphertext did not authenticate.
    #[error("tampered or undecryptable: {0}")]
    Tampered(String),
    /// A commitment does not match.
    #[error("commitment mismatch for field {0}")]
    Commitment(String),
    /// A disclosure proof is wrong.
    #[error("disclosure proof invalid: {0}")]
    Proof(String),
}

fn seal_err(e: impl std::fmt::Display) -> DisclosureError {
    DisclosureError::Seal(e.to_string())
}

/// Commitment leaf data of a field.
pub fn commitment_data(path: &str, class: FieldClass, value: &str, salt: &Bytes<32>) -> Vec<u8> {
    let mut d = Vec::with_capacity(tag::FIELD_COMMITMENT.len() + 32 + 9 + path.len() + value.len());
    d.extend_from_slice(tag::FIELD_COMMITMENT);
    d.extend_from_slice(&salt.0);
    d.extend_from_slice(&(path.len() as u32).to_le_bytes());
    d.extend_from_slice(path.as_bytes());
    d.push(class as u8);
    d.extend_from_slice(&(value.len() as u32).to_le_bytes());
    d.extend_from_slice(value.as_bytes());
    d
}

/// Merkle leaf hash of a field commitment.
pub fn commitment_leaf(path: &str, class: FieldClass, value: &str, salt: &Bytes<32>) -> Hash32 {
    Bytes(merkle::leaf_hash(&commitment_data(
        path, class, value, salt,
    )))
}

/// Leaves of a transaction's fields tree, in path order.
pub fn field_leaves(tx: &Transaction) -> Vec<(String, Hash32)> {
    let mut leaves: Vec<(String, Hash32)> = tx
        .public
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                commitment_leaf(&f.path, FieldClass::Public, &f.value, &f.salt),
            )
        })
        .chain(tx.sealed.iter().map(|f| (f.path.clone(), f.commitment)))
        .collect();
    leaves.sort_by(|a, b| a.0.cmp(&b.0));
    leaves
}

/// Recompute `fields_root` from what the transaction shows.
pub fn fields_root(tx: &Transaction) -> Hash32 {
    let leaves: Vec<merkle::Hash> = field_leaves(tx).iter().map(|(_, h)| h.0).collect();
    Bytes(merkle::root(&leaves))
}

/// Key id of an X25519 public key.
pub fn key_id(x25519_public: &Bytes<32>) -> Hash32 {
    sha256(&x25519_public.0)
}

/// The padded length of a sealed value of `n` bytes (plus its one-byte
/// end marker): values are padded to length buckets so a ciphertext's
/// length tells only the bucket, not the value's length: 32 bytes for
/// anything shorter (amounts, currencies, codes, EORIs), then powers of two
/// up to 4 KiB, then multiples of 4 KiB.
pub fn padded_len(n: usize) -> usize {
    let with_marker = n + 1;
    if with_marker <= 32 {
        32
    } else if with_marker <= 4096 {
        with_marker.next_power_of_two()
    } else {
        with_marker.div_ceil(4096) * 4096
    }
}

/// `salt || value || 0x80 || 0x00...` up to the value's bucket.
pub(crate) fn padded_plaintext(salt: &Bytes<32>, value: &[u8]) -> Vec<u8> {
    let len = padded_len(value.len());
    let mut pt = Vec::with_capacity(32 + len);
    pt.extend_from_slice(&salt.0);
    pt.extend_from_slice(value);
    pt.push(0x80);
    pt.resize(32 + len, 0);
    pt
}

/// Split a decrypted plaintext into salt and value, checking the padding:
/// zeros after a single 0x80 marker, and a bucket-sized value area.
pub(crate) fn unpad_plaintext(pt: &[u8]) -> Option<([u8; 32], &[u8])> {
    let (salt, rest) = pt.split_at_checked(32)?;
    let end = rest.iter().rposition(|b| *b != 0)?;
    if rest[end] != 0x80 || padded_len(end) != rest.len() {
        return None;
    }
    let mut s = [0u8; 32];
    s.copy_from_slice(salt);
    Some((s, &rest[..end]))
}

fn field_nonce(path: &str) -> [u8; 12] {
    let h = sha256(&[FIELD_NONCE, path.as_bytes()].concat());
    let mut n = [0u8; 12];
    n.copy_from_slice(&h.0[..12]);
    n
}

fn field_aad(chain_id: &str, shipment: &str, path: &str, class: FieldClass) -> Vec<u8> {
    let mut a = Vec::new();
    for part in [chain_id, shipment, path] {
        a.extend_from_slice(&(part.len() as u32).to_le_bytes());
        a.extend_from_slice(part.as_bytes());
    }
    a.push(class as u8);
    a
}

fn hpke_info(chain_id: &str) -> Vec<u8> {
    [HPKE_INFO, chain_id.as_bytes()].concat()
}

/// Whether `party` may read `class` of a shipment naming `shipment_parties`:
/// the policy must grant one of its roles; customs and auditors read what
/// the policy grants them on every shipment, other roles only on shipments
/// that name them.
pub fn may_read(
    cfg: &ChainConfig,
    party: &Party,
    class: FieldClass,
    shipment_parties: &BTreeSet<&str>,
) -> bool {
    if party.revoked {
        return false;
    }
    let granted = cfg.readers_of(class);
    party.roles.iter().any(|r| {
        granted.contains(r)
            && (matches!(r, Role::Customs | Role::Auditor)
                || shipment_parties.contains(party.id.as_str()))
    })
}

/// Seal a draft into an unsigned transaction. Uses fresh randomness for the
/// nonce, salts, class keys and HPKE.
pub fn seal(cfg: &ChainConfig, draft: &Draft) -> Result<Transaction, DisclosureError> {
    let mut fields = draft.fields.clone();
    let naming = crate::chain::names_parties(draft.kind) && !draft.shipment_parties.is_empty();
    if naming && !fields.iter().any(|f| f.path == crate::chain::PARTIES_FIELD) {
        // The ledger learns who belongs to the shipment from this public
        // field (it cannot read sealed ones).
        let named: BTreeSet<&str> = draft.shipment_parties.iter().map(String::as_str).collect();
        fields.push(Field {
            path: crate::chain::PARTIES_FIELD.to_string(),
            class: FieldClass::Public,
            value: named.into_iter().collect::<Vec<_>>().join(","),
        });
    }
    fields.sort_by(|a, b| a.path.cmp(&b.path));
    if fields.windows(2).any(|w| w[0].path == w[1].path) {
        return Err(seal_err("duplicate field path"));
    }
    let classes: BTreeSet<FieldClass> = fields
        .iter()
        .map(|f| f.class)
        .filter(|c| *c != FieldClass::Public)
        .collect();
    let mut class_keys: BTreeMap<FieldClass, [u8; 32]> = BTreeMap::new();
    for c in &classes {
        let mut k = [0u8; 32];
        rand::fill(&mut k);
        class_keys.insert(*c, k);
    }
    let mut public = Vec::new();
    let mut sealed = Vec::new();
    for f in &fields {
        let mut salt = Bytes([0u8; 32]);
        rand::fill(&mut salt.0);
        if f.class == FieldClass::Public {
            public.push(PublicField {
                path: f.path.clone(),
                value: f.value.clone(),
                salt,
            });
            continue;
        }
        let key = class_keys
            .get(&f.class)
            .ok_or_else(|| seal_err("missing class key"))?;
        let cipher = ChaCha20Poly1305::new(key.into());
        let pt = padded_plaintext(&salt, f.value.as_bytes());
        let aad = field_aad(&draft.chain_id, &draft.shipment_id, &f.path, f.class);
        let ct = cipher
            .encrypt(
                &field_nonce(&f.path).into(),
                Payload {
                    msg: &pt,
                    aad: &aad,
                },
            )
            .map_err(|_| seal_err("field encryption failed"))?;
        sealed.push(SealedField {
            path: f.path.clone(),
            class: f.class,
            commitment: commitment_leaf(&f.path, f.class, &f.value, &salt),
            ciphertext: ct,
        });
    }
    let named: BTreeSet<&str> = draft
        .shipment_parties
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(draft.submitter.as_str()))
        .collect();
    let mut recipients = Vec::new();
    if !class_keys.is_empty() {
        for party in &cfg.parties {
            let grants: Vec<(FieldClass, Bytes<32>)> = class_keys
                .iter()
                .filter(|(c, _)| may_read(cfg, party, **c, &named))
                .map(|(c, k)| (*c, Bytes(*k)))
                .collect();
            if grants.is_empty() {
                continue;
            }
            recipients.push(wrap(cfg, party, &grants)?);
        }
    }
    let mut nonce_bytes = [0u8; 8];
    rand::fill(&mut nonce_bytes);
    let mut tx = Transaction {
        chain_id: draft.chain_id.clone(),
        kind: draft.kind,
        shipment_id: draft.shipment_id.clone(),
        submitter: draft.submitter.clone(),
        nonce: u64::from_le_bytes(nonce_bytes),
        claimed_time_ms: draft.claimed_time_ms,
        public,
        sealed,
        recipients,
        fields_root: Hash32::ZERO,
        governance: draft.governance.clone(),
    };
    tx.fields_root = fields_root(&tx);
    Ok(tx)
}

/// Wrap `grants` to `party`'s registered encryption key with HPKE.
pub(crate) fn wrap(
    cfg: &ChainConfig,
    party: &Party,
    grants: &[(FieldClass, Bytes<32>)],
) -> Result<Recipient, DisclosureError> {
    wrap_with_rng(cfg, party, grants, &mut rand::rng())
}

/// [`wrap`] drawing the HPKE ephemeral key from `rng` (fixtures use a
/// seeded one so that every process builds the same chain config).
pub(crate) fn wrap_with_rng(
    cfg: &ChainConfig,
    party: &Party,
    grants: &[(FieldClass, Bytes<32>)],
    rng: &mut impl rand::CryptoRng,
) -> Result<Recipient, DisclosureError> {
    let pk = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(&party.encryption_key.0)
        .map_err(|_| seal_err(format!("bad encryption key for {}", party.id)))?;
    let kid = key_id(&party.encryption_key);
    let plaintext = codec::encode(&grants.to_vec()).map_err(seal_err)?;
    let aad = [party.id.as_bytes(), &[0], &kid.0].concat();
    let (enc, ct) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeS::Base,
        &pk,
        &hpke_info(&cfg.chain_id),
        &plaintext,
        &aad,
        rng,
    )
    .map_err(|e| seal_err(format!("hpke: {e:?}")))?;
    Ok(Recipient {
        party: party.id.clone(),
        key_id: kid,
        enc: enc.to_bytes().to_vec(),
        ciphertext: ct,
    })
}

/// A transaction's class keys as one party unwrapped them.
pub type ClassKeys = BTreeMap<FieldClass, [u8; 32]>;

/// An X25519 secret a party holds (current or rotated-out).
#[derive(Clone)]
pub struct DecryptionKey {
    secret: [u8; 32],
    public: Bytes<32>,
}

impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecryptionKey(public={})", self.public)
    }
}

impl DecryptionKey {
    /// From a 32-byte X25519 secret.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
        DecryptionKey {
            secret,
            public: Bytes(public.to_bytes()),
        }
    }

    /// Fresh random key.
    pub fn generate() -> Self {
        let mut s = [0u8; 32];
        rand::fill(&mut s);
        Self::from_secret(s)
    }

    /// The public key to register.
    pub fn public(&self) -> Bytes<32> {
        self.public
    }

    /// The secret bytes (for key files).
    pub fn secret(&self) -> [u8; 32] {
        self.secret
    }
}

/// Unwrap the class keys `party` holds for `tx`, trying each of its keys
/// (so data sealed before a key rotation opens with the old key).
pub fn class_keys(
    tx: &Transaction,
    party: &str,
    keys: &[DecryptionKey],
) -> Result<BTreeMap<FieldClass, [u8; 32]>, DisclosureError> {
    unwrap_grants(&tx.chain_id, &tx.recipients, party, keys)
}

/// Unwrap what `recipients` grant `party` (HPKE, RFC 9180), trying each of
/// its keys.
pub(crate) fn unwrap_grants(
    chain_id: &str,
    recipients: &[Recipient],
    party: &str,
    keys: &[DecryptionKey],
) -> Result<BTreeMap<FieldClass, [u8; 32]>, DisclosureError> {
    for r in recipients.iter().filter(|r| r.party == party) {
        let Some(k) = keys.iter().find(|k| key_id(&k.public) == r.key_id) else {
            continue;
        };
        if r.enc.len() != 32 {
            return Err(DisclosureError::Tampered("bad encapsulated key".into()));
        }
        let aad = [party.as_bytes(), &[0], &r.key_id.0].concat();
        let pt = crate::hpke_open::open(
            &k.secret,
            &k.public.0,
            &r.enc,
            &hpke_info(chain_id),
            &aad,
            &r.ciphertext,
        )
        .map_err(|_| DisclosureError::Tampered("wrapped key does not open".into()))?;
        let grants: Vec<(FieldClass, Bytes<32>)> = codec::decode_limited(&pt, 4096)
            .map_err(|e| DisclosureError::Tampered(format!("wrapped key payload: {e}")))?;
        return Ok(grants.into_iter().map(|(c, k)| (c, k.0)).collect());
    }
    Err(DisclosureError::NotRecipient)
}

/// Open every field `party` may read: the public fields, and the sealed
/// fields of the classes whose keys it holds. Each opened field is checked
/// against its commitment, and the commitments against `fields_root`.
pub fn open(
    tx: &Transaction,
    party: &str,
    keys: &[DecryptionKey],
) -> Result<Vec<OpenedField>, DisclosureError> {
    open_with_keys(tx, party, keys).map(|(fields, _)| fields)
}

/// [`open`], also returning the class keys `party` unwrapped (customs
/// seals the transaction's outcome under them: see [`crate::outcome`]).
pub fn open_with_keys(
    tx: &Transaction,
    party: &str,
    keys: &[DecryptionKey],
) -> Result<(Vec<OpenedField>, ClassKeys), DisclosureError> {
    let ck = match class_keys(tx, party, keys) {
        Ok(k) => k,
        Err(DisclosureError::NotRecipient) => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    Ok((open_with_class_keys(tx, &ck)?, ck))
}

/// [`open`] with class keys already unwrapped for this transaction (by
/// [`class_keys`] or [`open_with_keys`], on the same transaction id): no
/// HPKE step. Fields of classes without a key stay sealed; every opened
/// field is checked against its commitment, and the commitments against
/// `fields_root`.
pub fn open_with_class_keys(
    tx: &Transaction,
    ck: &ClassKeys,
) -> Result<Vec<OpenedField>, DisclosureError> {
    open_selected(tx, ck, |_| true)
}

/// [`open_with_class_keys`] limited to the fields whose path `wanted`
/// accepts (a reader that needs a few fields of a large declaration
/// decrypts only those). `fields_root` is checked against every commitment
/// as always; each opened field against its own.
pub fn open_selected(
    tx: &Transaction,
    ck: &ClassKeys,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<OpenedField>, DisclosureError> {
    if fields_root(tx) != tx.fields_root {
        return Err(DisclosureError::Commitment("fields_root".into()));
    }
    let mut out: Vec<OpenedField> = tx
        .public
        .iter()
        .filter(|f| wanted(&f.path))
        .map(|f| OpenedField {
            field: Field {
                path: f.path.clone(),
                class: FieldClass::Public,
                value: f.value.clone(),
            },
            salt: f.salt,
        })
        .collect();
    for f in tx.sealed.iter().filter(|f| wanted(&f.path)) {
        let Some(key) = ck.get(&f.class) else {
            continue;
        };
        let cipher = ChaCha20Poly1305::new(key.into());
        let aad = field_aad(&tx.chain_id, &tx.shipment_id, &f.path, f.class);
        let pt = cipher
            .decrypt(
                &field_nonce(&f.path).into(),
                Payload {
                    msg: &f.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| DisclosureError::Tampered(format!("field {}", f.path)))?;
        let (salt, value) = unpad_plaintext(&pt)
            .ok_or_else(|| DisclosureError::Tampered(format!("field {} padding", f.path)))?;
        let salt = Bytes(salt);
        let value = String::from_utf8(value.to_vec())
            .map_err(|_| DisclosureError::Tampered(format!("field {} not UTF-8", f.path)))?;
        if commitment_leaf(&f.path, f.class, &value, &salt) != f.commitment {
            return Err(DisclosureError::Commitment(f.path.clone()));
        }
        out.push(OpenedField {
            field: Field {
                path: f.path.clone(),
                class: f.class,
                value,
            },
            salt,
        });
    }
    out.sort_by(|a, b| a.field.path.cmp(&b.field.path));
    Ok(out)
}

/// A self-contained proof of one field, checkable offline against a
/// trusted chain config: field → fields_root (in the signed transaction) →
/// tx_root (in the block header) → ledger tree root (in a cosigned checkpoint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDisclosure {
    /// The revealed field and salt.
    pub field: OpenedField,
    /// Index of its leaf in the fields tree.
    pub field_index: u64,
    /// Number of fields.
    pub field_count: u64,
    /// Inclusion path of the field leaf in `fields_root`.
    pub field_proof: Vec<Hash32>,
    /// The signed transaction (other fields only as ciphertext and salted
    /// commitments, which reveal nothing).
    pub tx: SignedTransaction,
    /// Header of the block that committed it.
    pub header: BlockHeader,
    /// Index of the transaction in the block.
    pub tx_index: u64,
    /// Inclusion path of the transaction id in `tx_root`.
    pub tx_proof: Vec<Hash32>,
    /// Inclusion path of the block hash in the checkpoint's tree.
    pub block_proof: Vec<Hash32>,
    /// The cosigned checkpoint.
    pub checkpoint: CosignedCheckpoint,
    /// The chain config from the trusted one to the checkpoint's height,
    /// proven (absent when the chain had no governance, or for a verifier
    /// that trusts the config in force): the transaction's signature is
    /// checked under the config it was admitted under and the cosignatures
    /// under the one in force at the checkpoint.
    #[serde(default)]
    pub config: Option<crate::history::ConfigProof>,
}

/// Build a disclosure proof of `path` from a transaction the holder opened.
#[allow(clippy::too_many_arguments)]
pub fn disclose(
    opened: &[OpenedField],
    path: &str,
    tx: &SignedTransaction,
    header: &BlockHeader,
    tx_index: u64,
    tx_proof: Vec<merkle::Hash>,
    block_proof: Vec<merkle::Hash>,
    checkpoint: CosignedCheckpoint,
) -> Result<FieldDisclosure, DisclosureError> {
    let field = opened
        .iter()
        .find(|f| f.field.path == path)
        .ok_or_else(|| DisclosureError::Proof(format!("field {path} not opened")))?
        .clone();
    let leaves = field_leaves(&tx.tx);
    let idx = leaves
        .iter()
        .position(|(p, _)| p == path)
        .ok_or_else(|| DisclosureError::Proof(format!("no field {path}")))?;
    let hashes: Vec<merkle::Hash> = leaves.iter().map(|(_, h)| h.0).collect();
    let proof = merkle::inclusion_proof(&hashes, idx as u64)
        .map_err(|e| DisclosureError::Proof(e.to_string()))?;
    Ok(FieldDisclosure {
        field,
        field_index: idx as u64,
        field_count: leaves.len() as u64,
        field_proof: proof.into_iter().map(Bytes).collect(),
        tx: tx.clone(),
        header: header.clone(),
        tx_index,
        tx_proof: tx_proof.into_iter().map(Bytes).collect(),
        block_proof: block_proof.into_iter().map(Bytes).collect(),
        checkpoint,
        config: None,
    })
}

/// Check cosignatures on a checkpoint against `trusted`: at least `quorum`
/// distinct registered, unrevoked parties signed it. Returns the signers.
pub fn verify_cosignatures(
    trusted: &ChainConfig,
    cp: &CosignedCheckpoint,
    quorum: u32,
) -> Result<Vec<String>, DisclosureError> {
    let msg = cp
        .checkpoint
        .signing_bytes()
        .map_err(|e| DisclosureError::Proof(e.to_string()))?;
    let mut signers = BTreeSet::new();
    let mut bad = Vec::new();
    for c in &cp.cosignatures {
        match trusted.party(&c.party).filter(|p| !p.revoked) {
            Some(p) if crypto::verify(&p.signing_key, &msg, &c.signature).is_ok() => {
                signers.insert(p.id.clone());
            }
            _ => bad.push(c.party.clone()),
        }
    }
    if !bad.is_empty() {
        return Err(DisclosureError::Proof(format!(
            "checkpoint cosignatures that do not verify: {}",
            bad.join(", ")
        )));
    }
    if (signers.len() as u64) < u64::from(quorum) {
        return Err(DisclosureError::Proof(format!(
            "checkpoint has {} valid cosignatures, {quorum} required",
            signers.len()
        )));
    }
    Ok(signers.into_iter().collect())
}

/// What a verified disclosure establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedField {
    /// The field.
    pub field: Field,
    /// Transaction id.
    pub tx_id: Hash32,
    /// Event kind.
    pub kind: EventKind,
    /// Shipment.
    pub shipment_id: String,
    /// Submitter.
    pub submitter: String,
    /// Block height.
    pub height: u64,
    /// Checkpoint cosigners.
    pub cosigners: Vec<String>,
}

/// Verify a disclosure offline against a trusted chain config, requiring
/// `quorum` cosignatures.
pub fn verify_disclosure(
    d: &FieldDisclosure,
    trusted: &ChainConfig,
    quorum: u32,
) -> Result<VerifiedField, DisclosureError> {
    verify_disclosure_with(d, trusted, Some(quorum))
}

/// [`verify_disclosure`], requiring `quorum` cosignatures or, when `None`,
/// the quorum of the config in force at the checkpoint.
pub fn verify_disclosure_with(
    d: &FieldDisclosure,
    trusted: &ChainConfig,
    quorum: Option<u32>,
) -> Result<VerifiedField, DisclosureError> {
    let p = |m: String| DisclosureError::Proof(m);
    let timeline = match &d.config {
        Some(proof) => {
            if trusted.chain_id != d.checkpoint.checkpoint.chain_id {
                return Err(p("chain id differs from the trusted config".into()));
            }
            crate::history::ConfigTimeline::verify(trusted, proof, &d.checkpoint.checkpoint)
                .map_err(|e| p(format!("chain config history: {e}")))?
        }
        None => crate::history::ConfigTimeline::trusting(trusted.clone()),
    };
    let admitted = timeline
        .for_tx(d.header.height, d.tx_index)
        .map_err(|e| p(e.to_string()))?;
    let trusted = &admitted;
    let tx = &d.tx.tx;
    if tx.chain_id != trusted.chain_id || d.checkpoint.checkpoint.chain_id != trusted.chain_id {
        return Err(p("chain id differs from the trusted config".into()));
    }
    // 1. field -> fields_root
    let f = &d.field.field;
    let leaf = commitment_leaf(&f.path, f.class, &f.value, &d.field.salt);
    let leaves = field_leaves(tx);
    match leaves.get(d.field_index as usize) {
        Some((path, h)) if *path == f.path && *h == leaf => {}
        _ => return Err(p(format!("field {} does not match its commitment", f.path))),
    }
    if d.field_count != leaves.len() as u64 {
        return Err(p("field count differs".into()));
    }
    let fp: Vec<merkle::Hash> = d.field_proof.iter().map(|h| h.0).collect();
    merkle::verify_inclusion(
        &leaf.0,
        d.field_index,
        d.field_count,
        &fp,
        &tx.fields_root.0,
    )
    .map_err(|e| p(format!("field path: {e}")))?;
    if fields_root(tx) != tx.fields_root {
        return Err(p(
            "fields_root does not match the transaction's commitments".into(),
        ));
    }
    // 2. transaction signature (signing key as registered in the trusted config)
    let tx_id = tx.id().map_err(|e| p(e.to_string()))?;
    let signer = trusted.party(&tx.submitter).ok_or_else(|| {
        p(format!(
            "submitter {} unknown to the trusted config",
            tx.submitter
        ))
    })?;
    crypto::verify(
        &signer.signing_key,
        &crate::tx::signing_message(&tx_id),
        &d.tx.signature,
    )
    .map_err(|_| p("transaction signature does not verify".into()))?;
    // 3. transaction -> block
    let tp: Vec<merkle::Hash> = d.tx_proof.iter().map(|h| h.0).collect();
    merkle::verify_inclusion(
        &merkle::leaf_hash(&tx_id.0),
        d.tx_index,
        u64::from(d.header.tx_count),
        &tp,
        &d.header.tx_root.0,
    )
    .map_err(|e| p(format!("transaction not in block: {e}")))?;
    // 4. block -> checkpoint
    let block_hash = d.header.hash().map_err(|e| p(e.to_string()))?;
    let cp: &Checkpoint = &d.checkpoint.checkpoint;
    let bp: Vec<merkle::Hash> = d.block_proof.iter().map(|h| h.0).collect();
    merkle::verify_inclusion(
        &merkle::leaf_hash(&block_hash.0),
        d.header.height,
        cp.tree_size,
        &bp,
        &cp.tree_root.0,
    )
    .map_err(|e| p(format!("block not in checkpoint tree: {e}")))?;
    // 5. checkpoint cosigned by a quorum of the parties of the config in
    // force at its height
    let at_checkpoint = timeline.latest();
    let quorum = quorum.unwrap_or(at_checkpoint.checkpoint_quorum);
    let cosigners = verify_cosignatures(at_checkpoint, &d.checkpoint, quorum)?;
    Ok(VerifiedField {
        field: f.clone(),
        tx_id,
        kind: tx.kind,
        shipment_id: tx.shipment_id.clone(),
        submitter: tx.submitter.clone(),
        height: d.header.height,
        cosigners,
    })
}
