//! The access matrix (issue #24): every authenticated `/v1` route × every
//! scope, over real HTTP against a real server, is either allowed (anything
//! but 401/403) or refused with 403 `insufficient_scope` naming the missing
//! scope. The table below is cross-checked against the router's source
//! (`src/api/mod.rs`), the server's own route table
//! (`auth::scopes::ROUTE_SCOPES`) and the OpenAPI document (its
//! `x-required-scope`), so a new route without a scope fails here.

use std::collections::BTreeSet;

use reqwest::Method;
use sendpromptly_core::scope::{Scope, ScopeSet};
use sendpromptly_server::auth::scopes::ROUTE_SCOPES;
use sendpromptly_server::provision;
use sendpromptly_server::testing::{ApiClient, TestServer};
use serde_json::{Value, json};

/// Method, path template, the scope it requires.
const MATRIX: &[(&str, &str, Scope)] = &[
    ("POST", "/v1/receipt", Scope::Ingest),
    ("POST", "/v1/result", Scope::Ingest),
    ("GET", "/v1/events", Scope::Read),
    ("GET", "/v1/events/{provider}/{event_id}", Scope::Read),
    ("GET", "/v1/incidents", Scope::Read),
    ("GET", "/v1/incidents/export", Scope::Read),
    ("GET", "/v1/incidents/{id}", Scope::Read),
    ("GET", "/v1/incidents/{id}/proof-links", Scope::Read),
    ("GET", "/v1/reprocess-batches/{id}", Scope::Read),
    ("GET", "/v1/project", Scope::Read),
    ("GET", "/v1/stats", Scope::Read),
    ("POST", "/v1/incidents/{id}/reprocess", Scope::Operate),
    ("POST", "/v1/incidents/{id}/resolve", Scope::Operate),
    ("POST", "/v1/incidents/{id}/proof-links", Scope::Operate),
    ("DELETE", "/v1/proof-links/{id}", Scope::Operate),
    ("POST", "/v1/reprocess-batches", Scope::Operate),
    ("POST", "/v1/reprocess-batches/{id}/cancel", Scope::Operate),
    ("PATCH", "/v1/project", Scope::Admin),
    ("POST", "/v1/project/signing-secrets/rotate", Scope::Admin),
    ("POST", "/v1/project/alert-channels/test", Scope::Admin),
    ("GET", "/v1/audit-log", Scope::Admin),
];

/// The authenticated routes as the router's source declares them: every
/// `.route("…", method(…).method(…))` of `v1_routes` (the provider tap,
/// authenticated by the provider's signature, is not an API-key route).
fn routes_in_router_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/api/mod.rs");
    let body = &source[source.find("pub fn v1_routes").expect("v1_routes")..];
    let mut found = BTreeSet::new();
    let mut rest = body;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let end = rest.find(")\n").unwrap_or(rest.len());
        let call = &rest[..end];
        let path = call.split('"').nth(1).expect("a quoted path");
        if path.starts_with("/providers/") {
            continue;
        }
        for (name, method) in [
            ("get(", "GET"),
            ("post(", "POST"),
            ("patch(", "PATCH"),
            ("delete(", "DELETE"),
            ("put(", "PUT"),
        ] {
            let declared = call
                .match_indices(name)
                .any(|(i, _)| i == 0 || !call.as_bytes()[i - 1].is_ascii_alphanumeric());
            if declared {
                found.insert((method.to_owned(), format!("/v1{path}")));
            }
        }
    }
    found
}

fn matrix_routes() -> BTreeSet<(String, String)> {
    MATRIX
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

#[test]
fn the_matrix_covers_every_route_of_the_router_the_server_table_and_openapi() {
    assert_eq!(
        routes_in_router_source(),
        matrix_routes(),
        "a /v1 route of the router is missing from this matrix (or the matrix names a route the router lacks): give it a scope in auth/scopes.rs and here"
    );
    let server: BTreeSet<_> = ROUTE_SCOPES
        .iter()
        .map(|(m, p, s)| ((*m).to_owned(), (*p).to_owned(), *s))
        .collect();
    let here: BTreeSet<_> = MATRIX
        .iter()
        .map(|(m, p, s)| ((*m).to_owned(), (*p).to_owned(), *s))
        .collect();
    assert_eq!(
        server, here,
        "auth::scopes::ROUTE_SCOPES and this matrix disagree"
    );

    let doc: Value =
        serde_json::from_str(&sendpromptly_server::api::openapi::document_json()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") || path.starts_with("/v1/providers/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let scope = operation["x-required-scope"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no x-required-scope"));
            assert!(
                operation["responses"]["403"].is_object(),
                "{method} {path} does not document 403"
            );
            documented.insert((method, path.clone(), scope.to_owned()));
        }
    }
    let expected: BTreeSet<_> = MATRIX
        .iter()
        .map(|(m, p, s)| ((*m).to_owned(), (*p).to_owned(), s.as_str().to_owned()))
        .collect();
    assert_eq!(documented, expected, "the OpenAPI document's scopes");
}

/// A request for each route, on real objects so that an allowed call
/// reaches its handler.
struct Fixture {
    incident: String,
    proof_link: String,
    batch: String,
}

fn request_of(method: &str, template: &str, f: &Fixture) -> (Method, String, Option<Value>) {
    let path = template
        .replace("{provider}/{event_id}", "stripe/evt_matrix")
        .replace(
            "/v1/proof-links/{id}",
            &format!("/v1/proof-links/{}", f.proof_link),
        )
        .replace(
            "/v1/reprocess-batches/{id}",
            &format!("/v1/reprocess-batches/{}", f.batch),
        )
        .replace("{id}", &f.incident);
    let body = match (method, template) {
        ("POST", "/v1/receipt") => Some(
            json!({"provider": "stripe", "event_id": "evt_matrix_r", "event_type": "invoice.paid"}),
        ),
        ("POST", "/v1/result") => {
            Some(json!({"provider": "stripe", "event_id": "evt_matrix_r", "status": "success"}))
        }
        ("POST", "/v1/incidents/{id}/resolve") => Some(json!({"note": "matrix"})),
        ("POST", "/v1/reprocess-batches") => {
            Some(json!({"incident_ids": [f.incident.clone()], "dry_run": true}))
        }
        ("PATCH", "/v1/project") => Some(json!({"proof_show_metadata": false})),
        ("POST", _) => Some(json!({})),
        _ => None,
    };
    (Method::from_bytes(method.as_bytes()).unwrap(), path, body)
}

#[tokio::test]
async fn every_route_times_every_scope_is_allowed_or_403_insufficient_scope() {
    let server = TestServer::start().await;
    let admin = server.api();
    // The objects the routes act on.
    let r = admin
        .post(
            "/v1/result",
            json!({"provider": "stripe", "event_id": "evt_matrix", "status": "failure"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let incident = r.json["incident"]["id"].as_str().unwrap().to_owned();
    let link = admin
        .post(&format!("/v1/incidents/{incident}/proof-links"), json!({}))
        .await;
    assert_eq!(link.status, 201, "{}", link.text);
    let batch = admin
        .post(
            "/v1/reprocess-batches",
            json!({"incident_ids": [incident.clone()]}),
        )
        .await;
    let fixture = Fixture {
        incident,
        proof_link: link.json["id"].as_str().unwrap().to_owned(),
        batch: batch.json["id"].as_str().unwrap_or("rpb_none").to_owned(),
    };

    let mut keys = Vec::new();
    for scopes in [
        ScopeSet::only(Scope::Ingest),
        ScopeSet::only(Scope::Read),
        ScopeSet::only(Scope::Operate),
        ScopeSet::only(Scope::Admin),
        ScopeSet::only(Scope::Read).with(Scope::Operate),
    ] {
        let key = provision::create_api_key(
            server.store(),
            &server.project.project_id,
            Some(format!("matrix {scopes}")),
            scopes,
            server.clock_now(),
        )
        .await
        .unwrap();
        keys.push((scopes, admin.with_key(&key)));
    }

    let mut checked = 0;
    for (method, template, required) in MATRIX {
        for (scopes, client) in &keys {
            let (m, path, body) = request_of(method, template, &fixture);
            let r = ApiClient::send(client, m, &path, body.as_ref(), &[]).await;
            if scopes.allows(*required) {
                assert!(
                    r.status != 401 && r.status != 403,
                    "{method} {path} with a {scopes} key: expected allowed, got {} {}",
                    r.status,
                    r.text
                );
            } else {
                assert_eq!(
                    r.status, 403,
                    "{method} {path} with a {scopes} key: expected 403, got {}",
                    r.text
                );
                assert_eq!(r.json["error"]["type"], "insufficient_scope", "{}", r.text);
                let message = r.json["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains(&format!("requires `{required}`"))
                        && message.contains(&format!("--scope {required}")),
                    "{message}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, MATRIX.len() * keys.len());

    // Unknown routes fail closed for a non-admin key; admin gets the 404.
    let (_, ingest) = &keys[0];
    let r = ingest.get("/v1/not-a-route").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(admin.get("/v1/not-a-route").await.status, 404);
}

#[tokio::test]
async fn a_read_key_sees_the_project_without_secrets_and_cannot_change_it() {
    let server = TestServer::start().await;
    let read = provision::create_api_key(
        server.store(),
        &server.project.project_id,
        None,
        ScopeSet::only(Scope::Read),
        server.clock_now(),
    )
    .await
    .unwrap();
    let client = server.api().with_key(&read);
    let r = client.get("/v1/project").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !r.text.contains(&server.project.signing_secret),
        "GET /v1/project shows no secret"
    );
    let r = client
        .send(
            Method::PATCH,
            "/v1/project",
            Some(&json!({"repair_url": "https://attacker.example/repair"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let project = server
        .store()
        .project(&server.project.project_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(project.repair_url, None, "nothing changed");
}

#[tokio::test]
async fn the_ingest_key_of_a_new_project_sends_signals_and_nothing_else() {
    let server = TestServer::start().await;
    let ingest = server.api().with_key(&server.project.ingest_api_key);
    let r = ingest
        .post(
            "/v1/receipt",
            json!({"provider": "stripe", "event_id": "evt_i", "event_type": "invoice.paid"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = ingest.get("/v1/incidents").await;
    assert_eq!(r.status, 403);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has the scope ingest")
    );
}
