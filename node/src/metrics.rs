//! Prometheus text metrics: commit latency, batch size, Raft role, term,
//! applied index, peers, rejected transactions by reason, divergences,
//! equivocations (conflicting cosigned checkpoints) and evidence kept.
//! Served by a tiny HTTP/1.1 responder (`GET /metrics`), no framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
const BATCH_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 64, 256, 1024, 4096];

/// A cumulative histogram with fixed integer buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Record one observation.
    pub fn observe(&self, v: u64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum {}", self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// All node metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Submit-to-commit latency in ms.
    pub commit_latency_ms: Histogram,
    /// Transactions per proposed entry.
    pub batch_size: Histogram,
    /// Committed transactions.
    pub committed: AtomicU64,
    /// Rejections by reason code.
    pub rejected: Mutex<BTreeMap<String, u64>>,
    /// Content-validation divergences seen by this node.
    pub divergences: AtomicU64,
    /// Refused gRPC requests (authentication).
    pub auth_failures: AtomicU64,
    /// Validly signed cosignatures received for a checkpoint that conflicts
    /// with this node's own at that height.
    pub equivocations: AtomicU64,
    /// Conflicting signed statements kept as evidence (in the ledger store).
    pub equivocation_evidence: AtomicU64,
    /// Height from which this node refuses to cosign after a content
    /// divergence (0: none).
    pub cosign_halted_at: AtomicU64,
    /// Peer messages refused by the trust rules (ADR 0011), by reason code.
    pub peer_refused: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            commit_latency_ms: Histogram::new(&LATENCY_BUCKETS_MS),
            batch_size: Histogram::new(&BATCH_BUCKETS),
            committed: AtomicU64::new(0),
            rejected: Mutex::new(BTreeMap::new()),
            divergences: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            equivocations: AtomicU64::new(0),
            equivocation_evidence: AtomicU64::new(0),
            cosign_halted_at: AtomicU64::new(0),
            peer_refused: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Gauges read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// 0 follower, 1 candidate, 2 leader, 3 learner, 4 shutdown.
    pub raft_role: u64,
    /// Current term.
    pub term: u64,
    /// Last applied log index.
    pub applied_index: u64,
    /// Ledger height.
    pub height: u64,
    /// Connected peers.
    pub peers: u64,
    /// Inbound peer requests refused over the sender's in-flight budget.
    pub peer_throttled: u64,
    /// Connections denied because the peer is not on the allowlist.
    pub peer_rejected: u64,
}

impl Metrics {
    /// Count a rejection.
    pub fn reject(&self, code: &str) {
        bump(&self.rejected, code);
    }

    /// Count a refused peer message; returns how many of `code` so far.
    pub fn peer_refused(&self, code: &str) -> u64 {
        bump(&self.peer_refused, code)
    }

    /// Prometheus text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        self.commit_latency_ms.render(
            "customs_commit_latency_ms",
            "Time from submit to commit in milliseconds.",
            &mut out,
        );
        self.batch_size.render(
            "customs_batch_size",
            "Transactions per Raft entry.",
            &mut out,
        );
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut out,
            "customs_raft_role",
            "0 follower, 1 candidate, 2 leader, 3 learner.",
            g.raft_role,
        );
        gauge(&mut out, "customs_raft_term", "Current Raft term.", g.term);
        gauge(
            &mut out,
            "customs_cosigning_halted_at_height",
            "Block from which this node cosigns nothing after a content divergence (0: none).",
            self.cosign_halted_at.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "customs_raft_applied_index",
            "Last applied Raft log index.",
            g.applied_index,
        );
        gauge(
            &mut out,
            "customs_ledger_height",
            "Ledger height.",
            g.height,
        );
        gauge(
            &mut out,
            "customs_peers",
            "Connected libp2p peers.",
            g.peers,
        );
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "customs_peer_replies_refused_total",
            "Raft replies this node's client refused (a learner claiming a higher vote, an absurd term, a match outside what was sent).",
            consensus::authz::REFUSED_REPLIES.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "customs_peer_throttled_total",
            "Inbound peer requests refused because the peer was over its in-flight budget.",
            g.peer_throttled,
        );
        counter(
            &mut out,
            "customs_peer_connections_refused_total",
            "Peer connections denied or closed because the peer is not on the allowlist.",
            g.peer_rejected,
        );
        counter(
            &mut out,
            "customs_committed_transactions_total",
            "Committed transactions.",
            self.committed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "customs_divergences_total",
            "Content validation divergences and equivocations seen.",
            self.divergences.load(Ordering::Relaxed)
                + consensus::DIVERGENCES.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "customs_equivocations_total",
            "Validly signed cosignatures of checkpoints that conflict with this node's ledger.",
            self.equivocations.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "customs_equivocation_evidence",
            "Conflicting signed checkpoints kept as evidence.",
            self.equivocation_evidence.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "customs_auth_failures_total",
            "Refused unauthenticated requests.",
            self.auth_failures.load(Ordering::Relaxed),
        );
        by_reason(
            &mut out,
            "customs_rejected_transactions_total",
            "Rejected transactions by reason.",
            &self.rejected,
        );
        by_reason(
            &mut out,
            "customs_peer_refused_total",
            "Peer messages refused by the trust rules, by reason.",
            &self.peer_refused,
        );
        out
    }
}

/// Add one to the count of `code`; returns the new count (0 if the lock is
/// poisoned).
fn bump(counts: &Mutex<BTreeMap<String, u64>>, code: &str) -> u64 {
    match counts.lock() {
        Ok(mut m) => {
            let n = m.entry(code.to_string()).or_insert(0);
            *n += 1;
            *n
        }
        Err(_) => 0,
    }
}

/// A counter labelled by reason code.
fn by_reason(out: &mut String, name: &str, help: &str, counts: &Mutex<BTreeMap<String, u64>>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    if let Ok(m) = counts.lock() {
        for (code, n) in m.iter() {
            let _ = writeln!(out, "{name}{{reason=\"{code}\"}} {n}");
        }
    }
}

/// Serve `GET /metrics` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    render: impl Fn() -> String + Send + Sync + 'static,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let render = std::sync::Arc::new(render);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            acc = listener.accept() => {
                let Ok((mut sock, _)) = acc else { continue };
                let render = render.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf)).await {
                        Ok(Ok(n)) => n,
                        _ => return,
                    };
                    let req = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                    let resp = if req.starts_with("GET /metrics") {
                        let body = render();
                        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.commit_latency_ms.observe(7);
        m.batch_size.observe(100);
        m.reject("TX_BAD_SIGNATURE");
        m.reject("TX_BAD_SIGNATURE");
        let t = m.render(&Gauges {
            raft_role: 2,
            term: 3,
            ..Default::default()
        });
        assert!(t.contains("customs_commit_latency_ms_bucket{le=\"10\"} 1"));
        assert!(t.contains("customs_commit_latency_ms_bucket{le=\"5\"} 0"));
        assert!(t.contains("customs_rejected_transactions_total{reason=\"TX_BAD_SIGNATURE\"} 2"));
        assert!(t.contains("customs_raft_role 2"));
        assert!(t.contains("customs_raft_term 3"));
        assert!(t.contains("customs_equivocations_total 0"));
        assert!(t.contains("customs_equivocation_evidence 0"));
    }
}
