//! Proof links: create, list, revoke (the HTTP adapters of
//! [`crate::service::proof`]), and the read-only page at `/proof/{token}`.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Caller, OptionalApiJson, PathSegments};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::render::{TimelineRow, display_time, timeline_rows};
use crate::secrets;
use crate::service::chain::verify_incident;
use crate::service::proof::{create_link, links_of, revoke_link};
use crate::views::{ProofLinkCreated, ProofLinkView};
use sendpromptly_core::Timestamp;
use sendpromptly_core::chain::{BreakReason, EventVerdict, PublishedHead};

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
    integrity: Integrity,
}

/// The proof page's words on the timeline's hash chain.
struct Integrity {
    /// Whether the chain verifies.
    verified: bool,
    /// "Timeline verified (…)" or the first break.
    summary: String,
    /// How the link's chain head compares, when the link carries one.
    since_link: Option<String>,
    /// Whether the timeline changed since the link was made.
    changed_since_link: bool,
}

impl Integrity {
    fn of(verdict: &EventVerdict) -> Self {
        let summary = match verdict.breaks.first() {
            None => {
                let head = verdict.head.as_deref().unwrap_or("none");
                let mut s = format!(
                    "Timeline verified ({} entries, chain head {head})",
                    verdict.verified
                );
                if verdict.unchained > 0 {
                    s.push_str(&format!(
                        "; {} earlier entries were recorded before chaining began and are not covered",
                        verdict.unchained
                    ));
                }
                s
            }
            Some(first) if first.why == BreakReason::HeadMismatch => format!(
                "Timeline does not verify: after entry {}: {}",
                first.position - 1,
                first.why
            ),
            Some(first) => format!(
                "Timeline does not verify: entry {}, recorded {}: {}",
                first.position,
                first
                    .at_millis
                    .map(|at| display_time(Timestamp::from_unix_millis(at)))
                    .unwrap_or_default(),
                first.why
            ),
        };
        let since_link = verdict.published.as_ref().map(|p| match p {
            PublishedHead::Current => "Unchanged since this link was made.".to_owned(),
            PublishedHead::Extended { added } => format!(
                "{added} entries were added since this link was made; the earlier ones are unchanged."
            ),
            PublishedHead::Changed => "The timeline changed since this link was made: \
                 the chain head in the link is no longer on it."
                .to_owned(),
        });
        Integrity {
            verified: verdict.intact(),
            summary,
            since_link,
            changed_since_link: verdict.published == Some(PublishedHead::Changed),
        }
    }
}

/// The proof page's query: `h`, the chain head when the link was made.
#[derive(Debug, Default, Deserialize)]
pub struct ProofQuery {
    #[serde(default)]
    h: Option<String>,
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
pub async fn page(
    State(state): State<AppState>,
    path: PathSegments,
    query: Result<Query<ProofQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // An unreadable query is no published head (the page still shows).
    let published = query.ok().and_then(|Query(q)| q.h);
    match render_page(&state, path.first(), published.as_deref()).await {
        Ok(Some(html)) => Html(html).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(ProofGone.render().unwrap_or_default()),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn render_page(
    state: &AppState,
    token: &str,
    published: Option<&str>,
) -> Result<Option<String>, ApiError> {
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
    let Some(verdict) = verify_incident(
        state.store(),
        &link.project_id,
        &link.incident_id,
        published,
    )
    .await?
    else {
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
        integrity: Integrity::of(&verdict),
    };
    page.render()
        .map(Some)
        .map_err(|err| ApiError::Internal(format!("proof page template: {err}")))
}
