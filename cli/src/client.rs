//! An authenticated gRPC client: every request carries the caller's party
//! id, the node it is for, time, nonce and an Ed25519 signature over the
//! chain id, that node, the method and the request body, as the node
//! demands. A client that is not told which party runs the node asks it
//! once with an unbound `Status` (the only call a node answers unbound) and
//! binds every later request to the answer.

use anyhow::{Context, Result};
use ledger::crypto::Keypair;
use prost::Message;
use proto::v1::admin_client::AdminClient;
use proto::v1::ledger_client::LedgerClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// A connection to one node, acting as one party.
pub struct Client {
    /// The generated client.
    pub inner: LedgerClient<Channel>,
    /// The membership and governance service on the same connection.
    pub admin: AdminClient<Channel>,
    party: String,
    key: Keypair,
    chain_id: String,
    node: String,
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
    /// Connect to `url` (e.g. `http://127.0.0.1:8101`, or `https://...`
    /// with the CA certificate `ca` pinned) of chain `chain_id` as `party`;
    /// `node` is the party running that node (asked of the node when not
    /// given).
    pub async fn connect(
        url: &str,
        ca: Option<&std::path::Path>,
        chain_id: &str,
        node: Option<&str>,
        party: &str,
        key: Keypair,
    ) -> Result<Client> {
        let mut endpoint = Channel::from_shared(url.to_string())
            .with_context(|| format!("bad node address {url}"))?
            .connect_timeout(std::time::Duration::from_secs(5));
        if let Some(tls) = crate::tls::client_config(url, ca)? {
            endpoint = endpoint.tls_config(tls).context("TLS settings")?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to node at {url}"))?;
        let mut c = Client {
            admin: AdminClient::new(channel.clone()),
            inner: LedgerClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
            party: party.to_string(),
            key,
            chain_id: chain_id.to_string(),
            node: node.unwrap_or_default().to_string(),
        };
        if c.node.is_empty() {
            let s = c
                .inner
                .status(c.signed(ledger::auth::DISCOVERY_METHOD, proto::v1::StatusRequest {}))
                .await
                .map_err(status_error)
                .with_context(|| format!("cannot ask {url} which party runs it"))?
                .into_inner();
            if s.chain_id != chain_id {
                anyhow::bail!(
                    "node at {url} serves chain {:?}, not {chain_id:?}",
                    s.chain_id
                );
            }
            if !ledger::config::valid_party_id(&s.node_party) {
                anyhow::bail!("node at {url} names no valid party");
            }
            c.node = s.node_party;
        }
        Ok(c)
    }

    /// Same identity, fresh handle (shares the connection).
    pub fn clone_identity(other: &Client) -> Client {
        Client {
            inner: other.inner.clone(),
            admin: other.admin.clone(),
            party: other.party.clone(),
            key: Keypair::from_seed(&other.key.seed()),
            chain_id: other.chain_id.clone(),
            node: other.node.clone(),
        }
    }

    /// The addressed node's `Status`, asked as this party.
    pub async fn status(&mut self) -> anyhow::Result<proto::v1::StatusResponse> {
        let req = self.signed("/customs.v1.Ledger/Status", proto::v1::StatusRequest {});
        Ok(self
            .inner
            .status(req)
            .await
            .map_err(status_error)?
            .into_inner())
    }

    /// The addressed node's newest checkpoint with a quorum of
    /// cosignatures, as served (unchecked).
    pub async fn newest_checkpoint(&mut self) -> anyhow::Result<proto::v1::CosignedCheckpoint> {
        let req = self.signed(
            "/customs.v1.Ledger/GetCheckpoint",
            proto::v1::GetCheckpointRequest { height: 0 },
        );
        Ok(self
            .inner
            .get_checkpoint(req)
            .await
            .map_err(status_error)?
            .into_inner())
    }

    /// Wrap `msg` in a request signed for `method` (e.g. `/customs.v1.Ledger/Status`).
    pub fn signed<T: Message>(&self, method: &str, msg: T) -> tonic::Request<T> {
        let body = msg.encode_to_vec();
        let target = ledger::auth::Target {
            chain_id: &self.chain_id,
            node: &self.node,
        };
        let auth = ledger::auth::sign(&self.key, target, method, &self.party, now_ms(), &body);
        let mut req = tonic::Request::new(msg);
        let md = req.metadata_mut();
        let put = |md: &mut tonic::metadata::MetadataMap, k: &'static str, v: String| {
            if let Ok(v) = MetadataValue::try_from(v.as_str()) {
                md.insert(k, v);
            }
        };
        put(md, ledger::auth::header::PARTY, auth.party);
        if !auth.node.is_empty() {
            put(md, ledger::auth::header::NODE, auth.node);
        }
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
