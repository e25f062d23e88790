//! Validators that run before commit: formats, HS classification and risk.
//!
//! Pure, versioned, deterministic functions with stable reason codes. The
//! generic checks (structure, signature, submitter, role, replay, lifecycle)
//! live in `chain`; this module judges the content of declarations, which
//! only parties that can decrypt it (customs) can evaluate.

pub mod formats;
pub mod learned;
pub mod risk;

use crate::block::{Block, ClassificationOutcome, RiskOutcome};
use crate::chain::{reject, ContentOutcome, ContentValidator, Rejection};
use crate::config::{ChainConfig, FieldClass};
use crate::declaration::Declaration;
use crate::disclosure::{self, DecryptionKey};
use crate::event::{EventKind, ShipmentState};
use crate::hash::{sha256, Hash32};
use crate::hs::classifier::{Classifier, Verdict};
use crate::hs::nomenclature::Nomenclature;
use crate::outcome::{self, Judgement};
use crate::store::LearnedWrite;
use crate::tx::SignedTransaction;
use learned::{Fact, Learned};
use risk::{Presence, RiskConfig, RiskHistory, RiskInput, RiskLevel};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Version of the combined content rules (formats + classifier + risk).
pub const CONTENT_RULES_VERSION: &str = "content-1";

/// Risk points added when a declared HS code contradicts its description.
pub const HS_MISMATCH_POINTS: u8 = 25;

/// Journal bytes written since the last learned checkpoint before the next
/// one is written, at least (else the size of the last checkpoint: the
/// journal a restart replays stays below the state it rebuilds).
const MIN_CHECKPOINT_INTERVAL_BYTES: usize = 8 << 20;

/// Suggestions recorded per goods item.
const TOP_K: usize = 5;

/// Declarations kept between judgement and commit (a cache: when full it is
/// emptied and entries are recomputed on demand).
const MAX_OPENED: usize = 100_000;

/// A declaration this node opened (with the transaction's class keys), and
/// what it judged, once it has.
#[derive(Debug, Clone)]
struct Opened {
    declaration: Declaration,
    class_keys: disclosure::ClassKeys,
    outcome: Option<ContentOutcome>,
}

/// Class keys kept after commit (see `CustomsValidator::recent_keys`).
const RECENT_KEYS: usize = 16_384;

/// A bounded map, oldest entries forgotten first.
#[derive(Debug, Default)]
struct RecentKeys {
    keys: BTreeMap<Hash32, disclosure::ClassKeys>,
    order: std::collections::VecDeque<Hash32>,
}

impl RecentKeys {
    fn insert(&mut self, id: Hash32, keys: disclosure::ClassKeys) {
        if self.keys.insert(id, keys).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > RECENT_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }
}

/// Where this validator's stored learned records stand (ADR 0015): what
/// decides whether the next block gets a journal record or a checkpoint.
#[derive(Debug, Default)]
struct Records {
    /// Height of the last record stored (journal or checkpoint): a journal
    /// record must follow it, else a checkpoint is written.
    height: u64,
    /// Sealed journal bytes since the last checkpoint.
    journal_bytes: usize,
    /// Plaintext size of the last checkpoint.
    checkpoint_bytes: usize,
    /// Outcome secret the records since the last checkpoint are sealed under.
    key: Option<Hash32>,
}

impl Records {
    /// A checkpoint of `len` plaintext bytes at `height`, under `key`.
    fn checkpointed(&mut self, key: Hash32, height: u64, len: usize) {
        *self = Records {
            height,
            journal_bytes: 0,
            checkpoint_bytes: len,
            key: Some(key),
        };
    }

    /// A journal record of `len` sealed bytes at `height`, under `key`.
    fn journaled(&mut self, key: Hash32, height: u64, len: usize) {
        self.height = height;
        self.journal_bytes = self.journal_bytes.saturating_add(len);
        self.key = Some(key);
    }

    /// Whether block `height`, whose journal record is `len` bytes under
    /// `key`, should be stored as a checkpoint instead: a record is missing
    /// before it, the secret changed, or the journal outgrew the checkpoint.
    fn checkpoint_due(&self, key: Hash32, height: u64, len: usize) -> bool {
        height != self.height + 1
            || self.key.is_some_and(|k| k != key)
            || self.journal_bytes.saturating_add(len)
                >= self.checkpoint_bytes.max(MIN_CHECKPOINT_INTERVAL_BYTES)
    }
}

/// The customs content validator: opens declarations with this customs
/// party's key, checks formats, classifies every goods item and scores risk.
/// It learns from committed history (`committed`), deterministically.
pub struct CustomsValidator {
    party: String,
    keys: Vec<DecryptionKey>,
    nomenclature: Arc<Nomenclature>,
    semantic: Option<Arc<crate::hs::semantic::SemanticTable>>,
    classifier: Classifier,
    risk_cfg: RiskConfig,
    /// `risk_cfg` under the risk policy of the config last judged under.
    risk_under: Mutex<Option<(risk::RiskPolicy, Arc<RiskConfig>)>>,
    /// Everything learned from committed blocks but the classifier's
    /// evidence (ADR 0015).
    learned: Learned,
    /// Where the stored learned records stand.
    records: Records,
    /// Declarations opened by `check`/[`CustomsValidator::admit`], waiting
    /// for [`CustomsValidator::facts`], with the outcome this node computed
    /// for them. Behind
    /// a lock of its own so admission can judge through `&self`.
    opened: Mutex<BTreeMap<Hash32, Opened>>,
    /// Class keys of the declarations committed most recently, by id: the
    /// node's KPI fold opens the same transactions after commit and takes
    /// their keys from here instead of unwrapping them again.
    recent_keys: Mutex<RecentKeys>,
    /// Outcome secrets this party unwrapped from chain configs, by id.
    secrets: Mutex<BTreeMap<Hash32, [u8; 32]>>,
}

impl std::fmt::Debug for CustomsValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CustomsValidator(party={}, seq={}, learned={})",
            self.party,
            self.learned.seq,
            self.classifier.learned_examples()
        )
    }
}

fn declared_fields(
    stx: &SignedTransaction,
    party: &str,
    keys: &[DecryptionKey],
) -> Result<Declaration, Rejection> {
    opened_declaration(stx, party, keys).map(|(d, _)| d)
}

/// The declaration a transaction carries, opened as customs party `party`,
/// with the transaction's class keys.
fn opened_declaration(
    stx: &SignedTransaction,
    party: &str,
    keys: &[DecryptionKey],
) -> Result<(Declaration, BTreeMap<FieldClass, [u8; 32]>), Rejection> {
    let (opened, class_keys) = disclosure::open_with_keys(&stx.tx, party, keys)
        .map_err(|e| reject("DECL_UNREADABLE", e.to_string()))?;
    let sealed_classes = stx
        .tx
        .sealed
        .iter()
        .filter(|f| f.class != FieldClass::Public)
        .count();
    let opened_sealed = opened
        .iter()
        .filter(|f| f.field.class != FieldClass::Public)
        .count();
    if opened_sealed != sealed_classes {
        return Err(reject(
            "DECL_NOT_SEALED_TO_CUSTOMS",
            "every sealed field must be readable by customs",
        ));
    }
    let fields: Vec<_> = opened.into_iter().map(|f| f.field).collect();
    let d = Declaration::from_fields(&fields).map_err(|e| reject("DECL_MALFORMED", e))?;
    Ok((d, class_keys))
}

/// Blocking format checks of a declaration against the pinned nomenclature.
pub fn check_formats(d: &Declaration, nom: &Nomenclature) -> Result<(), Rejection> {
    let f = |e: formats::FormatError| reject(e.code(), e.to_string());
    if d.goods.is_empty() {
        return Err(reject(
            "DECL_NO_GOODS",
            "a declaration needs at least one goods item",
        ));
    }
    for (i, g) in d.goods.iter().enumerate() {
        formats::validate_hs_code(&g.hs_code).map_err(f)?;
        let hs6 = g.hs_code.get(..6).unwrap_or_default();
        if !nom.exists_subheading(hs6) {
            return Err(reject(
                "HS_UNKNOWN",
                format!("item {i}: subheading {hs6} is not in the pinned nomenclature"),
            ));
        }
        formats::validate_currency(&g.currency).map_err(f)?;
        formats::validate_mass_g(g.gross_mass_g).map_err(f)?;
        formats::validate_value_minor(g.value_minor).map_err(f)?;
        if !g.origin.is_empty() {
            formats::validate_country(&g.origin).map_err(f)?;
        }
        if g.description.trim().is_empty() {
            return Err(reject(
                "DECL_NO_DESCRIPTION",
                format!("item {i} has no description"),
            ));
        }
    }
    for t in [
        Some(&d.consignor),
        Some(&d.consignee),
        d.buyer.as_ref(),
        d.seller.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(e) = &t.eori {
            formats::validate_eori(e).map_err(f)?;
        }
    }
    for p in [&d.place_of_loading, &d.place_of_unloading] {
        if !p.is_empty() {
            formats::validate_locode(p).map_err(f)?;
        }
    }
    for c in &d.containers {
        formats::validate_container(c).map_err(f)?;
    }
    for c in &d.routing {
        formats::validate_country(c).map_err(f)?;
    }
    if !d.dispatch_country.is_empty() {
        formats::validate_country(&d.dispatch_country).map_err(f)?;
    }
    if !d.office_of_entry.is_empty() {
        formats::validate_office(&d.office_of_entry).map_err(f)?;
    }
    if let Some(i) = &d.ioss {
        formats::validate_ioss(i).map_err(f)?;
    }
    if let Some(q) = &d.quote {
        if q.id.len() != 64
            || !q
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(reject(
                "DECL_BAD_QUOTE",
                "a quote id is 64 lowercase hex digits",
            ));
        }
    }
    for id in &d.dpp_ids {
        formats::validate_dpp_id(id).map_err(f)?;
    }
    Ok(())
}

fn trader_key(t: Option<&crate::declaration::Trader>) -> String {
    t.map(|t| t.eori.clone().unwrap_or_else(|| t.name.clone()))
        .unwrap_or_default()
}

/// Risk inputs of each goods item.
/// Risk inputs of each goods item; values converted to EUR with `rates`
/// (the customs rates in force at the declaration's date). A value in a
/// currency without a published rate counts as missing: it cannot be
/// compared with anything in EUR.
pub fn risk_inputs(
    d: &Declaration,
    declarant: &str,
    seq: u64,
    rates: Option<&crate::tariff::RateTable>,
) -> Vec<RiskInput> {
    d.goods
        .iter()
        .map(|g| {
            let dedupe = sha256(
                format!(
                    "{}|{}|{}|{}|{}",
                    trader_key(Some(&d.consignor)),
                    trader_key(Some(&d.consignee)),
                    g.hs_code,
                    g.value_minor,
                    g.gross_mass_g
                )
                .as_bytes(),
            );
            let eur = if g.currency == "EUR" {
                Some(g.value_minor)
            } else {
                rates.and_then(|r| r.to_eur_cents(g.value_minor, &g.currency))
            };
            RiskInput {
                seq,
                hs6: g.hs_code.get(..6).unwrap_or_default().to_string(),
                origin: g.origin.clone(),
                routing: d.routing.clone(),
                place_of_loading: d.place_of_loading.clone(),
                place_of_unloading: d.place_of_unloading.clone(),
                net_mass_g: g.gross_mass_g,
                value_minor: g.value_minor,
                currency: g.currency.clone(),
                value_eur_cents: eur.unwrap_or(0),
                importer: trader_key(Some(&d.consignee)),
                declarant: declarant.to_string(),
                seller: trader_key(d.seller.as_ref()),
                consignee: trader_key(Some(&d.consignee)),
                transport_mode: d.transport_mode,
                tariff_treatment: String::new(),
                present: Presence {
                    origin: !g.origin.is_empty(),
                    routing: !d.routing.is_empty(),
                    place_of_loading: !d.place_of_loading.is_empty(),
                    place_of_unloading: !d.place_of_unloading.is_empty(),
                    net_mass: g.gross_mass_g > 0,
                    value: g.value_minor > 0 && eur.is_some(),
                    currency: !g.currency.is_empty(),
                    importer: true,
                    declarant: true,
                    seller: d.seller.is_some(),
                    consignee: true,
                    tariff_treatment: false,
                },
                dedupe_key: dedupe.0.to_vec(),
            }
        })
        .collect()
}

/// The exchange rates in force for a declaration made at `ms` (its
/// claimed time, which the chain holds within its window of the block time).
pub fn declaration_rates(config: &ChainConfig, ms: u64) -> Option<&crate::tariff::RateTable> {
    crate::tariff::rates_for(&config.exchange_rates, &crate::tariff::month_of(ms))
}

impl CustomsValidator {
    /// A validator for customs party `party` holding `keys`.
    pub fn new(party: &str, keys: Vec<DecryptionKey>, nomenclature: Arc<Nomenclature>) -> Self {
        let risk_cfg = RiskConfig::default();
        CustomsValidator {
            party: party.to_string(),
            keys,
            classifier: Classifier::new(&nomenclature),
            nomenclature,
            semantic: None,
            learned: Learned::new(RiskHistory::new(&risk_cfg.limits)),
            risk_cfg,
            risk_under: Mutex::new(None),
            records: Records::default(),
            opened: Mutex::new(BTreeMap::new()),
            recent_keys: Mutex::new(RecentKeys::default()),
            secrets: Mutex::new(BTreeMap::new()),
        }
    }

    /// The risk model under `config`'s risk policy (built once per policy).
    fn risk_config(&self, config: &ChainConfig) -> Arc<RiskConfig> {
        let mut cached = self.risk_under.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some((p, c)) if *p == config.risk_policy => c.clone(),
            _ => {
                let c = Arc::new(self.risk_cfg.with_policy(&config.risk_policy));
                *cached = Some((config.risk_policy.clone(), c.clone()));
                c
            }
        }
    }

    /// The outcome secret of `config`, unwrapped once with this party's keys.
    pub fn outcome_secret(&self, config: &ChainConfig) -> Result<[u8; 32], Rejection> {
        let key = &config.outcome_key;
        let mut secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = secrets.get(&key.id) {
            return Ok(*s);
        }
        let s = key
            .unwrap(&config.chain_id, &self.party, &self.keys)
            .map_err(|e| reject("INTERNAL_OUTCOME_KEY", e.to_string()))?;
        secrets.insert(key.id, s);
        Ok(s)
    }

    fn opened(&self) -> MutexGuard<'_, BTreeMap<Hash32, Opened>> {
        // The cache holds no invariant a panic could break half-way.
        self.opened.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(
        &self,
        tx_id: &Hash32,
        declaration: Declaration,
        class_keys: disclosure::ClassKeys,
        outcome: Option<ContentOutcome>,
    ) {
        let mut opened = self.opened();
        if opened.len() >= MAX_OPENED {
            opened.clear();
        }
        opened.insert(
            *tx_id,
            Opened {
                declaration,
                class_keys,
                outcome,
            },
        );
    }

    /// Open and judge a declaration-carrying transaction: decrypt as this
    /// customs party, check formats, classify, score, and seal the
    /// judgement as it is committed.
    fn judge(
        &self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
    ) -> Result<ContentOutcome, Rejection> {
        let cached = self
            .opened()
            .get(tx_id)
            .map(|o| (o.declaration.clone(), o.class_keys.clone()));
        let (d, class_keys) = match cached {
            Some(c) => c,
            None => {
                let (d, k) = opened_declaration(stx, &self.party, &self.keys)?;
                check_formats(&d, &self.nomenclature)?;
                (d, k)
            }
        };
        let judgement = self.assess(config, &d, &stx.tx.submitter, stx.tx.claimed_time_ms);
        let secret = self.outcome_secret(config)?;
        let sealed = outcome::seal(config, tx_id, &judgement, &class_keys, &secret)
            .map_err(|e| reject("INTERNAL_OUTCOME_SEAL", e.to_string()))?;
        let out = ContentOutcome { sealed };
        self.remember(tx_id, d, class_keys, Some(out.clone()));
        Ok(out)
    }

    /// Admission's part (the leader, before batching): open the
    /// declaration and check its formats, so a malformed one is refused at
    /// once; its classification and risk wait for [`CustomsValidator::admit`]
    /// when its batch is proposed, against the state that batch builds on.
    pub fn precheck(&self, stx: &SignedTransaction, tx_id: &Hash32) -> Result<(), Rejection> {
        if !stx.tx.kind.carries_declaration() {
            return Ok(());
        }
        let (d, class_keys) = opened_declaration(stx, &self.party, &self.keys)?;
        check_formats(&d, &self.nomenclature)?;
        self.remember(tx_id, d, class_keys, None);
        Ok(())
    }

    /// Judge a declaration against the state as it stands (the leader, when
    /// proposing its batch) and remember the outcome, so applying the entry
    /// neither decrypts nor judges it again on this node. Needs only
    /// `&self`, so judging shares the lock.
    pub fn admit(
        &self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
    ) -> Result<ContentOutcome, Rejection> {
        if !stx.tx.kind.carries_declaration() {
            return Ok(ContentOutcome::default());
        }
        self.judge(config, stx, tx_id)
    }

    /// [`ContentValidator::agrees`] through `&self`. An outcome this node
    /// computed itself at admission is not recomputed: that judgement was
    /// made by this same validator, and the proposal carries it verbatim.
    pub fn agrees_with(
        &self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
        recorded: &ContentOutcome,
    ) -> bool {
        if !stx.tx.kind.carries_declaration() {
            return recorded == &ContentOutcome::default();
        }
        if let Some(o) = self.opened().get(tx_id) {
            if o.outcome.as_ref() == Some(recorded) {
                return true;
            }
        }
        match self.judge(config, stx, tx_id) {
            Ok(mine) => &mine == recorded,
            Err(_) => false,
        }
    }

    /// What `block`'s transactions teach, in commit order: declarations
    /// opened (from the admission cache, or decrypted), releases, and
    /// inspection findings.
    ///
    /// Values in other currencies than EUR are learned as missing: which
    /// exchange rates apply depends on the config a block was judged
    /// under, and learned state must be the same function of the blocks
    /// however a node relearns them (ADR 0015), so history keeps only what
    /// needs no rate.
    pub fn facts(&self, block: &Block) -> Vec<Fact> {
        let mut facts = Vec::new();
        for (stx, r) in block.txs.iter().zip(&block.results) {
            let tx = &stx.tx;
            match tx.kind {
                k if k.carries_declaration() => {
                    let cached = self.opened().remove(&r.tx_id);
                    let d = match cached {
                        Some(o) => {
                            self.keep_keys(r.tx_id, o.class_keys);
                            o.declaration
                        }
                        None => match declared_fields(stx, &self.party, &self.keys) {
                            Ok(d) => d,
                            Err(_) => continue,
                        },
                    };
                    facts.push(Fact::Declared {
                        shipment: tx.shipment_id.clone(),
                        inputs: risk_inputs(&d, &tx.submitter, 0, None),
                        labels: d
                            .goods
                            .iter()
                            .map(|g| (g.description.clone(), g.hs_code.clone()))
                            .collect(),
                    });
                }
                EventKind::Released => facts.push(Fact::Released {
                    shipment: tx.shipment_id.clone(),
                }),
                EventKind::InspectionResult => {
                    let fraud = disclosure::open(tx, &self.party, &self.keys)
                        .ok()
                        .and_then(|fs| {
                            fs.into_iter()
                                .find(|f| f.field.path == "inspection.fraud_found")
                                .map(|f| f.field.value == "true")
                        });
                    if let Some(fraud) = fraud {
                        facts.push(Fact::Inspected {
                            shipment: tx.shipment_id.clone(),
                            fraud,
                        });
                    }
                }
                _ => {}
            }
        }
        facts
    }

    /// Fold `facts` of block `height` (from [`CustomsValidator::facts`])
    /// and return the records to write with the block (ADR 0015).
    pub fn learn_facts(
        &mut self,
        config: &ChainConfig,
        height: u64,
        facts: Vec<Fact>,
    ) -> Option<LearnedWrite> {
        let secret = self.outcome_secret(config).ok();
        let sealed = learned::journal(
            config,
            secret.as_ref(),
            &mut self.learned,
            &mut self.classifier,
            height,
            facts,
        )
        .ok()
        .flatten();
        let (secret, journal) = (secret?, sealed?);
        let key = config.outcome_key.id;
        // A checkpoint holds the state every node has at this height (folded
        // JUDGEMENT_LAG behind), never a leader's state folded ahead.
        let canonical = self.learned.folded == height.saturating_sub(learned::JUDGEMENT_LAG);
        if self.records.checkpoint_due(key, height, journal.len()) && canonical {
            if let Ok((cp, len)) =
                learned::checkpoint(config, &secret, &self.learned, &self.classifier)
            {
                self.records.checkpointed(key, height, len);
                return Some(LearnedWrite {
                    journal: None,
                    checkpoint: Some(cp),
                });
            }
        }
        if height != self.records.height + 1 {
            // Cannot follow the stored records: the next canonical block
            // writes a checkpoint.
            return None;
        }
        self.records.journaled(key, height, journal.len());
        Some(LearnedWrite {
            journal: Some(journal),
            checkpoint: None,
        })
    }

    /// Fold the learned blocks through `at`, the state a batch is judged
    /// against (the leader, before judging a batch; a node applying one,
    /// before re-judging it). An error if the state is already folded past
    /// it or has not learned that far.
    pub fn prepare(&mut self, at: u64) -> Result<(), String> {
        self.learned.fold_through(&mut self.classifier, at)
    }

    /// The learned state (risk history, shipments awaiting release).
    pub fn learned(&self) -> &Learned {
        &self.learned
    }

    /// Examples the classifier has learned from released shipments.
    pub fn learned_examples(&self) -> u64 {
        self.classifier.learned_examples()
    }

    /// The classifier (for the Classify API).
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The pinned nomenclature this validator classifies against.
    pub fn nomenclature(&self) -> &Arc<Nomenclature> {
        &self.nomenclature
    }

    /// Classifies with the distilled semantic table too (the chain pins its
    /// hash; ADR 0020). Learned evidence is kept.
    pub fn with_semantic(mut self, table: Arc<crate::hs::semantic::SemanticTable>) -> Self {
        self.semantic = Some(table.clone());
        self.classifier = self.classifier.with_semantic(table);
        self
    }

    /// The semantic table in use, if any.
    pub fn semantic(&self) -> Option<&Arc<crate::hs::semantic::SemanticTable>> {
        self.semantic.as_ref()
    }

    fn keep_keys(&self, tx_id: Hash32, keys: disclosure::ClassKeys) {
        self.recent_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tx_id, keys);
    }

    /// The class keys this validator unwrapped for a recently committed
    /// declaration, if it still holds them (the same keys
    /// [`disclosure::class_keys`] would unwrap again).
    pub fn recent_class_keys(&self, tx_id: &Hash32) -> Option<disclosure::ClassKeys> {
        self.recent_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .get(tx_id)
            .cloned()
    }

    /// Judge an opened declaration (exposed for tools and tests).
    pub fn assess(
        &self,
        config: &ChainConfig,
        d: &Declaration,
        declarant: &str,
        declared_ms: u64,
    ) -> Judgement {
        let mut out = Judgement::default();
        let mut mismatch = false;
        for (i, g) in d.goods.iter().enumerate() {
            let j = self.classifier.judge(&g.description, &g.hs_code, TOP_K);
            if j.verdict == Verdict::Mismatch {
                mismatch = true;
                out.warnings.push(format!("HS_MISMATCH:item{i}"));
            }
            out.classification.push(ClassificationOutcome {
                item: i as u32,
                declared: g.hs_code.clone(),
                verdict: j.verdict.as_str().to_string(),
                suggestions: j
                    .suggestions
                    .into_iter()
                    .map(|s| (s.hs6, s.score))
                    .collect(),
            });
        }
        let mut best: Option<risk::RiskAssessment> = None;
        let risk_cfg = self.risk_config(config);
        let rates = declaration_rates(config, declared_ms);
        for input in risk_inputs(d, declarant, self.learned.seq, rates) {
            let a = risk::score(&self.learned.history, &input, &risk_cfg);
            if best.as_ref().is_none_or(|b| a.score_milli > b.score_milli) {
                best = Some(a);
            }
        }
        if let Some(a) = best {
            let mut reasons: Vec<(String, u8)> = a
                .reasons
                .iter()
                .map(|r| (r.code.to_string(), r.points))
                .collect();
            let mut score = a.score;
            if mismatch {
                score = score.saturating_add(HS_MISMATCH_POINTS).min(100);
                reasons.push(("RISK_HS_MISMATCH".into(), HS_MISMATCH_POINTS));
            }
            let level = if score >= config.risk_inspect_at {
                RiskLevel::Inspect
            } else if score >= config.risk_review_at {
                RiskLevel::Review
            } else {
                RiskLevel::Low
            };
            let level = match level {
                RiskLevel::Low => "low",
                RiskLevel::Review => {
                    out.warnings.push("RISK_REVIEW".into());
                    "review"
                }
                RiskLevel::Inspect => {
                    out.warnings.push("RISK_INSPECT".into());
                    "inspect"
                }
            };
            out.risk = Some(RiskOutcome {
                score,
                level: level.to_string(),
                reasons,
            });
        }
        // Duty and VAT as assessed, against the checkout quote named.
        match crate::quote::assess_declaration(
            d,
            &crate::tariff::date_of(declared_ms),
            rates,
            crate::tariff::Tariff::shared(),
            crate::tariff::VatTable::shared(),
        ) {
            Ok(a) => {
                if a.within_tolerance == Some(false) {
                    out.warnings.push("ASSESS_QUOTE_DIFFERS".into());
                }
                out.assessment = Some(a);
            }
            Err((code, _)) => out.warnings.push(code.to_string()),
        }
        out
    }
}

impl ContentValidator for CustomsValidator {
    fn check(
        &mut self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
        _state: Option<&ShipmentState>,
    ) -> Result<ContentOutcome, Rejection> {
        self.admit(config, stx, tx_id)
    }

    fn agrees(
        &mut self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
        recorded: &ContentOutcome,
    ) -> bool {
        self.agrees_with(config, stx, tx_id, recorded)
    }

    fn own_outcome(&mut self, tx_id: &Hash32) -> Option<ContentOutcome> {
        self.opened().get(tx_id).and_then(|o| o.outcome.clone())
    }

    fn learns(&self) -> bool {
        true
    }

    fn prepare_judging(&mut self, at: u64) -> Result<bool, String> {
        if self.learned.folded > at {
            return Ok(false);
        }
        self.prepare(at).map(|()| true)
    }

    fn learn(&mut self, config: &ChainConfig, block: &Block) -> Option<LearnedWrite> {
        let facts = self.facts(block);
        self.learn_facts(config, block.header.height, facts)
    }

    fn forget(&mut self) {
        // The nomenclature index stays; only what was learned goes.
        let _ = self.classifier.set_evidence(Default::default());
        self.learned = Learned::new(RiskHistory::new(&self.risk_cfg.limits));
        self.records = Records::default();
    }

    fn restore_checkpoint(
        &mut self,
        config: &ChainConfig,
        sealed: &[u8],
    ) -> Result<Option<u64>, String> {
        let Ok(secret) = self.outcome_secret(config) else {
            return Ok(None);
        };
        let Some((state, evidence, len)) = learned::restore_checkpoint(config, &secret, sealed)?
        else {
            return Ok(None);
        };
        if state.history.limits() != &self.risk_cfg.limits {
            return Err("checkpoint holds a risk history of other limits".into());
        }
        self.classifier
            .set_evidence(evidence)
            .map_err(|e| e.to_string())?;
        let height = state.height;
        self.learned = state;
        self.records
            .checkpointed(config.outcome_key.id, height, len);
        Ok(Some(height))
    }

    fn restore_journal(
        &mut self,
        config: &ChainConfig,
        height: u64,
        sealed: &[u8],
    ) -> Result<bool, String> {
        let Ok(secret) = self.outcome_secret(config) else {
            return Ok(false);
        };
        let folded = learned::restore_journal(
            config,
            &secret,
            &mut self.learned,
            &mut self.classifier,
            height,
            sealed,
        )?;
        if folded {
            self.records
                .journaled(config.outcome_key.id, height, sealed.len());
        }
        Ok(folded)
    }

    fn checkpoint(&mut self, config: &ChainConfig, height: u64) -> Option<Vec<u8>> {
        if self.learned.height != height {
            return None;
        }
        let secret = self.outcome_secret(config).ok()?;
        let (cp, len) =
            learned::checkpoint(config, &secret, &self.learned, &self.classifier).ok()?;
        self.records
            .checkpointed(config.outcome_key.id, height, len);
        Some(cp)
    }
}
