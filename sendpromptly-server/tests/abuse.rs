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

/// Background mode against a real server whose key is over its limit: every
/// signal arrives, none is dropped, and the SDK waits out each `429`'s
/// `Retry-After` instead of hammering (a handful of 429s, not hundreds),
/// even with a policy of a single attempt per signal.
#[tokio::test]
async fn background_mode_waits_out_429_and_delivers_every_signal() {
    use sendpromptly_client::{BackgroundConfig, Client, ClientOptions, Provider, RetryConfig};
    use sendpromptly_core::model::EventKey;

    const SIGNALS: usize = 60;
    const CONCURRENCY: usize = 4;
    let server = TestServer::start_with(sendpromptly_server::config::ServerConfig {
        api_rate_limit: Some(RateLimit {
            per_second: 20,
            burst: 20,
        }),
        ..test_config()
    })
    .await;
    let sp = Client::with_options(ClientOptions {
        api_key: Some(server.project.api_key.clone()),
        base_url: Some(server.url()),
        ..ClientOptions::default()
    })
    .unwrap();
    let background = sp
        .background(BackgroundConfig {
            concurrency: CONCURRENCY,
            // One attempt: a 429 must not count as one, or signals would drop.
            retry: RetryConfig {
                max_attempts: 1,
                ..RetryConfig::background()
            },
            ..BackgroundConfig::default()
        })
        .unwrap();
    for i in 0..SIGNALS {
        sp.receipt(Provider::Stripe, format!("evt_storm_{i}"), "invoice.paid")
            .enqueue(&background)
            .unwrap();
    }
    let stats = background.shutdown(Duration::from_secs(60)).await;
    assert_eq!(stats.delivered, SIGNALS as u64, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    // 60 signals through a bucket of 20 (20/s): the key ran dry, so the
    // server answered 429 at least once, and each pause of Retry-After
    // (1 s) lets at most CONCURRENCY requests in flight meet a 429.
    assert!(stats.throttled >= 1, "{stats:?}");
    let pauses = (SIGNALS / 20 + 2) as u64;
    assert!(
        stats.throttled <= pauses * CONCURRENCY as u64,
        "Retry-After not respected: {stats:?}"
    );
    for i in 0..SIGNALS {
        let key = EventKey {
            provider: Provider::Stripe,
            event_id: format!("evt_storm_{i}"),
        };
        let stored = server
            .store()
            .event(&server.project.project_id, &key)
            .await
            .unwrap();
        assert!(stored.is_some(), "evt_storm_{i} was not recorded");
    }
}
