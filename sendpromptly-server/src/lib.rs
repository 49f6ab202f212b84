//! # sendpromptly-server
//!
//! The SendPromptly service behind the `sendpromptly` binary: the HTTP API of
//! the contract, the deadline sweeper, the repair-callback dispatcher, proof
//! links and operations endpoints, on embedded SQLite by default.
//!
//! Layers, each calling only the ones below it:
//! - Front ends: [`api`] (the HTTP routes; [`error`] maps every error to
//!   HTTP in one place; [`auth`] authenticates them), [`console`] (the
//!   server-rendered web console at `/`) and [`cli`] (the command line).
//!   [`router`] assembles the API and the console into one router; neither
//!   front end names the other.
//! - [`service`]: the operations the front ends share, returning a
//!   [`service::ServiceError`] each front end words its own way.
//! - [`store`]: the storage trait and its SQLite and PostgreSQL backends.
//! - Background work: [`sweeper`], [`dispatcher`] and [`alerts`] (their
//!   claim → send loop is [`outbox`]'s), [`pacer`], [`reconcile`] (the
//!   Stripe reconciler); [`health`]: what `/healthz` reports, and the
//!   watchdog.
//! - [`app`]: the state every request and task shares; [`server`]: start
//!   and stop.
#![forbid(unsafe_code)]

/// A failpoint (see `faults`, `failpoints` feature only) at a step with no
/// error to return: `return` skips the rest of the step, `return(exit)`
/// ends the process.
macro_rules! skip_point {
    ($name:literal) => {
        fail::fail_point!($name, |arg| $crate::faults::skip($name, arg))
    };
}

/// A failpoint (see `faults`) at a step that returns a `StoreResult`:
/// `return` fails it with a storage error, `return(exit)` ends the process.
macro_rules! error_point {
    ($name:literal) => {
        fail::fail_point!($name, |arg| Err($crate::faults::store_error($name, arg)))
    };
}

pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod dispatcher;
pub mod email;
pub mod error;
#[cfg(feature = "failpoints")]
pub mod faults;
pub mod health;
pub mod links;
pub mod listen;
pub mod metrics;
pub mod metrics_histograms;
pub mod otlp;
pub mod outbound;
pub mod outbox;
pub mod pacer;
pub mod provision;
pub mod ratelimit;
pub mod reconcile;
pub mod render;
pub mod retention;
pub mod rollup_fold;
pub mod router;
pub mod secrets;
pub mod server;
pub mod service;
pub mod signing_cache;
pub mod slo_burn;
pub mod store;
pub mod sweeper;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod ttl_cache;
pub mod views;
