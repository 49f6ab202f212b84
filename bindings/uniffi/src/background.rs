//! Background mode: `Background` queues signals and returns at once; the
//! Rust SDK's task delivers them. Dropped signals reach the optional
//! foreign `DropHandler`. Destroying the object (Kotlin `close()`/`use`,
//! Swift `deinit`, Ruby `close`) drains the queue first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sendpromptly_client::{self as sdk, Signal};

use crate::errors::{SendPromptlyError, config};
use crate::rt;
use crate::types::{
    EventRef, Provider, Receipt, ResultSignal, ResultStatus, RetryConfig, duration_ms, json_text,
};

/// How long `flush` waits by default, and dropping the object drains.
const DEFAULT_FLUSH: Duration = Duration::from_secs(30);
const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(10);

/// Settings of background mode; a null field keeps the SDK's value
/// (capacity 10000, concurrency 4, `background_retry_config()`, after the
/// `SENDPROMPTLY_BACKGROUND_*` environment overrides).
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct BackgroundConfig {
    /// Most signals waiting in the queue; beyond it they are dropped and reported.
    #[uniffi(default)]
    pub capacity: Option<i32>,
    /// Signals delivered at once (1 keeps strict order).
    #[uniffi(default)]
    pub concurrency: Option<i32>,
    /// The retry policy of each signal, its budget counted from when delivery starts.
    #[uniffi(default)]
    pub retry: Option<RetryConfig>,
}

/// Why a signal was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DropReason {
    /// The queue was full.
    QueueFull,
    /// The queue was already shut down.
    Closed,
    /// It breaks the contract's limits (never sent).
    Invalid,
    /// Retries or the time budget ran out.
    GaveUp,
    /// The server refused it (non-retryable 4xx).
    Rejected,
    /// Shutdown's timeout passed before it was delivered.
    Shutdown,
}

impl From<sdk::DropReason> for DropReason {
    fn from(r: sdk::DropReason) -> Self {
        match r {
            sdk::DropReason::QueueFull => DropReason::QueueFull,
            sdk::DropReason::Closed => DropReason::Closed,
            sdk::DropReason::Invalid => DropReason::Invalid,
            sdk::DropReason::GaveUp => DropReason::GaveUp,
            sdk::DropReason::Rejected => DropReason::Rejected,
            sdk::DropReason::Shutdown => DropReason::Shutdown,
        }
    }
}

/// A signal background mode could not deliver.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DroppedSignal {
    /// `receipt` or `result`.
    pub kind: String,
    /// E.g. `receipt stripe/evt_1`.
    pub description: String,
    /// The event's provider.
    pub provider: Provider,
    /// The event's id.
    pub event_id: String,
    /// The key it was (or would have been) sent with: resend with it and a
    /// late duplicate is replayed, not recorded twice.
    pub idempotency_key: String,
    /// Why it was dropped.
    pub reason: DropReason,
    /// The last error's message, when it was sent.
    pub error: Option<String>,
    /// The last error's HTTP status, when the server answered.
    pub error_status: Option<i32>,
    /// The signal as JSON (the API's request body).
    pub signal_json: String,
}

impl From<&sdk::DroppedSignal> for DroppedSignal {
    fn from(d: &sdk::DroppedSignal) -> Self {
        let (kind, provider, event_id, json) = match &d.signal {
            Signal::Receipt(r) => ("receipt", r.provider, r.event_id.clone(), json_text(r)),
            Signal::Result(r) => ("result", r.provider, r.event_id.clone(), json_text(r)),
        };
        DroppedSignal {
            kind: kind.to_owned(),
            description: d.signal.describe(),
            provider: provider.into(),
            event_id,
            idempotency_key: d.idempotency_key.clone(),
            reason: d.reason.into(),
            error: d.error.as_ref().map(ToString::to_string),
            error_status: d.error.as_ref().and_then(sdk::Error::status).map(i32::from),
            signal_json: json.unwrap_or_default(),
        }
    }
}

/// Told about every dropped signal, on an SDK thread: keep it quick.
#[uniffi::export(callback_interface)]
pub trait DropHandler: Send + Sync {
    /// Called once per dropped signal.
    fn on_drop(&self, dropped: DroppedSignal);
}

/// Counters of background mode since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct BackgroundStats {
    /// Signals accepted into the queue.
    pub enqueued: i64,
    /// Signals the server recorded.
    pub delivered: i64,
    /// Refused: the queue was full.
    pub dropped_queue_full: i64,
    /// Refused: the queue was shut down.
    pub dropped_closed: i64,
    /// Refused: invalid.
    pub dropped_invalid: i64,
    /// Dropped after retries or the time budget ran out.
    pub gave_up: i64,
    /// Refused by the server (non-retryable 4xx).
    pub rejected: i64,
    /// Abandoned when shutdown timed out.
    pub dropped_at_shutdown: i64,
    /// Every dropped signal, whatever the reason.
    pub dropped: i64,
    /// Queued or being delivered now.
    pub pending: i64,
}

/// A counter as a signed 64-bit integer.
fn n(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl From<sdk::BackgroundStats> for BackgroundStats {
    fn from(s: sdk::BackgroundStats) -> Self {
        BackgroundStats {
            enqueued: n(s.enqueued),
            delivered: n(s.delivered),
            dropped_queue_full: n(s.dropped_queue_full),
            dropped_closed: n(s.dropped_closed),
            dropped_invalid: n(s.dropped_invalid),
            gave_up: n(s.gave_up),
            rejected: n(s.rejected),
            dropped_at_shutdown: n(s.dropped_at_shutdown),
            dropped: n(s.dropped()),
            pending: n(s.pending),
        }
    }
}

fn count(field: &str, n: Option<i32>, default: usize) -> Result<usize, SendPromptlyError> {
    match n.map(usize::try_from) {
        None => Ok(default),
        Some(Ok(n)) if n > 0 => Ok(n),
        Some(_) => Err(config(format!("background {field} must be at least 1"))),
    }
}

/// The background queue of a `Client`.
#[derive(Debug, uniffi::Object)]
pub struct Background {
    inner: sdk::Background,
    client: sdk::Client,
    closed: AtomicBool,
}

impl Background {
    /// Starts the queue on the runtime.
    pub fn start(
        client: &sdk::Client,
        settings: BackgroundConfig,
        on_drop: Option<Box<dyn DropHandler>>,
    ) -> Result<Background, SendPromptlyError> {
        let mut config = sdk::BackgroundConfig::from_env()?;
        config.capacity = count("capacity", settings.capacity, config.capacity)?;
        config.concurrency = count("concurrency", settings.concurrency, config.concurrency)?;
        if let Some(retry) = &settings.retry {
            config.retry = retry.apply(config.retry)?;
        }
        if let Some(handler) = on_drop {
            let handler: Arc<dyn DropHandler> = Arc::from(handler);
            config.on_drop = Some(Arc::new(move |dropped: &sdk::DroppedSignal| {
                handler.on_drop(dropped.into());
            }));
        }
        let _entered = rt::runtime()?.enter();
        Ok(Background {
            inner: client.background(config)?,
            client: client.clone(),
            closed: AtomicBool::new(false),
        })
    }

    fn result_signal(&self, result: &ResultSignal) -> Result<bool, SendPromptlyError> {
        let builder = result.builder(&self.client)?;
        Ok(builder.enqueue(&self.inner).is_ok())
    }
}

fn timeout(ms: Option<i64>, default: Duration) -> Result<Duration, SendPromptlyError> {
    ms.map_or(Ok(default), |ms| duration_ms("timeout_ms", ms))
}

#[uniffi::export]
impl Background {
    /// Queues a receipt; `false` if it was dropped (and reported).
    pub fn receipt(&self, receipt: Receipt) -> Result<bool, SendPromptlyError> {
        let builder = receipt.builder(&self.client)?;
        Ok(builder.enqueue(&self.inner).is_ok())
    }

    /// Queues a `success` result; `false` if it was dropped.
    #[uniffi::method(default(metadata_json = None))]
    pub fn success(
        &self,
        target: EventRef,
        metadata_json: Option<String>,
    ) -> Result<bool, SendPromptlyError> {
        self.result_signal(&ResultSignal::of(
            target,
            ResultStatus::Success,
            None,
            metadata_json,
            None,
        ))
    }

    /// Queues a `failure` result; `false` if it was dropped.
    #[uniffi::method(default(metadata_json = None))]
    pub fn failure(
        &self,
        target: EventRef,
        error: String,
        metadata_json: Option<String>,
    ) -> Result<bool, SendPromptlyError> {
        self.result_signal(&ResultSignal::of(
            target,
            ResultStatus::Failure,
            Some(error),
            metadata_json,
            None,
        ))
    }

    /// Queues a result with every field given; `false` if it was dropped.
    pub fn result(&self, result: ResultSignal) -> Result<bool, SendPromptlyError> {
        self.result_signal(&result)
    }

    /// The counters so far.
    pub fn stats(&self) -> BackgroundStats {
        self.inner.stats().into()
    }

    /// Waits until everything queued so far is delivered or dropped, for at
    /// most `timeout_ms` (default 30000); `true` if the queue was drained.
    #[uniffi::method(default(timeout_ms = None))]
    pub fn flush(&self, timeout_ms: Option<i64>) -> Result<bool, SendPromptlyError> {
        let inner = self.inner.clone();
        let wait = timeout(timeout_ms, DEFAULT_FLUSH)?;
        rt::block_on(async move { Ok(inner.flush(wait).await) })
    }

    /// Closes the queue, delivers what is queued for at most `timeout_ms`
    /// (default 10000), reports what is left, and returns the final counters.
    #[uniffi::method(default(timeout_ms = None))]
    pub fn shutdown(&self, timeout_ms: Option<i64>) -> Result<BackgroundStats, SendPromptlyError> {
        self.closed.store(true, Ordering::SeqCst);
        let inner = self.inner.clone();
        let wait = timeout(timeout_ms, DEFAULT_SHUTDOWN)?;
        rt::block_on(async move { Ok(inner.shutdown(wait).await.into()) })
    }

    /// `flush`, awaitable.
    #[uniffi::method(default(timeout_ms = None))]
    pub async fn flush_async(&self, timeout_ms: Option<i64>) -> Result<bool, SendPromptlyError> {
        let inner = self.inner.clone();
        let wait = timeout(timeout_ms, DEFAULT_FLUSH)?;
        rt::spawn(async move { Ok(inner.flush(wait).await) }).await
    }

    /// `shutdown`, awaitable.
    #[uniffi::method(default(timeout_ms = None))]
    pub async fn shutdown_async(
        &self,
        timeout_ms: Option<i64>,
    ) -> Result<BackgroundStats, SendPromptlyError> {
        self.closed.store(true, Ordering::SeqCst);
        let inner = self.inner.clone();
        let wait = timeout(timeout_ms, DEFAULT_SHUTDOWN)?;
        rt::spawn(async move { Ok(inner.shutdown(wait).await.into()) }).await
    }
}

impl Drop for Background {
    /// Drains the queue (up to 10 s) unless `shutdown` already did.
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let inner = self.inner.clone();
            let _ = rt::block_on(async move { Ok(inner.shutdown(DEFAULT_SHUTDOWN).await) });
        }
    }
}
