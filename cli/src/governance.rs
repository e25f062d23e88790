//! `customsctl governance`: changing the chain config the way the chain
//! allows it, by a majority of the customs validators. A validator
//! proposes a change (`propose` writes a proposal file holding the signed
//! governance transaction), other validators add their approvals
//! (`approve`), and once a majority has approved anyone submits it
//! (`submit`); `show` lists committed changes with who approved them, and
//! pending proposal files with what they still lack. Every step follows the
//! config in force from the trusted one with proofs, verifies what is
//! already signed before signing, and prints the change to the config the
//! proposal produces.
//!
//! A proposal carries its proposer's clock: like every transaction it must
//! commit within the chain's time window of it (`limits.time_window_ms`,
//! ten minutes by default), so approvals are gathered within that window.

use crate::client::{now_ms, status_error, Client};
use crate::{spec, Conn};
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use ledger::chain;
use ledger::config::{ChainConfig, DisclosureRule, EventRule, Party};
use ledger::crypto::{self, Keypair};
use ledger::disclosure::{self, DecryptionKey, Draft};
use ledger::event::EventKind;
use ledger::hash::{Bytes, Hash32};
use ledger::outcome::OutcomeKey;
use ledger::tx::{signing_message, Governance};
use ledger::SignedTransaction;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Format tag of proposal files.
const FORMAT: &str = "customs-governance-proposal/1";

#[derive(Subcommand, Debug)]
pub(crate) enum GovCmd {
    /// Propose a change as a validator: writes a proposal file signed by
    /// you and prints the config change it makes.
    Propose {
        #[command(flatten)]
        conn: Conn,
        /// Proposal file to write.
        #[arg(long)]
        out: PathBuf,
        #[command(subcommand)]
        action: Action,
    },
    /// Verify a proposal file, show its change, and add your approval.
    Approve {
        #[command(flatten)]
        conn: Conn,
        /// Proposal file (rewritten with the approval).
        file: PathBuf,
    },
    /// Submit a proposal a majority of validators approved; waits for it to
    /// commit.
    Submit {
        #[command(flatten)]
        conn: Conn,
        /// Proposal file.
        file: PathBuf,
    },
    /// Committed changes with who approved them, and the state of pending
    /// proposal files.
    Show {
        #[command(flatten)]
        conn: Conn,
        /// Pending proposal files to report on.
        files: Vec<PathBuf>,
    },
}

/// A change to the chain config.
#[derive(Subcommand, Debug, Clone)]
pub(crate) enum Action {
    /// Register a new party (its public record as JSON: id, name, roles,
    /// eori, signing_key, encryption_key, peer_id, validator).
    AddParty {
        /// Party record (JSON).
        #[arg(long)]
        file: PathBuf,
    },
    /// Rotate a party's signing and/or encryption key.
    RotateKey {
        /// Party whose keys change.
        #[arg(long)]
        party: String,
        /// Directory holding the party's new `<party>.sign` and
        /// `<party>.x25519` (as `customsctl keygen` writes them); only the
        /// public keys are taken.
        #[arg(long)]
        new_keys: Option<PathBuf>,
        /// New Ed25519 public key (hex).
        #[arg(long)]
        signing_key: Option<String>,
        /// New X25519 public key (hex).
        #[arg(long)]
        encryption_key: Option<String>,
        /// With --new-keys: rotate only the signing key.
        #[arg(long, conflicts_with = "only_encryption")]
        only_signing: bool,
        /// With --new-keys: rotate only the encryption key.
        #[arg(long)]
        only_encryption: bool,
    },
    /// Revoke a party: it can no longer submit or receive keys.
    Revoke {
        /// Party.
        #[arg(long)]
        party: String,
    },
    /// Make a customs party a validator (voter) or not.
    SetValidator {
        /// Party.
        #[arg(long)]
        party: String,
        /// true or false.
        #[arg(long, action = clap::ArgAction::Set)]
        validator: bool,
    },
    /// Replace the disclosure or event policy, or the checkpoint quorum.
    SetPolicy {
        /// Disclosure rules (JSON list of {class, roles}).
        #[arg(long)]
        disclosure: Option<PathBuf>,
        /// Event rules (JSON list of {kind, roles}).
        #[arg(long)]
        events: Option<PathBuf>,
        /// Cosignatures a checkpoint needs.
        #[arg(long)]
        checkpoint_quorum: Option<u32>,
    },
    /// Change the risk thresholds, sanction and restricted-goods lists, or
    /// tolerances (starting from the policy in force).
    SetRiskPolicy {
        /// Score from which a declaration is flagged for review.
        #[arg(long)]
        review_at: Option<u8>,
        /// Score from which inspection is recommended.
        #[arg(long)]
        inspect_at: Option<u8>,
        /// Replace the whole policy with this JSON file.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Embargo a country (ISO 3166 alpha-2; repeatable).
        #[arg(long)]
        sanction_country: Vec<String>,
        /// Lift a country's embargo (repeatable).
        #[arg(long)]
        lift_country: Vec<String>,
        /// Restrict goods by HS prefix, 2-6 digits (repeatable).
        #[arg(long)]
        restrict_hs: Vec<String>,
        /// Lift a restriction (repeatable).
        #[arg(long)]
        unrestrict_hs: Vec<String>,
        /// Sanction a place by UN/LOCODE (repeatable).
        #[arg(long)]
        sanction_place: Vec<String>,
        /// Lift a place's sanction (repeatable).
        #[arg(long)]
        lift_place: Vec<String>,
        /// Width of the "just below EUR 150" band, percent.
        #[arg(long)]
        low_value_band_pct: Option<u8>,
        /// Value-per-kg tolerance: robust z-score x1000 from which it scores.
        #[arg(long)]
        value_z_milli: Option<u32>,
    },
    /// Pin the duty and VAT tables this build of customsctl carries (after
    /// an upgrade that changes them; nodes must run a build that carries
    /// the pinned ones).
    PinTables,
    /// Publish (or correct) the customs exchange rates of a month, which
    /// every conversion customs validators commit uses from then on.
    PublishRates {
        /// Rates file (JSON: source, per_eur {"USD": "1.0812", ...}).
        #[arg(long)]
        file: PathBuf,
        /// Month the rates apply to, YYYY-MM.
        #[arg(long)]
        month: String,
    },
    /// Wrap the risk-outcome secret again to the parties that read
    /// `Security` now (after one of them rotated its encryption key or
    /// joined), or replace it (--new-secret, after one was revoked).
    RewrapOutcomeKey {
        /// Draw a new secret instead of rewrapping the current one.
        #[arg(long)]
        new_secret: bool,
    },
}

/// A proposal file.
#[derive(Serialize, Deserialize, Debug)]
struct Proposal {
    format: String,
    chain_id: String,
    /// Sequence number and hash of the config it changes.
    config_seq: u64,
    config_hash: Hash32,
    /// The action, for people (the signed transaction is authoritative).
    action: Governance,
    /// Canonical bytes of the signed transaction, hex.
    signed_tx: String,
}

impl Proposal {
    fn load(path: &Path) -> Result<(Proposal, SignedTransaction)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let p: Proposal = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a proposal file", path.display()))?;
        if p.format != FORMAT {
            bail!("{}: unknown proposal format {:?}", path.display(), p.format);
        }
        let bytes = hex::decode(&p.signed_tx)
            .with_context(|| format!("{}: signed_tx is not hex", path.display()))?;
        let stx = SignedTransaction::decode(&bytes, ledger::codec::MAX_RECORD_BYTES)
            .with_context(|| format!("{}: signed_tx does not decode", path.display()))?;
        if stx.tx.governance.as_ref() != Some(&p.action) || stx.tx.chain_id != p.chain_id {
            bail!(
                "{}: the action or chain shown differs from the signed transaction (edited?)",
                path.display()
            );
        }
        Ok((p, stx))
    }

    fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    fn of(cfg: &ChainConfig, stx: &SignedTransaction) -> Result<Proposal> {
        Ok(Proposal {
            format: FORMAT.into(),
            chain_id: cfg.chain_id.clone(),
            config_seq: cfg.seq,
            config_hash: cfg.hash()?,
            action: stx
                .tx
                .governance
                .clone()
                .ok_or_else(|| anyhow!("not a governance transaction"))?,
            signed_tx: hex::encode(stx.encode()?),
        })
    }
}

pub(crate) async fn run(cmd: GovCmd) -> Result<()> {
    match cmd {
        GovCmd::Propose { conn, out, action } => propose(&conn, &out, &action).await,
        GovCmd::Approve { conn, file } => approve(&conn, &file).await,
        GovCmd::Submit { conn, file } => submit(&conn, &file).await,
        GovCmd::Show { conn, files } => show(&conn, &files).await,
    }
}

/// The config in force, proven, and a client to the node.
async fn current(conn: &Conn) -> Result<(Client, ChainConfig)> {
    let mut c = conn.client().await?;
    let cfg = conn.current_config(&mut c).await?;
    Ok((c, cfg))
}

fn hex32(s: &str, what: &str) -> Result<Bytes<32>> {
    Bytes::<32>::from_hex(s).map_err(|e| anyhow!("{what}: {e}"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", path.display()))
}

/// The governance action and the event kind that carries it.
fn build(conn: &Conn, cfg: &ChainConfig, action: &Action) -> Result<(EventKind, Governance)> {
    Ok(match action {
        Action::AddParty { file } => {
            let p: Party = read_json(file, "a party record")?;
            (EventKind::PartyAdded, Governance::AddParty(p))
        }
        Action::RotateKey {
            party,
            new_keys,
            signing_key,
            encryption_key,
            only_signing,
            only_encryption,
        } => {
            let (mut sign, mut enc) = (None, None);
            if let Some(dir) = new_keys {
                if !only_encryption {
                    let seed = spec::read_secret(&dir.join(format!("{party}.sign")))?;
                    sign = Some(Keypair::from_seed(&seed).public());
                }
                if !only_signing {
                    let secret = spec::read_secret(&dir.join(format!("{party}.x25519")))?;
                    enc = Some(DecryptionKey::from_secret(secret).public());
                }
            }
            if let Some(k) = signing_key {
                sign = Some(hex32(k, "--signing-key")?);
            }
            if let Some(k) = encryption_key {
                enc = Some(hex32(k, "--encryption-key")?);
            }
            if sign.is_none() && enc.is_none() {
                bail!("give --new-keys, --signing-key or --encryption-key");
            }
            if let Some(k) = &sign {
                crypto::check_registrable_key(k)
                    .map_err(|e| anyhow!("new signing key of {party}: {e}"))?;
            }
            (
                EventKind::KeyRotated,
                Governance::RotateKey {
                    party: party.clone(),
                    signing_key: sign,
                    encryption_key: enc,
                },
            )
        }
        Action::Revoke { party } => (
            EventKind::PartyRevoked,
            Governance::RevokeParty {
                party: party.clone(),
            },
        ),
        Action::SetValidator { party, validator } => (
            EventKind::ValidatorSetChanged,
            Governance::SetValidator {
                party: party.clone(),
                validator: *validator,
            },
        ),
        Action::SetPolicy {
            disclosure,
            events,
            checkpoint_quorum,
        } => {
            let disclosure: Option<Vec<DisclosureRule>> = disclosure
                .as_deref()
                .map(|p| read_json(p, "a list of disclosure rules"))
                .transpose()?;
            let events: Option<Vec<EventRule>> = events
                .as_deref()
                .map(|p| read_json(p, "a list of event rules"))
                .transpose()?;
            if disclosure.is_none() && events.is_none() && checkpoint_quorum.is_none() {
                bail!("give --disclosure, --events or --checkpoint-quorum");
            }
            (
                EventKind::PolicyChanged,
                Governance::SetPolicy {
                    disclosure,
                    events,
                    checkpoint_quorum: *checkpoint_quorum,
                },
            )
        }
        Action::SetRiskPolicy {
            review_at,
            inspect_at,
            policy,
            sanction_country,
            lift_country,
            restrict_hs,
            unrestrict_hs,
            sanction_place,
            lift_place,
            low_value_band_pct,
            value_z_milli,
        } => {
            let mut p = match policy {
                Some(f) => read_json(f, "a risk policy")?,
                None => cfg.risk_policy.clone(),
            };
            let upper = |v: &[String]| {
                v.iter()
                    .map(|s| s.trim().to_uppercase().replace(' ', ""))
                    .collect::<Vec<_>>()
            };
            p.sanctioned_countries
                .extend(upper(sanction_country.as_slice()));
            let lift = upper(lift_country.as_slice());
            p.sanctioned_countries.retain(|c| !lift.contains(c));
            p.restricted_hs_prefixes
                .extend(restrict_hs.iter().map(|s| s.trim().to_string()));
            p.restricted_hs_prefixes
                .retain(|h| !unrestrict_hs.iter().any(|u| u.trim() == h));
            p.sanctioned_locodes
                .extend(upper(sanction_place.as_slice()));
            let lift = upper(lift_place.as_slice());
            p.sanctioned_locodes.retain(|l| !lift.contains(l));
            if let Some(b) = low_value_band_pct {
                p.low_value_band_pct = *b;
            }
            if let Some(z) = value_z_milli {
                p.value_z_milli = *z;
            }
            p.normalize();
            p.check().map_err(|e| anyhow!("risk policy: {e}"))?;
            let policy = (p != cfg.risk_policy).then_some(p);
            if policy.is_none() && review_at.is_none() && inspect_at.is_none() {
                bail!("nothing to change: the policy given is the one in force");
            }
            (
                EventKind::PolicyChanged,
                Governance::SetRiskPolicy {
                    review_at: *review_at,
                    inspect_at: *inspect_at,
                    policy,
                },
            )
        }
        Action::PinTables => (
            EventKind::PolicyChanged,
            Governance::PinTables(ledger::tariff::TablePins::builtin()),
        ),
        Action::PublishRates { file, month } => {
            let r: ledger::quote::Rates = read_json(file, "an exchange-rate file")?;
            let mut per_eur = Vec::new();
            for (c, v) in &r.per_eur {
                let micro = r.micro_per_eur(c).map_err(|e| anyhow!("{e}"))?;
                if micro == 0 || v.is_empty() {
                    bail!("bad rate for {c}");
                }
                per_eur.push((c.clone(), micro));
            }
            let t = ledger::tariff::RateTable {
                month: month.clone(),
                source: r.source.clone(),
                per_eur,
            };
            t.check().map_err(|e| anyhow!("exchange rates: {e}"))?;
            (EventKind::PolicyChanged, Governance::PublishRates(t))
        }
        Action::RewrapOutcomeKey { new_secret } => {
            let key = if *new_secret {
                OutcomeKey::generate(cfg).map_err(|e| anyhow!("{e}"))?
            } else {
                let secret = cfg
                    .outcome_key
                    .unwrap(&cfg.chain_id, &conn.party, &conn.decryption_keys()?)
                    .map_err(|e| {
                        anyhow!(
                            "{} cannot unwrap the current outcome secret: {e}",
                            conn.party
                        )
                    })?;
                OutcomeKey::wrap(cfg, &secret).map_err(|e| anyhow!("{e}"))?
            };
            (EventKind::PolicyChanged, Governance::SetOutcomeKey(key))
        }
    })
}

async fn propose(conn: &Conn, out: &Path, action: &Action) -> Result<()> {
    let (_, cfg) = current(conn).await?;
    let (kind, g) = build(conn, &cfg, action)?;
    let after = chain::propose_governance(&cfg, &g).map_err(|r| {
        anyhow!(
            "the chain would refuse this change: {}: {}",
            r.code,
            r.message
        )
    })?;
    let stx = disclosure::seal(
        &cfg,
        &Draft {
            chain_id: cfg.chain_id.clone(),
            kind,
            shipment_id: String::new(),
            submitter: conn.party.clone(),
            claimed_time_ms: now_ms(),
            fields: vec![],
            shipment_parties: vec![],
            governance: Some(g),
        },
    )
    .map_err(|e| anyhow!("{e}"))?
    .sign(&conn.signing_key()?)?;
    let id = stx.id()?;
    println!("proposal {id}: {} by {}", summary(&stx), conn.party);
    print_diff(&cfg, &after);
    Proposal::of(&cfg, &stx)?.save(out)?;
    println!(
        "{}; written to {} (commit within {} s)",
        quorum_line(&cfg, &stx),
        out.display(),
        cfg.limits.time_window_ms / 1000
    );
    Ok(())
}

/// Check what is signed so far: the proposal changes the config in force,
/// its submitter's signature and every approval verify under it.
fn check_signed(cfg: &ChainConfig, p: &Proposal, stx: &SignedTransaction) -> Result<ChainConfig> {
    if p.chain_id != cfg.chain_id {
        bail!(
            "proposal is for chain {:?}, not {:?}",
            p.chain_id,
            cfg.chain_id
        );
    }
    if p.config_seq != cfg.seq || p.config_hash != cfg.hash()? {
        bail!(
            "the chain config has changed since this proposal (sequence {} then, {} now): propose it again",
            p.config_seq,
            cfg.seq
        );
    }
    let id = stx.id()?;
    let msg = signing_message(&id);
    let submitter = cfg
        .party(&stx.tx.submitter)
        .filter(|p| !p.revoked)
        .ok_or_else(|| anyhow!("proposer {} is not an active party", stx.tx.submitter))?;
    crypto::verify(&submitter.signing_key, &msg, &stx.signature)
        .map_err(|_| anyhow!("the proposer's signature does not verify"))?;
    for a in &stx.approvals {
        let ok = cfg
            .party(&a.party)
            .filter(|p| p.validator && !p.revoked)
            .is_some_and(|p| crypto::verify(&p.signing_key, &msg, &a.signature).is_ok());
        if !ok {
            bail!("the approval attributed to {} does not verify", a.party);
        }
    }
    let g = stx
        .tx
        .governance
        .as_ref()
        .ok_or_else(|| anyhow!("not a governance transaction"))?;
    chain::propose_governance(cfg, g).map_err(|r| {
        anyhow!(
            "the chain would refuse this change: {}: {}",
            r.code,
            r.message
        )
    })
}

fn check_window(cfg: &ChainConfig, stx: &SignedTransaction) -> Result<()> {
    let age = now_ms().saturating_sub(stx.tx.claimed_time_ms);
    if age > cfg.limits.time_window_ms {
        bail!(
            "proposed {} s ago, beyond the chain's {} s window: propose it again",
            age / 1000,
            cfg.limits.time_window_ms / 1000
        );
    }
    Ok(())
}

async fn approve(conn: &Conn, file: &Path) -> Result<()> {
    let (p, mut stx) = Proposal::load(file)?;
    let (_, cfg) = current(conn).await?;
    let after = check_signed(&cfg, &p, &stx)?;
    check_window(&cfg, &stx)?;
    let me = cfg
        .party(&conn.party)
        .filter(|p| p.validator && !p.revoked)
        .ok_or_else(|| anyhow!("{} is not a validator: only validators approve", conn.party))?;
    let key = conn.signing_key()?;
    if key.public() != me.signing_key {
        bail!(
            "your signing key is not the one the chain registers for {}",
            conn.party
        );
    }
    println!(
        "proposal {}: {} by {}",
        stx.id()?,
        summary(&stx),
        stx.tx.submitter
    );
    print_diff(&cfg, &after);
    stx.approve(&conn.party, &key)?;
    Proposal::of(&cfg, &stx)?.save(file)?;
    println!("approved by {}; {}", conn.party, quorum_line(&cfg, &stx));
    Ok(())
}

async fn submit(conn: &Conn, file: &Path) -> Result<()> {
    let (p, stx) = Proposal::load(file)?;
    let (mut c, cfg) = current(conn).await?;
    check_signed(&cfg, &p, &stx)?;
    check_window(&cfg, &stx)?;
    chain::check_governance(&cfg, &stx)
        .map_err(|r| anyhow!("not ready: {}: {}", r.code, r.message))?;
    let id = stx.id()?;
    let r = c
        .admin
        .submit_governance(c.signed(
            "/customs.v1.Admin/SubmitGovernance",
            proto::v1::SubmitRequest {
                signed_tx: stx.encode()?,
                wait_for_commit: true,
            },
        ))
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(rj) = r.rejections.first() {
        bail!("proposal {id} was rejected: {}: {}", rj.code, rj.message);
    }
    println!(
        "proposal {id} committed at height {} index {}: {}",
        r.height,
        r.index,
        summary(&stx)
    );
    // Wait for a checkpoint that covers it, so what follows (`show`, the
    // next proposal, a submitter sealing for the new keys) sees the change.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let cp = c.newest_checkpoint().await?;
        if cp.height >= r.height {
            println!("cosigned in the checkpoint at height {}", cp.height);
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            println!(
                "not yet in a cosigned checkpoint (newest at height {}); auditors see it once it is",
                cp.height
            );
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn show(conn: &Conn, files: &[PathBuf]) -> Result<()> {
    let mut trust = conn.trust()?;
    let mut c = conn.client().await?;
    let (cp, cfg) = trust.current(&mut c).await?;
    let timeline = trust.timeline(&mut c, &cp).await?;
    println!(
        "chain {} at checkpoint height {}: config sequence {} ({})",
        cfg.chain_id,
        cp.height,
        cfg.seq,
        cfg.hash()?
    );
    let changes = timeline.changes();
    if changes.is_empty() {
        println!("no governance committed since the trusted config");
    }
    for (block, _) in changes {
        for (i, stx) in block.txs.iter().enumerate() {
            if stx.tx.governance.is_none() {
                continue;
            }
            let approvers: Vec<&str> = stx.approvals.iter().map(|a| a.party.as_str()).collect();
            println!(
                "committed h{:<6} #{i:<3} {:<22} {} — proposed by {}, approved by {}",
                block.header.height,
                stx.tx.kind.name(),
                summary(stx),
                stx.tx.submitter,
                if approvers.is_empty() {
                    "(proposer only)".to_string()
                } else {
                    approvers.join(", ")
                }
            );
        }
    }
    for f in files {
        match Proposal::load(f) {
            Err(e) => println!("pending   {}: unreadable: {e:#}", f.display()),
            Ok((p, stx)) => {
                let state =
                    match check_signed(&cfg, &p, &stx).and_then(|_| check_window(&cfg, &stx)) {
                        Err(e) => format!("cannot commit: {e:#}"),
                        Ok(()) => quorum_line(&cfg, &stx),
                    };
                println!(
                    "pending   {}: {} by {}; {state}",
                    f.display(),
                    summary(&stx),
                    stx.tx.submitter
                );
            }
        }
    }
    Ok(())
}

/// "2 of 3 validators approved (de-customs, fr-customs): ready to submit".
fn quorum_line(cfg: &ChainConfig, stx: &SignedTransaction) -> String {
    let validators: Vec<&str> = cfg.validators().map(|p| p.id.as_str()).collect();
    let mut approvers: Vec<&str> = stx.approvals.iter().map(|a| a.party.as_str()).collect();
    if validators.contains(&stx.tx.submitter.as_str()) {
        approvers.push(&stx.tx.submitter);
    }
    approvers.sort();
    approvers.dedup();
    let need = validators.len() / 2 + 1;
    format!(
        "{} of {} validators approved ({}): {}",
        approvers.len(),
        validators.len(),
        approvers.join(", "),
        if approvers.len() >= need {
            "ready to submit".to_string()
        } else {
            format!("{} more needed", need - approvers.len())
        }
    )
}

/// One line saying what a governance transaction does.
pub(crate) fn summary(stx: &SignedTransaction) -> String {
    let short = |b: &Bytes<32>| b.to_hex().chars().take(12).collect::<String>();
    match &stx.tx.governance {
        None => "not governance".into(),
        Some(Governance::AddParty(p)) => format!("add party {} ({})", p.id, p.name),
        Some(Governance::RotateKey {
            party,
            signing_key,
            encryption_key,
        }) => {
            let mut parts = Vec::new();
            if let Some(k) = signing_key {
                parts.push(format!("signing key {}…", short(k)));
            }
            if let Some(k) = encryption_key {
                parts.push(format!("encryption key {}…", short(k)));
            }
            format!("rotate {party}'s {}", parts.join(" and "))
        }
        Some(Governance::RevokeParty { party }) => format!("revoke {party}"),
        Some(Governance::SetValidator { party, validator }) => {
            format!(
                "{} {party} as a validator",
                if *validator { "set" } else { "unset" }
            )
        }
        Some(Governance::SetPolicy {
            disclosure,
            events,
            checkpoint_quorum,
        }) => {
            let mut parts = Vec::new();
            if disclosure.is_some() {
                parts.push("disclosure policy".to_string());
            }
            if events.is_some() {
                parts.push("event policy".to_string());
            }
            if let Some(q) = checkpoint_quorum {
                parts.push(format!("checkpoint quorum {q}"));
            }
            format!("set {}", parts.join(", "))
        }
        Some(Governance::SetRiskPolicy {
            review_at,
            inspect_at,
            policy,
        }) => {
            let mut parts = Vec::new();
            if let Some(r) = review_at {
                parts.push(format!("review at {r}"));
            }
            if let Some(i) = inspect_at {
                parts.push(format!("inspect at {i}"));
            }
            if let Some(p) = policy {
                parts.push(format!(
                    "risk policy ({} embargoed countries, {} restricted HS prefixes, {} sanctioned places)",
                    p.sanctioned_countries.len(),
                    p.restricted_hs_prefixes.len(),
                    p.sanctioned_locodes.len()
                ));
            }
            format!("set {}", parts.join(", "))
        }
        Some(Governance::PinTables(t)) => format!(
            "pin the duty table {} and the VAT table {}",
            t.tariff_edition, t.vat_edition
        ),
        Some(Governance::PublishRates(t)) => format!(
            "publish the exchange rates of {} ({} currencies, {})",
            t.month,
            t.per_eur.len(),
            t.source
        ),
        Some(Governance::SetOutcomeKey(k)) => format!(
            "outcome key {}… wrapped to {}",
            short(&k.id),
            k.wraps
                .iter()
                .map(|w| w.party.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn print_diff(before: &ChainConfig, after: &ChainConfig) {
    let (Ok(a), Ok(b)) = (serde_json::to_value(before), serde_json::to_value(after)) else {
        println!("  (config cannot be shown)");
        return;
    };
    println!("config change (sequence {} -> {}):", before.seq, after.seq);
    let mut lines = Vec::new();
    diff_value("", &a, &b, &mut lines);
    for l in lines {
        println!("  {l}");
    }
}

/// Key naming an element of a list, so lists diff by identity, not position.
fn element_key(v: &Value) -> Option<String> {
    ["id", "party", "class", "kind"].iter().find_map(|k| {
        v.get(*k)
            .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
    })
}

fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 100 {
        format!("{}…", s.chars().take(100).collect::<String>())
    } else {
        s
    }
}

/// Path-level differences between two JSON values: `~ path: old -> new`,
/// `+ path: new`, `- path: old`.
pub(crate) fn diff_value(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => diff_value(&join(k), va, vb, out),
                    None => out.push(format!("- {}: {}", join(k), brief(va))),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(format!("+ {}: {}", join(k), brief(vb)));
                }
            }
        }
        (Value::Array(x), Value::Array(y))
            if x.iter().chain(y.iter()).all(|v| element_key(v).is_some()) =>
        {
            let find = |list: &[Value], key: &str| {
                list.iter()
                    .find(|v| element_key(v).as_deref() == Some(key))
                    .cloned()
            };
            for va in x {
                let key = element_key(va).unwrap_or_default();
                let at = format!("{path}[{key}]");
                match find(y, &key) {
                    Some(vb) => diff_value(&at, va, &vb, out),
                    None => out.push(format!("- {at}: {}", brief(va))),
                }
            }
            for vb in y {
                let key = element_key(vb).unwrap_or_default();
                if find(x, &key).is_none() {
                    out.push(format!("+ {path}[{key}]: {}", brief(vb)));
                }
            }
        }
        (Value::Array(x), Value::Array(y))
            if x.iter()
                .chain(y.iter())
                .all(|v| !v.is_object() && !v.is_array()) =>
        {
            let removed: Vec<&Value> = x.iter().filter(|v| !y.contains(v)).collect();
            let added: Vec<&Value> = y.iter().filter(|v| !x.contains(v)).collect();
            for v in &removed {
                out.push(format!("- {path}[]: {v}"));
            }
            for v in &added {
                out.push(format!("+ {path}[]: {v}"));
            }
            if removed.is_empty() && added.is_empty() {
                out.push(format!("~ {path}: {} -> {}", brief(a), brief(b)));
            }
        }
        _ => out.push(format!("~ {path}: {} -> {}", brief(a), brief(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_by_path_and_list_identity() {
        let a = json!({"seq": 1, "parties": [{"id": "a", "key": "x"}, {"id": "b", "key": "y"}], "q": [1, 2]});
        let b = json!({"seq": 2, "parties": [{"id": "b", "key": "z"}, {"id": "c", "key": "w"}], "q": [1, 3]});
        let mut out = Vec::new();
        diff_value("", &a, &b, &mut out);
        assert_eq!(
            out,
            vec![
                "- parties[a]: {\"id\":\"a\",\"key\":\"x\"}",
                "~ parties[b].key: \"y\" -> \"z\"",
                "+ parties[c]: {\"id\":\"c\",\"key\":\"w\"}",
                "- q[]: 2",
                "+ q[]: 3",
                "~ seq: 1 -> 2",
            ]
        );
    }
}
