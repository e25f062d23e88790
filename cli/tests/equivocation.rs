//! Equivocation with real processes on 127.0.0.1: no single node can fork
//! or rewrite history unseen.
//!
//! (a) A checkpoint for a block the network never committed, signed with
//!     the leader's party key, is gossiped to every node: each refuses it,
//!     keeps it as evidence, counts it, never cosigns it and keeps cosigning
//!     its own history; the auditor's checks name the leader's party.
//! (b) A ledger edited on disk (a stopped node's stored block rewritten and
//!     made self-consistent, then the node restarted): `customsctl verify`
//!     against it fails at the edited block's height, naming the parties
//!     whose cosignatures conflict with the history it serves.
//!
//! Every wait is on a condition with a deadline, never on a fixed sleep.

mod common;

use common::{event, Net, STANDARD};
use ledger::block::{Checkpoint, Cosignature, CosignedCheckpoint};
use ledger::EventKind as K;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

const QUORUM: u32 = 3;
/// Parties without a node: the auditor, and the identity the rogue gossip peer uses.
const EXTRA: [(&str, &str); 2] = [("auditor", "auditor"), ("broker", "broker")];

fn network() -> Net {
    let mut net = Net::new(&STANDARD, QUORUM, &EXTRA, "");
    net.start_all();
    net
}

/// Evaluate `$probe` (an `Option`, may `.await`) every 100 ms until it is
/// `Some`, failing after `$secs` seconds.
macro_rules! wait_for {
    ($what:expr, $secs:expr, $probe:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            if let Some(v) = $probe {
                break v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

/// Commit one event through `node`; returns its block height.
async fn commit(net: &Net, node: &str, shipment: &str) -> u64 {
    let mut c = net.client("carrier", node).await;
    let tx = event(net, K::ShipmentBooked, shipment, "carrier");
    let r = c.submit_retry(&tx, Duration::from_secs(30)).await;
    assert!(r.height > 0, "{r:?}");
    r.height
}

/// `node`'s stored checkpoint at `height` (0: its newest with a quorum).
async fn checkpoint(net: &Net, node: &str, height: u64) -> Option<CosignedCheckpoint> {
    let mut c = net.client("auditor", node).await;
    let r = c.signed(
        "/customs.v1.Ledger/GetCheckpoint",
        proto::v1::GetCheckpointRequest { height },
    );
    let cp = c.inner.get_checkpoint(r).await.ok()?.into_inner();
    Some(CosignedCheckpoint {
        checkpoint: ledger::codec::decode(&cp.checkpoint).unwrap(),
        cosignatures: cp
            .cosignatures
            .iter()
            .map(|s| Cosignature {
                party: s.party.clone(),
                signature: ledger::Bytes(s.signature.as_slice().try_into().unwrap()),
            })
            .collect(),
    })
}

/// Parties with a valid cosignature on `cp`.
fn signers(net: &Net, cp: &CosignedCheckpoint) -> Vec<String> {
    ledger::block::equivocation::check_cosignatures(cp, &net.genesis())
        .0
        .into_iter()
        .collect()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "command failed:\nstdout: {out}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "command should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The parties an auditor error names in its "parties whose signatures
/// conflict: a, b" clause.
fn named(err: &str) -> Vec<String> {
    let tail = err
        .split("parties whose signatures conflict: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no parties named in: {err}"));
    tail.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .split(", ")
        .map(|s| s.trim().to_string())
        .collect()
}

/// The rogue gossip peer (`node/examples/cosign_gossip.rs`), killed on drop.
struct Rogue(Child);

impl Drop for Rogue {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rogue(net: &Net, identity: &str, message: &std::path::Path) -> Rogue {
    let mut cmd = net.example("cosign_gossip", identity);
    cmd.arg("--message")
        .arg(message)
        .args(["--every-ms", "300", "--for-s", "300"]);
    let log = std::fs::File::create(net.dir.path().join("rogue.log")).unwrap();
    Rogue(
        cmd.stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// The same height as `cp`, another block and tree: what a leader signing
/// a fork it never committed would present.
fn fork_of(cp: &Checkpoint) -> Checkpoint {
    let mut f = cp.clone();
    f.block_hash.0[0] ^= 0x5a;
    f.tree_root.0[0] ^= 0x5a;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_leader_checkpoint_is_refused_and_its_signer_named() {
    let net = network();
    for i in 0..3 {
        commit(&net, "carrier", &format!("EQ-A{i}")).await;
    }
    let (tip, _) = net.converge(3, Duration::from_secs(30)).await;
    let lead = net.leader(Duration::from_secs(30)).await;

    // The leader's own node holds its cosignature of the tip.
    let honest = wait_for!(
        "the leader's cosignature of the tip",
        30,
        checkpoint(&net, &lead, tip)
            .await
            .filter(|cp| signers(&net, cp).contains(&lead))
    );
    let h = honest.checkpoint.height;

    // The leader's party key signs a checkpoint for another block at h.
    let forged = fork_of(&honest.checkpoint);
    let sig = forged.cosign(&lead, &net.key(&lead)).unwrap();
    let dir = net.dir.path().to_path_buf();
    let msg = dir.join("forged-message.json");
    std::fs::write(
        &msg,
        serde_json::json!({"checkpoint": forged, "cosignature": sig, "wants_quorum": true})
            .to_string(),
    )
    .unwrap();
    let forged_file = dir.join("forged.json");
    let forged_cp = CosignedCheckpoint {
        checkpoint: forged.clone(),
        cosignatures: vec![sig.clone()],
    };
    std::fs::write(
        &forged_file,
        serde_json::to_string_pretty(&forged_cp).unwrap(),
    )
    .unwrap();

    // Gossip it to every node from another registered peer identity.
    let rogue = rogue(&net, "broker", &msg);
    let parties: Vec<String> = net.procs.keys().cloned().collect();
    for p in &parties {
        wait_for!(
            format!("{p} to count the equivocation"),
            60,
            (net.metric(p, "customs_equivocations_total").unwrap_or(0) >= 1
                && net.metric(p, "customs_equivocation_evidence").unwrap_or(0) >= 1)
                .then_some(())
        );
    }
    drop(rogue);
    for p in &parties {
        assert!(
            net.log(p).contains("EQUIVOCATION")
                && net.log(p).contains("kept equivocation evidence"),
            "{p} did not log the equivocation"
        );
        // Nobody stores (let alone cosigns) the forged checkpoint at h.
        if let Some(cp) = checkpoint(&net, p, h).await {
            assert_eq!(cp.checkpoint, honest.checkpoint, "{p} at height {h}");
        }
    }

    // The honest nodes keep cosigning their own history.
    let h2 = commit(&net, "fr-customs", "EQ-A9").await;
    net.converge(h2, Duration::from_secs(30)).await;
    for p in &parties {
        wait_for!(
            format!("{p}'s quorum checkpoint past the fork"),
            30,
            checkpoint(&net, p, 0)
                .await
                .filter(|cp| cp.checkpoint.height >= h2 && signers(&net, cp).len() >= 3)
        );
    }

    // The auditor: every node against the forged checkpoint names the leader only.
    let mut args: Vec<String> = vec![
        "check-checkpoints".into(),
        "--checkpoint".into(),
        forged_file.display().to_string(),
    ];
    for p in &parties {
        args.push("--node".into());
        args.push(net.url(p));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = fails(&net.ctl("auditor", "de-customs", &argv));
    eprintln!("check-checkpoints with the forged checkpoint:\n{e}");
    assert!(
        e.contains(&format!(
            "{lead} signed two different checkpoints at height {h}"
        )),
        "{e}"
    );
    assert_eq!(named(&e), std::slice::from_ref(&lead), "{e}");
    // The nodes alone agree (their checkpoints at h and their newest).
    let h_arg = h.to_string();
    let mut honest_only = vec!["check-checkpoints", "--height", h_arg.as_str()];
    honest_only.extend(argv.iter().skip(3).copied());
    let o = ok(&net.ctl("auditor", "de-customs", &honest_only));
    assert!(o.contains("checkpoints consistent"), "{o}");

    // A cosignature that does not verify against the body is named.
    let mut tampered = honest.clone();
    tampered.cosignatures = vec![
        honest.checkpoint.cosign(&lead, &net.key(&lead)).unwrap(),
        Cosignature {
            party: "fr-customs".into(),
            signature: sig.signature,
        },
    ];
    let tampered_file = dir.join("tampered.json");
    std::fs::write(&tampered_file, serde_json::to_string(&tampered).unwrap()).unwrap();
    let e = fails(&net.ctl(
        "auditor",
        "de-customs",
        &[
            "check-checkpoints",
            "--checkpoint",
            tampered_file.to_str().unwrap(),
            "--node",
            &net.url(&lead),
        ],
    ));
    assert!(
        e.contains("the cosignature attributed to fr-customs on the checkpoint at height")
            && e.contains("does not verify"),
        "{e}"
    );
    assert_eq!(named(&e), ["fr-customs".to_string()], "{e}");

    // The forged checkpoint as the auditor's trusted one: history rewritten,
    // the leader named (it signed both checkpoints at height h).
    let trust = dir.join("trusted.json");
    std::fs::copy(&forged_file, &trust).unwrap();
    let e = fails(&net.ctl(
        "auditor",
        &lead,
        &["verify", "--trust", trust.to_str().unwrap()],
    ));
    eprintln!("verify --trust forged.json:\n{e}");
    assert!(e.contains("HISTORY REWRITTEN"), "{e}");
    assert!(
        e.contains(&format!(
            "{lead} signed two different checkpoints at height {h}"
        )),
        "{e}"
    );
    assert_eq!(named(&e), std::slice::from_ref(&lead), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_edited_on_disk_fails_verify_at_that_block() {
    let mut net = network();
    let victim = "carrier";
    let f = commit(&net, "de-customs", "EQ-B0").await;
    // The victim holds cosigned checkpoints at f (and below, for an exact answer).
    for h in (f.saturating_sub(1)..=f).filter(|h| *h > 0) {
        wait_for!(
            format!("{victim}'s quorum checkpoint at {h}"),
            60,
            checkpoint(&net, victim, h)
                .await
                .filter(|cp| signers(&net, cp).len() >= QUORUM as usize)
        );
    }
    for i in 1..4 {
        commit(&net, "fr-customs", &format!("EQ-B{i}")).await;
    }
    let (tip, _) = net.converge(f + 3, Duration::from_secs(30)).await;
    wait_for!(
        "a quorum checkpoint at the tip",
        60,
        checkpoint(&net, victim, 0)
            .await
            .filter(|cp| cp.checkpoint.height == tip)
    );
    let trust = net.dir.path().join("trusted.json");
    let v = ok(&net.ctl(
        "auditor",
        victim,
        &["verify", "--trust", trust.to_str().unwrap()],
    ));
    assert!(v.contains("chain OK"), "{v}");

    // Stop the node and rewrite block f on disk: a results entry changed
    // and the header's results root recomputed, so the block is
    // self-consistent but its hash is not the one that was cosigned.
    net.kill9(victim);
    {
        let store =
            ledger::RocksStore::open(&net.net().join(victim).join("data").join("ledger")).unwrap();
        use ledger::Store;
        let mut b = store.block(f).unwrap().unwrap();
        let before = b.hash().unwrap();
        assert!(!b.results.is_empty(), "block {f} holds the event");
        b.results[0].outcome.push(ledger::outcome::SealedOutcome {
            class: ledger::FieldClass::Security,
            key_id: ledger::Hash32::ZERO,
            ciphertext: b"REWRITTEN_ON_DISK".to_vec(),
        });
        let ids: Vec<_> = b.results.iter().map(|r| r.tx_id).collect();
        let (tx_root, results_root) = ledger::block::body_roots(&ids, &b.results).unwrap();
        assert_eq!(tx_root, b.header.tx_root);
        b.header.results_root = results_root;
        assert_ne!(b.hash().unwrap(), before);
        store.put_raw_block(f, &b.encode().unwrap()).unwrap();
        // Alone, that edit makes the node refuse to serve block f (its hash
        // is not the tree leaf recorded at commit: STORE_CORRUPT). A
        // dishonest operator also rewrites the tree so the node serves it;
        // the auditor must catch that.
        let e = ledger::Ledger::open(&store).unwrap().block(f).unwrap_err();
        assert!(e.to_string().contains("ledger-tree leaf"), "{e}");
        let mut level = 0u8;
        let mut index = f;
        let mut node = ledger::merkle::leaf_hash(&b.hash().unwrap().0);
        loop {
            store.put_raw_merkle_node(level, index, &node).unwrap();
            let sibling = store.merkle_node(level, index ^ 1).unwrap();
            let Some(sib) = sibling else { break };
            node = if index % 2 == 0 {
                ledger::merkle::node_hash(&node, &sib)
            } else {
                ledger::merkle::node_hash(&sib, &node)
            };
            level += 1;
            index /= 2;
            if store.merkle_node(level, index).unwrap().is_none() {
                break;
            }
        }
    }
    // Started as configured, the node's startup walk refuses the edited
    // chain (the next block no longer links to f, or the tip record no
    // longer matches it). The dishonest
    // operator turns that walk off too; the auditor must still catch it.
    let log = net.start_refused(victim);
    assert!(log.contains("STORE_CORRUPT"), "{log}");
    net.start_with(victim, &["--set", "check_store_on_start=false"]);

    let e = fails(&net.ctl("auditor", victim, &["verify"]));
    eprintln!("verify against the edited node:\n{e}");
    assert!(
        e.contains(&format!("HISTORY CONFLICT at block {f}:")),
        "{e}"
    );
    let at_f = checkpoint(&net, victim, f).await.expect("checkpoint at f");
    let who = signers(&net, &at_f);
    assert!(who.len() >= QUORUM as usize, "{who:?}");
    for p in &who {
        assert!(e.contains(p.as_str()), "{p} not named: {e}");
    }
    assert!(e.contains(&format!("checkpoint at height {f}")), "{e}");
    // With the trusted checkpoint from before the edit: the same answer.
    let e = fails(&net.ctl(
        "auditor",
        victim,
        &["verify", "--trust", trust.to_str().unwrap()],
    ));
    assert!(
        e.contains(&format!("HISTORY CONFLICT at block {f}:")),
        "{e}"
    );
    // An honest node still verifies, and the trusted checkpoint still holds.
    let v = ok(&net.ctl(
        "auditor",
        "pl-customs",
        &["verify", "--trust", trust.to_str().unwrap()],
    ));
    assert!(v.contains("consistent with trusted checkpoint"), "{v}");
}
