//! Signed request metadata for the gRPC API.
//!
//! A client signs `REQUEST tag || method || "\n" || party || "\n" || time
//! || "\n" || nonce || "\n" || hex(SHA-256(request body))` with its party
//! key and sends party, time, nonce and signature as metadata headers. The
//! server checks the party is registered and unrevoked, the time is within
//! its window, the nonce is fresh within that window, and the signature
//! verifies under the strict rule. This module builds and checks the
//! message; replay bookkeeping lives in the node.

use crate::config::ChainConfig;
use crate::crypto::{self, Keypair};
use crate::hash::{sha256, tag, Bytes, Sig64};

/// Metadata header names.
pub mod header {
    /// Party id.
    pub const PARTY: &str = "x-customs-party";
    /// Milliseconds since the Unix epoch, decimal.
    pub const TIME: &str = "x-customs-time";
    /// 16 random bytes, hex.
    pub const NONCE: &str = "x-customs-nonce";
    /// Ed25519 signature, hex.
    pub const SIGNATURE: &str = "x-customs-signature";
}

/// The signed fields of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAuth {
    /// Party id.
    pub party: String,
    /// Claimed time (ms).
    pub time_ms: u64,
    /// Nonce (hex of 16 bytes).
    pub nonce: String,
    /// Signature.
    pub signature: Sig64,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// A header is missing or malformed.
    #[error("missing or malformed auth header {0}")]
    Header(&'static str),
    /// Party unknown or revoked.
    #[error("party {0} is not registered or is revoked")]
    UnknownParty(String),
    /// Time outside the window.
    #[error("request time is {skew_ms} ms away from the server clock (window {window_ms} ms)")]
    Window {
        /// Difference.
        skew_ms: u64,
        /// Allowed.
        window_ms: u64,
    },
    /// Bad signature.
    #[error("request signature does not verify")]
    Signature,
}

/// Message a client signs.
pub fn message(method: &str, party: &str, time_ms: u64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(200);
    m.extend_from_slice(tag::REQUEST);
    for part in [method, party, &time_ms.to_string(), nonce] {
        m.extend_from_slice(part.as_bytes());
        m.push(b'\n');
    }
    m.extend_from_slice(sha256(body).to_hex().as_bytes());
    m
}

/// Sign a request as `party`.
pub fn sign(key: &Keypair, method: &str, party: &str, time_ms: u64, body: &[u8]) -> RequestAuth {
    let mut n = [0u8; 16];
    rand::fill(&mut n);
    let nonce = hex::encode(n);
    let signature = key.sign(&message(method, party, time_ms, &nonce, body));
    RequestAuth {
        party: party.to_string(),
        time_ms,
        nonce,
        signature,
    }
}

/// Parse headers (as strings) into a [`RequestAuth`].
pub fn parse(
    party: Option<&str>,
    time: Option<&str>,
    nonce: Option<&str>,
    signature: Option<&str>,
) -> Result<RequestAuth, AuthError> {
    let party = party
        .filter(|p| crate::config::valid_party_id(p))
        .ok_or(AuthError::Header(header::PARTY))?;
    let time_ms = time
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or(AuthError::Header(header::TIME))?;
    let nonce = nonce
        .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(AuthError::Header(header::NONCE))?;
    let signature = signature
        .and_then(|s| Bytes::<64>::from_hex(s).ok())
        .ok_or(AuthError::Header(header::SIGNATURE))?;
    Ok(RequestAuth {
        party: party.to_string(),
        time_ms,
        nonce: nonce.to_ascii_lowercase(),
        signature,
    })
}

/// Verify a request against the chain config and the server clock.
pub fn verify(
    cfg: &ChainConfig,
    auth: &RequestAuth,
    method: &str,
    body: &[u8],
    now_ms: u64,
    window_ms: u64,
) -> Result<(), AuthError> {
    let p = cfg
        .party(&auth.party)
        .filter(|p| !p.revoked)
        .ok_or_else(|| AuthError::UnknownParty(auth.party.clone()))?;
    let skew = auth.time_ms.abs_diff(now_ms);
    if skew > window_ms {
        return Err(AuthError::Window {
            skew_ms: skew,
            window_ms,
        });
    }
    let msg = message(method, &auth.party, auth.time_ms, &auth.nonce, body);
    crypto::verify_strict(&p.signing_key, &msg, &auth.signature).map_err(|_| AuthError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn sign_and_verify_and_every_failure() {
        let cfg = testkit::config();
        let k = testkit::key("auditor");
        let a = sign(&k, "/customs.v1.Ledger/Status", "auditor", 1000, b"body");
        let m = "/customs.v1.Ledger/Status";
        assert_eq!(verify(&cfg, &a, m, b"body", 1500, 1000), Ok(()));
        assert_eq!(
            verify(&cfg, &a, m, b"other", 1500, 1000),
            Err(AuthError::Signature)
        );
        assert_eq!(
            verify(&cfg, &a, "/x", b"body", 1500, 1000),
            Err(AuthError::Signature)
        );
        assert!(matches!(
            verify(&cfg, &a, m, b"body", 5000, 1000),
            Err(AuthError::Window { .. })
        ));
        let mut b = a.clone();
        b.party = "broker".into();
        assert_eq!(
            verify(&cfg, &b, m, b"body", 1500, 1000),
            Err(AuthError::Signature)
        );
        b.party = "mallory".into();
        assert!(matches!(
            verify(&cfg, &b, m, b"body", 1500, 1000),
            Err(AuthError::UnknownParty(_))
        ));
        let sig = a.signature.to_hex();
        let t = a.time_ms.to_string();
        assert_eq!(
            parse(Some("auditor"), Some(&t), Some(&a.nonce), Some(&sig)).unwrap(),
            a
        );
        assert!(parse(None, Some(&t), Some(&a.nonce), Some(&sig)).is_err());
        assert!(parse(Some("auditor"), Some("x"), Some(&a.nonce), Some(&sig)).is_err());
        assert!(parse(Some("auditor"), Some(&t), Some("short"), Some(&sig)).is_err());
        assert!(parse(Some("auditor"), Some(&t), Some(&a.nonce), Some("00")).is_err());
    }
}
