//! The provider tap: `POST /v1/providers/stripe/webhooks/{project_id}` and
//! `POST /v1/providers/shopify/webhooks/{project_id}`, a second webhook
//! endpoint the project adds in its Stripe or Shopify dashboard. No API
//! key: the provider's signature, checked against the project's secrets,
//! is the authentication. A verified delivery of a tracked type becomes a
//! tracked event through [`record_expected_with`] and is answered 200 only once
//! it is durable; anything unverified is refused with 400 and its reason,
//! and nothing is stored.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use sendpromptly_core::model::Provider;
use sendpromptly_core::provider_event::EventReference;
use sendpromptly_core::{shopify, stripe};

use super::extract::RawBody;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::service::expected::{ExpectedOutcome, LearnedVia, record_expected_with};
use crate::service::provider_tap::{TapConfig, tap_config_for_delivery};

/// The answer to a provider's delivery.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TapResponse {
    /// `true` when the event is tracked (or was already): the provider may
    /// stop retrying.
    pub received: bool,
    /// `created`, `duplicate`, `already_received`,
    /// `linked_by_fingerprint` or `not_tracked`.
    pub outcome: String,
    /// The provider's event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// What happened, in words.
    pub message: String,
}

fn rejected(message: impl Into<String>) -> ApiError {
    ApiError::WebhookRejected {
        message: message.into(),
    }
}

/// The project's tap settings (cached, see [`tap_config_for_delivery`]),
/// or 404 (an unknown project is not told apart from a malformed id).
async fn project_tap_config(state: &AppState, project_id: &str) -> Result<TapConfig, ApiError> {
    if project_id.is_empty() || project_id.len() > 64 {
        return Err(ApiError::NotFound("project"));
    }
    tap_config_for_delivery(state, project_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::NotFound("project"))
}

/// Checks `Stripe-Signature` against every configured endpoint secret with
/// Stripe's 300 s tolerance; the reason of the most telling failure.
fn verify_stripe(
    body: &[u8],
    header: Option<&str>,
    secrets: &[String],
    now: sendpromptly_core::Timestamp,
) -> Result<stripe::StripeEvent, ApiError> {
    let header = header.filter(|h| !h.trim().is_empty()).ok_or_else(|| {
        rejected("unsigned delivery: no Stripe-Signature header; only Stripe's signed deliveries are accepted")
    })?;
    if secrets.is_empty() {
        return Err(rejected(
            "this project has no Stripe endpoint secret: set provider_tap.stripe_endpoint_secrets \
             (PATCH /v1/project, or the console's settings page) to the endpoint's `whsec_…` secret",
        ));
    }
    let mut stale = None;
    let mut first = None;
    for secret in secrets {
        match stripe::verify_header(body, header, secret, stripe::DEFAULT_TOLERANCE_SECONDS, now) {
            Ok(_) => {
                return stripe::StripeEvent::from_slice(body)
                    .map_err(|err| rejected(format!("signature verified, but {err}")));
            }
            Err(err @ stripe::StripeError::TimestampOutsideTolerance { .. }) => {
                stale.get_or_insert(err);
            }
            Err(err) => {
                first.get_or_insert(err);
            }
        }
    }
    let err = stale
        .or(first)
        .unwrap_or(stripe::StripeError::NoMatchingSignature);
    Err(rejected(format!(
        "signature check failed against {} endpoint secret(s): {err}",
        secrets.len()
    )))
}

async fn record(
    state: &AppState,
    project_id: &str,
    config: &TapConfig,
    reference: EventReference,
) -> Result<Json<TapResponse>, ApiError> {
    let outcome =
        record_expected_with(state, project_id, config, &reference, LearnedVia::Tap).await?;
    let message = match outcome {
        ExpectedOutcome::Created => {
            "tracked: the app's receipt is now expected within the receipt grace"
        }
        ExpectedOutcome::Duplicate => "already tracked: this copy was recorded before",
        ExpectedOutcome::AlreadyReceived => {
            "the app already reported this event (receipt or result): the copy is recorded"
        }
        ExpectedOutcome::LinkedByFingerprint => {
            "another event id of the same change is already tracked: linked to it"
        }
        ExpectedOutcome::NotTracked => {
            "ignored: this project does not track this event type (provider_tap.tracked_event_types)"
        }
    };
    Ok(Json(TapResponse {
        received: outcome != ExpectedOutcome::NotTracked,
        outcome: outcome.as_str().to_owned(),
        event_id: reference.event_id,
        event_type: reference.event_type,
        message: message.to_owned(),
    }))
}

/// Receives a Stripe webhook delivery (the provider tap).
#[utoipa::path(
    post, path = "/v1/providers/stripe/webhooks/{project_id}", tag = "provider tap",
    params(
        ("project_id" = String, Path, description = "The project's `prj_` id"),
        ("Stripe-Signature" = String, Header, description = "Stripe's signature of the raw body"),
    ),
    request_body(content = Object, description = "The Stripe event, exactly as Stripe sent it"),
    responses(
        (status = 200, description = "Verified and durably recorded, or ignored (type not tracked)", body = TapResponse),
        (status = 400, description = "Unsigned, tampered, stale (over 300 s) or signed with another secret; or not a Stripe event. Nothing stored.", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
    )
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<TapResponse>, ApiError> {
    let answer = stripe_delivery(&state, &project_id, &headers, &body).await;
    count(&state, Provider::Stripe, &answer);
    answer
}

async fn stripe_delivery(
    state: &AppState,
    project_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<TapResponse>, ApiError> {
    let config = project_tap_config(state, project_id).await?;
    let header = headers
        .get(stripe::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let event = verify_stripe(
        body,
        header,
        &config.settings.stripe_endpoint_secrets,
        state.now(),
    )?;
    let reference = EventReference::from_stripe_event(&event);
    record(state, project_id, &config, reference).await
}

/// Counts a delivery's outcome (`sendpromptly_provider_tap_deliveries_total`).
fn count(state: &AppState, provider: Provider, answer: &Result<Json<TapResponse>, ApiError>) {
    match answer {
        Ok(Json(response)) => state.metrics().tap_delivery(provider, &response.outcome),
        Err(ApiError::WebhookRejected { .. }) => state.metrics().tap_delivery(provider, "rejected"),
        Err(_) => {}
    }
}

/// Receives a Shopify webhook delivery (the provider tap).
#[utoipa::path(
    post, path = "/v1/providers/shopify/webhooks/{project_id}", tag = "provider tap",
    params(
        ("project_id" = String, Path, description = "The project's `prj_` id"),
        ("X-Shopify-Hmac-Sha256" = String, Header, description = "Base64 HMAC-SHA256 of the raw body with the app's client secret"),
        ("X-Shopify-Topic" = String, Header, description = "e.g. `orders/paid`"),
        ("X-Shopify-Event-Id" = Option<String>, Header, description = "The event id (else `X-Shopify-Webhook-Id` is used)"),
    ),
    request_body(content = Object, description = "The Shopify payload, exactly as Shopify sent it"),
    responses(
        (status = 200, description = "Verified and durably recorded, or ignored (topic not tracked)", body = TapResponse),
        (status = 400, description = "Unsigned, tampered or signed with another secret; or missing Shopify headers. Nothing stored.", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
    )
)]
pub async fn shopify_webhook(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<TapResponse>, ApiError> {
    let answer = shopify_delivery(&state, &project_id, &headers, &body).await;
    count(&state, Provider::Shopify, &answer);
    answer
}

async fn shopify_delivery(
    state: &AppState,
    project_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<TapResponse>, ApiError> {
    let config = project_tap_config(state, project_id).await?;
    let Some(secret) = config.settings.shopify_client_secret.as_deref() else {
        return Err(rejected(
            "this project has no Shopify client secret: set provider_tap.shopify_client_secret \
             (PATCH /v1/project, or the console's settings page) to the app's client secret",
        ));
    };
    if headers.get(shopify::HEADER_HMAC).is_none() {
        return Err(rejected(
            "unsigned delivery: no X-Shopify-Hmac-Sha256 header; only Shopify's signed deliveries are accepted",
        ));
    }
    let delivery = shopify::verify(body, headers, &[secret])
        .map_err(|err| rejected(format!("Shopify delivery refused: {err}")))?;
    let reference = EventReference::from_shopify_delivery(&delivery);
    record(state, project_id, &config, reference).await
}
