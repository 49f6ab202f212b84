//! Fault injection at every step: the real `sendpromptly serve` binary (built
//! with the `failpoints` feature, see `src/faults.rs`) on a SQLite file,
//! driven over HTTP with the Rust SDK through the whole workflow — receipt →
//! result or deadline → incident → alert → reprocess (one by one and in
//! batches) → signed callback → the repair endpoint's own success result →
//! resolved — while a seeded plan makes its steps fail: errors returned,
//! panics in tasks, the process exiting at a failpoint, `kill -9` at random
//! moments, each followed by a restart on the same file and port (as a
//! supervisor would).
//!
//! The last phase keeps only transient faults (errors and panics, no exits)
//! and the server must still converge; then an auditor checks, from the
//! database and from what the endpoints received:
//! - every acknowledged (2xx) receipt is stored, once (`deliveries` 1, one
//!   `receipt.recorded`), every acknowledged result applied;
//! - every overdue event has exactly one incident, one `deadline.passed`,
//!   one `incident.opened`;
//! - every reprocess reached the repair endpoint under one `webhook-id` (its
//!   id), its recorded attempts numbered 1..n; no callback left pending;
//! - no incident is left in `reprocessing` (each repair reported success),
//!   and no record is past its due time;
//! - every batch completed;
//! - every incident was announced by exactly one alert (one `webhook-id`,
//!   perhaps received more than once: at-least-once), none lost;
//! - `/healthz` answers 200, and the server never exited by itself.
//!
//! The seed fixes the fault plan and the workload's choices (not the
//! threads' interleaving); it is printed on failure. A short seed set runs
//! by default; `SENDPROMPTLY_LONG_TESTS=1` runs many more seeds and cycles,
//! `SENDPROMPTLY_FAULT_SEED=N` replays one seed, `SENDPROMPTLY_FAULT_KEEP=1`
//! keeps the database and the server's log.
//!
//! On PostgreSQL (`scripts/test-postgres.sh`; skipped without
//! `SENDPROMPTLY_TEST_POSTGRES_URL`): three instances, one bulk reprocess of
//! 1,000 incidents (10,000 with `SENDPROMPTLY_LONG_TESTS=1`), a random
//! instance killed and restarted again and again while it runs; the batch
//! completes and every incident gets exactly one successful callback
//! sequence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sendpromptly_client::{
    Client, ClientOptions, Receipt, ReprocessBatchRequest, ResultSignal, ResultStatus, RetryConfig,
};
use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::verify_repair_request;
use sendpromptly_core::machine::EventRecord;
use sendpromptly_core::model::{IncidentKind, IncidentState, Provider};
use sendpromptly_core::standard_webhooks::SigningSecret;
use sendpromptly_server::testing::{HookReceiver, ServeProcess, cli_ok};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
const WORKERS: usize = 4;
/// How long the auditor waits for the server to settle (a bound, not a timing).
const SETTLE: Duration = Duration::from_secs(90);

fn long() -> bool {
    std::env::var("SENDPROMPTLY_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// The seeds to run: `SENDPROMPTLY_FAULT_SEED`, else a fixed short set (or
/// a long one).
fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SENDPROMPTLY_FAULT_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return vec![seed];
    }
    if long() {
        let base = rand::random::<u32>() as u64;
        (0..20).map(|i| base + i).collect()
    } else {
        vec![1, 2]
    }
}

// ---------------------------------------------------------------------------
// Fault plans

/// Every failpoint of the server (see `src/faults.rs`).
const FAILPOINTS: [&str; 9] = [
    "group.before_run",
    "group.after_commit",
    "sweeper.pass",
    "sweeper.after_sweep",
    "pacer.pass",
    "dispatcher.before_send",
    "dispatcher.after_send",
    "alerts.before_send",
    "alerts.after_send",
];

/// A `FAILPOINTS` value: some failpoints, each erroring or panicking now and
/// then; with `crash` (the faulty cycles), more often, and one of them may
/// also end the process; without (the last phase), now and then only.
fn fault_plan(rng: &mut StdRng, crash: bool) -> String {
    let mut plan = Vec::new();
    for name in FAILPOINTS {
        if rng.gen_bool(0.5) {
            let percent = if crash {
                rng.gen_range(3..=15)
            } else {
                rng.gen_range(1..=5)
            };
            let action = if rng.gen_bool(0.5) { "return" } else { "panic" };
            plan.push(format!("{name}={percent}%{action}"));
        }
    }
    if crash {
        let name = FAILPOINTS[rng.gen_range(0..FAILPOINTS.len())];
        plan.retain(|p| !p.starts_with(&format!("{name}=")));
        plan.push(format!("{name}={}%return(exit)", rng.gen_range(2..=10)));
    }
    plan.join(";")
}

// ---------------------------------------------------------------------------
// The server, restarted like a supervisor would

struct Server {
    database_url: String,
    port: u16,
    log: PathBuf,
    /// More `serve` flags and environment.
    args: Vec<String>,
    env: Vec<(String, String)>,
    process: Mutex<Option<ServeProcess>>,
    failpoints: Mutex<String>,
    /// Exits the harness did not cause (a failpoint's `exit`, or worse).
    exits: AtomicUsize,
    starts: AtomicUsize,
}

impl Server {
    fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(BIN);
        command
            .args(["--database-url", &self.database_url])
            .args(["serve", "--allow-private-urls"])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--sweep-interval-ms", "100"])
            .args(["--callback-retry-delays", "1,1,1,1,1,1,1,1,1,1"])
            .args(["--callback-timeout-seconds", "1"])
            .args(["--callback-lease-seconds", "2"])
            .args(["--alert-group-window-seconds", "1"])
            .env("SENDPROMPTLY_LOG", "warn")
            .env("SENDPROMPTLY_API_RATE_LIMIT", "0")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("FAILPOINTS", self.failpoints.lock().unwrap().as_str());
        command
    }

    /// A server on its own loopback port (not started yet).
    fn new(
        database_url: &str,
        log: PathBuf,
        failpoints: String,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Arc<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Arc::new(Server {
            database_url: database_url.to_owned(),
            port,
            log,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            process: Mutex::new(None),
            failpoints: Mutex::new(failpoints),
            exits: AtomicUsize::new(0),
            starts: AtomicUsize::new(0),
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), retrying a start cut short by a failpoint.
    async fn start(self: &Arc<Self>) {
        loop {
            let this = self.clone();
            let started =
                tokio::task::spawn_blocking(move || ServeProcess::spawn(this.command(), &this.log))
                    .await;
            if let Ok(process) = started {
                self.starts.fetch_add(1, Ordering::SeqCst);
                *self.process.lock().unwrap() = Some(process);
                return;
            }
            self.exits.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `kill -9`, then a start with the new `failpoints`.
    async fn crash_and_restart(self: &Arc<Self>, failpoints: String) {
        if let Some(mut process) = self.process.lock().unwrap().take() {
            process.kill();
        }
        *self.failpoints.lock().unwrap() = failpoints;
        self.start().await;
    }

    /// Whether the process exited by itself; restarts it if so.
    async fn restart_if_exited(self: &Arc<Self>) -> bool {
        let exited = {
            let mut process = self.process.lock().unwrap();
            let exited = process
                .as_mut()
                .is_some_and(|p| p.wait_exit(Duration::ZERO).is_some());
            if exited {
                *process = None;
            }
            exited
        };
        if exited {
            self.exits.fetch_add(1, Ordering::SeqCst);
            self.start().await;
        }
        exited
    }
}

// ---------------------------------------------------------------------------
// The repair endpoint: verifies each callback, answers, then reports the
// repair's success result through the SDK (as an app's repair job would).

/// What the repair endpoint saw of one reprocess.
#[derive(Clone, Debug, Default)]
struct Seen {
    incident_id: String,
    webhook_ids: BTreeSet<String>,
    attempts: Vec<u32>,
    /// Whether it answered 2xx to one of them.
    succeeded: bool,
}

#[derive(Clone)]
struct Repair {
    secrets: Arc<Mutex<Vec<SigningSecret>>>,
    /// The instances' SDK clients: a report goes to one, then the next.
    clients: Arc<Mutex<Vec<Client>>>,
    /// Reprocess id -> what was seen of it.
    received: Arc<Mutex<BTreeMap<String, Seen>>>,
    /// Reports not yet acknowledged.
    reporting: Arc<AtomicUsize>,
    rejected: Arc<AtomicUsize>,
}

async fn repair(State(repair): State<Repair>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secrets = repair.secrets.lock().unwrap().clone();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let Ok(callback) = verify_repair_request(&body, &headers, &secrets, now) else {
        repair.rejected.fetch_add(1, Ordering::SeqCst);
        return StatusCode::BAD_REQUEST;
    };
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // A quarter of the reprocesses fail their first attempt (500: retried,
    // without pausing a batch as a 429/503 would).
    let fail_first = callback.reprocess_id.bytes().map(u32::from).sum::<u32>() % 4 == 0;
    let fails = callback.attempt == 1 && fail_first;
    let first_success = {
        let mut received = repair.received.lock().unwrap();
        let seen = received.entry(callback.reprocess_id.clone()).or_default();
        seen.incident_id = callback.incident_id.clone();
        seen.webhook_ids.insert(webhook_id);
        seen.attempts.push(callback.attempt);
        let first = !fails && !seen.succeeded;
        seen.succeeded |= !fails;
        first
    };
    if fails {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if first_success {
        let clients = repair.clients.lock().unwrap().clone();
        let reporting = repair.reporting.clone();
        reporting.fetch_add(1, Ordering::SeqCst);
        let signal = ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: callback.event.provider,
            event_id: callback.event.event_id.clone(),
            status: ResultStatus::Success,
            error: None,
            reprocess_id: Some(callback.reprocess_id.clone()),
            metadata: None,
        };
        let key = format!("repair-{}", callback.reprocess_id);
        tokio::spawn(async move {
            // Until acknowledged or refused (e.g. already succeeded), on
            // one instance after the other.
            for client in clients.iter().cycle() {
                match client.post_result(&signal, Some(key.clone())).await {
                    Ok(_) => break,
                    Err(err) if err.status().is_some_and(|s| (400..500).contains(&s)) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            reporting.fetch_sub(1, Ordering::SeqCst);
        });
    }
    StatusCode::OK
}

async fn start_repair() -> (Repair, String) {
    let repair_state = Repair {
        secrets: Arc::default(),
        clients: Arc::default(),
        received: Arc::default(),
        reporting: Arc::default(),
        rejected: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/repair", axum::routing::post(repair))
        .with_state(repair_state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (repair_state, format!("http://{addr}/repair"))
}

// ---------------------------------------------------------------------------
// The workload

/// The SDK, its retries riding over restarts (same key, same port).
fn sdk(api_key: &str, url: &str) -> Client {
    Client::with_options(ClientOptions {
        api_key: Some(api_key.to_owned()),
        base_url: Some(url.to_owned()),
        retry: RetryConfig {
            max_attempts: 200,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(300),
            total_budget: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(5),
            ..RetryConfig::default()
        },
        ..ClientOptions::default()
    })
    .unwrap()
}

/// What the server acknowledged with a 2xx.
#[derive(Default)]
struct Acked {
    receipts: BTreeSet<String>,
    /// Events left to their 1 s deadline.
    overdue: BTreeSet<String>,
    /// Event id -> acknowledged result.
    results: BTreeMap<String, ResultStatus>,
    reprocesses: BTreeSet<String>,
    batches: BTreeSet<String>,
    /// Calls that failed for good (after the SDK's retries).
    failed_calls: usize,
}

#[derive(Clone)]
struct Workload {
    client: Client,
    acked: Arc<Mutex<Acked>>,
}

fn receipt(event_id: &str, deadline_seconds: u32) -> Receipt {
    Receipt {
        traceparent: None,
        tracestate: None,
        provider: Provider::Stripe,
        event_id: event_id.to_owned(),
        event_type: "invoice.paid".to_owned(),
        subject: Some("cus_faults".to_owned()),
        effect: None,
        deadline_seconds: Some(deadline_seconds),
        metadata: None,
        occurred_at: None,
    }
}

impl Workload {
    fn failed(&self) {
        self.acked.lock().unwrap().failed_calls += 1;
    }

    /// One story: a receipt left to its deadline, a success, or a failure
    /// reprocessed by hand.
    async fn story(&self, name: &str, kind: u32) {
        let deadline = if kind < 40 { 1 } else { 3600 };
        if self
            .client
            .post_receipt(&receipt(name, deadline), None)
            .await
            .is_err()
        {
            return self.failed();
        }
        {
            let mut acked = self.acked.lock().unwrap();
            acked.receipts.insert(name.to_owned());
            if kind < 40 {
                acked.overdue.insert(name.to_owned());
                return;
            }
        }
        let status = if kind < 60 {
            ResultStatus::Success
        } else {
            ResultStatus::Failure
        };
        let signal = ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: name.to_owned(),
            status,
            error: (status == ResultStatus::Failure).then(|| "faults".to_owned()),
            reprocess_id: None,
            metadata: None,
        };
        let reply = match self.client.post_result(&signal, None).await {
            Ok(reply) => reply,
            Err(_) => return self.failed(),
        };
        self.acked
            .lock()
            .unwrap()
            .results
            .insert(name.to_owned(), status);
        // Half the failures are reprocessed one by one; the rest wait for a batch.
        let Some(incident) = reply.incident else {
            return;
        };
        if kind >= 80 {
            match self.client.reprocess(&incident.id, Some("faults")).await {
                Ok(reply) => {
                    self.acked
                        .lock()
                        .unwrap()
                        .reprocesses
                        .insert(reply.reprocess_id);
                }
                Err(_) => self.failed(),
            }
        }
    }

    /// A bulk reprocess of every open incident.
    async fn batch(&self) {
        let request = ReprocessBatchRequest {
            state: Some(IncidentState::Open),
            rate_per_second: Some(50.0),
            concurrency: Some(5),
            note: Some("faults batch".to_owned()),
            ..Default::default()
        };
        match self.client.start_reprocess_batch(&request).await {
            Ok(batch) => {
                self.acked.lock().unwrap().batches.insert(batch.id);
            }
            Err(_) => self.failed(),
        }
    }

    async fn run(self, seed: u64, worker: usize, stop: Arc<AtomicBool>) {
        let mut rng = StdRng::seed_from_u64(seed ^ ((worker as u64 + 1) * 0x9e37_79b9));
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let kind = rng.gen_range(0..100);
            if worker == 0 && n % 15 == 0 {
                self.batch().await;
                continue;
            }
            self.story(&format!("evt_{seed}_{worker}_{n}"), kind).await;
        }
    }
}

// ---------------------------------------------------------------------------
// The auditor

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

async fn count(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// Waits (at most [`SETTLE`]) until `check` holds, restarting a server that
/// exited; the number of such exits.
async fn settle<F, Fut>(server: &Arc<Server>, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + SETTLE;
    while !check().await {
        server.restart_if_exited().await;
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "never settled: {what}; FAILPOINTS={}; the server's last log lines:\n{}",
                server.failpoints.lock().unwrap(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn audit(pool: &SqlitePool, acked: &Acked, repair: &Repair, hooks: &HookReceiver) {
    // Every acknowledged receipt stored once, every acknowledged result applied.
    let rows = sqlx::query(
        "SELECT e.event_id, e.state, e.record, \
           (SELECT COUNT(*) FROM timeline t WHERE t.event_pk = e.pk AND t.kind = 'receipt.recorded'), \
           (SELECT COUNT(*) FROM timeline t WHERE t.event_pk = e.pk AND t.kind = 'deadline.passed'), \
           (SELECT COUNT(*) FROM timeline t WHERE t.event_pk = e.pk AND t.kind = 'incident.opened'), \
           (SELECT COUNT(*) FROM incidents i WHERE i.event_pk = e.pk) \
         FROM events e",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut stored = BTreeMap::new();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    for row in &rows {
        let event_id: String = row.get(0);
        let record: EventRecord = serde_json::from_str(&row.get::<String, _>(2)).unwrap();
        let counts: [i64; 4] = [row.get(3), row.get(4), row.get(5), row.get(6)];
        if let Some(due) = record.next_due_at() {
            assert!(
                now.millis_since(due) < 5_000,
                "{event_id} is past its due time: {record:?}"
            );
        }
        if let Some(incident) = &record.incident {
            assert_ne!(
                incident.state,
                IncidentState::Reprocessing,
                "{event_id}: incident left in reprocessing: {record:?}"
            );
        }
        stored.insert(event_id, (row.get::<String, _>(1), record, counts));
    }
    for event_id in &acked.receipts {
        let (_, record, counts) = stored
            .get(event_id)
            .unwrap_or_else(|| panic!("acknowledged receipt {event_id} lost"));
        assert_eq!(record.deliveries, 1, "{event_id} stored more than once");
        assert_eq!(counts[0], 1, "{event_id}: receipt.recorded entries");
    }
    for event_id in &acked.overdue {
        let (_, record, counts) = &stored[event_id];
        assert_eq!(
            record.incident.as_ref().map(|i| i.kind),
            Some(IncidentKind::MissingResult),
            "{event_id}: overdue without its incident"
        );
        assert_eq!(
            (counts[1], counts[2], counts[3]),
            (1, 1, 1),
            "{event_id}: deadline.passed, incident.opened, incidents"
        );
    }
    for (event_id, status) in &acked.results {
        let (state, record, counts) = &stored[event_id];
        match status {
            ResultStatus::Success => assert_eq!(state, "succeeded", "{event_id}"),
            ResultStatus::Failure => {
                assert!(
                    record.incident.is_some(),
                    "{event_id}: failure, no incident"
                );
                assert_eq!((counts[2], counts[3]), (1, 1), "{event_id}: incidents");
            }
        }
    }

    // Callbacks: one webhook-id per reprocess, attempts 1..n, all delivered.
    assert_eq!(repair.rejected.load(Ordering::SeqCst), 0, "bad signatures");
    let received = repair.received.lock().unwrap().clone();
    for reprocess_id in &acked.reprocesses {
        assert!(
            received.contains_key(reprocess_id),
            "acknowledged reprocess {reprocess_id} never reached the endpoint"
        );
    }
    for (reprocess_id, seen) in &received {
        assert_eq!(
            seen.webhook_ids.iter().collect::<Vec<_>>(),
            vec![reprocess_id],
            "{reprocess_id}: callback sequences"
        );
    }
    let attempts =
        sqlx::query("SELECT detail FROM timeline WHERE kind = 'callback.attempt' ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut recorded: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in &attempts {
        let detail: Value = serde_json::from_str(&row.get::<String, _>(0)).unwrap();
        recorded
            .entry(detail["reprocess_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(detail["attempt"].as_u64().unwrap());
    }
    for (reprocess_id, numbers) in &recorded {
        let want: Vec<u64> = (1..=numbers.len() as u64).collect();
        assert_eq!(numbers, &want, "recorded attempts of {reprocess_id}");
    }

    // Alerts: every incident announced by exactly one alert, none lost.
    let mut announced: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let hooks_received = hooks.received_on("/hook");
    for hook in &hooks_received {
        let webhook_id = hook
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = hook.json();
        let incidents: Vec<Value> = match body["incident"].as_object() {
            Some(_) => vec![body["incident"].clone()],
            None => body["incidents"].as_array().cloned().unwrap_or_default(),
        };
        for incident in incidents {
            announced
                .entry(incident["id"].as_str().unwrap().to_owned())
                .or_default()
                .insert(webhook_id.clone());
        }
    }
    let incidents: Vec<String> = sqlx::query_scalar("SELECT id FROM incidents")
        .fetch_all(pool)
        .await
        .unwrap();
    for incident in &incidents {
        let alerts = announced.get(incident).cloned().unwrap_or_default();
        assert_eq!(
            alerts.len(),
            1,
            "incident {incident} announced by {alerts:?} (lost or doubled)"
        );
    }
}

// ---------------------------------------------------------------------------

/// Migrates the SQLite database at `database_url` and creates the
/// project: its repair URL a verifying loopback endpoint, its alerts sent
/// to a loopback webhook. The endpoint, the webhook and the API key.
async fn set_up(database_url: &str) -> (Repair, HookReceiver, String) {
    let (repair, repair_url) = start_repair().await;
    let hooks = HookReceiver::start().await;
    cli_ok(BIN, database_url, &["migrate"]);
    let created: Value = serde_json::from_str(&cli_ok(
        BIN,
        database_url,
        &[
            "project",
            "create",
            "--name",
            "faults",
            "--repair-url",
            &repair_url,
            "--allow-private-urls",
            "--json",
        ],
    ))
    .unwrap();
    let channels =
        serde_json::to_string(&json!([{"type": "webhook", "url": hooks.url("/hook")}])).unwrap();
    cli_ok(
        BIN,
        database_url,
        &[
            "alerts",
            "set",
            "--project",
            "faults",
            "--allow-private-urls",
            "--channels",
            &channels,
        ],
    );
    repair
        .secrets
        .lock()
        .unwrap()
        .push(SigningSecret::parse(created["signing_secret"].as_str().unwrap()).unwrap());
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    (repair, hooks, api_key)
}

async fn run_seed(seed: u64) {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let cycles = if long() { 30 } else { 4 };
    // `SENDPROMPTLY_FAULT_KEEP=1` keeps the database and the server's log.
    let keep = std::env::var("SENDPROMPTLY_FAULT_KEEP").is_ok_and(|v| v == "1");
    let dir = tempfile::Builder::new()
        .prefix("faults")
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        eprintln!("faults seed {seed}: kept in {}", dir.path().display());
    }
    let file = dir.path().join("faults.db");
    let database_url = format!("sqlite://{}", file.display());
    let (repair, hooks, api_key) = set_up(&database_url).await;
    let server = Server::new(
        &database_url,
        dir.path().join("server.log"),
        fault_plan(&mut rng, true),
        &[],
        &[],
    );
    server.start().await;
    let client = sdk(&api_key, &server.url());
    *repair.clients.lock().unwrap() = vec![client.clone()];
    let workload = Workload {
        client,
        acked: Arc::default(),
    };

    // Faulty cycles: random faults, exits, kill -9 and restarts under load.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(workload.clone().run(seed, w, stop.clone())))
        .collect();
    let mut plans = vec![server.failpoints.lock().unwrap().clone()];
    for _ in 0..cycles {
        let until = Instant::now() + Duration::from_millis(rng.gen_range(400..1600));
        while Instant::now() < until {
            server.restart_if_exited().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let plan = fault_plan(&mut rng, true);
        eprintln!("faults seed {seed}: FAILPOINTS={plan}");
        plans.push(plan.clone());
        server.crash_and_restart(plan).await;
    }
    // The last phase: transient faults only; the server must converge.
    let plan = fault_plan(&mut rng, false);
    eprintln!("faults seed {seed}: last phase, FAILPOINTS={plan}");
    plans.push(plan.clone());
    server.crash_and_restart(plan).await;
    let exits_before = server.exits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    // One last batch for what is still open.
    workload.batch().await;

    let pool = open(&file).await;
    settle(&server, "every callback delivered", || {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'",
            )
            .await
                == 0
        }
    })
    .await;
    settle(&server, "every repair reported", || {
        let reporting = repair.reporting.clone();
        async move { reporting.load(Ordering::SeqCst) == 0 }
    })
    .await;
    settle(&server, "every batch completed", || {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                "SELECT COUNT(*) FROM reprocess_batches WHERE state = 'running'",
            )
            .await
                == 0
        }
    })
    .await;
    settle(
        &server,
        "deadlines handled, incidents out of reprocessing",
        || {
            let pool = pool.clone();
            async move {
                let due = Timestamp::from_datetime(chrono::Utc::now()).unix_millis() - 2_000;
                count(
                    &pool,
                    &format!(
                        "SELECT COUNT(*) FROM events WHERE due_at IS NOT NULL AND due_at < {due}"
                    ),
                )
                .await
                    == 0
                    && count(
                        &pool,
                        "SELECT COUNT(*) FROM incidents WHERE state = 'reprocessing'",
                    )
                    .await
                        == 0
            }
        },
    )
    .await;
    settle(&server, "every alert sent", || {
        let pool = pool.clone();
        async move {
            count(&pool, "SELECT COUNT(*) FROM alerts WHERE state = 'pending'").await == 0
        }
    })
    .await;
    // The health check tells the truth: after transient faults, healthy.
    let http = reqwest::Client::new();
    settle(&server, "/healthz answers 200", || {
        let request = http.get(format!("{}/healthz", server.url())).send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    assert_eq!(
        server.exits.load(Ordering::SeqCst),
        exits_before,
        "the server exited under transient faults only ({})",
        plans.last().unwrap()
    );
    let acked = std::mem::take(&mut *workload.acked.lock().unwrap());
    audit(&pool, &acked, &repair, &hooks).await;
    eprintln!(
        "faults seed {seed}: {} starts ({} exits at a failpoint) in {:?}; acked {} receipts \
         ({} left overdue), {} results, {} reprocesses, {} batches; {} calls failed for good; \
         plans: {plans:?}",
        server.starts.load(Ordering::SeqCst),
        server.exits.load(Ordering::SeqCst),
        started.elapsed(),
        acked.receipts.len(),
        acked.overdue.len(),
        acked.results.len(),
        acked.reprocesses.len(),
        acked.batches.len(),
        acked.failed_calls,
    );
    pool.close().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeded_faults_at_every_step_keep_every_promise() {
    for seed in seeds() {
        // The seed is printed on failure (`SENDPROMPTLY_FAULT_SEED` replays it).
        let outcome = tokio::spawn(run_seed(seed)).await;
        if let Err(err) = outcome {
            panic!("fault seed {seed} failed; replay with SENDPROMPTLY_FAULT_SEED={seed}: {err}");
        }
    }
}

/// One panic at each step, once: the step's work is retried and every loop
/// goes on (the seeded test's two defects, found by seed 1, made
/// deterministic: a panic in a sweeper pass stopped the sweeper, and one in
/// a group commit left `/healthz` reporting the writer stuck until the
/// watchdog ended the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_panic_at_each_step_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("panics.db").display());
    let (repair, hooks, api_key) = set_up(&database_url).await;
    let plan = FAILPOINTS
        .iter()
        .map(|name| format!("{name}=1*panic"))
        .collect::<Vec<_>>()
        .join(";");
    let server = Server::new(&database_url, dir.path().join("server.log"), plan, &[], &[]);
    server.start().await;
    let client = sdk(&api_key, &server.url());
    *repair.clients.lock().unwrap() = vec![client.clone()];

    // A receipt left to its deadline, and a failure reprocessed, through
    // the first group commits (one panics; the SDK retries).
    client
        .post_receipt(&receipt("evt_late", 1), None)
        .await
        .expect("receipt");
    client
        .post_receipt(&receipt("evt_failed", 3600), None)
        .await
        .expect("receipt");
    let failed = client
        .post_result(
            &ResultSignal {
                traceparent: None,
                tracestate: None,
                provider: Provider::Stripe,
                event_id: "evt_failed".to_owned(),
                status: ResultStatus::Failure,
                error: Some("boom".to_owned()),
                reprocess_id: None,
                metadata: None,
            },
            None,
        )
        .await
        .expect("result");
    let incident = failed.incident.expect("an incident").id;
    let reprocess = client
        .reprocess(&incident, Some("after a panic"))
        .await
        .expect("reprocess")
        .reprocess_id;

    // The deadline opens its incident, the callback is delivered and the
    // repair reported, both incidents are announced, and /healthz is 200.
    let pool = open(&dir.path().join("panics.db")).await;
    let http = reqwest::Client::new();
    settle(&server, "the late event's incident opened", || {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                "SELECT COUNT(*) FROM events WHERE event_id = 'evt_late' AND state = 'overdue'",
            )
            .await
                == 1
        }
    })
    .await;
    settle(&server, "the reprocessed incident resolved", || {
        let client = client.clone();
        let incident = incident.clone();
        async move {
            client
                .get_incident(&incident)
                .await
                .is_ok_and(|detail| detail.incident.state == IncidentState::Resolved)
        }
    })
    .await;
    settle(&server, "both incidents announced", || {
        let hooks = hooks.received_on("/hook");
        async move { hooks.len() >= 2 }
    })
    .await;
    settle(&server, "/healthz answers 200", || {
        let request = http.get(format!("{}/healthz", server.url())).send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    assert!(repair.received.lock().unwrap().contains_key(&reprocess));
    // The group-commit writer still takes writes (a dead one left each
    // write to run alone, and the writer reported stuck).
    let before = group_transactions(&http, &server.url()).await;
    client
        .post_receipt(&receipt("evt_after", 3600), None)
        .await
        .expect("receipt");
    assert!(
        group_transactions(&http, &server.url()).await > before,
        "a receipt after the panics did not go through the group-commit writer"
    );
    assert_eq!(server.exits.load(Ordering::SeqCst), 0, "the server exited");
    pool.close().await;
}

/// `sendpromptly_group_commit_transactions_total` from `/metrics`.
async fn group_transactions(http: &reqwest::Client, url: &str) -> u64 {
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("/metrics body");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("sendpromptly_group_commit_transactions_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no group-commit transactions in /metrics:\n{metrics}"))
}

// ---------------------------------------------------------------------------
// PostgreSQL: a crash loop of three instances during a bulk reprocess
// (run by scripts/test-postgres.sh; skipped without a database)

/// The master key every instance shares (a public test key).
const TEST_SECRET_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Runs `f(i)` for `0..n`, `concurrency` at once.
async fn for_each_concurrently<F, Fut>(n: usize, concurrency: usize, f: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (f, next) = (f.clone(), next.clone());
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

async fn pg_count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// Waits (at most `limit`) until `check` holds.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_bulk_reprocess_completes_through_a_crash_loop_of_three_instances() {
    use sendpromptly_server::store::postgres::testing::{self, TestDatabase};
    let Some(admin_url) = testing::server_url("crash-loop test") else {
        return;
    };
    let (incidents, rate) = if long() {
        (10_000, 500.0)
    } else {
        (1_000, 200.0)
    };
    let started = Instant::now();
    let db = TestDatabase::create(&admin_url).await;
    let dir = tempfile::tempdir().unwrap();
    let (repair, repair_url) = start_repair().await;
    let cli = |args: &[&str]| {
        let mut with_key = vec!["--secret-key", TEST_SECRET_KEY];
        with_key.extend_from_slice(args);
        cli_ok(BIN, &db.url, &with_key)
    };
    cli(&["migrate"]);
    let created: Value = serde_json::from_str(&cli(&[
        "project",
        "create",
        "--name",
        "crash-loop",
        "--repair-url",
        &repair_url,
        "--allow-private-urls",
        "--json",
    ]))
    .unwrap();
    repair
        .secrets
        .lock()
        .unwrap()
        .push(SigningSecret::parse(created["signing_secret"].as_str().unwrap()).unwrap());
    let servers: Vec<Arc<Server>> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            Server::new(
                &db.url,
                dir.path().join(format!("{name}.log")),
                String::new(),
                &[
                    "--database-max-connections",
                    "8",
                    "--callback-concurrency",
                    "16",
                ],
                &[("SENDPROMPTLY_SECRET_KEY", TEST_SECRET_KEY)],
            )
        })
        .collect();
    for server in &servers {
        server.start().await;
    }
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let clients: Vec<Client> = servers.iter().map(|s| sdk(&api_key, &s.url())).collect();
    *repair.clients.lock().unwrap() = clients.clone();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();

    // Overdue events over the three instances: one missing_result incident each.
    {
        let clients = clients.clone();
        for_each_concurrently(incidents, 32, move |i| {
            let client = clients[i % clients.len()].clone();
            async move {
                client
                    .post_receipt(&receipt(&format!("evt_{i}"), 1), None)
                    .await
                    .expect("receipt");
            }
        })
        .await;
    }
    wait_until(Duration::from_secs(180), "every incident open", || {
        let pool = pool.clone();
        async move {
            pg_count(&pool, "SELECT COUNT(*) FROM incidents WHERE state = 'open'").await
                == incidents as i64
        }
    })
    .await;

    // The bulk reprocess, while random instances are killed and restarted.
    let batch = clients[0]
        .start_reprocess_batch(&ReprocessBatchRequest {
            state: Some(IncidentState::Open),
            rate_per_second: Some(rate),
            concurrency: Some(50),
            note: Some("crash loop".to_owned()),
            ..Default::default()
        })
        .await
        .expect("start the batch");
    let mut rng = StdRng::seed_from_u64(rand::random());
    let mut kills = 0;
    let limit = Instant::now() + Duration::from_secs(if long() { 900 } else { 240 });
    loop {
        let running = pg_count(
            &pool,
            "SELECT COUNT(*) FROM reprocess_batches WHERE state = 'running'",
        )
        .await;
        if running == 0 {
            break;
        }
        assert!(Instant::now() < limit, "the batch never completed");
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1200))).await;
        let victim = &servers[rng.gen_range(0..servers.len())];
        victim.crash_and_restart(String::new()).await;
        kills += 1;
    }

    // Every incident: one reprocess, one callback sequence that succeeded,
    // its success reported, resolved.
    wait_until(Duration::from_secs(180), "every incident resolved", || {
        let pool = pool.clone();
        let reporting = repair.reporting.clone();
        async move {
            reporting.load(Ordering::SeqCst) == 0
                && pg_count(
                    &pool,
                    "SELECT COUNT(*) FROM incidents WHERE state <> 'resolved'",
                )
                .await
                    == 0
        }
    })
    .await;
    let view = clients[0].reprocess_batch(&batch.id).await.unwrap();
    assert_eq!(view.state, "completed", "{view:?}");
    assert_eq!(view.counts.sent, incidents as u64, "{view:?}");
    // One callback per incident, finished: delivered, or cancelled by the
    // repair's own success result when that came before the attempt was
    // recorded (an instance killed in between, or just faster).
    assert_eq!(
        pg_count(
            &pool,
            "SELECT COUNT(DISTINCT incident_id) FROM deliveries \
             WHERE state IN ('delivered', 'cancelled')"
        )
        .await,
        incidents as i64,
        "incidents with a finished callback"
    );
    assert_eq!(
        pg_count(&pool, "SELECT COUNT(*) FROM deliveries").await,
        incidents as i64,
        "one callback per incident"
    );
    assert_eq!(repair.rejected.load(Ordering::SeqCst), 0, "bad signatures");
    let received = repair.received.lock().unwrap().clone();
    let mut by_incident: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    let mut resent = 0;
    for (reprocess_id, seen) in &received {
        assert_eq!(
            seen.webhook_ids.iter().collect::<Vec<_>>(),
            vec![reprocess_id],
            "{reprocess_id}: callback sequences"
        );
        resent += seen.attempts.len() - seen.attempts.iter().collect::<BTreeSet<_>>().len();
        by_incident.entry(&seen.incident_id).or_default().push(seen);
    }
    assert_eq!(
        by_incident.len(),
        incidents,
        "incidents that got a callback"
    );
    for (incident, seen) in &by_incident {
        assert_eq!(
            (seen.len(), seen.iter().filter(|s| s.succeeded).count()),
            (1, 1),
            "{incident}: reprocesses, successful callback sequences"
        );
    }
    eprintln!(
        "crash loop: {incidents} incidents, {kills} kills, {resent} attempts re-sent after a \
         kill, {:?} in all",
        started.elapsed()
    );
    pool.close().await;
}
