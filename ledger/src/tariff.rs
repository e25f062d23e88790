//! Duty and VAT tables and the fixed-point arithmetic of a landed-cost
//! quote. The tables are derived into `ledger/data/` from public sources
//! (see `ledger/data/README.md`) and compiled in; each has an edition and
//! a SHA-256 a chain config can pin.
//!
//! - Duty: the EU Common Customs Tariff third-country rates of 2020 on the
//!   2020 CN code list (a baseline, not current law). A rate is parsed into
//!   ad-valorem, specific (per mass, per item) and compound forms with MIN
//!   and MAX bounds; forms that need data a basket does not carry (volume
//!   and alcohol strength, agricultural components, entry prices, seasonal
//!   rates) are kept with the reason they cannot be quoted.
//! - VAT: each member state's standard and reduced rates with the date they
//!   took effect.
//!
//! Money is EUR cents, rates milli-percent (12.5 % = 12 500), masses grams;
//! every division rounds half up. No floats.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The duty table's text (tariff code TAB rate as published).
pub const TARIFF_TSV: &str = include_str!("../data/tariff-cet2020.tsv");
/// Edition of [`TARIFF_TSV`].
pub const TARIFF_EDITION: &str = "EU CCT 2020 third-country duty (CN 2020)";
/// The VAT table's text (state TAB effective-from TAB standard TAB reduced).
pub const VAT_TSV: &str = include_str!("../data/vat-rates.tsv");
/// Source of [`VAT_TSV`].
pub const VAT_EDITION: &str = "ibericode/vat-rates 2025-08-12";

/// SHA-256 of a table's text, hex.
pub fn table_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `a * b / d`, rounded half up (d > 0), saturating.
pub fn mul_div(a: u64, b: u64, d: u64) -> u64 {
    if d == 0 {
        return 0;
    }
    let n = u128::from(a) * u128::from(b) + u128::from(d) / 2;
    u64::try_from(n / u128::from(d)).unwrap_or(u64::MAX)
}

/// Parse a decimal like `12.5`, `1,024.00` or `0.36` into units of
/// `10^-scale`, rounding half up past `scale` digits.
pub fn parse_fixed(s: &str, scale: u32) -> Option<u64> {
    let s = s.trim().replace(',', "");
    if s.is_empty() {
        return None;
    }
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let pow = 10u64.checked_pow(scale)?;
    let mut v = if int.is_empty() {
        0
    } else {
        int.parse::<u64>().ok()?
    }
    .checked_mul(pow)?;
    let digits: Vec<u64> = frac.bytes().map(|b| u64::from(b - b'0')).collect();
    let mut place = pow;
    for (i, d) in digits.iter().enumerate() {
        if i < scale as usize {
            place /= 10;
            v = v.checked_add(d * place)?;
        } else {
            if i == scale as usize && *d >= 5 {
                v = v.checked_add(1)?;
            }
            break;
        }
    }
    Some(v)
}

/// One term of a duty rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Term {
    /// Percent of the customs value, in milli-percent.
    AdValorem(u64),
    /// EUR cents per `per_g` grams of mass (net, or gross when `gross`).
    PerMass {
        /// Cents.
        cents: u64,
        /// Grams the amount is per.
        per_g: u64,
        /// Per gross mass (otherwise net).
        gross: bool,
    },
    /// EUR cents per `per` items.
    PerItem {
        /// Cents.
        cents: u64,
        /// Items the amount is per.
        per: u64,
    },
}

/// What one goods line brings to the duty computation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Basis {
    /// Customs value, EUR cents.
    pub value_cents: u64,
    /// Net mass, grams.
    pub net_g: u64,
    /// Gross mass, grams (0 when unknown).
    pub gross_g: u64,
    /// Number of items.
    pub items: u64,
}

impl Term {
    fn assess(&self, b: &Basis) -> Result<u64, String> {
        Ok(match self {
            Term::AdValorem(m) => mul_div(b.value_cents, *m, 100_000),
            Term::PerMass {
                cents,
                per_g,
                gross,
            } => {
                let g = if *gross { b.gross_g } else { b.net_g };
                if g == 0 {
                    return Err(format!(
                        "the rate is per {} mass: give the line's {} mass",
                        if *gross { "gross" } else { "net" },
                        if *gross { "gross" } else { "net" }
                    ));
                }
                mul_div(*cents, g, *per_g)
            }
            Term::PerItem { cents, per } => {
                if b.items == 0 {
                    return Err("the rate is per item: give the line's quantity".into());
                }
                mul_div(*cents, b.items, *per)
            }
        })
    }
}

/// A parsed duty rate: the sum of `terms`, at least `min`, at most `max`
/// (each a sum of terms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duty {
    /// Summed terms.
    pub terms: Vec<Term>,
    /// Lower bound.
    pub min: Vec<Term>,
    /// Upper bound.
    pub max: Vec<Term>,
}

impl Duty {
    /// Duty in EUR cents on `b`.
    pub fn assess(&self, b: &Basis) -> Result<u64, String> {
        let sum = |ts: &[Term]| -> Result<u64, String> {
            ts.iter()
                .try_fold(0u64, |acc, t| Ok(acc.saturating_add(t.assess(b)?)))
        };
        let mut d = sum(&self.terms)?;
        if !self.min.is_empty() {
            d = d.max(sum(&self.min)?);
        }
        if !self.max.is_empty() {
            d = d.min(sum(&self.max)?);
        }
        Ok(d)
    }

    /// Is it a pure ad-valorem rate?
    pub fn ad_valorem(&self) -> Option<u64> {
        match (
            self.terms.as_slice(),
            self.min.is_empty() && self.max.is_empty(),
        ) {
            ([Term::AdValorem(m)], true) => Some(*m),
            _ => None,
        }
    }
}

/// Parse a published rate. `Err` says why it cannot be quoted.
pub fn parse_duty(expr: &str) -> Result<Duty, String> {
    let e = expr.trim();
    if e.is_empty() {
        return Err("no rate".into());
    }
    if e.contains('(') {
        return Err("seasonal rate (depends on the date of import)".into());
    }
    if e.to_ascii_lowercase().contains("entry price") {
        return Err("entry price system (depends on the import price)".into());
    }
    if e.split_whitespace()
        .any(|w| w == "EA" || w.starts_with("AD"))
    {
        return Err("agricultural component (EA/AD, set per composition)".into());
    }
    let (lhs, max) = match e.split_once(" MAX ") {
        Some((l, m)) => (l, Some(m)),
        None => (e, None),
    };
    let (base, min) = match lhs.split_once(" MIN ") {
        Some((b, m)) => (b, Some(m)),
        None => (lhs, None),
    };
    let terms = |s: &str| -> Result<Vec<Term>, String> { s.split(" + ").map(parse_term).collect() };
    Ok(Duty {
        terms: terms(base)?,
        min: min.map(terms).transpose()?.unwrap_or_default(),
        max: max.map(terms).transpose()?.unwrap_or_default(),
    })
}

fn parse_term(t: &str) -> Result<Term, String> {
    let t = t.trim();
    let bad = || format!("unsupported rate term {t:?}");
    if let Some(p) = t.strip_suffix('%') {
        return parse_fixed(p, 3).map(Term::AdValorem).ok_or_else(bad);
    }
    // "6.4 + 24.6 EUR/100 kg": a bare number is a percentage.
    if let Some(m) = parse_fixed(t, 3) {
        return Ok(Term::AdValorem(m));
    }
    let (amount, unit) = t.split_once("EUR").ok_or_else(bad)?;
    let cents = parse_fixed(amount, 2).ok_or_else(bad)?;
    let unit = unit.trim().strip_prefix('/').ok_or_else(bad)?;
    let parts: Vec<String> = unit
        .split('/')
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let needs = || {
        format!(
            "rate per {:?} needs a quantity a basket does not carry",
            unit.trim()
        )
    };
    let (head, rest) = parts.split_first().ok_or_else(bad)?;
    let gross = match rest {
        [] => false,
        [g] if g == "gross" => true,
        _ => return Err(needs()),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    let (n, what, extra) = match words.as_slice() {
        [n, what, extra @ ..] if parse_fixed(n, 0).is_some() => {
            (parse_fixed(n, 0).unwrap_or(1), *what, extra.len())
        }
        [what, extra @ ..] => (1, *what, extra.len()),
        [] => return Err(bad()),
    };
    if extra > 0 || n == 0 {
        return Err(needs());
    }
    match what {
        "kg" => Ok(Term::PerMass {
            cents,
            per_g: n * 1_000,
            gross,
        }),
        "tonne" => Ok(Term::PerMass {
            cents,
            per_g: n * 1_000_000,
            gross,
        }),
        "item" | "items" if !gross => Ok(Term::PerItem { cents, per: n }),
        _ => Err(needs()),
    }
}

/// The duty rate found for a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Table code the rate is published under.
    pub code: String,
    /// The rate as published.
    pub expr: String,
}

/// The duty table.
#[derive(Clone, Debug)]
pub struct Tariff {
    rates: BTreeMap<String, String>,
    /// Edition.
    pub edition: &'static str,
    /// SHA-256 of the table text.
    pub sha256: String,
}

impl Tariff {
    /// The compiled-in table.
    pub fn builtin() -> Tariff {
        let mut rates = BTreeMap::new();
        for line in TARIFF_TSV.lines().filter(|l| !l.starts_with('#')) {
            if let Some((code, rate)) = line.split_once('\t') {
                rates.insert(code.to_string(), rate.to_string());
            }
        }
        Tariff {
            rates,
            edition: TARIFF_EDITION,
            sha256: table_hash(TARIFF_TSV),
        }
    }

    /// The compiled-in table, parsed once per process.
    pub fn shared() -> &'static Tariff {
        static T: std::sync::OnceLock<Tariff> = std::sync::OnceLock::new();
        T.get_or_init(Tariff::builtin)
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// Is the table empty?
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// Every (code, rate) pair.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.rates.iter()
    }

    /// The rate of `code` (6, 8 or 10 digits): the exact code, else the CN8
    /// of a CN10, else, for a shorter code, the one rate every code under
    /// it shares. `Err` explains (unknown code, or codes under it that
    /// differ, with the rates).
    pub fn lookup(&self, code: &str) -> Result<Found, String> {
        let code: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '.')
            .collect();
        if !(code.len() >= 6 && code.len() <= 10 && code.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("{code:?} is not a 6-10 digit tariff code"));
        }
        if let Some(r) = self.rates.get(&code) {
            return Ok(Found {
                code,
                expr: r.clone(),
            });
        }
        if code.len() > 8 {
            if let Some(r) = self.rates.get(&code[..8]) {
                return Ok(Found {
                    code: code[..8].to_string(),
                    expr: r.clone(),
                });
            }
        }
        let under: Vec<(&String, &String)> = self
            .rates
            .range(code.clone()..)
            .take_while(|(k, _)| k.starts_with(&code))
            .collect();
        let mut distinct: Vec<&String> = under.iter().map(|(_, r)| *r).collect();
        distinct.sort();
        distinct.dedup();
        match distinct.as_slice() {
            [] => Err(format!("no duty rate for {code} in the {}", self.edition)),
            [one] => Ok(Found {
                // The one code under it, or the prefix all of them share.
                code: match under.as_slice() {
                    [(only, _)] => (*only).clone(),
                    _ => code,
                },
                expr: (*one).clone(),
            }),
            many => Err(format!(
                "the codes under {code} carry {} different rates ({}): give the 8-digit CN code",
                many.len(),
                many.iter()
                    .take(4)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
}

/// One member state's VAT rates from a date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VatPeriod {
    /// ISO 3166 alpha-2 (GR as EL is not used; the table uses EL for Greece).
    pub state: String,
    /// First day, `YYYY-MM-DD` (`0000-01-01`: since before the table).
    pub from: String,
    /// Standard rate, milli-percent.
    pub standard: u64,
    /// Reduced rates, milli-percent.
    pub reduced: Vec<u64>,
}

/// The VAT table.
#[derive(Clone, Debug)]
pub struct VatTable {
    periods: Vec<VatPeriod>,
    /// Source.
    pub edition: &'static str,
    /// SHA-256 of the table text.
    pub sha256: String,
}

impl VatTable {
    /// The compiled-in table.
    pub fn builtin() -> VatTable {
        let mut periods = Vec::new();
        for line in VAT_TSV.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split('\t').collect();
            if let [state, from, std, reduced] = f.as_slice() {
                if let Some(standard) = parse_fixed(std, 3) {
                    periods.push(VatPeriod {
                        state: (*state).to_string(),
                        from: (*from).to_string(),
                        standard,
                        reduced: reduced
                            .split(',')
                            .filter_map(|r| parse_fixed(r, 3))
                            .collect(),
                    });
                }
            }
        }
        VatTable {
            periods,
            edition: VAT_EDITION,
            sha256: table_hash(VAT_TSV),
        }
    }

    /// The compiled-in table, parsed once per process.
    pub fn shared() -> &'static VatTable {
        static T: std::sync::OnceLock<VatTable> = std::sync::OnceLock::new();
        T.get_or_init(VatTable::builtin)
    }

    /// The rates of `state` in force on `date` (`YYYY-MM-DD`).
    pub fn at(&self, state: &str, date: &str) -> Result<&VatPeriod, String> {
        let state = if state == "GR" { "EL" } else { state };
        self.periods
            .iter()
            .filter(|p| p.state == state && p.from.as_str() <= date)
            .max_by(|a, b| a.from.cmp(&b.from))
            .ok_or_else(|| format!("no VAT rates for {state:?} on {date}"))
    }
}

/// The duty and VAT tables a chain pins: every node that quotes or assesses
/// must run these exact tables (changed by governance, `PinTables`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePins {
    /// Edition of the duty table.
    pub tariff_edition: String,
    /// SHA-256 of the duty table's text, hex.
    pub tariff_sha256: String,
    /// Edition of the VAT table.
    pub vat_edition: String,
    /// SHA-256 of the VAT table's text, hex.
    pub vat_sha256: String,
}

impl TablePins {
    /// The tables compiled into this build.
    pub fn builtin() -> TablePins {
        TablePins {
            tariff_edition: TARIFF_EDITION.into(),
            tariff_sha256: table_hash(TARIFF_TSV),
            vat_edition: VAT_EDITION.into(),
            vat_sha256: table_hash(VAT_TSV),
        }
    }

    /// Why the pins are not acceptable, if they are not.
    pub fn check(&self) -> Result<(), String> {
        let hex64 = |s: &str| {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        if !hex64(&self.tariff_sha256) || !hex64(&self.vat_sha256) {
            return Err("table hashes must be 64 lowercase hex digits".into());
        }
        if self.tariff_edition.is_empty() || self.vat_edition.is_empty() {
            return Err("table editions must be named".into());
        }
        Ok(())
    }
}

/// Most monthly rate tables a chain config keeps (older ones drop out).
pub const MAX_RATE_TABLES: usize = 24;

/// Customs exchange rates for one month, published on the ledger by
/// governance (`PublishRates`): units of each currency per EUR, in
/// millionths, sorted by currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateTable {
    /// `YYYY-MM`.
    pub month: String,
    /// Who published the rates (e.g. "ECB reference rates of 2026-11-27").
    pub source: String,
    /// (ISO 4217 currency, millionths of a unit per EUR), sorted.
    pub per_eur: Vec<(String, u64)>,
}

impl RateTable {
    /// Millionths of `currency` per EUR (EUR itself is 1).
    pub fn micro_per_eur(&self, currency: &str) -> Option<u64> {
        if currency == "EUR" {
            return Some(1_000_000);
        }
        self.per_eur
            .binary_search_by(|(c, _)| c.as_str().cmp(currency))
            .ok()
            .and_then(|i| self.per_eur.get(i))
            .map(|(_, r)| *r)
    }

    /// `minor` units of `currency` in EUR cents, rounded half up.
    pub fn to_eur_cents(&self, minor: u64, currency: &str) -> Option<u64> {
        let micro = self.micro_per_eur(currency)?;
        Some(match crate::quote::minor_exponent(currency) {
            0 => mul_div(minor, 100_000_000, micro),
            1 => mul_div(minor, 10_000_000, micro),
            2 => mul_div(minor, 1_000_000, micro),
            _ => mul_div(minor, 100_000, micro),
        })
    }

    /// Why the table is not acceptable, if it is not.
    pub fn check(&self) -> Result<(), String> {
        let m = self.month.as_bytes();
        let month_ok = m.len() == 7
            && m[4] == b'-'
            && m[..4].iter().chain(&m[5..]).all(u8::is_ascii_digit)
            && matches!(self.month.get(5..), Some(mm) if ("01"..="12").contains(&mm));
        if !month_ok {
            return Err(format!("month {:?} is not YYYY-MM", self.month));
        }
        if self.source.is_empty() || self.source.len() > 200 {
            return Err("source must be 1-200 bytes".into());
        }
        if self.per_eur.is_empty() || self.per_eur.len() > 200 {
            return Err("1 to 200 currencies".into());
        }
        for w in self.per_eur.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err("currencies must be sorted and unique".into());
            }
        }
        for (c, r) in &self.per_eur {
            crate::validate::formats::validate_currency(c).map_err(|e| e.to_string())?;
            if c == "EUR" || *r == 0 {
                return Err(format!("bad rate for {c}"));
            }
        }
        Ok(())
    }
}

/// The table in force in `month` (`YYYY-MM`): that month's, else the
/// newest before it.
pub fn rates_for<'a>(tables: &'a [RateTable], month: &str) -> Option<&'a RateTable> {
    tables
        .iter()
        .filter(|t| t.month.as_str() <= month)
        .max_by(|a, b| a.month.cmp(&b.month))
}

/// `YYYY-MM` of a time in ms since the Unix epoch (UTC).
pub fn month_of(ms: u64) -> String {
    date_of(ms).get(..7).unwrap_or_default().to_string()
}

/// `YYYY-MM-DD` of a time in ms since the Unix epoch (UTC, proleptic
/// Gregorian; integer arithmetic only).
pub fn date_of(ms: u64) -> String {
    let days = i64::try_from(ms / 86_400_000).unwrap_or(i64::MAX / 2);
    // Days to civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let day = doy - (153 * mp + 2) / 5 + 1;
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_rate_tables() {
        assert_eq!(month_of(0), "1970-01");
        assert_eq!(month_of(1_764_000_000_000), "2025-11");
        assert_eq!(month_of(1_798_761_599_999), "2026-12");
        assert_eq!(month_of(1_798_761_600_000), "2027-01");
        assert_eq!(month_of(951_782_400_000), "2000-02");
        assert_eq!(date_of(951_782_400_000), "2000-02-29");
        assert_eq!(date_of(1_798_761_599_999), "2026-12-31");
        assert_eq!(date_of(0), "1970-01-01");
        let t = |m: &str| RateTable {
            month: m.into(),
            source: "test".into(),
            per_eur: vec![("GBP".into(), 860_000), ("USD".into(), 1_081_200)],
        };
        let tables = vec![t("2026-10"), t("2026-12")];
        assert_eq!(
            rates_for(&tables, "2026-11").map(|t| t.month.as_str()),
            Some("2026-10")
        );
        assert_eq!(
            rates_for(&tables, "2027-03").map(|t| t.month.as_str()),
            Some("2026-12")
        );
        assert!(rates_for(&tables, "2026-09").is_none());
        assert_eq!(t("2026-12").to_eur_cents(129_900, "USD"), Some(120_144));
        assert_eq!(t("2026-12").to_eur_cents(500, "EUR"), Some(500));
        assert_eq!(t("2026-12").to_eur_cents(1, "CHF"), None);
        t("2026-12").check().unwrap();
        assert!(t("2026-13").check().is_err());
        let mut unsorted = t("2026-12");
        unsorted.per_eur.reverse();
        assert!(unsorted.check().is_err());
    }

    #[test]
    fn fixed_point_parsing_rounds_half_up() {
        assert_eq!(parse_fixed("12.0", 3), Some(12_000));
        assert_eq!(parse_fixed("19.6", 3), Some(19_600));
        assert_eq!(parse_fixed("1,024.00", 2), Some(102_400));
        assert_eq!(parse_fixed("0.005", 2), Some(1));
        assert_eq!(parse_fixed("0.004", 2), Some(0));
        assert_eq!(parse_fixed("x", 2), None);
        assert_eq!(parse_fixed("", 2), None);
        assert_eq!(mul_div(1_250, 12_000, 100_000), 150);
        assert_eq!(mul_div(5, 1, 2), 3);
    }

    #[test]
    fn duty_forms() {
        let b = Basis {
            value_cents: 100_000,
            net_g: 250_000,
            gross_g: 260_000,
            items: 20,
        };
        let d = |e: &str| parse_duty(e).and_then(|d| d.assess(&b));
        assert_eq!(d("12.0%"), Ok(12_000));
        // 10.20 % of EUR 1000 + 93.10 EUR per 100 kg of 250 kg.
        assert_eq!(d("10.20% + 93.10 EUR / 100 kg"), Ok(10_200 + 23_275));
        assert_eq!(d("114.00 EUR / tonne"), Ok(2_850));
        assert_eq!(d("1,024.00 EUR / tonne"), Ok(25_600));
        assert_eq!(d("52.00 EUR / 1,000 items"), Ok(104));
        // MIN and MAX bounds.
        assert_eq!(
            d("4.50% MIN 0.30 EUR / item MAX 0.80 EUR / item"),
            Ok(1_600)
        );
        assert_eq!(
            d("18.40% MIN 22.00 EUR / 100 kg MAX 24.00 EUR / 100 kg"),
            Ok(6_000)
        );
        assert_eq!(
            d("6.20% + 27.10 EUR / 100 kg MAX 17.90%"),
            Ok(6_200 + 6_775)
        );
        assert_eq!(d("3.80% MIN 0.60 EUR / 100 kg / gross"), Ok(3_800));
        assert_eq!(d("6.4 + 24.6 EUR/100 kg"), Ok(6_400 + 6_150));
        // What cannot be quoted says why.
        for (e, why) in [
            ("32.00 EUR / hl", "quantity"),
            ("9.00% + EA MAX 18.70% + ADSZ", "agricultural"),
            ("Entry Price", "entry price"),
            (
                "15.00% (01 JAN-14 FEB, 16 JUN-31 DEC), 0.00% (15 FEB-15 JUN)",
                "seasonal",
            ),
            (
                "1.19 EUR / kg / lactic matter + 27.50 EUR / 100 kg",
                "quantity",
            ),
        ] {
            let err = parse_duty(e).unwrap_err();
            assert!(err.contains(why), "{e}: {err}");
        }
        let no_mass = Basis {
            value_cents: 100,
            ..Basis::default()
        };
        assert!(parse_duty("41.20 EUR / 100 kg")
            .unwrap()
            .assess(&no_mass)
            .unwrap_err()
            .contains("net mass"));
    }

    /// Every rate of the table either parses or names its reason; the
    /// share that parses is reported.
    #[test]
    fn the_table_parses() {
        let t = Tariff::builtin();
        assert!(t.len() > 11_000, "{}", t.len());
        let mut unquotable = BTreeMap::<String, usize>::new();
        for (_, e) in t.iter() {
            if let Err(why) = parse_duty(e) {
                *unquotable.entry(why).or_default() += 1;
            }
        }
        let bad: usize = unquotable.values().sum();
        println!(
            "{} of {} rates parse; unquotable: {unquotable:?}",
            t.len() - bad,
            t.len()
        );
        assert!(bad * 100 < t.len() * 6, "{unquotable:?}");
        assert!(
            unquotable.keys().all(|k| !k.starts_with("unsupported")),
            "{unquotable:?}"
        );
    }

    #[test]
    fn lookups() {
        let t = Tariff::builtin();
        assert_eq!(t.lookup("61091000").unwrap().expr, "12.0%");
        assert_eq!(t.lookup("6109100010").unwrap().code, "61091000");
        assert_eq!(t.lookup("847130").unwrap().expr, "0.0%");
        assert_eq!(t.lookup("610990").unwrap().expr, "12.0%");
        assert!(t.lookup("611011").unwrap_err().contains("different rates"));
        assert!(t.lookup("999999").unwrap_err().contains("no duty rate"));
        assert!(t.lookup("12ab").is_err());
        let v = VatTable::builtin();
        assert_eq!(v.at("DE", "2026-12-01").unwrap().standard, 19_000);
        assert_eq!(v.at("DE", "2020-08-01").unwrap().standard, 16_000);
        assert_eq!(v.at("FR", "2026-12-01").unwrap().standard, 20_000);
        assert!(v.at("US", "2026-12-01").is_err());
    }
}
