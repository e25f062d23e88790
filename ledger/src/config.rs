//! Chain config (genesis): parties, roles, keys, policies and limits.
//!
//! The config is consensus-critical: every node must hold the same one, and
//! its digest (`config_hash`) is committed in every block header through
//! `config_seq`. Lists are kept sorted so the canonical encoding does not
//! depend on the order a spec file was written in. It changes only through
//! governance transactions.

use crate::codec;
use crate::crypto::{check_registrable_key, PublicKey};
use crate::event::EventKind;
use crate::hash::{tag, tagged_hash, Bytes, Hash32};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A party's role in the trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Customs authority (runs validators).
    Customs,
    /// Exporter / consignor.
    Exporter,
    /// Importer / consignee.
    Importer,
    /// Customs broker / declarant.
    Broker,
    /// Carrier (air, sea, road, rail).
    Carrier,
    /// Auditor.
    Auditor,
}

/// Disclosure class of a declaration field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldClass {
    /// Readable by every registered party (never encrypted).
    Public,
    /// Values, prices, HS codes, invoices.
    Commercial,
    /// Names and addresses of natural or legal persons.
    Personal,
    /// Transport documents, containers, routing, places.
    Transport,
    /// Risk outcomes and security findings.
    Security,
}

impl FieldClass {
    /// All classes, in encoding order.
    pub const ALL: [FieldClass; 5] = [
        FieldClass::Public,
        FieldClass::Commercial,
        FieldClass::Personal,
        FieldClass::Transport,
        FieldClass::Security,
    ];
}

/// A registered party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// Short stable id (`[a-z0-9-]`, at most 32 chars), e.g. `de-customs`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Roles (sorted, no duplicates).
    pub roles: Vec<Role>,
    /// EORI number, where the party has one.
    pub eori: Option<String>,
    /// Ed25519 key that signs transactions and requests.
    pub signing_key: PublicKey,
    /// X25519 key that field data keys are wrapped to.
    pub encryption_key: Bytes<32>,
    /// libp2p peer id of the party's node (derived from its node key).
    pub peer_id: String,
    /// Whether the party's node is a Raft voter (customs only).
    pub validator: bool,
    /// Revoked parties can neither submit nor receive keys.
    pub revoked: bool,
}

impl Party {
    /// Whether the party has `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Which roles read which field class. Customs always read everything;
/// `Commercial` and `Personal` grants to brokers and exporters apply only to
/// the parties named on the shipment (see `disclosure`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureRule {
    /// Field class.
    pub class: FieldClass,
    /// Roles granted.
    pub roles: Vec<Role>,
}

/// Which roles may submit which event kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRule {
    /// Kind.
    pub kind: EventKind,
    /// Roles allowed to submit it.
    pub roles: Vec<Role>,
}

/// The pinned HS nomenclature every validator must use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NomenclaturePin {
    /// Edition name, e.g. `HS2022`.
    pub edition: String,
    /// SHA-256 of the converted nomenclature file.
    pub sha256: Hash32,
    /// SHA-256 of the distilled semantic table customs nodes classify with
    /// (`ledger::hs::semantic`, ADR 0020); zero: lexical classification only.
    #[serde(default)]
    pub semantic: Hash32,
}

/// Size, time and batching limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest encoded signed transaction.
    pub max_tx_bytes: u32,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Largest encoded block.
    pub max_block_bytes: u32,
    /// A transaction's claimed time must lie within this many ms of the block time.
    pub time_window_ms: u64,
    /// Most sealed or public fields in one transaction.
    pub max_fields: u32,
    /// Longest field value in bytes.
    pub max_field_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tx_bytes: 64 * 1024,
            max_block_txs: 4096,
            max_block_bytes: 8 * 1024 * 1024,
            time_window_ms: 10 * 60 * 1000,
            max_fields: 256,
            max_field_bytes: 4096,
        }
    }
}

/// The chain config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainConfig {
    /// Chain id; every transaction names it.
    pub chain_id: String,
    /// Incremented by each governance change.
    pub seq: u64,
    /// Parties, sorted by id.
    pub parties: Vec<Party>,
    /// Disclosure policy, sorted by class.
    pub disclosure: Vec<DisclosureRule>,
    /// Event policy, sorted by kind.
    pub events: Vec<EventRule>,
    /// Pinned nomenclature.
    pub nomenclature: NomenclaturePin,
    /// Classifier version all validators run.
    pub classifier_version: String,
    /// Risk model version all validators run.
    pub risk_model_version: String,
    /// Risk score at or above which a declaration is flagged for review.
    pub risk_review_at: u8,
    /// Risk score at or above which inspection is recommended.
    pub risk_inspect_at: u8,
    /// Sanction and restricted-goods lists and tolerances the risk model
    /// applies (absent from older genesis files: the model's defaults).
    #[serde(default)]
    pub risk_policy: crate::validate::risk::RiskPolicy,
    /// Customs exchange rates by month, oldest first (at most
    /// [`crate::tariff::MAX_RATE_TABLES`]); every conversion a validator
    /// commits uses the table in force at the declaration's date.
    #[serde(default)]
    pub exchange_rates: Vec<crate::tariff::RateTable>,
    /// The duty and VAT tables quotes are computed with (absent from older
    /// genesis files: this build's).
    #[serde(default = "crate::tariff::TablePins::builtin")]
    pub tables: crate::tariff::TablePins,
    /// Checkpoint trust rule: cosignatures needed.
    pub checkpoint_quorum: u32,
    /// Limits.
    pub limits: Limits,
    /// The secret that seals committed risk outcomes, wrapped to the
    /// parties that read `Security` (see [`crate::outcome`]).
    pub outcome_key: crate::outcome::OutcomeKey,
}

/// Why a config is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Something is structurally wrong.
    #[error("invalid chain config: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// A party id is 1-32 chars of `[a-z0-9-]`.
pub fn valid_party_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl ChainConfig {
    /// Canonical digest.
    pub fn hash(&self) -> Result<Hash32, ConfigError> {
        let bytes = codec::encode(self).map_err(|e| invalid(e.to_string()))?;
        Ok(tagged_hash(tag::CONFIG, &[&bytes]))
    }

    /// Look up a party.
    pub fn party(&self, id: &str) -> Option<&Party> {
        self.parties
            .binary_search_by(|p| p.id.as_str().cmp(id))
            .ok()
            .and_then(|i| self.parties.get(i))
    }

    /// Unrevoked validators, by id.
    pub fn validators(&self) -> impl Iterator<Item = &Party> {
        self.parties.iter().filter(|p| p.validator && !p.revoked)
    }

    /// Whether some role of `party` may submit `kind`.
    pub fn may_submit(&self, party: &Party, kind: EventKind) -> bool {
        self.events
            .iter()
            .find(|r| r.kind == kind)
            .is_some_and(|r| r.roles.iter().any(|role| party.has_role(*role)))
    }

    /// Roles granted a field class by the policy (customs always).
    pub fn readers_of(&self, class: FieldClass) -> Vec<Role> {
        let mut roles: Vec<Role> = self
            .disclosure
            .iter()
            .filter(|r| r.class == class)
            .flat_map(|r| r.roles.iter().copied())
            .collect();
        roles.push(Role::Customs);
        roles.sort();
        roles.dedup();
        roles
    }

    /// Sort every list into canonical order (used by genesis builders).
    pub fn normalize(&mut self) {
        self.parties.sort_by(|a, b| a.id.cmp(&b.id));
        for p in &mut self.parties {
            p.roles.sort();
            p.roles.dedup();
        }
        self.disclosure.sort_by_key(|r| r.class);
        for r in &mut self.disclosure {
            r.roles.sort();
            r.roles.dedup();
        }
        self.outcome_key.wraps.sort_by(|a, b| a.party.cmp(&b.party));
        self.risk_policy.normalize();
        self.exchange_rates.sort_by(|a, b| a.month.cmp(&b.month));
        for t in &mut self.exchange_rates {
            t.per_eur.sort();
        }
        self.events.sort_by_key(|r| r.kind);
        for r in &mut self.events {
            r.roles.sort();
            r.roles.dedup();
        }
    }

    /// Structural validation: canonical order, unique ids, registrable keys,
    /// at least one customs validator, sane limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.chain_id.is_empty() || self.chain_id.len() > 64 {
            return Err(invalid("chain_id must be 1-64 bytes"));
        }
        let mut norm = self.clone();
        norm.normalize();
        if &norm != self {
            return Err(invalid("lists are not in canonical order (run normalize)"));
        }
        let mut ids = BTreeSet::new();
        let mut peers = BTreeSet::new();
        let mut signing = BTreeSet::new();
        for p in &self.parties {
            if !valid_party_id(&p.id) {
                return Err(invalid(format!("bad party id {:?}", p.id)));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(invalid(format!("duplicate party id {}", p.id)));
            }
            if !peers.insert(p.peer_id.as_str()) {
                return Err(invalid(format!("duplicate peer id for {}", p.id)));
            }
            if !signing.insert(p.signing_key) {
                return Err(invalid(format!("signing key of {} reused", p.id)));
            }
            if p.roles.is_empty() {
                return Err(invalid(format!("party {} has no role", p.id)));
            }
            check_registrable_key(&p.signing_key)
                .map_err(|e| invalid(format!("party {}: {e}", p.id)))?;
            if p.validator && !p.has_role(Role::Customs) {
                return Err(invalid(format!(
                    "party {} is a validator but not customs",
                    p.id
                )));
            }
        }
        let mut wrapped = BTreeSet::new();
        for w in &self.outcome_key.wraps {
            if !ids.contains(w.party.as_str()) || !wrapped.insert(w.party.as_str()) {
                return Err(invalid(format!(
                    "outcome key wrap for unknown or repeated party {:?}",
                    w.party
                )));
            }
        }
        let v = self.validators().count();
        if v == 0 {
            return Err(invalid("at least one customs validator is required"));
        }
        if self.checkpoint_quorum == 0 || self.checkpoint_quorum as usize > self.parties.len() {
            return Err(invalid(
                "checkpoint_quorum must be between 1 and the party count",
            ));
        }
        if self.risk_review_at > self.risk_inspect_at || self.risk_inspect_at > 100 {
            return Err(invalid("need risk_review_at <= risk_inspect_at <= 100"));
        }
        self.risk_policy
            .check()
            .map_err(|e| invalid(format!("risk policy: {e}")))?;
        self.tables
            .check()
            .map_err(|e| invalid(format!("tables: {e}")))?;
        if self.exchange_rates.len() > crate::tariff::MAX_RATE_TABLES {
            return Err(invalid("too many exchange-rate tables"));
        }
        for w in self.exchange_rates.windows(2) {
            if w[0].month >= w[1].month {
                return Err(invalid(
                    "exchange-rate tables must be sorted by month, one per month",
                ));
            }
        }
        for t in &self.exchange_rates {
            t.check()
                .map_err(|e| invalid(format!("exchange rates of {}: {e}", t.month)))?;
        }
        let l = &self.limits;
        if l.max_tx_bytes < 256
            || l.max_block_txs == 0
            || (l.max_block_bytes as u64) < l.max_tx_bytes as u64
            || l.time_window_ms == 0
        {
            return Err(invalid("limits out of range"));
        }
        Ok(())
    }
}

/// The default disclosure policy of DESIGN.md.
pub fn default_disclosure() -> Vec<DisclosureRule> {
    use Role::*;
    vec![
        DisclosureRule {
            class: FieldClass::Public,
            roles: vec![Customs, Exporter, Importer, Broker, Carrier, Auditor],
        },
        DisclosureRule {
            class: FieldClass::Commercial,
            roles: vec![Customs, Exporter, Importer, Broker],
        },
        DisclosureRule {
            class: FieldClass::Personal,
            roles: vec![Customs, Exporter, Importer, Broker],
        },
        DisclosureRule {
            class: FieldClass::Transport,
            roles: vec![Customs, Carrier, Broker],
        },
        DisclosureRule {
            class: FieldClass::Security,
            roles: vec![Customs],
        },
    ]
}

/// The default event policy: who may submit what.
pub fn default_events() -> Vec<EventRule> {
    use EventKind as K;
    use Role::*;
    EventKind::ALL
        .iter()
        .map(|&kind| {
            let roles = match kind {
                K::ShipmentBooked => vec![Exporter, Broker, Carrier],
                K::DeclarationFiled
                | K::DeclarationAmended
                | K::DeclarationInvalidated
                | K::InformationProvided => vec![Broker, Exporter, Carrier],
                K::AssessmentComplete
                | K::RequestForInformation
                | K::HighRiskScreening
                | K::DoNotLoad
                | K::InspectionOrdered
                | K::InspectionResult
                | K::Released
                | K::Held
                | K::Rejected => vec![Customs],
                K::Loaded | K::Departed | K::Arrived | K::Delivered => vec![Carrier],
                K::Presented => vec![Carrier, Broker],
                K::DocumentAttached => vec![Exporter, Broker, Carrier, Customs],
                K::PartyAdded
                | K::KeyRotated
                | K::PartyRevoked
                | K::ValidatorSetChanged
                | K::PolicyChanged => vec![Customs],
            };
            EventRule { kind, roles }
        })
        .collect()
}
