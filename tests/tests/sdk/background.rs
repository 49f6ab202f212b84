//! Background mode against a server that goes away, hangs or refuses.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sendpromptly_client::{
    BackgroundConfig, DropReason, DroppedSignal, EnqueueError, EventState, Provider, RetryConfig,
    Signal,
};
use sendpromptly_e2e::Fault;

use crate::{direct, through_proxy};

fn patient_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 10_000,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        jitter: 0.5,
        total_budget: Duration::from_secs(120),
        attempt_timeout: Duration::from_millis(500),
        ..RetryConfig::default()
    }
}

type Reports = Arc<Mutex<Vec<DroppedSignal>>>;

fn collecting() -> (Reports, BackgroundConfig) {
    let reports: Reports = Arc::default();
    let sink = Arc::clone(&reports);
    let config = BackgroundConfig {
        on_drop: Some(Arc::new(move |dropped| {
            sink.lock().unwrap().push(dropped.clone());
        })),
        retry: patient_retry(),
        ..BackgroundConfig::default()
    };
    (reports, config)
}

fn event_id(signal: &Signal) -> String {
    match signal {
        Signal::Receipt(r) => r.event_id.clone(),
        Signal::Result(r) => r.event_id.clone(),
    }
}

#[tokio::test]
async fn everything_is_delivered_once_the_server_comes_back() {
    let (server, proxy, sp) = through_proxy(crate::quick_retry()).await;
    let (reports, config) = collecting();
    let background = sp
        .background(BackgroundConfig {
            capacity: 100,
            concurrency: 2,
            ..config
        })
        .unwrap();

    // SendPromptly goes away: connections are refused.
    proxy.go_down();
    let started = Instant::now();
    for i in 0..10 {
        sp.receipt(Provider::Stripe, format!("evt_bg_{i}"), "invoice.paid")
            .subject("cus_bg")
            .enqueue(&background)
            .expect("room in the queue");
        sp.success(Provider::Stripe, format!("evt_bg_{i}"))
            .enqueue(&background)
            .expect("room in the queue");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "enqueue never waits for the server"
    );
    assert!(
        !background.flush(Duration::from_millis(300)).await,
        "nothing can be delivered yet"
    );
    assert_eq!(background.stats().pending, 20);

    // The server restarts on a new port; the proxy comes back on its old one.
    let server = server.restart().await;
    proxy.set_upstream(&server.url());
    proxy.come_back().await;

    assert!(
        background.flush(Duration::from_secs(60)).await,
        "drained after recovery"
    );
    let stats = background.stats();
    assert_eq!(stats.delivered, 20, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert!(reports.lock().unwrap().is_empty());

    let sp = direct(&server);
    for i in 0..10 {
        let detail = sp
            .get_event(Provider::Stripe, &format!("evt_bg_{i}"))
            .await
            .expect("delivered");
        assert_eq!(detail.event.deliveries, 1, "evt_bg_{i}");
        assert_eq!(detail.event.state, EventState::Succeeded, "evt_bg_{i}");
    }
    let final_stats = background.shutdown(Duration::from_secs(5)).await;
    assert_eq!(final_stats.delivered, 20);
}

#[tokio::test]
async fn a_full_queue_drops_and_reports_then_the_rest_is_delivered() {
    let (server, proxy, sp) = through_proxy(crate::quick_retry()).await;
    let (reports, config) = collecting();
    let capacity = 3;
    let background = sp
        .background(BackgroundConfig {
            capacity,
            concurrency: 1,
            ..config
        })
        .unwrap();
    proxy.set_default(Fault::Hang);

    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for i in 0..10 {
        let id = format!("evt_full_{i}");
        match sp
            .receipt(Provider::Stripe, &id, "invoice.paid")
            .enqueue(&background)
        {
            Ok(()) => accepted.push(id),
            Err(EnqueueError::QueueFull { capacity: c }) => {
                assert_eq!(c, capacity);
                refused.push(id);
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    // The queue holds `capacity`; the worker may already hold one more.
    assert!(
        (capacity..=capacity + 1).contains(&accepted.len()),
        "accepted {accepted:?}"
    );
    let stats = background.stats();
    assert_eq!(stats.dropped_queue_full as usize, refused.len());
    let reported: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .inspect(|d| assert_eq!(d.reason, DropReason::QueueFull))
        .map(|d| event_id(&d.signal))
        .collect();
    assert_eq!(reported, refused);

    proxy.set_default(Fault::Forward);
    assert!(background.flush(Duration::from_secs(60)).await);
    assert_eq!(background.stats().delivered as usize, accepted.len());

    let sp = direct(&server);
    for id in &accepted {
        let detail = sp.get_event(Provider::Stripe, id).await.expect("delivered");
        assert_eq!(detail.event.deliveries, 1, "{id}");
    }
    for id in &refused {
        let err = sp.get_event(Provider::Stripe, id).await.unwrap_err();
        assert_eq!(
            err.status(),
            Some(404),
            "{id} was reported dropped but arrived"
        );
    }
}

#[tokio::test]
async fn exhausted_budgets_and_rejections_are_reported() {
    let (_server, proxy, sp) = through_proxy(crate::quick_retry()).await;
    let (reports, config) = collecting();
    let background = sp
        .background(BackgroundConfig {
            concurrency: 1,
            retry: RetryConfig {
                max_attempts: 3,
                ..patient_retry()
            },
            ..config
        })
        .unwrap();

    proxy.set_default(Fault::status(503));
    sp.receipt(Provider::Stripe, "evt_gave_up", "invoice.paid")
        .enqueue(&background)
        .unwrap();
    assert!(background.flush(Duration::from_secs(30)).await);
    assert_eq!(proxy.count(), 3);
    let keys: Vec<_> = proxy
        .seen()
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert!(keys.iter().all(|k| k == &keys[0] && k.is_some()));

    proxy.set_default(Fault::status(422));
    sp.success(Provider::Stripe, "evt_rejected")
        .enqueue(&background)
        .unwrap();
    assert!(background.flush(Duration::from_secs(30)).await);
    assert_eq!(proxy.count(), 4, "a 422 is not retried");

    let stats = background.stats();
    assert_eq!((stats.gave_up, stats.rejected, stats.delivered), (1, 1, 0));
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].reason, DropReason::GaveUp);
    assert_eq!(
        reports[0].error.as_ref().and_then(|e| e.status()),
        Some(503)
    );
    assert_eq!(reports[0].error.as_ref().map(|e| e.attempts()), Some(3));
    assert_eq!(Some(&reports[0].idempotency_key), keys[0].as_ref());
    assert_eq!(reports[1].reason, DropReason::Rejected);
    assert_eq!(
        reports[1].error.as_ref().and_then(|e| e.status()),
        Some(422)
    );
}

#[tokio::test]
async fn shutdown_drains_then_closes() {
    let (server, _proxy, sp) = through_proxy(crate::quick_retry()).await;
    let (reports, config) = collecting();
    let background = sp.background(config).unwrap();
    for i in 0..5 {
        sp.receipt(Provider::Custom, format!("job-{i}"), "job.run")
            .enqueue(&background)
            .unwrap();
    }
    let stats = background.shutdown(Duration::from_secs(30)).await;
    assert_eq!((stats.delivered, stats.pending, stats.dropped()), (5, 0, 0));
    let err = sp
        .receipt(Provider::Custom, "job-late", "job.run")
        .enqueue(&background)
        .unwrap_err();
    assert_eq!(err, EnqueueError::Closed);
    assert_eq!(reports.lock().unwrap()[0].reason, DropReason::Closed);
    let found = direct(&server)
        .search_events(&sendpromptly_client::EventFilter::default())
        .await
        .unwrap();
    assert_eq!(found.data.len(), 5);
}

#[tokio::test]
async fn shutdown_gives_up_on_a_hanging_server_in_time_and_reports() {
    let (_server, proxy, sp) = through_proxy(crate::quick_retry()).await;
    let (reports, config) = collecting();
    let background = sp
        .background(BackgroundConfig {
            concurrency: 1,
            ..config
        })
        .unwrap();
    proxy.set_default(Fault::Hang);
    for i in 0..3 {
        sp.receipt(Provider::Custom, format!("stuck-{i}"), "job.run")
            .enqueue(&background)
            .unwrap();
    }
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let stats = background.shutdown(timeout).await;
    assert!(started.elapsed() < timeout + Duration::from_secs(5));
    assert_eq!(
        (stats.dropped_at_shutdown, stats.pending, stats.delivered),
        (3, 0, 0)
    );
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|d| d.reason == DropReason::Shutdown));
}
