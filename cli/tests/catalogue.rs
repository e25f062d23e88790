//! `customsctl classify --file`: a catalogue classified offline (issue 26),
//! as JSON and as CSV; quoted fields survive, a declared code gets its
//! verdict, a row without a description is reported, not dropped.

mod common;

use std::process::Command;

const CATALOGUE: &str = "sku,description,hs_code\n\
A-1,\"Men's T-shirt, knitted, 100% cotton\",610910\n\
A-2,Laptop computer 14 inch notebook,\n\
A-3,,\n";

#[test]
fn classifies_a_catalogue_to_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("products.csv");
    std::fs::write(&input, CATALOGUE).unwrap();

    let json = dir.path().join("out.json");
    let o = Command::new(common::customsctl())
        .args(["classify", "--file"])
        .arg(&input)
        .args(["--format", "json", "--top", "3", "--out"])
        .arg(&json)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("3 products classified, 1 without a description"),
        "{err}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let p = v["products"].as_array().unwrap();
    assert_eq!(p.len(), 3);
    assert_eq!(p[0]["id"], "A-1");
    assert_eq!(p[0]["description"], "Men's T-shirt, knitted, 100% cotton");
    assert_eq!(p[0]["declared"], "610910");
    assert!(
        ["confirmed", "plausible"].contains(&p[0]["verdict"].as_str().unwrap()),
        "{}",
        p[0]
    );
    assert!(
        p[0]["suggestions"][0]["hs6"]
            .as_str()
            .unwrap()
            .starts_with("61"),
        "{}",
        p[0]
    );
    assert!(p[1]["verdict"].is_null());
    assert!(
        p[1]["suggestions"][0]["hs6"]
            .as_str()
            .unwrap()
            .starts_with("8471"),
        "{}",
        p[1]
    );
    assert_eq!(p[2]["error"], "no description");
    assert_eq!(p[2]["suggestions"].as_array().unwrap().len(), 0);

    // CSV to standard output: a header and one row per product, the
    // quoted description quoted again.
    let o = Command::new(common::customsctl())
        .args(["classify", "--top", "2", "--file"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        "line,id,description,declared,verdict,error,hs6_1,score_1,hs6_2,score_2"
    );
    assert!(
        lines[1].starts_with("2,A-1,\"Men's T-shirt, knitted, 100% cotton\",610910,"),
        "{out}"
    );
    assert!(lines[3].starts_with("4,A-3,,,,no description,"), "{out}");

    // A file without a description column is refused with the header named.
    std::fs::write(&input, "sku,name\n1,bolts\n").unwrap();
    let o = Command::new(common::customsctl())
        .args(["classify", "--file"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no description column"));
}
