//! `customsctl bench`: a load generator. It pre-builds realistic signed and
//! sealed transactions before the timed phase: by default whole consignment
//! lifecycles (booking, declaration, assessment, movements, release,
//! delivery: about 1 KB per event on average, several recipients each),
//! signed by the party each event belongs to. It then drives a running
//! network at a fixed concurrency (or a fixed offered rate) for a duration,
//! submitting each shipment's next event once the previous one committed,
//! and reports
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
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the load generator submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// The life of a consignment, in order, per shipment: booked (carrier),
    /// declaration filed (broker), assessment complete (customs), loaded,
    /// departed, arrived, presented (carrier), released (customs), delivered
    /// (carrier). One declaration in nine events; every event carries sealed
    /// fields for several recipients. Each event is submitted once the one
    /// before it committed, as the parties would.
    Lifecycle,
    /// First events only: half declarations, half bookings, each a new
    /// shipment (the heaviest mix for customs nodes: every other
    /// transaction is opened and judged).
    Declarations,
}

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// gRPC addresses to spread load over.
    pub nodes: Vec<String>,
    /// Directory with keys/ and genesis.json.
    pub net: PathBuf,
    /// Party whose key signs the gRPC requests (the transactions are signed
    /// by their submitters: carrier, broker, customs).
    pub party: String,
    /// What to submit.
    pub workload: Workload,
    /// Timed phase length.
    pub duration: Duration,
    /// Concurrent in-flight submissions.
    pub concurrency: usize,
    /// Transactions per call: 1 submits each with `Submit`, more group
    /// ready events into `SubmitBatch` calls (closed loop only).
    pub batch: usize,
    /// Offered rate (tx/s); 0 = closed loop at `concurrency`.
    pub rate: u64,
    /// Transactions to pre-build (default: enough for the run).
    pub prebuild: usize,
    /// JSON report file.
    pub json: Option<PathBuf>,
    /// SVG chart file.
    pub svg: Option<PathBuf>,
}

/// Who signs what in the lifecycle workload.
const CARRIER: &str = "carrier";
const BROKER: &str = "broker";
const CUSTOMS: &str = "fr-customs";
const EXPORTER: &str = "pl-exporter";

struct Signers {
    keys: BTreeMap<&'static str, Keypair>,
}

impl Signers {
    fn load(net: &std::path::Path) -> Result<Signers> {
        let mut keys = BTreeMap::new();
        for p in [CARRIER, BROKER, CUSTOMS] {
            let f = net.join("keys").join(format!("{p}.sign"));
            let seed = crate::spec::read_secret(&f).map_err(|e| {
                anyhow!("the lifecycle workload signs as {p}: {}: {e}", f.display())
            })?;
            keys.insert(p, Keypair::from_seed(&seed));
        }
        Ok(Signers { keys })
    }

    fn key(&self, party: &str) -> Result<&Keypair> {
        self.keys
            .get(party)
            .ok_or_else(|| anyhow!("no key for {party}"))
    }
}

fn field(path: &str, class: FieldClass, value: impl Into<String>) -> Field {
    Field {
        path: path.into(),
        class,
        value: value.into(),
    }
}

/// The events of shipment `i` for `workload`, in submission order.
fn shipment_events(
    workload: Workload,
    run: u64,
    i: usize,
) -> Vec<(EventKind, &'static str, Vec<Field>)> {
    let container = format!("MSCU{:07}", (run as usize + i) % 10_000_000);
    let declaration = || {
        let mut d = declaration::sample();
        d.lrn = format!("LRN-{run}-{i}");
        d.to_fields()
    };
    let booking = || {
        vec![
            field("booking.note", FieldClass::Public, "bench booking"),
            field("booking.route", FieldClass::Transport, "PLGDN-DEHAM-FRLEH"),
            field("booking.vessel", FieldClass::Transport, "MSC BENCH / 0412W"),
            field("booking.price", FieldClass::Commercial, "1250.00 EUR"),
        ]
    };
    let movement = |note: &str, place: &str| {
        vec![
            field("event.note", FieldClass::Public, note),
            field(
                "transport.container",
                FieldClass::Transport,
                container.clone(),
            ),
            field("transport.place", FieldClass::Transport, place),
            field(
                "transport.seal",
                FieldClass::Transport,
                format!("SEAL{i:08}"),
            ),
        ]
    };
    match workload {
        Workload::Declarations if i.is_multiple_of(2) => {
            vec![(EventKind::DeclarationFiled, BROKER, declaration())]
        }
        Workload::Declarations => vec![(EventKind::ShipmentBooked, CARRIER, booking())],
        Workload::Lifecycle => vec![
            (EventKind::ShipmentBooked, CARRIER, booking()),
            (EventKind::DeclarationFiled, BROKER, declaration()),
            (
                EventKind::AssessmentComplete,
                CUSTOMS,
                vec![
                    field("event.note", FieldClass::Public, "no risk found"),
                    field(
                        "assessment.reference",
                        FieldClass::Security,
                        format!("FR-RA-{run}-{i}"),
                    ),
                ],
            ),
            (EventKind::Loaded, CARRIER, movement("loaded", "PLGDN")),
            (EventKind::Departed, CARRIER, movement("departed", "PLGDN")),
            (EventKind::Arrived, CARRIER, movement("arrived", "FRLEH")),
            (
                EventKind::Presented,
                CARRIER,
                movement("presented", "FRLEH"),
            ),
            (
                EventKind::Released,
                CUSTOMS,
                vec![
                    field(
                        "event.note",
                        FieldClass::Public,
                        "released for free circulation",
                    ),
                    field(
                        "release.reference",
                        FieldClass::Security,
                        format!("FR-REL-{run}-{i}"),
                    ),
                ],
            ),
            (
                EventKind::Delivered,
                CARRIER,
                vec![
                    field("event.note", FieldClass::Public, "delivered"),
                    field(
                        "delivery.received_by",
                        FieldClass::Personal,
                        "J. Martin, Le Havre",
                    ),
                ],
            ),
        ],
    }
}

/// Pre-build the events of enough shipments for `n` transactions, on every
/// core, already encoded: one list per shipment, in submission order.
fn build_shipments(
    cfg: &ChainConfig,
    signers: &Signers,
    workload: Workload,
    n: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Vec<Vec<u8>>>> {
    let base = now_ms();
    let run = base % 1_000_000_000;
    let per = shipment_events(workload, run, 0).len().max(1);
    let shipments = n.div_ceil(per).max(1);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let chunk = shipments.div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Vec<Vec<u8>>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shipments)
            .step_by(chunk)
            .map(|lo| {
                let hi = (lo + chunk).min(shipments);
                scope.spawn(move || {
                    (lo..hi)
                        .map(|i| {
                            shipment_events(workload, run, i)
                                .into_iter()
                                .map(|(kind, by, fields)| {
                                    let stx =
                                        seal_event(cfg, signers, kind, by, run, i, base, fields)?;
                                    bar.inc(1);
                                    Ok(stx.encode()?)
                                })
                                .collect::<Result<Vec<_>>>()
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
    let mut out = Vec::with_capacity(shipments);
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn seal_event(
    cfg: &ChainConfig,
    signers: &Signers,
    kind: EventKind,
    by: &str,
    run: u64,
    i: usize,
    base: u64,
    fields: Vec<Field>,
) -> Result<SignedTransaction> {
    let draft = Draft {
        chain_id: cfg.chain_id.clone(),
        kind,
        shipment_id: format!("B{run}-{i}"),
        submitter: by.to_string(),
        claimed_time_ms: base,
        fields,
        shipment_parties: vec![EXPORTER.into(), CARRIER.into(), BROKER.into()],
        governance: None,
    };
    Ok(disclosure::seal(cfg, &draft)
        .map_err(|e| anyhow!("{e}"))?
        .sign(signers.key(by)?)?)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Shipments in progress: which event of which shipment may go next. An
/// event is handed out only after the one before it committed.
struct Schedule {
    shipments: Arc<Vec<Vec<Vec<u8>>>>,
    ready: Mutex<VecDeque<(usize, usize)>>,
    next_new: AtomicUsize,
}

impl Schedule {
    /// The next event to submit: a started shipment's next event first, else
    /// the first event of a new shipment; `None` when all are used up.
    /// Up to `n` next events (see [`Schedule::take`]).
    fn take_many(&self, n: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::with_capacity(n);
        if let Ok(mut q) = self.ready.lock() {
            while out.len() < n {
                match q.pop_front() {
                    Some(x) => out.push(x),
                    None => break,
                }
            }
        }
        while out.len() < n {
            match self.take() {
                Some(x) => out.push(x),
                None => break,
            }
        }
        out
    }

    fn take(&self) -> Option<(usize, usize)> {
        if let Some(x) = self.ready.lock().ok().and_then(|mut q| q.pop_front()) {
            return Some(x);
        }
        let s = self.next_new.fetch_add(1, Ordering::Relaxed);
        (s < self.shipments.len()).then_some((s, 0))
    }

    fn bytes(&self, (s, k): (usize, usize)) -> Option<Vec<u8>> {
        self.shipments.get(s).and_then(|e| e.get(k)).cloned()
    }

    /// Event `k` of shipment `s` committed: its successor may go.
    fn committed(&self, (s, k): (usize, usize)) {
        if self.shipments.get(s).is_some_and(|e| k + 1 < e.len()) {
            if let Ok(mut q) = self.ready.lock() {
                q.push_back((s, k + 1));
            }
        }
    }
}

/// Counters shared by the submitting tasks.
#[derive(Default)]
struct Tally {
    latencies: Mutex<Vec<u64>>,
    per_sec: Mutex<Vec<u64>>,
    rejected: AtomicU64,
    failed: AtomicU64,
    first_rejection: Mutex<Option<String>>,
}

/// How a submitted event ended.
enum Fate {
    Committed,
    /// Refused for what it is; the shipment's later events would only be
    /// refused too.
    Rejected(String),
    Failed,
}

fn fate_of_status(s: &tonic::Status) -> Fate {
    match s.code() {
        tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::AlreadyExists
        | tonic::Code::PermissionDenied => {
            Fate::Rejected(format!("{:?}: {}", s.code(), s.message()))
        }
        _ => Fate::Failed,
    }
}

impl Tally {
    fn record(
        &self,
        sched: &Schedule,
        start: Instant,
        t0: Instant,
        ev: (usize, usize),
        fate: Fate,
    ) {
        match fate {
            Fate::Committed => {
                let us = t0.elapsed().as_micros() as u64;
                if let Ok(mut l) = self.latencies.lock() {
                    l.push(us);
                }
                let sec = start.elapsed().as_secs() as usize;
                if let Ok(mut p) = self.per_sec.lock() {
                    if let Some(x) = p.get_mut(sec) {
                        *x += 1;
                    }
                }
                sched.committed(ev);
            }
            Fate::Rejected(why) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut f) = self.first_rejection.lock() {
                    f.get_or_insert(why);
                }
            }
            Fate::Failed => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Submit pre-built events (one `Submit`, or one `SubmitBatch` for
/// several) and record each outcome.
async fn submit_group(
    client: &mut Client,
    sched: &Schedule,
    tally: &Tally,
    start: Instant,
    evs: Vec<(usize, usize)>,
) {
    let (evs, bytes): (Vec<_>, Vec<_>) = evs
        .into_iter()
        .filter_map(|ev| sched.bytes(ev).map(|b| (ev, b)))
        .unzip();
    let t0 = Instant::now();
    if let ([ev], [_]) = (&evs[..], &bytes[..]) {
        let ev = *ev;
        let req = client.signed(
            "/customs.v1.Ledger/Submit",
            proto::v1::SubmitRequest {
                signed_tx: bytes.into_iter().next().unwrap_or_default(),
                wait_for_commit: true,
            },
        );
        let fate = match client.inner.submit(req).await {
            Ok(_) => Fate::Committed,
            Err(s) => fate_of_status(&s),
        };
        tally.record(sched, start, t0, ev, fate);
        return;
    }
    if evs.is_empty() {
        return;
    }
    let req = client.signed(
        "/customs.v1.Ledger/SubmitBatch",
        proto::v1::SubmitBatchRequest {
            signed_txs: bytes,
            wait_for_commit: true,
        },
    );
    match client.inner.submit_batch(req).await {
        Ok(r) => {
            let outcomes = r.into_inner().outcomes;
            for (i, ev) in evs.into_iter().enumerate() {
                let fate = match outcomes.get(i) {
                    Some(o) if o.status == 0 => Fate::Committed,
                    Some(o) => fate_of_status(&tonic::Status::new(
                        tonic::Code::from_i32(o.status),
                        o.rejections
                            .first()
                            .map(|r| format!("{}: {}", r.code, r.message))
                            .unwrap_or_default(),
                    )),
                    None => Fate::Failed,
                };
                tally.record(sched, start, t0, ev, fate);
            }
        }
        Err(s) => {
            for ev in evs {
                tally.record(sched, start, t0, ev, fate_of_status(&s));
            }
        }
    }
}

/// Run the benchmark.
pub async fn run(args: BenchArgs) -> Result<()> {
    let cfg: ChainConfig =
        serde_json::from_str(&std::fs::read_to_string(args.net.join("genesis.json"))?)?;
    let key = Keypair::from_seed(&crate::spec::read_secret(
        &args.net.join("keys").join(format!("{}.sign", args.party)),
    )?);
    let signers = Signers::load(&args.net)?;
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
    let shipments = build_shipments(&cfg, &signers, args.workload, n, &bar)?;
    bar.finish();
    let built: usize = shipments.iter().map(|s| s.len()).sum();
    let sample: Vec<&Vec<u8>> = shipments.iter().flatten().take(900).collect();
    let size = sample.iter().map(|b| b.len()).sum::<usize>() / sample.len().max(1);
    let recipients = sample
        .iter()
        .map(|b| SignedTransaction::decode(b, usize::MAX).map(|t| t.tx.recipients.len()))
        .collect::<Result<Vec<_>, _>>()?;
    let recipients = recipients.iter().sum::<usize>() as f64 / recipients.len().max(1) as f64;
    println!(
        "pre-built {built} transactions in {} shipments ({:?} workload; mean {size} bytes, {recipients:.1} recipients each)",
        shipments.len(),
        args.workload
    );
    let mut clients = Vec::new();
    for url in &args.nodes {
        let key = Keypair::from_seed(&key.seed());
        clients.push(Client::connect(url, None, &cfg.chain_id, None, &args.party, key).await?);
    }
    let sched = Arc::new(Schedule {
        shipments: Arc::new(shipments),
        ready: Mutex::new(VecDeque::new()),
        next_new: AtomicUsize::new(0),
    });
    let tally = Arc::new(Tally {
        per_sec: Mutex::new(vec![0u64; args.duration.as_secs() as usize + 2]),
        ..Tally::default()
    });
    let start = Instant::now();
    let end = start + args.duration;
    let prog = indicatif::ProgressBar::new(args.duration.as_secs());
    if let Ok(s) = indicatif::ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} s") {
        prog.set_style(s);
    }
    prog.set_message("running");
    let mut tasks = Vec::new();
    if let Some(interval) = 1_000_000_000u64
        .checked_div(args.rate)
        .map(Duration::from_nanos)
    {
        // Open loop: one submission every 1/rate s, whatever is in flight,
        // each on its own task (at most `concurrency` connections' worth of
        // clients are shared round robin).
        let (sched, tally) = (sched.clone(), tally.clone());
        let pool: Vec<Client> = (0..args.concurrency)
            .map(|w| Client::clone_identity(&clients[w % clients.len()]))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut inflight = tokio::task::JoinSet::new();
            for slot in 0u64.. {
                let due = start + interval * u32::try_from(slot).unwrap_or(u32::MAX);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                while inflight.try_join_next().is_some() {}
                let Some(ev) = sched.take() else { break };
                let mut client = Client::clone_identity(&pool[slot as usize % pool.len()]);
                let (sched, tally) = (sched.clone(), tally.clone());
                inflight.spawn(async move {
                    submit_group(&mut client, &sched, &tally, start, vec![ev]).await;
                });
            }
            while inflight.join_next().await.is_some() {}
        }));
    } else {
        // Closed loop: `concurrency` events in flight, `batch` per call.
        let batch = args.batch.max(1);
        for w in 0..args.concurrency.div_ceil(batch) {
            let mut client = Client::clone_identity(&clients[w % clients.len()]);
            let (sched, tally) = (sched.clone(), tally.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let evs = sched.take_many(batch);
                    if evs.is_empty() {
                        return;
                    }
                    submit_group(&mut client, &sched, &tally, start, evs).await;
                }
            }));
        }
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
    let mut lat = tally.latencies.lock().map_err(|_| anyhow!("lock"))?.clone();
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
        tally.rejected.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed)
    );
    if let Some(why) = tally.first_rejection.lock().ok().and_then(|f| f.clone()) {
        println!("first rejection: {why}");
    }
    println!(
        "latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        p50 as f64 / 1000.0,
        p90 as f64 / 1000.0,
        p99 as f64 / 1000.0,
        max as f64 / 1000.0
    );
    let series = tally.per_sec.lock().map_err(|_| anyhow!("lock"))?.clone();
    if let Some(p) = &args.json {
        let v = serde_json::json!({
            "committed": committed, "seconds": elapsed, "tps": tps,
            "rejected": tally.rejected.load(Ordering::Relaxed), "failed": tally.failed.load(Ordering::Relaxed),
            "latency_ms": {"p50": p50 as f64 / 1000.0, "p90": p90 as f64 / 1000.0, "p99": p99 as f64 / 1000.0, "max": max as f64 / 1000.0},
            "concurrency": args.concurrency, "batch": args.batch, "rate": args.rate, "tx_bytes": size, "per_second": series,
            "workload": format!("{:?}", args.workload).to_lowercase(), "recipients": recipients,
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
