//! The whole HTTP surface, assembled in one place: the API of the contract
//! and its proof pages ([`crate::api`]), the operations endpoints, and the
//! console at `/` ([`crate::console`]), under the layers every request
//! goes through (a `Request-Id`, the body limit, the request timeout, and
//! running each request to completion).
//!
//! Who may call it: [`crate::server`] (and tests). It is the only module
//! that names both front ends; neither of them names the other.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::{self, MAX_BODY_BYTES, not_found, ops, proof};
use crate::app::AppState;
use crate::error::ApiError;

/// The `Request-Id` response header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// The whole HTTP surface of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/v1", api::v1_routes(state.clone()))
        .route("/proof/{token}", get(proof::page))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi_json))
        .merge(crate::console::router(state.clone()))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            request_duration,
        ))
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
        .layer(middleware::from_fn(otlp_span))
        .with_state(state)
}

/// With `--otlp-endpoint`, a server span per request named by its route
/// template (`POST /v1/receipt`, never a proof token), continuing the
/// caller's `traceparent` header when it is valid W3C.
async fn otlp_span(request: Request, next: Next) -> Response {
    if !crate::otlp::enabled() {
        return next.run(request).await;
    }
    use crate::otlp::{Span, SpanKind, Value};
    let started = crate::otlp::now_nanos();
    let method = request.method().as_str().to_owned();
    let parent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| sendpromptly_core::trace::TraceParent::parse(v).ok());
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let mut span = Span::ending_now(
        format!("{method} {route}"),
        SpanKind::Server,
        started,
        parent.map(|p| (p.trace_id, p.span_id)),
    )
    .attr("http.request.method", Value::Str(method))
    .attr("http.route", Value::Str(route))
    .attr("http.response.status_code", Value::Int(i64::from(status)));
    span.error = status >= 500;
    crate::otlp::record(span);
    response
}

/// Observes each routed request's duration under its route template
/// (`sendpromptly_http_request_duration_seconds{route}`).
async fn request_duration(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics()
        .histograms
        .http_request(&route, started.elapsed().as_secs_f64());
    response
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

/// Reads the whole body (up to [`MAX_BODY_BYTES`], or
/// [`api::MAX_PROVIDER_BODY_BYTES`] for the provider tap: a client that hangs up
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
    let (limit, too_large) = api::body_limit(parts.uri.path());
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(err) if err.to_string().contains("length limit exceeded") => {
            return too_large().into_response();
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
