//! The bad-input catalogue against a real node: every malformed, oversized,
//! unsigned, replayed, wrongly signed or unauthorised request gets a clear
//! error with a reason code, nothing is committed, and the node keeps serving.

mod common;

use common::{event, reason, Net, STANDARD};
use ledger::EventKind as K;
use prost::Message;
use proto::v1;
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Code;

/// Sends raw bytes as a gRPC message body (for malformed protobuf).
#[derive(Debug, Clone, Default)]
struct Raw;
impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}
impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}
impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

async fn raw_submit(
    net: &Net,
    party: &str,
    body: Vec<u8>,
    sign_body: &[u8],
) -> Result<Vec<u8>, tonic::Status> {
    let ch = tonic::transport::Channel::from_shared(net.url("de-customs"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut g = tonic::client::Grpc::new(ch);
    g.ready().await.unwrap();
    let key = net.key(party);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let target = ledger::auth::Target {
        chain_id: common::CHAIN_ID,
        node: "de-customs",
    };
    let a = ledger::auth::sign(
        &key,
        target,
        "/customs.v1.Ledger/Submit",
        party,
        now,
        sign_body,
    );
    let mut req = tonic::Request::new(body);
    let md = req.metadata_mut();
    md.insert("x-customs-party", a.party.parse().unwrap());
    md.insert("x-customs-node", a.node.parse().unwrap());
    md.insert("x-customs-time", a.time_ms.to_string().parse().unwrap());
    md.insert("x-customs-nonce", a.nonce.parse().unwrap());
    md.insert("x-customs-signature", a.signature.to_hex().parse().unwrap());
    let path = "/customs.v1.Ledger/Submit".parse().unwrap();
    g.unary(req, path, Raw).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_is_refused_and_changes_nothing() {
    let mut net = Net::new(&STANDARD, 3, &[("broker", "broker")], "");
    net.start_all();
    let mut c = net.client("carrier", "de-customs").await;
    let booked = event(&net, K::ShipmentBooked, "BAD-1", "carrier");
    c.submit_retry(&booked, Duration::from_secs(30)).await;
    let (h, hash) = net.converge(1, Duration::from_secs(30)).await;

    type Case = (
        &'static str,
        Result<Vec<u8>, tonic::Status>,
        Code,
        &'static str,
    );
    let mut cases: Vec<Case> = Vec::new();
    // Malformed and truncated protobuf.
    let garbage = vec![0xff, 0xff, 0xff, 0x01, 0x02];
    cases.push((
        "malformed protobuf",
        raw_submit(&net, "carrier", garbage.clone(), &garbage).await,
        Code::Internal,
        "",
    ));
    let good = v1::SubmitRequest {
        signed_tx: booked.encode().unwrap(),
        wait_for_commit: true,
    }
    .encode_to_vec();
    let trunc = good[..good.len() / 2].to_vec();
    cases.push((
        "truncated protobuf",
        raw_submit(&net, "carrier", trunc.clone(), &trunc).await,
        Code::Internal,
        "",
    ));
    // Unknown protobuf field appended: the signed body no longer matches what the server decodes.
    let mut unknown = good.clone();
    unknown.extend_from_slice(&[0xf8, 0x07, 0x01]); // field 127, varint 1
    cases.push((
        "unknown field",
        raw_submit(&net, "carrier", unknown.clone(), &unknown).await,
        Code::Unauthenticated,
        "AUTH_FAILED",
    ));
    // Oversized request (> 1 MiB).
    let big = v1::SubmitRequest {
        signed_tx: vec![7; 2 << 20],
        wait_for_commit: true,
    }
    .encode_to_vec();
    cases.push((
        "oversized",
        raw_submit(&net, "carrier", big.clone(), &big).await,
        Code::OutOfRange,
        "",
    ));
    // Unsigned request: no auth headers at all.
    let r = c
        .inner
        .status(tonic::Request::new(v1::StatusRequest {}))
        .await;
    cases.push((
        "unsigned",
        r.map(|_| vec![]),
        Code::Unauthenticated,
        "AUTH_FAILED",
    ));
    // Replayed request nonce.
    let req = c.signed("/customs.v1.Ledger/Status", v1::StatusRequest {});
    let md = req.metadata().clone();
    c.inner.status(req).await.unwrap();
    let mut again = tonic::Request::new(v1::StatusRequest {});
    *again.metadata_mut() = md;
    cases.push((
        "replayed request",
        c.inner.status(again).await.map(|_| vec![]),
        Code::Unauthenticated,
        "AUTH_FAILED",
    ));
    // Not-a-transaction bytes inside a well-formed request.
    let r = c
        .inner
        .submit(c.signed(
            "/customs.v1.Ledger/Submit",
            v1::SubmitRequest {
                signed_tx: vec![1, 2, 3],
                wait_for_commit: true,
            },
        ))
        .await;
    cases.push((
        "garbage transaction",
        r.map(|_| vec![]),
        Code::InvalidArgument,
        "TX_MALFORMED",
    ));
    let mut tx_bytes = booked.encode().unwrap();
    tx_bytes.push(0);
    let r = c
        .inner
        .submit(c.signed(
            "/customs.v1.Ledger/Submit",
            v1::SubmitRequest {
                signed_tx: tx_bytes,
                wait_for_commit: true,
            },
        ))
        .await;
    cases.push((
        "trailing byte",
        r.map(|_| vec![]),
        Code::InvalidArgument,
        "TX_MALFORMED",
    ));
    // Transaction-level refusals.
    let sub = |c: &mut common::Api, tx: ledger::SignedTransaction| {
        let req = c.signed(
            "/customs.v1.Ledger/Submit",
            v1::SubmitRequest {
                signed_tx: tx.encode().unwrap(),
                wait_for_commit: true,
            },
        );
        let mut inner = c.inner.clone();
        async move { inner.submit(req).await.map(|_| vec![]) }
    };
    let mut wrong_chain = event(&net, K::ShipmentBooked, "BAD-2", "carrier");
    wrong_chain.tx.chain_id = "other-chain".into();
    let wrong_chain = wrong_chain.tx.sign(&net.key("carrier")).unwrap();
    cases.push((
        "wrong chain id",
        sub(&mut c, wrong_chain).await,
        Code::InvalidArgument,
        "TX_WRONG_CHAIN",
    ));
    let mut bad_sig = event(&net, K::ShipmentBooked, "BAD-3", "carrier");
    bad_sig.signature.0[10] ^= 1;
    cases.push((
        "bad signature",
        sub(&mut c, bad_sig).await,
        Code::InvalidArgument,
        "TX_BAD_SIGNATURE",
    ));
    let mut malleated = event(&net, K::ShipmentBooked, "BAD-4", "carrier");
    // S + l: same signature under non-strict rules, refused under the strict one.
    let l =
        hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap();
    let mut carry = 0u16;
    for (i, li) in l.iter().enumerate() {
        let v = u16::from(malleated.signature.0[32 + i]) + u16::from(*li) + carry;
        malleated.signature.0[32 + i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    cases.push((
        "malleated signature",
        sub(&mut c, malleated).await,
        Code::InvalidArgument,
        "TX_BAD_SIGNATURE",
    ));
    let mut unknown_sub = event(&net, K::ShipmentBooked, "BAD-5", "carrier");
    unknown_sub.tx.submitter = "mallory".into();
    let unknown_sub = unknown_sub.tx.sign(&net.key("carrier")).unwrap();
    cases.push((
        "unknown submitter",
        sub(&mut c, unknown_sub).await,
        Code::PermissionDenied,
        "TX_UNKNOWN_SUBMITTER",
    ));
    cases.push((
        "wrong role",
        sub(&mut c, event(&net, K::Released, "BAD-1", "carrier")).await,
        Code::PermissionDenied,
        "TX_ROLE_NOT_ALLOWED",
    ));
    cases.push((
        "replayed transaction",
        sub(&mut c, booked.clone()).await,
        Code::AlreadyExists,
        "TX_DUPLICATE",
    ));
    cases.push((
        "invalid lifecycle",
        sub(&mut c, event(&net, K::Delivered, "BAD-1", "carrier")).await,
        Code::FailedPrecondition,
        "LIFECYCLE_NOT_RELEASED",
    ));
    // Invalid HS code in a declaration (subheading not in the nomenclature).
    let cfg = net.genesis();
    let mut d = ledger::declaration::sample();
    d.goods[0].hs_code = "99999999".into();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let decl = ledger::disclosure::seal(
        &cfg,
        &ledger::disclosure::Draft {
            chain_id: cfg.chain_id.clone(),
            kind: K::DeclarationFiled,
            shipment_id: "BAD-1".into(),
            submitter: "broker".into(),
            claimed_time_ms: now,
            fields: d.to_fields(),
            shipment_parties: vec![],
            governance: None,
        },
    )
    .unwrap()
    .sign(&net.key("broker"))
    .unwrap();
    let mut cb = net.client("broker", "de-customs").await;
    cases.push((
        "invalid HS code",
        sub(&mut cb, decl).await,
        Code::InvalidArgument,
        "HS_UNKNOWN",
    ));
    // Unauthenticated party.
    let mut stranger = net.client("carrier", "de-customs").await;
    stranger.party = "mallory".into();
    cases.push((
        "unknown caller",
        stranger.status().await.map(|_| vec![]),
        Code::Unauthenticated,
        "AUTH_FAILED",
    ));

    for (name, got, code, why) in &cases {
        match got {
            Ok(_) => panic!("{name}: accepted"),
            Err(s) => {
                assert_eq!(s.code(), *code, "{name}: {s:?}");
                if !why.is_empty() {
                    assert_eq!(reason(s), *why, "{name}: {s:?}");
                }
                assert!(!s.message().is_empty(), "{name}: empty message");
            }
        }
    }
    // Garbage bytes to the libp2p port from an unknown client.
    let spec = std::fs::read_to_string(net.net().join("de-customs").join("node.toml")).unwrap();
    let p2p_port: u16 = spec
        .lines()
        .find(|l| l.starts_with("p2p_listen"))
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches('"')
        .parse()
        .unwrap();
    for _ in 0..3 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", p2p_port)).await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(&[0x13; 4096]).await;
        }
    }
    // Nothing changed and the node keeps serving.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = c.status().await.unwrap();
    assert_eq!((s.height, s.tip_hash), (h, hash));
    let ok = event(&net, K::ShipmentBooked, "BAD-OK", "carrier");
    c.submit_retry(&ok, Duration::from_secs(10)).await;
}

/// `SubmitBatch` answers each transaction on its own, in order, through a
/// follower (forwarded to the leader in one request) and on the leader; the
/// refused ones change nothing; an empty or oversized batch is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_batch_answers_each_transaction() {
    let mut net = Net::new(&STANDARD, 3, &[], "");
    net.start_all();
    let leader = net.leader(Duration::from_secs(30)).await;
    let follower = ["de-customs", "fr-customs", "pl-customs"]
        .into_iter()
        .find(|p| *p != leader)
        .unwrap();
    let c = net.client("carrier", follower).await;
    let batch = |c: &common::Api, txs: Vec<Vec<u8>>| {
        let req = c.signed(
            "/customs.v1.Ledger/SubmitBatch",
            v1::SubmitBatchRequest {
                signed_txs: txs,
                wait_for_commit: true,
            },
        );
        let mut inner = c.inner.clone();
        async move {
            inner
                .submit_batch(req)
                .await
                .map(|r| r.into_inner().outcomes)
        }
    };
    let booked = event(&net, K::ShipmentBooked, "BATCH-1", "carrier");
    let booked2 = event(&net, K::ShipmentBooked, "BATCH-4", "carrier");
    let mut bad_sig = event(&net, K::ShipmentBooked, "BATCH-2", "carrier");
    bad_sig.signature.0[3] ^= 1;
    let wrong_role = event(&net, K::Released, "BATCH-3", "carrier");
    let txs = vec![
        booked.encode().unwrap(),
        vec![1, 2, 3],
        bad_sig.encode().unwrap(),
        booked.encode().unwrap(),
        wrong_role.encode().unwrap(),
        booked2.encode().unwrap(),
    ];
    // Retry while the follower has no leader yet (the whole call fails then).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let out = loop {
        match batch(&c, txs.clone()).await {
            Ok(o) => break o,
            Err(s) if s.code() == Code::Unavailable && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("batch refused whole: {s:?}"),
        }
    };
    assert_eq!(out.len(), txs.len(), "one outcome per transaction");
    let ok = |o: &v1::SubmitResponse, tx: &ledger::SignedTransaction| {
        assert_eq!(o.status, 0, "{o:?}");
        assert!(o.rejections.is_empty(), "{o:?}");
        assert!(o.height > 0, "{o:?}");
        assert_eq!(o.tx_id, tx.id().unwrap().0.to_vec());
    };
    let refused = |o: &v1::SubmitResponse, code: Code, why: &str| {
        assert_eq!(o.status, code as i32, "{o:?}");
        assert_eq!(o.rejections.len(), 1, "{o:?}");
        assert_eq!(o.rejections[0].code, why, "{o:?}");
        assert!(!o.rejections[0].message.is_empty(), "{o:?}");
    };
    ok(&out[0], &booked);
    refused(&out[1], Code::InvalidArgument, "TX_MALFORMED");
    assert!(out[1].tx_id.is_empty());
    refused(&out[2], Code::InvalidArgument, "TX_BAD_SIGNATURE");
    assert_eq!(out[2].tx_id, bad_sig.id().unwrap().0.to_vec());
    // The same transaction twice in one batch commits once; both copies
    // are answered with its one place in the chain.
    ok(&out[3], &booked);
    assert_eq!((out[3].height, out[3].index), (out[0].height, out[0].index));
    refused(&out[4], Code::PermissionDenied, "TX_ROLE_NOT_ALLOWED");
    ok(&out[5], &booked2);

    // On the leader itself: one new shipment, and an event the committed
    // shipment is not ready for (its state is read from the chain).
    let mut cl = net.client("carrier", &leader).await;
    let early = event(&net, K::Loaded, "BATCH-1", "carrier");
    let out = batch(&cl, vec![early.encode().unwrap()]).await.unwrap();
    refused(&out[0], Code::FailedPrecondition, "LIFECYCLE_NOT_DECLARED");
    let loaded = event(&net, K::ShipmentBooked, "BATCH-5", "carrier");
    let out = batch(&cl, vec![loaded.encode().unwrap()]).await.unwrap();
    ok(&out[0], &loaded);

    // Refused whole: empty, too many.
    let s = batch(&c, vec![]).await.unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::InvalidArgument, "BATCH_EMPTY")
    );
    let s = batch(&c, vec![vec![1]; 1025]).await.unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::InvalidArgument, "BATCH_TOO_LARGE")
    );

    // Only the three accepted transactions committed, on every node.
    net.converge(1, Duration::from_secs(30)).await;
    for p in ["de-customs", "fr-customs", "pl-customs"] {
        net.check_acked(
            p,
            &[
                booked.id().unwrap(),
                booked2.id().unwrap(),
                loaded.id().unwrap(),
            ],
        )
        .await;
        let mut q = net.client("carrier", p).await;
        for bad in [&bad_sig, &wrong_role] {
            let r = q.signed(
                "/customs.v1.Ledger/GetTransaction",
                v1::GetTransactionRequest {
                    tx_id: bad.id().unwrap().0.to_vec(),
                },
            );
            let s = q.inner.get_transaction(r).await.unwrap_err();
            assert_eq!(s.code(), Code::NotFound, "{p}: {s:?}");
        }
    }
    cl.status().await.unwrap();
}

/// A customs node built with another classifier or risk model, or other
/// duty and VAT tables, than its chain names refuses to start, saying which (it would judge unlike its
/// peers and halt its own cosigning at the first declaration).
#[test]
fn a_customs_node_with_other_model_versions_does_not_start() {
    for (field, value, what) in [
        ("classifier_version", "hs-other/9", "classifier"),
        ("risk_model_version", "risk-0.0.1", "risk model"),
    ] {
        let net = Net::new(&STANDARD, 3, &[], "");
        let path = net.net().join("genesis.json");
        let mut g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        g[field] = value.into();
        std::fs::write(&path, serde_json::to_string_pretty(&g).unwrap()).unwrap();
        let log = net.start_refused("de-customs");
        assert!(
            log.contains("VERSION_MISMATCH")
                && log.contains(&format!("{what} version"))
                && log.contains(value),
            "{log}"
        );
    }
    // Other duty tables pinned than the build carries.
    let net = Net::new(&STANDARD, 3, &[], "");
    let path = net.net().join("genesis.json");
    let mut g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    g["tables"]["tariff_sha256"] = "00".repeat(32).into();
    std::fs::write(&path, serde_json::to_string_pretty(&g).unwrap()).unwrap();
    let log = net.start_refused("de-customs");
    assert!(
        log.contains("VERSION_MISMATCH") && log.contains("duty and VAT tables"),
        "{log}"
    );
}

/// The genesis pins the distilled HS table; a customs node given another
/// table (one changed byte, or a file that is not a table) refuses to
/// start, naming the file and both hashes, instead of judging unlike its
/// peers (ADR 0020).
#[test]
fn a_customs_node_with_another_semantic_table_does_not_start() {
    let net = Net::new(&STANDARD, 3, &[], "");
    let pinned = net.genesis().nomenclature.semantic;
    assert_ne!(pinned, ledger::hash::Hash32::ZERO, "genesis pins no table");
    let path = net.net().join("hs-minilm.sem");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    // The file may be a hard link to the checkout's table: replace it.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let log = net.start_refused("de-customs");
    assert!(
        log.contains("hs-minilm.sem")
            && log.contains("but the chain pins")
            && log.contains(&pinned.to_string()),
        "{log}"
    );
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not a table").unwrap();
    let log = net.start_refused("de-customs");
    assert!(log.contains("not an HS semantic table"), "{log}");
}
