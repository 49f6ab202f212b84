//! Forward compatibility: this SDK reads a newer server's timeline, whose
//! entries may have kinds this version does not know.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use sendpromptly_client::{Provider, RetryConfig, TimelineKind};
use sendpromptly_server::testing::TestServer;
use serde_json::{Value, json};

use crate::{client, direct};

/// Serves `body` as the answer to every GET, standing in for a newer server.
async fn newer_server(body: Value) -> SocketAddr {
    let app = axum::Router::new().fallback(axum::routing::get(move || {
        let body = body.clone();
        async move { Json(body) }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test]
async fn an_older_client_reads_a_timeline_with_kinds_it_does_not_know() {
    // A real event from this server, as JSON…
    let server = TestServer::start().await;
    let sp = direct(&server);
    let r = server
        .api()
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_future", "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut body = server.api().get("/v1/events/stripe/evt_future").await.json;
    // …as a newer server would send it: with an entry of a new kind.
    body["timeline"]
        .as_array_mut()
        .expect("timeline")
        .push(json!({
            "at": "2026-11-22T10:00:05.000Z",
            "kind": "payout.reconciled",
            "actor": "system:reconciler",
            "detail": {"payout": "po_1"}
        }));
    let addr = newer_server(body.clone()).await;
    let older = client(
        &format!("http://{addr}"),
        "sp_live_any",
        RetryConfig::default(),
    );

    let detail = older
        .get_event(Provider::Stripe, "evt_future")
        .await
        .expect("the client reads a timeline with an unknown kind");
    assert_eq!(detail.timeline.len(), 2);
    assert_eq!(detail.timeline[0].kind.as_str(), "receipt.recorded");
    let new = &detail.timeline[1];
    assert_eq!(new.kind.as_str(), "payout.reconciled");
    assert_eq!(new.detail["payout"], "po_1");
    // Written back, it is the same string (what the Python and Node
    // packages hand to their callers).
    assert_eq!(
        serde_json::to_value(&detail.timeline).expect("serialize"),
        body["timeline"]
    );
    // This server's own timeline reads as before.
    let own = sp
        .get_event(Provider::Stripe, "evt_future")
        .await
        .expect("event");
    assert_eq!(own.timeline.len(), 1);
}

/// `answer` (an event or incident detail) with values only a newer server
/// would send: an event state, provider, incident kind, state, resolution
/// and reprocess status this version does not know, and a timeline entry
/// of a new kind by a new sort of actor.
fn as_newer_server(mut answer: Value) -> Value {
    answer["event"]["state"] = json!("archived");
    answer["event"]["provider"] = json!("paddle");
    let incident = &mut answer["incident"];
    incident["kind"] = json!("chargeback_lost");
    incident["state"] = json!("escalated");
    incident["resolution"] = json!("auto_closed");
    incident["event"]["provider"] = json!("paddle");
    incident["reprocess"]["status"] = json!("queued_for_review");
    answer["timeline"]
        .as_array_mut()
        .expect("timeline")
        .push(json!({
            "at": "2026-11-22T10:00:05.000Z",
            "kind": "payout.reconciled",
            "actor": "batch:bat_1",
            "detail": {"payout": "po_1"}
        }));
    answer
}

#[tokio::test]
async fn an_older_client_reads_states_kinds_and_actors_it_does_not_know() {
    use sendpromptly_client::{EventState, IncidentKind, IncidentState, WireEnum};
    use sendpromptly_server::testing::{HookReceiver, eventually};

    // A real incident with a delivered reprocess, from this server…
    let server = TestServer::start().await;
    let api = server.api();
    let repair = HookReceiver::start().await;
    let r = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": repair.url("/repair")})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let receipt =
        json!({"provider": "stripe", "event_id": "evt_newer", "event_type": "invoice.paid"});
    assert_eq!(api.post("/v1/receipt", receipt).await.status, 201);
    let failure = json!({"provider": "stripe", "event_id": "evt_newer", "status": "failure", "error": "boom"});
    let r = api.post("/v1/result", failure).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let incident_id = r.json["incident"]["id"]
        .as_str()
        .expect("incident")
        .to_owned();
    let r = api
        .post(&format!("/v1/incidents/{incident_id}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let incident_path = format!("/v1/incidents/{incident_id}");
    eventually(
        Duration::from_secs(20),
        "the callback delivered",
        || async {
            let incident = server.api().get(&incident_path).await.json;
            (incident["incident"]["reprocess"]["status"] == "delivered").then_some(())
        },
    )
    .await;

    // …as a newer server would send it.
    let event = as_newer_server(server.api().get("/v1/events/stripe/evt_newer").await.json);
    let incident = as_newer_server(server.api().get(&incident_path).await.json);
    let event_path = "/v1/events/stripe/evt_newer".to_owned();
    let app = axum::Router::new()
        .route(
            &event_path,
            axum::routing::get(move || async move { Json(event) }),
        )
        .route(
            &incident_path,
            axum::routing::get(move || async move { Json(incident) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let older = client(
        &format!("http://{addr}"),
        "sp_live_any",
        RetryConfig::default(),
    );

    let by_event = older
        .get_event(Provider::Stripe, "evt_newer")
        .await
        .expect("the client reads an event with values it does not know");
    let by_incident = older
        .get_incident(&incident_id)
        .await
        .expect("the client reads an incident with values it does not know");
    for (event, incident, timeline) in [
        (
            &by_event.event,
            by_event.incident.as_ref().expect("incident"),
            &by_event.timeline,
        ),
        (
            &by_incident.event,
            &by_incident.incident,
            &by_incident.timeline,
        ),
    ] {
        assert_eq!(
            event.state,
            WireEnum::<EventState>::Other("archived".into())
        );
        assert_eq!(event.state.as_str(), "archived");
        assert_eq!(event.state.known(), None);
        assert_eq!(event.provider.as_str(), "paddle");
        assert_eq!(
            incident.kind,
            WireEnum::<IncidentKind>::Other("chargeback_lost".into())
        );
        assert_eq!(incident.state.to_string(), "escalated");
        assert_ne!(incident.state, IncidentState::Open);
        assert_eq!(
            incident.resolution.as_ref().map(WireEnum::as_str),
            Some("auto_closed")
        );
        assert_eq!(incident.event.provider.as_str(), "paddle");
        let reprocess = incident.reprocess.as_ref().expect("reprocess");
        assert_eq!(reprocess.status.as_str(), "queued_for_review");
        assert!(reprocess.requested_by.to_string().starts_with("api_key:"));
        let newest = timeline.last().expect("entries");
        assert_eq!(newest.kind.as_str(), "payout.reconciled");
        assert_eq!(newest.actor.to_string(), "batch:bat_1");
        assert_eq!(timeline[0].kind, TimelineKind::ReceiptRecorded);
    }
    // Written back, every value is what the newer server sent.
    assert_eq!(
        serde_json::to_value(&by_incident).expect("serialize")["incident"],
        as_newer_server(
            server
                .api()
                .get(&format!("/v1/incidents/{incident_id}"))
                .await
                .json
        )["incident"]
    );
}
