//! End-to-end tests of the service over real HTTP on loopback, a real
//! SQLite file, and a real repair endpoint that verifies signatures.

use std::time::Duration;

use reqwest::Method;
use sendpromptly_server::provision;
use sendpromptly_server::testing::{ApiClient, CallbackReceiver, TestServer, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn kinds(timeline: &Value) -> Vec<String> {
    timeline
        .as_array()
        .expect("timeline is a list")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

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

async fn incident_state(api: &ApiClient, id: &str) -> Value {
    let r = api.get(&format!("/v1/incidents/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

async fn wait_incident(api: &ApiClient, provider: &str, event_id: &str) -> String {
    eventually(WAIT, "an incident opens", || async {
        let r = api.get(&format!("/v1/events/{provider}/{event_id}")).await;
        r.json["incident"]["id"].as_str().map(str::to_owned)
    })
    .await
}

async fn wait_state(api: &ApiClient, id: &str, state: &str) -> Value {
    eventually(WAIT, &format!("incident {id} becomes {state}"), || async {
        let detail = incident_state(api, id).await;
        (detail["incident"]["state"] == state).then_some(detail)
    })
    .await
}

#[tokio::test]
async fn missing_result_is_detected_reprocessed_and_resolved() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    set_repair_url(&api, &receiver.url()).await;

    let receipt = json!({
        "provider": "stripe", "event_id": "evt_seed_1", "event_type": "invoice.paid",
        "subject": "cus_9s8d7f", "effect": "credits.add", "deadline_seconds": 60,
        "metadata": {"credits": 500}
    });
    let r = api.post("/v1/receipt", receipt).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["event"]["state"], "awaiting_result");
    assert_eq!(r.json["event"]["deliveries"], 1);
    assert!(r.json["incident"].is_null());

    // Nothing happens before the deadline.
    server.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = api.get("/v1/events/stripe/evt_seed_1").await;
    assert_eq!(r.json["event"]["state"], "awaiting_result");

    // The deadline passes: the sweeper opens a missing_result incident.
    server.advance(Duration::from_secs(2));
    let incident_id = wait_incident(&api, "stripe", "evt_seed_1").await;
    let detail = incident_state(&api, &incident_id).await;
    assert_eq!(detail["incident"]["kind"], "missing_result");
    assert_eq!(detail["incident"]["state"], "open");
    assert_eq!(detail["event"]["state"], "overdue");

    // Reprocess: the repair endpoint receives a verified callback.
    let r = api
        .post(
            &format!("/v1/incidents/{incident_id}/reprocess"),
            json!({"note": "worker was down"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let reprocess_id = r.json["reprocess_id"]
        .as_str()
        .expect("reprocess id")
        .to_owned();
    assert_eq!(r.json["incident"]["state"], "reprocessing");
    let got = eventually(WAIT, "the callback arrives", || async {
        receiver.received().first().cloned()
    })
    .await;
    let callback = got
        .callback
        .unwrap_or_else(|| panic!("callback verifies: {:?}", got.error));
    assert_eq!(callback.reprocess_id, reprocess_id);
    assert_eq!(callback.incident_id, incident_id);
    assert_eq!(callback.attempt, 1);
    assert_eq!(callback.event.event_id, "evt_seed_1");
    assert_eq!(callback.event.subject.as_deref(), Some("cus_9s8d7f"));
    assert_eq!(
        callback
            .event
            .metadata
            .as_ref()
            .and_then(|m| m.get("credits")),
        Some(&json!(500))
    );
    assert!(
        callback.requested_by.starts_with("api_key:key_"),
        "{}",
        callback.requested_by
    );
    assert_eq!(got.headers["webhook-id"], reprocess_id.as_str());
    assert_eq!(got.headers["content-type"], "application/json");
    assert!(
        got.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("SendPromptly/")
    );

    // The callback is delivered; the incident waits for the app's result.
    wait_state(&api, &incident_id, "reprocessing").await;
    let detail = eventually(WAIT, "the delivery is recorded", || async {
        let d = incident_state(&api, &incident_id).await;
        (d["incident"]["reprocess"]["status"] == "delivered").then_some(d)
    })
    .await;
    assert_eq!(detail["incident"]["reprocess"]["attempts"], 1);

    // The app repairs and reports success with the reprocess id.
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_seed_1", "status": "success", "reprocess_id": reprocess_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["incident"]["state"], "resolved");
    assert_eq!(r.json["incident"]["resolution"], "success_result");

    let detail = incident_state(&api, &incident_id).await;
    assert_eq!(
        kinds(&detail["timeline"]),
        [
            "receipt.recorded",
            "deadline.passed",
            "incident.opened",
            "reprocess.requested",
            "callback.attempt",
            "result.success",
            "incident.resolved"
        ]
    );
    let attempt = &detail["timeline"][4]["detail"];
    assert_eq!(attempt["status"], 200);
    assert_eq!(attempt["outcome"], "delivered");
    assert!(attempt["latency_ms"].is_u64());
    assert_eq!(attempt["response_excerpt"], "{\"answered\":200}");
    let note_entry = &detail["timeline"][3];
    assert_eq!(note_entry["detail"]["note"], "worker was down");
    assert!(
        note_entry["actor"]
            .as_str()
            .unwrap()
            .starts_with("api_key:key_")
    );
}

#[tokio::test]
async fn failure_then_endpoint_down_retries_then_delivers() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    set_repair_url(&api, &receiver.url()).await;

    api.post(
        "/v1/receipt",
        json!({"provider": "shopify", "event_id": "9f1c-77", "event_type": "orders/paid", "subject": "shop-42"}),
    )
    .await;
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "shopify", "event_id": "9f1c-77", "status": "failure", "error": "tenant acct_42 not found"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["event"]["state"], "failed");
    assert_eq!(r.json["incident"]["kind"], "failed_result");
    assert_eq!(r.json["incident"]["last_error"], "tenant acct_42 not found");
    let incident_id = r.json["incident"]["id"].as_str().unwrap().to_owned();

    // The endpoint is down: 503, then 500 with Retry-After, then back.
    receiver.script(&[(503, None), (500, Some("40"))]);
    let r = api
        .post(&format!("/v1/incidents/{incident_id}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);

    // While the callback is being delivered a second reprocess is refused.
    let again = api
        .post(&format!("/v1/incidents/{incident_id}/reprocess"), json!({}))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.json["error"]["type"], "reprocess_in_flight");

    eventually(WAIT, "first attempt", || async {
        (receiver.received().len() == 1).then_some(())
    })
    .await;
    // Retry 1 is due 5–6 s later (schedule plus jitter); nothing before.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.received().len(), 1);
    server.advance(Duration::from_secs(7));
    eventually(WAIT, "second attempt", || async {
        (receiver.received().len() == 2).then_some(())
    })
    .await;
    // Let the dispatcher record it before moving the clock (a jump past the
    // claim's lease would let the unfinished attempt be claimed again).
    eventually(WAIT, "second attempt recorded", || async {
        let d = incident_state(&api, &incident_id).await;
        (d["incident"]["reprocess"]["attempts"] == 2).then_some(())
    })
    .await;
    // Retry-After: 40 beats the 30 s schedule.
    server.advance(Duration::from_secs(37));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(receiver.received().len(), 2, "Retry-After must be honoured");
    server.advance(Duration::from_secs(5));
    eventually(WAIT, "third attempt", || async {
        (receiver.received().len() == 3).then_some(())
    })
    .await;

    let received = receiver.received();
    let attempts: Vec<u32> = received
        .iter()
        .map(|r| r.callback.as_ref().expect("verified").attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let ids: Vec<&str> = received
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "same webhook-id on every retry"
    );

    let detail = eventually(WAIT, "delivered", || async {
        let d = incident_state(&api, &incident_id).await;
        (d["incident"]["reprocess"]["status"] == "delivered").then_some(d)
    })
    .await;
    let attempts: Vec<&Value> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "callback.attempt")
        .collect();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["detail"]["status"], 503);
    assert_eq!(attempts[0]["detail"]["outcome"], "retry_scheduled");
    assert!(attempts[0]["detail"]["next_attempt_at"].is_string());
    assert_eq!(attempts[1]["detail"]["status"], 500);
    assert_eq!(attempts[2]["detail"]["outcome"], "delivered");

    let reprocess_id = detail["incident"]["reprocess"]["id"].as_str().unwrap();
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "shopify", "event_id": "9f1c-77", "status": "success", "reprocess_id": reprocess_id}),
        )
        .await;
    assert_eq!(r.json["incident"]["state"], "resolved");

    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sendpromptly_callback_attempts_total{outcome=\"retry\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sendpromptly_callback_attempts_total{outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sendpromptly_incidents_opened_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sendpromptly_incidents_resolved_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sendpromptly_signals_received_total{type=\"result_failure\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn gone_stops_delivery_at_once_and_reopens() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    set_repair_url(&api, &receiver.url()).await;
    api.post(
        "/v1/result",
        json!({"provider": "custom", "event_id": "job-1", "status": "failure", "error": "boom"}),
    )
    .await;
    let id = api.get("/v1/events/custom/job-1").await.json["incident"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.script(&[(410, None)]);
    api.post(&format!("/v1/incidents/{id}/reprocess"), json!({}))
        .await;
    let detail = eventually(WAIT, "gave up", || async {
        let d = incident_state(&api, &id).await;
        (d["incident"]["reprocess"]["status"] == "gave_up").then_some(d)
    })
    .await;
    assert_eq!(detail["incident"]["state"], "open");
    assert!(kinds(&detail["timeline"]).contains(&"callback.gave_up".to_owned()));
    server.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.received().len(), 1, "410 Gone stops delivery");
}

#[tokio::test]
async fn duplicates_result_before_receipt_and_late_success() {
    let server = TestServer::start().await;
    let api = server.api();
    let body = json!({"provider": "stripe", "event_id": "evt_dup", "event_type": "checkout.session.completed", "deadline_seconds": 300});
    let first = api.post("/v1/receipt", body.clone()).await;
    assert_eq!(first.status, 201);
    server.advance(Duration::from_secs(10));
    let second = api.post("/v1/receipt", body).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.json["event"]["deliveries"], 2);
    assert_eq!(
        second.json["event"]["deadline_at"],
        first.json["event"]["deadline_at"]
    );

    // Result before receipt: kept; the receipt then completes the record.
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_early", "status": "success"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["event"]["state"], "succeeded");
    assert!(r.json["event"]["event_type"].is_null());
    let r = api
        .post("/v1/receipt", json!({"provider": "stripe", "event_id": "evt_early", "event_type": "invoice.paid", "subject": "cus_1"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["event"]["state"], "succeeded");
    assert_eq!(r.json["event"]["event_type"], "invoice.paid");
    assert!(r.json["incident"].is_null());

    // Late success after overdue resolves, and the history stays.
    api.post("/v1/receipt", json!({"provider": "stripe", "event_id": "evt_late", "event_type": "invoice.paid", "deadline_seconds": 5}))
        .await;
    server.advance(Duration::from_secs(6));
    let id = wait_incident(&api, "stripe", "evt_late").await;
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_late", "status": "success"}),
        )
        .await;
    assert_eq!(r.json["incident"]["state"], "resolved");
    assert_eq!(r.json["event"]["state"], "succeeded");
    let detail = incident_state(&api, &id).await;
    assert_eq!(
        kinds(&detail["timeline"]),
        [
            "receipt.recorded",
            "deadline.passed",
            "incident.opened",
            "result.success",
            "incident.resolved"
        ]
    );

    // Support look-up by subject, even without an incident.
    let r = api.get("/v1/events?subject=cus_1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["data"][0]["event_id"], "evt_early");
}

#[tokio::test]
async fn manual_resolve_and_failure_reopens() {
    let server = TestServer::start().await;
    let api = server.api();
    api.post("/v1/result", json!({"provider": "stripe", "event_id": "evt_m", "status": "failure", "error": "card declined in app"}))
        .await;
    let id = wait_incident(&api, "stripe", "evt_m").await;
    let r = api
        .post(&format!("/v1/incidents/{id}/resolve"), json!({}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["error"]["param"], "note");
    let r = api
        .post(
            &format!("/v1/incidents/{id}/resolve"),
            json!({"note": "credited by hand"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["incident"]["resolution"], "manual");
    let r = api
        .post(
            &format!("/v1/incidents/{id}/resolve"),
            json!({"note": "again"}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json["error"]["type"], "incident_resolved");
    let r = api
        .post(&format!("/v1/incidents/{id}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 409);

    let r = api
        .post("/v1/result", json!({"provider": "stripe", "event_id": "evt_m", "status": "failure", "error": "still broken"}))
        .await;
    assert_eq!(r.json["incident"]["id"], id.as_str(), "same incident row");
    assert_eq!(r.json["incident"]["state"], "open");
    assert_eq!(r.json["incident"]["reopen_count"], 1);

    // Reprocess without a repair URL is a clear conflict.
    let r = api
        .post(&format!("/v1/incidents/{id}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json["error"]["type"], "repair_url_missing");
}

#[tokio::test]
async fn idempotency_replays_and_rejects_reuse() {
    let server = TestServer::start().await;
    let api = server.api();
    let body = json!({"provider": "stripe", "event_id": "evt_idem", "event_type": "invoice.paid"});
    let key = [("Idempotency-Key", "key-123")];
    let first = api
        .send(Method::POST, "/v1/receipt", Some(&body), &key)
        .await;
    assert_eq!(first.status, 201);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let replay = api
        .send(Method::POST, "/v1/receipt", Some(&body), &key)
        .await;
    assert_eq!(replay.status, 201, "the first response is replayed");
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.json, first.json);
    let event = api.get("/v1/events/stripe/evt_idem").await;
    assert_eq!(
        event.json["event"]["deliveries"], 1,
        "a replay does not count a delivery"
    );

    let other =
        json!({"provider": "stripe", "event_id": "evt_other", "event_type": "invoice.paid"});
    let reused = api
        .send(Method::POST, "/v1/receipt", Some(&other), &key)
        .await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.json["error"]["type"], "idempotency_key_reused");

    // 4xx responses are stored and replayed too.
    let bad = json!({"provider": "stripe", "event_id": "", "event_type": "x"});
    let k2 = [("Idempotency-Key", "key-bad")];
    let a = api.send(Method::POST, "/v1/receipt", Some(&bad), &k2).await;
    let b = api.send(Method::POST, "/v1/receipt", Some(&bad), &k2).await;
    assert_eq!((a.status, b.status), (422, 422));
    assert_eq!(b.headers["idempotent-replayed"], "true");

    let long = "k".repeat(256);
    let r = api
        .send(
            Method::POST,
            "/v1/receipt",
            Some(&body),
            &[("Idempotency-Key", &long)],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["error"]["param"], "Idempotency-Key");
}

#[tokio::test]
async fn auth_and_cross_project_isolation() {
    let server = TestServer::start().await;
    let api = server.api();
    api.post(
        "/v1/result",
        json!({"provider": "stripe", "event_id": "evt_iso", "status": "failure"}),
    )
    .await;
    let id = wait_incident(&api, "stripe", "evt_iso").await;

    let anonymous = reqwest::Client::new()
        .get(format!("{}/v1/incidents", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["type"], "missing_api_key");
    let wrong = api.with_key("sp_live_nope").get("/v1/incidents").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json["error"]["type"], "invalid_api_key");

    let other = provision::create_project(server.store(), "other", None, server.clock_now())
        .await
        .expect("second project");
    let them = api.with_key(&other.api_key);
    for path in [
        format!("/v1/incidents/{id}"),
        "/v1/events/stripe/evt_iso".to_owned(),
        format!("/v1/incidents/{id}/proof-links"),
    ] {
        let r = them.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert!(!r.text.contains("evt_iso"), "{path} leaks");
    }
    for path in [
        format!("/v1/incidents/{id}/reprocess"),
        format!("/v1/incidents/{id}/proof-links"),
    ] {
        let r = them.post(&path, json!({})).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
    }
    let r = them
        .post(&format!("/v1/incidents/{id}/resolve"), json!({"note": "x"}))
        .await;
    assert_eq!(r.status, 404);
    let list = them.get("/v1/incidents").await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 0);
    let link = api
        .post(&format!("/v1/incidents/{id}/proof-links"), json!({}))
        .await;
    let link_id = link.json["id"].as_str().unwrap();
    let r = them
        .send(
            Method::DELETE,
            &format!("/v1/proof-links/{link_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 404);

    // A revoked key is rejected at once (a new project has two keys, its
    // admin and its ingest key: both are revoked).
    let keys = server
        .store()
        .list_api_keys(&other.project_id)
        .await
        .unwrap();
    for key in &keys {
        server
            .store()
            .revoke_api_key(&other.project_id, &key.id, server.clock_now())
            .await
            .unwrap();
    }
    let r = them.get("/v1/incidents").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn proof_links_show_expire_and_revoke() {
    let server = TestServer::start().await;
    let api = server.api();
    api.post(
        "/v1/receipt",
        json!({"provider": "stripe", "event_id": "evt_proof", "event_type": "invoice.paid", "subject": "cus_proof",
               "deadline_seconds": 1, "metadata": {"secret_note": "do-not-show-42"}}),
    )
    .await;
    server.advance(Duration::from_secs(2));
    let id = wait_incident(&api, "stripe", "evt_proof").await;

    let r = api
        .post(
            &format!("/v1/incidents/{id}/proof-links"),
            json!({"expires_in_seconds": 10}),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = api
        .post(
            &format!("/v1/incidents/{id}/proof-links"),
            json!({"expires_in_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let url = r.json["url"].as_str().unwrap().to_owned();
    let link_id = r.json["id"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/proof/", server.url())));
    let token = url.rsplit('/').next().unwrap();
    assert!(token.len() >= 22, "at least 128 random bits");

    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("invoice.paid") && html.contains("cus_proof"));
    assert!(html.contains("Deadline passed"));
    assert!(
        !html.contains("do-not-show-42"),
        "metadata hidden unless opted in"
    );
    assert!(!html.contains(&server.project.api_key) && !html.contains("api_key:"));

    // Opting in shows metadata.
    api.send(
        Method::PATCH,
        "/v1/project",
        Some(&json!({"proof_show_metadata": true})),
        &[],
    )
    .await;
    let html = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(html.contains("do-not-show-42"));

    // Expiry.
    server.advance(Duration::from_secs(3601));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);

    // Revocation.
    let r = api
        .post(&format!("/v1/incidents/{id}/proof-links"), json!({}))
        .await;
    let url2 = r.json["url"].as_str().unwrap().to_owned();
    assert_eq!(reqwest::get(&url2).await.unwrap().status(), 200);
    let id2 = r.json["id"].as_str().unwrap();
    let r = api
        .send(Method::DELETE, &format!("/v1/proof-links/{id2}"), None, &[])
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(reqwest::get(&url2).await.unwrap().status(), 404);
    let r = api
        .send(Method::DELETE, "/v1/proof-links/prf_unknown", None, &[])
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        reqwest::get(format!("{}/proof/not-a-token", server.url()))
            .await
            .unwrap()
            .status(),
        404
    );

    let detail = incident_state(&api, &id).await;
    let k = kinds(&detail["timeline"]);
    assert_eq!(k.iter().filter(|k| *k == "proof_link.created").count(), 2);
    assert_eq!(k.iter().filter(|k| *k == "proof_link.revoked").count(), 1);
    let links = api.get(&format!("/v1/incidents/{id}/proof-links")).await;
    assert_eq!(links.json.as_array().unwrap().len(), 2);
    assert!(!links.text.contains(token), "tokens are never listed");
    let _ = link_id;
}

#[tokio::test]
async fn restart_keeps_pending_deadlines_and_deliveries() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    set_repair_url(&api, &receiver.url()).await;
    api.post("/v1/receipt", json!({"provider": "stripe", "event_id": "evt_r1", "event_type": "invoice.paid", "deadline_seconds": 30}))
        .await;
    api.post(
        "/v1/result",
        json!({"provider": "stripe", "event_id": "evt_r2", "status": "failure", "error": "x"}),
    )
    .await;
    let id2 = wait_incident(&api, "stripe", "evt_r2").await;
    receiver.script(&[(503, None)]);
    api.post(&format!("/v1/incidents/{id2}/reprocess"), json!({}))
        .await;
    eventually(WAIT, "first attempt", || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    eventually(WAIT, "attempt recorded", || async {
        let d = incident_state(&api, &id2).await;
        (d["incident"]["reprocess"]["attempts"] == 1).then_some(())
    })
    .await;

    let server = server.restart().await;
    let api = server.api();
    server.advance(Duration::from_secs(31));
    let id1 = wait_incident(&api, "stripe", "evt_r1").await;
    assert!(id1.starts_with("inc_"));
    eventually(WAIT, "retry after restart", || async {
        (receiver.received().len() == 2).then_some(())
    })
    .await;
    let detail = eventually(WAIT, "delivered after restart", || async {
        let d = incident_state(&api, &id2).await;
        (d["incident"]["reprocess"]["status"] == "delivered").then_some(d)
    })
    .await;
    assert_eq!(detail["incident"]["reprocess"]["attempts"], 2);
    assert_eq!(receiver.received()[1].callback.as_ref().unwrap().attempt, 2);
}

#[tokio::test]
async fn bad_input_gets_clear_errors_never_5xx() {
    let server = TestServer::start().await;
    let api = server.api();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/receipt", server.url());
    let auth = format!("Bearer {}", server.project.api_key);
    let send = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut r = http.post(&url).header("authorization", &auth).body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    let r = send(b"{}".to_vec(), None).await.unwrap();
    assert_eq!(r.status(), 415);
    let r = send(b"{not json".to_vec(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_json");
    let r = send(vec![0xff, 0xfe, b'{'], Some("application/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(b"[1,2]".to_vec(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let r = send(deep.into_bytes(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big = format!(
        "{{\"provider\":\"stripe\",\"event_id\":\"e\",\"event_type\":\"t\",\"x\":\"{}\"}}",
        "a".repeat(70_000)
    );
    let r = send(big.into_bytes(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    for (body, param) in [
        (json!({"event_id": "e", "event_type": "t"}), "provider"),
        (
            json!({"provider": "paypal", "event_id": "e", "event_type": "t"}),
            "provider",
        ),
        (json!({"provider": "stripe", "event_type": "t"}), "event_id"),
        (
            json!({"provider": "stripe", "event_id": "e", "event_type": "t", "deadline_seconds": 0}),
            "deadline_seconds",
        ),
        (
            json!({"provider": "stripe", "event_id": "e", "event_type": "t", "deadline_seconds": 604801}),
            "deadline_seconds",
        ),
        (
            json!({"provider": "stripe", "event_id": "e", "event_type": "t", "deadline_seconds": -5}),
            "deadline_seconds",
        ),
        (
            json!({"provider": "stripe", "event_id": "e", "event_type": "t", "metadata": [1]}),
            "metadata",
        ),
        (
            json!({"provider": "stripe", "event_id": "e", "event_type": "t", "surprise": 1}),
            "surprise",
        ),
        (
            json!({"provider": "stripe", "event_id": "e", "event_type": "t", "occurred_at": "yesterday"}),
            "occurred_at",
        ),
    ] {
        let r = api.post("/v1/receipt", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.json["error"]["type"], "validation_error");
        assert_eq!(r.json["error"]["param"], param, "{body}: {}", r.text);
        assert!(!r.json["error"]["message"].as_str().unwrap().is_empty());
    }
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "e", "status": "maybe"}),
        )
        .await;
    assert_eq!(r.json["error"]["param"], "status");

    for path in [
        "/v1/incidents?state=bogus",
        "/v1/incidents?limit=0",
        "/v1/incidents?limit=abc",
        "/v1/incidents?cursor=zzz",
        "/v1/events?state=nope",
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, 422, "{path}: {}", r.text);
    }
    let r = api.get("/v1/nothing-here").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json["error"]["type"], "not_found");
    let r = api.get("/v1/incidents/inc_doesnotexist").await;
    assert_eq!(r.status, 404);
    let r = api.get("/v1/events/paypal/x").await;
    assert_eq!(r.status, 404);
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": "ftp://x"})),
            &[],
        )
        .await;
    assert_eq!(r.json["error"]["param"], "repair_url");
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"alert_channels": [{"type": "pager"}]})),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["error"]["param"], "alert_channels[0].type");
    assert!(r.headers.contains_key("request-id"));
}

#[tokio::test]
async fn incidents_filter_and_paginate() {
    let server = TestServer::start().await;
    let api = server.api();
    for i in 0..25 {
        let (provider, event_type) = if i % 5 == 0 {
            ("shopify", "orders/paid")
        } else {
            ("stripe", "invoice.paid")
        };
        api.post(
            "/v1/result",
            json!({"provider": provider, "event_id": format!("evt_{i:02}"), "status": "failure", "error": "x"}),
        )
        .await;
        api.post(
            "/v1/receipt",
            json!({"provider": provider, "event_id": format!("evt_{i:02}"), "event_type": event_type, "subject": format!("cus_{}", i % 3)}),
        )
        .await;
        server.advance(Duration::from_millis(5));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/incidents?limit=10&cursor={c}"),
            None => "/v1/incidents?limit=10".to_owned(),
        };
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.json["data"].as_array().unwrap() {
            seen.push(item["event"]["event_id"].as_str().unwrap().to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("evt_{i:02}")).collect();
    assert_eq!(seen, expected, "newest first, no gaps or duplicates");

    let shopify = api.get("/v1/incidents?provider=shopify&limit=100").await;
    assert_eq!(shopify.json["data"].as_array().unwrap().len(), 5);
    let typed = api
        .get("/v1/incidents?event_type=orders/paid&state=open&kind=failed_result")
        .await;
    assert_eq!(typed.json["data"].as_array().unwrap().len(), 5);
    let subject = api.get("/v1/incidents?subject=cus_0&limit=100").await;
    assert_eq!(subject.json["data"].as_array().unwrap().len(), 9);
    let resolved = api.get("/v1/incidents?state=resolved").await;
    assert_eq!(resolved.json["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn signing_secret_rotation_signs_with_both_for_a_day() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    set_repair_url(&api, &receiver.url()).await;
    let r = api
        .post("/v1/project/signing-secrets/rotate", json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_secret = r.json["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_"));
    let settings = api.get("/v1/project").await;
    assert_eq!(
        settings.json["signing_secrets"].as_array().unwrap().len(),
        2
    );
    assert!(
        !settings.text.contains("whsec_"),
        "secret values are never shown again"
    );

    // During the overlap, a receiver with only the NEW secret verifies.
    receiver.set_secrets(&[&new_secret]);
    api.post(
        "/v1/result",
        json!({"provider": "stripe", "event_id": "evt_rot", "status": "failure"}),
    )
    .await;
    let id = wait_incident(&api, "stripe", "evt_rot").await;
    api.post(&format!("/v1/incidents/{id}/reprocess"), json!({}))
        .await;
    let got = eventually(WAIT, "callback", || async {
        receiver.received().first().cloned()
    })
    .await;
    assert!(got.callback.is_some(), "{:?}", got.error);
    let signatures = got.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(
        signatures.split(' ').count(),
        2,
        "one signature per valid secret"
    );

    server.advance(Duration::from_secs(24 * 3600 + 1));
    let settings = api.get("/v1/project").await;
    assert_eq!(
        settings.json["signing_secrets"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn ops_endpoints() {
    let server = TestServer::start().await;
    let health: Value = reqwest::get(format!("{}/healthz", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let doc: Value = reqwest::get(format!("{}/openapi.json", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/receipt"]["post"].is_object());
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("# TYPE sendpromptly_sweeper_lag_seconds gauge"));
}

#[tokio::test]
async fn outbound_urls_are_guarded() {
    // Tests run with private URLs allowed; metadata addresses are refused anyway.
    let lax = TestServer::start().await;
    let r = lax
        .api()
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": "http://169.254.169.254/latest"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["error"]["param"], "repair_url");

    // A server that does not allow private networks refuses them at save time…
    let strict = TestServer::start_with(sendpromptly_server::config::ServerConfig {
        outbound: sendpromptly_server::outbound::OutboundPolicy {
            allow_private: false,
        },
        ..sendpromptly_server::testing::test_config()
    })
    .await;
    let api = strict.api();
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": "http://127.0.0.1:9/repair"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-private-urls"),
        "{}",
        r.text
    );

    // …and at send time, for a name that resolves to a private address.
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": "http://localtest.invalid:9/repair"})),
            &[],
        )
        .await;
    assert_eq!(
        r.status, 200,
        "a name is checked when it is resolved: {}",
        r.text
    );
    strict
        .store()
        .update_project(
            &strict.project.project_id,
            sendpromptly_server::store::ProjectPatch {
                repair_url: Some(Some("http://localhost:9/repair".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    api.post(
        "/v1/result",
        json!({"provider": "stripe", "event_id": "evt_ssrf", "status": "failure"}),
    )
    .await;
    let id = wait_incident(&api, "stripe", "evt_ssrf").await;
    api.post(&format!("/v1/incidents/{id}/reprocess"), json!({}))
        .await;
    let detail = eventually(WAIT, "the refused attempt is recorded", || async {
        let d = incident_state(&api, &id).await;
        (d["incident"]["reprocess"]["attempts"] == 1).then_some(d)
    })
    .await;
    let attempt = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "callback.attempt")
        .expect("attempt entry");
    assert!(attempt["detail"]["status"].is_null());
    assert!(
        attempt["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{attempt}"
    );
}

#[tokio::test]
async fn a_failure_after_success_is_shown_as_ignored_and_the_event_still_reads_success() {
    let server = TestServer::start().await;
    let api = server.api();
    let r = api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_late_fail", "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_late_fail", "status": "success"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_late_fail", "status": "failure",
                   "error": "late duplicate handler"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let r = api.get("/v1/events/stripe/evt_late_fail").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["event"]["state"], "succeeded", "{}", r.text);
    assert_eq!(
        r.json["event"]["last_result"]["status"], "success",
        "{}",
        r.text
    );
    assert!(r.json["incident"].is_null(), "{}", r.text);
    let late = r.json["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["kind"] == "result.failure")
        .cloned()
        .expect("the late failure is on the timeline");
    assert_eq!(late["detail"]["error"], "late duplicate handler");
    assert!(late["detail"]["ignored"].is_string(), "{late}");
}
