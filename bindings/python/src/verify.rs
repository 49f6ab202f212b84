//! The verifiers: repair callbacks, Stripe and Shopify webhooks. Each only
//! converts its arguments and calls the Rust verifier.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use sendpromptly_client as sp;
use sendpromptly_client::{shopify, stripe};

use crate::convert;
use crate::errors;

/// The event a repair callback asks the app to process again, as it was
/// reported in its receipt.
#[pyclass(module = "sendpromptly._native", frozen)]
pub struct RepairCallbackEvent {
    pub inner: sp::RepairCallbackEvent,
}

#[pymethods]
impl RepairCallbackEvent {
    /// ``"stripe"``, ``"shopify"`` or ``"custom"``.
    #[getter]
    fn provider(&self) -> &'static str {
        self.inner.provider.as_str()
    }
    /// The provider's event id (``evt_…`` for Stripe).
    #[getter]
    fn event_id(&self) -> &str {
        &self.inner.event_id
    }
    /// The event type, e.g. ``invoice.paid``.
    #[getter]
    fn event_type(&self) -> &str {
        &self.inner.event_type
    }
    /// The customer or account the effect is for.
    #[getter]
    fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }
    /// The label of the expected business effect, e.g. ``credits.add``.
    #[getter]
    fn effect(&self) -> Option<&str> {
        self.inner.effect.as_deref()
    }
    /// The receipt's metadata (a new dict on every access).
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner
            .metadata
            .as_ref()
            .map(|m| convert::serialize_to_py(py, m))
            .transpose()
    }
    /// The event as a plain dict.
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::serialize_to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "RepairCallbackEvent(provider={:?}, event_id={:?}, event_type={:?})",
            self.inner.provider.as_str(),
            self.inner.event_id,
            self.inner.event_type
        )
    }
}

/// A verified repair callback: which incident's event to process again.
/// Pass it to ``success_for`` / ``failure_for`` to link the result to this
/// reprocess.
#[pyclass(module = "sendpromptly._native", frozen)]
pub struct RepairCallback {
    pub inner: sp::RepairCallback,
}

#[pymethods]
impl RepairCallback {
    /// Always ``"reprocess.requested"``.
    #[getter(r#type)]
    fn kind(&self) -> &str {
        &self.inner.kind
    }
    /// The ``rep_…`` id (equal to the ``webhook-id`` header).
    #[getter]
    fn reprocess_id(&self) -> &str {
        &self.inner.reprocess_id
    }
    /// The ``inc_…`` incident being repaired.
    #[getter]
    fn incident_id(&self) -> &str {
        &self.inner.incident_id
    }
    /// Delivery attempt number, starting at 1.
    #[getter]
    fn attempt(&self) -> u32 {
        self.inner.attempt
    }
    /// When the reprocess was requested (RFC 3339).
    #[getter]
    fn requested_at(&self) -> String {
        self.inner.requested_at.to_rfc3339()
    }
    /// Who asked: e.g. ``console:alice@example.com`` or ``api:<key id>``.
    #[getter]
    fn requested_by(&self) -> &str {
        &self.inner.requested_by
    }
    /// The event to process again.
    #[getter]
    fn event(&self) -> RepairCallbackEvent {
        RepairCallbackEvent {
            inner: self.inner.event.clone(),
        }
    }
    /// The callback body as a plain dict.
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::serialize_to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "RepairCallback(reprocess_id={:?}, incident_id={:?}, attempt={}, event={})",
            self.inner.reprocess_id,
            self.inner.incident_id,
            self.inner.attempt,
            self.event().__repr__()
        )
    }
}

/// A verified Shopify webhook delivery: its headers and parsed body.
#[pyclass(module = "sendpromptly._native", frozen)]
pub struct ShopifyDelivery {
    pub inner: shopify::ShopifyDelivery,
}

#[pymethods]
impl ShopifyDelivery {
    /// ``X-Shopify-Topic``, e.g. ``orders/paid``.
    #[getter]
    fn topic(&self) -> &str {
        &self.inner.topic
    }
    /// ``X-Shopify-Sub-Topic``, when present.
    #[getter]
    fn sub_topic(&self) -> Option<&str> {
        self.inner.sub_topic.as_deref()
    }
    /// ``X-Shopify-Shop-Domain``, e.g. ``example.myshopify.com``.
    #[getter]
    fn shop_domain(&self) -> &str {
        &self.inner.shop_domain
    }
    /// ``X-Shopify-Webhook-Id``: unique per delivery.
    #[getter]
    fn webhook_id(&self) -> &str {
        &self.inner.webhook_id
    }
    /// ``X-Shopify-Event-Id``: shared by all deliveries of one event.
    #[getter]
    fn event_id(&self) -> Option<&str> {
        self.inner.event_id.as_deref()
    }
    /// ``X-Shopify-Triggered-At`` (RFC 3339), when present.
    #[getter]
    fn triggered_at(&self) -> Option<String> {
        self.inner.triggered_at.map(|t| t.to_rfc3339())
    }
    /// ``X-Shopify-API-Version``, e.g. ``2025-07``.
    #[getter]
    fn api_version(&self) -> &str {
        &self.inner.api_version
    }
    /// The JSON body as a dict (a new dict on every access).
    #[getter]
    fn body(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(convert::to_py(py, &self.inner.body)?.unbind())
    }
    /// The key that identifies the event across retries: the event id, else
    /// the webhook id.
    #[getter]
    fn dedupe_id(&self) -> &str {
        self.inner.dedupe_id()
    }
    fn __repr__(&self) -> String {
        format!(
            "ShopifyDelivery(topic={:?}, shop_domain={:?}, dedupe_id={:?})",
            self.inner.topic,
            self.inner.shop_domain,
            self.inner.dedupe_id()
        )
    }
}

/// Verifies a repair callback and returns it as a ``RepairCallback``.
///
/// ``body`` is the raw request body (bytes, exactly as received),
/// ``headers`` any mapping of the request headers (case-insensitive), and
/// ``secret`` the project's ``whsec_`` secret, or a list of secrets during a
/// rotation. Raises ``BadSignatureError``, ``StaleTimestampError`` (more
/// than 5 minutes off), ``MalformedRequestError`` or
/// ``SecretConfigurationError`` (all ``SignatureVerificationError``).
#[pyfunction]
pub fn verify_repair_request(
    py: Python<'_>,
    body: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
    secret: &Bound<'_, PyAny>,
) -> PyResult<RepairCallback> {
    let body = convert::body(body, "body")?;
    let headers = convert::headers(headers)?;
    let secrets = convert::secrets(secret, "secret")?;
    sp::verify_repair_request(&body, &headers, &secrets)
        .map(|inner| RepairCallback { inner })
        .map_err(|err| errors::repair(py, &err))
}

/// Verifies a Stripe webhook (``Stripe-Signature``) and returns the event as
/// a dict. The rules of the official ``stripe`` package apply; the age check
/// is always enforced (``tolerance`` seconds).
#[pyfunction]
#[pyo3(signature = (payload, sig_header, secret, tolerance=None))]
pub fn stripe_verify(
    py: Python<'_>,
    payload: &Bound<'_, PyAny>,
    sig_header: Option<&Bound<'_, PyAny>>,
    secret: &str,
    tolerance: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let payload = convert::body(payload, "payload")?;
    let header = match sig_header {
        None => String::new(),
        Some(h) if h.is_none() => String::new(),
        Some(h) => convert::body(h, "sig_header").and_then(|b| {
            String::from_utf8(b).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err("sig_header is not valid UTF-8")
            })
        })?,
    };
    let tolerance = convert::whole_u32(tolerance, "tolerance")?
        .unwrap_or(stripe::DEFAULT_TOLERANCE_SECONDS as u32);
    let event = stripe::construct_event_with_tolerance(
        &payload,
        &header,
        secret,
        u64::from(tolerance),
        sp::now(),
    )
    .map_err(|err| errors::stripe(py, &err))?;
    Ok(convert::to_py(py, &event.raw)?.unbind())
}

/// Verifies a Shopify webhook (``X-Shopify-Hmac-Sha256``) against the app
/// secret (or a list of secrets during a rotation) and returns a
/// ``ShopifyDelivery``.
#[pyfunction]
pub fn shopify_verify(
    py: Python<'_>,
    body: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
    secret: &Bound<'_, PyAny>,
) -> PyResult<ShopifyDelivery> {
    let body = convert::body(body, "body")?;
    let headers = convert::headers(headers)?;
    let secrets = convert::secrets(secret, "secret")?;
    shopify::verify(&body, &headers, &secrets)
        .map(|inner| ShopifyDelivery { inner })
        .map_err(|err| errors::shopify(py, &err))
}

/// Converts a verified Stripe event dict back into the Rust event (for
/// `receipt_for` and `success_for`).
pub fn stripe_event(event: &Bound<'_, PyDict>) -> PyResult<stripe::StripeEvent> {
    let json = convert::to_json(event.as_any(), "event")?;
    stripe::StripeEvent::from_value(json).map_err(|err| errors::stripe(event.py(), &err))
}
