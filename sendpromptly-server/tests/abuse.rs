//! Abuse: per-key rate limits answer 429 with `Retry-After`, per key.
//! (Console sign-in throttling is tested in `tests/console.rs`.)

use std::time::Duration;

use sendpromptly_server::provision;
use sendpromptly_server::ratelimit::RateLimit;
use sendpromptly_server::testing::{TestServer, test_config};

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after_others_do_not() {
    let server = TestServer::start_with(sendpromptly_server::config::ServerConfig {
        api_rate_limit: Some(RateLimit {
            per_second: 2,
            burst: 5,
        }),
        ..test_config()
    })
    .await;
    let api = server.api();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(api.get("/v1/incidents").await);
    }
    let ok = statuses.iter().take_while(|r| r.status == 200).count();
    assert!((5..=6).contains(&ok), "the burst of 5 passes: {ok}");
    let limited = statuses.last().unwrap();
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(limited.json["error"]["type"], "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // POSTs are limited too, and nothing is recorded.
    let r = api
        .post(
            "/v1/receipt",
            serde_json::json!({"provider": "stripe", "event_id": "evt_limited",
                               "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(r.status, 429);

    // Another key (even of the same project) has its own bucket.
    let other = provision::create_api_key(
        server.store(),
        &server.project.project_id,
        None,
        sendpromptly_core::scope::ScopeSet::ADMIN,
        server.clock_now(),
    )
    .await
    .unwrap();
    assert_eq!(api.with_key(&other).get("/v1/incidents").await.status, 200);

    // After Retry-After, the key is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let r = api
        .post(
            "/v1/receipt",
            serde_json::json!({"provider": "stripe", "event_id": "evt_limited",
                               "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn the_limit_can_be_turned_off() {
    let server = TestServer::start_with(sendpromptly_server::config::ServerConfig {
        api_rate_limit: None,
        ..test_config()
    })
    .await;
    let api = server.api();
    for _ in 0..50 {
        assert_eq!(api.get("/v1/project").await.status, 200);
    }
}
