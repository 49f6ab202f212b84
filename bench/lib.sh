# Shared by the HTTP load benchmarks (bench/load.sh, bench/tap.sh): wrk,
# the server binary, and reading wrk's output. Source it after `cd "$root"`.

step() { printf '\n==== %s\n' "$*"; }

# Installs Debian's wrk if missing.
ensure_wrk() {
    if ! command -v wrk >/dev/null; then
        step "Installing wrk (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
    fi
}

# Sets SENDPROMPTLY_BIN (a release build; debug with BENCH_QUICK=1) unless given.
ensure_server_binary() {
    if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
        if [[ "${BENCH_QUICK:-}" == "1" ]]; then
            step "Building the server (debug: a smoke run measures nothing)"
            cargo build --locked -p sendpromptly-server --bin sendpromptly
            SENDPROMPTLY_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/sendpromptly"
        else
            step "Building the release server"
            cargo build --release --locked -p sendpromptly-server --bin sendpromptly
            SENDPROMPTLY_BIN="${CARGO_TARGET_DIR:-$root/target}/release/sendpromptly"
        fi
    fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wrk's "Requests/sec:" figure, and its latency percentiles in milliseconds.
rps() { awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$1"; }
pct() {
    awk -v p="$2%" '$1 == p {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000;
        printf "%.2f", v }' "$1"
}
# Non-2xx answers and socket errors in a wrk report.
errors() { awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$1"; }
# min median max of the arguments.
stats() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {printf "min %s  median %s  max %s", a[1], a[int((NR + 1) / 2)], a[NR]}'
}

# The CPU time process PID has used so far, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The CPU time of the PostgreSQL cluster whose data directory is $1 (its
# postmaster and every child: backends, WAL writer, checkpointer, autovacuum),
# in clock ticks. A child that exits in between takes its ticks with it.
cluster_cpu_ticks() {
    local postmaster p
    postmaster="$(head -1 "$1/postmaster.pid")"
    for p in "$postmaster" $(pgrep -P "$postmaster"); do
        cat "/proc/$p/stat" 2>/dev/null || true
    done | awk '{t += $14 + $15} END {print t + 0}'
}
# Per kind of thread of process PID (its name without a trailing number:
# tokio-rt-worker, sqlx-sqlite-wor, ...): "KIND TICKS SWITCHES" lines, the CPU
# ticks and context switches (voluntary + not) its threads have had so far.
# A thread that exits in between takes its counts with it.
thread_usage() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s %s\n' "$(cat "$t/comm" 2>/dev/null)" \
            "$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null)" \
            "$(awk '/ctxt_switches/ {s += $2} END {print s + 0}' "$t/status" 2>/dev/null)"
    done | awk 'NF == 3 {sub(/-?[0-9]+$/, "", $1); t[$1] += $2; c[$1] += $3} END {for (k in t) print k, t[k], c[k]}' | sort
}
# Per kind of thread, between two thread_usage snapshots (files) and over a
# wrk report's requests: "KIND CPU_US SWITCHES" per request, for kinds that
# used any; then "all" with the totals.
thread_split() {
    join "$1" "$2" | awk -v n="$(requests "$3")" -v hz="$(getconf CLK_TCK)" '
        {cpu = ($4 - $2) * 1e6 / hz / n; cs = ($5 - $3) / n; tc += cpu; tcs += cs
         if (cpu >= 0.5 || cs >= 0.01) printf "%s %.0f %.2f\n", $1, cpu, cs}
        END {printf "all %.0f %.2f\n", tc, tcs}'
}
# The requests a wrk report counts ("N requests in …").
requests() { awk '/ requests in / {print $1}' "$1"; }
# Microseconds of CPU per request: ticks used (from cpu_ticks) over a wrk report's requests.
cpu_us_per_request() {
    awk -v t="$1" -v n="$(requests "$2")" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", t * 1e6 / hz / n}'
}
