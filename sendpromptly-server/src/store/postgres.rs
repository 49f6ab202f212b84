//! PostgreSQL implementation of the [`Store`] trait, for running several
//! stateless `sendpromptly serve` instances on one database.
//!
//! It mirrors the SQLite store: the same tables, the event record's JSON as
//! the source of truth with indexed copies of the columns queries filter on,
//! and one private helper, `persist`, that writes what a [`Transition`]
//! changed. What differs is how concurrent writers from several processes
//! are kept from doing anything twice:
//!
//! - **Group commit.** `apply`, `apply_with_key` and `apply_to_incident`
//!   queue to one writer task per instance, which runs what is queued as
//!   one transaction (see `group`): before it reads anything, the group
//!   takes the advisory locks of its idempotency keys and then of every
//!   event it names (new or stored: which are new is only known after the
//!   read), each set in key order; then its API keys are share-locked and
//!   its event rows locked in row order. A group that fails anyway (a
//!   fingerprint or other uniqueness conflict of one command, a lost
//!   connection) is rolled back and its commands run again one transaction
//!   each; a creation racing it is not such a failure (next bullet).
//! - **Row locks, short transactions.** Every read-modify-write of an event
//!   locks its row (`SELECT … FOR NO KEY UPDATE`) for one short transaction;
//!   nothing is held across network I/O (the dispatcher's HTTP call happens
//!   between two transactions, under a lease stored in the row).
//! - **Work queues with `SKIP LOCKED`.** The sweeper claims due events and
//!   the dispatcher claims due callbacks with `FOR NO KEY UPDATE SKIP
//!   LOCKED`: instances polling at the same moment take disjoint rows, and
//!   a row one instance has just handled no longer matches (`due_at` or the
//!   lease changed), so each due event is ticked once and each callback
//!   attempt is claimed once.
//! - **Creation races.** The first receipt (or result) of an event inserts
//!   its row; two instances receiving the same new event at once serialise
//!   on a transaction-scoped advisory lock on the event's key, taken before
//!   the event is read (by a group for all its events at once), so the
//!   second sees the first's row and records a duplicate: no creator loses
//!   on the unique key, and overlapping groups on several instances never
//!   fall back one by one for it. (The alternative, `INSERT … ON CONFLICT
//!   DO NOTHING` and re-running only the losers, needs a second pass on
//!   every conflict: re-read the lost events, discard and re-run their
//!   commands, re-derive those commands' remembered idempotency responses,
//!   rewrite. Locking first needs none, and costs nothing extra when
//!   nothing races: the group took its new events' locks anyway, now in
//!   the same statement as its idempotency keys'.) Idempotency keys are
//!   inserted with `ON CONFLICT DO NOTHING` and read `FOR UPDATE`, so one
//!   request per key proceeds, whichever instance takes it.
//! - **Lock order.** Advisory locks before row locks: idempotency keys,
//!   then event keys, each ascending (a single apply takes its event's only
//!   when the event does not exist yet, so holding no event row; nothing
//!   else waits on an event's advisory lock). Writers lock an event row
//!   before its outbox row, and several event rows in row order (an
//!   alert's finish locks its incidents' events that way before the alert
//!   row); the claims lock only outbox rows and wait on nothing, so
//!   transactions cannot deadlock.
//! - **One alert group, one decider.** The alert claim takes a
//!   transaction-scoped advisory lock on a group's key without waiting
//!   before it locks and decides any of the group's rows (single, held,
//!   digest); a group another instance is deciding is left for the next
//!   round. So a burst on several instances gives one single and then one
//!   digest per window, as on one.
//! - **Migrations** run under an advisory lock, so instances starting
//!   together apply them once.
//!
//! Times are `BIGINT` unix milliseconds, as in SQLite, so leases compare
//! exactly. Connections come from one pool sized by [`PoolSettings`]; the
//! group writer keeps the connection its last group committed on while
//! groups come back to back (`KeptConnections`: no ping before each group).
//!
//! Everything else (the orchestration, the queues, the reads) is the
//! shared [`Engine`]; this file holds the pool, the SQL only PostgreSQL
//! speaks (row locks, advisory locks, `json_array_elements`), and the group
//! commit's PostgreSQL side.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sendpromptly_core::model::EventKey;
use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Acquire, Pool, Postgres, Row, Transaction};

use super::codec::{insert_error, ms};
use super::engine::{self, Backend, Engine};
use super::group::{
    self, EventWrite, GroupCounters, GroupEngine, GroupIo, GroupJob, GroupLoad, GroupWanted,
    GroupWriter, JobResult, KeyRows, KeyVerdict, LoadedEvent, StoredKey, group_failed,
};
use super::migrations::{self, MIGRATIONS_TABLE, Migration};
use super::rows;
use super::sql::{self, Arg, Dialect, bind};
use super::{IdempotentOutcome, StoreError, StoreResult};

/// `persistent(!PER_CALL_PLAN)`: the statement is sent unnamed and planned
/// for each call's parameters and the tables' current size, instead of
/// prepared once per connection. For the group's lookups by key, whose
/// right plan depends on the table's size: a prepared statement switches
/// to a generic plan after five calls and keeps it, so one made while a
/// new database's tables were small keeps scanning them as they grow,
/// until autovacuum's ANALYZE invalidates it (ingest at 35–70 % for up to
/// a minute, measured). Costs one more round trip (parse and describe)
/// and a plan per call, which measured nothing on a database with
/// statistics.
const PER_CALL_PLAN: bool = true;

/// The advisory lock key that serialises migrations ("SPMIGRAT").
const MIGRATION_LOCK: i64 = 0x5350_4d49_4752_4154;
/// Group-commit writer tasks. More than one would overlap one group's round
/// trips and commit with another's (each holds a connection while its group
/// runs; at most half the pool, see [`group_writers`]), and concurrent
/// groups can run: they neither conflict on creations (they lock their
/// events' keys first) nor deadlock on the analytics rollup (its triggers
/// append deltas, migration 0015). But four measured no faster on a
/// 2-core machine, with a higher p99 (`docs/benchmarks.md`, "PostgreSQL:
/// rollups without deadlocks"), so one stays the default.
const GROUP_WRITERS: usize = 1;

/// The writer tasks for a pool of `max_connections`: [`GROUP_WRITERS`],
/// leaving at least half the pool to reads and the background loops.
fn group_writers(max_connections: u32) -> usize {
    GROUP_WRITERS.min((max_connections as usize / 2).max(1))
}
/// How long a one-by-one idempotent write claims its key (a crash in
/// between leaves it to be taken over after this).
const IDEMPOTENCY_CLAIM_MILLIS: i64 = 60_000;

/// Connection pool settings (flags `--database-max-connections` and
/// `--database-acquire-timeout-seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections this process opens.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a caller waits for a free connection (and the first connect
    /// at start waits for the server) before failing.
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this.
    pub idle_timeout: Duration,
    /// Connections are recycled after this (lets a fail-over or a pooler
    /// rebalance).
    pub max_lifetime: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(30 * 60),
        }
    }
}

/// The PostgreSQL store: the shared engine over [`PgBackend`].
pub type PostgresStore = Engine<PgBackend>;

/// PostgreSQL's connections: one pool.
#[derive(Clone, Debug)]
pub struct PgBackend {
    pool: PgPool,
    /// The group writer's connections between groups (handed back on close).
    kept: Arc<KeptConnections>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`)
    /// with the default [`PoolSettings`]. Fails at once when the server
    /// cannot be reached or refuses the credentials.
    ///
    /// Does not migrate: call [`Store::migrate`](super::Store::migrate).
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        Self::connect_with(url, PoolSettings::default()).await
    }

    /// Connects with explicit pool settings.
    pub async fn connect_with(url: &str, settings: PoolSettings) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url)?.application_name("sendpromptly");
        // One direct connection first: the pool would retry until its
        // timeout and report only that, hiding "connection refused",
        // "password authentication failed" or "database does not exist".
        let first = tokio::time::timeout(
            settings.acquire_timeout,
            <PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| {
            StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer from the server within {} s",
                    settings.acquire_timeout.as_secs()
                ),
            )))
        })??;
        let _ = sqlx::Connection::close(first).await;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(settings.min_connections.min(settings.max_connections))
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Some(settings.idle_timeout))
            .max_lifetime(Some(settings.max_lifetime))
            // A connection that the server closed (restart, fail-over) is
            // noticed before it is handed out.
            .test_before_acquire(true)
            .after_release(|conn, _| super::pool::reuse_unless_in_transaction(conn, "postgres"))
            .connect_with(options)
            .await?;
        let writers = group_writers(settings.max_connections);
        let kept = Arc::new(KeptConnections::new(pool.clone()));
        let groups = PgGroups {
            pool: pool.clone(),
            kept: Arc::clone(&kept),
        };
        let group = GroupWriter::start(groups, writers);
        Ok(Engine::new(PgBackend { pool, kept }, group))
    }

    /// The pool (for tests and tools that inspect the database).
    pub fn pool(&self) -> &PgPool {
        &self.backend.pool
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        // The pool is marked closed before the kept connections go back
        // (see `KeptConnections::keep`).
        let closing = self.backend.pool.close();
        self.backend.kept.release_all();
        closing.await;
    }
}

/// PostgreSQL's dialect: row locks on what a transaction will change
/// (`FOR NO KEY UPDATE`), `SKIP LOCKED` on the work queues so instances
/// polling together take disjoint rows, `json_array_elements`, `ILIKE`.
const DIALECT: Dialect = Dialect {
    load_by_key_locked: concat!(sql::load_by_key!(), " FOR NO KEY UPDATE OF e"),
    load_by_incident_locked: concat!(sql::load_by_incident!(), " FOR NO KEY UPDATE OF e"),
    project_for_update: concat!(sql::project_by_id!(), " FOR NO KEY UPDATE"),
    api_key_for_update: concat!(sql::api_key_revoked_at!(), " FOR UPDATE"),
    signing_secrets_for_update: concat!(sql::all_signing_secrets!(), " FOR UPDATE"),
    idempotency_for_update: concat!(sql::idempotency_key!(), " FOR UPDATE"),
    // Share-locked so that a revocation (an `UPDATE`) waits for the
    // transaction to commit.
    valid_api_keys: "SELECT k.project_id, k.id FROM api_keys k WHERE k.revoked_at IS NULL \
         AND (k.project_id, k.id) IN \
         (SELECT j ->> 0, j ->> 1 FROM json_array_elements($1::json) AS j) \
         ORDER BY k.id FOR SHARE OF k",
    // Rows another instance is handling are skipped, not waited for.
    sweep_select: concat!(sql::sweep_select!(), " FOR NO KEY UPDATE SKIP LOCKED"),
    claim_select: concat!(sql::claim_select!(), " FOR NO KEY UPDATE SKIP LOCKED"),
    // Lock order: the event row, then the outbox row.
    finish_delivery_load: "SELECT e.pk, e.project_id, e.record, e.chain_head FROM deliveries d \
         JOIN events e ON e.pk = d.event_pk \
         WHERE d.reprocess_id = $1 AND d.project_id = $2 FOR NO KEY UPDATE OF e",
    delivery_lock: Some(
        "SELECT state AS delivery_state, lease_until FROM deliveries \
         WHERE reprocess_id = $1 FOR NO KEY UPDATE",
    ),
    // Candidates only: each is locked by `claim_alert_lock`, a grouping one
    // after its group's lock, so two instances never decide one group at once.
    claim_alerts_select: sql::claim_alerts_select!(),
    claim_alert_lock: concat!(sql::claim_alert_lock!(), " FOR NO KEY UPDATE SKIP LOCKED"),
    alert_group_lock: Some(
        "SELECT CASE WHEN pg_try_advisory_xact_lock(hashtextextended('alert group ' || $1, 0)) \
         THEN 1 ELSE 0 END::BIGINT AS locked",
    ),
    digest_members_select: concat!(
        sql::digest_members_select!(),
        " FOR NO KEY UPDATE SKIP LOCKED"
    ),
    pace_batches_select: concat!(sql::pace_batches_select!(), " FOR UPDATE SKIP LOCKED"),
    // An event being changed right now is skipped (and its conditions are
    // checked again on the locked row).
    purge_select: concat!(sql::purge_select!(), " FOR UPDATE OF e SKIP LOCKED"),
    daily_activity: "SELECT day, event_type, SUM(ev)::BIGINT AS events, \
         SUM(fl)::BIGINT AS failures, SUM(inc)::BIGINT AS incidents \
         FROM ( \
           SELECT created_at / $3 AS day, event_type, 1 AS ev, 0 AS fl, 0 AS inc \
             FROM events WHERE project_id = $1 AND created_at >= $2 \
           UNION ALL \
           SELECT t.at / $3, e.event_type, 0, 1, 0 \
             FROM timeline t JOIN events e ON e.pk = t.event_pk \
             WHERE t.kind = 'result.failure' AND t.at >= $2 AND e.project_id = $1 \
               AND (t.detail::jsonb ->> 'ignored') IS NULL \
           UNION ALL \
           SELECT opened_at / $3, event_type, 0, 0, 1 \
             FROM incidents WHERE project_id = $1 AND opened_at >= $2 \
         ) AS activity GROUP BY day, event_type \
         ORDER BY day, event_type COLLATE \"C\" NULLS FIRST",
    like: "ILIKE",
    like_escape: "",
    row_values: true,
    // The folded rollup plus the deltas not folded yet (migration 0015), in
    // one statement: one snapshot, so a fold committing meanwhile is seen
    // wholly or not at all and no delta counts twice.
    stats_rows: concat!(
        "SELECT metric, day, event_type, bucket, SUM(n)::BIGINT AS n FROM ( \
         SELECT metric, day, event_type, bucket, n FROM stats_hist ",
        sql::stats_rows_where!(),
        " UNION ALL SELECT metric, day, event_type, bucket, n FROM stats_delta ",
        sql::stats_rows_where!(),
        ") AS r GROUP BY metric, day, event_type, bucket"
    ),
    slo_counts: concat!(
        "SELECT SUM(received)::BIGINT AS received, SUM(good)::BIGINT AS good FROM ( \
         SELECT received, good FROM slo_slots ",
        sql::slo_counts_where!(),
        " UNION ALL SELECT received, good FROM slo_delta ",
        sql::slo_counts_where!(),
        ") AS s"
    ),
};

#[async_trait]
impl Backend for PgBackend {
    type Db = Postgres;
    type Row = PgRow;
    const SQL: &'static Dialect = &DIALECT;

    fn reader(&self) -> &Pool<Postgres> {
        &self.pool
    }

    /// READ COMMITTED; rows are locked explicitly.
    async fn write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// REPEATABLE READ: a record and its timeline come from one snapshot.
    async fn snapshot(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn write_one(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        Ok(bind::<Postgres>(sql, args)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    const MIGRATIONS: &'static [Migration] = migrations::POSTGRES;

    async fn prepare_migrations(conn: &mut PgConnection) -> StoreResult<()> {
        // Instances starting together take turns; the later ones find
        // nothing left to do. DDL is transactional: a failed migration
        // leaves nothing behind.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        let exists: Option<String> =
            sqlx::query_scalar(&format!("SELECT to_regclass('{MIGRATIONS_TABLE}')::text"))
                .fetch_one(&mut *conn)
                .await?;
        if exists.is_none() {
            sqlx::query(&format!(
                "CREATE TABLE {MIGRATIONS_TABLE} (\
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            ))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// The plan of `query` with sequential scans disabled (a tiny test
    /// table would be scanned anyway).
    async fn explain(&self, query: &str, params: usize) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await?;
        let sql = format!("EXPLAIN {query}");
        let args = vec![Arg::Int(1); params];
        let lines = bind::<Postgres>(&sql, &args)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok(row.try_get::<String, _>(0)?))
            .collect::<StoreResult<Vec<_>>>()?;
        tx.rollback().await?;
        Ok(lines)
    }

    async fn probe_write(&self) -> StoreResult<()> {
        // The row-share lock on `events` every write takes: a table locked
        // against writers (a long migration, an operator's LOCK) holds it up.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM events WHERE false FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_events(
        conn: &mut PgConnection,
        writes: &[EventWrite<'_>],
    ) -> StoreResult<Vec<i64>> {
        write_event_rows(conn, writes).await
    }

    async fn lock_new_event(
        conn: &mut PgConnection,
        project_id: &str,
        key: &EventKey,
    ) -> StoreResult<bool> {
        // A new event: serialise with any other instance creating the same
        // one, then look again (it may have just committed it).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(event_lock_key(project_id, key))
            .execute(conn)
            .await?;
        Ok(true)
    }

    async fn delete_events(conn: &mut PgConnection, pks: &[i64]) -> StoreResult<()> {
        // Children first (foreign keys).
        for statement in [
            "DELETE FROM reprocess_batch_items WHERE incident_id IN \
             (SELECT id FROM incidents WHERE event_pk = ANY($1))",
            "DELETE FROM proof_links WHERE incident_id IN \
             (SELECT id FROM incidents WHERE event_pk = ANY($1))",
            "DELETE FROM deliveries WHERE event_pk = ANY($1)",
            "DELETE FROM provider_copies WHERE event_pk = ANY($1)",
            "DELETE FROM timeline WHERE event_pk = ANY($1)",
            "DELETE FROM incidents WHERE event_pk = ANY($1)",
            "DELETE FROM events WHERE pk = ANY($1)",
        ] {
            sqlx::query(statement).bind(pks).execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn run_alone(&self, job: GroupJob) -> JobResult {
        apply_one(&self.pool, job).await
    }

    async fn fold_rollups(&self, max_rows: u32) -> StoreResult<super::RollupFold> {
        let mut tx = self.pool.begin().await?;
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(FOLD_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !mine {
            tx.rollback().await?;
            return Ok(super::RollupFold {
                folded: 0,
                elsewhere: true,
            });
        }
        let mut folded = 0;
        for statement in [FOLD_STATS, FOLD_SLOS] {
            let moved: i64 = sqlx::query_scalar(statement)
                .bind(i64::from(max_rows))
                .fetch_one(&mut *tx)
                .await?;
            folded += u64::try_from(moved).unwrap_or(0);
            // A death here rolls the stats deltas' move back with the rest.
            error_point!("rollups.mid_fold");
        }
        tx.commit().await?;
        Ok(super::RollupFold {
            folded,
            elsewhere: false,
        })
    }
}

// ---------------------------------------------------------------------------
// The analytics fold (migration 0015)

/// The advisory lock key that makes one instance fold at a time ("SPROLLUP").
const FOLD_LOCK: i64 = 0x5350_524f_4c4c_5550;

/// Moves up to `$1` deltas of `stats_delta` into `stats_hist`: deleted and
/// returned, summed per key, upserted in key order; the rows moved.
const FOLD_STATS: &str = "WITH moved AS ( \
     DELETE FROM stats_delta WHERE ctid = ANY (ARRAY(SELECT ctid FROM stats_delta LIMIT $1)) \
     RETURNING project_id, metric, day, event_type, bucket, n \
   ), upserted AS ( \
     INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n) \
     SELECT project_id, metric, day, event_type, bucket, SUM(n)::BIGINT FROM moved \
     GROUP BY project_id, metric, day, event_type, bucket \
     ORDER BY project_id, metric, day, event_type, bucket \
     ON CONFLICT (project_id, metric, day, event_type, bucket) \
     DO UPDATE SET n = stats_hist.n + excluded.n \
   ) SELECT count(*)::BIGINT FROM moved";

/// [`FOLD_STATS`] for `slo_delta` into `slo_slots`.
const FOLD_SLOS: &str = "WITH moved AS ( \
     DELETE FROM slo_delta WHERE ctid = ANY (ARRAY(SELECT ctid FROM slo_delta LIMIT $1)) \
     RETURNING project_id, event_type, slot, received, good \
   ), upserted AS ( \
     INSERT INTO slo_slots (project_id, event_type, slot, received, good) \
     SELECT project_id, event_type, slot, SUM(received)::BIGINT, SUM(good)::BIGINT FROM moved \
     GROUP BY project_id, event_type, slot ORDER BY project_id, event_type, slot \
     ON CONFLICT (project_id, event_type, slot) DO UPDATE SET \
     received = slo_slots.received + excluded.received, good = slo_slots.good + excluded.good \
   ) SELECT count(*)::BIGINT FROM moved";

// ---------------------------------------------------------------------------
// Advisory locks

/// The advisory-lock key of an event: the first 8 bytes of a SHA-256 of
/// its identity (a collision only makes two creations wait for each other).
fn event_lock_key(project_id: &str, key: &EventKey) -> i64 {
    event_lock_key_of(project_id, key.provider.as_str(), &key.event_id)
}

/// [`event_lock_key`] from the key's parts (as a group names its events).
fn event_lock_key_of(project_id: &str, provider: &str, event_id: &str) -> i64 {
    lock_key(&[project_id, provider, event_id])
}

/// The advisory lock of an idempotency key. Every writer takes the locks of
/// its idempotency keys (ascending) before any event's (a group in
/// [`GroupIo::load`], [`apply_one`] before its claim), so two transactions
/// never wait for each other in opposite orders.
fn idempotency_lock_key(project_id: &str, key: &str) -> i64 {
    lock_key(&["idempotency", project_id, key])
}

/// The first 8 bytes of the SHA-256 of `parts`, NUL-separated.
fn lock_key(parts: &[&str]) -> i64 {
    let mut hash = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash.update([0]);
        }
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Takes the transaction-scoped advisory locks `keys`, in ascending order
/// (as every transaction takes them).
async fn advisory_locks(conn: &mut PgConnection, mut keys: Vec<i64>) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
        .bind(&keys)
        .execute(conn)
        .await?;
    Ok(())
}

/// A group's advisory locks, in one statement: its idempotency keys'
/// (ascending), then the keys of every event it names (ascending), new or
/// stored (which are new is only known after the read these locks guard).
///
/// Lock order, against every other writer that waits on an advisory lock:
/// idempotency keys before event keys, each set ascending ([`apply_one`]
/// takes at most one of each, in that order, and its event key only when
/// the event does not exist yet, so holding no event row); row locks only
/// after all advisory locks (the group's event rows, idempotency rows,
/// API-key shares, an incident's event). The sweeper, the dispatcher, the
/// alert claims and reprocessing take row locks only (or an alert group's
/// try-lock, which never waits), never an event's advisory lock, so no
/// cycle of waits can form through one.
async fn group_lock_keys(
    conn: &mut PgConnection,
    mut idempotency: Vec<i64>,
    events: &HashSet<i64>,
) -> StoreResult<()> {
    idempotency.sort_unstable();
    idempotency.dedup();
    let mut events: Vec<i64> = events.iter().copied().collect();
    events.sort_unstable();
    let mut keys = idempotency;
    keys.extend(events);
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        // `unnest` yields the array's order: the locks are taken in it.
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k",
    )
    .bind(&keys)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Set-based writes and group commit

/// Writes the event rows of `writes` in the caller's transaction: the new
/// event rows (one statement for all of them), the updated ones (one
/// statement), their timeline entries in order (one statement), the
/// fingerprint rows of first provider copies (one statement). Returns
/// each event's row id, in the order of `writes`.
///
/// The caller holds the event rows' locks (or, for new events, the event
/// keys' advisory locks) for the whole transaction.
///
/// The rows are unpacked as `jsonb`, parsed once: on `json` every `->>`
/// lexes its row again from the start, past the embedded record.
async fn write_event_rows(
    conn: &mut PgConnection,
    writes: &[EventWrite<'_>],
) -> StoreResult<Vec<i64>> {
    let rows = group::write_rows(writes)?;
    let mut pks: Vec<Option<i64>> = writes.iter().map(|w| w.before.map(|(pk, _)| pk)).collect();
    if let Some(inserts) = &rows.inserts {
        let inserted = sqlx::query(
            "INSERT INTO events (project_id, provider, event_id, event_type, subject, state, \
             record, due_at, received_at, created_at, updated_at, chain_head) \
             SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, r ->> 4, r ->> 5, r ->> 6, \
             (r ->> 7)::bigint, (r ->> 8)::bigint, (r ->> 9)::bigint, (r ->> 10)::bigint, \
             r ->> 11 \
             FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n \
             RETURNING pk, project_id, provider, event_id",
        )
        .bind(inserts)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| insert_error(e, "this event already exists", "project"))?;
        for row in &inserted {
            let i = rows.inserted(
                row.try_get("project_id")?,
                row.try_get("provider")?,
                row.try_get("event_id")?,
            )?;
            pks[i] = Some(row.try_get("pk")?);
        }
    }
    if let Some(updates) = &rows.updates {
        sqlx::query(
            "UPDATE events SET event_type = r ->> 1, subject = r ->> 2, state = r ->> 3, \
             record = r ->> 4, due_at = (r ->> 5)::bigint, received_at = (r ->> 6)::bigint, \
             updated_at = (r ->> 7)::bigint, chain_head = r ->> 8 \
             FROM jsonb_array_elements($1::jsonb) AS r WHERE events.pk = (r ->> 0)::bigint",
        )
        // A generic plan made on a small table joins by scanning it.
        .persistent(!PER_CALL_PLAN)
        .bind(updates)
        .execute(&mut *conn)
        .await?;
    }
    let pks = group::all_row_ids(pks)?;
    if let Some(entries) = group::timeline_rows(writes, &rows, |i| pks[i])? {
        sqlx::query(
            "INSERT INTO timeline (event_pk, at, kind, actor, detail, hash) \
             SELECT (r ->> 0)::bigint, (r ->> 1)::bigint, r ->> 2, r ->> 3, r ->> 4, r ->> 5 \
             FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n",
        )
        .bind(entries)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(copies) = group::copy_rows(writes, |i| pks[i])? {
        sqlx::query(
            "INSERT INTO provider_copies (event_pk, project_id, provider, fingerprint, livemode, \
             created_at) \
             SELECT (r ->> 0)::bigint, r ->> 1, r ->> 2, r ->> 3, (r ->> 4)::boolean, \
             (r ->> 5)::bigint FROM jsonb_array_elements($1::jsonb) AS r",
        )
        .bind(copies)
        .execute(&mut *conn)
        .await
        .map_err(group::event_rows_error)?;
    }
    Ok(pks)
}

/// Loads and locks, in one query, the stored events among `keys`
/// (`(project id, provider, event id)`), in row order (so two groups
/// locking the same rows take them in the same order).
///
/// Planned on every call, for its keys and the table as they are now
/// ([`PER_CALL_PLAN`]), with the keys as arrays, not JSON: the planner
/// estimates `unnest` of an array by its length, but any set-returning
/// function over JSON at 100 rows, and 100 keys against a table of a few
/// thousand rows plans as a scan of the whole table and a hash join.
/// Measured under load: 727 buffers and ~2.8 ms per call for a group's
/// ~16 keys, then 26 buffers and 0.05 ms (docs/benchmarks.md,
/// "PostgreSQL: plans that scan").
async fn load_many_for_update(
    conn: &mut PgConnection,
    keys: &[(&str, &str, &str)],
) -> StoreResult<Vec<LoadedEvent>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (projects, providers, event_ids): (Vec<&str>, Vec<&str>, Vec<&str>) =
        keys.iter().copied().collect();
    let rows = sqlx::query(
        "SELECT e.pk, e.project_id, e.record, e.chain_head \
         FROM unnest($1::text[], $2::text[], $3::text[]) AS k(project_id, provider, event_id) \
         JOIN events e ON e.project_id = k.project_id AND e.provider = k.provider \
         AND e.event_id = k.event_id \
         ORDER BY e.pk FOR NO KEY UPDATE OF e",
    )
    .persistent(!PER_CALL_PLAN)
    .bind(projects)
    .bind(providers)
    .bind(event_ids)
    .fetch_all(conn)
    .await?;
    rows.iter().map(rows::loaded_event).collect()
}

/// The stored idempotency keys among `keys` (`(project id, key)`), locked
/// for the transaction in key order (planned per call, keys as arrays: as
/// in [`load_many_for_update`]).
async fn stored_keys_for_update(
    conn: &mut PgConnection,
    keys: &[(&str, &str)],
) -> StoreResult<Vec<StoredKey>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (projects, idempotency_keys): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
    let rows = sqlx::query(
        "SELECT i.project_id, i.key, i.request_hash, i.status, i.response, i.locked_until, \
         i.created_at FROM unnest($1::text[], $2::text[]) AS k(project_id, key) \
         JOIN idempotency_keys i ON i.project_id = k.project_id AND i.key = k.key \
         ORDER BY i.project_id, i.key FOR UPDATE OF i",
    )
    .persistent(!PER_CALL_PLAN)
    .bind(projects)
    .bind(idempotency_keys)
    .fetch_all(conn)
    .await?;
    rows.iter().map(rows::stored_key).collect()
}

/// Writes idempotency keys and their responses ([`group::KeyRow`]s),
/// replacing only what is expired or abandoned; `Err` if another
/// transaction remembered one of them meanwhile (the group then falls back
/// and the one-by-one run replays it).
async fn remember_keys(conn: &mut PgConnection, keys: &KeyRows) -> StoreResult<()> {
    let written = sqlx::query(
        "INSERT INTO idempotency_keys (project_id, key, request_hash, status, response, \
         locked_until, created_at) \
         SELECT r ->> 0, r ->> 1, decode(r ->> 2, 'hex'), (r ->> 3)::bigint, \
         decode(r ->> 4, 'hex'), NULL, (r ->> 5)::bigint FROM jsonb_array_elements($1::jsonb) AS r \
         ON CONFLICT (project_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
         status = excluded.status, response = excluded.response, locked_until = NULL, \
         created_at = excluded.created_at \
         WHERE idempotency_keys.created_at <= $2 OR (idempotency_keys.status IS NULL \
         AND COALESCE(idempotency_keys.locked_until, 0) <= $3)",
    )
    .bind(&keys.json)
    .bind(keys.expired_at_or_before)
    .bind(keys.now)
    .execute(conn)
    .await?
    .rows_affected();
    if usize::try_from(written).ok() != Some(keys.count) {
        return Err(StoreError::Conflict(
            "an idempotency key was remembered by another transaction".into(),
        ));
    }
    Ok(())
}

/// One `apply` or `apply_to_incident` in a transaction of its own: the
/// path when the group writer is gone, and each command of a group that
/// fell back.
async fn apply_one(pool: &PgPool, mut job: GroupJob) -> JobResult {
    let Some(job_key) = job.idempotency.take() else {
        let mut tx = pool.begin().await?;
        let applied = engine::apply_job::<PgBackend>(&mut tx, job).await?;
        tx.commit().await?;
        return Ok(IdempotentOutcome::Applied(applied));
    };
    let (project_id, now) = (job.project_id.clone(), job.ctx.now);
    let request = &job_key.request;
    let mut tx = pool.begin().await?;
    advisory_locks(
        &mut tx,
        vec![idempotency_lock_key(&project_id, &request.key)],
    )
    .await?;
    // Claim the key: a concurrent first use (another instance) makes this
    // wait for it, then find its row.
    let claim = sql::args![
        &project_id,
        &request.key,
        &request.request_hash,
        ms(now).saturating_add(IDEMPOTENCY_CLAIM_MILLIS),
        ms(now)
    ];
    let claimed = bind::<Postgres>(sql::CLAIM_IDEMPOTENCY_KEY, claim)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !claimed {
        let stored = stored_keys_for_update(&mut tx, &[(&project_id, &request.key)])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an idempotency key vanished".into()))?;
        if let KeyVerdict::Answer(answer) =
            group::key_verdict(&stored, &request.request_hash, now, &job_key.keyring)?
        {
            return Ok(answer);
        }
    }
    let result = engine::apply_job::<PgBackend>(&mut tx, job).await;
    let remember = (request.respond)(&result)
        .map(|response| group::key_row(&job_key, &project_id, &response, now));
    match result {
        Ok(applied) => {
            match remember {
                Some(row) => {
                    sqlx::query(
                        "UPDATE idempotency_keys SET request_hash = decode($3, 'hex'), status = $4, \
                         response = decode($5, 'hex'), locked_until = NULL, created_at = $6 \
                         WHERE project_id = $1 AND key = $2",
                    )
                    .bind(&row.0)
                    .bind(&row.1)
                    .bind(&row.2)
                    .bind(i64::from(row.3))
                    .bind(&row.4)
                    .bind(row.5)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2")
                        .bind(&project_id)
                        .bind(&request.key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(IdempotentOutcome::Applied(applied))
        }
        Err(refused) => {
            // The refusal rolls the command back; its response is
            // remembered in a transaction of its own.
            tx.rollback().await?;
            if let Some(row) = remember
                && let Some(keys) = KeyRows::new(&[row], now)?
            {
                let mut tx = pool.begin().await?;
                if remember_keys(&mut tx, &keys).await.is_ok() {
                    tx.commit().await?;
                }
            }
            Err(refused)
        }
    }
}

/// The PostgreSQL side of group commit: the group at once in one
/// transaction ([`group::run_at_once`]: every named event's advisory lock
/// before the read, then the events' rows locked in row order); if that
/// fails (one command's fingerprint or other uniqueness conflict, a lost
/// connection), a rollback and every command again in a transaction of its
/// own ([`apply_one`]). Another instance creating one of the group's events
/// meanwhile is not a failure: it commits before the group's read or waits
/// for the group's commit.
struct PgGroups {
    pool: PgPool,
    /// The connections the last groups committed on.
    kept: Arc<KeptConnections>,
}

/// How long a connection kept by the group writer may sit unused and still
/// be kept: one idle longer goes back to the pool, and the next group takes
/// one the pool pings first (a server restart while idle is noticed there).
const KEEP_IDLE: Duration = Duration::from_secs(1);
/// How long the group writer keeps one connection at most before handing it
/// back (the pool's `max_lifetime` recycles connections only on release).
const KEEP_AT_MOST: Duration = Duration::from_secs(30);

/// The connections the group writer keeps between groups while they come
/// back to back (one per writer task at most): a connection from the pool
/// costs a round trip before its `BEGIN` (the pool's ping) and another when
/// it goes back (the pool's check on release).
#[derive(Debug)]
struct KeptConnections {
    pool: PgPool,
    kept: std::sync::Mutex<Vec<KeptConnection>>,
}

/// A pooled connection kept by the group writer.
#[derive(Debug)]
struct KeptConnection {
    conn: PoolConnection<Postgres>,
    /// When the writer took it from the pool.
    taken_at: Instant,
    /// When its last group committed.
    used_at: Instant,
}

impl KeptConnections {
    fn new(pool: PgPool) -> KeptConnections {
        KeptConnections {
            pool,
            kept: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<KeptConnection>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last kept connection if it is fresh enough (the others then are
    /// not either, and go back to the pool), else one from the pool; `true`
    /// when it was kept (it was not pinged).
    async fn take(&self) -> Result<(KeptConnection, bool), sqlx::Error> {
        let kept = {
            let mut kept = self.lock();
            let last = kept.pop();
            if last
                .as_ref()
                .is_some_and(|k| k.used_at.elapsed() >= KEEP_IDLE)
            {
                kept.clear();
            }
            last
        };
        if let Some(kept) = kept {
            let now = Instant::now();
            if now.duration_since(kept.used_at) < KEEP_IDLE
                && now.duration_since(kept.taken_at) < KEEP_AT_MOST
            {
                return Ok((kept, true));
            }
        }
        let now = Instant::now();
        let conn = self.pool.acquire().await?;
        Ok((
            KeptConnection {
                conn,
                taken_at: now,
                used_at: now,
            },
            false,
        ))
    }

    /// Keeps `conn` for the next group (after a commit), unless the pool is
    /// closing (which waits for every connection to come back).
    fn keep(&self, mut conn: KeptConnection) {
        conn.used_at = Instant::now();
        self.lock().push(conn);
        // After the push: a `release_all` that ran before it saw the pool
        // closed before this check (it closes the pool first).
        if self.pool.is_closed() {
            self.release_all();
        }
    }

    /// Hands every kept connection back to the pool.
    fn release_all(&self) {
        self.lock().clear();
    }
}

#[async_trait]
impl GroupEngine for PgGroups {
    async fn run_group(
        &self,
        jobs: Vec<GroupJob>,
        stats: &GroupCounters,
    ) -> (Vec<JobResult>, bool) {
        let failed = |e: sqlx::Error| {
            let why = e.to_string();
            (0..jobs.len()).map(|_| Err(group_failed(&why))).collect()
        };
        let (mut conn, was_kept) = match self.kept.take().await {
            Ok(conn) => conn,
            Err(e) => return (failed(e), false),
        };
        // A kept connection was not pinged: if its `BEGIN` fails (the
        // server closed it), it is dropped (the pool's check on release
        // closes it) and the `BEGIN` tried once more on one from the pool.
        // Nothing was sent yet, so nothing is done twice.
        let outcome = match conn.conn.begin().await {
            Ok(tx) => Some(at_once(tx, &jobs).await),
            Err(_) if was_kept => None,
            Err(e) => return (failed(e), false),
        };
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => {
                conn = match self.kept.take().await {
                    Ok((conn, _)) => conn,
                    Err(e) => return (failed(e), false),
                };
                match conn.conn.begin().await {
                    Ok(tx) => at_once(tx, &jobs).await,
                    Err(e) => return (failed(e), false),
                }
            }
        };
        match outcome {
            AtOnce::Committed(results) => {
                self.kept.keep(conn);
                (results, true)
            }
            AtOnce::NotCommitted(results, why) => (group::uncommitted(results, &why), false),
            AtOnce::Failed => {
                drop(conn);
                stats.fell_back();
                let mut results = Vec::with_capacity(jobs.len());
                for job in jobs {
                    results.push(apply_one(&self.pool, job).await);
                }
                (results, true)
            }
        }
    }
}

/// How a group run at once in one transaction ended.
enum AtOnce {
    /// Committed: every command's result.
    Committed(Vec<JobResult>),
    /// Run, but the commit failed (why): the results it would have had.
    NotCommitted(Vec<JobResult>, String),
    /// One command failed the group; rolled back, to be run one by one.
    Failed,
}

/// Runs `jobs` at once in `tx` ([`group::run_at_once`]) and commits.
async fn at_once(mut tx: Transaction<'_, Postgres>, jobs: &[GroupJob]) -> AtOnce {
    let mut io = PgGroupIo {
        conn: &mut tx,
        events_locked: HashSet::new(),
    };
    match group::run_at_once(&mut io, jobs).await {
        Ok(results) => match tx.commit().await {
            Ok(()) => AtOnce::Committed(results),
            Err(e) => AtOnce::NotCommitted(results, e.to_string()),
        },
        Err(_) => {
            let _ = tx.rollback().await;
            AtOnce::Failed
        }
    }
}

/// [`GroupIo`] on a group's open transaction.
struct PgGroupIo<'c> {
    conn: &'c mut PgConnection,
    /// The advisory-lock keys of the events the group named, locked in `load`.
    events_locked: HashSet<i64>,
}

#[async_trait]
impl GroupIo for PgGroupIo<'_> {
    async fn load(&mut self, wanted: &GroupWanted<'_>) -> StoreResult<GroupLoad> {
        // Idempotency keys, then every named event's key, before any read
        // (see `group_lock_keys`): a creation racing this group either
        // committed before the read below (the group sees its row) or
        // waits for this transaction (and then sees the group's).
        let idempotency = wanted
            .idempotency
            .iter()
            .map(|(project_id, key)| idempotency_lock_key(project_id, key))
            .collect();
        self.events_locked = wanted
            .events
            .iter()
            .map(|&(project_id, provider, event_id)| {
                event_lock_key_of(project_id, provider, event_id)
            })
            .collect();
        group_lock_keys(self.conn, idempotency, &self.events_locked).await?;
        // API keys next: a revocation waits for this transaction from here on.
        let valid_keys = if wanted.api_keys.is_empty() {
            Vec::new()
        } else {
            engine::valid_api_keys::<PgBackend>(self.conn, &wanted.api_keys).await?
        };
        Ok(GroupLoad {
            valid_keys,
            events: load_many_for_update(self.conn, &wanted.events).await?,
            idempotency: stored_keys_for_update(self.conn, &wanted.idempotency).await?,
        })
    }

    async fn load_incident_event(
        &mut self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Option<LoadedEvent>> {
        engine::load_by_incident::<PgBackend>(self.conn, project_id, incident_id).await
    }

    async fn persist(
        &mut self,
        writes: &[EventWrite<'_>],
        keys: Option<&KeyRows>,
    ) -> StoreResult<Vec<i64>> {
        // Every new event's key was locked in `load` (a group creates only
        // events it named), so no other creator got in between and the
        // insert cannot hit the unique key. A new event `load` did not lock
        // (none today) is locked here, as before this group read it: a
        // racing creation then fails the insert and the group falls back.
        let unlocked: Vec<i64> = writes
            .iter()
            .filter(|w| w.before.is_none())
            .map(|w| event_lock_key(w.project_id, &w.after.key()))
            .filter(|k| !self.events_locked.contains(k))
            .collect();
        advisory_locks(self.conn, unlocked).await?;
        let pks = write_event_rows(self.conn, writes).await?;
        engine::write_outbox::<PgBackend>(self.conn, writes, &pks).await?;
        if let Some(keys) = keys {
            remember_keys(self.conn, keys).await?;
        }
        Ok(pks)
    }
}

/// Test support (feature `test-support`): a fresh database per test on the
/// server named by `SENDPROMPTLY_TEST_POSTGRES_URL`.
#[cfg(feature = "test-support")]
pub mod testing {
    /// The environment variable naming the test server (an admin URL: the
    /// user must be allowed to `CREATE DATABASE`).
    pub const URL_VAR: &str = "SENDPROMPTLY_TEST_POSTGRES_URL";
    /// Set to `1` to make a missing URL a failure instead of a skip (CI).
    pub const REQUIRE_VAR: &str = "SENDPROMPTLY_REQUIRE_POSTGRES";

    /// The test server's URL; `None` (after printing why) when the
    /// PostgreSQL tests should be skipped. Panics when they are required.
    pub fn server_url(test: &str) -> Option<String> {
        match std::env::var(URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
                    "{REQUIRE_VAR}=1 but {URL_VAR} is not set: the PostgreSQL tests cannot run \
                     (scripts/test-postgres.sh starts a throwaway server and sets it)"
                );
                eprintln!(
                    "SKIPPED {test}: set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/postgres) \
                     to run the PostgreSQL tests, or run scripts/test-postgres.sh"
                );
                None
            }
        }
    }

    /// A throwaway database: dropped (its connections closed) when this
    /// guard is dropped.
    pub struct TestDatabase {
        /// Its URL.
        pub url: String,
        name: String,
        admin_url: String,
    }

    impl TestDatabase {
        /// Creates `sp_test_<random>` on the server at `admin_url`.
        pub async fn create(admin_url: &str) -> TestDatabase {
            let name = format!("sp_test_{:016x}", rand::random::<u64>());
            let mut admin = admin_connection(admin_url).await;
            sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("CREATE DATABASE");
            let _ = sqlx::Connection::close(admin).await;
            let mut url = url::Url::parse(admin_url).expect("a postgres:// URL");
            url.set_path(&name);
            TestDatabase {
                url: url.to_string(),
                name,
                admin_url: admin_url.to_owned(),
            }
        }
    }

    async fn admin_connection(admin_url: &str) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {e}"))
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let admin_url = self.admin_url.clone();
            let name = self.name.clone();
            // Drop runs inside the test's runtime: use a thread with its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                        .await
                        .ok()?;
                    sqlx::Executor::execute(
                        &mut admin,
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                    )
                    .await
                    .ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(_))) {
                eprintln!("note: could not drop test database {}", self.name);
            }
        }
    }
}
