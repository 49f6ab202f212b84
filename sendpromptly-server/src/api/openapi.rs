//! The OpenAPI document, generated from the handlers' annotations.
//!
//! The committed copy lives at `docs/openapi.json`; a test fails when it
//! drifts (regenerate with `UPDATE_OPENAPI=1 cargo test -p sendpromptly-server --test openapi`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audit, batches, events, incidents, ops, project, proof, providers, signals, stats};

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
        incidents::list, incidents::export, incidents::get_one, incidents::reprocess, incidents::resolve,
        batches::create, batches::get_one, batches::cancel,
        proof::create, proof::list_for_incident, proof::revoke, proof::page,
        project::get_settings, project::update_settings, project::rotate_secret,
        project::test_alert_channels,
        audit::list,
        stats::get_stats,
        providers::stripe_webhook, providers::shopify_webhook,
        ops::healthz, ops::metrics, ops::openapi_json,
    ),
    components(schemas(sendpromptly_core::trace::TraceContextView)),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "signals", description = "Receipts and results sent by the app"),
        (name = "events", description = "Support look-ups"),
        (name = "incidents", description = "Incidents, reprocess and manual resolution"),
        (name = "proof links", description = "Read-only links to one incident"),
        (name = "project", description = "Settings, signing secrets and the audit log"),
        (name = "stats", description = "Time to effect, delivery lag, time to repair, SLO status"),
        (name = "ops", description = "Health, metrics, this document"),
        (name = "provider tap", description = "Stripe and Shopify deliver their own copy of each event here (signed; no API key)"),
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
                    .description(Some("An API key: `Authorization: Bearer sp_…`. Each operation requires one scope, named in its `x-required-scope` (ingest, read, operate or admin; admin implies all); a key without it gets 403 `insufficient_scope`."))
                    .build(),
            ),
        );
    }
}

/// The answers every operation can give besides its own, documented once:
/// 408 (request timeout) everywhere; on `/v1`: 401 (key), 429 (rate limit,
/// with `Retry-After`); on POST: 409 and 422 (Idempotency-Key in flight or
/// reused); with a JSON body: 400, 413, 415 and 422.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, Type};

        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
        };
        for (path, item) in &mut openapi.paths.paths {
            // The provider tap is authenticated by the provider's signature.
            let authenticated = path.starts_with("/v1/") && !path.starts_with("/v1/providers/");
            for (method, is_post, operation) in [
                ("GET", false, item.get.as_mut()),
                ("POST", true, item.post.as_mut()),
                ("PATCH", false, item.patch.as_mut()),
                ("DELETE", false, item.delete.as_mut()),
                ("PUT", false, item.put.as_mut()),
            ]
            .into_iter()
            .filter_map(|(m, p, o)| o.map(|o| (m, p, o)))
            {
                let has_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, response: utoipa::openapi::Response| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| response.into());
                };
                add(
                    "408",
                    error("The request took longer than the server allows").build(),
                );
                if !authenticated {
                    continue;
                }
                add("401", error("Missing, unknown or revoked API key").build());
                add(
                    "403",
                    error("`insufficient_scope`: the key lacks the scope this operation requires (see `x-required-scope`)").build(),
                );
                if let Some(scope) = crate::auth::scopes::scope_of_template(method, path) {
                    let scope = utoipa::openapi::extensions::ExtensionsBuilder::new()
                        .add("x-required-scope", scope.as_str())
                        .build();
                    operation
                        .extensions
                        .get_or_insert_with(Default::default)
                        .merge(scope);
                }
                add(
                    "429",
                    error("This API key is over its rate limit")
                        .header(
                            "Retry-After",
                            HeaderBuilder::new()
                                .schema(utoipa::openapi::schema::Object::with_type(Type::Integer))
                                .description(Some("Seconds to wait before retrying"))
                                .build(),
                        )
                        .build(),
                );
                if is_post {
                    add(
                        "409",
                        error("A request with this Idempotency-Key is still running").build(),
                    );
                    add(
                        "422",
                        error("Invalid input or a reused Idempotency-Key").build(),
                    );
                }
                if has_body {
                    add("400", error("Malformed JSON").build());
                    add("413", error("Body over 64 KiB").build());
                    add("415", error("Not `Content-Type: application/json`").build());
                    add("422", error("Invalid input").build());
                }
            }
        }
    }
}

/// The document as pretty JSON (what `/openapi.json` serves and `docs/openapi.json` holds).
pub fn document_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}
