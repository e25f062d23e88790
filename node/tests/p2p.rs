//! Integration tests of the p2p transport over real sockets on 127.0.0.1.

use node::p2p;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use p2p::{
    BoxFuture, InboundHandler, Multiaddr, P2p, P2pConfig, P2pError, P2pHandle, PeerId, Protocol,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

const T: Duration = Duration::from_secs(5);
const TOPIC: &str = "customs/cosign";

/// What a node's handler saw.
#[derive(Debug)]
enum Seen {
    Request {
        from: PeerId,
        kind: u8,
        len: usize,
    },
    Gossip {
        from: PeerId,
        topic: String,
        data: Vec<u8>,
    },
}

/// Echo handler: answers `tag || kind || payload`; kind 255 answers an error; reports everything.
struct Echo {
    tag: &'static [u8],
    seen: mpsc::UnboundedSender<Seen>,
}

impl InboundHandler for Echo {
    fn handle(
        &self,
        from: PeerId,
        kind: u8,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let _ = self.seen.send(Seen::Request {
            from,
            kind,
            len: payload.len(),
        });
        let tag = self.tag;
        Box::pin(async move {
            if kind == 255 {
                return Err("refused".to_owned());
            }
            let mut out = tag.to_vec();
            out.push(kind);
            out.extend_from_slice(&payload);
            Ok(out)
        })
    }

    fn gossip(&self, from: PeerId, topic: &str, data: Vec<u8>) {
        let _ = self.seen.send(Seen::Gossip {
            from,
            topic: topic.to_owned(),
            data,
        });
    }
}

struct Node {
    handle: P2pHandle,
    join: JoinHandle<()>,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Node {
    fn addr(&self) -> Multiaddr {
        self.handle.listen_addrs()[0].clone()
    }

    fn port(&self) -> u16 {
        self.addr()
            .iter()
            .find_map(|p| match p {
                Protocol::Tcp(port) => Some(port),
                _ => None,
            })
            .expect("tcp port")
    }
}

fn seed(n: u8) -> [u8; 32] {
    [n; 32]
}

fn allow(seeds: &[u8]) -> BTreeSet<PeerId> {
    seeds.iter().map(|n| p2p::peer_id_of(seed(*n))).collect()
}

fn config(
    n: u8,
    allowed: &[u8],
    known: &[(u8, &Node)],
    tag: &'static [u8],
) -> (P2pConfig, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut cfg = P2pConfig::new(
        p2p::keypair_from_seed(seed(n)),
        Arc::new(Echo { tag, seen: tx }),
    );
    cfg.listen_addrs = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")];
    cfg.allowlist = allow(allowed);
    cfg.known_peers = known
        .iter()
        .map(|(m, node)| (p2p::peer_id_of(seed(*m)), node.addr()))
        .collect();
    cfg.topics = vec![TOPIC.to_owned()];
    cfg.redial_backoff_max = Duration::from_millis(800);
    (cfg, rx)
}

async fn start(cfg: P2pConfig, seen: mpsc::UnboundedReceiver<Seen>) -> Node {
    let (handle, join) = P2p::spawn(cfg).await.expect("spawn");
    Node { handle, join, seen }
}

async fn node(n: u8, allowed: &[u8], known: &[(u8, &Node)], tag: &'static [u8]) -> Node {
    let (cfg, rx) = config(n, allowed, known, tag);
    start(cfg, rx).await
}

/// Retries a request until it succeeds or `within` elapses (connections come up asynchronously).
async fn request_until_ok(
    from: &P2pHandle,
    to: PeerId,
    kind: u8,
    payload: &[u8],
    within: Duration,
) -> Vec<u8> {
    let deadline = Instant::now() + within;
    loop {
        match from.request(to, kind, payload.to_vec(), T).await {
            Ok(bytes) => return bytes,
            Err(e) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = e;
            }
            Err(e) => panic!("request never succeeded: {e}"),
        }
    }
}

/// Waits (bounded) until `cond` holds on the node's stats.
async fn wait_stats(handle: &P2pHandle, what: &str, cond: impl Fn(p2p::P2pStats) -> bool) {
    let deadline = Instant::now() + T;
    while !cond(handle.stats()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

#[tokio::test]
async fn identity_is_derived_from_the_seed() {
    let kp = p2p::keypair_from_seed(seed(9));
    assert_eq!(kp.public().to_peer_id(), p2p::peer_id_of(seed(9)));
    assert_eq!(
        p2p::peer_id_string(seed(9)),
        p2p::peer_id_of(seed(9)).to_string()
    );
    assert_ne!(p2p::peer_id_of(seed(9)), p2p::peer_id_of(seed(10)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_allowlisted_nodes_exchange_requests_both_ways() {
    init_tracing();
    let b = node(2, &[1, 2], &[], b"B:").await;
    let mut a = node(1, &[1, 2], &[(2, &b)], b"A:").await;
    let (pa, pb) = (p2p::peer_id_of(seed(1)), p2p::peer_id_of(seed(2)));
    assert_eq!(a.handle.local_peer_id(), pa);

    let reply = request_until_ok(&a.handle, pb, 7, b"hello", T).await;
    assert_eq!(reply, b"B:\x07hello");
    // B -> A over the connection A opened.
    let reply = request_until_ok(&b.handle, pa, 8, b"back", T).await;
    assert_eq!(reply, b"A:\x08back");
    match timeout(T, a.seen.recv())
        .await
        .expect("seen")
        .expect("open")
    {
        Seen::Request { from, kind, len } => assert_eq!((from, kind, len), (pb, 8, 4)),
        other => panic!("unexpected {other:?}"),
    }
    // A remote handler error comes back as Remote.
    let err = a
        .handle
        .request(pb, 255, vec![], T)
        .await
        .expect_err("remote error");
    assert_eq!(err, P2pError::Remote("refused".into()));

    // 100 concurrent requests, each answered with its own payload.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100u32 {
        let h = a.handle.clone();
        set.spawn(async move {
            let payload = i.to_be_bytes().to_vec();
            let reply = h
                .request(pb, 1, payload.clone(), Duration::from_secs(20))
                .await;
            (payload, reply)
        });
    }
    let mut answered = 0;
    while let Some(res) = set.join_next().await {
        let (payload, reply) = res.expect("task");
        let mut want = b"B:\x01".to_vec();
        want.extend_from_slice(&payload);
        assert_eq!(reply.expect("answered"), want);
        answered += 1;
    }
    assert_eq!(answered, 100);

    let sa = a.handle.stats();
    assert!(sa.requests_out >= 102, "{sa:?}");
    assert_eq!(sa.connected_peers, 1);
    assert!(b.handle.stats().requests_in >= 102);
    assert_eq!(b.handle.stats().rejected_peers, 0);

    a.handle.shutdown().await.expect("shutdown");
    b.handle.shutdown().await.expect("shutdown");
    timeout(T, a.join).await.expect("a stops").expect("a task");
    timeout(T, b.join).await.expect("b stops").expect("b task");
    // After shutdown the handle reports Closed.
    assert_eq!(
        a.handle.request(pb, 1, vec![], T).await,
        Err(P2pError::Closed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_peer_is_disconnected_and_never_reaches_the_handler() {
    init_tracing();
    // B allows A and B only; C (seed 3) allows B, so C itself does not refuse.
    let mut b = node(2, &[1, 2], &[], b"B:").await;
    let a = node(1, &[1, 2], &[(2, &b)], b"A:").await;
    let c = node(3, &[2, 3], &[(2, &b)], b"C:").await;
    let pb = p2p::peer_id_of(seed(2));

    let err = c
        .handle
        .request(pb, 1, b"let me in".to_vec(), T)
        .await
        .expect_err("unknown peer must fail");
    assert_ne!(err, P2pError::Timeout, "should fail fast, got {err}");
    wait_stats(&b.handle, "rejected_peers", |s| s.rejected_peers >= 1).await;
    // A request to a peer outside the caller's own allowlist fails locally.
    assert_eq!(
        c.handle
            .request(p2p::peer_id_of(seed(1)), 1, vec![], T)
            .await,
        Err(P2pError::NotAllowed(p2p::peer_id_of(seed(1))))
    );

    // B still serves A; its handler only ever saw A.
    assert_eq!(
        request_until_ok(&a.handle, pb, 2, b"x", T).await,
        b"B:\x02x"
    );
    let mut seen_from = Vec::new();
    while let Ok(s) = b.seen.try_recv() {
        if let Seen::Request { from, .. } = s {
            seen_from.push(from);
        }
    }
    assert!(!seen_from.is_empty());
    assert!(
        seen_from.iter().all(|p| *p == p2p::peer_id_of(seed(1))),
        "{seen_from:?}"
    );
    assert!(!b
        .handle
        .connected_peers()
        .await
        .expect("peers")
        .contains(&p2p::peer_id_of(seed(3))));
    assert_eq!(b.handle.stats().connected_peers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_can_be_replaced_at_runtime() {
    init_tracing();
    let b = node(2, &[1, 2], &[], b"B:").await;
    let a = node(1, &[1, 2], &[(2, &b)], b"A:").await;
    let (pa, pb) = (p2p::peer_id_of(seed(1)), p2p::peer_id_of(seed(2)));
    request_until_ok(&a.handle, pb, 1, b"1", T).await;

    b.handle.set_allowlist(allow(&[2])).await.expect("set");
    wait_stats(&b.handle, "rejected after removal", |s| {
        s.rejected_peers >= 1
    })
    .await;
    assert!(a.handle.request(pb, 1, b"2".to_vec(), T).await.is_err());
    // A keeps redialling B; each new connection is accepted by TCP and then
    // dropped by B's allowlist, so one may exist for an instant. What must
    // hold is that B does not keep one.
    let deadline = Instant::now() + T;
    while b
        .handle
        .connected_peers()
        .await
        .expect("peers")
        .contains(&pa)
    {
        assert!(
            Instant::now() < deadline,
            "B kept a connection to a removed peer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    b.handle.set_allowlist(allow(&[1, 2])).await.expect("set");
    assert_eq!(
        request_until_ok(&a.handle, pb, 1, b"3", T).await,
        b"B:\x013"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_and_garbage_do_not_crash_the_node() {
    init_tracing();
    // B accepts frames up to 64 KiB; A is configured to send up to 1 MiB.
    let (mut cfg_b, rx_b) = config(2, &[1, 2], &[], b"B:");
    cfg_b.max_message_size = 64 * 1024;
    let mut b = start(cfg_b, rx_b).await;
    let (mut cfg_a, rx_a) = config(1, &[1, 2], &[(2, &b)], b"A:");
    cfg_a.max_message_size = 1024 * 1024;
    let a = start(cfg_a, rx_a).await;
    let pb = p2p::peer_id_of(seed(2));
    request_until_ok(&a.handle, pb, 1, b"warm-up", T).await;
    let _ = timeout(T, b.seen.recv()).await.expect("warm-up seen");

    // A frame over B's limit reaches B's codec and is refused there.
    let err = a
        .handle
        .request(pb, 1, vec![0xab; 200 * 1024], T)
        .await
        .expect_err("oversized must fail");
    assert_ne!(err, P2pError::Timeout, "should fail fast, got {err}");
    // A frame over the caller's own limit never leaves it.
    assert!(matches!(
        a.handle.request(pb, 1, vec![0; 1024 * 1024], T).await,
        Err(P2pError::TooLarge { .. })
    ));

    // Raw TCP clients sending garbage to B's port.
    let port = b.port();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..4 {
        let mut junk = Vec::with_capacity(64 * 1024);
        while junk.len() < 64 * 1024 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.extend_from_slice(&x.to_le_bytes());
        }
        if round == 1 {
            // Looks like multistream-select for a moment, then nonsense.
            junk.splice(
                0..0,
                b"\x13/multistream/1.0.0\n\x07/noise\n".iter().copied(),
            );
        }
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s.write_all(&junk).await;
            let _ = s.shutdown().await;
        }
    }
    // One client that connects and says nothing, kept open while A talks to B.
    let idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");

    assert!(!b.join.is_finished(), "B's swarm task died");
    assert_eq!(
        request_until_ok(&a.handle, pb, 3, b"still here", T).await,
        b"B:\x03still here"
    );
    drop(idle);
    // B's handler never saw the oversized request.
    while let Ok(s) = b.seen.try_recv() {
        if let Seen::Request { len, .. } = s {
            assert!(len <= 64 * 1024, "oversized request reached the handler");
        }
    }
    assert!(b.handle.stats().failures >= 1, "{:?}", b.handle.stats());
    assert!(!b.join.is_finished());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_reaches_every_other_allowlisted_node() {
    init_tracing();
    let all = [1, 2, 3];
    let a = node(1, &all, &[], b"A:").await;
    let mut b = node(2, &all, &[(1, &a)], b"B:").await;
    let mut c = node(3, &all, &[(1, &a), (2, &b)], b"C:").await;
    let (pa, pb, pc) = (
        p2p::peer_id_of(seed(1)),
        p2p::peer_id_of(seed(2)),
        p2p::peer_id_of(seed(3)),
    );

    // Wait (bounded) until A knows both others are subscribed.
    let deadline = Instant::now() + T;
    loop {
        let peers = a.handle.gossip_peers(TOPIC).await.expect("peers");
        if peers.contains(&pb) && peers.contains(&pc) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "subscriptions never propagated: {peers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.handle
        .publish(TOPIC, b"checkpoint 42".to_vec())
        .await
        .expect("publish");

    for (name, seen) in [("B", &mut b.seen), ("C", &mut c.seen)] {
        let got = timeout(T, async {
            loop {
                match seen.recv().await {
                    Some(Seen::Gossip { from, topic, data }) => return (from, topic, data),
                    Some(_) => continue,
                    None => panic!("handler channel closed"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name} did not receive the gossip"));
        assert_eq!(
            got,
            (pa, TOPIC.to_owned(), b"checkpoint 42".to_vec()),
            "{name}"
        );
    }
    // Oversized gossip is refused locally.
    assert!(matches!(
        a.handle
            .publish(TOPIC, vec![0; p2p::DEFAULT_MAX_GOSSIP_SIZE + 1])
            .await,
        Err(P2pError::TooLarge { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_is_redialled() {
    init_tracing();
    let b = node(2, &[1, 2], &[], b"B:").await;
    let port = b.port();
    let b_addr = b.addr();
    let a = node(1, &[1, 2], &[(2, &b)], b"A:").await;
    let pb = p2p::peer_id_of(seed(2));
    assert_eq!(
        request_until_ok(&a.handle, pb, 1, b"before", T).await,
        b"B:\x01before"
    );

    b.handle.shutdown().await.expect("shutdown");
    timeout(T, b.join).await.expect("b stops").expect("b task");
    // While B is down, requests fail (not hang).
    let err = a
        .handle
        .request(pb, 1, b"down".to_vec(), T)
        .await
        .expect_err("down");
    assert_ne!(err, P2pError::Closed);

    // Same key, same port.
    let (mut cfg, rx) = config(2, &[1, 2], &[], b"B2:");
    cfg.listen_addrs = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr")];
    let b2 = start(cfg, rx).await;
    assert_eq!(b2.addr(), b_addr);
    assert_eq!(
        request_until_ok(&a.handle, pb, 1, b"after", Duration::from_secs(15)).await,
        b"B2:\x01after"
    );
    // The redial loop (not only the request) brings the connection back.
    let deadline = Instant::now() + T;
    while !a
        .handle
        .connected_peers()
        .await
        .expect("peers")
        .contains(&pb)
    {
        assert!(Instant::now() < deadline, "not reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Holds every request until the test releases it.
struct Gate {
    open: Arc<tokio::sync::Semaphore>,
    seen: mpsc::UnboundedSender<Seen>,
}

impl InboundHandler for Gate {
    fn handle(
        &self,
        from: PeerId,
        kind: u8,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let _ = self.seen.send(Seen::Request {
            from,
            kind,
            len: payload.len(),
        });
        let open = self.open.clone();
        Box::pin(async move {
            let permit = open.acquire().await.map_err(|e| e.to_string())?;
            permit.forget();
            Ok(payload)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_in_flight_budget_is_answered_busy() {
    init_tracing();
    let open = Arc::new(tokio::sync::Semaphore::new(0));
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut cfg = P2pConfig::new(
        p2p::keypair_from_seed(seed(2)),
        Arc::new(Gate {
            open: open.clone(),
            seen: seen_tx,
        }),
    );
    cfg.listen_addrs = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")];
    cfg.allowlist = allow(&[1, 2]);
    cfg.max_inflight_per_peer = 2;
    let (b, _bj) = P2p::spawn(cfg).await.expect("spawn");
    let b_addr = b.listen_addrs()[0].clone();
    let (acfg, _arx) = config(1, &[1, 2], &[], b"A:");
    let mut acfg = acfg;
    acfg.known_peers = vec![(p2p::peer_id_of(seed(2)), b_addr)];
    let (a, _aj) = P2p::spawn(acfg).await.expect("spawn");
    let pb = p2p::peer_id_of(seed(2));
    // Connected (one request let through).
    open.add_permits(1);
    request_until_ok(&a, pb, 1, b"warm", T).await;
    while seen.try_recv().is_ok() {}

    // Two requests occupy the budget (held by the gate).
    let mut held = Vec::new();
    for i in 0..2u8 {
        let h = a.clone();
        held.push(tokio::spawn(async move {
            h.request(pb, 1, vec![i], Duration::from_secs(20)).await
        }));
    }
    for _ in 0..2 {
        timeout(Duration::from_secs(20), seen.recv())
            .await
            .expect("held request reached the handler")
            .expect("open");
    }
    // Every further request is refused at once, without reaching the handler.
    for i in 0..5u8 {
        let err = a
            .request(pb, 1, vec![10 + i], T)
            .await
            .expect_err("over budget");
        match err {
            P2pError::Remote(text) => assert!(text.starts_with("PEER_BUSY"), "{text}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        seen.try_recv().is_err(),
        "a refused request reached the handler"
    );
    assert_eq!(b.stats().throttled, 5);
    // Released, the held requests complete and the budget is free again.
    open.add_permits(3);
    for h in held {
        h.await.expect("task").expect("answered");
    }
    assert_eq!(
        a.request(pb, 1, vec![42], T).await.expect("answered"),
        vec![42]
    );
}
