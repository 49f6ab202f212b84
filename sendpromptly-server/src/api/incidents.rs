//! Incidents: list, detail, reprocess, manual resolve: the HTTP adapters
//! of [`crate::service::incidents`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sendpromptly_core::model::{IncidentKind, IncidentState, Provider};
use sendpromptly_core::wire::IncidentFilter;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, Caller, OptionalApiJson, PathSegments, QueryParams};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::service::ServiceError;
use crate::service::export::{self, Export};
use crate::service::incidents::{self, load_incident, manual_resolve, request_reprocess};
use crate::store::StoredEvent;
use crate::views::{
    EventView, IncidentDetail, IncidentList, IncidentView, ReprocessResponse, ResolveResponse,
};
use axum::response::IntoResponse;
use sendpromptly_core::export::ExportFormat;

/// Body of `POST /v1/incidents/{id}/reprocess`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReprocessRequest {
    /// Why (shown on the timeline).
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST /v1/incidents/{id}/resolve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// Why it is resolved without a success result (required).
    pub note: String,
}

/// Lists incidents, most recently opened first.
#[utoipa::path(
    get, path = "/v1/incidents", tag = "incidents",
    params(
        ("state" = Option<IncidentState>, Query, description = "open, reprocessing or resolved"),
        ("kind" = Option<IncidentKind>, Query, description = "missing_result or failed_result"),
        ("provider" = Option<Provider>, Query, description = "stripe, shopify or custom"),
        ("event_type" = Option<String>, Query, description = "e.g. invoice.paid"),
        ("subject" = Option<String>, Query, description = "customer/account"),
        ("opened_after" = Option<String>, Query, description = "RFC 3339 time"),
        ("opened_before" = Option<String>, Query, description = "RFC 3339 time"),
        ("limit" = Option<u32>, Query, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = IncidentList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<IncidentList>, ApiError> {
    let filter = IncidentFilter::from_query(|name| query.text(name))?;
    let found = incidents::list(&state, &caller.project_id, &filter, None).await?;
    Ok(Json(IncidentList {
        data: found.data.iter().filter_map(IncidentView::of).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// Exports the incidents the list's filters select, with their full
/// timelines, as JSON Lines or CSV, streamed (constant memory; see
/// docs/export.md for the formats).
#[utoipa::path(
    get, path = "/v1/incidents/export", tag = "incidents",
    params(
        ("format" = Option<String>, Query, description = "jsonl (default) or csv"),
        ("state" = Option<IncidentState>, Query, description = "open, reprocessing or resolved"),
        ("kind" = Option<IncidentKind>, Query, description = "missing_result or failed_result"),
        ("provider" = Option<Provider>, Query, description = "stripe, shopify or custom"),
        ("event_type" = Option<String>, Query, description = "e.g. invoice.paid"),
        ("subject" = Option<String>, Query, description = "customer/account"),
        ("opened_after" = Option<String>, Query, description = "RFC 3339 time"),
        ("opened_before" = Option<String>, Query, description = "RFC 3339 time"),
    ),
    responses(
        (status = 200, description = "One IncidentDetail per line (jsonl), or a header row and one row per incident (csv)", content_type = "application/jsonl"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<axum::response::Response, ApiError> {
    let filter = IncidentFilter::from_query(|name| query.text(name))?;
    let format = match query.text("format") {
        None => ExportFormat::Jsonl,
        Some(text) => text
            .parse::<ExportFormat>()
            .map_err(|e| ServiceError::invalid("format", e.to_string()))?,
    };
    let mut export = Export::new(
        &caller.project_id,
        incidents::store_filter(&filter, None),
        format,
    );
    let first = export.next_chunk(state.store()).await?.unwrap_or_default();
    let body = axum::body::Body::from_stream(export::into_stream(state, first, export));
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                format.content_type().to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"incidents.{}\"", format.extension()),
            ),
        ],
        body,
    )
        .into_response())
}

fn detail(stored: &StoredEvent) -> Result<IncidentDetail, ApiError> {
    Ok(IncidentDetail {
        incident: IncidentView::of(&stored.record).ok_or(ApiError::NotFound("incident"))?,
        event: EventView::from(&stored.record),
        timeline: stored.timeline.clone(),
    })
}

/// One incident, its event and its full timeline.
#[utoipa::path(
    get, path = "/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "inc_ id")),
    responses((status = 200, body = IncidentDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
) -> Result<Json<IncidentDetail>, ApiError> {
    let stored = load_incident(&state, &caller.project_id, path.first()).await?;
    Ok(Json(detail(&stored)?))
}

/// Requests a repair callback.
#[utoipa::path(
    post, path = "/v1/incidents/{id}/reprocess", tag = "incidents",
    params(("id" = String, Path, description = "inc_ id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body(content = Option<ReprocessRequest>, description = "Optional note"),
    responses(
        (status = 202, description = "Callback queued", body = ReprocessResponse),
        (status = 404, body = ErrorBody),
        (status = 409, description = "An earlier callback is still being delivered, the incident is resolved, or no repair_url is set", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn reprocess(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
    OptionalApiJson(body): OptionalApiJson<ReprocessRequest>,
) -> Result<(StatusCode, Json<ReprocessResponse>), ApiError> {
    let response = request_reprocess(
        &state,
        &caller.project_id,
        path.first(),
        caller.actor(),
        body.note,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(response)))
}

/// Resolves an incident by hand, with a note.
#[utoipa::path(
    post, path = "/v1/incidents/{id}/resolve", tag = "incidents",
    params(("id" = String, Path, description = "inc_ id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = ResolveRequest,
    responses(
        (status = 200, body = ResolveResponse),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already resolved", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Json<ResolveResponse>, ApiError> {
    let response = manual_resolve(
        &state,
        &caller.project_id,
        path.first(),
        caller.actor(),
        body.note,
    )
    .await?;
    Ok(Json(response))
}
