//! `POST /v1/receipt` and `POST /v1/result`: the two signals.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sendpromptly_core::machine::{Command, Outcome};
use sendpromptly_core::model::{EventKey, Receipt, ResultSignal, ResultStatus};
use sendpromptly_core::validation::validate_trace;

use super::extract::Caller;
use super::idempotency::{self, KeyedJson};
use crate::app::AppState;
use crate::auth::key_cache::SignalProject;
use crate::error::{ApiError, ErrorBody};
use crate::store::{Applied, IdempotentOutcome, IdempotentRequest, StoreError, StoredResponse};
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
    headers: HeaderMap,
    KeyedJson { body: receipt, key }: KeyedJson<Receipt>,
) -> Result<Response, ApiError> {
    let receipt = receipt.map(|mut r| {
        (r.traceparent, r.tracestate) = header_trace(&headers, r.traceparent, r.tracestate);
        r
    });
    let receipt = match receipt.and_then(|r| Ok(r.validate().map(|()| r)?)) {
        Ok(receipt) => receipt,
        Err(refusal) => return Ok(idempotency::refuse(&state, &caller, key, refusal).await),
    };
    let deadline_seconds = project.deadline_for(&receipt.event_type, receipt.deadline_seconds);
    let event = EventKey {
        provider: receipt.provider,
        event_id: receipt.event_id.clone(),
    };
    let command = Command::Receipt {
        receipt,
        deadline_seconds,
    };
    let answer = apply_signal(&state, &caller, &event, command, key, receipt_response).await?;
    if let Answer::Applied(applied) = &answer {
        state.metrics().receipt();
        state.after_transition(&applied.transition.effects);
    }
    Ok(answer.into_response(receipt_response))
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
    headers: HeaderMap,
    KeyedJson { body: result, key }: KeyedJson<ResultSignal>,
) -> Result<Response, ApiError> {
    let result = result.map(|mut r| {
        (r.traceparent, r.tracestate) = header_trace(&headers, r.traceparent, r.tracestate);
        r
    });
    let result = match result.and_then(|r| Ok(r.validate().map(|()| r)?)) {
        Ok(result) => result,
        Err(refusal) => return Ok(idempotency::refuse(&state, &caller, key, refusal).await),
    };
    let success = result.status == ResultStatus::Success;
    let event = EventKey {
        provider: result.provider,
        event_id: result.event_id.clone(),
    };
    let command = Command::Result(result);
    let answer = apply_signal(&state, &caller, &event, command, key, result_response).await?;
    if let Answer::Applied(applied) = &answer {
        state.metrics().result(success);
        state.after_transition(&applied.transition.effects);
        let record = &applied.transition.record;
        if success
            && applied.transition.outcome == Outcome::Updated
            && record.state == sendpromptly_core::model::EventState::Succeeded
            && let (Some(received), Some(at)) = (record.received_at, record.result_at)
        {
            state.metrics().histograms.time_to_effect(
                record.event_type.as_deref().unwrap_or(""),
                at.millis_since(received) as f64 / 1000.0,
            );
        }
    }
    Ok(answer.into_response(result_response))
}

/// A signal's trace context: the body's `traceparent` (with its
/// `tracestate`) when it has one, which is then validated strictly; otherwise
/// the `traceparent`/`tracestate` headers, which follow the W3C receiver
/// rules: an invalid header is ignored (and logged), never refused.
fn header_trace(
    headers: &HeaderMap,
    traceparent: Option<String>,
    tracestate: Option<String>,
) -> (Option<String>, Option<String>) {
    if traceparent.is_some() || tracestate.is_some() {
        return (traceparent, tracestate);
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    let Some(parent) = header("traceparent") else {
        return (None, None);
    };
    let state = header("tracestate").filter(|s| !s.is_empty());
    match validate_trace(Some(&parent), state.as_deref()) {
        Ok(()) => (Some(parent), state),
        Err(e) if e.param == "tracestate" => {
            tracing::warn!(error = %e, "ignoring an invalid tracestate header");
            (Some(parent), None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an invalid traceparent header");
            (None, None)
        }
    }
}

/// How a signal's success is answered: its status and JSON body.
type Render = fn(&Applied) -> StoredResponse;

/// A receipt's answer: 201 for a new event, 200 for one already known.
fn receipt_response(applied: &Applied) -> StoredResponse {
    let status = if applied.transition.outcome == Outcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    signal_response(status, applied)
}

/// A result's answer: 200.
fn result_response(applied: &Applied) -> StoredResponse {
    signal_response(StatusCode::OK, applied)
}

fn signal_response(status: StatusCode, applied: &Applied) -> StoredResponse {
    let body = serde_json::to_vec(&SignalResponse::from(&applied.transition.record))
        .unwrap_or_else(|_| b"{}".to_vec());
    StoredResponse {
        status: status.as_u16(),
        body,
    }
}

/// What storing a signal answered.
#[allow(clippy::large_enum_variant)] // short-lived, moved once: boxing buys nothing
enum Answer {
    /// Stored now.
    Applied(Applied),
    /// The same idempotent request was stored before: its response.
    Replay(StoredResponse),
}

impl Answer {
    fn into_response(self, render: Render) -> Response {
        match self {
            Answer::Applied(applied) => {
                let StoredResponse { status, body } = render(&applied);
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Answer::Replay(StoredResponse { status, body }) => idempotency::replay(status, body),
        }
    }
}

/// Stores a signal with the caller's key checked in the same transaction
/// (it may have been authenticated from the key cache; a key found revoked
/// is forgotten by the cache and answered 401), and with the request's
/// idempotency key, if any, remembered in that transaction too (only a
/// success is remembered: a signal that failed may be sent again).
async fn apply_signal(
    state: &AppState,
    caller: &Caller,
    event: &EventKey,
    command: Command,
    idempotency_key: Option<(String, Vec<u8>)>,
    render: Render,
) -> Result<Answer, ApiError> {
    let ctx = state.context(caller.actor());
    let store = state.store();
    let answer = match idempotency_key {
        None => store
            .apply_with_key(&caller.project_id, &caller.key_id, event, command, ctx)
            .await
            .map(Answer::Applied),
        Some((key, request_hash)) => {
            let request = IdempotentRequest {
                key,
                request_hash,
                respond: Box::new(move |outcome| outcome.as_ref().ok().map(render)),
            };
            match store
                .apply_idempotent(
                    &caller.project_id,
                    &caller.key_id,
                    event,
                    command,
                    ctx,
                    request,
                )
                .await
            {
                Ok(IdempotentOutcome::Applied(applied)) => Ok(Answer::Applied(applied)),
                Ok(IdempotentOutcome::Replay(response)) => Ok(Answer::Replay(response)),
                Ok(IdempotentOutcome::Mismatch) => return Err(ApiError::IdempotencyKeyReused),
                Ok(IdempotentOutcome::InFlight) => return Err(ApiError::IdempotencyInFlight),
                Err(e) => Err(e),
            }
        }
    };
    if matches!(answer, Err(StoreError::KeyRevoked)) {
        state.signal_keys().forget_all();
    }
    Ok(answer?)
}
