//! The provider's own copy of an event (`Command::Expected`): the receipt
//! clock, `missing_receipt` incidents, receipts that arrive late, copies
//! that arrive after the receipt, duplicate and linked copies, test mode.

use sendpromptly_core::Timestamp;
use sendpromptly_core::machine::{
    Command, Context, Effect, EventRecord, Outcome, Transition, TransitionError, apply,
};
use sendpromptly_core::model::{
    Actor, EventState, IncidentKind, IncidentState, LearnedVia, Provider, ProviderCopy, Receipt,
    Resolution, ResultSignal, ResultStatus, TimelineKind,
};

const T0: Timestamp = Timestamp::from_unix_seconds(1_800_000_000);
const EVENT_ID: &str = "evt_1Q2w3E";

fn ctx(seconds: i64) -> Context {
    Context {
        now: T0.plus_seconds(seconds),
        actor: Actor::System("provider_tap".to_owned()),
        new_incident_id: "inc_01JTEST".to_owned(),
    }
}

fn copy(event_id: &str) -> ProviderCopy {
    ProviderCopy {
        provider: Provider::Stripe,
        event_id: event_id.to_owned(),
        event_type: "invoice.paid".to_owned(),
        object_id: Some("in_1".to_owned()),
        subject: Some("cus_9s8d7f".to_owned()),
        amount: Some(1999),
        currency: Some("USD".to_owned()),
        livemode: Some(true),
        // 2027-01-15 08:00:00 UTC
        created: Some(Timestamp::from_unix_seconds(1_800_000_000)),
        learned_via: LearnedVia::Tap,
        fingerprint: Some("fp_invoice_in_1_paid".to_owned()),
    }
}

fn expected(copy: ProviderCopy, grace: u32) -> Command {
    Command::Expected {
        copy,
        receipt_grace_seconds: grace,
    }
}

fn receipt() -> Command {
    Command::Receipt {
        receipt: Receipt {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: EVENT_ID.to_owned(),
            event_type: "invoice.paid".to_owned(),
            subject: Some("cus_9s8d7f".to_owned()),
            effect: Some("credits.add".to_owned()),
            deadline_seconds: None,
            metadata: None,
            occurred_at: None,
        },
        deadline_seconds: 1800,
    }
}

fn step(record: Option<EventRecord>, command: Command, seconds: i64) -> Transition {
    apply(record, command, &ctx(seconds)).expect("the command applies")
}

fn kinds(t: &Transition) -> Vec<&str> {
    t.entries.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn a_copy_of_an_unknown_event_starts_the_receipt_clock() {
    let t = step(None, expected(copy(EVENT_ID), 600), 0);
    assert_eq!(t.outcome, Outcome::Created);
    assert_eq!(t.record.state, EventState::AwaitingReceipt);
    assert_eq!(t.record.receipt_due_at, Some(T0.plus_seconds(600)));
    assert_eq!(t.record.next_due_at(), Some(T0.plus_seconds(600)));
    assert_eq!(t.record.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(t.record.subject.as_deref(), Some("cus_9s8d7f"));
    assert_eq!(kinds(&t), ["provider_copy.recorded"]);
    assert_eq!(t.entries[0].detail["learned_via"], "tap");
    assert!(t.effects.is_empty());

    // Before the grace passes a tick changes nothing.
    let early = step(Some(t.record), Command::Tick, 599);
    assert_eq!(early.outcome, Outcome::Unchanged);
    assert!(early.entries.is_empty());
}

#[test]
fn no_receipt_by_the_grace_opens_missing_receipt_with_a_plain_reason() {
    let t = step(None, expected(copy(EVENT_ID), 600), 0);
    let t = step(Some(t.record), Command::Tick, 600);
    assert_eq!(kinds(&t), ["receipt_grace.passed", "incident.opened"]);
    assert_eq!(
        t.effects,
        [Effect::IncidentOpened {
            incident_id: "inc_01JTEST".to_owned(),
            kind: IncidentKind::MissingReceipt
        }]
    );
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.kind, IncidentKind::MissingReceipt);
    assert!(incident.livemode);
    assert_eq!(
        incident.last_error.as_deref(),
        Some(
            "Stripe sent `evt_1Q2w3E` (`invoice.paid`, cus_9s8d7f, 19.99 USD) at \
             2027-01-15 08:00 UTC; your app never sent a receipt."
        )
    );
    // Nothing more is due and a second tick does nothing.
    assert_eq!(t.record.next_due_at(), None);
    let again = step(Some(t.record), Command::Tick, 700);
    assert_eq!(again.outcome, Outcome::Unchanged);
}

#[test]
fn a_late_receipt_resolves_missing_receipt_and_the_result_deadline_starts() {
    let t = step(None, expected(copy(EVENT_ID), 600), 0);
    let t = step(Some(t.record), Command::Tick, 601);
    let t = step(Some(t.record), receipt(), 900);
    assert_eq!(t.outcome, Outcome::Created);
    assert_eq!(kinds(&t), ["receipt.recorded", "incident.resolved"]);
    assert_eq!(t.entries[1].detail["resolution"], "receipt_arrived");
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::ReceiptArrived));
    assert_eq!(t.record.state, EventState::AwaitingResult);
    assert_eq!(t.record.receipt_due_at, None);
    assert_eq!(t.record.deadline_at, Some(T0.plus_seconds(900 + 1800)));
    assert_eq!(t.record.next_due_at(), Some(T0.plus_seconds(2700)));

    // No result by the deadline: the same incident reopens as missing_result.
    let t = step(Some(t.record), Command::Tick, 2700);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.kind, IncidentKind::MissingResult);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.id, "inc_01JTEST");
}

#[test]
fn a_receipt_within_the_grace_opens_nothing() {
    let t = step(None, expected(copy(EVENT_ID), 600), 0);
    let t = step(Some(t.record), receipt(), 30);
    assert_eq!(kinds(&t), ["receipt.recorded"]);
    assert!(t.record.incident.is_none());
    let t = step(Some(t.record), Command::Tick, 700);
    assert!(t.record.incident.is_none());
    assert_eq!(t.record.state, EventState::AwaitingResult);
}

#[test]
fn receipt_first_then_copy_is_recorded_and_opens_nothing() {
    let t = step(None, receipt(), 0);
    let t = step(Some(t.record), expected(copy(EVENT_ID), 600), 5);
    assert_eq!(t.outcome, Outcome::Updated);
    assert_eq!(kinds(&t), ["provider_copy.recorded"]);
    assert_eq!(t.entries[0].detail["receipt_already_recorded"], true);
    assert_eq!(t.record.state, EventState::AwaitingResult);
    assert_eq!(t.record.receipt_due_at, None);
    assert!(t.record.provider_copy.is_some());
    assert_eq!(t.record.next_due_at(), Some(T0.plus_seconds(1800)));
    assert!(t.effects.is_empty());
}

#[test]
fn the_same_copy_again_is_a_duplicate() {
    let t = step(None, expected(copy(EVENT_ID), 600), 0);
    let t = step(Some(t.record), expected(copy(EVENT_ID), 600), 5);
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert_eq!(kinds(&t), ["provider_copy.duplicate"]);
    // The due time does not move.
    assert_eq!(t.record.receipt_due_at, Some(T0.plus_seconds(600)));
}

#[test]
fn another_event_id_of_the_same_change_is_linked_not_a_second_incident() {
    let t = step(None, expected(copy(EVENT_ID), 600), 0);
    let t = step(Some(t.record), expected(copy("evt_other"), 600), 5);
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert_eq!(t.record.event_id, EVENT_ID);
    assert_eq!(
        t.entries[0].detail["note"],
        "duplicate copy `evt_other` of the same change"
    );
    assert_eq!(t.entries[0].detail["linked_to"], EVENT_ID);
    // A copy for another id cannot create or start a record of its own here.
    let err = apply(
        Some(step(None, receipt(), 0).record),
        expected(copy("evt_other"), 600),
        &ctx(1),
    )
    .unwrap_err();
    assert_eq!(err, TransitionError::WrongEvent);
}

#[test]
fn a_test_mode_copy_never_opens_a_live_incident() {
    let mut test_copy = copy(EVENT_ID);
    test_copy.livemode = Some(false);
    let t = step(None, expected(test_copy, 60), 0);
    assert!(!t.record.is_live());
    let t = step(Some(t.record), Command::Tick, 60);
    let incident = t.record.incident.as_ref().unwrap();
    assert!(!incident.livemode);
    assert!(
        incident
            .last_error
            .as_deref()
            .unwrap()
            .contains("(test mode)")
    );
    assert_eq!(t.entries[1].detail["livemode"], false);
}

#[test]
fn a_result_without_receipt_keeps_the_copy_and_success_resolves() {
    let t = step(None, expected(copy(EVENT_ID), 60), 0);
    let t = step(Some(t.record), Command::Tick, 60);
    let t = step(
        Some(t.record),
        Command::Result(ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: EVENT_ID.to_owned(),
            status: ResultStatus::Success,
            error: None,
            reprocess_id: None,
            metadata: None,
        }),
        90,
    );
    assert_eq!(t.outcome, Outcome::Updated);
    assert_eq!(t.record.state, EventState::Succeeded);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.resolution, Some(Resolution::SuccessResult));
    assert_eq!(t.record.next_due_at(), None);
}

#[test]
fn reprocess_works_for_missing_receipt_and_the_type_comes_from_the_copy() {
    let t = step(None, expected(copy(EVENT_ID), 60), 0);
    let t = step(Some(t.record), Command::Tick, 60);
    let t = step(
        Some(t.record),
        Command::RequestReprocess {
            reprocess_id: "rep_1".to_owned(),
            note: None,
            result_deadline_seconds: 300,
        },
        70,
    );
    assert_eq!(t.record.event_type.as_deref(), Some("invoice.paid"));
    assert!(matches!(t.effects[..], [Effect::DeliverCallback { .. }]));
    // The app's receipt for the replayed event resolves it and stops the callback.
    let t = step(Some(t.record), receipt(), 80);
    assert_eq!(
        t.record.incident.as_ref().unwrap().resolution,
        Some(Resolution::ReceiptArrived)
    );
    assert!(t.effects.contains(&Effect::CancelCallback {
        reprocess_id: "rep_1".to_owned()
    }));
}

#[test]
fn a_record_stored_before_provider_copies_still_loads() {
    let t = step(None, receipt(), 0);
    let mut json = serde_json::to_value(&t.record).unwrap();
    let object = json.as_object_mut().unwrap();
    assert!(!object.contains_key("provider_copy"));
    object.remove("receipt_due_at");
    if let Some(incident) = object.get_mut("incident").and_then(|i| i.as_object_mut()) {
        incident.remove("livemode");
    }
    let back: EventRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, t.record);
    assert_eq!(
        TimelineKind::from_wire("provider_copy.recorded"),
        TimelineKind::ProviderCopyRecorded
    );
}

#[test]
fn a_test_mode_incident_raises_no_alert_a_live_one_does() {
    let channels = sendpromptly_core::alert::parse_channels(&serde_json::json!([
        {"type": "webhook", "url": "https://ops.example/hook"}
    ]))
    .unwrap();
    for (livemode, alerts) in [(true, 1), (false, 0)] {
        let mut c = copy(EVENT_ID);
        c.livemode = Some(livemode);
        let t = step(None, expected(c, 60), 0);
        let t = step(Some(t.record), Command::Tick, 60);
        let planned = sendpromptly_core::alert_plan::plan_alerts("prj_1", &channels, &t, T0);
        assert_eq!(planned.len(), alerts, "livemode {livemode}");
    }
}
