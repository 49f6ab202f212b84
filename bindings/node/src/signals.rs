//! The fields of receipts and results filled from a verified provider event
//! or a repair callback, by the Rust SDK's own conversions
//! (`Client::receipt_for`, `EventTarget`): `index.js` builds `receiptFor`,
//! `successFor` and `failureFor` on them.

use napi_derive::napi;
use sendpromptly_client::shopify::ShopifyDelivery;
use sendpromptly_client::stripe::StripeEvent;
use sendpromptly_client::{EventKey, EventTarget, Receipt, ReceiptSource, RepairCallback};
use serde_json::{Map, Value, json};

use crate::convert;
use crate::errors::{self, validation};

const WHAT: &str = "takes a verified Stripe event (from stripe.verify or the stripe package), \
a Shopify delivery from shopify.verify, a repair callback from verifyRepairRequest, \
or { provider, eventId }";

/// A receipt as the camelCase options of `receipt()`.
fn receipt_options(receipt: &Receipt) -> Value {
    json!({
        "provider": receipt.provider.as_str(),
        "eventId": receipt.event_id,
        "eventType": receipt.event_type,
        "subject": receipt.subject,
        "metadata": receipt.metadata,
        "occurredAt": receipt.occurred_at.map(|t| t.to_rfc3339()),
    })
}

/// An event key (and the reprocess it answers) as camelCase result options.
fn target_options(key: EventKey, reprocess_id: Option<&str>) -> Value {
    json!({
        "provider": key.provider.as_str(),
        "eventId": key.event_id,
        "reprocessId": reprocess_id,
    })
}

/// `{ receipt, target }` of a verified Shopify delivery (attached by
/// `shopify.verify`, whose body may hold integers JSON cannot carry back).
pub fn shopify_fields(delivery: &ShopifyDelivery) -> Value {
    json!({
        "receipt": receipt_options(&delivery.to_receipt()),
        "target": target_options(delivery.event_key(), None),
    })
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    object.get(name).and_then(Value::as_str)
}

/// `{ receipt, target }` for a Stripe event, a repair callback or an
/// explicit `{ provider, eventId, reprocessId? }`; `receipt` is `null` when
/// the value carries no event type.
#[napi(js_name = "nativeSignalFields", catch_unwind)]
pub fn native_signal_fields(value: Value) -> napi::Result<Value> {
    let bad = |message: String| errors::client(&validation("event", message));
    let Value::Object(object) = &value else {
        return Err(bad(format!("receiptFor/successFor/failureFor {WHAT}")));
    };
    if object.contains_key("reprocess_id") && object.contains_key("event") {
        let callback: RepairCallback = serde_json::from_value(value.clone())
            .map_err(|err| bad(format!("not a repair callback ({err}); {WHAT}")))?;
        return Ok(json!({
            "receipt": null,
            "target": target_options(callback.event_key(), callback.reprocess_id()),
        }));
    }
    if field(object, "object") == Some("event") {
        let event = StripeEvent::from_value(value.clone())
            .map_err(|err| bad(format!("not a Stripe event ({err}); {WHAT}")))?;
        return Ok(json!({
            "receipt": receipt_options(&event.to_receipt()),
            "target": target_options(event.event_key(), None),
        }));
    }
    if object.contains_key("topic") && object.contains_key("webhookId") {
        return Err(bad(format!(
            "this Shopify delivery lost the fields shopify.verify attached (a copy?): pass the object it returned; {WHAT}"
        )));
    }
    let (Some(provider), Some(event_id)) = (field(object, "provider"), field(object, "eventId"))
    else {
        return Err(bad(format!(
            "got an object without provider and eventId; {WHAT}"
        )));
    };
    let provider = convert::provider(provider).map_err(|err| errors::client(&err))?;
    let key = EventKey {
        provider,
        event_id: event_id.to_owned(),
    };
    let receipt = field(object, "eventType").map(|event_type| {
        json!({ "provider": provider.as_str(), "eventId": event_id, "eventType": event_type })
    });
    Ok(json!({
        "receipt": receipt,
        "target": target_options(key, field(object, "reprocessId")),
    }))
}
