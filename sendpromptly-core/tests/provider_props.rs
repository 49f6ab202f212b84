//! Property tests: parsers and verifiers never panic, whatever the input, and
//! what we sign always verifies.

use proptest::prelude::*;
use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::verify_repair_request;
use sendpromptly_core::provider_event::{EventReference, decimal_to_minor_units};
use sendpromptly_core::shopify;
use sendpromptly_core::standard_webhooks::{self, SigningSecret};
use sendpromptly_core::stripe::{self, StripeEvent};
use serde_json::Value;

fn secret() -> SigningSecret {
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap()
}

/// Arbitrary JSON, biased towards the keys the parsers look at.
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("type".to_owned()),
        Just("object".to_owned()),
        Just("data".to_owned()),
        Just("customer".to_owned()),
        Just("amount".to_owned()),
        Just("amount_total".to_owned()),
        Just("currency".to_owned()),
        Just("total_price".to_owned()),
        Just("token".to_owned()),
        Just("email".to_owned()),
        Just("parent".to_owned()),
        Just("subscription_details".to_owned()),
        Just("subscription".to_owned()),
        Just("items".to_owned()),
        Just("price".to_owned()),
        Just("unit_amount".to_owned()),
        Just("quantity".to_owned()),
        Just("charge".to_owned()),
        Just("previous_attributes".to_owned()),
        Just("created".to_owned()),
        Just("updated_at".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "-?[0-9]{0,20}(\\.[0-9]{0,4})?".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn stripe_header_parser_never_panics(header in ".{0,200}", t in "[-+]?[0-9]{0,25}", sig in "[0-9a-f,=v ]{0,80}") {
        let _ = stripe::parse_signature_header(&header);
        let _ = stripe::parse_signature_header(&format!("t={t},v1={sig}"));
        let _ = stripe::verify_header(b"{}", &header, "whsec_x", 300, Timestamp::from_unix_seconds(0));
        let _ = stripe::construct_event(header.as_bytes(), &format!("t={t},v1={sig}"), "s", Timestamp::from_unix_millis(i64::MIN));
    }

    #[test]
    fn stripe_signed_bodies_verify(body in prop::collection::vec(any::<u8>(), 0..300), t in 0i64..4_000_000_000, age in 0i64..=300) {
        let header = stripe::generate_test_header(&body, "whsec_prop", t);
        let now = Timestamp::from_unix_seconds(t + age);
        prop_assert!(stripe::verify_header(&body, &header, "whsec_prop", 300, now).is_ok());
        let mut tampered = body.clone();
        tampered.push(b' ');
        prop_assert_eq!(
            stripe::verify_header(&tampered, &header, "whsec_prop", 300, now).unwrap_err(),
            stripe::StripeError::NoMatchingSignature
        );
    }

    #[test]
    fn stripe_event_parser_never_panics(value in arb_json(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = StripeEvent::from_slice(&bytes);
        if let Ok(event) = StripeEvent::from_value(value.clone()) {
            let _ = EventReference::from_stripe_event(&event);
        }
        // Wrapped as an event with arbitrary data.object and type.
        for kind in ["checkout.session.completed", "invoice.paid", "customer.subscription.updated",
                     "customer.subscription.deleted", "charge.refunded", "charge.dispute.created",
                     "charge.refund.updated", "customer.created", "x"] {
            let wrapped = serde_json::json!({"id": "evt_p", "type": kind, "created": 1,
                "data": {"object": value.clone(), "previous_attributes": value.clone()}});
            let event = StripeEvent::from_value(wrapped).unwrap();
            let reference = EventReference::from_stripe_event(&event);
            prop_assert!(reference.fingerprint.starts_with("stripe:"));
        }
    }

    #[test]
    fn shopify_parsers_never_panic(value in arb_json(), hmac in ".{0,60}", topic in "[a-z_]{0,10}/?[a-z_]{0,10}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let headers = vec![
            ("X-Shopify-Hmac-Sha256".to_owned(), hmac.clone()),
            ("X-Shopify-Topic".to_owned(), topic.clone()),
            ("X-Shopify-API-Version".to_owned(), "2025-07".to_owned()),
            ("X-Shopify-Shop-Domain".to_owned(), "s.myshopify.com".to_owned()),
            ("X-Shopify-Webhook-Id".to_owned(), hmac.clone()),
            ("X-Shopify-Triggered-At".to_owned(), hmac.clone()),
        ];
        let _ = shopify::verify(&bytes, &headers, &["secret"]);
        let _ = shopify::verify_hmac(&bytes, &hmac, &["secret", ""]);
        let body = serde_json::to_vec(&value).unwrap();
        if let Ok(delivery) = shopify::parse_delivery(&body, &headers) {
            let reference = EventReference::from_shopify_delivery(&delivery);
            prop_assert!(reference.fingerprint.starts_with("shopify:"));
        }
        for fixed in ["orders/paid", "orders/fulfilled", "customers/create", "checkouts/create", "orders/updated"] {
            let mut headers = headers.clone();
            headers[1].1 = fixed.to_owned();
            headers[0].1 = shopify::compute_hmac(&body, "secret");
            if let Ok(delivery) = shopify::verify(&body, &headers, &["secret"]) {
                let _ = EventReference::from_shopify_delivery(&delivery);
            }
        }
    }

    #[test]
    fn standard_webhooks_never_panics(id in ".{0,40}", ts in ".{0,30}", sig in ".{0,120}", body in prop::collection::vec(any::<u8>(), 0..200), now in any::<i64>()) {
        let headers = [("webhook-id", id.as_str()), ("webhook-timestamp", ts.as_str()), ("webhook-signature", sig.as_str())];
        let now = Timestamp::from_unix_millis(now);
        let _ = standard_webhooks::verify(&headers, &body, &[secret()], now);
        let _ = verify_repair_request(&body, &headers, &[secret()], now);
        let _ = SigningSecret::parse(&sig);
        let _ = standard_webhooks::sign_headers(&id, now, &body, &[secret()]);
    }

    #[test]
    fn standard_webhooks_signed_messages_verify(id in "[a-zA-Z0-9_]{1,40}", body in prop::collection::vec(any::<u8>(), 0..300), secs in 0i64..4_000_000_000, skew in -300i64..=300) {
        let now = Timestamp::from_unix_seconds(secs);
        let headers = standard_webhooks::sign_headers(&id, now, &body, &[secret()]).unwrap();
        let verified = standard_webhooks::verify(&headers, &body, &[secret()], now.plus_seconds(skew)).unwrap();
        prop_assert_eq!(verified.id, id);
    }

    #[test]
    fn decimal_conversion_never_panics(text in ".{0,30}", number in "-?[0-9]{0,19}(\\.[0-9]{0,5})?", currency in "[A-Za-z]{3}") {
        let _ = decimal_to_minor_units(&text, &currency);
        let _ = decimal_to_minor_units(&number, &currency);
    }
}
