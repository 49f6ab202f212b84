#!/usr/bin/env bash
# Runs every test of SendPromptly: the one test command of the README.
#
# It installs what the tests need on a fresh machine (a Python virtualenv
# with the official `stripe` and `standardwebhooks` packages for interop
# tests, Debian's postgresql, chromium and redis-server, npm packages,
# cargo-fuzz; the binding scripts add Ruby and Maven artifacts), then runs:
#   1. the Rust workspace tests (core, server, client, cross-crate e2e);
#   2. the PostgreSQL suites on a throwaway cluster (scripts/test-postgres.sh),
#      and the Stripe reconciler's requests against stripe-mock
#      (scripts/test-stripe-mock.sh);
#   3. the console's browser tests in headless Chromium (scripts/test-browser.sh);
#   4. the Python package's tests (scripts/test-python.sh);
#   5. the Node package's tests (scripts/test-node.sh);
#      then the uniffi bindings' tests (scripts/test-uniffi.sh: Kotlin/JVM and
#      Ruby against a real server, their examples, the Swift drift check);
#   6. the examples, the one-command demo and the docs' commands
#      (scripts/test-examples.sh, test-demo.sh, test-docs.sh);
#   7. schemathesis against the live OpenAPI document (scripts/test-schemathesis.sh);
#   8. a smoke run of every benchmark harness (bench/smoke.sh; never asserts timings);
#   9. a short run of every fuzz target (FUZZ_SECONDS each, default 5).
#
# Settings (environment):
#   SENDPROMPTLY_VENV      where the virtualenv lives (default .venv)
#   FUZZ_SECONDS           seconds per fuzz target (default 5; 0 skips fuzzing)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==== %s\n' "$*"; }

step "Python tools for the interop tests"
venv="${SENDPROMPTLY_VENV:-$root/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r sendpromptly-core/tests/interop/requirements.txt
export SENDPROMPTLY_PYTHON="$venv/bin/python"
export SENDPROMPTLY_REQUIRE_INTEROP=1

step "The sqlite3 shell (tests/tamper.rs edits a database with it; tests/export.rs fills one)"
if ! command -v sqlite3 >/dev/null && command -v apt-get >/dev/null; then
    if [[ "$(id -u)" == 0 ]]; then apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq sqlite3 >/dev/null; fi
fi

step "Rust tests (the workspace's default members: no binding crates)"
cargo test --locked

step "PostgreSQL: conformance suite and several instances on one database"
scripts/test-postgres.sh

step "Stripe reconciler: its requests against Stripe's OpenAPI description (stripe-mock)"
scripts/test-stripe-mock.sh

step "Console: browser tests in headless Chromium"
scripts/test-browser.sh

step "Python package: pip install, pytest, stubtest"
scripts/test-python.sh

step "Node package: npm install, drift check of the generated types, node --test"
scripts/test-node.sh

step "uniffi bindings: Kotlin/JVM (Maven, JUnit) and Ruby (minitest), drift check of the generated sources"
scripts/test-uniffi.sh

step "Examples users copy from (Rust axum example end to end)"
scripts/test-examples.sh

step "The one-command demo"
scripts/test-demo.sh

step "Docs: the quickstart's commands, links, API reference drift"
scripts/test-docs.sh

step "schemathesis: the live API against its OpenAPI document"
scripts/test-schemathesis.sh

step "Benchmark harnesses: smoke run (tiny sizes, no timing assertions)"
bench/smoke.sh

fuzz_seconds="${FUZZ_SECONDS:-5}"
if [[ "$fuzz_seconds" != "0" ]]; then
    step "Fuzz smoke run (${fuzz_seconds}s per target)"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked --version 0.13.2
    fi
    FUZZ_SECONDS="$fuzz_seconds" scripts/fuzz.sh
fi

step "All tests passed"
