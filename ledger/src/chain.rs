//! The deterministic apply path: signed transactions in, a block out.
//!
//! [`Ledger::build_block`] is a pure function of the committed state, the
//! batch and the [`BlockContext`] (time, Raft term/index, proposer) that the
//! leader put in the Raft entry: it validates every transaction (structure,
//! strict signature, submitter, role, replay, time window, lifecycle,
//! governance quorum, then the [`ContentValidator`]), keeps the accepted
//! ones in order with their results, and returns the block and the
//! [`BlockWrite`] that commits it. Rejected transactions are reported and
//! change nothing. No clock, randomness, float or hash-map order is used.
//!
//! [`verify_chain`] replays stored blocks through the same path from genesis
//! and reports the first height that does not reproduce.

use crate::block::{body_roots, Block, BlockHeader, Checkpoint, TxResult};
use crate::codec::CodecError;
use crate::config::{valid_party_id, ChainConfig, ConfigError, Role};
use crate::crypto;
use crate::event::{self, EventKind, ShipmentState};
use crate::hash::{Bytes, Hash32};
use crate::merkle;
use crate::store::{BlockWrite, LearnedWrite, MemStore, Store, StoreError, Tip, TxLocation};
use crate::tx::{signing_message, Governance, SignedTransaction, TxBatch};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the leader fixed for a block in its Raft entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockContext {
    /// Proposed block time (ms since the Unix epoch); raised to the previous
    /// block's time if it is earlier.
    pub timestamp_ms: u64,
    /// Raft term of the entry.
    pub raft_term: u64,
    /// Raft log index of the entry.
    pub raft_index: u64,
    /// Proposing party.
    pub proposer: String,
}

/// Why a transaction was refused. Codes are stable; clients act on them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// Stable reason code, e.g. `TX_BAD_SIGNATURE`.
    pub code: String,
    /// Human explanation.
    pub message: String,
}

/// Build a rejection.
pub fn reject(code: &str, message: impl Into<String>) -> Rejection {
    Rejection {
        code: code.to_string(),
        message: message.into(),
    }
}

/// What content validation (classification, risk) concluded, sealed as it
/// is committed (see [`crate::outcome`]); empty for anything but
/// declarations. This is what travels in a Raft entry, so nodes that cannot
/// decrypt never see a judgement in the clear.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentOutcome {
    /// Sealed parts, by class.
    pub sealed: Vec<crate::outcome::SealedOutcome>,
}

/// Content checks that may need decrypted fields (HS codes, values). Run
/// after every generic check passed. Implementations must be deterministic.
pub trait ContentValidator {
    /// Judge one transaction, given the shipment state before it.
    fn check(
        &mut self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
        state: Option<&ShipmentState>,
    ) -> Result<ContentOutcome, Rejection>;

    /// Whether this validator learns from committed blocks (and so has a
    /// learned state to persist and restore).
    fn learns(&self) -> bool {
        false
    }

    /// Bring the learned state to the one a declaration batch is judged
    /// against (folded through block `at`, ADR 0016). `Ok(false)`: it is
    /// folded past it already (a leader that judged ahead), so only outcomes
    /// this node judged itself can be vouched for.
    fn prepare_judging(&mut self, at: u64) -> Result<bool, String> {
        let _ = at;
        Ok(true)
    }

    /// Learn from `block`, about to be committed, in commit order (`config`
    /// is the config after it), and return the sealed records to write in
    /// the block's batch (ADR 0015). If the write fails the ledger calls
    /// [`ContentValidator::forget`].
    fn learn(&mut self, config: &ChainConfig, block: &Block) -> Option<LearnedWrite> {
        let _ = (config, block);
        None
    }

    /// Drop everything learned, before it is learned again from the chain
    /// or restored from stored records ([`Ledger::restore_learned`]).
    fn forget(&mut self) {}

    /// Restore the learned state from a stored checkpoint. `Ok(None)`: this
    /// validator cannot open it (no key for it); an error: it opens but is
    /// damaged.
    fn restore_checkpoint(
        &mut self,
        config: &ChainConfig,
        sealed: &[u8],
    ) -> Result<Option<u64>, String> {
        let _ = (config, sealed);
        Ok(None)
    }

    /// Fold a stored journal record of block `height` into the restored
    /// state. `Ok(false)`: this validator cannot open it.
    fn restore_journal(
        &mut self,
        config: &ChainConfig,
        height: u64,
        sealed: &[u8],
    ) -> Result<bool, String> {
        let _ = (config, height, sealed);
        Ok(false)
    }

    /// A sealed checkpoint of the whole learned state as of block `height`
    /// (after it was rebuilt from the blocks).
    fn checkpoint(&mut self, config: &ChainConfig, height: u64) -> Option<Vec<u8>> {
        let _ = (config, height);
        None
    }

    /// This node's own outcome for a transaction it disagreed on (for the
    /// evidence it keeps), if it has one.
    fn own_outcome(&mut self, tx_id: &Hash32) -> Option<ContentOutcome> {
        let _ = tx_id;
        None
    }

    /// Re-judge a transaction whose outcome the leader recorded and say
    /// whether this node agrees. Validators that cannot judge agree.
    fn agrees(
        &mut self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
        recorded: &ContentOutcome,
    ) -> bool {
        let _ = (config, stx, tx_id, recorded);
        true
    }
}

/// No content checks (a node that cannot decrypt, or tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoContent;

impl ContentValidator for NoContent {
    fn check(
        &mut self,
        _: &ChainConfig,
        _: &SignedTransaction,
        _: &Hash32,
        _: Option<&ShipmentState>,
    ) -> Result<ContentOutcome, Rejection> {
        Ok(ContentOutcome::default())
    }
}

/// Replays the content outcomes recorded in a stored block (auditors and
/// learners cannot decrypt what customs judged).
#[derive(Debug, Default)]
pub struct RecordedContent {
    results: BTreeMap<Hash32, TxResult>,
    /// The outcomes were judged against another state than this block's
    /// parent: declarations are refused (`STALE_JUDGEMENT`).
    stale: bool,
}

impl RecordedContent {
    /// Outcomes the leader recorded in a Raft entry, by transaction id.
    pub fn from_outcomes(items: impl IntoIterator<Item = (Hash32, ContentOutcome)>) -> Self {
        RecordedContent {
            results: items
                .into_iter()
                .map(|(id, o)| {
                    (
                        id,
                        TxResult {
                            tx_id: id,
                            status: None,
                            outcome: o.sealed,
                        },
                    )
                })
                .collect(),
            stale: false,
        }
    }

    /// Refuse declarations: the leader judged them against another state
    /// than the one this block builds on (ADR 0014). Every node can tell,
    /// from public data alone.
    pub fn stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// Outcomes of `block`.
    pub fn of(block: &Block) -> Self {
        RecordedContent {
            results: block.results.iter().map(|r| (r.tx_id, r.clone())).collect(),
            stale: false,
        }
    }
}

impl ContentValidator for RecordedContent {
    fn check(
        &mut self,
        _: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
        _: Option<&ShipmentState>,
    ) -> Result<ContentOutcome, Rejection> {
        if self.stale && stx.tx.kind.carries_declaration() {
            return Err(reject(
                "STALE_JUDGEMENT",
                "judged against an older ledger state than this block's parent; resubmit",
            ));
        }
        Ok(self
            .results
            .get(tx_id)
            .map(|r| ContentOutcome {
                sealed: r.outcome.clone(),
            })
            .unwrap_or_default())
    }
}

/// How [`Ledger::restore_learned`] brought a learned state to the tip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedRestore {
    /// Height of the checkpoint loaded, or written after rebuilding.
    pub checkpoint: Option<u64>,
    /// Journal records folded in after the loaded checkpoint.
    pub journal: u64,
    /// Blocks learned from directly (no usable record covered them).
    pub replayed: u64,
}

/// Ledger failures (not transaction rejections).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Storage failed or holds corrupt data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Config invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Merkle tree inconsistency.
    #[error("merkle: {0}")]
    Merkle(String),
    /// The store holds a different chain than expected.
    #[error("{0}")]
    Mismatch(String),
    /// Batch larger than the limits allow.
    #[error("batch too large: {0}")]
    BatchTooLarge(String),
}

/// What [`Ledger::verify_store`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCheck {
    /// Blocks checked, genesis included.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// Learned-state records (checkpoint and journal) checked.
    pub learned_records: u64,
}

/// A block built but not yet written.
#[derive(Debug)]
pub struct BuiltBlock {
    /// The block.
    pub block: Block,
    /// Its hash.
    pub hash: Hash32,
    /// Refused transactions (id, reason), in batch order.
    pub rejected: Vec<(Hash32, Rejection)>,
    /// The atomic write.
    pub write: BlockWrite,
    new_config: Option<ChainConfig>,
}

/// Adapter from [`Store`] to the Merkle node store port.
struct Nodes<'a, S: ?Sized>(&'a S);

impl<S: Store + ?Sized> merkle::NodeStore for Nodes<'_, S> {
    type Error = StoreError;
    fn get_node(&self, level: u8, index: u64) -> Result<Option<merkle::Hash>, StoreError> {
        self.0.merkle_node(level, index)
    }
}

fn merkle_err<E: std::fmt::Display>(e: E) -> LedgerError {
    LedgerError::Merkle(e.to_string())
}

/// A node's ledger over a [`Store`].
#[derive(Debug)]
pub struct Ledger<S: Store> {
    store: S,
    /// Shared so admission can check against a snapshot without the lock.
    config: Arc<ChainConfig>,
    genesis_hash: Hash32,
    tip: Tip,
    /// Signatures verified at admission, not verified again at apply.
    verified: Arc<crypto::VerifiedSignatures>,
}

/// Signatures a ledger remembers as verified (see [`crypto::VerifiedSignatures`]).
const VERIFIED_CAPACITY: usize = 1 << 16;

const SHIPMENT_ID_MAX: usize = 64;
const PATH_MAX: usize = 128;

fn valid_shipment_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= SHIPMENT_ID_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= PATH_MAX
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']'))
}

/// Checks that need only the transaction and the config: size, chain id,
/// ids, field lists, governance shape.
pub fn check_structure(
    cfg: &ChainConfig,
    stx: &SignedTransaction,
    encoded_len: usize,
) -> Result<(), Rejection> {
    let tx = &stx.tx;
    let l = &cfg.limits;
    if encoded_len > l.max_tx_bytes as usize {
        return Err(reject(
            "TX_TOO_LARGE",
            format!("{encoded_len} bytes exceeds {} bytes", l.max_tx_bytes),
        ));
    }
    if tx.chain_id != cfg.chain_id {
        return Err(reject(
            "TX_WRONG_CHAIN",
            format!("chain id {:?} is not {:?}", tx.chain_id, cfg.chain_id),
        ));
    }
    if !valid_party_id(&tx.submitter) {
        return Err(reject("TX_BAD_SUBMITTER", "submitter id is malformed"));
    }
    if tx.kind.is_governance() {
        if !tx.shipment_id.is_empty() || tx.governance.is_none() {
            return Err(reject(
                "TX_BAD_GOVERNANCE",
                "a governance transaction has no shipment id and carries an action",
            ));
        }
    } else {
        if tx.governance.is_some() || !stx.approvals.is_empty() {
            return Err(reject(
                "TX_BAD_GOVERNANCE",
                "only governance transactions carry actions and approvals",
            ));
        }
        if !valid_shipment_id(&tx.shipment_id) {
            return Err(reject(
                "TX_BAD_SHIPMENT_ID",
                "shipment id must be 1-64 chars of [A-Za-z0-9-_./]",
            ));
        }
    }
    let n = tx.public.len() + tx.sealed.len();
    if n > l.max_fields as usize {
        return Err(reject("TX_TOO_MANY_FIELDS", format!("{n} fields")));
    }
    let mut paths = BTreeSet::new();
    for w in tx.public.windows(2) {
        if w[0].path >= w[1].path {
            return Err(reject("TX_BAD_FIELDS", "public fields not sorted by path"));
        }
    }
    for w in tx.sealed.windows(2) {
        if w[0].path >= w[1].path {
            return Err(reject("TX_BAD_FIELDS", "sealed fields not sorted by path"));
        }
    }
    for f in &tx.public {
        if !valid_path(&f.path) || f.value.len() > l.max_field_bytes as usize {
            return Err(reject(
                "TX_BAD_FIELDS",
                format!("bad public field {:?}", f.path),
            ));
        }
        paths.insert(f.path.as_str());
    }
    crate::event::check_event_fields(tx, l.time_window_ms)
        .map_err(|(code, why)| reject(code, why))?;
    for f in &tx.sealed {
        if !valid_path(&f.path)
            || f.ciphertext.len() > l.max_field_bytes as usize + 64
            || f.class == crate::config::FieldClass::Public
        {
            return Err(reject(
                "TX_BAD_FIELDS",
                format!("bad sealed field {:?}", f.path),
            ));
        }
        if !paths.insert(f.path.as_str()) {
            return Err(reject(
                "TX_BAD_FIELDS",
                format!("field {:?} both public and sealed", f.path),
            ));
        }
    }
    if crate::disclosure::fields_root(tx) != tx.fields_root {
        return Err(reject(
            "TX_FIELDS_ROOT",
            "fields_root does not match the field commitments",
        ));
    }
    for w in tx.recipients.windows(2) {
        if w[0].party >= w[1].party {
            return Err(reject(
                "TX_BAD_RECIPIENTS",
                "recipients not sorted by party",
            ));
        }
    }
    for w in stx.approvals.windows(2) {
        if w[0].party >= w[1].party {
            return Err(reject("TX_BAD_GOVERNANCE", "approvals not sorted by party"));
        }
    }
    Ok(())
}

/// The chain config after committed block `block`, given the config before
/// it: its governance transactions applied in order (every one of them was
/// accepted, or it would not be in the block), checked against the hash the
/// header names. For tools that replay an exported chain they verify anyway.
pub fn config_after(config: &ChainConfig, block: &Block) -> Result<ChainConfig, LedgerError> {
    governance_after(config, block, false)
}

/// [`config_after`] for a light client that follows the chain config from a
/// trusted one without replaying the chain (an auditor holding only the
/// genesis config): the block's body must match its header, and every
/// governance transaction in it must be signed by its submitter, allowed to
/// it and approved by a majority of validators, all under the config before
/// it ([`check_governance`]). A node cannot make such a client accept a
/// config that the validators of the previous one did not approve, and
/// leaving a governance block out shows as a config hash that does not
/// match the next header.
pub fn follow_governance(config: &ChainConfig, block: &Block) -> Result<ChainConfig, LedgerError> {
    if block.header.chain_id != config.chain_id {
        return Err(LedgerError::Mismatch(format!(
            "block {} is of chain {:?}, not {:?}",
            block.header.height, block.header.chain_id, config.chain_id
        )));
    }
    if !block.body_matches_header() {
        return Err(LedgerError::Mismatch(format!(
            "block {}: body does not match its header",
            block.header.height
        )));
    }
    governance_after(config, block, true)
}

fn governance_after(
    config: &ChainConfig,
    block: &Block,
    check: bool,
) -> Result<ChainConfig, LedgerError> {
    let mut cfg = config.clone();
    for stx in &block.txs {
        if let Some(g) = &stx.tx.governance {
            let applied = if check {
                check_governance(&cfg, stx).and_then(|()| apply_governance(&cfg, g))
            } else {
                apply_governance(&cfg, g)
            };
            cfg = applied.map_err(|r| {
                LedgerError::Mismatch(format!(
                    "block {}: governance does not apply: {} ({})",
                    block.header.height, r.message, r.code
                ))
            })?;
        }
    }
    if cfg.hash()? != block.header.config_hash || cfg.seq != block.header.config_seq {
        return Err(LedgerError::Mismatch(format!(
            "block {}: config after its governance does not match the header",
            block.header.height
        )));
    }
    Ok(cfg)
}

/// Is `stx` a governance transaction that `config` accepts, apart from
/// replay and time: a governance kind with an action, signed (strictly) by a
/// registered, unrevoked submitter whose role may submit it, and approved by
/// a majority of the validators. What an approver checks before signing and
/// what a light client checks of committed governance.
pub fn check_governance(config: &ChainConfig, stx: &SignedTransaction) -> Result<(), Rejection> {
    let tx = &stx.tx;
    if !tx.kind.is_governance() || tx.governance.is_none() || !tx.shipment_id.is_empty() {
        return Err(reject(
            "TX_BAD_GOVERNANCE",
            "not a governance transaction with an action",
        ));
    }
    if tx.chain_id != config.chain_id {
        return Err(reject(
            "TX_WRONG_CHAIN",
            format!("chain id {:?} is not {:?}", tx.chain_id, config.chain_id),
        ));
    }
    let id = stx
        .id()
        .map_err(|e| reject("TX_MALFORMED", e.to_string()))?;
    let party = submitter_of(config, stx)?;
    crypto::verify(&party.signing_key, &signing_message(&id), &stx.signature)
        .map_err(|e| reject("TX_BAD_SIGNATURE", e.to_string()))?;
    if !config.may_submit(party, tx.kind) {
        return Err(reject(
            "TX_ROLE_NOT_ALLOWED",
            format!("{} may not submit {}", party.id, tx.kind.name()),
        ));
    }
    for w in stx.approvals.windows(2) {
        if w[0].party >= w[1].party {
            return Err(reject("TX_BAD_GOVERNANCE", "approvals not sorted by party"));
        }
    }
    check_quorum(config, stx, &id)
}

/// The config a governance action would produce from `config` (what a
/// proposer or approver shows as a diff before signing).
pub fn propose_governance(config: &ChainConfig, g: &Governance) -> Result<ChainConfig, Rejection> {
    apply_governance(config, g)
}

/// Apply a governance action to a config copy.
fn apply_governance(cfg: &ChainConfig, g: &Governance) -> Result<ChainConfig, Rejection> {
    let mut next = cfg.clone();
    let find = |next: &mut ChainConfig, id: &str| -> Result<usize, Rejection> {
        next.parties
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| reject("GOV_UNKNOWN_PARTY", format!("no party {id}")))
    };
    match g {
        Governance::AddParty(p) => {
            if cfg.party(&p.id).is_some() {
                return Err(reject(
                    "GOV_DUPLICATE_PARTY",
                    format!("party {} exists", p.id),
                ));
            }
            next.parties.push(p.clone());
        }
        Governance::RotateKey {
            party,
            signing_key,
            encryption_key,
        } => {
            let i = find(&mut next, party)?;
            if let Some(p) = next.parties.get_mut(i) {
                if let Some(k) = signing_key {
                    p.signing_key = *k;
                }
                if let Some(k) = encryption_key {
                    p.encryption_key = *k;
                }
            }
        }
        Governance::RevokeParty { party } => {
            let i = find(&mut next, party)?;
            if let Some(p) = next.parties.get_mut(i) {
                p.revoked = true;
                p.validator = false;
            }
        }
        Governance::SetValidator { party, validator } => {
            let i = find(&mut next, party)?;
            if let Some(p) = next.parties.get_mut(i) {
                p.validator = *validator;
            }
        }
        Governance::SetPolicy {
            disclosure,
            events,
            checkpoint_quorum,
        } => {
            if let Some(d) = disclosure {
                next.disclosure = d.clone();
            }
            if let Some(e) = events {
                next.events = e.clone();
            }
            if let Some(q) = checkpoint_quorum {
                next.checkpoint_quorum = *q;
            }
        }
        Governance::SetOutcomeKey(k) => {
            next.outcome_key = k.clone();
        }
        Governance::PinTables(t) => {
            next.tables = t.clone();
        }
        Governance::PublishRates(t) => {
            next.exchange_rates.retain(|x| x.month != t.month);
            next.exchange_rates.push(t.clone());
            next.exchange_rates.sort_by(|a, b| a.month.cmp(&b.month));
            let excess = next
                .exchange_rates
                .len()
                .saturating_sub(crate::tariff::MAX_RATE_TABLES);
            next.exchange_rates.drain(..excess);
        }
        Governance::SetRiskPolicy {
            review_at,
            inspect_at,
            policy,
        } => {
            if let Some(r) = review_at {
                next.risk_review_at = *r;
            }
            if let Some(i) = inspect_at {
                next.risk_inspect_at = *i;
            }
            if let Some(p) = policy {
                next.risk_policy = p.clone();
            }
        }
    }
    next.seq = cfg.seq.saturating_add(1);
    next.normalize();
    next.validate()
        .map_err(|e| reject("GOV_INVALID_CONFIG", e.to_string()))?;
    Ok(next)
}

fn submitter_of<'a>(
    config: &'a ChainConfig,
    stx: &SignedTransaction,
) -> Result<&'a crate::config::Party, Rejection> {
    let party = config.party(&stx.tx.submitter).ok_or_else(|| {
        reject(
            "TX_UNKNOWN_SUBMITTER",
            format!("{} is not a registered party", stx.tx.submitter),
        )
    })?;
    if party.revoked {
        return Err(reject(
            "TX_REVOKED_SUBMITTER",
            format!("{} has been revoked", party.id),
        ));
    }
    Ok(party)
}

/// The stateless part of admission: size and structure limits, a registered
/// submitter, and its strict signature over `id`. Needs only a config.
/// A signature that verifies is remembered in `verified`.
pub fn check_signed(
    config: &ChainConfig,
    stx: &SignedTransaction,
    id: &Hash32,
    encoded_len: usize,
    verified: &crypto::VerifiedSignatures,
) -> Result<(), Rejection> {
    check_structure(config, stx, encoded_len)?;
    let party = submitter_of(config, stx)?;
    verified
        .verify(&party.signing_key, &signing_message(id), &stx.signature)
        .map_err(|e| reject("TX_BAD_SIGNATURE", e.to_string()))
}

/// The key each transaction's signature verified under, in order: its
/// submitter's key in `config`, `None` for an unregistered submitter or a
/// signature that does not verify. Signatures `verified` remembers are
/// answered from it; the rest are checked in one batch (ADR 0002) and
/// remembered when they verify.
pub fn verified_signers<'a>(
    config: &ChainConfig,
    txs: impl IntoIterator<Item = (&'a SignedTransaction, &'a Hash32)>,
    verified: &crypto::VerifiedSignatures,
) -> Vec<Option<crypto::PublicKey>> {
    let txs: Vec<(&SignedTransaction, &Hash32)> = txs.into_iter().collect();
    let keys: Vec<Option<crypto::PublicKey>> = txs
        .iter()
        .map(|(stx, _)| config.party(&stx.tx.submitter).map(|p| p.signing_key))
        .collect();
    let messages: Vec<[u8; 57]> = txs.iter().map(|(_, id)| signing_message(id)).collect();
    let (slots, items): (Vec<usize>, Vec<crypto::BatchItem<'_>>) = txs
        .iter()
        .zip(&messages)
        .zip(&keys)
        .enumerate()
        .filter_map(|(i, (((stx, _), msg), key))| {
            key.as_ref().map(|key| {
                (
                    i,
                    crypto::BatchItem {
                        key,
                        msg,
                        sig: &stx.signature,
                    },
                )
            })
        })
        .unzip();
    let mut signers = vec![None; txs.len()];
    for (slot, v) in slots.into_iter().zip(verified.verify_many(&items)) {
        if v.is_ok() {
            signers[slot] = keys[slot];
        }
    }
    signers
}

/// Checks against state: replay, time window, role, lifecycle, governance
/// quorum. Returns the shipment state after the transaction.
fn check_stateful<S: Store + ?Sized>(
    store: &S,
    config: &ChainConfig,
    stx: &SignedTransaction,
    id: &Hash32,
    block_time_ms: u64,
    pending: &BTreeMap<String, ShipmentState>,
) -> Result<Option<ShipmentState>, Rejection> {
    let tx = &stx.tx;
    let party = submitter_of(config, stx)?;
    if !config.may_submit(party, tx.kind) {
        return Err(reject(
            "TX_ROLE_NOT_ALLOWED",
            format!("{} may not submit {}", party.id, tx.kind.name()),
        ));
    }
    let window = config.limits.time_window_ms;
    if tx.claimed_time_ms.abs_diff(block_time_ms) > window {
        return Err(reject(
            "TX_TIME_WINDOW",
            format!(
                "claimed time {} is more than {window} ms from {block_time_ms}",
                tx.claimed_time_ms
            ),
        ));
    }
    match store.tx_location(id) {
        Ok(Some(loc)) => {
            return Err(reject(
                "TX_DUPLICATE",
                format!(
                    "already committed at height {} index {}",
                    loc.height, loc.index
                ),
            ))
        }
        Ok(None) => {}
        Err(e) => return Err(reject("INTERNAL_STORE", e.to_string())),
    }
    if tx.kind.is_governance() {
        check_quorum(config, stx, id)?;
        return Ok(None);
    }
    let before = shipment_before(store, pending, &tx.shipment_id)?;
    if let Some(b) = &before {
        if !party.has_role(Role::Customs) && b.parties.binary_search(&party.id).is_err() {
            return Err(reject(
                "TX_NOT_SHIPMENT_PARTY",
                format!("{} is not a party of shipment {}", party.id, tx.shipment_id),
            ));
        }
    }
    let mut after =
        event::transition(before.as_ref(), tx.kind).map_err(|e| reject(e.code, e.message))?;
    after.parties = shipment_parties(config, tx, before.as_ref())?;
    Ok(Some(after))
}

/// Most parties a shipment may name (its exporter, declarant, importer,
/// carriers and forwarders fit well within it).
pub const MAX_SHIPMENT_PARTIES: usize = 16;

/// Public field naming a shipment's parties: comma-separated party ids.
pub const PARTIES_FIELD: &str = "parties";

/// Kinds whose submitter may name further parties of the shipment.
pub fn names_parties(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::ShipmentBooked | EventKind::DeclarationFiled | EventKind::DeclarationAmended
    )
}

/// The shipment's parties after `tx`: those before it, plus, for the first
/// event, its submitter, plus the parties a booking, filing or amendment
/// names in its public `parties` field. Parties are only ever added, so a
/// broker cannot lock out the exporter that appointed it. Every named party
/// must be registered and not revoked.
fn shipment_parties(
    config: &ChainConfig,
    tx: &crate::tx::Transaction,
    before: Option<&ShipmentState>,
) -> Result<Vec<String>, Rejection> {
    let mut parties: BTreeSet<String> = match before {
        Some(b) => b.parties.iter().cloned().collect(),
        None => BTreeSet::from([tx.submitter.clone()]),
    };
    let Some(field) = tx.public.iter().find(|f| f.path == PARTIES_FIELD) else {
        return Ok(parties.into_iter().collect());
    };
    if !names_parties(tx.kind) {
        return Err(reject(
            "TX_BAD_PARTIES",
            format!("{} cannot name shipment parties", tx.kind.name()),
        ));
    }
    for id in field.value.split(',') {
        let ok = config.party(id).is_some_and(|p| !p.revoked);
        if !ok {
            return Err(reject(
                "TX_BAD_PARTIES",
                format!("{id:?} is not a registered, active party"),
            ));
        }
        parties.insert(id.to_string());
    }
    if parties.len() > MAX_SHIPMENT_PARTIES {
        return Err(reject(
            "TX_BAD_PARTIES",
            format!("a shipment names at most {MAX_SHIPMENT_PARTIES} parties"),
        ));
    }
    Ok(parties.into_iter().collect())
}

fn shipment_before<S: Store + ?Sized>(
    store: &S,
    pending: &BTreeMap<String, ShipmentState>,
    shipment: &str,
) -> Result<Option<ShipmentState>, Rejection> {
    match pending.get(shipment) {
        Some(s) => Ok(Some(s.clone())),
        None => store
            .shipment_state(shipment)
            .map_err(|e| reject("INTERNAL_STORE", e.to_string())),
    }
}

fn check_quorum(
    config: &ChainConfig,
    stx: &SignedTransaction,
    id: &Hash32,
) -> Result<(), Rejection> {
    let msg = signing_message(id);
    let validators: BTreeSet<&str> = config.validators().map(|p| p.id.as_str()).collect();
    let mut approvers: BTreeSet<&str> = BTreeSet::new();
    if validators.contains(stx.tx.submitter.as_str()) {
        approvers.insert(stx.tx.submitter.as_str());
    }
    for a in &stx.approvals {
        let Some(p) = config.party(&a.party).filter(|p| p.validator && !p.revoked) else {
            return Err(reject(
                "GOV_BAD_APPROVAL",
                format!("{} is not a validator", a.party),
            ));
        };
        crypto::verify(&p.signing_key, &msg, &a.signature).map_err(|_| {
            reject(
                "GOV_BAD_APPROVAL",
                format!("approval of {} does not verify", a.party),
            )
        })?;
        approvers.insert(p.id.as_str());
    }
    if approvers.len() * 2 <= validators.len() {
        return Err(reject(
            "GOV_NO_QUORUM",
            format!(
                "{} of {} validators approved; a majority is needed",
                approvers.len(),
                validators.len()
            ),
        ));
    }
    Ok(())
}

impl<S: Store> Ledger<S> {
    /// Open a store, writing the genesis block if it is empty. A non-empty
    /// store must hold the same genesis.
    pub fn init(store: S, genesis: ChainConfig, genesis_time_ms: u64) -> Result<Self, LedgerError> {
        genesis.validate()?;
        let header = genesis_header(&genesis, genesis_time_ms)?;
        let hash = header.hash()?;
        if store.tip()?.is_none() {
            let block = Block {
                header,
                txs: Vec::new(),
                results: Vec::new(),
            };
            let nodes = merkle::append_nodes(&Nodes(&store), 0, merkle::leaf_hash(&hash.0))
                .map_err(merkle_err)?;
            store.commit(BlockWrite {
                height: 0,
                block: block.encode()?,
                tip: Some(Tip {
                    height: 0,
                    hash,
                    timestamp_ms: genesis_time_ms,
                }),
                merkle_nodes: nodes,
                config: Some(genesis),
                ..BlockWrite::default()
            })?;
        }
        let ledger = Self::open(store)?;
        if ledger.genesis_hash != hash {
            return Err(LedgerError::Mismatch(format!(
                "store holds genesis {} but the chain config gives {}",
                ledger.genesis_hash, hash
            )));
        }
        Ok(ledger)
    }

    /// Open an initialised store, checking the tip against its block.
    pub fn open(store: S) -> Result<Self, LedgerError> {
        let tip = store
            .tip()?
            .ok_or_else(|| LedgerError::Mismatch("store has no genesis block".into()))?;
        let config = store
            .config()?
            .ok_or_else(|| LedgerError::Mismatch("store has no chain config".into()))?;
        let genesis = store
            .block(0)?
            .ok_or_else(|| LedgerError::Mismatch("store has no genesis block".into()))?;
        let top = store
            .block(tip.height)?
            .ok_or_else(|| LedgerError::Mismatch(format!("tip block {} missing", tip.height)))?;
        if top.hash()? != tip.hash {
            return Err(LedgerError::Mismatch(format!(
                "block {} does not hash to the recorded tip",
                tip.height
            )));
        }
        Ok(Ledger {
            genesis_hash: genesis.hash()?,
            store,
            config: Arc::new(config),
            tip,
            verified: Arc::new(crypto::VerifiedSignatures::new(VERIFIED_CAPACITY)),
        })
    }

    /// Give the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Config in force.
    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// The signatures this ledger remembers as verified; admission passes it
    /// to [`check_signed`] so apply need not verify them again.
    pub fn verified_signatures(&self) -> Arc<crypto::VerifiedSignatures> {
        self.verified.clone()
    }

    /// Config in force, shared (cheap to clone, immutable).
    pub fn shared_config(&self) -> Arc<ChainConfig> {
        self.config.clone()
    }

    /// Newest block.
    pub fn tip(&self) -> &Tip {
        &self.tip
    }

    /// Genesis block hash.
    pub fn genesis_hash(&self) -> Hash32 {
        self.genesis_hash
    }

    /// Leaves in the ledger-wide tree.
    pub fn tree_size(&self) -> u64 {
        self.tip.height + 1
    }

    /// The checkpoint for the current tip.
    pub fn checkpoint(&self) -> Result<Checkpoint, LedgerError> {
        self.checkpoint_at(self.tip.height)
    }

    /// The checkpoint for an earlier height (reads the block's header only:
    /// every node asks this for each cosignature gossiped to it).
    pub fn checkpoint_at(&self, height: u64) -> Result<Checkpoint, LedgerError> {
        let header = self
            .store
            .block_header(height)?
            .ok_or_else(|| LedgerError::Mismatch(format!("no block {height}")))?;
        let size = height + 1;
        let root = merkle::root_at(&Nodes(&self.store), size).map_err(merkle_err)?;
        Ok(Checkpoint {
            chain_id: self.config.chain_id.clone(),
            height,
            block_hash: header.hash()?,
            tree_size: size,
            tree_root: Bytes(root),
        })
    }

    /// Block `height`, checked before it is served: its body must match the
    /// roots in its header, its header must be at `height`, and its hash
    /// must be the leaf of the ledger tree this node built when it committed
    /// it. A stored block altered afterwards (a bit flip, an edit on disk) is
    /// reported as corrupt, never returned.
    pub fn block(&self, height: u64) -> Result<Option<Block>, LedgerError> {
        read_block(&self.store, height)
    }

    /// Check the whole stored chain, as a node does at startup: every block
    /// passes the checks of [`Ledger::block`], names this chain and links to
    /// its predecessor, the last one is the recorded tip, every stored node
    /// of the ledger tree is recomputed from the block hashes, and every
    /// transaction's index entry points at where it sits. `progress` is
    /// called with (height checked, tip height). The first problem is
    /// returned as a [`StoreError::Corrupt`](crate::store::StoreError) naming
    /// the record.
    pub fn verify_store(
        &self,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<StoreCheck, LedgerError> {
        let corrupt = |what: String, detail: String| {
            LedgerError::Store(crate::store::StoreError::Corrupt { what, detail })
        };
        let tip = self.tip.height;
        let mut tree = merkle::MemNodeStore::new();
        let mut prev: Option<Hash32> = None;
        let mut check = StoreCheck::default();
        for height in 0..=tip {
            let block = self
                .block(height)?
                .ok_or_else(|| corrupt(format!("block {height}"), "missing".into()))?;
            let hash = block.hash()?;
            if block.header.chain_id != self.config.chain_id {
                return Err(corrupt(
                    format!("block {height}"),
                    "names another chain".into(),
                ));
            }
            if let Some(p) = prev {
                if block.header.prev_hash != p {
                    return Err(corrupt(
                        format!("block {height}"),
                        "does not link to the block before it".into(),
                    ));
                }
            }
            let written = tree
                .push(merkle::leaf_hash(&hash.0))
                .map_err(|e| corrupt("ledger tree".into(), format!("{e:?}")))?;
            // The leaf itself was checked by `block` above.
            for (level, index, node) in written.into_iter().filter(|(l, _, _)| *l > 0) {
                if self.store.merkle_node(level, index)? != Some(node) {
                    return Err(corrupt(
                        format!("ledger tree node ({level}, {index})"),
                        "differs from the one recomputed from the block hashes".into(),
                    ));
                }
            }
            for (i, r) in block.results.iter().enumerate() {
                let want = TxLocation {
                    height,
                    index: i as u32,
                };
                if self.store.tx_location(&r.tx_id)? != Some(want) {
                    return Err(corrupt(
                        format!("tx index {}", r.tx_id),
                        format!("does not point at block {height} position {i}"),
                    ));
                }
            }
            check.blocks += 1;
            check.transactions += block.txs.len() as u64;
            prev = Some(hash);
            progress(height, tip);
        }
        if prev != Some(self.tip.hash) {
            return Err(corrupt(
                "tip".into(),
                "is not the hash of the last block".into(),
            ));
        }
        check.learned_records = self.verify_learned_records()?;
        Ok(check)
    }

    /// The learned-state records' framing, without keys (ADR 0015): each
    /// decodes and names the height it is stored under, the checkpoint is
    /// not above the tip, and the journal after it has no gaps. What they
    /// hold is checked when a customs node opens them.
    fn verify_learned_records(&self) -> Result<u64, LedgerError> {
        let corrupt = |what: String, detail: String| {
            LedgerError::Store(crate::store::StoreError::Corrupt { what, detail })
        };
        let tip = self.tip.height;
        let mut n = 0;
        let mut last = None;
        if let Some(cp) = self.store.learned_checkpoint()? {
            let (is_cp, h) = crate::validate::learned::record_height(&cp)
                .map_err(|e| corrupt("learned checkpoint".into(), e))?;
            if !is_cp || h > tip {
                return Err(corrupt(
                    "learned checkpoint".into(),
                    format!("names block {h} (tip {tip})"),
                ));
            }
            last = Some(h);
            n += 1;
        }
        let mut from = 0;
        loop {
            let page = self.store.learned_journal(from, 1024)?;
            let Some((end, _)) = page.last() else {
                break;
            };
            from = end.saturating_add(1);
            for (h, bytes) in &page {
                let what = || format!("learned journal record {h}");
                let (is_cp, named) = crate::validate::learned::record_height(bytes)
                    .map_err(|e| corrupt(what(), e))?;
                if is_cp || named != *h || *h > tip {
                    return Err(corrupt(what(), format!("names block {named} (tip {tip})")));
                }
                let follows = match last {
                    None => *h == 1,
                    Some(l) => *h == l + 1,
                };
                if !follows {
                    return Err(corrupt(
                        what(),
                        format!("does not follow block {}", last.unwrap_or(0)),
                    ));
                }
                last = Some(*h);
                n += 1;
            }
        }
        Ok(n)
    }

    /// A committed transaction with its block and location.
    pub fn transaction(&self, id: &Hash32) -> Result<Option<(Block, TxLocation)>, LedgerError> {
        read_transaction(&self.store, id)
    }

    /// Inclusion proof of block `height` in the tree of size `tree_size`.
    pub fn block_inclusion_proof(
        &self,
        height: u64,
        tree_size: u64,
    ) -> Result<Vec<merkle::Hash>, LedgerError> {
        read_inclusion_proof(&self.store, height, tree_size)
    }

    /// Consistency proof between two tree sizes.
    pub fn consistency_proof(
        &self,
        size1: u64,
        size2: u64,
    ) -> Result<Vec<merkle::Hash>, LedgerError> {
        merkle::consistency_proof_at(&Nodes(&self.store), size1, size2).map_err(merkle_err)
    }

    /// Admission check against committed state (the leader runs this before
    /// proposing; apply re-checks everything): [`check_signed`] then
    /// [`Ledger::check_state`]. `id` and `encoded_len` are the transaction's
    /// id and canonical length, which the caller already has from decoding.
    pub fn check_tx(
        &self,
        stx: &SignedTransaction,
        id: &Hash32,
        encoded_len: usize,
        now_ms: u64,
    ) -> Result<(), Rejection> {
        check_signed(&self.config, stx, id, encoded_len, &self.verified)?;
        self.check_state(stx, id, now_ms)
    }

    /// The part of admission that reads committed state: replay, time
    /// window, role, lifecycle, governance quorum. Cheap; run it under the
    /// ledger lock, and [`check_signed`] (the costly part) outside it.
    pub fn check_state(
        &self,
        stx: &SignedTransaction,
        id: &Hash32,
        now_ms: u64,
    ) -> Result<(), Rejection> {
        check_stateful(&self.store, &self.config, stx, id, now_ms, &BTreeMap::new()).map(|_| ())
    }

    /// Build the next block from a batch. Pure: writes nothing.
    pub fn build_block(
        &self,
        batch: &[SignedTransaction],
        ctx: &BlockContext,
        content: &mut dyn ContentValidator,
    ) -> Result<BuiltBlock, LedgerError> {
        let batch = TxBatch::from_txs(batch.to_vec())?;
        self.build_block_from(&batch, ctx, content)
    }

    /// [`Ledger::build_block`] from a batch that already holds each
    /// transaction's id and canonical bytes (a Raft entry's): the block's
    /// bytes are assembled from those bytes, nothing is encoded again.
    pub fn build_block_from(
        &self,
        batch: &TxBatch,
        ctx: &BlockContext,
        content: &mut dyn ContentValidator,
    ) -> Result<BuiltBlock, LedgerError> {
        let limits = &self.config.limits;
        if batch.len() > limits.max_block_txs as usize {
            return Err(LedgerError::BatchTooLarge(format!(
                "{} transactions, limit {}",
                batch.len(),
                limits.max_block_txs
            )));
        }
        let ids = batch.ids();
        let encoding = |i: usize| {
            batch.encoding(i).ok_or_else(|| {
                LedgerError::Mismatch(format!("transaction {i} of the batch has no encoding"))
            })
        };
        let batch = batch.txs();
        let height = self.tip.height + 1;
        let timestamp_ms = ctx.timestamp_ms.max(self.tip.timestamp_ms);
        // Signatures (ADR 0002): those this node verified at admission are
        // answered from its cache, the rest are checked in one batch.
        let signers = verified_signers(&self.config, batch.iter().zip(ids), &self.verified);

        let mut config = (*self.config).clone();
        let mut pending: BTreeMap<String, ShipmentState> = BTreeMap::new();
        let mut seen: BTreeSet<Hash32> = BTreeSet::new();
        let mut accepted = Vec::new();
        let mut accepted_bytes = Vec::new();
        let mut results = Vec::new();
        let mut rejected = Vec::new();
        let mut events = Vec::new();
        let mut bytes_total: usize = 0;
        for (i, stx) in batch.iter().enumerate() {
            let id = ids[i];
            let bytes = encoding(i)?;
            let len = bytes.len();
            let verdict = (|| -> Result<(Option<ShipmentState>, ContentOutcome), Rejection> {
                // Governance earlier in this block may have changed `config`.
                check_structure(&config, stx, len)?;
                submitter_of(&config, stx)?;
                // Governance earlier in the block may have rotated the key.
                let sig_ok = signers[i].is_some()
                    && signers[i] == config.party(&stx.tx.submitter).map(|p| p.signing_key);
                if !sig_ok {
                    return Err(reject(
                        "TX_BAD_SIGNATURE",
                        "signature does not verify (strict)",
                    ));
                }
                if !seen.insert(id) {
                    return Err(reject("TX_DUPLICATE", "transaction repeated in this batch"));
                }
                let before = if stx.tx.kind.is_governance() {
                    None
                } else {
                    shipment_before(&self.store, &pending, &stx.tx.shipment_id)?
                };
                let state = check_stateful(&self.store, &config, stx, &id, timestamp_ms, &pending)?;
                let outcome = content.check(&config, stx, &id, before.as_ref())?;
                Ok((state, outcome))
            })();
            match verdict {
                Ok((state, outcome)) => {
                    if bytes_total + len > limits.max_block_bytes as usize {
                        rejected.push((
                            id,
                            reject("TX_BLOCK_FULL", "block byte limit reached; resubmit"),
                        ));
                        continue;
                    }
                    if let Some(g) = &stx.tx.governance {
                        match apply_governance(&config, g) {
                            Ok(next) => config = next,
                            Err(r) => {
                                rejected.push((id, r));
                                continue;
                            }
                        }
                    }
                    bytes_total += len;
                    let index = accepted.len() as u32;
                    if let Some(st) = &state {
                        pending.insert(stx.tx.shipment_id.clone(), st.clone());
                        events.push((stx.tx.shipment_id.clone(), TxLocation { height, index }, id));
                    }
                    results.push(TxResult {
                        tx_id: id,
                        status: state.map(|s| s.status),
                        outcome: outcome.sealed,
                    });
                    accepted.push(stx.clone());
                    accepted_bytes.push(bytes);
                }
                Err(r) => rejected.push((id, r)),
            }
        }
        let accepted_ids: Vec<Hash32> = results.iter().map(|r| r.tx_id).collect();
        let (tx_root, results_root) = body_roots(&accepted_ids, &results)?;
        let header = BlockHeader {
            chain_id: self.config.chain_id.clone(),
            height,
            prev_hash: self.tip.hash,
            tx_root,
            results_root,
            timestamp_ms,
            raft_term: ctx.raft_term,
            raft_index: ctx.raft_index,
            proposer: ctx.proposer.clone(),
            config_seq: config.seq,
            config_hash: config.hash()?,
            tx_count: accepted.len() as u32,
        };
        let hash = header.hash()?;
        let block = Block {
            header,
            txs: accepted,
            results,
        };
        let merkle_nodes =
            merkle::append_nodes(&Nodes(&self.store), height, merkle::leaf_hash(&hash.0))
                .map_err(merkle_err)?;
        let new_config = (config != *self.config).then_some(config);
        let write = BlockWrite {
            height,
            block: Block::encode_from_parts(
                &block.header,
                accepted_bytes.into_iter(),
                &block.results,
            )?,
            tip: Some(Tip {
                height,
                hash,
                timestamp_ms,
            }),
            tx_locations: accepted_ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    (
                        *id,
                        TxLocation {
                            height,
                            index: i as u32,
                        },
                    )
                })
                .collect(),
            shipment_states: pending.into_iter().collect(),
            shipment_events: events,
            merkle_nodes,
            config: new_config.clone(),
            meta: Vec::new(),
            learned: None,
        };
        Ok(BuiltBlock {
            block,
            hash,
            rejected,
            write,
            new_config,
        })
    }

    /// Write a built block (plus extra metadata in the same atomic batch);
    /// what `content` learned from it goes into the same batch.
    pub fn commit(
        &mut self,
        mut built: BuiltBlock,
        extra_meta: Vec<(Vec<u8>, Vec<u8>)>,
        content: &mut dyn ContentValidator,
    ) -> Result<(Block, Vec<(Hash32, Rejection)>), LedgerError> {
        if built.block.header.prev_hash != self.tip.hash
            || built.block.header.height != self.tip.height + 1
        {
            return Err(LedgerError::Mismatch(
                "built block does not extend the current tip".into(),
            ));
        }
        built.write.meta.extend(extra_meta);
        let config_after = built.new_config.as_ref().unwrap_or(&self.config);
        built.write.learned = content.learn(config_after, &built.block);
        let tip = built.write.tip.clone();
        if let Err(e) = self.store.commit(built.write) {
            // The validator learned from a block that is not stored.
            content.forget();
            return Err(e.into());
        }
        if let Some(c) = built.new_config {
            self.config = Arc::new(c);
        }
        if let Some(t) = tip {
            self.tip = t;
        }
        Ok((built.block, built.rejected))
    }

    /// Bring `content`'s learned state to this ledger's tip, however the
    /// ledger got its blocks (ADR 0015): forget, load the stored checkpoint
    /// and the journal records after it, and learn whatever they do not
    /// cover from the blocks themselves (none stored, or sealed under a key
    /// this node lacks), then store a checkpoint at the tip. A record that
    /// opens but is damaged, or a journal that does not follow its
    /// checkpoint, is an error: the node refuses to start.
    pub fn restore_learned(
        &self,
        content: &mut dyn ContentValidator,
    ) -> Result<LearnedRestore, LedgerError> {
        let mut r = LearnedRestore::default();
        if !content.learns() {
            return Ok(r);
        }
        content.forget();
        let config = self.config.clone();
        let damaged = |what: String| {
            LedgerError::Store(StoreError::Corrupt {
                what,
                detail: "learned state".into(),
            })
        };
        let mut at = 0u64;
        // Without a checkpoint the journal starts at block 1 from nothing.
        let mut journal_follows = true;
        if let Some(cp) = self.store.learned_checkpoint()? {
            match content.restore_checkpoint(&config, &cp) {
                Ok(Some(h)) if h <= self.tip.height => {
                    at = h;
                    r.checkpoint = Some(h);
                }
                Ok(Some(h)) => {
                    return Err(damaged(format!(
                        "learned checkpoint at {h} is above the ledger tip {}",
                        self.tip.height
                    )))
                }
                Ok(None) => {
                    content.forget();
                    journal_follows = false;
                }
                Err(e) => return Err(damaged(format!("learned checkpoint: {e}"))),
            }
        }
        if journal_follows {
            'journal: loop {
                let page = self.store.learned_journal(at + 1, 256)?;
                if page.is_empty() {
                    break;
                }
                for (h, bytes) in page {
                    if h != at + 1 || h > self.tip.height {
                        // A gap: blocks this node applied without the key.
                        break 'journal;
                    }
                    match content.restore_journal(&config, h, &bytes) {
                        Ok(true) => {
                            at = h;
                            r.journal += 1;
                        }
                        Ok(false) => break 'journal,
                        Err(e) => return Err(damaged(format!("learned journal at {h}: {e}"))),
                    }
                }
            }
        }
        if at < self.tip.height {
            for h in at + 1..=self.tip.height {
                let block = self
                    .block(h)?
                    .ok_or_else(|| LedgerError::Mismatch(format!("block {h} missing")))?;
                let _ = content.learn(&config, &block);
                r.replayed += 1;
            }
            if let Some(cp) = content.checkpoint(&config, self.tip.height) {
                self.store.put_learned(
                    self.tip.height,
                    &LearnedWrite {
                        journal: None,
                        checkpoint: Some(cp),
                    },
                )?;
                r.checkpoint = Some(self.tip.height);
            }
        }
        Ok(r)
    }

    /// Build and commit in one step.
    pub fn apply(
        &mut self,
        batch: &[SignedTransaction],
        ctx: &BlockContext,
        content: &mut dyn ContentValidator,
    ) -> Result<(Block, Vec<(Hash32, Rejection)>), LedgerError> {
        let built = self.build_block(batch, ctx, content)?;
        self.commit(built, Vec::new(), content)
    }
}

impl<S: Store + ?Sized> Store for &S {
    fn tip(&self) -> Result<Option<Tip>, StoreError> {
        (**self).tip()
    }
    fn block_bytes(&self, h: u64) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).block_bytes(h)
    }
    fn tx_location(&self, id: &Hash32) -> Result<Option<TxLocation>, StoreError> {
        (**self).tx_location(id)
    }
    fn shipment_state(&self, s: &str) -> Result<Option<ShipmentState>, StoreError> {
        (**self).shipment_state(s)
    }
    fn shipment_events(
        &self,
        s: &str,
        after: Option<TxLocation>,
        limit: usize,
    ) -> Result<Vec<(TxLocation, Hash32)>, StoreError> {
        (**self).shipment_events(s, after, limit)
    }
    fn merkle_node(&self, l: u8, i: u64) -> Result<Option<[u8; 32]>, StoreError> {
        (**self).merkle_node(l, i)
    }
    fn config(&self) -> Result<Option<ChainConfig>, StoreError> {
        (**self).config()
    }
    fn checkpoint(&self, h: u64) -> Result<Option<crate::block::CosignedCheckpoint>, StoreError> {
        (**self).checkpoint(h)
    }
    fn put_checkpoint(&self, cp: &crate::block::CosignedCheckpoint) -> Result<(), StoreError> {
        (**self).put_checkpoint(cp)
    }
    fn latest_checkpoint(&self) -> Result<Option<crate::block::CosignedCheckpoint>, StoreError> {
        (**self).latest_checkpoint()
    }
    fn meta(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).meta(k)
    }
    fn put_meta(&self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        (**self).put_meta(k, v)
    }
    fn delete_meta(&self, k: &[u8]) -> Result<(), StoreError> {
        (**self).delete_meta(k)
    }
    fn commit(&self, w: BlockWrite) -> Result<(), StoreError> {
        (**self).commit(w)
    }
    fn learned_checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).learned_checkpoint()
    }
    fn learned_journal(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        (**self).learned_journal(from, limit)
    }
    fn put_learned(&self, height: u64, write: &LearnedWrite) -> Result<(), StoreError> {
        (**self).put_learned(height, write)
    }
}

/// The committed block at `height`, checked against its own roots and the
/// ledger tree leaf recorded at commit (a store edited on disk is refused).
/// Needs only a store, so readers can use a shared handle without the
/// ledger (and the lock that apply takes).
pub fn read_block<S: Store + ?Sized>(store: &S, height: u64) -> Result<Option<Block>, LedgerError> {
    let Some(block) = store.block(height)? else {
        return Ok(None);
    };
    let corrupt = |detail: String| {
        LedgerError::Store(crate::store::StoreError::Corrupt {
            what: format!("block {height}"),
            detail,
        })
    };
    if block.header.height != height {
        return Err(corrupt("header names another height".into()));
    }
    if !block.body_matches_header() {
        return Err(corrupt(
            "body does not match the roots in its header".into(),
        ));
    }
    let leaf = store.merkle_node(0, height)?;
    if leaf != Some(merkle::leaf_hash(&block.hash()?.0)) {
        return Err(corrupt(
            "hash is not the ledger-tree leaf recorded at commit".into(),
        ));
    }
    Ok(Some(block))
}

/// A committed transaction's block and place, checked like [`read_block`].
pub fn read_transaction<S: Store + ?Sized>(
    store: &S,
    id: &Hash32,
) -> Result<Option<(Block, TxLocation)>, LedgerError> {
    let Some(loc) = store.tx_location(id)? else {
        return Ok(None);
    };
    let block = read_block(store, loc.height)?
        .ok_or_else(|| LedgerError::Mismatch(format!("indexed block {} missing", loc.height)))?;
    match block.results.get(loc.index as usize) {
        Some(r) if r.tx_id == *id => Ok(Some((block, loc))),
        _ => Err(LedgerError::Store(crate::store::StoreError::Corrupt {
            what: format!("tx index {id}"),
            detail: "points at a different transaction".into(),
        })),
    }
}

/// Inclusion proof of block `height` in the ledger tree of `tree_size`.
pub fn read_inclusion_proof<S: Store + ?Sized>(
    store: &S,
    height: u64,
    tree_size: u64,
) -> Result<Vec<merkle::Hash>, LedgerError> {
    merkle::inclusion_proof_at(&Nodes(store), height, tree_size).map_err(merkle_err)
}

/// What a light client needs to follow the chain config up to `height`:
/// that block's header, and the blocks at or below it that changed the
/// config after sequence number `after_seq` (at most `limit` of them, oldest
/// first), each with its inclusion proof in the ledger tree of size
/// `height + 1`. `more` says the limit cut the list short. Found by
/// bisection over the headers' config sequence numbers, which never
/// decrease, so it reads O(changes x log height) headers.
pub fn governance_blocks<S: Store + ?Sized>(
    store: &S,
    height: u64,
    after_seq: u64,
    limit: usize,
) -> Result<GovernanceBlocks, LedgerError> {
    let header = |h: u64| -> Result<BlockHeader, LedgerError> {
        store
            .block_header(h)?
            .ok_or_else(|| LedgerError::Mismatch(format!("no block {h}")))
    };
    let target = header(height)?;
    let mut blocks = Vec::new();
    let mut seq = after_seq;
    let mut lo = 0u64;
    while seq < target.config_seq {
        if blocks.len() >= limit {
            return Ok(GovernanceBlocks {
                header: target,
                blocks,
                more: true,
            });
        }
        // The lowest height in [lo, height] whose config is past `seq`.
        let mut hi = height;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if header(mid)?.config_seq > seq {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let block = read_block(store, lo)?
            .ok_or_else(|| LedgerError::Mismatch(format!("no block {lo}")))?;
        if block.header.config_seq <= seq {
            return Err(LedgerError::Mismatch(format!(
                "config sequence numbers decrease below height {height}"
            )));
        }
        let proof = read_inclusion_proof(store, lo, height + 1)?;
        seq = block.header.config_seq;
        blocks.push((block, proof));
        lo += 1;
    }
    Ok(GovernanceBlocks {
        header: target,
        blocks,
        more: false,
    })
}

/// See [`governance_blocks`].
#[derive(Clone, Debug)]
pub struct GovernanceBlocks {
    /// Header of the block at the height asked for.
    pub header: BlockHeader,
    /// Blocks that changed the config, with their inclusion proofs.
    pub blocks: Vec<(Block, Vec<merkle::Hash>)>,
    /// More remain after the last one.
    pub more: bool,
}

/// The chain config in force after block `header.height`, followed from
/// `trusted` (the config after height `trusted_height`) through `blocks` as
/// [`governance_blocks`] returns them ([`follow_blocks`]); the result must
/// be the config `header` names. `header` itself is the caller's to check
/// against the checkpoint whose tree has root `root`.
pub fn follow_config(
    trusted: &ChainConfig,
    trusted_height: u64,
    header: &BlockHeader,
    root: &merkle::Hash,
    blocks: &[(Block, Vec<merkle::Hash>)],
) -> Result<ChainConfig, LedgerError> {
    let configs = follow_blocks(trusted, trusted_height, header.height, root, blocks)?;
    let cfg = configs
        .into_iter()
        .last()
        .unwrap_or_else(|| trusted.clone());
    check_followed(&cfg, header)?;
    Ok(cfg)
}

/// Is `cfg`, followed through governance blocks, the config `header`
/// names? When not, a governance block was left out.
pub fn check_followed(cfg: &ChainConfig, header: &BlockHeader) -> Result<(), LedgerError> {
    if cfg.seq != header.config_seq || cfg.hash()? != header.config_hash {
        return Err(LedgerError::Mismatch(format!(
            "the config followed to height {} (sequence {}) is not the one its header names (sequence {}): a governance block is missing",
            header.height, cfg.seq, header.config_seq
        )));
    }
    Ok(())
}

/// The walk of [`follow_config`]: each block must be in the ledger tree of
/// size `height + 1` with root `root`, above the previous one and at most
/// `height`, and pass [`follow_governance`]. Returns the config after each
/// block.
pub fn follow_blocks(
    trusted: &ChainConfig,
    trusted_height: u64,
    height: u64,
    root: &merkle::Hash,
    blocks: &[(Block, Vec<merkle::Hash>)],
) -> Result<Vec<ChainConfig>, LedgerError> {
    let mut configs: Vec<ChainConfig> = Vec::with_capacity(blocks.len());
    let mut after = trusted_height;
    for (block, proof) in blocks {
        let h = block.header.height;
        if h <= after || h > height {
            return Err(LedgerError::Mismatch(format!(
                "governance block {h} is out of order (after {after}, up to {height})"
            )));
        }
        merkle::verify_inclusion(
            &merkle::leaf_hash(&block.hash()?.0),
            h,
            height + 1,
            proof,
            root,
        )
        .map_err(|e| LedgerError::Mismatch(format!("block {h} is not in the tree: {e}")))?;
        let next = follow_governance(configs.last().unwrap_or(trusted), block)?;
        configs.push(next);
        after = h;
    }
    Ok(configs)
}

/// Header of the genesis block of `config`.
pub fn genesis_header(config: &ChainConfig, time_ms: u64) -> Result<BlockHeader, LedgerError> {
    let (tx_root, results_root) = body_roots(&[], &[])?;
    Ok(BlockHeader {
        chain_id: config.chain_id.clone(),
        height: 0,
        prev_hash: Hash32::ZERO,
        tx_root,
        results_root,
        timestamp_ms: time_ms,
        raft_term: 0,
        raft_index: 0,
        proposer: String::new(),
        config_seq: config.seq,
        config_hash: config.hash()?,
        tx_count: 0,
    })
}

/// The first block that fails verification, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {height}: {reason}")]
pub struct ChainFault {
    /// Height of the first bad block.
    pub height: u64,
    /// What is wrong.
    pub reason: String,
}

/// Summary of a verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Blocks verified (including genesis).
    pub blocks: u64,
    /// Transactions verified.
    pub transactions: u64,
    /// Checkpoint of the last block.
    pub checkpoint: Checkpoint,
}

/// Verify a chain from genesis: every block decodes strictly, links to its
/// predecessor by hash and height, and reproduces exactly (roots, results,
/// config, signatures, lifecycle) when replayed through the apply path.
/// `blocks` yields canonical block bytes for heights 0, 1, 2, ...
pub fn verify_chain<I>(
    genesis: &ChainConfig,
    blocks: I,
    mut progress: impl FnMut(u64),
) -> Result<ChainReport, ChainFault>
where
    I: IntoIterator<Item = Result<Vec<u8>, String>>,
{
    let fault = |height: u64, reason: String| ChainFault { height, reason };
    let mut iter = blocks.into_iter();
    let first = iter
        .next()
        .ok_or_else(|| fault(0, "chain is empty".into()))?
        .map_err(|e| fault(0, e))?;
    let g = Block::decode(&first).map_err(|e| fault(0, format!("undecodable: {e}")))?;
    let mut ledger = Ledger::init(MemStore::new(), genesis.clone(), g.header.timestamp_ms)
        .map_err(|e| fault(0, format!("genesis config: {e}")))?;
    if g.hash().ok() != Some(ledger.genesis_hash()) {
        return Err(fault(
            0,
            "genesis block does not match the chain config".into(),
        ));
    }
    let mut txs = 0u64;
    progress(0);
    for (h, item) in iter.enumerate() {
        let height = h as u64 + 1;
        let bytes = item.map_err(|e| fault(height, e))?;
        let mut block =
            Block::decode(&bytes).map_err(|e| fault(height, format!("undecodable: {e}")))?;
        let hd = &block.header;
        if hd.height != height {
            return Err(fault(height, format!("header says height {}", hd.height)));
        }
        if hd.prev_hash != ledger.tip().hash {
            return Err(fault(
                height,
                "prev_hash does not link to the previous block".into(),
            ));
        }
        if block.results.len() != block.txs.len() {
            return Err(fault(
                height,
                "result count differs from transaction count".into(),
            ));
        }
        let ctx = BlockContext {
            timestamp_ms: hd.timestamp_ms,
            raft_term: hd.raft_term,
            raft_index: hd.raft_index,
            proposer: hd.proposer.clone(),
        };
        let mut recorded = RecordedContent::of(&block);
        // The block's transactions move into the batch (the comparison below
        // looks at the header and results only).
        let batch = TxBatch::from_txs(std::mem::take(&mut block.txs))
            .map_err(|e| fault(height, e.to_string()))?;
        let built = ledger
            .build_block_from(&batch, &ctx, &mut recorded)
            .map_err(|e| fault(height, e.to_string()))?;
        if let Some((id, r)) = built.rejected.first() {
            return Err(fault(height, format!("transaction {id} is invalid: {r}")));
        }
        if built.block.header != block.header || built.block.results != block.results {
            return Err(fault(height, describe_mismatch(&block, &built.block)));
        }
        txs += batch.len() as u64;
        ledger
            .commit(built, Vec::new(), &mut NoContent)
            .map_err(|e| fault(height, e.to_string()))?;
        progress(height);
    }
    let checkpoint = ledger
        .checkpoint()
        .map_err(|e| fault(ledger.tip().height, e.to_string()))?;
    Ok(ChainReport {
        blocks: ledger.tip().height + 1,
        transactions: txs,
        checkpoint,
    })
}

fn describe_mismatch(stored: &Block, rebuilt: &Block) -> String {
    let (a, b) = (&stored.header, &rebuilt.header);
    let mut diffs = Vec::new();
    if a.tx_root != b.tx_root {
        diffs.push("tx_root");
    }
    if a.results_root != b.results_root || stored.results != rebuilt.results {
        diffs.push("results");
    }
    if a.config_hash != b.config_hash || a.config_seq != b.config_seq {
        diffs.push("config");
    }
    if a.timestamp_ms != b.timestamp_ms {
        diffs.push("timestamp");
    }
    if a.tx_count != b.tx_count {
        diffs.push("tx_count");
    }
    if a.chain_id != b.chain_id {
        diffs.push("chain_id");
    }
    if diffs.is_empty() {
        diffs.push("header");
    }
    format!("block does not reproduce: {} differ", diffs.join(", "))
}

/// Roles helper used by tests and tools.
pub fn roles_of(cfg: &ChainConfig, party: &str) -> Vec<Role> {
    cfg.party(party)
        .map(|p| p.roles.clone())
        .unwrap_or_default()
}
