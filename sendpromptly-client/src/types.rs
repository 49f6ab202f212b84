//! The JSON shapes the API answers with, and the bodies and filters of the
//! operations calls.
//!
//! The response shapes are the server's own, from
//! [`sendpromptly_core::wire`] (one definition of the wire format); unknown
//! fields are ignored so a newer server does not break an older client.
//! Here: what only the SDK needs — the HTTP metadata of a signal call and
//! the query filters.

use sendpromptly_core::Timestamp;
use sendpromptly_core::model::{EventState, IncidentKind, IncidentState, Provider};
use serde::{Deserialize, Serialize};

pub use sendpromptly_core::wire::{
    EventDetail, EventList, EventSummary, EventView, Health, IncidentDetail, IncidentList,
    IncidentView, ProjectUpdate, ProjectView, ProofLinkCreated, ProofLinkView,
    ReprocessBatchCounts, ReprocessBatchItem, ReprocessBatchPlan, ReprocessBatchRequest,
    ReprocessBatchView, ReprocessResponse, ResolveResponse, RotatedSecret, SigningSecretView,
};

/// How a signal call went at the HTTP level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The HTTP status: 201 for a new event's receipt, 200 otherwise.
    pub status: u16,
    /// The server's `Request-Id`.
    pub request_id: Option<String>,
    /// Whether the server replayed an earlier answer to the same
    /// `Idempotency-Key` (`Idempotent-Replayed: true`): an earlier attempt of
    /// this call was recorded but its answer was lost.
    pub replayed: bool,
    /// How many attempts the call made.
    pub attempts: u32,
    /// The `Idempotency-Key` sent (the same on every attempt).
    pub idempotency_key: Option<String>,
}

/// Answer of a receipt or result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalResponse {
    /// The event after the signal.
    pub event: EventView,
    /// Its incident, if any.
    pub incident: Option<IncidentView>,
    /// Status, request id, replay and attempts (not part of the JSON).
    #[serde(skip)]
    pub meta: ResponseMeta,
}

impl SignalResponse {
    /// Whether this receipt created the event (HTTP 201) rather than
    /// recording a duplicate delivery of a known one (HTTP 200).
    pub fn created(&self) -> bool {
        self.meta.status == 201
    }
}

/// Filters of [`Client::list_incidents`](crate::Client::list_incidents);
/// `None` means "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentFilter {
    /// `open`, `reprocessing` or `resolved`.
    pub state: Option<IncidentState>,
    /// `missing_result` or `failed_result`.
    pub kind: Option<IncidentKind>,
    /// The provider.
    pub provider: Option<Provider>,
    /// The event type, e.g. `invoice.paid`.
    pub event_type: Option<String>,
    /// The customer or account.
    pub subject: Option<String>,
    /// Only incidents opened after this time.
    pub opened_after: Option<Timestamp>,
    /// Only incidents opened before this time.
    pub opened_before: Option<Timestamp>,
    /// Page size, 1–100 (server default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl IncidentFilter {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        push(
            &mut query,
            "state",
            self.state.map(|s| s.as_str().to_owned()),
        );
        push(&mut query, "kind", self.kind.map(|k| k.as_str().to_owned()));
        push(
            &mut query,
            "provider",
            self.provider.map(|p| p.as_str().to_owned()),
        );
        push(&mut query, "event_type", self.event_type.clone());
        push(&mut query, "subject", self.subject.clone());
        push(
            &mut query,
            "opened_after",
            self.opened_after.map(Timestamp::to_rfc3339),
        );
        push(
            &mut query,
            "opened_before",
            self.opened_before.map(Timestamp::to_rfc3339),
        );
        push(&mut query, "limit", self.limit.map(|l| l.to_string()));
        push(&mut query, "cursor", self.cursor.clone());
        query
    }
}

/// Filters of [`Client::search_events`](crate::Client::search_events);
/// `None` means "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Only this customer or account (support look-ups).
    pub subject: Option<String>,
    /// Only this state.
    pub state: Option<EventState>,
    /// Only this event id (any provider).
    pub event_id: Option<String>,
    /// Page size, 1–100 (server default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl EventFilter {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        push(&mut query, "subject", self.subject.clone());
        push(
            &mut query,
            "state",
            self.state.map(|s| s.as_str().to_owned()),
        );
        push(&mut query, "event_id", self.event_id.clone());
        push(&mut query, "limit", self.limit.map(|l| l.to_string()));
        push(&mut query, "cursor", self.cursor.clone());
        query
    }
}

fn push(query: &mut Vec<(&'static str, String)>, name: &'static str, value: Option<String>) {
    if let Some(value) = value {
        query.push((name, value));
    }
}
