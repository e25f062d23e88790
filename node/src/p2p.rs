//! Peer-to-peer transport of the customs ledger node.
//!
//! Bytes-level libp2p plumbing that knows nothing about Raft or the ledger: TCP + noise + yamux on
//! tokio, one request-response protocol (`/customs-ledger/rpc/1`, a length-prefixed bytes codec
//! with a hard frame cap) and gossipsub (signed messages, size-capped). A node's libp2p identity is
//! its Ed25519 node key ([`keypair_from_seed`]), and the chain config's list of peer ids is the
//! permissioning: connections from or to any peer outside the allowlist are denied as soon as the
//! peer's identity is known (right after the noise handshake) and counted in [`P2pStats`]; requests
//! and gossip from such peers never reach the [`InboundHandler`].
//!
//! The libp2p `Swarm` is owned by exactly one task (spawned by [`P2p::spawn`]); everything else
//! talks to it through [`P2pHandle`], which sends commands over an mpsc channel and awaits a oneshot
//! reply. Inbound requests are handled on their own tokio tasks so a slow handler never blocks the
//! swarm; their responses flow back to the swarm task through a channel. Known peers are redialled
//! with exponential backoff whenever their last connection closes.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{allow_block_list, connection_limits, noise, tcp, yamux, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

// Re-exported so callers (and tests) can use this API without naming libp2p or futures paths.
pub use futures::future::BoxFuture;
pub use libp2p::identity::Keypair;
pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};

/// The one request-response protocol spoken between nodes.
pub const RPC_PROTOCOL: &str = "/customs-ledger/rpc/1";
/// Default cap on one request or response frame (16 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Default cap on one gossip message (1 MiB).
pub const DEFAULT_MAX_GOSSIP_SIZE: usize = 1024 * 1024;

const STATUS_OK: u8 = 0;
const STATUS_ERR: u8 = 1;
/// Depth of the command and response channels into the swarm task.
const CHANNEL_DEPTH: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

/// The libp2p identity derived from a node's 32-byte Ed25519 secret key seed.
pub fn keypair_from_seed(seed: [u8; 32]) -> Keypair {
    let mut bytes = seed;
    // A 32-byte array is always a valid Ed25519 secret key; the only error case is a wrong length.
    Keypair::ed25519_from_bytes(&mut bytes).expect("a 32-byte seed is a valid ed25519 secret key")
}

/// The peer id of the node whose Ed25519 seed is `seed`.
pub fn peer_id_of(seed: [u8; 32]) -> PeerId {
    keypair_from_seed(seed).public().to_peer_id()
}

/// The peer id of `seed` in its canonical base58 text form (as stored in the chain config).
pub fn peer_id_string(seed: [u8; 32]) -> String {
    peer_id_of(seed).to_base58()
}

// ---------------------------------------------------------------------------------------------
// Errors, stats, handler, config
// ---------------------------------------------------------------------------------------------

/// Errors of the transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum P2pError {
    /// No answer within the caller's timeout (or the protocol's own request timeout).
    #[error("request timed out")]
    Timeout,
    /// The peer could not be dialled (no known address, or every address failed).
    #[error("could not dial peer {0}")]
    DialFailure(PeerId),
    /// The connection closed before the response arrived.
    #[error("connection to peer {0} closed before the response arrived")]
    ConnectionClosed(PeerId),
    /// The peer is not in the allowlist, so this node will not talk to it.
    #[error("peer {0} is not in the allowlist")]
    NotAllowed(PeerId),
    /// The remote handler answered with an error.
    #[error("remote error: {0}")]
    Remote(String),
    /// A message exceeds the configured size cap.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the rejected message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The remote does not speak the rpc protocol.
    #[error("peer does not support {RPC_PROTOCOL}")]
    UnsupportedProtocol,
    /// Stream-level I/O or framing error.
    #[error("i/o error: {0}")]
    Io(String),
    /// Gossip publish found no subscribed peer.
    #[error("no peer is subscribed to topic {0}")]
    NoPeers(String),
    /// Gossip publish failed for another reason.
    #[error("publish failed: {0}")]
    Publish(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// Building the swarm or its behaviours failed.
    #[error("transport setup failed: {0}")]
    Setup(String),
    /// The swarm task has stopped (shut down or crashed).
    #[error("p2p task closed")]
    Closed,
}

/// Counters of one node's transport (snapshot of atomics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct P2pStats {
    /// Distinct allowlisted peers currently connected.
    pub connected_peers: u64,
    /// Connections denied or closed because the peer is not in the allowlist (cumulative).
    pub rejected_peers: u64,
    /// Inbound requests handed to the handler (cumulative).
    pub requests_in: u64,
    /// Outbound requests sent (cumulative).
    pub requests_out: u64,
    /// Failed outbound requests, failed inbound streams and dropped unauthorised messages
    /// (cumulative).
    pub failures: u64,
    /// Inbound requests refused because their peer was over its in-flight budget (cumulative).
    pub throttled: u64,
}

#[derive(Debug, Default)]
struct StatsInner {
    connected_peers: AtomicU64,
    rejected_peers: AtomicU64,
    requests_in: AtomicU64,
    requests_out: AtomicU64,
    failures: AtomicU64,
    throttled: AtomicU64,
}

impl StatsInner {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> P2pStats {
        P2pStats {
            connected_peers: self.connected_peers.load(Ordering::Relaxed),
            rejected_peers: self.rejected_peers.load(Ordering::Relaxed),
            requests_in: self.requests_in.load(Ordering::Relaxed),
            requests_out: self.requests_out.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

/// Receives what allowlisted peers send to this node.
pub trait InboundHandler: Send + Sync + 'static {
    /// Answers one request. Runs on its own tokio task; `Err` is sent back as a remote error.
    fn handle(
        &self,
        from: PeerId,
        kind: u8,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>>;

    /// Receives one gossip message; `from` is the message's (signature-verified) author. Called on
    /// the swarm task: it must not block (hand the data to a channel). Default: ignore gossip.
    fn gossip(&self, from: PeerId, topic: &str, data: Vec<u8>) {
        let _ = (from, topic, data);
    }
}

/// How to start one node's transport.
#[derive(Clone)]
pub struct P2pConfig {
    /// The node's identity (see [`keypair_from_seed`]).
    pub keypair: Keypair,
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen_addrs: Vec<Multiaddr>,
    /// Peer ids this node talks to; everyone else is disconnected.
    pub allowlist: BTreeSet<PeerId>,
    /// Peers to dial at start and keep connected (redialled with backoff).
    pub known_peers: Vec<(PeerId, Multiaddr)>,
    /// Gossip topics to subscribe to at start.
    pub topics: Vec<String>,
    /// Where inbound requests and gossip go.
    pub handler: Arc<dyn InboundHandler>,
    /// Cap on one request or response frame, in bytes.
    pub max_message_size: usize,
    /// Cap on one gossip message, in bytes.
    pub max_gossip_size: usize,
    /// Upper bound for any request inside the protocol (callers pass shorter timeouts).
    pub request_timeout: Duration,
    /// Connections with no open stream are closed after this long (known peers are redialled).
    pub idle_connection_timeout: Duration,
    /// First redial delay after a known peer disconnects.
    pub redial_backoff_min: Duration,
    /// Largest redial delay (the delay doubles after each failed dial).
    pub redial_backoff_max: Duration,
    /// Concurrent request streams per connection (inbound + outbound).
    pub max_concurrent_streams: usize,
    /// Inbound requests one peer may have in flight (being handled) at once; more are refused
    /// with `PEER_BUSY` until some are answered.
    pub max_inflight_per_peer: usize,
    /// Payload bytes one peer may have in flight at once.
    pub max_inflight_bytes_per_peer: usize,
}

impl P2pConfig {
    /// A config with defaults: no listen address, empty allowlist, no known peers, no topics.
    pub fn new(keypair: Keypair, handler: Arc<dyn InboundHandler>) -> Self {
        Self {
            keypair,
            listen_addrs: Vec::new(),
            allowlist: BTreeSet::new(),
            known_peers: Vec::new(),
            topics: Vec::new(),
            handler,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_gossip_size: DEFAULT_MAX_GOSSIP_SIZE,
            request_timeout: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(60),
            redial_backoff_min: Duration::from_millis(200),
            redial_backoff_max: Duration::from_secs(5),
            max_concurrent_streams: 512,
            max_inflight_per_peer: 256,
            max_inflight_bytes_per_peer: 64 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for P2pConfig {
    // Never prints key material: only the public identity.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2pConfig")
            .field("peer_id", &self.keypair.public().to_peer_id())
            .field("listen_addrs", &self.listen_addrs)
            .field("allowlist", &self.allowlist)
            .field("known_peers", &self.known_peers)
            .field("topics", &self.topics)
            .field("max_message_size", &self.max_message_size)
            .field("max_gossip_size", &self.max_gossip_size)
            .field("request_timeout", &self.request_timeout)
            .field("idle_connection_timeout", &self.idle_connection_timeout)
            .field("redial_backoff_min", &self.redial_backoff_min)
            .field("redial_backoff_max", &self.redial_backoff_max)
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Wire codec
// ---------------------------------------------------------------------------------------------

/// One rpc request: a kind byte and opaque payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RpcRequest {
    kind: u8,
    payload: Vec<u8>,
}

/// One rpc response: the handler's result.
type RpcResponse = Result<Vec<u8>, String>;

/// Length-prefixed bytes codec: `u32 BE length || body`, body = `tag byte || bytes` (the tag is
/// the request kind, or the response status 0 = ok / 1 = error with UTF-8 text). `length` counts
/// the body and must be in `1..=max_message_size`; anything else is an `InvalidData` error.
/// Read errors are counted in `stats.failures` here, because libp2p drops a stream whose request
/// fails to decode without emitting any event.
#[derive(Debug, Clone)]
struct FrameCodec {
    max_message_size: usize,
    stats: Arc<StatsInner>,
}

impl FrameCodec {
    async fn read_frame<T: AsyncRead + Unpin + Send>(
        &self,
        io: &mut T,
    ) -> io::Result<(u8, Vec<u8>)> {
        let result = self.read_frame_inner(io).await;
        if let Err(e) = &result {
            StatsInner::bump(&self.stats.failures);
            if e.kind() == io::ErrorKind::InvalidData {
                tracing::warn!(error = %e, "rejected malformed or oversized rpc frame");
            }
        }
        result
    }

    async fn read_frame_inner<T: AsyncRead + Unpin + Send>(
        &self,
        io: &mut T,
    ) -> io::Result<(u8, Vec<u8>)> {
        let mut len_bytes = [0u8; 4];
        io.read_exact(&mut len_bytes).await?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "empty frame"));
        }
        if len > self.max_message_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame of {len} bytes exceeds the limit of {}",
                    self.max_message_size
                ),
            ));
        }
        let mut tag = [0u8; 1];
        io.read_exact(&mut tag).await?;
        // Grows with the bytes that actually arrive; never pre-allocates the claimed length.
        let mut body = Vec::new();
        let expected = (len - 1) as u64;
        io.take(expected).read_to_end(&mut body).await?;
        if body.len() as u64 != expected {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated frame",
            ));
        }
        Ok((tag[0], body))
    }

    async fn write_frame<T: AsyncWrite + Unpin + Send>(
        &self,
        io: &mut T,
        tag: u8,
        body: &[u8],
    ) -> io::Result<()> {
        let len = body.len() + 1;
        if len > self.max_message_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {len} bytes exceeds the limit of {}",
                    self.max_message_size
                ),
            ));
        }
        let len = u32::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&[tag]).await?;
        io.write_all(body).await?;
        io.flush().await
    }
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = RpcRequest;
    type Response = RpcResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RpcRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let (kind, payload) = self.read_frame(io).await?;
        Ok(RpcRequest { kind, payload })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RpcResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        match self.read_frame(io).await? {
            (STATUS_OK, bytes) => Ok(Ok(bytes)),
            (STATUS_ERR, bytes) => Ok(Err(String::from_utf8_lossy(&bytes).into_owned())),
            (other, _) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown response status {other}"),
            )),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: RpcRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_frame(io, req.kind, &req.payload).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: RpcResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            Ok(bytes) => self.write_frame(io, STATUS_OK, &bytes).await,
            Err(text) => self.write_frame(io, STATUS_ERR, text.as_bytes()).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------------------------

/// The allowlist gate comes first: when it denies a connection no other behaviour ever sees it.
#[derive(NetworkBehaviour)]
struct Behaviour {
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    rpc: request_response::Behaviour<FrameCodec>,
    gossip: gossipsub::Behaviour,
}

fn build_swarm(config: &P2pConfig, stats: &Arc<StatsInner>) -> Result<Swarm<Behaviour>, P2pError> {
    let setup = |e: &dyn fmt::Display| P2pError::Setup(e.to_string());
    let mut allow = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
    for peer in &config.allowlist {
        allow.allow_peer(*peer);
    }
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(128))
            .with_max_established_per_peer(Some(4)),
    );
    let protocol = StreamProtocol::new(RPC_PROTOCOL);
    let rpc = request_response::Behaviour::with_codec(
        FrameCodec {
            max_message_size: config.max_message_size,
            stats: stats.clone(),
        },
        [(protocol, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(config.max_concurrent_streams),
    );
    let gossip_config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(config.max_gossip_size)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| setup(&e))?;
    let gossip = gossipsub::Behaviour::new(
        MessageAuthenticity::Signed(config.keypair.clone()),
        gossip_config,
    )
    .map_err(|e| setup(&e))?;
    let behaviour = Behaviour {
        allow,
        limits,
        rpc,
        gossip,
    };
    let idle = config.idle_connection_timeout;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();
    Ok(swarm)
}

// ---------------------------------------------------------------------------------------------
// Handle
// ---------------------------------------------------------------------------------------------

type Reply<T> = oneshot::Sender<Result<T, P2pError>>;

enum Command {
    Request {
        peer: PeerId,
        kind: u8,
        payload: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: Reply<()>,
    },
    Subscribe {
        topic: String,
        reply: Reply<()>,
    },
    GossipPeers {
        topic: String,
        reply: Reply<Vec<PeerId>>,
    },
    AddPeerAddress {
        peer: PeerId,
        addr: Multiaddr,
        reply: Reply<()>,
    },
    SetAllowlist {
        allowlist: BTreeSet<PeerId>,
        reply: Reply<()>,
    },
    ConnectedPeers {
        reply: Reply<Vec<PeerId>>,
    },
    Shutdown {
        reply: Reply<()>,
    },
}

/// Cheap, cloneable handle to a running transport. The swarm task stops on
/// [`P2pHandle::shutdown`] or when every handle has been dropped.
#[derive(Clone)]
pub struct P2pHandle {
    commands: mpsc::Sender<Command>,
    stats: Arc<StatsInner>,
    local_peer_id: PeerId,
    listen_addrs: Arc<RwLock<Vec<Multiaddr>>>,
    max_message_size: usize,
    max_gossip_size: usize,
}

impl fmt::Debug for P2pHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2pHandle")
            .field("local_peer_id", &self.local_peer_id)
            .field("listen_addrs", &self.listen_addrs())
            .finish_non_exhaustive()
    }
}

impl P2pHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| P2pError::Closed)?;
        rx.await.map_err(|_| P2pError::Closed)?
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses the node actually listens on (port 0 resolved).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        match self.listen_addrs.read() {
            Ok(addrs) => addrs.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Sends one request to `peer` and waits at most `timeout` for its response. Dials the peer
    /// if needed (addresses from [`P2pHandle::add_peer_address`] or the known peers).
    pub async fn request(
        &self,
        peer: PeerId,
        kind: u8,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, P2pError> {
        let size = payload.len() + 1;
        if size > self.max_message_size {
            StatsInner::bump(&self.stats.failures);
            return Err(P2pError::TooLarge {
                size,
                limit: self.max_message_size,
            });
        }
        let call = self.call(|reply| Command::Request {
            peer,
            kind,
            payload,
            reply,
        });
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => {
                StatsInner::bump(&self.stats.failures);
                Err(P2pError::Timeout)
            }
        }
    }

    /// Publishes `data` on gossip `topic` (subscribing this node to it first if needed).
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), P2pError> {
        if data.len() > self.max_gossip_size {
            return Err(P2pError::TooLarge {
                size: data.len(),
                limit: self.max_gossip_size,
            });
        }
        let topic = topic.to_owned();
        self.call(|reply| Command::Publish { topic, data, reply })
            .await
    }

    /// Subscribes to gossip `topic`; its messages go to [`InboundHandler::gossip`].
    pub async fn subscribe(&self, topic: &str) -> Result<(), P2pError> {
        let topic = topic.to_owned();
        self.call(|reply| Command::Subscribe { topic, reply }).await
    }

    /// Connected peers known to be subscribed to gossip `topic`.
    pub async fn gossip_peers(&self, topic: &str) -> Result<Vec<PeerId>, P2pError> {
        let topic = topic.to_owned();
        self.call(|reply| Command::GossipPeers { topic, reply })
            .await
    }

    /// Records an address of `peer`, makes it a known peer (kept connected) and dials it if it is
    /// allowlisted and not connected.
    pub async fn add_peer_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), P2pError> {
        self.call(|reply| Command::AddPeerAddress { peer, addr, reply })
            .await
    }

    /// Replaces the allowlist; peers no longer on it are disconnected at once.
    pub async fn set_allowlist(&self, allowlist: BTreeSet<PeerId>) -> Result<(), P2pError> {
        self.call(|reply| Command::SetAllowlist { allowlist, reply })
            .await
    }

    /// Peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, P2pError> {
        self.call(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Snapshot of the counters.
    pub fn stats(&self) -> P2pStats {
        self.stats.snapshot()
    }

    /// Stops the swarm task (closing every connection and listener) and waits for its answer.
    /// Returns `Ok` also when it had already stopped.
    pub async fn shutdown(&self) -> Result<(), P2pError> {
        match self.call(|reply| Command::Shutdown { reply }).await {
            Ok(()) | Err(P2pError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Swarm task
// ---------------------------------------------------------------------------------------------

/// Entry point: starts one node's transport.
#[derive(Debug)]
pub struct P2p;

impl P2p {
    /// Builds the swarm, starts listening, dials the known peers and spawns the swarm task on the
    /// current tokio runtime. Returns once every listener has reported its bound address (see
    /// [`P2pHandle::listen_addrs`]).
    pub async fn spawn(config: P2pConfig) -> Result<(P2pHandle, JoinHandle<()>), P2pError> {
        let stats = Arc::new(StatsInner::default());
        let mut swarm = build_swarm(&config, &stats)?;
        let local_peer_id = *swarm.local_peer_id();
        let mut pending_listeners = Vec::new();
        for addr in &config.listen_addrs {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| P2pError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
            pending_listeners.push(id);
        }
        // Wait for the bound addresses before anything else can happen on this swarm.
        let mut bound = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        while !pending_listeners.is_empty() {
            tokio::select! {
                event = swarm.select_next_some() => match event {
                    SwarmEvent::NewListenAddr { listener_id, address } => {
                        pending_listeners.retain(|id| *id != listener_id);
                        bound.push(address);
                    }
                    SwarmEvent::ListenerClosed { listener_id, reason, .. }
                        if pending_listeners.contains(&listener_id) =>
                    {
                        return Err(P2pError::Listen {
                            addr: format!("{listener_id:?}"),
                            reason: format!("{reason:?}"),
                        });
                    }
                    SwarmEvent::ListenerError { error, .. } => {
                        return Err(P2pError::Listen { addr: String::new(), reason: error.to_string() });
                    }
                    _ => {}
                },
                _ = &mut deadline => {
                    return Err(P2pError::Listen {
                        addr: format!("{:?}", config.listen_addrs),
                        reason: "no bound address reported in time".into(),
                    });
                }
            }
        }
        tracing::info!(peer = %local_peer_id, addrs = ?bound, "p2p listening");

        let listen_addrs = Arc::new(RwLock::new(bound));
        let (cmd_tx, cmd_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (resp_tx, resp_rx) = mpsc::channel(CHANNEL_DEPTH);
        let handle = P2pHandle {
            commands: cmd_tx,
            stats: stats.clone(),
            local_peer_id,
            listen_addrs: listen_addrs.clone(),
            max_message_size: config.max_message_size,
            max_gossip_size: config.max_gossip_size,
        };
        let mut task = SwarmTask {
            swarm,
            handler: config.handler.clone(),
            allowlist: config.allowlist.clone(),
            stats,
            listen_addrs,
            pending: HashMap::new(),
            known: HashMap::new(),
            redial: HashMap::new(),
            resp_tx,
            inflight: HashMap::new(),
            max_inflight: config.max_inflight_per_peer.max(1),
            max_inflight_bytes: config
                .max_inflight_bytes_per_peer
                .max(config.max_message_size),
            max_message_size: config.max_message_size,
            backoff_min: config.redial_backoff_min,
            backoff_max: config.redial_backoff_max,
        };
        for topic in &config.topics {
            task.subscribe(topic)?;
        }
        for (peer, addr) in &config.known_peers {
            task.add_known(*peer, addr.clone());
        }
        let join = tokio::spawn(task.run(cmd_rx, resp_rx));
        Ok((handle, join))
    }
}

struct Redial {
    at: Instant,
    backoff: Duration,
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    handler: Arc<dyn InboundHandler>,
    allowlist: BTreeSet<PeerId>,
    stats: Arc<StatsInner>,
    listen_addrs: Arc<RwLock<Vec<Multiaddr>>>,
    pending: HashMap<OutboundRequestId, (PeerId, Reply<Vec<u8>>)>,
    known: HashMap<PeerId, Vec<Multiaddr>>,
    redial: HashMap<PeerId, Redial>,
    resp_tx: mpsc::Sender<Answered>,
    /// Inbound requests (count, payload bytes) being handled, per peer.
    inflight: HashMap<PeerId, (usize, usize)>,
    max_inflight: usize,
    max_inflight_bytes: usize,
    max_message_size: usize,
    backoff_min: Duration,
    backoff_max: Duration,
}

/// A handled inbound request: who sent it, how many payload bytes it held, and the answer.
type Answered = (
    PeerId,
    usize,
    request_response::ResponseChannel<RpcResponse>,
    RpcResponse,
);
type ResponseRx = mpsc::Receiver<Answered>;

impl SwarmTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut responses: ResponseRx) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                command = commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        let _ = reply.send(Ok(()));
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some((peer, bytes, channel, response)) = responses.recv() => {
                    self.release(peer, bytes);
                    self.send_response(channel, response);
                }
                _ = tick.tick() => self.redial_due(),
            }
        }
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(P2pError::Closed));
        }
        self.stats.connected_peers.store(0, Ordering::Relaxed);
        tracing::info!(peer = %self.swarm.local_peer_id(), "p2p stopped");
    }

    fn subscribe(&mut self, topic: &str) -> Result<(), P2pError> {
        self.swarm
            .behaviour_mut()
            .gossip
            .subscribe(&IdentTopic::new(topic))
            .map(|_| ())
            .map_err(|e| P2pError::Publish(e.to_string()))
    }

    fn add_known(&mut self, peer: PeerId, addr: Multiaddr) {
        let addrs = self.known.entry(peer).or_default();
        if !addrs.contains(&addr) {
            addrs.push(addr.clone());
        }
        self.swarm.add_peer_address(peer, addr);
        if self.allowlist.contains(&peer) && !self.swarm.is_connected(&peer) {
            self.dial(peer);
        }
    }

    fn dial(&mut self, peer: PeerId) {
        let Some(addrs) = self.known.get(&peer) else {
            return;
        };
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs.clone())
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "dial not started");
        }
    }

    fn schedule_redial(&mut self, peer: PeerId, failed: bool) {
        if !self.known.contains_key(&peer) || !self.allowlist.contains(&peer) {
            return;
        }
        let backoff = match self.redial.get(&peer) {
            Some(r) if failed => (r.backoff * 2).min(self.backoff_max),
            Some(r) => r.backoff,
            None => self.backoff_min,
        };
        self.redial.insert(
            peer,
            Redial {
                at: Instant::now() + backoff,
                backoff,
            },
        );
    }

    fn redial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .redial
            .iter()
            .filter(|(_, r)| r.at <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            if self.swarm.is_connected(&peer) || !self.allowlist.contains(&peer) {
                self.redial.remove(&peer);
                continue;
            }
            // Keep the entry (pushed far out) until the dial reports success or failure.
            if let Some(r) = self.redial.get_mut(&peer) {
                r.at = now + self.backoff_max * 4;
            }
            tracing::debug!(%peer, "redialling known peer");
            self.dial(peer);
        }
    }

    fn refresh_connected(&self) {
        let n = self
            .swarm
            .connected_peers()
            .filter(|p| self.allowlist.contains(p))
            .count();
        self.stats
            .connected_peers
            .store(n as u64, Ordering::Relaxed);
    }

    fn reject(&mut self, peer: PeerId, why: &str) {
        StatsInner::bump(&self.stats.rejected_peers);
        tracing::warn!(%peer, why, "rejected connection from peer not in allowlist");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request {
                peer,
                kind,
                payload,
                reply,
            } => {
                if !self.allowlist.contains(&peer) {
                    StatsInner::bump(&self.stats.failures);
                    let _ = reply.send(Err(P2pError::NotAllowed(peer)));
                    return;
                }
                if !self.swarm.is_connected(&peer) {
                    // Dial failures evict addresses from the swarm's cache; put known ones back.
                    if let Some(addrs) = self.known.get(&peer).cloned() {
                        for addr in addrs {
                            self.swarm.add_peer_address(peer, addr);
                        }
                    }
                }
                StatsInner::bump(&self.stats.requests_out);
                let id = self
                    .swarm
                    .behaviour_mut()
                    .rpc
                    .send_request(&peer, RpcRequest { kind, payload });
                self.pending.insert(id, (peer, reply));
            }
            Command::Publish { topic, data, reply } => {
                let result = self.subscribe(&topic).and_then(|()| {
                    self.swarm
                        .behaviour_mut()
                        .gossip
                        .publish(IdentTopic::new(topic.as_str()), data)
                        .map(|_| ())
                        .map_err(|e| match e {
                            gossipsub::PublishError::NoPeersSubscribedToTopic => {
                                P2pError::NoPeers(topic.clone())
                            }
                            other => P2pError::Publish(other.to_string()),
                        })
                });
                let _ = reply.send(result);
            }
            Command::Subscribe { topic, reply } => {
                let _ = reply.send(self.subscribe(&topic));
            }
            Command::GossipPeers { topic, reply } => {
                let hash = IdentTopic::new(topic).hash();
                let peers = self
                    .swarm
                    .behaviour()
                    .gossip
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(Ok(peers));
            }
            Command::AddPeerAddress { peer, addr, reply } => {
                self.add_known(peer, addr);
                let _ = reply.send(Ok(()));
            }
            Command::SetAllowlist { allowlist, reply } => {
                self.set_allowlist(allowlist);
                let _ = reply.send(Ok(()));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(Ok(self.swarm.connected_peers().copied().collect()));
            }
            Command::Shutdown { reply } => {
                // Handled in `run`; unreachable here but answer anyway.
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn set_allowlist(&mut self, allowlist: BTreeSet<PeerId>) {
        let removed: Vec<PeerId> = self.allowlist.difference(&allowlist).copied().collect();
        let added: Vec<PeerId> = allowlist.difference(&self.allowlist).copied().collect();
        self.allowlist = allowlist;
        for peer in &added {
            self.swarm.behaviour_mut().allow.allow_peer(*peer);
        }
        for peer in removed {
            // `disallow_peer` also makes the gate close existing connections; disconnect
            // explicitly as well so nothing more is read from them.
            self.swarm.behaviour_mut().allow.disallow_peer(peer);
            self.redial.remove(&peer);
            if self.swarm.disconnect_peer_id(peer).is_ok() {
                self.reject(peer, "removed from allowlist");
            }
        }
        for peer in added {
            if self.known.contains_key(&peer) && !self.swarm.is_connected(&peer) {
                self.dial(peer);
            }
        }
        self.refresh_connected();
    }

    /// A request of `peer` holding `bytes` has been answered.
    fn release(&mut self, peer: PeerId, bytes: usize) {
        if let std::collections::hash_map::Entry::Occupied(mut e) = self.inflight.entry(peer) {
            let (n, b) = e.get_mut();
            *n = n.saturating_sub(1);
            *b = b.saturating_sub(bytes);
            if *n == 0 {
                e.remove();
            }
        }
    }

    fn send_response(
        &mut self,
        channel: request_response::ResponseChannel<RpcResponse>,
        response: RpcResponse,
    ) {
        let response = match response {
            Ok(bytes) if bytes.len() + 1 > self.max_message_size => {
                tracing::warn!(
                    size = bytes.len(),
                    "handler response exceeds the frame limit"
                );
                Err(format!(
                    "response of {} bytes exceeds the limit of {} bytes",
                    bytes.len(),
                    self.max_message_size
                ))
            }
            Err(text) if text.len() + 1 > self.max_message_size => {
                Err("error text exceeds the frame limit".to_owned())
            }
            other => other,
        };
        if self
            .swarm
            .behaviour_mut()
            .rpc
            .send_response(channel, response)
            .is_err()
        {
            // The stream closed or timed out meanwhile; the InboundFailure event counts it.
            tracing::debug!("response dropped: inbound stream no longer open");
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(event)) => self.on_rpc(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(_) => {}
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                if !self.allowlist.contains(&peer_id) {
                    // The gate denies these before they are established; this covers a race with
                    // an allowlist change.
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    self.reject(peer_id, "connection established with unlisted peer");
                } else {
                    tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                    self.redial.remove(&peer_id);
                }
                self.refresh_connected();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                if num_established == 0 {
                    tracing::debug!(peer = %peer_id, cause = ?cause, "disconnected");
                    self.schedule_redial(peer_id, false);
                }
                self.refresh_connected();
            }
            SwarmEvent::IncomingConnectionError {
                error,
                peer_id,
                send_back_addr,
                ..
            } => match error {
                libp2p::swarm::ListenError::Denied { cause } => {
                    if let Some(peer) = peer_id {
                        if cause
                            .downcast_ref::<allow_block_list::NotAllowed>()
                            .is_some()
                        {
                            self.reject(peer, "inbound connection denied");
                        } else {
                            tracing::warn!(%peer, %cause, "inbound connection denied by limits");
                        }
                    }
                }
                other => {
                    tracing::debug!(addr = %send_back_addr, error = %other, "inbound connection failed");
                }
            },
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                let denied = matches!(
                    &error,
                    libp2p::swarm::DialError::Denied { cause }
                        if cause.downcast_ref::<allow_block_list::NotAllowed>().is_some()
                );
                if denied {
                    self.reject(peer, "outbound connection denied");
                }
                tracing::debug!(%peer, error = %error, "dial failed");
                if !self.swarm.is_connected(&peer) {
                    self.schedule_redial(peer, true);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                if let Ok(mut addrs) = self.listen_addrs.write() {
                    if !addrs.contains(&address) {
                        addrs.push(address);
                    }
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if let Ok(mut addrs) = self.listen_addrs.write() {
                    addrs.retain(|a| *a != address);
                }
            }
            _ => {}
        }
    }

    fn on_rpc(&mut self, event: request_response::Event<RpcRequest, RpcResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if !self.allowlist.contains(&peer) {
                    // Dropping the channel closes the stream without an answer.
                    StatsInner::bump(&self.stats.failures);
                    let _ = self.swarm.disconnect_peer_id(peer);
                    self.reject(peer, "request from unlisted peer");
                    return;
                }
                let bytes = request.payload.len();
                let (n, b) = self.inflight.get(&peer).copied().unwrap_or((0, 0));
                if n >= self.max_inflight || b + bytes > self.max_inflight_bytes {
                    // One allowlisted peer may not hold more of this node's memory and
                    // tasks than its budget, however fast it sends.
                    StatsInner::bump(&self.stats.throttled);
                    tracing::debug!(%peer, in_flight = n, bytes = b, "peer over its in-flight budget");
                    self.send_response(
                        channel,
                        Err(format!(
                            "PEER_BUSY: {n} requests ({b} bytes) of this peer are still being handled"
                        )),
                    );
                    return;
                }
                self.inflight.insert(peer, (n + 1, b + bytes));
                StatsInner::bump(&self.stats.requests_in);
                let handler = self.handler.clone();
                let resp_tx = self.resp_tx.clone();
                tokio::spawn(async move {
                    let response = handler.handle(peer, request.kind, request.payload).await;
                    // Fails only if the swarm task has stopped.
                    let _ = resp_tx.send((peer, bytes, channel, response)).await;
                });
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(response.map_err(P2pError::Remote));
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                StatsInner::bump(&self.stats.failures);
                tracing::debug!(%peer, %error, "outbound request failed");
                if let Some((peer, reply)) = self.pending.remove(&request_id) {
                    let err = match error {
                        OutboundFailure::DialFailure => P2pError::DialFailure(peer),
                        OutboundFailure::Timeout => P2pError::Timeout,
                        OutboundFailure::ConnectionClosed => P2pError::ConnectionClosed(peer),
                        OutboundFailure::UnsupportedProtocols => P2pError::UnsupportedProtocol,
                        OutboundFailure::Io(e) => P2pError::Io(e.to_string()),
                    };
                    let _ = reply.send(Err(err));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                StatsInner::bump(&self.stats.failures);
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        if let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        {
            let author_ok = message
                .source
                .is_some_and(|author| self.allowlist.contains(&author));
            let acceptance = if author_ok && self.allowlist.contains(&propagation_source) {
                MessageAcceptance::Accept
            } else {
                StatsInner::bump(&self.stats.failures);
                tracing::warn!(
                    from = %propagation_source,
                    author = ?message.source,
                    "dropped gossip from peer not in allowlist"
                );
                MessageAcceptance::Reject
            };
            let _ = self
                .swarm
                .behaviour_mut()
                .gossip
                .report_message_validation_result(&message_id, &propagation_source, acceptance);
            if let (MessageAcceptance::Accept, Some(author)) = (acceptance, message.source) {
                self.handler
                    .gossip(author, message.topic.as_str(), message.data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use request_response::Codec;

    fn codec(max: usize) -> FrameCodec {
        FrameCodec {
            max_message_size: max,
            stats: Arc::new(StatsInner::default()),
        }
    }

    fn proto() -> StreamProtocol {
        StreamProtocol::new(RPC_PROTOCOL)
    }

    #[tokio::test]
    async fn request_and_response_round_trip() {
        let mut c = codec(64);
        let mut buf = Vec::new();
        let req = RpcRequest {
            kind: 7,
            payload: b"hello".to_vec(),
        };
        c.write_request(&proto(), &mut buf, req.clone())
            .await
            .expect("write");
        assert_eq!(buf, [0, 0, 0, 6, 7, b'h', b'e', b'l', b'l', b'o']);
        let got = c
            .read_request(&proto(), &mut Cursor::new(buf))
            .await
            .expect("read");
        assert_eq!(got, req);

        for res in [Ok(b"ok".to_vec()), Err("nope".to_owned()), Ok(Vec::new())] {
            let mut buf = Vec::new();
            c.write_response(&proto(), &mut buf, res.clone())
                .await
                .expect("write");
            let got = c
                .read_response(&proto(), &mut Cursor::new(buf))
                .await
                .expect("read");
            assert_eq!(got, res);
        }
    }

    #[tokio::test]
    async fn oversized_and_malformed_frames_are_rejected() {
        let mut c = codec(16);
        // Claims 4 GiB - 1 with no body: rejected on the header alone, nothing allocated.
        let err = c
            .read_request(&proto(), &mut Cursor::new(vec![0xff, 0xff, 0xff, 0xff]))
            .await
            .expect_err("oversized");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Zero-length frame.
        let err = c
            .read_request(&proto(), &mut Cursor::new(vec![0, 0, 0, 0]))
            .await
            .expect_err("empty");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Truncated body.
        let err = c
            .read_request(&proto(), &mut Cursor::new(vec![0, 0, 0, 10, 1, 2, 3]))
            .await
            .expect_err("truncated");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // Unknown response status.
        let err = c
            .read_response(&proto(), &mut Cursor::new(vec![0, 0, 0, 1, 9]))
            .await
            .expect_err("status");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Writer refuses frames over the cap.
        let mut buf = Vec::new();
        let err = c
            .write_request(
                &proto(),
                &mut buf,
                RpcRequest {
                    kind: 1,
                    payload: vec![0; 16],
                },
            )
            .await
            .expect_err("too big");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(buf.is_empty());
    }

    #[test]
    fn peer_id_is_deterministic() {
        assert_eq!(peer_id_of([1; 32]), peer_id_of([1; 32]));
        assert_ne!(peer_id_of([1; 32]), peer_id_of([2; 32]));
        assert_eq!(peer_id_string([1; 32]), peer_id_of([1; 32]).to_base58());
    }
}
