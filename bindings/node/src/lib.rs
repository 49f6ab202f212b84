//! Node.js bindings of the SendPromptly SDK (npm package `sendpromptly`).
//!
//! This crate only converts: JavaScript options objects into the Rust
//! client's builders, its answers and errors back into JavaScript values.
//! Retries, the time budget, idempotency keys, background delivery and
//! signature verification all come from `sendpromptly-client` and
//! `sendpromptly-core`. The package's `index.js` wraps this native module
//! with the public `SendPromptly` class, the `SendPromptlyError` subclasses
//! and body/header normalisation.
//!
//! Errors cross the boundary as a JavaScript `Error` whose message is
//! [`errors::MARKER`] followed by a JSON description (see [`errors`]);
//! `index.js` turns it into the matching `SendPromptlyError` subclass.
// napi's macros register the exported functions only outside `cfg(test)`;
// a test build (e.g. `cargo clippy --all-targets`) would call them unused.
#![cfg_attr(test, allow(dead_code))]
#![deny(unsafe_code)]

mod background;
mod client;
mod convert;
mod errors;
mod signals;
mod verify;
