//! Cluster fixtures shared by the integration tests.
#![allow(dead_code)]

use consensus::openraft::{self, SnapshotPolicy};
use consensus::testing::Router;
use consensus::{ConsensusNode, Genesis, NodeConfig, NodeId, PeerNode};
use ledger::chain::NoContent;
use ledger::testkit;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Generous bound for any wait: assertions wait on metrics, never sleep.
pub const WAIT: Duration = Duration::from_secs(20);

/// Block time used by every node's clock: near the fixtures' claimed times.
pub const NOW: u64 = testkit::T0 + 60_000;

pub fn party_of(id: NodeId) -> &'static str {
    match id {
        1 => "de-customs",
        2 => "fr-customs",
        3 => "pl-customs",
        4 => "auditor",
        5 => "broker",
        _ => "carrier",
    }
}

pub fn peer(id: NodeId) -> PeerNode {
    PeerNode::new(party_of(id), format!("mem://{id}"))
}

pub fn raft_config(snapshot_every: Option<u64>) -> openraft::Config {
    openraft::Config {
        cluster_name: "customs-test".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: match snapshot_every {
            Some(n) => SnapshotPolicy::LogsSinceLast(n),
            None => SnapshotPolicy::Never,
        },
        max_in_snapshot_log_to_keep: if snapshot_every.is_some() { 0 } else { 1000 },
        purge_batch_size: 1,
        // Small chunks so a snapshot travels in several messages.
        snapshot_max_chunk_size: 64 * 1024,
        ..Default::default()
    }
}

pub async fn start_node(
    router: &Router,
    dir: &Path,
    id: NodeId,
    snapshot_every: Option<u64>,
) -> ConsensusNode {
    start_node_with(router, dir, id, raft_config(snapshot_every)).await
}

/// [`start_node`] with these openraft settings.
pub async fn start_node_with(
    router: &Router,
    dir: &Path,
    id: NodeId,
    raft: openraft::Config,
) -> ConsensusNode {
    let cfg = NodeConfig {
        node_id: id,
        party: party_of(id).into(),
        raft,
        log_dir: dir.join(format!("log-{id}")),
        ledger_dir: dir.join(format!("ledger-{id}")),
        clock: Arc::new(|| NOW),
    };
    let genesis = Genesis {
        config: testkit::config(),
        time_ms: testkit::T0,
    };
    let node = ConsensusNode::start(cfg, genesis, Box::new(NoContent), router.transport(id))
        .await
        .expect("node starts");
    router.register(id, node.clone());
    node
}

/// Start voters `ids`, initialise them as a cluster, return them and the
/// leader's id.
pub async fn start_cluster(
    router: &Router,
    dir: &Path,
    ids: &[NodeId],
    snapshot_every: Option<u64>,
) -> (BTreeMap<NodeId, ConsensusNode>, NodeId) {
    let mut nodes = BTreeMap::new();
    for &id in ids {
        nodes.insert(id, start_node(router, dir, id, snapshot_every).await);
    }
    let members: BTreeMap<NodeId, PeerNode> = ids.iter().map(|&id| (id, peer(id))).collect();
    nodes[&ids[0]]
        .initialize(members)
        .await
        .expect("initialize");
    let leader = wait_leader(&nodes[&ids[0]], None).await;
    (nodes, leader)
}

/// Wait until `node` sees a leader other than `not`.
pub async fn wait_leader(node: &ConsensusNode, not: Option<NodeId>) -> NodeId {
    let m = node
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != not,
            "a leader is elected",
        )
        .await
        .expect("leader elected");
    m.current_leader.expect("leader")
}

/// Wait until every node's ledger reaches at least `height`, then return
/// their tips (height, hash). (A leader's applied-index metric may lag
/// behind the answer to a proposal, so tests wait on heights they know from
/// apply reports rather than on a metric read right after proposing.)
pub async fn converge(nodes: &[&ConsensusNode], height: u64) -> Vec<(u64, ledger::Hash32)> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let tips: Vec<_> = nodes
            .iter()
            .map(|n| n.ledger().tip().expect("tip"))
            .collect();
        if tips.iter().all(|t| t.height >= height) {
            return tips.into_iter().map(|t| (t.height, t.hash)).collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nodes did not reach height {height}: {:?}",
            tips.iter().map(|t| t.height).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn last_applied(node: &ConsensusNode) -> u64 {
    node.metrics()
        .borrow()
        .last_applied
        .map(|l| l.index)
        .unwrap_or(0)
}
