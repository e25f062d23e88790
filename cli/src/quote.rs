//! `customsctl quote`: a landed-cost quote for a basket, offline, from the
//! compiled-in duty and VAT tables and the exchange rates given (see
//! `ledger::quote` for the rules). Restricted and sanctioned goods are
//! flagged from the risk policy of the chain config given (the model's
//! defaults without one).

use anyhow::{anyhow, Context, Result};
use ledger::quote::{self, euros, percent, Basket, Rates};
use ledger::tariff::{Tariff, VatTable};
use std::path::Path;

fn read<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", path.display()))
}

/// Offline: with the exchange rates in `rates`.
pub(crate) fn run(basket: &Path, rates: &Path, genesis: Option<&Path>, json: bool) -> Result<()> {
    let b: Basket = read(basket, "a basket")?;
    let r: Rates = read(rates, "an exchange-rate file")?;
    let policy = match genesis {
        Some(g) => crate::load_genesis(g)?.risk_policy,
        None => ledger::validate::risk::RiskPolicy::default(),
    };
    let q = quote::quote(&b, &r, Tariff::shared(), VatTable::shared(), &policy)
        .map_err(|e| anyhow!("cannot quote: {e}"))?;
    print(&q, json)
}

/// From a node (`Ledger.Quote`): with the customs exchange rates published
/// on the ledger and the chain's risk policy.
pub(crate) async fn ask(conn: &crate::Conn, basket: &Path, json: bool) -> Result<()> {
    let b: Basket = read(basket, "a basket")?;
    let mut c = conn.client().await?;
    let req = proto::v1::QuoteRequest {
        origin: b.origin,
        destination: b.destination,
        date: b.date,
        currency: b.currency,
        shipping_minor: b.shipping_minor,
        insurance_minor: b.insurance_minor,
        lines: b
            .lines
            .into_iter()
            .map(|l| proto::v1::QuoteLine {
                description: l.description,
                code: l.code,
                quantity: l.quantity,
                value_minor: l.value_minor,
                net_mass_g: l.net_mass_g,
                gross_mass_g: l.gross_mass_g,
            })
            .collect(),
    };
    let r = c
        .inner
        .quote(c.signed("/customs.v1.Ledger/Quote", req))
        .await
        .map_err(crate::client::status_error)?
        .into_inner();
    let q: quote::Quote =
        serde_json::from_str(&r.quote_json).context("the node's quote does not parse")?;
    print(&q, json)
}

fn print(q: &quote::Quote, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&q)?);
        return Ok(());
    }
    println!(
        "quote {} ({})",
        q.id,
        if q.complete {
            "complete"
        } else {
            "INCOMPLETE: see the notes"
        }
    );
    println!(
        "IOSS: {} ({})",
        if q.ioss { "yes" } else { "no" },
        q.ioss_reason
    );
    println!(
        "{:>3}  {:<10} {:>10} {:>10}  {:<28} {:>9} {:>9}",
        "#", "code", "value", "cust.value", "duty rate", "duty", "VAT"
    );
    for (i, l) in q.lines.iter().enumerate() {
        let rate = l
            .duty_rate
            .as_ref()
            .map(|(c, e)| format!("{e} ({c})"))
            .unwrap_or_else(|| "-".into());
        let opt = |v: Option<u64>| v.map(euros).unwrap_or_else(|| "-".into());
        println!(
            "{:>3}  {:<10} {:>10} {:>10}  {:<28} {:>9} {:>9}",
            i + 1,
            l.code,
            euros(l.value_cents),
            euros(l.customs_value_cents),
            rate,
            opt(l.duty_cents),
            opt(l.vat_cents)
        );
        for f in &l.flags {
            println!("       ! {f}");
        }
        if let Some(n) = &l.note {
            println!("       {n}");
        }
    }
    println!(
        "goods {} + transport and insurance {} + duty {} + VAT {} ({}%) = landed EUR {}",
        euros(q.intrinsic_cents),
        euros(q.transport_cents),
        euros(q.duty_cents),
        euros(q.vat_cents),
        percent(q.vat_rate_milli),
        euros(q.landed_cents)
    );
    for s in &q.sources {
        println!("  source: {s}");
    }
    Ok(())
}
