//! Deterministic fixtures for tests and benchmarks of this and other crates:
//! a standard set of parties with seeded keys, a genesis config, and
//! helpers that build signed transactions. Not for production key material.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::config::{
    default_disclosure, default_events, ChainConfig, Limits, NomenclaturePin, Party, Role,
};
use crate::crypto::Keypair;
use crate::event::EventKind;
use crate::hash::{Bytes, Hash32};
use crate::tx::{PublicField, SignedTransaction, Transaction};

/// Genesis time used by fixtures.
pub const T0: u64 = 1_764_000_000_000;

/// A party of the fixture network with its secret key.
#[derive(Debug)]
pub struct TestParty {
    /// Party id.
    pub id: &'static str,
    /// Signing key.
    pub key: Keypair,
    /// X25519 secret (seeded).
    pub x25519_secret: [u8; 32],
}

/// The standard network: three customs validators, exporter, broker,
/// carrier, auditor.
pub const PARTIES: [(&str, &[Role], bool); 7] = [
    ("auditor", &[Role::Auditor], false),
    ("broker", &[Role::Broker], false),
    ("carrier", &[Role::Carrier], false),
    ("de-customs", &[Role::Customs], true),
    ("exporter", &[Role::Exporter], false),
    ("fr-customs", &[Role::Customs], true),
    ("pl-customs", &[Role::Customs], true),
];

/// Seeded keys for the standard network.
pub fn parties() -> Vec<TestParty> {
    PARTIES
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| TestParty {
            id,
            key: Keypair::from_seed(&[i as u8 + 1; 32]),
            x25519_secret: [i as u8 + 101; 32],
        })
        .collect()
}

/// X25519 public key of a seeded secret.
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
}

/// The fixture chain's outcome secret (see [`crate::outcome`]).
pub const OUTCOME_SECRET: [u8; 32] = [42; 32];

/// Genesis config for the standard network (the same in every process:
/// the outcome secret's HPKE wraps draw from a seeded generator).
pub fn config() -> ChainConfig {
    let keys = parties();
    let mut cfg = ChainConfig {
        chain_id: "customs-test".into(),
        seq: 0,
        parties: PARTIES
            .iter()
            .zip(&keys)
            .map(|((id, roles, validator), k)| Party {
                id: id.to_string(),
                name: id.to_string(),
                roles: roles.to_vec(),
                eori: None,
                signing_key: k.key.public(),
                encryption_key: Bytes(x25519_public(&k.x25519_secret)),
                peer_id: format!("peer-{id}"),
                validator: *validator,
                revoked: false,
            })
            .collect(),
        disclosure: default_disclosure(),
        events: default_events(),
        nomenclature: NomenclaturePin {
            edition: "HS2022".into(),
            sha256: Hash32::ZERO,
            semantic: Hash32::ZERO,
        },
        classifier_version: "test".into(),
        risk_model_version: "test".into(),
        risk_review_at: 40,
        risk_inspect_at: 70,
        risk_policy: crate::validate::risk::RiskPolicy::default(),
        exchange_rates: Vec::new(),
        tables: crate::tariff::TablePins::builtin(),
        checkpoint_quorum: 4,
        limits: Limits::default(),
        outcome_key: crate::outcome::OutcomeKey {
            id: Hash32::ZERO,
            wraps: Vec::new(),
        },
    };
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_seed([7; 32]);
    cfg.outcome_key =
        crate::outcome::OutcomeKey::wrap_with_rng(&cfg, &OUTCOME_SECRET, &mut rng).expect("wraps");
    cfg.normalize();
    cfg
}

/// Key of a fixture party.
pub fn key(id: &str) -> Keypair {
    let i = PARTIES
        .iter()
        .position(|p| p.0 == id)
        .expect("fixture party");
    Keypair::from_seed(&[i as u8 + 1; 32])
}

/// A signed event with one public field (and, for bookings, filings and
/// amendments, the fixture's [`SHIPMENT_PARTIES`]), claimed at `time`.
pub fn event(
    kind: EventKind,
    shipment: &str,
    submitter: &str,
    nonce: u64,
    time: u64,
) -> SignedTransaction {
    let mut tx = Transaction {
        chain_id: "customs-test".into(),
        kind,
        shipment_id: shipment.into(),
        submitter: submitter.into(),
        nonce,
        claimed_time_ms: time,
        public: vec![PublicField {
            path: "event".into(),
            value: kind.name().into(),
            salt: Bytes([nonce as u8; 32]),
        }],
        sealed: Vec::new(),
        recipients: Vec::new(),
        fields_root: Hash32::ZERO,
        governance: None,
    };
    if crate::chain::names_parties(kind) {
        tx.public.push(PublicField {
            path: crate::chain::PARTIES_FIELD.into(),
            value: SHIPMENT_PARTIES.join(","),
            salt: Bytes([nonce as u8 ^ 0x5a; 32]),
        });
    }
    tx.fields_root = crate::disclosure::fields_root(&tx);
    tx.sign(&key(submitter)).expect("encodable")
}

/// The parties every fixture shipment names at booking and filing.
pub const SHIPMENT_PARTIES: [&str; 3] = ["broker", "carrier", "exporter"];

/// Submitter allowed to send `kind` in the fixture network.
pub fn submitter_for(kind: EventKind) -> &'static str {
    use EventKind as K;
    match kind {
        K::ShipmentBooked => "exporter",
        K::DeclarationFiled
        | K::DeclarationAmended
        | K::DeclarationInvalidated
        | K::InformationProvided => "broker",
        K::Loaded | K::Departed | K::Arrived | K::Delivered | K::Presented => "carrier",
        K::DocumentAttached => "exporter",
        _ => "de-customs",
    }
}

/// The full happy lifecycle of a shipment as signed events.
pub fn lifecycle(shipment: &str, nonce0: u64, time: u64) -> Vec<SignedTransaction> {
    use EventKind as K;
    [
        K::ShipmentBooked,
        K::DeclarationFiled,
        K::AssessmentComplete,
        K::Loaded,
        K::Departed,
        K::Arrived,
        K::Presented,
        K::Released,
        K::Delivered,
    ]
    .iter()
    .enumerate()
    .map(|(i, k)| event(*k, shipment, submitter_for(*k), nonce0 + i as u64, time))
    .collect()
}
