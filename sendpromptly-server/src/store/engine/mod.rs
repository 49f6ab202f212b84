//! The store engine: every [`Store`] method written once, over a
//! [`Backend`] (SQLite or PostgreSQL).
//!
//! The engine owns what both databases do alike: the load →
//! [`machine::apply`](sendpromptly_core::machine::apply) → persist
//! orchestration and the outbox writes of a transition (`persist`), the
//! sweeper, claiming and finishing deliveries and alerts, batch pacing and
//! retention (`work`), projects, keys, secrets, users, sessions, proof
//! links and idempotency keys (`settings`), and the reads (`reads`). Its
//! SQL is in [`super::sql`] (each statement once, with the backend's lock
//! clause where PostgreSQL needs one, through the backend's
//! [`Dialect`]) and its rows decode through [`super::rows`].
//!
//! A backend keeps only what really differs: its connections and
//! transactions ([`Backend::write`], [`Backend::snapshot`]:
//! `BEGIN IMMEDIATE` on SQLite's one writer connection, PostgreSQL's pool),
//! its dialect, its set-based event writes ([`Backend::write_events`]),
//! migrations, and its group commit ([`super::group`]), which calls back
//! into [`apply_job`] and [`write_outbox`].
//!
//! A new store method goes into the [`Store`] trait, then here: its body in
//! the module of its aggregate, its SQL in `sql.rs` (once, with `$N`
//! placeholders), a decoder in `rows.rs` if it reads a new shape, and a
//! [`Dialect`] field only if PostgreSQL needs a lock clause or the two
//! dialects really differ.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sendpromptly_core::Timestamp;
use sendpromptly_core::machine::{AttemptReport, Command, Context, EventRecord};
use sendpromptly_core::model::{EventKey, Provider, TimelineEntry};
use sendpromptly_core::retry::NextStep;
use sendpromptly_core::roles::Role;
use sendpromptly_core::wire::ReprocessBatchItem;
use sqlx::{Database, Pool, Transaction};

use super::codec::{self, clamp_limit, encode_json, insert_error, ms};
use super::group::{self, EventWrite, GroupCommitStats, GroupJob, GroupWriter, JobResult};
use super::migrations::{self, AppliedMigration, MIGRATIONS_TABLE, Migration};
use super::rows::{self, RowExt};
use super::sql::{self, Arg, Dialect, Queries, args};
use super::{
    AlertJob, ApiKey, Applied, AuditEntry, AuditFilter, ChainPage, ChainScope, DailyActivity,
    DeliveryJob, EventFilter, IdempotencyBegin, IdempotentOutcome, IdempotentRequest,
    IncidentCounts, IncidentFilter, KeyUse, NewBatchItem, NewProject, PaceReport, Page,
    PageRequest, Project, ProjectPatch, ProofLink, ProviderTapSettings, ReconcileOutcome,
    ReconcilePass, ReconcileState, ReprocessBatch, ResealReport, Session, SigningSecretRecord,
    Store, StoreResult, StoredEvent, SweepReport, TotpState, User, UserToken,
};
use crate::secrets::Keyring;

mod audit;
mod persist;
mod reads;
mod reconcile;
mod settings;
mod stats;
mod tap;
mod users;
mod work;

pub use audit::with_audit;
pub(super) use persist::{apply_job, load_by_incident, valid_api_keys, write_outbox};

/// A backend's connection.
pub(super) type Conn<B> = <<B as Backend>::Db as Database>::Connection;

/// What a database backend gives the engine.
#[async_trait]
pub(super) trait Backend: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Queries + Database<Row = Self::Row>;
    /// Its rows.
    type Row: RowExt + Send + Sync + 'static;
    /// Its SQL where it differs.
    const SQL: &'static Dialect;

    /// The pool plain reads use.
    fn reader(&self) -> &Pool<Self::Db>;
    /// A write transaction (SQLite: `BEGIN IMMEDIATE` on the writer).
    async fn write(&self) -> StoreResult<Transaction<'static, Self::Db>>;
    /// A read transaction whose statements see one snapshot.
    async fn snapshot(&self) -> StoreResult<Transaction<'static, Self::Db>>;
    /// Runs one write statement on its own; returns the rows it changed.
    async fn write_one(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error>;

    /// The plan of `query`, whose `params` parameters are all integers.
    async fn explain(&self, query: &str, params: usize) -> StoreResult<Vec<String>>;
    /// The backend's migrations, oldest first.
    const MIGRATIONS: &'static [Migration];
    /// In the migration's transaction, before anything is read: makes sure
    /// the migrations table exists (and, on PostgreSQL, takes the lock
    /// that makes instances starting together take turns).
    async fn prepare_migrations(conn: &mut Conn<Self>) -> StoreResult<()>;
    /// The health probe's empty write (see [`Store::probe_write`]).
    async fn probe_write(&self) -> StoreResult<()>;
    /// Writes the event rows and timeline entries of `writes` (set-based);
    /// returns each event's row id, in order. The outbox is
    /// [`write_outbox`]'s.
    async fn write_events(
        conn: &mut Conn<Self>,
        writes: &[EventWrite<'_>],
    ) -> StoreResult<Vec<i64>>;
    /// Before creating the event `key`: serialises with other creators of
    /// it where the backend must (PostgreSQL's advisory lock). `true` if the
    /// event must be looked up again (another creator may have committed).
    async fn lock_new_event(
        conn: &mut Conn<Self>,
        project_id: &str,
        key: &EventKey,
    ) -> StoreResult<bool>;
    /// Deletes the events `pks` with their children (retention).
    async fn delete_events(conn: &mut Conn<Self>, pks: &[i64]) -> StoreResult<()>;
    /// Runs one grouped command in a transaction of its own (when the
    /// group writer is gone).
    async fn run_alone(&self, job: GroupJob) -> JobResult;
    /// Folds analytics deltas into the rollup (see
    /// [`Store::fold_rollups`]); SQLite's triggers keep the rollup itself.
    async fn fold_rollups(&self, _max_rows: u32) -> StoreResult<super::RollupFold> {
        Ok(super::RollupFold::default())
    }
}

/// A store: a [`Backend`], the keyring that seals secrets, and the
/// group-commit writer of `apply` (see [`super::group`]).
#[derive(Clone, Debug)]
pub struct Engine<B> {
    pub(super) backend: B,
    keyring: Option<Arc<Keyring>>,
    group: GroupWriter,
}

impl<B> Engine<B> {
    /// A store over `backend` whose `apply` calls queue to `group`.
    pub(super) fn new(backend: B, group: GroupWriter) -> Self {
        Engine {
            backend,
            keyring: None,
            group,
        }
    }

    /// The same store, sealing secrets with `keyring` (required before any
    /// signing secret or idempotent response is written or read).
    #[must_use]
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
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

    fn keyring(&self) -> StoreResult<&Keyring> {
        codec::keyring(self.keyring.as_deref())
    }
}

// The engine's helpers need the backend trait, which is the store's own
// business (not part of the public interface).
#[allow(private_bounds)]
impl<B: Backend> Engine<B> {
    /// The plan of the sweeper's due-record query (for checking that it
    /// can walk the partial `events_due` index).
    pub async fn explain_sweep_query(&self) -> StoreResult<Vec<String>> {
        self.backend.explain(B::SQL.sweep_select, 2).await
    }

    /// The plan of the dispatcher's claim query.
    pub async fn explain_claim_query(&self) -> StoreResult<Vec<String>> {
        self.backend.explain(B::SQL.claim_select, 3).await
    }

    /// The rows of a plain read.
    async fn read_all<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> StoreResult<Vec<B::Row>> {
        let mut conn = self.backend.reader().acquire().await?;
        Ok(B::Db::fetch_all(&mut conn, sql, args).await?)
    }

    /// The first row of a plain read.
    async fn read_optional<'q>(
        &self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> StoreResult<Option<B::Row>> {
        let mut conn = self.backend.reader().acquire().await?;
        Ok(B::Db::fetch_optional(&mut conn, sql, args).await?)
    }

    /// The one row of a plain read (a count).
    async fn read_one(&self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<B::Row> {
        Ok(self
            .read_optional(sql, args)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?)
    }

    /// Runs one `apply`/`apply_to_incident` through the group writer, or in
    /// a transaction of its own if the writer task is gone.
    async fn apply_grouped(&self, job: GroupJob) -> StoreResult<Applied> {
        group::applied(self.run_grouped(job).await)
    }

    /// [`Engine::apply_grouped`] for a job of any kind.
    async fn run_grouped(&self, job: GroupJob) -> JobResult {
        match self.group.submit(job).await {
            Ok(result) => result,
            Err(job) => self.backend.run_alone(job).await,
        }
    }
}

/// The migrations recorded as applied (in the migration's transaction).
async fn applied_migrations<B: Backend>(conn: &mut Conn<B>) -> StoreResult<Vec<AppliedMigration>> {
    let sql = format!("SELECT version, name FROM {MIGRATIONS_TABLE} ORDER BY version");
    let rows = B::Db::fetch_all(conn, &sql, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(AppliedMigration {
                version: row.int("version")?,
                name: row.text("name")?,
            })
        })
        .collect()
}

/// Records `migration` as applied now.
async fn record_migration<B: Backend>(
    conn: &mut Conn<B>,
    migration: &Migration,
) -> StoreResult<()> {
    let sql =
        format!("INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES ($1, $2, $3)");
    let now = ms(Timestamp::from_datetime(chrono::Utc::now()));
    B::Db::execute(conn, &sql, args![migration.version, migration.name, now]).await?;
    migrations::log_applied(migration);
    Ok(())
}

/// The one row of `sql` in a transaction.
pub(super) async fn fetch_one<B: Backend>(
    conn: &mut Conn<B>,
    sql: &str,
    args: &[Arg<'_>],
) -> StoreResult<B::Row> {
    Ok(B::Db::fetch_optional(conn, sql, args)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?)
}

#[async_trait]
impl<B: Backend> Store for Engine<B> {
    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.backend.write().await?;
        B::prepare_migrations(&mut tx).await?;
        let applied = applied_migrations::<B>(&mut tx).await?;
        for migration in migrations::plan(B::MIGRATIONS, &applied)? {
            B::Db::execute_script(&mut tx, migration.sql).await?;
            record_migration::<B>(&mut tx, migration).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read_all("SELECT 1", &[]).await.map(drop)
    }

    async fn probe_write(&self) -> StoreResult<()> {
        self.backend.probe_write().await
    }

    fn writer_stall(&self) -> Option<Duration> {
        self.group.stalled_for()
    }

    async fn create_project(&self, project: NewProject) -> StoreResult<Project> {
        settings::create_project(self, project).await
    }

    async fn project(&self, project_id: &str) -> StoreResult<Option<Project>> {
        self.read_optional(sql::PROJECT_BY_ID, args![project_id])
            .await?
            .as_ref()
            .map(rows::project)
            .transpose()
    }

    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>> {
        self.read_optional(sql::PROJECT_BY_NAME, args![name])
            .await?
            .as_ref()
            .map(rows::project)
            .transpose()
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        let rows = self.read_all(sql::PROJECTS, &[]).await?;
        rows.iter().map(rows::project).collect()
    }

    async fn update_project(&self, project_id: &str, patch: ProjectPatch) -> StoreResult<Project> {
        settings::update_project(self, project_id, patch).await
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let revoked_at = key.revoked_at.map(ms);
        let mut tx = self.backend.write().await?;
        let row = args![
            &key.id,
            &key.project_id,
            &key.key_hash,
            &key.prefix,
            &key.name,
            ms(key.created_at),
            revoked_at,
            i64::from(key.scopes.bits())
        ];
        B::Db::execute(&mut tx, sql::INSERT_API_KEY, row)
            .await
            .map_err(|e| {
                insert_error(
                    e,
                    "an API key with this id or hash already exists",
                    "project",
                )
            })?;
        audit::write_pending::<B>(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_key_uses(&self, uses: &[KeyUse]) -> StoreResult<()> {
        audit::record_key_uses(self, uses).await
    }

    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        audit::insert_audit(self, entry).await
    }

    async fn audit_page(
        &self,
        project_id: &str,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        audit::audit_page(self, project_id, filter, page).await
    }

    async fn purge_audit(&self, before: Timestamp) -> StoreResult<u64> {
        audit::purge_audit(self, before).await
    }

    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKey>> {
        self.read_optional(sql::API_KEY_BY_HASH, args![key_hash])
            .await?
            .as_ref()
            .map(rows::api_key)
            .transpose()
    }

    async fn list_api_keys(&self, project_id: &str) -> StoreResult<Vec<ApiKey>> {
        let rows = self.read_all(sql::API_KEYS, args![project_id]).await?;
        rows.iter().map(rows::api_key).collect()
    }

    async fn revoke_api_key(
        &self,
        project_id: &str,
        key_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        settings::revoke_api_key(self, project_id, key_id, now).await
    }

    async fn add_signing_secret(
        &self,
        project_id: &str,
        secret: &str,
        now: Timestamp,
        older_expire_at: Timestamp,
    ) -> StoreResult<()> {
        let sealed = codec::seal_signing_secret(self.keyring()?, project_id, secret);
        let mut tx = self.backend.write().await?;
        let expire = args![ms(older_expire_at), project_id];
        B::Db::execute(&mut tx, sql::EXPIRE_SIGNING_SECRETS, expire).await?;
        B::Db::execute(
            &mut tx,
            sql::INSERT_SIGNING_SECRET,
            args![project_id, &sealed, ms(now)],
        )
        .await
        .map_err(|e| insert_error(e, "this signing secret already exists", "project"))?;
        audit::write_pending::<B>(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn signing_secrets(
        &self,
        project_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<SigningSecretRecord>> {
        let keyring = self.keyring()?;
        self.read_all(sql::SIGNING_SECRETS, args![project_id, ms(now)])
            .await?
            .iter()
            .map(|row| {
                Ok(SigningSecretRecord {
                    id: row.int("id")?,
                    secret: codec::open_signing_secret(keyring, project_id, &row.text("secret")?)?,
                    created_at: codec::ts(row.int("created_at")?),
                    expires_at: row.opt_int("expires_at")?.map(codec::ts),
                })
            })
            .collect()
    }

    async fn stored_signing_secrets(&self, project_id: &str) -> StoreResult<Vec<String>> {
        self.read_all(sql::STORED_SIGNING_SECRETS, args![project_id])
            .await?
            .iter()
            .map(|row| row.text("secret"))
            .collect()
    }

    async fn reseal_signing_secrets(&self) -> StoreResult<ResealReport> {
        settings::reseal_signing_secrets(self, self.keyring()?).await
    }

    async fn create_user(&self, user: User) -> StoreResult<()> {
        let email = user.email.trim().to_lowercase();
        let row = args![
            &user.id,
            &email,
            &user.password_hash,
            ms(user.created_at),
            user.owner
        ];
        self.backend
            .write_one(sql::INSERT_USER, row)
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
        let email = email.trim().to_lowercase();
        self.read_optional(sql::USER_BY_EMAIL, args![&email])
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let row = self.read_one(sql::COUNT_USERS, &[]).await?;
        Ok(codec::to_u64(row.int("n")?))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = self.read_all(sql::USERS, &[]).await?;
        rows.iter().map(rows::user).collect()
    }

    async fn create_session(&self, session: Session) -> StoreResult<()> {
        settings::create_session(self, session).await
    }

    async fn session_user(&self, token_hash: &[u8], now: Timestamp) -> StoreResult<Option<User>> {
        self.read_optional(sql::SESSION_USER, args![token_hash, ms(now), false])
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn delete_session(&self, token_hash: &[u8]) -> StoreResult<()> {
        self.backend
            .write_one(sql::DELETE_SESSION, args![token_hash])
            .await?;
        Ok(())
    }

    async fn user_by_id(&self, user_id: &str) -> StoreResult<Option<User>> {
        self.read_optional(sql::USER_BY_ID, args![user_id])
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn pending_session_user(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<Option<User>> {
        self.read_optional(sql::SESSION_USER, args![token_hash, ms(now), true])
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn set_user_password(&self, user_id: &str, password_hash: &str) -> StoreResult<()> {
        users::set_user_password(self, user_id, password_hash).await
    }

    async fn set_user_disabled(&self, user_id: &str, at: Option<Timestamp>) -> StoreResult<()> {
        users::set_user_disabled(self, user_id, at).await
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<()> {
        users::delete_user(self, user_id).await
    }

    async fn set_member(
        &self,
        project_id: &str,
        user_id: &str,
        role: Option<Role>,
        now: Timestamp,
    ) -> StoreResult<()> {
        users::set_member(self, project_id, user_id, role, now).await
    }

    async fn memberships(&self, user_id: &str) -> StoreResult<Vec<(String, Role)>> {
        self.read_all(sql::MEMBERSHIPS, args![user_id])
            .await?
            .iter()
            .map(|row| Ok((row.text("project_id")?, users::role(row)?)))
            .collect()
    }

    async fn members(&self, project_id: &str) -> StoreResult<Vec<(User, Role)>> {
        self.read_all(sql::MEMBERS, args![project_id])
            .await?
            .iter()
            .map(|row| Ok((rows::user(row)?, users::role(row)?)))
            .collect()
    }

    async fn create_user_token(&self, token: UserToken) -> StoreResult<()> {
        users::create_user_token(self, token).await
    }

    async fn take_user_token(
        &self,
        kind: &str,
        token_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<Option<String>> {
        users::take_user_token(self, kind, token_hash, now).await
    }

    async fn user_totp(&self, user_id: &str) -> StoreResult<Option<TotpState>> {
        users::user_totp(self, user_id).await
    }

    async fn set_user_totp(
        &self,
        user_id: &str,
        secret: Option<&[u8]>,
        enabled: bool,
    ) -> StoreResult<()> {
        users::set_user_totp(self, user_id, secret, enabled).await
    }

    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let changed = self
            .backend
            .write_one(sql::CLAIM_TOTP_STEP, args![user_id, step])
            .await?;
        Ok(changed == 1)
    }

    async fn replace_recovery_codes(&self, user_id: &str, hashes: Vec<Vec<u8>>) -> StoreResult<()> {
        users::replace_recovery_codes(self, user_id, hashes).await
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool> {
        let changed = self
            .backend
            .write_one(sql::USE_RECOVERY_CODE, args![user_id, code_hash, ms(now)])
            .await?;
        Ok(changed == 1)
    }

    async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u64> {
        users::count(
            &self
                .read_one(sql::RECOVERY_CODES_LEFT, args![user_id])
                .await?,
        )
    }

    async fn project_requires_2fa(&self, project_id: &str) -> StoreResult<bool> {
        match self
            .read_optional(sql::PROJECT_REQUIRES_2FA, args![project_id])
            .await?
        {
            Some(row) => row.boolean("require_2fa"),
            None => Ok(false),
        }
    }

    async fn set_project_requires_2fa(&self, project_id: &str, required: bool) -> StoreResult<()> {
        self.backend
            .write_one(sql::SET_PROJECT_REQUIRES_2FA, args![project_id, required])
            .await
            .map_err(|e| insert_error(e, "policy exists", "project"))?;
        Ok(())
    }

    async fn incident_counts(&self, project_id: &str) -> StoreResult<IncidentCounts> {
        let rows = self
            .read_all(sql::INCIDENT_COUNTS, args![project_id])
            .await?;
        rows::incident_counts(&rows)
    }

    async fn daily_activity(
        &self,
        project_id: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<DailyActivity>> {
        let from = ms(since).div_euclid(codec::MILLIS_PER_DAY) * codec::MILLIS_PER_DAY;
        let params = args![project_id, from, codec::MILLIS_PER_DAY];
        let rows = self.read_all(B::SQL.daily_activity, params).await?;
        rows.iter().map(rows::daily_activity).collect()
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
        let job = GroupJob::for_event(project_id, Some(key_id), key, command, ctx);
        self.apply_grouped(job).await
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
        let keyring = self.keyring.as_ref();
        let job = GroupJob::idempotent(project_id, key_id, key, command, ctx, request, keyring)?;
        self.run_grouped(job).await
    }

    fn group_commit_stats(&self) -> Option<GroupCommitStats> {
        Some(self.group.stats())
    }

    async fn apply_to_incident(
        &self,
        project_id: &str,
        incident_id: &str,
        command: Command,
        ctx: Context,
    ) -> StoreResult<Applied> {
        let job = GroupJob::for_incident(project_id, incident_id, command, ctx);
        self.apply_grouped(job).await
    }

    async fn append_incident_entry(
        &self,
        project_id: &str,
        incident_id: &str,
        entry: TimelineEntry,
    ) -> StoreResult<()> {
        let mut tx = self.backend.write().await?;
        persist::append_entry::<B>(&mut tx, project_id, incident_id, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn event(&self, project_id: &str, key: &EventKey) -> StoreResult<Option<StoredEvent>> {
        let params = args![project_id, key.provider.as_str(), &key.event_id];
        reads::stored_event(self, sql::LOAD_BY_KEY, params).await
    }

    async fn incident(
        &self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Option<StoredEvent>> {
        let params = args![incident_id, project_id];
        reads::stored_event(self, sql::LOAD_BY_INCIDENT, params).await
    }

    async fn search_events(
        &self,
        project_id: &str,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<EventRecord>> {
        reads::search_events(self, project_id, filter, page).await
    }

    async fn list_incidents(
        &self,
        project_id: &str,
        filter: &IncidentFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<EventRecord>> {
        reads::list_incidents(self, project_id, filter, page).await
    }

    async fn export_incidents(
        &self,
        project_id: &str,
        filter: &IncidentFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> StoreResult<Page<StoredEvent>> {
        reads::export_incidents(self, project_id, filter, cursor, limit).await
    }

    async fn timeline_chains(
        &self,
        scope: ChainScope<'_>,
        after_pk: i64,
        limit: u32,
    ) -> StoreResult<ChainPage> {
        reads::timeline_chains(self, scope, after_pk, limit).await
    }

    async fn sweep_due(&self, now: Timestamp, limit: u32) -> StoreResult<SweepReport> {
        work::sweep_due(self, now, limit).await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryJob>> {
        work::claim_deliveries(self, now, lease, limit).await
    }

    async fn finish_delivery_attempt(
        &self,
        job: &DeliveryJob,
        report: AttemptReport,
        next: NextStep,
        now: Timestamp,
    ) -> StoreResult<Applied> {
        work::finish_delivery_attempt(self, job, report, next, now).await
    }

    async fn pending_deliveries(&self) -> StoreResult<u64> {
        let row = self.read_one(sql::PENDING_DELIVERIES, &[]).await?;
        Ok(codec::to_u64(row.int("n")?))
    }

    async fn claim_alerts(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
        window_seconds: i64,
    ) -> StoreResult<Vec<AlertJob>> {
        work::claim_alerts(self, now, lease, limit, window_seconds).await
    }

    async fn finish_alert_attempt(
        &self,
        job: &AlertJob,
        entry: &TimelineEntry,
        next: NextStep,
        now: Timestamp,
    ) -> StoreResult<bool> {
        work::finish_alert_attempt(self, job, entry, next, now).await
    }

    async fn pending_alerts(&self) -> StoreResult<u64> {
        let row = self.read_one(sql::PENDING_ALERTS, &[]).await?;
        Ok(codec::to_u64(row.int("n")?))
    }

    async fn create_proof_link(&self, link: ProofLink) -> StoreResult<()> {
        settings::create_proof_link(self, link).await
    }

    async fn proof_link_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<ProofLink>> {
        self.read_optional(sql::PROOF_LINK_BY_TOKEN_HASH, args![token_hash])
            .await?
            .as_ref()
            .map(rows::proof_link)
            .transpose()
    }

    async fn proof_link(&self, project_id: &str, link_id: &str) -> StoreResult<Option<ProofLink>> {
        self.read_optional(sql::PROOF_LINK, args![project_id, link_id])
            .await?
            .as_ref()
            .map(rows::proof_link)
            .transpose()
    }

    async fn proof_links_for_incident(
        &self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Vec<ProofLink>> {
        let params = args![project_id, incident_id];
        let rows = self.read_all(sql::PROOF_LINKS_FOR_INCIDENT, params).await?;
        rows.iter().map(rows::proof_link).collect()
    }

    async fn revoke_proof_link(
        &self,
        project_id: &str,
        link_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let params = args![ms(now), project_id, link_id];
        let mut tx = self.backend.write().await?;
        let revoked = B::Db::execute(&mut tx, sql::REVOKE_PROOF_LINK, params).await? == 1;
        if revoked {
            audit::write_pending::<B>(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn idempotency_begin(
        &self,
        project_id: &str,
        key: &str,
        request_hash: &[u8],
        now: Timestamp,
        lock_for: Duration,
    ) -> StoreResult<IdempotencyBegin> {
        settings::idempotency_begin(self, project_id, key, request_hash, now, lock_for).await
    }

    async fn idempotency_complete(
        &self,
        project_id: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> StoreResult<()> {
        let sealed = codec::seal_response(self.keyring()?, project_id, key, body);
        let params = args![i64::from(status), &sealed, project_id, key];
        self.backend
            .write_one(sql::COMPLETE_IDEMPOTENCY_KEY, params)
            .await?;
        Ok(())
    }

    async fn idempotency_abandon(&self, project_id: &str, key: &str) -> StoreResult<()> {
        let params = args![project_id, key];
        self.backend
            .write_one(sql::ABANDON_IDEMPOTENCY_KEY, params)
            .await?;
        Ok(())
    }

    async fn purge_idempotency_keys(&self, before: Timestamp) -> StoreResult<u64> {
        let params = args![ms(before)];
        Ok(self
            .backend
            .write_one(sql::PURGE_IDEMPOTENCY_KEYS, params)
            .await?)
    }

    async fn purge_resolved_history(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        work::purge_resolved_history(self, before, limit).await
    }

    async fn stored_idempotency_response(
        &self,
        project_id: &str,
        key: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            match self
                .read_optional(sql::STORED_IDEMPOTENCY_RESPONSE, args![project_id, key])
                .await?
            {
                Some(row) => row.opt_bytes("response")?,
                None => None,
            },
        )
    }

    async fn create_reprocess_batch(
        &self,
        batch: &ReprocessBatch,
        items: &[NewBatchItem],
    ) -> StoreResult<()> {
        let mut tx = self.backend.write().await?;
        let selection = encode_json(&batch.selection, "batch selection")?;
        let row = args![
            &batch.id,
            &batch.project_id,
            batch.rate_per_second,
            i64::from(batch.concurrency),
            &batch.started_by,
            &batch.note,
            &selection,
            ms(batch.created_at)
        ];
        B::Db::execute(&mut tx, sql::INSERT_BATCH, row)
            .await
            .map_err(|e| insert_error(e, "this batch id is already used", "project"))?;
        for (position, item) in items.iter().enumerate() {
            let state = if item.skipped.is_some() {
                "skipped"
            } else {
                "pending"
            };
            let row = args![
                &batch.id,
                i64::try_from(position).unwrap_or(i64::MAX),
                &item.incident_id,
                &item.event_type,
                &item.subject,
                state,
                &item.skipped
            ];
            B::Db::execute(&mut tx, sql::INSERT_BATCH_ITEM, row).await?;
        }
        audit::write_pending::<B>(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reprocess_batch(
        &self,
        project_id: &str,
        batch_id: &str,
    ) -> StoreResult<Option<ReprocessBatch>> {
        let mut conn = self.backend.reader().acquire().await?;
        reads::load_batch::<B>(&mut conn, project_id, batch_id).await
    }

    async fn reprocess_batch_items(
        &self,
        project_id: &str,
        batch_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<ReprocessBatchItem>> {
        let params = args![project_id, batch_id, i64::from(limit)];
        let rows = self.read_all(sql::BATCH_ITEMS, params).await?;
        rows.iter().map(rows::batch_item).collect()
    }

    async fn cancel_reprocess_batch(
        &self,
        project_id: &str,
        batch_id: &str,
        now: Timestamp,
    ) -> StoreResult<Option<ReprocessBatch>> {
        let mut tx = self.backend.write().await?;
        let params = args![ms(now), batch_id, project_id];
        if B::Db::execute(&mut tx, sql::CANCEL_BATCH, params).await? > 0 {
            B::Db::execute(&mut tx, sql::CANCEL_BATCH_ITEMS, args![batch_id]).await?;
            audit::write_pending::<B>(&mut tx).await?;
        }
        let batch = reads::load_batch::<B>(&mut tx, project_id, batch_id).await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn pace_reprocess_batches(
        &self,
        now: Timestamp,
        limit_batches: u32,
    ) -> StoreResult<PaceReport> {
        work::pace_reprocess_batches(self, now, limit_batches).await
    }

    async fn slow_reprocess_batch(&self, reprocess_id: &str, until: Timestamp) -> StoreResult<()> {
        let mut tx = self.backend.write().await?;
        B::Db::execute(&mut tx, sql::SLOW_BATCH, args![ms(until), reprocess_id]).await?;
        tx.commit().await?;
        Ok(())
    }
    async fn provider_tap_settings(
        &self,
        project_id: &str,
    ) -> StoreResult<Option<ProviderTapSettings>> {
        tap::provider_tap_settings(self, self.keyring()?, project_id).await
    }

    async fn put_provider_tap_settings(
        &self,
        project_id: &str,
        settings: &ProviderTapSettings,
    ) -> StoreResult<()> {
        tap::put_provider_tap_settings(self, self.keyring()?, project_id, settings).await
    }

    async fn stripe_restricted_key(&self, project_id: &str) -> StoreResult<Option<String>> {
        tap::stripe_restricted_key(self, self.keyring()?, project_id).await
    }

    async fn event_by_fingerprint(
        &self,
        project_id: &str,
        provider: Provider,
        fingerprint: &str,
    ) -> StoreResult<Option<EventKey>> {
        tap::event_by_fingerprint(self, project_id, provider, fingerprint).await
    }

    async fn stats_rows(
        &self,
        project_id: &str,
        from: Timestamp,
        to: Timestamp,
        event_type: Option<&str>,
    ) -> StoreResult<Vec<super::StatsRow>> {
        stats::stats_rows(self, project_id, from, to, event_type).await
    }

    async fn fold_rollups(&self, max_rows: u32) -> StoreResult<super::RollupFold> {
        self.backend.fold_rollups(max_rows).await
    }

    async fn slo_objectives(
        &self,
        project_id: &str,
    ) -> StoreResult<Vec<sendpromptly_core::wire::SloObjective>> {
        stats::slo_objectives(self, project_id).await
    }

    async fn all_slo_objectives(
        &self,
    ) -> StoreResult<Vec<(String, sendpromptly_core::wire::SloObjective)>> {
        stats::all_slo_objectives(self).await
    }

    async fn put_slo_objectives(
        &self,
        project_id: &str,
        objectives: &[sendpromptly_core::wire::SloObjective],
    ) -> StoreResult<()> {
        stats::put_slo_objectives(self, project_id, objectives).await
    }

    async fn slo_counts(
        &self,
        project_id: &str,
        event_type: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<(u64, u64)> {
        stats::slo_counts(self, project_id, event_type, from, to).await
    }

    async fn start_slo_episode(
        &self,
        project_id: &str,
        facts: &sendpromptly_core::alert::SloFacts,
        now: Timestamp,
    ) -> StoreResult<bool> {
        stats::start_slo_episode(self, project_id, facts, now).await
    }

    async fn end_slo_episode(
        &self,
        project_id: &str,
        event_type: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        stats::end_slo_episode(self, project_id, event_type, now).await
    }

    async fn reconcile_state(&self, project_id: &str) -> StoreResult<Option<ReconcileState>> {
        reconcile::state(self, project_id).await
    }

    async fn reconcile_states(&self) -> StoreResult<Vec<ReconcileState>> {
        reconcile::states(self).await
    }

    async fn take_reconcile_lease(
        &self,
        project_id: &str,
        owner: &str,
        now: Timestamp,
        lease: Duration,
    ) -> StoreResult<Option<ReconcileState>> {
        reconcile::take_lease(self, project_id, owner, now, lease).await
    }

    async fn save_reconcile_progress(
        &self,
        project_id: &str,
        owner: &str,
        pass: &ReconcilePass,
        fed: u64,
        now: Timestamp,
        lease: Duration,
    ) -> StoreResult<bool> {
        reconcile::save_progress(self, project_id, owner, pass, fed, now, lease).await
    }

    async fn finish_reconcile(
        &self,
        project_id: &str,
        owner: &str,
        now: Timestamp,
        outcome: &ReconcileOutcome,
    ) -> StoreResult<bool> {
        reconcile::finish(self, project_id, owner, now, outcome).await
    }
}

/// The page of `rows` (fetched one past `limit`) and the cursor after it.
fn page<R, C>(
    rows: &[R],
    limit: u32,
    mut decode: impl FnMut(&R) -> StoreResult<(EventRecord, C)>,
    cursor: impl Fn(C) -> String,
) -> StoreResult<Page<EventRecord>> {
    let limit = clamp_limit(limit) as usize;
    let mut data = Vec::with_capacity(rows.len().min(limit));
    let mut last = None;
    for row in rows.iter().take(limit) {
        let (record, at) = decode(row)?;
        data.push(record);
        last = Some(at);
    }
    let next_cursor = if rows.len() > limit {
        last.map(cursor)
    } else {
        None
    };
    Ok(Page { data, next_cursor })
}
