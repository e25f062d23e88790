//! `customsctl quote` (issue 25, part): the worked example of a laptop from
//! the US to France, checked by hand from the tables (duty 0 % under CN
//! 84713000, French VAT 20 %), as text and as JSON; a basket that cannot
//! be quoted says why.

mod common;

use std::process::Command;

#[test]
fn quotes_a_basket_with_its_rates_named() {
    let dir = tempfile::tempdir().unwrap();
    let basket = dir.path().join("basket.json");
    let rates = dir.path().join("rates.json");
    std::fs::write(
        &basket,
        r#"{"origin":"US","destination":"FR","date":"2026-12-01","currency":"USD","shipping_minor":4500,
            "lines":[{"description":"laptop 14 inch","code":"847130","quantity":1,"value_minor":129900,"net_mass_g":1800}]}"#,
    )
    .unwrap();
    std::fs::write(
        &rates,
        r#"{"date":"2026-11-02","source":"worked example","per_eur":{"USD":"1.0812"}}"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Command::new(common::customsctl())
            .arg("quote")
            .arg("--basket")
            .arg(&basket)
            .arg("--rates")
            .arg(&rates)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("(complete)"), "{out}");
    assert!(
        out.contains("IOSS: no (intrinsic value EUR 1201.44 > EUR 150"),
        "{out}"
    );
    assert!(out.contains("0.0% (84713000)"), "{out}");
    assert!(
        out.contains("goods 1201.44 + transport and insurance 41.62 + duty 0.00 + VAT 248.61 (20%) = landed EUR 1491.67"),
        "{out}"
    );
    assert!(
        out.contains("1 EUR = 1.0812 USD") && out.contains("EU CCT 2020"),
        "{out}"
    );

    let o = run(&["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["landed_cents"], 149_167);
    assert_eq!(v["vat_rate_milli"], 20_000);
    assert_eq!(v["id"].as_str().map(str::len), Some(64));

    // No rate for the basket's currency: refused, naming it.
    std::fs::write(
        &rates,
        r#"{"date":"2026-11-02","source":"worked example","per_eur":{"GBP":"0.86"}}"#,
    )
    .unwrap();
    let o = run(&[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no exchange rate for USD"));
}
