//! Reprocess batches: the pure rules the store applies when it paces a
//! batch (how many items may start now, the command each one sends, why an
//! item is skipped, how an item's state is shown).

use crate::Timestamp;
use crate::ids;
use crate::machine::{Command, Context, TransitionError};
use crate::model::Actor;

/// Why an incident cannot be reprocessed now, as a batch item's `reason`.
pub fn skip_reason(err: &TransitionError) -> &'static str {
    match err {
        TransitionError::IncidentResolved => "incident_resolved",
        TransitionError::CallbackInFlight { .. } => "callback_in_flight",
        TransitionError::NoIncident | TransitionError::UnknownEvent => "incident_not_found",
        TransitionError::WrongEvent => "wrong_event",
    }
}

/// The reprocess request a batch makes for one of its incidents: the
/// starter as actor and a note naming the batch. `result_deadline_seconds`
/// is the project's deadline for the event's type.
pub fn batch_reprocess_command(
    batch_id: &str,
    started_by: &str,
    note: Option<&str>,
    result_deadline_seconds: u32,
    now: Timestamp,
) -> (Command, Context) {
    let actor: Actor = started_by
        .parse()
        .unwrap_or_else(|_| Actor::System("reprocess-batch".to_owned()));
    let mut text = format!("reprocessed as part of batch {batch_id} by {actor}");
    if let Some(note) = note.filter(|n| !n.is_empty()) {
        text.push_str(": ");
        text.push_str(note);
    }
    let mut rng = rand::thread_rng();
    let command = Command::RequestReprocess {
        reprocess_id: ids::new_id(ids::REPROCESS, now, &mut rng),
        note: Some(text),
        result_deadline_seconds,
    };
    let ctx = Context {
        now,
        actor,
        new_incident_id: ids::new_id(ids::INCIDENT, now, &mut rng),
    };
    (command, ctx)
}

/// A batch item's state as shown: a `sent` item becomes `resolved` once its
/// incident is, `delivered` or `failed` once its callback is, from the
/// outbox row's and the incident's states.
pub fn batch_item_state<'a>(
    item_state: &'a str,
    delivery_state: Option<&str>,
    incident_state: Option<&str>,
) -> &'a str {
    if item_state != "sent" {
        return item_state;
    }
    if incident_state == Some("resolved") {
        return "resolved";
    }
    match delivery_state {
        Some("delivered") => "delivered",
        Some("gave_up") => "failed",
        _ => "sent",
    }
}

/// Pacing arithmetic: a token bucket of one second's burst. Given the
/// batch's `next_send_at`, its rate, its free concurrency and its pending
/// items, how many items may start now and the new `next_send_at`.
pub fn pacing_allowance(
    now: Timestamp,
    next_send_at: Timestamp,
    rate_per_second: f64,
    free: u64,
    pending: u64,
) -> (u64, Timestamp) {
    let interval_ms = (1000.0 / rate_per_second.max(0.001)).max(1.0);
    let now_ms = now.unix_millis();
    let base = next_send_at.unix_millis().max(now_ms - 1000);
    if base > now_ms {
        return (0, next_send_at);
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let due = ((now_ms - base) as f64 / interval_ms).floor() as u64 + 1;
    let n = due.min(free).min(pending);
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let next = base + (n as f64 * interval_ms).round() as i64;
    (
        n,
        Timestamp::from_unix_millis(next.max(next_send_at.unix_millis())),
    )
}

/// A batch's callbacks as a pacing pass finds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchLoad {
    /// Items not started yet.
    pub pending: u64,
    /// Started callbacks neither delivered nor given up (waiting ones included).
    pub in_flight: u64,
    /// Of those, the ones waiting for their next retry: they hold no slot.
    pub waiting: u64,
    /// Of the waiting ones, those whose last attempt came before the
    /// endpoint's latest success: they are retried now, within the pacing.
    pub retryable: u64,
}

/// What a pacing pass does with one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaceStep {
    /// Nothing pending, nothing in flight or waiting: the batch is complete.
    Complete,
    /// Nothing may start now.
    Wait,
    /// Make `retry` waiting callbacks due now, then start `start` new
    /// items; the batch's next send moves to `next_send_at`.
    Go {
        /// Waiting callbacks retried now (ahead of new items).
        retry: u64,
        /// New items started.
        start: u64,
        /// The batch's new `next_send_at`.
        next_send_at: Timestamp,
    },
}

/// The pacing rule: a callback waiting for a retry holds no slot; after the
/// endpoint's latest success, the retryable ones go first, counted against
/// the rate and the concurrency like new items.
pub fn pace_step(
    now: Timestamp,
    next_send_at: Timestamp,
    rate_per_second: f64,
    concurrency: u64,
    load: BatchLoad,
) -> PaceStep {
    let retryable = load.retryable.min(load.waiting);
    if load.pending == 0 && retryable == 0 {
        return if load.in_flight == 0 {
            PaceStep::Complete
        } else {
            PaceStep::Wait
        };
    }
    let active = load.in_flight.saturating_sub(load.waiting);
    let free = concurrency.saturating_sub(active);
    let (n, next) = pacing_allowance(
        now,
        next_send_at,
        rate_per_second,
        free,
        load.pending + retryable,
    );
    if n == 0 {
        return PaceStep::Wait;
    }
    let retry = n.min(retryable);
    PaceStep::Go {
        retry,
        start: n - retry,
        next_send_at: next,
    }
}

/// Whether a batch's callback due for a retry may be attempted, with `busy`
/// of the batch's callbacks being attempted or due for their first attempt:
/// the retries that come due on their own schedule share the concurrency.
pub fn retry_has_slot(busy: u64, concurrency: u64) -> bool {
    busy < concurrency
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(millis)
    }

    #[test]
    fn pacing_starts_one_interval_at_a_time_up_to_a_second_of_burst() {
        let now = at(1_000_000);
        // Due now, 10/s: one second of burst allows 11, capped by free slots.
        assert_eq!(pacing_allowance(now, now, 10.0, 100, 100).0, 1);
        assert_eq!(pacing_allowance(now, at(0), 10.0, 100, 100).0, 11);
        assert_eq!(pacing_allowance(now, at(0), 10.0, 3, 100).0, 3);
        assert_eq!(pacing_allowance(now, at(0), 10.0, 100, 2).0, 2);
        // Not due yet: nothing, next unchanged.
        assert_eq!(
            pacing_allowance(now, at(1_000_500), 10.0, 100, 100),
            (0, at(1_000_500))
        );
        // The next send moves one interval per item started.
        assert_eq!(
            pacing_allowance(now, now, 2.0, 100, 100),
            (1, at(1_000_500))
        );
    }

    #[test]
    fn callbacks_waiting_for_a_retry_hold_no_slot() {
        let now = at(1_000_000);
        let step = |load| pace_step(now, at(0), 40.0, 5, load);
        // Five sent, all refused and waiting: five new may start.
        let waiting = BatchLoad {
            pending: 75,
            in_flight: 5,
            waiting: 5,
            retryable: 0,
        };
        assert!(matches!(
            step(waiting),
            PaceStep::Go {
                retry: 0,
                start: 5,
                ..
            }
        ));
        // Five being attempted: none.
        let busy = BatchLoad {
            waiting: 0,
            ..waiting
        };
        assert_eq!(step(busy), PaceStep::Wait);
        // After a success, the waiting ones go first, within the slots.
        let recovered = BatchLoad {
            pending: 60,
            in_flight: 8,
            waiting: 6,
            retryable: 6,
        };
        assert!(matches!(
            step(recovered),
            PaceStep::Go {
                retry: 3,
                start: 0,
                ..
            }
        ));
        // Only waiting callbacks, none retryable yet: wait, not complete.
        let only_waiting = BatchLoad {
            pending: 0,
            in_flight: 2,
            waiting: 2,
            retryable: 0,
        };
        assert_eq!(step(only_waiting), PaceStep::Wait);
        assert_eq!(step(BatchLoad::default()), PaceStep::Complete);
        // The rate still applies: not due yet, nothing goes.
        assert_eq!(
            pace_step(now, at(1_000_500), 40.0, 5, waiting),
            PaceStep::Wait
        );
    }

    #[test]
    fn item_states_derive_from_the_outbox_and_the_incident() {
        assert_eq!(batch_item_state("pending", None, None), "pending");
        assert_eq!(
            batch_item_state("skipped", Some("delivered"), None),
            "skipped"
        );
        assert_eq!(
            batch_item_state("sent", Some("pending"), Some("open")),
            "sent"
        );
        assert_eq!(
            batch_item_state("sent", Some("delivered"), None),
            "delivered"
        );
        assert_eq!(batch_item_state("sent", Some("gave_up"), None), "failed");
        assert_eq!(
            batch_item_state("sent", Some("gave_up"), Some("resolved")),
            "resolved"
        );
    }

    #[test]
    fn skip_reasons_name_the_refusal() {
        assert_eq!(
            skip_reason(&TransitionError::IncidentResolved),
            "incident_resolved"
        );
        assert_eq!(
            skip_reason(&TransitionError::UnknownEvent),
            "incident_not_found"
        );
        assert_eq!(skip_reason(&TransitionError::WrongEvent), "wrong_event");
    }

    #[test]
    fn a_batch_command_names_the_batch_and_its_starter() {
        let (command, ctx) =
            batch_reprocess_command("rpb_1", "user:ann@example.com", Some("retry"), 60, at(5));
        let Command::RequestReprocess {
            reprocess_id,
            note,
            result_deadline_seconds,
        } = command
        else {
            panic!("not a reprocess request");
        };
        assert!(reprocess_id.starts_with(ids::REPROCESS));
        assert_eq!(result_deadline_seconds, 60);
        let note = note.unwrap_or_default();
        assert!(
            note.starts_with("reprocessed as part of batch rpb_1 by "),
            "{note}"
        );
        assert!(note.ends_with(": retry"), "{note}");
        assert_eq!(ctx.now, at(5));
        assert!(ctx.new_incident_id.starts_with(ids::INCIDENT));
    }
}
