//! A damaged store, with real node processes on 127.0.0.1: one bit flipped
//! in a stored block of a voter, one bit flipped in a stored Raft log entry
//! of the learner. Each node refuses to start with STORE_CORRUPT naming the
//! record (it never serves or replicates the damaged data), then
//! `customs-node --repair` moves the stores aside and the node rebuilds from
//! its peers while the rest of the network keeps committing. Afterwards every
//! node holds identical block hashes and every acknowledged transaction.

mod common;

use common::{event, Net, STANDARD};
use ledger::store::Store;
use ledger::EventKind as K;
use std::time::Duration;

const RAFT: &str = "[raft]\nheartbeat_ms = 100\nelection_min_ms = 400\nelection_max_ms = 800\nsnapshot_every = 20\nkeep_logs = 5\n";

async fn write(net: &Net, tag: &str, n: usize, acked: &mut Vec<ledger::Hash32>) {
    let mut c = net.client("carrier", "de-customs").await;
    for i in 0..n {
        let tx = event(net, K::ShipmentBooked, &format!("{tag}-{i}"), "carrier");
        c.submit_retry(&tx, Duration::from_secs(30)).await;
        acked.push(tx.id().unwrap());
    }
}

fn flip_first(bytes: &mut [u8], needle: &[u8]) {
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("marker not in the stored bytes");
    // 'B' -> 'C': still valid text, so only the integrity checks can notice.
    bytes[at] ^= 0x01;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stores_are_refused_and_repaired_from_peers() {
    let mut net = Net::new(&STANDARD, 3, &[], RAFT);
    net.start_all();
    let mut acked = Vec::new();
    write(&net, "BLOCK", 12, &mut acked).await;
    let (h, _) = net.converge(1, Duration::from_secs(30)).await;

    // 1. A bit flip in a stored block of a follower voter.
    let lead = net.leader(Duration::from_secs(20)).await;
    let victim = ["de-customs", "fr-customs", "pl-customs"]
        .into_iter()
        .find(|p| *p != lead)
        .unwrap()
        .to_string();
    net.kill9(&victim);
    {
        let store =
            ledger::store::RocksStore::open(&net.net().join(&victim).join("data/ledger")).unwrap();
        let (height, mut raw) = (1..=h)
            .find_map(|k| {
                let b = store.block(k).unwrap()?;
                (!b.txs.is_empty()).then(|| (k, b.encode().unwrap()))
            })
            .expect("a block with transactions");
        flip_first(&mut raw, b"BLOCK-");
        store.put_raw_block(height, &raw).unwrap();
    }
    let log = net.start_refused(&victim);
    assert!(
        log.contains("STORE_CORRUPT") && log.contains("block") && log.contains("--repair"),
        "{victim} did not report its damaged block:\n{log}"
    );
    // The other two voters still commit while it is down.
    write(&net, "WHILE-DOWN", 5, &mut acked).await;
    net.start_with(&victim, &["--repair"]);
    let quarantine = net.net().join(&victim).join("data/quarantine");
    assert_eq!(
        std::fs::read_dir(&quarantine).unwrap().count(),
        1,
        "the damaged stores are kept aside"
    );
    assert!(
        net.log(&victim).contains("Raft vote kept"),
        "a repaired voter keeps its vote"
    );
    let (h2, _) = net.converge(h + 5, Duration::from_secs(60)).await;
    net.check_acked(&victim, &acked).await;

    // 2. A bit flip in a stored Raft log entry of the learner.
    net.kill9("carrier");
    {
        let log =
            consensus::RocksLogStore::open(&net.net().join("carrier").join("data/raft")).unwrap();
        let (index, mut raw) = log.last_raw().unwrap().expect("a stored log entry");
        let mid = raw.len() / 2;
        raw[mid] ^= 0x10;
        log.put_raw(index, &raw).unwrap();
    }
    let log = net.start_refused("carrier");
    assert!(
        log.contains("STORE_CORRUPT") && log.contains("checksum"),
        "the learner did not report its damaged log entry:\n{log}"
    );
    write(&net, "LEARNER-DOWN", 5, &mut acked).await;
    net.start_with("carrier", &["--repair"]);
    net.converge(h2 + 5, Duration::from_secs(60)).await;
    for p in net.parties.clone() {
        net.check_acked(&p, &acked).await;
    }
    // A clean restart after repair passes the startup check.
    net.kill9("carrier");
    net.start("carrier");
    assert!(net.log("carrier").matches("store checked").count() >= 2);
}
