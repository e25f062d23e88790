//! Fault schedules against real node processes: 3 customs voters and a
//! carrier learner on 127.0.0.1, every node-to-node link through a fault
//! proxy (`common::proxy`). Under a steady write load, each seeded
//! schedule applies faults one after another (SIGKILL of the leader or a
//! follower, SIGSTOP/SIGCONT pauses, restarts, isolating the leader, a 2/2
//! split with the learner, a whole-cluster crash, a hostile registered
//! peer sending forged Raft messages and a request flood to every node),
//! heals, and then checks:
//! - every acknowledged transaction is on every node exactly once,
//! - no transaction is committed twice at all,
//! - every node holds the same block hashes, each block linked to its
//!   predecessor,
//! - after the leader dies (killed, paused or cut off), the first new
//!   write commits within 3 s (see `resume_limit` for debug builds).
//!
//! A failing schedule prints its seed; `FAULT_SEED=N` reruns exactly that
//! schedule (the same faults in the same order against the same roles).
//! CI runs `FAULT_SCHEDULES` (default 2) schedules from `FAULT_SEED_BASE`
//! (default 3: seed 3 includes a hostile peer); the long run is
//! `testnet/faults.sh [SCHEDULES] [SEED_BASE]` (release build, 100 schedules
//! by default, FAULT_CONTINUE=1: a slow failover is reported with the node
//! logs copied out and the run goes on; it still fails at the end).

mod common;

use common::{Net, STANDARD};
use ledger::{Block, EventKind as K, Hash32};
use proto::v1;
use proto::v1::ledger_client::LedgerClient;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Raft timing is the node's default (what the failover target is about);
/// only snapshots are made frequent.
const RAFT: &str = "[raft]\nsnapshot_every = 200\nkeep_logs = 50\n";
const VOTERS: [&str; 3] = ["de-customs", "fr-customs", "pl-customs"];
const LEARNER: &str = "carrier";
/// Writes must resume this soon after the leader dies: the 3 s target of
/// DESIGN.md in release builds; debug builds (CI runs the tests unoptimised,
/// four nodes on two cores) get twice that. `FAULT_RESUME_LIMIT_MS`
/// overrides both. Every measured time is printed either way.
fn resume_limit() -> Duration {
    let default = if cfg!(debug_assertions) { 6000 } else { 3000 };
    Duration::from_millis(
        std::env::var("FAULT_RESUME_LIMIT_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

/// splitmix64: a tiny deterministic generator, so a seed names a schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    KillLeader,
    KillFollower,
    PauseLeader,
    PauseFollower,
    IsolateLeader,
    /// Two voters on one side; the third voter with the learner on the other.
    SplitTwoTwo,
    CrashAll,
    /// A registered non-validator party (`HOSTILE`) sends every node forged
    /// `AppendEntries` and `Vote` messages claiming the leader's node id at
    /// far higher terms, and a request flood (`node/examples/hostile_peer.rs`):
    /// each must be refused while the load goes on.
    HostilePeer,
}

/// The identity of the hostile peer: a registered broker without a node.
const HOSTILE: (&str, &str) = ("broker", "broker");

const FAULTS: [Fault; 8] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::PauseLeader,
    Fault::PauseFollower,
    Fault::IsolateLeader,
    Fault::SplitTwoTwo,
    Fault::CrashAll,
    Fault::HostilePeer,
];

impl Fault {
    /// Does this fault take the leader away while the other voters run on
    /// (so the failover time is measured)?
    fn measures_failover(self) -> bool {
        matches!(
            self,
            Fault::KillLeader | Fault::PauseLeader | Fault::IsolateLeader
        )
    }
}

async fn connect(url: &str) -> Option<LedgerClient<Channel>> {
    let ch = Channel::from_shared(url.to_string())
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(5));
    let ch = tokio::time::timeout(Duration::from_secs(1), ch.connect())
        .await
        .ok()?
        .ok()?;
    Some(LedgerClient::new(ch).max_decoding_message_size(64 << 20))
}

/// What clients need to reach the network (cheap to clone into tasks).
#[derive(Clone)]
struct Target {
    urls: BTreeMap<String, String>,
    seed: [u8; 32],
    cfg: ledger::ChainConfig,
}

impl Target {
    fn of(net: &Net) -> Target {
        Target {
            urls: net
                .parties
                .iter()
                .map(|p| (p.clone(), net.url(p)))
                .collect(),
            seed: net.key(LEARNER).seed(),
            cfg: net.genesis(),
        }
    }

    /// An authenticated client (as the carrier) to `node`, or None when it
    /// does not answer.
    async fn client(&self, node: &str) -> Option<common::Api> {
        Some(common::Api {
            inner: connect(&self.urls[node]).await?,
            party: LEARNER.into(),
            node: node.into(),
            key: ledger::crypto::Keypair::from_seed(&self.seed),
        })
    }

    /// A fresh signed booking by the carrier.
    fn booking(&self, shipment: &str) -> ledger::SignedTransaction {
        common::event_with(
            &self.cfg,
            &ledger::crypto::Keypair::from_seed(&self.seed),
            K::ShipmentBooked,
            shipment,
            LEARNER,
        )
    }
}

async fn status_of(t: &Target, node: &str) -> Option<v1::StatusResponse> {
    let mut c = t.client(node).await?;
    tokio::time::timeout(Duration::from_secs(1), c.status())
        .await
        .ok()?
        .ok()
}

/// The leader as the voters that answer see it (None while there is none
/// or they disagree).
async fn current_leader(t: &Target, up: &BTreeSet<String>) -> Option<String> {
    let mut seen = BTreeSet::new();
    for v in VOTERS.iter().filter(|v| up.contains(**v)) {
        if let Some(s) = status_of(t, v).await {
            if s.raft_role == "leader" {
                seen.insert(v.to_string());
            }
        }
    }
    if seen.len() == 1 {
        seen.into_iter().next()
    } else {
        None
    }
}

async fn wait_leader(t: &Target, up: &BTreeSet<String>, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(l) = current_leader(t, up).await {
            return l;
        }
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Shared view of the cluster for the load generator.
struct Load {
    /// Nodes currently running and reachable from the test.
    up: Mutex<BTreeSet<String>>,
    acked: Mutex<Vec<Hash32>>,
    stop: AtomicBool,
    seq: AtomicU64,
    failed: AtomicU64,
}

/// One load worker: submit unique bookings to the running nodes in turn,
/// recording every acknowledged id.
async fn worker(t: Target, load: Arc<Load>, tag: String) {
    let mut clients: BTreeMap<String, common::Api> = BTreeMap::new();
    while !load.stop.load(Ordering::SeqCst) {
        let i = load.seq.fetch_add(1, Ordering::SeqCst);
        let up: Vec<String> = load.up.lock().unwrap().iter().cloned().collect();
        if up.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let node = up[(i as usize) % up.len()].clone();
        if !clients.contains_key(&node) {
            match t.client(&node).await {
                Some(c) => {
                    clients.insert(node.clone(), c);
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let tx = t.booking(&format!("F-{tag}-{i}"));
        let id = tx.id().unwrap();
        let Some(c) = clients.get_mut(&node) else {
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(5), c.submit(&tx)).await {
            Ok(Ok(r)) => {
                assert!(r.height > 0, "acknowledged without a height: {r:?}");
                load.acked.lock().unwrap().push(id);
            }
            Ok(Err(s)) if s.code() == tonic::Code::AlreadyExists => {
                load.acked.lock().unwrap().push(id);
            }
            Ok(Err(s)) => {
                load.failed.fetch_add(1, Ordering::Relaxed);
                if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown) {
                    clients.remove(&node);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                load.failed.fetch_add(1, Ordering::Relaxed);
                clients.remove(&node);
            }
        }
    }
}

/// Time from `since` until a fresh write submitted to a node of `majority`
/// commits. Like an impatient client: a new attempt starts every 100 ms
/// (round robin over `majority`), each allowed 3 s, and the first commit
/// counts, so a node that hangs on a dead leader does not hide the others.
async fn time_to_resume(t: &Target, majority: &[String], since: Instant, seed: u64) -> Duration {
    let deadline = since + Duration::from_secs(30);
    let mut attempts = tokio::task::JoinSet::new();
    let mut n = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                assert!(
                    Instant::now() < deadline,
                    "seed {seed}: writes did not resume within 30 s"
                );
                let node = majority[n % majority.len()].clone();
                n += 1;
                let t = t.clone();
                let tx = t.booking(&format!("R-{seed}-{}-{n}", since.elapsed().as_nanos()));
                attempts.spawn(async move {
                    let mut c = t.client(&node).await?;
                    match tokio::time::timeout(Duration::from_secs(3), c.submit(&tx)).await {
                        Ok(Ok(_)) => Some(Instant::now()),
                        _ => None,
                    }
                });
            }
            Some(done) = attempts.join_next() => {
                if let Ok(Some(at)) = done {
                    attempts.abort_all();
                    return at - since;
                }
            }
        }
    }
}

/// All blocks of `node`, from height 1 to its tip.
async fn blocks_of(t: &Target, node: &str) -> Vec<(Hash32, Block)> {
    let mut c = t
        .client(node)
        .await
        .unwrap_or_else(|| panic!("{node} does not answer"));
    let tip = c.status().await.unwrap().height;
    let mut out = Vec::new();
    for h in 0..=tip {
        let r = c.signed(
            "/customs.v1.Ledger/GetBlock",
            v1::GetBlockRequest { height: h },
        );
        let b = c.inner.get_block(r).await.unwrap().into_inner();
        let block = Block::decode(&b.block).unwrap();
        let hash = block.header.hash().unwrap();
        assert_eq!(
            block.header.height, h,
            "{node}: block {h} has another height"
        );
        assert_eq!(
            b.block_hash,
            hash.0.to_vec(),
            "{node}: block {h} hash field"
        );
        out.push((hash, block));
    }
    out
}

/// After healing: identical, linked chains holding every acknowledged
/// transaction exactly once.
async fn check_invariants(net: &Net, acked: &[Hash32], seed: u64) -> u64 {
    let (h, _) = net.converge(1, Duration::from_secs(90)).await;
    let mut reference: Option<Vec<Hash32>> = None;
    let t = Target::of(net);
    for node in net.procs.keys() {
        // No customs node disagreed with an outcome its leader recorded.
        let status = t.client(node).await.unwrap().status().await.unwrap();
        assert_eq!(
            status.divergence_height, 0,
            "seed {seed}: {node} recorded a content divergence: {}",
            status.divergence
        );
        let chain = blocks_of(&t, node).await;
        for w in chain.windows(2) {
            assert_eq!(
                w[1].1.header.prev_hash, w[0].0,
                "seed {seed}: {node}: block {} does not link to its predecessor",
                w[1].1.header.height
            );
        }
        let mut count: BTreeMap<Hash32, u32> = BTreeMap::new();
        for (_, b) in &chain {
            for t in &b.txs {
                *count.entry(t.id().unwrap()).or_default() += 1;
            }
        }
        if let Some((id, n)) = count.iter().find(|(_, n)| **n > 1) {
            panic!("seed {seed}: {node} holds {id} {n} times");
        }
        for id in acked {
            assert!(
                count.contains_key(id),
                "seed {seed}: {node} lost acknowledged transaction {id}"
            );
        }
        let hashes: Vec<Hash32> = chain.iter().map(|(h, _)| *h).collect();
        match &reference {
            None => reference = Some(hashes),
            Some(r) => assert_eq!(r, &hashes, "seed {seed}: {node} holds other blocks"),
        }
    }
    h
}

/// Prints the seed of a schedule that panicked.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "FAILING SEED {0}: rerun with FAULT_SEED={0} cargo test -p cli --test faults -- --nocapture",
                self.0
            );
        }
    }
}

/// Slow failovers seen so far (FAULT_CONTINUE=1 only).
static SLOW: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn continue_on_slow() -> bool {
    std::env::var("FAULT_CONTINUE").is_ok_and(|v| v == "1")
}

/// Copy the node logs of this schedule out of its temporary directory.
fn keep_logs(net: &Net, seed: u64) -> std::path::PathBuf {
    let to = std::env::temp_dir().join(format!("customs-fault-logs/seed-{seed}"));
    net.copy_logs(&to);
    to
}

async fn run_schedule(seed: u64, steps: usize) -> Vec<(Fault, Option<Duration>)> {
    let _guard = SeedGuard(seed);
    let mut rng = Rng(seed);
    let mut net = Net::new(&STANDARD, 3, &[HOSTILE], RAFT).with_links();
    net.start_all();
    let t = Target::of(&net);
    let all: BTreeSet<String> = net.parties.iter().cloned().collect();
    let mut leader = wait_leader(&t, &all, Duration::from_secs(30)).await;
    net.converge(0, Duration::from_secs(30)).await;

    let load = Arc::new(Load {
        up: Mutex::new(all.clone()),
        acked: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        seq: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(worker(t.clone(), load.clone(), format!("{seed}-{w}"))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut report = Vec::new();
    for _ in 0..steps {
        let fault = FAULTS[rng.below(FAULTS.len() as u64) as usize];
        let hold = Duration::from_millis(800 + rng.below(1200));
        let followers: Vec<String> = VOTERS
            .iter()
            .filter(|v| **v != leader)
            .map(|s| s.to_string())
            .collect();
        let follower = followers[rng.below(2) as usize].clone();
        let other = followers.iter().find(|f| **f != follower).unwrap().clone();
        println!("seed {seed}: {fault:?} (leader {leader}, follower {follower}, hold {hold:?})");
        // `majority`: voters that can still commit while the fault lasts.
        let mut majority: Vec<String> = followers.clone();
        let mut stopped: Vec<String> = Vec::new();
        let mut killed: Vec<String> = Vec::new();
        match fault {
            Fault::KillLeader => killed.push(leader.clone()),
            Fault::KillFollower => {
                killed.push(follower.clone());
                majority = vec![leader.clone(), other.clone()];
            }
            Fault::PauseLeader => stopped.push(leader.clone()),
            Fault::PauseFollower => {
                stopped.push(follower.clone());
                majority = vec![leader.clone(), other.clone()];
            }
            Fault::IsolateLeader => {}
            Fault::SplitTwoTwo => majority = vec![leader.clone(), other.clone()],
            Fault::CrashAll => killed.extend(all.iter().cloned()),
            Fault::HostilePeer => {}
        }
        {
            let mut up = load.up.lock().unwrap();
            for p in killed.iter().chain(&stopped) {
                up.remove(p);
            }
        }
        let started = Instant::now();
        for p in &stopped {
            net.signal(p, "-STOP");
        }
        for p in &killed {
            net.kill9(p);
        }
        match fault {
            Fault::IsolateLeader => net.links().isolate(&leader),
            Fault::SplitTwoTwo => net.links().partition(&[
                vec![leader.clone(), other.clone()],
                vec![follower.clone(), LEARNER.to_string()],
            ]),
            _ => {}
        }
        if let Fault::HostilePeer = fault {
            let lead_id = common::node_id(&leader).to_string();
            for (attack, args) in [
                (
                    "append-entries",
                    vec!["--claim-node", lead_id.as_str(), "--term", "100000"],
                ),
                (
                    "vote",
                    vec!["--claim-node", lead_id.as_str(), "--term", "max"],
                ),
                ("flood", vec!["--count", "200", "--bytes", "65536"]),
            ] {
                let outcomes =
                    tokio::task::block_in_place(|| net.hostile(HOSTILE.0, attack, &args));
                for o in outcomes {
                    assert_eq!(
                        o.outcome, "refused",
                        "seed {seed}: hostile {attack} to {} was not refused: {o:?}",
                        o.target
                    );
                }
            }
            println!("seed {seed}:   every hostile message refused");
        }
        let mut resumed = None;
        if fault.measures_failover() {
            let d = time_to_resume(&t, &majority, started, seed).await;
            println!(
                "seed {seed}:   writes resumed {} ms after {fault:?}",
                d.as_millis()
            );
            if d > resume_limit() {
                let logs = keep_logs(&net, seed);
                let msg = format!(
                    "seed {seed}: writes resumed only {d:?} after {fault:?} (node logs in {})",
                    logs.display()
                );
                // The long run reports every slow failover at the end
                // (FAULT_CONTINUE=1); by default the first one fails.
                assert!(continue_on_slow(), "{msg}");
                println!("{msg}");
                SLOW.lock().unwrap().push(msg);
            }
            resumed = Some(d);
        }
        let elapsed = started.elapsed();
        if elapsed < hold {
            tokio::time::sleep(hold - elapsed).await;
        }
        // Heal.
        for p in &stopped {
            net.signal(p, "-CONT");
        }
        net.links().heal_all();
        if !killed.is_empty() {
            let restart_at = Instant::now();
            for p in &killed {
                tokio::task::block_in_place(|| net.start(p));
            }
            if matches!(fault, Fault::CrashAll) {
                let voters: Vec<String> = VOTERS.iter().map(|s| s.to_string()).collect();
                let d = time_to_resume(&t, &voters, restart_at, seed).await;
                println!(
                    "seed {seed}:   whole cluster restarted: first write {} ms after the restarts began",
                    d.as_millis()
                );
                resumed = Some(d);
            }
        }
        {
            let mut up = load.up.lock().unwrap();
            for p in killed.iter().chain(&stopped) {
                up.insert(p.clone());
            }
        }
        report.push((fault, resumed));
        leader = wait_leader(&t, &all, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let acked = load.acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "seed {seed}: no write was acknowledged");
    let height = check_invariants(&net, &acked, seed).await;
    for node in net.procs.keys() {
        let term = status_of(&t, node).await.map_or(0, |s| s.term);
        assert!(
            term < 100_000,
            "seed {seed}: {node} took a forged term ({term})"
        );
    }
    println!(
        "seed {seed}: OK: {} acknowledged, {} failed attempts, height {height}, identical hashes on {} nodes",
        acked.len(),
        load.failed.load(Ordering::Relaxed),
        net.procs.len()
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_schedules() {
    let schedules: u64 = std::env::var("FAULT_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let steps: usize = std::env::var("FAULT_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seeds: Vec<u64> = match std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => {
            // Seeds 3 and 4 by default: seed 3's schedule includes a
            // hostile peer, so CI runs that fault kind too.
            let base: u64 = std::env::var("FAULT_SEED_BASE")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(3);
            (base..base + schedules).collect()
        }
    };
    let mut failovers = Vec::new();
    for seed in seeds {
        for (f, t) in run_schedule(seed, steps).await {
            if let Some(t) = t {
                if f.measures_failover() {
                    failovers.push(t);
                }
            }
        }
    }
    let slow = SLOW.lock().unwrap().clone();
    if !failovers.is_empty() {
        failovers.sort();
        let over = failovers.iter().filter(|d| **d > resume_limit()).count();
        println!(
            "FAILOVER over {} leader losses: {over} above the {} ms limit",
            failovers.len(),
            resume_limit().as_millis()
        );
        println!(
            "FAILOVER over {} leader losses: median {} ms, max {} ms",
            failovers.len(),
            failovers[failovers.len() / 2].as_millis(),
            failovers[failovers.len() - 1].as_millis()
        );
    }
    assert!(slow.is_empty(), "slow failovers:\n{}", slow.join("\n"));
}
