//! `customsctl subscribe` on a real network (127.0.0.1, `customs-node`
//! processes): a carrier follows bookings through its own node, the node is
//! killed and restarted while bookings go on committing, and the subscriber
//! prints every booking exactly once, in commit order (issue 26).

mod common;

use common::{event, Net, STANDARD};
use ledger::EventKind as K;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_resumes_across_a_node_restart_without_loss_or_repeats() {
    let mut net = Net::new(&STANDARD, 3, &[("pl-exporter", "exporter")], "");
    net.start_all();
    let mut sub = net
        .ctl_command("carrier", "carrier")
        .args(["subscribe", "--from", "0", "--kind", "SHIPMENT_BOOKED"])
        .args(["--count", "10", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut exporter = net.client("pl-exporter", "de-customs").await;
    let mut last = 0;
    for i in 0..5 {
        let r = exporter
            .submit_retry(
                &event(&net, K::ShipmentBooked, &format!("SUB-{i}"), "pl-exporter"),
                Duration::from_secs(60),
            )
            .await;
        last = r.height;
    }
    // The carrier's node goes away mid-stream; bookings go on committing.
    net.converge(last, Duration::from_secs(30)).await;
    net.kill9("carrier");
    for i in 5..10 {
        exporter
            .submit_retry(
                &event(&net, K::ShipmentBooked, &format!("SUB-{i}"), "pl-exporter"),
                Duration::from_secs(60),
            )
            .await;
    }
    net.start("carrier");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = sub.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = sub.kill();
            panic!("the subscriber did not see 10 bookings");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    sub.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    sub.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{out}\n{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ships: Vec<&str> = events
        .iter()
        .map(|e| e["shipment_id"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("SUB-{i}")).collect();
    assert_eq!(ships, want, "{out}");
    let positions: Vec<(u64, u64)> = events
        .iter()
        .map(|e| (e["height"].as_u64().unwrap(), e["index"].as_u64().unwrap()))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(events.iter().all(|e| e["kind"] == "SHIPMENT_BOOKED"));
    // It did lose its node and came back to it.
    assert!(
        err.contains("reconnecting") || err.contains("resuming"),
        "{err}"
    );
    println!("10 bookings seen once each across a restart of the carrier's node; stderr:\n{err}");
}
