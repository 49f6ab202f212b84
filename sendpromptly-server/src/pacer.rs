//! The reprocess-batch pacer: moves pending batch items into the
//! repair-callback outbox at each batch's rate, while fewer than the batch's
//! `concurrency` of its callbacks are in flight (see
//! [`Store::pace_reprocess_batches`](crate::store::Store::pace_reprocess_batches)).
//!
//! A callback waiting for its next retry holds no slot (the rule is
//! `sendpromptly_core::batch::pace_step`). Once the repair endpoint answers
//! a 2xx again, the batch's callbacks still waiting from before that success
//! are made due within the pacing (ahead of new items) instead of after
//! their full backoff; a 429/503 `Retry-After` still pauses the whole batch
//! ([`slow_down`]). A retry that comes due on its own schedule while the
//! batch's other callbacks fill its concurrency waits for a slot (the
//! dispatcher's claim defers it), so the endpoint never has more than the
//! concurrency open.
//!
//! All state is in the database and each item is sent in the same
//! transaction that marks it `sent`, so a restart resumes a batch without
//! duplicates and several instances never send an item twice. The
//! dispatcher slows a batch down when its repair endpoint answers 429 or
//! 503 ([`slow_down`]).

use std::time::Duration;

use sendpromptly_core::Timestamp;
use tokio::sync::watch;

use crate::app::AppState;

/// Batches paced per pass.
const BATCHES_PER_PASS: u32 = 20;
/// The longest the pacer sleeps between passes.
const MAX_INTERVAL: Duration = Duration::from_millis(100);
/// How long a batch pauses after a 429/503 without `Retry-After`.
pub const DEFAULT_SLOW_DOWN: Duration = Duration::from_secs(5);

/// Runs the pacer until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let interval = state.config().dispatch_interval.min(MAX_INTERVAL);
    loop {
        if *shutdown.borrow() {
            break;
        }
        pace_once(&state).await;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pacing pass.
pub async fn pace_once(state: &AppState) {
    skip_point!("pacer.pass");
    match state
        .store()
        .pace_reprocess_batches(state.now(), BATCHES_PER_PASS)
        .await
    {
        Ok(report) => {
            state.health().pass(crate::health::Loop::Pacer);
            for (_, transition) in &report.transitions {
                state.after_transition(&transition.effects);
            }
            if report.retried > 0 {
                state.wake_dispatcher();
            }
            if !report.transitions.is_empty()
                || report.skipped > 0
                || report.completed > 0
                || report.retried > 0
            {
                tracing::debug!(
                    sent = report.transitions.len(),
                    retried = report.retried,
                    skipped = report.skipped,
                    completed = report.completed,
                    "reprocess batches paced"
                );
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not pace reprocess batches"),
    }
}

/// Called by the dispatcher when an attempt of `reprocess_id` got 429 or
/// 503: its batch (if any) starts nothing more until `Retry-After` (or
/// [`DEFAULT_SLOW_DOWN`]) has passed.
pub async fn slow_down(
    state: &AppState,
    reprocess_id: &str,
    now: Timestamp,
    retry_after: Option<Duration>,
) {
    let until = now + retry_after.unwrap_or(DEFAULT_SLOW_DOWN);
    if let Err(err) = state
        .store()
        .slow_reprocess_batch(reprocess_id, until)
        .await
    {
        tracing::warn!(error = %err, %reprocess_id, "could not slow down a reprocess batch");
    }
}
