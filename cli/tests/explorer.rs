//! The web explorer (issue 24) in a real browser: a seven-node network on
//! 127.0.0.1 runs the demo; `customsctl explorer` serves the page for
//! fr-customs and for the carrier, each through its own node with its own
//! keys; headless Chromium renders the pages and the test asserts on the
//! rendered DOM: the demo shipment's timeline with its proofs, the held
//! shipment's reasons shown to customs and sealed to the carrier, and KPI
//! figures equal to what the test counts itself in the committed blocks.
//! Screenshots are written to `$EXPLORER_SCREENSHOTS` when it is set
//! (that is how `docs/explorer-*.png` are made).

mod common;

use common::{Net, PartyDef};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEMO_NET: [PartyDef; 7] = [
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
    PartyDef {
        id: "broker",
        role: "broker",
        validator: false,
    },
    PartyDef {
        id: "pl-exporter",
        role: "exporter",
        validator: false,
    },
    PartyDef {
        id: "auditor",
        role: "auditor",
        validator: false,
    },
];

struct Explorer {
    child: Child,
    port: u16,
}

impl Drop for Explorer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn explorer(net: &Net, party: &str) -> Explorer {
    let port = common::free_port();
    let child = net
        .ctl_command(party, party)
        .args(["explorer", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "explorer for {party} did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Explorer { child, port }
}

fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(c).output() {
            if o.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            }
        }
    }
    panic!("headless Chromium is needed: run testnet/setup.sh (installs Debian's chromium)");
}

fn browser(args: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap()
}

/// The DOM of `page` once the app says it rendered (retried: the first
/// render may race the node's KPI fold).
fn dom(e: &Explorer, page: &str) -> String {
    let url = format!("http://127.0.0.1:{}/?live=0#{page}", e.port);
    for _ in 0..5 {
        let o = browser(&["--dump-dom"], &url);
        let html = String::from_utf8_lossy(&o.stdout).to_string();
        if html.contains("data-ready=\"true\"") {
            return html;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("{url} never rendered");
}

fn screenshot(e: &Explorer, page: &str, name: &str) {
    let Ok(dir) = std::env::var("EXPLORER_SCREENSHOTS") else {
        return;
    };
    let out = PathBuf::from(dir).join(format!("explorer-{name}.png"));
    let url = format!("http://127.0.0.1:{}/?live=0#{page}", e.port);
    let o = browser(
        &[
            "--window-size=1300,1500",
            &format!("--screenshot={}", out.display()),
        ],
        &url,
    );
    assert!(
        out.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The text of the first element after `marker` (tags stripped).
fn cell_after<'a>(html: &'a str, marker: &str, class: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not rendered"));
    let rest = &html[at..];
    let c = rest
        .find(&format!("{class}\""))
        .unwrap_or_else(|| panic!("no {class} after {marker}"));
    let rest = &rest[c..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap() + open;
    &rest[open..close]
}

/// Per corridor, declarations filed and shipments released, counted from
/// the committed blocks themselves.
async fn counted(net: &Net) -> BTreeMap<String, (u64, u64)> {
    let mut c = net.client("auditor", "auditor").await;
    let tip = c.status().await.unwrap().height;
    let mut corridor_of: BTreeMap<String, String> = BTreeMap::new();
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for h in 0..=tip {
        let r = c
            .inner
            .get_block(c.signed(
                "/customs.v1.Ledger/GetBlock",
                proto::v1::GetBlockRequest { height: h },
            ))
            .await
            .unwrap()
            .into_inner();
        let b = ledger::Block::decode(&r.block).unwrap();
        for stx in &b.txs {
            let tx = &stx.tx;
            let public = |p: &str| {
                tx.public
                    .iter()
                    .find(|f| f.path == p)
                    .map(|f| f.value.clone())
            };
            match tx.kind {
                ledger::EventKind::DeclarationFiled => {
                    let k = match (
                        public("decl.dispatch_country"),
                        public("decl.office_of_entry"),
                    ) {
                        (Some(d), Some(o)) => format!("{d}>{o}"),
                        _ => "unknown".into(),
                    };
                    out.entry(k.clone()).or_default().0 += 1;
                    corridor_of.insert(tx.shipment_id.clone(), k);
                }
                ledger::EventKind::Released => {
                    if let Some(k) = corridor_of.get(&tx.shipment_id) {
                        out.entry(k.clone()).or_default().1 += 1;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_shows_each_party_its_view() {
    let mut net = Net::new(&DEMO_NET, 3, &[], "");
    net.start_all();
    net.leader(Duration::from_secs(30)).await;
    let o = Command::new(common::customsctl())
        .args(["demo", "--net"])
        .arg(net.net())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "demo failed: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let shipment = |suffix: &str| {
        let at = out
            .find("== Shipment SHP-PLFR-")
            .expect("demo names its shipment")
            + "== Shipment ".len();
        let id = &out[at..at + out[at..].find(':').unwrap()];
        id.trim_end_matches("-A").trim_end_matches("-B").to_string() + suffix
    };
    let (a, b) = (shipment("-A"), shipment("-B"));

    let customs = explorer(&net, "fr-customs");
    let carrier = explorer(&net, "carrier");

    // Overview: the checkpoint and who cosigned it, verified.
    let html = dom(&customs, "/");
    assert!(html.contains("signed in as fr-customs"), "{html}");
    assert!(
        html.contains("id=\"checkpoint\"") && html.contains(">verified<"),
        "{html}"
    );
    assert!(html.matches(">signed<").count() >= 2, "{html}");

    // The demo shipment's timeline, every event with its proof.
    let html = dom(&customs, &format!("/shipment/{a}"));
    for kind in [
        "SHIPMENT_BOOKED",
        "DECLARATION_FILED",
        "ASSESSMENT_COMPLETE",
        "ARRIVED",
        "RELEASED",
        "DELIVERED",
    ] {
        assert!(
            html.contains(&format!("data-kind=\"{kind}\"")),
            "{kind} missing: {html}"
        );
    }
    assert_eq!(
        html.matches("class=\"event\"").count(),
        html.matches("proof ✓").count()
    );
    assert!(
        html.contains("Portable laptop computers"),
        "customs reads the description"
    );

    // The held shipment: customs reads why, the carrier only that it is held.
    let html = dom(&customs, &format!("/shipment/{b}"));
    assert!(html.contains("data-kind=\"HELD\""));
    assert!(
        html.contains("data-path=\"hold.reasons\" data-open=\"true\""),
        "{html}"
    );
    assert!(html.contains("EUR 0.30 per kg"), "{html}");
    assert!(
        html.contains("risk: "),
        "customs reads the risk outcome: {html}"
    );
    let html = dom(&carrier, &format!("/shipment/{b}"));
    assert!(html.contains("data-kind=\"HELD\""), "{html}");
    assert!(
        html.contains("data-path=\"hold.reasons\" data-open=\"false\""),
        "{html}"
    );
    assert!(html.contains("sealed (security)"), "{html}");
    assert!(
        !html.contains("EUR 0.30 per kg"),
        "the carrier was shown the hold's reasons"
    );
    assert!(
        !html.contains("Smartphones for cellular"),
        "the carrier read a commercial field"
    );
    assert!(
        !html.contains("risk: "),
        "the carrier read the risk outcome"
    );

    // KPIs: the figures the page shows are the ones the blocks hold.
    let want = counted(&net).await;
    let html = dom(&customs, "/kpi?by=corridor&period=total");
    for (corridor, (declared, released)) in &want {
        if corridor == "unknown" {
            continue;
        }
        let marker = format!("data-value=\"{}\"", corridor.replace('>', "&gt;"));
        assert_eq!(
            cell_after(&html, &marker, "kpi-declarations"),
            declared.to_string(),
            "{corridor}"
        );
        assert_eq!(
            cell_after(&html, &marker, "kpi-released"),
            released.to_string(),
            "{corridor}"
        );
    }
    assert!(want.len() >= 5, "{want:?}");
    assert!(!cell_after(&html, "data-value=\"CN&gt;NL000396\"", "kpi-hits").contains("sealed"));
    let html = dom(&carrier, "/kpi?by=corridor&period=total");
    let row = &html[html.find("data-value=\"CN&gt;NL000396\"").unwrap()..];
    let hits = &row[row.find("kpi-hits\">").unwrap() + "kpi-hits\">".len()..];
    assert!(
        hits.starts_with("<span class=\"badge sealed\">sealed</span>"),
        "{hits}"
    );
    let (declared, _) = want["CN>NL000396"];
    assert_eq!(
        cell_after(&html, "data-value=\"CN&gt;NL000396\"", "kpi-declarations"),
        declared.to_string()
    );

    // Predictions: every office with history, ranked.
    let html = dom(
        &customs,
        "/route?from=CN&chapter=85&mode=sea&offices=NL000396,DE004851",
    );
    assert!(
        html.contains("data-office=\"NL000396\"") && html.contains("data-office=\"DE004851\""),
        "{html}"
    );

    // Live updates: a block committed after the page connected arrives as
    // a server-sent event.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", customs.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(
            format!(
                "GET /api/live HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\n\r\n",
                customs.port
            )
            .as_bytes(),
        )
        .unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while !got.contains("\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "live stream closed: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(
            got.contains("200 OK") && got.contains("text/event-stream"),
            "{got}"
        );
        let mut c = net.client("pl-exporter", "pl-exporter").await;
        let stx = common::event(
            &net,
            ledger::EventKind::ShipmentBooked,
            "SHP-LIVE-1",
            "pl-exporter",
        );
        let committed = c.submit_retry(&stx, Duration::from_secs(60)).await;
        let want = format!("\"height\":{}", committed.height);
        while !(got.contains("event: block") && got.contains(&want)) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "live stream closed: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    // A page elsewhere that rebinds its name to 127.0.0.1 sends its own
    // name as Host: refused, nothing read as the party.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", customs.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            b"GET /api/status HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        assert!(got.starts_with("HTTP/1.1 403"), "{got}");
        assert!(!got.contains("fr-customs"), "{got}");
    }

    screenshot(&customs, "/", "chain");
    screenshot(&customs, &format!("/shipment/{b}"), "held-customs");
    screenshot(&carrier, &format!("/shipment/{b}"), "held-carrier");
    screenshot(&customs, "/kpi?by=corridor&period=total", "kpi");
    screenshot(&customs, "/kpi?by=all&period=day", "kpi-daily");
    screenshot(
        &customs,
        "/route?from=CN&chapter=85&mode=sea&offices=NL000396,DE004851",
        "route",
    );
}
