//! `GET /v1/audit-log`: the project's audit log (scope `admin`), the HTTP
//! adapter of [`crate::service::audit`].

use axum::Json;
use axum::extract::State;
use sendpromptly_core::wire::{AuditLogFilter, AuditLogPage};

use super::extract::{Caller, QueryParams};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

/// The project's audit log, newest first: settings changes, key
/// create/revoke, signing-secret rotation, provider tap changes, proof links
/// and bulk actions, with actor, IP and the state before and after (secrets
/// as hints).
#[utoipa::path(
    get, path = "/v1/audit-log", tag = "project",
    params(
        ("action" = Option<String>, Query, description = "only this action, e.g. project.update"),
        ("actor" = Option<String>, Query, description = "only this actor, e.g. cli, user:ops@example.com, api_key:key_…"),
        ("since" = Option<String>, Query, description = "RFC 3339 time: entries at or after it"),
        ("until" = Option<String>, Query, description = "RFC 3339 time: entries before it"),
        ("limit" = Option<u32>, Query, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = AuditLogPage), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<AuditLogPage>, ApiError> {
    let filter = AuditLogFilter::from_query(|name| query.text(name))?;
    let page = crate::service::audit::page(state.store(), &caller.project_id, &filter).await?;
    Ok(Json(page))
}
