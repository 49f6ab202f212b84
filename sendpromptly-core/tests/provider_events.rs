//! Stripe events and Shopify deliveries → EventReference, for every
//! supported type, through the full verify path.

use sendpromptly_core::Timestamp;
use sendpromptly_core::model::Provider;
use sendpromptly_core::provider_event::EventReference;
use sendpromptly_core::shopify::{self, ShopifyDelivery};
use sendpromptly_core::stripe::{self, StripeEvent};
use serde_json::{Value, json};

const NOW: i64 = 1_795_860_000;
const STRIPE_SECRET: &str = "whsec_test_fixture_secret";
const SHOPIFY_SECRET: &str = "shpss_fixture_secret";

fn stripe_fixture(name: &str) -> &'static [u8] {
    match name {
        "checkout_session_completed" => {
            include_bytes!("fixtures/stripe/checkout_session_completed.json")
        }
        "checkout_session_completed_guest_unpaid" => {
            include_bytes!("fixtures/stripe/checkout_session_completed_guest_unpaid.json")
        }
        "invoice_paid" => include_bytes!("fixtures/stripe/invoice_paid.json"),
        "invoice_paid_legacy" => include_bytes!("fixtures/stripe/invoice_paid_legacy.json"),
        "customer_subscription_updated" => {
            include_bytes!("fixtures/stripe/customer_subscription_updated.json")
        }
        "customer_subscription_deleted" => {
            include_bytes!("fixtures/stripe/customer_subscription_deleted.json")
        }
        "charge_refunded" => include_bytes!("fixtures/stripe/charge_refunded.json"),
        "charge_dispute_created" => include_bytes!("fixtures/stripe/charge_dispute_created.json"),
        other => panic!("no fixture {other}"),
    }
}

/// Signs the fixture as Stripe would and verifies it like a handler.
fn stripe_ref(name: &str) -> (StripeEvent, EventReference) {
    let body = stripe_fixture(name);
    let header = stripe::generate_test_header(body, STRIPE_SECRET, NOW);
    let event = stripe::construct_event(
        body,
        &header,
        STRIPE_SECRET,
        Timestamp::from_unix_seconds(NOW + 30),
    )
    .unwrap();
    let reference = EventReference::from_stripe_event(&event);
    (event, reference)
}

fn shopify_fixture(name: &str) -> &'static str {
    match name {
        "orders_paid" => include_str!("fixtures/shopify/orders_paid.json"),
        "orders_fulfilled" => include_str!("fixtures/shopify/orders_fulfilled.json"),
        "customers_create" => include_str!("fixtures/shopify/customers_create.json"),
        "checkouts_create" => include_str!("fixtures/shopify/checkouts_create.json"),
        other => panic!("no fixture {other}"),
    }
}

fn shopify_delivery_from(fixture: &Value) -> (ShopifyDelivery, EventReference) {
    let body = serde_json::to_vec(&fixture["body"]).unwrap();
    let mut headers: Vec<(String, String)> = fixture["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    headers.push((
        "X-Shopify-Hmac-Sha256".into(),
        shopify::compute_hmac(&body, SHOPIFY_SECRET),
    ));
    let delivery = shopify::verify(&body, &headers, &[SHOPIFY_SECRET]).unwrap();
    let reference = EventReference::from_shopify_delivery(&delivery);
    (delivery, reference)
}

fn shopify_ref(name: &str) -> (ShopifyDelivery, EventReference) {
    let fixture: Value = serde_json::from_str(shopify_fixture(name)).unwrap();
    shopify_delivery_from(&fixture)
}

#[test]
fn checkout_session_completed_paid() {
    let (_, r) = stripe_ref("checkout_session_completed");
    assert_eq!(r.provider, Provider::Stripe);
    assert_eq!(r.event_id, "evt_1QcsCompletedPaid0001");
    assert_eq!(r.event_type, "checkout.session.completed");
    assert_eq!(r.subject.as_deref(), Some("cus_QXg1o8vcGmoR32"));
    assert_eq!(
        r.object_id.as_deref(),
        Some("cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY")
    );
    assert_eq!(r.object_type.as_deref(), Some("checkout.session"));
    assert_eq!(r.amount, Some(2000));
    assert_eq!(r.currency.as_deref(), Some("USD"));
    assert_eq!(r.status.as_deref(), Some("paid"));
    assert_eq!(
        r.parent_object_id.as_deref(),
        Some("pi_1PgafyB7WZ01zgkWSjxsAJo3")
    );
    assert_eq!(r.occurred_at, Some(Timestamp::from_unix_seconds(NOW)));
    assert_eq!(r.livemode, Some(false));
    assert_eq!(
        r.fingerprint,
        "stripe:checkout.session.completed:cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY"
    );
}

#[test]
fn checkout_session_guest_unpaid_falls_back() {
    let (event, r) = stripe_ref("checkout_session_completed_guest_unpaid");
    assert!(event.object["customer"].is_null());
    // No customer, no client_reference_id: the buyer's email.
    assert_eq!(r.subject.as_deref(), Some("guest@example.com"));
    assert_eq!(r.status.as_deref(), Some("unpaid"));
    assert_eq!(r.amount, Some(2000));

    // With a client_reference_id, that wins over the email.
    let mut raw = event.raw.clone();
    raw["data"]["object"]["client_reference_id"] = json!("user_77");
    let r = EventReference::from_stripe_event(&StripeEvent::from_value(raw.clone()).unwrap());
    assert_eq!(r.subject.as_deref(), Some("user_77"));
    // An expanded customer object gives its id.
    raw["data"]["object"]["customer"] = json!({"id": "cus_expanded", "object": "customer"});
    let r = EventReference::from_stripe_event(&StripeEvent::from_value(raw.clone()).unwrap());
    assert_eq!(r.subject.as_deref(), Some("cus_expanded"));
    // Nothing at all: no subject, still a reference.
    raw["data"]["object"]["customer"] = Value::Null;
    raw["data"]["object"]["client_reference_id"] = Value::Null;
    raw["data"]["object"]["customer_details"] = Value::Null;
    let r = EventReference::from_stripe_event(&StripeEvent::from_value(raw).unwrap());
    assert_eq!(r.subject, None);
}

#[test]
fn invoice_paid_basil_and_legacy() {
    let (_, basil) = stripe_ref("invoice_paid");
    assert_eq!(basil.subject.as_deref(), Some("cus_QXg1o8vcGmoR32"));
    assert_eq!(
        basil.object_id.as_deref(),
        Some("in_1Pgc6tB7WZ01zgkWu9fdqL6I")
    );
    assert_eq!(basil.amount, Some(2000));
    assert_eq!(basil.currency.as_deref(), Some("USD"));
    assert_eq!(basil.status.as_deref(), Some("paid"));
    assert_eq!(
        basil.parent_object_id.as_deref(),
        Some("sub_1Pgc6rB7WZ01zgkWNy0Cn5nw")
    );
    let (event, legacy) = stripe_ref("invoice_paid_legacy");
    assert_eq!(event.api_version.as_deref(), Some("2024-06-20"));
    assert_eq!(legacy.parent_object_id, basil.parent_object_id);
    assert_eq!(legacy.subject, basil.subject);
    // Same type, same object: the same fingerprint under two event ids.
    assert_ne!(legacy.event_id, basil.event_id);
    assert_eq!(legacy.fingerprint, basil.fingerprint);
}

#[test]
fn subscription_updated_and_deleted() {
    let (_, updated) = stripe_ref("customer_subscription_updated");
    assert_eq!(updated.subject.as_deref(), Some("cus_QXg1o8vcGmoR32"));
    assert_eq!(
        updated.object_id.as_deref(),
        Some("sub_1Pgc6rB7WZ01zgkWNy0Cn5nw")
    );
    assert_eq!(updated.amount, Some(2000));
    assert_eq!(updated.status.as_deref(), Some("active"));
    assert!(
        updated
            .fingerprint
            .starts_with("stripe:customer.subscription.updated:sub_1Pgc6rB7WZ01zgkWNy0Cn5nw:")
    );
    let (_, deleted) = stripe_ref("customer_subscription_deleted");
    assert_eq!(deleted.status.as_deref(), Some("canceled"));
    assert_eq!(
        deleted.fingerprint,
        "stripe:customer.subscription.deleted:sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"
    );
    assert_ne!(updated.fingerprint, deleted.fingerprint);
}

#[test]
fn distinct_updates_of_one_object_have_distinct_fingerprints() {
    let (event, first) = stripe_ref("customer_subscription_updated");
    // The same change under another event id: same fingerprint.
    let mut dup = event.raw.clone();
    dup["id"] = json!("evt_other_id_same_change");
    dup["created"] = json!(NOW + 1);
    let r = EventReference::from_stripe_event(&StripeEvent::from_value(dup).unwrap());
    assert_eq!(r.fingerprint, first.fingerprint);
    assert_ne!(r.event_id, first.event_id);
    // A later, different update of the same subscription: new fingerprint.
    let mut later = event.raw.clone();
    later["id"] = json!("evt_later_update");
    later["data"]["previous_attributes"] = json!({"items": {"data": []}});
    let r = EventReference::from_stripe_event(&StripeEvent::from_value(later).unwrap());
    assert_ne!(r.fingerprint, first.fingerprint);
}

#[test]
fn charge_refunded() {
    let (_, r) = stripe_ref("charge_refunded");
    assert_eq!(r.subject.as_deref(), Some("cus_QXg1o8vcGmoR32"));
    assert_eq!(r.object_id.as_deref(), Some("ch_1PgafuB7WZ01zgkWXYmPNZs8"));
    assert_eq!(r.amount, Some(2000));
    assert_eq!(
        r.parent_object_id.as_deref(),
        Some("pi_1PgafyB7WZ01zgkWSjxsAJo3")
    );
    assert_eq!(
        r.fingerprint,
        "stripe:charge.refunded:ch_1PgafuB7WZ01zgkWXYmPNZs8"
    );
}

#[test]
fn charge_dispute_created() {
    let (event, r) = stripe_ref("charge_dispute_created");
    assert_eq!(r.object_id.as_deref(), Some("dp_1Pgc71B7WZ01zgkWMevJiAUx"));
    assert_eq!(
        r.parent_object_id.as_deref(),
        Some("ch_1PgafuB7WZ01zgkWXYmPNZs8")
    );
    assert_eq!(r.amount, Some(2000));
    assert_eq!(r.status.as_deref(), Some("needs_response"));
    // The charge is not expanded in the webhook: no customer is known.
    assert_eq!(r.subject, None);
    let mut raw = event.raw.clone();
    raw["data"]["object"]["charge"] =
        json!({"id": "ch_1PgafuB7WZ01zgkWXYmPNZs8", "object": "charge", "customer": "cus_Z"});
    let r = EventReference::from_stripe_event(&StripeEvent::from_value(raw).unwrap());
    assert_eq!(r.subject.as_deref(), Some("cus_Z"));
    assert_eq!(
        r.parent_object_id.as_deref(),
        Some("ch_1PgafuB7WZ01zgkWXYmPNZs8")
    );
}

#[test]
fn stripe_unknown_types_are_generic() {
    let vector = include_bytes!("fixtures/vectors/stripe_vector1_payload.json");
    let r = EventReference::from_stripe_event(&StripeEvent::from_slice(vector).unwrap());
    assert_eq!(r.event_type, "invoiceitem.created");
    assert_eq!(r.object_id.as_deref(), Some("ii_123"));
    assert_eq!(r.subject.as_deref(), Some("cus_123"));
    assert_eq!(r.amount, Some(1000));
    assert_eq!(r.account.as_deref(), Some("acct_123"));
    // No data.object at all.
    let r = EventReference::from_stripe_event(
        &StripeEvent::from_slice(br#"{"id":"evt_x","type":"account.application.deauthorized"}"#)
            .unwrap(),
    );
    assert_eq!(r.object_id, None);
    assert_eq!(
        r.fingerprint,
        "stripe:account.application.deauthorized:evt:evt_x"
    );
    // A customer event: the subject is the customer itself.
    let r = EventReference::from_stripe_event(
        &StripeEvent::from_slice(
            br#"{"id":"evt_c","type":"customer.created","data":{"object":{"id":"cus_1","object":"customer"}}}"#,
        )
        .unwrap(),
    );
    assert_eq!(r.subject.as_deref(), Some("cus_1"));
}

#[test]
fn shopify_orders_paid() {
    let (delivery, r) = shopify_ref("orders_paid");
    assert_eq!(r.provider, Provider::Shopify);
    assert_eq!(r.event_id, "98880550-7158-44d4-b7cd-2c97c8a091b5");
    assert_eq!(r.event_type, "orders/paid");
    assert_eq!(r.subject.as_deref(), Some("115310627314723954"));
    assert_eq!(r.object_id.as_deref(), Some("820982911946154508"));
    assert_eq!(r.object_type.as_deref(), Some("order"));
    assert_eq!(r.amount, Some(20900));
    assert_eq!(r.currency.as_deref(), Some("USD"));
    assert_eq!(r.status.as_deref(), Some("paid"));
    assert_eq!(r.occurred_at, delivery.triggered_at);
    assert_eq!(r.livemode, Some(true));
    assert_eq!(
        r.account.as_deref(),
        Some("sendpromptly-demo.myshopify.com")
    );
    assert_eq!(
        r.fingerprint,
        "shopify:sendpromptly-demo.myshopify.com:orders/paid:820982911946154508"
    );
    let meta = r.receipt_metadata();
    assert_eq!(meta["amount"], 20900);
    assert_eq!(meta["object_id"], "820982911946154508");
}

#[test]
fn shopify_orders_fulfilled() {
    let (_, r) = shopify_ref("orders_fulfilled");
    assert_eq!(r.object_id.as_deref(), Some("820982911946154508"));
    assert_eq!(r.status.as_deref(), Some("fulfilled"));
    assert_eq!(r.subject.as_deref(), Some("115310627314723954"));
    assert_ne!(r.fingerprint, shopify_ref("orders_paid").1.fingerprint);
}

#[test]
fn shopify_customers_create_without_event_id() {
    let (delivery, r) = shopify_ref("customers_create");
    assert_eq!(delivery.event_id, None);
    assert_eq!(r.event_id, "0a9bd1bb-3c2f-4b8e-9a61-3f9e1d0c2b7a");
    assert_eq!(r.subject.as_deref(), Some("115310627314723954"));
    assert_eq!(r.object_id.as_deref(), Some("115310627314723954"));
    assert_eq!(r.amount, None);
    assert_eq!(r.status.as_deref(), Some("enabled"));
}

#[test]
fn shopify_checkout_without_id_keys_on_token() {
    let (delivery, r) = shopify_ref("checkouts_create");
    assert!(delivery.body.get("id").is_none());
    assert_eq!(
        r.object_id.as_deref(),
        Some("e4b8a6c2f1d3079b5a8c6e4f2d1b0a98")
    );
    assert_eq!(r.object_type.as_deref(), Some("checkout"));
    assert_eq!(r.subject.as_deref(), Some("guest@example.com"));
    assert_eq!(r.amount, Some(19900));
    assert_eq!(
        r.fingerprint,
        "shopify:sendpromptly-demo.myshopify.com:checkouts/create:e4b8a6c2f1d3079b5a8c6e4f2d1b0a98"
    );
    // With an id present the token is still the key, so deliveries with and
    // without `id` agree.
    let mut fixture: Value = serde_json::from_str(shopify_fixture("checkouts_create")).unwrap();
    fixture["body"]["id"] = json!(981820079255243537u64);
    let (_, with_id) = shopify_delivery_from(&fixture);
    assert_eq!(with_id.fingerprint, r.fingerprint);
}

#[test]
fn shopify_unknown_topic_and_odd_bodies() {
    let mut fixture: Value = serde_json::from_str(shopify_fixture("orders_paid")).unwrap();
    fixture["headers"]["X-Shopify-Topic"] = json!("app/uninstalled");
    fixture["body"] =
        json!({"id": 548380009, "name": "Super Toys", "email": "super@supertoys.com"});
    let (_, r) = shopify_delivery_from(&fixture);
    assert_eq!(r.event_type, "app/uninstalled");
    assert_eq!(r.object_id.as_deref(), Some("548380009"));
    assert_eq!(r.subject.as_deref(), Some("super@supertoys.com"));
    assert_eq!(r.object_type, None);

    // An order with an amount the currency cannot hold, a JPY order, and no
    // customer at all.
    let mut fixture: Value = serde_json::from_str(shopify_fixture("orders_paid")).unwrap();
    fixture["body"]["currency"] = json!("JPY");
    fixture["body"]["total_price"] = json!("1500");
    fixture["body"]["customer"] = Value::Null;
    fixture["body"]["email"] = json!("");
    fixture["body"]["contact_email"] = Value::Null;
    let (_, r) = shopify_delivery_from(&fixture);
    assert_eq!(r.amount, Some(1500));
    assert_eq!(r.currency.as_deref(), Some("JPY"));
    assert_eq!(r.subject, None);
    fixture["body"]["total_price"] = json!("1500.5");
    assert_eq!(shopify_delivery_from(&fixture).1.amount, None);
    fixture["body"] = json!({});
    let (delivery, r) = shopify_delivery_from(&fixture);
    assert_eq!(r.object_id, None);
    assert_eq!(
        r.fingerprint,
        format!(
            "shopify:sendpromptly-demo.myshopify.com:orders/paid:evt:{}",
            delivery.dedupe_id()
        )
    );
}

#[test]
fn references_serialise() {
    let (_, r) = stripe_ref("invoice_paid");
    let value = serde_json::to_value(&r).unwrap();
    assert_eq!(value["provider"], "stripe");
    let back: EventReference = serde_json::from_value(value).unwrap();
    assert_eq!(back, r);
}
