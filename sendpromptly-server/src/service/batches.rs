//! Reprocess batches (outage recovery): plan (dry run), start, progress,
//! cancel, shared by the API, the console and the CLI. The sending itself
//! is the pacer's ([`crate::pacer`]), through the same state-machine
//! command as a single reprocess.

use std::collections::{BTreeMap, BTreeSet};

use sendpromptly_core::machine::EventRecord;
use sendpromptly_core::model::{Actor, IncidentState};
use sendpromptly_core::wire::{
    ReprocessBatchItem, ReprocessBatchPlan, ReprocessBatchRequest, ReprocessBatchView,
};
use sendpromptly_core::{Timestamp, ids};

use super::{ServiceError, ServiceResult};
use crate::store::{NewBatchItem, PageRequest, ReprocessBatch, Store};

/// Most incidents one batch may hold.
pub const MAX_BATCH_INCIDENTS: usize = 10_000;
/// Default callbacks started per second.
pub const DEFAULT_RATE_PER_SECOND: f64 = 10.0;
/// Default callbacks of one batch in flight at most.
pub const DEFAULT_CONCURRENCY: u32 = 5;
/// Items shown in a plan or a batch view.
const SHOWN_ITEMS: u32 = 100;
/// Items shown in a plan.
const PLAN_ITEMS: usize = 50;

/// A validated request: the selected incidents with their plan.
pub struct Planned {
    /// The items in batch order (skipped ones carry their reason).
    pub items: Vec<NewBatchItem>,
    /// Callbacks per second.
    pub rate_per_second: f64,
    /// Concurrency.
    pub concurrency: u32,
}

impl Planned {
    /// The dry-run answer.
    pub fn plan(&self) -> ReprocessBatchPlan {
        let mut by_event_type = BTreeMap::new();
        let mut skipped_by_reason = BTreeMap::new();
        for item in &self.items {
            match &item.skipped {
                Some(reason) => *skipped_by_reason.entry(reason.clone()).or_insert(0) += 1,
                None => {
                    *by_event_type
                        .entry(item.event_type.clone().unwrap_or_default())
                        .or_insert(0) += 1;
                }
            }
        }
        let skipped: u64 = skipped_by_reason.values().sum();
        let total = self.items.len() as u64;
        ReprocessBatchPlan {
            dry_run: true,
            total,
            to_send: total - skipped,
            skipped,
            by_event_type,
            skipped_by_reason,
            incidents: self
                .items
                .iter()
                .take(PLAN_ITEMS)
                .map(|item| ReprocessBatchItem {
                    incident_id: item.incident_id.clone(),
                    event_type: item.event_type.clone(),
                    subject: item.subject.clone(),
                    state: if item.skipped.is_some() {
                        "skipped"
                    } else {
                        "pending"
                    }
                    .to_owned(),
                    reason: item.skipped.clone(),
                    reprocess_id: None,
                })
                .collect(),
        }
    }
}

fn has_filter(request: &ReprocessBatchRequest) -> bool {
    request.filter() != sendpromptly_core::wire::IncidentFilter::default()
}

/// Why an incident would be skipped now, if it would.
fn skip_reason(record: &EventRecord, has_repair_url: bool) -> Option<&'static str> {
    let incident = record.incident.as_ref()?;
    if incident.state == IncidentState::Resolved {
        Some("incident_resolved")
    } else if incident
        .reprocess
        .as_ref()
        .is_some_and(|r| r.status.in_flight())
    {
        Some("callback_in_flight")
    } else if !has_repair_url {
        Some("no_repair_url")
    } else {
        None
    }
}

fn item_of(record: &EventRecord, has_repair_url: bool) -> Option<NewBatchItem> {
    Some(NewBatchItem {
        incident_id: record.incident.as_ref()?.id.clone(),
        event_type: record.event_type.clone(),
        subject: record.subject.clone(),
        skipped: skip_reason(record, has_repair_url).map(str::to_owned),
    })
}

/// Validates a request and selects its incidents (nothing is written).
pub async fn plan_batch(
    store: &dyn Store,
    project_id: &str,
    request: &ReprocessBatchRequest,
) -> ServiceResult<Planned> {
    let rate_per_second = request.rate_per_second.unwrap_or(DEFAULT_RATE_PER_SECOND);
    if !(0.01..=1000.0).contains(&rate_per_second) {
        return Err(ServiceError::invalid(
            "rate_per_second",
            "must be between 0.01 and 1000 callbacks per second",
        ));
    }
    let concurrency = request.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=100).contains(&concurrency) {
        return Err(ServiceError::invalid(
            "concurrency",
            "must be between 1 and 100",
        ));
    }
    sendpromptly_core::validation::validate_note(request.note.as_deref())?;
    let project = store
        .project(project_id)
        .await?
        .ok_or(ServiceError::NotFound("project"))?;
    let has_repair_url = project.repair_url.is_some();
    let mut items = Vec::new();
    if let Some(incident_ids) = &request.incident_ids {
        if has_filter(request) {
            return Err(ServiceError::invalid(
                "incident_ids",
                "give either incident_ids or filter fields, not both",
            ));
        }
        if incident_ids.is_empty() {
            return Err(ServiceError::invalid("incident_ids", "must not be empty"));
        }
        if incident_ids.len() > MAX_BATCH_INCIDENTS {
            return Err(ServiceError::invalid(
                "incident_ids",
                format!("at most {MAX_BATCH_INCIDENTS} incidents per batch"),
            ));
        }
        let mut seen = BTreeSet::new();
        for id in incident_ids {
            if !seen.insert(id.as_str()) {
                continue;
            }
            let found = if ids::has_shape(id, ids::INCIDENT) {
                store.incident(project_id, id).await?
            } else {
                None
            };
            items.push(
                match found.and_then(|s| item_of(&s.record, has_repair_url)) {
                    Some(item) => item,
                    None => NewBatchItem {
                        incident_id: id.clone(),
                        event_type: None,
                        subject: None,
                        skipped: Some("incident_not_found".to_owned()),
                    },
                },
            );
        }
    } else {
        if let (Some(after), Some(before)) = (request.opened_after, request.opened_before)
            && after >= before
        {
            return Err(ServiceError::invalid(
                "opened_before",
                "must be later than opened_after",
            ));
        }
        let filter = super::incidents::store_filter(&request.filter(), None);
        let mut cursor = None;
        loop {
            let page = store
                .list_incidents(project_id, &filter, &PageRequest { limit: 100, cursor })
                .await?;
            items.extend(page.data.iter().filter_map(|r| item_of(r, has_repair_url)));
            if items.len() > MAX_BATCH_INCIDENTS {
                return Err(ServiceError::invalid(
                    "filter",
                    format!(
                        "matches more than {MAX_BATCH_INCIDENTS} incidents; narrow it (e.g. opened_after/opened_before)"
                    ),
                ));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if items.is_empty() && !request.dry_run {
            return Err(ServiceError::invalid("filter", "matches no incidents"));
        }
    }
    Ok(Planned {
        items,
        rate_per_second,
        concurrency,
    })
}

/// Starts a batch from a plan, as `actor`; the pacer sends it.
pub async fn start_batch(
    store: &dyn Store,
    project_id: &str,
    request: &ReprocessBatchRequest,
    planned: &Planned,
    actor: &Actor,
    who: &super::audit::Who,
    now: Timestamp,
) -> ServiceResult<ReprocessBatchView> {
    let mut selection = serde_json::to_value(request).unwrap_or_default();
    if let Some(object) = selection.as_object_mut() {
        object.remove("dry_run");
        object.remove("note");
    }
    let batch = ReprocessBatch {
        id: ids::new_id(ids::REPROCESS_BATCH, now, &mut rand::thread_rng()),
        project_id: project_id.to_owned(),
        state: "running".to_owned(),
        rate_per_second: planned.rate_per_second,
        concurrency: planned.concurrency,
        started_by: actor.to_string(),
        note: request.note.clone(),
        selection,
        created_at: now,
        finished_at: None,
        counts: Default::default(),
    };
    let change = super::audit::Change {
        project_id: project_id.to_owned(),
        action: "reprocess_batch.start",
        target: batch.id.clone(),
        before: None,
        after: Some(serde_json::json!({
            "selection": batch.selection,
            "incidents": planned.items.len(),
            "rate_per_second": batch.rate_per_second,
            "concurrency": batch.concurrency,
            "note": batch.note,
        })),
    };
    let write = store.create_reprocess_batch(&batch, &planned.items);
    super::audit::record(store, who, change, now, write).await?;
    tracing::info!(batch_id = %batch.id, incidents = planned.items.len(), started_by = %batch.started_by, "reprocess batch started");
    batch_view(store, project_id, &batch.id).await
}

/// A batch with its progress and first items, or 404.
pub async fn batch_view(
    store: &dyn Store,
    project_id: &str,
    batch_id: &str,
) -> ServiceResult<ReprocessBatchView> {
    if !ids::has_shape(batch_id, ids::REPROCESS_BATCH) {
        return Err(ServiceError::NotFound("reprocess batch"));
    }
    let batch = store
        .reprocess_batch(project_id, batch_id)
        .await?
        .ok_or(ServiceError::NotFound("reprocess batch"))?;
    let items = store
        .reprocess_batch_items(project_id, batch_id, SHOWN_ITEMS)
        .await?;
    Ok(view_of(batch, items))
}

fn view_of(batch: ReprocessBatch, items: Vec<ReprocessBatchItem>) -> ReprocessBatchView {
    ReprocessBatchView {
        id: batch.id,
        state: batch.state,
        rate_per_second: batch.rate_per_second,
        concurrency: batch.concurrency,
        started_by: batch.started_by,
        note: batch.note,
        created_at: batch.created_at,
        finished_at: batch.finished_at,
        counts: batch.counts,
        items,
    }
}

/// Cancels a batch: what was not sent yet never is.
pub async fn cancel_batch(
    store: &dyn Store,
    who: &super::audit::Who,
    project_id: &str,
    batch_id: &str,
    now: Timestamp,
) -> ServiceResult<ReprocessBatchView> {
    if !ids::has_shape(batch_id, ids::REPROCESS_BATCH) {
        return Err(ServiceError::NotFound("reprocess batch"));
    }
    let change = super::audit::Change {
        project_id: project_id.to_owned(),
        action: "reprocess_batch.cancel",
        target: batch_id.to_owned(),
        before: None,
        after: None,
    };
    // Audited in the cancel's transaction when it cancels something (a
    // finished batch changes nothing, and records nothing).
    let (cancelled, _unused) = crate::store::with_audit(
        super::audit::entry(who, change, now),
        store.cancel_reprocess_batch(project_id, batch_id, now),
    )
    .await;
    cancelled?.ok_or(ServiceError::NotFound("reprocess batch"))?;
    batch_view(store, project_id, batch_id).await
}
