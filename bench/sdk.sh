#!/usr/bin/env bash
# SDK benchmarks: Python and Node verifiers against the official packages on
# the same inputs, and the per-call cost of Python's `Client.receipt` against a
# plain `requests` POST to the same release server (temp SQLite file).
#
#   bench/sdk.sh [python|node|loop|all]     (default: all)
#
# `loop` puts the SDKs in the loop against one release server (rate limit
# off): wrk sending the same receipts (each with its own Idempotency-Key) at
# 32 and 256 connections, then Python `Client.receipt` from 32 threads,
# the Rust client from 256 tasks and from 32 threads blocking per call
# (sendpromptly-client/examples/receipt_loop.rs),
# `AsyncClient` from 256 tasks, a CPU-bound Python thread's progress while 32
# threads wait on receipts (the GIL released while waiting), Node with 256
# concurrent promises, and background mode's enqueue cost per signal and
# memory with a full queue (bench/sdk_loop.py, bench/sdk_node_loop.js).
# Prints each SDK's rate and its ratio to wrk's at the same concurrency.
#
# Builds the Python package with `maturin develop --release` into a virtualenv
# (SENDPROMPTLY_BENCH_VENV, default .venv-bench at the repo root, with stripe,
# standardwebhooks and requests from PyPI) and the Node module in release mode
# (`npm install` in bindings/node, whose dev dependencies are the npm
# `standardwebhooks` and `stripe`).
# Settings: BENCH_QUICK=1 (smoke sizes and debug builds), SENDPROMPTLY_BIN (prebuilt server),
# CARGO_TARGET_DIR, PYTHON, BENCH_PIN=1 (`loop` only: the server on CPU 0 and
# every load generator — wrk, Python, Node — on CPU 1, so that the client's
# own CPU does not come out of the server's; needs `taskset` and 2 CPUs).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n==== %s\n' "$*"; }
what="${1:-all}"
target="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target"
work="$(mktemp -d /tmp/sendpromptly-sdkbench.XXXXXX)"
# BENCH_PIN=1: the server on CPU 0, the load generators on CPU 1.
server_pin=() client_pin=()
if [[ "${BENCH_PIN:-}" == "1" ]]; then
    command -v taskset >/dev/null || { echo "BENCH_PIN=1 needs taskset (util-linux)" >&2; exit 2; }
    server_pin=(taskset -c 0) client_pin=(taskset -c 1)
fi
server_pid=""
cleanup() {
    local status=$?
    [[ -n "$server_pid" ]] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python_ready=""
build_python() {
    [[ -n "$python_ready" ]] && return
    python_ready=1
    venv="${SENDPROMPTLY_BENCH_VENV:-$root/.venv-bench}"
    py="$venv/bin/python"
    if [[ ! -x "$py" ]]; then
        step "Creating the virtualenv $venv"
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
    "$py" -m pip install --quiet --disable-pip-version-check \
        "maturin>=1.9,<2" "stripe>=10" "standardwebhooks>=1.0" "requests>=2"
    if [[ "${BENCH_QUICK:-}" == "1" ]]; then
        step "Building the Python package (debug: a smoke run measures nothing)"
        (cd bindings/python && maturin develop --quiet)
    else
        step "Building the Python package (maturin develop --release)"
        (cd bindings/python && maturin develop --release --quiet)
    fi
}

start_server() {
    [[ -n "$server_pid" ]] && return
    if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
        if [[ "${BENCH_QUICK:-}" == "1" ]]; then
            cargo build --locked -p sendpromptly-server --bin sendpromptly
            SENDPROMPTLY_BIN="$target/debug/sendpromptly"
        else
            step "Building the release server"
            cargo build --release --locked -p sendpromptly-server --bin sendpromptly
            SENDPROMPTLY_BIN="$target/release/sendpromptly"
        fi
    fi
    url="sqlite://$work/sdk.db"
    key="$("$SENDPROMPTLY_BIN" --database-url "$url" project create --name sdk-bench --json \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    SENDPROMPTLY_API_RATE_LIMIT=0 "${server_pin[@]}" "$SENDPROMPTLY_BIN" --database-url "$url" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}

node_ready=""
build_node() {
    [[ -n "$node_ready" ]] && return
    node_ready=1
    local profile=release
    [[ "${BENCH_QUICK:-}" == "1" ]] && profile=debug
    step "Building the Node module ($profile)"
    (cd bindings/node && SENDPROMPTLY_NODE_PROFILE=$profile npm install --no-save --no-audit --no-fund --silent)
}

if [[ "$what" == "python" || "$what" == "all" ]]; then
    build_python
    start_server
    step "Python"
    SENDPROMPTLY_BENCH_URL="http://127.0.0.1:$port" SENDPROMPTLY_BENCH_API_KEY="$key" "$py" bench/sdk_python.py
fi

if [[ "$what" == "node" || "$what" == "all" ]]; then
    build_node
    step "Node"
    node bench/sdk_node.js
fi

if [[ "$what" == "loop" || "$what" == "all" ]]; then
    build_python
    build_node
    start_server
    # shellcheck source=lib.sh
    source "$root/bench/lib.sh"
    ensure_wrk
    base="http://127.0.0.1:$port"
    duration="${BENCH_DURATION:-10}"
    threads="${BENCH_THREADS:-32}" tasks="${BENCH_TASKS:-256}"
    if [[ "${BENCH_QUICK:-}" == "1" ]]; then
        duration=1 threads=4 tasks=8
    fi
    export SENDPROMPTLY_BENCH_URL="$base" SENDPROMPTLY_BENCH_API_KEY="$key" BENCH_DURATION="$duration" \
        BENCH_THREADS="$threads" BENCH_TASKS="$tasks" BENCH_PROMISES="$tasks"
    wrk_at() {
        "${client_pin[@]}" wrk -t1 -c"$1" -d"${duration}s" -s bench/receipt.lua "$base" -- "w$1_$RANDOM" "$key" key >"$work/w.txt"
        [[ "$(errors "$work/w.txt")" == "0" ]] || { echo "error: non-2xx from wrk:" >&2; cat "$work/w.txt" >&2; exit 1; }
        rps "$work/w.txt"
    }
    value() { awk -F= -v k="$1" '$1 == k {print $2}' "$2"; }
    step "SDK in the loop: wrk, the same receipts (Idempotency-Key each)"
    wrk_low="$(wrk_at "$threads")"; echo "wrk $threads connections: $wrk_low req/s"
    step "Python: Client.receipt from $threads threads, AsyncClient from $tasks tasks, the GIL, background"
    "${client_pin[@]}" "$py" bench/sdk_loop.py threads async gil | tee "$work/py.txt"
    "${client_pin[@]}" "$py" bench/sdk_loop.py background | tee -a "$work/py.txt"
    wrk_high="$(wrk_at "$tasks")"; echo "wrk $tasks connections: $wrk_high req/s"
    step "Rust: Client::receipt from $tasks tasks and from $threads threads blocking per call"
    if [[ "${BENCH_QUICK:-}" == "1" ]]; then
        cargo build --locked -p sendpromptly-client --example receipt_loop
        receipt_loop="$target/debug/examples/receipt_loop"
    else
        cargo build --release --locked -p sendpromptly-client --example receipt_loop
        receipt_loop="$target/release/examples/receipt_loop"
    fi
    for mode in "tasks $tasks" "threads $threads"; do
        # shellcheck disable=SC2086
        SENDPROMPTLY_URL="$base" SENDPROMPTLY_API_KEY="$key" "${client_pin[@]}" "$receipt_loop" $mode "$duration" | tee -a "$work/rust.txt"
    done
    step "Node: $tasks concurrent promises, background"
    "${client_pin[@]}" node --expose-gc bench/sdk_node_loop.js | tee "$work/node.txt"
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / (b > 0 ? b : 1)}'; }
    echo "---- SDK in the loop (same server, same receipts; ratio to wrk at the same concurrency)"
    echo "Python Client.receipt, $threads threads: $(value python_threads_rps "$work/py.txt") req/s = $(ratio "$(value python_threads_rps "$work/py.txt")" "$wrk_low") x wrk"
    echo "Python AsyncClient, $tasks tasks:        $(value python_async_rps "$work/py.txt") req/s = $(ratio "$(value python_async_rps "$work/py.txt")" "$wrk_high") x wrk"
    echo "Node, $tasks promises:                   $(value node_promises_rps "$work/node.txt") req/s = $(ratio "$(value node_promises_rps "$work/node.txt")" "$wrk_high") x wrk"
    echo "Rust, $tasks tasks:                      $(value rust_tasks_rps "$work/rust.txt") req/s = $(ratio "$(value rust_tasks_rps "$work/rust.txt")" "$wrk_high") x wrk"
    echo "Rust, $threads threads blocking per call:  $(value rust_threads_rps "$work/rust.txt") req/s = $(ratio "$(value rust_threads_rps "$work/rust.txt")" "$wrk_low") x wrk"
    echo "GIL: a spinning thread kept $(value gil_spin_share "$work/py.txt") of its solo speed while $threads threads waited on receipts (holding the GIL would leave ~$(value gil_fair_share_if_held "$work/py.txt"))"
    echo "background enqueue: Python $(value bg_enqueue_us "$work/py.txt") us, Node $(value node_bg_enqueue_us "$work/node.txt") us per signal"
    echo "background memory, full queue: Python $(value bg_rss_full_queue_kib "$work/py.txt") KiB ($(value bg_bytes_per_queued_signal "$work/py.txt") bytes per signal), past capacity +$(value bg_rss_growth_past_capacity_kib "$work/py.txt") KiB; Node $(value node_bg_rss_full_queue_kib "$work/node.txt") KiB ($(value node_bg_bytes_per_queued_signal "$work/node.txt") bytes per signal), past capacity +$(value node_bg_rss_growth_past_capacity_kib "$work/node.txt") KiB"
    echo "client CPU per call: Python threads $(value python_threads_cpu_us_per_call "$work/py.txt") us, async $(value python_async_cpu_us_per_call "$work/py.txt") us"
fi
