//! The HTTP API of the contract, the proof pages, the operations
//! endpoints and the console (at `/`, see [`crate::console`]), assembled
//! into one axum [`Router`].

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::app::AppState;
use crate::error::ApiError;
use crate::secrets;

pub mod batches;
pub mod events;
pub mod extract;
pub mod idempotency;
pub mod incidents;
pub mod key_cache;
pub mod openapi;
pub mod ops;
pub mod project;
pub mod proof;
pub mod signals;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The `Request-Id` response header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// The whole HTTP surface of the server.
pub fn router(state: AppState) -> Router {
    // The two signals may authenticate from the key cache (their write
    // checks the key again, see `key_cache`); every other route reads it.
    // Their idempotency keys are remembered in the write's own transaction
    // (`idempotency::KeyedJson`), not by the middleware.
    let signals = Router::new()
        .route("/receipt", post(signals::receipt))
        .route("/result", post(signals::result))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate_signal,
        ));
    let v1 = Router::new()
        .route("/events", get(events::search))
        .route("/events/{provider}/{event_id}", get(events::get_one))
        .route("/incidents", get(incidents::list))
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
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(signals);
    Router::new()
        .nest("/v1", v1)
        .route("/proof/{token}", get(proof::page))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi_json))
        .merge(crate::console::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            run_to_completion,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::BadRequest {
        message: "this method is not allowed on this path".into(),
        param: None,
    }
}

/// The request path as logged: a proof page's path is its secret token, so
/// it is replaced by `/proof/[redacted]`.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/proof/") {
        "/proof/[redacted]"
    } else {
        path
    }
}

/// Tags every response with a `Request-Id` (also logged), for support.
async fn request_id(request: Request, next: Next) -> Response {
    let id = sendpromptly_core::ids::new_id(
        "req_",
        sendpromptly_core::Timestamp::from_unix_millis(0),
        &mut rand::thread_rng(),
    );
    let path = loggable_path(request.uri().path());
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %path);
    let mut response = {
        let _guard = span.enter();
        tracing::debug!("request started");
        drop(_guard);
        tracing::Instrument::instrument(next.run(request), span.clone()).await
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "request finished"));
    response
}

/// Reads the whole body (up to [`MAX_BODY_BYTES`]: a client that hangs up
/// or stalls before that has started nothing), then runs the rest of the
/// request (authentication, idempotency, the handler) on a task of its own,
/// so that neither a client hanging up nor the request timeout can cancel
/// it half-way: whatever a handler started in the database finishes (or
/// rolls back) as if the client had stayed. An abandoned request is counted
/// (`sendpromptly_http_requests_abandoned_total`).
async fn run_to_completion(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) if err.to_string().contains("length limit exceeded") => {
            return ApiError::PayloadTooLarge.into_response();
        }
        Err(err) => {
            return ApiError::BadRequest {
                message: format!("could not read the request body: {err}"),
                param: None,
            }
            .into_response();
        }
    };
    let request = Request::from_parts(parts, axum::body::Body::from(body));
    /// Counts the request as abandoned if dropped before the answer.
    struct Waiting<'a>(Option<&'a AppState>);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            if let Some(state) = self.0 {
                state.metrics().request_abandoned();
            }
        }
    }
    let mut waiting = Waiting(Some(&state));
    let task = tokio::spawn(tracing::Instrument::in_current_span(next.run(request)));
    let answer = task.await;
    waiting.0 = None;
    match answer {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, "a request's task failed");
            ApiError::Internal("the request failed unexpectedly".into()).into_response()
        }
    }
}

/// Bounds a whole request, body upload included (a slow client cannot hold
/// a handler forever): 408 after `request_timeout`.
async fn request_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config().request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs(), "request timed out");
            ApiError::RequestTimeout.into_response()
        }
    }
}

/// Resolves `Authorization: Bearer sp_…` to a [`extract::Caller`], or 401;
/// 429 with `Retry-After` when the key is over its rate limit.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    authenticate_with(state, request, next, false).await
}

/// [`authenticate`] for the signal routes: the key may come from the
/// [`key_cache::SignalKeyCache`], and the handler gets the project as a
/// [`key_cache::SignalProject`].
async fn authenticate_signal(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    authenticate_with(state, request, next, true).await
}

async fn authenticate_with(
    state: AppState,
    mut request: Request,
    next: Next,
    for_signal: bool,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().map(str::to_owned));
    let found = match bearer_key_hash(authorization) {
        Ok(key_hash) if for_signal => {
            signal_caller_of(&state, key_hash)
                .await
                .map(|(caller, project)| {
                    request
                        .extensions_mut()
                        .insert(key_cache::SignalProject(project));
                    caller
                })
        }
        Ok(key_hash) => caller_of(&state, &key_hash).await,
        Err(err) => Err(err),
    };
    match found {
        Ok(caller) => {
            if let Err(wait) = state.take_rate_token(&caller.key_id) {
                let retry_after_seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return ApiError::RateLimited {
                    retry_after_seconds: retry_after_seconds.max(1),
                }
                .into_response();
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

/// The SHA-256 of the `Authorization: Bearer sp_…` key, or why there is none.
fn bearer_key_hash(
    authorization: Option<Result<String, header::ToStrError>>,
) -> Result<Vec<u8>, ApiError> {
    let value = authorization
        .ok_or(ApiError::MissingApiKey)?
        .map_err(|_| ApiError::InvalidApiKey)?;
    let (scheme, key) = value
        .trim()
        .split_once(' ')
        .ok_or(ApiError::InvalidApiKey)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidApiKey);
    }
    let key = key.trim();
    if !key.starts_with(secrets::API_KEY_PREFIX) || key.len() > 200 {
        return Err(ApiError::InvalidApiKey);
    }
    Ok(secrets::hash_token(key))
}

/// The caller of an unrevoked key, read from the store.
async fn caller_of(state: &AppState, key_hash: &[u8]) -> Result<extract::Caller, ApiError> {
    let stored = state
        .store()
        .api_key_by_hash(key_hash)
        .await?
        .filter(|k| k.revoked_at.is_none())
        .ok_or(ApiError::InvalidApiKey)?;
    Ok(extract::Caller {
        project_id: stored.project_id,
        key_id: stored.id,
    })
}

/// The caller of a signal and its project: from the key cache while fresh,
/// else read from the store (and cached).
async fn signal_caller_of(
    state: &AppState,
    key_hash: Vec<u8>,
) -> Result<(extract::Caller, std::sync::Arc<crate::store::Project>), ApiError> {
    let now = std::time::Instant::now();
    if let Some(hit) = state.signal_keys().get(&key_hash, now) {
        return Ok(hit);
    }
    let caller = caller_of(state, &key_hash).await?;
    let project = std::sync::Arc::new(
        state
            .store()
            .project(&caller.project_id)
            .await?
            .ok_or(ApiError::InvalidApiKey)?,
    );
    state.signal_keys().put(
        key_hash,
        caller.clone(),
        std::sync::Arc::clone(&project),
        now,
    );
    Ok((caller, project))
}
