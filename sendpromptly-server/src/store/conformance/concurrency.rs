//! Isolation between projects and concurrent writers.

use super::*;

/// Another project's ids behave as not found, for every getter and command.
pub async fn cross_project_isolation(store: &dyn Store) {
    let mine = new_project(store).await;
    let theirs = new_project(store).await;
    let k = stripe("evt_shared_id");
    let incident_id = failed_event(store, &mine, &k, "invoice.paid", Some("cus_s"), at(0)).await;
    let key_record = api_key(&mine, 42, at(0));
    store.insert_api_key(key_record.clone()).await.unwrap();
    store
        .add_signing_secret(&mine.id, "whsec_mine", at(0), at(10))
        .await
        .unwrap();
    let link = proof_link(&mine, &incident_id, 42, at(1));
    store.create_proof_link(link.clone()).await.unwrap();

    let t = theirs.id.as_str();
    assert_eq!(store.event(t, &k).await.unwrap(), None);
    assert_eq!(store.incident(t, &incident_id).await.unwrap(), None);
    assert!(
        store
            .list_incidents(t, &IncidentFilter::default(), &page(100))
            .await
            .unwrap()
            .data
            .is_empty()
    );
    assert!(
        store
            .search_events(
                t,
                &EventFilter {
                    subject: Some("cus_s".to_owned()),
                    ..EventFilter::default()
                },
                &page(100)
            )
            .await
            .unwrap()
            .data
            .is_empty()
    );
    let resolve = store
        .apply_to_incident(
            t,
            &incident_id,
            Command::ManualResolve {
                note: "not yours".to_owned(),
            },
            ctx(at(2)),
        )
        .await;
    assert!(
        matches!(resolve, Err(StoreError::NotFound(_))),
        "{resolve:?}"
    );
    let append = store
        .append_incident_entry(
            t,
            &incident_id,
            TimelineEntry::new(
                at(2),
                TimelineKind::ProofLinkCreated,
                Actor::Console("mallory@example.com".to_owned()),
                serde_json::Value::Null,
            ),
        )
        .await;
    assert!(matches!(append, Err(StoreError::NotFound(_))), "{append:?}");
    assert!(store.list_api_keys(t).await.unwrap().is_empty());
    assert!(
        !store
            .revoke_api_key(t, &key_record.id, at(2))
            .await
            .unwrap()
    );
    assert!(store.signing_secrets(t, at(2)).await.unwrap().is_empty());
    assert_eq!(store.proof_link(t, &link.id).await.unwrap(), None);
    assert!(
        store
            .proof_links_for_incident(t, &incident_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.revoke_proof_link(t, &link.id, at(2)).await.unwrap());

    // The same (provider, event_id) in the other project is its own event.
    let theirs_applied = store
        .apply(t, &k, receipt(&k, Some("cus_t")), ctx(at(3)))
        .await
        .unwrap();
    assert_eq!(theirs_applied.transition.outcome, Outcome::Created);
    assert_eq!(
        store
            .event(t, &k)
            .await
            .unwrap()
            .unwrap()
            .record
            .subject
            .as_deref(),
        Some("cus_t")
    );

    // Nothing of mine changed.
    let stored = store
        .incident(&mine.id, &incident_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.record.incident.unwrap().state, IncidentState::Open);
    assert_eq!(stored.record.subject.as_deref(), Some("cus_s"));
    assert_eq!(stored.timeline.len(), 3);
    assert_eq!(
        store
            .api_key_by_hash(&[42; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(
        store
            .proof_link(&mine.id, &link.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    // Unknown projects: no data, and events cannot be created for them.
    let ghost = store
        .apply("prj_ghost", &k, receipt(&k, None), ctx(at(4)))
        .await;
    assert!(matches!(ghost, Err(StoreError::NotFound(_))), "{ghost:?}");
}

/// 50 concurrent identical receipts: one record, 50 deliveries, 50 entries.
pub async fn concurrent_receipts(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_storm");
    let project_id = project.id.as_str();
    let key_ref = &k;
    let tasks: Vec<BoxedTask<'_, StoreResult<Applied>>> = (0..50)
        .map(|i| {
            let command = receipt(key_ref, Some("cus_storm"));
            let context = ctx(at(i));
            Box::pin(async move { store.apply(project_id, key_ref, command, context).await })
                as BoxedTask<'_, _>
        })
        .collect();
    let results = run_in_parallel(tasks);
    let mut created = 0;
    let mut duplicates = 0;
    for result in results {
        match result
            .expect("every receipt is accepted")
            .transition
            .outcome
        {
            Outcome::Created => created += 1,
            Outcome::Duplicate => duplicates += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((created, duplicates), (1, 49));
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    assert_eq!(stored.record.deliveries, 50);
    assert_eq!(stored.timeline.len(), 50);
    let all = store
        .search_events(&project.id, &EventFilter::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(all.data.len(), 1, "one record");
}

/// Many concurrent `apply`/`apply_to_incident` calls, some of which fail
/// (the state machine refuses, an unknown incident, a uniqueness conflict
/// after the event row and a timeline entry were already written): each
/// caller gets its own answer, a failed call leaves nothing behind, every
/// other call is stored, and each event's commands are stored in the order
/// its caller made them. (On SQLite these calls share group-commit
/// transactions; a failing one must roll back only itself.)
pub async fn concurrent_mixed_applies(store: &dyn Store) {
    let project = new_project(store).await;
    let taken_key = stripe("evt_mix_taken");
    let taken = failed_event(store, &project, &taken_key, "invoice.paid", None, at(0)).await;
    let project_id = project.id.as_str();
    let taken_ref = taken.as_str();
    const TASKS: usize = 32;
    let keys: Vec<EventKey> = (0..TASKS)
        .map(|i| stripe(&format!("evt_mix_{i}")))
        .collect();
    let tasks: Vec<BoxedTask<'_, Vec<StoreResult<Applied>>>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Box::pin(async move {
                let mut answers = Vec::new();
                answers.push(
                    store
                        .apply(project_id, k, receipt(k, Some("cus_mix")), ctx(at(1)))
                        .await,
                );
                answers.push(
                    store
                        .apply_to_incident(
                            project_id,
                            &format!("inc_missing_{i}"),
                            Command::ManualResolve {
                                note: "done".to_owned(),
                            },
                            ctx(at(2)),
                        )
                        .await,
                );
                answers.push(if i % 2 == 0 {
                    // Writes the event and a timeline entry, then fails on
                    // the incident id another event already uses.
                    store
                        .apply(
                            project_id,
                            k,
                            result(k, ResultStatus::Failure),
                            Context {
                                new_incident_id: taken_ref.to_owned(),
                                ..ctx(at(3))
                            },
                        )
                        .await
                } else {
                    store
                        .apply(
                            project_id,
                            k,
                            Command::RequestReprocess {
                                reprocess_id: new_id(ids::REPROCESS, at(3)),
                                note: None,
                                result_deadline_seconds: 600,
                            },
                            ctx(at(3)),
                        )
                        .await
                });
                answers.push(
                    store
                        .apply(project_id, k, result(k, ResultStatus::Success), ctx(at(4)))
                        .await,
                );
                answers.push(
                    store
                        .apply(project_id, k, receipt(k, Some("cus_mix")), ctx(at(5)))
                        .await,
                );
                answers
            }) as BoxedTask<'_, _>
        })
        .collect();
    let all = run_in_parallel(tasks);
    for (i, (k, answers)) in keys.iter().zip(all).enumerate() {
        let mut answers = answers.into_iter();
        let first = answers.next().unwrap().expect("first receipt");
        assert_eq!(first.transition.outcome, Outcome::Created, "{i}");
        assert_eq!(first.transition.record.event_id, k.event_id, "{i}");
        let missing = answers.next().unwrap();
        assert!(
            matches!(missing, Err(StoreError::NotFound("incident"))),
            "{i}: {missing:?}"
        );
        let failing = answers.next().unwrap();
        if i % 2 == 0 {
            assert!(
                matches!(failing, Err(StoreError::Conflict(_))),
                "{i}: {failing:?}"
            );
        } else {
            assert!(
                matches!(
                    failing,
                    Err(StoreError::Transition(
                        sendpromptly_core::machine::TransitionError::NoIncident
                    ))
                ),
                "{i}: {failing:?}"
            );
        }
        let success = answers.next().unwrap().expect("success result");
        assert_eq!(success.transition.record.event_id, k.event_id, "{i}");
        assert_eq!(
            success.transition.record.state,
            EventState::Succeeded,
            "{i}"
        );
        let again = answers.next().unwrap().expect("duplicate receipt");
        assert_eq!(again.transition.outcome, Outcome::Duplicate, "{i}");
        assert_eq!(again.transition.record.deliveries, 2, "{i}");

        let stored = store.event(project_id, k).await.unwrap().expect("stored");
        assert_eq!(stored.record, again.transition.record, "{i}");
        assert!(
            stored.record.incident.is_none(),
            "{i}: nothing of the failure is left"
        );
        let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                TimelineKind::ReceiptRecorded,
                TimelineKind::ResultSuccess,
                TimelineKind::ReceiptDuplicate
            ],
            "{i}: in the caller's order, without the failed commands"
        );
    }
    let owner = store
        .incident(project_id, &taken)
        .await
        .unwrap()
        .expect("taken");
    assert_eq!(owner.record.event_id, taken_key.event_id);
    let listed = store
        .search_events(project_id, &EventFilter::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(listed.data.len(), TASKS + 1);
}

/// Concurrent dispatchers never receive the same job twice.
pub async fn concurrent_claims(store: &dyn Store) {
    let project = new_project(store).await;
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        let k = stripe(&format!("evt_claim_{i}"));
        let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
        expected.insert(request_reprocess(store, &project, &incident_id, at(1)).await);
    }
    let tasks: Vec<BoxedTask<'_, StoreResult<Vec<DeliveryJob>>>> = (0..8)
        .map(|_| Box::pin(store.claim_deliveries(at(5), LEASE, 4)) as BoxedTask<'_, _>)
        .collect();
    let mut claimed = Vec::new();
    for jobs in run_in_parallel(tasks) {
        claimed.extend(job_ids(&jobs.expect("claim")));
    }
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "a job was handed out twice: {claimed:?}"
    );
    assert_eq!(distinct, expected, "8 × 4 claims take all 20 jobs");
    assert!(
        store
            .claim_deliveries(at(6), LEASE, 100)
            .await
            .unwrap()
            .is_empty()
    );
}
