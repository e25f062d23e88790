//! Per-party budgets on a real node (127.0.0.1, `customs-node` process): a
//! party that holds its limit of open streams is refused another with
//! `RESOURCE_EXHAUSTED` / `TOO_MANY_STREAMS`, while another party is still
//! served; closing a stream returns its slot.

mod common;

use common::{reason, Net, PartyDef};
use proto::v1;
use std::time::{Duration, Instant};

const ONE: [PartyDef; 1] = [PartyDef {
    id: "de-customs",
    role: "customs",
    validator: true,
}];

/// The node's per-party stream budget (`node::limits::STREAMS_PER_PARTY`).
const STREAMS: usize = 8;

async fn open(c: &mut common::Api) -> Result<tonic::Streaming<v1::BlockResponse>, tonic::Status> {
    let req = c.signed(
        "/customs.v1.Ledger/StreamBlocks",
        v1::StreamBlocksRequest { from_height: 0 },
    );
    c.inner.stream_blocks(req).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_holds_at_most_its_streams() {
    let mut net = Net::new(&ONE, 1, &[("broker", "broker"), ("carrier", "carrier")], "");
    net.start_all();
    let mut broker = net.client("broker", "de-customs").await;
    let mut held = Vec::new();
    for _ in 0..STREAMS {
        let mut s = open(&mut broker).await.expect("within the budget");
        // Genesis arrives: the stream is live.
        assert!(s.message().await.unwrap().is_some());
        held.push(s);
    }
    let e = open(&mut broker)
        .await
        .expect_err("one stream over the budget");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert_eq!(reason(&e), "TOO_MANY_STREAMS", "{e:?}");
    // Another party is unaffected.
    let mut carrier = net.client("carrier", "de-customs").await;
    let mut s = open(&mut carrier)
        .await
        .expect("another party's own budget");
    assert!(s.message().await.unwrap().is_some());
    // Closing one stream gives its slot back (once the node sees it close).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match open(&mut broker).await {
            Ok(_) => break,
            Err(e) if reason(&e) == "TOO_MANY_STREAMS" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the closed stream's slot never came back: {e:?}"),
        }
    }
}
