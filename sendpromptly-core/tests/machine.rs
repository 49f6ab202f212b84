//! Example-based tests of the receipt/result/incident state machine, one or
//! more per rule of the contract (`/v1` "Words" and "States").

use serde_json::json;

use sendpromptly_core::Timestamp;
use sendpromptly_core::machine::{
    AttemptReport, Command, Context, Effect, EventRecord, Outcome, Transition, TransitionError,
    apply,
};
use sendpromptly_core::model::{
    Actor, EventState, Incident, IncidentKind, IncidentState, Provider, Receipt, ReprocessStatus,
    Resolution, ResultSignal, ResultStatus, TimelineEntry, TimelineKind,
};
use sendpromptly_core::retry::{GiveUpReason, NextStep};

const T0: Timestamp = Timestamp::from_unix_seconds(1_800_000_000);
const EVENT_ID: &str = "evt_1Q2w3E";
const INCIDENT_ID: &str = "inc_01JTEST";

fn at(seconds: i64) -> Timestamp {
    T0.plus_seconds(seconds)
}

fn context(seconds: i64, actor: Actor) -> Context {
    Context {
        now: at(seconds),
        actor,
        new_incident_id: INCIDENT_ID.to_owned(),
    }
}

/// The app, through its API key.
fn app(seconds: i64) -> Context {
    context(seconds, Actor::ApiKey("key_app".to_owned()))
}

/// A person in the console.
fn alice(seconds: i64) -> Context {
    context(seconds, Actor::Console("alice@example.com".to_owned()))
}

/// The deadline sweeper.
fn sweeper(seconds: i64) -> Context {
    context(seconds, Actor::System("sweeper".to_owned()))
}

/// The callback dispatcher.
fn dispatcher(seconds: i64) -> Context {
    context(seconds, Actor::System("dispatcher".to_owned()))
}

fn receipt_for(event_id: &str, event_type: &str, deadline_seconds: u32) -> Command {
    let mut metadata = serde_json::Map::new();
    metadata.insert("credits".to_owned(), json!(500));
    Command::Receipt {
        receipt: Receipt {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            subject: Some("cus_9s8d7f".to_owned()),
            effect: Some("credits.add".to_owned()),
            deadline_seconds: Some(deadline_seconds),
            metadata: Some(metadata),
            occurred_at: Some(T0.plus_seconds(-5)),
        },
        deadline_seconds,
    }
}

fn receipt(deadline_seconds: u32) -> Command {
    receipt_for(EVENT_ID, "invoice.paid", deadline_seconds)
}

fn result(status: ResultStatus, error: Option<&str>, reprocess_id: Option<&str>) -> Command {
    Command::Result(ResultSignal {
        traceparent: None,
        tracestate: None,
        provider: Provider::Stripe,
        event_id: EVENT_ID.to_owned(),
        status,
        error: error.map(str::to_owned),
        reprocess_id: reprocess_id.map(str::to_owned),
        metadata: None,
    })
}

fn success() -> Command {
    result(ResultStatus::Success, None, None)
}

fn failure(error: &str) -> Command {
    result(ResultStatus::Failure, Some(error), None)
}

fn reprocess(id: &str) -> Command {
    Command::RequestReprocess {
        reprocess_id: id.to_owned(),
        note: Some("tenant created, please retry".to_owned()),
        result_deadline_seconds: 600,
    }
}

fn attempt(id: &str, attempt: u32, status: Option<u16>, next: NextStep) -> Command {
    Command::CallbackAttempt {
        reprocess_id: id.to_owned(),
        attempt,
        report: AttemptReport {
            trace: None,
            status,
            latency_ms: 42,
            response_excerpt: status.map(|s| format!("status {s}")),
            error: status.is_none().then(|| "connection refused".to_owned()),
        },
        next,
    }
}

fn delivered(id: &str, n: u32) -> Command {
    attempt(id, n, Some(204), NextStep::Done)
}

fn resolve(note: &str) -> Command {
    Command::ManualResolve {
        note: note.to_owned(),
    }
}

fn kinds(transition: &Transition) -> Vec<TimelineKind> {
    transition.entries.iter().map(|e| e.kind.clone()).collect()
}

/// Holds one event's record and full timeline across commands, as the server would.
#[derive(Default)]
struct Event {
    record: Option<EventRecord>,
    timeline: Vec<TimelineEntry>,
}

impl Event {
    fn try_run(&mut self, command: Command, ctx: &Context) -> Result<Transition, TransitionError> {
        let transition = apply(self.record.clone(), command, ctx)?;
        self.record = Some(transition.record.clone());
        self.timeline.extend(transition.entries.iter().cloned());
        Ok(transition)
    }

    fn run(&mut self, command: Command, ctx: &Context) -> Transition {
        match self.try_run(command.clone(), ctx) {
            Ok(transition) => transition,
            Err(err) => panic!("{command:?} was refused: {err}"),
        }
    }

    /// Runs a command that must be refused, and checks it changed nothing.
    fn refused(&mut self, command: Command, ctx: &Context) -> TransitionError {
        let before = self.record.clone();
        let err = self
            .try_run(command, ctx)
            .expect_err("the command should be refused");
        assert_eq!(self.record, before);
        err
    }

    fn record(&self) -> &EventRecord {
        self.record.as_ref().expect("a record")
    }

    fn incident(&self) -> &Incident {
        self.record().incident.as_ref().expect("an incident")
    }

    fn timeline_kinds(&self) -> Vec<TimelineKind> {
        self.timeline.iter().map(|e| e.kind.clone()).collect()
    }

    /// A received event whose result failed: one open `failed_result` incident.
    fn failed() -> Self {
        let mut event = Event::default();
        event.run(receipt(1800), &app(0));
        event.run(failure("tenant acct_42 not found"), &app(10));
        event
    }

    /// A failed event with reprocess `rep_1` requested at +100 and delivered at +110.
    fn repair_delivered() -> Self {
        let mut event = Event::failed();
        event.run(reprocess("rep_1"), &alice(100));
        event.run(delivered("rep_1", 1), &dispatcher(110));
        event
    }
}

// ---------------------------------------------------------------- receipts

#[test]
fn first_receipt_creates_the_record_and_starts_the_clock() {
    let mut event = Event::default();
    let t = event.run(receipt(1800), &app(0));

    assert_eq!(t.outcome, Outcome::Created);
    assert!(t.effects.is_empty());
    let record = &t.record;
    assert_eq!(record.provider, Provider::Stripe);
    assert_eq!(record.event_id, EVENT_ID);
    assert_eq!(record.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(record.subject.as_deref(), Some("cus_9s8d7f"));
    assert_eq!(record.effect.as_deref(), Some("credits.add"));
    assert_eq!(record.metadata.as_ref().unwrap()["credits"], json!(500));
    assert_eq!(record.occurred_at, Some(at(-5)));
    assert_eq!(record.state, EventState::AwaitingResult);
    assert_eq!(record.received_at, Some(at(0)));
    assert_eq!(record.deadline_at, Some(at(1800)));
    assert_eq!(record.deliveries, 1);
    assert_eq!(record.result_at, None);
    assert_eq!(record.incident, None);
    assert_eq!(record.created_at, at(0));
    assert_eq!(record.updated_at, at(0));
    assert_eq!(record.next_due_at(), Some(at(1800)));

    assert_eq!(kinds(&t), [TimelineKind::ReceiptRecorded]);
    let entry = &t.entries[0];
    assert_eq!(entry.at, at(0));
    assert_eq!(entry.actor, Actor::ApiKey("key_app".to_owned()));
    assert_eq!(entry.detail["event_type"], json!("invoice.paid"));
    assert_eq!(entry.detail["deadline_at"], json!(at(1800)));
    assert_eq!(entry.detail["result_already_recorded"], json!(false));
}

#[test]
fn the_deadline_is_the_one_resolved_for_the_call() {
    let mut event = Event::default();
    let t = event.run(receipt(60), &app(0));
    assert_eq!(t.record.deadline_at, Some(at(60)));
    assert_eq!(t.record.next_due_at(), Some(at(60)));
}

#[test]
fn duplicate_receipt_is_counted_and_keeps_the_deadline() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));

    let t = event.run(receipt(60), &app(30));
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert!(t.effects.is_empty());
    assert_eq!(t.record.deliveries, 2);
    assert_eq!(t.record.deadline_at, Some(at(1800)));
    assert_eq!(t.record.received_at, Some(at(0)));
    assert_eq!(t.record.state, EventState::AwaitingResult);
    assert_eq!(t.record.updated_at, at(30));
    assert_eq!(kinds(&t), [TimelineKind::ReceiptDuplicate]);
    assert_eq!(t.entries[0].detail["deliveries"], json!(2));
    assert!(t.entries[0].detail.get("note").is_none());

    let t = event.run(receipt(1800), &app(40));
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert_eq!(t.record.deliveries, 3);
    assert_eq!(
        event.timeline_kinds(),
        [
            TimelineKind::ReceiptRecorded,
            TimelineKind::ReceiptDuplicate,
            TimelineKind::ReceiptDuplicate
        ]
    );
}

#[test]
fn duplicate_receipt_with_another_event_type_keeps_the_first() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    let t = event.run(
        receipt_for(EVENT_ID, "invoice.payment_failed", 1800),
        &app(5),
    );
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert_eq!(t.record.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(
        t.entries[0].detail["event_type"],
        json!("invoice.payment_failed")
    );
    assert!(t.entries[0].detail.contains_key("note"));
}

#[test]
fn duplicate_receipt_after_the_deadline_keeps_the_event_overdue() {
    let mut event = Event::default();
    event.run(receipt(60), &app(0));
    event.run(Command::Tick, &sweeper(60));
    let t = event.run(receipt(1800), &app(70));
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert_eq!(t.record.state, EventState::Overdue);
    assert_eq!(t.record.deadline_at, Some(at(60)));
    assert_eq!(t.record.next_due_at(), None);
    assert!(t.effects.is_empty());
}

#[test]
fn a_command_for_another_event_is_refused() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    let err = event.refused(receipt_for("evt_other", "invoice.paid", 1800), &app(1));
    assert_eq!(err, TransitionError::WrongEvent);
    let mut other = ResultSignal {
        traceparent: None,
        tracestate: None,
        provider: Provider::Shopify,
        event_id: EVENT_ID.to_owned(),
        status: ResultStatus::Success,
        error: None,
        reprocess_id: None,
        metadata: None,
    };
    let err = event.refused(Command::Result(other.clone()), &app(1));
    assert_eq!(err, TransitionError::WrongEvent);
    other.provider = Provider::Stripe;
    other.event_id = "evt_other".to_owned();
    let err = event.refused(Command::Result(other), &app(1));
    assert_eq!(err, TransitionError::WrongEvent);
}

// ---------------------------------------------------------------- results

#[test]
fn success_result_completes_the_event() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    let t = event.run(success(), &app(20));

    assert_eq!(t.outcome, Outcome::Updated);
    assert!(t.effects.is_empty());
    assert_eq!(t.record.state, EventState::Succeeded);
    assert_eq!(t.record.result_at, Some(at(20)));
    assert_eq!(t.record.incident, None);
    assert_eq!(t.record.deadline_at, Some(at(1800)));
    assert_eq!(t.record.next_due_at(), None);
    assert_eq!(kinds(&t), [TimelineKind::ResultSuccess]);
    assert_eq!(
        t.entries[0].detail["previous_state"],
        json!("awaiting_result")
    );

    // The deadline passing afterwards changes nothing.
    let t = event.run(Command::Tick, &sweeper(5000));
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert!(t.entries.is_empty());
    assert_eq!(t.record.state, EventState::Succeeded);
}

#[test]
fn failure_result_opens_a_failed_result_incident_at_once() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    let t = event.run(failure("tenant acct_42 not found"), &app(10));

    assert_eq!(t.outcome, Outcome::Updated);
    assert_eq!(t.record.state, EventState::Failed);
    assert_eq!(t.record.result_at, Some(at(10)));
    assert_eq!(t.record.next_due_at(), None);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.kind, IncidentKind::FailedResult);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.resolution, None);
    assert_eq!(incident.opened_at, at(10));
    assert_eq!(incident.resolved_at, None);
    assert_eq!(
        incident.last_error.as_deref(),
        Some("tenant acct_42 not found")
    );
    assert_eq!(incident.reopen_count, 0);
    assert_eq!(incident.reprocess_count, 0);
    assert_eq!(incident.reprocess, None);

    assert_eq!(
        kinds(&t),
        [TimelineKind::ResultFailure, TimelineKind::IncidentOpened]
    );
    assert_eq!(
        t.entries[0].detail["error"],
        json!("tenant acct_42 not found")
    );
    assert_eq!(t.entries[1].detail["incident_id"], json!(INCIDENT_ID));
    assert_eq!(t.entries[1].detail["kind"], json!("failed_result"));
    assert_eq!(
        t.effects,
        [Effect::IncidentOpened {
            incident_id: INCIDENT_ID.to_owned(),
            kind: IncidentKind::FailedResult,
        }]
    );
}

#[test]
fn failure_without_an_error_message_still_explains_the_incident() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    let t = event.run(result(ResultStatus::Failure, None, None), &app(10));
    let incident = t.record.incident.as_ref().unwrap();
    assert!(
        incident
            .last_error
            .as_deref()
            .is_some_and(|e| !e.is_empty())
    );
}

#[test]
fn duplicate_success_is_counted_and_changes_nothing_else() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    let first = event.run(success(), &app(20));
    let t = event.run(success(), &app(25));

    assert_eq!(t.outcome, Outcome::Duplicate);
    assert!(t.effects.is_empty());
    assert_eq!(t.record.duplicate_results, 1);
    assert_eq!(t.record.result_at, Some(at(20)));
    assert_eq!(kinds(&t), [TimelineKind::ResultDuplicate]);
    assert_eq!(t.entries[0].detail["status"], json!("success"));
    assert_eq!(t.entries[0].detail["duplicates"], json!(1));
    let mut expected = first.record;
    expected.duplicate_results = 1;
    expected.updated_at = at(25);
    assert_eq!(t.record, expected);
}

#[test]
fn duplicate_failure_does_not_open_a_second_incident() {
    let mut event = Event::failed();
    let before = event.record().clone();
    let t = event.run(failure("tenant acct_42 not found"), &app(20));
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert!(t.effects.is_empty());
    assert_eq!(kinds(&t), [TimelineKind::ResultDuplicate]);
    assert_eq!(t.record.incident, before.incident);
    assert_eq!(t.record.duplicate_results, 1);
}

#[test]
fn another_failure_on_an_open_incident_updates_it_without_a_new_one() {
    let mut event = Event::failed();
    let t = event.run(failure("tenant acct_42 suspended"), &app(20));
    assert_eq!(t.outcome, Outcome::Updated);
    assert!(t.effects.is_empty());
    assert_eq!(kinds(&t), [TimelineKind::ResultFailure]);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(
        incident.last_error.as_deref(),
        Some("tenant acct_42 suspended")
    );
    assert_eq!(incident.opened_at, at(10));
}

#[test]
fn success_result_before_the_receipt_is_kept_and_completed_by_it() {
    let mut event = Event::default();
    let t = event.run(success(), &app(0));
    assert_eq!(t.outcome, Outcome::Created);
    assert_eq!(t.record.state, EventState::Succeeded);
    assert_eq!(t.record.result_at, Some(at(0)));
    assert_eq!(t.record.received_at, None);
    assert_eq!(t.record.event_type, None);
    assert_eq!(t.record.deliveries, 0);
    assert_eq!(t.record.deadline_at, None);
    assert_eq!(t.record.next_due_at(), None);
    assert_eq!(kinds(&t), [TimelineKind::ResultSuccess]);

    let t = event.run(receipt(1800), &app(3));
    assert_eq!(t.outcome, Outcome::Created);
    assert_eq!(t.record.state, EventState::Succeeded);
    assert_eq!(t.record.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(t.record.subject.as_deref(), Some("cus_9s8d7f"));
    assert_eq!(t.record.received_at, Some(at(3)));
    assert_eq!(t.record.deliveries, 1);
    assert_eq!(t.record.deadline_at, None, "no deadline: the result is in");
    assert_eq!(t.record.result_at, Some(at(0)));
    assert_eq!(t.record.created_at, at(0));
    assert_eq!(t.record.next_due_at(), None);
    assert_eq!(kinds(&t), [TimelineKind::ReceiptRecorded]);
    assert_eq!(t.entries[0].detail["result_already_recorded"], json!(true));
    assert_eq!(t.entries[0].detail["deadline_at"], json!(null));

    // A second receipt is then a duplicate delivery.
    let t = event.run(receipt(1800), &app(4));
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert_eq!(t.record.deliveries, 2);

    // And no deadline ever fires.
    let t = event.run(Command::Tick, &sweeper(100_000));
    assert_eq!(t.outcome, Outcome::Unchanged);
}

#[test]
fn failure_result_before_the_receipt_opens_the_incident_and_is_kept() {
    let mut event = Event::default();
    let t = event.run(failure("boom"), &app(0));
    assert_eq!(t.outcome, Outcome::Created);
    assert_eq!(t.record.state, EventState::Failed);
    assert_eq!(
        t.record.incident.as_ref().map(|i| i.kind),
        Some(IncidentKind::FailedResult)
    );
    let incident_before = t.record.incident.clone();

    let t = event.run(receipt(1800), &app(1));
    assert_eq!(t.outcome, Outcome::Created);
    assert!(t.effects.is_empty());
    assert_eq!(t.record.state, EventState::Failed);
    assert_eq!(t.record.deadline_at, None);
    assert_eq!(t.record.incident, incident_before);
    assert_eq!(t.record.next_due_at(), None);
}

// ---------------------------------------------------------------- deadlines

#[test]
fn a_tick_before_the_deadline_changes_nothing() {
    let mut event = Event::default();
    let created = event.run(receipt(1800), &app(0)).record;
    let t = event.run(Command::Tick, &sweeper(1799));
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert!(t.entries.is_empty());
    assert!(t.effects.is_empty());
    assert_eq!(t.record, created);
}

#[test]
fn the_deadline_passing_makes_the_event_overdue_with_a_missing_result_incident() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    let t = event.run(Command::Tick, &sweeper(1800));

    assert_eq!(t.outcome, Outcome::Updated);
    assert_eq!(t.record.state, EventState::Overdue);
    assert_eq!(t.record.next_due_at(), None);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.kind, IncidentKind::MissingResult);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.opened_at, at(1800));
    assert_eq!(
        kinds(&t),
        [TimelineKind::DeadlinePassed, TimelineKind::IncidentOpened]
    );
    assert_eq!(t.entries[0].detail["deadline_at"], json!(at(1800)));
    assert_eq!(t.entries[1].detail["kind"], json!("missing_result"));
    assert!(
        t.entries
            .iter()
            .all(|e| e.actor == Actor::System("sweeper".to_owned()))
    );
    assert_eq!(
        t.effects,
        [Effect::IncidentOpened {
            incident_id: INCIDENT_ID.to_owned(),
            kind: IncidentKind::MissingResult,
        }]
    );

    // A second sweep finds nothing more to do.
    let t = event.run(Command::Tick, &sweeper(4000));
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert!(t.entries.is_empty());
    assert!(t.effects.is_empty());
}

#[test]
fn a_late_failure_on_an_overdue_event_explains_the_incident() {
    let mut event = Event::default();
    event.run(receipt(60), &app(0));
    event.run(Command::Tick, &sweeper(61));
    let t = event.run(failure("timeout talking to db"), &app(70));
    assert_eq!(t.record.state, EventState::Failed);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.kind, IncidentKind::FailedResult);
    assert_eq!(
        incident.last_error.as_deref(),
        Some("timeout talking to db")
    );
    assert!(t.effects.is_empty(), "no second incident: {:?}", t.effects);
}

// ---------------------------------------------------------------- success always wins

#[test]
fn late_success_after_overdue_resolves_the_incident_and_keeps_history() {
    let mut event = Event::default();
    event.run(receipt(60), &app(0));
    event.run(Command::Tick, &sweeper(60));
    let t = event.run(success(), &app(500));

    assert_eq!(t.outcome, Outcome::Updated);
    assert_eq!(t.record.state, EventState::Succeeded);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.kind, IncidentKind::MissingResult);
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::SuccessResult));
    assert_eq!(incident.resolved_at, Some(at(500)));
    assert_eq!(incident.opened_at, at(60));
    assert_eq!(
        kinds(&t),
        [TimelineKind::ResultSuccess, TimelineKind::IncidentResolved]
    );
    assert_eq!(t.entries[0].detail["previous_state"], json!("overdue"));
    assert_eq!(t.entries[1].detail["resolution"], json!("success_result"));
    assert_eq!(
        t.effects,
        [Effect::IncidentResolved {
            incident_id: INCIDENT_ID.to_owned(),
            resolution: Resolution::SuccessResult,
        }]
    );
    assert_eq!(
        event.timeline_kinds(),
        [
            TimelineKind::ReceiptRecorded,
            TimelineKind::DeadlinePassed,
            TimelineKind::IncidentOpened,
            TimelineKind::ResultSuccess,
            TimelineKind::IncidentResolved,
        ]
    );
}

#[test]
fn late_success_after_failure_resolves_the_incident() {
    let mut event = Event::failed();
    let t = event.run(success(), &app(300));
    assert_eq!(t.record.state, EventState::Succeeded);
    assert_eq!(t.record.result_at, Some(at(300)));
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::SuccessResult));
    assert_eq!(incident.kind, IncidentKind::FailedResult);
    assert_eq!(
        kinds(&t),
        [TimelineKind::ResultSuccess, TimelineKind::IncidentResolved]
    );
    assert_eq!(t.entries[0].detail["previous_state"], json!("failed"));
}

#[test]
fn failure_after_success_is_recorded_and_ignored() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    event.run(success(), &app(10));
    let t = event.run(failure("late duplicate handler"), &app(20));

    assert_eq!(t.record.state, EventState::Succeeded);
    assert_eq!(t.record.result_at, Some(at(10)));
    assert_eq!(t.record.incident, None);
    assert!(t.effects.is_empty());
    assert_eq!(kinds(&t), [TimelineKind::ResultFailure]);
    assert!(t.entries[0].detail.contains_key("ignored"));
    assert_eq!(
        t.entries[0].detail["error"],
        json!("late duplicate handler")
    );
}

#[test]
fn an_ignored_failure_after_success_leaves_the_last_result_at_the_success() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    let succeeded = event.run(success(), &app(10));
    let t = event.run(failure("late duplicate handler"), &app(20));

    // The state machine kept the success: so does the latest result.
    assert_eq!(t.record.state, EventState::Succeeded);
    assert_eq!(t.record.last_result, succeeded.record.last_result);
    assert_eq!(
        t.record.last_result.as_ref().map(|r| r.status),
        Some(ResultStatus::Success)
    );
    // The ignored failure is on the timeline, marked as ignored.
    assert_eq!(kinds(&t), [TimelineKind::ResultFailure]);
    assert!(t.entries[0].detail.contains_key("ignored"));
    // The same late failure again is a duplicate, and changes nothing.
    let t = event.run(failure("late duplicate handler"), &app(30));
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert_eq!(kinds(&t), [TimelineKind::ResultDuplicate]);
    assert_eq!(t.record.state, EventState::Succeeded);
    assert_eq!(
        t.record.last_result.as_ref().map(|r| r.status),
        Some(ResultStatus::Success)
    );
}

#[test]
fn failure_after_a_success_resolution_does_not_reopen() {
    let mut event = Event::failed();
    event.run(success(), &app(20));
    let t = event.run(failure("again"), &app(30));
    assert_eq!(t.record.state, EventState::Succeeded);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::SuccessResult));
    assert_eq!(incident.reopen_count, 0);
    assert!(t.effects.is_empty());
    assert_eq!(kinds(&t), [TimelineKind::ResultFailure]);
}

// ---------------------------------------------------------------- manual resolution and reopening

#[test]
fn manual_resolve_closes_an_open_incident() {
    let mut event = Event::failed();
    let t = event.run(resolve("credited by hand"), &alice(50));

    assert_eq!(t.outcome, Outcome::Updated);
    assert_eq!(
        t.record.state,
        EventState::Failed,
        "the event keeps its state"
    );
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::Manual));
    assert_eq!(incident.resolved_at, Some(at(50)));
    assert_eq!(kinds(&t), [TimelineKind::IncidentResolved]);
    assert_eq!(t.entries[0].detail["resolution"], json!("manual"));
    assert_eq!(t.entries[0].detail["note"], json!("credited by hand"));
    assert_eq!(
        t.entries[0].actor,
        Actor::Console("alice@example.com".to_owned())
    );
    assert_eq!(
        t.effects,
        [Effect::IncidentResolved {
            incident_id: INCIDENT_ID.to_owned(),
            resolution: Resolution::Manual,
        }]
    );
    assert_eq!(t.record.next_due_at(), None);
}

#[test]
fn manual_resolve_of_an_overdue_incident() {
    let mut event = Event::default();
    event.run(receipt(60), &app(0));
    event.run(Command::Tick, &sweeper(60));
    let t = event.run(resolve("checked by hand"), &alice(70));
    assert_eq!(t.record.state, EventState::Overdue);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::Manual));
}

#[test]
fn failure_after_a_manual_resolution_reopens_the_same_incident() {
    let mut event = Event::failed();
    event.run(resolve("credited by hand"), &alice(50));
    let t = event.run(failure("tenant acct_42 suspended"), &app(60));

    assert_eq!(t.outcome, Outcome::Updated);
    assert_eq!(t.record.state, EventState::Failed);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.kind, IncidentKind::FailedResult);
    assert_eq!(incident.resolution, None);
    assert_eq!(incident.resolved_at, None);
    assert_eq!(incident.reopen_count, 1);
    assert_eq!(incident.opened_at, at(10), "first opening is kept");
    assert_eq!(
        incident.last_error.as_deref(),
        Some("tenant acct_42 suspended")
    );
    assert_eq!(
        kinds(&t),
        [TimelineKind::ResultFailure, TimelineKind::IncidentReopened]
    );
    assert_eq!(t.entries[1].detail["incident_id"], json!(INCIDENT_ID));
    assert_eq!(
        t.effects,
        [Effect::IncidentReopened {
            incident_id: INCIDENT_ID.to_owned(),
        }]
    );

    // Resolve and fail again: still the same incident, counted again.
    event.run(resolve("again by hand"), &alice(70));
    let t = event.run(failure("third time"), &app(80));
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.reopen_count, 2);
}

#[test]
fn the_same_failure_again_after_a_manual_resolution_reopens() {
    // The app retried the effect after the person marked it fixed, and it
    // failed with the very same message: that is news, not a duplicate.
    let mut event = Event::failed();
    event.run(resolve("created the tenant"), &alice(50));
    let t = event.run(failure("tenant acct_42 not found"), &app(60));
    assert_eq!(t.outcome, Outcome::Updated);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.reopen_count, 1);
    assert_eq!(
        kinds(&t),
        [TimelineKind::ResultFailure, TimelineKind::IncidentReopened]
    );
    assert_eq!(t.record.duplicate_results, 0);

    // Sent once more right away, it is a duplicate.
    let t = event.run(failure("tenant acct_42 not found"), &app(61));
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert_eq!(t.record.incident.as_ref().unwrap().reopen_count, 1);
}

#[test]
fn a_missing_result_incident_reopened_by_a_failure_becomes_failed_result() {
    let mut event = Event::default();
    event.run(receipt(60), &app(0));
    event.run(Command::Tick, &sweeper(60));
    event.run(resolve("looked fine"), &alice(70));
    let t = event.run(failure("no such plan"), &app(80));
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.kind, IncidentKind::FailedResult);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.reopen_count, 1);
}

#[test]
fn success_after_a_manual_resolution_keeps_the_manual_resolution() {
    let mut event = Event::failed();
    event.run(resolve("credited by hand"), &alice(50));
    let t = event.run(success(), &app(60));
    assert_eq!(t.record.state, EventState::Succeeded);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::Manual));
    assert_eq!(incident.resolved_at, Some(at(50)));
    assert!(t.effects.is_empty());
    assert_eq!(kinds(&t), [TimelineKind::ResultSuccess]);
}

// ---------------------------------------------------------------- reprocess

#[test]
fn reprocess_request_starts_a_callback() {
    let mut event = Event::failed();
    let t = event.run(reprocess("rep_1"), &alice(100));

    assert_eq!(t.outcome, Outcome::Updated);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Reprocessing);
    assert_eq!(incident.reprocess_count, 1);
    assert!(incident.callback_in_flight());
    let rep = incident.reprocess.as_ref().unwrap();
    assert_eq!(rep.id, "rep_1");
    assert_eq!(rep.status, ReprocessStatus::Delivering);
    assert_eq!(rep.requested_at, at(100));
    assert_eq!(
        rep.requested_by,
        Actor::Console("alice@example.com".to_owned())
    );
    assert_eq!(rep.note.as_deref(), Some("tenant created, please retry"));
    assert_eq!(rep.attempts, 0);
    assert_eq!(rep.result_deadline_seconds, 600);
    assert_eq!(rep.result_due_at, None);
    assert_eq!(t.record.next_due_at(), None, "nothing due while delivering");
    assert_eq!(kinds(&t), [TimelineKind::ReprocessRequested]);
    assert_eq!(t.entries[0].detail["reprocess_id"], json!("rep_1"));
    assert_eq!(t.entries[0].detail["incident_id"], json!(INCIDENT_ID));
    assert_eq!(
        t.entries[0].detail["note"],
        json!("tenant created, please retry")
    );
    assert_eq!(t.entries[0].detail["supersedes"], json!(null));
    assert_eq!(
        t.effects,
        [Effect::DeliverCallback {
            reprocess_id: "rep_1".to_owned(),
            incident_id: INCIDENT_ID.to_owned(),
        }]
    );
}

#[test]
fn reprocess_of_an_overdue_event() {
    let mut event = Event::default();
    event.run(receipt(60), &app(0));
    event.run(Command::Tick, &sweeper(60));
    let t = event.run(reprocess("rep_1"), &alice(100));
    assert_eq!(
        t.record.incident.as_ref().unwrap().state,
        IncidentState::Reprocessing
    );
    assert_eq!(t.record.state, EventState::Overdue);
}

#[test]
fn callback_retry_is_recorded_and_keeps_delivering() {
    let mut event = Event::failed();
    event.run(reprocess("rep_1"), &alice(100));
    let t = event.run(
        attempt("rep_1", 1, Some(503), NextStep::RetryAt(at(106))),
        &dispatcher(101),
    );

    assert_eq!(t.outcome, Outcome::Updated);
    assert!(t.effects.is_empty());
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Reprocessing);
    let rep = incident.reprocess.as_ref().unwrap();
    assert_eq!(rep.status, ReprocessStatus::Delivering);
    assert_eq!(rep.attempts, 1);
    assert_eq!(t.record.next_due_at(), None);
    assert_eq!(kinds(&t), [TimelineKind::CallbackAttempt]);
    let detail = &t.entries[0].detail;
    assert_eq!(detail["reprocess_id"], json!("rep_1"));
    assert_eq!(detail["attempt"], json!(1));
    assert_eq!(detail["status"], json!(503));
    assert_eq!(detail["latency_ms"], json!(42));
    assert_eq!(detail["response_excerpt"], json!("status 503"));
    assert_eq!(detail["outcome"], json!("retry_scheduled"));
    assert_eq!(detail["next_attempt_at"], json!(at(106)));

    // A transport error is recorded the same way.
    let t = event.run(
        attempt("rep_1", 2, None, NextStep::RetryAt(at(140))),
        &dispatcher(106),
    );
    assert_eq!(t.entries[0].detail["status"], json!(null));
    assert_eq!(t.entries[0].detail["error"], json!("connection refused"));
    assert_eq!(
        t.record
            .incident
            .as_ref()
            .unwrap()
            .reprocess
            .as_ref()
            .unwrap()
            .attempts,
        2
    );
}

#[test]
fn delivered_callback_waits_for_a_result_until_result_due_at() {
    let mut event = Event::failed();
    event.run(reprocess("rep_1"), &alice(100));
    event.run(
        attempt("rep_1", 1, Some(500), NextStep::RetryAt(at(106))),
        &dispatcher(101),
    );
    let t = event.run(delivered("rep_1", 2), &dispatcher(106));

    assert_eq!(t.outcome, Outcome::Updated);
    assert!(t.effects.is_empty());
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Reprocessing);
    assert!(!incident.callback_in_flight());
    let rep = incident.reprocess.as_ref().unwrap();
    assert_eq!(rep.status, ReprocessStatus::Delivered);
    assert_eq!(rep.attempts, 2);
    assert_eq!(rep.delivered_at, Some(at(106)));
    assert_eq!(rep.result_due_at, Some(at(706)));
    assert_eq!(t.record.next_due_at(), Some(at(706)));
    assert_eq!(kinds(&t), [TimelineKind::CallbackAttempt]);
    assert_eq!(t.entries[0].detail["outcome"], json!("delivered"));
    assert_eq!(t.entries[0].detail["result_due_at"], json!(at(706)));

    // Before result_due_at a sweep changes nothing.
    let t = event.run(Command::Tick, &sweeper(705));
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert!(t.entries.is_empty());
}

#[test]
fn success_after_a_delivered_callback_resolves_and_completes_the_reprocess() {
    let mut event = Event::repair_delivered();
    let t = event.run(
        result(ResultStatus::Success, None, Some("rep_1")),
        &app(200),
    );
    assert_eq!(t.record.state, EventState::Succeeded);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::SuccessResult));
    assert_eq!(
        incident.reprocess.as_ref().unwrap().status,
        ReprocessStatus::Completed
    );
    assert_eq!(t.record.next_due_at(), None);
    assert_eq!(
        kinds(&t),
        [TimelineKind::ResultSuccess, TimelineKind::IncidentResolved]
    );
    assert_eq!(t.entries[0].detail["reprocess_id"], json!("rep_1"));
    assert_eq!(t.entries[1].detail["reprocess_id"], json!("rep_1"));
    assert_eq!(
        t.effects,
        [Effect::IncidentResolved {
            incident_id: INCIDENT_ID.to_owned(),
            resolution: Resolution::SuccessResult,
        }]
    );
    // The whole story stays on the timeline.
    assert_eq!(
        event.timeline_kinds(),
        [
            TimelineKind::ReceiptRecorded,
            TimelineKind::ResultFailure,
            TimelineKind::IncidentOpened,
            TimelineKind::ReprocessRequested,
            TimelineKind::CallbackAttempt,
            TimelineKind::ResultSuccess,
            TimelineKind::IncidentResolved,
        ]
    );
}

#[test]
fn success_while_the_callback_is_still_delivering_cancels_it() {
    let mut event = Event::failed();
    event.run(reprocess("rep_1"), &alice(100));
    let t = event.run(success(), &app(102));
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::SuccessResult));
    assert_eq!(
        incident.reprocess.as_ref().unwrap().status,
        ReprocessStatus::Superseded
    );
    assert_eq!(
        t.effects,
        [
            Effect::CancelCallback {
                reprocess_id: "rep_1".to_owned(),
            },
            Effect::IncidentResolved {
                incident_id: INCIDENT_ID.to_owned(),
                resolution: Resolution::SuccessResult,
            },
        ]
    );
}

#[test]
fn callback_giving_up_returns_the_incident_to_open() {
    let mut event = Event::failed();
    event.run(reprocess("rep_1"), &alice(100));
    let t = event.run(
        attempt("rep_1", 1, Some(410), NextStep::GiveUp(GiveUpReason::Gone)),
        &dispatcher(101),
    );

    assert_eq!(t.outcome, Outcome::Updated);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.state, IncidentState::Open);
    let rep = incident.reprocess.as_ref().unwrap();
    assert_eq!(rep.status, ReprocessStatus::GaveUp);
    assert_eq!(rep.attempts, 1);
    assert_eq!(t.record.next_due_at(), None);
    assert_eq!(
        kinds(&t),
        [
            TimelineKind::CallbackAttempt,
            TimelineKind::CallbackGaveUp,
            TimelineKind::IncidentReturnedToOpen,
        ]
    );
    assert_eq!(t.entries[0].detail["outcome"], json!("gave_up"));
    assert_eq!(t.entries[1].detail["attempts"], json!(1));
    assert_eq!(
        t.entries[1].detail["reason"],
        json!(GiveUpReason::Gone.describe())
    );
    assert_eq!(
        t.effects,
        [
            Effect::CallbackGaveUp {
                reprocess_id: "rep_1".to_owned(),
                incident_id: INCIDENT_ID.to_owned(),
            },
            Effect::IncidentReturnedToOpen {
                incident_id: INCIDENT_ID.to_owned(),
            },
        ]
    );

    // A new reprocess may be requested at once.
    let t = event.run(reprocess("rep_2"), &alice(200));
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Reprocessing);
    assert_eq!(incident.reprocess_count, 2);
    assert_eq!(incident.reprocess.as_ref().unwrap().id, "rep_2");
}

#[test]
fn callback_giving_up_after_exhausting_attempts() {
    let mut event = Event::failed();
    event.run(reprocess("rep_1"), &alice(100));
    for n in 1..7 {
        let t = event.run(
            attempt(
                "rep_1",
                n,
                Some(500),
                NextStep::RetryAt(at(100 + i64::from(n) * 10)),
            ),
            &dispatcher(100 + i64::from(n) * 10 - 9),
        );
        assert_eq!(
            t.record.incident.as_ref().unwrap().state,
            IncidentState::Reprocessing
        );
    }
    let t = event.run(
        attempt(
            "rep_1",
            7,
            Some(500),
            NextStep::GiveUp(GiveUpReason::AttemptsExhausted),
        ),
        &dispatcher(200),
    );
    assert_eq!(
        t.record.incident.as_ref().unwrap().state,
        IncidentState::Open
    );
    assert_eq!(t.entries[1].detail["attempts"], json!(7));
}

#[test]
fn no_result_after_a_delivered_callback_returns_the_incident_to_open() {
    let mut event = Event::repair_delivered();
    assert_eq!(event.record().next_due_at(), Some(at(710)));
    let t = event.run(Command::Tick, &sweeper(710));

    assert_eq!(t.outcome, Outcome::Updated);
    assert_eq!(t.record.state, EventState::Failed);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(
        incident.reprocess.as_ref().unwrap().status,
        ReprocessStatus::NoResult
    );
    assert_eq!(t.record.next_due_at(), None);
    assert_eq!(
        kinds(&t),
        [
            TimelineKind::ReprocessNoResult,
            TimelineKind::IncidentReturnedToOpen
        ]
    );
    assert_eq!(t.entries[0].detail["reprocess_id"], json!("rep_1"));
    assert_eq!(t.entries[0].detail["result_due_at"], json!(at(710)));
    assert_eq!(
        t.effects,
        [
            Effect::ReprocessNoResult {
                reprocess_id: "rep_1".to_owned(),
                incident_id: INCIDENT_ID.to_owned(),
            },
            Effect::IncidentReturnedToOpen {
                incident_id: INCIDENT_ID.to_owned(),
            }
        ]
    );

    // Nothing more is due.
    let t = event.run(Command::Tick, &sweeper(10_000));
    assert_eq!(t.outcome, Outcome::Unchanged);

    // A late success still wins.
    let t = event.run(success(), &app(20_000));
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::SuccessResult));
}

#[test]
fn failure_after_a_delivered_callback_returns_the_incident_to_open() {
    let mut event = Event::repair_delivered();
    let t = event.run(
        result(
            ResultStatus::Failure,
            Some("tenant acct_42 still missing"),
            Some("rep_1"),
        ),
        &app(200),
    );

    assert_eq!(t.record.state, EventState::Failed);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.id, INCIDENT_ID);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.reopen_count, 0);
    assert_eq!(
        incident.last_error.as_deref(),
        Some("tenant acct_42 still missing")
    );
    assert_eq!(
        incident.reprocess.as_ref().unwrap().status,
        ReprocessStatus::Completed
    );
    assert_eq!(t.record.next_due_at(), None);
    assert_eq!(
        kinds(&t),
        [
            TimelineKind::ResultFailure,
            TimelineKind::IncidentReturnedToOpen
        ]
    );
    assert_eq!(t.entries[0].detail["reprocess_id"], json!("rep_1"));
    assert_eq!(
        t.effects,
        [Effect::IncidentReturnedToOpen {
            incident_id: INCIDENT_ID.to_owned(),
        }]
    );
}

#[test]
fn the_same_failure_again_after_a_delivered_callback_returns_to_open() {
    // The repair handler failed exactly as the first time and did not pass
    // the reprocess id: a result arrived, so the incident must not wait for
    // result_due_at.
    let mut event = Event::repair_delivered();
    let t = event.run(failure("tenant acct_42 not found"), &app(200));
    assert_eq!(t.outcome, Outcome::Updated);
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(
        incident.reprocess.as_ref().unwrap().status,
        ReprocessStatus::Completed
    );
    assert_eq!(
        kinds(&t),
        [
            TimelineKind::ResultFailure,
            TimelineKind::IncidentReturnedToOpen
        ]
    );
    assert_eq!(t.record.next_due_at(), None);
}

#[test]
fn a_second_reprocess_while_one_is_in_flight_is_refused() {
    let mut event = Event::failed();
    event.run(reprocess("rep_1"), &alice(100));
    let err = event.refused(reprocess("rep_2"), &alice(101));
    assert_eq!(
        err,
        TransitionError::CallbackInFlight {
            reprocess_id: "rep_1".to_owned(),
        }
    );
    assert!(err.to_string().contains("rep_1"));

    // Still refused after a retry is scheduled.
    event.run(
        attempt("rep_1", 1, Some(500), NextStep::RetryAt(at(110))),
        &dispatcher(102),
    );
    assert!(matches!(
        event.refused(reprocess("rep_2"), &alice(103)),
        TransitionError::CallbackInFlight { .. }
    ));

    // Once delivered, a new one may supersede it.
    event.run(delivered("rep_1", 2), &dispatcher(110));
    let t = event.run(reprocess("rep_2"), &alice(120));
    assert_eq!(t.entries[0].detail["supersedes"], json!("rep_1"));
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.reprocess.as_ref().unwrap().id, "rep_2");
    assert_eq!(
        incident.reprocess.as_ref().unwrap().status,
        ReprocessStatus::Delivering
    );
    assert_eq!(incident.reprocess_count, 2);
    assert_eq!(t.record.next_due_at(), None);
}

#[test]
fn manual_resolve_cancels_an_in_flight_callback() {
    let mut event = Event::failed();
    event.run(reprocess("rep_1"), &alice(100));
    let t = event.run(resolve("fixed in the database"), &alice(105));

    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolution, Some(Resolution::Manual));
    assert_eq!(
        incident.reprocess.as_ref().unwrap().status,
        ReprocessStatus::Superseded
    );
    assert_eq!(kinds(&t), [TimelineKind::IncidentResolved]);
    assert_eq!(
        t.effects,
        [
            Effect::CancelCallback {
                reprocess_id: "rep_1".to_owned(),
            },
            Effect::IncidentResolved {
                incident_id: INCIDENT_ID.to_owned(),
                resolution: Resolution::Manual,
            },
        ]
    );

    // An attempt that was already running when the resolve happened is
    // recorded, changes nothing and its retry is cancelled again.
    let t = event.run(
        attempt("rep_1", 1, Some(500), NextStep::RetryAt(at(111))),
        &dispatcher(106),
    );
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(
        incident.reprocess.as_ref().unwrap().status,
        ReprocessStatus::Superseded
    );
    assert_eq!(kinds(&t), [TimelineKind::CallbackAttempt]);
    assert_eq!(t.entries[0].detail["outcome"], json!("not_needed"));
    assert!(t.entries[0].detail.contains_key("note"));
    assert_eq!(
        t.effects,
        [Effect::CancelCallback {
            reprocess_id: "rep_1".to_owned(),
        }]
    );

    // A late delivery of it does not start a result wait.
    let t = event.run(delivered("rep_1", 2), &dispatcher(107));
    let rep = t
        .record
        .incident
        .as_ref()
        .unwrap()
        .reprocess
        .clone()
        .unwrap();
    assert_eq!(rep.status, ReprocessStatus::Superseded);
    assert_eq!(rep.result_due_at, None);
    assert_eq!(t.record.next_due_at(), None);
}

#[test]
fn manual_resolve_while_waiting_for_the_repair_result() {
    let mut event = Event::repair_delivered();
    let t = event.run(resolve("done by hand"), &alice(200));
    let incident = t.record.incident.as_ref().unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(
        t.effects,
        [Effect::IncidentResolved {
            incident_id: INCIDENT_ID.to_owned(),
            resolution: Resolution::Manual,
        }]
    );
    assert_eq!(t.record.next_due_at(), None);
    // The old repair deadline no longer fires.
    let t = event.run(Command::Tick, &sweeper(10_000));
    assert_eq!(t.outcome, Outcome::Unchanged);
}

#[test]
fn reprocess_and_resolve_need_an_unresolved_incident() {
    // No event at all.
    for command in [reprocess("rep_1"), resolve("x"), Command::Tick] {
        let err = apply(None, command, &alice(0)).unwrap_err();
        assert_eq!(err, TransitionError::UnknownEvent);
    }
    let err = apply(
        None,
        attempt("rep_1", 1, Some(204), NextStep::Done),
        &dispatcher(0),
    )
    .unwrap_err();
    assert_eq!(err, TransitionError::UnknownEvent);

    // An event without an incident.
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    assert_eq!(
        event.refused(reprocess("rep_1"), &alice(1)),
        TransitionError::NoIncident
    );
    assert_eq!(
        event.refused(resolve("nothing to do"), &alice(1)),
        TransitionError::NoIncident
    );

    // A resolved incident (by success, then by hand).
    let mut event = Event::failed();
    event.run(success(), &app(20));
    assert_eq!(
        event.refused(reprocess("rep_1"), &alice(30)),
        TransitionError::IncidentResolved
    );
    assert_eq!(
        event.refused(resolve("again"), &alice(30)),
        TransitionError::IncidentResolved
    );
    let mut event = Event::failed();
    event.run(resolve("by hand"), &alice(20));
    assert_eq!(
        event.refused(reprocess("rep_1"), &alice(30)),
        TransitionError::IncidentResolved
    );
    assert_eq!(
        event.refused(resolve("by hand again"), &alice(30)),
        TransitionError::IncidentResolved
    );
}

#[test]
fn stale_and_duplicate_callback_reports_change_nothing() {
    let mut event = Event::failed();
    event.run(reprocess("rep_1"), &alice(100));
    event.run(
        attempt("rep_1", 1, Some(500), NextStep::RetryAt(at(106))),
        &dispatcher(101),
    );
    let before = event.record().clone();

    // The same attempt reported twice.
    let t = event.run(
        attempt("rep_1", 1, Some(500), NextStep::RetryAt(at(106))),
        &dispatcher(102),
    );
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert!(t.entries.is_empty());
    assert!(t.effects.is_empty());
    assert_eq!(t.record, before);

    // An older attempt arriving late, even claiming delivery.
    let t = event.run(delivered("rep_1", 0), &dispatcher(103));
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert_eq!(t.record, before);

    // A report for a reprocess this incident does not have.
    let t = event.run(delivered("rep_unknown", 1), &dispatcher(104));
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert!(t.entries.is_empty());
    assert_eq!(t.record, before);
    assert_eq!(
        t.effects,
        [Effect::CancelCallback {
            reprocess_id: "rep_unknown".to_owned(),
        }]
    );

    // A report for an event without an incident.
    let mut plain = Event::default();
    plain.run(receipt(1800), &app(0));
    let before = plain.record().clone();
    let t = plain.run(delivered("rep_1", 1), &dispatcher(5));
    assert_eq!(t.record, before);
    assert!(t.entries.is_empty());
    assert_eq!(
        t.effects,
        [Effect::CancelCallback {
            reprocess_id: "rep_1".to_owned(),
        }]
    );
}

#[test]
fn reports_for_a_superseded_reprocess_are_cancelled() {
    let mut event = Event::repair_delivered();
    event.run(reprocess("rep_2"), &alice(120));
    let before = event.record().clone();
    let t = event.run(
        attempt("rep_1", 2, Some(500), NextStep::RetryAt(at(200))),
        &dispatcher(121),
    );
    assert_eq!(t.record, before);
    assert!(t.entries.is_empty());
    assert_eq!(
        t.effects,
        [Effect::CancelCallback {
            reprocess_id: "rep_1".to_owned(),
        }]
    );
}

// ---------------------------------------------------------------- time

#[test]
fn now_going_backwards_never_moves_the_timeline_backwards() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(100));

    let t = event.run(receipt(1800), &app(50));
    assert_eq!(t.entries[0].at, at(100));
    assert_eq!(t.record.updated_at, at(100));

    let t = event.run(failure("boom"), &app(10));
    assert!(t.entries.iter().all(|e| e.at == at(100)));
    assert_eq!(t.record.result_at, Some(at(100)));
    assert_eq!(t.record.incident.as_ref().unwrap().opened_at, at(100));

    event.run(reprocess("rep_1"), &alice(200));
    let t = event.run(delivered("rep_1", 1), &dispatcher(150));
    assert_eq!(t.entries[0].at, at(200));
    let rep = t
        .record
        .incident
        .as_ref()
        .unwrap()
        .reprocess
        .clone()
        .unwrap();
    assert_eq!(rep.delivered_at, Some(at(200)));
    assert_eq!(rep.result_due_at, Some(at(800)));

    let t = event.run(resolve("fine"), &alice(0));
    assert_eq!(
        t.record.incident.as_ref().unwrap().resolved_at,
        Some(at(200))
    );

    assert!(
        event.timeline.windows(2).all(|w| w[0].at <= w[1].at),
        "{:#?}",
        event.timeline
    );
}

#[test]
fn a_tick_from_the_past_cannot_fire_a_future_deadline() {
    let mut event = Event::default();
    event.run(receipt(1800), &app(100));
    let t = event.run(Command::Tick, &sweeper(0));
    assert_eq!(t.outcome, Outcome::Unchanged);
    assert_eq!(t.record.state, EventState::AwaitingResult);
}

#[test]
fn next_due_at_in_each_state() {
    // awaiting_result: the deadline.
    let mut event = Event::default();
    event.run(receipt(1800), &app(0));
    assert_eq!(event.record().next_due_at(), Some(at(1800)));
    // overdue with an open incident: nothing.
    event.run(Command::Tick, &sweeper(1800));
    assert_eq!(event.record().next_due_at(), None);
    // reprocessing, callback being delivered: nothing (the dispatcher owns it).
    event.run(reprocess("rep_1"), &alice(1900));
    assert_eq!(event.record().next_due_at(), None);
    // reprocessing, callback delivered: the repair result deadline.
    event.run(delivered("rep_1", 1), &dispatcher(1901));
    assert_eq!(event.record().next_due_at(), Some(at(2501)));
    // back to open after no result: nothing.
    event.run(Command::Tick, &sweeper(2501));
    assert_eq!(event.record().next_due_at(), None);
    // succeeded and resolved: nothing.
    event.run(success(), &app(3000));
    assert_eq!(event.record().next_due_at(), None);

    // failed: nothing.
    let event = Event::failed();
    assert_eq!(event.record().next_due_at(), None);
    // result first: nothing, even after the receipt.
    let mut event = Event::default();
    event.run(success(), &app(0));
    assert_eq!(event.record().next_due_at(), None);
    event.run(receipt(60), &app(1));
    assert_eq!(event.record().next_due_at(), None);
}

#[test]
fn the_incident_id_is_taken_from_the_context_only_once() {
    let mut event = Event::default();
    event.run(receipt(60), &app(0));
    let mut ctx = sweeper(60);
    ctx.new_incident_id = "inc_A".to_owned();
    event.run(Command::Tick, &ctx);
    assert_eq!(event.incident().id, "inc_A");
    let mut ctx = app(70);
    ctx.new_incident_id = "inc_B".to_owned();
    event.run(failure("x"), &ctx);
    let mut ctx = alice(80);
    ctx.new_incident_id = "inc_C".to_owned();
    event.run(resolve("ok"), &ctx);
    let mut ctx = app(90);
    ctx.new_incident_id = "inc_D".to_owned();
    event.run(failure("y"), &ctx);
    assert_eq!(event.incident().id, "inc_A");
    assert_eq!(event.incident().reopen_count, 1);
}
