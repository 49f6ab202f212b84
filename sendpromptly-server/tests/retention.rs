//! Retention: the background job forgets idempotency keys after
//! `idempotency_retention` (48 h by default) and nothing else; incidents,
//! open or resolved, and their events stay.

use std::time::Duration;

use reqwest::Method;
use sendpromptly_server::testing::{TestServer, eventually};
use serde_json::json;

async fn keys(server: &TestServer) -> i64 {
    let url = format!(
        "sqlite://{}",
        server.dir().join("sendpromptly.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
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
