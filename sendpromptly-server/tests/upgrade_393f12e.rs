//! Upgrading a database made by the previous release (issue #24): the
//! checked-in `tests/fixtures/release-393f12e/` was produced by the binary
//! built at `393f12e` (schema version 8, before scoped keys; see its
//! README). This binary migrates it on start: its key becomes `admin`, its
//! events, incidents and timelines are intact, the old key still sends
//! signals and reads everything, and a new key can be scoped.

use std::path::Path;

use sendpromptly_server::testing::{ApiClient, ServeProcess, cli_ok};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");

fn fixture_copy(dir: &Path) -> (String, Value) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-393f12e");
    for name in ["sendpromptly.db", "sendpromptly.db.secret-key"] {
        std::fs::copy(fixture.join(name), dir.join(name)).expect("copy the fixture");
    }
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("credentials.json")).unwrap())
            .unwrap();
    (
        format!("sqlite://{}", dir.join("sendpromptly.db").display()),
        credentials,
    )
}

#[tokio::test]
async fn a_release_393f12e_database_keeps_working_and_its_key_is_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (database_url, credentials) = fixture_copy(dir.path());
    let old_key = credentials["api_key"].as_str().unwrap();

    // The CLI migrates it and lists the old key as admin.
    let listed = cli_ok(
        BIN,
        &database_url,
        &["key", "list", "--project", "shop", "--json"],
    );
    let keys: Vec<Value> = listed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(keys.len(), 1, "{listed}");
    assert_eq!(keys[0]["scopes"], json!(["admin"]), "{listed}");
    assert_eq!(keys[0]["last_used_at"], Value::Null);

    let mut serve = ServeProcess::start(BIN, &database_url, &[], &dir.path().join("serve.log"));
    let api = ApiClient::new(&serve.url, old_key);

    // Nothing was lost: the events, both incidents (one resolved by hand)
    // and their timelines.
    let ok = api.get("/v1/events/stripe/evt_ok_1").await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["event"]["state"], "succeeded");
    let incidents = api.get("/v1/incidents").await;
    assert_eq!(incidents.status, 200, "{}", incidents.text);
    let data = incidents.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{}", incidents.text);
    let states: Vec<_> = data.iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert!(
        states.contains(&"open") && states.contains(&"resolved"),
        "{states:?}"
    );
    for incident in data {
        let id = incident["id"].as_str().unwrap();
        let detail = api.get(&format!("/v1/incidents/{id}")).await;
        assert_eq!(detail.status, 200);
        assert!(
            detail.json["timeline"].as_array().unwrap().len() >= 2,
            "{}",
            detail.text
        );
        if incident["state"] == "resolved" {
            assert!(detail.text.contains("fixed by hand"), "{}", detail.text);
        }
    }
    let open = data.iter().find(|i| i["state"] == "open").unwrap();
    let links = api
        .get(&format!(
            "/v1/incidents/{}/proof-links",
            open["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        links.json.as_array().map_or(0, Vec::len),
        1,
        "{}",
        links.text
    );

    // The old key still sends signals, and (admin) still changes settings.
    let r = api
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_after_upgrade", "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_after_upgrade", "status": "success"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api
        .send(
            reqwest::Method::PATCH,
            "/v1/project",
            Some(&json!({"default_deadline_seconds": 600})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let log = api.get("/v1/audit-log").await;
    assert_eq!(log.status, 200, "{}", log.text);
    assert_eq!(log.json["data"][0]["action"], "project.update");
    serve.kill();

    // A key made now defaults to ingest.
    let created = cli_ok(
        BIN,
        &database_url,
        &["key", "create", "--project", "shop", "--json"],
    );
    let created: Value = serde_json::from_str(created.trim()).unwrap();
    assert_eq!(created["scopes"], json!(["ingest"]));
}
