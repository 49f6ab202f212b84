//! Storage: the one [`Store`] trait every backend implements, and the types
//! that cross it (in `types`).
//!
//! HTTP handlers, the sweeper and the dispatcher reach the database only
//! through this trait. Its contract is pinned by `conformance`, a suite
//! every implementation runs (SQLite here; PostgreSQL runs the very same).
//!
//! Both backends are one engine (`engine`, see [`Engine`]): every method is
//! written once over a small backend trait, with its SQL in `sql` and its
//! row decoding in `rows`; [`sqlite`] and [`postgres`] keep only their
//! connections, their dialect and their side of group commit (`group`).
//!
//! Each method is atomic: one transaction (`apply`, `apply_with_key` and
//! `apply_to_incident` share group-commit transactions, see `group`, and
//! are answered only after the commit). Event changes go through
//! [`Store::apply`], which loads the record, runs the pure state machine of
//! `sendpromptly-core`, and writes the record, its new timeline entries and
//! the outbox rows its effects ask for, atomically.

use std::time::Duration;

use async_trait::async_trait;
use sendpromptly_core::Timestamp;
use sendpromptly_core::machine::{AttemptReport, Command, Context, EventRecord, TransitionError};
use sendpromptly_core::model::{EventKey, Provider, TimelineEntry};
use sendpromptly_core::retry::NextStep;
use sendpromptly_core::roles::Role;
use sendpromptly_core::wire::{ReprocessBatchItem, SloObjective};

mod codec;
mod engine;
pub use engine::Engine;
pub use engine::with_audit;
/// The suite every engine runs (compiled for tests and `test-support` only).
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod group;
mod idempotency;
mod rows;
mod sql;
pub use group::GroupCommitStats;
pub mod migrations;
/// The page cursors' parsers, for the fuzz targets (`fuzz/`).
#[cfg(feature = "test-support")]
pub mod cursors {
    /// An events page cursor's position (`NotFound("cursor")` if unreadable).
    pub fn parse_events(cursor: &str) -> super::StoreResult<i64> {
        super::codec::parse_events_cursor(cursor)
    }
    /// The events page cursor of a position.
    pub fn events(pk: i64) -> String {
        super::codec::events_cursor(pk)
    }
    /// An incidents page cursor's position (opened at, incident id).
    pub fn parse_incidents(cursor: &str) -> super::StoreResult<(i64, String)> {
        super::codec::parse_incidents_cursor(cursor)
    }
    /// The incidents page cursor of a position.
    pub fn incidents(opened_at: i64, id: &str) -> String {
        super::codec::incidents_cursor(opened_at, id)
    }
}
pub mod pool;
pub mod postgres;
pub mod sqlite;
mod types;
pub use types::*;

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state machine refused the command (maps to 409 / 404 at the API).
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A uniqueness rule was broken (e.g. a project name that exists).
    #[error("{0}")]
    Conflict(String),
    /// The object does not exist (in this project).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The API key a write was made with is revoked, unknown, or another
    /// project's ([`Store::apply_with_key`]).
    #[error("the API key is revoked or not this project's")]
    KeyRevoked,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database holds migrations newer than this binary knows.
    #[error("the database was migrated by a newer SendPromptly ({0}); upgrade this binary")]
    MigrationsNewerThanBinary(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A secret could not be sealed or opened (no key, wrong key).
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// Another event of the project already holds this provider copy's
    /// fingerprint (the same change under another event id): link to it.
    #[error("another event already has a provider copy with this fingerprint")]
    FingerprintTaken,
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// The storage backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations; errors if the database is newer than this binary.
    async fn migrate(&self) -> StoreResult<()>;
    /// Checks the database answers (for `/healthz`).
    async fn ping(&self) -> StoreResult<()>;
    /// Opens and commits an empty write transaction on the path writes take
    /// (the health probe: on SQLite it waits for the one writer connection
    /// and the database's write lock).
    async fn probe_write(&self) -> StoreResult<()>;
    /// How long the group-commit writer has been running its current group,
    /// if it is running one (`None`: idle, or the store has none).
    fn writer_stall(&self) -> Option<Duration> {
        None
    }

    /// Creates a project (its name must be unique).
    async fn create_project(&self, project: NewProject) -> StoreResult<Project>;
    /// A project by id.
    async fn project(&self, project_id: &str) -> StoreResult<Option<Project>>;
    /// A project by name.
    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>>;
    /// Every project, oldest first.
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;
    /// Changes a project's settings.
    async fn update_project(&self, project_id: &str, patch: ProjectPatch) -> StoreResult<Project>;

    /// Stores a new API key (its hash).
    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()>;
    /// The key with this hash, revoked or not.
    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKey>>;
    /// A project's keys, newest first.
    async fn list_api_keys(&self, project_id: &str) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; false if the project has no such key.
    async fn revoke_api_key(
        &self,
        project_id: &str,
        key_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Records keys' uses (last time and endpoint class; classes add up).
    async fn record_key_uses(&self, uses: &[KeyUse]) -> StoreResult<()>;
    /// Appends an audit entry on its own (for a change that is not one
    /// store write; an audited store write records its entry itself, see
    /// [`with_audit`]).
    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// A page of a project's audit log, newest first.
    async fn audit_page(
        &self,
        project_id: &str,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;
    /// Deletes audit entries older than `before`; returns how many.
    async fn purge_audit(&self, before: Timestamp) -> StoreResult<u64>;

    /// Adds a signing secret; every older secret without an expiry expires at `older_expire_at`.
    async fn add_signing_secret(
        &self,
        project_id: &str,
        secret: &str,
        now: Timestamp,
        older_expire_at: Timestamp,
    ) -> StoreResult<()>;
    /// The secrets that still sign at `now`, newest first.
    async fn signing_secrets(
        &self,
        project_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<SigningSecretRecord>>;
    /// The signing-secret column of a project exactly as stored (sealed),
    /// oldest first: for audits and the conformance suite.
    async fn stored_signing_secrets(&self, project_id: &str) -> StoreResult<Vec<String>>;
    /// Seals with the current key every signing secret stored in plaintext
    /// (written before encryption at rest) or sealed with a previous key,
    /// after checking that every stored one opens. Changes nothing and fails
    /// with [`StoreError::Secret`] when one does not (a wrong or missing key).
    async fn reseal_signing_secrets(&self) -> StoreResult<ResealReport>;

    /// Adds a console user (emails are unique, compared lower-case).
    async fn create_user(&self, user: User) -> StoreResult<()>;
    /// A console user by email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// How many console users exist.
    async fn count_users(&self) -> StoreResult<u64>;
    /// Every console user, oldest first.
    async fn list_users(&self) -> StoreResult<Vec<User>>;

    /// Stores a new console session. Also deletes every session that had
    /// expired at `session.created_at` (so expired rows never pile up).
    /// Fails with `NotFound("user")` if the user does not exist.
    async fn create_session(&self, session: Session) -> StoreResult<()>;
    /// The user of the session with this token hash, if the session exists
    /// and has not expired at `now` (`expires_at > now`).
    async fn session_user(&self, token_hash: &[u8], now: Timestamp) -> StoreResult<Option<User>>;
    /// Deletes a session (sign-out); deleting an unknown session is not an error.
    async fn delete_session(&self, token_hash: &[u8]) -> StoreResult<()>;

    /// A console user by `usr_` id.
    async fn user_by_id(&self, user_id: &str) -> StoreResult<Option<User>>;
    /// The user of a session still waiting for its TOTP code (a
    /// [`Session::pending_2fa`] one), if it has not expired at `now`.
    async fn pending_session_user(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<Option<User>>;
    /// Sets a user's password hash and ends every session of the user.
    async fn set_user_password(&self, user_id: &str, password_hash: &str) -> StoreResult<()>;
    /// Disables (`Some(at)`: every session of the user ends at once) or
    /// enables (`None`) a user. `NotFound("user")` if there is none.
    async fn set_user_disabled(&self, user_id: &str, at: Option<Timestamp>) -> StoreResult<()>;
    /// Deletes a user with their sessions, memberships, links and codes.
    async fn delete_user(&self, user_id: &str) -> StoreResult<()>;
    /// Gives `user_id` `role` in a project (`None` removes them).
    async fn set_member(
        &self,
        project_id: &str,
        user_id: &str,
        role: Option<Role>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The projects a user is a member of and their role in each.
    async fn memberships(&self, user_id: &str) -> StoreResult<Vec<(String, Role)>>;
    /// A project's members and their roles, oldest user first.
    async fn members(&self, project_id: &str) -> StoreResult<Vec<(User, Role)>>;
    /// Stores a one-time invitation or reset link (only its hash).
    async fn create_user_token(&self, token: UserToken) -> StoreResult<()>;
    /// Uses a one-time link: marks it used and answers its user id, once,
    /// if it is of `kind` and has not expired at `now`.
    async fn take_user_token(
        &self,
        kind: &str,
        token_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<Option<String>>;
    /// A user's TOTP secret (opened with the keyring), whether a code
    /// confirmed it, and the last accepted step.
    async fn user_totp(&self, user_id: &str) -> StoreResult<Option<TotpState>>;
    /// Stores (sealed) or clears a user's TOTP secret; resets the last step.
    async fn set_user_totp(
        &self,
        user_id: &str,
        secret: Option<&[u8]>,
        enabled: bool,
    ) -> StoreResult<()>;
    /// Records that `step`'s code was used: `false` if that step or a later
    /// one was used already (a replay).
    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    /// Replaces a user's recovery codes with these SHA-256 hashes.
    async fn replace_recovery_codes(&self, user_id: &str, hashes: Vec<Vec<u8>>) -> StoreResult<()>;
    /// Uses a recovery code once: `false` if unknown or used already.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// How many of a user's recovery codes are unused.
    async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u64>;
    /// Whether a project's members must use TOTP.
    async fn project_requires_2fa(&self, project_id: &str) -> StoreResult<bool>;
    /// Sets whether a project's members must use TOTP.
    async fn set_project_requires_2fa(&self, project_id: &str, required: bool) -> StoreResult<()>;

    /// How many of the project's incidents are in each state.
    async fn incident_counts(&self, project_id: &str) -> StoreResult<IncidentCounts>;
    /// The project's activity per UTC day and event type from the day of
    /// `since` (inclusive) on: see [`DailyActivity`] for what is counted.
    /// Only (day, event type) pairs with something to count are returned,
    /// ordered by day, then event type (`None` first).
    async fn daily_activity(
        &self,
        project_id: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<DailyActivity>>;

    /// Applies a command to an event atomically and durably (see the module docs).
    ///
    /// Receipts and results create the event if needed; other commands on an
    /// unknown event fail with [`TransitionError::UnknownEvent`].
    async fn apply(
        &self,
        project_id: &str,
        key: &EventKey,
        command: Command,
        ctx: Context,
    ) -> StoreResult<Applied>;
    /// [`Store::apply`] on behalf of the API key `key_id`: in the same
    /// transaction, [`StoreError::KeyRevoked`] unless that key is
    /// `project_id`'s and not revoked. A caller that authenticated the key
    /// from a cache therefore never commits a write made with a key revoked
    /// before it.
    async fn apply_with_key(
        &self,
        project_id: &str,
        key_id: &str,
        key: &EventKey,
        command: Command,
        ctx: Context,
    ) -> StoreResult<Applied>;
    /// [`Store::apply_with_key`] guarded by an idempotency key whose record
    /// is read and written in the command's own transaction (group commit
    /// included): a key seen before replays its remembered response (or is
    /// a mismatch) without running the command; otherwise the command runs
    /// and `request.respond`'s answer to its outcome (success or refusal) is
    /// committed with it. So a crash or a hang-up can neither run the
    /// command twice nor leave the key half-done. `Err` is the command's
    /// own failure (remembered if `respond` says so).
    async fn apply_idempotent(
        &self,
        project_id: &str,
        key_id: &str,
        key: &EventKey,
        command: Command,
        ctx: Context,
        request: IdempotentRequest,
    ) -> StoreResult<IdempotentOutcome>;
    /// What the group-commit writer has done since the store was opened,
    /// for `/metrics` (`None` for a store without one).
    fn group_commit_stats(&self) -> Option<GroupCommitStats> {
        None
    }
    /// Applies a command to the event of an incident.
    async fn apply_to_incident(
        &self,
        project_id: &str,
        incident_id: &str,
        command: Command,
        ctx: Context,
    ) -> StoreResult<Applied>;
    /// Appends a timeline entry for a human action that changes no state (e.g. a proof link).
    async fn append_incident_entry(
        &self,
        project_id: &str,
        incident_id: &str,
        entry: TimelineEntry,
    ) -> StoreResult<()>;

    /// One event with its timeline.
    async fn event(&self, project_id: &str, key: &EventKey) -> StoreResult<Option<StoredEvent>>;
    /// The event of an incident, with its timeline.
    async fn incident(
        &self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Option<StoredEvent>>;
    /// Events matching `filter`, newest first.
    ///
    /// A `cursor` this store did not hand out (undecodable or for another
    /// list) fails with `StoreError::NotFound("cursor")` (the API answers
    /// 422 with `param: cursor`).
    async fn search_events(
        &self,
        project_id: &str,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<EventRecord>>;
    /// Incidents matching `filter`, most recently opened first (records carry the incident).
    ///
    /// An unreadable `cursor` fails with `StoreError::NotFound("cursor")`,
    /// as for [`Store::search_events`].
    async fn list_incidents(
        &self,
        project_id: &str,
        filter: &IncidentFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<EventRecord>>;
    /// The incidents [`Store::list_incidents`] lists, with their timelines,
    /// newest first, `limit` (up to 1000) a page: the export's read.
    async fn export_incidents(
        &self,
        project_id: &str,
        filter: &IncidentFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> StoreResult<Page<StoredEvent>>;
    /// Up to `limit` events of `scope` after row id `after_pk`, with their
    /// timeline rows as stored, from one snapshot: what a chain verifier
    /// reads, page by page.
    async fn timeline_chains(
        &self,
        scope: ChainScope<'_>,
        after_pk: i64,
        limit: u32,
    ) -> StoreResult<ChainPage>;

    /// Claims up to `limit` records whose next due time is at or before `now`
    /// and applies [`Command::Tick`] to each, in batches that never hold a
    /// lock across I/O. Each due record is processed by exactly one caller.
    async fn sweep_due(&self, now: Timestamp, limit: u32) -> StoreResult<SweepReport>;

    /// Claims up to `limit` repair callbacks due at `now` for `lease`; a
    /// claimed job is invisible to other dispatchers until the lease ends.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryJob>>;
    /// Records a finished attempt: applies [`Command::CallbackAttempt`] and
    /// reschedules, completes or gives up the outbox row, in one transaction.
    async fn finish_delivery_attempt(
        &self,
        job: &DeliveryJob,
        report: AttemptReport,
        next: NextStep,
        now: Timestamp,
    ) -> StoreResult<Applied>;
    /// How many repair callbacks are waiting to be sent (for metrics and shutdown).
    async fn pending_deliveries(&self) -> StoreResult<u64>;

    /// Claims up to `limit` alerts due at `now` for `lease`, grouping as it
    /// goes (in one transaction): a row of role `new` is decided with
    /// [`alert_grouping`](sendpromptly_core::alert_plan::alert_grouping) against the latest `single` row of its group:
    /// sent now (becomes `single`) or held until its window closes (becomes
    /// `held`, not claimed until then). A due `held` row becomes the
    /// `digest` carrying every due held row of its group, and every
    /// undecided `new` row raised before its window closed (those become
    /// `grouped`). Rows already `single` or `digest` are claimed as they are.
    /// Parallel claims never hand out one row twice.
    async fn claim_alerts(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
        window_seconds: i64,
    ) -> StoreResult<Vec<AlertJob>>;
    /// Records a finished attempt: the row is rescheduled, delivered or
    /// given up, and `entry` is appended to each of the job's incidents'
    /// timelines, in one transaction. Returns false (and writes nothing) if
    /// the job no longer holds the row's lease.
    async fn finish_alert_attempt(
        &self,
        job: &AlertJob,
        entry: &TimelineEntry,
        next: NextStep,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// How many alerts are waiting to be sent (pending or held).
    async fn pending_alerts(&self) -> StoreResult<u64>;

    /// Stores a proof link.
    async fn create_proof_link(&self, link: ProofLink) -> StoreResult<()>;
    /// The proof link with this token hash, whatever its state.
    async fn proof_link_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<ProofLink>>;
    /// A project's proof link by id.
    async fn proof_link(&self, project_id: &str, link_id: &str) -> StoreResult<Option<ProofLink>>;
    /// The proof links of an incident, newest first.
    async fn proof_links_for_incident(
        &self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Vec<ProofLink>>;
    /// Revokes a proof link; false if there is no such link in the project or it was already revoked.
    async fn revoke_proof_link(
        &self,
        project_id: &str,
        link_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Starts a request with an idempotency key (see [`IdempotencyBegin`]).
    ///
    /// A key whose first request is still running after `lock_for` (a crash)
    /// may be taken again.
    async fn idempotency_begin(
        &self,
        project_id: &str,
        key: &str,
        request_hash: &[u8],
        now: Timestamp,
        lock_for: Duration,
    ) -> StoreResult<IdempotencyBegin>;
    /// Stores the response of a finished request.
    async fn idempotency_complete(
        &self,
        project_id: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> StoreResult<()>;
    /// Forgets a key whose request failed with a 5xx (so a retry runs again).
    async fn idempotency_abandon(&self, project_id: &str, key: &str) -> StoreResult<()>;
    /// Deletes idempotency keys created before `before`; returns how many.
    async fn purge_idempotency_keys(&self, before: Timestamp) -> StoreResult<u64>;
    /// Retention of resolved history: deletes up to `limit` events last
    /// changed before `before` that are finished — their incident resolved,
    /// or a success without an incident — with their timeline, incident,
    /// outbox rows, proof links and reprocess-batch items. Never an event
    /// awaiting its result, with a deadline or callback still due, or with an
    /// open or reprocessing incident. Also deletes up to `limit` finished
    /// alerts (not pending) last changed before `before`, which copy their
    /// incidents' facts. Returns how many events it deleted.
    async fn purge_resolved_history(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;
    /// The response column of an idempotency key exactly as stored (sealed).
    async fn stored_idempotency_response(
        &self,
        project_id: &str,
        key: &str,
    ) -> StoreResult<Option<Vec<u8>>>;

    /// Stores a new reprocess batch (state `running`, due at once) and its
    /// items, in order. `batch.counts` is ignored.
    async fn create_reprocess_batch(
        &self,
        batch: &ReprocessBatch,
        items: &[NewBatchItem],
    ) -> StoreResult<()>;
    /// A project's batch with its derived counts.
    async fn reprocess_batch(
        &self,
        project_id: &str,
        batch_id: &str,
    ) -> StoreResult<Option<ReprocessBatch>>;
    /// The first `limit` items of a batch, in order, each with its derived
    /// state (`sent` becomes `delivered`, `failed` or `resolved` from the
    /// outbox row and the incident).
    async fn reprocess_batch_items(
        &self,
        project_id: &str,
        batch_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<ReprocessBatchItem>>;
    /// Cancels a running batch: its pending items become `cancelled` (sent
    /// ones are left to finish). Returns the batch (whatever its state), or
    /// `None` if the project has no such batch.
    async fn cancel_reprocess_batch(
        &self,
        project_id: &str,
        batch_id: &str,
        now: Timestamp,
    ) -> StoreResult<Option<ReprocessBatch>>;
    /// One pacing pass over up to `limit_batches` running batches due at
    /// `now`: in one transaction per pass, each batch (locked so one
    /// instance paces it) starts as many pending items as its rate
    /// ([`pacing_allowance`](sendpromptly_core::batch::pacing_allowance)) and free concurrency allow, by applying
    /// [`batch_reprocess_command`](sendpromptly_core::batch::batch_reprocess_command) to the incident (which queues the
    /// callback) and marking the item `sent`, or `skipped` with
    /// [`skip_reason`](sendpromptly_core::batch::skip_reason) if the state machine refuses. A batch with nothing
    /// pending and nothing in flight becomes `completed`.
    async fn pace_reprocess_batches(
        &self,
        now: Timestamp,
        limit_batches: u32,
    ) -> StoreResult<PaceReport>;
    /// Slows the batch the callback `reprocess_id` belongs to (if any, and
    /// running): nothing more of it starts before `until`. Used when the
    /// repair endpoint answers 429 or 503.
    async fn slow_reprocess_batch(&self, reprocess_id: &str, until: Timestamp) -> StoreResult<()>;

    /// The project's provider-tap settings, secrets opened; `None` when
    /// never set.
    async fn provider_tap_settings(
        &self,
        project_id: &str,
    ) -> StoreResult<Option<ProviderTapSettings>>;
    /// Writes the project's provider-tap settings (secrets sealed).
    async fn put_provider_tap_settings(
        &self,
        project_id: &str,
        settings: &ProviderTapSettings,
    ) -> StoreResult<()>;
    /// The project's Stripe restricted API key (`rk_live_…`/`rk_test_…`),
    /// opened, for the reconciler; `None` when not set.
    async fn stripe_restricted_key(&self, project_id: &str) -> StoreResult<Option<String>>;
    /// The event whose provider copy has this fingerprint, if any.
    async fn event_by_fingerprint(
        &self,
        project_id: &str,
        provider: Provider,
        fingerprint: &str,
    ) -> StoreResult<Option<EventKey>>;
    /// The analytics rollup rows of a project for the UTC days starting in
    /// `[from, to)`, of one event type or all.
    async fn stats_rows(
        &self,
        project_id: &str,
        from: Timestamp,
        to: Timestamp,
        event_type: Option<&str>,
    ) -> StoreResult<Vec<StatsRow>>;

    /// Moves up to `max_rows` of each table's analytics deltas into the
    /// rollup in one transaction (PostgreSQL, migration 0015: the triggers
    /// append deltas so that writers never wait on each other's rollup
    /// rows; reads add the deltas not folded yet, so folding changes no
    /// answer). One instance folds at a time; SQLite has nothing to fold.
    async fn fold_rollups(&self, max_rows: u32) -> StoreResult<RollupFold>;

    /// A project's SLOs, by event type.
    async fn slo_objectives(&self, project_id: &str) -> StoreResult<Vec<SloObjective>>;

    /// Every project's SLOs (the burn-rate loop).
    async fn all_slo_objectives(&self) -> StoreResult<Vec<(String, SloObjective)>>;

    /// Replaces a project's SLOs.
    async fn put_slo_objectives(
        &self,
        project_id: &str,
        objectives: &[SloObjective],
    ) -> StoreResult<()>;

    /// `(received, good)` of an event type's SLO slots starting in `[from, to)`.
    async fn slo_counts(
        &self,
        project_id: &str,
        event_type: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<(u64, u64)>;

    /// Starts an SLO burn episode unless one is already on: records it
    /// and enqueues the `slo.burning` alerts for the project's channels in
    /// one transaction. `true` when this call started it (once per
    /// episode, across instances).
    async fn start_slo_episode(
        &self,
        project_id: &str,
        facts: &sendpromptly_core::alert::SloFacts,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Ends an SLO's burn episode, if one is on.
    async fn end_slo_episode(
        &self,
        project_id: &str,
        event_type: &str,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// A project's Stripe reconciler state; `None` before its first pass.
    async fn reconcile_state(&self, project_id: &str) -> StoreResult<Option<ReconcileState>>;
    /// Every project's Stripe reconciler state (for `/metrics`).
    async fn reconcile_states(&self) -> StoreResult<Vec<ReconcileState>>;
    /// Takes the project's reconciler lease for `owner` until `now + lease`
    /// when it is free, ran out at or before `now`, or is `owner`'s already;
    /// returns the state (with any interrupted pass to resume), or `None`
    /// when another owner holds it. Across instances on one database at
    /// most one owner holds a project's lease at a time.
    async fn take_reconcile_lease(
        &self,
        project_id: &str,
        owner: &str,
        now: Timestamp,
        lease: Duration,
    ) -> StoreResult<Option<ReconcileState>>;
    /// Saves a pass's progress (its window and cursor), adds `fed` to the
    /// events fed, and extends the lease to `now + lease`. Returns false,
    /// and writes nothing, when `owner` no longer holds a running lease.
    async fn save_reconcile_progress(
        &self,
        project_id: &str,
        owner: &str,
        pass: &ReconcilePass,
        fed: u64,
        now: Timestamp,
        lease: Duration,
    ) -> StoreResult<bool>;
    /// Ends `owner`'s pass: records the outcome (a success raises the
    /// watermark, never lowers it, and clears the pass; a failure keeps the
    /// pass to resume and records the error) and frees the lease. Returns
    /// false, and writes nothing, when `owner` does not hold the lease.
    async fn finish_reconcile(
        &self,
        project_id: &str,
        owner: &str,
        now: Timestamp,
        outcome: &ReconcileOutcome,
    ) -> StoreResult<bool>;
}
