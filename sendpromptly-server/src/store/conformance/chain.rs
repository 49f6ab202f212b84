//! The tamper-evident timeline as stored, and the export's paged read.

use sendpromptly_core::chain;

use super::*;
use crate::store::{ChainScope, EventChain};

fn verdict(chain: &EventChain, unchained_through: i64) -> chain::EventVerdict {
    crate::service::chain::verify_chain(chain, unchained_through, None)
}

/// Every write path (single applies, group commit under concurrency, an
/// appended entry) chains each entry to the one before; the chains read back
/// page by page verify, and their heads are the events' recorded heads.
pub async fn timeline_chains_verify(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let incident = failed_event(
        store,
        &project,
        &stripe("evt_c1"),
        "invoice.paid",
        None,
        at(0),
    )
    .await;
    let entry = TimelineEntry::new(
        at(5),
        TimelineKind::ProofLinkCreated,
        Actor::Console("alice@example.com".to_owned()),
        serde_json::json!({"proof_link_id": "prf_x", "note": "ünïcode \"quoted\"\n"}),
    );
    store
        .append_incident_entry(&project.id, &incident, entry)
        .await
        .unwrap();
    // Concurrent receipts (group commit), some of them duplicates.
    let project_id = project.id.as_str();
    let tasks: Vec<BoxedTask<'_, StoreResult<Applied>>> = (0..12)
        .map(|n| {
            let k = stripe(&format!("evt_g{}", n % 4));
            Box::pin(async move {
                let command = receipt(&k, Some("cus_g"));
                store.apply(project_id, &k, command, ctx(at(n))).await
            }) as BoxedTask<'_, _>
        })
        .collect();
    for outcome in run_in_parallel(tasks) {
        outcome.unwrap();
    }
    failed_event(
        store,
        &other,
        &stripe("evt_c1"),
        "invoice.paid",
        None,
        at(0),
    )
    .await;

    let mut seen = 0;
    let mut after = 0;
    loop {
        let page = store
            .timeline_chains(ChainScope::All, after, 2)
            .await
            .unwrap();
        for event in &page.events {
            assert!(event.pk > after);
            let v = verdict(event, page.unchained_through);
            assert!(v.intact(), "{event:?}: {v:?}");
            assert_eq!(v.verified, event.entries.len() as u64);
            assert!(v.verified > 0);
            seen += 1;
        }
        match page.events.last() {
            Some(last) if page.events.len() == 2 => after = last.pk,
            _ => break,
        }
    }
    assert_eq!(
        seen, 6,
        "two events with incidents and four receipts' events"
    );
    // One project; one incident.
    let page = store
        .timeline_chains(ChainScope::Project(&other.id), 0, 100)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    let scope = ChainScope::Incident {
        project_id: &project.id,
        incident_id: &incident,
    };
    let page = store.timeline_chains(scope, 0, 1).await.unwrap();
    let one = &page.events[0];
    assert_eq!(one.incident_id.as_deref(), Some(incident.as_str()));
    assert_eq!(one.entries.last().unwrap().kind, "proof_link.created");
    let stored = store
        .incident(&project.id, &incident)
        .await
        .unwrap()
        .unwrap();
    let hashes: Vec<_> = stored.timeline.iter().map(|e| e.hash.clone()).collect();
    let read: Vec<_> = one.entries.iter().map(|e| e.hash.clone()).collect();
    assert_eq!(hashes, read);
    assert_eq!(one.chain_head, read.last().cloned().flatten());
}

/// The export's pages: the incident list's filter and order, each with its
/// full timeline, across pages, nothing twice.
pub async fn export_pages(store: &dyn Store) {
    let project = new_project(store).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let subject = if n % 2 == 0 { "cus_even" } else { "cus_odd" };
        ids.push(
            failed_event(
                store,
                &project,
                &stripe(&format!("evt_x{n}")),
                "invoice.paid",
                Some(subject),
                at(n),
            )
            .await,
        );
    }
    let filter = IncidentFilter {
        subject: Some("cus_even".into()),
        ..IncidentFilter::default()
    };
    let mut exported = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .export_incidents(&project.id, &filter, cursor.as_deref(), 2)
            .await
            .unwrap();
        exported.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let got: Vec<String> = exported
        .iter()
        .map(|e| e.record.incident.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(got, vec![ids[4].clone(), ids[2].clone(), ids[0].clone()]);
    for e in &exported {
        let id = &e.record.incident.as_ref().unwrap().id;
        let stored = store.incident(&project.id, id).await.unwrap().unwrap();
        assert_eq!(e.timeline, stored.timeline);
        assert!(!e.timeline.is_empty());
    }
    let bad = store
        .export_incidents(&project.id, &filter, Some("nonsense"), 2)
        .await;
    assert!(
        matches!(bad, Err(StoreError::NotFound("cursor"))),
        "{bad:?}"
    );
}
