#!/usr/bin/env bash
# Runs the webhook payload fuzz target for SECONDS (default 60), seeding its corpus from the
# webhook fixtures. Needs cargo-fuzz (`cargo install cargo-fuzz`). The stable compiler is
# allowed nightly-only sanitizer flags through RUSTC_BOOTSTRAP=1.
#
#   fuzz/run.sh 120
#
# A crash leaves its input in fuzz/artifacts/webhook_payload/ and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed; install it with: cargo install cargo-fuzz" >&2
    exit 2
fi

seconds="${1:-60}"
target=webhook_payload
corpus="corpus/$target"

# A build directory of its own: fuzz builds use different compiler flags, so sharing the
# main one would rebuild everything each time either side builds.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/greenhouse-sync/fuzz-target}"
export RUSTC_BOOTSTRAP=1

# Build against the versions the server itself is built and tested with; cargo adds only
# libfuzzer-sys and its dependencies.
cp ../Cargo.lock Cargo.lock

mkdir -p "$corpus"
cp ../tests/fixtures/greenhouse/webhooks/*.json "$corpus/"

cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" \
    -max_len=65536 \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -print_final_stats=1
