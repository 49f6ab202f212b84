//! Fault injection for tests: the failpoints (the `fail` crate) placed at
//! each I/O step, compiled in only with the `failpoints` feature and
//! configured from the `FAILPOINTS` environment variable when the binary
//! starts, e.g. `FAILPOINTS='group.after_commit=10%return;sweeper.pass=5%panic'`.
//!
//! Every failpoint takes the `fail` crate's actions (`return`, `panic`,
//! `sleep(ms)`, `N%`, `N*`); a `return` makes the step fail as its I/O
//! would (an error it already handles), and `return(exit)` ends the process
//! on the spot, without any shutdown: a crash at that step. The names, in
//! the order a signal meets them:
//!
//! | failpoint | where |
//! | --- | --- |
//! | `group.before_run` | group commit: a group taken, before its transaction |
//! | `group.after_commit` | group commit: committed, before the callers hear back |
//! | `sweeper.pass` | the sweeper, before claiming due deadlines |
//! | `sweeper.after_sweep` | the sweeper, after a committed pass, before its effects |
//! | `pacer.pass` | the batch pacer, before a pacing pass |
//! | `rollups.mid_fold` | the analytics fold (PostgreSQL): deltas moved, its transaction not committed |
//! | `dispatcher.before_send` | a repair callback claimed, before it is sent |
//! | `dispatcher.after_send` | a callback sent, before its attempt is recorded |
//! | `alerts.before_send` | an alert claimed, before it is sent |
//! | `alerts.after_send` | an alert sent, before its attempt is recorded |

use crate::store::StoreError;

/// The exit status of a `return(exit)` failpoint.
pub const EXIT_STATUS: i32 = 86;

/// Reads `FAILPOINTS`; keep the returned scenario alive for the whole run.
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Ends the process at once when the failpoint's argument is `exit`.
pub fn exit_if_asked(name: &str, arg: Option<&str>) {
    if arg == Some("exit") {
        eprintln!("failpoint {name}: exiting");
        std::process::exit(EXIT_STATUS);
    }
}

/// What a `return` failpoint in a store call fails with (or exits).
pub fn store_error(name: &str, arg: Option<String>) -> StoreError {
    exit_if_asked(name, arg.as_deref());
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
        "injected fault at failpoint {name}"
    ))))
}

/// A `return` failpoint where the step has no error to return: exits if
/// asked, else the step is skipped.
pub fn skip(name: &str, arg: Option<String>) {
    exit_if_asked(name, arg.as_deref());
    tracing::warn!(failpoint = name, "injected fault: step skipped");
}
