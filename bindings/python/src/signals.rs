//! The arguments of receipts and results, converted into the SDK's signal
//! structs (`Receipt`, `ResultSignal`) with the Rust builders.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use sendpromptly_client as sp;
use sendpromptly_client::EventTarget;

use crate::convert;
use crate::errors;
use crate::verify::{RepairCallback, ShopifyDelivery, stripe_event};

/// The keyword arguments of `receipt(...)`.
pub struct ReceiptArgs<'a, 'py> {
    pub subject: Option<String>,
    pub effect: Option<String>,
    pub deadline_seconds: Option<&'a Bound<'py, PyAny>>,
    pub metadata: Option<&'a Bound<'py, PyAny>>,
    pub occurred_at: Option<&'a Bound<'py, PyAny>>,
}

impl ReceiptArgs<'_, '_> {
    /// Applies the optional fields to `builder` (metadata entries are added).
    pub fn apply(self, mut builder: sp::ReceiptBuilder) -> PyResult<sp::ReceiptBuilder> {
        if let Some(subject) = self.subject {
            builder = builder.subject(subject);
        }
        if let Some(effect) = self.effect {
            builder = builder.effect(effect);
        }
        if let Some(seconds) = convert::whole_u32(self.deadline_seconds, "deadline_seconds")? {
            builder = builder.deadline_seconds(seconds);
        }
        if let Some(metadata) = convert::metadata(self.metadata)? {
            for (key, value) in metadata {
                builder = builder.metadata_value(key, value);
            }
        }
        if let Some(at) = self.occurred_at.filter(|o| !o.is_none()) {
            builder = builder.occurred_at(convert::timestamp(at, "occurred_at")?);
        }
        Ok(builder)
    }
}

/// The current OpenTelemetry span as a `traceparent` and `tracestate`, when
/// `opentelemetry-api` is installed and a valid span is current (read by
/// `sendpromptly._otel`; formatted and checked by the core, and a
/// `tracestate` the core refuses is dropped, so tracing never fails a signal).
fn current_trace() -> Option<(String, Option<String>)> {
    Python::attach(|py| {
        let found = py
            .import("sendpromptly._otel")
            .ok()?
            .call_method0("current_span_context")
            .ok()?;
        let (trace_id, span_id, flags, state): (u128, u64, u8, Option<String>) =
            found.extract().ok()?;
        let parent = sp::core::trace::TraceParent {
            trace_id: trace_id.to_be_bytes(),
            span_id: span_id.to_be_bytes(),
            flags,
        }
        .to_string();
        sp::core::validation::validate_trace(Some(&parent), None).ok()?;
        let state = state.filter(|s| sp::core::trace::validate_tracestate(s).is_ok());
        Some((parent, state))
    })
}

/// Adds the current span's trace context to a signal that has none.
fn traced(traceparent: &mut Option<String>, tracestate: &mut Option<String>) {
    if traceparent.is_none()
        && let Some((parent, state)) = current_trace()
    {
        *traceparent = Some(parent);
        *tracestate = state;
    }
}

/// A receipt from explicit fields.
pub fn receipt(
    client: &sp::Client,
    provider: &str,
    event_id: String,
    event_type: String,
    args: ReceiptArgs<'_, '_>,
) -> PyResult<sp::Receipt> {
    let builder = client.receipt(convert::provider(provider)?, event_id, event_type);
    let mut receipt = args.apply(builder)?.into_receipt();
    traced(&mut receipt.traceparent, &mut receipt.tracestate);
    Ok(receipt)
}

/// A receipt filled from a verified provider event: a Stripe event dict
/// (as `stripe.verify` returns it) or a `ShopifyDelivery`.
pub fn receipt_for(
    client: &sp::Client,
    event: &Bound<'_, PyAny>,
    args: ReceiptArgs<'_, '_>,
) -> PyResult<sp::Receipt> {
    let builder = if let Ok(delivery) = event.cast::<ShopifyDelivery>() {
        client.receipt_for(&delivery.get().inner)
    } else if let Ok(dict) = event.cast::<PyDict>() {
        client.receipt_for(&stripe_event(dict)?)
    } else {
        return Err(errors::bad_target(
            "receipt_for takes a verified Stripe event (the dict sendpromptly.stripe.verify returns) or a ShopifyDelivery",
            event,
        ));
    };
    let mut receipt = args.apply(builder)?.into_receipt();
    traced(&mut receipt.traceparent, &mut receipt.tracestate);
    Ok(receipt)
}

/// The optional fields of a result.
pub struct ResultArgs<'a, 'py> {
    pub error: Option<String>,
    pub reprocess_id: Option<String>,
    pub metadata: Option<&'a Bound<'py, PyAny>>,
}

impl ResultArgs<'_, '_> {
    fn apply(self, mut builder: sp::ResultBuilder) -> PyResult<sp::ResultSignal> {
        if let Some(error) = self.error {
            builder = builder.error(error);
        }
        if let Some(id) = self.reprocess_id {
            builder = builder.reprocess_id(id);
        }
        if let Some(metadata) = convert::metadata(self.metadata)? {
            for (key, value) in metadata {
                builder = builder.metadata_value(key, value);
            }
        }
        let mut result = builder.into_result();
        traced(&mut result.traceparent, &mut result.tracestate);
        Ok(result)
    }
}

/// A result from explicit fields.
pub fn result(
    client: &sp::Client,
    provider: &str,
    event_id: String,
    status: &str,
    args: ResultArgs<'_, '_>,
) -> PyResult<sp::ResultSignal> {
    let builder = client.result(
        convert::provider(provider)?,
        event_id,
        convert::result_status(status)?,
    );
    args.apply(builder)
}

struct Target(sp::EventKey, Option<String>);

impl EventTarget for Target {
    fn event_key(&self) -> sp::EventKey {
        self.0.clone()
    }
    fn reprocess_id(&self) -> Option<&str> {
        self.1.as_deref()
    }
}

fn target(event: &Bound<'_, PyAny>) -> PyResult<Target> {
    let from = |t: &dyn EventTarget| Target(t.event_key(), t.reprocess_id().map(str::to_owned));
    if let Ok(callback) = event.cast::<RepairCallback>() {
        Ok(from(&callback.get().inner))
    } else if let Ok(delivery) = event.cast::<ShopifyDelivery>() {
        Ok(from(&delivery.get().inner))
    } else if let Ok(dict) = event.cast::<PyDict>() {
        Ok(from(&stripe_event(dict)?))
    } else {
        Err(errors::bad_target(
            "the target must be a RepairCallback, a verified Stripe event (dict) or a ShopifyDelivery",
            event,
        ))
    }
}

/// The event a target refers to, as `(provider, event_id, reprocess_id)`:
/// what the integrations carry in a job's headers and report results for.
#[pyfunction]
pub fn event_ref(target: &Bound<'_, PyAny>) -> PyResult<(&'static str, String, Option<String>)> {
    let Target(key, reprocess_id) = self::target(target)?;
    Ok((key.provider.as_str(), key.event_id, reprocess_id))
}

/// A result for a verified event or repair callback (which also sets
/// `reprocess_id`).
pub fn result_for(
    client: &sp::Client,
    event: &Bound<'_, PyAny>,
    status: sp::ResultStatus,
    args: ResultArgs<'_, '_>,
) -> PyResult<sp::ResultSignal> {
    let target = target(event)?;
    args.apply(client.result_for(&target, status))
}
