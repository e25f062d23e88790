//! The transaction envelope: what a party signs and what the chain commits.
//!
//! A transaction carries its public fields in clear, its other fields sealed
//! (see `disclosure`), and the Merkle root of salted commitments to every
//! field. `tx_id = SHA-256(TX_ID tag || canonical bytes of the unsigned
//! transaction)`; the submitter signs `TX_SIG tag || tx_id`. Protobuf bytes
//! are never signed: the gRPC layer carries these canonical bytes opaquely.

use crate::codec::{self, CodecError};
use crate::config::{DisclosureRule, EventRule, FieldClass, Party};
use crate::crypto::{Keypair, PublicKey};
use crate::event::EventKind;
use crate::hash::{tag, tagged_hash, Bytes, Hash32, Sig64};
use serde::{Deserialize, Serialize};

/// A field readable by every registered party, with its commitment salt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicField {
    /// Field path, e.g. `status` or `goods[0].hs_chapter`.
    pub path: String,
    /// Value.
    pub value: String,
    /// Commitment salt.
    pub salt: Bytes<32>,
}

/// A field sealed with its class key (ChaCha20-Poly1305, path as AAD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedField {
    /// Field path (public: says which fields exist, not their values).
    pub path: String,
    /// Disclosure class.
    pub class: FieldClass,
    /// Merkle leaf hash of the field's salted commitment (reveals nothing
    /// without the salt; lets anyone recompute `fields_root`).
    pub commitment: Hash32,
    /// AEAD ciphertext of `salt || value`.
    #[serde(with = "crate::codec::bytes")]
    pub ciphertext: Vec<u8>,
}

/// The class keys of one transaction wrapped with HPKE to one party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Recipient party id.
    pub party: String,
    /// SHA-256 of the X25519 public key used (so rotated keys still open old data).
    pub key_id: Hash32,
    /// HPKE encapsulated key.
    #[serde(with = "crate::codec::bytes")]
    pub enc: Vec<u8>,
    /// HPKE ciphertext of the class keys this party may read.
    #[serde(with = "crate::codec::bytes")]
    pub ciphertext: Vec<u8>,
}

/// Changes to the chain config; each needs a majority of customs validators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Governance {
    /// Register a new party.
    AddParty(Party),
    /// Rotate a party's keys (either or both).
    RotateKey {
        /// Party id.
        party: String,
        /// New signing key.
        signing_key: Option<PublicKey>,
        /// New X25519 encryption key.
        encryption_key: Option<Bytes<32>>,
    },
    /// Revoke a party: it can no longer submit, nor receive keys.
    RevokeParty {
        /// Party id.
        party: String,
    },
    /// Make a customs party a voter or not.
    SetValidator {
        /// Party id.
        party: String,
        /// Voter or not.
        validator: bool,
    },
    /// Replace policies.
    SetPolicy {
        /// New disclosure policy.
        disclosure: Option<Vec<DisclosureRule>>,
        /// New event policy.
        events: Option<Vec<EventRule>>,
        /// New checkpoint quorum.
        checkpoint_quorum: Option<u32>,
    },
    /// Replace the outcome secret's wraps (a new secret, or the same one
    /// wrapped to a changed set of `Security` readers).
    SetOutcomeKey(crate::outcome::OutcomeKey),
    /// Pin other duty and VAT tables (a build that carries them).
    PinTables(crate::tariff::TablePins),
    /// Publish (or correct) the customs exchange rates of a month.
    PublishRates(crate::tariff::RateTable),
    /// Change the risk thresholds and/or the risk policy (sanction and
    /// restricted lists, tolerances).
    SetRiskPolicy {
        /// New review threshold (score 0-100).
        review_at: Option<u8>,
        /// New inspection threshold (score 0-100).
        inspect_at: Option<u8>,
        /// New policy.
        policy: Option<crate::validate::risk::RiskPolicy>,
    },
}

/// The unsigned transaction body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Chain id (rejects cross-chain replay).
    pub chain_id: String,
    /// Event kind.
    pub kind: EventKind,
    /// Shipment id (empty for governance).
    pub shipment_id: String,
    /// Submitting party id.
    pub submitter: String,
    /// Random per transaction, so identical content still gets a fresh id.
    pub nonce: u64,
    /// Submitter's clock, ms since the Unix epoch; must be near the block time.
    pub claimed_time_ms: u64,
    /// Public fields, sorted by path.
    pub public: Vec<PublicField>,
    /// Sealed fields, sorted by path.
    pub sealed: Vec<SealedField>,
    /// Wrapped class keys, sorted by party.
    pub recipients: Vec<Recipient>,
    /// Merkle root over the salted commitments of all fields, by path.
    pub fields_root: Hash32,
    /// Governance action (governance kinds only).
    pub governance: Option<Governance>,
}

/// A co-signature on a transaction id (governance approvals).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Approving party.
    pub party: String,
    /// Signature over `TX_SIG || tx_id`.
    pub signature: Sig64,
}

/// A transaction with its submitter's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// Body.
    pub tx: Transaction,
    /// Submitter's signature over `TX_SIG || tx_id`.
    pub signature: Sig64,
    /// Other validators' approvals (governance only), sorted by party.
    pub approvals: Vec<Approval>,
}

/// Message a submitter or approver signs.
pub fn signing_message(tx_id: &Hash32) -> [u8; 32 + 25] {
    let mut m = [0u8; 32 + 25];
    let (a, b) = m.split_at_mut(tag::TX_SIG.len());
    a.copy_from_slice(tag::TX_SIG);
    b.copy_from_slice(&tx_id.0);
    m
}

impl Transaction {
    /// Canonical bytes of the unsigned body.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// `SHA-256(TX_ID || canonical bytes)`.
    pub fn id(&self) -> Result<Hash32, CodecError> {
        Ok(tagged_hash(tag::TX_ID, &[&self.canonical_bytes()?]))
    }

    /// Sign as the submitter.
    pub fn sign(self, key: &Keypair) -> Result<SignedTransaction, CodecError> {
        let id = self.id()?;
        Ok(SignedTransaction {
            signature: key.sign(&signing_message(&id)),
            tx: self,
            approvals: Vec::new(),
        })
    }
}

impl SignedTransaction {
    /// Transaction id.
    pub fn id(&self) -> Result<Hash32, CodecError> {
        self.tx.id()
    }

    /// Canonical bytes of the signed transaction.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// Strict decode with a size limit.
    pub fn decode(bytes: &[u8], limit: usize) -> Result<Self, CodecError> {
        codec::decode_limited(bytes, limit)
    }

    /// Transaction id and canonical length from one encoding: the body's
    /// canonical bytes are a prefix of the signed transaction's (fields are
    /// encoded in order, without framing), so the id hashes that prefix.
    pub fn id_and_len(&self) -> Result<(Hash32, usize), CodecError> {
        let (id, full) = self.id_and_encoding()?;
        Ok((id, full.len()))
    }

    /// Transaction id and the canonical bytes it was computed from (a block
    /// built from this transaction reuses them instead of encoding it again).
    pub fn id_and_encoding(&self) -> Result<(Hash32, Vec<u8>), CodecError> {
        let full = self.encode()?;
        Ok((self.id_of_encoding(&full)?, full))
    }

    /// Strict decode that also returns the id, hashing the body's prefix of
    /// `bytes` instead of encoding the body again.
    pub fn decode_with_id(bytes: &[u8], limit: usize) -> Result<(Self, Hash32), CodecError> {
        let stx = Self::decode(bytes, limit)?;
        let id = stx.id_of_encoding(bytes)?;
        Ok((stx, id))
    }

    /// Id from this transaction's own canonical encoding `full`.
    fn id_of_encoding(&self, full: &[u8]) -> Result<Hash32, CodecError> {
        let tail = codec::encode(&(&self.signature, &self.approvals))?.len();
        let body = full
            .len()
            .checked_sub(tail)
            .and_then(|n| full.get(..n))
            .ok_or_else(|| CodecError::Encode("signed encoding shorter than its tail".into()))?;
        Ok(tagged_hash(tag::TX_ID, &[body]))
    }

    /// Add a governance approval (kept sorted by party).
    pub fn approve(&mut self, party: &str, key: &Keypair) -> Result<(), CodecError> {
        let id = self.id()?;
        self.approvals.retain(|a| a.party != party);
        self.approvals.push(Approval {
            party: party.to_string(),
            signature: key.sign(&signing_message(&id)),
        });
        self.approvals.sort_by(|a, b| a.party.cmp(&b.party));
        Ok(())
    }
}

/// Signed transactions held with their ids and canonical encodings, as a
/// Raft entry carries them. On the wire and on disk a batch is one byte
/// string: the transactions' canonical encodings, concatenated. The node
/// that receives it decodes each transaction strictly once, here, and keeps
/// the bytes it came in; storing, forwarding and committing the batch then
/// reuse those bytes, so no node encodes a transaction it was given.
/// Cloning shares the batch.
#[derive(Clone, Default)]
pub struct TxBatch(std::sync::Arc<TxBatchInner>);

#[derive(Default)]
struct TxBatchInner {
    /// Concatenated canonical encodings.
    bytes: Vec<u8>,
    txs: Vec<SignedTransaction>,
    ids: Vec<Hash32>,
    /// End offset of each transaction's encoding in `bytes`.
    ends: Vec<usize>,
}

impl TxBatch {
    /// A batch of transactions, encoding each.
    pub fn from_txs(txs: Vec<SignedTransaction>) -> Result<Self, CodecError> {
        let mut parts = Vec::with_capacity(txs.len());
        for stx in txs {
            let (id, bytes) = stx.id_and_encoding()?;
            parts.push((stx, id, bytes));
        }
        Ok(Self::from_decoded(parts))
    }

    /// A batch of transactions this process decoded strictly, each with the
    /// id and the exact bytes [`SignedTransaction::decode_with_id`] returned
    /// for it (so the bytes are its canonical encoding; checked in debug
    /// builds).
    pub fn from_decoded(parts: Vec<(SignedTransaction, Hash32, Vec<u8>)>) -> Self {
        let total = parts.iter().map(|(_, _, b)| b.len()).sum();
        let mut inner = TxBatchInner {
            bytes: Vec::with_capacity(total),
            txs: Vec::with_capacity(parts.len()),
            ids: Vec::with_capacity(parts.len()),
            ends: Vec::with_capacity(parts.len()),
        };
        for (stx, id, bytes) in parts {
            debug_assert!(codec::encode(&stx).is_ok_and(|b| b == bytes));
            inner.bytes.extend_from_slice(&bytes);
            inner.ends.push(inner.bytes.len());
            inner.txs.push(stx);
            inner.ids.push(id);
        }
        TxBatch(std::sync::Arc::new(inner))
    }

    /// Strictly split untrusted `bytes` into transactions: each must be a
    /// canonical encoding, and nothing may be left over.
    pub fn decode(bytes: Vec<u8>) -> Result<Self, CodecError> {
        let mut inner = TxBatchInner::default();
        let mut at = 0;
        while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
            let (stx, n) = codec::decode_prefix::<SignedTransaction>(rest)?;
            let encoding = rest.get(..n).filter(|e| !e.is_empty()).ok_or_else(|| {
                CodecError::Malformed("empty transaction encoding in a batch".into())
            })?;
            inner.ids.push(stx.id_of_encoding(encoding)?);
            inner.txs.push(stx);
            at += n;
            inner.ends.push(at);
        }
        inner.bytes = bytes;
        Ok(TxBatch(std::sync::Arc::new(inner)))
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.0.txs.len()
    }

    /// Whether the batch holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.0.txs.is_empty()
    }

    /// The transactions, in order.
    pub fn txs(&self) -> &[SignedTransaction] {
        &self.0.txs
    }

    /// Their ids, in order.
    pub fn ids(&self) -> &[Hash32] {
        &self.0.ids
    }

    /// The canonical encoding of transaction `i`.
    pub fn encoding(&self, i: usize) -> Option<&[u8]> {
        let start = match i {
            0 => 0,
            _ => *self.0.ends.get(i - 1)?,
        };
        self.0.bytes.get(start..*self.0.ends.get(i)?)
    }

    /// Every transaction's canonical encoding, concatenated.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }
}

impl PartialEq for TxBatch {
    fn eq(&self, other: &Self) -> bool {
        self.0.bytes == other.0.bytes
    }
}

impl Eq for TxBatch {}

impl std::fmt::Debug for TxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxBatch")
            .field("txs", &self.0.txs.len())
            .field("bytes", &self.0.bytes.len())
            .finish()
    }
}

impl Serialize for TxBatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        codec::bytes::serialize(&self.0.bytes, s)
    }
}

impl<'de> Deserialize<'de> for TxBatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = codec::bytes::deserialize(d)?;
        TxBatch::decode(bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::verify;

    pub(crate) fn sample_tx() -> Transaction {
        Transaction {
            chain_id: "test".into(),
            kind: EventKind::ShipmentBooked,
            shipment_id: "S1".into(),
            submitter: "exporter".into(),
            nonce: 42,
            claimed_time_ms: 1_700_000_000_000,
            public: vec![PublicField {
                path: "status".into(),
                value: "booked".into(),
                salt: Bytes([1; 32]),
            }],
            sealed: vec![SealedField {
                path: "consignor.name".into(),
                class: FieldClass::Personal,
                commitment: Bytes([8; 32]),
                ciphertext: vec![9, 9, 9],
            }],
            recipients: vec![Recipient {
                party: "de-customs".into(),
                key_id: Bytes([2; 32]),
                enc: vec![3; 4],
                ciphertext: vec![4; 2],
            }],
            fields_root: Bytes([5; 32]),
            governance: None,
        }
    }

    /// Golden vector: pins the canonical encoding and the id of a transaction.
    /// If this fails, the wire/storage format changed: that needs a version bump.
    #[test]
    fn golden_transaction_encoding() {
        let tx = sample_tx();
        let bytes = tx.canonical_bytes().unwrap();
        assert_eq!(
            hex::encode(&bytes),
            include_str!("../tests/golden/tx.hex").trim()
        );
        assert_eq!(
            tx.id().unwrap().to_hex(),
            include_str!("../tests/golden/tx_id.hex").trim()
        );
        let back: Transaction = codec::decode(&bytes).unwrap();
        assert_eq!(back, tx);
    }

    #[test]
    fn sign_and_verify() {
        let k = Keypair::from_seed(&[7; 32]);
        let stx = sample_tx().sign(&k).unwrap();
        let id = stx.id().unwrap();
        verify(&k.public(), &signing_message(&id), &stx.signature).unwrap();
        let bytes = stx.encode().unwrap();
        let back = SignedTransaction::decode(&bytes, 65536).unwrap();
        assert_eq!(back, stx);
        let mut tampered = stx.clone();
        tampered.tx.nonce += 1;
        let id2 = tampered.id().unwrap();
        assert!(verify(&k.public(), &signing_message(&id2), &tampered.signature).is_err());
    }

    #[test]
    fn id_from_the_signed_encoding_equals_the_body_id() {
        let k = Keypair::from_seed(&[7; 32]);
        let plain = sample_tx().sign(&k).unwrap();
        let mut governed = plain.clone();
        governed.approve("de-customs", &k).unwrap();
        governed
            .approve("fr-customs", &Keypair::from_seed(&[8; 32]))
            .unwrap();
        for stx in [plain, governed] {
            let bytes = stx.encode().unwrap();
            assert_eq!(stx.id_and_len().unwrap(), (stx.id().unwrap(), bytes.len()));
            let (back, id) = SignedTransaction::decode_with_id(&bytes, 65536).unwrap();
            assert_eq!((back, id), (stx.clone(), stx.id().unwrap()));
        }
    }
    #[test]
    fn a_batch_is_its_transactions_encodings_concatenated() {
        let k = Keypair::from_seed(&[7; 32]);
        let a = sample_tx().sign(&k).unwrap();
        let mut b = sample_tx();
        b.nonce = 43;
        let mut b = b.sign(&k).unwrap();
        b.approve("de-customs", &k).unwrap();
        let batch = TxBatch::from_txs(vec![a.clone(), b.clone()]).unwrap();
        let (ea, eb) = (a.encode().unwrap(), b.encode().unwrap());
        assert_eq!(batch.bytes(), [ea.clone(), eb.clone()].concat());
        assert_eq!(batch.encoding(0), Some(&ea[..]));
        assert_eq!(batch.encoding(1), Some(&eb[..]));
        assert_eq!(batch.encoding(2), None);
        assert_eq!(batch.ids(), [a.id().unwrap(), b.id().unwrap()]);
        assert_eq!(batch.txs(), [a, b]);
        // On the wire: one byte string (u64 length, then the bytes).
        let wire = codec::encode(&batch).unwrap();
        assert_eq!(wire[..8], (batch.bytes().len() as u64).to_le_bytes());
        assert_eq!(&wire[8..], batch.bytes());
        let back: TxBatch = codec::decode(&wire).unwrap();
        assert_eq!(back, batch);
        assert_eq!((back.txs(), back.ids()), (batch.txs(), batch.ids()));
        let empty: TxBatch = codec::decode(&codec::encode(&TxBatch::default()).unwrap()).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn a_batch_refuses_truncated_padded_or_non_canonical_bytes() {
        let k = Keypair::from_seed(&[7; 32]);
        let stx = sample_tx().sign(&k).unwrap();
        let one = stx.encode().unwrap();
        let good = [one.clone(), one.clone()].concat();
        assert_eq!(TxBatch::decode(good.clone()).unwrap().len(), 2);
        for cut in [1, 7, one.len() / 2] {
            assert!(TxBatch::decode(good[..good.len() - cut].to_vec()).is_err());
        }
        let mut padded = good.clone();
        padded.push(0);
        assert!(TxBatch::decode(padded).is_err());
        // `governance: None` is the byte 0 at the body's end; 2 is no
        // Option tag at all.
        let tail = codec::encode(&(&stx.signature, &stx.approvals)).unwrap();
        let body_end = one.len() - tail.len();
        let mut bad = one.clone();
        bad[body_end - 1] = 2;
        assert!(TxBatch::decode(bad).is_err());
    }
}
