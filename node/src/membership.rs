//! Raft membership follows the chain config, which only governance
//! transactions signed by a majority of customs validators can change.
//!
//! The leader compares the committed config with the Raft membership and
//! takes one joint-consensus step at a time towards it:
//! - a node whose party is revoked or unknown is removed;
//! - a voter whose party is no longer a validator becomes a learner;
//! - a learner whose party is a (non-revoked) customs validator is promoted;
//! - a node from this node's address book whose party is registered and not
//!   revoked, but which is not a member yet, is added as a learner.
//!
//! Because the plan is recomputed from committed state on every tick, a step
//! lost to a leader change is simply taken again by the next leader. The plan
//! never empties the voter set and changes one voter at a time.

use consensus::{NodeId, PeerNode};
use ledger::config::{ChainConfig, Role};
use std::collections::{BTreeMap, BTreeSet};

/// The next membership change to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Remove a node (voter or learner) entirely.
    Remove(NodeId),
    /// Turn a voter into a learner.
    Demote(NodeId),
    /// Turn a learner into a voter.
    Promote(NodeId),
    /// Add a learner.
    AddLearner(NodeId, PeerNode),
}

impl Step {
    /// The voter set after this step, from `voters` (None: unchanged).
    pub fn voters_after(&self, voters: &BTreeSet<NodeId>) -> Option<BTreeSet<NodeId>> {
        let mut v = voters.clone();
        match self {
            Step::Remove(id) | Step::Demote(id) => {
                if !v.remove(id) {
                    return None;
                }
            }
            Step::Promote(id) => {
                v.insert(*id);
            }
            Step::AddLearner(..) => return None,
        }
        Some(v)
    }
}

/// What the config says a member's party may be.
enum Standing {
    /// Not registered, or revoked: must leave.
    Gone,
    /// Registered; `validator` says whether it votes.
    Member { validator: bool },
}

fn standing(config: &ChainConfig, party: &str) -> Standing {
    match config.party(party) {
        Some(p) if !p.revoked => Standing::Member {
            validator: p.validator && p.has_role(Role::Customs),
        },
        _ => Standing::Gone,
    }
}

/// The next step from the current membership (`voters` vote; `nodes` holds
/// every member with its address) towards what `config` says, given the
/// address book of nodes this node knows. `None` when they agree.
pub fn next_step(
    config: &ChainConfig,
    voters: &BTreeSet<NodeId>,
    nodes: &BTreeMap<NodeId, PeerNode>,
    address_book: &[(NodeId, PeerNode)],
) -> Option<Step> {
    // Removals, then demotions: never the last voter.
    for (id, node) in nodes {
        if let Standing::Gone = standing(config, &node.party) {
            if voters.contains(id) && voters.len() <= 1 {
                continue;
            }
            return Some(Step::Remove(*id));
        }
    }
    for id in voters {
        let party = nodes.get(id).map(|n| n.party.as_str()).unwrap_or_default();
        if let Standing::Member { validator: false } = standing(config, party) {
            if voters.len() > 1 {
                return Some(Step::Demote(*id));
            }
        }
    }
    for (id, node) in nodes {
        if voters.contains(id) {
            continue;
        }
        if let Standing::Member { validator: true } = standing(config, &node.party) {
            return Some(Step::Promote(*id));
        }
    }
    for (id, node) in address_book {
        if nodes.contains_key(id) {
            continue;
        }
        if let Standing::Member { .. } = standing(config, &node.party) {
            return Some(Step::AddLearner(*id, node.clone()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::testkit;

    fn node(party: &str) -> PeerNode {
        PeerNode::new(party.to_string(), format!("/ip4/127.0.0.1/tcp/1/{party}"))
    }

    fn members(list: &[(NodeId, &str)]) -> BTreeMap<NodeId, PeerNode> {
        list.iter().map(|(id, p)| (*id, node(p))).collect()
    }

    fn config() -> ChainConfig {
        testkit::config()
    }

    fn validators(cfg: &ChainConfig) -> Vec<String> {
        cfg.parties
            .iter()
            .filter(|p| p.validator)
            .map(|p| p.id.clone())
            .collect()
    }

    #[test]
    fn agreeing_membership_needs_no_step() {
        let cfg = config();
        let vals = validators(&cfg);
        assert!(vals.len() >= 2, "test config needs two validators");
        let nodes = members(&[(1, &vals[0]), (2, &vals[1]), (9, "carrier")]);
        let voters = BTreeSet::from([1, 2]);
        assert_eq!(next_step(&cfg, &voters, &nodes, &[]), None);
    }

    #[test]
    fn follows_governance_changes_one_step_at_a_time() {
        let mut cfg = config();
        let vals = validators(&cfg);
        let nodes = members(&[(1, &vals[0]), (2, &vals[1]), (9, "carrier")]);
        let voters = BTreeSet::from([1, 2]);
        // Validator flag dropped: demote.
        if let Some(p) = cfg.parties.iter_mut().find(|p| p.id == vals[1]) {
            p.validator = false;
        }
        assert_eq!(next_step(&cfg, &voters, &nodes, &[]), Some(Step::Demote(2)));
        // After the demotion nothing more to do.
        let voters1 = BTreeSet::from([1]);
        assert_eq!(next_step(&cfg, &voters1, &nodes, &[]), None);
        // Flag back: promote.
        if let Some(p) = cfg.parties.iter_mut().find(|p| p.id == vals[1]) {
            p.validator = true;
        }
        assert_eq!(
            next_step(&cfg, &voters1, &nodes, &[]),
            Some(Step::Promote(2))
        );
        // Revoked: remove, learners too.
        if let Some(p) = cfg.parties.iter_mut().find(|p| p.id == "carrier") {
            p.revoked = true;
        }
        assert_eq!(next_step(&cfg, &voters, &nodes, &[]), Some(Step::Remove(9)));
    }

    #[test]
    fn never_removes_the_last_voter_and_skips_unknown_parties() {
        let mut cfg = config();
        let vals = validators(&cfg);
        let nodes = members(&[(1, &vals[0])]);
        let voters = BTreeSet::from([1]);
        for p in cfg.parties.iter_mut() {
            p.validator = false;
        }
        assert_eq!(next_step(&cfg, &voters, &nodes, &[]), None);
        if let Some(p) = cfg.parties.iter_mut().find(|p| p.id == vals[0]) {
            p.revoked = true;
        }
        assert_eq!(next_step(&cfg, &voters, &nodes, &[]), None);
        // The address book names a party the config does not know: ignored;
        // a registered one is added.
        let cfg = config();
        let book = vec![(7, node("nobody")), (8, node("carrier"))];
        assert_eq!(
            next_step(&cfg, &voters, &nodes, &book),
            Some(Step::AddLearner(8, node("carrier")))
        );
        assert_eq!(
            Step::Promote(8).voters_after(&voters),
            Some(BTreeSet::from([1, 8]))
        );
        assert_eq!(Step::Demote(5).voters_after(&voters), None);
    }
}
