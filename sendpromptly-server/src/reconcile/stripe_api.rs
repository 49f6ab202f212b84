//! A small client of Stripe's List Events API (`GET /v1/events`), enough
//! for the reconciler: a `created` window, the tracked `types[]`, pages of
//! up to 100 followed with `starting_after` while `has_more`, and Stripe's
//! retry rules (429 and `Stripe-Should-Retry`, `Retry-After`) with a bounded
//! backoff.
//!
//! Stripe lists events newest first; event ids are not ordered, so callers
//! keep a `created` watermark, never an id (the id is only a page cursor).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use sendpromptly_core::stripe::StripeEvent;
use serde::Deserialize;

/// Stripe's API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// The most events one page may hold (Stripe's limit).
pub const MAX_PAGE_LIMIT: u32 = 100;
/// The most `types[]` one request may carry (Stripe's limit).
pub const MAX_TYPES: usize = 20;
/// How long Stripe keeps events.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why listing events failed. The messages name no key.
#[derive(Debug, thiserror::Error)]
pub enum StripeApiError {
    /// 401: the key is wrong, revoked or rolled.
    #[error("Stripe refused the restricted key (401): {message}")]
    Unauthorized {
        /// Stripe's message.
        message: String,
    },
    /// 403: the key lacks a permission.
    #[error(
        "Stripe denied the restricted key access to events (403): {message}; the key needs the permission Events: Read"
    )]
    Forbidden {
        /// Stripe's message.
        message: String,
    },
    /// 429 (or a retryable answer) more times in a row than allowed.
    #[error("Stripe kept answering {status} after {attempts} attempts: {message}")]
    GaveUp {
        /// The last status.
        status: u16,
        /// How many requests were made.
        attempts: u32,
        /// Stripe's last message.
        message: String,
    },
    /// Another error answer (400 and the like).
    #[error("Stripe answered {status}: {message}")]
    Status {
        /// The status.
        status: u16,
        /// Stripe's message.
        message: String,
    },
    /// Stripe could not be reached (after the retries).
    #[error("cannot reach Stripe at {base}: {reason}")]
    Network {
        /// The API base.
        base: String,
        /// Why.
        reason: String,
    },
    /// The answer is not a list of events.
    #[error("Stripe's answer is not a list of events: {0}")]
    Malformed(String),
    /// The API base is not a URL.
    #[error("the Stripe API base `{0}` is not an absolute http(s) URL")]
    BadBase(String),
}

impl StripeApiError {
    /// A stable word for metrics and the stored status.
    pub fn kind(&self) -> &'static str {
        match self {
            StripeApiError::Unauthorized { .. } => "unauthorized",
            StripeApiError::Forbidden { .. } => "forbidden",
            StripeApiError::GaveUp { status: 429, .. } => "rate_limited",
            StripeApiError::GaveUp { .. } | StripeApiError::Status { .. } => "http",
            StripeApiError::Network { .. } => "network",
            StripeApiError::Malformed(_) => "malformed",
            StripeApiError::BadBase(_) => "config",
        }
    }
}

/// How often and how long to wait before giving up on a retryable answer.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first request.
    pub max_retries: u32,
    /// The first backoff when Stripe gives no `Retry-After` (doubles each time).
    pub initial_backoff: Duration,
    /// The longest single wait, `Retry-After` included.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// The filter of one listing.
#[derive(Clone, Debug)]
pub struct EventsQuery {
    /// `types[]` (empty: every type; at most [`MAX_TYPES`]).
    pub types: Vec<String>,
    /// `created[gte]` (unix seconds).
    pub created_gte: i64,
    /// `created[lte]` (unix seconds), if bounded.
    pub created_lte: Option<i64>,
    /// `limit` (1–100).
    pub limit: u32,
}

/// One page of events, newest first.
#[derive(Debug)]
pub struct EventsPage {
    /// The events, parsed.
    pub events: Vec<StripeEvent>,
    /// Whether older events follow (`starting_after` the last one).
    pub has_more: bool,
    /// How many requests the page took (retries included).
    pub attempts: u32,
}

#[derive(Deserialize)]
struct ListObject {
    object: String,
    data: Vec<serde_json::Value>,
    has_more: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

/// The client: one HTTP client, the API base, the retry policy.
#[derive(Clone, Debug)]
pub struct EventsClient {
    http: reqwest::Client,
    base: url::Url,
    retry: RetryPolicy,
}

impl EventsClient {
    /// A client of the API at `base` (e.g. [`DEFAULT_API_BASE`]); each
    /// request times out after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<EventsClient, StripeApiError> {
        let parsed = url::Url::parse(base.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| StripeApiError::BadBase(base.to_owned()))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("sendpromptly/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StripeApiError::Network {
                base: base.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(EventsClient {
            http,
            base: parsed,
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The URL of one page's request.
    pub fn page_url(&self, query: &EventsQuery, starting_after: Option<&str>) -> url::Url {
        let mut url = self.base.clone();
        let path = format!("{}/v1/events", url.path().trim_end_matches('/'));
        url.set_path(&path);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("created[gte]", &query.created_gte.to_string());
            if let Some(lte) = query.created_lte {
                pairs.append_pair("created[lte]", &lte.to_string());
            }
            pairs.append_pair("limit", &query.limit.clamp(1, MAX_PAGE_LIMIT).to_string());
            for event_type in &query.types {
                pairs.append_pair("types[]", event_type);
            }
            if let Some(after) = starting_after {
                pairs.append_pair("starting_after", after);
            }
        }
        url
    }

    /// One page of events matching `query`, after `starting_after` (the
    /// last id of the previous page). Retries 429 and answers Stripe marks
    /// retryable, waiting `Retry-After` (bounded) or a doubling backoff.
    pub async fn list_events(
        &self,
        key: &str,
        query: &EventsQuery,
        starting_after: Option<&str>,
    ) -> Result<EventsPage, StripeApiError> {
        let url = self.page_url(query, starting_after);
        let mut attempt: u32 = 0;
        let mut backoff = self.retry.initial_backoff;
        loop {
            attempt += 1;
            let sent = self.http.get(url.clone()).bearer_auth(key).send().await;
            let response = match sent {
                Ok(response) => response,
                Err(err) => {
                    if attempt > self.retry.max_retries {
                        return Err(StripeApiError::Network {
                            base: self.base.to_string(),
                            reason: without_url(&err),
                        });
                    }
                    tokio::time::sleep(backoff.min(self.retry.max_wait)).await;
                    backoff = backoff.saturating_mul(2);
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| StripeApiError::Network {
                    base: self.base.to_string(),
                    reason: without_url(&e),
                })?;
            if status.is_success() {
                return parse_page(&body, attempt);
            }
            let message = error_message(&body, status);
            match status {
                StatusCode::UNAUTHORIZED => return Err(StripeApiError::Unauthorized { message }),
                StatusCode::FORBIDDEN => return Err(StripeApiError::Forbidden { message }),
                _ => {}
            }
            if !should_retry(status, &headers) {
                return Err(StripeApiError::Status {
                    status: status.as_u16(),
                    message,
                });
            }
            if attempt > self.retry.max_retries {
                return Err(StripeApiError::GaveUp {
                    status: status.as_u16(),
                    attempts: attempt,
                    message,
                });
            }
            let wait = retry_after(&headers).unwrap_or(backoff);
            tracing::debug!(
                status = status.as_u16(),
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "Stripe asked to retry"
            );
            tokio::time::sleep(wait.min(self.retry.max_wait)).await;
            backoff = backoff.saturating_mul(2);
        }
    }
}

/// Stripe's rule: `Stripe-Should-Retry` decides when present; otherwise
/// 429, 409 and 5xx are retried.
fn should_retry(status: StatusCode, headers: &HeaderMap) -> bool {
    match headers
        .get("stripe-should-retry")
        .and_then(|v| v.to_str().ok())
    {
        Some("true") => true,
        Some("false") => false,
        _ => {
            status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::CONFLICT
                || status.is_server_error()
        }
    }
}

/// `Retry-After` in seconds (the form Stripe sends).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = text.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

fn error_message(body: &[u8], status: StatusCode) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error.message)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no error message")
                .to_owned()
        })
}

fn parse_page(body: &[u8], attempts: u32) -> Result<EventsPage, StripeApiError> {
    let list: ListObject =
        serde_json::from_slice(body).map_err(|e| StripeApiError::Malformed(e.to_string()))?;
    if list.object != "list" {
        return Err(StripeApiError::Malformed(format!(
            "`object` is `{}`, not `list`",
            list.object
        )));
    }
    let events = list
        .data
        .into_iter()
        .map(|raw| {
            StripeEvent::from_value(raw).map_err(|e| StripeApiError::Malformed(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventsPage {
        events,
        has_more: list.has_more,
        attempts,
    })
}

/// A transport error's words without the URL (which is ours, and long).
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
