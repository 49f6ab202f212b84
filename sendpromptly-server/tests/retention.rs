//! Retention: the background job forgets idempotency keys after
//! `idempotency_retention` (48 h by default); by default nothing else, and
//! with `resolved_retention` (`--resolved-retention-days`) finished history
//! older than it, never an open incident.

use std::time::Duration;

use reqwest::Method;
use sendpromptly_server::testing::{TestServer, eventually};
use serde_json::json;

/// How many rows `table` of the server's SQLite file holds.
async fn count(server: &TestServer, table: &str) -> i64 {
    let url = format!(
        "sqlite://{}",
        server.dir().join("sendpromptly.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn keys(server: &TestServer) -> i64 {
    count(server, "idempotency_keys").await
}

#[tokio::test]
async fn idempotency_keys_are_purged_after_retention_and_incidents_are_kept() {
    let server = TestServer::start().await;
    let api = server.api();
    let body = json!({"provider": "stripe", "event_id": "evt_keep", "status": "failure"});
    let first = api
        .send(
            Method::POST,
            "/v1/result",
            Some(&body),
            &[("Idempotency-Key", "k1")],
        )
        .await;
    assert_eq!(first.status, 200);
    let incident = first.json["incident"]["id"].as_str().unwrap().to_owned();
    assert_eq!(keys(&server).await, 1);

    // Within the 24 h replay window the key replays.
    server.advance(Duration::from_secs(23 * 3600));
    let replay = api
        .send(
            Method::POST,
            "/v1/result",
            Some(&body),
            &[("Idempotency-Key", "k1")],
        )
        .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    // Within the retention (48 h) the row stays.
    server.advance(Duration::from_secs(24 * 3600));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(keys(&server).await, 1);

    // After it, the job deletes it.
    server.advance(Duration::from_secs(2 * 3600));
    eventually(Duration::from_secs(10), "the key is purged", || async {
        (keys(&server).await == 0).then_some(())
    })
    .await;

    // The open incident and its event are untouched.
    let detail = api.get(&format!("/v1/incidents/{incident}")).await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.json["incident"]["state"], "open");
    let event = api.get("/v1/events/stripe/evt_keep").await;
    assert_eq!(event.status, 200);
}

#[tokio::test]
async fn resolved_history_is_purged_after_its_retention_and_open_incidents_never_are() {
    let config = sendpromptly_server::config::ServerConfig {
        resolved_retention: Some(Duration::from_secs(30 * 86_400)),
        ..sendpromptly_server::testing::test_config()
    };
    let server = TestServer::start_with(config).await;
    let api = server.api();
    // An alert channel: each opened incident leaves a (delivered) alert row.
    let hooks = sendpromptly_server::testing::HookReceiver::start().await;
    let channels = json!({"alert_channels": [{"type": "webhook", "url": hooks.url("/alerts")}]});
    let patched = api
        .send(Method::PATCH, "/v1/project", Some(&channels), &[])
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let result = |event_id: &str, status: &str| json!({"provider": "stripe", "event_id": event_id, "status": status});
    let alerted = |n: usize| {
        let (hooks, server) = (&hooks, &server);
        async move {
            eventually(Duration::from_secs(10), "the alert delivered", || async {
                (hooks.received_on("/alerts").len() == n
                    && server.store().pending_alerts().await.unwrap() == 0)
                    .then_some(())
            })
            .await;
        }
    };
    // Resolved: a failure (announced), then a success.
    let failed = api.post("/v1/result", result("evt_fixed", "failure")).await;
    let resolved_incident = failed.json["incident"]["id"].as_str().unwrap().to_owned();
    alerted(1).await;
    assert_eq!(
        api.post("/v1/result", result("evt_fixed", "success"))
            .await
            .status,
        200
    );
    // A plain success, and (past the alert grouping window, so it is
    // announced at once too) an open incident.
    assert_eq!(
        api.post("/v1/result", result("evt_fine", "success"))
            .await
            .status,
        200
    );
    server.advance(Duration::from_secs(600));
    let open = api
        .post("/v1/result", result("evt_broken", "failure"))
        .await;
    let open_incident = open.json["incident"]["id"].as_str().unwrap().to_owned();
    alerted(2).await;
    assert_eq!(count(&server, "alerts").await, 2);

    // Within the retention everything stays.
    server.advance(Duration::from_secs(29 * 86_400));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(api.get("/v1/events/stripe/evt_fixed").await.status, 200);
    assert_eq!(count(&server, "alerts").await, 2);

    // After it, the finished history goes; the open incident stays, for ever.
    server.advance(Duration::from_secs(2 * 86_400));
    eventually(
        Duration::from_secs(10),
        "resolved history purged",
        || async { (api.get("/v1/events/stripe/evt_fixed").await.status == 404).then_some(()) },
    )
    .await;
    assert_eq!(api.get("/v1/events/stripe/evt_fine").await.status, 404);
    // Finished alerts went too (they copy the incidents' facts); the open
    // incident keeps its `alert.attempt` on its timeline.
    eventually(
        Duration::from_secs(10),
        "finished alerts purged",
        || async { (count(&server, "alerts").await == 0).then_some(()) },
    )
    .await;
    assert_eq!(
        api.get(&format!("/v1/incidents/{resolved_incident}"))
            .await
            .status,
        404
    );
    server.advance(Duration::from_secs(3650 * 86_400));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let detail = api.get(&format!("/v1/incidents/{open_incident}")).await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.json["incident"]["state"], "open");
    let kinds: Vec<&str> = detail.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"alert.attempt"), "{kinds:?}");
    assert_eq!(api.get("/v1/events/stripe/evt_broken").await.status, 200);
}
