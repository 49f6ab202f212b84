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

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sendpromptly_core::Timestamp;
use sendpromptly_core::machine::{
    self, AttemptReport, Command, Context, Effect, EventRecord, Transition,
};
use sendpromptly_core::model::{
    Actor, EventKey, Incident, JsonObject, TimelineEntry, TimelineKind,
};
use sendpromptly_core::retry::NextStep;
use sendpromptly_core::wire::{ReprocessBatchCounts, ReprocessBatchItem};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, Transaction};

use super::codec::{self, *};
use super::group::{
    self, EventWrite, GroupCounters, GroupEngine, GroupIo, GroupJob, GroupLoad, GroupTarget,
    GroupWanted, GroupWriter, JobResult, KeyRow, KeyRows, KeyVerdict, LoadedEvent, StoredKey,
    group_failed,
};
pub use super::group::{GROUP_MAX, GroupCommitStats};
use super::migrations::{self, AppliedMigration, MIGRATIONS_TABLE};
use super::pool::{self, HandTransaction};
use sendpromptly_core::alert::GroupDecision;

use super::{
    AlertJob, ApiKey, Applied, DailyActivity, DeliveryJob, EventFilter, IdempotencyBegin,
    IdempotentOutcome, IdempotentRequest, IncidentCounts, IncidentFilter, NewBatchItem, NewProject,
    PaceReport, Page, PageRequest, Project, ProjectPatch, ProofLink, ReprocessBatch, ResealReport,
    Session, SigningSecretRecord, Store, StoreError, StoreResult, StoredEvent, SweepReport, User,
};

/// How long an idempotency key is remembered.
const IDEMPOTENCY_TTL_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for the writer connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections in the reader pool.
const READERS: u32 = 4;

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Seals and opens signing secrets and idempotent responses.
    keyring: Option<std::sync::Arc<crate::secrets::Keyring>>,
    /// The group-commit writer task that runs `apply` calls.
    group: GroupWriter,
}

impl SqliteStore {
    /// Opens (creating the file if missing) the database at `url`:
    /// `sqlite://path.db`, `sqlite:path.db` or `sqlite::memory:`.
    ///
    /// Does not migrate: call [`Store::migrate`].
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
            .connect_with(options.clone())
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
        Ok(SqliteStore {
            writer,
            reader,
            keyring: None,
            group,
        })
    }

    /// The same store, sealing secrets with `keyring` (required before any
    /// signing secret or idempotent response is written or read).
    #[must_use]
    pub fn with_keyring(mut self, keyring: std::sync::Arc<crate::secrets::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    fn keyring(&self) -> StoreResult<&crate::secrets::Keyring> {
        codec::keyring(self.keyring.as_deref())
    }

    /// Group-commit counters since this store was opened.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.group.stats()
    }

    /// How many commands are queued for the group writer and not yet taken
    /// into a transaction.
    pub fn group_commit_queued(&self) -> usize {
        self.group.queued()
    }

    /// Runs one `apply`/`apply_to_incident` through the group writer, or in a
    /// transaction of its own if the writer task is gone (its runtime shut down).
    async fn apply_grouped(&self, job: GroupJob) -> StoreResult<Applied> {
        group::applied(self.run_grouped(job).await)
    }

    /// [`SqliteStore::apply_grouped`] for a job of any kind.
    async fn run_grouped(&self, job: GroupJob) -> JobResult {
        match self.group.submit(job).await {
            Ok(result) => result,
            Err(job) => {
                let (mut results, _) = run_group_one_by_one(&self.writer, vec![job]).await;
                results
                    .pop()
                    .unwrap_or_else(|| Err(group_failed("the write did not run")))
            }
        }
    }

    /// Closes both pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// The `EXPLAIN QUERY PLAN` lines of the sweeper's due-record query (for
    /// checking that it walks the partial `events_due` index).
    pub async fn explain_sweep_query(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {SWEEP_SELECT}"))
            .bind(0_i64)
            .bind(1_i64)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("detail")?))
            .collect()
    }

    /// The `EXPLAIN QUERY PLAN` lines of the dispatcher's claim query.
    pub async fn explain_claim_query(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {CLAIM_SELECT}"))
            .bind(0_i64)
            .bind(0_i64)
            .bind(1_i64)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("detail")?))
            .collect()
    }

    /// Starts a write transaction on the writer connection.
    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

// ---------------------------------------------------------------------------
// Row decoding

const PROJECT_COLUMNS: &str = "id, name, repair_url, default_deadline_seconds, \
     deadlines_by_event_type, alert_channels, proof_show_metadata, created_at";

fn project_from_row(row: &SqliteRow) -> StoreResult<Project> {
    let deadlines: String = row.try_get("deadlines_by_event_type")?;
    let alerts: String = row.try_get("alert_channels")?;
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        repair_url: row.try_get("repair_url")?,
        default_deadline_seconds: to_u32(
            row.try_get("default_deadline_seconds")?,
            "default_deadline_seconds",
        )?,
        deadlines_by_event_type: serde_json::from_str::<BTreeMap<String, u32>>(&deadlines)
            .map_err(|e| StoreError::Corrupt(format!("deadlines_by_event_type: {e}")))?,
        alert_channels: serde_json::from_str(&alerts)
            .map_err(|e| StoreError::Corrupt(format!("alert_channels: {e}")))?,
        proof_show_metadata: row.try_get("proof_show_metadata")?,
        created_at: ts(row.try_get("created_at")?),
    })
}

const API_KEY_COLUMNS: &str = "id, project_id, key_hash, prefix, name, created_at, revoked_at";

fn api_key_from_row(row: &SqliteRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        key_hash: row.try_get("key_hash")?,
        prefix: row.try_get("prefix")?,
        name: row.try_get("name")?,
        created_at: ts(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
    })
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: ts(row.try_get("created_at")?),
    })
}

const PROOF_LINK_COLUMNS: &str =
    "id, project_id, incident_id, token_hash, created_by, created_at, expires_at, revoked_at";

fn proof_link_from_row(row: &SqliteRow) -> StoreResult<ProofLink> {
    Ok(ProofLink {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        incident_id: row.try_get("incident_id")?,
        token_hash: row.try_get("token_hash")?,
        created_by: row.try_get("created_by")?,
        created_at: ts(row.try_get("created_at")?),
        expires_at: ts(row.try_get("expires_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
    })
}

fn timeline_from_row(row: &SqliteRow) -> StoreResult<TimelineEntry> {
    let kind: String = row.try_get("kind")?;
    let actor: String = row.try_get("actor")?;
    let detail: String = row.try_get("detail")?;
    Ok(TimelineEntry {
        at: ts(row.try_get("at")?),
        kind: TimelineKind::from_str(&kind).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        actor: Actor::from_str(&actor).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        detail: serde_json::from_str::<JsonObject>(&detail)
            .map_err(|e| StoreError::Corrupt(format!("timeline detail: {e}")))?,
    })
}

// ---------------------------------------------------------------------------
// Event persistence (shared by apply, apply_to_incident, sweep_due and
// finish_delivery_attempt)

fn loaded_from_row(row: &SqliteRow) -> StoreResult<LoadedEvent> {
    let json: String = row.try_get("record")?;
    Ok(LoadedEvent {
        pk: row.try_get("pk")?,
        project_id: row.try_get("project_id")?,
        record: decode_record(&json)?,
    })
}

async fn load_by_key(
    conn: &mut SqliteConnection,
    project_id: &str,
    key: &EventKey,
) -> StoreResult<Option<LoadedEvent>> {
    let row = sqlx::query(
        "SELECT pk, project_id, record FROM events \
         WHERE project_id = ? AND provider = ? AND event_id = ?",
    )
    .bind(project_id)
    .bind(key.provider.as_str())
    .bind(&key.event_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(loaded_from_row).transpose()
}

async fn load_by_incident(
    conn: &mut SqliteConnection,
    project_id: &str,
    incident_id: &str,
) -> StoreResult<Option<LoadedEvent>> {
    let row = sqlx::query(
        "SELECT e.pk, e.project_id, e.record FROM incidents i JOIN events e ON e.pk = i.event_pk \
         WHERE i.id = ? AND i.project_id = ?",
    )
    .bind(incident_id)
    .bind(project_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(loaded_from_row).transpose()
}

/// Opens a group's transaction and does all its reading, in one round
/// trip: `BEGIN IMMEDIATE`, then one query for the stored events among
/// those wanted and for which of the API keys are unrevoked (see
/// [`valid_api_keys`]), and one for the stored idempotency keys, told apart
/// by the `what` column.
async fn begin_and_load_group(
    conn: &mut SqliteConnection,
    wanted: &GroupWanted<'_>,
) -> StoreResult<GroupLoad> {
    let rows = sqlx::query(concat!(
        "BEGIN IMMEDIATE; \
         SELECT 'event' AS what, e.pk, e.project_id, e.record, NULL AS key_id \
         FROM json_each(?1) AS j CROSS JOIN events AS e \
         ON e.project_id = j.value ->> 0 AND e.provider = j.value ->> 1 \
         AND e.event_id = j.value ->> 2 \
         UNION ALL \
         SELECT 'key', NULL, k.project_id, NULL, k.id \
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
            "event" => load.events.push(loaded_from_row(row)?),
            "key" => load
                .valid_keys
                .push((row.try_get("project_id")?, row.try_get("key_id")?)),
            _ => load.idempotency.push(stored_key_from_row(row)?),
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

fn stored_key_from_row(row: &SqliteRow) -> StoreResult<StoredKey> {
    Ok(StoredKey {
        project_id: row.try_get("project_id")?,
        key: row.try_get("key")?,
        request_hash: row.try_get("request_hash")?,
        status: group::stored_status(row.try_get("status")?)?,
        response: row.try_get("response")?,
        locked_until: row.try_get("locked_until")?,
        created_at: row.try_get("created_at")?,
    })
}

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
    row.as_ref().map(stored_key_from_row).transpose()
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

/// Which of `keys` (`(project id, key id)`) are that project's unrevoked
/// API keys (the writer's transaction holds the write lock, so no
/// revocation commits before it).
async fn valid_api_keys(
    conn: &mut SqliteConnection,
    keys: &[(&str, &str)],
) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT k.project_id, k.id FROM json_each(?) AS j CROSS JOIN api_keys AS k \
         ON k.id = j.value ->> 1 AND k.project_id = j.value ->> 0 WHERE k.revoked_at IS NULL",
    )
    .bind(encode_json(&keys, "API keys")?)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("project_id")?, row.try_get("id")?)))
        .collect()
}

/// The three statements of [`persist_many`]'s round trip (a macro so that
/// `concat!` can append a `COMMIT`).
macro_rules! persist_events_sql {
    () => {
        "INSERT INTO events (project_id, provider, event_id, event_type, subject, state, \
         record, due_at, received_at, created_at, updated_at) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, \
         j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, \
         j.value ->> 10 FROM json_each(?) AS j \
         RETURNING pk, project_id, provider, event_id; \
         UPDATE events SET event_type = j.value ->> 1, subject = j.value ->> 2, \
         state = j.value ->> 3, record = j.value ->> 4, due_at = j.value ->> 5, \
         received_at = j.value ->> 6, updated_at = j.value ->> 7 \
         FROM json_each(?) AS j WHERE events.pk = j.value ->> 0; \
         INSERT INTO timeline (event_pk, at, kind, actor, detail) \
         SELECT e.pk, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4 \
         FROM json_each(?) AS j CROSS JOIN events AS e \
         ON e.project_id = j.value -> 0 ->> 0 AND e.provider = j.value -> 0 ->> 1 \
         AND e.event_id = j.value -> 0 ->> 2"
    };
}

/// Writes what one [`Transition`] changed (see [`persist_many`]); returns
/// the event's row id.
async fn persist(
    conn: &mut SqliteConnection,
    project_id: &str,
    before: Option<(i64, &EventRecord)>,
    transition: &Transition,
    now: Timestamp,
) -> StoreResult<i64> {
    let write = EventWrite::one(project_id, before, transition, now);
    persist_many(conn, std::slice::from_ref(&write), None, false)
        .await?
        .0
        .pop()
        .ok_or_else(|| StoreError::Corrupt("no row id for a written event".to_owned()))
}

/// Writes what the transitions of `writes` changed, and the idempotency
/// keys to remember, in the caller's transaction: in one round trip the new
/// event rows, the updated ones, their timeline entries in order and the
/// keys (set-based statements), then per event the incident copy and the
/// outbox rows its effects ask for. Returns each event's row id, in the
/// order of `writes`, and whether the transaction was committed: with
/// `then_commit`, when nothing is left to write after the set-based
/// statements (no incident, no effect), a `COMMIT` rides along in the same
/// round trip.
async fn persist_many(
    conn: &mut SqliteConnection,
    writes: &[EventWrite<'_>],
    keys: Option<&KeyRows>,
    then_commit: bool,
) -> StoreResult<(Vec<i64>, bool)> {
    let rows = group::write_rows(writes)?;
    let entries = group::timeline_rows(writes, |i| {
        let w = &writes[i];
        (w.project_id, w.after.provider.as_str(), &w.after.event_id)
    })?;
    let commit_now = then_commit
        && !writes.iter().zip(&rows.changed).any(|(w, changed)| {
            *changed
                && (w.after.incident.is_some()
                    || w.transitions.iter().any(|(t, _)| !t.effects.is_empty()))
        });
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
        .bind(entries.as_deref().unwrap_or("[]"));
    if let Some(keys) = keys {
        query = query.bind(&keys.json);
    }
    let inserted = query
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| insert_error(e, "this event already exists", "project"))?;
    let mut pks: Vec<Option<i64>> = writes.iter().map(|w| w.before.map(|(pk, _)| pk)).collect();
    for row in &inserted {
        let i = rows.inserted(
            row.try_get("project_id")?,
            row.try_get("provider")?,
            row.try_get("event_id")?,
        )?;
        pks[i] = Some(row.try_get("pk")?);
    }
    let pks = group::all_row_ids(pks)?;
    if commit_now {
        return Ok((pks, true));
    }

    for ((write, pk), changed) in writes.iter().zip(&pks).zip(rows.changed) {
        if !changed {
            continue;
        }
        if let Some(incident) = &write.after.incident {
            upsert_incident(conn, write.project_id, *pk, write.after, incident).await?;
        }
        for (transition, now) in &write.transitions {
            write_effects(conn, write.project_id, *pk, transition, *now).await?;
        }
    }
    Ok((pks, false))
}

/// Writes the `incidents` copy of `record.incident`.
async fn upsert_incident(
    conn: &mut SqliteConnection,
    project_id: &str,
    pk: i64,
    record: &EventRecord,
    incident: &Incident,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO incidents (id, project_id, event_pk, kind, state, provider, event_id, \
         event_type, subject, opened_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (event_pk) DO UPDATE SET kind = excluded.kind, state = excluded.state, \
         event_type = excluded.event_type, subject = excluded.subject, \
         updated_at = excluded.updated_at",
    )
    .bind(&incident.id)
    .bind(project_id)
    .bind(pk)
    .bind(incident.kind.as_str())
    .bind(incident.state.as_str())
    .bind(record.provider.as_str())
    .bind(&record.event_id)
    .bind(&record.event_type)
    .bind(&record.subject)
    .bind(ms(incident.opened_at))
    .bind(ms(record.updated_at))
    .execute(&mut *conn)
    .await
    .map_err(|e| insert_error(e, "this incident id is already used", "event"))?;
    Ok(())
}

/// Writes the outbox rows of one transition's effects: callbacks to
/// deliver or cancel, and alerts.
async fn write_effects(
    conn: &mut SqliteConnection,
    project_id: &str,
    pk: i64,
    transition: &Transition,
    now: Timestamp,
) -> StoreResult<()> {
    for effect in &transition.effects {
        match effect {
            Effect::DeliverCallback {
                reprocess_id,
                incident_id,
            } => {
                sqlx::query(
                    "INSERT INTO deliveries (reprocess_id, project_id, event_pk, incident_id, \
                     state, attempts, next_attempt_at, lease_until, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, 'pending', 0, ?, NULL, ?, ?)",
                )
                .bind(reprocess_id)
                .bind(project_id)
                .bind(pk)
                .bind(incident_id)
                .bind(ms(now))
                .bind(ms(now))
                .bind(ms(now))
                .execute(&mut *conn)
                .await
                .map_err(|e| insert_error(e, "this reprocess id is already used", "event"))?;
            }
            Effect::CancelCallback { reprocess_id } => {
                sqlx::query(
                    "UPDATE deliveries SET state = 'cancelled', lease_until = NULL, updated_at = ? \
                     WHERE reprocess_id = ? AND event_pk = ? AND state = 'pending'",
                )
                .bind(ms(now))
                .bind(reprocess_id)
                .bind(pk)
                .execute(&mut *conn)
                .await?;
            }
            Effect::IncidentOpened { .. }
            | Effect::IncidentReopened { .. }
            | Effect::IncidentReturnedToOpen { .. }
            | Effect::IncidentResolved { .. }
            | Effect::CallbackGaveUp { .. }
            | Effect::ReprocessNoResult { .. } => {}
        }
    }
    insert_alerts(conn, project_id, transition, now).await
}

/// Enqueues the alerts the effects raise for the project's channels
/// ([`super::plan_alerts`]), in the caller's transaction.
async fn insert_alerts(
    conn: &mut SqliteConnection,
    project_id: &str,
    transition: &Transition,
    now: Timestamp,
) -> StoreResult<()> {
    if super::alert_events(&transition.effects).is_empty() {
        return Ok(());
    }
    let Some(channels) =
        sqlx::query_scalar::<_, String>("SELECT alert_channels FROM projects WHERE id = ?")
            .bind(project_id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(());
    };
    let channels: serde_json::Value = serde_json::from_str(&channels)
        .map_err(|e| StoreError::Corrupt(format!("alert_channels: {e}")))?;
    for alert in super::plan_alerts(project_id, &channels, transition, now) {
        sqlx::query(
            "INSERT INTO alerts (id, project_id, channel_index, channel, event, group_key, role, \
             incidents, state, attempts, next_attempt_at, lease_until, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, NULL, ?, ?)",
        )
        .bind(&alert.id)
        .bind(project_id)
        .bind(alert.channel_index)
        .bind(&alert.channel_json)
        .bind(alert.event.as_str())
        .bind(&alert.group_key)
        .bind(alert.role)
        .bind(&alert.incidents_json)
        .bind(ms(now))
        .bind(ms(now))
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Appends `entry` to an incident's timeline, keeping the record's
/// `updated_at` the time of its latest entry, in the caller's transaction.
async fn append_entry(
    conn: &mut SqliteConnection,
    project_id: &str,
    incident_id: &str,
    entry: &TimelineEntry,
) -> StoreResult<()> {
    let mut loaded = load_by_incident(conn, project_id, incident_id)
        .await?
        .ok_or(StoreError::NotFound("incident"))?;
    insert_timeline_entry(conn, loaded.pk, entry).await?;
    if entry.at > loaded.record.updated_at {
        loaded.record.updated_at = entry.at;
        sqlx::query("UPDATE events SET record = ?, updated_at = ? WHERE pk = ?")
            .bind(encode_record(&loaded.record)?)
            .bind(ms(entry.at))
            .bind(loaded.pk)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn insert_timeline_entry(
    conn: &mut SqliteConnection,
    event_pk: i64,
    entry: &TimelineEntry,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO timeline (event_pk, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(event_pk)
        .bind(ms(entry.at))
        .bind(entry.kind.as_str())
        .bind(entry.actor.to_string())
        .bind(encode_json(&entry.detail, "timeline detail")?)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Group commit (apply and apply_to_incident)

/// The SQLite side of group commit, on the writer connection, in as few
/// round trips to the connection's thread as possible (each costs a thread
/// wake-up, about half a millisecond on a busy two-core machine, and the
/// writer is the one serial part of ingest): `BEGIN IMMEDIATE` with the
/// group's reads, then the group's writes with the `COMMIT`
/// ([`begin_and_load_group`], [`persist_many`]; a separate `COMMIT` only
/// when incidents or effects needed more statements). The transaction is
/// opened and closed by hand rather than through sqlx's `Transaction`,
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
        load_by_incident(self.conn, project_id, incident_id).await
    }

    async fn persist(
        &mut self,
        writes: &[EventWrite<'_>],
        keys: Option<&KeyRows>,
    ) -> StoreResult<Vec<i64>> {
        let (pks, committed) = persist_many(self.conn, writes, keys, true).await?;
        self.committed = committed;
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
    let result = apply_job(conn, job).await;
    let remember = idempotency.and_then(|job_key| {
        let response = (job_key.request.respond)(&result)?;
        Some(group::key_row(&job_key, &project_id, &response, now))
    });
    (result.map(IdempotentOutcome::Applied), remember)
}

/// The command of one job inside the current transaction.
async fn apply_job(conn: &mut SqliteConnection, job: GroupJob) -> StoreResult<Applied> {
    let GroupJob {
        project_id,
        api_key,
        target,
        command,
        ctx,
        idempotency: _,
    } = job;
    if let Some(key_id) = &api_key
        && valid_api_keys(conn, &[(&project_id, key_id)])
            .await?
            .is_empty()
    {
        return Err(StoreError::KeyRevoked);
    }
    let (loaded, key) = match target {
        GroupTarget::Event(key) => (load_by_key(conn, &project_id, &key).await?, Some(key)),
        GroupTarget::Incident(incident_id) => (
            Some(
                load_by_incident(conn, &project_id, &incident_id)
                    .await?
                    .ok_or(StoreError::NotFound("incident"))?,
            ),
            None,
        ),
    };
    let before = loaded.as_ref().map(|l| l.record.clone());
    let transition = machine::apply(before, command, &ctx)?;
    if let (None, Some(key)) = (&loaded, &key) {
        group::ensure_created_as_asked(&transition, key)?;
    }
    persist(
        conn,
        &project_id,
        loaded.as_ref().map(|l| (l.pk, &l.record)),
        &transition,
        ctx.now,
    )
    .await?;
    Ok(Applied { transition })
}

/// The sweeper's query: due records, earliest first, through `events_due`.
const SWEEP_SELECT: &str = "SELECT pk, project_id, record, due_at FROM events \
     WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?";

/// The dispatcher's query: pending callbacks due and not leased.
const CLAIM_SELECT: &str = "SELECT reprocess_id, project_id, incident_id, event_pk, attempts \
     FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ? \
     AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at LIMIT ?";

async fn read_timeline(conn: &mut SqliteConnection, pk: i64) -> StoreResult<Vec<TimelineEntry>> {
    let rows =
        sqlx::query("SELECT at, kind, actor, detail FROM timeline WHERE event_pk = ? ORDER BY seq")
            .bind(pk)
            .fetch_all(conn)
            .await?;
    rows.iter().map(timeline_from_row).collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (\
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        ))
        .execute(&mut *tx)
        .await?;
        let applied = sqlx::query(&format!(
            "SELECT version, name FROM {MIGRATIONS_TABLE} ORDER BY version"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok(AppliedMigration {
                version: row.try_get("version")?,
                name: row.try_get("name")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        let todo = migrations::plan(migrations::SQLITE, &applied)?;
        let now = Timestamp::from_datetime(chrono::Utc::now());
        for migration in todo {
            // A plain string runs every statement it holds.
            sqlx::Executor::execute(&mut *tx, migration.sql).await?;
            sqlx::query(&format!(
                "INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES (?, ?, ?)"
            ))
            .bind(migration.version)
            .bind(migration.name)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "applied migration"
            );
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn probe_write(&self) -> StoreResult<()> {
        self.write().await?.commit().await?;
        Ok(())
    }

    async fn create_project(&self, project: NewProject) -> StoreResult<Project> {
        let mut tx = self.write().await?;
        let taken = sqlx::query("SELECT 1 FROM projects WHERE name = ?")
            .bind(&project.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(StoreError::Conflict(format!(
                "a project named `{}` already exists",
                project.name
            )));
        }
        sqlx::query(
            "INSERT INTO projects (id, name, repair_url, default_deadline_seconds, \
             deadlines_by_event_type, alert_channels, proof_show_metadata, created_at, updated_at) \
             VALUES (?, ?, ?, ?, '{}', '[]', 0, ?, ?)",
        )
        .bind(&project.id)
        .bind(&project.name)
        .bind(&project.repair_url)
        .bind(i64::from(project.default_deadline_seconds))
        .bind(ms(project.created_at))
        .bind(ms(project.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| insert_error(e, "a project with this id already exists", "project"))?;
        tx.commit().await?;
        Ok(Project {
            id: project.id,
            name: project.name,
            repair_url: project.repair_url,
            default_deadline_seconds: project.default_deadline_seconds,
            deadlines_by_event_type: BTreeMap::new(),
            alert_channels: serde_json::Value::Array(Vec::new()),
            proof_show_metadata: false,
            created_at: project.created_at,
        })
    }

    async fn project(&self, project_id: &str) -> StoreResult<Option<Project>> {
        sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?"
        ))
        .bind(project_id)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(project_from_row)
        .transpose()
    }

    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>> {
        sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(project_from_row)
        .transpose()
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at, id"
        ))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(project_from_row)
        .collect()
    }

    async fn update_project(&self, project_id: &str, patch: ProjectPatch) -> StoreResult<Project> {
        let mut tx = self.write().await?;
        let mut project = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?"
        ))
        .bind(project_id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(project_from_row)
        .transpose()?
        .ok_or(StoreError::NotFound("project"))?;
        if let Some(url) = patch.repair_url {
            project.repair_url = url;
        }
        if let Some(seconds) = patch.default_deadline_seconds {
            project.default_deadline_seconds = seconds;
        }
        if let Some(table) = patch.deadlines_by_event_type {
            project.deadlines_by_event_type = table;
        }
        if let Some(channels) = patch.alert_channels {
            project.alert_channels = channels;
        }
        if let Some(show) = patch.proof_show_metadata {
            project.proof_show_metadata = show;
        }
        let now = Timestamp::from_datetime(chrono::Utc::now());
        sqlx::query(
            "UPDATE projects SET repair_url = ?, default_deadline_seconds = ?, \
             deadlines_by_event_type = ?, alert_channels = ?, proof_show_metadata = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(&project.repair_url)
        .bind(i64::from(project.default_deadline_seconds))
        .bind(encode_json(
            &project.deadlines_by_event_type,
            "deadlines_by_event_type",
        )?)
        .bind(encode_json(&project.alert_channels, "alert_channels")?)
        .bind(project.proof_show_metadata)
        .bind(ms(now))
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(project)
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, project_id, key_hash, prefix, name, created_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.project_id)
        .bind(&key.key_hash)
        .bind(&key.prefix)
        .bind(&key.name)
        .bind(ms(key.created_at))
        .bind(key.revoked_at.map(ms))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            insert_error(
                e,
                "an API key with this id or hash already exists",
                "project",
            )
        })?;
        tx.commit().await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKey>> {
        sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?"
        ))
        .bind(key_hash)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(api_key_from_row)
        .transpose()
    }

    async fn list_api_keys(&self, project_id: &str) -> StoreResult<Vec<ApiKey>> {
        sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = ? \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(project_id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(api_key_from_row)
        .collect()
    }

    async fn revoke_api_key(
        &self,
        project_id: &str,
        key_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let found = sqlx::query("SELECT revoked_at FROM api_keys WHERE project_id = ? AND id = ?")
            .bind(project_id)
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = found else {
            return Ok(false);
        };
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_none() {
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE project_id = ? AND id = ?")
                .bind(ms(now))
                .bind(project_id)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn add_signing_secret(
        &self,
        project_id: &str,
        secret: &str,
        now: Timestamp,
        older_expire_at: Timestamp,
    ) -> StoreResult<()> {
        let sealed = codec::seal_signing_secret(self.keyring()?, project_id, secret);
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE signing_secrets SET expires_at = ? \
             WHERE project_id = ? AND expires_at IS NULL",
        )
        .bind(ms(older_expire_at))
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signing_secrets (project_id, secret, created_at, expires_at) \
             VALUES (?, ?, ?, NULL)",
        )
        .bind(project_id)
        .bind(&sealed)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| insert_error(e, "this signing secret already exists", "project"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn signing_secrets(
        &self,
        project_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<SigningSecretRecord>> {
        let keyring = self.keyring()?;
        sqlx::query(
            "SELECT id, secret, created_at, expires_at FROM signing_secrets \
             WHERE project_id = ? AND (expires_at IS NULL OR expires_at > ?) \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(project_id)
        .bind(ms(now))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            let stored: String = row.try_get("secret")?;
            Ok(SigningSecretRecord {
                id: row.try_get("id")?,
                secret: codec::open_signing_secret(keyring, project_id, &stored)?,
                created_at: ts(row.try_get("created_at")?),
                expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(ts),
            })
        })
        .collect()
    }

    async fn stored_signing_secrets(&self, project_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT secret FROM signing_secrets WHERE project_id = ? ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn reseal_signing_secrets(&self) -> StoreResult<ResealReport> {
        let keyring = self.keyring()?;
        let mut tx = self.write().await?;
        let rows = sqlx::query("SELECT id, project_id, secret FROM signing_secrets ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        let mut report = ResealReport::default();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let project_id: String = row.try_get("project_id")?;
            let stored: String = row.try_get("secret")?;
            let Some((sealed, was_plain)) =
                codec::reseal_signing_secret(keyring, &project_id, &stored)?
            else {
                continue;
            };
            sqlx::query("UPDATE signing_secrets SET secret = ? WHERE id = ?")
                .bind(&sealed)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if was_plain {
                report.sealed_plaintext += 1;
            } else {
                report.resealed += 1;
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn create_user(&self, user: User) -> StoreResult<()> {
        let email = user.email.trim().to_lowercase();
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)")
            .bind(&user.id)
            .bind(&email)
            .bind(&user.password_hash)
            .bind(ms(user.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                insert_error(
                    e,
                    &format!("a user with email {email} already exists"),
                    "user",
                )
            })?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        sqlx::query("SELECT id, email, password_hash, created_at FROM users WHERE email = ?")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.reader)
            .await?
            .try_get("n")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        sqlx::query(
            "SELECT id, email, password_hash, created_at FROM users ORDER BY created_at, id",
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn create_session(&self, session: Session) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?")
            .bind(ms(session.created_at))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, user_id, created_at, expires_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&session.token_hash)
        .bind(&session.user_id)
        .bind(ms(session.created_at))
        .bind(ms(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| insert_error(e, "this session token is already used", "user"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_user(&self, token_hash: &[u8], now: Timestamp) -> StoreResult<Option<User>> {
        sqlx::query(
            "SELECT u.id, u.email, u.password_hash, u.created_at FROM console_sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(ms(now))
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn delete_session(&self, token_hash: &[u8]) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn incident_counts(&self, project_id: &str) -> StoreResult<IncidentCounts> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM incidents WHERE project_id = ? GROUP BY state",
        )
        .bind(project_id)
        .fetch_all(&self.reader)
        .await?;
        let mut counts = IncidentCounts::default();
        for row in &rows {
            let n = to_u64(row.try_get("n")?);
            match row.try_get::<String, _>("state")?.as_str() {
                "open" => counts.open = n,
                "reprocessing" => counts.reprocessing = n,
                "resolved" => counts.resolved = n,
                other => {
                    return Err(StoreError::Corrupt(format!("incident state `{other}`")));
                }
            }
        }
        Ok(counts)
    }

    async fn daily_activity(
        &self,
        project_id: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<DailyActivity>> {
        let from = ms(since).div_euclid(MILLIS_PER_DAY) * MILLIS_PER_DAY;
        let rows = sqlx::query(
            "SELECT day, event_type, SUM(ev) AS events, SUM(fl) AS failures, SUM(inc) AS incidents \
             FROM ( \
               SELECT created_at / ?3 AS day, event_type, 1 AS ev, 0 AS fl, 0 AS inc \
                 FROM events WHERE project_id = ?1 AND created_at >= ?2 \
               UNION ALL \
               SELECT t.at / ?3, e.event_type, 0, 1, 0 \
                 FROM timeline t JOIN events e ON e.pk = t.event_pk \
                 WHERE t.kind = 'result.failure' AND t.at >= ?2 AND e.project_id = ?1 \
                   AND json_extract(t.detail, '$.ignored') IS NULL \
               UNION ALL \
               SELECT opened_at / ?3, event_type, 0, 0, 1 \
                 FROM incidents WHERE project_id = ?1 AND opened_at >= ?2 \
             ) GROUP BY day, event_type ORDER BY day, event_type",
        )
        .bind(project_id)
        .bind(from)
        .bind(MILLIS_PER_DAY)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DailyActivity {
                    day: day_of(row.try_get("day")?)?,
                    event_type: row.try_get("event_type")?,
                    events: to_u64(row.try_get("events")?),
                    failures: to_u64(row.try_get("failures")?),
                    incidents: to_u64(row.try_get("incidents")?),
                })
            })
            .collect()
    }

    async fn apply(
        &self,
        project_id: &str,
        key: &EventKey,
        command: Command,
        ctx: Context,
    ) -> StoreResult<Applied> {
        self.apply_grouped(GroupJob::for_event(project_id, None, key, command, ctx))
            .await
    }

    async fn apply_with_key(
        &self,
        project_id: &str,
        key_id: &str,
        key: &EventKey,
        command: Command,
        ctx: Context,
    ) -> StoreResult<Applied> {
        self.apply_grouped(GroupJob::for_event(
            project_id,
            Some(key_id),
            key,
            command,
            ctx,
        ))
        .await
    }

    async fn apply_idempotent(
        &self,
        project_id: &str,
        key_id: &str,
        key: &EventKey,
        command: Command,
        ctx: Context,
        request: IdempotentRequest,
    ) -> StoreResult<IdempotentOutcome> {
        let job = GroupJob::idempotent(
            project_id,
            key_id,
            key,
            command,
            ctx,
            request,
            self.keyring.as_ref(),
        )?;
        self.run_grouped(job).await
    }

    fn group_commit_stats(&self) -> Option<GroupCommitStats> {
        Some(self.group.stats())
    }

    fn writer_stall(&self) -> Option<Duration> {
        self.group.stalled_for()
    }

    async fn apply_to_incident(
        &self,
        project_id: &str,
        incident_id: &str,
        command: Command,
        ctx: Context,
    ) -> StoreResult<Applied> {
        self.apply_grouped(GroupJob::for_incident(
            project_id,
            incident_id,
            command,
            ctx,
        ))
        .await
    }

    async fn append_incident_entry(
        &self,
        project_id: &str,
        incident_id: &str,
        entry: TimelineEntry,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append_entry(&mut tx, project_id, incident_id, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn event(&self, project_id: &str, key: &EventKey) -> StoreResult<Option<StoredEvent>> {
        let mut tx = self.reader.begin().await?;
        let Some(loaded) = load_by_key(&mut tx, project_id, key).await? else {
            return Ok(None);
        };
        let timeline = read_timeline(&mut tx, loaded.pk).await?;
        tx.commit().await?;
        Ok(Some(StoredEvent {
            record: loaded.record,
            timeline,
        }))
    }

    async fn incident(
        &self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Option<StoredEvent>> {
        let mut tx = self.reader.begin().await?;
        let Some(loaded) = load_by_incident(&mut tx, project_id, incident_id).await? else {
            return Ok(None);
        };
        let timeline = read_timeline(&mut tx, loaded.pk).await?;
        tx.commit().await?;
        Ok(Some(StoredEvent {
            record: loaded.record,
            timeline,
        }))
    }

    async fn search_events(
        &self,
        project_id: &str,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<EventRecord>> {
        let limit = clamp_limit(page.limit);
        let after = page
            .cursor
            .as_deref()
            .map(parse_events_cursor)
            .transpose()?;
        let mut query =
            QueryBuilder::<Sqlite>::new("SELECT pk, record FROM events WHERE project_id = ");
        query.push_bind(project_id.to_owned());
        if let Some(subject) = &filter.subject {
            query.push(" AND subject = ").push_bind(subject.clone());
        }
        if let Some(state) = filter.state {
            query.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(event_id) = &filter.event_id {
            query.push(" AND event_id = ").push_bind(event_id.clone());
        }
        if let Some(text) = &filter.search {
            let pattern = contains_pattern(text);
            query
                .push(" AND (event_id LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR subject LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        if let Some(pk) = after {
            query.push(" AND pk < ").push_bind(pk);
        }
        query
            .push(" ORDER BY pk DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = query.build().fetch_all(&self.reader).await?;
        let mut data = Vec::with_capacity(rows.len());
        let mut last_pk = None;
        for row in rows.iter().take(limit as usize) {
            let json: String = row.try_get("record")?;
            data.push(decode_record(&json)?);
            last_pk = Some(row.try_get::<i64, _>("pk")?);
        }
        let next_cursor = if rows.len() > limit as usize {
            last_pk.map(events_cursor)
        } else {
            None
        };
        Ok(Page { data, next_cursor })
    }

    async fn list_incidents(
        &self,
        project_id: &str,
        filter: &IncidentFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<EventRecord>> {
        let limit = clamp_limit(page.limit);
        let after = page
            .cursor
            .as_deref()
            .map(parse_incidents_cursor)
            .transpose()?;
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT i.id, i.opened_at, e.record FROM incidents i \
             JOIN events e ON e.pk = i.event_pk WHERE i.project_id = ",
        );
        query.push_bind(project_id.to_owned());
        if let Some(state) = filter.state {
            query.push(" AND i.state = ").push_bind(state.as_str());
        }
        if let Some(kind) = filter.kind {
            query.push(" AND i.kind = ").push_bind(kind.as_str());
        }
        if let Some(provider) = filter.provider {
            query
                .push(" AND i.provider = ")
                .push_bind(provider.as_str());
        }
        if let Some(event_type) = &filter.event_type {
            query
                .push(" AND i.event_type = ")
                .push_bind(event_type.clone());
        }
        if let Some(subject) = &filter.subject {
            query.push(" AND i.subject = ").push_bind(subject.clone());
        }
        if let Some(text) = &filter.search {
            let pattern = contains_pattern(text);
            query
                .push(" AND (i.id LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR i.event_id LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR i.subject LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        if let Some(at) = filter.opened_after {
            query.push(" AND i.opened_at >= ").push_bind(ms(at));
        }
        if let Some(at) = filter.opened_before {
            query.push(" AND i.opened_at < ").push_bind(ms(at));
        }
        if let Some((at, id)) = after {
            query
                .push(" AND (i.opened_at < ")
                .push_bind(at)
                .push(" OR (i.opened_at = ")
                .push_bind(at)
                .push(" AND i.id < ")
                .push_bind(id)
                .push("))");
        }
        query
            .push(" ORDER BY i.opened_at DESC, i.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = query.build().fetch_all(&self.reader).await?;
        let mut data = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.iter().take(limit as usize) {
            let json: String = row.try_get("record")?;
            data.push(decode_record(&json)?);
            last = Some((
                row.try_get::<i64, _>("opened_at")?,
                row.try_get::<String, _>("id")?,
            ));
        }
        let next_cursor = if rows.len() > limit as usize {
            last.map(|(at, id)| incidents_cursor(at, &id))
        } else {
            None
        };
        Ok(Page { data, next_cursor })
    }

    async fn sweep_due(&self, now: Timestamp, limit: u32) -> StoreResult<SweepReport> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(SWEEP_SELECT)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut report = SweepReport {
            examined: rows.len(),
            ..SweepReport::default()
        };
        for row in &rows {
            let due_at: i64 = row.try_get("due_at")?;
            report.oldest_due_at = Some(
                report
                    .oldest_due_at
                    .map_or(ts(due_at), |t| t.min(ts(due_at))),
            );
            let loaded = match loaded_from_row(row) {
                Ok(loaded) => loaded,
                Err(StoreError::Corrupt(why)) => {
                    // One unreadable record must not stall every sweep: take
                    // it off the queue (the stored text is kept as it is).
                    let pk: i64 = row.try_get("pk")?;
                    tracing::error!(event_pk = pk, %why, "unreadable event record; removed from the sweep queue");
                    sqlx::query("UPDATE events SET due_at = NULL WHERE pk = ?")
                        .bind(pk)
                        .execute(&mut *tx)
                        .await?;
                    continue;
                }
                Err(other) => return Err(other),
            };
            let ctx = Context {
                now,
                actor: Actor::System("sweeper".to_owned()),
                new_incident_id: new_incident_id(now),
            };
            let transition = machine::apply(Some(loaded.record.clone()), Command::Tick, &ctx)?;
            let due_again = transition.record.next_due_at();
            persist(
                &mut tx,
                &loaded.project_id,
                Some((loaded.pk, &loaded.record)),
                &transition,
                now,
            )
            .await?;
            if transition.entries.is_empty() && transition.record == loaded.record {
                // Nothing happened although the row was due: its due time
                // is stale. Rewrite it from the record so it is not
                // examined again and again.
                if due_again.is_some_and(|due| due <= now) {
                    tracing::warn!(event_pk = loaded.pk, "due record unchanged by a tick");
                }
                sqlx::query("UPDATE events SET due_at = ? WHERE pk = ?")
                    .bind(due_again.filter(|due| *due > now).map(ms))
                    .bind(loaded.pk)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            report.transitions.push((loaded.project_id, transition));
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryJob>> {
        let lease_until = now + lease;
        let mut tx = self.write().await?;
        let rows = sqlx::query(CLAIM_SELECT)
            .bind(ms(now))
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let reprocess_id: String = row.try_get("reprocess_id")?;
            let project_id: String = row.try_get("project_id")?;
            let event_pk: i64 = row.try_get("event_pk")?;
            let attempts = to_u32(row.try_get("attempts")?, "attempts")?;
            sqlx::query(
                "UPDATE deliveries SET lease_until = ?, updated_at = ? WHERE reprocess_id = ?",
            )
            .bind(ms(lease_until))
            .bind(ms(now))
            .bind(&reprocess_id)
            .execute(&mut *tx)
            .await?;
            let context = sqlx::query(
                "SELECT e.record, p.repair_url FROM events e JOIN projects p ON p.id = e.project_id \
                 WHERE e.pk = ?",
            )
            .bind(event_pk)
            .fetch_one(&mut *tx)
            .await?;
            let json: String = context.try_get("record")?;
            jobs.push(DeliveryJob {
                reprocess_id,
                project_id,
                incident_id: row.try_get("incident_id")?,
                attempt: attempts.saturating_add(1),
                record: decode_record(&json)?,
                repair_url: context.try_get("repair_url")?,
                lease_until,
            });
        }
        tx.commit().await?;
        Ok(jobs)
    }

    async fn finish_delivery_attempt(
        &self,
        job: &DeliveryJob,
        report: AttemptReport,
        next: NextStep,
        now: Timestamp,
    ) -> StoreResult<Applied> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT e.pk, e.project_id, e.record, d.state AS delivery_state, d.lease_until \
             FROM deliveries d JOIN events e ON e.pk = d.event_pk \
             WHERE d.reprocess_id = ? AND d.project_id = ?",
        )
        .bind(&job.reprocess_id)
        .bind(&job.project_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("delivery"))?;
        let loaded = loaded_from_row(&row)?;
        let holds_lease = row.try_get::<String, _>("delivery_state")? == "pending"
            && row.try_get::<Option<i64>, _>("lease_until")? == Some(ms(job.lease_until));
        // While this job holds the row's lease its attempt is new by
        // construction (finishing clears the lease). If an earlier claim
        // whose lease ran out already recorded an attempt with the same
        // number, number this one after it, so the state machine records it
        // instead of dropping it as a repeat and leaving the row and the
        // incident disagreeing.
        let recorded_attempts = loaded
            .record
            .incident
            .as_ref()
            .and_then(|i| i.reprocess.as_ref())
            .filter(|r| r.id == job.reprocess_id)
            .map_or(0, |r| r.attempts);
        let attempt = if holds_lease {
            job.attempt.max(recorded_attempts.saturating_add(1))
        } else {
            job.attempt
        };
        let ctx = Context {
            now,
            actor: Actor::System("dispatcher".to_owned()),
            new_incident_id: new_incident_id(now),
        };
        let command = Command::CallbackAttempt {
            reprocess_id: job.reprocess_id.clone(),
            attempt,
            report,
            next,
        };
        let transition = machine::apply(Some(loaded.record.clone()), command, &ctx)?;
        // Cancellations among the effects are carried out here (the row
        // becomes `cancelled` and the update below leaves it alone).
        persist(
            &mut tx,
            &loaded.project_id,
            Some((loaded.pk, &loaded.record)),
            &transition,
            now,
        )
        .await?;
        let (state, next_attempt_at) = match next {
            NextStep::Done => ("delivered", None),
            NextStep::GiveUp(_) => ("gave_up", None),
            NextStep::RetryAt(at) => ("pending", Some(ms(at))),
        };
        let updated = sqlx::query(
            "UPDATE deliveries SET state = ?, attempts = ?, \
             next_attempt_at = COALESCE(?, next_attempt_at), lease_until = NULL, updated_at = ? \
             WHERE reprocess_id = ? AND state = 'pending' AND lease_until = ?",
        )
        .bind(state)
        .bind(i64::from(attempt))
        .bind(next_attempt_at)
        .bind(ms(now))
        .bind(&job.reprocess_id)
        .bind(ms(job.lease_until))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tracing::debug!(
                reprocess_id = %job.reprocess_id,
                "delivery row no longer pending under this lease; left as it is"
            );
        }
        tx.commit().await?;
        Ok(Applied { transition })
    }

    async fn pending_deliveries(&self) -> StoreResult<u64> {
        let count: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'pending'")
                .fetch_one(&self.reader)
                .await?
                .try_get("n")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn claim_alerts(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
        window_seconds: i64,
    ) -> StoreResult<Vec<AlertJob>> {
        let lease_until = now + lease;
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "SELECT id, project_id, channel, event, group_key, role, incidents, attempts, \
             next_attempt_at, created_at FROM alerts WHERE state = 'pending' AND next_attempt_at <= ? \
             AND (lease_until IS NULL OR lease_until <= ?) \
             ORDER BY next_attempt_at, created_at, id LIMIT ?",
        )
        .bind(ms(now))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut grouped: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            if grouped.contains(&id) {
                continue;
            }
            let group_key: String = row.try_get("group_key")?;
            let created_at: i64 = row.try_get("created_at")?;
            let mut role: String = row.try_get("role")?;
            let mut incidents: String = row.try_get("incidents")?;
            let mut flush: i64 = row.try_get("next_attempt_at")?;
            if role == "new" {
                let opened: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(created_at) FROM alerts WHERE group_key = ? AND role = 'single' \
                     AND created_at <= ? AND id <> ?",
                )
                .bind(&group_key)
                .bind(created_at)
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
                match super::alert_grouping(window_seconds, opened.map(ts), ts(created_at)) {
                    GroupDecision::SendNow => role = "single".into(),
                    GroupDecision::HoldUntil { flush_at } => {
                        sqlx::query(
                            "UPDATE alerts SET role = 'held', next_attempt_at = ?, updated_at = ? \
                             WHERE id = ?",
                        )
                        .bind(ms(flush_at))
                        .bind(ms(now))
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                        if flush_at > now {
                            continue;
                        }
                        flush = ms(flush_at);
                        role = "held".into();
                    }
                }
            }
            if role == "held" {
                let members = sqlx::query(
                    "SELECT id, incidents FROM alerts WHERE group_key = ? AND state = 'pending' \
                     AND id <> ? AND (lease_until IS NULL OR lease_until <= ?) \
                     AND ((role = 'held' AND next_attempt_at <= ?) \
                     OR (role = 'new' AND created_at < ?)) ORDER BY created_at, id",
                )
                .bind(&group_key)
                .bind(&id)
                .bind(ms(now))
                .bind(ms(now))
                .bind(flush)
                .fetch_all(&mut *tx)
                .await?;
                let mut parts = vec![incidents];
                for member in &members {
                    let member_id: String = member.try_get("id")?;
                    parts.push(member.try_get("incidents")?);
                    sqlx::query(
                        "UPDATE alerts SET state = 'grouped', digest_id = ?, updated_at = ? \
                         WHERE id = ?",
                    )
                    .bind(&id)
                    .bind(ms(now))
                    .bind(&member_id)
                    .execute(&mut *tx)
                    .await?;
                    grouped.insert(member_id);
                }
                incidents = super::merge_alert_incidents(&parts)?;
                role = "digest".into();
            }
            sqlx::query(
                "UPDATE alerts SET role = ?, incidents = ?, lease_until = ?, updated_at = ? \
                 WHERE id = ?",
            )
            .bind(&role)
            .bind(&incidents)
            .bind(ms(lease_until))
            .bind(ms(now))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            let channel: String = row.try_get("channel")?;
            let event: String = row.try_get("event")?;
            jobs.push(AlertJob::decode(
                id,
                row.try_get("project_id")?,
                &channel,
                &event,
                &incidents,
                to_u32(row.try_get("attempts")?, "attempts")?,
                ts(created_at),
                lease_until,
            )?);
        }
        tx.commit().await?;
        Ok(jobs)
    }

    async fn finish_alert_attempt(
        &self,
        job: &AlertJob,
        entry: &TimelineEntry,
        next: NextStep,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (state, next_attempt_at) = match next {
            NextStep::Done => ("delivered", None),
            NextStep::GiveUp(_) => ("gave_up", None),
            NextStep::RetryAt(at) => ("pending", Some(ms(at))),
        };
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE alerts SET state = ?, attempts = ?, \
             next_attempt_at = COALESCE(?, next_attempt_at), lease_until = NULL, updated_at = ? \
             WHERE id = ? AND state = 'pending' AND lease_until = ?",
        )
        .bind(state)
        .bind(i64::from(job.attempt))
        .bind(next_attempt_at)
        .bind(ms(now))
        .bind(&job.id)
        .bind(ms(job.lease_until))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        for facts in &job.incidents {
            match append_entry(&mut tx, &job.project_id, &facts.incident_id, entry).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn pending_alerts(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM alerts WHERE state = 'pending'")
            .fetch_one(&self.reader)
            .await?
            .try_get("n")?;
        Ok(to_u64(count))
    }

    async fn create_proof_link(&self, link: ProofLink) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let incident_here = sqlx::query("SELECT 1 FROM incidents WHERE id = ? AND project_id = ?")
            .bind(&link.incident_id)
            .bind(&link.project_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !incident_here {
            return Err(StoreError::NotFound("incident"));
        }
        sqlx::query(
            "INSERT INTO proof_links (id, project_id, incident_id, token_hash, created_by, \
             created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&link.id)
        .bind(&link.project_id)
        .bind(&link.incident_id)
        .bind(&link.token_hash)
        .bind(&link.created_by)
        .bind(ms(link.created_at))
        .bind(ms(link.expires_at))
        .bind(link.revoked_at.map(ms))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            insert_error(
                e,
                "a proof link with this id or token already exists",
                "incident",
            )
        })?;
        tx.commit().await?;
        Ok(())
    }

    async fn proof_link_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<ProofLink>> {
        sqlx::query(&format!(
            "SELECT {PROOF_LINK_COLUMNS} FROM proof_links WHERE token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(proof_link_from_row)
        .transpose()
    }

    async fn proof_link(&self, project_id: &str, link_id: &str) -> StoreResult<Option<ProofLink>> {
        sqlx::query(&format!(
            "SELECT {PROOF_LINK_COLUMNS} FROM proof_links WHERE project_id = ? AND id = ?"
        ))
        .bind(project_id)
        .bind(link_id)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(proof_link_from_row)
        .transpose()
    }

    async fn proof_links_for_incident(
        &self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Vec<ProofLink>> {
        sqlx::query(&format!(
            "SELECT {PROOF_LINK_COLUMNS} FROM proof_links WHERE project_id = ? AND incident_id = ? \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(project_id)
        .bind(incident_id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(proof_link_from_row)
        .collect()
    }

    async fn revoke_proof_link(
        &self,
        project_id: &str,
        link_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let revoked = sqlx::query(
            "UPDATE proof_links SET revoked_at = ? \
             WHERE project_id = ? AND id = ? AND revoked_at IS NULL",
        )
        .bind(ms(now))
        .bind(project_id)
        .bind(link_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(revoked == 1)
    }

    async fn idempotency_begin(
        &self,
        project_id: &str,
        key: &str,
        request_hash: &[u8],
        now: Timestamp,
        lock_for: Duration,
    ) -> StoreResult<IdempotencyBegin> {
        let locked_until = ms(now).saturating_add(duration_millis(lock_for));
        let mut tx = self.write().await?;
        let existing = sqlx::query(
            "SELECT request_hash, status, response, locked_until, created_at \
             FROM idempotency_keys WHERE project_id = ? AND key = ?",
        )
        .bind(project_id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let created_at: i64 = row.try_get("created_at")?;
            let expired = created_at <= ms(now).saturating_sub(IDEMPOTENCY_TTL_MILLIS);
            if !expired {
                let stored_hash: Vec<u8> = row.try_get("request_hash")?;
                if stored_hash != request_hash {
                    return Ok(IdempotencyBegin::Mismatch);
                }
                if let Some(status) = row.try_get::<Option<i64>, _>("status")? {
                    let status = u16::try_from(status).map_err(|_| {
                        StoreError::Corrupt(format!("idempotency status out of range: {status}"))
                    })?;
                    let body: Option<Vec<u8>> = row.try_get("response")?;
                    return Ok(IdempotencyBegin::Replay {
                        status,
                        body: codec::open_response(
                            self.keyring()?,
                            project_id,
                            key,
                            body.unwrap_or_default(),
                        )?,
                    });
                }
                let lock: Option<i64> = row.try_get("locked_until")?;
                if lock.is_some_and(|until| until > ms(now)) {
                    return Ok(IdempotencyBegin::InFlight);
                }
                // The first request stopped without completing (a crash):
                // this one takes the key over.
            }
        }
        sqlx::query(
            "INSERT INTO idempotency_keys (project_id, key, request_hash, status, response, \
             locked_until, created_at) VALUES (?, ?, ?, NULL, NULL, ?, ?) \
             ON CONFLICT (project_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             status = NULL, response = NULL, locked_until = excluded.locked_until, \
             created_at = excluded.created_at",
        )
        .bind(project_id)
        .bind(key)
        .bind(request_hash)
        .bind(locked_until)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| insert_error(e, "idempotency key conflict", "project"))?;
        tx.commit().await?;
        Ok(IdempotencyBegin::Proceed)
    }

    async fn idempotency_complete(
        &self,
        project_id: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> StoreResult<()> {
        let sealed = codec::seal_response(self.keyring()?, project_id, key, body);
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE idempotency_keys SET status = ?, response = ?, locked_until = NULL \
             WHERE project_id = ? AND key = ?",
        )
        .bind(i64::from(status))
        .bind(&sealed)
        .bind(project_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn idempotency_abandon(&self, project_id: &str, key: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE project_id = ? AND key = ? AND status IS NULL",
        )
        .bind(project_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn purge_resolved_history(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        // Finished alerts (sent, given up, or carried by a digest) hold copies
        // of their incidents' facts: they go after the same retention.
        sqlx::query(
            "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts \
             WHERE state <> 'pending' AND updated_at < ? LIMIT ?)",
        )
        .bind(ms(before))
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        let pks: Vec<i64> = sqlx::query_scalar(
            "SELECT e.pk FROM events e LEFT JOIN incidents i ON i.event_pk = e.pk \
             WHERE e.updated_at < ? AND e.due_at IS NULL AND e.state <> 'awaiting_result' \
             AND (i.id IS NULL AND e.state = 'succeeded' OR i.state = 'resolved') \
             AND NOT EXISTS (SELECT 1 FROM deliveries d \
                             WHERE d.event_pk = e.pk AND d.state = 'pending') \
             ORDER BY e.updated_at LIMIT ?",
        )
        .bind(ms(before))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if pks.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let list = pks.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        // Children first (foreign keys); the pks are integers from the query.
        for statement in [
            "DELETE FROM reprocess_batch_items WHERE incident_id IN \
             (SELECT id FROM incidents WHERE event_pk IN (%s))",
            "DELETE FROM proof_links WHERE incident_id IN \
             (SELECT id FROM incidents WHERE event_pk IN (%s))",
            "DELETE FROM deliveries WHERE event_pk IN (%s)",
            "DELETE FROM timeline WHERE event_pk IN (%s)",
            "DELETE FROM incidents WHERE event_pk IN (%s)",
            "DELETE FROM events WHERE pk IN (%s)",
        ] {
            sqlx::query(&statement.replace("%s", &list))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(pks.len() as u64)
    }

    async fn stored_idempotency_response(
        &self,
        project_id: &str,
        key: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar::<_, Option<Vec<u8>>>(
            "SELECT response FROM idempotency_keys WHERE project_id = ? AND key = ?",
        )
        .bind(project_id)
        .bind(key)
        .fetch_optional(&self.reader)
        .await?
        .flatten())
    }

    async fn purge_idempotency_keys(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(ms(before))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn create_reprocess_batch(
        &self,
        batch: &ReprocessBatch,
        items: &[NewBatchItem],
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO reprocess_batches (id, project_id, state, rate_per_second, concurrency, \
             started_by, note, selection, next_send_at, created_at, finished_at) \
             VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, NULL)",
        )
        .bind(&batch.id)
        .bind(&batch.project_id)
        .bind(batch.rate_per_second)
        .bind(i64::from(batch.concurrency))
        .bind(&batch.started_by)
        .bind(&batch.note)
        .bind(encode_json(&batch.selection, "batch selection")?)
        .bind(ms(batch.created_at))
        .bind(ms(batch.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| insert_error(e, "this batch id is already used", "project"))?;
        for (position, item) in items.iter().enumerate() {
            sqlx::query(
                "INSERT INTO reprocess_batch_items (batch_id, position, incident_id, event_type, \
                 subject, state, reason, reprocess_id, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            )
            .bind(&batch.id)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(&item.incident_id)
            .bind(&item.event_type)
            .bind(&item.subject)
            .bind(if item.skipped.is_some() { "skipped" } else { "pending" })
            .bind(&item.skipped)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reprocess_batch(
        &self,
        project_id: &str,
        batch_id: &str,
    ) -> StoreResult<Option<ReprocessBatch>> {
        let mut conn = self.reader.acquire().await?;
        load_batch(&mut conn, project_id, batch_id).await
    }

    async fn reprocess_batch_items(
        &self,
        project_id: &str,
        batch_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<ReprocessBatchItem>> {
        let rows = sqlx::query(
            "SELECT i.incident_id, i.event_type, i.subject, i.state, i.reason, i.reprocess_id, \
             d.state AS delivery_state, inc.state AS incident_state \
             FROM reprocess_batch_items i JOIN reprocess_batches b ON b.id = i.batch_id \
             LEFT JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
             LEFT JOIN incidents inc ON inc.id = i.incident_id AND inc.project_id = b.project_id \
             WHERE b.project_id = ? AND i.batch_id = ? ORDER BY i.position LIMIT ?",
        )
        .bind(project_id)
        .bind(batch_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                let delivery: Option<String> = row.try_get("delivery_state")?;
                let incident: Option<String> = row.try_get("incident_state")?;
                Ok(ReprocessBatchItem {
                    incident_id: row.try_get("incident_id")?,
                    event_type: row.try_get("event_type")?,
                    subject: row.try_get("subject")?,
                    state: super::batch_item_state(
                        &state,
                        delivery.as_deref(),
                        incident.as_deref(),
                    )
                    .to_owned(),
                    reason: row.try_get("reason")?,
                    reprocess_id: row.try_get("reprocess_id")?,
                })
            })
            .collect()
    }

    async fn cancel_reprocess_batch(
        &self,
        project_id: &str,
        batch_id: &str,
        now: Timestamp,
    ) -> StoreResult<Option<ReprocessBatch>> {
        let mut tx = self.write().await?;
        let cancelled = sqlx::query(
            "UPDATE reprocess_batches SET state = 'cancelled', finished_at = ? \
             WHERE id = ? AND project_id = ? AND state = 'running'",
        )
        .bind(ms(now))
        .bind(batch_id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if cancelled > 0 {
            sqlx::query(
                "UPDATE reprocess_batch_items SET state = 'cancelled', reason = 'batch_cancelled' \
                 WHERE batch_id = ? AND state = 'pending'",
            )
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        }
        let batch = load_batch(&mut tx, project_id, batch_id).await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn pace_reprocess_batches(
        &self,
        now: Timestamp,
        limit_batches: u32,
    ) -> StoreResult<PaceReport> {
        let mut tx = self.write().await?;
        let batches = sqlx::query(
            "SELECT id, project_id, rate_per_second, concurrency, started_by, note, next_send_at \
             FROM reprocess_batches WHERE state = 'running' AND next_send_at <= ? \
             ORDER BY next_send_at LIMIT ?",
        )
        .bind(ms(now))
        .bind(i64::from(limit_batches))
        .fetch_all(&mut *tx)
        .await?;
        let mut report = PaceReport::default();
        for row in &batches {
            let batch_id: String = row.try_get("id")?;
            let project_id: String = row.try_get("project_id")?;
            let rate: f64 = row.try_get("rate_per_second")?;
            let concurrency = to_u64(row.try_get("concurrency")?);
            let started_by: String = row.try_get("started_by")?;
            let note: Option<String> = row.try_get("note")?;
            let next_send_at = ts(row.try_get("next_send_at")?);
            // A callback waiting for its next retry (attempted, not due) holds
            // no slot; after the endpoint's latest success, those whose last
            // attempt came before it are sent again within the pacing.
            let progress = sqlx::query(
                "SELECT COALESCE(SUM(CASE WHEN i.state = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
                 COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'pending' THEN 1 ELSE 0 END), 0) AS in_flight, \
                 COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'pending' AND d.attempts > 0 \
                 AND d.next_attempt_at > ? THEN 1 ELSE 0 END), 0) AS waiting, \
                 MAX(CASE WHEN i.state = 'sent' AND d.state = 'delivered' THEN d.updated_at END) AS last_success \
                 FROM reprocess_batch_items i LEFT JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
                 WHERE i.batch_id = ?",
            )
            .bind(ms(now))
            .bind(&batch_id)
            .fetch_one(&mut *tx)
            .await?;
            let pending = to_u64(progress.try_get("pending")?);
            let in_flight = to_u64(progress.try_get("in_flight")?);
            let waiting = to_u64(progress.try_get("waiting")?);
            let last_success: Option<i64> = progress.try_get("last_success")?;
            let retryable = match last_success {
                Some(success) if waiting > 0 => to_u64(
                    sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM reprocess_batch_items i \
                         JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
                         WHERE i.batch_id = ? AND i.state = 'sent' AND d.state = 'pending' \
                         AND d.attempts > 0 AND d.next_attempt_at > ? AND d.updated_at < ?",
                    )
                    .bind(&batch_id)
                    .bind(ms(now))
                    .bind(success)
                    .fetch_one(&mut *tx)
                    .await?,
                ),
                _ => 0,
            };
            if pending == 0 && retryable == 0 {
                if in_flight == 0 {
                    sqlx::query(
                        "UPDATE reprocess_batches SET state = 'completed', finished_at = ? \
                         WHERE id = ? AND state = 'running'",
                    )
                    .bind(ms(now))
                    .bind(&batch_id)
                    .execute(&mut *tx)
                    .await?;
                    report.completed += 1;
                }
                continue;
            }
            let free = concurrency.saturating_sub(in_flight.saturating_sub(waiting));
            let (n, next) =
                super::pacing_allowance(now, next_send_at, rate, free, pending + retryable);
            if n == 0 {
                continue;
            }
            let retry_now = n.min(retryable);
            if let Some(success) = last_success.filter(|_| retry_now > 0) {
                let retried = sqlx::query(
                    "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? \
                     WHERE state = 'pending' AND next_attempt_at > ? AND reprocess_id IN \
                     (SELECT d.reprocess_id FROM reprocess_batch_items i \
                     JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
                     WHERE i.batch_id = ? AND i.state = 'sent' AND d.state = 'pending' \
                     AND d.attempts > 0 AND d.next_attempt_at > ? AND d.updated_at < ? \
                     ORDER BY d.next_attempt_at LIMIT ?)",
                )
                .bind(ms(now))
                .bind(ms(now))
                .bind(ms(now))
                .bind(&batch_id)
                .bind(ms(now))
                .bind(success)
                .bind(i64::try_from(retry_now).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
                report.retried += usize::try_from(retried.rows_affected()).unwrap_or(0);
            }
            let n = n - retry_now;
            if n == 0 {
                sqlx::query("UPDATE reprocess_batches SET next_send_at = ? WHERE id = ?")
                    .bind(ms(next))
                    .bind(&batch_id)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            let project = sqlx::query(&format!(
                "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?"
            ))
            .bind(&project_id)
            .fetch_one(&mut *tx)
            .await?;
            let project = project_from_row(&project)?;
            let items = sqlx::query(
                "SELECT position, incident_id FROM reprocess_batch_items \
                 WHERE batch_id = ? AND state = 'pending' ORDER BY position LIMIT ?",
            )
            .bind(&batch_id)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
            for item in &items {
                let position: i64 = item.try_get("position")?;
                let incident_id: String = item.try_get("incident_id")?;
                let outcome = if project.repair_url.is_none() {
                    Err("no_repair_url")
                } else {
                    match load_by_incident(&mut tx, &project_id, &incident_id).await? {
                        None => Err("incident_not_found"),
                        Some(loaded) => {
                            let (command, ctx) = super::batch_reprocess_command(
                                &batch_id,
                                &started_by,
                                note.as_deref(),
                                &project,
                                &loaded.record,
                                now,
                            );
                            let reprocess_id = match &command {
                                Command::RequestReprocess { reprocess_id, .. } => {
                                    reprocess_id.clone()
                                }
                                _ => String::new(),
                            };
                            match machine::apply(Some(loaded.record.clone()), command, &ctx) {
                                Err(err) => Err(super::skip_reason(&err)),
                                Ok(transition) => {
                                    persist(
                                        &mut tx,
                                        &project_id,
                                        Some((loaded.pk, &loaded.record)),
                                        &transition,
                                        now,
                                    )
                                    .await?;
                                    report.transitions.push((project_id.clone(), transition));
                                    Ok(reprocess_id)
                                }
                            }
                        }
                    }
                };
                let (state, reason, reprocess_id) = match outcome {
                    Ok(id) => ("sent", None, Some(id)),
                    Err(reason) => {
                        report.skipped += 1;
                        ("skipped", Some(reason), None)
                    }
                };
                sqlx::query(
                    "UPDATE reprocess_batch_items SET state = ?, reason = ?, reprocess_id = ?, \
                     sent_at = ? WHERE batch_id = ? AND position = ? AND state = 'pending'",
                )
                .bind(state)
                .bind(reason)
                .bind(reprocess_id)
                .bind(ms(now))
                .bind(&batch_id)
                .bind(position)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE reprocess_batches SET next_send_at = ? WHERE id = ?")
                .bind(ms(next))
                .bind(&batch_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn slow_reprocess_batch(&self, reprocess_id: &str, until: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE reprocess_batches SET next_send_at = ? \
             WHERE state = 'running' AND next_send_at < ? AND id IN \
             (SELECT batch_id FROM reprocess_batch_items WHERE reprocess_id = ?)",
        )
        .bind(ms(until))
        .bind(ms(until))
        .bind(reprocess_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A batch with its counts, derived from its items, their outbox rows and
/// their incidents.
async fn load_batch(
    conn: &mut SqliteConnection,
    project_id: &str,
    batch_id: &str,
) -> StoreResult<Option<ReprocessBatch>> {
    let Some(row) = sqlx::query(
        "SELECT id, project_id, state, rate_per_second, concurrency, started_by, note, selection, \
         created_at, finished_at FROM reprocess_batches WHERE id = ? AND project_id = ?",
    )
    .bind(batch_id)
    .bind(project_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let counts = sqlx::query(
        "SELECT COUNT(*) AS total, \
         COALESCE(SUM(CASE WHEN i.state = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
         COALESCE(SUM(CASE WHEN i.state = 'skipped' THEN 1 ELSE 0 END), 0) AS skipped, \
         COALESCE(SUM(CASE WHEN i.state = 'cancelled' THEN 1 ELSE 0 END), 0) AS cancelled, \
         COALESCE(SUM(CASE WHEN i.state = 'sent' THEN 1 ELSE 0 END), 0) AS sent, \
         COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'pending' \
         AND NOT (d.attempts > 0 AND d.lease_until IS NULL AND d.next_attempt_at > d.updated_at) THEN 1 ELSE 0 END), 0) AS in_flight, \
         COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'delivered' THEN 1 ELSE 0 END), 0) AS delivered, \
         COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'gave_up' THEN 1 ELSE 0 END), 0) AS failed, \
         COALESCE(SUM(CASE WHEN i.state = 'sent' AND inc.state = 'resolved' THEN 1 ELSE 0 END), 0) AS resolved \
         FROM reprocess_batch_items i \
         LEFT JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
         LEFT JOIN incidents inc ON inc.id = i.incident_id AND inc.project_id = ? \
         WHERE i.batch_id = ?",
    )
    .bind(project_id)
    .bind(batch_id)
    .fetch_one(&mut *conn)
    .await?;
    let selection: String = row.try_get("selection")?;
    Ok(Some(ReprocessBatch {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        state: row.try_get("state")?,
        rate_per_second: row.try_get("rate_per_second")?,
        concurrency: to_u32(row.try_get("concurrency")?, "concurrency")?,
        started_by: row.try_get("started_by")?,
        note: row.try_get("note")?,
        selection: serde_json::from_str(&selection)
            .map_err(|e| StoreError::Corrupt(format!("batch selection: {e}")))?,
        created_at: ts(row.try_get("created_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(ts),
        counts: ReprocessBatchCounts {
            total: to_u64(counts.try_get("total")?),
            pending: to_u64(counts.try_get("pending")?),
            skipped: to_u64(counts.try_get("skipped")?),
            cancelled: to_u64(counts.try_get("cancelled")?),
            sent: to_u64(counts.try_get("sent")?),
            in_flight: to_u64(counts.try_get("in_flight")?),
            delivered: to_u64(counts.try_get("delivered")?),
            failed: to_u64(counts.try_get("failed")?),
            resolved: to_u64(counts.try_get("resolved")?),
        },
    }))
}
