//! The OpenAPI document, generated from the handlers' annotations.
//!
//! The committed copy lives at `docs/openapi.json`; a test fails when it
//! drifts (regenerate with `UPDATE_OPENAPI=1 cargo test -p sendpromptly-server --test openapi`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{batches, events, incidents, ops, project, proof, signals};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SendPromptly API",
        description = "Watch the gap between \"webhook delivered\" and \"business effect applied\". See the public contract for semantics.",
        license(name = "Apache-2.0")
    ),
    paths(
        signals::receipt, signals::result,
        events::get_one, events::search,
        incidents::list, incidents::get_one, incidents::reprocess, incidents::resolve,
        batches::create, batches::get_one, batches::cancel,
        proof::create, proof::list_for_incident, proof::revoke, proof::page,
        project::get_settings, project::update_settings, project::rotate_secret,
        ops::healthz, ops::metrics, ops::openapi_json,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "signals", description = "Receipts and results sent by the app"),
        (name = "events", description = "Support look-ups"),
        (name = "incidents", description = "Incidents, reprocess and manual resolution"),
        (name = "proof links", description = "Read-only links to one incident"),
        (name = "project", description = "Settings and signing secrets"),
        (name = "ops", description = "Health, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer sp_…`"))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON (what `/openapi.json` serves and `docs/openapi.json` holds).
pub fn document_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}
