//! # sendpromptly-server
//!
//! The SendPromptly service behind the `sendpromptly` binary: the HTTP API of
//! the contract, the deadline sweeper, the repair-callback dispatcher, proof
//! links and operations endpoints, on embedded SQLite by default.
#![forbid(unsafe_code)]

pub mod store;
