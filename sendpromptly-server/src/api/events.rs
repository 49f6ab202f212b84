//! `GET /v1/events/{provider}/{event_id}` and `GET /v1/events`: support
//! look-ups, the HTTP adapters of [`crate::service::events`].

use axum::Json;
use axum::extract::State;
use sendpromptly_core::model::{EventState, Provider};
use sendpromptly_core::wire::EventFilter;

use super::extract::{Caller, PathSegments, QueryParams};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::service::events;
use crate::views::{EventDetail, EventList, EventView};

/// One event with its timeline and incident.
#[utoipa::path(
    get, path = "/v1/events/{provider}/{event_id}", tag = "events",
    params(
        ("provider" = Provider, Path, description = "stripe, shopify or custom"),
        ("event_id" = String, Path, description = "The provider's event id"),
    ),
    responses((status = 200, body = EventDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    path: PathSegments,
) -> Result<Json<EventDetail>, ApiError> {
    let stored = events::event(&state, &caller.project_id, path.first(), path.second()).await?;
    Ok(Json(EventDetail::from(&stored)))
}

/// Searches events, newest first (e.g. every event of one customer).
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(
        ("subject" = Option<String>, Query, description = "Only this customer/account"),
        ("state" = Option<EventState>, Query, description = "Only this state"),
        ("event_id" = Option<String>, Query, description = "Only this event id (any provider)"),
        ("limit" = Option<u32>, Query, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = EventList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<EventList>, ApiError> {
    let filter = EventFilter::from_query(|name| query.text(name))?;
    let found = events::search(&state, &caller.project_id, &filter, None).await?;
    Ok(Json(EventList {
        data: found.data.iter().map(EventView::from).collect(),
        next_cursor: found.next_cursor,
    }))
}
