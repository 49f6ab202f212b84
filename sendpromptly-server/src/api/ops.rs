//! Operations endpoints: `/healthz`, `/metrics`, `/openapi.json`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::views::{Health, HealthProblem};

/// Whether the server can do its job: a read answers now, and the
/// watchdog's last probes found the writer committing and every background
/// loop passing within their bounds (see [`crate::health`]).
#[utoipa::path(
    get, path = "/healthz", tag = "ops",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Unhealthy: `problems` names each failing check (writer, database, sweeper, dispatcher, alerts, pacer, reconciler, rollups) and what is wrong", body = Health),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let config = state.config();
    let mut problems = state.health().problems(config.health_loop_bound);
    match tokio::time::timeout(config.health_writer_bound, state.store().ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => problems.push(("database", format!("a read failed: {err}"))),
        Err(_) => problems.push((
            "database",
            format!(
                "a read did not answer within {} s",
                config.health_writer_bound.as_secs_f64()
            ),
        )),
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if problems.is_empty() {
            "ok"
        } else {
            "unhealthy"
        }
        .into(),
        version: env!("CARGO_PKG_VERSION").into(),
        problems: problems
            .into_iter()
            .map(|(check, detail)| HealthProblem {
                check: check.into(),
                detail,
            })
            .collect(),
    };
    (status, Json(health)).into_response()
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(
    get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let pending = state.store().pending_deliveries().await.unwrap_or(0);
    let group = state.store().group_commit_stats();
    let mut text = state.metrics().render(pending, group);
    text.push_str(&crate::metrics::render_reliability(
        &state.health().checks(state.config().health_loop_bound),
        crate::store::pool::discarded_in_transaction(),
    ));
    let reconcile = state.store().reconcile_states().await.unwrap_or_default();
    text.push_str(&state.metrics().render_reconcile(&reconcile));
    text.push_str(&crate::otlp::render_metrics());
    text.push_str(&state.metrics().histograms.render());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json() -> Response {
    let mut response = super::openapi::document_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
