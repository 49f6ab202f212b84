//! The provider tap end to end (issue #20): Stripe and Shopify deliver their
//! own copy of each event to SendPromptly over real HTTP; an event the app
//! never reports opens a `missing_receipt` incident after its receipt
//! grace. Real server on loopback, real SQLite file.

use std::time::Duration;

use reqwest::Method;
use sendpromptly_core::{shopify, stripe};
use sendpromptly_server::testing::{ApiClient, CallbackReceiver, TestServer, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(1);
const WHSEC: &str = "whsec_tap_test_secret_1";
const SHOPIFY_SECRET: &str = "shpss_client_secret_for_tests";

/// A Stripe event as Stripe sends it.
fn invoice_paid(event_id: &str, invoice: &str, livemode: bool, created: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": event_id,
        "object": "event",
        "api_version": "2025-07-30.basil",
        "created": created,
        "livemode": livemode,
        "pending_webhooks": 1,
        "type": "invoice.paid",
        "data": {"object": {
            "id": invoice, "object": "invoice", "customer": "cus_9s8d7f",
            "amount_paid": 1999, "currency": "usd", "status": "paid"
        }}
    }))
    .unwrap()
}

struct Tap {
    server: TestServer,
    api: ApiClient,
    http: reqwest::Client,
}

impl Tap {
    async fn start() -> Tap {
        let server = TestServer::start().await;
        let api = server.api();
        Tap {
            server,
            api,
            http: reqwest::Client::new(),
        }
    }

    fn project_id(&self) -> &str {
        &self.server.project.project_id
    }

    async fn settings(&self, tap: Value) -> (u16, Value) {
        let r = self
            .api
            .send(
                Method::PATCH,
                "/v1/project",
                Some(&json!({ "provider_tap": tap })),
                &[],
            )
            .await;
        (r.status, r.json)
    }

    async fn configure(&self, grace: u32) {
        let (status, body) = self
            .settings(json!({
                "stripe_endpoint_secrets": [WHSEC],
                "shopify_client_secret": SHOPIFY_SECRET,
                "receipt_grace_seconds": grace,
            }))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    fn now(&self) -> i64 {
        self.server.clock_now().unix_seconds()
    }

    /// POSTs `body` to the Stripe tap with `signature` (none when `None`).
    async fn stripe_raw(
        &self,
        project: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!(
                "{}/v1/providers/stripe/webhooks/{project}",
                self.server.url()
            ))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Signs `body` as Stripe does, now, with the configured secret.
    async fn stripe(&self, body: &[u8]) -> (u16, Value) {
        let header = stripe::generate_test_header(body, WHSEC, self.now());
        self.stripe_raw(self.project_id(), body, Some(&header))
            .await
    }

    async fn event(&self, event_id: &str) -> Value {
        let r = self.api.get(&format!("/v1/events/stripe/{event_id}")).await;
        r.json
    }

    async fn incidents(&self, query: &str) -> Vec<Value> {
        let r = self.api.get(&format!("/v1/incidents?{query}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["data"].as_array().cloned().unwrap_or_default()
    }

    async fn wait_incident(&self, event_id: &str) -> Value {
        eventually(WAIT, "a missing_receipt incident opens", || async {
            let event = self.event(event_id).await;
            (!event["incident"].is_null()).then_some(event)
        })
        .await
    }
}

fn kinds(timeline: &Value) -> Vec<String> {
    timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_tapped_event_without_receipt_opens_missing_receipt_and_a_late_receipt_resolves_it() {
    let tap = Tap::start().await;
    tap.configure(2).await;
    let created = tap.now() - 5;
    let (status, body) = tap
        .stripe(&invoice_paid("evt_tap_1", "in_tap_1", true, created))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["received"], true);
    assert_eq!(body["outcome"], "created");

    let event = tap.event("evt_tap_1").await;
    assert_eq!(event["event"]["state"], "awaiting_receipt");
    assert_eq!(event["event"]["event_type"], "invoice.paid");
    assert_eq!(event["event"]["provider_copy"]["learned_via"], "tap");
    assert_eq!(event["event"]["provider_copy"]["amount"], 1999);
    assert!(event["incident"].is_null());

    // Before the grace: nothing.
    tap.server.advance(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tap.event("evt_tap_1").await["incident"].is_null());

    // After the grace: within a second, `missing_receipt` with plain words.
    tap.server.advance(Duration::from_secs(1));
    let event = tap.wait_incident("evt_tap_1").await;
    let incident = &event["incident"];
    assert_eq!(incident["kind"], "missing_receipt");
    assert_eq!(incident["state"], "open");
    assert_eq!(incident["livemode"], true);
    let reason = incident["last_error"].as_str().unwrap();
    assert!(
        reason.starts_with("Stripe sent `evt_tap_1` (`invoice.paid`, cus_9s8d7f, 19.99 USD) at "),
        "{reason}"
    );
    assert!(
        reason.ends_with("; your app never sent a receipt."),
        "{reason}"
    );
    let listed = tap.incidents("kind=missing_receipt").await;
    assert_eq!(listed.len(), 1);

    // The app's receipt arrives late: the incident resolves by itself.
    let r = tap
        .api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_tap_1", "event_type": "invoice.paid",
                   "subject": "cus_9s8d7f", "deadline_seconds": 60}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["event"]["state"], "awaiting_result");
    assert_eq!(r.json["incident"]["state"], "resolved");
    assert_eq!(r.json["incident"]["resolution"], "receipt_arrived");
    let event = tap.event("evt_tap_1").await;
    assert_eq!(
        kinds(&event["timeline"]),
        [
            "provider_copy.recorded",
            "receipt_grace.passed",
            "incident.opened",
            "receipt.recorded",
            "incident.resolved"
        ]
    );
}

#[tokio::test]
async fn reprocess_of_a_missing_receipt_sends_the_type_from_the_providers_copy() {
    let tap = Tap::start().await;
    tap.configure(1).await;
    let receiver =
        CallbackReceiver::start(&tap.server.project.signing_secret, tap.server.clock.clone()).await;
    let r = tap
        .api
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({ "repair_url": receiver.url() })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    tap.stripe(&invoice_paid("evt_replay", "in_replay", true, tap.now()))
        .await;
    tap.server.advance(Duration::from_secs(1));
    let event = tap.wait_incident("evt_replay").await;
    let id = event["incident"]["id"].as_str().unwrap();
    let r = tap
        .api
        .post(&format!("/v1/incidents/{id}/reprocess"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let callback = eventually(Duration::from_secs(10), "the repair callback", || async {
        receiver.received().into_iter().next()
    })
    .await;
    let body: Value = serde_json::from_slice(&callback.body).unwrap();
    assert!(callback.error.is_none(), "{:?}", callback.error);
    assert_eq!(body["event"]["provider"], "stripe");
    assert_eq!(body["event"]["event_id"], "evt_replay");
    assert_eq!(body["event"]["event_type"], "invoice.paid");
    assert_eq!(body["event"]["subject"], "cus_9s8d7f");
    receiver.stop();
}

#[tokio::test]
async fn receipt_then_tap_opens_nothing_and_a_redelivery_is_a_duplicate() {
    let tap = Tap::start().await;
    tap.configure(1).await;
    let r = tap
        .api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_rt", "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let body = invoice_paid("evt_rt", "in_rt", true, tap.now());
    let (status, answer) = tap.stripe(&body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "already_received");
    let (status, answer) = tap.stripe(&body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "duplicate");

    tap.server.advance(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let event = tap.event("evt_rt").await;
    assert!(event["incident"].is_null(), "{event}");
    assert_eq!(event["event"]["state"], "awaiting_result");
    assert_eq!(
        kinds(&event["timeline"]),
        [
            "receipt.recorded",
            "provider_copy.recorded",
            "provider_copy.duplicate"
        ]
    );
}

#[tokio::test]
async fn two_event_ids_of_one_change_give_one_incident() {
    let tap = Tap::start().await;
    tap.configure(1).await;
    let now = tap.now();
    let (_, first) = tap
        .stripe(&invoice_paid("evt_same_a", "in_same", true, now))
        .await;
    assert_eq!(first["outcome"], "created");
    let (status, second) = tap
        .stripe(&invoice_paid("evt_same_b", "in_same", true, now))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["outcome"], "linked_by_fingerprint");

    tap.server.advance(Duration::from_secs(1));
    tap.wait_incident("evt_same_a").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(tap.incidents("").await.len(), 1);
    assert_eq!(
        tap.api.get("/v1/events/stripe/evt_same_b").await.status,
        404
    );
    let event = tap.event("evt_same_a").await;
    let linked = event["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "provider_copy.duplicate")
        .expect("the second id is on the first event's timeline");
    assert_eq!(
        linked["detail"]["note"],
        "duplicate copy `evt_same_b` of the same change"
    );
}

#[tokio::test]
async fn a_test_mode_event_never_opens_a_live_incident() {
    let tap = Tap::start().await;
    tap.configure(1).await;
    let now = tap.now();
    tap.stripe(&invoice_paid("evt_test_mode", "in_t", false, now))
        .await;
    tap.stripe(&invoice_paid("evt_live_mode", "in_l", true, now))
        .await;
    tap.server.advance(Duration::from_secs(1));
    let test = tap.wait_incident("evt_test_mode").await;
    tap.wait_incident("evt_live_mode").await;
    assert_eq!(test["incident"]["livemode"], false);

    let ids = |list: Vec<Value>| -> Vec<String> {
        list.iter()
            .map(|i| {
                i["event"]["event_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(ids(tap.incidents("livemode=true").await), ["evt_live_mode"]);
    assert_eq!(
        ids(tap.incidents("livemode=false").await),
        ["evt_test_mode"]
    );
    assert_eq!(tap.incidents("").await.len(), 2);
    let r = tap.api.get("/v1/events?livemode=false").await;
    assert_eq!(r.status, 200);
    let events: Vec<&str> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["evt_test_mode"]);
    let r = tap.api.get("/v1/incidents?livemode=maybe").await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["error"]["param"], "livemode");
}

#[tokio::test]
async fn unverified_stripe_deliveries_are_refused_and_nothing_is_stored() {
    let tap = Tap::start().await;
    tap.configure(1).await;
    let now = tap.now();
    let body = invoice_paid("evt_bad", "in_bad", true, now);
    let project = tap.project_id().to_owned();

    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'9').unwrap();
    tampered[at] = b'8';
    let good = stripe::generate_test_header(&body, WHSEC, now);
    let cases: Vec<(&str, Vec<u8>, Option<String>, &str)> = vec![
        (
            "tampered",
            tampered,
            Some(good.clone()),
            "no signatures found matching",
        ),
        (
            "stale",
            body.clone(),
            Some(stripe::generate_test_header(&body, WHSEC, now - 301)),
            "timestamp outside the tolerance zone",
        ),
        (
            "wrong secret",
            body.clone(),
            Some(stripe::generate_test_header(
                &body,
                "whsec_someone_else",
                now,
            )),
            "no signatures found matching",
        ),
        ("unsigned", body.clone(), None, "unsigned delivery"),
        (
            "garbage header",
            body.clone(),
            Some("t=abc".into()),
            "Stripe-Signature",
        ),
    ];
    for (what, payload, header, reason) in cases {
        let (status, answer) = tap.stripe_raw(&project, &payload, header.as_deref()).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["error"]["type"], "webhook_rejected", "{what}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{what}: {message}");
    }
    assert_eq!(tap.api.get("/v1/events/stripe/evt_bad").await.status, 404);

    // A large delivery (over the API's 64 KiB, under the tap's 1 MiB) is fine.
    let mut big: Value =
        serde_json::from_slice(&invoice_paid("evt_big", "in_big", true, now)).unwrap();
    big["data"]["object"]["lines"] = json!({"data": vec!["x".repeat(1000); 200]});
    let big = serde_json::to_vec(&big).unwrap();
    assert!(big.len() > 150 * 1024);
    let (status, answer) = tap.stripe(&big).await;
    assert_eq!(status, 200, "{answer}");
    let too_big = vec![b' '; 1024 * 1024 + 1];
    let header = stripe::generate_test_header(&too_big, WHSEC, now);
    let (status, _) = tap.stripe_raw(&project, &too_big, Some(&header)).await;
    assert_eq!(status, 413);

    // Unknown project: 404, whatever the signature.
    let (status, _) = tap.stripe_raw("prj_nope", &body, Some(&good)).await;
    assert_eq!(status, 404);

    // Rotation: a second secret is accepted alongside the first.
    let (status, settings) = tap
        .settings(json!({"stripe_endpoint_secrets": [WHSEC, "whsec_rotated_2"]}))
        .await;
    assert_eq!(status, 200, "{settings}");
    let header = stripe::generate_test_header(&body, "whsec_rotated_2", now);
    let (status, answer) = tap.stripe_raw(&project, &body, Some(&header)).await;
    assert_eq!(status, 200, "{answer}");

    // Untracked type: 200, ignored, said so.
    let (status, _) = tap
        .settings(json!({"tracked_event_types": ["checkout.session.completed"]}))
        .await;
    assert_eq!(status, 200);
    let other = invoice_paid("evt_untracked", "in_u", true, now);
    let (status, answer) = tap.stripe(&other).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "not_tracked");
    assert!(answer["message"].as_str().unwrap().contains("ignored"));
    assert_eq!(
        tap.api.get("/v1/events/stripe/evt_untracked").await.status,
        404
    );
    let metrics = tap.api.get("/metrics").await.text;
    for line in [
        r#"sendpromptly_provider_tap_deliveries_total{provider="stripe",outcome="rejected"} 5"#,
        r#"sendpromptly_provider_tap_deliveries_total{provider="stripe",outcome="created"} 2"#,
        r#"sendpromptly_provider_tap_deliveries_total{provider="stripe",outcome="not_tracked"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

async fn shopify_post(tap: &Tap, body: &[u8], hmac: &str, event_id: &str) -> (u16, Value) {
    let response = tap
        .http
        .post(format!(
            "{}/v1/providers/shopify/webhooks/{}",
            tap.server.url(),
            tap.project_id()
        ))
        .header("content-type", "application/json")
        .header("X-Shopify-Hmac-Sha256", hmac)
        .header("X-Shopify-Topic", "orders/paid")
        .header("X-Shopify-API-Version", "2025-07")
        .header("X-Shopify-Shop-Domain", "example.myshopify.com")
        .header("X-Shopify-Webhook-Id", format!("wh_{event_id}"))
        .header("X-Shopify-Event-Id", event_id)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn shopify_deliveries_signed_with_the_client_secret_are_accepted_tampered_refused() {
    let tap = Tap::start().await;
    tap.configure(60).await;
    let body = serde_json::to_vec(&json!({
        "id": 820982911946154500_i64, "email": "jon@example.com", "total_price": "199.90",
        "currency": "USD", "customer": {"id": 115310627314723950_i64},
        "updated_at": "2026-11-22T10:00:00Z"
    }))
    .unwrap();
    // Shopify's documented HMAC: base64(HMAC-SHA256(client secret, raw body)).
    let hmac = shopify::compute_hmac(&body, SHOPIFY_SECRET);
    let (status, answer) = shopify_post(&tap, &body, &hmac, "ev_shop_1").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "created");
    let r = tap.api.get("/v1/events/shopify/ev_shop_1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["event"]["state"], "awaiting_receipt");
    assert_eq!(r.json["event"]["provider_copy"]["amount"], 19990);

    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'1').unwrap();
    tampered[at] = b'2';
    let (status, answer) = shopify_post(&tap, &tampered, &hmac, "ev_shop_2").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["type"], "webhook_rejected");
    let wrong = shopify::compute_hmac(&body, "another_secret");
    let (status, _) = shopify_post(&tap, &body, &wrong, "ev_shop_3").await;
    assert_eq!(status, 400);
    assert_eq!(
        tap.api.get("/v1/events/shopify/ev_shop_2").await.status,
        404
    );
    assert_eq!(
        tap.api.get("/v1/events/shopify/ev_shop_3").await.status,
        404
    );
    let url = format!(
        "{}/v1/providers/shopify/webhooks/{}",
        tap.server.url(),
        tap.project_id()
    );
    // Unsigned: refused.
    let response = tap
        .http
        .post(&url)
        .header("X-Shopify-Topic", "orders/paid")
        .header("X-Shopify-API-Version", "2025-07")
        .header("X-Shopify-Shop-Domain", "example.myshopify.com")
        .header("X-Shopify-Webhook-Id", "wh_unsigned")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // No X-Shopify-Event-Id (older API versions): the webhook id is the event id.
    let other =
        serde_json::to_vec(&json!({"id": 42, "total_price": "5.00", "currency": "USD"})).unwrap();
    let response = tap
        .http
        .post(&url)
        .header(
            "X-Shopify-Hmac-Sha256",
            shopify::compute_hmac(&other, SHOPIFY_SECRET),
        )
        .header("X-Shopify-Topic", "orders/paid")
        .header("X-Shopify-API-Version", "2025-07")
        .header("X-Shopify-Shop-Domain", "example.myshopify.com")
        .header("X-Shopify-Webhook-Id", "wh_only_id")
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        tap.api.get("/v1/events/shopify/wh_only_id").await.status,
        200
    );
}

#[tokio::test]
async fn bad_tap_settings_are_refused_with_the_setting_named_and_secrets_never_echoed() {
    let tap = Tap::start().await;
    let cases = [
        (
            json!({"stripe_endpoint_secrets": ["sk_live_oops"]}),
            "provider_tap.stripe_endpoint_secrets[0]",
            "whsec_",
        ),
        (
            json!({"stripe_restricted_key": "sk_live_123"}),
            "provider_tap.stripe_restricted_key",
            "restricted key",
        ),
        (
            json!({"stripe_restricted_key": "pk_test_123"}),
            "provider_tap.stripe_restricted_key",
            "rk_live_",
        ),
        (
            json!({"tracked_event_types": ["invoice.created"]}),
            "provider_tap.tracked_event_types[0]",
            "allowed values: checkout.session.completed",
        ),
        (
            json!({"receipt_grace_seconds": 0}),
            "provider_tap.receipt_grace_seconds",
            "between 1 and 604800",
        ),
        (
            json!({"receipt_grace_by_event_type": {"orders/paid": 9999999}}),
            "provider_tap.receipt_grace_by_event_type.orders/paid",
            "between 1 and 604800",
        ),
    ];
    for (setting, param, words) in cases {
        let (status, body) = tap.settings(setting.clone()).await;
        assert_eq!(status, 422, "{setting}: {body}");
        assert_eq!(body["error"]["param"], param, "{setting}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{setting}: {message}");
    }
    let (status, body) = tap.settings(json!({"nonsense": 1})).await;
    assert!(status == 400 || status == 422, "{body}");

    // Nothing of a refused change was stored; a good one shows hints only.
    let (status, body) = tap
        .settings(json!({
            "stripe_endpoint_secrets": ["whsec_abcdefgh1234"],
            "stripe_restricted_key": "rk_test_secretkey9876",
            "shopify_client_secret": "shpss_zzzz5555",
            "receipt_grace_by_event_type": {"invoice.paid": 30}
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    for secret in [
        "whsec_abcdefgh1234",
        "rk_test_secretkey9876",
        "shpss_zzzz5555",
    ] {
        assert!(!text.contains(secret), "{secret} echoed: {text}");
    }
    let view = &body["provider_tap"];
    assert_eq!(view["stripe_endpoint_secrets"], json!(["…1234"]));
    assert_eq!(view["stripe_restricted_key"], "rk_test_…9876");
    assert_eq!(view["shopify_client_secret"], "…5555");
    assert_eq!(view["receipt_grace_seconds"], 600);
    assert_eq!(view["receipt_grace_by_event_type"]["invoice.paid"], 30);
    let project = tap.project_id();
    assert!(
        view["stripe_webhook_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/providers/stripe/webhooks/{project}"))
    );
    // The reconciler reads the restricted key from the store.
    assert_eq!(
        tap.server
            .store()
            .stripe_restricted_key(project)
            .await
            .unwrap()
            .as_deref(),
        Some("rk_test_secretkey9876")
    );
    let r = tap.api.get("/v1/project").await;
    assert_eq!(r.json["provider_tap"], body["provider_tap"]);
}

/// A console session (cookies by hand).
struct Console {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    body: String,
}

impl Console {
    async fn sign_in(server: &TestServer) -> Console {
        const EMAIL: &str = "ops@example.com";
        const PASSWORD: &str = "correct horse battery";
        sendpromptly_server::provision::create_user(
            server.store(),
            EMAIL,
            PASSWORD,
            server.clock_now(),
        )
        .await
        .unwrap();
        let mut console = Console {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.url(),
            cookies: Vec::new(),
        };
        let login = console.get("/login").await;
        let csrf = csrf(&login.body);
        let page = console
            .post(
                "/login",
                &[
                    ("email", EMAIL),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        console
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        for cookie in response.headers().get_all("set-cookie") {
            let pair = cookie.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        Page {
            status: response.status().as_u16(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }
}

fn csrf(body: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a csrf field") + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].to_owned()
}

#[tokio::test]
async fn the_console_shows_missing_receipts_the_providers_copy_and_test_mode() {
    let tap = Tap::start().await;
    tap.configure(1).await;
    let now = tap.now();
    tap.stripe(&invoice_paid("evt_console_live", "in_cl", true, now))
        .await;
    tap.stripe(&invoice_paid("evt_console_test", "in_ct", false, now))
        .await;
    tap.server.advance(Duration::from_secs(1));
    let live = tap.wait_incident("evt_console_live").await;
    tap.wait_incident("evt_console_test").await;
    let live_id = live["incident"]["id"].as_str().unwrap().to_owned();
    let test_id = tap.event("evt_console_test").await["incident"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut console = Console::sign_in(&tap.server).await;
    let overview = console.get("/").await;
    assert_eq!(overview.status, 200);
    assert!(
        overview
            .body
            .contains("<strong>1</strong> open missing receipt</a>"),
        "the live one only: {}",
        overview.body
    );
    let list = console.get("/incidents?kind=missing_receipt").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains(r#"<option value="missing_receipt" selected>"#)
    );
    assert!(list.body.contains(&live_id) && list.body.contains(&test_id));
    let test_only = console.get("/incidents?livemode=false").await;
    assert!(test_only.body.contains(&test_id) && !test_only.body.contains(&live_id));
    assert!(test_only.body.contains("badge-test-mode"));
    let live_only = console.get("/incidents?livemode=true").await;
    assert!(live_only.body.contains(&live_id) && !live_only.body.contains(&test_id));

    let page = console.get(&format!("/incidents/{live_id}")).await;
    assert_eq!(page.status, 200);
    for fact in [
        "The provider&#x27;s copy",
        "19.99 USD",
        "provider tap",
        "cus_9s8d7f",
        "your app never sent a receipt",
    ] {
        assert!(
            page.body.contains(fact) || page.body.contains(&fact.replace("&#x27;", "'")),
            "{fact} missing"
        );
    }
    let page = console.get(&format!("/incidents/{test_id}")).await;
    assert!(page.body.contains("badge-test-mode"));

    // Settings: the URLs to paste, and the form's errors name the setting.
    let settings = console.get("/settings").await;
    let project = tap.project_id();
    assert!(
        settings
            .body
            .contains(&format!("/v1/providers/stripe/webhooks/{project}"))
    );
    assert!(
        settings
            .body
            .contains(&format!("/v1/providers/shopify/webhooks/{project}"))
    );
    assert!(!settings.body.contains(WHSEC), "a secret is never shown");
    assert!(
        !settings.body.contains("reconcile-status"),
        "no reconciler status before any pass"
    );

    // A restricted key Stripe refuses: the reconciler's failed pass is said
    // on the settings page, not only in /metrics.
    let store = tap.server.store();
    let owner = "console-test";
    let at = tap.server.clock_now();
    assert!(
        store
            .take_reconcile_lease(project, owner, at, Duration::from_secs(60))
            .await
            .unwrap()
            .is_some()
    );
    let refused =
        "Stripe refused the restricted key (401): Invalid API Key provided: rk_live_***42";
    assert!(
        store
            .finish_reconcile(
                project,
                owner,
                at,
                &sendpromptly_server::store::ReconcileOutcome::Failed {
                    kind: "unauthorized".into(),
                    message: refused.into(),
                },
            )
            .await
            .unwrap()
    );
    let settings = console.get("/settings").await;
    let status = settings
        .body
        .split(r#"id="reconcile-status""#)
        .nth(1)
        .expect("the reconciler's status on the settings page");
    let status = &status[..status.find("</p>").unwrap()];
    assert!(status.contains("notice-bad"), "{status}");
    assert!(status.contains("last pass failed"), "{status}");
    assert!(status.contains("(401)"), "{status}");
    let token = csrf(&settings.body);
    let bad = console
        .post(
            "/settings/provider-tap",
            &[
                ("csrf", &token),
                ("tracked", "invoice.paid"),
                ("receipt_grace_seconds", "0"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("provider_tap.receipt_grace_seconds"));
    let good = console
        .post(
            "/settings/provider-tap",
            &[
                ("csrf", &token),
                ("tracked", "invoice.paid"),
                ("tracked", "orders/paid"),
                ("receipt_grace_seconds", "900"),
                ("stripe_restricted_key", "rk_live_fromconsole42"),
            ],
        )
        .await;
    assert_eq!(good.status, 303, "{}", good.body);
    let view = tap.api.get("/v1/project").await.json["provider_tap"].clone();
    assert_eq!(
        view["tracked_event_types"],
        json!(["invoice.paid", "orders/paid"])
    );
    assert_eq!(view["receipt_grace_seconds"], 900);
    assert_eq!(view["stripe_restricted_key"], "rk_live_…le42");
    assert_eq!(view["stripe_endpoint_secrets"], json!(["…et_1"]), "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_one_change_under_many_event_ids_track_one_event() {
    let tap = Tap::start().await;
    tap.configure(1).await;
    let now = tap.now();
    let bodies: Vec<Vec<u8>> = (0..12)
        .map(|i| invoice_paid(&format!("evt_race_{i}"), "in_race", true, now))
        .collect();
    let url = format!(
        "{}/v1/providers/stripe/webhooks/{}",
        tap.server.url(),
        tap.project_id()
    );
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let (http, url) = (tap.http.clone(), url.clone());
        let header = stripe::generate_test_header(&body, WHSEC, now);
        tasks.spawn(async move {
            let response = http
                .post(url)
                .header("Stripe-Signature", header)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        outcomes.push(body["outcome"].as_str().unwrap().to_owned());
    }
    outcomes.sort();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "created").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| *o == "linked_by_fingerprint")
            .count(),
        11,
        "{outcomes:?}"
    );
    tap.server.advance(Duration::from_secs(1));
    eventually(WAIT, "one incident", || async {
        (tap.incidents("").await.len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(tap.incidents("").await.len(), 1);
    let r = tap.api.get("/v1/events?limit=100").await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1, "{}", r.text);
}
