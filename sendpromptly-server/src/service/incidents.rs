//! Incidents: look-up, list, reprocess and manual resolve, shared by the
//! API, the console and (for batches) the CLI.

use sendpromptly_core::ids;
use sendpromptly_core::machine::{Command, EventRecord};
use sendpromptly_core::model::Actor;
use sendpromptly_core::validation::{validate_note, validate_resolve_note};
use sendpromptly_core::wire;

use super::{ServiceError, ServiceResult};
use crate::app::AppState;
use crate::store::{IncidentFilter, Page, PageRequest, StoredEvent};
use crate::views::{IncidentView, ReprocessResponse, ResolveResponse};

/// Loads an incident of the project, or [`ServiceError::NotFound`].
pub async fn load_incident(
    state: &AppState,
    project_id: &str,
    incident_id: &str,
) -> ServiceResult<StoredEvent> {
    if !ids::has_shape(incident_id, ids::INCIDENT) {
        return Err(ServiceError::NotFound("incident"));
    }
    state
        .store()
        .incident(project_id, incident_id)
        .await?
        .ok_or(ServiceError::NotFound("incident"))
}

/// The store's filter for the contract's [`wire::IncidentFilter`] and the
/// console's free-text `search` (no page).
pub fn store_filter(filter: &wire::IncidentFilter, search: Option<String>) -> IncidentFilter {
    IncidentFilter {
        state: filter.state,
        kind: filter.kind,
        provider: filter.provider,
        event_type: filter.event_type.clone(),
        subject: filter.subject.clone(),
        opened_after: filter.opened_after,
        opened_before: filter.opened_before,
        livemode: filter.livemode,
        search,
    }
}

/// One page of the project's incidents matching `filter` (and, from the
/// console, `search`), most recently opened first.
pub async fn list(
    state: &AppState,
    project_id: &str,
    filter: &wire::IncidentFilter,
    search: Option<String>,
) -> ServiceResult<Page<EventRecord>> {
    let page = PageRequest {
        limit: filter.page_limit(),
        cursor: filter.cursor.clone(),
    };
    Ok(state
        .store()
        .list_incidents(project_id, &store_filter(filter, search), &page)
        .await?)
}

/// Requests a repair callback for an incident, as `actor`.
pub async fn request_reprocess(
    state: &AppState,
    project_id: &str,
    incident_id: &str,
    actor: Actor,
    note: Option<String>,
) -> ServiceResult<ReprocessResponse> {
    validate_note(note.as_deref())?;
    let stored = load_incident(state, project_id, incident_id).await?;
    let project = state
        .store()
        .project(project_id)
        .await?
        .ok_or(ServiceError::NotFound("project"))?;
    if project.repair_url.is_none() {
        return Err(ServiceError::RepairUrlMissing);
    }
    let result_deadline_seconds = project.deadline_for(
        stored.record.event_type.as_deref().unwrap_or_default(),
        None,
    );
    let ctx = state.context(actor);
    let reprocess_id = ids::new_id(ids::REPROCESS, ctx.now, &mut rand::thread_rng());
    let applied = state
        .store()
        .apply_to_incident(
            project_id,
            incident_id,
            Command::RequestReprocess {
                reprocess_id: reprocess_id.clone(),
                note,
                result_deadline_seconds,
            },
            ctx,
        )
        .await?;
    state.after_transition(&applied.transition.effects);
    let incident =
        IncidentView::of(&applied.transition.record).ok_or(ServiceError::NotFound("incident"))?;
    Ok(ReprocessResponse {
        reprocess_id,
        incident,
    })
}

/// Resolves an incident by hand, as `actor`; `note` says why (required).
pub async fn manual_resolve(
    state: &AppState,
    project_id: &str,
    incident_id: &str,
    actor: Actor,
    note: String,
) -> ServiceResult<ResolveResponse> {
    validate_resolve_note(&note)?;
    if !ids::has_shape(incident_id, ids::INCIDENT) {
        return Err(ServiceError::NotFound("incident"));
    }
    let ctx = state.context(actor);
    let applied = state
        .store()
        .apply_to_incident(
            project_id,
            incident_id,
            Command::ManualResolve { note },
            ctx,
        )
        .await?;
    state.after_transition(&applied.transition.effects);
    let incident =
        IncidentView::of(&applied.transition.record).ok_or(ServiceError::NotFound("incident"))?;
    Ok(ResolveResponse { incident })
}
