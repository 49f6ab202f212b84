//! `GET /analytics`: time to effect, delivery lag, time to repair and the
//! SLOs (issue #25), from [`crate::service::stats::report`].

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use sendpromptly_core::wire::{DurationStats, StatsQuery, StatsReport};

use super::{fail, respond};
use crate::app::AppState;
use crate::console::Workspace;
use crate::console::analytics_chart::{duration_label, slo_svg, time_to_effect_svg};
use crate::console::{Layout, render};
use crate::service::stats;

/// The page's query: `?window=7d` (24h, 7d, 30d) and `?event_type=`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AnalyticsQuery {
    window: Option<String>,
    event_type: Option<String>,
}

/// A row of the figures table.
struct FigureRow {
    label: String,
    received: u64,
    p50: String,
    p95: String,
    p99: String,
    count: u64,
}

struct SloRow {
    event_type: String,
    objective: String,
    attainment: String,
    budget: String,
    burn: String,
    burning: bool,
    svg: String,
}

#[derive(Template)]
#[template(path = "console/analytics.html")]
struct AnalyticsPage {
    layout: Layout,
    window: String,
    windows: Vec<&'static str>,
    chart_svg: String,
    overall: Vec<FigureRow>,
    types: Vec<FigureRow>,
    repairs: Vec<(String, u64)>,
    slos: Vec<SloRow>,
}

fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), duration_label)
}

fn row(label: &str, received: u64, d: &DurationStats) -> FigureRow {
    FigureRow {
        label: label.to_owned(),
        received,
        p50: cell(d.p50_ms),
        p95: cell(d.p95_ms),
        p99: cell(d.p99_ms),
        count: d.count,
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}%"))
}

/// `GET /analytics`.
pub async fn analytics(
    State(state): State<AppState>,
    ws: Workspace,
    Query(query): Query<AnalyticsQuery>,
) -> Response {
    respond(async move {
        let window = match query.window.as_deref() {
            Some(w @ ("24h" | "7d" | "30d")) => w.to_owned(),
            _ => "7d".to_owned(),
        };
        let asked = StatsQuery {
            window: Some(window.clone()),
            event_type: query.event_type.filter(|t| !t.is_empty()),
            ..StatsQuery::default()
        };
        let report: StatsReport = stats::report(&state, &ws.project.id, &asked)
            .await
            .map_err(fail(&ws))?;
        let o = &report.overall;
        let overall = vec![
            row(
                "Time to effect (receipt → success)",
                o.received,
                &o.time_to_effect,
            ),
            row(
                "Delivery lag (provider → receipt)",
                o.received,
                &o.delivery_lag,
            ),
            row(
                "Time to repair (incident → resolved)",
                o.repairs.opened,
                &o.time_to_repair,
            ),
        ];
        let types = report
            .by_event_type
            .iter()
            .map(|t| row(&t.event_type, t.figures.received, &t.figures.time_to_effect))
            .collect();
        let r = &o.repairs;
        let repairs = vec![
            ("Incidents opened".to_owned(), r.opened),
            ("Repaired by Reprocess".to_owned(), r.repaired_by_reprocess),
            ("Resolved by hand".to_owned(), r.resolved_manually),
            ("Resolved otherwise".to_owned(), r.resolved_otherwise),
            ("Still open".to_owned(), r.still_open),
        ];
        let slos = report
            .slos
            .iter()
            .map(|s| SloRow {
                event_type: s.objective.event_type.clone(),
                objective: format!(
                    "{}% within {} s, over {} days",
                    s.objective.objective_percent,
                    s.objective.threshold_seconds,
                    s.objective.window_days
                ),
                attainment: percent(s.attainment_percent),
                budget: percent(s.error_budget_left_percent),
                burn: format!("{:.1}×", s.burn_rate_1h),
                burning: s.burning,
                svg: slo_svg(s),
            })
            .collect();
        Ok(render(
            StatusCode::OK,
            &AnalyticsPage {
                layout: ws.layout("Analytics", "analytics"),
                window,
                windows: vec!["24h", "7d", "30d"],
                chart_svg: time_to_effect_svg(&report.daily),
                overall,
                types,
                repairs,
                slos,
            },
        ))
    })
    .await
}
