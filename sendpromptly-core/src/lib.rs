//! # sendpromptly-core
//!
//! The pure heart of SendPromptly. No I/O and no clock reads: every function
//! that needs the time takes `now` as an argument.
//!
//! - [`model`]: the domain types of the public contract (events, receipts,
//!   results, incidents, reprocesses, timeline entries).
//! - [`machine`]: the receipt/result/incident state machine as pure
//!   transitions `(record, command, now) -> (record, timeline entries)`.
//! - [`retry`]: the repair-callback retry schedule.
//! - [`alert_plan`] and [`batch`]: the alerts a transition raises and how
//!   they group into digests; a reprocess batch's pacing, commands and item
//!   states (the rules the server's store applies).
//! - [`standard_webhooks`]: `whsec_` secrets, signing and verification of
//!   repair callbacks (the Standard Webhooks scheme).
//! - [`callback`]: the repair callback payload and `verify_repair_request`.
//! - [`stripe`] and [`shopify`]: provider signature verification and event
//!   parsing into one normalised [`provider_event::EventReference`].
//! - [`chain`]: the tamper-evident timeline's hash chain (encoding `v1`).
//! - [`export`]: the incident export's formats (JSON Lines, CSV columns).
//! - [`wire`]: the HTTP API's JSON shapes, shared by the server and the SDKs.
//! - [`roles`] and [`totp`]: console roles per project and what each may do;
//!   TOTP codes (RFC 6238) for console two-factor sign-in.
//!
//! ## Example
//!
//! A receipt starts the clock; a tick after the deadline opens an incident.
//!
//! ```
//! use sendpromptly_core::Timestamp;
//! use sendpromptly_core::machine::{apply, Command, Context};
//! use sendpromptly_core::model::{Actor, IncidentKind, Provider, Receipt};
//!
//! let t0 = Timestamp::parse_rfc3339("2026-11-22T10:00:00Z").unwrap();
//! let ctx = |now| Context {
//!     now,
//!     actor: Actor::System("example".into()),
//!     new_incident_id: "inc_example".into(),
//! };
//! let receipt = Receipt {
//!     traceparent: None,
//!     tracestate: None,
//!     provider: Provider::Stripe,
//!     event_id: "evt_1".into(),
//!     event_type: "invoice.paid".into(),
//!     subject: Some("cus_1".into()),
//!     effect: Some("credits.add".into()),
//!     deadline_seconds: None,
//!     metadata: None,
//!     occurred_at: None,
//! };
//! let received = apply(None, Command::Receipt { receipt, deadline_seconds: 1800 }, &ctx(t0)).unwrap();
//! let overdue = apply(Some(received.record), Command::Tick, &ctx(t0.plus_seconds(1800))).unwrap();
//! let incident = overdue.record.incident.expect("the deadline passed");
//! assert_eq!(incident.kind, IncidentKind::MissingResult);
//! ```
#![doc = include_str!("../../docs/state-diagram.md")]
#![forbid(unsafe_code)]

pub mod alert;
pub mod alert_plan;
pub mod batch;
pub mod callback;
pub mod chain;
pub mod export;
pub mod headers;
pub mod ids;
pub mod machine;
pub mod model;
pub mod provider_event;
pub mod retry;
pub mod roles;
pub mod scope;
pub mod shopify;
pub mod standard_webhooks;
pub mod stats;
pub mod stripe;
pub mod time;
pub mod totp;
pub mod trace;
pub mod validation;
pub mod wire;

pub use time::Timestamp;
