//! The apply path end to end: blocks from batches, rejections that change
//! nothing, chain verification from genesis, corruption detection, and
//! determinism, against both store adapters.

use ledger::chain::{verify_chain, BlockContext, NoContent};
use ledger::event::EventKind as K;
use ledger::store::testing::run_store_suite;
use ledger::testkit::{self, event, lifecycle, T0};
use ledger::{Block, Ledger, MemStore, RocksStore, SignedTransaction, Store};
use proptest::prelude::*;

fn ctx(i: u64) -> BlockContext {
    BlockContext {
        timestamp_ms: T0 + i * 1000,
        raft_term: 1,
        raft_index: i,
        proposer: "de-customs".into(),
    }
}

fn mem_ledger() -> Ledger<MemStore> {
    Ledger::init(MemStore::new(), testkit::config(), T0).unwrap()
}

fn chain_bytes<S: Store>(l: &Ledger<S>) -> Vec<Result<Vec<u8>, String>> {
    (0..=l.tip().height)
        .map(|h| Ok(l.store().block_bytes(h).unwrap().unwrap()))
        .collect()
}

/// Snapshot of everything observable about state, to prove rejections change nothing.
fn observe<S: Store>(l: &Ledger<S>, shipments: &[&str]) -> String {
    let mut out = format!("{:?} {:?}", l.tip(), l.config().seq);
    for s in shipments {
        out += &format!(
            "|{s}:{:?}:{:?}",
            l.store().shipment_state(s).unwrap(),
            l.store().shipment_events(s, None, 1000).unwrap()
        );
    }
    out
}

#[test]
fn storage_suite_memory() {
    run_store_suite(MemStore::new);
}

#[test]
fn storage_suite_rocksdb() {
    let dirs = std::cell::RefCell::new(Vec::new());
    run_store_suite(|| {
        let d = tempfile::tempdir().unwrap();
        let s = RocksStore::open(d.path()).unwrap();
        dirs.borrow_mut().push(d);
        s
    });
}

#[test]
fn lifecycle_commits_and_verifies_from_genesis() {
    let mut l = mem_ledger();
    let txs = lifecycle("SHP-1", 1, T0 + 1000);
    // One block per event: each depends on the previous state.
    for (i, tx) in txs.iter().enumerate() {
        let (block, rejected) = l
            .apply(std::slice::from_ref(tx), &ctx(i as u64 + 1), &mut NoContent)
            .unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(block.txs.len(), 1);
    }
    assert_eq!(l.tip().height, 9);
    let st = l.store().shipment_state("SHP-1").unwrap().unwrap();
    assert_eq!(st.status, ledger::Status::Delivered);
    assert_eq!(
        l.store().shipment_events("SHP-1", None, 100).unwrap().len(),
        9
    );
    let report = verify_chain(&testkit::config(), chain_bytes(&l), |_| {}).unwrap();
    assert_eq!(report.blocks, 10);
    assert_eq!(report.transactions, 9);
    assert_eq!(report.checkpoint, l.checkpoint().unwrap());
}

#[test]
fn whole_lifecycle_in_one_block_uses_pending_state() {
    let mut l = mem_ledger();
    let txs = lifecycle("SHP-2", 1, T0 + 1000);
    let (block, rejected) = l.apply(&txs, &ctx(1), &mut NoContent).unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(block.txs.len(), 9);
    let statuses: Vec<_> = block.results.iter().map(|r| r.status.unwrap()).collect();
    assert_eq!(statuses.last(), Some(&ledger::Status::Delivered));
}

#[test]
fn stored_blocks_are_the_canonical_encoding_of_what_was_built() {
    // The block's bytes are assembled from the batch's transaction
    // encodings; with a refused transaction in the middle they must still be
    // exactly what encoding the block gives.
    let mut l = mem_ledger();
    let mut txs = lifecycle("SHP-E", 1, T0 + 1000);
    let repeated = txs[2].clone();
    txs.insert(3, repeated);
    let (block, rejected) = l.apply(&txs, &ctx(1), &mut NoContent).unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(block.txs.len(), txs.len() - 1);
    let stored = l.store().block_bytes(1).unwrap().unwrap();
    assert_eq!(stored, block.encode().unwrap());
    let encs: Vec<Vec<u8>> = block.txs.iter().map(|t| t.encode().unwrap()).collect();
    let parts = Block::encode_from_parts(
        &block.header,
        encs.iter().map(Vec::as_slice),
        &block.results,
    )
    .unwrap();
    assert_eq!(parts, stored);
    // An empty block too.
    let (empty, _) = l.apply(&[], &ctx(2), &mut NoContent).unwrap();
    assert!(empty.txs.is_empty());
    assert_eq!(
        l.store().block_bytes(2).unwrap().unwrap(),
        empty.encode().unwrap()
    );
}

/// `check(tx, code)`: the transaction is refused with `code` and nothing changes.
fn check_rejected(l: &mut Ledger<MemStore>, tx: SignedTransaction, code: &str, h: u64) {
    let before = observe(l, &["SHP-R"]);
    let (block, rejected) = l.apply(&[tx], &ctx(h), &mut NoContent).unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].1.code, code, "{:?}", rejected[0].1);
    assert!(block.txs.is_empty());
    // The empty block advanced the tip but no shipment state or index moved.
    let after = observe(l, &["SHP-R"]);
    assert_eq!(
        before.split('|').skip(1).collect::<Vec<_>>(),
        after.split('|').skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn rejected_transactions_change_nothing() {
    let mut l = mem_ledger();
    let booked = event(K::ShipmentBooked, "SHP-R", "exporter", 1, T0 + 1000);
    l.apply(std::slice::from_ref(&booked), &ctx(1), &mut NoContent)
        .unwrap();
    let mut h = 2;
    let mut next = || {
        h += 1;
        h
    };
    // Replay of a committed transaction.
    check_rejected(&mut l, booked.clone(), "TX_DUPLICATE", next());
    // Wrong role: the carrier may not release.
    check_rejected(
        &mut l,
        event(K::Released, "SHP-R", "carrier", 2, T0 + 1000),
        "TX_ROLE_NOT_ALLOWED",
        next(),
    );
    // Lifecycle: release before presentation.
    check_rejected(
        &mut l,
        event(K::Released, "SHP-R", "de-customs", 3, T0 + 1000),
        "LIFECYCLE_NOT_DECLARED",
        next(),
    );
    // Bad signature: signed by someone else.
    let mut forged = event(K::DeclarationFiled, "SHP-R", "broker", 4, T0 + 1000);
    forged.signature = testkit::key("carrier").sign(b"whatever");
    check_rejected(&mut l, forged, "TX_BAD_SIGNATURE", next());
    // Tampered after signing.
    let mut tampered = event(K::DeclarationFiled, "SHP-R", "broker", 5, T0 + 1000);
    tampered.tx.public[0].value = "changed".into();
    check_rejected(&mut l, tampered, "TX_FIELDS_ROOT", next());
    // Unknown submitter.
    let mut unknown = event(K::DeclarationFiled, "SHP-R", "broker", 6, T0 + 1000);
    unknown.tx.submitter = "mallory".into();
    check_rejected(&mut l, unknown, "TX_UNKNOWN_SUBMITTER", next());
    // Wrong chain.
    let mut other = event(K::DeclarationFiled, "SHP-R", "broker", 7, T0 + 1000);
    other.tx.chain_id = "other-chain".into();
    let other = other.tx.sign(&testkit::key("broker")).unwrap();
    check_rejected(&mut l, other, "TX_WRONG_CHAIN", next());
    // Claimed time far outside the window.
    check_rejected(
        &mut l,
        event(K::DeclarationFiled, "SHP-R", "broker", 8, T0 + 86_400_000),
        "TX_TIME_WINDOW",
        next(),
    );
    // Malformed shipment id.
    check_rejected(
        &mut l,
        event(K::DeclarationFiled, "bad id!", "broker", 9, T0 + 1000),
        "TX_BAD_SHIPMENT_ID",
        next(),
    );
    // And a valid one still goes through afterwards.
    let (b, r) = l
        .apply(
            &[event(K::DeclarationFiled, "SHP-R", "broker", 10, T0 + 1000)],
            &ctx(next()),
            &mut NoContent,
        )
        .unwrap();
    assert!(r.is_empty());
    assert_eq!(b.txs.len(), 1);
    verify_chain(&testkit::config(), chain_bytes(&l), |_| {}).unwrap();
}

/// `stx` with its `parties` field set to `parties` (or removed), re-signed.
fn naming(stx: SignedTransaction, parties: Option<&str>) -> SignedTransaction {
    let mut tx = stx.tx;
    tx.public.retain(|f| f.path != "parties");
    if let Some(p) = parties {
        tx.public.push(ledger::tx::PublicField {
            path: "parties".into(),
            value: p.into(),
            salt: ledger::hash::Bytes([7; 32]),
        });
    }
    tx.fields_root = ledger::disclosure::fields_root(&tx);
    let key = testkit::key(&tx.submitter);
    tx.sign(&key).unwrap()
}

#[test]
fn only_a_shipments_own_parties_act_on_it() {
    let mut l = mem_ledger();
    // The exporter books naming only the broker: the carrier is not (yet) a
    // party of SHP-R.
    let booked = naming(
        event(K::ShipmentBooked, "SHP-R", "exporter", 1, T0 + 1000),
        Some("broker"),
    );
    let (_, r) = l.apply(&[booked], &ctx(1), &mut NoContent).unwrap();
    assert!(r.is_empty(), "{r:?}");
    let st = l.store().shipment_state("SHP-R").unwrap().unwrap();
    assert_eq!(st.parties, ["broker", "exporter"]);
    let mut h = 1;
    let mut next = || {
        h += 1;
        h
    };
    // A carrier may file declarations by policy, but not on a shipment it
    // does not belong to; nor may it attach documents to it.
    let carrier_files = naming(
        event(K::DeclarationFiled, "SHP-R", "carrier", 2, T0 + 1000),
        None,
    );
    check_rejected(&mut l, carrier_files, "TX_NOT_SHIPMENT_PARTY", next());
    check_rejected(
        &mut l,
        naming(
            event(K::DocumentAttached, "SHP-R", "carrier", 3, T0 + 1000),
            None,
        ),
        "TX_NOT_SHIPMENT_PARTY",
        next(),
    );
    // Naming an unknown party, or naming parties from an event that cannot,
    // is refused.
    check_rejected(
        &mut l,
        naming(
            event(K::DeclarationFiled, "SHP-R", "broker", 4, T0 + 1000),
            Some("carrier,mallory"),
        ),
        "TX_BAD_PARTIES",
        next(),
    );
    check_rejected(
        &mut l,
        naming(
            event(K::DocumentAttached, "SHP-R", "exporter", 5, T0 + 1000),
            Some("carrier"),
        ),
        "TX_BAD_PARTIES",
        next(),
    );
    // Customs acts on every shipment without being named.
    let (_, r) = l
        .apply(
            &[event(
                K::DocumentAttached,
                "SHP-R",
                "de-customs",
                6,
                T0 + 1000,
            )],
            &ctx(next()),
            &mut NoContent,
        )
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    // The broker files and assigns the carrier, which may then act.
    let filed = naming(
        event(K::DeclarationFiled, "SHP-R", "broker", 7, T0 + 1000),
        Some("carrier"),
    );
    let attach = naming(
        event(K::DocumentAttached, "SHP-R", "carrier", 8, T0 + 1000),
        None,
    );
    let (b, r) = l
        .apply(&[filed, attach], &ctx(next()), &mut NoContent)
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(b.txs.len(), 2);
    let st = l.store().shipment_state("SHP-R").unwrap().unwrap();
    assert_eq!(st.parties, ["broker", "carrier", "exporter"]);
    verify_chain(&testkit::config(), chain_bytes(&l), |_| {}).unwrap();
}

#[test]
fn duplicate_inside_one_batch_commits_once() {
    let mut l = mem_ledger();
    let t = event(K::ShipmentBooked, "SHP-D", "exporter", 1, T0);
    let (b, r) = l
        .apply(&[t.clone(), t.clone()], &ctx(1), &mut NoContent)
        .unwrap();
    assert_eq!(b.txs.len(), 1);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.code, "TX_DUPLICATE");
}

#[test]
fn flipped_byte_in_a_stored_block_is_detected() {
    let mut l = mem_ledger();
    for i in 1..=4u64 {
        l.apply(
            &lifecycle(&format!("S{i}"), i * 100, T0)[..3],
            &ctx(i),
            &mut NoContent,
        )
        .unwrap();
    }
    let good = chain_bytes(&l);
    verify_chain(&testkit::config(), good.clone(), |_| {}).unwrap();
    // Flip every byte position of block 2 in turn (a sample of them, all must fail).
    let b2 = good[2].clone().unwrap();
    let mut detected = 0;
    for pos in (0..b2.len()).step_by(7) {
        let mut chain = good.clone();
        let mut bad = b2.clone();
        bad[pos] ^= 0x01;
        chain[2] = Ok(bad);
        let fault = verify_chain(&testkit::config(), chain, |_| {}).unwrap_err();
        assert!(fault.height == 2 || fault.height == 3, "pos {pos}: {fault}");
        detected += 1;
    }
    assert!(detected > 10);
    // A block dropped from the middle breaks the hash link.
    let mut chain = good.clone();
    let _ = chain.remove(2);
    let fault = verify_chain(&testkit::config(), chain, |_| {}).unwrap_err();
    assert_eq!(fault.height, 2);
    // The wrong genesis config is refused.
    let mut cfg = testkit::config();
    cfg.chain_id = "other".into();
    assert_eq!(verify_chain(&cfg, good, |_| {}).unwrap_err().height, 0);
}

/// A stored block altered after commit is refused on read, both when the
/// bytes no longer decode and when the edit is self-consistent (results
/// changed, roots and header recomputed): its hash is no longer the leaf the
/// ledger tree recorded at commit.
#[test]
fn altered_blocks_are_refused_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::init(RocksStore::open(dir.path()).unwrap(), testkit::config(), T0).unwrap();
    for i in 1..=3u64 {
        l.apply(
            &lifecycle(&format!("A{i}"), i * 10, T0)[..2],
            &ctx(i),
            &mut NoContent,
        )
        .unwrap();
    }
    let good = l.block(2).unwrap().unwrap();
    assert_eq!(good.header.height, 2);
    assert!(l.block(9).unwrap().is_none());
    let is_corrupt = |e: ledger::chain::LedgerError| {
        matches!(
            e,
            ledger::chain::LedgerError::Store(ledger::store::StoreError::Corrupt { .. })
        )
    };
    // A self-consistent rewrite of block 2.
    let mut forged = good.clone();
    forged.results[0].status = Some(ledger::Status::Rejected);
    let ids: Vec<_> = forged.txs.iter().map(|t| t.id().unwrap()).collect();
    let (tx_root, results_root) = ledger::block::body_roots(&ids, &forged.results).unwrap();
    forged.header.tx_root = tx_root;
    forged.header.results_root = results_root;
    l.store()
        .put_raw_block(2, &forged.encode().unwrap())
        .unwrap();
    let e = l.block(2).unwrap_err();
    assert!(e.to_string().contains("ledger-tree leaf"), "{e}");
    assert!(is_corrupt(e));
    // A body edited under an unchanged header.
    let mut body = good.clone();
    body.results[1].status = Some(ledger::Status::Rejected);
    l.store().put_raw_block(2, &body.encode().unwrap()).unwrap();
    assert!(is_corrupt(l.block(2).unwrap_err()));
    // A flipped bit.
    let mut raw = good.encode().unwrap();
    let n = raw.len();
    raw[n / 3] ^= 0x10;
    l.store().put_raw_block(2, &raw).unwrap();
    assert!(l.block(2).is_err());
    // Transactions in that block are refused too; other blocks still serve.
    let id = good.txs[0].id().unwrap();
    assert!(l.transaction(&id).is_err());
    assert!(l.block(3).unwrap().is_some());
}

/// The store keeps the shipment states and block headers it committed in
/// memory: what it answers equals what a reopened store reads from disk,
/// and a block rewritten on disk is read again, not served from memory.
#[test]
fn cached_states_and_headers_equal_the_stored_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::init(RocksStore::open(dir.path()).unwrap(), testkit::config(), T0).unwrap();
    let txs = lifecycle("C1", 10, T0);
    for i in 1..=3u64 {
        let one = &txs[(i as usize - 1)..i as usize];
        l.apply(one, &ctx(i), &mut NoContent).unwrap();
    }
    let live = l.store().clone();
    let disk = || RocksStore::open(dir.path());
    let state = live.shipment_state("C1").unwrap();
    assert_eq!(state.as_ref().map(|s| s.events), Some(3));
    let headers: Vec<_> = (1..=3).map(|h| live.block_header(h).unwrap()).collect();
    drop(l);
    drop(live);
    let reopened = disk().unwrap();
    assert_eq!(reopened.shipment_state("C1").unwrap(), state);
    for (h, cached) in (1..=3).zip(&headers) {
        assert_eq!(&reopened.block_header(h).unwrap(), cached);
    }
    // Warm this store's caches with a commit of its own, then rewrite a
    // block under it: the header read is the rewritten one.
    let mut l = Ledger::open(reopened).unwrap();
    l.apply(&txs[3..4], &ctx(4), &mut NoContent).unwrap();
    let fourth = l.store().block_header(4).unwrap().unwrap();
    assert_eq!(fourth.height, 4);
    let first = l.store().block_bytes(1).unwrap().unwrap();
    l.store().put_raw_block(4, &first).unwrap();
    assert_eq!(l.store().block_header(4).unwrap().unwrap().height, 1);
    assert_eq!(
        l.store().shipment_state("C1").unwrap().map(|s| s.events),
        Some(4)
    );
}

#[test]
fn rocksdb_ledger_reopens_and_detects_on_disk_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut l =
            Ledger::init(RocksStore::open(dir.path()).unwrap(), testkit::config(), T0).unwrap();
        for i in 1..=3u64 {
            l.apply(
                &lifecycle(&format!("R{i}"), i * 10, T0)[..2],
                &ctx(i),
                &mut NoContent,
            )
            .unwrap();
        }
        // Reopen from SST files (written with direct I/O where the
        // filesystem takes it), not only from the write-ahead log.
        l.store().flush().unwrap();
        let ssts = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("sst".as_ref()))
            .count();
        assert!(ssts > 0);
    }
    let store = RocksStore::open(dir.path()).unwrap();
    let l = Ledger::open(store).unwrap();
    assert_eq!(l.tip().height, 3);
    let report = verify_chain(&testkit::config(), chain_bytes(&l), |_| {}).unwrap();
    assert_eq!(report.transactions, 6);
    // Flip a byte on disk in block 2's record.
    let mut raw = l.store().block_bytes(2).unwrap().unwrap();
    let n = raw.len();
    raw[n / 2] ^= 0x80;
    l.store().put_raw_block(2, &raw).unwrap();
    let fault = verify_chain(&testkit::config(), chain_bytes(&l), |_| {}).unwrap_err();
    assert!(fault.height == 2 || fault.height == 3, "{fault}");
    // Corrupting the tip block is caught when the ledger opens.
    let mut top = l.store().block_bytes(3).unwrap().unwrap();
    let n = top.len();
    top[n - 1] ^= 1;
    l.store().put_raw_block(3, &top).unwrap();
    assert!(Ledger::open(l.into_store()).is_err());
}

/// Crash atomicity: a child process appends blocks in a loop and is killed
/// with SIGKILL at an arbitrary moment; on reopen the store holds a prefix
/// of whole blocks whose indexes agree with the blocks.
#[test]
fn sigkill_during_appends_leaves_whole_blocks() {
    if let Ok(dir) = std::env::var("LEDGER_CRASH_CHILD") {
        let mut l = Ledger::init(
            RocksStore::open(std::path::Path::new(&dir)).unwrap(),
            testkit::config(),
            T0,
        )
        .unwrap();
        let start = l.tip().height;
        let mut i = start;
        loop {
            i += 1;
            // Claimed time = block time, so no block falls outside the window.
            let c = ctx(i);
            l.apply(
                &lifecycle(&format!("C{i}"), i * 100, c.timestamp_ms),
                &c,
                &mut NoContent,
            )
            .unwrap();
            if i == start + 3 {
                println!("READY");
                use std::io::Write;
                std::io::stdout().flush().unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .args([
                "--exact",
                "sigkill_during_appends_leaves_whole_blocks",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LEDGER_CRASH_CHILD", dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until it has written a few blocks, then kill it mid-stream.
        use std::io::BufRead;
        let out = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(out).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("READY") => break,
                Some(_) => continue,
                None => panic!("child exited early in round {round}"),
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let l = Ledger::open(RocksStore::open(dir.path()).unwrap()).unwrap();
        let tip = l.tip().height;
        assert!(tip >= 3);
        // Every block up to the tip is present, verifies, and is indexed.
        let report = verify_chain(&testkit::config(), chain_bytes(&l), |_| {}).unwrap();
        assert_eq!(report.blocks, tip + 1);
        assert!(l.store().block_bytes(tip + 1).unwrap().is_none());
        for h in 1..=tip {
            let s = format!("C{h}");
            assert_eq!(
                l.store().shipment_events(&s, None, 100).unwrap().len(),
                9,
                "{s}"
            );
        }
        assert!(l
            .store()
            .shipment_state(&format!("C{}", tip + 1))
            .unwrap()
            .is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same transactions in the same order always give the same block
    /// hashes, whatever the batch boundaries of identical batches on two stores.
    #[test]
    fn replay_gives_identical_hashes(seed in 0u64..1000, n in 1usize..6, split in 1usize..5) {
        let mut txs = Vec::new();
        for s in 0..n {
            txs.extend(lifecycle(&format!("P{seed}-{s}"), seed * 1000 + s as u64 * 20, T0));
        }
        let run = || {
            let mut l = mem_ledger();
            let mut hashes = Vec::new();
            for (i, chunk) in txs.chunks(split).enumerate() {
                let (b, _) = l.apply(chunk, &ctx(i as u64 + 1), &mut NoContent).unwrap();
                hashes.push(b.hash().unwrap());
            }
            hashes
        };
        let a = run();
        let dir = tempfile::tempdir().unwrap();
        let mut r = Ledger::init(RocksStore::open(dir.path()).unwrap(), testkit::config(), T0).unwrap();
        let mut b = Vec::new();
        for (i, chunk) in txs.chunks(split).enumerate() {
            let (blk, _) = r.apply(chunk, &ctx(i as u64 + 1), &mut NoContent).unwrap();
            b.push(blk.hash().unwrap());
        }
        prop_assert_eq!(&a, &run());
        prop_assert_eq!(a, b);
    }

    /// Any single rejected transaction leaves shipment state untouched.
    #[test]
    fn rejected_never_changes_state(kind_idx in 0usize..20, submitter_idx in 0usize..7, nonce in 0u64..1000) {
        let mut l = mem_ledger();
        l.apply(&lifecycle("Q", 5000, T0)[..3], &ctx(1), &mut NoContent).unwrap();
        let before = observe(&l, &["Q"]);
        let kind = ledger::EventKind::ALL[kind_idx];
        let submitter = testkit::PARTIES[submitter_idx].0;
        let tx = event(kind, "Q", submitter, nonce, T0);
        let (b, r) = l.apply(&[tx], &ctx(2), &mut NoContent).unwrap();
        let after = observe(&l, &["Q"]);
        if !r.is_empty() {
            prop_assert!(b.txs.is_empty());
            prop_assert_eq!(before.split('|').nth(1), after.split('|').nth(1));
        }
    }
}

/// Why the startup walk refuses `l`.
fn walk_error(l: &Ledger<MemStore>) -> String {
    l.verify_store(|_, _| {}).unwrap_err().to_string()
}

/// The startup walk reads the learned-state records' framing without keys
/// (ADR 0015): a gap in the journal or a record that does not decode stops
/// the node, like a damaged block.
#[test]
fn learned_records_are_walked_at_startup() {
    use ledger::hs::{classifier::Classifier, nomenclature::Nomenclature};
    use ledger::store::LearnedWrite;
    use ledger::validate::{learned, risk::RiskHistory};
    let mut l = mem_ledger();
    for (i, tx) in lifecycle("SHP-L", 1, T0 + 1000).iter().enumerate() {
        l.apply(std::slice::from_ref(tx), &ctx(i as u64 + 1), &mut NoContent)
            .unwrap();
    }
    let cfg = testkit::config();
    let nom = Nomenclature::parse(
        b"# hs2022 test 00\n01\t2\tTOTAL\tAnimals; live\n0101\t4\t01\tHorses\n010121\t6\t0101\tHorses; pure-bred\n",
    )
    .unwrap();
    let mut classifier = Classifier::new(&nom);
    let mut state = learned::Learned::new(RiskHistory::default());
    let mut record = |h: u64| {
        learned::journal(
            &cfg,
            Some(&testkit::OUTCOME_SECRET),
            &mut state,
            &mut classifier,
            h,
            Vec::new(),
        )
        .unwrap()
        .unwrap()
    };
    let journal = |bytes: Vec<u8>| LearnedWrite {
        journal: Some(bytes),
        checkpoint: None,
    };
    let records: Vec<Vec<u8>> = (1..=6).map(&mut record).collect();
    for h in 1..=3u64 {
        l.store()
            .put_learned(h, &journal(records[h as usize - 1].clone()))
            .unwrap();
    }
    assert_eq!(l.verify_store(|_, _| {}).unwrap().learned_records, 3);
    // A record stored under another height.
    l.store()
        .put_learned(4, &journal(records[4].clone()))
        .unwrap();
    let e = walk_error(&l);
    assert!(e.contains("learned journal record 4"), "{e}");
    // A gap.
    l.store()
        .put_learned(4, &journal(records[3].clone()))
        .unwrap();
    l.store()
        .put_learned(6, &journal(records[5].clone()))
        .unwrap();
    let e = walk_error(&l);
    assert!(e.contains("does not follow block 4"), "{e}");
    // Bytes that are no record.
    l.store()
        .put_learned(5, &journal(b"not a record".to_vec()))
        .unwrap();
    let e = walk_error(&l);
    assert!(e.contains("learned journal record 5"), "{e}");
    // Beyond the tip.
    l.store()
        .put_learned(5, &journal(records[4].clone()))
        .unwrap();
    assert_eq!(l.verify_store(|_, _| {}).unwrap().learned_records, 6);
    let beyond: Vec<Vec<u8>> = (7..=10).map(&mut record).collect();
    for (h, r) in (7..=10u64).zip(beyond) {
        l.store().put_learned(h, &journal(r)).unwrap();
    }
    let e = walk_error(&l);
    assert!(e.contains("learned journal record 10"), "{e}");
}
