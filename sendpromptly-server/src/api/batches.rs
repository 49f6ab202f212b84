//! Reprocess batches: the HTTP adapters of [`crate::service::batches`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sendpromptly_core::wire::{ReprocessBatchPlan, ReprocessBatchRequest, ReprocessBatchView};

use super::extract::{ApiJson, Caller, PathSegments};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::service::batches::{batch_view, cancel_batch, plan_batch, start_batch};

/// Plans (`dry_run: true`, 200) or starts (202) a bulk reprocess.
#[utoipa::path(
    post, path = "/v1/reprocess-batches", tag = "incidents",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = ReprocessBatchRequest,
    responses(
        (status = 200, description = "Dry run: the plan, nothing sent", body = ReprocessBatchPlan),
        (status = 202, description = "Batch started; poll GET /v1/reprocess-batches/{id}", body = ReprocessBatchView),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ReprocessBatchRequest>,
) -> Result<Response, ApiError> {
    let planned = plan_batch(state.store(), &caller.project_id, &request).await?;
    if request.dry_run {
        return Ok(Json(planned.plan()).into_response());
    }
    let view = start_batch(
        state.store(),
        &caller.project_id,
        &request,
        &planned,
        &caller.actor(),
        &caller.who(),
        state.now(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// A batch's progress: counts derived from its items, and its first items.
#[utoipa::path(
    get, path = "/v1/reprocess-batches/{id}", tag = "incidents",
    params(("id" = String, Path, description = "rpb_ id")),
    responses((status = 200, body = ReprocessBatchView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
) -> Result<Json<ReprocessBatchView>, ApiError> {
    Ok(Json(
        batch_view(state.store(), &caller.project_id, path.first()).await?,
    ))
}

/// Cancels a batch: pending items are not sent; callbacks already sent finish.
#[utoipa::path(
    post, path = "/v1/reprocess-batches/{id}/cancel", tag = "incidents",
    params(("id" = String, Path, description = "rpb_ id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 200, body = ReprocessBatchView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
) -> Result<Json<ReprocessBatchView>, ApiError> {
    Ok(Json(
        cancel_batch(
            state.store(),
            &caller.who(),
            &caller.project_id,
            path.first(),
            state.now(),
        )
        .await?,
    ))
}
