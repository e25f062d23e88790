//! `customsctl bench`: a load generator. It pre-builds realistic signed and
//! sealed declarations (about 1 KB of fields, several recipients) and status
//! events before the timed phase, then drives a running network at a fixed
//! concurrency (or a fixed offered rate) for a duration, and reports
//! committed tx/s, submit-to-commit latency percentiles, rejected and failed
//! counts, optionally as JSON and as an SVG latency histogram and
//! throughput-over-time chart.

use crate::client::{now_ms, Client};
use anyhow::{anyhow, Result};
use ledger::config::{ChainConfig, FieldClass};
use ledger::crypto::Keypair;
use ledger::declaration;
use ledger::disclosure::{self, Draft, Field};
use ledger::event::EventKind;
use ledger::SignedTransaction;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// gRPC addresses to spread load over.
    pub nodes: Vec<String>,
    /// Directory with keys/ and genesis.json.
    pub net: PathBuf,
    /// Submitting party (broker files declarations; carrier books).
    pub party: String,
    /// Timed phase length.
    pub duration: Duration,
    /// Concurrent in-flight submissions.
    pub concurrency: usize,
    /// Offered rate (tx/s); 0 = closed loop at `concurrency`.
    pub rate: u64,
    /// Transactions to pre-build (default: enough for the run).
    pub prebuild: usize,
    /// JSON report file.
    pub json: Option<PathBuf>,
    /// SVG chart file.
    pub svg: Option<PathBuf>,
}

/// Pre-build `n` transactions on every core, already encoded.
fn build_txs(
    cfg: &ChainConfig,
    party: &str,
    key: &Keypair,
    n: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Vec<u8>>> {
    let base = now_ms();
    let run = base % 1_000_000_000;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let chunk = n.div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Vec<u8>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|lo| {
                let hi = (lo + chunk).min(n);
                scope.spawn(move || {
                    (lo..hi)
                        .map(|i| {
                            let stx = build_tx(cfg, party, key, base, run, i)?;
                            bar.inc(1);
                            Ok(stx.encode()?)
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("pre-build thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(n);
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// Transaction `i` of run `run`.
fn build_tx(
    cfg: &ChainConfig,
    party: &str,
    key: &Keypair,
    base: u64,
    run: u64,
    i: usize,
) -> Result<SignedTransaction> {
    // Half declarations (new shipments), half bookings: both are first
    // events of a shipment, so any order commits.
    let shipment = format!("B{run}-{i}");
    let (kind, fields) = if i.is_multiple_of(2) {
        let mut d = declaration::sample();
        d.lrn = format!("LRN-{run}-{i}");
        (EventKind::DeclarationFiled, d.to_fields())
    } else {
        (
            EventKind::ShipmentBooked,
            vec![
                Field {
                    path: "booking.note".into(),
                    class: FieldClass::Public,
                    value: "bench booking".into(),
                },
                Field {
                    path: "booking.route".into(),
                    class: FieldClass::Transport,
                    value: "PLGDN-DEHAM-FRLEH".into(),
                },
                Field {
                    path: "booking.price".into(),
                    class: FieldClass::Commercial,
                    value: "125000".into(),
                },
            ],
        )
    };
    let draft = Draft {
        chain_id: cfg.chain_id.clone(),
        kind,
        shipment_id: shipment,
        submitter: party.to_string(),
        claimed_time_ms: base,
        fields,
        shipment_parties: vec!["pl-exporter".into(), "carrier".into()],
        governance: None,
    };
    Ok(disclosure::seal(cfg, &draft)
        .map_err(|e| anyhow!("{e}"))?
        .sign(key)?)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Run the benchmark.
pub async fn run(args: BenchArgs) -> Result<()> {
    let cfg: ChainConfig =
        serde_json::from_str(&std::fs::read_to_string(args.net.join("genesis.json"))?)?;
    let key = Keypair::from_seed(&crate::spec::read_secret(
        &args.net.join("keys").join(format!("{}.sign", args.party)),
    )?);
    let expected = if args.rate > 0 {
        args.rate as usize * args.duration.as_secs() as usize
    } else {
        6000 * args.duration.as_secs() as usize
    };
    let n = if args.prebuild > 0 {
        args.prebuild
    } else {
        expected.max(1000)
    };
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_message("pre-building");
    let txs = Arc::new(build_txs(&cfg, &args.party, &key, n, &bar)?);
    bar.finish();
    let size: usize =
        txs.iter().take(100).map(|b| b.len()).sum::<usize>() / txs.len().clamp(1, 100);
    let recipients = txs
        .first()
        .map(|b| SignedTransaction::decode(b, usize::MAX).map(|t| t.tx.recipients.len()))
        .transpose()?
        .unwrap_or(0);
    println!("pre-built {n} transactions (mean {size} bytes, {recipients} recipients each)");
    let mut clients = Vec::new();
    for url in &args.nodes {
        clients.push(Client::connect(url, &args.party, Keypair::from_seed(&key.seed())).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(n)));
    let per_sec = Arc::new(Mutex::new(vec![0u64; args.duration.as_secs() as usize + 2]));
    let rejected = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + args.duration;
    let prog = indicatif::ProgressBar::new(args.duration.as_secs());
    if let Ok(s) = indicatif::ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} s") {
        prog.set_style(s);
    }
    prog.set_message("running");
    let interval = 1_000_000_000u64
        .checked_div(args.rate)
        .map(Duration::from_nanos);
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let mut client = Client::clone_identity(&clients[w % clients.len()]);
        let (txs, next, lat, ps, rej, fail) = (
            txs.clone(),
            next.clone(),
            latencies.clone(),
            per_sec.clone(),
            rejected.clone(),
            failed.clone(),
        );
        let conc = args.concurrency as u32;
        tasks.push(tokio::spawn(async move {
            let mut slot = 0u32;
            loop {
                if let Some(iv) = interval {
                    // Open loop: worker w owns every conc-th slot of the schedule.
                    let due = start + iv * (slot * conc + w as u32);
                    slot += 1;
                    if due >= end {
                        return;
                    }
                    tokio::time::sleep_until(due.into()).await;
                } else if Instant::now() >= end {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(bytes) = txs.get(i) else { return };
                let bytes = bytes.clone();
                let t0 = Instant::now();
                let req = client.signed(
                    "/customs.v1.Ledger/Submit",
                    proto::v1::SubmitRequest {
                        signed_tx: bytes,
                        wait_for_commit: true,
                    },
                );
                match client.inner.submit(req).await {
                    Ok(_) => {
                        let ms = t0.elapsed().as_micros() as u64;
                        if let Ok(mut l) = lat.lock() {
                            l.push(ms);
                        }
                        let sec = start.elapsed().as_secs() as usize;
                        if let Ok(mut p) = ps.lock() {
                            if let Some(x) = p.get_mut(sec) {
                                *x += 1;
                            }
                        }
                    }
                    Err(s)
                        if matches!(
                            s.code(),
                            tonic::Code::InvalidArgument
                                | tonic::Code::FailedPrecondition
                                | tonic::Code::AlreadyExists
                                | tonic::Code::PermissionDenied
                        ) =>
                    {
                        rej.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        fail.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let ticker = {
        let prog = prog.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                prog.inc(1);
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    ticker.abort();
    prog.finish();
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat = latencies.lock().map_err(|_| anyhow!("lock"))?.clone();
    lat.sort_unstable();
    let committed = lat.len() as u64;
    let tps = committed as f64 / elapsed;
    let (p50, p90, p99, max) = (
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
    );
    println!(
        "committed {committed} in {elapsed:.1} s = {tps:.0} tx/s; rejected {}, failed {}",
        rejected.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!(
        "latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        p50 as f64 / 1000.0,
        p90 as f64 / 1000.0,
        p99 as f64 / 1000.0,
        max as f64 / 1000.0
    );
    let series = per_sec.lock().map_err(|_| anyhow!("lock"))?.clone();
    if let Some(p) = &args.json {
        let v = serde_json::json!({
            "committed": committed, "seconds": elapsed, "tps": tps,
            "rejected": rejected.load(Ordering::Relaxed), "failed": failed.load(Ordering::Relaxed),
            "latency_ms": {"p50": p50 as f64 / 1000.0, "p90": p90 as f64 / 1000.0, "p99": p99 as f64 / 1000.0, "max": max as f64 / 1000.0},
            "concurrency": args.concurrency, "rate": args.rate, "tx_bytes": size, "per_second": series,
        });
        std::fs::write(p, serde_json::to_string_pretty(&v)?)?;
    }
    if let Some(p) = &args.svg {
        std::fs::write(p, svg(&lat, &series))?;
        println!("chart written to {}", p.display());
    }
    Ok(())
}

/// Latency histogram (left) and throughput over time (right).
fn svg(lat_us: &[u64], per_sec: &[u64]) -> String {
    let (w, h) = (900.0, 320.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"#
    );
    // Histogram over log-spaced buckets (ms).
    let bounds = [
        1.0,
        2.0,
        5.0,
        10.0,
        20.0,
        50.0,
        100.0,
        200.0,
        500.0,
        1000.0,
        2000.0,
        f64::INFINITY,
    ];
    let mut counts = vec![0u64; bounds.len()];
    for &u in lat_us {
        let ms = u as f64 / 1000.0;
        let i = bounds
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(bounds.len() - 1);
        counts[i] += 1;
    }
    let maxc = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    s += r#"<text x="20" y="20" font-size="13">Submit-to-commit latency (ms)</text>"#;
    let bw = 32.0;
    for (i, c) in counts.iter().enumerate() {
        let bh = 230.0 * (*c as f64) / maxc;
        let x = 30.0 + i as f64 * (bw + 3.0);
        s += &format!(
            r##"<rect x="{x}" y="{}" width="{bw}" height="{bh}" fill="#4477aa"/>"##,
            270.0 - bh
        );
        let label = if bounds[i].is_finite() {
            format!("≤{}", bounds[i])
        } else {
            ">2000".into()
        };
        s += &format!(
            r#"<text x="{}" y="285" text-anchor="middle" font-size="9">{label}</text>"#,
            x + bw / 2.0
        );
        s += &format!(
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="9">{c}</text>"#,
            x + bw / 2.0,
            265.0 - bh
        );
    }
    // Throughput over time.
    let maxt = per_sec.iter().copied().max().unwrap_or(1).max(1) as f64;
    let x0 = 480.0;
    s += &format!(
        r#"<text x="{x0}" y="20" font-size="13">Committed tx per second (max {maxt})</text>"#
    );
    let n = per_sec.len().max(2) as f64;
    let pts: Vec<String> = per_sec
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                x0 + 400.0 * i as f64 / (n - 1.0),
                270.0 - 230.0 * *v as f64 / maxt
            )
        })
        .collect();
    s += &format!(
        r##"<polyline points="{}" fill="none" stroke="#cc6677" stroke-width="2"/>"##,
        pts.join(" ")
    );
    s += &format!(
        r#"<line x1="{x0}" y1="270" x2="{}" y2="270" stroke="black"/><text x="{}" y="285" text-anchor="end">seconds</text></svg>"#,
        x0 + 400.0,
        x0 + 400.0
    );
    s
}
