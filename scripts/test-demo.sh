#!/usr/bin/env bash
# Runs the one-command demo (examples/demo/run.sh) against a freshly built
# server and checks it: exit 0, every narrated step, the links it prints, no
# process left behind; then breaks the app on purpose (it credits a duplicate
# delivery twice) and checks the demo notices and exits non-zero.
# Needs Rust and Python 3.9+ (standard library only).
#   CARGO_TARGET_DIR  cargo's target directory (default target/)
#   SENDPROMPTLY_BIN  a prebuilt server binary (default: built here)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
    cargo build --locked --quiet --bin sendpromptly
    export SENDPROMPTLY_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/sendpromptly"
fi
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
fail() { echo "test-demo: $*" >&2; echo "--- demo output ---" >&2; cat "$out" >&2; exit 1; }
leftovers() { pgrep -f "^$SENDPROMPTLY_BIN .*sendpromptly-demo-" || true; }

start=$(date +%s)
examples/demo/run.sh >"$out" 2>&1 || fail "the demo exited with $?"
for want in "deliveries = 2" "not credited twice" "kind missing_result" "kind failed_result" \
            "exactly these two are open" "resolution success_result" "applied exactly once" \
            "no incident is open" "the proof page answers 200" "console:    http://127.0.0.1:" \
            "proof link: http://127.0.0.1:"; do
    grep -qF "$want" "$out" || fail "missing from the output: $want"
done
[[ -z "$(leftovers)" ]] || fail "the demo left its server running"
echo "demo passed in $(( $(date +%s) - start )) s"

if examples/demo/run.sh --sabotage dedupe >"$out" 2>&1; then
    fail "the demo exited 0 although the app credited a duplicate twice"
fi
grep -qF "DEMO FAILED: cus_alice still has 500 credits" "$out" || fail "the sabotaged demo failed for the wrong reason"
[[ -z "$(leftovers)" ]] || fail "the failed demo left its server running"
echo "test-demo: passed (the sabotaged run failed as it should) in $(( $(date +%s) - start )) s"
