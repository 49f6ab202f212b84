#!/usr/bin/env bash
# Tests of the Python package `sendpromptly` (bindings/python).
#
# Creates (or reuses) a virtualenv, installs maturin and the test
# dependencies from PyPI (pytest, stripe, standardwebhooks, mypy and the
# frameworks of sendpromptly.integrations: flask, fastapi + httpx, django,
# celery[redis], rq; opentelemetry-sdk and opentelemetry-proto for the
# tracing tests), builds and installs the package from source, builds the
# server binary, starts a Redis (Debian's redis-server, installed when missing)
# on a free loopback port for the Celery and RQ tests, and runs pytest (against a
# real `sendpromptly serve` on a loopback port) and mypy's stubtest. Needs
# Python >= 3.9, a Rust toolchain and redis-server (or apt-get).
#
# Settings (environment):
#   SENDPROMPTLY_PYTHON_VENV  the virtualenv (default .venv-python at the repo root)
#   PYTHON                    the interpreter that creates it (default python3)
#   CARGO_TARGET_DIR          cargo's target directory (default target/)
#   SENDPROMPTLY_BIN          a prebuilt server binary (default: built here)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n==== %s\n' "$*"; }

venv="${SENDPROMPTLY_PYTHON_VENV:-$root/.venv-python}"
py="$venv/bin/python"
if [[ ! -x "$py" ]]; then
    step "Creating the virtualenv $venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"

step "Installing maturin and the test dependencies"
"$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$py" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.9,<2" "pytest>=8" "stripe>=10" "standardwebhooks>=1.0" "flask>=3" "mypy>=1.10" \
    "fastapi>=0.110" "httpx>=0.27" "uvicorn>=0.29" "django>=4.2" "celery[redis]>=5.3" "rq>=1.16" \
    "opentelemetry-sdk>=1.20" "opentelemetry-proto>=1.20"

target="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target"

step "Building and installing the sendpromptly package (maturin develop)"
(cd bindings/python && maturin develop --quiet)

if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
    step "Building the server binary"
    cargo build --locked --bin sendpromptly
    export SENDPROMPTLY_BIN="$target/debug/sendpromptly"
fi

step "Starting Redis for the Celery and RQ tests"
if ! command -v redis-server >/dev/null; then
    apt-get install -y redis-server >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y redis-server >/dev/null; }
fi
redis_dir="$(mktemp -d)"
redis_port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save "" --appendonly no \
    --logfile "$redis_dir/redis.log" &
redis_pid=$!
stop_redis() {
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    rm -rf "$redis_dir"
}
trap stop_redis EXIT
for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
export SENDPROMPTLY_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"

step "pytest"
status=0
(cd bindings/python && "$py" -m pytest -p no:cacheprovider tests) || status=$?
if [[ $status -eq 5 ]]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
elif [[ $status -ne 0 ]]; then
    exit "$status"
fi

step "mypy stubtest"
"$py" -m mypy.stubtest sendpromptly

step "Python tests passed"
