#!/usr/bin/env bash
# CI smoke of the benchmark harnesses: runs each with tiny sizes and debug
# builds so they keep working. It never asserts a timing; it fails only when a
# harness itself fails (a request refused, a verifier disagreeing, a script error).
#
#   bench/smoke.sh
#
# Settings: SENDPROMPTLY_BIN, CARGO_TARGET_DIR (as for bench/load.sh and bench/sdk.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export BENCH_QUICK=1 BENCH_RUNS=1 BENCH_DURATION=1 BENCH_CONNECTIONS=4 BENCH_BURST=200 BENCH_BURST_SECONDS=1 BENCH_BURST_CONNECTIONS=4
start=$SECONDS
cargo test --locked -p sendpromptly-core --bench core
BENCH_WINDOW_MS=500 BENCH_PROBES=20 BENCH_APPLIED=50 bench/detection.sh 200
bench/load.sh all
bench/tap.sh all
bench/sdk.sh all
bench/export.sh 2000
BENCH_EVENTS=2000 BENCH_QUERIES=1 bench/stats.sh
printf '\n==== benchmark smoke passed (%ss)\n' "$((SECONDS - start))"
