//! Prometheus metrics, kept as atomics and rendered as text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Outcome label of a callback attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered,
    /// Failed; retry scheduled.
    Retry,
    /// Failed; delivery gave up.
    GaveUp,
}

impl AttemptOutcome {
    /// The outcome of an attempt followed by `next`.
    pub fn of(next: &sendpromptly_core::retry::NextStep) -> AttemptOutcome {
        use sendpromptly_core::retry::NextStep;
        match next {
            NextStep::Done => AttemptOutcome::Delivered,
            NextStep::RetryAt(_) => AttemptOutcome::Retry,
            NextStep::GiveUp(_) => AttemptOutcome::GaveUp,
        }
    }
}

/// The server's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    receipts: AtomicU64,
    results_success: AtomicU64,
    results_failure: AtomicU64,
    incidents_opened: AtomicU64,
    incidents_reopened: AtomicU64,
    incidents_resolved: AtomicU64,
    attempts_delivered: AtomicU64,
    attempts_retry: AtomicU64,
    attempts_gave_up: AtomicU64,
    alerts_delivered: AtomicU64,
    alerts_retry: AtomicU64,
    alerts_gave_up: AtomicU64,
    sweeper_lag_millis: AtomicI64,
    sweeper_passes: AtomicU64,
    rollup_fold_passes: AtomicU64,
    rollup_deltas_folded: AtomicU64,
    requests_abandoned: AtomicU64,
    /// Provider tap deliveries: per provider (Stripe, Shopify), per
    /// [`TAP_OUTCOMES`] label.
    tap_deliveries: [[AtomicU64; TAP_OUTCOMES.len()]; 2],
    reconcile_passes: AtomicU64,
    reconcile_events_fed: AtomicU64,
    reconcile_last_success_millis: AtomicI64,
    reconcile_errors: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Time to effect and HTTP request durations (issue #25).
    pub histograms: crate::metrics_histograms::Histograms,
}

/// The `outcome` labels of `sendpromptly_provider_tap_deliveries_total`.
pub const TAP_OUTCOMES: [&str; 6] = [
    "created",
    "duplicate",
    "already_received",
    "linked_by_fingerprint",
    "not_tracked",
    "rejected",
];

impl Metrics {
    /// Counts a request whose client went away (or that timed out) before
    /// its answer; its work still ran to completion.
    pub fn request_abandoned(&self) {
        self.requests_abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a provider tap delivery by its outcome (one of
    /// [`TAP_OUTCOMES`]; anything else is not counted).
    pub fn tap_delivery(&self, provider: sendpromptly_core::model::Provider, outcome: &str) {
        let row = match provider {
            sendpromptly_core::model::Provider::Stripe => 0,
            sendpromptly_core::model::Provider::Shopify => 1,
            sendpromptly_core::model::Provider::Custom => return,
        };
        if let Some(i) = TAP_OUTCOMES.iter().position(|o| *o == outcome) {
            self.tap_deliveries[row][i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a receipt.
    pub fn receipt(&self) {
        self.receipts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a result.
    pub fn result(&self, success: bool) {
        let counter = if success {
            &self.results_success
        } else {
            &self.results_failure
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an incident that opened.
    pub fn incident_opened(&self) {
        self.incidents_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an incident that reopened.
    pub fn incident_reopened(&self) {
        self.incidents_reopened.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an incident that was resolved.
    pub fn incident_resolved(&self) {
        self.incidents_resolved.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a callback attempt by outcome.
    pub fn callback_attempt(&self, outcome: AttemptOutcome) {
        let counter = match outcome {
            AttemptOutcome::Delivered => &self.attempts_delivered,
            AttemptOutcome::Retry => &self.attempts_retry,
            AttemptOutcome::GaveUp => &self.attempts_gave_up,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an alert attempt by outcome.
    pub fn alert_attempt(&self, outcome: AttemptOutcome) {
        let counter = match outcome {
            AttemptOutcome::Delivered => &self.alerts_delivered,
            AttemptOutcome::Retry => &self.alerts_retry,
            AttemptOutcome::GaveUp => &self.alerts_gave_up,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a sweeper pass and how late the oldest due record it handled was.
    pub fn sweeper_pass(&self, lag_millis: i64) {
        self.sweeper_passes.fetch_add(1, Ordering::Relaxed);
        self.sweeper_lag_millis
            .store(lag_millis.max(0), Ordering::Relaxed);
    }

    /// Records a pass of the analytics fold that moved `folded` deltas.
    pub fn rollup_fold(&self, folded: u64) {
        self.rollup_fold_passes.fetch_add(1, Ordering::Relaxed);
        self.rollup_deltas_folded
            .fetch_add(folded, Ordering::Relaxed);
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(
        &self,
        pending_callbacks: u64,
        group_commit: Option<crate::store::GroupCommitStats>,
    ) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP sendpromptly_signals_received_total Signals received, by type."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_signals_received_total counter");
        for (label, counter) in [
            ("receipt", &self.receipts),
            ("result_success", &self.results_success),
            ("result_failure", &self.results_failure),
        ] {
            let _ = writeln!(
                out,
                "sendpromptly_signals_received_total{{type=\"{label}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sendpromptly_incidents_opened_total Incidents opened (first time)."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_incidents_opened_total counter");
        let _ = writeln!(
            out,
            "sendpromptly_incidents_opened_total {}",
            get(&self.incidents_opened)
        );
        let _ = writeln!(
            out,
            "# HELP sendpromptly_incidents_reopened_total Resolved incidents reopened by a new failure."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_incidents_reopened_total counter");
        let _ = writeln!(
            out,
            "sendpromptly_incidents_reopened_total {}",
            get(&self.incidents_reopened)
        );
        let _ = writeln!(
            out,
            "# HELP sendpromptly_incidents_resolved_total Incidents resolved."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_incidents_resolved_total counter");
        let _ = writeln!(
            out,
            "sendpromptly_incidents_resolved_total {}",
            get(&self.incidents_resolved)
        );
        let _ = writeln!(
            out,
            "# HELP sendpromptly_callback_attempts_total Repair callback attempts, by outcome."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_callback_attempts_total counter");
        for (label, counter) in [
            ("delivered", &self.attempts_delivered),
            ("retry", &self.attempts_retry),
            ("gave_up", &self.attempts_gave_up),
        ] {
            let _ = writeln!(
                out,
                "sendpromptly_callback_attempts_total{{outcome=\"{label}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sendpromptly_provider_tap_deliveries_total Provider tap deliveries, by provider and outcome."
        );
        let _ = writeln!(
            out,
            "# TYPE sendpromptly_provider_tap_deliveries_total counter"
        );
        for (row, provider) in ["stripe", "shopify"].into_iter().enumerate() {
            for (i, outcome) in TAP_OUTCOMES.into_iter().enumerate() {
                let _ = writeln!(
                    out,
                    "sendpromptly_provider_tap_deliveries_total{{provider=\"{provider}\",outcome=\"{outcome}\"}} {}",
                    get(&self.tap_deliveries[row][i])
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sendpromptly_alert_attempts_total Alert attempts (email, Slack, webhook), by outcome."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_alert_attempts_total counter");
        for (label, counter) in [
            ("delivered", &self.alerts_delivered),
            ("retry", &self.alerts_retry),
            ("gave_up", &self.alerts_gave_up),
        ] {
            let _ = writeln!(
                out,
                "sendpromptly_alert_attempts_total{{outcome=\"{label}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sendpromptly_callbacks_pending Repair callbacks waiting to be sent."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_callbacks_pending gauge");
        let _ = writeln!(out, "sendpromptly_callbacks_pending {pending_callbacks}");
        let _ = writeln!(
            out,
            "# HELP sendpromptly_sweeper_lag_seconds How late the oldest deadline handled by the last sweeper pass was."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_sweeper_lag_seconds gauge");
        let lag = self.sweeper_lag_millis.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "sendpromptly_sweeper_lag_seconds {}.{:03}",
            lag / 1000,
            lag % 1000
        );
        let _ = writeln!(
            out,
            "# HELP sendpromptly_sweeper_passes_total Sweeper passes that handled due records."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_sweeper_passes_total counter");
        let _ = writeln!(
            out,
            "sendpromptly_sweeper_passes_total {}",
            get(&self.sweeper_passes)
        );
        for (name, help, value) in [
            (
                "rollup_fold_passes_total",
                "Passes of the analytics fold (PostgreSQL: moves trigger deltas into the rollup).",
                &self.rollup_fold_passes,
            ),
            (
                "rollup_deltas_folded_total",
                "Analytics delta rows the fold moved into the rollup.",
                &self.rollup_deltas_folded,
            ),
        ] {
            let _ = writeln!(out, "# HELP sendpromptly_{name} {help}");
            let _ = writeln!(out, "# TYPE sendpromptly_{name} counter");
            let _ = writeln!(out, "sendpromptly_{name} {}", get(value));
        }
        let _ = writeln!(
            out,
            "# HELP sendpromptly_http_requests_abandoned_total Requests whose client went away (or that timed out) before the answer; their work still ran to completion."
        );
        let _ = writeln!(
            out,
            "# TYPE sendpromptly_http_requests_abandoned_total counter"
        );
        let _ = writeln!(
            out,
            "sendpromptly_http_requests_abandoned_total {}",
            get(&self.requests_abandoned)
        );
        if let Some(group) = group_commit {
            for (name, help, value) in [
                (
                    "group_commit_transactions_total",
                    "Group-commit transactions of receipts, results and incident actions.",
                    group.transactions,
                ),
                (
                    "group_commit_commands_total",
                    "Commands in those transactions (divide by transactions for the mean group size).",
                    group.commands,
                ),
                (
                    "group_commit_fallbacks_total",
                    "Groups re-run one command at a time after a write of the whole group failed.",
                    group.fallbacks,
                ),
            ] {
                let _ = writeln!(out, "# HELP sendpromptly_{name} {help}");
                let _ = writeln!(out, "# TYPE sendpromptly_{name} counter");
                let _ = writeln!(out, "sendpromptly_{name} {value}");
            }
            let _ = writeln!(
                out,
                "# HELP sendpromptly_group_commit_busy_seconds_total Time the group-commit writer tasks spent in transactions, summed over the tasks (near their number per second: the writers are the limit)."
            );
            let _ = writeln!(
                out,
                "# TYPE sendpromptly_group_commit_busy_seconds_total counter"
            );
            let _ = writeln!(
                out,
                "sendpromptly_group_commit_busy_seconds_total {}.{:06}",
                group.busy_micros / 1_000_000,
                group.busy_micros % 1_000_000
            );
        }
        out
    }
}

impl Metrics {
    /// Counts the incident changes a transition caused.
    pub fn observe_effects(&self, effects: &[sendpromptly_core::machine::Effect]) {
        use sendpromptly_core::machine::Effect;
        for effect in effects {
            match effect {
                Effect::IncidentOpened { .. } => self.incident_opened(),
                Effect::IncidentReopened { .. } => self.incident_reopened(),
                Effect::IncidentResolved { .. } => self.incident_resolved(),
                _ => {}
            }
        }
    }
}

impl Metrics {
    /// Counts a finished reconciler pass that fed `fed` events, at `now`.
    pub fn reconcile_pass(&self, fed: u64, now: sendpromptly_core::Timestamp) {
        self.reconcile_passes.fetch_add(1, Ordering::Relaxed);
        self.reconcile_events_fed.fetch_add(fed, Ordering::Relaxed);
        self.reconcile_last_success_millis
            .fetch_max(now.unix_millis(), Ordering::Relaxed);
    }

    /// Counts a failed reconciler pass by the error's kind.
    pub fn reconcile_error(&self, kind: &'static str) {
        if let Ok(mut errors) = self.reconcile_errors.lock() {
            *errors.entry(kind).or_insert(0) += 1;
        }
    }

    /// How many reconciler passes failed with `kind` (for tests).
    pub fn reconcile_errors(&self, kind: &str) -> u64 {
        self.reconcile_errors
            .lock()
            .map(|errors| errors.get(kind).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The Stripe reconciler's counters, this instance's last success and,
    /// from the database, each reconciled project's last success and
    /// failing status.
    pub fn render_reconcile(&self, states: &[crate::store::ReconcileState]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP sendpromptly_reconcile_passes_total Stripe reconciler passes this instance finished."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_reconcile_passes_total counter");
        let _ = writeln!(
            out,
            "sendpromptly_reconcile_passes_total {}",
            self.reconcile_passes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP sendpromptly_reconcile_events_fed_total Stripe events this instance's reconciler fed to the expected events."
        );
        let _ = writeln!(
            out,
            "# TYPE sendpromptly_reconcile_events_fed_total counter"
        );
        let _ = writeln!(
            out,
            "sendpromptly_reconcile_events_fed_total {}",
            self.reconcile_events_fed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP sendpromptly_reconcile_errors_total Stripe reconciler passes this instance ended with an error, by kind (unauthorized: the restricted key was refused)."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_reconcile_errors_total counter");
        if let Ok(errors) = self.reconcile_errors.lock() {
            for (kind, n) in errors.iter() {
                let _ = writeln!(
                    out,
                    "sendpromptly_reconcile_errors_total{{kind=\"{kind}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sendpromptly_reconcile_last_success_timestamp_seconds When a Stripe reconciler pass last succeeded: on this instance (no label), and per project (any instance)."
        );
        let _ = writeln!(
            out,
            "# TYPE sendpromptly_reconcile_last_success_timestamp_seconds gauge"
        );
        let last = self.reconcile_last_success_millis.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "sendpromptly_reconcile_last_success_timestamp_seconds {}",
            last / 1000
        );
        for state in states {
            if let Some(at) = state.last_success_at {
                let _ = writeln!(
                    out,
                    "sendpromptly_reconcile_last_success_timestamp_seconds{{project_id=\"{}\"}} {}",
                    state.project_id,
                    at.unix_seconds()
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sendpromptly_reconcile_failing Whether a project's last Stripe reconciler pass failed (1), by the error's kind."
        );
        let _ = writeln!(out, "# TYPE sendpromptly_reconcile_failing gauge");
        for state in states {
            if let Some(kind) = &state.last_error_kind {
                let _ = writeln!(
                    out,
                    "sendpromptly_reconcile_failing{{project_id=\"{}\",kind=\"{kind}\"}} 1",
                    state.project_id
                );
            }
        }
        out
    }
}

/// The health checks (1 passing, 0 failing, see [`crate::health`]), the
/// requests whose clients went away before the answer, and the connections
/// closed because they came back to a pool inside a transaction.
pub fn render_reliability(
    checks: &std::collections::BTreeMap<&'static str, bool>,
    discarded_in_transaction: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP sendpromptly_health_check_ok Whether each /healthz check passes (1) or fails (0)."
    );
    let _ = writeln!(out, "# TYPE sendpromptly_health_check_ok gauge");
    for (check, ok) in checks {
        let _ = writeln!(
            out,
            "sendpromptly_health_check_ok{{check=\"{check}\"}} {}",
            u8::from(*ok)
        );
    }
    let _ = writeln!(
        out,
        "# HELP sendpromptly_db_connections_discarded_total Database connections closed because they came back to a pool inside a transaction (should stay 0)."
    );
    let _ = writeln!(
        out,
        "# TYPE sendpromptly_db_connections_discarded_total counter"
    );
    let _ = writeln!(
        out,
        "sendpromptly_db_connections_discarded_total {discarded_in_transaction}"
    );
    out
}
