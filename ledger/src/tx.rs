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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::verify_strict;

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
        verify_strict(&k.public(), &signing_message(&id), &stx.signature).unwrap();
        let bytes = stx.encode().unwrap();
        let back = SignedTransaction::decode(&bytes, 65536).unwrap();
        assert_eq!(back, stx);
        let mut tampered = stx.clone();
        tampered.tx.nonce += 1;
        let id2 = tampered.id().unwrap();
        assert!(verify_strict(&k.public(), &signing_message(&id2), &tampered.signature).is_err());
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
}
