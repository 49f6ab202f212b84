//! The Store conformance suite on SQLite (a fresh temp-file database per
//! test), plus SQLite-specific checks.

use sendpromptly_server::store::Store;
use sendpromptly_server::store::sqlite::SqliteStore;

/// A fresh, migrated store in a temporary directory that lives as long as the test.
async fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqliteStore::connect(&url)
        .await
        .expect("connect")
        .with_keyring(sendpromptly_server::store::conformance::test_keyring());
    store.migrate().await.expect("migrate");
    (store, dir)
}

sendpromptly_server::store_conformance_tests!(fresh());

#[tokio::test]
async fn the_sweeper_and_dispatcher_queries_use_their_partial_indexes() {
    let (store, _dir) = fresh().await;
    let sweep = store.explain_sweep_query().await.unwrap().join("\n");
    assert!(sweep.contains("events_due"), "{sweep}");
    assert!(!sweep.contains("SCAN events"), "{sweep}");
    let claim = store.explain_claim_query().await.unwrap().join("\n");
    assert!(claim.contains("deliveries_due"), "{claim}");
}

#[tokio::test]
async fn connects_to_every_url_form_and_refuses_a_newer_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forms.db");
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
    ] {
        let store = SqliteStore::connect(&url).await.expect(&url);
        store.migrate().await.expect("migrate");
        store.ping().await.unwrap();
        store.close().await;
    }
    assert!(path.exists());

    let memory = SqliteStore::connect("sqlite::memory:").await.unwrap();
    memory.migrate().await.unwrap();
    assert_eq!(memory.count_users().await.unwrap(), 0);
    assert!(memory.list_projects().await.unwrap().is_empty());

    // connect() alone does not migrate.
    let fresh_path = dir.path().join("unmigrated.db");
    let unmigrated = SqliteStore::connect(&format!("sqlite://{}", fresh_path.display()))
        .await
        .unwrap();
    assert!(unmigrated.list_projects().await.is_err());
    unmigrated.close().await;

    // A database touched by a newer binary is refused.
    let url = format!("sqlite://{}", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO _sendpromptly_migrations (version, name, applied_at) VALUES (999, '0999_future', 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let store = SqliteStore::connect(&url).await.unwrap();
    let err = store.migrate().await.unwrap_err();
    assert!(
        matches!(
            err,
            sendpromptly_server::store::StoreError::MigrationsNewerThanBinary(_)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn data_survives_a_reopen() {
    let (store, dir) = fresh().await;
    let project = store
        .create_project(sendpromptly_server::store::NewProject {
            id: "prj_reopen".to_owned(),
            name: "reopen".to_owned(),
            repair_url: None,
            default_deadline_seconds: 60,
            created_at: sendpromptly_core::Timestamp::from_unix_seconds(1),
        })
        .await
        .unwrap();
    store.close().await;
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let again = SqliteStore::connect(&url).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.project("prj_reopen").await.unwrap(), Some(project));
}

#[tokio::test]
async fn plaintext_signing_secrets_are_sealed_at_start_and_a_wrong_key_is_refused() {
    let (store, dir) = fresh().await;
    let project_id = "prj_legacy";
    store
        .create_project(sendpromptly_server::store::NewProject {
            id: project_id.to_owned(),
            name: "legacy".to_owned(),
            repair_url: None,
            default_deadline_seconds: 60,
            created_at: sendpromptly_core::Timestamp::from_unix_seconds(0),
        })
        .await
        .unwrap();
    // A row written before encryption at rest (migration 6 keeps it as it is).
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO signing_secrets (project_id, secret, created_at, expires_at) \
         VALUES (?, 'whsec_bGVnYWN5LXBsYWludGV4dA', 0, NULL)",
    )
    .bind(project_id)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let report = store.reseal_signing_secrets().await.unwrap();
    assert_eq!(report.sealed_plaintext, 1, "{report:?}");
    let raw = store.stored_signing_secrets(project_id).await.unwrap();
    assert!(
        raw[0].starts_with("spenc1:") && !raw[0].contains("whsec_"),
        "{raw:?}"
    );
    let now = sendpromptly_core::Timestamp::from_unix_seconds(1);
    let read = store.signing_secrets(project_id, now).await.unwrap();
    assert_eq!(read[0].secret, "whsec_bGVnYWN5LXBsYWludGV4dA");
    store.close().await;

    let wrong = SqliteStore::connect(&url)
        .await
        .unwrap()
        .with_keyring(std::sync::Arc::new(
            sendpromptly_server::secrets::Keyring::new(&[9; 32], &[]),
        ));
    let err = wrong.reseal_signing_secrets().await.unwrap_err();
    assert!(
        err.to_string().contains("neither the current secret key"),
        "{err}"
    );
    assert!(wrong.signing_secrets(project_id, now).await.is_err());
}

/// Group commit: while another connection holds the write lock, one
/// command is taken into a transaction (which waits for the lock) and the
/// next 49 queue up; once the lock is released they are committed as one
/// second transaction, and every caller gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_applies_are_committed_together() {
    use sendpromptly_core::machine::{Command, Context, Outcome};
    use sendpromptly_core::model::{Actor, EventKey, Provider, Receipt};
    use sendpromptly_server::store::sqlite::GroupCommitStats;
    use std::sync::Arc;

    let (store, dir) = fresh().await;
    let store = Arc::new(store);
    let now = sendpromptly_core::Timestamp::from_unix_seconds(1_800_000_000);
    let project = store
        .create_project(sendpromptly_server::store::NewProject {
            id: "prj_group".to_owned(),
            name: "group".to_owned(),
            repair_url: None,
            default_deadline_seconds: 60,
            created_at: now,
        })
        .await
        .unwrap();
    let apply = |i: usize| {
        let store = Arc::clone(&store);
        let project_id = project.id.clone();
        tokio::spawn(async move {
            let key = EventKey {
                provider: Provider::Stripe,
                event_id: format!("evt_group_{i}"),
            };
            let command = Command::Receipt {
                receipt: Receipt {
                    traceparent: None,
                    tracestate: None,
                    provider: key.provider,
                    event_id: key.event_id.clone(),
                    event_type: "invoice.paid".to_owned(),
                    subject: Some(format!("cus_{i}")),
                    effect: None,
                    deadline_seconds: None,
                    metadata: None,
                    occurred_at: None,
                },
                deadline_seconds: 60,
            };
            let ctx = Context {
                now,
                actor: Actor::ApiKey("key_group".to_owned()),
                new_incident_id: format!("inc_group_{i}"),
            };
            store.apply(&project_id, &key, command, ctx).await
        })
    };
    let before = store.group_commit_stats();

    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let first = apply(0);
    while store.group_commit_stats().commands == before.commands {
        tokio::task::yield_now().await;
    }
    let rest: Vec<_> = (1..50).map(apply).collect();
    while store.group_commit_queued() < 49 {
        tokio::task::yield_now().await;
    }
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    let mut answers = vec![first.await.unwrap()];
    for task in rest {
        answers.push(task.await.unwrap());
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let applied = answer.unwrap_or_else(|e| panic!("{i}: {e}"));
        assert_eq!(applied.transition.outcome, Outcome::Created, "{i}");
        assert_eq!(applied.transition.record.event_id, format!("evt_group_{i}"));
    }
    let after = store.group_commit_stats();
    assert_eq!(
        GroupCommitStats {
            transactions: after.transactions - before.transactions,
            commands: after.commands - before.commands,
            commits: after.commits - before.commits,
            fallbacks: after.fallbacks - before.fallbacks,
            busy_micros: 0,
        },
        GroupCommitStats {
            transactions: 2,
            commands: 50,
            commits: 2,
            fallbacks: 0,
            busy_micros: 0,
        }
    );
    // All 50 are committed: a new connection sees them.
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE project_id = 'prj_group'")
            .fetch_one(&mut other)
            .await
            .unwrap();
    assert_eq!(count, 50);
}

/// A group runs all at once: a receipt and its result in the same group
/// land on one event in order, and an `apply_to_incident` sees the incident
/// a command earlier in the group opened. When one command of a group fails
/// on a write (an incident id already taken), the group is re-run one
/// savepoint per command: only that command fails, the rest is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_runs_at_once_and_falls_back_one_by_one_on_a_write_conflict() {
    use sendpromptly_core::machine::{Command, Context, Outcome};
    use sendpromptly_core::model::{
        Actor, EventKey, EventState, IncidentState, Provider, Receipt, ResultSignal, ResultStatus,
        TimelineKind,
    };
    use sendpromptly_server::store::StoreError;
    use std::sync::Arc;

    let (store, dir) = fresh().await;
    let store = Arc::new(store);
    let now = sendpromptly_core::Timestamp::from_unix_seconds(1_800_000_000);
    let project = store
        .create_project(sendpromptly_server::store::NewProject {
            id: "prj_at_once".to_owned(),
            name: "at once".to_owned(),
            repair_url: None,
            default_deadline_seconds: 60,
            created_at: now,
        })
        .await
        .unwrap();
    let key = |name: &str| EventKey {
        provider: Provider::Stripe,
        event_id: format!("evt_{name}"),
    };
    let receipt = |k: &EventKey| Command::Receipt {
        receipt: Receipt {
            traceparent: None,
            tracestate: None,
            provider: k.provider,
            event_id: k.event_id.clone(),
            event_type: "invoice.paid".to_owned(),
            subject: Some("cus_at_once".to_owned()),
            effect: None,
            deadline_seconds: None,
            metadata: None,
            occurred_at: None,
        },
        deadline_seconds: 60,
    };
    let result = |k: &EventKey, status: ResultStatus| {
        Command::Result(ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: k.provider,
            event_id: k.event_id.clone(),
            status,
            error: (status == ResultStatus::Failure).then(|| "declined".to_owned()),
            reprocess_id: None,
            metadata: None,
        })
    };
    let ctx = |incident: &str| Context {
        now,
        actor: Actor::ApiKey("key_at_once".to_owned()),
        new_incident_id: incident.to_owned(),
    };
    // An event whose incident id the conflicting command will reuse.
    store
        .apply(
            &project.id,
            &key("owner"),
            result(&key("owner"), ResultStatus::Failure),
            ctx("inc_taken"),
        )
        .await
        .unwrap();

    // Hold the write lock so that everything below queues into one group
    // behind a first command that is already waiting for the lock.
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    let mut queue = |target: Result<EventKey, String>, command: Command, ctx: Context| {
        let store = Arc::clone(&store);
        let project_id = project.id.clone();
        let before = store.group_commit_stats().commands as usize + store.group_commit_queued();
        tasks.push(tokio::spawn(async move {
            match target {
                Ok(k) => store.apply(&project_id, &k, command, ctx).await,
                Err(incident) => {
                    store
                        .apply_to_incident(&project_id, &incident, command, ctx)
                        .await
                }
            }
        }));
        before
    };
    let wait_for = |n: usize| {
        let store = Arc::clone(&store);
        async move {
            while (store.group_commit_stats().commands as usize + store.group_commit_queued()) <= n
            {
                tokio::task::yield_now().await;
            }
        }
    };
    let steps: Vec<(Result<EventKey, String>, Command, Context)> = vec![
        (Ok(key("first")), receipt(&key("first")), ctx("inc_first")),
        (Ok(key("a")), receipt(&key("a")), ctx("inc_a")),
        (
            Ok(key("a")),
            result(&key("a"), ResultStatus::Success),
            ctx("inc_a2"),
        ),
        (
            Ok(key("b")),
            result(&key("b"), ResultStatus::Failure),
            ctx("inc_b"),
        ),
        (
            Err("inc_b".to_owned()),
            Command::ManualResolve {
                note: "refunded by hand".to_owned(),
            },
            ctx("inc_unused"),
        ),
        (Ok(key("c")), receipt(&key("c")), ctx("inc_c")),
        (
            Ok(key("c")),
            result(&key("c"), ResultStatus::Failure),
            ctx("inc_taken"),
        ),
        (Ok(key("d")), receipt(&key("d")), ctx("inc_d")),
    ];
    let before = store.group_commit_stats();
    for (i, (target, command, ctx)) in steps.into_iter().enumerate() {
        let n = queue(target, command, ctx);
        wait_for(n).await;
        if i == 0 {
            // The first command must be taken into its own group (and be
            // waiting for the lock) before the rest are queued; queued is
            // not yet taken, and a busy runtime may leave it queued a while.
            while store.group_commit_stats().transactions == before.transactions {
                tokio::task::yield_now().await;
            }
        }
    }
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let after = store.group_commit_stats();
    assert_eq!(after.transactions - before.transactions, 2, "{after:?}");
    assert_eq!(after.commits - before.commits, 2, "{after:?}");
    assert_eq!(after.fallbacks - before.fallbacks, 1, "{after:?}");

    let outcome = |i: usize| answers[i].as_ref().map(|a| a.transition.outcome);
    assert_eq!(outcome(1).unwrap(), Outcome::Created);
    assert_eq!(outcome(3).unwrap(), Outcome::Created);
    let resolved = answers[4].as_ref().unwrap();
    assert_eq!(
        resolved.transition.record.incident.as_ref().unwrap().state,
        IncidentState::Resolved
    );
    assert!(
        matches!(answers[6], Err(StoreError::Conflict(_))),
        "{:?}",
        answers[6]
    );
    assert_eq!(outcome(7).unwrap(), Outcome::Created);

    let kinds = |name: &'static str| {
        let store = Arc::clone(&store);
        let project_id = project.id.clone();
        async move {
            let stored = store
                .event(&project_id, &key(name))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{name} stored"));
            let kinds: Vec<TimelineKind> = stored.timeline.iter().map(|e| e.kind.clone()).collect();
            (stored.record, kinds)
        }
    };
    let (a, a_kinds) = kinds("a").await;
    assert_eq!(a.state, EventState::Succeeded);
    assert_eq!(
        a_kinds,
        [TimelineKind::ReceiptRecorded, TimelineKind::ResultSuccess]
    );
    let (b, b_kinds) = kinds("b").await;
    assert_eq!(b.incident.as_ref().unwrap().state, IncidentState::Resolved);
    assert_eq!(b_kinds.first(), Some(&TimelineKind::ResultFailure));
    assert_eq!(b_kinds.last(), Some(&TimelineKind::IncidentResolved));
    let listed = store.incident(&project.id, "inc_b").await.unwrap().unwrap();
    assert_eq!(listed.record.event_id, "evt_b");
    let (c, c_kinds) = kinds("c").await;
    assert!(
        c.incident.is_none(),
        "nothing of the failed command is left"
    );
    assert_eq!(c_kinds, [TimelineKind::ReceiptRecorded]);
    let (d, _) = kinds("d").await;
    assert_eq!(d.state, EventState::AwaitingResult);
}
