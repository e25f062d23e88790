//! Which chain config an answer is checked against. The caller trusts one
//! config (genesis); the chain moves on by governance (keys rotated,
//! parties added or revoked, validators changed), so a checkpoint's
//! cosignatures are checked against the config in force at its height and
//! a transaction's result against the config it was committed under. Both
//! are followed from the trusted config with proofs the node cannot forge
//! (`GetConfigHistory`, see `ledger::history`): every governance block is in
//! the checkpoint's tree and approved by a majority of the validators of
//! the config before it.

use crate::client::{status_error, Client};
use crate::proofs;
use anyhow::{anyhow, bail, Context, Result};
use ledger::block::{BlockHeader, Checkpoint};
use ledger::config::ChainConfig;
use ledger::hash::{Bytes, Hash32};
use ledger::history::{ConfigProof, ConfigTimeline, ProvenBlock};
use ledger::{codec, Block};
use std::collections::BTreeMap;

/// Most config changes followed in one go (a guard against a node that
/// pages forever).
const MAX_CHANGES: usize = 100_000;

/// The trusted config and the timelines proven from it, by checkpoint height.
pub struct Trust {
    genesis: ChainConfig,
    quorum: Option<u32>,
    timelines: BTreeMap<u64, ConfigTimeline>,
}

impl Trust {
    /// Trust `genesis`; require `quorum` cosignatures (default: the quorum
    /// of the config in force at each checkpoint).
    pub fn new(genesis: ChainConfig, quorum: Option<u32>) -> Self {
        Trust {
            genesis,
            quorum,
            timelines: BTreeMap::new(),
        }
    }

    /// The trusted config.
    pub fn genesis(&self) -> &ChainConfig {
        &self.genesis
    }

    /// The proof of the config in force at `cp`'s height, from the node.
    pub async fn proof(&self, c: &mut Client, cp: &Checkpoint) -> Result<ConfigProof> {
        let mut header: Option<BlockHeader> = None;
        let mut blocks = Vec::new();
        let mut after_seq = self.genesis.seq;
        loop {
            let page = c
                .inner
                .get_config_history(c.signed(
                    "/customs.v1.Ledger/GetConfigHistory",
                    proto::v1::GetConfigHistoryRequest {
                        height: cp.height,
                        after_seq,
                    },
                ))
                .await
                .map_err(status_error)?
                .into_inner();
            if header.is_none() {
                header = Some(
                    codec::decode(&page.header)
                        .context("config history: header does not decode")?,
                );
            }
            for b in &page.blocks {
                let block = Block::decode(&b.block)
                    .context("config history: a governance block does not decode")?;
                let proof = b
                    .block_proof
                    .iter()
                    .map(|h| {
                        <[u8; 32]>::try_from(h.as_slice())
                            .map(Bytes)
                            .map_err(|_| anyhow!("config history: proof hash is not 32 bytes"))
                    })
                    .collect::<Result<Vec<Hash32>>>()?;
                after_seq = block.header.config_seq;
                blocks.push(ProvenBlock { block, proof });
            }
            if !page.more {
                break;
            }
            if page.blocks.is_empty() || blocks.len() > MAX_CHANGES {
                bail!("config history: the node pages without end");
            }
        }
        let header = header.ok_or_else(|| anyhow!("config history: no header"))?;
        Ok(ConfigProof { header, blocks })
    }

    /// The configs in force up to `cp`'s height, proven (cached per height).
    pub async fn timeline(&mut self, c: &mut Client, cp: &Checkpoint) -> Result<&ConfigTimeline> {
        if !self.timelines.contains_key(&cp.height) {
            let proof = self.proof(c, cp).await?;
            let t = ConfigTimeline::verify(&self.genesis, &proof, cp).map_err(|e| {
                anyhow!(
                    "the chain config at height {} cannot be followed from the trusted one: {e}",
                    cp.height
                )
            })?;
            self.timelines.insert(cp.height, t);
        }
        self.timelines
            .get(&cp.height)
            .ok_or_else(|| anyhow!("timeline vanished"))
    }

    /// Verify a transaction proof: the checkpoint against the config in
    /// force at its height. Returns the proven transaction and the config
    /// it was committed under (whose outcome key opens its result).
    pub async fn transaction(
        &mut self,
        c: &mut Client,
        p: &proto::v1::TransactionProof,
    ) -> Result<(proofs::ProvenTx, ChainConfig)> {
        let cp = p
            .checkpoint
            .as_ref()
            .ok_or_else(|| anyhow!("answer carries no checkpoint"))?;
        let cc = proofs::decode_checkpoint(cp, &self.genesis)?;
        let quorum = self.quorum;
        let timeline = self.timeline(c, &cc.checkpoint).await?;
        let at = timeline.latest();
        let t = proofs::transaction(p, at, quorum.unwrap_or(at.checkpoint_quorum))?;
        let committed = timeline
            .for_tx(t.header.height, u64::from(t.index))
            .map_err(|e| anyhow!("{e}"))?;
        Ok((t, committed))
    }

    /// The newest cosigned checkpoint of the node, checked against the
    /// config in force at its height, and that config: what a submitter
    /// seals for (the recipients' current keys).
    pub async fn current(&mut self, c: &mut Client) -> Result<(Checkpoint, ChainConfig)> {
        let cp = c.newest_checkpoint().await?;
        let cc = proofs::decode_checkpoint(&cp, &self.genesis)?;
        let quorum = self.quorum;
        let at = self.timeline(c, &cc.checkpoint).await?.latest().clone();
        proofs::signers(&cc, &at, quorum.unwrap_or(at.checkpoint_quorum))?;
        Ok((cc.checkpoint, at))
    }
}

/// The config in force after block `height` of a served chain (encoded
/// blocks from genesis), followed from `genesis` through its governance
/// blocks, each checked as a light client checks it; the blocks' place in
/// the cosigned tree is the caller's to check.
pub fn config_from_chain(
    genesis: &ChainConfig,
    chain: &[Vec<u8>],
    height: u64,
) -> Result<ChainConfig> {
    let mut cfg = genesis.clone();
    for bytes in chain.iter().take(
        usize::try_from(height)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
    ) {
        let block = Block::decode(bytes).context("served block does not decode")?;
        if block.txs.iter().any(|t| t.tx.governance.is_some()) {
            cfg = ledger::chain::follow_governance(&cfg, &block).map_err(|e| anyhow!("{e}"))?;
        }
    }
    Ok(cfg)
}
