#!/usr/bin/env bash
# Runs SendPromptly's PostgreSQL tests against a throwaway PostgreSQL server.
#
# (The cluster's start and stop live in scripts/lib/postgres.sh.)
# 1. Installs Debian's `postgresql` package when no initdb is found under
#    /usr/lib/postgresql/*/bin (needs root, as on CI).
# 2. Starts a fresh cluster in a temporary directory, owned by the
#    `postgres` OS user (initdb refuses to run as root), listening on a free
#    loopback port only, with trust authentication for local connections.
# 3. Creates the database `sendpromptly_test`, exports
#    SENDPROMPTLY_TEST_POSTGRES_URL and SENDPROMPTLY_REQUIRE_POSTGRES=1 (so
#    no test can silently skip) and runs the PostgreSQL suites:
#    the Store conformance suite (scoped keys and the audit log included), the multi-instance test, tests/hangups.rs,
#    tests/analytics.rs (the rollup's deltas and their fold),
#    the Stripe reconciler's two-instance tests (tests/reconcile_*.rs), the
#    timeline tampered with by psql (tests/tamper.rs) and the
#    crash loop of three instances during a bulk reprocess (tests/faults.rs).
# 4. Always stops the cluster and removes the directory on exit.
#
# Arguments are passed to `cargo test` (e.g. `--release`, or `-- --nocapture`).
# Settings (environment):
#   SENDPROMPTLY_PG_KEEP=1   leave the cluster's directory in place (logs) on failure
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==== %s\n' "$*"; }
# shellcheck source=lib/postgres.sh
source "$root/scripts/lib/postgres.sh"

trap 'status=$?; pg_stop $status; exit $status' EXIT
trap 'exit 130' INT TERM

step "Throwaway PostgreSQL cluster"
pg_start sendpromptly_test fast

export SENDPROMPTLY_TEST_POSTGRES_URL="$PG_URL"
export SENDPROMPTLY_REQUIRE_POSTGRES=1
echo "SENDPROMPTLY_TEST_POSTGRES_URL=$SENDPROMPTLY_TEST_POSTGRES_URL"

step "PostgreSQL tests: Store conformance suite, multi-instance test, Stripe reconciler, clients that hang up"
cargo test -p sendpromptly-server --locked --test store_postgres --test multi_instance \
    --test reconcile_stripe --test reconcile_e2e "$@"
# (its SQLite case ran in the workspace tests already)
cargo test -p sendpromptly-server --locked --test tamper "$@" postgres
# (its SQLite cases ran in the workspace tests already)
cargo test -p sendpromptly-server --locked --test hangups "$@" postgres
# The seeded analytics check and the SLO burn alert (the rollup's deltas and its fold)
cargo test -p sendpromptly-server --locked --test analytics "$@" postgres

step "PostgreSQL: three instances killed and restarted in a loop during a bulk reprocess"
# (its SQLite fault-injection test ran in the workspace tests already)
cargo test -p sendpromptly-server --locked --test faults "$@" postgres

step "PostgreSQL tests passed"
