//! What `/healthz` reports: whether the server can really do its job.
//!
//! - **writer**: a write transaction commits within
//!   `health_writer_bound` (probed every second by [`run`]), and the
//!   group-commit writer is not stuck on one group or a queue it does not
//!   take from ([`crate::store::Store::writer_stall`]);
//! - **database**: a pooled read answers within the same bound (a pool whose
//!   connections are all held fails it);
//! - **sweeper**, **dispatcher**, **alerts**, **pacer**, **reconciler**,
//!   **rollups** (the analytics fold, [`crate::rollup_fold`]): each background loop
//!   completed a pass (with the database answering) within
//!   `health_loop_bound`.
//!
//! A writer that stays stuck past `exit_after_writer_stall` stops the
//! process with a non-zero status ([`Watchdog::fatal`]), so a supervisor
//! restarts it instead of it sitting silently alive.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::app::AppState;

/// The background loops that report their passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Loop {
    /// The deadline sweeper.
    Sweeper,
    /// The repair-callback dispatcher.
    Dispatcher,
    /// The alert sender.
    Alerts,
    /// The reprocess-batch pacer.
    Pacer,
    /// The Stripe reconciler.
    Reconciler,
    /// The analytics fold.
    Rollups,
}

impl Loop {
    const ALL: [Loop; 6] = [
        Loop::Sweeper,
        Loop::Dispatcher,
        Loop::Alerts,
        Loop::Pacer,
        Loop::Reconciler,
        Loop::Rollups,
    ];

    /// The check's name in `/healthz` and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Loop::Sweeper => "sweeper",
            Loop::Dispatcher => "dispatcher",
            Loop::Alerts => "alerts",
            Loop::Pacer => "pacer",
            Loop::Reconciler => "reconciler",
            Loop::Rollups => "rollups",
        }
    }
}

/// One failed check: its name and what is wrong.
pub type Problem = (&'static str, String);

/// Health state shared by the loops, the watchdog and `/healthz`.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Per loop: milliseconds since `started` of its last completed pass.
    passes: [AtomicU64; 6],
    /// What the last probe found (empty: healthy).
    probed: Mutex<Vec<Problem>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: Instant::now(),
            passes: Default::default(),
            probed: Mutex::new(Vec::new()),
        }
    }
}

impl Health {
    fn since_start(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// Records that `which` completed a pass now.
    pub fn pass(&self, which: Loop) {
        let now = self.since_start(Instant::now());
        self.passes[which as usize].store(now, Ordering::Relaxed);
    }

    /// How long ago `which` completed a pass (since the start if never).
    fn since_pass(&self, which: Loop, now: Instant) -> Duration {
        let last = self.passes[which as usize].load(Ordering::Relaxed);
        Duration::from_millis(self.since_start(now).saturating_sub(last))
    }

    /// Every failing check now: the last probe's findings and the loops
    /// that are late.
    pub fn problems(&self, loop_bound: Duration) -> Vec<Problem> {
        let mut problems = self.probed.lock().map(|p| p.clone()).unwrap_or_default();
        let now = Instant::now();
        for which in Loop::ALL {
            let late = self.since_pass(which, now);
            if late > loop_bound {
                problems.push((
                    which.name(),
                    format!(
                        "no completed pass for {} s (bound {} s)",
                        late.as_secs(),
                        loop_bound.as_secs()
                    ),
                ));
            }
        }
        problems
    }

    /// Each check's name and whether it passes, for `/metrics`.
    pub fn checks(&self, loop_bound: Duration) -> BTreeMap<&'static str, bool> {
        let mut checks: BTreeMap<&'static str, bool> = ["writer", "database"]
            .into_iter()
            .chain(Loop::ALL.map(Loop::name))
            .map(|name| (name, true))
            .collect();
        for (name, _) in self.problems(loop_bound) {
            checks.insert(name, false);
        }
        checks
    }
}

/// The probing task: every `health_interval`, checks the writer and the
/// pool; stops the server (through `fatal`) when the writer stays stuck.
pub struct Watchdog {
    /// Set to a reason when the server must exit non-zero.
    pub fatal: watch::Sender<Option<String>>,
}

/// A probe running on a task of its own (the watchdog never cancels a
/// database call half-way; a probe still running is waited for, not
/// repeated).
struct Probe {
    name: &'static str,
    running: Option<(
        tokio::task::JoinHandle<crate::store::StoreResult<()>>,
        Instant,
    )>,
}

impl Probe {
    fn new(name: &'static str) -> Probe {
        Probe {
            name,
            running: None,
        }
    }

    /// Starts `call` unless the last one is still running, waits for it up
    /// to `bound` from its start, and says what is wrong, if anything.
    async fn check<F>(&mut self, bound: Duration, what: &str, call: F) -> Option<Problem>
    where
        F: std::future::Future<Output = crate::store::StoreResult<()>> + Send + 'static,
    {
        let (handle, started) = self
            .running
            .get_or_insert_with(|| (tokio::spawn(call), Instant::now()));
        let left = bound.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, &mut *handle).await {
            Ok(answer) => {
                self.running = None;
                match answer {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some((self.name, format!("{what} failed: {err}"))),
                    Err(err) => Some((self.name, format!("{what} failed: {err}"))),
                }
            }
            Err(_) => Some((
                self.name,
                format!(
                    "{what} has not answered for {} s (bound {} s)",
                    started.elapsed().as_secs(),
                    bound.as_secs_f64()
                ),
            )),
        }
    }
}

/// One probe of the writer and the pool.
async fn probe(state: &AppState, writer: &mut Probe, database: &mut Probe) -> Vec<Problem> {
    let bound = state.config().health_writer_bound;
    let mut problems = Vec::new();
    let on = state.clone();
    problems.extend(
        writer
            .check(bound, "a write transaction", async move {
                on.store().probe_write().await
            })
            .await,
    );
    if let Some(stalled) = state.store().writer_stall()
        && stalled > bound
    {
        problems.push((
            "writer",
            format!(
                "the group-commit writer has made no progress for {} s",
                stalled.as_secs()
            ),
        ));
    }
    let on = state.clone();
    problems.extend(
        database
            .check(
                bound,
                "a pooled read",
                async move { on.store().ping().await },
            )
            .await,
    );
    problems
}

/// Runs the watchdog until `shutdown` turns true.
pub async fn run(state: AppState, watchdog: Watchdog, mut shutdown: watch::Receiver<bool>) {
    let interval = state.config().health_interval;
    let mut writer_stuck_since: Option<Instant> = None;
    let (mut writer, mut database) = (Probe::new("writer"), Probe::new("database"));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let problems = probe(&state, &mut writer, &mut database).await;
        let writer_stuck = problems.iter().any(|(name, _)| *name == "writer");
        for (name, why) in &problems {
            tracing::warn!(check = name, "unhealthy: {why}");
        }
        if let Ok(mut probed) = state.health().probed.lock() {
            *probed = problems;
        }
        let now = Instant::now();
        writer_stuck_since = if writer_stuck {
            Some(writer_stuck_since.unwrap_or(now))
        } else {
            None
        };
        if let (Some(since), Some(limit)) =
            (writer_stuck_since, state.config().exit_after_writer_stall)
            && now.duration_since(since) >= limit
        {
            let why = format!(
                "the database writer has been stuck for {} s (--exit-after-writer-stall-seconds): \
                 exiting so that a supervisor restarts the server",
                now.duration_since(since).as_secs()
            );
            tracing::error!("{why}");
            let _ = watchdog.fatal.send(Some(why));
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}
