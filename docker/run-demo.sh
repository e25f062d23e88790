#!/usr/bin/env bash
# Build the FROM-scratch image, bring the test network up in containers on a
# private network (gRPC over TLS with the network's own CA), run the demo
# against it, and tear it down.
# Exits 0 with a clear message when no Docker engine is available.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/customs-ledger/target}"
if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    echo "docker/run-demo.sh: no Docker engine available; skipping the container demo"
    exit 0
fi
compose="docker compose"
$compose version >/dev/null 2>&1 || compose="docker-compose"
cd "$root"
profile="${CUSTOMS_PROFILE:-debug}"
if [ "$profile" = release ]; then cargo build --release --locked -p node -p cli; else cargo build --locked --workspace --all-targets; fi  # same feature set as the tests: RocksDB is built once
bin="$CARGO_TARGET_DIR/$profile"

# Root filesystem: the binaries and every shared library they link.
rootfs="$root/docker/rootfs"
rm -rf "$rootfs"; mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp" "$rootfs/net"
cp "$bin/customs-node" "$bin/customsctl" "$rootfs/usr/local/bin/"
for lib in $(ldd "$bin/customs-node" "$bin/customsctl" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
    mkdir -p "$rootfs$(dirname "$lib")"; cp -L "$lib" "$rootfs$lib"
done
docker build -q -t customs-ledger:local "$root/docker"

work="$(mktemp -d -t customs-docker.XXXXXX)"
"$bin/customsctl" genesis --spec "$root/docker/network.toml" --out "$work/net"
# Containers run as root (uid 0, the image has no users), so the 0600 key files stay readable.
services=""
i=0
for p in de-customs fr-customs pl-customs pl-exporter broker carrier auditor; do
    i=$((i + 1))
    port=$((8100 + i))
    services+="
  $p:
    image: customs-ledger:local
    command: [\"--config\", \"/net/$p/node.toml\"]
    volumes: [\"$work/net:/net\"]
    networks: { customs: { ipv4_address: 172.28.0.$((10 + i)) } }
    ports: [\"127.0.0.1:$port:$port\"]"
done
# Compose file format 2.4: understood by the Debian docker-compose (v1) and by Compose v2.
cat >"$work/compose.yml" <<YML
version: "2.4"
services:$services
networks:
  customs:
    driver: bridge
    ipam: { config: [ { subnet: 172.28.0.0/16 } ] }
YML
cleanup() { [ -n "${CUSTOMS_DOCKER_KEEP:-}" ] && return; $compose -p customs-ledger -f "$work/compose.yml" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
$compose -p customs-ledger -f "$work/compose.yml" up -d
echo "waiting for the containers to serve..."
i=0
for p in de-customs fr-customs pl-customs pl-exporter broker carrier auditor; do
    i=$((i + 1))
    url="https://172.28.0.$((10 + i)):$((8100 + i))"
    for _ in $(seq 1 60); do
        if "$bin/customsctl" status --node "$url" --ca "$work/net/tls/ca.crt" --as "$p" --keys "$work/net/keys" --genesis "$work/net/genesis.json" >/dev/null 2>&1; then break; fi
        sleep 1
    done
done
"$bin/customsctl" demo --net "$work/net"
echo "container demo passed"
