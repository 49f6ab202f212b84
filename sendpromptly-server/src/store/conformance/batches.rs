//! Bulk reprocess batches and their pacing.

use super::*;

/// A batch callback waiting for its next retry holds no concurrency slot;
/// once the endpoint answers a 2xx after its last attempt, it is made due
/// within the pacing (before new items); a slow-down still pauses it.
pub async fn reprocess_batch_retries_hold_no_slot(store: &dyn Store) {
    let project = new_project(store).await;
    let mut incidents = Vec::new();
    for i in 0..3 {
        let k = stripe(&unique("evt_retry_slot"));
        incidents.push(failed_event(store, &project, &k, "invoice.paid", None, at(i)).await);
    }
    // 10 per second, one in flight at a time.
    let batch = new_batch(&project, 10.0, 1, at(10));
    let items: Vec<NewBatchItem> = incidents.iter().map(|id| batch_item(id, None)).collect();
    store.create_reprocess_batch(&batch, &items).await.unwrap();
    let sent = |paced: &PaceReport| paced.transitions.len();

    // The first callback is refused (503): it waits 30 s for its retry.
    assert_eq!(
        sent(&store.pace_reprocess_batches(at(10), 10).await.unwrap()),
        1
    );
    let first = store.claim_deliveries(at(10), LEASE, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    store
        .finish_delivery_attempt(
            &first[0],
            report(Some(503)),
            NextStep::RetryAt(at(40)),
            at(10),
        )
        .await
        .unwrap();
    // Waiting for its retry, it holds no slot: the next item starts.
    let paced = store.pace_reprocess_batches(at(11), 10).await.unwrap();
    assert_eq!(
        sent(&paced),
        1,
        "a callback waiting for a retry held the only slot"
    );
    assert_eq!(paced.retried, 0, "no success yet: the retry keeps its time");
    let counts = store
        .reprocess_batch(&project.id, &batch.id)
        .await
        .unwrap()
        .unwrap()
        .counts;
    assert_eq!((counts.sent, counts.in_flight), (2, 1), "{counts:?}");
    let second = store.claim_deliveries(at(11), LEASE, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].reprocess_id, first[0].reprocess_id);
    // The endpoint recovers: a 2xx.
    store
        .finish_delivery_attempt(&second[0], report(Some(200)), NextStep::Done, at(12))
        .await
        .unwrap();
    // The waiting callback is made due now, ahead of the third item.
    let paced = store.pace_reprocess_batches(at(12), 10).await.unwrap();
    assert_eq!((sent(&paced), paced.retried), (0, 1));
    let again = store.claim_deliveries(at(12), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reprocess_id, first[0].reprocess_id);
    assert_eq!(again[0].attempt, 2);
    // It is refused again, with Retry-After: the batch pauses until then,
    // and the retry is not pulled forward (no success since).
    store
        .finish_delivery_attempt(
            &again[0],
            report(Some(429)),
            NextStep::RetryAt(at(60)),
            at(13),
        )
        .await
        .unwrap();
    store
        .slow_reprocess_batch(&again[0].reprocess_id, at(43))
        .await
        .unwrap();
    for t in [13, 30, 42] {
        let paced = store.pace_reprocess_batches(at(t), 10).await.unwrap();
        assert_eq!((sent(&paced), paced.retried), (0, 0), "at {t}");
    }
    // After the pause the third item goes; the refused one keeps its time.
    let paced = store.pace_reprocess_batches(at(43), 10).await.unwrap();
    assert_eq!((sent(&paced), paced.retried), (1, 0));
    assert!(
        store
            .claim_deliveries(at(43), LEASE, 10)
            .await
            .unwrap()
            .iter()
            .all(|j| j.reprocess_id != first[0].reprocess_id)
    );
}

/// A batch callback whose retry comes due on its own schedule waits for a
/// slot: it is not attempted while the batch's other callbacks fill the
/// concurrency, and goes once one is free.
pub async fn reprocess_batch_retry_waits_for_a_slot(store: &dyn Store) {
    let project = new_project(store).await;
    let mut incidents = Vec::new();
    for i in 0..2 {
        let k = stripe(&unique("evt_retry_wait"));
        incidents.push(failed_event(store, &project, &k, "invoice.paid", None, at(i)).await);
    }
    let batch = new_batch(&project, 10.0, 1, at(10));
    let items: Vec<NewBatchItem> = incidents.iter().map(|id| batch_item(id, None)).collect();
    store.create_reprocess_batch(&batch, &items).await.unwrap();
    // The first is refused and retries at 15; the second starts in its slot.
    store.pace_reprocess_batches(at(10), 10).await.unwrap();
    let first = store.claim_deliveries(at(10), LEASE, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    store
        .finish_delivery_attempt(
            &first[0],
            report(Some(503)),
            NextStep::RetryAt(at(15)),
            at(10),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .pace_reprocess_batches(at(11), 10)
            .await
            .unwrap()
            .transitions
            .len(),
        1
    );
    let second = store.claim_deliveries(at(11), LEASE, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    // At 15 the retry is due, but the second is still being attempted.
    let claimed = store.claim_deliveries(at(15), LEASE, 10).await.unwrap();
    assert!(
        claimed.is_empty(),
        "a retry was attempted beyond the concurrency: {claimed:?}"
    );
    // The second succeeds: the retry goes (made due again by the pacer).
    store
        .finish_delivery_attempt(&second[0], report(Some(200)), NextStep::Done, at(16))
        .await
        .unwrap();
    store.pace_reprocess_batches(at(16), 10).await.unwrap();
    let again = store.claim_deliveries(at(16), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reprocess_id, first[0].reprocess_id);
    assert_eq!(again[0].attempt, 2);
}

/// A batch is paced (rate and concurrency), skips what the state machine
/// refuses at send time, is slowed down, cancelled, and completes; its
/// counts and item states are derived from the outbox and the incidents.
pub async fn reprocess_batches(store: &dyn Store) {
    let project = new_project(store).await;
    let mut incidents = Vec::new();
    for i in 0..5 {
        let k = stripe(&format!("evt_batch_{i}"));
        incidents.push(failed_event(store, &project, &k, "invoice.paid", None, at(0)).await);
    }
    store
        .apply_to_incident(
            &project.id,
            &incidents[1],
            Command::ManualResolve {
                note: "by hand".into(),
            },
            ctx(at(1)),
        )
        .await
        .unwrap();
    // Rate 2/s (one every 500 ms), at most 2 in flight.
    let batch = new_batch(&project, 2.0, 2, at(10));
    let mut items: Vec<NewBatchItem> = incidents.iter().map(|id| batch_item(id, None)).collect();
    items.push(batch_item("inc_gone", Some("incident_not_found")));
    store.create_reprocess_batch(&batch, &items).await.unwrap();
    let stored = store
        .reprocess_batch(&project.id, &batch.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, "running");
    assert_eq!(stored.started_by, "console:ops@example.com");
    assert_eq!(stored.selection["event_type"], "invoice.paid");
    assert_eq!(stored.counts.total, 6);
    assert_eq!(stored.counts.pending, 5);
    assert_eq!(stored.counts.skipped, 1);

    let paced = store.pace_reprocess_batches(at(10), 10).await.unwrap();
    assert_eq!(paced.transitions.len(), 1, "one token at the start");
    let (project_of, transition) = &paced.transitions[0];
    assert_eq!(project_of, &project.id);
    let reprocess = transition
        .record
        .incident
        .as_ref()
        .unwrap()
        .reprocess
        .clone()
        .unwrap();
    assert_eq!(
        reprocess.requested_by,
        Actor::Console("ops@example.com".into())
    );
    assert_eq!(
        reprocess.note.as_deref(),
        Some(
            format!(
                "reprocessed as part of batch {} by console:ops@example.com: after the outage",
                batch.id
            )
            .as_str()
        )
    );
    assert!(
        transition
            .effects
            .iter()
            .any(|e| matches!(e, Effect::DeliverCallback { .. }))
    );
    assert!(
        store
            .pace_reprocess_batches(at(10), 10)
            .await
            .unwrap()
            .transitions
            .is_empty(),
        "the next token is 500 ms later"
    );
    // The resolved incident is skipped when its turn comes.
    let paced = store
        .pace_reprocess_batches(at(10).plus_millis(500), 10)
        .await
        .unwrap();
    assert_eq!((paced.transitions.len(), paced.skipped), (0, 1));
    let paced = store.pace_reprocess_batches(at(11), 10).await.unwrap();
    assert_eq!(paced.transitions.len(), 1);
    // Two in flight: nothing more starts, however late it is.
    assert!(
        store
            .pace_reprocess_batches(at(15), 10)
            .await
            .unwrap()
            .transitions
            .is_empty()
    );
    let jobs = store.claim_deliveries(at(15), LEASE, 10).await.unwrap();
    assert_eq!(jobs.len(), 2);
    store
        .finish_delivery_attempt(&jobs[0], report(Some(200)), NextStep::Done, at(15))
        .await
        .unwrap();
    // One slot free: one more (the burst is at most one slot here).
    assert_eq!(
        store
            .pace_reprocess_batches(at(15), 10)
            .await
            .unwrap()
            .transitions
            .len(),
        1
    );
    let counts = store
        .reprocess_batch(&project.id, &batch.id)
        .await
        .unwrap()
        .unwrap()
        .counts;
    assert_eq!(
        counts,
        ReprocessBatchCounts {
            total: 6,
            pending: 1,
            skipped: 2,
            cancelled: 0,
            sent: 3,
            in_flight: 2,
            delivered: 1,
            failed: 0,
            resolved: 0,
        }
    );
    let shown = store
        .reprocess_batch_items(&project.id, &batch.id, 10)
        .await
        .unwrap();
    let states: Vec<&str> = shown.iter().map(|i| i.state.as_str()).collect();
    assert_eq!(
        states,
        ["delivered", "skipped", "sent", "sent", "pending", "skipped"]
    );
    assert_eq!(shown[1].reason.as_deref(), Some("incident_resolved"));
    assert_eq!(
        shown[0].reprocess_id.as_deref(),
        Some(jobs[0].reprocess_id.as_str())
    );
    assert_eq!(
        store
            .reprocess_batch_items(&project.id, &batch.id, 2)
            .await
            .unwrap()
            .len(),
        2
    );

    // 429/503 slow the batch down: nothing starts before `until`.
    store
        .finish_delivery_attempt(&jobs[1], report(Some(200)), NextStep::Done, at(16))
        .await
        .unwrap();
    store
        .slow_reprocess_batch(&jobs[1].reprocess_id, at(30))
        .await
        .unwrap();
    store
        .slow_reprocess_batch("rep_unknown", at(99))
        .await
        .unwrap();
    assert!(
        store
            .pace_reprocess_batches(at(29), 10)
            .await
            .unwrap()
            .transitions
            .is_empty()
    );

    // Another project sees nothing; cancelling stops the rest.
    let other = new_project(store).await;
    assert!(
        store
            .reprocess_batch(&other.id, &batch.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .cancel_reprocess_batch(&other.id, &batch.id, at(20))
            .await
            .unwrap()
            .is_none()
    );
    let cancelled = store
        .cancel_reprocess_batch(&project.id, &batch.id, at(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.state, "cancelled");
    assert_eq!(cancelled.finished_at, Some(at(20)));
    assert_eq!(
        (cancelled.counts.pending, cancelled.counts.cancelled),
        (0, 1)
    );
    assert!(
        store
            .pace_reprocess_batches(at(60), 10)
            .await
            .unwrap()
            .transitions
            .is_empty()
    );
    let again = store
        .cancel_reprocess_batch(&project.id, &batch.id, at(61))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.finished_at,
        Some(at(20)),
        "cancelling again changes nothing"
    );

    // A batch whose callbacks are all finished completes; a success result
    // counts as resolved.
    let k = stripe("evt_batch_last");
    let last = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    let done = new_batch(&project, 100.0, 5, at(100));
    store
        .create_reprocess_batch(&done, &[batch_item(&last, None)])
        .await
        .unwrap();
    assert_eq!(
        store
            .pace_reprocess_batches(at(100), 10)
            .await
            .unwrap()
            .transitions
            .len(),
        1
    );
    let paced = store.pace_reprocess_batches(at(101), 10).await.unwrap();
    assert_eq!(paced.completed, 0, "still in flight");
    let jobs = store.claim_deliveries(at(101), LEASE, 10).await.unwrap();
    let job = jobs
        .iter()
        .find(|j| j.incident_id == last)
        .expect("the last batch's callback");
    store
        .finish_delivery_attempt(job, report(Some(200)), NextStep::Done, at(101))
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &k,
            result(&k, ResultStatus::Success),
            ctx(at(102)),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .pace_reprocess_batches(at(102), 10)
            .await
            .unwrap()
            .completed,
        1
    );
    let finished = store
        .reprocess_batch(&project.id, &done.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(finished.state, "completed");
    assert_eq!(finished.finished_at, Some(at(102)));
    assert_eq!(
        (finished.counts.delivered, finished.counts.resolved),
        (1, 1)
    );
}

/// Pacing passes running at the same time never send an item twice.
pub async fn concurrent_batch_pacing(store: &dyn Store) {
    let project = new_project(store).await;
    let mut items = Vec::new();
    for i in 0..20 {
        let k = stripe(&format!("evt_pace_{i}"));
        items.push(batch_item(
            &failed_event(store, &project, &k, "invoice.paid", None, at(0)).await,
            None,
        ));
    }
    let batch = new_batch(&project, 1000.0, 100, at(10));
    store.create_reprocess_batch(&batch, &items).await.unwrap();
    let mut sent = 0;
    for step in 0..10 {
        let now = at(11 + step);
        let tasks: Vec<BoxedTask<'_, usize>> = (0..4)
            .map(|_| {
                Box::pin(async move {
                    store
                        .pace_reprocess_batches(now, 10)
                        .await
                        .unwrap()
                        .transitions
                        .len()
                }) as BoxedTask<'_, usize>
            })
            .collect();
        sent += run_in_parallel(tasks).into_iter().sum::<usize>();
    }
    assert_eq!(sent, 20, "every item exactly once");
    assert_eq!(store.pending_deliveries().await.unwrap(), 20);
}
