//! Reprocess batches: the dry-run summary with its confirm form, start,
//! progress (live while running) and cancel.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{fail, form_time, parse_choice, respond, see_other, time};
use crate::app::AppState;
use crate::console::PageError;
use crate::console::{Layout, Workspace, render};
use crate::render::display_time;
use crate::service::batches;
use crate::views::{
    ReprocessBatchCounts, ReprocessBatchItem, ReprocessBatchPlan, ReprocessBatchRequest,
    ReprocessBatchView,
};

/// The batch request in a console form or query: `incident_id` (repeated)
/// or the incident list's filters, plus pacing and a note.
pub(super) fn batch_request(
    pairs: &[(String, String)],
) -> Result<ReprocessBatchRequest, PageError> {
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
    ws: Workspace,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    respond(async move {
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
    ws: Workspace,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    respond(async move {
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
            &ws.who(),
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
    ws: Workspace,
    Path(id): Path<String>,
) -> Response {
    show_batch(state, ws, id, false).await
}

/// `GET /reprocess-batches/{id}/progress`: the refreshing part (htmx).
pub async fn batch_progress(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
) -> Response {
    show_batch(state, ws, id, true).await
}

/// A batch's page, or only its refreshing part (`fragment`).
async fn show_batch(state: AppState, ws: Workspace, id: String, fragment: bool) -> Response {
    respond(async move {
        let view = batches::batch_view(state.store(), &ws.project.id, &id)
            .await
            .map_err(fail(&ws))?;
        let batch = BatchProgress::of(&ws, view);
        Ok(if fragment {
            render(StatusCode::OK, &BatchFragment { batch })
        } else {
            let layout = ws.layout("Reprocess batch", "incidents");
            render(StatusCode::OK, &BatchPage { layout, batch })
        })
    })
    .await
}

/// `POST /reprocess-batches/{id}/cancel`.
pub async fn batch_cancel(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
) -> Response {
    respond(async move {
        batches::cancel_batch(state.store(), &ws.who(), &ws.project.id, &id, state.now())
            .await
            .map_err(fail(&ws))?;
        Ok(see_other(&format!("/reprocess-batches/{id}")))
    })
    .await
}
