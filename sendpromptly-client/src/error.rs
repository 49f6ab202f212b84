//! [`Error`]: everything a call can fail with, with the facts as fields.

use std::fmt;
use std::time::Duration;

pub use sendpromptly_core::validation::ValidationError;

/// A failed call.
///
/// Match on the variant, or use the accessors ([`Error::status`],
/// [`Error::request_id`], [`Error::is_retryable`], [`Error::attempts`]),
/// which language bindings map onto their own exception types.
///
/// ```
/// # async fn run(client: sendpromptly_client::Client) {
/// use sendpromptly_client::{Error, Provider};
///
/// match client.receipt(Provider::Stripe, "evt_1", "invoice.paid").await {
///     Ok(_) => {}
///     Err(Error::Api(api)) if api.status == 422 => {
///         eprintln!("fix field {:?}: {}", api.param, api.message)
///     }
///     // Down or slow: log and carry on; the webhook handler must not fail.
///     Err(other) => eprintln!("SendPromptly unavailable: {other}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No usable answer: the connection failed, was closed, or timed out.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The call was rejected before sending: a field breaks the contract's
    /// limits (checked by the same rules the server applies).
    #[error("invalid {}: {}", .0.param, .0.message)]
    Validation(#[from] ValidationError),
    /// The client is misconfigured (no API key, bad URL, bad setting).
    #[error("SendPromptly client configuration: {message}")]
    Config {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A success answer whose body could not be read as the expected JSON.
    #[error(
        "could not read the server's answer (status {status}, request id {}): {message}",
        request_id.as_deref().unwrap_or("none")
    )]
    Decode {
        /// The HTTP status.
        status: u16,
        /// The server's `Request-Id`.
        request_id: Option<String>,
        /// What did not parse.
        message: String,
    },
}

impl Error {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(api) => Some(api.status),
            Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Request-Id` (quote it to support), when it answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api(api) => api.request_id.as_deref(),
            Error::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The API error type (e.g. `validation_error`), or the local
    /// equivalent: `transport_error`, `timeout`, `invalid_request` (local
    /// validation), `configuration_error`, `decode_error`.
    pub fn kind(&self) -> &str {
        match self {
            Error::Api(api) => &api.kind,
            Error::Transport(t) if t.kind == TransportErrorKind::Timeout => "timeout",
            Error::Transport(_) => "transport_error",
            Error::Validation(_) => "invalid_request",
            Error::Config { .. } => "configuration_error",
            Error::Decode { .. } => "decode_error",
        }
    }

    /// Whether the failure was of a retryable kind (connection error,
    /// timeout, 429, 5xx) — i.e. the call gave up because its attempts or
    /// time budget ran out, not because the request was wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(api) => api.is_retryable(),
            Error::Transport(_) => true,
            _ => false,
        }
    }

    /// How many attempts were made (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        match self {
            Error::Api(api) => api.attempts,
            Error::Transport(t) => t.attempts,
            Error::Decode { .. } => 1,
            Error::Validation(_) | Error::Config { .. } => 0,
        }
    }
}

/// An error answer from the server: `{"error": {"type", "message", "param"}}`
/// plus what the HTTP layer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status (e.g. 422).
    pub status: u16,
    /// The machine-readable type, e.g. `validation_error`, `not_found`,
    /// `reprocess_in_flight` (`http_error` when the body was not a
    /// SendPromptly error, e.g. from a proxy).
    pub kind: String,
    /// What is wrong and what to do, for a person.
    pub message: String,
    /// The offending field, when there is one (e.g. `event_id`).
    pub param: Option<String>,
    /// The `Request-Id` response header.
    pub request_id: Option<String>,
    /// The `Retry-After` the server asked for, if any.
    pub retry_after: Option<Duration>,
    /// How many attempts the call made before returning this answer.
    pub attempts: u32,
}

impl ApiError {
    /// Whether the status is one that is retried (429, 5xx, or
    /// `409 idempotency_key_in_flight`).
    pub fn is_retryable(&self) -> bool {
        self.status == 429
            || self.status >= 500
            || (self.status == 409 && self.kind == "idempotency_key_in_flight")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SendPromptly API error {} {}: {}",
            self.status, self.kind, self.message
        )?;
        if let Some(param) = &self.param {
            write!(f, " (param `{param}`)")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// What went wrong below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// No connection could be made (refused, unreachable, DNS, TLS).
    Connect,
    /// The connection failed or was closed before a complete answer arrived.
    ConnectionClosed,
    /// An attempt (or the call's total budget) ran out of time.
    Timeout,
    /// Anything else below HTTP (e.g. building the request).
    Other,
}

impl TransportErrorKind {
    /// A short description.
    pub fn describe(self) -> &'static str {
        match self {
            TransportErrorKind::Connect => "could not connect",
            TransportErrorKind::ConnectionClosed => {
                "the connection failed before a complete answer arrived"
            }
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Other => "request failed",
        }
    }
}

/// No usable answer from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// What happened.
    pub kind: TransportErrorKind,
    /// Details (the underlying error chain).
    pub message: String,
    /// The URL called (without credentials).
    pub url: String,
    /// How many attempts the call made.
    pub attempts: u32,
    /// How long the call took in all.
    pub elapsed: Duration,
    /// Whether the call's total time budget ran out.
    pub budget_exhausted: bool,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SendPromptly {} ({}): {}; {} attempt(s) in {} ms",
            self.kind.describe(),
            self.url,
            self.message,
            self.attempts,
            self.elapsed.as_millis()
        )?;
        if self.budget_exhausted {
            f.write_str("; the call's time budget ran out")?;
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, kind: &str) -> ApiError {
        ApiError {
            status,
            kind: kind.into(),
            message: "m".into(),
            param: Some("event_id".into()),
            request_id: Some("req_1".into()),
            retry_after: None,
            attempts: 1,
        }
    }

    #[test]
    fn retryable_statuses() {
        assert!(api(429, "rate_limited").is_retryable());
        assert!(api(503, "storage_unavailable").is_retryable());
        assert!(api(409, "idempotency_key_in_flight").is_retryable());
        assert!(!api(409, "reprocess_in_flight").is_retryable());
        assert!(!api(422, "validation_error").is_retryable());
        assert!(!api(401, "invalid_api_key").is_retryable());
    }

    #[test]
    fn display_names_everything() {
        let text = Error::from(api(422, "validation_error")).to_string();
        assert!(text.contains("422"), "{text}");
        assert!(text.contains("validation_error"), "{text}");
        assert!(text.contains("event_id"), "{text}");
        assert!(text.contains("req_1"), "{text}");
        let err = Error::from(api(422, "validation_error"));
        assert_eq!(err.status(), Some(422));
        assert_eq!(err.request_id(), Some("req_1"));
        assert_eq!(err.kind(), "validation_error");
    }
}
