#!/usr/bin/env bash
# Fuzz every decoder of untrusted bytes: runs each cargo-fuzz target of
# ledger/fuzz for SECONDS (default 60), then minimises its corpus.
#
#   testnet/fuzz.sh [SECONDS] [TARGET...]
#
# FUZZ_SANITIZER=none skips AddressSanitizer (coverage-guided only; use it
# when ASAN does not build or link). The fuzz crate is its own workspace and
# builds ledger without its RocksDB feature, in its own target directory, so
# it never compiles RocksDB nor touches the main build cache. Crashes land in
# ledger/fuzz/artifacts/<target>/; the working corpus in ledger/fuzz/corpus/
# (both ignored by git); the committed seeds in ledger/fuzz/seeds/ come from
# `cargo run --example seeds` in ledger/fuzz.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-60}"
shift || true
# cargo-fuzz passes nightly-only flags (-Z sanitizer, sanitizer coverage);
# the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/customs-ledger/target-fuzz}"
sanitizer="${FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$root/ledger"
if [ ! -d fuzz/seeds ]; then
    echo "== generating seeds"
    (cd fuzz && cargo run --release --example seeds)
fi
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${targets[*]} (sanitizer: $sanitizer)"
cargo fuzz build -s "$sanitizer" --debug-assertions

failed=()
for t in "${targets[@]}"; do
    echo "== $t for ${secs}s"
    mkdir -p "fuzz/corpus/$t"
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
    if ! cargo fuzz run -s "$sanitizer" --debug-assertions "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$t")
        continue
    fi
    cargo fuzz cmin -s "$sanitizer" --debug-assertions "$t" "fuzz/corpus/$t" >/dev/null 2>&1 ||
        echo "   (corpus minimisation of $t failed; corpus left as is)"
    echo "   corpus: $(find "fuzz/corpus/$t" -type f | wc -l) inputs"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]} (reproducers in ledger/fuzz/artifacts/)"
    exit 1
fi
echo "all fuzz targets ran ${secs}s without a finding"
