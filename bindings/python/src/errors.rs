//! Rust errors as the exceptions of `sendpromptly._errors` (defined in
//! Python so they read and subclass like any Python exception). This module
//! only picks the class and copies the fields.

use pyo3::BoundObject;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use sendpromptly_client::core::shopify::ShopifyError;
use sendpromptly_client::core::standard_webhooks::StandardWebhooksError;
use sendpromptly_client::core::stripe::StripeError;
use sendpromptly_client::{Error, ErrorCategory, RepairCallbackError, TransportErrorKind};

const MODULE: &str = "sendpromptly._errors";

/// Instantiates `sendpromptly._errors.<class>(message, **fields)`.
fn build(py: Python<'_>, class: &str, message: String, fields: &[(&str, Py<PyAny>)]) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let cls = py.import(MODULE)?.getattr(class)?;
        let kwargs = PyDict::new(py);
        for (name, value) in fields {
            kwargs.set_item(*name, value)?;
        }
        Ok(PyErr::from_value(cls.call((message,), Some(&kwargs))?))
    })();
    made.unwrap_or_else(|err| err)
}

fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: T) -> Py<PyAny> {
    match value.into_pyobject(py) {
        Ok(v) => v.into_any().unbind(),
        Err(_) => py.None(),
    }
}

/// A failed SDK call as its exception.
pub fn to_py(py: Python<'_>, err: &Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::Api(api) => {
            // The contract's one status -> class map (Node uses it too).
            let class = sendpromptly_client::core::wire::ErrorClass::of_status(api.status).name();
            build(
                py,
                class,
                message,
                &[
                    ("status", obj(py, api.status)),
                    ("type", obj(py, api.kind.as_str())),
                    ("error_message", obj(py, api.message.as_str())),
                    ("param", obj(py, api.param.as_deref())),
                    ("request_id", obj(py, api.request_id.as_deref())),
                    (
                        "retry_after",
                        obj(py, api.retry_after.map(|d| d.as_secs_f64())),
                    ),
                    ("attempts", obj(py, api.attempts)),
                ],
            )
        }
        Error::Transport(t) => {
            let (class, kind) = match t.kind {
                TransportErrorKind::Timeout => ("APITimeoutError", "timeout"),
                TransportErrorKind::Connect => ("APIConnectionError", "connect"),
                TransportErrorKind::ConnectionClosed => ("APIConnectionError", "connection_closed"),
                _ => ("TransportError", "other"),
            };
            build(
                py,
                class,
                message,
                &[
                    ("kind", obj(py, kind)),
                    ("url", obj(py, t.url.as_str())),
                    ("attempts", obj(py, t.attempts)),
                    ("elapsed", obj(py, t.elapsed.as_secs_f64())),
                    ("budget_exhausted", obj(py, t.budget_exhausted)),
                ],
            )
        }
        Error::Validation(v) => build(
            py,
            "ValidationError",
            message,
            &[
                ("param", obj(py, v.param.to_string())),
                ("error_message", obj(py, v.message.to_string())),
            ],
        ),
        Error::Config { .. } => build(py, "ConfigurationError", message, &[]),
        Error::Decode {
            status, request_id, ..
        } => build(
            py,
            "DecodeError",
            message,
            &[
                ("status", obj(py, *status)),
                ("request_id", obj(py, request_id.as_deref())),
            ],
        ),
        _ => build(py, "SendPromptlyError", message, &[]),
    }
}

fn signature_error(
    py: Python<'_>,
    provider: &str,
    category: ErrorCategory,
    code: &str,
    message: String,
) -> PyErr {
    let (class, category) = match category {
        ErrorCategory::BadSignature => ("BadSignatureError", "bad_signature"),
        ErrorCategory::StaleTimestamp => ("StaleTimestampError", "stale_timestamp"),
        ErrorCategory::Malformed => ("MalformedRequestError", "malformed"),
        _ => ("SecretConfigurationError", "configuration"),
    };
    build(
        py,
        class,
        message,
        &[
            ("provider", obj(py, provider)),
            ("category", obj(py, category)),
            ("code", obj(py, code)),
        ],
    )
}

fn standard_webhooks_code(err: &StandardWebhooksError) -> &'static str {
    match err {
        StandardWebhooksError::MissingHeader { .. } => "missing_header",
        StandardWebhooksError::MalformedHeader { .. } => "malformed_header",
        StandardWebhooksError::MalformedTimestamp { .. } => "malformed_timestamp",
        StandardWebhooksError::TimestampTooOld { .. } => "timestamp_too_old",
        StandardWebhooksError::TimestampInFuture { .. } => "timestamp_in_future",
        StandardWebhooksError::NoMatchingSignature { .. } => "no_matching_signature",
        StandardWebhooksError::NoSecrets => "no_secrets",
        StandardWebhooksError::InvalidSecret { .. } => "invalid_secret",
    }
}

/// A rejected repair callback.
pub fn repair(py: Python<'_>, err: &RepairCallbackError) -> PyErr {
    let code = match err {
        RepairCallbackError::Signature(inner) => standard_webhooks_code(inner),
        RepairCallbackError::MalformedBody { .. } => "malformed_body",
        RepairCallbackError::UnexpectedType { .. } => "unexpected_type",
        RepairCallbackError::IdMismatch { .. } => "id_mismatch",
    };
    signature_error(py, "sendpromptly", err.category(), code, err.to_string())
}

/// A rejected Stripe webhook.
pub fn stripe(py: Python<'_>, err: &StripeError) -> PyErr {
    let code = match err {
        StripeError::MissingHeader => "missing_header",
        StripeError::MalformedHeader { .. } => "malformed_header",
        StripeError::NoV1Signature => "no_v1_signature",
        StripeError::NoMatchingSignature => "no_matching_signature",
        StripeError::TimestampOutsideTolerance { .. } => "timestamp_outside_tolerance",
        StripeError::InvalidPayload { .. } => "invalid_payload",
        StripeError::MissingSecret => "missing_secret",
    };
    signature_error(py, "stripe", err.category(), code, err.to_string())
}

/// A rejected Shopify delivery.
pub fn shopify(py: Python<'_>, err: &ShopifyError) -> PyErr {
    let code = match err {
        ShopifyError::MissingHeaders { .. } => "missing_headers",
        ShopifyError::EmptyBody => "empty_body",
        ShopifyError::InvalidHmac { .. } => "invalid_hmac",
        ShopifyError::NoSecrets => "no_secrets",
        ShopifyError::InvalidJson { .. } => "invalid_json",
    };
    signature_error(py, "shopify", err.category(), code, err.to_string())
}

/// A target of `success_for` / `receipt_for` of an unsupported type.
pub fn bad_target(what: &str, found: &Bound<'_, PyAny>) -> PyErr {
    let name = found
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    PyTypeError::new_err(format!("{what}, not {name}"))
}
