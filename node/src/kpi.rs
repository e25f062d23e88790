//! The KPI follower: folds every committed block once, in height order, into
//! a [`KpiEngine`] beside the ledger (never in the apply path), with what
//! this node's own keys open of the sealed figures; persists the engine in
//! the store's metadata so a restart resumes where it stopped instead of
//! rescanning; serves rows to `GetKpis`, predictions to
//! `PredictClearance` and the public aggregates to Prometheus.

use crate::service::NodeCore;
use ledger::disclosure::{self, DecryptionKey};
use ledger::kpi::{Dim, KpiEngine, KpiQuery, Period, Sealed};
use ledger::{Block, EventKind, SignedTransaction, Store, TxResult};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Metadata key of the persisted engine (the suffix is its format).
const META_KEY: &[u8] = b"kpi/engine/v1";
/// Blocks folded per pass (the lock is taken per block).
const PASS_BLOCKS: u64 = 512;
/// Pause between fold passes when caught up.
const FOLD_EVERY: Duration = Duration::from_millis(250);
/// How often the engine is written back at most.
const PERSIST_EVERY: Duration = Duration::from_secs(20);
/// Corridors exported to Prometheus at most (the busiest).
const PROMETHEUS_CORRIDORS: usize = 50;

/// One public figure of a group, for the metrics endpoint.
type Figure = fn(&ledger::kpi::Stats) -> Option<u64>;

/// The node's KPI state.
#[derive(Debug, Default)]
pub struct Kpis {
    engine: RwLock<KpiEngine>,
}

impl Kpis {
    /// Run `f` on the engine.
    pub fn read<T>(&self, f: impl FnOnce(&KpiEngine) -> T) -> T {
        match self.engine.read() {
            Ok(e) => f(&e),
            Err(p) => f(&p.into_inner()),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut KpiEngine) -> T) -> T {
        match self.engine.write() {
            Ok(mut e) => f(&mut e),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Public aggregates in the Prometheus text format: all time, all
    /// shipments and the busiest corridors. Sealed figures never go here
    /// (the metrics endpoint is not authenticated).
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        self.read(|e| {
            let mut out = String::new();
            let q = |dim| KpiQuery {
                dim,
                period: Period::Total,
                from_ms: 0,
                to_ms: 0,
                value: String::new(),
            };
            let mut rows: Vec<(String, ledger::kpi::Stats)> = Vec::new();
            for dim in [Dim::All, Dim::Corridor] {
                let qq = q(dim);
                let mut these: Vec<_> = e
                    .rows(&qq)
                    .map(|(k, s)| {
                        let label = if dim == Dim::All {
                            String::new()
                        } else {
                            format!("corridor=\"{}\"", k.value.replace(['"', '\\', '\n'], "_"))
                        };
                        (label, s.clone())
                    })
                    .collect();
                these.sort_by(|a, b| b.1.declarations.cmp(&a.1.declarations).then(a.0.cmp(&b.0)));
                these.truncate(PROMETHEUS_CORRIDORS);
                rows.extend(these);
            }
            let series: [(&str, &str, Figure); 9] = [
                (
                    "customs_kpi_declarations",
                    "Declarations filed (all time).",
                    |s| Some(s.declarations),
                ),
                (
                    "customs_kpi_declarations_complete",
                    "Declarations with every ICS2 element.",
                    |s| Some(s.complete),
                ),
                ("customs_kpi_released", "Shipments released.", |s| {
                    Some(s.released)
                }),
                (
                    "customs_kpi_inspected",
                    "Shipments with an inspection ordered.",
                    |s| Some(s.inspected),
                ),
                ("customs_kpi_holds", "Holds.", |s| Some(s.holds)),
                ("customs_kpi_rejections", "Rejections.", |s| {
                    Some(s.rejections)
                }),
                ("customs_kpi_rfis", "Requests for information.", |s| {
                    Some(s.rfis)
                }),
                (
                    "customs_kpi_arrival_to_release_median_seconds",
                    "Median time from arrival to release.",
                    |s| s.arrived_to_release.quantile(500),
                ),
                (
                    "customs_kpi_arrival_to_release_p90_seconds",
                    "90th percentile time from arrival to release.",
                    |s| s.arrived_to_release.quantile(900),
                ),
            ];
            for (name, help, f) in series {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                for (label, s) in &rows {
                    if let Some(v) = f(s) {
                        if label.is_empty() {
                            let _ = writeln!(out, "{name} {v}");
                        } else {
                            let _ = writeln!(out, "{name}{{{label}}} {v}");
                        }
                    }
                }
            }
            let _ = writeln!(
                out,
                "# HELP customs_kpi_folded_height Blocks folded into the KPIs."
            );
            let _ = writeln!(out, "# TYPE customs_kpi_folded_height gauge");
            let _ = writeln!(out, "customs_kpi_folded_height {}", e.next_height());
            out
        })
    }
}

/// What this node's keys open of one transaction's sealed KPI inputs. Only
/// kinds that feed a sealed figure are opened, and a declaration's outcome
/// only when it names a checkout quote.
fn sealed_inputs<'a>(
    party: &str,
    keys: &[DecryptionKey],
    outcome_keys: &impl Fn() -> &'a ledger::outcome::OutcomeKeys,
    stx: &SignedTransaction,
    r: &TxResult,
    known_keys: Option<disclosure::ClassKeys>,
) -> Sealed {
    let tx = &stx.tx;
    let mut out = Sealed::default();
    match tx.kind {
        EventKind::InspectionResult => {
            if let Ok(fields) = disclosure::open(tx, party, keys) {
                out.inspection_hit = fields
                    .iter()
                    .find(|f| f.field.path == "inspection.fraud_found")
                    .map(|f| f.field.value == "true");
            }
        }
        EventKind::DeclarationFiled => {
            // Nothing sealed opens for a party the submitter did not wrap
            // a key to.
            if !tx.recipients.iter().any(|r| r.party == party) {
                return out;
            }
            // Only the fields the KPIs read are decrypted.
            let opened = match known_keys {
                Some(ck) => Ok(ck),
                // A key this party no longer holds leaves the public fields.
                None => match disclosure::class_keys(tx, party, keys) {
                    Err(disclosure::DisclosureError::NotRecipient) => Ok(Default::default()),
                    other => other,
                },
            }
            .and_then(|ck| disclosure::open_selected(tx, &ck, kpi_field));
            if let Ok(fields) = opened {
                out.co2_g = co2_of(tx, &fields);
                let quoted = fields.iter().any(|f| f.field.path == "decl.quote.id");
                if quoted {
                    let (j, _) = ledger::outcome::open(
                        tx,
                        &r.tx_id,
                        &r.outcome,
                        party,
                        keys,
                        outcome_keys(),
                    );
                    out.ddp_within = j.assessment.and_then(|a| a.within_tolerance);
                }
            }
        }
        _ => {}
    }
    out
}

/// The declaration fields the KPIs read: what [`co2_of`] needs, and
/// whether a quote is referenced.
fn kpi_field(path: &str) -> bool {
    matches!(
        path,
        "decl.transport_mode"
            | "decl.place_of_loading"
            | "decl.place_of_unloading"
            | "decl.quote.id"
    ) || path.ends_with(".gross_mass_g")
}

/// Emissions of a filed declaration from its (opened) transport fields:
/// loading and unloading places, mode and gross mass.
fn co2_of(tx: &ledger::Transaction, fields: &[disclosure::OpenedField]) -> Option<u64> {
    let get = |p: &str| {
        fields
            .iter()
            .find(|f| f.field.path == p)
            .map(|f| f.field.value.as_str())
            .or_else(|| {
                tx.public
                    .iter()
                    .find(|f| f.path == p)
                    .map(|f| f.value.as_str())
            })
    };
    let mode: u8 = get("decl.transport_mode")?.parse().ok()?;
    let from = get("decl.place_of_loading")?;
    let to = get("decl.place_of_unloading")?;
    let mass: u64 = fields
        .iter()
        .filter(|f| f.field.path.ends_with(".gross_mass_g"))
        .filter_map(|f| f.field.value.parse::<u64>().ok())
        .fold(0u64, u64::saturating_add);
    ledger::co2::leg(mode, from, to, mass)
        .ok()
        .map(|e| e.grams_co2e)
}

/// Load the persisted engine, or start empty: a missing, unreadable or
/// older-format record is simply refolded, and so is one another party
/// folded (a snapshot carries the sending node's metadata; its sealed
/// figures came from keys this node does not hold).
pub fn load(store: &dyn Store, party: &str) -> KpiEngine {
    match store.meta(META_KEY) {
        Ok(Some(bytes)) => match ledger::codec::decode_large::<(String, KpiEngine)>(&bytes) {
            Ok((owner, e)) if owner == party => e,
            Ok((owner, _)) => {
                tracing::info!("KPI state was folded by {owner}; refolding from genesis");
                KpiEngine::default()
            }
            Err(e) => {
                tracing::warn!("KPI state unreadable ({e}); refolding from genesis");
                KpiEngine::default()
            }
        },
        _ => KpiEngine::default(),
    }
}

/// Fold blocks until `stop` fires.
pub async fn follow(
    core: Arc<NodeCore>,
    keys: Vec<DecryptionKey>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let initial = core
        .consensus
        .ledger()
        .with_store(|s| load(s, &core.party))
        .unwrap_or_default();
    core.kpis.write(|e| *e = initial);
    core.consensus.ledger().keep_applied_blocks();
    let mut persisted = Instant::now();
    let mut dirty = false;
    loop {
        let tip = core.consensus.ledger().tip().ok().map(|t| t.height);
        let next = core.kpis.read(|e| e.next_height());
        if tip.is_some_and(|t| t >= next) {
            let c = core.clone();
            let k = keys.clone();
            let folded = tokio::task::spawn_blocking(move || fold_pass(&c, &k))
                .await
                .unwrap_or(0);
            dirty |= folded > 0;
            if folded == PASS_BLOCKS {
                tokio::task::yield_now().await;
                continue;
            }
        }
        if dirty && persisted.elapsed() >= PERSIST_EVERY {
            persist(&core);
            persisted = Instant::now();
            dirty = false;
        }
        tokio::select! {
            _ = stop.changed() => {
                if dirty {
                    persist(&core);
                }
                return;
            }
            // Folded in passes a quarter of a second apart, several blocks
            // at a time, rather than woken by every applied entry.
            _ = tokio::time::sleep(FOLD_EVERY) => {}
        }
    }
}

fn persist(core: &NodeCore) {
    let bytes = core
        .kpis
        .read(|e| ledger::codec::encode_large(&(core.party.as_str(), e)));
    match bytes {
        Ok(b) => {
            if let Err(e) = core
                .consensus
                .ledger()
                .with_store(|s| s.put_meta(META_KEY, &b))
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                tracing::warn!("cannot persist KPI state: {e}");
            }
        }
        Err(e) => tracing::warn!("cannot encode KPI state: {e}"),
    }
}

/// Fold up to [`PASS_BLOCKS`] committed blocks; returns how many.
fn fold_pass(core: &NodeCore, keys: &[DecryptionKey]) -> u64 {
    let ledger = core.consensus.ledger();
    let Ok(cfg) = ledger.with_ledger(|l| l.shared_config()) else {
        return 0;
    };
    let outcome_keys = std::sync::OnceLock::new();
    let outcome_keys = || {
        outcome_keys
            .get_or_init(|| ledger::outcome::OutcomeKeys::for_party(&cfg, &core.party, keys))
    };
    let mut folded = 0;
    while folded < PASS_BLOCKS {
        let next = core.kpis.read(|e| e.next_height());
        // The block as this node applied it, or else read back from the
        // store (checked at start; the API's reads do check).
        let block: Option<Arc<Block>> = ledger.take_applied_block(next).or_else(|| {
            match ledger.with_store(|s| s.block(next)) {
                Ok(Ok(b)) => b.map(Arc::new),
                _ => None,
            }
        });
        let Some(block) = block else { break };
        let inputs: Vec<Sealed> = block
            .txs
            .iter()
            .zip(&block.results)
            .map(|(stx, r)| {
                // A customs node's validator unwrapped this declaration's
                // keys when it judged it.
                let known = match (&core.content, stx.tx.kind) {
                    (Some(v), EventKind::DeclarationFiled) => {
                        v.read().ok().and_then(|v| v.recent_class_keys(&r.tx_id))
                    }
                    _ => None,
                };
                sealed_inputs(&core.party, keys, &outcome_keys, stx, r, known)
            })
            .collect();
        let mut it = inputs.into_iter();
        let applied = core
            .kpis
            .write(|e| e.apply_block(&cfg, &block, |_, _| it.next().unwrap_or_default()));
        if applied.is_err() {
            break;
        }
        folded += 1;
    }
    folded
}
