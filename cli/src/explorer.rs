//! `customsctl explorer`: a web page for one party. It listens on loopback,
//! talks to a node over gRPC with the party's own keys, exactly as the
//! other commands do (every answer checked with proofs against the
//! trusted chain config, sealed fields opened only with the party's keys),
//! and serves a single page (HTML, CSS and JavaScript compiled into the
//! binary; no CDN, no Node toolchain) with a small JSON API behind it:
//! chain status and the newest cosigned checkpoint with its signers,
//! recent blocks, a shipment's timeline as this party sees it, the KPI
//! dashboard, corridor predictions, and live block notices (server-sent
//! events). The node's trust model is unchanged: the page can do nothing
//! the party's `customsctl` could not.

use crate::client::{status_error, Client};
use crate::trust::Trust;
use crate::Conn;
use anyhow::{anyhow, bail, Context, Result};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ledger::config::FieldClass;
use ledger::disclosure::{self, DecryptionKey};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;

const INDEX: &str = include_str!("explorer/index.html");
const SCRIPT: &str = include_str!("explorer/app.js");
const STYLE: &str = include_str!("explorer/style.css");

/// Blocks listed on the overview at most.
const RECENT_BLOCKS: u64 = 20;

struct Explorer {
    conn: Conn,
    roles: Vec<String>,
    keys: Vec<DecryptionKey>,
    client: Mutex<Client>,
    trust: Mutex<Trust>,
}

/// An error as the page shows it.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn upstream(e: anyhow::Error) -> ApiError {
    ApiError(StatusCode::BAD_GATEWAY, format!("{e:#}"))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type Answer = Result<Json<Value>, ApiError>;

/// Serve the explorer for `conn`'s party on `listen` until interrupted.
pub(crate) async fn run(conn: Conn, listen: SocketAddr) -> Result<()> {
    if !listen.ip().is_loopback() {
        bail!(
            "the explorer acts with {}'s keys and has no login of its own: it listens on loopback only (got {listen})",
            conn.party
        );
    }
    let (genesis, _) = conn.trusted()?;
    let me = genesis
        .party(&conn.party)
        .ok_or_else(|| anyhow!("{} is not a party of the trusted chain config", conn.party))?;
    let roles = me
        .roles
        .iter()
        .map(|r| format!("{r:?}").to_lowercase())
        .collect();
    let client = conn.client().await?;
    let state = Arc::new(Explorer {
        keys: conn.decryption_keys()?,
        trust: Mutex::new(conn.trust()?),
        client: Mutex::new(client),
        roles,
        conn,
    });
    let app = Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/status", get(status))
        .route("/api/blocks", get(blocks))
        .route("/api/shipment/{id}", get(shipment))
        .route("/api/kpi", get(kpis))
        .route("/api/route", get(route))
        .route("/api/live", get(live))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    // Only requests addressed to this loopback listener by name: a web page
    // elsewhere that rebinds its own host name to 127.0.0.1 sends its own
    // name as Host, and is refused instead of reading as this party.
    let port = listener.local_addr()?.port();
    let hosts: Arc<Vec<String>> = Arc::new(vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        listen.to_string(),
    ]);
    let app = app.layer(axum::middleware::from_fn_with_state(hosts, check_host));
    println!(
        "explorer for {} on http://{} (node {})",
        state.conn.party,
        listener.local_addr()?,
        state.conn.node
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("explorer server")?;
    Ok(())
}

async fn check_host(
    State(allowed): State<Arc<Vec<String>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        next.run(req).await
    } else {
        ApiError(
            StatusCode::FORBIDDEN,
            "the explorer answers only requests addressed to its loopback address".into(),
        )
        .into_response()
    }
}

fn page(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

async fn status(State(s): State<Arc<Explorer>>) -> Answer {
    let mut guard = s.client.lock().await;
    let c = &mut *guard;
    let st = c.status().await.map_err(upstream)?;
    let cp = c.newest_checkpoint().await.ok();
    let checkpoint = match cp {
        Some(cp) => {
            let mut trust = s.trust.lock().await;
            let cc = crate::proofs::decode_checkpoint(&cp, trust.genesis()).map_err(upstream)?;
            let timeline = trust.timeline(c, &cc.checkpoint).await.map_err(upstream)?;
            let at = timeline.latest().clone();
            let quorum = s.conn.quorum.unwrap_or(at.checkpoint_quorum);
            let signers = crate::proofs::signers(&cc, &at, quorum).map_err(upstream)?;
            json!({
                "height": cc.checkpoint.height,
                "tree_size": cc.checkpoint.tree_size,
                "root": cc.checkpoint.tree_root.to_hex(),
                "block_hash": cc.checkpoint.block_hash.to_hex(),
                "signers": signers,
                "quorum": quorum,
                "validators": at.validators().map(|p| p.id.clone()).collect::<Vec<_>>(),
                "verified": true,
            })
        }
        None => Value::Null,
    };
    Ok(Json(json!({
        "party": s.conn.party,
        "roles": s.roles,
        "node": s.conn.node,
        "node_party": st.node_party,
        "chain_id": st.chain_id,
        "height": st.height,
        "leader": st.leader_party,
        "raft_role": st.raft_role,
        "term": st.term,
        "peers": st.peers,
        "version": st.version,
        "checkpoint": checkpoint,
    })))
}

#[derive(serde::Deserialize)]
struct BlocksQuery {
    #[serde(default)]
    limit: Option<u64>,
}

async fn blocks(State(s): State<Arc<Explorer>>, Query(q): Query<BlocksQuery>) -> Answer {
    let limit = q.limit.unwrap_or(RECENT_BLOCKS).clamp(1, 100);
    let mut guard = s.client.lock().await;
    let c = &mut *guard;
    let tip = c.status().await.map_err(upstream)?.height;
    let mut out = Vec::new();
    for h in (tip.saturating_sub(limit - 1)..=tip).rev() {
        let r = c
            .inner
            .get_block(c.signed(
                "/customs.v1.Ledger/GetBlock",
                proto::v1::GetBlockRequest { height: h },
            ))
            .await
            .map_err(|e| upstream(status_error(e)))?
            .into_inner();
        let b = ledger::Block::decode(&r.block).map_err(|e| upstream(anyhow!("{e}")))?;
        let mut kinds: BTreeMap<&str, u32> = BTreeMap::new();
        for t in &b.txs {
            *kinds.entry(t.tx.kind.name()).or_default() += 1;
        }
        out.push(json!({
            "height": b.header.height,
            "hash": b.hash().map_err(|e| upstream(anyhow!("{e}")))?.to_hex(),
            "time_ms": b.header.timestamp_ms,
            "proposer": b.header.proposer,
            "txs": b.header.tx_count,
            "kinds": kinds,
            "config_seq": b.header.config_seq,
        }));
    }
    Ok(Json(json!({ "tip": tip, "blocks": out })))
}

fn valid_shipment(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

fn class_name(c: FieldClass) -> String {
    format!("{c:?}").to_lowercase()
}

async fn shipment(State(s): State<Arc<Explorer>>, UrlPath(id): UrlPath<String>) -> Answer {
    if !valid_shipment(&id) {
        return Err(bad("a shipment id is 1-64 characters of [A-Za-z0-9-_./]"));
    }
    let mut guard = s.client.lock().await;
    let c = &mut *guard;
    let mut trust = s.trust.lock().await;
    let mut token = String::new();
    let mut events = Vec::new();
    loop {
        let h = c
            .inner
            .get_shipment_history(c.signed(
                "/customs.v1.Ledger/GetShipmentHistory",
                proto::v1::GetShipmentHistoryRequest {
                    shipment_id: id.clone(),
                    page_size: 50,
                    page_token: token.clone(),
                },
            ))
            .await
            .map_err(|e| match e.code() {
                tonic::Code::NotFound => ApiError(StatusCode::NOT_FOUND, e.message().to_string()),
                _ => upstream(status_error(e)),
            })?
            .into_inner();
        for e in &h.events {
            let (t, cfg) = trust
                .transaction(c, e)
                .await
                .with_context(|| format!("event {} of {id} fails verification", events.len()))
                .map_err(upstream)?;
            let tx = &t.stx.tx;
            let opened: BTreeMap<String, String> = disclosure::open(tx, &s.conn.party, &s.keys)
                .unwrap_or_default()
                .into_iter()
                .map(|f| (f.field.path, f.field.value))
                .collect();
            let mut fields: Vec<Value> = tx
                .public
                .iter()
                .map(|f| json!({"path": f.path, "class": "public", "value": f.value, "open": true}))
                .collect();
            fields.extend(tx.sealed.iter().map(|f| match opened.get(&f.path) {
                Some(v) => json!({"path": f.path, "class": class_name(f.class), "value": v, "open": true}),
                None => json!({"path": f.path, "class": class_name(f.class), "value": null, "open": false}),
            }));
            let outcome = match &e.result {
                Some(r) => match crate::outcomes::read(&cfg, &t.stx, r, &s.conn.party, &s.keys) {
                    Ok(reading) => json!({
                        "lines": crate::outcomes::lines(&reading),
                        "sealed": reading.sealed.iter().map(|c| class_name(*c)).collect::<Vec<_>>(),
                    }),
                    Err(err) => json!({ "error": err.to_string() }),
                },
                None => Value::Null,
            };
            let co2 = if tx.kind.carries_declaration() {
                co2_of(tx, &opened)
            } else {
                Value::Null
            };
            events.push(json!({
                "co2": co2,
                "height": t.header.height,
                "index": t.index,
                "tx_id": t.tx_id.to_hex(),
                "kind": tx.kind.name(),
                "submitter": tx.submitter,
                "block_time_ms": t.header.timestamp_ms,
                "time_ms": ledger::event::occurred_ms(tx).unwrap_or(t.header.timestamp_ms).min(t.header.timestamp_ms),
                "status": e.result.as_ref().map(|r| r.status.clone()).unwrap_or_default(),
                "fields": fields,
                "outcome": outcome,
                "proof": {
                    "verified": true,
                    "checkpoint": t.checkpoint.checkpoint.height,
                    "cosigners": t.cosigners,
                },
            }));
        }
        if h.next_page_token.is_empty() || events.len() >= 1_000 {
            break;
        }
        token = h.next_page_token;
    }
    if events.is_empty() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no events for shipment {id}"),
        ));
    }
    Ok(Json(
        json!({ "shipment": id, "party": s.conn.party, "events": events }),
    ))
}

/// The emissions estimate of a declaration's leg, when this party reads
/// its places and masses (transport class).
pub(crate) fn co2_of(tx: &ledger::Transaction, opened: &BTreeMap<String, String>) -> Value {
    let get = |p: &str| {
        opened.get(p).cloned().or_else(|| {
            tx.public
                .iter()
                .find(|f| f.path == p)
                .map(|f| f.value.clone())
        })
    };
    let (Some(mode), Some(from), Some(to)) = (
        get("decl.transport_mode").and_then(|m| m.parse::<u8>().ok()),
        get("decl.place_of_loading"),
        get("decl.place_of_unloading"),
    ) else {
        return Value::Null;
    };
    let mass: u64 = opened
        .iter()
        .filter(|(p, _)| p.ends_with(".gross_mass_g"))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .fold(0, u64::saturating_add);
    match ledger::co2::leg(mode, &from, &to, mass) {
        Ok(e) => json!({
            "from": from, "to": to, "mode": ledger::kpi::mode_name(mode),
            "distance_km": e.distance_km, "grams": e.grams_co2e,
            "factor_mg_per_tkm": e.factor_mg_per_tkm, "source": ledger::co2::FACTORS_EDITION,
        }),
        Err(err) => json!({ "error": err.to_string() }),
    }
}

#[derive(serde::Deserialize)]
struct KpiQuery {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    days: Option<u64>,
    #[serde(default)]
    value: Option<String>,
}

async fn kpis(State(s): State<Arc<Explorer>>, Query(q): Query<KpiQuery>) -> Answer {
    let by = q.by.unwrap_or_else(|| "corridor".into());
    let period = q.period.unwrap_or_else(|| "total".into());
    let from_ms = match q.days.unwrap_or(0) {
        0 => 0,
        d => crate::client::now_ms().saturating_sub(d.saturating_mul(ledger::kpi::DAY_MS)),
    };
    let value = q.value.unwrap_or_default();
    let (rows, folded) = crate::kpi::fetch(&s.conn, &by, &period, from_ms, 0, &value)
        .await
        .map_err(upstream)?;
    Ok(Json(
        json!({ "by": by, "period": period, "folded_height": folded, "rows": rows }),
    ))
}

#[derive(serde::Deserialize)]
struct RouteQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    chapter: String,
    #[serde(default)]
    mode: Option<String>,
    /// Comma-separated offices.
    #[serde(default)]
    offices: String,
}

async fn route(State(s): State<Arc<Explorer>>, Query(q): Query<RouteQuery>) -> Answer {
    let mode =
        crate::parse_mode(q.mode.as_deref().unwrap_or("1")).map_err(|e| bad(e.to_string()))?;
    let offices: Vec<String> = q
        .offices
        .split(',')
        .map(|o| o.trim().to_uppercase())
        .filter(|o| !o.is_empty())
        .collect();
    let mut guard = s.client.lock().await;
    let c = &mut *guard;
    let r = c
        .inner
        .predict_clearance(c.signed(
            "/customs.v1.Ledger/PredictClearance",
            proto::v1::PredictClearanceRequest {
                dispatch_country: q.from.trim().to_uppercase(),
                hs_chapter: q.chapter.trim().to_string(),
                transport_mode: u32::from(mode),
                offices,
                min_evidence: 0,
            },
        ))
        .await
        .map_err(|e| match e.code() {
            tonic::Code::InvalidArgument => bad(e.message()),
            _ => upstream(status_error(e)),
        })?
        .into_inner();
    let ranked: Value = serde_json::from_str(&r.predictions_json)
        .map_err(|e| upstream(anyhow!("malformed predictions: {e}")))?;
    Ok(Json(
        json!({ "predictions": ranked, "folded_height": r.folded_height }),
    ))
}

/// Server-sent events: one `block` event per committed block from the
/// current tip on.
async fn live(
    State(s): State<Arc<Explorer>>,
) -> Result<Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut c = {
        let guard = s.client.lock().await;
        Client::clone_identity(&guard)
    };
    let tip = c.status().await.map_err(upstream)?.height;
    let mut stream = c
        .inner
        .stream_blocks(c.signed(
            "/customs.v1.Ledger/StreamBlocks",
            proto::v1::StreamBlocksRequest {
                from_height: tip + 1,
            },
        ))
        .await
        .map_err(|e| upstream(status_error(e)))?
        .into_inner();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    tokio::spawn(async move {
        while let Ok(Some(b)) = stream.message().await {
            let Ok(block) = ledger::Block::decode(&b.block) else {
                break;
            };
            let data = json!({
                "height": block.header.height,
                "txs": block.header.tx_count,
                "time_ms": block.header.timestamp_ms,
                "proposer": block.header.proposer,
            });
            if tx
                .send(Ok(Event::default().event("block").data(data.to_string())))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    Ok(Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}
