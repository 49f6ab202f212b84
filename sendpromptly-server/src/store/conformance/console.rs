//! What the console reads: sessions, counts, daily activity, free-text search.

use super::*;

/// Sessions find their user until they expire or are deleted; creating a
/// session purges expired ones; users are listed oldest first.
pub async fn console_sessions(store: &dyn Store) {
    let alice = new_user(store, T0).await;
    let bob = new_user(store, at(5)).await;
    let listed = store.list_users().await.unwrap();
    assert_eq!(listed, vec![alice.clone(), bob.clone()], "oldest first");

    store
        .create_session(session(&alice, 1, T0, at(100)))
        .await
        .unwrap();
    store
        .create_session(session(&bob, 2, T0, at(1000)))
        .await
        .unwrap();
    assert_eq!(
        store.session_user(&[1; 32], at(99)).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.session_user(&[1; 32], at(100)).await.unwrap(),
        None,
        "expired at expires_at"
    );
    assert_eq!(store.session_user(&[9; 32], T0).await.unwrap(), None);
    assert_eq!(
        store.session_user(&[2; 32], at(500)).await.unwrap(),
        Some(bob.clone())
    );

    // A new session at t=200 purges alice's expired one (even when asked
    // with an earlier `now`, it is gone).
    store
        .create_session(session(&alice, 3, at(200), at(300)))
        .await
        .unwrap();
    assert_eq!(store.session_user(&[1; 32], at(50)).await.unwrap(), None);
    assert_eq!(
        store.session_user(&[2; 32], at(200)).await.unwrap(),
        Some(bob.clone()),
        "unexpired sessions are kept"
    );

    store.delete_session(&[3; 32]).await.unwrap();
    assert_eq!(store.session_user(&[3; 32], at(200)).await.unwrap(), None);
    store.delete_session(&[3; 32]).await.unwrap();

    let duplicate = store
        .create_session(session(&bob, 2, at(200), at(400)))
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    let orphan = store
        .create_session(Session {
            user_id: "usr_nobody".to_owned(),
            ..session(&bob, 4, at(200), at(400))
        })
        .await;
    assert!(
        matches!(orphan, Err(StoreError::NotFound("user"))),
        "{orphan:?}"
    );
}

/// Counts by state, and per-day, per-event-type activity: events by first
/// sight, failures by when they were reported (ignored ones excluded),
/// incidents by when they first opened.
pub async fn incident_counts_and_daily_activity(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    const DAY: i64 = 86_400;
    // T0 is 08:00 UTC; day 0 is T0's date.
    let day0 = T0.to_datetime().date_naive();
    let day1 = day0.succ_opt().unwrap();

    assert_eq!(
        store.incident_counts(&project.id).await.unwrap(),
        IncidentCounts::default()
    );
    assert!(
        store
            .daily_activity(&project.id, T0)
            .await
            .unwrap()
            .is_empty()
    );

    // Day 0: two invoice.paid events, one fails (incident); one
    // checkout.session.completed that succeeds.
    let a = stripe("evt_day_a");
    let inc_a = failed_event(store, &project, &a, "invoice.paid", Some("cus_a"), at(60)).await;
    let b = stripe("evt_day_b");
    store
        .apply(
            &project.id,
            &b,
            receipt_for(&b, "invoice.paid", None, 1800),
            ctx(at(120)),
        )
        .await
        .unwrap();
    let c = stripe("evt_day_c");
    store
        .apply(
            &project.id,
            &c,
            receipt_for(&c, "checkout.session.completed", None, 1800),
            ctx(at(180)),
        )
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &c,
            result(&c, ResultStatus::Success),
            ctx(at(200)),
        )
        .await
        .unwrap();
    // Day 1: event a fails again (a second failure on the same incident, no
    // new incident), c reports a failure after its success (ignored), and a
    // result arrives before its receipt (no event type yet) and fails.
    store
        .apply(
            &project.id,
            &a,
            Command::Result(ResultSignal {
                traceparent: None,
                tracestate: None,
                error: Some("still failing".to_owned()),
                ..match result(&a, ResultStatus::Failure) {
                    Command::Result(signal) => signal,
                    _ => unreachable!(),
                }
            }),
            ctx(at(DAY + 10)),
        )
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &c,
            result(&c, ResultStatus::Failure),
            ctx(at(DAY + 20)),
        )
        .await
        .unwrap();
    let d = stripe("evt_day_d");
    store
        .apply(
            &project.id,
            &d,
            result(&d, ResultStatus::Failure),
            ctx(at(DAY + 30)),
        )
        .await
        .unwrap();
    // Another project's activity is never counted.
    let x = stripe("evt_day_x");
    failed_event(store, &other, &x, "invoice.paid", None, at(60)).await;

    // Resolve a's incident by hand; d's incident (if the backend opened one
    // for a result-first failure) stays as the machine says.
    store
        .apply_to_incident(
            &project.id,
            &inc_a,
            Command::ManualResolve {
                note: "refunded".to_owned(),
            },
            Context {
                actor: Actor::Console("alice@example.com".to_owned()),
                ..ctx(at(DAY + 40))
            },
        )
        .await
        .unwrap();

    let listed = store
        .list_incidents(&project.id, &IncidentFilter::default(), &page(100))
        .await
        .unwrap()
        .data;
    let mut expected = IncidentCounts::default();
    for record in &listed {
        match record.incident.as_ref().unwrap().state {
            IncidentState::Open => expected.open += 1,
            IncidentState::Reprocessing => expected.reprocessing += 1,
            IncidentState::Resolved => expected.resolved += 1,
        }
    }
    let counts = store.incident_counts(&project.id).await.unwrap();
    assert_eq!(counts, expected, "counts agree with the incident list");
    assert_eq!(counts.resolved, 1);
    let d_opened = store
        .event(&project.id, &d)
        .await
        .unwrap()
        .unwrap()
        .record
        .incident
        .is_some();

    let activity = store.daily_activity(&project.id, T0).await.unwrap();
    let row = |day, event_type: Option<&str>, events, failures, incidents| DailyActivity {
        day,
        event_type: event_type.map(str::to_owned),
        events,
        failures,
        incidents,
    };
    let mut want = vec![
        row(day0, Some("checkout.session.completed"), 1, 0, 0),
        row(day0, Some("invoice.paid"), 2, 1, 1),
        row(day1, None, 1, 1, u64::from(d_opened)),
        row(day1, Some("invoice.paid"), 0, 1, 0),
    ];
    want.sort_by(|l, r| (l.day, &l.event_type).cmp(&(r.day, &r.event_type)));
    assert_eq!(activity, want);

    // `since` counts from the start of its UTC day: asking from 23:00 on
    // day 0 still returns the whole of day 0; from day 1 only day 1.
    let late_day0 = at(15 * 3600);
    assert_eq!(
        store.daily_activity(&project.id, late_day0).await.unwrap(),
        want
    );
    let from_day1 = store.daily_activity(&project.id, at(DAY)).await.unwrap();
    assert!(from_day1.iter().all(|r| r.day == day1), "{from_day1:?}");
    assert_eq!(from_day1.len(), 2);
}

/// `search` matches ids and subjects anywhere in them, ignoring ASCII
/// case, with `%` and `_` taken literally; it combines with other filters.
pub async fn free_text_search(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let a = stripe("evt_Alpha_1");
    let inc_a = failed_event(store, &project, &a, "invoice.paid", Some("cus_ACME"), at(1)).await;
    let b = stripe("evt_beta%2");
    failed_event(
        store,
        &project,
        &b,
        "invoice.paid",
        Some("cus_other"),
        at(2),
    )
    .await;
    let c = stripe("evt_gamma");
    store
        .apply(&project.id, &c, receipt(&c, Some("cus_acme_2")), ctx(at(3)))
        .await
        .unwrap();
    let x = stripe("evt_alpha_x");
    failed_event(store, &other, &x, "invoice.paid", Some("cus_acme"), at(4)).await;

    let events = |text: &str| {
        let filter = EventFilter {
            search: Some(text.to_owned()),
            ..EventFilter::default()
        };
        let project_id = project.id.clone();
        async move {
            event_ids(
                &store
                    .search_events(&project_id, &filter, &page(100))
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(events("ALPHA").await, strings(&["evt_Alpha_1"]));
    assert_eq!(events("acme").await, strings(&["evt_gamma", "evt_Alpha_1"]));
    assert_eq!(events("%").await, strings(&["evt_beta%2"]), "% is literal");
    assert_eq!(events("a_1").await, strings(&["evt_Alpha_1"]));
    assert_eq!(events("a_2").await, Vec::<String>::new(), "_ is literal");
    assert_eq!(events("nothing").await, Vec::<String>::new());
    let awaiting = EventFilter {
        search: Some("acme".to_owned()),
        state: Some(EventState::AwaitingResult),
        ..EventFilter::default()
    };
    assert_eq!(
        event_ids(
            &store
                .search_events(&project.id, &awaiting, &page(100))
                .await
                .unwrap()
        ),
        strings(&["evt_gamma"]),
        "combined with other filters"
    );

    let incidents = |text: &str| {
        let filter = IncidentFilter {
            search: Some(text.to_owned()),
            ..IncidentFilter::default()
        };
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
    assert_eq!(incidents("acme").await, strings(&["evt_Alpha_1"]));
    assert_eq!(incidents("BETA%").await, strings(&["evt_beta%2"]));
    assert_eq!(
        incidents(&inc_a.to_uppercase()).await,
        strings(&["evt_Alpha_1"]),
        "by incident id"
    );
    assert_eq!(
        incidents("evt_").await,
        strings(&["evt_beta%2", "evt_Alpha_1"])
    );
    let resolved = IncidentFilter {
        search: Some("evt_".to_owned()),
        state: Some(IncidentState::Resolved),
        ..IncidentFilter::default()
    };
    assert!(
        store
            .list_incidents(&project.id, &resolved, &page(100))
            .await
            .unwrap()
            .data
            .is_empty()
    );
}

/// Console users (migration 0010): disabling ends sessions at once and
/// hides the user from the session check; memberships with roles; one-time
/// links work once and expire; TOTP secrets are sealed at rest, steps are
/// claimed once; recovery codes work once; the per-project 2FA policy;
/// deleting a user removes everything of theirs.
pub async fn console_users_roles_and_totp(store: &dyn Store) {
    use sendpromptly_core::roles::Role;
    let project = new_project(store).await;
    let alice = new_user(store, T0).await;
    store
        .create_session(session(&alice, 41, T0, at(1000)))
        .await
        .unwrap();
    assert!(
        store
            .session_user(&[41; 32], at(1))
            .await
            .unwrap()
            .is_some()
    );

    // Disable: the session ends at once, enabling does not bring it back.
    store
        .set_user_disabled(&alice.id, Some(at(2)))
        .await
        .unwrap();
    assert_eq!(store.session_user(&[41; 32], at(3)).await.unwrap(), None);
    let disabled = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(disabled.disabled_at, Some(at(2)));
    store
        .create_session(session(&alice, 42, at(3), at(1000)))
        .await
        .unwrap();
    assert_eq!(
        store.session_user(&[42; 32], at(4)).await.unwrap(),
        None,
        "disabled users have no session"
    );
    store.set_user_disabled(&alice.id, None).await.unwrap();
    assert_eq!(store.session_user(&[41; 32], at(5)).await.unwrap(), None);
    assert!(
        store
            .session_user(&[42; 32], at(5))
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        store.set_user_disabled("usr_nobody", None).await,
        Err(StoreError::NotFound("user"))
    ));

    // A pending (TOTP due) session is not a session.
    store
        .create_session(Session {
            pending_2fa: true,
            ..session(&alice, 43, at(5), at(100))
        })
        .await
        .unwrap();
    assert_eq!(store.session_user(&[43; 32], at(6)).await.unwrap(), None);
    assert_eq!(
        store
            .pending_session_user(&[43; 32], at(6))
            .await
            .unwrap()
            .map(|u| u.id),
        Some(alice.id.clone())
    );
    assert_eq!(
        store.pending_session_user(&[42; 32], at(6)).await.unwrap(),
        None
    );

    // Memberships.
    store
        .set_member(&project.id, &alice.id, Some(Role::Viewer), T0)
        .await
        .unwrap();
    store
        .set_member(&project.id, &alice.id, Some(Role::Operator), T0)
        .await
        .unwrap();
    assert_eq!(
        store.memberships(&alice.id).await.unwrap(),
        vec![(project.id.clone(), Role::Operator)]
    );
    let members = store.members(&project.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].1, Role::Operator);
    store
        .set_member(&project.id, &alice.id, None, T0)
        .await
        .unwrap();
    assert!(store.memberships(&alice.id).await.unwrap().is_empty());
    assert!(matches!(
        store
            .set_member("prj_nobody", &alice.id, Some(Role::Admin), T0)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // One-time links: once, until they expire; a new password ends sessions.
    let token = UserToken {
        token_hash: vec![7; 32],
        user_id: alice.id.clone(),
        kind: "invite".into(),
        created_at: T0,
        expires_at: at(100),
    };
    store.create_user_token(token.clone()).await.unwrap();
    assert_eq!(
        store
            .take_user_token("reset", &[7; 32], at(1))
            .await
            .unwrap(),
        None,
        "kind must match"
    );
    assert_eq!(
        store
            .take_user_token("invite", &[7; 32], at(1))
            .await
            .unwrap(),
        Some(alice.id.clone())
    );
    assert_eq!(
        store
            .take_user_token("invite", &[7; 32], at(2))
            .await
            .unwrap(),
        None,
        "once"
    );
    store
        .create_user_token(UserToken {
            token_hash: vec![8; 32],
            ..token
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .take_user_token("invite", &[8; 32], at(100))
            .await
            .unwrap(),
        None,
        "expired"
    );
    store
        .set_user_password(&alice.id, "$argon2id$v=19$new")
        .await
        .unwrap();
    assert_eq!(store.session_user(&[42; 32], at(7)).await.unwrap(), None);

    // TOTP: sealed at rest, opened on read, a step claimed once.
    assert_eq!(store.user_totp(&alice.id).await.unwrap(), None);
    store
        .set_user_totp(&alice.id, Some(b"12345678901234567890"), false)
        .await
        .unwrap();
    let state = store.user_totp(&alice.id).await.unwrap().unwrap();
    assert_eq!(state.secret, b"12345678901234567890");
    assert!(!state.enabled);
    store
        .set_user_totp(&alice.id, Some(&state.secret), true)
        .await
        .unwrap();
    assert!(
        store
            .user_by_id(&alice.id)
            .await
            .unwrap()
            .unwrap()
            .totp_enabled
    );
    assert!(store.claim_totp_step(&alice.id, 100).await.unwrap());
    assert!(
        !store.claim_totp_step(&alice.id, 100).await.unwrap(),
        "replay"
    );
    assert!(
        !store.claim_totp_step(&alice.id, 99).await.unwrap(),
        "older"
    );
    assert!(store.claim_totp_step(&alice.id, 101).await.unwrap());
    assert_eq!(
        store.user_totp(&alice.id).await.unwrap().unwrap().last_step,
        Some(101)
    );

    // Recovery codes: each once.
    store
        .replace_recovery_codes(&alice.id, vec![vec![1; 32], vec![2; 32]])
        .await
        .unwrap();
    assert_eq!(store.recovery_codes_left(&alice.id).await.unwrap(), 2);
    assert!(
        store
            .use_recovery_code(&alice.id, &[1; 32], at(8))
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(&alice.id, &[1; 32], at(9))
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(&alice.id, &[3; 32], at(9))
            .await
            .unwrap()
    );
    assert_eq!(store.recovery_codes_left(&alice.id).await.unwrap(), 1);

    // The per-project policy.
    assert!(!store.project_requires_2fa(&project.id).await.unwrap());
    store
        .set_project_requires_2fa(&project.id, true)
        .await
        .unwrap();
    assert!(store.project_requires_2fa(&project.id).await.unwrap());

    // Delete: everything of theirs goes.
    store
        .set_member(&project.id, &alice.id, Some(Role::Admin), T0)
        .await
        .unwrap();
    store.delete_user(&alice.id).await.unwrap();
    assert_eq!(store.user_by_id(&alice.id).await.unwrap(), None);
    assert!(store.members(&project.id).await.unwrap().is_empty());
    assert_eq!(
        store.pending_session_user(&[43; 32], at(6)).await.unwrap(),
        None
    );
    assert!(matches!(
        store.delete_user(&alice.id).await,
        Err(StoreError::NotFound("user"))
    ));
}
