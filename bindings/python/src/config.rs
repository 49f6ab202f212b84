//! `RetryOn`, `RetryConfig` and `BackgroundConfig`: the Rust settings
//! structs, field for field, with durations as float seconds.

use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBool;
use sendpromptly_client as sp;

use crate::convert;
use crate::errors;

/// Which failures are worth another attempt (mirrors Rust ``RetryOn``).
///
/// Other 4xx answers are never retried. Every flag defaults to ``True``.
#[pyclass(module = "sendpromptly._native", eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct RetryOn {
    pub inner: sp::RetryOn,
}

#[pymethods]
impl RetryOn {
    #[new]
    #[pyo3(signature = (*, connection_errors=true, timeouts=true, too_many_requests=true, server_errors=true))]
    fn new(
        connection_errors: bool,
        timeouts: bool,
        too_many_requests: bool,
        server_errors: bool,
    ) -> Self {
        RetryOn {
            inner: sp::RetryOn {
                connection_errors,
                timeouts,
                too_many_requests,
                server_errors,
            },
        }
    }

    /// Retry nothing: one attempt per call.
    #[staticmethod]
    fn nothing() -> Self {
        RetryOn {
            inner: sp::RetryOn::NOTHING,
        }
    }

    /// Parses a comma-separated list of ``connect``, ``timeout``, ``429``,
    /// ``5xx`` (or ``none``), as in ``SENDPROMPTLY_RETRY_ON``.
    #[staticmethod]
    fn parse(py: Python<'_>, text: &str) -> PyResult<Self> {
        sp::RetryOn::parse(text)
            .map(|inner| RetryOn { inner })
            .map_err(|reason| errors::to_py(py, &config_error(reason)))
    }

    /// Connection refused, reset or closed before a complete answer.
    #[getter]
    fn get_connection_errors(&self) -> bool {
        self.inner.connection_errors
    }
    #[setter]
    fn set_connection_errors(&mut self, value: bool) {
        self.inner.connection_errors = value;
    }
    /// An attempt took longer than ``RetryConfig.attempt_timeout``.
    #[getter]
    fn get_timeouts(&self) -> bool {
        self.inner.timeouts
    }
    #[setter]
    fn set_timeouts(&mut self, value: bool) {
        self.inner.timeouts = value;
    }
    /// ``429 Too Many Requests`` (waiting at least its ``Retry-After``).
    #[getter]
    fn get_too_many_requests(&self) -> bool {
        self.inner.too_many_requests
    }
    #[setter]
    fn set_too_many_requests(&mut self, value: bool) {
        self.inner.too_many_requests = value;
    }
    /// Any ``5xx`` answer (and ``409 idempotency_key_in_flight``).
    #[getter]
    fn get_server_errors(&self) -> bool {
        self.inner.server_errors
    }
    #[setter]
    fn set_server_errors(&mut self, value: bool) {
        self.inner.server_errors = value;
    }

    fn __repr__(&self) -> String {
        let b = |v: bool| if v { "True" } else { "False" };
        format!(
            "RetryOn(connection_errors={}, timeouts={}, too_many_requests={}, server_errors={})",
            b(self.inner.connection_errors),
            b(self.inner.timeouts),
            b(self.inner.too_many_requests),
            b(self.inner.server_errors)
        )
    }
}

fn config_error(message: String) -> sp::Error {
    sp::Error::Config { message }
}

/// The retry policy of every call (mirrors Rust ``RetryConfig`` field for
/// field; durations are float seconds, a ``timedelta`` is accepted too).
///
/// One call makes at most ``max_attempts`` attempts and never takes longer
/// than ``total_budget`` in all, waits included. Between attempts it waits an
/// exponential backoff (``initial_backoff``, doubled each time, at most
/// ``max_backoff``), shortened by a random fraction of up to ``jitter``, or
/// longer when the server sends ``Retry-After``. Each POST carries one
/// ``Idempotency-Key``, reused on every retry.
///
/// Defaults: 3 attempts within 3 s (0.1 s initial backoff, 1 s max backoff,
/// jitter 0.5, 2 s per attempt), retrying connection errors, timeouts, 429
/// and 5xx.
#[pyclass(module = "sendpromptly._native", eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct RetryConfig {
    pub inner: sp::RetryConfig,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[pymethods]
impl RetryConfig {
    #[new]
    #[pyo3(signature = (*, max_attempts=None, initial_backoff=None, max_backoff=None, jitter=None, total_budget=None, attempt_timeout=None, retry_on=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        max_attempts: Option<&Bound<'_, PyAny>>,
        initial_backoff: Option<&Bound<'_, PyAny>>,
        max_backoff: Option<&Bound<'_, PyAny>>,
        jitter: Option<f64>,
        total_budget: Option<&Bound<'_, PyAny>>,
        attempt_timeout: Option<&Bound<'_, PyAny>>,
        retry_on: Option<RetryOn>,
    ) -> PyResult<Self> {
        let mut config = RetryConfig {
            inner: sp::RetryConfig::default(),
        };
        if let Some(v) = max_attempts {
            config.set_max_attempts(v)?;
        }
        if let Some(v) = initial_backoff {
            config.inner.initial_backoff = convert::duration(v, "initial_backoff")?;
        }
        if let Some(v) = max_backoff {
            config.inner.max_backoff = convert::duration(v, "max_backoff")?;
        }
        if let Some(v) = jitter {
            config.inner.jitter = v;
        }
        if let Some(v) = total_budget {
            config.inner.total_budget = convert::duration(v, "total_budget")?;
        }
        if let Some(v) = attempt_timeout {
            config.inner.attempt_timeout = convert::duration(v, "attempt_timeout")?;
        }
        if let Some(v) = retry_on {
            config.inner.retry_on = v.inner;
        }
        Ok(config)
    }

    /// The policy of background mode: up to 20 attempts within 5 minutes,
    /// backoff from 0.5 s up to 30 s, 10 s per attempt.
    #[staticmethod]
    fn background() -> Self {
        RetryConfig {
            inner: sp::RetryConfig::background(),
        }
    }

    /// A policy that makes exactly one attempt within ``timeout`` seconds.
    #[staticmethod]
    fn no_retries(timeout: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(RetryConfig {
            inner: sp::RetryConfig::no_retries(convert::duration(timeout, "timeout")?),
        })
    }

    /// The defaults with the ``SENDPROMPTLY_RETRY_*`` environment overrides
    /// (``MAX_ATTEMPTS``, ``INITIAL_BACKOFF_MS``, ``MAX_BACKOFF_MS``,
    /// ``JITTER``, ``TOTAL_BUDGET_MS``, ``ATTEMPT_TIMEOUT_MS``, ``ON``).
    /// Raises ``ConfigurationError`` naming a bad variable.
    #[staticmethod]
    fn from_env(py: Python<'_>) -> PyResult<Self> {
        sp::RetryConfig::from_env()
            .map(|inner| RetryConfig { inner })
            .map_err(|err| errors::to_py(py, &err))
    }

    /// Raises ``ConfigurationError`` unless the policy makes sense: at
    /// least one attempt, a jitter between 0 and 1, a non-zero budget and
    /// attempt timeout.
    fn validate(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.validate().map_err(|err| errors::to_py(py, &err))
    }

    /// The backoff in seconds before retry number ``retry`` (1 = the first
    /// retry), before any ``Retry-After``; ``jitter_unit`` is a number in
    /// ``[0, 1)`` (random in real calls).
    fn backoff(&self, retry: u32, jitter_unit: f64) -> f64 {
        secs(self.inner.backoff(retry, jitter_unit))
    }

    /// Most attempts per call, the first included (1 = never retry).
    #[getter]
    fn get_max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }
    #[setter]
    fn set_max_attempts(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.max_attempts = convert::whole_u32(Some(value), "max_attempts")?
            .ok_or_else(|| PyTypeError::new_err("max_attempts must be an int, not None"))?;
        Ok(())
    }
    /// Wait in seconds before the first retry; doubled before each further one.
    #[getter]
    fn get_initial_backoff(&self) -> f64 {
        secs(self.inner.initial_backoff)
    }
    #[setter]
    fn set_initial_backoff(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.initial_backoff = convert::duration(value, "initial_backoff")?;
        Ok(())
    }
    /// Longest wait in seconds between two attempts (a longer
    /// ``Retry-After`` still wins).
    #[getter]
    fn get_max_backoff(&self) -> f64 {
        secs(self.inner.max_backoff)
    }
    #[setter]
    fn set_max_backoff(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.max_backoff = convert::duration(value, "max_backoff")?;
        Ok(())
    }
    /// Fraction (0.0 – 1.0) of each backoff removed at random.
    #[getter]
    fn get_jitter(&self) -> f64 {
        self.inner.jitter
    }
    #[setter]
    fn set_jitter(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if value.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err("jitter must be a float, not bool"));
        }
        self.inner.jitter = value.extract()?;
        Ok(())
    }
    /// Longest time in seconds one call may take, all attempts and waits
    /// included.
    #[getter]
    fn get_total_budget(&self) -> f64 {
        secs(self.inner.total_budget)
    }
    #[setter]
    fn set_total_budget(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.total_budget = convert::duration(value, "total_budget")?;
        Ok(())
    }
    /// Longest time in seconds one attempt may take; always cut to what is
    /// left of ``total_budget``.
    #[getter]
    fn get_attempt_timeout(&self) -> f64 {
        secs(self.inner.attempt_timeout)
    }
    #[setter]
    fn set_attempt_timeout(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.attempt_timeout = convert::duration(value, "attempt_timeout")?;
        Ok(())
    }
    /// Which failures are retried (a copy: assign a new ``RetryOn`` to change it).
    #[getter]
    fn get_retry_on(&self) -> RetryOn {
        RetryOn {
            inner: self.inner.retry_on,
        }
    }
    #[setter]
    fn set_retry_on(&mut self, value: RetryOn) {
        self.inner.retry_on = value.inner;
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "RetryConfig(max_attempts={}, initial_backoff={:?}, max_backoff={:?}, jitter={:?}, total_budget={:?}, attempt_timeout={:?}, retry_on={})",
            r.max_attempts,
            secs(r.initial_backoff),
            secs(r.max_backoff),
            r.jitter,
            secs(r.total_budget),
            secs(r.attempt_timeout),
            self.get_retry_on().__repr__()
        )
    }
}

/// Settings of background mode (mirrors Rust ``BackgroundConfig``).
///
/// ``capacity`` signals may wait in the queue (default 10 000);
/// ``concurrency`` are delivered at once (default 4; 1 keeps strict order);
/// each under ``retry`` (default ``RetryConfig.background()``). ``on_drop``
/// is called with a ``DroppedSignal`` for every signal that could not be
/// delivered; keep it quick (it runs on an SDK thread or in the caller of an
/// enqueue), exceptions in it are reported and swallowed.
#[pyclass(module = "sendpromptly._native")]
pub struct BackgroundConfig {
    /// Most signals waiting in the queue.
    #[pyo3(get, set)]
    pub capacity: usize,
    /// Signals being delivered at once (1 keeps strict order).
    #[pyo3(get, set)]
    pub concurrency: usize,
    /// The retry policy of each signal, counted from when delivery starts.
    #[pyo3(get, set)]
    pub retry: RetryConfig,
    /// Called with a ``DroppedSignal`` for every dropped signal, or ``None``.
    #[pyo3(get, set)]
    pub on_drop: Option<Py<PyAny>>,
}

impl BackgroundConfig {
    fn from_rust(config: sp::BackgroundConfig) -> Self {
        BackgroundConfig {
            capacity: config.capacity,
            concurrency: config.concurrency,
            retry: RetryConfig {
                inner: config.retry,
            },
            on_drop: None,
        }
    }
}

#[pymethods]
impl BackgroundConfig {
    #[new]
    #[pyo3(signature = (*, capacity=None, concurrency=None, retry=None, on_drop=None))]
    fn new(
        capacity: Option<usize>,
        concurrency: Option<usize>,
        retry: Option<RetryConfig>,
        on_drop: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let mut config = BackgroundConfig::from_rust(sp::BackgroundConfig::default());
        if let Some(v) = capacity {
            config.capacity = v;
        }
        if let Some(v) = concurrency {
            config.concurrency = v;
        }
        if let Some(v) = retry {
            config.retry = v;
        }
        config.on_drop = on_drop;
        Ok(config)
    }

    /// The defaults with the environment overrides
    /// (``SENDPROMPTLY_BACKGROUND_CAPACITY``,
    /// ``SENDPROMPTLY_BACKGROUND_CONCURRENCY``,
    /// ``SENDPROMPTLY_BACKGROUND_RETRY_*``).
    #[staticmethod]
    fn from_env(py: Python<'_>) -> PyResult<Self> {
        sp::BackgroundConfig::from_env()
            .map(BackgroundConfig::from_rust)
            .map_err(|err| errors::to_py(py, &err))
    }

    fn __repr__(&self) -> String {
        format!(
            "BackgroundConfig(capacity={}, concurrency={}, retry={}, on_drop={})",
            self.capacity,
            self.concurrency,
            self.retry.__repr__(),
            if self.on_drop.is_some() {
                "<callable>"
            } else {
                "None"
            }
        )
    }
}
