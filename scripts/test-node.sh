#!/usr/bin/env bash
# The Node package's tests (bindings/node), on a fresh machine with Node 20+,
# npm and Rust:
#   1. `npm ci` in bindings/node from the committed lock file (the SDK's
#      dev tools and the frameworks its integrations are tested with) — its
#      install script builds the native module with cargo, exactly as
#      `npm install ./bindings/node` does. The lock file lists the Linux
#      x64 builds of @napi-rs/cli's optional platform packages, which
#      `npm ci` needs; after changing dependencies, regenerate it there
#      with `npm install` (npm 11);
#   2. the server binary `sendpromptly` the tests start on a loopback port;
#   3. the drift check: native.js/native.d.ts regenerated from the Rust
#      source by the napi CLI must equal the committed ones;
#   4. a throwaway Redis for the BullMQ integration test (`redis-server`
#      from Debian, installed with apt-get when missing) on a free loopback
#      port with its files in a temporary directory, stopped on exit;
#   5. `node --test` (test/*.test.js, test/*.test.mjs), the integrations'
#      tests included (real Express and Fastify servers, Next.js route
#      handlers on real `Request`s and, in next-real.test.js, inside the
#      fixture app test/next-app built by `next build` and served by
#      `next start` (offline, telemetry off; about 10 s), BullMQ on that
#      Redis).
#
# Settings (environment):
#   SENDPROMPTLY_NODE_PROFILE  cargo profile of the native module (default debug here)
#   CARGO_TARGET_DIR           honoured by every step, including the tests
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
step() { printf '\n==== %s\n' "$*"; }

cd "$root/bindings/node"
export SENDPROMPTLY_NODE_PROFILE="${SENDPROMPTLY_NODE_PROFILE:-debug}"

step "npm ci in bindings/node (builds the native module, ${SENDPROMPTLY_NODE_PROFILE})"
npm ci --no-audit --no-fund

step "Server binary for the tests"
(cd "$root" && cargo build --locked --bin sendpromptly)

step "Generated loader and types match the Rust source"
node scripts/check-generated.js

step "Redis for the BullMQ integration"
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: install Redis (e.g. apt-get install redis-server)" >&2
    exit 1
  fi
fi
redis_dir="$(mktemp -d)"
redis_port="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$redis_dir" --save '' --appendonly no \
  --daemonize no --logfile "$redis_dir/redis.log" &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$redis_dir"' EXIT
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null || { cat "$redis_dir/redis.log" >&2; exit 1; }
export SENDPROMPTLY_TEST_REDIS_URL="redis://127.0.0.1:$redis_port" SENDPROMPTLY_REQUIRE_REDIS=1

step "node --test"
npm test
