//! `sendpromptly reprocess` as an operator runs it: the real binary on a real
//! SQLite file, next to a real `sendpromptly serve` on the same file whose
//! pacer sends the callbacks to a real, verifying repair receiver. Dry run
//! (text and `--json`), start with `--no-wait`, `--cancel`, start and follow
//! to the end with `--json`, and the errors an operator can make.

use std::time::Duration;

use sendpromptly_server::clock::ManualClock;
use sendpromptly_server::testing::{
    ApiClient, CallbackReceiver, ServeProcess, cli_ok, eventually, run_cli,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");

/// A failure result for a new event of `event_type`: one open incident.
async fn open_incident(api: &ApiClient, event_type: &str, n: usize) -> String {
    let event_id = format!("evt_cli_{}_{n}", event_type.replace('.', "_"));
    let receipt = api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": event_id, "event_type": event_type, "subject": format!("cus_{n}")}),
        )
        .await;
    assert_eq!(receipt.status, 201, "{}", receipt.text);
    let failed = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": event_id, "status": "failure", "error": "worker down"}),
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.text);
    failed.json["incident"]["id"]
        .as_str()
        .expect("an incident")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_command_plans_starts_cancels_and_follows_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("cli.db").display());
    cli_ok(BIN, &database_url, &["migrate"]);
    let created: Value = serde_json::from_str(&cli_ok(
        BIN,
        &database_url,
        &["project", "create", "--name", "ops", "--json"],
    ))
    .unwrap();
    let api_key = created["api_key"].as_str().unwrap();
    let secret = created["signing_secret"].as_str().unwrap();
    let receiver = CallbackReceiver::start(secret, ManualClock::starting_now()).await;
    let serve = ServeProcess::start(
        BIN,
        &database_url,
        &[
            "--sweep-interval-ms",
            "100",
            "--callback-retry-delays",
            "1,1",
        ],
        &dir.path().join("serve.log"),
    );
    let api = ApiClient::new(&serve.url, api_key);
    let patched = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": receiver.url()})),
            &[],
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);

    let mut paid = Vec::new();
    for n in 0..3 {
        paid.push(open_incident(&api, "invoice.paid", n).await);
    }
    let mut renewed = Vec::new();
    for n in 0..2 {
        renewed.push(open_incident(&api, "subscription.renewed", n).await);
    }
    let hour = chrono::Duration::hours(1);
    let rfc3339 =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (after, before) = (
        rfc3339(chrono::Utc::now() - hour),
        rfc3339(chrono::Utc::now() + hour),
    );
    let filter = [
        "reprocess",
        "--project",
        "ops",
        "--event-type",
        "invoice.paid",
        "--state",
        "open",
        "--opened-after",
        &after,
        "--opened-before",
        &before,
    ];

    // Dry run, as text: what would be sent, by event type.
    let text = cli_ok(BIN, &database_url, &[&filter[..], &["--dry-run"]].concat());
    assert!(
        text.contains("would send 3 repair callbacks (3 incidents selected, 0 skipped)"),
        "{text}"
    );
    assert!(text.contains("3  invoice.paid"), "{text}");
    // As JSON: the API's plan.
    let plan: Value = serde_json::from_str(&cli_ok(
        BIN,
        &database_url,
        &[&filter[..], &["--dry-run", "--json"]].concat(),
    ))
    .unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["to_send"], 3);
    assert_eq!(plan["by_event_type"], json!({"invoice.paid": 3}));
    let mut planned: Vec<&str> = plan["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["incident_id"].as_str().unwrap())
        .collect();
    planned.sort_unstable();
    let mut expected: Vec<&str> = paid.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(planned, expected);
    // A time window that excludes them selects nothing.
    let empty: Value = serde_json::from_str(&cli_ok(
        BIN,
        &database_url,
        &[
            "reprocess",
            "--project",
            "ops",
            "--opened-before",
            &after,
            "--dry-run",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(empty["total"], 0);
    // Dry runs send nothing and record no batch.
    assert!(receiver.received().is_empty());

    // Start without waiting, one callback per 100 s: prints the batch id.
    let started = run_cli(
        BIN,
        &database_url,
        &[&filter[..], &["--rate", "0.01", "--no-wait"]].concat(),
    );
    assert!(started.success, "{}", started.stderr);
    let batch_id = started.stdout.trim().to_owned();
    assert!(
        batch_id.starts_with("rpb_") && !batch_id.contains(char::is_whitespace),
        "{:?}",
        started.stdout
    );
    assert!(
        started
            .stderr
            .contains(&format!("started batch {batch_id} (3 to send at 0.01/s")),
        "{}",
        started.stderr
    );
    let view = api.get(&format!("/v1/reprocess-batches/{batch_id}")).await;
    assert_eq!(view.status, 200);
    assert!(
        view.json["started_by"]
            .as_str()
            .unwrap()
            .starts_with("system:cli:"),
        "{}",
        view.text
    );

    // Cancel it: what was not sent yet is never sent.
    let cancelled = cli_ok(
        BIN,
        &database_url,
        &["reprocess", "--project", "ops", "--cancel", &batch_id],
    );
    assert!(
        cancelled.starts_with(&format!("batch {batch_id} cancelled: sent ")),
        "{cancelled}"
    );
    let view = api.get(&format!("/v1/reprocess-batches/{batch_id}")).await;
    assert_eq!(view.json["state"], "cancelled");
    let counts = &view.json["counts"];
    let (sent, cancelled_n) = (
        counts["sent"].as_u64().unwrap(),
        counts["cancelled"].as_u64().unwrap(),
    );
    assert_eq!(sent + cancelled_n, 3, "{counts}");
    assert!(cancelled_n >= 2, "{counts}");
    assert!(
        cancelled.contains(&format!("cancelled {cancelled_n}")),
        "{cancelled}"
    );
    let cancelled_json: Value = serde_json::from_str(&cli_ok(
        BIN,
        &database_url,
        &[
            "reprocess",
            "--project",
            "ops",
            "--cancel",
            &batch_id,
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(cancelled_json["counts"]["cancelled"], cancelled_n);

    // Start and follow to the end: --json prints the finished batch.
    let finished: Value = serde_json::from_str(&cli_ok(
        BIN,
        &database_url,
        &[
            "reprocess",
            "--project",
            "ops",
            "--event-type",
            "subscription.renewed",
            "--concurrency",
            "1",
            "--note",
            "after the outage",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(finished["state"], "completed", "{finished}");
    assert_eq!(finished["counts"]["sent"], 2);
    assert_eq!(finished["counts"]["delivered"], 2);
    assert_eq!(finished["concurrency"], 1);
    assert_eq!(finished["note"], "after the outage");
    let delivered_to: Vec<String> = eventually(Duration::from_secs(30), "both callbacks", || {
        let got: Vec<String> = receiver
            .received()
            .iter()
            .filter_map(|r| r.callback.as_ref())
            .map(|c| c.incident_id.clone())
            .filter(|id| renewed.contains(id))
            .collect();
        async move { (got.len() >= 2).then_some(got) }
    })
    .await;
    let mut delivered_to = delivered_to;
    delivered_to.sort();
    let mut renewed_sorted = renewed.clone();
    renewed_sorted.sort();
    assert_eq!(delivered_to, renewed_sorted);
    assert!(receiver.received().iter().all(|r| r.error.is_none()));
    let detail = api.get(&format!("/v1/incidents/{}", renewed[0])).await;
    let notes: Vec<&str> = detail.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "reprocess.requested")
        .filter_map(|e| e["detail"]["note"].as_str())
        .collect();
    let finished_id = finished["id"].as_str().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(finished_id) && n.contains("after the outage")),
        "{notes:?}"
    );
    // Nothing cancelled was ever delivered.
    let cancelled_items: Vec<String> = view.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "cancelled")
        .map(|i| i["incident_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cancelled_items.len() as u64, cancelled_n);
    assert!(
        receiver
            .received()
            .iter()
            .filter_map(|r| r.callback.as_ref())
            .all(|c| !cancelled_items.contains(&c.incident_id))
    );

    // Operator mistakes: a clear message and a failing exit status.
    let both = run_cli(
        BIN,
        &database_url,
        &[
            "reprocess",
            "--project",
            "ops",
            "--incident",
            &paid[0],
            "--state",
            "open",
            "--dry-run",
        ],
    );
    assert!(!both.success);
    assert!(both.stderr.contains("incident_ids"), "{}", both.stderr);
    let bad_time = run_cli(
        BIN,
        &database_url,
        &[
            "reprocess",
            "--project",
            "ops",
            "--opened-after",
            "yesterday",
            "--dry-run",
        ],
    );
    assert!(!bad_time.success);
    assert!(
        bad_time
            .stderr
            .contains("--opened-after: not an RFC 3339 time"),
        "{}",
        bad_time.stderr
    );
    let unknown = run_cli(
        BIN,
        &database_url,
        &["reprocess", "--project", "ops", "--cancel", "rpb_nope"],
    );
    assert!(!unknown.success);
    assert!(!unknown.stderr.is_empty());
    drop(serve);
}
