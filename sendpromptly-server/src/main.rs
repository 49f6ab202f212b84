//! The `sendpromptly` binary: see `sendpromptly --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // Failpoints from `FAILPOINTS` (fault-injection builds only).
    #[cfg(feature = "failpoints")]
    let _failpoints = sendpromptly_server::faults::setup();
    sendpromptly_server::cli::main()
}
