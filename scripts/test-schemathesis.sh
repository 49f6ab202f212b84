#!/usr/bin/env bash
# Fuzzes the live HTTP API from its own OpenAPI document with schemathesis
# (PyPI): a fresh `sendpromptly serve` on a temporary SQLite file, every
# operation of /openapi.json called with generated valid and invalid input.
# Fails on any 5xx and on any response that breaks the document (status
# code, content type, headers, body schema).
#
# Settings (environment):
#   SCHEMATHESIS_MAX_EXAMPLES  examples per operation (default 25)
#   SCHEMATHESIS_VERSION       pinned version installed in .venv-schemathesis
#   CARGO_TARGET_DIR           where the server binary is built
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
step() { printf '\n==== %s\n' "$*"; }
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
version="${SCHEMATHESIS_VERSION:-4.32.5}"
venv="$root/.venv-schemathesis"

step "schemathesis $version in .venv-schemathesis"
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

step "Server binary"
(cd "$root" && cargo build --locked --bin sendpromptly)
bin="${CARGO_TARGET_DIR:-$root/target}/debug/sendpromptly"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
db="sqlite://$work/schemathesis.db"
export SENDPROMPTLY_LOG=warn

step "A project and a server"
"$bin" --database-url "$db" migrate >/dev/null
key="$("$bin" --database-url "$db" project create --name fuzz --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
# The rate limit off: schemathesis sends thousands of requests with one key.
"$bin" --database-url "$db" serve --listen 127.0.0.1:0 --api-rate-limit 0 >"$work/stdout" 2>"$work/server.log" &
server_pid=$!
url=""
for _ in $(seq 1 200); do
    url="$(sed -n 's/^SendPromptly is listening on \([^ ]*\).*/\1/p' "$work/stdout" | head -1)"
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat "$work/server.log"; echo "the server did not start" >&2; exit 1; }

step "schemathesis against $url/openapi.json ($max_examples examples per operation)"
status=0
cd "$work" # schemathesis keeps state in ./.schemathesis
"$venv/bin/schemathesis" run "$url/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$max_examples" \
    --seed 11 \
    --generation-database none \
    --report-dir "$work/report" \
    --warnings off \
    || status=$?
if grep -q "panicked" "$work/server.log"; then
    echo "the server panicked:" >&2
    grep -B2 -A10 panicked "$work/server.log" >&2
    status=1
fi
exit "$status"
