//! The declaration payload (ICS2 / H7 minded) and its mapping to
//! disclosure-classed fields.
//!
//! A declaration is written as flat `path = value` fields so each can be
//! sealed, committed and disclosed on its own. Quantities are integers:
//! mass in grams, values in minor currency units. The mapping below is the
//! single source of which class each field belongs to.

use crate::config::FieldClass;
use crate::disclosure::Field;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A trader named on a declaration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trader {
    /// Name.
    pub name: String,
    /// Address (one line).
    #[serde(default)]
    pub address: String,
    /// EORI, if any.
    #[serde(default)]
    pub eori: Option<String>,
}

/// One goods item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodsItem {
    /// Plain-language description.
    pub description: String,
    /// HS code: 6 (HS), 8 (CN) or 10 (TARIC) digits.
    pub hs_code: String,
    /// Number of packages.
    pub packages: u32,
    /// Gross mass in grams.
    pub gross_mass_g: u64,
    /// Intrinsic value in minor units of `currency`.
    pub value_minor: u64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Country of origin (ISO 3166 alpha-2).
    #[serde(default)]
    pub origin: String,
}

/// An entry summary / import declaration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// Local reference number.
    pub lrn: String,
    /// Movement reference number, once assigned.
    #[serde(default)]
    pub mrn: Option<String>,
    /// Consignor.
    pub consignor: Trader,
    /// Consignee.
    pub consignee: Trader,
    /// Buyer.
    #[serde(default)]
    pub buyer: Option<Trader>,
    /// Seller.
    #[serde(default)]
    pub seller: Option<Trader>,
    /// Goods items.
    pub goods: Vec<GoodsItem>,
    /// Transport document reference (AWB, B/L, CMR).
    #[serde(default)]
    pub transport_document: String,
    /// Container ids (ISO 6346).
    #[serde(default)]
    pub containers: Vec<String>,
    /// Place of loading (UN/LOCODE).
    #[serde(default)]
    pub place_of_loading: String,
    /// Place of unloading (UN/LOCODE).
    #[serde(default)]
    pub place_of_unloading: String,
    /// Countries of routing (ISO 3166 alpha-2).
    #[serde(default)]
    pub routing: Vec<String>,
    /// Transport mode (UCC codes: 1 sea, 2 rail, 3 road, 4 air, ...).
    /// Public: with the two fields below it names the corridor, which
    /// every party's KPIs are computed by.
    #[serde(default)]
    pub transport_mode: u8,
    /// Country of dispatch (ISO 3166 alpha-2), public.
    #[serde(default)]
    pub dispatch_country: String,
    /// Customs office of first entry (reference number as in the EU
    /// customs office list: country code and six characters), public.
    #[serde(default)]
    pub office_of_entry: String,
    /// IOSS number for low-value e-commerce.
    #[serde(default)]
    pub ioss: Option<String>,
    /// Digital Product Passport ids.
    #[serde(default)]
    pub dpp_ids: Vec<String>,
    /// The landed-cost quote the buyer was shown at checkout, if any;
    /// customs compare what they assess with it.
    #[serde(default)]
    pub quote: Option<QuoteRef>,
}

/// A checkout quote a declaration refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteRef {
    /// The quote's id (`ledger::quote::Quote::id`, hex).
    pub id: String,
    /// Duty plus VAT it quoted, EUR cents.
    pub taxes_cents: u64,
}

fn push(out: &mut Vec<Field>, path: String, class: FieldClass, value: impl Into<String>) {
    out.push(Field {
        path,
        class,
        value: value.into(),
    });
}

fn trader(out: &mut Vec<Field>, prefix: &str, t: &Trader, class: FieldClass) {
    push(out, format!("{prefix}.name"), class, &t.name);
    if !t.address.is_empty() {
        push(out, format!("{prefix}.address"), class, &t.address);
    }
    if let Some(e) = &t.eori {
        push(out, format!("{prefix}.eori"), class, e);
    }
}

impl Declaration {
    /// The HS chapters of all items, deduplicated and sorted (public).
    pub fn hs_chapters(&self) -> Vec<String> {
        let mut ch: Vec<String> = self
            .goods
            .iter()
            .filter_map(|g| g.hs_code.get(..2).map(str::to_string))
            .collect();
        ch.sort();
        ch.dedup();
        ch
    }

    /// Total value in minor units per currency.
    pub fn total_value(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for g in &self.goods {
            let e = m.entry(g.currency.clone()).or_insert(0u64);
            *e = e.saturating_add(g.value_minor);
        }
        m
    }

    /// Flatten into classed fields.
    pub fn to_fields(&self) -> Vec<Field> {
        use FieldClass::*;
        let mut out = Vec::new();
        push(
            &mut out,
            "decl.hs_chapters".into(),
            Public,
            self.hs_chapters().join(","),
        );
        push(
            &mut out,
            "decl.goods_count".into(),
            Public,
            self.goods.len().to_string(),
        );
        push(&mut out, "decl.lrn".into(), Commercial, &self.lrn);
        if let Some(m) = &self.mrn {
            push(&mut out, "decl.mrn".into(), Public, m);
        }
        trader(&mut out, "decl.consignor", &self.consignor, Personal);
        trader(&mut out, "decl.consignee", &self.consignee, Personal);
        if let Some(b) = &self.buyer {
            trader(&mut out, "decl.buyer", b, Commercial);
        }
        if let Some(s) = &self.seller {
            trader(&mut out, "decl.seller", s, Commercial);
        }
        for (i, g) in self.goods.iter().enumerate() {
            let p = format!("decl.goods[{i}]");
            push(
                &mut out,
                format!("{p}.description"),
                Commercial,
                &g.description,
            );
            push(&mut out, format!("{p}.hs_code"), Commercial, &g.hs_code);
            push(
                &mut out,
                format!("{p}.packages"),
                Transport,
                g.packages.to_string(),
            );
            push(
                &mut out,
                format!("{p}.gross_mass_g"),
                Transport,
                g.gross_mass_g.to_string(),
            );
            push(
                &mut out,
                format!("{p}.value_minor"),
                Commercial,
                g.value_minor.to_string(),
            );
            push(&mut out, format!("{p}.currency"), Commercial, &g.currency);
            if !g.origin.is_empty() {
                push(&mut out, format!("{p}.origin"), Commercial, &g.origin);
            }
        }
        if !self.transport_document.is_empty() {
            push(
                &mut out,
                "decl.transport_document".into(),
                Transport,
                &self.transport_document,
            );
        }
        for (i, c) in self.containers.iter().enumerate() {
            push(&mut out, format!("decl.containers[{i}]"), Transport, c);
        }
        if !self.place_of_loading.is_empty() {
            push(
                &mut out,
                "decl.place_of_loading".into(),
                Transport,
                &self.place_of_loading,
            );
        }
        if !self.place_of_unloading.is_empty() {
            push(
                &mut out,
                "decl.place_of_unloading".into(),
                Transport,
                &self.place_of_unloading,
            );
        }
        if !self.routing.is_empty() {
            push(
                &mut out,
                "decl.routing".into(),
                Transport,
                self.routing.join(","),
            );
        }
        push(
            &mut out,
            "decl.transport_mode".into(),
            Public,
            self.transport_mode.to_string(),
        );
        if !self.dispatch_country.is_empty() {
            push(
                &mut out,
                "decl.dispatch_country".into(),
                Public,
                &self.dispatch_country,
            );
        }
        if !self.office_of_entry.is_empty() {
            push(
                &mut out,
                "decl.office_of_entry".into(),
                Public,
                &self.office_of_entry,
            );
        }
        if let Some(i) = &self.ioss {
            push(&mut out, "decl.ioss".into(), Commercial, i);
        }
        for (i, d) in self.dpp_ids.iter().enumerate() {
            push(&mut out, format!("decl.dpp_ids[{i}]"), Public, d);
        }
        if let Some(q) = &self.quote {
            push(&mut out, "decl.quote.id".into(), Commercial, &q.id);
            push(
                &mut out,
                "decl.quote.taxes_cents".into(),
                Commercial,
                q.taxes_cents.to_string(),
            );
        }
        out
    }

    /// Rebuild from fields (all of them must be readable). Errors name the field.
    pub fn from_fields(fields: &[Field]) -> Result<Declaration, String> {
        let m: BTreeMap<&str, &str> = fields
            .iter()
            .map(|f| (f.path.as_str(), f.value.as_str()))
            .collect();
        let get = |p: &str| m.get(p).map(|v| v.to_string());
        let req = |p: &str| get(p).ok_or_else(|| format!("missing field {p}"));
        let num = |p: &str| -> Result<u64, String> {
            req(p)?
                .parse::<u64>()
                .map_err(|_| format!("field {p} is not a non-negative integer"))
        };
        let trader = |prefix: &str| -> Option<Trader> {
            get(&format!("{prefix}.name")).map(|name| Trader {
                name,
                address: get(&format!("{prefix}.address")).unwrap_or_default(),
                eori: get(&format!("{prefix}.eori")),
            })
        };
        let n = num("decl.goods_count")? as usize;
        if n > 999 {
            return Err("too many goods items".into());
        }
        let mut goods = Vec::with_capacity(n);
        for i in 0..n {
            let p = format!("decl.goods[{i}]");
            goods.push(GoodsItem {
                description: req(&format!("{p}.description"))?,
                hs_code: req(&format!("{p}.hs_code"))?,
                packages: u32::try_from(num(&format!("{p}.packages"))?)
                    .map_err(|_| format!("{p}.packages too large"))?,
                gross_mass_g: num(&format!("{p}.gross_mass_g"))?,
                value_minor: num(&format!("{p}.value_minor"))?,
                currency: req(&format!("{p}.currency"))?,
                origin: get(&format!("{p}.origin")).unwrap_or_default(),
            });
        }
        let list = |prefix: &str| -> Vec<String> {
            (0..)
                .map_while(|i| get(&format!("{prefix}[{i}]")))
                .collect()
        };
        Ok(Declaration {
            lrn: req("decl.lrn")?,
            mrn: get("decl.mrn"),
            consignor: trader("decl.consignor").ok_or("missing consignor")?,
            consignee: trader("decl.consignee").ok_or("missing consignee")?,
            buyer: trader("decl.buyer"),
            seller: trader("decl.seller"),
            goods,
            transport_document: get("decl.transport_document").unwrap_or_default(),
            containers: list("decl.containers"),
            place_of_loading: get("decl.place_of_loading").unwrap_or_default(),
            place_of_unloading: get("decl.place_of_unloading").unwrap_or_default(),
            routing: get("decl.routing")
                .map(|r| {
                    r.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            transport_mode: u8::try_from(num("decl.transport_mode")?)
                .map_err(|_| "transport_mode too large".to_string())?,
            dispatch_country: get("decl.dispatch_country").unwrap_or_default(),
            office_of_entry: get("decl.office_of_entry").unwrap_or_default(),
            ioss: get("decl.ioss"),
            dpp_ids: list("decl.dpp_ids"),
            quote: match get("decl.quote.id") {
                Some(id) => Some(QuoteRef {
                    id,
                    taxes_cents: num("decl.quote.taxes_cents")?,
                }),
                None => None,
            },
        })
    }
}

/// The ICS2 data elements a complete entry summary carries, as field
/// paths; goods-item paths use `{i}` for the item index. Containers are
/// required for sea freight only.
const ICS2_HEADER: [&str; 11] = [
    "decl.lrn",
    "decl.consignor.name",
    "decl.consignor.address",
    "decl.consignee.name",
    "decl.consignee.address",
    "decl.transport_document",
    "decl.place_of_loading",
    "decl.place_of_unloading",
    "decl.routing",
    "decl.dispatch_country",
    "decl.office_of_entry",
];
const ICS2_ITEM: [&str; 7] = [
    "description",
    "hs_code",
    "packages",
    "gross_mass_g",
    "value_minor",
    "currency",
    "origin",
];

/// Which ICS2 data elements a declaration's field paths lack. Works on
/// paths alone (they are public even where values are sealed), so any
/// party can measure completeness without reading a value.
pub fn ics2_missing<'a>(
    paths: impl IntoIterator<Item = &'a str>,
    goods: usize,
    mode: u8,
) -> Vec<String> {
    let have: std::collections::BTreeSet<&str> = paths.into_iter().collect();
    let mut missing: Vec<String> = ICS2_HEADER
        .iter()
        .filter(|p| !have.contains(*p))
        .map(|p| p.to_string())
        .collect();
    if mode == 1 && !have.contains("decl.containers[0]") {
        missing.push("decl.containers".into());
    }
    if goods == 0 {
        missing.push("decl.goods".into());
    }
    for i in 0..goods.min(999) {
        for f in ICS2_ITEM {
            let p = format!("decl.goods[{i}].{f}");
            if !have.contains(p.as_str()) {
                missing.push(p);
            }
        }
    }
    missing
}

/// A realistic sample declaration (electronics, Gdansk to Le Havre), used
/// by tests, benchmarks and the demo.
pub fn sample() -> Declaration {
    let t = |name: &str, address: &str, eori: &str| Trader {
        name: name.into(),
        address: address.into(),
        eori: Some(eori.into()),
    };
    Declaration {
        lrn: "PL-LRN-2026-000123".into(),
        mrn: None,
        consignor: t(
            "Baltic Electronics Sp. z o.o.",
            "ul. Portowa 12, 80-001 Gdansk, PL",
            "PL5260250995000",
        ),
        consignee: t(
            "Distribution Nord SAS",
            "12 Quai de Southampton, 76600 Le Havre, FR",
            "FR40303265045",
        ),
        buyer: Some(t(
            "Distribution Nord SAS",
            "12 Quai de Southampton, 76600 Le Havre, FR",
            "FR40303265045",
        )),
        seller: Some(t(
            "Baltic Electronics Sp. z o.o.",
            "ul. Portowa 12, 80-001 Gdansk, PL",
            "PL5260250995000",
        )),
        goods: vec![
            GoodsItem {
                description: "Portable laptop computers, 14 inch, with keyboard and display".into(),
                hs_code: "84713000".into(),
                packages: 40,
                gross_mass_g: 120_000,
                value_minor: 3_200_000,
                currency: "EUR".into(),
                origin: "PL".into(),
            },
            GoodsItem {
                description: "Smartphones for cellular networks".into(),
                hs_code: "85171300".into(),
                packages: 20,
                gross_mass_g: 30_000,
                value_minor: 2_500_000,
                currency: "EUR".into(),
                origin: "PL".into(),
            },
        ],
        transport_document: "MSKU-BL-778812".into(),
        containers: vec!["CSQU3054383".into()],
        place_of_loading: "PLGDN".into(),
        place_of_unloading: "FRLEH".into(),
        routing: vec!["PL".into(), "DE".into(), "FR".into()],
        transport_mode: 1,
        dispatch_country: "PL".into(),
        office_of_entry: "FR000690".into(),
        ioss: None,
        dpp_ids: vec!["urn:dpp:eu:battery:PL-778812-01".into()],
        quote: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let d = sample();
        let f = d.to_fields();
        assert_eq!(Declaration::from_fields(&f).unwrap(), d);
        let bytes: usize = f.iter().map(|x| x.path.len() + x.value.len()).sum();
        assert!(bytes > 800 && bytes < 1600, "sample is about 1 KB: {bytes}");
    }

    #[test]
    fn completeness_from_paths() {
        let d = sample();
        let f = d.to_fields();
        let paths = || f.iter().map(|x| x.path.as_str());
        assert!(ics2_missing(paths(), 2, 1).is_empty());
        let mut thin = d.clone();
        thin.office_of_entry.clear();
        thin.containers.clear();
        thin.goods[1].origin.clear();
        let f = thin.to_fields();
        let missing = ics2_missing(f.iter().map(|x| x.path.as_str()), 2, 1);
        assert_eq!(
            missing,
            [
                "decl.office_of_entry",
                "decl.containers",
                "decl.goods[1].origin"
            ]
        );
        // By road no container is expected.
        let missing = ics2_missing(f.iter().map(|x| x.path.as_str()), 2, 3);
        assert_eq!(missing.len(), 2);
        // The corridor is public; values stay sealed.
        let public: Vec<String> = sample()
            .to_fields()
            .into_iter()
            .filter(|x| x.class == FieldClass::Public)
            .map(|x| x.path)
            .collect();
        for p in [
            "decl.transport_mode",
            "decl.dispatch_country",
            "decl.office_of_entry",
        ] {
            assert!(public.iter().any(|x| x == p), "{p}");
        }
        assert!(!public.iter().any(|p| p.contains("value_minor")));
    }

    #[test]
    fn missing_or_bad_numbers_are_named() {
        let mut f = sample().to_fields();
        f.retain(|x| x.path != "decl.goods[1].hs_code");
        assert_eq!(
            Declaration::from_fields(&f).unwrap_err(),
            "missing field decl.goods[1].hs_code"
        );
        let mut f = sample().to_fields();
        for x in &mut f {
            if x.path == "decl.goods[0].value_minor" {
                x.value = "-5".into();
            }
        }
        assert!(Declaration::from_fields(&f)
            .unwrap_err()
            .contains("value_minor"));
    }
}
