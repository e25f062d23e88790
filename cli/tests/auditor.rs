//! The auditor workflow end to end through `customsctl` against real nodes:
//! a broker submits a sealed declaration, the auditor verifies the whole
//! chain (keeping a trusted checkpoint), reads a shipment's history with
//! every proof checked and only the fields the policy grants auditors, and a
//! single-field disclosure is verified offline; tampering makes each check fail.

mod common;

use common::{Net, PartyDef};

const DEFS: [PartyDef; 4] = [
    PartyDef {
        id: "de-customs",
        role: "customs",
        validator: true,
    },
    PartyDef {
        id: "fr-customs",
        role: "customs",
        validator: true,
    },
    PartyDef {
        id: "pl-customs",
        role: "customs",
        validator: true,
    },
    PartyDef {
        id: "auditor",
        role: "auditor",
        validator: false,
    },
];

fn ok(o: &std::process::Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "command failed:\nstdout: {out}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn fails(o: &std::process::Output) -> String {
    assert!(
        !o.status.success(),
        "command should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_verifies_history_chain_and_disclosure() {
    let mut net = Net::new(
        &DEFS,
        3,
        &[
            ("broker", "broker"),
            ("pl-exporter", "exporter"),
            ("carrier", "carrier"),
        ],
        "",
    );
    net.start_all();
    let dir = net.dir.path().to_path_buf();
    let decl = serde_json::to_string(&ledger::declaration::sample()).unwrap();
    std::fs::write(dir.join("book.json"), r#"{"kind":"SHIPMENT_BOOKED","shipment_id":"AUD-1","shipment_parties":["broker","carrier"],"fields":[{"path":"event.note","class":"public","value":"booked"}]}"#).unwrap();
    std::fs::write(
        dir.join("decl.json"),
        format!(r#"{{"kind":"DECLARATION_FILED","shipment_id":"AUD-1","shipment_parties":["pl-exporter","carrier"],"declaration":{decl}}}"#),
    )
    .unwrap();
    // Submitted through different nodes, waiting for leadership.
    let mut out = String::new();
    for _ in 0..100 {
        let o = net.ctl(
            "pl-exporter",
            "fr-customs",
            &["submit", dir.join("book.json").to_str().unwrap()],
        );
        if o.status.success() {
            out = String::from_utf8_lossy(&o.stdout).to_string();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(out.contains("committed"), "booking never committed");
    let o = ok(&net.ctl(
        "broker",
        "de-customs",
        &["submit", dir.join("decl.json").to_str().unwrap()],
    ));
    assert!(o.contains("item 0: declared 84713000"), "{o}");
    // Risk is customs' (Security): the broker sees that it is sealed.
    assert!(o.contains("risk assessment: sealed"), "{o}");
    assert!(!o.contains("risk:"), "{o}");
    let tx_id = o.split_whitespace().nth(1).unwrap().to_string();

    // Whole chain from genesis, with a trusted checkpoint kept on disk.
    let trust = dir.join("trusted.json");
    let v = ok(&net.ctl(
        "auditor",
        "auditor",
        &["verify", "--trust", trust.to_str().unwrap()],
    ));
    assert!(v.contains("chain OK"), "{v}");
    // Next run demands a consistency proof from the trusted checkpoint.
    std::fs::write(dir.join("book2.json"), r#"{"kind":"SHIPMENT_BOOKED","shipment_id":"AUD-2","fields":[{"path":"event.note","class":"public","value":"x"}]}"#).unwrap();
    ok(&net.ctl(
        "carrier",
        "pl-customs",
        &["submit", dir.join("book2.json").to_str().unwrap()],
    ));
    let v2 = ok(&net.ctl(
        "auditor",
        "auditor",
        &["verify", "--trust", trust.to_str().unwrap()],
    ));
    assert!(v2.contains("consistent with trusted checkpoint"), "{v2}");
    // A trusted checkpoint from a different history is refused.
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trust).unwrap()).unwrap();
    t["checkpoint"]["tree_root"] = serde_json::Value::String("00".repeat(32));
    t["checkpoint"]["tree_size"] = serde_json::json!(2);
    std::fs::write(&trust, t.to_string()).unwrap();
    let e = fails(&net.ctl(
        "auditor",
        "auditor",
        &["verify", "--trust", trust.to_str().unwrap()],
    ));
    assert!(e.contains("HISTORY REWRITTEN"), "{e}");

    // History as the auditor: proofs checked, commercial fields not readable.
    let h = ok(&net.ctl("auditor", "auditor", &["history", "AUD-1"]));
    assert!(
        h.contains("SHIPMENT_BOOKED") && h.contains("DECLARATION_FILED"),
        "{h}"
    );
    assert!(h.contains("proof OK"), "{h}");
    assert!(
        h.contains("decl.hs_chapters"),
        "public fields are shown: {h}"
    );
    assert!(!h.contains("3200000"), "auditor must not see values: {h}");
    assert!(h.contains("sealed fields not readable by auditor"), "{h}");
    // Customs sees the value.
    let hc = ok(&net.ctl("de-customs", "de-customs", &["history", "AUD-1"]));
    assert!(hc.contains("3200000"), "{hc}");

    // Exporter discloses one value; anyone verifies it offline.
    let proof = dir.join("proof.json");
    ok(&net.ctl(
        "pl-exporter",
        "pl-customs",
        &[
            "disclose",
            &tx_id,
            "decl.goods[0].value_minor",
            "--out",
            proof.to_str().unwrap(),
        ],
    ));
    let genesis = net.net().join("genesis.json");
    let vd = ok(&net.ctl_offline(&[
        "verify-disclosure",
        proof.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
    ]));
    assert!(vd.contains("VALID") && vd.contains("3200000"), "{vd}");
    let text = std::fs::read_to_string(&proof).unwrap();
    assert!(
        !text.contains("Distribution Nord"),
        "proof leaks other fields"
    );
    let bad = text.replacen("\"3200000\"", "\"3100000\"", 1);
    std::fs::write(dir.join("bad.json"), bad).unwrap();
    let e = fails(&net.ctl_offline(&[
        "verify-disclosure",
        dir.join("bad.json").to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
    ]));
    assert!(e.contains("does not match its commitment"), "{e}");

    // Export and verify offline; a flipped byte is caught with its height.
    let chain = dir.join("chain.bin");
    ok(&net.ctl(
        "auditor",
        "auditor",
        &["export", "--out", chain.to_str().unwrap()],
    ));
    ok(&net.ctl_offline(&[
        "verify",
        "--file",
        chain.to_str().unwrap(),
        "--genesis-file",
        genesis.to_str().unwrap(),
    ]));
    let mut bytes = std::fs::read(&chain).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 1;
    std::fs::write(&chain, bytes).unwrap();
    let e = fails(&net.ctl_offline(&[
        "verify",
        "--file",
        chain.to_str().unwrap(),
        "--genesis-file",
        genesis.to_str().unwrap(),
    ]));
    assert!(e.contains("chain verification failed at block"), "{e}");

    // Bad CLI input: clear message, non-zero exit.
    let e = fails(&net.ctl("auditor", "auditor", &["tx", "nothex"]));
    assert!(e.contains("transaction id"), "{e}");
    let e = fails(&net.ctl("mallory", "auditor", &["status"]));
    assert!(e.contains("mallory.sign"), "{e}");
}
