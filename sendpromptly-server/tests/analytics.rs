//! Time-to-effect analytics and the SLO (issue #25) over a seeded dataset
//! with known timings: receipts and results through the real API on a
//! manual clock, then `GET /v1/stats`, checked figure by figure against an
//! independent computation in Python (`scripts/check_analytics.py`, which
//! applies the documented bucket rule and the SLO/burn-rate definitions of
//! `docs/analytics.md` to the raw timings). The seeded check and the burn
//! alert run on SQLite and, with `SENDPROMPTLY_TEST_POSTGRES_URL` set, on
//! PostgreSQL (see `scripts/test-postgres.sh`).

use std::time::Duration;

use sendpromptly_server::store::postgres::testing as postgres;
use sendpromptly_server::testing::TestServer;
use serde_json::{Value, json};

/// A small deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[tokio::test]
async fn stats_match_an_independent_computation() {
    stats_match_on(TestServer::start().await).await;
}

/// The same on PostgreSQL, whose triggers append deltas that a background
/// fold moves into the rollup (migration 0015): the answers count the
/// folded rows and the deltas not folded yet alike.
#[tokio::test]
async fn stats_match_an_independent_computation_on_postgres() {
    let Some(url) = postgres::server_url("analytics on PostgreSQL") else {
        return;
    };
    stats_match_on(TestServer::start_on_postgres(&url).await).await;
}

async fn stats_match_on(server: TestServer) {
    let api = server.api();
    let r = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({
                "default_deadline_seconds": 604800,
                "slos": [
                    {"event_type": "invoice.paid", "objective_percent": 90.0, "threshold_seconds": 300},
                    {"event_type": "order.created", "objective_percent": 99.5, "threshold_seconds": 60, "window_days": 7}
                ]
            })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["slos"][0]["window_days"], 30, "{}", r.text);

    let now = || server.clock_now().unix_millis();
    let mut rng = Lcg(25);
    let mut events = Vec::new();
    let mut incidents = Vec::new();
    for i in 0..60 {
        let event_type = if i % 3 == 2 {
            "order.created"
        } else {
            "invoice.paid"
        };
        let event_id = format!("evt_an_{i}");
        let received = now();
        let r = api
            .post(
                "/v1/receipt",
                json!({"provider": "stripe", "event_id": event_id, "event_type": event_type}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        // Durations from 5 ms to ~20 min, skewed short.
        let ms = match rng.next(4) {
            0 => 5 + rng.next(250),
            1 => 250 + rng.next(10_000),
            2 => 10_000 + rng.next(120_000),
            _ => 60_000 + rng.next(1_200_000),
        };
        server.advance(Duration::from_millis(ms));
        let fails = i % 11 == 4;
        let status = if fails { "failure" } else { "success" };
        let r = api
            .post(
                "/v1/result",
                json!({"provider": "stripe", "event_id": event_id, "status": status, "error": "boom"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let done = now();
        events.push(json!({
            "event_type": event_type, "received_ms": received,
            "success_ms": if fails { Value::Null } else { json!(done) },
        }));
        if fails {
            let id = r.json["incident"]["id"]
                .as_str()
                .expect("incident")
                .to_owned();
            incidents.push((id, event_type, done));
        }
        server.advance(Duration::from_millis(rng.next(3_000)));
    }
    // Half the incidents resolved by hand after a known while; the rest stay open.
    let mut incident_rows = Vec::new();
    for (n, (id, event_type, opened)) in incidents.into_iter().enumerate() {
        let mut resolved = Value::Null;
        if n % 2 == 0 {
            server.advance(Duration::from_millis(30_000 + rng.next(600_000)));
            let r = api
                .post(
                    &format!("/v1/incidents/{id}/resolve"),
                    json!({"note": "credited by hand"}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            resolved = json!(now());
        }
        incident_rows.push(json!({
            "event_type": event_type, "opened_ms": opened, "resolved_ms": resolved,
            "how": if resolved.is_null() { "open" } else { "manual" },
        }));
    }
    // Everything is due.
    server.advance(Duration::from_secs(900));

    let report = api.get("/v1/stats?window=7d").await;
    assert_eq!(report.status, 200, "{}", report.text);
    let only = api
        .get("/v1/stats?window=24h&event_type=order.created")
        .await;
    assert_eq!(only.status, 200, "{}", only.text);
    let settings = api.get("/v1/project").await;

    let data = json!({
        "now_ms": now(),
        "events": events,
        "incidents": incident_rows,
        "slos": settings.json["slos"],
        "report": report.json,
        "report_order_created": only.json,
    });
    let file = server.dir().join("analytics.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&data).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/check_analytics.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Python computation disagrees:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("checked"), "{said}");
}

#[tokio::test]
async fn bad_windows_and_slos_are_refused_with_the_reason() {
    let server = TestServer::start().await;
    let api = server.api();
    let r = api.get("/v1/stats?window=fortnight").await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["error"]["param"], "window", "{}", r.text);
    assert!(r.text.contains("24h, 7d, 30d"), "{}", r.text);
    let r = api.get("/v1/stats?from=yesterday").await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["error"]["param"], "from", "{}", r.text);
    let r = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({"slos": [{"event_type": "a", "objective_percent": 100, "threshold_seconds": 60}]})),
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        r.json["error"]["param"], "slos[0].objective_percent",
        "{}",
        r.text
    );
    // Nothing recorded yet: empty figures, not an error.
    let r = api.get("/v1/stats").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["overall"]["received"], 0);
    assert!(r.json["overall"]["time_to_effect"]["p50_ms"].is_null());
}

/// Every due event of the 1 h and 5 m windows failed: the burn rate is
/// 1 / (1 - 0.99) = 100 ≥ 14.4 on both, so the loop raises `slo.burning`
/// on the channel that asked for it, once for the episode (not on every
/// tick), and the SLO shows as burning. The decision itself is the one
/// `scripts/check_analytics.py` recomputes in the seeded test above.
#[tokio::test]
async fn a_burning_slo_alerts_once_per_episode() {
    a_burning_slo_alerts_once_on(TestServer::start().await).await;
}

/// The same on PostgreSQL: the burn loop counts the SLO slots' deltas not
/// folded yet.
#[tokio::test]
async fn a_burning_slo_alerts_once_per_episode_on_postgres() {
    let Some(url) = postgres::server_url("SLO burn on PostgreSQL") else {
        return;
    };
    a_burning_slo_alerts_once_on(TestServer::start_on_postgres(&url).await).await;
}

async fn a_burning_slo_alerts_once_on(server: TestServer) {
    use sendpromptly_server::testing::{HookReceiver, eventually};
    let api = server.api();
    let hooks = HookReceiver::start().await;
    let r = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({
                "alert_channels": [{"type": "webhook", "url": hooks.url("/hook"), "on": ["slo.burning"]}],
                "slos": [{"event_type": "invoice.paid", "objective_percent": 99.0, "threshold_seconds": 60}]
            })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for i in 0..10 {
        let event_id = format!("evt_burn_{i}");
        let r = api
            .post(
                "/v1/receipt",
                json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = api
            .post(
                "/v1/result",
                json!({"provider": "stripe", "event_id": event_id, "status": "failure", "error": "db down"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Past the threshold and the end of the receipts' 5-minute slot: due.
    server.advance(Duration::from_secs(7 * 60));
    let got = eventually(Duration::from_secs(10), "the slo.burning alert", || async {
        let got = hooks.received_on("/hook");
        (!got.is_empty()).then_some(got)
    })
    .await;
    let body = got[0].json();
    assert_eq!(body["type"], "slo.burning", "{body}");
    assert_eq!(body["slo"]["event_type"], "invoice.paid", "{body}");
    // Which rule fires depends on where the receipts fell in their 5-minute
    // slot (the 5 m window may already be past them); both burn at 100x.
    let burn = body["slo"]["burn_rate_long"].as_f64().unwrap();
    assert!((burn - 100.0).abs() < 1e-6, "{body}");
    assert!(
        body["title"].as_str().unwrap().contains("SLO burning"),
        "{body}"
    );
    // Many more ticks of the loop: still one alert for this episode.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(hooks.received_on("/hook").len(), 1);
    let r = api.get("/v1/stats?window=24h").await;
    assert_eq!(r.json["slos"][0]["burning"], true, "{}", r.text);
    assert_eq!(r.json["slos"][0]["attainment_percent"], 0.0, "{}", r.text);
}

/// `sendpromptly stats slos --set` sets the SLOs the API then shows (bad
/// JSON is refused with an example), and `sendpromptly stats` prints the
/// same figures as the API, in words or as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_slos_and_prints_the_figures() {
    use sendpromptly_server::testing::{cli_ok, run_cli};
    const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
    let server = TestServer::start().await;
    let api = server.api();
    let url = format!(
        "sqlite://{}",
        server.dir().join("sendpromptly.db").display()
    );
    let said = cli_ok(
        BIN,
        &url,
        &[
            "stats",
            "slos",
            "--set",
            r#"[{"event_type": "invoice.paid", "objective_percent": 99.5, "threshold_seconds": 300}]"#,
        ],
    );
    assert!(said.contains("1 SLO(s) set"), "{said}");
    let r = api.get("/v1/project").await;
    assert_eq!(r.json["slos"][0]["objective_percent"], 99.5, "{}", r.text);
    assert_eq!(r.json["slos"][0]["window_days"], 30, "{}", r.text);
    let bad = run_cli(BIN, &url, &["stats", "slos", "--set", "99.5%"]);
    assert!(!bad.success);
    assert!(
        bad.stderr.contains("--set is not a JSON list of SLOs"),
        "{}",
        bad.stderr
    );
    let bad = run_cli(
        BIN,
        &url,
        &[
            "stats",
            "slos",
            "--set",
            r#"[{"event_type": "x", "objective_percent": 99, "threshold_seconds": 0}]"#,
        ],
    );
    assert!(!bad.success);
    assert!(bad.stderr.contains("threshold_seconds"), "{}", bad.stderr);

    for i in 0..3 {
        let event_id = format!("evt_cli_{i}");
        api.post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid"}),
        )
        .await;
        server.advance(Duration::from_millis(1500));
        api.post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "success"}),
        )
        .await;
    }
    let json: Value =
        serde_json::from_str(&cli_ok(BIN, &url, &["stats", "--window", "7d", "--json"])).unwrap();
    let from_api = api.get("/v1/stats?window=7d").await.json;
    assert_eq!(json["overall"], from_api["overall"]);
    assert_eq!(json["overall"]["time_to_effect"]["count"], 3);
    // The Rust client reads the same report.
    let sp = sendpromptly_client::Client::with_options(sendpromptly_client::ClientOptions {
        api_key: Some(server.project.api_key.clone()),
        base_url: Some(server.url()),
        ..sendpromptly_client::ClientOptions::default()
    })
    .unwrap();
    let report = sp
        .stats(&sendpromptly_client::StatsQuery {
            window: Some("7d".into()),
            event_type: Some("invoice.paid".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&report.overall).unwrap(),
        from_api["overall"]
    );
    assert_eq!(report.slos[0].objective.threshold_seconds, 300);
    let text = cli_ok(BIN, &url, &["stats"]);
    assert!(text.contains("time to effect"), "{text}");
    assert!(
        text.contains("SLO invoice.paid: 99.5% within 300 s"),
        "{text}"
    );
    let bad = run_cli(BIN, &url, &["stats", "--window", "fortnight"]);
    assert!(!bad.success);
    assert!(bad.stderr.contains("24h, 7d, 30d"), "{}", bad.stderr);
}

/// `/metrics` has the time-to-effect histogram per event type (observed
/// when the success is applied) and the request-duration histogram per
/// route template (not per id).
#[tokio::test]
async fn metrics_have_the_two_histograms() {
    let server = TestServer::start().await;
    let api = server.api();
    for (i, ms) in [(0, 400_u64), (1, 3_000)] {
        let event_id = format!("evt_metrics_{i}");
        api.post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": event_id, "event_type": "invoice.paid"}),
        )
        .await;
        server.advance(Duration::from_millis(ms));
        api.post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "success"}),
        )
        .await;
    }
    api.get("/v1/events/stripe/evt_metrics_0").await;
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sendpromptly_time_to_effect_seconds_bucket{event_type=\"invoice.paid\",le=\"0.5\"} 1",
        "sendpromptly_time_to_effect_seconds_bucket{event_type=\"invoice.paid\",le=\"5\"} 2",
        "sendpromptly_time_to_effect_seconds_count{event_type=\"invoice.paid\"} 2",
        "sendpromptly_time_to_effect_seconds_sum{event_type=\"invoice.paid\"} 3.4",
        "sendpromptly_http_request_duration_seconds_count{route=\"/v1/receipt\"} 2",
        "sendpromptly_http_request_duration_seconds_count{route=\"/v1/events/{provider}/{event_id}\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
    assert!(!text.contains("evt_metrics_0\""), "ids never become labels");
}
