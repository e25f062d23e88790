#!/usr/bin/env bash
# The long fault-schedule run: builds the release node and CLI, then runs
# SCHEDULES seeded schedules (default 100) from SEED_BASE (default 1000)
# against real node processes, reporting every slow failover instead of
# stopping at the first. Usage: testnet/faults.sh [SCHEDULES] [SEED_BASE]
# Prints per-schedule results and a failover summary; node logs of slow
# failovers are copied to $TMPDIR/customs-fault-logs/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# The same target directory as bench.sh and the tests (release builds go to its release/).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/customs-ledger/target}"
"$root/testnet/setup.sh" >/dev/null
# The test starts the customs-node binary next to customsctl: build both
# first. Whole workspace, all targets, as testnet/bench.sh does: selecting
# `-p node -p cli` here resolves other features for RocksDB's build
# dependencies than the test build below, and RocksDB compiles twice.
cargo build --release --locked --workspace --all-targets
FAULT_SCHEDULES="${1:-100}" FAULT_SEED_BASE="${2:-1000}" FAULT_CONTINUE=1 \
    cargo test --release --locked --workspace --test faults -- --nocapture
