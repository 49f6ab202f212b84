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
        },
        GroupCommitStats {
            transactions: 2,
            commands: 50,
            commits: 2,
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
