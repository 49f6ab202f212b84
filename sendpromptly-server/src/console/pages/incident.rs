//! One incident: its page, the live part that refreshes during a
//! reprocess, and its actions (reprocess, resolve, proof links).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sendpromptly_core::model::{IncidentState, Resolution};
use serde::Deserialize;

use super::{Done, EventFacts, PageResult, fail, non_empty, respond, see_other, time};
use crate::app::AppState;
use crate::console::PageError;
use crate::console::auth::{self};
use crate::console::{Layout, Notice, PROJECT_COOKIE, Workspace, render};
use crate::render::{TimelineRow, display_time, link_traces, timeline_rows};
use crate::service::incidents::{load_incident, manual_resolve, request_reprocess};
use crate::service::proof::{DEFAULT_PROOF_SECONDS, create_link, revoke_link};
use crate::store::StoredEvent;
use crate::views::ProofLinkCreated;

/// The part of the incident page that refreshes while a reprocess is in flight.
pub struct Live {
    pub id: String,
    pub state: &'static str,
    pub kind: String,
    pub resolution: String,
    pub opened_at: String,
    pub last_error: String,
    pub polling: bool,
    pub resolved: bool,
    /// Why Reprocess is disabled, if it is.
    pub reprocess_blocked: Option<String>,
    pub needs_repair_url: bool,
    pub csrf: String,
    /// The user's role allows Reprocess, resolve and proof links (operator+).
    pub can_operate: bool,
}

/// A proof link in the incident's list.
pub struct LinkItem {
    pub id: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub status: &'static str,
}

#[derive(Template)]
#[template(path = "console/incident.html")]
struct IncidentPage {
    layout: Layout,
    live: Live,
    rows: Vec<TimelineRow>,
    event: EventFacts,
    links: Vec<LinkItem>,
    created_link: Option<ProofLinkCreated>,
    created_link_expires: String,
}

#[derive(Template)]
#[template(path = "console/incident_live.html")]
struct LiveFragment {
    live: Live,
    rows: Vec<TimelineRow>,
}

fn live_of(ws: &Workspace, stored: &StoredEvent) -> Option<Live> {
    let incident = stored.record.incident.as_ref()?;
    let resolved = incident.state == IncidentState::Resolved;
    let needs_repair_url = ws.project.repair_url.is_none();
    let reprocess_blocked = if resolved {
        Some("The incident is resolved; there is nothing to reprocess.".to_owned())
    } else if incident.callback_in_flight() {
        Some(format!(
            "A repair callback ({}) is still being delivered. You can reprocess again once it is delivered or gives up.",
            incident.reprocess.as_ref().map_or("", |r| r.id.as_str())
        ))
    } else if needs_repair_url {
        Some("This project has no repair URL, so there is nowhere to send a repair callback. Set one in Settings.".to_owned())
    } else {
        None
    };
    Some(Live {
        id: incident.id.clone(),
        state: incident.state.as_str(),
        kind: incident.kind.as_str().replace('_', " "),
        resolution: match incident.resolution {
            Some(Resolution::SuccessResult) if resolved => {
                format!(
                    "resolved by a success result at {}",
                    time(incident.resolved_at)
                )
            }
            Some(Resolution::Manual) if resolved => {
                format!("resolved by hand at {}", time(incident.resolved_at))
            }
            _ => String::new(),
        },
        opened_at: display_time(incident.opened_at),
        last_error: incident.last_error.clone().unwrap_or_default(),
        polling: incident.state == IncidentState::Reprocessing,
        resolved,
        reprocess_blocked,
        needs_repair_url,
        csrf: ws.signed_in.csrf.clone(),
        can_operate: ws.role.allows(sendpromptly_core::roles::Role::Operator),
    })
}

async fn incident_page(
    state: &AppState,
    ws: &Workspace,
    incident_id: &str,
    status: StatusCode,
    notice: Option<Notice>,
    created_link: Option<ProofLinkCreated>,
) -> PageResult {
    let stored = load_incident(state, &ws.project.id, incident_id)
        .await
        .map_err(fail(ws))?;
    let live = live_of(ws, &stored).ok_or_else(|| fail(ws)(PageError::not_found("incident")))?;
    let now = state.now();
    let links = state
        .store()
        .proof_links_for_incident(&ws.project.id, incident_id)
        .await
        .map_err(fail(ws))?
        .into_iter()
        .map(|link| LinkItem {
            status: if link.revoked_at.is_some() {
                "revoked"
            } else if link.expires_at <= now {
                "expired"
            } else {
                "active"
            },
            id: link.id,
            created_by: link.created_by,
            created_at: display_time(link.created_at),
            expires_at: display_time(link.expires_at),
        })
        .collect();
    let mut layout = ws.layout(format!("Incident {incident_id}"), "incidents");
    layout.notice = notice;
    Ok(render(
        status,
        &IncidentPage {
            layout,
            live,
            rows: link_traces(
                timeline_rows(&stored.timeline, true),
                ws.project.trace_url_template.as_deref(),
            ),
            event: EventFacts::of(&stored.record),
            links,
            created_link_expires: created_link
                .as_ref()
                .map(|l| display_time(l.expires_at))
                .unwrap_or_default(),
            created_link,
        },
    ))
}

/// `?project=` on a link from outside the console (an alert).
#[derive(Debug, Default, Deserialize)]
pub struct ProjectParam {
    project: Option<String>,
}

/// `GET /incidents/{id}` (`?project=prj_…` from an alert link switches the
/// console to the incident's project first, then shows it).
pub async fn incident(
    State(state): State<AppState>,
    ws: Workspace,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(done): Query<Done>,
    Query(link): Query<ProjectParam>,
) -> Response {
    let secure = auth::is_secure(&state, &headers);
    respond(async move {
        if let Some(project) = link
            .project
            .as_deref()
            .and_then(|wanted| ws.projects.iter().find(|p| p.id == wanted))
        {
            // The guard already made `?project=` this request's project (a
            // member's own only): remember it for the plain address.
            let mut response = see_other(&crate::links::incident_path(&id));
            response.headers_mut().append(
                header::SET_COOKIE,
                auth::set_cookie(PROJECT_COOKIE, &project.id, 365 * 24 * 3600, "Lax", secure),
            );
            return Ok(response);
        }
        incident_page(&state, &ws, &id, StatusCode::OK, done.notice(), None).await
    })
    .await
}

/// `GET /incidents/{id}/live`: the refreshing part (htmx).
pub async fn incident_live(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
) -> Response {
    respond(async move {
        let stored = load_incident(&state, &ws.project.id, &id)
            .await
            .map_err(fail(&ws))?;
        let live =
            live_of(&ws, &stored).ok_or_else(|| fail(&ws)(PageError::not_found("incident")))?;
        if !live.polling {
            // The reprocess settled: reload the whole page (event facts and
            // actions change too), at its plain address.
            return Ok((
                StatusCode::OK,
                [(
                    header::HeaderName::from_static("hx-redirect"),
                    format!("/incidents/{id}"),
                )],
            )
                .into_response());
        }
        Ok(render(
            StatusCode::OK,
            &LiveFragment {
                live,
                rows: link_traces(
                    timeline_rows(&stored.timeline, true),
                    ws.project.trace_url_template.as_deref(),
                ),
            },
        ))
    })
    .await
}

/// A form with an optional note.
#[derive(Debug, Default, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    note: String,
}

/// Re-renders the incident page with an action's error.
async fn incident_error(
    state: &AppState,
    ws: &Workspace,
    id: &str,
    err: impl Into<PageError>,
) -> Response {
    let err: PageError = err.into();
    let status = err.status();
    if status == StatusCode::NOT_FOUND {
        return fail(ws)(err);
    }
    match incident_page(state, ws, id, status, Notice::bad(err.message()), None).await {
        Ok(response) | Err(response) => response,
    }
}

/// `POST /incidents/{id}/reprocess`.
pub async fn reprocess(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Response {
    respond(async move {
        let note = non_empty(Some(form.note));
        match request_reprocess(&state, &ws.project.id, &id, ws.actor(), note).await {
            Ok(_) => Ok(see_other(&format!("/incidents/{id}?done=reprocess"))),
            Err(err) => Ok(incident_error(&state, &ws, &id, err).await),
        }
    })
    .await
}

/// `POST /incidents/{id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Response {
    respond(async move {
        match manual_resolve(&state, &ws.project.id, &id, ws.actor(), form.note).await {
            Ok(_) => Ok(see_other(&format!("/incidents/{id}?done=resolved"))),
            Err(err) => Ok(incident_error(&state, &ws, &id, err).await),
        }
    })
    .await
}

/// The proof-link form.
#[derive(Debug, Default, Deserialize)]
pub struct ProofForm {
    #[serde(default)]
    expires_in_seconds: Option<String>,
}

/// `POST /incidents/{id}/proof-links`: shows the new URL once.
pub async fn create_proof_link(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
    Form(form): Form<ProofForm>,
) -> Response {
    respond(async move {
        let seconds = match non_empty(form.expires_in_seconds) {
            None => Some(DEFAULT_PROOF_SECONDS),
            Some(text) => match text.parse::<u32>() {
                Ok(seconds) => Some(seconds),
                Err(_) => {
                    return Ok(incident_error(
                        &state,
                        &ws,
                        &id,
                        PageError::invalid("expires_in_seconds", "must be a number of seconds"),
                    )
                    .await);
                }
            },
        };
        match create_link(&state, &ws.who(), &ws.project.id, &id, ws.actor(), seconds).await {
            Ok(created) => {
                incident_page(
                    &state,
                    &ws,
                    &id,
                    StatusCode::CREATED,
                    Notice::ok("Proof link created. Copy it now: it is shown only once."),
                    Some(created),
                )
                .await
            }
            Err(err) => Ok(incident_error(&state, &ws, &id, err).await),
        }
    })
    .await
}

/// `POST /incidents/{id}/proof-links/{link}/revoke`.
pub async fn revoke_proof_link(
    State(state): State<AppState>,
    ws: Workspace,
    Path((id, link)): Path<(String, String)>,
) -> Response {
    respond(async move {
        match revoke_link(
            &state,
            &ws.who(),
            &ws.project.id,
            &link,
            Some(&id),
            ws.actor(),
        )
        .await
        {
            Ok(()) => Ok(see_other(&format!("/incidents/{id}?done=revoked"))),
            Err(err) => Ok(incident_error(&state, &ws, &id, err).await),
        }
    })
    .await
}
