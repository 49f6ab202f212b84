//! Proof links: create, list, revoke (the HTTP adapters of
//! [`crate::service::proof`]), and the read-only page at `/proof/{token}`.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Caller, OptionalApiJson, PathSegments};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::render::{TimelineRow, display_time, timeline_rows};
use crate::secrets;
use crate::service::proof::{create_link, links_of, revoke_link};
use crate::views::{ProofLinkCreated, ProofLinkView};

/// Body of `POST /v1/incidents/{id}/proof-links`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProofLink {
    /// Lifetime in seconds: 60 – 7776000 (90 days); default 604800 (7 days).
    #[serde(default)]
    pub expires_in_seconds: Option<u32>,
}

/// Creates a proof link: a read-only, expiring, revocable page of one incident.
#[utoipa::path(
    post, path = "/v1/incidents/{id}/proof-links", tag = "proof links",
    params(("id" = String, Path, description = "inc_ id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body(content = Option<CreateProofLink>),
    responses((status = 201, body = ProofLinkCreated), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
    OptionalApiJson(body): OptionalApiJson<CreateProofLink>,
) -> Result<(StatusCode, Json<ProofLinkCreated>), ApiError> {
    let created = create_link(
        &state,
        &caller.who(),
        &caller.project_id,
        path.first(),
        caller.actor(),
        body.expires_in_seconds,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Lists an incident's proof links (never their tokens).
#[utoipa::path(
    get, path = "/v1/incidents/{id}/proof-links", tag = "proof links",
    params(("id" = String, Path, description = "inc_ id")),
    responses((status = 200, body = Vec<ProofLinkView>), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn list_for_incident(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
) -> Result<Json<Vec<ProofLinkView>>, ApiError> {
    let links = links_of(&state, &caller.project_id, path.first()).await?;
    Ok(Json(links.iter().map(ProofLinkView::from).collect()))
}

/// Revokes a proof link; its page answers 404 from then on.
#[utoipa::path(
    delete, path = "/v1/proof-links/{id}", tag = "proof links",
    params(("id" = String, Path, description = "prf_ id")),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
) -> Result<StatusCode, ApiError> {
    revoke_link(
        &state,
        &caller.who(),
        &caller.project_id,
        path.first(),
        None,
        caller.actor(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Template)]
#[template(path = "proof.html")]
struct ProofPage {
    provider: String,
    event_type: String,
    subject: String,
    effect: String,
    event_id: String,
    event_state: String,
    incident_state: String,
    incident_kind: String,
    resolution: String,
    opened_at: String,
    expires_at: String,
    metadata: Option<String>,
    rows: Vec<TimelineRow>,
}

#[derive(Template)]
#[template(path = "proof_gone.html")]
struct ProofGone;

/// The read-only page of a proof link (no authentication; 404 once revoked or expired).
#[utoipa::path(
    get, path = "/proof/{token}", tag = "proof links",
    params(("token" = String, Path, description = "The token from the link")),
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 404, description = "Unknown, revoked or expired", content_type = "text/html")),
)]
pub async fn page(State(state): State<AppState>, path: PathSegments) -> Response {
    match render_page(&state, path.first()).await {
        Ok(Some(html)) => Html(html).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(ProofGone.render().unwrap_or_default()),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn render_page(state: &AppState, token: &str) -> Result<Option<String>, ApiError> {
    if token.len() > 100 {
        return Ok(None);
    }
    let now = state.now();
    let Some(link) = state
        .store()
        .proof_link_by_token_hash(&secrets::hash_token(token))
        .await?
    else {
        return Ok(None);
    };
    if link.revoked_at.is_some() || link.expires_at <= now {
        return Ok(None);
    }
    let Some(stored) = state
        .store()
        .incident(&link.project_id, &link.incident_id)
        .await?
    else {
        return Ok(None);
    };
    let show_metadata = state
        .store()
        .project(&link.project_id)
        .await?
        .is_some_and(|p| p.proof_show_metadata);
    let record = &stored.record;
    let Some(incident) = record.incident.as_ref() else {
        return Ok(None);
    };
    let page = ProofPage {
        provider: record.provider.to_string(),
        event_type: record
            .event_type
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        subject: record.subject.clone().unwrap_or_else(|| "—".into()),
        effect: record.effect.clone().unwrap_or_else(|| "—".into()),
        event_id: record.event_id.clone(),
        event_state: record.state.as_str().replace('_', " "),
        incident_state: incident.state.as_str().to_owned(),
        incident_kind: incident.kind.as_str().replace('_', " "),
        resolution: incident
            .resolution
            .map(|r| match r {
                sendpromptly_core::model::Resolution::SuccessResult => {
                    "the effect was applied (success result)"
                }
                sendpromptly_core::model::Resolution::Manual => "resolved by the team",
                sendpromptly_core::model::Resolution::ReceiptArrived => {
                    "the app's receipt arrived late (receipt arrived)"
                }
            })
            .unwrap_or("not yet resolved")
            .to_owned(),
        opened_at: display_time(incident.opened_at),
        expires_at: display_time(link.expires_at),
        metadata: if show_metadata {
            record
                .metadata
                .as_ref()
                .and_then(|m| serde_json::to_string_pretty(m).ok())
        } else {
            None
        },
        rows: timeline_rows(&stored.timeline, false),
    };
    page.render()
        .map(Some)
        .map_err(|err| ApiError::Internal(format!("proof page template: {err}")))
}
