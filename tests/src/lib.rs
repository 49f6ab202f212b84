//! Helpers shared by the cross-crate end-to-end tests.
#![forbid(unsafe_code)]
