//! Signature verification: repair callbacks (Standard Webhooks), Stripe and
//! Shopify webhooks. Synchronous (an HMAC over the body) and panic-free;
//! every failure is a signature error naming its category.

use std::collections::HashMap;

use napi::bindgen_prelude::Uint8Array;
use napi_derive::napi;
use sendpromptly_client::{RepairCallbackError, now, shopify, stripe, verify_repair_request};
use serde_json::{Value, json};

use crate::errors;

/// Verifies a SendPromptly repair callback against any of `secrets`
/// (`whsec_…`; two during a rotation), ±5 minutes, and returns its parsed
/// body. `headers` must have lower- or any-case names.
#[napi(js_name = "nativeVerifyRepairRequest", catch_unwind)]
pub fn native_verify_repair_request(
    body: Uint8Array,
    headers: HashMap<String, String>,
    secrets: Vec<String>,
) -> napi::Result<Value> {
    match verify_repair_request(&body, &headers, &secrets) {
        Ok(callback) => serde_json::to_value(&callback).map_err(|err| {
            errors::to_napi(
                json!({"kind": "decode", "type": "decode_error", "message": err.to_string()}),
            )
        }),
        Err(err) => Err(match &err {
            // Name the precise cause of a signature failure, not `signature`.
            RepairCallbackError::Signature(inner) => {
                errors::signature("sendpromptly", err.category(), inner)
            }
            _ => errors::signature("sendpromptly", err.category(), &err),
        }),
    }
}

/// Verifies a Stripe webhook (`Stripe-Signature` header, endpoint secret
/// `whsec_…`, `toleranceSeconds` default 300) and returns the event.
#[napi(js_name = "nativeStripeVerify", catch_unwind)]
pub fn native_stripe_verify(
    payload: Uint8Array,
    signature_header: String,
    secret: String,
    tolerance_seconds: Option<f64>,
) -> napi::Result<Value> {
    let tolerance = match tolerance_seconds {
        None => stripe::DEFAULT_TOLERANCE_SECONDS,
        Some(t) if t.is_finite() && t >= 0.0 => t.min(1e12) as u64,
        Some(t) => {
            return Err(errors::to_napi(json!({
                "kind": "config", "type": "configuration_error",
                "message": format!("tolerance must be a number of seconds, at least 0, got {t}"),
            })));
        }
    };
    stripe::construct_event_with_tolerance(&payload, &signature_header, &secret, tolerance, now())
        .map(|event| event.raw)
        .map_err(|err| errors::signature("stripe", err.category(), &err))
}

/// Verifies a Shopify webhook (`X-Shopify-Hmac-Sha256` against any of
/// `secrets`) and returns its topic, ids and parsed body.
#[napi(js_name = "nativeShopifyVerify", catch_unwind)]
pub fn native_shopify_verify(
    body: Uint8Array,
    headers: HashMap<String, String>,
    secrets: Vec<String>,
) -> napi::Result<Value> {
    let delivery = shopify::verify(&body, &headers, &secrets)
        .map_err(|err| errors::signature("shopify", err.category(), &err))?;
    Ok(json!({
        "topic": delivery.topic,
        "subTopic": delivery.sub_topic,
        "shopDomain": delivery.shop_domain,
        "webhookId": delivery.webhook_id,
        "eventId": delivery.event_id,
        "dedupeId": delivery.dedupe_id(),
        "triggeredAt": delivery.triggered_at.map(|t| t.to_rfc3339()),
        "apiVersion": delivery.api_version,
        "body": delivery.body,
        // Moved by `index.js` out of sight (receiptFor/successFor read it).
        "signalFields": crate::signals::shopify_fields(&delivery),
    }))
}

/// A signal's trace context: `traceparent` and the `tracestate` kept with it.
#[napi(object)]
pub struct TraceContext {
    /// The W3C `traceparent`.
    pub traceparent: String,
    /// The `tracestate`, when it is valid W3C.
    pub tracestate: Option<String>,
}

/// The trace context of an OpenTelemetry span context (`traceId`, `spanId`
/// as lowercase hex, `traceFlags`, the serialised `traceState`), formatted
/// and checked by the core: `null` for an invalid context; a `tracestate`
/// the core would refuse is dropped, so tracing never fails a signal.
#[napi(js_name = "nativeTraceContext", catch_unwind)]
pub fn native_trace_context(
    trace_id: String,
    span_id: String,
    trace_flags: u32,
    trace_state: Option<String>,
) -> Option<TraceContext> {
    use sendpromptly_client::core::trace::{TraceParent, validate_tracestate};
    let mut parent = TraceParent {
        trace_id: [0; 16],
        span_id: [0; 8],
        flags: u8::try_from(trace_flags).ok()?,
    };
    hex::decode_to_slice(&trace_id, &mut parent.trace_id).ok()?;
    hex::decode_to_slice(&span_id, &mut parent.span_id).ok()?;
    let traceparent = parent.to_string();
    TraceParent::parse(&traceparent).ok()?;
    Some(TraceContext {
        traceparent,
        tracestate: trace_state.filter(|s| !s.is_empty() && validate_tracestate(s).is_ok()),
    })
}

/// `{ traceId, spanId, traceFlags }` of a valid W3C `traceparent` (as a
/// repair callback carries it), for an OpenTelemetry parent context; `null`
/// when it is not valid.
#[napi(object)]
pub struct TraceParentParts {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The trace flags (bit 0: sampled).
    pub trace_flags: u32,
}

/// Parses a `traceparent` with the core's strict W3C rules.
#[napi(js_name = "nativeParseTraceparent", catch_unwind)]
pub fn native_parse_traceparent(traceparent: String) -> Option<TraceParentParts> {
    let parent = sendpromptly_client::core::trace::TraceParent::parse(&traceparent).ok()?;
    Some(TraceParentParts {
        trace_id: parent.trace_id_hex(),
        span_id: parent.span_id_hex(),
        trace_flags: u32::from(parent.flags),
    })
}
