//! The gRPC services. Each handler authenticates the caller first, then
//! answers from the local ledger (reads) or goes through consensus
//! (submissions, membership). Conversions to proto live here; status
//! mapping lives in `status`.

use crate::limits::{bounded, STREAM_BUFFER_BYTES};
use crate::service::{checkpoint_proto, NodeCore};
use crate::status;
use consensus::openraft::ServerState;
use consensus::PeerNode;
use ledger::config::Role;
use ledger::Store;
use ledger::{Block, Hash32};
use proto::v1;
use proto::v1::admin_server::Admin;
use proto::v1::ledger_server::Ledger as LedgerApi;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Server-side implementation of both services.
#[derive(Debug, Clone)]
pub struct Api {
    core: Arc<NodeCore>,
    /// The classifier over the nomenclature alone, for callers other than
    /// customs: the learned one holds evidence from other traders' sealed
    /// descriptions (an exact phrase weighs heavily), which `Classify` must
    /// not let them probe.
    public_classifier: Option<Arc<ledger::hs::classifier::Classifier>>,
}

impl Api {
    /// Wrap the node core.
    pub fn new(core: Arc<NodeCore>) -> Self {
        let public_classifier = core.content.as_ref().and_then(|c| {
            c.read().ok().map(|v| {
                let c = ledger::hs::classifier::Classifier::new(v.nomenclature());
                Arc::new(match v.semantic() {
                    Some(t) => c.with_semantic(t.clone()),
                    None => c,
                })
            })
        });
        Api {
            core,
            public_classifier,
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

const PAGE_MAX: u32 = 200;

/// Most config changes one GetConfigHistory answer carries.
const CONFIG_HISTORY_PAGE: usize = 256;

fn parse_hash(b: &[u8]) -> Result<Hash32, Status> {
    let a: [u8; 32] = b
        .try_into()
        .map_err(|_| status::invalid("BAD_ID", "a transaction id is 32 bytes"))?;
    Ok(ledger::Bytes(a))
}

/// A committed block, read without the ledger lock that apply needs.
fn block_at(core: &NodeCore, height: u64) -> Result<Option<Block>, Status> {
    core.consensus
        .ledger()
        .with_store(|s| ledger::chain::read_block(s, height))
        .map_err(status::internal)?
        .map_err(status::corrupt)
}

fn block_response(b: &Block) -> Result<v1::BlockResponse, Status> {
    Ok(v1::BlockResponse {
        block: b.encode().map_err(status::internal)?,
        block_hash: b.hash().map_err(status::internal)?.0.to_vec(),
        height: b.header.height,
    })
}

/// Wait until the ledger passes `height` (or a timeout).
async fn wait_height(core: &NodeCore, height: u64) {
    let mut rx = core.consensus.metrics();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        if core.consensus.ledger().tip().map_or(0, |t| t.height) >= height {
            return;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tonic::async_trait]
impl LedgerApi for Api {
    async fn submit(
        &self,
        req: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let caller = self.core.authenticate(&req, "/customs.v1.Ledger/Submit")?;
        let r = req.into_inner();
        Ok(Response::new(
            self.core
                .submit(r.signed_tx, r.wait_for_commit, true, &caller)
                .await?,
        ))
    }

    async fn submit_batch(
        &self,
        req: Request<v1::SubmitBatchRequest>,
    ) -> Result<Response<v1::SubmitBatchResponse>, Status> {
        let caller = self
            .core
            .authenticate(&req, "/customs.v1.Ledger/SubmitBatch")?;
        let r = req.into_inner();
        let outcomes = self
            .core
            .submit_batch(r.signed_txs, r.wait_for_commit, true, &caller)
            .await?;
        Ok(Response::new(v1::SubmitBatchResponse { outcomes }))
    }

    async fn get_transaction(
        &self,
        req: Request<v1::GetTransactionRequest>,
    ) -> Result<Response<v1::TransactionProof>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Ledger/GetTransaction")?;
        let _reading = self.core.limits.reads.take(&party, 1)?;
        let id = parse_hash(&req.get_ref().tx_id)?;
        Ok(Response::new(self.core.transaction_proof(&id).await?))
    }

    async fn get_shipment_history(
        &self,
        req: Request<v1::GetShipmentHistoryRequest>,
    ) -> Result<Response<v1::ShipmentHistory>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Ledger/GetShipmentHistory")?;
        let _reading = self.core.limits.reads.take(&party, 1)?;
        let r = req.into_inner();
        let size = if r.page_size == 0 {
            50
        } else {
            r.page_size.min(PAGE_MAX)
        } as usize;
        let after = if r.page_token.is_empty() {
            None
        } else {
            let (h, i) = r
                .page_token
                .split_once(':')
                .and_then(|(h, i)| Some((h.parse::<u64>().ok()?, i.parse::<u32>().ok()?)))
                .ok_or_else(|| status::invalid("BAD_PAGE_TOKEN", "page token is height:index"))?;
            Some(ledger::store::TxLocation {
                height: h,
                index: i,
            })
        };
        let shipment = r.shipment_id.clone();
        let (events, state) = self
            .core
            .consensus
            .ledger()
            .with_store(|s| -> Result<_, ledger::store::StoreError> {
                Ok((
                    s.shipment_events(&shipment, after, size + 1)?,
                    s.shipment_state(&shipment)?,
                ))
            })
            .map_err(status::internal)?
            .map_err(status::corrupt)?;
        if events.is_empty() && after.is_none() {
            return Err(status::not_found(
                "SHIPMENT_NOT_FOUND",
                format!("no events for shipment {shipment:?}"),
            ));
        }
        let more = events.len() > size;
        let mut out = Vec::new();
        let mut last = None;
        for (loc, id) in events.into_iter().take(size) {
            out.push(self.core.transaction_proof(&id).await?);
            last = Some(loc);
        }
        Ok(Response::new(v1::ShipmentHistory {
            events: out,
            next_page_token: match (more, last) {
                (true, Some(l)) => format!("{}:{}", l.height, l.index),
                _ => String::new(),
            },
            status: state
                .map(|s| format!("{:?}", s.status).to_uppercase())
                .unwrap_or_default(),
        }))
    }

    async fn get_block(
        &self,
        req: Request<v1::GetBlockRequest>,
    ) -> Result<Response<v1::BlockResponse>, Status> {
        self.core
            .authenticate(&req, "/customs.v1.Ledger/GetBlock")?;
        let h = req.get_ref().height;
        let b = block_at(&self.core, h)?
            .ok_or_else(|| status::not_found("BLOCK_NOT_FOUND", format!("no block {h}")))?;
        Ok(Response::new(block_response(&b)?))
    }

    type StreamBlocksStream = BoxStream<v1::BlockResponse>;

    async fn stream_blocks(
        &self,
        req: Request<v1::StreamBlocksRequest>,
    ) -> Result<Response<Self::StreamBlocksStream>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Ledger/StreamBlocks")?;
        let slot = self.core.limits.streams.take(&party, 1)?;
        let mut next = req.get_ref().from_height;
        let core = self.core.clone();
        let (tx, rx) = bounded::channel(STREAM_BUFFER_BYTES, slot);
        tokio::spawn(async move {
            loop {
                match block_at(&core, next) {
                    Ok(Some(b)) => match block_response(&b) {
                        Ok(r) => {
                            let size = r.block.len();
                            if !tx.send(Ok(r), size).await {
                                return;
                            }
                            next += 1;
                        }
                        Err(e) => {
                            tx.send(Err(e), 1).await;
                            return;
                        }
                    },
                    Ok(None) => {
                        if tx.is_closed() {
                            return;
                        }
                        wait_height(&core, next).await;
                    }
                    Err(e) => {
                        tx.send(Err(e), 1).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }

    type SubscribeEventsStream = BoxStream<v1::EventNotice>;

    async fn subscribe_events(
        &self,
        req: Request<v1::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Ledger/SubscribeEvents")?;
        let slot = self.core.limits.streams.take(&party, 1)?;
        let r = req.into_inner();
        let mut next = r.from_height;
        let core = self.core.clone();
        let (tx, rx) = bounded::channel(STREAM_BUFFER_BYTES, slot);
        tokio::spawn(async move {
            loop {
                match block_at(&core, next) {
                    Ok(Some(b)) => {
                        for (i, (stx, res)) in b.txs.iter().zip(&b.results).enumerate() {
                            let t = &stx.tx;
                            if !r.shipment_id.is_empty() && t.shipment_id != r.shipment_id {
                                continue;
                            }
                            if !r.kinds.is_empty() && !r.kinds.iter().any(|k| k == t.kind.name()) {
                                continue;
                            }
                            let notice = v1::EventNotice {
                                height: b.header.height,
                                index: i as u32,
                                tx_id: res.tx_id.0.to_vec(),
                                shipment_id: t.shipment_id.clone(),
                                kind: t.kind.name().to_string(),
                                status: res
                                    .status
                                    .map(|s| format!("{s:?}").to_uppercase())
                                    .unwrap_or_default(),
                                signed_tx: stx.encode().unwrap_or_default(),
                            };
                            let size = notice.signed_tx.len() + 128;
                            if !tx.send(Ok(notice), size).await {
                                return;
                            }
                        }
                        next += 1;
                    }
                    Ok(None) => {
                        if tx.is_closed() {
                            return;
                        }
                        wait_height(&core, next).await;
                    }
                    Err(e) => {
                        tx.send(Err(e), 1).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }

    async fn get_checkpoint(
        &self,
        req: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::CosignedCheckpoint>, Status> {
        self.core
            .authenticate(&req, "/customs.v1.Ledger/GetCheckpoint")?;
        let h = req.get_ref().height;
        let cp = if h == 0 {
            self.core.checkpoint_for(0).await?
        } else {
            self.core
                .consensus
                .ledger()
                .with_ledger(|l| l.store().checkpoint(h))
                .map_err(status::internal)?
                .map_err(status::corrupt)?
                .ok_or_else(|| {
                    status::not_found(
                        "NO_CHECKPOINT",
                        format!("no cosigned checkpoint at height {h}"),
                    )
                })?
        };
        Ok(Response::new(checkpoint_proto(&cp)?))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::ConsistencyProof>, Status> {
        self.core
            .authenticate(&req, "/customs.v1.Ledger/GetConsistencyProof")?;
        let r = req.into_inner();
        let size = self
            .core
            .consensus
            .ledger()
            .tip()
            .map_err(status::internal)?
            .height
            + 1;
        if r.old_size == 0 || r.old_size > r.new_size || r.new_size > size {
            return Err(status::invalid(
                "BAD_SIZES",
                format!("need 0 < old_size <= new_size <= {size}"),
            ));
        }
        let proof = self
            .core
            .consensus
            .ledger()
            .with_ledger(|l| l.consistency_proof(r.old_size, r.new_size))
            .map_err(status::internal)?
            .map_err(status::internal)?;
        Ok(Response::new(v1::ConsistencyProof {
            old_size: r.old_size,
            new_size: r.new_size,
            proof: proof.into_iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_config_history(
        &self,
        req: Request<v1::GetConfigHistoryRequest>,
    ) -> Result<Response<v1::ConfigHistory>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Ledger/GetConfigHistory")?;
        let _reading = self.core.limits.reads.take(&party, 1)?;
        let r = req.into_inner();
        let tip = self
            .core
            .consensus
            .ledger()
            .tip()
            .map_err(status::internal)?
            .height;
        if r.height > tip {
            return Err(status::not_found(
                "BLOCK_NOT_FOUND",
                format!("no block {} (tip {tip})", r.height),
            ));
        }
        let g = self
            .core
            .consensus
            .ledger()
            .with_store(|s| {
                ledger::chain::governance_blocks(s, r.height, r.after_seq, CONFIG_HISTORY_PAGE)
            })
            .map_err(status::internal)?
            .map_err(status::corrupt)?;
        let mut blocks = Vec::with_capacity(g.blocks.len());
        for (b, proof) in &g.blocks {
            blocks.push(v1::ProvenBlock {
                block: b.encode().map_err(status::internal)?,
                block_proof: proof.iter().map(|h| h.to_vec()).collect(),
            });
        }
        Ok(Response::new(v1::ConfigHistory {
            header: ledger::codec::encode(&g.header).map_err(status::internal)?,
            blocks,
            more: g.more,
        }))
    }

    async fn get_kpis(
        &self,
        req: Request<v1::KpiRequest>,
    ) -> Result<Response<v1::KpiResponse>, Status> {
        let party = self.core.authenticate(&req, "/customs.v1.Ledger/GetKpis")?;
        let _reading = self.core.limits.reads.take(&party, 1)?;
        let r = req.into_inner();
        let bad = |what: &str| {
            status::invalid(
                "BAD_KPI_QUERY",
                format!("{what}; dimensions: all, corridor, chapter, mode, party; periods: total, month, week, day"),
            )
        };
        let dim = if r.dimension.is_empty() {
            ledger::kpi::Dim::All
        } else {
            ledger::kpi::Dim::parse(&r.dimension).ok_or_else(|| bad("unknown dimension"))?
        };
        let period = if r.period.is_empty() {
            ledger::kpi::Period::Total
        } else {
            ledger::kpi::Period::parse(&r.period).ok_or_else(|| bad("unknown period"))?
        };
        if r.value.len() > 64 {
            return Err(bad("a group value is at most 64 characters"));
        }
        let config = self
            .core
            .consensus
            .ledger()
            .with_ledger(|l| l.shared_config())
            .map_err(status::internal)?;
        let me = config
            .party(&party)
            .ok_or_else(|| status::denied("UNKNOWN_PARTY", "caller is not registered"))?;
        let everywhere = ledger::kpi::Visibility::of(&config, me, false);
        let own = ledger::kpi::Visibility::of(&config, me, true);
        let q = ledger::kpi::KpiQuery {
            dim,
            period,
            from_ms: r.from_ms,
            to_ms: r.to_ms,
            value: r.value,
        };
        const MAX_ROWS: usize = 5_000;
        let (rows, folded) = self.core.kpis.read(|e| {
            let rows: Vec<ledger::kpi::KpiRow> = e
                .rows(&q)
                .take(MAX_ROWS)
                .map(|(k, s)| {
                    let vis = if k.dim == ledger::kpi::Dim::Party && k.value == party {
                        own
                    } else {
                        everywhere
                    };
                    ledger::kpi::KpiRow::new(k, s, vis)
                })
                .collect();
            (rows, e.next_height())
        });
        Ok(Response::new(v1::KpiResponse {
            rows_json: serde_json::to_string(&rows).map_err(status::internal)?,
            folded_height: folded,
            height: self.core.consensus.ledger().tip().map_or(0, |t| t.height),
        }))
    }

    async fn predict_clearance(
        &self,
        req: Request<v1::PredictClearanceRequest>,
    ) -> Result<Response<v1::PredictClearanceResponse>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Ledger/PredictClearance")?;
        let _reading = self.core.limits.reads.take(&party, 1)?;
        let r = req.into_inner();
        if r.offices.len() > 100 || r.offices.iter().any(|o| o.len() > 16) {
            return Err(status::invalid(
                "BAD_ROUTE_QUERY",
                "at most 100 candidate offices of at most 16 characters",
            ));
        }
        let mode = u8::try_from(r.transport_mode)
            .map_err(|_| status::invalid("BAD_ROUTE_QUERY", "transport mode is a UCC code 0-9"))?;
        let min = if r.min_evidence == 0 {
            ledger::kpi::MIN_EVIDENCE
        } else {
            r.min_evidence
        };
        let (ranked, folded) = self.core.kpis.read(|e| {
            let p = e.predictor();
            let offices = if r.offices.is_empty() {
                p.offices()
            } else {
                r.offices.clone()
            };
            (
                p.rank(&r.dispatch_country, &r.hs_chapter, mode, &offices, min),
                e.next_height(),
            )
        });
        Ok(Response::new(v1::PredictClearanceResponse {
            predictions_json: serde_json::to_string(&ranked).map_err(status::internal)?,
            folded_height: folded,
        }))
    }

    async fn quote(
        &self,
        req: Request<v1::QuoteRequest>,
    ) -> Result<Response<v1::QuoteResponse>, Status> {
        let party = self.core.authenticate(&req, "/customs.v1.Ledger/Quote")?;
        let _reading = self.core.limits.reads.take(&party, 1)?;
        let r = req.into_inner();
        if r.lines.is_empty() || r.lines.len() > 1_000 {
            return Err(status::invalid(
                "BAD_BASKET",
                "a basket has 1 to 1000 lines",
            ));
        }
        let basket = ledger::quote::Basket {
            origin: r.origin,
            destination: r.destination,
            date: r.date,
            currency: r.currency,
            shipping_minor: r.shipping_minor,
            insurance_minor: r.insurance_minor,
            lines: r
                .lines
                .into_iter()
                .map(|l| ledger::quote::BasketLine {
                    description: l.description,
                    code: l.code,
                    quantity: l.quantity,
                    value_minor: l.value_minor,
                    net_mass_g: l.net_mass_g,
                    gross_mass_g: l.gross_mass_g,
                })
                .collect(),
        };
        let month = basket.date.get(..7).unwrap_or_default().to_string();
        let config = self
            .core
            .consensus
            .ledger()
            .with_ledger(|l| l.shared_config())
            .map_err(status::internal)?;
        if config.tables != ledger::tariff::TablePins::builtin() {
            return Err(status::precondition(
                "TABLES_OUTDATED",
                "the chain pins other duty and VAT tables than this node carries",
            ));
        }
        let rates = match ledger::tariff::rates_for(&config.exchange_rates, &month) {
            Some(t) => ledger::quote::Rates::from_table(t),
            // A basket in euros needs no rate.
            None if basket.currency == "EUR" => ledger::quote::Rates {
                date: basket.date.clone(),
                source: "none needed".into(),
                per_eur: Default::default(),
            },
            None => {
                return Err(status::precondition(
                    "NO_EXCHANGE_RATES",
                    format!("no customs exchange rates are published for {month:?} or before"),
                ))
            }
        };
        let q = ledger::quote::quote(
            &basket,
            &rates,
            ledger::tariff::Tariff::shared(),
            ledger::tariff::VatTable::shared(),
            &config.risk_policy,
        )
        .map_err(|e| status::invalid("CANNOT_QUOTE", e))?;
        Ok(Response::new(v1::QuoteResponse {
            landed_cents: q.landed_cents,
            quote_json: serde_json::to_string(&q).map_err(status::internal)?,
        }))
    }

    async fn classify(
        &self,
        req: Request<v1::ClassifyRequest>,
    ) -> Result<Response<v1::ClassifyResponse>, Status> {
        let caller = self
            .core
            .authenticate(&req, "/customs.v1.Ledger/Classify")?;
        let r = req.into_inner();
        if r.description.len() > 2048 {
            return Err(status::invalid(
                "TOO_LARGE",
                "description longer than 2048 bytes",
            ));
        }
        let k = if r.top_k == 0 { 5 } else { r.top_k.min(50) } as usize;
        let cv = self.core.content.as_ref().ok_or_else(|| {
            status::unavailable(
                "NO_CLASSIFIER",
                "this node has no nomenclature; ask a customs node",
            )
        })?;
        // Customs reads every declaration anyway; everyone else is answered
        // from the nomenclature alone, never from learned history.
        let customs = self
            .core
            .consensus
            .ledger()
            .with_ledger(|l| {
                l.config()
                    .party(&caller)
                    .is_some_and(|p| !p.revoked && p.has_role(Role::Customs))
            })
            .map_err(status::internal)?;
        let v = cv.read().map_err(status::internal)?;
        let c = match (&self.public_classifier, customs) {
            (Some(public), false) => public.as_ref(),
            _ => v.classifier(),
        };
        let sugg = c.classify(&r.description, k);
        let verdict = if r.declared_code.is_empty() {
            String::new()
        } else {
            c.judge(&r.description, &r.declared_code, k)
                .verdict
                .as_str()
                .to_string()
        };
        Ok(Response::new(v1::ClassifyResponse {
            suggestions: sugg
                .into_iter()
                .map(|s| v1::Suggestion {
                    hs6: s.hs6,
                    score: s.score,
                    description: s.description,
                })
                .collect(),
            verdict,
            classifier_version: ledger::hs::classifier::CLASSIFIER_VERSION.to_string(),
        }))
    }

    async fn status(
        &self,
        req: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        self.core.authenticate(&req, "/customs.v1.Ledger/Status")?;
        Ok(Response::new(status_response(&self.core)))
    }
}

/// The Status answer.
pub fn status_response(core: &NodeCore) -> v1::StatusResponse {
    let m = core.consensus.metrics().borrow().clone();
    let tip = core.consensus.ledger().tip().ok();
    let members = members(core);
    let leader_party = m
        .current_leader
        .and_then(|l| {
            members
                .iter()
                .find(|x| x.node_id == l)
                .map(|x| x.party.clone())
        })
        .unwrap_or_default();
    let divergence = core
        .consensus
        .ledger()
        .with_store(consensus::divergence)
        .ok()
        .and_then(|d| d.ok())
        .flatten();
    v1::StatusResponse {
        chain_id: core
            .consensus
            .ledger()
            .with_ledger(|l| l.config().chain_id.clone())
            .unwrap_or_default(),
        node_party: core.party.clone(),
        raft_role: match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        }
        .into(),
        term: m.current_term,
        leader_id: m.current_leader.unwrap_or(0),
        leader_party,
        applied_index: m.last_applied.map_or(0, |l| l.index),
        height: tip.as_ref().map_or(0, |t| t.height),
        tip_hash: tip.map(|t| t.hash.0.to_vec()).unwrap_or_default(),
        peers: core.p2p.stats().connected_peers as u32,
        members,
        version: env!("CARGO_PKG_VERSION").into(),
        divergence_height: divergence.as_ref().map_or(0, |d| d.height),
        divergence: divergence
            .map(|d| {
                format!(
                    "tx {} in block {}: the outcome recorded by leader {} (term {}, index {}) differs from this node's judgement",
                    d.tx_id, d.height, d.leader, d.raft_term, d.raft_index
                )
            })
            .unwrap_or_default(),
    }
}

fn members(core: &NodeCore) -> Vec<v1::MemberInfo> {
    let m = core.consensus.metrics().borrow().clone();
    let mem = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = mem.voter_ids().collect();
    mem.nodes()
        .map(|(id, n): (&u64, &PeerNode)| v1::MemberInfo {
            node_id: *id,
            party: n.party.clone(),
            address: n.addr.clone(),
            voter: voters.contains(id),
        })
        .collect()
}

impl Api {
    fn require_validator(&self, party: &str) -> Result<(), Status> {
        let ok = self
            .core
            .consensus
            .ledger()
            .with_ledger(|l| {
                l.config()
                    .party(party)
                    .is_some_and(|p| p.validator && !p.revoked)
            })
            .map_err(status::internal)?;
        if ok {
            Ok(())
        } else {
            Err(status::denied(
                "NOT_A_VALIDATOR",
                format!("{party} may not change membership"),
            ))
        }
    }

    fn membership_response(&self) -> v1::MembershipResponse {
        let m = self.core.consensus.metrics().borrow().clone();
        v1::MembershipResponse {
            members: members(&self.core),
            log_index: m.membership_config.log_id().map_or(0, |l| l.index),
        }
    }
}

fn propose_status(e: consensus::ProposeError) -> Status {
    match e {
        consensus::ProposeError::NotLeader { leader } => status::unavailable(
            "NOT_LEADER",
            format!("send membership changes to the leader ({leader:?})"),
        ),
        other => status::unavailable("RAFT", other),
    }
}

#[tonic::async_trait]
impl Admin for Api {
    async fn add_learner(
        &self,
        req: Request<v1::AddLearnerRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Admin/AddLearner")?;
        self.require_validator(&party)?;
        let r = req.into_inner();
        if r.node_id == 0 || !ledger::config::valid_party_id(&r.party) {
            return Err(status::invalid(
                "BAD_MEMBER",
                "node_id must be positive and party valid",
            ));
        }
        // The node's party comes from this node's address book, never from
        // the request (ADR 0011).
        match self.core.directory.party_of_node(r.node_id) {
            Some(p) if p == r.party => {}
            Some(p) => {
                let why = format!("node {} runs for {p}, not {}", r.node_id, r.party);
                return Err(status::denied("NODE_PARTY_MISMATCH", why));
            }
            None => {
                let why = format!(
                    "node {} is not in this node's address book ([[peers]])",
                    r.node_id
                );
                return Err(status::denied("UNKNOWN_NODE", why));
            }
        }
        self.core
            .consensus
            .add_learner(r.node_id, PeerNode::new(r.party, r.address), false)
            .await
            .map_err(propose_status)?;
        Ok(Response::new(self.membership_response()))
    }

    async fn promote_voter(
        &self,
        req: Request<v1::PromoteVoterRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Admin/PromoteVoter")?;
        self.require_validator(&party)?;
        let id = req.get_ref().node_id;
        let m = self.core.consensus.metrics().borrow().clone();
        let mem = m.membership_config.membership();
        if mem.get_node(&id).is_none() {
            return Err(status::not_found(
                "NOT_A_MEMBER",
                format!("node {id} is not a learner"),
            ));
        }
        // The party is the address book's binding of the node id, not the
        // label stored in the membership.
        if !self.core.directory.node_is_validator(id) {
            let party = self.core.directory.party_of_node(id).unwrap_or("(unknown)");
            return Err(status::denied(
                "NOT_A_VALIDATOR",
                format!("node {id} runs for {party}, which is not a customs validator in the chain config (needs governance first)"),
            ));
        }
        let mut voters: std::collections::BTreeSet<u64> = mem.voter_ids().collect();
        voters.insert(id);
        self.core
            .consensus
            .change_membership(voters, true)
            .await
            .map_err(propose_status)?;
        Ok(Response::new(self.membership_response()))
    }

    async fn remove_node(
        &self,
        req: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let party = self
            .core
            .authenticate(&req, "/customs.v1.Admin/RemoveNode")?;
        self.require_validator(&party)?;
        let id = req.get_ref().node_id;
        let m = self.core.consensus.metrics().borrow().clone();
        // Voters follow the chain config (see `membership`): a node whose
        // party is still a validator would be taken back at once.
        if m.membership_config.membership().get_node(&id).is_some()
            && self.core.directory.node_is_validator(id)
        {
            let party = self.core.directory.party_of_node(id).unwrap_or_default();
            return Err(status::denied(
                "STILL_A_VALIDATOR",
                format!(
                    "party {party} is a validator in the chain config: commit a SetValidator or RevokeParty governance transaction instead"
                ),
            ));
        }
        let mut voters: std::collections::BTreeSet<u64> =
            m.membership_config.membership().voter_ids().collect();
        voters.remove(&id);
        if voters.is_empty() {
            return Err(status::invalid(
                "LAST_VOTER",
                "cannot remove the last voter",
            ));
        }
        self.core
            .consensus
            .change_membership(voters, false)
            .await
            .map_err(propose_status)?;
        Ok(Response::new(self.membership_response()))
    }

    async fn submit_governance(
        &self,
        req: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let caller = self
            .core
            .authenticate(&req, "/customs.v1.Admin/SubmitGovernance")?;
        let r = req.into_inner();
        Ok(Response::new(
            self.core
                .submit(r.signed_tx, r.wait_for_commit, true, &caller)
                .await?,
        ))
    }
}
