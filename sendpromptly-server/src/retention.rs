//! Retention: a background job that forgets idempotency keys older than
//! `idempotency_retention` (never less than the 24 h replay window the
//! contract promises) and, when `resolved_retention` is set
//! (`--resolved-retention-days`), finished history older than it: events
//! whose incident is resolved, or that succeeded without one, with their
//! timelines, outbox rows, proof links and batch items. An open or
//! reprocessing incident, or an event still awaiting its result, is never
//! deleted.

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
        match purge_resolved_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "retention: resolved history purged"),
            Err(err) => {
                tracing::warn!(error = %err, "resolved-history retention failed; retrying next time");
            }
        }
        match purge_audit_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "retention: audit log entries purged"),
            Err(err) => {
                tracing::warn!(error = %err, "audit log retention failed; retrying next time")
            }
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

/// Events deleted per transaction by the resolved-history retention.
const RESOLVED_BATCH: u32 = 500;

/// One pass of the resolved-history retention: deletes, in batches, the
/// finished events last changed more than `resolved_retention` ago; returns
/// how many. Does nothing when the setting is off.
pub async fn purge_resolved_once(state: &AppState) -> StoreResult<u64> {
    let Some(keep) = state.config().resolved_retention else {
        return Ok(0);
    };
    let before = state.now() - keep;
    let mut total = 0;
    loop {
        let deleted = state
            .store()
            .purge_resolved_history(before, RESOLVED_BATCH)
            .await?;
        total += deleted;
        if deleted < u64::from(RESOLVED_BATCH) {
            return Ok(total);
        }
    }
}

/// Deletes audit log entries older than `--audit-retention-days` (none
/// when it is 0); returns how many.
pub async fn purge_audit_once(state: &AppState) -> StoreResult<u64> {
    let Some(keep) = state.config().audit_retention else {
        return Ok(0);
    };
    state.store().purge_audit(state.now() - keep).await
}
