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
//! - [`standard_webhooks`]: `whsec_` secrets, signing and verification of
//!   repair callbacks (the Standard Webhooks scheme).
//! - [`callback`]: the repair callback payload and `verify_repair_request`.
//! - [`stripe`] and [`shopify`]: provider signature verification and event
//!   parsing into one normalised [`provider_event::EventReference`].
#![doc = include_str!("../../docs/state-diagram.md")]
#![forbid(unsafe_code)]

pub mod callback;
pub mod headers;
pub mod ids;
pub mod machine;
pub mod model;
pub mod provider_event;
pub mod retry;
pub mod shopify;
pub mod standard_webhooks;
pub mod stripe;
pub mod time;
pub mod validation;

pub use time::Timestamp;
