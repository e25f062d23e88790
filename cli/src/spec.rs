//! The network spec file and what `customsctl genesis` makes from it:
//! keys for every party (owner-only files), the genesis chain config, and
//! one node config per party, all under one output directory.

use anyhow::{bail, Context, Result};
use ledger::config::{
    default_disclosure, default_events, ChainConfig, Limits, NomenclaturePin, Party, Role,
};
use ledger::crypto::Keypair;
use ledger::disclosure::DecryptionKey;
use ledger::hash::Hash32;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One party of the network spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartySpec {
    /// Party id (`[a-z0-9-]`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// EORI number.
    #[serde(default)]
    pub eori: Option<String>,
    /// Raft voter (customs only).
    #[serde(default)]
    pub validator: bool,
    /// Raft node id (unique, positive).
    pub node_id: u64,
    /// Host the node listens on.
    #[serde(default = "localhost")]
    pub host: String,
    /// libp2p TCP port.
    pub p2p_port: u16,
    /// gRPC port.
    pub grpc_port: u16,
    /// Metrics port (0 = off).
    #[serde(default)]
    pub metrics_port: u16,
    /// Whether this party's node runs in this network. A party without a
    /// running node (false) is still registered, with keys, but is left out
    /// of the other nodes' peer lists, so no leader tries to replicate to it.
    #[serde(default = "yes")]
    pub runs_node: bool,
}

fn yes() -> bool {
    true
}

fn localhost() -> String {
    "127.0.0.1".into()
}

/// The network spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Chain id.
    pub chain_id: String,
    /// Genesis time (ms since epoch); 0 = now.
    #[serde(default)]
    pub genesis_time_ms: u64,
    /// Cosignatures an auditor requires on a checkpoint.
    pub checkpoint_quorum: u32,
    /// Risk score that flags review.
    #[serde(default = "review")]
    pub risk_review_at: u8,
    /// Risk score that recommends inspection.
    #[serde(default = "inspect")]
    pub risk_inspect_at: u8,
    /// Parties.
    pub party: Vec<PartySpec>,
    /// Serve plaintext gRPC on non-loopback addresses (container networks).
    #[serde(default)]
    pub allow_plaintext_remote: bool,
    /// Issue a network CA and a TLS certificate per node; nodes then serve
    /// gRPC over TLS only and clients pin the CA (`tls/ca.crt`).
    #[serde(default)]
    pub tls: bool,
}

fn review() -> u8 {
    40
}
fn inspect() -> u8 {
    70
}

/// libp2p peer id (base58 identity multihash of the protobuf-encoded
/// Ed25519 public key), computed without libp2p.
pub fn peer_id(public: &[u8; 32]) -> String {
    let mut bytes = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    bytes.extend_from_slice(public);
    bs58::encode(bytes).into_string()
}

/// Paths of a party's key files under `out`.
pub fn key_paths(out: &Path, party: &str) -> (PathBuf, PathBuf, PathBuf) {
    let k = out.join("keys");
    (
        k.join(format!("{party}.sign")),
        k.join(format!("{party}.x25519")),
        k.join(format!("{party}.node")),
    )
}

/// Write a secret key file with mode 0600, refusing to overwrite.
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<()> {
    write_private(path, &format!("{}\n", hex::encode(secret)))
}

/// Write `contents` to a new file readable by its owner only (mode 0600,
/// created exclusively).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create key file {} (does it exist already?)",
            path.display()
        )
    })?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Read a secret key file (mode must be owner-only).
pub fn read_secret(path: &Path) -> Result<[u8; 32]> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "key file {} is group/world readable; chmod 600 it",
                path.display()
            );
        }
    }
    let _ = meta;
    let text = std::fs::read_to_string(path)?;
    let v = hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
    v.try_into()
        .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()))
}

/// Load a spec file.
pub fn load_spec(path: &Path) -> Result<NetworkSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read network spec {}", path.display()))?;
    let spec: NetworkSpec = toml::from_str(&text)
        .with_context(|| format!("invalid network spec {}", path.display()))?;
    let mut ids = std::collections::BTreeSet::new();
    for p in &spec.party {
        if p.validator && !p.runs_node {
            bail!("party {}: a validator must run its node", p.id);
        }
        if p.node_id == 0 || !ids.insert(p.node_id) {
            bail!("party {}: node_id must be positive and unique", p.id);
        }
    }
    Ok(spec)
}

/// Generate keys, genesis and node configs for `spec` under `out`.
/// `nomenclature` is the converted HS table whose hash is pinned, `semantic`
/// the distilled semantic table (ADR 0020).
pub fn generate(
    spec: &NetworkSpec,
    out: &Path,
    nomenclature: Option<&Path>,
    semantic: Option<&Path>,
) -> Result<ChainConfig> {
    std::fs::create_dir_all(out.join("keys"))?;
    let nom_hash = match nomenclature {
        Some(p) => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("cannot read nomenclature {}", p.display()))?;
            ledger::hash::sha256(&bytes)
        }
        None => Hash32::ZERO,
    };
    let semantic_hash = match semantic {
        Some(p) => {
            let t = ledger::hs::semantic::SemanticTable::load(p)
                .map_err(|e| anyhow::anyhow!("semantic table {}: {e}", p.display()))?;
            ledger::Bytes(t.hash())
        }
        None => Hash32::ZERO,
    };
    let genesis_time_ms = if spec.genesis_time_ms == 0 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    } else {
        spec.genesis_time_ms
    };
    let mut parties = Vec::new();
    for p in &spec.party {
        let (sign_p, x_p, node_p) = key_paths(out, &p.id);
        let sign = Keypair::generate();
        let x = DecryptionKey::generate();
        let node = Keypair::generate();
        write_secret(&sign_p, &sign.seed())?;
        write_secret(&x_p, &x.secret())?;
        write_secret(&node_p, &node.seed())?;
        let mut roles = p.roles.clone();
        roles.sort();
        parties.push(Party {
            id: p.id.clone(),
            name: p.name.clone(),
            roles,
            eori: p.eori.clone(),
            signing_key: sign.public(),
            encryption_key: x.public(),
            peer_id: peer_id(&node.public().0),
            validator: p.validator,
            revoked: false,
        });
    }
    let mut cfg = ChainConfig {
        chain_id: spec.chain_id.clone(),
        seq: 0,
        parties,
        disclosure: default_disclosure(),
        events: default_events(),
        nomenclature: NomenclaturePin {
            edition: "HS2022".into(),
            sha256: nom_hash,
            semantic: semantic_hash,
        },
        classifier_version: ledger::hs::classifier::CLASSIFIER_VERSION.into(),
        risk_model_version: ledger::validate::risk::RISK_MODEL_VERSION.into(),
        risk_review_at: spec.risk_review_at,
        risk_inspect_at: spec.risk_inspect_at,
        risk_policy: ledger::validate::risk::RiskPolicy::default(),
        exchange_rates: Vec::new(),
        tables: ledger::tariff::TablePins::builtin(),
        checkpoint_quorum: spec.checkpoint_quorum,
        limits: Limits::default(),
        outcome_key: ledger::outcome::OutcomeKey {
            id: Hash32::ZERO,
            wraps: Vec::new(),
        },
    };
    // A fresh outcome secret, wrapped to the parties that read `Security`;
    // nobody keeps it in the clear.
    cfg.outcome_key = ledger::outcome::OutcomeKey::generate(&cfg)?;
    cfg.normalize();
    cfg.validate()?;
    std::fs::write(
        out.join("genesis.json"),
        serde_json::to_string_pretty(&cfg)?,
    )?;
    std::fs::write(out.join("genesis_time_ms"), format!("{genesis_time_ms}\n"))?;
    for p in &spec.party {
        let dir = out.join(&p.id);
        std::fs::create_dir_all(&dir)?;
        let mut toml = String::new();
        toml += &format!("party = {:?}\nnode_id = {}\n", p.id, p.node_id);
        toml += "data_dir = \"data\"\ngenesis = \"../genesis.json\"\n";
        toml += &format!("genesis_time_ms = {genesis_time_ms}\n");
        toml += &format!(
            "signing_key = \"../keys/{0}.sign\"\nencryption_key = \"../keys/{0}.x25519\"\nnode_key = \"../keys/{0}.node\"\n",
            p.id
        );
        toml += &format!(
            "p2p_listen = \"/ip4/{}/tcp/{}\"\n",
            listen_host(&p.host),
            p.p2p_port
        );
        toml += &format!(
            "grpc_listen = \"{}:{}\"\n",
            listen_host(&p.host),
            p.grpc_port
        );
        if p.metrics_port != 0 {
            // Metrics stay on loopback; an operator exposes them on purpose.
            toml += &format!("metrics_listen = \"127.0.0.1:{}\"\n", p.metrics_port);
        }
        if spec.tls {
            toml += &format!(
                "tls_cert = \"../{}\"\ntls_key = \"../{}\"\n",
                crate::tls::cert_path(&p.id),
                crate::tls::key_path(&p.id)
            );
        }
        if spec.allow_plaintext_remote {
            toml += "allow_plaintext_remote = true\n";
        }
        if p.roles.contains(&Role::Customs) && nomenclature.is_some() {
            toml += "nomenclature = \"../hs2022.tsv\"\n";
        }
        if p.roles.contains(&Role::Customs) && semantic.is_some() {
            toml += "semantic = \"../hs-minilm.sem\"\n";
        }
        for q in &spec.party {
            if q.id == p.id || !q.runs_node {
                continue;
            }
            toml += &format!(
                "\n[[peers]]\nnode_id = {}\nparty = {:?}\np2p_addr = \"/{}/{}/tcp/{}\"\nvoter = {}\n",
                q.node_id,
                q.id,
                addr_proto(&q.host),
                q.host,
                q.p2p_port,
                q.validator
            );
        }
        std::fs::write(dir.join("node.toml"), toml)?;
    }
    if spec.tls {
        let nodes: Vec<(&str, &str)> = spec
            .party
            .iter()
            .filter(|p| p.runs_node)
            .map(|p| (p.id.as_str(), p.host.as_str()))
            .collect();
        crate::tls::issue(out, &spec.chain_id, &nodes)?;
    }
    if let Some(p) = nomenclature {
        std::fs::copy(p, out.join("hs2022.tsv"))?;
    }
    if let Some(p) = semantic {
        // The table is large and never written in place: a link will do.
        let to = out.join("hs-minilm.sem");
        let _ = std::fs::remove_file(&to);
        if std::fs::hard_link(p, &to).is_err() {
            std::fs::copy(p, &to)?;
        }
    }
    Ok(cfg)
}

/// Containers listen on all interfaces of their private network; local
/// processes on the loopback address they are given.
fn listen_host(host: &str) -> String {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        host.to_string()
    } else {
        "0.0.0.0".into()
    }
}

fn addr_proto(host: &str) -> &'static str {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        "ip4"
    } else {
        "dns4"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_matches_libp2p_format() {
        // Ed25519 peer ids printed by libp2p start with 12D3KooW.
        let k = Keypair::from_seed(&[1; 32]);
        assert!(peer_id(&k.public().0).starts_with("12D3KooW"));
    }
}
