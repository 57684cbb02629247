#!/usr/bin/env bash
# Runs every benchmark at the sizes and durations docs/BENCHMARKS.md reports. It takes about
# two hours on two cores; each command can also be run alone (see docs/BENCHMARKS.md).
# Results are appended as JSON lines to bench-results.jsonl in the current directory.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --bins
bench="$CARGO_TARGET_DIR/release/greenhouse-bench"
results="$PWD/bench-results.jsonl"

"$bench" --results "$results" sweep --candidates 10000,50000,100000 --modes single,naive,default
"$bench" --results "$results" sweep --candidates 50000 --modes default --backends sqlite,postgres \
    --rate-limit 1000 --latency-ms 0 --latency-per-record-us 0
"$bench" --results "$results" webhooks
"$bench" --results "$results" db-limit
"$bench" --results "$results" soak --minutes 30 --plot docs/soak-rss.png --csv docs/soak-rss.csv
