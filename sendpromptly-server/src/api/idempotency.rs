//! `Idempotency-Key` on every POST: the same key with the same request
//! within 24 h replays the first response; with a different request it is a
//! 422; while the first is still running it is a 409. Only completed 2xx and
//! 4xx responses are stored.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::MAX_BODY_BYTES;
use super::extract::Caller;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::IdempotencyBegin;

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header set on replays.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a running request holds its key before a crash is assumed.
const LOCK_FOR: Duration = Duration::from_secs(60);
/// The largest response stored for replay.
const MAX_STORED_RESPONSE: usize = 1024 * 1024;

/// The middleware (runs after authentication).
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY).cloned() else {
        return next.run(request).await;
    };
    match run(&state, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(
    state: &AppState,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = key
        .to_str()
        .map_err(|_| {
            ApiError::invalid("Idempotency-Key", "must be printable ASCII").into_response()
        })?
        .to_owned();
    sendpromptly_core::validation::validate_idempotency_key(&key)
        .map_err(|e| ApiError::from(e).into_response())?;
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::MissingApiKey.into_response())?;
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge.into_response())?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request_hash = hasher.finalize().to_vec();

    let store = state.store();
    let begin = store
        .idempotency_begin(
            &caller.project_id,
            &key,
            &request_hash,
            state.now(),
            LOCK_FOR,
        )
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match begin {
        IdempotencyBegin::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(response)
        }
        IdempotencyBegin::Mismatch => Err(ApiError::IdempotencyKeyReused.into_response()),
        IdempotencyBegin::InFlight => Err(ApiError::IdempotencyInFlight.into_response()),
        IdempotencyBegin::Proceed => {
            let request = Request::from_parts(parts, Body::from(bytes));
            let response = next.run(request).await;
            let (parts, body) = response.into_parts();
            let Ok(body) = to_bytes(body, MAX_STORED_RESPONSE).await else {
                let _ = store.idempotency_abandon(&caller.project_id, &key).await;
                return Err(ApiError::Internal(
                    "response too large to store for idempotency".into(),
                )
                .into_response());
            };
            let status = parts.status.as_u16();
            let outcome = if parts.status.is_server_error() {
                store.idempotency_abandon(&caller.project_id, &key).await
            } else {
                store
                    .idempotency_complete(&caller.project_id, &key, status, &body)
                    .await
            };
            if let Err(err) = outcome {
                tracing::warn!(error = %err, "could not store the idempotent response");
            }
            Ok(Response::from_parts(parts, Body::from(body)))
        }
    }
}
