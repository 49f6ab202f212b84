#!/usr/bin/env bash
# Export benchmark: a release `sendpromptly serve` on a SQLite file filled with
# N incidents (set-based SQL, bench/export-fill.sqlite.sql: a recursive CTE
# copying one real incident, not N API calls), then
# `GET /v1/incidents/export?format=…` streamed by curl into a reader that
# counts bytes and rows (nothing kept) while the server's resident memory
# (VmRSS) is sampled every 0.2 s. Prints the rows, bytes and time, and the RSS
# before the export, at 10 %, 50 % and 100 % of the bytes, and its maximum:
# flat means constant memory.
#
#   bench/export.sh [N]      (default 1000000)
#
# Settings (environment):
#   BENCH_EXPORT_FORMAT  jsonl or csv (default: both, one after the other)
#   BENCH_DIR            where the database goes (default /tmp; 1,000,000
#                        incidents take about 4 GB: /dev/shm if the disk is short)
#   SENDPROMPTLY_BIN     a prebuilt server binary (default: cargo build --release)
#   BENCH_QUICK=1        smoke run: a debug build unless SENDPROMPTLY_BIN is set
#   CARGO_TARGET_DIR     cargo's target directory (default target/)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=lib.sh
source "$root/bench/lib.sh"

n="${1:-1000000}"
formats="${BENCH_EXPORT_FORMAT:-jsonl csv}"
command -v sqlite3 >/dev/null || {
    step "Installing sqlite3 (Debian)"
    apt-get install -y -qq sqlite3 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
}
ensure_server_binary
bin="$SENDPROMPTLY_BIN"

work="$(mktemp -d "${BENCH_DIR:-/tmp}/sendpromptly-export.XXXXXX")"
server_pid=""
cleanup() {
    local status=$?
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

url="sqlite://$work/export.db"
key="$("$bin" --database-url "$url" --log-format json project create --name export --json 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"
port="$(free_port)"
SENDPROMPTLY_API_RATE_LIMIT=0 "$bin" --database-url "$url" --log-format json serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 300); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$base/healthz" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

step "One real incident (the template), then $n more by set-based SQL"
post() { curl -fsS -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$2" "$base$1" >/dev/null; }
post /v1/receipt '{"provider":"stripe","event_id":"evt_template","event_type":"invoice.paid","subject":"cus_1","effect":"credits.add","metadata":{"amount":1999,"note":"a, \"quoted\" note"}}'
post /v1/result '{"provider":"stripe","event_id":"evt_template","status":"failure","error":"tenant acct_42 not found"}'
fill_start=$SECONDS
sed "s/__N__/$n/" bench/export-fill.sqlite.sql | sqlite3 -bail -cmd '.timeout 60000' "$work/export.db"
echo "filled in $((SECONDS - fill_start)) s; database $(du -cb "$work"/export.db* | tail -1 | cut -f1) bytes"

rss() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
# Reads the export from stdin, keeps nothing, and every 0.2 s appends
# "<bytes so far> <server VmRSS kB>" to $1; prints the rows.
counter='
import sys, time
samples, pid, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(l.split()[1] for l in f if l.startswith("VmRSS"))
total, rows, last, tail = 0, 0, 0.0, b""
with open(samples, "w") as out:
    while True:
        chunk = sys.stdin.buffer.read(1 << 16)
        if not chunk:
            break
        total += len(chunk)
        if fmt == "jsonl":
            rows += chunk.count(b"\n")
        else:
            # Records start with their incident id after a line break (the
            # template has no line break inside a cell).
            rows += (tail + chunk).count(b"\ninc_")
            tail = chunk[-4:]
        now = time.monotonic()
        if now - last >= 0.2:
            out.write(f"{total} {rss()}\n")
            last = now
    out.write(f"{total} {rss()}\n")
print(rows)
'
for format in $formats; do
    step "Export: $format, $((n + 1)) incidents"
    samples="$work/samples.$format"
    before="$(rss)"
    start_ns="$(date +%s%N)"
    rows="$(curl -fsS -H "Authorization: Bearer $key" "$base/v1/incidents/export?format=$format" \
        | python3 -c "$counter" "$samples" "$server_pid" "$format")"
    end_ns="$(date +%s%N)"
    total="$(tail -1 "$samples" | cut -d' ' -f1)"
    [[ "$rows" == "$((n + 1))" ]] || { echo "error: exported $rows rows, expected $((n + 1))" >&2; exit 1; }
    awk -v total="$total" -v before="$before" -v rows="$rows" -v ns="$((end_ns - start_ns))" '
        { b[NR] = $1; r[NR] = $2; if ($2 > max) max = $2 }
        END {
            for (i = 1; i <= NR; i++) {
                if (!a10 && b[i] >= total * 0.10) a10 = r[i]
                if (!a50 && b[i] >= total * 0.50) a50 = r[i]
            }
            s = ns / 1e9
            printf "rows %d, %.1f MB in %.1f s (%.0f rows/s, %.1f MB/s)\n", rows, total / 1e6, s, rows / s, total / 1e6 / s
            printf "server RSS MiB: before %.1f | at 10%% %.1f | at 50%% %.1f | at 100%% %.1f | max %.1f (%d samples)\n",
                before / 1024, a10 / 1024, a50 / 1024, r[NR] / 1024, max / 1024, NR
        }' "$samples"
done
