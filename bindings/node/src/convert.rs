//! The options objects JavaScript passes in, and their conversion into the
//! Rust client's settings and builders.

use std::time::Duration;

use napi_derive::napi;
use sendpromptly_client::{
    Client, ClientOptions, Error, JsonObject, Provider, ReceiptBuilder, ResultBuilder,
    ResultStatus, RetryConfig, RetryOn, SignalResponse, Timestamp,
};
use serde_json::{Value, json};

use crate::errors::validation;

/// The retry policy of every call. Fields left out keep the SDK's defaults
/// (with the `SENDPROMPTLY_RETRY_*` environment overrides applied).
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct RetryOptions {
    /// Most attempts per call, the first included (1 = never retry). Default 3.
    pub max_attempts: Option<f64>,
    /// Wait before the first retry in milliseconds, doubled before each further one. Default 100.
    pub initial_backoff_ms: Option<f64>,
    /// Longest wait between two attempts in milliseconds (a longer `Retry-After` still wins). Default 1000.
    pub max_backoff_ms: Option<f64>,
    /// Fraction (0–1) of each wait removed at random. Default 0.5.
    pub jitter: Option<f64>,
    /// Longest time one call may take in milliseconds, all attempts and waits included. Default 3000.
    pub total_budget_ms: Option<f64>,
    /// Longest time one attempt may take in milliseconds (cut to what is left of the budget). Default 2000.
    pub attempt_timeout_ms: Option<f64>,
    /// Which failures are retried: any of `connect`, `timeout`, `429`, `5xx` (an empty list retries nothing). Default all four.
    pub retry_on: Option<Vec<String>>,
}

/// How a client is built. `apiKey` and `baseUrl` fall back to the
/// `SENDPROMPTLY_API_KEY` and `SENDPROMPTLY_URL` environment variables.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct NativeClientOptions {
    /// The project's API key (`sp_…`).
    pub api_key: Option<String>,
    /// The server's base URL, e.g. `https://sendpromptly.example.com`.
    pub base_url: Option<String>,
    /// The retry policy of every call.
    pub retry: Option<RetryOptions>,
    /// Longest time to open a connection in milliseconds. Default 1000.
    pub connect_timeout_ms: Option<f64>,
}

/// A receipt: the app durably accepted this event.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct ReceiptOptions {
    /// `stripe`, `shopify` or `custom`.
    pub provider: String,
    /// The provider's event id (1–255 printable characters), e.g. `evt_1Q2w3E`.
    pub event_id: String,
    /// The event type, e.g. `invoice.paid` or `orders/paid`.
    pub event_type: String,
    /// The customer or account the effect is for, e.g. `cus_9s8d7f`.
    pub subject: Option<String>,
    /// A label for the expected business effect, e.g. `credits.add`.
    pub effect: Option<String>,
    /// Seconds until the result is due (1–604800), overriding the project's settings.
    pub deadline_seconds: Option<f64>,
    /// A JSON object (at most 8 KiB serialised) kept with the event and sent back in repair callbacks.
    pub metadata: Option<Value>,
    /// When the provider says the event happened: an RFC 3339 string (or a `Date`, converted by the package).
    pub occurred_at: Option<String>,
    /// W3C `traceparent` of the span sending this signal (the package fills
    /// it from the active OpenTelemetry span when `@opentelemetry/api` is installed).
    pub traceparent: Option<String>,
    /// W3C `tracestate` that goes with `traceparent`.
    pub tracestate: Option<String>,
    /// Use this `Idempotency-Key` instead of a generated one.
    pub idempotency_key: Option<String>,
}

/// A result: the business effect of an event succeeded or failed.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct ResultOptions {
    /// `stripe`, `shopify` or `custom`.
    pub provider: String,
    /// The provider's event id.
    pub event_id: String,
    /// `success` or `failure` (only read by `result()`).
    pub status: Option<String>,
    /// What went wrong (expected with `failure`, at most 4 KiB).
    pub error: Option<String>,
    /// The repair callback (`rep_…`) this result answers, if any.
    pub reprocess_id: Option<String>,
    /// A JSON object (at most 8 KiB serialised).
    pub metadata: Option<Value>,
    /// W3C `traceparent` of the span sending this signal (the package fills
    /// it from the active OpenTelemetry span when `@opentelemetry/api` is installed).
    pub traceparent: Option<String>,
    /// W3C `tracestate` that goes with `traceparent`.
    pub tracestate: Option<String>,
    /// Use this `Idempotency-Key` instead of a generated one.
    pub idempotency_key: Option<String>,
}

fn duration_ms(field: &str, ms: f64) -> Result<Duration, Error> {
    if !ms.is_finite() || !(0.0..=1e12).contains(&ms) {
        return Err(Error::Config {
            message: format!("{field} must be a number of milliseconds from 0 to 10^12, got {ms}"),
        });
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn whole(field: &str, value: f64, min: f64, max: f64) -> Result<u32, String> {
    if value.is_finite() && value.fract() == 0.0 && value >= min && value <= max {
        // In range and whole: the cast is exact.
        Ok(value as u32)
    } else {
        Err(format!(
            "{field} must be a whole number from {min} to {max}, got {value}"
        ))
    }
}

/// Applies the JavaScript retry options on top of `base`.
pub fn retry_config(
    base: RetryConfig,
    options: Option<&RetryOptions>,
) -> Result<RetryConfig, Error> {
    let Some(options) = options else {
        return Ok(base);
    };
    let mut retry = base;
    if let Some(n) = options.max_attempts {
        retry.max_attempts = whole("retry.maxAttempts", n, 1.0, 1000.0)
            .map_err(|message| Error::Config { message })?;
    }
    if let Some(ms) = options.initial_backoff_ms {
        retry.initial_backoff = duration_ms("retry.initialBackoffMs", ms)?;
    }
    if let Some(ms) = options.max_backoff_ms {
        retry.max_backoff = duration_ms("retry.maxBackoffMs", ms)?;
    }
    if let Some(jitter) = options.jitter {
        retry.jitter = jitter;
    }
    if let Some(ms) = options.total_budget_ms {
        retry.total_budget = duration_ms("retry.totalBudgetMs", ms)?;
    }
    if let Some(ms) = options.attempt_timeout_ms {
        retry.attempt_timeout = duration_ms("retry.attemptTimeoutMs", ms)?;
    }
    if let Some(list) = &options.retry_on {
        let text = if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(",")
        };
        retry.retry_on = RetryOn::parse(&text).map_err(|reason| Error::Config {
            message: format!("retry.retryOn: {reason}"),
        })?;
    }
    retry.validate()?;
    Ok(retry)
}

/// Builds the Rust client: the environment first, then what JavaScript gave.
pub fn client(options: Option<NativeClientOptions>) -> Result<Client, Error> {
    let options = options.unwrap_or_default();
    let mut settings = ClientOptions::from_env()?;
    if options.api_key.is_some() {
        settings.api_key = options.api_key;
    }
    if options.base_url.is_some() {
        settings.base_url = options.base_url;
    }
    if let Some(ms) = options.connect_timeout_ms {
        settings.connect_timeout = duration_ms("connectTimeoutMs", ms)?;
    }
    settings.retry = retry_config(settings.retry, options.retry.as_ref())?;
    settings.user_agent_suffix = Some(format!("sendpromptly-node/{}", env!("CARGO_PKG_VERSION")));
    Client::with_options(settings)
}

pub fn provider(text: &str) -> Result<Provider, Error> {
    text.parse::<Provider>()
        .map_err(|err| validation("provider", err.to_string()))
}

fn metadata(value: Option<Value>) -> Result<Option<JsonObject>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(validation("metadata", "must be a plain JSON object")),
    }
}

/// The receipt builder for these options.
pub fn receipt(sp: &Client, options: ReceiptOptions) -> Result<ReceiptBuilder, Error> {
    let mut builder = sp.receipt(
        provider(&options.provider)?,
        options.event_id,
        options.event_type,
    );
    if let Some(subject) = options.subject {
        builder = builder.subject(subject);
    }
    if let Some(effect) = options.effect {
        builder = builder.effect(effect);
    }
    if let Some(seconds) = options.deadline_seconds {
        let seconds = whole("deadlineSeconds", seconds, 0.0, f64::from(u32::MAX))
            .map_err(|message| validation("deadline_seconds", message))?;
        builder = builder.deadline_seconds(seconds);
    }
    if let Some(metadata) = metadata(options.metadata)? {
        builder = builder.metadata(metadata);
    }
    if let Some(at) = options.occurred_at {
        let at = Timestamp::parse_rfc3339(&at).map_err(|err| {
            validation(
                "occurred_at",
                format!("must be an RFC 3339 time or a Date: {err}"),
            )
        })?;
        builder = builder.occurred_at(at);
    }
    if let Some(traceparent) = options.traceparent {
        builder = builder.traceparent(traceparent);
    }
    if let Some(tracestate) = options.tracestate {
        builder = builder.tracestate(tracestate);
    }
    if let Some(key) = options.idempotency_key {
        builder = builder.idempotency_key(key);
    }
    Ok(builder)
}

/// The result builder for these options, with `status` fixed by the method
/// called (`None`: read it from the options, as `result()` does).
pub fn result(
    sp: &Client,
    options: ResultOptions,
    status: Option<ResultStatus>,
) -> Result<ResultBuilder, Error> {
    let status = match status {
        Some(status) => status,
        None => match options.status.as_deref() {
            Some("success") => ResultStatus::Success,
            Some("failure") => ResultStatus::Failure,
            Some(other) => {
                return Err(validation(
                    "status",
                    format!("must be `success` or `failure`, got {other:?}"),
                ));
            }
            None => return Err(validation("status", "is required: `success` or `failure`")),
        },
    };
    let mut builder = sp.result(provider(&options.provider)?, options.event_id, status);
    if let Some(error) = options.error {
        builder = builder.error(error);
    }
    if let Some(id) = options.reprocess_id {
        builder = builder.reprocess_id(id);
    }
    if let Some(metadata) = metadata(options.metadata)? {
        builder = builder.metadata(metadata);
    }
    if let Some(traceparent) = options.traceparent {
        builder = builder.traceparent(traceparent);
    }
    if let Some(tracestate) = options.tracestate {
        builder = builder.tracestate(tracestate);
    }
    if let Some(key) = options.idempotency_key {
        builder = builder.idempotency_key(key);
    }
    Ok(builder)
}

/// Any serialisable answer as a JavaScript value.
pub fn to_json(value: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|err| Error::Config {
        message: format!("could not convert the answer: {err}"),
    })
}

/// A signal answer: the API's `{event, incident}` plus `meta` and `created`.
pub fn signal_response(response: &SignalResponse) -> Result<Value, Error> {
    let mut value = to_json(response)?;
    if let Value::Object(map) = &mut value {
        let meta = &response.meta;
        map.insert(
            "meta".into(),
            json!({
                "status": meta.status,
                "requestId": meta.request_id,
                "replayed": meta.replayed,
                "attempts": meta.attempts,
                "idempotencyKey": meta.idempotency_key,
            }),
        );
        map.insert("created".into(), json!(response.created()));
    }
    Ok(value)
}
