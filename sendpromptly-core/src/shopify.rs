//! Shopify webhook verification (`X-Shopify-Hmac-Sha256`) and delivery
//! parsing.
//!
//! Shopify signs the raw body with HMAC-SHA256 keyed with the app's client
//! secret (its UTF-8 bytes) and sends the standard base64 of the MAC. There is
//! no timestamp, so no clock is involved; replays are recognised by the
//! `X-Shopify-Event-Id` (shared by every delivery of one merchant action) and
//! `X-Shopify-Webhook-Id` (one per delivery) headers.
//!
//! Like Shopify's `shopify-app-js` validator, [`verify`] requires the headers
//! `X-Shopify-Hmac-Sha256`, `X-Shopify-Topic`, `X-Shopify-API-Version`,
//! `X-Shopify-Shop-Domain` and `X-Shopify-Webhook-Id` and a non-empty body.
//! It accepts several secrets, so a delivery signed with the previous secret
//! still verifies while the app's secret is being rotated.
//!
//! ```
//! use sendpromptly_core::shopify::{compute_hmac, verify};
//!
//! let body = br#"{"id": 820982911946154508, "email": "jon@example.com"}"#;
//! let hmac = compute_hmac(body, "shpss_secret");
//! let headers = [
//!     ("X-Shopify-Hmac-Sha256", hmac.as_str()),
//!     ("X-Shopify-Topic", "orders/paid"),
//!     ("X-Shopify-API-Version", "2025-07"),
//!     ("X-Shopify-Shop-Domain", "example.myshopify.com"),
//!     ("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
//! ];
//! let delivery = verify(body, &headers, &["shpss_secret"]).unwrap();
//! assert_eq!(delivery.topic, "orders/paid");
//! assert_eq!(delivery.dedupe_id(), "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Timestamp;
use crate::headers::HeaderLookup;
use crate::standard_webhooks::{ErrorCategory, quote};

/// The signature header.
pub const HEADER_HMAC: &str = "X-Shopify-Hmac-Sha256";
/// The topic header, e.g. `orders/paid`.
pub const HEADER_TOPIC: &str = "X-Shopify-Topic";
/// The optional sub-topic header.
pub const HEADER_SUB_TOPIC: &str = "X-Shopify-Sub-Topic";
/// The shop's `*.myshopify.com` domain.
pub const HEADER_SHOP_DOMAIN: &str = "X-Shopify-Shop-Domain";
/// The id of this delivery (new on every delivery, also on retries).
pub const HEADER_WEBHOOK_ID: &str = "X-Shopify-Webhook-Id";
/// The id shared by every delivery of one event (the dedupe key).
pub const HEADER_EVENT_ID: &str = "X-Shopify-Event-Id";
/// When the event happened (RFC 3339).
pub const HEADER_TRIGGERED_AT: &str = "X-Shopify-Triggered-At";
/// The Admin API version the payload is rendered in.
pub const HEADER_API_VERSION: &str = "X-Shopify-API-Version";

/// The headers [`verify`] and [`parse_delivery`] require.
pub const REQUIRED_HEADERS: [&str; 5] = [
    HEADER_HMAC,
    HEADER_TOPIC,
    HEADER_API_VERSION,
    HEADER_SHOP_DOMAIN,
    HEADER_WEBHOOK_ID,
];

/// Why a Shopify delivery was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopifyError {
    /// One or more required headers are absent or empty.
    #[error(
        "missing Shopify header(s): {}; pass the request's headers unchanged (this does not look like a Shopify webhook delivery)",
        .names.join(", ")
    )]
    MissingHeaders {
        /// The missing header names.
        names: Vec<&'static str>,
    },
    /// The body is empty.
    #[error("the webhook body is empty: pass the raw request body as received")]
    EmptyBody,
    /// The HMAC matches none of the secrets.
    #[error(
        "X-Shopify-Hmac-Sha256 matches none of the {secrets} configured secret(s): check that the app's client secret is configured (and the previous one, during rotation) and that the raw body is passed byte-for-byte"
    )]
    InvalidHmac {
        /// How many secrets were tried.
        secrets: usize,
    },
    /// No secret was given.
    #[error("no Shopify app secret configured: pass the app's client secret")]
    NoSecrets,
    /// The body is not a JSON object.
    #[error("the webhook body is not a JSON object: {reason}")]
    InvalidJson {
        /// What is wrong with it.
        reason: String,
    },
}

impl ShopifyError {
    /// The coarse category shared with the other verifiers.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::MissingHeaders { .. } | Self::EmptyBody | Self::InvalidJson { .. } => {
                ErrorCategory::Malformed
            }
            Self::InvalidHmac { .. } => ErrorCategory::BadSignature,
            Self::NoSecrets => ErrorCategory::Configuration,
        }
    }
}

fn hmac_raw(body: &[u8], secret: &str) -> [u8; 32] {
    // HMAC accepts keys of any length; the fallback is unreachable but keeps
    // this path free of panics.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return [0; 32];
    };
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `X-Shopify-Hmac-Sha256` value for `body`: standard base64 of its
/// HMAC-SHA256 with `secret`.
pub fn compute_hmac(body: &[u8], secret: &str) -> String {
    STANDARD.encode(hmac_raw(body, secret))
}

/// Checks an `X-Shopify-Hmac-Sha256` value against each secret in constant
/// time. Surrounding whitespace in the header value is ignored; empty
/// secrets never match.
pub fn verify_hmac<S: AsRef<str>>(
    body: &[u8],
    hmac_header: &str,
    secrets: &[S],
) -> Result<(), ShopifyError> {
    if secrets.is_empty() {
        return Err(ShopifyError::NoSecrets);
    }
    let given = hmac_header.trim().as_bytes();
    let mut matched = subtle::Choice::from(0u8);
    let mut usable = 0usize;
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.is_empty() {
            continue;
        }
        usable += 1;
        matched |= compute_hmac(body, secret).as_bytes().ct_eq(given);
    }
    if usable == 0 {
        return Err(ShopifyError::NoSecrets);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(ShopifyError::InvalidHmac {
            secrets: secrets.len(),
        })
    }
}

/// One Shopify webhook delivery: its headers and parsed body.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopifyDelivery {
    /// `X-Shopify-Topic`, e.g. `orders/paid`.
    pub topic: String,
    /// `X-Shopify-Sub-Topic`, when present.
    pub sub_topic: Option<String>,
    /// `X-Shopify-Shop-Domain`, e.g. `example.myshopify.com`.
    pub shop_domain: String,
    /// `X-Shopify-Webhook-Id`: unique per delivery.
    pub webhook_id: String,
    /// `X-Shopify-Event-Id`: shared by all deliveries of one event (absent
    /// on older API versions).
    pub event_id: Option<String>,
    /// `X-Shopify-Triggered-At`, when present and RFC 3339.
    pub triggered_at: Option<Timestamp>,
    /// `X-Shopify-API-Version`, e.g. `2025-07`.
    pub api_version: String,
    /// The JSON body.
    pub body: Value,
}

impl ShopifyDelivery {
    /// The key that identifies the event across retries: the event id, else
    /// the webhook id.
    pub fn dedupe_id(&self) -> &str {
        self.event_id.as_deref().unwrap_or(&self.webhook_id)
    }
}

fn non_empty<'a>(headers: &'a (impl HeaderLookup + ?Sized), name: &str) -> Option<&'a str> {
    headers
        .header(name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn check_required(
    headers: &(impl HeaderLookup + ?Sized),
    names: &[&'static str],
) -> Result<(), ShopifyError> {
    let missing: Vec<&'static str> = names
        .iter()
        .copied()
        .filter(|name| non_empty(headers, name).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ShopifyError::MissingHeaders { names: missing })
    }
}

/// Verifies the HMAC of a delivery against any of `secrets`, then parses it.
pub fn verify<S: AsRef<str>>(
    body: &[u8],
    headers: &(impl HeaderLookup + ?Sized),
    secrets: &[S],
) -> Result<ShopifyDelivery, ShopifyError> {
    check_required(headers, &REQUIRED_HEADERS)?;
    if body.is_empty() {
        return Err(ShopifyError::EmptyBody);
    }
    verify_hmac(body, non_empty(headers, HEADER_HMAC).unwrap_or(""), secrets)?;
    parse_delivery(body, headers)
}

/// Parses a delivery *without* checking its HMAC (for deliveries verified
/// elsewhere, or fixtures). Requires the same headers as [`verify`] except
/// the HMAC.
pub fn parse_delivery(
    body: &[u8],
    headers: &(impl HeaderLookup + ?Sized),
) -> Result<ShopifyDelivery, ShopifyError> {
    check_required(headers, &REQUIRED_HEADERS[1..])?;
    if body.is_empty() {
        return Err(ShopifyError::EmptyBody);
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|err| ShopifyError::InvalidJson {
        reason: format!("{err}"),
    })?;
    if !parsed.is_object() {
        return Err(ShopifyError::InvalidJson {
            reason: format!("expected an object, found {}", quote(&parsed.to_string())),
        });
    }
    let get = |name: &str| non_empty(headers, name).map(str::to_owned);
    Ok(ShopifyDelivery {
        topic: get(HEADER_TOPIC).unwrap_or_default(),
        sub_topic: get(HEADER_SUB_TOPIC),
        shop_domain: get(HEADER_SHOP_DOMAIN).unwrap_or_default(),
        webhook_id: get(HEADER_WEBHOOK_ID).unwrap_or_default(),
        event_id: get(HEADER_EVENT_ID),
        triggered_at: non_empty(headers, HEADER_TRIGGERED_AT)
            .and_then(|text| Timestamp::parse_rfc3339(text).ok()),
        api_version: get(HEADER_API_VERSION).unwrap_or_default(),
        body: parsed,
    })
}
