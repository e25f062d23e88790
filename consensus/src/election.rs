//! Fresh randomness for repeated elections.
//!
//! openraft 0.9 orders the votes of one term by node id, so of two
//! candidates of the same term the one with the higher id refuses the other's
//! request; if its own log is the shorter one, its request is refused too,
//! and nobody wins the term. openraft then waits for its election timer, but
//! it draws each node's election timeout once, when the node starts, and
//! fires elections only on its tick (1.5 heartbeats): two voters whose
//! timeouts round to the same number of ticks and whose ticks line up start
//! their campaigns together round after round until the ticks drift apart
//! (ADR 0006, session 20: three such rounds, 3.19 s without a leader). Raft's
//! liveness argument needs a fresh random timeout per round.
//!
//! [`spawn_rerun`] supplies it without touching the first election: when a
//! voter has refused this node's vote request because it campaigns in the
//! same term with a shorter log than ours (a split vote,
//! seen by [`SplitVotes`] in the network client), this node waits a delay drawn
//! anew for that term and then starts the next term itself, which the other
//! candidate of the older term grants.
//!
//! [`Standby`] covers the other slow start seen in the fault runs: the first
//! candidate after a leader loss has a shorter log than a voter that still
//! follows the silent leader (it had just restarted, say). That voter refuses
//! it, and openraft backs the refused candidate off; the voter then waits for
//! its own timer (leader lease plus election timeout, about a second) before
//! it campaigns. A voter that refuses a candidate of a later term for a
//! shorter log, after the leader has been silent for a whole lease, instead
//! campaigns itself after a short random delay, unless the refused candidate
//! has won with the other voters meanwhile.
//!
//! Every other losing campaign is left to openraft's own timer: a candidate
//! that heard no answer (cut off: rerunning would only inflate its term), one
//! refused for a longer log (openraft backs it off so the better candidate
//! wins; rerunning would outpace that candidate for ever), or one refused
//! under a live leader's lease. Nothing here is committed or hashed: the
//! timing of elections is outside the deterministic apply path.

use crate::types::{NodeId, TypeConfig};
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{Raft, ServerState};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Whether `resp` refuses `req` because the voter campaigns in the same term
/// with a shorter log than the requester's: the voter cannot win that term
/// (the requester refuses it for its log), and the requester cannot either
/// (openraft ranks the voter's vote of the term above its own, or the voter
/// already holds another vote of the term).
pub fn is_split_vote(req: &VoteRequest<NodeId>, resp: &VoteResponse<NodeId>) -> bool {
    !resp.vote_granted
        && !resp.vote.is_committed()
        && resp.vote.leader_id().get_term() == req.vote.leader_id().get_term()
        && resp.vote != req.vote
        && resp.last_log_id < req.last_log_id
}

/// Split votes this node's campaigns ran into: the latest term in which one
/// did, and a wake-up for the rerun task.
#[derive(Debug, Default)]
pub struct SplitVotes {
    term: AtomicU64,
    seen: Notify,
}

impl SplitVotes {
    /// Record the answer to one of this node's vote requests.
    pub fn observe(&self, req: &VoteRequest<NodeId>, resp: &VoteResponse<NodeId>) {
        if is_split_vote(req, resp) {
            self.term
                .fetch_max(req.vote.leader_id().get_term(), Ordering::Relaxed);
            self.seen.notify_one();
        }
    }

    /// Whether a campaign of `term` ran into a split vote.
    fn split_in(&self, term: u64) -> bool {
        self.term.load(Ordering::Relaxed) >= term
    }
}

/// The window a losing candidate draws its next campaign's delay from:
/// from one heartbeat (time for the votes of the live voters to come back)
/// to the smallest election timeout (so it normally fires before openraft's
/// own timer, whose timeout stays the same every round).
pub fn rerun_window(config: &openraft::Config) -> Range<u64> {
    let lo = config.heartbeat_interval.max(1);
    let hi = config.election_timeout_min.max(lo + 1);
    lo..hi
}

/// Whether `resp` refuses `req` because the requester's log is shorter than
/// this voter's while the voter still follows a leader of an older term: the
/// requester has given up on that leader, and this voter would win a term the
/// requester cannot.
pub fn outranks_candidate(req: &VoteRequest<NodeId>, resp: &VoteResponse<NodeId>) -> bool {
    !resp.vote_granted
        && resp.vote.is_committed()
        && req.vote.leader_id().get_term() > resp.vote.leader_id().get_term()
        && resp.last_log_id > req.last_log_id
}

/// The window the standby draws its delay from (milliseconds): at least a
/// heartbeat, time enough for the refused candidate to win with the other
/// voters' votes if it can (its first append then reaches this node and
/// changes its vote), and at most two.
pub fn standby_window(config: &openraft::Config) -> Range<u64> {
    let lo = config.heartbeat_interval.max(1);
    lo..2 * lo
}

/// A voter's answer to candidates that cannot win: see the module docs.
#[derive(Debug)]
pub struct Standby {
    born: Instant,
    /// Milliseconds after `born` at which a leader's message was last
    /// accepted.
    heard_ms: AtomicU64,
    /// openraft's leader lease (the largest election timeout): a vote
    /// request refused within it may have been refused for the lease.
    lease: Duration,
    /// The delay before campaigning is drawn from this range (milliseconds).
    window: Range<u64>,
    /// The latest candidate term this node has answered with a campaign.
    answered: AtomicU64,
}

impl Standby {
    /// A standby for a node with these openraft settings; the leader counts
    /// as heard at start.
    pub fn new(config: &openraft::Config) -> Self {
        Standby {
            born: Instant::now(),
            heard_ms: AtomicU64::new(0),
            lease: Duration::from_millis(config.election_timeout_max),
            window: standby_window(config),
            answered: AtomicU64::new(0),
        }
    }

    /// A leader's message (entries, heartbeat or snapshot chunk) was accepted.
    pub fn heard_leader(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.heard_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Whether no leader has been heard for a whole lease.
    fn leader_silent(&self) -> bool {
        let heard = self.born + Duration::from_millis(self.heard_ms.load(Ordering::Relaxed));
        heard.elapsed() > self.lease
    }

    /// This node answered `req` with `resp`: if it refused a candidate it
    /// outranks (see [`outranks_candidate`]) after the leader fell silent,
    /// campaign after a short random delay, unless by then the node's vote
    /// has changed (it voted, or a leader appeared) or a leader was heard.
    pub fn answered(
        self: &Arc<Self>,
        raft: &Raft<TypeConfig>,
        req: &VoteRequest<NodeId>,
        resp: &VoteResponse<NodeId>,
    ) {
        if !outranks_candidate(req, resp) || !self.leader_silent() {
            return;
        }
        let term = req.vote.leader_id().get_term();
        if self.answered.fetch_max(term, Ordering::Relaxed) >= term {
            return;
        }
        let (this, raft, seen) = (self.clone(), raft.clone(), resp.vote);
        let delay = Duration::from_millis(rand::random_range(self.window.clone()));
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let still = {
                let m = raft.metrics();
                let m = m.borrow();
                m.state == ServerState::Follower
                    && m.vote == seen
                    && crate::network::joint_voters(&m).any(|v| v == m.id)
            };
            if still && this.leader_silent() {
                tracing::info!(
                    candidate_term = term,
                    delay_ms = delay.as_millis() as u64,
                    "refused a candidate with a shorter log after the leader fell silent: campaigning"
                );
                let _ = raft.trigger().elect().await;
            }
        });
    }
}

/// The term of this node's open campaign: it holds an uncommitted vote of
/// that term and knows no leader (a candidate, or a follower that took up
/// the higher-ranked vote of a candidate it refused).
fn campaign(m: &openraft::RaftMetrics<NodeId, crate::types::PeerNode>) -> Option<u64> {
    let open = matches!(m.state, ServerState::Candidate | ServerState::Follower)
        && m.current_leader.is_none()
        && !m.vote.is_committed();
    open.then_some(m.vote.leader_id().get_term())
}

/// The campaign term to watch, if any: never one this task already started
/// a new term from. The metrics show the vote once it is stored, so after a
/// rerun they still show the old term until the new vote is on disk; on a
/// slow disk, rerunning again from the old term would start term after term
/// (seen in a debug-build fault run: 24 reruns from one stored term, the
/// in-memory term running from 12 to 36).
fn open_after(campaign: Option<u64>, rerun_from: u64) -> Option<u64> {
    campaign.filter(|&t| t > rerun_from)
}

/// Watch `raft` and start a new term whenever its campaign of a term that ran
/// into a split vote has stayed open (see [`campaign`]) for a delay drawn from
/// `window` (milliseconds) afresh for each term. Ends when the Raft node
/// shuts down.
pub fn spawn_rerun(
    raft: Raft<TypeConfig>,
    splits: Arc<SplitVotes>,
    window: Range<u64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut rx = raft.metrics();
        // The campaign term this task last started a new term from.
        let mut rerun_from = 0;
        loop {
            let term = open_after(campaign(&rx.borrow_and_update()), rerun_from);
            let Some(term) = term else {
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let delay = Duration::from_millis(rand::random_range(window.clone()));
            let deadline = tokio::time::Instant::now() + delay;
            loop {
                let due = tokio::time::Instant::now() >= deadline;
                if due && splits.split_in(term) {
                    tracing::info!(
                        term,
                        delay_ms = delay.as_millis() as u64,
                        "split vote: starting the next term"
                    );
                    rerun_from = term;
                    if raft.trigger().elect().await.is_err() {
                        return;
                    }
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline), if !due => {}
                    _ = splits.seen.notified() => {}
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if campaign(&rx.borrow_and_update()) != Some(term) {
                            break;
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    fn log(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    #[test]
    fn split_votes_are_same_term_refusals_by_a_shorter_log() {
        let req = VoteRequest::new(Vote::new(5, 2), log(4, 100));
        let split =
            |vote, last, granted| is_split_vote(&req, &VoteResponse::new(vote, last, granted));
        // The voter campaigns in term 5 too, with a shorter log.
        assert!(split(Vote::new(5, 3), log(4, 90), false));
        assert!(split(Vote::new(5, 3), log(3, 120), false));
        assert!(split(Vote::new(5, 1), None, false));
        // The same log: the voter wins the term with the requester's vote.
        assert!(!split(Vote::new(5, 3), log(4, 100), false));
        // Granted: no split.
        assert!(!split(Vote::new(5, 2), log(4, 100), true));
        // Refused for a longer log: openraft's back-off decides, not a rerun.
        assert!(!split(Vote::new(5, 3), log(4, 101), false));
        assert!(!split(Vote::new(5, 3), log(5, 1), false));
        // Refused under a leader's lease, or by a voter already in a later term.
        assert!(!split(Vote::new_committed(4, 1), log(4, 100), false));
        assert!(!split(Vote::new_committed(5, 3), log(4, 100), false));
        assert!(!split(Vote::new(6, 3), log(4, 100), false));
    }

    #[test]
    fn a_voter_outranks_later_candidates_with_shorter_logs_only() {
        let req = VoteRequest::new(Vote::new(6, 2), log(4, 90));
        let outranks =
            |vote, last, granted| outranks_candidate(&req, &VoteResponse::new(vote, last, granted));
        // Following the leader of term 5, with a longer log.
        assert!(outranks(Vote::new_committed(5, 1), log(4, 100), false));
        assert!(outranks(Vote::new_committed(5, 1), log(5, 1), false));
        // The same or a shorter log: the candidate may win.
        assert!(!outranks(Vote::new_committed(5, 1), log(4, 90), false));
        assert!(!outranks(Vote::new_committed(5, 1), log(4, 80), false));
        // Granted.
        assert!(!outranks(Vote::new(6, 2), log(4, 100), true));
        // Already campaigning or voting in a term (a split, not this case).
        assert!(!outranks(Vote::new(6, 3), log(4, 100), false));
        assert!(!outranks(Vote::new(5, 3), log(4, 100), false));
        // Following a leader of the candidate's term or a later one.
        assert!(!outranks(Vote::new_committed(6, 1), log(4, 100), false));
        assert!(!outranks(Vote::new_committed(7, 1), log(4, 100), false));
    }

    #[test]
    fn the_leader_is_silent_only_after_a_whole_lease() {
        let cfg = openraft::Config {
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 500,
            ..Default::default()
        };
        let standby = Standby::new(&cfg);
        assert!(!standby.leader_silent(), "heard at start");
        std::thread::sleep(Duration::from_millis(600));
        assert!(standby.leader_silent());
        standby.heard_leader();
        assert!(!standby.leader_silent());
    }

    #[test]
    fn only_split_votes_are_recorded() {
        let splits = SplitVotes::default();
        let req = VoteRequest::new(Vote::new(7, 2), log(6, 10));
        splits.observe(&req, &VoteResponse::new(Vote::new(7, 3), log(6, 11), false));
        assert!(!splits.split_in(7));
        splits.observe(&req, &VoteResponse::new(Vote::new(7, 3), log(6, 9), false));
        assert!(splits.split_in(7));
        assert!(!splits.split_in(8));
        // An older term's answer arriving late does not lower the record.
        let old = VoteRequest::new(Vote::new(6, 2), log(6, 10));
        splits.observe(&old, &VoteResponse::new(Vote::new(6, 1), log(6, 9), false));
        assert!(splits.split_in(7));
    }

    #[test]
    fn a_stored_term_is_rerun_from_once() {
        assert_eq!(open_after(Some(12), 0), Some(12));
        assert_eq!(
            open_after(Some(12), 12),
            None,
            "the new vote is not stored yet"
        );
        assert_eq!(open_after(Some(13), 12), Some(13));
        assert_eq!(open_after(None, 0), None);
    }

    #[test]
    fn window_spans_heartbeat_to_smallest_timeout() {
        let cfg = openraft::Config {
            heartbeat_interval: 150,
            election_timeout_min: 350,
            election_timeout_max: 600,
            ..Default::default()
        };
        assert_eq!(rerun_window(&cfg), 150..350);
        assert_eq!(standby_window(&cfg), 150..300);
        let odd = openraft::Config {
            heartbeat_interval: 0,
            election_timeout_min: 0,
            ..Default::default()
        };
        let w = rerun_window(&odd);
        assert!(!w.is_empty(), "{w:?}");
    }
}
