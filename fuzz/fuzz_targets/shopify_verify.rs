//! X-Shopify-Hmac-Sha256 verification and delivery parsing on arbitrary
//! headers and bodies; a body signed by us always passes the HMAC check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::shopify::{self, ShopifyError};

const SECRETS: [&str; 2] = ["shpss_new", "shpss_old"];

fuzz_target!(|data: &[u8]| {
    // Lines: hmac, topic, shop domain, webhook id, triggered-at, then body.
    let mut parts = data.splitn(6, |&b| b == b'\n');
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (hmac, topic, shop, webhook_id, triggered_at) = (next(), next(), next(), next(), next());
    let body = parts.next().unwrap_or_default();
    let mut headers = vec![
        ("X-Shopify-Hmac-Sha256".to_owned(), hmac.clone()),
        ("X-Shopify-Topic".to_owned(), topic),
        ("X-Shopify-API-Version".to_owned(), "2025-07".to_owned()),
        ("X-Shopify-Shop-Domain".to_owned(), shop),
        ("X-Shopify-Webhook-Id".to_owned(), webhook_id),
        ("X-Shopify-Triggered-At".to_owned(), triggered_at),
    ];
    let _ = shopify::verify_hmac(body, &hmac, &SECRETS);
    let _ = shopify::verify(body, &headers, &SECRETS);
    let _ = shopify::parse_delivery(body, &headers);

    headers[0].1 = shopify::compute_hmac(body, SECRETS[1]);
    assert!(shopify::verify_hmac(body, &headers[0].1, &SECRETS).is_ok());
    if let Err(err) = shopify::verify(body, &headers, &SECRETS) {
        assert!(!matches!(err, ShopifyError::InvalidHmac { .. }));
    }
});
