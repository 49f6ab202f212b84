//! Event lookup: `GET /events?q=` and one event.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{EventFacts, fail, non_empty, respond};
use crate::app::AppState;
use crate::console::Workspace;
use crate::console::{Layout, render};
use crate::render::{TimelineRow, link_traces, timeline_rows};
use crate::service::events;
use sendpromptly_core::wire::EventFilter;

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
    ws: Workspace,
    Query(query): Query<EventQuery>,
) -> Response {
    respond(async move {
        let q = non_empty(query.q.clone());
        let filter = EventFilter {
            limit: Some(25),
            cursor: non_empty(query.cursor.clone()),
            ..EventFilter::default()
        };
        let page = events::search(&state, &ws.project.id, &filter, q.clone())
            .await
            .map_err(fail(&ws))?;
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
    ws: Workspace,
    Path((provider, event_id)): Path<(String, String)>,
) -> Response {
    respond(async move {
        let stored = events::event(&state, &ws.project.id, &provider, &event_id)
            .await
            .map_err(fail(&ws))?;
        Ok(render(
            StatusCode::OK,
            &EventPage {
                layout: ws.layout(format!("Event {event_id}"), "events"),
                event: EventFacts::of(&stored.record),
                rows: link_traces(
                    timeline_rows(&stored.timeline, true),
                    ws.project.trace_url_template.as_deref(),
                ),
            },
        ))
    })
    .await
}
