//! The tamper-evident timeline, checked: one incident's chain (the proof
//! page), or a whole database page by page in constant memory
//! (`sendpromptly verify-timelines`). The rules are the core's
//! ([`sendpromptly_core::chain`]); this module only reads and reports.

use sendpromptly_core::chain::{self, EventVerdict, StoredLink};

use super::ServiceResult;
use crate::store::{ChainScope, EventChain, Store};

/// Events read per page by [`verify_all`].
const PAGE_EVENTS: u32 = 500;

/// Checks one stored event chain; `published` is a head handed out earlier.
pub fn verify_chain(
    chain: &EventChain,
    unchained_through: i64,
    published: Option<&str>,
) -> EventVerdict {
    let links: Vec<StoredLink<'_>> = chain
        .entries
        .iter()
        .map(|row| StoredLink {
            seq: row.seq,
            at_millis: row.at_millis,
            kind: &row.kind,
            actor: &row.actor,
            detail: &row.detail,
            hash: row.hash.as_deref(),
        })
        .collect();
    chain::verify_event(
        &chain.project_id,
        &chain.provider,
        &chain.event_id,
        chain.chain_head.as_deref(),
        unchained_through,
        &links,
        published,
    )
}

/// The verdict on an incident's timeline (`None`: no such incident).
pub async fn verify_incident(
    store: &dyn Store,
    project_id: &str,
    incident_id: &str,
    published: Option<&str>,
) -> ServiceResult<Option<EventVerdict>> {
    let scope = ChainScope::Incident {
        project_id,
        incident_id,
    };
    let page = store.timeline_chains(scope, 0, 1).await?;
    Ok(page
        .events
        .first()
        .map(|chain| verify_chain(chain, page.unchained_through, published)))
}

/// The current chain head of an incident's timeline (`None`: no incident,
/// or no chained entry yet).
pub async fn incident_head(
    store: &dyn Store,
    project_id: &str,
    incident_id: &str,
) -> ServiceResult<Option<String>> {
    let scope = ChainScope::Incident {
        project_id,
        incident_id,
    };
    let page = store.timeline_chains(scope, 0, 1).await?;
    Ok(page.events.first().and_then(|c| c.chain_head.clone()))
}

/// What [`verify_all`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifySummary {
    /// Events checked.
    pub events: u64,
    /// Timeline entries read.
    pub entries: u64,
    /// Entries whose hash checks.
    pub verified: u64,
    /// Entries recorded before chaining began (not covered).
    pub unchained: u64,
    /// Events whose chain is broken.
    pub broken_events: u64,
    /// Breaks found.
    pub breaks: u64,
}

/// Checks every event of `project` (or of all projects), page by page
/// (constant memory), calling `on_broken` for each broken event.
pub async fn verify_all(
    store: &dyn Store,
    project: Option<&str>,
    mut on_broken: impl FnMut(&EventChain, &EventVerdict),
) -> ServiceResult<VerifySummary> {
    let scope = match project {
        Some(project_id) => ChainScope::Project(project_id),
        None => ChainScope::All,
    };
    let mut summary = VerifySummary::default();
    let mut after = 0;
    loop {
        let page = store.timeline_chains(scope, after, PAGE_EVENTS).await?;
        for event in &page.events {
            let verdict = verify_chain(event, page.unchained_through, None);
            summary.events += 1;
            summary.entries += verdict.entries;
            summary.verified += verdict.verified;
            summary.unchained += verdict.unchained;
            if !verdict.intact() {
                summary.broken_events += 1;
                summary.breaks += verdict.breaks.len() as u64;
                on_broken(event, &verdict);
            }
        }
        match page.events.last() {
            Some(last) if page.events.len() == PAGE_EVENTS as usize => after = last.pk,
            _ => return Ok(summary),
        }
    }
}
