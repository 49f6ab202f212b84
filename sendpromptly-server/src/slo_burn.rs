//! The SLO burn-rate loop (issue #25): every `slo_interval` it evaluates
//! each project's SLOs with the multi-window rules of
//! [`sendpromptly_core::stats::BURN_RULES`] and raises one `slo.burning`
//! alert per burn episode: the store records the episode and enqueues the
//! alerts in one transaction that only one instance wins
//! ([`crate::store::Store::start_slo_episode`]); the episode ends when no
//! rule fires any more.

use sendpromptly_core::alert::SloFacts;
use sendpromptly_core::stats::{self, BURN_RULES};
use tokio::sync::watch;

use crate::app::AppState;
use crate::service::error::ServiceResult;
use crate::service::stats::slo_window_counts;

/// Runs [`evaluate_once`] every `slo_interval` until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let interval = state.config().slo_interval;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match evaluate_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(episodes = n, "slo.burning: burn episodes started"),
            Err(err) => tracing::warn!(error = %err, "SLO evaluation failed; retrying next time"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass over every SLO; returns how many burn episodes this pass
/// started (and so alerted).
pub async fn evaluate_once(state: &AppState) -> ServiceResult<usize> {
    let now = state.now();
    let store = state.store();
    let mut started = 0;
    for (project_id, objective) in store.all_slo_objectives().await? {
        let target = objective.objective_percent / 100.0;
        let mut fired = None;
        for rule in BURN_RULES {
            let long =
                slo_window_counts(store, &project_id, &objective, now, rule.long_minutes).await?;
            let short =
                slo_window_counts(store, &project_id, &objective, now, rule.short_minutes).await?;
            let (burn_long, burn_short) = (
                stats::burn_rate(long.0, long.1, target),
                stats::burn_rate(short.0, short.1, target),
            );
            if burn_long >= rule.factor && burn_short >= rule.factor {
                fired = Some((rule, burn_long, burn_short));
                break;
            }
        }
        match fired {
            Some((rule, burn_rate_long, burn_rate_short)) => {
                let facts = SloFacts {
                    event_type: objective.event_type.clone(),
                    objective_percent: objective.objective_percent,
                    threshold_seconds: objective.threshold_seconds,
                    long_minutes: rule.long_minutes,
                    short_minutes: rule.short_minutes,
                    factor: rule.factor,
                    burn_rate_long,
                    burn_rate_short,
                    console_url: state.public_url(crate::links::ANALYTICS_PATH),
                };
                if store.start_slo_episode(&project_id, &facts, now).await? {
                    started += 1;
                }
            }
            None => {
                store
                    .end_slo_episode(&project_id, &objective.event_type, now)
                    .await?;
            }
        }
    }
    Ok(started)
}
