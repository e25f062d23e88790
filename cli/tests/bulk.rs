//! `customsctl submit` with many events (issue 26): a directory of event
//! files and JSON lines on standard input, submitted in order against a
//! real network, one result line per event; what is malformed or refused
//! is reported, the rest commits, and the exit status says some failed.

mod common;

use common::{Net, STANDARD};
use std::io::Write;
use std::process::Stdio;

fn booking(ship: &str) -> String {
    format!(
        r#"{{"kind":"SHIPMENT_BOOKED","shipment_id":"{ship}","shipment_parties":["carrier"],"fields":[{{"path":"event.note","class":"public","value":"booked"}}]}}"#
    )
}

/// The run failed (not every event committed), printed one line per
/// event, each starting with its verdict and naming its source, and the
/// summary of 2 of 3 committed.
fn two_of_three(o: &std::process::Output, lines: [(&str, &str); 3]) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!o.status.success(), "{out}");
    assert!(out.lines().count() >= 3, "{out}");
    for ((verdict, name), line) in lines.iter().zip(out.lines()) {
        assert!(line.starts_with(verdict) && line.contains(name), "{out}");
    }
    assert!(out.contains("2 of 3 events committed; 1 failed"), "{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_events_from_a_directory_and_stdin_each_get_a_result() {
    let mut net = Net::new(&STANDARD, 3, &[("pl-exporter", "exporter")], "");
    net.start_all();
    let dir = net.dir.path().join("events");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("01-a.json"), booking("BULK-A")).unwrap();
    std::fs::write(dir.join("02-b.json"), booking("BULK-B")).unwrap();
    std::fs::write(dir.join("03-bad.json"), r#"{"kind":"NO_SUCH_KIND"}"#).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an event").unwrap();

    let o = net.ctl(
        "pl-exporter",
        "de-customs",
        &["submit", dir.to_str().unwrap()],
    );
    two_of_three(
        &o,
        [
            ("committed", "01-a.json"),
            ("committed", "02-b.json"),
            ("FAILED", "03-bad.json"),
        ],
    );

    // JSON lines on standard input; booking BULK-A again is refused.
    let mut child = net
        .ctl_command("pl-exporter", "fr-customs")
        .args(["submit", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = [booking("BULK-C"), booking("BULK-D"), booking("BULK-A")].join("\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let out = two_of_three(
        &o,
        [
            ("committed", "stdin:1"),
            ("committed", "stdin:2"),
            ("REJECTED", "stdin:3"),
        ],
    );
    println!("{out}");

    // One file still prints the detailed result, as before.
    let one = dir.join("04-e.json");
    std::fs::write(&one, booking("BULK-E")).unwrap();
    let o = net.ctl(
        "pl-exporter",
        "de-customs",
        &["submit", one.to_str().unwrap()],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}");
    assert!(out.contains("committed at height"), "{out}");
}
