//! `GET /incidents`: the incident list (filters, search, pages).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use sendpromptly_core::model::{IncidentKind, IncidentState, Provider};
use serde::Deserialize;

use super::{IncidentItem, fail, form_time, form_time_value, non_empty, parse_choice, respond};
use crate::app::AppState;
use crate::console::PageError;
use crate::console::Workspace;
use crate::console::{Layout, render};
use crate::service::{export, incidents};
use sendpromptly_core::wire::IncidentFilter;

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
    livemode: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    /// The export's format (`/incidents/export` only).
    format: Option<String>,
}

impl IncidentQuery {
    /// The contract's filter (and the console's page size) of the form; an
    /// unknown choice or time names its field.
    fn filter(&self) -> Result<IncidentFilter, PageError> {
        Ok(IncidentFilter {
            state: parse_choice::<IncidentState>("state", &self.state)?,
            kind: parse_choice::<IncidentKind>("kind", &self.kind)?,
            provider: parse_choice::<Provider>("provider", &self.provider)?,
            event_type: non_empty(self.event_type.clone()),
            subject: non_empty(self.subject.clone()),
            opened_after: form_time("opened_after", self.opened_after.as_deref())?,
            opened_before: form_time("opened_before", self.opened_before.as_deref())?,
            livemode: match self.livemode.as_deref().unwrap_or("") {
                "" => None,
                "true" => Some(true),
                "false" => Some(false),
                _ => {
                    return Err(PageError::invalid(
                        "livemode",
                        "choose live only, test mode only, or both",
                    ));
                }
            },
            limit: Some(PAGE_SIZE),
            cursor: non_empty(self.cursor.clone()),
        })
    }
}

/// Incidents per page of the list.
const PAGE_SIZE: u32 = 25;

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
    livemode: String,
    q: String,
    items: Vec<IncidentItem>,
    next_link: Option<String>,
    first_link: Option<String>,
    filtered: bool,
    /// Rows get checkboxes for a bulk reprocess.
    selectable: bool,
    /// The filters as a query string, for the Export buttons.
    export_query: String,
}

/// `GET /incidents`: filter, search, paginate.
pub async fn incidents(
    State(state): State<AppState>,
    ws: Workspace,
    Query(query): Query<IncidentQuery>,
) -> Response {
    respond(async move {
        let filter = query.filter().map_err(fail(&ws))?;
        let cursor = filter.cursor.clone();
        let page = incidents::list(&state, &ws.project.id, &filter, non_empty(query.q.clone()))
            .await
            .map_err(fail(&ws))?;
        let text = |v: &Option<String>| non_empty(v.clone()).unwrap_or_default();
        let params: Vec<(&str, String)> = [
            ("state", text(&query.state)),
            ("kind", text(&query.kind)),
            ("provider", text(&query.provider)),
            ("event_type", text(&query.event_type)),
            ("subject", text(&query.subject)),
            ("opened_after", form_time_value(filter.opened_after)),
            ("opened_before", form_time_value(filter.opened_before)),
            ("livemode", text(&query.livemode)),
            ("q", text(&query.q)),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        let export_query = {
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &params {
                serializer.append_pair(name, value);
            }
            serializer.finish()
        };
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
                livemode: text(&query.livemode),
                q: text(&query.q),
                items: page.data.iter().filter_map(IncidentItem::of).collect(),
                next_link: page.next_cursor.as_deref().map(|c| link(Some(c))),
                first_link: cursor.is_some().then(|| link(None)),
                filtered: !params.is_empty(),
                selectable: true,
                export_query,
            },
        ))
    })
    .await
}

/// `GET /incidents/export?format=csv|jsonl&…`: the list's filters (search
/// included) exported with full timelines, streamed as a download.
pub async fn incidents_export(
    State(state): State<AppState>,
    ws: Workspace,
    Query(query): Query<IncidentQuery>,
) -> Response {
    use axum::response::IntoResponse;
    use sendpromptly_core::export::ExportFormat;
    let started = async {
        let filter = query.filter()?;
        let format = query
            .format
            .as_deref()
            .unwrap_or("csv")
            .parse::<ExportFormat>()
            .map_err(|e| PageError::invalid("format", e.to_string()))?;
        let filter = incidents::store_filter(&filter, non_empty(query.q.clone()));
        let mut export = export::Export::new(&ws.project.id, filter, format);
        let first = export.next_chunk(state.store()).await?.unwrap_or_default();
        Ok::<_, PageError>((format, first, export))
    };
    match started.await {
        Ok((format, first, export)) => {
            let body = axum::body::Body::from_stream(export::into_stream(state, first, export));
            (
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        format.content_type().to_owned(),
                    ),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"incidents.{}\"", format.extension()),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(err) => fail(&ws)(err),
    }
}
