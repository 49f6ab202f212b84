//! The one table of which scope each `/v1` route requires (issue #24),
//! checked by [`super::authenticate`] for every authenticated route; no
//! handler checks scopes itself. A route missing from the table requires
//! `admin` (fail closed); `sendpromptly-server/tests/access_matrix.rs`
//! checks the table against the router and the OpenAPI document.

use axum::http::Method;
use sendpromptly_core::scope::Scope;

/// Every authenticated `/v1` route: method, path template (as in the
/// router and the OpenAPI document), required scope.
pub const ROUTE_SCOPES: &[(&str, &str, Scope)] = &[
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

/// The scope `method path` requires (`path` a request path such as
/// `/v1/incidents/inc_1`); `admin` for a route not in the table.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    ROUTE_SCOPES
        .iter()
        .find(|(m, template, _)| *m == method.as_str() && matches(template, path))
        .map_or(Scope::Admin, |(_, _, scope)| *scope)
}

/// The required scope of a route as documented (`x-required-scope`).
pub fn scope_of_template(method: &str, template: &str) -> Option<Scope> {
    ROUTE_SCOPES
        .iter()
        .find(|(m, t, _)| m.eq_ignore_ascii_case(method) && *t == template)
        .map(|(_, _, scope)| *scope)
}

/// Whether `path` fits `template`, segment by segment (`{…}` fits any one
/// non-empty segment).
fn matches(template: &str, path: &str) -> bool {
    let mut wanted = template.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_find_their_scope() {
        assert_eq!(required_scope(&Method::POST, "/v1/receipt"), Scope::Ingest);
        assert_eq!(
            required_scope(&Method::GET, "/v1/incidents/inc_1"),
            Scope::Read
        );
        assert_eq!(
            required_scope(&Method::POST, "/v1/incidents/inc_1/reprocess"),
            Scope::Operate
        );
        assert_eq!(required_scope(&Method::PATCH, "/v1/project"), Scope::Admin);
        assert_eq!(
            required_scope(&Method::GET, "/v1/not-a-route"),
            Scope::Admin,
            "fail closed"
        );
        assert_eq!(required_scope(&Method::GET, "/v1/incidents/"), Scope::Admin);
    }
}
