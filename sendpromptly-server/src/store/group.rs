//! Group commit for [`Store::apply`](super::Store::apply) and
//! [`Store::apply_to_incident`](super::Store::apply_to_incident), the
//! receipt/result hot path, shared by both engines.
//!
//! Callers queue their command to one writer task per store
//! ([`GroupWriter`]). The task takes everything queued at that moment (up to
//! [`GROUP_MAX`], never waiting for more), hands it to the engine as one
//! transaction ([`GroupEngine::run_group`]) and answers every caller only
//! after the commit, so a group shares one durable commit (one fsync).
//!
//! An engine first runs a group *at once* ([`run_at_once`]): one query loads
//! every event the group names, the state machine runs in memory (each
//! command seeing the ones before it), and a few set-based statements write
//! the outcome ([`write_rows`], [`timeline_rows`]: JSON arrays of rows the
//! SQL unpacks), so a group costs about the same number of statements
//! whatever its size. If a write of that attempt fails (say one command's
//! uniqueness conflict), the engine rolls it back and runs the commands one
//! by one, so that only the failing command fails.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sendpromptly_core::Timestamp;
use sendpromptly_core::chain;
use sendpromptly_core::machine::{
    self, Command, Context, EventRecord, Transition, TransitionError,
};
use sendpromptly_core::model::{EventKey, ProviderCopy};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::codec::{encode_json, encode_record, insert_error, is_fingerprint_violation, ms};
pub(super) use super::idempotency::{
    IDEMPOTENCY_TTL_MILLIS, JobKey, KeyRow, KeyRows, KeyVerdict, StoredKey, key_row, key_verdict,
    stored_status,
};
use super::{
    Applied, IdempotentOutcome, IdempotentRequest, StoreError, StoreResult, StoredResponse,
};
use crate::secrets::Keyring;

/// Most commands the group-commit writer runs in one transaction.
pub const GROUP_MAX: usize = 256;
/// Most commands waiting for the group-commit writer (callers beyond wait to queue).
pub(super) const GROUP_QUEUE: usize = 4096;

/// What the group writer has done since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Groups taken off the queue (one transaction each).
    pub transactions: u64,
    /// Commands in those groups.
    pub commands: u64,
    /// Groups whose transaction committed.
    pub commits: u64,
    /// Groups whose all-at-once writes failed (say one command's uniqueness
    /// conflict) and were re-run one command at a time.
    pub fallbacks: u64,
    /// Microseconds the writer tasks spent running groups (a writer busy
    /// all the time adds a million per second).
    pub busy_micros: u64,
}

/// The live counters behind [`GroupCommitStats`].
#[derive(Debug)]
pub(super) struct GroupCounters {
    transactions: AtomicU64,
    commands: AtomicU64,
    commits: AtomicU64,
    fallbacks: AtomicU64,
    busy_micros: AtomicU64,
    /// The writer's start, the origin of the two times below.
    epoch: std::time::Instant,
    /// Per writer task: milliseconds since `epoch` when its running group
    /// started; `u64::MAX` when it runs none.
    running_since: [AtomicU64; MAX_WRITERS],
}

/// The most writer tasks a [`GroupWriter`] runs.
pub(super) const MAX_WRITERS: usize = 8;

impl Default for GroupCounters {
    fn default() -> Self {
        GroupCounters {
            transactions: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            running_since: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
        }
    }
}

impl GroupCounters {
    /// Counts a group that was re-run one command at a time.
    pub(super) fn fell_back(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    fn millis_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

/// The event a queued command is for.
#[derive(Debug)]
pub(super) enum GroupTarget {
    /// `apply`: by key (receipts and results create it).
    Event(EventKey),
    /// `apply_to_incident`: the event of this incident.
    Incident(String),
}

/// One queued `apply` or `apply_to_incident`.
#[derive(Debug)]
pub(super) struct GroupJob {
    pub project_id: String,
    /// The API key to check in the transaction ([`super::Store::apply_with_key`]).
    pub api_key: Option<String>,
    pub target: GroupTarget,
    pub command: Command,
    pub ctx: Context,
    /// The idempotency key remembered in the same transaction
    /// ([`super::Store::apply_idempotent`]).
    pub idempotency: Option<JobKey>,
}

impl GroupJob {
    /// An `apply_idempotent` (its response sealed with `keyring`, which a
    /// store must have).
    pub(super) fn idempotent(
        project_id: &str,
        api_key: &str,
        key: &EventKey,
        command: Command,
        ctx: Context,
        request: IdempotentRequest,
        keyring: Option<&Arc<Keyring>>,
    ) -> StoreResult<Self> {
        let keyring = keyring
            .cloned()
            .ok_or(StoreError::Secret(crate::secrets::SecretError::NoKeyring))?;
        let mut job = GroupJob::for_event(project_id, Some(api_key), key, command, ctx);
        job.idempotency = Some(JobKey { request, keyring });
        Ok(job)
    }
}

impl GroupJob {
    /// An `apply`, or with `api_key` an `apply_with_key`.
    pub(super) fn for_event(
        project_id: &str,
        api_key: Option<&str>,
        key: &EventKey,
        command: Command,
        ctx: Context,
    ) -> Self {
        GroupJob {
            project_id: project_id.to_owned(),
            api_key: api_key.map(str::to_owned),
            target: GroupTarget::Event(key.clone()),
            command,
            ctx,
            idempotency: None,
        }
    }

    /// An `apply_to_incident`.
    pub(super) fn for_incident(
        project_id: &str,
        incident_id: &str,
        command: Command,
        ctx: Context,
    ) -> Self {
        GroupJob {
            project_id: project_id.to_owned(),
            api_key: None,
            target: GroupTarget::Incident(incident_id.to_owned()),
            command,
            ctx,
            idempotency: None,
        }
    }
}

/// What a job answers: its command's outcome (or failure).
pub(super) type JobResult = StoreResult<IdempotentOutcome>;

#[derive(Debug)]
struct GroupRequest {
    job: GroupJob,
    reply: oneshot::Sender<JobResult>,
}

/// How an engine runs one group.
#[async_trait]
pub(super) trait GroupEngine: Send + Sync + 'static {
    /// Runs `jobs` as one transaction; returns each job's result (in order)
    /// and whether the transaction committed. A result is `Ok` only if the
    /// commit succeeded.
    async fn run_group(&self, jobs: Vec<GroupJob>, stats: &GroupCounters)
    -> (Vec<JobResult>, bool);
}

/// The queue to a store's group-commit writer task.
#[derive(Clone, Debug)]
pub(super) struct GroupWriter {
    queue: mpsc::Sender<GroupRequest>,
    stats: Arc<GroupCounters>,
}

impl GroupWriter {
    /// Spawns `writers` writer tasks (at least one) on the current runtime,
    /// taking groups off one queue; they end when the last clone of the
    /// writer (of the store) is dropped. More than one lets groups overlap
    /// (their commits' flushes), for engines with several writer
    /// connections.
    pub(super) fn start(engine: impl GroupEngine, writers: usize) -> GroupWriter {
        let (queue, requests) = mpsc::channel(GROUP_QUEUE);
        let stats = Arc::new(GroupCounters::default());
        let engine = Arc::new(engine);
        let requests = Arc::new(Mutex::new(requests));
        for slot in 0..writers.clamp(1, MAX_WRITERS) {
            tokio::spawn(group_writer(
                slot,
                Arc::clone(&engine),
                Arc::clone(&requests),
                Arc::clone(&stats),
            ));
        }
        GroupWriter { queue, stats }
    }

    /// The counters since the writer started.
    pub(super) fn stats(&self) -> GroupCommitStats {
        let stats = &self.stats;
        GroupCommitStats {
            transactions: stats.transactions.load(Ordering::Relaxed),
            commands: stats.commands.load(Ordering::Relaxed),
            commits: stats.commits.load(Ordering::Relaxed),
            fallbacks: stats.fallbacks.load(Ordering::Relaxed),
            busy_micros: stats.busy_micros.load(Ordering::Relaxed),
        }
    }

    /// Commands queued and not yet taken into a transaction.
    pub(super) fn queued(&self) -> usize {
        GROUP_QUEUE - self.queue.capacity()
    }

    /// How long the group running now has been running, if one is (with
    /// several writer tasks, the one that started first: a stuck writer
    /// shows even while the others commit freely). A writer task that died
    /// closes the queue instead: callers then write on their own.
    pub(super) fn stalled_for(&self) -> Option<Duration> {
        let running = self
            .stats
            .running_since
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()?;
        (running != u64::MAX)
            .then(|| Duration::from_millis(self.stats.millis_now().saturating_sub(running)))
    }

    /// Queues `job` and waits for its committed result; `Err(job)` if the
    /// writer task is gone (its runtime shut down), for the caller to run
    /// it in a transaction of its own.
    pub(super) async fn submit(&self, job: GroupJob) -> Result<JobResult, GroupJob> {
        let (reply, answer) = oneshot::channel();
        match self.queue.send(GroupRequest { job, reply }).await {
            Ok(()) => Ok(answer.await.unwrap_or_else(|_| {
                Err(group_failed(
                    "the group-commit writer stopped before answering",
                ))
            })),
            Err(mpsc::error::SendError(request)) => Err(request.job),
        }
    }
}

/// A writer task: takes what is queued now (at least one, at most
/// [`GROUP_MAX`]), runs it as one transaction, answers each caller after the
/// commit.
async fn group_writer(
    slot: usize,
    engine: Arc<impl GroupEngine>,
    requests: Arc<Mutex<mpsc::Receiver<GroupRequest>>>,
    stats: Arc<GroupCounters>,
) {
    loop {
        let mut jobs = Vec::with_capacity(GROUP_MAX);
        let mut replies = Vec::with_capacity(GROUP_MAX);
        {
            let mut requests = requests.lock().await;
            let Some(first) = requests.recv().await else {
                return;
            };
            jobs.push(first.job);
            replies.push(first.reply);
            while jobs.len() < GROUP_MAX {
                match requests.try_recv() {
                    Ok(request) => {
                        jobs.push(request.job);
                        replies.push(request.reply);
                    }
                    Err(_) => break,
                }
            }
        }
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats
            .commands
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let started_nanos = crate::otlp::now_nanos();
        stats.running_since[slot].store(stats.millis_now(), Ordering::Relaxed);
        // On a task of its own: a panic mid-group (a bug, an injected
        // fault) fails this group's callers, not the writer for good.
        let n = jobs.len();
        let run = tokio::spawn({
            let (engine, stats) = (Arc::clone(&engine), Arc::clone(&stats));
            async move { run_group(engine.as_ref(), jobs, &stats).await }
        })
        .await;
        let (results, committed) = run.unwrap_or_else(|err| {
            tracing::error!(error = %err, "a group-commit transaction panicked; its callers get an error");
            let why = "the group-commit writer failed mid-group; the write may or may not be committed";
            ((0..n).map(|_| Err(group_failed(why))).collect(), false)
        });
        stats.running_since[slot].store(u64::MAX, Ordering::Relaxed);
        let busy = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.busy_micros.fetch_add(busy, Ordering::Relaxed);
        if committed {
            stats.commits.fetch_add(1, Ordering::Relaxed);
        }
        if crate::otlp::enabled() {
            use crate::otlp::{Span, SpanKind, Value};
            let mut span =
                Span::ending_now("group commit", SpanKind::Internal, started_nanos, None)
                    .attr("sendpromptly.group.commands", Value::Int(n as i64));
            span.error = !committed;
            crate::otlp::record(span);
        }
        // Only now, after the commit: a caller whose future was dropped
        // (client gone) simply does not hear back.
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Runs one group on `engine`, between the group-commit failpoints (see
/// `faults.rs`; `failpoints` feature only): `group.before_run` fails the group before its
/// transaction, `group.after_commit` answers every caller with an error
/// after the commit (a lost acknowledgement).
async fn run_group(
    engine: &impl GroupEngine,
    jobs: Vec<GroupJob>,
    stats: &GroupCounters,
) -> (Vec<JobResult>, bool) {
    fail::fail_point!("group.before_run", |arg| {
        let why = crate::faults::store_error("group.before_run", arg).to_string();
        (
            (0..jobs.len()).map(|_| Err(group_failed(&why))).collect(),
            false,
        )
    });
    let (results, committed) = engine.run_group(jobs, stats).await;
    fail::fail_point!("group.after_commit", |arg| {
        let why = crate::faults::store_error("group.after_commit", arg).to_string();
        (
            (0..results.len())
                .map(|_| Err(group_failed(&why)))
                .collect(),
            committed,
        )
    });
    (results, committed)
}

/// An error for a command whose group transaction did not commit.
pub(super) fn group_failed(why: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
        "write not committed: {why}"
    ))))
}

/// The results of a group whose transaction did not commit: every command
/// that had succeeded now fails with `why` (a replay too: it may replay a
/// response of this very group).
pub(super) fn uncommitted(results: Vec<JobResult>, why: &str) -> Vec<JobResult> {
    results
        .into_iter()
        .map(|r| r.and_then(|_| Err(group_failed(why))))
        .collect()
}

/// The `Applied` of a job without an idempotency key.
pub(super) fn applied(result: JobResult) -> StoreResult<Applied> {
    match result? {
        IdempotentOutcome::Applied(applied) => Ok(applied),
        other => Err(StoreError::Corrupt(format!(
            "a write without an idempotency key answered {other:?}"
        ))),
    }
}

/// Refuses a transition that created an event other than the one asked for.
pub(super) fn ensure_created_as_asked(transition: &Transition, key: &EventKey) -> StoreResult<()> {
    if transition.record.provider != key.provider || transition.record.event_id != key.event_id {
        return Err(StoreError::Transition(TransitionError::WrongEvent));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running a group at once

/// An event row loaded inside a write transaction.
pub(super) struct LoadedEvent {
    pub pk: i64,
    pub project_id: String,
    pub record: EventRecord,
    /// The hash of its timeline's last chained entry (`None`: none yet).
    pub chain_head: Option<String>,
}

/// One event's share of a write: its row before (`None`: not stored yet),
/// its record after, and the transitions that led there, in order, each
/// with its command's time.
pub(super) struct EventWrite<'a> {
    pub project_id: &'a str,
    pub before: Option<(i64, &'a EventRecord)>,
    /// The chain head before (see [`LoadedEvent::chain_head`]).
    pub before_head: Option<&'a str>,
    pub after: &'a EventRecord,
    pub transitions: Vec<(&'a Transition, Timestamp)>,
}

impl<'a> EventWrite<'a> {
    /// The write of a single transition.
    pub(super) fn one(
        project_id: &'a str,
        before: Option<&'a LoadedEvent>,
        transition: &'a Transition,
        now: Timestamp,
    ) -> Self {
        EventWrite {
            project_id,
            before: before.map(|l| (l.pk, &l.record)),
            before_head: before.and_then(|l| l.chain_head.as_deref()),
            after: &transition.record,
            transitions: vec![(transition, now)],
        }
    }

    /// Whether, once changed, the write has more for `write_outbox` than
    /// the set-based rows (event, timeline, provider copy): an incident
    /// copy or effects.
    pub(super) fn needs_outbox(&self) -> bool {
        self.after.incident.is_some() || self.transitions.iter().any(|(t, _)| !t.effects.is_empty())
    }

    /// The event's first provider copy, when this write brings it (its
    /// fingerprint row is written with the event rows, [`copy_rows`]).
    pub(super) fn new_copy(&self) -> Option<&'a ProviderCopy> {
        let had_copy = self
            .before
            .is_some_and(|(_, before)| before.provider_copy.is_some());
        self.after.provider_copy.as_ref().filter(|_| !had_copy)
    }

    /// The chain hashes of the new timeline entries, in order (hex), each
    /// following the one before, the first following the stored head (or
    /// the event's genesis): see `sendpromptly_core::chain`.
    pub(super) fn entry_hashes(&self) -> StoreResult<Vec<String>> {
        let mut prev = match self.before_head {
            Some(head) => chain::from_hex(head).ok_or_else(|| {
                StoreError::Corrupt(format!("chain head {head:?} is not 64 hex digits"))
            })?,
            None => chain::genesis(
                self.project_id,
                self.after.provider.as_str(),
                &self.after.event_id,
            ),
        };
        let mut hashes = Vec::new();
        for (transition, _) in &self.transitions {
            for entry in &transition.entries {
                prev = chain::entry_hash(&prev, entry);
                hashes.push(chain::to_hex(&prev));
            }
        }
        Ok(hashes)
    }

    /// Whether anything is to be written (a replay that changes nothing
    /// writes nothing).
    pub(super) fn changed(&self) -> bool {
        self.before.is_none_or(|(_, old)| old != self.after)
            || self
                .transitions
                .iter()
                .any(|(t, _)| !t.entries.is_empty() || !t.effects.is_empty())
    }
}

/// The event rows of a set-based write, as JSON arrays for the SQL to
/// unpack, and where each new row's id belongs.
pub(super) struct WriteRows<'a> {
    /// Per write: whether it changes anything ([`EventWrite::changed`]).
    pub changed: Vec<bool>,
    /// New events: `[project_id, provider, event_id, event_type, subject,
    /// state, record, due_at, received_at, created_at, updated_at,
    /// chain_head]` each.
    pub inserts: Option<String>,
    /// The index in `writes` of each new event, by `(project_id, provider,
    /// event_id)`.
    inserted_at: HashMap<(&'a str, &'a str, &'a str), usize>,
    /// Changed stored events: `[pk, event_type, subject, state, record,
    /// due_at, received_at, updated_at, chain_head]` each.
    pub updates: Option<String>,
    /// Per write: the chain hashes of its new timeline entries
    /// ([`EventWrite::entry_hashes`]), for [`timeline_rows`].
    pub hashes: Vec<Vec<String>>,
}

impl WriteRows<'_> {
    /// The index in `writes` of the new event an `INSERT … RETURNING` row
    /// names.
    pub(super) fn inserted(
        &self,
        project_id: &str,
        provider: &str,
        event_id: &str,
    ) -> StoreResult<usize> {
        self.inserted_at
            .get(&(project_id, provider, event_id))
            .copied()
            .ok_or_else(|| StoreError::Corrupt("an inserted event was not asked for".into()))
    }
}

/// Builds the event rows of `writes` (see [`WriteRows`]).
pub(super) fn write_rows<'a>(writes: &[EventWrite<'a>]) -> StoreResult<WriteRows<'a>> {
    let changed: Vec<bool> = writes.iter().map(EventWrite::changed).collect();
    let mut inserts = Vec::new();
    let mut inserted_at = HashMap::new();
    let mut updates = Vec::new();
    let mut hashes = Vec::with_capacity(writes.len());
    for (i, write) in writes.iter().enumerate() {
        let r: &'a EventRecord = write.after;
        let entry_hashes = if changed[i] {
            write.entry_hashes()?
        } else {
            Vec::new()
        };
        let head = entry_hashes
            .last()
            .map(String::as_str)
            .or(write.before_head)
            .map(str::to_owned);
        hashes.push(entry_hashes);
        match write.before {
            None => {
                inserts.push((
                    write.project_id,
                    r.provider.as_str(),
                    &r.event_id,
                    &r.event_type,
                    &r.subject,
                    r.state.as_str(),
                    encode_record(r)?,
                    r.next_due_at().map(ms),
                    r.received_at.map(ms),
                    ms(r.created_at),
                    ms(r.updated_at),
                    head,
                ));
                inserted_at.insert(
                    (write.project_id, r.provider.as_str(), r.event_id.as_str()),
                    i,
                );
            }
            Some((pk, _)) if changed[i] => updates.push((
                pk,
                &r.event_type,
                &r.subject,
                r.state.as_str(),
                encode_record(r)?,
                r.next_due_at().map(ms),
                r.received_at.map(ms),
                ms(r.updated_at),
                head,
            )),
            Some(_) => {}
        }
    }
    Ok(WriteRows {
        changed,
        inserts: (!inserts.is_empty())
            .then(|| encode_json(&inserts, "new events"))
            .transpose()?,
        inserted_at,
        updates: (!updates.is_empty())
            .then(|| encode_json(&updates, "changed events"))
            .transpose()?,
        hashes,
    })
}

/// The timeline entries of `writes`, in order, as `[event, at, kind, actor,
/// detail, hash]` rows, where `event` is what `event_of` says for each
/// write's index (its row id, or its key where the id is not known yet) and
/// `hash` comes from `rows` ([`WriteRows::hashes`]); `None` when there are
/// none.
pub(super) fn timeline_rows<E: serde::Serialize>(
    writes: &[EventWrite<'_>],
    rows: &WriteRows<'_>,
    event_of: impl Fn(usize) -> E,
) -> StoreResult<Option<String>> {
    let mut entries = Vec::new();
    for (i, write) in writes.iter().enumerate() {
        if !rows.changed[i] {
            continue;
        }
        let mut hashes = rows.hashes[i].iter();
        for (transition, _) in &write.transitions {
            for entry in &transition.entries {
                let hash = hashes.next().ok_or_else(|| {
                    StoreError::Corrupt("a timeline entry without its chain hash".into())
                })?;
                entries.push((
                    event_of(i),
                    ms(entry.at),
                    entry.kind.as_str(),
                    entry.actor.to_string(),
                    encode_json(&entry.detail, "timeline detail")?,
                    hash,
                ));
            }
        }
    }
    if entries.is_empty() {
        return Ok(None);
    }
    encode_json(&entries, "timeline entries").map(Some)
}

/// The fingerprint rows of the provider copies that `writes` bring first
/// ([`EventWrite::new_copy`]), as `[event, project_id, provider,
/// fingerprint, livemode, created_at]` rows, `event` as in
/// [`timeline_rows`]; `None` when there are none. The unique fingerprint
/// refuses a second event of the same change
/// ([`StoreError::FingerprintTaken`], see [`event_rows_error`]).
pub(super) fn copy_rows<E: serde::Serialize>(
    writes: &[EventWrite<'_>],
    event_of: impl Fn(usize) -> E,
) -> StoreResult<Option<String>> {
    let rows: Vec<_> = writes
        .iter()
        .enumerate()
        .filter_map(|(i, write)| write.new_copy().map(|copy| (i, write, copy)))
        .map(|(i, write, copy)| {
            (
                event_of(i),
                write.project_id,
                copy.provider.as_str(),
                fingerprint_of(copy),
                copy.is_live(),
                ms(copy.created.unwrap_or(Timestamp::from_unix_millis(0))),
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    encode_json(&rows, "provider copies").map(Some)
}

/// The fingerprint a copy is indexed by: the core's, else its event id
/// (a copy without a fingerprint is only ever the same change as itself).
fn fingerprint_of(copy: &ProviderCopy) -> String {
    match copy.fingerprint.as_deref().filter(|f| !f.is_empty()) {
        Some(fingerprint) => fingerprint.to_owned(),
        None => format!("event_id:{}", copy.event_id),
    }
}

/// Maps a failed set-based write of event rows: a second copy of a change
/// already held by another event → [`StoreError::FingerprintTaken`];
/// another uniqueness conflict → the event already exists.
pub(super) fn event_rows_error(err: sqlx::Error) -> StoreError {
    if is_fingerprint_violation(&err) {
        StoreError::FingerprintTaken
    } else {
        insert_error(err, "this event already exists", "project")
    }
}

/// The row ids of the writes, once the new rows have theirs.
pub(super) fn all_row_ids(pks: Vec<Option<i64>>) -> StoreResult<Vec<i64>> {
    pks.into_iter()
        .map(|pk| pk.ok_or_else(|| StoreError::Corrupt("a new event got no row id".to_owned())))
        .collect()
}

/// What a group reads first, in one go.
pub(super) struct GroupWanted<'a> {
    /// The events the group names: `(project id, provider, event id)`.
    pub events: Vec<(&'a str, &'a str, &'a str)>,
    /// The API keys to check: `(project id, key id)`.
    pub api_keys: Vec<(&'a str, &'a str)>,
    /// The idempotency keys of its jobs: `(project id, key)`.
    pub idempotency: Vec<(&'a str, &'a str)>,
}

/// What [`GroupIo::load`] found.
#[derive(Default)]
pub(super) struct GroupLoad {
    /// The stored events among those wanted.
    pub events: Vec<LoadedEvent>,
    /// Which of the wanted API keys are that project's unrevoked keys.
    pub valid_keys: Vec<(String, String)>,
    /// The stored idempotency keys among those wanted.
    pub idempotency: Vec<StoredKey>,
}

/// What [`run_at_once`] needs of an engine, inside its open transaction.
#[async_trait]
pub(super) trait GroupIo: Send {
    /// The stored events among `wanted.events`, locked for the rest of the
    /// transaction where the engine locks rows; which of `wanted.api_keys`
    /// are that project's unrevoked keys, held so that no revocation commits
    /// before this transaction; and the stored idempotency keys among
    /// `wanted.idempotency`, likewise locked.
    async fn load(&mut self, wanted: &GroupWanted<'_>) -> StoreResult<GroupLoad>;
    /// The event of an incident, likewise.
    async fn load_incident_event(
        &mut self,
        project_id: &str,
        incident_id: &str,
    ) -> StoreResult<Option<LoadedEvent>>;
    /// Writes the outcome and the idempotency keys to remember (an `Err`
    /// if a key to remember was taken meanwhile by another transaction);
    /// returns the row ids in the order of `writes`. The last call of a
    /// group's run: an engine may commit here.
    async fn persist(
        &mut self,
        writes: &[EventWrite<'_>],
        keys: Option<&KeyRows>,
    ) -> StoreResult<Vec<i64>>;
}

/// An idempotency key as a group sees it while it runs.
enum GroupKey {
    /// As stored before the group.
    Stored(StoredKey),
    /// A job of this group ran with it and remembered this response.
    Remembered {
        request_hash: Vec<u8>,
        response: StoredResponse,
    },
    /// A job of this group ran with it and remembered nothing.
    RanUnremembered { request_hash: Vec<u8> },
}

impl GroupKey {
    /// What this key says of a request with `request_hash` at `now`.
    fn verdict(
        &self,
        request_hash: &[u8],
        now: Timestamp,
        keyring: &Keyring,
    ) -> StoreResult<KeyVerdict> {
        match self {
            GroupKey::Stored(stored) => key_verdict(stored, request_hash, now, keyring),
            GroupKey::Remembered {
                request_hash: first,
                response,
            } => Ok(KeyVerdict::Answer(if first == request_hash {
                IdempotentOutcome::Replay(response.clone())
            } else {
                IdempotentOutcome::Mismatch
            })),
            GroupKey::RanUnremembered {
                request_hash: first,
            } => Ok(if first == request_hash {
                KeyVerdict::Run
            } else {
                KeyVerdict::Answer(IdempotentOutcome::Mismatch)
            }),
        }
    }
}

/// An event as a group sees it while it runs: as stored (`None`: not yet),
/// as the group's commands so far left it, and which jobs changed it.
struct GroupSlot {
    project_id: String,
    stored: Option<(i64, EventRecord)>,
    stored_head: Option<String>,
    current: Option<EventRecord>,
    applied: Vec<usize>,
}

/// The events a group has touched, findable by key.
#[derive(Default)]
struct GroupSlots {
    slots: Vec<GroupSlot>,
    by_key: HashMap<(String, EventKey), usize>,
}

impl GroupSlots {
    /// The slot of a loaded event (the existing one if the group already
    /// has it: that one is newer).
    fn stored(&mut self, loaded: LoadedEvent) -> usize {
        let id = (loaded.project_id.clone(), loaded.record.key());
        self.find_or_add(id, || GroupSlot {
            project_id: loaded.project_id,
            current: Some(loaded.record.clone()),
            stored: Some((loaded.pk, loaded.record)),
            stored_head: loaded.chain_head,
            applied: Vec::new(),
        })
    }

    /// The slot of `key`, a new empty one if neither stored nor created yet.
    fn for_key(&mut self, project_id: &str, key: &EventKey) -> usize {
        self.find_or_add((project_id.to_owned(), key.clone()), || GroupSlot {
            project_id: project_id.to_owned(),
            stored: None,
            stored_head: None,
            current: None,
            applied: Vec::new(),
        })
    }

    fn find_or_add(&mut self, id: (String, EventKey), new: impl FnOnce() -> GroupSlot) -> usize {
        if let Some(&slot) = self.by_key.get(&id) {
            return slot;
        }
        self.by_key.insert(id, self.slots.len());
        self.slots.push(new());
        self.slots.len() - 1
    }

    /// The slot whose event (as the group left it) has this incident.
    fn with_incident(&self, project_id: &str, incident_id: &str) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.project_id == project_id
                && s.current
                    .as_ref()
                    .and_then(|r| r.incident.as_ref())
                    .is_some_and(|inc| inc.id == incident_id)
        })
    }
}

/// Runs every job of a group against the events (and idempotency keys) as
/// loaded in one query, each job seeing the ones before it, then writes
/// the outcome with one [`GroupIo::persist`]. Returns each job's own
/// result; `Err` if a read or a write failed (the caller then rolls back
/// and runs the jobs one by one).
pub(super) async fn run_at_once(
    io: &mut impl GroupIo,
    jobs: &[GroupJob],
) -> StoreResult<Vec<JobResult>> {
    let mut events: Vec<(&str, &str, &str)> = jobs
        .iter()
        .filter_map(|job| match &job.target {
            GroupTarget::Event(key) => Some((
                job.project_id.as_str(),
                key.provider.as_str(),
                key.event_id.as_str(),
            )),
            GroupTarget::Incident(_) => None,
        })
        .collect();
    events.sort_unstable();
    events.dedup();
    let mut api_keys: Vec<(&str, &str)> = jobs
        .iter()
        .filter_map(|job| Some((job.project_id.as_str(), job.api_key.as_deref()?)))
        .collect();
    api_keys.sort_unstable();
    api_keys.dedup();
    let mut idempotency: Vec<(&str, &str)> = jobs
        .iter()
        .filter_map(|job| {
            let key = job.idempotency.as_ref()?;
            Some((job.project_id.as_str(), key.request.key.as_str()))
        })
        .collect();
    idempotency.sort_unstable();
    idempotency.dedup();
    let loaded = io
        .load(&GroupWanted {
            events,
            api_keys,
            idempotency,
        })
        .await?;
    let valid_keys: HashSet<(String, String)> = loaded.valid_keys.into_iter().collect();
    let mut slots = GroupSlots::default();
    for event in loaded.events {
        slots.stored(event);
    }
    let mut keys: HashMap<(String, String), GroupKey> = loaded
        .idempotency
        .into_iter()
        .map(|stored| {
            (
                (stored.project_id.clone(), stored.key.clone()),
                GroupKey::Stored(stored),
            )
        })
        .collect();
    let mut remembered: Vec<KeyRow> = Vec::new();

    let mut results: Vec<JobResult> = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        if let Some(key_id) = &job.api_key
            && !valid_keys.contains(&(job.project_id.clone(), key_id.clone()))
        {
            results.push(Err(StoreError::KeyRevoked));
            continue;
        }
        if let Some(job_key) = &job.idempotency {
            let id = (job.project_id.clone(), job_key.request.key.clone());
            let verdict = match keys.get(&id) {
                Some(known) => {
                    known.verdict(&job_key.request.request_hash, job.ctx.now, &job_key.keyring)
                }
                None => Ok(KeyVerdict::Run),
            };
            match verdict {
                Ok(KeyVerdict::Run) => {}
                Ok(KeyVerdict::Answer(answer)) => {
                    results.push(Ok(answer));
                    continue;
                }
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            }
        }
        let outcome = run_in_group(&mut slots, io, i, job).await?;
        if let Some(job_key) = &job.idempotency {
            let request_hash = job_key.request.request_hash.clone();
            let id = (job.project_id.clone(), job_key.request.key.clone());
            match (job_key.request.respond)(&outcome) {
                Some(response) => {
                    remembered.retain(|row| (&row.0, &row.1) != (&id.0, &id.1));
                    remembered.push(key_row(job_key, &job.project_id, &response, job.ctx.now));
                    keys.insert(
                        id,
                        GroupKey::Remembered {
                            request_hash,
                            response,
                        },
                    );
                }
                None => {
                    keys.insert(id, GroupKey::RanUnremembered { request_hash });
                }
            }
        }
        results.push(outcome.map(IdempotentOutcome::Applied));
    }

    let mut writes: Vec<EventWrite<'_>> = slots
        .slots
        .iter()
        .filter_map(|slot| {
            let transitions = slot
                .applied
                .iter()
                .filter_map(|&i| match &results[i] {
                    Ok(IdempotentOutcome::Applied(applied)) => {
                        Some((&applied.transition, jobs[i].ctx.now))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>();
            Some(EventWrite {
                project_id: &slot.project_id,
                before: slot.stored.as_ref().map(|(pk, record)| (*pk, record)),
                before_head: slot.stored_head.as_deref(),
                after: &transitions.last()?.0.record,
                transitions,
            })
        })
        .collect();
    // In key order: two groups creating the same new events (two
    // instances on one PostgreSQL) then insert them in the same order.
    writes.sort_by(|a, b| {
        (a.project_id, a.after.provider, &a.after.event_id).cmp(&(
            b.project_id,
            b.after.provider,
            &b.after.event_id,
        ))
    });
    let now = jobs.iter().map(|j| j.ctx.now).max();
    let key_rows = match now {
        Some(now) => KeyRows::new(&remembered, now)?,
        None => None,
    };
    if !writes.is_empty() || key_rows.is_some() {
        io.persist(&writes, key_rows.as_ref()).await?;
    }
    Ok(results)
}

/// Runs job `i` against its event as the group left it: finds (or loads)
/// the event's slot and applies the command in memory. `Err` only when a
/// read failed (the group then falls back); the command's own refusal is
/// the inner result.
async fn run_in_group(
    slots: &mut GroupSlots,
    io: &mut impl GroupIo,
    i: usize,
    job: &GroupJob,
) -> StoreResult<StoreResult<Applied>> {
    let slot = match &job.target {
        GroupTarget::Event(key) => slots.for_key(&job.project_id, key),
        GroupTarget::Incident(incident_id) => {
            match slots.with_incident(&job.project_id, incident_id) {
                Some(slot) => slot,
                None => match io.load_incident_event(&job.project_id, incident_id).await? {
                    Some(loaded) => slots.stored(loaded),
                    None => return Ok(Err(StoreError::NotFound("incident"))),
                },
            }
        }
    };
    let current = slots.slots[slot].current.clone();
    let outcome = machine::apply(current.clone(), job.command.clone(), &job.ctx)
        .map_err(StoreError::from)
        .and_then(|transition| match (&current, &job.target) {
            (None, GroupTarget::Event(key)) => {
                ensure_created_as_asked(&transition, key).map(|()| transition)
            }
            _ => Ok(transition),
        });
    Ok(outcome.map(|transition| {
        let slot = &mut slots.slots[slot];
        slot.current = Some(transition.record.clone());
        slot.applied.push(i);
        Applied { transition }
    }))
}
