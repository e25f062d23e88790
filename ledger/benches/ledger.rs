//! Micro benchmarks of the ledger core: signatures, codec, block append to
//! RocksDB with fsync, Merkle proofs, and sealing/opening a declaration.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ledger::chain::{BlockContext, NoContent};
use ledger::crypto::{self, BatchItem, Keypair};
use ledger::declaration;
use ledger::disclosure::{self, DecryptionKey, Draft};
use ledger::event::EventKind;
use ledger::testkit::{self, T0};
use ledger::tx::{signing_message, SignedTransaction};
use ledger::{Ledger, RocksStore};
use std::hint::black_box;

fn sealed_decl(cfg: &ledger::ChainConfig, shipment: &str) -> SignedTransaction {
    disclosure::seal(
        cfg,
        &Draft {
            chain_id: cfg.chain_id.clone(),
            kind: EventKind::DeclarationFiled,
            shipment_id: shipment.into(),
            submitter: "broker".into(),
            claimed_time_ms: T0,
            fields: declaration::sample().to_fields(),
            shipment_parties: vec!["exporter".into(), "carrier".into()],
            governance: None,
        },
    )
    .unwrap()
    .sign(&testkit::key("broker"))
    .unwrap()
}

fn signatures(c: &mut Criterion) {
    let k = Keypair::from_seed(&[1; 32]);
    let msg = signing_message(&ledger::hash::sha256(b"tx"));
    let sig = k.sign(&msg);
    let pk = k.public();
    c.bench_function("ed25519/sign", |b| b.iter(|| black_box(k.sign(&msg))));
    c.bench_function("ed25519/verify", |b| {
        b.iter(|| crypto::verify(&pk, black_box(&msg), &sig).unwrap())
    });
    // 64 signatures by 64 signers, and by 4 (a few parties sign most of a
    // chain's transactions; the batch equation has one term per key).
    for signers in [64u8, 4] {
        let keys: Vec<Keypair> = (0..signers).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let msgs: Vec<[u8; 57]> = (0..64u8)
            .map(|i| signing_message(&ledger::hash::sha256(&[i])))
            .collect();
        let pks: Vec<_> = (0..64).map(|i| keys[i % keys.len()].public()).collect();
        let sigs: Vec<_> = (0..64)
            .map(|i| keys[i % keys.len()].sign(&msgs[i]))
            .collect();
        let items: Vec<BatchItem<'_>> = (0..64)
            .map(|i| BatchItem {
                key: &pks[i],
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        let mut g = c.benchmark_group(format!("ed25519/batch64-{signers}-signers"));
        g.throughput(Throughput::Elements(64));
        g.bench_function("verify_batch", |b| {
            b.iter(|| {
                assert!(crypto::verify_batch(black_box(&items))
                    .iter()
                    .all(|r| r.is_ok()))
            })
        });
        g.bench_function("one by one", |b| {
            b.iter(|| {
                for it in &items {
                    crypto::verify(it.key, it.msg, it.sig).unwrap();
                }
            })
        });
        g.finish();
    }
}

fn codec(c: &mut Criterion) {
    let cfg = testkit::config();
    let stx = sealed_decl(&cfg, "B1");
    let bytes = stx.encode().unwrap();
    println!(
        "sealed declaration: {} bytes encoded, {} recipients",
        bytes.len(),
        stx.tx.recipients.len()
    );
    c.bench_function("tx/encode", |b| b.iter(|| black_box(stx.encode().unwrap())));
    c.bench_function("tx/decode_strict", |b| {
        b.iter(|| black_box(SignedTransaction::decode(&bytes, 1 << 20).unwrap()))
    });
    c.bench_function("tx/id", |b| b.iter(|| black_box(stx.id().unwrap())));
}

fn disclosure_bench(c: &mut Criterion) {
    let cfg = testkit::config();
    let d = Draft {
        chain_id: cfg.chain_id.clone(),
        kind: EventKind::DeclarationFiled,
        shipment_id: "S".into(),
        submitter: "broker".into(),
        claimed_time_ms: T0,
        fields: declaration::sample().to_fields(),
        shipment_parties: vec!["exporter".into(), "carrier".into()],
        governance: None,
    };
    c.bench_function("disclosure/seal_declaration", |b| {
        b.iter(|| black_box(disclosure::seal(&cfg, &d).unwrap()))
    });
    let tx = disclosure::seal(&cfg, &d).unwrap();
    let i = testkit::PARTIES
        .iter()
        .position(|p| p.0 == "de-customs")
        .unwrap();
    let key = [DecryptionKey::from_secret(
        testkit::parties()[i].x25519_secret,
    )];
    c.bench_function("disclosure/open_all_as_customs", |b| {
        b.iter(|| black_box(disclosure::open(&tx, "de-customs", &key).unwrap()))
    });
    // Unwrapping the class keys alone: the ledger's HPKE opening, and the
    // `hpke` crate's on the same envelope (the reference it replaced).
    c.bench_function("disclosure/class_keys_as_customs", |b| {
        b.iter(|| black_box(disclosure::class_keys(&tx, "de-customs", &key).unwrap()))
    });
    {
        use hpke::Deserializable;
        type Kem = hpke::kem::X25519HkdfSha256;
        let r = tx
            .recipients
            .iter()
            .find(|r| r.party == "de-customs")
            .unwrap();
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&testkit::parties()[i].x25519_secret)
            .unwrap();
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&r.enc).unwrap();
        let aad = [&b"de-customs"[..], &[0], &r.key_id.0].concat();
        let info = [&b"customs-ledger/v1/hpke\0"[..], cfg.chain_id.as_bytes()].concat();
        c.bench_function("disclosure/class_keys_via_hpke_crate", |b| {
            b.iter(|| {
                black_box(
                    hpke::single_shot_open::<
                        hpke::aead::ChaCha20Poly1305,
                        hpke::kdf::HkdfSha256,
                        Kem,
                    >(
                        &hpke::OpModeR::Base, &sk, &enc, &info, &r.ciphertext, &aad
                    )
                    .unwrap(),
                )
            })
        });
    }
}

/// The customs content check per declaration: open as customs, formats,
/// classification of every goods item, risk score. Needs the nomenclature
/// (`testnet/setup.sh`); skipped without it.
fn content(c: &mut Criterion) {
    use ledger::hs::nomenclature::{self, Nomenclature};
    use ledger::validate::CustomsValidator;
    let Some(path) = nomenclature::locate() else {
        eprintln!("content benchmarks skipped: no nomenclature (run testnet/setup.sh)");
        return;
    };
    let nom = std::sync::Arc::new(Nomenclature::load(&path).unwrap());
    let cfg = testkit::config();
    let i = testkit::PARTIES
        .iter()
        .position(|p| p.0 == "de-customs")
        .unwrap();
    let key = DecryptionKey::from_secret(testkit::parties()[i].x25519_secret);
    let v = CustomsValidator::new("de-customs", vec![key], nom);
    let stx = sealed_decl(&cfg, "S-CONTENT");
    let id = stx.id().unwrap();
    c.bench_function("content/customs_admit_declaration", |b| {
        b.iter(|| black_box(v.admit(&cfg, &stx, &id).unwrap()))
    });
    let d = declaration::sample();
    c.bench_function("content/assess_opened_declaration", |b| {
        b.iter(|| black_box(v.assess(&cfg, &d, "broker", 0)))
    });
    // With the distilled table the benchmark network pins (when distilled).
    match ledger::hs::semantic::locate().map(ledger::hs::semantic::SemanticTable::load) {
        Some(Ok(table)) => {
            let v = v.with_semantic(std::sync::Arc::new(table));
            c.bench_function("content/assess_opened_declaration_semantic", |b| {
                b.iter(|| black_box(v.assess(&cfg, &d, "broker", 0)))
            });
        }
        _ => eprintln!("semantic benchmark skipped: no table (customsctl hs distil)"),
    }
}

fn store(c: &mut Criterion) {
    let cfg = testkit::config();
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::init(RocksStore::open(dir.path()).unwrap(), cfg.clone(), T0).unwrap();
    let mut n = 0u64;
    let mut g = c.benchmark_group("block_append_rocksdb_fsync");
    g.sample_size(20);
    for size in [1usize, 100] {
        g.throughput(Throughput::Elements(size as u64));
        g.bench_function(format!("{size}_declarations"), |b| {
            b.iter_batched(
                || {
                    (0..size)
                        .map(|_| {
                            n += 1;
                            sealed_decl(&cfg, &format!("SB{n}"))
                        })
                        .collect::<Vec<_>>()
                },
                |batch| {
                    let h = l.tip().height + 1;
                    let (blk, rej) = l
                        .apply(
                            &batch,
                            &BlockContext {
                                timestamp_ms: T0,
                                raft_term: 1,
                                raft_index: h,
                                proposer: "de-customs".into(),
                            },
                            &mut NoContent,
                        )
                        .unwrap();
                    assert!(rej.is_empty());
                    black_box(blk);
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
    let tip = l.tip().height;
    c.bench_function("merkle/block_inclusion_proof_from_rocksdb", |b| {
        let mut h = 0;
        b.iter(|| {
            h = (h + 7) % (tip + 1);
            black_box(l.block_inclusion_proof(h, tip + 1).unwrap())
        })
    });
    c.bench_function("merkle/consistency_proof_from_rocksdb", |b| {
        let mut h = 0;
        b.iter(|| {
            h = (h % tip) + 1;
            black_box(l.consistency_proof(h, tip + 1).unwrap())
        })
    });
}

criterion_group!(benches, signatures, codec, disclosure_bench, content, store);
criterion_main!(benches);
