#!/usr/bin/env bash
# The main job: build the binaries, start the standard test network
# (3 customs validators, exporter, broker, carrier, auditor) as local
# processes on 127.0.0.1, run the demo scenario, and stop the network.
#   testnet/demo.sh [DIR]     (data and logs under DIR; default: a fresh temp dir)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/customs-ledger/target}"
"$root/testnet/setup.sh"
# One build profile for tests and the demo (dependencies are optimised in it),
# so RocksDB is compiled once; CUSTOMS_PROFILE=release uses a release build.
profile="${CUSTOMS_PROFILE:-debug}"
echo "== building binaries ($profile; the first build compiles RocksDB: 20+ min on 2 cores)"
if [ "$profile" = release ]; then cargo build --release --locked -p node -p cli; else cargo build --locked --workspace --all-targets; fi  # same feature set as the tests: RocksDB is built once
export CUSTOMS_PROFILE="$profile"
echo "== HS semantic table (all-MiniLM-L6-v2 distilled once; skipped when up to date)"
"$CARGO_TARGET_DIR/$profile/customsctl" hs distil --if-stale
dir="${1:-$(mktemp -d -t customs-demo.XXXXXX)}"
trap '"$root/testnet/testnet.sh" down "$dir" || true' EXIT
"$root/testnet/testnet.sh" up "$dir"
"$CARGO_TARGET_DIR/$profile/customsctl" demo --net "$dir/net"
"$root/testnet/testnet.sh" status "$dir"
echo "== logs and data are in $dir"
