//! Repair callbacks, incident commands and proof links.

use super::*;

/// Claim, lease, retry at a later time, deliver: the outbox row's lifecycle.
pub async fn delivery_lifecycle(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_deliver");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    assert!(
        store
            .claim_deliveries(at(0), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let reprocess_id = request_reprocess(store, &project, &incident_id, at(10)).await;
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);
    assert!(
        store
            .claim_deliveries(at(9), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before it was requested"
    );

    let jobs = store.claim_deliveries(at(10), LEASE, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.reprocess_id, reprocess_id);
    assert_eq!(job.project_id, project.id);
    assert_eq!(job.incident_id, incident_id);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.repair_url, project.repair_url);
    assert_eq!(job.lease_until, at(70));
    assert_eq!(job.record.event_id, "evt_deliver");
    assert_eq!(
        job.record.incident.as_ref().unwrap().state,
        IncidentState::Reprocessing
    );
    assert!(
        store
            .claim_deliveries(at(20), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "a leased job is hidden"
    );

    let retry = store
        .finish_delivery_attempt(job, report(Some(503)), NextStep::RetryAt(at(100)), at(12))
        .await
        .unwrap();
    let last = retry.transition.entries.last().unwrap();
    assert_eq!(last.kind, TimelineKind::CallbackAttempt);
    assert_eq!(last.actor, Actor::System("dispatcher".to_owned()));
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);
    assert!(
        store
            .claim_deliveries(at(99), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimable again only at the retry time"
    );

    // The project's current repair URL goes with the job.
    store
        .update_project(
            &project.id,
            ProjectPatch {
                repair_url: Some(Some("https://moved.example/repair".to_owned())),
                ..ProjectPatch::default()
            },
        )
        .await
        .unwrap();
    let jobs = store.claim_deliveries(at(100), LEASE, 10).await.unwrap();
    assert_eq!(job_ids(&jobs), vec![reprocess_id.clone()]);
    let job = &jobs[0];
    assert_eq!(job.attempt, 2);
    assert_eq!(
        job.repair_url.as_deref(),
        Some("https://moved.example/repair")
    );

    let done = store
        .finish_delivery_attempt(job, report(Some(200)), NextStep::Done, at(101))
        .await
        .unwrap();
    let reprocess = done
        .transition
        .record
        .incident
        .as_ref()
        .unwrap()
        .reprocess
        .clone()
        .unwrap();
    assert_eq!(reprocess.status, ReprocessStatus::Delivered);
    assert_eq!(reprocess.attempts, 2);
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        store
            .claim_deliveries(at(100_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "a delivered callback is never claimed again"
    );
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    let attempts = stored
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::CallbackAttempt)
        .count();
    assert_eq!(attempts, 2);
    assert_eq!(stored.record, done.transition.record);
}

/// Giving up ends the row for good; an expired lease makes a job claimable
/// again, and the late finisher of the old claim does not touch the row.
pub async fn delivery_give_up_and_lease_expiry(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_gone");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    request_reprocess(store, &project, &incident_id, at(1)).await;

    let first = store.claim_deliveries(at(1), LEASE, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    // The lease runs out (the dispatcher died): another claim takes it.
    let second = store.claim_deliveries(at(62), LEASE, 10).await.unwrap();
    assert_eq!(job_ids(&second), job_ids(&first));
    assert_eq!(second[0].attempt, 1, "the attempt was never recorded");
    assert!(second[0].lease_until > first[0].lease_until);

    // The stale claim finishes late: its attempt is recorded but the row
    // stays with the current claim.
    store
        .finish_delivery_attempt(&first[0], report(None), NextStep::RetryAt(at(70)), at(63))
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries(at(80), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "the current lease still hides the job"
    );

    let gave_up = store
        .finish_delivery_attempt(
            &second[0],
            report(Some(410)),
            NextStep::GiveUp(GiveUpReason::Gone),
            at(90),
        )
        .await
        .unwrap();
    let incident = gave_up.transition.record.incident.clone().unwrap();
    assert_eq!(incident.state, IncidentState::Open);
    assert!(
        gave_up
            .transition
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CallbackGaveUp { .. }))
    );
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    let attempts: Vec<u64> = stored
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::CallbackAttempt)
        .filter_map(|e| e.detail.get("attempt").and_then(serde_json::Value::as_u64))
        .collect();
    assert_eq!(
        attempts,
        vec![1, 2],
        "both claims' attempts are on the timeline"
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        store
            .claim_deliveries(at(1_000_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "a given-up callback is never claimed again"
    );
    let listed = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                state: Some(IncidentState::Open),
                ..IncidentFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(event_ids(&listed), strings(&["evt_gone"]));

    // A new reprocess is accepted once the previous one gave up.
    request_reprocess(store, &project, &incident_id, at(100)).await;
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);
}

/// A success result cancels a callback still waiting to be delivered.
pub async fn success_cancels_a_pending_callback(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_cancel");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    let reprocess_id = request_reprocess(store, &project, &incident_id, at(1)).await;
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);

    let success = store
        .apply(
            &project.id,
            &k,
            result(&k, ResultStatus::Success),
            ctx(at(2)),
        )
        .await
        .unwrap();
    assert!(
        success
            .transition
            .effects
            .contains(&Effect::CancelCallback {
                reprocess_id: reprocess_id.clone()
            })
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        store
            .claim_deliveries(at(1_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let stored = store
        .incident(&project.id, &incident_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.record.incident.unwrap().state,
        IncidentState::Resolved
    );

    // A callback already claimed when the success arrives: the attempt is
    // recorded, its retry is dropped.
    let k2 = stripe("evt_cancel_claimed");
    let incident2 = failed_event(store, &project, &k2, "invoice.paid", None, at(10)).await;
    request_reprocess(store, &project, &incident2, at(11)).await;
    let jobs = store.claim_deliveries(at(11), LEASE, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    store
        .apply(
            &project.id,
            &k2,
            result(&k2, ResultStatus::Success),
            ctx(at(12)),
        )
        .await
        .unwrap();
    store
        .finish_delivery_attempt(
            &jobs[0],
            report(Some(500)),
            NextStep::RetryAt(at(20)),
            at(13),
        )
        .await
        .unwrap();
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        store
            .claim_deliveries(at(1_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Commands by incident id, refusals, and appended human entries.
pub async fn incident_commands_and_entries(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_cmd");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;

    let unknown = store
        .apply_to_incident(
            &project.id,
            "inc_nope",
            Command::ManualResolve {
                note: "x".to_owned(),
            },
            ctx(at(1)),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let no_event = store
        .apply(&project.id, &stripe("evt_none"), Command::Tick, ctx(at(1)))
        .await;
    assert!(
        matches!(
            no_event,
            Err(StoreError::Transition(
                sendpromptly_core::machine::TransitionError::UnknownEvent
            ))
        ),
        "{no_event:?}"
    );
    assert_eq!(
        store.event(&project.id, &stripe("evt_none")).await.unwrap(),
        None
    );

    let first = request_reprocess(store, &project, &incident_id, at(2)).await;
    let refused = store
        .apply_to_incident(
            &project.id,
            &incident_id,
            Command::RequestReprocess {
                reprocess_id: new_id(ids::REPROCESS, at(3)),
                note: None,
                result_deadline_seconds: 600,
            },
            ctx(at(3)),
        )
        .await;
    assert!(
        matches!(
            &refused,
            Err(StoreError::Transition(
                sendpromptly_core::machine::TransitionError::CallbackInFlight { reprocess_id }
            )) if *reprocess_id == first
        ),
        "{refused:?}"
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);

    let resolved = store
        .apply_to_incident(
            &project.id,
            &incident_id,
            Command::ManualResolve {
                note: "fixed by hand".to_owned(),
            },
            Context {
                actor: Actor::Console("alice@example.com".to_owned()),
                ..ctx(at(4))
            },
        )
        .await
        .unwrap();
    assert_eq!(
        resolved.transition.record.incident.unwrap().state,
        IncidentState::Resolved
    );
    assert_eq!(
        store.pending_deliveries().await.unwrap(),
        0,
        "manual resolution cancels the pending callback"
    );

    let entry = TimelineEntry::new(
        at(5),
        TimelineKind::ProofLinkCreated,
        Actor::Console("alice@example.com".to_owned()),
        serde_json::json!({"proof_link_id": "prf_x"}),
    );
    store
        .append_incident_entry(&project.id, &incident_id, entry.clone())
        .await
        .unwrap();
    let missing = store
        .append_incident_entry(&project.id, "inc_nope", entry.clone())
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let stored = store
        .incident(&project.id, &incident_id)
        .await
        .unwrap()
        .unwrap();
    let last = stored.timeline.last().expect("the appended entry");
    assert_eq!(last.hash.as_ref().map(String::len), Some(64), "chained");
    assert_eq!(
        Some(&TimelineEntry {
            hash: None,
            ..last.clone()
        }),
        Some(&entry)
    );
    assert_eq!(
        stored.record.incident.unwrap().state,
        IncidentState::Resolved
    );
    let seqs: Vec<Timestamp> = stored.timeline.iter().map(|e| e.at).collect();
    let mut ordered = seqs.clone();
    ordered.sort();
    assert_eq!(seqs, ordered, "timeline in order");
}

/// Proof links: create, look up by token hash and id, list, revoke once.
pub async fn proof_links(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let incident_id = failed_event(
        store,
        &project,
        &stripe("evt_proof"),
        "invoice.paid",
        None,
        at(0),
    )
    .await;
    let first = proof_link(&project, &incident_id, 7, at(10));
    let second = proof_link(&project, &incident_id, 8, at(20));
    store.create_proof_link(first.clone()).await.unwrap();
    store.create_proof_link(second.clone()).await.unwrap();

    let same_token = store
        .create_proof_link(ProofLink {
            id: new_id(ids::PROOF_LINK, at(30)),
            ..first.clone()
        })
        .await;
    assert!(
        matches!(same_token, Err(StoreError::Conflict(_))),
        "{same_token:?}"
    );
    let foreign = store
        .create_proof_link(ProofLink {
            project_id: other.id.clone(),
            ..proof_link(&other, &incident_id, 9, at(30))
        })
        .await;
    assert!(
        matches!(foreign, Err(StoreError::NotFound(_))),
        "a link for another project's incident: {foreign:?}"
    );

    assert_eq!(
        store.proof_link_by_token_hash(&[7; 32]).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.proof_link_by_token_hash(&[1; 32]).await.unwrap(),
        None
    );
    assert_eq!(
        store.proof_link(&project.id, &first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.proof_link(&other.id, &first.id).await.unwrap(), None);
    assert_eq!(
        store
            .proof_links_for_incident(&project.id, &incident_id)
            .await
            .unwrap(),
        vec![second.clone(), first.clone()]
    );

    assert!(
        !store
            .revoke_proof_link(&other.id, &first.id, at(40))
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_proof_link(&project.id, &first.id, at(40))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_proof_link(&project.id, &first.id, at(41))
            .await
            .unwrap(),
        "revoked once"
    );
    assert!(
        !store
            .revoke_proof_link(&project.id, "prf_nope", at(41))
            .await
            .unwrap()
    );
    let revoked = store
        .proof_link_by_token_hash(&[7; 32])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(40)));
    assert_eq!(
        store
            .proof_link(&project.id, &second.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}
