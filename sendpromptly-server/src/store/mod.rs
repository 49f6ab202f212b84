//! Storage: the one [`Store`] trait every backend implements, and the types
//! that cross it.
//!
//! HTTP handlers, the sweeper and the dispatcher reach the database only
//! through this trait. Its contract is pinned by `conformance`, a suite
//! every implementation runs (SQLite here; PostgreSQL runs the very same).
//!
//! Each method is atomic: one transaction (`apply`, `apply_with_key` and
//! `apply_to_incident` share group-commit transactions, see `group`, and
//! are answered only after the commit). Event changes go through
//! [`Store::apply`], which loads the record, runs the pure state machine of
//! `sendpromptly-core`, and writes the record, its new timeline entries and
//! the outbox rows its effects ask for, atomically.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sendpromptly_core::Timestamp;
use sendpromptly_core::alert::{
    AlertChannel, AlertEvent, AlertMessage, GroupDecision, GroupingPolicy, IncidentFacts,
};
use sendpromptly_core::machine::{
    AttemptReport, Command, Context, Effect, EventRecord, Transition, TransitionError,
};
use sendpromptly_core::model::{
    Actor, EventKey, EventState, IncidentKind, IncidentState, Provider, TimelineEntry, TimelineKind,
};
use sendpromptly_core::retry::NextStep;
use sendpromptly_core::wire::{ReprocessBatchCounts, ReprocessBatchItem};
use serde::{Deserialize, Serialize};

mod codec;
mod engine;
pub use engine::Engine;
/// The suite every engine runs (compiled for tests and `test-support` only).
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod group;
mod rows;
mod sql;
pub use group::GroupCommitStats;
pub mod migrations;
pub mod pool;
pub mod postgres;
pub mod sqlite;

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
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A project and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// The `prj_` id.
    pub id: String,
    /// Unique name (`default` for the first project).
    pub name: String,
    /// Where repair callbacks are POSTed.
    pub repair_url: Option<String>,
    /// Seconds from receipt to deadline, unless overridden.
    pub default_deadline_seconds: u32,
    /// Per-event-type deadlines, overriding the default.
    pub deadlines_by_event_type: BTreeMap<String, u32>,
    /// Alert channel settings (JSON array, see the contract's Alerts section).
    pub alert_channels: serde_json::Value,
    /// Whether proof pages may show `metadata` values.
    pub proof_show_metadata: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Project {
    /// The deadline for a receipt: the call's value, else the event type's, else the default.
    pub fn deadline_for(&self, event_type: &str, requested: Option<u32>) -> u32 {
        requested
            .or_else(|| self.deadlines_by_event_type.get(event_type).copied())
            .unwrap_or(self.default_deadline_seconds)
    }
}

/// A new project's fields.
#[derive(Clone, Debug)]
pub struct NewProject {
    /// The `prj_` id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Where repair callbacks go.
    pub repair_url: Option<String>,
    /// Default deadline in seconds.
    pub default_deadline_seconds: u32,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A change to a project's settings; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProjectPatch {
    /// `Some(None)` clears the repair URL.
    pub repair_url: Option<Option<String>>,
    /// New default deadline.
    pub default_deadline_seconds: Option<u32>,
    /// Replaces the per-event-type table.
    pub deadlines_by_event_type: Option<BTreeMap<String, u32>>,
    /// Replaces the alert channels.
    pub alert_channels: Option<serde_json::Value>,
    /// Whether proof pages may show metadata.
    pub proof_show_metadata: Option<bool>,
}

/// An API key as stored: never the key itself, only its hash.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    /// The `key_` id (safe to show and log).
    pub id: String,
    /// The project it opens.
    pub project_id: String,
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    /// A label.
    pub name: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A `whsec_` signing secret of a project.
#[derive(Clone, Debug, PartialEq)]
pub struct SigningSecretRecord {
    /// Row id.
    pub id: i64,
    /// The secret (`whsec_…`).
    pub secret: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops signing (set on rotation, 24 h later).
    pub expires_at: Option<Timestamp>,
}

/// A console user.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// The `usr_` id.
    pub id: String,
    /// Login email (unique, lower-case).
    pub email: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A console sign-in session as stored: never the session token itself,
/// only its SHA-256 (like API keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// SHA-256 of the session token (the cookie value).
    pub token_hash: Vec<u8>,
    /// The `usr_` id of the signed-in user.
    pub user_id: String,
    /// When the user signed in.
    pub created_at: Timestamp,
    /// When the session stops working (absolute, not sliding).
    pub expires_at: Timestamp,
}

/// How many of a project's incidents are in each state (the console overview).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IncidentCounts {
    /// `open`.
    pub open: u64,
    /// `reprocessing`.
    pub reprocessing: u64,
    /// `resolved`.
    pub resolved: u64,
}

/// One UTC day of one event type's activity (the console overview chart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyActivity {
    /// The UTC calendar day.
    pub day: chrono::NaiveDate,
    /// The event type; `None` for events whose receipt has not arrived.
    pub event_type: Option<String>,
    /// Events first seen that day (by the record's `created_at`).
    pub events: u64,
    /// `result.failure` timeline entries recorded that day, not counting
    /// failures ignored because a success was already recorded.
    pub failures: u64,
    /// Incidents first opened that day (by `opened_at`; reopenings are not counted).
    pub incidents: u64,
}

/// One stored event with its timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The record.
    pub record: EventRecord,
    /// The full timeline, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// What [`Store::apply`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The transition computed by the state machine (new record, entries, effects).
    pub transition: Transition,
}

/// A response remembered under an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// Its HTTP status.
    pub status: u16,
    /// Its body (JSON).
    pub body: Vec<u8>,
}

/// How the response to a command is remembered: `None` remembers nothing
/// (a server error: the request may run again).
pub type Respond = Box<dyn Fn(&StoreResult<Applied>) -> Option<StoredResponse> + Send + Sync>;

/// An `Idempotency-Key` remembered in the same transaction as the command
/// it guards ([`Store::apply_idempotent`]).
pub struct IdempotentRequest {
    /// The key, as the client sent it.
    pub key: String,
    /// The SHA-256 of the request (method, path, body).
    pub request_hash: Vec<u8>,
    /// The response to remember for the command's outcome.
    pub respond: Respond,
}

impl std::fmt::Debug for IdempotentRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentRequest")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What [`Store::apply_idempotent`] did.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, moved once: boxing buys nothing
pub enum IdempotentOutcome {
    /// The command ran now (and its response, if any, is remembered).
    Applied(Applied),
    /// The same request ran before: the response remembered then.
    Replay(StoredResponse),
    /// The key was used before with a different request.
    Mismatch,
    /// The key's first request is still running (sent to another route
    /// that does not remember in its own transaction).
    InFlight,
}

/// Filters for listing incidents; all optional, combined with AND.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentFilter {
    /// Only this state.
    pub state: Option<IncidentState>,
    /// Only this kind.
    pub kind: Option<IncidentKind>,
    /// Only this provider.
    pub provider: Option<Provider>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this subject.
    pub subject: Option<String>,
    /// Only incidents opened at or after this time.
    pub opened_after: Option<Timestamp>,
    /// Only incidents opened before this time.
    pub opened_before: Option<Timestamp>,
    /// Free-text search (the console's search box): keeps incidents whose
    /// incident id, event id or subject contains this text, compared
    /// case-insensitively (ASCII). `%` and `_` are literal characters, not
    /// wildcards. Unindexed: a scan of the project's incidents.
    pub search: Option<String>,
}

/// Filters for searching events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Only this subject.
    pub subject: Option<String>,
    /// Only this state.
    pub state: Option<EventState>,
    /// Only this event id (any provider).
    pub event_id: Option<String>,
    /// Free-text search (the console's event lookup): keeps events whose
    /// event id or subject contains this text, compared case-insensitively
    /// (ASCII). `%` and `_` are literal characters, not wildcards.
    /// Unindexed: a scan of the project's events.
    pub search: Option<String>,
}

/// Keyset pagination: up to `limit` items after `cursor` (opaque to callers).
#[derive(Clone, Debug, PartialEq)]
pub struct PageRequest {
    /// How many items (1–100).
    pub limit: u32,
    /// Where the previous page stopped.
    pub cursor: Option<String>,
}

/// One page of results.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Pass this as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A repair callback due for an attempt, claimed by one dispatcher.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryJob {
    /// The `rep_` id (the callback's `webhook-id`).
    pub reprocess_id: String,
    /// The project.
    pub project_id: String,
    /// The incident.
    pub incident_id: String,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    /// The event as it is now.
    pub record: EventRecord,
    /// Where to send it (the project's current setting).
    pub repair_url: Option<String>,
    /// Until when this claim holds; another dispatcher may take it after.
    pub lease_until: Timestamp,
}

/// The outcome of a sweep pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepReport {
    /// Records examined (claimed as due).
    pub examined: usize,
    /// Transitions that changed something, with the project they belong to.
    pub transitions: Vec<(String, Transition)>,
    /// The earliest due time among the examined records (for the lag metric).
    pub oldest_due_at: Option<Timestamp>,
}

/// A proof link as stored (the token only as a hash).
#[derive(Clone, Debug, PartialEq)]
pub struct ProofLink {
    /// The `prf_` id.
    pub id: String,
    /// The project.
    pub project_id: String,
    /// The incident it shows.
    pub incident_id: String,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// What [`Store::reseal_signing_secrets`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Plaintext secrets now sealed.
    pub sealed_plaintext: u64,
    /// Secrets sealed with a previous key, now sealed with the current one.
    pub resealed: u64,
}

/// What an idempotency key says about a request.
#[derive(Clone, Debug, PartialEq)]
pub enum IdempotencyBegin {
    /// First use: the caller must run the request, then complete or abandon the key.
    Proceed,
    /// Seen with the same request: replay this response.
    Replay {
        /// The stored status code.
        status: u16,
        /// The stored JSON body.
        body: Vec<u8>,
    },
    /// Seen with a different request body or path.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

/// A reprocess batch as stored; its counts are derived from its items.
#[derive(Clone, Debug, PartialEq)]
pub struct ReprocessBatch {
    /// The `rpb_` id.
    pub id: String,
    /// The project.
    pub project_id: String,
    /// `running`, `completed` or `cancelled`.
    pub state: String,
    /// Callbacks started per second.
    pub rate_per_second: f64,
    /// Callbacks of this batch in flight at most.
    pub concurrency: u32,
    /// Who started it (an [`Actor`](sendpromptly_core::model::Actor) string).
    pub started_by: String,
    /// The note put on each timeline.
    pub note: Option<String>,
    /// The request's selection (JSON), kept for the record.
    pub selection: serde_json::Value,
    /// When it was started.
    pub created_at: Timestamp,
    /// When it completed or was cancelled.
    pub finished_at: Option<Timestamp>,
    /// Progress, derived from the items, the outbox and the incidents.
    pub counts: ReprocessBatchCounts,
}

/// One incident of a new batch.
#[derive(Clone, Debug, PartialEq)]
pub struct NewBatchItem {
    /// The `inc_` id.
    pub incident_id: String,
    /// Its event type (for display).
    pub event_type: Option<String>,
    /// Its subject (for display).
    pub subject: Option<String>,
    /// `None` to send it; `Some(reason)` to record it as skipped.
    pub skipped: Option<String>,
}

/// What one pacing pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PaceReport {
    /// Reprocess requests applied, with their project.
    pub transitions: Vec<(String, Transition)>,
    /// Items skipped at send time (the incident changed since the batch started).
    pub skipped: usize,
    /// Batches that finished in this pass.
    pub completed: usize,
    /// Callbacks waiting for a retry that were made due now, because the
    /// repair endpoint answered a 2xx after their last attempt.
    pub retried: usize,
}

/// Why an incident cannot be reprocessed now, as a batch item's `reason`.
pub fn skip_reason(err: &TransitionError) -> &'static str {
    match err {
        TransitionError::IncidentResolved => "incident_resolved",
        TransitionError::CallbackInFlight { .. } => "callback_in_flight",
        TransitionError::NoIncident | TransitionError::UnknownEvent => "incident_not_found",
        TransitionError::WrongEvent => "wrong_event",
    }
}

/// The reprocess request a batch makes for one of its incidents: the
/// starter as actor and a note naming the batch (shared by every backend).
pub fn batch_reprocess_command(
    batch_id: &str,
    started_by: &str,
    note: Option<&str>,
    project: &Project,
    record: &EventRecord,
    now: Timestamp,
) -> (Command, Context) {
    let actor: Actor = started_by
        .parse()
        .unwrap_or_else(|_| Actor::System("reprocess-batch".to_owned()));
    let mut text = format!("reprocessed as part of batch {batch_id} by {actor}");
    if let Some(note) = note.filter(|n| !n.is_empty()) {
        text.push_str(": ");
        text.push_str(note);
    }
    let mut rng = rand::thread_rng();
    let command = Command::RequestReprocess {
        reprocess_id: sendpromptly_core::ids::new_id(
            sendpromptly_core::ids::REPROCESS,
            now,
            &mut rng,
        ),
        note: Some(text),
        result_deadline_seconds: project
            .deadline_for(record.event_type.as_deref().unwrap_or_default(), None),
    };
    let ctx = Context {
        now,
        actor,
        new_incident_id: sendpromptly_core::ids::new_id(
            sendpromptly_core::ids::INCIDENT,
            now,
            &mut rng,
        ),
    };
    (command, ctx)
}

/// A batch item's state as shown: a `sent` item becomes `resolved` once its
/// incident is, `delivered` or `failed` once its callback is, from the
/// outbox row's and the incident's states.
pub fn batch_item_state<'a>(
    item_state: &'a str,
    delivery_state: Option<&str>,
    incident_state: Option<&str>,
) -> &'a str {
    if item_state != "sent" {
        return item_state;
    }
    if incident_state == Some("resolved") {
        return "resolved";
    }
    match delivery_state {
        Some("delivered") => "delivered",
        Some("gave_up") => "failed",
        _ => "sent",
    }
}

/// Pacing arithmetic shared by every backend: a token bucket of one
/// second's burst. Given the batch's `next_send_at`, its rate, its free
/// concurrency and its pending items, how many items may start now and the
/// new `next_send_at`.
pub fn pacing_allowance(
    now: Timestamp,
    next_send_at: Timestamp,
    rate_per_second: f64,
    free: u64,
    pending: u64,
) -> (u64, Timestamp) {
    let interval_ms = (1000.0 / rate_per_second.max(0.001)).max(1.0);
    let now_ms = now.unix_millis();
    let base = next_send_at.unix_millis().max(now_ms - 1000);
    if base > now_ms {
        return (0, next_send_at);
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let due = ((now_ms - base) as f64 / interval_ms).floor() as u64 + 1;
    let n = due.min(free).min(pending);
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let next = base + (n as f64 * interval_ms).round() as i64;
    (
        n,
        Timestamp::from_unix_millis(next.max(next_send_at.unix_millis())),
    )
}

/// An alert row to enqueue, planned by [`plan_alerts`] from a transition's
/// effects (the same for every backend; each only runs the INSERT).
#[derive(Clone, Debug, PartialEq)]
pub struct NewAlert {
    /// The `alr_` id (the `webhook-id` of a signed webhook alert).
    pub id: String,
    /// The channel's position in the project's `alert_channels`.
    pub channel_index: i64,
    /// The channel as configured when the alert was raised (JSON).
    pub channel_json: String,
    /// What happened.
    pub event: AlertEvent,
    /// Grouping key: project, channel, alert event and event type.
    pub group_key: String,
    /// `new` (an `incident.opened` alert, grouping decided when first
    /// claimed) or `single` (never grouped).
    pub role: &'static str,
    /// The incident's facts (a JSON array of one [`IncidentFacts`]).
    pub incidents_json: String,
}

/// The alert events a transition's effects raise, with their incident:
/// opened and reopened → `incident.opened`, resolved → `incident.resolved`,
/// a repair callback that gave up → `reprocess.failed`, a delivered one that
/// produced no result in time → `reprocess.no_result`.
pub fn alert_events(effects: &[Effect]) -> Vec<(AlertEvent, &str)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::IncidentOpened { incident_id, .. }
            | Effect::IncidentReopened { incident_id } => {
                Some((AlertEvent::IncidentOpened, incident_id.as_str()))
            }
            Effect::IncidentResolved { incident_id, .. } => {
                Some((AlertEvent::IncidentResolved, incident_id.as_str()))
            }
            Effect::CallbackGaveUp { incident_id, .. } => {
                Some((AlertEvent::ReprocessFailed, incident_id.as_str()))
            }
            Effect::ReprocessNoResult { incident_id, .. } => {
                Some((AlertEvent::ReprocessNoResult, incident_id.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// The grouping key of an alert (see [`NewAlert::group_key`]).
pub fn alert_group_key(
    project_id: &str,
    channel_index: usize,
    event: AlertEvent,
    event_type: &str,
) -> String {
    format!(
        "{project_id}|{channel_index}|{}|{event_type}",
        event.as_str()
    )
}

/// The alert rows a transition asks for: one per (raised alert event,
/// channel whose `on` wants it). `alert_channels` is the project's setting;
/// an unreadable setting raises no alert (logged) rather than failing the
/// state change. The console link is left empty here and filled in when
/// the alert is sent (it depends on `--public-url`).
pub fn plan_alerts(
    project_id: &str,
    alert_channels: &serde_json::Value,
    transition: &Transition,
    now: Timestamp,
) -> Vec<NewAlert> {
    let record = &transition.record;
    let raised = alert_events(&transition.effects);
    if raised.is_empty() {
        return Vec::new();
    }
    let channels = match sendpromptly_core::alert::parse_channels(alert_channels) {
        Ok(channels) => channels,
        Err(err) => {
            tracing::warn!(project_id, error = %err, "unreadable alert_channels; no alert raised");
            return Vec::new();
        }
    };
    let Some(incident) = record.incident.as_ref() else {
        return Vec::new();
    };
    let event_type = record.event_type.clone().unwrap_or_default();
    let mut rng = rand::thread_rng();
    let mut out = Vec::new();
    for (event, incident_id) in raised {
        let facts = IncidentFacts {
            incident_id: incident_id.to_owned(),
            provider: record.provider,
            event_id: record.event_id.clone(),
            event_type: event_type.clone(),
            subject: record.subject.clone(),
            kind: incident.kind,
            reason: if event == AlertEvent::ReprocessFailed {
                // Why the repair failed, from the give-up entry.
                transition
                    .entries
                    .iter()
                    .find(|e| e.kind == TimelineKind::CallbackGaveUp)
                    .and_then(|e| e.detail.get("reason"))
                    .and_then(|r| r.as_str())
                    .map(|r| format!("repair callback gave up: {r}"))
                    .or_else(|| incident.last_error.clone())
            } else if event == AlertEvent::ReprocessNoResult {
                Some(
                    "the repair callback was delivered but no result arrived before the result deadline"
                        .to_owned(),
                )
            } else {
                incident.last_error.clone()
            },
            received_at: record.received_at.unwrap_or(record.created_at),
            console_url: String::new(),
        };
        let incidents_json = serde_json::to_string(&[&facts]).unwrap_or_else(|_| "[]".into());
        for index in sendpromptly_core::alert::channels_for(&channels, event) {
            out.push(NewAlert {
                id: sendpromptly_core::ids::new_id(sendpromptly_core::ids::ALERT, now, &mut rng),
                channel_index: i64::try_from(index).unwrap_or(i64::MAX),
                channel_json: serde_json::to_string(&channels[index])
                    .unwrap_or_else(|_| "{}".into()),
                event,
                group_key: alert_group_key(project_id, index, event, &event_type),
                role: if event == AlertEvent::IncidentOpened {
                    "new"
                } else {
                    "single"
                },
                incidents_json: incidents_json.clone(),
            });
        }
    }
    out
}

/// What the alert sender does with a claimed row of role `new`: send it as
/// the first of its window, or hold it until the window of the latest
/// `single` row of its group (`window_opened_at`) closes.
pub fn alert_grouping(
    window_seconds: i64,
    window_opened_at: Option<Timestamp>,
    raised_at: Timestamp,
) -> GroupDecision {
    GroupingPolicy { window_seconds }.decide(window_opened_at, raised_at)
}

/// Concatenates the facts of several rows (JSON arrays) into one array,
/// oldest first, as a digest carries them.
pub fn merge_alert_incidents(parts: &[String]) -> StoreResult<String> {
    let mut all: Vec<IncidentFacts> = Vec::new();
    for part in parts {
        let mut facts: Vec<IncidentFacts> = serde_json::from_str(part)
            .map_err(|e| StoreError::Corrupt(format!("alert incidents: {e}")))?;
        all.append(&mut facts);
    }
    serde_json::to_string(&all).map_err(|e| StoreError::Corrupt(format!("alert incidents: {e}")))
}

/// An alert due for an attempt, claimed by one sender.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertJob {
    /// The `alr_` id (stable across retries: the webhook's `webhook-id`).
    pub id: String,
    /// The project.
    pub project_id: String,
    /// The channel as configured when the alert was raised.
    pub channel: AlertChannel,
    /// What happened.
    pub event: AlertEvent,
    /// The incidents it is about (one, or several for a digest), oldest first.
    pub incidents: Vec<IncidentFacts>,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    /// When the (first) alert was raised.
    pub created_at: Timestamp,
    /// Until when this claim holds.
    pub lease_until: Timestamp,
}

impl AlertJob {
    /// Decodes a claimed row's stored channel and incidents.
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        id: String,
        project_id: String,
        channel_json: &str,
        event: &str,
        incidents_json: &str,
        attempts: u32,
        created_at: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<AlertJob> {
        Ok(AlertJob {
            channel: serde_json::from_str(channel_json)
                .map_err(|e| StoreError::Corrupt(format!("alert channel: {e}")))?,
            event: AlertEvent::parse(event)
                .ok_or_else(|| StoreError::Corrupt(format!("alert event {event:?}")))?,
            incidents: serde_json::from_str(incidents_json)
                .map_err(|e| StoreError::Corrupt(format!("alert incidents: {e}")))?,
            id,
            project_id,
            attempt: attempts.saturating_add(1),
            created_at,
            lease_until,
        })
    }

    /// The message to send at `now`: a single alert, or a digest when the
    /// job carries several incidents. `console` turns a console path
    /// (`/incidents/inc_…?project=prj_…`, see
    /// [`crate::console::incident_link_path`]) into an
    /// absolute link.
    pub fn message(
        &self,
        window_seconds: i64,
        console: impl Fn(&str) -> String,
        now: Timestamp,
    ) -> AlertMessage {
        let mut incidents = self.incidents.clone();
        for facts in &mut incidents {
            facts.console_url = console(&crate::console::incident_link_path(
                &self.project_id,
                &facts.incident_id,
            ));
        }
        if incidents.len() == 1 {
            let facts = incidents.remove(0);
            AlertMessage::Single {
                event: self.event,
                facts,
                at: now,
            }
        } else {
            AlertMessage::Digest {
                event: self.event,
                event_type: incidents
                    .first()
                    .map(|f| f.event_type.clone())
                    .unwrap_or_default(),
                incidents,
                window_seconds,
                console_url: console(crate::console::INCIDENTS_PATH),
            }
        }
    }
}

/// The `alert.attempt` timeline entry for one attempt of `job` (put on
/// each of its incidents): channel type, alert id, attempt, HTTP status,
/// latency, error, outcome and the next attempt time.
pub fn alert_attempt_entry(
    job: &AlertJob,
    report: &AttemptReport,
    next: NextStep,
    now: Timestamp,
) -> TimelineEntry {
    let (outcome, next_attempt_at) = match next {
        NextStep::Done => ("delivered", None),
        NextStep::RetryAt(at) => ("retry_scheduled", Some(at.to_rfc3339())),
        NextStep::GiveUp(_) => ("gave_up", None),
    };
    TimelineEntry::new(
        now,
        TimelineKind::AlertAttempt,
        Actor::System("alerts".to_owned()),
        serde_json::json!({
            "alert_id": job.id,
            "channel": job.channel.kind(),
            "event": job.event.as_str(),
            "incidents": job.incidents.len(),
            "attempt": job.attempt,
            "status": report.status,
            "latency_ms": report.latency_ms,
            "error": report.error,
            "outcome": outcome,
            "next_attempt_at": next_attempt_at,
        }),
    )
}

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
    /// [`alert_grouping`] against the latest `single` row of its group:
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
    /// ([`pacing_allowance`]) and free concurrency allow, by applying
    /// [`batch_reprocess_command`] to the incident (which queues the
    /// callback) and marking the item `sent`, or `skipped` with
    /// [`skip_reason`] if the state machine refuses. A batch with nothing
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
}
