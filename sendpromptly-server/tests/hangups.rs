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
//!
//! Also here, on both engines:
//! - every write endpoint, its clients hanging up at random points many
//!   times over: afterwards the database is consistent (each incident row
//!   matches its event's record, no idempotency key left in flight, no
//!   connection discarded mid-transaction) and the server serves each
//!   endpoint normally;
//! - a writer blocked from outside (another process holding SQLite's write
//!   lock, or a PostgreSQL `LOCK TABLE`): `/healthz` turns 503 naming the
//!   writer, and 200 again once released; held past
//!   `--exit-after-writer-stall-seconds`, the server exits with status 75;
//! - the Rust SDK with a short `attempt_timeout` against that blocked
//!   writer: its attempts time out and retry with the same idempotency key,
//!   and once the writer is free every call succeeds and each event is
//!   stored once.

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
    postgres: bool,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<sendpromptly_server::store::postgres::testing::TestDatabase>,
}

async fn sqlite() -> Database {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hangups.db").display());
    Database {
        url,
        postgres: false,
        _dir: Some(dir),
        _pg: None,
    }
}

async fn postgres(test: &str) -> Option<Database> {
    use sendpromptly_server::store::postgres::testing;
    let pg = testing::TestDatabase::create(&testing::server_url(test)?).await;
    Some(Database {
        url: pg.url.clone(),
        postgres: true,
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
    serve_with(db, &[], extra)
}

/// [`serve`] with more `project create` flags.
fn serve_with(db: &Database, project: &[&str], extra: &[&str]) -> Served {
    cli(db, &["migrate"]);
    let mut create = vec!["project", "create", "--name", "hangups", "--json"];
    create.extend_from_slice(project);
    let created: Value = serde_json::from_str(&cli(db, &create)).unwrap();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    start_again(db, api_key, extra)
}

/// Starts `sendpromptly serve` on `db` (set up already) for `api_key`.
fn start_again(db: &Database, api_key: String, extra: &[&str]) -> Served {
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

    // Right away: plain and idempotent requests are served (the same key
    // again replays).
    let started = Instant::now();
    for (path, idempotency_key, body, expected) in [
        ("/v1/receipt", None, receipt("evt_after_plain", 3600), 201),
        (
            "/v1/receipt",
            Some("after-1"),
            receipt("evt_after_idem", 3600),
            201,
        ),
        (
            "/v1/receipt",
            Some("after-1"),
            receipt("evt_after_idem", 3600),
            201,
        ),
        (
            "/v1/result",
            Some("after-2"),
            success("evt_after_idem"),
            200,
        ),
    ] {
        assert_eq!(
            post(&base, &key, path, idempotency_key, &body).await,
            expected
        );
    }
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

// ---------------------------------------------------------------------------
// Every write endpoint, cancelled at random points

/// A raw request with any method.
fn raw_request(
    host: &str,
    api_key: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> Vec<u8> {
    let mut request = raw_post(host, api_key, path, key, body);
    if method != "POST" {
        request.splice(0..4, method.bytes());
    }
    request
}

/// The Stripe endpoint secret the hang-up tests give the provider tap.
const TAP_SECRET: &str = "whsec_hangupsTapSecret0123456789";

/// A Stripe `invoice.paid` delivery to the provider tap of `project`,
/// signed now with [`TAP_SECRET`], as raw bytes.
fn raw_tap_delivery(host: &str, project: &str, event_id: &str) -> Vec<u8> {
    let body = tap_body(event_id);
    let signature = tap_signature(&body);
    format!(
        "POST /v1/providers/stripe/webhooks/{project} HTTP/1.1\r\nHost: {host}\r\n\
         Stripe-Signature: {signature}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `Stripe-Signature` for `body`, signed now with [`TAP_SECRET`].
fn tap_signature(body: &str) -> String {
    sendpromptly_core::stripe::generate_test_header(
        body.as_bytes(),
        TAP_SECRET,
        chrono::Utc::now().timestamp(),
    )
}

fn tap_body(event_id: &str) -> String {
    json!({
        "id": event_id, "object": "event", "type": "invoice.paid",
        "created": chrono::Utc::now().timestamp(), "livemode": true,
        "data": {"object": {"id": format!("in_{event_id}"), "object": "invoice",
            "customer": "cus_hangups", "amount_paid": 1999, "currency": "usd"}}
    })
    .to_string()
}

async fn send(
    base: &str,
    api_key: &str,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(api_key)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path} did not answer within 5 s: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Opens an incident (a failure result); its id.
async fn failed_incident(base: &str, key: &str, event_id: &str) -> String {
    let (status, body) = send(
        base,
        key,
        reqwest::Method::POST,
        "/v1/result",
        &json!({"provider": "stripe", "event_id": event_id, "status": "failure", "error": "boom"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["incident"]["id"].as_str().unwrap().to_owned()
}

/// Fires `request` and hangs up at a random point (mid-request, or 0–5 ms
/// after it).
async fn hang_up(addr: &str, request: Vec<u8>) {
    let hangup = if rand::thread_rng().gen_bool(0.3) {
        Hangup::MidRequest
    } else {
        Hangup::AfterRequest
    };
    let _ = storm_client(addr.to_owned(), request, hangup).await;
}

/// Counts of what must be zero in a consistent database: incident rows
/// whose state differs from their event's record, idempotency keys still
/// in flight, and (SQLite) integrity and foreign-key faults.
async fn inconsistencies(db: &Database) -> Vec<(String, i64)> {
    let mut found = Vec::new();
    if db.postgres {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        for (what, sql) in [
            (
                "incident rows unlike their record",
                "SELECT COUNT(*) FROM incidents i JOIN events e ON e.pk = i.event_pk \
                 WHERE i.state IS DISTINCT FROM (e.record::jsonb -> 'incident' ->> 'state')",
            ),
            (
                "idempotency keys in flight",
                "SELECT COUNT(*) FROM idempotency_keys WHERE status IS NULL",
            ),
        ] {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            found.push((what.to_owned(), n));
        }
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        for (what, sql) in [
            (
                "incident rows unlike their record",
                "SELECT COUNT(*) FROM incidents i JOIN events e ON e.pk = i.event_pk \
                 WHERE i.state IS NOT json_extract(e.record, '$.incident.state')",
            ),
            (
                "idempotency keys in flight",
                "SELECT COUNT(*) FROM idempotency_keys WHERE status IS NULL",
            ),
            (
                "foreign-key faults",
                "SELECT COUNT(*) FROM pragma_foreign_key_check",
            ),
            (
                "integrity faults",
                "SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check <> 'ok'",
            ),
        ] {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            found.push((what.to_owned(), n));
        }
        pool.close().await;
    }
    found
}

/// The value of a metric without labels in `/metrics`.
async fn metric(base: &str, name: &str) -> f64 {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

async fn every_write_endpoint_survives_hangups(db: Database) {
    let hook = sendpromptly_server::testing::HookReceiver::start().await;
    let repair_url = hook.url("/repair");
    let served = serve_with(
        &db,
        &["--repair-url", &repair_url, "--allow-private-urls"],
        &[],
    );
    let base = served.process.url.clone();
    let key = served.api_key.clone();
    let host = base.trim_start_matches("http://").to_owned();
    const TRIES: usize = 24;

    let mut incidents = Vec::new();
    for i in 0..(3 * TRIES) {
        incidents.push(failed_incident(&base, &key, &format!("evt_cut_fail_{i}")).await);
    }
    let mut proof_links = Vec::new();
    for incident in &incidents[..TRIES] {
        let (status, body) = send(
            &base,
            &key,
            reqwest::Method::POST,
            &format!("/v1/incidents/{incident}/proof-links"),
            &json!({}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        proof_links.push(body["id"].as_str().unwrap().to_owned());
    }
    let mut batches = Vec::new();
    for _ in 0..TRIES {
        let (status, body) = send(
            &base,
            &key,
            reqwest::Method::POST,
            "/v1/reprocess-batches",
            &json!({"kind": "failed_result", "rate_per_second": 0.01, "concurrency": 1}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        batches.push(body["id"].as_str().unwrap().to_owned());
    }

    // The provider tap: a Stripe endpoint secret, and the project's id.
    let (status, body) = send(
        &base,
        &key,
        reqwest::Method::PATCH,
        "/v1/project",
        &json!({"provider_tap": {"stripe_endpoint_secrets": [TAP_SECRET]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, project) = get_json(&base, &key, "/v1/project").await;
    assert_eq!(status, 200, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();

    let mut cut = Vec::new();
    for i in 0..TRIES {
        let idem = (i % 2 == 0).then(|| format!("cut-{i}"));
        let idem = idem.as_deref();
        let requests = [
            raw_request(
                &host,
                &key,
                "POST",
                "/v1/receipt",
                idem.map(|k| format!("{k}-r")).as_deref(),
                &receipt(&format!("evt_cut_{i}"), 3600),
            ),
            raw_request(
                &host,
                &key,
                "POST",
                "/v1/result",
                idem.map(|k| format!("{k}-s")).as_deref(),
                &json!({"provider": "stripe", "event_id": format!("evt_cut_{i}"), "status": "failure", "error": "x"}),
            ),
            raw_request(
                &host,
                &key,
                "POST",
                &format!("/v1/incidents/{}/reprocess", incidents[i]),
                idem.map(|k| format!("{k}-p")).as_deref(),
                &json!({"note": "cut"}),
            ),
            raw_request(
                &host,
                &key,
                "POST",
                &format!("/v1/incidents/{}/resolve", incidents[TRIES + i]),
                idem.map(|k| format!("{k}-v")).as_deref(),
                &json!({"note": "fixed by hand"}),
            ),
            raw_request(
                &host,
                &key,
                "POST",
                &format!("/v1/incidents/{}/proof-links", incidents[2 * TRIES + i]),
                idem.map(|k| format!("{k}-l")).as_deref(),
                &json!({}),
            ),
            raw_request(
                &host,
                &key,
                "DELETE",
                &format!("/v1/proof-links/{}", proof_links[i]),
                None,
                &json!({}),
            ),
            raw_request(
                &host,
                &key,
                "POST",
                "/v1/reprocess-batches",
                idem.map(|k| format!("{k}-b")).as_deref(),
                &json!({"kind": "failed_result", "dry_run": i % 3 == 0, "rate_per_second": 0.01}),
            ),
            raw_request(
                &host,
                &key,
                "POST",
                &format!("/v1/reprocess-batches/{}/cancel", batches[i]),
                idem.map(|k| format!("{k}-c")).as_deref(),
                &json!({}),
            ),
            raw_request(
                &host,
                &key,
                "PATCH",
                "/v1/project",
                None,
                &json!({"default_deadline_seconds": 1800 + i}),
            ),
            raw_request(
                &host,
                &key,
                "POST",
                "/v1/project/signing-secrets/rotate",
                idem.map(|k| format!("{k}-k")).as_deref(),
                &json!({}),
            ),
            raw_tap_delivery(&host, &project, &format!("evt_cut_tap_{i}")),
        ];
        for request in requests {
            let addr = host.clone();
            cut.push(tokio::spawn(async move { hang_up(&addr, request).await }));
        }
    }
    for task in cut {
        task.await.unwrap();
    }

    // Requests the clients left finish on their own; then nothing is half-done.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = inconsistencies(&db).await;
        if found.iter().all(|(_, n)| *n == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "inconsistent after the hang-ups: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric(&base, "sendpromptly_db_connections_discarded_total").await,
        0.0
    );
    assert!(
        metric(&base, "sendpromptly_http_requests_abandoned_total").await > 0.0,
        "the test meant to abandon requests"
    );

    // And each endpoint serves normally.
    let fresh = failed_incident(&base, &key, "evt_cut_after").await;
    let other = failed_incident(&base, &key, "evt_cut_after_2").await;
    let post = reqwest::Method::POST;
    for (method, path, body, expected) in [
        (
            post.clone(),
            "/v1/receipt".to_owned(),
            receipt("evt_cut_after_r", 3600),
            201,
        ),
        (
            post.clone(),
            "/v1/result".to_owned(),
            success("evt_cut_after_r"),
            200,
        ),
        (
            post.clone(),
            format!("/v1/incidents/{fresh}/reprocess"),
            json!({}),
            202,
        ),
        (
            post.clone(),
            format!("/v1/incidents/{other}/resolve"),
            json!({"note": "by hand"}),
            200,
        ),
        (
            post.clone(),
            format!("/v1/incidents/{fresh}/proof-links"),
            json!({}),
            201,
        ),
        (
            post.clone(),
            "/v1/reprocess-batches".to_owned(),
            json!({"kind": "failed_result", "dry_run": true}),
            200,
        ),
        (
            reqwest::Method::PATCH,
            "/v1/project".to_owned(),
            json!({"default_deadline_seconds": 900}),
            200,
        ),
        (
            post.clone(),
            "/v1/project/signing-secrets/rotate".to_owned(),
            json!({}),
            201,
        ),
    ] {
        let (status, answer) = send(&base, &key, method, &path, &body).await;
        assert_eq!(status, expected, "{path}: {answer}");
    }
    // Tap deliveries whose client left after sending ran to completion.
    let mut tracked = 0;
    for i in 0..TRIES {
        let (status, _) =
            get_json(&base, &key, &format!("/v1/events/stripe/evt_cut_tap_{i}")).await;
        tracked += usize::from(status == 200);
    }
    assert!(tracked > 0, "no cut tap delivery was recorded");
    let body = tap_body("evt_cut_tap_after");
    let tapped = http()
        .post(format!("{base}/v1/providers/stripe/webhooks/{project}"))
        .header("Stripe-Signature", tap_signature(&body))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(tapped.status().as_u16(), 200);
    let tapped: Value = tapped.json().await.unwrap();
    assert_eq!(tapped["outcome"], "created", "{tapped}");
    let health = http().get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    drop(hook);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_endpoint_survives_hangups_on_sqlite() {
    every_write_endpoint_survives_hangups(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_endpoint_survives_hangups_on_postgres() {
    let Some(db) = postgres("hangups_endpoints").await else {
        return;
    };
    every_write_endpoint_survives_hangups(db).await;
}

// ---------------------------------------------------------------------------
// A writer blocked from outside

/// Another process's hold on the database's writes.
enum Blocker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// Takes SQLite's write lock (`BEGIN IMMEDIATE` on another connection), or
/// locks PostgreSQL's `events` table against writers.
async fn block_writer(db: &Database) -> Blocker {
    use sqlx::Connection;
    if db.postgres {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE")
            .execute(&mut conn)
            .await
            .unwrap();
        Blocker::Postgres(conn)
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        Blocker::Sqlite(conn)
    }
}

async fn release(blocker: Blocker) {
    use sqlx::Connection;
    match blocker {
        Blocker::Sqlite(mut conn) => {
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Blocker::Postgres(mut conn) => {
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// Polls `/healthz` until its status is `want` (20 s at most); its body.
async fn healthz_turns(base: &str, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = http().get(format!("{base}/healthz")).send().await {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status == want {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/healthz stayed {status}: {body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_blocked_writer_is_reported_then_ends_the_process(db: Database) {
    let served = serve(
        &db,
        &[
            "--health-writer-bound-seconds",
            "1",
            "--exit-after-writer-stall-seconds",
            "0",
        ],
    );
    let base = served.process.url.clone();
    healthz_turns(&base, 200).await;

    let blocker = block_writer(&db).await;
    let body = healthz_turns(&base, 503).await;
    assert_eq!(body["status"], "unhealthy");
    let problems = body["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["check"] == "writer"),
        "the writer is not named: {body}"
    );
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("sendpromptly_health_check_ok{check=\"writer\"} 0"),
        "/metrics does not show the failing writer check"
    );
    release(blocker).await;
    let body = healthz_turns(&base, 200).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(
        post(
            &base,
            &served.api_key,
            "/v1/receipt",
            Some("after-block"),
            &receipt("evt_after_block", 3600)
        )
        .await,
        201
    );
    let api_key = served.api_key.clone();
    drop(served);

    // Held past the exit bound: the process exits 75 for its supervisor.
    let mut served = start_again(
        &db,
        api_key,
        &[
            "--health-writer-bound-seconds",
            "1",
            "--exit-after-writer-stall-seconds",
            "2",
        ],
    );
    let blocker = block_writer(&db).await;
    let status = served.process.wait_exit(Duration::from_secs(20));
    release(blocker).await;
    let status = status.expect("the server kept running with its writer stuck");
    assert_eq!(status.code(), Some(75), "{status:?}");
    let log = std::fs::read_to_string(&served.log).unwrap_or_default();
    assert!(
        log.contains("stuck"),
        "the log does not say why it exited:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_writer_is_reported_then_ends_the_process_on_sqlite() {
    a_blocked_writer_is_reported_then_ends_the_process(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_writer_is_reported_then_ends_the_process_on_postgres() {
    let Some(db) = postgres("hangups_blocked").await else {
        return;
    };
    a_blocked_writer_is_reported_then_ends_the_process(db).await;
}

// ---------------------------------------------------------------------------
// The SDK's own timeouts against a blocked writer

async fn sdk_attempt_timeouts_retry_until_the_writer_is_free(db: Database) {
    use sendpromptly_client::{Client, ClientOptions, Provider, RetryConfig};
    let served = serve(&db, &[]);
    let base = served.process.url.clone();
    let sp = Client::with_options(ClientOptions {
        api_key: Some(served.api_key.clone()),
        base_url: Some(base.clone()),
        retry: RetryConfig {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            total_budget: Duration::from_secs(60),
            attempt_timeout: Duration::from_millis(300),
            ..RetryConfig::default()
        },
        ..ClientOptions::default()
    })
    .unwrap();

    let blocker = block_writer(&db).await;
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let sp = sp.clone();
            tokio::spawn(async move {
                sp.receipt(
                    Provider::Stripe,
                    format!("evt_sdk_slow_{i}"),
                    "invoice.paid",
                )
                .deadline_seconds(3600)
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    release(blocker).await;

    let mut retried = 0;
    for call in calls {
        let answer = call
            .await
            .unwrap()
            .expect("the SDK call succeeds once the writer is free");
        assert!(
            answer.meta.status == 201 || answer.meta.replayed,
            "{:?}",
            answer.meta
        );
        if answer.meta.attempts > 1 {
            retried += 1;
        }
    }
    assert!(
        retried > 0,
        "no attempt timed out: the writer was not blocked"
    );
    for i in 0..20 {
        let (status, event) = get_json(
            &base,
            &served.api_key,
            &format!("/v1/events/stripe/evt_sdk_slow_{i}"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            event["event"]["deliveries"], 1,
            "stored more than once: {event}"
        );
    }
    assert_eq!(
        post(
            &base,
            &served.api_key,
            "/v1/receipt",
            None,
            &receipt("evt_sdk_after", 3600)
        )
        .await,
        201
    );
    healthz_turns(&base, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_attempt_timeouts_retry_until_the_writer_is_free_on_sqlite() {
    sdk_attempt_timeouts_retry_until_the_writer_is_free(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_attempt_timeouts_retry_until_the_writer_is_free_on_postgres() {
    let Some(db) = postgres("hangups_sdk").await else {
        return;
    };
    sdk_attempt_timeouts_retry_until_the_writer_is_free(db).await;
}
