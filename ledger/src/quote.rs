//! Landed-cost quotes: what a buyer in the EU pays for a basket imported
//! from outside it, line by line, with every rate named, in fixed point.
//!
//! The rules (Council Regulation 1186/2009 art. 23-24 for the duty relief,
//! Directive 2006/112/EC as amended by 2017/2455 for IOSS):
//! - Values are converted to EUR with the rates given (the customs rates in
//!   force at the date), never fetched: cents = minor units x 10^(2 - exp)
//!   / (units per EUR), rounded half up.
//! - Intrinsic value (goods only, without transport and insurance) up to
//!   EUR 150 and no excise goods (HS chapters 22 and 24): IOSS applies. No
//!   customs duty; VAT at the destination's standard rate on the price
//!   including transport and insurance, collected at checkout.
//! - Otherwise the customs value of each line is its value plus its share
//!   (by value) of transport and insurance to the EU border; duty is the
//!   tariff rate on it; import VAT is the destination's standard rate on
//!   customs value plus duty.
//! - A line whose rate cannot be applied (unknown code, a rate needing
//!   quantities the basket lacks) is reported with the reason and leaves
//!   the quote incomplete rather than guessed.
//! - Restricted and sanctioned goods are flagged from the chain's risk
//!   policy (the same lists customs validators apply).

use crate::hash::{tagged_hash, Hash32};
use crate::tariff::{mul_div, parse_duty, parse_fixed, Basis, Tariff, VatTable};
use crate::validate::risk::RiskPolicy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Domain tag of quote ids.
const QUOTE_TAG: &[u8] = b"customs-ledger/v1/quote\0";
/// The low-value consignment threshold, EUR cents.
pub const IOSS_THRESHOLD_EUR_CENTS: u64 = 15_000;

/// A basket to quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Basket {
    /// Country of origin / dispatch (ISO 3166 alpha-2).
    pub origin: String,
    /// Member state of destination.
    pub destination: String,
    /// Date whose rates apply, `YYYY-MM-DD`.
    pub date: String,
    /// ISO 4217 currency of every amount in the basket.
    pub currency: String,
    /// Transport cost to the destination, minor units.
    #[serde(default)]
    pub shipping_minor: u64,
    /// Insurance cost, minor units.
    #[serde(default)]
    pub insurance_minor: u64,
    /// Goods lines.
    pub lines: Vec<BasketLine>,
}

/// One goods line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasketLine {
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Tariff code (HS6, CN8 or TARIC10).
    pub code: String,
    /// Number of items.
    #[serde(default)]
    pub quantity: u64,
    /// Line value (all items), minor units.
    pub value_minor: u64,
    /// Net mass, grams.
    #[serde(default)]
    pub net_mass_g: u64,
    /// Gross mass, grams.
    #[serde(default)]
    pub gross_mass_g: u64,
}

/// Exchange rates: units of each currency per EUR, as decimal strings
/// (e.g. `"USD": "1.0812"`), with their date and source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Date the rates are for.
    pub date: String,
    /// Who published them.
    pub source: String,
    /// Units per EUR.
    pub per_eur: BTreeMap<String, String>,
}

/// Decimal places of a currency's minor unit (ISO 4217).
pub fn minor_exponent(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "PYG" | "UGX" | "XAF" | "XOF" => 0,
        "KWD" | "BHD" | "JOD" | "OMR" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

impl Rates {
    /// The rates of a table published on the ledger.
    pub fn from_table(t: &crate::tariff::RateTable) -> Rates {
        Rates {
            date: t.month.clone(),
            source: format!("{} (published on the ledger for {})", t.source, t.month),
            per_eur: t
                .per_eur
                .iter()
                .map(|(c, m)| (c.clone(), micro_decimal(*m)))
                .collect(),
        }
    }

    /// Millionths of a unit of `currency` per EUR.
    pub fn micro_per_eur(&self, currency: &str) -> Result<u64, String> {
        if currency == "EUR" {
            return Ok(1_000_000);
        }
        let r = self
            .per_eur
            .get(currency)
            .ok_or_else(|| format!("no exchange rate for {currency} on {}", self.date))?;
        match parse_fixed(r, 6) {
            Some(v) if v > 0 => Ok(v),
            _ => Err(format!(
                "exchange rate for {currency} is not a positive decimal: {r:?}"
            )),
        }
    }

    /// `minor` units of `currency` in EUR cents.
    pub fn to_eur_cents(&self, minor: u64, currency: &str) -> Result<u64, String> {
        let micro = self.micro_per_eur(currency)?;
        Ok(match minor_exponent(currency) {
            0 => mul_div(minor, 100_000_000, micro),
            1 => mul_div(minor, 10_000_000, micro),
            2 => mul_div(minor, 1_000_000, micro),
            _ => mul_div(minor, 100_000, micro),
        })
    }
}

/// One quoted line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    /// The code asked for.
    pub code: String,
    /// Line value, EUR cents.
    pub value_cents: u64,
    /// Its share of transport and insurance, EUR cents.
    pub transport_cents: u64,
    /// Customs value, EUR cents.
    pub customs_value_cents: u64,
    /// Tariff code the rate is published under, and the rate.
    pub duty_rate: Option<(String, String)>,
    /// Duty, EUR cents (`None`: cannot be quoted, see `note`).
    pub duty_cents: Option<u64>,
    /// VAT, EUR cents.
    pub vat_cents: Option<u64>,
    /// Restricted or sanctioned-goods flags.
    pub flags: Vec<String>,
    /// Why the line is not (fully) quoted, or how.
    pub note: Option<String>,
}

/// A quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// `SHA-256(tag || basket || quote body)`: what a declaration names.
    pub id: Hash32,
    /// Lines, in basket order.
    pub lines: Vec<QuoteLine>,
    /// Goods value, EUR cents.
    pub intrinsic_cents: u64,
    /// Transport and insurance, EUR cents.
    pub transport_cents: u64,
    /// IOSS applies (and why or why not).
    pub ioss: bool,
    /// The reason for `ioss`.
    pub ioss_reason: String,
    /// Destination VAT rate, milli-percent.
    pub vat_rate_milli: u64,
    /// Total duty, EUR cents.
    pub duty_cents: u64,
    /// Total VAT, EUR cents.
    pub vat_cents: u64,
    /// Goods + transport + insurance + duty + VAT, EUR cents.
    pub landed_cents: u64,
    /// Every line quoted (otherwise the totals leave lines out).
    pub complete: bool,
    /// Rates and their sources.
    pub sources: Vec<String>,
}

/// Restricted / sanctioned flags of a line from the chain's risk policy.
fn flags(policy: &RiskPolicy, origin: &str, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = policy
        .restricted_hs_prefixes
        .iter()
        .find(|p| code.starts_with(p.as_str()))
    {
        out.push(format!("RESTRICTED_GOODS: HS {p} needs a licence"));
    }
    if policy.sanctioned_countries.iter().any(|c| c == origin) {
        out.push(format!(
            "SANCTIONED_COUNTRY: imports from {origin} are embargoed"
        ));
    }
    if let Some(s) = policy
        .sectoral_sanctions
        .iter()
        .find(|s| s.country == origin && code.starts_with(s.hs_prefix.as_str()))
    {
        out.push(format!(
            "SANCTIONED_GOODS: HS {} from {origin} is banned",
            s.hs_prefix
        ));
    }
    out
}

/// Quote `basket` with `rates`, the duty and VAT tables and the chain's
/// risk policy. `Err` for a basket that cannot be quoted at all (no lines,
/// an unknown currency or destination).
pub fn quote(
    basket: &Basket,
    rates: &Rates,
    tariff: &Tariff,
    vat: &VatTable,
    policy: &RiskPolicy,
) -> Result<Quote, String> {
    let mut q = compute(basket, rates, tariff, vat, policy, true)?;
    let body = crate::codec::encode(&(basket, rates, &q)).map_err(|e| e.to_string())?;
    q.id = tagged_hash(QUOTE_TAG, &[&body]);
    Ok(q)
}

/// Duty and VAT as customs assess a declaration, and how they compare with
/// the checkout quote it names. Committed (sealed `Commercial`) in the
/// declaration's outcome; the share of declarations within tolerance is
/// the DDP price accuracy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// Duty, EUR cents.
    pub duty_cents: u64,
    /// VAT, EUR cents.
    pub vat_cents: u64,
    /// IOSS applied (consignment up to EUR 150).
    pub ioss: bool,
    /// Month of the exchange rates used (empty: all in EUR).
    pub rates_month: String,
    /// Duty plus VAT the quote named, EUR cents.
    pub quoted_cents: Option<u64>,
    /// Assessed minus quoted, EUR cents.
    pub difference_cents: i64,
    /// Within [`within_tolerance`] of the quote.
    pub within_tolerance: Option<bool>,
}

/// Is an assessed amount within tolerance of the quoted one: at most EUR 1
/// or 1 % of the assessed amount apart, whichever is larger.
pub fn within_tolerance(assessed: u64, quoted: u64) -> bool {
    assessed.abs_diff(quoted) <= (assessed / 100).max(100)
}

/// Assess a declaration made on `date` (`YYYY-MM-DD`): its goods as a
/// basket to the member state of its place of unloading, in their one
/// currency, with `rates` (the customs rates in force; `None` for EUR
/// only). `Err` names why it cannot be assessed (a stable code and why).
pub fn assess_declaration(
    d: &crate::declaration::Declaration,
    date: &str,
    rates: Option<&crate::tariff::RateTable>,
    tariff: &Tariff,
    vat: &VatTable,
) -> Result<Assessment, (&'static str, String)> {
    let dest = d
        .place_of_unloading
        .get(..2)
        .unwrap_or_default()
        .to_string();
    let currency = d
        .goods
        .first()
        .map(|g| g.currency.clone())
        .unwrap_or_default();
    if d.goods.iter().any(|g| g.currency != currency) {
        return Err((
            "ASSESS_MIXED_CURRENCY",
            "goods in several currencies".into(),
        ));
    }
    let rates = match rates {
        // Only the declaration's currency is needed.
        Some(t) => Rates {
            date: t.month.clone(),
            source: String::new(),
            per_eur: t
                .micro_per_eur(&currency)
                .filter(|_| currency != "EUR")
                .map(|m| (currency.clone(), micro_decimal(m)))
                .into_iter()
                .collect(),
        },
        None if currency == "EUR" => Rates {
            date: String::new(),
            source: "none needed (EUR)".into(),
            per_eur: BTreeMap::new(),
        },
        None => {
            return Err((
                "ASSESS_NO_RATE",
                format!("no exchange rates for {currency}"),
            ))
        }
    };
    let basket = Basket {
        origin: d
            .goods
            .first()
            .map(|g| g.origin.clone())
            .unwrap_or_default(),
        destination: dest,
        date: date.to_string(),
        currency,
        shipping_minor: 0,
        insurance_minor: 0,
        lines: d
            .goods
            .iter()
            .map(|g| BasketLine {
                description: String::new(),
                code: g.hs_code.clone(),
                quantity: u64::from(g.packages),
                value_minor: g.value_minor,
                net_mass_g: g.gross_mass_g,
                gross_mass_g: g.gross_mass_g,
            })
            .collect(),
    };
    let q = compute(&basket, &rates, tariff, vat, &RiskPolicy::default(), false)
        .map_err(|e| ("ASSESS_FAILED", e))?;
    if !q.complete {
        let why = q
            .lines
            .iter()
            .find_map(|l| l.note.clone().filter(|_| l.duty_cents.is_none()))
            .unwrap_or_default();
        return Err(("ASSESS_INCOMPLETE", why));
    }
    let assessed = q.duty_cents.saturating_add(q.vat_cents);
    let quoted = d.quote.as_ref().map(|r| r.taxes_cents);
    Ok(Assessment {
        duty_cents: q.duty_cents,
        vat_cents: q.vat_cents,
        ioss: q.ioss,
        rates_month: rates.date,
        quoted_cents: quoted,
        difference_cents: quoted.map_or(0, |qc| {
            i64::try_from(assessed).unwrap_or(i64::MAX) - i64::try_from(qc).unwrap_or(i64::MAX)
        }),
        within_tolerance: quoted.map(|qc| within_tolerance(assessed, qc)),
    })
}

/// The quote without its id; `sources` names every rate (skipped when only
/// the figures are wanted).
fn compute(
    basket: &Basket,
    rates: &Rates,
    tariff: &Tariff,
    vat: &VatTable,
    policy: &RiskPolicy,
    sources: bool,
) -> Result<Quote, String> {
    if basket.lines.is_empty() || basket.lines.len() > 1_000 {
        return Err("a basket has 1 to 1000 lines".into());
    }
    let cur = basket.currency.as_str();
    let eur = |minor: u64| rates.to_eur_cents(minor, cur);
    let vat_period = vat.at(&basket.destination, &basket.date)?;
    let values: Vec<u64> = basket
        .lines
        .iter()
        .map(|l| eur(l.value_minor))
        .collect::<Result<_, _>>()?;
    let intrinsic: u64 = values.iter().sum();
    let transport = eur(basket.shipping_minor)?.saturating_add(eur(basket.insurance_minor)?);
    // Transport by value share, the last line taking the rounding rest.
    let mut shares = Vec::with_capacity(values.len());
    let mut given = 0u64;
    for (i, v) in values.iter().enumerate() {
        let s = if i + 1 == values.len() {
            transport - given
        } else if intrinsic == 0 {
            0
        } else {
            mul_div(transport, *v, intrinsic).min(transport - given)
        };
        given += s;
        shares.push(s);
    }
    let excise = basket
        .lines
        .iter()
        .any(|l| l.code.starts_with("22") || l.code.starts_with("24"));
    let (ioss, ioss_reason) = if excise {
        (
            false,
            "excise goods (HS 22, 24) are outside IOSS".to_string(),
        )
    } else if intrinsic <= IOSS_THRESHOLD_EUR_CENTS {
        (
            true,
            format!(
                "intrinsic value EUR {} <= EUR 150: no duty, VAT at {} collected at checkout (IOSS)",
                euros(intrinsic),
                basket.destination
            ),
        )
    } else {
        (
            false,
            format!(
                "intrinsic value EUR {} > EUR 150: duty and import VAT at {}",
                euros(intrinsic),
                basket.destination
            ),
        )
    };
    let rate = vat_period.standard;
    let mut lines = Vec::new();
    let mut complete = true;
    for ((l, v), share) in basket.lines.iter().zip(&values).zip(&shares) {
        let customs_value = v + share;
        let mut line = QuoteLine {
            code: l.code.clone(),
            value_cents: *v,
            transport_cents: *share,
            customs_value_cents: customs_value,
            duty_rate: None,
            duty_cents: None,
            vat_cents: None,
            flags: flags(policy, &basket.origin, &l.code),
            note: None,
        };
        let found = tariff.lookup(&l.code);
        if let Ok(f) = &found {
            line.duty_rate = Some((f.code.clone(), f.expr.clone()));
        }
        let duty = if ioss {
            line.note = Some("duty relief (IOSS, consignment up to EUR 150)".into());
            Ok(0)
        } else {
            found.and_then(|f| {
                parse_duty(&f.expr)?.assess(&Basis {
                    value_cents: customs_value,
                    net_g: l.net_mass_g,
                    gross_g: l.gross_mass_g,
                    items: l.quantity,
                })
            })
        };
        match duty {
            Ok(d) => {
                line.duty_cents = Some(d);
                line.vat_cents = Some(mul_div(customs_value + d, rate, 100_000));
            }
            Err(why) => {
                complete = false;
                line.note = Some(format!("cannot quote: {why}"));
            }
        }
        lines.push(line);
    }
    let duty: u64 = lines.iter().filter_map(|l| l.duty_cents).sum();
    let vat_total: u64 = lines.iter().filter_map(|l| l.vat_cents).sum();
    let mut sources = if !sources {
        Vec::new()
    } else {
        vec![
            format!(
                "exchange rates of {} ({}): {}",
                rates.date,
                rates.source,
                if cur == "EUR" {
                    "EUR, no conversion".to_string()
                } else {
                    format!(
                        "1 EUR = {} {cur}",
                        rates.per_eur.get(cur).cloned().unwrap_or_default()
                    )
                }
            ),
            format!("duty: {} (table sha256 {})", tariff.edition, tariff.sha256),
            format!(
                "VAT: {} standard {}% from {} ({}, table sha256 {})",
                basket.destination,
                percent(rate),
                vat_period.from,
                vat.edition,
                vat.sha256
            ),
        ]
    };
    sources.sort();
    Ok(Quote {
        id: Hash32::ZERO,
        lines,
        intrinsic_cents: intrinsic,
        transport_cents: transport,
        ioss,
        ioss_reason,
        vat_rate_milli: rate,
        duty_cents: duty,
        vat_cents: vat_total,
        landed_cents: intrinsic + transport + duty + vat_total,
        complete,
        sources,
    })
}

/// Millionths as a decimal (`1081200` as `1.081200`), the form [`Rates`] holds.
fn micro_decimal(m: u64) -> String {
    format!("{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// `12345` cents as `123.45`.
pub fn euros(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// `19600` milli-percent as `19.6`.
pub fn percent(milli: u64) -> String {
    let frac = format!("{:03}", milli % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", milli / 1000)
    } else {
        format!("{}.{frac}", milli / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Rates {
        // Illustrative rates for the worked examples (units per EUR).
        Rates {
            date: "2026-11-02".into(),
            source: "worked example".into(),
            per_eur: BTreeMap::from([
                ("USD".to_string(), "1.0812".to_string()),
                ("GBP".to_string(), "0.8600".to_string()),
                ("JPY".to_string(), "160.25".to_string()),
            ]),
        }
    }

    fn line(code: &str, value_minor: u64, net_mass_g: u64, quantity: u64) -> BasketLine {
        BasketLine {
            description: String::new(),
            code: code.into(),
            quantity,
            value_minor,
            net_mass_g,
            gross_mass_g: 0,
        }
    }

    fn basket(
        origin: &str,
        dest: &str,
        cur: &str,
        ship: u64,
        ins: u64,
        lines: Vec<BasketLine>,
    ) -> Basket {
        Basket {
            origin: origin.into(),
            destination: dest.into(),
            date: "2026-12-01".into(),
            currency: cur.into(),
            shipping_minor: ship,
            insurance_minor: ins,
            lines,
        }
    }

    fn q(b: &Basket) -> Quote {
        quote(
            b,
            &rates(),
            &Tariff::builtin(),
            &VatTable::builtin(),
            &RiskPolicy::default(),
        )
        .unwrap()
    }

    #[test]
    fn conversions() {
        let r = rates();
        assert_eq!(r.to_eur_cents(129_900, "USD"), Ok(120_144));
        assert_eq!(r.to_eur_cents(12_800, "GBP"), Ok(14_884));
        assert_eq!(r.to_eur_cents(16_025, "JPY"), Ok(10_000));
        assert_eq!(r.to_eur_cents(500, "EUR"), Ok(500));
        assert!(r.to_eur_cents(1, "CHF").is_err());
        assert_eq!(percent(19_600), "19.6");
        assert_eq!(percent(20_000), "20");
        assert_eq!(euros(123_405), "1234.05");
    }

    /// 200 cotton T-shirts from China to Germany, EUR 1,000 with EUR 150
    /// shipping and EUR 10 insurance: customs value 1,160.00, duty 12 % =
    /// 139.20, VAT 19 % of 1,299.20 = 246.85, landed 1,546.05.
    #[test]
    fn cotton_t_shirts_from_china_to_germany() {
        let b = basket(
            "CN",
            "DE",
            "EUR",
            15_000,
            1_000,
            vec![line("61091000", 100_000, 40_000, 200)],
        );
        let q = q(&b);
        assert!(!q.ioss && q.complete, "{q:?}");
        let l = &q.lines[0];
        assert_eq!(l.customs_value_cents, 116_000);
        assert_eq!(l.duty_rate, Some(("61091000".into(), "12.0%".into())));
        assert_eq!(l.duty_cents, Some(13_920));
        assert_eq!(l.vat_cents, Some(24_685));
        assert_eq!(q.landed_cents, 154_605);
        assert!(l.flags.is_empty());
    }

    /// A laptop from the US to France, USD 1,299.00 + USD 45.00 shipping at
    /// 1.0812 USD/EUR: EUR 1,201.44 + 41.62, duty 0 %, VAT 20 % of
    /// 1,243.06 = 248.61, landed 1,491.67.
    #[test]
    fn laptop_from_the_us_to_france() {
        let b = basket(
            "US",
            "FR",
            "USD",
            4_500,
            0,
            vec![line("847130", 129_900, 1_800, 1)],
        );
        let q = q(&b);
        assert!(!q.ioss && q.complete, "{q:?}");
        assert_eq!(q.intrinsic_cents, 120_144);
        assert_eq!(q.transport_cents, 4_162);
        assert_eq!(q.duty_cents, 0);
        assert_eq!(q.vat_cents, 24_861);
        assert_eq!(q.landed_cents, 149_167);
    }

    /// Either side of EUR 150 in pounds (0.86 GBP/EUR): GBP 128.00 is EUR
    /// 148.84 (IOSS: no duty, German VAT on goods and shipping), GBP 130.00
    /// is EUR 151.16 (duty 12 % on the customs value, import VAT).
    #[test]
    fn either_side_of_the_threshold_in_pounds() {
        let below = q(&basket(
            "GB",
            "DE",
            "GBP",
            500,
            0,
            vec![line("61091000", 12_800, 1_000, 5)],
        ));
        assert!(below.ioss, "{below:?}");
        assert_eq!(below.intrinsic_cents, 14_884);
        assert_eq!(below.transport_cents, 581);
        assert_eq!(below.duty_cents, 0);
        assert_eq!(below.vat_cents, 2_938);
        assert_eq!(below.landed_cents, 18_403);

        let above = q(&basket(
            "GB",
            "DE",
            "GBP",
            500,
            0,
            vec![line("61091000", 13_000, 1_000, 5)],
        ));
        assert!(!above.ioss, "{above:?}");
        assert_eq!(above.intrinsic_cents, 15_116);
        assert_eq!(above.lines[0].customs_value_cents, 15_697);
        assert_eq!(above.duty_cents, 1_884);
        assert_eq!(above.vat_cents, 3_340);
        assert_eq!(above.landed_cents, 20_921);
        assert_ne!(below.id, above.id);
    }

    #[test]
    fn shares_flags_and_what_cannot_be_quoted() {
        // Transport split by value; the rest of the rounding on the last line.
        let b = basket(
            "RU",
            "PL",
            "EUR",
            1_000,
            1,
            vec![
                line("72081000", 300_000, 1_000_000, 0),
                line("93020000", 100_000, 2_000, 1),
                line("22041011", 50_000, 10_000, 10),
            ],
        );
        let q = q(&b);
        let shares: Vec<u64> = q.lines.iter().map(|l| l.transport_cents).collect();
        assert_eq!(shares.iter().sum::<u64>(), 1_001);
        assert_eq!(shares, vec![667, 222, 112]);
        assert!(
            q.lines[0]
                .flags
                .iter()
                .any(|f| f.starts_with("SANCTIONED_GOODS")),
            "{:?}",
            q.lines[0]
        );
        assert!(
            q.lines[1]
                .flags
                .iter()
                .any(|f| f.starts_with("RESTRICTED_GOODS")),
            "{:?}",
            q.lines[1]
        );
        // Sparkling wine is per hectolitre: not quotable from a basket.
        assert!(!q.complete);
        assert!(
            q.lines[2]
                .note
                .as_deref()
                .unwrap_or("")
                .contains("cannot quote"),
            "{:?}",
            q.lines[2]
        );
        assert!(q.ioss_reason.contains("excise"));
        // No rate for the currency, or for the destination.
        let mut b2 = b.clone();
        b2.currency = "CHF".into();
        assert!(quote(
            &b2,
            &rates(),
            &Tariff::builtin(),
            &VatTable::builtin(),
            &RiskPolicy::default()
        )
        .is_err());
        b2.currency = "EUR".into();
        b2.destination = "US".into();
        assert!(quote(
            &b2,
            &rates(),
            &Tariff::builtin(),
            &VatTable::builtin(),
            &RiskPolicy::default()
        )
        .is_err());
    }
}
