//! Hostile peers against a real network on 127.0.0.1 (3 customs validators
//! and a carrier learner, each a `customs-node` process; ADR 0011).
//!
//! A registered non-validator party (a broker, which runs no node of its
//! own) connects with its real libp2p identity through
//! `node/examples/hostile_peer.rs` and sends every node a forged
//! `AppendEntries` claiming the leader's node id at a far higher term, a
//! forged `InstallSnapshot`, a `Vote` at term `u64::MAX`, and a flood of
//! large requests. Each is refused with its reason code and counted in
//! `customs_peer_refused_total`; no node's term moves; every acknowledged
//! transaction stays, writes continue, and all nodes keep identical block
//! hashes. Then a party revoked by governance tries again and cannot even
//! connect: the allowlist follows the committed chain config.
//!
//! Every wait is on a condition with a deadline, never on a fixed sleep.

mod common;

use common::{event, Net, STANDARD};
use ledger::EventKind as K;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The hostile identity (a registered broker without a node), the party
/// revoked mid-test (an exporter without a node), and an auditor.
const EXTRA: [(&str, &str); 2] = [("broker", "broker"), ("rogue", "exporter")];

async fn terms(net: &Net) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for p in net.procs.keys() {
        let s = net.client(p, p).await.status().await.unwrap();
        t.insert(p.clone(), s.term);
    }
    t
}

/// Refusals of `reason` counted by every node, at least `n` each.
fn counted(net: &Net, reason: &str, n: u64) {
    for p in net.procs.keys() {
        let name = format!("customs_peer_refused_total{{reason=\"{reason}\"}}");
        let got = net.metric(p, &name).unwrap_or(0);
        assert!(
            got >= n,
            "{p} counted {got} {reason} refusals, expected at least {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_cannot_steer_consensus() {
    let mut net = Net::new(&STANDARD, 3, &EXTRA, "");
    net.start_all();
    let mut acked = Vec::new();
    let mut c = net.client("carrier", "carrier").await;
    for i in 0..3 {
        let tx = event(&net, K::ShipmentBooked, &format!("HOST-A{i}"), "carrier");
        let r = c.submit_retry(&tx, Duration::from_secs(30)).await;
        assert!(r.height > 0, "{r:?}");
        acked.push(tx.id().unwrap());
    }
    let lead = net.leader(Duration::from_secs(30)).await;
    let lead_id = common::node_id(&lead);
    let before = terms(&net).await;

    // Forged leadership, forged snapshot, absurd vote: refused before Raft.
    let claim = lead_id.to_string();
    let carrier_id = common::node_id("carrier").to_string();
    for (name, args) in [
        (
            "append-entries",
            vec!["--claim-node", claim.as_str(), "--term", "1000"],
        ),
        (
            "install-snapshot",
            vec!["--claim-node", claim.as_str(), "--term", "1000"],
        ),
        (
            "vote",
            vec!["--claim-node", carrier_id.as_str(), "--term", "max"],
        ),
        (
            "vote",
            vec!["--claim-node", claim.as_str(), "--term", "max"],
        ),
    ] {
        for o in net.hostile("broker", name, &args) {
            println!(
                "{name} {args:?} -> {}: {} {}",
                o.target, o.outcome, o.detail
            );
            assert_eq!(o.outcome, "refused", "{name} to {}: {o:?}", o.target);
            assert!(
                o.detail.starts_with("PEER_NOT_VALIDATOR"),
                "{name} to {}: {o:?}",
                o.target
            );
        }
    }
    counted(&net, "PEER_NOT_VALIDATOR", 4);
    for p in net.procs.keys() {
        let name = "customs_peer_refused_total{reason=\"PEER_NOT_VALIDATOR\"}";
        println!("{p}: {name} {}", net.metric(p, name).unwrap_or(0));
    }
    let flood_before: BTreeMap<String, u64> = net
        .procs
        .keys()
        .map(|p| {
            let name = "customs_peer_refused_total{reason=\"PEER_NOT_VALIDATOR\"}";
            (p.clone(), net.metric(p, name).unwrap_or(0))
        })
        .collect();

    // A flood of large requests: nothing reaches Raft, the node answers
    // each with a refusal (over budget or unauthorised), and stays up.
    for o in net.hostile("broker", "flood", &["--count", "300", "--bytes", "262144"]) {
        println!("flood -> {}: {} {}", o.target, o.outcome, o.detail);
        assert_eq!(o.outcome, "refused", "flood to {}: {o:?}", o.target);
        assert!(o.detail.contains("answered:0"), "{o:?}");
    }
    // Every flood request was refused unread or over budget, and counted.
    for p in net.procs.keys() {
        let name = "customs_peer_refused_total{reason=\"PEER_NOT_VALIDATOR\"}";
        let got = net.metric(p, name).unwrap_or(0) - flood_before[p];
        assert!(got > 0, "{p} counted no flood refusal");
    }

    // No forged term was taken (honest elections may still happen on a
    // loaded machine), writes continue, one history.
    for (p, t) in terms(&net).await {
        assert!(t < 1000, "{p} took a forged term: {t} (before: {before:?})");
    }
    for i in 0..3 {
        let tx = event(&net, K::ShipmentBooked, &format!("HOST-B{i}"), "carrier");
        let r = c.submit_retry(&tx, Duration::from_secs(30)).await;
        acked.push(tx.id().unwrap());
        net.converge(r.height, Duration::from_secs(30)).await;
    }
    for p in net.procs.keys() {
        net.check_acked(p, &acked).await;
    }

    // A lying learner: the carrier's node is down and its identity answers
    // every append of the leader with a vote 1000 terms higher. The leader
    // refuses the replies (a learner cannot depose it) and keeps its term.
    let before = terms(&net).await;
    net.kill9("carrier");
    let mut liar = net.example("hostile_peer", "carrier");
    liar.args([
        "--attack",
        "lying-learner",
        "--claim-node",
        &carrier_id,
        "--for-s",
        "15",
    ])
    .arg("--listen")
    .arg(format!("/ip4/127.0.0.1/tcp/{}", net.p2p["carrier"]));
    let out = tokio::task::spawn_blocking(move || liar.output().unwrap())
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    println!("lying learner: {said}");
    let replies: u64 = said
        .split("replies:")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reply count: {said}"));
    assert!(replies > 0, "the leader never reached the lying learner");
    let lead_now = net.leader(Duration::from_secs(30)).await;
    let refused = net
        .metric(&lead_now, "customs_peer_replies_refused_total")
        .unwrap_or(0);
    println!("{lead_now}: customs_peer_replies_refused_total {refused}");
    assert!(refused > 0, "the leader did not refuse the lies");
    for (p, t) in terms(&net).await {
        assert!(
            t < before[&p] + 1000,
            "{p} took the lying learner's term: {t} (before {})",
            before[&p]
        );
    }
    net.start("carrier");
    let tx = event(&net, K::ShipmentBooked, "HOST-L0", "carrier");
    let r = c.submit_retry(&tx, Duration::from_secs(30)).await;
    acked.push(tx.id().unwrap());
    net.converge(r.height, Duration::from_secs(30)).await;

    // Revoked by governance: its node is disconnected and cannot connect.
    let other = ["de-customs", "fr-customs", "pl-customs"]
        .into_iter()
        .find(|p| *p != lead)
        .unwrap();
    let mut v = net.client(&lead, &lead).await;
    let r = v
        .submit_retry(
            &common::governance(
                &net,
                &lead,
                &[other],
                K::PartyRevoked,
                ledger::tx::Governance::RevokeParty {
                    party: "rogue".into(),
                },
            ),
            Duration::from_secs(30),
        )
        .await;
    net.converge(r.height, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcomes = net.hostile("rogue", "append-entries", &["--connect-s", "3"]);
        if outcomes.iter().all(|o| o.outcome == "unreachable") {
            for o in &outcomes {
                println!(
                    "revoked append-entries -> {}: {} {}",
                    o.target, o.outcome, o.detail
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a revoked party still reaches a node: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // (Naming only parties still active: a shipment cannot name the revoked.)
    let tx = common::event_naming(
        &net.genesis(),
        &net.key("carrier"),
        K::ShipmentBooked,
        "HOST-C0",
        "carrier",
        &["broker"],
    );
    let r = c.submit_retry(&tx, Duration::from_secs(30)).await;
    acked.push(tx.id().unwrap());
    net.converge(r.height, Duration::from_secs(30)).await;
    for p in net.procs.keys() {
        net.check_acked(p, &acked).await;
    }
}

/// A single validator's Admin calls cannot bind a node id to a party the
/// address book does not, nor promote a non-validator's node: the party of
/// a Raft member is never taken from a request label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cannot_relabel_or_promote_nodes() {
    use proto::v1;
    use proto::v1::admin_client::AdminClient;
    let mut net = Net::new(&STANDARD, 3, &[], "");
    net.start_all();
    let lead = net.leader(Duration::from_secs(30)).await;
    let ch = tonic::transport::Channel::from_shared(net.url(&lead))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = AdminClient::new(ch);
    let key = net.key(&lead);

    // An id the address book does not know, labelled as a validator; the
    // carrier's node (id 4) relabelled as a validator.
    for (node_id, party, code) in [
        (99, "fr-customs", "UNKNOWN_NODE"),
        (4, "de-customs", "NODE_PARTY_MISMATCH"),
    ] {
        let req = v1::AddLearnerRequest {
            node_id,
            party: party.into(),
            address: "/ip4/127.0.0.1/tcp/1".into(),
        };
        let e = admin
            .add_learner(common::signed_request(
                &key,
                &lead,
                &lead,
                "/customs.v1.Admin/AddLearner",
                req,
            ))
            .await
            .unwrap_err();
        assert!(e.message().starts_with(code), "{e:?}");
    }
    // Promoting the carrier's node.
    let e = admin
        .promote_voter(common::signed_request(
            &key,
            &lead,
            &lead,
            "/customs.v1.Admin/PromoteVoter",
            v1::PromoteVoterRequest { node_id: 4 },
        ))
        .await
        .unwrap_err();
    assert!(e.message().starts_with("NOT_A_VALIDATOR"), "{e:?}");
    let s = net.client("carrier", &lead).await.status().await.unwrap();
    assert_eq!(s.members.iter().filter(|m| m.voter).count(), 3, "{s:?}");
    assert!(!s.members.iter().any(|m| m.node_id == 99), "{s:?}");
}
