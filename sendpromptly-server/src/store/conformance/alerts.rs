//! The alert outbox: lifecycle, grouping into digests, concurrent claims.

use super::*;

/// An opened incident enqueues one alert per channel whose `on` wants it,
/// in the same transaction; a claim leases it; a finished attempt goes on
/// the timeline and reschedules or completes the row; a stale lease
/// records nothing.
pub async fn alert_outbox_lifecycle(store: &dyn Store) {
    let quiet = new_project(store).await;
    failed_event(
        store,
        &quiet,
        &stripe("evt_quiet"),
        "invoice.paid",
        None,
        at(0),
    )
    .await;
    assert_eq!(
        store.pending_alerts().await.unwrap(),
        0,
        "no channels, no alerts"
    );

    let project = project_with_channels(
        store,
        serde_json::json!([
            {"type": "webhook", "url": "https://hooks.example/a", "on": ["incident.opened", "incident.resolved"]},
            {"type": "slack", "webhook_url": "https://hooks.slack.com/x", "on": ["reprocess.failed"]},
        ]),
    )
    .await;
    let incident_id = failed_event(
        store,
        &project,
        &stripe("evt_alert"),
        "invoice.paid",
        Some("cus_1"),
        at(0),
    )
    .await;
    assert_eq!(store.pending_alerts().await.unwrap(), 1);

    let jobs = store.claim_alerts(at(0), LEASE, 10, WINDOW).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert!(job.id.starts_with(ids::ALERT), "{}", job.id);
    assert_eq!(job.project_id, project.id);
    assert_eq!(job.channel.kind(), "webhook");
    assert_eq!(job.event.as_str(), "incident.opened");
    assert_eq!(job.attempt, 1);
    assert_eq!(job.incidents.len(), 1);
    assert_eq!(job.incidents[0].incident_id, incident_id);
    assert_eq!(job.incidents[0].subject.as_deref(), Some("cus_1"));
    assert_eq!(job.incidents[0].reason.as_deref(), Some("tenant not found"));
    assert!(
        store
            .claim_alerts(at(1), LEASE, 10, WINDOW)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    let retry = NextStep::RetryAt(at(30));
    assert!(
        store
            .finish_alert_attempt(job, &alert_entry(job, retry, at(2)), retry, at(2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_alert_attempt(job, &alert_entry(job, retry, at(2)), retry, at(2))
            .await
            .unwrap(),
        "a finished claim records nothing more"
    );
    let stored = store
        .incident(&project.id, &incident_id)
        .await
        .unwrap()
        .unwrap();
    let attempts: Vec<_> = stored
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::AlertAttempt)
        .collect();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].detail["channel"], "webhook");
    assert_eq!(attempts[0].detail["outcome"], "retry_scheduled");
    assert_eq!(stored.record.updated_at, at(2));
    assert!(
        store
            .claim_alerts(at(29), LEASE, 10, WINDOW)
            .await
            .unwrap()
            .is_empty(),
        "not due before its retry time"
    );

    // A claim whose lease ran out is handed out again.
    let jobs = store.claim_alerts(at(30), LEASE, 10, WINDOW).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempt, 2);
    let later = at(30) + LEASE;
    let again = store.claim_alerts(later, LEASE, 10, WINDOW).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, jobs[0].id);
    assert!(
        !store
            .finish_alert_attempt(
                &jobs[0],
                &alert_entry(&jobs[0], NextStep::Done, later),
                NextStep::Done,
                later
            )
            .await
            .unwrap(),
        "the expired claim lost the row"
    );
    assert!(
        store
            .finish_alert_attempt(
                &again[0],
                &alert_entry(&again[0], NextStep::Done, later),
                NextStep::Done,
                later
            )
            .await
            .unwrap()
    );
    assert_eq!(store.pending_alerts().await.unwrap(), 0);
    assert!(
        store
            .claim_alerts(later.plus_seconds(3600), LEASE, 10, WINDOW)
            .await
            .unwrap()
            .is_empty()
    );

    // A repair callback that gives up raises `reprocess.failed` for the
    // channel that wants it, with the give-up reason.
    let t = later.plus_seconds(10);
    request_reprocess(store, &project, &incident_id, t).await;
    let deliveries = store.claim_deliveries(t, LEASE, 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    store
        .finish_delivery_attempt(
            &deliveries[0],
            report(Some(410)),
            NextStep::GiveUp(GiveUpReason::Gone),
            t,
        )
        .await
        .unwrap();
    let jobs = store.claim_alerts(t, LEASE, 10, WINDOW).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].channel.kind(), "slack");
    assert_eq!(jobs[0].event.as_str(), "reprocess.failed");
    assert_eq!(
        jobs[0].incidents[0].reason.as_deref(),
        Some("repair callback gave up: the repair endpoint answered 410 Gone")
    );
}

/// The first `incident.opened` alert of an event type goes at once; the
/// next ones within the window are held and claimed as one digest when it
/// closes; another event type is its own group.
pub async fn alert_grouping_into_a_digest(store: &dyn Store) {
    let project = project_with_channels(
        store,
        serde_json::json!([{"type": "webhook", "url": "https://hooks.example/a"}]),
    )
    .await;
    let mut incidents = Vec::new();
    for i in 0..5 {
        let k = stripe(&format!("evt_burst_{i}"));
        incidents.push(failed_event(store, &project, &k, "invoice.paid", None, at(i)).await);
    }
    let lone = failed_event(
        store,
        &project,
        &stripe("evt_other"),
        "customer.created",
        None,
        at(5),
    )
    .await;
    assert_eq!(store.pending_alerts().await.unwrap(), 6);

    let jobs = store.claim_alerts(at(10), LEASE, 10, WINDOW).await.unwrap();
    let mut firsts: Vec<String> = jobs
        .iter()
        .map(|j| j.incidents[0].incident_id.clone())
        .collect();
    firsts.sort();
    let mut expected = vec![incidents[0].clone(), lone.clone()];
    expected.sort();
    assert_eq!(firsts, expected, "one per event type at once");
    assert!(jobs.iter().all(|j| j.incidents.len() == 1));
    for job in &jobs {
        assert!(
            store
                .finish_alert_attempt(
                    job,
                    &alert_entry(job, NextStep::Done, at(11)),
                    NextStep::Done,
                    at(11)
                )
                .await
                .unwrap()
        );
    }
    assert_eq!(store.pending_alerts().await.unwrap(), 4, "held");
    assert!(
        store
            .claim_alerts(at(299), LEASE, 10, WINDOW)
            .await
            .unwrap()
            .is_empty(),
        "held until the window of the first closes"
    );

    let jobs = store
        .claim_alerts(at(300), LEASE, 10, WINDOW)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "one digest");
    let digest = &jobs[0];
    let carried: Vec<String> = digest
        .incidents
        .iter()
        .map(|f| f.incident_id.clone())
        .collect();
    assert_eq!(carried, incidents[1..].to_vec(), "oldest first");
    assert_eq!(
        store.pending_alerts().await.unwrap(),
        1,
        "the others are carried"
    );
    assert!(
        store
            .finish_alert_attempt(
                digest,
                &alert_entry(digest, NextStep::Done, at(301)),
                NextStep::Done,
                at(301)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.pending_alerts().await.unwrap(), 0);
    for id in &incidents[1..] {
        let stored = store.incident(&project.id, id).await.unwrap().unwrap();
        let attempts: Vec<_> = stored
            .timeline
            .iter()
            .filter(|e| e.kind == TimelineKind::AlertAttempt)
            .collect();
        assert_eq!(attempts.len(), 1, "{id}");
        assert_eq!(attempts[0].detail["incidents"], 4);
    }
    // After the window a new burst starts a new window.
    let next = failed_event(
        store,
        &project,
        &stripe("evt_burst_late"),
        "invoice.paid",
        None,
        at(400),
    )
    .await;
    let jobs = store
        .claim_alerts(at(400), LEASE, 10, WINDOW)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].incidents[0].incident_id, next);
}

/// Parallel claims never hand out one alert twice.
pub async fn concurrent_alert_claims(store: &dyn Store) {
    let project = project_with_channels(
        store,
        serde_json::json!([{"type": "webhook", "url": "https://hooks.example/a"}]),
    )
    .await;
    let mut expected = BTreeSet::new();
    for i in 0..16 {
        let k = stripe(&format!("evt_alert_claim_{i}"));
        // One event type each: no grouping.
        expected.insert(failed_event(store, &project, &k, &format!("type.{i}"), None, at(0)).await);
    }
    let tasks: Vec<BoxedTask<'_, StoreResult<Vec<AlertJob>>>> = (0..8)
        .map(|_| Box::pin(store.claim_alerts(at(1), LEASE, 4, WINDOW)) as BoxedTask<'_, _>)
        .collect();
    let mut claimed = Vec::new();
    for jobs in run_in_parallel(tasks) {
        claimed.extend(
            jobs.expect("claim")
                .into_iter()
                .map(|j| j.incidents[0].incident_id.clone()),
        );
    }
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "an alert was handed out twice"
    );
    assert_eq!(distinct, expected, "8 × 4 claims take all 16 alerts");
}
