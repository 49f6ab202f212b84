//! [`Client`]: one connection pool, the API key, the retry policy, and the
//! one retry loop every call goes through.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::{Rng, RngCore};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, Url};
use sendpromptly_core::Timestamp;
use sendpromptly_core::model::{Provider, Receipt, ResultSignal};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::config::{ClientOptions, DevMode, ENV_DEV, RetryConfig};
use crate::error::{ApiError, Error, TransportError, TransportErrorKind};
use crate::types::{
    EventDetail, EventFilter, EventList, Health, IncidentDetail, IncidentFilter, IncidentList,
    ProjectUpdate, ProjectView, ProofLinkCreated, ProofLinkView, ReprocessBatchPlan,
    ReprocessBatchRequest, ReprocessBatchView, ReprocessResponse, ResolveResponse, ResponseMeta,
    RotatedSecret, SignalResponse,
};

/// The `Idempotency-Key` request header.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// The response header marking a replayed answer.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// The response header carrying the server's request id.
pub const REQUEST_ID_HEADER: &str = "Request-Id";
/// The prefix of generated idempotency keys.
pub const IDEMPOTENCY_KEY_PREFIX: &str = "sp_idem_";

/// A SendPromptly API client.
///
/// Cheap to clone (the clones share one connection pool); build one per
/// process and pass clones around (e.g. in axum state).
///
/// Every call runs under the client's [`RetryConfig`]: connection errors,
/// timeouts, 429 and 5xx are retried with backoff and jitter, honouring
/// `Retry-After`, within a total time budget (3 s by default); other 4xx are
/// returned at once. POSTs carry one `Idempotency-Key` per logical call,
/// reused on every retry.
///
/// ```no_run
/// use sendpromptly_client::{Client, Provider};
///
/// # async fn run() -> Result<(), sendpromptly_client::Error> {
/// // SENDPROMPTLY_API_KEY and SENDPROMPTLY_URL from the environment:
/// let sp = Client::from_env()?;
/// sp.receipt(Provider::Stripe, "evt_1Q2w3E", "invoice.paid")
///     .subject("cus_9s8d7f")
///     .effect("credits.add")
///     .await?;
/// // ... apply the business effect ...
/// sp.success(Provider::Stripe, "evt_1Q2w3E").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    retry: Arc<RetryConfig>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_key: String,
    dev: Option<DevMode>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("api_key", &redact(&self.inner.api_key))
            .field("retry", &*self.retry)
            .field("dev_mode", &self.inner.dev)
            .finish()
    }
}

fn redact(key: &str) -> String {
    let shown: String = key.chars().take(8).collect();
    format!("{shown}…")
}

/// One request of the API, described once and sent as many times as the
/// retry policy allows.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) segments: Vec<String>,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) idempotency_key: Option<String>,
}

impl Call {
    fn new(method: Method, segments: &[&str]) -> Call {
        Call {
            method,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            idempotency_key: None,
        }
    }

    fn json(mut self, body: &impl Serialize) -> Result<Call, Error> {
        self.body = Some(serde_json::to_vec(body).map_err(|err| {
            Error::config(format!("could not serialise the request body: {err}"))
        })?);
        Ok(self)
    }

    /// A POST with a JSON body and an idempotency key (`key`, or a new one).
    fn post(segments: &[&str], body: &impl Serialize, key: Option<String>) -> Result<Call, Error> {
        let mut call = Call::new(Method::POST, segments).json(body)?;
        call.idempotency_key = Some(key.unwrap_or_else(new_idempotency_key));
        Ok(call)
    }
}

/// A complete answer (any status).
pub(crate) struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn request_id(&self) -> Option<String> {
        self.header(REQUEST_ID_HEADER).map(str::to_owned)
    }

    fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| sendpromptly_core::retry::parse_retry_after(v, now()))
    }
}

/// A successful answer with how the call went.
pub(crate) struct Success {
    answer: Answer,
    attempts: u32,
    idempotency_key: Option<String>,
}

impl Success {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.answer.body).map_err(|err| Error::Decode {
            status: self.answer.status,
            request_id: self.answer.request_id(),
            message: err.to_string(),
        })
    }

    fn meta(&self) -> ResponseMeta {
        ResponseMeta {
            status: self.answer.status,
            request_id: self.answer.request_id(),
            replayed: self
                .answer
                .header(REPLAYED_HEADER)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            attempts: self.attempts,
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

/// Why one attempt failed.
enum Failure {
    Api(ApiError),
    Transport(TransportErrorKind, String),
}

/// A new idempotency key: `sp_idem_`, then the current Unix time in
/// milliseconds (12 hex digits) and 80 random bits (20 hex digits).
///
/// Time first, so that keys made one after another sort one after another:
/// the server's idempotency index then grows at its end instead of at a
/// random page per key (random keys cost the SQLite server a sixth to a third of
/// its ingest rate, `docs/benchmarks.md`, "Random keys"). 80 random bits
/// per millisecond keep keys from different processes apart.
///
/// ```
/// let key = sendpromptly_client::new_idempotency_key();
/// assert!(key.starts_with("sp_idem_"));
/// assert_eq!(key.len(), 8 + 32);
/// ```
pub fn new_idempotency_key() -> String {
    // From the operating system, not the thread-local generator: a process
    // forked after using it (gunicorn or uwsgi workers, the Python binding)
    // inherits its buffered output and would repeat the parent's keys, which
    // the server then refuses as `idempotency_key_reused`.
    let mut bytes = [0u8; 16];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        rand::thread_rng().fill_bytes(&mut bytes);
    }
    let random = u128::from_le_bytes(bytes) & ((1u128 << 80) - 1);
    let millis = now().unix_millis().clamp(0, (1i64 << 48) - 1);
    format!("{IDEMPOTENCY_KEY_PREFIX}{millis:012x}{random:020x}")
}

/// The current time as a core [`Timestamp`].
pub(crate) fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(millis)
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

fn classify(err: &reqwest::Error) -> TransportErrorKind {
    if err.is_connect() {
        TransportErrorKind::Connect
    } else if err.is_timeout() {
        TransportErrorKind::Timeout
    } else if err.is_request() || err.is_body() || err.is_decode() {
        TransportErrorKind::ConnectionClosed
    } else {
        TransportErrorKind::Other
    }
}

#[derive(serde::Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetailWire,
}

#[derive(serde::Deserialize)]
struct ErrorDetailWire {
    #[serde(rename = "type")]
    kind: String,
    message: String,
    #[serde(default)]
    param: Option<String>,
}

fn api_error(answer: &Answer) -> ApiError {
    let (kind, message, param) = match serde_json::from_slice::<ErrorEnvelope>(&answer.body) {
        Ok(envelope) => (
            envelope.error.kind,
            envelope.error.message,
            envelope.error.param,
        ),
        Err(_) => {
            let text = String::from_utf8_lossy(&answer.body);
            let snippet: String = text.trim().chars().take(200).collect();
            let reason = reqwest::StatusCode::from_u16(answer.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            (
                "http_error".to_owned(),
                format!("HTTP {} {reason} {snippet}", answer.status)
                    .trim()
                    .to_owned(),
                None,
            )
        }
    };
    ApiError {
        status: answer.status,
        kind,
        message,
        param,
        request_id: answer.request_id(),
        retry_after: answer.retry_after(),
        attempts: 0,
    }
}

impl Client {
    /// A client for `base_url` with `api_key`; the retry policy is
    /// [`RetryConfig::default`] with the `SENDPROMPTLY_RETRY_*` environment
    /// overrides.
    ///
    /// ```
    /// let sp = sendpromptly_client::Client::new("sp_live_example", "https://sendpromptly.example.com").unwrap();
    /// assert_eq!(sp.base_url(), "https://sendpromptly.example.com/");
    /// ```
    pub fn new(api_key: impl Into<String>, base_url: impl Into<String>) -> Result<Client, Error> {
        Client::with_options(ClientOptions {
            api_key: Some(api_key.into()),
            base_url: Some(base_url.into()),
            ..ClientOptions::from_env()?
        })
    }

    /// A client configured from the environment: `SENDPROMPTLY_API_KEY`,
    /// `SENDPROMPTLY_URL`, `SENDPROMPTLY_CONNECT_TIMEOUT_MS` and the
    /// `SENDPROMPTLY_RETRY_*` overrides.
    pub fn from_env() -> Result<Client, Error> {
        Client::with_options(ClientOptions::from_env()?)
    }

    /// A client from explicit options; a `None` API key or base URL falls
    /// back to `SENDPROMPTLY_API_KEY` / `SENDPROMPTLY_URL`, and `dev: None`
    /// to `SENDPROMPTLY_DEV` (see [`DevMode`] for when the client logs
    /// signals instead of sending them).
    pub fn with_options(options: ClientOptions) -> Result<Client, Error> {
        Client::with_options_in(options, &|name| std::env::var(name).ok())
    }

    /// [`Client::with_options`] with `lookup` standing in for the
    /// environment (for tests and language bindings).
    pub fn with_options_in(
        mut options: ClientOptions,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Client, Error> {
        if options.api_key.is_none() || options.base_url.is_none() {
            let mut from_env = ClientOptions {
                api_key: options.api_key.take(),
                base_url: options.base_url.take(),
                ..ClientOptions::default()
            };
            from_env.fill_from(lookup)?;
            options.api_key = from_env.api_key;
            options.base_url = from_env.base_url;
        }
        let dev = DevMode::resolve(options.dev, options.api_key.is_some(), lookup)?;
        if let Some(reason) = dev {
            // No key or URL needed: nothing is sent.
            options
                .api_key
                .get_or_insert_with(|| "sp_dev_mode".to_owned());
            options
                .base_url
                .get_or_insert_with(|| "http://sendpromptly.invalid/".to_owned());
            crate::dev::announce(reason);
        }
        let api_key = options.api_key.ok_or_else(|| {
            Error::config(format!(
                "no API key: pass one or set SENDPROMPTLY_API_KEY (it starts with `sp_`); to try the SDK without a server, set {ENV_DEV}=1 (signals are logged, not sent)"
            ))
        })?;
        if !api_key.starts_with("sp_")
            || api_key.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::config(
                "the API key must start with `sp_` and contain no spaces; copy it as printed by `sendpromptly project create`",
            ));
        }
        let base_url = options.base_url.ok_or_else(|| {
            Error::config("no base URL: pass one or set SENDPROMPTLY_URL (e.g. https://sendpromptly.example.com)")
        })?;
        let mut base = Url::parse(base_url.trim()).map_err(|err| {
            Error::config(format!(
                "the base URL {base_url:?} is not an absolute URL: {err}"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::config(format!(
                "the base URL {base_url:?} must be an http:// or https:// URL"
            )));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        options.retry.validate()?;
        let mut user_agent = format!("sendpromptly-rust/{}", env!("CARGO_PKG_VERSION"));
        if let Some(suffix) = options
            .user_agent_suffix
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            user_agent.push(' ');
            user_agent.push_str(suffix);
        }
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(|err| {
                Error::config(format!(
                    "could not build the HTTP client: {}",
                    error_chain(&err)
                ))
            })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                api_key,
                dev,
            }),
            retry: Arc::new(options.retry),
        })
    }

    /// The same client (same connection pool) with another retry policy.
    ///
    /// ```
    /// # let sp = sendpromptly_client::Client::new("sp_live_example", "http://127.0.0.1:7700").unwrap();
    /// use sendpromptly_client::RetryConfig;
    /// let patient = sp.with_retry(RetryConfig::background());
    /// assert_eq!(patient.retry_config().max_attempts, 20);
    /// ```
    pub fn with_retry(&self, retry: RetryConfig) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            retry: Arc::new(retry),
        }
    }

    /// Why the client is in dev mode (logging signals instead of sending
    /// them), or `None` when it sends them.
    pub fn dev_mode(&self) -> Option<DevMode> {
        self.inner.dev
    }

    /// The retry policy in force.
    pub fn retry_config(&self) -> &RetryConfig {
        &self.retry
    }

    /// The base URL (with a trailing slash).
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    fn url(&self, call: &Call) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(&call.segments);
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        url
    }

    async fn attempt(&self, url: &Url, call: &Call) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url.clone())
            .bearer_auth(&self.inner.api_key)
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        if let Some(key) = &call.idempotency_key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends `call` under `retry`: the one retry loop of the SDK.
    pub(crate) async fn execute(&self, call: &Call, retry: &RetryConfig) -> Result<Success, Error> {
        if self.inner.dev.is_some() {
            return Err(crate::dev::no_server(call));
        }
        let started = Instant::now();
        let deadline = started + retry.total_budget;
        let url = self.url(call);
        let mut shown_url = url.clone();
        shown_url.set_query(None);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let limit = retry.attempt_timeout.min(remaining);
            let failure = match tokio::time::timeout(limit, self.attempt(&url, call)).await {
                Ok(Ok(answer)) if answer.status < 400 => {
                    return Ok(Success {
                        answer,
                        attempts: attempt,
                        idempotency_key: call.idempotency_key.clone(),
                    });
                }
                Ok(Ok(answer)) => Failure::Api(api_error(&answer)),
                Ok(Err(err)) => Failure::Transport(classify(&err), error_chain(&err)),
                Err(_) => Failure::Transport(
                    TransportErrorKind::Timeout,
                    format!("no complete answer within {} ms", limit.as_millis()),
                ),
            };
            let (retryable, retry_after) = match &failure {
                Failure::Api(api) => (
                    (api.status == 429 && retry.retry_on.too_many_requests)
                        || (api.status >= 500 && retry.retry_on.server_errors)
                        || (api.status == 409
                            && api.kind == "idempotency_key_in_flight"
                            && retry.retry_on.server_errors),
                    api.retry_after,
                ),
                Failure::Transport(kind, _) => (
                    match kind {
                        TransportErrorKind::Connect | TransportErrorKind::ConnectionClosed => {
                            retry.retry_on.connection_errors
                        }
                        TransportErrorKind::Timeout => retry.retry_on.timeouts,
                        TransportErrorKind::Other => false,
                    },
                    None,
                ),
            };
            let give_up = |budget_exhausted: bool| match failure {
                Failure::Api(mut api) => Error::Api({
                    api.attempts = attempt;
                    api
                }),
                Failure::Transport(kind, message) => Error::Transport(TransportError {
                    kind,
                    message,
                    url: shown_url.to_string(),
                    attempts: attempt,
                    elapsed: started.elapsed(),
                    budget_exhausted,
                }),
            };
            if !retryable || attempt >= retry.max_attempts {
                let out_of_time = Instant::now() >= deadline;
                return Err(give_up(out_of_time));
            }
            let mut wait = retry.backoff(attempt, rand::thread_rng().r#gen::<f64>());
            if let Some(asked) = retry_after {
                wait = wait.max(asked);
            }
            if Instant::now() + wait >= deadline {
                tracing::debug!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "sendpromptly: the next retry would exceed the time budget; giving up"
                );
                return Err(give_up(true));
            }
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                url = %shown_url,
                "sendpromptly: attempt failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn run<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        self.execute(&call, &self.retry).await?.decode()
    }

    pub(crate) async fn send_signal(
        &self,
        call: &Call,
        retry: &RetryConfig,
    ) -> Result<SignalResponse, Error> {
        if self.inner.dev.is_some() {
            return crate::dev::log_signal(call);
        }
        let success = self.execute(call, retry).await?;
        let mut response: SignalResponse = success.decode()?;
        response.meta = success.meta();
        Ok(response)
    }

    pub(crate) fn receipt_call(receipt: &Receipt, key: Option<String>) -> Result<Call, Error> {
        receipt.validate()?;
        Call::post(&["v1", "receipt"], receipt, key)
    }

    pub(crate) fn result_call(result: &ResultSignal, key: Option<String>) -> Result<Call, Error> {
        result.validate()?;
        Call::post(&["v1", "result"], result, key)
    }

    /// Records a receipt from a plain [`Receipt`] (`POST /v1/receipt`).
    ///
    /// The fields are checked locally first (the server's rules); a new
    /// idempotency key is generated unless `idempotency_key` is given. Most
    /// code uses the builder [`Client::receipt`] instead; this form suits
    /// code that already holds a `Receipt` (and language bindings).
    pub async fn post_receipt(
        &self,
        receipt: &Receipt,
        idempotency_key: Option<String>,
    ) -> Result<SignalResponse, Error> {
        let call = Self::receipt_call(receipt, idempotency_key)?;
        self.send_signal(&call, &self.retry).await
    }

    /// Records a result from a plain [`ResultSignal`] (`POST /v1/result`);
    /// see [`Client::post_receipt`].
    pub async fn post_result(
        &self,
        result: &ResultSignal,
        idempotency_key: Option<String>,
    ) -> Result<SignalResponse, Error> {
        let call = Self::result_call(result, idempotency_key)?;
        self.send_signal(&call, &self.retry).await
    }

    /// One event with its timeline and incident.
    pub async fn get_event(
        &self,
        provider: Provider,
        event_id: &str,
    ) -> Result<EventDetail, Error> {
        self.run(Call::new(
            Method::GET,
            &["v1", "events", provider.as_str(), event_id],
        ))
        .await
    }

    /// Searches events, newest first (e.g. every event of one customer).
    ///
    /// ```no_run
    /// # async fn run(sp: sendpromptly_client::Client) -> Result<(), sendpromptly_client::Error> {
    /// use sendpromptly_client::EventFilter;
    /// let page = sp
    ///     .search_events(&EventFilter { subject: Some("cus_9s8d7f".into()), ..Default::default() })
    ///     .await?;
    /// for event in page.data {
    ///     println!("{} {:?}", event.event_id, event.state);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn search_events(&self, filter: &EventFilter) -> Result<EventList, Error> {
        let mut call = Call::new(Method::GET, &["v1", "events"]);
        call.query = filter.query();
        self.run(call).await
    }

    /// Lists incidents, most recently opened first, one page at a time.
    ///
    /// ```no_run
    /// # async fn run(sp: sendpromptly_client::Client) -> Result<(), sendpromptly_client::Error> {
    /// use sendpromptly_client::{IncidentFilter, IncidentState};
    /// let mut filter = IncidentFilter { state: Some(IncidentState::Open), ..Default::default() };
    /// loop {
    ///     let page = sp.list_incidents(&filter).await?;
    ///     for incident in &page.data {
    ///         println!("{} {}", incident.id, incident.event.event_id);
    ///     }
    ///     match page.next_cursor {
    ///         Some(cursor) => filter.cursor = Some(cursor),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_incidents(&self, filter: &IncidentFilter) -> Result<IncidentList, Error> {
        let mut call = Call::new(Method::GET, &["v1", "incidents"]);
        call.query = filter.query();
        self.run(call).await
    }

    /// One incident, its event and its full timeline.
    pub async fn get_incident(&self, incident_id: &str) -> Result<IncidentDetail, Error> {
        self.run(Call::new(Method::GET, &["v1", "incidents", incident_id]))
            .await
    }

    /// Asks the server to send a signed repair callback for the incident
    /// (202). A 409 `reprocess_in_flight` means an earlier callback is still
    /// being delivered.
    pub async fn reprocess(
        &self,
        incident_id: &str,
        note: Option<&str>,
    ) -> Result<ReprocessResponse, Error> {
        sendpromptly_core::validation::validate_note(note)?;
        let body = serde_json::json!({ "note": note });
        self.run(Call::post(
            &["v1", "incidents", incident_id, "reprocess"],
            &body,
            None,
        )?)
        .await
    }

    /// Resolves an incident by hand; `note` says why (required).
    pub async fn resolve(&self, incident_id: &str, note: &str) -> Result<ResolveResponse, Error> {
        sendpromptly_core::validation::validate_resolve_note(note)?;
        let body = serde_json::json!({ "note": note });
        self.run(Call::post(
            &["v1", "incidents", incident_id, "resolve"],
            &body,
            None,
        )?)
        .await
    }

    /// Creates a proof link: a read-only, expiring, revocable page of the
    /// incident's timeline. `expires_in` defaults to 7 days (at most 90).
    pub async fn create_proof_link(
        &self,
        incident_id: &str,
        expires_in: Option<Duration>,
    ) -> Result<ProofLinkCreated, Error> {
        let body = serde_json::json!({
            "expires_in_seconds": expires_in.map(|d| d.as_secs()),
        });
        self.run(Call::post(
            &["v1", "incidents", incident_id, "proof-links"],
            &body,
            None,
        )?)
        .await
    }

    /// The incident's proof links (never their tokens).
    pub async fn list_proof_links(&self, incident_id: &str) -> Result<Vec<ProofLinkView>, Error> {
        self.run(Call::new(
            Method::GET,
            &["v1", "incidents", incident_id, "proof-links"],
        ))
        .await
    }

    /// Revokes a proof link; its page answers 404 from then on.
    pub async fn revoke_proof_link(&self, proof_link_id: &str) -> Result<(), Error> {
        self.execute(
            &Call::new(Method::DELETE, &["v1", "proof-links", proof_link_id]),
            &self.retry,
        )
        .await
        .map(|_| ())
    }

    /// Plans a bulk reprocess without sending anything (`dry_run` is forced
    /// on): how many incidents would get a callback, by event type, which
    /// would be skipped and why.
    pub async fn plan_reprocess_batch(
        &self,
        request: &ReprocessBatchRequest,
    ) -> Result<ReprocessBatchPlan, Error> {
        let body = ReprocessBatchRequest {
            dry_run: true,
            ..request.clone()
        };
        self.run(Call::post(&["v1", "reprocess-batches"], &body, None)?)
            .await
    }

    /// Starts a bulk reprocess (`dry_run` is forced off; 202). The server
    /// paces it; follow it with [`Client::reprocess_batch`].
    pub async fn start_reprocess_batch(
        &self,
        request: &ReprocessBatchRequest,
    ) -> Result<ReprocessBatchView, Error> {
        let body = ReprocessBatchRequest {
            dry_run: false,
            ..request.clone()
        };
        self.run(Call::post(&["v1", "reprocess-batches"], &body, None)?)
            .await
    }

    /// A batch's progress and first items.
    pub async fn reprocess_batch(&self, batch_id: &str) -> Result<ReprocessBatchView, Error> {
        self.run(Call::new(
            Method::GET,
            &["v1", "reprocess-batches", batch_id],
        ))
        .await
    }

    /// Cancels a batch: incidents not sent yet are not sent.
    pub async fn cancel_reprocess_batch(
        &self,
        batch_id: &str,
    ) -> Result<ReprocessBatchView, Error> {
        self.run(Call::post(
            &["v1", "reprocess-batches", batch_id, "cancel"],
            &serde_json::json!({}),
            None,
        )?)
        .await
    }

    /// Time to effect, delivery lag, time to repair and SLO status over a
    /// window (`GET /v1/stats`; see docs/analytics.md).
    pub async fn stats(
        &self,
        query: &crate::types::StatsQuery,
    ) -> Result<crate::types::StatsReport, Error> {
        let mut call = Call::new(Method::GET, &["v1", "stats"]);
        call.query = query.query();
        self.run(call).await
    }

    /// The project settings.
    pub async fn project(&self) -> Result<ProjectView, Error> {
        self.run(Call::new(Method::GET, &["v1", "project"])).await
    }

    /// Changes the project settings; `None` fields stay as they are.
    pub async fn update_project(&self, update: &ProjectUpdate) -> Result<ProjectView, Error> {
        self.run(Call::new(Method::PATCH, &["v1", "project"]).json(update)?)
            .await
    }

    /// Creates a new repair-callback signing secret, returned only this
    /// once; the previous ones keep signing for 24 hours.
    pub async fn rotate_signing_secret(&self) -> Result<RotatedSecret, Error> {
        self.run(Call::post(
            &["v1", "project", "signing-secrets", "rotate"],
            &serde_json::json!({}),
            None,
        )?)
        .await
    }

    /// `GET /healthz` (no authentication needed, but the key is sent).
    pub async fn health(&self) -> Result<Health, Error> {
        self.run(Call::new(Method::GET, &["healthz"])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::with_options(ClientOptions {
            api_key: Some("sp_test_key".into()),
            base_url: Some(base.into()),
            ..ClientOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn paths_are_percent_encoded_segments() {
        let sp = client("http://127.0.0.1:7700/prefix");
        let call = Call::new(Method::GET, &["v1", "events", "custom", "job/1 ?#"]);
        assert_eq!(
            sp.url(&call).as_str(),
            "http://127.0.0.1:7700/prefix/v1/events/custom/job%2F1%20%3F%23"
        );
        let mut call = Call::new(Method::GET, &["v1", "incidents"]);
        call.query = IncidentFilter {
            subject: Some("cus 1&x".into()),
            limit: Some(5),
            ..IncidentFilter::default()
        }
        .query();
        assert_eq!(
            sp.url(&call).as_str(),
            "http://127.0.0.1:7700/prefix/v1/incidents?subject=cus+1%26x&limit=5"
        );
    }

    #[test]
    fn rejects_bad_configuration() {
        for (key, url) in [
            ("not_a_key", "http://x"),
            ("sp_ok", "ftp://x"),
            ("sp_ok", "no url"),
        ] {
            let err = Client::with_options(ClientOptions {
                api_key: Some(key.into()),
                base_url: Some(url.into()),
                ..ClientOptions::default()
            })
            .unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{key} {url}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let sp = client("http://127.0.0.1:7700");
        let text = format!("{sp:?}");
        assert!(!text.contains("sp_test_key"), "{text}");
    }

    #[test]
    fn idempotency_keys_are_unique_valid_and_in_time_order() {
        let keys: Vec<String> = (0..1000).map(|_| new_idempotency_key()).collect();
        let unique: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        for key in &keys {
            sendpromptly_core::validation::validate_idempotency_key(key).unwrap();
            assert_eq!(key.len(), 8 + 32, "{key}");
        }
        // The time part never goes backwards within a process run.
        let times: Vec<&str> = keys.iter().map(|k| &k[8..20]).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        let millis = i64::from_str_radix(times[0], 16).unwrap();
        let now = now().unix_millis();
        assert!((now - millis).abs() < 60_000, "{millis} vs {now}");
    }

    #[test]
    fn error_bodies_that_are_not_ours_still_explain() {
        let answer = Answer {
            status: 502,
            headers: HeaderMap::new(),
            body: b"<html>Bad gateway</html>".to_vec(),
        };
        let api = api_error(&answer);
        assert_eq!(api.kind, "http_error");
        assert!(api.message.contains("502"), "{}", api.message);
        assert!(api.is_retryable());
    }
}
