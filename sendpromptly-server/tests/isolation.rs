//! The isolation matrix: every authenticated operation of `docs/openapi.json`
//! (read from the document, so a new endpoint is covered the day it is
//! documented) called with another project's key and this project's ids.
//! Operations on an id answer 404 exactly like an unknown id and leak
//! nothing; collection operations answer only the caller's own data; this
//! project's data is unchanged afterwards. A revoked key is refused by every
//! operation at once.

use reqwest::Method;
use sendpromptly_server::provision;
use sendpromptly_server::testing::{ApiClient, TestServer};
use serde_json::{Value, json};

fn operations() -> Vec<(Method, String)> {
    let document: Value = serde_json::from_str(include_str!("../../docs/openapi.json"))
        .expect("docs/openapi.json parses");
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()));
            if !secured {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            out.push((method, path.clone()));
        }
    }
    out
}

/// A body the operation would accept from its own project.
fn body_for(method: &Method, path: &str) -> Option<Value> {
    if *method == Method::GET || *method == Method::DELETE {
        return None;
    }
    Some(match path {
        "/v1/receipt" => json!({"provider": "stripe", "event_id": "evt_probe",
                                 "event_type": "invoice.paid"}),
        "/v1/result" => json!({"provider": "stripe", "event_id": "evt_probe_result",
                                "status": "failure", "error": "probe"}),
        "/v1/incidents/{id}/resolve" => json!({"note": "not yours"}),
        "/v1/incidents/{id}/reprocess" => json!({"note": "not yours"}),
        "/v1/incidents/{id}/proof-links" => json!({"expires_in_seconds": 3600}),
        "/v1/project" => json!({"default_deadline_seconds": 900}),
        "/v1/reprocess-batches" => json!({"event_type": "invoice.paid", "dry_run": true}),
        _ => json!({}),
    })
}

/// Fills `{…}` placeholders with project A's ids.
fn fill(path: &str, incident: &str, proof_link: &str, batch: &str) -> String {
    let mut filled = path.replace("{provider}", "stripe");
    filled = filled.replace("{event_id}", "evt_secret_a");
    filled = if filled.starts_with("/v1/proof-links/") {
        filled.replace("{id}", proof_link)
    } else if filled.starts_with("/v1/reprocess-batches/") {
        filled.replace("{id}", batch)
    } else {
        filled.replace("{id}", incident)
    };
    assert!(
        !filled.contains('{'),
        "{path}: a path parameter the isolation matrix does not know; add it to `fill`"
    );
    filled
}

#[tokio::test]
async fn every_operation_with_another_projects_key_answers_404_and_leaks_nothing() {
    let server = TestServer::start().await;
    let a = server.api();
    let r = a
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_secret_a", "event_type": "invoice.paid",
                   "subject": "cus_secret_a", "metadata": {"marker": "meta_secret_a"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = a
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_secret_a", "status": "failure",
                   "error": "error_secret_a"}),
        )
        .await;
    let incident = r.json["incident"]["id"].as_str().unwrap().to_owned();
    let r = a
        .post(&format!("/v1/incidents/{incident}/proof-links"), json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let proof_link = r.json["id"].as_str().unwrap().to_owned();
    let r = a
        .post(
            "/v1/reprocess-batches",
            json!({"incident_ids": [incident], "rate_per_second": 0.01}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let batch = r.json["id"].as_str().unwrap().to_owned();
    let before_batch = a.get(&format!("/v1/reprocess-batches/{batch}")).await.json;
    let before_incident = a.get(&format!("/v1/incidents/{incident}")).await.json;
    let before_project = a.get("/v1/project").await.json;
    let before_links = a
        .get(&format!("/v1/incidents/{incident}/proof-links"))
        .await
        .json;

    let other = provision::create_project(server.store(), "other", None, server.clock_now())
        .await
        .expect("second project");
    let b = a.with_key(&other.api_key);
    let secrets = [
        incident.as_str(),
        proof_link.as_str(),
        batch.as_str(),
        "evt_secret_a",
        "cus_secret_a",
        "meta_secret_a",
        "error_secret_a",
        server.project.project_id.as_str(),
    ];

    let operations = operations();
    assert!(operations.len() >= 14, "{operations:?}");
    let mut by_id = 0;
    for (method, path) in &operations {
        let filled = fill(path, &incident, &proof_link, &batch);
        let body = body_for(method, path);
        let r = b.send(method.clone(), &filled, body.as_ref(), &[]).await;
        let what = format!("{method} {filled} with project B's key");
        assert!(r.status < 500, "{what}: {} {}", r.status, r.text);
        for secret in secrets {
            assert!(
                !r.text.contains(secret),
                "{what} leaks {secret}: {}",
                r.text
            );
        }
        if path.contains('{') {
            by_id += 1;
            assert_eq!(r.status, 404, "{what}: {}", r.text);
            // Exactly like an id that does not exist anywhere.
            let unknown = fill(
                path,
                "inc_00000000000000000000000000",
                "prf_00000000000000000000000000",
                "rpb_00000000000000000000000000",
            )
            .replace("evt_secret_a", "evt_nowhere");
            let u = b.send(method.clone(), &unknown, body.as_ref(), &[]).await;
            assert_eq!(u.status, 404, "{method} {unknown}");
            assert_eq!(
                r.json["error"]["type"], u.json["error"]["type"],
                "{what}: not the same answer as an unknown id"
            );
        } else {
            assert!(
                (200..300).contains(&r.status),
                "{what}: its own collection: {} {}",
                r.status,
                r.text
            );
        }
        // Filters of lists naming A's data find nothing either.
        if *method == Method::GET && r.json["data"].is_array() {
            let r = b.get(&format!("{filled}?subject=cus_secret_a")).await;
            assert_eq!(r.status, 200, "{what}?subject: {}", r.text);
            assert_eq!(r.json["data"].as_array().map(Vec::len), Some(0), "{what}");
        }
    }
    assert!(by_id >= 7, "only {by_id} operations on ids");

    // Project A is untouched.
    assert_eq!(
        a.get(&format!("/v1/incidents/{incident}")).await.json,
        before_incident
    );
    assert_eq!(a.get("/v1/project").await.json, before_project);
    // (It may have completed meanwhile: its only item is skipped.)
    let after_batch = a.get(&format!("/v1/reprocess-batches/{batch}")).await.json;
    assert_ne!(
        after_batch["state"], "cancelled",
        "project B cancelled A's batch"
    );
    assert_eq!(after_batch["counts"], before_batch["counts"]);
    assert_eq!(
        a.get(&format!("/v1/incidents/{incident}/proof-links"))
            .await
            .json,
        before_links
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_operation_at_once() {
    let server = TestServer::start().await;
    let a = server.api();
    let r = a
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_secret_a", "status": "failure"}),
        )
        .await;
    let incident = r.json["incident"]["id"].as_str().unwrap().to_owned();
    let key = provision::create_api_key(
        server.store(),
        &server.project.project_id,
        Some("soon revoked".into()),
        sendpromptly_core::scope::ScopeSet::ADMIN,
        server.clock_now(),
    )
    .await
    .unwrap();
    let revoked: ApiClient = a.with_key(&key);
    assert_eq!(revoked.get("/v1/incidents").await.status, 200);
    // A signal first, so that the signal routes' key cache holds this key:
    // the revocation below goes straight to the store (as from another
    // process), so only the check inside the write can refuse the next one.
    let warm = revoked
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_warm", "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(warm.status, 201, "{}", warm.json);
    let keys = server
        .store()
        .list_api_keys(&server.project.project_id)
        .await
        .unwrap();
    let id = &keys
        .iter()
        .find(|k| k.name.as_deref() == Some("soon revoked"))
        .expect("the new key")
        .id;
    server
        .store()
        .revoke_api_key(&server.project.project_id, id, server.clock_now())
        .await
        .unwrap();
    for (method, path) in operations() {
        let filled = fill(
            &path,
            &incident,
            "prf_00000000000000000000000000",
            "rpb_00000000000000000000000000",
        );
        let r = revoked
            .send(
                method.clone(),
                &filled,
                body_for(&method, &path).as_ref(),
                &[],
            )
            .await;
        assert_eq!(r.status, 401, "{method} {filled}: {}", r.text);
        assert_eq!(r.json["error"]["type"], "invalid_api_key");
    }
    // The project's other key still works.
    assert_eq!(a.get("/v1/incidents").await.status, 200);
}
