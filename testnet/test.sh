#!/usr/bin/env bash
# The whole test suite: setup, format and lint gates, then every test of
# the workspace. The build cache lives outside the clone so CI reuses it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/customs-ledger/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

"$root/testnet/setup.sh"

echo "== test data lives in the clone (testdata/): no file may refer to a data folder beside it"
pattern='\.\./shared|shared/data'
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    hits="$(git -C "$root" grep -nE "$pattern" -- . ':!testnet/test.sh' || true)"
else
    hits="$(grep -rnE "$pattern" --exclude-dir=.git --exclude-dir=target --exclude=test.sh "$root" || true)"
fi
if [ -n "$hits" ]; then
    echo "$hits"
    echo "error: the files above read data from outside the repository; copy it under testdata/" >&2
    exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== HS semantic table (all-MiniLM-L6-v2 distilled once; skipped when up to date)"
cargo build --locked --workspace --all-targets
"$CARGO_TARGET_DIR/debug/customsctl" hs distil --if-stale
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
