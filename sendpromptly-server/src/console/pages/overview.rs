//! `GET /`: the overview (incidents needing attention, counts, the 30-day chart).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use sendpromptly_core::model::IncidentState;

use super::{IncidentItem, fail, respond};
use crate::app::AppState;
use crate::console::Workspace;
use crate::console::chart::{self, TypeRow};
use crate::console::{Layout, render};
use crate::service::incidents;
use sendpromptly_core::wire::IncidentFilter;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    layout: Layout,
    open: u64,
    reprocessing: u64,
    resolved: u64,
    /// Open `missing_receipt` incidents (live mode), `100+` past a page.
    missing_receipts: String,
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
pub async fn overview(State(state): State<AppState>, ws: Workspace) -> Response {
    respond(async move {
        let store = state.store();
        let project_id = ws.project.id.clone();
        let counts = store
            .incident_counts(&project_id)
            .await
            .map_err(fail(&ws))?;
        let mut attention = Vec::new();
        let mut more_attention = false;
        for wanted in [IncidentState::Reprocessing, IncidentState::Open] {
            let filter = IncidentFilter {
                state: Some(wanted),
                limit: Some(10),
                ..IncidentFilter::default()
            };
            let page = incidents::list(&state, &project_id, &filter, None)
                .await
                .map_err(fail(&ws))?;
            more_attention |= page.next_cursor.is_some();
            attention.extend(page.data.iter().filter_map(IncidentItem::of));
        }
        let missing = IncidentFilter {
            state: Some(IncidentState::Open),
            kind: Some(sendpromptly_core::model::IncidentKind::MissingReceipt),
            livemode: Some(true),
            limit: Some(100),
            ..IncidentFilter::default()
        };
        let missing = incidents::list(&state, &project_id, &missing, None)
            .await
            .map_err(fail(&ws))?;
        let missing_receipts = if missing.next_cursor.is_some() {
            "100+".to_owned()
        } else {
            missing.data.len().to_string()
        };
        let now = state.now();
        let since = now.plus_seconds(-86_400 * (chart::DAYS as i64 - 1));
        let activity = store
            .daily_activity(&project_id, since)
            .await
            .map_err(fail(&ws))?;
        let mut chart = chart::overview(&activity, now.to_datetime().date_naive());
        let last_30_days = sendpromptly_core::wire::StatsQuery {
            window: Some("30d".to_owned()),
            ..Default::default()
        };
        let stats = crate::service::stats::report(&state, &project_id, &last_30_days)
            .await
            .map_err(fail(&ws))?;
        for row in &mut chart.types {
            if let Some(p95) = stats
                .by_event_type
                .iter()
                .find(|t| t.event_type == row.event_type)
                .and_then(|t| t.figures.time_to_effect.p95_ms)
            {
                row.p95_time_to_effect = crate::console::analytics_chart::duration_label(p95);
            }
        }
        Ok(render(
            StatusCode::OK,
            &OverviewPage {
                layout: ws.layout("Overview", "overview"),
                open: counts.open,
                reprocessing: counts.reprocessing,
                resolved: counts.resolved,
                missing_receipts,
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
