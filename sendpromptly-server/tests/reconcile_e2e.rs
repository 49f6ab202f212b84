//! End to end: payments Stripe delivered but neither SendPromptly's tap nor
//! the app ever reported. The running server's reconciler reads them from a
//! local Stripe API (real HTTP on loopback) with the project's restricted
//! key, the expected-events service tracks them, and once the receipt grace
//! passes the sweeper opens exactly one `missing_receipt` incident per
//! event: not one more after a restart (which re-reads the overlap), nor
//! with two instances on one PostgreSQL database. An event the app did
//! acknowledge opens nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use sendpromptly_core::Timestamp;
use sendpromptly_core::model::{IncidentKind, TimelineKind};
use sendpromptly_server::clock::{Clock, ManualClock};
use sendpromptly_server::config::ServerConfig;
use sendpromptly_server::store::{IncidentFilter, PageRequest, ProviderTapSettings, Store};
use sendpromptly_server::testing::stripe_api::{FakeStripe, checkout_completed, event};
use sendpromptly_server::testing::{TestServer, eventually, test_config};
use serde_json::json;

const KEY: &str = "rk_test_e2e_reconciler_9f3a";
const GRACE: u32 = 120;
const WHSEC: &str = "whsec_reconcile_e2e_tap";

fn config(stripe: &FakeStripe) -> ServerConfig {
    ServerConfig {
        stripe_api_base: stripe.url(),
        reconcile_interval: Some(Duration::from_millis(100)),
        ..test_config()
    }
}

fn tap_settings(now: Timestamp) -> ProviderTapSettings {
    ProviderTapSettings {
        tracked_event_types: None,
        receipt_grace_seconds: GRACE,
        grace_by_event_type: BTreeMap::new(),
        stripe_endpoint_secrets: Vec::new(),
        shopify_client_secret: None,
        stripe_restricted_key: Some(KEY.to_owned()),
        updated_at: now,
    }
}

/// Every incident of the project: event id → kinds.
async fn incidents(store: &dyn Store, project_id: &str) -> BTreeMap<String, Vec<IncidentKind>> {
    let mut found: BTreeMap<String, Vec<IncidentKind>> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_incidents(
                project_id,
                &IncidentFilter::default(),
                &PageRequest { limit: 100, cursor },
            )
            .await
            .expect("list incidents");
        for record in page.data {
            let event_id = record.key().event_id.clone();
            let incident = record.incident.expect("an incident");
            found.entry(event_id).or_default().push(incident.kind);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return found,
        }
    }
}

async fn fed_at_least(store: &dyn Store, project_id: &str, n: u64) {
    eventually(
        Duration::from_secs(15),
        "the reconciler feeds the events",
        || async {
            let state = store.reconcile_state(project_id).await.ok()??;
            (state.events_fed >= n && state.lease_owner.is_none()).then_some(())
        },
    )
    .await;
}

fn add_payments(stripe: &FakeStripe, prefix: &str, count: usize, created: i64) -> Vec<String> {
    (0..count)
        .map(|i| {
            let id = format!("evt_{prefix}_{i}");
            stripe.add([checkout_completed(
                &id,
                created - i as i64,
                &format!("cus_{i}"),
                1000 + i as i64,
            )]);
            id
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_delivered_payments_open_one_missing_receipt_each_across_restarts() {
    let stripe = FakeStripe::start(KEY).await;
    let server = TestServer::start_with(config(&stripe)).await;
    let project_id = server.project.project_id.clone();
    let now = server.clock_now().unix_seconds();
    let missing = add_payments(&stripe, "lost", 5, now - 120);
    // One the app did get and acknowledged.
    stripe.add([checkout_completed("evt_acked", now - 300, "cus_a", 500)]);
    // An untracked type: never expected.
    stripe.add([event(
        "evt_customer",
        "customer.created",
        now - 60,
        json!({"id": "cus_new", "object": "customer"}),
    )]);
    let r = server
        .api()
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_acked", "event_type": "checkout.session.completed", "subject": "cus_a"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // The tap first: one of the lost payments did reach SendPromptly's tap
    // (signed like Stripe signs it), before any reconciling.
    let patch = |tap: serde_json::Value| {
        let api = server.api();
        async move {
            let r = api
                .send(
                    http::Method::PATCH,
                    "/v1/project",
                    Some(&json!({"provider_tap": tap})),
                    &[],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.text
        }
    };
    patch(json!({"stripe_endpoint_secrets": [WHSEC], "receipt_grace_seconds": GRACE})).await;
    let tapped =
        serde_json::to_vec(&checkout_completed(&missing[0], now - 120, "cus_0", 1000)).unwrap();
    let signature = sendpromptly_core::stripe::generate_test_header(
        &tapped,
        WHSEC,
        server.clock_now().unix_seconds(),
    );
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/providers/stripe/webhooks/{project_id}",
            server.url()
        ))
        .header("content-type", "application/json")
        .header("Stripe-Signature", signature)
        .body(tapped)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    // Then the reconciler: the key goes in through the API, like an
    // operator would.
    let text = patch(json!({"stripe_restricted_key": KEY})).await;
    assert!(!text.contains(KEY), "the key is write-only");
    fed_at_least(server.store(), &project_id, 6).await;
    // The tapped payment was seen twice (tap, then reconciler): one event.
    let tapped = server
        .store()
        .event(
            &project_id,
            &sendpromptly_core::model::EventKey {
                provider: sendpromptly_core::model::Provider::Stripe,
                event_id: missing[0].clone(),
            },
        )
        .await
        .unwrap()
        .expect("the tapped event");
    let kinds: Vec<TimelineKind> = tapped.timeline.iter().map(|e| e.kind.clone()).collect();
    assert!(
        kinds.contains(&TimelineKind::ProviderCopyRecorded),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&TimelineKind::ProviderCopyDuplicate),
        "{kinds:?}"
    );
    let requests = stripe.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {KEY}")))
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.params("types[]").contains(&"customer.created")),
        "only tracked types are listed"
    );
    assert!(
        incidents(server.store(), &project_id).await.is_empty(),
        "nothing before the grace"
    );

    server.advance(Duration::from_secs(u64::from(GRACE) + 1));
    let want: BTreeSet<String> = missing.iter().cloned().collect();
    let store = server.store();
    eventually(
        Duration::from_secs(10),
        "missing_receipt incidents open",
        || async {
            let found = incidents(store, &project_id).await;
            (found.keys().cloned().collect::<BTreeSet<_>>() == want).then_some(())
        },
    )
    .await;
    let found = incidents(store, &project_id).await;
    for id in &missing {
        assert_eq!(found[id], vec![IncidentKind::MissingReceipt], "{id}");
    }
    assert!(!found.contains_key("evt_acked"));

    // A restart reads the overlap again (the same events, already tracked)
    // and a new payment; the old ones open nothing more.
    let fed_before = store
        .reconcile_state(&project_id)
        .await
        .unwrap()
        .unwrap()
        .events_fed;
    let server = server.restart().await;
    let now = server.clock_now().unix_seconds();
    let later = add_payments(&stripe, "later", 1, now - 10);
    stripe.clear_requests();
    fed_at_least(server.store(), &project_id, fed_before + 7).await;
    let first = &stripe.requests()[0];
    let watermark: i64 = first.param("created[gte]").unwrap().parse().unwrap();
    assert!(
        watermark <= now - 120 - 600 + 1,
        "the overlap is re-read: {watermark}"
    );
    server.advance(Duration::from_secs(u64::from(GRACE) + 1));
    let store = server.store();
    let mut want = want.clone();
    want.extend(later);
    eventually(
        Duration::from_secs(10),
        "the new payment's incident",
        || async {
            let found = incidents(store, &project_id).await;
            (found.keys().cloned().collect::<BTreeSet<_>>() == want).then_some(())
        },
    )
    .await;
    // A few more passes: still one incident each.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found = incidents(store, &project_id).await;
    assert_eq!(found.len(), 6);
    assert!(
        found
            .values()
            .all(|kinds| kinds == &vec![IncidentKind::MissingReceipt])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_open_one_incident_per_event() {
    use sendpromptly_server::store::postgres::testing::{self, TestDatabase};
    use sendpromptly_server::store::postgres::{PoolSettings, PostgresStore};
    let Some(admin) = testing::server_url("two reconciling servers") else {
        return;
    };
    let database = TestDatabase::create(&admin).await;
    let open = || async {
        let store = PostgresStore::connect_with(
            &database.url,
            PoolSettings {
                max_connections: 6,
                min_connections: 0,
                ..PoolSettings::default()
            },
        )
        .await
        .expect("connect")
        .with_keyring(sendpromptly_server::store::conformance::test_keyring());
        store.migrate().await.expect("migrate");
        Arc::new(store) as Arc<dyn Store>
    };
    let stripe = FakeStripe::start(KEY).await;
    let clock = ManualClock::starting_now();
    let first_store = open().await;
    let project = sendpromptly_server::provision::create_project(
        first_store.as_ref(),
        "two-instances",
        None,
        clock.now(),
    )
    .await
    .unwrap();
    first_store
        .put_provider_tap_settings(&project.project_id, &tap_settings(clock.now()))
        .await
        .unwrap();
    let now = clock.now().unix_seconds();
    let mut missing = add_payments(&stripe, "pg", 150, now - 60);

    let mut servers = Vec::new();
    for store in [first_store.clone(), open().await] {
        servers.push(
            sendpromptly_server::server::start(store, Arc::new(clock.clone()), config(&stripe))
                .await
                .expect("server starts"),
        );
    }
    // Payments keep coming while both instances reconcile.
    for i in 0..20 {
        missing.extend(add_payments(&stripe, &format!("pg_live{i}"), 1, now));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let store = first_store.as_ref();
    let project_id = project.project_id.as_str();
    eventually(Duration::from_secs(20), "every payment tracked", || async {
        let mut all = true;
        for id in &missing {
            let key = sendpromptly_core::model::EventKey {
                provider: sendpromptly_core::model::Provider::Stripe,
                event_id: id.clone(),
            };
            if store.event(project_id, &key).await.ok().flatten().is_none() {
                all = false;
                break;
            }
        }
        all.then_some(())
    })
    .await;
    clock.advance(Duration::from_secs(u64::from(GRACE) + 1));
    let want: BTreeSet<String> = missing.iter().cloned().collect();
    eventually(
        Duration::from_secs(20),
        "one incident per payment",
        || async {
            let found = incidents(store, project_id).await;
            (found.keys().cloned().collect::<BTreeSet<_>>() == want).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found = incidents(store, project_id).await;
    assert_eq!(found.len(), 170);
    assert!(
        found
            .values()
            .all(|kinds| kinds == &vec![IncidentKind::MissingReceipt])
    );
    for server in servers {
        server.shutdown().await;
    }
}

/// A shutdown does not wait for Stripe: a pass sleeping on a 30 s
/// `Retry-After` stops at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_rate_limited_pass() {
    let stripe = FakeStripe::start(KEY).await;
    stripe.throttle(&[30]);
    let server = TestServer::start_with(config(&stripe)).await;
    let project_id = server.project.project_id.clone();
    server
        .store()
        .put_provider_tap_settings(&project_id, &tap_settings(server.clock_now()))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "a 429 from Stripe", || async {
        stripe
            .requests()
            .iter()
            .any(|r| r.status == 429)
            .then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    server.running.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
}

/// The reconciler's health check stays green while a pass waits on
/// Stripe's `Retry-After` longer than the health bound (the loop is alive
/// and the database answers; Stripe's slowness is the metrics' business).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_waiting_on_stripe_keeps_the_loop_healthy() {
    let stripe = FakeStripe::start(KEY).await;
    stripe.throttle(&[30]);
    let server = TestServer::start_with(ServerConfig {
        health_loop_bound: Duration::from_secs(2),
        ..config(&stripe)
    })
    .await;
    let project_id = server.project.project_id.clone();
    server
        .store()
        .put_provider_tap_settings(&project_id, &tap_settings(server.clock_now()))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "a 429 from Stripe", || async {
        stripe
            .requests()
            .iter()
            .any(|r| r.status == 429)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let health = reqwest::get(format!("{}/healthz", server.url()))
        .await
        .unwrap();
    let status = health.status().as_u16();
    let body = health.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stripe.requests().len(),
        1,
        "still waiting on the Retry-After"
    );
    server.running.shutdown().await;
}
