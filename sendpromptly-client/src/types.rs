//! The JSON shapes the API answers with, and the bodies and filters of the
//! operations calls.
//!
//! Field for field these are the server's response views (see
//! `docs/openapi.json`); unknown fields are ignored so a newer server does not
//! break an older client.

use std::collections::BTreeMap;

use sendpromptly_core::Timestamp;
use sendpromptly_core::model::{
    EventState, IncidentKind, IncidentState, JsonObject, Provider, Reprocess, Resolution,
    ResultSummary, TimelineEntry,
};
use serde::{Deserialize, Serialize};

/// An event as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id.
    pub event_id: String,
    /// The event type (null until the receipt arrives).
    pub event_type: Option<String>,
    /// The customer or account the effect is for.
    pub subject: Option<String>,
    /// The expected business effect.
    pub effect: Option<String>,
    /// The app's metadata.
    pub metadata: Option<JsonObject>,
    /// When the provider says it happened.
    pub occurred_at: Option<Timestamp>,
    /// `awaiting_result`, `succeeded`, `failed` or `overdue`.
    pub state: EventState,
    /// When the first receipt arrived.
    pub received_at: Option<Timestamp>,
    /// When the result is (was) due.
    pub deadline_at: Option<Timestamp>,
    /// How many receipts arrived (more than 1: duplicate deliveries).
    pub deliveries: u32,
    /// When the latest result arrived.
    pub result_at: Option<Timestamp>,
    /// The latest result.
    pub last_result: Option<ResultSummary>,
    /// The event's incident id, if one was ever opened.
    pub incident_id: Option<String>,
}

/// The event an incident is about, in brief.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventSummary {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id.
    pub event_id: String,
    /// The event type.
    pub event_type: Option<String>,
    /// The customer or account.
    pub subject: Option<String>,
}

/// An incident as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    /// The `inc_` id.
    pub id: String,
    /// `missing_result` or `failed_result`.
    pub kind: IncidentKind,
    /// `open`, `reprocessing` or `resolved`.
    pub state: IncidentState,
    /// `success_result` or `manual`, once resolved.
    pub resolution: Option<Resolution>,
    /// When it opened.
    pub opened_at: Timestamp,
    /// When it was resolved.
    pub resolved_at: Option<Timestamp>,
    /// The latest failure reason.
    pub last_error: Option<String>,
    /// Times reopened.
    pub reopen_count: u32,
    /// Reprocesses requested.
    pub reprocess_count: u32,
    /// The latest reprocess.
    pub reprocess: Option<Reprocess>,
    /// The event.
    pub event: EventSummary,
}

/// How a signal call went at the HTTP level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The HTTP status: 201 for a new event's receipt, 200 otherwise.
    pub status: u16,
    /// The server's `Request-Id`.
    pub request_id: Option<String>,
    /// Whether the server replayed an earlier answer to the same
    /// `Idempotency-Key` (`Idempotent-Replayed: true`): an earlier attempt of
    /// this call was recorded but its answer was lost.
    pub replayed: bool,
    /// How many attempts the call made.
    pub attempts: u32,
    /// The `Idempotency-Key` sent (the same on every attempt).
    pub idempotency_key: Option<String>,
}

/// Answer of a receipt or result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalResponse {
    /// The event after the signal.
    pub event: EventView,
    /// Its incident, if any.
    pub incident: Option<IncidentView>,
    /// Status, request id, replay and attempts (not part of the JSON).
    #[serde(skip)]
    pub meta: ResponseMeta,
}

impl SignalResponse {
    /// Whether this receipt created the event (HTTP 201) rather than
    /// recording a duplicate delivery of a known one (HTTP 200).
    pub fn created(&self) -> bool {
        self.meta.status == 201
    }
}

/// One event with its incident and timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventDetail {
    /// The event.
    pub event: EventView,
    /// Its incident, if any.
    pub incident: Option<IncidentView>,
    /// Every timeline entry, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// One incident with its event and timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentDetail {
    /// The incident.
    pub incident: IncidentView,
    /// Its event.
    pub event: EventView,
    /// Every timeline entry, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// A page of incidents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentList {
    /// The incidents, most recently opened first.
    pub data: Vec<IncidentView>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    /// The events, newest first.
    pub data: Vec<EventView>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Answer of a reprocess request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReprocessResponse {
    /// The new `rep_` id (the callback's `webhook-id`).
    pub reprocess_id: String,
    /// The incident, now `reprocessing`.
    pub incident: IncidentView,
}

/// Answer of a manual resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolveResponse {
    /// The incident, now `resolved`.
    pub incident: IncidentView,
}

/// A new proof link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProofLinkCreated {
    /// The `prf_` id (to revoke it).
    pub id: String,
    /// The link to share; shown once.
    pub url: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A proof link in a list (without its token).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProofLinkView {
    /// The `prf_` id.
    pub id: String,
    /// The incident it shows.
    pub incident_id: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A signing secret in the project settings (never its value).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SigningSecretView {
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops signing (after a rotation).
    pub expires_at: Option<Timestamp>,
}

/// The project settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectView {
    /// The `prj_` id.
    pub id: String,
    /// The name.
    pub name: String,
    /// Where repair callbacks are POSTed.
    pub repair_url: Option<String>,
    /// Seconds from receipt to deadline unless overridden.
    pub default_deadline_seconds: u32,
    /// Per-event-type deadlines in seconds.
    pub deadlines_by_event_type: BTreeMap<String, u32>,
    /// Alert channels (`{"type": "email", "to": …}`, `slack`, `webhook`).
    pub alert_channels: serde_json::Value,
    /// Whether proof pages show `metadata` values.
    pub proof_show_metadata: bool,
    /// The signing secrets currently signing callbacks.
    pub signing_secrets: Vec<SigningSecretView>,
    /// When the project was created.
    pub created_at: Timestamp,
}

/// A change of project settings (`PATCH /v1/project`); `None` fields are
/// left as they are.
///
/// ```
/// use sendpromptly_client::ProjectUpdate;
///
/// let update = ProjectUpdate {
///     repair_url: Some(Some("https://app.example.com/sendpromptly/repair".into())),
///     default_deadline_seconds: Some(900),
///     ..ProjectUpdate::default()
/// };
/// # let _ = update;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectUpdate {
    /// `Some(Some(url))` sets the repair endpoint, `Some(None)` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_url: Option<Option<String>>,
    /// Seconds from receipt to deadline (1 – 604800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_deadline_seconds: Option<u32>,
    /// Per-event-type deadlines; replaces the whole table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadlines_by_event_type: Option<BTreeMap<String, u32>>,
    /// Alert channels; replaces the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_channels: Option<serde_json::Value>,
    /// Whether proof pages show `metadata` values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_show_metadata: Option<bool>,
}

/// The answer of a signing-secret rotation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RotatedSecret {
    /// The new `whsec_` secret; shown only this once.
    pub secret: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Until when the previous secrets keep signing.
    pub previous_secrets_expire_at: Timestamp,
}

/// Answer of `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The server version.
    pub version: String,
}

/// Filters of [`Client::list_incidents`](crate::Client::list_incidents);
/// `None` means "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentFilter {
    /// `open`, `reprocessing` or `resolved`.
    pub state: Option<IncidentState>,
    /// `missing_result` or `failed_result`.
    pub kind: Option<IncidentKind>,
    /// The provider.
    pub provider: Option<Provider>,
    /// The event type, e.g. `invoice.paid`.
    pub event_type: Option<String>,
    /// The customer or account.
    pub subject: Option<String>,
    /// Only incidents opened after this time.
    pub opened_after: Option<Timestamp>,
    /// Only incidents opened before this time.
    pub opened_before: Option<Timestamp>,
    /// Page size, 1–100 (server default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl IncidentFilter {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        push(
            &mut query,
            "state",
            self.state.map(|s| s.as_str().to_owned()),
        );
        push(&mut query, "kind", self.kind.map(|k| k.as_str().to_owned()));
        push(
            &mut query,
            "provider",
            self.provider.map(|p| p.as_str().to_owned()),
        );
        push(&mut query, "event_type", self.event_type.clone());
        push(&mut query, "subject", self.subject.clone());
        push(
            &mut query,
            "opened_after",
            self.opened_after.map(Timestamp::to_rfc3339),
        );
        push(
            &mut query,
            "opened_before",
            self.opened_before.map(Timestamp::to_rfc3339),
        );
        push(&mut query, "limit", self.limit.map(|l| l.to_string()));
        push(&mut query, "cursor", self.cursor.clone());
        query
    }
}

/// Filters of [`Client::search_events`](crate::Client::search_events);
/// `None` means "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Only this customer or account (support look-ups).
    pub subject: Option<String>,
    /// Only this state.
    pub state: Option<EventState>,
    /// Only this event id (any provider).
    pub event_id: Option<String>,
    /// Page size, 1–100 (server default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl EventFilter {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        push(&mut query, "subject", self.subject.clone());
        push(
            &mut query,
            "state",
            self.state.map(|s| s.as_str().to_owned()),
        );
        push(&mut query, "event_id", self.event_id.clone());
        push(&mut query, "limit", self.limit.map(|l| l.to_string()));
        push(&mut query, "cursor", self.cursor.clone());
        query
    }
}

fn push(query: &mut Vec<(&'static str, String)>, name: &'static str, value: Option<String>) {
    if let Some(value) = value {
        query.push((name, value));
    }
}
