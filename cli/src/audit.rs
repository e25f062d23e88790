//! The auditor's checks of cosigned checkpoints against served chains and
//! against each other, with the parties whose signatures conflict named:
//! where a served chain departs from what was cosigned (`locate_fork`),
//! whether it extends the trusted checkpoint kept on disk (`trusted`), and
//! checkpoints gathered from several nodes and files (`check_checkpoints`).
//! The decisions are the pure functions of `proofs` and
//! `ledger::block::equivocation`; this module fetches.

use crate::client::{status_error, Client};
use crate::proofs::{self, Sourced};
use crate::Conn;
use anyhow::{anyhow, bail, Context, Result};
use ledger::block::equivocation;
use ledger::config::ChainConfig;
use ledger::merkle;
use ledger::CosignedCheckpoint;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The node's stored checkpoint at `height` (any number of cosignatures),
/// `None` when it has none or it does not decode.
async fn checkpoint_at(
    c: &mut Client,
    cfg: &ChainConfig,
    height: u64,
) -> Result<Option<CosignedCheckpoint>> {
    let r = c
        .inner
        .get_checkpoint(c.signed(
            "/customs.v1.Ledger/GetCheckpoint",
            proto::v1::GetCheckpointRequest { height },
        ))
        .await;
    match r {
        Ok(cp) => Ok(proofs::decode_checkpoint(&cp.into_inner(), cfg).ok()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(status_error(s)),
    }
}

fn names(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "nobody".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Probes per search step for a height with a stored checkpoint.
const PROBES: u64 = 16;

/// The served chain (`leaves`) does not match `newest`, a checkpoint the
/// node serves with its cosignatures: find where it departs from what the
/// parties signed, by bisection over the node's stored checkpoints (a
/// checkpoint the served chain matches shows every block up to it is the
/// cosigned one). Returns the error to report: the block height (or the
/// narrowest range found) and the parties whose signatures conflict with
/// the served history.
pub(crate) async fn locate_fork(
    c: &mut Client,
    cfg: &ChainConfig,
    leaves: &[merkle::Hash],
    newest: &CosignedCheckpoint,
) -> anyhow::Error {
    let (mut lo, mut hi) = (0u64, newest.checkpoint.height);
    let mut at_hi = newest.clone();
    'search: while hi > lo + 1 {
        let mid = lo + (hi - lo) / 2;
        // The nearest stored checkpoint with at least one valid signature.
        let mut probes = Vec::new();
        for d in 0..PROBES {
            for h in [mid.saturating_add(d), mid.saturating_sub(d)] {
                if h > lo && h < hi && !probes.contains(&h) {
                    probes.push(h);
                }
            }
        }
        for h in probes {
            let Ok(Some(cp)) = checkpoint_at(c, cfg, h).await else {
                continue;
            };
            if cp.checkpoint.height != h || equivocation::check_cosignatures(&cp, cfg).0.is_empty()
            {
                continue;
            }
            if proofs::served_matches(leaves, &cp.checkpoint).is_ok() {
                lo = h;
            } else {
                hi = h;
                at_hi = cp;
            }
            continue 'search;
        }
        break;
    }
    let (signers, bad) = equivocation::check_cosignatures(&at_hi, cfg);
    let place = if hi == lo + 1 {
        format!("at block {hi}")
    } else {
        format!("between blocks {} and {hi}", lo + 1)
    };
    let why = proofs::served_matches(leaves, &at_hi.checkpoint)
        .err()
        .unwrap_or_default();
    let mut msg = format!(
        "HISTORY CONFLICT {place}: the chain this node serves departs from the checkpoint at height {hi} (block {}, root {}) cosigned by {}; those parties' signatures conflict with the history served ({why})",
        at_hi.checkpoint.block_hash,
        at_hi.checkpoint.tree_root,
        names(&signers)
    );
    if !bad.is_empty() {
        msg += &format!(
            "; cosignatures on it that do not verify, attributed to: {}",
            names(&bad)
        );
    }
    anyhow!(msg)
}

/// The served chain (`leaves`, already matched against `newest`) must
/// extend the trusted checkpoint in `path`. Checked locally: the served
/// tree at the trusted size must have the trusted root, and a consistency
/// proof computed from the served leaves must verify. On failure the
/// parties that signed both the trusted checkpoint and one of the node's
/// (at the trusted height, or its newest) are named.
pub(crate) async fn trusted(
    c: &mut Client,
    cfg: &ChainConfig,
    path: &Path,
    leaves: &[merkle::Hash],
    newest: &CosignedCheckpoint,
) -> Result<()> {
    let new = &newest.checkpoint;
    if !path.exists() {
        println!(
            "no trusted checkpoint yet; trusting height {} from now on",
            new.height
        );
        return Ok(());
    }
    let old: CosignedCheckpoint = serde_json::from_str(&std::fs::read_to_string(path)?)
        .with_context(|| format!("{} is not a checkpoint", path.display()))?;
    let o = &old.checkpoint;
    if o.chain_id != cfg.chain_id {
        bail!(
            "trusted checkpoint is for chain {:?}, not {:?}",
            o.chain_id,
            cfg.chain_id
        );
    }
    if o.tree_size > new.tree_size {
        bail!(
            "node's checkpoint (size {}) is older than the trusted one (size {})",
            new.tree_size,
            o.tree_size
        );
    }
    let proof = usize::try_from(new.tree_size)
        .ok()
        .and_then(|n| leaves.get(..n))
        .and_then(|big| merkle::consistency_proof(big, o.tree_size).ok());
    let verdict = match (&proof, proofs::served_matches(leaves, o)) {
        (Some(p), Ok(())) => merkle::verify_consistency(
            o.tree_size,
            new.tree_size,
            p,
            &o.tree_root.0,
            &new.tree_root.0,
        )
        .map_err(|e| e.to_string()),
        (None, Ok(())) => Err("no consistency proof from the served chain".into()),
        (_, Err(e)) => Err(e),
    };
    let Err(why) = verdict else {
        println!(
            "consistent with trusted checkpoint at height {} (size {} -> {})",
            o.height, o.tree_size, new.tree_size
        );
        return Ok(());
    };
    // Who signed statements that cannot both be true: the trusted
    // checkpoint against the node's at the same height and its newest.
    let mut conflicts = Vec::new();
    if let Ok(Some(same)) = checkpoint_at(c, cfg, o.height).await {
        conflicts.extend(equivocation::conflicting_signers(&old, &same, cfg, None));
    }
    conflicts.extend(equivocation::conflicting_signers(
        &old,
        newest,
        cfg,
        proof.as_deref(),
    ));
    let mut lines: Vec<String> = conflicts.iter().map(|c| c.to_string()).collect();
    lines.sort();
    lines.dedup();
    let named = equivocation::parties(&conflicts);
    let tail = if named.is_empty() {
        format!(
            "no party signed both (trusted checkpoint signed by {}, the node's by {})",
            names(&equivocation::check_cosignatures(&old, cfg).0),
            names(&equivocation::check_cosignatures(newest, cfg).0)
        )
    } else {
        format!(
            "parties whose signatures conflict: {}; {}",
            named.join(", "),
            lines.join("; ")
        )
    };
    bail!(
        "HISTORY REWRITTEN: the ledger is not consistent with the trusted checkpoint at height {} (block {}, root {}): {why}; {tail}",
        o.height,
        o.block_hash,
        o.tree_root
    )
}

/// `customsctl check-checkpoints`: gather checkpoints from files and nodes
/// (each node's newest, and its own at every height any other source
/// names, plus `heights`), then compare them all.
pub(crate) async fn check_checkpoints(
    nodes: &[String],
    party: &str,
    keys: &Path,
    genesis: &Path,
    files: &[PathBuf],
    heights: &[u64],
    ca: Option<&Path>,
) -> Result<()> {
    let cfg = crate::load_genesis(genesis)?;
    let mut cps: Vec<Sourced> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read checkpoint file {}", f.display()))?;
        let cp: CosignedCheckpoint = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cosigned checkpoint", f.display()))?;
        cps.push(Sourced {
            source: f.display().to_string(),
            cp,
        });
    }
    let mut clients = Vec::new();
    for url in nodes {
        let conn = Conn {
            node: url.clone(),
            party: party.to_string(),
            keys: keys.to_path_buf(),
            genesis: genesis.to_path_buf(),
            quorum: None,
            node_party: None,
            ca: ca.map(Path::to_path_buf),
        };
        let mut c = conn.client().await?;
        match c
            .inner
            .get_checkpoint(c.signed(
                "/customs.v1.Ledger/GetCheckpoint",
                proto::v1::GetCheckpointRequest { height: 0 },
            ))
            .await
        {
            Ok(r) => cps.push(Sourced {
                source: url.clone(),
                cp: proofs::decode_checkpoint(&r.into_inner(), &cfg)
                    .with_context(|| format!("newest checkpoint of {url}"))?,
            }),
            Err(s) => eprintln!("{url}: no newest checkpoint: {}", s.message()),
        }
        clients.push((url.clone(), c));
    }
    let mut wanted: BTreeSet<u64> = heights.iter().copied().collect();
    wanted.extend(cps.iter().map(|s| s.cp.checkpoint.height));
    for (url, c) in clients.iter_mut() {
        for h in &wanted {
            if cps
                .iter()
                .any(|s| s.source == *url && s.cp.checkpoint.height == *h)
            {
                continue;
            }
            if let Some(cp) = checkpoint_at(c, &cfg, *h).await? {
                cps.push(Sourced {
                    source: url.clone(),
                    cp,
                });
            }
        }
    }
    if cps.is_empty() {
        bail!("no checkpoints to compare: give --node and/or --checkpoint");
    }
    cps.sort_by_key(|s| s.cp.checkpoint.height);
    for s in &cps {
        let (valid, bad) = equivocation::check_cosignatures(&s.cp, &cfg);
        println!(
            "height {:>6} block {} root {} from {}: signed by {}{}",
            s.cp.checkpoint.height,
            s.cp.checkpoint.block_hash,
            s.cp.checkpoint.tree_root,
            s.source,
            names(&valid),
            if bad.is_empty() {
                String::new()
            } else {
                format!(" (NOT VERIFYING: {})", names(&bad))
            }
        );
    }
    // Consistency proofs between heights, from a node whose own checkpoint
    // is the larger one (its proof is about that very tree).
    let mut proofs_at = std::collections::BTreeMap::new();
    for i in 0..cps.len() {
        for j in i + 1..cps.len() {
            let (a, b) = (&cps[i].cp.checkpoint, &cps[j].cp.checkpoint);
            if a.height == b.height || a.chain_id != b.chain_id {
                continue;
            }
            let (small, big) = if a.tree_size < b.tree_size {
                (a, b)
            } else {
                (b, a)
            };
            let holder = cps
                .iter()
                .find(|s| &s.cp.checkpoint == big && nodes.contains(&s.source))
                .map(|s| s.source.clone());
            let Some(holder) = holder else { continue };
            let Some((_, c)) = clients.iter_mut().find(|(u, _)| *u == holder) else {
                continue;
            };
            let r = c
                .inner
                .get_consistency_proof(c.signed(
                    "/customs.v1.Ledger/GetConsistencyProof",
                    proto::v1::GetConsistencyProofRequest {
                        old_size: small.tree_size,
                        new_size: big.tree_size,
                    },
                ))
                .await;
            if let Ok(p) = r {
                let p: Option<Vec<merkle::Hash>> = p
                    .into_inner()
                    .proof
                    .iter()
                    .map(|h| h.as_slice().try_into().ok())
                    .collect();
                if let Some(p) = p {
                    proofs_at.insert((i, j), (p, holder));
                }
            }
        }
    }
    let findings = proofs::compare(&cps, &cfg, |i, j| {
        proofs_at.get(&(i, j)).map(|(p, _)| p.clone())
    });
    if findings.is_empty() {
        println!(
            "checkpoints consistent: {} checkpoints from {} sources, no conflicting signatures",
            cps.len(),
            cps.iter()
                .map(|s| s.source.as_str())
                .collect::<BTreeSet<_>>()
                .len()
        );
        return Ok(());
    }
    // One line per conflict, with every pair of sources that shows it.
    let mut parties = BTreeSet::new();
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for f in &findings {
        let (i, j) = f.between;
        for c in &f.conflicts {
            parties.insert(c.party.clone());
            let whence = if i == j {
                cps[i].source.clone()
            } else {
                let via = proofs_at
                    .get(&(i, j))
                    .map(|(_, n)| format!(" per the consistency proof of {n}"))
                    .unwrap_or_default();
                format!("{} vs {}{via}", cps[i].source, cps[j].source)
            };
            seen.entry(c.to_string()).or_default().push(whence);
        }
    }
    for (conflict, whence) in &seen {
        eprintln!("CONFLICT: {conflict} [{}]", whence.join("; "));
    }
    bail!(
        "conflicting checkpoints: parties whose signatures conflict: {}",
        parties.into_iter().collect::<Vec<_>>().join(", ")
    )
}
