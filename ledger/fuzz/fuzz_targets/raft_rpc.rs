//! Raft messages between nodes (`consensus::RaftRpc::decode` and
//! `RaftRpcReply::decode`, what the node's transport does with every
//! request and reply a peer sends). `consensus` links RocksDB, so the
//! message types are mirrored here: the same openraft version, features and
//! type config, the same enums in the same variant order, and the batch in
//! the same field order, hence the same wire bytes. Each Raft entry's batch
//! is then decoded on its own as the state machine sees it.
#![no_main]

use ledger_fuzz::raft::{Batch, RaftRpc, RaftRpcReply, MAX_RPC_BYTES};
use ledger_fuzz::strict;
use libfuzzer_sys::fuzz_target;
use openraft::EntryPayload;

fuzz_target!(|data: &[u8]| {
    if let Some(RaftRpc::AppendEntries(req)) = strict::<RaftRpc>(data, MAX_RPC_BYTES) {
        for e in &req.entries {
            match &e.payload {
                EntryPayload::Normal(batch) => {
                    let bytes = ledger_fuzz::ledger::codec::encode(batch).expect("encodes");
                    assert_eq!(strict::<Batch>(&bytes, MAX_RPC_BYTES).as_ref(), Some(batch));
                }
                EntryPayload::Membership(m) => {
                    let _ = m.to_string();
                    let _ = m.voter_ids().count();
                }
                EntryPayload::Blank => {}
            }
        }
    }
    let _ = strict::<RaftRpcReply>(data, MAX_RPC_BYTES);
});
