//! The repair-callback dispatcher: claims due callbacks from the outbox,
//! signs them (Standard Webhooks, every valid project secret), POSTs them to
//! the project's repair URL and records each attempt on the timeline.
//!
//! No database transaction is open during the HTTP call: a job is claimed
//! with a lease, sent, then finished in a second short transaction. Pending
//! callbacks live in the database, so a restart resumes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sendpromptly_core::callback::{RepairCallback, RepairCallbackEvent, sign_repair_callback};
use sendpromptly_core::machine::AttemptReport;
use sendpromptly_core::model::EventKey;
use sendpromptly_core::retry::{AttemptClass, parse_retry_after};
use sendpromptly_core::trace::{TraceContextView, TraceParent};
use tokio::sync::watch;

use crate::app::AppState;
use crate::health::Loop;
use crate::metrics::AttemptOutcome;
use crate::outbox::Outbox;
use crate::store::DeliveryJob;

/// The `user-agent` of repair callbacks.
pub const USER_AGENT: &str = concat!("SendPromptly/", env!("CARGO_PKG_VERSION"));
/// How much of a response body is kept on the timeline.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;

/// The HTTP client for callbacks: no redirects, connect and request timeouts.
pub fn http_client(state: &AppState) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(state.config().callback_connect_timeout)
        .timeout(state.config().callback_timeout)
        .user_agent(USER_AGENT)
        .dns_resolver(Arc::new(state.outbound_resolver()))
        .build()
}

/// Runs the dispatcher until `shutdown` turns true, then waits for
/// callbacks in flight (the loop is [`crate::outbox`]'s).
pub async fn run(state: AppState, http: reqwest::Client, shutdown: watch::Receiver<bool>) {
    let outbox = Outbox {
        what: "repair callbacks",
        health: Loop::Dispatcher,
        concurrency: state.config().callback_concurrency,
        wake_on_dispatch: true,
    };
    crate::outbox::run(
        state,
        http,
        outbox,
        shutdown,
        |state, free| async move {
            state
                .store()
                .claim_deliveries(state.now(), state.config().callback_lease, free)
                .await
        },
        |state, http, job| async move { deliver(&state, &http, job).await },
    )
    .await;
}

/// Sends one attempt and records it.
pub async fn deliver(state: &AppState, http: &reqwest::Client, job: DeliveryJob) {
    skip_point!("dispatcher.before_send");
    let trace = repair_trace(state, &job).await;
    let started = crate::otlp::now_nanos();
    let (mut report, class, retry_after) = attempt(state, http, &job, trace.as_ref()).await;
    if crate::otlp::enabled() {
        crate::otlp::record(delivery_span(&job, &report, trace.as_ref(), started));
    }
    report.trace = trace;
    skip_point!("dispatcher.after_send");
    let now = state.now();
    if matches!(report.status, Some(429 | 503)) {
        crate::pacer::slow_down(state, &job.reprocess_id, now, retry_after).await;
    }
    let schedule = &state.config().callback_schedule;
    let next = schedule.next_step(job.attempt, class, retry_after, rand::random::<f64>(), now);
    state.metrics().callback_attempt(AttemptOutcome::of(&next));
    tracing::info!(
        reprocess_id = %job.reprocess_id,
        attempt = job.attempt,
        status = ?report.status,
        latency_ms = report.latency_ms,
        outcome = ?next,
        "repair callback attempt"
    );
    match state
        .store()
        .finish_delivery_attempt(&job, report, next, now)
        .await
    {
        Ok(applied) => state.after_transition(&applied.transition.effects),
        Err(err) => {
            tracing::warn!(error = %err, reprocess_id = %job.reprocess_id, "could not record a callback attempt; it will be retried when its lease ends")
        }
    }
}

/// The span of one callback attempt: in the continued trace (its id is the
/// one sent in `traceparent`, its parent the failing signal's span), or in
/// a new trace when the event was not traced.
fn delivery_span(
    job: &DeliveryJob,
    report: &AttemptReport,
    trace: Option<&TraceContextView>,
    started: u64,
) -> crate::otlp::Span {
    use crate::otlp::{Span, SpanKind, Value};
    let mut span = Span::ending_now("repair callback", SpanKind::Client, started, None)
        .attr(
            "sendpromptly.reprocess_id",
            Value::Str(job.reprocess_id.clone()),
        )
        .attr(
            "sendpromptly.incident_id",
            Value::Str(job.incident_id.clone()),
        )
        .attr("sendpromptly.attempt", Value::Int(i64::from(job.attempt)))
        .attr("http.request.method", Value::Str("POST".into()));
    if let Some(status) = report.status {
        span = span.attr("http.response.status_code", Value::Int(i64::from(status)));
    }
    span.error = !report.status.is_some_and(|s| (200..300).contains(&s));
    if let Some(sent) = trace.and_then(|t| TraceParent::parse(&t.traceparent).ok()) {
        span.trace_id = sent.trace_id;
        span.span_id = sent.span_id;
        span.parent_span_id = trace
            .and_then(|t| t.parent_span_id.as_deref())
            .and_then(|p| hex::decode(p).ok())
            .and_then(|p| <[u8; 8]>::try_from(p).ok());
        span.trace_state = trace.and_then(|t| t.tracestate.clone());
    }
    span
}

/// The report of an attempt that got no HTTP answer (retryable).
pub fn failed(started: Instant, error: String) -> (AttemptReport, AttemptClass, Option<Duration>) {
    (
        AttemptReport {
            trace: None,
            status: None,
            latency_ms: elapsed_ms(started),
            response_excerpt: None,
            error: Some(error),
        },
        AttemptClass::Retryable,
        None,
    )
}

/// Milliseconds since `started`.
pub fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Builds the callback body for a job.
pub fn callback_for(job: &DeliveryJob) -> Option<RepairCallback> {
    let record = &job.record;
    let incident = record.incident.as_ref()?;
    let reprocess = incident
        .reprocess
        .as_ref()
        .filter(|r| r.id == job.reprocess_id)?;
    let event = RepairCallbackEvent {
        provider: record.provider,
        event_id: record.event_id.clone(),
        event_type: record.event_type.clone().unwrap_or_default(),
        subject: record.subject.clone(),
        effect: record.effect.clone(),
        metadata: record.metadata.clone(),
    };
    Some(RepairCallback::new(
        &job.reprocess_id,
        &job.incident_id,
        job.attempt,
        reprocess.requested_at,
        reprocess.requested_by.to_string(),
        event,
    ))
}

/// The trace context a repair callback continues: the trace of the event's
/// latest signal that came with one, under a new span (the delivery's)
/// whose parent is that signal's span; the flags and `tracestate` are kept.
/// None when no signal of the event was traced (or the timeline cannot be read).
pub async fn repair_trace(state: &AppState, job: &DeliveryJob) -> Option<TraceContextView> {
    let key = EventKey {
        provider: job.record.provider,
        event_id: job.record.event_id.clone(),
    };
    let stored = match state.store().event(&job.project_id, &key).await {
        Ok(stored) => stored?,
        Err(err) => {
            tracing::warn!(error = %err, reprocess_id = %job.reprocess_id, "could not read the timeline for the callback's trace context");
            return None;
        }
    };
    let signal = stored
        .timeline
        .iter()
        .rev()
        .filter_map(|entry| TraceContextView::from_detail(&entry.detail))
        // A callback attempt's own context names its parent; a signal's does not.
        .find(|trace| trace.parent_span_id.is_none())?;
    let parent = TraceParent::parse(&signal.traceparent).ok()?;
    let child = parent.child(rand::random());
    let mut view = TraceContextView::new(&child, signal.tracestate.as_deref());
    view.parent_span_id = Some(parent.span_id_hex());
    Some(view)
}

async fn attempt(
    state: &AppState,
    http: &reqwest::Client,
    job: &DeliveryJob,
    trace: Option<&TraceContextView>,
) -> (AttemptReport, AttemptClass, Option<Duration>) {
    let started = Instant::now();
    let Some(url) = job.repair_url.as_deref() else {
        return failed(
            started,
            "the project has no repair_url; set one to deliver this callback".into(),
        );
    };
    if let Err(refused) = state.config().outbound.check_setting("repair_url", url) {
        return failed(started, format!("refused before sending: {refused}"));
    }
    let Some(callback) = callback_for(job) else {
        return failed(started, "the reprocess is no longer current".into());
    };
    let now = state.now();
    let secrets = match state
        .signing_secrets()
        .secrets(state.store(), &job.project_id, now)
        .await
    {
        Ok(secrets) => secrets,
        Err(err) => return failed(started, format!("could not load signing secrets: {err}")),
    };
    let (body, headers) = match sign_repair_callback(&callback, &secrets, now) {
        Ok(signed) => signed,
        Err(err) => return failed(started, format!("could not sign the callback: {err}")),
    };
    let mut headers = headers.to_pairs().to_vec();
    if let Some(trace) = trace {
        headers.push(("traceparent", trace.traceparent.clone()));
        if let Some(state) = &trace.tracestate {
            headers.push(("tracestate", state.clone()));
        }
    }
    post_json(
        http,
        url,
        body,
        &headers,
        now,
        started,
        "the repair endpoint",
    )
    .await
}

/// POSTs a JSON `body` with extra `headers` and reports the attempt: the
/// status, latency, the first [`RESPONSE_EXCERPT_BYTES`] of the answer, an
/// error naming `endpoint` for anything but 2xx, the class and any
/// `Retry-After`. Shared by repair callbacks and alerts.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&'static str, String)],
    now: sendpromptly_core::Timestamp,
    started: Instant,
    endpoint: &str,
) -> (AttemptReport, AttemptClass, Option<Duration>) {
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => return failed(started, describe_transport_error(&err, endpoint)),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    let mut excerpt = Vec::new();
    while excerpt.len() < RESPONSE_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            _ => break,
        }
    }
    excerpt.truncate(RESPONSE_EXCERPT_BYTES);
    let report = AttemptReport {
        trace: None,
        status: Some(status),
        latency_ms: elapsed_ms(started),
        response_excerpt: (!excerpt.is_empty())
            .then(|| String::from_utf8_lossy(&excerpt).into_owned()),
        error: (!(200..300).contains(&status))
            .then(|| format!("{endpoint} answered HTTP {status}")),
    };
    (report, AttemptClass::of_status(Some(status)), retry_after)
}

fn describe_transport_error(err: &reqwest::Error, endpoint: &str) -> String {
    if let Some(refused) = refusal(err) {
        format!("refused before sending: {refused}")
    } else if err.is_timeout() {
        format!("timed out waiting for {endpoint}")
    } else if err.is_connect() {
        format!("could not connect to {endpoint}: {}", root_cause(err))
    } else {
        format!("request failed: {}", root_cause(err))
    }
}

/// The outbound policy's refusal of the name's addresses, if that is why
/// the request failed (see [`crate::outbound::GuardedResolver`]).
fn refusal<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a crate::outbound::OutboundError> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(refused) = err.downcast_ref::<crate::outbound::OutboundError>() {
            return Some(refused);
        }
        current = err.source();
    }
    None
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
