//! The server's own spans over OTLP/HTTP protobuf (`--otlp-endpoint`, off by
//! default): HTTP requests, group commits, sweeper ticks and repair
//! deliveries. No OpenTelemetry SDK: a span is a small struct, the few
//! protobuf messages of `ExportTraceServiceRequest` are encoded here by hand
//! (field numbers from opentelemetry-proto's `trace/v1/trace.proto`), and the
//! batches go out with the reqwest client the server already has.
//!
//! Recording never blocks: spans go into a bounded queue; when it is full,
//! or the collector refuses or cannot be reached, spans are dropped and
//! counted (`sendpromptly_otlp_spans_dropped_total`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

/// How many spans may wait for export; more are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
/// The most spans in one export request.
pub const BATCH_SIZE: usize = 512;
/// How long a partial batch waits before it is sent.
pub const BATCH_DELAY: Duration = Duration::from_millis(500);
/// Timeout of one export request.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The OTLP span kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the server (group commit, sweeper tick).
    Internal = 1,
    /// An HTTP request the server answered.
    Server = 2,
    /// An HTTP request the server made (a repair callback).
    Client = 3,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
}

/// One finished span.
#[derive(Clone, Debug)]
pub struct Span {
    /// Its trace.
    pub trace_id: [u8; 16],
    /// Its id.
    pub span_id: [u8; 8],
    /// Its parent's id, if it has one.
    pub parent_span_id: Option<[u8; 8]>,
    /// The W3C `tracestate` it carries.
    pub trace_state: Option<String>,
    /// E.g. `POST /v1/receipt`.
    pub name: String,
    /// Server, client or internal.
    pub kind: SpanKind,
    /// Start, nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_unix_nano: u64,
    /// Its attributes.
    pub attributes: Vec<(&'static str, Value)>,
    /// Whether it failed (status code ERROR).
    pub error: bool,
}

/// Nanoseconds since the Unix epoch, now (wall clock: span times are for people).
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A new random, non-zero trace id.
pub fn new_trace_id() -> [u8; 16] {
    let mut id: [u8; 16] = rand::random();
    id[15] |= 1;
    id
}

/// A new random, non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    let mut id: [u8; 8] = rand::random();
    id[7] |= 1;
    id
}

impl Span {
    /// A span started at `start_unix_nano` that ends now, in a new trace
    /// unless `parent` (a trace id and span id) is given.
    pub fn ending_now(
        name: impl Into<String>,
        kind: SpanKind,
        start_unix_nano: u64,
        parent: Option<([u8; 16], [u8; 8])>,
    ) -> Span {
        let (trace_id, parent_span_id) = match parent {
            Some((trace, span)) => (trace, Some(span)),
            None => (new_trace_id(), None),
        };
        Span {
            trace_id,
            span_id: new_span_id(),
            parent_span_id,
            trace_state: None,
            name: name.into(),
            kind,
            start_unix_nano,
            end_unix_nano: now_nanos().max(start_unix_nano),
            attributes: Vec::new(),
            error: false,
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: &'static str, value: Value) -> Span {
        self.attributes.push((key, value));
        self
    }
}

struct Exporter {
    queue: mpsc::Sender<Span>,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);

/// Whether spans are exported (an endpoint was configured).
pub fn enabled() -> bool {
    EXPORTER.get().is_some()
}

/// Queues a finished span for export; drops (and counts) it when the queue
/// is full. Does nothing when export is off.
pub fn record(span: Span) {
    if let Some(exporter) = EXPORTER.get()
        && exporter.queue.try_send(span).is_err()
    {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Spans dropped so far (queue full, or the collector down or refusing).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The Prometheus lines of the exporter (empty when export is off).
pub fn render_metrics() -> String {
    if !enabled() {
        return String::new();
    }
    format!(
        "# HELP sendpromptly_otlp_spans_dropped_total Spans not exported: the queue was full or the collector refused or could not be reached.\n\
         # TYPE sendpromptly_otlp_spans_dropped_total counter\n\
         sendpromptly_otlp_spans_dropped_total {}\n\
         # HELP sendpromptly_otlp_spans_exported_total Spans the collector accepted.\n\
         # TYPE sendpromptly_otlp_spans_exported_total counter\n\
         sendpromptly_otlp_spans_exported_total {}\n",
        dropped(),
        EXPORTED.load(Ordering::Relaxed)
    )
}

/// The traces URL for an endpoint: `{endpoint}/v1/traces`, unless it
/// already ends with that path (as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` does).
pub fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    }
}

/// Starts exporting to `endpoint` (once per process; a second call is
/// ignored). Must run inside a Tokio runtime.
pub fn start(endpoint: &str, service_instance: &str) -> reqwest::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .user_agent(crate::dispatcher::USER_AGENT)
        .build()?;
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    if EXPORTER.set(Exporter { queue: tx }).is_ok() {
        let url = traces_url(endpoint);
        let resource = resource(service_instance);
        tokio::spawn(export_loop(http, url, resource, rx));
    }
    Ok(())
}

async fn export_loop(
    http: reqwest::Client,
    url: String,
    resource: Vec<u8>,
    mut rx: mpsc::Receiver<Span>,
) {
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    loop {
        let Some(first) = rx.recv().await else { return };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < BATCH_SIZE {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let body = encode_request(&resource, &batch);
        let count = batch.len() as u64;
        batch.clear();
        let sent = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => {
                EXPORTED.fetch_add(count, Ordering::Relaxed);
            }
            Ok(answer) => {
                DROPPED.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(status = answer.status().as_u16(), spans = count, %url, "the OTLP collector refused spans; dropped");
            }
            Err(err) => {
                DROPPED.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(error = %err, spans = count, %url, "could not reach the OTLP collector; spans dropped");
            }
        }
    }
}

// ---- protobuf encoding (proto3 wire format) ----

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(out, field, 2);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, value: u64) {
    key(out, field, 1);
    out.extend_from_slice(&value.to_le_bytes());
}

fn varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    key(out, field, 0);
    varint(out, value);
}

/// `KeyValue { key = 1; AnyValue value = 2 }`, `AnyValue { string_value = 1; int_value = 3 }`.
fn key_value(key_name: &str, value: &Value) -> Vec<u8> {
    let mut any = Vec::new();
    match value {
        Value::Str(s) => bytes_field(&mut any, 1, s.as_bytes()),
        Value::Int(i) => varint_field(&mut any, 3, *i as u64),
    }
    let mut kv = Vec::new();
    bytes_field(&mut kv, 1, key_name.as_bytes());
    bytes_field(&mut kv, 2, &any);
    kv
}

/// `Resource { repeated KeyValue attributes = 1 }`.
fn resource(service_instance: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in [
        ("service.name", "sendpromptly"),
        ("service.version", env!("CARGO_PKG_VERSION")),
        ("service.instance.id", service_instance),
    ] {
        bytes_field(&mut out, 1, &key_value(k, &Value::Str(v.to_owned())));
    }
    out
}

/// `Span` (trace.proto): trace_id 1, span_id 2, trace_state 3,
/// parent_span_id 4, name 5, kind 6, start 7, end 8, attributes 9, status 15.
fn encode_span(span: &Span) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, &span.trace_id);
    bytes_field(&mut out, 2, &span.span_id);
    if let Some(state) = &span.trace_state {
        bytes_field(&mut out, 3, state.as_bytes());
    }
    if let Some(parent) = &span.parent_span_id {
        bytes_field(&mut out, 4, parent);
    }
    bytes_field(&mut out, 5, span.name.as_bytes());
    varint_field(&mut out, 6, span.kind as u64);
    fixed64_field(&mut out, 7, span.start_unix_nano);
    fixed64_field(&mut out, 8, span.end_unix_nano);
    for (k, v) in &span.attributes {
        bytes_field(&mut out, 9, &key_value(k, v));
    }
    // Status { code = 3 }: 2 = ERROR; unset otherwise.
    if span.error {
        let mut status = Vec::new();
        varint_field(&mut status, 3, 2);
        bytes_field(&mut out, 15, &status);
    }
    out
}

/// `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }`,
/// `ResourceSpans { resource = 1; repeated ScopeSpans scope_spans = 2 }`,
/// `ScopeSpans { scope = 1; repeated Span spans = 2 }`,
/// `InstrumentationScope { name = 1; version = 2 }`.
pub fn encode_request(resource: &[u8], spans: &[Span]) -> Vec<u8> {
    let mut scope = Vec::new();
    bytes_field(&mut scope, 1, b"sendpromptly");
    bytes_field(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
    let mut scope_spans = Vec::new();
    bytes_field(&mut scope_spans, 1, &scope);
    for span in spans {
        bytes_field(&mut scope_spans, 2, &encode_span(span));
    }
    let mut resource_spans = Vec::new();
    bytes_field(&mut resource_spans, 1, resource);
    bytes_field(&mut resource_spans, 2, &scope_spans);
    let mut request = Vec::new();
    bytes_field(&mut request, 1, &resource_spans);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn a_span_encodes_its_ids_first() {
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            trace_state: None,
            name: "x".into(),
            kind: SpanKind::Server,
            start_unix_nano: 1,
            end_unix_nano: 2,
            attributes: vec![],
            error: false,
        };
        let encoded = encode_span(&span);
        assert_eq!(&encoded[..2], &[0x0a, 16]);
        assert_eq!(&encoded[2..18], &[1; 16]);
        assert_eq!(&encoded[18..20], &[0x12, 8]);
    }

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces/"),
            "http://c:4318/v1/traces"
        );
    }
}
