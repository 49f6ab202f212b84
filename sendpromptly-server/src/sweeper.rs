//! The deadline sweeper: opens `missing_result` incidents when deadlines
//! pass, and returns reprocessing incidents to `open` when a delivered
//! callback brings no result in time.
//!
//! Deadlines live in the database (`due_at`, indexed), not in timers, so
//! they survive restarts; each pass claims only due records, so its cost
//! grows with the number of due events, not pending ones.

use tokio::sync::watch;

use crate::app::AppState;
use crate::health::Loop;
use crate::store::StoreResult;

/// Runs sweeper passes every `sweep_interval` until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let interval = state.config().sweep_interval;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let started = crate::otlp::now_nanos();
        let pass = sweep_once(&state).await;
        // Only ticks that did something (or failed) become spans: an idle
        // tick every interval would be noise.
        if crate::otlp::enabled() && pass.as_ref().map_or(true, |n| *n > 0) {
            use crate::otlp::{Span, SpanKind, Value};
            let mut span = Span::ending_now("sweeper tick", SpanKind::Internal, started, None);
            if let Ok(examined) = &pass {
                span = span.attr(
                    "sendpromptly.sweeper.examined",
                    Value::Int(*examined as i64),
                );
            }
            span.error = pass.is_err();
            crate::otlp::record(span);
        }
        if let Err(err) = pass {
            tracing::warn!(error = %err, "sweeper pass failed; retrying next tick");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass: handles every record due now, in batches. Returns how many were examined.
pub async fn sweep_once(state: &AppState) -> StoreResult<usize> {
    let batch = state.config().sweep_batch;
    let mut examined = 0;
    loop {
        error_point!("sweeper.pass");
        let now = state.now();
        let report = state.store().sweep_due(now, batch).await?;
        error_point!("sweeper.after_sweep");
        // Each batch is progress: a long catch-up is not a stuck sweeper.
        state.health().pass(Loop::Sweeper);
        for (project_id, transition) in &report.transitions {
            tracing::debug!(project_id, event_id = %transition.record.event_id, "deadline handled");
            state.after_transition(&transition.effects);
        }
        if let Some(oldest) = report.oldest_due_at {
            state.metrics().sweeper_pass(now.millis_since(oldest));
        }
        examined += report.examined;
        if report.examined < usize::try_from(batch).unwrap_or(usize::MAX) {
            return Ok(examined);
        }
    }
}
