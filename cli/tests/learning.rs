//! What customs learns is a function of the chain (issue 22, ADR 0014-0016),
//! on a real network (127.0.0.1, `customs-node` processes): risk ranking
//! improves as declarations commit; customs nodes that restart, or lose
//! their data and recover by snapshot, restore it from the learned records
//! stored with the blocks (carried in the snapshot) and judge every later
//! declaration exactly as the others do (0 divergences), and the
//! value-per-kg baseline is still there.

mod common;

use common::{Net, STANDARD};
use ledger::disclosure::{Draft, Field};
use ledger::EventKind as K;
use std::time::Duration;

const RAFT: &str = "[raft]\nheartbeat_ms = 100\nelection_min_ms = 400\nelection_max_ms = 800\nsnapshot_every = 20\nkeep_logs = 0\n";
const EXTRA: [(&str, &str); 2] = [("broker", "broker"), ("pl-exporter", "exporter")];
const CUSTOMS: [&str; 3] = ["de-customs", "fr-customs", "pl-customs"];

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One goods item of smartphones worth `value_minor` euro cents per 100 kg.
fn declaration(lrn: &str, value_minor: u64) -> ledger::declaration::Declaration {
    let mut d = ledger::declaration::sample();
    d.lrn = lrn.into();
    d.goods.truncate(1);
    let g = &mut d.goods[0];
    g.description = "Smartphones for cellular networks".into();
    g.hs_code = "85171300".into();
    g.gross_mass_g = 100_000;
    g.value_minor = value_minor;
    d
}

fn sealed(
    net: &Net,
    kind: K,
    ship: &str,
    submitter: &str,
    fields: Vec<Field>,
) -> ledger::SignedTransaction {
    let cfg = net.genesis();
    ledger::disclosure::seal(
        &cfg,
        &Draft {
            chain_id: cfg.chain_id.clone(),
            kind,
            shipment_id: ship.into(),
            submitter: submitter.into(),
            claimed_time_ms: now_ms(),
            fields,
            shipment_parties: vec!["broker".into(), "pl-exporter".into()],
            governance: None,
        },
    )
    .unwrap()
    .sign(&net.key(submitter))
    .unwrap()
}

/// Book and declare shipment `ship` (through `node`); the risk outcome as
/// customs reads it.
async fn declare(
    net: &Net,
    node: &str,
    ship: &str,
    value_minor: u64,
) -> ledger::block::RiskOutcome {
    let mut exporter = net.client("pl-exporter", node).await;
    let note = vec![Field {
        path: "event.note".into(),
        class: ledger::FieldClass::Public,
        value: "booked".into(),
    }];
    exporter
        .submit_retry(
            &sealed(net, K::ShipmentBooked, ship, "pl-exporter", note),
            Duration::from_secs(60),
        )
        .await;
    let mut broker = net.client("broker", node).await;
    let d = declaration(&format!("LRN-{ship}"), value_minor);
    let stx = sealed(net, K::DeclarationFiled, ship, "broker", d.to_fields());
    let r = broker.submit_retry(&stx, Duration::from_secs(60)).await;
    let result = r.result.expect("committed with a result");
    let result: ledger::TxResult = ledger::codec::decode(&result.encoded).unwrap();
    let cfg = net.genesis();
    let keys = [net.dkey("fr-customs")];
    let secrets = ledger::outcome::OutcomeKeys::for_party(&cfg, "fr-customs", &keys);
    assert_eq!(secrets.secrets.len(), 1, "customs holds the outcome secret");
    let (j, _) = ledger::outcome::open(
        &stx.tx,
        &stx.id().unwrap(),
        &result.outcome,
        "fr-customs",
        &keys,
        &secrets,
    );
    j.risk.expect("a declaration is scored")
}

fn value_per_kg_low(r: &ledger::block::RiskOutcome) -> bool {
    r.reasons.iter().any(|(c, _)| c == "RISK_VALUE_PER_KG_LOW")
}

/// `customsctl verify --file F --rejudge` as customs party `party`.
fn rejudge(net: &Net, file: &std::path::Path, party: &str) -> std::process::Output {
    std::process::Command::new(common::customsctl())
        .args(["verify", "--rejudge", "--file"])
        .arg(file)
        .arg("--genesis-file")
        .arg(net.net().join("genesis.json"))
        .args(["--as", party])
        .arg("--keys")
        .arg(net.net().join("keys"))
        .output()
        .unwrap()
}

/// Wait until every running node holds de-customs' current tip.
async fn settle(net: &Net) {
    let s = net.client("de-customs", "de-customs").await.status().await;
    net.converge(s.unwrap().height, Duration::from_secs(60))
        .await;
}

/// Every customs node's divergence count is 0.
fn no_divergence(net: &Net, when: &str) {
    for p in CUSTOMS {
        assert_eq!(
            net.metric(p, "customs_divergences_total"),
            Some(0),
            "{p} disagreed with the leader {when}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learning_survives_restart_and_snapshot_recovery() {
    let mut net = Net::new(&STANDARD, 3, &EXTRA, RAFT);
    net.start_all();
    // EUR 0.30 per kg for smartphones, before any history: nothing to
    // compare the value with.
    let before = declare(&net, "de-customs", "LRN-P0", 3_000).await;
    assert!(!value_per_kg_low(&before), "{before:?}");
    // Ordinary smartphone declarations (about EUR 250 per kg) commit...
    for i in 0..10u64 {
        declare(
            &net,
            "de-customs",
            &format!("LRN-H{i}"),
            2_500_000 + i * 10_000,
        )
        .await;
    }
    // ...and the same implausible value now ranks higher, for its value.
    let learned = declare(&net, "de-customs", "LRN-P1", 3_000).await;
    assert!(value_per_kg_low(&learned), "{learned:?}");
    assert!(learned.score > before.score, "{before:?} -> {learned:?}");
    no_divergence(&net, "while learning");

    // Two customs nodes restart: they restore what they learned.
    for p in ["de-customs", "fr-customs"] {
        net.kill9(p);
        net.start(p);
    }
    let after_restart = declare(&net, "pl-customs", "LRN-P2", 3_000).await;
    assert!(value_per_kg_low(&after_restart), "{after_restart:?}");
    no_divergence(&net, "after two restarts");
    // They restored it from the records stored with their blocks, without
    // learning anything from the blocks again (ADR 0015).
    for p in ["de-customs", "fr-customs"] {
        let log = net.log(p);
        let line = log
            .lines()
            .find(|l| l.contains("learned state restored"))
            .unwrap_or_else(|| panic!("{p} did not restore its learned state:\n{log}"));
        assert!(line.contains("blocks_relearned=0"), "{p}: {line}");
        assert!(!line.contains("journal_records=0"), "{p}: {line}");
    }

    // Enough entries for every customs node, restarted or not, to take a
    // snapshot and purge its log (snapshot_every = 20, keep_logs = 0) twice
    // over, so a node that loses its data can only catch up by snapshot.
    let mut exporter = net.client("pl-exporter", "de-customs").await;
    for i in 0..45 {
        let tx = common::event(&net, K::ShipmentBooked, &format!("LRN-B{i}"), "pl-exporter");
        exporter.submit_retry(&tx, Duration::from_secs(60)).await;
    }
    settle(&net).await;

    // One loses its data and recovers from a snapshot.
    net.kill9("pl-customs");
    net.wipe("pl-customs");
    net.start("pl-customs");
    for i in 0..3u64 {
        declare(&net, "de-customs", &format!("LRN-S{i}"), 2_500_000).await;
    }
    settle(&net).await;
    let log = net.log("pl-customs");
    assert!(
        log.to_lowercase().contains("snapshot"),
        "the wiped node did not install a snapshot"
    );
    // The snapshot carried the learned records: nothing relearned.
    let line = log
        .lines()
        .find(|l| l.contains("learned state restored"))
        .unwrap_or_else(|| panic!("pl-customs restored no learned state:\n{log}"));
    assert!(line.contains("blocks_relearned=0"), "{line}");
    let after_snapshot = declare(&net, "de-customs", "LRN-P3", 3_000).await;
    assert!(value_per_kg_low(&after_snapshot), "{after_snapshot:?}");
    settle(&net).await;
    no_divergence(&net, "after a snapshot recovery");
    // Offline: the exported (cosigned) chain re-judged as another customs
    // party gives every committed outcome back.
    let export = net.dir.path().join("chain.bin");
    let o = net.ctl(
        "de-customs",
        "de-customs",
        &["export", "--out", export.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = rejudge(&net, &export, "fr-customs");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("rejudge OK"), "{out}");
    println!("{}", out.lines().last().unwrap_or_default());
    println!(
        "risk of EUR 0.30/kg smartphones: {} without history, {} with, {} after restarts, {} after a snapshot recovery",
        before.score, learned.score, after_restart.score, after_snapshot.score
    );
}

/// A leader that records a forged outcome ("nothing found": an empty one)
/// for a declaration: every customs node recomputes it, disagrees, keeps the
/// evidence (transaction, leader, entry) with the block, reports it in
/// `Status` and metrics, and cosigns nothing from that block on, so no
/// checkpoint an auditor accepts covers it. An operator clears the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_outcome_stops_honest_customs_nodes_cosigning() {
    let mut net = Net::new(&STANDARD, 3, &EXTRA, RAFT);
    // (A debug build's test hook: whichever customs node leads forges.)
    for p in CUSTOMS {
        net.start_env(p, &[], &[("CUSTOMS_TEST_FORGE_OUTCOMES", "1")]);
    }
    net.start("carrier");
    let mut exporter = net.client("pl-exporter", "de-customs").await;
    let note = vec![Field {
        path: "event.note".into(),
        class: ledger::FieldClass::Public,
        value: "booked".into(),
    }];
    let r = exporter
        .submit_retry(
            &sealed(&net, K::ShipmentBooked, "FORGE-1", "pl-exporter", note),
            Duration::from_secs(60),
        )
        .await;
    net.converge(r.height, Duration::from_secs(30)).await;
    let mut broker = net.client("broker", "de-customs").await;
    let d = declaration("LRN-FORGE-1", 3_000);
    let stx = sealed(
        &net,
        K::DeclarationFiled,
        "FORGE-1",
        "broker",
        d.to_fields(),
    );
    let r = broker.submit_retry(&stx, Duration::from_secs(60)).await;
    let forged_at = r.height;
    let result: ledger::TxResult = ledger::codec::decode(&r.result.unwrap().encoded).unwrap();
    assert!(
        result.outcome.is_empty(),
        "the leader did not forge: {result:?}"
    );
    let leader = net.leader(Duration::from_secs(10)).await;
    net.converge(forged_at, Duration::from_secs(30)).await;
    let id = stx.id().unwrap().to_hex();
    for p in CUSTOMS {
        let s = net.client(p, p).await.status().await.unwrap();
        assert_eq!(s.divergence_height, forged_at, "{p}: {s:?}");
        assert!(s.divergence.contains(&id), "{p}: {}", s.divergence);
        assert!(s.divergence.contains(&leader), "{p}: {}", s.divergence);
        let shown = net.ctl("carrier", p, &["status"]);
        let shown = String::from_utf8_lossy(&shown.stdout).to_string();
        assert!(shown.contains("COSIGNING HALTED"), "{p}: {shown}");
    }
    // More blocks: none at or above the forged one gets a quorum.
    let r = exporter
        .submit_retry(
            &common::event(&net, K::ShipmentBooked, "FORGE-2", "pl-exporter"),
            Duration::from_secs(60),
        )
        .await;
    net.converge(r.height, Duration::from_secs(30)).await;
    for p in CUSTOMS {
        assert_eq!(
            net.metric(p, "customs_cosigning_halted_at_height"),
            Some(forged_at),
            "{p}"
        );
        let mut c = net.client("pl-exporter", p).await;
        let req = c.signed(
            "/customs.v1.Ledger/GetCheckpoint",
            proto::v1::GetCheckpointRequest { height: 0 },
        );
        match c.inner.get_checkpoint(req).await {
            Ok(cp) => assert!(
                cp.into_inner().height < forged_at,
                "{p} serves a quorum checkpoint covering the forged block"
            ),
            Err(e) => assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}"),
        }
    }
    // Re-judged offline from the blocks a node holds (the forged one was
    // never cosigned, so `export` stops before it): the mismatch is named.
    let tip = net
        .client("carrier", "carrier")
        .await
        .status()
        .await
        .unwrap()
        .height;
    let mut c = net.client("carrier", "carrier").await;
    let mut file = b"CLCHAIN1".to_vec();
    for h in 0..=tip {
        let req = c.signed(
            "/customs.v1.Ledger/GetBlock",
            proto::v1::GetBlockRequest { height: h },
        );
        let b = c.inner.get_block(req).await.unwrap().into_inner().block;
        file.extend_from_slice(&(b.len() as u32).to_le_bytes());
        file.extend_from_slice(&b);
    }
    let raw = net.dir.path().join("raw-chain.bin");
    std::fs::write(&raw, file).unwrap();
    let o = rejudge(&net, &raw, "de-customs");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success(),
        "the forged outcome passed a re-judging"
    );
    assert!(
        err.contains(&format!("REJUDGE MISMATCH block {forged_at} tx {id}")),
        "{err}"
    );
    // An auditor verifying against a disputing node hears the block named.
    let o = net.ctl("pl-exporter", "pl-customs", &["verify"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success(),
        "verify passed against a disputing node"
    );
    assert!(
        err.contains(&format!("node pl-customs disputes block {forged_at}")),
        "{err}"
    );
    // The operator investigates, then clears one node's record.
    net.kill9("fr-customs");
    net.start_with("fr-customs", &["--clear-divergence"]);
    let s = net
        .client("fr-customs", "fr-customs")
        .await
        .status()
        .await
        .unwrap();
    assert_eq!(s.divergence_height, 0, "{s:?}");
    assert!(net
        .log("fr-customs")
        .contains("divergence cleared by the operator"));
}
