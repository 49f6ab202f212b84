//! Retention: a background job that forgets idempotency keys older than
//! `idempotency_retention` (never less than the 24 h replay window the
//! contract promises). It deletes nothing else: events, incidents (open or
//! resolved) and their timelines are kept.

use tokio::sync::watch;

use crate::app::AppState;
use crate::store::StoreResult;

/// Runs a purge every `retention_interval` until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let interval = state.config().retention_interval;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match purge_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "retention: idempotency keys purged"),
            Err(err) => tracing::warn!(error = %err, "retention pass failed; retrying next time"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass: deletes the idempotency keys created more than
/// `idempotency_retention` ago; returns how many.
pub async fn purge_once(state: &AppState) -> StoreResult<u64> {
    let before = state.now() - state.config().idempotency_retention;
    state.store().purge_idempotency_keys(before).await
}
