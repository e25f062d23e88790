//! A few weeks of pre-built history for the demo: shipments on several
//! corridors (country of dispatch to office of first entry, by sea, air and
//! road) through their whole life, with requests for information,
//! inspections, holds, do-not-load and rejections at realistic rates, each
//! event signed by the party that would send it and dated when it happened
//! (`event.time_ms`), so the KPIs, predictions and charts have something
//! real to show. Submitted in waves (the n-th event of every shipment per
//! wave) with `SubmitBatch`, a few seconds for a few hundred shipments.
//! The offices are well-formed customs office references picked for the
//! demo, not a statement about real offices' performance.

use crate::client::{now_ms, status_error, Client};
use anyhow::{anyhow, bail, Result};
use ledger::config::{ChainConfig, FieldClass};
use ledger::crypto::Keypair;
use ledger::declaration::{self, Declaration, GoodsItem};
use ledger::disclosure::{self, Draft, Field};
use ledger::event::{EventKind, REASON_FIELD, TIME_FIELD};
use std::collections::BTreeMap;
use std::path::Path;

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// One corridor of the demo history.
struct Corridor {
    dispatch: &'static str,
    office: &'static str,
    loading: &'static str,
    unloading: &'static str,
    mode: u8,
    /// Transit, hours.
    transit_h: u64,
    /// Typical arrival-to-release, hours (the spread is drawn around it).
    clear_h: u64,
    goods: &'static [(&'static str, &'static str, u64)],
}

const CORRIDORS: [Corridor; 5] = [
    Corridor {
        dispatch: "PL",
        office: "FR000690",
        loading: "PLGDN",
        unloading: "FRLEH",
        mode: 1,
        transit_h: 5 * 24,
        clear_h: 10,
        goods: &[
            ("84713000", "Portable laptop computers", 25_000),
            ("85076000", "Lithium-ion accumulators", 1_800),
        ],
    },
    Corridor {
        dispatch: "CN",
        office: "NL000396",
        loading: "CNSHA",
        unloading: "NLRTM",
        mode: 1,
        transit_h: 32 * 24,
        clear_h: 6,
        goods: &[
            ("85171300", "Smartphones for cellular networks", 25_000),
            ("94036000", "Wooden furniture for dining rooms", 600),
        ],
    },
    Corridor {
        dispatch: "CN",
        office: "DE004851",
        loading: "CNSHA",
        unloading: "DEHAM",
        mode: 1,
        transit_h: 34 * 24,
        clear_h: 18,
        goods: &[
            ("61091000", "Cotton T-shirts, knitted", 1_500),
            ("85171300", "Smartphones for cellular networks", 25_000),
        ],
    },
    Corridor {
        dispatch: "US",
        office: "FR002300",
        loading: "USJFK",
        unloading: "FRCDG",
        mode: 4,
        transit_h: 10,
        clear_h: 3,
        goods: &[("30049000", "Medicaments in measured doses", 40_000)],
    },
    Corridor {
        dispatch: "TR",
        office: "BG005800",
        loading: "TRIST",
        unloading: "BGSOF",
        mode: 3,
        transit_h: 30,
        clear_h: 30,
        goods: &[("87089900", "Parts and accessories of motor vehicles", 1_200)],
    },
];

/// A small deterministic generator (the demo's choices, not the ledger's).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// One chance in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// One planned event.
struct Planned {
    kind: EventKind,
    submitter: &'static str,
    at: u64,
    fields: Vec<Field>,
}

fn public(path: &str, value: impl Into<String>) -> Field {
    Field {
        path: path.into(),
        class: FieldClass::Public,
        value: value.into(),
    }
}

/// What the history holds, for the demo to print and check.
#[derive(Debug, Default)]
pub(crate) struct Grown {
    /// Shipments.
    pub shipments: usize,
    /// Events committed.
    pub events: usize,
    /// Per corridor: released shipments and their arrival-to-release times (s).
    pub released: BTreeMap<String, Vec<u64>>,
    /// Inspections ordered.
    pub inspections: usize,
    /// Holds.
    pub holds: usize,
    /// Rejections.
    pub rejections: usize,
}

fn plan(
    i: usize,
    run_id: u64,
    now: u64,
    d: &mut Draw,
    grown: &mut Grown,
) -> (String, Vec<Planned>) {
    let c = &CORRIDORS[i % CORRIDORS.len()];
    let ship = format!("SHP-H{run_id}-{i:04}");
    let (hs, desc, per_kg_cents) = c.goods[d.below(c.goods.len() as u64) as usize];
    // Released within the last four weeks; everything else counted back.
    let spread = c.clear_h * HOUR / 2;
    let mut clear = c.clear_h * HOUR - spread + d.below(2 * spread + 1);
    if d.one_in(8) {
        // A slow one: the long tail p90 shows.
        clear *= 3;
    }
    let released = now - HOUR - d.below(28 * DAY);
    let arrived = released - clear;
    let filed = arrived - c.transit_h * HOUR - 2 * DAY;
    let mut mass_g = 50_000 + d.below(900_000);
    let value = mass_g * per_kg_cents / 1000;
    if c.mode == 4 {
        mass_g /= 10;
    }
    let mut decl: Declaration = declaration::sample();
    decl.lrn = format!("LRN-H{run_id}-{i:04}");
    decl.goods = vec![GoodsItem {
        description: desc.into(),
        hs_code: hs.into(),
        packages: 1 + d.below(40) as u32,
        gross_mass_g: mass_g,
        value_minor: value.max(100),
        currency: "EUR".into(),
        origin: c.dispatch.into(),
    }];
    decl.dispatch_country = c.dispatch.into();
    decl.office_of_entry = c.office.into();
    decl.place_of_loading = c.loading.into();
    decl.place_of_unloading = c.unloading.into();
    decl.routing = vec![c.dispatch.into(), decl.office_of_entry[..2].to_string()];
    decl.transport_mode = c.mode;
    decl.dpp_ids.clear();
    if c.mode != 1 {
        decl.containers.clear();
    }
    // One declaration in seven leaves an ICS2 element out.
    if d.one_in(7) {
        decl.consignee.address.clear();
    }
    let at = |t: u64| vec![public(TIME_FIELD, t.to_string())];
    let with = |t: u64, extra: Vec<Field>| {
        let mut f = at(t);
        f.extend(extra);
        f
    };
    let mut evs = vec![
        Planned {
            kind: EventKind::ShipmentBooked,
            submitter: "pl-exporter",
            at: filed - 6 * HOUR,
            fields: at(filed - 6 * HOUR),
        },
        Planned {
            kind: EventKind::DeclarationFiled,
            submitter: "broker",
            at: filed,
            fields: with(filed, decl.to_fields()),
        },
    ];
    let customs = "fr-customs";
    let mut t = filed + HOUR;
    if d.one_in(7) {
        evs.push(Planned {
            kind: EventKind::RequestForInformation,
            submitter: customs,
            at: t,
            fields: with(t, vec![public(REASON_FIELD, "INVOICE_REQUESTED")]),
        });
        t += (2 + d.below(30)) * HOUR;
        evs.push(Planned {
            kind: EventKind::InformationProvided,
            submitter: "broker",
            at: t,
            fields: at(t),
        });
        t += HOUR;
    }
    evs.push(Planned {
        kind: EventKind::AssessmentComplete,
        submitter: customs,
        at: t,
        fields: at(t),
    });
    let loaded = filed + DAY;
    for (k, when) in [
        (EventKind::Loaded, loaded),
        (EventKind::Departed, loaded + 4 * HOUR),
        (EventKind::Arrived, arrived),
        (EventKind::Presented, arrived + clear / 10),
    ] {
        evs.push(Planned {
            kind: k,
            submitter: "carrier",
            at: when,
            fields: at(when),
        });
    }
    let presented = arrived + clear / 10;
    let inspected = d.one_in(6);
    if inspected {
        grown.inspections += 1;
        let ordered = presented + clear / 10;
        evs.push(Planned {
            kind: EventKind::InspectionOrdered,
            submitter: customs,
            at: ordered,
            fields: at(ordered),
        });
        let found = d.one_in(4);
        let result = released - clear / 10;
        evs.push(Planned {
            kind: EventKind::InspectionResult,
            submitter: customs,
            at: result,
            fields: with(
                result,
                vec![Field {
                    path: "inspection.fraud_found".into(),
                    class: FieldClass::Security,
                    value: found.to_string(),
                }],
            ),
        });
    }
    if d.one_in(25) {
        grown.rejections += 1;
        grown.holds += 1;
        let held = presented + clear / 5;
        evs.push(Planned {
            kind: EventKind::Held,
            submitter: customs,
            at: held,
            fields: with(
                held,
                vec![public(REASON_FIELD, "PROHIBITED_GOODS_SUSPECTED")],
            ),
        });
        evs.push(Planned {
            kind: EventKind::Rejected,
            submitter: customs,
            at: released,
            fields: with(released, vec![public(REASON_FIELD, "PROHIBITED_GOODS")]),
        });
        return (ship, evs);
    }
    if d.one_in(12) {
        grown.holds += 1;
        let held = presented + clear / 5;
        evs.push(Planned {
            kind: EventKind::Held,
            submitter: customs,
            at: held,
            fields: with(held, vec![public(REASON_FIELD, "VALUATION_CHECK")]),
        });
    }
    evs.push(Planned {
        kind: EventKind::Released,
        submitter: customs,
        at: released,
        fields: at(released),
    });
    grown
        .released
        .entry(ledger::kpi::corridor_name(c.dispatch, c.office))
        .or_default()
        .push((released - arrived) / 1000);
    if released + DAY < now {
        evs.push(Planned {
            kind: EventKind::Delivered,
            submitter: "carrier",
            at: released + DAY,
            fields: at(released + DAY),
        });
    }
    (ship, evs)
}

/// Grow `count` shipments of history through `client`.
pub(crate) async fn grow(
    net: &Path,
    cfg: &ChainConfig,
    client: &mut Client,
    run_id: u64,
    count: usize,
) -> Result<Grown> {
    let mut keys: BTreeMap<&str, Keypair> = BTreeMap::new();
    for p in ["pl-exporter", "broker", "carrier", "fr-customs"] {
        keys.insert(
            p,
            Keypair::from_seed(&crate::spec::read_secret(
                &net.join("keys").join(format!("{p}.sign")),
            )?),
        );
    }
    let now = now_ms();
    let mut draw = Draw(0x5eed ^ run_id);
    let mut grown = Grown {
        shipments: count,
        ..Grown::default()
    };
    let plans: Vec<(String, Vec<Planned>)> = (0..count)
        .map(|i| plan(i, run_id, now, &mut draw, &mut grown))
        .collect();
    let waves = plans.iter().map(|p| p.1.len()).max().unwrap_or(0);
    let parties = ["pl-exporter", "broker", "carrier"];
    let bar = crate::progress_of((waves * count) as u64, "history", "events");
    for w in 0..waves {
        let mut batch = Vec::new();
        for (ship, evs) in &plans {
            let Some(ev) = evs.get(w) else { continue };
            let draft = Draft {
                chain_id: cfg.chain_id.clone(),
                kind: ev.kind,
                shipment_id: ship.clone(),
                submitter: ev.submitter.to_string(),
                claimed_time_ms: now_ms(),
                fields: ev.fields.clone(),
                shipment_parties: parties.iter().map(|s| s.to_string()).collect(),
                governance: None,
            };
            let key = keys
                .get(ev.submitter)
                .ok_or_else(|| anyhow!("no key for {}", ev.submitter))?;
            let stx = disclosure::seal(cfg, &draft)
                .map_err(|e| anyhow!("{e}"))?
                .sign(key)?;
            batch.push(stx.encode()?);
            debug_assert!(ev.at <= now);
        }
        // Small requests, each committed before the next: a test network
        // of debug builds replicates a few hundred kilobytes per entry
        // comfortably within a heartbeat.
        let mut chunks: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
        let mut size = 0usize;
        for b in batch {
            if size + b.len() > 128 * 1024 || chunks.last().is_some_and(|c| c.len() >= 128) {
                chunks.push(Vec::new());
                size = 0;
            }
            size += b.len();
            if let Some(c) = chunks.last_mut() {
                c.push(b);
            }
        }
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            let r = client
                .inner
                .submit_batch(client.signed(
                    "/customs.v1.Ledger/SubmitBatch",
                    proto::v1::SubmitBatchRequest {
                        signed_txs: chunk.to_vec(),
                        wait_for_commit: true,
                    },
                ))
                .await
                .map_err(status_error)?
                .into_inner();
            for o in &r.outcomes {
                if o.status != 0 || o.height == 0 {
                    let why = o
                        .rejections
                        .first()
                        .map(|r| format!("{}: {}", r.code, r.message))
                        .unwrap_or_else(|| format!("status {}", o.status));
                    bail!("a history event did not commit: {why}");
                }
            }
            grown.events += chunk.len();
            bar.inc(chunk.len() as u64);
        }
    }
    bar.finish_and_clear();
    Ok(grown)
}
