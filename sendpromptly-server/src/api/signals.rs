//! `POST /v1/receipt` and `POST /v1/result`: the two signals.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use sendpromptly_core::machine::{Command, Outcome};
use sendpromptly_core::model::{EventKey, Receipt, ResultSignal, ResultStatus};

use super::extract::{ApiJson, Caller};
use super::key_cache::SignalProject;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::store::{Applied, StoreError};
use crate::views::SignalResponse;

/// Records a receipt: the app durably accepted a provider event.
#[utoipa::path(
    post, path = "/v1/receipt", tag = "signals",
    request_body = Receipt,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 201, description = "A new event", body = SignalResponse),
        (status = 200, description = "Already known: a duplicate delivery, counted; deadline unchanged", body = SignalResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn receipt(
    State(state): State<AppState>,
    caller: Caller,
    Extension(SignalProject(project)): Extension<SignalProject>,
    ApiJson(receipt): ApiJson<Receipt>,
) -> Result<(StatusCode, Json<SignalResponse>), ApiError> {
    receipt.validate()?;
    let deadline_seconds = project.deadline_for(&receipt.event_type, receipt.deadline_seconds);
    let key = EventKey {
        provider: receipt.provider,
        event_id: receipt.event_id.clone(),
    };
    let applied = apply_signal(
        &state,
        &caller,
        &key,
        Command::Receipt {
            receipt,
            deadline_seconds,
        },
    )
    .await?;
    state.metrics().receipt();
    state.after_transition(&applied.transition.effects);
    let status = if applied.transition.outcome == Outcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SignalResponse::from(&applied.transition.record)),
    ))
}

/// Records a result: the business effect succeeded or failed.
#[utoipa::path(
    post, path = "/v1/result", tag = "signals",
    request_body = ResultSignal,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "Recorded (a failure opens an incident at once)", body = SignalResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn result(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(result): ApiJson<ResultSignal>,
) -> Result<Json<SignalResponse>, ApiError> {
    result.validate()?;
    let success = result.status == ResultStatus::Success;
    let key = EventKey {
        provider: result.provider,
        event_id: result.event_id.clone(),
    };
    let applied = apply_signal(&state, &caller, &key, Command::Result(result)).await?;
    state.metrics().result(success);
    state.after_transition(&applied.transition.effects);
    Ok(Json(SignalResponse::from(&applied.transition.record)))
}

/// Stores a signal with the caller's key checked in the same transaction
/// (it may have been authenticated from the key cache); a key found revoked
/// is forgotten by the cache and answered 401.
async fn apply_signal(
    state: &AppState,
    caller: &Caller,
    key: &EventKey,
    command: Command,
) -> Result<Applied, ApiError> {
    let ctx = state.context(caller.actor());
    let applied = state
        .store()
        .apply_with_key(&caller.project_id, &caller.key_id, key, command, ctx)
        .await;
    if matches!(applied, Err(StoreError::KeyRevoked)) {
        state.signal_keys().forget_all();
    }
    Ok(applied?)
}
