//! `GET /v1/stats`: time-to-effect analytics and SLO status (issue #25),
//! the HTTP adapter of [`crate::service::stats`].

use axum::Json;
use axum::extract::State;
use sendpromptly_core::Timestamp;
use sendpromptly_core::validation::ValidationError;
use sendpromptly_core::wire::{StatsQuery, StatsReport};

use super::extract::{Caller, QueryParams};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::service::stats;

/// A query parameter that must be an RFC 3339 time.
fn time(query: &QueryParams, name: &str) -> Result<Option<Timestamp>, ValidationError> {
    query
        .text(name)
        .map(|text| {
            Timestamp::parse_rfc3339(&text).map_err(|_| {
                ValidationError::new(
                    name,
                    format!("`{text}` is not an RFC 3339 time, e.g. 2026-01-31T00:00:00Z"),
                )
            })
        })
        .transpose()
}

/// Time to effect, delivery lag, time to repair and SLO status over a window.
#[utoipa::path(
    get, path = "/v1/stats", tag = "stats",
    params(StatsQuery),
    responses((status = 200, body = StatsReport), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn get_stats(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<StatsReport>, ApiError> {
    let parsed = StatsQuery {
        window: query.text("window"),
        from: time(&query, "from").map_err(crate::service::error::ServiceError::from)?,
        to: time(&query, "to").map_err(crate::service::error::ServiceError::from)?,
        event_type: query.text("event_type"),
    };
    Ok(Json(
        stats::report(&state, &caller.project_id, &parsed).await?,
    ))
}
