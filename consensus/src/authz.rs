//! Who may send which Raft message, and which replies a leader believes.
//!
//! openraft trusts its network: any `AppendEntries` with a higher vote makes
//! a node follow its sender, any reply claiming a higher vote makes a leader
//! step down. Between parties that do not trust each other that is not
//! enough, so every inbound message is checked here against the committed
//! chain config (resolved by the node crate into a [`Sender`]) and the
//! receiver's current Raft membership before openraft sees it, and the
//! leader's network client checks every reply with [`check_reply`]
//! (ADR 0011). The rules are pure functions, so they are tested without a
//! network.
//!
//! - `AppendEntries` and `InstallSnapshot`: only from an unrevoked customs
//!   validator party, whose node is a current voter and is the leader the
//!   message's vote names.
//! - `Vote`: only from an unrevoked customs validator party whose node is a
//!   current voter and is the candidate the vote names.
//! - Every vote's term may be at most [`MAX_TERM_STEP`] above the
//!   receiver's (openraft adds one to a term unchecked).
//! - Entries whose block time is ahead of the receiver's clock by more than
//!   the tolerance are refused (a leader with a fast clock would otherwise
//!   push every honest submission out of `TX_TIME_WINDOW`).

use crate::network::{RaftRpc, RaftRpcReply};
use crate::types::NodeId;
use openraft::raft::AppendEntriesResponse;
use openraft::{EntryPayload, Vote};
use std::collections::BTreeSet;

/// Largest term increase a message may carry over the receiver's term. A
/// node cut off from the others for days raises its term by about three per
/// second of elections; a message a million terms ahead is an attack (or a
/// node that must be repaired), never a reason to move the term.
pub const MAX_TERM_STEP: u64 = 1 << 20;

/// Replies this process's Raft network clients refused with
/// [`check_reply`] (a learner claiming a higher vote, an absurd term, a
/// match outside what was sent), for the node's metrics.
pub static REFUSED_REPLIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Largest snapshot a node accepts, in bytes: a chunk that would write
/// beyond it is refused before anything reaches the disk.
pub const MAX_SNAPSHOT_BYTES: u64 = 256 << 30;

/// Where the snapshot being received stands: its id and the next byte
/// expected. A chunk may restart the transfer (offset 0) or continue it,
/// never leave a hole (a sparse write far out) or exceed
/// [`MAX_SNAPSHOT_BYTES`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// Snapshot id and the next offset expected.
    pub current: Option<(String, u64)>,
}

impl SnapshotProgress {
    /// Check the chunk `req` and, if it is acceptable, record it.
    pub fn admit(
        &mut self,
        req: &openraft::raft::InstallSnapshotRequest<crate::types::TypeConfig>,
    ) -> Result<(), Refusal> {
        let end = req.offset.saturating_add(req.data.len() as u64);
        if end > MAX_SNAPSHOT_BYTES {
            return Err(Refusal::SnapshotChunk(format!(
                "chunk ends at byte {end}, beyond the {MAX_SNAPSHOT_BYTES}-byte limit"
            )));
        }
        let expected = match &self.current {
            Some((id, next)) if *id == req.meta.snapshot_id => *next,
            _ => 0,
        };
        if req.offset != 0 && req.offset > expected {
            return Err(Refusal::SnapshotChunk(format!(
                "chunk at offset {} leaves a hole after byte {expected} of snapshot {}",
                req.offset, req.meta.snapshot_id
            )));
        }
        self.current = if req.done {
            None
        } else {
            Some((
                req.meta.snapshot_id.clone(),
                end.max(if req.offset == 0 { 0 } else { expected }),
            ))
        };
        Ok(())
    }
}

/// What the committed chain config says about the peer that sent a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sender {
    /// The sender's party, when its peer id belongs to an unrevoked party.
    pub party: Option<String>,
    /// Raft node ids bound to that party (normally one).
    pub node_ids: BTreeSet<NodeId>,
    /// Whether the party is an unrevoked customs validator.
    pub validator: bool,
}

/// The receiver's view when a message arrives.
#[derive(Clone, Debug, Default)]
pub struct Local {
    /// Current voters (every configuration of a joint membership); empty
    /// on a node that has not joined a cluster yet.
    pub voters: BTreeSet<NodeId>,
    /// The receiver's current term.
    pub term: u64,
    /// The receiver's clock (ms since the Unix epoch).
    pub now_ms: u64,
    /// How far ahead of `now_ms` a proposed block time may be.
    pub clock_tolerance_ms: u64,
}

/// Why a message was refused. Codes are stable (metrics label them).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The sender's peer id belongs to no unrevoked party.
    #[error("PEER_UNKNOWN: the sending peer belongs to no unrevoked party")]
    UnknownPeer,
    /// The sender is not a customs validator in the committed config.
    #[error("PEER_NOT_VALIDATOR: party {0} is not a customs validator")]
    NotValidator(String),
    /// The node the message speaks for is not the sender's.
    #[error("PEER_IMPERSONATION: party {party} sent a message for node {claimed}")]
    Impersonation {
        /// Sender's party.
        party: String,
        /// Node id the message names.
        claimed: NodeId,
    },
    /// The node the message speaks for is not a current voter.
    #[error("PEER_NOT_VOTER: node {0} is not a current voter")]
    NotVoter(NodeId),
    /// The message's term is absurdly far ahead.
    #[error("TERM_JUMP: term {got} is more than {MAX_TERM_STEP} above {ours}")]
    TermJump {
        /// Term in the message.
        got: u64,
        /// Receiver's term.
        ours: u64,
    },
    /// This node refused the leader's entries for their block time in this
    /// term and ignores the leader until another is elected.
    #[error("LEADER_CLOCK_AHEAD: the leader of term {0} proposed block times too far ahead")]
    LeaderClockAhead(u64),
    /// A snapshot chunk out of bounds.
    #[error("SNAPSHOT_CHUNK: {0}")]
    SnapshotChunk(String),
    /// An entry's block time is too far in the receiver's future.
    #[error(
        "BLOCK_TIME_AHEAD: block time {time_ms} is more than {tolerance_ms} ms ahead of {now_ms}"
    )]
    BlockTimeAhead {
        /// Proposed block time.
        time_ms: u64,
        /// Receiver's clock.
        now_ms: u64,
        /// Tolerance.
        tolerance_ms: u64,
    },
}

impl Refusal {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownPeer => "PEER_UNKNOWN",
            Refusal::NotValidator(_) => "PEER_NOT_VALIDATOR",
            Refusal::Impersonation { .. } => "PEER_IMPERSONATION",
            Refusal::NotVoter(_) => "PEER_NOT_VOTER",
            Refusal::TermJump { .. } => "TERM_JUMP",
            Refusal::BlockTimeAhead { .. } => "BLOCK_TIME_AHEAD",
            Refusal::SnapshotChunk(_) => "SNAPSHOT_CHUNK",
            Refusal::LeaderClockAhead(_) => "LEADER_CLOCK_AHEAD",
        }
    }
}

fn term_ok(vote: &Vote<NodeId>, local: &Local) -> Result<(), Refusal> {
    let got = vote.leader_id().get_term();
    if got > local.term.saturating_add(MAX_TERM_STEP) {
        return Err(Refusal::TermJump {
            got,
            ours: local.term,
        });
    }
    Ok(())
}

/// The sender's party, if it may send Raft messages at all (an unrevoked
/// customs validator). Checked before a message is even decoded.
pub fn validator_party(sender: &Sender) -> Result<&str, Refusal> {
    let Some(party) = &sender.party else {
        return Err(Refusal::UnknownPeer);
    };
    if !sender.validator {
        return Err(Refusal::NotValidator(party.clone()));
    }
    Ok(party)
}

/// Checks that the sender speaks for `claimed`, a current voter.
fn speaks_for_voter(sender: &Sender, claimed: NodeId, local: &Local) -> Result<(), Refusal> {
    let party = validator_party(sender)?;
    if !sender.node_ids.contains(&claimed) {
        return Err(Refusal::Impersonation {
            party: party.to_string(),
            claimed,
        });
    }
    // A node that has not joined yet (no membership: a fresh voter before
    // the first election, a learner before its first append) cannot check
    // voter status; the validator binding above is what it can check.
    if !local.voters.is_empty() && !local.voters.contains(&claimed) {
        return Err(Refusal::NotVoter(claimed));
    }
    Ok(())
}

/// Whether `rpc` from `sender` may reach openraft.
pub fn authorize(rpc: &RaftRpc, sender: &Sender, local: &Local) -> Result<(), Refusal> {
    let vote = match rpc {
        RaftRpc::AppendEntries(r) => &r.vote,
        RaftRpc::Vote(r) => &r.vote,
        RaftRpc::InstallSnapshot(r) => &r.vote,
    };
    // Unknown or non-validator senders first: their message is never
    // interpreted further.
    let claimed = vote.leader_id().voted_for().unwrap_or(NodeId::MAX);
    speaks_for_voter(sender, claimed, local)?;
    term_ok(vote, local)?;
    if let RaftRpc::AppendEntries(r) = rpc {
        let limit = local.now_ms.saturating_add(local.clock_tolerance_ms);
        for e in &r.entries {
            if let EntryPayload::Normal(batch) = &e.payload {
                if batch.ctx.timestamp_ms > limit {
                    return Err(Refusal::BlockTimeAhead {
                        time_ms: batch.ctx.timestamp_ms,
                        now_ms: local.now_ms,
                        tolerance_ms: local.clock_tolerance_ms,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Why a leader or candidate did not believe a reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadReply {
    /// A non-voter claimed a higher vote (only voters can depose a leader).
    #[error("REPLY_VOTE_FROM_LEARNER: node {0} is not a voter but claims a higher vote")]
    VoteFromLearner(NodeId),
    /// A reply's term is absurdly far ahead.
    #[error(
        "REPLY_TERM_JUMP: node {node} claims term {got}, more than {MAX_TERM_STEP} above {ours}"
    )]
    TermJump {
        /// Replying node.
        node: NodeId,
        /// Term claimed.
        got: u64,
        /// Our term.
        ours: u64,
    },
    /// A partial success names a log position outside what was sent.
    #[error("REPLY_MATCH_OUT_OF_RANGE: node {0} claims a match outside the entries sent")]
    MatchOutOfRange(NodeId),
}

/// Checks a reply from `target` to `rpc`, which this node sent with its own
/// vote; `target_is_voter` is read from the current membership.
pub fn check_reply(
    rpc: &RaftRpc,
    reply: &RaftRpcReply,
    target: NodeId,
    target_is_voter: bool,
) -> Result<(), BadReply> {
    let ours = match rpc {
        RaftRpc::AppendEntries(r) => &r.vote,
        RaftRpc::Vote(r) => &r.vote,
        RaftRpc::InstallSnapshot(r) => &r.vote,
    };
    let higher = |v: &Vote<NodeId>| -> Result<(), BadReply> {
        // openraft steps down on `vote > ours` (a partial order).
        if v.partial_cmp(ours) != Some(std::cmp::Ordering::Greater) {
            return Ok(());
        }
        if !target_is_voter {
            return Err(BadReply::VoteFromLearner(target));
        }
        let (got, ours) = (v.leader_id().get_term(), ours.leader_id().get_term());
        if got > ours.saturating_add(MAX_TERM_STEP) {
            return Err(BadReply::TermJump {
                node: target,
                got,
                ours,
            });
        }
        Ok(())
    };
    match (rpc, reply) {
        (RaftRpc::AppendEntries(req), RaftRpcReply::AppendEntries(Ok(resp))) => match resp {
            AppendEntriesResponse::HigherVote(v) => higher(v),
            AppendEntriesResponse::PartialSuccess(m) => {
                let first = req.prev_log_id;
                let last = req.entries.last().map(|e| e.log_id).or(first);
                if *m < first || *m > last {
                    return Err(BadReply::MatchOutOfRange(target));
                }
                Ok(())
            }
            // A conflict only rewinds the replication stream to this one
            // target (openraft is built with `loosen-follower-log-revert`),
            // which is how a wiped or lagging learner is brought back; it
            // never changes what is committed (ADR 0011).
            AppendEntriesResponse::Success | AppendEntriesResponse::Conflict => Ok(()),
        },
        (RaftRpc::InstallSnapshot(_), RaftRpcReply::InstallSnapshot(Ok(resp))) => {
            higher(&resp.vote)
        }
        (RaftRpc::Vote(_), RaftRpcReply::Vote(Ok(resp))) => higher(&resp.vote),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Batch, TypeConfig};
    use ledger::chain::BlockContext;
    use openraft::raft::{
        AppendEntriesRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
    };
    use openraft::{CommittedLeaderId, Entry, LogId};

    fn validator(id: NodeId) -> Sender {
        Sender {
            party: Some(format!("customs-{id}")),
            node_ids: BTreeSet::from([id]),
            validator: true,
        }
    }

    fn local() -> Local {
        Local {
            voters: BTreeSet::from([1, 2, 3]),
            term: 5,
            now_ms: 1_000_000,
            clock_tolerance_ms: 60_000,
        }
    }

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn append(term: u64, leader: NodeId, times: &[u64]) -> RaftRpc {
        let entries = times
            .iter()
            .enumerate()
            .map(|(i, t)| Entry::<TypeConfig> {
                log_id: log_id(term, 10 + i as u64),
                payload: EntryPayload::Normal(Batch {
                    ctx: BlockContext {
                        timestamp_ms: *t,
                        raft_term: 0,
                        raft_index: 0,
                        proposer: "x".into(),
                    },
                    txs: ledger::TxBatch::from_txs(Vec::new()).unwrap(),
                    outcomes: Vec::new().into(),
                    judged_at: None,
                }),
            })
            .collect();
        RaftRpc::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(term, leader),
            prev_log_id: Some(log_id(term, 9)),
            entries,
            leader_commit: None,
        })
    }

    fn vote(term: u64, candidate: NodeId) -> RaftRpc {
        RaftRpc::Vote(VoteRequest {
            vote: Vote::new(term, candidate),
            last_log_id: None,
        })
    }

    #[test]
    fn validators_speaking_for_themselves_pass() {
        assert_eq!(
            authorize(&append(5, 1, &[1_000_000]), &validator(1), &local()),
            Ok(())
        );
        assert_eq!(authorize(&vote(6, 2), &validator(2), &local()), Ok(()));
    }

    #[test]
    fn non_validators_unknown_peers_and_impersonators_are_refused() {
        let carrier = Sender {
            party: Some("carrier".into()),
            node_ids: BTreeSet::from([4]),
            validator: false,
        };
        for rpc in [append(9, 4, &[]), append(9, 1, &[]), vote(9, 4), vote(9, 1)] {
            assert_eq!(
                authorize(&rpc, &carrier, &local()).unwrap_err().code(),
                "PEER_NOT_VALIDATOR"
            );
            assert_eq!(
                authorize(&rpc, &Sender::default(), &local())
                    .unwrap_err()
                    .code(),
                "PEER_UNKNOWN"
            );
        }
        // A validator may not speak for another validator's node.
        assert_eq!(
            authorize(&append(9, 1, &[]), &validator(2), &local())
                .unwrap_err()
                .code(),
            "PEER_IMPERSONATION"
        );
        // A validator party whose node is not (yet) a voter.
        assert_eq!(
            authorize(&vote(9, 7), &validator(7), &local())
                .unwrap_err()
                .code(),
            "PEER_NOT_VOTER"
        );
    }

    #[test]
    fn absurd_terms_are_refused() {
        assert_eq!(
            authorize(&vote(u64::MAX, 2), &validator(2), &local())
                .unwrap_err()
                .code(),
            "TERM_JUMP"
        );
        assert_eq!(
            authorize(
                &append(5 + MAX_TERM_STEP + 1, 1, &[]),
                &validator(1),
                &local()
            )
            .unwrap_err()
            .code(),
            "TERM_JUMP"
        );
        assert_eq!(
            authorize(&vote(5 + MAX_TERM_STEP, 2), &validator(2), &local()),
            Ok(())
        );
    }

    #[test]
    fn entries_from_the_future_are_refused() {
        let l = local();
        let edge = l.now_ms + l.clock_tolerance_ms;
        assert_eq!(authorize(&append(5, 1, &[edge]), &validator(1), &l), Ok(()));
        assert_eq!(
            authorize(&append(5, 1, &[edge - 5, edge + 1]), &validator(1), &l)
                .unwrap_err()
                .code(),
            "BLOCK_TIME_AHEAD"
        );
    }

    fn chunk(
        id: &str,
        offset: u64,
        len: usize,
        done: bool,
    ) -> openraft::raft::InstallSnapshotRequest<TypeConfig> {
        openraft::raft::InstallSnapshotRequest {
            vote: Vote::new_committed(5, 1),
            meta: openraft::SnapshotMeta {
                snapshot_id: id.into(),
                ..Default::default()
            },
            offset,
            data: vec![0; len],
            done,
        }
    }

    #[test]
    fn snapshot_chunks_leave_no_holes_and_stay_bounded() {
        let mut p = SnapshotProgress::default();
        assert_eq!(p.admit(&chunk("a", 0, 10, false)), Ok(()));
        assert_eq!(p.admit(&chunk("a", 10, 10, false)), Ok(()));
        // Resent chunk (a retry) and a restart are fine.
        assert_eq!(p.admit(&chunk("a", 10, 10, false)), Ok(()));
        assert_eq!(p.admit(&chunk("a", 20, 5, false)), Ok(()));
        assert_eq!(
            p.admit(&chunk("a", 40, 5, false)).unwrap_err().code(),
            "SNAPSHOT_CHUNK"
        );
        assert_eq!(
            p.admit(&chunk("b", 7, 5, false)).unwrap_err().code(),
            "SNAPSHOT_CHUNK"
        );
        assert_eq!(
            p.admit(&chunk("a", MAX_SNAPSHOT_BYTES - 2, 5, false))
                .unwrap_err()
                .code(),
            "SNAPSHOT_CHUNK"
        );
        assert_eq!(p.admit(&chunk("a", 25, 5, true)), Ok(()));
        assert_eq!(p.current, None);
        assert_eq!(p.admit(&chunk("c", 0, 5, true)), Ok(()));
    }

    #[test]
    fn learners_cannot_depose_and_matches_stay_in_range() {
        let req = append(5, 1, &[1, 2]);
        let higher =
            RaftRpcReply::AppendEntries(Ok(AppendEntriesResponse::HigherVote(Vote::new(6, 4))));
        assert_eq!(
            check_reply(&req, &higher, 4, false),
            Err(BadReply::VoteFromLearner(4))
        );
        assert_eq!(check_reply(&req, &higher, 2, true), Ok(()));
        let absurd = RaftRpcReply::AppendEntries(Ok(AppendEntriesResponse::HigherVote(Vote::new(
            u64::MAX,
            2,
        ))));
        assert!(matches!(
            check_reply(&req, &absurd, 2, true),
            Err(BadReply::TermJump { .. })
        ));
        let conflict = RaftRpcReply::AppendEntries(Ok(AppendEntriesResponse::Conflict));
        assert_eq!(check_reply(&req, &conflict, 4, false), Ok(()));
        let inside = RaftRpcReply::AppendEntries(Ok(AppendEntriesResponse::PartialSuccess(Some(
            log_id(5, 10),
        ))));
        assert_eq!(check_reply(&req, &inside, 4, false), Ok(()));
        let beyond = RaftRpcReply::AppendEntries(Ok(AppendEntriesResponse::PartialSuccess(Some(
            log_id(5, 99),
        ))));
        assert_eq!(
            check_reply(&req, &beyond, 4, false),
            Err(BadReply::MatchOutOfRange(4))
        );
        let snap = RaftRpc::InstallSnapshot(openraft::raft::InstallSnapshotRequest {
            vote: Vote::new_committed(5, 1),
            meta: Default::default(),
            offset: 0,
            data: Vec::new(),
            done: false,
        });
        let snap_reply = RaftRpcReply::InstallSnapshot(Ok(InstallSnapshotResponse {
            vote: Vote::new(7, 4),
        }));
        assert_eq!(
            check_reply(&snap, &snap_reply, 4, false),
            Err(BadReply::VoteFromLearner(4))
        );
        let v = vote(6, 1);
        let granted = RaftRpcReply::Vote(Ok(VoteResponse {
            vote: Vote::new(6, 1),
            vote_granted: true,
            last_log_id: None,
        }));
        assert_eq!(check_reply(&v, &granted, 2, true), Ok(()));
    }
}
