//! SQLite implementation of the [`Store`] trait.
//!
//! - One **writer** connection (a pool of exactly one) carries every write
//!   and every read-modify-write transaction, each opened with
//!   `BEGIN IMMEDIATE`. In-process writers queue on the pool instead of
//!   meeting `SQLITE_BUSY`; other processes (the CLI next to a running
//!   server) wait on `busy_timeout`.
//! - **Group commit** for [`Store::apply`] and [`Store::apply_to_incident`]
//!   (the receipt/result hot path): callers queue their command to one
//!   writer task, which takes everything queued at that moment (up to
//!   [`GROUP_MAX`], never waiting for more) into one `BEGIN IMMEDIATE`
//!   transaction on the writer connection, commits once (one fsync for the
//!   group) and only then answers every caller. The group runs *at once*:
//!   one query loads every event it names, the state machine runs in memory
//!   (each command seeing the ones before it), and a few set-based
//!   statements (`json_each` of the rows) write the outcome, so a group
//!   costs about the same number of statements whatever its size. If one of
//!   those writes fails (say a command's uniqueness conflict), the attempt
//!   is rolled back and the group re-runs one `SAVEPOINT` per command: a
//!   failing command then rolls back only itself and gets its own error. If
//!   the transaction itself fails, every caller of the group gets an error
//!   and nothing of it is committed.
//! - A small **reader** pool serves plain reads; in WAL mode readers never
//!   block the writer and see the last committed state.
//! - `journal_mode=WAL`, `synchronous=FULL`: a committed transaction is on
//!   disk before the call returns. Foreign keys are enforced.
//!
//! Events are stored as the JSON of the core's [`EventRecord`] (the source of
//! truth) plus indexed copies of the columns that queries filter on; the
//! `incidents` table is a copy of `record.incident`, rewritten on every
//! event write by the one helper that persists a [`Transition`].
//!
//! `sqlite::memory:` databases use the single writer connection for reads
//! too (separate connections would not share one in-memory database).
//!
//! Everything else (the orchestration, the queues, the reads) is the
//! shared [`Engine`]; this file holds the connections, the SQL only SQLite
//! speaks, and the group commit's SQLite side.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sendpromptly_core::model::EventKey;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Pool, Row, Sqlite, SqliteConnection, Transaction};

use super::codec::encode_json;
use super::engine::{self, Backend, Engine};
use super::group::{
    self, EventWrite, GroupCounters, GroupEngine, GroupIo, GroupJob, GroupLoad, GroupWanted,
    GroupWriter, JobResult, KeyRow, KeyRows, KeyVerdict, LoadedEvent, StoredKey, group_failed,
};
pub use super::group::{GROUP_MAX, GroupCommitStats};
use super::migrations::{self, MIGRATIONS_TABLE, Migration};
use super::pool::{self, HandTransaction};
use super::rows;
use super::sql::{self, Arg, Dialect, bind};
use super::{IdempotentOutcome, StoreResult};

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for the writer connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections in the reader pool.
const READERS: u32 = 4;

/// The SQLite store: the shared engine over [`SqliteBackend`].
pub type SqliteStore = Engine<SqliteBackend>;

/// SQLite's connections: one writer, a few readers.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file if missing) the database at `url`:
    /// `sqlite://path.db`, `sqlite:path.db` or `sqlite::memory:`.
    ///
    /// Does not migrate: call [`Store::migrate`](super::Store::migrate).
    pub async fn connect(url: &str) -> StoreResult<SqliteStore> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        if !in_memory {
            options = options.journal_mode(SqliteJournalMode::Wal);
        }
        // No ping before each acquire (sqlx's default): a connection to a
        // local file does not go stale, and the ping is a round trip to the
        // connection's thread on every query.
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .after_release(|conn, _| pool::reuse_unless_in_transaction(conn, "writer"))
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // An in-memory database lives only as long as a connection to it.
            .idle_timeout(None)
            .max_lifetime(None)
            // The writer's statement journals in memory: a group's set-based
            // statements outgrow SQLite's 64 KiB in-memory journal, which
            // then spills to a temp file created and unlinked in every group
            // (`docs/benchmarks.md`, "Performance, second round").
            .connect_with(options.clone().pragma("temp_store", "MEMORY"))
            .await?;
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .after_release(|conn, _| pool::reuse_unless_in_transaction(conn, "reader"))
                .max_connections(READERS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.pragma("query_only", "ON"))
                .await?
        };
        // One writer task: SQLite has one writer connection.
        let group = GroupWriter::start(
            SqliteGroups {
                pool: writer.clone(),
            },
            1,
        );
        Ok(Engine::new(SqliteBackend { writer, reader }, group))
    }

    /// Closes both pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.backend.reader.close().await;
        self.backend.writer.close().await;
    }
}

/// SQLite's dialect: no row locks (the writer's `BEGIN IMMEDIATE` holds the
/// database's write lock), `json_each`, `LIKE … ESCAPE`.
const DIALECT: Dialect = Dialect {
    load_by_key_locked: sql::load_by_key!(),
    load_by_incident_locked: sql::load_by_incident!(),
    project_for_update: sql::project_by_id!(),
    api_key_for_update: sql::api_key_revoked_at!(),
    signing_secrets_for_update: sql::all_signing_secrets!(),
    idempotency_for_update: sql::idempotency_key!(),
    valid_api_keys: "SELECT k.project_id, k.id FROM json_each($1) AS j CROSS JOIN api_keys AS k \
         ON k.id = j.value ->> 1 AND k.project_id = j.value ->> 0 WHERE k.revoked_at IS NULL",
    sweep_select: sql::sweep_select!(),
    claim_select: sql::claim_select!(),
    finish_delivery_load: "SELECT e.pk, e.project_id, e.record, e.chain_head, d.state AS delivery_state, \
         d.lease_until FROM deliveries d JOIN events e ON e.pk = d.event_pk \
         WHERE d.reprocess_id = $1 AND d.project_id = $2",
    delivery_lock: None,
    claim_alerts_select: sql::claim_alerts_select!(),
    claim_alert_lock: sql::claim_alert_lock!(),
    alert_group_lock: None,
    digest_members_select: sql::digest_members_select!(),
    pace_batches_select: sql::pace_batches_select!(),
    purge_select: sql::purge_select!(),
    daily_activity: "SELECT day, event_type, SUM(ev) AS events, SUM(fl) AS failures, \
         SUM(inc) AS incidents FROM ( \
           SELECT created_at / $3 AS day, event_type, 1 AS ev, 0 AS fl, 0 AS inc \
             FROM events WHERE project_id = $1 AND created_at >= $2 \
           UNION ALL \
           SELECT t.at / $3, e.event_type, 0, 1, 0 \
             FROM timeline t JOIN events e ON e.pk = t.event_pk \
             WHERE t.kind = 'result.failure' AND t.at >= $2 AND e.project_id = $1 \
               AND json_extract(t.detail, '$.ignored') IS NULL \
           UNION ALL \
           SELECT opened_at / $3, event_type, 0, 0, 1 \
             FROM incidents WHERE project_id = $1 AND opened_at >= $2 \
         ) GROUP BY day, event_type ORDER BY day, event_type",
    like: "LIKE",
    like_escape: " ESCAPE '\\'",
    row_values: false,
    // One writer at a time: the triggers of 0012 upsert the rollup itself.
    stats_rows: sql::STATS_ROWS,
    slo_counts: sql::SLO_COUNTS,
};

#[async_trait]
impl Backend for SqliteBackend {
    type Db = Sqlite;
    type Row = SqliteRow;
    const SQL: &'static Dialect = &DIALECT;

    fn reader(&self) -> &Pool<Sqlite> {
        &self.reader
    }

    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn snapshot(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.reader.begin().await?)
    }

    async fn write_one(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let changed = bind::<Sqlite>(sql, args).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(changed.rows_affected())
    }

    const MIGRATIONS: &'static [Migration] = migrations::SQLITE;

    async fn prepare_migrations(conn: &mut SqliteConnection) -> StoreResult<()> {
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (\
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        ))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The `EXPLAIN QUERY PLAN` lines of `query` (zeros for times, one
    /// for the limit).
    async fn explain(&self, query: &str, params: usize) -> StoreResult<Vec<String>> {
        let sql = format!("EXPLAIN QUERY PLAN {query}");
        // 0 for the times, 1 for the limit.
        let args: Vec<Arg<'_>> = (0..params)
            .map(|i| Arg::Int(i64::from(i + 1 == params)))
            .collect();
        let rows = bind::<Sqlite>(&sql, &args).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("detail")?))
            .collect()
    }

    async fn probe_write(&self) -> StoreResult<()> {
        self.write().await?.commit().await?;
        Ok(())
    }

    async fn write_events(
        conn: &mut SqliteConnection,
        writes: &[EventWrite<'_>],
    ) -> StoreResult<Vec<i64>> {
        Ok(write_event_rows(conn, writes, None, false).await?.0)
    }

    async fn lock_new_event(
        _conn: &mut SqliteConnection,
        _project_id: &str,
        _key: &EventKey,
    ) -> StoreResult<bool> {
        // The writer's transaction holds the database's write lock.
        Ok(false)
    }

    async fn delete_events(conn: &mut SqliteConnection, pks: &[i64]) -> StoreResult<()> {
        let list = pks.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        // Children first (foreign keys); the pks are integers from the query.
        for statement in [
            "DELETE FROM reprocess_batch_items WHERE incident_id IN \
             (SELECT id FROM incidents WHERE event_pk IN (%s))",
            "DELETE FROM proof_links WHERE incident_id IN \
             (SELECT id FROM incidents WHERE event_pk IN (%s))",
            "DELETE FROM deliveries WHERE event_pk IN (%s)",
            "DELETE FROM provider_copies WHERE event_pk IN (%s)",
            "DELETE FROM timeline WHERE event_pk IN (%s)",
            "DELETE FROM incidents WHERE event_pk IN (%s)",
            "DELETE FROM events WHERE pk IN (%s)",
        ] {
            sqlx::query(&statement.replace("%s", &list))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn run_alone(&self, job: GroupJob) -> JobResult {
        let (mut results, _) = run_group_one_by_one(&self.writer, vec![job]).await;
        results
            .pop()
            .unwrap_or_else(|| Err(group_failed("the write did not run")))
    }
}

// ---------------------------------------------------------------------------
// Group commit (apply and apply_to_incident)

/// Opens a group's transaction and does all its reading, in one round
/// trip: `BEGIN IMMEDIATE`, then one query for the stored events among
/// those wanted and for which of the API keys are unrevoked, and one for
/// the stored idempotency keys, told apart by the `what` column.
async fn begin_and_load_group(
    conn: &mut SqliteConnection,
    wanted: &GroupWanted<'_>,
) -> StoreResult<GroupLoad> {
    let rows = sqlx::query(concat!(
        "BEGIN IMMEDIATE; \
         SELECT 'event' AS what, e.pk, e.project_id, e.record, e.chain_head, NULL AS key_id \
         FROM json_each(?1) AS j CROSS JOIN events AS e \
         ON e.project_id = j.value ->> 0 AND e.provider = j.value ->> 1 \
         AND e.event_id = j.value ->> 2 \
         UNION ALL \
         SELECT 'key', NULL, k.project_id, NULL, NULL, k.id \
         FROM json_each(?2) AS j CROSS JOIN api_keys AS k \
         ON k.id = j.value ->> 1 AND k.project_id = j.value ->> 0 WHERE k.revoked_at IS NULL; \
         SELECT 'idempotency' AS what, ",
        stored_key_columns!("i"),
        " FROM json_each(?3) AS j CROSS JOIN idempotency_keys AS i \
         ON i.project_id = j.value ->> 0 AND i.key = j.value ->> 1"
    ))
    .bind(encode_json(&wanted.events, "event keys")?)
    .bind(encode_json(&wanted.api_keys, "API keys")?)
    .bind(encode_json(&wanted.idempotency, "idempotency keys")?)
    .fetch_all(conn)
    .await?;
    let mut load = GroupLoad::default();
    for row in &rows {
        match row.try_get::<&str, _>("what")? {
            "event" => load.events.push(rows::loaded_event(row)?),
            "key" => load
                .valid_keys
                .push((row.try_get("project_id")?, row.try_get("key_id")?)),
            _ => load.idempotency.push(rows::stored_key(row)?),
        }
    }
    Ok(load)
}

/// The columns of a stored idempotency key, of table alias `$t`.
macro_rules! stored_key_columns {
    ($t:literal) => {
        concat!(
            $t,
            ".project_id, ",
            $t,
            ".key, ",
            $t,
            ".request_hash, ",
            $t,
            ".status, ",
            $t,
            ".response, ",
            $t,
            ".locked_until, ",
            $t,
            ".created_at"
        )
    };
}
use stored_key_columns;

/// A stored idempotency key, in the current transaction.
async fn stored_key(
    conn: &mut SqliteConnection,
    project_id: &str,
    key: &str,
) -> StoreResult<Option<StoredKey>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        stored_key_columns!("i"),
        " FROM idempotency_keys AS i WHERE i.project_id = ? AND i.key = ?"
    ))
    .bind(project_id)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(rows::stored_key).transpose()
}

/// Writes idempotency keys and their responses ([`group::KeyRow`]s as JSON,
/// `?`), replacing what is stored under them: the writer holds the write
/// lock since it read them, so nothing changed them meanwhile.
macro_rules! remember_keys_sql {
    () => {
        "INSERT INTO idempotency_keys (project_id, key, request_hash, status, response, \
         locked_until, created_at) \
         SELECT j.value ->> 0, j.value ->> 1, unhex(j.value ->> 2), j.value ->> 3, \
         unhex(j.value ->> 4), NULL, j.value ->> 5 FROM json_each(?) AS j WHERE true \
         ON CONFLICT (project_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
         status = excluded.status, response = excluded.response, locked_until = NULL, \
         created_at = excluded.created_at"
    };
}

/// [`remember_keys_sql`] as a statement of its own.
async fn remember_keys(conn: &mut SqliteConnection, keys: &KeyRows) -> StoreResult<()> {
    sqlx::query(remember_keys_sql!())
        .bind(&keys.json)
        .execute(conn)
        .await?;
    Ok(())
}

/// The three statements of [`write_event_rows`]'s round trip (a macro so
/// that `concat!` can append a `COMMIT`).
macro_rules! persist_events_sql {
    () => {
        "INSERT INTO events (project_id, provider, event_id, event_type, subject, state, \
         record, due_at, received_at, created_at, updated_at, chain_head) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, \
         j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, \
         j.value ->> 10, j.value ->> 11 FROM json_each(?) AS j \
         RETURNING pk, project_id, provider, event_id; \
         UPDATE events SET event_type = j.value ->> 1, subject = j.value ->> 2, \
         state = j.value ->> 3, record = j.value ->> 4, due_at = j.value ->> 5, \
         received_at = j.value ->> 6, updated_at = j.value ->> 7, chain_head = j.value ->> 8 \
         FROM json_each(?) AS j WHERE events.pk = j.value ->> 0; \
         INSERT INTO timeline (event_pk, at, kind, actor, detail, hash) \
         SELECT e.pk, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5 \
         FROM json_each(?) AS j CROSS JOIN events AS e \
         ON e.project_id = j.value -> 0 ->> 0 AND e.provider = j.value -> 0 ->> 1 \
         AND e.event_id = j.value -> 0 ->> 2; \
         INSERT INTO provider_copies (event_pk, project_id, provider, fingerprint, livemode, \
         created_at) \
         SELECT e.pk, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5 \
         FROM json_each(?) AS j CROSS JOIN events AS e \
         ON e.project_id = j.value -> 0 ->> 0 AND e.provider = j.value -> 0 ->> 1 \
         AND e.event_id = j.value -> 0 ->> 2"
    };
}

/// Writes the event rows of `writes` and the idempotency keys to remember,
/// in the caller's transaction and one round trip: the new event rows,
/// the updated ones, their timeline entries in order, the fingerprint rows
/// of first provider copies and the keys
/// (set-based statements). Returns each event's row id, in the order of
/// `writes`, and whether the transaction was committed: with
/// `then_commit`, when nothing is left to write after the set-based
/// statements (no incident, no effect), a `COMMIT` rides along in the same
/// round trip.
async fn write_event_rows(
    conn: &mut SqliteConnection,
    writes: &[EventWrite<'_>],
    keys: Option<&KeyRows>,
    then_commit: bool,
) -> StoreResult<(Vec<i64>, bool)> {
    let rows = group::write_rows(writes)?;
    let event_key = |i: usize| {
        let w = &writes[i];
        (w.project_id, w.after.provider.as_str(), &w.after.event_id)
    };
    let entries = group::timeline_rows(writes, &rows, event_key)?;
    let copies = group::copy_rows(writes, event_key)?;
    let commit_now = then_commit
        && !writes
            .iter()
            .zip(&rows.changed)
            .any(|(w, changed)| *changed && w.needs_outbox());
    // One round trip (`?` taken in order): the new rows (their ids come
    // back), the changed ones, then the timeline, which finds each entry's
    // event by key, new or not; and the commit when nothing follows.
    let sql = match (keys.is_some(), commit_now) {
        (false, false) => persist_events_sql!(),
        (false, true) => concat!(persist_events_sql!(), "; COMMIT"),
        (true, false) => concat!(persist_events_sql!(), "; ", remember_keys_sql!()),
        (true, true) => concat!(
            persist_events_sql!(),
            "; ",
            remember_keys_sql!(),
            "; COMMIT"
        ),
    };
    let mut query = sqlx::query(sql)
        .bind(rows.inserts.as_deref().unwrap_or("[]"))
        .bind(rows.updates.as_deref().unwrap_or("[]"))
        .bind(entries.as_deref().unwrap_or("[]"))
        .bind(copies.as_deref().unwrap_or("[]"));
    if let Some(keys) = keys {
        query = query.bind(&keys.json);
    }
    let inserted = query
        .fetch_all(&mut *conn)
        .await
        .map_err(group::event_rows_error)?;
    let mut pks: Vec<Option<i64>> = writes.iter().map(|w| w.before.map(|(pk, _)| pk)).collect();
    for row in &inserted {
        let i = rows.inserted(
            row.try_get("project_id")?,
            row.try_get("provider")?,
            row.try_get("event_id")?,
        )?;
        pks[i] = Some(row.try_get("pk")?);
    }
    Ok((group::all_row_ids(pks)?, commit_now))
}

/// The SQLite side of group commit, on the writer connection, in as few
/// round trips to the connection's thread as possible (each costs a thread
/// wake-up, about half a millisecond on a busy two-core machine, and the
/// writer is the one serial part of ingest): `BEGIN IMMEDIATE` with the
/// group's reads, then the group's writes with the `COMMIT`
/// ([`begin_and_load_group`], [`write_event_rows`]; a separate `COMMIT`
/// only when incidents or effects needed more statements). The transaction
/// is opened and closed by hand rather than through sqlx's `Transaction`,
/// because that costs a round trip of its own; every path below ends it.
///
/// If anything of the group at once fails (say a command's uniqueness
/// conflict), a rollback and the group again one savepoint per command
/// ([`run_group_one_by_one`]), so only the failing command fails.
struct SqliteGroups {
    pool: SqlitePool,
}

#[async_trait]
impl GroupEngine for SqliteGroups {
    async fn run_group(
        &self,
        jobs: Vec<GroupJob>,
        stats: &GroupCounters,
    ) -> (Vec<JobResult>, bool) {
        let conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let why = e.to_string();
                return (
                    (0..jobs.len()).map(|_| Err(group_failed(&why))).collect(),
                    false,
                );
            }
        };
        // Open from the `BEGIN` on: if anything below is cut short, the
        // guard closes the connection rather than pool it mid-transaction.
        let mut tx = HandTransaction::new(conn);
        let mut io = SqliteGroupIo {
            conn: tx.conn(),
            committed: false,
        };
        let outcome = group::run_at_once(&mut io, &jobs).await;
        let committed = io.committed;
        match outcome {
            Ok(results) if committed => {
                tx.ended();
                (results, true)
            }
            Ok(results) => match sqlx::query("COMMIT").execute(tx.conn()).await {
                Ok(_) => {
                    tx.ended();
                    (results, true)
                }
                Err(e) => {
                    end_by_rollback(&mut tx).await;
                    (group::uncommitted(results, &e.to_string()), false)
                }
            },
            Err(_) => {
                end_by_rollback(&mut tx).await;
                drop(tx);
                stats.fell_back();
                run_group_one_by_one(&self.pool, jobs).await
            }
        }
    }
}

/// Ends a hand-opened transaction with `ROLLBACK`. SQLite answers "no
/// transaction is active" when the `BEGIN` never ran or a failed statement
/// already ended it: closed either way. Any other failure leaves it marked
/// open, so the guard closes the connection.
async fn end_by_rollback(tx: &mut HandTransaction<Sqlite>) {
    match sqlx::query("ROLLBACK").execute(tx.conn()).await {
        Ok(_) => tx.ended(),
        Err(e) if e.to_string().contains("no transaction is active") => tx.ended(),
        Err(e) => tracing::error!(error = %e, "ROLLBACK of a group transaction failed"),
    }
}

/// [`GroupIo`] on the writer connection, whose transaction
/// [`GroupIo::load`] opens.
struct SqliteGroupIo<'c> {
    conn: &'c mut SqliteConnection,
    /// Whether [`GroupIo::persist`] already committed.
    committed: bool,
}

#[async_trait]
impl GroupIo for SqliteGroupIo<'_> {
    async fn load(&mut self, wanted: &GroupWanted<'_>) -> StoreResult<GroupLoad> {
        begin_and_load_group(self.conn, wanted).await
    }

    async fn load_incident_event(
        &mut self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Option<LoadedEvent>> {
        engine::load_by_incident::<SqliteBackend>(self.conn, project_id, incident_id).await
    }

    async fn persist(
        &mut self,
        writes: &[EventWrite<'_>],
        keys: Option<&KeyRows>,
    ) -> StoreResult<Vec<i64>> {
        let (pks, committed) = write_event_rows(self.conn, writes, keys, true).await?;
        self.committed = committed;
        if !committed {
            engine::write_outbox::<SqliteBackend>(self.conn, writes, &pks).await?;
        }
        Ok(pks)
    }
}

/// Runs `jobs` in one transaction, each inside a savepoint, so that a
/// failing command rolls back only itself; returns each job's result (in
/// order) and whether the transaction committed.
async fn run_group_one_by_one(pool: &SqlitePool, jobs: Vec<GroupJob>) -> (Vec<JobResult>, bool) {
    let n = jobs.len();
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            let why = e.to_string();
            return ((0..n).map(|_| Err(group_failed(&why))).collect(), false);
        }
    };
    let mut results = Vec::with_capacity(n);
    // Set when the transaction can no longer be trusted (a savepoint
    // statement failed): the rest is not run and nothing is committed.
    let mut broken: Option<String> = None;
    for job in jobs {
        if let Some(why) = &broken {
            results.push(Err(group_failed(why)));
            continue;
        }
        if let Err(e) = sqlx::query("SAVEPOINT apply").execute(&mut *tx).await {
            broken = Some(e.to_string());
            results.push(Err(e.into()));
            continue;
        }
        let now = job.ctx.now;
        let (result, remember) = run_job(&mut tx, job).await;
        let closed = if result.is_ok() {
            sqlx::query("RELEASE apply").execute(&mut *tx).await
        } else {
            match sqlx::query("ROLLBACK TO apply").execute(&mut *tx).await {
                Ok(_) => sqlx::query("RELEASE apply").execute(&mut *tx).await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = closed {
            broken = Some(e.to_string());
        } else if let Some(row) = remember {
            // Outside the savepoint: a refusal's response is remembered too.
            let remembered = match KeyRows::new(&[row], now) {
                Ok(Some(keys)) => remember_keys(&mut tx, &keys).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = remembered {
                broken = Some(e.to_string());
            }
        }
        results.push(result);
    }
    let failure = match broken {
        Some(why) => {
            let _ = tx.rollback().await;
            why
        }
        None => match tx.commit().await {
            Ok(()) => return (results, true),
            Err(e) => e.to_string(),
        },
    };
    (group::uncommitted(results, &failure), false)
}

/// One `apply` or `apply_to_incident` inside the current transaction:
/// its idempotency key's verdict first, then the command; its result, and
/// the key to remember (for the caller to write outside the savepoint that
/// a refusal rolls back).
async fn run_job(conn: &mut SqliteConnection, mut job: GroupJob) -> (JobResult, Option<KeyRow>) {
    let idempotency = job.idempotency.take();
    if let Some(job_key) = &idempotency {
        let verdict = match stored_key(conn, &job.project_id, &job_key.request.key).await {
            Ok(Some(stored)) => group::key_verdict(
                &stored,
                &job_key.request.request_hash,
                job.ctx.now,
                &job_key.keyring,
            ),
            Ok(None) => Ok(KeyVerdict::Run),
            Err(e) => Err(e),
        };
        match verdict {
            Ok(KeyVerdict::Run) => {}
            Ok(KeyVerdict::Answer(answer)) => return (Ok(answer), None),
            Err(e) => return (Err(e), None),
        }
    }
    let (project_id, now) = (job.project_id.clone(), job.ctx.now);
    let result = engine::apply_job::<SqliteBackend>(conn, job).await;
    let remember = idempotency.and_then(|job_key| {
        let response = (job_key.request.respond)(&result)?;
        Some(group::key_row(&job_key, &project_id, &response, now))
    });
    (result.map(IdempotentOutcome::Applied), remember)
}
