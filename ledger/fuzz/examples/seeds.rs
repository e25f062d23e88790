//! Writes the seed inputs of every fuzz target: valid, deterministic records
//! from the fixture network (a sealed declaration, a block holding it, a
//! cosigned checkpoint, a Raft batch, a disclosure proof, signed request
//! headers), so the fuzzers start from the shapes the decoders accept.
//!
//! `cargo run --example seeds [OUT_DIR]` (default: `seeds/` next to this
//! crate's manifest) writes `OUT_DIR/<target>/<name>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ledger::chain::{BlockContext, ContentOutcome, NoContent};
use ledger::disclosure::{self, Draft};
use ledger::event::EventKind;
use ledger::testkit::{self, T0};
use ledger::{codec, declaration, CosignedCheckpoint, SignedTransaction, TxBatch};
use ledger_fuzz::raft::{Batch, RaftRpc, RaftRpcReply};
use ledger_fuzz::{context, fresh_ledger};
use openraft::raft::{AppendEntriesRequest, VoteRequest, VoteResponse};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use std::path::PathBuf;

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let cfg = ledger_fuzz::config();

    // Transactions: a plain event and a sealed declaration.
    let booked = testkit::event(EventKind::ShipmentBooked, "SHP-1", "exporter", 1, T0);
    let declared: SignedTransaction = disclosure::seal(
        cfg,
        &Draft {
            chain_id: cfg.chain_id.clone(),
            kind: EventKind::DeclarationFiled,
            shipment_id: "SHP-1".into(),
            submitter: "broker".into(),
            claimed_time_ms: T0,
            fields: declaration::sample().to_fields(),
            shipment_parties: vec!["exporter".into(), "carrier".into()],
            governance: None,
        },
    )
    .unwrap()
    .sign(&testkit::key("broker"))
    .unwrap();
    write("signed_tx", "booked", &booked.encode().unwrap());
    write("signed_tx", "declaration", &declared.encode().unwrap());

    // A Raft batch as the leader proposes it (no content outcomes, and one).
    let ctx: BlockContext = context(1);
    let batch = Batch {
        ctx: ctx.clone(),
        txs: TxBatch::from_txs(vec![booked.clone()]).unwrap(),
        outcomes: vec![ContentOutcome::default()],
    };
    write("raft_batch", "booked", &codec::encode(&batch).unwrap());

    // Raft messages: an append carrying that batch, a vote, and replies.
    let vote = Vote::new_committed(1, 1);
    let append = RaftRpc::AppendEntries(AppendEntriesRequest {
        vote,
        prev_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 1)),
        entries: vec![Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 2),
            payload: EntryPayload::Normal(batch),
        }],
        leader_commit: Some(LogId::new(CommittedLeaderId::new(1, 1), 1)),
    });
    write("raft_rpc", "append", &codec::encode(&append).unwrap());
    let request_vote = RaftRpc::Vote(VoteRequest {
        vote: Vote::new(2, 3),
        last_log_id: None,
    });
    write("raft_rpc", "vote", &codec::encode(&request_vote).unwrap());
    let reply = RaftRpcReply::Vote(Ok(VoteResponse {
        vote,
        vote_granted: false,
        last_log_id: None,
    }));
    write("raft_rpc", "vote_reply", &codec::encode(&reply).unwrap());

    // Blocks: genesis, then the two transactions committed.
    let mut l = fresh_ledger();
    l.apply(std::slice::from_ref(&booked), &ctx, &mut NoContent)
        .unwrap();
    l.apply(std::slice::from_ref(&declared), &context(2), &mut NoContent)
        .unwrap();
    write("block", "genesis", ledger_fuzz::genesis_bytes());
    let (block1, _) = l.transaction(&booked.id().unwrap()).unwrap().unwrap();
    write("block", "height1", &block1.encode().unwrap());

    // A checkpoint cosigned by the customs validators and the carrier.
    let cp = l.checkpoint().unwrap();
    let signers = ["carrier", "de-customs", "fr-customs", "pl-customs"];
    let cosigned = CosignedCheckpoint {
        cosignatures: signers
            .iter()
            .map(|p| cp.cosign(p, &testkit::key(p)).unwrap())
            .collect(),
        checkpoint: cp.clone(),
    };
    write("checkpoint", "cosigned", &codec::encode(&cosigned).unwrap());
    write(
        "checkpoint",
        "cosigned.json",
        serde_json::to_string(&cosigned).unwrap().as_bytes(),
    );
    let message = (cp, cosigned.cosignatures[0].clone(), true);
    write(
        "checkpoint",
        "cosign_message",
        &codec::encode(&message).unwrap(),
    );

    // A disclosure proof of one declared value, as the exporter makes it.
    let (blk, loc) = l.transaction(&declared.id().unwrap()).unwrap().unwrap();
    let opened = disclosure::open(
        &declared.tx,
        "exporter",
        &[ledger_fuzz::decryption_key("exporter")],
    )
    .unwrap();
    let d = disclosure::disclose(
        &opened,
        "decl.goods[0].value_minor",
        &declared,
        &blk.header,
        u64::from(loc.index),
        blk.tx_proof(loc.index).unwrap(),
        l.block_inclusion_proof(loc.height, cosigned.checkpoint.tree_size)
            .unwrap(),
        cosigned,
    )
    .unwrap();
    disclosure::verify_disclosure(&d, cfg, cfg.checkpoint_quorum).unwrap();
    write("disclosure", "value", &codec::encode(&d).unwrap());
    write(
        "disclosure",
        "value.json",
        serde_json::to_string(&d).unwrap().as_bytes(),
    );

    // Signed request headers: party, time, nonce, signature, body.
    let body = b"request body";
    let a = ledger::auth::sign(
        &testkit::key("auditor"),
        ledger::auth::Target {
            chain_id: "customs-test",
            node: "de-customs",
        },
        "/customs.v1.Ledger/Status",
        "auditor",
        T0,
        body,
    );
    let mut req = format!(
        "{}\n{}\n{}\n{}\n{}\n",
        a.party,
        a.node,
        a.time_ms,
        a.nonce,
        a.signature.to_hex()
    )
    .into_bytes();
    req.extend_from_slice(body);
    write("auth", "request", &req);
}
