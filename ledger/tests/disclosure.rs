//! Selective disclosure: who opens what, tamper detection, key rotation and
//! single-field proofs verified offline.

use ledger::chain::{BlockContext, NoContent};
use ledger::config::{ChainConfig, FieldClass};
use ledger::declaration;
use ledger::disclosure::{self, DecryptionKey, DisclosureError, Draft};
use ledger::event::EventKind;
use ledger::testkit::{self, T0};
use ledger::tx::Governance;
use ledger::{CosignedCheckpoint, Ledger, MemStore, SignedTransaction};

fn dkey(id: &str) -> DecryptionKey {
    let i = testkit::PARTIES.iter().position(|p| p.0 == id).unwrap();
    DecryptionKey::from_secret(testkit::parties()[i].x25519_secret)
}

fn draft(cfg: &ChainConfig, shipment: &str) -> Draft {
    Draft {
        chain_id: cfg.chain_id.clone(),
        kind: EventKind::DeclarationFiled,
        shipment_id: shipment.into(),
        submitter: "broker".into(),
        claimed_time_ms: T0,
        fields: declaration::sample().to_fields(),
        shipment_parties: vec!["exporter".into(), "carrier".into()],
        governance: None,
    }
}

fn sealed(cfg: &ChainConfig) -> SignedTransaction {
    disclosure::seal(cfg, &draft(cfg, "SHP-X"))
        .unwrap()
        .sign(&testkit::key("broker"))
        .unwrap()
}

fn classes_opened(stx: &SignedTransaction, party: &str, keys: &[DecryptionKey]) -> Vec<FieldClass> {
    let mut c: Vec<FieldClass> = disclosure::open(&stx.tx, party, keys)
        .unwrap()
        .iter()
        .map(|f| f.field.class)
        .collect();
    c.sort();
    c.dedup();
    c
}

#[test]
fn each_party_opens_exactly_what_its_roles_allow() {
    let cfg = testkit::config();
    let stx = sealed(&cfg);
    use FieldClass::*;
    // Customs read everything.
    assert_eq!(
        classes_opened(&stx, "fr-customs", &[dkey("fr-customs")]),
        vec![Public, Commercial, Personal, Transport]
    );
    // Broker (submitter) and exporter (named): commercial + personal (+ transport for brokers).
    assert_eq!(
        classes_opened(&stx, "broker", &[dkey("broker")]),
        vec![Public, Commercial, Personal, Transport]
    );
    assert_eq!(
        classes_opened(&stx, "exporter", &[dkey("exporter")]),
        vec![Public, Commercial, Personal]
    );
    // Carrier: transport only, never values.
    let carrier = disclosure::open(&stx.tx, "carrier", &[dkey("carrier")]).unwrap();
    assert!(carrier
        .iter()
        .all(|f| matches!(f.field.class, Public | Transport)));
    assert!(carrier.iter().any(|f| f.field.path == "decl.containers[0]"));
    assert!(!carrier.iter().any(|f| f.field.path.contains("value")));
    // Auditor: the default policy grants nothing but public fields.
    assert_eq!(
        classes_opened(&stx, "auditor", &[dkey("auditor")]),
        vec![Public]
    );
    // A carrier's key cannot open the commercial class key even when presented as another party.
    assert_eq!(
        disclosure::class_keys(&stx.tx, "broker", &[dkey("carrier")]),
        Err(DisclosureError::NotRecipient)
    );
    // Unknown key opens nothing beyond public fields.
    let stranger = DecryptionKey::generate();
    assert_eq!(classes_opened(&stx, "carrier", &[stranger]), vec![Public]);
    // Opened fields rebuild the declaration for customs.
    let opened = disclosure::open(&stx.tx, "de-customs", &[dkey("de-customs")]).unwrap();
    let fields: Vec<_> = opened.into_iter().map(|f| f.field).collect();
    assert_eq!(
        declaration::Declaration::from_fields(&fields).unwrap(),
        declaration::sample()
    );
}

#[test]
fn revoked_party_receives_no_keys() {
    let mut cfg = testkit::config();
    for p in &mut cfg.parties {
        if p.id == "carrier" {
            p.revoked = true;
        }
    }
    let stx = sealed(&cfg);
    assert!(stx.tx.recipients.iter().all(|r| r.party != "carrier"));
    assert_eq!(
        classes_opened(&stx, "carrier", &[dkey("carrier")]),
        vec![FieldClass::Public]
    );
}

#[test]
fn tampering_is_detected() {
    let cfg = testkit::config();
    let stx = sealed(&cfg);
    let customs = [dkey("de-customs")];
    // Ciphertext bit flip.
    let mut t = stx.tx.clone();
    t.sealed[0].ciphertext[3] ^= 1;
    assert!(matches!(
        disclosure::open(&t, "de-customs", &customs),
        Err(DisclosureError::Tampered(_))
    ));
    // Wrapped key bit flip.
    let mut t = stx.tx.clone();
    let r = t
        .recipients
        .iter_mut()
        .find(|r| r.party == "de-customs")
        .unwrap();
    r.ciphertext[0] ^= 1;
    assert!(matches!(
        disclosure::open(&t, "de-customs", &customs),
        Err(DisclosureError::Tampered(_))
    ));
    // Encapsulated key replaced.
    let mut t = stx.tx.clone();
    let r = t
        .recipients
        .iter_mut()
        .find(|r| r.party == "de-customs")
        .unwrap();
    r.enc[5] ^= 1;
    assert!(disclosure::open(&t, "de-customs", &customs).is_err());
    // Commitment changed: fields_root no longer matches.
    let mut t = stx.tx.clone();
    t.sealed[1].commitment.0[0] ^= 1;
    assert!(matches!(
        disclosure::open(&t, "de-customs", &customs),
        Err(DisclosureError::Commitment(_))
    ));
    // Ciphertext moved to another path (AAD binds the path).
    let mut t = stx.tx.clone();
    let c0 = t.sealed[0].ciphertext.clone();
    t.sealed[0].ciphertext = t.sealed[1].ciphertext.clone();
    t.sealed[1].ciphertext = c0;
    assert!(disclosure::open(&t, "de-customs", &customs).is_err());
    // And every tampered transaction fails the signature / root check at apply.
    let mut l = Ledger::init(MemStore::new(), cfg.clone(), T0).unwrap();
    let mut bad = stx.clone();
    bad.tx.sealed[0].ciphertext[0] ^= 1;
    let (_, r) = l.apply(&[bad], &ctx(1), &mut NoContent).unwrap();
    assert_eq!(r[0].1.code, "TX_BAD_SIGNATURE");
}

fn ctx(i: u64) -> BlockContext {
    BlockContext {
        timestamp_ms: T0 + i,
        raft_term: 1,
        raft_index: i,
        proposer: "de-customs".into(),
    }
}

fn cosigned(l: &Ledger<MemStore>, signers: &[&str]) -> CosignedCheckpoint {
    let cp = l.checkpoint().unwrap();
    CosignedCheckpoint {
        cosignatures: signers
            .iter()
            .map(|p| cp.cosign(p, &testkit::key(p)).unwrap())
            .collect(),
        checkpoint: cp,
    }
}

#[test]
fn single_field_disclosure_verifies_offline_and_rejects_any_change() {
    let cfg = testkit::config();
    let mut l = Ledger::init(MemStore::new(), cfg.clone(), T0).unwrap();
    let booked = testkit::event(EventKind::ShipmentBooked, "SHP-X", "exporter", 1, T0);
    l.apply(&[booked], &ctx(1), &mut NoContent).unwrap();
    let stx = sealed(&cfg);
    let other = testkit::event(EventKind::ShipmentBooked, "SHP-Y", "exporter", 2, T0);
    let (block, rej) = l
        .apply(&[other, stx.clone()], &ctx(2), &mut NoContent)
        .unwrap();
    assert!(rej.is_empty());
    for i in 3..7 {
        l.apply(&[], &ctx(i), &mut NoContent).unwrap();
    }
    let id = stx.id().unwrap();
    let (blk, loc) = l.transaction(&id).unwrap().unwrap();
    assert_eq!(blk, block);
    let cp = cosigned(&l, &["de-customs", "fr-customs", "pl-customs", "carrier"]);
    // The exporter discloses just the first item's value to a bank.
    let opened = disclosure::open(&stx.tx, "exporter", &[dkey("exporter")]).unwrap();
    let d = disclosure::disclose(
        &opened,
        "decl.goods[0].value_minor",
        &stx,
        &blk.header,
        u64::from(loc.index),
        blk.tx_proof(loc.index).unwrap(),
        l.block_inclusion_proof(loc.height, cp.checkpoint.tree_size)
            .unwrap(),
        cp.clone(),
    )
    .unwrap();
    let v = disclosure::verify_disclosure(&d, &cfg, cfg.checkpoint_quorum).unwrap();
    assert_eq!(v.field.value, "3200000");
    assert_eq!(v.height, 2);
    // The file reveals no other plaintext: the JSON holds the value once and no other field value.
    let json = serde_json::to_string(&d).unwrap();
    assert!(!json.contains("Distribution Nord"));
    assert!(!json.contains("2500000"));
    // Every part that changes makes it fail.
    let fails = |m: &dyn Fn(&mut disclosure::FieldDisclosure)| {
        let mut x = d.clone();
        m(&mut x);
        disclosure::verify_disclosure(&x, &cfg, cfg.checkpoint_quorum).is_err()
    };
    assert!(fails(&|x| x.field.field.value = "1".into()));
    assert!(fails(&|x| x.field.salt.0[0] ^= 1));
    assert!(fails(&|x| x.field.field.class = FieldClass::Transport));
    assert!(fails(&|x| x.field_index += 1));
    assert!(fails(&|x| x.field_proof[0].0[0] ^= 1));
    assert!(fails(&|x| x.tx.signature.0[0] ^= 1));
    assert!(fails(&|x| x.tx.tx.nonce += 1));
    assert!(fails(&|x| x.tx_index ^= 1));
    assert!(fails(&|x| x.tx_proof[0].0[0] ^= 1));
    assert!(fails(&|x| x.header.timestamp_ms += 1));
    assert!(fails(&|x| x.block_proof.pop().map(|_| ()).unwrap_or(())));
    assert!(fails(&|x| x.checkpoint.checkpoint.tree_root.0[0] ^= 1));
    assert!(fails(&|x| {
        x.checkpoint.cosignatures.truncate(3);
    }));
    assert!(fails(&|x| x.checkpoint.cosignatures[0].signature.0[0] ^= 1));
    assert!(fails(
        &|x| x.checkpoint.cosignatures[1].party = "exporter".into()
    ));
}

#[test]
fn key_rotation_applies_to_later_transactions_only() {
    let cfg = testkit::config();
    let mut l = Ledger::init(MemStore::new(), cfg.clone(), T0).unwrap();
    let old_tx = sealed(&cfg);
    let new_key = DecryptionKey::from_secret([77; 32]);
    let mut gov = disclosure::seal(
        &cfg,
        &Draft {
            chain_id: cfg.chain_id.clone(),
            kind: EventKind::KeyRotated,
            shipment_id: String::new(),
            submitter: "de-customs".into(),
            claimed_time_ms: T0,
            fields: vec![],
            shipment_parties: vec![],
            governance: Some(Governance::RotateKey {
                party: "carrier".into(),
                signing_key: None,
                encryption_key: Some(new_key.public()),
            }),
        },
    )
    .unwrap()
    .sign(&testkit::key("de-customs"))
    .unwrap();
    // One validator alone is not a majority of three.
    let (_, r) = l.apply(&[gov.clone()], &ctx(1), &mut NoContent).unwrap();
    assert_eq!(r[0].1.code, "GOV_NO_QUORUM");
    gov.approve("fr-customs", &testkit::key("fr-customs"))
        .unwrap();
    let (b, r) = l.apply(&[gov], &ctx(2), &mut NoContent).unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(b.header.config_seq, 1);
    let cfg2 = l.config().clone();
    let new_tx = disclosure::seal(&cfg2, &draft(&cfg2, "SHP-Z"))
        .unwrap()
        .sign(&testkit::key("broker"))
        .unwrap();
    use FieldClass::*;
    // The carrier keeps both keys: old data opens with the old one, new with the new one.
    let both = [dkey("carrier"), new_key.clone()];
    assert_eq!(
        classes_opened(&old_tx, "carrier", &both),
        vec![Public, Transport]
    );
    assert_eq!(
        classes_opened(&new_tx, "carrier", &both),
        vec![Public, Transport]
    );
    assert_eq!(
        classes_opened(&new_tx, "carrier", &[dkey("carrier")]),
        vec![Public]
    );
    assert_eq!(classes_opened(&old_tx, "carrier", &[new_key]), vec![Public]);
}

/// A sealed value's ciphertext tells only its length bucket: values of
/// different lengths in one bucket seal to equal lengths, and every value
/// opens back exactly (including values ending in 0x80 or NUL bytes).
#[test]
fn sealed_lengths_are_bucketed() {
    let cfg = testkit::config();
    assert_eq!(disclosure::padded_len(0), 32);
    assert_eq!(disclosure::padded_len(31), 32);
    assert_eq!(disclosure::padded_len(32), 64);
    assert_eq!(disclosure::padded_len(63), 64);
    assert_eq!(disclosure::padded_len(64), 128);
    assert_eq!(disclosure::padded_len(4095), 4096);
    assert_eq!(disclosure::padded_len(4096), 8192);
    assert_eq!(disclosure::padded_len(9000), 12288);
    let seal_value = |value: &str| {
        let mut d = draft(&cfg, "SHP-PAD");
        d.fields = vec![disclosure::Field {
            path: "decl.goods[0].value_minor".into(),
            class: FieldClass::Commercial,
            value: value.into(),
        }];
        let stx = disclosure::seal(&cfg, &d)
            .unwrap()
            .sign(&testkit::key("broker"))
            .unwrap();
        let opened = disclosure::open(&stx.tx, "fr-customs", &[dkey("fr-customs")]).unwrap();
        let sealed: Vec<_> = opened
            .iter()
            .filter(|f| f.field.class != FieldClass::Public)
            .collect();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].field.value, value, "round trip");
        stx.tx.sealed[0].ciphertext.len()
    };
    let short = seal_value("1");
    assert_eq!(short, seal_value("3200000"));
    assert_eq!(short, seal_value(&"x".repeat(31)));
    assert!(seal_value(&"x".repeat(32)) > short);
    seal_value("ends in \u{400}"); // U+0400 ends with the byte 0x80
    seal_value("ends in nul\0");
    seal_value("");
}

#[test]
fn opening_with_unwrapped_class_keys_equals_opening_with_the_party_key() {
    let cfg = testkit::config();
    let stx = sealed(&cfg);
    for party in ["fr-customs", "broker", "carrier", "auditor"] {
        let keys = [dkey(party)];
        let (fields, ck) = disclosure::open_with_keys(&stx.tx, party, &keys).unwrap();
        assert_eq!(fields, disclosure::open(&stx.tx, party, &keys).unwrap());
        assert_eq!(
            disclosure::open_with_class_keys(&stx.tx, &ck).unwrap(),
            fields,
            "{party}"
        );
    }
    // The same checks hold without the HPKE step: a changed ciphertext or
    // commitment is refused.
    let (_, ck) = disclosure::open_with_keys(&stx.tx, "fr-customs", &[dkey("fr-customs")]).unwrap();
    let mut tampered = stx.tx.clone();
    tampered.sealed[0].ciphertext[0] ^= 1;
    assert!(disclosure::open_with_class_keys(&tampered, &ck).is_err());
    let mut tampered = stx.tx.clone();
    tampered.sealed[0].commitment.0[0] ^= 1;
    assert!(matches!(
        disclosure::open_with_class_keys(&tampered, &ck),
        Err(DisclosureError::Commitment(_))
    ));
}

#[test]
fn opening_selected_fields_decrypts_only_those_and_keeps_every_check() {
    let cfg = testkit::config();
    let stx = sealed(&cfg);
    let keys = [dkey("fr-customs")];
    let (all, ck) = disclosure::open_with_keys(&stx.tx, "fr-customs", &keys).unwrap();
    let wanted = |p: &str| p.ends_with(".gross_mass_g") || p == "decl.transport_mode";
    let some = disclosure::open_selected(&stx.tx, &ck, wanted).unwrap();
    let expected: Vec<_> = all
        .iter()
        .filter(|f| wanted(&f.field.path))
        .cloned()
        .collect();
    assert!(expected.len() >= 2, "{expected:?}");
    assert_eq!(some, expected);
    // A changed field that is not selected still fails the fields_root
    // check; a changed selected one fails its own commitment.
    let other = stx.tx.sealed.iter().position(|f| !wanted(&f.path)).unwrap();
    let mut tampered = stx.tx.clone();
    tampered.sealed[other].commitment.0[0] ^= 1;
    assert!(matches!(
        disclosure::open_selected(&tampered, &ck, wanted),
        Err(DisclosureError::Commitment(_))
    ));
    let chosen = stx.tx.sealed.iter().position(|f| wanted(&f.path)).unwrap();
    let mut tampered = stx.tx.clone();
    tampered.sealed[chosen].ciphertext[0] ^= 1;
    assert!(disclosure::open_selected(&tampered, &ck, wanted).is_err());
}
