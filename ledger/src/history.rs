//! The chain config as a light client knows it: followed from a config it
//! trusts (genesis) through every committed governance block up to a
//! checkpoint, each block proven in that checkpoint's tree and each change
//! approved by a majority of the validators of the config before it (see
//! [`crate::chain::follow_config`]). Cosignatures on a checkpoint are then
//! checked against the config in force at its height, and a transaction's
//! signature against the config it was admitted under, so proofs keep
//! verifying across key rotations, added parties and revocations.

use crate::block::{Block, BlockHeader, Checkpoint};
use crate::chain::{self, LedgerError};
use crate::config::ChainConfig;
use crate::hash::Hash32;
use crate::merkle;
use serde::{Deserialize, Serialize};

/// A block with its inclusion proof in a ledger tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenBlock {
    /// The block.
    pub block: Block,
    /// Audit path of its hash in the tree, leaf side first.
    pub proof: Vec<Hash32>,
}

/// What proves the config in force at a checkpoint's height, given a
/// trusted config: the header of the block at that height and the blocks
/// that changed the config, proven in the checkpoint's tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProof {
    /// Header of the block at the checkpoint's height.
    pub header: BlockHeader,
    /// Governance blocks, oldest first.
    pub blocks: Vec<ProvenBlock>,
}

/// The configs in force over a proven stretch of the chain.
#[derive(Clone, Debug)]
pub struct ConfigTimeline {
    genesis: ChainConfig,
    /// Each governance block with the config after it, by height.
    changes: Vec<(Block, ChainConfig)>,
    /// Height the timeline was proven to.
    height: u64,
}

impl ConfigTimeline {
    /// A timeline with no changes (a chain without governance, or a caller
    /// that trusts `config` as the one in force).
    pub fn trusting(config: ChainConfig) -> Self {
        ConfigTimeline {
            genesis: config,
            changes: Vec::new(),
            height: 0,
        }
    }

    /// Follow `genesis` through `proof` to the checkpoint `cp`: the header
    /// must be the block `cp` names, and the blocks must lead to the config
    /// that header names ([`chain::follow_config`]).
    pub fn verify(
        genesis: &ChainConfig,
        proof: &ConfigProof,
        cp: &Checkpoint,
    ) -> Result<Self, LedgerError> {
        if proof.header.height != cp.height || proof.header.hash()? != cp.block_hash {
            return Err(LedgerError::Mismatch(format!(
                "the header given for height {} is not the block the checkpoint names",
                cp.height
            )));
        }
        let mut timeline = ConfigTimeline::trusting(genesis.clone());
        timeline.extend(&proof.header, &cp.tree_root.0, &proof.blocks)?;
        Ok(timeline)
    }

    /// Continue the timeline to `header` (the block at a checkpoint's
    /// height, already checked against it) with `blocks` proven in the tree
    /// of root `root`, which hold the changes after the last one known.
    pub fn extend(
        &mut self,
        header: &BlockHeader,
        root: &merkle::Hash,
        blocks: &[ProvenBlock],
    ) -> Result<(), LedgerError> {
        let raw: Vec<(Block, Vec<merkle::Hash>)> = blocks
            .iter()
            .map(|b| (b.block.clone(), b.proof.iter().map(|h| h.0).collect()))
            .collect();
        let last_height = self.changes.last().map_or(0, |(b, _)| b.header.height);
        let configs = chain::follow_blocks(self.latest(), last_height, header.height, root, &raw)?;
        chain::check_followed(configs.last().unwrap_or(self.latest()), header)?;
        for ((block, _), cfg) in raw.into_iter().zip(configs) {
            self.changes.push((block, cfg));
        }
        self.height = self.height.max(header.height);
        Ok(())
    }

    /// Height the timeline is proven to.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The config in force after the last change known.
    pub fn latest(&self) -> &ChainConfig {
        self.changes.last().map_or(&self.genesis, |(_, c)| c)
    }

    /// The config in force after block `height` (at or below
    /// [`ConfigTimeline::height`]).
    pub fn after(&self, height: u64) -> &ChainConfig {
        let n = self
            .changes
            .partition_point(|(b, _)| b.header.height <= height);
        match n.checked_sub(1).and_then(|i| self.changes.get(i)) {
            Some((_, c)) => c,
            None => &self.genesis,
        }
    }

    /// The config transaction `index` of block `height` was admitted under:
    /// the one after the block before, with the governance transactions
    /// ahead of it in the same block applied.
    pub fn for_tx(&self, height: u64, index: u64) -> Result<ChainConfig, LedgerError> {
        let mut cfg = self.after(height.saturating_sub(1)).clone();
        if let Some((block, _)) = self.changes.iter().find(|(b, _)| b.header.height == height) {
            for stx in block.txs.iter().take(index as usize) {
                if let Some(g) = &stx.tx.governance {
                    cfg = chain::propose_governance(&cfg, g).map_err(|r| {
                        LedgerError::Mismatch(format!("block {height}: {}", r.message))
                    })?;
                }
            }
        }
        Ok(cfg)
    }

    /// The governance blocks known, with the config after each.
    pub fn changes(&self) -> &[(Block, ChainConfig)] {
        &self.changes
    }
}
