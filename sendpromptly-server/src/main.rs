//! The `sendpromptly` binary: see `sendpromptly --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sendpromptly_server::cli::main()
}
