//! Receipts and results filled from verified Stripe events and Shopify
//! deliveries.

use sendpromptly_client::{EventState, Provider, shopify, stripe};
use sendpromptly_server::testing::TestServer;

use crate::direct;

#[tokio::test]
async fn a_verified_stripe_event_fills_the_receipt() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    let secret = "whsec_test_endpoint_secret";
    let now = sendpromptly_client::now();
    let payload = serde_json::json!({
        "id": "evt_stripe_helper",
        "object": "event",
        "type": "invoice.paid",
        "created": now.unix_seconds() - 5,
        "livemode": false,
        "data": {"object": {
            "id": "in_123", "object": "invoice", "customer": "cus_helper",
            "amount_paid": 4200, "currency": "usd", "status": "paid",
            "subscription": "sub_9"
        }}
    })
    .to_string();
    let header = stripe::generate_test_header(payload.as_bytes(), secret, now.unix_seconds());
    let event =
        stripe::construct_event(payload.as_bytes(), &header, secret, now).expect("verified");

    let recorded = sp
        .receipt_for(&event)
        .effect("credits.add")
        .await
        .expect("receipt");
    assert!(recorded.created());
    let view = &recorded.event;
    assert_eq!(view.provider, Provider::Stripe);
    assert_eq!(view.event_id, "evt_stripe_helper");
    assert_eq!(view.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(view.subject.as_deref(), Some("cus_helper"));
    assert_eq!(
        view.occurred_at.map(|t| t.unix_seconds()),
        Some(now.unix_seconds() - 5)
    );
    assert_eq!(view.metadata.as_ref().unwrap()["object_id"], "in_123");

    let done = sp.success_for(&event).await.expect("success");
    assert_eq!(done.event.state, EventState::Succeeded);
}

#[tokio::test]
async fn a_verified_shopify_delivery_fills_the_receipt() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    let secret = "shopify_app_secret";
    let body = serde_json::json!({
        "id": 820982911946154508_u64, "email": "jon@example.com",
        "total_price": "12.50", "currency": "USD", "financial_status": "paid",
        "customer": {"id": 115310627314723954_u64},
        "created_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:00Z"
    })
    .to_string();
    let hmac = shopify::compute_hmac(body.as_bytes(), secret);
    let headers = vec![
        ("X-Shopify-Hmac-Sha256", hmac.as_str()),
        ("X-Shopify-Topic", "orders/paid"),
        ("X-Shopify-Shop-Domain", "example.myshopify.com"),
        (
            "X-Shopify-Webhook-Id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ),
        ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
        ("X-Shopify-API-Version", "2025-07"),
        ("X-Shopify-Triggered-At", "2026-11-22T10:00:01Z"),
    ];
    let delivery = shopify::verify(body.as_bytes(), &headers, &[secret]).expect("verified");

    let recorded = sp.receipt_for(&delivery).await.expect("receipt");
    assert_eq!(recorded.event.provider, Provider::Shopify);
    assert_eq!(
        recorded.event.event_id,
        "98880550-7158-44d4-b7cd-2c97c8a091b5"
    );
    assert_eq!(recorded.event.event_type.as_deref(), Some("orders/paid"));
    assert!(recorded.event.subject.is_some(), "{:?}", recorded.event);

    let failed = sp
        .failure_for(&delivery, "inventory service down")
        .await
        .expect("failure");
    assert_eq!(failed.event.state, EventState::Failed);
    assert!(failed.incident.is_some());
}
