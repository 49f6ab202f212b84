//! Background mode: `sendpromptly_client::Background` behind a Python
//! object, rebuilt (empty) in a forked child.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBool;
use sendpromptly_client as sp;

use crate::client::Core;
use crate::config::BackgroundConfig;
use crate::convert;
use crate::errors;
use crate::rt::{self, Pending};
use crate::signals::{self, ReceiptArgs, ResultArgs};

/// A signal background mode could not deliver (passed to ``on_drop``).
#[pyclass(module = "sendpromptly._native", frozen)]
pub struct DroppedSignal {
    /// The signal as a dict: ``{"kind": "receipt" | "result", ...fields}``.
    #[pyo3(get)]
    signal: Py<PyAny>,
    /// The idempotency key it was (or would have been) sent with; send it
    /// again with this key and a late duplicate is replayed, not recorded twice.
    #[pyo3(get)]
    idempotency_key: String,
    /// Why: ``queue_full``, ``closed``, ``invalid``, ``gave_up``,
    /// ``rejected`` or ``shutdown``.
    #[pyo3(get)]
    reason: &'static str,
    /// The last error (a ``SendPromptlyError``), when it was sent.
    #[pyo3(get)]
    error: Option<Py<PyAny>>,
}

#[pymethods]
impl DroppedSignal {
    fn __repr__(&self) -> String {
        format!(
            "DroppedSignal(reason={:?}, idempotency_key={:?})",
            self.reason, self.idempotency_key
        )
    }
}

fn reason(reason: sp::DropReason) -> &'static str {
    match reason {
        sp::DropReason::QueueFull => "queue_full",
        sp::DropReason::Closed => "closed",
        sp::DropReason::Invalid => "invalid",
        sp::DropReason::GaveUp => "gave_up",
        sp::DropReason::Rejected => "rejected",
        sp::DropReason::Shutdown => "shutdown",
    }
}

fn dropped_to_py(py: Python<'_>, dropped: &sp::DroppedSignal) -> PyResult<DroppedSignal> {
    let (kind, fields) = match &dropped.signal {
        sp::Signal::Receipt(r) => ("receipt", serde_json::to_value(r)),
        sp::Signal::Result(r) => ("result", serde_json::to_value(r)),
    };
    let mut fields = fields.unwrap_or_default();
    if let Some(map) = fields.as_object_mut() {
        map.insert("kind".to_owned(), kind.into());
    }
    Ok(DroppedSignal {
        signal: convert::to_py(py, &fields)?.unbind(),
        idempotency_key: dropped.idempotency_key.clone(),
        reason: reason(dropped.reason),
        error: dropped
            .error
            .as_ref()
            .map(|e| errors::to_py(py, e).into_value(py).into_any()),
    })
}

/// The Rust callback calling a Python `on_drop`.
fn on_drop_callback(callback: Py<PyAny>) -> sp::DropCallback {
    Arc::new(move |dropped: &sp::DroppedSignal| {
        Python::try_attach(|py| {
            let outcome =
                dropped_to_py(py, dropped).and_then(|obj| callback.call1(py, (obj,)).map(drop));
            if let Err(err) = outcome {
                err.write_unraisable(py, Some(callback.bind(py)));
            }
        });
    })
}

/// Counters of background mode since it started (in this process).
#[pyclass(module = "sendpromptly._native", frozen)]
pub struct BackgroundStats {
    /// Signals accepted into the queue.
    #[pyo3(get)]
    enqueued: u64,
    /// Signals the server recorded.
    #[pyo3(get)]
    delivered: u64,
    /// Signals refused because the queue was full.
    #[pyo3(get)]
    dropped_queue_full: u64,
    /// Signals refused because the queue was shut down.
    #[pyo3(get)]
    dropped_closed: u64,
    /// Signals refused because they were invalid.
    #[pyo3(get)]
    dropped_invalid: u64,
    /// Signals dropped after retries or the time budget ran out.
    #[pyo3(get)]
    gave_up: u64,
    /// Signals the server refused (non-retryable 4xx).
    #[pyo3(get)]
    rejected: u64,
    /// Signals abandoned when shutdown timed out.
    #[pyo3(get)]
    dropped_at_shutdown: u64,
    /// Signals queued or being delivered now.
    #[pyo3(get)]
    pending: u64,
    dropped_total: u64,
}

impl From<sp::BackgroundStats> for BackgroundStats {
    fn from(s: sp::BackgroundStats) -> Self {
        BackgroundStats {
            enqueued: s.enqueued,
            delivered: s.delivered,
            dropped_queue_full: s.dropped_queue_full,
            dropped_closed: s.dropped_closed,
            dropped_invalid: s.dropped_invalid,
            gave_up: s.gave_up,
            rejected: s.rejected,
            dropped_at_shutdown: s.dropped_at_shutdown,
            pending: s.pending,
            dropped_total: s.dropped(),
        }
    }
}

#[pymethods]
impl BackgroundStats {
    /// Every dropped signal, whatever the reason.
    #[getter]
    fn dropped(&self) -> u64 {
        self.dropped_total
    }
    fn __repr__(&self) -> String {
        format!(
            "BackgroundStats(enqueued={}, delivered={}, dropped={}, pending={})",
            self.enqueued, self.delivered, self.dropped_total, self.pending
        )
    }
}

fn stats_to_py(py: Python<'_>, stats: sp::BackgroundStats) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, BackgroundStats::from(stats))?.into_any())
}

/// Background mode: signals go into a bounded in-process queue that SDK
/// threads deliver under the background retry policy, so a webhook handler
/// returns at once.
///
/// The signal methods return ``True`` when the signal was queued and
/// ``False`` when it was dropped (queue full, shut down, or invalid); a drop
/// is also logged, counted in ``stats()`` and passed to ``on_drop``. Call
/// ``shutdown()`` (or ``await shutdown_async()``) before the process exits.
/// After ``os.fork()`` the child starts with an empty queue of its own.
#[pyclass(module = "sendpromptly._native", frozen)]
pub struct Background {
    core: Arc<Core>,
    config: sp::BackgroundConfig,
    live: Mutex<(u32, sp::Background)>,
}

fn start(py: Python<'_>, core: &Core, config: &sp::BackgroundConfig) -> PyResult<sp::Background> {
    let client = core.client(py)?;
    let runtime = rt::runtime()?;
    let _context = runtime.enter();
    client
        .background(config.clone())
        .map_err(|err| errors::to_py(py, &err))
}

impl Background {
    /// Starts background mode for `core`'s client.
    pub fn start(
        py: Python<'_>,
        core: Arc<Core>,
        config: Option<PyRef<'_, BackgroundConfig>>,
    ) -> PyResult<Background> {
        let config = match config {
            Some(c) => sp::BackgroundConfig {
                capacity: c.capacity,
                concurrency: c.concurrency,
                retry: c.retry.inner.clone(),
                on_drop: c
                    .on_drop
                    .as_ref()
                    .map(|f| on_drop_callback(f.clone_ref(py))),
            },
            None => sp::BackgroundConfig::from_env().map_err(|err| errors::to_py(py, &err))?,
        };
        let background = start(py, &core, &config)?;
        Ok(Background {
            core,
            config,
            live: Mutex::new((std::process::id(), background)),
        })
    }

    fn live(&self, py: Python<'_>) -> PyResult<sp::Background> {
        let pid = std::process::id();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.0 != pid {
            let fresh = start(py, &self.core, &self.config)?;
            // The parent's queue and worker stay with the parent.
            std::mem::forget(std::mem::replace(&mut live.1, fresh));
            live.0 = pid;
        }
        Ok(live.1.clone())
    }

    fn enqueue(&self, py: Python<'_>, signal: sp::Signal, key: Option<String>) -> PyResult<bool> {
        Ok(self.live(py)?.enqueue_with_key(signal, key).is_ok())
    }
}

/// `timeout=` in seconds (or a `timedelta`); 10 s when not given.
fn timeout(value: Option<&Bound<'_, PyAny>>) -> PyResult<Duration> {
    match value.filter(|v| !v.is_none()) {
        Some(value) => convert::duration(value, "timeout"),
        None => Ok(Duration::from_secs(10)),
    }
}

#[pymethods]
impl Background {
    /// Queues a receipt; the same arguments as ``Client.receipt``.
    #[pyo3(signature = (*, provider, event_id, event_type, subject=None, effect=None, deadline_seconds=None, metadata=None, occurred_at=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn receipt(
        &self,
        py: Python<'_>,
        provider: &str,
        event_id: String,
        event_type: String,
        subject: Option<String>,
        effect: Option<String>,
        deadline_seconds: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        occurred_at: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<bool> {
        let client = self.core.client(py)?;
        let args = ReceiptArgs {
            subject,
            effect,
            deadline_seconds,
            metadata,
            occurred_at,
        };
        let receipt = signals::receipt(&client, provider, event_id, event_type, args)?;
        self.enqueue(py, sp::Signal::Receipt(receipt), idempotency_key)
    }

    /// Queues a receipt filled from a verified provider event; the same
    /// arguments as ``Client.receipt_for``.
    #[pyo3(signature = (event, *, subject=None, effect=None, deadline_seconds=None, metadata=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn receipt_for(
        &self,
        py: Python<'_>,
        event: &Bound<'_, PyAny>,
        subject: Option<String>,
        effect: Option<String>,
        deadline_seconds: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<bool> {
        let client = self.core.client(py)?;
        let args = ReceiptArgs {
            subject,
            effect,
            deadline_seconds,
            metadata,
            occurred_at: None,
        };
        let receipt = signals::receipt_for(&client, event, args)?;
        self.enqueue(py, sp::Signal::Receipt(receipt), idempotency_key)
    }

    /// Queues a result; the same arguments as ``Client.result``.
    #[pyo3(signature = (*, provider, event_id, status, error=None, reprocess_id=None, metadata=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn result(
        &self,
        py: Python<'_>,
        provider: &str,
        event_id: String,
        status: &str,
        error: Option<String>,
        reprocess_id: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<bool> {
        let client = self.core.client(py)?;
        let args = ResultArgs {
            error,
            reprocess_id,
            metadata,
        };
        let result = signals::result(&client, provider, event_id, status, args)?;
        self.enqueue(py, sp::Signal::Result(result), idempotency_key)
    }

    /// Queues a ``success`` result; the same arguments as ``Client.success``.
    #[pyo3(signature = (*, provider, event_id, reprocess_id=None, metadata=None, idempotency_key=None))]
    fn success(
        &self,
        py: Python<'_>,
        provider: &str,
        event_id: String,
        reprocess_id: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<bool> {
        self.result(
            py,
            provider,
            event_id,
            "success",
            None,
            reprocess_id,
            metadata,
            idempotency_key,
        )
    }

    /// Queues a ``failure`` result; the same arguments as ``Client.failure``.
    #[pyo3(signature = (*, provider, event_id, error, reprocess_id=None, metadata=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn failure(
        &self,
        py: Python<'_>,
        provider: &str,
        event_id: String,
        error: String,
        reprocess_id: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<bool> {
        self.result(
            py,
            provider,
            event_id,
            "failure",
            Some(error),
            reprocess_id,
            metadata,
            idempotency_key,
        )
    }

    /// Queues a ``success`` result for a verified event or a
    /// ``RepairCallback``.
    #[pyo3(signature = (target, *, metadata=None, idempotency_key=None))]
    fn success_for(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<bool> {
        let client = self.core.client(py)?;
        let args = ResultArgs {
            error: None,
            reprocess_id: None,
            metadata,
        };
        let result = signals::result_for(&client, target, sp::ResultStatus::Success, args)?;
        self.enqueue(py, sp::Signal::Result(result), idempotency_key)
    }

    /// Queues a ``failure`` result for a verified event or a
    /// ``RepairCallback``.
    #[pyo3(signature = (target, error, *, metadata=None, idempotency_key=None))]
    fn failure_for(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        error: String,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<bool> {
        let client = self.core.client(py)?;
        let args = ResultArgs {
            error: Some(error),
            reprocess_id: None,
            metadata,
        };
        let result = signals::result_for(&client, target, sp::ResultStatus::Failure, args)?;
        self.enqueue(py, sp::Signal::Result(result), idempotency_key)
    }

    /// The counters (``BackgroundStats``).
    fn stats(&self, py: Python<'_>) -> PyResult<BackgroundStats> {
        Ok(self.live(py)?.stats().into())
    }

    /// Waits (the GIL released) until everything queued so far is delivered
    /// or dropped, at most ``timeout`` seconds; ``True`` if it all finished.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let (background, timeout) = (self.live(py)?, self::timeout(timeout)?);
        rt::block_on(py, async move { background.flush(timeout).await })
    }

    /// Closes the queue and delivers what is left for at most ``timeout``
    /// seconds (the rest is dropped and reported); returns the final
    /// ``BackgroundStats``. Later signals are dropped as ``closed``.
    #[pyo3(signature = (timeout=None))]
    fn shutdown(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<BackgroundStats> {
        let (background, timeout) = (self.live(py)?, self::timeout(timeout)?);
        let stats = rt::block_on(py, async move { background.shutdown(timeout).await })?;
        Ok(stats.into())
    }

    /// ``flush`` for asyncio: an awaitable of ``bool``.
    #[pyo3(signature = (timeout=None))]
    fn flush_async(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Pending> {
        let (background, timeout) = (self.live(py)?, self::timeout(timeout)?);
        Ok(Pending::new(rt::job(
            async move { Ok::<_, sp::Error>(background.flush(timeout).await) },
            |py, done: bool| Ok(PyBool::new(py, done).to_owned().into_any().unbind()),
        )))
    }

    /// ``shutdown`` for asyncio: an awaitable of ``BackgroundStats``.
    #[pyo3(signature = (timeout=None))]
    fn shutdown_async(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Pending> {
        let (background, timeout) = (self.live(py)?, self::timeout(timeout)?);
        Ok(Pending::new(rt::job(
            async move { Ok::<_, sp::Error>(background.shutdown(timeout).await) },
            stats_to_py,
        )))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Background({})", self.stats(py)?.__repr__()))
    }
}
