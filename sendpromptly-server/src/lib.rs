//! # sendpromptly-server
//!
//! The SendPromptly service behind the `sendpromptly` binary: the HTTP API of
//! the contract, the deadline sweeper, the repair-callback dispatcher, proof
//! links and operations endpoints, on embedded SQLite by default.
//!
//! - [`store`]: the storage trait and its SQLite implementation.
//! - [`api`]: the HTTP routes; [`error`] maps every error to HTTP in one place.
//! - [`console`]: the server-rendered web console at `/`.
//! - [`sweeper`], [`dispatcher`] and [`alerts`]: the background work;
//!   [`health`]: what `/healthz` reports, and the watchdog.
//! - [`server`]: start and stop; [`cli`]: the command line.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod api;
pub mod app;
pub mod cli;
pub mod cli_reprocess;
pub mod clock;
pub mod config;
pub mod console;
pub mod dispatcher;
pub mod email;
pub mod error;
pub mod health;
pub mod listen;
pub mod metrics;
pub mod outbound;
pub mod pacer;
pub mod provision;
pub mod ratelimit;
pub mod render;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod store;
pub mod sweeper;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod views;
