//! The Store conformance suite on PostgreSQL (a fresh database per test on
//! the server named by `SENDPROMPTLY_TEST_POSTGRES_URL`), plus checks of
//! what only several processes on one database can break: concurrent
//! migrations, sweeps, claims and idempotency keys from separate pools.
//!
//! Without `SENDPROMPTLY_TEST_POSTGRES_URL` every test prints `SKIPPED …`
//! and passes, unless `SENDPROMPTLY_REQUIRE_POSTGRES=1` (CI, and
//! `scripts/test-postgres.sh`), which makes it fail instead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sendpromptly_core::Timestamp;
use sendpromptly_core::machine::{Command, Context, Outcome};
use sendpromptly_core::model::{Actor, EventKey, Provider, Receipt};
use sendpromptly_server::store::postgres::testing::{self, TestDatabase};
use sendpromptly_server::store::postgres::{PoolSettings, PostgresStore};
use sendpromptly_server::store::{IdempotencyBegin, NewProject, Store, StoreError};

async fn fresh(admin_url: String) -> (PostgresStore, TestDatabase) {
    let database = TestDatabase::create(&admin_url).await;
    let store = PostgresStore::connect_with(
        &database.url,
        PoolSettings {
            max_connections: 8,
            min_connections: 0,
            ..PoolSettings::default()
        },
    )
    .await
    .expect("connect to the test database")
    .with_keyring(sendpromptly_server::store::conformance::test_keyring());
    store.migrate().await.expect("migrate");
    (store, database)
}

// `$make` returns from the generated test (a skip) when no server is set.
sendpromptly_server::store_conformance_tests!({
    let Some(url) = testing::server_url("store conformance case") else {
        return;
    };
    fresh(url)
});

/// Another "instance": a second pool on the same database.
async fn instance(database: &TestDatabase) -> PostgresStore {
    PostgresStore::connect_with(
        &database.url,
        PoolSettings {
            max_connections: 4,
            min_connections: 0,
            ..PoolSettings::default()
        },
    )
    .await
    .expect("connect")
    .with_keyring(sendpromptly_server::store::conformance::test_keyring())
}

const T0: Timestamp = Timestamp::from_unix_seconds(1_800_000_000);

async fn project(store: &dyn Store, name: &str) -> String {
    let id = format!("prj_{name}");
    store
        .create_project(NewProject {
            id: id.clone(),
            name: name.to_owned(),
            repair_url: None,
            default_deadline_seconds: 60,
            created_at: T0,
        })
        .await
        .expect("project");
    id
}

fn receipt(event_id: &str, deadline_seconds: u32) -> (EventKey, Command) {
    let key = EventKey {
        provider: Provider::Stripe,
        event_id: event_id.to_owned(),
    };
    let command = Command::Receipt {
        receipt: Receipt {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: event_id.to_owned(),
            event_type: "invoice.paid".to_owned(),
            subject: None,
            effect: None,
            deadline_seconds: Some(deadline_seconds),
            metadata: None,
            occurred_at: None,
        },
        deadline_seconds,
    };
    (key, command)
}

fn ctx(now: Timestamp) -> Context {
    Context {
        now,
        actor: Actor::ApiKey("key_pg".to_owned()),
        new_incident_id: sendpromptly_core::ids::new_id(
            sendpromptly_core::ids::INCIDENT,
            now,
            &mut rand::thread_rng(),
        ),
    }
}

#[tokio::test]
async fn the_sweeper_and_dispatcher_queries_can_use_their_partial_indexes() {
    let Some(url) = testing::server_url("explain") else {
        return;
    };
    let (store, _db) = fresh(url).await;
    let sweep = store.explain_sweep_query().await.unwrap().join("\n");
    assert!(sweep.contains("events_due"), "{sweep}");
    assert!(
        sweep.contains("SKIP LOCKED") || sweep.contains("LockRows"),
        "{sweep}"
    );
    let claim = store.explain_claim_query().await.unwrap().join("\n");
    assert!(claim.contains("deliveries_due"), "{claim}");
}

/// The analytics triggers' bucket function (PL/pgSQL since migration 16)
/// puts every duration where the core's percentile code looks for it.
#[tokio::test]
async fn the_bucket_function_matches_the_core() {
    let Some(url) = testing::server_url("bucket function") else {
        return;
    };
    let (store, _db) = fresh(url).await;
    // Up to 2^43 ms (278 years): the triggers count 35 doublings above 256.
    let mut values: Vec<i64> = vec![-5, 0, 1, 127, 128, 255];
    for k in 8..=42 {
        let p = 1_i64 << k;
        values.extend([p - 1, p, p + 1, p + p / 3]);
    }
    let buckets: Vec<i64> =
        sqlx::query_scalar("SELECT sp_stats_bucket(GREATEST(0, v)) FROM unnest($1::bigint[]) AS v")
            .bind(&values)
            .fetch_all(store.pool())
            .await
            .unwrap();
    for (v, bucket) in values.iter().zip(buckets) {
        assert_eq!(
            bucket,
            sendpromptly_core::stats::bucket_of(*v),
            "duration {v} ms"
        );
    }
}

#[tokio::test]
async fn refuses_a_newer_database_and_reports_an_unreachable_server() {
    let Some(url) = testing::server_url("migrations and errors") else {
        return;
    };
    let (store, db) = fresh(url).await;
    sqlx::query(
        "INSERT INTO _sendpromptly_migrations (version, name, applied_at) \
         VALUES (999, '0999_future', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let again = instance(&db).await;
    let err = again.migrate().await.unwrap_err();
    assert!(
        matches!(err, StoreError::MigrationsNewerThanBinary(_)),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade"), "{err}");

    // Nothing listens on port 1: the error comes at once, not at the first request.
    let started = Instant::now();
    let unreachable = PostgresStore::connect_with(
        "postgres://nobody@127.0.0.1:1/nothing",
        PoolSettings {
            acquire_timeout: Duration::from_secs(5),
            ..PoolSettings::default()
        },
    )
    .await;
    assert!(unreachable.is_err(), "connected to port 1?");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_migrate_once() {
    let Some(url) = testing::server_url("concurrent migrate") else {
        return;
    };
    let db = TestDatabase::create(&url).await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(instance(&db).await);
    }
    let handles: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| tokio::spawn(async move { store.migrate().await }))
        .collect();
    for handle in handles {
        handle.await.unwrap().expect("every instance migrates");
    }
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sendpromptly_migrations")
        .fetch_one(stores[0].pool())
        .await
        .unwrap();
    assert_eq!(
        applied,
        i64::try_from(sendpromptly_server::store::migrations::POSTGRES.len()).unwrap()
    );
}

/// Four "instances" (pools) sweep the same 600 due events at once: each
/// event gets exactly one transition, one incident, one `incident.opened`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sweepers_on_separate_pools_open_one_incident_per_event() {
    let Some(url) = testing::server_url("concurrent sweepers") else {
        return;
    };
    let (store, db) = fresh(url).await;
    let project_id = project(&store, "sweep").await;
    for i in 0..600 {
        let (key, command) = receipt(&format!("evt_{i}"), 1);
        store
            .apply(&project_id, &key, command, ctx(T0))
            .await
            .unwrap();
    }
    let mut sweepers = Vec::new();
    for _ in 0..4 {
        let store = instance(&db).await;
        sweepers.push(tokio::spawn(async move {
            let mut handled = Vec::new();
            loop {
                let report = store.sweep_due(T0.plus_seconds(5), 25).await.unwrap();
                if report.examined == 0 {
                    return handled;
                }
                handled.extend(
                    report
                        .transitions
                        .into_iter()
                        .map(|(_, t)| t.record.event_id),
                );
            }
        }));
    }
    let mut all = Vec::new();
    let mut per_sweeper = Vec::new();
    for sweeper in sweepers {
        let handled = sweeper.await.unwrap();
        per_sweeper.push(handled.len());
        all.extend(handled);
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 600, "per sweeper: {per_sweeper:?}");
    assert_eq!(distinct.len(), 600);
    let incidents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(incidents, 600);
    let opened_twice: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT event_pk FROM timeline WHERE kind = 'incident.opened' \
         GROUP BY event_pk HAVING COUNT(*) > 1) AS twice",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(opened_twice, 0);
}

/// The same new event arriving at several instances at once: one creates
/// it, the others record duplicates; never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_receipts_on_separate_pools() {
    let Some(url) = testing::server_url("concurrent creation") else {
        return;
    };
    let (store, db) = fresh(url).await;
    let project_id = project(&store, "create").await;
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(instance(&db).await);
    }
    for round in 0..20 {
        let event_id = format!("evt_race_{round}");
        let tasks: Vec<_> = instances
            .iter()
            .cloned()
            .chain(std::iter::once(store.clone()))
            .map(|s| {
                let project_id = project_id.clone();
                let (key, command) = receipt(&event_id, 60);
                tokio::spawn(async move { s.apply(&project_id, &key, command, ctx(T0)).await })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap().expect("no error").transition.outcome {
                Outcome::Created => created += 1,
                Outcome::Duplicate => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(created, 1, "round {round}");
    }
}

/// One idempotency key sent to several instances at once: exactly one
/// request proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_proceeds_once_across_pools() {
    let Some(url) = testing::server_url("idempotency across instances") else {
        return;
    };
    let (store, db) = fresh(url).await;
    let project_id = project(&store, "idem").await;
    let mut instances = vec![store.clone()];
    for _ in 0..3 {
        instances.push(instance(&db).await);
    }
    for round in 0..30 {
        let key = format!("key-{round}");
        let tasks: Vec<_> = instances
            .iter()
            .cloned()
            .map(|s| {
                let project_id = project_id.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    s.idempotency_begin(&project_id, &key, b"hash", T0, Duration::from_secs(60))
                        .await
                })
            })
            .collect();
        let mut proceed = 0;
        for task in tasks {
            match task.await.unwrap().expect("no error") {
                IdempotencyBegin::Proceed => proceed += 1,
                IdempotencyBegin::InFlight => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(proceed, 1, "round {round}");
    }
}

#[tokio::test]
async fn plaintext_signing_secrets_are_sealed_at_start_and_a_wrong_key_is_refused() {
    let Some(url) = testing::server_url("secrets at rest") else {
        return;
    };
    let (store, db) = fresh(url).await;
    let project_id = project(&store, "legacy").await;
    // A row written before encryption at rest.
    sqlx::query(
        "INSERT INTO signing_secrets (project_id, secret, created_at, expires_at) \
         VALUES ($1, 'whsec_bGVnYWN5LXBsYWludGV4dA', 0, NULL)",
    )
    .bind(&project_id)
    .execute(store.pool())
    .await
    .unwrap();
    let report = store.reseal_signing_secrets().await.unwrap();
    assert_eq!(report.sealed_plaintext, 1, "{report:?}");
    let raw = store.stored_signing_secrets(&project_id).await.unwrap();
    assert!(
        raw[0].starts_with("spenc1:") && !raw[0].contains("whsec_"),
        "{raw:?}"
    );
    let read = store.signing_secrets(&project_id, T0).await.unwrap();
    assert_eq!(read[0].secret, "whsec_bGVnYWN5LXBsYWludGV4dA");

    // Another instance with a different key: a clear error, never a wrong secret.
    let wrong = instance(&db).await.with_keyring(std::sync::Arc::new(
        sendpromptly_server::secrets::Keyring::new(&[9; 32], &[]),
    ));
    let err = wrong.reseal_signing_secrets().await.unwrap_err();
    assert!(
        err.to_string().contains("neither the current secret key"),
        "{err}"
    );
    assert!(wrong.signing_secrets(&project_id, T0).await.is_err());
    // Rotated: the old key as previous re-encrypts; then the new key alone reads it.
    let rotated = instance(&db).await.with_keyring(std::sync::Arc::new(
        sendpromptly_server::secrets::Keyring::new(
            &[9; 32],
            &[sendpromptly_server::store::conformance::TEST_MASTER_KEY],
        ),
    ));
    assert_eq!(rotated.reseal_signing_secrets().await.unwrap().resealed, 1);
    let read = wrong.signing_secrets(&project_id, T0).await.unwrap();
    assert_eq!(read[0].secret, "whsec_bGVnYWN5LXBsYWludGV4dA");
}

/// A digest's finish and a writer that locks events in row order (as a
/// group commit does) on the same two events: the finish locks them in row
/// order too, so it waits and then records the attempt; it is never
/// aborted as a deadlock (which left the sent alert unrecorded, to be sent
/// again after its lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_digest_finish_and_a_row_order_writer_do_not_deadlock() {
    use sendpromptly_core::machine::AttemptReport;
    use sendpromptly_core::model::{ResultSignal, ResultStatus};
    use sendpromptly_core::retry::NextStep;
    use sendpromptly_server::store::{ProjectPatch, alert_attempt_entry};

    let Some(url) = testing::server_url("digest finish lock order") else {
        return;
    };
    let (store, database) = fresh(url).await;
    let project = project(&store, "digest_locks").await;
    store
        .update_project(
            &project,
            ProjectPatch {
                alert_channels: Some(serde_json::json!([
                    {"type": "webhook", "url": "https://hooks.example/a"}
                ])),
                ..ProjectPatch::default()
            },
        )
        .await
        .expect("channels");
    // Events 1, 2, 3 in row order; their failures in the order 3, 2, 1, so
    // the digest (2 and 1, oldest first) lists its incidents against row order.
    let keys: Vec<EventKey> = (1..=3)
        .map(|i| receipt(&format!("evt_lock_{i}"), 3600).0)
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let (_, command) = receipt(&key.event_id, 3600);
        store
            .apply(&project, key, command, ctx(T0.plus_seconds(i as i64)))
            .await
            .expect("receipt");
    }
    for (i, key) in keys.iter().rev().enumerate() {
        let failure = Command::Result(ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: key.event_id.clone(),
            status: ResultStatus::Failure,
            error: Some("boom".to_owned()),
            reprocess_id: None,
            metadata: None,
        });
        store
            .apply(&project, key, failure, ctx(T0.plus_seconds(10 + i as i64)))
            .await
            .expect("failure");
    }
    let first = store
        .claim_alerts(T0.plus_seconds(20), Duration::from_secs(60), 10, 300)
        .await
        .expect("claim");
    assert_eq!(
        first.len(),
        1,
        "the first goes at once, the others are held"
    );
    let report = AttemptReport {
        trace: None,
        status: Some(200),
        latency_ms: 3,
        response_excerpt: None,
        error: None,
    };
    let single = &first[0];
    let entry = alert_attempt_entry(single, &report, NextStep::Done, T0.plus_seconds(21));
    assert!(
        store
            .finish_alert_attempt(single, &entry, NextStep::Done, T0.plus_seconds(21))
            .await
            .expect("finish the single")
    );
    let at_flush = T0.plus_seconds(400);
    let digest = store
        .claim_alerts(at_flush, Duration::from_secs(60), 10, 300)
        .await
        .expect("claim the digest");
    assert_eq!(digest.len(), 1);
    let digest = &digest[0];
    assert_eq!(digest.incidents.len(), 2);

    // Another writer locks event 1 (lower row) and, once the finish has
    // started, event 2: the order a group commit takes them in.
    let pool = sqlx::PgPool::connect(&database.url).await.expect("pool");
    let mut writer = pool.begin().await.expect("begin");
    let lock = "SELECT pk FROM events WHERE project_id = $1 AND event_id = $2 FOR NO KEY UPDATE";
    sqlx::query(lock)
        .bind(&project)
        .bind("evt_lock_1")
        .execute(&mut *writer)
        .await
        .expect("lock event 1");
    let entry = alert_attempt_entry(digest, &report, NextStep::Done, at_flush);
    let finishing = {
        let store = store.clone();
        let digest = digest.clone();
        tokio::spawn(async move {
            store
                .finish_alert_attempt(&digest, &entry, NextStep::Done, at_flush)
                .await
        })
    };
    // Once the finish waits for a lock (on event 1 in row order; before the
    // fix, on event 1 after taking event 2), take event 2.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the finish never waited for event 1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = sqlx::query(lock)
        .bind(&project)
        .bind("evt_lock_2")
        .execute(&mut *writer)
        .await;
    let writer_result = match second {
        Ok(_) => writer.commit().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let finished = finishing.await.expect("finish task");
    assert!(
        matches!(finished, Ok(true)),
        "the digest's attempt is recorded: {finished:?}"
    );
    assert!(
        writer_result.is_ok(),
        "the writer commits: {writer_result:?}"
    );
    assert_eq!(store.pending_alerts().await.expect("count"), 0);
    let attempts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM timeline WHERE kind = 'alert.attempt'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(
        attempts, 3,
        "one single and two digest attempts on the timelines"
    );
}

/// Overlapping groups on three instances: each submits a receipt for the
/// same 200 new events at once, in its own order, so every instance's
/// group writer runs groups that create events another instance's groups
/// create too. Each event is created once and recorded as a duplicate
/// twice, its timeline chains, and no group falls back to one transaction
/// per command (a conflicting creation used to roll the whole group back).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_groups_creating_the_same_events_never_fall_back() {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    use sendpromptly_server::service::chain::verify_chain;
    use sendpromptly_server::store::ChainScope;

    const EVENTS: usize = 200;
    const ROUNDS: usize = 5;
    let Some(url) = testing::server_url("overlapping groups") else {
        return;
    };
    let (store, db) = fresh(url).await;
    let project_id = project(&store, "overlap").await;
    let writers = [store.clone(), instance(&db).await, instance(&db).await];
    let mut rng = rand::rngs::StdRng::seed_from_u64(26);
    for round in 0..ROUNDS {
        let ids: Vec<String> = (0..EVENTS)
            .map(|n| format!("evt_overlap_{round}_{n}"))
            .collect();
        let mut tasks = Vec::new();
        for (w, writer) in writers.iter().enumerate() {
            let mut order = ids.clone();
            order.shuffle(&mut rng);
            for event_id in order {
                let (writer, project_id) = (writer.clone(), project_id.clone());
                let (key, command) = receipt(&event_id, 3600);
                let now = T0.plus_seconds((round * 3 + w) as i64);
                tasks.push(tokio::spawn(async move {
                    let applied = writer.apply(&project_id, &key, command, ctx(now)).await;
                    (event_id, applied)
                }));
            }
        }
        let mut created: std::collections::HashMap<String, (usize, usize)> = Default::default();
        for task in tasks {
            let (event_id, applied) = task.await.unwrap();
            let outcome = applied
                .unwrap_or_else(|e| panic!("{event_id}: {e}"))
                .transition
                .outcome;
            let seen = created.entry(event_id.clone()).or_default();
            match outcome {
                Outcome::Created => seen.0 += 1,
                Outcome::Duplicate => seen.1 += 1,
                other => panic!("{event_id}: {other:?}"),
            }
        }
        assert_eq!(created.len(), EVENTS);
        for (event_id, counts) in &created {
            assert_eq!(*counts, (1, 2), "{event_id}: (created, duplicates)");
        }
    }
    // Each event once, delivered three times, its timeline one receipt and
    // two duplicates that chain.
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (provider, event_id)) FROM events WHERE project_id = $1",
    )
    .bind(&project_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct),
        ((EVENTS * ROUNDS) as i64, (EVENTS * ROUNDS) as i64)
    );
    let page = store
        .timeline_chains(ChainScope::Project(&project_id), 0, 1000)
        .await
        .unwrap();
    assert_eq!(page.events.len(), EVENTS * ROUNDS);
    for event in &page.events {
        let verdict = verify_chain(event, page.unchained_through, None);
        assert!(verdict.intact(), "{}: {verdict:?}", event.event_id);
        let kinds: Vec<&str> = event.entries.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "receipt.duplicate").count(),
            2,
            "{}: {kinds:?}",
            event.event_id
        );
        let key = receipt(&event.event_id, 3600).0;
        let stored = store.event(&project_id, &key).await.unwrap().unwrap();
        assert_eq!(stored.record.deliveries, 3, "{}", event.event_id);
    }
    let stats: Vec<_> = writers.iter().map(|w| w.group_commit_stats()).collect();
    println!("group commit per instance: {stats:?}");
    let commands: u64 = stats.iter().map(|s| s.commands).sum();
    assert_eq!(commands, (EVENTS * ROUNDS * writers.len()) as u64);
    let fallbacks: u64 = stats.iter().map(|s| s.fallbacks).sum();
    assert_eq!(fallbacks, 0, "groups fell back one by one: {stats:?}");
}

/// Issue #26: the analytics rollups cannot deadlock. Three stores (three
/// "instances", each with its own pool and group writer) on one database
/// apply groups of receipts and successes of four event types, each store
/// its own events in its own shuffled order, many rounds, while two of them
/// fold the rollup deltas concurrently. Before, the triggers upserted the
/// rollup rows in whatever order a group's rows came, so two groups bumping
/// two types in opposite orders deadlocked (an apply failed, or its group
/// fell back one by one). PostgreSQL counts no deadlock, no apply fails, no
/// group falls back, and the counts are exact before and after the deltas
/// are folded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_of_mixed_event_types_on_three_instances_never_deadlock_on_the_rollups() {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    use sendpromptly_core::model::{ResultSignal, ResultStatus};
    use sendpromptly_core::wire::SloObjective;
    use std::collections::BTreeMap;

    const TYPES: [&str; 4] = [
        "invoice.paid",
        "customer.created",
        "charge.refunded",
        "payment_intent.succeeded",
    ];
    const PER_WRITER: usize = 120;
    const ROUNDS: usize = 8;
    let Some(url) = testing::server_url("rollups without deadlocks") else {
        return;
    };
    let (store, db) = fresh(url).await;
    let project_id = project(&store, "rollups").await;
    // An SLO on two of the types, so successes count as good slots too.
    let slo = |t: &str| SloObjective {
        event_type: t.to_owned(),
        objective_percent: 99.0,
        threshold_seconds: 3600,
        window_days: 30,
    };
    store
        .put_slo_objectives(&project_id, &[slo(TYPES[0]), slo(TYPES[2])])
        .await
        .expect("slo objectives");
    let writers = [store.clone(), instance(&db).await, instance(&db).await];
    let deadlocks = || async {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        n
    };
    let deadlocks_before = deadlocks().await;
    let typed = |event_id: &str, event_type: &str| {
        let (key, mut command) = receipt(event_id, 3600);
        if let Command::Receipt { receipt, .. } = &mut command {
            receipt.event_type = event_type.to_owned();
        }
        (key, command)
    };
    let success = |event_id: &str| {
        Command::Result(ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: event_id.to_owned(),
            status: ResultStatus::Success,
            error: None,
            reprocess_id: None,
            metadata: None,
        })
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(2626);
    let mut failed = Vec::new();
    // Each round: every writer's new receipts and the successes of its
    // previous round's events, shuffled together, submitted at once.
    for round in 0..=ROUNDS {
        let mut tasks = Vec::new();
        for (w, writer) in writers.iter().enumerate() {
            let mut commands = Vec::new();
            for n in 0..PER_WRITER {
                let event_type = TYPES[(n + w) % TYPES.len()];
                if round < ROUNDS {
                    let event_id = format!("evt_rollup_{round}_{w}_{n}");
                    commands.push(typed(&event_id, event_type));
                }
                if round > 0 {
                    let event_id = format!("evt_rollup_{}_{w}_{n}", round - 1);
                    let key = receipt(&event_id, 3600).0;
                    commands.push((key, success(&event_id)));
                }
            }
            commands.shuffle(&mut rng);
            let now = T0.plus_seconds((round * 5 + w) as i64);
            for (key, command) in commands {
                let (writer, project_id) = (writer.clone(), project_id.clone());
                tasks.push(tokio::spawn(async move {
                    let applied = writer.apply(&project_id, &key, command, ctx(now)).await;
                    applied.err().map(|e| format!("{}: {e}", key.event_id))
                }));
            }
        }
        // Two instances fold while the groups run.
        let folds: Vec<_> = writers[..2]
            .iter()
            .map(|w| {
                let w = w.clone();
                tokio::spawn(async move { w.fold_rollups(500).await.expect("fold") })
            })
            .collect();
        for task in tasks {
            failed.extend(task.await.unwrap());
        }
        for fold in folds {
            fold.await.unwrap();
        }
    }

    let stats: Vec<_> = writers.iter().map(|w| w.group_commit_stats()).collect();
    println!("group commit per instance: {stats:?}");
    let fallbacks: u64 = stats.iter().map(|s| s.fallbacks).sum();
    // A backend's statistics reach pg_stat_database when it goes idle or
    // exits: close the other instances' pools first.
    for writer in &writers[1..] {
        writer.close().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(store.pool())
        .await;
    let grew = deadlocks().await - deadlocks_before;
    println!(
        "deadlocks detected by PostgreSQL: {grew}; fallbacks: {fallbacks}; failed applies: {}",
        failed.len()
    );
    assert!(failed.is_empty(), "applies failed: {failed:?}");
    assert_eq!(grew, 0, "PostgreSQL detected deadlocks");
    assert_eq!(fallbacks, 0, "groups fell back one by one: {stats:?}");

    let events = ROUNDS * PER_WRITER * writers.len();
    let per_type = (events / TYPES.len()) as u64;
    let day = T0.unix_millis() - T0.unix_millis() % 86_400_000;
    let (from, to) = (
        Timestamp::from_unix_millis(day),
        Timestamp::from_unix_millis(day + 86_400_000),
    );
    let check = |when: &'static str| {
        let (store, project_id) = (store.clone(), project_id.clone());
        async move {
            let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
            for row in store
                .stats_rows(&project_id, from, to, None)
                .await
                .expect("stats rows")
            {
                *counts.entry((row.metric, row.event_type)).or_default() += row.n;
            }
            let mut expected = BTreeMap::new();
            for t in TYPES {
                expected.insert(("received".to_owned(), t.to_owned()), per_type);
                expected.insert(("tte".to_owned(), t.to_owned()), per_type);
            }
            assert_eq!(counts, expected, "{when}: stats counts");
            for (i, t) in TYPES.iter().enumerate() {
                let counted = store
                    .slo_counts(&project_id, t, from, to)
                    .await
                    .expect("slo counts");
                let good = if i % 2 == 0 { per_type } else { 0 };
                assert_eq!(counted, (per_type, good), "{when}: slo counts of {t}");
            }
        }
    };
    check("before the last folds").await;
    let unfolded = || async {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM stats_delta) + (SELECT count(*) FROM slo_delta)",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        n
    };
    // A fold that dies after moving deltas, before its commit, moves
    // nothing (this test is the only caller of the fold in this binary).
    let before = unfolded().await;
    assert!(before > 0, "deltas left to fold");
    fail::cfg("rollups.mid_fold", "return").unwrap();
    let died = store.fold_rollups(1_000_000).await;
    fail::remove("rollups.mid_fold");
    assert!(died.is_err(), "the failpoint fails the fold: {died:?}");
    assert_eq!(unfolded().await, before, "a fold that died moved nothing");
    check("after a fold that died").await;
    // The dead fold's connection may still hold the fold lock for a moment
    // (its session ends when the pool closes it): wait for it, then fold all.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fold = store.fold_rollups(500).await.expect("fold");
        if fold.elsewhere {
            assert!(
                std::time::Instant::now() < deadline,
                "the fold lock stays held"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else if fold.folded == 0 {
            break;
        }
    }
    assert_eq!(unfolded().await, 0, "every delta folded");
    check("after folding").await;
}

/// The statement triggers of migration 17 count what SQLite's row triggers
/// count: the same commands, applied concurrently so that PostgreSQL's
/// groups insert and update many events per statement (several on one
/// rollup key, two event types), give the same histogram rows and SLO
/// counts on both backends: receipts with and without `occurred_at` (lag),
/// successes within and past the SLO threshold, a failure then a success,
/// a result before its receipt (the receipt's update counts it received
/// and succeeded), receipts without a result, duplicates that count nothing.
#[tokio::test]
async fn the_statement_triggers_count_what_the_row_triggers_count() {
    use sendpromptly_core::model::{ResultSignal, ResultStatus};
    use sendpromptly_core::wire::SloObjective;
    use sendpromptly_server::store::StatsRow;
    use sendpromptly_server::store::sqlite::SqliteStore;
    use std::collections::BTreeMap;

    const EVENTS: usize = 96;
    const TYPES: [&str; 2] = ["invoice.paid", "checkout.session.completed"];
    let Some(url) = testing::server_url("statement triggers") else {
        return;
    };
    let (postgres, _db) = fresh(url).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("sqlite")
        .with_keyring(sendpromptly_server::store::conformance::test_keyring());
    sqlite.migrate().await.expect("migrate sqlite");

    let event_type = |i: usize| TYPES[i % 3 % 2];
    let typed_receipt = |i: usize| {
        let (key, mut command) = receipt(&format!("evt_stmt_{i}"), 3600);
        if let Command::Receipt { receipt, .. } = &mut command {
            receipt.event_type = event_type(i).to_owned();
            // Every other event says when the provider created it.
            receipt.occurred_at = i
                .is_multiple_of(2)
                .then(|| T0.plus_seconds(-(i as i64) * 7));
        }
        (key, command)
    };
    let result = |i: usize, status: ResultStatus| {
        let event_id = format!("evt_stmt_{i}");
        let key = receipt(&event_id, 3600).0;
        let command = Command::Result(ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id,
            status,
            error: (status == ResultStatus::Failure).then(|| "tenant not found".to_owned()),
            reprocess_id: None,
            metadata: None,
        });
        (key, command)
    };
    // Three waves, each submitted at once: (event, command, seconds after T0).
    let mut waves: Vec<Vec<(EventKey, Command, i64)>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for i in 0..EVENTS {
        let t = (i % 7) as i64;
        let (key, first) = typed_receipt(i);
        match i % 4 {
            // Receipt, then success after 10·i s: within 300 s or past it.
            0 => {
                waves[0].push((key.clone(), first.clone(), t));
                let (k, success) = result(i, ResultStatus::Success);
                waves[1].push((k.clone(), success.clone(), t + 10 * i as i64));
                // A duplicate success counts nothing.
                waves[2].push((k, success, t + 10 * i as i64 + 1));
            }
            // Receipt, failure, then success.
            1 => {
                waves[0].push((key, first, t));
                let (k, failure) = result(i, ResultStatus::Failure);
                waves[1].push((k, failure, t + 20));
                let (k, success) = result(i, ResultStatus::Success);
                waves[2].push((k, success, t + 40 + i as i64));
            }
            // The result before its receipt.
            2 => {
                let (k, success) = result(i, ResultStatus::Success);
                waves[0].push((k, success, t));
                waves[1].push((key, first, t + 5));
            }
            // A receipt and nothing else.
            _ => waves[0].push((key, first, t)),
        }
    }
    let stores: [(&str, std::sync::Arc<dyn Store>); 2] = [
        ("sqlite", std::sync::Arc::new(sqlite)),
        ("postgres", std::sync::Arc::new(postgres.clone())),
    ];
    let mut counted = Vec::new();
    for (name, store) in &stores {
        let project_id = project(store.as_ref(), "triggers").await;
        store
            .put_slo_objectives(
                &project_id,
                &[SloObjective {
                    event_type: TYPES[0].to_owned(),
                    objective_percent: 99.0,
                    threshold_seconds: 300,
                    window_days: 30,
                }],
            )
            .await
            .expect("slo");
        for wave in &waves {
            let tasks: Vec<_> = wave
                .iter()
                .cloned()
                .map(|(key, command, seconds)| {
                    let (store, project_id) = (store.clone(), project_id.clone());
                    tokio::spawn(async move {
                        store
                            .apply(&project_id, &key, command, ctx(T0.plus_seconds(seconds)))
                            .await
                            .map_err(|e| format!("{}: {e}", key.event_id))
                    })
                })
                .collect();
            for task in tasks {
                task.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        let (from, to) = (T0.plus_seconds(-2 * 86_400), T0.plus_seconds(2 * 86_400));
        let mut rows: BTreeMap<(String, i64, String, i64), u64> = BTreeMap::new();
        for StatsRow {
            metric,
            day,
            event_type,
            bucket,
            n,
        } in store.stats_rows(&project_id, from, to, None).await.unwrap()
        {
            *rows.entry((metric, day, event_type, bucket)).or_default() += n;
        }
        let mut slo = Vec::new();
        for t in TYPES {
            slo.push(store.slo_counts(&project_id, t, from, to).await.unwrap());
        }
        counted.push((rows, slo));
    }
    let total = |rows: &BTreeMap<(String, i64, String, i64), u64>, metric: &str| -> u64 {
        rows.iter()
            .filter(|((m, ..), _)| m == metric)
            .map(|(_, n)| n)
            .sum()
    };
    let (sqlite_rows, sqlite_slo) = &counted[0];
    // The reference itself counts what the workload holds.
    assert_eq!(total(sqlite_rows, "received"), EVENTS as u64);
    assert_eq!(total(sqlite_rows, "lag"), EVENTS as u64 / 2);
    assert_eq!(total(sqlite_rows, "tte"), 3 * EVENTS as u64 / 4);
    assert!(
        sqlite_slo[0].1 > 0 && sqlite_slo[0].1 < sqlite_slo[0].0,
        "{sqlite_slo:?}"
    );
    assert_eq!(sqlite_slo[1].1, 0, "no SLO on {}: {sqlite_slo:?}", TYPES[1]);
    let (postgres_rows, postgres_slo) = &counted[1];
    assert_eq!(
        postgres_rows, sqlite_rows,
        "histogram rows: postgres vs sqlite"
    );
    assert_eq!(
        postgres_slo, sqlite_slo,
        "SLO (received, good): postgres vs sqlite"
    );
    let stats = postgres.group_commit_stats();
    assert!(
        stats.commands > stats.transactions,
        "the groups held several commands each: {stats:?}"
    );
}

/// The group writer keeps the connection a group committed on for the next
/// group, without the pool's ping. When the server has closed it meanwhile
/// (a restart, a fail-over, an administrator's `pg_terminate_backend`), the
/// next group's `BEGIN` fails, nothing having been sent, and is retried on
/// a connection from the pool: no signal fails for it.
#[tokio::test]
async fn a_kept_connection_the_server_closed_fails_no_signal() {
    let Some(url) = testing::server_url("kept connection closed") else {
        return;
    };
    let (store, db) = fresh(url).await;
    let project_id = project(&store, "kept").await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("admin connection");
    for round in 0..5 {
        let (key, command) = receipt(&format!("evt_kept_{round}_a"), 60);
        store
            .apply(&project_id, &key, command, ctx(T0))
            .await
            .expect("a group commits (and its connection is kept)");
        // Every connection of the store is closed by the server.
        let store_connections = "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'sendpromptly'";
        let pids: Vec<i32> = sqlx::query_scalar(store_connections)
            .fetch_all(&mut admin)
            .await
            .expect("the store's connections");
        assert!(
            !pids.is_empty(),
            "round {round}: the kept connection is open"
        );
        for pid in pids {
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(&mut admin)
                .await
                .expect("terminate");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let open: Vec<i32> = sqlx::query_scalar(store_connections)
                .fetch_all(&mut admin)
                .await
                .expect("the store's connections");
            if open.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: {open:?} still open"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (key, command) = receipt(&format!("evt_kept_{round}_b"), 60);
        let applied = store
            .apply(&project_id, &key, command, ctx(T0))
            .await
            .unwrap_or_else(|e| panic!("round {round}: the next signal failed: {e}"));
        assert!(matches!(applied.transition.outcome, Outcome::Created));
    }
    // Closing the store waits for every connection to come back to the
    // pool, the kept one included.
    tokio::time::timeout(Duration::from_secs(10), store.close())
        .await
        .expect("close hands the kept connection back");
}

/// A group's lookups by key read about one row of `events` per lookup,
/// at any size of the table, as PostgreSQL counts them
/// (`pg_stat_user_tables`, flushed when the store's connections close):
/// groups on a table growing from empty to a few thousand events, then
/// successes (row updates) and new receipts on the grown table. `main`
/// reads ~12 rows per signal here (the scans of the nearly empty table
/// included). A plan that reads the whole table for every group fails it:
/// the group's statements prepared once under `SET LOCAL enable_seqscan =
/// off` (a full index scan on the wrong side of a join) read ~1,400 per
/// signal (`docs/benchmarks.md`, "PostgreSQL: fewer round trips per
/// group"). It does not reproduce the fourth session's generic-plan scans
/// (prepared statements without that setting also read ~12 here).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_read_about_one_row_per_lookup_as_the_events_table_grows() {
    use sendpromptly_core::model::{ResultSignal, ResultStatus};
    const GROWTH: usize = 3000;
    let Some(url) = testing::server_url("groups read one row per lookup") else {
        return;
    };
    let (setup, db) = fresh(url).await;
    let project_id = project(&setup, "scan").await;
    let admin = sqlx::PgPool::connect(&db.url).await.expect("admin pool");
    // Every counter of the store's connections so far is flushed when they
    // close: (sequential scans, rows read by scans and index scans).
    let closed_and_counted = |store: PostgresStore| {
        let admin = admin.clone();
        async move {
            store.close().await;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let open: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND application_name = 'sendpromptly'",
                )
                .fetch_one(&admin)
                .await
                .expect("the store's connections");
                if open == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    // Seen once in CI (under load): one backend still listed
                    // 10 s after the close. Its counters are not flushed
                    // yet, so the counts below may be low; go on.
                    eprintln!("{open} connection(s) of the closed store still listed");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let counts: (i64, i64) = sqlx::query_as(
                "SELECT seq_scan, seq_tup_read + COALESCE(idx_tup_fetch, 0) \
                 FROM pg_stat_user_tables WHERE relname = 'events'",
            )
            .fetch_one(&admin)
            .await
            .expect("scans of events");
            counts
        }
    };
    let before = closed_and_counted(setup).await;

    let store = instance(&db).await;
    // A near-empty table: the first calls (custom plans, then the generic
    // plan kept for the connection) are planned here.
    for n in 0..12 {
        let (key, command) = receipt(&format!("evt_scan_first_{n}"), 3600);
        store
            .apply(&project_id, &key, command, ctx(T0))
            .await
            .expect("receipt");
    }
    // The table grows, in groups (concurrent applies).
    let mut tasks = Vec::new();
    for n in 0..GROWTH {
        let (store, project_id) = (store.clone(), project_id.clone());
        tasks.push(tokio::spawn(async move {
            let (key, command) = receipt(&format!("evt_scan_grow_{n}"), 3600);
            store.apply(&project_id, &key, command, ctx(T0)).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("receipt while growing");
    }
    // Groups on the grown table: successes for stored events, new receipts.
    let mut tasks = Vec::new();
    for n in 0..400 {
        let (store, project_id) = (store.clone(), project_id.clone());
        tasks.push(tokio::spawn(async move {
            if n % 2 == 1 {
                let (key, command) = receipt(&format!("evt_scan_late_{n}"), 3600);
                return store.apply(&project_id, &key, command, ctx(T0)).await;
            }
            // A success for a stored event: its row is updated.
            let (key, _) = receipt(&format!("evt_scan_grow_{n}"), 3600);
            let success = Command::Result(ResultSignal {
                traceparent: None,
                tracestate: None,
                provider: Provider::Stripe,
                event_id: key.event_id.clone(),
                status: ResultStatus::Success,
                error: None,
                reprocess_id: None,
                metadata: None,
            });
            store
                .apply(&project_id, &key, success, ctx(T0.plus_seconds(5)))
                .await
        }));
    }
    for task in tasks {
        task.await
            .expect("task")
            .expect("receipt on the grown table");
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&admin)
        .await
        .expect("count");
    assert_eq!(events, (12 + GROWTH + 200) as i64);
    let after = closed_and_counted(store).await;
    let applies = (12 + GROWTH + 400) as i64;
    let rows_read = after.1 - before.1;
    assert!(
        rows_read <= 50 * applies,
        "groups read {rows_read} rows of events for {applies} signals ({} sequential scans)",
        after.0 - before.0
    );
}
