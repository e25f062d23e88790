//! `customsctl admin`: the Admin service's membership calls (add a learner,
//! promote a caught-up learner, remove a node) and the cluster as the node
//! sees it. Each call is signed by the operator's party for the node
//! addressed; the node decides whether that party may make it (only customs
//! validators' operators, only for nodes the chain config registers).

use crate::client::status_error;
use crate::Conn;
use anyhow::Result;
use clap::Subcommand;

/// One membership action.
#[derive(Subcommand, Debug)]
pub(crate) enum AdminCmd {
    /// Add a registered party's node as a non-voting learner.
    AddLearner {
        /// Raft node id for it (from the network's address book).
        #[arg(long)]
        node_id: u64,
        /// Party operating it.
        #[arg(long)]
        party: String,
        /// Its libp2p address, e.g. /ip4/127.0.0.1/tcp/9104.
        #[arg(long)]
        address: String,
    },
    /// Promote a caught-up learner to a voter (customs validators only).
    Promote {
        /// Raft node id.
        #[arg(long)]
        node_id: u64,
    },
    /// Remove a node (learner or voter) from the cluster.
    Remove {
        /// Raft node id.
        #[arg(long)]
        node_id: u64,
    },
    /// The cluster's members as the node sees them.
    Members,
}

fn print_members(members: &[proto::v1::MemberInfo]) {
    println!("{:>7}  {:<16} {:<6} address", "node id", "party", "role");
    for m in members {
        println!(
            "{:>7}  {:<16} {:<6} {}",
            m.node_id,
            m.party,
            if m.voter { "voter" } else { "learner" },
            m.address
        );
    }
}

/// Run one admin command against the node of `conn`.
pub(crate) async fn run(conn: &Conn, cmd: AdminCmd) -> Result<()> {
    let mut c = conn.client().await?;
    let r = match cmd {
        AdminCmd::AddLearner {
            node_id,
            party,
            address,
        } => {
            let req = c.signed(
                "/customs.v1.Admin/AddLearner",
                proto::v1::AddLearnerRequest {
                    node_id,
                    party,
                    address,
                },
            );
            c.admin.add_learner(req).await
        }
        AdminCmd::Promote { node_id } => {
            let req = c.signed(
                "/customs.v1.Admin/PromoteVoter",
                proto::v1::PromoteVoterRequest { node_id },
            );
            c.admin.promote_voter(req).await
        }
        AdminCmd::Remove { node_id } => {
            let req = c.signed(
                "/customs.v1.Admin/RemoveNode",
                proto::v1::RemoveNodeRequest { node_id },
            );
            c.admin.remove_node(req).await
        }
        AdminCmd::Members => {
            let s = c.status().await?;
            println!(
                "node of {} ({}, term {}), leader {} (node {}), height {}",
                s.node_party, s.raft_role, s.term, s.leader_party, s.leader_id, s.height
            );
            print_members(&s.members);
            return Ok(());
        }
    };
    let r = r.map_err(status_error)?.into_inner();
    println!("membership committed at log index {}", r.log_index);
    print_members(&r.members);
    Ok(())
}
