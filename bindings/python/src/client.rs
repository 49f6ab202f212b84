//! `Client` (sync, the GIL released while waiting) and `AsyncClient`
//! (asyncio): the same methods, generated once by `client_class!`, each
//! converting its arguments and calling `sendpromptly_client::Client`.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use sendpromptly_client as sp;

use crate::background::Background;
use crate::config::{BackgroundConfig, RetryConfig};
use crate::convert;
use crate::errors;
use crate::rt::{self, Job, Pending};
use crate::signals::{self, ReceiptArgs, ResultArgs};

/// The `User-Agent` suffix of this package.
pub const USER_AGENT: &str = concat!("sendpromptly-python/", env!("CARGO_PKG_VERSION"));

/// The Rust client of one Python client, rebuilt in a forked child (its
/// connection pool belongs to the parent's runtime).
pub struct Core {
    options: sp::ClientOptions,
    live: Mutex<(u32, sp::Client)>,
}

impl Core {
    fn new(options: sp::ClientOptions) -> Result<Core, sp::Error> {
        let client = sp::Client::with_options(options.clone())?;
        Ok(Core {
            options,
            live: Mutex::new((std::process::id(), client)),
        })
    }

    /// The client of this process.
    pub fn client(&self, py: Python<'_>) -> PyResult<sp::Client> {
        let pid = std::process::id();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.0 != pid {
            let fresh = sp::Client::with_options(self.options.clone())
                .map_err(|err| errors::to_py(py, &err))?
                .with_retry(live.1.retry_config().clone());
            // The parent's pool is abandoned, not dropped: its connection
            // tasks lived on threads that do not exist in this process.
            std::mem::forget(std::mem::replace(&mut live.1, fresh));
            live.0 = pid;
        }
        Ok(live.1.clone())
    }

    fn with_retry(&self, py: Python<'_>, retry: sp::RetryConfig) -> PyResult<Core> {
        retry.validate().map_err(|err| errors::to_py(py, &err))?;
        let client = self.client(py)?.with_retry(retry.clone());
        Ok(Core {
            options: sp::ClientOptions {
                retry,
                ..self.options.clone()
            },
            live: Mutex::new((std::process::id(), client)),
        })
    }
}

/// Options from the environment, overridden by the arguments given.
fn build_core(
    py: Python<'_>,
    api_key: Option<String>,
    base_url: Option<String>,
    retry: Option<RetryConfig>,
    connect_timeout: Option<&Bound<'_, PyAny>>,
) -> PyResult<Core> {
    let mut options = sp::ClientOptions::from_env().map_err(|err| errors::to_py(py, &err))?;
    if api_key.is_some() {
        options.api_key = api_key;
    }
    if base_url.is_some() {
        options.base_url = base_url;
    }
    if let Some(retry) = retry {
        options.retry = retry.inner;
    }
    if let Some(timeout) = connect_timeout.filter(|t| !t.is_none()) {
        options.connect_timeout = convert::duration(timeout, "connect_timeout")?;
    }
    options.user_agent_suffix = Some(USER_AGENT.to_owned());
    Core::new(options).map_err(|err| errors::to_py(py, &err))
}

/// The answer to a receipt or a result.
#[pyclass(module = "sendpromptly._native", frozen)]
pub struct SignalResponse {
    /// The event after the signal (a dict: ``provider``, ``event_id``,
    /// ``state``, ``deadline_at``, ``deliveries``, …).
    #[pyo3(get)]
    event: Py<PyAny>,
    /// Its incident (a dict), or ``None``.
    #[pyo3(get)]
    incident: Py<PyAny>,
    /// The HTTP status: 201 for a new event's receipt, 200 otherwise.
    #[pyo3(get)]
    status: u16,
    /// The server's ``Request-Id`` (quote it to support).
    #[pyo3(get)]
    request_id: Option<String>,
    /// Whether the server replayed an earlier answer to the same
    /// ``Idempotency-Key`` (an earlier attempt was recorded, its answer lost).
    #[pyo3(get)]
    replayed: bool,
    /// How many attempts the call made.
    #[pyo3(get)]
    attempts: u32,
    /// The ``Idempotency-Key`` sent (the same on every attempt).
    #[pyo3(get)]
    idempotency_key: Option<String>,
}

#[pymethods]
impl SignalResponse {
    /// Whether this receipt created the event (HTTP 201) rather than
    /// recording a duplicate delivery of a known one (HTTP 200).
    #[getter]
    fn created(&self) -> bool {
        self.status == 201
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        let event = self.event.bind(py);
        let get = |k: &str| {
            event
                .get_item(k)
                .ok()
                .and_then(|v| v.str().ok())
                .map(|s| s.to_string())
                .unwrap_or_default()
        };
        format!(
            "SignalResponse(status={}, event_id={:?}, state={:?}, replayed={})",
            self.status,
            get("event_id"),
            get("state"),
            if self.replayed { "True" } else { "False" }
        )
    }
}

fn signal_response(py: Python<'_>, response: sp::SignalResponse) -> PyResult<Py<PyAny>> {
    let meta = response.meta.clone();
    let out = SignalResponse {
        event: convert::serialize_to_py(py, &response.event)?,
        incident: convert::serialize_to_py(py, &response.incident)?,
        status: meta.status,
        request_id: meta.request_id,
        replayed: meta.replayed,
        attempts: meta.attempts,
        idempotency_key: meta.idempotency_key,
    };
    Ok(Py::new(py, out)?.into_any())
}

fn plain<T: serde::Serialize>(py: Python<'_>, value: T) -> PyResult<Py<PyAny>> {
    convert::serialize_to_py(py, &value)
}

fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

fn dispatch_sync(py: Python<'_>, job: Job) -> PyResult<Py<PyAny>> {
    rt::run_sync(py, job)
}

fn dispatch_async(py: Python<'_>, job: Job) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, Pending::new(job))?.into_any())
}

/// The `PATCH /v1/project` body from keyword arguments; a key that is
/// absent stays unchanged, `repair_url=None` removes the repair endpoint.
fn project_update(changes: Option<&Bound<'_, PyDict>>) -> PyResult<sp::ProjectUpdate> {
    let mut update = sp::ProjectUpdate::default();
    let Some(changes) = changes else {
        return Ok(update);
    };
    for (key, value) in changes.iter() {
        let key: String = key.extract()?;
        match key.as_str() {
            "repair_url" => {
                update.repair_url = Some(if value.is_none() {
                    None
                } else {
                    Some(value.extract::<String>().map_err(|_| {
                        pyo3::exceptions::PyTypeError::new_err("repair_url must be a str or None")
                    })?)
                });
            }
            "default_deadline_seconds" => {
                update.default_deadline_seconds =
                    convert::whole_u32(Some(&value), "default_deadline_seconds")?;
            }
            "deadlines_by_event_type" => {
                let map = convert::to_json_object(&value, "deadlines_by_event_type")?;
                let mut out = std::collections::BTreeMap::new();
                for (event_type, seconds) in map {
                    let seconds = seconds
                        .as_u64()
                        .and_then(|s| u32::try_from(s).ok())
                        .ok_or_else(|| {
                            pyo3::exceptions::PyValueError::new_err(format!(
                                "deadlines_by_event_type[{event_type:?}] must be a whole number of seconds"
                            ))
                        })?;
                    out.insert(event_type, seconds);
                }
                update.deadlines_by_event_type = Some(out);
            }
            "alert_channels" => {
                update.alert_channels = Some(convert::to_json(&value, "alert_channels")?);
            }
            "proof_show_metadata" => {
                update.proof_show_metadata = Some(value.extract::<bool>().map_err(|_| {
                    pyo3::exceptions::PyTypeError::new_err("proof_show_metadata must be a bool")
                })?);
            }
            other => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "update_project() got an unexpected keyword argument {other:?}; expected repair_url, default_deadline_seconds, deadlines_by_event_type, alert_channels or proof_show_metadata"
                )));
            }
        }
    }
    Ok(update)
}

/// The body of `POST /v1/reprocess-batches` from keyword arguments: a
/// filter or `incident_ids`, and the pacing (`rate_per_second`,
/// `concurrency`, `note`). Which combinations are valid is the server's
/// (and the Rust SDK's) business; only the Python types are checked here.
#[allow(clippy::too_many_arguments)]
fn batch_request(
    incident_ids: Option<Vec<String>>,
    state: Option<String>,
    kind: Option<String>,
    provider: Option<&str>,
    event_type: Option<String>,
    subject: Option<String>,
    opened_after: Option<&Bound<'_, PyAny>>,
    opened_before: Option<&Bound<'_, PyAny>>,
    rate_per_second: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    note: Option<String>,
) -> PyResult<sp::ReprocessBatchRequest> {
    let time = |v: Option<&Bound<'_, PyAny>>, name| {
        v.filter(|v| !v.is_none())
            .map(|v| convert::timestamp(v, name))
            .transpose()
    };
    Ok(sp::ReprocessBatchRequest {
        incident_ids,
        state: convert::wire("state", state, "open, reprocessing, resolved")?,
        kind: convert::wire("kind", kind, "missing_result, failed_result")?,
        provider: provider.map(convert::provider).transpose()?,
        event_type,
        subject,
        opened_after: time(opened_after, "opened_after")?,
        opened_before: time(opened_before, "opened_before")?,
        dry_run: false,
        rate_per_second: convert::number(rate_per_second, "rate_per_second")?,
        concurrency: convert::whole_u32(concurrency, "concurrency")?,
        note,
    })
}

macro_rules! client_class {
    ($cls:ident, $dispatch:path, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(module = "sendpromptly._native", frozen)]
        pub struct $cls {
            core: Arc<Core>,
        }

        #[pymethods]
        impl $cls {
            #[new]
            #[pyo3(signature = (api_key=None, base_url=None, *, retry=None, connect_timeout=None))]
            fn new(
                py: Python<'_>,
                api_key: Option<String>,
                base_url: Option<String>,
                retry: Option<RetryConfig>,
                connect_timeout: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Self> {
                let core = build_core(py, api_key, base_url, retry, connect_timeout)?;
                Ok($cls { core: Arc::new(core) })
            }

            /// A client configured from the environment only:
            /// ``SENDPROMPTLY_API_KEY``, ``SENDPROMPTLY_URL``,
            /// ``SENDPROMPTLY_CONNECT_TIMEOUT_MS`` and the
            /// ``SENDPROMPTLY_RETRY_*`` overrides.
            #[staticmethod]
            fn from_env(py: Python<'_>) -> PyResult<Self> {
                Self::new(py, None, None, None, None)
            }

            /// The base URL (with a trailing slash).
            #[getter]
            fn base_url(&self, py: Python<'_>) -> PyResult<String> {
                Ok(self.core.client(py)?.base_url().to_owned())
            }

            /// The retry policy in force (a copy).
            #[getter]
            fn retry(&self, py: Python<'_>) -> PyResult<RetryConfig> {
                Ok(RetryConfig {
                    inner: self.core.client(py)?.retry_config().clone(),
                })
            }

            /// The same client (same connection pool) with another retry
            /// policy.
            fn with_retry(&self, py: Python<'_>, retry: RetryConfig) -> PyResult<Self> {
                Ok($cls {
                    core: Arc::new(self.core.with_retry(py, retry.inner)?),
                })
            }

            /// Starts background mode: a bounded in-process queue drained by
            /// SDK threads, so a webhook handler returns at once. See
            /// ``Background``.
            #[pyo3(signature = (config=None))]
            fn background(
                &self,
                py: Python<'_>,
                config: Option<PyRef<'_, BackgroundConfig>>,
            ) -> PyResult<Background> {
                Background::start(py, Arc::clone(&self.core), config)
            }

            /// Records a receipt (``POST /v1/receipt``): the app durably
            /// accepted this event. Returns a ``SignalResponse``
            /// (``created`` is ``False`` for a duplicate delivery).
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
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let args = ReceiptArgs { subject, effect, deadline_seconds, metadata, occurred_at };
                let receipt = signals::receipt(&client, provider, event_id, event_type, args)?;
                $dispatch(py, rt::job(
                    async move { client.post_receipt(&receipt, idempotency_key).await },
                    signal_response,
                ))
            }

            /// Records a receipt filled from a verified provider event (the
            /// dict ``sendpromptly.stripe.verify`` returns, or a
            /// ``ShopifyDelivery``): provider, event id, type, subject,
            /// ``occurred_at`` and object metadata. ``metadata`` entries are
            /// added to those.
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
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let args = ReceiptArgs { subject, effect, deadline_seconds, metadata, occurred_at: None };
                let receipt = signals::receipt_for(&client, event, args)?;
                $dispatch(py, rt::job(
                    async move { client.post_receipt(&receipt, idempotency_key).await },
                    signal_response,
                ))
            }

            /// Records a result (``POST /v1/result``) with an explicit
            /// ``status`` (``"success"`` or ``"failure"``).
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
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let args = ResultArgs { error, reprocess_id, metadata };
                let result = signals::result(&client, provider, event_id, status, args)?;
                $dispatch(py, rt::job(
                    async move { client.post_result(&result, idempotency_key).await },
                    signal_response,
                ))
            }

            /// Records a ``success`` result: the business effect was applied.
            #[pyo3(signature = (*, provider, event_id, reprocess_id=None, metadata=None, idempotency_key=None))]
            fn success(
                &self,
                py: Python<'_>,
                provider: &str,
                event_id: String,
                reprocess_id: Option<String>,
                metadata: Option<&Bound<'_, PyAny>>,
                idempotency_key: Option<String>,
            ) -> PyResult<Py<PyAny>> {
                self.result(py, provider, event_id, "success", None, reprocess_id, metadata, idempotency_key)
            }

            /// Records a ``failure`` result: the business effect could not be
            /// applied; ``error`` says why (at most 4 KiB). Opens an incident.
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
            ) -> PyResult<Py<PyAny>> {
                self.result(py, provider, event_id, "failure", Some(error), reprocess_id, metadata, idempotency_key)
            }

            /// Records a ``success`` result for a verified event or a
            /// ``RepairCallback`` (which also links it to the reprocess).
            #[pyo3(signature = (target, *, metadata=None, idempotency_key=None))]
            fn success_for(
                &self,
                py: Python<'_>,
                target: &Bound<'_, PyAny>,
                metadata: Option<&Bound<'_, PyAny>>,
                idempotency_key: Option<String>,
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let args = ResultArgs { error: None, reprocess_id: None, metadata };
                let result = signals::result_for(&client, target, sp::ResultStatus::Success, args)?;
                $dispatch(py, rt::job(
                    async move { client.post_result(&result, idempotency_key).await },
                    signal_response,
                ))
            }

            /// Records a ``failure`` result for a verified event or a
            /// ``RepairCallback``.
            #[pyo3(signature = (target, error, *, metadata=None, idempotency_key=None))]
            fn failure_for(
                &self,
                py: Python<'_>,
                target: &Bound<'_, PyAny>,
                error: String,
                metadata: Option<&Bound<'_, PyAny>>,
                idempotency_key: Option<String>,
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let args = ResultArgs { error: Some(error), reprocess_id: None, metadata };
                let result = signals::result_for(&client, target, sp::ResultStatus::Failure, args)?;
                $dispatch(py, rt::job(
                    async move { client.post_result(&result, idempotency_key).await },
                    signal_response,
                ))
            }

            /// One event with its timeline and incident (a dict:
            /// ``event``, ``incident``, ``timeline``).
            fn get_event(&self, py: Python<'_>, provider: &str, event_id: String) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let provider = convert::provider(provider)?;
                $dispatch(py, rt::job(
                    async move { client.get_event(provider, &event_id).await },
                    plain,
                ))
            }

            /// Searches events, newest first (e.g. every event of one
            /// customer). Returns ``{"data": [...], "next_cursor": ...}``.
            #[pyo3(signature = (*, subject=None, state=None, event_id=None, limit=None, cursor=None, livemode=None))]
            #[allow(clippy::too_many_arguments)]
            fn search_events(
                &self,
                py: Python<'_>,
                subject: Option<String>,
                state: Option<String>,
                event_id: Option<String>,
                limit: Option<&Bound<'_, PyAny>>,
                cursor: Option<String>,
                livemode: Option<bool>,
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let filter = sp::EventFilter {
                    subject,
                    state: convert::wire("state", state, "awaiting_receipt, awaiting_result, succeeded, failed, overdue")?,
                    event_id,
                    livemode,
                    limit: convert::whole_u32(limit, "limit")?,
                    cursor,
                };
                filter.validate().map_err(|v| errors::to_py(py, &sp::Error::from(v)))?;
                $dispatch(py, rt::job(async move { client.search_events(&filter).await }, plain))
            }

            /// Lists incidents, most recently opened first, one page at a
            /// time. Returns ``{"data": [...], "next_cursor": ...}``.
            #[pyo3(signature = (*, state=None, kind=None, provider=None, event_type=None, subject=None, opened_after=None, opened_before=None, limit=None, cursor=None, livemode=None))]
            #[allow(clippy::too_many_arguments)]
            fn list_incidents(
                &self,
                py: Python<'_>,
                state: Option<String>,
                kind: Option<String>,
                provider: Option<&str>,
                event_type: Option<String>,
                subject: Option<String>,
                opened_after: Option<&Bound<'_, PyAny>>,
                opened_before: Option<&Bound<'_, PyAny>>,
                limit: Option<&Bound<'_, PyAny>>,
                cursor: Option<String>,
                livemode: Option<bool>,
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let time = |v: Option<&Bound<'_, PyAny>>, name| {
                    v.filter(|v| !v.is_none()).map(|v| convert::timestamp(v, name)).transpose()
                };
                let filter = sp::IncidentFilter {
                    state: convert::wire("state", state, "open, reprocessing, resolved")?,
                    kind: convert::wire("kind", kind, "missing_result, failed_result, missing_receipt")?,
                    provider: provider.map(convert::provider).transpose()?,
                    event_type,
                    subject,
                    opened_after: time(opened_after, "opened_after")?,
                    opened_before: time(opened_before, "opened_before")?,
                    livemode,
                    limit: convert::whole_u32(limit, "limit")?,
                    cursor,
                };
                filter.validate().map_err(|v| errors::to_py(py, &sp::Error::from(v)))?;
                $dispatch(py, rt::job(async move { client.list_incidents(&filter).await }, plain))
            }

            /// One incident, its event and its full timeline (a dict).
            fn get_incident(&self, py: Python<'_>, incident_id: String) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(async move { client.get_incident(&incident_id).await }, plain))
            }

            /// Asks the server to send a signed repair callback for the
            /// incident. Returns ``{"reprocess_id", "incident"}``; a
            /// ``ConflictError`` means an earlier callback is still being
            /// delivered.
            #[pyo3(signature = (incident_id, *, note=None))]
            fn reprocess(&self, py: Python<'_>, incident_id: String, note: Option<String>) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(
                    async move { client.reprocess(&incident_id, note.as_deref()).await },
                    plain,
                ))
            }

            /// Resolves an incident by hand; ``note`` says why (required).
            #[pyo3(signature = (incident_id, *, note))]
            fn resolve(&self, py: Python<'_>, incident_id: String, note: String) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(
                    async move { client.resolve(&incident_id, &note).await },
                    plain,
                ))
            }

            /// Creates a proof link: a read-only, expiring, revocable page of
            /// the incident's timeline. ``expires_in`` is in seconds (or a
            /// ``timedelta``; default 7 days, at most 90). Returns
            /// ``{"id", "url", "expires_at"}``.
            #[pyo3(signature = (incident_id, *, expires_in=None))]
            fn create_proof_link(
                &self,
                py: Python<'_>,
                incident_id: String,
                expires_in: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let expires_in = expires_in
                    .filter(|v| !v.is_none())
                    .map(|v| convert::duration(v, "expires_in"))
                    .transpose()?;
                $dispatch(py, rt::job(
                    async move { client.create_proof_link(&incident_id, expires_in).await },
                    plain,
                ))
            }

            /// The incident's proof links (never their tokens).
            fn list_proof_links(&self, py: Python<'_>, incident_id: String) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(
                    async move { client.list_proof_links(&incident_id).await },
                    plain,
                ))
            }

            /// Revokes a proof link; its page answers 404 from then on.
            fn revoke_proof_link(&self, py: Python<'_>, proof_link_id: String) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(
                    async move { client.revoke_proof_link(&proof_link_id).await },
                    none,
                ))
            }

            /// Plans a bulk reprocess without sending anything (a dry run):
            /// select by filter (``state``, ``kind``, ``provider``,
            /// ``event_type``, ``subject``, ``opened_after``,
            /// ``opened_before``) or by ``incident_ids``, not both. Returns
            /// the plan (a dict: ``total``, ``to_send``, ``skipped``,
            /// ``by_event_type``, ``skipped_by_reason``, ``incidents``).
            #[pyo3(signature = (*, incident_ids=None, state=None, kind=None, provider=None, event_type=None, subject=None, opened_after=None, opened_before=None, rate_per_second=None, concurrency=None, note=None))]
            #[allow(clippy::too_many_arguments)]
            fn plan_reprocess_batch(
                &self,
                py: Python<'_>,
                incident_ids: Option<Vec<String>>,
                state: Option<String>,
                kind: Option<String>,
                provider: Option<&str>,
                event_type: Option<String>,
                subject: Option<String>,
                opened_after: Option<&Bound<'_, PyAny>>,
                opened_before: Option<&Bound<'_, PyAny>>,
                rate_per_second: Option<&Bound<'_, PyAny>>,
                concurrency: Option<&Bound<'_, PyAny>>,
                note: Option<String>,
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let request = batch_request(
                    incident_ids, state, kind, provider, event_type, subject,
                    opened_after, opened_before, rate_per_second, concurrency, note,
                )?;
                $dispatch(py, rt::job(
                    async move { client.plan_reprocess_batch(&request).await },
                    plain,
                ))
            }

            /// Starts a bulk reprocess: the same selection as
            /// ``plan_reprocess_batch``, paced at ``rate_per_second``
            /// (default 10) with at most ``concurrency`` callbacks in flight
            /// (default 5); ``note`` goes on each incident's timeline.
            /// Returns the batch (a dict with ``id``, ``state``, ``counts``,
            /// ``items``); follow it with ``reprocess_batch``.
            #[pyo3(signature = (*, incident_ids=None, state=None, kind=None, provider=None, event_type=None, subject=None, opened_after=None, opened_before=None, rate_per_second=None, concurrency=None, note=None))]
            #[allow(clippy::too_many_arguments)]
            fn start_reprocess_batch(
                &self,
                py: Python<'_>,
                incident_ids: Option<Vec<String>>,
                state: Option<String>,
                kind: Option<String>,
                provider: Option<&str>,
                event_type: Option<String>,
                subject: Option<String>,
                opened_after: Option<&Bound<'_, PyAny>>,
                opened_before: Option<&Bound<'_, PyAny>>,
                rate_per_second: Option<&Bound<'_, PyAny>>,
                concurrency: Option<&Bound<'_, PyAny>>,
                note: Option<String>,
            ) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let request = batch_request(
                    incident_ids, state, kind, provider, event_type, subject,
                    opened_after, opened_before, rate_per_second, concurrency, note,
                )?;
                $dispatch(py, rt::job(
                    async move { client.start_reprocess_batch(&request).await },
                    plain,
                ))
            }

            /// A batch's progress (``state``, ``counts``) and first items
            /// (a dict).
            fn reprocess_batch(&self, py: Python<'_>, batch_id: String) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(
                    async move { client.reprocess_batch(&batch_id).await },
                    plain,
                ))
            }

            /// Cancels a batch: incidents not sent yet are not sent;
            /// callbacks already sent finish. Returns the batch (a dict).
            fn cancel_reprocess_batch(&self, py: Python<'_>, batch_id: String) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(
                    async move { client.cancel_reprocess_batch(&batch_id).await },
                    plain,
                ))
            }

            /// The project settings (a dict).
            fn project(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(async move { client.project().await }, plain))
            }

            /// Changes the project settings: ``repair_url`` (``None``
            /// removes it), ``default_deadline_seconds``,
            /// ``deadlines_by_event_type``, ``alert_channels``,
            /// ``proof_show_metadata``. Settings not passed stay as they are.
            #[pyo3(signature = (**changes))]
            fn update_project(&self, py: Python<'_>, changes: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                let update = project_update(changes)?;
                $dispatch(py, rt::job(async move { client.update_project(&update).await }, plain))
            }

            /// Creates a new repair-callback signing secret, returned only
            /// this once (``{"secret", ...}``); the previous ones keep
            /// signing for 24 hours.
            fn rotate_signing_secret(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(async move { client.rotate_signing_secret().await }, plain))
            }

            /// ``GET /healthz``: ``{"status": "ok", "version": ...}``.
            fn health(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let client = self.core.client(py)?;
                $dispatch(py, rt::job(async move { client.health().await }, plain))
            }

            fn __repr__(&self, py: Python<'_>) -> String {
                let url = self.base_url(py).unwrap_or_default();
                format!("{}(base_url={url:?})", stringify!($cls))
            }
        }
    };
}

client_class!(
    Client,
    dispatch_sync,
    "A SendPromptly API client (synchronous).\n\n\
     ``Client(api_key=None, base_url=None, *, retry=None, connect_timeout=None)``;\n\
     a missing key or URL is read from ``SENDPROMPTLY_API_KEY`` / ``SENDPROMPTLY_URL``.\n\
     Every call runs under the client's ``RetryConfig`` (at most 3 attempts within\n\
     3 s by default) with one ``Idempotency-Key`` per call, and releases the GIL\n\
     while it waits. Thread-safe; build one per process and share it. Safe to use\n\
     after ``os.fork()`` (the child gets its own connection pool)."
);

client_class!(
    AsyncClient,
    dispatch_async,
    "A SendPromptly API client for asyncio.\n\n\
     The same constructor and methods as ``Client``; each method returns an\n\
     awaitable that runs when awaited (inside a running event loop).\n\
     Cancelling the awaiting task cancels the call."
);
