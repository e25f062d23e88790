//! Blocks, per-transaction validation results, and checkpoints.
//!
//! The header commits to the transactions (`tx_root`) and to their
//! validation results (`results_root`) alike, so what the validators decided
//! is as tamper-evident as what was submitted. `block_hash = SHA-256(BLOCK
//! tag || canonical header)`. A checkpoint names a block and the root of the
//! ledger-wide Merkle tree over block hashes at that height.

use crate::codec::{self, CodecError};
use crate::event::Status;
use crate::hash::{tag, tagged_hash, Bytes, Hash32, Sig64};
use crate::merkle;
use crate::tx::SignedTransaction;
use serde::{Deserialize, Serialize};

pub mod equivocation;

/// Block header: everything the block hash covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Chain id.
    pub chain_id: String,
    /// Height; genesis is 0.
    pub height: u64,
    /// Hash of the previous block (zero for genesis).
    pub prev_hash: Hash32,
    /// RFC 9162 root over the transaction ids.
    pub tx_root: Hash32,
    /// RFC 9162 root over the encoded validation results.
    pub results_root: Hash32,
    /// Block time chosen by the proposer (ms since the Unix epoch), never
    /// earlier than the previous block's.
    pub timestamp_ms: u64,
    /// Raft term of the entry this block was built from.
    pub raft_term: u64,
    /// Raft log index of that entry.
    pub raft_index: u64,
    /// Party id of the proposing leader.
    pub proposer: String,
    /// Chain config sequence number in force.
    pub config_seq: u64,
    /// Digest of that chain config.
    pub config_hash: Hash32,
    /// Number of transactions.
    pub tx_count: u32,
}

/// Outcome of HS classification for one goods item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassificationOutcome {
    /// Goods item index.
    pub item: u32,
    /// Declared code.
    pub declared: String,
    /// `confirmed`, `plausible` or `mismatch`.
    pub verdict: String,
    /// Top suggestions (HS6, calibrated confidence in basis points 0..=10000).
    pub suggestions: Vec<(String, u32)>,
}

/// Outcome of risk scoring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskOutcome {
    /// 0..=100.
    pub score: u8,
    /// `low`, `review` or `inspect`.
    pub level: String,
    /// Reason codes with their points.
    pub reasons: Vec<(String, u8)>,
}

/// What the validators concluded about a committed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxResult {
    /// Transaction id.
    pub tx_id: Hash32,
    /// Shipment status after the transaction (none for governance).
    pub status: Option<Status>,
    /// What the customs validators concluded (declarations only), sealed
    /// by class so only the roles the policy grants can read it (see
    /// [`crate::outcome`]).
    pub outcome: Vec<crate::outcome::SealedOutcome>,
}

impl TxResult {
    /// Leaf data for the results tree.
    pub fn leaf_data(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = tag::RESULT.to_vec();
        out.extend(codec::encode(self)?);
        Ok(out)
    }
}

/// A block: header, transactions, and one result per transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Header.
    pub header: BlockHeader,
    /// Transactions in commit order.
    pub txs: Vec<SignedTransaction>,
    /// `results[i]` belongs to `txs[i]`.
    pub results: Vec<TxResult>,
}

impl BlockHeader {
    /// `SHA-256(BLOCK || canonical header)`.
    pub fn hash(&self) -> Result<Hash32, CodecError> {
        Ok(tagged_hash(tag::BLOCK, &[&codec::encode(self)?]))
    }
}

/// Roots a header must carry for these transactions and results.
pub fn body_roots(tx_ids: &[Hash32], results: &[TxResult]) -> Result<(Hash32, Hash32), CodecError> {
    let tx_leaves: Vec<merkle::Hash> = tx_ids.iter().map(|id| merkle::leaf_hash(&id.0)).collect();
    let mut res_leaves = Vec::with_capacity(results.len());
    for r in results {
        res_leaves.push(merkle::leaf_hash(&r.leaf_data()?));
    }
    Ok((
        Bytes(merkle::root(&tx_leaves)),
        Bytes(merkle::root(&res_leaves)),
    ))
}

impl Block {
    /// Block hash.
    pub fn hash(&self) -> Result<Hash32, CodecError> {
        self.header.hash()
    }

    /// Does the body match its header? The results name the transactions in
    /// order, and the transaction count and both roots are the header's. (A
    /// block whose header was committed or cosigned but whose body was edited
    /// afterwards does not.)
    pub fn body_matches_header(&self) -> bool {
        let ids: Vec<Hash32> = self.results.iter().map(|r| r.tx_id).collect();
        let tx_ids: Result<Vec<Hash32>, _> = self.txs.iter().map(|t| t.id()).collect();
        match (tx_ids, body_roots(&ids, &self.results)) {
            (Ok(tx_ids), Ok((tx_root, results_root))) => {
                tx_ids == ids
                    && tx_root == self.header.tx_root
                    && results_root == self.header.results_root
                    && self.txs.len() as u64 == u64::from(self.header.tx_count)
            }
            _ => false,
        }
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// Strict decode.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes)
    }

    /// The canonical bytes of a block with this `header`, the transactions
    /// whose canonical encodings are `txs`, and `results`, assembled from
    /// the transactions' bytes instead of encoding them again. A block is
    /// its three fields in order without framing, and a sequence is its
    /// length (u64) then its elements, so this is byte for byte
    /// [`Block::encode`] (tested against it).
    pub fn encode_from_parts<'a>(
        header: &BlockHeader,
        txs: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
        results: &[TxResult],
    ) -> Result<Vec<u8>, CodecError> {
        let head = codec::encode(header)?;
        let count = codec::encode(&(txs.len() as u64))?;
        let tail = codec::encode(results)?;
        let body: usize = txs.clone().map(<[u8]>::len).sum();
        let mut out = Vec::with_capacity(head.len() + count.len() + body + tail.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(&count);
        for t in txs {
            out.extend_from_slice(t);
        }
        out.extend_from_slice(&tail);
        Ok(out)
    }

    /// The header of an encoded block, without decoding its body (the
    /// header is encoded first). For callers that need only the hash or the
    /// header fields of a stored block: a block of a few hundred
    /// transactions takes thousands of allocations to decode whole.
    pub fn decode_header(bytes: &[u8]) -> Result<BlockHeader, CodecError> {
        codec::decode_prefix(bytes).map(|(h, _)| h)
    }
}

impl Block {
    /// Inclusion proof of transaction `index` in this block's `tx_root`.
    pub fn tx_proof(&self, index: u32) -> Result<Vec<merkle::Hash>, CodecError> {
        let mut leaves = Vec::with_capacity(self.txs.len());
        for r in &self.results {
            leaves.push(merkle::leaf_hash(&r.tx_id.0));
        }
        merkle::inclusion_proof(&leaves, u64::from(index))
            .map_err(|e| CodecError::Encode(e.to_string()))
    }
}

/// A statement about the ledger at one height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Chain id.
    pub chain_id: String,
    /// Height of the newest block covered.
    pub height: u64,
    /// Its hash.
    pub block_hash: Hash32,
    /// Leaves in the ledger-wide tree (= height + 1).
    pub tree_size: u64,
    /// Ledger-wide tree root over block hashes.
    pub tree_root: Hash32,
}

impl Checkpoint {
    /// Bytes a cosigner signs: `CHECKPOINT || canonical checkpoint`.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = tag::CHECKPOINT.to_vec();
        out.extend(codec::encode(self)?);
        Ok(out)
    }

    /// Digest of the checkpoint.
    pub fn digest(&self) -> Result<Hash32, CodecError> {
        Ok(tagged_hash(tag::CHECKPOINT, &[&codec::encode(self)?]))
    }
}

impl Checkpoint {
    /// Sign as `party`.
    pub fn cosign(
        &self,
        party: &str,
        key: &crate::crypto::Keypair,
    ) -> Result<Cosignature, CodecError> {
        Ok(Cosignature {
            party: party.to_string(),
            signature: key.sign(&self.signing_bytes()?),
        })
    }
}

/// One party's signature on a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cosignature {
    /// Party id.
    pub party: String,
    /// Signature over [`Checkpoint::signing_bytes`].
    pub signature: Sig64,
}

/// A checkpoint with the cosignatures gathered so far (sorted by party).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Cosignatures.
    pub cosignatures: Vec<Cosignature>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_header() -> BlockHeader {
        BlockHeader {
            chain_id: "test".into(),
            height: 7,
            prev_hash: Bytes([1; 32]),
            tx_root: Bytes([2; 32]),
            results_root: Bytes([3; 32]),
            timestamp_ms: 1_700_000_000_000,
            raft_term: 2,
            raft_index: 99,
            proposer: "de-customs".into(),
            config_seq: 0,
            config_hash: Bytes([4; 32]),
            tx_count: 3,
        }
    }

    /// Golden vectors pin the header and checkpoint encodings and digests.
    #[test]
    fn golden_header_and_checkpoint() {
        let h = sample_header();
        assert_eq!(
            hex::encode(codec::encode(&h).unwrap()),
            include_str!("../tests/golden/header.hex").trim()
        );
        assert_eq!(
            h.hash().unwrap().to_hex(),
            include_str!("../tests/golden/block_hash.hex").trim()
        );
        let c = Checkpoint {
            chain_id: "test".into(),
            height: 7,
            block_hash: h.hash().unwrap(),
            tree_size: 8,
            tree_root: Bytes([6; 32]),
        };
        assert_eq!(
            hex::encode(codec::encode(&c).unwrap()),
            include_str!("../tests/golden/checkpoint.hex").trim()
        );
        assert_eq!(
            c.digest().unwrap().to_hex(),
            include_str!("../tests/golden/checkpoint_digest.hex").trim()
        );
    }

    #[test]
    fn header_decodes_from_the_front_of_a_block() {
        let block = Block {
            header: sample_header(),
            txs: Vec::new(),
            results: Vec::new(),
        };
        let mut bytes = block.encode().unwrap();
        assert_eq!(Block::decode_header(&bytes).unwrap(), block.header);
        // Whatever follows the header is not read...
        bytes.extend_from_slice(b"body bytes not looked at");
        assert_eq!(Block::decode_header(&bytes).unwrap(), block.header);
        // ...but the header itself is decoded strictly.
        let header_len = codec::encode(&block.header).unwrap().len();
        assert!(Block::decode_header(&bytes[..header_len - 1]).is_err());
        let mut bad_utf8 = bytes.clone();
        bad_utf8[8] = 0xff; // first byte of chain_id, after its u64 length
        assert!(Block::decode_header(&bad_utf8).is_err());
    }

    #[test]
    fn header_changes_change_the_hash() {
        let h = sample_header();
        let mut g = h.clone();
        g.results_root.0[0] ^= 1;
        assert_ne!(h.hash().unwrap(), g.hash().unwrap());
    }
}
