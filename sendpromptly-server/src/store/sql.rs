//! The SQL of the store, written once.
//!
//! Statements both backends run as they are are plain constants with `$N`
//! placeholders (SQLite takes `$N` too: sqlx binds it by its number). A
//! statement that differs only by a clause PostgreSQL adds (a row lock such
//! as `FOR NO KEY UPDATE`, `SKIP LOCKED`) is a macro here, so each backend's
//! [`Dialect`] can `concat!` its clause onto the one text and every
//! statement stays a `&'static str` (sqlx caches prepared statements by
//! their text). What really differs per backend (set-based JSON writes,
//! advisory locks, `json_each` against `json_array_elements`, date
//! arithmetic) lives in `sqlite.rs` and `postgres.rs`, in their [`Dialect`]
//! or their [`Backend`](super::engine::Backend) methods.
//!
//! Parameters go through [`Arg`], a small closed set of value kinds that
//! [`bind`] hands to sqlx for either backend.

use sqlx::query::Query;
use sqlx::{Database, Encode, Postgres, Sqlite, Type};

/// One bound parameter.
#[derive(Clone, Copy, Debug)]
pub(super) enum Arg<'a> {
    /// `BIGINT` / `INTEGER` (times are unix milliseconds).
    Int(i64),
    /// A nullable integer.
    OptInt(Option<i64>),
    /// Text.
    Text(&'a str),
    /// Nullable text.
    OptText(Option<&'a str>),
    /// `BYTEA` / `BLOB`.
    Bytes(&'a [u8]),
    /// `DOUBLE PRECISION` / `REAL`.
    Real(f64),
    /// `BOOLEAN` (an integer in SQLite).
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref())
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}
impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// The parameters of a statement: `args![a, b]` is `&[Arg::from(a), Arg::from(b)]`.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::store::sql::Arg::from($arg)),*]
    };
}
pub(super) use args;

/// `sql` with `args` bound, for either backend.
pub(super) fn bind<'q, DB>(
    sql: &'q str,
    args: &[Arg<'q>],
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match *arg {
            Arg::Int(v) => query.bind(v),
            Arg::OptInt(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
            Arg::OptText(v) => query.bind(v),
            Arg::Bytes(v) => query.bind(v),
            Arg::Real(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
        };
    }
    query
}

/// A boxed future that may move between threads.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Running a statement on a connection, for the engine (implemented below,
/// once, for both sqlx databases).
pub(super) trait Queries: Database {
    /// The rows of `sql`.
    fn fetch_all<'a, 'q: 'a>(
        conn: &'a mut Self::Connection,
        sql: &'q str,
        args: &'a [Arg<'q>],
    ) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>>;
    /// The first row of `sql`, if any.
    fn fetch_optional<'a, 'q: 'a>(
        conn: &'a mut Self::Connection,
        sql: &'q str,
        args: &'a [Arg<'q>],
    ) -> BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>>;
    /// Runs `sql`; the rows it changed.
    fn execute<'a, 'q: 'a>(
        conn: &'a mut Self::Connection,
        sql: &'q str,
        args: &'a [Arg<'q>],
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>>;
    /// Runs every statement of `script` (a migration), without parameters.
    fn execute_script<'a>(
        conn: &'a mut Self::Connection,
        script: &'static str,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

macro_rules! queries {
    ($db:ty) => {
        impl Queries for $db {
            fn fetch_all<'a, 'q: 'a>(
                conn: &'a mut Self::Connection,
                sql: &'q str,
                args: &'a [Arg<'q>],
            ) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>> {
                Box::pin(bind::<$db>(sql, args).fetch_all(conn))
            }
            fn fetch_optional<'a, 'q: 'a>(
                conn: &'a mut Self::Connection,
                sql: &'q str,
                args: &'a [Arg<'q>],
            ) -> BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>> {
                Box::pin(bind::<$db>(sql, args).fetch_optional(conn))
            }
            fn execute<'a, 'q: 'a>(
                conn: &'a mut Self::Connection,
                sql: &'q str,
                args: &'a [Arg<'q>],
            ) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
                let query = bind::<$db>(sql, args);
                Box::pin(async move { Ok(query.execute(conn).await?.rows_affected()) })
            }
            fn execute_script<'a>(
                conn: &'a mut Self::Connection,
                script: &'static str,
            ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
                // A plain string runs every statement it holds.
                Box::pin(async move { sqlx::Executor::execute(conn, script).await.map(drop) })
            }
        }
    };
}
queries!(Sqlite);
queries!(Postgres);

/// A statement built at run time (the list filters), numbering its
/// placeholders as parameters are pushed.
#[derive(Default)]
pub(super) struct Builder<'a> {
    /// The text so far.
    pub sql: String,
    /// The parameters so far.
    pub args: Vec<Arg<'a>>,
}

impl<'a> Builder<'a> {
    /// Starts with `sql`.
    pub(super) fn new(sql: &str) -> Self {
        Builder {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends text.
    pub(super) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `arg`.
    pub(super) fn bind(&mut self, arg: impl Into<Arg<'a>>) -> &mut Self {
        self.args.push(arg.into());
        self.sql.push('$');
        self.sql.push_str(&self.args.len().to_string());
        self
    }
}

/// What each backend writes its own way: complete statements (a shared text
/// with the backend's clause appended, or the backend's own) and the
/// fragments the list filters are built from.
#[derive(Debug)]
pub(super) struct Dialect {
    /// An event by key (`$1` project, `$2` provider, `$3` event id),
    /// locked for the transaction where the backend locks rows.
    pub load_by_key_locked: &'static str,
    /// An event by incident (`$1` incident, `$2` project), locked likewise.
    pub load_by_incident_locked: &'static str,
    /// A project by id, locked for its update.
    pub project_for_update: &'static str,
    /// An API key's `revoked_at`, locked for its revocation.
    pub api_key_for_update: &'static str,
    /// Every signing secret, locked for resealing.
    pub signing_secrets_for_update: &'static str,
    /// An idempotency key, locked while a request begins with it.
    pub idempotency_for_update: &'static str,
    /// Which API keys of a JSON array `[[project, key id], …]` are unrevoked
    /// (`project_id`, `id` columns), held so that no revocation commits first.
    pub valid_api_keys: &'static str,
    /// The sweeper's due events.
    pub sweep_select: &'static str,
    /// The dispatcher's due callbacks.
    pub claim_select: &'static str,
    /// A delivery's event (and, without `delivery_lock`, the delivery's
    /// `delivery_state` and `lease_until`).
    pub finish_delivery_load: &'static str,
    /// The delivery row, locked after its event (PostgreSQL's lock order).
    pub delivery_lock: Option<&'static str>,
    /// Due alerts to claim: candidates, read without locking them (a row
    /// that may group is locked only under its group's lock).
    pub claim_alerts_select: &'static str,
    /// One due alert by id (`$1`), read again and locked for its claim
    /// (`$2`, `$3`: now); nothing if another instance holds or took it.
    pub claim_alert_lock: &'static str,
    /// Takes the lock of an alert group (`$1` its key) for the transaction
    /// without waiting: one `locked` column, 1 if taken. `None` where the
    /// write lock already makes each claim exclusive (SQLite).
    pub alert_group_lock: Option<&'static str>,
    /// The members of a digest.
    pub digest_members_select: &'static str,
    /// Running batches due for pacing.
    pub pace_batches_select: &'static str,
    /// Events that retention may delete.
    pub purge_select: &'static str,
    /// The console overview's chart.
    pub daily_activity: &'static str,
    /// The operator of the free-text search (`LIKE` is case-insensitive
    /// in SQLite; PostgreSQL needs `ILIKE`).
    pub like: &'static str,
    /// What follows a search pattern's placeholder (SQLite needs `ESCAPE`).
    pub like_escape: &'static str,
    /// Whether the incidents cursor is compared as a row value.
    pub row_values: bool,
    /// The analytics rollup rows (`metric, day, event_type, bucket, n`) of
    /// [`stats_rows_where`], whatever is not folded yet included.
    pub stats_rows: &'static str,
    /// `received, good` of [`slo_counts_where`], unfolded deltas included.
    pub slo_counts: &'static str,
}

// ---------------------------------------------------------------------------
// Statements a backend completes with its clause (see `Dialect`)

macro_rules! load_by_key {
    () => {
        "SELECT e.pk, e.project_id, e.record, e.chain_head FROM events e \
         WHERE e.project_id = $1 AND e.provider = $2 AND e.event_id = $3"
    };
}
pub(super) use load_by_key;

macro_rules! load_by_incident {
    () => {
        "SELECT e.pk, e.project_id, e.record, e.chain_head FROM incidents i JOIN events e ON e.pk = i.event_pk \
         WHERE i.id = $1 AND i.project_id = $2"
    };
}
pub(super) use load_by_incident;

macro_rules! project_by_id {
    () => {
        "SELECT id, name, repair_url, default_deadline_seconds, deadlines_by_event_type, \
         alert_channels, proof_show_metadata, created_at, trace_url_template FROM projects WHERE id = $1"
    };
}
pub(super) use project_by_id;

macro_rules! api_key_revoked_at {
    () => {
        "SELECT revoked_at FROM api_keys WHERE project_id = $1 AND id = $2"
    };
}
pub(super) use api_key_revoked_at;

macro_rules! all_signing_secrets {
    () => {
        "SELECT id, project_id, secret FROM signing_secrets ORDER BY id"
    };
}
pub(super) use all_signing_secrets;

macro_rules! idempotency_key {
    () => {
        "SELECT request_hash, status, response, locked_until, created_at \
         FROM idempotency_keys WHERE project_id = $1 AND key = $2"
    };
}
pub(super) use idempotency_key;

macro_rules! sweep_select {
    () => {
        "SELECT pk, project_id, record, chain_head, due_at FROM events \
         WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2"
    };
}
pub(super) use sweep_select;

macro_rules! claim_select {
    () => {
        "SELECT reprocess_id, project_id, incident_id, event_pk, attempts \
         FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
         AND (lease_until IS NULL OR lease_until <= $2) ORDER BY next_attempt_at LIMIT $3"
    };
}
pub(super) use claim_select;

macro_rules! claim_alerts_select {
    () => {
        "SELECT id, project_id, channel, event, group_key, role, incidents, attempts, \
         next_attempt_at, created_at FROM alerts WHERE state = 'pending' AND next_attempt_at <= $1 \
         AND (lease_until IS NULL OR lease_until <= $2) \
         ORDER BY next_attempt_at, created_at, id LIMIT $3"
    };
}
pub(super) use claim_alerts_select;

macro_rules! claim_alert_lock {
    () => {
        "SELECT id, project_id, channel, event, group_key, role, incidents, attempts, \
         next_attempt_at, created_at FROM alerts WHERE id = $1 AND state = 'pending' \
         AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $3)"
    };
}
pub(super) use claim_alert_lock;

macro_rules! digest_members_select {
    () => {
        "SELECT id, incidents FROM alerts WHERE group_key = $1 AND state = 'pending' \
         AND id <> $2 AND (lease_until IS NULL OR lease_until <= $3) \
         AND ((role = 'held' AND next_attempt_at <= $4) \
         OR (role = 'new' AND created_at < $5)) ORDER BY created_at, id"
    };
}
pub(super) use digest_members_select;

macro_rules! pace_batches_select {
    () => {
        "SELECT id, project_id, rate_per_second, concurrency, started_by, note, next_send_at \
         FROM reprocess_batches WHERE state = 'running' AND next_send_at <= $1 \
         ORDER BY next_send_at LIMIT $2"
    };
}
pub(super) use pace_batches_select;

macro_rules! purge_select {
    () => {
        "SELECT e.pk FROM events e LEFT JOIN incidents i ON i.event_pk = e.pk \
         WHERE e.updated_at < $1 AND e.due_at IS NULL AND e.state <> 'awaiting_result' \
         AND (i.id IS NULL AND e.state = 'succeeded' OR i.state = 'resolved') \
         AND NOT EXISTS (SELECT 1 FROM deliveries d \
                         WHERE d.event_pk = e.pk AND d.state = 'pending') \
         ORDER BY e.updated_at LIMIT $2"
    };
}
pub(super) use purge_select;

// ---------------------------------------------------------------------------
// Statements both backends run as they are

pub(super) const PROJECT_BY_ID: &str = project_by_id!();
pub(super) const PROJECT_BY_NAME: &str = "SELECT id, name, repair_url, default_deadline_seconds, \
     deadlines_by_event_type, alert_channels, proof_show_metadata, created_at, trace_url_template \
     FROM projects WHERE name = $1";
pub(super) const PROJECTS: &str = "SELECT id, name, repair_url, default_deadline_seconds, \
     deadlines_by_event_type, alert_channels, proof_show_metadata, created_at, trace_url_template \
     FROM projects ORDER BY created_at, id";
pub(super) const PROJECT_NAME_TAKEN: &str = "SELECT 1 AS one FROM projects WHERE name = $1";
pub(super) const INSERT_PROJECT: &str = "INSERT INTO projects (id, name, repair_url, \
     default_deadline_seconds, deadlines_by_event_type, alert_channels, proof_show_metadata, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, '{}', '[]', FALSE, $5, $6)";
pub(super) const UPDATE_PROJECT: &str = "UPDATE projects SET repair_url = $1, \
     default_deadline_seconds = $2, deadlines_by_event_type = $3, alert_channels = $4, \
     proof_show_metadata = $5, updated_at = $6, trace_url_template = $8 WHERE id = $7";
pub(super) const PROJECT_ALERT_CHANNELS: &str = "SELECT alert_channels FROM projects WHERE id = $1";

pub(super) const INSERT_API_KEY: &str = "INSERT INTO api_keys (id, project_id, key_hash, prefix, \
     name, created_at, revoked_at, scopes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(super) const API_KEY_BY_HASH: &str = "SELECT id, project_id, key_hash, prefix, name, \
     created_at, revoked_at, scopes, last_used_at, last_used_class, used_classes FROM api_keys \
     WHERE key_hash = $1";
pub(super) const API_KEYS: &str = "SELECT id, project_id, key_hash, prefix, name, created_at, \
     revoked_at, scopes, last_used_at, last_used_class, used_classes FROM api_keys \
     WHERE project_id = $1 ORDER BY created_at DESC, id DESC";
/// A key's use: the newest time and class win, the classes add up.
pub(super) const RECORD_KEY_USE: &str = "UPDATE api_keys SET \
     last_used_class = CASE WHEN last_used_at IS NULL OR last_used_at <= $1 THEN $2 \
     ELSE last_used_class END, \
     last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $1 THEN $1 \
     ELSE last_used_at END, \
     used_classes = used_classes | $3 WHERE id = $4";
pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit_log (id, project_id, at, actor, ip, \
     action, target, before_json, after_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// An audit page, newest first: `$2` the cursor's `seq` (or NULL), then
/// the filters (NULL for any), `$7` the limit.
pub(super) const AUDIT_PAGE: &str = "SELECT seq, id, project_id, at, actor, ip, action, target, \
     before_json, after_json FROM audit_log WHERE project_id = $1 \
     AND ($2 IS NULL OR seq < $2) AND ($3 IS NULL OR action = $3) \
     AND ($4 IS NULL OR actor = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
     ORDER BY seq DESC LIMIT $7";
pub(super) const PURGE_AUDIT: &str = "DELETE FROM audit_log WHERE at < $1";
pub(super) const AUDIT_OLDER_THAN: &str = "SELECT 1 AS found FROM audit_log WHERE at < $1 LIMIT 1";
pub(super) const REVOKE_API_KEY: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE project_id = $2 AND id = $3";

pub(super) const EXPIRE_SIGNING_SECRETS: &str = "UPDATE signing_secrets SET expires_at = $1 \
     WHERE project_id = $2 AND expires_at IS NULL";
pub(super) const INSERT_SIGNING_SECRET: &str = "INSERT INTO signing_secrets (project_id, secret, \
     created_at, expires_at) VALUES ($1, $2, $3, NULL)";
pub(super) const SIGNING_SECRETS: &str = "SELECT id, secret, created_at, expires_at \
     FROM signing_secrets WHERE project_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
     ORDER BY created_at DESC, id DESC";
pub(super) const STORED_SIGNING_SECRETS: &str =
    "SELECT secret FROM signing_secrets WHERE project_id = $1 ORDER BY id";
pub(super) const RESEAL_SIGNING_SECRET: &str =
    "UPDATE signing_secrets SET secret = $1 WHERE id = $2";

/// The columns [`super::rows::user`] decodes.
macro_rules! user_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "email, ",
            $p,
            "password_hash, ",
            $p,
            "created_at, ",
            $p,
            "disabled_at, ",
            $p,
            "owner, ",
            $p,
            "totp_enabled"
        )
    };
}

pub(super) const INSERT_USER: &str = "INSERT INTO users (id, email, password_hash, created_at, \
     owner) VALUES ($1, $2, $3, $4, $5)";
pub(super) const USER_BY_EMAIL: &str =
    concat!("SELECT ", user_columns!(""), " FROM users WHERE email = $1");
pub(super) const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(""), " FROM users WHERE id = $1");
pub(super) const COUNT_USERS: &str = "SELECT COUNT(*) AS n FROM users";
pub(super) const USERS: &str = concat!(
    "SELECT ",
    user_columns!(""),
    " FROM users ORDER BY created_at, id"
);
pub(super) const DELETE_EXPIRED_SESSIONS: &str =
    "DELETE FROM console_sessions WHERE expires_at <= $1";
pub(super) const INSERT_SESSION: &str = "INSERT INTO console_sessions (token_hash, user_id, \
     created_at, expires_at, pending_2fa) VALUES ($1, $2, $3, $4, $5)";
/// A live session of an enabled user; `$3` picks full or TOTP-pending ones.
pub(super) const SESSION_USER: &str = concat!(
    "SELECT ",
    user_columns!("u."),
    " FROM console_sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.pending_2fa = $3 \
     AND u.disabled_at IS NULL"
);
pub(super) const DELETE_SESSION: &str = "DELETE FROM console_sessions WHERE token_hash = $1";
pub(super) const DELETE_USER_SESSIONS: &str = "DELETE FROM console_sessions WHERE user_id = $1";
pub(super) const SET_USER_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
pub(super) const SET_USER_DISABLED: &str = "UPDATE users SET disabled_at = $2 WHERE id = $1";
pub(super) const DELETE_USER_MEMBERS: &str = "DELETE FROM project_members WHERE user_id = $1";
pub(super) const DELETE_USER_TOKENS: &str = "DELETE FROM user_tokens WHERE user_id = $1";
pub(super) const DELETE_USER_RECOVERY_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";
pub(super) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
pub(super) const UPSERT_MEMBER: &str = "INSERT INTO project_members (project_id, user_id, role, \
     created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, user_id) DO UPDATE SET \
     role = excluded.role";
pub(super) const DELETE_MEMBER: &str =
    "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2";
pub(super) const MEMBERSHIPS: &str =
    "SELECT project_id, role FROM project_members WHERE user_id = $1 ORDER BY project_id";
pub(super) const MEMBERS: &str = concat!(
    "SELECT ",
    user_columns!("u."),
    ", m.role FROM project_members m JOIN users u ON u.id = m.user_id \
     WHERE m.project_id = $1 ORDER BY u.created_at, u.id"
);
pub(super) const INSERT_USER_TOKEN: &str = "INSERT INTO user_tokens (token_hash, user_id, kind, \
     created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
pub(super) const USER_TOKEN: &str = "SELECT user_id FROM user_tokens WHERE token_hash = $1 \
     AND kind = $2 AND used_at IS NULL AND expires_at > $3";
pub(super) const USE_USER_TOKEN: &str =
    "UPDATE user_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL";
pub(super) const USER_TOTP: &str =
    "SELECT totp_secret, totp_enabled, totp_last_step FROM users WHERE id = $1";
pub(super) const SET_USER_TOTP: &str = "UPDATE users SET totp_secret = $2, totp_enabled = $3, \
     totp_last_step = NULL WHERE id = $1";
pub(super) const CLAIM_TOTP_STEP: &str = "UPDATE users SET totp_last_step = $2 WHERE id = $1 \
     AND (totp_last_step IS NULL OR totp_last_step < $2)";
pub(super) const INSERT_RECOVERY_CODE: &str =
    "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)";
pub(super) const USE_RECOVERY_CODE: &str = "UPDATE recovery_codes SET used_at = $3 \
     WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";
pub(super) const RECOVERY_CODES_LEFT: &str =
    "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL";
pub(super) const PROJECT_REQUIRES_2FA: &str =
    "SELECT require_2fa FROM project_console_policy WHERE project_id = $1";
pub(super) const SET_PROJECT_REQUIRES_2FA: &str = "INSERT INTO project_console_policy \
     (project_id, require_2fa) VALUES ($1, $2) ON CONFLICT (project_id) DO UPDATE SET \
     require_2fa = excluded.require_2fa";

pub(super) const INCIDENT_COUNTS: &str =
    "SELECT state, COUNT(*) AS n FROM incidents WHERE project_id = $1 GROUP BY state";
pub(super) const LOAD_BY_KEY: &str = load_by_key!();
pub(super) const LOAD_BY_INCIDENT: &str = load_by_incident!();
pub(super) const TIMELINE: &str =
    "SELECT at, kind, actor, detail, hash FROM timeline WHERE event_pk = $1 ORDER BY seq";
pub(super) const INSERT_TIMELINE_ENTRY: &str = "INSERT INTO timeline (event_pk, at, kind, actor, \
     detail, hash) VALUES ($1, $2, $3, $4, $5, $6)";
pub(super) const UNCHAINED_THROUGH: &str =
    "SELECT unchained_through FROM timeline_chain WHERE id = 1";
/// The timeline rows of the events with row ids `$1` – `$2`, in order.
pub(super) const TIMELINE_CHAIN_ROWS: &str = "SELECT event_pk, seq, at, kind, actor, detail, hash \
     FROM timeline WHERE event_pk BETWEEN $1 AND $2 ORDER BY event_pk, seq";
pub(super) const SET_CHAIN_HEAD: &str = "UPDATE events SET chain_head = $1 WHERE pk = $2";
pub(super) const TOUCH_EVENT: &str = "UPDATE events SET record = $1, updated_at = $2 WHERE pk = $3";
pub(super) const SET_DUE_AT: &str = "UPDATE events SET due_at = $1 WHERE pk = $2";
pub(super) const UPSERT_INCIDENT: &str = "INSERT INTO incidents (id, project_id, event_pk, kind, \
     state, provider, event_id, event_type, subject, opened_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (event_pk) DO UPDATE SET kind = excluded.kind, state = excluded.state, \
     event_type = excluded.event_type, subject = excluded.subject, \
     updated_at = excluded.updated_at";
pub(super) const INSERT_DELIVERY: &str = "INSERT INTO deliveries (reprocess_id, project_id, \
     event_pk, incident_id, state, attempts, next_attempt_at, lease_until, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, NULL, $5, $5)";
pub(super) const CANCEL_DELIVERY: &str = "UPDATE deliveries SET state = 'cancelled', \
     lease_until = NULL, updated_at = $1 \
     WHERE reprocess_id = $2 AND event_pk = $3 AND state = 'pending'";
pub(super) const INSERT_ALERT: &str = "INSERT INTO alerts (id, project_id, channel_index, \
     channel, event, group_key, role, incidents, state, attempts, next_attempt_at, lease_until, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, NULL, $9, $9)";

pub(super) const LEASE_DELIVERY: &str =
    "UPDATE deliveries SET lease_until = $1, updated_at = $2 WHERE reprocess_id = $3";
pub(super) const DELIVERY_CONTEXT: &str = "SELECT e.record, p.repair_url FROM events e \
     JOIN projects p ON p.id = e.project_id WHERE e.pk = $1";
pub(super) const FINISH_DELIVERY: &str = "UPDATE deliveries SET state = $1, attempts = $2, \
     next_attempt_at = COALESCE($3, next_attempt_at), lease_until = NULL, updated_at = $4 \
     WHERE reprocess_id = $5 AND state = 'pending' AND lease_until = $6";
pub(super) const PENDING_DELIVERIES: &str =
    "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'pending'";

/// When the group's latest window opened: its latest single, whenever it
/// was raised (an alert raised earlier whose row committed later joins that
/// window's digest instead of opening a second window).
pub(super) const ALERT_WINDOW_OPENED: &str = "SELECT MAX(created_at) AS opened FROM alerts \
     WHERE group_key = $1 AND role = 'single' AND id <> $2";
/// The event row of an incident (`$1` incident, `$2` project), read
/// without a lock: a finish sorts its incidents' events by it and locks
/// them in that order.
pub(super) const INCIDENT_EVENT_PK: &str =
    "SELECT event_pk FROM incidents WHERE id = $1 AND project_id = $2";
pub(super) const HOLD_ALERT: &str =
    "UPDATE alerts SET role = 'held', next_attempt_at = $1, updated_at = $2 WHERE id = $3";
pub(super) const GROUP_ALERT: &str =
    "UPDATE alerts SET state = 'grouped', digest_id = $1, updated_at = $2 WHERE id = $3";
pub(super) const LEASE_ALERT: &str = "UPDATE alerts SET role = $1, incidents = $2, \
     lease_until = $3, updated_at = $4 WHERE id = $5";
pub(super) const FINISH_ALERT: &str = "UPDATE alerts SET state = $1, attempts = $2, \
     next_attempt_at = COALESCE($3, next_attempt_at), lease_until = NULL, updated_at = $4 \
     WHERE id = $5 AND state = 'pending' AND lease_until = $6";
pub(super) const PENDING_ALERTS: &str = "SELECT COUNT(*) AS n FROM alerts WHERE state = 'pending'";

pub(super) const INCIDENT_EXISTS: &str =
    "SELECT 1 AS one FROM incidents WHERE id = $1 AND project_id = $2";
pub(super) const INSERT_PROOF_LINK: &str = "INSERT INTO proof_links (id, project_id, \
     incident_id, token_hash, created_by, created_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(super) const PROOF_LINK_BY_TOKEN_HASH: &str = "SELECT id, project_id, incident_id, \
     token_hash, created_by, created_at, expires_at, revoked_at FROM proof_links \
     WHERE token_hash = $1";
pub(super) const PROOF_LINK: &str = "SELECT id, project_id, incident_id, token_hash, created_by, \
     created_at, expires_at, revoked_at FROM proof_links WHERE project_id = $1 AND id = $2";
pub(super) const PROOF_LINKS_FOR_INCIDENT: &str = "SELECT id, project_id, incident_id, \
     token_hash, created_by, created_at, expires_at, revoked_at FROM proof_links \
     WHERE project_id = $1 AND incident_id = $2 ORDER BY created_at DESC, id DESC";
pub(super) const REVOKE_PROOF_LINK: &str = "UPDATE proof_links SET revoked_at = $1 \
     WHERE project_id = $2 AND id = $3 AND revoked_at IS NULL";

pub(super) const CLAIM_IDEMPOTENCY_KEY: &str = "INSERT INTO idempotency_keys (project_id, key, \
     request_hash, status, response, locked_until, created_at) \
     VALUES ($1, $2, $3, NULL, NULL, $4, $5) ON CONFLICT (project_id, key) DO NOTHING";
pub(super) const RETAKE_IDEMPOTENCY_KEY: &str = "UPDATE idempotency_keys SET request_hash = $1, \
     status = NULL, response = NULL, locked_until = $2, created_at = $3 \
     WHERE project_id = $4 AND key = $5";
pub(super) const COMPLETE_IDEMPOTENCY_KEY: &str = "UPDATE idempotency_keys SET status = $1, \
     response = $2, locked_until = NULL WHERE project_id = $3 AND key = $4";
pub(super) const ABANDON_IDEMPOTENCY_KEY: &str = "DELETE FROM idempotency_keys \
     WHERE project_id = $1 AND key = $2 AND status IS NULL";
pub(super) const STORED_IDEMPOTENCY_RESPONSE: &str =
    "SELECT response FROM idempotency_keys WHERE project_id = $1 AND key = $2";
pub(super) const PURGE_IDEMPOTENCY_KEYS: &str =
    "DELETE FROM idempotency_keys WHERE created_at < $1";
pub(super) const PURGE_ALERTS: &str = "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts \
     WHERE state <> 'pending' AND updated_at < $1 LIMIT $2)";

pub(super) const INSERT_BATCH: &str = "INSERT INTO reprocess_batches (id, project_id, state, \
     rate_per_second, concurrency, started_by, note, selection, next_send_at, created_at, \
     finished_at) VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $8, $8, NULL)";
pub(super) const INSERT_BATCH_ITEM: &str = "INSERT INTO reprocess_batch_items (batch_id, \
     position, incident_id, event_type, subject, state, reason, reprocess_id, sent_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)";
pub(super) const BATCH: &str = "SELECT id, project_id, state, rate_per_second, concurrency, \
     started_by, note, selection, created_at, finished_at FROM reprocess_batches \
     WHERE id = $1 AND project_id = $2";
pub(super) const BATCH_COUNTS: &str = "SELECT COUNT(*) AS total, \
     COALESCE(SUM(CASE WHEN i.state = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
     COALESCE(SUM(CASE WHEN i.state = 'skipped' THEN 1 ELSE 0 END), 0) AS skipped, \
     COALESCE(SUM(CASE WHEN i.state = 'cancelled' THEN 1 ELSE 0 END), 0) AS cancelled, \
     COALESCE(SUM(CASE WHEN i.state = 'sent' THEN 1 ELSE 0 END), 0) AS sent, \
     COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'pending' \
     AND NOT (d.attempts > 0 AND d.lease_until IS NULL AND d.next_attempt_at > d.updated_at) \
     THEN 1 ELSE 0 END), 0) AS in_flight, \
     COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'delivered' THEN 1 ELSE 0 END), 0) \
     AS delivered, \
     COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'gave_up' THEN 1 ELSE 0 END), 0) \
     AS failed, \
     COALESCE(SUM(CASE WHEN i.state = 'sent' AND inc.state = 'resolved' THEN 1 ELSE 0 END), 0) \
     AS resolved \
     FROM reprocess_batch_items i \
     LEFT JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
     LEFT JOIN incidents inc ON inc.id = i.incident_id AND inc.project_id = $1 \
     WHERE i.batch_id = $2";
pub(super) const BATCH_ITEMS: &str = "SELECT i.incident_id, i.event_type, i.subject, i.state, \
     i.reason, i.reprocess_id, d.state AS delivery_state, inc.state AS incident_state \
     FROM reprocess_batch_items i JOIN reprocess_batches b ON b.id = i.batch_id \
     LEFT JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
     LEFT JOIN incidents inc ON inc.id = i.incident_id AND inc.project_id = b.project_id \
     WHERE b.project_id = $1 AND i.batch_id = $2 ORDER BY i.position LIMIT $3";
pub(super) const CANCEL_BATCH: &str = "UPDATE reprocess_batches SET state = 'cancelled', \
     finished_at = $1 WHERE id = $2 AND project_id = $3 AND state = 'running'";
pub(super) const CANCEL_BATCH_ITEMS: &str = "UPDATE reprocess_batch_items SET state = 'cancelled', \
     reason = 'batch_cancelled' WHERE batch_id = $1 AND state = 'pending'";
pub(super) const BATCH_PROGRESS: &str = "SELECT \
     COALESCE(SUM(CASE WHEN i.state = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
     COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'pending' THEN 1 ELSE 0 END), 0) \
     AS in_flight, \
     COALESCE(SUM(CASE WHEN i.state = 'sent' AND d.state = 'pending' AND d.attempts > 0 \
     AND d.next_attempt_at > $1 THEN 1 ELSE 0 END), 0) AS waiting, \
     MAX(CASE WHEN i.state = 'sent' AND d.state = 'delivered' THEN d.updated_at END) \
     AS last_success \
     FROM reprocess_batch_items i LEFT JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
     WHERE i.batch_id = $2";
pub(super) const BATCH_RETRYABLE: &str = "SELECT COUNT(*) AS n FROM reprocess_batch_items i \
     JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
     WHERE i.batch_id = $1 AND i.state = 'sent' AND d.state = 'pending' \
     AND d.attempts > 0 AND d.next_attempt_at > $2 AND d.updated_at < $3";
pub(super) const COMPLETE_BATCH: &str = "UPDATE reprocess_batches SET state = 'completed', \
     finished_at = $1 WHERE id = $2 AND state = 'running'";
pub(super) const RETRY_BATCH_DELIVERIES: &str = "UPDATE deliveries SET next_attempt_at = $1, \
     updated_at = $1 WHERE state = 'pending' AND next_attempt_at > $1 AND reprocess_id IN \
     (SELECT d.reprocess_id FROM reprocess_batch_items i \
     JOIN deliveries d ON d.reprocess_id = i.reprocess_id \
     WHERE i.batch_id = $2 AND i.state = 'sent' AND d.state = 'pending' \
     AND d.attempts > 0 AND d.next_attempt_at > $1 AND d.updated_at < $3 \
     ORDER BY d.next_attempt_at LIMIT $4)";
/// The running batch a delivery belongs to (`$1` reprocess id), if any.
pub(super) const RUNNING_BATCH_OF_DELIVERY: &str = "SELECT b.id, b.concurrency \
     FROM reprocess_batch_items i JOIN reprocess_batches b ON b.id = i.batch_id \
     WHERE i.reprocess_id = $1 AND b.state = 'running'";
/// A batch's callbacks holding a slot for the dispatcher (`$1` now, `$2`
/// batch): being attempted, or due and never attempted. (A row leased now
/// was due when claimed.)
pub(super) const BATCH_BUSY: &str = "SELECT COUNT(*) AS n FROM deliveries d \
     JOIN reprocess_batch_items i ON i.reprocess_id = d.reprocess_id \
     WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND i.batch_id = $2 \
     AND (d.attempts = 0 OR d.lease_until > $1)";
/// Puts a due retry back (`$1` its new time, `$2` reprocess id), keeping
/// `updated_at` (its last attempt) for the retry-after-recovery rule.
pub(super) const DEFER_DELIVERY: &str = "UPDATE deliveries SET next_attempt_at = $1 \
     WHERE reprocess_id = $2 AND state = 'pending'";
pub(super) const BATCH_NEXT_SEND_AT: &str =
    "UPDATE reprocess_batches SET next_send_at = $1 WHERE id = $2";
pub(super) const PENDING_BATCH_ITEMS: &str = "SELECT position, incident_id \
     FROM reprocess_batch_items WHERE batch_id = $1 AND state = 'pending' \
     ORDER BY position LIMIT $2";
pub(super) const SEND_BATCH_ITEM: &str = "UPDATE reprocess_batch_items SET state = $1, \
     reason = $2, reprocess_id = $3, sent_at = $4 \
     WHERE batch_id = $5 AND position = $6 AND state = 'pending'";
pub(super) const SLOW_BATCH: &str = "UPDATE reprocess_batches SET next_send_at = $1 \
     WHERE state = 'running' AND next_send_at < $1 AND id IN \
     (SELECT batch_id FROM reprocess_batch_items WHERE reprocess_id = $2)";

// ---------------------------------------------------------------------------
// Provider tap (copies by fingerprint, settings)

pub(super) const EVENT_BY_FINGERPRINT: &str = "SELECT e.provider, e.event_id \
     FROM provider_copies c JOIN events e ON e.pk = c.event_pk \
     WHERE c.project_id = $1 AND c.provider = $2 AND c.fingerprint = $3";
pub(super) const PROVIDER_TAP_SETTINGS: &str = "SELECT tracked_event_types, \
     receipt_grace_seconds, grace_by_event_type, stripe_endpoint_secrets, shopify_client_secret, \
     stripe_restricted_key, updated_at FROM provider_tap_settings WHERE project_id = $1";
pub(super) const UPSERT_PROVIDER_TAP_SETTINGS: &str = "INSERT INTO provider_tap_settings \
     (project_id, tracked_event_types, receipt_grace_seconds, grace_by_event_type, \
     stripe_endpoint_secrets, shopify_client_secret, stripe_restricted_key, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (project_id) DO UPDATE SET \
     tracked_event_types = excluded.tracked_event_types, \
     receipt_grace_seconds = excluded.receipt_grace_seconds, \
     grace_by_event_type = excluded.grace_by_event_type, \
     stripe_endpoint_secrets = excluded.stripe_endpoint_secrets, \
     shopify_client_secret = excluded.shopify_client_secret, \
     stripe_restricted_key = excluded.stripe_restricted_key, updated_at = excluded.updated_at";
pub(super) const STRIPE_RESTRICTED_KEY: &str =
    "SELECT stripe_restricted_key FROM provider_tap_settings WHERE project_id = $1";

// ---------------------------------------------------------------------------
// The Stripe reconciler (`stripe_reconcile`, one row per project)

macro_rules! reconcile_columns {
    () => {
        "SELECT project_id, watermark, pass_lower, pass_upper, pass_cursor, pass_newest, \
         lease_owner, lease_until, last_run_at, last_success_at, last_error_kind, last_error, \
         events_fed FROM stripe_reconcile"
    };
}
pub(super) const RECONCILE_STATE: &str = concat!(reconcile_columns!(), " WHERE project_id = $1");
pub(super) const RECONCILE_STATES: &str = concat!(reconcile_columns!(), " ORDER BY project_id");
/// `$1` project, `$2` owner, `$3` lease until, `$4` now: creates the row, or
/// takes a lease that is free, expired or already the owner's.
pub(super) const TAKE_RECONCILE_LEASE: &str = "INSERT INTO stripe_reconcile \
     (project_id, lease_owner, lease_until) VALUES ($1, $2, $3) \
     ON CONFLICT (project_id) DO UPDATE SET lease_owner = excluded.lease_owner, \
     lease_until = excluded.lease_until \
     WHERE stripe_reconcile.lease_owner IS NULL OR stripe_reconcile.lease_until IS NULL \
     OR stripe_reconcile.lease_owner = excluded.lease_owner \
     OR stripe_reconcile.lease_until <= $4";
/// Saves a pass's progress and extends the lease, only for the lease holder
/// whose lease has not run out.
pub(super) const SAVE_RECONCILE_PROGRESS: &str = "UPDATE stripe_reconcile SET \
     pass_lower = $1, pass_upper = $2, pass_cursor = $3, pass_newest = $4, \
     events_fed = events_fed + $5, lease_until = $6 \
     WHERE project_id = $7 AND lease_owner = $8 AND lease_until > $9";
/// Ends a pass and frees the lease (`$1` now; `$2` 1 when it succeeded).
pub(super) const FINISH_RECONCILE: &str = "UPDATE stripe_reconcile SET \
     last_run_at = $1, \
     last_success_at = CASE WHEN $2 = 1 THEN $1 ELSE last_success_at END, \
     watermark = CASE WHEN $2 = 1 AND $3 IS NOT NULL \
         AND (watermark IS NULL OR watermark < $3) THEN $3 ELSE watermark END, \
     pass_lower = CASE WHEN $2 = 1 THEN NULL ELSE pass_lower END, \
     pass_upper = CASE WHEN $2 = 1 THEN NULL ELSE pass_upper END, \
     pass_cursor = CASE WHEN $2 = 1 THEN NULL ELSE pass_cursor END, \
     pass_newest = CASE WHEN $2 = 1 THEN NULL ELSE pass_newest END, \
     last_error_kind = $4, last_error = $5, lease_owner = NULL, lease_until = NULL \
     WHERE project_id = $6 AND lease_owner = $7";

// Analytics (issue #25; the tables of migration 0012).
/// The rollup rows' filter (`$1` project, `$2`..`$3` days, `$4` the event
/// type or ''), shared by the folded rows and PostgreSQL's deltas.
macro_rules! stats_rows_where {
    () => {
        "WHERE project_id = $1 AND metric IN ('tte', 'lag', 'ttr', 'received', 'incidents', \
         'repaired_reprocess', 'repaired_manual', 'resolved_other') AND day >= $2 AND day < $3 \
         AND ($4 = '' OR event_type = $4)"
    };
}
pub(super) use stats_rows_where;
/// The SLO slots' filter (`$1` project, `$2` event type, `$3`..`$4` slots).
macro_rules! slo_counts_where {
    () => {
        "WHERE project_id = $1 AND event_type = $2 AND slot >= $3 AND slot < $4"
    };
}
pub(super) use slo_counts_where;
/// The rollup rows as SQLite keeps them (its triggers upsert `stats_hist`
/// directly); PostgreSQL adds its unfolded deltas (see its [`Dialect`]).
pub(super) const STATS_ROWS: &str = concat!(
    "SELECT metric, day, event_type, bucket, n FROM stats_hist ",
    stats_rows_where!()
);
pub(super) const SLO_OBJECTIVES: &str = "SELECT event_type, objective_ppm, threshold_seconds, \
     window_days FROM slo_objectives WHERE project_id = $1 ORDER BY event_type";
pub(super) const ALL_SLO_OBJECTIVES: &str = "SELECT project_id, event_type, objective_ppm, \
     threshold_seconds, window_days FROM slo_objectives ORDER BY project_id, event_type";
pub(super) const DELETE_SLO_OBJECTIVES: &str = "DELETE FROM slo_objectives WHERE project_id = $1";
pub(super) const INSERT_SLO_OBJECTIVE: &str = "INSERT INTO slo_objectives (project_id, \
     event_type, objective_ppm, threshold_seconds, window_days) VALUES ($1, $2, $3, $4, $5)";
/// SQLite's SLO slot counts (PostgreSQL adds its unfolded deltas).
pub(super) const SLO_COUNTS: &str = concat!(
    "SELECT CAST(SUM(received) AS BIGINT) AS received, CAST(SUM(good) AS BIGINT) AS good \
     FROM slo_slots ",
    slo_counts_where!()
);
/// Records whether an SLO burns; changes a row only when the state flips,
/// so of several instances deciding at once one sees the flip.
pub(super) const SET_SLO_BURNING: &str = "INSERT INTO slo_alerts (project_id, event_type, \
     burning, started_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
     ON CONFLICT (project_id, event_type) DO UPDATE SET burning = excluded.burning, \
     started_at = excluded.started_at, updated_at = excluded.updated_at \
     WHERE slo_alerts.burning <> excluded.burning";
pub(super) const SLO_BURNING: &str =
    "SELECT burning FROM slo_alerts WHERE project_id = $1 AND event_type = $2";
