//! A real test network: `customsctl genesis` makes keys, genesis and node
//! configs with free 127.0.0.1 ports; each node is a `customs-node`
//! process. Tests kill, pause, restart and wipe them, and talk to them over
//! gRPC with signed requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod proxy;

use ledger::crypto::Keypair;
use prost::Message;
use proto::v1;
use proto::v1::ledger_client::LedgerClient;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// One `attack=... target=... outcome=... detail=...` line of the harness.
#[derive(Debug)]
pub struct Hostile {
    pub target: String,
    pub outcome: String,
    pub detail: String,
}

pub fn customsctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_customsctl"))
}

pub fn customs_node() -> PathBuf {
    let p = customsctl().with_file_name("customs-node");
    assert!(p.exists(), "customs-node binary not built at {}; run `cargo build -p node` (cargo test --workspace does)", p.display());
    p
}

/// Ports handed out in this process (nodes' ports and fault proxies), so
/// no two are ever the same even though the probe socket is released.
pub static RESERVED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Node ports are chosen below the kernel's ephemeral range, so no outgoing
/// connection (of any process) can take one between the probe and the node's
/// bind; that race made CI fail with "Address already in use" when the probe
/// used port 0. Test processes run in parallel, so each reservation is also a
/// file naming its owner's pid, created atomically and reclaimed once that
/// process has gone.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

fn port_dir() -> PathBuf {
    let d = std::env::temp_dir().join("customs-ledger-test-ports");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn claim(port: u16) -> bool {
    let f = port_dir().join(port.to_string());
    let me = std::process::id();
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&f)
    };
    let mut file = match create() {
        Ok(file) => file,
        Err(_) => {
            let owner: Option<u32> = std::fs::read_to_string(&f)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let alive = owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if alive {
                return false;
            }
            // A dead owner's (or a half-written) file; one claimant wins the
            // removal race, the others see the new file next time round.
            if std::fs::remove_file(&f).is_err() {
                return false;
            }
            match create() {
                Ok(file) => file,
                Err(_) => return false,
            }
        }
    };
    use std::io::Write;
    file.write_all(me.to_string().as_bytes()).unwrap();
    true
}

pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
    // Start each process at its own place in the range so claims rarely meet.
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = PORT_RANGE.start + ((start + k) % span) as u16;
        if !RESERVED.lock().unwrap().insert(p) {
            continue;
        }
        // Ours from now on (claimed first, so our probe never holds a port
        // another process's node is about to bind), and free right now.
        if claim(p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in {PORT_RANGE:?}");
}

pub struct PartyDef {
    pub id: &'static str,
    pub role: &'static str,
    pub validator: bool,
}

pub const STANDARD: [PartyDef; 4] = [
    PartyDef {
        id: "de-customs",
        role: "customs",
        validator: true,
    },
    PartyDef {
        id: "fr-customs",
        role: "customs",
        validator: true,
    },
    PartyDef {
        id: "pl-customs",
        role: "customs",
        validator: true,
    },
    PartyDef {
        id: "carrier",
        role: "carrier",
        validator: false,
    },
];

/// Raft node id of a [`STANDARD`] party's node (`Net::new` numbers them
/// from 1 in that order).
pub fn node_id(party: &str) -> u64 {
    let i = STANDARD
        .iter()
        .position(|d| d.id == party)
        .unwrap_or_else(|| panic!("{party} is not a STANDARD party"));
    i as u64 + 1
}

pub struct Net {
    pub dir: tempfile::TempDir,
    pub parties: Vec<String>,
    pub grpc: BTreeMap<String, u16>,
    /// Real p2p listen port of each node.
    pub p2p: BTreeMap<String, u16>,
    /// Fault proxies between nodes, when made with [`Net::with_links`].
    pub links: Option<proxy::Links>,
    pub procs: BTreeMap<String, Child>,
    pub extra: Vec<String>,
    /// Nodes serve gRPC over TLS with the network's CA (`net/tls/ca.crt`).
    pub tls: bool,
}

impl Net {
    /// Generate a network of `defs` plus extra parties without nodes.
    pub fn new(
        defs: &[PartyDef],
        quorum: u32,
        extra: &[(&str, &str)],
        node_overrides: &str,
    ) -> Net {
        Net::generate(defs, quorum, extra, node_overrides, false)
    }

    /// [`Net::new`] with TLS: genesis issues a CA and node certificates.
    pub fn new_tls(defs: &[PartyDef], quorum: u32, extra: &[(&str, &str)]) -> Net {
        Net::generate(defs, quorum, extra, "", true)
    }

    fn generate(
        defs: &[PartyDef],
        quorum: u32,
        extra: &[(&str, &str)],
        node_overrides: &str,
        tls: bool,
    ) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let mut spec =
            format!("chain_id = \"{CHAIN_ID}\"\ncheckpoint_quorum = {quorum}\ntls = {tls}\n");
        let mut grpc = BTreeMap::new();
        let mut p2p = BTreeMap::new();
        let mut parties = Vec::new();
        for (i, d) in defs.iter().enumerate() {
            let g = free_port();
            let pp = free_port();
            grpc.insert(d.id.to_string(), g);
            p2p.insert(d.id.to_string(), pp);
            parties.push(d.id.to_string());
            spec += &format!(
                "[[party]]\nid = \"{}\"\nname = \"{}\"\nroles = [\"{}\"]\nvalidator = {}\nnode_id = {}\np2p_port = {}\ngrpc_port = {}\nmetrics_port = {}\n",
                d.id, d.id, d.role, d.validator, i + 1, pp, g, free_port()
            );
        }
        for (j, (id, role)) in extra.iter().enumerate() {
            spec += &format!(
                "[[party]]\nid = \"{id}\"\nname = \"{id}\"\nroles = [\"{role}\"]\nnode_id = {}\np2p_port = {}\ngrpc_port = {}\n",
                100 + j, free_port(), free_port()
            );
        }
        std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
        let out = Command::new(customsctl())
            .args(["genesis", "--spec"])
            .arg(dir.path().join("spec.toml"))
            .arg("--out")
            .arg(dir.path().join("net"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "genesis failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for p in &parties {
            let f = dir.path().join("net").join(p).join("node.toml");
            let text = std::fs::read_to_string(&f).unwrap();
            // Overrides must come before the first [[peers]] table.
            let (head, tail) = text.split_at(text.find("\n[[peers]]").unwrap_or(text.len()));
            std::fs::write(&f, format!("{head}\n{node_overrides}\n{tail}")).unwrap();
        }
        Net {
            dir,
            parties,
            grpc,
            p2p,
            links: None,
            procs: BTreeMap::new(),
            extra: extra.iter().map(|e| e.0.to_string()).collect(),
            tls,
        }
    }

    /// Route every node-to-node connection through its own fault proxy
    /// (see `proxy`): each node's config names, for each peer, the proxy
    /// port of that directed link instead of the peer's real port.
    pub fn with_links(mut self) -> Net {
        let nodes: Vec<(String, u16)> = self.p2p.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let links = proxy::Links::between(&nodes);
        for a in &self.parties {
            let f = self.net().join(a).join("node.toml");
            let mut text = std::fs::read_to_string(&f).unwrap();
            for b in &self.parties {
                if a != b {
                    let real = format!("/tcp/{}\"", self.p2p[b]);
                    let via = format!("/tcp/{}\"", links.port(a, b));
                    assert!(text.contains(&real), "{a}'s config has no address for {b}");
                    text = text.replace(&real, &via);
                }
            }
            std::fs::write(&f, text).unwrap();
        }
        self.links = Some(links);
        self
    }

    pub fn links(&self) -> &proxy::Links {
        self.links
            .as_ref()
            .expect("network made without with_links")
    }

    pub fn net(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    pub fn start(&mut self, party: &str) {
        self.start_with(party, &[]);
    }

    fn spawn(&self, party: &str, args: &[&str]) -> Child {
        self.spawn_env(party, args, &[])
    }

    fn spawn_env(&self, party: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
        let cfg = self.net().join(party).join("node.toml");
        // Appended, so a restarted node's log follows its previous life.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{party}.log")))
            .unwrap();
        Command::new(customs_node())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("CUSTOMS_NODE_LOG")
                    .unwrap_or_else(|_| "info,openraft=warn,libp2p=warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Start `party`'s node expecting it to refuse: it must exit (non-zero)
    /// without ever printing READY. Returns its log.
    pub fn start_refused(&self, party: &str) -> String {
        let mut child = self.spawn(party, &[]);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{party} neither started nor exited"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        assert!(!status.success(), "{party} exited successfully");
        assert!(!out.contains("READY"), "{party} became ready:\n{out}");
        self.log(party)
    }

    /// Start `party`'s node with extra command-line arguments.
    pub fn start_with(&mut self, party: &str, args: &[&str]) {
        self.start_env(party, args, &[]);
    }

    /// Start `party`'s node with extra arguments and environment variables.
    pub fn start_env(&mut self, party: &str, args: &[&str], env: &[(&str, &str)]) {
        let mut child = self.spawn_env(party, args, env);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("READY") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{party}.log")))
                .unwrap_or_default();
            panic!("{party} did not start:\n{log}");
        }
        self.procs.insert(party.to_string(), child);
    }

    pub fn start_all(&mut self) {
        for p in self.parties.clone() {
            self.start(&p);
        }
    }

    pub fn kill9(&mut self, party: &str) {
        if let Some(mut c) = self.procs.remove(party) {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn signal(&self, party: &str, sig: &str) {
        let pid = self.procs[party].id();
        assert!(Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success());
    }

    pub fn wipe(&self, party: &str) {
        std::fs::remove_dir_all(self.net().join(party).join("data")).unwrap();
    }

    /// Copy every node's log into `to` (created if missing).
    pub fn copy_logs(&self, to: &Path) {
        let _ = std::fs::create_dir_all(to);
        for p in &self.parties {
            let f = format!("{p}.log");
            let _ = std::fs::copy(self.dir.path().join(&f), to.join(&f));
        }
    }

    pub fn log(&self, party: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{party}.log"))).unwrap_or_default()
    }

    pub fn key(&self, party: &str) -> Keypair {
        let text =
            std::fs::read_to_string(self.net().join("keys").join(format!("{party}.sign"))).unwrap();
        let b: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
        Keypair::from_seed(&b)
    }

    /// `party`'s X25519 decryption key.
    pub fn dkey(&self, party: &str) -> ledger::disclosure::DecryptionKey {
        let text = std::fs::read_to_string(self.net().join("keys").join(format!("{party}.x25519")))
            .unwrap();
        let b: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
        ledger::disclosure::DecryptionKey::from_secret(b)
    }

    pub fn genesis(&self) -> ledger::ChainConfig {
        serde_json::from_str(&std::fs::read_to_string(self.net().join("genesis.json")).unwrap())
            .unwrap()
    }

    pub fn url(&self, party: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.grpc[party])
    }

    /// Run customsctl with no node, party or keys (offline commands).
    pub fn ctl_offline(&self, args: &[&str]) -> std::process::Output {
        Command::new(customsctl())
            .args(args)
            .env_remove("CUSTOMS_NODE")
            .env_remove("CUSTOMS_PARTY")
            .output()
            .unwrap()
    }

    /// Run customsctl acting as `party` against `node`'s gRPC.
    pub fn ctl(&self, party: &str, node: &str, args: &[&str]) -> std::process::Output {
        self.ctl_command(party, node).args(args).output().unwrap()
    }

    /// `customsctl` acting as `party` against `node`'s gRPC address (the
    /// caller adds the arguments and runs it).
    pub fn ctl_command(&self, party: &str, node: &str) -> Command {
        let mut cmd = Command::new(customsctl());
        if self.tls {
            cmd.env("CUSTOMS_CA", self.net().join("tls").join("ca.crt"));
        }
        cmd.env("CUSTOMS_NODE", self.url(node))
            .env("CUSTOMS_PARTY", party)
            .env("CUSTOMS_KEYS", self.net().join("keys"))
            .env("CUSTOMS_GENESIS", self.net().join("genesis.json"));
        cmd
    }

    pub async fn client(&self, party: &str, node: &str) -> Api {
        let ch = Channel::from_shared(self.url(node))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Api {
            inner: LedgerClient::new(ch).max_decoding_message_size(64 << 20),
            party: party.into(),
            node: node.into(),
            key: self.key(party),
        }
    }

    /// A command running the `node/examples/<name>` program with the libp2p
    /// identity of `identity` (its `<party>.node` key) and every running
    /// node as a `--peer <peer id>=<multiaddr>`.
    pub fn example(&self, name: &str, identity: &str) -> Command {
        let exe = customsctl().with_file_name("examples").join(name);
        assert!(
            exe.exists(),
            "{} not built (cargo builds examples with the tests)",
            exe.display()
        );
        let g = self.genesis();
        let mut cmd = Command::new(exe);
        cmd.arg("--node-key")
            .arg(self.net().join("keys").join(format!("{identity}.node")));
        for p in self.procs.keys() {
            let peer = &g.party(p).unwrap().peer_id;
            cmd.arg("--peer")
                .arg(format!("{peer}=/ip4/127.0.0.1/tcp/{}", self.p2p[p]));
        }
        cmd
    }

    /// Run one attack of `node/examples/hostile_peer.rs` as `identity` (a
    /// `<party>.node` key of the network) against every running node: one
    /// outcome per node.
    pub fn hostile(&self, identity: &str, attack: &str, args: &[&str]) -> Vec<Hostile> {
        let mut cmd = self.example("hostile_peer", identity);
        cmd.args(["--attack", attack]).args(args);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "hostile_peer {attack} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut found = Vec::new();
        for line in stdout.lines() {
            let field = |k: &str| {
                line.split_once(&format!("{k}="))
                    .map(|(_, rest)| rest.split(' ').next().unwrap_or_default().to_string())
                    .unwrap_or_default()
            };
            let detail = line
                .split_once("detail=")
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            found.push(Hostile {
                target: field("target"),
                outcome: field("outcome"),
                detail,
            });
        }
        assert_eq!(found.len(), self.procs.len(), "one line per node: {stdout}");
        found
    }

    /// One Prometheus sample of `party`'s node (`name` with its labels,
    /// e.g. `customs_peer_refused_total{reason="PEER_NOT_VALIDATOR"}`).
    pub fn metric(&self, party: &str, name: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let toml = std::fs::read_to_string(self.net().join(party).join("node.toml")).ok()?;
        let addr = toml
            .lines()
            .find_map(|l| l.strip_prefix("metrics_listen = "))?
            .trim_matches('"')
            .to_string();
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The running node that reports itself leader, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            for p in self.procs.keys() {
                if let Ok(s) = self.client(p, p).await.status().await {
                    if s.raft_role == "leader" {
                        return p.clone();
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader elected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every acknowledged transaction is on `node` exactly once (the index is
    /// unique by id; the block at its location holds it).
    pub async fn check_acked(&self, node: &str, acked: &[ledger::Hash32]) {
        let mut c = self.client("carrier", node).await;
        for id in acked {
            let r = c.signed(
                "/customs.v1.Ledger/GetTransaction",
                v1::GetTransactionRequest {
                    tx_id: id.0.to_vec(),
                },
            );
            let p = c
                .inner
                .get_transaction(r)
                .await
                .unwrap_or_else(|e| panic!("{node} misses {id}: {e:?}"))
                .into_inner();
            let stx = ledger::SignedTransaction::decode(&p.signed_tx, 1 << 20).unwrap();
            assert_eq!(&stx.id().unwrap(), id);
        }
    }

    /// Wait until every running node reports the same tip hash at or above `height`.
    pub async fn converge(&self, height: u64, timeout: Duration) -> (u64, Vec<u8>) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut tips = BTreeMap::new();
            for p in self.procs.keys() {
                if let Ok(mut c) =
                    tokio::time::timeout(Duration::from_secs(2), self.client(p, p)).await
                {
                    if let Ok(s) = c.status().await {
                        tips.insert(p.clone(), (s.height, s.tip_hash));
                    }
                }
            }
            let first = tips.values().next().cloned();
            if tips.len() == self.procs.len() {
                if let Some((h, hash)) = first {
                    if h >= height && tips.values().all(|t| t.0 == h && t.1 == hash) {
                        return (h, hash);
                    }
                }
            }
            if Instant::now() > deadline {
                panic!("nodes did not converge at height >= {height}: {tips:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, c) in self.procs.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Keep the node logs for a post-mortem when asked (or on failure).
        if let Some(keep) = std::env::var_os("CUSTOMS_KEEP_LOGS") {
            if std::thread::panicking() || std::env::var_os("CUSTOMS_KEEP_ALL").is_some() {
                let name = self.dir.path().file_name().unwrap_or_default().to_owned();
                let to = Path::new(&keep).join(name);
                self.copy_logs(&to);
                eprintln!("node logs kept in {}", to.display());
            }
        }
    }
}

/// The reason code a node put on a refusal (`x-customs-reason`).
pub fn reason(s: &tonic::Status) -> String {
    s.metadata()
        .get("x-customs-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The test networks' chain id.
pub const CHAIN_ID: &str = "test-net";

/// A request carrying `party`'s signed authentication metadata, addressed
/// to `node`'s node, for any service (Ledger or Admin).
pub fn signed_request<T: Message>(
    key: &Keypair,
    party: &str,
    node: &str,
    method: &str,
    msg: T,
) -> tonic::Request<T> {
    let body = msg.encode_to_vec();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let target = ledger::auth::Target {
        chain_id: CHAIN_ID,
        node,
    };
    let a = ledger::auth::sign(key, target, method, party, now, &body);
    let mut r = tonic::Request::new(msg);
    let md = r.metadata_mut();
    md.insert(ledger::auth::header::PARTY, a.party.parse().unwrap());
    md.insert(ledger::auth::header::NODE, a.node.parse().unwrap());
    md.insert(
        ledger::auth::header::TIME,
        a.time_ms.to_string().parse().unwrap(),
    );
    md.insert(ledger::auth::header::NONCE, a.nonce.parse().unwrap());
    md.insert(
        ledger::auth::header::SIGNATURE,
        a.signature.to_hex().parse().unwrap(),
    );
    r
}

pub struct Api {
    pub inner: LedgerClient<Channel>,
    pub party: String,
    /// The party whose node this talks to.
    pub node: String,
    pub key: Keypair,
}

impl Api {
    pub fn signed<T: Message>(&self, method: &str, msg: T) -> tonic::Request<T> {
        signed_request(&self.key, &self.party, &self.node, method, msg)
    }

    pub async fn status(&mut self) -> Result<v1::StatusResponse, tonic::Status> {
        let r = self.signed("/customs.v1.Ledger/Status", v1::StatusRequest {});
        Ok(self.inner.status(r).await?.into_inner())
    }

    pub async fn submit(
        &mut self,
        stx: &ledger::SignedTransaction,
    ) -> Result<v1::SubmitResponse, tonic::Status> {
        let r = self.signed(
            "/customs.v1.Ledger/Submit",
            v1::SubmitRequest {
                signed_tx: stx.encode().unwrap(),
                wait_for_commit: true,
            },
        );
        Ok(self.inner.submit(r).await?.into_inner())
    }

    /// Submit, retrying while no leader is available.
    pub async fn submit_retry(
        &mut self,
        stx: &ledger::SignedTransaction,
        timeout: Duration,
    ) -> v1::SubmitResponse {
        let deadline = Instant::now() + timeout;
        loop {
            match self.submit(stx).await {
                Ok(r) => return r,
                Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) if s.code() == tonic::Code::AlreadyExists => {
                    // Committed by an earlier attempt whose answer was lost.
                    return v1::SubmitResponse::default();
                }
                Err(s) => panic!("submit failed: {s:?}"),
            }
        }
    }
}

/// A signed event from `submitter` for the test network.
pub fn event(
    net: &Net,
    kind: ledger::EventKind,
    shipment: &str,
    submitter: &str,
) -> ledger::SignedTransaction {
    event_with(
        &net.genesis(),
        &net.key(submitter),
        kind,
        shipment,
        submitter,
    )
}

/// A signed event with one public note field, claimed now; bookings and
/// filings name every trader and carrier of the genesis as the shipment's
/// parties.
pub fn event_with(
    cfg: &ledger::ChainConfig,
    key: &Keypair,
    kind: ledger::EventKind,
    shipment: &str,
    submitter: &str,
) -> ledger::SignedTransaction {
    // Every trader and carrier of the test network belongs to the
    // shipment (tests of the party rule name parties themselves).
    let traders: Vec<&str> = cfg
        .parties
        .iter()
        .filter(|p| !p.has_role(ledger::Role::Customs) && !p.has_role(ledger::Role::Auditor))
        .map(|p| p.id.as_str())
        .collect();
    event_naming(cfg, key, kind, shipment, submitter, &traders)
}

/// [`event_with`] naming `parties` as the shipment's parties.
pub fn event_naming(
    cfg: &ledger::ChainConfig,
    key: &Keypair,
    kind: ledger::EventKind,
    shipment: &str,
    submitter: &str,
    parties: &[&str],
) -> ledger::SignedTransaction {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ledger::disclosure::seal(
        cfg,
        &ledger::disclosure::Draft {
            chain_id: cfg.chain_id.clone(),
            kind,
            shipment_id: shipment.into(),
            submitter: submitter.into(),
            claimed_time_ms: now,
            fields: vec![ledger::disclosure::Field {
                path: "event.note".into(),
                class: ledger::FieldClass::Public,
                value: format!("{} {}", kind.name(), shipment),
            }],
            shipment_parties: parties.iter().map(|p| p.to_string()).collect(),
            governance: None,
        },
    )
    .unwrap()
    .sign(key)
    .unwrap()
}

pub fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            };
        }
    }
    n
}

/// A governance transaction from `submitter` carrying `action`, approved by
/// `approvers`, claimed now.
pub fn governance(
    net: &Net,
    submitter: &str,
    approvers: &[&str],
    kind: ledger::EventKind,
    action: ledger::tx::Governance,
) -> ledger::SignedTransaction {
    let cfg = net.genesis();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut stx = ledger::disclosure::seal(
        &cfg,
        &ledger::disclosure::Draft {
            chain_id: cfg.chain_id.clone(),
            kind,
            shipment_id: String::new(),
            submitter: submitter.into(),
            claimed_time_ms: now,
            fields: vec![],
            shipment_parties: vec![],
            governance: Some(action),
        },
    )
    .unwrap()
    .sign(&net.key(submitter))
    .unwrap();
    for a in approvers {
        stx.approve(a, &net.key(a)).unwrap();
    }
    stx
}
