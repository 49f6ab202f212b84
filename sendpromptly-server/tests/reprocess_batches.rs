//! Bulk reprocess batches end to end: real HTTP, a real SQLite file, a real
//! repair endpoint that fails some callbacks and answers 429 to others, and
//! the server's manual clock to measure pacing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use sendpromptly_server::testing::{ApiClient, CallbackReceiver, TestServer, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn set_repair_url(api: &ApiClient, url: &str) {
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({ "repair_url": url })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Opens `n` failed-result incidents of `event_type`; returns their ids.
async fn open_incidents(api: &ApiClient, prefix: &str, event_type: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let event_id = format!("{prefix}_{i}");
        let r = api
            .post(
                "/v1/receipt",
                json!({"provider": "stripe", "event_id": event_id, "event_type": event_type, "subject": format!("cus_{i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = api
            .post(
                "/v1/result",
                json!({"provider": "stripe", "event_id": event_id, "status": "failure", "error": "queue workers down"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        ids.push(r.json["incident"]["id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn batch(api: &ApiClient, id: &str) -> Value {
    let r = api.get(&format!("/v1/reprocess-batches/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

fn count(batch: &Value, name: &str) -> u64 {
    batch["counts"][name].as_u64().unwrap()
}

/// Reprocess ids received per incident, and the attempt numbers per reprocess id.
fn received_by_incident(
    receiver: &CallbackReceiver,
) -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, Vec<u32>>,
) {
    let mut by_incident: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut attempts: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for got in receiver.received() {
        let callback = got.callback.expect("every callback verifies");
        by_incident
            .entry(callback.incident_id.clone())
            .or_default()
            .insert(callback.reprocess_id.clone());
        attempts
            .entry(callback.reprocess_id.clone())
            .or_default()
            .push(callback.attempt);
    }
    (by_incident, attempts)
}

#[tokio::test]
async fn batch_sends_each_incident_once_paced_through_failures_and_429s() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;

    let targets = open_incidents(&api, "evt_paid", "invoice.paid", 200).await;
    let others = open_incidents(&api, "evt_cus", "customer.created", 5).await;
    for id in &targets[..5] {
        let r = api
            .post(
                &format!("/v1/incidents/{id}/resolve"),
                json!({"note": "fixed by hand"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let request = json!({"event_type": "invoice.paid", "dry_run": true});

    // Without a repair URL the plan skips everything.
    let r = api.post("/v1/reprocess-batches", request.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["skipped_by_reason"]["no_repair_url"], 195);
    assert_eq!(r.json["to_send"], 0);

    set_repair_url(&api, &receiver.url()).await;
    let r = api.post("/v1/reprocess-batches", request).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["dry_run"], true);
    assert_eq!(r.json["total"], 200);
    assert_eq!(r.json["to_send"], 195);
    assert_eq!(r.json["by_event_type"], json!({"invoice.paid": 195}));
    assert_eq!(r.json["skipped_by_reason"], json!({"incident_resolved": 5}));
    assert_eq!(r.json["incidents"].as_array().unwrap().len(), 50);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.received().is_empty(), "a dry run sends nothing");

    // Every 4th callback gets 410 (gives up at once: failed), every 4th
    // 429 with Retry-After: 1, the rest 200.
    let script: Vec<(u16, Option<&str>)> = (0..80)
        .map(|i| match i % 4 {
            0 => (410, None),
            1 => (429, Some("1")),
            _ => (200, None),
        })
        .collect();
    receiver.script(&script);

    let rate = 50.0;
    let concurrency = 8;
    let r = api
        .post(
            "/v1/reprocess-batches",
            json!({"event_type": "invoice.paid", "rate_per_second": rate, "concurrency": concurrency, "note": "after the outage"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let batch_id = r.json["id"].as_str().unwrap().to_owned();
    assert!(batch_id.starts_with("rpb_"));
    assert_eq!(r.json["state"], "running");
    assert_eq!(r.json["counts"]["total"], 200);
    assert_eq!(r.json["counts"]["skipped"], 5);

    // Drive the manual clock in 100 ms steps; measure sent against it.
    let started = server.clock_now();
    let mut max_in_flight = 0;
    let mut worst_excess = f64::MIN;
    let mut steps = 0;
    let done = loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let b = batch(&api, &batch_id).await;
        let elapsed_s = (server.clock_now().unix_millis() - started.unix_millis()) as f64 / 1000.0;
        let sent = count(&b, "sent") as f64;
        // A token bucket of one second's burst: sent <= rate * (elapsed + 1) + 1.
        worst_excess = worst_excess.max(sent - rate * (elapsed_s + 1.0) - 1.0);
        max_in_flight = max_in_flight.max(count(&b, "in_flight"));
        if b["state"] == "completed" {
            break b;
        }
        steps += 1;
        assert!(steps < 3000, "batch did not complete: {b}");
        server.advance(Duration::from_millis(100));
    };
    let elapsed_s = (server.clock_now().unix_millis() - started.unix_millis()) as f64 / 1000.0;
    println!(
        "batch of 195 at {rate}/s, concurrency {concurrency}: completed after {elapsed_s:.1} s of server time ({steps} steps), max in flight {max_in_flight}, worst excess over the rate {worst_excess:.1}"
    );
    assert!(
        worst_excess <= 0.0,
        "pacing exceeded the rate by {worst_excess}"
    );
    assert!(max_in_flight <= concurrency, "in flight {max_in_flight}");
    // 195 callbacks at 50/s take at least ~3 s; 429s slow it further.
    assert!(elapsed_s >= 195.0 / rate - 1.0, "too fast: {elapsed_s}");

    // Every target got exactly one delivery sequence (one reprocess id,
    // attempts 1, 2, … without repeats); nothing else got anything.
    let (by_incident, attempts) = received_by_incident(&receiver);
    let expected: BTreeSet<String> = targets[5..].iter().cloned().collect();
    let got: BTreeSet<String> = by_incident.keys().cloned().collect();
    assert_eq!(got, expected);
    for (incident, reprocess_ids) in &by_incident {
        assert_eq!(reprocess_ids.len(), 1, "{incident}: {reprocess_ids:?}");
    }
    for (reprocess_id, numbers) in &attempts {
        let wanted: Vec<u32> = (1..=numbers.len() as u32).collect();
        assert_eq!(numbers, &wanted, "{reprocess_id}");
    }
    assert!(others.iter().all(|id| !by_incident.contains_key(id)));

    let gone = receiver
        .received()
        .iter()
        .filter(|r| r.answered == 410)
        .count() as u64;
    assert_eq!(count(&done, "sent"), 195);
    assert_eq!(count(&done, "failed"), gone);
    assert_eq!(count(&done, "delivered"), 195 - gone);
    assert_eq!(count(&done, "in_flight"), 0);
    assert!(gone >= 15, "the script's 410s were answered: {gone}");

    // A success result resolves an incident; the batch counts it.
    let first_sent = &targets[5];
    let detail = api.get(&format!("/v1/incidents/{first_sent}")).await.json;
    let event_id = detail["event"]["event_id"].as_str().unwrap().to_owned();
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "success"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(count(&batch(&api, &batch_id).await, "resolved"), 1);

    // The timeline says which batch and who.
    let detail = api.get(&format!("/v1/incidents/{}", targets[6])).await.json;
    let requested = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reprocess.requested")
        .expect("a reprocess.requested entry")
        .clone();
    let note = requested["detail"]["note"].as_str().unwrap();
    assert!(
        note.starts_with(&format!(
            "reprocessed as part of batch {batch_id} by api_key:key_"
        )),
        "{note}"
    );
    assert!(note.ends_with("after the outage"), "{note}");
}

/// Advances the clock in 100 ms steps until the batch has sent `at_least`.
async fn wait_sent(server: &TestServer, batch_id: &str, at_least: u64) {
    let api = server.api();
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b = batch(&api, batch_id).await;
        let created: sendpromptly_core::Timestamp =
            serde_json::from_value(b["created_at"].clone()).unwrap();
        let elapsed_s = (server.clock_now().unix_millis() - created.unix_millis()) as f64 / 1000.0;
        let sent = count(&b, "sent");
        // 10 per second with at most one second of burst.
        assert!(
            sent as f64 <= 10.0 * (elapsed_s + 1.0) + 1.0,
            "{sent} sent after {elapsed_s} s"
        );
        assert!(count(&b, "in_flight") <= 5);
        if sent >= at_least {
            return;
        }
        server.advance(Duration::from_millis(100));
    }
    panic!("never reached {at_least} sent");
}

#[tokio::test]
async fn restart_resumes_without_duplicates_and_cancel_stops_the_rest() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    set_repair_url(&api, &receiver.url()).await;
    let targets = open_incidents(&api, "evt_x", "invoice.paid", 60).await;

    // Bad requests are 4xx naming the field.
    for (body, param) in [
        (json!({"rate_per_second": 0}), "rate_per_second"),
        (json!({"concurrency": 1000}), "concurrency"),
        (json!({"incident_ids": [], }), "incident_ids"),
        (
            json!({"incident_ids": ["inc_x"], "event_type": "a"}),
            "incident_ids",
        ),
        (json!({"event_type": "nothing.matches"}), "filter"),
    ] {
        let r = api.post("/v1/reprocess-batches", body).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.json["error"]["param"], param, "{}", r.text);
    }
    assert_eq!(api.get("/v1/reprocess-batches/rpb_nope").await.status, 404);

    // An explicit id list (with an unknown id and a duplicate).
    let mut ids: Vec<Value> = targets.iter().map(|id| json!(id)).collect();
    ids.push(json!("inc_00000000000000000000000000"));
    ids.push(json!(targets[0]));
    let r = api
        .post(
            "/v1/reprocess-batches",
            json!({"incident_ids": ids, "rate_per_second": 10, "concurrency": 5}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["counts"]["total"], 61);
    assert_eq!(r.json["counts"]["skipped"], 1);
    let batch_id = r.json["id"].as_str().unwrap().to_owned();

    wait_sent(&server, &batch_id, 12).await;

    // Restart mid-batch: it resumes from the database.
    let server = server.restart().await;
    let api = server.api();
    wait_sent(&server, &batch_id, 30).await;

    let r = api
        .post(
            &format!("/v1/reprocess-batches/{batch_id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["state"], "cancelled");
    let sent = count(&r.json, "sent");
    assert!((30..60).contains(&sent), "{sent}");
    assert_eq!(count(&r.json, "cancelled"), 60 - sent);

    // Nothing more starts, however long we wait.
    for _ in 0..20 {
        server.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = batch(&api, &batch_id).await;
    assert_eq!(count(&b, "sent"), sent);
    eventually(WAIT, "sent callbacks delivered", || async {
        let b = batch(&api, &batch_id).await;
        (count(&b, "delivered") == sent).then_some(())
    })
    .await;
    let (by_incident, _) = received_by_incident(&receiver);
    assert_eq!(by_incident.len() as u64, sent);
    assert!(by_incident.values().all(|ids| ids.len() == 1));
    assert_eq!(receiver.received().len() as u64, sent, "no duplicates");
    let items = b["items"].as_array().unwrap();
    assert_eq!(
        items.iter().filter(|i| i["state"] == "cancelled").count() as u64,
        60 - sent
    );
    // Cancelling again is harmless.
    let r = api
        .post(
            &format!("/v1/reprocess-batches/{batch_id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn callbacks_waiting_for_a_retry_do_not_hold_slots_and_resume_after_recovery() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    set_repair_url(&api, &receiver.url()).await;
    let targets = open_incidents(&api, "evt_busy", "invoice.paid", 80).await;

    // A briefly overloaded endpoint: its first 20 answers are 429 (asking
    // for 3 s) and 503 (no Retry-After), then it is healthy.
    let script: Vec<(u16, Option<&str>)> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                (429, Some("3"))
            } else {
                (503, None)
            }
        })
        .collect();
    receiver.script(&script);
    // Each answer takes a moment (one clock step), so callbacks sent
    // together are open together at the endpoint.
    receiver.hold(Duration::from_millis(100));
    let r = api
        .post(
            "/v1/reprocess-batches",
            json!({"event_type": "invoice.paid", "rate_per_second": 40, "concurrency": 5}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let batch_id = r.json["id"].as_str().unwrap().to_owned();
    let started = server.clock_now();

    // Drive the clock in 100 ms steps for at most 90 s of server time. Each
    // refusal pauses the batch (3 s, or 5 s without `Retry-After`) and the
    // refused callbacks' own retries take refusals too, so the 20 refusals
    // last about 45 s; then the endpoint is healthy.
    let mut max_in_flight = 0;
    let done = loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let b = batch(&api, &batch_id).await;
        max_in_flight = max_in_flight.max(count(&b, "in_flight"));
        if b["state"] == "completed" {
            break Some(b);
        }
        if server.clock_now().unix_millis() - started.unix_millis() >= 90_000 {
            break None;
        }
        server.advance(Duration::from_millis(100));
    };
    let received = receiver.received();
    let elapsed = |at: sendpromptly_core::Timestamp| {
        (at.unix_millis() - started.unix_millis()) as f64 / 1000.0
    };
    let Some(done) = done else {
        panic!(
            "the batch was still running after 90 s: {} callbacks sent, counts {}",
            received.len(),
            batch(&api, &batch_id).await["counts"]
        );
    };
    let finished = elapsed(server.clock_now());
    assert_eq!(count(&done, "delivered"), 80, "{done}");
    assert_eq!(count(&done, "failed"), 0, "{done}");
    assert!(max_in_flight <= 5, "in flight {max_in_flight}");
    assert!(
        receiver.max_open() <= 5,
        "{} callbacks were open at the endpoint at once",
        receiver.max_open()
    );

    // Recovery: after the first success, the items waiting for a retry are
    // sent again within the pacing, not after their 30 s second backoff
    // (the bound leaves room for a last refusal's pause, up to 5 s, and
    // for sending the rest at the concurrency).
    let first_success = received
        .iter()
        .find(|r| r.answered == 200)
        .map(|r| r.at)
        .expect("a success");
    let last = received.iter().map(|r| r.at).max().expect("requests");
    println!(
        "80 callbacks at 40/s, concurrency 5: first success after {:.1} s, last request after {:.1} s, completed after {finished:.1} s",
        elapsed(first_success),
        elapsed(last)
    );
    assert!(
        last.unix_millis() - first_success.unix_millis() <= 15_000,
        "the last callback went {:.1} s after the endpoint recovered",
        (last.unix_millis() - first_success.unix_millis()) as f64 / 1000.0
    );

    // `Retry-After: 3` is honoured: a refused callback is not tried again
    // for 3 s, and the batch starts no new callback for 3 s after it.
    let callback = |r: &sendpromptly_server::testing::ReceivedCallback| {
        r.callback.clone().expect("every callback verifies")
    };
    for refused in received.iter().filter(|r| r.answered == 429) {
        let id = callback(refused).reprocess_id;
        for other in &received {
            let gap = other.at.unix_millis() - refused.at.unix_millis();
            let later = callback(other);
            if later.reprocess_id == id && later.attempt > callback(refused).attempt {
                assert!(
                    gap >= 3000,
                    "{id} was tried again {gap} ms after a 429 asking for 3 s"
                );
            }
            // The pause starts when the dispatcher has recorded the 429,
            // which may be a clock step (100 ms) after the endpoint answered.
            if later.attempt == 1 {
                assert!(
                    gap <= 250 || gap >= 3000,
                    "a new callback went {gap} ms after a 429 asking for 3 s"
                );
            }
        }
    }

    // Each incident got one reprocess, its attempts numbered 1..n.
    let (by_incident, attempts) = received_by_incident(&receiver);
    assert_eq!(by_incident.len(), targets.len());
    assert!(by_incident.values().all(|ids| ids.len() == 1));
    for (reprocess_id, numbers) in &attempts {
        let wanted: Vec<u32> = (1..=numbers.len() as u32).collect();
        assert_eq!(numbers, &wanted, "{reprocess_id}");
    }
}

#[tokio::test]
async fn a_slow_overloaded_endpoint_never_has_more_than_the_concurrency_open() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    set_repair_url(&api, &receiver.url()).await;
    open_incidents(&api, "evt_slow", "invoice.paid", 30).await;

    // Each answer takes 3 s; the first 10 are 429 asking for 3 s, so the
    // batch resumes (3 s) before the refused callbacks' own retries (5 s)
    // come due, while the new ones are still unanswered.
    let script: Vec<(u16, Option<&str>)> = (0..10).map(|_| (429, Some("3"))).collect();
    receiver.script(&script);
    receiver.hold(Duration::from_secs(3));
    let r = api
        .post(
            "/v1/reprocess-batches",
            json!({"event_type": "invoice.paid", "rate_per_second": 40, "concurrency": 5}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let batch_id = r.json["id"].as_str().unwrap().to_owned();
    let started = server.clock_now();
    let done = loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let b = batch(&api, &batch_id).await;
        if b["state"] == "completed" {
            break Some(b);
        }
        if server.clock_now().unix_millis() - started.unix_millis() >= 120_000 {
            break None;
        }
        server.advance(Duration::from_millis(100));
    };
    let Some(done) = done else {
        panic!(
            "the batch was still running after 120 s: {}",
            batch(&api, &batch_id).await["counts"]
        );
    };
    println!(
        "30 callbacks, 3 s each, concurrency 5: at most {} open at once, completed after {:.1} s",
        receiver.max_open(),
        (server.clock_now().unix_millis() - started.unix_millis()) as f64 / 1000.0
    );
    assert_eq!(count(&done, "delivered"), 30, "{done}");
    assert!(
        receiver.max_open() <= 5,
        "{} callbacks were open at the endpoint at once",
        receiver.max_open()
    );
}
