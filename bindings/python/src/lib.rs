//! `sendpromptly._native`: the Python bindings of the SendPromptly SDK.
//!
//! Thin by design: every function converts its Python arguments, calls
//! `sendpromptly-client` (retries, time budget, idempotency keys, background
//! queue, verification all live there and in `sendpromptly-core`), and
//! converts the answer back. The pure-Python package `sendpromptly` (in
//! `python/`) re-exports this module and defines the exception classes.
#![forbid(unsafe_code)]

use pyo3::prelude::*;

mod background;
mod client;
mod config;
mod convert;
mod errors;
mod rt;
mod signals;
mod verify;

/// A new idempotency key: ``sp_idem_``, the time in milliseconds (12 hex digits) and 80 random bits (20 hex digits).
#[pyfunction]
fn new_idempotency_key() -> String {
    sendpromptly_client::new_idempotency_key()
}

/// The native half of the ``sendpromptly`` package; import ``sendpromptly``.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("USER_AGENT", client::USER_AGENT)?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::AsyncClient>()?;
    m.add_class::<client::SignalResponse>()?;
    m.add_class::<config::RetryOn>()?;
    m.add_class::<config::RetryConfig>()?;
    m.add_class::<config::BackgroundConfig>()?;
    m.add_class::<background::Background>()?;
    m.add_class::<background::BackgroundStats>()?;
    m.add_class::<background::DroppedSignal>()?;
    m.add_class::<verify::RepairCallback>()?;
    m.add_class::<verify::RepairCallbackEvent>()?;
    m.add_class::<verify::ShopifyDelivery>()?;
    m.add_class::<rt::Pending>()?;
    m.add_function(wrap_pyfunction!(new_idempotency_key, m)?)?;
    m.add_function(wrap_pyfunction!(signals::event_ref, m)?)?;
    m.add_function(wrap_pyfunction!(verify::verify_repair_request, m)?)?;
    m.add_function(wrap_pyfunction!(verify::stripe_verify, m)?)?;
    m.add_function(wrap_pyfunction!(verify::shopify_verify, m)?)?;
    Ok(())
}
