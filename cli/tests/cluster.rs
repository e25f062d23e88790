//! Replication with real processes on 127.0.0.1: commits from any node,
//! leader failover, restart catch-up, snapshot recovery of a wiped node,
//! and a minority that cannot commit. After each scenario all nodes hold
//! identical block hashes and every acknowledged transaction exactly once.

mod common;

use common::{event, governance, Net, STANDARD};
use ledger::EventKind as K;
use std::time::{Duration, Instant};

const FAST_RAFT: &str = "[raft]\nheartbeat_ms = 100\nelection_min_ms = 400\nelection_max_ms = 800\nsnapshot_every = 30\nkeep_logs = 0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_failover_catch_up_and_snapshot() {
    let mut net = Net::new(&STANDARD, 3, &[], FAST_RAFT);
    net.start_all();
    let mut acked = Vec::new();
    // Submissions to every node (followers and the learner forward to the leader).
    for (i, node) in ["de-customs", "fr-customs", "pl-customs", "carrier"]
        .iter()
        .enumerate()
    {
        let mut c = net.client("carrier", node).await;
        let tx = event(&net, K::ShipmentBooked, &format!("S-{i}"), "carrier");
        let r = c.submit_retry(&tx, Duration::from_secs(20)).await;
        assert!(r.height > 0, "{r:?}");
        acked.push(tx.id().unwrap());
    }
    let (h, _) = net.converge(1, Duration::from_secs(20)).await;
    for p in net.parties.clone() {
        net.check_acked(&p, &acked).await;
    }

    // Kill -9 the leader: writes resume on a new leader.
    let old = net.leader(Duration::from_secs(20)).await;
    net.kill9(&old);
    let killed_at = Instant::now();
    let survivor = net
        .parties
        .iter()
        .find(|p| **p != old && p.ends_with("customs"))
        .unwrap()
        .clone();
    let mut c = net.client("carrier", &survivor).await;
    let tx = event(&net, K::ShipmentBooked, "S-after-failover", "carrier");
    let r = c.submit_retry(&tx, Duration::from_secs(30)).await;
    let failover = killed_at.elapsed();
    println!(
        "FAILOVER: first commit {} ms after SIGKILL of leader {old} (height {})",
        failover.as_millis(),
        r.height
    );
    acked.push(tx.id().unwrap());

    let t = Instant::now();
    // Enough writes to trigger snapshots and purge logs.
    for i in 0..40 {
        let tx = event(&net, K::ShipmentBooked, &format!("S-bulk-{i}"), "carrier");
        c.submit_retry(&tx, Duration::from_secs(20)).await;
        acked.push(tx.id().unwrap());
    }
    println!("40 writes in {} ms", t.elapsed().as_millis());
    // Restart the killed node: it catches up.
    net.start(&old);
    let (h2, _) = net.converge(h + 41, Duration::from_secs(60)).await;
    net.check_acked(&old, &acked).await;
    println!("restarted node caught up; {} ms", t.elapsed().as_millis());

    // Wipe the learner: it recovers (from a snapshot, the log is purged).
    net.kill9("carrier");
    net.wipe("carrier");
    for i in 0..5 {
        let tx = event(&net, K::ShipmentBooked, &format!("S-wiped-{i}"), "carrier");
        c.submit_retry(&tx, Duration::from_secs(20)).await;
        acked.push(tx.id().unwrap());
    }
    net.start("carrier");
    net.converge(h2 + 5, Duration::from_secs(60)).await;
    for p in net.parties.clone() {
        net.check_acked(&p, &acked).await;
    }
    assert!(
        net.log("carrier").contains("snapshot") || net.log("carrier").contains("Snapshot"),
        "expected the wiped node to install a snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_cannot_commit() {
    let mut net = Net::new(&STANDARD, 3, &[], FAST_RAFT);
    net.start_all();
    let mut c = net.client("carrier", "de-customs").await;
    c.submit_retry(
        &event(&net, K::ShipmentBooked, "M-0", "carrier"),
        Duration::from_secs(20),
    )
    .await;
    let (h, hash) = net.converge(1, Duration::from_secs(20)).await;
    // Pause two of three voters: de-customs alone is a minority.
    net.signal("fr-customs", "-STOP");
    net.signal("pl-customs", "-STOP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tx = event(&net, K::ShipmentBooked, "M-1", "carrier");
    let r = tokio::time::timeout(Duration::from_secs(5), c.submit(&tx)).await;
    assert!(!matches!(r, Ok(Ok(_))), "a minority committed: {r:?}");
    let s = c.status().await.unwrap();
    assert_eq!(
        (s.height, s.tip_hash.clone()),
        (h, hash.clone()),
        "minority advanced its ledger"
    );
    net.signal("fr-customs", "-CONT");
    net.signal("pl-customs", "-CONT");
    let tx2 = event(&net, K::ShipmentBooked, "M-2", "carrier");
    c.submit_retry(&tx2, Duration::from_secs(30)).await;
    net.converge(h + 1, Duration::from_secs(30)).await;
}

/// Wait until `party`'s node is (or is not) a voter in the leader's view.
async fn wait_voter(net: &Net, party: &str, voter: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = net.client("carrier", "carrier").await;
    loop {
        if let Ok(s) = c.status().await {
            let is = s.members.iter().any(|m| m.party == party && m.voter);
            let member = s.members.iter().any(|m| m.party == party);
            if is == voter && member {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{party} did not become voter={voter}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Raft membership follows the chain config: a validator majority signs
/// `SetValidator false` and that node's voter becomes a learner (joint
/// consensus, applied by the leader); two voters still commit; `SetValidator
/// true` promotes it back and it catches up. Fewer approvals change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn membership_follows_governance() {
    use ledger::tx::Governance;
    let mut net = Net::new(&STANDARD, 3, &[], FAST_RAFT);
    net.start_all();
    let mut c = net.client("carrier", "carrier").await;
    c.submit_retry(
        &event(&net, K::ShipmentBooked, "MEM-0", "carrier"),
        Duration::from_secs(20),
    )
    .await;
    let lead = net.leader(Duration::from_secs(20)).await;
    let validators = ["de-customs", "fr-customs", "pl-customs"];
    let victim = validators.into_iter().find(|p| *p != lead).unwrap();
    let other = validators
        .into_iter()
        .find(|p| *p != lead && *p != victim)
        .unwrap();
    let set = |validator: bool| Governance::SetValidator {
        party: victim.to_string(),
        validator,
    };

    // A carrier cannot, and one validator alone is not a majority of three.
    let denied = c
        .submit(&governance(
            &net,
            "carrier",
            &[],
            K::ValidatorSetChanged,
            set(false),
        ))
        .await
        .unwrap_err();
    assert_ne!(denied.code(), tonic::Code::Ok);
    let lone = c
        .submit(&governance(
            &net,
            &lead,
            &[],
            K::ValidatorSetChanged,
            set(false),
        ))
        .await
        .unwrap_err();
    assert!(
        lone.message().contains("GOV_NO_QUORUM") || format!("{lone:?}").contains("GOV_NO_QUORUM"),
        "{lone:?}"
    );
    wait_voter(&net, victim, true).await;

    // A majority demotes it: the leader moves Raft membership to match.
    c.submit_retry(
        &governance(&net, &lead, &[other], K::ValidatorSetChanged, set(false)),
        Duration::from_secs(20),
    )
    .await;
    wait_voter(&net, victim, false).await;
    let r1 = c
        .submit_retry(
            &event(&net, K::ShipmentBooked, "MEM-1", "carrier"),
            Duration::from_secs(20),
        )
        .await;
    assert!(r1.height > 0);
    let s = c.status().await.unwrap();
    assert_eq!(s.members.iter().filter(|m| m.voter).count(), 2, "{s:?}");

    // And promotes it back; it catches up as a voter.
    c.submit_retry(
        &governance(&net, &lead, &[other], K::ValidatorSetChanged, set(true)),
        Duration::from_secs(20),
    )
    .await;
    wait_voter(&net, victim, true).await;
    let r2 = c
        .submit_retry(
            &event(&net, K::ShipmentBooked, "MEM-2", "carrier"),
            Duration::from_secs(20),
        )
        .await;
    net.converge(r2.height, Duration::from_secs(30)).await;
    let s = net.client("carrier", victim).await.status().await.unwrap();
    assert_eq!(s.height, r2.height);
    assert_eq!(s.members.iter().filter(|m| m.voter).count(), 3);

    // Revoking the carrier removes its node from the membership.
    let mut v = net.client(&lead, &lead).await;
    v.submit_retry(
        &governance(
            &net,
            &lead,
            &[other],
            K::PartyRevoked,
            Governance::RevokeParty {
                party: "carrier".into(),
            },
        ),
        Duration::from_secs(20),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = v.status().await.unwrap();
        if !s.members.iter().any(|m| m.party == "carrier") {
            assert_eq!(s.members.iter().filter(|m| m.voter).count(), 3, "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "carrier still a member: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
