//! The repair callback: the signed POST the server sends to a project's
//! `repair_url` when someone asks to reprocess an incident's event.
//!
//! The body is [`RepairCallback`] as JSON; it is signed as a Standard Webhooks
//! message whose `webhook-id` is the `rep_…` reprocess id (the same on every
//! retry of that reprocess). The server signs with [`sign_repair_request`];
//! apps (through the SDKs) verify with [`verify_repair_request`].
//!
//! ```
//! use sendpromptly_core::callback::{sign_repair_request, verify_repair_request, RepairCallback, RepairCallbackEvent};
//! use sendpromptly_core::model::Provider;
//! use sendpromptly_core::standard_webhooks::SigningSecret;
//! use sendpromptly_core::Timestamp;
//!
//! let now = Timestamp::from_unix_seconds(1_790_000_000);
//! let callback = RepairCallback::new(
//!     "rep_01", "inc_01", 1, now, "console:alice@example.com",
//!     RepairCallbackEvent::new(Provider::Stripe, "evt_1", "invoice.paid"),
//! );
//! let body = callback.to_body();
//! let secret: SigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
//! let headers = sign_repair_request(&body, "rep_01", std::slice::from_ref(&secret), now).unwrap();
//! let verified = verify_repair_request(&body, &headers, &[secret], now).unwrap();
//! assert_eq!(verified, callback);
//! ```

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::headers::HeaderLookup;
use crate::model::Provider;
use crate::standard_webhooks::{
    self, ErrorCategory, SignedHeaders, SigningSecret, StandardWebhooksError, quote,
};

/// The `type` of a repair callback.
pub const REPROCESS_REQUESTED: &str = "reprocess.requested";

/// The JSON body of a repair callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairCallback {
    /// Always [`REPROCESS_REQUESTED`] (`"type"` on the wire).
    #[serde(rename = "type")]
    pub kind: String,
    /// The `rep_…` id; equal to the `webhook-id` header.
    pub reprocess_id: String,
    /// The `inc_…` incident being repaired.
    pub incident_id: String,
    /// Delivery attempt number, starting at 1.
    pub attempt: u32,
    /// When the reprocess was requested.
    pub requested_at: Timestamp,
    /// Who asked: e.g. `console:alice@example.com` or `api:<key id>`.
    pub requested_by: String,
    /// The event to process again.
    pub event: RepairCallbackEvent,
}

/// The event a repair callback asks the app to process again, as it was
/// reported in its receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairCallbackEvent {
    /// The provider of the event.
    pub provider: Provider,
    /// The provider's event id (`evt_…` for Stripe).
    pub event_id: String,
    /// The event type, e.g. `invoice.paid`.
    pub event_type: String,
    /// The customer/account the effect is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The label of the expected business effect, e.g. `credits.add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// The receipt's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl RepairCallbackEvent {
    /// An event reference with no subject, effect or metadata.
    pub fn new(
        provider: Provider,
        event_id: impl Into<String>,
        event_type: impl Into<String>,
    ) -> Self {
        RepairCallbackEvent {
            provider,
            event_id: event_id.into(),
            event_type: event_type.into(),
            subject: None,
            effect: None,
            metadata: None,
        }
    }
}

impl RepairCallback {
    /// A `reprocess.requested` callback.
    pub fn new(
        reprocess_id: impl Into<String>,
        incident_id: impl Into<String>,
        attempt: u32,
        requested_at: Timestamp,
        requested_by: impl Into<String>,
        event: RepairCallbackEvent,
    ) -> Self {
        RepairCallback {
            kind: REPROCESS_REQUESTED.to_owned(),
            reprocess_id: reprocess_id.into(),
            incident_id: incident_id.into(),
            attempt,
            requested_at,
            requested_by: requested_by.into(),
            event,
        }
    }

    /// The JSON body to send (compact).
    pub fn to_body(&self) -> Vec<u8> {
        // Serialising plain strings, numbers and JSON maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a repair callback was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepairCallbackError {
    /// The signature headers are missing, malformed, stale or do not match.
    #[error("repair callback signature check failed: {0}")]
    Signature(#[from] StandardWebhooksError),
    /// The body is not a repair callback.
    #[error("repair callback body is malformed: {reason}")]
    MalformedBody {
        /// What is wrong with it.
        reason: String,
    },
    /// The body is a signed message of another type.
    #[error(
        "unexpected callback type {found}: this endpoint handles `reprocess.requested`; point other webhooks (alerts) at another URL"
    )]
    UnexpectedType {
        /// The `type` found, quoted.
        found: String,
    },
    /// `webhook-id` differs from the body's `reprocess_id`.
    #[error(
        "`webhook-id` {header_id} does not match the body's reprocess_id {body_id}: the request was not produced by SendPromptly as sent"
    )]
    IdMismatch {
        /// The `webhook-id` header, quoted.
        header_id: String,
        /// The body's `reprocess_id`, quoted.
        body_id: String,
    },
}

impl RepairCallbackError {
    /// The coarse category (bad signature, stale timestamp, malformed, …).
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::Signature(err) => err.category(),
            Self::MalformedBody { .. } | Self::UnexpectedType { .. } | Self::IdMismatch { .. } => {
                ErrorCategory::Malformed
            }
        }
    }
}

/// Verifies a repair callback (Standard Webhooks signature with any of
/// `secrets`, ±5 minutes around `now`) and parses its body.
pub fn verify_repair_request(
    body: &[u8],
    headers: &(impl HeaderLookup + ?Sized),
    secrets: &[SigningSecret],
    now: Timestamp,
) -> Result<RepairCallback, RepairCallbackError> {
    let verified = standard_webhooks::verify(headers, body, secrets, now)?;
    let callback: RepairCallback =
        serde_json::from_slice(body).map_err(|err| RepairCallbackError::MalformedBody {
            reason: err.to_string(),
        })?;
    if callback.kind != REPROCESS_REQUESTED {
        return Err(RepairCallbackError::UnexpectedType {
            found: quote(&callback.kind),
        });
    }
    if callback.reprocess_id != verified.id {
        return Err(RepairCallbackError::IdMismatch {
            header_id: quote(&verified.id),
            body_id: quote(&callback.reprocess_id),
        });
    }
    Ok(callback)
}

/// The signature headers the server sends with a repair callback body:
/// `webhook-id` = `reprocess_id`, `webhook-timestamp` = `now`, and one
/// `v1,…` signature per secret (the current one and, during rotation, the
/// previous one). The server adds `content-type` and `user-agent` itself.
pub fn sign_repair_request(
    body: &[u8],
    reprocess_id: &str,
    secrets: &[SigningSecret],
    now: Timestamp,
) -> Result<SignedHeaders, StandardWebhooksError> {
    standard_webhooks::sign_headers(reprocess_id, now, body, secrets)
}

/// Serialises `callback` and signs it: the body and headers to POST.
pub fn sign_repair_callback(
    callback: &RepairCallback,
    secrets: &[SigningSecret],
    now: Timestamp,
) -> Result<(Vec<u8>, SignedHeaders), StandardWebhooksError> {
    let body = callback.to_body();
    let headers = sign_repair_request(&body, &callback.reprocess_id, secrets, now)?;
    Ok((body, headers))
}
