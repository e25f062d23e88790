//! An authenticated gRPC client: every request carries the caller's party
//! id, time, nonce and an Ed25519 signature over the method and the request
//! body, as the node demands.

use anyhow::{Context, Result};
use ledger::crypto::Keypair;
use prost::Message;
use proto::v1::ledger_client::LedgerClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// A connection to one node, acting as one party.
pub struct Client {
    /// The generated client.
    pub inner: LedgerClient<Channel>,
    party: String,
    key: Keypair,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.party)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Client {
    /// Connect to `url` (e.g. `http://127.0.0.1:8101`).
    pub async fn connect(url: &str, party: &str, key: Keypair) -> Result<Client> {
        let channel = Channel::from_shared(url.to_string())
            .with_context(|| format!("bad node address {url}"))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot connect to node at {url}"))?;
        Ok(Client {
            inner: LedgerClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
            party: party.to_string(),
            key,
        })
    }

    /// Same identity, fresh handle (shares the connection).
    pub fn clone_identity(other: &Client) -> Client {
        Client {
            inner: other.inner.clone(),
            party: other.party.clone(),
            key: Keypair::from_seed(&other.key.seed()),
        }
    }

    /// Wrap `msg` in a request signed for `method` (e.g. `/customs.v1.Ledger/Status`).
    pub fn signed<T: Message>(&self, method: &str, msg: T) -> tonic::Request<T> {
        let body = msg.encode_to_vec();
        let auth = ledger::auth::sign(&self.key, method, &self.party, now_ms(), &body);
        let mut req = tonic::Request::new(msg);
        let md = req.metadata_mut();
        let put = |md: &mut tonic::metadata::MetadataMap, k: &'static str, v: String| {
            if let Ok(v) = MetadataValue::try_from(v.as_str()) {
                md.insert(k, v);
            }
        };
        put(md, ledger::auth::header::PARTY, auth.party);
        put(md, ledger::auth::header::TIME, auth.time_ms.to_string());
        put(md, ledger::auth::header::NONCE, auth.nonce);
        put(md, ledger::auth::header::SIGNATURE, auth.signature.to_hex());
        req
    }
}

/// Turn a gRPC status into a readable error with its reason code.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("node refused the request ({:?}): {}", s.code(), s.message())
}
