#!/usr/bin/env bash
# The reference figure issue 27 compares the ledger with: a 3-member etcd
# cluster on loopback (fsync on, its defaults), loaded by
# `etcdctl check perf --load=l` (unsigned 256-byte puts, no validation).
# Usage: testnet/etcd-compare.sh [DIR]. Installs Debian's etcd-server and
# etcd-client when missing. Prints etcdctl's verdict and the puts per second.
set -euo pipefail
dir="${1:-$(mktemp -d -t customs-etcd.XXXXXX)}"
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client
fi
# Debian's package may start a single-member etcd on 2379; ours use 23xx ports above it.
cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir/data"' EXIT
for i in 1 2 3; do
    mkdir -p "$dir/data/e$i"
    etcd --name "e$i" --data-dir "$dir/data/e$i" \
        --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
        --listen-client-urls "http://127.0.0.1:2370$i" --advertise-client-urls "http://127.0.0.1:2370$i" \
        --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token customs-compare \
        >"$dir/e$i.log" 2>&1 &
    pids+=($!)
done
endpoints="127.0.0.1:23701,127.0.0.1:23702,127.0.0.1:23703"
for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
done
# etcdctl draws a progress bar; the file keeps it, the terminal gets the verdicts.
ETCDCTL_API=3 etcdctl --endpoints "$endpoints" check perf --load=l >"$dir/etcd-perf.txt" 2>&1 || true
grep -E '^(PASS|FAIL)' "$dir/etcd-perf.txt"
