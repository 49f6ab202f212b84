//! The committed `docs/openapi.json` must match what the code generates.
//! Regenerate with: `UPDATE_OPENAPI=1 cargo test -p sendpromptly-server --test openapi`.

use std::path::PathBuf;

#[test]
fn committed_openapi_document_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let generated = sendpromptly_server::api::openapi::document_json() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date with the code; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p sendpromptly-server --test openapi` and commit it"
    );
}

#[test]
fn every_contract_route_is_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&sendpromptly_server::api::openapi::document_json())
            .expect("valid JSON");
    for (path, method) in [
        ("/v1/receipt", "post"),
        ("/v1/result", "post"),
        ("/v1/events/{provider}/{event_id}", "get"),
        ("/v1/events", "get"),
        ("/v1/incidents", "get"),
        ("/v1/incidents/{id}", "get"),
        ("/v1/incidents/{id}/reprocess", "post"),
        ("/v1/incidents/{id}/resolve", "post"),
        ("/v1/incidents/{id}/proof-links", "post"),
        ("/v1/proof-links/{id}", "delete"),
        ("/v1/project", "get"),
        ("/v1/project", "patch"),
        ("/v1/project/signing-secrets/rotate", "post"),
        ("/proof/{token}", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from the document"
        );
    }
}
