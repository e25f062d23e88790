//! The one place where errors become gRPC statuses. Every status carries a
//! stable reason code as the message prefix (`CODE: explanation`) and in
//! the `x-customs-reason` metadata, so clients can act on it.

use ledger::chain::Rejection;
use tonic::{Code, Status};

/// Header carrying the reason code.
pub const REASON_HEADER: &str = "x-customs-reason";

fn with_reason(code: Code, reason: &str, message: impl std::fmt::Display) -> Status {
    let mut s = Status::new(code, format!("{reason}: {message}"));
    if let Ok(v) = tonic::metadata::MetadataValue::try_from(reason) {
        s.metadata_mut().insert(REASON_HEADER, v);
    }
    s
}

/// Request authentication failed.
pub fn unauthenticated(e: impl std::fmt::Display) -> Status {
    with_reason(Code::Unauthenticated, "AUTH_FAILED", e)
}

/// The request is malformed.
pub fn invalid(reason: &str, e: impl std::fmt::Display) -> Status {
    with_reason(Code::InvalidArgument, reason, e)
}

/// Something asked for does not exist.
pub fn not_found(reason: &str, e: impl std::fmt::Display) -> Status {
    with_reason(Code::NotFound, reason, e)
}

/// The node cannot serve this now (no leader, shutting down).
pub fn unavailable(reason: &str, e: impl std::fmt::Display) -> Status {
    with_reason(Code::Unavailable, reason, e)
}

/// The system is not in the state the request needs (e.g. no exchange
/// rates published for the month asked).
pub fn precondition(reason: &str, e: impl std::fmt::Display) -> Status {
    with_reason(Code::FailedPrecondition, reason, e)
}

/// The caller may not do this.
pub fn denied(reason: &str, e: impl std::fmt::Display) -> Status {
    with_reason(Code::PermissionDenied, reason, e)
}

/// The caller is at one of its per-party budgets; it may retry later.
pub fn exhausted(reason: &str, e: impl std::fmt::Display) -> Status {
    with_reason(Code::ResourceExhausted, reason, e)
}

/// An internal failure; details are logged, not leaked.
pub fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!("internal error: {e}");
    with_reason(Code::Internal, "INTERNAL", "internal error; see node logs")
}

/// Stored data failed verification: the node refuses to serve it.
pub fn corrupt(e: impl std::fmt::Display) -> Status {
    tracing::error!("refusing to serve corrupt data: {e}");
    with_reason(Code::DataLoss, "STORE_CORRUPT", e)
}

/// A transaction rejection maps by its code family.
pub fn rejection(r: &Rejection) -> Status {
    let code = if r.code.starts_with("TX_DUPLICATE") {
        Code::AlreadyExists
    } else if r.code.starts_with("TX_ROLE")
        || r.code.starts_with("TX_REVOKED")
        || r.code.starts_with("TX_UNKNOWN_SUBMITTER")
        || r.code == "TX_NOT_SHIPMENT_PARTY"
    {
        Code::PermissionDenied
    } else if r.code == "STALE_JUDGEMENT" {
        // Judged against a ledger state that moved on: resubmit.
        Code::Unavailable
    } else if r.code.starts_with("LIFECYCLE_") {
        Code::FailedPrecondition
    } else if r.code.starts_with("INTERNAL") {
        Code::Internal
    } else {
        Code::InvalidArgument
    };
    with_reason(code, &r.code, &r.message)
}

/// The reason code of a status: its metadata, else its message prefix.
pub fn reason_of(s: &Status) -> String {
    if let Some(r) = s
        .metadata()
        .get(REASON_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return r.to_string();
    }
    match s.message().split_once(": ") {
        Some((code, _)) if is_reason(code) => code.to_string(),
        _ => "UNKNOWN".to_string(),
    }
}

fn is_reason(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// One refused transaction of a batch: the status `Submit` would have
/// returned, as a batch outcome (non-zero `status`, one rejection).
pub fn to_outcome(tx_id: Option<&[u8]>, s: &Status) -> proto::v1::SubmitResponse {
    let reason = reason_of(s);
    let message = match s.message().split_once(": ") {
        Some((code, rest)) if code == reason => rest.to_string(),
        _ => s.message().to_string(),
    };
    proto::v1::SubmitResponse {
        tx_id: tx_id.map(<[u8]>::to_vec).unwrap_or_default(),
        rejections: vec![proto::v1::Rejection {
            code: reason,
            message,
        }],
        // A status that says OK cannot describe a refusal.
        status: match s.code() {
            Code::Ok => Code::Unknown as i32,
            c => c as i32,
        },
        ..Default::default()
    }
}

/// The status a refused batch outcome stands for (`None` when accepted).
/// Codes outside gRPC's range become UNKNOWN.
pub fn from_outcome(o: &proto::v1::SubmitResponse) -> Option<Status> {
    if o.status == 0 {
        return None;
    }
    let (reason, message) = o
        .rejections
        .first()
        .map(|r| (r.code.as_str(), r.message.as_str()))
        .unwrap_or(("UNKNOWN", "refused without a reason"));
    let reason = if is_reason(reason) { reason } else { "UNKNOWN" };
    Some(with_reason(Code::from_i32(o.status), reason, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_reasons() {
        let s = rejection(&ledger::chain::reject("LIFECYCLE_NOT_PRESENTED", "x"));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(
            s.metadata().get(REASON_HEADER).unwrap(),
            "LIFECYCLE_NOT_PRESENTED"
        );
        assert_eq!(
            rejection(&ledger::chain::reject("TX_DUPLICATE", "x")).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            rejection(&ledger::chain::reject("TX_BAD_SIGNATURE", "x")).code(),
            Code::InvalidArgument
        );
        assert_eq!(unauthenticated("no").code(), Code::Unauthenticated);
        assert!(internal("secret detail").message().starts_with("INTERNAL"));
        assert!(!internal("secret detail").message().contains("secret"));
    }

    #[test]
    fn batch_outcomes_round_trip_code_reason_and_message() {
        for s in [
            rejection(&ledger::chain::reject(
                "LIFECYCLE_NOT_PRESENTED",
                "not yet: presented",
            )),
            unavailable("NOT_LEADER", "leadership changed; retry"),
            invalid("TX_MALFORMED", "trailing bytes"),
        ] {
            let o = to_outcome(Some(&[7u8; 32]), &s);
            assert_eq!(o.tx_id, vec![7u8; 32]);
            let back = from_outcome(&o).unwrap();
            assert_eq!(back.code(), s.code());
            assert_eq!(back.message(), s.message());
            assert_eq!(reason_of(&back), reason_of(&s));
        }
        // Without metadata the prefix gives the reason.
        let bare = Status::new(Code::Unavailable, "RAFT: no quorum");
        let o = to_outcome(None, &bare);
        assert_eq!(o.rejections[0].code, "RAFT");
        assert_eq!(o.rejections[0].message, "no quorum");
        assert!(o.tx_id.is_empty());
        // Accepted outcomes are not refusals; a forged code is tamed.
        assert!(from_outcome(&proto::v1::SubmitResponse::default()).is_none());
        let odd = proto::v1::SubmitResponse {
            status: 999,
            rejections: vec![proto::v1::Rejection {
                code: "lower case: no".into(),
                message: "m".into(),
            }],
            ..Default::default()
        };
        let s = from_outcome(&odd).unwrap();
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(reason_of(&s), "UNKNOWN");
    }
}
