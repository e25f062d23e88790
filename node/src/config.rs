//! Node configuration: defaults, then a TOML file, then environment
//! variables (`CUSTOMS_<KEY>`, e.g. `CUSTOMS_GRPC_LISTEN`), then command-line
//! overrides (`--set key=value`). Unknown keys are errors at every layer.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A peer node this node knows how to reach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Raft node id.
    pub node_id: u64,
    /// Party id in the chain config.
    pub party: String,
    /// libp2p multiaddr, e.g. `/ip4/127.0.0.1/tcp/7001`.
    pub p2p_addr: String,
    /// Whether this node starts as a Raft voter (customs validators).
    #[serde(default)]
    pub voter: bool,
}

/// Batching of submissions into Raft entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most transactions per entry.
    pub max_txs: usize,
    /// Longest a pending transaction waits for companions (ms) while no
    /// earlier batch is in flight.
    pub max_delay_ms: u64,
    /// Longest it waits while an earlier batch is still in flight (ms),
    /// closing early once every earlier batch has applied.
    pub busy_delay_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_txs: 2048,
            max_delay_ms: 5,
            busy_delay_ms: 50,
        }
    }
}

/// Raft timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// Heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Election timeout range (ms).
    pub election_min_ms: u64,
    /// Election timeout range (ms).
    pub election_max_ms: u64,
    /// Build a snapshot after this many applied entries.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot (lagging followers catch up from
    /// the log; anyone further behind gets the snapshot).
    pub keep_logs: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            // openraft 0.9 starts the first election only after the leader
            // lease (= election_max_ms) plus this node's election timeout
            // have passed since the last heartbeat: 0.95-1.2 s here, which
            // leaves the rest of the 3 s failover budget for the election
            // and the first commit (ADR 0006). The heartbeat is also
            // openraft's AppendEntries timeout: 100 ms made loaded followers
            // time out and get resent several times more often.
            heartbeat_ms: 150,
            election_min_ms: 350,
            election_max_ms: 600,
            snapshot_every: 5000,
            keep_logs: 1000,
        }
    }
}

/// Everything a node needs to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's party id.
    pub party: String,
    /// This node's Raft id.
    pub node_id: u64,
    /// Directory for the ledger, Raft log and snapshots.
    pub data_dir: PathBuf,
    /// Genesis chain config (JSON).
    pub genesis: PathBuf,
    /// Genesis time (ms since epoch) that all nodes agree on.
    #[serde(default)]
    pub genesis_time_ms: u64,
    /// Ed25519 signing key file (party key).
    pub signing_key: PathBuf,
    /// X25519 decryption key file.
    pub encryption_key: PathBuf,
    /// Ed25519 libp2p node key file.
    pub node_key: PathBuf,
    /// Older X25519 keys kept to open data sealed before a rotation.
    #[serde(default)]
    pub old_encryption_keys: Vec<PathBuf>,
    /// libp2p listen multiaddr.
    #[serde(default = "default_p2p")]
    pub p2p_listen: String,
    /// gRPC listen address.
    #[serde(default = "default_grpc")]
    pub grpc_listen: String,
    /// Prometheus metrics listen address ("" disables).
    #[serde(default)]
    pub metrics_listen: String,
    /// TLS certificate (PEM) for gRPC.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for gRPC.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Serve plaintext gRPC on a non-loopback address (only inside a private network).
    #[serde(default)]
    pub allow_plaintext_remote: bool,
    /// HS nomenclature file (customs nodes).
    #[serde(default)]
    pub nomenclature: Option<PathBuf>,
    /// Distilled semantic table (customs nodes of a chain that pins one;
    /// default: located like the nomenclature).
    #[serde(default)]
    pub semantic: Option<PathBuf>,
    /// Accepted clock skew of signed gRPC requests (ms).
    #[serde(default = "default_skew")]
    pub request_window_ms: u64,
    /// Known peers.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Batching.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Raft timing.
    #[serde(default)]
    pub raft: RaftConfig,
    /// Read the whole Raft log and ledger before starting (checksums, block
    /// bodies against headers, hash links, the ledger tree, the transaction
    /// index), and refuse to start on any damage. On by default; turning it
    /// off only skips the startup walk, blocks are still checked when read.
    #[serde(default = "default_true")]
    pub check_store_on_start: bool,
    /// Fold committed blocks into the Smart Customs KPIs beside the ledger
    /// (`GetKpis`, `PredictClearance`, the KPI metrics). On by default;
    /// off, those calls answer with nothing folded.
    #[serde(default = "default_true")]
    pub kpi: bool,
}

fn default_true() -> bool {
    true
}

fn default_p2p() -> String {
    "/ip4/127.0.0.1/tcp/0".into()
}
fn default_grpc() -> String {
    "127.0.0.1:0".into()
}
fn default_skew() -> u64 {
    60_000
}

const TOP_LEVEL_KEYS: [&str; 20] = [
    "party",
    "node_id",
    "data_dir",
    "genesis",
    "genesis_time_ms",
    "signing_key",
    "encryption_key",
    "node_key",
    "p2p_listen",
    "grpc_listen",
    "metrics_listen",
    "tls_cert",
    "tls_key",
    "allow_plaintext_remote",
    "nomenclature",
    "semantic",
    "request_window_ms",
    "old_encryption_keys",
    "check_store_on_start",
    "kpi",
];

fn parse_scalar(key: &str, raw: &str) -> toml::Value {
    match key {
        "node_id" | "genesis_time_ms" | "request_window_ms" => raw
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(raw.into())),
        "allow_plaintext_remote" | "check_store_on_start" | "kpi" => raw
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .unwrap_or_else(|_| toml::Value::String(raw.into())),
        _ => toml::Value::String(raw.into()),
    }
}

fn set_path(table: &mut toml::Table, key: &str, raw: &str) -> Result<()> {
    match key.split_once('.') {
        None => {
            if !TOP_LEVEL_KEYS.contains(&key) {
                bail!("unknown config key {key:?}");
            }
            table.insert(key.into(), parse_scalar(key, raw));
        }
        Some((section, field)) => {
            let v = match (section, field) {
                ("batch", "max_txs" | "max_delay_ms" | "busy_delay_ms")
                | (
                    "raft",
                    "heartbeat_ms" | "election_min_ms" | "election_max_ms" | "snapshot_every"
                    | "keep_logs",
                ) => toml::Value::Integer(
                    raw.parse::<i64>()
                        .with_context(|| format!("{key} must be an integer"))?,
                ),
                _ => bail!("unknown config key {key:?}"),
            };
            let sub = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match sub {
                toml::Value::Table(t) => {
                    t.insert(field.into(), v);
                }
                _ => bail!("config key {section} must be a table"),
            }
        }
    }
    Ok(())
}

impl NodeConfig {
    /// Load from an optional TOML file, the environment and overrides.
    /// Relative paths in the file are resolved against the file's directory.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<NodeConfig> {
        let mut table = toml::Table::new();
        let mut base = None;
        if let Some(f) = file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read config {}", f.display()))?;
            table = text
                .parse::<toml::Table>()
                .with_context(|| format!("config {} is not valid TOML", f.display()))?;
            base = f.parent().map(Path::to_path_buf);
        }
        for (k, v) in env {
            if let Some(key) = k.strip_prefix("CUSTOMS_") {
                let key = key.to_ascii_lowercase();
                if key == "nomenclature" && !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                    continue;
                }
                if TOP_LEVEL_KEYS.contains(&key.as_str()) {
                    set_path(&mut table, &key, &v)?;
                }
            }
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .with_context(|| format!("override {o:?} must be key=value"))?;
            set_path(&mut table, k.trim(), v.trim())?;
        }
        let mut cfg: NodeConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid node config: {e}"))?;
        if let Some(b) = base {
            cfg.resolve_paths(&b);
        }
        cfg.check()?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.genesis);
        fix(&mut self.signing_key);
        fix(&mut self.encryption_key);
        fix(&mut self.node_key);
        for p in &mut self.old_encryption_keys {
            fix(p);
        }
        for p in [
            &mut self.tls_cert,
            &mut self.tls_key,
            &mut self.nomenclature,
            &mut self.semantic,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
    }

    /// Semantic checks.
    pub fn check(&self) -> Result<()> {
        if self.node_id == 0 {
            bail!("node_id must be positive");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("tls_cert and tls_key go together");
        }
        if self.batch.max_txs == 0 {
            bail!("batch.max_txs must be positive");
        }
        if self.raft.election_min_ms <= self.raft.heartbeat_ms
            || self.raft.election_max_ms <= self.raft.election_min_ms
        {
            bail!("need raft.heartbeat_ms < raft.election_min_ms < raft.election_max_ms");
        }
        let mut ids = std::collections::BTreeSet::new();
        for p in &self.peers {
            if !ids.insert(p.node_id) {
                bail!("duplicate peer node_id {}", p.node_id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
party = "de-customs"
node_id = 1
data_dir = "data"
genesis = "genesis.json"
signing_key = "k.sign"
encryption_key = "k.x25519"
node_key = "k.node"
[batch]
max_txs = 100
"#;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("node.toml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn layers_apply_in_order() {
        let (d, p) = write(BASE);
        let env = vec![
            (
                "CUSTOMS_GRPC_LISTEN".to_string(),
                "127.0.0.1:9999".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let cfg = NodeConfig::load(
            Some(&p),
            env,
            &[
                "batch.max_delay_ms=9".into(),
                "grpc_listen=127.0.0.1:7".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.grpc_listen, "127.0.0.1:7");
        assert_eq!(cfg.batch.max_txs, 100);
        assert_eq!(cfg.batch.max_delay_ms, 9);
        assert_eq!(cfg.data_dir, d.path().join("data"));
        assert_eq!(cfg.raft, RaftConfig::default());
    }

    #[test]
    fn unknown_keys_are_errors_at_every_layer() {
        let (_d, p) = write(&format!("{BASE}\nbogus = 1\n"));
        assert!(NodeConfig::load(Some(&p), vec![], &[])
            .unwrap_err()
            .to_string()
            .contains("bogus"));
        let (_d, p) = write(&format!("{BASE}\n[raft]\nheartbeat = 5\n"));
        assert!(NodeConfig::load(Some(&p), vec![], &[]).is_err());
        let (_d, p) = write(BASE);
        assert!(NodeConfig::load(Some(&p), vec![], &["nope=1".into()]).is_err());
        assert!(NodeConfig::load(Some(&p), vec![], &["batch.nope=1".into()]).is_err());
        assert!(NodeConfig::load(Some(&p), vec![], &["node_id".into()]).is_err());
        assert!(NodeConfig::load(Some(&p), vec![], &["node_id=0".into()]).is_err());
        assert!(NodeConfig::load(Some(&p), vec![], &["batch.max_txs=x".into()]).is_err());
    }
}
