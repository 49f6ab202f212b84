//! Clients that hang up mid-request, on a real `sendpromptly serve` process
//! (the compiled binary) over SQLite and, with
//! `SENDPROMPTLY_TEST_POSTGRES_URL`, PostgreSQL.
//!
//! The storm sends what the SDKs send (an `Idempotency-Key` on every
//! request) over raw sockets and closes each socket at a random instant:
//! before the body is complete, right after it, or a few milliseconds
//! later, while some clients stay to read their answer. Afterwards the
//! server must serve ordinary and idempotent requests at once, open an
//! overdue event's incident within the sweep bound, hold every event whose
//! receipt it acknowledged, report healthy, and have logged no transaction
//! left open on a pooled connection.
//!
//! (Issue #18: this storm wedged the SQLite server before the fix: every
//! later write hung until the request timeout while `/healthz` said 200.)

use std::time::{Duration, Instant};

use rand::Rng;
use sendpromptly_server::testing::{ServeProcess, cli_ok};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
/// A public test master key, so PostgreSQL instances and the CLI share it.
const TEST_SECRET_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// One database the test runs on.
struct Database {
    url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<sendpromptly_server::store::postgres::testing::TestDatabase>,
}

async fn sqlite() -> Database {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hangups.db").display());
    Database {
        url,
        _dir: Some(dir),
        _pg: None,
    }
}

async fn postgres(test: &str) -> Option<Database> {
    use sendpromptly_server::store::postgres::testing;
    let pg = testing::TestDatabase::create(&testing::server_url(test)?).await;
    Some(Database {
        url: pg.url.clone(),
        _dir: None,
        _pg: Some(pg),
    })
}

/// A server on `db` with a fresh project; its API key.
struct Served {
    process: ServeProcess,
    api_key: String,
    log: std::path::PathBuf,
    _log_dir: tempfile::TempDir,
}

fn cli(db: &Database, args: &[&str]) -> String {
    let mut with_key = vec!["--secret-key", TEST_SECRET_KEY];
    with_key.extend_from_slice(args);
    cli_ok(BIN, &db.url, &with_key)
}

fn serve(db: &Database, extra: &[&str]) -> Served {
    cli(db, &["migrate"]);
    let created: Value = serde_json::from_str(&cli(
        db,
        &["project", "create", "--name", "hangups", "--json"],
    ))
    .unwrap();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("serve.log");
    let mut command = ServeProcess::command(BIN, &db.url, &[]);
    command
        .env("SENDPROMPTLY_SECRET_KEY", TEST_SECRET_KEY)
        .env("SENDPROMPTLY_API_RATE_LIMIT", "0")
        .args(["--sweep-interval-ms", "100"])
        .args(extra);
    let process = ServeProcess::spawn(command, &log);
    Served {
        process,
        api_key,
        log,
        _log_dir: log_dir,
    }
}

/// A complete `POST` with an idempotency key, as raw bytes.
fn raw_post(host: &str, api_key: &str, path: &str, key: Option<&str>, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let key = key
        .map(|k| format!("Idempotency-Key: {k}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {api_key}\r\n\
         Content-Type: application/json\r\n{key}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn receipt(event_id: &str, deadline_seconds: u32) -> Value {
    json!({
        "provider": "stripe", "event_id": event_id, "event_type": "invoice.paid",
        "subject": "cus_storm", "deadline_seconds": deadline_seconds,
    })
}

fn success(event_id: &str) -> Value {
    json!({"provider": "stripe", "event_id": event_id, "status": "success"})
}

/// How a storm client behaves.
#[derive(Clone, Copy, Debug)]
enum Hangup {
    /// Closes after part of the request.
    MidRequest,
    /// Closes 0–4 ms after the whole request.
    AfterRequest,
    /// Stays and reads the answer.
    Reads,
}

/// Sends `request` and behaves as `hangup` says; the status line's code
/// when it read the answer.
async fn storm_client(addr: String, request: Vec<u8>, hangup: Hangup) -> Option<u16> {
    let mut stream = TcpStream::connect(&addr).await.ok()?;
    match hangup {
        Hangup::MidRequest => {
            let cut = rand::thread_rng().gen_range(1..request.len());
            let _ = stream.write_all(&request[..cut]).await;
            None
        }
        Hangup::AfterRequest => {
            stream.write_all(&request).await.ok()?;
            let wait = rand::thread_rng().gen_range(0..=4_000);
            tokio::time::sleep(Duration::from_micros(wait)).await;
            None
        }
        Hangup::Reads => {
            stream.write_all(&request).await.ok()?;
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
                .await
                .ok()?
                .ok()?;
            let line = String::from_utf8_lossy(&answer);
            line.split_whitespace().nth(1)?.parse().ok()
        }
    }
}

/// The storm: `clients` sockets at once, each a receipt (every fourth a
/// result for an earlier event) with its own idempotency key; returns the
/// event ids whose receipt was acknowledged with a 2xx.
async fn storm(base: &str, api_key: &str, round: usize, clients: usize) -> Vec<String> {
    let host = base.trim_start_matches("http://").to_owned();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let event_id = format!("evt_storm_{round}_{i}");
        let (path, body) = if i % 4 == 3 {
            (
                "/v1/result",
                success(&format!("evt_storm_{round}_{}", i - 1)),
            )
        } else {
            ("/v1/receipt", receipt(&event_id, 3600))
        };
        let key = format!("key-{round}-{i}");
        let request = raw_post(&host, api_key, path, Some(&key), &body);
        let hangup = match rand::thread_rng().gen_range(0..10) {
            0..=1 => Hangup::MidRequest,
            2..=7 => Hangup::AfterRequest,
            _ => Hangup::Reads,
        };
        let addr = host.clone();
        let is_receipt = path == "/v1/receipt";
        tasks.push(tokio::spawn(async move {
            let status = storm_client(addr, request, hangup).await;
            (event_id, is_receipt, status)
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        let (event_id, is_receipt, status) = task.await.unwrap();
        if is_receipt && status.is_some_and(|s| (200..300).contains(&s)) {
            acknowledged.push(event_id);
        }
    }
    acknowledged
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn post(base: &str, api_key: &str, path: &str, key: Option<&str>, body: &Value) -> u16 {
    let mut request = http()
        .post(format!("{base}{path}"))
        .bearer_auth(api_key)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    match request.send().await {
        Ok(response) => response.status().as_u16(),
        Err(e) => panic!("POST {path} did not answer within 5 s: {e}"),
    }
}

async fn get_json(base: &str, api_key: &str, path: &str) -> (u16, Value) {
    let response = http()
        .get(format!("{base}{path}"))
        .bearer_auth(api_key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} did not answer within 5 s: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The whole check on one database.
async fn storm_then_serve(db: Database) {
    let served = serve(&db, &[]);
    let base = served.process.url.clone();
    let key = served.api_key.clone();

    let mut acknowledged = Vec::new();
    for round in 0..12 {
        acknowledged.extend(storm(&base, &key, round, 400).await);
    }

    // Right away: plain and idempotent requests are served.
    let started = Instant::now();
    assert_eq!(
        post(
            &base,
            &key,
            "/v1/receipt",
            None,
            &receipt("evt_after_plain", 3600)
        )
        .await,
        201
    );
    assert_eq!(
        post(
            &base,
            &key,
            "/v1/receipt",
            Some("after-1"),
            &receipt("evt_after_idem", 3600)
        )
        .await,
        201
    );
    // The same key again replays.
    assert_eq!(
        post(
            &base,
            &key,
            "/v1/receipt",
            Some("after-1"),
            &receipt("evt_after_idem", 3600)
        )
        .await,
        201
    );
    assert_eq!(
        post(
            &base,
            &key,
            "/v1/result",
            Some("after-2"),
            &success("evt_after_idem")
        )
        .await,
        200
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "after the storm, four requests took {:?}",
        started.elapsed()
    );

    // An overdue event opens its incident within the sweep bound.
    assert_eq!(
        post(
            &base,
            &key,
            "/v1/receipt",
            Some("overdue"),
            &receipt("evt_overdue", 1)
        )
        .await,
        201
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, event) = get_json(&base, &key, "/v1/events/stripe/evt_overdue").await;
        if event["incident"]["state"] == "open" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the overdue event opened no incident within 10 s: {event}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every acknowledged receipt is stored.
    assert!(
        !acknowledged.is_empty(),
        "no storm client read an acknowledgement"
    );
    for event_id in &acknowledged {
        let (status, _) = get_json(&base, &key, &format!("/v1/events/stripe/{event_id}")).await;
        assert_eq!(status, 200, "acknowledged {event_id} is missing");
    }

    let health = http().get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    let log = std::fs::read_to_string(&served.log).unwrap_or_default();
    for wedge in [
        "non-zero transaction depth",
        "pool timed out",
        "returned to the pool inside a transaction",
    ] {
        assert!(!log.contains(wedge), "the server logged {wedge:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_storm_of_hangups_leaves_sqlite_serving() {
    storm_then_serve(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_storm_of_hangups_leaves_postgres_serving() {
    let Some(db) = postgres("hangups_storm").await else {
        return;
    };
    storm_then_serve(db).await;
}
