//! The receipt/result/incident state machine.
//!
//! One function, [`apply`], moves an [`EventRecord`] forward:
//! `(current record, command, context with now) -> Transition` where the
//! [`Transition`] carries the new record, the timeline entries to append and
//! the [`Effect`]s the server must carry out (enqueue or cancel a repair
//! callback, count an opened incident…). Nothing here reads a clock or does
//! I/O, so every rule is testable with an injected `now`.
//!
//! The rules, in the contract's words:
//! - a receipt starts the clock (`deadline_at`); a duplicate receipt is counted
//!   on `deliveries` and the timeline, the deadline stays;
//! - a `failure` result opens an incident at once (`failed_result`); no result
//!   by the deadline opens one on the next [`Command::Tick`] (`missing_result`);
//! - a result before its receipt is kept; the receipt then completes the record;
//! - a `success` always wins: it resolves an open incident, and a later
//!   failure is recorded on the timeline but changes nothing;
//! - a new failure on a manually resolved incident reopens the same incident;
//! - the provider's own copy of an event ([`Command::Expected`], from the
//!   provider tap or the reconciler) on an unknown event starts the receipt
//!   clock (`awaiting_receipt`, `receipt_due_at`); no receipt by then opens
//!   a `missing_receipt` incident on the next [`Command::Tick`]; a receipt
//!   arriving later resolves it by itself (`receipt_arrived`) and the event
//!   then follows the result deadline. A copy after the receipt (the normal
//!   case) is only recorded; the same copy again, or another event id of the
//!   same change (same fingerprint), is a duplicate on the timeline. A
//!   test-mode copy's incident is marked `livemode: false`;
//! - a reprocess moves the incident to `reprocessing`; while its callback is
//!   being delivered a second reprocess is refused; once delivered the
//!   incident waits for a result until `result_due_at`, and returns to `open`
//!   if none comes or if delivery gives up.

use crate::trace::{TraceContextView, TraceParent};
use serde_json::json;

use crate::Timestamp;
use crate::model::{
    Actor, EventKey, EventState, Incident, IncidentKind, IncidentState, JsonObject, Provider,
    ProviderCopy, Receipt, Reprocess, ReprocessStatus, Resolution, ResultSignal, ResultStatus,
    ResultSummary, TimelineEntry, TimelineKind,
};
use crate::retry::{GiveUpReason, NextStep};

/// Everything known about one event: the unit the state machine works on.
///
/// It serialises to JSON, which is how the server stores it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventRecord {
    /// The provider.
    pub provider: Provider,
    /// The provider's event id.
    pub event_id: String,
    /// The event type; `None` until the receipt arrives (result first).
    pub event_type: Option<String>,
    /// The customer or account the effect is for.
    pub subject: Option<String>,
    /// The expected business effect's label.
    pub effect: Option<String>,
    /// The app's metadata from the receipt.
    pub metadata: Option<JsonObject>,
    /// When the provider says the event happened.
    pub occurred_at: Option<Timestamp>,
    /// Where the event stands.
    pub state: EventState,
    /// When the first receipt arrived.
    pub received_at: Option<Timestamp>,
    /// When the result is due (set by the first receipt while awaiting a result).
    pub deadline_at: Option<Timestamp>,
    /// How many receipts arrived (1 + duplicate deliveries).
    pub deliveries: u32,
    /// When the latest result arrived.
    pub result_at: Option<Timestamp>,
    /// The latest result that counted: a failure after a success is
    /// ignored (success always wins) and does not replace it.
    pub last_result: Option<ResultSummary>,
    /// The latest failure ignored because a success was already recorded
    /// (on the timeline as an ignored `result.failure`); the same failure
    /// again is a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_result: Option<ResultSummary>,
    /// How many results repeated the latest one exactly.
    pub duplicate_results: u32,
    /// The event's incident, if one was ever opened (one per event, reopened in place).
    pub incident: Option<Incident>,
    /// The provider's own copy of the event (provider tap or reconciler),
    /// once seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_copy: Option<ProviderCopy>,
    /// While `awaiting_receipt`: when the app's receipt is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_due_at: Option<Timestamp>,
    /// When the record was created.
    pub created_at: Timestamp,
    /// The time of the latest timeline entry.
    pub updated_at: Timestamp,
}

impl EventRecord {
    /// The event's identity: `(provider, event_id)`.
    pub fn key(&self) -> EventKey {
        EventKey {
            provider: self.provider,
            event_id: self.event_id.clone(),
        }
    }

    /// When the sweeper must next look at this record: the receipt due time
    /// while awaiting a receipt (until its incident opens), the result
    /// deadline while awaiting a result, or the repair result deadline
    /// after a delivered callback. `None` when nothing is due.
    pub fn next_due_at(&self) -> Option<Timestamp> {
        if self.state == EventState::AwaitingReceipt && self.incident.is_none() {
            return self.receipt_due_at;
        }
        if self.state == EventState::AwaitingResult {
            return self.deadline_at;
        }
        let incident = self.incident.as_ref()?;
        if incident.state != IncidentState::Reprocessing {
            return None;
        }
        let reprocess = incident.reprocess.as_ref()?;
        (reprocess.status == ReprocessStatus::Delivered)
            .then_some(reprocess.result_due_at)
            .flatten()
    }
}

/// The report of one repair-callback delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptReport {
    /// The HTTP status, or `None` when no response came.
    pub status: Option<u16>,
    /// How long the attempt took.
    pub latency_ms: u64,
    /// The first 1 KiB of the response body.
    pub response_excerpt: Option<String>,
    /// What went wrong (timeout, connection refused, …).
    pub error: Option<String>,
    /// The trace context the callback was sent with (it continues the
    /// trace of the event's latest traced signal), if any.
    pub trace: Option<TraceContextView>,
}

/// A signal, tick or human action to apply to an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// The app's receipt, with the deadline already resolved from the call,
    /// the project's per-event-type table or its default.
    Receipt {
        /// The receipt as sent.
        receipt: Receipt,
        /// Seconds until the result is due.
        deadline_seconds: u32,
    },
    /// The app's result.
    Result(ResultSignal),
    /// Time passed: open incidents for deadlines that are due.
    Tick,
    /// Request a repair callback.
    RequestReprocess {
        /// The new `rep_` id.
        reprocess_id: String,
        /// The requester's note.
        note: Option<String>,
        /// Seconds the app gets to send a result once the callback is delivered.
        result_deadline_seconds: u32,
    },
    /// A callback delivery attempt finished.
    CallbackAttempt {
        /// Which reprocess.
        reprocess_id: String,
        /// The attempt number, 1-based.
        attempt: u32,
        /// What happened.
        report: AttemptReport,
        /// What the retry schedule decided.
        next: NextStep,
    },
    /// A person resolved the incident.
    ManualResolve {
        /// Why (required by the API).
        note: String,
    },
    /// The provider's own copy of the event: it was sent, so the app should
    /// send a receipt. Creates the record if the app has not reported it.
    Expected {
        /// The copy; its `event_id` is the record's, or another id of the
        /// same change (a copy linked by fingerprint).
        copy: ProviderCopy,
        /// Seconds the app gets to send its receipt, already resolved from
        /// the project's per-event-type table or its default.
        receipt_grace_seconds: u32,
    },
}

/// The circumstances of a command: when, by whom, and a fresh incident id to
/// use if the command opens the event's first incident.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// The current time (timeline entries never go backwards from the record's last one).
    pub now: Timestamp,
    /// Who is acting.
    pub actor: Actor,
    /// An unused `inc_` id, taken only if an incident is opened for the first time.
    pub new_incident_id: String,
}

/// What a command did, for the caller's response code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new record, or the first receipt of a record that had only a
    /// result or only the provider's copy.
    Created,
    /// The record changed.
    Updated,
    /// A repeated signal: only a counter and the timeline changed.
    Duplicate,
    /// Nothing to do (e.g. a tick before any deadline).
    Unchanged,
}

/// Work the server must do because of a transition (in the same transaction
/// as writing the record, where it touches storage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// An incident opened for the first time.
    IncidentOpened {
        /// The incident.
        incident_id: String,
        /// Why.
        kind: IncidentKind,
    },
    /// A resolved incident reopened.
    IncidentReopened {
        /// The incident.
        incident_id: String,
    },
    /// An incident went back to `open` after a reprocess did not fix it.
    IncidentReturnedToOpen {
        /// The incident.
        incident_id: String,
    },
    /// An incident was resolved.
    IncidentResolved {
        /// The incident.
        incident_id: String,
        /// How.
        resolution: Resolution,
    },
    /// Deliver a repair callback (enqueue it in the outbox).
    DeliverCallback {
        /// The reprocess.
        reprocess_id: String,
        /// The incident.
        incident_id: String,
    },
    /// Stop delivering a repair callback (it is no longer needed).
    CancelCallback {
        /// The reprocess.
        reprocess_id: String,
    },
    /// Callback delivery gave up.
    CallbackGaveUp {
        /// The reprocess.
        reprocess_id: String,
        /// The incident.
        incident_id: String,
    },
    /// A delivered repair callback produced no result before its result
    /// deadline (the incident also returns to open).
    ReprocessNoResult {
        /// The reprocess.
        reprocess_id: String,
        /// The incident.
        incident_id: String,
    },
}

/// The result of [`apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The record after the command.
    pub record: EventRecord,
    /// Timeline entries to append, oldest first.
    pub entries: Vec<TimelineEntry>,
    /// Work for the server.
    pub effects: Vec<Effect>,
    /// What happened, in one word.
    pub outcome: Outcome,
}

/// Why a command cannot apply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The command needs an existing event.
    #[error("no event with this provider and event id has been recorded")]
    UnknownEvent,
    /// The command needs an incident and the event has none.
    #[error("this event has no incident")]
    NoIncident,
    /// The incident is already resolved.
    #[error("the incident is already resolved")]
    IncidentResolved,
    /// A repair callback is still being delivered.
    #[error(
        "repair callback {reprocess_id} is still being delivered; wait for it to finish or give up"
    )]
    CallbackInFlight {
        /// The reprocess in flight.
        reprocess_id: String,
    },
    /// A result or receipt names a different provider than the record (cannot happen through the API).
    #[error("the command is for a different event")]
    WrongEvent,
}

/// Applies `command` to `record` (or to no record yet) at `ctx.now`.
///
/// Receipts and results create records; every other command needs one.
/// The caller stores [`Transition::record`], appends [`Transition::entries`]
/// to the timeline and carries out [`Transition::effects`]. On `Err` nothing
/// changed. Timeline entries are stamped `max(ctx.now, record.updated_at)`,
/// so a clock that goes backwards never reorders a timeline.
///
/// # Example
///
/// ```
/// use sendpromptly_core::Timestamp;
/// use sendpromptly_core::machine::{Command, Context, Effect, Outcome, TransitionError, apply};
/// use sendpromptly_core::model::{
///     Actor, EventState, IncidentKind, IncidentState, Provider, Receipt, Resolution,
///     ResultSignal, ResultStatus,
/// };
///
/// let start = Timestamp::from_unix_seconds(1_800_000_000);
/// let at = |seconds: i64| Context {
///     now: start.plus_seconds(seconds),
///     actor: Actor::ApiKey("key_123".to_owned()),
///     new_incident_id: "inc_01JBX2Y3Z4A5B6C7D8E9F0G1H2".to_owned(),
/// };
/// let result = |status, error: Option<&str>| {
///     Command::Result(ResultSignal {
///         traceparent: None,
///         tracestate: None,
///         provider: Provider::Stripe,
///         event_id: "evt_1Q2w3E".to_owned(),
///         status,
///         error: error.map(str::to_owned),
///         reprocess_id: None,
///         metadata: None,
///     })
/// };
///
/// // The app durably accepted a Stripe event: the clock starts.
/// let receipt = Command::Receipt {
///     receipt: Receipt {
///         traceparent: None,
///         tracestate: None,
///         provider: Provider::Stripe,
///         event_id: "evt_1Q2w3E".to_owned(),
///         event_type: "invoice.paid".to_owned(),
///         subject: Some("cus_9s8d7f".to_owned()),
///         effect: Some("credits.add".to_owned()),
///         deadline_seconds: None,
///         metadata: None,
///         occurred_at: None,
///     },
///     // Already resolved: per call > per event type > project default.
///     deadline_seconds: 1800,
/// };
/// let t = apply(None, receipt, &at(0))?;
/// assert_eq!(t.outcome, Outcome::Created);
/// assert_eq!(t.record.deadline_at, Some(start.plus_seconds(1800)));
///
/// // The business effect failed: an incident opens at once.
/// let t = apply(
///     Some(t.record),
///     result(ResultStatus::Failure, Some("tenant acct_42 not found")),
///     &at(10),
/// )?;
/// assert_eq!(t.record.state, EventState::Failed);
/// assert!(matches!(
///     t.effects[..],
///     [Effect::IncidentOpened { kind: IncidentKind::FailedResult, .. }]
/// ));
///
/// // A later success wins and resolves it.
/// let t = apply(Some(t.record), result(ResultStatus::Success, None), &at(60))?;
/// let incident = t.record.incident.as_ref().unwrap();
/// assert_eq!(t.record.state, EventState::Succeeded);
/// assert_eq!(incident.state, IncidentState::Resolved);
/// assert_eq!(incident.resolution, Some(Resolution::SuccessResult));
/// # Ok::<(), TransitionError>(())
/// ```
pub fn apply(
    record: Option<EventRecord>,
    command: Command,
    ctx: &Context,
) -> Result<Transition, TransitionError> {
    let mut step = match record {
        Some(record) => {
            let now = ctx.now.max(record.updated_at);
            Step::new(record, now, ctx)
        }
        None => match &command {
            Command::Receipt { receipt, .. } => Step::new(
                EventRecord::empty(receipt.provider, &receipt.event_id, ctx.now),
                ctx.now,
                ctx,
            ),
            Command::Result(result) => Step::new(
                EventRecord::empty(result.provider, &result.event_id, ctx.now),
                ctx.now,
                ctx,
            ),
            Command::Expected { copy, .. } => Step::new(
                EventRecord::empty(copy.provider, &copy.event_id, ctx.now),
                ctx.now,
                ctx,
            ),
            _ => return Err(TransitionError::UnknownEvent),
        },
    };
    let trace = match &command {
        Command::Receipt { receipt, .. } => trace_detail(
            receipt.traceparent.as_deref(),
            receipt.tracestate.as_deref(),
        ),
        Command::Result(result) => {
            trace_detail(result.traceparent.as_deref(), result.tracestate.as_deref())
        }
        _ => None,
    };
    match command {
        Command::Receipt {
            receipt,
            deadline_seconds,
        } => step.receipt(receipt, deadline_seconds)?,
        Command::Result(result) => step.result(result)?,
        Command::Tick => step.tick(),
        Command::RequestReprocess {
            reprocess_id,
            note,
            result_deadline_seconds,
        } => step.request_reprocess(reprocess_id, note, result_deadline_seconds)?,
        Command::CallbackAttempt {
            reprocess_id,
            attempt,
            report,
            next,
        } => step.callback_attempt(&reprocess_id, attempt, report, next),
        Command::ManualResolve { note } => step.manual_resolve(note)?,
        Command::Expected {
            copy,
            receipt_grace_seconds,
        } => step.expected(copy, receipt_grace_seconds)?,
    }
    // The signal's own entry (its first) carries its trace context.
    if let (Some(trace), Some(entry)) = (trace, step.entries.first_mut()) {
        entry.detail.insert("trace".into(), trace);
    }
    Ok(step.finish())
}

impl EventRecord {
    fn empty(provider: Provider, event_id: &str, now: Timestamp) -> Self {
        EventRecord {
            provider,
            event_id: event_id.to_owned(),
            event_type: None,
            subject: None,
            effect: None,
            metadata: None,
            occurred_at: None,
            state: EventState::AwaitingResult,
            received_at: None,
            deadline_at: None,
            deliveries: 0,
            result_at: None,
            last_result: None,
            ignored_result: None,
            duplicate_results: 0,
            incident: None,
            provider_copy: None,
            receipt_due_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether this record has seen neither a receipt, nor a result, nor
    /// the provider's copy (only inside `apply`).
    fn is_new(&self) -> bool {
        self.received_at.is_none() && self.result_at.is_none() && self.provider_copy.is_none()
    }

    /// Whether the event is live: no provider copy says it is a test-mode event.
    pub fn is_live(&self) -> bool {
        self.provider_copy
            .as_ref()
            .is_none_or(ProviderCopy::is_live)
    }
}

/// One command in progress: the record being changed and what it produced.
struct Step<'a> {
    record: EventRecord,
    entries: Vec<TimelineEntry>,
    effects: Vec<Effect>,
    outcome: Outcome,
    now: Timestamp,
    ctx: &'a Context,
}

impl<'a> Step<'a> {
    fn new(record: EventRecord, now: Timestamp, ctx: &'a Context) -> Self {
        let outcome = if record.is_new() {
            Outcome::Created
        } else {
            Outcome::Unchanged
        };
        Step {
            record,
            entries: Vec::new(),
            effects: Vec::new(),
            outcome,
            now,
            ctx,
        }
    }

    fn log(&mut self, kind: TimelineKind, detail: serde_json::Value) {
        self.entries.push(TimelineEntry::new(
            self.now,
            kind,
            self.ctx.actor.clone(),
            detail,
        ));
    }

    fn changed(&mut self) {
        if self.outcome == Outcome::Unchanged || self.outcome == Outcome::Duplicate {
            self.outcome = Outcome::Updated;
        }
    }

    fn finish(mut self) -> Transition {
        if !self.entries.is_empty() {
            self.record.updated_at = self.now;
        }
        Transition {
            record: self.record,
            entries: self.entries,
            effects: self.effects,
            outcome: self.outcome,
        }
    }

    fn receipt(&mut self, receipt: Receipt, deadline_seconds: u32) -> Result<(), TransitionError> {
        if receipt.provider != self.record.provider || receipt.event_id != self.record.event_id {
            return Err(TransitionError::WrongEvent);
        }
        if self.record.received_at.is_some() {
            self.record.deliveries = self.record.deliveries.saturating_add(1);
            let mut detail = json!({ "deliveries": self.record.deliveries });
            if self.record.event_type.as_deref() != Some(receipt.event_type.as_str()) {
                detail["event_type"] = json!(receipt.event_type);
                detail["note"] = json!(
                    "this delivery names a different event_type; the first receipt's is kept"
                );
            }
            self.log(TimelineKind::ReceiptDuplicate, detail);
            self.outcome = Outcome::Duplicate;
            return Ok(());
        }
        let was_awaiting_receipt = self.record.state == EventState::AwaitingReceipt;
        let record = &mut self.record;
        record.receipt_due_at = None;
        record.event_type = Some(receipt.event_type);
        record.subject = receipt.subject;
        record.effect = receipt.effect;
        record.metadata = receipt.metadata;
        record.occurred_at = receipt.occurred_at;
        record.received_at = Some(self.now);
        record.deliveries = 1;
        let result_already_in = record.result_at.is_some();
        if !result_already_in {
            record.state = EventState::AwaitingResult;
            record.deadline_at = Some(self.now.plus_seconds(i64::from(deadline_seconds)));
        }
        let detail = json!({
            "event_type": record.event_type,
            "subject": record.subject,
            "effect": record.effect,
            "deadline_at": record.deadline_at,
            "result_already_recorded": result_already_in,
        });
        self.log(TimelineKind::ReceiptRecorded, detail);
        if was_awaiting_receipt {
            self.resolve_missing_receipt();
        }
        self.outcome = Outcome::Created;
        Ok(())
    }

    /// The receipt arrived after a `missing_receipt` incident opened: it
    /// resolves the incident by itself (`receipt_arrived`).
    fn resolve_missing_receipt(&mut self) {
        let now = self.now;
        let Some(incident) = self.record.incident.as_mut() else {
            return;
        };
        if incident.kind != IncidentKind::MissingReceipt
            || incident.state == IncidentState::Resolved
        {
            return;
        }
        incident.state = IncidentState::Resolved;
        incident.resolution = Some(Resolution::ReceiptArrived);
        incident.resolved_at = Some(now);
        let incident_id = incident.id.clone();
        let mut cancelled = None;
        if let Some(reprocess) = incident.reprocess.as_mut() {
            match reprocess.status {
                ReprocessStatus::Delivering => {
                    reprocess.status = ReprocessStatus::Superseded;
                    cancelled = Some(reprocess.id.clone());
                }
                ReprocessStatus::Delivered => reprocess.status = ReprocessStatus::Completed,
                _ => {}
            }
        }
        self.log(
            TimelineKind::IncidentResolved,
            json!({ "incident_id": incident_id, "resolution": "receipt_arrived" }),
        );
        if let Some(reprocess_id) = cancelled {
            self.effects.push(Effect::CancelCallback { reprocess_id });
        }
        self.effects.push(Effect::IncidentResolved {
            incident_id,
            resolution: Resolution::ReceiptArrived,
        });
    }

    /// The provider's own copy: starts the receipt clock on a new event,
    /// is recorded on one the app already reported, and is a duplicate
    /// when the record already has a copy.
    fn expected(
        &mut self,
        copy: ProviderCopy,
        receipt_grace_seconds: u32,
    ) -> Result<(), TransitionError> {
        if copy.provider != self.record.provider {
            return Err(TransitionError::WrongEvent);
        }
        let detail = copy_detail(&copy);
        if let Some(first) = &self.record.provider_copy {
            let mut detail = detail;
            if copy.event_id == self.record.event_id {
                let first_via = match first.learned_via {
                    crate::model::LearnedVia::Tap => "the provider tap",
                    crate::model::LearnedVia::Reconciler => "the reconciler",
                };
                detail["note"] = json!(format!(
                    "the provider's copy of `{}` was already recorded (first via {first_via}); nothing changed",
                    copy.event_id
                ));
            } else {
                detail["linked_to"] = json!(self.record.event_id);
                detail["note"] = json!(format!(
                    "duplicate copy `{}` of the same change",
                    copy.event_id
                ));
            }
            self.log(TimelineKind::ProviderCopyDuplicate, detail);
            self.outcome = Outcome::Duplicate;
            return Ok(());
        }
        if copy.event_id != self.record.event_id {
            return Err(TransitionError::WrongEvent);
        }
        let new = self.record.is_new();
        let record = &mut self.record;
        if record.event_type.is_none() {
            record.event_type = Some(copy.event_type.clone());
        }
        if record.subject.is_none() {
            record.subject.clone_from(&copy.subject);
        }
        if record.occurred_at.is_none() {
            record.occurred_at = copy.created;
        }
        let mut detail = detail;
        if new {
            record.state = EventState::AwaitingReceipt;
            record.receipt_due_at = Some(self.now.plus_seconds(i64::from(receipt_grace_seconds)));
            detail["receipt_due_at"] = json!(record.receipt_due_at);
        } else {
            detail["receipt_already_recorded"] = json!(record.received_at.is_some());
        }
        if let Some(incident) = record.incident.as_mut() {
            // The provider's copy is the word on the mode of the event.
            incident.livemode = copy.is_live();
        }
        record.provider_copy = Some(copy);
        self.log(TimelineKind::ProviderCopyRecorded, detail);
        self.outcome = if new {
            Outcome::Created
        } else {
            Outcome::Updated
        };
        Ok(())
    }

    fn result(&mut self, result: ResultSignal) -> Result<(), TransitionError> {
        if result.provider != self.record.provider || result.event_id != self.record.event_id {
            return Err(TransitionError::WrongEvent);
        }
        let summary = ResultSummary {
            status: result.status,
            error: result.error,
            reprocess_id: result.reprocess_id,
        };
        let repeated = self.record.last_result.as_ref() == Some(&summary)
            || self.record.ignored_result.as_ref() == Some(&summary);
        if repeated && !self.repeat_is_news(&summary) {
            self.record.duplicate_results = self.record.duplicate_results.saturating_add(1);
            self.log(
                TimelineKind::ResultDuplicate,
                json!({ "status": summary.status.as_str(), "duplicates": self.record.duplicate_results }),
            );
            self.outcome = Outcome::Duplicate;
            return Ok(());
        }
        let was_new = self.record.is_new();
        // `last_result` is set by `success` and `failure` only when the
        // result counts: a failure after a success is ignored (success
        // always wins), so the latest result stays the success.
        match summary.status {
            ResultStatus::Success => self.success(&summary),
            ResultStatus::Failure => self.failure(&summary),
        }
        self.outcome = if was_new {
            Outcome::Created
        } else {
            Outcome::Updated
        };
        Ok(())
    }

    /// Whether a result equal to the latest one still changes something, so
    /// it must not be counted as a duplicate: a failure after the incident
    /// was resolved by hand (it reopens it) or after a repair callback was
    /// delivered (it is the repair's answer and returns the incident to open).
    fn repeat_is_news(&self, summary: &ResultSummary) -> bool {
        summary.status == ResultStatus::Failure
            && self.record.state != EventState::Succeeded
            && self.record.incident.as_ref().is_some_and(|incident| {
                incident.state == IncidentState::Resolved
                    || (incident.state == IncidentState::Reprocessing
                        && incident
                            .reprocess
                            .as_ref()
                            .is_some_and(|r| r.status == ReprocessStatus::Delivered))
            })
    }

    fn success(&mut self, summary: &ResultSummary) {
        self.record.last_result = Some(summary.clone());
        let previous = self.record.state;
        self.record.state = EventState::Succeeded;
        self.record.result_at = Some(self.now);
        self.log(
            TimelineKind::ResultSuccess,
            json!({
                "reprocess_id": summary.reprocess_id,
                "previous_state": previous.as_str(),
            }),
        );
        let Some(incident) = self.record.incident.as_mut() else {
            return;
        };
        if incident.state == IncidentState::Resolved {
            return;
        }
        incident.state = IncidentState::Resolved;
        incident.resolution = Some(Resolution::SuccessResult);
        incident.resolved_at = Some(self.now);
        let incident_id = incident.id.clone();
        let mut cancelled = None;
        if let Some(reprocess) = incident.reprocess.as_mut() {
            match reprocess.status {
                ReprocessStatus::Delivering => {
                    reprocess.status = ReprocessStatus::Superseded;
                    cancelled = Some(reprocess.id.clone());
                }
                ReprocessStatus::Delivered => reprocess.status = ReprocessStatus::Completed,
                _ => {}
            }
        }
        self.log(
            TimelineKind::IncidentResolved,
            json!({ "incident_id": incident_id, "resolution": "success_result", "reprocess_id": summary.reprocess_id }),
        );
        if let Some(reprocess_id) = cancelled {
            self.effects.push(Effect::CancelCallback { reprocess_id });
        }
        self.effects.push(Effect::IncidentResolved {
            incident_id,
            resolution: Resolution::SuccessResult,
        });
    }

    fn failure(&mut self, summary: &ResultSummary) {
        if self.record.state == EventState::Succeeded {
            self.log(
                TimelineKind::ResultFailure,
                json!({
                    "error": summary.error,
                    "reprocess_id": summary.reprocess_id,
                    "ignored": "a success result was already recorded; success always wins",
                }),
            );
            self.record.ignored_result = Some(summary.clone());
            return;
        }
        self.record.last_result = Some(summary.clone());
        self.record.state = EventState::Failed;
        self.record.result_at = Some(self.now);
        self.log(
            TimelineKind::ResultFailure,
            json!({ "error": summary.error, "reprocess_id": summary.reprocess_id }),
        );
        let error = summary
            .error
            .clone()
            .or_else(|| Some("the app reported a failure without an error message".to_owned()));
        self.open_incident(IncidentKind::FailedResult, error);
    }

    /// Opens the event's incident, reopens a resolved one, or notes a new
    /// reason on one that is already open.
    fn open_incident(&mut self, kind: IncidentKind, error: Option<String>) {
        let now = self.now;
        match self.record.incident.as_mut() {
            None => {
                let incident = Incident {
                    id: self.ctx.new_incident_id.clone(),
                    kind,
                    state: IncidentState::Open,
                    resolution: None,
                    opened_at: now,
                    resolved_at: None,
                    last_error: error.clone(),
                    reopen_count: 0,
                    reprocess_count: 0,
                    reprocess: None,
                    livemode: self.record.is_live(),
                };
                let incident_id = incident.id.clone();
                self.record.incident = Some(incident);
                let mut detail =
                    json!({ "incident_id": incident_id, "kind": kind.as_str(), "reason": error });
                if !self.record.is_live() {
                    detail["livemode"] = json!(false);
                }
                self.log(TimelineKind::IncidentOpened, detail);
                self.effects
                    .push(Effect::IncidentOpened { incident_id, kind });
            }
            Some(incident) if incident.state == IncidentState::Resolved => {
                incident.state = IncidentState::Open;
                incident.kind = kind;
                incident.resolution = None;
                incident.resolved_at = None;
                incident.last_error = error.clone();
                incident.reopen_count = incident.reopen_count.saturating_add(1);
                let incident_id = incident.id.clone();
                self.log(
                    TimelineKind::IncidentReopened,
                    json!({ "incident_id": incident_id, "kind": kind.as_str(), "reason": error }),
                );
                self.effects.push(Effect::IncidentReopened { incident_id });
            }
            Some(incident) => {
                incident.kind = kind;
                incident.last_error = error;
                let returned = incident.state == IncidentState::Reprocessing
                    && incident
                        .reprocess
                        .as_ref()
                        .is_some_and(|r| r.status == ReprocessStatus::Delivered);
                if returned {
                    incident.state = IncidentState::Open;
                    if let Some(reprocess) = incident.reprocess.as_mut() {
                        reprocess.status = ReprocessStatus::Completed;
                    }
                    let incident_id = incident.id.clone();
                    self.log(
                        TimelineKind::IncidentReturnedToOpen,
                        json!({ "incident_id": incident_id, "reason": "the repair reported a failure" }),
                    );
                    self.effects
                        .push(Effect::IncidentReturnedToOpen { incident_id });
                }
            }
        }
    }

    fn tick(&mut self) {
        let now = self.now;
        if self.record.state == EventState::AwaitingReceipt
            && self.record.incident.is_none()
            && self.record.receipt_due_at.is_some_and(|due| due <= now)
        {
            self.log(
                TimelineKind::ReceiptGracePassed,
                json!({ "receipt_due_at": self.record.receipt_due_at }),
            );
            let reason = missing_receipt_reason(&self.record);
            self.open_incident(IncidentKind::MissingReceipt, Some(reason));
            self.changed();
            return;
        }
        if self.record.state == EventState::AwaitingResult
            && self.record.deadline_at.is_some_and(|due| due <= now)
        {
            self.record.state = EventState::Overdue;
            self.log(
                TimelineKind::DeadlinePassed,
                json!({ "deadline_at": self.record.deadline_at }),
            );
            self.open_incident(
                IncidentKind::MissingResult,
                Some("no result arrived by the deadline".to_owned()),
            );
            self.changed();
            return;
        }
        let Some(incident) = self.record.incident.as_mut() else {
            return;
        };
        if incident.state != IncidentState::Reprocessing {
            return;
        }
        let Some(reprocess) = incident.reprocess.as_mut() else {
            return;
        };
        if reprocess.status == ReprocessStatus::Delivered
            && reprocess.result_due_at.is_some_and(|due| due <= now)
        {
            reprocess.status = ReprocessStatus::NoResult;
            let reprocess_id = reprocess.id.clone();
            let due = reprocess.result_due_at;
            incident.state = IncidentState::Open;
            let incident_id = incident.id.clone();
            self.log(
                TimelineKind::ReprocessNoResult,
                json!({ "reprocess_id": reprocess_id, "result_due_at": due }),
            );
            self.log(
                TimelineKind::IncidentReturnedToOpen,
                json!({ "incident_id": incident_id, "reason": "the repair callback was delivered but no result arrived in time" }),
            );
            self.effects.push(Effect::ReprocessNoResult {
                reprocess_id,
                incident_id: incident_id.clone(),
            });
            self.effects
                .push(Effect::IncidentReturnedToOpen { incident_id });
            self.changed();
        }
    }

    fn request_reprocess(
        &mut self,
        reprocess_id: String,
        note: Option<String>,
        result_deadline_seconds: u32,
    ) -> Result<(), TransitionError> {
        let incident = self
            .record
            .incident
            .as_mut()
            .ok_or(TransitionError::NoIncident)?;
        if incident.state == IncidentState::Resolved {
            return Err(TransitionError::IncidentResolved);
        }
        if let Some(current) = incident.reprocess.as_ref().filter(|r| r.status.in_flight()) {
            return Err(TransitionError::CallbackInFlight {
                reprocess_id: current.id.clone(),
            });
        }
        let supersedes = incident
            .reprocess
            .as_ref()
            .filter(|r| r.status == ReprocessStatus::Delivered)
            .map(|r| r.id.clone());
        incident.state = IncidentState::Reprocessing;
        incident.reprocess_count = incident.reprocess_count.saturating_add(1);
        incident.reprocess = Some(Reprocess {
            id: reprocess_id.clone(),
            requested_at: self.now,
            requested_by: self.ctx.actor.clone(),
            note: note.clone(),
            status: ReprocessStatus::Delivering,
            attempts: 0,
            delivered_at: None,
            result_due_at: None,
            result_deadline_seconds,
        });
        let incident_id = incident.id.clone();
        self.log(
            TimelineKind::ReprocessRequested,
            json!({ "reprocess_id": reprocess_id, "incident_id": incident_id, "note": note, "supersedes": supersedes }),
        );
        self.effects.push(Effect::DeliverCallback {
            reprocess_id,
            incident_id,
        });
        self.changed();
        Ok(())
    }

    fn callback_attempt(
        &mut self,
        reprocess_id: &str,
        attempt: u32,
        report: AttemptReport,
        next: NextStep,
    ) {
        let now = self.now;
        let Some(incident) = self.record.incident.as_mut() else {
            self.effects.push(Effect::CancelCallback {
                reprocess_id: reprocess_id.to_owned(),
            });
            return;
        };
        let Some(reprocess) = incident.reprocess.as_mut().filter(|r| r.id == reprocess_id) else {
            self.effects.push(Effect::CancelCallback {
                reprocess_id: reprocess_id.to_owned(),
            });
            return;
        };
        if attempt <= reprocess.attempts {
            return;
        }
        reprocess.attempts = attempt;
        let still_wanted = reprocess.status == ReprocessStatus::Delivering;
        let outcome = match (still_wanted, next) {
            (false, _) => "not_needed",
            (true, NextStep::Done) => "delivered",
            (true, NextStep::RetryAt(_)) => "retry_scheduled",
            (true, NextStep::GiveUp(_)) => "gave_up",
        };
        let mut detail = json!({
            "reprocess_id": reprocess_id,
            "attempt": attempt,
            "status": report.status,
            "latency_ms": report.latency_ms,
            "response_excerpt": report.response_excerpt,
            "error": report.error,
            "outcome": outcome,
        });
        if let Some(trace) = &report.trace {
            detail["trace"] = json!(trace);
        }
        if !still_wanted {
            detail["note"] =
                json!("the incident no longer needed this callback when the attempt finished");
        }
        let incident_id = incident.id.clone();
        let mut gave_up = None;
        if still_wanted {
            match next {
                NextStep::Done => {
                    reprocess.status = ReprocessStatus::Delivered;
                    reprocess.delivered_at = Some(now);
                    reprocess.result_due_at =
                        Some(now.plus_seconds(i64::from(reprocess.result_deadline_seconds)));
                    detail["result_due_at"] = json!(reprocess.result_due_at);
                }
                NextStep::RetryAt(at) => detail["next_attempt_at"] = json!(at),
                NextStep::GiveUp(reason) => {
                    reprocess.status = ReprocessStatus::GaveUp;
                    incident.state = IncidentState::Open;
                    gave_up = Some(reason);
                }
            }
        }
        self.log(TimelineKind::CallbackAttempt, detail);
        if !still_wanted && matches!(next, NextStep::RetryAt(_)) {
            // The attempt was running when the callback stopped being needed
            // (the incident was resolved): make sure its retry is dropped.
            self.effects.push(Effect::CancelCallback {
                reprocess_id: reprocess_id.to_owned(),
            });
        }
        if let Some(reason) = gave_up {
            self.log_gave_up(reprocess_id, &incident_id, attempt, reason);
        }
        self.changed();
    }

    fn log_gave_up(
        &mut self,
        reprocess_id: &str,
        incident_id: &str,
        attempts: u32,
        reason: GiveUpReason,
    ) {
        self.log(
            TimelineKind::CallbackGaveUp,
            json!({ "reprocess_id": reprocess_id, "attempts": attempts, "reason": reason.describe() }),
        );
        self.log(
            TimelineKind::IncidentReturnedToOpen,
            json!({ "incident_id": incident_id, "reason": "repair callback delivery gave up" }),
        );
        self.effects.push(Effect::CallbackGaveUp {
            reprocess_id: reprocess_id.to_owned(),
            incident_id: incident_id.to_owned(),
        });
        self.effects.push(Effect::IncidentReturnedToOpen {
            incident_id: incident_id.to_owned(),
        });
    }

    fn manual_resolve(&mut self, note: String) -> Result<(), TransitionError> {
        let now = self.now;
        let incident = self
            .record
            .incident
            .as_mut()
            .ok_or(TransitionError::NoIncident)?;
        if incident.state == IncidentState::Resolved {
            return Err(TransitionError::IncidentResolved);
        }
        incident.state = IncidentState::Resolved;
        incident.resolution = Some(Resolution::Manual);
        incident.resolved_at = Some(now);
        let incident_id = incident.id.clone();
        let cancelled = incident
            .reprocess
            .as_mut()
            .filter(|r| r.status.in_flight())
            .map(|r| {
                r.status = ReprocessStatus::Superseded;
                r.id.clone()
            });
        self.log(
            TimelineKind::IncidentResolved,
            json!({ "incident_id": incident_id, "resolution": "manual", "note": note }),
        );
        if let Some(reprocess_id) = cancelled {
            self.effects.push(Effect::CancelCallback { reprocess_id });
        }
        self.effects.push(Effect::IncidentResolved {
            incident_id,
            resolution: Resolution::Manual,
        });
        self.changed();
        Ok(())
    }
}

/// A signal's trace context as its timeline entry stores it
/// (`detail.trace`, a [`TraceContextView`]); none without a valid `traceparent`.
fn trace_detail(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<serde_json::Value> {
    let parent = TraceParent::parse(traceparent?).ok()?;
    serde_json::to_value(TraceContextView::new(&parent, tracestate)).ok()
}

/// The timeline detail of a provider copy.
fn copy_detail(copy: &ProviderCopy) -> serde_json::Value {
    json!({
        "event_id": copy.event_id,
        "event_type": copy.event_type,
        "object_id": copy.object_id,
        "subject": copy.subject,
        "amount": copy.amount,
        "currency": copy.currency,
        "livemode": copy.livemode,
        "created": copy.created,
        "learned_via": copy.learned_via.as_str(),
        "fingerprint": copy.fingerprint,
    })
}

/// The provider's name as people write it.
fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Stripe => "Stripe",
        Provider::Shopify => "Shopify",
        Provider::Custom => "The provider",
    }
}

/// Why a `missing_receipt` incident opened, in plain words: "Stripe sent
/// `evt_…` (`invoice.paid`, cus_…, 19.99 USD) at 14:02 UTC; your app never
/// sent a receipt."
pub fn missing_receipt_reason(record: &EventRecord) -> String {
    let copy = record.provider_copy.as_ref();
    let event_type = copy
        .map(|c| c.event_type.as_str())
        .or(record.event_type.as_deref())
        .unwrap_or("unknown type");
    let mut parts = vec![format!("`{event_type}`")];
    if let Some(subject) = copy
        .and_then(|c| c.subject.as_deref())
        .or(record.subject.as_deref())
    {
        parts.push(subject.to_owned());
    }
    if let Some(amount) = copy.and_then(ProviderCopy::amount_text) {
        parts.push(amount);
    }
    let sent = copy.and_then(|c| c.created).unwrap_or(record.created_at);
    let when = sent.to_datetime().format("%Y-%m-%d %H:%M UTC");
    let test = if record.is_live() { "" } else { " (test mode)" };
    format!(
        "{} sent `{}` ({}) at {when}{test}; your app never sent a receipt.",
        provider_name(record.provider),
        record.event_id,
        parts.join(", ")
    )
}
