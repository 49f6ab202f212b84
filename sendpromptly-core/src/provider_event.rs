//! [`EventReference`]: one normalised view of a verified provider event — who
//! it is for, what object it is about, how much money — so the receipt an app
//! sends, the search by customer and the incident list look the same for
//! Stripe and Shopify.
//!
//! The per-type choices (which field is the subject, the object id and the
//! amount) are tabulated in `docs/providers.md`. Types and topics without a
//! dedicated rule still produce a reference, using generic fields (`id`,
//! `customer`, `amount`, …) where present.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::Timestamp;
use crate::model::Provider;
use crate::shopify::ShopifyDelivery;
use crate::stripe::StripeEvent;

/// A provider event reduced to what SendPromptly tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventReference {
    /// Where the event came from.
    pub provider: Provider,
    /// The provider's event id: Stripe `evt_…`; Shopify `X-Shopify-Event-Id`,
    /// else `X-Shopify-Webhook-Id`.
    pub event_id: String,
    /// Stripe `type` or Shopify topic.
    pub event_type: String,
    /// The customer/account the business effect is for (see
    /// `docs/providers.md`).
    pub subject: Option<String>,
    /// The id of the object the event is about (`cs_…`, `in_…`, an order id,
    /// a checkout token, …).
    pub object_id: Option<String>,
    /// The kind of that object (`checkout.session`, `invoice`, `order`, …).
    pub object_type: Option<String>,
    /// A related parent object: an invoice's or session's subscription, a
    /// dispute's or refund's charge, a charge's payment intent.
    pub parent_object_id: Option<String>,
    /// The amount in minor units (cents), when the object carries one.
    pub amount: Option<i64>,
    /// ISO 4217 currency code in upper case (`USD`).
    pub currency: Option<String>,
    /// The object's state as the provider reports it (e.g. a checkout
    /// session's `payment_status`, which may be `unpaid`).
    pub status: Option<String>,
    /// When the event happened (Stripe `created`; Shopify
    /// `X-Shopify-Triggered-At`, else the body's `updated_at`/`created_at`).
    pub occurred_at: Option<Timestamp>,
    /// `false` for test-mode events, when the provider says.
    pub livemode: Option<bool>,
    /// The account the event was delivered for: Stripe Connect `account`,
    /// Shopify shop domain.
    pub account: Option<String>,
    /// A key shared by distinct event ids that describe the same object
    /// change (see [`EventReference::fingerprint`] rules in
    /// `docs/providers.md`).
    pub fingerprint: String,
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut current = value;
    for key in path {
        current = current.get(key)?;
    }
    current.as_str().filter(|s| !s.is_empty())
}

/// The id of a field that is either an id string or an expanded object.
fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Object(object) => match object.get("id")? {
            Value::String(id) if !id.is_empty() => Some(id.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn owned(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

fn upper(value: Option<&str>) -> Option<String> {
    value.map(str::to_ascii_uppercase)
}

/// Writes `value` as JSON with object keys sorted, so the hash does not
/// depend on key order.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(inner) = map.get(key) {
                    canonical_json(inner, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The first 16 hex digits of the SHA-256 of `value`'s canonical JSON.
fn short_hash(value: &Value) -> String {
    let mut text = String::new();
    canonical_json(value, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(16);
    for byte in digest.iter().take(8) {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn is_update(event_type: &str) -> bool {
    event_type.ends_with(".updated")
        || event_type.ends_with("/updated")
        || event_type.ends_with("/update")
}

// ---------------------------------------------------------------- Stripe

fn stripe_subject_for_customerish(object: &Value) -> Option<String> {
    id_of(object.get("customer"))
}

fn stripe_subscription_amount(object: &Value) -> Option<i64> {
    let items = object.get("items")?.get("data")?.as_array()?;
    if items.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    for item in items {
        let unit = item
            .get("price")
            .and_then(|price| price.get("unit_amount"))
            .and_then(Value::as_i64)
            .or_else(|| {
                item.get("plan")
                    .and_then(|plan| plan.get("amount"))
                    .and_then(Value::as_i64)
            })?;
        let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(1);
        total = total.checked_add(unit.checked_mul(quantity)?)?;
    }
    Some(total)
}

impl EventReference {
    /// The reference of a verified Stripe event. Never fails: unknown types
    /// get the generic rule.
    pub fn from_stripe_event(event: &StripeEvent) -> Self {
        let object = &event.object;
        let event_type = event.event_type.as_str();
        let object_id = owned(str_at(object, &["id"]));
        let object_type = owned(str_at(object, &["object"]));
        let int = |key: &str| object.get(key).and_then(Value::as_i64);
        let text = |key: &str| owned(str_at(object, &[key]));

        let mut reference = EventReference {
            provider: Provider::Stripe,
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            subject: None,
            object_id,
            object_type,
            parent_object_id: None,
            amount: None,
            currency: upper(str_at(object, &["currency"])),
            status: text("status"),
            occurred_at: event.created,
            livemode: Some(event.livemode),
            account: event.account.clone(),
            fingerprint: String::new(),
        };

        let kind = reference.object_type.as_deref().unwrap_or("");
        if event_type.starts_with("checkout.session.") || kind == "checkout.session" {
            reference.subject = stripe_subject_for_customerish(object)
                .or_else(|| text("client_reference_id"))
                .or_else(|| owned(str_at(object, &["customer_details", "email"])))
                .or_else(|| text("customer_email"));
            reference.amount = int("amount_total");
            reference.status = text("payment_status").or_else(|| text("status"));
            reference.parent_object_id =
                id_of(object.get("subscription")).or_else(|| id_of(object.get("payment_intent")));
        } else if event_type.starts_with("invoice.") || kind == "invoice" {
            reference.subject =
                stripe_subject_for_customerish(object).or_else(|| text("customer_email"));
            reference.amount = if matches!(event_type, "invoice.paid" | "invoice.payment_succeeded")
            {
                int("amount_paid").or_else(|| int("amount_due"))
            } else {
                int("amount_due")
            };
            reference.parent_object_id = id_of(
                object
                    .get("parent")
                    .and_then(|parent| parent.get("subscription_details"))
                    .and_then(|details| details.get("subscription")),
            )
            .or_else(|| id_of(object.get("subscription")));
        } else if event_type.starts_with("customer.subscription.") || kind == "subscription" {
            reference.subject = stripe_subject_for_customerish(object);
            reference.amount = stripe_subscription_amount(object);
        } else if event_type.starts_with("charge.dispute.") || kind == "dispute" {
            let charge = object.get("charge");
            reference.subject = charge
                .and_then(|charge| id_of(charge.get("customer")))
                .or_else(|| {
                    object
                        .get("payment_intent")
                        .and_then(|pi| id_of(pi.get("customer")))
                })
                .or_else(|| owned(str_at(object, &["evidence", "customer_email_address"])));
            reference.amount = int("amount");
            reference.parent_object_id = id_of(charge);
        } else if event_type.starts_with("charge.refund.") || kind == "refund" {
            reference.subject = stripe_subject_for_customerish(object)
                .or_else(|| object.get("charge").and_then(|c| id_of(c.get("customer"))));
            reference.amount = int("amount");
            reference.parent_object_id = id_of(object.get("charge"));
        } else if event_type.starts_with("charge.") || kind == "charge" {
            reference.subject = stripe_subject_for_customerish(object)
                .or_else(|| owned(str_at(object, &["billing_details", "email"])))
                .or_else(|| text("receipt_email"));
            reference.amount = if event_type == "charge.refunded" {
                int("amount_refunded").or_else(|| int("amount"))
            } else {
                int("amount")
            };
            reference.parent_object_id = id_of(object.get("payment_intent"));
        } else if kind == "customer" {
            reference.subject = reference.object_id.clone();
        } else {
            reference.subject = stripe_subject_for_customerish(object);
            reference.amount = int("amount");
        }

        let anchor = match &reference.object_id {
            Some(id) => id.clone(),
            None => format!("evt:{}", event.id),
        };
        let mut fingerprint = format!("stripe:{event_type}:{anchor}");
        if is_update(event_type)
            && let Some(previous) = &event.previous_attributes
        {
            fingerprint.push(':');
            fingerprint.push_str(&short_hash(previous));
        }
        reference.fingerprint = fingerprint;
        reference
    }

    /// The reference of a verified Shopify delivery. Never fails: unknown
    /// topics get the generic rule.
    pub fn from_shopify_delivery(delivery: &ShopifyDelivery) -> Self {
        let body = &delivery.body;
        let topic = delivery.topic.as_str();
        let family = topic.split('/').next().unwrap_or("");
        let text = |key: &str| owned(str_at(body, &[key]));
        let id = || id_of(body.get("id"));
        let customer_or_email = || {
            body.get("customer")
                .and_then(|customer| id_of(customer.get("id")))
                .or_else(|| text("email"))
                .or_else(|| text("contact_email"))
        };
        let currency = upper(str_at(body, &["currency"]))
            .or_else(|| upper(str_at(body, &["presentment_currency"])));
        let amount = || {
            let currency = currency.as_deref()?;
            let price = body.get("total_price")?;
            let text = match price {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            decimal_to_minor_units(&text, currency)
        };

        let (object_type, object_id, subject, amount, status) = match family {
            "orders" => {
                let status = if topic == "orders/fulfilled" {
                    text("fulfillment_status")
                } else {
                    text("financial_status")
                };
                (Some("order"), id(), customer_or_email(), amount(), status)
            }
            "customers" => (Some("customer"), id(), id(), None, text("state")),
            "checkouts" => (
                Some("checkout"),
                text("token").or_else(id),
                customer_or_email(),
                amount(),
                None,
            ),
            _ => (
                None,
                id().or_else(|| text("token"))
                    .or_else(|| text("admin_graphql_api_id")),
                customer_or_email(),
                amount(),
                None,
            ),
        };

        let occurred_at = delivery.triggered_at.or_else(|| {
            str_at(body, &["updated_at"])
                .or_else(|| str_at(body, &["created_at"]))
                .and_then(|text| Timestamp::parse_rfc3339(text).ok())
        });

        let anchor = match &object_id {
            Some(id) => id.clone(),
            None => format!("evt:{}", delivery.dedupe_id()),
        };
        let mut fingerprint = format!("shopify:{}:{topic}:{anchor}", delivery.shop_domain);
        if is_update(topic)
            && let Some(updated_at) = body.get("updated_at")
        {
            fingerprint.push(':');
            fingerprint.push_str(&short_hash(updated_at));
        }

        EventReference {
            provider: Provider::Shopify,
            event_id: delivery.dedupe_id().to_owned(),
            event_type: delivery.topic.clone(),
            subject,
            object_id,
            object_type: object_type.map(str::to_owned),
            parent_object_id: None,
            amount,
            currency,
            status,
            occurred_at,
            livemode: body.get("test").and_then(Value::as_bool).map(|test| !test),
            account: Some(delivery.shop_domain.clone()).filter(|s| !s.is_empty()),
            fingerprint,
        }
    }

    /// `metadata` worth attaching to a receipt: object id, amount, currency
    /// and status, when known.
    pub fn receipt_metadata(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        };
        put("object_id", self.object_id.clone().map(Value::from));
        put("object_type", self.object_type.clone().map(Value::from));
        put(
            "parent_object_id",
            self.parent_object_id.clone().map(Value::from),
        );
        put("amount", self.amount.map(Value::from));
        put("currency", self.currency.clone().map(Value::from));
        put("status", self.status.clone().map(Value::from));
        put("fingerprint", Some(Value::from(self.fingerprint.clone())));
        map
    }
}

impl From<&StripeEvent> for EventReference {
    fn from(event: &StripeEvent) -> Self {
        EventReference::from_stripe_event(event)
    }
}

impl From<&ShopifyDelivery> for EventReference {
    fn from(delivery: &ShopifyDelivery) -> Self {
        EventReference::from_shopify_delivery(delivery)
    }
}

/// How many digits a currency's minor unit has (ISO 4217).
pub fn currency_exponent(currency: &str) -> u32 {
    const ZERO: [&str; 17] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let code = currency.to_ascii_uppercase();
    if ZERO.contains(&code.as_str()) {
        0
    } else if THREE.contains(&code.as_str()) {
        3
    } else {
        2
    }
}

/// Converts a decimal amount string such as Shopify's `"199.90"` into minor
/// units of `currency` (`19990`). `None` when the text is not a plain
/// decimal, has more significant fraction digits than the currency allows,
/// or overflows.
pub fn decimal_to_minor_units(text: &str, currency: &str) -> Option<i64> {
    let exponent = currency_exponent(currency);
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let exponent = usize::try_from(exponent).ok()?;
    let (kept, dropped) = if fraction.len() > exponent {
        fraction.split_at(exponent)
    } else {
        (fraction, "")
    };
    if dropped.bytes().any(|b| b != b'0') {
        return None;
    }
    let mut value: i64 = 0;
    for b in whole.bytes().chain(kept.bytes()) {
        value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    for _ in kept.len()..exponent {
        value = value.checked_mul(10)?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(decimal_to_minor_units("199.90", "USD"), Some(19990));
        assert_eq!(decimal_to_minor_units("199.9", "usd"), Some(19990));
        assert_eq!(decimal_to_minor_units("10", "EUR"), Some(1000));
        assert_eq!(decimal_to_minor_units("1000.00", "JPY"), Some(1000));
        assert_eq!(decimal_to_minor_units("1000.50", "JPY"), None);
        assert_eq!(decimal_to_minor_units("1.234", "KWD"), Some(1234));
        assert_eq!(decimal_to_minor_units("-5.00", "USD"), Some(-500));
        assert_eq!(decimal_to_minor_units("abc", "USD"), None);
        assert_eq!(decimal_to_minor_units(".", "USD"), None);
        assert_eq!(decimal_to_minor_units("", "USD"), None);
        assert_eq!(decimal_to_minor_units("99999999999999999999", "USD"), None);
    }

    #[test]
    fn canonical_hash_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,{"q":1,"p":2}]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":[1,{"p":2,"q":1}],"y":2},"b":1}"#).unwrap();
        assert_eq!(short_hash(&a), short_hash(&b));
        assert_eq!(short_hash(&a).len(), 16);
    }
}
