//! Opening committed validation outcomes as one party: nodes serve them
//! sealed (classification as `Commercial`, risk as `Security`), and a
//! client shows what its own keys open and names what stays sealed.

use anyhow::{anyhow, Result};
use ledger::config::{ChainConfig, FieldClass};
use ledger::disclosure::DecryptionKey;
use ledger::outcome::{self, Judgement, OutcomeKeys};
use ledger::{codec, SignedTransaction, TxResult};

/// One party's reading of a committed result.
#[derive(Debug, Default)]
pub struct Reading {
    /// Shipment status after the transaction, if any.
    pub status: String,
    /// What this party's keys opened.
    pub judgement: Judgement,
    /// Classes of the parts that stay sealed to it.
    pub sealed: Vec<FieldClass>,
}

/// Decode the authoritative bytes of `r` and open what `party` may read.
pub fn read(
    cfg: &ChainConfig,
    stx: &SignedTransaction,
    r: &proto::v1::TxResult,
    party: &str,
    keys: &[DecryptionKey],
) -> Result<Reading> {
    let result: TxResult =
        codec::decode(&r.encoded).map_err(|e| anyhow!("result record does not decode: {e}"))?;
    let id = stx.id()?;
    if result.tx_id != id {
        return Err(anyhow!("the result served is for another transaction"));
    }
    let (judgement, sealed) = outcome::open(
        &stx.tx,
        &id,
        &result.outcome,
        party,
        keys,
        &OutcomeKeys::for_party(cfg, party, keys),
    );
    Ok(Reading {
        status: r.status.clone(),
        judgement,
        sealed,
    })
}

/// Lines describing a reading, for terminals.
pub fn lines(r: &Reading) -> Vec<String> {
    let mut out = Vec::new();
    if !r.status.is_empty() {
        out.push(format!("status: {}", r.status));
    }
    for c in &r.judgement.classification {
        let top: Vec<String> = c
            .suggestions
            .iter()
            .map(|(hs6, score)| format!("{hs6}({score})"))
            .collect();
        out.push(format!(
            "item {}: declared {} -> {} [{}]",
            c.item,
            c.declared,
            c.verdict,
            top.join(" ")
        ));
    }
    if let Some(risk) = &r.judgement.risk {
        let reasons: Vec<String> = risk
            .reasons
            .iter()
            .map(|(code, points)| format!("{code}+{points}"))
            .collect();
        out.push(format!(
            "risk: {} ({}) {}",
            risk.score,
            risk.level,
            reasons.join(" ")
        ));
    }
    if let Some(a) = &r.judgement.assessment {
        let euros = ledger::quote::euros;
        let mut line = format!(
            "assessed: duty EUR {} VAT EUR {}{}",
            euros(a.duty_cents),
            euros(a.vat_cents),
            if a.ioss { " (IOSS)" } else { "" }
        );
        if let Some(q) = a.quoted_cents {
            line.push_str(&format!(
                "; quoted EUR {}, difference {}{}.{:02} ({})",
                euros(q),
                if a.difference_cents < 0 { "-" } else { "" },
                a.difference_cents.unsigned_abs() / 100,
                a.difference_cents.unsigned_abs() % 100,
                if a.within_tolerance == Some(true) {
                    "within tolerance"
                } else {
                    "outside tolerance"
                }
            ));
        }
        out.push(line);
    }
    if !r.judgement.warnings.is_empty() {
        out.push(format!("warnings: {}", r.judgement.warnings.join(", ")));
    }
    for c in &r.sealed {
        let what = match c {
            FieldClass::Commercial => "classification",
            _ => "risk assessment",
        };
        out.push(format!(
            "{what}: sealed ({c:?}; not readable by this party)"
        ));
    }
    out
}
