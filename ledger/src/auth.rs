//! Signed request metadata for the gRPC API.
//!
//! A client signs `REQUEST tag || chain id || "\n" || target node || "\n"
//! || method || "\n" || party || "\n" || time || "\n" || nonce || "\n" ||
//! hex(SHA-256(request body))` with its party key and sends party, target
//! node, time, nonce and signature as metadata headers. The server checks
//! the request names its own chain and its own node (the party that runs
//! it), so a captured request cannot be replayed to another node or chain;
//! that the party is registered and unrevoked, the time is within its
//! window, the nonce is fresh within that window, and the signature
//! verifies under the strict rule. This module builds and checks the
//! message; replay bookkeeping lives in the node.
//!
//! One exception: `Status` may name no node, so a client that knows only a
//! node's address can learn which party runs it before binding every later
//! request to it.

use crate::config::ChainConfig;
use crate::crypto::{self, Keypair};
use crate::hash::{sha256, tag, Bytes, Sig64};

/// Metadata header names.
pub mod header {
    /// Party id.
    pub const PARTY: &str = "x-customs-party";
    /// The party whose node the request is for.
    pub const NODE: &str = "x-customs-node";
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
    /// Party whose node the request is addressed to (empty: unbound, only
    /// for [`DISCOVERY_METHOD`]).
    pub node: String,
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
    /// Addressed to another node.
    #[error("request is addressed to node {addressed:?}, this is {this}'s node")]
    WrongNode {
        /// The node it names.
        addressed: String,
        /// This node's party.
        this: String,
    },
}

/// The one method a request may call without naming its node.
pub const DISCOVERY_METHOD: &str = "/customs.v1.Ledger/Status";

/// Where a request is going: the chain and the party whose node serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// Chain id.
    pub chain_id: &'a str,
    /// Party running the node (empty only for discovery).
    pub node: &'a str,
}

/// Message a client signs.
pub fn message(
    target: Target<'_>,
    method: &str,
    party: &str,
    time_ms: u64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(256);
    m.extend_from_slice(tag::REQUEST);
    for part in [
        target.chain_id,
        target.node,
        method,
        party,
        &time_ms.to_string(),
        nonce,
    ] {
        m.extend_from_slice(part.as_bytes());
        m.push(b'\n');
    }
    m.extend_from_slice(sha256(body).to_hex().as_bytes());
    m
}

/// Sign a request to `target` as `party`.
pub fn sign(
    key: &Keypair,
    target: Target<'_>,
    method: &str,
    party: &str,
    time_ms: u64,
    body: &[u8],
) -> RequestAuth {
    let mut n = [0u8; 16];
    rand::fill(&mut n);
    let nonce = hex::encode(n);
    let signature = key.sign(&message(target, method, party, time_ms, &nonce, body));
    RequestAuth {
        party: party.to_string(),
        node: target.node.to_string(),
        time_ms,
        nonce,
        signature,
    }
}

/// Parse headers (as strings) into a [`RequestAuth`]. A missing node
/// header is an unbound request.
pub fn parse(
    party: Option<&str>,
    node: Option<&str>,
    time: Option<&str>,
    nonce: Option<&str>,
    signature: Option<&str>,
) -> Result<RequestAuth, AuthError> {
    let party = party
        .filter(|p| crate::config::valid_party_id(p))
        .ok_or(AuthError::Header(header::PARTY))?;
    let node = match node {
        None | Some("") => "",
        Some(n) if crate::config::valid_party_id(n) => n,
        Some(_) => return Err(AuthError::Header(header::NODE)),
    };
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
        node: node.to_string(),
        time_ms,
        nonce: nonce.to_ascii_lowercase(),
        signature,
    })
}

/// Verify a request to the node of party `this_node` against the chain
/// config and the server clock.
pub fn verify(
    cfg: &ChainConfig,
    auth: &RequestAuth,
    this_node: &str,
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
    let unbound_discovery = auth.node.is_empty() && method == DISCOVERY_METHOD;
    if auth.node != this_node && !unbound_discovery {
        return Err(AuthError::WrongNode {
            addressed: auth.node.clone(),
            this: this_node.to_string(),
        });
    }
    let target = Target {
        chain_id: &cfg.chain_id,
        node: &auth.node,
    };
    let msg = message(target, method, &auth.party, auth.time_ms, &auth.nonce, body);
    crypto::verify(&p.signing_key, &msg, &auth.signature).map_err(|_| AuthError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    const M: &str = "/customs.v1.Ledger/GetBlock";

    fn to(node: &str) -> Target<'_> {
        Target {
            chain_id: "customs-test",
            node,
        }
    }

    #[test]
    fn sign_and_verify_and_every_failure() {
        let cfg = testkit::config();
        let k = testkit::key("auditor");
        let a = sign(&k, to("de-customs"), M, "auditor", 1000, b"body");
        let ok = |a: &RequestAuth, node: &str, m: &str, body: &[u8], now: u64| {
            verify(&cfg, a, node, m, body, now, 1000)
        };
        assert_eq!(ok(&a, "de-customs", M, b"body", 1500), Ok(()));
        assert_eq!(
            ok(&a, "de-customs", M, b"other", 1500),
            Err(AuthError::Signature)
        );
        assert_eq!(
            ok(&a, "de-customs", "/x", b"body", 1500),
            Err(AuthError::Signature)
        );
        assert!(matches!(
            ok(&a, "de-customs", M, b"body", 5000),
            Err(AuthError::Window { .. })
        ));
        let mut b = a.clone();
        b.party = "broker".into();
        assert_eq!(
            ok(&b, "de-customs", M, b"body", 1500),
            Err(AuthError::Signature)
        );
        b.party = "mallory".into();
        assert!(matches!(
            ok(&b, "de-customs", M, b"body", 1500),
            Err(AuthError::UnknownParty(_))
        ));
        let sig = a.signature.to_hex();
        let t = a.time_ms.to_string();
        let n = Some("de-customs");
        assert_eq!(
            parse(Some("auditor"), n, Some(&t), Some(&a.nonce), Some(&sig)).unwrap(),
            a
        );
        assert!(parse(None, n, Some(&t), Some(&a.nonce), Some(&sig)).is_err());
        assert!(parse(
            Some("auditor"),
            Some("Bad Node"),
            Some(&t),
            Some(&a.nonce),
            Some(&sig)
        )
        .is_err());
        assert!(parse(Some("auditor"), n, Some("x"), Some(&a.nonce), Some(&sig)).is_err());
        assert!(parse(Some("auditor"), n, Some(&t), Some("short"), Some(&sig)).is_err());
        assert!(parse(Some("auditor"), n, Some(&t), Some(&a.nonce), Some("00")).is_err());
    }

    #[test]
    fn a_request_is_bound_to_its_chain_and_node() {
        let cfg = testkit::config();
        let k = testkit::key("broker");
        // Replayed to another node: refused before the signature is checked.
        let a = sign(&k, to("de-customs"), M, "broker", 1000, b"q");
        assert_eq!(
            verify(&cfg, &a, "fr-customs", M, b"q", 1000, 1000),
            Err(AuthError::WrongNode {
                addressed: "de-customs".into(),
                this: "fr-customs".into()
            })
        );
        // Relabelled to name the other node: the signature no longer holds.
        let mut relabelled = a.clone();
        relabelled.node = "fr-customs".into();
        assert_eq!(
            verify(&cfg, &relabelled, "fr-customs", M, b"q", 1000, 1000),
            Err(AuthError::Signature)
        );
        // Signed for another chain: the signature does not hold here.
        let other = Target {
            chain_id: "other-chain",
            node: "de-customs",
        };
        let b = sign(&k, other, M, "broker", 1000, b"q");
        assert_eq!(
            verify(&cfg, &b, "de-customs", M, b"q", 1000, 1000),
            Err(AuthError::Signature)
        );
        // Unbound requests: only Status, for discovery.
        let c = sign(&k, to(""), M, "broker", 1000, b"q");
        assert!(matches!(
            verify(&cfg, &c, "de-customs", M, b"q", 1000, 1000),
            Err(AuthError::WrongNode { .. })
        ));
        let d = sign(&k, to(""), DISCOVERY_METHOD, "broker", 1000, b"q");
        assert_eq!(
            verify(&cfg, &d, "de-customs", DISCOVERY_METHOD, b"q", 1000, 1000),
            Ok(())
        );
    }
}
