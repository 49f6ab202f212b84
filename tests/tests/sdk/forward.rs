//! Forward compatibility: this SDK reads a newer server's timeline, whose
//! entries may have kinds this version does not know.

use std::net::SocketAddr;

use axum::Json;
use sendpromptly_client::{Provider, RetryConfig};
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
