//! Checks a node's answers without trusting the node: transaction →
//! block (`tx_root`), block → ledger tree (checkpoint root), checkpoint →
//! cosignatures of a quorum of parties in the trusted chain config; and a
//! served chain against cosigned checkpoints, so a rewritten history is
//! caught at the block where it departs from what the parties signed.

use anyhow::{anyhow, bail, Context, Result};
use ledger::block::equivocation;
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

/// Convert and check a checkpoint from the API: its signed bytes decode,
/// agree with the display fields and name the trusted chain. Cosignatures
/// are converted, not checked (see [`checkpoint`]).
pub fn decode_checkpoint(
    cp: &proto::v1::CosignedCheckpoint,
    trusted: &ChainConfig,
) -> Result<CosignedCheckpoint> {
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
    Ok(CosignedCheckpoint {
        checkpoint: c,
        cosignatures: cos,
    })
}

/// Convert and check a checkpoint from the API: every cosignature verifies
/// against the checkpoint body (the parties whose do not are named) and at
/// least `quorum` parties signed it. Returns the signers.
pub fn checkpoint(
    cp: &proto::v1::CosignedCheckpoint,
    trusted: &ChainConfig,
    quorum: u32,
) -> Result<(CosignedCheckpoint, Vec<String>)> {
    let cc = decode_checkpoint(cp, trusted)?;
    let signers = signers(&cc, trusted, quorum)?;
    Ok((cc, signers))
}

/// The parties that signed `cc`; an error naming every cosignature that
/// does not verify against the checkpoint, or when fewer than `quorum`
/// parties signed.
pub fn signers(cc: &CosignedCheckpoint, trusted: &ChainConfig, quorum: u32) -> Result<Vec<String>> {
    let (valid, bad) = equivocation::check_cosignatures(cc, trusted);
    if !bad.is_empty() {
        bail!(
            "checkpoint at height {} carries cosignatures that do not verify against it, attributed to: {} (those parties did not sign this checkpoint)",
            cc.checkpoint.height,
            bad.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    if (valid.len() as u64) < u64::from(quorum) {
        bail!(
            "checkpoint at height {} has {} valid cosignatures ({}), {quorum} required",
            cc.checkpoint.height,
            valid.len(),
            valid.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(valid.into_iter().collect())
}

/// Leaves of the ledger-wide tree for a served chain: the hash of each
/// block's header. Fails with the height of the first block that does not
/// decode.
pub fn block_leaves(chain: &[Vec<u8>]) -> std::result::Result<Vec<merkle::Hash>, (u64, String)> {
    let mut out = Vec::with_capacity(chain.len());
    for (h, bytes) in chain.iter().enumerate() {
        let h = h as u64;
        let block = ledger::Block::decode(bytes).map_err(|e| (h, format!("undecodable: {e}")))?;
        if block.header.height != h {
            return Err((h, format!("header says height {}", block.header.height)));
        }
        let hash = block.hash().map_err(|e| (h, e.to_string()))?;
        out.push(merkle::leaf_hash(&hash.0));
    }
    Ok(out)
}

/// Is `cp` a statement about the chain whose leaves are `leaves`: the block
/// at its height is the one it names and the tree of its size has its root?
/// `Err` says how they differ.
pub fn served_matches(leaves: &[merkle::Hash], cp: &Checkpoint) -> std::result::Result<(), String> {
    if !equivocation::well_formed(cp) {
        return Err(format!(
            "the checkpoint at height {} claims tree size {}",
            cp.height, cp.tree_size
        ));
    }
    let size = usize::try_from(cp.tree_size).unwrap_or(usize::MAX);
    let Some(prefix) = leaves.get(..size) else {
        return Err(format!(
            "the chain served ends at height {}, below the checkpoint at height {}",
            leaves.len().saturating_sub(1),
            cp.height
        ));
    };
    if prefix.last() != Some(&merkle::leaf_hash(&cp.block_hash.0)) {
        return Err(format!(
            "the served block {} is not block {} named by the checkpoint",
            cp.height, cp.block_hash
        ));
    }
    let root = merkle::root(prefix);
    if root != cp.tree_root.0 {
        return Err(format!(
            "the served chain's tree root at height {} is {}, the checkpoint's is {}",
            cp.height,
            Bytes(root),
            cp.tree_root
        ));
    }
    Ok(())
}

/// A checkpoint and where the auditor got it.
#[derive(Clone, Debug)]
pub struct Sourced {
    /// A node address or a file name.
    pub source: String,
    /// The checkpoint.
    pub cp: CosignedCheckpoint,
}

/// One finding of [`compare`]: which checkpoints, and the conflicts.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Indexes into the compared list (equal for a single checkpoint's bad
    /// cosignatures).
    pub between: (usize, usize),
    /// Named parties and why.
    pub conflicts: Vec<equivocation::Conflict>,
}

/// Compare checkpoints gathered from several sources: every cosignature
/// that does not verify, and every party that signed two that cannot both
/// be true. `proof(i, j)` gives a consistency proof between checkpoints `i`
/// and `j` of different heights, when one is at hand.
pub fn compare(
    cps: &[Sourced],
    trusted: &ChainConfig,
    mut proof: impl FnMut(usize, usize) -> Option<Vec<merkle::Hash>>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in cps.iter().enumerate() {
        let (_, bad) = equivocation::check_cosignatures(&s.cp, trusted);
        if !bad.is_empty() {
            out.push(Finding {
                between: (i, i),
                conflicts: bad
                    .into_iter()
                    .map(|party| equivocation::Conflict {
                        party,
                        fault: equivocation::Fault::BadSignature {
                            height: s.cp.checkpoint.height,
                        },
                    })
                    .collect(),
            });
        }
    }
    for i in 0..cps.len() {
        for j in i + 1..cps.len() {
            let (a, b) = (&cps[i].cp, &cps[j].cp);
            if a.checkpoint == b.checkpoint {
                continue;
            }
            let p = if a.checkpoint.height == b.checkpoint.height {
                None
            } else {
                proof(i, j)
            };
            let conflicts: Vec<_> = equivocation::conflicting_signers(a, b, trusted, p.as_deref())
                .into_iter()
                .filter(|c| matches!(c.fault, equivocation::Fault::Equivocation { .. }))
                .collect();
            if !conflicts.is_empty() {
                out.push(Finding {
                    between: (i, j),
                    conflicts,
                });
            }
        }
    }
    out
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
