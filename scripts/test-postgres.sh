#!/usr/bin/env bash
# Runs SendPromptly's PostgreSQL tests against a throwaway PostgreSQL server.
#
# 1. Installs Debian's `postgresql` package when no initdb is found under
#    /usr/lib/postgresql/*/bin (needs root, as on CI).
# 2. Starts a fresh cluster in a temporary directory, owned by the
#    `postgres` OS user (initdb refuses to run as root), listening on a free
#    loopback port only, with trust authentication for local connections.
# 3. Creates the database `sendpromptly_test`, exports
#    SENDPROMPTLY_TEST_POSTGRES_URL and SENDPROMPTLY_REQUIRE_POSTGRES=1 (so
#    no test can silently skip) and runs the PostgreSQL suites:
#    the Store conformance suite and the multi-instance test.
# 4. Always stops the cluster and removes the directory on exit.
#
# Arguments are passed to `cargo test` (e.g. `--release`, or `-- --nocapture`).
# Settings (environment):
#   SENDPROMPTLY_PG_KEEP=1   leave the cluster's directory in place (logs) on failure
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==== %s\n' "$*"; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

step "PostgreSQL server binaries"
if ! bindir="$(find_bindir)"; then
    if [[ "$(id -u)" != "0" ]]; then
        echo "error: PostgreSQL is not installed and this is not root; install the 'postgresql' package" >&2
        exit 1
    fi
    echo "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    # The package may start its own cluster on 5432: we do not use it.
    bindir="$(find_bindir)" || { echo "error: initdb not found after installing postgresql" >&2; exit 1; }
fi
echo "using $bindir"

# Who runs the server: initdb and postgres refuse root.
if [[ "$(id -u)" == "0" ]]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    as_pg() { runuser -u postgres -- "$@"; }
    owner=postgres
else
    as_pg() { "$@"; }
    owner="$(id -un)"
fi

# A free loopback port: ask the kernel for one.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo $((20000 + RANDOM % 20000)))"

workdir="$(mktemp -d /tmp/sendpromptly-pg.XXXXXX)"
chown "$owner" "$workdir"
chmod 700 "$workdir"
data="$workdir/data"
log="$workdir/server.log"

cleanup() {
    local status=$?
    if [[ -f "$data/postmaster.pid" ]]; then
        as_pg "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ $status -ne 0 && "${SENDPROMPTLY_PG_KEEP:-}" == "1" ]]; then
        echo "kept $workdir (server log: $log)" >&2
    else
        if [[ $status -ne 0 && -f "$log" ]]; then
            echo "---- last lines of the PostgreSQL log" >&2
            tail -n 30 "$log" >&2 || true
        fi
        rm -rf "$workdir"
    fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Throwaway cluster on 127.0.0.1:$port ($workdir)"
as_pg "$bindir/initdb" -D "$data" --username=postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null 2>&1 \
    || as_pg "$bindir/initdb" -D "$data" --username=postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$workdir'
max_connections = 300
# A throwaway test server: durability is not needed, speed is.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
cat >"$data/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.1/32 trust
EOF
as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null
as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres sendpromptly_test

export SENDPROMPTLY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/sendpromptly_test"
export SENDPROMPTLY_REQUIRE_POSTGRES=1
echo "SENDPROMPTLY_TEST_POSTGRES_URL=$SENDPROMPTLY_TEST_POSTGRES_URL"

step "PostgreSQL tests: Store conformance suite, multi-instance test"
cargo test -p sendpromptly-server --locked --test store_postgres --test multi_instance "$@"

step "PostgreSQL tests passed"
