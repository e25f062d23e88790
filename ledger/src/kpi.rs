//! Smart Customs KPIs, folded incrementally from committed blocks.
//!
//! [`KpiEngine::apply_block`] takes each committed block once, in height
//! order, and updates aggregates per dimension (everything, corridor = country
//! of dispatch to office of first entry, HS chapter, transport mode, party)
//! and per period (all time, month, ISO week, day): declarations and their
//! ICS2 completeness, time-to-clear (arrived, presented and filed to released)
//! as integer log-linear histograms with medians and p90, inspection rate,
//! holds, do-not-load, requests for information and their response times,
//! rejections by reason code. Every group key and every public figure comes
//! from what all parties see in clear: event kinds, submitters, public fields
//! (the corridor, chapters and mode are public in a declaration; the
//! completeness is measured on field paths, which are public even where the
//! values are sealed) and times. Three figures need sealed data and are fed
//! by the caller through [`Sealed`], from what its own keys open: inspection
//! hits (security class), checkout (DDP) price accuracy (commercial) and CO2
//! (transport); [`Visibility`] decides who is shown them.
//!
//! An event is placed in time by its `event.time_ms` field when it carries
//! one (clamped to its block's time) and by its block's time otherwise, so a
//! backfilled history lands in the weeks it happened. Everything is integer
//! arithmetic over ordered maps: two nodes folding the same blocks with the
//! same [`Sealed`] inputs hold identical state. Memory is bounded: shipments
//! are tracked until they end (delivered, rejected, invalidated) or until
//! [`MAX_TRACKED`] newer ones push them out, day groups are kept for
//! [`KEEP_DAYS`] days and week groups for two years.
//!
//! [`Predictor`] ranks offices of entry for a planned shipment by the
//! arrival-to-release times of past clearances on the narrowest corridor with
//! enough evidence, and [`backtest`] measures it against a naive baseline.

use crate::block::{Block, TxResult};
use crate::config::{ChainConfig, Role};
use crate::event::{self, EventKind};
use crate::tx::SignedTransaction;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;
/// Day groups older than this many days (before the newest block) are dropped.
pub const KEEP_DAYS: u64 = 92;
/// Week groups older than this many days are dropped.
pub const KEEP_WEEK_DAYS: u64 = 732;
/// Open shipments tracked at most; the least recently active go first.
pub const MAX_TRACKED: usize = 200_000;
/// Fewest clearances a corridor level needs before it predicts.
pub const MIN_EVIDENCE: u64 = 5;

/// What a KPI row is grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// Everything together.
    All,
    /// Country of dispatch to office of first entry (`PL>FR000690`).
    Corridor,
    /// HS chapter (two digits).
    Chapter,
    /// Transport mode (`sea`, `rail`, `road`, `air`, ...).
    Mode,
    /// A non-customs party of the shipment.
    Party,
}

impl Dim {
    /// Every dimension.
    pub const ALL: [Dim; 5] = [Dim::All, Dim::Corridor, Dim::Chapter, Dim::Mode, Dim::Party];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Dim::All => "all",
            Dim::Corridor => "corridor",
            Dim::Chapter => "chapter",
            Dim::Mode => "mode",
            Dim::Party => "party",
        }
    }

    /// Parse [`Dim::name`].
    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// The period a row covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// All time.
    Total,
    /// Calendar month (UTC).
    Month,
    /// ISO week, Monday to Sunday (UTC).
    Week,
    /// Calendar day (UTC).
    Day,
}

impl Period {
    /// Every period.
    pub const ALL: [Period; 4] = [Period::Total, Period::Month, Period::Week, Period::Day];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Period::Total => "total",
            Period::Month => "month",
            Period::Week => "week",
            Period::Day => "day",
        }
    }

    /// Parse [`Period::name`].
    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Start (ms) of the period holding `ms`; 0 for [`Period::Total`].
    pub fn start_of(self, ms: u64) -> u64 {
        let day = ms / DAY_MS;
        match self {
            Period::Total => 0,
            Period::Day => day * DAY_MS,
            // 1970-01-01 was a Thursday: Monday is 3 days earlier.
            Period::Week => (day - (day + 3) % 7).saturating_mul(DAY_MS),
            Period::Month => {
                let (y, m, _) = civil(day);
                days_from_civil(y, m, 1).saturating_mul(DAY_MS)
            }
        }
    }

    /// Human label of the period starting at `start_ms`.
    pub fn label(self, start_ms: u64) -> String {
        let (y, m, d) = civil(start_ms / DAY_MS);
        match self {
            Period::Total => "all time".into(),
            Period::Month => format!("{y:04}-{m:02}"),
            Period::Week => format!("week of {y:04}-{m:02}-{d:02}"),
            Period::Day => format!("{y:04}-{m:02}-{d:02}"),
        }
    }
}

/// Days since the epoch to (year, month, day), proleptic Gregorian.
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since the epoch (years from 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// Name of a UCC transport mode code.
pub fn mode_name(mode: u8) -> &'static str {
    match mode {
        1 => "sea",
        2 => "rail",
        3 => "road",
        4 => "air",
        5 => "postal",
        7 => "fixed installation",
        8 => "inland waterway",
        _ => "unknown",
    }
}

/// A distribution of durations in seconds: exact below 8 s, then eight
/// buckets per power of two (at most 12.5% wide), so quantiles are within
/// a few percent whatever the scale, in bounded space.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hist {
    /// Samples.
    pub count: u64,
    /// Sum of the samples (saturating).
    pub sum: u64,
    buckets: BTreeMap<u16, u64>,
}

fn bucket_of(v: u64) -> u16 {
    if v < 8 {
        return v as u16;
    }
    let e = 63 - u64::from(v.leading_zeros());
    let m = (v >> (e - 3)) & 7;
    (8 + (e - 3) * 8 + m) as u16
}

/// Lower bound and width of bucket `b`.
fn bucket_range(b: u16) -> (u64, u64) {
    let b = u64::from(b);
    if b < 8 {
        return (b, 1);
    }
    let e = (b - 8) / 8 + 3;
    let m = (b - 8) % 8;
    ((8 + m) << (e - 3), 1 << (e - 3))
}

impl Hist {
    /// Add one sample.
    pub fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        *self.buckets.entry(bucket_of(v)).or_insert(0) += 1;
    }

    /// Fold another histogram in.
    pub fn merge(&mut self, o: &Hist) {
        self.count += o.count;
        self.sum = self.sum.saturating_add(o.sum);
        for (b, n) in &o.buckets {
            *self.buckets.entry(*b).or_insert(0) += n;
        }
    }

    /// The `permille`/1000 quantile, interpolated within its bucket.
    pub fn quantile(&self, permille: u64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = (self.count * permille.min(1000)).div_ceil(1000).max(1);
        let mut before = 0u64;
        for (b, n) in &self.buckets {
            if before + n >= rank {
                let (lo, width) = bucket_range(*b);
                if width == 1 {
                    return Some(lo);
                }
                let k = rank - before;
                return Some(lo + width * (2 * k - 1) / (2 * n));
            }
            before += n;
        }
        None
    }

    /// Median and p90 with the evidence count.
    pub fn summary(&self) -> Durations {
        Durations {
            n: self.count,
            median_s: self.quantile(500),
            p90_s: self.quantile(900),
            mean_s: self.sum.checked_div(self.count),
        }
    }
}

/// Median, p90 and mean of a duration, with how many samples back them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    /// Samples.
    pub n: u64,
    /// Median, seconds.
    pub median_s: Option<u64>,
    /// 90th percentile, seconds.
    pub p90_s: Option<u64>,
    /// Mean, seconds.
    pub mean_s: Option<u64>,
}

/// Aggregates of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Declarations filed.
    pub declarations: u64,
    /// Of them, with every ICS2 data element present.
    pub complete: u64,
    /// Amendments.
    pub amendments: u64,
    /// Invalidations.
    pub invalidated: u64,
    /// Shipments released.
    pub released: u64,
    /// Shipments delivered.
    pub delivered: u64,
    /// Shipments with an inspection ordered.
    pub inspected: u64,
    /// Inspection results reported.
    pub inspection_results: u64,
    /// Inspection results whose finding the computing party could read.
    pub hits_known: u64,
    /// Of them, inspections that found something (security class).
    pub hits: u64,
    /// Holds.
    pub holds: u64,
    /// Do-not-load orders.
    pub do_not_load: u64,
    /// High-risk screenings requested.
    pub screenings: u64,
    /// Requests for information.
    pub rfis: u64,
    /// Rejections.
    pub rejections: u64,
    /// Hold reason codes.
    pub hold_reasons: BTreeMap<String, u64>,
    /// Rejection reason codes.
    pub rejection_reasons: BTreeMap<String, u64>,
    /// Released shipments whose duty and VAT assessment against a
    /// checkout quote the computing party could read (commercial class;
    /// the assessment of the declaration as last filed or amended).
    pub ddp_assessed: u64,
    /// Of them, assessed within tolerance of the quote.
    pub ddp_within: u64,
    /// Declarations with a CO2 estimate (transport class).
    pub co2_shipments: u64,
    /// Their estimated emissions, grams CO2e.
    pub co2_g: u64,
    /// Arrival to release, seconds.
    pub arrived_to_release: Hist,
    /// Presentation to release, seconds.
    pub presented_to_release: Hist,
    /// Filing to release, seconds.
    pub filed_to_release: Hist,
    /// Request for information to its answer, seconds.
    pub rfi_response: Hist,
}

/// What the computing party's own keys opened of one transaction; all
/// `None` where it could not read them (or did not look).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sealed {
    /// An inspection result's finding (security class).
    pub inspection_hit: Option<bool>,
    /// A declaration's committed assessment was within tolerance of its
    /// checkout quote (commercial class).
    pub ddp_within: Option<bool>,
    /// A declaration's estimated emissions, grams CO2e (transport class).
    pub co2_g: Option<u64>,
}

/// A group's key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    /// Dimension.
    pub dim: Dim,
    /// Its value (`all` for [`Dim::All`], `unknown` where the data lacks it).
    pub value: String,
    /// Period.
    pub period: Period,
    /// Period start, ms (0 for [`Period::Total`]).
    pub start_ms: u64,
}

/// One shipment as the engine follows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Track {
    dispatch: String,
    office: String,
    mode: u8,
    chapters: Vec<String>,
    parties: Vec<String>,
    filed_ms: Option<u64>,
    arrived_ms: Option<u64>,
    presented_ms: Option<u64>,
    rfi_ms: Option<u64>,
    inspected: bool,
    released: bool,
    /// The latest committed assessment against the checkout quote, as
    /// read: counted for DDP accuracy when the shipment is released.
    ddp: Option<bool>,
    last_height: u64,
}

impl Track {
    fn corridor(&self) -> String {
        corridor_name(&self.dispatch, &self.office)
    }

    fn values(&self, dim: Dim) -> Vec<String> {
        let or_unknown = |v: Vec<String>| {
            if v.is_empty() {
                vec!["unknown".to_string()]
            } else {
                v
            }
        };
        match dim {
            Dim::All => vec!["all".into()],
            Dim::Corridor => vec![self.corridor()],
            Dim::Chapter => or_unknown(self.chapters.clone()),
            Dim::Mode => vec![mode_name(self.mode).to_string()],
            Dim::Party => or_unknown(self.parties.clone()),
        }
    }
}

/// `PL>FR000690`, or `unknown` when either end is missing.
pub fn corridor_name(dispatch: &str, office: &str) -> String {
    if dispatch.is_empty() || office.is_empty() {
        "unknown".into()
    } else {
        format!("{dispatch}>{office}")
    }
}

/// A released shipment, as the predictor and the back-test see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clearance {
    /// Shipment id.
    pub shipment: String,
    /// Country of dispatch.
    pub dispatch: String,
    /// Office of first entry.
    pub office: String,
    /// First HS chapter.
    pub chapter: String,
    /// Transport mode.
    pub mode: u8,
    /// Released at, ms.
    pub released_ms: u64,
    /// Arrival to release, seconds, when the arrival was recorded.
    pub from_arrival_s: Option<u64>,
    /// Filing to release, seconds.
    pub from_filing_s: Option<u64>,
}

/// Arrival-to-release times by corridor, at four levels of detail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predictor {
    levels: BTreeMap<(u8, String), Hist>,
    overall: Hist,
}

/// The corridor levels a prediction may fall back through, narrowest first.
pub const LEVELS: [&str; 4] = [
    "dispatch, office, chapter and mode",
    "dispatch, office and mode",
    "dispatch and office",
    "office",
];

fn level_keys(dispatch: &str, office: &str, chapter: &str, mode: u8) -> [(u8, String); 4] {
    [
        (0, format!("{dispatch}>{office}|{chapter}|{mode}")),
        (1, format!("{dispatch}>{office}|{mode}")),
        (2, format!("{dispatch}>{office}")),
        (3, office.to_string()),
    ]
}

/// A predicted time-to-clear at one office.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// Office of entry.
    pub office: String,
    /// Which level of [`LEVELS`] it came from (4: the network-wide figure).
    pub level: u8,
    /// What that level matches.
    pub basis: String,
    /// Clearances behind the figure.
    pub evidence: u64,
    /// Median arrival to release, seconds.
    pub median_s: u64,
    /// 90th percentile, seconds.
    pub p90_s: u64,
}

impl Predictor {
    /// Learn one clearance (only those with a recorded arrival count).
    pub fn add(&mut self, c: &Clearance) {
        let Some(s) = c.from_arrival_s else { return };
        for k in level_keys(&c.dispatch, &c.office, &c.chapter, c.mode) {
            self.levels.entry(k).or_default().add(s);
        }
        self.overall.add(s);
    }

    /// Predicted arrival-to-release at `office`: the narrowest level with
    /// at least `min_evidence` clearances, else the network-wide figure.
    pub fn predict(
        &self,
        dispatch: &str,
        office: &str,
        chapter: &str,
        mode: u8,
        min_evidence: u64,
    ) -> Option<Prediction> {
        let found = level_keys(dispatch, office, chapter, mode)
            .into_iter()
            .find_map(|k| {
                let h = self.levels.get(&k)?;
                (h.count >= min_evidence.max(1)).then_some((k.0, h))
            });
        let (level, h) = found.unwrap_or((4, &self.overall));
        Some(Prediction {
            office: office.to_string(),
            level,
            basis: LEVELS
                .get(usize::from(level))
                .copied()
                .unwrap_or("the whole network")
                .to_string(),
            evidence: h.count,
            median_s: h.quantile(500)?,
            p90_s: h.quantile(900)?,
        })
    }

    /// Offices ranked by predicted median, then p90, then name.
    pub fn rank(
        &self,
        dispatch: &str,
        chapter: &str,
        mode: u8,
        offices: &[String],
        min_evidence: u64,
    ) -> Vec<Prediction> {
        let mut out: Vec<Prediction> = offices
            .iter()
            .filter_map(|o| self.predict(dispatch, o, chapter, mode, min_evidence))
            .collect();
        out.sort_by(|a, b| (a.median_s, a.p90_s, &a.office).cmp(&(b.median_s, b.p90_s, &b.office)));
        out
    }

    /// Offices the predictor has seen (level "office").
    pub fn offices(&self) -> Vec<String> {
        self.levels
            .keys()
            .filter(|(l, _)| *l == 3)
            .map(|(_, o)| o.clone())
            .collect()
    }
}

/// Result of [`backtest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backtest {
    /// Clearances learned from (the earlier half by release time).
    pub trained: u64,
    /// Clearances predicted (the later half).
    pub tested: u64,
    /// Mean absolute error of the predictor, seconds.
    pub mae_s: u64,
    /// Mean absolute error of the baseline (the earlier half's overall
    /// median for every shipment), seconds.
    pub baseline_mae_s: u64,
    /// Median absolute error of the predictor, seconds.
    pub median_ae_s: u64,
    /// Median absolute error of the baseline, seconds.
    pub baseline_median_ae_s: u64,
    /// Predictions per fallback level (index as in [`LEVELS`], 4 = network).
    pub by_level: [u64; 5],
}

/// Predict the later half of `clearances` (by release time) from the
/// earlier half and compare with the naive baseline.
pub fn backtest(clearances: &[Clearance], min_evidence: u64) -> Backtest {
    let mut cs: Vec<&Clearance> = clearances
        .iter()
        .filter(|c| c.from_arrival_s.is_some())
        .collect();
    cs.sort_by(|a, b| (a.released_ms, &a.shipment).cmp(&(b.released_ms, &b.shipment)));
    let half = cs.len() / 2;
    let (train, test) = cs.split_at(half);
    let mut p = Predictor::default();
    for c in train {
        p.add(c);
    }
    let mut out = Backtest {
        trained: train.len() as u64,
        ..Backtest::default()
    };
    let Some(base) = p.overall.quantile(500) else {
        return out;
    };
    let mut errs = Hist::default();
    let mut base_errs = Hist::default();
    for c in test {
        let Some(actual) = c.from_arrival_s else {
            continue;
        };
        let Some(pred) = p.predict(&c.dispatch, &c.office, &c.chapter, c.mode, min_evidence) else {
            continue;
        };
        errs.add(pred.median_s.abs_diff(actual));
        base_errs.add(base.abs_diff(actual));
        if let Some(n) = out.by_level.get_mut(usize::from(pred.level)) {
            *n += 1;
        }
    }
    out.tested = errs.count;
    out.mae_s = errs.sum.checked_div(errs.count).unwrap_or(0);
    out.baseline_mae_s = base_errs.sum.checked_div(base_errs.count).unwrap_or(0);
    out.median_ae_s = errs.quantile(500).unwrap_or(0);
    out.baseline_median_ae_s = base_errs.quantile(500).unwrap_or(0);
    out
}

/// The KPI state: where it has folded to, the open shipments and the groups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KpiEngine {
    next_height: u64,
    newest_ms: u64,
    tracks: BTreeMap<String, Track>,
    ages: BTreeSet<(u64, String)>,
    groups: BTreeMap<GroupKey, Stats>,
    predictor: Predictor,
}

/// Which sealed figures a reader may be shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Visibility {
    /// Inspection hits (security class).
    pub security: bool,
    /// DDP price accuracy (commercial class).
    pub commercial: bool,
    /// CO2 (transport class).
    pub transport: bool,
}

impl Visibility {
    /// Everything.
    pub const ALL: Visibility = Visibility {
        security: true,
        commercial: true,
        transport: true,
    };
}

impl Visibility {
    /// What `reader` may be shown: the sealed figures of every shipment
    /// where the policy grants its role the class on every shipment
    /// (customs, auditors where granted), and on its own row of the party
    /// dimension where it is granted the class on its own shipments.
    pub fn of(cfg: &ChainConfig, reader: &crate::config::Party, own_row: bool) -> Visibility {
        use crate::config::FieldClass;
        let mut named = BTreeSet::new();
        if own_row {
            named.insert(reader.id.as_str());
        }
        let may = |c| crate::disclosure::may_read(cfg, reader, c, &named);
        Visibility {
            security: may(FieldClass::Security),
            commercial: may(FieldClass::Commercial),
            transport: may(FieldClass::Transport),
        }
    }
}

/// A share: `num` of `den`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Numerator.
    pub num: u64,
    /// Denominator.
    pub den: u64,
}

impl Share {
    fn of(num: u64, den: u64) -> Share {
        Share { num, den }
    }

    /// Per mille, if the denominator is not zero.
    pub fn permille(&self) -> Option<u64> {
        (self.num.saturating_mul(1000)).checked_div(self.den)
    }

    /// `12.5%`, or `-` with no denominator.
    pub fn percent(&self) -> String {
        match (self.num.saturating_mul(1000)).checked_div(self.den) {
            Some(p) => format!("{}.{}%", p / 10, p % 10),
            None => "-".into(),
        }
    }
}

/// One KPI row as a reader is shown it: sealed figures are `None` where
/// the reader may not see them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KpiRow {
    /// Dimension name.
    pub dim: String,
    /// Group value.
    pub value: String,
    /// Period name.
    pub period: String,
    /// Period start, ms.
    pub start_ms: u64,
    /// Period label.
    pub label: String,
    /// Declarations filed.
    pub declarations: u64,
    /// Declarations with every ICS2 element.
    pub completeness: Share,
    /// Shipments released.
    pub released: u64,
    /// Shipments delivered.
    pub delivered: u64,
    /// Shipments inspected of declarations.
    pub inspection_rate: Share,
    /// Inspections that found something, of the results read.
    pub hit_rate: Option<Share>,
    /// Holds.
    pub holds: u64,
    /// Do-not-load orders.
    pub do_not_load: u64,
    /// High-risk screenings.
    pub screenings: u64,
    /// Requests for information.
    pub rfis: u64,
    /// Amendments.
    pub amendments: u64,
    /// Invalidations.
    pub invalidated: u64,
    /// Rejections of declarations.
    pub rejection_rate: Share,
    /// Hold reasons.
    pub hold_reasons: BTreeMap<String, u64>,
    /// Rejection reasons.
    pub rejection_reasons: BTreeMap<String, u64>,
    /// Arrival to release.
    pub arrived_to_release: Durations,
    /// Presentation to release.
    pub presented_to_release: Durations,
    /// Filing to release.
    pub filed_to_release: Durations,
    /// Request for information to answer.
    pub rfi_response: Durations,
    /// Released shipments whose assessed duty and VAT were within
    /// tolerance of their checkout quote.
    pub ddp_accuracy: Option<Share>,
    /// Emissions: shipments estimated and grams CO2e.
    pub co2: Option<Co2Total>,
}

/// Summed emissions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Co2Total {
    /// Shipments with an estimate.
    pub shipments: u64,
    /// Grams CO2e.
    pub grams: u64,
}

impl KpiRow {
    /// The row of `stats` under `key` as `vis` allows.
    pub fn new(key: &GroupKey, s: &Stats, vis: Visibility) -> KpiRow {
        KpiRow {
            dim: key.dim.name().into(),
            value: key.value.clone(),
            period: key.period.name().into(),
            start_ms: key.start_ms,
            label: key.period.label(key.start_ms),
            declarations: s.declarations,
            completeness: Share::of(s.complete, s.declarations),
            released: s.released,
            delivered: s.delivered,
            inspection_rate: Share::of(s.inspected, s.declarations),
            hit_rate: vis.security.then(|| Share::of(s.hits, s.hits_known)),
            holds: s.holds,
            do_not_load: s.do_not_load,
            screenings: s.screenings,
            rfis: s.rfis,
            amendments: s.amendments,
            invalidated: s.invalidated,
            rejection_rate: Share::of(s.rejections, s.declarations),
            hold_reasons: s.hold_reasons.clone(),
            rejection_reasons: s.rejection_reasons.clone(),
            arrived_to_release: s.arrived_to_release.summary(),
            presented_to_release: s.presented_to_release.summary(),
            filed_to_release: s.filed_to_release.summary(),
            rfi_response: s.rfi_response.summary(),
            ddp_accuracy: vis
                .commercial
                .then(|| Share::of(s.ddp_within, s.ddp_assessed)),
            co2: vis.transport.then_some(Co2Total {
                shipments: s.co2_shipments,
                grams: s.co2_g,
            }),
        }
    }
}

/// Which rows a query asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KpiQuery {
    /// Dimension.
    pub dim: Dim,
    /// Period.
    pub period: Period,
    /// Only periods starting at or after this (ms).
    pub from_ms: u64,
    /// Only periods starting before this (ms; 0 = no bound).
    pub to_ms: u64,
    /// Only this group value (empty = all).
    pub value: String,
}

fn public<'a>(stx: &'a SignedTransaction, path: &str) -> Option<&'a str> {
    stx.tx
        .public
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.value.as_str())
}

impl KpiEngine {
    /// The next height this engine expects.
    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// Open shipments tracked.
    pub fn tracked(&self) -> usize {
        self.tracks.len()
    }

    /// Groups held.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The corridor predictor.
    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    /// Fold block `block` (which must be [`KpiEngine::next_height`]) with
    /// the config in force before it; `sealed` says what the caller's keys
    /// read of a transaction. Returns the shipments it released. A block
    /// at another height is refused with the height expected.
    pub fn apply_block(
        &mut self,
        cfg: &ChainConfig,
        block: &Block,
        mut sealed: impl FnMut(&SignedTransaction, &TxResult) -> Sealed,
    ) -> Result<Vec<Clearance>, u64> {
        if block.header.height != self.next_height {
            return Err(self.next_height);
        }
        let block_ms = block.header.timestamp_ms;
        let mut cleared = Vec::new();
        for (stx, r) in block.txs.iter().zip(&block.results) {
            if stx.tx.kind.is_governance() {
                continue;
            }
            let t = event::occurred_ms(&stx.tx)
                .unwrap_or(block_ms)
                .min(block_ms);
            let s = sealed(stx, r);
            if let Some(c) = self.apply_tx(cfg, block.header.height, stx, t, &s) {
                self.predictor.add(&c);
                cleared.push(c);
            }
        }
        self.next_height += 1;
        if block_ms / DAY_MS > self.newest_ms / DAY_MS {
            self.newest_ms = block_ms;
            self.prune();
        }
        self.newest_ms = self.newest_ms.max(block_ms);
        Ok(cleared)
    }

    fn prune(&mut self) {
        let day_floor = self.newest_ms.saturating_sub(KEEP_DAYS * DAY_MS);
        let week_floor = self.newest_ms.saturating_sub(KEEP_WEEK_DAYS * DAY_MS);
        self.groups.retain(|k, _| match k.period {
            Period::Day => k.start_ms >= day_floor,
            Period::Week => k.start_ms >= week_floor,
            _ => true,
        });
    }

    fn apply_tx(
        &mut self,
        cfg: &ChainConfig,
        height: u64,
        stx: &SignedTransaction,
        t: u64,
        sealed: &Sealed,
    ) -> Option<Clearance> {
        let tx = &stx.tx;
        let id = tx.shipment_id.clone();
        let mut track = match self.tracks.remove(&id) {
            Some(tr) => {
                self.ages.remove(&(tr.last_height, id.clone()));
                tr
            }
            None => Track::default(),
        };
        let customs = cfg
            .party(&tx.submitter)
            .is_some_and(|p| p.has_role(Role::Customs));
        if !customs && !track.parties.contains(&tx.submitter) {
            track.parties.push(tx.submitter.clone());
            track.parties.sort();
        }
        if let Some(named) = public(stx, crate::chain::PARTIES_FIELD) {
            for p in named.split(',').take(16) {
                let customs = cfg.party(p).is_some_and(|p| p.has_role(Role::Customs));
                if cfg.party(p).is_some() && !customs && !track.parties.iter().any(|x| x == p) {
                    track.parties.push(p.to_string());
                }
            }
            track.parties.sort();
        }
        let mut delta = Stats::default();
        let mut cleared = None;
        let mut ended = false;
        match tx.kind {
            EventKind::DeclarationFiled | EventKind::DeclarationAmended => {
                if let Some(v) = public(stx, "decl.dispatch_country") {
                    track.dispatch = v.to_string();
                }
                if let Some(v) = public(stx, "decl.office_of_entry") {
                    track.office = v.to_string();
                }
                if let Some(v) = public(stx, "decl.transport_mode").and_then(|v| v.parse().ok()) {
                    track.mode = v;
                }
                if let Some(v) = public(stx, "decl.hs_chapters") {
                    track.chapters = v
                        .split(',')
                        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_digit()))
                        .map(str::to_string)
                        .take(16)
                        .collect();
                }
                if tx.kind == EventKind::DeclarationAmended {
                    delta.amendments = 1;
                } else if track.filed_ms.is_none() {
                    track.filed_ms = Some(t);
                    delta.declarations = 1;
                    let goods = public(stx, "decl.goods_count")
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    let paths = tx
                        .public
                        .iter()
                        .map(|f| f.path.as_str())
                        .chain(tx.sealed.iter().map(|f| f.path.as_str()));
                    if crate::declaration::ics2_missing(paths, goods, track.mode).is_empty() {
                        delta.complete = 1;
                    }
                }
                if sealed.ddp_within.is_some() {
                    track.ddp = sealed.ddp_within;
                }
                if let Some(g) = sealed.co2_g {
                    if tx.kind == EventKind::DeclarationFiled {
                        delta.co2_shipments = 1;
                        delta.co2_g = g;
                    }
                }
            }
            EventKind::DeclarationInvalidated => {
                delta.invalidated = 1;
                ended = true;
            }
            EventKind::RequestForInformation => {
                delta.rfis = 1;
                track.rfi_ms = Some(t);
            }
            EventKind::InformationProvided => {
                if let Some(asked) = track.rfi_ms.take() {
                    delta.rfi_response.add(t.saturating_sub(asked) / 1000);
                }
            }
            EventKind::HighRiskScreening => delta.screenings = 1,
            EventKind::DoNotLoad => delta.do_not_load = 1,
            EventKind::Arrived => {
                track.arrived_ms.get_or_insert(t);
            }
            EventKind::Presented => {
                track.presented_ms.get_or_insert(t);
            }
            EventKind::InspectionOrdered if !track.inspected => {
                track.inspected = true;
                delta.inspected = 1;
            }
            EventKind::InspectionResult => {
                delta.inspection_results = 1;
                if let Some(h) = sealed.inspection_hit {
                    delta.hits_known = 1;
                    delta.hits = u64::from(h);
                }
            }
            EventKind::Held => {
                delta.holds = 1;
                let why = event::reason(tx).unwrap_or("UNSPECIFIED");
                delta.hold_reasons.insert(why.to_string(), 1);
            }
            EventKind::Rejected => {
                delta.rejections = 1;
                let why = event::reason(tx).unwrap_or("UNSPECIFIED");
                delta.rejection_reasons.insert(why.to_string(), 1);
                ended = true;
            }
            EventKind::Released if !track.released => {
                track.released = true;
                delta.released = 1;
                // DDP price accuracy is judged on what is released: the
                // assessment of the declaration as last filed or amended.
                if let Some(w) = track.ddp {
                    delta.ddp_assessed = 1;
                    delta.ddp_within = u64::from(w);
                }
                let since = |from: Option<u64>| from.map(|f| t.saturating_sub(f) / 1000);
                if let Some(s) = since(track.arrived_ms) {
                    delta.arrived_to_release.add(s);
                }
                if let Some(s) = since(track.presented_ms) {
                    delta.presented_to_release.add(s);
                }
                if let Some(s) = since(track.filed_ms) {
                    delta.filed_to_release.add(s);
                }
                cleared = Some(Clearance {
                    shipment: id.clone(),
                    dispatch: track.dispatch.clone(),
                    office: track.office.clone(),
                    chapter: track.chapters.first().cloned().unwrap_or_default(),
                    mode: track.mode,
                    released_ms: t,
                    from_arrival_s: since(track.arrived_ms),
                    from_filing_s: since(track.filed_ms),
                });
            }
            EventKind::Delivered => {
                delta.delivered = 1;
                ended = true;
            }
            _ => {}
        }
        if delta != Stats::default() {
            self.add(&track, t, &delta);
        }
        if ended {
            return cleared;
        }
        track.last_height = height;
        self.ages.insert((height, id.clone()));
        self.tracks.insert(id, track);
        while self.tracks.len() > MAX_TRACKED {
            let Some(oldest) = self.ages.pop_first() else {
                break;
            };
            self.tracks.remove(&oldest.1);
        }
        cleared
    }

    fn add(&mut self, track: &Track, t: u64, delta: &Stats) {
        for dim in Dim::ALL {
            for value in track.values(dim) {
                for period in Period::ALL {
                    let key = GroupKey {
                        dim,
                        value: value.clone(),
                        period,
                        start_ms: period.start_of(t),
                    };
                    merge(self.groups.entry(key).or_default(), delta);
                }
            }
        }
    }

    /// Rows matching `q`, in key order.
    pub fn rows<'a>(&'a self, q: &'a KpiQuery) -> impl Iterator<Item = (&'a GroupKey, &'a Stats)> {
        self.groups.iter().filter(move |(k, _)| {
            k.dim == q.dim
                && k.period == q.period
                && k.start_ms >= q.from_ms
                && (q.to_ms == 0 || k.start_ms < q.to_ms)
                && (q.value.is_empty() || k.value == q.value)
        })
    }

    /// The values seen for `dim` (all time).
    pub fn values(&self, dim: Dim) -> Vec<String> {
        self.groups
            .keys()
            .filter(|k| k.dim == dim && k.period == Period::Total)
            .map(|k| k.value.clone())
            .collect()
    }
}

fn merge(into: &mut Stats, d: &Stats) {
    into.declarations += d.declarations;
    into.complete += d.complete;
    into.amendments += d.amendments;
    into.invalidated += d.invalidated;
    into.released += d.released;
    into.delivered += d.delivered;
    into.inspected += d.inspected;
    into.inspection_results += d.inspection_results;
    into.hits_known += d.hits_known;
    into.hits += d.hits;
    into.holds += d.holds;
    into.do_not_load += d.do_not_load;
    into.screenings += d.screenings;
    into.rfis += d.rfis;
    into.rejections += d.rejections;
    for (k, n) in &d.hold_reasons {
        *into.hold_reasons.entry(k.clone()).or_insert(0) += n;
    }
    for (k, n) in &d.rejection_reasons {
        *into.rejection_reasons.entry(k.clone()).or_insert(0) += n;
    }
    into.ddp_assessed += d.ddp_assessed;
    into.ddp_within += d.ddp_within;
    into.co2_shipments += d.co2_shipments;
    into.co2_g = into.co2_g.saturating_add(d.co2_g);
    into.arrived_to_release.merge(&d.arrived_to_release);
    into.presented_to_release.merge(&d.presented_to_release);
    into.filed_to_release.merge(&d.filed_to_release);
    into.rfi_response.merge(&d.rfi_response);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockHeader;
    use crate::hash::{Bytes, Hash32};
    use crate::testkit::{self, T0};
    use crate::tx::PublicField;
    use EventKind as K;

    const H: u64 = 3_600_000;

    fn with(mut stx: SignedTransaction, fields: &[(&str, String)]) -> SignedTransaction {
        for (p, v) in fields {
            stx.tx.public.push(PublicField {
                path: p.to_string(),
                value: v.clone(),
                salt: Bytes([0; 32]),
            });
        }
        stx.tx.public.sort_by(|a, b| a.path.cmp(&b.path));
        stx
    }

    fn ev(kind: K, ship: &str, at: u64, extra: &[(&str, String)]) -> SignedTransaction {
        let mut f = vec![("event.time_ms", at.to_string())];
        f.extend(extra.iter().cloned());
        with(
            testkit::event(kind, ship, testkit::submitter_for(kind), at, T0),
            &f,
        )
    }

    fn filing(ship: &str, at: u64, from: &str, office: &str, mode: u8) -> SignedTransaction {
        ev(
            K::DeclarationFiled,
            ship,
            at,
            &[
                ("decl.dispatch_country", from.into()),
                ("decl.office_of_entry", office.into()),
                ("decl.transport_mode", mode.to_string()),
                ("decl.hs_chapters", "85".into()),
                ("decl.goods_count", "1".into()),
            ],
        )
    }

    fn block(height: u64, time: u64, txs: Vec<SignedTransaction>) -> Block {
        let results = txs
            .iter()
            .map(|t| TxResult {
                tx_id: t.id().unwrap(),
                status: None,
                outcome: Vec::new(),
            })
            .collect();
        Block {
            header: BlockHeader {
                chain_id: "customs-test".into(),
                height,
                prev_hash: Hash32::ZERO,
                tx_root: Hash32::ZERO,
                results_root: Hash32::ZERO,
                timestamp_ms: time,
                raft_term: 1,
                raft_index: height,
                proposer: "de-customs".into(),
                config_seq: 0,
                config_hash: Hash32::ZERO,
                tx_count: txs.len() as u32,
            },
            txs,
            results,
        }
    }

    /// Three shipments: two on PL>FR000690 by sea (released after 2 h and
    /// 6 h at the office, one inspected and found, one with an answered
    /// request for information), one on CN>DE004851 by air, held and
    /// rejected.
    fn history() -> Vec<Block> {
        let d0 = T0 - 10 * 24 * H;
        let a = "SHP-A";
        let b = "SHP-B";
        let c = "SHP-C";
        let txs = vec![
            filing(a, d0, "PL", "FR000690", 1),
            filing(b, d0 + H, "PL", "FR000690", 1),
            filing(c, d0 + 2 * H, "CN", "DE004851", 4),
            ev(K::AssessmentComplete, a, d0 + 3 * H, &[]),
            ev(
                K::RequestForInformation,
                b,
                d0 + 3 * H,
                &[("event.reason", "MISSING_INVOICE".into())],
            ),
            ev(K::InformationProvided, b, d0 + 5 * H, &[]),
            ev(K::AssessmentComplete, b, d0 + 6 * H, &[]),
            ev(K::Loaded, a, d0 + 7 * H, &[]),
            ev(K::Arrived, a, d0 + 48 * H, &[]),
            ev(K::Arrived, b, d0 + 49 * H, &[]),
            ev(K::Presented, a, d0 + 49 * H, &[]),
            ev(K::Presented, b, d0 + 50 * H, &[]),
            ev(K::InspectionOrdered, b, d0 + 51 * H, &[]),
            ev(K::InspectionResult, b, d0 + 54 * H, &[]),
            ev(K::Released, a, d0 + 50 * H, &[]),
            ev(K::Released, b, d0 + 55 * H, &[]),
            ev(
                K::Held,
                c,
                d0 + 30 * H,
                &[("event.reason", "SANCTIONS_CHECK".into())],
            ),
            ev(
                K::Rejected,
                c,
                d0 + 40 * H,
                &[("event.reason", "PROHIBITED_GOODS".into())],
            ),
        ];
        let mut blocks = vec![block(0, T0 - 20 * 24 * H, vec![])];
        for (i, chunk) in txs.chunks(4).enumerate() {
            blocks.push(block(i as u64 + 1, T0 + i as u64 * 1000, chunk.to_vec()));
        }
        blocks
    }

    fn fold(blocks: &[Block]) -> (KpiEngine, Vec<Clearance>) {
        let cfg = testkit::config();
        let mut e = KpiEngine::default();
        let mut cleared = Vec::new();
        for b in blocks {
            cleared.extend(
                e.apply_block(&cfg, b, |stx, _| Sealed {
                    inspection_hit: (stx.tx.kind == K::InspectionResult).then_some(true),
                    // Every filing was assessed against a quote; B's
                    // assessment departs from it.
                    ddp_within: (stx.tx.kind == K::DeclarationFiled)
                        .then_some(stx.tx.shipment_id != "SHP-B"),
                    ..Sealed::default()
                })
                .unwrap(),
            );
        }
        (e, cleared)
    }

    fn row(e: &KpiEngine, dim: Dim, value: &str) -> KpiRow {
        let q = KpiQuery {
            dim,
            period: Period::Total,
            from_ms: 0,
            to_ms: 0,
            value: value.into(),
        };
        let rows: Vec<_> = e.rows(&q).collect();
        assert_eq!(rows.len(), 1, "{dim:?} {value}");
        KpiRow::new(rows[0].0, rows[0].1, Visibility::ALL)
    }

    #[test]
    fn folds_a_history_into_corridor_kpis() {
        let (e, cleared) = fold(&history());
        assert_eq!(e.next_height(), 6);
        let all = row(&e, Dim::All, "all");
        assert_eq!(all.declarations, 3);
        assert_eq!(all.released, 2);
        assert_eq!(all.rfis, 1);
        let rfi = all.rfi_response.median_s.unwrap();
        assert!(rfi.abs_diff(7200) * 100 <= 7200 * 7, "{rfi}");
        assert_eq!(all.inspection_rate, Share { num: 1, den: 3 });
        assert_eq!(all.hit_rate, Some(Share { num: 1, den: 1 }));
        assert_eq!(all.holds, 1);
        assert_eq!(all.hold_reasons["SANCTIONS_CHECK"], 1);
        assert_eq!(all.rejection_rate, Share { num: 1, den: 3 });
        assert_eq!(all.rejection_reasons["PROHIBITED_GOODS"], 1);
        // DDP accuracy counts released shipments only (C was rejected).
        assert_eq!(all.ddp_accuracy, Some(Share { num: 1, den: 2 }));
        // The fixtures carry no sealed fields: nothing is ICS2-complete.
        assert_eq!(all.completeness, Share { num: 0, den: 3 });

        let sea = row(&e, Dim::Corridor, "PL>FR000690");
        assert_eq!(sea.declarations, 2);
        assert_eq!(sea.arrived_to_release.n, 2);
        let times = [2 * 3600, 6 * 3600];
        let median = sea.arrived_to_release.median_s.unwrap();
        assert!(median.abs_diff(times[0]) * 100 <= times[0] * 7, "{median}");
        let p90 = sea.arrived_to_release.p90_s.unwrap();
        assert!(p90.abs_diff(times[1]) * 100 <= times[1] * 7, "{p90}");
        assert_eq!(sea.filed_to_release.n, 2);
        let air = row(&e, Dim::Corridor, "CN>DE004851");
        assert_eq!((air.declarations, air.released, air.holds), (1, 0, 1));
        assert_eq!(row(&e, Dim::Mode, "sea").declarations, 2);
        assert_eq!(row(&e, Dim::Chapter, "85").declarations, 3);
        // Parties named on the filing, customs excluded.
        assert_eq!(row(&e, Dim::Party, "carrier").declarations, 3);
        assert!(e.values(Dim::Party).iter().all(|p| !p.ends_with("customs")));
        // Events land in the days they happened, not the block's.
        let day = KpiQuery {
            dim: Dim::All,
            period: Period::Day,
            from_ms: 0,
            to_ms: 0,
            value: String::new(),
        };
        let days: Vec<u64> = e.rows(&day).map(|(k, _)| k.start_ms).collect();
        assert!(days.len() >= 3, "{days:?}");
        assert!(days.iter().all(|d| *d < T0 - 5 * 24 * H));

        assert_eq!(cleared.len(), 2);
        assert_eq!(cleared[0].from_arrival_s, Some(2 * 3600));
        assert_eq!(cleared[1].from_arrival_s, Some(6 * 3600));
        assert_eq!(cleared[1].chapter, "85");
        // Ended shipments are no longer tracked; open ones are.
        assert_eq!(e.tracked(), 2);
    }

    #[test]
    fn visibility_hides_sealed_figures() {
        let (e, _) = fold(&history());
        let q = KpiQuery {
            dim: Dim::All,
            period: Period::Total,
            from_ms: 0,
            to_ms: 0,
            value: String::new(),
        };
        let (k, s) = e.rows(&q).next().unwrap();
        let cfg = testkit::config();
        let carrier = cfg.party("carrier").unwrap();
        let v = Visibility::of(&cfg, carrier, false);
        assert_eq!(v, Visibility::default());
        let r = KpiRow::new(k, s, v);
        assert_eq!((r.hit_rate, r.ddp_accuracy, r.co2), (None, None, None));
        assert_eq!(r.declarations, 3);
        // On its own row the carrier sees what it reads of its shipments.
        let own = Visibility::of(&cfg, carrier, true);
        assert!(own.transport && !own.commercial && !own.security);
        let customs = Visibility::of(&cfg, cfg.party("fr-customs").unwrap(), false);
        assert_eq!(customs, Visibility::ALL);
    }

    #[test]
    fn the_same_blocks_give_the_same_state() {
        let blocks = history();
        let (a, _) = fold(&blocks);
        let (b, _) = fold(&blocks);
        assert_eq!(a, b);
        let bytes = crate::codec::encode_large(&a).unwrap();
        let back: KpiEngine = crate::codec::decode_large(&bytes).unwrap();
        assert_eq!(back, a);
        // A block out of order is refused and changes nothing.
        let mut c = a.clone();
        assert_eq!(
            c.apply_block(&testkit::config(), &blocks[2], |_, _| Sealed::default()),
            Err(6)
        );
        assert_eq!(c, a);
    }

    #[test]
    fn quantiles_are_close() {
        let mut h = Hist::default();
        for v in 1..=1000u64 {
            h.add(v * 60);
        }
        let med = h.quantile(500).unwrap();
        let p90 = h.quantile(900).unwrap();
        assert!(med.abs_diff(30_000) * 100 <= 30_000 * 7, "{med}");
        assert!(p90.abs_diff(54_000) * 100 <= 54_000 * 7, "{p90}");
        assert_eq!(h.summary().mean_s, Some(30_030));
        let mut small = Hist::default();
        small.add(3);
        assert_eq!(small.quantile(500), Some(3));
        assert_eq!(Hist::default().quantile(500), None);
        for v in [0u64, 7, 8, 9, 1000, u64::MAX / 2] {
            let (lo, w) = bucket_range(bucket_of(v));
            assert!(lo <= v && v < lo + w, "{v}");
        }
    }

    #[test]
    fn periods_start_where_the_calendar_says() {
        // 2025-11-24 (T0 is 2025-11-24T15:20Z), a Monday.
        assert_eq!(Period::Day.label(Period::Day.start_of(T0)), "2025-11-24");
        assert_eq!(
            Period::Week.label(Period::Week.start_of(T0)),
            "week of 2025-11-24"
        );
        let sunday = T0 + 6 * 24 * H;
        assert_eq!(Period::Week.start_of(sunday), Period::Week.start_of(T0));
        assert_eq!(Period::Month.label(Period::Month.start_of(T0)), "2025-11");
        assert_eq!(Period::Month.start_of(T0), 1_761_955_200_000);
        assert_eq!(Period::Total.start_of(T0), 0);
    }

    #[test]
    fn old_day_groups_are_dropped() {
        let cfg = testkit::config();
        let mut e = KpiEngine::default();
        let old = T0 - 200 * 24 * H;
        e.apply_block(
            &cfg,
            &block(0, old, vec![filing("S1", old, "PL", "FR000690", 1)]),
            |_, _| Sealed::default(),
        )
        .unwrap();
        let days = |e: &KpiEngine| e.groups.keys().filter(|k| k.period == Period::Day).count();
        assert!(days(&e) > 0);
        e.apply_block(&cfg, &block(1, T0, vec![]), |_, _| Sealed::default())
            .unwrap();
        assert_eq!(days(&e), 0);
        assert_eq!(row(&e, Dim::All, "all").declarations, 1);
    }

    fn clearance(i: u64, office: &str, hours: u64) -> Clearance {
        Clearance {
            shipment: format!("S{i}"),
            dispatch: "PL".into(),
            office: office.into(),
            chapter: "85".into(),
            mode: 1,
            released_ms: T0 + i * H,
            from_arrival_s: Some(hours * 3600 + (i % 3) * 600),
            from_filing_s: None,
        }
    }

    #[test]
    fn predictions_rank_offices_and_beat_the_baseline() {
        let cs: Vec<Clearance> = (0..60)
            .map(|i| {
                if i % 2 == 0 {
                    clearance(i, "FR000690", 2)
                } else {
                    clearance(i, "BE000200", 20)
                }
            })
            .collect();
        let mut p = Predictor::default();
        cs.iter().for_each(|c| p.add(c));
        let offices = vec![
            "BE000200".to_string(),
            "FR000690".to_string(),
            "NL000396".to_string(),
        ];
        let ranked = p.rank("PL", "85", 1, &offices, MIN_EVIDENCE);
        assert_eq!(ranked[0].office, "FR000690");
        assert_eq!(ranked[0].level, 0);
        assert_eq!(ranked[0].evidence, 30);
        // An office with no history falls back to the whole network.
        let nl = ranked.iter().find(|r| r.office == "NL000396").unwrap();
        assert_eq!((nl.level, nl.evidence), (4, 60));
        // Another chapter falls back one level.
        assert_eq!(
            p.predict("PL", "FR000690", "09", 1, MIN_EVIDENCE)
                .unwrap()
                .level,
            1
        );
        let bt = backtest(&cs, MIN_EVIDENCE);
        assert_eq!((bt.trained, bt.tested), (30, 30));
        assert!(bt.mae_s * 5 < bt.baseline_mae_s, "{bt:?}");
        assert_eq!(bt.by_level[0], 30);
    }
}
