//! The JSON shapes the API answers with, and the bodies and filters of the
//! operations calls.
//!
//! The response shapes are the server's own, from
//! [`sendpromptly_core::wire`] (one definition of the wire format); unknown
//! fields are ignored so a newer server does not break an older client.
//! Here: what only the SDK needs — the HTTP metadata of a signal call and
//! the query filters.

use serde::{Deserialize, Serialize};

pub use sendpromptly_core::wire::{
    EventDetail, EventList, EventSummary, EventView, Health, IncidentDetail, IncidentList,
    IncidentView, ProjectUpdate, ProjectView, ProofLinkCreated, ProofLinkView, ProviderTapUpdate,
    ProviderTapView, ReprocessBatchCounts, ReprocessBatchItem, ReprocessBatchPlan,
    ReprocessBatchRequest, ReprocessBatchView, ReprocessResponse, ReprocessView, ResolveResponse,
    RotatedSecret, SigningSecretView, WireEnum,
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

pub use sendpromptly_core::wire::{
    DailyStats, DurationStats, EventTypeStats, RepairStats, SloObjective, SloStatus, StatsFigures,
    StatsQuery, StatsReport,
};
/// The filters of [`Client::list_incidents`](crate::Client::list_incidents)
/// and [`Client::search_events`](crate::Client::search_events) are the
/// contract's own (`sendpromptly_core::wire`), as the server parses them;
/// `None` means "any"; `limit` is 1–100 (the server refuses more; this
/// client sends what it is given, the bindings check it first).
pub use sendpromptly_core::wire::{EventFilter, IncidentFilter};
