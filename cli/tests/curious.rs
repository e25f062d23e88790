//! A curious party on a real network (127.0.0.1, `customs-node`
//! processes): what it can learn through the read APIs about other traders.
//!
//! `Classify`: customs learns from the sealed descriptions of released
//! shipments; a trader or carrier asking a customs node is answered from
//! the nomenclature alone, so it cannot probe another trader's text or
//! codes (an exact learned phrase would otherwise rank its code first).

mod common;

use common::{Net, STANDARD};
use proto::v1;
use std::time::Duration;

/// Parties without nodes: the declaring broker and the exporter.
const EXTRA: [(&str, &str); 2] = [("broker", "broker"), ("pl-exporter", "exporter")];

/// A description nobody else would write, and the code it is declared
/// under (laptops: far from anything its words suggest).
const SECRET: &str = "zqxv quorblat framistat assembly";
const CODE: &str = "84713000";

fn submit(net: &Net, party: &str, node: &str, file: &std::path::Path) -> String {
    // The first submission may meet a node still waiting for a leader.
    let mut last = String::new();
    for _ in 0..150 {
        let o = net.ctl(party, node, &["submit", file.to_str().unwrap()]);
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).to_string();
        }
        last = String::from_utf8_lossy(&o.stderr).to_string();
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{party} could not submit {}: {last}", file.display());
}

async fn top(net: &Net, party: &str, node: &str) -> Vec<String> {
    let mut c = net.client(party, node).await;
    let r = c.signed(
        "/customs.v1.Ledger/Classify",
        v1::ClassifyRequest {
            description: SECRET.into(),
            top_k: 5,
            declared_code: String::new(),
        },
    );
    c.inner
        .classify(r)
        .await
        .unwrap()
        .into_inner()
        .suggestions
        .into_iter()
        .map(|s| s.hs6)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_does_not_reveal_learned_history() {
    let mut net = Net::new(&STANDARD, 3, &EXTRA, "");
    net.start_all();
    let dir = net.dir.path().to_path_buf();
    let mut decl = ledger::declaration::sample();
    decl.goods.truncate(1);
    decl.goods[0].description = SECRET.into();
    decl.goods[0].hs_code = CODE.into();
    let decl = serde_json::to_string(&decl).unwrap();
    let ship = "CUR-1";
    let event = |kind: &str| {
        format!(
            r#"{{"kind":"{kind}","shipment_id":"{ship}","shipment_parties":["broker","pl-exporter","carrier"],"fields":[{{"path":"event.note","class":"public","value":"{kind}"}}]}}"#
        )
    };
    let steps: Vec<(&str, String)> = vec![
        ("pl-exporter", event("SHIPMENT_BOOKED")),
        (
            "broker",
            format!(
                r#"{{"kind":"DECLARATION_FILED","shipment_id":"{ship}","shipment_parties":["pl-exporter","carrier"],"declaration":{decl}}}"#
            ),
        ),
        ("de-customs", event("ASSESSMENT_COMPLETE")),
        ("carrier", event("LOADED")),
        ("carrier", event("DEPARTED")),
        ("carrier", event("ARRIVED")),
        ("carrier", event("PRESENTED")),
        ("de-customs", event("RELEASED")),
    ];
    for (i, (party, body)) in steps.iter().enumerate() {
        let f = dir.join(format!("step{i}.json"));
        std::fs::write(&f, body).unwrap();
        let out = submit(&net, party, "de-customs", &f);
        assert!(out.contains("committed"), "step {i}: {out}");
    }
    // Customs learned the released code from the sealed description.
    let customs = top(&net, "fr-customs", "de-customs").await;
    assert_eq!(
        customs.first().map(String::as_str),
        Some(&CODE[..6]),
        "customs did not learn: {customs:?}"
    );
    // Anyone else asking the same node gets the nomenclature's answer.
    for party in ["carrier", "broker", "pl-exporter"] {
        let got = top(&net, party, "de-customs").await;
        assert!(
            !got.iter().any(|c| c == &CODE[..6]),
            "{party} recovered the learned code: {got:?}"
        );
    }
}
