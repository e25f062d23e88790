//! TLS end to end on a real node (127.0.0.1, `customs-node` process):
//! `customsctl genesis` issues a network CA and node certificates, the node
//! serves gRPC over TLS only, and `customsctl` pins the CA. A client that
//! pins another network's CA, pins none, or speaks plaintext is refused; a
//! node whose TLS key file others may read refuses to start.

mod common;

use common::{Net, PartyDef};

const ONE: [PartyDef; 1] = [PartyDef {
    id: "de-customs",
    role: "customs",
    validator: true,
}];

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `customsctl status` as the carrier against `url`, pinning no CA.
fn status_without_ca(net: &Net, url: &str) -> std::process::Output {
    std::process::Command::new(common::customsctl())
        .args(["status", "--node", url, "--as", "carrier"])
        .arg("--keys")
        .arg(net.net().join("keys"))
        .arg("--genesis")
        .arg(net.net().join("genesis.json"))
        .env_remove("CUSTOMS_CA")
        .output()
        .unwrap()
}

#[test]
fn clients_pin_the_network_ca_and_nothing_else() {
    let mut net = Net::new_tls(&ONE, 1, &[("carrier", "carrier")]);
    let node_toml = std::fs::read_to_string(net.net().join("de-customs/node.toml")).unwrap();
    assert!(node_toml.contains("tls_cert = "), "{node_toml}");
    assert!(
        node_toml.contains("metrics_listen = \"127.0.0.1:"),
        "metrics must bind to loopback: {node_toml}"
    );
    net.start_all();

    // The right CA: served over TLS.
    let ok = net.ctl("carrier", "de-customs", &["status"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("de-customs"), "{}", text(&ok));

    // Another network's CA: the node's certificate does not verify.
    let other = tempfile::tempdir().unwrap();
    let spec = other.path().join("spec.toml");
    std::fs::write(
        &spec,
        "chain_id = \"other\"\ncheckpoint_quorum = 1\ntls = true\n[[party]]\nid = \"x-customs\"\nname = \"x\"\nroles = [\"customs\"]\nvalidator = true\nnode_id = 1\np2p_port = 1\ngrpc_port = 2\n",
    )
    .unwrap();
    let g = net.ctl_offline(&[
        "genesis",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        other.path().join("net").to_str().unwrap(),
    ]);
    assert!(g.status.success(), "{}", text(&g));
    let wrong_ca = other.path().join("net/tls/ca.crt");
    let o = net.ctl(
        "carrier",
        "de-customs",
        &["status", "--ca", wrong_ca.to_str().unwrap()],
    );
    assert!(!o.status.success(), "accepted a certificate of another CA");
    let t = text(&o);
    assert!(
        t.contains("cannot connect") || t.contains("cannot ask"),
        "{t}"
    );

    // No CA: refused before connecting (no system roots are trusted).
    let o = status_without_ca(&net, &net.url("de-customs"));
    assert!(!o.status.success());
    assert!(text(&o).contains("--ca"), "{}", text(&o));

    // Plaintext to the TLS port: no answer.
    let plain = net.url("de-customs").replace("https://", "http://");
    let o = status_without_ca(&net, &plain);
    assert!(!o.status.success(), "plaintext was served: {}", text(&o));
}

#[test]
fn a_readable_tls_key_stops_the_node() {
    let net = Net::new_tls(&ONE, 1, &[]);
    let key = net.net().join("keys/de-customs.tls.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "issued key must be owner-only");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = net.start_refused("de-customs");
        assert!(log.contains("readable by group or others"), "{log}");
    }
}
