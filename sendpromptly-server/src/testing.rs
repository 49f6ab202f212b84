//! Test support (feature `test-support`): a real server on a loopback port
//! over a temporary SQLite file with a manual clock, and a real HTTP
//! receiver for repair callbacks that verifies their signatures, and a
//! recording HTTP receiver standing in for Slack and alert webhooks.

pub mod stripe_api;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sendpromptly_core::callback::{RepairCallback, verify_repair_request};
use sendpromptly_core::standard_webhooks::SigningSecret;

use crate::clock::{Clock, ManualClock};
use crate::config::ServerConfig;
use crate::provision::{self, ProjectCredentials};
use crate::server::{self, RunningServer};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// A running server for tests.
pub struct TestServer {
    /// The server.
    pub running: RunningServer,
    /// Its clock; advance it to pass deadlines and retry delays.
    pub clock: ManualClock,
    /// The `default` project's credentials.
    pub project: ProjectCredentials,
    /// The database URL (reuse it to restart on the same file).
    pub database_url: String,
    dir: Arc<tempfile::TempDir>,
    /// The PostgreSQL database of [`TestServer::start_on_postgres`],
    /// dropped with the server.
    postgres: Option<Arc<crate::store::postgres::testing::TestDatabase>>,
}

/// Fast settings for tests: short polling intervals, short leases.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        outbound: crate::outbound::OutboundPolicy {
            allow_private: true,
        },
        sweep_interval: Duration::from_millis(20),
        dispatch_interval: Duration::from_millis(20),
        callback_timeout: Duration::from_secs(5),
        callback_connect_timeout: Duration::from_secs(2),
        callback_lease: Duration::from_secs(30),
        retention_interval: Duration::from_millis(20),
        slo_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
        health_interval: Duration::from_millis(100),
        ..ServerConfig::default()
    }
}

impl TestServer {
    /// A fresh server with the `default` project.
    pub async fn start() -> TestServer {
        Self::start_with(test_config()).await
    }

    /// A fresh server with these settings.
    pub async fn start_with(config: ServerConfig) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database_url = format!("sqlite://{}", dir.path().join("sendpromptly.db").display());
        let store = open(&database_url).await;
        Self::launch(store, config, database_url, dir, None).await
    }

    /// Provisions the `default` project on a fresh `store` and starts a
    /// server on it with a new manual clock.
    async fn launch(
        store: Arc<dyn Store>,
        config: ServerConfig,
        database_url: String,
        dir: Arc<tempfile::TempDir>,
        postgres: Option<Arc<crate::store::postgres::testing::TestDatabase>>,
    ) -> TestServer {
        let clock = ManualClock::starting_now();
        let first = provision::first_start(store.as_ref(), clock.now())
            .await
            .expect("first start");
        let project = first
            .project
            .expect("a new database creates the default project");
        let running = server::start(store, Arc::new(clock.clone()), config)
            .await
            .expect("server starts");
        TestServer {
            running,
            clock,
            project,
            database_url,
            dir,
            postgres,
        }
    }

    /// A fresh server with the `default` project on a new database of the
    /// PostgreSQL server `admin_url` names (dropped with the server); it
    /// cannot [`restart`](Self::restart).
    pub async fn start_on_postgres(admin_url: &str) -> TestServer {
        use crate::store::postgres::{PostgresStore, testing::TestDatabase};
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database = TestDatabase::create(admin_url).await;
        let store = PostgresStore::connect(&database.url)
            .await
            .expect("connect to the test database")
            .with_keyring(crate::store::conformance::test_keyring());
        store.migrate().await.expect("migrate");
        let database_url = database.url.clone();
        Self::launch(
            Arc::new(store),
            test_config(),
            database_url,
            dir,
            Some(Arc::new(database)),
        )
        .await
    }

    /// Stops the server (gracefully) and starts a new one on the same database and clock.
    pub async fn restart(self) -> TestServer {
        let config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..self.running.state.config().clone()
        };
        assert!(self.postgres.is_none(), "restart runs on SQLite only");
        self.running.shutdown().await;
        let store = open(&self.database_url).await;
        let running = server::start(store, Arc::new(self.clock.clone()), config)
            .await
            .expect("server restarts");
        TestServer { running, ..self }
    }

    /// The base URL.
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// The store behind the server.
    pub fn store(&self) -> &dyn Store {
        self.running.state.store()
    }

    /// The folder holding the database.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// An HTTP client that sends this project's API key.
    pub fn api(&self) -> ApiClient {
        ApiClient::new(&self.url(), &self.project.api_key)
    }

    /// The server clock's current time.
    pub fn clock_now(&self) -> sendpromptly_core::Timestamp {
        self.clock.now()
    }

    /// Advances the clock.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.running.state.wake_dispatcher();
    }
}

/// Opens the SQLite file with the key file beside it (created on first
/// use, like `sendpromptly serve` does), so a restart reads its secrets.
async fn open(database_url: &str) -> Arc<dyn Store> {
    let key_file = crate::secrets::key_file_beside(database_url).expect("a file database");
    let (key, _) = crate::secrets::read_or_create_key_file(&key_file).expect("key file");
    let store = SqliteStore::connect(database_url)
        .await
        .expect("open sqlite")
        .with_keyring(Arc::new(crate::secrets::Keyring::new(&key, &[])));
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// A thin JSON client for tests.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// A response: status, headers, JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct ApiResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Parsed JSON body.
    pub json: serde_json::Value,
    /// Raw body.
    pub text: String,
}

impl ApiClient {
    /// A client for `base` with API key `key`.
    pub fn new(base: &str, key: &str) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        }
    }

    /// The same server with another key.
    pub fn with_key(&self, key: &str) -> ApiClient {
        ApiClient {
            key: key.to_owned(),
            ..self.clone()
        }
    }

    /// Sends a request with an optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        ApiResponse {
            status,
            headers,
            json,
            text,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> ApiResponse {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> ApiResponse {
        self.send(reqwest::Method::POST, path, Some(&body), &[])
            .await
    }
}

/// What the receiver got.
#[derive(Clone, Debug)]
pub struct ReceivedCallback {
    /// The verified, parsed callback (`None` if verification failed).
    pub callback: Option<RepairCallback>,
    /// The verification error, if any.
    pub error: Option<String>,
    /// The raw headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The status it answered.
    pub answered: u16,
    /// When it arrived, on the receiver's (the server's manual) clock.
    pub at: sendpromptly_core::Timestamp,
}

/// A scripted answer: status and optional `Retry-After`.
type ScriptedAnswer = (u16, Option<String>);

#[derive(Clone)]
struct ReceiverState {
    secret: Arc<Mutex<Vec<SigningSecret>>>,
    clock: ManualClock,
    received: Arc<Mutex<Vec<ReceivedCallback>>>,
    script: Arc<Mutex<VecDeque<ScriptedAnswer>>>,
    /// How long each answer is held (clock time), and the requests open now
    /// and at most so far.
    hold: Arc<Mutex<Duration>>,
    open: Arc<Mutex<(usize, usize)>>,
}

/// A real HTTP endpoint standing in for an app's repair endpoint.
pub struct CallbackReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    state: ReceiverState,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackReceiver {
    /// Starts a receiver that verifies with `secret` at the time of `clock`,
    /// answering 200 unless scripted otherwise.
    pub async fn start(secret: &str, clock: ManualClock) -> CallbackReceiver {
        let state = ReceiverState {
            secret: Arc::new(Mutex::new(vec![
                SigningSecret::parse(secret).expect("whsec_ secret"),
            ])),
            clock,
            received: Arc::default(),
            script: Arc::default(),
            hold: Arc::default(),
            open: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/repair", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CallbackReceiver { addr, state, task }
    }

    /// The repair URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/repair", self.addr)
    }

    /// The next answers, in order (status, optional Retry-After); then 200.
    pub fn script(&self, answers: &[(u16, Option<&str>)]) {
        let mut script = self.state.script.lock().expect("lock");
        script.extend(answers.iter().map(|(s, r)| (*s, r.map(str::to_owned))));
    }

    /// Holds each answer until this much time has passed on the clock (the
    /// server's manual clock: a slow endpoint), so that callbacks sent
    /// while others are unanswered are open at once ([`Self::max_open`]).
    pub fn hold(&self, each: Duration) {
        *self.state.hold.lock().expect("lock") = each;
    }

    /// The most requests that were open at once so far.
    pub fn max_open(&self) -> usize {
        self.state.open.lock().expect("lock").1
    }

    /// Replaces the secrets it verifies with.
    pub fn set_secrets(&self, secrets: &[&str]) {
        *self.state.secret.lock().expect("lock") = secrets
            .iter()
            .map(|s| SigningSecret::parse(s).expect("whsec_ secret"))
            .collect();
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<ReceivedCallback> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Stops listening (the port refuses connections afterwards).
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    /// Counts the request as open until it is answered or dropped.
    struct Open(Arc<Mutex<(usize, usize)>>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.lock().expect("lock").0 -= 1;
        }
    }
    let _open = {
        let mut open = state.open.lock().expect("lock");
        open.0 += 1;
        open.1 = open.1.max(open.0);
        Open(state.open.clone())
    };
    let arrived = state.clock.now();
    let hold = *state.hold.lock().expect("lock");
    while state.clock.now() < arrived + hold {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    answer(&state, arrived, headers, body)
}

fn answer(
    state: &ReceiverState,
    arrived: sendpromptly_core::Timestamp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secrets = state.secret.lock().expect("lock").clone();
    let verified = verify_repair_request(&body, &headers, &secrets, arrived);
    let (status, retry_after) = state
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or((200, None));
    let status = if verified.is_err() { 400 } else { status };
    state.received.lock().expect("lock").push(ReceivedCallback {
        at: arrived,
        error: verified.as_ref().err().map(ToString::to_string),
        callback: verified.ok(),
        headers,
        body,
        answered: status,
    });
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        format!("{{\"answered\":{status}}}"),
    )
        .into_response();
    if let Some(value) = retry_after.and_then(|v| v.parse().ok()) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One request a [`HookReceiver`] got.
#[derive(Clone, Debug)]
pub struct ReceivedHook {
    /// The request path.
    pub path: String,
    /// The raw headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The status it answered.
    pub answered: u16,
}

impl ReceivedHook {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone, Default)]
struct HookState {
    received: Arc<Mutex<Vec<ReceivedHook>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

/// A real HTTP endpoint that records every POST, standing in for a Slack
/// incoming webhook or an alert webhook; answers 200 unless scripted.
pub struct HookReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    state: HookState,
    task: tokio::task::JoinHandle<()>,
}

impl HookReceiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> HookReceiver {
        let state = HookState::default();
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive_hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hook receiver");
        let addr = listener.local_addr().expect("hook receiver addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HookReceiver { addr, state, task }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next answers' statuses, in order; then 200.
    pub fn script(&self, statuses: &[u16]) {
        self.state
            .script
            .lock()
            .expect("lock")
            .extend(statuses.iter().copied());
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<ReceivedHook> {
        self.state.received.lock().expect("lock").clone()
    }

    /// What was received on `path`.
    pub fn received_on(&self, path: &str) -> Vec<ReceivedHook> {
        self.received()
            .into_iter()
            .filter(|h| h.path == path)
            .collect()
    }

    /// Stops listening.
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn receive_hook(
    State(state): State<HookState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let status = state
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(200);
    state.received.lock().expect("lock").push(ReceivedHook {
        path: uri.path().to_owned(),
        headers,
        body,
        answered: status,
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        if status == 200 { "ok" } else { "unavailable" },
    )
        .into_response()
}

/// A real `sendpromptly serve` child process (the compiled binary, e.g.
/// `env!("CARGO_BIN_EXE_sendpromptly")` in an integration test) on a
/// loopback port; killed (SIGKILL) when dropped.
pub struct ServeProcess {
    /// Its base URL, as it printed it.
    pub url: String,
    child: std::process::Child,
}

impl ServeProcess {
    /// Starts `bin --database-url <database_url> serve --listen 127.0.0.1:0
    /// --allow-private-urls <extra…>` with `SENDPROMPTLY_LOG=warn`, its
    /// stderr appended to `log_path`; waits (60 s at most) until it prints
    /// where it listens.
    pub fn start(
        bin: &str,
        database_url: &str,
        extra: &[&str],
        log_path: &std::path::Path,
    ) -> ServeProcess {
        let mut command = Self::command(bin, database_url, &[]);
        command.args(extra);
        Self::spawn(command, log_path)
    }

    /// The command [`ServeProcess::start`] runs, with `global` flags (e.g.
    /// `--database-max-connections 8`) before `serve`: add more `serve`
    /// flags or environment, then [`ServeProcess::spawn`] it.
    pub fn command(bin: &str, database_url: &str, global: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(bin);
        command
            .args(["--database-url", database_url])
            .args(global)
            .args(["serve", "--allow-private-urls", "--listen", "127.0.0.1:0"])
            .env("SENDPROMPTLY_LOG", "warn");
        command
    }

    /// Spawns a `serve` command (see [`ServeProcess::command`]), its stderr
    /// appended to `log_path`; waits (60 s at most) until it prints where it
    /// listens.
    pub fn spawn(mut command: std::process::Command, log_path: &std::path::Path) -> ServeProcess {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("log file");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start sendpromptly serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("SendPromptly is listening on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let Ok(url) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!(
                "sendpromptly serve did not start: {}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        };
        ServeProcess { url, child }
    }

    /// Waits up to `limit` for the process to exit by itself; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no graceful shutdown.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a CLI command printed.
#[derive(Clone, Debug)]
pub struct CliOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `bin --database-url <database_url> <args…>` to completion (no
/// terminal: progress bars are hidden) with `SENDPROMPTLY_LOG=warn`.
pub fn run_cli(bin: &str, database_url: &str, args: &[&str]) -> CliOutput {
    let out = std::process::Command::new(bin)
        .args(["--database-url", database_url])
        .args(args)
        .env("SENDPROMPTLY_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sendpromptly");
    CliOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`run_cli`], panicking with its stderr unless it succeeds; its stdout.
pub fn cli_ok(bin: &str, database_url: &str, args: &[&str]) -> String {
    let out = run_cli(bin, database_url, args);
    assert!(
        out.success,
        "sendpromptly {args:?} failed:\n{}{}",
        out.stdout, out.stderr
    );
    out.stdout
}
