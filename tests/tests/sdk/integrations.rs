//! The axum integrations (`sendpromptly_client::axum`, `TrackExt::track`) in
//! a real axum app on loopback, sending to a real server: a Stripe event
//! signed as the official `stripe` library signs it (with
//! `SENDPROMPTLY_PYTHON` pointing at a Python with `stripe`; otherwise the
//! core's signer, which the interop tests hold to the same bytes) goes
//! through the extractor, the tracked future succeeds or fails, and the
//! server shows the event state and incident. With the server down, the app
//! answers what it would have.

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use sendpromptly_client::axum::{
    RepairRequest, ShopifyWebhook, StripeWebhook, Webhooks, stripe_middleware,
};
use sendpromptly_client::{
    BackgroundConfig, Client, EventState, IncidentKind, IncidentState, ProjectUpdate, Provider,
    Reporter, Resolution, RetryConfig, RetryOn, TrackExt, shopify, stripe,
};
use sendpromptly_server::testing::{TestServer, eventually};

use crate::{client, direct};

const STRIPE_SECRET: &str = "whsec_integration_endpoint_secret";

#[derive(Clone)]
struct App {
    webhooks: Webhooks,
}

impl FromRef<App> for Webhooks {
    fn from_ref(app: &App) -> Webhooks {
        app.webhooks.clone()
    }
}

/// The app's effect: fails for an event without a customer.
async fn add_credits(event_id: &str, customer: Option<&str>) -> Result<u64, String> {
    match customer {
        Some(_) => Ok(500),
        None => Err(format!("event {event_id} has no customer")),
    }
}

/// Answers what the effect did, so a test can compare with and without
/// SendPromptly.
async fn webhook(
    State(app): State<App>,
    StripeWebhook(event): StripeWebhook,
) -> (StatusCode, String) {
    let customer = event.object.get("customer").and_then(|v| v.as_str());
    match add_credits(&event.id, customer)
        .track(app.webhooks.reporter(), &event)
        .await
    {
        Ok(credits) => (StatusCode::OK, format!("added {credits}")),
        Err(reason) => (StatusCode::OK, format!("failed: {reason}")),
    }
}

async fn shopify_webhook(
    State(app): State<App>,
    ShopifyWebhook(delivery): ShopifyWebhook,
) -> StatusCode {
    let paid = delivery
        .body
        .get("financial_status")
        .and_then(|v| v.as_str())
        == Some("paid");
    let outcome = async { if paid { Ok(()) } else { Err("order not paid") } }
        .track(app.webhooks.reporter(), &delivery)
        .await;
    match outcome {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::ACCEPTED,
    }
}

async fn repair(State(app): State<App>, request: RepairRequest) -> StatusCode {
    let event = &request.callback.event;
    let outcome = add_credits(&event.event_id, Some("cus_restored")).await;
    request.finish(&app.webhooks, &outcome).await
}

/// Serves the app on a loopback port; returns its base URL.
async fn serve(webhooks: Webhooks) -> String {
    let router = Router::new()
        .route("/webhooks/stripe", post(webhook))
        .route("/webhooks/shopify", post(shopify_webhook))
        .route("/repair", post(repair))
        .with_state(App { webhooks });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// The `Stripe-Signature` header for `payload`, from the official library
/// when `SENDPROMPTLY_PYTHON` is set.
fn stripe_signature(payload: &str, timestamp: i64) -> String {
    let Some(python) = std::env::var_os("SENDPROMPTLY_PYTHON").filter(|p| !p.is_empty()) else {
        assert!(
            !std::env::var("SENDPROMPTLY_REQUIRE_INTEROP").is_ok_and(|v| v == "1"),
            "SENDPROMPTLY_REQUIRE_INTEROP=1 but SENDPROMPTLY_PYTHON is not set: point it at a Python with `stripe` installed"
        );
        return stripe::generate_test_header(payload.as_bytes(), STRIPE_SECRET, timestamp);
    };
    let output = Command::new(&python)
        .args([
            "-c",
            "import sys, stripe; print(stripe.WebhookSignature.generate_signature_header(sys.argv[1], sys.argv[2], timestamp=int(sys.argv[3])))",
            payload,
            STRIPE_SECRET,
            &timestamp.to_string(),
        ])
        .output()
        .unwrap_or_else(|err| panic!("cannot run SENDPROMPTLY_PYTHON={python:?}: {err}"));
    assert!(
        output.status.success(),
        "signing with the `stripe` package failed (is it installed in {python:?}?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn invoice_paid(event_id: &str, customer: Option<&str>) -> String {
    serde_json::json!({
        "id": event_id, "object": "event", "api_version": "2024-06-20",
        "type": "invoice.paid", "created": sendpromptly_client::now().unix_seconds() - 3,
        "livemode": false,
        "data": {"object": {
            "id": "in_integration", "object": "invoice", "customer": customer,
            "amount_paid": 2000, "currency": "usd", "status": "paid"
        }}
    })
    .to_string()
}

/// POSTs a Stripe delivery (signed unless `signature` is given) to the app.
async fn deliver(app: &str, payload: &str, signature: Option<&str>) -> (u16, String) {
    let header = match signature {
        Some(forged) => forged.to_owned(),
        None => stripe_signature(payload, sendpromptly_client::now().unix_seconds()),
    };
    let response = reqwest::Client::new()
        .post(format!("{app}/webhooks/stripe"))
        .header("Content-Type", "application/json")
        .header(stripe::SIGNATURE_HEADER, header)
        .body(payload.to_owned())
        .send()
        .await
        .expect("the app answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_signed_stripe_event_goes_through_the_extractor_and_the_tracked_future() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    let webhooks = Webhooks::new(&sp)
        .stripe_secret("whsec_rolled_previous_secret")
        .stripe_secret(STRIPE_SECRET)
        .repair_secret(server.project.signing_secret.clone())
        .stripe_receipt(|_, receipt| Some(receipt.effect("credits.add")));
    let app = serve(webhooks).await;

    // Succeeds: receipt from the event, then success.
    let ok = invoice_paid("evt_int_ok", Some("cus_int"));
    assert_eq!(
        deliver(&app, &ok, None).await,
        (200, "added 500".to_owned())
    );
    let event = sp
        .get_event(Provider::Stripe, "evt_int_ok")
        .await
        .unwrap()
        .event;
    assert_eq!(event.state, EventState::Succeeded);
    assert_eq!(event.subject.as_deref(), Some("cus_int"));
    assert_eq!(event.effect.as_deref(), Some("credits.add"));
    assert_eq!(event.event_type.as_deref(), Some("invoice.paid"));

    // Fails: the app gets its own error back, the server a failure and an incident.
    let bad = invoice_paid("evt_int_fail", None);
    assert_eq!(
        deliver(&app, &bad, None).await,
        (200, "failed: event evt_int_fail has no customer".to_owned())
    );
    let detail = sp
        .get_event(Provider::Stripe, "evt_int_fail")
        .await
        .unwrap();
    assert_eq!(detail.event.state, EventState::Failed);
    let last = detail.event.last_result.as_ref().expect("a result");
    assert_eq!(
        last.error.as_deref(),
        Some("event evt_int_fail has no customer")
    );
    let incident = detail.incident.expect("an incident");
    assert_eq!(incident.kind, IncidentKind::FailedResult);

    // A forged signature: 400 before the handler, nothing recorded.
    let forged = invoice_paid("evt_int_forged", Some("cus_int"));
    let (status, body) = deliver(
        &app,
        &forged,
        Some(&format!(
            "t={},v1={}",
            sendpromptly_client::now().unix_seconds(),
            "0".repeat(64)
        )),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Stripe webhook rejected"), "{body}");
    let missing = sp
        .get_event(Provider::Stripe, "evt_int_forged")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));

    // The repair endpoint: the callback verified, the result linked to it.
    sp.update_project(&ProjectUpdate {
        repair_url: Some(Some(format!("{app}/repair"))),
        ..ProjectUpdate::default()
    })
    .await
    .unwrap();
    let requested = sp
        .reprocess(&incident.id, Some("customer restored"))
        .await
        .unwrap();
    let resolved = eventually(
        Duration::from_secs(20),
        "the repair to resolve the incident",
        || {
            let sp = sp.clone();
            let id = incident.id.clone();
            async move {
                let detail = sp.get_incident(&id).await.ok()?;
                (detail.incident.state == IncidentState::Resolved).then_some(detail)
            }
        },
    )
    .await;
    assert_eq!(
        resolved.incident.resolution,
        Some(Resolution::SuccessResult.into())
    );
    assert_eq!(
        resolved.event.last_result.and_then(|r| r.reprocess_id),
        Some(requested.reprocess_id)
    );
}

/// A port nothing listens on.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test]
async fn with_the_server_down_the_app_answers_what_it_would_have() {
    let down = client(
        &closed_port_url().await,
        "sp_test_unreachable",
        RetryConfig {
            total_budget: Duration::from_millis(500),
            retry_on: RetryOn::default(),
            ..RetryConfig::default()
        },
    );
    let background = down
        .background(BackgroundConfig::default())
        .expect("background mode");
    for reporter in [Reporter::from(&down), Reporter::from(&background)] {
        let webhooks = Webhooks::new(reporter)
            .stripe_secret(STRIPE_SECRET)
            .repair_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let app = serve(webhooks).await;
        let ok = invoice_paid("evt_int_down_ok", Some("cus_int"));
        assert_eq!(
            deliver(&app, &ok, None).await,
            (200, "added 500".to_owned())
        );
        let bad = invoice_paid("evt_int_down_fail", None);
        assert_eq!(
            deliver(&app, &bad, None).await,
            (
                200,
                "failed: event evt_int_down_fail has no customer".to_owned()
            )
        );
        let forged = deliver(&app, &ok, Some("t=1,v1=00")).await;
        assert_eq!(forged.0, 400);
    }
    // Nothing reached a server; background mode gave up on its own schedule.
    assert_eq!(background.stats().delivered, 0);
}

#[tokio::test]
async fn a_repair_whose_result_cannot_be_recorded_answers_503() {
    // SendPromptly then delivers the callback again: the repair is not lost.
    let down = client(
        &closed_port_url().await,
        "sp_test_unreachable",
        RetryConfig::no_retries(Duration::from_millis(500)),
    );
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app = serve(Webhooks::new(&down).repair_secret(secret)).await;
    use sendpromptly_client::core::callback::{
        RepairCallback, RepairCallbackEvent, sign_repair_callback,
    };
    use sendpromptly_client::core::standard_webhooks::SigningSecret;
    let callback = RepairCallback::new(
        "rep_01",
        "inc_01",
        1,
        sendpromptly_client::now(),
        "console:alice@example.com",
        RepairCallbackEvent::new(Provider::Stripe, "evt_1", "invoice.paid"),
    );
    let (body, headers) = sign_repair_callback(
        &callback,
        &[SigningSecret::parse(secret).unwrap()],
        sendpromptly_client::now(),
    )
    .unwrap();
    let mut request = reqwest::Client::new()
        .post(format!("{app}/repair"))
        .body(body.clone());
    for (name, value) in headers.to_pairs() {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 503);
    // A forged one is refused before the handler.
    let forged = reqwest::Client::new()
        .post(format!("{app}/repair"))
        .header("webhook-id", "rep_01")
        .header(
            "webhook-timestamp",
            sendpromptly_client::now().unix_seconds().to_string(),
        )
        .header(
            "webhook-signature",
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
}

#[tokio::test]
async fn dev_mode_runs_the_integrations_without_a_server() {
    let sp = Client::with_options_in(sendpromptly_client::ClientOptions::default(), &|name| {
        (name == "SENDPROMPTLY_DEV").then(|| "1".to_owned())
    })
    .expect("dev mode needs no key");
    let app = serve(Webhooks::new(&sp).stripe_secret(STRIPE_SECRET)).await;
    let bad = invoice_paid("evt_int_dev", None);
    assert_eq!(
        deliver(&app, &bad, None).await,
        (200, "failed: event evt_int_dev has no customer".to_owned())
    );
}

#[tokio::test]
async fn a_shopify_delivery_goes_through_the_extractor_and_a_background_reporter() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    let background = sp.background(BackgroundConfig::default()).unwrap();
    let secret = "shopify_app_secret";
    let app = serve(
        Webhooks::new(&background)
            .shopify_secret(secret)
            // Receipts only for paid orders' topics.
            .shopify_receipt(|delivery, receipt| {
                (delivery.topic == "orders/paid").then(|| receipt.effect("order.fulfil"))
            }),
    )
    .await;
    let send = |topic: &'static str, event_id: &'static str, hmac_secret: &'static str| {
        let app = app.clone();
        async move {
            let body = serde_json::json!({
                "id": 820982911946154508_u64, "financial_status": "paid",
                "total_price": "12.50", "currency": "USD",
                "customer": {"id": 115310627314723954_u64},
                "created_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:00Z"
            })
            .to_string();
            reqwest::Client::new()
                .post(format!("{app}/webhooks/shopify"))
                .header(
                    shopify::HEADER_HMAC,
                    shopify::compute_hmac(body.as_bytes(), hmac_secret),
                )
                .header(shopify::HEADER_TOPIC, topic)
                .header(shopify::HEADER_SHOP_DOMAIN, "example.myshopify.com")
                .header(shopify::HEADER_WEBHOOK_ID, format!("wh-{event_id}"))
                .header(shopify::HEADER_EVENT_ID, event_id)
                .header(shopify::HEADER_API_VERSION, "2025-07")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send("orders/paid", "shop-evt-1", secret).await, 200);
    assert_eq!(
        send("orders/paid", "shop-evt-forged", "not_the_secret").await,
        400
    );
    assert_eq!(send("orders/create", "shop-evt-ignored", secret).await, 200);
    assert!(background.flush(Duration::from_secs(20)).await);

    let event = sp
        .get_event(Provider::Shopify, "shop-evt-1")
        .await
        .unwrap()
        .event;
    assert_eq!(event.state, EventState::Succeeded);
    assert_eq!(event.event_type.as_deref(), Some("orders/paid"));
    assert_eq!(event.effect.as_deref(), Some("order.fulfil"));
    assert_eq!(
        sp.get_event(Provider::Shopify, "shop-evt-forged")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // No receipt for the ignored topic: its success alone recorded a result
    // for an event SendPromptly never got a receipt for.
    let ignored = sp
        .get_event(Provider::Shopify, "shop-evt-ignored")
        .await
        .unwrap()
        .event;
    assert_eq!(ignored.event_type, None);
}

#[tokio::test]
async fn the_stripe_middleware_verifies_sends_the_receipt_and_hands_on_the_event() {
    let server = TestServer::start().await;
    let sp = direct(&server);
    let webhooks = Webhooks::new(&sp).stripe_secret(STRIPE_SECRET);
    async fn handler(
        axum::Extension(event): axum::Extension<stripe::StripeEvent>,
        body: String,
    ) -> String {
        // The body is still there for handlers that read it.
        format!("{} {}", event.id, body.contains(&event.id))
    }
    let router = Router::new()
        .route("/webhooks/stripe", post(handler))
        .route_layer(axum::middleware::from_fn_with_state(
            webhooks,
            stripe_middleware,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let payload = invoice_paid("evt_int_layer", Some("cus_layer"));
    assert_eq!(
        deliver(&app, &payload, None).await,
        (200, "evt_int_layer true".to_owned())
    );
    let event = sp
        .get_event(Provider::Stripe, "evt_int_layer")
        .await
        .unwrap()
        .event;
    assert_eq!(event.state, EventState::AwaitingResult);
    assert_eq!(event.subject.as_deref(), Some("cus_layer"));
    let (status, _) = deliver(&app, &payload, Some("t=1,v1=00")).await;
    assert_eq!(status, 400);
}
