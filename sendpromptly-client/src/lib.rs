//! The SendPromptly Rust SDK (built in its own issue).
#![forbid(unsafe_code)]
pub use sendpromptly_core as core;
