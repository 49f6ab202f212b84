//! Errors as JSON descriptions that `index.js` turns into
//! `SendPromptlyError` subclasses.
//!
//! A rejected promise or thrown error from this module carries the message
//! `MARKER + JSON`, where the JSON object has at least `kind` (`api`,
//! `transport`, `validation`, `config`, `decode`, `signature`), `message`
//! and `type`, plus the facts of that kind (`status`, `param`, `requestId`,
//! `attempts`, `retryable`, …).

use napi::Status;
use sendpromptly_client::{Error, ErrorCategory, TransportErrorKind};
use serde_json::{Map, Value, json};

/// The prefix of every error message produced by this module.
pub const MARKER: &str = "SENDPROMPTLY_ERROR:";

/// A JSON error description as a napi error.
pub fn to_napi(description: Value) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("{MARKER}{description}"))
}

fn millis(d: std::time::Duration) -> Value {
    json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The description of a client error.
pub fn describe(err: &Error) -> Value {
    let mut out = Map::new();
    out.insert("message".into(), json!(err.to_string()));
    out.insert("type".into(), json!(err.kind()));
    out.insert("status".into(), json!(err.status()));
    out.insert("requestId".into(), json!(err.request_id()));
    out.insert("attempts".into(), json!(err.attempts()));
    out.insert("retryable".into(), json!(err.is_retryable()));
    let kind = match err {
        Error::Api(api) => {
            out.insert("param".into(), json!(api.param));
            out.insert("detail".into(), json!(api.message));
            // The contract's one status -> class map (Python uses it too).
            out.insert(
                "errorClass".into(),
                json!(sendpromptly_client::core::wire::ErrorClass::of_status(api.status).name()),
            );
            if let Some(after) = api.retry_after {
                out.insert("retryAfterMs".into(), millis(after));
            }
            "api"
        }
        Error::Transport(t) => {
            let reason = match t.kind {
                TransportErrorKind::Connect => "connect",
                TransportErrorKind::ConnectionClosed => "connection_closed",
                TransportErrorKind::Timeout => "timeout",
                _ => "other",
            };
            out.insert("reason".into(), json!(reason));
            out.insert("url".into(), json!(t.url));
            out.insert("elapsedMs".into(), millis(t.elapsed));
            out.insert("budgetExhausted".into(), json!(t.budget_exhausted));
            "transport"
        }
        Error::Validation(v) => {
            out.insert("param".into(), json!(v.param));
            out.insert("detail".into(), json!(v.message));
            "validation"
        }
        Error::Config { .. } => "config",
        Error::Decode { .. } => "decode",
        _ => "unknown",
    };
    out.insert("kind".into(), json!(kind));
    Value::Object(out)
}

/// A client error as a napi error.
pub fn client(err: &Error) -> napi::Error {
    to_napi(describe(err))
}

/// A local validation error (a field the caller passed is unusable).
pub fn validation(param: &str, message: impl Into<String>) -> Error {
    Error::Validation(sendpromptly_client::ValidationError::new(
        param,
        message.into(),
    ))
}

/// The variant name of an error enum, in snake case (`NoMatchingSignature`
/// → `no_matching_signature`), from its `Debug` output.
fn variant_code(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut code = String::new();
    for (i, c) in name.chars().enumerate() {
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

/// A verification failure: `provider` is `stripe`, `shopify` or
/// `sendpromptly` (repair callbacks).
pub fn signature(
    provider: &str,
    category: ErrorCategory,
    err: &(impl std::fmt::Display + std::fmt::Debug),
) -> napi::Error {
    let category = match category {
        ErrorCategory::BadSignature => "bad_signature",
        ErrorCategory::StaleTimestamp => "stale_timestamp",
        ErrorCategory::Malformed => "malformed",
        ErrorCategory::Configuration => "configuration",
    };
    to_napi(json!({
        "kind": "signature",
        "type": category,
        "category": category,
        "provider": provider,
        "code": variant_code(&format!("{err:?}")),
        "message": err.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_codes_are_snake_case() {
        assert_eq!(variant_code("NoMatchingSignature"), "no_matching_signature");
        assert_eq!(
            variant_code("Signature(TimestampTooOld { timestamp: 1 })"),
            "signature"
        );
        assert_eq!(variant_code("MissingHeader"), "missing_header");
    }
}
