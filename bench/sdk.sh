#!/usr/bin/env bash
# SDK benchmarks: Python and Node verifiers against the official packages on
# the same inputs, and the per-call cost of Python's `Client.receipt` against a
# plain `requests` POST to the same release server (temp SQLite file).
#
#   bench/sdk.sh [python|node|all]     (default: all)
#
# Builds the Python package with `maturin develop --release` into a virtualenv
# (SENDPROMPTLY_BENCH_VENV, default .venv-bench at the repo root, with stripe,
# standardwebhooks and requests from PyPI) and the Node module in release mode
# (`npm install` in bindings/node, whose dev dependencies are the npm
# `standardwebhooks` and `stripe`).
# Settings: BENCH_QUICK=1 (smoke sizes and debug builds), SENDPROMPTLY_BIN (prebuilt server),
# CARGO_TARGET_DIR, PYTHON.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n==== %s\n' "$*"; }
what="${1:-all}"
target="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target"
work="$(mktemp -d /tmp/sendpromptly-sdkbench.XXXXXX)"
server_pid=""
cleanup() {
    local status=$?
    [[ -n "$server_pid" ]] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "$what" == "python" || "$what" == "all" ]]; then
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
        | "$py" -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"
    port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    SENDPROMPTLY_API_RATE_LIMIT=0 "$SENDPROMPTLY_BIN" --database-url "$url" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

    step "Python"
    SENDPROMPTLY_BENCH_URL="http://127.0.0.1:$port" SENDPROMPTLY_BENCH_API_KEY="$key" "$py" bench/sdk_python.py
fi

if [[ "$what" == "node" || "$what" == "all" ]]; then
    profile=release
    [[ "${BENCH_QUICK:-}" == "1" ]] && profile=debug
    step "Building the Node module ($profile)"
    (cd bindings/node && SENDPROMPTLY_NODE_PROFILE=$profile npm install --no-save --no-audit --no-fund --silent)
    step "Node"
    node bench/sdk_node.js
fi
