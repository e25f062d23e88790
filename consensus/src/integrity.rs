//! Store integrity at startup, and repair from peers.
//!
//! Before Raft runs, [`check_stores`] reads the whole Raft log (checksums,
//! strict decoding, contiguous indexes) and the whole ledger
//! ([`ledger::Ledger::verify_store`]: bodies against headers, hash links,
//! every ledger-tree node, the transaction index). A node whose store fails
//! refuses to start instead of serving or replicating wrong data.
//!
//! [`quarantine_for_repair`] is the operator's way back: it moves the Raft
//! log, the ledger and its snapshots aside (kept for inspection, never
//! deleted) and leaves a fresh log holding only the old vote, so the node
//! can never vote twice in one term. Started again, the node rejoins under
//! its own id with an empty log and the leader sends it a snapshot and the
//! entries after it (ADR 0004 says when that is safe for a voter).

use crate::log_store::{LogCheck, RocksLogStore};
use crate::ConsensusError;
use ledger::chain::StoreCheck;
use ledger::store::RocksStore;
use ledger::Ledger;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What [`check_stores`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoresCheck {
    /// The Raft log.
    pub log: LogCheck,
    /// The ledger (`None`: not created yet).
    pub ledger: Option<StoreCheck>,
}

/// Check the Raft log at `log_dir` and the ledger at `ledger_dir` fully.
/// `progress(height, tip)` follows the ledger walk. Missing stores (a node
/// that never ran) pass; anything unreadable, altered or inconsistent is an
/// error naming the record.
pub fn check_stores(
    log_dir: &Path,
    ledger_dir: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<StoresCheck, ConsensusError> {
    let log = if log_dir.exists() {
        RocksLogStore::open(log_dir)?
            .verify()
            .map_err(ConsensusError::LogStore)?
    } else {
        LogCheck {
            entries: 0,
            last: None,
            vote_term: None,
        }
    };
    let ledger = if ledger_dir.exists() {
        let store = RocksStore::open(ledger_dir)?;
        if ledger::store::Store::tip(&store)?.is_none() {
            None
        } else {
            Some(Ledger::open(store)?.verify_store(progress)?)
        }
    } else {
        None
    };
    Ok(StoresCheck { log, ledger })
}

/// Where [`quarantine_for_repair`] moved the old stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// Directory now holding the old `raft`, ledger and snapshot directories.
    pub dir: PathBuf,
    /// The vote carried over into the fresh log (`None`: none was stored, or
    /// the old log could not be read; see the caveat in ADR 0004).
    pub vote_kept: bool,
}

/// Move the stores aside into `<data_dir>/quarantine/<stamp>/` and create a
/// fresh Raft log holding only the old vote. `stamp` names the attempt
/// (e.g. the Unix time); an existing quarantine of that name is an error.
pub fn quarantine_for_repair(
    data_dir: &Path,
    log_dir: &Path,
    ledger_dir: &Path,
    stamp: &str,
) -> Result<Quarantined, ConsensusError> {
    let vote = match RocksLogStore::open(log_dir) {
        Ok(log) => log.stored_vote().ok().flatten(),
        Err(_) => None,
    };
    let dir = data_dir.join("quarantine").join(stamp);
    if dir.exists() {
        return Err(ConsensusError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists", dir.display()),
        )));
    }
    std::fs::create_dir_all(&dir)?;
    for src in [
        log_dir.to_path_buf(),
        ledger_dir.to_path_buf(),
        crate::state_machine::snapshot_dir_of(ledger_dir),
    ] {
        if src.exists() {
            let name = src
                .file_name()
                .map(|n| n.to_owned())
                .unwrap_or_else(|| OsString::from("store"));
            std::fs::rename(&src, dir.join(name))?;
        }
    }
    let fresh = RocksLogStore::open(log_dir)?;
    if let Some(v) = &vote {
        fresh.put_vote(v).map_err(ConsensusError::LogStore)?;
    }
    Ok(Quarantined {
        dir,
        vote_kept: vote.is_some(),
    })
}
