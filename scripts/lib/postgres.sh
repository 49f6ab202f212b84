# Start and stop a throwaway PostgreSQL cluster (sourced by scripts/test-postgres.sh
# and bench/load.sh; bash only).
#
#   pg_start DBNAME [fast|durable]
#       Installs Debian's `postgresql` package when no initdb is found under
#       /usr/lib/postgresql/*/bin (needs root, as on CI), starts a fresh cluster
#       in a temporary directory owned by the `postgres` OS user (initdb refuses
#       root), listening on a free loopback port only with trust authentication,
#       and creates DBNAME. `fast` (the default) turns fsync off (tests);
#       `durable` keeps PostgreSQL's defaults (fsync, synchronous_commit: for
#       benchmarks of durable writes). Sets PG_URL, PG_WORKDIR, PG_LOG.
#   pg_stop [STATUS]
#       Stops the cluster and removes its directory (kept, with its log, when
#       STATUS is non-zero and SENDPROMPTLY_PG_KEEP=1). Safe to call twice.

pg_find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

pg_as() {
    if [[ "$(id -u)" == "0" ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
    local dbname="$1" mode="${2:-fast}" owner
    if ! PG_BINDIR="$(pg_find_bindir)"; then
        if [[ "$(id -u)" != "0" ]]; then
            echo "error: PostgreSQL is not installed and this is not root; install the 'postgresql' package" >&2
            return 1
        fi
        echo "installing Debian's postgresql package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql >/dev/null
        # The package may start its own cluster on 5432: we do not use it.
        PG_BINDIR="$(pg_find_bindir)" || { echo "error: initdb not found after installing postgresql" >&2; return 1; }
    fi
    echo "using $PG_BINDIR"
    if [[ "$(id -u)" == "0" ]]; then
        if ! id postgres >/dev/null 2>&1; then
            useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        fi
        owner=postgres
    else
        owner="$(id -un)"
    fi
    # A free loopback port: ask the kernel for one.
    PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo $((20000 + RANDOM % 20000)))"
    PG_WORKDIR="$(mktemp -d /tmp/sendpromptly-pg.XXXXXX)"
    chown "$owner" "$PG_WORKDIR"
    chmod 700 "$PG_WORKDIR"
    PG_DATA="$PG_WORKDIR/data"
    PG_LOG="$PG_WORKDIR/server.log"
    echo "throwaway cluster on 127.0.0.1:$PG_PORT ($PG_WORKDIR, $mode)"
    pg_as "$PG_BINDIR/initdb" -D "$PG_DATA" --username=postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null 2>&1 \
        || pg_as "$PG_BINDIR/initdb" -D "$PG_DATA" --username=postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
    cat >>"$PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_WORKDIR'
max_connections = 300
CONF
    if [[ "$mode" == "fast" ]]; then
        cat >>"$PG_DATA/postgresql.conf" <<CONF
# A throwaway test server: durability is not needed, speed is.
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    fi
    cat >"$PG_DATA/pg_hba.conf" <<CONF
local all all trust
host  all all 127.0.0.1/32 trust
CONF
    pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null
    pg_as "$PG_BINDIR/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$dbname"
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/$dbname"
}

pg_stop() {
    local status="${1:-0}"
    [[ -n "${PG_WORKDIR:-}" && -d "$PG_WORKDIR" ]] || return 0
    if [[ -f "$PG_DATA/postmaster.pid" ]]; then
        pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ $status -ne 0 && "${SENDPROMPTLY_PG_KEEP:-}" == "1" ]]; then
        echo "kept $PG_WORKDIR (server log: $PG_LOG)" >&2
    else
        if [[ $status -ne 0 && -f "$PG_LOG" ]]; then
            echo "---- last lines of the PostgreSQL log" >&2
            tail -n 30 "$PG_LOG" >&2 || true
        fi
        rm -rf "$PG_WORKDIR"
    fi
    PG_WORKDIR=""
}
