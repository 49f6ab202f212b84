//! Shopify delivery (topic line + JSON body) → EventReference never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::provider_event::EventReference;
use sendpromptly_core::shopify;

const TOPICS: [&str; 6] = [
    "orders/paid",
    "orders/fulfilled",
    "customers/create",
    "checkouts/create",
    "orders/updated",
    "app/uninstalled",
];

fuzz_target!(|data: &[u8]| {
    let topic = TOPICS[data.len() % TOPICS.len()];
    let headers = [
        ("X-Shopify-Topic", topic),
        ("X-Shopify-API-Version", "2025-07"),
        ("X-Shopify-Shop-Domain", "fuzz.myshopify.com"),
        ("X-Shopify-Webhook-Id", "wh_fuzz"),
    ];
    if let Ok(delivery) = shopify::parse_delivery(data, &headers) {
        let reference = EventReference::from_shopify_delivery(&delivery);
        assert_eq!(reference.event_type, topic);
    }
});
