//! # sendpromptly-client
//!
//! The Rust SDK of SendPromptly. A payment webhook handler sends two
//! signals: a **receipt** once it has durably accepted a Stripe or Shopify
//! event, and a **result** (`success` or `failure`) once the business effect
//! is applied. SendPromptly opens an incident when a result is a failure or
//! never arrives, and sends a signed **repair callback** when someone asks
//! to reprocess it.
//!
//! ```no_run
//! use sendpromptly_client::{Client, Provider};
//!
//! # async fn run() -> Result<(), sendpromptly_client::Error> {
//! let sp = Client::from_env()?; // SENDPROMPTLY_API_KEY, SENDPROMPTLY_URL
//!
//! sp.receipt(Provider::Stripe, "evt_1Q2w3E", "invoice.paid")
//!     .subject("cus_9s8d7f")
//!     .effect("credits.add")
//!     .await?;
//!
//! match add_credits().await {
//!     Ok(()) => sp.success(Provider::Stripe, "evt_1Q2w3E").await?,
//!     Err(err) => sp.failure(Provider::Stripe, "evt_1Q2w3E", err).await?,
//! };
//! # Ok(()) }
//! # async fn add_credits() -> Result<(), String> { Ok(()) }
//! ```
//!
//! ## Safe to put in a payment handler
//!
//! - **Bounded time.** Every call runs under a [`RetryConfig`]: at most 3
//!   attempts within a 3 s total budget by default, waits included. When
//!   SendPromptly is slow or down, the call returns an [`Error`] within the
//!   budget; log it and let the handler carry on.
//! - **No duplicates.** Each POST gets one `Idempotency-Key`
//!   (`sp_idem_` + the time in ms + 80 random bits), generated per logical call and sent
//!   unchanged on every retry; the server replays the first answer.
//! - **Only sensible retries.** Connection errors, timeouts, 429 and 5xx
//!   are retried with exponential backoff and jitter, honouring
//!   `Retry-After`; other 4xx never are.
//! - **Or don't wait at all.** [`Background`] mode queues signals in a
//!   bounded in-process queue drained by a task; a full queue or an
//!   exhausted budget is logged, counted and reported, never a panic.
//!
//! ## What else is here
//!
//! - Builders filled from verified provider events: [`Client::receipt_for`]
//!   and [`Client::success_for`] / [`Client::failure_for`] take a
//!   [`stripe::StripeEvent`], a [`shopify::ShopifyDelivery`], an
//!   [`EventReference`] or a [`RepairCallback`].
//! - [`verify_repair_request`] for the repair endpoint.
//! - [`TrackExt::track`]: `success` / `failure` from how the future that
//!   applies the effect ends; with the `axum` feature, [`axum`] extractors
//!   that verify a webhook, send its receipt and hand over the typed event,
//!   and one for the repair endpoint.
//! - Dev mode (`SENDPROMPTLY_DEV=1`, see [`DevMode`]): signals are logged
//!   instead of sent, so instrumentation can go in before a server exists.
//! - The rest of the API for scripts and operations tools: events,
//!   incidents, reprocess, resolve, proof links, project settings.
//!
//! See `docs/rust.md` for a complete axum handler, the table of settings and
//! their environment variables, and the repair endpoint.
#![forbid(unsafe_code)]

mod background;
mod client;
mod config;
mod dev;
mod error;
pub mod repair;
mod signals;
mod track;
mod types;

#[cfg(feature = "axum")]
pub mod axum;

/// The core crate (domain types, verifiers), for anything not re-exported.
pub use sendpromptly_core as core;
/// Shopify webhook verification (`verify`) and [`shopify::ShopifyDelivery`].
pub use sendpromptly_core::shopify;
/// Stripe webhook verification (`construct_event`) and [`stripe::StripeEvent`].
pub use sendpromptly_core::stripe;

pub use sendpromptly_core::Timestamp;
pub use sendpromptly_core::model::{
    EventKey, EventState, IncidentKind, IncidentState, JsonObject, LearnedVia, Provider,
    ProviderCopy, Receipt, Reprocess, ReprocessStatus, Resolution, ResultSignal, ResultStatus,
    ResultSummary, TimelineEntry, TimelineKind,
};
pub use sendpromptly_core::provider_event::EventReference;

pub use background::{
    Background, BackgroundConfig, BackgroundStats, DropCallback, DropReason, DroppedSignal,
    EnqueueError, Signal,
};
pub use client::{
    Client, IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_PREFIX, REPLAYED_HEADER, REQUEST_ID_HEADER,
    new_idempotency_key,
};
pub use config::{
    ClientOptions, DevMode, ENV_API_KEY, ENV_BACKGROUND_RETRY_PREFIX, ENV_DEV, ENV_ENVIRONMENT,
    ENV_RETRY_PREFIX, ENV_URL, RetryConfig, RetryOn,
};
pub use error::{ApiError, Error, TransportError, TransportErrorKind, ValidationError};
pub use repair::{
    ErrorCategory, HeaderLookup, RepairCallback, RepairCallbackError, RepairCallbackEvent,
    verify_repair_request, verify_repair_request_at,
};
pub use signals::{EventTarget, ReceiptBuilder, ReceiptSource, ResultBuilder};
pub use track::{Reporter, TrackExt};
pub use types::{
    DailyStats, DurationStats, EventTypeStats, RepairStats, SloObjective, SloStatus, StatsFigures,
    StatsQuery, StatsReport,
};
pub use types::{
    EventDetail, EventFilter, EventList, EventSummary, EventView, Health, IncidentDetail,
    IncidentFilter, IncidentList, IncidentView, ProjectUpdate, ProjectView, ProofLinkCreated,
    ProofLinkView, ProviderTapUpdate, ProviderTapView, ReprocessBatchCounts, ReprocessBatchItem,
    ReprocessBatchPlan, ReprocessBatchRequest, ReprocessBatchView, ReprocessResponse,
    ReprocessView, ResolveResponse, ResponseMeta, RotatedSecret, SignalResponse, SigningSecretView,
    WireEnum,
};

/// The current time as a [`Timestamp`] (the core crate never reads the
/// clock; pass this to its verifiers).
///
/// ```
/// assert!(sendpromptly_client::now().unix_seconds() > 1_700_000_000);
/// ```
pub fn now() -> Timestamp {
    client::now()
}
