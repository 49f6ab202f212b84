//! Signature verification: repair callbacks (Standard Webhooks), Stripe and
//! Shopify webhooks, and the verified objects they return. Each is the core
//! crate's verifier; this only converts arguments and answers.

use std::collections::HashMap;
use std::sync::Arc;

use sendpromptly_client::{self as sdk, ReceiptSource, Timestamp, now, shopify, stripe};

use crate::errors::{SendPromptlyError, SignatureVerificationError};
use crate::types::{EventRef, Provider, Receipt, json_text};

/// A verified Stripe event.
#[derive(Debug, uniffi::Object)]
pub struct StripeEvent(stripe::StripeEvent);

#[uniffi::export]
impl StripeEvent {
    /// `id` (`evt_…`).
    pub fn id(&self) -> String {
        self.0.id.clone()
    }
    /// `type`, e.g. `invoice.paid`.
    pub fn event_type(&self) -> String {
        self.0.event_type.clone()
    }
    /// `livemode`: false for test-mode events.
    pub fn livemode(&self) -> bool {
        self.0.livemode
    }
    /// `created`, RFC 3339.
    pub fn created(&self) -> Option<String> {
        self.0.created.map(Timestamp::to_rfc3339)
    }
    /// `data.object` as JSON text.
    pub fn object_json(&self) -> String {
        self.0.object.to_string()
    }
    /// The whole event as JSON text.
    pub fn json(&self) -> String {
        self.0.raw.to_string()
    }
    /// A receipt filled from the event: provider, id, type, subject (the
    /// customer), `occurred_at` and object metadata (id, amount, currency,
    /// status). Add `effect` etc. before sending it.
    pub fn to_receipt(&self) -> Receipt {
        self.0.to_receipt().into()
    }
    /// The event's reference, for `success` / `failure`.
    pub fn target(&self) -> EventRef {
        EventRef::of(&self.0)
    }
}

/// A verified Shopify webhook delivery.
#[derive(Debug, uniffi::Object)]
pub struct ShopifyDelivery(shopify::ShopifyDelivery);

#[uniffi::export]
impl ShopifyDelivery {
    /// `X-Shopify-Topic`, e.g. `orders/paid`.
    pub fn topic(&self) -> String {
        self.0.topic.clone()
    }
    /// `X-Shopify-Sub-Topic`, when present.
    pub fn sub_topic(&self) -> Option<String> {
        self.0.sub_topic.clone()
    }
    /// `X-Shopify-Shop-Domain`.
    pub fn shop_domain(&self) -> String {
        self.0.shop_domain.clone()
    }
    /// `X-Shopify-Webhook-Id` (unique per delivery).
    pub fn webhook_id(&self) -> String {
        self.0.webhook_id.clone()
    }
    /// `X-Shopify-Event-Id` (shared by every delivery of one event).
    pub fn event_id(&self) -> Option<String> {
        self.0.event_id.clone()
    }
    /// The id that identifies the event across retries.
    pub fn dedupe_id(&self) -> String {
        self.0.dedupe_id().to_owned()
    }
    /// `X-Shopify-Triggered-At`, RFC 3339.
    pub fn triggered_at(&self) -> Option<String> {
        self.0.triggered_at.map(Timestamp::to_rfc3339)
    }
    /// `X-Shopify-API-Version`.
    pub fn api_version(&self) -> String {
        self.0.api_version.clone()
    }
    /// The body as JSON text.
    pub fn body_json(&self) -> String {
        self.0.body.to_string()
    }
    /// A receipt filled from the delivery.
    pub fn to_receipt(&self) -> Receipt {
        self.0.to_receipt().into()
    }
    /// The delivery's event reference, for `success` / `failure`.
    pub fn target(&self) -> EventRef {
        EventRef::of(&self.0)
    }
}

/// The event a repair callback asks the app to process again, as its
/// receipt reported it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RepairEvent {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The customer or account.
    pub subject: Option<String>,
    /// The expected business effect.
    pub effect: Option<String>,
    /// The receipt's metadata (JSON object).
    pub metadata_json: Option<String>,
}

/// A verified repair callback.
#[derive(Debug, uniffi::Object)]
pub struct RepairCallback(sdk::RepairCallback);

#[uniffi::export]
impl RepairCallback {
    /// The `rep_…` id (equal to the `webhook-id` header).
    pub fn reprocess_id(&self) -> String {
        self.0.reprocess_id.clone()
    }
    /// The `inc_…` incident being repaired.
    pub fn incident_id(&self) -> String {
        self.0.incident_id.clone()
    }
    /// Delivery attempt, from 1.
    pub fn attempt(&self) -> i32 {
        crate::errors::int(self.0.attempt)
    }
    /// When the reprocess was requested (RFC 3339).
    pub fn requested_at(&self) -> String {
        self.0.requested_at.to_rfc3339()
    }
    /// Who asked, e.g. `console:alice@example.com`.
    pub fn requested_by(&self) -> String {
        self.0.requested_by.clone()
    }
    /// The event to process again.
    pub fn event(&self) -> RepairEvent {
        let e = &self.0.event;
        RepairEvent {
            provider: e.provider.into(),
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            subject: e.subject.clone(),
            effect: e.effect.clone(),
            metadata_json: e
                .metadata
                .clone()
                .map(|m| serde_json::Value::Object(m).to_string()),
        }
    }
    /// The event and this reprocess id, for `success` / `failure`: the
    /// result is linked to the repair.
    pub fn target(&self) -> EventRef {
        EventRef::of(&self.0)
    }
    /// The callback body as JSON text.
    pub fn json(&self) -> Result<String, SendPromptlyError> {
        json_text(&self.0)
    }
}

/// Verifies a SendPromptly repair callback against any of `secrets`
/// (`whsec_…`; two during a rotation) at the current time (±5 minutes).
/// `body` must be the raw request body; header names match in any case.
#[uniffi::export]
pub fn verify_repair_request(
    body: Vec<u8>,
    headers: HashMap<String, String>,
    secrets: Vec<String>,
) -> Result<Arc<RepairCallback>, SignatureVerificationError> {
    sdk::verify_repair_request(&body, &headers, &secrets)
        .map(|callback| Arc::new(RepairCallback(callback)))
        .map_err(|err| match &err {
            // Name the precise cause of a signature failure, not `signature`.
            sdk::RepairCallbackError::Signature(inner) => {
                SignatureVerificationError::new("sendpromptly", err.category(), inner)
            }
            _ => SignatureVerificationError::new("sendpromptly", err.category(), &err),
        })
}

/// Verifies a Stripe webhook (the `Stripe-Signature` header, the endpoint
/// secret `whsec_…`; `tolerance_seconds` default 300) and returns the event.
#[uniffi::export(default(tolerance_seconds = None))]
pub fn stripe_verify(
    payload: Vec<u8>,
    signature_header: String,
    secret: String,
    tolerance_seconds: Option<i64>,
) -> Result<Arc<StripeEvent>, SignatureVerificationError> {
    // A negative tolerance accepts nothing but the exact second: treat it as 0.
    let tolerance = tolerance_seconds.map_or(stripe::DEFAULT_TOLERANCE_SECONDS, |t| {
        u64::try_from(t).unwrap_or(0)
    });
    stripe::construct_event_with_tolerance(&payload, &signature_header, &secret, tolerance, now())
        .map(|event| Arc::new(StripeEvent(event)))
        .map_err(|err| SignatureVerificationError::new("stripe", err.category(), &err))
}

/// Verifies a Shopify webhook (`X-Shopify-Hmac-Sha256` against any of
/// `secrets`) and returns the delivery.
#[uniffi::export]
pub fn shopify_verify(
    body: Vec<u8>,
    headers: HashMap<String, String>,
    secrets: Vec<String>,
) -> Result<Arc<ShopifyDelivery>, SignatureVerificationError> {
    shopify::verify(&body, &headers, &secrets)
        .map(|delivery| Arc::new(ShopifyDelivery(delivery)))
        .map_err(|err| SignatureVerificationError::new("shopify", err.category(), &err))
}
