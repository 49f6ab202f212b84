//! Time-to-effect analytics and SLO status (issue #25), read from the
//! rollups the store keeps at write time; `docs/analytics.md` defines each
//! figure.

use std::collections::BTreeMap;

use sendpromptly_core::Timestamp;
use sendpromptly_core::stats::{self, BURN_RULES};
use sendpromptly_core::validation::ValidationError;
use sendpromptly_core::wire::{
    DailyStats, DurationStats, EventTypeStats, RepairStats, SloObjective, SloStatus, StatsFigures,
    StatsQuery, StatsReport,
};

use super::error::ServiceResult;
use crate::app::AppState;
use crate::store::{StatsRow, Store};

const DAY: i64 = 86_400_000;
const SLOT: i64 = 300_000;
/// The longest window `GET /v1/stats` reads.
const MAX_WINDOW_DAYS: i64 = 400;

/// The window `[from, to)` a query asks for, `from` rounded down to a UTC day.
pub fn window(
    query: &StatsQuery,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), ValidationError> {
    let to = query.to.unwrap_or(now);
    let from = match (&query.window, query.from) {
        (Some(_), Some(_)) => {
            return Err(ValidationError::new(
                "window",
                "give either `window` or `from`, not both",
            ));
        }
        (_, Some(from)) => from,
        (window, None) => {
            let text = window.as_deref().unwrap_or("7d");
            let bad = || {
                ValidationError::new(
                    "window",
                    format!(
                        "`{text}` is not a window; use 24h, 7d, 30d, or a number followed by h or d"
                    ),
                )
            };
            let (number, unit) = text.split_at(text.len().saturating_sub(1));
            let n: i64 = number.parse().map_err(|_| bad())?;
            let millis = match unit {
                "h" => n * 3_600_000,
                "d" => n * DAY,
                _ => return Err(bad()),
            };
            if n < 1 || millis > MAX_WINDOW_DAYS * DAY {
                return Err(ValidationError::new(
                    "window",
                    format!("`{text}` is outside 1h to {MAX_WINDOW_DAYS}d"),
                ));
            }
            Timestamp::from_unix_millis(to.unix_millis() - millis)
        }
    };
    if from >= to {
        return Err(ValidationError::new("from", "`from` must be before `to`"));
    }
    if to.unix_millis() - from.unix_millis() > MAX_WINDOW_DAYS * DAY {
        return Err(ValidationError::new(
            "from",
            format!("the window may span at most {MAX_WINDOW_DAYS} days"),
        ));
    }
    let start = from.unix_millis().div_euclid(DAY) * DAY;
    Ok((Timestamp::from_unix_millis(start), to))
}

/// Percentiles of a merged histogram.
fn durations(hist: &BTreeMap<i64, u64>) -> DurationStats {
    let pairs: Vec<(i64, u64)> = hist.iter().map(|(b, n)| (*b, *n)).collect();
    DurationStats {
        count: pairs.iter().map(|(_, n)| n).sum(),
        p50_ms: stats::percentile(&pairs, 0.50),
        p95_ms: stats::percentile(&pairs, 0.95),
        p99_ms: stats::percentile(&pairs, 0.99),
    }
}

/// Histograms and counters being merged.
#[derive(Default)]
struct Acc {
    tte: BTreeMap<i64, u64>,
    lag: BTreeMap<i64, u64>,
    ttr: BTreeMap<i64, u64>,
    counters: BTreeMap<String, u64>,
}

impl Acc {
    fn add(&mut self, row: &StatsRow) {
        let hist = match row.metric.as_str() {
            "tte" => &mut self.tte,
            "lag" => &mut self.lag,
            "ttr" => &mut self.ttr,
            other => {
                *self.counters.entry(other.to_owned()).or_default() += row.n;
                return;
            }
        };
        *hist.entry(row.bucket).or_default() += row.n;
    }

    fn figures(&self) -> StatsFigures {
        let count = |name: &str| self.counters.get(name).copied().unwrap_or(0);
        let opened = count("incidents");
        let (reprocess, manual, other) = (
            count("repaired_reprocess"),
            count("repaired_manual"),
            count("resolved_other"),
        );
        StatsFigures {
            received: count("received"),
            time_to_effect: durations(&self.tte),
            delivery_lag: durations(&self.lag),
            time_to_repair: durations(&self.ttr),
            repairs: RepairStats {
                opened,
                repaired_by_reprocess: reprocess,
                resolved_manually: manual,
                resolved_otherwise: other,
                still_open: opened.saturating_sub(reprocess + manual + other),
            },
        }
    }
}

/// The report of `GET /v1/stats`, the console's Analytics page and
/// `sendpromptly stats`.
pub async fn report(
    state: &AppState,
    project_id: &str,
    query: &StatsQuery,
) -> ServiceResult<StatsReport> {
    let now = state.now();
    let (from, to) = window(query, now)?;
    let store = state.store();
    let rows = store
        .stats_rows(project_id, from, to, query.event_type.as_deref())
        .await?;
    let wanted = |event_type: &str| {
        query
            .event_type
            .as_deref()
            .is_none_or(|only| only == event_type)
    };
    let mut overall = Acc::default();
    let mut by_type: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_day: BTreeMap<i64, Acc> = BTreeMap::new();
    for row in rows.iter().filter(|r| wanted(&r.event_type)) {
        overall.add(row);
        by_type.entry(&row.event_type).or_default().add(row);
        if matches!(row.metric.as_str(), "tte" | "received") {
            by_day.entry(row.day).or_default().add(row);
        }
    }
    let mut daily = Vec::new();
    let mut day = from.unix_millis();
    while day < to.unix_millis() {
        let acc = by_day.remove(&day).unwrap_or_default();
        daily.push(DailyStats {
            day: Timestamp::from_unix_millis(day).to_rfc3339()[..10].to_owned(),
            received: acc.counters.get("received").copied().unwrap_or(0),
            time_to_effect: durations(&acc.tte),
        });
        day += DAY;
    }
    let mut slos = Vec::new();
    for objective in store.slo_objectives(project_id).await? {
        if wanted(&objective.event_type) {
            slos.push(slo_status(store, project_id, objective, now).await?);
        }
    }
    Ok(StatsReport {
        from,
        to,
        event_type: query.event_type.clone(),
        overall: overall.figures(),
        by_event_type: by_type
            .into_iter()
            .map(|(event_type, acc)| EventTypeStats {
                event_type: event_type.to_owned(),
                figures: acc.figures(),
            })
            .collect(),
        daily,
        slos,
    })
}

/// The start of the last 5-minute slot whose events are all due at `now`
/// (received at least `threshold_seconds` ago), plus one slot: slots
/// starting before it are due.
pub fn due_end(now: Timestamp, threshold_seconds: u32) -> i64 {
    let cutoff = now.unix_millis() - i64::from(threshold_seconds) * 1000;
    cutoff.div_euclid(SLOT) * SLOT
}

/// `(due, good)` over the `minutes` of slots ending at [`due_end`].
pub async fn slo_window_counts(
    store: &dyn Store,
    project_id: &str,
    objective: &SloObjective,
    now: Timestamp,
    minutes: i64,
) -> ServiceResult<(u64, u64)> {
    let end = due_end(now, objective.threshold_seconds);
    let from = Timestamp::from_unix_millis(end - minutes * 60_000);
    Ok(store
        .slo_counts(
            project_id,
            &objective.event_type,
            from,
            Timestamp::from_unix_millis(end),
        )
        .await?)
}

/// Where an SLO stands at `now`.
pub async fn slo_status(
    store: &dyn Store,
    project_id: &str,
    objective: SloObjective,
    now: Timestamp,
) -> ServiceResult<SloStatus> {
    let target = objective.objective_percent / 100.0;
    let window_minutes = i64::from(objective.window_days) * 24 * 60;
    let (due, good) = slo_window_counts(store, project_id, &objective, now, window_minutes).await?;
    let mut windows = BTreeMap::new();
    for rule in BURN_RULES {
        for minutes in [rule.long_minutes, rule.short_minutes] {
            windows.insert(
                minutes,
                slo_window_counts(store, project_id, &objective, now, minutes).await?,
            );
        }
    }
    let burn = |minutes: i64| windows.get(&minutes).copied().unwrap_or((0, 0));
    let (due_1h, good_1h) = burn(60);
    Ok(SloStatus {
        due,
        good,
        attainment_percent: stats::attainment(due, good).map(|a| a * 100.0),
        error_budget_left_percent: stats::budget_left(due, good, target).map(|b| b * 100.0),
        burn_rate_1h: stats::burn_rate(due_1h, good_1h, target),
        burning: stats::burning(target, burn),
        objective,
    })
}
