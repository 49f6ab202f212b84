//! The Stripe reconciler against a local Stripe API (`FakeStripe`, real
//! HTTP on loopback): pages, the `created` window and its overlap,
//! `types[]`, 429 with `Retry-After`, a refused key stored and shown in
//! `/metrics` without stopping the loop, a watermark that survives a
//! restart, an interrupted pass that resumes, and two instances on one
//! PostgreSQL database whose leases keep passes apart while every event is
//! fed.
//!
//! The events go to a recording sink, idempotent by event id like the
//! expected-events service it stands for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sendpromptly_core::Timestamp;
use sendpromptly_core::provider_event::EventReference;
use sendpromptly_server::reconcile::stripe_api::{EventsClient, RetryPolicy};
use sendpromptly_server::reconcile::{
    ExpectedSink, PassOutcome, PassReport, ReconcileError, ReconcileSettings, Reconciler,
    RestrictedKeys, SinkError, SinkOutcome, StripeAccess, default_tracked_types,
};
use sendpromptly_server::store::sqlite::SqliteStore;
use sendpromptly_server::store::{NewProject, Store};
use sendpromptly_server::testing::stripe_api::{FakeStripe, checkout_completed, event};
use serde_json::json;

const KEY: &str = "rk_test_reconciler_key_0001";
/// The tests' "now": 2027-01-15T08:00:00Z.
const NOW: i64 = 1_800_000_000;

/// What the sink saw: per event id, how often it was fed, and the order.
#[derive(Default)]
struct RecordingSink {
    fed: Mutex<BTreeMap<String, u32>>,
    references: Mutex<Vec<EventReference>>,
    /// Fail on the n-th call (1-based), once.
    fail_at: Mutex<Option<usize>>,
    calls: Mutex<usize>,
}

#[async_trait]
impl ExpectedSink for RecordingSink {
    async fn record(
        &self,
        _project_id: &str,
        reference: &EventReference,
    ) -> Result<SinkOutcome, SinkError> {
        {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            let mut fail_at = self.fail_at.lock().unwrap();
            if *fail_at == Some(*calls) {
                *fail_at = None;
                return Err(SinkError("the database is away".to_owned()));
            }
        }
        self.references.lock().unwrap().push(reference.clone());
        let mut fed = self.fed.lock().unwrap();
        let count = fed.entry(reference.event_id.clone()).or_insert(0);
        *count += 1;
        Ok(if *count == 1 {
            SinkOutcome::Recorded
        } else {
            SinkOutcome::AlreadyKnown
        })
    }
}

impl RecordingSink {
    fn fed(&self) -> BTreeMap<String, u32> {
        self.fed.lock().unwrap().clone()
    }
}

struct OneKey;

#[async_trait]
impl RestrictedKeys for OneKey {
    async fn stripe_access(&self, _project_id: &str) -> Result<Option<StripeAccess>, SinkError> {
        Ok(Some(access()))
    }
}

fn access() -> StripeAccess {
    StripeAccess {
        key: KEY.to_owned(),
        types: default_tracked_types(),
    }
}

fn settings() -> ReconcileSettings {
    ReconcileSettings {
        interval: Duration::from_millis(200),
        ..ReconcileSettings::default()
    }
}

fn reconciler(stripe: &FakeStripe, sink: Arc<RecordingSink>, owner: &str) -> Reconciler {
    Reconciler {
        client: EventsClient::new(&stripe.url(), Duration::from_secs(10))
            .unwrap()
            .with_retry(RetryPolicy {
                max_retries: 3,
                initial_backoff: Duration::from_millis(50),
                max_wait: Duration::from_secs(5),
            }),
        sink,
        keys: Arc::new(OneKey),
        settings: settings(),
        owner: owner.to_owned(),
    }
}

async fn open_sqlite(url: &str) -> SqliteStore {
    let store = SqliteStore::connect(url)
        .await
        .expect("connect")
        .with_keyring(sendpromptly_server::store::conformance::test_keyring());
    store.migrate().await.expect("migrate");
    store
}

async fn project(store: &dyn Store) -> String {
    let id = sendpromptly_core::ids::new_id(
        sendpromptly_core::ids::PROJECT,
        Timestamp::from_unix_seconds(NOW),
        &mut rand::thread_rng(),
    );
    store
        .create_project(NewProject {
            id: id.clone(),
            name: format!("reconcile-{id}"),
            repair_url: None,
            default_deadline_seconds: 1800,
            created_at: Timestamp::from_unix_seconds(NOW),
        })
        .await
        .expect("create project");
    id
}

fn at(seconds: i64) -> impl Fn() -> Timestamp + Send + Sync {
    move || Timestamp::from_unix_seconds(seconds)
}

async fn pass_at(
    reconciler: &Reconciler,
    store: &dyn Store,
    project_id: &str,
    now: i64,
) -> Result<PassReport, ReconcileError> {
    match reconciler
        .pass(store, &at(now), project_id, &access(), || {})
        .await?
    {
        PassOutcome::Ran(report) => Ok(report),
        PassOutcome::LeaseBusy => panic!("the lease is free"),
    }
}

fn tracked(i: usize) -> String {
    let types = default_tracked_types();
    types[i % types.len()].clone()
}

fn object_for(id: &str) -> serde_json::Value {
    json!({"id": format!("obj_{id}"), "object": "invoice", "customer": "cus_1", "amount_due": 500, "currency": "usd"})
}

/// 250 tracked events in the first pass's window come in three pages of
/// at most 100, each request carrying the window, `types[]` and the
/// previous page's last id; untracked types and events outside the window
/// are not fed; each event is fed once, parsed by the core's parser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_window_and_types() {
    let stripe = FakeStripe::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_sqlite(&format!("sqlite://{}", dir.path().join("r.db").display())).await;
    let project_id = project(&store).await;
    let lookback = settings().first_lookback.as_secs() as i64;
    let mut expected = Vec::new();
    for i in 0..250 {
        let id = format!("evt_in_{i:03}");
        // Several events share a `created` second; ids are not ordered by time.
        let created = NOW - 10 - (i as i64 / 3) * 60;
        stripe.add([event(&id, &tracked(i), created, object_for(&id))]);
        expected.push(id);
    }
    stripe.add([checkout_completed(
        "evt_paid_direct",
        NOW - 5,
        "cus_9",
        4200,
    )]);
    expected.push("evt_paid_direct".to_owned());
    for i in 0..30 {
        let id = format!("evt_untracked_{i}");
        stripe.add([event(
            &id,
            "customer.created",
            NOW - 100 - i,
            json!({"id": "cus_x", "object": "customer"}),
        )]);
    }
    stripe.add([event(
        "evt_too_old",
        "invoice.paid",
        NOW - lookback - 1,
        object_for("old"),
    )]);
    stripe.add([event(
        "evt_future",
        "invoice.paid",
        NOW + 1,
        object_for("future"),
    )]);

    let sink = Arc::new(RecordingSink::default());
    let reconciler = reconciler(&stripe, sink.clone(), "one");
    let report = pass_at(&reconciler, &store, &project_id, NOW)
        .await
        .unwrap();
    assert_eq!(report.fed, 251);
    assert_eq!(report.recorded, 251);
    assert_eq!(report.pages, 3);
    assert_eq!(report.window, (NOW - lookback, NOW));
    assert_eq!(report.watermark, Some(NOW - 5));

    let fed = sink.fed();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(fed.keys().cloned().collect::<Vec<_>>(), want);
    assert!(fed.values().all(|n| *n == 1), "each event fed once");
    let paid = sink
        .references
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.event_id == "evt_paid_direct")
        .cloned()
        .unwrap();
    assert_eq!(paid.event_type, "checkout.session.completed");
    assert_eq!(paid.subject.as_deref(), Some("cus_9"));
    assert_eq!(paid.object_id.as_deref(), Some("cs_evt_paid_direct"));
    assert_eq!(paid.amount, Some(4200));
    assert_eq!(paid.currency.as_deref(), Some("USD"));
    assert_eq!(
        paid.occurred_at,
        Some(Timestamp::from_unix_seconds(NOW - 5))
    );

    let requests = stripe.requests();
    assert_eq!(requests.len(), 3);
    let mut previous_last: Option<String> = None;
    let mut seen = 0;
    for request in &requests {
        assert_eq!(request.status, 200);
        assert_eq!(
            request.authorization.as_deref(),
            Some(&*format!("Bearer {KEY}"))
        );
        assert_eq!(request.param("limit"), Some("100"));
        assert_eq!(
            request.param("created[gte]"),
            Some(&*(NOW - lookback).to_string())
        );
        assert_eq!(request.param("created[lte]"), Some(&*NOW.to_string()));
        assert_eq!(request.params("types[]"), default_tracked_types());
        assert_eq!(request.param("starting_after"), previous_last.as_deref());
        let refs = sink.references.lock().unwrap();
        seen += if seen + 100 <= refs.len() {
            100
        } else {
            refs.len() - seen
        };
        previous_last = Some(refs[seen - 1].event_id.clone());
    }
    let state = store.reconcile_state(&project_id).await.unwrap().unwrap();
    assert_eq!(state.watermark, Some(NOW - 5));
    assert_eq!(state.pass, None);
    assert_eq!(state.lease_owner, None, "the lease is freed");
    assert_eq!(state.events_fed, 251);
    assert_eq!(
        state.last_success_at,
        Some(Timestamp::from_unix_seconds(NOW))
    );
}

/// The watermark is persisted: a new store on the same SQLite file lists
/// from the watermark minus the overlap, so it re-feeds only the events
/// inside the overlap (harmless: already known) and feeds the new ones,
/// including one Stripe listed late inside the overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_survives_a_restart_with_the_overlap() {
    let stripe = FakeStripe::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let sink = Arc::new(RecordingSink::default());
    let overlap = settings().overlap.as_secs() as i64;

    let store = open_sqlite(&url).await;
    let project_id = project(&store).await;
    for i in 0..40_i64 {
        let id = format!("evt_first_{i}");
        stripe.add([event(
            &id,
            "invoice.paid",
            NOW - 3600 + i * 60,
            object_for(&id),
        )]);
    }
    let first = pass_at(
        &reconciler(&stripe, sink.clone(), "before"),
        &store,
        &project_id,
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(first.fed, 40);
    let watermark = NOW - 3600 + 39 * 60;
    assert_eq!(first.watermark, Some(watermark));
    store.close().await;
    drop(store);

    // Later: new events, and one created before the watermark that Stripe
    // lists only now (inside the overlap), and one outside it.
    stripe.add([event(
        "evt_late_inside",
        "invoice.paid",
        watermark - overlap + 5,
        object_for("li"),
    )]);
    stripe.add([event(
        "evt_late_outside",
        "invoice.paid",
        watermark - overlap - 5,
        object_for("lo"),
    )]);
    for i in 0..5_i64 {
        let id = format!("evt_second_{i}");
        stripe.add([event(&id, "invoice.paid", NOW + 100 + i, object_for(&id))]);
    }
    stripe.clear_requests();

    let store = open_sqlite(&url).await;
    let second = pass_at(
        &reconciler(&stripe, sink.clone(), "after"),
        &store,
        &project_id,
        NOW + 600,
    )
    .await
    .unwrap();
    let requests = stripe.requests();
    assert_eq!(
        requests[0].param("created[gte]"),
        Some(&*(watermark - overlap).to_string()),
        "the next pass lists from the watermark minus the overlap"
    );
    // Re-fed: the first pass's events inside the overlap (created >= watermark - 600).
    let inside: Vec<String> = (0..40_i64)
        .filter(|i| NOW - 3600 + i * 60 >= watermark - overlap)
        .map(|i| format!("evt_first_{i}"))
        .collect();
    assert_eq!(second.fed, inside.len() as u64 + 1 + 5);
    assert_eq!(second.recorded, 6, "the late one and the five new ones");
    let fed = sink.fed();
    assert_eq!(fed.get("evt_late_inside"), Some(&1));
    assert_eq!(
        fed.get("evt_late_outside"),
        None,
        "outside the overlap: not listed"
    );
    for i in 0..40_i64 {
        let id = format!("evt_first_{i}");
        let want = if inside.contains(&id) { 2 } else { 1 };
        assert_eq!(fed.get(&id), Some(&want), "{id}");
    }
    assert_eq!(second.watermark, Some(NOW + 104));
}

/// A pass that stops half-way (the sink fails on page 2) keeps its window
/// and cursor; the next pass, on a new store, resumes after the last page
/// it saved, with the same window, instead of starting over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_pass_resumes_after_its_last_page() {
    let stripe = FakeStripe::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = open_sqlite(&url).await;
    let project_id = project(&store).await;
    for i in 0..150_i64 {
        let id = format!("evt_{i:03}");
        stripe.add([event(&id, "invoice.paid", NOW - 1000 + i, object_for(&id))]);
    }
    let sink = Arc::new(RecordingSink::default());
    *sink.fail_at.lock().unwrap() = Some(120);
    let err = pass_at(
        &reconciler(&stripe, sink.clone(), "a"),
        &store,
        &project_id,
        NOW,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), "sink");
    let state = store.reconcile_state(&project_id).await.unwrap().unwrap();
    let pass = state.pass.clone().expect("the pass is kept");
    assert_eq!(pass.upper, NOW);
    assert_eq!(
        pass.cursor.as_deref(),
        Some("evt_050"),
        "the last event of page 1"
    );
    assert_eq!(
        state.watermark, None,
        "an unfinished pass does not move the watermark"
    );
    assert_eq!(state.last_error_kind.as_deref(), Some("sink"));
    store.close().await;
    drop(store);

    stripe.clear_requests();
    let store = open_sqlite(&url).await;
    let report = pass_at(
        &reconciler(&stripe, sink.clone(), "b"),
        &store,
        &project_id,
        NOW + 300,
    )
    .await
    .unwrap();
    assert!(report.resumed);
    assert_eq!(report.window.1, NOW, "the resumed pass keeps its window");
    let first = &stripe.requests()[0];
    assert_eq!(first.param("starting_after"), Some("evt_050"));
    assert_eq!(first.param("created[lte]"), Some(&*NOW.to_string()));
    let fed = sink.fed();
    assert_eq!(fed.len(), 150, "every event fed");
    // Page 2's events before the failure were fed twice (the page is
    // re-listed); nothing of page 1 was.
    assert!((100..150).all(|i| fed[&format!("evt_{i:03}")] == 1));
    let state = store.reconcile_state(&project_id).await.unwrap().unwrap();
    assert_eq!(state.pass, None);
    assert_eq!(state.watermark, Some(NOW - 1000 + 149));
    assert_eq!(state.last_error_kind, None);
}

/// 429 answers are retried after their `Retry-After`; too many in a row end
/// the pass with `rate_limited`, stored as the project's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_honoured_then_given_up() {
    let stripe = FakeStripe::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_sqlite(&format!("sqlite://{}", dir.path().join("r.db").display())).await;
    let project_id = project(&store).await;
    stripe.add([checkout_completed("evt_a", NOW - 60, "cus_a", 100)]);
    stripe.throttle(&[1, 1]);
    let sink = Arc::new(RecordingSink::default());
    let reconciler = reconciler(&stripe, sink.clone(), "a");
    let report = pass_at(&reconciler, &store, &project_id, NOW)
        .await
        .unwrap();
    assert_eq!(report.fed, 1);
    let requests = stripe.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
    for pair in requests.windows(2) {
        let waited = pair[1].at.duration_since(pair[0].at);
        assert!(
            waited >= Duration::from_millis(950),
            "Retry-After: 1 is honoured (waited {waited:?})"
        );
    }

    stripe.throttle(&[0; 10]);
    let err = pass_at(&reconciler, &store, &project_id, NOW + 300)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "rate_limited");
    assert!(err.to_string().contains("429"), "{err}");
    let state = store.reconcile_state(&project_id).await.unwrap().unwrap();
    assert_eq!(state.last_error_kind.as_deref(), Some("rate_limited"));
    assert_eq!(state.lease_owner, None);
}

/// A refused key (401) is a typed error, stored as the project's status,
/// counted in `/metrics` by kind with the project failing; the loop keeps
/// running, and once the key is right again its next pass succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_reported_and_the_loop_goes_on() {
    let stripe = FakeStripe::start("rk_test_the_right_key").await;
    let server = sendpromptly_server::testing::TestServer::start().await;
    let state = server.running.state.clone();
    let project_id = server.project.project_id.clone();
    stripe.add([checkout_completed(
        "evt_k",
        server.clock_now().unix_seconds() - 60,
        "cus_k",
        100,
    )]);

    // The reconciler pass itself: a typed, worded error.
    let sink = Arc::new(RecordingSink::default());
    let direct = reconciler(&stripe, sink.clone(), "direct");
    let clock = || state.now();
    let err = direct
        .pass(state.store(), &clock, &project_id, &access(), || {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unauthorized");
    let words = err.to_string();
    assert!(
        words.starts_with("Stripe refused the restricted key (401): Invalid API Key provided"),
        "{words}"
    );
    assert!(!words.contains(KEY), "the key is not repeated: {words}");
    let stored = state
        .store()
        .reconcile_state(&project_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_error_kind.as_deref(), Some("unauthorized"));
    assert_eq!(stored.last_error.as_deref(), Some(words.as_str()));

    // The loop: keeps going through 401s, reports them, recovers.
    let (stop, watcher) = tokio::sync::watch::channel(false);
    let looped = Arc::new(reconciler(&stripe, sink.clone(), "loop"));
    let task = tokio::spawn(sendpromptly_server::reconcile::run(
        state.clone(),
        looped,
        watcher,
    ));
    sendpromptly_server::testing::eventually(Duration::from_secs(10), "two refused passes", || {
        let state = state.clone();
        async move { (state.metrics().reconcile_errors("unauthorized") >= 2).then_some(()) }
    })
    .await;
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sendpromptly_reconcile_errors_total{kind=\"unauthorized\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "sendpromptly_reconcile_failing{{project_id=\"{project_id}\",kind=\"unauthorized\"}} 1"
        )),
        "{metrics}"
    );
    assert!(!task.is_finished(), "a 401 does not stop the loop");
    assert!(sink.fed().is_empty());

    stripe.set_key(KEY);
    sendpromptly_server::testing::eventually(
        Duration::from_secs(10),
        "a pass with the right key",
        || {
            let sink = sink.clone();
            async move { sink.fed().contains_key("evt_k").then_some(()) }
        },
    )
    .await;
    sendpromptly_server::testing::eventually(Duration::from_secs(10), "the status clears", || {
        let state = state.clone();
        let project_id = project_id.clone();
        async move {
            let s = state.store().reconcile_state(&project_id).await.unwrap()?;
            (s.last_error_kind.is_none() && s.last_success_at.is_some()).then_some(())
        }
    })
    .await;
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("sendpromptly_reconcile_failing{"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "sendpromptly_reconcile_last_success_timestamp_seconds{{project_id=\"{project_id}\"}}"
        )),
        "{metrics}"
    );
    let health = reqwest::get(format!("{}/healthz", server.url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Two instances (two pools, two owners) on one PostgreSQL database run
/// passes over the same project at the same time while events keep
/// arriving: every event is fed, and no two passes ever hold the lease at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_share_the_work_under_the_lease() {
    use sendpromptly_server::store::postgres::testing::{self, TestDatabase};
    use sendpromptly_server::store::postgres::{PoolSettings, PostgresStore};
    let Some(admin) = testing::server_url("two reconciler instances") else {
        return;
    };
    let database = TestDatabase::create(&admin).await;
    let connect = || async {
        let store = PostgresStore::connect_with(
            &database.url,
            PoolSettings {
                max_connections: 4,
                min_connections: 0,
                ..PoolSettings::default()
            },
        )
        .await
        .expect("connect")
        .with_keyring(sendpromptly_server::store::conformance::test_keyring());
        store.migrate().await.expect("migrate");
        Arc::new(store)
    };
    let (one, two) = (connect().await, connect().await);
    let project_id = project(one.as_ref()).await;
    let stripe = Arc::new(FakeStripe::start(KEY).await);
    let sink = Arc::new(RecordingSink::default());
    let now = || Timestamp::from_datetime(chrono::Utc::now());
    let start = now().unix_seconds();
    for i in 0..120_i64 {
        let id = format!("evt_pre_{i}");
        stripe.add([event(
            &id,
            "invoice.paid",
            start - 3000 + i * 20,
            object_for(&id),
        )]);
    }

    let held: Arc<Mutex<Vec<(String, Instant, Instant)>>> = Arc::default();
    let mut tasks = Vec::new();
    for (name, store) in [("one", one.clone()), ("two", two.clone())] {
        let reconciler = reconciler(&stripe, sink.clone(), name);
        let held = held.clone();
        let project_id = project_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut ran = 0;
            for _ in 0..40 {
                match reconciler
                    .pass(store.as_ref(), &now, &project_id, &access(), || {})
                    .await
                    .expect("a pass")
                {
                    PassOutcome::Ran(report) => {
                        held.lock()
                            .unwrap()
                            .push((name.to_owned(), report.held.0, report.held.1));
                        ran += 1;
                    }
                    PassOutcome::LeaseBusy => {}
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ran
        }));
    }
    // Events keep arriving while the passes run.
    for i in 0..60_i64 {
        let id = format!("evt_live_{i}");
        stripe.add([event(
            &id,
            "invoice.paid",
            now().unix_seconds(),
            object_for(&id),
        )]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ran = Vec::new();
    for task in tasks {
        ran.push(task.await.unwrap());
    }
    // One last pass picks up whatever arrived after the others ended.
    let last = reconciler(&stripe, sink.clone(), "one");
    let _ = last
        .pass(one.as_ref(), &now, &project_id, &access(), || {})
        .await
        .unwrap();

    let fed = sink.fed();
    for i in 0..120 {
        assert!(fed.contains_key(&format!("evt_pre_{i}")), "evt_pre_{i} fed");
    }
    for i in 0..60 {
        assert!(
            fed.contains_key(&format!("evt_live_{i}")),
            "evt_live_{i} fed"
        );
    }
    assert_eq!(fed.len(), 180);
    eprintln!("passes ran per instance: {ran:?}");
    assert!(
        ran.iter().all(|n| *n >= 1),
        "both instances ran passes: {ran:?}"
    );
    let mut spans = held.lock().unwrap().clone();
    spans.sort_by_key(|(_, from, _)| *from);
    for pair in spans.windows(2) {
        assert!(
            pair[0].2 <= pair[1].1,
            "passes overlap: {} until {:?}, {} from {:?}",
            pair[0].0,
            pair[0].2,
            pair[1].0,
            pair[1].1
        );
    }
    let state = one.reconcile_state(&project_id).await.unwrap().unwrap();
    assert_eq!(state.lease_owner, None);
    assert!(state.events_fed >= 180);
    one.close().await;
    two.close().await;
}

/// An interrupted pass left for nearly Stripe's 30 days (its cursor may be
/// gone) is not resumed: the next pass starts afresh, without
/// `starting_after`, within the 30 days Stripe keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_interrupted_pass_starts_afresh() {
    let stripe = FakeStripe::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_sqlite(&format!("sqlite://{}", dir.path().join("r.db").display())).await;
    let project_id = project(&store).await;
    for i in 0..150_i64 {
        let id = format!("evt_{i:03}");
        stripe.add([event(&id, "invoice.paid", NOW - 1000 + i, object_for(&id))]);
    }
    let sink = Arc::new(RecordingSink::default());
    *sink.fail_at.lock().unwrap() = Some(120);
    let reconciler = reconciler(&stripe, sink.clone(), "a");
    pass_at(&reconciler, &store, &project_id, NOW)
        .await
        .unwrap_err();
    assert!(
        store
            .reconcile_state(&project_id)
            .await
            .unwrap()
            .unwrap()
            .pass
            .is_some()
    );

    stripe.clear_requests();
    let later = NOW + 29 * 86_400 + 12 * 3600;
    let report = pass_at(&reconciler, &store, &project_id, later)
        .await
        .unwrap();
    assert!(!report.resumed);
    let first = &stripe.requests()[0];
    assert_eq!(first.param("starting_after"), None);
    let gte: i64 = first.param("created[gte]").unwrap().parse().unwrap();
    assert!(gte >= later - 30 * 86_400, "within Stripe's 30 days: {gte}");
    assert_eq!(first.param("created[lte]"), Some(&*later.to_string()));
}
