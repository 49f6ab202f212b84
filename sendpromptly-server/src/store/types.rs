//! The types that cross the [`Store`](super::Store) trait: projects, keys,
//! users, events and their pages, the work the queues hand out, batches.

use std::collections::BTreeMap;

use sendpromptly_core::Timestamp;
use sendpromptly_core::alert::{AlertChannel, AlertEvent, IncidentFacts};
use sendpromptly_core::machine::{AttemptReport, EventRecord, Transition};
use sendpromptly_core::model::{
    Actor, EventState, IncidentKind, IncidentState, Provider, TimelineEntry, TimelineKind,
};
use sendpromptly_core::retry::NextStep;
use sendpromptly_core::scope::{Scope, ScopeSet};
use sendpromptly_core::wire::ReprocessBatchCounts;
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult};

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
    /// Links timeline entries to their trace: an http(s) URL with
    /// `{trace_id}` (and optionally `{span_id}`).
    #[serde(default)]
    pub trace_url_template: Option<String>,
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
    /// `Some(None)` clears the trace URL template.
    pub trace_url_template: Option<Option<String>>,
}

impl ProjectPatch {
    /// `project` with this change applied.
    pub fn apply_to(&self, project: &mut Project) {
        if let Some(url) = &self.repair_url {
            project.repair_url.clone_from(url);
        }
        if let Some(seconds) = self.default_deadline_seconds {
            project.default_deadline_seconds = seconds;
        }
        if let Some(table) = &self.deadlines_by_event_type {
            project.deadlines_by_event_type.clone_from(table);
        }
        if let Some(channels) = &self.alert_channels {
            project.alert_channels.clone_from(channels);
        }
        if let Some(show) = self.proof_show_metadata {
            project.proof_show_metadata = show;
        }
        if let Some(template) = &self.trace_url_template {
            project.trace_url_template.clone_from(template);
        }
    }
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
    /// What it may do (keys made before scopes existed are `admin`).
    pub scopes: ScopeSet,
    /// When it was last used (recorded at most once a minute).
    pub last_used_at: Option<Timestamp>,
    /// The endpoint class of its last recorded use.
    pub last_used_class: Option<Scope>,
    /// Every endpoint class it was used for.
    pub used_classes: ScopeSet,
}

/// A key's use, as recorded (batched, off the request path).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyUse {
    /// The `key_` id.
    pub key_id: String,
    /// When it was last used.
    pub at: Timestamp,
    /// The class of that last use.
    pub class: Scope,
    /// Every class it was used for since the last record.
    pub classes: ScopeSet,
}

/// One audit log entry as stored (its `before`/`after` already redacted).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// The `aud_` id.
    pub id: String,
    /// The project it concerns.
    pub project_id: String,
    /// When.
    pub at: Timestamp,
    /// Who: `api_key:key_…`, `user:<email>` or `cli`.
    pub actor: String,
    /// The client IP as the server saw it.
    pub ip: Option<String>,
    /// What, e.g. `project.update`.
    pub action: String,
    /// On what (an id).
    pub target: String,
    /// The state before (redacted).
    pub before: Option<serde_json::Value>,
    /// The state after (redacted).
    pub after: Option<serde_json::Value>,
}

/// The filters of an audit log page; `None` is "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    /// Only this action.
    pub action: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries before this time.
    pub until: Option<Timestamp>,
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
    /// Argon2 PHC string (empty until an invited user sets a password).
    pub password_hash: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was disabled (its sessions end, it cannot sign in).
    pub disabled_at: Option<Timestamp>,
    /// The server-wide owner: `admin` of every project, new ones included.
    pub owner: bool,
    /// Whether sign-in asks for a TOTP code.
    pub totp_enabled: bool,
}

/// A one-time invitation or password-reset link as stored (its hash).
#[derive(Clone, Debug, PartialEq)]
pub struct UserToken {
    /// SHA-256 of the token in the link.
    pub token_hash: Vec<u8>,
    /// The `usr_` id it sets the password of.
    pub user_id: String,
    /// `invite` or `reset`.
    pub kind: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A user's TOTP state.
#[derive(Clone, Debug, PartialEq)]
pub struct TotpState {
    /// The secret (opened).
    pub secret: Vec<u8>,
    /// Whether a code confirmed it (sign-in asks for codes).
    pub enabled: bool,
    /// The last step whose code was accepted.
    pub last_step: Option<i64>,
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
    /// The password was right; the TOTP code is still due (the session
    /// opens no page until it is given).
    pub pending_2fa: bool,
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
    /// `Some(false)`: only test-mode incidents (the provider's copy says
    /// `livemode: false`); `Some(true)`: only the others.
    pub livemode: Option<bool>,
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
    /// `Some(false)`: only test-mode events (the provider's copy says
    /// `livemode: false`); `Some(true)`: only the others.
    pub livemode: Option<bool>,
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
    /// For `slo.burning`: the SLO and the rule that fired (no incidents).
    pub slo: Option<sendpromptly_core::alert::SloFacts>,
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
        let event = AlertEvent::parse(event)
            .ok_or_else(|| StoreError::Corrupt(format!("alert event {event:?}")))?;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("alert incidents: {e}"));
        let (incidents, slo) = if event == AlertEvent::SloBurning {
            (
                Vec::new(),
                Some(serde_json::from_str(incidents_json).map_err(corrupt)?),
            )
        } else {
            (serde_json::from_str(incidents_json).map_err(corrupt)?, None)
        };
        Ok(AlertJob {
            channel: serde_json::from_str(channel_json)
                .map_err(|e| StoreError::Corrupt(format!("alert channel: {e}")))?,
            event,
            incidents,
            slo,
            id,
            project_id,
            attempt: attempts.saturating_add(1),
            created_at,
            lease_until,
        })
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

/// A project's provider-tap settings, as the store keeps them (secrets
/// opened). The service validates them; the store only keeps them.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderTapSettings {
    /// The event types the tap records; `None`: the defaults.
    pub tracked_event_types: Option<Vec<String>>,
    /// Seconds the app gets to send its receipt after the provider's copy.
    pub receipt_grace_seconds: u32,
    /// Per event type, overriding `receipt_grace_seconds`.
    pub grace_by_event_type: std::collections::BTreeMap<String, u32>,
    /// Stripe webhook endpoint secrets (`whsec_…`), several during rotation.
    pub stripe_endpoint_secrets: Vec<String>,
    /// The Shopify app's client secret.
    pub shopify_client_secret: Option<String>,
    /// The Stripe restricted API key the reconciler lists events with.
    pub stripe_restricted_key: Option<String>,
    /// When last written.
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for ProviderTapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderTapSettings")
            .field("tracked_event_types", &self.tracked_event_types)
            .field("receipt_grace_seconds", &self.receipt_grace_seconds)
            .field("grace_by_event_type", &self.grace_by_event_type)
            .field(
                "stripe_endpoint_secrets",
                &format_args!("[{} redacted]", self.stripe_endpoint_secrets.len()),
            )
            .field(
                "shopify_client_secret",
                &self.shopify_client_secret.as_ref().map(|_| "redacted"),
            )
            .field(
                "stripe_restricted_key",
                &self.stripe_restricted_key.as_ref().map(|_| "redacted"),
            )
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Where a Stripe reconciler pass stands, while it runs: the `created`
/// window it lists (unix seconds, as Stripe gives them) and the last event
/// it handled, so that a pass interrupted by a restart resumes after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcilePass {
    /// `created[gte]`.
    pub lower: i64,
    /// `created[lte]` (fixed when the pass starts).
    pub upper: i64,
    /// The last event id handled (Stripe lists newest first): the next
    /// page's `starting_after`.
    pub cursor: Option<String>,
    /// The newest `created` handled so far in this pass.
    pub newest: Option<i64>,
}

/// A project's Stripe reconciler state (see [`Store::reconcile_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileState {
    /// The project.
    pub project_id: String,
    /// The newest Stripe `created` (unix seconds) a finished pass fed; the
    /// next pass lists from it minus the overlap. `None`: never finished.
    pub watermark: Option<i64>,
    /// The pass in progress (or interrupted), if any.
    pub pass: Option<ReconcilePass>,
    /// The instance holding the lease, if any.
    pub lease_owner: Option<String>,
    /// Until when it holds it.
    pub lease_until: Option<Timestamp>,
    /// When a pass last ended (successfully or not).
    pub last_run_at: Option<Timestamp>,
    /// When a pass last ended successfully.
    pub last_success_at: Option<Timestamp>,
    /// The kind of the last pass's error (`unauthorized`, `rate_limited`,
    /// …); `None` when it succeeded.
    pub last_error_kind: Option<String>,
    /// The last pass's error in words; `None` when it succeeded.
    pub last_error: Option<String>,
    /// How many events the passes have fed to the expected-events sink.
    pub events_fed: u64,
}

/// How a reconciler pass ended, for [`Store::finish_reconcile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconcileOutcome {
    /// The pass listed everything: the watermark becomes `watermark` (if
    /// any event was seen) and the pass in progress is cleared.
    Succeeded {
        /// The newest `created` the pass fed.
        watermark: Option<i64>,
    },
    /// The pass stopped: the pass in progress is kept to resume.
    Failed {
        /// A stable word for metrics (`unauthorized`, `rate_limited`, …).
        kind: String,
        /// The error in words.
        message: String,
    },
}

/// Which events a read of timeline chains covers.
#[derive(Clone, Copy, Debug)]
pub enum ChainScope<'a> {
    /// Every event of every project.
    All,
    /// One project's events.
    Project(&'a str),
    /// The event of one incident.
    Incident {
        /// The project.
        project_id: &'a str,
        /// The `inc_` id.
        incident_id: &'a str,
    },
}

/// One timeline row as stored, undecoded (an edited row is still read).
#[derive(Clone, Debug, PartialEq)]
pub struct ChainRow {
    /// Its order on the timeline.
    pub seq: i64,
    /// `at`, Unix milliseconds.
    pub at_millis: i64,
    /// The kind as stored.
    pub kind: String,
    /// The actor as stored.
    pub actor: String,
    /// The detail as stored (JSON text).
    pub detail: String,
    /// The chain hash (`None`: recorded before chaining began, or removed).
    pub hash: Option<String>,
}

/// One event's timeline chain as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EventChain {
    /// The event's row id (the page's keyset position).
    pub pk: i64,
    /// The project.
    pub project_id: String,
    /// The provider as stored.
    pub provider: String,
    /// The provider's event id.
    pub event_id: String,
    /// The event's incident, if it has one.
    pub incident_id: Option<String>,
    /// The event's recorded chain head.
    pub chain_head: Option<String>,
    /// Its timeline rows, in order.
    pub entries: Vec<ChainRow>,
}

/// A page of [`EventChain`]s, by ascending row id.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainPage {
    /// Rows up to this `seq` were recorded before chaining began.
    pub unchained_through: i64,
    /// The events, by ascending row id; fewer than asked: the last page.
    pub events: Vec<EventChain>,
}

/// One row of the analytics rollup (`stats_hist`): a histogram bucket's
/// count, or a counter (bucket 0), for one metric, UTC day and event type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsRow {
    /// `tte`, `lag`, `ttr`, or a counter name.
    pub metric: String,
    /// The UTC day's start, unix milliseconds.
    pub day: i64,
    /// The event type (empty when none).
    pub event_type: String,
    /// The bucket (`sendpromptly_core::stats::bucket_of`).
    pub bucket: i64,
    /// How many.
    pub n: u64,
}

/// What one pass of the analytics fold did (see
/// [`Store::fold_rollups`](super::Store::fold_rollups)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RollupFold {
    /// Delta rows moved into the rollup (0: nothing to fold, or a backend
    /// whose triggers keep the rollup themselves).
    pub folded: u64,
    /// Another instance was folding: this pass did nothing.
    pub elsewhere: bool,
}
