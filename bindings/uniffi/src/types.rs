//! Records and enums crossing the boundary, and their conversions to and
//! from the Rust SDK's types. JSON objects (metadata, API answers) cross as
//! JSON text.

use std::time::Duration;

use sendpromptly_client as sdk;
use sendpromptly_client::{EventTarget, Timestamp};

use crate::errors::{SendPromptlyError, config, int, invalid, millis};

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Provider {
    /// Stripe webhooks.
    Stripe,
    /// Shopify webhooks.
    Shopify,
    /// Anything else the app wants watched.
    Custom,
}

impl From<Provider> for sdk::Provider {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Stripe => sdk::Provider::Stripe,
            Provider::Shopify => sdk::Provider::Shopify,
            Provider::Custom => sdk::Provider::Custom,
        }
    }
}

impl From<sdk::Provider> for Provider {
    fn from(p: sdk::Provider) -> Self {
        match p {
            sdk::Provider::Stripe => Provider::Stripe,
            sdk::Provider::Shopify => Provider::Shopify,
            sdk::Provider::Custom => Provider::Custom,
        }
    }
}

/// Whether the business effect was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ResultStatus {
    /// It was.
    Success,
    /// It could not be; opens an incident at once.
    Failure,
}

impl From<ResultStatus> for sdk::ResultStatus {
    fn from(s: ResultStatus) -> Self {
        match s {
            ResultStatus::Success => sdk::ResultStatus::Success,
            ResultStatus::Failure => sdk::ResultStatus::Failure,
        }
    }
}

/// Which failures are retried (all four by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct RetryOn {
    /// Connection refused, reset or closed before a complete answer.
    pub connection_errors: bool,
    /// An attempt took longer than `attempt_timeout_ms`.
    pub timeouts: bool,
    /// `429 Too Many Requests`.
    pub too_many_requests: bool,
    /// Any `5xx` answer.
    pub server_errors: bool,
}

/// The retry policy of every call: the Rust SDK's `RetryConfig` field for
/// field, durations in milliseconds. A `null`/`nil` field keeps the SDK's
/// value (defaults: 3 attempts, 100 ms initial and 1000 ms maximum backoff,
/// jitter 0.5, 3000 ms total budget, 2000 ms per attempt, retry on
/// everything retryable; `SENDPROMPTLY_RETRY_*` environment overrides first).
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct RetryConfig {
    /// Most attempts per call, the first included (1 = never retry).
    #[uniffi(default)]
    pub max_attempts: Option<i32>,
    /// Wait before the first retry, doubled before each further one.
    #[uniffi(default)]
    pub initial_backoff_ms: Option<i64>,
    /// Longest wait between two attempts (a longer `Retry-After` wins).
    #[uniffi(default)]
    pub max_backoff_ms: Option<i64>,
    /// Fraction (0–1) of each wait removed at random.
    #[uniffi(default)]
    pub jitter: Option<f64>,
    /// Longest time one call may take, attempts and waits included.
    #[uniffi(default)]
    pub total_budget_ms: Option<i64>,
    /// Longest time one attempt may take (cut to what is left of the budget).
    #[uniffi(default)]
    pub attempt_timeout_ms: Option<i64>,
    /// Which failures are retried.
    #[uniffi(default)]
    pub retry_on: Option<RetryOn>,
}

/// A duration in milliseconds from a foreign integer; negative is a
/// configuration error naming `field`.
pub fn duration_ms(field: &str, ms: i64) -> Result<Duration, SendPromptlyError> {
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| config(format!("{field} must be at least 0 milliseconds, got {ms}")))
}

impl From<&sdk::RetryConfig> for RetryConfig {
    fn from(r: &sdk::RetryConfig) -> Self {
        RetryConfig {
            max_attempts: Some(int(r.max_attempts)),
            initial_backoff_ms: Some(millis(r.initial_backoff)),
            max_backoff_ms: Some(millis(r.max_backoff)),
            jitter: Some(r.jitter),
            total_budget_ms: Some(millis(r.total_budget)),
            attempt_timeout_ms: Some(millis(r.attempt_timeout)),
            retry_on: Some(RetryOn {
                connection_errors: r.retry_on.connection_errors,
                timeouts: r.retry_on.timeouts,
                too_many_requests: r.retry_on.too_many_requests,
                server_errors: r.retry_on.server_errors,
            }),
        }
    }
}

impl RetryConfig {
    /// `base` with the fields set here, validated by the SDK.
    pub fn apply(&self, base: sdk::RetryConfig) -> Result<sdk::RetryConfig, SendPromptlyError> {
        let mut r = base;
        if let Some(n) = self.max_attempts {
            r.max_attempts = u32::try_from(n)
                .map_err(|_| config(format!("max_attempts must be at least 1, got {n}")))?;
        }
        if let Some(v) = self.initial_backoff_ms {
            r.initial_backoff = duration_ms("initial_backoff_ms", v)?;
        }
        if let Some(v) = self.max_backoff_ms {
            r.max_backoff = duration_ms("max_backoff_ms", v)?;
        }
        if let Some(v) = self.jitter {
            r.jitter = v;
        }
        if let Some(v) = self.total_budget_ms {
            r.total_budget = duration_ms("total_budget_ms", v)?;
        }
        if let Some(v) = self.attempt_timeout_ms {
            r.attempt_timeout = duration_ms("attempt_timeout_ms", v)?;
        }
        if let Some(on) = self.retry_on {
            r.retry_on = sdk::RetryOn {
                connection_errors: on.connection_errors,
                timeouts: on.timeouts,
                too_many_requests: on.too_many_requests,
                server_errors: on.server_errors,
            };
        }
        r.validate()?;
        Ok(r)
    }
}

/// The SDK's default retry policy, every field filled (what a `Client`
/// uses without `SENDPROMPTLY_RETRY_*` overrides).
#[uniffi::export]
pub fn default_retry_config() -> RetryConfig {
    (&sdk::RetryConfig::default()).into()
}

/// The policy of background mode: 20 attempts within 5 minutes.
#[uniffi::export]
pub fn background_retry_config() -> RetryConfig {
    (&sdk::RetryConfig::background()).into()
}

/// The default policy with the `SENDPROMPTLY_RETRY_*` environment overrides.
#[uniffi::export]
pub fn retry_config_from_env() -> Result<RetryConfig, SendPromptlyError> {
    Ok((&sdk::RetryConfig::from_env()?).into())
}

/// A new `Idempotency-Key` (`sp_idem_` + 128 random bits).
#[uniffi::export]
pub fn new_idempotency_key() -> String {
    sdk::new_idempotency_key()
}

/// A receipt: the app durably accepted this event. Fill one from a verified
/// provider event with `StripeEvent.to_receipt()` / `ShopifyDelivery.to_receipt()`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Receipt {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id (1–255 printable characters), e.g. `evt_1Q2w3E`.
    pub event_id: String,
    /// The event type, e.g. `invoice.paid` or `orders/paid`.
    pub event_type: String,
    /// The customer or account the effect is for, e.g. `cus_9s8d7f`.
    #[uniffi(default)]
    pub subject: Option<String>,
    /// A label for the expected business effect, e.g. `credits.add`.
    #[uniffi(default)]
    pub effect: Option<String>,
    /// Seconds until the result is due (1–604800), overriding the project's settings.
    #[uniffi(default)]
    pub deadline_seconds: Option<i32>,
    /// A JSON object (at most 8 KiB), kept with the event and sent back in repair callbacks.
    #[uniffi(default)]
    pub metadata_json: Option<String>,
    /// When the provider says the event happened (RFC 3339).
    #[uniffi(default)]
    pub occurred_at: Option<String>,
    /// Use this `Idempotency-Key` instead of a generated one.
    #[uniffi(default)]
    pub idempotency_key: Option<String>,
}

impl From<sdk::Receipt> for Receipt {
    fn from(r: sdk::Receipt) -> Self {
        Receipt {
            provider: r.provider.into(),
            event_id: r.event_id,
            event_type: r.event_type,
            subject: r.subject,
            effect: r.effect,
            deadline_seconds: r.deadline_seconds.map(int),
            metadata_json: r.metadata.map(|m| serde_json::Value::Object(m).to_string()),
            occurred_at: r.occurred_at.map(Timestamp::to_rfc3339),
            idempotency_key: None,
        }
    }
}

/// Parses a JSON object passed as text.
pub fn json_object(
    param: &str,
    text: Option<&str>,
) -> Result<Option<sdk::JsonObject>, SendPromptlyError> {
    text.map(|text| match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(param, "must be a JSON object")),
        Err(err) => Err(invalid(param, format!("is not valid JSON: {err}"))),
    })
    .transpose()
}

impl Receipt {
    /// The SDK's builder for this receipt.
    pub fn builder(&self, client: &sdk::Client) -> Result<sdk::ReceiptBuilder, SendPromptlyError> {
        let mut b = client.receipt(
            self.provider.into(),
            self.event_id.clone(),
            self.event_type.clone(),
        );
        if let Some(v) = &self.subject {
            b = b.subject(v.clone());
        }
        if let Some(v) = &self.effect {
            b = b.effect(v.clone());
        }
        if let Some(v) = self.deadline_seconds {
            let v = u32::try_from(v)
                .map_err(|_| invalid("deadline_seconds", "must be from 1 to 604800"))?;
            b = b.deadline_seconds(v);
        }
        if let Some(m) = json_object("metadata", self.metadata_json.as_deref())? {
            b = b.metadata(m);
        }
        if let Some(at) = &self.occurred_at {
            let at = Timestamp::parse_rfc3339(at)
                .map_err(|err| invalid("occurred_at", format!("is not an RFC 3339 time: {err}")))?;
            b = b.occurred_at(at);
        }
        if let Some(key) = &self.idempotency_key {
            b = b.idempotency_key(key.clone());
        }
        Ok(b)
    }
}

/// Which event a result is about: provider and event id, and the repair
/// callback it answers (`rep_…`), if any. `target()` of a verified event,
/// delivery or repair callback fills it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EventRef {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id.
    pub event_id: String,
    /// The repair callback this result answers.
    #[uniffi(default)]
    pub reprocess_id: Option<String>,
}

impl EventRef {
    /// The reference of any SDK event target.
    pub fn of(target: &impl EventTarget) -> Self {
        let key = target.event_key();
        EventRef {
            provider: key.provider.into(),
            event_id: key.event_id,
            reprocess_id: target.reprocess_id().map(str::to_owned),
        }
    }
}

/// A result with every field: `success`/`failure` are its short forms.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ResultSignal {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id.
    pub event_id: String,
    /// Success or failure.
    pub status: ResultStatus,
    /// What went wrong (expected with a failure, at most 4 KiB).
    #[uniffi(default)]
    pub error: Option<String>,
    /// The repair callback (`rep_…`) this result answers.
    #[uniffi(default)]
    pub reprocess_id: Option<String>,
    /// A JSON object (at most 8 KiB).
    #[uniffi(default)]
    pub metadata_json: Option<String>,
    /// Use this `Idempotency-Key` instead of a generated one.
    #[uniffi(default)]
    pub idempotency_key: Option<String>,
}

impl ResultSignal {
    /// The short form's fields as a full result.
    pub fn of(
        target: EventRef,
        status: ResultStatus,
        error: Option<String>,
        metadata_json: Option<String>,
        idempotency_key: Option<String>,
    ) -> Self {
        ResultSignal {
            provider: target.provider,
            event_id: target.event_id,
            status,
            error,
            reprocess_id: target.reprocess_id,
            metadata_json,
            idempotency_key,
        }
    }

    /// The SDK's builder for this result.
    pub fn builder(&self, client: &sdk::Client) -> Result<sdk::ResultBuilder, SendPromptlyError> {
        let mut b = client.result(
            self.provider.into(),
            self.event_id.clone(),
            self.status.into(),
        );
        if let Some(v) = &self.error {
            b = b.error(v.clone());
        }
        if let Some(v) = &self.reprocess_id {
            b = b.reprocess_id(v.clone());
        }
        if let Some(m) = json_object("metadata", self.metadata_json.as_deref())? {
            b = b.metadata(m);
        }
        if let Some(key) = &self.idempotency_key {
            b = b.idempotency_key(key.clone());
        }
        Ok(b)
    }
}

/// The answer to a receipt or result.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SignalResponse {
    /// Whether this receipt created the event (HTTP 201), not a duplicate delivery.
    pub created: bool,
    /// The HTTP status.
    pub status: i32,
    /// Whether the server replayed an earlier answer to the same idempotency key.
    pub replayed: bool,
    /// Attempts the call made.
    pub attempts: i32,
    /// The server's `Request-Id`.
    pub request_id: Option<String>,
    /// The `Idempotency-Key` sent (the same on every attempt).
    pub idempotency_key: Option<String>,
    /// The event's state: `awaiting_result`, `succeeded`, `failed` or `overdue`.
    pub event_state: String,
    /// The event's incident, if one was ever opened.
    pub incident_id: Option<String>,
    /// The incident's state: `open`, `reprocessing` or `resolved`.
    pub incident_state: Option<String>,
    /// The event as the API answers it (JSON object).
    pub event_json: String,
    /// The incident as the API answers it (JSON object), if any.
    pub incident_json: Option<String>,
}

/// A serde value's JSON string form (`"open"` → `open`).
fn wire_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(err) => err.to_string(),
    }
}

/// JSON text of an API answer.
pub fn json_text(value: &impl serde::Serialize) -> Result<String, SendPromptlyError> {
    serde_json::to_string(value).map_err(|err| config(format!("could not encode JSON: {err}")))
}

impl TryFrom<sdk::SignalResponse> for SignalResponse {
    type Error = SendPromptlyError;

    fn try_from(r: sdk::SignalResponse) -> Result<Self, SendPromptlyError> {
        Ok(SignalResponse {
            created: r.created(),
            status: r.meta.status.into(),
            replayed: r.meta.replayed,
            attempts: int(r.meta.attempts),
            request_id: r.meta.request_id.clone(),
            idempotency_key: r.meta.idempotency_key.clone(),
            event_state: wire_name(&r.event.state),
            incident_id: r.incident.as_ref().map(|i| i.id.clone()),
            incident_state: r.incident.as_ref().map(|i| wire_name(&i.state)),
            event_json: json_text(&r.event)?,
            incident_json: r.incident.as_ref().map(json_text).transpose()?,
        })
    }
}
