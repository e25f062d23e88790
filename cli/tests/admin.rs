//! `customsctl admin` on a real network (127.0.0.1, `customs-node`
//! processes): the members as the leader sees them, a node removed and
//! added back as a learner, and the refusals (promoting a carrier's node,
//! a carrier changing membership) as the operator sees them (issue 26).

mod common;

use common::{Net, STANDARD};
use std::time::Duration;

fn text(o: &std::process::Output) -> (bool, String, String) {
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// The members table's row of `node_id`: (party, role, address).
fn row(out: &str, node_id: u64) -> Option<(String, String, String)> {
    out.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == node_id.to_string()).then(|| {
            let party = w.next().unwrap_or_default().to_string();
            let role = w.next().unwrap_or_default().to_string();
            let addr = w.next().unwrap_or_default().to_string();
            (party, role, addr)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_change_membership_and_say_why_not() {
    let mut net = Net::new(&STANDARD, 3, &[], "");
    net.start_all();
    let lead = net.leader(Duration::from_secs(30)).await;

    let (ok, out, err) = text(&net.ctl(&lead, &lead, &["admin", "members"]));
    assert!(ok, "{err}");
    for id in 1..=3 {
        assert_eq!(row(&out, id).map(|r| r.1), Some("voter".into()), "{out}");
    }
    let (party, role, address) = row(&out, 4).expect("the carrier's node is a member");
    assert_eq!(
        (party.as_str(), role.as_str()),
        ("carrier", "learner"),
        "{out}"
    );

    // Removed: the change commits. (The leader keeps the cluster in step
    // with the chain config, so a node the config still registers comes
    // back as a learner; removing a party's node for good is revoking the
    // party by governance.)
    let (ok, out, err) = text(&net.ctl(&lead, &lead, &["admin", "remove", "--node-id", "4"]));
    assert!(ok, "{err}");
    assert!(out.contains("membership committed at log index"), "{out}");

    // Added back as a learner (the leader may already have re-added the
    // registered node on its own; either way it is a learner again).
    let add = [
        "admin",
        "add-learner",
        "--node-id",
        "4",
        "--party",
        "carrier",
        "--address",
        &address,
    ];
    let (ok, out, err) = text(&net.ctl(&lead, &lead, &add));
    assert!(ok, "{err}");
    assert_eq!(
        row(&out, 4).map(|r| (r.0, r.1)),
        Some(("carrier".into(), "learner".into())),
        "{out}"
    );

    // A carrier's node never votes, whoever asks.
    let (ok, _, err) = text(&net.ctl(&lead, &lead, &["admin", "promote", "--node-id", "4"]));
    assert!(!ok);
    assert!(err.contains("NOT_A_VALIDATOR"), "{err}");
    // A registered carrier may not change membership at all.
    let (ok, _, err) = text(&net.ctl("carrier", &lead, &["admin", "remove", "--node-id", "2"]));
    assert!(!ok);
    assert!(err.contains("PermissionDenied"), "{err}");
    // A node the address book does not know.
    let mut bogus = add;
    bogus[3] = "99";
    let (ok, _, err) = text(&net.ctl(&lead, &lead, &bogus));
    assert!(!ok);
    assert!(err.contains("UNKNOWN_NODE"), "{err}");
    let (_, out, _) = text(&net.ctl(&lead, &lead, &["admin", "members"]));
    assert_eq!(
        (1..=3)
            .filter(|id| row(&out, *id).is_some_and(|r| r.1 == "voter"))
            .count(),
        3,
        "{out}"
    );
    println!("{out}");
}
