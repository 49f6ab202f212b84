//! Signals, incidents and their lists, search and cursors, and the sweeper.

use super::*;

/// A receipt creates the event; a duplicate is counted, keeps the deadline
/// and goes on the timeline, in order.
pub async fn receipt_then_duplicate(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_receipt");
    let first = store
        .apply(&project.id, &k, receipt(&k, Some("cus_1")), ctx(at(0)))
        .await
        .unwrap();
    assert_eq!(first.transition.outcome, Outcome::Created);
    let record = &first.transition.record;
    assert_eq!(record.state, EventState::AwaitingResult);
    assert_eq!(record.deliveries, 1);
    assert_eq!(record.deadline_at, Some(at(1800)));

    let second = store
        .apply(&project.id, &k, receipt(&k, Some("cus_1")), ctx(at(5)))
        .await
        .unwrap();
    assert_eq!(second.transition.outcome, Outcome::Duplicate);
    assert_eq!(second.transition.record.deliveries, 2);
    assert_eq!(second.transition.record.deadline_at, Some(at(1800)));

    let stored = store.event(&project.id, &k).await.unwrap().expect("stored");
    assert_eq!(stored.record, second.transition.record);
    let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            TimelineKind::ReceiptRecorded,
            TimelineKind::ReceiptDuplicate
        ]
    );
    assert_eq!(stored.timeline[0].at, at(0));
    assert_eq!(stored.timeline[1].at, at(5));
    assert_eq!(
        stored.timeline[0].actor,
        Actor::ApiKey("key_conformance".to_owned())
    );
    assert_eq!(
        stored.timeline[1].detail.get("deliveries"),
        Some(&serde_json::json!(2))
    );
    assert_eq!(
        store
            .event(&project.id, &stripe("evt_other"))
            .await
            .unwrap(),
        None
    );
    // Same event id under another provider is another event.
    assert_eq!(
        store
            .event(&project.id, &key(Provider::Shopify, "evt_receipt"))
            .await
            .unwrap(),
        None
    );
}

/// A result that arrives before its receipt is kept; the receipt completes it.
pub async fn result_before_receipt(store: &dyn Store) {
    let project = new_project(store).await;
    let k = key(Provider::Shopify, "9001");
    let early = store
        .apply(
            &project.id,
            &k,
            result(&k, ResultStatus::Success),
            ctx(at(0)),
        )
        .await
        .unwrap();
    assert_eq!(early.transition.outcome, Outcome::Created);
    let stored = store.event(&project.id, &k).await.unwrap().expect("kept");
    assert_eq!(stored.record.state, EventState::Succeeded);
    assert_eq!(stored.record.received_at, None);
    assert_eq!(stored.record.event_type, None);

    let late = store
        .apply(
            &project.id,
            &k,
            receipt_for(&k, "orders/paid", Some("shop_1"), 1800),
            ctx(at(3)),
        )
        .await
        .unwrap();
    assert_eq!(late.transition.outcome, Outcome::Created);
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    assert_eq!(stored.record.state, EventState::Succeeded);
    assert_eq!(stored.record.event_type.as_deref(), Some("orders/paid"));
    assert_eq!(stored.record.deliveries, 1);
    assert_eq!(stored.record.received_at, Some(at(3)));
    assert_eq!(stored.record.next_due_at(), None);
    let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![TimelineKind::ResultSuccess, TimelineKind::ReceiptRecorded]
    );
    let found = store
        .search_events(
            &project.id,
            &EventFilter {
                subject: Some("shop_1".to_owned()),
                ..EventFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(event_ids(&found), strings(&["9001"]));
}

/// A failure opens an incident, which is listed and readable by id.
pub async fn failure_opens_an_incident_that_is_listed(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_fail");
    let incident_id =
        failed_event(store, &project, &k, "invoice.paid", Some("cus_9"), at(10)).await;
    assert!(ids::has_shape(&incident_id, ids::INCIDENT), "{incident_id}");

    let listed = store
        .list_incidents(&project.id, &IncidentFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.next_cursor, None);
    let incident = listed.data[0].incident.as_ref().unwrap();
    assert_eq!(incident.id, incident_id);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.kind, IncidentKind::FailedResult);
    assert_eq!(incident.opened_at, at(10));

    let stored = store
        .incident(&project.id, &incident_id)
        .await
        .unwrap()
        .expect("incident by id");
    assert_eq!(stored.record.state, EventState::Failed);
    assert_eq!(stored.record.event_id, "evt_fail");
    let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            TimelineKind::ReceiptRecorded,
            TimelineKind::ResultFailure,
            TimelineKind::IncidentOpened
        ]
    );
    assert_eq!(store.incident(&project.id, "inc_nope").await.unwrap(), None);
}

/// Every incident filter, alone, and the default order.
pub async fn incident_list_filters(store: &dyn Store) {
    let project = new_project(store).await;
    // a: stripe invoice.paid cus_a, failed, open, opened at +10
    let a = stripe("evt_a");
    failed_event(store, &project, &a, "invoice.paid", Some("cus_a"), at(10)).await;
    // b: shopify orders/paid cus_b, failed, resolved by hand, opened at +20
    let b = key(Provider::Shopify, "evt_b");
    let b_incident = failed_event(store, &project, &b, "orders/paid", Some("cus_b"), at(20)).await;
    store
        .apply_to_incident(
            &project.id,
            &b_incident,
            Command::ManualResolve {
                note: "credited by hand".to_owned(),
            },
            ctx(at(25)),
        )
        .await
        .unwrap();
    // d: custom x.y cus_a, failed, reprocessing, opened at +30
    let d = key(Provider::Custom, "evt_d");
    let d_incident = failed_event(store, &project, &d, "x.y", Some("cus_a"), at(30)).await;
    request_reprocess(store, &project, &d_incident, at(35)).await;
    // c: stripe invoice.paid cus_b, no result by its deadline: missing, open, opened at +100
    let c = stripe("evt_c");
    store
        .apply(
            &project.id,
            &c,
            receipt_for(&c, "invoice.paid", Some("cus_b"), 60),
            ctx(at(0)),
        )
        .await
        .unwrap();
    let swept = store.sweep_due(at(100), 100).await.unwrap();
    assert_eq!(swept.examined, 1);

    let list = |filter: IncidentFilter| {
        let project_id = project.id.clone();
        async move {
            event_ids(
                &store
                    .list_incidents(&project_id, &filter, &page(100))
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(
        list(IncidentFilter::default()).await,
        strings(&["evt_c", "evt_d", "evt_b", "evt_a"]),
        "most recently opened first"
    );
    let by_state = |state| IncidentFilter {
        state: Some(state),
        ..IncidentFilter::default()
    };
    assert_eq!(
        list(by_state(IncidentState::Open)).await,
        strings(&["evt_c", "evt_a"])
    );
    assert_eq!(
        list(by_state(IncidentState::Resolved)).await,
        strings(&["evt_b"])
    );
    assert_eq!(
        list(by_state(IncidentState::Reprocessing)).await,
        strings(&["evt_d"])
    );
    let by_kind = |kind| IncidentFilter {
        kind: Some(kind),
        ..IncidentFilter::default()
    };
    assert_eq!(
        list(by_kind(IncidentKind::MissingResult)).await,
        strings(&["evt_c"])
    );
    assert_eq!(
        list(by_kind(IncidentKind::FailedResult)).await,
        strings(&["evt_d", "evt_b", "evt_a"])
    );
    assert_eq!(
        list(IncidentFilter {
            provider: Some(Provider::Shopify),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_b"])
    );
    assert_eq!(
        list(IncidentFilter {
            event_type: Some("invoice.paid".to_owned()),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_c", "evt_a"])
    );
    assert_eq!(
        list(IncidentFilter {
            subject: Some("cus_a".to_owned()),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_d", "evt_a"])
    );
    assert_eq!(
        list(IncidentFilter {
            opened_after: Some(at(20)),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_c", "evt_d", "evt_b"])
    );
    assert_eq!(
        list(IncidentFilter {
            opened_before: Some(at(20)),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_a"])
    );
    assert_eq!(
        list(IncidentFilter {
            state: Some(IncidentState::Open),
            subject: Some("cus_b".to_owned()),
            provider: Some(Provider::Stripe),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_c"]),
        "filters combine with AND"
    );
    assert!(
        list(IncidentFilter {
            subject: Some("cus_nobody".to_owned()),
            ..IncidentFilter::default()
        })
        .await
        .is_empty()
    );
}

/// 45 incidents, 10 per page: every one exactly once, in order.
pub async fn incident_pagination(store: &dyn Store) {
    let project = new_project(store).await;
    let mut expected = Vec::new();
    for i in 0..45_i64 {
        let k = stripe(&format!("evt_page_{i:02}"));
        // Three incidents share each opening time, so ties are broken by id.
        let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(i / 3)).await;
        expected.push((at(i / 3), incident_id));
    }
    expected.sort_by(|x, y| y.cmp(x));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = Vec::new();
    loop {
        let page = store
            .list_incidents(
                &project.id,
                &IncidentFilter::default(),
                &PageRequest {
                    limit: 10,
                    cursor: cursor.clone(),
                },
            )
            .await
            .unwrap();
        pages.push(page.data.len());
        seen.extend(
            page.data
                .iter()
                .map(|r| r.incident.as_ref().unwrap().id.clone()),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages.len() <= 5, "too many pages: {pages:?}");
    }
    assert_eq!(pages, vec![10, 10, 10, 10, 5]);
    assert_eq!(
        seen, expected,
        "no gaps, no duplicates, newest opened first"
    );

    // Filters and pagination together.
    let filtered = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                opened_before: Some(at(5)),
                ..IncidentFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(filtered.data.len(), 10);
    let rest = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                opened_before: Some(at(5)),
                ..IncidentFilter::default()
            },
            &PageRequest {
                limit: 10,
                cursor: filtered.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.data.len(), 5);
    assert_eq!(rest.next_cursor, None);
}

/// Event search by subject, state and event id, newest first, paginated.
pub async fn event_search(store: &dyn Store) {
    let project = new_project(store).await;
    for (i, subject) in ["cus_x", "cus_y", "cus_x", "cus_x", "cus_y"]
        .iter()
        .enumerate()
    {
        let k = stripe(&format!("evt_s{i}"));
        store
            .apply(
                &project.id,
                &k,
                receipt(&k, Some(subject)),
                ctx(at(i64::try_from(i).unwrap())),
            )
            .await
            .unwrap();
    }
    let fail = stripe("evt_s1");
    store
        .apply(
            &project.id,
            &fail,
            result(&fail, ResultStatus::Failure),
            ctx(at(10)),
        )
        .await
        .unwrap();
    let win = stripe("evt_s2");
    store
        .apply(
            &project.id,
            &win,
            result(&win, ResultStatus::Success),
            ctx(at(10)),
        )
        .await
        .unwrap();
    let search = |filter: EventFilter, limit: u32, cursor: Option<String>| {
        let project_id = project.id.clone();
        async move {
            store
                .search_events(&project_id, &filter, &PageRequest { limit, cursor })
                .await
                .unwrap()
        }
    };
    let subject_x = EventFilter {
        subject: Some("cus_x".to_owned()),
        ..EventFilter::default()
    };
    assert_eq!(
        event_ids(&search(subject_x.clone(), 10, None).await),
        strings(&["evt_s3", "evt_s2", "evt_s0"]),
        "newest first"
    );
    let first = search(subject_x.clone(), 2, None).await;
    assert_eq!(event_ids(&first), strings(&["evt_s3", "evt_s2"]));
    let second = search(subject_x.clone(), 2, first.next_cursor.clone()).await;
    assert_eq!(event_ids(&second), strings(&["evt_s0"]));
    assert_eq!(second.next_cursor, None);

    let state = |state| EventFilter {
        state: Some(state),
        ..EventFilter::default()
    };
    assert_eq!(
        event_ids(&search(state(EventState::Failed), 10, None).await),
        strings(&["evt_s1"])
    );
    assert_eq!(
        event_ids(&search(state(EventState::Succeeded), 10, None).await),
        strings(&["evt_s2"])
    );
    assert_eq!(
        event_ids(&search(state(EventState::AwaitingResult), 10, None).await),
        strings(&["evt_s4", "evt_s3", "evt_s0"])
    );
    assert_eq!(
        event_ids(
            &search(
                EventFilter {
                    subject: Some("cus_y".to_owned()),
                    state: Some(EventState::AwaitingResult),
                    ..EventFilter::default()
                },
                10,
                None
            )
            .await
        ),
        strings(&["evt_s4"])
    );
    assert_eq!(
        event_ids(
            &search(
                EventFilter {
                    event_id: Some("evt_s3".to_owned()),
                    ..EventFilter::default()
                },
                10,
                None
            )
            .await
        ),
        strings(&["evt_s3"])
    );
    let all = search(EventFilter::default(), 100, None).await;
    assert_eq!(all.data.len(), 5);
    assert_eq!(all.next_cursor, None);
}

/// A cursor the store did not hand out is `NotFound("cursor")`.
pub async fn invalid_cursors(store: &dyn Store) {
    let project = new_project(store).await;
    for i in 0..3 {
        let k = stripe(&format!("evt_c{i}"));
        failed_event(store, &project, &k, "invoice.paid", None, at(i)).await;
    }
    let incidents_page = store
        .list_incidents(&project.id, &IncidentFilter::default(), &page(1))
        .await
        .unwrap();
    let events_page = store
        .search_events(&project.id, &EventFilter::default(), &page(1))
        .await
        .unwrap();
    let incidents_cursor = incidents_page.next_cursor.expect("more incidents");
    let events_cursor = events_page.next_cursor.expect("more events");
    for bad in ["", "!!!", "not base64 at all", events_cursor.as_str()] {
        let got = store
            .list_incidents(
                &project.id,
                &IncidentFilter::default(),
                &PageRequest {
                    limit: 10,
                    cursor: Some(bad.to_owned()),
                },
            )
            .await;
        assert!(
            matches!(got, Err(StoreError::NotFound("cursor"))),
            "incidents cursor {bad:?}: {got:?}"
        );
    }
    for bad in ["", "%%%", incidents_cursor.as_str()] {
        let got = store
            .search_events(
                &project.id,
                &EventFilter::default(),
                &PageRequest {
                    limit: 10,
                    cursor: Some(bad.to_owned()),
                },
            )
            .await;
        assert!(
            matches!(got, Err(StoreError::NotFound("cursor"))),
            "events cursor {bad:?}: {got:?}"
        );
    }
}

/// The sweeper examines only due records (in `limit`-sized batches), opens
/// exactly one incident for each, and then finds nothing.
pub async fn sweep_opens_one_incident_per_due_event(store: &dyn Store) {
    let project = new_project(store).await;
    for i in 0..50 {
        let k = stripe(&format!("evt_later_{i}"));
        store
            .apply(
                &project.id,
                &k,
                receipt_for(&k, "invoice.paid", None, 3600),
                ctx(at(0)),
            )
            .await
            .unwrap();
    }
    let mut due = BTreeSet::new();
    for i in 0..5 {
        let k = stripe(&format!("evt_due_{i}"));
        store
            .apply(
                &project.id,
                &k,
                receipt_for(&k, "invoice.paid", None, 60 + u32::try_from(i).unwrap()),
                ctx(at(0)),
            )
            .await
            .unwrap();
        due.insert(k.event_id);
    }
    // One that already has its result is never due.
    let done = stripe("evt_done");
    store
        .apply(
            &project.id,
            &done,
            receipt_for(&done, "invoice.paid", None, 60),
            ctx(at(0)),
        )
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &done,
            result(&done, ResultStatus::Success),
            ctx(at(1)),
        )
        .await
        .unwrap();

    let nothing_yet = store.sweep_due(at(59), 100).await.unwrap();
    assert_eq!(nothing_yet.examined, 0);
    assert_eq!(nothing_yet.oldest_due_at, None);

    let first = store.sweep_due(at(120), 3).await.unwrap();
    assert_eq!(first.examined, 3, "limit bounds a batch");
    assert_eq!(first.oldest_due_at, Some(at(60)), "earliest due first");
    let second = store.sweep_due(at(120), 100).await.unwrap();
    assert_eq!(second.examined, 2, "only due records are examined");
    assert_eq!(second.oldest_due_at, Some(at(63)));

    let mut opened = BTreeSet::new();
    let mut incident_ids = BTreeSet::new();
    for (project_id, transition) in first.transitions.iter().chain(&second.transitions) {
        assert_eq!(project_id, &project.id);
        assert_eq!(transition.record.state, EventState::Overdue);
        let incident = transition.record.incident.as_ref().unwrap();
        assert_eq!(incident.kind, IncidentKind::MissingResult);
        assert!(transition.effects.iter().any(|e| matches!(
            e,
            Effect::IncidentOpened {
                kind: IncidentKind::MissingResult,
                ..
            }
        )));
        assert!(
            transition
                .entries
                .iter()
                .all(|e| e.actor == Actor::System("sweeper".to_owned()))
        );
        opened.insert(transition.record.event_id.clone());
        incident_ids.insert(incident.id.clone());
    }
    assert_eq!(opened, due);
    assert_eq!(incident_ids.len(), 5, "one distinct incident per event");

    let again = store.sweep_due(at(120), 100).await.unwrap();
    assert_eq!(again.examined, 0);
    assert!(again.transitions.is_empty());

    let listed = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                kind: Some(IncidentKind::MissingResult),
                ..IncidentFilter::default()
            },
            &page(100),
        )
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 5);
    let stored = store
        .event(&project.id, &stripe("evt_due_0"))
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            TimelineKind::ReceiptRecorded,
            TimelineKind::DeadlinePassed,
            TimelineKind::IncidentOpened
        ]
    );

    // The 50 others come due later, all at once.
    let later = store.sweep_due(at(3600), 100).await.unwrap();
    assert_eq!(later.examined, 50);
}

/// A delivered repair callback with no result by its deadline returns the
/// incident to `open` on the next sweep.
pub async fn sweep_returns_an_unanswered_repair_to_open(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_repair");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    request_reprocess(store, &project, &incident_id, at(10)).await;
    let jobs = store.claim_deliveries(at(10), LEASE, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    store
        .finish_delivery_attempt(&jobs[0], report(Some(200)), NextStep::Done, at(11))
        .await
        .unwrap();
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    assert_eq!(stored.record.next_due_at(), Some(at(11 + 600)));

    assert_eq!(store.sweep_due(at(600), 10).await.unwrap().examined, 0);
    let swept = store.sweep_due(at(700), 10).await.unwrap();
    assert_eq!(swept.examined, 1);
    let incident = swept.transitions[0].1.record.incident.clone().unwrap();
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(
        incident.reprocess.map(|r| r.status),
        Some(ReprocessStatus::NoResult)
    );
    assert_eq!(store.sweep_due(at(800), 10).await.unwrap().examined, 0);
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
    assert_eq!(event_ids(&listed), strings(&["evt_repair"]));
}
