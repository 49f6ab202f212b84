//! Stripe webhook verification (`Stripe-Signature`) and the typed event
//! envelope.
//!
//! The rules are those of the official SDKs (stripe-python `_webhook.py`,
//! stripe-node `Webhooks.ts`, stripe-go `webhook/client.go`):
//!
//! - the header is a comma-separated list of `key=value` items:
//!   `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`; the first `t` is the
//!   timestamp, every `v1` is a candidate signature (Stripe sends one per
//!   endpoint secret while a secret is being rolled), `v0` (test-mode legacy)
//!   and unknown schemes are ignored;
//! - the signature is the lowercase hex HMAC-SHA256, keyed with the endpoint
//!   secret's UTF-8 bytes (`whsec_…` as a string, not base64-decoded), of
//!   `"{t}.{raw body}"` — the body exactly as received: re-serialising the JSON
//!   breaks it;
//! - checks run in the SDKs' order: header parse → a `v1` present → a `v1`
//!   matches (constant time) → timestamp not older than the tolerance → the
//!   body is a JSON event.
//!
//! One deliberate difference: in the SDKs a tolerance of `0` (or `None`)
//! *disables* the age check. Here the tolerance is always enforced; `0`
//! means "no age at all", i.e. only `t >= now` passes. Timestamps in the
//! future are accepted, as in the SDKs (Stripe only guards against replays).
//!
//! ```
//! use sendpromptly_core::stripe::{construct_event, generate_test_header};
//! use sendpromptly_core::Timestamp;
//!
//! let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000000,"livemode":false,"data":{"object":{"id":"in_1","object":"invoice"}}}"#;
//! let now = Timestamp::from_unix_seconds(1_700_000_100);
//! let header = generate_test_header(body, "whsec_test", now.unix_seconds());
//! let event = construct_event(body, &header, "whsec_test", now).unwrap();
//! assert_eq!(event.event_type, "invoice.paid");
//! assert_eq!(event.object_id(), Some("in_1"));
//! ```

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Timestamp;
use crate::standard_webhooks::quote;

/// The header Stripe signs webhooks with.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";
/// The SDKs' default tolerance: a signed timestamp may be this many seconds old.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
/// The signature scheme that is checked.
pub const EXPECTED_SCHEME: &str = "v1";

/// Why a Stripe webhook was rejected. The variants follow the official SDKs'
/// error cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// The `Stripe-Signature` header is absent or empty.
    #[error(
        "no Stripe-Signature header value was provided: read it from the incoming request's headers and pass it unchanged"
    )]
    MissingHeader,
    /// The header could not be parsed into a timestamp and signatures.
    #[error(
        "unable to extract timestamp and signatures from the Stripe-Signature header {header}: {reason}"
    )]
    MalformedHeader {
        /// The header, quoted and shortened.
        header: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The header carries no `v1` signature (e.g. only `v0`).
    #[error(
        "no signatures found with expected scheme v1 in the Stripe-Signature header; only v1 (HMAC-SHA256) signatures are accepted"
    )]
    NoV1Signature,
    /// No `v1` signature matches the payload and secret.
    #[error(
        "no signatures found matching the expected signature for the payload: check that the endpoint secret (whsec_…) belongs to this endpoint and mode (test/live), and that the raw request body is passed byte-for-byte, not re-serialised JSON"
    )]
    NoMatchingSignature,
    /// The signed timestamp is older than the tolerance allows.
    #[error(
        "timestamp outside the tolerance zone ({timestamp}): the event was signed {age_seconds} s before now, at most {tolerance_seconds} s are allowed; check this host's clock, or the request is a replay"
    )]
    TimestampOutsideTolerance {
        /// The header's `t` (unix seconds).
        timestamp: i64,
        /// How many seconds before `now` it was signed.
        age_seconds: i64,
        /// The tolerance in force.
        tolerance_seconds: u64,
    },
    /// The signature is valid but the body is not a Stripe event in JSON.
    #[error("the webhook body is not a valid Stripe event: {reason}")]
    InvalidPayload {
        /// What is wrong with it.
        reason: String,
    },
    /// The endpoint secret is empty.
    #[error(
        "no webhook secret was provided: pass the endpoint's signing secret, which starts with `whsec_`"
    )]
    MissingSecret,
}

impl StripeError {
    /// The coarse category shared with the other verifiers.
    pub fn category(&self) -> crate::standard_webhooks::ErrorCategory {
        use crate::standard_webhooks::ErrorCategory;
        match self {
            Self::MissingHeader | Self::MalformedHeader { .. } | Self::InvalidPayload { .. } => {
                ErrorCategory::Malformed
            }
            Self::NoV1Signature | Self::NoMatchingSignature => ErrorCategory::BadSignature,
            Self::TimestampOutsideTolerance { .. } => ErrorCategory::StaleTimestamp,
            Self::MissingSecret => ErrorCategory::Configuration,
        }
    }
}

/// A parsed `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// The `t` value (unix seconds).
    pub timestamp: i64,
    /// Every `v1` value, in header order.
    pub v1_signatures: Vec<String>,
}

/// Parses a `Stripe-Signature` header as the SDKs do: items split on `,`,
/// each on its first `=`; the first `t` gives the timestamp; unknown items are
/// ignored. Fails with [`StripeError::MissingHeader`],
/// [`StripeError::MalformedHeader`] or [`StripeError::NoV1Signature`].
pub fn parse_signature_header(header: &str) -> Result<SignatureHeader, StripeError> {
    if header.trim().is_empty() {
        return Err(StripeError::MissingHeader);
    }
    let mut timestamp_text: Option<&str> = None;
    let mut v1_signatures = Vec::new();
    for item in header.split(',') {
        // No trimming: like the SDKs, ` v1=…` is not a `v1` item.
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        // Like stripe-python's `split("=", 2)[1]`: a value stops at a second `=`.
        let value = value.split('=').next().unwrap_or("");
        if key == "t" {
            if timestamp_text.is_none() {
                timestamp_text = Some(value.trim());
            }
        } else if key == EXPECTED_SCHEME && !value.is_empty() {
            v1_signatures.push(value.to_owned());
        }
    }
    let malformed = |reason: String| StripeError::MalformedHeader {
        header: quote(header),
        reason,
    };
    let Some(timestamp_text) = timestamp_text else {
        return Err(malformed(
            "it has no `t=<unix seconds>` item; expected `t=1700000000,v1=<hex>`".to_owned(),
        ));
    };
    let timestamp = timestamp_text.parse::<i64>().map_err(|_| {
        malformed(format!(
            "`t` is {} rather than whole unix seconds",
            quote(timestamp_text)
        ))
    })?;
    if v1_signatures.is_empty() {
        return Err(StripeError::NoV1Signature);
    }
    Ok(SignatureHeader {
        timestamp,
        v1_signatures,
    })
}

fn hmac_hex(payload: &[u8], secret: &str, timestamp: i64) -> String {
    // HMAC accepts keys of any length; the fallback is unreachable but keeps
    // this path free of panics.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// The `v1` signature (lowercase hex) of `payload` signed at `timestamp`.
pub fn compute_signature(payload: &[u8], secret: &str, timestamp: i64) -> String {
    hmac_hex(payload, secret, timestamp)
}

/// A `Stripe-Signature` value `t=<timestamp>,v1=<hex>` for tests and demos
/// (what `stripe.WebhookSignature.generate_signature_header` produces).
pub fn generate_test_header(payload: &[u8], secret: &str, timestamp: i64) -> String {
    format!(
        "t={timestamp},{EXPECTED_SCHEME}={}",
        compute_signature(payload, secret, timestamp)
    )
}

/// Verifies the signature and the timestamp's age, without parsing the body.
///
/// `tolerance_seconds` is the largest allowed age of `t` relative to `now`;
/// `0` means `t` must not be before `now`'s second (it does *not* disable the
/// check, unlike the SDKs). Returns the verified timestamp.
pub fn verify_header(
    payload: &[u8],
    header: &str,
    secret: &str,
    tolerance_seconds: u64,
    now: Timestamp,
) -> Result<Timestamp, StripeError> {
    if secret.trim().is_empty() {
        return Err(StripeError::MissingSecret);
    }
    let parsed = parse_signature_header(header)?;
    let expected = hmac_hex(payload, secret, parsed.timestamp);
    let mut matched = subtle::Choice::from(0u8);
    for candidate in &parsed.v1_signatures {
        matched |= expected.as_bytes().ct_eq(candidate.as_bytes());
    }
    if !bool::from(matched) {
        return Err(StripeError::NoMatchingSignature);
    }
    let now_secs = now.unix_seconds();
    let age = i128::from(now_secs) - i128::from(parsed.timestamp);
    if age > i128::from(tolerance_seconds) {
        return Err(StripeError::TimestampOutsideTolerance {
            timestamp: parsed.timestamp,
            age_seconds: i64::try_from(age).unwrap_or(i64::MAX),
            tolerance_seconds,
        });
    }
    Ok(Timestamp::from_unix_seconds(parsed.timestamp))
}

/// Verifies a webhook with the default 300 s tolerance and returns its event.
pub fn construct_event(
    payload: &[u8],
    header: &str,
    secret: &str,
    now: Timestamp,
) -> Result<StripeEvent, StripeError> {
    construct_event_with_tolerance(payload, header, secret, DEFAULT_TOLERANCE_SECONDS, now)
}

/// Verifies a webhook with a custom tolerance (see [`verify_header`]) and
/// returns its event.
pub fn construct_event_with_tolerance(
    payload: &[u8],
    header: &str,
    secret: &str,
    tolerance_seconds: u64,
    now: Timestamp,
) -> Result<StripeEvent, StripeError> {
    verify_header(payload, header, secret, tolerance_seconds, now)?;
    StripeEvent::from_slice(payload)
}

/// A verified Stripe event: the full JSON plus its typed envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeEvent {
    /// `id` (`evt_…`).
    pub id: String,
    /// `type`, e.g. `invoice.paid`.
    pub event_type: String,
    /// `created`, when Stripe created the event.
    pub created: Option<Timestamp>,
    /// `livemode`: `false` for test-mode events.
    pub livemode: bool,
    /// `api_version` the payload was rendered with.
    pub api_version: Option<String>,
    /// `account`: the connected account, for Connect events.
    pub account: Option<String>,
    /// `data.object`: the object the event is about (`Null` if absent).
    pub object: Value,
    /// `data.previous_attributes`, on `*.updated` events.
    pub previous_attributes: Option<Value>,
    /// The whole event as received.
    pub raw: Value,
}

fn string_field(object: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl StripeEvent {
    /// Parses an event body *without* verifying any signature: for events
    /// that were verified elsewhere, or fixtures.
    pub fn from_slice(payload: &[u8]) -> Result<Self, StripeError> {
        let raw: Value =
            serde_json::from_slice(payload).map_err(|err| StripeError::InvalidPayload {
                reason: format!("not valid JSON ({err})"),
            })?;
        Self::from_value(raw)
    }

    /// Reads the envelope of an already parsed event.
    pub fn from_value(raw: Value) -> Result<Self, StripeError> {
        let invalid = |reason: &str| StripeError::InvalidPayload {
            reason: reason.to_owned(),
        };
        let Some(envelope) = raw.as_object() else {
            return Err(invalid("expected a JSON object"));
        };
        if envelope.get("object").and_then(Value::as_str) == Some("v2.core.event") {
            return Err(invalid(
                "this is a thin event notification (v2.core.event), not a snapshot event; fetch the event from the API instead",
            ));
        }
        let id = string_field(envelope, "id")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| invalid("missing string field `id` (evt_…)"))?;
        let event_type = string_field(envelope, "type")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("missing string field `type`"))?;
        let created = envelope
            .get("created")
            .and_then(Value::as_i64)
            .map(Timestamp::from_unix_seconds);
        let livemode = envelope
            .get("livemode")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let data = envelope.get("data").and_then(Value::as_object);
        let object = data
            .and_then(|data| data.get("object"))
            .cloned()
            .unwrap_or(Value::Null);
        let previous_attributes = data
            .and_then(|data| data.get("previous_attributes"))
            .cloned();
        Ok(StripeEvent {
            id,
            event_type,
            created,
            livemode,
            api_version: string_field(envelope, "api_version"),
            account: string_field(envelope, "account"),
            object,
            previous_attributes,
            raw,
        })
    }

    /// `data.object.id`, if the object has one.
    pub fn object_id(&self) -> Option<&str> {
        self.object.get("id").and_then(Value::as_str)
    }

    /// `data.object.object`, the object's type (`invoice`, `charge`, …).
    pub fn object_type(&self) -> Option<&str> {
        self.object.get("object").and_then(Value::as_str)
    }
}
