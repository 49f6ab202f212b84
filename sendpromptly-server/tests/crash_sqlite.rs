//! Crash safety on SQLite: the real `sendpromptly serve` process under a
//! steady load of receipts, results and reprocess requests, killed with
//! SIGKILL at random moments and restarted on the same database file.
//!
//! After every restart:
//! - every request that got a 2xx is in the database (receipts stored,
//!   results applied, reprocesses queued in the outbox);
//! - no event has more than one `deadline.passed` or `incident.opened`;
//! - each reprocess's recorded callback attempts are numbered 1..n without
//!   repeats.
//!
//! At the end (after the last restart): every event with a 1 s deadline and
//! no result is overdue with exactly one incident, one `deadline.passed` and
//! one `incident.opened`; every acknowledged reprocess was delivered to a
//! verifying repair endpoint, always under the same `webhook-id`.
//!
//! 20 kills by default (well under a minute); `SENDPROMPTLY_LONG_TESTS=1`
//! makes it 200, `SENDPROMPTLY_CRASH_KILLS=N` sets the number.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::verify_repair_request;
use sendpromptly_core::standard_webhooks::SigningSecret;
use sendpromptly_server::testing::{ServeProcess, cli_ok};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
const WORKERS: usize = 6;

fn kills() -> usize {
    if let Some(n) = std::env::var("SENDPROMPTLY_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var("SENDPROMPTLY_LONG_TESTS").is_ok_and(|v| v == "1") {
        200
    } else {
        20
    }
}

// ---------------------------------------------------------------------------
// The server process

/// Starts `sendpromptly serve` with fast sweeps and short callback
/// retries, timeouts and leases.
fn start_server(database_url: &str, log_path: &Path) -> ServeProcess {
    let mut command = ServeProcess::command(BIN, database_url, &[]);
    command
        .args(["--sweep-interval-ms", "100"])
        .args(["--callback-retry-delays", "1,1,1,1,1,1,1,1"])
        .args(["--callback-timeout-seconds", "1"])
        .args(["--callback-lease-seconds", "2"]);
    ServeProcess::spawn(command, log_path)
}

fn cli(database_url: &str, args: &[&str]) -> String {
    cli_ok(BIN, database_url, args)
}

// ---------------------------------------------------------------------------
// A verifying repair endpoint (in this process: it survives the kills)

#[derive(Clone, Default)]
struct Receiver {
    secrets: Arc<Mutex<Vec<SigningSecret>>>,
    /// (reprocess_id, webhook-id, attempt) of every verified callback.
    received: Arc<Mutex<Vec<(String, String, u32)>>>,
    rejected: Arc<AtomicUsize>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secrets = receiver.secrets.lock().unwrap().clone();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    match verify_repair_request(&body, &headers, &secrets, now) {
        Ok(callback) => {
            let webhook_id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            // A third of the reprocesses fail their first attempt.
            let fail_first = callback.reprocess_id.bytes().map(u32::from).sum::<u32>() % 3 == 0;
            let attempt = callback.attempt;
            receiver
                .received
                .lock()
                .unwrap()
                .push((callback.reprocess_id, webhook_id, attempt));
            if attempt == 1 && fail_first {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
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
// The load and what it was told

/// Everything the server acknowledged with a 2xx.
#[derive(Clone, Default)]
struct Acked {
    /// Every acknowledged receipt.
    receipts: BTreeSet<String>,
    /// Receipts of events that get no result (1 s deadline).
    short: BTreeSet<String>,
    /// Receipts of events awaiting their result (1 h deadline).
    awaiting: Vec<String>,
    /// Results: event id -> "success" | "failure".
    results: BTreeMap<String, &'static str>,
    /// Incidents of failed results, not yet reprocessed.
    to_reprocess: Vec<String>,
    /// Reprocess ids answered with 202.
    reprocesses: BTreeSet<String>,
    /// Requests sent, and those that failed without an answer (the kill).
    sent: usize,
    unanswered: usize,
}

#[derive(Clone)]
struct Load {
    http: reqwest::Client,
    key: String,
    acked: Arc<Mutex<Acked>>,
}

impl Load {
    async fn post(&self, base: &str, path: &str, body: &Value, key: &str) -> Option<(u16, Value)> {
        self.acked.lock().unwrap().sent += 1;
        let reply = self
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(&self.key)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(_) => {
                self.acked.lock().unwrap().unanswered += 1;
                return None;
            }
        };
        let status = reply.status().as_u16();
        // A body cut off by the kill leaves the request unacknowledged.
        match reply.json::<Value>().await {
            Ok(json) => Some((status, json)),
            Err(_) => {
                self.acked.lock().unwrap().unanswered += 1;
                None
            }
        }
    }

    /// One worker's requests until `stop`.
    async fn run(self, base: String, cycle: usize, worker: usize, stop: Arc<AtomicBool>) {
        let mut n = 0_usize;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let roll = rand::random::<u32>() % 100;
            let id_key = format!("c{cycle}-w{worker}-{n}");
            if roll < 35 {
                let event_id = format!("short_{cycle}_{worker}_{n}");
                let body = json!({"provider": "stripe", "event_id": event_id,
                    "event_type": "invoice.paid", "subject": "cus_crash", "deadline_seconds": 1});
                if let Some((status, reply)) = self.post(&base, "/v1/receipt", &body, &id_key).await
                {
                    assert_eq!(status, 201, "receipt: {reply}");
                    let mut acked = self.acked.lock().unwrap();
                    acked.receipts.insert(event_id.clone());
                    acked.short.insert(event_id);
                }
                continue;
            }
            if roll < 65 {
                let event_id = format!("long_{cycle}_{worker}_{n}");
                let body = json!({"provider": "stripe", "event_id": event_id,
                    "event_type": "invoice.paid", "subject": "cus_crash", "deadline_seconds": 3600});
                if let Some((status, reply)) = self.post(&base, "/v1/receipt", &body, &id_key).await
                {
                    assert_eq!(status, 201, "receipt: {reply}");
                    let mut acked = self.acked.lock().unwrap();
                    acked.receipts.insert(event_id.clone());
                    acked.awaiting.push(event_id);
                }
                continue;
            }
            if roll < 92 {
                let Some(event_id) = self.acked.lock().unwrap().awaiting.pop() else {
                    continue;
                };
                let status_word = if rand::random::<bool>() {
                    "success"
                } else {
                    "failure"
                };
                let body = json!({"provider": "stripe", "event_id": event_id,
                    "status": status_word, "error": "crash test"});
                if let Some((status, reply)) = self.post(&base, "/v1/result", &body, &id_key).await
                {
                    assert_eq!(status, 200, "result: {reply}");
                    let mut acked = self.acked.lock().unwrap();
                    acked.results.insert(event_id, status_word);
                    if let Some(incident) = reply["incident"]["id"].as_str() {
                        acked.to_reprocess.push(incident.to_owned());
                    }
                }
                continue;
            }
            let Some(incident) = self.acked.lock().unwrap().to_reprocess.pop() else {
                continue;
            };
            let path = format!("/v1/incidents/{incident}/reprocess");
            let body = json!({"note": "crash test"});
            if let Some((status, reply)) = self.post(&base, &path, &body, &id_key).await {
                assert_eq!(status, 202, "reprocess: {reply}");
                let reprocess_id = reply["reprocess_id"].as_str().expect("reprocess_id");
                self.acked
                    .lock()
                    .unwrap()
                    .reprocesses
                    .insert(reprocess_id.to_owned());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Checks on the database file

async fn open(path: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap()
}

async fn strings(pool: &SqlitePool, sql: &str) -> BTreeSet<String> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .expect(sql)
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect()
}

async fn count(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// What must hold at any moment: nothing acknowledged is missing, nothing
/// happened twice.
async fn check_invariants(pool: &SqlitePool, acked: &Acked, when: &str) {
    let events = strings(pool, "SELECT event_id FROM events").await;
    for event_id in &acked.receipts {
        assert!(
            events.contains(event_id),
            "{when}: acked receipt {event_id} lost"
        );
    }
    // One query for every state (a query per result would make long runs quadratic).
    let states: BTreeMap<String, String> = sqlx::query("SELECT event_id, state FROM events")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get::<String, _>(0), row.get::<String, _>(1)))
        .collect();
    for (event_id, status) in &acked.results {
        let state = states
            .get(event_id)
            .unwrap_or_else(|| panic!("{when}: event {event_id} of an acked result lost"));
        let want = if *status == "success" {
            "succeeded"
        } else {
            "failed"
        };
        assert_eq!(state, want, "{when}: acked {status} result of {event_id}");
    }
    let queued = strings(pool, "SELECT reprocess_id FROM deliveries").await;
    for reprocess_id in &acked.reprocesses {
        assert!(
            queued.contains(reprocess_id),
            "{when}: acked reprocess {reprocess_id} not in the outbox"
        );
    }
    assert_eq!(
        count(
            pool,
            "SELECT COUNT(*) FROM (SELECT e.pk, \
               SUM(CASE WHEN t.kind = 'incident.opened' THEN 1 ELSE 0 END) AS opened, \
               SUM(CASE WHEN t.kind = 'deadline.passed' THEN 1 ELSE 0 END) AS passed \
             FROM events e LEFT JOIN timeline t ON t.event_pk = e.pk GROUP BY e.pk) \
             WHERE opened > 1 OR passed > 1"
        )
        .await,
        0,
        "{when}: an event has two incident.opened or deadline.passed entries"
    );
    check_attempts(pool, when).await;
}

/// Each reprocess's recorded attempts are 1..n without repeats.
async fn check_attempts(pool: &SqlitePool, when: &str) -> BTreeMap<String, u64> {
    let rows =
        sqlx::query("SELECT detail FROM timeline WHERE kind = 'callback.attempt' ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut recorded: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in &rows {
        let detail: Value = serde_json::from_str(&row.get::<String, _>("detail")).unwrap();
        recorded
            .entry(detail["reprocess_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(detail["attempt"].as_u64().unwrap());
    }
    let mut lengths = BTreeMap::new();
    for (reprocess_id, numbers) in recorded {
        let want: Vec<u64> = (1..=u64::try_from(numbers.len()).unwrap()).collect();
        assert_eq!(numbers, want, "{when}: attempts of {reprocess_id}");
        lengths.insert(reprocess_id, want.len() as u64);
    }
    lengths
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

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_server_killed_at_random_moments_loses_nothing_and_does_nothing_twice() {
    let kills = kills();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crash.db");
    let log = dir.path().join("server.log");
    let database_url = format!("sqlite://{}", file.display());
    let (receiver, repair_url) = start_receiver().await;

    cli(&database_url, &["migrate"]);
    let created: Value = serde_json::from_str(&cli(
        &database_url,
        &[
            "project",
            "create",
            "--name",
            "crash",
            "--repair-url",
            &repair_url,
            "--allow-private-urls",
            "--json",
        ],
    ))
    .unwrap();
    let secret = created["signing_secret"].as_str().unwrap();
    receiver
        .secrets
        .lock()
        .unwrap()
        .push(SigningSecret::parse(secret).unwrap());
    let load = Load {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        key: created["api_key"].as_str().unwrap().to_owned(),
        acked: Arc::new(Mutex::new(Acked::default())),
    };

    let mut restarts = Duration::ZERO;
    let mut last = None;
    for cycle in 0..=kills {
        let t = Instant::now();
        let mut server = start_server(&database_url, &log);
        restarts += t.elapsed();
        // Right after the restart, before any new request: the previous
        // cycles' acknowledged work is all there.
        let pool = open(&file).await;
        let snapshot = load.acked.lock().unwrap().clone();
        check_invariants(&pool, &snapshot, &format!("after restart {cycle}")).await;
        pool.close().await;
        if cycle == kills {
            // The last start: it stays up for the final checks.
            last = Some(server);
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| tokio::spawn(load.clone().run(server.url.clone(), cycle, w, stop.clone())))
            .collect();
        let kill_after = Duration::from_millis(100 + rand::random::<u64>() % 700);
        tokio::time::sleep(kill_after).await;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for worker in workers {
            worker.await.expect("a worker panicked");
        }
    }

    // Final: the last instance is running; every deadline fires once and
    // every acknowledged reprocess is delivered.
    let pool = open(&file).await;
    let (short, reprocesses) = {
        let acked = load.acked.lock().unwrap();
        (acked.short.clone(), acked.reprocesses.clone())
    };
    wait_until(Duration::from_secs(60), "every short event overdue", || {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                "SELECT COUNT(*) FROM events WHERE event_id LIKE 'short\\_%' ESCAPE '\\' \
                     AND state <> 'overdue'",
            )
            .await
                == 0
        }
    })
    .await;
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM (SELECT e.pk, \
               SUM(CASE WHEN t.kind = 'incident.opened' THEN 1 ELSE 0 END) AS opened, \
               SUM(CASE WHEN t.kind = 'deadline.passed' THEN 1 ELSE 0 END) AS passed, \
               (SELECT COUNT(*) FROM incidents i WHERE i.event_pk = e.pk) AS incidents \
             FROM events e LEFT JOIN timeline t ON t.event_pk = e.pk \
             WHERE e.event_id LIKE 'short\\_%' ESCAPE '\\' GROUP BY e.pk) \
             WHERE opened <> 1 OR passed <> 1 OR incidents <> 1"
        )
        .await,
        0,
        "each overdue event has exactly one incident, incident.opened and deadline.passed"
    );
    let stored_short = count(
        &pool,
        "SELECT COUNT(*) FROM events WHERE event_id LIKE 'short\\_%' ESCAPE '\\'",
    )
    .await;
    assert!(usize::try_from(stored_short).unwrap() >= short.len());
    // Failed results: one incident each.
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM events e WHERE e.state = 'failed' AND \
             (SELECT COUNT(*) FROM incidents i WHERE i.event_pk = e.pk) <> 1"
        )
        .await,
        0,
        "a failed event without exactly one incident"
    );

    wait_until(
        Duration::from_secs(90),
        "every queued callback delivered",
        || {
            let pool = pool.clone();
            async move {
                count(
                    &pool,
                    "SELECT COUNT(*) FROM deliveries WHERE state <> 'delivered'",
                )
                .await
                    == 0
            }
        },
    )
    .await;
    let attempts = check_attempts(&pool, "at the end").await;
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(
        receiver.rejected.load(Ordering::SeqCst),
        0,
        "bad signatures"
    );
    let mut webhook_ids: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    for (reprocess_id, webhook_id, _) in &received {
        webhook_ids
            .entry(reprocess_id)
            .or_default()
            .insert(webhook_id);
    }
    for reprocess_id in &reprocesses {
        let ids = webhook_ids
            .get(reprocess_id)
            .unwrap_or_else(|| panic!("acked reprocess {reprocess_id} never reached the endpoint"));
        assert_eq!(
            ids.len(),
            1,
            "{reprocess_id} sent under several webhook-ids"
        );
        assert_eq!(ids.iter().next().unwrap().as_str(), reprocess_id.as_str());
        assert!(attempts.contains_key(reprocess_id));
    }
    let mut per_attempt: BTreeMap<(&String, u32), usize> = BTreeMap::new();
    for (id, _, attempt) in &received {
        *per_attempt.entry((id, *attempt)).or_default() += 1;
    }
    let resent = per_attempt.values().filter(|n| **n > 1).count();
    let multi = attempts.values().filter(|n| **n > 1).count();
    let acked = load.acked.lock().unwrap().clone();
    assert!(acked.unanswered > 0, "no request was cut off by a kill");
    eprintln!(
        "crash test: {kills} kills in {:?} (restarts took {restarts:?} in total); {} requests \
         sent, {} unanswered (cut off by a kill or sent while down); acked: {} short receipts, \
         {} long receipts, {} results, \
         {} reprocesses ({multi} with several attempts, {resent} attempts re-sent after a kill); \
         {stored_short} short events stored",
        started.elapsed(),
        acked.sent,
        acked.unanswered,
        acked.short.len(),
        acked.receipts.len() - acked.short.len(),
        acked.results.len(),
        acked.reprocesses.len(),
    );
    pool.close().await;
    drop(last);
}
