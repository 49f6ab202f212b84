//! The `sendpromptly` binary.
fn main() {}
