//! The customs ledger node: the composition root. It wires the ledger, the
//! Raft replication of `consensus`, the libp2p transport, the gRPC API,
//! checkpoint cosigning and metrics into one daemon (`customs-node`).
//!
//! Nothing else depends on this crate; it is the only place that knows all
//! the others. It owns no consensus or ledger logic of its own.

pub mod api;
pub mod config;
pub mod cosign;
pub mod keys;
pub mod kpi;
pub mod limits;
pub mod membership;
pub mod metrics;
pub mod p2p;
pub mod peers;
pub mod service;
pub mod status;
pub mod transport;

use anyhow::{anyhow, bail, Context, Result};
use config::NodeConfig;
use consensus::{BatcherConfig, ConsensusNode, Genesis, NodeId, PeerNode};
use ledger::chain::{ContentOutcome, ContentValidator, Rejection};
use ledger::config::{ChainConfig, Role};
use ledger::crypto::Keypair;
use ledger::disclosure::DecryptionKey;
use ledger::hs::nomenclature::Nomenclature;
use ledger::store::LearnedWrite;
use ledger::validate::CustomsValidator;
use ledger::{Hash32, SignedTransaction};
use service::NodeCore;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Lets the state machine and the admission path share one validator:
/// judging takes the lock shared, learning from a commit takes it exclusive.
struct SharedContent(Arc<RwLock<CustomsValidator>>);

/// The validator taken shared (judging); a poisoned lock refuses.
fn shared(
    v: &RwLock<CustomsValidator>,
) -> Result<RwLockReadGuard<'_, CustomsValidator>, Rejection> {
    v.read()
        .map_err(|_| ledger::chain::reject("INTERNAL", "validator lock poisoned"))
}

/// The validator taken exclusive (learning, restoring, folding).
fn exclusive(
    v: &RwLock<CustomsValidator>,
) -> Result<RwLockWriteGuard<'_, CustomsValidator>, String> {
    v.write().map_err(|_| "validator lock poisoned".to_string())
}

impl ContentValidator for SharedContent {
    fn check(
        &mut self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
        state: Option<&ledger::ShipmentState>,
    ) -> Result<ContentOutcome, Rejection> {
        let _ = state;
        shared(&self.0)?.admit(config, stx, tx_id)
    }
    fn learns(&self) -> bool {
        true
    }
    fn prepare_judging(&mut self, at: u64) -> Result<bool, String> {
        exclusive(&self.0)?.prepare_judging(at)
    }
    fn learn(&mut self, config: &ChainConfig, block: &ledger::Block) -> Option<LearnedWrite> {
        // Opening the block's declarations needs the lock only shared, so
        // the leader's judging goes on meanwhile; folding them takes it
        // exclusive.
        let facts = self.0.read().ok()?.facts(block);
        self.0
            .write()
            .ok()?
            .learn_facts(config, block.header.height, facts)
    }
    fn forget(&mut self) {
        if let Ok(mut v) = self.0.write() {
            v.forget();
        }
    }
    fn restore_checkpoint(
        &mut self,
        config: &ChainConfig,
        sealed: &[u8],
    ) -> Result<Option<u64>, String> {
        exclusive(&self.0)?.restore_checkpoint(config, sealed)
    }
    fn restore_journal(
        &mut self,
        config: &ChainConfig,
        height: u64,
        sealed: &[u8],
    ) -> Result<bool, String> {
        exclusive(&self.0)?.restore_journal(config, height, sealed)
    }
    fn checkpoint(&mut self, config: &ChainConfig, height: u64) -> Option<Vec<u8>> {
        self.0.write().ok()?.checkpoint(config, height)
    }
    fn own_outcome(&mut self, tx_id: &Hash32) -> Option<ContentOutcome> {
        self.0.write().ok().and_then(|mut v| v.own_outcome(tx_id))
    }
    fn agrees(
        &mut self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        tx_id: &Hash32,
        recorded: &ContentOutcome,
    ) -> bool {
        match self.0.read() {
            Ok(v) => v.agrees_with(config, stx, tx_id, recorded),
            Err(_) => false,
        }
    }
}

/// The leader's declaration judge (see `consensus::Judge`): the shared
/// validator, taken shared, against the ledger as the batcher found it.
struct SharedJudge {
    validator: Arc<RwLock<CustomsValidator>>,
    /// Debug builds only, for the divergence test: record an empty outcome
    /// ("nothing found") instead of the real one, as a rogue leader would.
    forge: bool,
}

impl consensus::Judge for SharedJudge {
    fn judge(
        &self,
        config: &ChainConfig,
        stx: &SignedTransaction,
        id: &Hash32,
    ) -> Result<ContentOutcome, Rejection> {
        let out = shared(&self.validator)?.admit(config, stx, id)?;
        if self.forge {
            return Ok(ContentOutcome::default());
        }
        Ok(out)
    }

    fn prepare(&self, at: u64) -> Result<(), String> {
        exclusive(&self.validator)?.prepare(at)
    }
}

/// Whether this (debug) build forges outcomes: `CUSTOMS_TEST_FORGE_OUTCOMES`
/// set. Release builds never do.
fn forge_outcomes() -> bool {
    let on = cfg!(debug_assertions) && std::env::var_os("CUSTOMS_TEST_FORGE_OUTCOMES").is_some();
    if on {
        tracing::warn!("TEST BUILD: this node records forged (empty) outcomes when it leads");
    }
    on
}

/// A customs node judges with the classifier and risk model its chain
/// names, or not at all: another version would judge differently from its
/// peers and halt its own cosigning at the first declaration.
fn check_versions(config: &ChainConfig) -> Result<()> {
    let ours = [
        (
            "classifier",
            &config.classifier_version,
            ledger::hs::classifier::CLASSIFIER_VERSION,
        ),
        (
            "risk model",
            &config.risk_model_version,
            ledger::validate::risk::RISK_MODEL_VERSION,
        ),
    ];
    for (what, pinned, built) in ours {
        if pinned != built {
            bail!(
                "VERSION_MISMATCH: the chain config names {what} version {pinned:?}, but this \
                 customs-node build runs {built:?}; run a build with {what} {pinned:?} (or change \
                 the chain's version by governance)"
            );
        }
    }
    let built = ledger::tariff::TablePins::builtin();
    if config.tables != built {
        bail!(
            "VERSION_MISMATCH: the chain config pins the duty and VAT tables {:?} (sha256 {}) and \
             {:?} (sha256 {}), but this build carries {:?} (sha256 {}) and {:?} (sha256 {})",
            config.tables.tariff_edition,
            config.tables.tariff_sha256,
            config.tables.vat_edition,
            config.tables.vat_sha256,
            built.tariff_edition,
            built.tariff_sha256,
            built.vat_edition,
            built.vat_sha256
        );
    }
    Ok(())
}

/// A running node.
#[derive(Debug)]
pub struct Running {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound metrics address.
    pub metrics_addr: Option<SocketAddr>,
    /// The core.
    pub core: Arc<NodeCore>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop serving, stop Raft and close the databases.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.core.consensus.shutdown().await;
        let _ = self.core.p2p.shutdown().await;
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Entries per `AppendEntries`: a batch entry can be megabytes, and
/// openraft times an AppendEntries out after one heartbeat interval (then
/// resends all of it). The batcher sizes entries so that this many fit in
/// half a peer frame.
const MAX_PAYLOAD_ENTRIES: u64 = 4;

fn load_genesis(path: &std::path::Path) -> Result<ChainConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read genesis {}", path.display()))?;
    let cfg: ChainConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a chain config", path.display()))?;
    cfg.validate()?;
    Ok(cfg)
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

struct Peers(Arc<NodeCore>);

impl transport::PeerService for Peers {
    fn raft(
        &self,
        from: p2p::PeerId,
        payload: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, String>> {
        let core = self.0.clone();
        let sender = core.directory.sender(&from);
        let refuse = |refusal: consensus::authz::Refusal| {
            // Counted always; logged at the 1st, 2nd, 4th, 8th ... of a
            // reason, so a flood cannot flood the log.
            if core.metrics.peer_refused(refusal.code()).is_power_of_two() {
                tracing::warn!(%from, party = ?sender.party, "refused a Raft message: {refusal}");
            }
            let text = refusal.to_string();
            Box::pin(async move { Err(text) }) as futures::future::BoxFuture<'static, _>
        };
        // Non-validators may send no Raft message at all: refused unread.
        if let Err(refusal) = consensus::authz::validator_party(&sender) {
            return refuse(refusal);
        }
        let rpc = match consensus::RaftRpc::decode(&payload) {
            Ok(rpc) => rpc,
            Err(e) => {
                core.metrics.peer_refused("RAFT_MALFORMED");
                return Box::pin(async move { Err(format!("RAFT_MALFORMED: {e}")) });
            }
        };
        if let Err(refusal) =
            core.consensus
                .authorize(&rpc, &sender, core.directory.clock_tolerance_ms())
        {
            return refuse(refusal);
        }
        Box::pin(async move {
            core.consensus
                .handle_rpc(rpc)
                .await
                .encode()
                .map_err(|e| e.to_string())
        })
    }
    fn forward(
        &self,
        from: p2p::PeerId,
        payload: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, String>> {
        let core = self.0.clone();
        // Forwarded submissions count against the forwarding node's party.
        let caller = core
            .directory
            .sender(&from)
            .party
            .unwrap_or_else(|| format!("peer {from}"));
        Box::pin(async move { core.forwarded(payload, &caller).await })
    }
    fn gossip(&self, from: p2p::PeerId, topic: &str, data: Vec<u8>) {
        if topic != transport::COSIGN_TOPIC {
            return;
        }
        let core = self.0.clone();
        tokio::spawn(async move {
            let Ok(msg) = ledger::codec::decode_limited::<cosign::CosignMessage>(&data, 4096)
            else {
                core.metrics.peer_refused("GOSSIP_MALFORMED");
                tracing::warn!(%from, "malformed cosignature gossip");
                return;
            };
            let h = msg.checkpoint.height;
            // Only the signer may ask for answers: anyone else republishing a
            // cosignature with `wants_quorum` would make every node answer
            // (amplification). `from` is the gossip message's verified author.
            let author = core.directory.party_of_peer(&from);
            let wants =
                msg.wants_quorum && author.as_deref() == Some(msg.cosignature.party.as_str());
            if msg.wants_quorum && !wants {
                core.metrics.peer_refused("GOSSIP_WANTS_NOT_SIGNER");
            }
            let c = core.cosigner.clone();
            let merged = tokio::task::spawn_blocking(move || c.receive(msg)).await;
            if !matches!(merged, Ok(cosign::Merge::Merged)) {
                return;
            }
            // Answer with our own cosignature of the same height when we have
            // not cosigned it yet (so quorums form on common heights), or
            // when the sender asks because it has no quorum there.
            let c = core.cosigner.clone();
            let own = tokio::task::spawn_blocking(move || c.has_own(h))
                .await
                .unwrap_or(true);
            if own && !wants {
                return;
            }
            let c = core.cosigner.clone();
            if let Ok(Some(m)) = tokio::task::spawn_blocking(move || c.cosign_height(h)).await {
                if let Ok(b) = ledger::codec::encode(&m) {
                    let _ = core.p2p.publish(transport::COSIGN_TOPIC, b).await;
                }
            }
        });
    }
}

fn log_dir(cfg: &NodeConfig) -> std::path::PathBuf {
    cfg.data_dir.join("raft")
}

fn ledger_dir(cfg: &NodeConfig) -> std::path::PathBuf {
    cfg.data_dir.join("ledger")
}

/// The startup walk over the stores (`check_store_on_start`): damage stops
/// the node with a message naming the record and the way out (`--repair`).
async fn check_store(cfg: &NodeConfig) -> Result<()> {
    if !cfg.check_store_on_start {
        tracing::warn!("check_store_on_start = false: stored blocks are checked only when read");
        return Ok(());
    }
    let (log, led) = (log_dir(cfg), ledger_dir(cfg));
    let started = std::time::Instant::now();
    let checked = tokio::task::spawn_blocking(move || {
        consensus::integrity::check_stores(&log, &led, |h, tip| {
            if h > 0 && h % 5_000 == 0 {
                tracing::info!("checking the stored ledger: block {h} of {tip}");
            }
        })
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| anyhow!("store check: {e}"))?;
    match checked {
        Ok(c) => {
            tracing::info!(
                log_entries = c.log.entries,
                blocks = c.ledger.map(|l| l.blocks).unwrap_or(0),
                transactions = c.ledger.map(|l| l.transactions).unwrap_or(0),
                ms = started.elapsed().as_millis() as u64,
                "store checked"
            );
            Ok(())
        }
        Err(e) => bail!(
            "STORE_CORRUPT: the store in {} is damaged: {e}. The node will not serve or \
             replicate it. Run `customs-node --config <file> --repair` to move it aside \
             and rebuild this node from its peers.",
            cfg.data_dir.display()
        ),
    }
}

/// `customs-node --repair`: move this node's Raft log, ledger and snapshots
/// into `<data_dir>/quarantine/<unix time>/` (kept, never deleted) and leave
/// a fresh log with only the old vote; the node then starts empty and the
/// leader sends it a snapshot and the entries after it.
pub fn repair(cfg: &NodeConfig) -> Result<consensus::integrity::Quarantined> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let q = consensus::integrity::quarantine_for_repair(
        &cfg.data_dir,
        &log_dir(cfg),
        &ledger_dir(cfg),
        &stamp,
    )
    .map_err(|e| anyhow!("repair: {e}"))?;
    tracing::warn!(
        "repair: old stores moved to {}; Raft vote {}; this node rebuilds from its peers",
        q.dir.display(),
        if q.vote_kept {
            "kept"
        } else {
            "not found (none stored or unreadable)"
        }
    );
    Ok(q)
}

/// The operator's answer to a content divergence (ADR 0014): after
/// investigating the evidence (`customsctl status` shows it), remove it so
/// the node cosigns again. Returns what was cleared.
pub fn clear_divergence(cfg: &NodeConfig) -> Result<Option<consensus::Divergence>> {
    let store = ledger::RocksStore::open(&ledger_dir(cfg))
        .map_err(|e| anyhow!("cannot open the ledger to clear a divergence: {e}"))?;
    let found = consensus::divergence(&store).map_err(|e| anyhow!(e))?;
    if let Some(d) = &found {
        ledger::Store::delete_meta(&store, consensus::DIVERGENCE_META_KEY)
            .map_err(|e| anyhow!("cannot clear the divergence record: {e}"))?;
        tracing::warn!(
            height = d.height,
            tx = %d.tx_id,
            leader = %d.leader,
            "divergence cleared by the operator; cosigning resumes"
        );
    }
    Ok(found)
}

/// The signing key file must be the key the committed chain config
/// registers for this party, or, for a node whose ledger has not yet caught
/// up with a rotation, the genesis one; a node holding a key the chain has
/// since rotated away starts (it replicates and serves) but cosigns nothing,
/// and says so.
fn check_signing_key(
    node: &ConsensusNode,
    party: &str,
    signing: &Keypair,
    genesis_key: bool,
) -> Result<()> {
    let committed = node
        .ledger()
        .with_ledger(|l| l.config().party(party).map(|p| p.signing_key))
        .map_err(|e| anyhow!("cannot read the committed config: {e}"))?;
    if committed == Some(signing.public()) {
        return Ok(());
    }
    if !genesis_key {
        bail!("signing key file matches neither the committed nor the genesis key of {party}");
    }
    tracing::warn!(
        "the committed chain config registers another signing key for {party}: this node cosigns only once restarted with it"
    );
    Ok(())
}

/// Start a node from its configuration.
pub async fn start(cfg: NodeConfig) -> Result<Running> {
    let genesis = load_genesis(&cfg.genesis)?;
    let me = genesis
        .party(&cfg.party)
        .ok_or_else(|| anyhow!("party {} is not in the genesis config", cfg.party))?
        .clone();
    let signing = Keypair::from_seed(&keys::read_secret(&cfg.signing_key)?);
    // The key is checked against the committed config once the ledger is
    // open (governance may have rotated it since genesis).
    let genesis_key = signing.public() == me.signing_key;
    let mut dkeys = vec![DecryptionKey::from_secret(keys::read_secret(
        &cfg.encryption_key,
    )?)];
    for p in &cfg.old_encryption_keys {
        dkeys.push(DecryptionKey::from_secret(keys::read_secret(p)?));
    }
    let node_seed = keys::read_secret(&cfg.node_key)?;
    let peer_id = p2p::peer_id_of(node_seed);
    if peer_id.to_string() != me.peer_id {
        bail!(
            "node key gives peer id {peer_id}, but the chain config registers {}",
            me.peer_id
        );
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
    // Before anything listens: a damaged store is neither served nor replicated.
    check_store(&cfg).await?;

    // Content validation (customs nodes hold the nomenclature).
    let content = if me.has_role(Role::Customs) {
        let path = cfg
            .nomenclature
            .clone()
            .or_else(ledger::hs::nomenclature::locate)
            .ok_or_else(|| {
                anyhow!(
                    "customs nodes need the nomenclature: run testnet/setup.sh or set nomenclature"
                )
            })?;
        let nom = Nomenclature::load(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if genesis.nomenclature.sha256 != Hash32::ZERO
            && nom.hash() != genesis.nomenclature.sha256.0
        {
            bail!(
                "nomenclature {} has hash {}, but the chain pins {}",
                path.display(),
                nom.hash_hex(),
                genesis.nomenclature.sha256
            );
        }
        check_versions(&genesis)?;
        let mut validator = CustomsValidator::new(&cfg.party, dkeys.clone(), Arc::new(nom));
        let pinned = genesis.nomenclature.semantic;
        if pinned != Hash32::ZERO {
            let path = cfg
                .semantic
                .clone()
                .or_else(ledger::hs::semantic::locate)
                .ok_or_else(|| {
                    anyhow!(
                        "the chain pins semantic table {pinned}: run testnet/setup.sh and \
                         `customsctl hs distil`, or set semantic"
                    )
                })?;
            let table = ledger::hs::semantic::SemanticTable::load_pinned(&path, &pinned.0)
                .map_err(|e| anyhow!("{e}"))?;
            validator = validator.with_semantic(Arc::new(table));
        }
        Some(Arc::new(RwLock::new(validator)))
    } else {
        None
    };

    // Node id -> party from this node's own configuration; party <-> peer
    // id from the committed chain config (ADR 0011).
    let mut book: BTreeMap<NodeId, String> = BTreeMap::new();
    let mut known = Vec::new();
    for p in &cfg.peers {
        let party = genesis
            .party(&p.party)
            .ok_or_else(|| anyhow!("peer {} is not in the genesis config", p.party))?;
        let pid: p2p::PeerId = party
            .peer_id
            .parse()
            .map_err(|e| anyhow!("bad peer id of {}: {e}", p.party))?;
        let addr: p2p::Multiaddr = p
            .p2p_addr
            .parse()
            .map_err(|e| anyhow!("bad address {}: {e}", p.p2p_addr))?;
        book.insert(p.node_id, p.party.clone());
        known.push((pid, addr));
    }
    book.insert(cfg.node_id, cfg.party.clone());
    let directory = Arc::new(crate::peers::Directory::new(
        book,
        Arc::new(genesis.clone()),
    ));

    let dispatcher = Arc::new(transport::Dispatcher::default());
    let mut pcfg = p2p::P2pConfig::new(p2p::keypair_from_seed(node_seed), dispatcher.clone());
    pcfg.listen_addrs = vec![cfg
        .p2p_listen
        .parse()
        .map_err(|e| anyhow!("bad p2p_listen: {e}"))?];
    pcfg.allowlist = directory.allowlist();
    pcfg.known_peers = known;
    pcfg.topics = vec![transport::COSIGN_TOPIC.to_string()];
    let (p2p_handle, p2p_task) = p2p::P2p::spawn(pcfg)
        .await
        .map_err(|e| anyhow!("p2p: {e}"))?;

    let raft_cfg = consensus::openraft::Config {
        cluster_name: genesis.chain_id.clone(),
        heartbeat_interval: cfg.raft.heartbeat_ms,
        election_timeout_min: cfg.raft.election_min_ms,
        election_timeout_max: cfg.raft.election_max_ms,
        snapshot_policy: consensus::openraft::SnapshotPolicy::LogsSinceLast(
            cfg.raft.snapshot_every,
        ),
        max_in_snapshot_log_to_keep: cfg.raft.keep_logs,
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        ..Default::default()
    };
    let transport = Arc::new(transport::P2pTransport::new(
        p2p_handle.clone(),
        directory.clone(),
    ));
    let sm_content: Box<dyn ContentValidator + Send> = match &content {
        Some(c) => Box::new(SharedContent(c.clone())),
        None => Box::new(ledger::chain::NoContent),
    };
    let node = ConsensusNode::start(
        consensus::NodeConfig {
            node_id: cfg.node_id,
            party: cfg.party.clone(),
            raft: raft_cfg,
            log_dir: log_dir(&cfg),
            ledger_dir: ledger_dir(&cfg),
            clock: consensus::system_clock(),
        },
        Genesis {
            config: genesis.clone(),
            time_ms: cfg.genesis_time_ms,
        },
        sm_content,
        transport,
    )
    .await
    .map_err(|e| anyhow!("consensus: {e}"))?;
    check_signing_key(&node, &cfg.party, &signing, genesis_key)?;

    // The lowest-id voter forms the cluster on first start.
    let mut voters: BTreeMap<NodeId, PeerNode> = cfg
        .peers
        .iter()
        .filter(|p| p.voter)
        .map(|p| {
            (
                p.node_id,
                PeerNode::new(p.party.clone(), p.p2p_addr.clone()),
            )
        })
        .collect();
    if me.validator {
        voters.insert(
            cfg.node_id,
            PeerNode::new(cfg.party.clone(), cfg.p2p_listen.clone()),
        );
    }
    if voters.keys().next() == Some(&cfg.node_id) {
        let fresh = node
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_none();
        if fresh {
            if let Err(e) = node.initialize(voters.clone()).await {
                tracing::info!("cluster already initialised: {e}");
            }
        }
    }

    let metrics = Arc::new(metrics::Metrics::default());
    let (batcher, batch_task) = consensus::spawn_batcher(
        node.clone(),
        BatcherConfig {
            max_batch: cfg.batch.max_txs.min(genesis.limits.max_block_txs as usize),
            max_bytes: BatcherConfig::entry_bytes_for(
                MAX_PAYLOAD_ENTRIES,
                genesis.limits.max_block_bytes,
            ),
            max_delay: Duration::from_millis(cfg.batch.max_delay_ms),
            busy_delay: Duration::from_millis(cfg.batch.busy_delay_ms),
            queue: 16384,
        },
        content.as_ref().map(|c| {
            Arc::new(SharedJudge {
                validator: c.clone(),
                forge: forge_outcomes(),
            }) as Arc<dyn consensus::Judge>
        }),
    );
    let cosigner = Arc::new(cosign::Cosigner::new(
        &cfg.party,
        signing,
        node.ledger().clone(),
        metrics.clone(),
    ));
    cosigner.recover_quorum();
    let core = Arc::new(NodeCore::new(
        cfg.party.clone(),
        cfg.node_id,
        node.clone(),
        batcher,
        p2p_handle.clone(),
        metrics.clone(),
        content,
        cosigner.clone(),
        directory.clone(),
        cfg.request_window_ms,
    ));
    // The committed config may differ from genesis (revocations, parties
    // added by governance): follow it before any peer message is handled.
    refresh_directory(&core).await;
    let peer_service: Arc<dyn transport::PeerService> = Arc::new(Peers(core.clone()));
    dispatcher.set(Arc::downgrade(&peer_service));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = vec![p2p_task, batch_task];

    // Cosign the tip as it moves; the leader moves Raft membership towards
    // the committed chain config (see `membership`).
    {
        let core = core.clone();
        let address_book: Vec<(NodeId, PeerNode)> = cfg
            .peers
            .iter()
            .filter(|p| p.node_id != cfg.node_id)
            .map(|p| {
                (
                    p.node_id,
                    PeerNode::new(p.party.clone(), p.p2p_addr.clone()),
                )
            })
            .collect();
        let changing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _keep = peer_service;
            let mut last = u64::MAX;
            let mut published = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {}
                }
                refresh_directory(&core).await;
                let tip = core.consensus.ledger().tip().map_or(0, |t| t.height);
                // Cosign each new tip. Gossip is best effort (a message sent
                // before the mesh forms, or while a peer is cut off, is
                // lost), so while the newest cosigned height has no quorum
                // the cosignature is published again every second.
                let quorum = core
                    .cosigner
                    .quorum_height
                    .load(std::sync::atomic::Ordering::Relaxed);
                let republish =
                    tip == last && quorum < tip && published.elapsed() >= Duration::from_secs(1);
                if tip != last || republish {
                    last = tip;
                    published = std::time::Instant::now();
                    let c = core.cosigner.clone();
                    if let Ok(Some(mut m)) =
                        tokio::task::spawn_blocking(move || c.cosign_height(tip)).await
                    {
                        m.wants_quorum = republish;
                        if let Ok(b) = ledger::codec::encode(&m) {
                            let _ = core.p2p.publish(transport::COSIGN_TOPIC, b).await;
                        }
                    }
                    let c = core.cosigner.clone();
                    let _ = tokio::task::spawn_blocking(move || c.drain_pending(tip)).await;
                }
                if core.leader() == Some(core.node_id)
                    && !changing.load(std::sync::atomic::Ordering::Acquire)
                {
                    if let Some((step, voters)) = membership_step(&core, &address_book) {
                        changing.store(true, std::sync::atomic::Ordering::Release);
                        let (core, changing) = (core.clone(), changing.clone());
                        tokio::spawn(async move {
                            take_membership_step(&core, step, &voters).await;
                            changing.store(false, std::sync::atomic::Ordering::Release);
                        });
                    }
                }
            }
        }));
    }

    // KPIs, folded beside the ledger from committed blocks.
    if cfg.kpi {
        tasks.push(tokio::spawn(kpi::follow(
            core.clone(),
            dkeys.clone(),
            shutdown_rx.clone(),
        )));
    }

    // gRPC.
    let listener = tokio::net::TcpListener::bind(&cfg.grpc_listen)
        .await
        .with_context(|| format!("cannot bind gRPC on {}", cfg.grpc_listen))?;
    let grpc_addr = listener.local_addr()?;
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(
                std::fs::read(c).with_context(|| format!("cannot read {}", c.display()))?,
                {
                    keys::check_private(k)?;
                    std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?
                },
            ),
        )),
        _ => None,
    };
    if tls.is_none() && !is_loopback(&grpc_addr) && !cfg.allow_plaintext_remote {
        bail!(
            "refusing plaintext gRPC on non-loopback address {grpc_addr}: configure tls_cert/tls_key or set allow_plaintext_remote"
        );
    }
    let api = api::Api::new(core.clone());
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        builder = builder.tls_config(t).context("TLS configuration")?;
    }
    let router = builder
        .add_service(
            proto::v1::ledger_server::LedgerServer::new(api.clone())
                .max_decoding_message_size(1 << 20)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(
            proto::v1::admin_server::AdminServer::new(api).max_decoding_message_size(1 << 20),
        );
    let mut stop = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.changed().await;
            })
            .await
        {
            tracing::error!("gRPC server: {e}");
        }
    }));

    // Metrics.
    let metrics_addr = if cfg.metrics_listen.is_empty() {
        None
    } else {
        let l = tokio::net::TcpListener::bind(&cfg.metrics_listen)
            .await
            .with_context(|| format!("cannot bind metrics on {}", cfg.metrics_listen))?;
        let addr = l.local_addr()?;
        let core = core.clone();
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(metrics::serve(
            l,
            move || {
                let mut text = core.metrics.render(&core.gauges());
                text.push_str(&core.kpis.prometheus());
                text
            },
            async move {
                let _ = stop.changed().await;
            },
        )));
        Some(addr)
    };
    tracing::info!(party = %cfg.party, node_id = cfg.node_id, %grpc_addr, %peer_id, "node started");
    Ok(Running {
        grpc_addr,
        metrics_addr,
        core,
        shutdown: shutdown_tx,
        tasks,
    })
}

/// Follow the committed chain config: rebuild the peer directory when the
/// config changed and hand the p2p layer the new allowlist (peers no longer
/// on it are disconnected at once).
async fn refresh_directory(core: &NodeCore) {
    let Ok(config) = core.consensus.ledger().with_ledger(|l| l.shared_config()) else {
        return;
    };
    if let Some(allow) = core.directory.refresh(config) {
        tracing::info!(
            peers = allow.len(),
            "allowlist follows the committed chain config"
        );
        if let Err(e) = core.p2p.set_allowlist(allow).await {
            tracing::warn!("allowlist update failed: {e}");
        }
    }
}

/// The leader's next membership step, if the committed config and the Raft
/// membership disagree (none while a joint configuration is in progress),
/// with the voter set it was planned against.
fn membership_step(
    core: &NodeCore,
    address_book: &[(NodeId, PeerNode)],
) -> Option<(membership::Step, BTreeSet<NodeId>)> {
    let m = core.consensus.metrics().borrow().clone();
    let mem = m.membership_config.membership();
    if mem.get_joint_config().len() > 1 {
        return None;
    }
    let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
    // A member's party is what this node's address book binds its id to,
    // never the label stored with it (an unknown id is removed).
    let nodes: BTreeMap<NodeId, PeerNode> = mem
        .nodes()
        .map(|(id, n)| {
            let party = core.directory.party_of_node(*id).unwrap_or_default();
            (*id, PeerNode::new(party, n.addr.clone()))
        })
        .collect();
    let config = core
        .consensus
        .ledger()
        .with_ledger(|l| l.shared_config())
        .ok()?;
    membership::next_step(&config, &voters, &nodes, address_book).map(|s| (s, voters))
}

async fn take_membership_step(core: &NodeCore, step: membership::Step, voters: &BTreeSet<NodeId>) {
    tracing::info!(?step, "membership follows the chain config");
    let res = match &step {
        membership::Step::AddLearner(id, node) => {
            core.consensus.add_learner(*id, node.clone(), false).await
        }
        membership::Step::Remove(id) if !voters.contains(id) => {
            core.consensus.remove_learners(BTreeSet::from([*id])).await
        }
        membership::Step::Remove(_)
        | membership::Step::Demote(_)
        | membership::Step::Promote(_) => match step.voters_after(voters) {
            Some(v) => {
                let retain = matches!(step, membership::Step::Demote(_));
                core.consensus.change_membership(v, retain).await
            }
            None => Ok(()),
        },
    };
    if let Err(e) = res {
        tracing::warn!(
            ?step,
            "membership step failed (retried on a later tick): {e}"
        );
    }
}
