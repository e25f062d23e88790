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
        // Lessons are folded one block late (ADR 0016): one block more.
        ("carrier", event("DELIVERED")),
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

/// What one party obtained through one read API.
#[derive(Default, Debug)]
struct Seen {
    txs: usize,
    /// Classes of the sealed fields it could open.
    opened: std::collections::BTreeSet<ledger::FieldClass>,
    classification: bool,
    risk: bool,
    /// Secret strings found anywhere in the answer's bytes.
    leaked: Vec<String>,
    /// Why nothing was read, if refused.
    note: String,
}

impl Seen {
    fn cell(&self) -> String {
        if !self.note.is_empty() {
            return self.note.clone();
        }
        let opened: Vec<String> = self.opened.iter().map(|c| format!("{c:?}")).collect();
        format!(
            "{} tx; opens {}{}{}{}",
            self.txs,
            if opened.is_empty() {
                "public only".to_string()
            } else {
                opened.join("+")
            },
            if self.classification {
                "; HS outcome"
            } else {
                ""
            },
            if self.risk { "; RISK" } else { "" },
            if self.leaked.is_empty() { "" } else { "; LEAK" }
        )
    }
}

struct Reader<'a> {
    net: &'a Net,
    party: &'a str,
    secrets: &'a [String],
    keys: Vec<ledger::disclosure::DecryptionKey>,
    outcome_keys: ledger::outcome::OutcomeKeys,
}

impl Reader<'_> {
    fn raw(&self, seen: &mut Seen, bytes: &[u8]) {
        for s in self.secrets {
            if bytes.windows(s.len()).any(|w| w == s.as_bytes()) && !seen.leaked.contains(s) {
                seen.leaked.push(s.clone());
            }
        }
    }

    fn tx(
        &self,
        seen: &mut Seen,
        stx: &ledger::SignedTransaction,
        result: Option<&ledger::TxResult>,
    ) {
        seen.txs += 1;
        if let Ok(fields) = ledger::disclosure::open(&stx.tx, self.party, &self.keys) {
            for f in fields {
                if f.field.class != ledger::FieldClass::Public {
                    seen.opened.insert(f.field.class);
                }
            }
        }
        if let Some(r) = result {
            let id = stx.id().unwrap();
            let (j, _) = ledger::outcome::open(
                &stx.tx,
                &id,
                &r.outcome,
                self.party,
                &self.keys,
                &self.outcome_keys,
            );
            seen.classification |= !j.classification.is_empty();
            seen.risk |= j.risk.is_some();
        }
    }

    fn proof(&self, seen: &mut Seen, p: &v1::TransactionProof) {
        self.raw(seen, &p.encode_to_vec());
        let stx = ledger::SignedTransaction::decode(&p.signed_tx, usize::MAX).unwrap();
        let r: Option<ledger::TxResult> = p
            .result
            .as_ref()
            .map(|r| ledger::codec::decode(&r.encoded).unwrap());
        self.tx(seen, &stx, r.as_ref());
    }

    fn block(&self, seen: &mut Seen, b: &v1::BlockResponse) {
        self.raw(seen, &b.encode_to_vec());
        let block: ledger::Block = ledger::codec::decode(&b.block).unwrap();
        for (stx, r) in block.txs.iter().zip(&block.results) {
            self.tx(seen, stx, Some(r));
        }
    }
}

use prost::Message;

/// Every read API, as `party` asking `node`, up to `height`.
async fn read_all(
    r: &Reader<'_>,
    node: &str,
    ship: &str,
    decl: &ledger::Hash32,
    height: u64,
) -> Vec<(&'static str, Seen)> {
    let mut c = r.net.client(r.party, node).await;
    let mut out = Vec::new();

    let mut s = Seen::default();
    let p = c
        .inner
        .get_transaction(c.signed(
            "/customs.v1.Ledger/GetTransaction",
            v1::GetTransactionRequest {
                tx_id: decl.0.to_vec(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    r.proof(&mut s, &p);
    out.push(("GetTransaction", s));

    let mut s = Seen::default();
    let h = c
        .inner
        .get_shipment_history(c.signed(
            "/customs.v1.Ledger/GetShipmentHistory",
            v1::GetShipmentHistoryRequest {
                shipment_id: ship.into(),
                page_size: 50,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    for e in &h.events {
        r.proof(&mut s, e);
    }
    out.push(("GetShipmentHistory", s));

    let mut s = Seen::default();
    for at in 1..=height {
        let b = c
            .inner
            .get_block(c.signed(
                "/customs.v1.Ledger/GetBlock",
                v1::GetBlockRequest { height: at },
            ))
            .await
            .unwrap()
            .into_inner();
        r.block(&mut s, &b);
    }
    out.push(("GetBlock", s));

    let mut s = Seen::default();
    let mut stream = c
        .inner
        .stream_blocks(c.signed(
            "/customs.v1.Ledger/StreamBlocks",
            v1::StreamBlocksRequest { from_height: 1 },
        ))
        .await
        .unwrap()
        .into_inner();
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .unwrap()
    {
        let at = b.height;
        r.block(&mut s, &b);
        if at >= height {
            break;
        }
    }
    out.push(("StreamBlocks", s));

    let mut s = Seen::default();
    let mut events = c
        .inner
        .subscribe_events(c.signed(
            "/customs.v1.Ledger/SubscribeEvents",
            v1::SubscribeEventsRequest {
                from_height: 0,
                shipment_id: ship.into(),
                kinds: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(20), events.message())
        .await
        .unwrap()
    {
        r.raw(&mut s, &e.encode_to_vec());
        let stx = ledger::SignedTransaction::decode(&e.signed_tx, usize::MAX).unwrap();
        r.tx(&mut s, &stx, None);
        if s.txs == 3 {
            break;
        }
    }
    out.push(("SubscribeEvents", s));

    let mut s = Seen::default();
    let cl = c
        .inner
        .classify(c.signed(
            "/customs.v1.Ledger/Classify",
            v1::ClassifyRequest {
                description: SECRET.into(),
                top_k: 5,
                declared_code: String::new(),
            },
        ))
        .await;
    match cl {
        Ok(cl) => {
            let cl = cl.into_inner();
            r.raw(&mut s, &cl.encode_to_vec());
            s.classification = cl.suggestions.iter().any(|x| x.hs6 == CODE[..6]);
            if !s.classification {
                s.note = format!(
                    "{} suggestions from the nomenclature; learned code absent",
                    cl.suggestions.len()
                );
            }
        }
        // A node without the nomenclature (not customs) classifies nothing.
        Err(e) => s.note = format!("refused {:?}", e.code()),
    }
    out.push(("Classify(secret text)", s));
    out
}

fn committed_line(out: &str) -> (ledger::Hash32, u64) {
    let mut w = out.split_whitespace();
    assert_eq!(w.next(), Some("tx"), "{out}");
    let id = ledger::Hash32::from_hex(w.next().unwrap()).unwrap();
    let h = out
        .split("height ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap();
    (id, h)
}

/// The curious-party table: a carrier, a broker of another shipment and an
/// auditor without a grant read every API and learn no commercial field,
/// declared code, risk outcome or description; then each tries every event
/// kind on a shipment that is not theirs and is refused with a reason code,
/// and nothing is committed. The shipment's own broker and customs are the
/// controls that show the test can see what it looks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curious_parties_learn_nothing_and_act_on_nothing() {
    let extra = [
        ("broker", "broker"),
        ("pl-exporter", "exporter"),
        ("broker2", "broker"),
        ("auditor", "auditor"),
    ];
    let mut net = Net::new(&STANDARD, 3, &extra, "");
    net.start_all();
    let dir = net.dir.path().to_path_buf();
    let cfg = net.genesis();
    let mut decl = ledger::declaration::sample();
    decl.goods.truncate(1);
    decl.goods[0].description = SECRET.into();
    decl.goods[0].hs_code = CODE.into();
    // What must never reach a party that may not read it: every
    // commercial, personal or security value of the declaration.
    let secrets: Vec<String> = decl
        .to_fields()
        .into_iter()
        .filter(|f| {
            !matches!(
                f.class,
                ledger::FieldClass::Public | ledger::FieldClass::Transport
            ) && f.value.len() >= 8
        })
        .map(|f| f.value)
        .collect();
    assert!(secrets.iter().any(|s| s == SECRET), "{secrets:?}");
    let decl_json = serde_json::to_string(&decl).unwrap();
    let ship = "CUR-2";
    let other = "OWN-2";
    let steps = [
        (
            "pl-exporter",
            format!(
                r#"{{"kind":"SHIPMENT_BOOKED","shipment_id":"{ship}","shipment_parties":["broker","carrier"],"fields":[]}}"#
            ),
        ),
        (
            "broker",
            format!(
                r#"{{"kind":"DECLARATION_FILED","shipment_id":"{ship}","shipment_parties":["pl-exporter","carrier"],"declaration":{decl_json}}}"#
            ),
        ),
        (
            "de-customs",
            format!(
                r#"{{"kind":"ASSESSMENT_COMPLETE","shipment_id":"{ship}","fields":[{{"path":"assessment.note","class":"security","value":"looked at the value per kg"}}]}}"#
            ),
        ),
        (
            "broker2",
            format!(r#"{{"kind":"SHIPMENT_BOOKED","shipment_id":"{other}","fields":[]}}"#),
        ),
    ];
    let mut decl_at = None;
    let mut height = 0;
    for (i, (party, body)) in steps.iter().enumerate() {
        let f = dir.join(format!("cur{i}.json"));
        std::fs::write(&f, body).unwrap();
        let out = submit(&net, party, "de-customs", &f);
        let (id, h) = committed_line(&out);
        height = height.max(h);
        if i == 1 {
            decl_at = Some(id);
        }
    }
    let decl_id = decl_at.unwrap();

    // Reads: each party through the customs node (which holds everything),
    // and the carrier through its own node too.
    let mut table = Vec::new();
    for (party, node) in [
        ("carrier", "de-customs"),
        ("carrier", "carrier"),
        ("broker2", "de-customs"),
        ("auditor", "de-customs"),
        ("broker", "de-customs"),
        ("de-customs", "de-customs"),
    ] {
        let keys = vec![net.dkey(party)];
        let outcome_keys = ledger::outcome::OutcomeKeys::for_party(&cfg, party, &keys);
        let reader = Reader {
            net: &net,
            party,
            secrets: &secrets,
            keys,
            outcome_keys,
        };
        for (api, seen) in read_all(&reader, node, ship, &decl_id, height).await {
            assert!(
                seen.txs > 0 || api.starts_with("Classify"),
                "{party} {api}: nothing read"
            );
            match party {
                "carrier" | "broker2" | "auditor" => {
                    assert!(
                        seen.leaked.is_empty(),
                        "{party} {api} leaked {:?}",
                        seen.leaked
                    );
                    assert!(
                        !seen.classification,
                        "{party} {api}: classification outcome"
                    );
                    assert!(!seen.risk, "{party} {api}: risk outcome");
                    let allowed: &[ledger::FieldClass] = if party == "carrier" {
                        &[ledger::FieldClass::Transport]
                    } else {
                        &[]
                    };
                    assert!(
                        seen.opened.iter().all(|c| allowed.contains(c)),
                        "{party} {api} opened {:?}",
                        seen.opened
                    );
                }
                "broker" if !api.starts_with("Classify") && !api.starts_with("Subscribe") => {
                    assert!(
                        seen.opened.contains(&ledger::FieldClass::Commercial),
                        "{api}"
                    );
                    assert!(seen.classification, "broker {api}: its own classification");
                    assert!(!seen.risk, "broker {api}: customs' risk outcome");
                }
                "de-customs" if !api.starts_with("Classify") && !api.starts_with("Subscribe") => {
                    assert!(seen.classification && seen.risk, "customs {api}: {seen:?}");
                }
                _ => {}
            }
            table.push((format!("{party} via {node}"), api, seen.cell()));
        }
    }
    println!("\n{:<26} {:<24} what it got", "party", "API");
    for (who, api, cell) in &table {
        println!("{who:<26} {api:<24} {cell}");
    }

    // Acting on a shipment that is not theirs: every event kind refused.
    let history_len = |c: &mut common::Api, s: &str| {
        let req = c.signed(
            "/customs.v1.Ledger/GetShipmentHistory",
            v1::GetShipmentHistoryRequest {
                shipment_id: s.into(),
                page_size: 100,
                page_token: String::new(),
            },
        );
        let mut inner = c.inner.clone();
        async move {
            inner
                .get_shipment_history(req)
                .await
                .unwrap()
                .into_inner()
                .events
                .len()
        }
    };
    let mut watcher = net.client("de-customs", "de-customs").await;
    let before = (
        history_len(&mut watcher, ship).await,
        history_len(&mut watcher, other).await,
    );
    let mut refusals = std::collections::BTreeMap::<String, usize>::new();
    for (party, target) in [("carrier", other), ("broker2", ship), ("auditor", ship)] {
        let mut c = net.client(party, "de-customs").await;
        let key = net.key(party);
        let roles = cfg.party(party).unwrap();
        for kind in ledger::EventKind::ALL {
            if kind.is_governance() {
                continue;
            }
            let stx = common::event_with(&cfg, &key, kind, target, party);
            let e = c
                .submit(&stx)
                .await
                .expect_err("committed a stranger's event");
            let why = common::reason(&e);
            let expected = if cfg.may_submit(roles, kind) {
                "TX_NOT_SHIPMENT_PARTY"
            } else {
                "TX_ROLE_NOT_ALLOWED"
            };
            assert_eq!(why, expected, "{party} {} on {target}: {e:?}", kind.name());
            *refusals.entry(format!("{party} {why}")).or_default() += 1;
        }
    }
    let after = (
        history_len(&mut watcher, ship).await,
        history_len(&mut watcher, other).await,
    );
    assert_eq!(before, after, "a refused event was committed");
    println!("\nrefused event kinds on a shipment not theirs: {refusals:?}");
}
