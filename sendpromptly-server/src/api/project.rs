//! Project settings and signing-secret rotation.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sendpromptly_core::standard_webhooks::SigningSecret;
use sendpromptly_core::validation::validate_deadline_seconds;

use super::extract::{ApiJson, Caller};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::outbound::OutboundPolicy;
use crate::store::ProjectPatch;
pub use crate::views::ProjectUpdate;
use crate::views::{ProjectView, RotatedSecret};

/// How long the previous signing secrets keep signing after a rotation.
pub const ROTATION_OVERLAP_SECONDS: i64 = 24 * 3600;

/// Checks a repair or alert URL with [`OutboundPolicy::check_setting`] (the
/// check the dispatcher and the alert sender repeat at send time), as a 422
/// naming the setting.
pub fn validate_outbound_url(
    policy: OutboundPolicy,
    param: &str,
    value: &str,
) -> Result<(), ApiError> {
    policy
        .check_setting(param, value)
        .map(drop)
        .map_err(|refused| ApiError::invalid(refused.param, refused.reason.to_string()))
}

fn validate_alert_channels(
    policy: OutboundPolicy,
    channels: &serde_json::Value,
) -> Result<(), ApiError> {
    let list = channels
        .as_array()
        .ok_or_else(|| ApiError::invalid("alert_channels", "must be a list of channels"))?;
    if list.len() > 20 {
        return Err(ApiError::invalid("alert_channels", "at most 20 channels"));
    }
    for (i, channel) in list.iter().enumerate() {
        let param = |field: &str| format!("alert_channels[{i}].{field}");
        let object = channel.as_object().ok_or_else(|| {
            ApiError::invalid(format!("alert_channels[{i}]"), "must be an object")
        })?;
        let field = |name: &str| object.get(name).and_then(|v| v.as_str());
        match field("type") {
            Some("email") => {
                let to = field("to").ok_or_else(|| {
                    ApiError::invalid(param("to"), "is required for email channels")
                })?;
                if !to.contains('@') || to.len() > 254 {
                    return Err(ApiError::invalid(param("to"), "must be an email address"));
                }
            }
            Some("slack") => {
                let url = field("webhook_url").ok_or_else(|| {
                    ApiError::invalid(param("webhook_url"), "is required for slack channels")
                })?;
                validate_outbound_url(policy, &param("webhook_url"), url)?;
            }
            Some("webhook") => {
                let url = field("url").ok_or_else(|| {
                    ApiError::invalid(param("url"), "is required for webhook channels")
                })?;
                validate_outbound_url(policy, &param("url"), url)?;
            }
            _ => {
                return Err(ApiError::invalid(
                    param("type"),
                    "must be email, slack or webhook",
                ));
            }
        }
        if let Some(on) = object.get("on") {
            let events = on
                .as_array()
                .ok_or_else(|| ApiError::invalid(param("on"), "must be a list of event names"))?;
            for event in events {
                if event
                    .as_str()
                    .and_then(sendpromptly_core::alert::AlertEvent::parse)
                    .is_none()
                {
                    let expected: Vec<&str> = sendpromptly_core::alert::AlertEvent::ALL
                        .iter()
                        .map(|e| e.as_str())
                        .collect();
                    return Err(ApiError::invalid(
                        param("on"),
                        format!("unknown event {event}; expected {}", expected.join(", ")),
                    ));
                }
            }
        }
    }
    Ok(())
}

async fn view(state: &AppState, project_id: &str) -> Result<ProjectView, ApiError> {
    let project = state
        .store()
        .project(project_id)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    let secrets = state
        .store()
        .signing_secrets(project_id, state.now())
        .await?;
    Ok(crate::views::project_view(&project, &secrets))
}

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

/// Validates a settings change and turns it into a storage patch.
pub fn patch_from_update(
    policy: OutboundPolicy,
    update: ProjectUpdate,
) -> Result<ProjectPatch, ApiError> {
    if let Some(Some(url)) = &update.repair_url {
        validate_outbound_url(policy, "repair_url", url)?;
    }
    if let Some(seconds) = update.default_deadline_seconds {
        validate_deadline_seconds("default_deadline_seconds", seconds)?;
    }
    if let Some(table) = &update.deadlines_by_event_type {
        if table.len() > 200 {
            return Err(ApiError::invalid(
                "deadlines_by_event_type",
                "at most 200 event types",
            ));
        }
        for (event_type, seconds) in table {
            if event_type.is_empty() || event_type.len() > 255 {
                return Err(ApiError::invalid(
                    "deadlines_by_event_type",
                    "event types must be 1–255 characters",
                ));
            }
            validate_deadline_seconds(&format!("deadlines_by_event_type.{event_type}"), *seconds)?;
        }
    }
    if let Some(channels) = &update.alert_channels {
        validate_alert_channels(policy, channels)?;
    }
    Ok(ProjectPatch {
        repair_url: update.repair_url,
        default_deadline_seconds: update.default_deadline_seconds,
        deadlines_by_event_type: update.deadlines_by_event_type,
        alert_channels: update.alert_channels,
        proof_show_metadata: update.proof_show_metadata,
    })
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
    let patch = patch_from_update(state.config().outbound, update)?;
    state
        .store()
        .update_project(&caller.project_id, patch)
        .await?;
    state.signal_keys().forget_all();
    Ok(Json(view(&state, &caller.project_id).await?))
}

/// Creates a new signing secret for a project; the previous ones keep signing for 24 h.
pub async fn rotate(state: &AppState, project_id: &str) -> Result<RotatedSecret, ApiError> {
    let now = state.now();
    let secret = SigningSecret::generate(&mut rand::rngs::OsRng);
    let overlap_ends = now.plus_seconds(ROTATION_OVERLAP_SECONDS);
    state
        .store()
        .add_signing_secret(project_id, &secret.expose(), now, overlap_ends)
        .await?;
    Ok(RotatedSecret {
        secret: secret.expose(),
        created_at: now,
        previous_secrets_expire_at: overlap_ends,
    })
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
        Json(rotate(&state, &caller.project_id).await?),
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

/// Sends a clearly marked test alert to the project's channels (or one of
/// them) now, without the outbox, and reports each outcome (none without
/// channels). A channel index out of range is a 422 naming `channel`.
pub async fn test_alerts(
    state: &AppState,
    project_id: &str,
    only: Option<usize>,
) -> Result<Vec<crate::alerts::TestSendOutcome>, ApiError> {
    let project = state
        .store()
        .project(project_id)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    let channels = sendpromptly_core::alert::parse_channels(&project.alert_channels)
        .map_err(|err| ApiError::invalid("alert_channels", err.to_string()))?;
    if let Some(index) = only
        && index >= channels.len()
    {
        return Err(ApiError::invalid(
            "channel",
            format!(
                "no channel {index}; the project has {} (0-based)",
                channels.len()
            ),
        ));
    }
    let http = crate::dispatcher::http_client(state)
        .map_err(|err| ApiError::Internal(format!("cannot build the HTTP client: {err}")))?;
    Ok(crate::alerts::send_test(state, &http, project_id, &channels, only).await)
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
