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
    PaceReport, Page, PageRequest, Project, ProjectPatch, ProofLink, ReprocessBatch, Session,
    Store, StoreError, StoreResult, StoredResponse, User,
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
            incident_counts_and_daily_activity,
            free_text_search,
            reprocess_batches,
            reprocess_batch_retries_hold_no_slot,
            concurrent_batch_pacing,
            alert_outbox_lifecycle,
            alert_grouping_into_a_digest,
            concurrent_alert_claims,
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

// ---------------------------------------------------------------------------
// Cases

/// `migrate` can run again on a migrated database, and `ping` answers.
pub async fn migrate_is_repeatable(store: &dyn Store) {
    store.migrate().await.expect("second migrate");
    store.ping().await.expect("ping");
}

/// Projects: create, unique names, look-ups, listing and patches.
pub async fn projects(store: &dyn Store) {
    let project = new_project(store).await;
    assert_eq!(project.default_deadline_seconds, 1800);
    assert!(project.deadlines_by_event_type.is_empty());
    assert!(!project.proof_show_metadata);

    let same_name = store
        .create_project(NewProject {
            id: new_id(ids::PROJECT, T0),
            name: project.name.clone(),
            repair_url: None,
            default_deadline_seconds: 60,
            created_at: T0,
        })
        .await;
    assert!(
        matches!(same_name, Err(StoreError::Conflict(_))),
        "{same_name:?}"
    );

    assert_eq!(
        store.project(&project.id).await.unwrap().as_ref(),
        Some(&project)
    );
    assert_eq!(
        store.project_by_name(&project.name).await.unwrap().as_ref(),
        Some(&project)
    );
    assert_eq!(store.project("prj_nope").await.unwrap(), None);
    assert_eq!(store.project_by_name("no such name").await.unwrap(), None);

    let second = new_project(store).await;
    let listed: Vec<String> = store
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert!(listed.contains(&project.id) && listed.contains(&second.id));

    let table = BTreeMap::from([("invoice.paid".to_owned(), 60_u32)]);
    let channels = serde_json::json!([{"type": "email", "to": "ops@example.com"}]);
    let updated = store
        .update_project(
            &project.id,
            ProjectPatch {
                repair_url: Some(None),
                default_deadline_seconds: Some(900),
                deadlines_by_event_type: Some(table.clone()),
                alert_channels: Some(channels.clone()),
                proof_show_metadata: Some(true),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.repair_url, None);
    assert_eq!(updated.default_deadline_seconds, 900);
    assert_eq!(updated.deadlines_by_event_type, table);
    assert_eq!(updated.alert_channels, channels);
    assert!(updated.proof_show_metadata);
    assert_eq!(updated.deadline_for("invoice.paid", None), 60);
    assert_eq!(
        store.project(&project.id).await.unwrap().as_ref(),
        Some(&updated)
    );

    let unchanged = store
        .update_project(&project.id, ProjectPatch::default())
        .await
        .unwrap();
    assert_eq!(unchanged, updated);
    let set_again = store
        .update_project(
            &project.id,
            ProjectPatch {
                repair_url: Some(Some("https://new.example/repair".to_owned())),
                ..ProjectPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        set_again.repair_url.as_deref(),
        Some("https://new.example/repair")
    );
    assert_eq!(set_again.default_deadline_seconds, 900);

    let missing = store
        .update_project("prj_nope", ProjectPatch::default())
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    // The other project was not touched.
    assert_eq!(
        store
            .project(&second.id)
            .await
            .unwrap()
            .unwrap()
            .default_deadline_seconds,
        1800
    );
}

fn api_key(project: &Project, hash_byte: u8, created_at: Timestamp) -> ApiKey {
    ApiKey {
        id: new_id(ids::API_KEY, created_at),
        project_id: project.id.clone(),
        key_hash: vec![hash_byte; 32],
        prefix: "sp_test_".to_owned(),
        name: Some(format!("key {hash_byte}")),
        created_at,
        revoked_at: None,
    }
}

/// API keys: look-up by hash, newest-first listing, revocation, unique hashes.
pub async fn api_keys(store: &dyn Store) {
    let project = new_project(store).await;
    let first = api_key(&project, 1, at(0));
    let second = api_key(&project, 2, at(10));
    store.insert_api_key(first.clone()).await.unwrap();
    store.insert_api_key(second.clone()).await.unwrap();

    assert_eq!(
        store.api_key_by_hash(&[1; 32]).await.unwrap().as_ref(),
        Some(&first)
    );
    assert_eq!(store.api_key_by_hash(&[9; 32]).await.unwrap(), None);
    assert_eq!(
        store.list_api_keys(&project.id).await.unwrap(),
        vec![second.clone(), first.clone()]
    );

    let duplicate = store
        .insert_api_key(ApiKey {
            id: new_id(ids::API_KEY, at(20)),
            ..first.clone()
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );

    assert!(
        store
            .revoke_api_key(&project.id, &first.id, at(30))
            .await
            .unwrap()
    );
    let revoked = store.api_key_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at(30)));
    assert!(
        !store
            .revoke_api_key(&project.id, "key_nope", at(30))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .api_key_by_hash(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

/// `apply_with_key`: a write made with an unrevoked key of the project is
/// stored (also many at once, sharing group commits); one made with an
/// unknown key, another project's key or a revoked key is refused with
/// `KeyRevoked` and leaves nothing behind.
pub async fn apply_with_key_checks_the_key_in_the_write(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let key = api_key(&project, 77, at(0));
    let others_key = api_key(&other, 78, at(0));
    store.insert_api_key(key.clone()).await.unwrap();
    store.insert_api_key(others_key.clone()).await.unwrap();
    let project_id = project.id.as_str();
    let key_id = key.id.as_str();

    let keys: Vec<EventKey> = (0..16)
        .map(|i| stripe(&unique(&format!("evt_key_{i}"))))
        .collect();
    let tasks: Vec<BoxedTask<'_, StoreResult<Applied>>> = keys
        .iter()
        .map(|k| {
            Box::pin(async move {
                store
                    .apply_with_key(project_id, key_id, k, receipt(k, None), ctx(at(1)))
                    .await
            }) as BoxedTask<'_, _>
        })
        .collect();
    for (k, answer) in keys.iter().zip(run_in_parallel(tasks)) {
        let applied = answer.unwrap_or_else(|e| panic!("{}: {e}", k.event_id));
        assert_eq!(applied.transition.outcome, Outcome::Created);
    }

    let unknown = stripe(&unique("evt_key_unknown"));
    for (who, id) in [
        ("unknown", "key_nope"),
        ("other project's", others_key.id.as_str()),
    ] {
        let refused = store
            .apply_with_key(
                project_id,
                id,
                &unknown,
                receipt(&unknown, None),
                ctx(at(2)),
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::KeyRevoked)),
            "{who} key: {refused:?}"
        );
    }
    assert!(store.event(project_id, &unknown).await.unwrap().is_none());

    assert!(
        store
            .revoke_api_key(project_id, key_id, at(3))
            .await
            .unwrap()
    );
    let refused = store
        .apply_with_key(
            project_id,
            key_id,
            &keys[0],
            result(&keys[0], ResultStatus::Success),
            ctx(at(4)),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::KeyRevoked)),
        "{refused:?}"
    );
    let stored = store.event(project_id, &keys[0]).await.unwrap().unwrap();
    assert_eq!(stored.record.state, EventState::AwaitingResult);
    assert_eq!(stored.timeline.len(), 1, "nothing of the refused write");
}

/// Rotation: older secrets expire at the given time and then stop being listed.
pub async fn signing_secret_rotation(store: &dyn Store) {
    let project = new_project(store).await;
    let hour = 3600;
    store
        .add_signing_secret(&project.id, "whsec_one", at(0), at(24 * hour))
        .await
        .unwrap();
    let secrets = store.signing_secrets(&project.id, at(0)).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].secret, "whsec_one");
    assert_eq!(secrets[0].expires_at, None);

    store
        .add_signing_secret(&project.id, "whsec_two", at(hour), at(25 * hour))
        .await
        .unwrap();
    let secrets = store.signing_secrets(&project.id, at(hour)).await.unwrap();
    let names: Vec<&str> = secrets.iter().map(|s| s.secret.as_str()).collect();
    assert_eq!(names, vec!["whsec_two", "whsec_one"], "newest first");
    assert_eq!(secrets[0].expires_at, None);
    assert_eq!(secrets[1].expires_at, Some(at(25 * hour)));
    assert_eq!(secrets[0].created_at, at(hour));

    store
        .add_signing_secret(&project.id, "whsec_three", at(2 * hour), at(26 * hour))
        .await
        .unwrap();
    let secrets = store
        .signing_secrets(&project.id, at(2 * hour))
        .await
        .unwrap();
    let expiries: Vec<(&str, Option<Timestamp>)> = secrets
        .iter()
        .map(|s| (s.secret.as_str(), s.expires_at))
        .collect();
    assert_eq!(
        expiries,
        vec![
            ("whsec_three", None),
            ("whsec_two", Some(at(26 * hour))),
            ("whsec_one", Some(at(25 * hour))),
        ],
        "an already expiring secret keeps its expiry"
    );

    let later = store
        .signing_secrets(&project.id, at(25 * hour))
        .await
        .unwrap();
    let names: Vec<&str> = later.iter().map(|s| s.secret.as_str()).collect();
    assert_eq!(names, vec!["whsec_three", "whsec_two"]);
    let much_later = store
        .signing_secrets(&project.id, at(30 * hour))
        .await
        .unwrap();
    let names: Vec<&str> = much_later.iter().map(|s| s.secret.as_str()).collect();
    assert_eq!(names, vec!["whsec_three"]);
}

/// Signing secrets and stored idempotent responses are sealed at rest: the
/// column holds `spenc1:` ciphertext under the current key, never the
/// secret, and reads give the plaintext back.
pub async fn secrets_are_encrypted_at_rest(store: &dyn Store) {
    let project = new_project(store).await;
    let secret = "whsec_c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw";
    store
        .add_signing_secret(&project.id, secret, at(0), at(3600))
        .await
        .unwrap();
    let stored = store.stored_signing_secrets(&project.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    let keyring = test_keyring();
    for value in &stored {
        assert!(value.starts_with(crate::secrets::SEALED_PREFIX), "{value}");
        assert!(
            !value.contains("whsec_"),
            "plaintext in the column: {value}"
        );
        assert!(
            !value.contains("c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw"),
            "{value}"
        );
        assert_eq!(
            crate::secrets::Keyring::key_id_of(value).unwrap(),
            keyring.current_id(),
            "sealed under the configured key"
        );
    }
    let read = store.signing_secrets(&project.id, at(1)).await.unwrap();
    assert_eq!(read[0].secret, secret);
    // Already sealed with the current key: a start-up reseal changes nothing.
    assert_eq!(
        store.reseal_signing_secrets().await.unwrap(),
        super::ResealReport::default()
    );
    assert_eq!(
        store.stored_signing_secrets(&project.id).await.unwrap(),
        stored
    );

    // A rotate response replayed from an idempotency key holds the new secret.
    let body = format!(r#"{{"secret":"{secret}"}}"#);
    let p = project.id.as_str();
    let lock = Duration::from_secs(30);
    assert_eq!(
        store
            .idempotency_begin(p, "rotate-1", b"hash", at(2), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Proceed
    );
    store
        .idempotency_complete(p, "rotate-1", 201, body.as_bytes())
        .await
        .unwrap();
    let raw = store
        .stored_idempotency_response(p, "rotate-1")
        .await
        .unwrap()
        .expect("stored");
    let raw = String::from_utf8(raw).expect("sealed text");
    assert!(raw.starts_with(crate::secrets::SEALED_PREFIX), "{raw}");
    assert!(!raw.contains("whsec_"), "plaintext in the column: {raw}");
    assert_eq!(
        store
            .idempotency_begin(p, "rotate-1", b"hash", at(3), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Replay {
            status: 201,
            body: body.into_bytes()
        }
    );
}

/// Retention of resolved history: old resolved incidents (with their proof
/// links and outbox rows) and old successes go; open and reprocessing
/// incidents, events awaiting a result and recent resolutions stay.
pub async fn resolved_history_retention(store: &dyn Store) {
    let project = new_project(store).await;
    let p = project.id.as_str();
    // Resolved at 12 s, after a reprocess (its callback cancelled) and with a proof link.
    let resolved = key(Provider::Stripe, "evt_resolved");
    let resolved_incident =
        failed_event(store, &project, &resolved, "invoice.paid", None, at(10)).await;
    request_reprocess(store, &project, &resolved_incident, at(11)).await;
    store
        .apply(
            p,
            &resolved,
            result(&resolved, ResultStatus::Success),
            ctx(at(12)),
        )
        .await
        .unwrap();
    store
        .create_proof_link(proof_link(&project, &resolved_incident, 41, at(12)))
        .await
        .unwrap();
    // A success without an incident.
    let succeeded = key(Provider::Stripe, "evt_succeeded");
    store
        .apply(p, &succeeded, receipt(&succeeded, None), ctx(at(10)))
        .await
        .unwrap();
    store
        .apply(
            p,
            &succeeded,
            result(&succeeded, ResultStatus::Success),
            ctx(at(10)),
        )
        .await
        .unwrap();
    // Open, reprocessing, awaiting a result: all old, all kept.
    let open = key(Provider::Stripe, "evt_open");
    let open_incident = failed_event(store, &project, &open, "invoice.paid", None, at(10)).await;
    store
        .create_proof_link(proof_link(&project, &open_incident, 42, at(10)))
        .await
        .unwrap();
    let reprocessing = key(Provider::Stripe, "evt_reprocessing");
    let reprocessing_incident =
        failed_event(store, &project, &reprocessing, "invoice.paid", None, at(10)).await;
    request_reprocess(store, &project, &reprocessing_incident, at(10)).await;
    let awaiting = key(Provider::Stripe, "evt_awaiting");
    store
        .apply(
            p,
            &awaiting,
            receipt_for(&awaiting, "invoice.paid", None, 86_400),
            ctx(at(10)),
        )
        .await
        .unwrap();
    // Resolved, but recently.
    let recent = key(Provider::Stripe, "evt_recent");
    failed_event(store, &project, &recent, "invoice.paid", None, at(10)).await;
    store
        .apply(
            p,
            &recent,
            result(&recent, ResultStatus::Success),
            ctx(at(1000)),
        )
        .await
        .unwrap();

    // One at a time (limit 1), then nothing left to delete.
    assert_eq!(store.purge_resolved_history(at(500), 1).await.unwrap(), 1);
    assert_eq!(store.purge_resolved_history(at(500), 100).await.unwrap(), 1);
    assert_eq!(store.purge_resolved_history(at(500), 100).await.unwrap(), 0);

    for gone in [&resolved, &succeeded] {
        assert!(
            store.event(p, gone).await.unwrap().is_none(),
            "{gone:?} kept"
        );
    }
    assert!(
        store
            .incident(p, &resolved_incident)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .proof_link_by_token_hash(&[41; 32])
            .await
            .unwrap()
            .is_none(),
        "the resolved incident's proof link is deleted with it"
    );
    for kept in [&open, &reprocessing, &awaiting, &recent] {
        let stored = store.event(p, kept).await.unwrap();
        let stored = stored.unwrap_or_else(|| panic!("{kept:?} was deleted"));
        assert!(!stored.timeline.is_empty(), "{kept:?} lost its timeline");
    }
    let open_now = store.incident(p, &open_incident).await.unwrap().unwrap();
    assert_eq!(
        open_now.record.incident.unwrap().state,
        IncidentState::Open,
        "an open incident survives"
    );
    assert!(
        store
            .proof_link_by_token_hash(&[42; 32])
            .await
            .unwrap()
            .is_some()
    );
    let reprocessing_now = store
        .incident(p, &reprocessing_incident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reprocessing_now.record.incident.unwrap().state,
        IncidentState::Reprocessing
    );
    assert_eq!(
        store.pending_deliveries().await.unwrap(),
        1,
        "its callback is still queued"
    );
    // Past the recent one's resolution it goes too; the unfinished ones never do.
    assert_eq!(
        store.purge_resolved_history(at(2000), 100).await.unwrap(),
        1
    );
    assert!(store.event(p, &recent).await.unwrap().is_none());
    assert_eq!(
        store
            .purge_resolved_history(at(1_000_000), 100)
            .await
            .unwrap(),
        0
    );
    for kept in [&open, &reprocessing, &awaiting] {
        assert!(
            store.event(p, kept).await.unwrap().is_some(),
            "{kept:?} was deleted"
        );
    }
}

/// Users: unique emails, compared and stored lower-case.
pub async fn users(store: &dyn Store) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let email = format!("{}@Example.COM", unique("Alice"));
    store
        .create_user(User {
            id: new_id(ids::USER, T0),
            email: email.clone(),
            password_hash: "$argon2id$v=19$stub".to_owned(),
            created_at: T0,
        })
        .await
        .unwrap();
    let again = store
        .create_user(User {
            id: new_id(ids::USER, T0),
            email: email.to_uppercase(),
            password_hash: "$argon2id$v=19$other".to_owned(),
            created_at: T0,
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    let found = store
        .user_by_email(&email.to_uppercase())
        .await
        .unwrap()
        .expect("case-insensitive look-up");
    assert_eq!(found.email, email.to_lowercase());
    assert_eq!(found.password_hash, "$argon2id$v=19$stub");
    assert_eq!(found.created_at, T0);
    assert_eq!(
        store.user_by_email(&email.to_lowercase()).await.unwrap(),
        Some(found)
    );
    assert_eq!(
        store.user_by_email("nobody@example.com").await.unwrap(),
        None
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
}

/// A receipt creates the event; a duplicate is counted, keeps the deadline
/// and goes on the timeline, in order.
pub async fn receipt_then_duplicate(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_receipt");
    let first = store
        .apply(&project.id, &k, receipt(&k, Some("cus_1")), ctx(at(0)))
        .await
        .unwrap();
    assert_eq!(first.transition.outcome, Outcome::Created);
    let record = &first.transition.record;
    assert_eq!(record.state, EventState::AwaitingResult);
    assert_eq!(record.deliveries, 1);
    assert_eq!(record.deadline_at, Some(at(1800)));

    let second = store
        .apply(&project.id, &k, receipt(&k, Some("cus_1")), ctx(at(5)))
        .await
        .unwrap();
    assert_eq!(second.transition.outcome, Outcome::Duplicate);
    assert_eq!(second.transition.record.deliveries, 2);
    assert_eq!(second.transition.record.deadline_at, Some(at(1800)));

    let stored = store.event(&project.id, &k).await.unwrap().expect("stored");
    assert_eq!(stored.record, second.transition.record);
    let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            TimelineKind::ReceiptRecorded,
            TimelineKind::ReceiptDuplicate
        ]
    );
    assert_eq!(stored.timeline[0].at, at(0));
    assert_eq!(stored.timeline[1].at, at(5));
    assert_eq!(
        stored.timeline[0].actor,
        Actor::ApiKey("key_conformance".to_owned())
    );
    assert_eq!(
        stored.timeline[1].detail.get("deliveries"),
        Some(&serde_json::json!(2))
    );
    assert_eq!(
        store
            .event(&project.id, &stripe("evt_other"))
            .await
            .unwrap(),
        None
    );
    // Same event id under another provider is another event.
    assert_eq!(
        store
            .event(&project.id, &key(Provider::Shopify, "evt_receipt"))
            .await
            .unwrap(),
        None
    );
}

/// A result that arrives before its receipt is kept; the receipt completes it.
pub async fn result_before_receipt(store: &dyn Store) {
    let project = new_project(store).await;
    let k = key(Provider::Shopify, "9001");
    let early = store
        .apply(
            &project.id,
            &k,
            result(&k, ResultStatus::Success),
            ctx(at(0)),
        )
        .await
        .unwrap();
    assert_eq!(early.transition.outcome, Outcome::Created);
    let stored = store.event(&project.id, &k).await.unwrap().expect("kept");
    assert_eq!(stored.record.state, EventState::Succeeded);
    assert_eq!(stored.record.received_at, None);
    assert_eq!(stored.record.event_type, None);

    let late = store
        .apply(
            &project.id,
            &k,
            receipt_for(&k, "orders/paid", Some("shop_1"), 1800),
            ctx(at(3)),
        )
        .await
        .unwrap();
    assert_eq!(late.transition.outcome, Outcome::Created);
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    assert_eq!(stored.record.state, EventState::Succeeded);
    assert_eq!(stored.record.event_type.as_deref(), Some("orders/paid"));
    assert_eq!(stored.record.deliveries, 1);
    assert_eq!(stored.record.received_at, Some(at(3)));
    assert_eq!(stored.record.next_due_at(), None);
    let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![TimelineKind::ResultSuccess, TimelineKind::ReceiptRecorded]
    );
    let found = store
        .search_events(
            &project.id,
            &EventFilter {
                subject: Some("shop_1".to_owned()),
                ..EventFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(event_ids(&found), strings(&["9001"]));
}

/// A failure opens an incident, which is listed and readable by id.
pub async fn failure_opens_an_incident_that_is_listed(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_fail");
    let incident_id =
        failed_event(store, &project, &k, "invoice.paid", Some("cus_9"), at(10)).await;
    assert!(ids::has_shape(&incident_id, ids::INCIDENT), "{incident_id}");

    let listed = store
        .list_incidents(&project.id, &IncidentFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.next_cursor, None);
    let incident = listed.data[0].incident.as_ref().unwrap();
    assert_eq!(incident.id, incident_id);
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.kind, IncidentKind::FailedResult);
    assert_eq!(incident.opened_at, at(10));

    let stored = store
        .incident(&project.id, &incident_id)
        .await
        .unwrap()
        .expect("incident by id");
    assert_eq!(stored.record.state, EventState::Failed);
    assert_eq!(stored.record.event_id, "evt_fail");
    let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            TimelineKind::ReceiptRecorded,
            TimelineKind::ResultFailure,
            TimelineKind::IncidentOpened
        ]
    );
    assert_eq!(store.incident(&project.id, "inc_nope").await.unwrap(), None);
}

/// Every incident filter, alone, and the default order.
pub async fn incident_list_filters(store: &dyn Store) {
    let project = new_project(store).await;
    // a: stripe invoice.paid cus_a, failed, open, opened at +10
    let a = stripe("evt_a");
    failed_event(store, &project, &a, "invoice.paid", Some("cus_a"), at(10)).await;
    // b: shopify orders/paid cus_b, failed, resolved by hand, opened at +20
    let b = key(Provider::Shopify, "evt_b");
    let b_incident = failed_event(store, &project, &b, "orders/paid", Some("cus_b"), at(20)).await;
    store
        .apply_to_incident(
            &project.id,
            &b_incident,
            Command::ManualResolve {
                note: "credited by hand".to_owned(),
            },
            ctx(at(25)),
        )
        .await
        .unwrap();
    // d: custom x.y cus_a, failed, reprocessing, opened at +30
    let d = key(Provider::Custom, "evt_d");
    let d_incident = failed_event(store, &project, &d, "x.y", Some("cus_a"), at(30)).await;
    request_reprocess(store, &project, &d_incident, at(35)).await;
    // c: stripe invoice.paid cus_b, no result by its deadline: missing, open, opened at +100
    let c = stripe("evt_c");
    store
        .apply(
            &project.id,
            &c,
            receipt_for(&c, "invoice.paid", Some("cus_b"), 60),
            ctx(at(0)),
        )
        .await
        .unwrap();
    let swept = store.sweep_due(at(100), 100).await.unwrap();
    assert_eq!(swept.examined, 1);

    let list = |filter: IncidentFilter| {
        let project_id = project.id.clone();
        async move {
            event_ids(
                &store
                    .list_incidents(&project_id, &filter, &page(100))
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(
        list(IncidentFilter::default()).await,
        strings(&["evt_c", "evt_d", "evt_b", "evt_a"]),
        "most recently opened first"
    );
    let by_state = |state| IncidentFilter {
        state: Some(state),
        ..IncidentFilter::default()
    };
    assert_eq!(
        list(by_state(IncidentState::Open)).await,
        strings(&["evt_c", "evt_a"])
    );
    assert_eq!(
        list(by_state(IncidentState::Resolved)).await,
        strings(&["evt_b"])
    );
    assert_eq!(
        list(by_state(IncidentState::Reprocessing)).await,
        strings(&["evt_d"])
    );
    let by_kind = |kind| IncidentFilter {
        kind: Some(kind),
        ..IncidentFilter::default()
    };
    assert_eq!(
        list(by_kind(IncidentKind::MissingResult)).await,
        strings(&["evt_c"])
    );
    assert_eq!(
        list(by_kind(IncidentKind::FailedResult)).await,
        strings(&["evt_d", "evt_b", "evt_a"])
    );
    assert_eq!(
        list(IncidentFilter {
            provider: Some(Provider::Shopify),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_b"])
    );
    assert_eq!(
        list(IncidentFilter {
            event_type: Some("invoice.paid".to_owned()),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_c", "evt_a"])
    );
    assert_eq!(
        list(IncidentFilter {
            subject: Some("cus_a".to_owned()),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_d", "evt_a"])
    );
    assert_eq!(
        list(IncidentFilter {
            opened_after: Some(at(20)),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_c", "evt_d", "evt_b"])
    );
    assert_eq!(
        list(IncidentFilter {
            opened_before: Some(at(20)),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_a"])
    );
    assert_eq!(
        list(IncidentFilter {
            state: Some(IncidentState::Open),
            subject: Some("cus_b".to_owned()),
            provider: Some(Provider::Stripe),
            ..IncidentFilter::default()
        })
        .await,
        strings(&["evt_c"]),
        "filters combine with AND"
    );
    assert!(
        list(IncidentFilter {
            subject: Some("cus_nobody".to_owned()),
            ..IncidentFilter::default()
        })
        .await
        .is_empty()
    );
}

/// 45 incidents, 10 per page: every one exactly once, in order.
pub async fn incident_pagination(store: &dyn Store) {
    let project = new_project(store).await;
    let mut expected = Vec::new();
    for i in 0..45_i64 {
        let k = stripe(&format!("evt_page_{i:02}"));
        // Three incidents share each opening time, so ties are broken by id.
        let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(i / 3)).await;
        expected.push((at(i / 3), incident_id));
    }
    expected.sort_by(|x, y| y.cmp(x));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = Vec::new();
    loop {
        let page = store
            .list_incidents(
                &project.id,
                &IncidentFilter::default(),
                &PageRequest {
                    limit: 10,
                    cursor: cursor.clone(),
                },
            )
            .await
            .unwrap();
        pages.push(page.data.len());
        seen.extend(
            page.data
                .iter()
                .map(|r| r.incident.as_ref().unwrap().id.clone()),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages.len() <= 5, "too many pages: {pages:?}");
    }
    assert_eq!(pages, vec![10, 10, 10, 10, 5]);
    assert_eq!(
        seen, expected,
        "no gaps, no duplicates, newest opened first"
    );

    // Filters and pagination together.
    let filtered = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                opened_before: Some(at(5)),
                ..IncidentFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(filtered.data.len(), 10);
    let rest = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                opened_before: Some(at(5)),
                ..IncidentFilter::default()
            },
            &PageRequest {
                limit: 10,
                cursor: filtered.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.data.len(), 5);
    assert_eq!(rest.next_cursor, None);
}

/// Event search by subject, state and event id, newest first, paginated.
pub async fn event_search(store: &dyn Store) {
    let project = new_project(store).await;
    for (i, subject) in ["cus_x", "cus_y", "cus_x", "cus_x", "cus_y"]
        .iter()
        .enumerate()
    {
        let k = stripe(&format!("evt_s{i}"));
        store
            .apply(
                &project.id,
                &k,
                receipt(&k, Some(subject)),
                ctx(at(i64::try_from(i).unwrap())),
            )
            .await
            .unwrap();
    }
    let fail = stripe("evt_s1");
    store
        .apply(
            &project.id,
            &fail,
            result(&fail, ResultStatus::Failure),
            ctx(at(10)),
        )
        .await
        .unwrap();
    let win = stripe("evt_s2");
    store
        .apply(
            &project.id,
            &win,
            result(&win, ResultStatus::Success),
            ctx(at(10)),
        )
        .await
        .unwrap();
    let search = |filter: EventFilter, limit: u32, cursor: Option<String>| {
        let project_id = project.id.clone();
        async move {
            store
                .search_events(&project_id, &filter, &PageRequest { limit, cursor })
                .await
                .unwrap()
        }
    };
    let subject_x = EventFilter {
        subject: Some("cus_x".to_owned()),
        ..EventFilter::default()
    };
    assert_eq!(
        event_ids(&search(subject_x.clone(), 10, None).await),
        strings(&["evt_s3", "evt_s2", "evt_s0"]),
        "newest first"
    );
    let first = search(subject_x.clone(), 2, None).await;
    assert_eq!(event_ids(&first), strings(&["evt_s3", "evt_s2"]));
    let second = search(subject_x.clone(), 2, first.next_cursor.clone()).await;
    assert_eq!(event_ids(&second), strings(&["evt_s0"]));
    assert_eq!(second.next_cursor, None);

    let state = |state| EventFilter {
        state: Some(state),
        ..EventFilter::default()
    };
    assert_eq!(
        event_ids(&search(state(EventState::Failed), 10, None).await),
        strings(&["evt_s1"])
    );
    assert_eq!(
        event_ids(&search(state(EventState::Succeeded), 10, None).await),
        strings(&["evt_s2"])
    );
    assert_eq!(
        event_ids(&search(state(EventState::AwaitingResult), 10, None).await),
        strings(&["evt_s4", "evt_s3", "evt_s0"])
    );
    assert_eq!(
        event_ids(
            &search(
                EventFilter {
                    subject: Some("cus_y".to_owned()),
                    state: Some(EventState::AwaitingResult),
                    ..EventFilter::default()
                },
                10,
                None
            )
            .await
        ),
        strings(&["evt_s4"])
    );
    assert_eq!(
        event_ids(
            &search(
                EventFilter {
                    event_id: Some("evt_s3".to_owned()),
                    ..EventFilter::default()
                },
                10,
                None
            )
            .await
        ),
        strings(&["evt_s3"])
    );
    let all = search(EventFilter::default(), 100, None).await;
    assert_eq!(all.data.len(), 5);
    assert_eq!(all.next_cursor, None);
}

/// A cursor the store did not hand out is `NotFound("cursor")`.
pub async fn invalid_cursors(store: &dyn Store) {
    let project = new_project(store).await;
    for i in 0..3 {
        let k = stripe(&format!("evt_c{i}"));
        failed_event(store, &project, &k, "invoice.paid", None, at(i)).await;
    }
    let incidents_page = store
        .list_incidents(&project.id, &IncidentFilter::default(), &page(1))
        .await
        .unwrap();
    let events_page = store
        .search_events(&project.id, &EventFilter::default(), &page(1))
        .await
        .unwrap();
    let incidents_cursor = incidents_page.next_cursor.expect("more incidents");
    let events_cursor = events_page.next_cursor.expect("more events");
    for bad in ["", "!!!", "not base64 at all", events_cursor.as_str()] {
        let got = store
            .list_incidents(
                &project.id,
                &IncidentFilter::default(),
                &PageRequest {
                    limit: 10,
                    cursor: Some(bad.to_owned()),
                },
            )
            .await;
        assert!(
            matches!(got, Err(StoreError::NotFound("cursor"))),
            "incidents cursor {bad:?}: {got:?}"
        );
    }
    for bad in ["", "%%%", incidents_cursor.as_str()] {
        let got = store
            .search_events(
                &project.id,
                &EventFilter::default(),
                &PageRequest {
                    limit: 10,
                    cursor: Some(bad.to_owned()),
                },
            )
            .await;
        assert!(
            matches!(got, Err(StoreError::NotFound("cursor"))),
            "events cursor {bad:?}: {got:?}"
        );
    }
}

/// The sweeper examines only due records (in `limit`-sized batches), opens
/// exactly one incident for each, and then finds nothing.
pub async fn sweep_opens_one_incident_per_due_event(store: &dyn Store) {
    let project = new_project(store).await;
    for i in 0..50 {
        let k = stripe(&format!("evt_later_{i}"));
        store
            .apply(
                &project.id,
                &k,
                receipt_for(&k, "invoice.paid", None, 3600),
                ctx(at(0)),
            )
            .await
            .unwrap();
    }
    let mut due = BTreeSet::new();
    for i in 0..5 {
        let k = stripe(&format!("evt_due_{i}"));
        store
            .apply(
                &project.id,
                &k,
                receipt_for(&k, "invoice.paid", None, 60 + u32::try_from(i).unwrap()),
                ctx(at(0)),
            )
            .await
            .unwrap();
        due.insert(k.event_id);
    }
    // One that already has its result is never due.
    let done = stripe("evt_done");
    store
        .apply(
            &project.id,
            &done,
            receipt_for(&done, "invoice.paid", None, 60),
            ctx(at(0)),
        )
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &done,
            result(&done, ResultStatus::Success),
            ctx(at(1)),
        )
        .await
        .unwrap();

    let nothing_yet = store.sweep_due(at(59), 100).await.unwrap();
    assert_eq!(nothing_yet.examined, 0);
    assert_eq!(nothing_yet.oldest_due_at, None);

    let first = store.sweep_due(at(120), 3).await.unwrap();
    assert_eq!(first.examined, 3, "limit bounds a batch");
    assert_eq!(first.oldest_due_at, Some(at(60)), "earliest due first");
    let second = store.sweep_due(at(120), 100).await.unwrap();
    assert_eq!(second.examined, 2, "only due records are examined");
    assert_eq!(second.oldest_due_at, Some(at(63)));

    let mut opened = BTreeSet::new();
    let mut incident_ids = BTreeSet::new();
    for (project_id, transition) in first.transitions.iter().chain(&second.transitions) {
        assert_eq!(project_id, &project.id);
        assert_eq!(transition.record.state, EventState::Overdue);
        let incident = transition.record.incident.as_ref().unwrap();
        assert_eq!(incident.kind, IncidentKind::MissingResult);
        assert!(transition.effects.iter().any(|e| matches!(
            e,
            Effect::IncidentOpened {
                kind: IncidentKind::MissingResult,
                ..
            }
        )));
        assert!(
            transition
                .entries
                .iter()
                .all(|e| e.actor == Actor::System("sweeper".to_owned()))
        );
        opened.insert(transition.record.event_id.clone());
        incident_ids.insert(incident.id.clone());
    }
    assert_eq!(opened, due);
    assert_eq!(incident_ids.len(), 5, "one distinct incident per event");

    let again = store.sweep_due(at(120), 100).await.unwrap();
    assert_eq!(again.examined, 0);
    assert!(again.transitions.is_empty());

    let listed = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                kind: Some(IncidentKind::MissingResult),
                ..IncidentFilter::default()
            },
            &page(100),
        )
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 5);
    let stored = store
        .event(&project.id, &stripe("evt_due_0"))
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            TimelineKind::ReceiptRecorded,
            TimelineKind::DeadlinePassed,
            TimelineKind::IncidentOpened
        ]
    );

    // The 50 others come due later, all at once.
    let later = store.sweep_due(at(3600), 100).await.unwrap();
    assert_eq!(later.examined, 50);
}

/// A delivered repair callback with no result by its deadline returns the
/// incident to `open` on the next sweep.
pub async fn sweep_returns_an_unanswered_repair_to_open(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_repair");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    request_reprocess(store, &project, &incident_id, at(10)).await;
    let jobs = store.claim_deliveries(at(10), LEASE, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    store
        .finish_delivery_attempt(&jobs[0], report(Some(200)), NextStep::Done, at(11))
        .await
        .unwrap();
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    assert_eq!(stored.record.next_due_at(), Some(at(11 + 600)));

    assert_eq!(store.sweep_due(at(600), 10).await.unwrap().examined, 0);
    let swept = store.sweep_due(at(700), 10).await.unwrap();
    assert_eq!(swept.examined, 1);
    let incident = swept.transitions[0].1.record.incident.clone().unwrap();
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(
        incident.reprocess.map(|r| r.status),
        Some(ReprocessStatus::NoResult)
    );
    assert_eq!(store.sweep_due(at(800), 10).await.unwrap().examined, 0);
    let listed = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                state: Some(IncidentState::Open),
                ..IncidentFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(event_ids(&listed), strings(&["evt_repair"]));
}

/// Claim, lease, retry at a later time, deliver: the outbox row's lifecycle.
pub async fn delivery_lifecycle(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_deliver");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    assert!(
        store
            .claim_deliveries(at(0), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let reprocess_id = request_reprocess(store, &project, &incident_id, at(10)).await;
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);
    assert!(
        store
            .claim_deliveries(at(9), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before it was requested"
    );

    let jobs = store.claim_deliveries(at(10), LEASE, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.reprocess_id, reprocess_id);
    assert_eq!(job.project_id, project.id);
    assert_eq!(job.incident_id, incident_id);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.repair_url, project.repair_url);
    assert_eq!(job.lease_until, at(70));
    assert_eq!(job.record.event_id, "evt_deliver");
    assert_eq!(
        job.record.incident.as_ref().unwrap().state,
        IncidentState::Reprocessing
    );
    assert!(
        store
            .claim_deliveries(at(20), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "a leased job is hidden"
    );

    let retry = store
        .finish_delivery_attempt(job, report(Some(503)), NextStep::RetryAt(at(100)), at(12))
        .await
        .unwrap();
    let last = retry.transition.entries.last().unwrap();
    assert_eq!(last.kind, TimelineKind::CallbackAttempt);
    assert_eq!(last.actor, Actor::System("dispatcher".to_owned()));
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);
    assert!(
        store
            .claim_deliveries(at(99), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimable again only at the retry time"
    );

    // The project's current repair URL goes with the job.
    store
        .update_project(
            &project.id,
            ProjectPatch {
                repair_url: Some(Some("https://moved.example/repair".to_owned())),
                ..ProjectPatch::default()
            },
        )
        .await
        .unwrap();
    let jobs = store.claim_deliveries(at(100), LEASE, 10).await.unwrap();
    assert_eq!(job_ids(&jobs), vec![reprocess_id.clone()]);
    let job = &jobs[0];
    assert_eq!(job.attempt, 2);
    assert_eq!(
        job.repair_url.as_deref(),
        Some("https://moved.example/repair")
    );

    let done = store
        .finish_delivery_attempt(job, report(Some(200)), NextStep::Done, at(101))
        .await
        .unwrap();
    let reprocess = done
        .transition
        .record
        .incident
        .as_ref()
        .unwrap()
        .reprocess
        .clone()
        .unwrap();
    assert_eq!(reprocess.status, ReprocessStatus::Delivered);
    assert_eq!(reprocess.attempts, 2);
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        store
            .claim_deliveries(at(100_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "a delivered callback is never claimed again"
    );
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    let attempts = stored
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::CallbackAttempt)
        .count();
    assert_eq!(attempts, 2);
    assert_eq!(stored.record, done.transition.record);
}

/// Giving up ends the row for good; an expired lease makes a job claimable
/// again, and the late finisher of the old claim does not touch the row.
pub async fn delivery_give_up_and_lease_expiry(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_gone");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    request_reprocess(store, &project, &incident_id, at(1)).await;

    let first = store.claim_deliveries(at(1), LEASE, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    // The lease runs out (the dispatcher died): another claim takes it.
    let second = store.claim_deliveries(at(62), LEASE, 10).await.unwrap();
    assert_eq!(job_ids(&second), job_ids(&first));
    assert_eq!(second[0].attempt, 1, "the attempt was never recorded");
    assert!(second[0].lease_until > first[0].lease_until);

    // The stale claim finishes late: its attempt is recorded but the row
    // stays with the current claim.
    store
        .finish_delivery_attempt(&first[0], report(None), NextStep::RetryAt(at(70)), at(63))
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries(at(80), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "the current lease still hides the job"
    );

    let gave_up = store
        .finish_delivery_attempt(
            &second[0],
            report(Some(410)),
            NextStep::GiveUp(GiveUpReason::Gone),
            at(90),
        )
        .await
        .unwrap();
    let incident = gave_up.transition.record.incident.clone().unwrap();
    assert_eq!(incident.state, IncidentState::Open);
    assert!(
        gave_up
            .transition
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CallbackGaveUp { .. }))
    );
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    let attempts: Vec<u64> = stored
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::CallbackAttempt)
        .filter_map(|e| e.detail.get("attempt").and_then(serde_json::Value::as_u64))
        .collect();
    assert_eq!(
        attempts,
        vec![1, 2],
        "both claims' attempts are on the timeline"
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        store
            .claim_deliveries(at(1_000_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "a given-up callback is never claimed again"
    );
    let listed = store
        .list_incidents(
            &project.id,
            &IncidentFilter {
                state: Some(IncidentState::Open),
                ..IncidentFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(event_ids(&listed), strings(&["evt_gone"]));

    // A new reprocess is accepted once the previous one gave up.
    request_reprocess(store, &project, &incident_id, at(100)).await;
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);
}

/// A success result cancels a callback still waiting to be delivered.
pub async fn success_cancels_a_pending_callback(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_cancel");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    let reprocess_id = request_reprocess(store, &project, &incident_id, at(1)).await;
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);

    let success = store
        .apply(
            &project.id,
            &k,
            result(&k, ResultStatus::Success),
            ctx(at(2)),
        )
        .await
        .unwrap();
    assert!(
        success
            .transition
            .effects
            .contains(&Effect::CancelCallback {
                reprocess_id: reprocess_id.clone()
            })
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        store
            .claim_deliveries(at(1_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let stored = store
        .incident(&project.id, &incident_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.record.incident.unwrap().state,
        IncidentState::Resolved
    );

    // A callback already claimed when the success arrives: the attempt is
    // recorded, its retry is dropped.
    let k2 = stripe("evt_cancel_claimed");
    let incident2 = failed_event(store, &project, &k2, "invoice.paid", None, at(10)).await;
    request_reprocess(store, &project, &incident2, at(11)).await;
    let jobs = store.claim_deliveries(at(11), LEASE, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    store
        .apply(
            &project.id,
            &k2,
            result(&k2, ResultStatus::Success),
            ctx(at(12)),
        )
        .await
        .unwrap();
    store
        .finish_delivery_attempt(
            &jobs[0],
            report(Some(500)),
            NextStep::RetryAt(at(20)),
            at(13),
        )
        .await
        .unwrap();
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        store
            .claim_deliveries(at(1_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Commands by incident id, refusals, and appended human entries.
pub async fn incident_commands_and_entries(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_cmd");
    let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;

    let unknown = store
        .apply_to_incident(
            &project.id,
            "inc_nope",
            Command::ManualResolve {
                note: "x".to_owned(),
            },
            ctx(at(1)),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let no_event = store
        .apply(&project.id, &stripe("evt_none"), Command::Tick, ctx(at(1)))
        .await;
    assert!(
        matches!(
            no_event,
            Err(StoreError::Transition(
                sendpromptly_core::machine::TransitionError::UnknownEvent
            ))
        ),
        "{no_event:?}"
    );
    assert_eq!(
        store.event(&project.id, &stripe("evt_none")).await.unwrap(),
        None
    );

    let first = request_reprocess(store, &project, &incident_id, at(2)).await;
    let refused = store
        .apply_to_incident(
            &project.id,
            &incident_id,
            Command::RequestReprocess {
                reprocess_id: new_id(ids::REPROCESS, at(3)),
                note: None,
                result_deadline_seconds: 600,
            },
            ctx(at(3)),
        )
        .await;
    assert!(
        matches!(
            &refused,
            Err(StoreError::Transition(
                sendpromptly_core::machine::TransitionError::CallbackInFlight { reprocess_id }
            )) if *reprocess_id == first
        ),
        "{refused:?}"
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);

    let resolved = store
        .apply_to_incident(
            &project.id,
            &incident_id,
            Command::ManualResolve {
                note: "fixed by hand".to_owned(),
            },
            Context {
                actor: Actor::Console("alice@example.com".to_owned()),
                ..ctx(at(4))
            },
        )
        .await
        .unwrap();
    assert_eq!(
        resolved.transition.record.incident.unwrap().state,
        IncidentState::Resolved
    );
    assert_eq!(
        store.pending_deliveries().await.unwrap(),
        0,
        "manual resolution cancels the pending callback"
    );

    let entry = TimelineEntry::new(
        at(5),
        TimelineKind::ProofLinkCreated,
        Actor::Console("alice@example.com".to_owned()),
        serde_json::json!({"proof_link_id": "prf_x"}),
    );
    store
        .append_incident_entry(&project.id, &incident_id, entry.clone())
        .await
        .unwrap();
    let missing = store
        .append_incident_entry(&project.id, "inc_nope", entry.clone())
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let stored = store
        .incident(&project.id, &incident_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.timeline.last(), Some(&entry));
    assert_eq!(
        stored.record.incident.unwrap().state,
        IncidentState::Resolved
    );
    let seqs: Vec<Timestamp> = stored.timeline.iter().map(|e| e.at).collect();
    let mut ordered = seqs.clone();
    ordered.sort();
    assert_eq!(seqs, ordered, "timeline in order");
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

/// Proof links: create, look up by token hash and id, list, revoke once.
pub async fn proof_links(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let incident_id = failed_event(
        store,
        &project,
        &stripe("evt_proof"),
        "invoice.paid",
        None,
        at(0),
    )
    .await;
    let first = proof_link(&project, &incident_id, 7, at(10));
    let second = proof_link(&project, &incident_id, 8, at(20));
    store.create_proof_link(first.clone()).await.unwrap();
    store.create_proof_link(second.clone()).await.unwrap();

    let same_token = store
        .create_proof_link(ProofLink {
            id: new_id(ids::PROOF_LINK, at(30)),
            ..first.clone()
        })
        .await;
    assert!(
        matches!(same_token, Err(StoreError::Conflict(_))),
        "{same_token:?}"
    );
    let foreign = store
        .create_proof_link(ProofLink {
            project_id: other.id.clone(),
            ..proof_link(&other, &incident_id, 9, at(30))
        })
        .await;
    assert!(
        matches!(foreign, Err(StoreError::NotFound(_))),
        "a link for another project's incident: {foreign:?}"
    );

    assert_eq!(
        store.proof_link_by_token_hash(&[7; 32]).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.proof_link_by_token_hash(&[1; 32]).await.unwrap(),
        None
    );
    assert_eq!(
        store.proof_link(&project.id, &first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.proof_link(&other.id, &first.id).await.unwrap(), None);
    assert_eq!(
        store
            .proof_links_for_incident(&project.id, &incident_id)
            .await
            .unwrap(),
        vec![second.clone(), first.clone()]
    );

    assert!(
        !store
            .revoke_proof_link(&other.id, &first.id, at(40))
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_proof_link(&project.id, &first.id, at(40))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_proof_link(&project.id, &first.id, at(41))
            .await
            .unwrap(),
        "revoked once"
    );
    assert!(
        !store
            .revoke_proof_link(&project.id, "prf_nope", at(41))
            .await
            .unwrap()
    );
    let revoked = store
        .proof_link_by_token_hash(&[7; 32])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(40)));
    assert_eq!(
        store
            .proof_link(&project.id, &second.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

/// Idempotency keys: the four outcomes, takeover, expiry, abandon, purge.
pub async fn idempotency(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let lock = Duration::from_secs(30);
    let p = project.id.as_str();
    let begin = |key: &'static str, hash: &'static [u8], now: Timestamp| async move {
        store
            .idempotency_begin(p, key, hash, now, lock)
            .await
            .unwrap()
    };

    assert_eq!(
        begin("k1", b"body-1", at(0)).await,
        IdempotencyBegin::Proceed
    );
    assert_eq!(
        begin("k1", b"body-1", at(1)).await,
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        begin("k1", b"body-2", at(1)).await,
        IdempotencyBegin::Mismatch
    );
    store
        .idempotency_complete(p, "k1", 201, br#"{"ok":true}"#)
        .await
        .unwrap();
    assert_eq!(
        begin("k1", b"body-1", at(2)).await,
        IdempotencyBegin::Replay {
            status: 201,
            body: br#"{"ok":true}"#.to_vec()
        }
    );
    assert_eq!(
        begin("k1", b"body-2", at(2)).await,
        IdempotencyBegin::Mismatch
    );
    // Another project's identical key is another key.
    assert_eq!(
        store
            .idempotency_begin(&other.id, "k1", b"body-2", at(2), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Proceed
    );
    // 4xx responses are stored too.
    assert_eq!(begin("k4", b"bad", at(0)).await, IdempotencyBegin::Proceed);
    store
        .idempotency_complete(p, "k4", 422, br#"{"error":{}}"#)
        .await
        .unwrap();
    assert_eq!(
        begin("k4", b"bad", at(5)).await,
        IdempotencyBegin::Replay {
            status: 422,
            body: br#"{"error":{}}"#.to_vec()
        }
    );

    // Older than 24 h: absent.
    let day = 24 * 3600;
    assert!(matches!(
        begin("k1", b"body-1", at(day - 1)).await,
        IdempotencyBegin::Replay { .. }
    ));
    assert_eq!(
        begin("k1", b"body-3", at(day + 1)).await,
        IdempotencyBegin::Proceed
    );
    assert_eq!(
        begin("k1", b"body-3", at(day + 2)).await,
        IdempotencyBegin::InFlight
    );

    // Takeover after the lock.
    assert_eq!(begin("k2", b"x", at(0)).await, IdempotencyBegin::Proceed);
    assert_eq!(begin("k2", b"x", at(29)).await, IdempotencyBegin::InFlight);
    assert_eq!(begin("k2", b"x", at(31)).await, IdempotencyBegin::Proceed);
    assert_eq!(begin("k2", b"x", at(32)).await, IdempotencyBegin::InFlight);

    // Abandon: the next request runs again.
    assert_eq!(begin("k3", b"y", at(0)).await, IdempotencyBegin::Proceed);
    store.idempotency_abandon(p, "k3").await.unwrap();
    assert_eq!(begin("k3", b"y", at(1)).await, IdempotencyBegin::Proceed);
    store.idempotency_abandon(p, "nothing").await.unwrap();

    // Purge removes keys created before the cut, keeps the rest.
    // Created: k2 (+31 s), k3 (+1 s), k4 (+0 s), other/k1 (+2 s), k1 (+1 day).
    let purged = store.purge_idempotency_keys(at(3600)).await.unwrap();
    assert_eq!(purged, 4);
    assert_eq!(begin("k3", b"z", at(3700)).await, IdempotencyBegin::Proceed);
    assert_eq!(
        begin("k1", b"body-3", at(day + 3)).await,
        IdempotencyBegin::InFlight,
        "a newer key survives the purge"
    );
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

/// `apply_idempotent`: the key's verdict, the command and the remembered
/// response in one transaction: a replay runs nothing, a different request
/// is a mismatch, sixteen identical requests at once run once, a key in
/// flight on the begin/complete path is in flight here too, and an expired
/// key runs again.
pub async fn idempotent_apply(store: &dyn Store) {
    let project = new_project(store).await;
    let key = api_key(&project, 91, at(0));
    store.insert_api_key(key.clone()).await.unwrap();
    let (p, key_id) = (project.id.as_str(), key.id.as_str());
    let run = |event: EventKey, idem: &'static str, hash: &'static [u8], now: Timestamp| {
        let command = receipt(&event, None);
        async move {
            store
                .apply_idempotent(p, key_id, &event, command, ctx(now), idempotent(idem, hash))
                .await
        }
    };
    let replayed = |n: u32| StoredResponse {
        status: 201,
        body: format!(r#"{{"deliveries":{n}}}"#).into_bytes(),
    };

    let k = stripe(&unique("evt_idem"));
    let first = run(k.clone(), "i1", b"h1", at(0)).await.unwrap();
    assert!(
        matches!(first, IdempotentOutcome::Applied(ref a) if a.transition.record.deliveries == 1)
    );
    match run(k.clone(), "i1", b"h1", at(5)).await.unwrap() {
        IdempotentOutcome::Replay(response) => assert_eq!(response, replayed(1)),
        other => panic!("expected a replay, got {other:?}"),
    }
    assert!(matches!(
        run(k.clone(), "i1", b"other", at(6)).await.unwrap(),
        IdempotentOutcome::Mismatch
    ));
    let stored = store.event(p, &k).await.unwrap().expect("stored");
    assert_eq!(stored.record.deliveries, 1, "a replay must not run again");

    // Sixteen identical requests at once: one runs, fifteen replay it.
    let k2 = stripe(&unique("evt_idem_race"));
    let tasks: Vec<BoxedTask<'_, StoreResult<IdempotentOutcome>>> = (0..16)
        .map(|_| Box::pin(run(k2.clone(), "race", b"same", at(10))) as BoxedTask<'_, _>)
        .collect();
    let answers = run_in_parallel(tasks);
    let ran = answers
        .iter()
        .filter(|a| matches!(a, Ok(IdempotentOutcome::Applied(_))))
        .count();
    let replays = answers
        .iter()
        .filter(|a| matches!(a, Ok(IdempotentOutcome::Replay(r)) if *r == replayed(1)))
        .count();
    assert_eq!((ran, replays), (1, 15), "{answers:?}");
    assert_eq!(
        store
            .event(p, &k2)
            .await
            .unwrap()
            .unwrap()
            .record
            .deliveries,
        1
    );

    // Sixteen different keys at once: each runs.
    let tasks: Vec<BoxedTask<'_, StoreResult<IdempotentOutcome>>> = (0..16)
        .map(|i| {
            let k = stripe(&unique(&format!("evt_idem_many_{i}")));
            let idem: &'static str = Box::leak(format!("many-{i}").into_boxed_str());
            Box::pin(run(k, idem, b"h", at(11))) as BoxedTask<'_, _>
        })
        .collect();
    for answer in run_in_parallel(tasks) {
        assert!(
            matches!(answer, Ok(IdempotentOutcome::Applied(_))),
            "{answer:?}"
        );
    }

    // A key taken on the begin/complete path and not completed is in flight
    // until its lock passes, then taken over.
    let lock = Duration::from_secs(30);
    assert_eq!(
        store
            .idempotency_begin(p, "mid", b"m", at(20), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Proceed
    );
    let k3 = stripe(&unique("evt_idem_mid"));
    assert!(matches!(
        run(k3.clone(), "mid", b"m", at(21)).await.unwrap(),
        IdempotentOutcome::InFlight
    ));
    assert!(matches!(
        run(k3.clone(), "mid", b"m", at(51)).await.unwrap(),
        IdempotentOutcome::Applied(_)
    ));
    // ... and what it remembered is what the begin/complete path replays.
    assert_eq!(
        store
            .idempotency_begin(p, "mid", b"m", at(52), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Replay {
            status: 201,
            body: replayed(1).body
        }
    );

    // After 24 h the key is new again: the same event gets a second delivery.
    let day = 24 * 3600;
    assert!(matches!(
        run(k.clone(), "i1", b"h1", at(day + 1)).await.unwrap(),
        IdempotentOutcome::Applied(ref a) if a.transition.record.deliveries == 2
    ));

    // A revoked key runs nothing and remembers nothing.
    store.revoke_api_key(p, key_id, at(100)).await.unwrap();
    let k4 = stripe(&unique("evt_idem_revoked"));
    assert!(matches!(
        run(k4.clone(), "rev", b"r", at(101)).await,
        Err(StoreError::KeyRevoked)
    ));
    assert!(store.event(p, &k4).await.unwrap().is_none());
    assert_eq!(
        store
            .idempotency_begin(p, "rev", b"r", at(102), lock)
            .await
            .unwrap(),
        IdempotencyBegin::Proceed,
        "a refused request leaves its key unused"
    );
}

/// Another project's ids behave as not found, for every getter and command.
pub async fn cross_project_isolation(store: &dyn Store) {
    let mine = new_project(store).await;
    let theirs = new_project(store).await;
    let k = stripe("evt_shared_id");
    let incident_id = failed_event(store, &mine, &k, "invoice.paid", Some("cus_s"), at(0)).await;
    let key_record = api_key(&mine, 42, at(0));
    store.insert_api_key(key_record.clone()).await.unwrap();
    store
        .add_signing_secret(&mine.id, "whsec_mine", at(0), at(10))
        .await
        .unwrap();
    let link = proof_link(&mine, &incident_id, 42, at(1));
    store.create_proof_link(link.clone()).await.unwrap();

    let t = theirs.id.as_str();
    assert_eq!(store.event(t, &k).await.unwrap(), None);
    assert_eq!(store.incident(t, &incident_id).await.unwrap(), None);
    assert!(
        store
            .list_incidents(t, &IncidentFilter::default(), &page(100))
            .await
            .unwrap()
            .data
            .is_empty()
    );
    assert!(
        store
            .search_events(
                t,
                &EventFilter {
                    subject: Some("cus_s".to_owned()),
                    ..EventFilter::default()
                },
                &page(100)
            )
            .await
            .unwrap()
            .data
            .is_empty()
    );
    let resolve = store
        .apply_to_incident(
            t,
            &incident_id,
            Command::ManualResolve {
                note: "not yours".to_owned(),
            },
            ctx(at(2)),
        )
        .await;
    assert!(
        matches!(resolve, Err(StoreError::NotFound(_))),
        "{resolve:?}"
    );
    let append = store
        .append_incident_entry(
            t,
            &incident_id,
            TimelineEntry::new(
                at(2),
                TimelineKind::ProofLinkCreated,
                Actor::Console("mallory@example.com".to_owned()),
                serde_json::Value::Null,
            ),
        )
        .await;
    assert!(matches!(append, Err(StoreError::NotFound(_))), "{append:?}");
    assert!(store.list_api_keys(t).await.unwrap().is_empty());
    assert!(
        !store
            .revoke_api_key(t, &key_record.id, at(2))
            .await
            .unwrap()
    );
    assert!(store.signing_secrets(t, at(2)).await.unwrap().is_empty());
    assert_eq!(store.proof_link(t, &link.id).await.unwrap(), None);
    assert!(
        store
            .proof_links_for_incident(t, &incident_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.revoke_proof_link(t, &link.id, at(2)).await.unwrap());

    // The same (provider, event_id) in the other project is its own event.
    let theirs_applied = store
        .apply(t, &k, receipt(&k, Some("cus_t")), ctx(at(3)))
        .await
        .unwrap();
    assert_eq!(theirs_applied.transition.outcome, Outcome::Created);
    assert_eq!(
        store
            .event(t, &k)
            .await
            .unwrap()
            .unwrap()
            .record
            .subject
            .as_deref(),
        Some("cus_t")
    );

    // Nothing of mine changed.
    let stored = store
        .incident(&mine.id, &incident_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.record.incident.unwrap().state, IncidentState::Open);
    assert_eq!(stored.record.subject.as_deref(), Some("cus_s"));
    assert_eq!(stored.timeline.len(), 3);
    assert_eq!(
        store
            .api_key_by_hash(&[42; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(
        store
            .proof_link(&mine.id, &link.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    // Unknown projects: no data, and events cannot be created for them.
    let ghost = store
        .apply("prj_ghost", &k, receipt(&k, None), ctx(at(4)))
        .await;
    assert!(matches!(ghost, Err(StoreError::NotFound(_))), "{ghost:?}");
}

/// 50 concurrent identical receipts: one record, 50 deliveries, 50 entries.
pub async fn concurrent_receipts(store: &dyn Store) {
    let project = new_project(store).await;
    let k = stripe("evt_storm");
    let project_id = project.id.as_str();
    let key_ref = &k;
    let tasks: Vec<BoxedTask<'_, StoreResult<Applied>>> = (0..50)
        .map(|i| {
            let command = receipt(key_ref, Some("cus_storm"));
            let context = ctx(at(i));
            Box::pin(async move { store.apply(project_id, key_ref, command, context).await })
                as BoxedTask<'_, _>
        })
        .collect();
    let results = run_in_parallel(tasks);
    let mut created = 0;
    let mut duplicates = 0;
    for result in results {
        match result
            .expect("every receipt is accepted")
            .transition
            .outcome
        {
            Outcome::Created => created += 1,
            Outcome::Duplicate => duplicates += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((created, duplicates), (1, 49));
    let stored = store.event(&project.id, &k).await.unwrap().unwrap();
    assert_eq!(stored.record.deliveries, 50);
    assert_eq!(stored.timeline.len(), 50);
    let all = store
        .search_events(&project.id, &EventFilter::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(all.data.len(), 1, "one record");
}

/// Many concurrent `apply`/`apply_to_incident` calls, some of which fail
/// (the state machine refuses, an unknown incident, a uniqueness conflict
/// after the event row and a timeline entry were already written): each
/// caller gets its own answer, a failed call leaves nothing behind, every
/// other call is stored, and each event's commands are stored in the order
/// its caller made them. (On SQLite these calls share group-commit
/// transactions; a failing one must roll back only itself.)
pub async fn concurrent_mixed_applies(store: &dyn Store) {
    let project = new_project(store).await;
    let taken_key = stripe("evt_mix_taken");
    let taken = failed_event(store, &project, &taken_key, "invoice.paid", None, at(0)).await;
    let project_id = project.id.as_str();
    let taken_ref = taken.as_str();
    const TASKS: usize = 32;
    let keys: Vec<EventKey> = (0..TASKS)
        .map(|i| stripe(&format!("evt_mix_{i}")))
        .collect();
    let tasks: Vec<BoxedTask<'_, Vec<StoreResult<Applied>>>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Box::pin(async move {
                let mut answers = Vec::new();
                answers.push(
                    store
                        .apply(project_id, k, receipt(k, Some("cus_mix")), ctx(at(1)))
                        .await,
                );
                answers.push(
                    store
                        .apply_to_incident(
                            project_id,
                            &format!("inc_missing_{i}"),
                            Command::ManualResolve {
                                note: "done".to_owned(),
                            },
                            ctx(at(2)),
                        )
                        .await,
                );
                answers.push(if i % 2 == 0 {
                    // Writes the event and a timeline entry, then fails on
                    // the incident id another event already uses.
                    store
                        .apply(
                            project_id,
                            k,
                            result(k, ResultStatus::Failure),
                            Context {
                                new_incident_id: taken_ref.to_owned(),
                                ..ctx(at(3))
                            },
                        )
                        .await
                } else {
                    store
                        .apply(
                            project_id,
                            k,
                            Command::RequestReprocess {
                                reprocess_id: new_id(ids::REPROCESS, at(3)),
                                note: None,
                                result_deadline_seconds: 600,
                            },
                            ctx(at(3)),
                        )
                        .await
                });
                answers.push(
                    store
                        .apply(project_id, k, result(k, ResultStatus::Success), ctx(at(4)))
                        .await,
                );
                answers.push(
                    store
                        .apply(project_id, k, receipt(k, Some("cus_mix")), ctx(at(5)))
                        .await,
                );
                answers
            }) as BoxedTask<'_, _>
        })
        .collect();
    let all = run_in_parallel(tasks);
    for (i, (k, answers)) in keys.iter().zip(all).enumerate() {
        let mut answers = answers.into_iter();
        let first = answers.next().unwrap().expect("first receipt");
        assert_eq!(first.transition.outcome, Outcome::Created, "{i}");
        assert_eq!(first.transition.record.event_id, k.event_id, "{i}");
        let missing = answers.next().unwrap();
        assert!(
            matches!(missing, Err(StoreError::NotFound("incident"))),
            "{i}: {missing:?}"
        );
        let failing = answers.next().unwrap();
        if i % 2 == 0 {
            assert!(
                matches!(failing, Err(StoreError::Conflict(_))),
                "{i}: {failing:?}"
            );
        } else {
            assert!(
                matches!(
                    failing,
                    Err(StoreError::Transition(
                        sendpromptly_core::machine::TransitionError::NoIncident
                    ))
                ),
                "{i}: {failing:?}"
            );
        }
        let success = answers.next().unwrap().expect("success result");
        assert_eq!(success.transition.record.event_id, k.event_id, "{i}");
        assert_eq!(
            success.transition.record.state,
            EventState::Succeeded,
            "{i}"
        );
        let again = answers.next().unwrap().expect("duplicate receipt");
        assert_eq!(again.transition.outcome, Outcome::Duplicate, "{i}");
        assert_eq!(again.transition.record.deliveries, 2, "{i}");

        let stored = store.event(project_id, k).await.unwrap().expect("stored");
        assert_eq!(stored.record, again.transition.record, "{i}");
        assert!(
            stored.record.incident.is_none(),
            "{i}: nothing of the failure is left"
        );
        let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                TimelineKind::ReceiptRecorded,
                TimelineKind::ResultSuccess,
                TimelineKind::ReceiptDuplicate
            ],
            "{i}: in the caller's order, without the failed commands"
        );
    }
    let owner = store
        .incident(project_id, &taken)
        .await
        .unwrap()
        .expect("taken");
    assert_eq!(owner.record.event_id, taken_key.event_id);
    let listed = store
        .search_events(project_id, &EventFilter::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(listed.data.len(), TASKS + 1);
}

/// Concurrent dispatchers never receive the same job twice.
pub async fn concurrent_claims(store: &dyn Store) {
    let project = new_project(store).await;
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        let k = stripe(&format!("evt_claim_{i}"));
        let incident_id = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
        expected.insert(request_reprocess(store, &project, &incident_id, at(1)).await);
    }
    let tasks: Vec<BoxedTask<'_, StoreResult<Vec<DeliveryJob>>>> = (0..8)
        .map(|_| Box::pin(store.claim_deliveries(at(5), LEASE, 4)) as BoxedTask<'_, _>)
        .collect();
    let mut claimed = Vec::new();
    for jobs in run_in_parallel(tasks) {
        claimed.extend(job_ids(&jobs.expect("claim")));
    }
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "a job was handed out twice: {claimed:?}"
    );
    assert_eq!(distinct, expected, "8 × 4 claims take all 20 jobs");
    assert!(
        store
            .claim_deliveries(at(6), LEASE, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------
// Console support: sessions, overview counts, the activity chart, search

async fn new_user(store: &dyn Store, created_at: Timestamp) -> User {
    let user = User {
        id: new_id(ids::USER, created_at),
        email: format!("{}@example.com", unique("user")).to_lowercase(),
        password_hash: "$argon2id$v=19$stub".to_owned(),
        created_at,
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
    }
}

/// Sessions find their user until they expire or are deleted; creating a
/// session purges expired ones; users are listed oldest first.
pub async fn console_sessions(store: &dyn Store) {
    let alice = new_user(store, T0).await;
    let bob = new_user(store, at(5)).await;
    let listed = store.list_users().await.unwrap();
    assert_eq!(listed, vec![alice.clone(), bob.clone()], "oldest first");

    store
        .create_session(session(&alice, 1, T0, at(100)))
        .await
        .unwrap();
    store
        .create_session(session(&bob, 2, T0, at(1000)))
        .await
        .unwrap();
    assert_eq!(
        store.session_user(&[1; 32], at(99)).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.session_user(&[1; 32], at(100)).await.unwrap(),
        None,
        "expired at expires_at"
    );
    assert_eq!(store.session_user(&[9; 32], T0).await.unwrap(), None);
    assert_eq!(
        store.session_user(&[2; 32], at(500)).await.unwrap(),
        Some(bob.clone())
    );

    // A new session at t=200 purges alice's expired one (even when asked
    // with an earlier `now`, it is gone).
    store
        .create_session(session(&alice, 3, at(200), at(300)))
        .await
        .unwrap();
    assert_eq!(store.session_user(&[1; 32], at(50)).await.unwrap(), None);
    assert_eq!(
        store.session_user(&[2; 32], at(200)).await.unwrap(),
        Some(bob.clone()),
        "unexpired sessions are kept"
    );

    store.delete_session(&[3; 32]).await.unwrap();
    assert_eq!(store.session_user(&[3; 32], at(200)).await.unwrap(), None);
    store.delete_session(&[3; 32]).await.unwrap();

    let duplicate = store
        .create_session(session(&bob, 2, at(200), at(400)))
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    let orphan = store
        .create_session(Session {
            user_id: "usr_nobody".to_owned(),
            ..session(&bob, 4, at(200), at(400))
        })
        .await;
    assert!(
        matches!(orphan, Err(StoreError::NotFound("user"))),
        "{orphan:?}"
    );
}

/// Counts by state, and per-day, per-event-type activity: events by first
/// sight, failures by when they were reported (ignored ones excluded),
/// incidents by when they first opened.
pub async fn incident_counts_and_daily_activity(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    const DAY: i64 = 86_400;
    // T0 is 08:00 UTC; day 0 is T0's date.
    let day0 = T0.to_datetime().date_naive();
    let day1 = day0.succ_opt().unwrap();

    assert_eq!(
        store.incident_counts(&project.id).await.unwrap(),
        IncidentCounts::default()
    );
    assert!(
        store
            .daily_activity(&project.id, T0)
            .await
            .unwrap()
            .is_empty()
    );

    // Day 0: two invoice.paid events, one fails (incident); one
    // checkout.session.completed that succeeds.
    let a = stripe("evt_day_a");
    let inc_a = failed_event(store, &project, &a, "invoice.paid", Some("cus_a"), at(60)).await;
    let b = stripe("evt_day_b");
    store
        .apply(
            &project.id,
            &b,
            receipt_for(&b, "invoice.paid", None, 1800),
            ctx(at(120)),
        )
        .await
        .unwrap();
    let c = stripe("evt_day_c");
    store
        .apply(
            &project.id,
            &c,
            receipt_for(&c, "checkout.session.completed", None, 1800),
            ctx(at(180)),
        )
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &c,
            result(&c, ResultStatus::Success),
            ctx(at(200)),
        )
        .await
        .unwrap();
    // Day 1: event a fails again (a second failure on the same incident, no
    // new incident), c reports a failure after its success (ignored), and a
    // result arrives before its receipt (no event type yet) and fails.
    store
        .apply(
            &project.id,
            &a,
            Command::Result(ResultSignal {
                error: Some("still failing".to_owned()),
                ..match result(&a, ResultStatus::Failure) {
                    Command::Result(signal) => signal,
                    _ => unreachable!(),
                }
            }),
            ctx(at(DAY + 10)),
        )
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &c,
            result(&c, ResultStatus::Failure),
            ctx(at(DAY + 20)),
        )
        .await
        .unwrap();
    let d = stripe("evt_day_d");
    store
        .apply(
            &project.id,
            &d,
            result(&d, ResultStatus::Failure),
            ctx(at(DAY + 30)),
        )
        .await
        .unwrap();
    // Another project's activity is never counted.
    let x = stripe("evt_day_x");
    failed_event(store, &other, &x, "invoice.paid", None, at(60)).await;

    // Resolve a's incident by hand; d's incident (if the backend opened one
    // for a result-first failure) stays as the machine says.
    store
        .apply_to_incident(
            &project.id,
            &inc_a,
            Command::ManualResolve {
                note: "refunded".to_owned(),
            },
            Context {
                actor: Actor::Console("alice@example.com".to_owned()),
                ..ctx(at(DAY + 40))
            },
        )
        .await
        .unwrap();

    let listed = store
        .list_incidents(&project.id, &IncidentFilter::default(), &page(100))
        .await
        .unwrap()
        .data;
    let mut expected = IncidentCounts::default();
    for record in &listed {
        match record.incident.as_ref().unwrap().state {
            IncidentState::Open => expected.open += 1,
            IncidentState::Reprocessing => expected.reprocessing += 1,
            IncidentState::Resolved => expected.resolved += 1,
        }
    }
    let counts = store.incident_counts(&project.id).await.unwrap();
    assert_eq!(counts, expected, "counts agree with the incident list");
    assert_eq!(counts.resolved, 1);
    let d_opened = store
        .event(&project.id, &d)
        .await
        .unwrap()
        .unwrap()
        .record
        .incident
        .is_some();

    let activity = store.daily_activity(&project.id, T0).await.unwrap();
    let row = |day, event_type: Option<&str>, events, failures, incidents| DailyActivity {
        day,
        event_type: event_type.map(str::to_owned),
        events,
        failures,
        incidents,
    };
    let mut want = vec![
        row(day0, Some("checkout.session.completed"), 1, 0, 0),
        row(day0, Some("invoice.paid"), 2, 1, 1),
        row(day1, None, 1, 1, u64::from(d_opened)),
        row(day1, Some("invoice.paid"), 0, 1, 0),
    ];
    want.sort_by(|l, r| (l.day, &l.event_type).cmp(&(r.day, &r.event_type)));
    assert_eq!(activity, want);

    // `since` counts from the start of its UTC day: asking from 23:00 on
    // day 0 still returns the whole of day 0; from day 1 only day 1.
    let late_day0 = at(15 * 3600);
    assert_eq!(
        store.daily_activity(&project.id, late_day0).await.unwrap(),
        want
    );
    let from_day1 = store.daily_activity(&project.id, at(DAY)).await.unwrap();
    assert!(from_day1.iter().all(|r| r.day == day1), "{from_day1:?}");
    assert_eq!(from_day1.len(), 2);
}

/// `search` matches ids and subjects anywhere in them, ignoring ASCII
/// case, with `%` and `_` taken literally; it combines with other filters.
pub async fn free_text_search(store: &dyn Store) {
    let project = new_project(store).await;
    let other = new_project(store).await;
    let a = stripe("evt_Alpha_1");
    let inc_a = failed_event(store, &project, &a, "invoice.paid", Some("cus_ACME"), at(1)).await;
    let b = stripe("evt_beta%2");
    failed_event(
        store,
        &project,
        &b,
        "invoice.paid",
        Some("cus_other"),
        at(2),
    )
    .await;
    let c = stripe("evt_gamma");
    store
        .apply(&project.id, &c, receipt(&c, Some("cus_acme_2")), ctx(at(3)))
        .await
        .unwrap();
    let x = stripe("evt_alpha_x");
    failed_event(store, &other, &x, "invoice.paid", Some("cus_acme"), at(4)).await;

    let events = |text: &str| {
        let filter = EventFilter {
            search: Some(text.to_owned()),
            ..EventFilter::default()
        };
        let project_id = project.id.clone();
        async move {
            event_ids(
                &store
                    .search_events(&project_id, &filter, &page(100))
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(events("ALPHA").await, strings(&["evt_Alpha_1"]));
    assert_eq!(events("acme").await, strings(&["evt_gamma", "evt_Alpha_1"]));
    assert_eq!(events("%").await, strings(&["evt_beta%2"]), "% is literal");
    assert_eq!(events("a_1").await, strings(&["evt_Alpha_1"]));
    assert_eq!(events("a_2").await, Vec::<String>::new(), "_ is literal");
    assert_eq!(events("nothing").await, Vec::<String>::new());
    let awaiting = EventFilter {
        search: Some("acme".to_owned()),
        state: Some(EventState::AwaitingResult),
        ..EventFilter::default()
    };
    assert_eq!(
        event_ids(
            &store
                .search_events(&project.id, &awaiting, &page(100))
                .await
                .unwrap()
        ),
        strings(&["evt_gamma"]),
        "combined with other filters"
    );

    let incidents = |text: &str| {
        let filter = IncidentFilter {
            search: Some(text.to_owned()),
            ..IncidentFilter::default()
        };
        let project_id = project.id.clone();
        async move {
            event_ids(
                &store
                    .list_incidents(&project_id, &filter, &page(100))
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(incidents("acme").await, strings(&["evt_Alpha_1"]));
    assert_eq!(incidents("BETA%").await, strings(&["evt_beta%2"]));
    assert_eq!(
        incidents(&inc_a.to_uppercase()).await,
        strings(&["evt_Alpha_1"]),
        "by incident id"
    );
    assert_eq!(
        incidents("evt_").await,
        strings(&["evt_beta%2", "evt_Alpha_1"])
    );
    let resolved = IncidentFilter {
        search: Some("evt_".to_owned()),
        state: Some(IncidentState::Resolved),
        ..IncidentFilter::default()
    };
    assert!(
        store
            .list_incidents(&project.id, &resolved, &page(100))
            .await
            .unwrap()
            .data
            .is_empty()
    );
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

/// A batch callback waiting for its next retry holds no concurrency slot;
/// once the endpoint answers a 2xx after its last attempt, it is made due
/// within the pacing (before new items); a slow-down still pauses it.
pub async fn reprocess_batch_retries_hold_no_slot(store: &dyn Store) {
    let project = new_project(store).await;
    let mut incidents = Vec::new();
    for i in 0..3 {
        let k = stripe(&unique("evt_retry_slot"));
        incidents.push(failed_event(store, &project, &k, "invoice.paid", None, at(i)).await);
    }
    // 10 per second, one in flight at a time.
    let batch = new_batch(&project, 10.0, 1, at(10));
    let items: Vec<NewBatchItem> = incidents.iter().map(|id| batch_item(id, None)).collect();
    store.create_reprocess_batch(&batch, &items).await.unwrap();
    let sent = |paced: &PaceReport| paced.transitions.len();

    // The first callback is refused (503): it waits 30 s for its retry.
    assert_eq!(
        sent(&store.pace_reprocess_batches(at(10), 10).await.unwrap()),
        1
    );
    let first = store.claim_deliveries(at(10), LEASE, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    store
        .finish_delivery_attempt(
            &first[0],
            report(Some(503)),
            NextStep::RetryAt(at(40)),
            at(10),
        )
        .await
        .unwrap();
    // Waiting for its retry, it holds no slot: the next item starts.
    let paced = store.pace_reprocess_batches(at(11), 10).await.unwrap();
    assert_eq!(
        sent(&paced),
        1,
        "a callback waiting for a retry held the only slot"
    );
    assert_eq!(paced.retried, 0, "no success yet: the retry keeps its time");
    let counts = store
        .reprocess_batch(&project.id, &batch.id)
        .await
        .unwrap()
        .unwrap()
        .counts;
    assert_eq!((counts.sent, counts.in_flight), (2, 1), "{counts:?}");
    let second = store.claim_deliveries(at(11), LEASE, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].reprocess_id, first[0].reprocess_id);
    // The endpoint recovers: a 2xx.
    store
        .finish_delivery_attempt(&second[0], report(Some(200)), NextStep::Done, at(12))
        .await
        .unwrap();
    // The waiting callback is made due now, ahead of the third item.
    let paced = store.pace_reprocess_batches(at(12), 10).await.unwrap();
    assert_eq!((sent(&paced), paced.retried), (0, 1));
    let again = store.claim_deliveries(at(12), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reprocess_id, first[0].reprocess_id);
    assert_eq!(again[0].attempt, 2);
    // It is refused again, with Retry-After: the batch pauses until then,
    // and the retry is not pulled forward (no success since).
    store
        .finish_delivery_attempt(
            &again[0],
            report(Some(429)),
            NextStep::RetryAt(at(60)),
            at(13),
        )
        .await
        .unwrap();
    store
        .slow_reprocess_batch(&again[0].reprocess_id, at(43))
        .await
        .unwrap();
    for t in [13, 30, 42] {
        let paced = store.pace_reprocess_batches(at(t), 10).await.unwrap();
        assert_eq!((sent(&paced), paced.retried), (0, 0), "at {t}");
    }
    // After the pause the third item goes; the refused one keeps its time.
    let paced = store.pace_reprocess_batches(at(43), 10).await.unwrap();
    assert_eq!((sent(&paced), paced.retried), (1, 0));
    assert!(
        store
            .claim_deliveries(at(43), LEASE, 10)
            .await
            .unwrap()
            .iter()
            .all(|j| j.reprocess_id != first[0].reprocess_id)
    );
}

/// A batch is paced (rate and concurrency), skips what the state machine
/// refuses at send time, is slowed down, cancelled, and completes; its
/// counts and item states are derived from the outbox and the incidents.
pub async fn reprocess_batches(store: &dyn Store) {
    let project = new_project(store).await;
    let mut incidents = Vec::new();
    for i in 0..5 {
        let k = stripe(&format!("evt_batch_{i}"));
        incidents.push(failed_event(store, &project, &k, "invoice.paid", None, at(0)).await);
    }
    store
        .apply_to_incident(
            &project.id,
            &incidents[1],
            Command::ManualResolve {
                note: "by hand".into(),
            },
            ctx(at(1)),
        )
        .await
        .unwrap();
    // Rate 2/s (one every 500 ms), at most 2 in flight.
    let batch = new_batch(&project, 2.0, 2, at(10));
    let mut items: Vec<NewBatchItem> = incidents.iter().map(|id| batch_item(id, None)).collect();
    items.push(batch_item("inc_gone", Some("incident_not_found")));
    store.create_reprocess_batch(&batch, &items).await.unwrap();
    let stored = store
        .reprocess_batch(&project.id, &batch.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, "running");
    assert_eq!(stored.started_by, "console:ops@example.com");
    assert_eq!(stored.selection["event_type"], "invoice.paid");
    assert_eq!(stored.counts.total, 6);
    assert_eq!(stored.counts.pending, 5);
    assert_eq!(stored.counts.skipped, 1);

    let paced = store.pace_reprocess_batches(at(10), 10).await.unwrap();
    assert_eq!(paced.transitions.len(), 1, "one token at the start");
    let (project_of, transition) = &paced.transitions[0];
    assert_eq!(project_of, &project.id);
    let reprocess = transition
        .record
        .incident
        .as_ref()
        .unwrap()
        .reprocess
        .clone()
        .unwrap();
    assert_eq!(
        reprocess.requested_by,
        Actor::Console("ops@example.com".into())
    );
    assert_eq!(
        reprocess.note.as_deref(),
        Some(
            format!(
                "reprocessed as part of batch {} by console:ops@example.com: after the outage",
                batch.id
            )
            .as_str()
        )
    );
    assert!(
        transition
            .effects
            .iter()
            .any(|e| matches!(e, Effect::DeliverCallback { .. }))
    );
    assert!(
        store
            .pace_reprocess_batches(at(10), 10)
            .await
            .unwrap()
            .transitions
            .is_empty(),
        "the next token is 500 ms later"
    );
    // The resolved incident is skipped when its turn comes.
    let paced = store
        .pace_reprocess_batches(at(10).plus_millis(500), 10)
        .await
        .unwrap();
    assert_eq!((paced.transitions.len(), paced.skipped), (0, 1));
    let paced = store.pace_reprocess_batches(at(11), 10).await.unwrap();
    assert_eq!(paced.transitions.len(), 1);
    // Two in flight: nothing more starts, however late it is.
    assert!(
        store
            .pace_reprocess_batches(at(15), 10)
            .await
            .unwrap()
            .transitions
            .is_empty()
    );
    let jobs = store.claim_deliveries(at(15), LEASE, 10).await.unwrap();
    assert_eq!(jobs.len(), 2);
    store
        .finish_delivery_attempt(&jobs[0], report(Some(200)), NextStep::Done, at(15))
        .await
        .unwrap();
    // One slot free: one more (the burst is at most one slot here).
    assert_eq!(
        store
            .pace_reprocess_batches(at(15), 10)
            .await
            .unwrap()
            .transitions
            .len(),
        1
    );
    let counts = store
        .reprocess_batch(&project.id, &batch.id)
        .await
        .unwrap()
        .unwrap()
        .counts;
    assert_eq!(
        counts,
        ReprocessBatchCounts {
            total: 6,
            pending: 1,
            skipped: 2,
            cancelled: 0,
            sent: 3,
            in_flight: 2,
            delivered: 1,
            failed: 0,
            resolved: 0,
        }
    );
    let shown = store
        .reprocess_batch_items(&project.id, &batch.id, 10)
        .await
        .unwrap();
    let states: Vec<&str> = shown.iter().map(|i| i.state.as_str()).collect();
    assert_eq!(
        states,
        ["delivered", "skipped", "sent", "sent", "pending", "skipped"]
    );
    assert_eq!(shown[1].reason.as_deref(), Some("incident_resolved"));
    assert_eq!(
        shown[0].reprocess_id.as_deref(),
        Some(jobs[0].reprocess_id.as_str())
    );
    assert_eq!(
        store
            .reprocess_batch_items(&project.id, &batch.id, 2)
            .await
            .unwrap()
            .len(),
        2
    );

    // 429/503 slow the batch down: nothing starts before `until`.
    store
        .finish_delivery_attempt(&jobs[1], report(Some(200)), NextStep::Done, at(16))
        .await
        .unwrap();
    store
        .slow_reprocess_batch(&jobs[1].reprocess_id, at(30))
        .await
        .unwrap();
    store
        .slow_reprocess_batch("rep_unknown", at(99))
        .await
        .unwrap();
    assert!(
        store
            .pace_reprocess_batches(at(29), 10)
            .await
            .unwrap()
            .transitions
            .is_empty()
    );

    // Another project sees nothing; cancelling stops the rest.
    let other = new_project(store).await;
    assert!(
        store
            .reprocess_batch(&other.id, &batch.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .cancel_reprocess_batch(&other.id, &batch.id, at(20))
            .await
            .unwrap()
            .is_none()
    );
    let cancelled = store
        .cancel_reprocess_batch(&project.id, &batch.id, at(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.state, "cancelled");
    assert_eq!(cancelled.finished_at, Some(at(20)));
    assert_eq!(
        (cancelled.counts.pending, cancelled.counts.cancelled),
        (0, 1)
    );
    assert!(
        store
            .pace_reprocess_batches(at(60), 10)
            .await
            .unwrap()
            .transitions
            .is_empty()
    );
    let again = store
        .cancel_reprocess_batch(&project.id, &batch.id, at(61))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.finished_at,
        Some(at(20)),
        "cancelling again changes nothing"
    );

    // A batch whose callbacks are all finished completes; a success result
    // counts as resolved.
    let k = stripe("evt_batch_last");
    let last = failed_event(store, &project, &k, "invoice.paid", None, at(0)).await;
    let done = new_batch(&project, 100.0, 5, at(100));
    store
        .create_reprocess_batch(&done, &[batch_item(&last, None)])
        .await
        .unwrap();
    assert_eq!(
        store
            .pace_reprocess_batches(at(100), 10)
            .await
            .unwrap()
            .transitions
            .len(),
        1
    );
    let paced = store.pace_reprocess_batches(at(101), 10).await.unwrap();
    assert_eq!(paced.completed, 0, "still in flight");
    let jobs = store.claim_deliveries(at(101), LEASE, 10).await.unwrap();
    let job = jobs
        .iter()
        .find(|j| j.incident_id == last)
        .expect("the last batch's callback");
    store
        .finish_delivery_attempt(job, report(Some(200)), NextStep::Done, at(101))
        .await
        .unwrap();
    store
        .apply(
            &project.id,
            &k,
            result(&k, ResultStatus::Success),
            ctx(at(102)),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .pace_reprocess_batches(at(102), 10)
            .await
            .unwrap()
            .completed,
        1
    );
    let finished = store
        .reprocess_batch(&project.id, &done.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(finished.state, "completed");
    assert_eq!(finished.finished_at, Some(at(102)));
    assert_eq!(
        (finished.counts.delivered, finished.counts.resolved),
        (1, 1)
    );
}

/// Pacing passes running at the same time never send an item twice.
pub async fn concurrent_batch_pacing(store: &dyn Store) {
    let project = new_project(store).await;
    let mut items = Vec::new();
    for i in 0..20 {
        let k = stripe(&format!("evt_pace_{i}"));
        items.push(batch_item(
            &failed_event(store, &project, &k, "invoice.paid", None, at(0)).await,
            None,
        ));
    }
    let batch = new_batch(&project, 1000.0, 100, at(10));
    store.create_reprocess_batch(&batch, &items).await.unwrap();
    let mut sent = 0;
    for step in 0..10 {
        let now = at(11 + step);
        let tasks: Vec<BoxedTask<'_, usize>> = (0..4)
            .map(|_| {
                Box::pin(async move {
                    store
                        .pace_reprocess_batches(now, 10)
                        .await
                        .unwrap()
                        .transitions
                        .len()
                }) as BoxedTask<'_, usize>
            })
            .collect();
        sent += run_in_parallel(tasks).into_iter().sum::<usize>();
    }
    assert_eq!(sent, 20, "every item exactly once");
    assert_eq!(store.pending_deliveries().await.unwrap(), 20);
}

// ---------------------------------------------------------------------------
// Alerts: the outbox filled by `apply`, claims with grouping, attempts

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

/// An opened incident enqueues one alert per channel whose `on` wants it,
/// in the same transaction; a claim leases it; a finished attempt goes on
/// the timeline and reschedules or completes the row; a stale lease
/// records nothing.
pub async fn alert_outbox_lifecycle(store: &dyn Store) {
    let quiet = new_project(store).await;
    failed_event(
        store,
        &quiet,
        &stripe("evt_quiet"),
        "invoice.paid",
        None,
        at(0),
    )
    .await;
    assert_eq!(
        store.pending_alerts().await.unwrap(),
        0,
        "no channels, no alerts"
    );

    let project = project_with_channels(
        store,
        serde_json::json!([
            {"type": "webhook", "url": "https://hooks.example/a", "on": ["incident.opened", "incident.resolved"]},
            {"type": "slack", "webhook_url": "https://hooks.slack.com/x", "on": ["reprocess.failed"]},
        ]),
    )
    .await;
    let incident_id = failed_event(
        store,
        &project,
        &stripe("evt_alert"),
        "invoice.paid",
        Some("cus_1"),
        at(0),
    )
    .await;
    assert_eq!(store.pending_alerts().await.unwrap(), 1);

    let jobs = store.claim_alerts(at(0), LEASE, 10, WINDOW).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert!(job.id.starts_with(ids::ALERT), "{}", job.id);
    assert_eq!(job.project_id, project.id);
    assert_eq!(job.channel.kind(), "webhook");
    assert_eq!(job.event.as_str(), "incident.opened");
    assert_eq!(job.attempt, 1);
    assert_eq!(job.incidents.len(), 1);
    assert_eq!(job.incidents[0].incident_id, incident_id);
    assert_eq!(job.incidents[0].subject.as_deref(), Some("cus_1"));
    assert_eq!(job.incidents[0].reason.as_deref(), Some("tenant not found"));
    assert!(
        store
            .claim_alerts(at(1), LEASE, 10, WINDOW)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    let retry = NextStep::RetryAt(at(30));
    assert!(
        store
            .finish_alert_attempt(job, &alert_entry(job, retry, at(2)), retry, at(2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_alert_attempt(job, &alert_entry(job, retry, at(2)), retry, at(2))
            .await
            .unwrap(),
        "a finished claim records nothing more"
    );
    let stored = store
        .incident(&project.id, &incident_id)
        .await
        .unwrap()
        .unwrap();
    let attempts: Vec<_> = stored
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::AlertAttempt)
        .collect();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].detail["channel"], "webhook");
    assert_eq!(attempts[0].detail["outcome"], "retry_scheduled");
    assert_eq!(stored.record.updated_at, at(2));
    assert!(
        store
            .claim_alerts(at(29), LEASE, 10, WINDOW)
            .await
            .unwrap()
            .is_empty(),
        "not due before its retry time"
    );

    // A claim whose lease ran out is handed out again.
    let jobs = store.claim_alerts(at(30), LEASE, 10, WINDOW).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempt, 2);
    let later = at(30) + LEASE;
    let again = store.claim_alerts(later, LEASE, 10, WINDOW).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, jobs[0].id);
    assert!(
        !store
            .finish_alert_attempt(
                &jobs[0],
                &alert_entry(&jobs[0], NextStep::Done, later),
                NextStep::Done,
                later
            )
            .await
            .unwrap(),
        "the expired claim lost the row"
    );
    assert!(
        store
            .finish_alert_attempt(
                &again[0],
                &alert_entry(&again[0], NextStep::Done, later),
                NextStep::Done,
                later
            )
            .await
            .unwrap()
    );
    assert_eq!(store.pending_alerts().await.unwrap(), 0);
    assert!(
        store
            .claim_alerts(later.plus_seconds(3600), LEASE, 10, WINDOW)
            .await
            .unwrap()
            .is_empty()
    );

    // A repair callback that gives up raises `reprocess.failed` for the
    // channel that wants it, with the give-up reason.
    let t = later.plus_seconds(10);
    request_reprocess(store, &project, &incident_id, t).await;
    let deliveries = store.claim_deliveries(t, LEASE, 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    store
        .finish_delivery_attempt(
            &deliveries[0],
            report(Some(410)),
            NextStep::GiveUp(GiveUpReason::Gone),
            t,
        )
        .await
        .unwrap();
    let jobs = store.claim_alerts(t, LEASE, 10, WINDOW).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].channel.kind(), "slack");
    assert_eq!(jobs[0].event.as_str(), "reprocess.failed");
    assert_eq!(
        jobs[0].incidents[0].reason.as_deref(),
        Some("repair callback gave up: the repair endpoint answered 410 Gone")
    );
}

/// The first `incident.opened` alert of an event type goes at once; the
/// next ones within the window are held and claimed as one digest when it
/// closes; another event type is its own group.
pub async fn alert_grouping_into_a_digest(store: &dyn Store) {
    let project = project_with_channels(
        store,
        serde_json::json!([{"type": "webhook", "url": "https://hooks.example/a"}]),
    )
    .await;
    let mut incidents = Vec::new();
    for i in 0..5 {
        let k = stripe(&format!("evt_burst_{i}"));
        incidents.push(failed_event(store, &project, &k, "invoice.paid", None, at(i)).await);
    }
    let lone = failed_event(
        store,
        &project,
        &stripe("evt_other"),
        "customer.created",
        None,
        at(5),
    )
    .await;
    assert_eq!(store.pending_alerts().await.unwrap(), 6);

    let jobs = store.claim_alerts(at(10), LEASE, 10, WINDOW).await.unwrap();
    let mut firsts: Vec<String> = jobs
        .iter()
        .map(|j| j.incidents[0].incident_id.clone())
        .collect();
    firsts.sort();
    let mut expected = vec![incidents[0].clone(), lone.clone()];
    expected.sort();
    assert_eq!(firsts, expected, "one per event type at once");
    assert!(jobs.iter().all(|j| j.incidents.len() == 1));
    for job in &jobs {
        assert!(
            store
                .finish_alert_attempt(
                    job,
                    &alert_entry(job, NextStep::Done, at(11)),
                    NextStep::Done,
                    at(11)
                )
                .await
                .unwrap()
        );
    }
    assert_eq!(store.pending_alerts().await.unwrap(), 4, "held");
    assert!(
        store
            .claim_alerts(at(299), LEASE, 10, WINDOW)
            .await
            .unwrap()
            .is_empty(),
        "held until the window of the first closes"
    );

    let jobs = store
        .claim_alerts(at(300), LEASE, 10, WINDOW)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "one digest");
    let digest = &jobs[0];
    let carried: Vec<String> = digest
        .incidents
        .iter()
        .map(|f| f.incident_id.clone())
        .collect();
    assert_eq!(carried, incidents[1..].to_vec(), "oldest first");
    assert_eq!(
        store.pending_alerts().await.unwrap(),
        1,
        "the others are carried"
    );
    assert!(
        store
            .finish_alert_attempt(
                digest,
                &alert_entry(digest, NextStep::Done, at(301)),
                NextStep::Done,
                at(301)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.pending_alerts().await.unwrap(), 0);
    for id in &incidents[1..] {
        let stored = store.incident(&project.id, id).await.unwrap().unwrap();
        let attempts: Vec<_> = stored
            .timeline
            .iter()
            .filter(|e| e.kind == TimelineKind::AlertAttempt)
            .collect();
        assert_eq!(attempts.len(), 1, "{id}");
        assert_eq!(attempts[0].detail["incidents"], 4);
    }
    // After the window a new burst starts a new window.
    let next = failed_event(
        store,
        &project,
        &stripe("evt_burst_late"),
        "invoice.paid",
        None,
        at(400),
    )
    .await;
    let jobs = store
        .claim_alerts(at(400), LEASE, 10, WINDOW)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].incidents[0].incident_id, next);
}

/// Parallel claims never hand out one alert twice.
pub async fn concurrent_alert_claims(store: &dyn Store) {
    let project = project_with_channels(
        store,
        serde_json::json!([{"type": "webhook", "url": "https://hooks.example/a"}]),
    )
    .await;
    let mut expected = BTreeSet::new();
    for i in 0..16 {
        let k = stripe(&format!("evt_alert_claim_{i}"));
        // One event type each: no grouping.
        expected.insert(failed_event(store, &project, &k, &format!("type.{i}"), None, at(0)).await);
    }
    let tasks: Vec<BoxedTask<'_, StoreResult<Vec<AlertJob>>>> = (0..8)
        .map(|_| Box::pin(store.claim_alerts(at(1), LEASE, 4, WINDOW)) as BoxedTask<'_, _>)
        .collect();
    let mut claimed = Vec::new();
    for jobs in run_in_parallel(tasks) {
        claimed.extend(
            jobs.expect("claim")
                .into_iter()
                .map(|j| j.incidents[0].incident_id.clone()),
        );
    }
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "an alert was handed out twice"
    );
    assert_eq!(distinct, expected, "8 × 4 claims take all 16 alerts");
}
