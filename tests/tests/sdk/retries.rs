//! Retries through the fault proxy: exactly one event server-side, 4xx never
//! retried, `Retry-After` honoured, and the total time budget respected.

use std::time::{Duration, Instant};

use sendpromptly_client::{
    Error, Provider, RetryConfig, RetryOn, TimelineKind, TransportErrorKind,
};
use sendpromptly_e2e::Fault;

use crate::{client, count_entries, quick_retry, through_proxy};

/// Slack added to time budgets for a slow, noisy machine: an upper bound,
/// never a target.
const SLACK: Duration = Duration::from_secs(3);

#[tokio::test]
async fn injected_503s_are_retried_with_one_key_and_record_one_event() {
    let (server, proxy, sp) = through_proxy(quick_retry()).await;
    proxy.script([Fault::status(503), Fault::status(503)]);
    let recorded = sp
        .receipt(Provider::Stripe, "evt_503", "invoice.paid")
        .await
        .expect("the third attempt gets through");
    assert_eq!(recorded.meta.attempts, 3);
    assert!(recorded.created());

    let seen = proxy.seen();
    assert_eq!(seen.len(), 3);
    let key = recorded.meta.idempotency_key.clone().expect("a key");
    assert!(
        seen.iter()
            .all(|r| r.idempotency_key.as_deref() == Some(key.as_str()))
    );

    let detail = sp.get_event(Provider::Stripe, "evt_503").await.unwrap();
    assert_eq!(detail.event.deliveries, 1);
    assert_eq!(
        count_entries(
            &server,
            Provider::Stripe,
            "evt_503",
            TimelineKind::ReceiptRecorded
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_lost_answer_is_replayed_not_recorded_twice() {
    let (server, proxy, sp) = through_proxy(quick_retry()).await;
    // 1: closed before reaching the server; 2: recorded, answer lost; 3: replayed.
    proxy.script([Fault::Close, Fault::ForwardThenClose]);
    let recorded = sp
        .receipt(Provider::Shopify, "shop-evt-1", "orders/paid")
        .await
        .expect("retried after dropped connections");
    assert_eq!(recorded.meta.attempts, 3);
    assert!(
        recorded.meta.replayed,
        "the server replays the recorded answer"
    );
    assert!(recorded.created(), "the replay is the first answer: 201");
    assert_eq!(recorded.event.deliveries, 1);

    proxy.script([Fault::ForwardThenClose]);
    let done = sp
        .success(Provider::Shopify, "shop-evt-1")
        .await
        .expect("success");
    assert!(done.meta.replayed);
    assert_eq!(done.meta.attempts, 2);

    let seen = proxy.seen();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0].idempotency_key, seen[2].idempotency_key);
    assert_ne!(seen[2].idempotency_key, seen[3].idempotency_key);
    assert_eq!(seen[3].idempotency_key, seen[4].idempotency_key);

    let detail = sp.get_event(Provider::Shopify, "shop-evt-1").await.unwrap();
    assert_eq!(detail.event.deliveries, 1);
    for (kind, expected) in [
        (TimelineKind::ReceiptRecorded, 1),
        (TimelineKind::ReceiptDuplicate, 0),
        (TimelineKind::ResultSuccess, 1),
        (TimelineKind::ResultDuplicate, 0),
    ] {
        assert_eq!(
            count_entries(&server, Provider::Shopify, "shop-evt-1", kind.clone()).await,
            expected,
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let (server, proxy, sp) = through_proxy(quick_retry()).await;

    // From the real server: an unknown key (401) and a conflict (409).
    let stranger = client(&proxy.url(), "sp_live_not_a_real_key", quick_retry());
    let err = stranger
        .receipt(Provider::Stripe, "evt_401", "invoice.paid")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.attempts(), 1);
    assert!(err.request_id().is_some());
    assert_eq!(proxy.count(), 1);

    sp.receipt(Provider::Stripe, "evt_409", "invoice.paid")
        .await
        .unwrap();
    let incident = sp
        .failure(Provider::Stripe, "evt_409", "boom")
        .await
        .unwrap()
        .incident
        .unwrap();
    let before = proxy.count();
    let err = sp.reprocess(&incident.id, None).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "no repair_url is set: {err}");
    assert_eq!(err.kind(), "repair_url_missing");
    assert_eq!(proxy.count(), before + 1);

    // Injected: every other 4xx is answered once.
    for status in [400, 404, 413, 415, 422] {
        let before = proxy.count();
        proxy.script([Fault::status(status)]);
        let err = sp
            .receipt(Provider::Stripe, format!("evt_{status}"), "invoice.paid")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.attempts(), 1, "{status}");
        assert_eq!(proxy.count(), before + 1, "{status} was retried");
    }
    drop(server);
}

#[tokio::test]
async fn retry_after_is_honoured_within_the_budget() {
    let (_server, proxy, sp) = through_proxy(quick_retry()).await;
    proxy.script([Fault::Respond {
        status: 429,
        retry_after: Some(1),
    }]);
    let started = Instant::now();
    let recorded = sp
        .receipt(Provider::Stripe, "evt_429", "invoice.paid")
        .await
        .expect("retried after Retry-After");
    let waited = started.elapsed();
    assert_eq!(recorded.meta.attempts, 2);
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );

    // A Retry-After beyond the budget ends the call at once with the 429.
    let budget = Duration::from_secs(2);
    let hurried = sp.with_retry(RetryConfig {
        total_budget: budget,
        ..quick_retry()
    });
    proxy.script([Fault::Respond {
        status: 429,
        retry_after: Some(30),
    }]);
    let started = Instant::now();
    let err = hurried
        .receipt(Provider::Stripe, "evt_429_long", "invoice.paid")
        .await
        .unwrap_err();
    let Error::Api(api) = &err else {
        panic!("expected the 429, got {err}");
    };
    assert_eq!(api.status, 429);
    assert_eq!(api.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(api.attempts, 1);
    assert!(started.elapsed() < budget + SLACK);
}

#[tokio::test]
async fn the_total_budget_holds_when_the_server_hangs() {
    let budget = Duration::from_millis(1200);
    let (_server, proxy, sp) = through_proxy(RetryConfig {
        max_attempts: 100,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        jitter: 0.5,
        total_budget: budget,
        attempt_timeout: Duration::from_millis(300),
        retry_on: RetryOn::default(),
    })
    .await;
    proxy.set_default(Fault::Hang);
    let started = Instant::now();
    let err = sp
        .receipt(Provider::Stripe, "evt_hang", "invoice.paid")
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let Error::Transport(transport) = &err else {
        panic!("expected a transport error, got {err}");
    };
    assert_eq!(transport.kind, TransportErrorKind::Timeout);
    assert!(transport.budget_exhausted, "{transport}");
    assert!(
        transport.attempts >= 2,
        "attempts are cut at 300 ms: {transport}"
    );
    assert_eq!(proxy.count(), transport.attempts as usize);
    // It used the budget (less at most one backoff) and did not overrun it.
    assert!(
        elapsed >= budget - Duration::from_millis(100),
        "{elapsed:?}"
    );
    assert!(elapsed < budget + SLACK, "{elapsed:?}");

    // An attempt timeout longer than the budget is cut to the budget.
    let one_long_attempt = sp.with_retry(RetryConfig {
        total_budget: Duration::from_millis(800),
        attempt_timeout: Duration::from_secs(30),
        ..sp.retry_config().clone()
    });
    let started = Instant::now();
    let err = one_long_attempt
        .success(Provider::Stripe, "evt_hang")
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.kind(), "timeout");
    assert!(elapsed >= Duration::from_millis(750), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(800) + SLACK, "{elapsed:?}");
}

#[tokio::test]
async fn a_server_that_is_down_costs_at_most_the_budget() {
    let (_server, proxy, _) = through_proxy(quick_retry()).await;
    proxy.go_down();
    let sp = client(&proxy.url(), "sp_live_whatever", RetryConfig::default());
    let started = Instant::now();
    let err = sp
        .receipt(Provider::Stripe, "evt_down", "invoice.paid")
        .await
        .unwrap_err();
    let Error::Transport(transport) = &err else {
        panic!("expected a transport error, got {err}");
    };
    assert_eq!(transport.kind, TransportErrorKind::Connect, "{transport}");
    assert_eq!(
        transport.attempts, 3,
        "connection errors are retried: {transport}"
    );
    assert!(started.elapsed() < RetryConfig::default().total_budget + SLACK);
    assert!(err.is_retryable());
}
