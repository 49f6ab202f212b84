//! The HTTP API of the contract: the `/v1` routes ([`v1_routes`]), their
//! handlers (thin adapters over [`crate::service`]; errors answered as
//! [`ApiError`] in [`crate::error`]), the proof pages and the operations
//! endpoints. Authentication is [`crate::auth`]'s; the whole router (the
//! API, the console and the layers every request goes through) is
//! assembled in [`crate::router`].

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post};

use crate::app::AppState;
use crate::auth::{authenticate, authenticate_signal};
use crate::error::ApiError;

pub mod audit;
pub mod batches;
pub mod events;
pub mod extract;
pub mod idempotency;
pub mod incidents;
pub mod openapi;
pub mod ops;
pub mod project;
pub mod proof;
pub mod providers;
pub mod signals;
pub mod stats;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest accepted provider tap delivery: a provider's payload is not
/// ours to size (a Shopify order with many line items is well over 64 KiB).
pub const MAX_PROVIDER_BODY_BYTES: usize = 1024 * 1024;

/// The body limit of a request path (the provider tap's, or the API's),
/// and the error of a body over it.
pub fn body_limit(path: &str) -> (usize, fn() -> ApiError) {
    if path.starts_with("/v1/providers/") {
        (MAX_PROVIDER_BODY_BYTES, || {
            ApiError::ProviderPayloadTooLarge
        })
    } else {
        (MAX_BODY_BYTES, || ApiError::PayloadTooLarge)
    }
}

/// The `/v1` routes of the contract, authenticated (and, but for the
/// signals, under the idempotency middleware); nested at `/v1` by
/// [`crate::router`].
pub fn v1_routes(state: AppState) -> Router<AppState> {
    // The two signals may authenticate from the key cache (their write
    // checks the key again, see `crate::auth::key_cache`); every other
    // route reads it.
    // Their idempotency keys are remembered in the write's own transaction
    // (`idempotency::KeyedJson`), not by the middleware.
    let signals = Router::new()
        .route("/receipt", post(signals::receipt))
        .route("/result", post(signals::result))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate_signal,
        ));
    // The provider tap: the provider's signature is the authentication.
    let providers = Router::new()
        .route(
            "/providers/stripe/webhooks/{project_id}",
            post(providers::stripe_webhook),
        )
        .route(
            "/providers/shopify/webhooks/{project_id}",
            post(providers::shopify_webhook),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            MAX_PROVIDER_BODY_BYTES,
        ));
    Router::new()
        .route("/events", get(events::search))
        .route("/events/{provider}/{event_id}", get(events::get_one))
        .route("/incidents", get(incidents::list))
        .route("/incidents/export", get(incidents::export))
        .route("/incidents/{id}", get(incidents::get_one))
        .route("/incidents/{id}/reprocess", post(incidents::reprocess))
        .route("/incidents/{id}/resolve", post(incidents::resolve))
        .route(
            "/incidents/{id}/proof-links",
            post(proof::create).get(proof::list_for_incident),
        )
        .route("/proof-links/{id}", delete(proof::revoke))
        .route("/reprocess-batches", post(batches::create))
        .route("/reprocess-batches/{id}", get(batches::get_one))
        .route("/reprocess-batches/{id}/cancel", post(batches::cancel))
        .route(
            "/project",
            get(project::get_settings).patch(project::update_settings),
        )
        .route(
            "/project/signing-secrets/rotate",
            post(project::rotate_secret),
        )
        .route(
            "/project/alert-channels/test",
            post(project::test_alert_channels),
        )
        .route("/audit-log", get(audit::list))
        .route("/stats", get(stats::get_stats))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(signals)
        .merge(providers)
}

/// The answer of a path nothing serves (under `/v1` and everywhere else).
pub async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}
