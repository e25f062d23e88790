//! [`ConsensusNode`]: the facade the node daemon uses to run Raft over the
//! ledger.

use crate::error::{ConsensusError, ProposeError};
use crate::log_store::RocksLogStore;
use crate::network::{handle_rpc, Network, RaftRpc, RaftRpcReply, Transport};
use crate::state_machine::{LedgerHandle, LedgerStateMachine};
use crate::types::{ApplyReport, Batch, NodeId, PeerNode, TypeConfig};
use ledger::chain::{BlockContext, ContentValidator};
use ledger::config::ChainConfig;
use ledger::{SignedTransaction, TxBatch};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{ChangeMembers, Raft, RaftMetrics};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Milliseconds since the Unix epoch. Injected so tests can pin time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// The block time a leader proposes: its own clock, but never later than
/// the median time its transactions claim. A leader whose clock runs ahead
/// therefore still proposes times its followers accept (they refuse entries
/// beyond their own clock plus a tolerance; [`crate::authz`]) and that keep
/// honestly timed submissions inside `TX_TIME_WINDOW`; a minority of
/// submitters claiming far-future times cannot move the median.
pub fn clamped_block_time(own_clock_ms: u64, txs: &TxBatch) -> u64 {
    let mut claimed: Vec<u64> = txs.txs().iter().map(|t| t.tx.claimed_time_ms).collect();
    if claimed.is_empty() {
        return own_clock_ms;
    }
    let mid = claimed.len() / 2;
    let (_, median, _) = claimed.select_nth_unstable(mid);
    own_clock_ms.min(*median)
}

/// Where and how one node runs.
#[derive(Clone)]
pub struct NodeConfig {
    /// Raft node id (stable for the node's lifetime).
    pub node_id: NodeId,
    /// Party this node runs for (recorded as block proposer).
    pub party: String,
    /// openraft settings (timeouts, snapshot policy, ...).
    pub raft: openraft::Config,
    /// Raft log database directory.
    pub log_dir: PathBuf,
    /// Ledger database directory (siblings `.snapshots`, `.incoming`,
    /// `.old` are used too).
    pub ledger_dir: PathBuf,
    /// Clock used for proposed block times.
    pub clock: Clock,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("node_id", &self.node_id)
            .field("party", &self.party)
            .field("raft", &self.raft)
            .field("log_dir", &self.log_dir)
            .field("ledger_dir", &self.ledger_dir)
            .finish_non_exhaustive()
    }
}

/// The chain's genesis.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// Genesis chain config.
    pub config: ChainConfig,
    /// Genesis block time.
    pub time_ms: u64,
}

/// A running Raft node over the ledger. Cloning is cheap.
#[derive(Clone)]
pub struct ConsensusNode {
    raft: Raft<TypeConfig>,
    node_id: NodeId,
    party: String,
    clock: Clock,
    ledger: LedgerHandle,
    /// The snapshot being received (chunk bounds; see [`crate::authz`]).
    incoming: Arc<std::sync::Mutex<crate::authz::SnapshotProgress>>,
    /// The vote of a leader whose entries this node refused for their
    /// block time: its further appends (heartbeats included) are refused
    /// too, so this node's election timer runs out and another leader is
    /// elected instead of the chain stalling behind it.
    clock_refused: Arc<std::sync::Mutex<Option<openraft::Vote<NodeId>>>>,
    /// The task that reruns split elections ([`crate::election`]).
    rerun: tokio::task::AbortHandle,
    /// Campaigns when a refused candidate shows the leader is gone
    /// ([`crate::election::Standby`]).
    standby: Arc<crate::election::Standby>,
}

impl std::fmt::Debug for ConsensusNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsensusNode")
            .field("node_id", &self.node_id)
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

fn propose_err(e: RaftError<NodeId, ClientWriteError<NodeId, PeerNode>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader {
            leader: f.leader_id.map(|id| (id, f.leader_node)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            ProposeError::Raft(c.to_string())
        }
        RaftError::Fatal(f) => ProposeError::Raft(f.to_string()),
    }
}

impl ConsensusNode {
    /// Open the log store and the ledger (initialising it with `genesis`
    /// if empty) and start Raft. A new cluster still needs
    /// [`ConsensusNode::initialize`] on one node; learners are added by the
    /// leader.
    pub async fn start<T: Transport>(
        config: NodeConfig,
        genesis: Genesis,
        content: Box<dyn ContentValidator + Send>,
        transport: Arc<T>,
    ) -> Result<Self, ConsensusError> {
        let raft_config = Arc::new(config.raft.clone().validate()?);
        let log_dir = config.log_dir.clone();
        let ledger_dir = config.ledger_dir.clone();
        let (log_store, sm) = tokio::task::spawn_blocking(move || {
            let log = RocksLogStore::open(&log_dir)?;
            let sm =
                LedgerStateMachine::open(&ledger_dir, genesis.config, genesis.time_ms, content)?;
            Ok::<_, ConsensusError>((log, sm))
        })
        .await
        .map_err(|e| ConsensusError::Raft(e.to_string()))??;
        let ledger = sm.handle();
        let membership: crate::network::MembershipView = Arc::default();
        let splits = Arc::new(crate::election::SplitVotes::default());
        let raft = Raft::new(
            config.node_id,
            raft_config.clone(),
            Network::new(transport, membership.clone(), splits.clone()),
            log_store,
            sm,
        )
        .await
        .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let _ = membership.set(raft.metrics());
        let rerun = crate::election::spawn_rerun(
            raft.clone(),
            splits,
            crate::election::rerun_window(&raft_config),
        )
        .abort_handle();
        Ok(ConsensusNode {
            raft,
            node_id: config.node_id,
            party: config.party,
            clock: config.clock,
            ledger,
            incoming: Arc::default(),
            clock_refused: Arc::default(),
            rerun,
            standby: Arc::new(crate::election::Standby::new(&raft_config)),
        })
    }

    /// Form a new cluster with these initial voters (call on one node,
    /// once). Harmless `NotAllowed` errors on an initialised node are
    /// reported as errors.
    pub async fn initialize(
        &self,
        voters: BTreeMap<NodeId, PeerNode>,
    ) -> Result<(), ConsensusError> {
        self.raft
            .initialize(voters)
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))
    }

    /// The openraft handle.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.node_id
    }

    /// Read access to the ledger.
    pub fn ledger(&self) -> &LedgerHandle {
        &self.ledger
    }

    /// Raft metrics (role, leader, applied index, membership, ...).
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, PeerNode>> {
        self.raft.metrics()
    }

    /// A batch with this node's time and party in its context.
    pub fn make_batch(&self, txs: Vec<SignedTransaction>) -> Result<Batch, ProposeError> {
        let txs = TxBatch::from_txs(txs)
            .map_err(|e| ProposeError::Raft(format!("unencodable transaction: {e}")))?;
        // Proposed and awaited one at a time: judged against the tip now.
        let tip = self.ledger.tip().map(|t| t.height).ok();
        Ok(self.make_batch_with(txs, Vec::new(), tip))
    }

    /// A batch carrying the leader's content outcomes, judged against the
    /// ledger at height `judged_at`.
    pub fn make_batch_with(
        &self,
        txs: TxBatch,
        outcomes: Vec<ledger::chain::ContentOutcome>,
        judged_at: Option<u64>,
    ) -> Batch {
        Batch {
            ctx: BlockContext {
                timestamp_ms: clamped_block_time((self.clock)(), &txs),
                raft_term: 0,
                raft_index: 0,
                proposer: self.party.clone(),
            },
            txs,
            outcomes: outcomes.into(),
            judged_at,
        }
    }

    /// Propose a batch (leader only) and wait until it is applied here.
    pub async fn propose(&self, txs: Vec<SignedTransaction>) -> Result<ApplyReport, ProposeError> {
        let batch = self.make_batch(txs)?;
        self.raft
            .client_write(batch)
            .await
            .map(|r| r.data)
            .map_err(propose_err)
    }

    /// Queue a batch for replication without waiting, preserving call
    /// order; the returned future resolves once it is applied.
    pub async fn propose_queued(
        &self,
        txs: TxBatch,
        outcomes: Vec<ledger::chain::ContentOutcome>,
        judged_at: Option<u64>,
    ) -> Result<
        impl Future<Output = Result<ApplyReport, ProposeError>> + Send + 'static,
        ProposeError,
    > {
        let batch = self.make_batch_with(txs, outcomes, judged_at);
        let rx = self
            .raft
            .client_write_ff(batch)
            .await
            .map_err(|e| ProposeError::Raft(e.to_string()))?;
        Ok(async move {
            match rx.await {
                Ok(Ok(ClientWriteResponse { data, .. })) => Ok(data),
                Ok(Err(e)) => Err(propose_err(RaftError::APIError(e))),
                Err(_) => Err(ProposeError::Stopped),
            }
        })
    }

    /// Add (or update) a non-voting member; with `blocking`, wait until it
    /// has caught up with the leader's log.
    pub async fn add_learner(
        &self,
        id: NodeId,
        node: PeerNode,
        blocking: bool,
    ) -> Result<(), ProposeError> {
        self.raft
            .add_learner(id, node, blocking)
            .await
            .map(|_| ())
            .map_err(propose_err)
    }

    /// Change the voter set through joint consensus. With `retain`, removed
    /// voters stay as learners.
    pub async fn change_membership(
        &self,
        voters: BTreeSet<NodeId>,
        retain: bool,
    ) -> Result<(), ProposeError> {
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), retain)
            .await
            .map(|_| ())
            .map_err(propose_err)
    }

    /// Remove non-voting members (voters must first leave the voter set).
    pub async fn remove_learners(&self, ids: BTreeSet<NodeId>) -> Result<(), ProposeError> {
        self.raft
            .change_membership(ChangeMembers::RemoveNodes(ids), false)
            .await
            .map(|_| ())
            .map_err(propose_err)
    }

    /// Answer an incoming Raft message (the caller has authorised it; see
    /// [`ConsensusNode::authorize`]).
    pub async fn handle_rpc(&self, rpc: RaftRpc) -> RaftRpcReply {
        let vote = match &rpc {
            RaftRpc::Vote(req) => Some(req.clone()),
            _ => None,
        };
        let reply = handle_rpc(&self.raft, rpc).await;
        match (&reply, vote) {
            (RaftRpcReply::Vote(Ok(resp)), Some(req)) => {
                self.standby.answered(&self.raft, &req, resp)
            }
            (RaftRpcReply::AppendEntries(Ok(resp)), _)
                if !matches!(resp, openraft::raft::AppendEntriesResponse::HigherVote(_)) =>
            {
                self.standby.heard_leader()
            }
            (RaftRpcReply::InstallSnapshot(Ok(_)), _) => self.standby.heard_leader(),
            _ => {}
        }
        reply
    }

    /// Whether `rpc` from `sender` may reach Raft, judged against this
    /// node's current membership, term and clock ([`crate::authz`]).
    pub fn authorize(
        &self,
        rpc: &RaftRpc,
        sender: &crate::authz::Sender,
        clock_tolerance_ms: u64,
    ) -> Result<(), crate::authz::Refusal> {
        let local = {
            let m = self.raft.metrics();
            let m = m.borrow();
            crate::authz::Local {
                voters: crate::network::joint_voters(&m).collect(),
                term: m.current_term,
                now_ms: (self.clock)(),
                clock_tolerance_ms,
            }
        };
        if let RaftRpc::AppendEntries(req) = rpc {
            let refused = self.clock_refused.lock().ok().and_then(|g| *g);
            if refused == Some(req.vote) {
                return Err(crate::authz::Refusal::LeaderClockAhead(
                    req.vote.leader_id().get_term(),
                ));
            }
        }
        if let Err(r) = crate::authz::authorize(rpc, sender, &local) {
            if let (crate::authz::Refusal::BlockTimeAhead { .. }, RaftRpc::AppendEntries(req)) =
                (&r, rpc)
            {
                if let Ok(mut g) = self.clock_refused.lock() {
                    *g = Some(req.vote);
                }
            }
            return Err(r);
        }
        if let RaftRpc::InstallSnapshot(req) = rpc {
            match self.incoming.lock() {
                Ok(mut p) => p.admit(req)?,
                Err(_) => {
                    return Err(crate::authz::Refusal::SnapshotChunk(
                        "snapshot progress lock poisoned".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Stop Raft (the ledger and log databases close when the last handle
    /// is dropped).
    pub async fn shutdown(&self) -> Result<(), ConsensusError> {
        self.rerun.abort();
        self.raft
            .shutdown()
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::event::EventKind;
    use ledger::testkit;

    fn batch(times: &[u64]) -> TxBatch {
        let txs = times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                testkit::event(
                    EventKind::ShipmentBooked,
                    &format!("S{i}"),
                    "exporter",
                    i as u64,
                    *t,
                )
            })
            .collect();
        TxBatch::from_txs(txs).unwrap()
    }

    #[test]
    fn block_time_is_the_clock_but_never_past_the_median_claim() {
        let t = testkit::T0;
        // Claims a little older than the clock: the median claim; claims
        // ahead of the clock: the clock.
        assert_eq!(
            clamped_block_time(t + 50, &batch(&[t, t + 10, t + 20])),
            t + 10
        );
        assert_eq!(clamped_block_time(t, &batch(&[t + 5, t + 10, t + 20])), t);
        // A clock an hour ahead proposes the median claim, not its time.
        let hour = 3_600_000;
        assert_eq!(
            clamped_block_time(t + hour, &batch(&[t, t + 1, t + 2])),
            t + 1
        );
        // A minority claiming the far future cannot pull it forward.
        assert_eq!(
            clamped_block_time(t + hour, &batch(&[t, t + 1, t + hour])),
            t + 1
        );
        assert_eq!(clamped_block_time(t, &batch(&[])), t);
    }
}
