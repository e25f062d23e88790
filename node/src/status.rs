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

/// The caller may not do this.
pub fn denied(reason: &str, e: impl std::fmt::Display) -> Status {
    with_reason(Code::PermissionDenied, reason, e)
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
    {
        Code::PermissionDenied
    } else if r.code.starts_with("LIFECYCLE_") {
        Code::FailedPrecondition
    } else if r.code.starts_with("INTERNAL") {
        Code::Internal
    } else {
        Code::InvalidArgument
    };
    with_reason(code, &r.code, &r.message)
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
}
