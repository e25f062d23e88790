//! Governance and key rotation end to end on a real network (127.0.0.1,
//! `customs-node` processes), every step through `customsctl` as an
//! operator types it (issue 26):
//!
//! - a validator proposes rotating the carrier's signing and encryption
//!   keys, the proposal shows the config change, the carrier cannot approve
//!   it, it cannot be submitted on one signature, a second validator
//!   approves and a third party submits it; `governance show` names who
//!   approved;
//! - the carrier's old signing key is refused from then on and its node,
//!   still holding it, stops cosigning; restarted with the new key it
//!   cosigns again;
//! - data sealed before the rotation opens with the old key, data sealed
//!   after it with the new one only, and an event signed with the new key
//!   commits;
//! - an auditor holding only the genesis config verifies the chain,
//!   histories and a disclosure across the rotation (the cosignatures
//!   after it are by the new key; a transaction before it was signed with
//!   the old one);
//! - a risk policy change (a country embargoed, the inspection threshold
//!   lowered) proposed and approved the same way, and the next declaration
//!   judged under it;
//! - a month's exchange rates published the same way, and a quote asked of
//!   a node converting with them; declarations naming a checkout quote,
//!   assessed by customs and compared with it.

mod common;

use common::{Net, STANDARD};
use std::path::Path;
use std::process::Output;

fn run(o: Output) -> (bool, String) {
    let mut s = String::from_utf8_lossy(&o.stdout).to_string();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s)
}

fn ok(o: Output) -> String {
    let (ok, s) = run(o);
    assert!(ok, "{s}");
    s
}

fn refused(o: Output, why: &str) -> String {
    let (ok, s) = run(o);
    assert!(
        !ok && s.contains(why),
        "expected a refusal naming {why:?}:\n{s}"
    );
    s
}

/// The transaction id of a `customsctl submit` output.
fn tx_id(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "tx")
        .nth(1)
        .unwrap_or_else(|| panic!("no tx id in {out}"))
        .to_string()
}

fn event_file(dir: &Path, name: &str, json: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p.to_str().unwrap().to_string()
}

/// `customsctl` as the carrier holding the keys in `keys`.
fn as_new(net: &Net, keys: &Path, node: &str, args: &[&str]) -> Output {
    net.ctl_command("carrier", node)
        .env("CUSTOMS_KEYS", keys)
        .args(args)
        .output()
        .unwrap()
}

fn booking(ship: &str, vessel: &str) -> String {
    format!(
        r#"{{"kind":"SHIPMENT_BOOKED","shipment_id":"{ship}","shipment_parties":["carrier"],"fields":[{{"path":"transport.vessel","class":"transport","value":"{vessel}"}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_by_governance_and_proofs_follow() {
    let mut net = Net::new(
        &STANDARD,
        3,
        &[("pl-exporter", "exporter"), ("auditor", "auditor")],
        "",
    );
    net.start_all();
    net.leader(std::time::Duration::from_secs(30)).await;
    let dir = net.dir.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = net.net().join("keys");

    // Before: the exporter books a shipment whose vessel is sealed to the
    // carrier, and the carrier files a document of its own (signed with
    // the key about to be rotated).
    let before = tx_id(&ok(net.ctl(
        "pl-exporter",
        "de-customs",
        &[
            "submit",
            &event_file(&dir, "b1.json", &booking("ROT-1", "MSC ANNA")),
        ],
    )));
    let own = tx_id(&ok(net.ctl(
        "carrier",
        "de-customs",
        &[
            "submit",
            &event_file(
                &dir,
                "c1.json",
                r#"{"kind":"SHIPMENT_BOOKED","shipment_id":"ROT-0","fields":[{"path":"event.note","class":"public","value":"carrier booking"}]}"#,
            ),
        ],
    )));

    // The carrier's new keys, made the way an operator makes them.
    let new_keys = dir.join("new-keys");
    ok(net.ctl_offline(&[
        "keygen",
        "--out",
        new_keys.to_str().unwrap(),
        "--party",
        "carrier",
    ]));

    // Proposed by one validator: the change is shown before it is signed.
    let proposal = dir.join("rotate.json");
    let p = proposal.to_str().unwrap();
    let out = ok(net.ctl(
        "de-customs",
        "de-customs",
        &[
            "governance",
            "propose",
            "--out",
            p,
            "rotate-key",
            "--party",
            "carrier",
            "--new-keys",
            new_keys.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("rotate carrier's signing key"), "{out}");
    assert!(out.contains("config change (sequence 0 -> 1)"), "{out}");
    assert!(out.contains("~ parties[carrier].signing_key"), "{out}");
    assert!(out.contains("~ parties[carrier].encryption_key"), "{out}");
    assert!(
        out.contains("1 of 3 validators approved (de-customs): 1 more needed"),
        "{out}"
    );

    // Refusals: the carrier is no validator; one approval is no majority.
    refused(
        net.ctl("carrier", "de-customs", &["governance", "approve", p]),
        "not a validator",
    );
    refused(
        net.ctl("pl-customs", "fr-customs", &["governance", "submit", p]),
        "GOV_NO_QUORUM",
    );
    // A proposal edited after signing is refused before anything is signed.
    let text = std::fs::read_to_string(&proposal).unwrap();
    let forged = dir.join("forged.json");
    std::fs::write(&forged, text.replace("\"carrier\"", "\"pl-exporter\"")).unwrap();
    refused(
        net.ctl(
            "fr-customs",
            "fr-customs",
            &["governance", "approve", forged.to_str().unwrap()],
        ),
        "differs from the signed transaction",
    );

    let out = ok(net.ctl("fr-customs", "fr-customs", &["governance", "approve", p]));
    assert!(out.contains("~ parties[carrier].signing_key"), "{out}");
    assert!(
        out.contains("2 of 3 validators approved (de-customs, fr-customs): ready to submit"),
        "{out}"
    );
    let out = ok(net.ctl("pl-customs", "pl-customs", &["governance", "submit", p]));
    assert!(out.contains("committed at height"), "{out}");
    let out = ok(net.ctl("auditor", "pl-customs", &["governance", "show", p]));
    assert!(
        out.contains("KEY_ROTATED")
            && out.contains("proposed by de-customs, approved by fr-customs"),
        "{out}"
    );
    // Committed, the proposal file is stale.
    assert!(
        out.contains("cannot commit: the chain config has changed"),
        "{out}"
    );

    // The carrier's old signing key no longer speaks for it.
    refused(
        net.ctl("carrier", "de-customs", &["tx", &before]),
        "Unauthenticated",
    );

    // Its keys as the operator keeps them now: the new ones, and the old
    // encryption key to open what was sealed before.
    let keys2 = dir.join("keys2");
    std::fs::create_dir_all(&keys2).unwrap();
    for (from, to) in [
        (new_keys.join("carrier.sign"), "carrier.sign"),
        (new_keys.join("carrier.x25519"), "carrier.x25519"),
        (keys.join("carrier.x25519"), "carrier.x25519.1"),
    ] {
        std::fs::copy(from, keys2.join(to)).unwrap();
    }

    // Sealed after the rotation: to the carrier's new key.
    let after = tx_id(&ok(net.ctl(
        "pl-exporter",
        "fr-customs",
        &[
            "submit",
            &event_file(&dir, "b2.json", &booking("ROT-2", "CMA LYON")),
        ],
    )));
    let out = ok(as_new(&net, &keys2, "de-customs", &["tx", &before]));
    assert!(
        out.contains("MSC ANNA"),
        "old data opens with the old key:\n{out}"
    );
    let out = ok(as_new(&net, &keys2, "fr-customs", &["tx", &after]));
    assert!(
        out.contains("CMA LYON"),
        "new data opens with the new key:\n{out}"
    );
    let old_only = dir.join("old-only");
    std::fs::create_dir_all(&old_only).unwrap();
    std::fs::copy(new_keys.join("carrier.sign"), old_only.join("carrier.sign")).unwrap();
    std::fs::copy(keys.join("carrier.x25519"), old_only.join("carrier.x25519")).unwrap();
    let out = ok(net
        .ctl_command("carrier", "fr-customs")
        .env("CUSTOMS_KEYS", &old_only)
        .args(["tx", &after])
        .output()
        .unwrap());
    assert!(
        !out.contains("CMA LYON") && out.contains("sealed fields not readable by carrier"),
        "the old encryption key opens nothing new:\n{out}"
    );

    // An event signed with the new key commits.
    ok(as_new(
        &net,
        &keys2,
        "de-customs",
        &[
            "submit",
            &event_file(
                &dir,
                "c2.json",
                r#"{"kind":"SHIPMENT_BOOKED","shipment_id":"ROT-3","fields":[{"path":"event.note","class":"public","value":"new key"}]}"#,
            ),
        ],
    ));

    // The carrier's node, still holding the old key, cosigns nothing and
    // says why; restarted with the new keys (and the old encryption key
    // kept) it cosigns again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !net
        .log("carrier")
        .contains("registers another signing key for carrier")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            net.log("carrier")
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    net.kill9("carrier");
    let toml_path = net.net().join("carrier").join("node.toml");
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    let toml = toml
        .replace(
            "signing_key = \"../keys/carrier.sign\"",
            &format!("signing_key = {:?}", new_keys.join("carrier.sign")),
        )
        .replace(
            "encryption_key = \"../keys/carrier.x25519\"",
            &format!(
                "encryption_key = {:?}\nold_encryption_keys = [\"../keys/carrier.x25519\"]",
                new_keys.join("carrier.x25519")
            ),
        );
    std::fs::write(&toml_path, toml).unwrap();
    net.start("carrier");
    let last = tx_id(&ok(net.ctl(
        "pl-exporter",
        "de-customs",
        &[
            "submit",
            &event_file(&dir, "b4.json", &booking("ROT-4", "EVER ACE")),
        ],
    )));
    // The carrier's cosignature on a checkpoint after the rotation is by
    // its new key; an auditor with only genesis follows the rotation.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        // (The carrier's node may not have applied the block yet.)
        let (_, out) = run(net.ctl("auditor", "carrier", &["tx", &last]));
        if out.contains("cosigned by") {
            let signers = out
                .split("cosigned by ")
                .nth(1)
                .unwrap_or_default()
                .split(')')
                .next()
                .unwrap_or_default()
                .to_string();
            if signers.contains("carrier") {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    // A risk policy change: Poland embargoed, inspection from 65. The next
    // declaration from there is judged under it.
    let policy = dir.join("policy.json");
    let pp = policy.to_str().unwrap();
    let out = ok(net.ctl(
        "fr-customs",
        "fr-customs",
        &[
            "governance",
            "propose",
            "--out",
            pp,
            "set-risk-policy",
            "--sanction-country",
            "PL",
            "--inspect-at",
            "65",
        ],
    ));
    assert!(
        out.contains("+ risk_policy.sanctioned_countries[]: \"PL\""),
        "{out}"
    );
    assert!(
        out.contains("~ risk_inspect_at: ") && out.contains(" -> 65"),
        "{out}"
    );
    ok(net.ctl("pl-customs", "pl-customs", &["governance", "approve", pp]));
    ok(net.ctl("de-customs", "de-customs", &["governance", "submit", pp]));
    let decl = serde_json::to_string(&ledger::declaration::sample()).unwrap();
    let filed = tx_id(&ok(net.ctl(
        "pl-exporter",
        "de-customs",
        &[
            "submit",
            &event_file(
                &dir,
                "d1.json",
                &format!(
                    r#"{{"kind":"DECLARATION_FILED","shipment_id":"ROT-1","shipment_parties":["carrier"],"declaration":{decl}}}"#
                ),
            ),
        ],
    )));
    let out = ok(net.ctl("de-customs", "de-customs", &["tx", &filed]));
    assert!(
        out.contains("RISK_SANCTIONED_COUNTRY") && out.contains("(inspect)"),
        "{out}"
    );

    // Customs publish December's exchange rates by governance; a quote
    // asked of a node converts with them (and refuses a month before any).
    let rates = dir.join("rates.json");
    std::fs::write(
        &rates,
        r#"{"date":"2026-11-27","source":"ECB reference rates of 2026-11-27 (test)","per_eur":{"USD":"1.0812","GBP":"0.86"}}"#,
    )
    .unwrap();
    let fx = dir.join("fx.json");
    let fxp = fx.to_str().unwrap();
    let out = ok(net.ctl(
        "de-customs",
        "de-customs",
        &[
            "governance",
            "propose",
            "--out",
            fxp,
            "publish-rates",
            "--month",
            "2026-12",
            "--file",
            rates.to_str().unwrap(),
        ],
    ));
    assert!(
        out.contains("+ exchange_rates[]") || out.contains("~ exchange_rates"),
        "{out}"
    );
    ok(net.ctl("fr-customs", "fr-customs", &["governance", "approve", fxp]));
    ok(net.ctl("pl-customs", "pl-customs", &["governance", "submit", fxp]));
    let basket = |date: &str| {
        let p = dir.join(format!("basket-{date}.json"));
        std::fs::write(
            &p,
            format!(
                r#"{{"origin":"US","destination":"FR","date":"{date}","currency":"USD","shipping_minor":4500,"lines":[{{"code":"847130","quantity":1,"value_minor":129900,"net_mass_g":1800}}]}}"#
            ),
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    };
    let out = ok(net.ctl(
        "pl-exporter",
        "fr-customs",
        &["quote", "--basket", &basket("2026-12-03")],
    ));
    assert!(out.contains("landed EUR 1491.67"), "{out}");
    assert!(out.contains("published on the ledger for 2026-12"), "{out}");
    refused(
        net.ctl(
            "pl-exporter",
            "fr-customs",
            &["quote", "--basket", &basket("2020-01-15")],
        ),
        "NO_EXCHANGE_RATES",
    );

    // A declaration names the checkout quote its buyer saw: customs assess
    // duty and VAT under the same tables and rates and commit the
    // comparison (the broker's side of the outcome); a quote that was off
    // is flagged.
    let table = ledger::tariff::RateTable {
        month: "2026-12".into(),
        source: "ECB reference rates of 2026-11-27 (test)".into(),
        per_eur: vec![("GBP".into(), 860_000), ("USD".into(), 1_081_200)],
    };
    let today = ledger::tariff::date_of(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    // (The sample's smartphones are HS 2022's 8517.13, which the 2020
    // tariff lacks: a declaration of them is assessed ASSESS_INCOMPLETE.
    // Lithium-ion batteries are in both editions.)
    let mut sample = ledger::declaration::sample();
    sample.goods[1].description = "Lithium-ion accumulators, battery packs".into();
    sample.goods[1].hs_code = "85076000".into();
    let expected = ledger::quote::assess_declaration(
        &sample,
        &today,
        ledger::tariff::rates_for(std::slice::from_ref(&table), &today[..7]),
        ledger::tariff::Tariff::shared(),
        ledger::tariff::VatTable::shared(),
    )
    .unwrap();
    let taxes = expected.duty_cents + expected.vat_cents;
    assert!(taxes > 0 && !expected.ioss, "{expected:?}");
    for (ship, quoted, verdict) in [
        ("ROT-2", taxes, "difference 0.00 (within tolerance)"),
        (
            "ROT-4",
            taxes + 50_000,
            "difference -500.00 (outside tolerance)",
        ),
    ] {
        let mut d = sample.clone();
        d.quote = Some(ledger::declaration::QuoteRef {
            id: "ab".repeat(32),
            taxes_cents: quoted,
        });
        let json = serde_json::to_string(&d).unwrap();
        let filed = tx_id(&ok(net.ctl(
            "pl-exporter",
            "de-customs",
            &[
                "submit",
                &event_file(
                    &dir,
                    &format!("{ship}-decl.json"),
                    &format!(
                        r#"{{"kind":"DECLARATION_FILED","shipment_id":"{ship}","declaration":{json}}}"#
                    ),
                ),
            ],
        )));
        let out = ok(net.ctl("de-customs", "de-customs", &["tx", &filed]));
        let assessed = format!(
            "assessed: duty EUR {} VAT EUR {}; quoted EUR {}, {verdict}",
            ledger::quote::euros(expected.duty_cents),
            ledger::quote::euros(expected.vat_cents),
            ledger::quote::euros(quoted)
        );
        assert!(out.contains(&assessed), "{assessed}\n{out}");
        assert_eq!(
            out.contains("ASSESS_QUOTE_DIFFERS"),
            quoted != taxes,
            "{out}"
        );
    }

    // The auditor: whole chain, histories, and a disclosure of the
    // carrier's own pre-rotation event, all from genesis alone.
    for node in ["de-customs", "carrier"] {
        let out = ok(net.ctl("auditor", node, &["verify"]));
        assert!(out.contains("chain OK"), "{out}");
    }
    let out = ok(net.ctl("auditor", "fr-customs", &["history", "ROT-2"]));
    assert!(out.contains("proof OK"), "{out}");
    let proof = dir.join("disclosed.json");
    // Asked of the carrier's node, whose checkpoints carry its own
    // (new-key) cosignature.
    ok(as_new(
        &net,
        &keys2,
        "carrier",
        &[
            "disclose",
            &own,
            "event.note",
            "--out",
            proof.to_str().unwrap(),
        ],
    ));
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    assert!(
        d["config"]["blocks"]
            .as_array()
            .is_some_and(|b| b.len() == 3),
        "{d}"
    );
    assert!(
        d["checkpoint"]["cosignatures"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["party"] == "carrier")),
        "{d}"
    );
    let genesis = net.net().join("genesis.json");
    let out = ok(net.ctl_offline(&[
        "verify-disclosure",
        proof.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
    ]));
    assert!(
        out.contains("VALID: event.note = \"carrier booking\""),
        "{out}"
    );
    // Without the config history the new-key cosignatures cannot be checked
    // against genesis: the verifier says which.
    let mut stripped = d.clone();
    stripped["config"] = serde_json::Value::Null;
    let bare = dir.join("bare.json");
    std::fs::write(&bare, stripped.to_string()).unwrap();
    let (good, out) = run(net.ctl_offline(&[
        "verify-disclosure",
        bare.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
    ]));
    assert!(!good && out.contains("carrier"), "{out}");
}
