//! `sendpromptly reconcile stripe` against a local Stripe API: `--dry-run`
//! lists what would be recorded and writes nothing; the real run records
//! each tracked event once (a second run finds them known); `--json` is
//! machine-readable; `--since` over Stripe's 30 days and a project without
//! a restricted key are refused with clear words; a refused key says so.

use std::collections::BTreeMap;
use std::sync::Arc;

use sendpromptly_core::Timestamp;
use sendpromptly_core::model::{EventKey, Provider};
use sendpromptly_server::secrets::{self, Keyring};
use sendpromptly_server::store::sqlite::SqliteStore;
use sendpromptly_server::store::{ProviderTapSettings, Store};
use sendpromptly_server::testing::stripe_api::{FakeStripe, checkout_completed, event};
use sendpromptly_server::testing::{cli_ok, run_cli};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");
const KEY: &str = "rk_test_cli_backfill_77aa";

/// The database the CLI made, opened with the key file it generated.
async fn open(database_url: &str) -> SqliteStore {
    let path = secrets::key_file_beside(database_url).expect("a key file beside the database");
    let key = secrets::read_key_file(&path).expect("the generated key");
    SqliteStore::connect(database_url)
        .await
        .expect("connect")
        .with_keyring(Arc::new(Keyring::new(&key, &[])))
}

async fn in_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("the CLI ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_stripe_backfills_dry_runs_and_refuses_clearly() {
    let stripe = FakeStripe::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let created: Value = {
        let url = url.clone();
        in_blocking(move || {
            serde_json::from_str(&cli_ok(
                BIN,
                &url,
                &["project", "create", "--name", "shop", "--json"],
            ))
            .unwrap()
        })
        .await
    };
    let project_id = created["project_id"].as_str().unwrap().to_owned();
    let base = stripe.url();
    let run = {
        let url = url.clone();
        let base = base.clone();
        move |args: &[&str]| {
            let url = url.clone();
            let mut all: Vec<String> = vec![
                "reconcile".into(),
                "stripe".into(),
                "--project".into(),
                "shop".into(),
            ];
            all.extend(args.iter().map(|a| (*a).to_owned()));
            all.extend(["--stripe-api-base".to_owned(), base.clone()]);
            async move {
                in_blocking(move || {
                    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                    run_cli(BIN, &url, &refs)
                })
                .await
            }
        }
    };

    // No key yet: refused with words that say what to do.
    let out = run(&["--since", "72h"]).await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("no Stripe restricted key"),
        "{}",
        out.stderr
    );

    let store = open(&url).await;
    let now = Timestamp::from_datetime(chrono::Utc::now()).unix_seconds();
    store
        .put_provider_tap_settings(
            &project_id,
            &ProviderTapSettings {
                tracked_event_types: None,
                receipt_grace_seconds: 600,
                grace_by_event_type: BTreeMap::new(),
                stripe_endpoint_secrets: Vec::new(),
                shopify_client_secret: None,
                stripe_restricted_key: Some(KEY.to_owned()),
                updated_at: Timestamp::from_unix_seconds(now),
            },
        )
        .await
        .unwrap();
    for i in 0..130_i64 {
        stripe.add([checkout_completed(
            &format!("evt_cli_{i:03}"),
            now - 3600 - i * 60,
            "cus_c",
            900,
        )]);
    }
    stripe.add([checkout_completed(
        "evt_cli_old",
        now - 80 * 3600,
        "cus_c",
        900,
    )]);
    stripe.add([event(
        "evt_cli_customer",
        "customer.created",
        now - 60,
        json!({"id": "cus_n", "object": "customer"}),
    )]);

    // Over 30 days: refused before any request.
    let out = run(&["--since", "31d"]).await;
    assert!(!out.success);
    assert!(out.stderr.contains("30 days"), "{}", out.stderr);
    assert!(out.stderr.contains("--since 31d"), "{}", out.stderr);
    let out = run(&["--since", "soon"]).await;
    assert!(!out.success);
    assert!(out.stderr.contains("not a duration"), "{}", out.stderr);
    assert!(stripe.requests().is_empty());

    // Dry run: lists, writes nothing.
    let out = run(&["--since", "72h", "--dry-run", "--json"]).await;
    assert!(out.success, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["listed"], 130, "within 72h, tracked types only");
    assert_eq!(report["would_record"], 130);
    assert_eq!(report["events"][0]["outcome"], "would_record");
    assert_eq!(report["events"][0]["event_id"], "evt_cli_000");
    assert_eq!(report["events"][0]["amount"], 900);
    let key = |id: &str| EventKey {
        provider: Provider::Stripe,
        event_id: id.to_owned(),
    };
    assert!(
        store
            .event(&project_id, &key("evt_cli_000"))
            .await
            .unwrap()
            .is_none()
    );
    let pages: Vec<_> = stripe.requests();
    assert_eq!(pages.len(), 2, "two pages of at most 100");
    assert!(pages.iter().all(|r| !r.params("types[]").is_empty()));

    // The real run records them; a second run finds them known.
    let out = run(&["--since", "72h"]).await;
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains("130 Stripe events from") && out.stdout.contains("130 recorded"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("recorded       evt_cli_000  checkout.session.completed"),
        "{}",
        out.stdout
    );
    let stored = store.event(&project_id, &key("evt_cli_129")).await.unwrap();
    assert!(stored.is_some(), "the event is tracked");
    assert!(
        store
            .event(&project_id, &key("evt_cli_old"))
            .await
            .unwrap()
            .is_none()
    );
    let out = run(&["--since", "72h", "--json"]).await;
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["recorded"], 0);
    assert_eq!(report["already_known"], 130);
    let out = run(&["--since", "72h", "--dry-run"]).await;
    assert!(
        out.stdout
            .contains("0 would be recorded, 130 already known"),
        "{}",
        out.stdout
    );
    // The background reconciler's watermark was not touched.
    assert_eq!(store.reconcile_state(&project_id).await.unwrap(), None);

    // The background reconciler's status, as stored.
    let status = {
        let url = url.clone();
        move |json: bool| {
            let url = url.clone();
            async move {
                in_blocking(move || {
                    let mut args = vec!["reconcile", "status", "--project", "shop"];
                    if json {
                        args.push("--json");
                    }
                    cli_ok(BIN, &url, &args)
                })
                .await
            }
        }
    };
    assert!(
        status(false)
            .await
            .contains("has not run for this project yet")
    );
    let t = Timestamp::from_unix_seconds(now);
    store
        .take_reconcile_lease(
            &project_id,
            "instance-1",
            t,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    store
        .finish_reconcile(
            &project_id,
            "instance-1",
            t,
            &sendpromptly_server::store::ReconcileOutcome::Failed {
                kind: "unauthorized".into(),
                message: "Stripe refused the restricted key (401): Invalid API Key provided".into(),
            },
        )
        .await
        .unwrap();
    let text = status(false).await;
    assert!(
        text.contains("last error:       unauthorized: Stripe refused the restricted key (401)"),
        "{text}"
    );
    assert!(text.contains("last success:     never"), "{text}");
    let value: Value = serde_json::from_str(&status(true).await).unwrap();
    assert_eq!(value["last_error_kind"], "unauthorized");
    assert_eq!(value["last_run_at"], t.to_rfc3339());

    // A refused key: the typed error in words, with a hint.
    stripe.set_key("rk_test_rolled");
    let out = run(&["--since", "1h"]).await;
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("Stripe refused the restricted key (401)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(KEY), "the key is not printed");
    store.close().await;
}
