//! The two error types the foreign languages see, each mapped once from
//! the Rust SDK's errors: [`SendPromptlyError`] for calls to the server and
//! [`SignatureVerificationError`] for the verifiers.

use std::time::Duration;

use sendpromptly_client::{Error, ErrorCategory, TransportErrorKind};

/// What went wrong below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TransportReason {
    /// No connection could be made (refused, unreachable, DNS, TLS).
    Connect,
    /// The connection failed or closed before a complete answer arrived.
    ConnectionClosed,
    /// An attempt, or the call's total budget, ran out of time.
    Timeout,
    /// Anything else below HTTP.
    Other,
}

/// A failed call: one case per kind of the Rust SDK's `Error`.
/// `description` is the full human-readable message.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SendPromptlyError {
    /// The server answered with an error status.
    #[error("{description}")]
    Api {
        /// The whole message.
        description: String,
        /// The HTTP status (e.g. 422).
        status: i32,
        /// The API error type, e.g. `validation_error`, `invalid_api_key`.
        error_type: String,
        /// The offending field, when there is one.
        param: Option<String>,
        /// The server's `Request-Id`.
        request_id: Option<String>,
        /// The `Retry-After` the server asked for, in milliseconds.
        retry_after_ms: Option<i64>,
        /// Attempts made.
        attempts: i32,
        /// Whether the status is a retryable one (429, 5xx, key in flight).
        retryable: bool,
    },
    /// No usable answer: connection failed, closed, or timed out.
    #[error("{description}")]
    Transport {
        /// The whole message.
        description: String,
        /// What happened.
        reason: TransportReason,
        /// The URL called.
        url: String,
        /// Attempts made.
        attempts: i32,
        /// How long the call took in all, in milliseconds.
        elapsed_ms: i64,
        /// Whether the call's total time budget ran out.
        budget_exhausted: bool,
    },
    /// Rejected before sending: a field breaks the contract's limits.
    #[error("{description}")]
    Validation {
        /// The whole message.
        description: String,
        /// The field, e.g. `event_id`.
        param: String,
    },
    /// The client is misconfigured (no API key, bad URL, bad setting).
    #[error("{description}")]
    Configuration {
        /// The whole message.
        description: String,
    },
    /// A success answer whose body could not be read.
    #[error("{description}")]
    Decode {
        /// The whole message.
        description: String,
        /// The HTTP status.
        status: i32,
        /// The server's `Request-Id`.
        request_id: Option<String>,
    },
}

/// Milliseconds as the foreign languages' signed 64-bit integer.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A count as a signed 32-bit integer (saturating).
pub fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<Error> for SendPromptlyError {
    fn from(err: Error) -> Self {
        let description = err.to_string();
        match err {
            Error::Api(api) => SendPromptlyError::Api {
                description,
                retryable: api.is_retryable(),
                status: api.status.into(),
                error_type: api.kind,
                param: api.param,
                request_id: api.request_id,
                retry_after_ms: api.retry_after.map(millis),
                attempts: int(api.attempts),
            },
            Error::Transport(t) => SendPromptlyError::Transport {
                description,
                reason: match t.kind {
                    TransportErrorKind::Connect => TransportReason::Connect,
                    TransportErrorKind::ConnectionClosed => TransportReason::ConnectionClosed,
                    TransportErrorKind::Timeout => TransportReason::Timeout,
                    _ => TransportReason::Other,
                },
                url: t.url,
                attempts: int(t.attempts),
                elapsed_ms: millis(t.elapsed),
                budget_exhausted: t.budget_exhausted,
            },
            Error::Validation(v) => SendPromptlyError::Validation {
                description,
                param: v.param.to_string(),
            },
            Error::Decode {
                status, request_id, ..
            } => SendPromptlyError::Decode {
                description,
                status: status.into(),
                request_id,
            },
            // `Config` and any later kind.
            _ => SendPromptlyError::Configuration { description },
        }
    }
}

/// A local validation error: an argument the caller passed is unusable.
pub fn invalid(param: &str, message: impl Into<String>) -> SendPromptlyError {
    Error::Validation(sendpromptly_client::ValidationError::new(
        param,
        message.into(),
    ))
    .into()
}

/// A configuration error with this message.
pub fn config(message: impl Into<String>) -> SendPromptlyError {
    Error::Config {
        message: message.into(),
    }
    .into()
}

/// A rejected webhook or repair callback: one case per category of the
/// core verifiers. `provider` is `stripe`, `shopify` or `sendpromptly`
/// (repair callbacks); `code` names the precise cause in snake case, e.g.
/// `no_matching_signature`, `timestamp_too_old`, `missing_header`.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SignatureVerificationError {
    /// No signature matches: tampered body, wrong secret, forged header.
    #[error("{description}")]
    BadSignature {
        /// The whole message.
        description: String,
        /// Whose signature.
        provider: String,
        /// The precise cause.
        code: String,
    },
    /// The timestamp is outside the tolerance (a replay, or a clock off).
    #[error("{description}")]
    StaleTimestamp {
        /// The whole message.
        description: String,
        /// Whose signature.
        provider: String,
        /// The precise cause.
        code: String,
    },
    /// A header is missing or unreadable, or the body is not the JSON expected.
    #[error("{description}")]
    Malformed {
        /// The whole message.
        description: String,
        /// Whose signature.
        provider: String,
        /// The precise cause.
        code: String,
    },
    /// No secret, or a secret that is not valid (`whsec_…`).
    #[error("{description}")]
    SecretConfiguration {
        /// The whole message.
        description: String,
        /// Whose signature.
        provider: String,
        /// The precise cause.
        code: String,
    },
}

/// The variant name of an error enum, in snake case (`NoMatchingSignature`
/// → `no_matching_signature`), from its `Debug` output.
fn variant_code(debug: &str) -> String {
    let mut code = String::new();
    for (i, c) in debug
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .enumerate()
    {
        if c.is_ascii_uppercase() {
            if i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

impl SignatureVerificationError {
    /// Maps a core verifier's error (its category, `Debug` variant and
    /// message) for `provider`.
    pub fn new(
        provider: &str,
        category: ErrorCategory,
        cause: &(impl std::fmt::Display + std::fmt::Debug),
    ) -> Self {
        let description = cause.to_string();
        let provider = provider.to_owned();
        let code = variant_code(&format!("{cause:?}"));
        match category {
            ErrorCategory::BadSignature => Self::BadSignature {
                description,
                provider,
                code,
            },
            ErrorCategory::StaleTimestamp => Self::StaleTimestamp {
                description,
                provider,
                code,
            },
            ErrorCategory::Malformed => Self::Malformed {
                description,
                provider,
                code,
            },
            ErrorCategory::Configuration => Self::SecretConfiguration {
                description,
                provider,
                code,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_codes_are_snake_case() {
        assert_eq!(variant_code("NoMatchingSignature"), "no_matching_signature");
        assert_eq!(
            variant_code("Signature(TimestampTooOld { t: 1 })"),
            "signature"
        );
    }

    #[test]
    fn client_errors_keep_their_facts() {
        let err: SendPromptlyError = Error::Validation(sendpromptly_client::ValidationError::new(
            "event_id",
            "must not be empty".to_owned(),
        ))
        .into();
        match err {
            SendPromptlyError::Validation { param, description } => {
                assert_eq!(param, "event_id");
                assert!(description.contains("must not be empty"), "{description}");
            }
            other => panic!("{other:?}"),
        }
    }
}
