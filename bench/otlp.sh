#!/usr/bin/env bash
# What span export costs ingest: the same receipt load (bench/ingest.lua,
# wrk) against a release `sendpromptly serve` without and with
# --otlp-endpoint, the collector a small Python receiver answering 200.
#
#   bench/otlp.sh            (SENDPROMPTLY_BIN: a prebuilt release binary)
#
# Settings: BENCH_DURATION (default 10 s), BENCH_CONNECTIONS (default 64).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${SENDPROMPTLY_BIN:-${CARGO_TARGET_DIR:-target}/release/sendpromptly}"
duration="${BENCH_DURATION:-10}"
conns="${BENCH_CONNECTIONS:-64}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cport="$(free_port)"
python3 - "$cport" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)

run() {
    local label="$1"; shift
    local db="sqlite://$work/$label.db" port key
    key="$("$bin" --database-url "$db" --log-format json project create --name "$label" --json 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"
    port="$(free_port)"
    SENDPROMPTLY_API_RATE_LIMIT=0 "$bin" --database-url "$db" --log-format json serve --listen "127.0.0.1:$port" "$@" >"$work/$label.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    wrk -t1 -c"$conns" -d"${duration}s" --latency -s bench/ingest.lua "http://127.0.0.1:$port" -- "$label" "$key" \
        | awk -v l="$label" '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%-10s %10s req/s  p50 %s  p99 %s\n", l, r, p50, p99}'
    curl -fsS "http://127.0.0.1:$port/metrics" | grep '^sendpromptly_otlp_spans' || true
    kill "$pid"
}

run plain
run otlp --otlp-endpoint "http://127.0.0.1:$cport"
