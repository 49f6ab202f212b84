#!/usr/bin/env bash
# Provider-tap ingest benchmark: Stripe-signed deliveries to
# `POST /v1/providers/stripe/webhooks/{project}` beside the app's own
# `POST /v1/receipt`, in the same run, against a release `sendpromptly serve`.
#
#   bench/tap.sh [sqlite|postgres|all]      (default: sqlite)
#
# Per engine: a fresh database, one project with a Stripe endpoint secret,
# the per-key rate limit off. Then BENCH_RUNS times: `/healthz`, receipts
# (a new event id each: the smallest receipt), receipts as the SDKs send them
# for the same Stripe event (its facts in metadata, an Idempotency-Key each),
# and tap deliveries (a new `evt_` each, signed with
# Stripe's scheme just before the run so they are inside its 300 s
# tolerance), each BENCH_DURATION seconds at BENCH_CONNECTIONS; prints each
# run, min/median/max and tap ÷ receipt from the same run, and the server's
# CPU time per request of each (user + system, from /proc): on a shared
# machine the rate follows whatever else runs, the CPU cost much less.
# Settings as bench/load.sh: BENCH_QUICK=1, BENCH_RUNS (3), BENCH_DURATION (10),
# BENCH_CONNECTIONS (128), SENDPROMPTLY_BIN, CARGO_TARGET_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=lib.sh
source "$root/bench/lib.sh"
engines="${1:-sqlite}"
[[ "$engines" == "all" ]] && engines="sqlite postgres"
runs="${BENCH_RUNS:-3}"
duration="${BENCH_DURATION:-10}"
conns="${BENCH_CONNECTIONS:-128}"

ensure_wrk
ensure_server_binary
bin="$SENDPROMPTLY_BIN"

# shellcheck source=../scripts/lib/postgres.sh
source "$root/scripts/lib/postgres.sh"
work="$(mktemp -d /tmp/sendpromptly-tap-bench.XXXXXX)"
server_pid=""
cleanup() {
    local status=$?
    [[ -n "$server_pid" ]] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    pg_stop "$status"
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# COUNT Stripe `invoice.paid` deliveries for run RUN, signed with SECRET now:
# one `Stripe-Signature<TAB>body` line each.
sign_deliveries() {
    python3 - "$1" "$2" "$3" <<'PY'
import hashlib, hmac, json, sys, time
count, run, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
now = int(time.time())
key = secret.encode()
out = sys.stdout
for n in range(count):
    body = json.dumps({
        "id": f"evt_tap_{run}_{n}", "object": "event", "type": "invoice.paid",
        "created": now, "livemode": True, "api_version": "2024-06-20",
        "data": {"object": {"id": f"in_tap_{run}_{n}", "object": "invoice",
                            "customer": "cus_bench", "amount_paid": 1999, "currency": "usd"}},
    }, separators=(",", ":"))
    sig = hmac.new(key, f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    out.write(f"t={now},v1={sig}\t{body}\n")
PY
}

bench_engine() {
    local engine="$1" url port key project secret="whsec_benchtapsecret0123456789abcdef"
    step "Engine: $engine"
    case "$engine" in
        sqlite) url="sqlite://$work/bench.db" ;;
        postgres)
            pg_start sendpromptly_tap_bench durable
            url="$PG_URL"
            SENDPROMPTLY_SECRET_KEY="$(head -c 32 /dev/urandom | base64)"
            export SENDPROMPTLY_SECRET_KEY
            ;;
        *) echo "unknown engine $engine (sqlite, postgres or all)" >&2; exit 2 ;;
    esac
    read -r project key < <("$bin" --database-url "$url" --log-format json project create --name "tap-$engine" --json 2>/dev/null \
        | python3 -c 'import json, sys; p = json.load(sys.stdin); print(p["project_id"], p["api_key"])')
    port="$(free_port)"
    SENDPROMPTLY_API_RATE_LIMIT=0 "$bin" --database-url "$url" --log-format json serve --listen "127.0.0.1:$port" >"$work/server-$engine.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    local base="http://127.0.0.1:$port"
    curl -fsS -X PATCH "$base/v1/project" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
        -d "{\"provider_tap\":{\"stripe_endpoint_secrets\":[\"$secret\"]}}" >/dev/null
    local tap_path="/v1/providers/stripe/webhooks/$project" h=() r=() t=() ratio=() sdk_ratio=() s=() sc=() rc=() tc=() before
    for run in $(seq 1 "$runs"); do
        wrk -t1 -c"$conns" -d"${duration}s" "$base/healthz" >"$work/h.txt"
        before="$(cpu_ticks "$server_pid")"
        wrk -t1 -c"$conns" -d"${duration}s" -s bench/receipt.lua "$base" -- "r${run}" "$key" >"$work/r.txt"
        rc+=("$(cpu_us_per_request "$(( $(cpu_ticks "$server_pid") - before ))" "$work/r.txt")")
        before="$(cpu_ticks "$server_pid")"
        wrk -t1 -c"$conns" -d"${duration}s" -s bench/receipt.lua "$base" -- "s${run}" "$key" sdk >"$work/s.txt"
        sc+=("$(cpu_us_per_request "$(( $(cpu_ticks "$server_pid") - before ))" "$work/s.txt")")
        # Enough fresh deliveries for 10 s at twice the receipt rate.
        sign_deliveries "$(( $(rps "$work/r.txt") * duration * 2 + 1000 ))" "$engine$run" "$secret" >"$work/tap.txt"
        # The first delivery by hand: it must be tracked, not refused or ignored.
        IFS=$'\t' read -r signature body < "$work/tap.txt"
        curl -fsS -X POST "$base$tap_path" -H "Stripe-Signature: $signature" -H 'Content-Type: application/json' \
            --data-binary "$body" | grep -q '"outcome":"created"' \
            || { echo "error: the first tap delivery was not tracked" >&2; exit 1; }
        before="$(cpu_ticks "$server_pid")"
        wrk -t1 -c"$conns" -d"${duration}s" -s bench/tap.lua "$base" -- "$work/tap.txt" "$tap_path" >"$work/t.txt"
        tc+=("$(cpu_us_per_request "$(( $(cpu_ticks "$server_pid") - before ))" "$work/t.txt")")
        for measured in r s t; do
            if [[ "$(errors "$work/$measured.txt")" != "0" ]]; then
                echo "error: non-2xx or socket errors:" >&2; cat "$work/$measured.txt" >&2; exit 1
            fi
        done
        h+=("$(rps "$work/h.txt")"); r+=("$(rps "$work/r.txt")"); s+=("$(rps "$work/s.txt")"); t+=("$(rps "$work/t.txt")")
        ratio+=("$(awk -v a="${t[-1]}" -v b="${r[-1]}" 'BEGIN {printf "%.3f", a / b}')")
        sdk_ratio+=("$(awk -v a="${t[-1]}" -v b="${s[-1]}" 'BEGIN {printf "%.3f", a / b}')")
        printf 'run %s: healthz %s req/s | receipt %s req/s (%s µs CPU each) | sdk receipt %s req/s (%s µs) | tap %s req/s (%s µs) | tap/receipt %s | tap/sdk receipt %s\n' \
            "$run" "${h[-1]}" "${r[-1]}" "${rc[-1]}" "${s[-1]}" "${sc[-1]}" "${t[-1]}" "${tc[-1]}" "${ratio[-1]}" "${sdk_ratio[-1]}"
    done
    echo "---- $engine, $runs runs of ${duration}s, $conns connections (wrk -t1)"
    echo "healthz req/s:        $(stats "${h[@]}")"
    echo "receipt req/s:        $(stats "${r[@]}")"
    echo "sdk receipt req/s:    $(stats "${s[@]}")"
    echo "tap req/s:            $(stats "${t[@]}")"
    echo "tap/receipt ratio:    $(stats "${ratio[@]}")"
    echo "tap/sdk receipt:      $(stats "${sdk_ratio[@]}")"
    echo "server CPU µs/request: receipt $(stats "${rc[@]}") | sdk receipt $(stats "${sc[@]}") | tap $(stats "${tc[@]}")"
    kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""
    if [[ "$engine" == postgres ]]; then pg_stop 0; fi
}

for engine in $engines; do bench_engine "$engine"; done
