#!/usr/bin/env bash
# Builds the release binaries and runs every benchmark at a tiny size, which takes about
# 30 seconds. It only checks that the benchmarks still run: tiny figures mean nothing.
# Needs PostgreSQL on 127.0.0.1:5432 with trust authentication for the user postgres, and
# pgbench (from postgresql-client).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --bins
"$CARGO_TARGET_DIR/release/greenhouse-bench" --tiny all
