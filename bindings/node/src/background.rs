//! Background mode: `Background` queues signals and returns at once; the
//! Rust client's task delivers them. Dropped signals are passed to the
//! optional JavaScript `onDrop` callback through a threadsafe function.

use std::sync::Arc;
use std::time::Duration;

use napi::Status;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use sendpromptly_client::{
    Background, BackgroundConfig, BackgroundStats, Client, DropReason, DroppedSignal, Error,
    ResultStatus, Signal,
};
use serde_json::{Value, json};

use crate::convert::{self, ReceiptOptions, ResultOptions, RetryOptions};
use crate::errors;

/// The JavaScript `onDrop` callback: called with one argument, never keeps
/// the process alive on its own.
pub type DropCallback = ThreadsafeFunction<Value, (), Value, Status, false, true>;

/// Settings of background mode. Fields left out keep the SDK's defaults
/// (with the `SENDPROMPTLY_BACKGROUND_*` environment overrides applied).
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct BackgroundOptions {
    /// Most signals waiting in the queue; beyond it signals are dropped and reported. Default 10000.
    pub capacity: Option<f64>,
    /// Signals delivered at once (1 keeps strict order). Default 4.
    pub concurrency: Option<f64>,
    /// The retry policy of each signal, its budget counted from when its delivery starts. Default: 20 attempts within 5 minutes.
    pub retry: Option<RetryOptions>,
}

/// Counters of background mode since it started.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct BackgroundStatsView {
    /// Signals accepted into the queue.
    pub enqueued: i64,
    /// Signals the server recorded.
    pub delivered: i64,
    /// Signals refused because the queue was full.
    pub dropped_queue_full: i64,
    /// Signals refused because the queue was shut down.
    pub dropped_closed: i64,
    /// Signals refused because they were invalid.
    pub dropped_invalid: i64,
    /// Signals dropped after retries or the time budget ran out.
    pub gave_up: i64,
    /// Signals the server refused (non-retryable 4xx).
    pub rejected: i64,
    /// Signals abandoned when shutdown timed out.
    pub dropped_at_shutdown: i64,
    /// Every dropped signal, whatever the reason.
    pub dropped: i64,
    /// Signals queued or being delivered now.
    pub pending: i64,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn stats_view(stats: BackgroundStats) -> BackgroundStatsView {
    BackgroundStatsView {
        enqueued: count(stats.enqueued),
        delivered: count(stats.delivered),
        dropped_queue_full: count(stats.dropped_queue_full),
        dropped_closed: count(stats.dropped_closed),
        dropped_invalid: count(stats.dropped_invalid),
        gave_up: count(stats.gave_up),
        rejected: count(stats.rejected),
        dropped_at_shutdown: count(stats.dropped_at_shutdown),
        dropped: count(stats.dropped()),
        pending: count(stats.pending),
    }
}

fn reason_code(reason: DropReason) -> &'static str {
    match reason {
        DropReason::QueueFull => "queue_full",
        DropReason::Closed => "closed",
        DropReason::Invalid => "invalid",
        DropReason::GaveUp => "gave_up",
        DropReason::Rejected => "rejected",
        DropReason::Shutdown => "shutdown",
    }
}

/// What `onDrop` receives.
fn dropped_view(dropped: &DroppedSignal) -> Value {
    let (kind, body) = match &dropped.signal {
        Signal::Receipt(r) => ("receipt", serde_json::to_value(r)),
        Signal::Result(r) => ("result", serde_json::to_value(r)),
    };
    json!({
        "kind": kind,
        "signal": body.unwrap_or(Value::Null),
        "description": dropped.signal.describe(),
        "idempotencyKey": dropped.idempotency_key,
        "reason": reason_code(dropped.reason),
        "reasonText": dropped.reason.describe(),
        "error": dropped.error.as_ref().map(errors::describe),
    })
}

fn timeout(ms: Option<f64>, default: Duration) -> Duration {
    match ms {
        Some(ms) if ms.is_finite() && ms >= 0.0 => Duration::from_secs_f64(ms.min(1e12) / 1000.0),
        Some(ms) if ms == f64::INFINITY => Duration::from_secs(u64::from(u32::MAX)),
        _ => default,
    }
}

fn positive(field: &str, value: f64) -> Result<usize, Error> {
    if value.is_finite() && value.fract() == 0.0 && (1.0..=1e9).contains(&value) {
        Ok(value as usize)
    } else {
        Err(Error::Config {
            message: format!("{field} must be a whole number from 1 to 10^9, got {value}"),
        })
    }
}

/// The native background queue; `index.js` wraps it.
#[napi(js_name = "NativeBackground")]
pub struct NativeBackground {
    inner: Background,
    client: Client,
}

impl NativeBackground {
    pub fn start(
        client: &Client,
        options: Option<BackgroundOptions>,
        on_drop: Option<DropCallback>,
    ) -> Result<NativeBackground, Error> {
        let options = options.unwrap_or_default();
        let mut config = BackgroundConfig::from_env()?;
        if let Some(n) = options.capacity {
            config.capacity = positive("capacity", n)?;
        }
        if let Some(n) = options.concurrency {
            config.concurrency = positive("concurrency", n)?;
        }
        config.retry = convert::retry_config(config.retry, options.retry.as_ref())?;
        if let Some(callback) = on_drop {
            let callback = Arc::new(callback);
            config.on_drop = Some(Arc::new(move |dropped: &DroppedSignal| {
                // Queued for the JavaScript thread; never blocks the caller.
                let _ = callback.call(
                    dropped_view(dropped),
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            }));
        }
        let client = client.clone();
        let inner =
            napi::bindgen_prelude::within_runtime_if_available(|| client.background(config))?;
        Ok(NativeBackground { inner, client })
    }
}

#[napi]
impl NativeBackground {
    /// Queues a receipt; `false` if it was dropped (and reported).
    #[napi]
    pub fn receipt(&self, options: ReceiptOptions) -> napi::Result<bool> {
        let builder =
            convert::receipt(&self.client, options).map_err(|err| errors::client(&err))?;
        Ok(builder.enqueue(&self.inner).is_ok())
    }

    /// Queues a `success` result; `false` if it was dropped (and reported).
    #[napi]
    pub fn success(&self, options: ResultOptions) -> napi::Result<bool> {
        self.enqueue_result(options, Some(ResultStatus::Success))
    }

    /// Queues a `failure` result; `false` if it was dropped (and reported).
    #[napi]
    pub fn failure(&self, options: ResultOptions) -> napi::Result<bool> {
        self.enqueue_result(options, Some(ResultStatus::Failure))
    }

    /// Queues a result whose `status` is in the options.
    #[napi]
    pub fn result(&self, options: ResultOptions) -> napi::Result<bool> {
        self.enqueue_result(options, None)
    }

    fn enqueue_result(
        &self,
        options: ResultOptions,
        status: Option<ResultStatus>,
    ) -> napi::Result<bool> {
        let builder =
            convert::result(&self.client, options, status).map_err(|err| errors::client(&err))?;
        Ok(builder.enqueue(&self.inner).is_ok())
    }

    /// The counters so far.
    #[napi]
    pub fn stats(&self) -> BackgroundStatsView {
        stats_view(self.inner.stats())
    }

    /// Waits until everything queued so far is delivered or dropped, for at
    /// most `timeoutMs` (default 30000); `true` if the queue was drained.
    #[napi]
    pub async fn flush(&self, timeout_ms: Option<f64>) -> bool {
        self.inner
            .flush(timeout(timeout_ms, Duration::from_secs(30)))
            .await
    }

    /// Closes the queue, delivers what is queued for at most `timeoutMs`
    /// (default 10000), reports what is left, and returns the final counters.
    #[napi]
    pub async fn shutdown(&self, timeout_ms: Option<f64>) -> BackgroundStatsView {
        stats_view(
            self.inner
                .shutdown(timeout(timeout_ms, Duration::from_secs(10)))
                .await,
        )
    }
}
