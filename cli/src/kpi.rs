//! `customsctl kpi` and `customsctl route`: the Smart Customs KPIs a node
//! folded from committed blocks, as tables with terminal bar charts, the
//! predicted time-to-clear per office of entry for a planned shipment, and
//! the back-test of those predictions on the verified chain itself.

use crate::client::status_error;
use crate::Conn;
use anyhow::{anyhow, bail, Context, Result};
use ledger::kpi::{self, Durations, KpiRow, Prediction, Share};

/// `2d04h`, `3h20m`, `12m`, `40s`, or `-`.
pub(crate) fn duration(s: Option<u64>) -> String {
    let Some(s) = s else { return "-".into() };
    match s {
        0..=59 => format!("{s}s"),
        60..=3_599 => format!("{}m", s / 60),
        3_600..=86_399 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// A horizontal bar of `v` out of `max`, `width` cells wide, in eighths.
pub(crate) fn bar(v: u64, max: u64, width: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let eighths = (u128::from(v) * width as u128 * 8 / u128::from(max)) as usize;
    let mut s = "█".repeat(eighths / 8);
    const PART: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    s.push_str(PART[eighths % 8]);
    s
}

fn dur_pair(d: &Durations) -> String {
    format!("{} / {}", duration(d.median_s), duration(d.p90_s))
}

fn share(s: &Option<Share>) -> String {
    match s {
        Some(s) => s.percent(),
        None => "sealed".into(),
    }
}

/// Print KPI rows as a table, then a chart of the chosen figure.
pub(crate) fn print_rows(rows: &[KpiRow], chart: &str) -> Result<()> {
    if rows.is_empty() {
        println!("no KPI rows (nothing committed in that range yet)");
        return Ok(());
    }
    let time_rows = rows.iter().any(|r| r.period != "total");
    let key = |r: &KpiRow| {
        if time_rows && r.dim == "all" {
            r.label.clone()
        } else if time_rows {
            format!("{} {}", r.value, r.label)
        } else {
            r.value.clone()
        }
    };
    let w = rows
        .iter()
        .map(|r| key(r).chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:w$}  {:>6} {:>8} {:>8} {:>15} {:>15} {:>8} {:>8} {:>5} {:>4} {:>8} {:>8} {:>9}",
        "group",
        "decl",
        "complete",
        "released",
        "arrival>release",
        "filing>release",
        "inspect",
        "hits",
        "holds",
        "rfi",
        "rejected",
        "ddp-acc",
        "co2 kg",
    );
    for r in rows {
        println!(
            "{:w$}  {:>6} {:>8} {:>8} {:>15} {:>15} {:>8} {:>8} {:>5} {:>4} {:>8} {:>8} {:>9}",
            key(r),
            r.declarations,
            r.completeness.percent(),
            r.released,
            dur_pair(&r.arrived_to_release),
            dur_pair(&r.filed_to_release),
            r.inspection_rate.percent(),
            share(&r.hit_rate),
            r.holds,
            r.rfis,
            r.rejection_rate.percent(),
            share(&r.ddp_accuracy),
            r.co2
                .map(|c| (c.grams / 1000).to_string())
                .unwrap_or_else(|| "sealed".into()),
        );
    }
    let mut reasons: std::collections::BTreeMap<String, u64> = Default::default();
    for r in rows {
        for (k, n) in r.hold_reasons.iter() {
            *reasons.entry(format!("held {k}")).or_default() += n;
        }
        for (k, n) in r.rejection_reasons.iter() {
            *reasons.entry(format!("rejected {k}")).or_default() += n;
        }
    }
    if !reasons.is_empty() {
        println!("\nreason codes:");
        for (k, n) in reasons {
            println!("  {k:40} {n}");
        }
    }
    let (title, pick): (&str, fn(&KpiRow) -> Option<u64>) = match chart {
        "declarations" => ("declarations", |r| Some(r.declarations)),
        "ttc" | "arrival" => ("median arrival to release", |r| {
            r.arrived_to_release.median_s
        }),
        "filing" => ("median filing to release", |r| r.filed_to_release.median_s),
        "inspection" => ("inspection rate (per mille)", |r| {
            r.inspection_rate.permille()
        }),
        "completeness" => ("ICS2 completeness (per mille)", |r| {
            r.completeness.permille()
        }),
        "none" => return Ok(()),
        other => bail!(
            "unknown chart {other:?}: declarations, ttc, filing, inspection, completeness or none"
        ),
    };
    let max = rows.iter().filter_map(pick).max().unwrap_or(0);
    if max == 0 {
        return Ok(());
    }
    println!("\n{title}:");
    for r in rows {
        let v = pick(r);
        let shown = match chart {
            "ttc" | "arrival" | "filing" => duration(v),
            _ => v.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        };
        println!("{:w$}  {} {}", key(r), bar(v.unwrap_or(0), max, 40), shown);
    }
    Ok(())
}

/// Ask `conn`'s node for KPI rows.
pub(crate) async fn fetch(
    conn: &Conn,
    dimension: &str,
    period: &str,
    from_ms: u64,
    to_ms: u64,
    value: &str,
) -> Result<(Vec<KpiRow>, u64)> {
    let mut c = conn.client().await?;
    let r = c
        .inner
        .get_kpis(c.signed(
            "/customs.v1.Ledger/GetKpis",
            proto::v1::KpiRequest {
                dimension: dimension.into(),
                period: period.into(),
                from_ms,
                to_ms,
                value: value.into(),
            },
        ))
        .await
        .map_err(status_error)?
        .into_inner();
    let rows: Vec<KpiRow> =
        serde_json::from_str(&r.rows_json).context("the node answered malformed KPI rows")?;
    Ok((rows, r.folded_height))
}

/// `customsctl kpi`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    conn: &Conn,
    by: &str,
    period: &str,
    days: u64,
    value: &str,
    chart: &str,
    json: bool,
) -> Result<()> {
    let from_ms = if days == 0 {
        0
    } else {
        crate::client::now_ms().saturating_sub(days * kpi::DAY_MS)
    };
    let (rows, folded) = fetch(conn, by, period, from_ms, 0, value).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "KPIs by {by}, per {period}, as {} sees them (blocks below height {folded} folded; times median / p90)\n",
        conn.party
    );
    print_rows(&rows, chart)
}

/// `customsctl route`.
pub(crate) async fn route(
    conn: &Conn,
    dispatch: &str,
    chapter: &str,
    mode: u8,
    offices: &[String],
    min_evidence: u64,
    json: bool,
) -> Result<()> {
    let mut c = conn.client().await?;
    let r = c
        .inner
        .predict_clearance(c.signed(
            "/customs.v1.Ledger/PredictClearance",
            proto::v1::PredictClearanceRequest {
                dispatch_country: dispatch.into(),
                hs_chapter: chapter.into(),
                transport_mode: u32::from(mode),
                offices: offices.to_vec(),
                min_evidence,
            },
        ))
        .await
        .map_err(status_error)?
        .into_inner();
    let ranked: Vec<Prediction> = serde_json::from_str(&r.predictions_json)
        .context("the node answered malformed predictions")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&ranked)?);
        return Ok(());
    }
    print_route(dispatch, chapter, mode, &ranked);
    Ok(())
}

fn print_route(dispatch: &str, chapter: &str, mode: u8, ranked: &[Prediction]) {
    println!(
        "predicted arrival-to-release for HS chapter {chapter} by {} from {dispatch}:",
        kpi::mode_name(mode)
    );
    if ranked.is_empty() {
        println!("  no clearances committed yet to predict from");
        return;
    }
    let max = ranked.iter().map(|p| p.p90_s).max().unwrap_or(0);
    for (i, p) in ranked.iter().enumerate() {
        println!(
            "{:>2}. {:10} median {:>7}  p90 {:>7}  {}  ({} clearances; {})",
            i + 1,
            p.office,
            duration(Some(p.median_s)),
            duration(Some(p.p90_s)),
            bar(p.median_s, max, 24),
            p.evidence,
            p.basis
        );
    }
}

/// `customsctl route --backtest`: fetch the chain, check it against the
/// node's newest cosigned checkpoint, fold it, predict the later half of
/// the clearances from the earlier half and compare with the baseline.
pub(crate) async fn backtest(conn: &Conn, min_evidence: u64, json: bool) -> Result<()> {
    let (genesis, _) = conn.trusted()?;
    let fetching = crate::progress(0, "fetching");
    let (chain, cp) = crate::fetch_chain(conn, &fetching).await?;
    fetching.finish_and_clear();
    let at = crate::trust::config_from_chain(&genesis, &chain, cp.height)
        .context("the chain config cannot be followed")?;
    let q = conn.quorum.unwrap_or(at.checkpoint_quorum);
    let (checkpoint, _) = crate::proofs::checkpoint(&cp, &at, q)?;
    let leaves =
        crate::proofs::block_leaves(&chain).map_err(|(h, why)| anyhow!("block {h}: {why}"))?;
    crate::proofs::served_matches(&leaves, &checkpoint.checkpoint)
        .map_err(|e| anyhow!("the served chain does not match the cosigned checkpoint: {e}"))?;
    let mut engine = kpi::KpiEngine::default();
    let mut clearances = Vec::new();
    let fold = crate::progress(chain.len() as u64, "folding");
    for bytes in &chain {
        let b = ledger::Block::decode(bytes).map_err(|e| anyhow!("{e}"))?;
        let c = engine
            .apply_block(&at, &b, |_, _| kpi::Sealed::default())
            .map_err(|h| anyhow!("block out of order: expected {h}"))?;
        clearances.extend(c);
        fold.inc(1);
    }
    fold.finish_and_clear();
    let bt = kpi::backtest(&clearances, min_evidence);
    if json {
        println!("{}", serde_json::to_string_pretty(&bt)?);
        return Ok(());
    }
    if bt.tested == 0 {
        bail!(
            "{} clearances with an arrival on the chain: too few to back-test",
            clearances.len()
        );
    }
    println!(
        "back-test on {} blocks to the checkpoint at height {}: learned from {} clearances, predicted {}",
        chain.len(),
        cp.height,
        bt.trained,
        bt.tested
    );
    let max = bt.baseline_mae_s.max(bt.mae_s);
    println!(
        "  corridor predictor  MAE {:>7}  median AE {:>7}  {}",
        duration(Some(bt.mae_s)),
        duration(Some(bt.median_ae_s)),
        bar(bt.mae_s, max, 30)
    );
    println!(
        "  naive baseline      MAE {:>7}  median AE {:>7}  {}",
        duration(Some(bt.baseline_mae_s)),
        duration(Some(bt.baseline_median_ae_s)),
        bar(bt.baseline_mae_s, max, 30)
    );
    if let Some(pct) = (bt.mae_s * 100).checked_div(bt.baseline_mae_s) {
        println!("  error {pct}% of the baseline's");
    }
    let levels: Vec<String> = bt
        .by_level
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| {
            format!(
                "{n} by {}",
                kpi::LEVELS.get(i).copied().unwrap_or("the whole network")
            )
        })
        .collect();
    println!("  predictions: {}", levels.join(", "));
    Ok(())
}
