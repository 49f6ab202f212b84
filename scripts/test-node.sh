#!/usr/bin/env bash
# The Node package's tests (bindings/node), on a fresh machine with Node 20+,
# npm and Rust:
#   1. `npm install` in bindings/node from the committed lock file — its
#      install script builds the native module with cargo, exactly as
#      `npm install ./bindings/node` does. (Not `npm ci`: npm leaves the
#      optional platform packages of @napi-rs/cli's dependencies out of the
#      lock file and `npm ci` then refuses it; `--no-save` keeps the lock
#      file untouched.);
#   2. the server binary `sendpromptly` the tests start on a loopback port;
#   3. the drift check: native.js/native.d.ts regenerated from the Rust
#      source by the napi CLI must equal the committed ones;
#   4. `node --test` (test/*.test.js, test/*.test.mjs).
#
# Settings (environment):
#   SENDPROMPTLY_NODE_PROFILE  cargo profile of the native module (default debug here)
#   CARGO_TARGET_DIR           honoured by every step, including the tests
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
step() { printf '\n==== %s\n' "$*"; }

cd "$root/bindings/node"
export SENDPROMPTLY_NODE_PROFILE="${SENDPROMPTLY_NODE_PROFILE:-debug}"

step "npm install in bindings/node (builds the native module, ${SENDPROMPTLY_NODE_PROFILE})"
npm install --no-save --no-audit --no-fund

step "Server binary for the tests"
(cd "$root" && cargo build --locked --bin sendpromptly)

step "Generated loader and types match the Rust source"
node scripts/check-generated.js

step "node --test"
npm test
