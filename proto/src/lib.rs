//! gRPC API definitions for the customs ledger.
//!
//! This crate compiles `proto/customs/v1/customs.proto` (package
//! `customs.v1`) into Rust with `tonic` and `prost`: the message types, the
//! `Ledger` and `Admin` clients ([`v1::ledger_client::LedgerClient`],
//! [`v1::admin_client::AdminClient`]) and the server traits and wrappers
//! ([`v1::ledger_server::Ledger`], [`v1::ledger_server::LedgerServer`],
//! [`v1::admin_server::Admin`], [`v1::admin_server::AdminServer`]). Code
//! generation uses `protox`, so no system `protoc` is needed.
//!
//! The crate holds no logic. Ledger domain objects cross the API as their
//! canonical bytes (the ledger's strict bincode encoding, which is what gets
//! hashed and signed); the other fields are display conveniences. Requests
//! are authenticated through gRPC metadata, never message fields: the header
//! names and the signature domain tag are the constants below, and the full
//! scheme is documented at the top of the `.proto` file.

/// Generated messages, clients and servers of package `customs.v1`.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("customs.v1");
}

/// Domain-separation prefix of the signed request string (ends in a NUL byte).
///
/// The party signs, with Ed25519, `REQUEST_AUTH_TAG || method path || "\n" ||
/// party || "\n" || time || "\n" || nonce || "\n" || hex(SHA-256(request
/// protobuf bytes))`, where method path is e.g. `/customs.v1.Ledger/Submit`.
pub const REQUEST_AUTH_TAG: &[u8] = b"customs-ledger/v1/request\0";

/// Metadata header carrying the calling party's id.
pub const HEADER_PARTY: &str = "x-customs-party";

/// Metadata header carrying the request time, milliseconds since the Unix
/// epoch, in decimal.
pub const HEADER_TIME: &str = "x-customs-time";

/// Metadata header carrying a fresh 16-byte nonce, lowercase hex.
pub const HEADER_NONCE: &str = "x-customs-nonce";

/// Metadata header carrying the Ed25519 request signature, lowercase hex.
pub const HEADER_SIGNATURE: &str = "x-customs-signature";

#[cfg(test)]
mod tests {
    use super::{v1, HEADER_NONCE, HEADER_PARTY, HEADER_SIGNATURE, HEADER_TIME, REQUEST_AUTH_TAG};
    use prost::Message;

    #[test]
    fn submit_response_round_trips() {
        let msg = v1::SubmitResponse {
            tx_id: vec![0xab; 32],
            height: 42,
            index: 3,
            result: Some(v1::TxResult {
                encoded: vec![1, 2, 3],
                status: "DECLARED".into(),
            }),
            rejections: vec![v1::Rejection {
                code: "NONE".into(),
                message: String::new(),
            }],
            status: 6,
        };
        let bytes = msg.encode_to_vec();
        let back = v1::SubmitResponse::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back, msg);
    }

    #[test]
    fn auth_constants_are_lowercase_ascii_headers() {
        assert_eq!(REQUEST_AUTH_TAG.last(), Some(&0));
        for h in [HEADER_PARTY, HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE] {
            // tonic rejects metadata keys that are not lowercase ASCII.
            assert!(h
                .parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>()
                .is_ok());
        }
    }
}
