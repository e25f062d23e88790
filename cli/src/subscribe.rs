//! `customsctl subscribe`: committed events pushed as they commit, filtered
//! by shipment and kind. The position is the last event printed (block
//! height, index in the block): when the stream breaks (the node restarts,
//! the network drops) the command reconnects with backoff and resumes from
//! that block, skipping what it already printed, so no event is lost or
//! repeated. Refusals that retrying cannot fix (not authorised, bad
//! request) end it with the node's reason.

use crate::client::status_error;
use crate::Conn;
use anyhow::{bail, Result};
use std::time::Duration;
use tonic::Code;

/// What to follow and how to print it.
pub(crate) struct Follow {
    /// First block height (`None`: the block after the node's tip).
    pub from: Option<u64>,
    /// Only this shipment's events.
    pub shipment: Option<String>,
    /// Only these kinds (e.g. `RELEASED`).
    pub kinds: Vec<String>,
    /// Stop after this many events.
    pub count: Option<u64>,
    /// JSON lines instead of text.
    pub json: bool,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether a failed stream is worth reopening.
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Internal
            | Code::ResourceExhausted
    )
}

fn print(n: &proto::v1::EventNotice, json: bool) {
    let tx = hex::encode(&n.tx_id);
    if json {
        let line = serde_json::json!({
            "height": n.height,
            "index": n.index,
            "tx_id": tx,
            "shipment_id": n.shipment_id,
            "kind": n.kind,
            "status": n.status,
        });
        println!("{line}");
    } else {
        println!(
            "block {:>6} #{:<4} {:<24} {:<16} {:<20} tx {tx}",
            n.height, n.index, n.kind, n.shipment_id, n.status
        );
    }
}

/// Follow committed events until `count` are printed (or forever).
pub(crate) async fn run(conn: &Conn, f: Follow) -> Result<()> {
    let mut from = match f.from {
        Some(h) => h,
        None => conn.client().await?.status().await?.height + 1,
    };
    let mut last: Option<(u64, u32)> = None;
    let mut printed = 0u64;
    let mut backoff = Duration::from_millis(200);
    if f.count == Some(0) {
        return Ok(());
    }
    loop {
        let opened = async {
            let mut c = conn.client().await?;
            let req = c.signed(
                "/customs.v1.Ledger/SubscribeEvents",
                proto::v1::SubscribeEventsRequest {
                    from_height: from,
                    shipment_id: f.shipment.clone().unwrap_or_default(),
                    kinds: f.kinds.clone(),
                },
            );
            c.inner
                .subscribe_events(req)
                .await
                .map(|r| r.into_inner())
                .map_err(anyhow::Error::from)
        }
        .await;
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                if let Some(s) = e.downcast_ref::<tonic::Status>() {
                    if !transient(s.code()) {
                        bail!("{}", status_error(s.clone()));
                    }
                }
                eprintln!("subscribe: {e:#}; reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(n)) => {
                    backoff = Duration::from_millis(200);
                    if last.is_some_and(|l| (n.height, n.index) <= l) {
                        // Already printed before the stream was reopened.
                        continue;
                    }
                    print(&n, f.json);
                    last = Some((n.height, n.index));
                    // Resume from this block: events after it in the same
                    // block may not have been sent yet.
                    from = n.height;
                    printed += 1;
                    if f.count.is_some_and(|c| printed >= c) {
                        return Ok(());
                    }
                }
                Ok(None) => {
                    eprintln!("subscribe: the node closed the stream; resuming from block {from}");
                    break;
                }
                Err(s) if transient(s.code()) => {
                    eprintln!(
                        "subscribe: stream broke ({:?}: {}); resuming from block {from}",
                        s.code(),
                        s.message()
                    );
                    break;
                }
                Err(s) => bail!("{}", status_error(s)),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
