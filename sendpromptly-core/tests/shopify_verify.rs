//! X-Shopify-Hmac-Sha256 verification and delivery parsing.

use std::collections::BTreeMap;

use sendpromptly_core::Timestamp;
use sendpromptly_core::shopify::{ShopifyError, compute_hmac, parse_delivery, verify, verify_hmac};
use sendpromptly_core::standard_webhooks::ErrorCategory;

const VECTOR_BODY: &[u8] = include_bytes!("fixtures/vectors/shopify_vector_body.txt");
const VECTOR_SECRET: &str = "test_secret_key";
const VECTOR_HMAC: &str = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";

fn headers(hmac: &str) -> Vec<(String, String)> {
    [
        ("X-Shopify-Hmac-Sha256", hmac),
        ("X-Shopify-Topic", "orders/paid"),
        ("X-Shopify-API-Version", "2025-07"),
        ("X-Shopify-Shop-Domain", "demo.myshopify.com"),
        (
            "X-Shopify-Webhook-Id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ),
        ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
        ("X-Shopify-Triggered-At", "2026-11-28T10:00:00.123456789Z"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn without(mut h: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    h
}

#[test]
fn published_vector() {
    assert_eq!(VECTOR_BODY, br#"{"foo": "bar"}"#);
    assert_eq!(compute_hmac(VECTOR_BODY, VECTOR_SECRET), VECTOR_HMAC);
    verify_hmac(VECTOR_BODY, VECTOR_HMAC, &[VECTOR_SECRET]).unwrap();
    let delivery = verify(VECTOR_BODY, &headers(VECTOR_HMAC), &[VECTOR_SECRET]).unwrap();
    assert_eq!(delivery.topic, "orders/paid");
    assert_eq!(delivery.shop_domain, "demo.myshopify.com");
    assert_eq!(delivery.webhook_id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    assert_eq!(
        delivery.event_id.as_deref(),
        Some("98880550-7158-44d4-b7cd-2c97c8a091b5")
    );
    assert_eq!(delivery.dedupe_id(), "98880550-7158-44d4-b7cd-2c97c8a091b5");
    assert_eq!(delivery.api_version, "2025-07");
    assert_eq!(
        delivery.triggered_at,
        Some(Timestamp::parse_rfc3339("2026-11-28T10:00:00.123Z").unwrap())
    );
    assert_eq!(delivery.body["foo"], "bar");
}

#[test]
fn tampered_or_wrong_secret_fails() {
    let err = verify_hmac(br#"{"foo": "baz"}"#, VECTOR_HMAC, &[VECTOR_SECRET]).unwrap_err();
    assert_eq!(err, ShopifyError::InvalidHmac { secrets: 1 });
    assert_eq!(err.category(), ErrorCategory::BadSignature);
    // Re-serialised body (no space) fails too.
    assert!(verify_hmac(br#"{"foo":"bar"}"#, VECTOR_HMAC, &[VECTOR_SECRET]).is_err());
    assert!(verify_hmac(VECTOR_BODY, VECTOR_HMAC, &["other"]).is_err());
    assert!(verify_hmac(VECTOR_BODY, "", &[VECTOR_SECRET]).is_err());
    assert!(verify_hmac(VECTOR_BODY, "not base64", &[VECTOR_SECRET]).is_err());
    // Hex of the same MAC is not accepted (Shopify sends base64).
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(VECTOR_HMAC)
        .unwrap();
    assert!(verify_hmac(VECTOR_BODY, &hex::encode(raw), &[VECTOR_SECRET]).is_err());
    // Surrounding whitespace is tolerated.
    verify_hmac(VECTOR_BODY, &format!(" {VECTOR_HMAC} "), &[VECTOR_SECRET]).unwrap();
}

#[test]
fn rotation_accepts_old_and_new_secret() {
    let secrets = ["new_secret_after_rotation", VECTOR_SECRET];
    verify(VECTOR_BODY, &headers(VECTOR_HMAC), &secrets).unwrap();
    let new_hmac = compute_hmac(VECTOR_BODY, "new_secret_after_rotation");
    verify(VECTOR_BODY, &headers(&new_hmac), &secrets).unwrap();
    let owned: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    verify(VECTOR_BODY, &headers(&new_hmac), &owned).unwrap();
    assert_eq!(
        verify(VECTOR_BODY, &headers(VECTOR_HMAC), &["a", "b", "c"]).unwrap_err(),
        ShopifyError::InvalidHmac { secrets: 3 }
    );
}

#[test]
fn secrets_must_be_configured() {
    let none: [&str; 0] = [];
    assert_eq!(
        verify(VECTOR_BODY, &headers(VECTOR_HMAC), &none).unwrap_err(),
        ShopifyError::NoSecrets
    );
    assert_eq!(
        verify(VECTOR_BODY, &headers(VECTOR_HMAC), &[""]).unwrap_err(),
        ShopifyError::NoSecrets
    );
    assert_eq!(
        ShopifyError::NoSecrets.category(),
        ErrorCategory::Configuration
    );
}

#[test]
fn missing_headers_are_all_named() {
    let h = without(
        without(headers(VECTOR_HMAC), "X-Shopify-Topic"),
        "x-shopify-shop-domain",
    );
    let err = verify(VECTOR_BODY, &h, &[VECTOR_SECRET]).unwrap_err();
    assert_eq!(
        err,
        ShopifyError::MissingHeaders {
            names: vec!["X-Shopify-Topic", "X-Shopify-Shop-Domain"]
        }
    );
    assert!(
        err.to_string()
            .contains("X-Shopify-Topic, X-Shopify-Shop-Domain")
    );
    for name in [
        "X-Shopify-Hmac-Sha256",
        "X-Shopify-API-Version",
        "X-Shopify-Webhook-Id",
    ] {
        let err = verify(
            VECTOR_BODY,
            &without(headers(VECTOR_HMAC), name),
            &[VECTOR_SECRET],
        )
        .unwrap_err();
        assert_eq!(err, ShopifyError::MissingHeaders { names: vec![name] });
        assert_eq!(err.category(), ErrorCategory::Malformed);
    }
    // Empty values count as missing.
    let mut h = without(headers(VECTOR_HMAC), "X-Shopify-Topic");
    h.push(("X-Shopify-Topic".into(), "  ".into()));
    assert!(matches!(
        verify(VECTOR_BODY, &h, &[VECTOR_SECRET]).unwrap_err(),
        ShopifyError::MissingHeaders { .. }
    ));
    // Event id and triggered-at are optional; the webhook id stands in.
    let h = without(
        without(headers(VECTOR_HMAC), "X-Shopify-Event-Id"),
        "X-Shopify-Triggered-At",
    );
    let delivery = verify(VECTOR_BODY, &h, &[VECTOR_SECRET]).unwrap();
    assert_eq!(delivery.event_id, None);
    assert_eq!(delivery.triggered_at, None);
    assert_eq!(delivery.dedupe_id(), "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
}

#[test]
fn body_errors() {
    let h = headers(&compute_hmac(b"", VECTOR_SECRET));
    assert_eq!(
        verify(b"", &h, &[VECTOR_SECRET]).unwrap_err(),
        ShopifyError::EmptyBody
    );
    for body in [b"not json".as_slice(), b"[1,2,3]", b"\"str\"", b"{\"a\":"] {
        let h = headers(&compute_hmac(body, VECTOR_SECRET));
        let err = verify(body, &h, &[VECTOR_SECRET]).unwrap_err();
        assert!(matches!(err, ShopifyError::InvalidJson { .. }), "{err}");
        assert_eq!(err.category(), ErrorCategory::Malformed);
    }
    // The HMAC is checked before the JSON: a forged non-JSON body is a bad
    // signature, not a parse error.
    assert!(matches!(
        verify(b"not json", &headers(VECTOR_HMAC), &[VECTOR_SECRET]).unwrap_err(),
        ShopifyError::InvalidHmac { .. }
    ));
}

#[test]
fn header_containers_and_case() {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers(VECTOR_HMAC) {
        map.insert(
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    verify(VECTOR_BODY, &map, &[VECTOR_SECRET]).unwrap();
    let tree: BTreeMap<String, String> = headers(VECTOR_HMAC)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect();
    verify(VECTOR_BODY, &tree, &[VECTOR_SECRET]).unwrap();
}

#[test]
fn parse_without_verification() {
    let h = without(headers(VECTOR_HMAC), "X-Shopify-Hmac-Sha256");
    let delivery = parse_delivery(VECTOR_BODY, &h).unwrap();
    assert_eq!(delivery.topic, "orders/paid");
    // An unparseable Triggered-At is dropped, not fatal.
    let mut h = without(h, "X-Shopify-Triggered-At");
    h.push(("X-Shopify-Triggered-At".into(), "yesterday".into()));
    assert_eq!(parse_delivery(VECTOR_BODY, &h).unwrap().triggered_at, None);
}
