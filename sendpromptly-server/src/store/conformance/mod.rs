//! The Store conformance suite: the behaviour every [`Store`] backend must
//! show, written once and run against each backend.
//!
//! Every case is a public `async fn(&dyn Store)` that creates its own
//! projects (with unique names) and panics on a violation. A backend's test
//! file runs them all with [`store_conformance_tests!`](crate::store_conformance_tests):
//!
//! ```ignore
//! sendpromptly_server::store_conformance_tests!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let url = format!("sqlite://{}", dir.path().join("test.db").display());
//!     let store = SqliteStore::connect(&url).await.unwrap();
//!     store.migrate().await.unwrap();
//!     (store, dir) // the guard (here the TempDir) lives as long as the test
//! });
//! ```
//!
//! The cases about global queues (the sweeper, the callback outbox, user
//! counts, idempotency purges) count exactly, so each case needs a fresh,
//! empty, migrated store of its own (a new SQLite file; a new PostgreSQL
//! database or schema). The concurrency cases run tasks on OS threads and
//! need a multi-threaded tokio runtime (the macro's tests use one).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sendpromptly_core::Timestamp;
use sendpromptly_core::ids;
use sendpromptly_core::machine::{AttemptReport, Command, Context, Effect, Outcome};
use sendpromptly_core::model::{
    Actor, EventKey, EventState, IncidentKind, IncidentState, Provider, Receipt, ReprocessStatus,
    ResultSignal, ResultStatus, TimelineEntry, TimelineKind,
};
use sendpromptly_core::retry::{GiveUpReason, NextStep};

use super::{
    AlertJob, ApiKey, Applied, DailyActivity, DeliveryJob, EventFilter, IdempotencyBegin,
    IdempotentOutcome, IdempotentRequest, IncidentCounts, IncidentFilter, NewBatchItem, NewProject,
    PaceReport, Page, PageRequest, Project, ProjectPatch, ProofLink, ReprocessBatch, ResealReport,
    Session, Store, StoreError, StoreResult, StoredResponse, User, UserToken,
};
use sendpromptly_core::machine::EventRecord;
use sendpromptly_core::wire::ReprocessBatchCounts;

/// The master key test stores seal secrets with (a fixed, public test key:
/// several connections to one test database must share it).
pub const TEST_MASTER_KEY: [u8; crate::secrets::MASTER_KEY_BYTES] = [7; 32];

/// A keyring with [`TEST_MASTER_KEY`], for test stores.
pub fn test_keyring() -> std::sync::Arc<crate::secrets::Keyring> {
    std::sync::Arc::new(crate::secrets::Keyring::new(&TEST_MASTER_KEY, &[]))
}

/// Something the conformance macro can run the cases on: a store, or a
/// `(store, guard)` pair whose guard (a temporary directory, a database
/// dropper…) must live as long as the test.
pub trait AsStore {
    /// The store to test.
    fn as_store(&self) -> &dyn Store;
}

impl<S: Store> AsStore for S {
    fn as_store(&self) -> &dyn Store {
        self
    }
}

impl<S: Store, G> AsStore for (S, G) {
    fn as_store(&self) -> &dyn Store {
        &self.0
    }
}

/// Expands to one `#[tokio::test]` per conformance case.
///
/// `$make` is an async expression (a future) giving a fresh, empty, already
/// migrated store, or a `(store, guard)` pair (see [`AsStore`]); it is
/// evaluated once per test.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@cases $make;
            migrate_is_repeatable,
            projects,
            api_keys,
            apply_with_key_checks_the_key_in_the_write,
            signing_secret_rotation,
            secrets_are_encrypted_at_rest,
            users,
            receipt_then_duplicate,
            result_before_receipt,
            failure_opens_an_incident_that_is_listed,
            incident_list_filters,
            incident_pagination,
            event_search,
            invalid_cursors,
            sweep_opens_one_incident_per_due_event,
            sweep_returns_an_unanswered_repair_to_open,
            delivery_lifecycle,
            delivery_give_up_and_lease_expiry,
            success_cancels_a_pending_callback,
            incident_commands_and_entries,
            proof_links,
            idempotency,
            idempotent_apply,
            resolved_history_retention,
            cross_project_isolation,
            concurrent_receipts,
            concurrent_mixed_applies,
            concurrent_claims,
            console_sessions,
            console_users_roles_and_totp,
            incident_counts_and_daily_activity,
            free_text_search,
            reprocess_batches,
            reprocess_batch_retries_hold_no_slot,
            reprocess_batch_retry_waits_for_a_slot,
            concurrent_batch_pacing,
            alert_outbox_lifecycle,
            alert_grouping_into_a_digest,
            concurrent_alert_claims,
            provider_copies_are_unique_by_fingerprint,
            sweep_opens_missing_receipt,
            provider_tap_settings_round_trip,
            livemode_filters,
            reconcile_lease_and_progress,
            reconcile_lease_expires,
            concurrent_reconcile_leases,
            key_scopes_and_uses,
            audit_entries_commit_with_their_write,
            audit_pages_filters_and_purge,
            timeline_chains_verify,
            export_pages,
            analytics_rollups,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $make.await;
                let store = $crate::store::conformance::AsStore::as_store(&fixture);
                $crate::store::conformance::$case(store).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Helpers

/// The base time of every case: 2027-01-15T08:00:00Z.
const T0: Timestamp = Timestamp::from_unix_seconds(1_800_000_000);

fn at(seconds: i64) -> Timestamp {
    T0.plus_seconds(seconds)
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt: u32 = rand::random();
    format!("{prefix}-{}-{n}-{salt:08x}", std::process::id())
}

fn new_id(prefix: &str, now: Timestamp) -> String {
    ids::new_id(prefix, now, &mut rand::thread_rng())
}

async fn new_project(store: &dyn Store) -> Project {
    store
        .create_project(NewProject {
            id: new_id(ids::PROJECT, T0),
            name: unique("project"),
            repair_url: Some("https://app.example/repair".to_owned()),
            default_deadline_seconds: 1800,
            created_at: T0,
        })
        .await
        .expect("create project")
}

fn key(provider: Provider, event_id: &str) -> EventKey {
    EventKey {
        provider,
        event_id: event_id.to_owned(),
    }
}

fn stripe(event_id: &str) -> EventKey {
    key(Provider::Stripe, event_id)
}

fn ctx(now: Timestamp) -> Context {
    Context {
        now,
        actor: Actor::ApiKey("key_conformance".to_owned()),
        new_incident_id: new_id(ids::INCIDENT, now),
    }
}

fn receipt_for(
    k: &EventKey,
    event_type: &str,
    subject: Option<&str>,
    deadline_seconds: u32,
) -> Command {
    Command::Receipt {
        receipt: Receipt {
            traceparent: None,
            tracestate: None,
            provider: k.provider,
            event_id: k.event_id.clone(),
            event_type: event_type.to_owned(),
            subject: subject.map(str::to_owned),
            effect: Some("credits.add".to_owned()),
            deadline_seconds: Some(deadline_seconds),
            metadata: None,
            occurred_at: None,
        },
        deadline_seconds,
    }
}

fn receipt(k: &EventKey, subject: Option<&str>) -> Command {
    receipt_for(k, "invoice.paid", subject, 1800)
}

fn result(k: &EventKey, status: ResultStatus) -> Command {
    Command::Result(ResultSignal {
        traceparent: None,
        tracestate: None,
        provider: k.provider,
        event_id: k.event_id.clone(),
        status,
        error: (status == ResultStatus::Failure).then(|| "tenant not found".to_owned()),
        reprocess_id: None,
        metadata: None,
    })
}

/// Records a receipt and a failure for `k`; returns the incident id.
async fn failed_event(
    store: &dyn Store,
    project: &Project,
    k: &EventKey,
    event_type: &str,
    subject: Option<&str>,
    now: Timestamp,
) -> String {
    store
        .apply(
            &project.id,
            k,
            receipt_for(k, event_type, subject, 1800),
            ctx(now),
        )
        .await
        .expect("receipt");
    let applied = store
        .apply(&project.id, k, result(k, ResultStatus::Failure), ctx(now))
        .await
        .expect("failure result");
    applied
        .transition
        .record
        .incident
        .expect("a failure opens an incident")
        .id
}

/// Requests a repair callback for an incident; returns the reprocess id.
async fn request_reprocess(
    store: &dyn Store,
    project: &Project,
    incident_id: &str,
    now: Timestamp,
) -> String {
    let reprocess_id = new_id(ids::REPROCESS, now);
    store
        .apply_to_incident(
            &project.id,
            incident_id,
            Command::RequestReprocess {
                reprocess_id: reprocess_id.clone(),
                note: Some("try again".to_owned()),
                result_deadline_seconds: 600,
            },
            Context {
                actor: Actor::Console("alice@example.com".to_owned()),
                ..ctx(now)
            },
        )
        .await
        .expect("request reprocess");
    reprocess_id
}

fn page(limit: u32) -> PageRequest {
    PageRequest {
        limit,
        cursor: None,
    }
}

fn event_ids(page: &Page<EventRecord>) -> Vec<String> {
    page.data.iter().map(|r| r.event_id.clone()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn report(status: Option<u16>) -> AttemptReport {
    AttemptReport {
        trace: None,
        status,
        latency_ms: 12,
        response_excerpt: status.map(|s| format!("status {s}")),
        error: status.is_none().then(|| "connection refused".to_owned()),
    }
}

fn job_ids(jobs: &[DeliveryJob]) -> Vec<String> {
    jobs.iter().map(|j| j.reprocess_id.clone()).collect()
}

const LEASE: Duration = Duration::from_secs(60);

type BoxedTask<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `tasks` at the same time, each on its own OS thread driven by the
/// current tokio runtime, and returns their outputs in order.
fn run_in_parallel<'a, T: Send>(tasks: Vec<BoxedTask<'a, T>>) -> Vec<T> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let threads: Vec<_> = tasks
                .into_iter()
                .map(|task| {
                    let handle = handle.clone();
                    scope.spawn(move || handle.block_on(task))
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a parallel task panicked"))
                .collect()
        })
    })
}

mod alerts;
mod audit;
mod batches;
mod chain;
mod concurrency;
mod console;
mod deliveries;
mod events;
mod idempotency;
mod projects;
mod provider_tap;
mod reconcile;
mod stats;

pub use alerts::*;
pub use audit::*;
pub use batches::*;
pub use chain::*;
pub use concurrency::*;
pub use console::*;
pub use deliveries::*;
pub use events::*;
pub use idempotency::*;
pub use projects::*;
pub use provider_tap::*;
pub use reconcile::*;
pub use stats::*;

// ---------------------------------------------------------------------------
// Fixtures shared by the areas

fn api_key(project: &Project, hash_byte: u8, created_at: Timestamp) -> ApiKey {
    ApiKey {
        id: new_id(ids::API_KEY, created_at),
        project_id: project.id.clone(),
        key_hash: vec![hash_byte; 32],
        prefix: "sp_test_".to_owned(),
        name: Some(format!("key {hash_byte}")),
        created_at,
        revoked_at: None,
        scopes: sendpromptly_core::scope::ScopeSet::INGEST,
        last_used_at: None,
        last_used_class: None,
        used_classes: sendpromptly_core::scope::ScopeSet::EMPTY,
    }
}

fn proof_link(project: &Project, incident_id: &str, token_byte: u8, now: Timestamp) -> ProofLink {
    ProofLink {
        id: new_id(ids::PROOF_LINK, now),
        project_id: project.id.clone(),
        incident_id: incident_id.to_owned(),
        token_hash: vec![token_byte; 32],
        created_by: "console:alice@example.com".to_owned(),
        created_at: now,
        expires_at: now.plus_seconds(7 * 24 * 3600),
        revoked_at: None,
    }
}

/// An idempotent request as the signal routes make one: the response
/// names the event's delivery count, so a replay shows which run it was.
fn idempotent(key: &str, hash: &[u8]) -> IdempotentRequest {
    IdempotentRequest {
        key: key.to_owned(),
        request_hash: hash.to_vec(),
        respond: Box::new(|outcome| {
            let applied = outcome.as_ref().ok()?;
            Some(StoredResponse {
                status: 201,
                body: format!(
                    r#"{{"deliveries":{}}}"#,
                    applied.transition.record.deliveries
                )
                .into_bytes(),
            })
        }),
    }
}

async fn new_user(store: &dyn Store, created_at: Timestamp) -> User {
    let user = User {
        id: new_id(ids::USER, created_at),
        email: format!("{}@example.com", unique("user")).to_lowercase(),
        password_hash: "$argon2id$v=19$stub".to_owned(),
        created_at,
        disabled_at: None,
        owner: false,
        totp_enabled: false,
    };
    store.create_user(user.clone()).await.expect("create user");
    user
}

fn session(user: &User, token_byte: u8, created_at: Timestamp, expires_at: Timestamp) -> Session {
    Session {
        token_hash: vec![token_byte; 32],
        user_id: user.id.clone(),
        created_at,
        expires_at,
        pending_2fa: false,
    }
}

fn new_batch(
    project: &Project,
    rate_per_second: f64,
    concurrency: u32,
    now: Timestamp,
) -> ReprocessBatch {
    ReprocessBatch {
        id: new_id(ids::REPROCESS_BATCH, now),
        project_id: project.id.clone(),
        state: "running".to_owned(),
        rate_per_second,
        concurrency,
        started_by: "console:ops@example.com".to_owned(),
        note: Some("after the outage".to_owned()),
        selection: serde_json::json!({"event_type": "invoice.paid"}),
        created_at: now,
        finished_at: None,
        counts: ReprocessBatchCounts::default(),
    }
}

fn batch_item(incident_id: &str, skipped: Option<&str>) -> NewBatchItem {
    NewBatchItem {
        incident_id: incident_id.to_owned(),
        event_type: Some("invoice.paid".to_owned()),
        subject: None,
        skipped: skipped.map(str::to_owned),
    }
}

const WINDOW: i64 = 300;

async fn project_with_channels(store: &dyn Store, channels: serde_json::Value) -> Project {
    let project = new_project(store).await;
    store
        .update_project(
            &project.id,
            ProjectPatch {
                alert_channels: Some(channels),
                ..ProjectPatch::default()
            },
        )
        .await
        .expect("set alert channels")
}

fn alert_entry(job: &AlertJob, next: NextStep, now: Timestamp) -> TimelineEntry {
    super::alert_attempt_entry(job, &report(Some(200)), next, now)
}
