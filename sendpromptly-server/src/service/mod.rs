//! The service layer: every operation the API, the console and the CLI
//! share (reprocess, resolve, proof links, project settings, signing-secret
//! rotation, test alerts, reprocess batches, incident and event look-ups).
//!
//! Who may call it: the front ends ([`crate::api`], [`crate::console`],
//! [`crate::cli`]) and the background work. It calls down only, into
//! [`crate::store`], [`crate::app`] and `sendpromptly-core`; it never
//! names a front end. Every operation returns a [`ServiceError`], which each
//! front end turns into its own words in one place: the API in
//! [`crate::error`] (`From<ServiceError> for ApiError`), the console in
//! `console::error`, the CLI in [`crate::cli::CliError`].

pub mod audit;
pub mod batches;
pub mod chain;
pub mod error;
pub mod events;
pub mod expected;
pub mod export;
pub mod incidents;
pub mod keys;
pub mod project;
pub mod proof;
pub mod provider_tap;
pub mod stats;
pub mod users;

pub use error::{ServiceError, ServiceResult};
