//! Hostile-peer harness: connects to customs nodes with the libp2p identity
//! of a registered (or revoked) party and sends them what a hostile party
//! could, one attack per run. For each target it prints one line
//!
//! ```text
//! attack=<name> target=<peer id> outcome=<refused|answered|unreachable> detail=<text>
//! ```
//!
//! `refused` means the node answered with an error (its reason code is in
//! `detail`); `answered` means the message reached Raft and got a Raft
//! reply; `unreachable` means no connection (e.g. the identity is not on the
//! node's allowlist). `cli/tests/hostile.rs` runs every attack against a
//! real network and checks the refusals, the metrics and that the honest
//! nodes keep one history (ADR 0011).
//!
//! Attacks:
//! - `append-entries`: an `AppendEntries` that claims leadership of node
//!   `--claim-node` at term `--term`, carrying one forged entry;
//! - `install-snapshot`: a forged snapshot chunk claiming a log far ahead;
//! - `vote`: a `Vote` request for candidate `--claim-node` at `--term`
//!   (`max` for `u64::MAX`, which openraft would increment unchecked);
//! - `flood`: `--count` concurrent Raft-kind requests of `--bytes` bytes
//!   each, to show the per-peer in-flight budget (`PEER_BUSY`);
//! - `lying-learner`: listen on `--listen` as a learner's node (run it with
//!   the identity of a learner whose real node is down) for `--for-s`
//!   seconds and answer every Raft message the leader sends with a vote
//!   1000 terms higher; prints one line with the number of replies sent. A
//!   leader that believed one would step down and take that term.
//!
//! ```sh
//! cargo run --example hostile_peer -- --node-key net/keys/broker.node \
//!     --peer 12D3KooW...=/ip4/127.0.0.1/tcp/9101 --attack vote --term max
//! ```

use anyhow::{anyhow, bail, Result};

#[path = "support/mod.rs"]
mod support;
use clap::Parser;
use consensus::openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use consensus::openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, StoredMembership, Vote,
};
use consensus::{Batch, RaftRpc, TypeConfig};
use ledger::chain::BlockContext;
use node::p2p::{self, BoxFuture, InboundHandler, P2p, P2pConfig, P2pError, PeerId};
use node::transport::kind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{parse_peer, Mute};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    id: support::Identity,
    /// append-entries, install-snapshot, vote or flood.
    #[arg(long)]
    attack: String,
    /// Raft node id the message claims to speak for.
    #[arg(long, default_value_t = 1)]
    claim_node: u64,
    /// Term the message carries (`max` for u64::MAX).
    #[arg(long, default_value = "1000")]
    term: String,
    /// flood: concurrent requests.
    #[arg(long, default_value_t = 600)]
    count: usize,
    /// flood: bytes per request.
    #[arg(long, default_value_t = 64 * 1024)]
    bytes: usize,
    /// How long to wait for a connection to each target.
    #[arg(long, default_value_t = 10)]
    connect_s: u64,
    /// lying-learner: listen address (the learner's p2p address).
    #[arg(long)]
    listen: Option<String>,
    /// lying-learner: how long to keep answering.
    #[arg(long, default_value_t = 5)]
    for_s: u64,
}

/// Answers every Raft message with a vote far above the sender's.
struct Liar {
    me: u64,
    replies: std::sync::atomic::AtomicU64,
}

impl InboundHandler for Liar {
    fn handle(
        &self,
        _from: PeerId,
        kind: u8,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        use consensus::openraft::raft::{
            AppendEntriesResponse, InstallSnapshotResponse, VoteResponse,
        };
        use consensus::RaftRpcReply;
        let rpc = match (kind, RaftRpc::decode(&payload)) {
            (kind::RAFT, Ok(rpc)) => rpc,
            _ => return Box::pin(async { Err("not serving".to_string()) }),
        };
        let higher = |v: &Vote<u64>| Vote::new(v.leader_id().get_term() + 1000, self.me);
        let reply = match &rpc {
            RaftRpc::AppendEntries(r) => {
                RaftRpcReply::AppendEntries(Ok(AppendEntriesResponse::HigherVote(higher(&r.vote))))
            }
            RaftRpc::InstallSnapshot(r) => {
                RaftRpcReply::InstallSnapshot(Ok(InstallSnapshotResponse {
                    vote: higher(&r.vote),
                }))
            }
            RaftRpc::Vote(r) => RaftRpcReply::Vote(Ok(VoteResponse {
                vote: higher(&r.vote),
                vote_granted: false,
                last_log_id: None,
            })),
        };
        self.replies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bytes = reply.encode().map_err(|e| e.to_string());
        Box::pin(async move { bytes })
    }
}

fn forged_rpc(args: &Args) -> Result<RaftRpc> {
    let term = match args.term.as_str() {
        "max" => u64::MAX,
        t => t.parse().map_err(|e| anyhow!("--term {t}: {e}"))?,
    };
    let leader = CommittedLeaderId::new(term, args.claim_node);
    Ok(match args.attack.as_str() {
        "append-entries" => {
            let log_id = LogId::new(leader, 1);
            RaftRpc::AppendEntries(AppendEntriesRequest {
                vote: Vote::new_committed(term, args.claim_node),
                prev_log_id: None,
                entries: vec![Entry::<TypeConfig> {
                    log_id,
                    payload: EntryPayload::Normal(Batch {
                        ctx: BlockContext {
                            timestamp_ms: 1,
                            raft_term: 0,
                            raft_index: 0,
                            proposer: "forged".into(),
                        },
                        txs: ledger::TxBatch::from_txs(Vec::new())?,
                        outcomes: Vec::new().into(),
                        judged_at: None,
                    }),
                }],
                leader_commit: Some(log_id),
            })
        }
        "install-snapshot" => RaftRpc::InstallSnapshot(InstallSnapshotRequest {
            vote: Vote::new_committed(term, args.claim_node),
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(leader, 1_000_000)),
                last_membership: StoredMembership::default(),
                snapshot_id: "forged".into(),
            },
            offset: 0,
            data: vec![0x5a; 4096],
            done: true,
        }),
        "vote" => RaftRpc::Vote(VoteRequest {
            vote: Vote::new(term, args.claim_node),
            last_log_id: Some(LogId::new(leader, u64::MAX / 2)),
        }),
        other => bail!("unknown attack {other}"),
    })
}

fn classify(r: &Result<Vec<u8>, P2pError>) -> (&'static str, String) {
    match r {
        Ok(bytes) => match consensus::RaftRpcReply::decode(bytes) {
            Ok(reply) => ("answered", format!("{reply:?}")),
            Err(e) => ("answered", format!("undecodable reply: {e}")),
        },
        Err(P2pError::Remote(text)) => ("refused", text.clone()),
        Err(e) => ("unreachable", e.to_string()),
    }
}

async fn lying_learner(args: &Args, seed: [u8; 32]) -> Result<()> {
    let liar = Arc::new(Liar {
        me: args.claim_node,
        replies: std::sync::atomic::AtomicU64::new(0),
    });
    let mut cfg = P2pConfig::new(p2p::keypair_from_seed(seed), liar.clone());
    let listen = args
        .listen
        .as_deref()
        .ok_or_else(|| anyhow!("lying-learner needs --listen"))?;
    cfg.listen_addrs = vec![listen.parse()?];
    for p in &args.id.peers {
        cfg.allowlist.insert(parse_peer(p)?.0);
    }
    let (handle, _task) = P2p::spawn(cfg).await.map_err(|e| anyhow!("p2p: {e}"))?;
    tokio::time::sleep(Duration::from_secs(args.for_s)).await;
    let n = liar.replies.load(std::sync::atomic::Ordering::Relaxed);
    println!("attack=lying-learner target=- outcome=answered detail=replies:{n}");
    let _ = handle.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let seed = node::keys::read_secret(&args.id.node_key)?;
    if args.attack == "lying-learner" {
        return lying_learner(&args, seed).await;
    }
    let mut cfg = P2pConfig::new(p2p::keypair_from_seed(seed), Arc::new(Mute));
    cfg.listen_addrs = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.max_concurrent_streams = args.count.max(16) + 16;
    let mut targets = Vec::new();
    for p in &args.id.peers {
        let (id, addr) = parse_peer(p)?;
        cfg.allowlist.insert(id);
        cfg.known_peers.push((id, addr));
        targets.push(id);
    }
    let (handle, _task) = P2p::spawn(cfg).await.map_err(|e| anyhow!("p2p: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(args.connect_s);
    loop {
        let connected = handle.connected_peers().await.unwrap_or_default();
        if targets.iter().all(|t| connected.contains(t)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for target in targets {
        if args.attack == "flood" {
            let payload = vec![0xa5u8; args.bytes];
            let mut calls = Vec::with_capacity(args.count);
            for _ in 0..args.count {
                let (h, p) = (handle.clone(), payload.clone());
                calls.push(tokio::spawn(async move {
                    h.request(target, kind::RAFT, p, Duration::from_secs(30))
                        .await
                }));
            }
            let (mut busy, mut refused, mut answered, mut unreachable) = (0, 0, 0, 0);
            for c in calls {
                match c.await.map_err(|e| anyhow!("join: {e}"))? {
                    Err(P2pError::Remote(t)) if t.starts_with("PEER_BUSY") => busy += 1,
                    Err(P2pError::Remote(_)) => refused += 1,
                    Ok(_) => answered += 1,
                    Err(_) => unreachable += 1,
                }
            }
            let outcome = if answered > 0 {
                "answered"
            } else if busy + refused > 0 {
                "refused"
            } else {
                "unreachable"
            };
            println!(
                "attack=flood target={target} outcome={outcome} detail=busy:{busy} refused:{refused} answered:{answered} unreachable:{unreachable}"
            );
            continue;
        }
        let rpc = forged_rpc(&args)?;
        let r = handle
            .request(target, kind::RAFT, rpc.encode()?, Duration::from_secs(10))
            .await;
        let (outcome, detail) = classify(&r);
        println!(
            "attack={} target={target} outcome={outcome} detail={}",
            args.attack,
            detail.replace('\n', " ")
        );
    }
    let _ = handle.shutdown().await;
    Ok(())
}
