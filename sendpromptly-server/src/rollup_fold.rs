//! The analytics fold (issue #26): on PostgreSQL the analytics triggers
//! append deltas instead of upserting the rollup rows (migration 0015), so
//! concurrent writers (group writers, instances) never wait on each other's
//! rollup rows and cannot deadlock there. This loop moves the deltas into
//! the rollup ([`crate::store::Store::fold_rollups`]): a bounded batch per
//! pass, in one transaction (a crash mid-fold rolls it all back), one
//! instance at a time. The reads add the deltas not folded yet, so how far
//! the fold has got never changes an answer; it only keeps the delta tables
//! small. On SQLite there is nothing to fold and each pass returns at once.

use std::time::Duration;

use tokio::sync::watch;

use crate::app::AppState;

/// Delta rows moved per table and pass.
pub const ROWS_PER_PASS: u32 = 20_000;
/// The pause between passes when the last one emptied the deltas.
const INTERVAL: Duration = Duration::from_millis(500);

/// Runs the fold until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        if fold_once(&state).await {
            // A full batch: more may be waiting.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass; `true` when it moved a full batch (go on without pausing).
pub async fn fold_once(state: &AppState) -> bool {
    match state.store().fold_rollups(ROWS_PER_PASS).await {
        Ok(fold) => {
            state.health().pass(crate::health::Loop::Rollups);
            state.metrics().rollup_fold(fold.folded);
            if fold.folded > 0 {
                tracing::debug!(folded = fold.folded, "analytics deltas folded");
            }
            fold.folded >= u64::from(ROWS_PER_PASS)
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not fold the analytics deltas; retrying");
            false
        }
    }
}
