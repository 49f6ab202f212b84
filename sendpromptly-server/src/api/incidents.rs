//! Incidents: list, detail, reprocess, manual resolve.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sendpromptly_core::ids;
use sendpromptly_core::machine::Command;
use sendpromptly_core::model::{Actor, IncidentKind, IncidentState, Provider};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, Caller, OptionalApiJson, PathSegments, QueryParams};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::store::{IncidentFilter, PageRequest, StoredEvent};
use crate::views::{
    EventView, IncidentDetail, IncidentList, IncidentView, ReprocessResponse, ResolveResponse,
};

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
    let filter = IncidentFilter {
        state: query.parsed("state")?,
        kind: query.parsed("kind")?,
        provider: query.parsed("provider")?,
        event_type: query.text("event_type"),
        subject: query.text("subject"),
        opened_after: query.time("opened_after")?,
        opened_before: query.time("opened_before")?,
        search: None,
    };
    let page = PageRequest {
        limit: query.limit()?,
        cursor: query.text("cursor"),
    };
    let found = state
        .store()
        .list_incidents(&caller.project_id, &filter, &page)
        .await?;
    Ok(Json(IncidentList {
        data: found.data.iter().filter_map(IncidentView::of).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// Loads an incident of the caller's project, or 404.
pub async fn load_incident(
    state: &AppState,
    project_id: &str,
    incident_id: &str,
) -> Result<StoredEvent, ApiError> {
    if !ids::has_shape(incident_id, ids::INCIDENT) {
        return Err(ApiError::NotFound("incident"));
    }
    state
        .store()
        .incident(project_id, incident_id)
        .await?
        .ok_or(ApiError::NotFound("incident"))
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

/// Requests a repair callback for an incident, as `actor`. Shared by the API and the console.
pub async fn request_reprocess(
    state: &AppState,
    project_id: &str,
    incident_id: &str,
    actor: Actor,
    note: Option<String>,
) -> Result<ReprocessResponse, ApiError> {
    sendpromptly_core::validation::validate_note(note.as_deref())?;
    let stored = load_incident(state, project_id, incident_id).await?;
    let project = state
        .store()
        .project(project_id)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    if project.repair_url.is_none() {
        return Err(ApiError::Conflict {
            kind: "repair_url_missing",
            message:
                "the project has no repair_url; set one with PATCH /v1/project before reprocessing"
                    .into(),
        });
    }
    let result_deadline_seconds = project.deadline_for(
        stored.record.event_type.as_deref().unwrap_or_default(),
        None,
    );
    let ctx = state.context(actor);
    let reprocess_id = ids::new_id(ids::REPROCESS, ctx.now, &mut rand::thread_rng());
    let applied = state
        .store()
        .apply_to_incident(
            project_id,
            incident_id,
            Command::RequestReprocess {
                reprocess_id: reprocess_id.clone(),
                note,
                result_deadline_seconds,
            },
            ctx,
        )
        .await?;
    state.after_transition(&applied.transition.effects);
    let incident =
        IncidentView::of(&applied.transition.record).ok_or(ApiError::NotFound("incident"))?;
    Ok(ReprocessResponse {
        reprocess_id,
        incident,
    })
}

/// Resolves an incident by hand, as `actor`. Shared by the API and the console.
pub async fn manual_resolve(
    state: &AppState,
    project_id: &str,
    incident_id: &str,
    actor: Actor,
    note: String,
) -> Result<ResolveResponse, ApiError> {
    if note.trim().is_empty() {
        return Err(ApiError::invalid(
            "note",
            "must say why the incident is resolved",
        ));
    }
    sendpromptly_core::validation::validate_note(Some(&note))?;
    if !ids::has_shape(incident_id, ids::INCIDENT) {
        return Err(ApiError::NotFound("incident"));
    }
    let ctx = state.context(actor);
    let applied = state
        .store()
        .apply_to_incident(
            project_id,
            incident_id,
            Command::ManualResolve { note },
            ctx,
        )
        .await?;
    state.after_transition(&applied.transition.effects);
    let incident =
        IncidentView::of(&applied.transition.record).ok_or(ApiError::NotFound("incident"))?;
    Ok(ResolveResponse { incident })
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
