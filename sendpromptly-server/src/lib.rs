//! The SendPromptly server.
#![forbid(unsafe_code)]
