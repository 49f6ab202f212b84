//! Races over real HTTP on one server: the same receipt and result from many
//! tasks at once, one `Idempotency-Key` raced, reprocess clicked twice at
//! once. Each ends with exactly one record, one incident and one delivery
//! sequence.

use std::time::Duration;

use reqwest::Method;
use sendpromptly_server::testing::{ApiClient, CallbackReceiver, TestServer, eventually};
use serde_json::{Value, json};

const TASKS: usize = 16;
const WAIT: Duration = Duration::from_secs(10);

/// Sends the same request from `TASKS` tasks at once (each with its own
/// connection), returning every response.
async fn race(
    server: &TestServer,
    path: &str,
    body: Value,
    idempotency_key: Option<&str>,
) -> Vec<(u16, bool, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            // A fresh client per task: separate connections, truly concurrent.
            let api = ApiClient::new(&server.url(), &server.project.api_key);
            let (path, body) = (path.to_owned(), body.clone());
            let key = idempotency_key.map(str::to_owned);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let headers: Vec<(&str, &str)> = key
                    .as_deref()
                    .map(|k| vec![("Idempotency-Key", k)])
                    .unwrap_or_default();
                barrier.wait().await;
                let r = api.send(Method::POST, &path, Some(&body), &headers).await;
                let replayed = r.headers.contains_key("idempotent-replayed");
                (r.status, replayed, r.json)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

fn kinds(detail: &Value) -> Vec<String> {
    detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_receipt_and_result_from_many_tasks_make_one_record_and_one_incident() {
    let server = TestServer::start().await;
    let api = server.api();

    let receipt = json!({"provider": "stripe", "event_id": "evt_race", "event_type": "invoice.paid",
                         "subject": "cus_race", "deadline_seconds": 600});
    let replies = race(&server, "/v1/receipt", receipt, None).await;
    let created = replies.iter().filter(|(s, _, _)| *s == 201).count();
    let known = replies.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!((created, known), (1, TASKS - 1), "{replies:?}");
    let event = api.get("/v1/events/stripe/evt_race").await;
    assert_eq!(event.json["event"]["deliveries"], TASKS);
    let timeline = kinds(&event.json);
    assert_eq!(count(&timeline, "receipt.recorded"), 1, "{timeline:?}");

    let failure = json!({"provider": "stripe", "event_id": "evt_race", "status": "failure",
                         "error": "tenant not found"});
    let replies = race(&server, "/v1/result", failure, None).await;
    assert!(replies.iter().all(|(s, _, _)| *s == 200), "{replies:?}");
    let incident_ids: std::collections::BTreeSet<&str> = replies
        .iter()
        .map(|(_, _, j)| j["incident"]["id"].as_str().expect("an incident"))
        .collect();
    assert_eq!(incident_ids.len(), 1, "every reply names the same incident");
    let event = api.get("/v1/events/stripe/evt_race").await;
    let timeline = kinds(&event.json);
    assert_eq!(count(&timeline, "incident.opened"), 1, "{timeline:?}");
    let list = api.get("/v1/incidents?subject=cus_race").await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1);

    // A result before its receipt, raced: one record, then one incident when
    // the receipt's deadline passes.
    let early = json!({"provider": "stripe", "event_id": "evt_race_early", "status": "failure"});
    let replies = race(&server, "/v1/result", early, None).await;
    assert!(replies.iter().all(|(s, _, _)| *s == 200), "{replies:?}");
    let event = api.get("/v1/events/stripe/evt_race_early").await;
    assert_eq!(count(&kinds(&event.json), "incident.opened"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_raced_runs_once() {
    let server = TestServer::start().await;
    let api = server.api();
    let receipt = json!({"provider": "stripe", "event_id": "evt_idem_race",
                         "event_type": "invoice.paid", "deadline_seconds": 600});
    let replies = race(&server, "/v1/receipt", receipt, Some("the-same-key")).await;
    let first = replies.iter().filter(|(s, r, _)| *s == 201 && !r).count();
    let replayed = replies.iter().filter(|(s, r, _)| *s == 201 && *r).count();
    let in_flight = replies
        .iter()
        .filter(|(s, _, j)| *s == 409 && j["error"]["type"] == "idempotency_key_in_flight")
        .count();
    assert_eq!(first, 1, "{replies:?}");
    assert_eq!(replayed + in_flight, TASKS - 1, "{replies:?}");
    let event = api.get("/v1/events/stripe/evt_idem_race").await;
    assert_eq!(event.json["event"]["deliveries"], 1, "the receipt ran once");

    // Raced again once it completed: all replays of the first response.
    let receipt = json!({"provider": "stripe", "event_id": "evt_idem_race",
                         "event_type": "invoice.paid", "deadline_seconds": 600});
    let replies = race(&server, "/v1/receipt", receipt, Some("the-same-key")).await;
    assert!(
        replies.iter().all(|(s, r, _)| *s == 201 && *r),
        "{replies:?}"
    );
    let event = api.get("/v1/events/stripe/evt_idem_race").await;
    assert_eq!(event.json["event"]["deliveries"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reprocess_clicked_twice_at_once_sends_one_callback_sequence() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver =
        CallbackReceiver::start(&server.project.signing_secret, server.clock.clone()).await;
    let r = api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": receiver.url()})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_twice", "status": "failure"}),
        )
        .await;
    let incident = r.json["incident"]["id"].as_str().unwrap().to_owned();
    // The endpoint fails the first attempt: a sequence of two attempts.
    receiver.script(&[(503, Some("1"))]);

    let path = format!("/v1/incidents/{incident}/reprocess");
    let replies = race(&server, &path, json!({"note": "double click"}), None).await;
    let accepted: Vec<&Value> = replies
        .iter()
        .filter(|(s, _, _)| *s == 202)
        .map(|(_, _, j)| j)
        .collect();
    let refused = replies.iter().filter(|(s, _, _)| *s == 409).count();
    assert_eq!(accepted.len(), 1, "{replies:?}");
    assert_eq!(refused, TASKS - 1, "{replies:?}");
    let reprocess_id = accepted[0]["reprocess_id"].as_str().unwrap().to_owned();

    // Both attempts arrive, for the one reprocess, numbered 1 and 2.
    eventually(WAIT, "two attempts", || {
        server.advance(Duration::from_secs(2));
        let received = receiver.received().len();
        async move { (received >= 2).then_some(()) }
    })
    .await;
    // And nothing more, however long we wait.
    server.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = receiver.received();
    let attempts: Vec<(String, u32)> = got
        .iter()
        .map(|c| {
            let c = c.callback.as_ref().expect("verified");
            (c.reprocess_id.clone(), c.attempt)
        })
        .collect();
    assert_eq!(
        attempts,
        [(reprocess_id.clone(), 1), (reprocess_id.clone(), 2)]
    );
    let detail = api.get(&format!("/v1/incidents/{incident}")).await;
    let timeline = kinds(&detail.json);
    assert_eq!(count(&timeline, "reprocess.requested"), 1, "{timeline:?}");
    assert_eq!(count(&timeline, "callback.attempt"), 2, "{timeline:?}");
}
