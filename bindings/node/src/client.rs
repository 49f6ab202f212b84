//! `Client`: the Promise-based API calls. Every method converts its options,
//! awaits the Rust client on napi's Tokio runtime (never on the JavaScript
//! thread) and converts the answer.

use std::collections::BTreeMap;
use std::time::Duration;

use napi_derive::napi;
use sendpromptly_client::core::validation::MAX_PAGE_LIMIT;
use sendpromptly_client::{
    Client, Error, EventFilter, EventState, IncidentFilter, IncidentKind, IncidentState,
    ProjectUpdate, ReprocessBatchRequest, ResultStatus, Timestamp,
};
use serde_json::Value;

use napi::Status;
use napi::threadsafe_function::ThreadsafeFunction;

use crate::background::{BackgroundOptions, NativeBackground};
use crate::convert::{self, NativeClientOptions, ReceiptOptions, ResultOptions, to_json};
use crate::errors::{self, validation};

fn done(result: Result<Value, Error>) -> napi::Result<Value> {
    result.map_err(|err| errors::client(&err))
}

/// Filters of `searchEvents`.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct EventFilterOptions {
    /// The customer or account the events are for.
    pub subject: Option<String>,
    /// `awaiting_result`, `succeeded`, `failed` or `overdue`.
    pub state: Option<String>,
    /// One event id.
    pub event_id: Option<String>,
    /// `true`: live-mode events only; `false`: test-mode events only.
    pub livemode: Option<bool>,
    /// Most events per page: 1–100 (default 20).
    pub limit: Option<f64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Filters of `listIncidents`.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct IncidentFilterOptions {
    /// `open`, `reprocessing` or `resolved`.
    pub state: Option<String>,
    /// `missing_result`, `failed_result` or `missing_receipt`.
    pub kind: Option<String>,
    /// `stripe`, `shopify` or `custom`.
    pub provider: Option<String>,
    /// The event type, e.g. `invoice.paid`.
    pub event_type: Option<String>,
    /// The customer or account.
    pub subject: Option<String>,
    /// Only incidents opened after this RFC 3339 time.
    pub opened_after: Option<String>,
    /// Only incidents opened before this RFC 3339 time.
    pub opened_before: Option<String>,
    /// `true`: live-mode incidents only; `false`: test-mode incidents only.
    pub livemode: Option<bool>,
    /// Most incidents per page: 1–100 (default 20).
    pub limit: Option<f64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse<T: std::str::FromStr>(param: &str, value: Option<String>) -> Result<Option<T>, Error>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|err| validation(param, err.to_string()))
        })
        .transpose()
}

fn time(param: &str, value: Option<String>) -> Result<Option<Timestamp>, Error> {
    value
        .map(|v| {
            Timestamp::parse_rfc3339(&v)
                .map_err(|err| validation(param, format!("must be an RFC 3339 time: {err}")))
        })
        .transpose()
}

/// A page size: a whole number from 1 to the contract's
/// [`MAX_PAGE_LIMIT`] (100, what the server accepts), refused before sending.
fn limit(value: Option<f64>) -> Result<Option<u32>, Error> {
    value
        .map(|n| {
            if n.is_finite() && n.fract() == 0.0 && (1.0..=f64::from(MAX_PAGE_LIMIT)).contains(&n) {
                Ok(n as u32)
            } else {
                Err(validation(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE_LIMIT}, got {n}"),
                ))
            }
        })
        .transpose()
}

fn event_filter(options: EventFilterOptions) -> Result<EventFilter, Error> {
    Ok(EventFilter {
        subject: options.subject,
        state: parse::<EventState>("state", options.state)?,
        event_id: options.event_id,
        livemode: options.livemode,
        limit: limit(options.limit)?,
        cursor: options.cursor,
    })
}

fn incident_filter(options: IncidentFilterOptions) -> Result<IncidentFilter, Error> {
    Ok(IncidentFilter {
        state: parse::<IncidentState>("state", options.state)?,
        kind: parse::<IncidentKind>("kind", options.kind)?,
        provider: options
            .provider
            .as_deref()
            .map(convert::provider)
            .transpose()?,
        event_type: options.event_type,
        subject: options.subject,
        opened_after: time("opened_after", options.opened_after)?,
        opened_before: time("opened_before", options.opened_before)?,
        livemode: options.livemode,
        limit: limit(options.limit)?,
        cursor: options.cursor,
    })
}

/// What `planReprocessBatch` and `startReprocessBatch` select and how the
/// batch is paced: either filter fields or `incidentIds`, not both.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct ReprocessBatchOptions {
    /// Explicit `inc_` ids (at most 10 000); excludes the filter fields.
    pub incident_ids: Option<Vec<String>>,
    /// `open`, `reprocessing` or `resolved`.
    pub state: Option<String>,
    /// `missing_result` or `failed_result`.
    pub kind: Option<String>,
    /// `stripe`, `shopify` or `custom`.
    pub provider: Option<String>,
    /// The event type, e.g. `invoice.paid`.
    pub event_type: Option<String>,
    /// The customer or account.
    pub subject: Option<String>,
    /// Only incidents opened at or after this RFC 3339 time (or a `Date`, converted by the package).
    pub opened_after: Option<String>,
    /// Only incidents opened before this RFC 3339 time (or a `Date`).
    pub opened_before: Option<String>,
    /// Repair callbacks started per second (0.01 – 1000, default 10).
    pub rate_per_second: Option<f64>,
    /// At most this many of the batch's callbacks in flight (1 – 100, default 5).
    pub concurrency: Option<f64>,
    /// A note added to each incident's timeline.
    pub note: Option<String>,
}

fn batch_request(options: ReprocessBatchOptions) -> Result<ReprocessBatchRequest, Error> {
    let concurrency = options
        .concurrency
        .map(|n| {
            if n.is_finite() && n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
                Ok(n as u32)
            } else {
                Err(validation(
                    "concurrency",
                    format!("must be a whole number, got {n}"),
                ))
            }
        })
        .transpose()?;
    Ok(ReprocessBatchRequest {
        incident_ids: options.incident_ids,
        state: parse::<IncidentState>("state", options.state)?,
        kind: parse::<IncidentKind>("kind", options.kind)?,
        provider: options
            .provider
            .as_deref()
            .map(convert::provider)
            .transpose()?,
        event_type: options.event_type,
        subject: options.subject,
        opened_after: time("opened_after", options.opened_after)?,
        opened_before: time("opened_before", options.opened_before)?,
        dry_run: false,
        rate_per_second: options.rate_per_second,
        concurrency,
        note: options.note,
    })
}

/// `PATCH /v1/project` from a camelCase object; `repairUrl: null` clears
/// the repair URL, an absent field is left unchanged.
fn project_update(update: Value) -> Result<ProjectUpdate, Error> {
    let Value::Object(fields) = update else {
        return Err(validation("update", "must be an object"));
    };
    let mut out = ProjectUpdate::default();
    for (name, value) in fields {
        let bad = |what: &str| validation(&name, format!("must be {what}"));
        match name.as_str() {
            "repairUrl" | "repair_url" => {
                out.repair_url = Some(match value {
                    Value::Null => None,
                    Value::String(url) => Some(url),
                    _ => return Err(bad("a URL string or null")),
                });
            }
            "defaultDeadlineSeconds" | "default_deadline_seconds" => {
                let n = value.as_u64().and_then(|n| u32::try_from(n).ok());
                out.default_deadline_seconds =
                    Some(n.ok_or_else(|| bad("a whole number of seconds"))?);
            }
            "deadlinesByEventType" | "deadlines_by_event_type" => {
                let map: BTreeMap<String, u32> = serde_json::from_value(value)
                    .map_err(|_| bad("an object of event type → whole seconds"))?;
                out.deadlines_by_event_type = Some(map);
            }
            "alertChannels" | "alert_channels" => out.alert_channels = Some(value),
            "proofShowMetadata" | "proof_show_metadata" => {
                out.proof_show_metadata = Some(value.as_bool().ok_or_else(|| bad("a boolean"))?);
            }
            _ => return Err(validation(&name, "is not a project setting")),
        }
    }
    Ok(out)
}

/// The native client; `index.js` wraps it as `SendPromptly`.
#[napi(js_name = "NativeClient")]
pub struct NativeClient {
    inner: Client,
}

#[napi]
impl NativeClient {
    /// Builds a client (no network call).
    #[napi(constructor)]
    pub fn new(options: Option<NativeClientOptions>) -> napi::Result<Self> {
        convert::client(options)
            .map(|inner| NativeClient { inner })
            .map_err(|err| errors::client(&err))
    }

    /// The base URL calls go to (with a trailing slash).
    #[napi(getter)]
    pub fn base_url(&self) -> String {
        self.inner.base_url().to_owned()
    }

    /// Records a receipt (`POST /v1/receipt`).
    #[napi]
    pub async fn receipt(&self, options: ReceiptOptions) -> napi::Result<Value> {
        let builder = convert::receipt(&self.inner, options).map_err(|err| errors::client(&err))?;
        done(async { convert::signal_response(&builder.send().await?) }.await)
    }

    /// Records a `success` result (`POST /v1/result`).
    #[napi]
    pub async fn success(&self, options: ResultOptions) -> napi::Result<Value> {
        self.send_result(options, Some(ResultStatus::Success)).await
    }

    /// Records a `failure` result (`POST /v1/result`).
    #[napi]
    pub async fn failure(&self, options: ResultOptions) -> napi::Result<Value> {
        self.send_result(options, Some(ResultStatus::Failure)).await
    }

    /// Records a result whose `status` is in the options.
    #[napi]
    pub async fn result(&self, options: ResultOptions) -> napi::Result<Value> {
        self.send_result(options, None).await
    }

    async fn send_result(
        &self,
        options: ResultOptions,
        status: Option<ResultStatus>,
    ) -> napi::Result<Value> {
        let builder =
            convert::result(&self.inner, options, status).map_err(|err| errors::client(&err))?;
        done(async { convert::signal_response(&builder.send().await?) }.await)
    }

    /// One event with its timeline and incident.
    #[napi]
    pub async fn get_event(&self, provider: String, event_id: String) -> napi::Result<Value> {
        done(
            async {
                let provider = convert::provider(&provider)?;
                to_json(&self.inner.get_event(provider, &event_id).await?)
            }
            .await,
        )
    }

    /// Searches events (support look-ups by customer).
    #[napi]
    pub async fn search_events(&self, filter: Option<EventFilterOptions>) -> napi::Result<Value> {
        done(
            async {
                let filter = event_filter(filter.unwrap_or_default())?;
                to_json(&self.inner.search_events(&filter).await?)
            }
            .await,
        )
    }

    /// Lists incidents, newest first, one page.
    #[napi]
    pub async fn list_incidents(
        &self,
        filter: Option<IncidentFilterOptions>,
    ) -> napi::Result<Value> {
        done(
            async {
                let filter = incident_filter(filter.unwrap_or_default())?;
                to_json(&self.inner.list_incidents(&filter).await?)
            }
            .await,
        )
    }

    /// One incident, its event and full timeline.
    #[napi]
    pub async fn get_incident(&self, incident_id: String) -> napi::Result<Value> {
        done(async { to_json(&self.inner.get_incident(&incident_id).await?) }.await)
    }

    /// Requests a repair callback for an incident.
    #[napi]
    pub async fn reprocess(
        &self,
        incident_id: String,
        note: Option<String>,
    ) -> napi::Result<Value> {
        done(async { to_json(&self.inner.reprocess(&incident_id, note.as_deref()).await?) }.await)
    }

    /// Resolves an incident by hand.
    #[napi]
    pub async fn resolve(&self, incident_id: String, note: String) -> napi::Result<Value> {
        done(async { to_json(&self.inner.resolve(&incident_id, &note).await?) }.await)
    }

    /// Creates a read-only, expiring proof link for an incident.
    #[napi]
    pub async fn create_proof_link(
        &self,
        incident_id: String,
        expires_in_seconds: Option<f64>,
    ) -> napi::Result<Value> {
        done(
            async {
                let expires = expires_in_seconds
                    .map(|s| {
                        if s.is_finite() && s.fract() == 0.0 && (1.0..=1e9).contains(&s) {
                            Ok(Duration::from_secs(s as u64))
                        } else {
                            Err(validation(
                                "expires_in_seconds",
                                format!("must be a whole number of seconds, got {s}"),
                            ))
                        }
                    })
                    .transpose()?;
                to_json(&self.inner.create_proof_link(&incident_id, expires).await?)
            }
            .await,
        )
    }

    /// The proof links of an incident.
    #[napi]
    pub async fn list_proof_links(&self, incident_id: String) -> napi::Result<Value> {
        done(async { to_json(&self.inner.list_proof_links(&incident_id).await?) }.await)
    }

    /// Revokes a proof link.
    #[napi]
    pub async fn revoke_proof_link(&self, proof_link_id: String) -> napi::Result<()> {
        self.inner
            .revoke_proof_link(&proof_link_id)
            .await
            .map_err(|err| errors::client(&err))
    }

    /// Plans a bulk reprocess without sending anything (a dry run).
    #[napi]
    pub async fn plan_reprocess_batch(
        &self,
        options: ReprocessBatchOptions,
    ) -> napi::Result<Value> {
        done(
            async {
                let request = batch_request(options)?;
                to_json(&self.inner.plan_reprocess_batch(&request).await?)
            }
            .await,
        )
    }

    /// Starts a bulk reprocess, paced by the server.
    #[napi]
    pub async fn start_reprocess_batch(
        &self,
        options: ReprocessBatchOptions,
    ) -> napi::Result<Value> {
        done(
            async {
                let request = batch_request(options)?;
                to_json(&self.inner.start_reprocess_batch(&request).await?)
            }
            .await,
        )
    }

    /// A batch's progress and first items.
    #[napi]
    pub async fn reprocess_batch(&self, batch_id: String) -> napi::Result<Value> {
        done(async { to_json(&self.inner.reprocess_batch(&batch_id).await?) }.await)
    }

    /// Cancels a batch: incidents not sent yet are not sent.
    #[napi]
    pub async fn cancel_reprocess_batch(&self, batch_id: String) -> napi::Result<Value> {
        done(async { to_json(&self.inner.cancel_reprocess_batch(&batch_id).await?) }.await)
    }

    /// The project's settings.
    #[napi]
    pub async fn project(&self) -> napi::Result<Value> {
        done(async { to_json(&self.inner.project().await?) }.await)
    }

    /// Changes project settings.
    #[napi]
    pub async fn update_project(&self, update: Value) -> napi::Result<Value> {
        done(
            async {
                let update = project_update(update)?;
                to_json(&self.inner.update_project(&update).await?)
            }
            .await,
        )
    }

    /// Rotates the signing secret; the new one is returned once.
    #[napi]
    pub async fn rotate_signing_secret(&self) -> napi::Result<Value> {
        done(async { to_json(&self.inner.rotate_signing_secret().await?) }.await)
    }

    /// `GET /healthz`.
    #[napi]
    pub async fn health(&self) -> napi::Result<Value> {
        done(async { to_json(&self.inner.health().await?) }.await)
    }

    /// Starts background mode: a bounded queue drained by a task.
    #[napi]
    pub fn background(
        &self,
        options: Option<BackgroundOptions>,
        on_drop: Option<ThreadsafeFunction<Value, (), Value, Status, false, true>>,
    ) -> napi::Result<NativeBackground> {
        NativeBackground::start(&self.inner, options, on_drop).map_err(|err| errors::client(&err))
    }
}
