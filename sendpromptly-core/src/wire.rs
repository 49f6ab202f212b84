//! The HTTP API's JSON shapes (responses and the project-settings body),
//! shared by the server, which answers with them, and the SDKs, which read
//! them: one definition of the wire format. The server's OpenAPI document is
//! generated from these types (feature `openapi`).

use std::collections::BTreeMap;

use crate::Timestamp;
use crate::machine::EventRecord;
use crate::model::{
    Actor, EventState, Incident, IncidentKind, IncidentState, JsonObject, Provider, ProviderCopy,
    Reprocess, ReprocessStatus, Resolution, ResultSummary, TimelineEntry, WireName,
};
use crate::validation::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, ValidationError, validate_page_limit};
use serde::{Deserialize, Serialize};

/// A closed enum's value in an answer, as a server that may be newer than
/// this code sent it: a value this version knows, or the wire name of one it
/// does not (a newer server's incident kind, event state, …), kept as sent
/// and written back unchanged. So an older SDK reads a newer server's
/// answers and still shows the new value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WireEnum<T> {
    /// A value this version knows.
    Known(T),
    /// A value this version does not know, by its wire name.
    Other(String),
}

impl<T: WireName> WireEnum<T> {
    /// The known value, if this version knows it.
    pub fn known(&self) -> Option<&T> {
        match self {
            WireEnum::Known(value) => Some(value),
            WireEnum::Other(_) => None,
        }
    }

    /// The wire name, e.g. `missing_result` (for [`WireEnum::Other`], the
    /// name it was read with).
    pub fn as_str(&self) -> &str {
        match self {
            WireEnum::Known(value) => value.wire_name(),
            WireEnum::Other(name) => name,
        }
    }
}

impl<T> From<T> for WireEnum<T> {
    fn from(value: T) -> Self {
        WireEnum::Known(value)
    }
}

impl<T: PartialEq> PartialEq<T> for WireEnum<T> {
    fn eq(&self, other: &T) -> bool {
        matches!(self, WireEnum::Known(value) if value == other)
    }
}

impl<T: WireName> std::fmt::Display for WireEnum<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<T: Serialize> Serialize for WireEnum<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WireEnum::Known(value) => value.serialize(serializer),
            WireEnum::Other(name) => serializer.serialize_str(name),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for WireEnum<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        let name = String::deserialize(deserializer)?;
        let known: Result<T, serde::de::value::Error> =
            T::deserialize(name.as_str().into_deserializer());
        Ok(known.map_or(WireEnum::Other(name), WireEnum::Known))
    }
}

macro_rules! known_eq_wire {
    ($($ty:ty),+) => {
        $(impl PartialEq<WireEnum<$ty>> for $ty {
            fn eq(&self, other: &WireEnum<$ty>) -> bool {
                other == self
            }
        })+
    };
}

known_eq_wire!(
    Provider,
    EventState,
    IncidentKind,
    IncidentState,
    Resolution,
    ReprocessStatus
);

/// An event as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// The provider; a newer server may add providers.
    #[cfg_attr(feature = "openapi", schema(value_type = Provider))]
    pub provider: WireEnum<Provider>,
    /// The provider's event id.
    pub event_id: String,
    /// The event type (null until the receipt arrives).
    pub event_type: Option<String>,
    /// The customer or account the effect is for.
    pub subject: Option<String>,
    /// The expected business effect.
    pub effect: Option<String>,
    /// The app's metadata.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<JsonObject>,
    /// When the provider says it happened.
    pub occurred_at: Option<Timestamp>,
    /// `awaiting_receipt`, `awaiting_result`, `succeeded`, `failed` or
    /// `overdue`; a newer server may add states.
    #[cfg_attr(feature = "openapi", schema(value_type = EventState))]
    pub state: WireEnum<EventState>,
    /// When the first receipt arrived.
    pub received_at: Option<Timestamp>,
    /// When the result is (was) due.
    pub deadline_at: Option<Timestamp>,
    /// How many receipts arrived.
    pub deliveries: u32,
    /// When the latest result arrived.
    pub result_at: Option<Timestamp>,
    /// The latest result.
    pub last_result: Option<ResultSummary>,
    /// The event's incident id, if one was ever opened.
    pub incident_id: Option<String>,
    /// While `awaiting_receipt`: when the app's receipt is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_due_at: Option<Timestamp>,
    /// The provider's own copy (provider tap or reconciler), once seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_copy: Option<ProviderCopy>,
}

impl From<&EventRecord> for EventView {
    fn from(record: &EventRecord) -> Self {
        EventView {
            provider: record.provider.into(),
            event_id: record.event_id.clone(),
            event_type: record.event_type.clone(),
            subject: record.subject.clone(),
            effect: record.effect.clone(),
            metadata: record.metadata.clone(),
            occurred_at: record.occurred_at,
            state: record.state.into(),
            received_at: record.received_at,
            deadline_at: record.deadline_at,
            deliveries: record.deliveries,
            result_at: record.result_at,
            last_result: record.last_result.clone(),
            incident_id: record.incident.as_ref().map(|i| i.id.clone()),
            receipt_due_at: record.receipt_due_at,
            provider_copy: record.provider_copy.clone(),
        }
    }
}

/// The event an incident is about, in brief.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventSummary {
    /// The provider; a newer server may add providers.
    #[cfg_attr(feature = "openapi", schema(value_type = Provider))]
    pub provider: WireEnum<Provider>,
    /// The provider's event id.
    pub event_id: String,
    /// The event type.
    pub event_type: Option<String>,
    /// The customer or account.
    pub subject: Option<String>,
}

/// An incident as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentView {
    /// The `inc_` id.
    pub id: String,
    /// `missing_result`, `failed_result` or `missing_receipt`; a newer
    /// server may add kinds.
    #[cfg_attr(feature = "openapi", schema(value_type = IncidentKind))]
    pub kind: WireEnum<IncidentKind>,
    /// `open`, `reprocessing` or `resolved`; a newer server may add states.
    #[cfg_attr(feature = "openapi", schema(value_type = IncidentState))]
    pub state: WireEnum<IncidentState>,
    /// `success_result`, `manual` or `receipt_arrived`, once resolved; a
    /// newer server may add resolutions.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Resolution>))]
    pub resolution: Option<WireEnum<Resolution>>,
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Reprocess>))]
    pub reprocess: Option<ReprocessView>,
    /// `false` for a test-mode event's incident (the provider's copy says
    /// `livemode: false`); `true` otherwise.
    #[serde(default = "default_livemode")]
    pub livemode: bool,
    /// The event.
    pub event: EventSummary,
}

fn default_livemode() -> bool {
    true
}

impl IncidentView {
    /// The view of `record`'s incident, if it has one.
    pub fn of(record: &EventRecord) -> Option<IncidentView> {
        record
            .incident
            .as_ref()
            .map(|incident| Self::build(incident, record))
    }

    fn build(incident: &Incident, record: &EventRecord) -> IncidentView {
        IncidentView {
            id: incident.id.clone(),
            kind: incident.kind.into(),
            state: incident.state.into(),
            resolution: incident.resolution.map(WireEnum::Known),
            opened_at: incident.opened_at,
            resolved_at: incident.resolved_at,
            last_error: incident.last_error.clone(),
            reopen_count: incident.reopen_count,
            reprocess_count: incident.reprocess_count,
            reprocess: incident.reprocess.as_ref().map(ReprocessView::from),
            livemode: incident.livemode,
            event: EventSummary {
                provider: record.provider.into(),
                event_id: record.event_id.clone(),
                event_type: record.event_type.clone(),
                subject: record.subject.clone(),
            },
        }
    }
}

/// A reprocess as the API shows it: [`Reprocess`] with a status and an
/// actor a newer server may have more of (kept by name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReprocessView {
    /// The `rep_` id; also the callback's `webhook-id`.
    pub id: String,
    /// When it was requested.
    pub requested_at: Timestamp,
    /// Who requested it (`console:alice@example.com`, `api_key:key_…`).
    pub requested_by: Actor,
    /// The requester's note, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where it stands.
    pub status: WireEnum<ReprocessStatus>,
    /// Callback attempts made so far.
    pub attempts: u32,
    /// When the callback got its 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
    /// After delivery: when the app's result is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_due_at: Option<Timestamp>,
    /// Seconds the app gets to report a result once the callback is delivered.
    pub result_deadline_seconds: u32,
}

impl From<&Reprocess> for ReprocessView {
    fn from(r: &Reprocess) -> Self {
        ReprocessView {
            id: r.id.clone(),
            requested_at: r.requested_at,
            requested_by: r.requested_by.clone(),
            note: r.note.clone(),
            status: r.status.into(),
            attempts: r.attempts,
            delivered_at: r.delivered_at,
            result_due_at: r.result_due_at,
            result_deadline_seconds: r.result_deadline_seconds,
        }
    }
}

/// Answer of `POST /v1/receipt` and `POST /v1/result`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignalResponse {
    /// The event after the signal.
    pub event: EventView,
    /// Its incident, if any.
    pub incident: Option<IncidentView>,
}

impl From<&EventRecord> for SignalResponse {
    fn from(record: &EventRecord) -> Self {
        SignalResponse {
            event: record.into(),
            incident: IncidentView::of(record),
        }
    }
}

/// One event with its incident and timeline (`GET /v1/events/{provider}/{event_id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDetail {
    /// The event.
    pub event: EventView,
    /// Its incident, if any.
    pub incident: Option<IncidentView>,
    /// Every timeline entry, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// One incident with its event and timeline (`GET /v1/incidents/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentDetail {
    /// The incident.
    pub incident: IncidentView,
    /// Its event.
    pub event: EventView,
    /// Every timeline entry, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

impl EventDetail {
    /// The detail of `record` with its timeline.
    pub fn new(record: &EventRecord, timeline: Vec<TimelineEntry>) -> Self {
        EventDetail {
            event: record.into(),
            incident: IncidentView::of(record),
            timeline,
        }
    }
}

/// A page of incidents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentList {
    /// The incidents, most recently opened first.
    pub data: Vec<IncidentView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventList {
    /// The events, newest first.
    pub data: Vec<EventView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Answer of `POST /v1/incidents/{id}/reprocess`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReprocessResponse {
    /// The new `rep_` id (the callback's `webhook-id`).
    pub reprocess_id: String,
    /// The incident, now `reprocessing`.
    pub incident: IncidentView,
}

/// Answer of `POST /v1/incidents/{id}/resolve`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolveResponse {
    /// The incident, now `resolved`.
    pub incident: IncidentView,
}

/// Answer of `POST /v1/incidents/{id}/proof-links`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningSecretView {
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops signing (after a rotation).
    pub expires_at: Option<Timestamp>,
}

/// An API key in the project settings (never the key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyView {
    /// The `key_` id (it appears as `api_key:<id>` on timelines).
    pub id: String,
    /// The first characters of the key.
    pub prefix: String,
    /// A label.
    pub name: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// What it may do (absent from servers before scopes: `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::scope::Scope>>))]
    pub scopes: Option<crate::scope::ScopeSet>,
}

/// One entry of the audit log (`GET /v1/audit-log`): who changed what,
/// when, from where, with the settings before and after (secrets as hints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntryView {
    /// The `aud_` id.
    pub id: String,
    /// When it happened.
    pub at: Timestamp,
    /// Who: `api_key:key_…`, `user:<email>` or `cli`.
    pub actor: String,
    /// The client IP as the server saw it (absent for the CLI).
    pub ip: Option<String>,
    /// What, e.g. `project.update`, `api_key.create`, `signing_secret.rotate`.
    pub action: String,
    /// On what: an id (`key_…`, `prl_…`, `prj_…`, `rpb_…`).
    pub target: String,
    /// The state before (secrets redacted), if any.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub before: Option<serde_json::Value>,
    /// The state after (secrets redacted), if any.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub after: Option<serde_json::Value>,
}

/// A page of the audit log (`GET /v1/audit-log`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditLogPage {
    /// The entries, newest first.
    pub data: Vec<AuditEntryView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The project settings (`GET`/`PATCH /v1/project`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Alert channels.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub alert_channels: serde_json::Value,
    /// Whether proof pages show `metadata` values.
    pub proof_show_metadata: bool,
    /// The signing secrets currently signing callbacks (values never shown again).
    pub signing_secrets: Vec<SigningSecretView>,
    /// When the project was created.
    pub created_at: Timestamp,
    /// The provider tap: where providers send their copies, which secrets
    /// are set (hints only) and the receipt grace (absent from older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_tap: Option<ProviderTapView>,
    /// Links traced timeline entries to their trace: an http(s) URL with
    /// `{trace_id}` and optionally `{span_id}` (absent when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_url_template: Option<String>,
    /// The fulfilment SLOs, one per event type.
    #[serde(default)]
    pub slos: Vec<SloObjective>,
}

/// The provider tap settings as shown (`GET /v1/project`'s
/// `provider_tap`): never a secret, only hints of their last characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderTapView {
    /// Where to point a second Stripe webhook endpoint:
    /// `{public_url}/v1/providers/stripe/webhooks/{project id}`.
    pub stripe_webhook_url: String,
    /// Where to point Shopify webhook subscriptions:
    /// `{public_url}/v1/providers/shopify/webhooks/{project id}`.
    pub shopify_webhook_url: String,
    /// A hint (`…` and the last four characters) of each Stripe endpoint secret.
    pub stripe_endpoint_secrets: Vec<String>,
    /// A hint of the Shopify app client secret, if set.
    pub shopify_client_secret: Option<String>,
    /// The restricted key's prefix and a hint (`rk_live_…a1b2`), if set.
    pub stripe_restricted_key: Option<String>,
    /// The event types the tap records.
    pub tracked_event_types: Vec<String>,
    /// Whether `tracked_event_types` is the default list.
    pub tracked_event_types_default: bool,
    /// Seconds the app gets to send its receipt after the provider sent the event.
    pub receipt_grace_seconds: u32,
    /// Per-event-type receipt grace in seconds.
    pub receipt_grace_by_event_type: BTreeMap<String, u32>,
}

/// `PATCH /v1/project`'s `provider_tap` object; absent fields are left as
/// they are. Secrets are write-only: they are replaced as a whole and
/// never shown again (`null` removes them).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderTapUpdate {
    /// Stripe webhook endpoint signing secrets (`whsec_…`), at most 5: a
    /// delivery is accepted if it is signed with any of them (rotation).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub stripe_endpoint_secrets: Option<Option<Vec<String>>>,
    /// The Shopify app's client secret (it signs `X-Shopify-Hmac-Sha256`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub shopify_client_secret: Option<Option<String>>,
    /// A Stripe restricted API key (`rk_live_…` or `rk_test_…`) with read
    /// access to Events, for the reconciler.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub stripe_restricted_key: Option<Option<String>>,
    /// The event types the tap records; `null` restores the defaults.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub tracked_event_types: Option<Option<Vec<String>>>,
    /// Seconds the app gets to send its receipt (1 – 604800; default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_grace_seconds: Option<u32>,
    /// Per-event-type receipt grace; replaces the whole table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_grace_by_event_type: Option<BTreeMap<String, u32>>,
}

impl std::fmt::Debug for ProviderTapUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |present: bool| if present { "<set>" } else { "<unchanged>" };
        f.debug_struct("ProviderTapUpdate")
            .field(
                "stripe_endpoint_secrets",
                &set(self.stripe_endpoint_secrets.is_some()),
            )
            .field(
                "shopify_client_secret",
                &set(self.shopify_client_secret.is_some()),
            )
            .field(
                "stripe_restricted_key",
                &set(self.stripe_restricted_key.is_some()),
            )
            .field("tracked_event_types", &self.tracked_event_types)
            .field("receipt_grace_seconds", &self.receipt_grace_seconds)
            .field(
                "receipt_grace_by_event_type",
                &self.receipt_grace_by_event_type,
            )
            .finish()
    }
}

/// Answer of `POST /v1/project/signing-secrets/rotate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` (200), or `unhealthy` (503) with the failing checks in `problems`.
    pub status: String,
    /// The server version.
    pub version: String,
    /// What is wrong, one entry per failing check (absent when healthy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<HealthProblem>,
}

/// One failing health check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthProblem {
    /// `writer`, `database`, `sweeper`, `dispatcher`, `alerts`, `pacer` or
    /// `reconciler`.
    pub check: String,
    /// What is wrong, in words.
    pub detail: String,
}

/// Body of `PATCH /v1/project`; absent fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectUpdate {
    /// Where repair callbacks are POSTed (http or https); null removes it,
    /// absent leaves it as it is.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub repair_url: Option<Option<String>>,
    /// Seconds from receipt to deadline (1 – 604800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_deadline_seconds: Option<u32>,
    /// Per-event-type deadlines; replaces the whole table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadlines_by_event_type: Option<BTreeMap<String, u32>>,
    /// Alert channels; replaces the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub alert_channels: Option<serde_json::Value>,
    /// Whether proof pages show `metadata` values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_show_metadata: Option<bool>,
    /// The provider tap settings to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_tap: Option<ProviderTapUpdate>,
    /// The trace URL template, e.g. `https://jaeger.example.com/trace/{trace_id}`
    /// (http or https, with `{trace_id}`, optionally `{span_id}`); null removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub trace_url_template: Option<Option<String>>,
    /// The fulfilment SLOs, one per event type; replaces the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slos: Option<Vec<SloObjective>>,
}

/// Body of `POST /v1/reprocess-batches`: which incidents (an explicit
/// `incident_ids` list, or a filter; both is an error), whether to only plan
/// (`dry_run`), and the pacing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReprocessBatchRequest {
    /// Explicit `inc_` ids (at most 10 000); excludes the filter fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_ids: Option<Vec<String>>,
    /// Only incidents in this state (`open`, `reprocessing`, `resolved`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<IncidentState>,
    /// Only this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<IncidentKind>,
    /// Only this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Only this event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Only this subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Only incidents opened at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_after: Option<Timestamp>,
    /// Only incidents opened before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_before: Option<Timestamp>,
    /// Plan only: answer 200 with what would be sent, send nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Repair callbacks started per second (0.01 – 1000, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
    /// At most this many of the batch's callbacks in flight (1 – 100, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// A note added to each incident's timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One incident of a batch (or of a plan) and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReprocessBatchItem {
    /// The `inc_` id.
    pub incident_id: String,
    /// Its event type.
    pub event_type: Option<String>,
    /// Its subject.
    pub subject: Option<String>,
    /// `pending` (will be sent), `skipped`, `cancelled`, `sent` (callback
    /// being delivered), `delivered`, `failed` (delivery gave up) or `resolved`.
    pub state: String,
    /// Why it is skipped: `callback_in_flight`, `incident_resolved`,
    /// `no_repair_url`, `incident_not_found`.
    pub reason: Option<String>,
    /// The `rep_` id once sent.
    pub reprocess_id: Option<String>,
}

/// Answer of a dry run: what a batch with this request would do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReprocessBatchPlan {
    /// Always true.
    pub dry_run: bool,
    /// Incidents selected.
    pub total: u64,
    /// How many would get a repair callback.
    pub to_send: u64,
    /// How many would be skipped.
    pub skipped: u64,
    /// Incidents to send, by event type (`""` for none).
    pub by_event_type: BTreeMap<String, u64>,
    /// Skipped incidents, by reason.
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// The first 50 selected incidents (state `pending` or `skipped`).
    pub incidents: Vec<ReprocessBatchItem>,
}

/// A batch's progress, derived from its items and their incidents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReprocessBatchCounts {
    /// Incidents in the batch.
    pub total: u64,
    /// Not sent yet.
    pub pending: u64,
    /// Skipped (see the items' reasons).
    pub skipped: u64,
    /// Not sent because the batch was cancelled.
    pub cancelled: u64,
    /// Repair callbacks requested (includes delivered, failed, in flight and
    /// waiting for a retry).
    pub sent: u64,
    /// Sent callbacks being delivered now: not yet attempted, or due or
    /// being attempted. One waiting for its next retry is not counted (it
    /// holds no concurrency slot).
    pub in_flight: u64,
    /// Sent callbacks that got a 2xx.
    pub delivered: u64,
    /// Sent callbacks whose delivery gave up.
    pub failed: u64,
    /// Sent incidents now resolved.
    pub resolved: u64,
}

/// A reprocess batch (`POST /v1/reprocess-batches` answers 202 with it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReprocessBatchView {
    /// The `rpb_` id.
    pub id: String,
    /// `running`, `completed` or `cancelled`.
    pub state: String,
    /// Callbacks started per second.
    pub rate_per_second: f64,
    /// Callbacks of this batch in flight at most.
    pub concurrency: u32,
    /// Who started it (`console:…`, `api_key:…`).
    pub started_by: String,
    /// The note on each timeline.
    pub note: Option<String>,
    /// When it was started.
    pub created_at: Timestamp,
    /// When it completed or was cancelled.
    pub finished_at: Option<Timestamp>,
    /// Progress.
    pub counts: ReprocessBatchCounts,
    /// The first 100 items, in batch order.
    pub items: Vec<ReprocessBatchItem>,
}

/// Tells "absent" (outer `None`, via `default`) from "null" (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_update_tells_absent_from_null() {
        let absent: ProjectUpdate = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.repair_url, None);
        let null: ProjectUpdate = serde_json::from_str(r#"{"repair_url": null}"#).unwrap();
        assert_eq!(null.repair_url, Some(None));
        assert_eq!(
            serde_json::to_string(&null).unwrap(),
            r#"{"repair_url":null}"#
        );
        assert_eq!(serde_json::to_string(&absent).unwrap(), "{}");
    }
}

// ---------------------------------------------------------------------------
// List filters: `GET /v1/incidents` and `GET /v1/events`

/// The filters and page of `GET /v1/incidents`: the one definition the
/// server parses, the client sends and the bindings convert to. `None`
/// means "any" (and, for `limit`, [`DEFAULT_PAGE_LIMIT`]).
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
    /// Only incidents opened at or after this time.
    pub opened_after: Option<Timestamp>,
    /// Only incidents opened before this time.
    pub opened_before: Option<Timestamp>,
    /// `true`: only live-mode incidents; `false`: only test-mode ones (the
    /// provider's copy says `livemode: false`); absent: both.
    pub livemode: Option<bool>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The filters and page of `GET /v1/events` (see [`IncidentFilter`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Only this customer or account (support look-ups).
    pub subject: Option<String>,
    /// Only this state.
    pub state: Option<EventState>,
    /// Only this event id (any provider).
    pub event_id: Option<String>,
    /// `true`: only live-mode events; `false`: only test-mode ones (the
    /// provider's copy says `livemode: false`); absent: both.
    pub livemode: Option<bool>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Reads query parameters one by one, with errors naming the parameter; an
/// empty value counts as absent.
struct QueryReader<F>(F);

impl<F: Fn(&str) -> Option<String>> QueryReader<F> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ValidationError>
    where
        T::Err: std::fmt::Display,
    {
        self.text(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|err| ValidationError::new(name, err.to_string()))
            })
            .transpose()
    }

    fn time(&self, name: &str) -> Result<Option<Timestamp>, ValidationError> {
        self.text(name)
            .map(|v| {
                Timestamp::parse_rfc3339(&v).map_err(|_| {
                    ValidationError::new(
                        name,
                        "must be an RFC 3339 time such as 2026-11-22T10:00:00Z",
                    )
                })
            })
            .transpose()
    }

    fn livemode(&self) -> Result<Option<bool>, ValidationError> {
        self.text("livemode")
            .map(|v| match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ValidationError::new(
                    "livemode",
                    "must be `true` (live-mode only) or `false` (test-mode only)",
                )),
            })
            .transpose()
    }

    fn limit(&self) -> Result<Option<u32>, ValidationError> {
        let limit = self.parsed::<u32>("limit").map_err(|_| {
            ValidationError::new(
                "limit",
                format!("must be a whole number from 1 to {MAX_PAGE_LIMIT}"),
            )
        })?;
        if let Some(limit) = limit {
            validate_page_limit(limit)?;
        }
        Ok(limit)
    }
}

fn push(query: &mut Vec<(&'static str, String)>, name: &'static str, value: Option<String>) {
    if let Some(value) = value {
        query.push((name, value));
    }
}

/// The filters and page of `GET /v1/audit-log`; `None` is "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditLogFilter {
    /// Only this action, e.g. `project.update`.
    pub action: Option<String>,
    /// Only this actor, e.g. `api_key:key_…`, `user:ops@example.com`, `cli`.
    pub actor: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries before this time.
    pub until: Option<Timestamp>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl AuditLogFilter {
    /// Parses the query parameters (`get(name)`), as the server does.
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Result<Self, ValidationError> {
        let q = QueryReader(get);
        Ok(AuditLogFilter {
            action: q.text("action"),
            actor: q.text("actor"),
            since: q.time("since")?,
            until: q.time("until")?,
            limit: q.limit()?,
            cursor: q.text("cursor"),
        })
    }

    /// The page size to ask the store for.
    pub fn page_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE_LIMIT)
    }
}

impl IncidentFilter {
    /// Parses the query parameters (`get(name)`), as the server does.
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Result<Self, ValidationError> {
        let q = QueryReader(get);
        Ok(IncidentFilter {
            state: q.parsed("state")?,
            kind: q.parsed("kind")?,
            provider: q.parsed("provider")?,
            event_type: q.text("event_type"),
            subject: q.text("subject"),
            opened_after: q.time("opened_after")?,
            opened_before: q.time("opened_before")?,
            livemode: q.livemode()?,
            limit: q.limit()?,
            cursor: q.text("cursor"),
        })
    }

    /// Checks what the server would refuse (the page size).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.limit.map_or(Ok(()), validate_page_limit)
    }

    /// The page size to ask the store for.
    pub fn page_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE_LIMIT)
    }

    /// The query parameters, as the client sends them.
    pub fn query(&self) -> Vec<(&'static str, String)> {
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
        push(&mut query, "livemode", self.livemode.map(|l| l.to_string()));
        push(&mut query, "limit", self.limit.map(|l| l.to_string()));
        push(&mut query, "cursor", self.cursor.clone());
        query
    }
}

impl EventFilter {
    /// Parses the query parameters (`get(name)`), as the server does.
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Result<Self, ValidationError> {
        let q = QueryReader(get);
        Ok(EventFilter {
            subject: q.text("subject"),
            state: q.parsed("state")?,
            event_id: q.text("event_id"),
            livemode: q.livemode()?,
            limit: q.limit()?,
            cursor: q.text("cursor"),
        })
    }

    /// Checks what the server would refuse (the page size).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.limit.map_or(Ok(()), validate_page_limit)
    }

    /// The page size to ask the store for.
    pub fn page_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE_LIMIT)
    }

    /// The query parameters, as the client sends them.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        push(&mut query, "subject", self.subject.clone());
        push(
            &mut query,
            "state",
            self.state.map(|s| s.as_str().to_owned()),
        );
        push(&mut query, "event_id", self.event_id.clone());
        push(&mut query, "livemode", self.livemode.map(|l| l.to_string()));
        push(&mut query, "limit", self.limit.map(|l| l.to_string()));
        push(&mut query, "cursor", self.cursor.clone());
        query
    }
}

impl ReprocessBatchRequest {
    /// The incident filter of a filter-selected batch (no page: a batch
    /// takes every match).
    pub fn filter(&self) -> IncidentFilter {
        IncidentFilter {
            state: self.state,
            kind: self.kind,
            provider: self.provider,
            event_type: self.event_type.clone(),
            subject: self.subject.clone(),
            opened_after: self.opened_after,
            opened_before: self.opened_before,
            livemode: None,
            limit: None,
            cursor: None,
        }
    }
}

// ---------------------------------------------------------------------------
// Error classes

/// The class of an API error by its HTTP status: the exception class the
/// SDK bindings raise (one map for Node, Python and Swift/Kotlin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// 401: the key is missing, unknown or revoked.
    Authentication,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 429.
    RateLimit,
    /// 400, 413, 415, 422: the request is wrong; do not retry it as is.
    InvalidRequest,
    /// 5xx.
    Server,
    /// Any other status.
    Api,
}

impl ErrorClass {
    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> ErrorClass {
        match status {
            401 => ErrorClass::Authentication,
            404 => ErrorClass::NotFound,
            409 => ErrorClass::Conflict,
            429 => ErrorClass::RateLimit,
            400 | 413 | 415 | 422 => ErrorClass::InvalidRequest,
            s if s >= 500 => ErrorClass::Server,
            _ => ErrorClass::Api,
        }
    }

    /// The bindings' class name, e.g. `NotFoundError`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Authentication => "AuthenticationError",
            ErrorClass::NotFound => "NotFoundError",
            ErrorClass::Conflict => "ConflictError",
            ErrorClass::RateLimit => "RateLimitError",
            ErrorClass::InvalidRequest => "InvalidRequestError",
            ErrorClass::Server => "ServerError",
            ErrorClass::Api => "APIError",
        }
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn an_incident_filter_survives_its_query() {
        let filter = IncidentFilter {
            state: Some(IncidentState::Open),
            kind: Some(IncidentKind::MissingResult),
            provider: Some(Provider::Stripe),
            event_type: Some("invoice.paid".into()),
            subject: Some("cus 1&x".into()),
            opened_after: Timestamp::parse_rfc3339("2026-11-22T10:00:00Z").ok(),
            opened_before: None,
            livemode: Some(false),
            limit: Some(5),
            cursor: Some("abc".into()),
        };
        let query = filter.query();
        let get = |name: &str| {
            query
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(IncidentFilter::from_query(get).unwrap(), filter);
    }

    #[test]
    fn livemode_is_true_or_false() {
        let parse = |value: &'static str| {
            EventFilter::from_query(move |name| (name == "livemode").then(|| value.to_owned()))
        };
        assert_eq!(parse("true").unwrap().livemode, Some(true));
        assert_eq!(parse("false").unwrap().livemode, Some(false));
        assert_eq!(parse("").unwrap().livemode, None);
        let err = parse("yes").unwrap_err();
        assert_eq!(err.param, "livemode");
    }

    #[test]
    fn page_limits_are_1_to_100() {
        let parse = |limit: &'static str| {
            IncidentFilter::from_query(move |name| (name == "limit").then(|| limit.to_owned()))
        };
        assert_eq!(parse("100").unwrap().limit, Some(100));
        for bad in ["0", "101", "1000", "ten", "-1"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.param, "limit");
            assert_eq!(err.message, "must be a whole number from 1 to 100");
        }
        assert!(
            EventFilter {
                limit: Some(1000),
                ..EventFilter::default()
            }
            .validate()
            .is_err()
        );
        assert_eq!(EventFilter::default().page_limit(), 20);
    }

    #[test]
    fn statuses_map_to_error_classes() {
        assert_eq!(ErrorClass::of_status(401).name(), "AuthenticationError");
        assert_eq!(ErrorClass::of_status(422), ErrorClass::InvalidRequest);
        assert_eq!(ErrorClass::of_status(503), ErrorClass::Server);
        assert_eq!(ErrorClass::of_status(418), ErrorClass::Api);
    }
}

/// Percentiles of a duration, in milliseconds, estimated from the
/// histogram buckets (within 0.4 %; `docs/analytics.md`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DurationStats {
    /// How many durations were measured.
    pub count: u64,
    /// Median (nearest rank), `null` when none.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

/// How the incidents opened in the window ended (first resolution).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepairStats {
    /// Incidents opened.
    pub opened: u64,
    /// Resolved by a success after a Reprocess was requested.
    pub repaired_by_reprocess: u64,
    /// Resolved by hand (with a note).
    pub resolved_manually: u64,
    /// Resolved otherwise (a late success or receipt with no Reprocess).
    pub resolved_otherwise: u64,
    /// Not resolved yet.
    pub still_open: u64,
}

/// The figures of one event type (or all of them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsFigures {
    /// Events whose receipt arrived in the window.
    pub received: u64,
    /// Receipt → first success, for the events received in the window.
    pub time_to_effect: DurationStats,
    /// Provider `occurred_at` → receipt (only events whose provider time is known).
    pub delivery_lag: DurationStats,
    /// Incident opened → first resolved, for incidents opened in the window.
    pub time_to_repair: DurationStats,
    /// How the window's incidents ended.
    pub repairs: RepairStats,
}

/// One event type's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventTypeStats {
    /// The event type (empty for events without one).
    pub event_type: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: StatsFigures,
}

/// One UTC day of the series (all event types, or the one asked for).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyStats {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// Events received that day.
    pub received: u64,
    /// Their time to effect.
    pub time_to_effect: DurationStats,
}

/// An event type's fulfilment SLO, as set in project settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SloObjective {
    /// The event type it is for.
    pub event_type: String,
    /// Target share of events applied within the threshold, in percent (e.g. 99.5).
    pub objective_percent: f64,
    /// The threshold, in seconds after receipt.
    pub threshold_seconds: u32,
    /// The SLO window, in days (default 30).
    #[serde(default = "default_slo_window_days")]
    pub window_days: u32,
}

fn default_slo_window_days() -> u32 {
    30
}

/// Where an SLO stands now, over its own window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SloStatus {
    /// The objective.
    #[serde(flatten)]
    pub objective: SloObjective,
    /// Events due (received in the window, at least the threshold ago).
    pub due: u64,
    /// Of those, how many succeeded within the threshold.
    pub good: u64,
    /// `good / due` in percent; `null` when nothing is due.
    pub attainment_percent: Option<f64>,
    /// Error budget left, in percent of the budget (negative: overspent).
    pub error_budget_left_percent: Option<f64>,
    /// Burn rate over the last hour (1 = spends the budget exactly).
    pub burn_rate_1h: f64,
    /// Whether a `slo.burning` rule fires now.
    pub burning: bool,
}

/// `GET /v1/stats`: time-to-effect analytics over a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsReport {
    /// Start of the window (inclusive, rounded down to a UTC day).
    pub from: Timestamp,
    /// End of the window (exclusive).
    pub to: Timestamp,
    /// The event type asked for, if any.
    pub event_type: Option<String>,
    /// All event types together.
    pub overall: StatsFigures,
    /// Per event type.
    pub by_event_type: Vec<EventTypeStats>,
    /// Per UTC day.
    pub daily: Vec<DailyStats>,
    /// The project's SLOs.
    pub slos: Vec<SloStatus>,
}

/// Query of `GET /v1/stats`: a window (`24h`, `7d`, `30d`, or `Nd`/`Nh`;
/// default `7d`) or `from`/`to`, and optionally one event type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// How far back from now: `24h`, `7d`, `30d`, `Nd` or `Nh` (excludes `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Start of a custom window (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    pub from: Option<Timestamp>,
    /// End of a custom window (RFC 3339; default now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    pub to: Option<Timestamp>,
    /// Only this event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

impl StatsQuery {
    /// The query parameters, as the client sends them.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        push(&mut query, "window", self.window.clone());
        push(&mut query, "from", self.from.map(Timestamp::to_rfc3339));
        push(&mut query, "to", self.to.map(Timestamp::to_rfc3339));
        push(&mut query, "event_type", self.event_type.clone());
        query
    }
}
