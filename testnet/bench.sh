#!/usr/bin/env bash
# Throughput benchmark on this machine: 3 customs validators + 1 learner,
# fsync on. Usage: testnet/bench.sh [SECONDS=60] [CONCURRENCY=384] [DIR]
# (384 in flight: with 256 the client itself capped the rate near
# 256 / median latency, about 3,200 tx/s, with CPU to spare; session 8)
# (BENCH_WORKLOAD=declarations for the first-events-only mix; default lifecycle;
# BENCH_BATCH=N transactions per SubmitBatch call, default 32, 1 = one Submit each;
# BENCH_NODE_SET='key=value ...' passes more config overrides to every node;
# BENCH_KEEP=1 keeps the nodes' data in DIR/net;
# BENCH_BIN_DIR=D runs the customs-node and customsctl in D instead of building)
# Prints committed tx/s, latency percentiles, peak RSS per node, disk growth
# per committed transaction and the machine's fsync latency; writes
# DIR/bench.json and DIR/bench.svg.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/customs-ledger/target}"
secs="${1:-60}"; conc="${2:-384}"
dir="${3:-$(mktemp -d -t customs-bench.XXXXXX)}"
profile="${CUSTOMS_PROFILE:-release}"
export CUSTOMS_PROFILE="$profile"
"$root/testnet/setup.sh"
# Whole workspace, all targets, in both profiles: the same feature set as the
# tests (and testnet/faults.sh), so each profile compiles RocksDB once.
release=(); [ "$profile" = release ] && release=(--release)
if [ -n "${BENCH_BIN_DIR:-}" ]; then
    # Binaries built earlier (another commit, copied aside), so two builds
    # can be compared in the same hour without rebuilding between runs.
    bin="$(cd "$BENCH_BIN_DIR" && pwd)"
    for b in customs-node customsctl; do
        [ -x "$bin/$b" ] || { echo "error: BENCH_BIN_DIR=$BENCH_BIN_DIR has no executable $b" >&2; exit 1; }
    done
else
    cargo build "${release[@]}" --locked --workspace --all-targets
    bin="$CARGO_TARGET_DIR/$profile"
fi
spec="$root/testnet/bench-network.toml"
# Only the 4 benchmark nodes run; the exporter and carrier are parties without nodes (runs_node = false).
mkdir -p "$dir"
# BENCH_SEMANTIC=none: a chain without the distilled HS model (lexical classification only).
semantic_arg=()
if [ -n "${BENCH_SEMANTIC:-}" ]; then semantic_arg=(--semantic "$BENCH_SEMANTIC"); fi
[ -f "$root/.cache/hs-minilm.sem" ] || [ -n "${BENCH_SEMANTIC:-}" ] || "$bin/customsctl" hs distil --if-stale
[ -f "$dir/net/genesis.json" ] || "$bin/customsctl" genesis --spec "$spec" --out "$dir/net" "${semantic_arg[@]}"
set_args=()
for kv in ${BENCH_NODE_SET:-}; do set_args+=(--set "$kv"); done
pids=()
# A 60 s run leaves 5-6 GB of node data: it is deleted when the nodes have
# stopped, unless BENCH_KEEP=1 (the report, chart and logs stay).
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
      [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$dir/net"' EXIT
for p in de-customs fr-customs pl-customs broker; do
    (cd "$dir/net/$p" && exec "$bin/customs-node" --config node.toml --set 'batch.max_txs=2048' "${set_args[@]}" >"$dir/$p.out" 2>"$dir/$p.log") &
    pids+=($!)
done
for p in de-customs fr-customs pl-customs broker; do
    for _ in $(seq 1 200); do grep -q READY "$dir/$p.out" 2>/dev/null && break; sleep 0.1; done
done
fsync_ms="$(python3 - "$dir" <<'PY'
import os, sys, time
p = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
ts = []
for i in range(200):
    os.write(fd, b"x" * 4096)
    t = time.perf_counter(); os.fsync(fd); ts.append(time.perf_counter() - t)
os.close(fd); os.unlink(p)
ts.sort()
print(f"{ts[len(ts)//2]*1000:.2f} ms median, {ts[int(len(ts)*0.99)]*1000:.2f} ms p99")
PY
)"
echo "fsync latency on this disk: $fsync_ms"
du0="$(du -sb "$dir/net" | cut -f1)"
# CPU seconds of each node (user + system) before and after the run.
cpu_ticks() { for pid in "${pids[@]}"; do awk '{print $14 + $15}' /proc/"$pid"/stat 2>/dev/null || echo 0; done | paste -sd' '; }
cpu0="$(cpu_ticks)"
"$bin/customsctl" bench --net "$dir/net" --as broker \
    --nodes http://127.0.0.1:8201,http://127.0.0.1:8202,http://127.0.0.1:8203,http://127.0.0.1:8204 \
    --workload "${BENCH_WORKLOAD:-lifecycle}" \
    --batch "${BENCH_BATCH:-32}" --duration "$secs" --concurrency "$conc" --json "$dir/bench.json" --svg "$dir/bench.svg"
du1="$(du -sb "$dir/net" | cut -f1)"
cpu1="$(cpu_ticks)"
committed="$(python3 -c "import json;print(json.load(open('$dir/bench.json'))['committed'])")"
for i in "${!pids[@]}"; do
    p=(de-customs fr-customs pl-customs broker); pid="${pids[$i]}"
    hwm="$(grep VmHWM /proc/"$pid"/status 2>/dev/null | awk '{print $2/1024 " MB"}')"
    echo "peak RSS ${p[$i]}: ${hwm:-n/a}"
done
python3 -c "print(f'disk growth: {($du1-$du0)/max($committed,1):.0f} bytes per committed transaction (4 nodes)')"
python3 - "$cpu0" "$cpu1" "$committed" "$(getconf CLK_TCK)" <<'PY'
import sys
a, b = [list(map(int, x.split())) for x in sys.argv[1:3]]
n, hz = max(int(sys.argv[3]), 1), int(sys.argv[4])
for name, x, y in zip(["de-customs", "fr-customs", "pl-customs", "broker"], a, b):
    print(f"CPU {name}: {(y - x) / hz:.1f} s, {(y - x) / hz / n * 1e6:.0f} µs per committed transaction")
PY
# Content-outcome divergences: customs nodes that recomputed an outcome and
# disagreed with the leader's (0 expected: ADR 0014).
for i in 1 2 3 4; do
    p=(de-customs fr-customs pl-customs broker); port=$((9200 + i))
    d="$(curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null | awk '/^customs_divergences_total/ {print $2}')"
    echo "divergences ${p[$((i - 1))]}: ${d:-n/a}"
done
echo "report: $dir/bench.json, chart: $dir/bench.svg"
