//! Stripe event JSON → StripeEvent → EventReference never panics; also with
//! the arbitrary JSON placed under each supported type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::provider_event::EventReference;
use sendpromptly_core::stripe::StripeEvent;

const TYPES: [&str; 7] = [
    "checkout.session.completed",
    "invoice.paid",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
    "charge.dispute.created",
    "something.new",
];

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = StripeEvent::from_slice(data) {
        let reference = EventReference::from_stripe_event(&event);
        assert_eq!(reference.event_id, event.id);
    }
    if let Ok(object) = serde_json::from_slice::<serde_json::Value>(data) {
        let kind = TYPES[data.len() % TYPES.len()];
        let wrapped = serde_json::json!({
            "id": "evt_fuzz", "type": kind, "created": 1,
            "data": {"object": object.clone(), "previous_attributes": object},
        });
        if let Ok(event) = StripeEvent::from_value(wrapped) {
            let _ = EventReference::from_stripe_event(&event);
        }
    }
});
