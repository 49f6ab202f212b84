//! [`record_expected`]: the provider's own copy of an event (from the
//! provider tap or the reconciler) becomes a tracked event that expects a
//! receipt, through the same group-commit path as the app's signals, so a
//! tap delivery is answered only once it is durable.
//!
//! One change, one incident: a copy whose fingerprint (the core's
//! [`EventReference::fingerprint`]) is already held by another event of
//! the project is linked to that event (a timeline entry "duplicate copy
//! `evt_…` of the same change"), never tracked on its own.

use sendpromptly_core::machine::{Command, Outcome};
pub use sendpromptly_core::model::LearnedVia;
use sendpromptly_core::model::{Actor, EventKey, ProviderCopy};
use sendpromptly_core::provider_event::EventReference;

use super::ServiceError;
use super::provider_tap::{TapConfig, tap_config_for_delivery};
use crate::app::AppState;
use crate::store::StoreError;

/// What [`record_expected`] did with a provider's copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedOutcome {
    /// A new tracked event: the app's receipt is now due within the grace.
    Created,
    /// This event id's copy was already recorded (a redelivery, or the tap
    /// and the reconciler both saw it): recorded on the timeline only.
    Duplicate,
    /// The app had already reported the event (receipt or result first,
    /// the normal case): the copy is recorded, nothing opens.
    AlreadyReceived,
    /// Another event id of the same change (same fingerprint) is already
    /// tracked: recorded on that event's timeline, nothing new tracked.
    LinkedByFingerprint,
    /// The project does not track this event type: nothing was stored.
    NotTracked,
}

impl ExpectedOutcome {
    /// The word for it on the wire (`created`, `duplicate`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ExpectedOutcome::Created => "created",
            ExpectedOutcome::Duplicate => "duplicate",
            ExpectedOutcome::AlreadyReceived => "already_received",
            ExpectedOutcome::LinkedByFingerprint => "linked_by_fingerprint",
            ExpectedOutcome::NotTracked => "not_tracked",
        }
    }
}

/// The copy the state machine keeps of a verified provider event.
pub fn provider_copy(reference: &EventReference, learned_via: LearnedVia) -> ProviderCopy {
    ProviderCopy {
        provider: reference.provider,
        event_id: reference.event_id.clone(),
        event_type: reference.event_type.clone(),
        object_id: reference.object_id.clone(),
        subject: reference.subject.clone(),
        amount: reference.amount,
        currency: reference.currency.clone(),
        livemode: reference.livemode,
        created: reference.occurred_at,
        learned_via,
        fingerprint: Some(reference.fingerprint.clone()).filter(|f| !f.is_empty()),
    }
}

/// How many times a copy that lost the race for its fingerprint looks the
/// winner up again.
const FINGERPRINT_RETRIES: usize = 3;

/// Records the provider's own copy of an event for `project_id`: creates
/// the tracked event (awaiting the app's receipt for the project's receipt
/// grace), records the copy on an event the app already reported, or links
/// it to the event already tracking the same change. Answers once the
/// write is durable. Event types the project does not track are ignored
/// ([`ExpectedOutcome::NotTracked`]).
pub async fn record_expected(
    state: &AppState,
    project_id: &str,
    reference: &EventReference,
    learned_via: LearnedVia,
) -> Result<ExpectedOutcome, ServiceError> {
    let config = tap_config_for_delivery(state, project_id)
        .await?
        .ok_or(ServiceError::NotFound("project"))?;
    record_expected_with(state, project_id, &config, reference, learned_via).await
}

/// [`record_expected`] with the project's tap settings already in hand
/// (the tap read them to check the delivery's signature).
pub async fn record_expected_with(
    state: &AppState,
    project_id: &str,
    config: &TapConfig,
    reference: &EventReference,
    learned_via: LearnedVia,
) -> Result<ExpectedOutcome, ServiceError> {
    if !config.tracks(reference.provider, &reference.event_type) {
        return Ok(ExpectedOutcome::NotTracked);
    }
    let grace = config.grace_for(&reference.event_type);
    let copy = provider_copy(reference, learned_via);
    let own_key = EventKey {
        provider: reference.provider,
        event_id: reference.event_id.clone(),
    };
    let actor = Actor::System(
        match learned_via {
            LearnedVia::Tap => "provider_tap",
            LearnedVia::Reconciler => "reconciler",
        }
        .to_owned(),
    );
    let store = state.store();
    for attempt in 0..=FINGERPRINT_RETRIES {
        // First try the copy's own event: almost every copy is the first of
        // its change, and then no read is needed. Only when the store says
        // another event holds the fingerprint is that event looked up and
        // the copy linked to it.
        let linked = match &copy.fingerprint {
            Some(_) if attempt == 0 => None,
            Some(fingerprint) => store
                .event_by_fingerprint(project_id, reference.provider, fingerprint)
                .await?
                .filter(|key| *key != own_key),
            None => None,
        };
        let key = linked.clone().unwrap_or_else(|| own_key.clone());
        let command = Command::Expected {
            copy: copy.clone(),
            receipt_grace_seconds: grace,
        };
        let ctx = state.context(actor.clone());
        match store.apply(project_id, &key, command, ctx).await {
            Ok(applied) => {
                state.after_transition(&applied.transition.effects);
                return Ok(match (linked, applied.transition.outcome) {
                    (Some(_), _) => ExpectedOutcome::LinkedByFingerprint,
                    (None, Outcome::Created) => ExpectedOutcome::Created,
                    (None, Outcome::Duplicate | Outcome::Unchanged) => ExpectedOutcome::Duplicate,
                    (None, Outcome::Updated) => ExpectedOutcome::AlreadyReceived,
                });
            }
            // Another copy of the same change was stored meanwhile: link to it.
            Err(StoreError::FingerprintTaken) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ServiceError::Internal(
        "the provider copy's fingerprint kept changing hands; retry".into(),
    ))
}
