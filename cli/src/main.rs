//! `customsctl`: the command-line tool of the customs ledger. It makes keys
//! and genesis files, seals and signs events locally before submitting them,
//! queries nodes and checks every answer with proofs against a trusted chain
//! config, classifies goods offline, verifies whole chains, and writes and
//! checks single-field disclosure proofs. It never trusts the node it talks to.

mod admin;
mod audit;
mod bench;
mod bulk;
mod catalogue;
mod client;
mod demo;
mod explorer;
mod governance;
mod history;
mod hsmodel;
mod kpi;
mod outcomes;
mod proofs;
mod quote;
mod spec;
mod subscribe;
mod tls;
mod trust;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use client::{now_ms, status_error, Client};
use ledger::config::{ChainConfig, FieldClass};
use ledger::crypto::Keypair;
use ledger::declaration::Declaration;
use ledger::disclosure::{self, DecryptionKey, Draft, Field};
use ledger::event::EventKind;
use ledger::hash::Hash32;
use ledger::hs::classifier::Classifier;
use ledger::hs::nomenclature::{self, Nomenclature};
use ledger::{codec, Block};
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "customsctl",
    version,
    about = "Customs ledger command-line tool"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Who we are and which node we ask.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Conn {
    /// Node gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:8101", env = "CUSTOMS_NODE")]
    pub(crate) node: String,
    /// Party to act as.
    #[arg(long = "as", env = "CUSTOMS_PARTY")]
    pub(crate) party: String,
    /// Directory holding `<party>.sign` and `<party>.x25519`.
    #[arg(long, env = "CUSTOMS_KEYS")]
    pub(crate) keys: PathBuf,
    /// Trusted chain config (genesis.json).
    #[arg(long, env = "CUSTOMS_GENESIS")]
    pub(crate) genesis: PathBuf,
    /// Cosignatures required on checkpoints (default: the chain config's quorum).
    #[arg(long)]
    pub(crate) quorum: Option<u32>,
    /// Party running the node; every request is signed for that node only
    /// (asked of the node when not given).
    #[arg(long, env = "CUSTOMS_NODE_PARTY")]
    pub(crate) node_party: Option<String>,
    /// CA certificate (PEM) to pin for an `https://` node (e.g. the
    /// network's `tls/ca.crt`); no system roots are trusted.
    #[arg(long, env = "CUSTOMS_CA")]
    pub(crate) ca: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum HsCmd {
    /// Distil all-MiniLM-L6-v2 into the integer semantic table (setup runs this).
    Distil {
        /// Model directory (default: .cache/all-MiniLM-L6-v2 located upwards).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Nomenclature file (default: located automatically).
        #[arg(long)]
        nomenclature: Option<PathBuf>,
        /// Output table file (default: .cache/hs-minilm.sem beside the nomenclature).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do nothing when the output already holds a table of this
        /// method over this nomenclature.
        #[arg(long)]
        if_stale: bool,
    },
    /// Accuracy and latency of the classifier on evaluation CSVs
    /// (`text,hs6` or `text,expected_hs_code` columns).
    Eval {
        /// Evaluation CSV files.
        #[arg(required = true)]
        csv: Vec<PathBuf>,
        /// Nomenclature file (default: located automatically).
        #[arg(long)]
        nomenclature: Option<PathBuf>,
        /// Semantic table (default: located automatically; `none` for lexical only).
        #[arg(long)]
        semantic: Option<String>,
        /// Also rank with the full model from this directory (advisory path).
        #[arg(long)]
        full_model: Option<PathBuf>,
        /// Grid-search the semantic weights (and print the semantic signal's
        /// own accuracy, level by level).
        #[arg(long)]
        tune: bool,
        /// Grid-search the trade prior's weights.
        #[arg(long)]
        tune_prior: bool,
        /// Simulated history: learn every other case, score the rest before/after.
        #[arg(long)]
        learn_half: bool,
        /// Print the score calibration table and what each verdict means.
        #[arg(long)]
        calibrate: bool,
        /// Fit the calibration tables (isotonic regression on the cases)
        /// and print them as the classifier's constants.
        #[arg(long)]
        fit_calibration: bool,
        /// Write each case's top-40 suggestions (set, expected, code:score…)
        /// as tab-separated lines to this file.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate a party's signing, encryption and node keys (files mode 0600).
    Keygen {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Party id.
        #[arg(long)]
        party: String,
    },
    /// Make keys, genesis and node configs from a network spec.
    Genesis {
        /// Network spec (TOML).
        #[arg(long)]
        spec: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Nomenclature file to pin (default: located automatically).
        #[arg(long)]
        nomenclature: Option<PathBuf>,
        /// Distilled semantic table to pin (default: located automatically;
        /// `none`: lexical classification only).
        #[arg(long)]
        semantic: Option<String>,
    },
    /// Seal, sign and submit events: JSON files, directories of them (in
    /// name order), or `-` for JSON lines on standard input; in order, with
    /// a progress bar and one result line per event when there are several.
    Submit {
        #[command(flatten)]
        conn: Conn,
        /// Event JSON files, directories, or `-`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not wait for the commit.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show a transaction, open what the caller may read, and check its proof.
    Tx {
        #[command(flatten)]
        conn: Conn,
        /// Transaction id (hex).
        tx_id: String,
    },
    /// A shipment's events in order, opened where allowed, each proof checked.
    History {
        #[command(flatten)]
        conn: Conn,
        /// Shipment id.
        shipment: String,
        /// Print as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Stream blocks from a height.
    Blocks {
        #[command(flatten)]
        conn: Conn,
        /// First height.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after this many blocks (default: follow forever).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Follow committed events as they commit (resumes after a disconnect
    /// or a node restart, no event lost or repeated).
    Subscribe {
        #[command(flatten)]
        conn: Conn,
        /// First block height (default: the block after the node's tip).
        #[arg(long)]
        from: Option<u64>,
        /// Only this shipment's events.
        #[arg(long)]
        shipment: Option<String>,
        /// Only events of this kind (repeatable), e.g. RELEASED.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Stop after this many events (default: follow forever).
        #[arg(long)]
        count: Option<u64>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Cluster membership: add a learner, promote, remove, list members.
    Admin {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: admin::AdminCmd,
    },
    /// Node status.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// Classify a goods description, or a catalogue (--file products.csv),
    /// offline (HS 2022).
    Classify {
        /// Goods description.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        description: Option<String>,
        /// CSV catalogue with a `description` column (optional `id`/`sku`
        /// and `hs_code` columns).
        #[arg(long)]
        file: Option<PathBuf>,
        /// With --file: output file (default: standard output).
        #[arg(long, requires = "file")]
        out: Option<PathBuf>,
        /// With --file: output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: catalogue::Format,
        /// Suggestions to show.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Output JSON.
        #[arg(long)]
        json: bool,
        /// Check a declared code too.
        #[arg(long)]
        declared: Option<String>,
        /// Nomenclature file (default: located automatically).
        #[arg(long)]
        nomenclature: Option<PathBuf>,
    },
    /// The HS language model: distil it into the semantic table, evaluate classifiers.
    Hs {
        #[command(subcommand)]
        cmd: HsCmd,
    },
    /// Verify a chain end to end from genesis: from a node, or offline from an exported file.
    Verify {
        /// Node gRPC address (online verification).
        #[arg(long, env = "CUSTOMS_NODE")]
        node: Option<String>,
        /// Party to act as (online verification).
        #[arg(long = "as", env = "CUSTOMS_PARTY")]
        party: Option<String>,
        /// Directory holding `<party>.sign` (online verification).
        #[arg(long, env = "CUSTOMS_KEYS")]
        keys: Option<PathBuf>,
        /// Trusted chain config (online verification).
        #[arg(long, env = "CUSTOMS_GENESIS")]
        genesis: Option<PathBuf>,
        /// Cosignatures required on checkpoints (default: the chain config's quorum).
        #[arg(long)]
        quorum: Option<u32>,
        /// Exported chain file to verify offline (with --genesis-file).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Genesis for offline verification.
        #[arg(long)]
        genesis_file: Option<PathBuf>,
        /// Trusted checkpoint kept between runs; the next run demands a consistency proof from it.
        #[arg(long)]
        trust: Option<PathBuf>,
        /// CA certificate (PEM) to pin for an `https://` node.
        #[arg(long, env = "CUSTOMS_CA")]
        ca: Option<PathBuf>,
        /// With --file: recompute every declaration's outcome as this
        /// customs party (--as, --keys) in commit order and report any
        /// block whose committed outcome differs.
        #[arg(long)]
        rejudge: bool,
        /// Nomenclature for --rejudge (default: located automatically).
        #[arg(long)]
        nomenclature: Option<PathBuf>,
    },
    /// Compare cosigned checkpoints from several nodes and files; fails naming the parties whose
    /// signatures conflict (two different checkpoints at one height, checkpoints that do not
    /// extend each other, cosignatures that do not verify).
    CheckCheckpoints {
        /// Node gRPC address (repeatable): its newest checkpoint and its own at every height compared.
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Cosigned checkpoint file, JSON as `verify --trust` writes it (repeatable).
        #[arg(long = "checkpoint")]
        files: Vec<PathBuf>,
        /// Also compare the nodes' checkpoints at this height (repeatable).
        #[arg(long = "height")]
        heights: Vec<u64>,
        /// Party to act as.
        #[arg(long = "as", env = "CUSTOMS_PARTY")]
        party: String,
        /// Directory holding `<party>.sign`.
        #[arg(long, env = "CUSTOMS_KEYS")]
        keys: PathBuf,
        /// Trusted chain config.
        #[arg(long, env = "CUSTOMS_GENESIS")]
        genesis: PathBuf,
        /// CA certificate (PEM) to pin for `https://` nodes.
        #[arg(long, env = "CUSTOMS_CA")]
        ca: Option<PathBuf>,
    },
    /// Export the chain to a file for offline verification.
    Export {
        #[command(flatten)]
        conn: Conn,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a single-field disclosure proof.
    Disclose {
        #[command(flatten)]
        conn: Conn,
        /// Transaction id.
        tx_id: String,
        /// Field path (e.g. decl.goods[0].value_minor).
        path: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load generator: pre-built sealed transactions at a fixed concurrency or rate.
    Bench {
        /// Node gRPC addresses (comma separated) to spread load over.
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8101")]
        nodes: Vec<String>,
        /// Directory written by `customsctl genesis`.
        #[arg(long)]
        net: PathBuf,
        /// Party whose key signs the gRPC requests.
        #[arg(long = "as", default_value = "broker")]
        party: String,
        /// What to submit: whole consignment lifecycles (nine events each, one
        /// declaration), or only first events (half of them declarations).
        #[arg(long, value_enum, default_value = "lifecycle")]
        workload: bench::Workload,
        /// Timed phase in seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Concurrent submissions in flight.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Transactions per call: 1 submits each on its own (Submit); more
        /// group ready events into SubmitBatch calls (closed loop only).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Offered rate in tx/s (0 = closed loop).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Transactions to pre-build.
        #[arg(long, default_value_t = 0)]
        prebuild: usize,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Draw latency histogram and throughput chart (SVG).
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Run the demo scenario against a running test network.
    Demo {
        /// Directory written by `customsctl genesis` (keys/, genesis.json, node configs).
        #[arg(long)]
        net: PathBuf,
    },
    /// Landed-cost quote of a basket (duty, VAT, IOSS), offline, from the
    /// compiled-in EU tariff (2020) and VAT tables and the exchange rates given.
    Quote {
        /// Basket (JSON: origin, destination, date, currency, shipping_minor,
        /// insurance_minor, lines of code, quantity, value_minor, net_mass_g).
        #[arg(long)]
        basket: PathBuf,
        /// Exchange rates (JSON: date, source, per_eur {"USD": "1.0812"}):
        /// quote offline. Without it the node is asked, with the rates
        /// customs published on the ledger.
        #[arg(long)]
        rates: Option<PathBuf>,
        /// Chain config (offline: whose risk policy flags restricted goods;
        /// asking a node: the trusted config).
        #[arg(long, env = "CUSTOMS_GENESIS")]
        genesis: Option<PathBuf>,
        /// Node to ask.
        #[arg(long, default_value = "http://127.0.0.1:8101", env = "CUSTOMS_NODE")]
        node: String,
        /// Party to ask as.
        #[arg(long = "as", env = "CUSTOMS_PARTY")]
        party: Option<String>,
        /// Directory holding the party's keys.
        #[arg(long, env = "CUSTOMS_KEYS")]
        keys: Option<PathBuf>,
        /// CA certificate to pin for an https:// node.
        #[arg(long, env = "CUSTOMS_CA")]
        ca: Option<PathBuf>,
        /// Output JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the chain config by a majority of validators: propose,
    /// approve, submit, show.
    Governance {
        #[command(subcommand)]
        cmd: governance::GovCmd,
    },
    /// Smart Customs KPIs from a node: time-to-clear, inspection and hit
    /// rates, holds, requests for information, ICS2 completeness,
    /// rejections by reason, DDP price accuracy and CO2, by corridor,
    /// chapter, mode or party and per period, with a chart. Sealed figures
    /// show only where the caller's role may read them.
    Kpi {
        #[command(flatten)]
        conn: Conn,
        /// Group by: all, corridor, chapter, mode or party.
        #[arg(long, default_value = "corridor")]
        by: String,
        /// Period: total, month, week or day.
        #[arg(long, default_value = "total")]
        period: String,
        /// Only periods of the last N days (0: all).
        #[arg(long, default_value_t = 0)]
        days: u64,
        /// Only this group (e.g. `PL>FR000690`).
        #[arg(long, default_value = "")]
        value: String,
        /// Chart: declarations, ttc, filing, inspection, completeness or none.
        #[arg(long, default_value = "ttc")]
        chart: String,
        /// Output JSON.
        #[arg(long)]
        json: bool,
    },
    /// A web page for this party: chain status and checkpoint signers,
    /// blocks, shipment timelines as the party sees them (proofs checked),
    /// KPI dashboard, corridor predictions, live updates. Loopback only.
    Explorer {
        #[command(flatten)]
        conn: Conn,
        /// Address to listen on (loopback).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Rank offices of first entry for a planned shipment by predicted
    /// arrival-to-release time, from committed clearances; `--backtest`
    /// predicts the later half of the verified chain's clearances from the
    /// earlier half and compares with a naive baseline.
    Route {
        #[command(flatten)]
        conn: Conn,
        /// Country of dispatch (ISO 3166 alpha-2).
        #[arg(long, default_value = "")]
        from: String,
        /// HS chapter of the main goods (two digits).
        #[arg(long, default_value = "")]
        chapter: String,
        /// Transport mode: UCC code (1 sea, 2 rail, 3 road, 4 air) or name.
        #[arg(long, default_value = "1")]
        mode: String,
        /// Candidate office (repeat; default: every office seen).
        #[arg(long = "office")]
        offices: Vec<String>,
        /// Fewest clearances a corridor level needs before it predicts.
        #[arg(long, default_value_t = ledger::kpi::MIN_EVIDENCE)]
        min_evidence: u64,
        /// Back-test the predictor on the chain instead.
        #[arg(long)]
        backtest: bool,
        /// Output JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a disclosure proof offline; exits non-zero with a reason when any part is wrong.
    VerifyDisclosure {
        /// Proof file.
        file: PathBuf,
        /// Trusted chain config.
        #[arg(long)]
        genesis: PathBuf,
        /// Cosignatures required (default: the config's quorum).
        #[arg(long)]
        quorum: Option<u32>,
    },
}

/// An event to submit, as written by a user.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct EventFile {
    kind: EventKind,
    shipment_id: String,
    #[serde(default)]
    declaration: Option<Declaration>,
    #[serde(default)]
    fields: Vec<Field>,
    #[serde(default)]
    shipment_parties: Vec<String>,
}

/// A transport mode by UCC code or name.
fn parse_mode(s: &str) -> Result<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return Ok(n);
    }
    (0..=9u8)
        .find(|m| ledger::kpi::mode_name(*m) == s)
        .ok_or_else(|| anyhow!("unknown transport mode {s:?}: a UCC code or sea, rail, road, air"))
}

fn load_genesis(path: &Path) -> Result<ChainConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read chain config {}", path.display()))?;
    let cfg: ChainConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a chain config", path.display()))?;
    cfg.validate()?;
    Ok(cfg)
}

impl Conn {
    fn signing_key(&self) -> Result<Keypair> {
        Ok(Keypair::from_seed(&spec::read_secret(
            &self.keys.join(format!("{}.sign", self.party)),
        )?))
    }
    fn decryption_keys(&self) -> Result<Vec<DecryptionKey>> {
        let mut keys = vec![DecryptionKey::from_secret(spec::read_secret(
            &self.keys.join(format!("{}.x25519", self.party)),
        )?)];
        // Rotated-out keys: <party>.x25519.<n>
        for n in 1..100 {
            let p = self.keys.join(format!("{}.x25519.{n}", self.party));
            if !p.exists() {
                break;
            }
            keys.push(DecryptionKey::from_secret(spec::read_secret(&p)?));
        }
        Ok(keys)
    }
    async fn client(&self) -> Result<Client> {
        let (cfg, _) = self.trusted()?;
        Client::connect(
            &self.node,
            self.ca.as_deref(),
            &cfg.chain_id,
            self.node_party.as_deref(),
            &self.party,
            self.signing_key()?,
        )
        .await
    }
    fn trusted(&self) -> Result<(ChainConfig, u32)> {
        let cfg = load_genesis(&self.genesis)?;
        let q = self.quorum.unwrap_or(cfg.checkpoint_quorum);
        Ok((cfg, q))
    }
    /// The trusted config, from which the node's answers are followed.
    fn trust(&self) -> Result<trust::Trust> {
        Ok(trust::Trust::new(load_genesis(&self.genesis)?, self.quorum))
    }
    /// The config in force at the node's newest cosigned checkpoint,
    /// followed from the trusted one with proofs: what events are sealed
    /// for (the recipients' current keys). The trusted config itself while
    /// the node has no cosigned checkpoint yet.
    async fn current_config(&self, c: &mut Client) -> Result<ChainConfig> {
        let mut trust = self.trust()?;
        match trust.current(c).await {
            Ok((_, cfg)) => Ok(cfg),
            Err(e)
                if e.to_string().contains("NO_CHECKPOINT")
                    && !e.to_string().contains("cannot be followed") =>
            {
                Ok(trust.genesis().clone())
            }
            Err(e) => Err(e),
        }
    }
}

fn parse_id(s: &str) -> Result<Hash32> {
    Hash32::from_hex(s).map_err(|e| anyhow!("transaction id {s:?}: {e}"))
}

/// The nomenclature file given, or the one setup fetched.
fn nomenclature_path(path: Option<&Path>) -> Result<PathBuf> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None => nomenclature::locate().ok_or_else(|| {
            anyhow!("nomenclature not found: run testnet/setup.sh (or pass --nomenclature)")
        }),
    }
}

fn load_nomenclature(path: Option<&Path>) -> Result<Nomenclature> {
    let p = nomenclature_path(path)?;
    Nomenclature::load(&p).map_err(|e| anyhow!("{}: {e}", p.display()))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Keygen { out, party } => {
            if !ledger::config::valid_party_id(&party) {
                bail!("party id must be 1-32 chars of [a-z0-9-]");
            }
            std::fs::create_dir_all(&out)?;
            let sign = Keypair::generate();
            let x = DecryptionKey::generate();
            let node = Keypair::generate();
            spec::write_secret(&out.join(format!("{party}.sign")), &sign.seed())?;
            spec::write_secret(&out.join(format!("{party}.x25519")), &x.secret())?;
            spec::write_secret(&out.join(format!("{party}.node")), &node.seed())?;
            println!("signing_key    = {}", sign.public());
            println!("encryption_key = {}", x.public());
            println!("peer_id        = {}", spec::peer_id(&node.public().0));
        }
        Cmd::Genesis {
            spec: spec_path,
            out,
            nomenclature: nom,
            semantic,
        } => {
            let s = spec::load_spec(&spec_path)?;
            let nom = nom.or_else(nomenclature::locate);
            let semantic = match semantic.as_deref() {
                Some("none") => None,
                Some(p) => Some(PathBuf::from(p)),
                None => ledger::hs::semantic::locate(),
            };
            let cfg = spec::generate(&s, &out, nom.as_deref(), semantic.as_deref())?;
            println!(
                "genesis for {} with {} parties written to {} (config hash {})",
                cfg.chain_id,
                cfg.parties.len(),
                out.display(),
                cfg.hash()?
            );
        }
        Cmd::Submit {
            conn,
            files,
            no_wait,
        } => {
            let items = bulk::expand(&files)?;
            match items.as_slice() {
                [one] => submit(&conn, &one.name, &one.text, !no_wait).await?,
                _ => bulk::submit_all(&conn, &items, !no_wait).await?,
            }
        }
        Cmd::Tx { conn, tx_id } => show_tx(&conn, &parse_id(&tx_id)?).await?,
        Cmd::History {
            conn,
            shipment,
            json,
        } => history(&conn, &shipment, json).await?,
        Cmd::Blocks { conn, from, count } => blocks(&conn, from, count).await?,
        Cmd::Admin { conn, cmd } => admin::run(&conn, cmd).await?,
        Cmd::Subscribe {
            conn,
            from,
            shipment,
            kinds,
            count,
            json,
        } => {
            subscribe::run(
                &conn,
                subscribe::Follow {
                    from,
                    shipment,
                    kinds,
                    count,
                    json,
                },
            )
            .await?
        }
        Cmd::Status { conn } => {
            let r = conn.client().await?.status().await?;
            println!("chain      {}", r.chain_id);
            println!("node       {} ({})", r.node_party, r.version);
            println!(
                "raft       {} term {} leader {} ({})",
                r.raft_role, r.term, r.leader_id, r.leader_party
            );
            println!("height     {} tip {}", r.height, hex::encode(&r.tip_hash));
            println!("applied    {}", r.applied_index);
            println!("peers      {}", r.peers);
            if r.divergence_height > 0 {
                println!(
                    "COSIGNING HALTED from block {}: {}",
                    r.divergence_height, r.divergence
                );
            }
            for m in r.members {
                println!(
                    "  member {} {} {} {}",
                    m.node_id,
                    m.party,
                    m.address,
                    if m.voter { "voter" } else { "learner" }
                );
            }
        }
        Cmd::Hs { cmd } => match cmd {
            HsCmd::Distil {
                model,
                nomenclature,
                out,
                if_stale,
            } => {
                let nom = nomenclature_path(nomenclature.as_deref())?;
                let out = match out {
                    Some(o) => o,
                    None => nom
                        .parent()
                        .map(|d| d.join("hs-minilm.sem"))
                        .ok_or_else(|| anyhow!("give --out"))?,
                };
                hsmodel::run_distil(model.as_deref(), &nom, &out, if_stale)?;
            }
            HsCmd::Eval {
                csv,
                nomenclature,
                semantic,
                full_model,
                tune,
                tune_prior,
                learn_half,
                calibrate,
                fit_calibration,
                dump,
            } => {
                let nom = nomenclature_path(nomenclature.as_deref())?;
                let semantic = match semantic.as_deref() {
                    Some("none") => None,
                    Some(p) => Some(PathBuf::from(p)),
                    None => ledger::hs::semantic::locate(),
                };
                hsmodel::run_eval(&hsmodel::EvalOpts {
                    csv,
                    nomenclature: nom,
                    semantic,
                    full_model,
                    tune,
                    tune_prior,
                    learn_half,
                    calibrate,
                    fit_calibration,
                    dump,
                })?;
            }
        },
        Cmd::Classify {
            description,
            file,
            out,
            format,
            top,
            json,
            declared,
            nomenclature: nom,
        } => {
            if top == 0 || top > 100 {
                bail!("--top must be between 1 and 100");
            }
            let nom = load_nomenclature(nom.as_deref())?;
            let mut c = Classifier::new(&nom);
            // The distilled model when setup made it (as customs nodes classify).
            if let Some(p) = ledger::hs::semantic::locate() {
                let t = ledger::hs::semantic::SemanticTable::load(&p)
                    .map_err(|e| anyhow!("{}: {e}", p.display()))?;
                c = c.with_semantic(std::sync::Arc::new(t));
            }
            if let Some(file) = file {
                let (n, failed) = catalogue::run(&c, &file, out.as_deref(), format, top)?;
                eprintln!("{n} products classified, {failed} without a description");
                return Ok(());
            }
            let description = description.unwrap_or_default();
            let sugg = c.classify(&description, top);
            let judged = declared.as_ref().map(|d| c.judge(&description, d, top));
            let verdict = judged.as_ref().map(|j| j.verdict.as_str());
            let pct = |bp: u32| format!("{}.{}%", bp / 100, bp % 100 / 10);
            if json {
                let v = serde_json::json!({
                    "description": description,
                    "classifier_version": ledger::hs::classifier::CLASSIFIER_VERSION,
                    "verdict": verdict,
                    "declared_confidence": judged.as_ref().map(|j| serde_json::json!({
                        "subheading": j.confidence, "heading": j.heading_confidence,
                        "chapter": j.chapter_confidence
                    })),
                    "suggestions": sugg.iter().map(|s| serde_json::json!({
                        "hs6": s.hs6, "score": s.score, "description": s.description
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("     code     confidence");
                for (i, s) in sugg.iter().enumerate() {
                    let bar = "#".repeat((s.score / 500) as usize);
                    println!(
                        "{:>2}. {}.{}  {:>6}  {:<20} {}",
                        i + 1,
                        &s.hs6[..4.min(s.hs6.len())],
                        s.hs6.get(4..).unwrap_or(""),
                        pct(s.score),
                        bar,
                        s.description
                    );
                }
                if let (Some(d), Some(j)) = (declared, judged) {
                    println!(
                        "declared {d}: {} (confidence: subheading {}, heading {}, chapter {})",
                        j.verdict,
                        pct(j.confidence),
                        pct(j.heading_confidence),
                        pct(j.chapter_confidence)
                    );
                }
            }
        }
        Cmd::Verify {
            node,
            party,
            keys,
            genesis,
            quorum,
            file,
            genesis_file,
            ca,
            trust,
            rejudge,
            nomenclature: nom,
        } => match (file, party, keys, genesis) {
            (Some(f), party, keys, _) => {
                let g = genesis_file
                    .ok_or_else(|| anyhow!("--genesis-file is required with --file"))?;
                let cfg = load_genesis(&g)?;
                let blocks = verify_file(&f, &cfg)?;
                if rejudge {
                    let (Some(party), Some(keys)) = (party, keys) else {
                        bail!("--rejudge needs --as (a customs party) and --keys");
                    };
                    let conn = Conn {
                        node: String::new(),
                        party,
                        keys,
                        genesis: g,
                        quorum: None,
                        node_party: None,
                        ca: None,
                    };
                    rejudge_chain(
                        &blocks,
                        &cfg,
                        &conn.party,
                        conn.decryption_keys()?,
                        load_nomenclature(nom.as_deref())?,
                    )?;
                }
            }
            (None, Some(party), Some(keys), Some(genesis)) => {
                let conn = Conn {
                    node: node.unwrap_or_else(|| "http://127.0.0.1:8101".into()),
                    party,
                    keys,
                    genesis,
                    quorum,
                    node_party: None,
                    ca,
                };
                verify_node(&conn, trust.as_deref()).await?
            }
            _ => bail!(
                "give --as, --keys and --genesis (and --node) to verify a node's chain, or --file with --genesis-file to verify an export"
            ),
        },
        Cmd::CheckCheckpoints {
            nodes,
            files,
            heights,
            party,
            keys,
            genesis,
            ca,
        } => {
            audit::check_checkpoints(
                &nodes,
                &party,
                &keys,
                &genesis,
                &files,
                &heights,
                ca.as_deref(),
            )
            .await?
        }
        Cmd::Export { conn, out } => export(&conn, &out).await?,
        Cmd::Disclose {
            conn,
            tx_id,
            path,
            out,
        } => {
            let mut trust = conn.trust()?;
            let mut c = conn.client().await?;
            let id = parse_id(&tx_id)?;
            let p = c
                .inner
                .get_transaction(c.signed(
                    "/customs.v1.Ledger/GetTransaction",
                    proto::v1::GetTransactionRequest {
                        tx_id: id.0.to_vec(),
                    },
                ))
                .await
                .map_err(status_error)?
                .into_inner();
            let (t, _) = trust.transaction(&mut c, &p).await?;
            let opened = disclosure::open(&t.stx.tx, &conn.party, &conn.decryption_keys()?)
                .map_err(|e| anyhow!("{e}"))?;
            let config = trust.proof(&mut c, &t.checkpoint.checkpoint).await?;
            let mut d = disclosure::disclose(
                &opened,
                &path,
                &t.stx,
                &t.header,
                u64::from(t.index),
                t.tx_proof,
                t.block_proof,
                t.checkpoint,
            )
            .map_err(|e| anyhow!("{e}"))?;
            // Only when the chain has moved on from the trusted config: a
            // verifier then follows it to the checkpoint.
            if !config.blocks.is_empty() {
                d.config = Some(config);
            }
            std::fs::write(&out, serde_json::to_string_pretty(&d)?)?;
            println!(
                "disclosure of {path} in {tx_id} written to {}",
                out.display()
            );
        }
        Cmd::Bench {
            nodes,
            net,
            party,
            workload,
            duration,
            concurrency,
            batch,
            rate,
            prebuild,
            json,
            svg,
        } => {
            if concurrency == 0 || duration == 0 || batch == 0 {
                bail!("--concurrency, --batch and --duration must be positive");
            }
            if batch > 1 && rate > 0 {
                bail!("--batch groups a closed loop's events; with --rate each event is its own call");
            }
            bench::run(bench::BenchArgs {
                nodes,
                net,
                party,
                workload,
                duration: std::time::Duration::from_secs(duration),
                concurrency,
                batch,
                rate,
                prebuild,
                json,
                svg,
            })
            .await?
        }
        Cmd::Kpi {
            conn,
            by,
            period,
            days,
            value,
            chart,
            json,
        } => kpi::run(&conn, &by, &period, days, &value, &chart, json).await?,
        Cmd::Explorer { conn, listen } => explorer::run(conn, listen).await?,
        Cmd::Route {
            conn,
            from,
            chapter,
            mode,
            offices,
            min_evidence,
            backtest,
            json,
        } => {
            if backtest {
                kpi::backtest(&conn, min_evidence, json).await?
            } else {
                let mode = parse_mode(&mode)?;
                kpi::route(&conn, &from, &chapter, mode, &offices, min_evidence, json).await?
            }
        }
        Cmd::Demo { net } => demo::run(demo::DemoArgs { net }).await?,
        Cmd::Governance { cmd } => governance::run(cmd).await?,
        Cmd::Quote {
            basket,
            rates,
            genesis,
            node,
            party,
            keys,
            ca,
            json,
        } => match rates {
            Some(r) => quote::run(&basket, &r, genesis.as_deref(), json)?,
            None => {
                let (Some(party), Some(keys), Some(genesis)) = (party, keys, genesis) else {
                    bail!("give --rates to quote offline, or --as, --keys and --genesis to ask a node");
                };
                let conn = Conn {
                    node,
                    party,
                    keys,
                    genesis,
                    quorum: None,
                    node_party: None,
                    ca,
                };
                quote::ask(&conn, &basket, json).await?
            }
        },
        Cmd::VerifyDisclosure {
            file,
            genesis,
            quorum,
        } => {
            let cfg = load_genesis(&genesis)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let d: disclosure::FieldDisclosure =
                serde_json::from_str(&text).context("not a disclosure proof file")?;
            let v = disclosure::verify_disclosure_with(&d, &cfg, quorum)
                .map_err(|e| anyhow!("{e}"))?;
            println!("VALID: {} = {:?}", v.field.path, v.field.value);
            println!(
                "  in {} {} of shipment {} by {}, block {}, cosigned by {}",
                v.kind.name(),
                v.tx_id,
                v.shipment_id,
                v.submitter,
                v.height,
                v.cosigners.join(", ")
            );
        }
    }
    Ok(())
}

/// Seal and sign the event in `text` (named `name`) as the caller.
fn seal_event(
    conn: &Conn,
    cfg: &ChainConfig,
    name: &str,
    text: &str,
) -> Result<ledger::SignedTransaction> {
    let ev: EventFile =
        serde_json::from_str(text).with_context(|| format!("{name} is not an event file"))?;
    let mut fields = ev.fields;
    if let Some(d) = &ev.declaration {
        fields.extend(d.to_fields());
    }
    let draft = Draft {
        chain_id: cfg.chain_id.clone(),
        kind: ev.kind,
        shipment_id: ev.shipment_id,
        submitter: conn.party.clone(),
        claimed_time_ms: now_ms(),
        fields,
        shipment_parties: ev.shipment_parties,
        governance: None,
    };
    Ok(disclosure::seal(cfg, &draft)
        .map_err(|e| anyhow!("{e}"))?
        .sign(&conn.signing_key()?)?)
}

async fn submit(conn: &Conn, name: &str, text: &str, wait: bool) -> Result<()> {
    let mut c = conn.client().await?;
    let cfg = conn.current_config(&mut c).await?;
    let stx = seal_event(conn, &cfg, name, text)?;
    let id = stx.id()?;
    let r = send(&mut c, &stx, wait).await?.map_err(status_error)?;
    if !r.rejections.is_empty() {
        for rj in &r.rejections {
            eprintln!("rejected: {}: {}", rj.code, rj.message);
        }
        bail!("transaction {id} was rejected");
    }
    println!("tx {id} committed at height {} index {}", r.height, r.index);
    if let Some(res) = r.result {
        print_result(&cfg, &stx, &res, &conn.party, &conn.decryption_keys()?);
    }
    Ok(())
}

/// Submit `stx` through `c` (waiting for its commit if `wait`); the outer
/// error is ours (it does not encode), the inner one the node's.
async fn send(
    c: &mut Client,
    stx: &ledger::SignedTransaction,
    wait: bool,
) -> Result<std::result::Result<proto::v1::SubmitResponse, tonic::Status>> {
    let req = c.signed(
        "/customs.v1.Ledger/Submit",
        proto::v1::SubmitRequest {
            signed_tx: stx.encode()?,
            wait_for_commit: wait,
        },
    );
    Ok(c.inner.submit(req).await.map(|r| r.into_inner()))
}

/// Print what `party` may read of a committed result: its status and the
/// outcome parts its keys open (the rest is named as sealed).
fn print_result(
    cfg: &ChainConfig,
    stx: &ledger::SignedTransaction,
    r: &proto::v1::TxResult,
    party: &str,
    keys: &[DecryptionKey],
) {
    match outcomes::read(cfg, stx, r, party, keys) {
        Ok(reading) => {
            for l in outcomes::lines(&reading) {
                println!("  {l}");
            }
        }
        Err(e) => println!("  result cannot be read: {e}"),
    }
}

fn print_opened(t: &proofs::ProvenTx, party: &str, keys: &[DecryptionKey]) {
    match disclosure::open(&t.stx.tx, party, keys) {
        Ok(fields) => {
            let hidden = t.stx.tx.sealed.len() + t.stx.tx.public.len() - fields.len();
            for f in fields {
                let class = if f.field.class == FieldClass::Public {
                    "public"
                } else {
                    "sealed"
                };
                println!("    {:<36} {:<7} {}", f.field.path, class, f.field.value);
            }
            if hidden > 0 {
                println!("    ({hidden} sealed fields not readable by {party})");
            }
        }
        Err(e) => println!("    cannot open: {e}"),
    }
}

async fn show_tx(conn: &Conn, id: &Hash32) -> Result<()> {
    let mut trust = conn.trust()?;
    let mut c = conn.client().await?;
    let p = c
        .inner
        .get_transaction(c.signed(
            "/customs.v1.Ledger/GetTransaction",
            proto::v1::GetTransactionRequest {
                tx_id: id.0.to_vec(),
            },
        ))
        .await
        .map_err(status_error)?
        .into_inner();
    let (t, cfg) = trust.transaction(&mut c, &p).await?;
    println!(
        "tx {} {} shipment {} by {} — block {} index {} (proof OK, checkpoint {} cosigned by {})",
        t.tx_id,
        t.stx.tx.kind.name(),
        t.stx.tx.shipment_id,
        t.stx.tx.submitter,
        t.header.height,
        t.index,
        t.checkpoint.checkpoint.height,
        t.cosigners.join(",")
    );
    let keys = conn.decryption_keys()?;
    if let Some(r) = &p.result {
        print_result(&cfg, &t.stx, r, &conn.party, &keys);
    }
    print_opened(&t, &conn.party, &keys);
    Ok(())
}

async fn history(conn: &Conn, shipment: &str, json: bool) -> Result<()> {
    let mut trust = conn.trust()?;
    let keys = conn.decryption_keys()?;
    let mut c = conn.client().await?;
    let mut token = String::new();
    let mut n = 0;
    loop {
        let h = c
            .inner
            .get_shipment_history(c.signed(
                "/customs.v1.Ledger/GetShipmentHistory",
                proto::v1::GetShipmentHistoryRequest {
                    shipment_id: shipment.to_string(),
                    page_size: 50,
                    page_token: token.clone(),
                },
            ))
            .await
            .map_err(status_error)?
            .into_inner();
        for e in &h.events {
            let (t, cfg) = trust
                .transaction(&mut c, e)
                .await
                .with_context(|| format!("event {n} of {shipment} fails verification"))?;
            n += 1;
            let opened = disclosure::open(&t.stx.tx, &conn.party, &keys).unwrap_or_default();
            if json {
                let v = serde_json::json!({
                    "height": t.header.height, "index": t.index, "tx_id": t.tx_id.to_hex(),
                    "kind": t.stx.tx.kind.name(), "submitter": t.stx.tx.submitter,
                    "time_ms": t.header.timestamp_ms, "status": e.result.as_ref().map(|r| r.status.clone()),
                    "fields": opened.iter().map(|f| (f.field.path.clone(), f.field.value.clone())).collect::<std::collections::BTreeMap<_,_>>(),
                    "proof": "verified",
                });
                println!("{v}");
            } else {
                println!(
                    "#{n:<3} h{:<5} {:<24} by {:<11} status {:<10} proof OK",
                    t.header.height,
                    t.stx.tx.kind.name(),
                    t.stx.tx.submitter,
                    e.result.as_ref().map(|r| r.status.as_str()).unwrap_or("-"),
                );
                if let Some(r) = &e.result {
                    print_result(&cfg, &t.stx, r, &conn.party, &keys);
                }
                print_opened(&t, &conn.party, &keys);
                if t.stx.tx.kind.carries_declaration() {
                    let map = opened
                        .iter()
                        .map(|f| (f.field.path.clone(), f.field.value.clone()))
                        .collect();
                    let e = explorer::co2_of(&t.stx.tx, &map);
                    if let (Some(g), Some(km)) = (e["grams"].as_u64(), e["distance_km"].as_u64()) {
                        println!(
                            "    CO2e estimate {:.1} kg over {km} km ({})",
                            g as f64 / 1000.0,
                            ledger::co2::FACTORS_EDITION
                        );
                    }
                }
            }
        }
        if h.next_page_token.is_empty() {
            break;
        }
        token = h.next_page_token;
    }
    if n == 0 {
        bail!("no events for shipment {shipment}");
    }
    Ok(())
}

async fn blocks(conn: &Conn, from: u64, count: Option<u64>) -> Result<()> {
    let mut c = conn.client().await?;
    let mut s = c
        .inner
        .stream_blocks(c.signed(
            "/customs.v1.Ledger/StreamBlocks",
            proto::v1::StreamBlocksRequest { from_height: from },
        ))
        .await
        .map_err(status_error)?
        .into_inner();
    let mut seen = 0;
    while let Some(b) = s.message().await.map_err(status_error)? {
        let block = Block::decode(&b.block).context("block does not decode")?;
        if block.hash()?.0.as_slice() != b.block_hash.as_slice() {
            bail!("block {} hash differs from what the node claims", b.height);
        }
        println!(
            "block {:>6} {} txs {:>4} proposer {:<11} term {} index {}",
            block.header.height,
            block.hash()?,
            block.header.tx_count,
            block.header.proposer,
            block.header.raft_term,
            block.header.raft_index
        );
        seen += 1;
        if count.is_some_and(|c| seen >= c) {
            break;
        }
    }
    Ok(())
}

pub(crate) async fn fetch_chain(
    conn: &Conn,
    bar: &indicatif::ProgressBar,
) -> Result<(Vec<Vec<u8>>, proto::v1::CosignedCheckpoint)> {
    let mut c = conn.client().await?;
    let cp = c.newest_checkpoint().await?;
    bar.set_length(cp.height + 1);
    let mut s = c
        .inner
        .stream_blocks(c.signed(
            "/customs.v1.Ledger/StreamBlocks",
            proto::v1::StreamBlocksRequest { from_height: 0 },
        ))
        .await
        .map_err(status_error)?
        .into_inner();
    let mut out = Vec::new();
    while let Some(b) = s.message().await.map_err(status_error)? {
        if b.height != out.len() as u64 {
            bail!(
                "node streamed height {} where {} was expected",
                b.height,
                out.len()
            );
        }
        out.push(b.block);
        bar.inc(1);
        if b.height >= cp.height {
            break;
        }
    }
    Ok((out, cp))
}

pub(crate) fn progress(len: u64, msg: &str) -> indicatif::ProgressBar {
    progress_of(len, msg, "blocks")
}

/// A progress bar over `len` things called `unit`.
fn progress_of(len: u64, msg: &str, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{msg:12}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}})"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(msg.to_string());
    bar
}

/// Verify a node's chain from genesis. In order: the newest checkpoint's
/// cosignatures (each must verify; a quorum must have signed), the served
/// blocks against that checkpoint's tree (a departure is located by
/// bisection over the node's stored checkpoints and reported with the
/// block height and the parties whose signatures conflict with it), the
/// replay of every block, then consistency with the trusted checkpoint.
pub(crate) async fn verify_node(conn: &Conn, trust: Option<&Path>) -> Result<()> {
    let (genesis, _) = conn.trusted()?;
    let fetch = progress(0, "fetching");
    let (chain, cp) = fetch_chain(conn, &fetch).await?;
    fetch.finish();
    // The checkpoint is signed by the parties of the config in force at its
    // height, followed through the served chain's governance.
    let at = trust::config_from_chain(&genesis, &chain, cp.height).with_context(|| {
        format!(
            "the chain config at height {} cannot be followed",
            cp.height
        )
    })?;
    let q = conn.quorum.unwrap_or(at.checkpoint_quorum);
    let (checkpoint, signers) = proofs::checkpoint(&cp, &at, q)?;
    let cfg = genesis;
    let leaves = proofs::block_leaves(&chain)
        .map_err(|(h, why)| anyhow!("chain verification failed at block {h}: {why}"))?;
    let mut c = conn.client().await?;
    if proofs::served_matches(&leaves, &checkpoint.checkpoint).is_err() {
        return Err(audit::locate_fork(&mut c, &at, &leaves, &checkpoint).await);
    }
    let bar = progress(chain.len() as u64, "verifying");
    let replay = ledger::verify_chain(&cfg, chain.iter().cloned().map(Ok), |h| {
        bar.set_position(h + 1)
    });
    bar.finish();
    let report = match replay {
        Ok(r) => r,
        Err(f) => {
            // The headers are the cosigned ones: either a body was edited
            // after commit, or the signers cosigned an invalid history.
            let edited = usize::try_from(f.height)
                .ok()
                .and_then(|h| chain.get(h))
                .and_then(|b| Block::decode(b).ok())
                .is_some_and(|b| !b.body_matches_header());
            let blame = if edited {
                format!(
                    "its body does not match its header, which is the one cosigned at height {} by {}: the block was altered after commit",
                    checkpoint.checkpoint.height,
                    signers.join(", ")
                )
            } else {
                format!(
                    "the checkpoint at height {} cosigned by {} commits to this invalid history",
                    checkpoint.checkpoint.height,
                    signers.join(", ")
                )
            };
            bail!("chain verification failed at {f}; {blame}");
        }
    };
    if report.checkpoint != checkpoint.checkpoint {
        bail!(
            "the node's cosigned checkpoint (height {}, root {}) does not match the chain it served (root {})",
            checkpoint.checkpoint.height,
            checkpoint.checkpoint.tree_root,
            report.checkpoint.tree_root
        );
    }
    if let Some(t) = trust {
        audit::trusted(&mut c, &at, t, &leaves, &checkpoint).await?;
        std::fs::write(t, serde_json::to_string_pretty(&checkpoint)?)?;
    }
    println!(
        "chain OK: {} blocks, {} transactions, tree root {} at height {}, cosigned by {}",
        report.blocks,
        report.transactions,
        report.checkpoint.tree_root,
        report.checkpoint.height,
        signers.join(", ")
    );
    // A customs node that disputes an outcome it was asked to vouch for
    // says so in its status; the auditor hears it named.
    let status = c.status().await?;
    if status.divergence_height > 0 {
        bail!(
            "node {} disputes block {} and cosigns nothing from it on: {}",
            status.node_party,
            status.divergence_height,
            status.divergence
        );
    }
    Ok(())
}

const CHAIN_MAGIC: &[u8; 8] = b"CLCHAIN1";

async fn export(conn: &Conn, out: &Path) -> Result<()> {
    let bar = progress(0, "exporting");
    let (chain, _) = fetch_chain(conn, &bar).await?;
    bar.finish();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    f.write_all(CHAIN_MAGIC)?;
    for b in &chain {
        f.write_all(&(b.len() as u32).to_le_bytes())?;
        f.write_all(b)?;
    }
    f.flush()?;
    println!("exported {} blocks to {}", chain.len(), out.display());
    Ok(())
}

/// Recompute every declaration's committed outcome as customs party
/// `party`, replaying the chain in commit order exactly as applying it
/// does: judge each block's declarations under the config in force before
/// it, against the learned state one block behind (ADR 0016), then learn
/// from the block under the config after it. Fails naming each transaction
/// whose outcome differs.
fn rejudge_chain(
    blocks: &[Vec<u8>],
    cfg: &ChainConfig,
    party: &str,
    keys: Vec<DecryptionKey>,
    nom: Nomenclature,
) -> Result<()> {
    let mut v = ledger::validate::CustomsValidator::new(party, keys, std::sync::Arc::new(nom));
    let pinned = cfg.nomenclature.semantic;
    if pinned != Hash32::ZERO {
        let path = ledger::hs::semantic::locate().ok_or_else(|| {
            anyhow!("the chain pins semantic table {pinned}: run `customsctl hs distil` or set CUSTOMS_HS_SEMANTIC")
        })?;
        let table = ledger::hs::semantic::SemanticTable::load_pinned(&path, &pinned.0)
            .map_err(|e| anyhow!("{e}"))?;
        v = v.with_semantic(std::sync::Arc::new(table));
    }
    // The config in force changes with governance (outcome key, risk
    // thresholds).
    let mut cfg = cfg.clone();
    let bar = progress(blocks.len() as u64, "re-judging");
    let mut judged = 0u64;
    let mut differ = Vec::new();
    for bytes in blocks {
        let b = Block::decode(bytes).map_err(|e| anyhow!("block does not decode: {e}"))?;
        for (stx, r) in b.txs.iter().zip(&b.results) {
            if !stx.tx.kind.carries_declaration() {
                continue;
            }
            judged += 1;
            match v.admit(&cfg, stx, &r.tx_id) {
                Ok(mine) if mine.sealed == r.outcome => {}
                Ok(_) => differ.push(format!(
                    "block {} tx {}: the committed outcome differs from this recomputation (proposer {})",
                    b.header.height, r.tx_id, b.header.proposer
                )),
                Err(e) => differ.push(format!(
                    "block {} tx {}: cannot judge it as {party}: {}: {}",
                    b.header.height, r.tx_id, e.code, e.message
                )),
            }
        }
        cfg = ledger::chain::config_after(&cfg, &b)
            .map_err(|e| anyhow!("replaying the config history: {e}"))?;
        let facts = v.facts(&b);
        v.learn_facts(&cfg, b.header.height, facts);
        bar.inc(1);
    }
    bar.finish();
    if !differ.is_empty() {
        for d in &differ {
            eprintln!("REJUDGE MISMATCH {d}");
        }
        bail!(
            "{} of {judged} committed declaration outcomes differ from their recomputation",
            differ.len()
        );
    }
    println!("rejudge OK: {judged} declaration outcomes recomputed as {party}, all identical");
    Ok(())
}

fn verify_file(path: &Path, cfg: &ChainConfig) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rest = data
        .strip_prefix(CHAIN_MAGIC.as_slice())
        .ok_or_else(|| anyhow!("{} is not an exported chain file", path.display()))?;
    let mut blocks = Vec::new();
    let mut r = rest;
    while !r.is_empty() {
        let (len, tail) = r
            .split_at_checked(4)
            .ok_or_else(|| anyhow!("truncated length at block {}", blocks.len()))?;
        let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if n > codec::MAX_RECORD_BYTES {
            bail!("block {} claims {n} bytes", blocks.len());
        }
        let (b, tail) = tail
            .split_at_checked(n)
            .ok_or_else(|| anyhow!("truncated block {}", blocks.len()))?;
        blocks.push(b.to_vec());
        r = tail;
    }
    let bar = progress(blocks.len() as u64, "verifying");
    let report = ledger::verify_chain(cfg, blocks.iter().cloned().map(Ok), |h| {
        bar.set_position(h + 1)
    })
    .map_err(|f| anyhow!("chain verification failed at {f}"))?;
    bar.finish();
    println!(
        "chain OK: {} blocks, {} transactions, tree root {} at height {}",
        report.blocks, report.transactions, report.checkpoint.tree_root, report.checkpoint.height
    );
    Ok(blocks)
}
