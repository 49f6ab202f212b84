#!/usr/bin/env bash
# Runs the Rust example app (sendpromptly-client/examples/axum_stripe_webhook.rs)
# end to end against a real server (scripts/test-example-rust.py). The Python
# example is run by bindings/python's tests (scripts/test-python.sh), the Node
# example by bindings/node/test/example.test.js (scripts/test-node.sh).
# Needs Rust and Python 3 (standard library only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --locked --quiet --bin sendpromptly -p sendpromptly-server
cargo build --locked --quiet -p sendpromptly-client --features axum --example axum_stripe_webhook
exec "${PYTHON:-python3}" scripts/test-example-rust.py "${SENDPROMPTLY_BIN:-$target/debug/sendpromptly}" \
    "$target/debug/examples/axum_stripe_webhook"
