#!/usr/bin/env bash
# Detection benchmark: incident-open lag after deadlines and the sweeper's CPU
# with N events awaiting results (sendpromptly-server/benches/detection.rs),
# then the release server's resident memory on that database and the on-disk
# bytes per tracked event.
#
#   bench/detection.sh [PENDING...]     (default: 1000 1000000)
#
# The first BENCH_APPLIED pending events (default 10,000) are written through
# Store::apply, one transaction each; the rest are copies of the first one's
# rows made by set-based SQL (a million per transaction), so 10,000,000
# takes minutes, not hours. The database lives in BENCH_DIR (default
# /dev/shm when it has room for ~2 KiB per event and leaves as much memory
# free, else /tmp); the
# sweeper's reads do not depend on fsync. BENCH_PENDING_KIND=copy tracks provider
# copies awaiting the app's receipt (the tap's `missing_receipt`) instead of
# receipts awaiting a result. Settings: BENCH_PROBES (default 1000),
# BENCH_WINDOW_MS (default 5000), BENCH_DIR, SENDPROMPTLY_BIN, CARGO_TARGET_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n==== %s\n' "$*"; }
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(1000 1000000)
largest=0
for n in "${sizes[@]}"; do ((n > largest)) && largest=$n; done
shm_free_kib="$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')"
mem_free_kib="$(awk '/MemAvailable/ {print $2}' /proc/meminfo)"
# /dev/shm is memory: only when it leaves room for everything else.
if [[ -z "${BENCH_DIR:-}" && -d /dev/shm && "${shm_free_kib:-0}" -gt $((largest * 2)) && "$mem_free_kib" -gt $((largest * 4)) ]]; then
    dir_base=/dev/shm
else
    dir_base="${BENCH_DIR:-/tmp}"
fi
work="$(mktemp -d "$dir_base/sendpromptly-detection.XXXXXX")"
server_pid=""
cleanup() {
    local status=$?
    [[ -n "$server_pid" ]] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

profile=(--release); [[ "${BENCH_QUICK:-}" == "1" ]] && profile=()
step "Building the detection bench and the server"
cargo build --locked "${profile[@]}" -p sendpromptly-server --bin sendpromptly
if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
    SENDPROMPTLY_BIN="${CARGO_TARGET_DIR:-$root/target}/$([[ ${#profile[@]} -gt 0 ]] && echo release || echo debug)/sendpromptly"
fi
bench_cmd=(cargo bench --locked -p sendpromptly-server --bench detection)
[[ "${BENCH_QUICK:-}" == "1" ]] && bench_cmd=(cargo test --locked -p sendpromptly-server --bench detection)

for n in "${sizes[@]}"; do
    step "$n pending events"
    db="$work/detection-$n.db"
    started=$SECONDS
    BENCH_PENDING="$n" BENCH_DB="$db" "${bench_cmd[@]}" 2> >(grep -v '"INFO"\| INFO ' >&2)
    bytes="$(du -cb "$db"* | tail -1 | cut -f1)"
    echo "on disk: $bytes bytes = $((bytes / n)) bytes per tracked event (receipt + timeline + indexes; no result)"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$SENDPROMPTLY_BIN" --database-url "sqlite://$db" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 3 # a dozen sweeper passes
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "error: the server did not start on the bench database:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    echo "server RSS with $n tracked events: $(( $(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status") / 1024 )) MiB"
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    echo "$n pending events: $((SECONDS - started)) s in all (fill, measurements, server start)"
    rm -f "$db"*
done
