//! The repair endpoint: verifying the signed callback SendPromptly sends
//! when someone asks to reprocess an incident's event.
//!
//! The callback is a Standard Webhooks message (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`) signed with the project's
//! `whsec_` secret; during a rotation pass both the new and the old secret.
//!
//! An axum repair endpoint:
//!
//! ```
//! use axum::{body::Bytes, extract::State, http::{HeaderMap, StatusCode}};
//! use sendpromptly_client::{Client, verify_repair_request};
//!
//! #[derive(Clone)]
//! struct App { sp: Client, secrets: Vec<String> }
//!
//! async fn repair(State(app): State<App>, headers: HeaderMap, body: Bytes) -> StatusCode {
//!     let callback = match verify_repair_request(&body, &headers, &app.secrets) {
//!         Ok(callback) => callback,
//!         Err(err) => {
//!             eprintln!("rejected repair callback: {err}");
//!             return StatusCode::BAD_REQUEST;
//!         }
//!     };
//!     // Process callback.event again (idempotently), then report the result,
//!     // linked to this repair through its reprocess_id:
//!     match app.sp.success_for(&callback).await {
//!         Ok(_) => StatusCode::OK,
//!         // Not recorded: ask SendPromptly to deliver the callback again.
//!         Err(_) => StatusCode::SERVICE_UNAVAILABLE,
//!     }
//! }
//!
//! let app: axum::Router<App> = axum::Router::new().route("/sendpromptly/repair", axum::routing::post(repair));
//! # let _ = app;
//! ```
//!
//! With actix-web, collect the headers into a `Vec<(String, String)>` (any
//! [`HeaderLookup`] works) and pass the raw body bytes.

use sendpromptly_core::Timestamp;
use sendpromptly_core::standard_webhooks::SigningSecret;

pub use sendpromptly_core::callback::{RepairCallback, RepairCallbackError, RepairCallbackEvent};
pub use sendpromptly_core::headers::HeaderLookup;
pub use sendpromptly_core::standard_webhooks::{ErrorCategory, StandardWebhooksError};

/// Verifies a repair callback against any of `secrets` (`whsec_…` strings)
/// at the current time (±5 minutes) and returns the parsed callback.
///
/// `body` must be the raw request body, byte for byte; `headers` any
/// [`HeaderLookup`] (an `http::HeaderMap` as axum gives it, a `HashMap`, a
/// list of pairs). The error says why a request was rejected:
/// [`RepairCallbackError::category`] is `BadSignature`, `StaleTimestamp`,
/// `Malformed` or `Configuration` (no or invalid secret).
///
/// ```
/// use sendpromptly_client::core::callback::{sign_repair_callback, RepairCallback, RepairCallbackEvent};
/// use sendpromptly_client::core::standard_webhooks::SigningSecret;
/// use sendpromptly_client::{verify_repair_request, ErrorCategory, Provider};
///
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let callback = RepairCallback::new(
///     "rep_01", "inc_01", 1, sendpromptly_client::now(), "console:alice@example.com",
///     RepairCallbackEvent::new(Provider::Stripe, "evt_1", "invoice.paid"),
/// );
/// let signing = [SigningSecret::parse(secret).unwrap()];
/// let (body, headers) = sign_repair_callback(&callback, &signing, sendpromptly_client::now()).unwrap();
/// let headers = headers.to_pairs();
///
/// assert_eq!(verify_repair_request(&body, &headers, &[secret]).unwrap(), callback);
///
/// let mut tampered = body.clone();
/// tampered[10] ^= 1;
/// let err = verify_repair_request(&tampered, &headers, &[secret]).unwrap_err();
/// assert!(matches!(err.category(), ErrorCategory::BadSignature | ErrorCategory::Malformed));
/// ```
pub fn verify_repair_request<S: AsRef<str>>(
    body: &[u8],
    headers: &(impl HeaderLookup + ?Sized),
    secrets: &[S],
) -> Result<RepairCallback, RepairCallbackError> {
    verify_repair_request_at(body, headers, secrets, crate::client::now())
}

/// [`verify_repair_request`] at a given time (for tests and replays of
/// stored requests).
pub fn verify_repair_request_at<S: AsRef<str>>(
    body: &[u8],
    headers: &(impl HeaderLookup + ?Sized),
    secrets: &[S],
    now: Timestamp,
) -> Result<RepairCallback, RepairCallbackError> {
    let secrets = secrets
        .iter()
        .map(|s| SigningSecret::parse(s.as_ref().trim()))
        .collect::<Result<Vec<_>, _>>()?;
    sendpromptly_core::callback::verify_repair_request(body, headers, &secrets, now)
}
