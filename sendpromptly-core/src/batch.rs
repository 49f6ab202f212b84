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
