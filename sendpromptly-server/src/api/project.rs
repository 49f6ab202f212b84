//! Project settings, signing-secret rotation and test alerts: the HTTP
//! adapters of [`crate::service::project`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::extract::{ApiJson, Caller};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::service::project::{self as service, rotate, test_alerts, view};
use crate::views::{ProjectUpdate, ProjectView, RotatedSecret};

/// The caller's project settings.
#[utoipa::path(
    get, path = "/v1/project", tag = "project",
    responses((status = 200, body = ProjectView), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(view(&state, &caller.project_id).await?))
}

/// Changes the caller's project settings.
#[utoipa::path(
    patch, path = "/v1/project", tag = "project",
    request_body = ProjectUpdate,
    responses((status = 200, body = ProjectView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn update_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(update): ApiJson<ProjectUpdate>,
) -> Result<Json<ProjectView>, ApiError> {
    service::update(&state, &caller.who(), &caller.project_id, update).await?;
    Ok(Json(view(&state, &caller.project_id).await?))
}

/// Rotates the signing secret of repair callbacks.
#[utoipa::path(
    post, path = "/v1/project/signing-secrets/rotate", tag = "project",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 201, description = "The new secret, shown once", body = RotatedSecret), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<RotatedSecret>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(rotate(&state, &caller.who(), &caller.project_id).await?),
    ))
}

/// Body of `POST /v1/project/alert-channels/test` (optional).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertTestRequest {
    /// Only this channel (an index into `alert_channels`); all when absent.
    #[serde(default)]
    pub channel: Option<usize>,
}

/// Answer of `POST /v1/project/alert-channels/test`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AlertTestResponse {
    /// One outcome per channel tried, in channel order.
    pub data: Vec<crate::alerts::TestSendOutcome>,
}

/// Sends a test alert to the alert channels.
#[utoipa::path(
    post, path = "/v1/project/alert-channels/test", tag = "project",
    request_body(content = Option<AlertTestRequest>, description = "Optional: only one channel"),
    responses(
        (status = 200, description = "One outcome per channel tried (a failed send is an outcome, not an error; none without channels)", body = AlertTestResponse),
        (status = 401, body = ErrorBody),
        (status = 422, description = "`channel` is not an index of alert_channels", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn test_alert_channels(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::OptionalApiJson(body): super::extract::OptionalApiJson<AlertTestRequest>,
) -> Result<Json<AlertTestResponse>, ApiError> {
    Ok(Json(AlertTestResponse {
        data: test_alerts(&state, &caller.project_id, body.channel).await?,
    }))
}
