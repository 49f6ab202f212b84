#!/usr/bin/env bash
# Browser tests of the console (tests/browser/*.test.mjs: the pages and
# actions; users, roles and TOTP sign-in): headless Chromium (Debian's `chromium`)
# driven by playwright-core, against a real `sendpromptly serve` on a temp
# SQLite file and `sendpromptly listen` as the repair endpoint.
#
#   scripts/test-browser.sh            # run the tests
#   SP_SCREENSHOTS=docs/images scripts/test-browser.sh   # also refresh the README screenshots
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TESTS="$ROOT/sendpromptly-server/tests/browser"

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium"
  if [ "$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium
  else sudo apt-get update && sudo apt-get install -y chromium; fi
fi

echo "==> npm ci (playwright-core)"
(cd "$TESTS" && npm ci --no-audit --no-fund --loglevel=error)

echo "==> building sendpromptly"
cargo build -p sendpromptly-server --bin sendpromptly
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/sendpromptly"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}
PORT="$(free_port)"
REPAIR_PORT="$(free_port)"

echo "==> sendpromptly serve on 127.0.0.1:$PORT"
# The repair endpoint is on loopback, which production refuses by default.
SENDPROMPTLY_ALLOW_PRIVATE_URLS=true SENDPROMPTLY_LOG=warn \
  "$BIN" serve --listen "127.0.0.1:$PORT" --database-url "sqlite://$WORK/sendpromptly.db" \
  >"$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=("$!")
for _ in $(seq 1 300); do
  grep -q "is listening on" "$WORK/serve.out" 2>/dev/null && break
  if ! kill -0 "${PIDS[0]}" 2>/dev/null; then cat "$WORK/serve.out" "$WORK/serve.err"; exit 1; fi
  sleep 0.1
done
grep -q "is listening on" "$WORK/serve.out" || { echo "serve did not start"; cat "$WORK/serve.out" "$WORK/serve.err"; exit 1; }

field() { sed -n "s/^ *$1: *//p" "$WORK/serve.out" | head -n1; }
API_KEY="$(field 'API key')"
SECRET="$(field 'signing secret')"
LOGIN="$(field 'console login')"
ADMIN_EMAIL="${LOGIN%% / *}"
ADMIN_PASSWORD="${LOGIN#* / }"
[ -n "$API_KEY" ] && [ -n "$SECRET" ] && [ -n "$ADMIN_PASSWORD" ] || { echo "could not read the first-start output"; cat "$WORK/serve.out"; exit 1; }

echo "==> sendpromptly listen on 127.0.0.1:$REPAIR_PORT"
"$BIN" listen --secret "$SECRET" --listen "127.0.0.1:$REPAIR_PORT" >"$WORK/listen.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  node -e "require('net').connect($REPAIR_PORT,'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))" && break
  sleep 0.1
done

echo "==> node --test (headless chromium)"
SCREENSHOTS="${SP_SCREENSHOTS:-}"
if [ -n "$SCREENSHOTS" ]; then SCREENSHOTS="$(cd "$ROOT" && mkdir -p "$SCREENSHOTS" && cd "$SCREENSHOTS" && pwd)"; fi
status=0
(
  cd "$TESTS"
  SP_URL="http://127.0.0.1:$PORT" SP_API_KEY="$API_KEY" \
  SP_ADMIN_EMAIL="$ADMIN_EMAIL" SP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  SP_REPAIR_URL="http://127.0.0.1:$REPAIR_PORT/repair" SP_SCREENSHOTS="$SCREENSHOTS" \
  node --test --test-concurrency=1 ./*.test.mjs
) || status=$?
if [ "$status" != 0 ]; then
  echo "---- serve stderr (last 40 lines)"; tail -n 40 "$WORK/serve.err" || true
  echo "---- listen output (last 20 lines)"; tail -n 20 "$WORK/listen.out" || true
fi
exit "$status"
