//! A light client follows the chain config from genesis through committed
//! governance, with proofs, and refuses every shortcut a node could offer:
//! a governance block left out, one not in the cosigned tree, one whose
//! approvals are not a majority under the config before it.

use ledger::chain::{self, BlockContext, NoContent};
use ledger::config::ChainConfig;
use ledger::crypto::Keypair;
use ledger::disclosure::{self, DecryptionKey, Draft};
use ledger::event::EventKind;
use ledger::testkit::{self, T0};
use ledger::tx::Governance;
use ledger::{Ledger, MemStore, SignedTransaction};

fn ctx(i: u64) -> BlockContext {
    BlockContext {
        timestamp_ms: T0 + i,
        raft_term: 1,
        raft_index: i,
        proposer: "de-customs".into(),
    }
}

fn governance(
    cfg: &ChainConfig,
    kind: EventKind,
    action: Governance,
    approvers: &[&str],
) -> SignedTransaction {
    let mut stx = disclosure::seal(
        cfg,
        &Draft {
            chain_id: cfg.chain_id.clone(),
            kind,
            shipment_id: String::new(),
            submitter: "de-customs".into(),
            claimed_time_ms: T0,
            fields: vec![],
            shipment_parties: vec![],
            governance: Some(action),
        },
    )
    .unwrap()
    .sign(&testkit::key("de-customs"))
    .unwrap();
    for a in approvers {
        stx.approve(a, &testkit::key(a)).unwrap();
    }
    stx
}

fn booking(shipment: &str, nonce: u64) -> SignedTransaction {
    testkit::event(EventKind::ShipmentBooked, shipment, "exporter", nonce, T0)
}

/// A chain: bookings, the carrier's keys rotated at height 3, bookings, the
/// auditor revoked at height 6, bookings up to height 8.
fn chain() -> (Ledger<MemStore>, ChainConfig) {
    let genesis = testkit::config();
    let mut l = Ledger::init(MemStore::new(), genesis.clone(), T0).unwrap();
    let new_key = DecryptionKey::from_secret([77; 32]);
    for h in 1..=8u64 {
        let cfg = l.config().clone();
        let tx = match h {
            3 => governance(
                &cfg,
                EventKind::KeyRotated,
                Governance::RotateKey {
                    party: "carrier".into(),
                    signing_key: Some(Keypair::from_seed(&[99; 32]).public()),
                    encryption_key: Some(new_key.public()),
                },
                &["fr-customs"],
            ),
            6 => governance(
                &cfg,
                EventKind::PartyRevoked,
                Governance::RevokeParty {
                    party: "auditor".into(),
                },
                &["fr-customs", "pl-customs"],
            ),
            _ => booking(&format!("S-{h}"), h),
        };
        let (_, r) = l.apply(&[tx], &ctx(h), &mut NoContent).unwrap();
        assert!(r.is_empty(), "height {h}: {r:?}");
    }
    (l, genesis)
}

#[test]
fn follows_governance_from_genesis_with_proofs() {
    let (l, genesis) = chain();
    let root = l.checkpoint().unwrap().tree_root.0;
    let g = chain::governance_blocks(l.store(), 8, 0, 100).unwrap();
    assert!(!g.more);
    let heights: Vec<u64> = g.blocks.iter().map(|(b, _)| b.header.height).collect();
    assert_eq!(heights, vec![3, 6]);
    let cfg = chain::follow_config(&genesis, 0, &g.header, &root, &g.blocks).unwrap();
    assert_eq!(&cfg, l.config());
    assert_eq!(cfg.seq, 2);
    assert_ne!(cfg.party("carrier"), genesis.party("carrier"));
    assert!(cfg.party("auditor").unwrap().revoked);

    // Paged: one at a time, each page continuing from the config it reached.
    let first = chain::governance_blocks(l.store(), 8, 0, 1).unwrap();
    assert!(first.more);
    assert_eq!(first.blocks.len(), 1);
    let mid = chain::follow_governance(&genesis, &first.blocks[0].0).unwrap();
    let rest = chain::governance_blocks(l.store(), 8, mid.seq, 1).unwrap();
    assert!(!rest.more);
    let cfg2 = chain::follow_config(&mid, 3, &rest.header, &root, &rest.blocks).unwrap();
    assert_eq!(&cfg2, l.config());

    // At an earlier height: only the first change applies.
    let cp5 = l.checkpoint_at(5).unwrap();
    let g5 = chain::governance_blocks(l.store(), 5, 0, 100).unwrap();
    assert_eq!(g5.blocks.len(), 1);
    let at5 = chain::follow_config(&genesis, 0, &g5.header, &cp5.tree_root.0, &g5.blocks).unwrap();
    assert_eq!(at5.seq, 1);
    assert!(!at5.party("auditor").unwrap().revoked);
}

#[test]
fn refuses_what_a_node_could_slip_in() {
    let (l, genesis) = chain();
    let root = l.checkpoint().unwrap().tree_root.0;
    let g = chain::governance_blocks(l.store(), 8, 0, 100).unwrap();
    let follow = |blocks: &[(ledger::Block, Vec<ledger::merkle::Hash>)]| {
        chain::follow_config(&genesis, 0, &g.header, &root, blocks)
            .unwrap_err()
            .to_string()
    };

    // A governance block left out (the revocation): the header says so.
    let e = follow(&g.blocks[..1]);
    assert!(e.contains("missing"), "{e}");
    // Out of order: a block repeated, or the later one first (its header
    // names a config the earlier change has not been applied to).
    let repeated = vec![g.blocks[0].clone(), g.blocks[0].clone()];
    assert!(follow(&repeated).contains("out of order"));
    let swapped = vec![g.blocks[1].clone(), g.blocks[0].clone()];
    assert!(follow(&swapped).contains("does not match the header"));
    // A proof that does not lead to the cosigned root.
    let mut bad = g.blocks.clone();
    bad[0].1[0][0] ^= 1;
    assert!(follow(&bad).contains("not in the tree"));
    // A body edited under its header (a transaction swapped for another).
    let mut edited = g.blocks.clone();
    edited[1].0.txs[0].tx.nonce ^= 1;
    assert!(follow(&edited).contains("body does not match"));
    // Approvals are not under the block hash (transaction ids cover the
    // unsigned body), so a node can strip them, but never forge them: the
    // change then fails its majority check.
    let mut stripped = g.blocks.clone();
    stripped[1].0.txs[0].approvals.clear();
    assert!(follow(&stripped).contains("GOV_NO_QUORUM"));

    // A block whose governance lacks a majority under the config before it
    // does not apply, even in the tree a node built for it: one approval
    // of three is not a majority.
    let mut l2 = Ledger::init(MemStore::new(), genesis.clone(), T0).unwrap();
    let lone = governance(
        &genesis,
        EventKind::PartyRevoked,
        Governance::RevokeParty {
            party: "exporter".into(),
        },
        &[],
    );
    let e = chain::check_governance(&genesis, &lone).unwrap_err();
    assert_eq!(e.code, "GOV_NO_QUORUM");
    let ok = governance(
        &genesis,
        EventKind::PartyRevoked,
        Governance::RevokeParty {
            party: "exporter".into(),
        },
        &["fr-customs"],
    );
    chain::check_governance(&genesis, &ok).unwrap();
    let (b, r) = l2.apply(&[ok], &ctx(1), &mut NoContent).unwrap();
    assert!(r.is_empty());
    chain::follow_governance(&genesis, &b).unwrap();
    let mut forged = b.clone();
    forged.txs[0].approvals.clear();
    let e = chain::follow_governance(&genesis, &forged)
        .unwrap_err()
        .to_string();
    assert!(e.contains("GOV_NO_QUORUM"), "{e}");
    // An approval by a party that is not a validator.
    let mut fake = governance(
        &genesis,
        EventKind::PartyRevoked,
        Governance::RevokeParty {
            party: "exporter".into(),
        },
        &["broker"],
    );
    assert_eq!(
        chain::check_governance(&genesis, &fake).unwrap_err().code,
        "GOV_BAD_APPROVAL"
    );
    // A signature that does not verify.
    fake.approvals.clear();
    fake.signature.0[0] ^= 1;
    assert_eq!(
        chain::check_governance(&genesis, &fake).unwrap_err().code,
        "TX_BAD_SIGNATURE"
    );
}

/// The timeline a disclosure verifier builds: the config each transaction
/// was admitted under and the one in force at the checkpoint.
#[test]
fn timeline_names_the_config_of_each_height() {
    use ledger::history::{ConfigProof, ConfigTimeline, ProvenBlock};
    let (l, genesis) = chain();
    let cp = l.checkpoint().unwrap();
    let g = chain::governance_blocks(l.store(), 8, 0, 100).unwrap();
    let proof = ConfigProof {
        header: g.header.clone(),
        blocks: g
            .blocks
            .iter()
            .map(|(b, p)| ProvenBlock {
                block: b.clone(),
                proof: p.iter().map(|h| ledger::hash::Bytes(*h)).collect(),
            })
            .collect(),
    };
    let t = ConfigTimeline::verify(&genesis, &proof, &cp).unwrap();
    let carrier_key = |c: &ChainConfig| c.party("carrier").unwrap().signing_key;
    assert_eq!(t.latest(), l.config());
    assert_eq!(carrier_key(&t.for_tx(2, 0).unwrap()), carrier_key(&genesis));
    // The rotation itself was admitted under genesis; what follows it, not.
    assert_eq!(carrier_key(&t.for_tx(3, 0).unwrap()), carrier_key(&genesis));
    assert_ne!(carrier_key(&t.for_tx(4, 0).unwrap()), carrier_key(&genesis));
    assert_eq!(t.after(5).seq, 1);
    assert_eq!(t.after(6).seq, 2);
    // A header that is not the checkpoint's block is refused.
    let mut wrong = proof.clone();
    wrong.header = l.block(7).unwrap().unwrap().header;
    assert!(ConfigTimeline::verify(&genesis, &wrong, &cp).is_err());
}

/// Exchange rates are published by governance, one table per month (a
/// correction replaces it, the oldest drop out past 24), and a
/// declaration's values are converted with the table in force at its date.
#[test]
fn exchange_rates_on_the_ledger() {
    use ledger::tariff::{month_of, RateTable, MAX_RATE_TABLES};
    use ledger::validate::{declaration_rates, risk_inputs};
    let mut l = Ledger::init(MemStore::new(), testkit::config(), T0).unwrap();
    let table = |month: String, usd: u64| RateTable {
        month,
        source: "ECB reference rates (test)".into(),
        per_eur: vec![("GBP".into(), 860_000), ("USD".into(), usd)],
    };
    let publish = |l: &mut Ledger<MemStore>, t: RateTable, h: u64| {
        let cfg = l.config().clone();
        let tx = governance(
            &cfg,
            EventKind::PolicyChanged,
            Governance::PublishRates(t),
            &["fr-customs"],
        );
        let (_, r) = l.apply(&[tx], &ctx(h), &mut NoContent).unwrap();
        assert!(r.is_empty(), "{r:?}");
    };
    publish(&mut l, table("2025-11".into(), 1_081_200), 1);
    publish(&mut l, table("2025-11".into(), 1_100_000), 2);
    assert_eq!(l.config().exchange_rates.len(), 1);
    assert_eq!(l.config().exchange_rates[0].per_eur[1].1, 1_100_000);
    for i in 0..30u64 {
        let month = format!("{}-{:02}", 2023 + i / 12, i % 12 + 1);
        publish(&mut l, table(month, 1_000_000 + i), 3 + i);
    }
    let cfg = l.config().clone();
    assert_eq!(cfg.exchange_rates.len(), MAX_RATE_TABLES);
    assert!(cfg
        .exchange_rates
        .windows(2)
        .all(|w| w[0].month < w[1].month));

    // A malformed table is refused by the chain (a month that is not one).
    let bad = table("2026-13".into(), 1);
    let tx = governance(
        &cfg,
        EventKind::PolicyChanged,
        Governance::PublishRates(bad),
        &["fr-customs"],
    );
    let (_, r) = l.apply(&[tx], &ctx(40), &mut NoContent).unwrap();
    assert_eq!(r[0].1.code, "GOV_INVALID_CONFIG");

    // T0 is in 2025-11: that month's corrected table (1.1 USD per EUR).
    assert_eq!(month_of(T0), "2025-11");
    let rates = declaration_rates(&cfg, T0).unwrap();
    assert_eq!(rates.month, "2025-11");
    let mut d = ledger::declaration::sample();
    d.goods[0].currency = "USD".into();
    d.goods[0].value_minor = 1_100_000;
    let with = risk_inputs(&d, "broker", 0, Some(rates));
    assert_eq!(with[0].value_eur_cents, 1_000_000);
    assert!(with[0].present.value);
    let without = risk_inputs(&d, "broker", 0, None);
    assert!(!without[0].present.value);
    assert_eq!(without[0].value_eur_cents, 0);
    // EUR needs no rate.
    assert_eq!(without[1].value_eur_cents, d.goods[1].value_minor);
}
