//! The claim → send loop of the two outboxes, written once: the
//! repair-callback dispatcher ([`crate::dispatcher`]) and the alert sender
//! ([`crate::alerts`]) each give it how to claim due jobs and how to send
//! one.
//!
//! A round claims at most as many jobs as there are free permits (none
//! when every permit is sending: busy, not stuck), spawns one task per
//! job holding a permit until it finishes, then sleeps for the dispatch
//! interval (or until woken). On shutdown it waits up to the grace period
//! for the sends in flight; their leases expire and another claim retries
//! what is left. Who may call it: the background senders.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::app::AppState;
use crate::health::Loop;
use crate::store::StoreResult;

/// What tells one outbox loop from the other.
#[derive(Clone, Copy, Debug)]
pub struct Outbox {
    /// What is sent, for logs (e.g. `repair callbacks`).
    pub what: &'static str,
    /// The health loop to report a claim to.
    pub health: Loop,
    /// Jobs sent at once.
    pub concurrency: usize,
    /// Whether [`AppState::wake_dispatcher`] ends the sleep early.
    pub wake_on_dispatch: bool,
}

/// Runs an outbox until `shutdown` turns true, then waits for sends in
/// flight. `claim(state, free)` claims up to `free` due jobs; `send(state,
/// http, job)` sends one with `http` and records it.
pub async fn run<J, C, CF, S, SF>(
    state: AppState,
    http: reqwest::Client,
    outbox: Outbox,
    mut shutdown: watch::Receiver<bool>,
    claim: C,
    send: S,
) where
    C: Fn(AppState, u32) -> CF,
    CF: Future<Output = StoreResult<Vec<J>>>,
    S: Fn(AppState, reqwest::Client, J) -> SF,
    SF: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(outbox.concurrency));
    loop {
        if *shutdown.borrow() {
            break;
        }
        claim_and_spawn(&state, &http, &outbox, &permits, &claim, &send).await;
        let interval = tokio::time::sleep(state.config().dispatch_interval);
        if outbox.wake_on_dispatch {
            tokio::select! {
                () = interval => {}
                () = state.dispatcher_woken() => {}
                _ = shutdown.changed() => {}
            }
        } else {
            tokio::select! {
                () = interval => {}
                _ = shutdown.changed() => {}
            }
        }
    }
    drain(
        state.config().shutdown_grace,
        &permits,
        outbox.concurrency,
        outbox.what,
    )
    .await;
}

/// One round: claims what is due, up to the free permits, and spawns a
/// send for each.
async fn claim_and_spawn<J, C, CF, S, SF>(
    state: &AppState,
    http: &reqwest::Client,
    outbox: &Outbox,
    permits: &Arc<Semaphore>,
    claim: &C,
    send: &S,
) where
    C: Fn(AppState, u32) -> CF,
    CF: Future<Output = StoreResult<Vec<J>>>,
    S: Fn(AppState, reqwest::Client, J) -> SF,
    SF: Future<Output = ()> + Send + 'static,
{
    let free = u32::try_from(permits.available_permits()).unwrap_or(0);
    if free == 0 {
        // Every permit is sending: busy, not stuck.
        state.health().pass(outbox.health);
        return;
    }
    let jobs = match claim(state.clone(), free).await {
        Ok(jobs) => {
            state.health().pass(outbox.health);
            jobs
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not claim {}", outbox.what);
            return;
        }
    };
    for job in jobs {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let work = send(state.clone(), http.clone(), job);
        tokio::spawn(async move {
            work.await;
            drop(permit);
        });
    }
}

/// Waits up to `grace` for every one of the `concurrency` permits, i.e. for
/// the sends in flight to finish; warns if some are still running (their
/// leases expire and another claim retries them).
async fn drain(grace: Duration, permits: &Semaphore, concurrency: usize, what: &str) {
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "{what} still in flight at shutdown; their leases expire and they are retried"
        );
    }
}
