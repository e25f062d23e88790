//! TLS for the gRPC API: `customsctl genesis` can issue a network CA and
//! one server certificate per node (rcgen), and clients pin that CA
//! (`--ca`, `CUSTOMS_CA`) instead of trusting any system root.

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::Path;

/// Files of one node's TLS identity, relative to the genesis output.
pub fn cert_path(party: &str) -> String {
    format!("tls/{party}.crt")
}

/// The node's private TLS key (mode 0600), relative to the genesis output.
pub fn key_path(party: &str) -> String {
    format!("keys/{party}.tls.key")
}

/// Issue a network CA (`tls/ca.crt`, its key in `keys/tls-ca.key`) and a
/// server certificate for each `(party, host)`, valid for the host, for
/// `localhost`, `127.0.0.1` (ports published on loopback) and the party id
/// (its name on a container network).
pub fn issue(out: &Path, chain_id: &str, nodes: &[(&str, &str)]) -> Result<()> {
    std::fs::create_dir_all(out.join("tls"))?;
    let ca_key = KeyPair::generate().context("CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, format!("{chain_id} network CA"));
    let ca_cert = ca.self_signed(&ca_key).context("CA certificate")?;
    std::fs::write(out.join("tls/ca.crt"), ca_cert.pem())?;
    crate::spec::write_private(&out.join("keys/tls-ca.key"), &ca_key.serialize_pem())?;
    for (party, host) in nodes {
        let mut names = vec![
            party.to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        if !names.iter().any(|n| n == host) && !host.is_empty() && *host != "0.0.0.0" {
            names.push(host.to_string());
        }
        let key = KeyPair::generate().with_context(|| format!("{party}: TLS key"))?;
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{party} customs-node"));
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .with_context(|| format!("{party}: certificate"))?;
        std::fs::write(out.join(cert_path(party)), cert.pem())?;
        crate::spec::write_private(&out.join(key_path(party)), &key.serialize_pem())?;
    }
    Ok(())
}

/// The client TLS settings for `url`: a pinned CA for `https://`, none for
/// `http://` (which a CA given by the user contradicts).
pub fn client_config(
    url: &str,
    ca: Option<&Path>,
) -> Result<Option<tonic::transport::ClientTlsConfig>> {
    match (url.starts_with("https://"), ca) {
        (true, Some(ca)) => {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read CA certificate {}", ca.display()))?;
            Ok(Some(tonic::transport::ClientTlsConfig::new().ca_certificate(
                tonic::transport::Certificate::from_pem(pem),
            )))
        }
        (true, None) => bail!(
            "{url} uses TLS: give the network's CA certificate with --ca or CUSTOMS_CA (no system roots are trusted)"
        ),
        (false, Some(_)) => bail!("a CA certificate was given but {url} is not https://"),
        (false, None) => Ok(None),
    }
}
