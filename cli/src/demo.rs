//! The demo scenario against a running test network: an electronics
//! shipment from Poland to France through its whole life, a second one with
//! a wrong HS code and an implausible value per kg that gets flagged and
//! held, each party's view of the timeline, and the auditor's verification.

use crate::client::{now_ms, status_error, Client};
use crate::proofs;
use anyhow::{anyhow, bail, Context, Result};
use ledger::config::{ChainConfig, FieldClass};
use ledger::crypto::Keypair;
use ledger::declaration::{self, Declaration, GoodsItem};
use ledger::disclosure::{self, DecryptionKey, Draft, Field};
use ledger::event::EventKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One party of the demo with its own node.
struct Actor {
    party: String,
    client: Client,
    key: Keypair,
    dkey: DecryptionKey,
}

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// Directory `customsctl genesis` wrote (keys/, genesis.json, <party>/node.toml).
    pub net: PathBuf,
}

/// The gRPC address of `party`'s node, and the network CA to pin when the
/// node serves TLS.
fn grpc_of(net: &Path, party: &str) -> Result<(String, Option<PathBuf>)> {
    let text = std::fs::read_to_string(net.join(party).join("node.toml"))
        .with_context(|| format!("no node config for {party} under {}", net.display()))?;
    let v: toml::Table = text.parse()?;
    let addr = v
        .get("grpc_listen")
        .and_then(|x| x.as_str())
        .ok_or_else(|| anyhow!("{party}: no grpc_listen"))?;
    let addr = addr.replace("0.0.0.0", "127.0.0.1");
    if v.contains_key("tls_cert") {
        Ok((
            format!("https://{addr}"),
            Some(net.join("tls").join("ca.crt")),
        ))
    } else {
        Ok((format!("http://{addr}"), None))
    }
}

async fn actor(net: &Path, cfg: &ChainConfig, party: &str) -> Result<Actor> {
    let keys = net.join("keys");
    let key = Keypair::from_seed(&crate::spec::read_secret(
        &keys.join(format!("{party}.sign")),
    )?);
    let dkey = DecryptionKey::from_secret(crate::spec::read_secret(
        &keys.join(format!("{party}.x25519")),
    )?);
    let (url, ca) = grpc_of(net, party)?;
    // Each party talks to its own node.
    let client = Client::connect(
        &url,
        ca.as_deref(),
        &cfg.chain_id,
        Some(party),
        party,
        Keypair::from_seed(&key.seed()),
    )
    .await?;
    Ok(Actor {
        party: party.to_string(),
        client,
        key,
        dkey,
    })
}

/// A committed submission: the answer and the transaction itself.
struct Sent {
    resp: proto::v1::SubmitResponse,
    stx: ledger::SignedTransaction,
}

impl Actor {
    /// What this party's keys open of a committed result.
    fn read(&self, cfg: &ChainConfig, sent: &Sent) -> Result<crate::outcomes::Reading> {
        let r = sent
            .resp
            .result
            .as_ref()
            .ok_or_else(|| anyhow!("no result in the answer"))?;
        crate::outcomes::read(
            cfg,
            &sent.stx,
            r,
            &self.party,
            std::slice::from_ref(&self.dkey),
        )
    }

    /// Print what this party reads of a committed declaration's outcome.
    fn show(&self, cfg: &ChainConfig, sent: &Sent) -> Result<()> {
        let reading = self.read(cfg, sent)?;
        let lines: Vec<String> = crate::outcomes::lines(&reading)
            .into_iter()
            .filter(|l| !l.starts_with("status:"))
            .collect();
        println!("      {} reads: {}", self.party, lines.join(" | "));
        Ok(())
    }

    async fn send(
        &mut self,
        cfg: &ChainConfig,
        kind: EventKind,
        shipment: &str,
        fields: Vec<Field>,
        parties: &[&str],
    ) -> Result<Sent> {
        let draft = Draft {
            chain_id: cfg.chain_id.clone(),
            kind,
            shipment_id: shipment.to_string(),
            submitter: self.party.clone(),
            claimed_time_ms: now_ms(),
            fields,
            shipment_parties: parties.iter().map(|s| s.to_string()).collect(),
            governance: None,
        };
        let stx = disclosure::seal(cfg, &draft)
            .map_err(|e| anyhow!("{e}"))?
            .sign(&self.key)?;
        let req = self.client.signed(
            "/customs.v1.Ledger/Submit",
            proto::v1::SubmitRequest {
                signed_tx: stx.encode()?,
                wait_for_commit: true,
            },
        );
        // Leadership may be settling right after start: retry briefly.
        let mut last = None;
        for attempt in 0..30 {
            let req = if attempt == 0 {
                req_clone(&req)
            } else {
                self.client.signed(
                    "/customs.v1.Ledger/Submit",
                    proto::v1::SubmitRequest {
                        signed_tx: stx.encode()?,
                        wait_for_commit: true,
                    },
                )
            };
            match self.client.inner.submit(req).await {
                Ok(r) => {
                    return Ok(Sent {
                        resp: r.into_inner(),
                        stx,
                    })
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    last = Some(s);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(s) => return Err(status_error(s)),
            }
        }
        Err(status_error(
            last.unwrap_or_else(|| tonic::Status::unavailable("no leader")),
        ))
    }
}

fn req_clone<T: Clone>(r: &tonic::Request<T>) -> tonic::Request<T> {
    let mut n = tonic::Request::new(r.get_ref().clone());
    *n.metadata_mut() = r.metadata().clone();
    n
}

fn line(step: &str, sent: &Sent) {
    let status = sent
        .resp
        .result
        .as_ref()
        .map(|r| r.status.as_str())
        .unwrap_or("");
    println!("  {step:<44} block {:>4}  {status}", sent.resp.height);
}

fn one_item_decl(
    lrn: &str,
    value_minor: u64,
    mass_g: u64,
    hs: &str,
    description: &str,
) -> Declaration {
    let mut d = declaration::sample();
    d.lrn = lrn.into();
    d.goods = vec![GoodsItem {
        description: description.into(),
        hs_code: hs.into(),
        packages: 10,
        gross_mass_g: mass_g,
        value_minor,
        currency: "EUR".into(),
        origin: "PL".into(),
    }];
    d
}

async fn timeline(a: &mut Actor, cfg: &ChainConfig, shipment: &str) -> Result<()> {
    let h = a
        .client
        .inner
        .get_shipment_history(a.client.signed(
            "/customs.v1.Ledger/GetShipmentHistory",
            proto::v1::GetShipmentHistoryRequest {
                shipment_id: shipment.to_string(),
                page_size: 100,
                page_token: String::new(),
            },
        ))
        .await
        .map_err(status_error)?
        .into_inner();
    println!(
        "\n--- {shipment} as seen by {} (status {}) ---",
        a.party, h.status
    );
    for e in &h.events {
        let t = proofs::transaction(e, cfg, cfg.checkpoint_quorum)?;
        let opened = disclosure::open(&t.stx.tx, &a.party, std::slice::from_ref(&a.dkey))
            .map_err(|e| anyhow!("{e}"))?;
        let by_path: BTreeMap<&str, &str> = opened
            .iter()
            .map(|f| (f.field.path.as_str(), f.field.value.as_str()))
            .collect();
        let sealed = t.stx.tx.sealed.len();
        let readable = opened
            .iter()
            .filter(|f| f.field.class != FieldClass::Public)
            .count();
        let value = by_path
            .get("decl.goods[0].value_minor")
            .map(|v| format!("value EUR {:.2}", v.parse::<f64>().unwrap_or(0.0) / 100.0));
        let hs = by_path
            .get("decl.goods[0].hs_code")
            .map(|v| format!("HS {v}"));
        let container = by_path
            .get("decl.containers[0]")
            .map(|v| format!("container {v}"));
        let details: Vec<String> = [hs, value, container].into_iter().flatten().collect();
        println!(
            "  h{:<4} {:<22} by {:<11} sealed {:>2}/{:<2} readable  {}  [proof ok]",
            t.header.height,
            t.stx.tx.kind.name(),
            t.stx.tx.submitter,
            readable,
            sealed,
            if details.is_empty() {
                "-".to_string()
            } else {
                details.join(", ")
            }
        );
    }
    Ok(())
}

/// Shipments of pre-built history the demo grows.
const HISTORY_SHIPMENTS: usize = 250;

/// A connection as `party` to its own node.
fn conn_of(net: &Path, party: &str) -> Result<crate::Conn> {
    let (node, ca) = grpc_of(net, party)?;
    Ok(crate::Conn {
        node,
        ca,
        party: party.into(),
        keys: net.join("keys"),
        genesis: net.join("genesis.json"),
        quorum: None,
        node_party: Some(party.into()),
    })
}

/// The KPIs after the history, as customs and as the carrier see them, the
/// predicted clearance times, and a check that the figures match what was
/// committed.
async fn kpis(net: &Path, grown: &crate::history::Grown) -> Result<()> {
    let customs = conn_of(net, "fr-customs")?;
    // The KPIs fold beside the ledger: wait until they reach the tip.
    let tip = customs
        .client()
        .await?
        .newest_checkpoint()
        .await
        .map(|c| c.height)
        .unwrap_or(0);
    let mut rows = Vec::new();
    for _ in 0..100 {
        let (r, folded) = crate::kpi::fetch(&customs, "corridor", "total", 0, 0, "").await?;
        rows = r;
        if folded > tip {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!("  KPIs by corridor as fr-customs sees them (times median / p90):");
    crate::kpi::print_rows(&rows, "ttc")?;
    for (corridor, times) in &grown.released {
        let row = rows
            .iter()
            .find(|r| &r.value == corridor)
            .ok_or_else(|| anyhow!("no KPI row for corridor {corridor}"))?;
        if row.arrived_to_release.n < times.len() as u64 {
            bail!(
                "corridor {corridor}: the KPIs count {} clearances, the history committed {}",
                row.arrived_to_release.n,
                times.len()
            );
        }
    }
    let carrier = conn_of(net, "carrier")?;
    let (all, _) = crate::kpi::fetch(&carrier, "all", "total", 0, 0, "").await?;
    if let Some(r) = all.first() {
        println!(
            "  the carrier sees the public figures ({} declarations, inspection rate {}) and not the sealed ones (hit rate {}, DDP accuracy {})",
            r.declarations,
            r.inspection_rate.percent(),
            if r.hit_rate.is_some() { "SHOWN" } else { "sealed" },
            if r.ddp_accuracy.is_some() { "SHOWN" } else { "sealed" },
        );
        if r.hit_rate.is_some() || r.ddp_accuracy.is_some() {
            bail!("the carrier was shown sealed KPI figures");
        }
    }
    println!();
    crate::kpi::route(
        &customs,
        "CN",
        "85",
        1,
        &["DE004851".to_string(), "NL000396".to_string()],
        ledger::kpi::MIN_EVIDENCE,
        false,
    )
    .await?;
    Ok(())
}

/// Run the scenario.
pub async fn run(args: DemoArgs) -> Result<()> {
    let cfg: ChainConfig =
        serde_json::from_str(&std::fs::read_to_string(args.net.join("genesis.json"))?)?;
    let run_id = now_ms() % 1_000_000;
    let mut exporter = actor(&args.net, &cfg, "pl-exporter").await?;
    let mut broker = actor(&args.net, &cfg, "broker").await?;
    let mut carrier = actor(&args.net, &cfg, "carrier").await?;
    let mut fr = actor(&args.net, &cfg, "fr-customs").await?;
    let mut auditor = actor(&args.net, &cfg, "auditor").await?;
    let parties = ["pl-exporter", "broker", "carrier"];
    let a = format!("SHP-PLFR-{run_id}-A");
    let b = format!("SHP-PLFR-{run_id}-B");
    let note = |text: &str| {
        vec![Field {
            path: "event.note".into(),
            class: FieldClass::Public,
            value: text.into(),
        }]
    };

    println!("== Shipment {a}: electronics, Gdansk (PLGDN) -> Le Havre (FRLEH)");
    line(
        "exporter books the shipment",
        &exporter
            .send(
                &cfg,
                EventKind::ShipmentBooked,
                &a,
                note("booked"),
                &parties,
            )
            .await?,
    );
    let mut decl = declaration::sample();
    decl.lrn = format!("LRN-{run_id}-A");
    // Laptops and lithium-ion batteries: codes the 2020 tariff the quotes
    // use knows (the sample's smartphones are HS 2022's 8517.13).
    decl.goods[1].description = "Lithium-ion accumulators, battery packs".into();
    decl.goods[1].hs_code = "85076000".into();
    // Checkout: the buyer is shown duties and VAT before ordering; the
    // declaration names that quote, and customs assess against it.
    let basket = proto::v1::QuoteRequest {
        origin: "PL".into(),
        destination: "FR".into(),
        date: ledger::tariff::date_of(now_ms()),
        currency: "EUR".into(),
        shipping_minor: 0,
        insurance_minor: 0,
        lines: decl
            .goods
            .iter()
            .map(|g| proto::v1::QuoteLine {
                description: g.description.clone(),
                code: g.hs_code.clone(),
                quantity: u64::from(g.packages),
                value_minor: g.value_minor,
                net_mass_g: g.gross_mass_g,
                gross_mass_g: g.gross_mass_g,
            })
            .collect(),
    };
    let r = broker
        .client
        .inner
        .quote(broker.client.signed("/customs.v1.Ledger/Quote", basket))
        .await
        .map_err(status_error)?
        .into_inner();
    let q: ledger::quote::Quote = serde_json::from_str(&r.quote_json)?;
    println!(
        "  checkout quote {}: duty EUR {} + VAT EUR {} ({}% FR), landed EUR {}",
        &q.id.to_hex()[..16],
        ledger::quote::euros(q.duty_cents),
        ledger::quote::euros(q.vat_cents),
        ledger::quote::percent(q.vat_rate_milli),
        ledger::quote::euros(q.landed_cents)
    );
    decl.quote = Some(declaration::QuoteRef {
        id: q.id.to_hex(),
        taxes_cents: q.duty_cents + q.vat_cents,
    });
    let filed = broker
        .send(
            &cfg,
            EventKind::DeclarationFiled,
            &a,
            decl.to_fields(),
            &parties,
        )
        .await?;
    line("broker files the declaration", &filed);
    // The outcome is sealed: classification to the declaration's
    // commercial readers, risk to customs.
    for who in [&broker, &fr, &carrier] {
        who.show(&cfg, &filed)?;
    }
    line(
        "FR customs: assessment complete",
        &fr.send(
            &cfg,
            EventKind::AssessmentComplete,
            &a,
            note("no risk found"),
            &parties,
        )
        .await?,
    );
    for (k, what) in [
        (EventKind::Loaded, "carrier loads in Gdansk"),
        (EventKind::Departed, "carrier departs"),
        (EventKind::Arrived, "carrier arrives in Le Havre"),
        (EventKind::Presented, "carrier presents the goods"),
    ] {
        line(
            what,
            &carrier.send(&cfg, k, &a, note(what), &parties).await?,
        );
    }
    line(
        "FR customs releases",
        &fr.send(
            &cfg,
            EventKind::Released,
            &a,
            note("released for free circulation"),
            &parties,
        )
        .await?,
    );
    // Duties and VAT as customs assessed them, against the checkout quote.
    if let Some(a) = fr.read(&cfg, &filed)?.judgement.assessment {
        println!(
            "  customs assessed duty EUR {} + VAT EUR {} against the quoted EUR {}: {} (DDP price accuracy 1 of 1)",
            ledger::quote::euros(a.duty_cents),
            ledger::quote::euros(a.vat_cents),
            a.quoted_cents.map(ledger::quote::euros).unwrap_or_default(),
            if a.within_tolerance == Some(true) {
                "within tolerance"
            } else {
                "OUTSIDE tolerance"
            }
        );
        if a.within_tolerance != Some(true) {
            bail!("the assessment departs from the checkout quote");
        }
    } else {
        bail!("customs committed no assessment of the declaration");
    }
    line(
        "carrier delivers",
        &carrier
            .send(
                &cfg,
                EventKind::Delivered,
                &a,
                note("delivered to consignee"),
                &parties,
            )
            .await?,
    );

    println!("\n== History: ordinary declarations teach the risk model the usual value per kg");
    // Ten smartphone declarations (about EUR 250/kg) and ten roasted coffee
    // declarations (about EUR 8/kg): the value-per-kg factor compares a
    // declaration with the committed history of its declared HS6.
    let seeds: [(&str, u64, &str, &str); 2] = [
        (
            "P",
            2_500_000,
            "85171300",
            "Smartphones for cellular networks",
        ),
        (
            "C",
            80_000,
            "09012100",
            "Roasted coffee beans, not decaffeinated",
        ),
    ];
    let mut futs = Vec::new();
    for (tag, base, hs, desc) in seeds {
        for i in 0..10u64 {
            let s = format!("SHP-HIST-{run_id}-{tag}{i}");
            let d = one_item_decl(
                &format!("LRN-H-{run_id}-{tag}{i}"),
                base + i * (base / 250),
                100_000,
                hs,
                desc,
            );
            let mut br = actor(&args.net, &cfg, "broker").await?;
            let cfg = cfg.clone();
            futs.push(tokio::spawn(async move {
                br.send(
                    &cfg,
                    EventKind::DeclarationFiled,
                    &s,
                    d.to_fields(),
                    &["pl-exporter", "carrier"],
                )
                .await
            }));
        }
    }
    for f in futs {
        f.await.map_err(|e| anyhow!("{e}"))??;
    }
    println!("  committed 10 declarations of HS 851713 and 10 of HS 090121");

    println!("\n== Shipment {b}: smartphones declared as roasted coffee, EUR 0.30 per kg");
    line(
        "exporter books the shipment",
        &exporter
            .send(
                &cfg,
                EventKind::ShipmentBooked,
                &b,
                note("booked"),
                &parties,
            )
            .await?,
    );
    let bad = one_item_decl(
        &format!("LRN-{run_id}-B"),
        3_000,
        100_000,
        "09012100",
        "Smartphones for cellular networks",
    );
    let r = broker
        .send(
            &cfg,
            EventKind::DeclarationFiled,
            &b,
            bad.to_fields(),
            &parties,
        )
        .await?;
    line("broker files the declaration", &r);
    for who in [&broker, &fr, &carrier] {
        who.show(&cfg, &r)?;
    }
    let seen = fr.read(&cfg, &r)?.judgement;
    let flagged = seen.warnings.iter().any(|w| w.starts_with("HS_MISMATCH"))
        && seen.risk.as_ref().is_some_and(|k| k.level != "low");
    if !flagged {
        bail!("the wrong declaration was not flagged: {seen:?}");
    }
    // What the broker sees of its own assessment is the policy's choice:
    // the classification (Commercial), never the risk score (Security).
    if broker.read(&cfg, &r)?.judgement.risk.is_some() {
        bail!("the broker could read customs' risk assessment");
    }
    // The reasons for the hold are customs' own (security class): the
    // carrier sees that the goods are held, not why.
    let mut held = note("held by customs");
    held.push(Field {
        path: "hold.reasons".into(),
        class: FieldClass::Security,
        value: "declared HS 0901 (coffee) for goods described as smartphones; EUR 0.30 per kg against a history of about EUR 250".into(),
    });
    line(
        "FR customs holds the goods",
        &fr.send(&cfg, EventKind::Held, &b, held, &parties).await?,
    );
    line(
        "FR customs orders an inspection",
        &fr.send(
            &cfg,
            EventKind::InspectionOrdered,
            &b,
            note("physical inspection"),
            &parties,
        )
        .await?,
    );

    for who in [&mut carrier, &mut fr, &mut exporter] {
        timeline(who, &cfg, &a).await?;
    }
    timeline(&mut carrier, &cfg, &b).await?;
    timeline(&mut fr, &cfg, &b).await?;

    println!(
        "\n== Four weeks on five corridors: pre-built history, each event dated when it happened"
    );
    let grown =
        crate::history::grow(&args.net, &cfg, &mut fr.client, run_id, HISTORY_SHIPMENTS).await?;
    println!(
        "  committed {} events of {} shipments ({} inspections, {} holds, {} rejections)",
        grown.events, grown.shipments, grown.inspections, grown.holds, grown.rejections
    );
    kpis(&args.net, &grown).await?;

    println!("\n== Auditor: verify the whole chain and one shipment's history");
    let (node, ca) = grpc_of(&args.net, "auditor")?;
    let conn = crate::Conn {
        node,
        ca,
        party: "auditor".into(),
        keys: args.net.join("keys"),
        genesis: args.net.join("genesis.json"),
        quorum: None,
        node_party: Some("auditor".into()),
    };
    crate::verify_node(
        &conn,
        Some(&args.net.join("auditor-trusted-checkpoint.json")),
    )
    .await?;
    timeline(&mut auditor, &cfg, &a).await?;
    println!("\ndemo complete");
    Ok(())
}
