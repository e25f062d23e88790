//! Event kinds and the per-shipment lifecycle state machine.
//!
//! Kinds follow the EU ICS2 / UCC life of a consignment. The state machine
//! is a pure function `transition(state, kind) -> state'`; validators call
//! it before commit and every node calls it again when applying, so it must
//! stay deterministic and free of IO.
//!
//! Variant order is part of the encoding: append new kinds at the end.

use serde::{Deserialize, Serialize};

/// What a transaction records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// Transport booked by the exporter or forwarder.
    ShipmentBooked,
    /// Entry summary declaration (ENS) filed.
    DeclarationFiled,
    /// Declaration amended (re-opens risk assessment).
    DeclarationAmended,
    /// Declaration invalidated: terminal.
    DeclarationInvalidated,
    /// Customs finished pre-loading / pre-arrival risk assessment.
    AssessmentComplete,
    /// Customs asks for more information.
    RequestForInformation,
    /// Declarant answers a request for information.
    InformationProvided,
    /// High-risk cargo and mail screening requested.
    HighRiskScreening,
    /// Do-not-load: nothing loads until amended and re-assessed.
    DoNotLoad,
    /// Goods loaded on the means of transport.
    Loaded,
    /// Means of transport departed.
    Departed,
    /// Arrived at the first point of entry.
    Arrived,
    /// Goods presented to customs.
    Presented,
    /// Physical or documentary inspection ordered.
    InspectionOrdered,
    /// Result of an inspection.
    InspectionResult,
    /// Goods released.
    Released,
    /// Goods held by customs.
    Held,
    /// Entry rejected: terminal.
    Rejected,
    /// Delivered to the consignee.
    Delivered,
    /// A document (hash, Digital Product Passport ids) attached.
    DocumentAttached,
    /// Governance: a party joins the network.
    PartyAdded,
    /// Governance: a party's signing or encryption key changes.
    KeyRotated,
    /// Governance: a party is revoked.
    PartyRevoked,
    /// Governance: validator set changes.
    ValidatorSetChanged,
    /// Governance: disclosure, event or risk policy changes.
    PolicyChanged,
}

impl EventKind {
    /// Every kind, in encoding order.
    pub const ALL: [EventKind; 25] = [
        EventKind::ShipmentBooked,
        EventKind::DeclarationFiled,
        EventKind::DeclarationAmended,
        EventKind::DeclarationInvalidated,
        EventKind::AssessmentComplete,
        EventKind::RequestForInformation,
        EventKind::InformationProvided,
        EventKind::HighRiskScreening,
        EventKind::DoNotLoad,
        EventKind::Loaded,
        EventKind::Departed,
        EventKind::Arrived,
        EventKind::Presented,
        EventKind::InspectionOrdered,
        EventKind::InspectionResult,
        EventKind::Released,
        EventKind::Held,
        EventKind::Rejected,
        EventKind::Delivered,
        EventKind::DocumentAttached,
        EventKind::PartyAdded,
        EventKind::KeyRotated,
        EventKind::PartyRevoked,
        EventKind::ValidatorSetChanged,
        EventKind::PolicyChanged,
    ];

    /// Governance kinds change the chain config instead of a shipment.
    pub fn is_governance(self) -> bool {
        matches!(
            self,
            EventKind::PartyAdded
                | EventKind::KeyRotated
                | EventKind::PartyRevoked
                | EventKind::ValidatorSetChanged
                | EventKind::PolicyChanged
        )
    }

    /// Kinds that carry a full declaration payload.
    pub fn carries_declaration(self) -> bool {
        matches!(
            self,
            EventKind::DeclarationFiled | EventKind::DeclarationAmended
        )
    }

    /// Stable upper-snake name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ShipmentBooked => "SHIPMENT_BOOKED",
            EventKind::DeclarationFiled => "DECLARATION_FILED",
            EventKind::DeclarationAmended => "DECLARATION_AMENDED",
            EventKind::DeclarationInvalidated => "DECLARATION_INVALIDATED",
            EventKind::AssessmentComplete => "ASSESSMENT_COMPLETE",
            EventKind::RequestForInformation => "REQUEST_FOR_INFORMATION",
            EventKind::InformationProvided => "INFORMATION_PROVIDED",
            EventKind::HighRiskScreening => "HIGH_RISK_SCREENING",
            EventKind::DoNotLoad => "DO_NOT_LOAD",
            EventKind::Loaded => "LOADED",
            EventKind::Departed => "DEPARTED",
            EventKind::Arrived => "ARRIVED",
            EventKind::Presented => "PRESENTED",
            EventKind::InspectionOrdered => "INSPECTION_ORDERED",
            EventKind::InspectionResult => "INSPECTION_RESULT",
            EventKind::Released => "RELEASED",
            EventKind::Held => "HELD",
            EventKind::Rejected => "REJECTED",
            EventKind::Delivered => "DELIVERED",
            EventKind::DocumentAttached => "DOCUMENT_ATTACHED",
            EventKind::PartyAdded => "PARTY_ADDED",
            EventKind::KeyRotated => "KEY_ROTATED",
            EventKind::PartyRevoked => "PARTY_REVOKED",
            EventKind::ValidatorSetChanged => "VALIDATOR_SET_CHANGED",
            EventKind::PolicyChanged => "POLICY_CHANGED",
        }
    }
}

/// Public field giving when an event happened (ms since the Unix epoch),
/// when it is reported later than it happened (an arrival entered after
/// the fact, a history backfilled). KPIs measure with it; the block time
/// stands in where it is absent.
pub const TIME_FIELD: &str = "event.time_ms";
/// Public field giving the reason code of a hold, rejection, do-not-load
/// or request for information (`[A-Z0-9_]`, at most 40 characters).
pub const REASON_FIELD: &str = "event.reason";
/// How far before its claimed time an event may say it happened.
pub const MAX_BACKDATE_MS: u64 = 400 * 86_400_000;

/// When `tx` says it happened, if it carries [`TIME_FIELD`].
pub fn occurred_ms(tx: &crate::tx::Transaction) -> Option<u64> {
    tx.public
        .iter()
        .find(|f| f.path == TIME_FIELD)
        .and_then(|f| f.value.parse().ok())
}

/// The reason code `tx` carries in [`REASON_FIELD`], if any.
pub fn reason(tx: &crate::tx::Transaction) -> Option<&str> {
    tx.public
        .iter()
        .find(|f| f.path == REASON_FIELD)
        .map(|f| f.value.as_str())
}

/// Structural rule for the event fields above: a time that parses, is not
/// after the claimed time (plus the clock window) and not more than
/// [`MAX_BACKDATE_MS`] before it; a reason that is a code.
pub fn check_event_fields(
    tx: &crate::tx::Transaction,
    window_ms: u64,
) -> Result<(), (&'static str, String)> {
    for f in &tx.public {
        if f.path == TIME_FIELD {
            let t: u64 = f
                .value
                .parse()
                .map_err(|_| ("TX_EVENT_TIME", format!("{TIME_FIELD} is not a time in ms")))?;
            if t > tx.claimed_time_ms.saturating_add(window_ms)
                || t < tx.claimed_time_ms.saturating_sub(MAX_BACKDATE_MS)
            {
                return Err((
                    "TX_EVENT_TIME",
                    format!(
                        "{TIME_FIELD} {t} is after the claimed time {} or more than 400 days before it",
                        tx.claimed_time_ms
                    ),
                ));
            }
        } else if f.path == REASON_FIELD {
            let v = &f.value;
            if v.is_empty()
                || v.len() > 40
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err((
                    "TX_EVENT_REASON",
                    format!("{REASON_FIELD} must be 1-40 characters of [A-Z0-9_]"),
                ));
            }
        }
    }
    Ok(())
}

/// Where a shipment stands, derived only from committed events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Booked, not declared.
    Booked,
    /// Declared, awaiting assessment.
    Declared,
    /// Assessment complete; may load.
    Assessed,
    /// Do-not-load in force.
    DoNotLoad,
    /// Loaded.
    Loaded,
    /// Departed.
    Departed,
    /// Arrived.
    Arrived,
    /// Presented to customs.
    Presented,
    /// Held by customs.
    Held,
    /// Released.
    Released,
    /// Delivered: terminal.
    Delivered,
    /// Invalidated: terminal.
    Invalidated,
    /// Rejected: terminal.
    Rejected,
}

/// Per-shipment state kept by every node (column `shipment_state`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentState {
    /// Coarse status shown to every party.
    pub status: Status,
    /// A declaration has been filed.
    pub declared: bool,
    /// Assessment complete since the last filing or amendment.
    pub assessed: bool,
    /// Do-not-load in force.
    pub do_not_load: bool,
    /// Amended since the do-not-load (needed before re-assessment lifts it).
    pub amended_since_dnl: bool,
    /// An RFI awaits its answer.
    pub rfi_open: bool,
    /// An inspection awaits its result.
    pub inspection_open: bool,
    /// Customs holds the goods.
    pub held: bool,
    /// Loaded at least once.
    pub loaded: bool,
    /// Departed.
    pub departed: bool,
    /// Arrived.
    pub arrived: bool,
    /// Presented.
    pub presented: bool,
    /// Number of committed events.
    pub events: u32,
    /// The shipment's own parties (sorted, unique): the submitter of its
    /// first event and every party named in a booking, filing or
    /// amendment. Only they (and customs) may submit its events.
    pub parties: Vec<String>,
}

/// Why an event is not allowed now. Codes are stable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LifecycleError {
    /// Stable reason code.
    pub code: &'static str,
    /// Human explanation.
    pub message: String,
}

fn deny(code: &'static str, message: impl Into<String>) -> LifecycleError {
    LifecycleError {
        code,
        message: message.into(),
    }
}

impl ShipmentState {
    /// A shipment's state after its first event, `status`.
    pub(crate) fn new(status: Status) -> Self {
        ShipmentState {
            status,
            declared: false,
            assessed: false,
            do_not_load: false,
            amended_since_dnl: false,
            rfi_open: false,
            inspection_open: false,
            held: false,
            loaded: false,
            departed: false,
            arrived: false,
            presented: false,
            events: 1,
            parties: Vec::new(),
        }
    }

    /// Terminal states accept only document attachments.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status,
            Status::Delivered | Status::Invalidated | Status::Rejected
        )
    }
}

/// The lifecycle rule: the state after `kind`, or why `kind` is not allowed.
pub fn transition(
    state: Option<&ShipmentState>,
    kind: EventKind,
) -> Result<ShipmentState, LifecycleError> {
    use EventKind as K;
    if kind.is_governance() {
        return Err(deny(
            "LIFECYCLE_GOVERNANCE",
            "governance events do not belong to a shipment",
        ));
    }
    let Some(cur) = state else {
        return match kind {
            K::ShipmentBooked => Ok(ShipmentState::new(Status::Booked)),
            K::DeclarationFiled => {
                let mut s = ShipmentState::new(Status::Declared);
                s.declared = true;
                Ok(s)
            }
            _ => Err(deny(
                "LIFECYCLE_UNKNOWN_SHIPMENT",
                format!("{} needs a booked or declared shipment", kind.name()),
            )),
        };
    };
    if cur.status == Status::Invalidated {
        return Err(deny(
            "LIFECYCLE_INVALIDATED",
            "the declaration was invalidated; the shipment is closed",
        ));
    }
    if cur.is_terminal() && kind != K::DocumentAttached {
        return Err(deny(
            "LIFECYCLE_TERMINAL",
            format!("shipment is {:?}; no further events", cur.status),
        ));
    }
    let mut s = cur.clone();
    s.events = s.events.saturating_add(1);
    let need_declared = |s: &ShipmentState| {
        if s.declared {
            Ok(())
        } else {
            Err(deny(
                "LIFECYCLE_NOT_DECLARED",
                format!("{} needs a filed declaration", kind.name()),
            ))
        }
    };
    match kind {
        K::ShipmentBooked => {
            return Err(deny(
                "LIFECYCLE_DUPLICATE_BOOKING",
                "shipment already booked",
            ))
        }
        K::DeclarationFiled => {
            if s.declared {
                return Err(deny(
                    "LIFECYCLE_ALREADY_DECLARED",
                    "declaration already filed; amend it instead",
                ));
            }
            s.declared = true;
            s.status = Status::Declared;
        }
        K::DeclarationAmended => {
            need_declared(&s)?;
            if s.presented || s.status == Status::Released {
                return Err(deny(
                    "LIFECYCLE_TOO_LATE",
                    "a presented or released declaration cannot be amended",
                ));
            }
            s.assessed = false;
            if s.do_not_load {
                s.amended_since_dnl = true;
            }
            if !s.loaded {
                s.status = Status::Declared;
            }
        }
        K::DeclarationInvalidated => {
            need_declared(&s)?;
            if s.loaded || s.presented {
                return Err(deny(
                    "LIFECYCLE_TOO_LATE",
                    "goods already loaded or presented; cannot invalidate",
                ));
            }
            s.status = Status::Invalidated;
        }
        K::AssessmentComplete => {
            need_declared(&s)?;
            if s.rfi_open {
                return Err(deny(
                    "LIFECYCLE_RFI_OPEN",
                    "answer the request for information first",
                ));
            }
            if s.do_not_load && !s.amended_since_dnl {
                return Err(deny(
                    "LIFECYCLE_DNL_NOT_AMENDED",
                    "do-not-load is lifted only by re-assessing an amended declaration",
                ));
            }
            s.assessed = true;
            s.do_not_load = false;
            s.amended_since_dnl = false;
            if !s.loaded {
                s.status = Status::Assessed;
            }
        }
        K::RequestForInformation => {
            need_declared(&s)?;
            s.rfi_open = true;
        }
        K::InformationProvided => {
            if !s.rfi_open {
                return Err(deny("LIFECYCLE_NO_RFI", "no open request for information"));
            }
            s.rfi_open = false;
        }
        K::HighRiskScreening => {
            need_declared(&s)?;
            s.assessed = false;
        }
        K::DoNotLoad => {
            need_declared(&s)?;
            if s.loaded {
                return Err(deny("LIFECYCLE_ALREADY_LOADED", "goods already loaded"));
            }
            s.do_not_load = true;
            s.amended_since_dnl = false;
            s.assessed = false;
            s.status = Status::DoNotLoad;
        }
        K::Loaded => {
            need_declared(&s)?;
            if s.do_not_load {
                return Err(deny(
                    "LIFECYCLE_DO_NOT_LOAD",
                    "do-not-load in force: amend and get re-assessed first",
                ));
            }
            if !s.assessed {
                return Err(deny(
                    "LIFECYCLE_NOT_ASSESSED",
                    "risk assessment is not complete",
                ));
            }
            if s.loaded {
                return Err(deny("LIFECYCLE_ALREADY_LOADED", "goods already loaded"));
            }
            s.loaded = true;
            s.status = Status::Loaded;
        }
        K::Departed => {
            if !s.loaded || s.departed {
                return Err(deny(
                    "LIFECYCLE_ORDER",
                    "departure needs loaded goods that have not departed",
                ));
            }
            s.departed = true;
            s.status = Status::Departed;
        }
        K::Arrived => {
            if !s.departed || s.arrived {
                return Err(deny(
                    "LIFECYCLE_ORDER",
                    "arrival needs a departure and no earlier arrival",
                ));
            }
            s.arrived = true;
            s.status = Status::Arrived;
        }
        K::Presented => {
            if !s.arrived || s.presented {
                return Err(deny(
                    "LIFECYCLE_ORDER",
                    "presentation needs an arrival and no earlier presentation",
                ));
            }
            s.presented = true;
            s.status = if s.held {
                Status::Held
            } else {
                Status::Presented
            };
        }
        K::InspectionOrdered => {
            need_declared(&s)?;
            if s.status == Status::Released {
                return Err(deny("LIFECYCLE_RELEASED", "goods already released"));
            }
            s.inspection_open = true;
        }
        K::InspectionResult => {
            if !s.inspection_open {
                return Err(deny("LIFECYCLE_NO_INSPECTION", "no inspection was ordered"));
            }
            s.inspection_open = false;
        }
        K::Released => {
            need_declared(&s)?;
            if !s.presented {
                return Err(deny(
                    "LIFECYCLE_NOT_PRESENTED",
                    "goods cannot be released before they are presented",
                ));
            }
            if s.inspection_open {
                return Err(deny(
                    "LIFECYCLE_INSPECTION_OPEN",
                    "an ordered inspection has no result yet",
                ));
            }
            if s.status == Status::Released {
                return Err(deny("LIFECYCLE_RELEASED", "goods already released"));
            }
            s.held = false;
            s.status = Status::Released;
        }
        K::Held => {
            need_declared(&s)?;
            if s.status == Status::Released {
                return Err(deny("LIFECYCLE_RELEASED", "goods already released"));
            }
            s.held = true;
            s.status = Status::Held;
        }
        K::Rejected => {
            need_declared(&s)?;
            if s.status == Status::Released {
                return Err(deny("LIFECYCLE_RELEASED", "goods already released"));
            }
            s.status = Status::Rejected;
        }
        K::Delivered => {
            if s.status != Status::Released {
                return Err(deny(
                    "LIFECYCLE_NOT_RELEASED",
                    "goods cannot be delivered before release",
                ));
            }
            s.status = Status::Delivered;
        }
        K::DocumentAttached => {}
        K::PartyAdded
        | K::KeyRotated
        | K::PartyRevoked
        | K::ValidatorSetChanged
        | K::PolicyChanged => {
            return Err(deny(
                "LIFECYCLE_GOVERNANCE",
                "governance events do not belong to a shipment",
            ))
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind as K;

    fn run(kinds: &[EventKind]) -> Result<ShipmentState, (usize, LifecycleError)> {
        let mut st: Option<ShipmentState> = None;
        for (i, k) in kinds.iter().enumerate() {
            st = Some(transition(st.as_ref(), *k).map_err(|e| (i, e))?);
        }
        st.ok_or((0, deny("EMPTY", "")))
    }

    /// `check(path, Ok(final status))` or `check(path, Err(code))` on the last step.
    fn check(kinds: &[EventKind], expected: Result<Status, &str>) {
        match (run(kinds), expected) {
            (Ok(s), Ok(st)) => assert_eq!(s.status, st, "{kinds:?}"),
            (Err((i, e)), Err(code)) => {
                assert_eq!(i, kinds.len() - 1, "failed early at {i}: {e}");
                assert_eq!(e.code, code, "{kinds:?}");
            }
            (got, want) => panic!("{kinds:?}: got {got:?}, want {want:?}"),
        }
    }

    const HAPPY: [EventKind; 9] = [
        K::ShipmentBooked,
        K::DeclarationFiled,
        K::AssessmentComplete,
        K::Loaded,
        K::Departed,
        K::Arrived,
        K::Presented,
        K::Released,
        K::Delivered,
    ];

    #[test]
    fn happy_path() {
        check(&HAPPY, Ok(Status::Delivered));
    }

    #[test]
    fn rules() {
        check(&[K::Loaded], Err("LIFECYCLE_UNKNOWN_SHIPMENT"));
        check(
            &[K::ShipmentBooked, K::ShipmentBooked],
            Err("LIFECYCLE_DUPLICATE_BOOKING"),
        );
        check(
            &[K::ShipmentBooked, K::Loaded],
            Err("LIFECYCLE_NOT_DECLARED"),
        );
        check(
            &[K::DeclarationFiled, K::Loaded],
            Err("LIFECYCLE_NOT_ASSESSED"),
        );
        // DO_NOT_LOAD: re-assessment alone is not enough, amendment + re-assessment is.
        check(
            &[K::DeclarationFiled, K::DoNotLoad, K::Loaded],
            Err("LIFECYCLE_DO_NOT_LOAD"),
        );
        check(
            &[K::DeclarationFiled, K::DoNotLoad, K::AssessmentComplete],
            Err("LIFECYCLE_DNL_NOT_AMENDED"),
        );
        check(
            &[
                K::DeclarationFiled,
                K::DoNotLoad,
                K::DeclarationAmended,
                K::Loaded,
            ],
            Err("LIFECYCLE_DO_NOT_LOAD"),
        );
        check(
            &[
                K::DeclarationFiled,
                K::DoNotLoad,
                K::DeclarationAmended,
                K::AssessmentComplete,
                K::Loaded,
            ],
            Ok(Status::Loaded),
        );
        // No release before presentation.
        check(
            &[K::DeclarationFiled, K::AssessmentComplete, K::Released],
            Err("LIFECYCLE_NOT_PRESENTED"),
        );
        // INVALIDATED is terminal, even for documents.
        check(
            &[
                K::DeclarationFiled,
                K::DeclarationInvalidated,
                K::AssessmentComplete,
            ],
            Err("LIFECYCLE_INVALIDATED"),
        );
        check(
            &[
                K::DeclarationFiled,
                K::DeclarationInvalidated,
                K::DocumentAttached,
            ],
            Err("LIFECYCLE_INVALIDATED"),
        );
        // Delivered is terminal but documents may still be attached.
        let mut p = HAPPY.to_vec();
        p.push(K::DocumentAttached);
        check(&p, Ok(Status::Delivered));
        p.push(K::Held);
        check(&p, Err("LIFECYCLE_TERMINAL"));
        // Inspection must have a result before release.
        let mut q = HAPPY[..7].to_vec();
        q.extend([K::InspectionOrdered, K::Released]);
        check(&q, Err("LIFECYCLE_INSPECTION_OPEN"));
        q.pop();
        q.extend([K::InspectionResult, K::Released]);
        check(&q, Ok(Status::Released));
        // RFI blocks assessment until answered.
        check(
            &[
                K::DeclarationFiled,
                K::RequestForInformation,
                K::AssessmentComplete,
            ],
            Err("LIFECYCLE_RFI_OPEN"),
        );
        check(
            &[
                K::DeclarationFiled,
                K::RequestForInformation,
                K::InformationProvided,
                K::AssessmentComplete,
            ],
            Ok(Status::Assessed),
        );
        check(
            &[K::DeclarationFiled, K::PartyAdded],
            Err("LIFECYCLE_GOVERNANCE"),
        );
    }

    /// Exhaustive over all sequences of length 4: a refused event never
    /// changes anything (the function returns a new state or an error), and
    /// terminal states only ever accept document attachments.
    #[test]
    fn terminal_states_accept_only_documents() {
        let kinds: Vec<EventKind> = EventKind::ALL
            .iter()
            .copied()
            .filter(|k| !k.is_governance())
            .collect();
        let mut frontier: Vec<ShipmentState> = Vec::new();
        for k in &kinds {
            if let Ok(s) = transition(None, *k) {
                frontier.push(s);
            }
        }
        for _ in 0..3 {
            let mut next = Vec::new();
            for s in &frontier {
                for k in &kinds {
                    if let Ok(n) = transition(Some(s), *k) {
                        if s.is_terminal() {
                            assert_eq!(*k, K::DocumentAttached);
                        }
                        next.push(n);
                    }
                }
            }
            frontier = next;
        }
        assert!(!frontier.is_empty());
    }
}
