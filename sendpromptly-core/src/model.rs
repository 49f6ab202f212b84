//! The domain types of the public contract: providers, events, receipts,
//! results, incidents, reprocesses and timeline entries.
//!
//! These are plain data. The rules that move them from state to state live in
//! [`crate::machine`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A JSON object, as used for `metadata` and timeline `detail`.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Stripe webhooks (`evt_…` ids).
    Stripe,
    /// Shopify webhooks (`X-Shopify-Event-Id`).
    Shopify,
    /// Anything else the app wants watched.
    Custom,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 3] = [Provider::Stripe, Provider::Shopify, Provider::Custom];

    /// The wire name: `stripe`, `shopify` or `custom`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Shopify => "shopify",
            Provider::Custom => "custom",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that names no known value of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`; expected one of: {expected}")]
pub struct UnknownVariant {
    /// What was being parsed (e.g. `provider`).
    pub what: &'static str,
    /// The value that was given.
    pub value: String,
    /// The accepted values, comma-separated.
    pub expected: &'static str,
}

macro_rules! wire_enum_from_str {
    ($ty:ty, $what:literal, $expected:literal, [$($variant:expr),+ $(,)?]) => {
        impl FromStr for $ty {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                [$($variant),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownVariant { what: $what, value: s.to_owned(), expected: $expected })
            }
        }
    };
}

/// The wire name of a closed enum's value (what [`crate::wire::WireEnum`]
/// shows for a known value).
pub trait WireName {
    /// The wire name, e.g. `missing_result`.
    fn wire_name(&self) -> &'static str;
}

macro_rules! wire_name_from_as_str {
    ($($ty:ty),+) => {
        $(impl WireName for $ty {
            fn wire_name(&self) -> &'static str {
                self.as_str()
            }
        })+
    };
}

wire_enum_from_str!(
    Provider,
    "provider",
    "stripe, shopify, custom",
    [Provider::Stripe, Provider::Shopify, Provider::Custom]
);

/// Identity of an event inside a project: `(provider, event_id)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventKey {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id (Stripe `evt_…`, Shopify event id, or any custom id).
    pub event_id: String,
}

/// The app's signal that it durably accepted an event (`POST /v1/receipt`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The provider the event came from.
    pub provider: Provider,
    /// The provider's event id, 1–255 printable characters.
    pub event_id: String,
    /// The event type, e.g. `invoice.paid` or `orders/paid`.
    pub event_type: String,
    /// The customer or account the effect is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A label for the expected business effect, e.g. `credits.add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// Seconds until the result is due (1–604800); overrides the project's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_seconds: Option<u32>,
    /// Free-form JSON object, at most 8 KiB serialised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<JsonObject>,
    /// When the provider says the event happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Timestamp>,
    /// W3C `traceparent` of the span that sent this signal (also read from
    /// the `traceparent` header; this field wins). Stored on the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// W3C `tracestate` that goes with `traceparent` (also read from the header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// Whether the business effect was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// The effect was applied.
    Success,
    /// The effect could not be applied.
    Failure,
}

impl ResultStatus {
    /// The wire name: `success` or `failure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Success => "success",
            ResultStatus::Failure => "failure",
        }
    }
}

/// The app's signal that the business effect succeeded or failed (`POST /v1/result`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResultSignal {
    /// The provider the event came from.
    pub provider: Provider,
    /// The provider's event id.
    pub event_id: String,
    /// `success` or `failure`.
    pub status: ResultStatus,
    /// What went wrong (expected with `failure`), at most 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The repair callback that produced this result, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprocess_id: Option<String>,
    /// Free-form JSON object, at most 8 KiB serialised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<JsonObject>,
    /// W3C `traceparent` of the span that sent this signal (also read from
    /// the `traceparent` header; this field wins). Stored on the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// W3C `tracestate` that goes with `traceparent` (also read from the header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// Where an event stands with respect to its business effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// The provider's own copy was recorded (provider tap or reconciler)
    /// and the app has not sent a receipt yet; the receipt is due at
    /// `receipt_due_at`.
    AwaitingReceipt,
    /// Receipt recorded, result not yet in, deadline not yet passed.
    AwaitingResult,
    /// A success result was recorded (success always wins).
    Succeeded,
    /// The latest result was a failure.
    Failed,
    /// The deadline passed without a result.
    Overdue,
}

impl EventState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventState::AwaitingReceipt => "awaiting_receipt",
            EventState::AwaitingResult => "awaiting_result",
            EventState::Succeeded => "succeeded",
            EventState::Failed => "failed",
            EventState::Overdue => "overdue",
        }
    }
}

wire_enum_from_str!(
    EventState,
    "event state",
    "awaiting_receipt, awaiting_result, succeeded, failed, overdue",
    [
        EventState::AwaitingReceipt,
        EventState::AwaitingResult,
        EventState::Succeeded,
        EventState::Failed,
        EventState::Overdue
    ]
);

/// Why an incident was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// No result arrived by the deadline.
    MissingResult,
    /// The app reported a failure.
    FailedResult,
    /// The provider sent the event (seen by the provider tap or the
    /// reconciler) and the app sent no receipt within the receipt grace.
    MissingReceipt,
}

impl IncidentKind {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            IncidentKind::MissingResult => "missing_result",
            IncidentKind::FailedResult => "failed_result",
            IncidentKind::MissingReceipt => "missing_receipt",
        }
    }
}

wire_enum_from_str!(
    IncidentKind,
    "incident kind",
    "missing_result, failed_result, missing_receipt",
    [
        IncidentKind::MissingResult,
        IncidentKind::FailedResult,
        IncidentKind::MissingReceipt
    ]
);

/// Where an incident stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Needs attention.
    Open,
    /// A repair callback was requested; waiting for delivery and then a result.
    Reprocessing,
    /// Closed by a success result or by a person.
    Resolved,
}

impl IncidentState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Reprocessing => "reprocessing",
            IncidentState::Resolved => "resolved",
        }
    }
}

wire_enum_from_str!(
    IncidentState,
    "incident state",
    "open, reprocessing, resolved",
    [
        IncidentState::Open,
        IncidentState::Reprocessing,
        IncidentState::Resolved
    ]
);

/// How an incident was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A success result arrived.
    SuccessResult,
    /// A person resolved it by hand, with a note.
    Manual,
    /// The app's receipt arrived after a `missing_receipt` incident opened.
    ReceiptArrived,
}

impl Resolution {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Resolution::SuccessResult => "success_result",
            Resolution::Manual => "manual",
            Resolution::ReceiptArrived => "receipt_arrived",
        }
    }
}

/// Where a reprocess (one repair callback request) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReprocessStatus {
    /// The callback is being delivered (first attempt or retries pending).
    Delivering,
    /// The callback got a 2xx; waiting for the app's result.
    Delivered,
    /// Delivery gave up (attempts exhausted or `410 Gone`).
    GaveUp,
    /// Delivered, but no result arrived by the repair deadline.
    NoResult,
    /// A result arrived for the event (success or failure).
    Completed,
    /// A success result resolved the incident before delivery finished.
    Superseded,
}

impl ReprocessStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReprocessStatus::Delivering => "delivering",
            ReprocessStatus::Delivered => "delivered",
            ReprocessStatus::GaveUp => "gave_up",
            ReprocessStatus::NoResult => "no_result",
            ReprocessStatus::Completed => "completed",
            ReprocessStatus::Superseded => "superseded",
        }
    }

    /// Whether the callback is still being delivered (a new reprocess must wait).
    pub const fn in_flight(self) -> bool {
        matches!(self, ReprocessStatus::Delivering)
    }
}

wire_name_from_as_str!(
    Provider,
    EventState,
    IncidentKind,
    IncidentState,
    Resolution,
    ReprocessStatus
);

/// One request for a repair callback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reprocess {
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
    pub status: ReprocessStatus,
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

/// An incident: one event whose business effect is not known to be applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    /// The `inc_` id.
    pub id: String,
    /// Why it opened (updated when a failure explains a missing result).
    pub kind: IncidentKind,
    /// Where it stands.
    pub state: IncidentState,
    /// How it was resolved, once resolved.
    pub resolution: Option<Resolution>,
    /// When it first opened.
    pub opened_at: Timestamp,
    /// When it was last resolved.
    pub resolved_at: Option<Timestamp>,
    /// The last failure reason reported or observed.
    pub last_error: Option<String>,
    /// How many times it reopened after being resolved.
    pub reopen_count: u32,
    /// How many reprocesses were requested.
    pub reprocess_count: u32,
    /// The latest reprocess, if any.
    pub reprocess: Option<Reprocess>,
    /// `false` when the provider's copy says the event is a test-mode
    /// event (Stripe `livemode: false`): such an incident is never a
    /// live-mode incident. `true` otherwise (also for incidents stored
    /// before this field existed).
    #[serde(default = "live")]
    pub livemode: bool,
}

fn live() -> bool {
    true
}

impl Incident {
    /// Whether a repair callback for this incident is still being delivered.
    pub fn callback_in_flight(&self) -> bool {
        self.reprocess
            .as_ref()
            .is_some_and(|r| r.status.in_flight())
    }
}

/// How SendPromptly learned of a provider's own copy of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LearnedVia {
    /// The provider delivered it to SendPromptly's provider tap endpoint.
    Tap,
    /// The reconciler found it by listing the provider's events.
    Reconciler,
}

impl LearnedVia {
    /// The wire name: `tap` or `reconciler`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LearnedVia::Tap => "tap",
            LearnedVia::Reconciler => "reconciler",
        }
    }
}

wire_enum_from_str!(
    LearnedVia,
    "learned via",
    "tap, reconciler",
    [LearnedVia::Tap, LearnedVia::Reconciler]
);

/// The provider's own copy of an event, as the provider tap or the
/// reconciler saw it: what the app should have received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderCopy {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id of this copy (for a copy linked by
    /// fingerprint, another id than the record's).
    pub event_id: String,
    /// Stripe `type` or Shopify topic.
    pub event_type: String,
    /// The id of the object the event is about (`in_…`, an order id, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The customer or account the effect is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The amount in minor units (cents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// ISO 4217 currency code, upper case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// `false` for a test-mode event; `None` when the provider does not say
    /// (Shopify), which counts as live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub livemode: Option<bool>,
    /// When the provider created the event (Stripe `created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// How SendPromptly learned of it.
    pub learned_via: LearnedVia,
    /// The key shared by distinct event ids describing the same change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

impl ProviderCopy {
    /// Whether this is a live-mode event (anything but an explicit `false`).
    pub fn is_live(&self) -> bool {
        self.livemode != Some(false)
    }

    /// The amount in major units with its currency, e.g. `19.99 USD`.
    pub fn amount_text(&self) -> Option<String> {
        let amount = self.amount?;
        let currency = self.currency.as_deref()?;
        let exponent = crate::provider_event::currency_exponent(currency);
        if exponent == 0 {
            return Some(format!("{amount} {currency}"));
        }
        let scale = 10_i64.pow(exponent);
        let sign = if amount < 0 { "-" } else { "" };
        let abs = amount.unsigned_abs();
        let scale_u = scale.unsigned_abs();
        Some(format!(
            "{sign}{}.{:0width$} {currency}",
            abs / scale_u,
            abs % scale_u,
            width = exponent as usize
        ))
    }
}

/// The last result recorded for an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultSummary {
    /// `success` or `failure`.
    pub status: ResultStatus,
    /// The reported error, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The repair callback that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprocess_id: Option<String>,
}

/// Who did something: the subject of a timeline entry.
///
/// On the wire it is one string: `api_key:key_…`, `console:alice@example.com`
/// or `system:sweeper`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A request authenticated with an API key (by key id, never the key).
    ApiKey(String),
    /// A console user, by email.
    Console(String),
    /// A server component (`sweeper`, `dispatcher`, …).
    System(String),
    /// A kind of actor this version does not know (a newer server's), the
    /// whole wire string as sent (`batch:bat_…`).
    Other(String),
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Actor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Who acted: `api_key:<key id>`, `console:<email>` or `system:<component>`.",
            ))
            .examples(["console:alice@example.com"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Actor {}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::ApiKey(id) => write!(f, "api_key:{id}"),
            Actor::Console(email) => write!(f, "console:{email}"),
            Actor::System(component) => write!(f, "system:{component}"),
            Actor::Other(text) => f.write_str(text),
        }
    }
}

impl FromStr for Actor {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownVariant {
            what: "actor",
            value: s.to_owned(),
            expected: "api_key:<id>, console:<email>, system:<component>",
        };
        let (kind, who) = s.split_once(':').ok_or_else(unknown)?;
        match kind {
            "api_key" => Ok(Actor::ApiKey(who.to_owned())),
            "console" => Ok(Actor::Console(who.to_owned())),
            "system" => Ok(Actor::System(who.to_owned())),
            _ => Err(unknown()),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Forward compatible: an actor this version cannot name is kept as sent.
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(text
            .parse()
            .unwrap_or_else(|_| Actor::Other(text.into_owned())))
    }
}

/// What a timeline entry records.
///
/// Forward compatible: a kind this version does not know (written by a newer
/// server) is read as [`TimelineKind::Other`] with its wire name, and written
/// back unchanged, so an older client or SDK can read a newer timeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TimelineKind {
    /// The first receipt.
    ReceiptRecorded,
    /// A further receipt for a known event (a duplicate delivery).
    ReceiptDuplicate,
    /// A success result.
    ResultSuccess,
    /// A failure result.
    ResultFailure,
    /// The same result again (nothing changed).
    ResultDuplicate,
    /// The deadline passed without a result.
    DeadlinePassed,
    /// An incident opened.
    IncidentOpened,
    /// A resolved incident reopened (a new failure).
    IncidentReopened,
    /// An incident returned to `open` (repair gave up or produced no result).
    IncidentReturnedToOpen,
    /// An incident was resolved.
    IncidentResolved,
    /// A repair callback was requested.
    ReprocessRequested,
    /// One delivery attempt of a repair callback.
    CallbackAttempt,
    /// Delivery of a repair callback gave up.
    CallbackGaveUp,
    /// A delivered callback produced no result by its deadline.
    ReprocessNoResult,
    /// A proof link was created.
    ProofLinkCreated,
    /// A proof link was revoked.
    ProofLinkRevoked,
    /// One delivery attempt of an alert about this incident (email, Slack, webhook).
    AlertAttempt,
    /// The provider's own copy of the event (provider tap or reconciler).
    ProviderCopyRecorded,
    /// The same copy again, or another event id of the same change.
    ProviderCopyDuplicate,
    /// The receipt grace passed without a receipt.
    ReceiptGracePassed,
    /// A kind this version does not know, by its wire name (a newer server's).
    Other(String),
}

impl TimelineKind {
    /// Every kind this version knows (not [`TimelineKind::Other`]).
    pub const KNOWN: [TimelineKind; 20] = [
        TimelineKind::ReceiptRecorded,
        TimelineKind::ReceiptDuplicate,
        TimelineKind::ResultSuccess,
        TimelineKind::ResultFailure,
        TimelineKind::ResultDuplicate,
        TimelineKind::DeadlinePassed,
        TimelineKind::IncidentOpened,
        TimelineKind::IncidentReopened,
        TimelineKind::IncidentReturnedToOpen,
        TimelineKind::IncidentResolved,
        TimelineKind::ReprocessRequested,
        TimelineKind::CallbackAttempt,
        TimelineKind::CallbackGaveUp,
        TimelineKind::ReprocessNoResult,
        TimelineKind::ProofLinkCreated,
        TimelineKind::ProofLinkRevoked,
        TimelineKind::AlertAttempt,
        TimelineKind::ProviderCopyRecorded,
        TimelineKind::ProviderCopyDuplicate,
        TimelineKind::ReceiptGracePassed,
    ];

    /// The wire name, e.g. `receipt.recorded` (for [`TimelineKind::Other`],
    /// the name it was read with).
    pub fn as_str(&self) -> &str {
        match self {
            TimelineKind::ReceiptRecorded => "receipt.recorded",
            TimelineKind::ReceiptDuplicate => "receipt.duplicate",
            TimelineKind::ResultSuccess => "result.success",
            TimelineKind::ResultFailure => "result.failure",
            TimelineKind::ResultDuplicate => "result.duplicate",
            TimelineKind::DeadlinePassed => "deadline.passed",
            TimelineKind::IncidentOpened => "incident.opened",
            TimelineKind::IncidentReopened => "incident.reopened",
            TimelineKind::IncidentReturnedToOpen => "incident.returned_to_open",
            TimelineKind::IncidentResolved => "incident.resolved",
            TimelineKind::ReprocessRequested => "reprocess.requested",
            TimelineKind::CallbackAttempt => "callback.attempt",
            TimelineKind::CallbackGaveUp => "callback.gave_up",
            TimelineKind::ReprocessNoResult => "reprocess.no_result",
            TimelineKind::ProofLinkCreated => "proof_link.created",
            TimelineKind::ProofLinkRevoked => "proof_link.revoked",
            TimelineKind::AlertAttempt => "alert.attempt",
            TimelineKind::ProviderCopyRecorded => "provider_copy.recorded",
            TimelineKind::ProviderCopyDuplicate => "provider_copy.duplicate",
            TimelineKind::ReceiptGracePassed => "receipt_grace.passed",
            TimelineKind::Other(name) => name,
        }
    }

    /// Whether this version knows the kind.
    pub fn is_known(&self) -> bool {
        !matches!(self, TimelineKind::Other(_))
    }

    /// The kind with this wire name, or [`TimelineKind::Other`]: never fails.
    pub fn from_wire(name: &str) -> TimelineKind {
        Self::KNOWN
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .unwrap_or_else(|| TimelineKind::Other(name.to_owned()))
    }
}

impl FromStr for TimelineKind {
    type Err = std::convert::Infallible;
    /// Never fails: an unknown name is [`TimelineKind::Other`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from_wire(s))
    }
}

impl fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TimelineKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TimelineKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Self::from_wire(&name))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TimelineKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "What a timeline entry records. A newer server may add kinds: clients should \
                 accept and show any other value (the SDKs read it as an `Other` kind).",
            ))
            .enum_values(Some(
                Self::KNOWN.iter().map(|kind| kind.as_str().to_owned()),
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TimelineKind {}

/// One append-only entry on an event's timeline: `{at, kind, actor, detail}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: TimelineKind,
    /// Who did it.
    pub actor: Actor,
    /// Specifics (status codes, errors, notes…), a JSON object. A signal
    /// sent with a W3C trace context, and a repair callback that continued
    /// it, carry it as `trace` (a `TraceContextView`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: JsonObject,
    /// The entry's link in the event's tamper-evident chain: SHA-256 of the
    /// previous entry's hash and this entry's content, 64 hex digits
    /// (`chain` module, encoding `v1`). Absent on entries recorded before
    /// chaining began and on entries not yet stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl TimelineEntry {
    /// A new entry; `detail` must be a JSON object (anything else is wrapped as `{"value": …}`).
    pub fn new(at: Timestamp, kind: TimelineKind, actor: Actor, detail: serde_json::Value) -> Self {
        let detail = match detail {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => JsonObject::new(),
            other => {
                let mut map = JsonObject::new();
                map.insert("value".into(), other);
                map
            }
        };
        TimelineEntry {
            at,
            kind,
            actor,
            detail,
            hash: None,
        }
    }
}

#[cfg(test)]
mod timeline_kind_tests {
    use super::*;

    #[test]
    fn every_known_kind_round_trips_and_an_unknown_one_is_kept_by_name() {
        for kind in TimelineKind::KNOWN {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: TimelineKind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, kind);
            assert!(back.is_known());
        }
        let names: std::collections::BTreeSet<&str> = TimelineKind::KNOWN
            .iter()
            .map(TimelineKind::as_str)
            .collect();
        assert_eq!(names.len(), TimelineKind::KNOWN.len(), "names are distinct");

        let newer: TimelineKind = serde_json::from_str("\"payout.reconciled\"").unwrap();
        assert_eq!(newer, TimelineKind::Other("payout.reconciled".into()));
        assert!(!newer.is_known());
        assert_eq!(
            serde_json::to_string(&newer).unwrap(),
            "\"payout.reconciled\""
        );
        assert_eq!(
            "incident.opened".parse::<TimelineKind>(),
            Ok(TimelineKind::IncidentOpened)
        );
        let entry: TimelineEntry = serde_json::from_str(
            r#"{"at":"2026-11-22T10:00:05.000Z","kind":"payout.reconciled","actor":"system:x","detail":{}}"#,
        )
        .unwrap();
        assert_eq!(entry.kind.as_str(), "payout.reconciled");
    }
}
