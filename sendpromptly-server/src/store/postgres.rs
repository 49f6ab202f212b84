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
//!   one transaction (see `group`): the group's event rows are locked in
//!   row order, its new events are created under their advisory locks
//!   taken in key order, its API keys are share-locked. A group that fails
//!   (a conflict, a deadlock with another instance's group) is rolled back
//!   and its commands run again one transaction each.
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
//!   on a transaction-scoped advisory lock on the event's key, so the second
//!   sees the first's row and records a duplicate. Idempotency keys are
//!   inserted with `ON CONFLICT DO NOTHING` and read `FOR UPDATE`, so one
//!   request per key proceeds, whichever instance takes it.
//! - **Lock order.** Writers lock an event row before its outbox row; the
//!   dispatcher's claim locks only outbox rows and waits on nothing, so
//!   transactions cannot deadlock.
//! - **Migrations** run under an advisory lock, so instances starting
//!   together apply them once.
//!
//! Times are `BIGINT` unix milliseconds, as in SQLite, so leases compare
//! exactly. Connections come from one pool sized by [`PoolSettings`].

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
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use super::GroupCommitStats;
use super::codec::{self, *};
use super::group::{
    self, EventWrite, GroupCounters, GroupEngine, GroupIo, GroupJob, GroupLoad, GroupTarget,
    GroupWanted, GroupWriter, JobResult, KeyRows, KeyVerdict, LoadedEvent, StoredKey, group_failed,
};
use super::migrations::{self, AppliedMigration, MIGRATIONS_TABLE};
use sendpromptly_core::alert::GroupDecision;

use super::{
    AlertJob, ApiKey, Applied, DailyActivity, DeliveryJob, EventFilter, IdempotencyBegin,
    IncidentCounts, IncidentFilter, NewBatchItem, NewProject, PaceReport, Page, PageRequest,
    Project, ProjectPatch, ProofLink, ReprocessBatch, ResealReport, Session, SigningSecretRecord,
    Store, StoreError, StoreResult, StoredEvent, SweepReport, User,
};
use super::{IdempotentOutcome, IdempotentRequest};

/// How long an idempotency key is remembered.
const IDEMPOTENCY_TTL_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// The advisory lock key that serialises migrations ("SPMIGRAT").
const MIGRATION_LOCK: i64 = 0x5350_4d49_4752_4154;
/// Group-commit writer tasks: groups whose transactions overlap, so that
/// their commits share PostgreSQL's WAL flushes (each holds a connection
/// while its group runs).
const GROUP_WRITERS: usize = 1;
/// How long a one-by-one idempotent write claims its key (a crash in
/// between leaves it to be taken over after this).
const IDEMPOTENCY_CLAIM_MILLIS: i64 = 60_000;
/// How often `idempotency_begin` reads a key again after losing the race
/// to insert it.
const RACE_RETRIES: usize = 5;

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

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// The group-commit writer for `apply` and `apply_to_incident`.
    group: GroupWriter,
    /// Seals and opens signing secrets and idempotent responses.
    keyring: Option<std::sync::Arc<crate::secrets::Keyring>>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`)
    /// with the default [`PoolSettings`]. Fails at once when the server
    /// cannot be reached or refuses the credentials.
    ///
    /// Does not migrate: call [`Store::migrate`].
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
        let group = GroupWriter::start(PgGroups { pool: pool.clone() }, GROUP_WRITERS);
        Ok(PostgresStore {
            pool,
            group,
            keyring: None,
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

    /// The pool (for tests and tools that inspect the database).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The plan of the sweeper's due-record query with sequential scans
    /// disabled (a tiny test table would be scanned anyway): shows that the
    /// partial `events_due` index can serve it.
    pub async fn explain_sweep_query(&self) -> StoreResult<Vec<String>> {
        self.explain(SWEEP_SELECT, 2).await
    }

    /// The plan of the dispatcher's claim query (see
    /// [`PostgresStore::explain_sweep_query`]).
    pub async fn explain_claim_query(&self) -> StoreResult<Vec<String>> {
        self.explain(CLAIM_SELECT, 3).await
    }

    async fn explain(&self, query: &str, params: usize) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await?;
        let sql = format!("EXPLAIN {query}");
        let mut explain = sqlx::query(&sql);
        for _ in 0..params {
            explain = explain.bind(1_i64);
        }
        let lines = explain
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok(row.try_get::<String, _>(0)?))
            .collect::<StoreResult<Vec<_>>>()?;
        tx.rollback().await?;
        Ok(lines)
    }

    /// Starts a write transaction (READ COMMITTED; rows are locked explicitly).
    async fn write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

// ---------------------------------------------------------------------------
// Conversions

/// The advisory-lock key of an event: the first 8 bytes of a SHA-256 of
/// its identity (a collision only makes two creations wait for each other).
fn event_lock_key(project_id: &str, key: &EventKey) -> i64 {
    lock_key(&[project_id, key.provider.as_str(), &key.event_id])
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

// ---------------------------------------------------------------------------
// Row decoding

const PROJECT_COLUMNS: &str = "id, name, repair_url, default_deadline_seconds, \
     deadlines_by_event_type, alert_channels, proof_show_metadata, created_at";

fn project_from_row(row: &PgRow) -> StoreResult<Project> {
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

fn api_key_from_row(row: &PgRow) -> StoreResult<ApiKey> {
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

fn user_from_row(row: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: ts(row.try_get("created_at")?),
    })
}

const PROOF_LINK_COLUMNS: &str =
    "id, project_id, incident_id, token_hash, created_by, created_at, expires_at, revoked_at";

fn proof_link_from_row(row: &PgRow) -> StoreResult<ProofLink> {
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

fn timeline_from_row(row: &PgRow) -> StoreResult<TimelineEntry> {
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

fn loaded_from_row(row: &PgRow) -> StoreResult<LoadedEvent> {
    let json: String = row.try_get("record")?;
    Ok(LoadedEvent {
        pk: row.try_get("pk")?,
        project_id: row.try_get("project_id")?,
        record: decode_record(&json)?,
    })
}

/// Whether a load takes the row lock (writers) or not (plain reads).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    ForUpdate,
    None,
}

impl Lock {
    fn clause(self, of: &str) -> String {
        match self {
            Lock::ForUpdate => format!(" FOR NO KEY UPDATE OF {of}"),
            Lock::None => String::new(),
        }
    }
}

async fn load_by_key(
    conn: &mut PgConnection,
    project_id: &str,
    key: &EventKey,
    lock: Lock,
) -> StoreResult<Option<LoadedEvent>> {
    let row = sqlx::query(&format!(
        "SELECT e.pk, e.project_id, e.record FROM events e \
         WHERE e.project_id = $1 AND e.provider = $2 AND e.event_id = $3{}",
        lock.clause("e")
    ))
    .bind(project_id)
    .bind(key.provider.as_str())
    .bind(&key.event_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(loaded_from_row).transpose()
}

async fn load_by_incident(
    conn: &mut PgConnection,
    project_id: &str,
    incident_id: &str,
    lock: Lock,
) -> StoreResult<Option<LoadedEvent>> {
    let row = sqlx::query(&format!(
        "SELECT e.pk, e.project_id, e.record FROM incidents i JOIN events e ON e.pk = i.event_pk \
         WHERE i.id = $1 AND i.project_id = $2{}",
        lock.clause("e")
    ))
    .bind(incident_id)
    .bind(project_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(loaded_from_row).transpose()
}

/// Loads and locks, in one query, the stored events among `keys`
/// (`(project id, provider, event id)`), in row order (so two groups
/// locking the same rows take them in the same order).
async fn load_many_for_update(
    conn: &mut PgConnection,
    keys: &[(&str, &str, &str)],
) -> StoreResult<Vec<LoadedEvent>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT e.pk, e.project_id, e.record FROM events e \
         WHERE (e.project_id, e.provider, e.event_id) IN \
         (SELECT k ->> 0, k ->> 1, k ->> 2 FROM json_array_elements($1::json) AS k) \
         ORDER BY e.pk FOR NO KEY UPDATE OF e",
    )
    .bind(encode_json(&keys, "event keys")?)
    .fetch_all(conn)
    .await?;
    rows.iter().map(loaded_from_row).collect()
}

/// The columns of a stored idempotency key.
const STORED_KEY_COLUMNS: &str =
    "project_id, key, request_hash, status, response, locked_until, created_at";

fn stored_key_from_row(row: &PgRow) -> StoreResult<StoredKey> {
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

/// The stored idempotency keys among `keys` (`(project id, key)`), locked
/// for the transaction in key order.
async fn stored_keys_for_update(
    conn: &mut PgConnection,
    keys: &[(&str, &str)],
) -> StoreResult<Vec<StoredKey>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT {STORED_KEY_COLUMNS} FROM idempotency_keys \
         WHERE (project_id, key) IN \
         (SELECT j ->> 0, j ->> 1 FROM json_array_elements($1::json) AS j) \
         ORDER BY project_id, key FOR UPDATE"
    ))
    .bind(encode_json(&keys, "idempotency keys")?)
    .fetch_all(conn)
    .await?;
    rows.iter().map(stored_key_from_row).collect()
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
         decode(r ->> 4, 'hex'), NULL, (r ->> 5)::bigint FROM json_array_elements($1::json) AS r \
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

/// Which of `keys` (`(project id, key id)`) are that project's unrevoked
/// API keys, share-locked for the transaction so that a revocation (an
/// `UPDATE`) waits for it to commit.
async fn valid_api_keys(
    conn: &mut PgConnection,
    keys: &[(&str, &str)],
) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT k.project_id, k.id FROM api_keys k WHERE k.revoked_at IS NULL \
         AND (k.project_id, k.id) IN \
         (SELECT j ->> 0, j ->> 1 FROM json_array_elements($1::json) AS j) \
         ORDER BY k.id FOR SHARE OF k",
    )
    .bind(encode_json(&keys, "API keys")?)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("project_id")?, row.try_get("id")?)))
        .collect()
}

/// Writes what one [`Transition`] changed (see [`persist_many`]); returns
/// the event's row id.
///
/// The caller holds the event row's lock (or, for a new event, the event
/// key's advisory lock) for the whole transaction.
async fn persist(
    conn: &mut PgConnection,
    project_id: &str,
    before: Option<(i64, &EventRecord)>,
    transition: &Transition,
    now: Timestamp,
) -> StoreResult<i64> {
    let write = EventWrite::one(project_id, before, transition, now);
    persist_many(conn, std::slice::from_ref(&write))
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("no row id for a written event".to_owned()))
}

/// Writes what the transitions of `writes` changed, in the caller's
/// transaction: the new event rows (one statement for all of them), the
/// updated ones (one statement), their timeline entries in order (one
/// statement), then per event the incident copy and the outbox rows its
/// effects ask for. Returns each event's row id, in the order of `writes`.
async fn persist_many(conn: &mut PgConnection, writes: &[EventWrite<'_>]) -> StoreResult<Vec<i64>> {
    let rows = group::write_rows(writes)?;
    let mut pks: Vec<Option<i64>> = writes.iter().map(|w| w.before.map(|(pk, _)| pk)).collect();
    if let Some(inserts) = &rows.inserts {
        let inserted = sqlx::query(
            "INSERT INTO events (project_id, provider, event_id, event_type, subject, state, \
             record, due_at, received_at, created_at, updated_at) \
             SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, r ->> 4, r ->> 5, r ->> 6, \
             (r ->> 7)::bigint, (r ->> 8)::bigint, (r ->> 9)::bigint, (r ->> 10)::bigint \
             FROM json_array_elements($1::json) WITH ORDINALITY AS t(r, n) ORDER BY n \
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
             updated_at = (r ->> 7)::bigint \
             FROM json_array_elements($1::json) AS r WHERE events.pk = (r ->> 0)::bigint",
        )
        .bind(updates)
        .execute(&mut *conn)
        .await?;
    }
    let pks = group::all_row_ids(pks)?;
    if let Some(entries) = group::timeline_rows(writes, |i| pks[i])? {
        sqlx::query(
            "INSERT INTO timeline (event_pk, at, kind, actor, detail) \
             SELECT (r ->> 0)::bigint, (r ->> 1)::bigint, r ->> 2, r ->> 3, r ->> 4 \
             FROM json_array_elements($1::json) WITH ORDINALITY AS t(r, n) ORDER BY n",
        )
        .bind(entries)
        .execute(&mut *conn)
        .await?;
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
    Ok(pks)
}

/// Writes the `incidents` copy of `record.incident`.
async fn upsert_incident(
    conn: &mut PgConnection,
    project_id: &str,
    pk: i64,
    record: &EventRecord,
    incident: &Incident,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO incidents (id, project_id, event_pk, kind, state, provider, event_id, \
         event_type, subject, opened_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
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
    conn: &mut PgConnection,
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
                     VALUES ($1, $2, $3, $4, 'pending', 0, $5, NULL, $6, $7)",
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
                    "UPDATE deliveries SET state = 'cancelled', lease_until = NULL, updated_at = $1 \
                     WHERE reprocess_id = $2 AND event_pk = $3 AND state = 'pending'",
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
    conn: &mut PgConnection,
    project_id: &str,
    transition: &Transition,
    now: Timestamp,
) -> StoreResult<()> {
    if super::alert_events(&transition.effects).is_empty() {
        return Ok(());
    }
    let Some(channels) =
        sqlx::query_scalar::<_, String>("SELECT alert_channels FROM projects WHERE id = $1")
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, NULL, $10, $11)",
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

/// Appends `entry` to an incident's timeline (locking its event), keeping
/// the record's `updated_at` the time of its latest entry, in the caller's
/// transaction.
async fn append_entry(
    conn: &mut PgConnection,
    project_id: &str,
    incident_id: &str,
    entry: &TimelineEntry,
) -> StoreResult<()> {
    let mut loaded = load_by_incident(conn, project_id, incident_id, Lock::ForUpdate)
        .await?
        .ok_or(StoreError::NotFound("incident"))?;
    insert_timeline_entry(conn, loaded.pk, entry).await?;
    if entry.at > loaded.record.updated_at {
        loaded.record.updated_at = entry.at;
        sqlx::query("UPDATE events SET record = $1, updated_at = $2 WHERE pk = $3")
            .bind(encode_record(&loaded.record)?)
            .bind(ms(entry.at))
            .bind(loaded.pk)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn insert_timeline_entry(
    conn: &mut PgConnection,
    event_pk: i64,
    entry: &TimelineEntry,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO timeline (event_pk, at, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event_pk)
    .bind(ms(entry.at))
    .bind(entry.kind.as_str())
    .bind(entry.actor.to_string())
    .bind(encode_json(&entry.detail, "timeline detail")?)
    .execute(conn)
    .await?;
    Ok(())
}

/// The sweeper's query: due records, earliest first, through `events_due`;
/// rows another instance is handling are skipped, not waited for.
const SWEEP_SELECT: &str = "SELECT pk, project_id, record, due_at FROM events \
     WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2 \
     FOR NO KEY UPDATE SKIP LOCKED";

/// The dispatcher's query: pending callbacks due and not leased, skipping
/// rows another instance is claiming or finishing.
const CLAIM_SELECT: &str = "SELECT reprocess_id, project_id, incident_id, event_pk, attempts \
     FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
     AND (lease_until IS NULL OR lease_until <= $2) ORDER BY next_attempt_at LIMIT $3 \
     FOR NO KEY UPDATE SKIP LOCKED";

async fn read_timeline(conn: &mut PgConnection, pk: i64) -> StoreResult<Vec<TimelineEntry>> {
    let rows = sqlx::query(
        "SELECT at, kind, actor, detail FROM timeline WHERE event_pk = $1 ORDER BY seq",
    )
    .bind(pk)
    .fetch_all(conn)
    .await?;
    rows.iter().map(timeline_from_row).collect()
}

/// What one try of `idempotency_begin` found.
enum BeginTry {
    Done(IdempotencyBegin),
    /// Another instance inserted the key between our read and our insert.
    Raced,
}

/// One `apply` or `apply_to_incident` in a transaction of its own: the
/// path when the group writer is gone, and each command of a group that
/// fell back.
async fn apply_one(pool: &PgPool, mut job: GroupJob) -> JobResult {
    let Some(job_key) = job.idempotency.take() else {
        let mut tx = pool.begin().await?;
        let applied = apply_in(&mut tx, job).await?;
        tx.commit().await?;
        return Ok(IdempotentOutcome::Applied(applied));
    };
    let (project_id, now) = (job.project_id.clone(), job.ctx.now);
    let request = &job_key.request;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(idempotency_lock_key(&project_id, &request.key))
        .execute(&mut *tx)
        .await?;
    // Claim the key: a concurrent first use (another instance) makes this
    // wait for it, then find its row.
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (project_id, key, request_hash, status, response, \
         locked_until, created_at) VALUES ($1, $2, $3, NULL, NULL, $4, $5) \
         ON CONFLICT (project_id, key) DO NOTHING",
    )
    .bind(&project_id)
    .bind(&request.key)
    .bind(&request.request_hash)
    .bind(ms(now).saturating_add(IDEMPOTENCY_CLAIM_MILLIS))
    .bind(ms(now))
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
    let result = apply_in(&mut tx, job).await;
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

/// One job's command in `tx` (its API key checked, its event loaded and
/// locked, the transition written).
async fn apply_in(tx: &mut PgConnection, job: GroupJob) -> StoreResult<Applied> {
    let GroupJob {
        project_id,
        api_key,
        target,
        command,
        ctx,
        idempotency: _,
    } = job;
    if let Some(key_id) = &api_key
        && valid_api_keys(tx, &[(&project_id, key_id)])
            .await?
            .is_empty()
    {
        return Err(StoreError::KeyRevoked);
    }
    let loaded = match &target {
        GroupTarget::Event(key) => {
            let mut loaded = load_by_key(tx, &project_id, key, Lock::ForUpdate).await?;
            if loaded.is_none() {
                // A new event: serialise with any other instance creating
                // the same one, then look again (it may have just committed it).
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(event_lock_key(&project_id, key))
                    .execute(&mut *tx)
                    .await?;
                loaded = load_by_key(tx, &project_id, key, Lock::ForUpdate).await?;
            }
            loaded
        }
        GroupTarget::Incident(incident_id) => Some(
            load_by_incident(tx, &project_id, incident_id, Lock::ForUpdate)
                .await?
                .ok_or(StoreError::NotFound("incident"))?,
        ),
    };
    let before = loaded.as_ref().map(|l| l.record.clone());
    let transition = machine::apply(before, command, &ctx)?;
    if let (None, GroupTarget::Event(key)) = (&loaded, &target) {
        group::ensure_created_as_asked(&transition, key)?;
    }
    persist(
        tx,
        &project_id,
        loaded.as_ref().map(|l| (l.pk, &l.record)),
        &transition,
        ctx.now,
    )
    .await?;
    Ok(Applied { transition })
}

/// The PostgreSQL side of group commit: the group at once in one
/// transaction ([`group::run_at_once`], the events' rows locked in row
/// order); if that fails (a uniqueness conflict, another instance creating
/// the same event, a deadlock with another instance's group), a rollback
/// and every command again in a transaction of its own ([`apply_one`]).
struct PgGroups {
    pool: PgPool,
}

#[async_trait]
impl GroupEngine for PgGroups {
    async fn run_group(
        &self,
        jobs: Vec<GroupJob>,
        stats: &GroupCounters,
    ) -> (Vec<JobResult>, bool) {
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                let why = e.to_string();
                return (
                    (0..jobs.len()).map(|_| Err(group_failed(&why))).collect(),
                    false,
                );
            }
        };
        match group::run_at_once(&mut PgGroupIo(&mut tx), &jobs).await {
            Ok(results) => match tx.commit().await {
                Ok(()) => (results, true),
                Err(e) => (group::uncommitted(results, &e.to_string()), false),
            },
            Err(_) => {
                let _ = tx.rollback().await;
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

/// [`GroupIo`] on a group's open transaction.
struct PgGroupIo<'c>(&'c mut PgConnection);

#[async_trait]
impl GroupIo for PgGroupIo<'_> {
    async fn load(&mut self, wanted: &GroupWanted<'_>) -> StoreResult<GroupLoad> {
        if !wanted.idempotency.is_empty() {
            // Idempotency keys before any event (see `idempotency_lock_key`).
            let mut locks: Vec<i64> = wanted
                .idempotency
                .iter()
                .map(|(project_id, key)| idempotency_lock_key(project_id, key))
                .collect();
            locks.sort_unstable();
            locks.dedup();
            sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
                .bind(&locks)
                .execute(&mut *self.0)
                .await?;
        }
        // API keys next: a revocation waits for this transaction from here on.
        let valid_keys = if wanted.api_keys.is_empty() {
            Vec::new()
        } else {
            valid_api_keys(self.0, &wanted.api_keys).await?
        };
        Ok(GroupLoad {
            valid_keys,
            events: load_many_for_update(self.0, &wanted.events).await?,
            idempotency: stored_keys_for_update(self.0, &wanted.idempotency).await?,
        })
    }

    async fn load_incident_event(
        &mut self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Option<LoadedEvent>> {
        load_by_incident(self.0, project_id, incident_id, Lock::ForUpdate).await
    }

    async fn persist(
        &mut self,
        writes: &[EventWrite<'_>],
        keys: Option<&KeyRows>,
    ) -> StoreResult<Vec<i64>> {
        // Every creator of an event takes its key's advisory lock first (as
        // `apply_one` does), so a creation racing ours (another group,
        // another instance) either committed before, and the insert below
        // fails on the unique key (the group then falls back), or waits.
        let mut new_keys: Vec<i64> = writes
            .iter()
            .filter(|w| w.before.is_none())
            .map(|w| event_lock_key(w.project_id, &w.after.key()))
            .collect();
        if !new_keys.is_empty() {
            new_keys.sort_unstable();
            new_keys.dedup();
            // In ascending order, as every group takes them.
            sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
                .bind(&new_keys)
                .execute(&mut *self.0)
                .await?;
        }
        let pks = persist_many(self.0, writes).await?;
        if let Some(keys) = keys {
            remember_keys(self.0, keys).await?;
        }
        Ok(pks)
    }
}

impl PostgresStore {
    /// Runs one `apply`/`apply_to_incident` through the group writer, or in
    /// a transaction of its own if the writer task is gone.
    async fn apply_grouped(&self, job: GroupJob) -> StoreResult<Applied> {
        group::applied(self.run_grouped(job).await)
    }

    /// [`PostgresStore::apply_grouped`] for a job of any kind.
    async fn run_grouped(&self, job: GroupJob) -> JobResult {
        match self.group.submit(job).await {
            Ok(result) => result,
            Err(job) => apply_one(&self.pool, job).await,
        }
    }

    async fn idempotency_begin_once(
        &self,
        project_id: &str,
        key: &str,
        request_hash: &[u8],
        now: Timestamp,
        locked_until: i64,
    ) -> StoreResult<BeginTry> {
        let mut tx = self.write().await?;
        let existing = sqlx::query(
            "SELECT request_hash, status, response, locked_until, created_at \
             FROM idempotency_keys WHERE project_id = $1 AND key = $2 FOR UPDATE",
        )
        .bind(project_id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = existing else {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (project_id, key, request_hash, status, response, \
                 locked_until, created_at) VALUES ($1, $2, $3, NULL, NULL, $4, $5) \
                 ON CONFLICT (project_id, key) DO NOTHING",
            )
            .bind(project_id)
            .bind(key)
            .bind(request_hash)
            .bind(locked_until)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| insert_error(e, "idempotency key conflict", "project"))?
            .rows_affected();
            if inserted == 0 {
                return Ok(BeginTry::Raced);
            }
            tx.commit().await?;
            return Ok(BeginTry::Done(IdempotencyBegin::Proceed));
        };
        let created_at: i64 = row.try_get("created_at")?;
        let expired = created_at <= ms(now).saturating_sub(IDEMPOTENCY_TTL_MILLIS);
        if !expired {
            let stored_hash: Vec<u8> = row.try_get("request_hash")?;
            if stored_hash != request_hash {
                return Ok(BeginTry::Done(IdempotencyBegin::Mismatch));
            }
            if let Some(status) = row.try_get::<Option<i64>, _>("status")? {
                let status = u16::try_from(status).map_err(|_| {
                    StoreError::Corrupt(format!("idempotency status out of range: {status}"))
                })?;
                let body: Option<Vec<u8>> = row.try_get("response")?;
                return Ok(BeginTry::Done(IdempotencyBegin::Replay {
                    status,
                    body: codec::open_response(
                        self.keyring()?,
                        project_id,
                        key,
                        body.unwrap_or_default(),
                    )?,
                }));
            }
            let lock: Option<i64> = row.try_get("locked_until")?;
            if lock.is_some_and(|until| until > ms(now)) {
                return Ok(BeginTry::Done(IdempotencyBegin::InFlight));
            }
            // The first request stopped without completing (a crashed
            // instance): this one takes the key over, under the row lock.
        }
        sqlx::query(
            "UPDATE idempotency_keys SET request_hash = $1, status = NULL, response = NULL, \
             locked_until = $2, created_at = $3 WHERE project_id = $4 AND key = $5",
        )
        .bind(request_hash)
        .bind(locked_until)
        .bind(ms(now))
        .bind(project_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(BeginTry::Done(IdempotencyBegin::Proceed))
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // Instances starting together take turns; the later ones find
        // nothing left to do. DDL is transactional: a failed migration
        // leaves nothing behind.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        let exists: Option<String> =
            sqlx::query_scalar(&format!("SELECT to_regclass('{MIGRATIONS_TABLE}')::text"))
                .fetch_one(&mut *tx)
                .await?;
        if exists.is_none() {
            sqlx::query(&format!(
                "CREATE TABLE {MIGRATIONS_TABLE} (\
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            ))
            .execute(&mut *tx)
            .await?;
        }
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
        let todo = migrations::plan(migrations::POSTGRES, &applied)?;
        let now = Timestamp::from_datetime(chrono::Utc::now());
        for migration in todo {
            // A plain string runs every statement it holds.
            sqlx::Executor::execute(&mut *tx, migration.sql).await?;
            sqlx::query(&format!(
                "INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES ($1, $2, $3)"
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
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
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

    async fn create_project(&self, project: NewProject) -> StoreResult<Project> {
        let name_taken =
            || StoreError::Conflict(format!("a project named `{}` already exists", project.name));
        let mut tx = self.write().await?;
        let taken = sqlx::query("SELECT 1 FROM projects WHERE name = $1")
            .bind(&project.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(name_taken());
        }
        sqlx::query(
            "INSERT INTO projects (id, name, repair_url, default_deadline_seconds, \
             deadlines_by_event_type, alert_channels, proof_show_metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, '{}', '[]', FALSE, $5, $6)",
        )
        .bind(&project.id)
        .bind(&project.name)
        .bind(&project.repair_url)
        .bind(i64::from(project.default_deadline_seconds))
        .bind(ms(project.created_at))
        .bind(ms(project.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            // Another instance created the same name since our check.
            let name_clash = matches!(&e, sqlx::Error::Database(db)
                if db.is_unique_violation() && db.constraint() == Some("projects_name_key"));
            if name_clash {
                name_taken()
            } else {
                insert_error(e, "a project with this id already exists", "project")
            }
        })?;
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
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"
        ))
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(project_from_row)
        .transpose()
    }

    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>> {
        sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(project_from_row)
        .transpose()
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(project_from_row)
        .collect()
    }

    async fn update_project(&self, project_id: &str, patch: ProjectPatch) -> StoreResult<Project> {
        let mut tx = self.write().await?;
        let mut project = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1 FOR NO KEY UPDATE"
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
            "UPDATE projects SET repair_url = $1, default_deadline_seconds = $2, \
             deadlines_by_event_type = $3, alert_channels = $4, proof_show_metadata = $5, \
             updated_at = $6 WHERE id = $7",
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
        sqlx::query(
            "INSERT INTO api_keys (id, project_id, key_hash, prefix, name, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.project_id)
        .bind(&key.key_hash)
        .bind(&key.prefix)
        .bind(&key.name)
        .bind(ms(key.created_at))
        .bind(key.revoked_at.map(ms))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            insert_error(
                e,
                "an API key with this id or hash already exists",
                "project",
            )
        })?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKey>> {
        sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
        ))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(api_key_from_row)
        .transpose()
    }

    async fn list_api_keys(&self, project_id: &str) -> StoreResult<Vec<ApiKey>> {
        sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = $1 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
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
        let found = sqlx::query(
            "SELECT revoked_at FROM api_keys WHERE project_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(project_id)
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = found else {
            return Ok(false);
        };
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_none() {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE project_id = $2 AND id = $3")
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
            "UPDATE signing_secrets SET expires_at = $1 \
             WHERE project_id = $2 AND expires_at IS NULL",
        )
        .bind(ms(older_expire_at))
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signing_secrets (project_id, secret, created_at, expires_at) \
             VALUES ($1, $2, $3, NULL)",
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
             WHERE project_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(project_id)
        .bind(ms(now))
        .fetch_all(&self.pool)
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
            "SELECT secret FROM signing_secrets WHERE project_id = $1 ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn reseal_signing_secrets(&self) -> StoreResult<ResealReport> {
        let keyring = self.keyring()?;
        let mut tx = self.write().await?;
        // Row locks: instances starting together reseal one after the other.
        let rows = sqlx::query(
            "SELECT id, project_id, secret FROM signing_secrets ORDER BY id FOR UPDATE",
        )
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
            sqlx::query("UPDATE signing_secrets SET secret = $1 WHERE id = $2")
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
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&user.id)
        .bind(&email)
        .bind(&user.password_hash)
        .bind(ms(user.created_at))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            insert_error(
                e,
                &format!("a user with email {email} already exists"),
                "user",
            )
        })?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        sqlx::query("SELECT id, email, password_hash, created_at FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(to_u64(count))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        sqlx::query(
            "SELECT id, email, password_hash, created_at FROM users ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn create_session(&self, session: Session) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(ms(session.created_at))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
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
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn delete_session(&self, token_hash: &[u8]) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn incident_counts(&self, project_id: &str) -> StoreResult<IncidentCounts> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM incidents WHERE project_id = $1 GROUP BY state",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
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
            "SELECT day, event_type, SUM(ev)::BIGINT AS events, SUM(fl)::BIGINT AS failures, \
             SUM(inc)::BIGINT AS incidents \
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
        )
        .bind(project_id)
        .bind(from)
        .bind(MILLIS_PER_DAY)
        .fetch_all(&self.pool)
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
        // REPEATABLE READ: the record and its timeline come from one snapshot.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let Some(loaded) = load_by_key(&mut tx, project_id, key, Lock::None).await? else {
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let Some(loaded) = load_by_incident(&mut tx, project_id, incident_id, Lock::None).await?
        else {
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
            QueryBuilder::<Postgres>::new("SELECT pk, record FROM events WHERE project_id = ");
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
                .push(" AND (event_id ILIKE ")
                .push_bind(pattern.clone())
                .push(" OR subject ILIKE ")
                .push_bind(pattern)
                .push(")");
        }
        if let Some(pk) = after {
            query.push(" AND pk < ").push_bind(pk);
        }
        query
            .push(" ORDER BY pk DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = query.build().fetch_all(&self.pool).await?;
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
        let mut query = QueryBuilder::<Postgres>::new(
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
                .push(" AND (i.id ILIKE ")
                .push_bind(pattern.clone())
                .push(" OR i.event_id ILIKE ")
                .push_bind(pattern.clone())
                .push(" OR i.subject ILIKE ")
                .push_bind(pattern)
                .push(")");
        }
        if let Some(at) = filter.opened_after {
            query.push(" AND i.opened_at >= ").push_bind(ms(at));
        }
        if let Some(at) = filter.opened_before {
            query.push(" AND i.opened_at < ").push_bind(ms(at));
        }
        if let Some((at, id)) = after {
            query
                .push(" AND (i.opened_at, i.id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        query
            .push(" ORDER BY i.opened_at DESC, i.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = query.build().fetch_all(&self.pool).await?;
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
                    sqlx::query("UPDATE events SET due_at = NULL WHERE pk = $1")
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
                sqlx::query("UPDATE events SET due_at = $1 WHERE pk = $2")
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
                "UPDATE deliveries SET lease_until = $1, updated_at = $2 WHERE reprocess_id = $3",
            )
            .bind(ms(lease_until))
            .bind(ms(now))
            .bind(&reprocess_id)
            .execute(&mut *tx)
            .await?;
            // Read without a lock: the claim never waits on an event row
            // (writers lock the event first, then its outbox row).
            let context = sqlx::query(
                "SELECT e.record, p.repair_url FROM events e JOIN projects p ON p.id = e.project_id \
                 WHERE e.pk = $1",
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
        // Lock order: the event row, then the outbox row.
        let row = sqlx::query(
            "SELECT e.pk, e.project_id, e.record FROM deliveries d \
             JOIN events e ON e.pk = d.event_pk \
             WHERE d.reprocess_id = $1 AND d.project_id = $2 FOR NO KEY UPDATE OF e",
        )
        .bind(&job.reprocess_id)
        .bind(&job.project_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("delivery"))?;
        let loaded = loaded_from_row(&row)?;
        let delivery = sqlx::query(
            "SELECT state AS delivery_state, lease_until FROM deliveries \
             WHERE reprocess_id = $1 FOR NO KEY UPDATE",
        )
        .bind(&job.reprocess_id)
        .fetch_one(&mut *tx)
        .await?;
        let holds_lease = delivery.try_get::<String, _>("delivery_state")? == "pending"
            && delivery.try_get::<Option<i64>, _>("lease_until")? == Some(ms(job.lease_until));
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
            "UPDATE deliveries SET state = $1, attempts = $2, \
             next_attempt_at = COALESCE($3, next_attempt_at), lease_until = NULL, updated_at = $4 \
             WHERE reprocess_id = $5 AND state = 'pending' AND lease_until = $6",
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
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
        Ok(to_u64(count))
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
             next_attempt_at, created_at FROM alerts WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until <= $2) \
             ORDER BY next_attempt_at, created_at, id LIMIT $3 FOR NO KEY UPDATE SKIP LOCKED",
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
                    "SELECT MAX(created_at) FROM alerts WHERE group_key = $1 AND role = 'single' \
                     AND created_at <= $2 AND id <> $3",
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
                            "UPDATE alerts SET role = 'held', next_attempt_at = $1, updated_at = $2 \
                             WHERE id = $3",
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
                    "SELECT id, incidents FROM alerts WHERE group_key = $1 AND state = 'pending' \
                     AND id <> $2 AND (lease_until IS NULL OR lease_until <= $3) \
                     AND ((role = 'held' AND next_attempt_at <= $4) \
                     OR (role = 'new' AND created_at < $5)) ORDER BY created_at, id \
                     FOR NO KEY UPDATE SKIP LOCKED",
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
                        "UPDATE alerts SET state = 'grouped', digest_id = $1, updated_at = $2 \
                         WHERE id = $3",
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
                "UPDATE alerts SET role = $1, incidents = $2, lease_until = $3, updated_at = $4 \
                 WHERE id = $5",
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
            "UPDATE alerts SET state = $1, attempts = $2, \
             next_attempt_at = COALESCE($3, next_attempt_at), lease_until = NULL, updated_at = $4 \
             WHERE id = $5 AND state = 'pending' AND lease_until = $6",
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
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(to_u64(count))
    }

    async fn create_proof_link(&self, link: ProofLink) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let incident_here =
            sqlx::query("SELECT 1 FROM incidents WHERE id = $1 AND project_id = $2")
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
             created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
            "SELECT {PROOF_LINK_COLUMNS} FROM proof_links WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(proof_link_from_row)
        .transpose()
    }

    async fn proof_link(&self, project_id: &str, link_id: &str) -> StoreResult<Option<ProofLink>> {
        sqlx::query(&format!(
            "SELECT {PROOF_LINK_COLUMNS} FROM proof_links WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(link_id)
        .fetch_optional(&self.pool)
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
            "SELECT {PROOF_LINK_COLUMNS} FROM proof_links \
             WHERE project_id = $1 AND incident_id = $2 ORDER BY created_at DESC, id DESC"
        ))
        .bind(project_id)
        .bind(incident_id)
        .fetch_all(&self.pool)
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
        let revoked = sqlx::query(
            "UPDATE proof_links SET revoked_at = $1 \
             WHERE project_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(ms(now))
        .bind(project_id)
        .bind(link_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
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
        for _ in 0..RACE_RETRIES {
            match self
                .idempotency_begin_once(project_id, key, request_hash, now, locked_until)
                .await?
            {
                BeginTry::Done(outcome) => return Ok(outcome),
                BeginTry::Raced => {
                    tracing::debug!("idempotency key inserted concurrently; reading it again");
                }
            }
        }
        // Another request keeps winning the insert: it is running.
        Ok(IdempotencyBegin::InFlight)
    }

    async fn idempotency_complete(
        &self,
        project_id: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> StoreResult<()> {
        let sealed = codec::seal_response(self.keyring()?, project_id, key, body);
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, response = $2, locked_until = NULL \
             WHERE project_id = $3 AND key = $4",
        )
        .bind(i64::from(status))
        .bind(&sealed)
        .bind(project_id)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn idempotency_abandon(&self, project_id: &str, key: &str) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2 AND status IS NULL",
        )
        .bind(project_id)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn purge_resolved_history(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        // Finished alerts (sent, given up, or carried by a digest) hold copies
        // of their incidents' facts: they go after the same retention.
        sqlx::query(
            "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts \
             WHERE state <> 'pending' AND updated_at < $1 LIMIT $2)",
        )
        .bind(ms(before))
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        // Row locks: an event being changed right now is skipped (and its
        // conditions are checked again on the locked row).
        let pks: Vec<i64> = sqlx::query_scalar(
            "SELECT e.pk FROM events e LEFT JOIN incidents i ON i.event_pk = e.pk \
             WHERE e.updated_at < $1 AND e.due_at IS NULL AND e.state <> 'awaiting_result' \
             AND (i.id IS NULL AND e.state = 'succeeded' OR i.state = 'resolved') \
             AND NOT EXISTS (SELECT 1 FROM deliveries d \
                             WHERE d.event_pk = e.pk AND d.state = 'pending') \
             ORDER BY e.updated_at LIMIT $2 FOR UPDATE OF e SKIP LOCKED",
        )
        .bind(ms(before))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if pks.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        for statement in [
            "DELETE FROM reprocess_batch_items WHERE incident_id IN \
             (SELECT id FROM incidents WHERE event_pk = ANY($1))",
            "DELETE FROM proof_links WHERE incident_id IN \
             (SELECT id FROM incidents WHERE event_pk = ANY($1))",
            "DELETE FROM deliveries WHERE event_pk = ANY($1)",
            "DELETE FROM timeline WHERE event_pk = ANY($1)",
            "DELETE FROM incidents WHERE event_pk = ANY($1)",
            "DELETE FROM events WHERE pk = ANY($1)",
        ] {
            sqlx::query(statement).bind(&pks).execute(&mut *tx).await?;
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
            "SELECT response FROM idempotency_keys WHERE project_id = $1 AND key = $2",
        )
        .bind(project_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    async fn purge_idempotency_keys(&self, before: Timestamp) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await?
            .rows_affected();
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
             VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $8, $9, NULL)",
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
                 subject, state, reason, reprocess_id, sent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)",
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
        let mut conn = self.pool.acquire().await?;
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
             WHERE b.project_id = $1 AND i.batch_id = $2 ORDER BY i.position LIMIT $3",
        )
        .bind(project_id)
        .bind(batch_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
            "UPDATE reprocess_batches SET state = 'cancelled', finished_at = $1 \
             WHERE id = $2 AND project_id = $3 AND state = 'running'",
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
                 WHERE batch_id = $1 AND state = 'pending'",
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
             FROM reprocess_batches WHERE state = 'running' AND next_send_at <= $1 \
             ORDER BY next_send_at LIMIT $2 FOR UPDATE SKIP LOCKED",
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
                 AND d.next_attempt_at > $1 THEN 1 ELSE 0 END), 0) AS waiting, \
                 MAX(CASE WHEN i.state = 'sent' AND d.state = 'delivered' THEN d.updated_at END) AS last_success \
                 FROM reprocess_batch_items i LEFT JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
                 WHERE i.batch_id = $2",
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
                         WHERE i.batch_id = $1 AND i.state = 'sent' AND d.state = 'pending' \
                         AND d.attempts > 0 AND d.next_attempt_at > $2 AND d.updated_at < $3",
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
                        "UPDATE reprocess_batches SET state = 'completed', finished_at = $1 \
                         WHERE id = $2 AND state = 'running'",
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
                    "UPDATE deliveries SET next_attempt_at = $1, updated_at = $2 \
                     WHERE state = 'pending' AND next_attempt_at > $3 AND reprocess_id IN \
                     (SELECT d.reprocess_id FROM reprocess_batch_items i \
                     JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
                     WHERE i.batch_id = $4 AND i.state = 'sent' AND d.state = 'pending' \
                     AND d.attempts > 0 AND d.next_attempt_at > $5 AND d.updated_at < $6 \
                     ORDER BY d.next_attempt_at LIMIT $7)",
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
                sqlx::query("UPDATE reprocess_batches SET next_send_at = $1 WHERE id = $2")
                    .bind(ms(next))
                    .bind(&batch_id)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            let project = sqlx::query(&format!(
                "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"
            ))
            .bind(&project_id)
            .fetch_one(&mut *tx)
            .await?;
            let project = project_from_row(&project)?;
            let items = sqlx::query(
                "SELECT position, incident_id FROM reprocess_batch_items \
                 WHERE batch_id = $1 AND state = 'pending' ORDER BY position LIMIT $2",
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
                    match load_by_incident(&mut tx, &project_id, &incident_id, Lock::ForUpdate)
                        .await?
                    {
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
                    "UPDATE reprocess_batch_items SET state = $1, reason = $2, reprocess_id = $3, \
                     sent_at = $4 WHERE batch_id = $5 AND position = $6 AND state = 'pending'",
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
            sqlx::query("UPDATE reprocess_batches SET next_send_at = $1 WHERE id = $2")
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
            "UPDATE reprocess_batches SET next_send_at = $1 \
             WHERE state = 'running' AND next_send_at < $2 AND id IN \
             (SELECT batch_id FROM reprocess_batch_items WHERE reprocess_id = $3)",
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
    conn: &mut PgConnection,
    project_id: &str,
    batch_id: &str,
) -> StoreResult<Option<ReprocessBatch>> {
    let Some(row) = sqlx::query(
        "SELECT id, project_id, state, rate_per_second, concurrency, started_by, note, selection, \
         created_at, finished_at FROM reprocess_batches WHERE id = $1 AND project_id = $2",
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
         LEFT JOIN incidents inc ON inc.id = i.incident_id AND inc.project_id = $1 \
         WHERE i.batch_id = $2",
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

/// Test support (feature `test-support`): a fresh, migrated database per
/// test on the server named by `SENDPROMPTLY_TEST_POSTGRES_URL`.
#[cfg(feature = "test-support")]
pub mod testing {
    use super::{PostgresStore, Store};

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

    /// A fresh, empty, migrated store and the guard of its database, or
    /// `None` when the PostgreSQL tests are skipped.
    pub async fn fresh_store(test: &str) -> Option<(PostgresStore, TestDatabase)> {
        let admin_url = server_url(test)?;
        let database = TestDatabase::create(&admin_url).await;
        let store = PostgresStore::connect_with(
            &database.url,
            super::PoolSettings {
                max_connections: 8,
                min_connections: 0,
                ..super::PoolSettings::default()
            },
        )
        .await
        .expect("connect to the test database");
        store.migrate().await.expect("migrate");
        Some((store, database))
    }
}
