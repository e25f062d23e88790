//! Checks a node's answers without trusting the node: transaction →
//! block (`tx_root`), block → ledger tree (checkpoint root), checkpoint →
//! cosignatures of a quorum of parties in the trusted chain config.

use anyhow::{anyhow, bail, Context, Result};
use ledger::block::{BlockHeader, Checkpoint, Cosignature, CosignedCheckpoint, TxResult};
use ledger::config::ChainConfig;
use ledger::hash::{Bytes, Hash32};
use ledger::{codec, merkle, SignedTransaction};

/// A transaction proven to be in the ledger.
#[derive(Debug)]
pub struct ProvenTx {
    /// The transaction.
    pub stx: SignedTransaction,
    /// Its id.
    pub tx_id: Hash32,
    /// Its block header.
    pub header: BlockHeader,
    /// Index in the block.
    pub index: u32,
    /// The checkpoint it was proven against.
    pub checkpoint: CosignedCheckpoint,
    /// Cosigners of that checkpoint.
    pub cosigners: Vec<String>,
    /// Inclusion proof in the block.
    pub tx_proof: Vec<merkle::Hash>,
    /// Inclusion proof of the block in the checkpoint tree.
    pub block_proof: Vec<merkle::Hash>,
}

fn hash32(b: &[u8], what: &str) -> Result<merkle::Hash> {
    b.try_into()
        .map_err(|_| anyhow!("{what}: expected 32 bytes, got {}", b.len()))
}

/// Convert and check a checkpoint from the API.
pub fn checkpoint(
    cp: &proto::v1::CosignedCheckpoint,
    trusted: &ChainConfig,
    quorum: u32,
) -> Result<(CosignedCheckpoint, Vec<String>)> {
    let c: Checkpoint = codec::decode(&cp.checkpoint).context("checkpoint bytes do not decode")?;
    if c.height != cp.height
        || c.tree_size != cp.tree_size
        || c.tree_root.0.as_slice() != cp.tree_root.as_slice()
        || c.block_hash.0.as_slice() != cp.block_hash.as_slice()
    {
        bail!("checkpoint display fields disagree with its signed bytes");
    }
    if c.chain_id != trusted.chain_id {
        bail!(
            "checkpoint is for chain {:?}, not {:?}",
            c.chain_id,
            trusted.chain_id
        );
    }
    let mut cos = Vec::new();
    for s in &cp.cosignatures {
        let sig: [u8; 64] = s
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| anyhow!("cosignature of {} is not 64 bytes", s.party))?;
        cos.push(Cosignature {
            party: s.party.clone(),
            signature: Bytes(sig),
        });
    }
    let cc = CosignedCheckpoint {
        checkpoint: c,
        cosignatures: cos,
    };
    let signers = ledger::disclosure::verify_cosignatures(trusted, &cc, quorum)
        .map_err(|e| anyhow!("{e}"))?;
    Ok((cc, signers))
}

/// Verify a `TransactionProof` end to end.
pub fn transaction(
    p: &proto::v1::TransactionProof,
    trusted: &ChainConfig,
    quorum: u32,
) -> Result<ProvenTx> {
    let stx = SignedTransaction::decode(&p.signed_tx, codec::MAX_RECORD_BYTES)
        .context("transaction bytes do not decode")?;
    let tx_id = stx.id()?;
    let header: BlockHeader =
        codec::decode(&p.block_header).context("block header does not decode")?;
    if header.height != p.height {
        bail!(
            "block header height {} differs from {}",
            header.height,
            p.height
        );
    }
    let tx_proof = p
        .tx_proof
        .iter()
        .map(|h| hash32(h, "tx proof"))
        .collect::<Result<Vec<_>>>()?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&tx_id.0),
        u64::from(p.index),
        u64::from(header.tx_count),
        &tx_proof,
        &header.tx_root.0,
    )
    .map_err(|e| anyhow!("transaction {tx_id} is not in block {}: {e}", header.height))?;
    let cp = p
        .checkpoint
        .as_ref()
        .ok_or_else(|| anyhow!("answer carries no checkpoint"))?;
    let (checkpoint, cosigners) = checkpoint(cp, trusted, quorum)?;
    let block_proof = p
        .block_proof
        .iter()
        .map(|h| hash32(h, "block proof"))
        .collect::<Result<Vec<_>>>()?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&header.hash()?.0),
        header.height,
        checkpoint.checkpoint.tree_size,
        &block_proof,
        &checkpoint.checkpoint.tree_root.0,
    )
    .map_err(|e| anyhow!("block {} is not under the checkpoint: {e}", header.height))?;
    if let Some(r) = p.result.as_ref().filter(|r| !r.encoded.is_empty()) {
        let r: TxResult = codec::decode(&r.encoded).context("result does not decode")?;
        if r.tx_id != tx_id {
            bail!("result belongs to another transaction");
        }
    }
    Ok(ProvenTx {
        stx,
        tx_id,
        header,
        index: p.index,
        checkpoint,
        cosigners,
        tx_proof,
        block_proof,
    })
}
