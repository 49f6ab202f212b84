//! The audit log page: `GET /audit-log` (filters by action and actor,
//! pages of 50), the console's view of [`crate::service::audit`].

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use sendpromptly_core::wire::AuditLogFilter;
use serde::Deserialize;

use super::{fail, non_empty, respond};
use crate::app::AppState;
use crate::console::Workspace;
use crate::console::{Layout, render};
use crate::render::display_time;
use crate::service::audit;

/// The filter form.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    cursor: Option<String>,
}

/// One entry as shown.
struct AuditRow {
    id: String,
    at: String,
    actor: String,
    ip: String,
    action: String,
    target: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    action: String,
    actor: String,
    rows: Vec<AuditRow>,
    next_link: Option<String>,
}

/// `GET /audit-log`: the project's audit log, newest first.
pub async fn audit_log(
    State(state): State<AppState>,
    ws: Workspace,
    Query(query): Query<AuditQuery>,
) -> Response {
    respond(async move {
        let filter = AuditLogFilter {
            action: non_empty(query.action.clone()),
            actor: non_empty(query.actor.clone()),
            limit: Some(50),
            cursor: non_empty(query.cursor.clone()),
            ..AuditLogFilter::default()
        };
        let page = audit::page(state.store(), &ws.project.id, &filter)
            .await
            .map_err(fail(&ws))?;
        let next_link = page.next_cursor.as_deref().map(|cursor| {
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in [("action", &filter.action), ("actor", &filter.actor)] {
                if let Some(value) = value {
                    serializer.append_pair(name, value);
                }
            }
            serializer.append_pair("cursor", cursor);
            format!("/audit-log?{}", serializer.finish())
        });
        let state_text = |v: &Option<serde_json::Value>| {
            v.as_ref().map_or_else(String::new, |v| {
                serde_json::to_string_pretty(v).unwrap_or_default()
            })
        };
        let rows = page
            .data
            .iter()
            .map(|e| AuditRow {
                id: e.id.clone(),
                at: display_time(e.at),
                actor: e.actor.clone(),
                ip: e.ip.clone().unwrap_or_default(),
                action: e.action.clone(),
                target: e.target.clone(),
                before: state_text(&e.before),
                after: state_text(&e.after),
            })
            .collect();
        Ok(render(
            StatusCode::OK,
            &AuditPage {
                layout: ws.layout("Audit log", "audit"),
                action: filter.action.unwrap_or_default(),
                actor: filter.actor.unwrap_or_default(),
                rows,
                next_link,
            },
        ))
    })
    .await
}
