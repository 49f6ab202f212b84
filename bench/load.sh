#!/usr/bin/env bash
# Ingest load benchmark: a release `sendpromptly serve` against a real HTTP
# load generator (Debian's `wrk`, installed if missing).
#
#   bench/load.sh [sqlite|postgres|all]     (default: sqlite)
#
# For each engine: a fresh database (a temp SQLite file; or a throwaway
# PostgreSQL cluster with fsync on, via scripts/lib/postgres.sh), one project,
# the per-key rate limit off. Then BENCH_RUNS times, in the same run:
#   1. GET /healthz at full speed (the HTTP stack + a store ping),
#   2. POST /v1/receipt + /v1/result (alternating, new event ids) at full speed,
#   3. the same with a unique `Idempotency-Key` on every request (what the SDKs
#      send), at full speed,
#   4. plain requests at about half the rate of 2, with latency percentiles
#      and the CPU used per request by the server and (PostgreSQL) by the
#      database cluster's processes: at a fixed rate, a figure that moves
#      less than a throughput on a shared machine; and split by kind of
#      server thread (tokio's workers: HTTP, JSON, the state machine; sqlx's
#      SQLite threads: the SQL), with each kind's context switches per
#      request,
#   5. the real path: 3 with random event ids, as providers make them, and
#      the SDKs' time-ordered idempotency keys ("provider ids").
# Prints each run, then min/median/max, the ingest/healthz and
# idempotent/plain ratios, the server's resident memory and the on-disk bytes
# per event (SQLite). Each measurement runs once per connection count
# (BENCH_CONNECTIONS, default "32 128"). Then the burst: a renewal storm of
# BENCH_BURST receipts (default 100,000) paced to arrive within 10 s from 64
# connections (bench/burst.lua), against the server restarted with the
# DEFAULT per-key rate limit; every answer must be 2xx and every receipt is
# counted in the database afterwards; p50/p99 are printed. To see the burst
# against another limit, set SENDPROMPTLY_API_RATE_LIMIT/_BURST (the
# throughput runs still turn it off).
#
# Settings (environment):
#   BENCH_RUNS         repetitions (default 3)
#   BENCH_DURATION     seconds per measurement (default 10)
#   BENCH_CONNECTIONS  concurrent connections, one or more (default "32 128":
#                      a few dozen handlers, and many webhook senders)
#   BENCH_BURST        receipts in the burst (default 100000; 0 skips it),
#   BENCH_BURST_SECONDS  over this many seconds (default 10), from
#   BENCH_BURST_CONNECTIONS  connections (default 64)
#   SENDPROMPTLY_BIN   a prebuilt server binary (default: cargo build --release)
#   BENCH_QUICK=1      smoke run: a debug build unless SENDPROMPTLY_BIN is set
#   CARGO_TARGET_DIR   cargo's target directory (default target/)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=lib.sh
source "$root/bench/lib.sh"

engines="${1:-sqlite}"
[[ "$engines" == "all" ]] && engines="sqlite postgres"
runs="${BENCH_RUNS:-3}"
duration="${BENCH_DURATION:-10}"
conn_list="${BENCH_CONNECTIONS:-32 128}"
burst="${BENCH_BURST:-100000}"
burst_seconds="${BENCH_BURST_SECONDS:-10}"
burst_conns="${BENCH_BURST_CONNECTIONS:-64}"

ensure_wrk
ensure_server_binary
bin="$SENDPROMPTLY_BIN"

# shellcheck source=../scripts/lib/postgres.sh
source "$root/scripts/lib/postgres.sh"
work="$(mktemp -d /tmp/sendpromptly-bench.XXXXXX)"
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
cleanup() {
    local status=$?
    stop_server
    pg_stop "$status"
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_engine() {
    local engine="$1" url port key
    step "Engine: $engine"
    case "$engine" in
        sqlite) url="sqlite://$work/bench.db" ;;
        postgres)
            pg_start sendpromptly_bench durable
            url="$PG_URL"
            # PostgreSQL needs a configured master key (SQLite generates one).
            SENDPROMPTLY_SECRET_KEY="$(head -c 32 /dev/urandom | base64)"
            export SENDPROMPTLY_SECRET_KEY
            ;;
        *) echo "unknown engine $engine (sqlite, postgres or all)" >&2; exit 2 ;;
    esac
    key="$("$bin" --database-url "$url" --log-format json project create --name "bench-$engine" --json 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"
    port="$(free_port)"
    # The rate limit off for the throughput runs (it is what they measure).
    start_server "$engine" "$url" "$port" SENDPROMPTLY_API_RATE_LIMIT=0
    local base="http://127.0.0.1:$port" conns
    for conns in $conn_list; do
        measure "$engine" "$base" "$key" "$conns"
    done
    local rss events bytes
    rss="$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")"
    echo "server RSS after runs:   $((rss / 1024)) MiB"
    stop_server
    if ((burst > 0)); then
        # The storm meets the default per-key rate limit, as a tenant's would.
        start_server "$engine" "$url" "$port"
        storm "$engine" "$url" "$base" "$key"
        stop_server
    fi
    if [[ "$engine" == "sqlite" ]]; then
        events="$(count_events "$url" "")"
        bytes="$(du -cb "$work"/bench.db* | tail -1 | cut -f1)"
        echo "events stored:           $events; on disk $bytes bytes = $((bytes / (events > 0 ? events : 1))) bytes/event (receipt + result + timeline + indexes)"
    else
        pg_stop 0
    fi
}

# db_cpu_ticks ENGINE: the database's own processes' CPU so far (PostgreSQL's
# cluster; 0 for SQLite, which runs inside the server).
db_cpu_ticks() {
    if [[ "$1" == postgres ]]; then cluster_cpu_ticks "$PG_DATA"; else echo 0; fi
}

# start_server ENGINE URL PORT [VAR=VALUE...]: serve in the background, wait for /healthz.
start_server() {
    local engine="$1" url="$2" port="$3"
    shift 3
    env "$@" "$bin" --database-url "$url" --log-format json serve --listen "127.0.0.1:$port" >>"$work/server-$engine.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$work/server-$engine.log" >&2; exit 1; }
}

# count_events URL PREFIX: events whose id starts with evt_PREFIX.
count_events() {
    if [[ "$1" == sqlite://* ]]; then
        python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from events where event_id like ?\", ('evt_' + sys.argv[2] + '%',)).fetchone()[0])" "${1#sqlite://}" "$2"
    else
        psql "$1" -tAc "select count(*) from events where event_id like 'evt_$2%'"
    fi
}

# storm ENGINE URL BASE KEY: BENCH_BURST receipts paced over BENCH_BURST_SECONDS.
storm() {
    local engine="$1" url="$2" base="$3" key="$4" rate answers stored
    rate=$((burst / burst_seconds))
    step "Burst ($engine): $burst receipts at $rate/s from $burst_conns connections, rate limit: ${SENDPROMPTLY_API_RATE_LIMIT:-default}"
    # -d is only a cap (wrk waits it out): the script stops once all are answered.
    wrk -t1 -c"$burst_conns" -d"$((burst_seconds * 2 + 5))s" --latency -s bench/burst.lua "$base" -- storm "$key" "$burst" "$rate" >"$work/b.txt"
    if [[ "$(errors "$work/b.txt")" != "0" ]]; then
        echo "error: non-2xx or socket errors during the burst:" >&2; cat "$work/b.txt" >&2; exit 1
    fi
    answers="$(requests "$work/b.txt")"
    stored="$(count_events "$url" storm_)"
    echo "burst: $answers answers, all 2xx; $(awk '/^storm:/ {print $5, $6, "(" $8 ")"}' "$work/b.txt") from first send to last answer; $stored receipts stored; p50 $(pct "$work/b.txt" 50) ms, p99 $(pct "$work/b.txt" 99) ms"
    if [[ "$stored" != "$burst" ]]; then
        echo "error: the burst sent $burst receipts but $stored are stored" >&2; exit 1
    fi
}

# measure ENGINE BASE KEY CONNS: BENCH_RUNS rounds of the four measurements.
measure() {
    local engine="$1" base="$2" key="$3" conns="$4" h=() i=() ratio=() p50=() p99=() lrate=() k=() kratio=() r=() rratio=() scpu=() dcpu=()
    # Per kind of server thread: its CPU and context switches per request at half rate, one value per run.
    local -A tcpu=() tswitch=()
    step "$engine, $conns connections"
    for run in $(seq 1 "$runs"); do
        wrk -t1 -c"$conns" -d"${duration}s" "$base/healthz" >"$work/h.txt"
        wrk -t1 -c"$conns" -d"${duration}s" -s bench/ingest.lua "$base" -- "r${conns}_${run}" "$key" >"$work/i.txt"
        wrk -t1 -c"$conns" -d"${duration}s" -s bench/ingest.lua "$base" -- "k${conns}_${run}" "$key" 0 1 >"$work/k.txt"
        wrk -t1 -c"$conns" -d"${duration}s" -s bench/ingest.lua "$base" -- "p${conns}_${run}" "$key" 0 1 provider >"$work/p.txt"
        local hr ir kr pr half delay server_before db_before db_used
        hr="$(rps "$work/h.txt")"; ir="$(rps "$work/i.txt")"; kr="$(rps "$work/k.txt")"; pr="$(rps "$work/p.txt")"
        for measured in i k p; do
            if [[ "$(errors "$work/$measured.txt")" != "0" ]]; then
                echo "error: non-2xx or socket errors during ingest:" >&2; cat "$work/$measured.txt" >&2; exit 1
            fi
        done
        half=$((ir / 2)); ((half > 0)) || half=1
        delay=$((conns * 1000 / half))
        server_before="$(cpu_ticks "$server_pid")"
        db_before="$(db_cpu_ticks "$engine")"
        thread_usage "$server_pid" >"$work/threads-before.txt"
        wrk -t1 -c"$conns" -d"${duration}s" --latency -s bench/ingest.lua "$base" -- "l${conns}_${run}" "$key" "$delay" >"$work/l.txt"
        thread_usage "$server_pid" >"$work/threads-after.txt"
        local kind kcpu kswitch split=""
        while read -r kind kcpu kswitch; do
            tcpu[$kind]+="$kcpu "; tswitch[$kind]+="$kswitch "
            split+="${split:+, }$kind $kcpu us $kswitch switches"
        done < <(thread_split "$work/threads-before.txt" "$work/threads-after.txt" "$work/l.txt")
        scpu+=("$(cpu_us_per_request "$(($(cpu_ticks "$server_pid") - server_before))" "$work/l.txt")")
        db_used="$(($(db_cpu_ticks "$engine") - db_before))"
        dcpu+=("$(cpu_us_per_request "$db_used" "$work/l.txt")")
        h+=("$hr"); i+=("$ir"); k+=("$kr"); lrate+=("$(rps "$work/l.txt")")
        ratio+=("$(awk -v a="$ir" -v b="$hr" 'BEGIN {printf "%.3f", a / b}')")
        kratio+=("$(awk -v a="$kr" -v b="$ir" 'BEGIN {printf "%.3f", a / b}')")
        r+=("$pr"); rratio+=("$(awk -v a="$pr" -v b="$ir" 'BEGIN {printf "%.3f", a / b}')")
        p50+=("$(pct "$work/l.txt" 50)"); p99+=("$(pct "$work/l.txt" 99)")
        printf 'run %s: healthz %s req/s | ingest %s req/s (ratio %s) | idempotent %s req/s (x%s) | provider ids %s req/s (x%s) | at %s req/s: p50 %s ms, p99 %s ms, CPU per request: server %s us, database %s us\n' \
            "$run" "$hr" "$ir" "${ratio[-1]}" "$kr" "${kratio[-1]}" "$pr" "${rratio[-1]}" "${lrate[-1]}" "${p50[-1]}" "${p99[-1]}" "${scpu[-1]}" "${dcpu[-1]}"
        echo "       server threads at half rate, per request: $split"
    done
    echo "---- $engine, $runs runs of ${duration}s, $conns connections (wrk -t1)"
    echo "healthz req/s:           $(stats "${h[@]}")"
    echo "ingest req/s:            $(stats "${i[@]}")"
    echo "ingest/healthz ratio:    $(stats "${ratio[@]}")"
    echo "idempotent req/s:        $(stats "${k[@]}")"
    echo "idempotent/plain ratio:  $(stats "${kratio[@]}")"
    echo "provider ids req/s:      $(stats "${r[@]}")"
    echo "provider ids/plain:      $(stats "${rratio[@]}")"
    echo "half-rate req/s:         $(stats "${lrate[@]}")"
    echo "half-rate p50 ms:        $(stats "${p50[@]}")"
    echo "half-rate p99 ms:        $(stats "${p99[@]}")"
    echo "half-rate CPU us/req:    server $(stats "${scpu[@]}"); database $(stats "${dcpu[@]}")"
    for kind in $(printf '%s\n' "${!tcpu[@]}" | sort); do
        # shellcheck disable=SC2086 # one value per run, space-separated
        printf 'half-rate %-16s CPU us/req %s; context switches/req %s\n' "$kind:" "$(stats ${tcpu[$kind]})" "$(stats ${tswitch[$kind]})"
    done
}

for engine in $engines; do
    bench_engine "$engine"
done
