//! The node's core operations behind the gRPC API and the peer protocol:
//! authenticated requests, admission and submission (forwarded to the
//! leader when this node is not), proofs against cosigned checkpoints.

use crate::cosign::Cosigner;
use crate::metrics::{Gauges, Metrics};
use crate::p2p::P2pHandle;
use crate::status;
use crate::transport::kind;
use consensus::openraft::ServerState;
use consensus::{BatcherHandle, ConsensusNode, NodeId, ProposeError};
use ledger::auth;
use ledger::block::{CosignedCheckpoint, TxResult};
use ledger::chain::{ContentOutcome, Rejection};
use ledger::validate::CustomsValidator;
use ledger::ChainConfig;
use ledger::Store;
use ledger::{codec, Hash32, SignedTransaction};
use prost::Message;
use proto::v1;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tonic::Status;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Shared state of a running node.
pub struct NodeCore {
    /// This node's party.
    pub party: String,
    /// Raft id.
    pub node_id: NodeId,
    /// Consensus.
    pub consensus: ConsensusNode,
    /// Submission batcher (used when leader).
    pub batcher: BatcherHandle,
    /// libp2p.
    pub p2p: P2pHandle,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Content validator (customs nodes).
    pub content: Option<Arc<RwLock<CustomsValidator>>>,
    /// Cosigner.
    pub cosigner: Arc<Cosigner>,
    /// Node id ↔ party ↔ peer id, following the committed chain config.
    pub directory: Arc<crate::peers::Directory>,
    /// Accepted clock skew of signed requests.
    pub request_window_ms: u64,
    /// Per-party budgets (streams, pending submissions, reads).
    pub limits: crate::limits::PartyLimits,
    /// Smart Customs KPIs folded from committed blocks.
    pub kpis: Arc<crate::kpi::Kpis>,
    nonces: Mutex<BTreeSet<(u64, String, String)>>,
}

impl std::fmt::Debug for NodeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeCore({}, node {})", self.party, self.node_id)
    }
}

fn ledger_err(e: impl std::fmt::Display) -> Status {
    let s = e.to_string();
    if s.contains("corrupt") {
        status::corrupt(s)
    } else {
        status::internal(s)
    }
}

/// Proto form of a result.
pub fn result_proto(r: &TxResult) -> Result<v1::TxResult, Status> {
    Ok(v1::TxResult {
        encoded: codec::encode(r).map_err(status::internal)?,
        status: r
            .status
            .map(|s| format!("{s:?}").to_uppercase())
            .unwrap_or_default(),
    })
}

/// Proto form of a cosigned checkpoint.
pub fn checkpoint_proto(c: &CosignedCheckpoint) -> Result<v1::CosignedCheckpoint, Status> {
    Ok(v1::CosignedCheckpoint {
        checkpoint: codec::encode(&c.checkpoint).map_err(status::internal)?,
        height: c.checkpoint.height,
        tree_size: c.checkpoint.tree_size,
        tree_root: c.checkpoint.tree_root.0.to_vec(),
        block_hash: c.checkpoint.block_hash.0.to_vec(),
        cosignatures: c
            .cosignatures
            .iter()
            .map(|s| v1::Cosignature {
                party: s.party.clone(),
                signature: s.signature.0.to_vec(),
            })
            .collect(),
    })
}

fn rejection_string(r: &Rejection) -> String {
    format!("{}: {}", r.code, r.message)
}

/// Map a forwarded error string `CODE: message` back to a status. The
/// reasons a whole forwarded call can fail with are all transient
/// (leadership moved, no quorum) or the batch's own shape.
fn status_from_remote(s: &str) -> Status {
    match s.split_once(": ") {
        Some((code, msg)) if code.starts_with("BATCH_") || code == "TX_MALFORMED" => {
            status::invalid(code, msg)
        }
        Some((code, msg)) if code.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
            status::unavailable(code, msg)
        }
        _ => status::unavailable("FORWARD_FAILED", s),
    }
}

/// Most transactions one `SubmitBatch` call may carry.
pub const MAX_SUBMIT_BATCH: usize = 1024;

/// A refused submission: its id when it decoded, and the status `Submit`
/// answers with.
#[derive(Debug)]
struct Refusal {
    id: Option<Hash32>,
    status: Status,
}

/// What happened to one submitted transaction.
type Outcome = Result<v1::SubmitResponse, Refusal>;

impl NodeCore {
    /// Build the core.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        party: String,
        node_id: NodeId,
        consensus: ConsensusNode,
        batcher: BatcherHandle,
        p2p: P2pHandle,
        metrics: Arc<Metrics>,
        content: Option<Arc<RwLock<CustomsValidator>>>,
        cosigner: Arc<Cosigner>,
        directory: Arc<crate::peers::Directory>,
        request_window_ms: u64,
    ) -> Self {
        NodeCore {
            party,
            node_id,
            consensus,
            batcher,
            p2p,
            metrics,
            content,
            cosigner,
            directory,
            request_window_ms,
            limits: crate::limits::PartyLimits::default(),
            kpis: Arc::default(),
            nonces: Mutex::new(BTreeSet::new()),
        }
    }

    /// Authenticate a request: registered party, time window, fresh nonce,
    /// strict signature over method and body. Returns the caller's party.
    pub fn authenticate<T: Message>(
        &self,
        req: &tonic::Request<T>,
        method: &str,
    ) -> Result<String, Status> {
        let md = req.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok());
        let fail = |e: auth::AuthError| {
            self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(method, "refused request: {e}");
            status::unauthenticated(e)
        };
        let a = auth::parse(
            get(auth::header::PARTY),
            get(auth::header::NODE),
            get(auth::header::TIME),
            get(auth::header::NONCE),
            get(auth::header::SIGNATURE),
        )
        .map_err(fail)?;
        let body = req.get_ref().encode_to_vec();
        let now = now_ms();
        let window = self.request_window_ms;
        // Verify against a config snapshot: the signature check must not
        // hold the ledger lock that apply needs.
        let config = self
            .consensus
            .ledger()
            .with_ledger(|l| l.shared_config())
            .map_err(ledger_err)?;
        auth::verify(&config, &a, &self.party, method, &body, now, window).map_err(fail)?;
        let mut n = self.nonces.lock().map_err(status::internal)?;
        let cutoff = now.saturating_sub(window.saturating_mul(2));
        while let Some(first) = n.first().cloned() {
            if first.0 >= cutoff {
                break;
            }
            n.remove(&first);
        }
        if !n.insert((a.time_ms, a.party.clone(), a.nonce.clone())) {
            self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            return Err(status::unauthenticated("request nonce replayed"));
        }
        Ok(a.party)
    }

    /// Current leader, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.consensus.metrics().borrow().current_leader
    }

    /// Metrics gauges now.
    pub fn gauges(&self) -> Gauges {
        let m = self.consensus.metrics().borrow().clone();
        let p2p = self.p2p.stats();
        Gauges {
            raft_role: match m.state {
                ServerState::Follower => 0,
                ServerState::Candidate => 1,
                ServerState::Leader => 2,
                ServerState::Learner => 3,
                ServerState::Shutdown => 4,
            },
            term: m.current_term,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            height: self.consensus.ledger().tip().map_or(0, |t| t.height),
            peers: p2p.connected_peers,
            peer_throttled: p2p.throttled,
            peer_rejected: p2p.rejected_peers,
        }
    }

    /// Submit canonical transaction bytes; forwards to the leader if needed.
    /// A refusal is the call's status.
    pub async fn submit(
        &self,
        bytes: Vec<u8>,
        wait: bool,
        allow_forward: bool,
        caller: &str,
    ) -> Result<v1::SubmitResponse, Status> {
        let mut out = self
            .submit_many(vec![bytes], wait, allow_forward, caller)
            .await?;
        match out.pop() {
            Some(Ok(r)) => Ok(r),
            Some(Err(refusal)) => Err(refusal.status),
            None => Err(status::internal("a submission without an outcome")),
        }
    }

    /// Submit several transactions (`Ledger.SubmitBatch`): one outcome per
    /// item, in order; a refused item carries its status (see
    /// [`status::to_outcome`]). The call fails as a whole only for an empty
    /// or oversized batch, or when no leader can take it.
    pub async fn submit_batch(
        &self,
        items: Vec<Vec<u8>>,
        wait: bool,
        allow_forward: bool,
        caller: &str,
    ) -> Result<Vec<v1::SubmitResponse>, Status> {
        if items.is_empty() {
            return Err(status::invalid(
                "BATCH_EMPTY",
                "no transactions in the batch",
            ));
        }
        if items.len() > MAX_SUBMIT_BATCH {
            return Err(status::invalid(
                "BATCH_TOO_LARGE",
                format!(
                    "{} transactions in one call, limit {MAX_SUBMIT_BATCH}",
                    items.len()
                ),
            ));
        }
        let out = self.submit_many(items, wait, allow_forward, caller).await?;
        Ok(out
            .into_iter()
            .map(|o| match o {
                Ok(r) => r,
                Err(Refusal { id, status: s }) => {
                    status::to_outcome(id.as_ref().map(|h| &h.0[..]), &s)
                }
            })
            .collect())
    }

    /// The one submission path. Each item is decoded here (garbage is
    /// refused without bothering the leader); on a follower the decodable
    /// ones travel to the leader in one forwarded request. On the leader,
    /// admission of the whole batch runs in one blocking-pool task: each
    /// signature and content judgement outside the ledger lock, only the
    /// reads of committed state under it.
    /// `caller` is the party that asked (a peer's party for forwarded
    /// submissions): fire-and-forget submissions count against its budget
    /// until they commit or fail.
    async fn submit_many(
        &self,
        items: Vec<Vec<u8>>,
        wait: bool,
        allow_forward: bool,
        caller: &str,
    ) -> Result<Vec<Outcome>, Status> {
        let start = Instant::now();
        let (config, verified) = self
            .consensus
            .ledger()
            .with_ledger(|l| (l.shared_config(), l.verified_signatures()))
            .map_err(ledger_err)?;
        let max = config.limits.max_tx_bytes as usize;
        let mut out: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
        let mut good = Vec::with_capacity(items.len());
        for (pos, bytes) in items.into_iter().enumerate() {
            match SignedTransaction::decode_with_id(&bytes, max) {
                Ok((stx, id)) => good.push((pos, bytes, stx, id)),
                Err(e) => {
                    self.metrics.reject("TX_MALFORMED");
                    out[pos] = Some(Err(Refusal {
                        id: None,
                        status: status::invalid("TX_MALFORMED", e),
                    }));
                }
            }
        }
        if good.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        if self.leader() != Some(self.node_id) {
            if !allow_forward {
                return Err(status::unavailable(
                    "NOT_LEADER",
                    "this node is not the leader",
                ));
            }
            let (meta, bytes): (Vec<_>, Vec<_>) = good
                .into_iter()
                .map(|(pos, b, _, id)| ((pos, id), b))
                .unzip();
            let answers = self.forward(bytes, wait).await?;
            if answers.len() != meta.len() {
                return Err(status::internal(format!(
                    "the leader answered {} of {} forwarded transactions",
                    answers.len(),
                    meta.len()
                )));
            }
            for ((pos, id), a) in meta.into_iter().zip(answers) {
                out[pos] = Some(match status::from_outcome(&a) {
                    None => Ok(a),
                    Some(s) => Err(Refusal {
                        id: Some(id),
                        status: s,
                    }),
                });
            }
            return Ok(out.into_iter().flatten().collect());
        }
        let ledger = self.consensus.ledger().clone();
        let content = self.content.clone();
        let admitted = tokio::task::spawn_blocking(move || {
            prewarm_signatures(&config, &verified, &good);
            good.into_iter()
                .map(|(pos, bytes, stx, id)| {
                    let r = admit(
                        &ledger,
                        content.as_deref(),
                        &config,
                        &verified,
                        &stx,
                        &id,
                        bytes.len(),
                    );
                    (pos, id, r.map(|o| (stx, bytes, o)))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(status::internal)?;
        let mut proposals = Vec::with_capacity(admitted.len());
        for (pos, id, r) in admitted {
            match r {
                Ok((stx, bytes, outcome)) => {
                    let batcher = self.batcher.clone();
                    proposals.push((pos, id, async move {
                        batcher.submit_with(stx, id, bytes, outcome).await
                    }));
                }
                Err(Admission::Rejected(r)) => {
                    self.metrics.reject(&r.code);
                    out[pos] = Some(Err(Refusal {
                        id: Some(id),
                        status: status::rejection(&r),
                    }));
                }
                Err(Admission::Failed(s)) => {
                    out[pos] = Some(Err(Refusal {
                        id: Some(id),
                        status: s,
                    }))
                }
            }
        }
        if !wait {
            // What this caller may still leave in flight; the rest of the
            // batch is refused (and may be resubmitted).
            for (pos, id, fut) in proposals {
                let slot = match self.limits.pending.take(caller, 1) {
                    Ok(slot) => slot,
                    Err(s) => {
                        out[pos] = Some(Err(Refusal {
                            id: Some(id),
                            status: s,
                        }));
                        continue;
                    }
                };
                tokio::spawn(async move {
                    let _ = fut.await;
                    drop(slot);
                });
                out[pos] = Some(Ok(v1::SubmitResponse {
                    tx_id: id.0.to_vec(),
                    ..Default::default()
                }));
            }
            return Ok(out.into_iter().flatten().collect());
        }
        let (places, futs): (Vec<_>, Vec<_>) = proposals
            .into_iter()
            .map(|(pos, id, fut)| ((pos, id), fut))
            .unzip();
        let receipts = futures::future::join_all(futs).await;
        let elapsed_ms = start.elapsed().as_millis() as u64;
        for ((pos, id), receipt) in places.into_iter().zip(receipts) {
            out[pos] = Some(self.receipt_outcome(id, receipt, elapsed_ms));
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// What a submitter hears about a proposed transaction.
    fn receipt_outcome(
        &self,
        id: Hash32,
        receipt: Result<consensus::TxReceipt, ProposeError>,
        elapsed_ms: u64,
    ) -> Outcome {
        let refuse = |s: Status| Refusal {
            id: Some(id),
            status: s,
        };
        let receipt = receipt.map_err(|e| {
            refuse(match e {
                ProposeError::NotLeader { .. } => {
                    status::unavailable("NOT_LEADER", "leadership changed; retry")
                }
                other => status::unavailable("RAFT", other),
            })
        })?;
        match receipt.outcome {
            Ok((index, result)) => {
                self.metrics.committed.fetch_add(1, Ordering::Relaxed);
                self.metrics.commit_latency_ms.observe(elapsed_ms);
                Ok(v1::SubmitResponse {
                    tx_id: id.0.to_vec(),
                    height: receipt.height,
                    index,
                    result: Some(result_proto(&result).map_err(refuse)?),
                    ..Default::default()
                })
            }
            Err(r) => {
                self.metrics.reject(&r.code);
                Err(refuse(status::rejection(&r)))
            }
        }
    }

    async fn forward(
        &self,
        items: Vec<Vec<u8>>,
        wait: bool,
    ) -> Result<Vec<v1::SubmitResponse>, Status> {
        let leader = self
            .leader()
            .ok_or_else(|| status::unavailable("NO_LEADER", "no leader elected yet; retry"))?;
        let peer = self.directory.peer_of_node(leader).ok_or_else(|| {
            status::unavailable("NO_LEADER", format!("leader {leader} is not a known peer"))
        })?;
        let req = v1::SubmitBatchRequest {
            signed_txs: items,
            wait_for_commit: wait,
        };
        let reply = self
            .p2p
            .request(
                peer,
                kind::FORWARD,
                req.encode_to_vec(),
                Duration::from_secs(10),
            )
            .await
            .map_err(|e| match e {
                crate::p2p::P2pError::Remote(s) => status_from_remote(&s),
                other => status::unavailable("FORWARD_FAILED", other),
            })?;
        v1::SubmitBatchResponse::decode(reply.as_slice())
            .map(|r| r.outcomes)
            .map_err(|e| status::internal(format!("leader reply: {e}")))
    }

    /// Handle submissions forwarded by a peer (a `SubmitBatchRequest`):
    /// never forwarded again, so a stale leader view cannot bounce them.
    /// `from` names the forwarding node's party.
    pub async fn forwarded(&self, payload: Vec<u8>, from: &str) -> Result<Vec<u8>, String> {
        let req = v1::SubmitBatchRequest::decode(payload.as_slice())
            .map_err(|e| format!("TX_MALFORMED: {e}"))?;
        match self
            .submit_batch(req.signed_txs, req.wait_for_commit, false, from)
            .await
        {
            Ok(outcomes) => Ok(v1::SubmitBatchResponse { outcomes }.encode_to_vec()),
            // Statuses are built `CODE: message` (`status::with_reason`).
            Err(s) => Err(s.message().to_string()),
        }
    }

    /// The best checkpoint to prove against: the highest with a quorum of
    /// cosignatures, which must cover `min_height`; waits briefly for one
    /// (cosignatures of a fresh block take a gossip round or two). A
    /// checkpoint without a quorum is never returned: a client could not
    /// check anything against it.
    pub async fn checkpoint_for(&self, min_height: u64) -> Result<CosignedCheckpoint, Status> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let q = self.cosigner.quorum_height.load(Ordering::Relaxed);
            if q >= min_height {
                let found = self
                    .consensus
                    .ledger()
                    .with_ledger(|l| {
                        l.store()
                            .checkpoint(q)
                            .map(|c| c.filter(|c| crate::cosign::has_quorum(l, c)))
                    })
                    .map_err(ledger_err)?
                    .map_err(ledger_err)?;
                if let Some(c) = found {
                    return Ok(c);
                }
            }
            if Instant::now() > deadline {
                return Err(status::unavailable(
                    "NO_CHECKPOINT",
                    format!(
                        "no checkpoint with a quorum of cosignatures covers height {min_height} yet; retry"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A transaction with its proofs.
    pub async fn transaction_proof(&self, id: &Hash32) -> Result<v1::TransactionProof, Status> {
        let found = self
            .consensus
            .ledger()
            .with_store(|s| ledger::chain::read_transaction(s, id))
            .map_err(ledger_err)?
            .map_err(ledger_err)?;
        let (block, loc) = found.ok_or_else(|| {
            status::not_found("TX_NOT_FOUND", format!("no committed transaction {id}"))
        })?;
        let cp = self.checkpoint_for(loc.height).await?;
        let block_proof = self
            .consensus
            .ledger()
            .with_store(|s| {
                ledger::chain::read_inclusion_proof(s, loc.height, cp.checkpoint.tree_size)
            })
            .map_err(ledger_err)?
            .map_err(ledger_err)?;
        let stx = block
            .txs
            .get(loc.index as usize)
            .ok_or_else(|| status::corrupt("indexed transaction missing from block"))?;
        let result = block.results.get(loc.index as usize);
        Ok(v1::TransactionProof {
            signed_tx: stx.encode().map_err(status::internal)?,
            block_header: codec::encode(&block.header).map_err(status::internal)?,
            height: loc.height,
            index: loc.index,
            tx_proof: block
                .tx_proof(loc.index)
                .map_err(status::internal)?
                .into_iter()
                .map(|h| h.to_vec())
                .collect(),
            block_proof: block_proof.into_iter().map(|h| h.to_vec()).collect(),
            checkpoint: Some(checkpoint_proto(&cp)?),
            result: result.map(result_proto).transpose()?,
        })
    }

    /// Note a rejection reported by apply (metrics).
    pub fn record_rejections(&self, rejected: &[(Hash32, Rejection)]) {
        for (_, r) in rejected {
            self.metrics.reject(&r.code);
            tracing::debug!("rejected at apply: {}", rejection_string(r));
        }
    }
}

/// Why admission did not let a transaction through.
enum Admission {
    /// The transaction is refused (a reason code the client can act on).
    Rejected(Rejection),
    /// This node failed (the ledger is closed, a lock was poisoned).
    Failed(Status),
}

/// Checks the signatures of a group of submissions in one batch equation
/// (ADR 0002), so that admitting each one answers from `verified`. Only the
/// signatures of registered submitters are checked; admission refuses the
/// rest, and the verdict of each signature is the single rule's either way.
fn prewarm_signatures(
    config: &ChainConfig,
    verified: &ledger::crypto::VerifiedSignatures,
    group: &[(usize, Vec<u8>, SignedTransaction, Hash32)],
) {
    if group.len() < 2 {
        return;
    }
    ledger::chain::verified_signers(
        config,
        group.iter().map(|(_, _, stx, id)| (stx, id)),
        verified,
    );
}

/// Leader-side admission of a decoded transaction of `len` canonical bytes:
/// signature and structure against the `config` snapshot, committed state
/// under the ledger lock, then a declaration's formats (customs leaders);
/// its classification and risk are judged when its batch is proposed.
/// Runs on the blocking pool.
fn admit(
    ledger: &consensus::LedgerHandle,
    content: Option<&RwLock<CustomsValidator>>,
    config: &ChainConfig,
    verified: &ledger::crypto::VerifiedSignatures,
    stx: &SignedTransaction,
    id: &Hash32,
    len: usize,
) -> Result<ContentOutcome, Admission> {
    ledger::chain::check_signed(config, stx, id, len, verified).map_err(Admission::Rejected)?;
    ledger
        .with_ledger(|l| l.check_state(stx, id, now_ms()))
        .map_err(|e| Admission::Failed(ledger_err(e)))?
        .map_err(Admission::Rejected)?;
    // Formats only: the outcome is judged by the batcher against the
    // ledger state the batch will build on (ADR 0014).
    if let Some(cv) = content {
        cv.read()
            .map_err(|e| Admission::Failed(status::internal(e)))?
            .precheck(stx, id)
            .map_err(Admission::Rejected)?;
    }
    Ok(ContentOutcome::default())
}
