//! [`FakeStripe`]: a local Stripe API for tests, over real HTTP on
//! loopback. It speaks `GET /v1/events` as Stripe documents it: a list
//! object `{object: "list", data, has_more, url}`, newest first;
//! `created[gte]`, `created[gt]`, `created[lte]`, `created[lt]` (and a
//! plain `created`), `types[]`, `type`, `limit` (1–100, default 10),
//! `starting_after` and `ending_before`; Bearer authentication with a 401
//! error object for a missing or wrong key; unknown parameters refused with
//! 400. Tests can make the next requests answer 429 with `Retry-After`, and
//! read every request it got.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct StripeRequest {
    /// The path.
    pub path: String,
    /// The decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl StripeRequest {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of parameter `name` (e.g. `types[]`).
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Default)]
struct Inner {
    key: Mutex<String>,
    /// Events in the order they were added.
    events: Mutex<Vec<Value>>,
    requests: Mutex<Vec<StripeRequest>>,
    /// Retry-After values of the next 429 answers.
    throttle: Mutex<VecDeque<u64>>,
}

/// A local Stripe API (see the module docs).
pub struct FakeStripe {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Stripe event object (`evt_…`) of `event_type` created at `created`
/// (unix seconds) about `object` (which should carry `id` and `object`).
pub fn event(id: &str, event_type: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": event_type,
    })
}

/// A paid checkout session event (`checkout.session.completed`).
pub fn checkout_completed(id: &str, created: i64, customer: &str, amount: i64) -> Value {
    event(
        id,
        "checkout.session.completed",
        created,
        json!({
            "id": format!("cs_{id}"),
            "object": "checkout.session",
            "customer": customer,
            "amount_total": amount,
            "currency": "usd",
            "payment_status": "paid",
            "status": "complete",
        }),
    )
}

impl FakeStripe {
    /// Starts a fake that accepts the secret or restricted key `key`.
    pub async fn start(key: &str) -> FakeStripe {
        let inner = Arc::new(Inner::default());
        key.clone_into(&mut inner.key.lock().expect("lock"));
        let app = axum::Router::new()
            .route("/v1/events", axum::routing::get(list_events))
            .fallback(not_found)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Stripe");
        let addr = listener.local_addr().expect("fake Stripe addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { addr, inner, task }
    }

    /// The API base to configure (`--stripe-api-base`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds events (see [`event`]).
    pub fn add(&self, events: impl IntoIterator<Item = Value>) {
        self.inner.events.lock().expect("lock").extend(events);
    }

    /// Changes the key it accepts (a rolled or revoked key).
    pub fn set_key(&self, key: &str) {
        key.clone_into(&mut self.inner.key.lock().expect("lock"));
    }

    /// The next `retry_after.len()` authenticated requests answer 429 with
    /// these `Retry-After` seconds.
    pub fn throttle(&self, retry_after: &[u64]) {
        self.inner
            .throttle
            .lock()
            .expect("lock")
            .extend(retry_after.iter().copied());
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<StripeRequest> {
        self.inner.requests.lock().expect("lock").clone()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.inner.requests.lock().expect("lock").clear();
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": kind}})),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "Unrecognized request URL. Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
    )
}

const KNOWN: &[&str] = &[
    "created",
    "created[gt]",
    "created[gte]",
    "created[lt]",
    "created[lte]",
    "delivery_success",
    "ending_before",
    "expand[]",
    "limit",
    "starting_after",
    "type",
    "types[]",
];

async fn list_events(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = answer(&inner, &query, authorization.as_deref());
    inner.requests.lock().expect("lock").push(StripeRequest {
        path: "/v1/events".to_owned(),
        query,
        authorization,
        status: response.status().as_u16(),
        at: Instant::now(),
    });
    response
}

fn bad(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

fn answer(inner: &Inner, query: &[(String, String)], authorization: Option<&str>) -> Response {
    let key = inner.key.lock().expect("lock").clone();
    match authorization.and_then(|a| a.strip_prefix("Bearer ")) {
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            );
        }
        Some(given) if given != key => {
            let tail: String = given
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                &format!("Invalid API Key provided: rk_test_********{tail}"),
            );
        }
        Some(_) => {}
    }
    if let Some(wait) = inner.throttle.lock().expect("lock").pop_front() {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        );
        let headers = response.headers_mut();
        headers.insert("retry-after", wait.into());
        headers.insert("stripe-should-retry", "true".parse().expect("header"));
        return response;
    }
    if let Some((unknown, _)) = query.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
        return bad(&format!("Received unknown parameter: {unknown}"));
    }
    let int = |name: &str| -> Result<Option<i64>, String> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("Invalid integer: {v}")),
        }
    };
    let bounds = (|| -> Result<_, String> {
        Ok((
            int("created")?,
            int("created[gt]")?,
            int("created[gte]")?,
            int("created[lt]")?,
            int("created[lte]")?,
            int("limit")?,
        ))
    })();
    let (eq, gt, gte, lt, lte, limit) = match bounds {
        Ok(b) => b,
        Err(message) => return bad(&message),
    };
    let limit = limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return bad(&format!(
            "Invalid limit: must be between 1 and 100, got {limit}"
        ));
    }
    let types: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "types[]" || k == "type")
        .map(|(_, v)| v.as_str())
        .collect();
    if query.iter().filter(|(k, _)| k == "types[]").count() > 20 {
        return bad("types: you may pass at most 20 types");
    }
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (starting_after, ending_before) = (param("starting_after"), param("ending_before"));
    if starting_after.is_some() && ending_before.is_some() {
        return bad("You may only specify one of these parameters: ending_before, starting_after.");
    }

    // Newest first; among equal `created`, the later added first.
    let mut all: Vec<(usize, Value)> = inner
        .events
        .lock()
        .expect("lock")
        .iter()
        .cloned()
        .enumerate()
        .collect();
    let created_of = |v: &Value| v["created"].as_i64().unwrap_or(0);
    all.sort_by(|(ia, a), (ib, b)| created_of(b).cmp(&created_of(a)).then(ib.cmp(ia)));
    let all: Vec<Value> = all.into_iter().map(|(_, v)| v).collect();
    let position = |id: &str| all.iter().position(|v| v["id"] == id);
    let matches = |v: &Value| {
        let created = created_of(v);
        eq.is_none_or(|x| created == x)
            && gt.is_none_or(|x| created > x)
            && gte.is_none_or(|x| created >= x)
            && lt.is_none_or(|x| created < x)
            && lte.is_none_or(|x| created <= x)
            && (types.is_empty() || types.iter().any(|t| v["type"] == *t))
    };
    let limit = usize::try_from(limit).unwrap_or(100);
    let (data, has_more) = if let Some(before) = ending_before {
        let Some(end) = position(&before) else {
            return bad(&format!("No such event: '{before}'"));
        };
        let newer: Vec<Value> = all[..end].iter().filter(|v| matches(v)).cloned().collect();
        let skip = newer.len().saturating_sub(limit);
        (newer[skip..].to_vec(), skip > 0)
    } else {
        let start = match starting_after {
            None => 0,
            Some(after) => match position(&after) {
                Some(i) => i + 1,
                None => return bad(&format!("No such event: '{after}'")),
            },
        };
        let older: Vec<Value> = all[start..]
            .iter()
            .filter(|v| matches(v))
            .cloned()
            .collect();
        let has_more = older.len() > limit;
        (older.into_iter().take(limit).collect(), has_more)
    };
    axum::Json(json!({
        "object": "list",
        "data": data,
        "has_more": has_more,
        "url": "/v1/events",
    }))
    .into_response()
}
