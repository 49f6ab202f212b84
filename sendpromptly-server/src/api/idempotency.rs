//! `Idempotency-Key` on every POST: the same key with the same request
//! within 24 h replays the first response; with a different request it is a
//! 422; while the first is still running it is a 409. Only completed 2xx and
//! 4xx responses are stored.
//!
//! Two paths keep that promise:
//! - the two signals (`POST /v1/receipt`, `/v1/result`, the path every SDK
//!   call takes) read the key with [`KeyedJson`] and hand it to
//!   [`Store::apply_idempotent`](crate::store::Store::apply_idempotent):
//!   the key's verdict, the command and the remembered response share one
//!   group-commit transaction, so there is no key "in flight" to wedge or to
//!   re-run after a crash, and an idempotent signal costs what a plain one
//!   does;
//! - every other POST goes through [`middleware`]: the key is taken (begin),
//!   the handler runs, the response is stored (complete). The request runs
//!   on a task its client cannot cancel (`router::run_to_completion`), so a
//!   hang-up completes it; only a crash between begin and complete leaves
//!   the key in flight, until [`LOCK_FOR`] passes.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::MAX_BODY_BYTES;
use super::extract::{Caller, body_bytes, is_json_content_type, parse_json};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::IdempotencyBegin;

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header set on replays.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a running request holds its key before a crash is assumed.
pub const LOCK_FOR: Duration = Duration::from_secs(60);
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

/// The `Idempotency-Key` header's value, checked.
fn key_of(value: &HeaderValue) -> Result<String, ApiError> {
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?
        .to_owned();
    sendpromptly_core::validation::validate_idempotency_key(&key)?;
    Ok(key)
}

/// What a key is bound to: the SHA-256 of the method, the path and the body.
pub fn request_hash(method: &Method, path: &str, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher.finalize().to_vec()
}

/// A JSON body as [`ApiJson`](super::extract::ApiJson) reads it (`Err`:
/// what it would answer, 415 or 400 or 422) and, when the request carries
/// an `Idempotency-Key`, that key and the [`request_hash`]. Rejects only
/// what the begin/complete path does not remember either: an invalid key,
/// a body that cannot be read (413).
pub struct KeyedJson<T> {
    /// The body, or why it is refused.
    pub body: Result<T, ApiError>,
    /// The key and the request's hash.
    pub key: Option<(String, Vec<u8>)>,
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for KeyedJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let key = request
            .headers()
            .get(IDEMPOTENCY_KEY)
            .map(key_of)
            .transpose()?;
        let declared_json = is_json_content_type(request.headers());
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let bytes = body_bytes(request, state).await?;
        let key = key.map(|key| (key, request_hash(&method, &path, &bytes)));
        let body = if declared_json {
            parse_json(&bytes)
        } else {
            Err(ApiError::UnsupportedMediaType)
        };
        Ok(KeyedJson { body, key })
    }
}

/// Answers a request refused before it reached the store (a body that is
/// not JSON, does not fit, or fails validation). With an idempotency key
/// the refusal is remembered like any 4xx (there is nothing to apply
/// between begin and complete), or the key's earlier answer replayed.
pub async fn refuse(
    state: &AppState,
    caller: &Caller,
    key: Option<(String, Vec<u8>)>,
    refusal: ApiError,
) -> Response {
    match key {
        None => refusal.into_response(),
        Some((key, request_hash)) => {
            guarded(state, caller, &key, &request_hash, async {
                refusal.into_response()
            })
            .await
        }
    }
}

/// The answer replaying a remembered response.
pub fn replay(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

async fn run(
    state: &AppState,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = key_of(&key).map_err(IntoResponse::into_response)?;
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::MissingApiKey.into_response())?;
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge.into_response())?;
    let request_hash = request_hash(&parts.method, parts.uri.path(), &bytes);
    let request = Request::from_parts(parts, Body::from(bytes));
    Ok(guarded(state, &caller, &key, &request_hash, next.run(request)).await)
}

/// The begin/complete path: takes `key` (or answers what it already says:
/// a replay, a mismatch, in flight), awaits `handle` for the response,
/// and stores it (a 2xx or 4xx; a 5xx releases the key).
async fn guarded(
    state: &AppState,
    caller: &Caller,
    key: &str,
    request_hash: &[u8],
    handle: impl std::future::Future<Output = Response>,
) -> Response {
    let store = state.store();
    let begin = store
        .idempotency_begin(&caller.project_id, key, request_hash, state.now(), LOCK_FOR)
        .await;
    match begin {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdempotencyBegin::Replay { status, body }) => replay(status, body),
        Ok(IdempotencyBegin::Mismatch) => ApiError::IdempotencyKeyReused.into_response(),
        Ok(IdempotencyBegin::InFlight) => ApiError::IdempotencyInFlight.into_response(),
        Ok(IdempotencyBegin::Proceed) => {
            let (parts, body) = handle.await.into_parts();
            let body = match to_bytes(body, MAX_STORED_RESPONSE).await {
                Ok(body) => body,
                Err(err) => {
                    tracing::warn!(error = %err, status = parts.status.as_u16(), "could not read a response to remember for its idempotency key");
                    if let Err(err) = store.idempotency_abandon(&caller.project_id, key).await {
                        tracing::warn!(error = %err, "could not release an idempotency key");
                    }
                    return ApiError::Internal(
                        "response too large to store for idempotency".into(),
                    )
                    .into_response();
                }
            };
            let outcome = if parts.status.is_server_error() {
                store.idempotency_abandon(&caller.project_id, key).await
            } else {
                store
                    .idempotency_complete(&caller.project_id, key, parts.status.as_u16(), &body)
                    .await
            };
            if let Err(err) = outcome {
                tracing::warn!(error = %err, "could not store the idempotent response");
            }
            Response::from_parts(parts, Body::from(body))
        }
    }
}
