//! Alerts end to end: a real server (SQLite file, manual clock) sending to
//! real receivers on loopback: HTTP endpoints standing in for Slack and an
//! alert webhook (whose Standard Webhooks signature is verified), and a real
//! SMTP server (aiosmtpd, run with `SENDPROMPTLY_PYTHON`).
//!
//! Without `SENDPROMPTLY_PYTHON` the email parts print `SKIPPED` and the
//! rest runs, unless `SENDPROMPTLY_REQUIRE_INTEROP=1` (as `scripts/test.sh`
//! sets), which makes a missing interpreter a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use sendpromptly_core::standard_webhooks::{self, SigningSecret};
use sendpromptly_server::config::SmtpSettings;
use sendpromptly_server::testing::{
    ApiClient, CallbackReceiver, HookReceiver, ReceivedHook, TestServer, eventually, test_config,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const PUBLIC_URL: &str = "https://sp.example";

/// A real SMTP server (aiosmtpd) writing each message to a directory.
struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    /// Starts the sink, or `None` (skip) without `SENDPROMPTLY_PYTHON`.
    fn start() -> Option<SmtpSink> {
        let python = match std::env::var_os("SENDPROMPTLY_PYTHON") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => {
                let required =
                    std::env::var("SENDPROMPTLY_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "SENDPROMPTLY_REQUIRE_INTEROP=1 but SENDPROMPTLY_PYTHON is not set: point it at a Python with `aiosmtpd` installed"
                );
                println!(
                    "SKIPPED (email): set SENDPROMPTLY_PYTHON to a Python with `pip install aiosmtpd`"
                );
                return None;
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("mail dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run SENDPROMPTLY_PYTHON={python:?}: {err}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the sink's first line");
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        Some(SmtpSink { port, dir, child })
    }

    fn settings(&self) -> SmtpSettings {
        SmtpSettings::parse(
            &format!("smtp://127.0.0.1:{}?tls=none", self.port),
            "SendPromptly <alerts@example.com>",
        )
        .expect("smtp settings")
    }

    /// The messages received so far (with `X-Envelope-To:` lines first),
    /// quoted-printable soft line breaks and `=3D` undone.
    fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("read mail dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .expect("read message")
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=")
            })
            .collect()
    }
}

impl SmtpSink {
    /// The decoded plain-text and HTML parts of the `n`th message (from 0),
    /// as a mail reader shows them.
    fn parts(&self, n: usize) -> (String, String) {
        let read = |ext: &str| {
            let path = self.dir.path().join(format!("{:04}.{ext}", n + 1));
            std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("message {n} has no {ext} part: {err}"))
        };
        (read("txt"), read("html"))
    }

    /// The decoded (unfolded) subject of the `n`th message (from 0).
    fn subject(&self, n: usize) -> String {
        let path = self.dir.path().join(format!("{:04}.subject", n + 1));
        std::fs::read_to_string(&path).expect("a subject")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(smtp: Option<&SmtpSink>) -> TestServer {
    let mut config = test_config();
    config.public_url = Some(PUBLIC_URL.to_owned());
    config.smtp = smtp.map(SmtpSink::settings);
    TestServer::start_with(config).await
}

async fn set_channels(api: &ApiClient, channels: Value) {
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({ "alert_channels": channels })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Opens a `failed_result` incident: receipt, then a failure result.
async fn open_incident(api: &ApiClient, event_id: &str, event_type: &str, error: &str) -> String {
    open_incident_after(api, None, event_id, event_type, error).await
}

/// Like [`open_incident`], with the clock advanced by `wait` between the
/// receipt and the result (the customer has been waiting that long).
async fn open_incident_after(
    api: &ApiClient,
    wait: Option<(&TestServer, Duration)>,
    event_id: &str,
    event_type: &str,
    error: &str,
) -> String {
    let r = api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": event_id, "event_type": event_type,
                   "subject": "cus_42", "deadline_seconds": 600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    if let Some((server, by)) = wait {
        server.advance(by);
    }
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "failure", "error": error}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["incident"]["id"]
        .as_str()
        .expect("an incident opened")
        .to_owned()
}

async fn timeline(api: &ApiClient, incident_id: &str) -> Vec<Value> {
    let r = api.get(&format!("/v1/incidents/{incident_id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["timeline"].as_array().cloned().unwrap_or_default()
}

fn alert_attempts(timeline: &[Value]) -> Vec<Value> {
    timeline
        .iter()
        .filter(|e| e["kind"] == "alert.attempt")
        .map(|e| e["detail"].clone())
        .collect()
}

async fn wait_hooks(receiver: &HookReceiver, path: &str, n: usize) -> Vec<ReceivedHook> {
    eventually(WAIT, &format!("{n} request(s) on {path}"), || async {
        let got = receiver.received_on(path);
        (got.len() >= n).then_some(got)
    })
    .await
}

async fn wait_no_pending(server: &TestServer) {
    eventually(WAIT, "no alert pending", || async {
        (server.store().pending_alerts().await.expect("count") == 0).then_some(())
    })
    .await;
}

/// Verifies a webhook alert with the project's signing secret (core's verifier).
fn verify_webhook(hook: &ReceivedHook, secret: &str, server: &TestServer) -> String {
    let secret = SigningSecret::parse(secret).expect("whsec_");
    standard_webhooks::verify(&hook.headers, &hook.body, &[secret], server.clock_now())
        .unwrap_or_else(|err| panic!("the webhook alert verifies: {err}"))
        .id
}

#[tokio::test]
async fn an_opened_incident_is_announced_on_every_channel_with_its_facts() {
    let smtp = SmtpSink::start();
    let server = start_server(smtp.as_ref()).await;
    let api = server.api();
    let hooks = HookReceiver::start().await;
    let mut channels = vec![
        json!({"type": "slack", "webhook_url": hooks.url("/slack")}),
        json!({"type": "webhook", "url": hooks.url("/hook"), "on": ["incident.opened", "incident.resolved"]}),
    ];
    if smtp.is_some() {
        channels.push(json!({"type": "email", "to": "ops@example.com"}));
    }
    set_channels(&api, Value::Array(channels.clone())).await;

    // The customer has been waiting since the receipt.
    let incident_id = open_incident_after(
        &api,
        Some((&server, Duration::from_secs(125))),
        "evt_a1",
        "invoice.paid",
        "db <down> & out",
    )
    .await;
    let link = format!(
        "{PUBLIC_URL}/incidents/{incident_id}?project={}",
        server.project.project_id
    );

    let slack = wait_hooks(&hooks, "/slack", 1).await;
    let payload = slack[0].json();
    assert_eq!(
        payload["text"],
        "Incident opened: stripe invoice.paid (failed_result)"
    );
    assert_eq!(payload["blocks"][0]["type"], "header");
    let slack_text = payload.to_string();
    for needle in ["db &lt;down&gt; &amp; out", "cus_42", "evt_a1", &link] {
        assert!(
            slack_text.contains(needle),
            "{needle} missing: {slack_text}"
        );
    }
    assert!(
        slack_text.contains("*Customer waiting*\\n2m"),
        "{slack_text}"
    );

    let hook = wait_hooks(&hooks, "/hook", 1).await;
    verify_webhook(&hook[0], &server.project.signing_secret, &server);
    let body = hook[0].json();
    assert_eq!(body["type"], "incident.opened");
    assert_eq!(body["incident"]["id"], incident_id.as_str());
    assert_eq!(body["incident"]["reason"], "db <down> & out");
    assert_eq!(body["incident"]["kind"], "failed_result");
    assert_eq!(body["incident"]["subject"], "cus_42");
    assert_eq!(body["incident"]["console_url"], link.as_str());
    assert!(
        body["incident"]["waiting_seconds"]
            .as_i64()
            .is_some_and(|s| s >= 125),
        "{body}"
    );

    if let Some(smtp) = &smtp {
        let mail = eventually(WAIT, "the email arrives", || async {
            smtp.messages().into_iter().next()
        })
        .await;
        assert!(mail.contains("X-Envelope-To: ops@example.com"), "{mail}");
        assert!(
            mail.contains("Subject: Incident opened: stripe invoice.paid (failed_result)"),
            "{mail}"
        );
        assert!(mail.contains("multipart/alternative"), "{mail}");
        assert!(
            mail.contains("text/plain") && mail.contains("text/html"),
            "{mail}"
        );
        assert!(mail.contains("Reason: db <down> & out"), "{mail}");
        assert!(mail.contains("Customer waiting: 2m"), "{mail}");
        assert!(mail.contains("db &lt;down&gt; &amp; out"), "{mail}");
        assert!(mail.contains(&link), "{mail}");
    }

    // Every attempt is on the incident's timeline.
    wait_no_pending(&server).await;
    let attempts = alert_attempts(&timeline(&api, &incident_id).await);
    let mut kinds: Vec<&str> = attempts
        .iter()
        .map(|a| a["channel"].as_str().unwrap_or_default())
        .collect();
    kinds.sort_unstable();
    let mut expected = vec!["slack", "webhook"];
    if smtp.is_some() {
        expected.insert(0, "email");
    }
    assert_eq!(kinds, expected, "{attempts:?}");
    assert!(attempts.iter().all(|a| a["outcome"] == "delivered"));

    // Resolved: only the webhook asked for it.
    let r = api
        .post(
            &format!("/v1/incidents/{incident_id}/resolve"),
            json!({"note": "credited by hand"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hook = wait_hooks(&hooks, "/hook", 2).await;
    let body = hook[1].json();
    assert_eq!(body["type"], "incident.resolved");
    assert_eq!(body["incident"]["id"], incident_id.as_str());
    wait_no_pending(&server).await;
    assert_eq!(
        hooks.received_on("/slack").len(),
        1,
        "Slack wants only opened"
    );
    if let Some(smtp) = &smtp {
        assert_eq!(smtp.messages().len(), 1, "email wants only opened");
    }
}

#[tokio::test]
async fn a_burst_for_one_event_type_is_one_alert_then_one_digest() {
    let server = start_server(None).await;
    let api = server.api();
    let hooks = HookReceiver::start().await;
    set_channels(
        &api,
        json!([
            {"type": "webhook", "url": hooks.url("/hook")},
            {"type": "slack", "webhook_url": hooks.url("/slack")},
        ]),
    )
    .await;

    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(open_incident(&api, &format!("evt_b{i}"), "invoice.paid", "timeout").await);
        server.advance(Duration::from_secs(1));
    }
    // Another event type is its own group.
    let other = open_incident(&api, "evt_c0", "customer.created", "boom").await;

    // The first of each group goes at once.
    let first = wait_hooks(&hooks, "/hook", 2).await;
    let mut singles: Vec<String> = first
        .iter()
        .map(|h| {
            h.json()["incident"]["id"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    singles.sort();
    let mut want = vec![ids[0].clone(), other.clone()];
    want.sort();
    assert_eq!(singles, want);
    let rest: Vec<String> = ids[1..].to_vec();
    // The other five are held: nothing more before the window closes.
    eventually(WAIT, "five alerts per channel held", || async {
        (server.store().pending_alerts().await.expect("count") == 10).then_some(())
    })
    .await;
    assert_eq!(hooks.received_on("/hook").len(), 2);

    // The window (300 s) closes: one digest per channel.
    server.advance(Duration::from_secs(301));
    let all = wait_hooks(&hooks, "/hook", 3).await;
    let digest = all[2].json();
    verify_webhook(&all[2], &server.project.signing_secret, &server);
    assert_eq!(digest["type"], "incident.opened");
    assert_eq!(digest["event_type"], "invoice.paid");
    assert_eq!(digest["count"], 5);
    let carried: Vec<String> = digest["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(carried, rest, "oldest first");
    let slack = wait_hooks(&hooks, "/slack", 3).await;
    let titles: Vec<String> = slack
        .iter()
        .map(|h| h.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        titles.contains(&"5 invoice.paid incidents opened in the last 5 minutes".to_owned()),
        "{titles:?}"
    );
    wait_no_pending(&server).await;
    assert_eq!(hooks.received_on("/hook").len(), 3);
    assert_eq!(hooks.received_on("/slack").len(), 3);
    // Each incident of the digest has the attempt on its timeline.
    for id in &rest {
        let attempts = alert_attempts(&timeline(&api, id).await);
        assert_eq!(attempts.len(), 2, "{id}: {attempts:?}");
        assert!(
            attempts
                .iter()
                .all(|a| a["incidents"] == 5 && a["outcome"] == "delivered")
        );
    }
}

#[tokio::test]
async fn an_alert_is_retried_after_a_receiver_outage() {
    let server = start_server(None).await;
    let api = server.api();
    let hooks = HookReceiver::start().await;
    hooks.script(&[503, 503]);
    set_channels(
        &api,
        json!([{"type": "webhook", "url": hooks.url("/hook")}]),
    )
    .await;
    let incident_id = open_incident(&api, "evt_r1", "invoice.paid", "down").await;

    wait_hooks(&hooks, "/hook", 1).await;
    // Retry delays are 5 s then 30 s, each with up to 20 % jitter.
    eventually(WAIT, "the first attempt is recorded", || async {
        (alert_attempts(&timeline(&api, &incident_id).await).len() == 1).then_some(())
    })
    .await;
    server.advance(Duration::from_secs(7));
    wait_hooks(&hooks, "/hook", 2).await;
    eventually(WAIT, "the second attempt is recorded", || async {
        (alert_attempts(&timeline(&api, &incident_id).await).len() == 2).then_some(())
    })
    .await;
    server.advance(Duration::from_secs(40));
    let got = wait_hooks(&hooks, "/hook", 3).await;
    assert_eq!(
        got.iter().map(|h| h.answered).collect::<Vec<_>>(),
        vec![503, 503, 200]
    );
    // The same message id on every attempt, each one verifying.
    let ids: Vec<String> = got
        .iter()
        .map(|h| verify_webhook(h, &server.project.signing_secret, &server))
        .collect();
    assert!(
        ids[0].starts_with("alr_") && ids.iter().all(|id| *id == ids[0]),
        "{ids:?}"
    );
    wait_no_pending(&server).await;
    let attempts = alert_attempts(&timeline(&api, &incident_id).await);
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        outcomes,
        ["retry_scheduled", "retry_scheduled", "delivered"]
    );
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[2]["status"], 200);
    assert_eq!(attempts[2]["attempt"], 3);
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("sendpromptly_alert_attempts_total{outcome=\"retry\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn undelivered_alerts_are_sent_once_after_a_restart() {
    let server = start_server(None).await;
    let api = server.api();
    let hooks = HookReceiver::start().await;
    hooks.script(&[503]);
    set_channels(
        &api,
        json!([{"type": "webhook", "url": hooks.url("/hook")}]),
    )
    .await;
    let incident_id = open_incident(&api, "evt_s1", "invoice.paid", "down").await;
    wait_hooks(&hooks, "/hook", 1).await;
    eventually(WAIT, "the failed attempt is recorded", || async {
        (alert_attempts(&timeline(&api, &incident_id).await).len() == 1).then_some(())
    })
    .await;
    assert_eq!(server.store().pending_alerts().await.expect("count"), 1);

    // Stop with the alert pending; start again on the same database.
    let server = server.restart().await;
    let api = server.api();
    server.advance(Duration::from_secs(7));
    let got = wait_hooks(&hooks, "/hook", 2).await;
    assert_eq!(got[1].answered, 200);
    wait_no_pending(&server).await;
    // Once: no further request after it was delivered.
    assert_eq!(hooks.received_on("/hook").len(), 2);
    let attempts = alert_attempts(&timeline(&api, &incident_id).await);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[1]["outcome"], "delivered");
}

#[tokio::test]
async fn test_send_reports_each_channel_over_the_api_and_the_cli() {
    let smtp = SmtpSink::start();
    let server = start_server(smtp.as_ref()).await;
    let api = server.api();
    let hooks = HookReceiver::start().await;

    // No channels yet: nothing to try.
    let r = api.post("/v1/project/alert-channels/test", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"], json!([]));

    let mut channels = vec![
        json!({"type": "slack", "webhook_url": hooks.url("/slack")}),
        json!({"type": "webhook", "url": hooks.url("/broken")}),
    ];
    if smtp.is_some() {
        channels.push(json!({"type": "email", "to": "team@example.com"}));
    }
    set_channels(&api, Value::Array(channels.clone())).await;
    hooks.script(&[200, 500]);
    let r = api
        .send(Method::POST, "/v1/project/alert-channels/test", None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.json["data"].as_array().expect("outcomes").clone();
    assert_eq!(data.len(), channels.len());
    assert_eq!(data[0]["kind"], "slack");
    assert_eq!(data[0]["delivered"], true);
    assert_eq!(data[1]["kind"], "webhook");
    assert_eq!(data[1]["delivered"], false);
    assert_eq!(data[1]["status"], 500);
    assert!(
        data[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{data:?}"
    );
    let slack = hooks.received_on("/slack");
    assert!(
        slack[0].json().to_string().contains("TEST ALERT"),
        "the test message is marked"
    );
    let broken = hooks.received_on("/broken");
    verify_webhook(&broken[0], &server.project.signing_secret, &server);
    if let Some(smtp) = &smtp {
        assert_eq!(data[2]["delivered"], true, "{data:?}");
        let mail = smtp.messages();
        assert!(mail[0].contains("TEST ALERT"), "{}", mail[0]);
    }
    // Nothing was queued or put on a timeline.
    assert_eq!(server.store().pending_alerts().await.expect("count"), 0);

    // One channel only; an index out of range is a 422 naming `channel`.
    let r = api
        .post("/v1/project/alert-channels/test", json!({"channel": 0}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"].as_array().map(Vec::len), Some(1));
    let r = api
        .post("/v1/project/alert-channels/test", json!({"channel": 9}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["error"]["param"], "channel");

    // The CLI, on the same database: channel 0 works, channel 1 fails.
    let database_url = server.database_url.clone();
    // Blocking process runs go to a blocking thread: the receivers live on
    // this test's runtime and must keep answering meanwhile.
    let run = |channel: &'static str| {
        let database_url = database_url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_sendpromptly"))
                .args([
                    "--database-url",
                    &database_url,
                    "alerts",
                    "test",
                    "--project",
                    "default",
                    "--allow-private-urls",
                    "--channel",
                    channel,
                ])
                .env_remove("SENDPROMPTLY_SMTP_URL")
                .output()
                .expect("run the CLI")
        })
    };
    let before = hooks.received_on("/slack").len();
    let ok = run("0").await.expect("join");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("channel 0 (slack): sent"), "{stdout}");
    assert_eq!(hooks.received_on("/slack").len(), before + 1);
    hooks.script(&[503]);
    let failed = run("1").await.expect("join");
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(!failed.status.success(), "{stdout}");
    assert!(
        stdout.contains("channel 1 (webhook): FAILED HTTP 503"),
        "{stdout}"
    );
}

#[tokio::test]
async fn channels_are_set_and_shown_from_the_cli() {
    use sendpromptly_server::testing::{cli_ok, run_cli};
    const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
    let server = start_server(None).await;
    let db = server.database_url.clone();
    let channels = json!([
        {"type": "email", "to": "ops@example.com"},
        {"type": "webhook", "url": "https://alerts.example.com/hook", "on": ["incident.resolved"]},
    ]);
    let text = channels.to_string();
    let out = tokio::task::spawn_blocking({
        let db = db.clone();
        move || cli_ok(BIN, &db, &["alerts", "set", "--channels", &text])
    })
    .await
    .expect("join");
    assert!(out.contains("now has 2 alert channel(s)"), "{out}");
    // The API and `alerts show` see the same list.
    let settings = server.api().get("/v1/project").await;
    assert_eq!(
        settings.json["alert_channels"], channels,
        "{}",
        settings.text
    );
    let shown = tokio::task::spawn_blocking({
        let db = db.clone();
        move || cli_ok(BIN, &db, &["alerts", "show"])
    })
    .await
    .expect("join");
    let shown: Value = serde_json::from_str(&shown).expect("show prints JSON");
    assert_eq!(shown, channels);

    // Refused, naming what is wrong, and nothing changes: a cloud metadata
    // address, an unknown event, a channel type, and text that is not JSON.
    for (bad, names) in [
        (
            r#"[{"type": "webhook", "url": "http://169.254.169.254/latest"}]"#,
            "alert_channels[0].url",
        ),
        (
            r#"[{"type": "email", "to": "ops@example.com", "on": ["incident.exploded"]}]"#,
            "alert_channels[0].on",
        ),
        (r#"[{"type": "pager"}]"#, "alert_channels[0].type"),
        ("[{", "not valid JSON"),
    ] {
        let out = tokio::task::spawn_blocking({
            let db = db.clone();
            move || run_cli(BIN, &db, &["alerts", "set", "--channels", bad])
        })
        .await
        .expect("join");
        assert!(!out.success, "{bad} was accepted");
        assert!(out.stderr.contains(names), "{bad}: {}", out.stderr);
    }
    let settings = server.api().get("/v1/project").await;
    assert_eq!(settings.json["alert_channels"], channels);

    // `[]` removes them all.
    let out = tokio::task::spawn_blocking(move || {
        cli_ok(BIN, &db, &["alerts", "set", "--channels", "[]"])
    })
    .await
    .expect("join");
    assert!(out.contains("now has 0 alert channel(s)"), "{out}");
    let settings = server.api().get("/v1/project").await;
    assert_eq!(settings.json["alert_channels"], json!([]));
}

/// The first `{PUBLIC_URL}/…` link in `text`, up to a quote, space or `>`.
fn first_link(text: &str) -> String {
    let start = text
        .find(PUBLIC_URL)
        .unwrap_or_else(|| panic!("no link to {PUBLIC_URL} in {text}"));
    text[start..]
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '|' | '\\'))
        .next()
        .expect("a link")
        .to_owned()
}

/// GETs `link` (a `PUBLIC_URL` link) against the running server, sending
/// `cookie` if any, as a browser would: redirects within the console are
/// followed (keeping the cookies they set), a redirect to the sign-in page
/// is not. The last status, its `Location`, its body.
async fn follow(server: &TestServer, link: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut path = link
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("{link} is not under {PUBLIC_URL}"))
        .to_owned();
    let mut cookies: Vec<String> = cookie
        .into_iter()
        .flat_map(|c| c.split("; "))
        .map(str::to_owned)
        .collect();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for _ in 0..5 {
        let mut request = http.get(format!("{}{path}", server.url()));
        if !cookies.is_empty() {
            request = request.header("cookie", cookies.join("; "));
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        for set in response.headers().get_all("set-cookie") {
            let pair = set
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default();
            let name = pair.split('=').next().unwrap_or_default();
            cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            cookies.push(pair.to_owned());
        }
        if status == 303 && location.starts_with('/') && !location.starts_with("/login") {
            path = location;
            continue;
        }
        return (status, location, response.text().await.unwrap_or_default());
    }
    panic!("{link}: too many redirects");
}

/// Signs a console user in over HTTP; the `Cookie` header of the session.
async fn console_session(server: &TestServer) -> String {
    const EMAIL: &str = "oncall@example.com";
    const PASSWORD: &str = "correct horse battery";
    sendpromptly_server::provision::create_user(
        server.store(),
        EMAIL,
        PASSWORD,
        server.clock_now(),
    )
    .await
    .expect("user");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookies = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .map(str::to_owned)
            .collect()
    };
    let login = http
        .get(format!("{}/login", server.url()))
        .send()
        .await
        .expect("login page");
    let jar = cookies(&login).join("; ");
    let body = login.text().await.expect("login body");
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a csrf field") + marker.len();
    let csrf = &body[start..][..body[start..].find('"').expect("end of csrf")];
    let signed_in = http
        .post(format!("{}/login", server.url()))
        .header("cookie", jar)
        .form(&[
            ("email", EMAIL),
            ("password", PASSWORD),
            ("csrf", csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), 303, "sign-in");
    cookies(&signed_in)
        .into_iter()
        .find(|c| c.starts_with("sp_session="))
        .expect("a session cookie")
}

/// The link of a Slack alert's "Open in the console" button.
fn slack_button_link(payload: &Value) -> String {
    payload["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .find(|b| b["type"] == "actions")
        .and_then(|b| b["elements"][0]["url"].as_str())
        .unwrap_or_else(|| panic!("no button in {payload}"))
        .to_owned()
}

/// The `href` of the HTML's "Open in the console" anchor, unescaped as a
/// browser reads an attribute.
fn html_console_link(html: &str) -> String {
    let anchor = html
        .find(">Open in the console</a>")
        .unwrap_or_else(|| panic!("no console link in {html}"));
    let start = html[..anchor].rfind("href=\"").expect("an href") + "href=\"".len();
    html[start..anchor]
        .trim_end_matches('"')
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every channel's link to the incident: the Slack button, the webhook's
/// `console_url`, and the email's text link and HTML anchor (the `n`th mail).
async fn channel_links(
    hooks: &HookReceiver,
    smtp: Option<&SmtpSink>,
    prefix: &str,
    mail: usize,
) -> Vec<(String, String)> {
    let slack = wait_hooks(hooks, &format!("{prefix}/slack"), 1).await;
    let hook = wait_hooks(hooks, &format!("{prefix}/hook"), 1).await;
    let mut links = vec![
        ("slack".to_owned(), slack_button_link(&slack[0].json())),
        (
            "webhook".to_owned(),
            hook[0].json()["incident"]["console_url"]
                .as_str()
                .expect("console_url")
                .to_owned(),
        ),
    ];
    if let Some(smtp) = smtp {
        eventually(WAIT, "the email arrives", || async {
            (smtp.messages().len() > mail).then_some(())
        })
        .await;
        let (text, html) = smtp.parts(mail);
        links.push(("email text".to_owned(), first_link(&text)));
        links.push(("email html".to_owned(), html_console_link(&html)));
    }
    links
}

#[tokio::test]
async fn every_channels_link_opens_the_incident_in_the_console() {
    let smtp = SmtpSink::start();
    let server = start_server(smtp.as_ref()).await;
    let api = server.api();
    let hooks = HookReceiver::start().await;
    let channels = |prefix: &str| {
        let mut channels = vec![
            json!({"type": "slack", "webhook_url": hooks.url(&format!("{prefix}/slack"))}),
            json!({"type": "webhook", "url": hooks.url(&format!("{prefix}/hook"))}),
        ];
        if smtp.is_some() {
            channels.push(json!({"type": "email", "to": "ops@example.com"}));
        }
        Value::Array(channels)
    };
    set_channels(&api, channels("/first")).await;
    let incident_id = open_incident(&api, "evt_link1", "invoice.paid", "tenant missing").await;
    let links = channel_links(&hooks, smtp.as_ref(), "/first", 0).await;

    let session = console_session(&server).await;
    for (channel, link) in &links {
        assert!(
            link.contains(&format!("?project={}", server.project.project_id)),
            "{channel} link {link} does not name the project"
        );
        // Signed in: the incident's page.
        let (status, _, body) = follow(&server, link, Some(&session)).await;
        assert_eq!(status, 200, "{channel} link {link} answered {status}");
        assert!(
            body.contains(&incident_id) && body.contains("tenant missing"),
            "{channel} link {link} is not the incident page: {body}"
        );
        // Not signed in: the sign-in page, which comes back to the incident.
        let (status, location, _) = follow(&server, link, None).await;
        assert_eq!(status, 303, "{channel} link {link} without a session");
        assert!(
            location.starts_with("/login?next=") && location.contains(&incident_id),
            "{channel} link {link} redirects to {location}"
        );
    }

    // An incident of another project opens from each channel's alert too,
    // whichever project the reader's console had chosen.
    let other = sendpromptly_server::provision::create_project(
        server.store(),
        "second",
        None,
        server.clock_now(),
    )
    .await
    .expect("second project");
    // The reader is on call for both projects (a project made after the
    // user is not theirs until they are added to it).
    sendpromptly_server::service::users::create(
        server.store(),
        sendpromptly_server::service::users::By::Cli,
        &other.project_id,
        "oncall@example.com",
        sendpromptly_core::roles::Role::Viewer,
        sendpromptly_server::service::users::Credential::Invite,
        server.clock_now(),
    )
    .await
    .expect("member of the second project");
    let other_api = api.with_key(&other.api_key);
    set_channels(&other_api, channels("/second")).await;
    let other_incident = open_incident(
        &other_api,
        "evt_link2",
        "invoice.paid",
        "other tenant missing",
    )
    .await;
    // The reader's console shows the default project (its switcher cookie).
    let on_default = format!("{session}; sp_project={}", server.project.project_id);
    for (channel, link) in channel_links(&hooks, smtp.as_ref(), "/second", 1).await {
        let (status, _, body) = follow(&server, &link, Some(&on_default)).await;
        assert_eq!(status, 200, "{channel} link {link} answered {status}");
        assert!(
            body.contains(&other_incident) && body.contains("other tenant missing"),
            "{channel} link {link} is not the other project's incident page: {body}"
        );
    }

    // A test send links to the settings page of the project it tested,
    // also when the reader's console had chosen the project where they are
    // only a viewer (settings are for admins).
    let r = api
        .post("/v1/project/alert-channels/test", json!({"channel": 0}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let slack = wait_hooks(&hooks, "/first/slack", 2).await;
    let link = slack_button_link(&slack[1].json());
    assert!(
        link.contains(&format!("?project={}", server.project.project_id)),
        "test alert link {link} does not name the project"
    );
    let on_other = format!("{session}; sp_project={}", other.project_id);
    let (status, _, body) = follow(&server, &link, Some(&on_other)).await;
    assert_eq!(status, 200, "test alert link {link} answered {status}");
    assert!(body.contains("Alert channels"), "{link}: {body}");
}

#[tokio::test]
async fn a_delivered_repair_without_a_result_is_announced_to_channels_that_want_it() {
    let server = start_server(None).await;
    let api = server.api();
    let hooks = HookReceiver::start().await;
    let repair =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({ "repair_url": repair.url() })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    set_channels(
        &api,
        json!([
            {"type": "webhook", "url": hooks.url("/no-result"), "on": ["reprocess.no_result"]},
            {"type": "slack", "webhook_url": hooks.url("/slack"), "on": ["reprocess.no_result"]},
            {"type": "webhook", "url": hooks.url("/opened")},
        ]),
    )
    .await;
    let incident_id = open_incident(&api, "evt_nr1", "invoice.paid", "worker down").await;
    wait_hooks(&hooks, "/opened", 1).await;

    let r = api
        .post(&format!("/v1/incidents/{incident_id}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    eventually(WAIT, "the repair callback is delivered", || async {
        let detail = api.get(&format!("/v1/incidents/{incident_id}")).await;
        (detail.json["incident"]["reprocess"]["status"] == "delivered").then_some(())
    })
    .await;
    assert!(hooks.received_on("/no-result").is_empty());

    // The app never reports a result: past the result deadline the
    // incident returns to open, and the channels that asked are told.
    server.advance(Duration::from_secs(2 * 3600));
    let got = wait_hooks(&hooks, "/no-result", 1).await;
    verify_webhook(&got[0], &server.project.signing_secret, &server);
    let body = got[0].json();
    assert_eq!(body["type"], "reprocess.no_result", "{body}");
    assert_eq!(body["incident"]["id"], incident_id.as_str());
    assert!(
        body["incident"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no result"),
        "{body}"
    );
    let slack = wait_hooks(&hooks, "/slack", 1).await;
    let title = slack[0].json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        title.contains("no result") && title.contains("invoice.paid"),
        "{title}"
    );
    let detail = api.get(&format!("/v1/incidents/{incident_id}")).await;
    assert_eq!(detail.json["incident"]["state"], "open");
    wait_no_pending(&server).await;
    // The default channel (`incident.opened` only) got nothing more.
    assert_eq!(hooks.received_on("/opened").len(), 1);
}

#[tokio::test]
async fn a_result_before_any_receipt_is_alerted_as_an_unknown_type() {
    const TITLE: &str =
        "Incident opened: stripe unknown type (result arrived before any receipt) (failed_result)";
    let smtp = SmtpSink::start();
    let server = start_server(smtp.as_ref()).await;
    let api = server.api();
    let hooks = HookReceiver::start().await;
    let mut channels = vec![
        json!({"type": "slack", "webhook_url": hooks.url("/slack")}),
        json!({"type": "webhook", "url": hooks.url("/hook")}),
    ];
    if smtp.is_some() {
        channels.push(json!({"type": "email", "to": "ops@example.com"}));
    }
    set_channels(&api, Value::Array(channels)).await;
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_early", "status": "failure", "error": "no account"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let slack = wait_hooks(&hooks, "/slack", 1).await;
    let payload = slack[0].json();
    assert_eq!(payload["text"], TITLE);
    assert!(!payload.to_string().contains("stripe  ("), "{payload}");
    let hook = wait_hooks(&hooks, "/hook", 1).await;
    // The webhook's line for people says it; its machine-readable type
    // stays empty (none is known).
    assert_eq!(hook[0].json()["title"], TITLE);
    assert_eq!(hook[0].json()["incident"]["event_type"], "");
    if let Some(smtp) = &smtp {
        eventually(WAIT, "the email arrives", || async {
            smtp.messages().into_iter().next()
        })
        .await;
        assert_eq!(smtp.subject(0), TITLE);
        let (text, html) = smtp.parts(0);
        for part in [&text, &html] {
            assert!(
                part.contains("unknown type (result arrived before any receipt)")
                    && !part.contains("stripe  ("),
                "{part}"
            );
        }
    }
}

/// A plain SMTP relay (no STARTTLS, no AUTH), as a trusted local relay is:
/// it accepts every message and keeps its DATA.
struct PlainRelay {
    port: u16,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PlainRelay {
    /// A relay listening on `ip`.
    async fn start(ip: std::net::IpAddr) -> PlainRelay {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind relay");
        let port = listener.local_addr().expect("relay addr").port();
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = messages.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = AsyncBufReader::new(read);
                    let _ = write.write_all(b"220 relay.local ESMTP\r\n").await;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-relay.local\r\n250 8BITMIME\r\n",
                            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                            "DATA" => {
                                let _ = write.write_all(b"354 go on\r\n").await;
                                let mut data = String::new();
                                loop {
                                    line.clear();
                                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if line == ".\r\n" {
                                        break;
                                    }
                                    data.push_str(&line);
                                }
                                kept.lock().expect("lock").push(data);
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                return;
                            }
                            _ => b"502 not implemented\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        PlainRelay {
            port,
            messages,
            task,
        }
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }
}

impl Drop for PlainRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Signs in, then presses the settings page's **Send test alert**; the page.
async fn press_test_alert(server: &TestServer) -> String {
    let session = console_session(server).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let settings = http
        .get(format!("{}/settings", server.url()))
        .header("cookie", &session)
        .send()
        .await
        .expect("settings")
        .text()
        .await
        .expect("settings body");
    let marker = r#"name="csrf" value=""#;
    let start = settings.find(marker).expect("a csrf field") + marker.len();
    let csrf = &settings[start..][..settings[start..].find('"').expect("end")];
    let page = http
        .post(format!("{}/settings/alerts/test", server.url()))
        .header("cookie", &session)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .expect("test alert");
    assert_eq!(page.status(), 200);
    page.text().await.expect("page")
}

const SMTP_FROM: &str = "SendPromptly <alerts@example.com>";

/// A server sending email through `smtp_url`, with one email channel.
async fn server_with_smtp(smtp_url: &str) -> TestServer {
    let mut config = test_config();
    config.public_url = Some(PUBLIC_URL.to_owned());
    config.smtp = Some(SmtpSettings::parse(smtp_url, SMTP_FROM).expect("smtp settings"));
    let server = TestServer::start_with(config).await;
    set_channels(
        &server.api(),
        json!([{"type": "email", "to": "ops@example.com"}]),
    )
    .await;
    server
}

/// `sendpromptly alerts test` on `server`'s database with `smtp_url`:
/// whether it succeeded, and its output.
async fn cli_test_alert(server: &TestServer, smtp_url: &str) -> (bool, String) {
    let args = [
        "--database-url".to_owned(),
        server.database_url.clone(),
        "alerts".to_owned(),
        "test".to_owned(),
        "--smtp-url".to_owned(),
        smtp_url.to_owned(),
        "--smtp-from".to_owned(),
        SMTP_FROM.to_owned(),
    ];
    // A blocking thread: the relay lives on this test's runtime.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sendpromptly"))
            .args(&args)
            .env_remove("SENDPROMPTLY_SMTP_URL")
            .output()
            .expect("run the CLI")
    })
    .await
    .expect("join");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// This machine's own address that is not loopback (the one it would use
/// to reach the documentation network; no packet is sent), if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn a_plain_relay_on_loopback_gets_the_alert_with_a_bare_smtp_url() {
    let relay = PlainRelay::start([127, 0, 0, 1].into()).await;
    // No `?tls=`: a loopback host needs no TLS (the mail never leaves the machine).
    let url = format!("smtp://127.0.0.1:{}", relay.port);
    let server = server_with_smtp(&url).await;
    let api = server.api();

    // The test send, over the API, the console and the CLI.
    let r = api.post("/v1/project/alert-channels/test", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"][0]["delivered"], true, "{}", r.text);
    let page = press_test_alert(&server).await;
    assert!(page.contains("channel 0 (email): sent"), "{page}");
    let (ok, out) = cli_test_alert(&server, &url).await;
    assert!(ok, "{out}");
    assert_eq!(relay.messages().len(), 3);
    assert!(relay.messages().iter().all(|m| m.contains("TEST ALERT")));

    // A real incident's alert arrives too.
    let incident_id = open_incident(&api, "evt_relay", "invoice.paid", "worker down").await;
    let mail = eventually(WAIT, "the alert reaches the relay", || async {
        relay.messages().into_iter().nth(3)
    })
    .await;
    assert!(
        mail.contains(&incident_id) && mail.contains("worker down"),
        "{mail}"
    );
}

/// A plain relay where STARTTLS is required: each front end's test send
/// says exactly what to change; done, the relay gets the message.
async fn refused_then_fixed(relay: &PlainRelay, url: &str, host: &str) {
    let server = server_with_smtp(url).await;
    let api = server.api();
    let wanted = format!("smtp://{host}:{}?tls=none", relay.port);

    let r = api.post("/v1/project/alert-channels/test", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let outcome = &r.json["data"][0];
    assert_eq!(outcome["delivered"], false, "{outcome}");
    let error = outcome["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("STARTTLS") && error.contains(&wanted) && error.contains("smtp_url"),
        "{url}: the error does not say what to change: {error}"
    );
    // The console's button and the CLI show the same words.
    let page = press_test_alert(&server).await;
    assert!(page.contains(&wanted), "{url}: {page}");
    let (ok, out) = cli_test_alert(&server, url).await;
    assert!(!ok, "{url}: the CLI reports a failure: {out}");
    assert!(out.contains(&wanted), "{url}: {out}");
    assert!(
        relay.messages().is_empty(),
        "{url}: nothing went in plain text"
    );
    server.running.shutdown().await;

    // As the message says: `?tls=none`.
    let server = server_with_smtp(&wanted).await;
    let r = server
        .api()
        .post("/v1/project/alert-channels/test", json!({}))
        .await;
    assert_eq!(r.json["data"][0]["delivered"], true, "{}", r.text);
    let mail = relay.messages();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("TEST ALERT"), "{}", mail[0]);
    server.running.shutdown().await;
}

#[tokio::test]
async fn a_plain_relay_is_refused_where_tls_is_required_with_what_to_change() {
    // A host that is not loopback keeps TLS required: this machine's own
    // network address stands in for a relay on the network.
    match non_loopback_ip() {
        Some(ip) => {
            let relay = PlainRelay::start(ip).await;
            let host = ip.to_string();
            refused_then_fixed(&relay, &format!("smtp://{host}:{}", relay.port), &host).await;
        }
        None => println!("SKIPPED (remote relay): this machine has no address but loopback"),
    }
    // On loopback, `?tls=starttls` asks for TLS and gets the same answer.
    let relay = PlainRelay::start([127, 0, 0, 1].into()).await;
    refused_then_fixed(
        &relay,
        &format!("smtp://127.0.0.1:{}?tls=starttls", relay.port),
        "127.0.0.1",
    )
    .await;
}
