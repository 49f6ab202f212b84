//! Background mode: signals go into a bounded in-process queue and a task
//! delivers them with the retry policy, so a webhook handler returns at once.
//!
//! Nothing is lost silently and nothing panics: a full queue, a closed queue,
//! an exhausted retry budget or a rejected signal is logged (`tracing`
//! warning), counted in [`BackgroundStats`] and passed to the optional
//! [`BackgroundConfig::on_drop`] callback. [`Background::flush`] waits until
//! everything queued so far is delivered or dropped;
//! [`Background::shutdown`] closes the queue and drains it.
//!
//! A `429 Too Many Requests` is not a failure here: the server is up and
//! asks to come back later. Every delivery pauses until its `Retry-After`
//! has passed, and the signal is sent again; such answers do not use up the
//! signal's attempts or time budget (counted in
//! [`BackgroundStats::throttled`]). Memory stays bounded by the queue's
//! capacity: while the server throttles, the queue fills and further
//! signals are dropped as [`DropReason::QueueFull`], reported as usual.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sendpromptly_core::model::{Receipt, ResultSignal};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::client::{Call, Client, new_idempotency_key};
use crate::config::{ENV_BACKGROUND_RETRY_PREFIX, RetryConfig};
use crate::error::{Error, ValidationError};

/// One signal: a receipt or a result.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// A receipt.
    Receipt(Receipt),
    /// A result.
    Result(ResultSignal),
}

impl Signal {
    /// The event it is about, as `provider/event_id`.
    pub fn describe(&self) -> String {
        match self {
            Signal::Receipt(r) => format!("receipt {}/{}", r.provider, r.event_id),
            Signal::Result(r) => {
                format!("result {}/{} {}", r.provider, r.event_id, r.status.as_str())
            }
        }
    }

    fn call(&self, key: String) -> Result<Call, Error> {
        match self {
            Signal::Receipt(receipt) => Client::receipt_call(receipt, Some(key)),
            Signal::Result(result) => Client::result_call(result, Some(key)),
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Signal::Receipt(receipt) => receipt.validate(),
            Signal::Result(result) => result.validate(),
        }
    }
}

impl From<Receipt> for Signal {
    fn from(receipt: Receipt) -> Self {
        Signal::Receipt(receipt)
    }
}

impl From<ResultSignal> for Signal {
    fn from(result: ResultSignal) -> Self {
        Signal::Result(result)
    }
}

/// Why a signal was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The queue was full when it was enqueued.
    QueueFull,
    /// The queue was already shut down when it was enqueued.
    Closed,
    /// It breaks the contract's limits (never sent).
    Invalid,
    /// Every attempt failed with a retryable error, or the time budget ran
    /// out (SendPromptly down or slow for longer than the budget).
    GaveUp,
    /// The server refused it with a non-retryable error (e.g. 401, 422).
    Rejected,
    /// [`Background::shutdown`]'s timeout passed before it was delivered.
    Shutdown,
}

impl DropReason {
    /// A short description.
    pub fn describe(self) -> &'static str {
        match self {
            DropReason::QueueFull => "the background queue is full",
            DropReason::Closed => "the background queue is shut down",
            DropReason::Invalid => "the signal is invalid",
            DropReason::GaveUp => "retries or the time budget ran out",
            DropReason::Rejected => "the server rejected it",
            DropReason::Shutdown => "shutdown timed out before it was delivered",
        }
    }
}

/// A signal background mode could not deliver.
#[derive(Clone, Debug)]
pub struct DroppedSignal {
    /// The signal.
    pub signal: Signal,
    /// The idempotency key it was (or would have been) sent with; send it
    /// again with this key and a late duplicate is replayed, not recorded twice.
    pub idempotency_key: String,
    /// Why it was dropped.
    pub reason: DropReason,
    /// The last error, when it was sent.
    pub error: Option<Error>,
}

/// The callback type of [`BackgroundConfig::on_drop`].
pub type DropCallback = Arc<dyn Fn(&DroppedSignal) + Send + Sync>;

/// Settings of background mode.
///
/// ```
/// use std::sync::Arc;
/// use sendpromptly_client::BackgroundConfig;
///
/// let config = BackgroundConfig {
///     capacity: 5_000,
///     on_drop: Some(Arc::new(|dropped| {
///         eprintln!("lost {}: {}", dropped.signal.describe(), dropped.reason.describe());
///     })),
///     ..BackgroundConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct BackgroundConfig {
    /// Most signals waiting in the queue; beyond it `enqueue` drops and
    /// reports. Default `10_000`; env `SENDPROMPTLY_BACKGROUND_CAPACITY`.
    pub capacity: usize,
    /// Signals being delivered at once (1 keeps strict order). Default `4`;
    /// env `SENDPROMPTLY_BACKGROUND_CONCURRENCY`.
    pub concurrency: usize,
    /// The retry policy of each signal, its budget counted from when
    /// delivery starts. Default [`RetryConfig::background`] (20 attempts
    /// within 5 minutes); env `SENDPROMPTLY_BACKGROUND_RETRY_*`.
    pub retry: RetryConfig,
    /// Called (on the delivering task, or on the caller of `enqueue`) for
    /// every dropped signal; keep it quick. A panic in it is caught.
    /// Default none.
    pub on_drop: Option<DropCallback>,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            capacity: 10_000,
            concurrency: 4,
            retry: RetryConfig::background(),
            on_drop: None,
        }
    }
}

impl fmt::Debug for BackgroundConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundConfig")
            .field("capacity", &self.capacity)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field(
                "on_drop",
                &self.on_drop.as_ref().map(|_| "Fn(&DroppedSignal)"),
            )
            .finish()
    }
}

impl BackgroundConfig {
    /// [`BackgroundConfig::default`] with the environment overrides
    /// (`SENDPROMPTLY_BACKGROUND_CAPACITY`,
    /// `SENDPROMPTLY_BACKGROUND_CONCURRENCY`,
    /// `SENDPROMPTLY_BACKGROUND_RETRY_*`).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Like [`BackgroundConfig::from_env`], with `lookup` standing in for
    /// the environment.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut config = BackgroundConfig {
            retry: RetryConfig::background().with_overrides(ENV_BACKGROUND_RETRY_PREFIX, lookup)?,
            ..BackgroundConfig::default()
        };
        let count = |name: &str| -> Result<Option<usize>, Error> {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::config(format!(
                            "{name}={v:?} is invalid: expected a whole number, at least 1"
                        ))
                    })
                })
                .transpose()
        };
        if let Some(n) = count("SENDPROMPTLY_BACKGROUND_CAPACITY")? {
            config.capacity = n;
        }
        if let Some(n) = count("SENDPROMPTLY_BACKGROUND_CONCURRENCY")? {
            config.concurrency = n;
        }
        Ok(config)
    }
}

/// Why [`Background::enqueue`] did not take a signal (it was also reported
/// as dropped).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnqueueError {
    /// The queue holds `capacity` signals already.
    #[error("SendPromptly background queue is full ({capacity} signals); the signal was dropped")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// [`Background::shutdown`] was called.
    #[error("SendPromptly background queue is shut down; the signal was dropped")]
    Closed,
    /// The signal breaks the contract's limits.
    #[error("invalid {}: {}", .0.param, .0.message)]
    Invalid(ValidationError),
}

/// Counters of background mode (since it started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackgroundStats {
    /// Signals accepted into the queue.
    pub enqueued: u64,
    /// Signals the server recorded.
    pub delivered: u64,
    /// Signals refused because the queue was full.
    pub dropped_queue_full: u64,
    /// Signals refused because the queue was shut down.
    pub dropped_closed: u64,
    /// Signals refused because they were invalid.
    pub dropped_invalid: u64,
    /// Signals dropped after retries or the time budget ran out.
    pub gave_up: u64,
    /// Signals the server refused (non-retryable 4xx).
    pub rejected: u64,
    /// Signals abandoned when shutdown timed out.
    pub dropped_at_shutdown: u64,
    /// `429` answers waited out (each paused delivery for the server's
    /// `Retry-After`, then the signal was sent again).
    pub throttled: u64,
    /// Signals queued or being delivered now.
    pub pending: u64,
}

impl BackgroundStats {
    /// Every dropped signal, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_closed
            + self.dropped_invalid
            + self.gave_up
            + self.rejected
            + self.dropped_at_shutdown
    }
}

struct Queued {
    signal: Signal,
    key: String,
}

#[derive(Default)]
struct Counters {
    enqueued: AtomicU64,
    delivered: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_closed: AtomicU64,
    dropped_invalid: AtomicU64,
    gave_up: AtomicU64,
    rejected: AtomicU64,
    dropped_at_shutdown: AtomicU64,
    throttled: AtomicU64,
}

/// What the worker and the handles share.
struct Shared {
    counters: Counters,
    pending: watch::Sender<u64>,
    on_drop: Option<DropCallback>,
    capacity: usize,
    /// No delivery starts before this instant (the last 429's `Retry-After`).
    resume_at: Mutex<Option<tokio::time::Instant>>,
}

impl Shared {
    fn report(&self, dropped: DroppedSignal) {
        let counter = match dropped.reason {
            DropReason::QueueFull => &self.counters.dropped_queue_full,
            DropReason::Closed => &self.counters.dropped_closed,
            DropReason::Invalid => &self.counters.dropped_invalid,
            DropReason::GaveUp => &self.counters.gave_up,
            DropReason::Rejected => &self.counters.rejected,
            DropReason::Shutdown => &self.counters.dropped_at_shutdown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match &dropped.error {
            Some(error) => tracing::warn!(
                signal = %dropped.signal.describe(),
                idempotency_key = %dropped.idempotency_key,
                reason = dropped.reason.describe(),
                %error,
                "sendpromptly: background signal dropped"
            ),
            None => tracing::warn!(
                signal = %dropped.signal.describe(),
                idempotency_key = %dropped.idempotency_key,
                reason = dropped.reason.describe(),
                "sendpromptly: background signal dropped"
            ),
        }
        if let Some(callback) = &self.on_drop {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| callback(&dropped)));
            if outcome.is_err() {
                tracing::error!(
                    "sendpromptly: the on_drop callback panicked; the panic was caught"
                );
            }
        }
    }

    /// Waits until the server's last `Retry-After` has passed.
    async fn wait_for_server(&self) {
        loop {
            let until = *self
                .resume_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match until {
                Some(until) if until > tokio::time::Instant::now() => {
                    tokio::time::sleep_until(until).await;
                }
                _ => return,
            }
        }
    }

    /// Pauses every delivery for `wait` (a later pause already set wins).
    fn pause(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut resume_at = self
            .resume_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if resume_at.is_none_or(|at| at < until) {
            *resume_at = Some(until);
        }
    }

    fn finished(&self) {
        self.pending.send_modify(|p| *p = p.saturating_sub(1));
    }

    fn stats(&self) -> BackgroundStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BackgroundStats {
            enqueued: get(&c.enqueued),
            delivered: get(&c.delivered),
            dropped_queue_full: get(&c.dropped_queue_full),
            dropped_closed: get(&c.dropped_closed),
            dropped_invalid: get(&c.dropped_invalid),
            gave_up: get(&c.gave_up),
            rejected: get(&c.rejected),
            dropped_at_shutdown: get(&c.dropped_at_shutdown),
            throttled: get(&c.throttled),
            pending: *self.pending.borrow(),
        }
    }
}

/// The handles' own state: dropping the last handle closes the queue (the
/// worker then delivers what is left and stops).
struct Handle {
    sender: Mutex<Option<mpsc::Sender<Queued>>>,
    cancel: watch::Sender<bool>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    shared: Arc<Shared>,
    client: Client,
}

/// Background mode of a [`Client`]: a bounded queue drained by a task.
///
/// Cheap to clone; clones share the queue. Create one per process with
/// [`Client::background`] inside a Tokio runtime, enqueue from handlers, and
/// call [`Background::shutdown`] when the process stops.
///
/// ```no_run
/// # async fn run(sp: sendpromptly_client::Client) -> Result<(), sendpromptly_client::Error> {
/// use std::time::Duration;
/// use sendpromptly_client::{BackgroundConfig, Provider};
///
/// let background = sp.background(BackgroundConfig::default())?;
///
/// // In a webhook handler: returns at once, never fails the handler.
/// if let Err(err) = sp.receipt(Provider::Stripe, "evt_1", "invoice.paid").enqueue(&background) {
///     eprintln!("not recorded: {err}"); // also logged, counted and reported
/// }
///
/// // At shutdown: deliver what is queued, for at most 10 s.
/// let stats = background.shutdown(Duration::from_secs(10)).await;
/// println!("delivered {}, dropped {}", stats.delivered, stats.dropped());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Background {
    handle: Arc<Handle>,
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Client {
    /// Starts background mode: a queue of `config.capacity` signals drained
    /// by a task on the current Tokio runtime (an error outside one).
    pub fn background(&self, config: BackgroundConfig) -> Result<Background, Error> {
        Background::start(self.clone(), config)
    }
}

impl Background {
    /// See [`Client::background`].
    pub fn start(client: Client, config: BackgroundConfig) -> Result<Background, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::config(
                "background mode needs a Tokio runtime: call Client::background from async code",
            )
        })?;
        config.retry.validate()?;
        if config.capacity == 0 || config.concurrency == 0 {
            return Err(Error::config(
                "background capacity and concurrency must be at least 1",
            ));
        }
        let (sender, receiver) = mpsc::channel(config.capacity);
        let (cancel, cancelled) = watch::channel(false);
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            pending: watch::channel(0).0,
            on_drop: config.on_drop.clone(),
            capacity: config.capacity,
            resume_at: Mutex::new(None),
        });
        let worker = runtime.spawn(run_worker(
            receiver,
            client.clone(),
            config.retry,
            config.concurrency,
            Arc::clone(&shared),
            cancelled,
        ));
        Ok(Background {
            handle: Arc::new(Handle {
                sender: Mutex::new(Some(sender)),
                cancel,
                worker: Mutex::new(Some(worker)),
                shared,
                client,
            }),
        })
    }

    /// Queues a signal with a new idempotency key; returns at once.
    ///
    /// On `Err` the signal was dropped, and already logged, counted and
    /// passed to `on_drop`.
    pub fn enqueue(&self, signal: impl Into<Signal>) -> Result<(), EnqueueError> {
        self.enqueue_with_key(signal.into(), None)
    }

    /// Queues a signal with this idempotency key (`None`: a new one).
    pub fn enqueue_with_key(
        &self,
        signal: Signal,
        idempotency_key: Option<String>,
    ) -> Result<(), EnqueueError> {
        let shared = &self.handle.shared;
        let key = idempotency_key.unwrap_or_else(new_idempotency_key);
        let drop_it = |signal: Signal, key: String, reason: DropReason, error: EnqueueError| {
            shared.report(DroppedSignal {
                signal,
                idempotency_key: key,
                reason,
                error: None,
            });
            Err(error)
        };
        if let Err(invalid) = signal.validate() {
            return drop_it(
                signal,
                key,
                DropReason::Invalid,
                EnqueueError::Invalid(invalid),
            );
        }
        // Count it as pending before the worker can see it.
        shared.pending.send_modify(|p| *p += 1);
        let sender = match self.handle.sender.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let outcome = match sender {
            None => Err((Queued { signal, key }, DropReason::Closed)),
            Some(sender) => sender
                .try_send(Queued { signal, key })
                .map_err(|err| match err {
                    mpsc::error::TrySendError::Full(item) => (item, DropReason::QueueFull),
                    mpsc::error::TrySendError::Closed(item) => (item, DropReason::Closed),
                }),
        };
        match outcome {
            Ok(()) => {
                shared.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err((item, reason)) => {
                shared.finished();
                let error = match reason {
                    DropReason::QueueFull => EnqueueError::QueueFull {
                        capacity: shared.capacity,
                    },
                    _ => EnqueueError::Closed,
                };
                drop_it(item.signal, item.key, reason, error)
            }
        }
    }

    /// The client whose signals this queue delivers.
    pub fn client(&self) -> Client {
        self.handle.client.clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> BackgroundStats {
        self.handle.shared.stats()
    }

    /// Waits until every signal queued so far is delivered or dropped, for
    /// at most `timeout`; `true` if the queue was drained.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let mut pending = self.handle.shared.pending.subscribe();
        tokio::time::timeout(timeout, pending.wait_for(|p| *p == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Closes the queue (later `enqueue`s are dropped as
    /// [`DropReason::Closed`]), delivers what is queued for at most
    /// `timeout`, then drops and reports whatever is left
    /// ([`DropReason::Shutdown`]) and stops the task. Returns the final
    /// counters. Calling it again is harmless.
    pub async fn shutdown(&self, timeout: Duration) -> BackgroundStats {
        let sender = match self.handle.sender.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(sender);
        if !self.flush(timeout).await {
            let _ = self.handle.cancel.send(true);
        }
        let worker = match self.handle.worker.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(worker) = worker {
            // The worker ends promptly once cancelled; bound the wait anyway.
            if tokio::time::timeout(Duration::from_secs(5), worker)
                .await
                .is_err()
            {
                tracing::error!("sendpromptly: the background task did not stop within 5 s");
            }
        }
        self.stats()
    }
}

async fn cancelled(mut cancel: watch::Receiver<bool>) {
    // A dropped sender (every handle gone) is not a cancellation: keep
    // delivering what is queued.
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run_worker(
    mut receiver: mpsc::Receiver<Queued>,
    client: Client,
    retry: RetryConfig,
    concurrency: usize,
    shared: Arc<Shared>,
    cancel: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let retry = Arc::new(retry);
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = cancelled(cancel.clone()) => break,
        };
        let item = tokio::select! {
            item = receiver.recv() => item,
            () = cancelled(cancel.clone()) => None,
        };
        let Some(item) = item else { break };
        let client = client.clone();
        let retry = Arc::clone(&retry);
        let shared = Arc::clone(&shared);
        let cancel = cancel.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = deliver(&client, &retry, &shared, &item) => {}
                () = cancelled(cancel) => shared.report(DroppedSignal {
                    signal: item.signal,
                    idempotency_key: item.key,
                    reason: DropReason::Shutdown,
                    error: None,
                }),
            }
            shared.finished();
            drop(permit);
        });
    }
    // Cancelled: whatever is still queued is reported, never sent.
    receiver.close();
    while let Ok(item) = receiver.try_recv() {
        shared.report(DroppedSignal {
            signal: item.signal,
            idempotency_key: item.key,
            reason: DropReason::Shutdown,
            error: None,
        });
        shared.finished();
    }
    while tasks.join_next().await.is_some() {}
}

/// Sends one signal under `retry`. With 429 in `retry.retry_on`, a 429 is
/// waited out here for every delivery (see the module docs) rather than by
/// the retry loop, so it uses up neither attempts nor budget.
async fn deliver(client: &Client, retry: &RetryConfig, shared: &Shared, item: &Queued) {
    let absorb_429 = retry.retry_on.too_many_requests;
    let mut per_call = retry.clone();
    per_call.retry_on.too_many_requests = false;
    let mut throttled: u32 = 0;
    let outcome = loop {
        shared.wait_for_server().await;
        let outcome = match item.signal.call(item.key.clone()) {
            Ok(call) => client.send_signal(&call, &per_call).await.map(|_| ()),
            Err(err) => Err(err),
        };
        match &outcome {
            Err(Error::Api(api)) if api.status == 429 && absorb_429 => {
                throttled = throttled.saturating_add(1);
                shared.counters.throttled.fetch_add(1, Ordering::Relaxed);
                // The server's Retry-After, or the policy's backoff without one.
                let wait = api
                    .retry_after
                    .unwrap_or_else(|| retry.backoff(throttled, rand::random::<f64>()));
                tracing::debug!(
                    signal = %item.signal.describe(),
                    wait_ms = wait.as_millis() as u64,
                    "sendpromptly: 429 from the server; background delivery pauses"
                );
                shared.pause(wait.max(Duration::from_millis(1)));
            }
            _ => break outcome,
        }
    };
    match outcome {
        Ok(()) => {
            shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => {
            let reason = if error.is_retryable() {
                DropReason::GaveUp
            } else {
                DropReason::Rejected
            };
            shared.report(DroppedSignal {
                signal: item.signal.clone(),
                idempotency_key: item.key.clone(),
                reason,
                error: Some(error),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use sendpromptly_core::model::Provider;

    use super::*;

    fn unreachable_client() -> Client {
        // Port 9 (discard) on loopback: nothing listens, connections are refused.
        Client::with_options(crate::ClientOptions {
            api_key: Some("sp_test".into()),
            base_url: Some("http://127.0.0.1:9".into()),
            ..crate::ClientOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn needs_a_runtime_and_says_so() {
        let err = unreachable_client()
            .background(BackgroundConfig::default())
            .unwrap_err();
        assert!(err.to_string().contains("Tokio runtime"), "{err}");
    }

    #[test]
    fn config_from_lookup() {
        let config = BackgroundConfig::from_lookup(&|name| match name {
            "SENDPROMPTLY_BACKGROUND_CAPACITY" => Some("12".into()),
            "SENDPROMPTLY_BACKGROUND_RETRY_TOTAL_BUDGET_MS" => Some("2000".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.capacity, 12);
        assert_eq!(config.retry.total_budget, Duration::from_secs(2));
        assert!(
            BackgroundConfig::from_lookup(&|name| {
                (name == "SENDPROMPTLY_BACKGROUND_CONCURRENCY").then(|| "0".to_owned())
            })
            .is_err()
        );
    }

    #[tokio::test]
    async fn invalid_and_closed_signals_are_reported_not_panicked() {
        let reported = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&reported);
        let background = unreachable_client()
            .background(BackgroundConfig {
                on_drop: Some(Arc::new(move |_| {
                    seen.fetch_add(1, Ordering::SeqCst);
                    panic!("a careless callback");
                })),
                retry: RetryConfig::no_retries(Duration::from_millis(200)),
                ..BackgroundConfig::default()
            })
            .unwrap();
        let sp = unreachable_client();
        let err = sp
            .receipt(Provider::Custom, "", "job.done")
            .enqueue(&background)
            .unwrap_err();
        assert!(matches!(err, EnqueueError::Invalid(_)), "{err}");
        let stats = background.shutdown(Duration::from_secs(2)).await;
        assert_eq!(stats.dropped_invalid, 1);
        let err = sp
            .receipt(Provider::Custom, "job-1", "job.done")
            .enqueue(&background)
            .unwrap_err();
        assert_eq!(err, EnqueueError::Closed);
        assert_eq!(background.stats().dropped_closed, 1);
        assert_eq!(reported.load(Ordering::SeqCst), 2);
    }
}
