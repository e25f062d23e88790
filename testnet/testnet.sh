#!/usr/bin/env bash
# Local test network of real processes on 127.0.0.1.
#   testnet/testnet.sh up DIR [SPEC]   generate keys+genesis (once) and start every node
#   testnet/testnet.sh status DIR      show each node's status
#   testnet/testnet.sh down DIR        stop every node (SIGTERM, then SIGKILL after 10 s)
# Data and logs go under DIR.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/customs-ledger/target}"
bin="${CUSTOMS_BIN:-$CARGO_TARGET_DIR/${CUSTOMS_PROFILE:-debug}}"
cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 up|status|down DIR [SPEC]" >&2; exit 2; }
mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
spec="${3:-$root/testnet/network.toml}"

parties() { grep -E '^id *= *"' "$spec" | sed -E 's/.*"(.*)"/\1/'; }
grpc_port() { awk -v p="$1" '/^id *=/{gsub(/"/,"",$3); cur=$3} /^grpc_port/{ if (cur==p) print $3 }' "$spec"; }

case "$cmd" in
up)
    if [ ! -f "$dir/net/genesis.json" ]; then
        echo "generating keys and genesis in $dir/net"
        "$bin/customsctl" genesis --spec "$spec" --out "$dir/net"
    fi
    for p in $(parties); do
        if [ -f "$dir/$p.pid" ] && kill -0 "$(cat "$dir/$p.pid")" 2>/dev/null; then
            echo "$p already running"; continue
        fi
        # exec: the recorded pid is the node's own, so `down` signals the node.
        (cd "$dir/net/$p" && exec nohup "$bin/customs-node" --config node.toml >"$dir/$p.log" 2>&1) &
        echo $! >"$dir/$p.pid"
        echo "started $p (pid $(cat "$dir/$p.pid"), log $dir/$p.log)"
    done
    echo "waiting for every node to answer..."
    for p in $(parties); do
        for _ in $(seq 1 100); do
            grep -q '^READY' "$dir/$p.log" 2>/dev/null && break
            if ! kill -0 "$(cat "$dir/$p.pid")" 2>/dev/null; then echo "$p died:"; tail -20 "$dir/$p.log"; exit 1; fi
            sleep 0.1
        done
        grep -q '^READY' "$dir/$p.log" || { echo "$p did not start:"; tail -20 "$dir/$p.log"; exit 1; }
    done
    echo "network up"
    ;;
status)
    for p in $(parties); do
        port="$(grpc_port "$p")"
        echo "== $p (127.0.0.1:$port)"
        "$bin/customsctl" status --node "http://127.0.0.1:$port" --as "$p" --keys "$dir/net/keys" --genesis "$dir/net/genesis.json" 2>&1 | sed 's/^/   /' || true
    done
    ;;
down)
    for p in $(parties); do
        [ -f "$dir/$p.pid" ] || continue
        pid="$(cat "$dir/$p.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && { echo "$p did not stop; killing"; kill -KILL "$pid"; }
            echo "stopped $p"
        fi
        rm -f "$dir/$p.pid"
    done
    ;;
*) echo "usage: $0 up|status|down DIR [SPEC]" >&2; exit 2 ;;
esac
