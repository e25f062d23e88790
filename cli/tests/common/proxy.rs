//! Network faults between real node processes without root: every ordered
//! pair of nodes (A dials B) goes through its own TCP forwarder on
//! 127.0.0.1, so a partition is "these links drop every connection and
//! refuse new ones" and healing is "they forward again". Nodes only dial the
//! peer addresses in their config (the transport has no discovery), so a
//! cut link is a real cut: A's messages cannot reach B by another path.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One directed link: a listener that forwards to `target`.
pub struct Link {
    pub port: u16,
    target: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Connections accepted while the link was up (for tests of the harness).
    pub forwarded: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Link {
    /// Bind a forwarder to `target` on a free loopback port (std listener so
    /// the port is known before any runtime runs).
    pub fn bind(target: u16) -> Link {
        let (std_l, port) = loop {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            if super::RESERVED.lock().unwrap().insert(port) {
                break (l, port);
            }
        };
        std_l.set_nonblocking(true).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let forwarded = Arc::new(AtomicU64::new(0));
        let accept = {
            let (cut, conns, forwarded) = (cut.clone(), conns.clone(), forwarded.clone());
            PROXY_RT.spawn(async move {
                let l = TcpListener::from_std(std_l).unwrap();
                loop {
                    let Ok((mut inbound, _)) = l.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        let _ = inbound.shutdown().await;
                        continue;
                    }
                    forwarded.fetch_add(1, Ordering::Relaxed);
                    let h = tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await
                        else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    });
                    let mut c = conns.lock().unwrap();
                    c.retain(|h| !h.is_finished());
                    c.push(h);
                }
            })
        };
        Link {
            port,
            target,
            cut,
            conns,
            forwarded,
            accept,
        }
    }

    /// Drop every open connection and refuse new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// Forward again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

/// The proxies run on their own runtime, so they keep forwarding whatever
/// the test's runtime is doing (and across tests in one process).
static PROXY_RT: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("fault-proxy")
        .enable_all()
        .build()
        .unwrap()
});

/// All directed links of a network, keyed by (dialer, listener).
#[derive(Default)]
pub struct Links {
    pub links: BTreeMap<(String, String), Link>,
}

impl Links {
    /// Make one link per ordered pair of `nodes` (party, real p2p port).
    pub fn between(nodes: &[(String, u16)]) -> Links {
        let mut links = BTreeMap::new();
        for (a, _) in nodes {
            for (b, pb) in nodes {
                if a != b {
                    links.insert((a.clone(), b.clone()), Link::bind(*pb));
                }
            }
        }
        Links { links }
    }

    /// The port `dialer` must use to reach `listener`.
    pub fn port(&self, dialer: &str, listener: &str) -> u16 {
        self.links[&(dialer.to_string(), listener.to_string())].port
    }

    /// Split the nodes into groups: links inside a group work, links
    /// between groups are cut (both directions). Nodes in no group are
    /// cut off from everyone.
    pub fn partition(&self, groups: &[Vec<String>]) {
        let group_of = |p: &str| groups.iter().position(|g| g.iter().any(|x| x == p));
        for ((a, b), l) in &self.links {
            match (group_of(a), group_of(b)) {
                (Some(x), Some(y)) if x == y => l.heal(),
                _ => l.cut(),
            }
        }
    }

    /// Cut `node` off from everyone.
    pub fn isolate(&self, node: &str) {
        for ((a, b), l) in &self.links {
            if a == node || b == node {
                l.cut();
            }
        }
    }

    /// Every link forwards again.
    pub fn heal_all(&self) {
        for l in self.links.values() {
            l.heal();
        }
    }
}
