#!/usr/bin/env bash
# The analytics query at scale (issue #25): GET /v1/stats over 30 days with
# BENCH_EVENTS events (default 10,000,000) in a SQLite database.
#
#   bench/stats.sh
#
# A fresh SQLite file and project; then one set-based INSERT … SELECT over
# a recursive CTE writes the events (30 days, 5 event types, 97 %
# succeeded with log-spread times to effect, 2 % of them with an incident
# resolved by hand), so the write-time triggers of migration 0012 build
# the rollups exactly as live traffic would (the fill time is the triggers'
# cost too). Then a release `sendpromptly serve` answers
# GET /v1/stats?window=30d (and 24h, 7d, one event type) BENCH_QUERIES
# times each (default 5); prints the fill time, the rollup's row count and
# each query's min/median/max.
#
# Settings: BENCH_EVENTS, BENCH_QUERIES, SENDPROMPTLY_BIN, BENCH_QUICK=1
# (debug build), CARGO_TARGET_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=lib.sh
source "$root/bench/lib.sh"
events="${BENCH_EVENTS:-10000000}"
queries="${BENCH_QUERIES:-5}"
command -v sqlite3 >/dev/null || { echo "bench/stats.sh needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 1; }
ensure_server_binary
bin="$SENDPROMPTLY_BIN"
work="$(mktemp -d /tmp/sendpromptly-stats.XXXXXX)"
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

db="$work/stats.db"
url="sqlite://$db"
created="$("$bin" --database-url "$url" --log-format json project create --name bench-stats --json 2>/dev/null)"
key="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["api_key"])' "$created")"
project="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["project_id"])' "$created")"
now_ms="$(($(date +%s) * 1000))"

step "Fill: $events events over 30 days (set-based, through the rollup triggers)"
start="$(date +%s.%N)"
sqlite3 "$db" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $events - 1),
  e AS (
    SELECT i,
      $now_ms - 30 * 86400000 + i * (30 * 86400000 / $events) AS received,
      CASE i % 5 WHEN 0 THEN 'invoice.paid' WHEN 1 THEN 'checkout.session.completed'
        WHEN 2 THEN 'customer.subscription.updated' WHEN 3 THEN 'orders/paid' ELSE 'order.refunded' END AS type,
      -- 20 ms … ~20 min, log-spread: 20 * 2^(0..16) with a random mantissa.
      (20 + abs(random()) % 20) << (abs(random()) % 16) AS tte,
      abs(random()) % 100 AS roll
    FROM n)
INSERT INTO events (project_id, provider, event_id, event_type, subject, state, record, due_at,
                    received_at, created_at, updated_at)
SELECT '$project', 'stripe', 'evt_bench_' || i, type, NULL,
       CASE WHEN roll < 97 THEN 'succeeded' ELSE 'failed' END, '{}', NULL,
       received, received, received + tte
FROM e;
COMMIT;
SQL
fill_s="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
rollup_rows="$(sqlite3 "$db" "SELECT COUNT(*) FROM stats_hist")"
echo "filled in ${fill_s}s; stats_hist rows: $rollup_rows; database $(du -h "$db" | cut -f1)"

port="$(free_port)"
SENDPROMPTLY_API_RATE_LIMIT=0 "$bin" --database-url "$url" --log-format json serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
base="http://127.0.0.1:$port"
measure() {
    local path="$1" times=()
    curl -fsS -H "Authorization: Bearer $key" "$base$path" -o "$work/out.json"   # warm-up, checked
    for _ in $(seq 1 "$queries"); do
        times+=("$(curl -fsS -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $key" "$base$path" \
            | awk '{printf "%.1f", $1 * 1000}')")
    done
    printf '%-48s ms: %s\n' "GET $path" "$(stats "${times[@]}")"
}
step "GET /v1/stats, $queries queries each (min / median / max)"
measure "/v1/stats?window=30d"
measure "/v1/stats?window=7d"
measure "/v1/stats?window=24h"
measure "/v1/stats?window=30d&event_type=invoice.paid"
python3 - "$work/out.json" "$events" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print("30d invoice.paid: received", report["overall"]["received"],
      "time to effect p50/p95/p99 ms",
      [report["overall"]["time_to_effect"][k] for k in ("p50_ms", "p95_ms", "p99_ms")])
PY
