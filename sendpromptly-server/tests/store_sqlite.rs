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
