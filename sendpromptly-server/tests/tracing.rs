//! W3C trace context over real HTTP (issue #25): receipts and results carry
//! `traceparent`/`tracestate` (body field or header) onto the timeline, a
//! malformed one is refused with a 422 naming the field, idempotent replays
//! keep it, the trace URL template is validated, and a real repair callback
//! continues the failing signal's trace.

use std::time::Duration;

use reqwest::Method;
use sendpromptly_server::testing::{
    ApiClient, CallbackReceiver, TestServer, cli_ok, eventually, run_cli,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const RECEIPT_SPAN: &str = "00f067aa0ba902b7";
const RESULT_SPAN: &str = "b7ad6b7169203331";

fn traceparent(span: &str) -> String {
    format!("00-{TRACE_ID}-{span}-01")
}

fn receipt(event_id: &str) -> Value {
    json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid"})
}

async fn timeline(api: &ApiClient, event_id: &str) -> Vec<Value> {
    let r = api.get(&format!("/v1/events/stripe/{event_id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["timeline"].as_array().unwrap().clone()
}

fn entry<'a>(timeline: &'a [Value], kind: &str) -> &'a Value {
    timeline
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} entry in {timeline:?}"))
}

#[tokio::test]
async fn a_body_traceparent_is_stored_on_the_signal_entry() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut body = receipt("evt_trace_body");
    body["traceparent"] = json!(traceparent(RECEIPT_SPAN));
    body["tracestate"] = json!("rojo=00f067aa0ba902b7");
    // The body wins over the header.
    let r = api
        .send(
            Method::POST,
            "/v1/receipt",
            Some(&body),
            &[("traceparent", &traceparent(RESULT_SPAN))],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let timeline = timeline(&api, "evt_trace_body").await;
    let trace = &entry(&timeline, "receipt.recorded")["detail"]["trace"];
    assert_eq!(trace["trace_id"], TRACE_ID);
    assert_eq!(trace["span_id"], RECEIPT_SPAN);
    assert_eq!(trace["sampled"], true);
    assert_eq!(trace["tracestate"], "rojo=00f067aa0ba902b7");
    assert_eq!(trace["traceparent"], traceparent(RECEIPT_SPAN));
}

#[tokio::test]
async fn a_header_traceparent_is_stored_and_an_invalid_header_is_ignored() {
    let server = TestServer::start().await;
    let api = server.api();
    let r = api
        .send(
            Method::POST,
            "/v1/receipt",
            Some(&receipt("evt_trace_header")),
            &[
                ("traceparent", &traceparent(RECEIPT_SPAN)),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api
        .send(
            Method::POST,
            "/v1/result",
            Some(
                &json!({"provider": "stripe", "event_id": "evt_trace_header", "status": "success"}),
            ),
            // Upper-case hex: not W3C, so ignored (the signal is still recorded).
            &[("traceparent", &traceparent(RESULT_SPAN).to_uppercase())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let timeline = timeline(&api, "evt_trace_header").await;
    let trace = &entry(&timeline, "receipt.recorded")["detail"]["trace"];
    assert_eq!(trace["span_id"], RECEIPT_SPAN);
    assert_eq!(trace["tracestate"], "congo=t61rcWkgMzE");
    assert!(
        entry(&timeline, "result.success")["detail"]
            .get("trace")
            .is_none()
    );
}

#[tokio::test]
async fn a_malformed_body_traceparent_is_a_422_naming_the_field_and_format() {
    let server = TestServer::start().await;
    let api = server.api();
    for (field, value, words) in [
        (
            "traceparent",
            "00-abc-def-01",
            "00-<32 lowercase hex trace id",
        ),
        (
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "trace id must not be all zeros",
        ),
        ("tracestate", "no equals sign", "W3C tracestate"),
    ] {
        let mut body = receipt("evt_trace_bad");
        body["traceparent"] = json!(traceparent(RECEIPT_SPAN));
        body[field] = json!(value);
        let r = api.post("/v1/receipt", body).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains(field), "{}", r.text);
        assert!(r.text.contains(words), "{}", r.text);
    }
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_trace_bad", "status": "failure",
                   "tracestate": "a=b"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("needs a traceparent"), "{}", r.text);
}

#[tokio::test]
async fn an_idempotent_replay_keeps_the_first_trace() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut body = receipt("evt_trace_idem");
    body["traceparent"] = json!(traceparent(RECEIPT_SPAN));
    for expected in [201, 201] {
        let r = api
            .send(
                Method::POST,
                "/v1/receipt",
                Some(&body),
                &[("idempotency-key", "trace-key-1")],
            )
            .await;
        assert_eq!(r.status, expected, "{}", r.text);
    }
    let timeline = timeline(&api, "evt_trace_idem").await;
    assert_eq!(timeline.len(), 1, "the replay wrote nothing: {timeline:?}");
    assert_eq!(timeline[0]["detail"]["trace"]["span_id"], RECEIPT_SPAN);
}

#[tokio::test]
async fn the_trace_url_template_is_validated_and_shown() {
    let server = TestServer::start().await;
    let api = server.api();
    for (bad, words) in [
        ("ftp://jaeger/{trace_id}", "http:// or https://"),
        (
            "https://jaeger.example.com/trace/",
            "{trace_id} placeholder",
        ),
    ] {
        let r = api
            .send(
                Method::PATCH,
                "/v1/project",
                Some(&json!({"trace_url_template": bad})),
                &[],
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains("trace_url_template"), "{}", r.text);
        assert!(r.text.contains(words), "{}", r.text);
    }
    let template =
        "https://ui.honeycomb.io/acme/environments/prod/trace?trace_id={trace_id}&span={span_id}";
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"trace_url_template": template})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        api.get("/v1/project").await.json["trace_url_template"],
        template
    );
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"trace_url_template": null})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        api.get("/v1/project")
            .await
            .json
            .get("trace_url_template")
            .is_none()
    );
}

#[tokio::test]
async fn the_repair_callback_continues_the_failing_signals_trace() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": receiver.url()})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut body = receipt("evt_trace_repair");
    body["traceparent"] = json!(traceparent(RECEIPT_SPAN));
    assert_eq!(api.post("/v1/receipt", body).await.status, 201);
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_trace_repair", "status": "failure",
                   "error": "tenant not found", "traceparent": traceparent(RESULT_SPAN),
                   "tracestate": "vendor=1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let incident = r.json["incident"]["id"].as_str().unwrap().to_owned();
    let r = api
        .post(
            &format!("/v1/incidents/{incident}/reprocess"),
            json!({"note": "retry with the fixed tenant map"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);

    let received = eventually(WAIT, "the repair callback arrives", || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert!(received.error.is_none(), "{:?}", received.error);
    let header = |name: &str| {
        received
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let sent = header("traceparent").expect("a traceparent header");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], TRACE_ID, "the same trace as the failing result");
    assert_ne!(parts[2], RESULT_SPAN, "a new span, the callback's");
    assert_eq!(parts[3], "01", "the sampled flag kept");
    assert_eq!(header("tracestate").as_deref(), Some("vendor=1"));

    // The attempt's timeline entry names the failing result's span as the parent.
    let attempt = eventually(WAIT, "the attempt is recorded", || async {
        let timeline = timeline(&api, "evt_trace_repair").await;
        timeline
            .into_iter()
            .find(|e| e["kind"] == "callback.attempt")
    })
    .await;
    let trace = &attempt["detail"]["trace"];
    assert_eq!(trace["traceparent"], sent);
    assert_eq!(trace["span_id"], parts[2]);
    assert_eq!(trace["parent_span_id"], RESULT_SPAN);
}

#[tokio::test]
async fn an_untraced_event_gets_no_traceparent_on_its_callback() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": receiver.url()})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        api.post("/v1/receipt", receipt("evt_untraced"))
            .await
            .status,
        201
    );
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_untraced", "status": "failure"}),
        )
        .await;
    let incident = r.json["incident"]["id"].as_str().unwrap().to_owned();
    let r = api
        .post(&format!("/v1/incidents/{incident}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let received = eventually(WAIT, "the repair callback arrives", || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert!(received.headers.get("traceparent").is_none());
}

#[test]
fn the_cli_shows_sets_refuses_and_clears_the_trace_url_template() {
    const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    cli_ok(BIN, &db, &["migrate"]);
    cli_ok(BIN, &db, &["project", "create", "--name", "ops"]);
    let none = cli_ok(BIN, &db, &["project", "trace-url", "--project", "ops"]);
    assert!(none.contains("has no trace URL template"), "{none}");
    let template = "https://jaeger.local/trace/{trace_id}";
    let set = cli_ok(
        BIN,
        &db,
        &[
            "project",
            "trace-url",
            "--project",
            "ops",
            "--template",
            template,
        ],
    );
    assert_eq!(set.trim(), template);
    let bad = run_cli(
        BIN,
        &db,
        &[
            "project",
            "trace-url",
            "--project",
            "ops",
            "--template",
            "https://jaeger.local/",
        ],
    );
    assert!(!bad.success);
    assert!(
        bad.stderr.contains("{trace_id} placeholder"),
        "{}",
        bad.stderr
    );
    let shown = cli_ok(BIN, &db, &["project", "trace-url", "--project", "ops"]);
    assert_eq!(shown.trim(), template, "a refused change changes nothing");
    let cleared = cli_ok(
        BIN,
        &db,
        &["project", "trace-url", "--project", "ops", "--clear"],
    );
    assert!(cleared.contains("has no trace URL template"), "{cleared}");
}

#[test]
fn serve_refuses_an_otlp_endpoint_that_is_not_http() {
    const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("otlp.db").display());
    let refused = run_cli(
        BIN,
        &db,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--otlp-endpoint",
            "localhost:4318",
        ],
    );
    assert!(!refused.success);
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(said.contains("otlp_endpoint"), "{said}");
    assert!(said.contains("http://localhost:4318"), "{said}");
}
