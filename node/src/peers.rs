//! Who is behind a peer id and a Raft node id, from the committed chain
//! config (ADR 0011).
//!
//! Two bindings, each from a source a hostile party cannot write:
//! - party ↔ peer id: the committed chain config (only governance signed by
//!   a majority of customs validators changes it);
//! - Raft node id → party: this node's own address book (its operator's
//!   configuration, `[[peers]]` plus itself).
//!
//! A Raft member's party is therefore node id → party (address book) →
//! peer id (chain config); the `party` label an `AddLearner` call stored in
//! the Raft membership is never believed. The directory is refreshed from
//! the ledger whenever the committed config changes; the p2p allowlist is
//! recomputed with it, so a revoked party's node is disconnected and a party
//! added by governance may connect without a restart.

use crate::p2p::PeerId;
use consensus::authz::Sender;
use consensus::NodeId;
use ledger::config::{ChainConfig, Role};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

/// What the directory knows at one committed config.
#[derive(Debug, Default)]
struct View {
    /// The config this view was built from.
    config: Option<Arc<ChainConfig>>,
    /// Unrevoked parties by peer id: (party id, customs validator?).
    by_peer: BTreeMap<PeerId, (String, bool)>,
    /// Peer id of each unrevoked party.
    peer_of_party: BTreeMap<String, PeerId>,
}

/// Peer id ↔ party ↔ node id, following the committed chain config.
#[derive(Debug)]
pub struct Directory {
    /// Raft node id → party, from this node's configuration.
    book: BTreeMap<NodeId, String>,
    view: RwLock<Arc<View>>,
}

/// A block time may be ahead of a receiver's clock by half the chain's
/// transaction time window: a leader that far ahead still leaves every
/// honestly timed submission inside `TX_TIME_WINDOW`.
pub fn clock_tolerance_ms(config: &ChainConfig) -> u64 {
    config.limits.time_window_ms / 2
}

impl Directory {
    /// A directory over `book` (node id → party), at `config`.
    pub fn new(book: BTreeMap<NodeId, String>, config: Arc<ChainConfig>) -> Self {
        let d = Directory {
            book,
            view: RwLock::new(Arc::new(View::default())),
        };
        d.refresh(config);
        d
    }

    fn view(&self) -> Arc<View> {
        match self.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Rebuild from `config` if it is not the one the directory holds.
    /// Returns the new allowlist (every unrevoked party's peer id) when it
    /// changed.
    pub fn refresh(&self, config: Arc<ChainConfig>) -> Option<BTreeSet<PeerId>> {
        let old = self.view();
        if old.config.as_ref().is_some_and(|c| Arc::ptr_eq(c, &config)) {
            return None;
        }
        let mut by_peer = BTreeMap::new();
        let mut peer_of_party = BTreeMap::new();
        for p in config.parties.iter().filter(|p| !p.revoked) {
            let Ok(pid) = p.peer_id.parse::<PeerId>() else {
                tracing::warn!(party = %p.id, "party has an unparseable peer id; it cannot connect");
                continue;
            };
            let validator = p.validator && p.has_role(Role::Customs);
            by_peer.insert(pid, (p.id.clone(), validator));
            peer_of_party.insert(p.id.clone(), pid);
        }
        let changed = old.by_peer.keys().ne(by_peer.keys());
        let view = View {
            config: Some(config),
            by_peer,
            peer_of_party,
        };
        match self.view.write() {
            Ok(mut v) => *v = Arc::new(view),
            Err(p) => *p.into_inner() = Arc::new(view),
        }
        changed.then(|| self.allowlist())
    }

    /// The peers this node talks to: every unrevoked party's peer id.
    pub fn allowlist(&self) -> BTreeSet<PeerId> {
        self.view().by_peer.keys().copied().collect()
    }

    /// What the committed config says about the sender `peer`.
    pub fn sender(&self, peer: &PeerId) -> Sender {
        let v = self.view();
        let Some((party, validator)) = v.by_peer.get(peer) else {
            return Sender::default();
        };
        Sender {
            party: Some(party.clone()),
            node_ids: self
                .book
                .iter()
                .filter(|(_, p)| *p == party)
                .map(|(id, _)| *id)
                .collect(),
            validator: *validator,
        }
    }

    /// The party running Raft node `id`, by this node's address book.
    pub fn party_of_node(&self, id: NodeId) -> Option<&str> {
        self.book.get(&id).map(String::as_str)
    }

    /// The peer id of Raft node `id`, if its party is registered and not
    /// revoked.
    pub fn peer_of_node(&self, id: NodeId) -> Option<PeerId> {
        let party = self.book.get(&id)?;
        self.view().peer_of_party.get(party).copied()
    }

    /// Whether node `id` runs for an unrevoked customs validator party.
    pub fn node_is_validator(&self, id: NodeId) -> bool {
        let Some(party) = self.book.get(&id) else {
            return false;
        };
        let v = self.view();
        v.peer_of_party
            .get(party)
            .and_then(|pid| v.by_peer.get(pid))
            .is_some_and(|(_, validator)| *validator)
    }

    /// How far ahead of this node's clock a proposed block time may be.
    pub fn clock_tolerance_ms(&self) -> u64 {
        self.view().config.as_deref().map_or(0, clock_tolerance_ms)
    }

    /// The party of an unrevoked peer.
    pub fn party_of_peer(&self, peer: &PeerId) -> Option<String> {
        self.view().by_peer.get(peer).map(|(p, _)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::testkit;

    #[test]
    fn bindings_follow_the_committed_config() {
        let mut config = testkit::config();
        let ids: Vec<String> = config.parties.iter().map(|p| p.id.clone()).collect();
        for (i, p) in config.parties.iter_mut().enumerate() {
            p.peer_id = crate::p2p::peer_id_string([i as u8 + 1; 32]);
        }
        let validator = config
            .parties
            .iter()
            .find(|p| p.validator && p.has_role(Role::Customs))
            .unwrap()
            .clone();
        let other = config
            .parties
            .iter()
            .find(|p| !p.validator)
            .unwrap()
            .clone();
        let book: BTreeMap<NodeId, String> = ids
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, p.clone()))
            .collect();
        let d = Directory::new(book.clone(), Arc::new(config.clone()));
        let vpeer: PeerId = validator.peer_id.parse().unwrap();
        let opeer: PeerId = other.peer_id.parse().unwrap();
        let s = d.sender(&vpeer);
        assert!(s.validator);
        assert_eq!(s.party.as_deref(), Some(validator.id.as_str()));
        let vnode = *book.iter().find(|(_, p)| **p == validator.id).unwrap().0;
        assert_eq!(s.node_ids, BTreeSet::from([vnode]));
        assert!(d.node_is_validator(vnode));
        assert_eq!(d.peer_of_node(vnode), Some(vpeer));
        assert!(!d.sender(&opeer).validator);
        let stranger = crate::p2p::peer_id_of([99; 32]);
        assert_eq!(d.sender(&stranger), Sender::default());
        // The same config again changes nothing; revoking a party drops its
        // peer from the allowlist and from every binding.
        assert_eq!(d.refresh(d.view().config.clone().unwrap()), None);
        for p in config.parties.iter_mut() {
            if p.id == other.id {
                p.revoked = true;
            }
        }
        let allow = d.refresh(Arc::new(config)).expect("allowlist changed");
        assert!(!allow.contains(&opeer));
        assert!(allow.contains(&vpeer));
        assert_eq!(d.sender(&opeer), Sender::default());
    }
}
