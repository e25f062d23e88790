#!/usr/bin/env bash
# The whole test suite: setup, format and lint gates, then every test of
# the workspace. The build cache lives outside the clone so CI reuses it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/customs-ledger/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

"$root/testnet/setup.sh"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    # (the workspace has no doctests, which nextest would not run)
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
echo "== container demo (FROM-scratch image, compose network; skipped with a message when no Docker engine)"
"$root/docker/run-demo.sh"
echo "== all tests passed"
