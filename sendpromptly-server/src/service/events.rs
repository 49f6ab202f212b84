//! Events: one event by its key, and the search (support look-ups), shared
//! by the API and the console.

use sendpromptly_core::machine::EventRecord;
use sendpromptly_core::model::{EventKey, Provider};
use sendpromptly_core::wire;

use super::{ServiceError, ServiceResult};
use crate::app::AppState;
use crate::store::{EventFilter, Page, PageRequest, StoredEvent};

/// One event of the project by provider (as given in a path) and event id,
/// or [`ServiceError::NotFound`].
pub async fn event(
    state: &AppState,
    project_id: &str,
    provider: &str,
    event_id: &str,
) -> ServiceResult<StoredEvent> {
    let provider: Provider = provider
        .parse()
        .map_err(|_| ServiceError::NotFound("event"))?;
    let key = EventKey {
        provider,
        event_id: event_id.to_owned(),
    };
    state
        .store()
        .event(project_id, &key)
        .await?
        .ok_or(ServiceError::NotFound("event"))
}

/// One page of the project's events matching `filter` (and, from the
/// console, the free-text `search`), newest first.
pub async fn search(
    state: &AppState,
    project_id: &str,
    filter: &wire::EventFilter,
    search: Option<String>,
) -> ServiceResult<Page<EventRecord>> {
    let store_filter = EventFilter {
        subject: filter.subject.clone(),
        state: filter.state,
        event_id: filter.event_id.clone(),
        livemode: filter.livemode,
        search,
    };
    let page = PageRequest {
        limit: filter.page_limit(),
        cursor: filter.cursor.clone(),
    };
    Ok(state
        .store()
        .search_events(project_id, &store_filter, &page)
        .await?)
}
