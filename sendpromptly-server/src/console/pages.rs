//! The console's pages and form actions. Actions call the functions the API
//! uses, as `console:<email>`; a form that fails re-renders its page with
//! the reason (and the API's status code).

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sendpromptly_core::Timestamp;
use sendpromptly_core::machine::EventRecord;
use sendpromptly_core::model::{
    EventKey, EventState, IncidentKind, IncidentState, Provider, Resolution,
};
use serde::Deserialize;

use super::PageError;
use super::auth::{self, SignedIn};
use super::chart::{self, TypeRow};
use super::{Layout, Notice, PROJECT_COOKIE, Workspace, error_page, render, workspace};
use crate::app::AppState;
use crate::provision;
use crate::render::{TimelineRow, display_time, timeline_rows};
use crate::service::batches;
use crate::service::incidents::{load_incident, manual_resolve, request_reprocess};
use crate::service::project::{self as project_service, rotate};
use crate::service::proof::{DEFAULT_PROOF_SECONDS, create_link, revoke_link};
use crate::store::{EventFilter, IncidentFilter, PageRequest, StoredEvent};
use crate::views::ProjectUpdate;
use crate::views::{
    ProofLinkCreated, ReprocessBatchCounts, ReprocessBatchItem, ReprocessBatchPlan,
    ReprocessBatchRequest, ReprocessBatchView,
};

type PageResult = Result<Response, Response>;

/// Runs a page body; an `Err` is already a response (an error page).
async fn with_workspace<F, Fut>(
    state: AppState,
    headers: &HeaderMap,
    signed_in: SignedIn,
    body: F,
) -> Response
where
    F: FnOnce(Workspace) -> Fut,
    Fut: Future<Output = PageResult>,
{
    let ws = match workspace(&state, headers, signed_in.clone()).await {
        Ok(ws) => ws,
        Err(err) => return error_page(Some(&signed_in), &err),
    };
    match body(ws).await {
        Ok(response) | Err(response) => response,
    }
}

/// Maps an error (a [`PageError`], or what becomes one) to the console's error page.
fn fail<E: Into<PageError>>(ws: &Workspace) -> impl Fn(E) -> Response + '_ {
    move |err| error_page(Some(&ws.signed_in), &err.into())
}

fn time(at: Option<sendpromptly_core::Timestamp>) -> String {
    at.map_or_else(|| "—".to_owned(), display_time)
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn state_label(state: EventState) -> &'static str {
    match state {
        EventState::AwaitingResult => "awaiting result",
        EventState::Succeeded => "succeeded",
        EventState::Failed => "failed",
        EventState::Overdue => "overdue",
    }
}

// ---------------------------------------------------------------------------
// Shared view data

/// An incident in a list.
pub struct IncidentItem {
    pub id: String,
    pub state: &'static str,
    pub kind: String,
    pub provider: String,
    pub event_type: String,
    pub event_id: String,
    pub subject: String,
    pub opened_at: String,
    pub last_error: String,
}

impl IncidentItem {
    fn of(record: &EventRecord) -> Option<IncidentItem> {
        let incident = record.incident.as_ref()?;
        Some(IncidentItem {
            id: incident.id.clone(),
            state: incident.state.as_str(),
            kind: incident.kind.as_str().replace('_', " "),
            provider: record.provider.to_string(),
            event_type: record.event_type.clone().unwrap_or_else(|| "—".into()),
            event_id: record.event_id.clone(),
            subject: record.subject.clone().unwrap_or_else(|| "—".into()),
            opened_at: display_time(incident.opened_at),
            last_error: incident.last_error.clone().unwrap_or_default(),
        })
    }
}

/// The facts of an event, for people.
pub struct EventFacts {
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub subject: String,
    pub effect: String,
    pub amount: Option<String>,
    pub state: &'static str,
    pub state_label: &'static str,
    pub occurred_at: String,
    pub received_at: String,
    pub deadline_at: String,
    pub deliveries: u32,
    pub result_at: String,
    pub answer: String,
    pub answer_tone: &'static str,
    pub metadata: Option<String>,
    pub link: String,
    pub incident_id: Option<String>,
}

/// Minor units per major unit for ISO 4217 currencies without decimals.
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// The amount of an event when its metadata carries one (`amount` or
/// `amount_total` in minor units, with an optional `currency`).
fn amount(record: &EventRecord) -> Option<String> {
    let metadata = record.metadata.as_ref()?;
    let value = metadata
        .get("amount")
        .or_else(|| metadata.get("amount_total"))?;
    let currency = metadata
        .get("currency")
        .and_then(|c| c.as_str())
        .map(str::to_lowercase);
    match (value.as_i64(), currency) {
        (Some(minor), Some(currency)) if ZERO_DECIMAL.contains(&currency.as_str()) => {
            Some(format!("{minor} {}", currency.to_uppercase()))
        }
        (Some(minor), Some(currency)) => Some(format!(
            "{}{}.{:02} {}",
            if minor < 0 { "-" } else { "" },
            minor.unsigned_abs() / 100,
            minor.unsigned_abs() % 100,
            currency.to_uppercase()
        )),
        (Some(minor), None) => Some(format!("{minor} (minor units)")),
        (None, _) => Some(value.to_string()),
    }
}

impl EventFacts {
    fn of(record: &EventRecord) -> EventFacts {
        let (answer, answer_tone) = match record.state {
            EventState::Succeeded => (
                format!(
                    "Yes. The app reported success at {}.",
                    time(record.result_at)
                ),
                "ok",
            ),
            EventState::Failed => (
                format!(
                    "No. The app reported a failure{}.",
                    record
                        .last_result
                        .as_ref()
                        .and_then(|r| r.error.as_deref())
                        .map_or_else(String::new, |e| format!(": {e}"))
                ),
                "bad",
            ),
            EventState::Overdue => (
                format!(
                    "Unknown. No result arrived by the deadline ({}).",
                    time(record.deadline_at)
                ),
                "bad",
            ),
            EventState::AwaitingResult => (
                format!(
                    "Not yet. The app has accepted it; its result is due by {}.",
                    time(record.deadline_at)
                ),
                "warn",
            ),
        };
        EventFacts {
            provider: record.provider.to_string(),
            event_id: record.event_id.clone(),
            event_type: record.event_type.clone().unwrap_or_else(|| "—".into()),
            subject: record.subject.clone().unwrap_or_else(|| "—".into()),
            effect: record.effect.clone().unwrap_or_else(|| "—".into()),
            amount: amount(record),
            state: record.state.as_str(),
            state_label: state_label(record.state),
            occurred_at: time(record.occurred_at),
            received_at: time(record.received_at),
            deadline_at: time(record.deadline_at),
            deliveries: record.deliveries,
            result_at: time(record.result_at),
            answer,
            answer_tone,
            metadata: record
                .metadata
                .as_ref()
                .filter(|m| !m.is_empty())
                .and_then(|m| serde_json::to_string_pretty(m).ok()),
            link: format!(
                "/events/{}/{}",
                record.provider.as_str(),
                path_segment(&record.event_id)
            ),
            incident_id: record.incident.as_ref().map(|i| i.id.clone()),
        }
    }
}

// ---------------------------------------------------------------------------
// Overview

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    layout: Layout,
    open: u64,
    reprocessing: u64,
    resolved: u64,
    attention: Vec<IncidentItem>,
    more_attention: bool,
    chart_svg: String,
    chart_summary: String,
    types: Vec<TypeRow>,
    repair_url_missing: bool,
    /// No bulk selection on the overview.
    selectable: bool,
}

/// `GET /`: open and reprocessing incidents first, counts, the 30-day chart.
pub async fn overview(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let store = state.store();
        let project_id = ws.project.id.clone();
        let counts = store
            .incident_counts(&project_id)
            .await
            .map_err(|e| fail(&ws)(e))?;
        let mut attention = Vec::new();
        let mut more_attention = false;
        for wanted in [IncidentState::Reprocessing, IncidentState::Open] {
            let page = store
                .list_incidents(
                    &project_id,
                    &IncidentFilter {
                        state: Some(wanted),
                        ..IncidentFilter::default()
                    },
                    &PageRequest {
                        limit: 10,
                        cursor: None,
                    },
                )
                .await
                .map_err(|e| fail(&ws)(e))?;
            more_attention |= page.next_cursor.is_some();
            attention.extend(page.data.iter().filter_map(IncidentItem::of));
        }
        let now = state.now();
        let since = now.plus_seconds(-86_400 * (chart::DAYS as i64 - 1));
        let activity = store
            .daily_activity(&project_id, since)
            .await
            .map_err(|e| fail(&ws)(e))?;
        let chart = chart::overview(&activity, now.to_datetime().date_naive());
        Ok(render(
            StatusCode::OK,
            &OverviewPage {
                layout: ws.layout("Overview", "overview"),
                open: counts.open,
                reprocessing: counts.reprocessing,
                resolved: counts.resolved,
                attention,
                more_attention,
                chart_svg: chart.svg,
                chart_summary: chart.summary,
                types: chart.types,
                repair_url_missing: ws.project.repair_url.is_none(),
                selectable: false,
            },
        ))
    })
    .await
}

// ---------------------------------------------------------------------------
// Incident list

/// Filters of the incident list (all optional; empty means "any").
#[derive(Debug, Default, Deserialize)]
pub struct IncidentQuery {
    state: Option<String>,
    kind: Option<String>,
    provider: Option<String>,
    event_type: Option<String>,
    subject: Option<String>,
    opened_after: Option<String>,
    opened_before: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "console/incidents.html")]
struct IncidentsPage {
    layout: Layout,
    state: String,
    kind: String,
    provider: String,
    event_type: String,
    subject: String,
    /// The "opened between" bounds, as `datetime-local` values (UTC).
    opened_after: String,
    opened_before: String,
    q: String,
    items: Vec<IncidentItem>,
    next_link: Option<String>,
    first_link: Option<String>,
    filtered: bool,
    /// Rows get checkboxes for a bulk reprocess.
    selectable: bool,
}

fn parse_choice<T: std::str::FromStr>(
    name: &str,
    value: &Option<String>,
) -> Result<Option<T>, PageError> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| PageError::invalid(name, format!("`{v}` is not a known value"))),
    }
}

/// A time from a console form: RFC 3339, or what a `datetime-local` input
/// sends (`2026-11-22T09:00`, seconds optional), read as UTC.
fn form_time(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, PageError> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = Timestamp::parse_rfc3339(text) {
        return Ok(Some(at));
    }
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
    .map(|naive| Some(Timestamp::from_datetime(naive.and_utc())))
    .ok_or_else(|| {
        PageError::invalid(
            name,
            format!("`{text}` is not a time like 2026-11-22T09:00 (UTC)"),
        )
    })
}

/// A time as a `datetime-local` input value (UTC, seconds kept).
fn form_time_value(at: Option<Timestamp>) -> String {
    at.map(|at| at.to_datetime().format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `GET /incidents`: filter, search, paginate.
pub async fn incidents(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Query(query): Query<IncidentQuery>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let filter = IncidentFilter {
            state: parse_choice::<IncidentState>("state", &query.state).map_err(fail(&ws))?,
            kind: parse_choice::<IncidentKind>("kind", &query.kind).map_err(fail(&ws))?,
            provider: parse_choice::<Provider>("provider", &query.provider).map_err(fail(&ws))?,
            event_type: non_empty(query.event_type.clone()),
            subject: non_empty(query.subject.clone()),
            opened_after: form_time("opened_after", query.opened_after.as_deref())
                .map_err(fail(&ws))?,
            opened_before: form_time("opened_before", query.opened_before.as_deref())
                .map_err(fail(&ws))?,
            search: non_empty(query.q.clone()),
        };
        let cursor = non_empty(query.cursor.clone());
        let page = state
            .store()
            .list_incidents(
                &ws.project.id,
                &filter,
                &PageRequest {
                    limit: 25,
                    cursor: cursor.clone(),
                },
            )
            .await
            .map_err(|e| fail(&ws)(e))?;
        let text = |v: &Option<String>| non_empty(v.clone()).unwrap_or_default();
        let params: Vec<(&str, String)> = [
            ("state", text(&query.state)),
            ("kind", text(&query.kind)),
            ("provider", text(&query.provider)),
            ("event_type", text(&query.event_type)),
            ("subject", text(&query.subject)),
            ("opened_after", form_time_value(filter.opened_after)),
            ("opened_before", form_time_value(filter.opened_before)),
            ("q", text(&query.q)),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        let link = |cursor: Option<&str>| {
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &params {
                serializer.append_pair(name, value);
            }
            if let Some(cursor) = cursor {
                serializer.append_pair("cursor", cursor);
            }
            format!("/incidents?{}", serializer.finish())
        };
        Ok(render(
            StatusCode::OK,
            &IncidentsPage {
                layout: ws.layout("Incidents", "incidents"),
                state: text(&query.state),
                kind: text(&query.kind),
                provider: text(&query.provider),
                event_type: text(&query.event_type),
                subject: text(&query.subject),
                opened_after: form_time_value(filter.opened_after),
                opened_before: form_time_value(filter.opened_before),
                q: text(&query.q),
                items: page.data.iter().filter_map(IncidentItem::of).collect(),
                next_link: page.next_cursor.as_deref().map(|c| link(Some(c))),
                first_link: cursor.is_some().then(|| link(None)),
                filtered: !params.is_empty(),
                selectable: true,
            },
        ))
    })
    .await
}

// ---------------------------------------------------------------------------
// Incident page

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
        .map_err(|e| fail(ws)(e))?
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
            rows: timeline_rows(&stored.timeline, true),
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

/// Notices after a redirect (`?done=…`): fixed texts, never echoed input.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

impl Done {
    fn notice(&self) -> Option<Notice> {
        let text = match self.done.as_deref()? {
            "reprocess" => {
                "Reprocess requested: the repair callback is on its way. This page refreshes until it settles."
            }
            "resolved" => "Incident resolved. The note is on the timeline.",
            "revoked" => "Proof link revoked: it no longer opens.",
            "saved" => "Settings saved.",
            "key_revoked" => "API key revoked.",
            _ => return None,
        };
        Notice::ok(text)
    }
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
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(done): Query<Done>,
    Query(link): Query<ProjectParam>,
) -> Response {
    let secure = auth::is_secure(&state, &headers);
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        if let Some(project) = link
            .project
            .as_deref()
            .and_then(|wanted| ws.projects.iter().find(|p| p.id == wanted))
        {
            let mut response = see_other(&super::incident_path(&id));
            if project.id != ws.project.id {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    auth::set_cookie(PROJECT_COOKIE, &project.id, 365 * 24 * 3600, "Lax", secure),
                );
            }
            return Ok(response);
        }
        incident_page(&state, &ws, &id, StatusCode::OK, done.notice(), None).await
    })
    .await
}

/// `GET /incidents/{id}/live`: the refreshing part (htmx).
pub async fn incident_live(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
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
                rows: timeline_rows(&stored.timeline, true),
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

/// Redirect after a successful POST (303: the browser GETs the page).
fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
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
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
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
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
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
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ProofForm>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
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
        match create_link(&state, &ws.project.id, &id, ws.actor(), seconds).await {
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
    signed_in: SignedIn,
    headers: HeaderMap,
    Path((id, link)): Path<(String, String)>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        match revoke_link(&state, &ws.project.id, &link, Some(&id), ws.actor()).await {
            Ok(()) => Ok(see_other(&format!("/incidents/{id}?done=revoked"))),
            Err(err) => Ok(incident_error(&state, &ws, &id, err).await),
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// Event lookup

/// The lookup box.
#[derive(Debug, Default, Deserialize)]
pub struct EventQuery {
    q: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct EventsPage {
    layout: Layout,
    q: String,
    items: Vec<EventFacts>,
    next_link: Option<String>,
}

/// `GET /events?q=`: events by (part of) their event id or subject, with
/// the answer to "was it applied?" on each.
pub async fn events(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Query(query): Query<EventQuery>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let q = non_empty(query.q.clone());
        let page = state
            .store()
            .search_events(
                &ws.project.id,
                &EventFilter {
                    search: q.clone(),
                    ..EventFilter::default()
                },
                &PageRequest {
                    limit: 25,
                    cursor: non_empty(query.cursor.clone()),
                },
            )
            .await
            .map_err(|e| fail(&ws)(e))?;
        let next_link = page.next_cursor.as_deref().map(|cursor| {
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            if let Some(q) = &q {
                serializer.append_pair("q", q);
            }
            serializer.append_pair("cursor", cursor);
            format!("/events?{}", serializer.finish())
        });
        Ok(render(
            StatusCode::OK,
            &EventsPage {
                layout: ws.layout("Event lookup", "events"),
                q: q.unwrap_or_default(),
                items: page.data.iter().map(EventFacts::of).collect(),
                next_link,
            },
        ))
    })
    .await
}

#[derive(Template)]
#[template(path = "console/event.html")]
struct EventPage {
    layout: Layout,
    event: EventFacts,
    rows: Vec<TimelineRow>,
}

/// `GET /events/{provider}/{event_id}`: one event, with or without an incident.
pub async fn event(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path((provider, event_id)): Path<(String, String)>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let provider: Provider = provider
            .parse()
            .map_err(|_| fail(&ws)(PageError::not_found("event")))?;
        let key = EventKey { provider, event_id };
        let stored = state
            .store()
            .event(&ws.project.id, &key)
            .await
            .map_err(|e| fail(&ws)(e))?
            .ok_or_else(|| fail(&ws)(PageError::not_found("event")))?;
        Ok(render(
            StatusCode::OK,
            &EventPage {
                layout: ws.layout(format!("Event {}", key.event_id), "events"),
                event: EventFacts::of(&stored.record),
                rows: timeline_rows(&stored.timeline, true),
            },
        ))
    })
    .await
}

// ---------------------------------------------------------------------------
// Settings

/// A signing secret in the list (never the secret itself).
pub struct SecretItem {
    pub created_at: String,
    pub expires_at: String,
}

/// An API key in the list.
pub struct KeyItem {
    pub id: String,
    pub prefix: String,
    pub name: String,
    pub created_at: String,
    pub revoked: bool,
    pub revoked_at: String,
}

/// A secret shown once.
pub struct Shown {
    pub label: &'static str,
    pub value: String,
    pub hint: &'static str,
}

/// A console user in the list.
pub struct UserItem {
    pub email: String,
    pub created_at: String,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    layout: Layout,
    project_id: String,
    repair_url: String,
    /// Why the saved repair URL will be refused when a callback is sent
    /// (saved before, or the server now runs without --allow-private-urls).
    repair_url_refused: Option<String>,
    default_deadline_seconds: String,
    proof_show_metadata: bool,
    deadlines: String,
    alerts: String,
    secrets: Vec<SecretItem>,
    keys: Vec<KeyItem>,
    users: Vec<UserItem>,
    shown: Option<Shown>,
}

/// Form values to show again after a failed save.
#[derive(Default)]
struct Draft {
    repair_url: Option<String>,
    default_deadline_seconds: Option<String>,
    deadlines: Option<String>,
    alerts: Option<String>,
}

fn deadlines_text(table: &BTreeMap<String, u32>) -> String {
    table
        .iter()
        .map(|(event_type, seconds)| format!("{event_type} = {seconds}\n"))
        .collect()
}

async fn settings_page(
    state: &AppState,
    ws: &Workspace,
    status: StatusCode,
    notice: Option<Notice>,
    shown: Option<Shown>,
    draft: Draft,
) -> PageResult {
    let store = state.store();
    let project = store
        .project(&ws.project.id)
        .await
        .map_err(|e| fail(ws)(e))?
        .ok_or_else(|| fail(ws)(PageError::not_found("project")))?;
    let secrets = store
        .signing_secrets(&project.id, state.now())
        .await
        .map_err(|e| fail(ws)(e))?
        .into_iter()
        .map(|s| SecretItem {
            created_at: display_time(s.created_at),
            expires_at: s.expires_at.map_or_else(|| "—".to_owned(), display_time),
        })
        .collect();
    let keys = store
        .list_api_keys(&project.id)
        .await
        .map_err(|e| fail(ws)(e))?
        .into_iter()
        .map(|k| KeyItem {
            id: k.id,
            prefix: k.prefix,
            name: k.name.unwrap_or_default(),
            created_at: display_time(k.created_at),
            revoked: k.revoked_at.is_some(),
            revoked_at: time(k.revoked_at),
        })
        .collect();
    let users = store
        .list_users()
        .await
        .map_err(|e| fail(ws)(e))?
        .into_iter()
        .map(|u| UserItem {
            email: u.email,
            created_at: display_time(u.created_at),
        })
        .collect();
    let mut layout = ws.layout("Settings", "settings");
    layout.notice = notice;
    Ok(render(
        status,
        &SettingsPage {
            layout,
            project_id: project.id.clone(),
            repair_url_refused: project.repair_url.as_deref().and_then(|url| {
                state
                    .config()
                    .outbound
                    .check_setting("repair_url", url)
                    .err()
                    .map(|refused| refused.to_string())
            }),
            repair_url: draft
                .repair_url
                .unwrap_or_else(|| project.repair_url.clone().unwrap_or_default()),
            default_deadline_seconds: draft
                .default_deadline_seconds
                .unwrap_or_else(|| project.default_deadline_seconds.to_string()),
            proof_show_metadata: project.proof_show_metadata,
            deadlines: draft
                .deadlines
                .unwrap_or_else(|| deadlines_text(&project.deadlines_by_event_type)),
            alerts: draft.alerts.unwrap_or_else(|| {
                serde_json::to_string_pretty(&project.alert_channels)
                    .unwrap_or_else(|_| "[]".to_owned())
            }),
            secrets,
            keys,
            users,
            shown,
        },
    ))
}

/// `GET /settings`.
pub async fn settings(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        settings_page(
            &state,
            &ws,
            StatusCode::OK,
            done.notice(),
            None,
            Draft::default(),
        )
        .await
    })
    .await
}

/// Applies a settings change through the service layer's validation.
async fn save(state: &AppState, ws: &Workspace, update: ProjectUpdate, draft: Draft) -> PageResult {
    let result = project_service::update(state, &ws.project.id, update).await;
    match result {
        Ok(_) => Ok(see_other("/settings?done=saved")),
        Err(err) => {
            let err = PageError::from(err);
            settings_page(
                state,
                ws,
                err.status(),
                Notice::bad(err.message()),
                None,
                draft,
            )
            .await
        }
    }
}

/// The general settings form.
#[derive(Debug, Default, Deserialize)]
pub struct GeneralForm {
    #[serde(default)]
    repair_url: String,
    #[serde(default)]
    default_deadline_seconds: String,
    #[serde(default)]
    proof_show_metadata: Option<String>,
}

/// `POST /settings/general`: repair URL, default deadline, proof metadata.
pub async fn save_general(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<GeneralForm>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let draft = Draft {
            repair_url: Some(form.repair_url.clone()),
            default_deadline_seconds: Some(form.default_deadline_seconds.clone()),
            ..Draft::default()
        };
        let seconds = form.default_deadline_seconds.trim();
        let default_deadline_seconds = match seconds.parse::<u32>() {
            Ok(value) => Some(value),
            Err(_) => {
                let err = PageError::invalid(
                    "default_deadline_seconds",
                    "must be a whole number of seconds (1 – 604800)",
                );
                return settings_page(
                    &state,
                    &ws,
                    err.status(),
                    Notice::bad(err.message()),
                    None,
                    draft,
                )
                .await;
            }
        };
        let update = ProjectUpdate {
            repair_url: Some(non_empty(Some(form.repair_url))),
            default_deadline_seconds,
            proof_show_metadata: Some(form.proof_show_metadata.is_some()),
            ..ProjectUpdate::default()
        };
        save(&state, &ws, update, draft).await
    })
    .await
}

/// The per-event-type deadlines form: one `event.type = seconds` per line.
#[derive(Debug, Default, Deserialize)]
pub struct DeadlinesForm {
    #[serde(default)]
    deadlines: String,
}

fn parse_deadlines(text: &str) -> Result<BTreeMap<String, u32>, PageError> {
    let mut table = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (event_type, seconds) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .ok_or_else(|| {
                PageError::invalid(
                    "deadlines_by_event_type",
                    format!("line {}: write `event.type = seconds`", n + 1),
                )
            })?;
        let seconds = seconds.trim().parse::<u32>().map_err(|_| {
            PageError::invalid(
                "deadlines_by_event_type",
                format!(
                    "line {}: `{}` is not a number of seconds",
                    n + 1,
                    seconds.trim()
                ),
            )
        })?;
        table.insert(event_type.trim().to_owned(), seconds);
    }
    Ok(table)
}

/// `POST /settings/deadlines`.
pub async fn save_deadlines(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<DeadlinesForm>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let draft = Draft {
            deadlines: Some(form.deadlines.clone()),
            ..Draft::default()
        };
        match parse_deadlines(&form.deadlines) {
            Ok(table) => {
                let update = ProjectUpdate {
                    deadlines_by_event_type: Some(table),
                    ..ProjectUpdate::default()
                };
                save(&state, &ws, update, draft).await
            }
            Err(err) => {
                settings_page(
                    &state,
                    &ws,
                    err.status(),
                    Notice::bad(err.message()),
                    None,
                    draft,
                )
                .await
            }
        }
    })
    .await
}

/// The alert channels form: the JSON list of the contract.
#[derive(Debug, Default, Deserialize)]
pub struct AlertsForm {
    #[serde(default)]
    alert_channels: String,
}

/// `POST /settings/alerts`.
pub async fn save_alerts(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<AlertsForm>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let draft = Draft {
            alerts: Some(form.alert_channels.clone()),
            ..Draft::default()
        };
        let text = form.alert_channels.trim();
        let parsed = if text.is_empty() {
            Ok(serde_json::Value::Array(Vec::new()))
        } else {
            serde_json::from_str::<serde_json::Value>(text).map_err(|err| {
                PageError::invalid("alert_channels", format!("is not valid JSON: {err}"))
            })
        };
        match parsed {
            Ok(channels) => {
                let update = ProjectUpdate {
                    alert_channels: Some(channels),
                    ..ProjectUpdate::default()
                };
                save(&state, &ws, update, draft).await
            }
            Err(err) => {
                settings_page(
                    &state,
                    &ws,
                    err.status(),
                    Notice::bad(err.message()),
                    None,
                    draft,
                )
                .await
            }
        }
    })
    .await
}

/// `POST /settings/alerts/test`: sends a test alert to every saved channel
/// and shows each outcome.
pub async fn test_alerts(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let outcomes = project_service::test_alerts(&state, &ws.project.id, None)
            .await
            .map_err(fail(&ws))?;
        let summary: Vec<String> = outcomes
            .iter()
            .map(|o| {
                let status = o
                    .status
                    .map_or_else(String::new, |s| format!(" (HTTP {s})"));
                if o.delivered {
                    format!("channel {} ({}): sent{status}", o.channel, o.kind)
                } else {
                    format!(
                        "channel {} ({}): failed{status}: {}",
                        o.channel,
                        o.kind,
                        o.error.as_deref().unwrap_or("not accepted")
                    )
                }
            })
            .collect();
        let notice = if outcomes.is_empty() {
            Notice::bad("No alert channels are saved yet.")
        } else if outcomes.iter().all(|o| o.delivered) {
            Notice::ok(format!("Test alert sent. {}", summary.join("; ")))
        } else {
            Notice::bad(format!("Test alert: {}", summary.join("; ")))
        };
        settings_page(&state, &ws, StatusCode::OK, notice, None, Draft::default()).await
    })
    .await
}

/// `POST /settings/signing-secret/rotate`: shows the new secret once.
pub async fn rotate_secret(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let rotated = rotate(&state, &ws.project.id).await.map_err(fail(&ws))?;
        tracing::info!(user = %ws.signed_in.user.email, project = %ws.project.id, "signing secret rotated from the console");
        settings_page(
            &state,
            &ws,
            StatusCode::CREATED,
            Notice::ok(format!(
                "New signing secret created. The previous secrets keep signing until {}.",
                display_time(rotated.previous_secrets_expire_at)
            )),
            Some(Shown {
                label: "New signing secret",
                value: rotated.secret,
                hint: "Copy it into your app's configuration now: it is shown only once.",
            }),
            Draft::default(),
        )
        .await
    })
    .await
}

/// The new API key form.
#[derive(Debug, Default, Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    name: String,
}

/// `POST /settings/api-keys`: shows the new key once.
pub async fn create_api_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let name = non_empty(Some(form.name));
        if name.as_ref().is_some_and(|n| n.len() > 100) {
            let err = PageError::invalid("name", "must be at most 100 characters");
            return settings_page(&state, &ws, err.status(), Notice::bad(err.message()), None, Draft::default()).await;
        }
        let key = provision::create_api_key(state.store(), &ws.project.id, name, state.now())
            .await
            .map_err(|e| fail(&ws)(e))?;
        tracing::info!(user = %ws.signed_in.user.email, project = %ws.project.id, "API key created from the console");
        settings_page(
            &state,
            &ws,
            StatusCode::CREATED,
            Notice::ok("API key created."),
            Some(Shown {
                label: "New API key",
                value: key,
                hint: "Copy it now: it is shown only once and stored only as a hash.",
            }),
            Draft::default(),
        )
        .await
    })
    .await
}

/// `POST /settings/api-keys/{id}/revoke`.
pub async fn revoke_api_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let revoked = state
            .store()
            .revoke_api_key(&ws.project.id, &id, state.now())
            .await
            .map_err(|e| fail(&ws)(e))?;
        if !revoked {
            return Err(fail(&ws)(PageError::not_found("API key")));
        }
        state.signal_keys().forget_all();
        tracing::info!(user = %ws.signed_in.user.email, project = %ws.project.id, key = %id, "API key revoked from the console");
        Ok(see_other("/settings?done=key_revoked"))
    })
    .await
}

/// The project switcher.
#[derive(Debug, Default, Deserialize)]
pub struct SwitchForm {
    #[serde(default)]
    project_id: String,
}

/// `POST /switch-project`: remembers the chosen project in a cookie.
pub async fn switch_project(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<SwitchForm>,
) -> Response {
    let secure = auth::is_secure(&state, &headers);
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let project = ws
            .projects
            .iter()
            .find(|p| p.id == form.project_id)
            .ok_or_else(|| fail(&ws)(PageError::not_found("project")))?;
        let mut response = see_other("/");
        response.headers_mut().append(
            header::SET_COOKIE,
            auth::set_cookie(PROJECT_COOKIE, &project.id, 365 * 24 * 3600, "Lax", secure),
        );
        Ok(response)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_parse_one_per_line() {
        let table =
            parse_deadlines("invoice.paid = 3600\n\n# comment\ncheckout.session.completed: 600\n")
                .unwrap();
        assert_eq!(table.get("invoice.paid"), Some(&3600));
        assert_eq!(table.get("checkout.session.completed"), Some(&600));
        assert!(parse_deadlines("invoice.paid").is_err());
        assert!(parse_deadlines("invoice.paid = soon").is_err());
        assert_eq!(
            deadlines_text(&table),
            "checkout.session.completed = 600\ninvoice.paid = 3600\n"
        );
    }

    #[test]
    fn event_ids_are_encoded_as_one_path_segment() {
        assert_eq!(path_segment("evt/1 2?"), "evt%2F1%202%3F");
    }

    #[test]
    fn form_times_are_datetime_local_or_rfc3339_in_utc() {
        let at = |text: &str| form_time("opened_after", Some(text)).unwrap().unwrap();
        let expected = Timestamp::parse_rfc3339("2026-11-22T09:00:00Z").unwrap();
        assert_eq!(at("2026-11-22T09:00"), expected);
        assert_eq!(at(" 2026-11-22T09:00:00 "), expected);
        assert_eq!(at("2026-11-22T10:00:00+01:00"), expected);
        assert_eq!(
            at("2026-11-22T09:00:00.250").unix_millis(),
            expected.unix_millis() + 250
        );
        assert_eq!(form_time("opened_after", Some("  ")).unwrap(), None);
        assert_eq!(form_time("opened_after", None).unwrap(), None);
        for bad in ["yesterday", "2026-11-22", "22/11/2026 09:00"] {
            assert!(form_time("opened_before", Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(form_time_value(Some(expected)), "2026-11-22T09:00:00");
        assert_eq!(form_time_value(None), "");
    }
}

// ---------------------------------------------------------------------------
// Reprocess batches

/// The batch request in a console form or query: `incident_id` (repeated)
/// or the incident list's filters, plus pacing and a note.
fn batch_request(pairs: &[(String, String)]) -> Result<ReprocessBatchRequest, PageError> {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "incident_id")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    let number = |name: &str| -> Result<Option<f64>, PageError> {
        get(name)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| PageError::invalid(name, "must be a number"))
            })
            .transpose()
    };
    Ok(ReprocessBatchRequest {
        incident_ids: (!ids.is_empty()).then_some(ids),
        state: parse_choice("state", &get("state"))?,
        kind: parse_choice("kind", &get("kind"))?,
        provider: parse_choice("provider", &get("provider"))?,
        event_type: get("event_type"),
        subject: get("subject"),
        opened_after: form_time("opened_after", get("opened_after").as_deref())?,
        opened_before: form_time("opened_before", get("opened_before").as_deref())?,
        dry_run: false,
        rate_per_second: number("rate_per_second")?,
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        concurrency: number("concurrency")?.map(|c| c.clamp(0.0, 1e6) as u32),
        note: get("note"),
    })
}

#[derive(Template)]
#[template(path = "console/batch_new.html")]
struct BatchNewPage {
    layout: Layout,
    plan: ReprocessBatchPlan,
    /// The selection, carried to the confirm form as hidden fields.
    hidden: Vec<(String, String)>,
    rate: String,
    concurrency: String,
}

/// `GET /reprocess-batches/new`: the dry-run summary of a selection, with a
/// confirm form.
pub async fn batch_new(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let mut request = batch_request(&pairs).map_err(fail(&ws))?;
        request.dry_run = true;
        let planned = batches::plan_batch(state.store(), &ws.project.id, &request)
            .await
            .map_err(fail(&ws))?;
        let hidden = pairs
            .iter()
            .filter(|(n, v)| {
                !v.trim().is_empty()
                    && [
                        "incident_id",
                        "state",
                        "kind",
                        "provider",
                        "event_type",
                        "subject",
                        "opened_after",
                        "opened_before",
                    ]
                    .contains(&n.as_str())
            })
            .cloned()
            .collect();
        Ok(render(
            StatusCode::OK,
            &BatchNewPage {
                layout: ws.layout("Reprocess incidents", "incidents"),
                plan: planned.plan(),
                hidden,
                rate: planned.rate_per_second.to_string(),
                concurrency: planned.concurrency.to_string(),
            },
        ))
    })
    .await
}

/// `POST /reprocess-batches`: starts the batch, then shows it.
pub async fn batch_start(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let request = batch_request(&pairs).map_err(fail(&ws))?;
        let planned = batches::plan_batch(state.store(), &ws.project.id, &request)
            .await
            .map_err(fail(&ws))?;
        let view = batches::start_batch(
            state.store(),
            &ws.project.id,
            &request,
            &planned,
            &ws.actor(),
            state.now(),
        )
        .await
        .map_err(fail(&ws))?;
        Ok(see_other(&format!("/reprocess-batches/{}", view.id)))
    })
    .await
}

/// A batch's progress, for people.
pub struct BatchProgress {
    pub id: String,
    pub state: String,
    pub running: bool,
    pub counts: ReprocessBatchCounts,
    /// Items that will be (or were) sent: total minus skipped.
    pub to_send: u64,
    /// Items started or cancelled, for the bar.
    pub done: u64,
    pub percent: u64,
    pub started_by: String,
    pub created_at: String,
    pub finished_at: String,
    pub rate: String,
    pub concurrency: u32,
    pub items: Vec<ReprocessBatchItem>,
    pub csrf: String,
}

impl BatchProgress {
    fn of(ws: &Workspace, view: ReprocessBatchView) -> BatchProgress {
        let c = view.counts;
        let to_send = c.total - c.skipped;
        let done = c.sent + c.cancelled;
        BatchProgress {
            running: view.state == "running",
            id: view.id,
            state: view.state,
            counts: c,
            to_send,
            done,
            percent: (done * 100).checked_div(to_send).unwrap_or(100),
            started_by: view.started_by,
            created_at: display_time(view.created_at),
            finished_at: time(view.finished_at),
            rate: view.rate_per_second.to_string(),
            concurrency: view.concurrency,
            items: view.items,
            csrf: ws.signed_in.csrf.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/batch.html")]
struct BatchPage {
    layout: Layout,
    batch: BatchProgress,
}

#[derive(Template)]
#[template(path = "console/batch_progress.html")]
struct BatchFragment {
    batch: BatchProgress,
}

/// `GET /reprocess-batches/{id}`: progress, live while running, with Cancel.
pub async fn batch(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let view = batches::batch_view(state.store(), &ws.project.id, &id)
            .await
            .map_err(fail(&ws))?;
        Ok(render(
            StatusCode::OK,
            &BatchPage {
                layout: ws.layout("Reprocess batch", "incidents"),
                batch: BatchProgress::of(&ws, view),
            },
        ))
    })
    .await
}

/// `GET /reprocess-batches/{id}/progress`: the refreshing part (htmx).
pub async fn batch_progress(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        let view = batches::batch_view(state.store(), &ws.project.id, &id)
            .await
            .map_err(fail(&ws))?;
        Ok(render(
            StatusCode::OK,
            &BatchFragment {
                batch: BatchProgress::of(&ws, view),
            },
        ))
    })
    .await
}

/// `POST /reprocess-batches/{id}/cancel`.
pub async fn batch_cancel(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_workspace(state.clone(), &headers, signed_in, |ws| async move {
        batches::cancel_batch(state.store(), &ws.project.id, &id, state.now())
            .await
            .map_err(fail(&ws))?;
        Ok(see_other(&format!("/reprocess-batches/{id}")))
    })
    .await
}
