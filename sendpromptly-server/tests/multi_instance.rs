//! Several `sendpromptly serve` processes on one PostgreSQL database, one of
//! them killed with SIGKILL mid-run: nothing is lost and nothing is done
//! twice.
//!
//! - Thousands of receipts with a 1 s deadline are spread over three
//!   instances (idempotency keys on every request, re-sent to another
//!   instance when one dies, as an SDK would), while every instance's
//!   sweeper opens incidents. One instance is killed half-way.
//!   Afterwards: every event is stored, each has exactly one incident, one
//!   `deadline.passed` and one `incident.opened`; pairs of identical
//!   requests sent to two instances at once ran once.
//! - A replacement instance starts; a sample of incidents is reprocessed
//!   through all instances against a real, verifying repair endpoint that
//!   fails some first attempts; the replacement is killed while callbacks
//!   are in flight. Afterwards: every reprocess was delivered, its recorded
//!   attempts are numbered 1..n without repeats, and the endpoint saw every
//!   reprocess (a callback in flight at the moment of the kill may be sent
//!   again after its lease: at-least-once, bounded by that instance's
//!   callback concurrency).
//!
//! Needs `SENDPROMPTLY_TEST_POSTGRES_URL` (see `scripts/test-postgres.sh`);
//! prints `SKIPPED …` without it unless `SENDPROMPTLY_REQUIRE_POSTGRES=1`.
//!
//! `measure_receipt_throughput` (ignored; run it with `--ignored
//! --nocapture`, ideally `--release`) prints receipts per second with one
//! and two instances: the figures in docs/scaling.md.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::verify_repair_request;
use sendpromptly_core::standard_webhooks::SigningSecret;
use sendpromptly_server::store::postgres::testing::{self, TestDatabase};
use sendpromptly_server::testing::{HookReceiver, ReceivedHook, ServeProcess, cli_ok};
use serde_json::{Value, json};
use sqlx::Row;

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
/// Callbacks one instance sends at once (bounds re-sends after a kill).
const CALLBACK_CONCURRENCY: usize = 8;

// ---------------------------------------------------------------------------
// Processes

/// The master key every instance shares (a public test key).
const TEST_SECRET_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// One named `sendpromptly serve` instance (its log in `log_dir/NAME.log`).
struct Instance {
    name: String,
    process: ServeProcess,
}

impl Instance {
    fn start(name: &str, database_url: &str, log_dir: &std::path::Path) -> Instance {
        let mut command =
            ServeProcess::command(BIN, database_url, &["--database-max-connections", "8"]);
        command
            .env("SENDPROMPTLY_SECRET_KEY", TEST_SECRET_KEY)
            .args(["--sweep-interval-ms", "100"])
            .args(["--callback-retry-delays", "1,1,1,1,1"])
            .args(["--callback-timeout-seconds", "2"])
            .args(["--callback-lease-seconds", "4"])
            .args(["--callback-concurrency", &CALLBACK_CONCURRENCY.to_string()])
            // Throughput and load, not the per-key limit (tests/abuse.rs), are measured here.
            .env("SENDPROMPTLY_API_RATE_LIMIT", "0");
        let process = ServeProcess::spawn(command, &log_dir.join(format!("{name}.log")));
        Instance {
            name: name.to_owned(),
            process,
        }
    }

    fn url(&self) -> &str {
        &self.process.url
    }

    /// SIGKILL: no graceful shutdown, leases and in-flight requests are abandoned.
    fn kill(&mut self) {
        self.process.kill();
    }
}

fn cli(database_url: &str, args: &[&str]) -> String {
    let mut with_key = vec!["--secret-key", TEST_SECRET_KEY];
    with_key.extend_from_slice(args);
    cli_ok(BIN, database_url, &with_key)
}

// ---------------------------------------------------------------------------
// A verifying repair endpoint at real time

#[derive(Clone, Default)]
struct Receiver {
    secret: Arc<Mutex<Vec<SigningSecret>>>,
    /// (reprocess_id, attempt, answered status) of every verified callback.
    received: Arc<Mutex<Vec<(String, u32, u16)>>>,
    rejected: Arc<AtomicUsize>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secrets = receiver.secret.lock().unwrap().clone();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    match verify_repair_request(&body, &headers, &secrets, now) {
        Ok(callback) => {
            // A third of the reprocesses fail their first attempt (a retry
            // follows 1 s later): sequences of one and two attempts.
            let fail_first = callback.reprocess_id.bytes().map(u32::from).sum::<u32>() % 3 == 0;
            let status = if callback.attempt == 1 && fail_first {
                503
            } else {
                200
            };
            receiver.received.lock().unwrap().push((
                callback.reprocess_id,
                callback.attempt,
                status,
            ));
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
        }
        Err(_) => {
            receiver.rejected.fetch_add(1, Ordering::SeqCst);
            StatusCode::BAD_REQUEST
        }
    }
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/repair", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (receiver, format!("http://{addr}/repair"))
}

// ---------------------------------------------------------------------------
// A client that fails over between instances

/// The instances' URLs; a dead one is skipped after a connection error.
#[derive(Clone)]
struct Cluster {
    http: reqwest::Client,
    key: String,
    urls: Arc<Mutex<Vec<String>>>,
}

struct Reply {
    status: u16,
    replayed: bool,
    json: Value,
}

impl Cluster {
    fn new(key: &str, urls: Vec<String>) -> Cluster {
        Cluster {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            key: key.to_owned(),
            urls: Arc::new(Mutex::new(urls)),
        }
    }

    fn set_urls(&self, urls: Vec<String>) {
        *self.urls.lock().unwrap() = urls;
    }

    async fn send_to(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> reqwest::Result<Reply> {
        let mut request = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let json = response.json().await.unwrap_or(Value::Null);
        Ok(Reply {
            status,
            replayed,
            json,
        })
    }

    /// Sends to instance `n` (mod the live ones); on a connection error,
    /// to the next one, with the same idempotency key.
    async fn send(
        &self,
        n: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Reply {
        for attempt in 0..20 {
            let base = {
                let urls = self.urls.lock().unwrap();
                urls[(n + attempt) % urls.len()].clone()
            };
            match self
                .send_to(&base, method.clone(), path, body, idempotency_key)
                .await
            {
                Ok(reply) => return reply,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("no instance answered {path}");
    }
}

fn receipt_body(event_id: &str) -> Value {
    json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid",
           "subject": "cus_multi", "deadline_seconds": 1})
}

/// Runs `f(i)` for `0..n` with at most `concurrency` at once.
async fn for_each_concurrently<F, Fut>(n: usize, concurrency: usize, f: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let f = f.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    f(i).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
}

async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

// ---------------------------------------------------------------------------

const RECEIPTS: usize = 3000;
const SAME_KEY_PAIRS: usize = 150;
const REPROCESSES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_one_killed_nothing_lost_nothing_twice() {
    let Some(admin_url) = testing::server_url("multi-instance test") else {
        return;
    };
    let started = Instant::now();
    let db = TestDatabase::create(&admin_url).await;
    let logs = tempfile::tempdir().unwrap();
    let (receiver, repair_url) = start_receiver().await;

    // Set up the database once, as an operator would, then start the fleet.
    cli(&db.url, &["migrate"]);
    let created: Value = serde_json::from_str(&cli(
        &db.url,
        &[
            "project",
            "create",
            "--name",
            "multi",
            "--repair-url",
            &repair_url,
            "--allow-private-urls",
            "--json",
        ],
    ))
    .unwrap();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let secret = created["signing_secret"].as_str().unwrap();
    receiver
        .secret
        .lock()
        .unwrap()
        .push(SigningSecret::parse(secret).unwrap());
    cli(
        &db.url,
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "correct horse battery",
        ],
    );
    let mut a = Instance::start("a", &db.url, logs.path());
    let b = Instance::start("b", &db.url, logs.path());
    let mut c = Instance::start("c", &db.url, logs.path());
    let cluster = Cluster::new(
        &api_key,
        vec![a.url().to_owned(), b.url().to_owned(), c.url().to_owned()],
    );
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();

    // Phase 1a: identical requests (same key, same body) to two instances at once.
    let same_key_outcomes = Arc::new(Mutex::new(Vec::new()));
    {
        let cluster = cluster.clone();
        let (url_a, url_b) = (a.url().to_owned(), b.url().to_owned());
        let outcomes = same_key_outcomes.clone();
        for_each_concurrently(SAME_KEY_PAIRS, 8, move |i| {
            let cluster = cluster.clone();
            let (url_a, url_b) = (url_a.clone(), url_b.clone());
            let outcomes = outcomes.clone();
            async move {
                let body = receipt_body(&format!("evt_pair_{i}"));
                let key = format!("pair-{i}");
                let (one, two) = tokio::join!(
                    cluster.send_to(
                        &url_a,
                        reqwest::Method::POST,
                        "/v1/receipt",
                        Some(&body),
                        Some(&key)
                    ),
                    cluster.send_to(
                        &url_b,
                        reqwest::Method::POST,
                        "/v1/receipt",
                        Some(&body),
                        Some(&key)
                    ),
                );
                let (one, two) = (one.unwrap(), two.unwrap());
                outcomes
                    .lock()
                    .unwrap()
                    .push([(one.status, one.replayed), (two.status, two.replayed)]);
            }
        })
        .await;
    }
    for pair in same_key_outcomes.lock().unwrap().iter() {
        let firsts = pair.iter().filter(|(s, r)| *s == 201 && !r).count();
        let others_ok = pair
            .iter()
            .filter(|(s, r)| (*s == 201 && *r) || *s == 409)
            .count();
        assert_eq!(
            (firsts, others_ok),
            (1, 1),
            "same key on two instances: {pair:?}"
        );
    }

    // Phase 1b: receipts over three instances; `c` is killed half-way.
    let done = Arc::new(AtomicUsize::new(0));
    let in_flight_conflicts = Arc::new(AtomicUsize::new(0));
    let replays = Arc::new(AtomicUsize::new(0));
    let sending = {
        let cluster = cluster.clone();
        let done = done.clone();
        let conflicts = in_flight_conflicts.clone();
        let replays = replays.clone();
        tokio::spawn(for_each_concurrently(RECEIPTS, 24, move |i| {
            let cluster = cluster.clone();
            let done = done.clone();
            let conflicts = conflicts.clone();
            let replays = replays.clone();
            async move {
                let body = receipt_body(&format!("evt_{i}"));
                let key = format!("receipt-{i}");
                let post = reqwest::Method::POST;
                let mut reply = cluster
                    .send(i, post.clone(), "/v1/receipt", Some(&body), Some(&key))
                    .await;
                if reply.status == 409 {
                    // The killed instance held this key mid-request: the
                    // provider's later retry is a new request.
                    assert_eq!(reply.json["error"]["type"], "idempotency_key_in_flight");
                    conflicts.fetch_add(1, Ordering::SeqCst);
                    reply = cluster
                        .send(
                            i,
                            post,
                            "/v1/receipt",
                            Some(&body),
                            Some(&format!("{key}-again")),
                        )
                        .await;
                }
                if reply.replayed {
                    replays.fetch_add(1, Ordering::SeqCst);
                }
                assert!(
                    matches!(reply.status, 200 | 201),
                    "receipt {i}: {} {}",
                    reply.status,
                    reply.json
                );
                done.fetch_add(1, Ordering::SeqCst);
            }
        }))
    };
    wait_until(Duration::from_secs(120), "half of the receipts", || {
        let done = done.clone();
        async move { done.load(Ordering::SeqCst) >= RECEIPTS / 2 }
    })
    .await;
    c.kill();
    let killed_at = done.load(Ordering::SeqCst);
    cluster.set_urls(vec![a.url().to_owned(), b.url().to_owned()]);
    sending.await.expect("receipts sent");
    let receipts_took = started.elapsed();

    // Every event is stored and overdue with exactly one incident.
    let total = i64::try_from(RECEIPTS + SAME_KEY_PAIRS).unwrap();
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM events").await, total);
    wait_until(
        Duration::from_secs(90),
        "an incident for every event",
        || {
            let pool = pool.clone();
            async move { count(&pool, "SELECT COUNT(*) FROM incidents").await == total }
        },
    )
    .await;
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM events WHERE state <> 'overdue'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM (SELECT e.pk, \
               COUNT(t.seq) FILTER (WHERE t.kind = 'incident.opened') AS opened, \
               COUNT(t.seq) FILTER (WHERE t.kind = 'deadline.passed') AS passed \
             FROM events e LEFT JOIN timeline t ON t.event_pk = e.pk GROUP BY e.pk) AS per_event \
             WHERE opened <> 1 OR passed <> 1"
        )
        .await,
        0,
        "each overdue event has exactly one incident.opened and one deadline.passed"
    );
    // Receipts ran once per idempotency key: only those re-sent under a new
    // key after a 409 may have a second delivery.
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM events WHERE event_id LIKE 'evt\\_pair\\_%' \
             AND (record::jsonb ->> 'deliveries')::int <> 1"
        )
        .await,
        0,
        "a same-key pair ran twice"
    );
    let twice = count(
        &pool,
        "SELECT COUNT(*) FROM events WHERE (record::jsonb ->> 'deliveries')::int > 1",
    )
    .await;
    let conflicts = in_flight_conflicts.load(Ordering::SeqCst);
    assert!(
        usize::try_from(twice).unwrap() <= conflicts,
        "{twice} events got a second delivery but only {conflicts} requests were re-sent"
    );
    eprintln!(
        "phase 1: {} receipts + {SAME_KEY_PAIRS} same-key pairs in {receipts_took:?}; \
         instance c killed after {killed_at}; {conflicts} in-flight conflicts, {} replays; \
         all {total} incidents after {:?}",
        RECEIPTS,
        replays.load(Ordering::SeqCst),
        started.elapsed()
    );

    // Phase 2: a replacement instance; reprocess a sample through all three
    // and kill the replacement while callbacks are in flight.
    let mut d = Instance::start("d", &db.url, logs.path());
    cluster.set_urls(vec![
        a.url().to_owned(),
        b.url().to_owned(),
        d.url().to_owned(),
    ]);
    let incident_ids: Vec<String> = sqlx::query("SELECT id FROM incidents ORDER BY event_pk")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("id"))
        .step_by((RECEIPTS + SAME_KEY_PAIRS) / REPROCESSES)
        .take(REPROCESSES)
        .collect();
    assert_eq!(incident_ids.len(), REPROCESSES);
    let requesting = {
        let cluster = cluster.clone();
        let ids = Arc::new(incident_ids.clone());
        tokio::spawn(for_each_concurrently(REPROCESSES, 12, move |i| {
            let cluster = cluster.clone();
            let ids = ids.clone();
            async move {
                let path = format!("/v1/incidents/{}/reprocess", ids[i]);
                let body = json!({"note": "multi-instance test"});
                let reply = cluster
                    .send(
                        i,
                        reqwest::Method::POST,
                        &path,
                        Some(&body),
                        Some(&format!("rep-{i}")),
                    )
                    .await;
                match reply.status {
                    202 => {}
                    409 if reply.json["error"]["type"] == "idempotency_key_in_flight" => {
                        // The killed instance held the request: ask again
                        // only if it did not get as far as committing it.
                        let incident = cluster
                            .send(
                                i,
                                reqwest::Method::GET,
                                &format!("/v1/incidents/{}", ids[i]),
                                None,
                                None,
                            )
                            .await;
                        if !incident.json.to_string().contains("rep_") {
                            let again = cluster
                                .send(
                                    i,
                                    reqwest::Method::POST,
                                    &path,
                                    Some(&body),
                                    Some(&format!("rep-{i}-again")),
                                )
                                .await;
                            assert_eq!(again.status, 202, "{}", again.json);
                        }
                    }
                    other => panic!("reprocess {i}: {other} {}", reply.json),
                }
            }
        }))
    };
    wait_until(Duration::from_secs(60), "callbacks flowing", || {
        let receiver = receiver.clone();
        async move { receiver.received.lock().unwrap().len() >= REPROCESSES / 4 }
    })
    .await;
    d.kill();
    let callbacks_at_kill = receiver.received.lock().unwrap().len();
    cluster.set_urls(vec![a.url().to_owned(), b.url().to_owned()]);
    requesting.await.expect("reprocess requests sent");

    let expected = i64::try_from(REPROCESSES).unwrap();
    wait_until(Duration::from_secs(90), "every callback delivered", || {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                "SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'",
            )
            .await
                == expected
        }
    })
    .await;
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM deliveries").await,
        expected
    );
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM (SELECT incident_id FROM deliveries GROUP BY incident_id \
             HAVING COUNT(*) > 1) AS twice"
        )
        .await,
        0,
        "one reprocess per sampled incident"
    );

    // Each reprocess's recorded attempts: 1..n, no repeats, the last delivered.
    let rows =
        sqlx::query("SELECT detail FROM timeline WHERE kind = 'callback.attempt' ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut recorded: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for row in &rows {
        let detail: Value = serde_json::from_str(&row.get::<String, _>("detail")).unwrap();
        recorded
            .entry(detail["reprocess_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                detail["attempt"].as_u64().unwrap(),
                detail["outcome"].to_string(),
            ));
    }
    assert_eq!(recorded.len(), REPROCESSES);
    let mut two_attempt_sequences = 0;
    for (reprocess_id, attempts) in &recorded {
        let numbers: Vec<u64> = attempts.iter().map(|(n, _)| *n).collect();
        let want: Vec<u64> = (1..=u64::try_from(numbers.len()).unwrap()).collect();
        assert_eq!(numbers, want, "{reprocess_id}: {attempts:?}");
        if numbers.len() == 2 {
            two_attempt_sequences += 1;
        }
    }
    assert!(
        two_attempt_sequences > 0,
        "no retried sequence was exercised"
    );

    // The endpoint saw every reprocess; re-sends only for what the killed
    // instance had in flight.
    assert_eq!(
        receiver.rejected.load(Ordering::SeqCst),
        0,
        "bad signatures"
    );
    let received = receiver.received.lock().unwrap().clone();
    let seen: BTreeSet<&String> = received.iter().map(|(id, _, _)| id).collect();
    assert_eq!(
        seen.len(),
        REPROCESSES,
        "a reprocess never reached the endpoint"
    );
    let mut per_attempt: BTreeMap<(&String, u32), usize> = BTreeMap::new();
    for (id, attempt, _) in &received {
        *per_attempt.entry((id, *attempt)).or_default() += 1;
    }
    let resent = per_attempt.values().filter(|n| **n > 1).count();
    assert!(
        resent <= CALLBACK_CONCURRENCY,
        "{resent} attempts were sent more than once; at most the killed instance's \
         {CALLBACK_CONCURRENCY} in-flight callbacks may be"
    );
    eprintln!(
        "phase 2: {REPROCESSES} reprocesses, instance d killed after {callbacks_at_kill} callbacks; \
         {} callbacks received, {two_attempt_sequences} two-attempt sequences, {resent} attempts \
         re-sent after the kill; total {:?}",
        received.len(),
        started.elapsed()
    );
    drop(pool);
    a.kill();
}

// ---------------------------------------------------------------------------
// Alerts: several instances, one alert

/// Incidents opened per event type in the alert burst.
const BURST_PER_TYPE: usize = 30;
/// Event types (alert groups per channel) in the burst.
const BURST_TYPES: usize = 4;
/// The grouping window of the alert test's instances.
const ALERT_WINDOW_SECONDS: i64 = 10;

/// What one alert message carried: its incident ids, and whether it was a digest.
fn alert_message_incidents(hook: &ReceivedHook) -> (bool, Vec<String>) {
    let body = hook.json();
    let ids = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
    match body["incidents"].as_array() {
        Some(incidents) => (true, incidents.iter().map(ids).collect()),
        None => (false, vec![ids(&body["incident"])]),
    }
}

/// A burst of failures over three instances, with two alert channels: each
/// incident is announced exactly once per channel, each group (channel ×
/// event type) gets one single and then one digest per window, every
/// attempt is recorded once, and no instance logs a deadlock or a failed
/// finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_send_one_single_and_one_digest_per_group() {
    let Some(admin_url) = testing::server_url("multi-instance alert test") else {
        return;
    };
    let db = TestDatabase::create(&admin_url).await;
    let logs = tempfile::tempdir().unwrap();
    let hooks = HookReceiver::start().await;
    cli(&db.url, &["migrate"]);
    let created: Value = serde_json::from_str(&cli(
        &db.url,
        &["project", "create", "--name", "alerts", "--json"],
    ))
    .unwrap();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let start = |name: &str| {
        let mut command = ServeProcess::command(BIN, &db.url, &["--database-max-connections", "8"]);
        command
            .env("SENDPROMPTLY_SECRET_KEY", TEST_SECRET_KEY)
            .args(["--sweep-interval-ms", "100"])
            .args([
                "--alert-group-window-seconds",
                &ALERT_WINDOW_SECONDS.to_string(),
            ])
            .env("SENDPROMPTLY_API_RATE_LIMIT", "0");
        ServeProcess::spawn(command, &logs.path().join(format!("{name}.log")))
    };
    let instances = [start("a"), start("b"), start("c")];
    let cluster = Cluster::new(&api_key, instances.iter().map(|i| i.url.clone()).collect());
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let channels = json!({"alert_channels": [
        {"type": "webhook", "url": hooks.url("/one")},
        {"type": "webhook", "url": hooks.url("/two")},
    ]});
    let reply = cluster
        .send(
            0,
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&channels),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);

    // Receipts first (no alert), then the burst of failures, spread over
    // the three instances.
    let total = BURST_PER_TYPE * BURST_TYPES;
    let event = |i: usize| {
        (
            format!("evt_alert_{i}"),
            format!("type_{}.failed", i % BURST_TYPES),
        )
    };
    for phase in ["receipt", "result"] {
        let cluster = cluster.clone();
        for_each_concurrently(total, 24, move |i| {
            let cluster = cluster.clone();
            let (event_id, event_type) = event(i);
            async move {
                let (path, body) = if phase == "receipt" {
                    let body = json!({"provider": "stripe", "event_id": event_id,
                        "event_type": event_type, "deadline_seconds": 3600});
                    ("/v1/receipt", body)
                } else {
                    let body = json!({"provider": "stripe", "event_id": event_id,
                        "status": "failure", "error": "boom"});
                    ("/v1/result", body)
                };
                let reply = cluster
                    .send(i, reqwest::Method::POST, path, Some(&body), None)
                    .await;
                assert!(
                    matches!(reply.status, 200 | 201),
                    "{phase} {i}: {}",
                    reply.json
                );
            }
        })
        .await;
    }
    let total_i64 = i64::try_from(total).unwrap();
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM incidents").await,
        total_i64
    );
    // Everything is sent once the window has closed and the digests went.
    wait_until(Duration::from_secs(120), "every alert sent", || {
        let pool = pool.clone();
        async move {
            count(&pool, "SELECT COUNT(*) FROM alerts WHERE state = 'pending'").await == 0
        }
    })
    .await;

    let incident_type: BTreeMap<String, String> =
        sqlx::query("SELECT id, event_type FROM incidents")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get("id"), row.get("event_type")))
            .collect();
    for channel in ["/one", "/two"] {
        let messages = hooks.received_on(channel);
        let mut announced: BTreeMap<String, usize> = BTreeMap::new();
        // (singles, digests) per event type.
        let mut per_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for hook in &messages {
            let (digest, ids) = alert_message_incidents(hook);
            let types: BTreeSet<&String> = ids.iter().map(|id| &incident_type[id]).collect();
            assert_eq!(
                types.len(),
                1,
                "{channel}: a message mixes event types: {ids:?}"
            );
            let counts = per_type
                .entry(types.into_iter().next().unwrap().clone())
                .or_default();
            if digest {
                counts.1 += 1;
            } else {
                counts.0 += 1;
            }
            for id in ids {
                *announced.entry(id).or_default() += 1;
            }
        }
        eprintln!(
            "{channel}: {} messages; (singles, digests) per event type: {per_type:?}",
            messages.len()
        );
        let twice: Vec<_> = announced.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "{channel}: announced more than once: {twice:?}"
        );
        assert_eq!(
            announced.len(),
            total,
            "{channel}: an incident was never announced"
        );
        assert_eq!(per_type.len(), BURST_TYPES);
        for (event_type, counts) in &per_type {
            // The burst's alerts of this group were raised within one window
            // (checked on their rows, not on a clock): one single, then one
            // digest carrying the rest.
            let spread = count(
                &pool,
                &format!(
                    "SELECT MAX(created_at) - MIN(created_at) FROM alerts \
                     WHERE group_key LIKE '%|{event_type}'"
                ),
            )
            .await;
            if spread < ALERT_WINDOW_SECONDS * 1000 {
                assert_eq!(
                    *counts,
                    (1, 1),
                    "{channel} {event_type}: want one single and one digest"
                );
            } else {
                eprintln!(
                    "{channel} {event_type}: burst spread over {spread} ms, more than a window"
                );
            }
        }
    }
    // Whatever the burst's spread: two singles of one group are a window apart.
    assert_eq!(
        count(
            &pool,
            &format!(
                "SELECT COUNT(*) FROM alerts a JOIN alerts b ON a.group_key = b.group_key \
                 AND a.id < b.id WHERE a.role = 'single' AND b.role = 'single' \
                 AND ABS(a.created_at - b.created_at) < {}",
                ALERT_WINDOW_SECONDS * 1000
            )
        )
        .await,
        0,
        "two singles of one group within a window"
    );
    // Every attempt recorded once on each incident's timeline (two channels).
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM (SELECT event_pk FROM timeline WHERE kind = 'alert.attempt' \
             GROUP BY event_pk HAVING COUNT(*) <> 2) AS odd"
        )
        .await,
        0,
        "an incident without exactly one alert attempt per channel"
    );
    drop(pool);
    drop(instances);
    for name in ["a", "b", "c"] {
        let log = std::fs::read_to_string(logs.path().join(format!("{name}.log"))).unwrap();
        for line in log.lines() {
            assert!(
                !line.contains("deadlock")
                    && !line.contains("could not record an alert attempt")
                    && !line.contains("could not claim alerts"),
                "instance {name}: {line}"
            );
        }
    }
}

/// Instances started at the same moment on an empty database all come up;
/// exactly one of them creates (and prints) the `default` project, its keys
/// and admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_an_empty_database_all_start() {
    let Some(admin_url) = testing::server_url("simultaneous first start") else {
        return;
    };
    let db = TestDatabase::create(&admin_url).await;
    let logs = tempfile::tempdir().unwrap();
    let starts: Vec<_> = ["s1", "s2", "s3"]
        .into_iter()
        .map(|name| {
            let url = db.url.clone();
            let dir = logs.path().to_owned();
            std::thread::spawn(move || Instance::start(name, &url, &dir))
        })
        .collect();
    let fleet: Vec<Instance> = starts
        .into_iter()
        .map(|t| t.join().expect("every instance starts"))
        .collect();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM projects").await, 1);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM users").await, 1);
    // The first start's two keys: `admin` and `ingest` (issue #24).
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM api_keys").await, 2);
    let http = reqwest::Client::new();
    for instance in &fleet {
        let health = http
            .get(format!("{}/healthz", instance.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status().as_u16(), 200, "{}", instance.name);
    }
    pool.close().await;
}

/// Receipts per second with one and with two instances (run by hand; see
/// docs/scaling.md). `SENDPROMPTLY_MEASURE_RECEIPTS` (default 4000) and
/// `SENDPROMPTLY_MEASURE_CONCURRENCY` (default 32) tune it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
async fn measure_receipt_throughput() {
    let Some(admin_url) = testing::server_url("throughput measurement") else {
        return;
    };
    let receipts: usize = std::env::var("SENDPROMPTLY_MEASURE_RECEIPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let concurrency: usize = std::env::var("SENDPROMPTLY_MEASURE_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    for instances in [1_usize, 2] {
        let db = TestDatabase::create(&admin_url).await;
        let logs = tempfile::tempdir().unwrap();
        cli(&db.url, &["migrate"]);
        let created: Value = serde_json::from_str(&cli(
            &db.url,
            &["project", "create", "--name", "bench", "--json"],
        ))
        .unwrap();
        let api_key = created["api_key"].as_str().unwrap().to_owned();
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let size_before = count(&pool, "SELECT pg_database_size(current_database())").await;
        let fleet: Vec<Instance> = (0..instances)
            .map(|n| Instance::start(&format!("bench{n}"), &db.url, logs.path()))
            .collect();
        let cluster = Cluster::new(&api_key, fleet.iter().map(|i| i.url().to_owned()).collect());
        // Warm up connections.
        for n in 0..instances * 4 {
            let body = receipt_body(&format!("evt_warm_{n}"));
            cluster
                .send(n, reqwest::Method::POST, "/v1/receipt", Some(&body), None)
                .await;
        }
        let started = Instant::now();
        let c = cluster.clone();
        for_each_concurrently(receipts, concurrency, move |i| {
            let cluster = c.clone();
            async move {
                let body = json!({"provider": "stripe", "event_id": format!("evt_{i}"),
                                  "event_type": "invoice.paid", "subject": "cus_bench",
                                  "deadline_seconds": 1800});
                let reply = cluster
                    .send(
                        i,
                        reqwest::Method::POST,
                        "/v1/receipt",
                        Some(&body),
                        Some(&format!("k{i}")),
                    )
                    .await;
                assert_eq!(reply.status, 201);
            }
        })
        .await;
        let took = started.elapsed();
        #[allow(clippy::cast_precision_loss)]
        let rate = receipts as f64 / took.as_secs_f64();
        let _ = sqlx::query("CHECKPOINT").execute(&pool).await;
        let grown = count(&pool, "SELECT pg_database_size(current_database())").await - size_before;
        let events = count(&pool, "SELECT COUNT(*) FROM events").await.max(1);
        println!(
            "MEASURE instances={} receipts={receipts} concurrency={concurrency} \
             seconds={:.2} receipts_per_second={rate:.0} bytes_per_event={}",
            fleet.len(),
            took.as_secs_f64(),
            grown / events,
        );
        pool.close().await;
    }
}
