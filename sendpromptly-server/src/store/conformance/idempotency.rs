//! Idempotency keys: the begin/complete path and `apply_idempotent`.

use super::*;

/// Idempotency keys: the four outcomes, takeover, expiry, abandon, purge.
pub async fn idempotency(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let lock = Duration::from_secs(30);
    let p = project.id.as_str();
    let begin = |key: &'static str, hash: &'static [u8], now: Timestamp| async move {
        store
            .idempotency_begin(p, key, hash, now, lock)
            .await
            .unwrap()
    };

    assert_eq!(
        begin("k1", b"body-1", at(0)).await,
        IdempotencyBegin::Proceed
    );
    assert_eq!(
        begin("k1", b"body-1", at(1)).await,
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        begin("k1", b"body-2", at(1)).await,
        IdempotencyBegin::Mismatch
    );
    store
        .idempotency_complete(p, "k1", 201, br#"{"ok":true}"#)
        .await
        .unwrap();
    assert_eq!(
        begin("k1", b"body-1", at(2)).await,
        IdempotencyBegin::Replay {
            status: 201,
            body: br#"{"ok":true}"#.to_vec()
        }
    );
    assert_eq!(
        begin("k1", b"body-2", at(2)).await,
        IdempotencyBegin::Mismatch
    );
    // Another project's identical key is another key.
    assert_eq!(
        store
            .idempotency_begin(&other.id, "k1", b"body-2", at(2), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Proceed
    );
    // 4xx responses are stored too.
    assert_eq!(begin("k4", b"bad", at(0)).await, IdempotencyBegin::Proceed);
    store
        .idempotency_complete(p, "k4", 422, br#"{"error":{}}"#)
        .await
        .unwrap();
    assert_eq!(
        begin("k4", b"bad", at(5)).await,
        IdempotencyBegin::Replay {
            status: 422,
            body: br#"{"error":{}}"#.to_vec()
        }
    );

    // Older than 24 h: absent.
    let day = 24 * 3600;
    assert!(matches!(
        begin("k1", b"body-1", at(day - 1)).await,
        IdempotencyBegin::Replay { .. }
    ));
    assert_eq!(
        begin("k1", b"body-3", at(day + 1)).await,
        IdempotencyBegin::Proceed
    );
    assert_eq!(
        begin("k1", b"body-3", at(day + 2)).await,
        IdempotencyBegin::InFlight
    );

    // Takeover after the lock.
    assert_eq!(begin("k2", b"x", at(0)).await, IdempotencyBegin::Proceed);
    assert_eq!(begin("k2", b"x", at(29)).await, IdempotencyBegin::InFlight);
    assert_eq!(begin("k2", b"x", at(31)).await, IdempotencyBegin::Proceed);
    assert_eq!(begin("k2", b"x", at(32)).await, IdempotencyBegin::InFlight);

    // Abandon: the next request runs again.
    assert_eq!(begin("k3", b"y", at(0)).await, IdempotencyBegin::Proceed);
    store.idempotency_abandon(p, "k3").await.unwrap();
    assert_eq!(begin("k3", b"y", at(1)).await, IdempotencyBegin::Proceed);
    store.idempotency_abandon(p, "nothing").await.unwrap();

    // Purge removes keys created before the cut, keeps the rest.
    // Created: k2 (+31 s), k3 (+1 s), k4 (+0 s), other/k1 (+2 s), k1 (+1 day).
    let purged = store.purge_idempotency_keys(at(3600)).await.unwrap();
    assert_eq!(purged, 4);
    assert_eq!(begin("k3", b"z", at(3700)).await, IdempotencyBegin::Proceed);
    assert_eq!(
        begin("k1", b"body-3", at(day + 3)).await,
        IdempotencyBegin::InFlight,
        "a newer key survives the purge"
    );
}

/// `apply_idempotent`: the key's verdict, the command and the remembered
/// response in one transaction: a replay runs nothing, a different request
/// is a mismatch, sixteen identical requests at once run once, a key in
/// flight on the begin/complete path is in flight here too, and an expired
/// key runs again.
pub async fn idempotent_apply(store: &dyn Store) {
    let project = new_project(store).await;
    let key = api_key(&project, 91, at(0));
    store.insert_api_key(key.clone()).await.unwrap();
    let (p, key_id) = (project.id.as_str(), key.id.as_str());
    let run = |event: EventKey, idem: &'static str, hash: &'static [u8], now: Timestamp| {
        let command = receipt(&event, None);
        async move {
            store
                .apply_idempotent(p, key_id, &event, command, ctx(now), idempotent(idem, hash))
                .await
        }
    };
    let replayed = |n: u32| StoredResponse {
        status: 201,
        body: format!(r#"{{"deliveries":{n}}}"#).into_bytes(),
    };

    let k = stripe(&unique("evt_idem"));
    let first = run(k.clone(), "i1", b"h1", at(0)).await.unwrap();
    assert!(
        matches!(first, IdempotentOutcome::Applied(ref a) if a.transition.record.deliveries == 1)
    );
    match run(k.clone(), "i1", b"h1", at(5)).await.unwrap() {
        IdempotentOutcome::Replay(response) => assert_eq!(response, replayed(1)),
        other => panic!("expected a replay, got {other:?}"),
    }
    assert!(matches!(
        run(k.clone(), "i1", b"other", at(6)).await.unwrap(),
        IdempotentOutcome::Mismatch
    ));
    let stored = store.event(p, &k).await.unwrap().expect("stored");
    assert_eq!(stored.record.deliveries, 1, "a replay must not run again");

    // Sixteen identical requests at once: one runs, fifteen replay it.
    let k2 = stripe(&unique("evt_idem_race"));
    let tasks: Vec<BoxedTask<'_, StoreResult<IdempotentOutcome>>> = (0..16)
        .map(|_| Box::pin(run(k2.clone(), "race", b"same", at(10))) as BoxedTask<'_, _>)
        .collect();
    let answers = run_in_parallel(tasks);
    let ran = answers
        .iter()
        .filter(|a| matches!(a, Ok(IdempotentOutcome::Applied(_))))
        .count();
    let replays = answers
        .iter()
        .filter(|a| matches!(a, Ok(IdempotentOutcome::Replay(r)) if *r == replayed(1)))
        .count();
    assert_eq!((ran, replays), (1, 15), "{answers:?}");
    assert_eq!(
        store
            .event(p, &k2)
            .await
            .unwrap()
            .unwrap()
            .record
            .deliveries,
        1
    );

    // Sixteen different keys at once: each runs.
    let tasks: Vec<BoxedTask<'_, StoreResult<IdempotentOutcome>>> = (0..16)
        .map(|i| {
            let k = stripe(&unique(&format!("evt_idem_many_{i}")));
            let idem: &'static str = Box::leak(format!("many-{i}").into_boxed_str());
            Box::pin(run(k, idem, b"h", at(11))) as BoxedTask<'_, _>
        })
        .collect();
    for answer in run_in_parallel(tasks) {
        assert!(
            matches!(answer, Ok(IdempotentOutcome::Applied(_))),
            "{answer:?}"
        );
    }

    // A key taken on the begin/complete path and not completed is in flight
    // until its lock passes, then taken over.
    let lock = Duration::from_secs(30);
    assert_eq!(
        store
            .idempotency_begin(p, "mid", b"m", at(20), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Proceed
    );
    let k3 = stripe(&unique("evt_idem_mid"));
    assert!(matches!(
        run(k3.clone(), "mid", b"m", at(21)).await.unwrap(),
        IdempotentOutcome::InFlight
    ));
    assert!(matches!(
        run(k3.clone(), "mid", b"m", at(51)).await.unwrap(),
        IdempotentOutcome::Applied(_)
    ));
    // ... and what it remembered is what the begin/complete path replays.
    assert_eq!(
        store
            .idempotency_begin(p, "mid", b"m", at(52), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Replay {
            status: 201,
            body: replayed(1).body
        }
    );

    // After 24 h the key is new again: the same event gets a second delivery.
    let day = 24 * 3600;
    assert!(matches!(
        run(k.clone(), "i1", b"h1", at(day + 1)).await.unwrap(),
        IdempotentOutcome::Applied(ref a) if a.transition.record.deliveries == 2
    ));

    // A revoked key runs nothing and remembers nothing.
    store.revoke_api_key(p, key_id, at(100)).await.unwrap();
    let k4 = stripe(&unique("evt_idem_revoked"));
    assert!(matches!(
        run(k4.clone(), "rev", b"r", at(101)).await,
        Err(StoreError::KeyRevoked)
    ));
    assert!(store.event(p, &k4).await.unwrap().is_none());
    assert_eq!(
        store
            .idempotency_begin(p, "rev", b"r", at(102), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Proceed,
        "a refused request leaves its key unused"
    );
}
