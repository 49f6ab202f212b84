//! Who may open which console route: the one table the guard
//! (`console::guard`) checks every protected request against. A route
//! missing here is refused (403) for everyone, and
//! `sendpromptly-server/tests/console_roles.rs` fails for it, so a new page
//! cannot ship without a rule.

use axum::http::Method;
use sendpromptly_core::roles::Role;

/// What a route needs besides a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Only a session (your own account, sign-out, the project switcher).
    Session,
    /// At least this role in the project the request works on.
    Role(Role),
}

use Need::Session;
const VIEWER: Need = Need::Role(Role::Viewer);
const OPERATOR: Need = Need::Role(Role::Operator);
const ADMIN: Need = Need::Role(Role::Admin);

/// Every protected console route (method, axum path, need).
pub const RULES: &[(&str, &str, Need)] = &[
    ("GET", "/", VIEWER),
    ("GET", "/incidents", VIEWER),
    ("GET", "/incidents/export", VIEWER),
    ("GET", "/incidents/{id}", VIEWER),
    ("GET", "/incidents/{id}/live", VIEWER),
    ("POST", "/incidents/{id}/reprocess", OPERATOR),
    ("POST", "/incidents/{id}/resolve", OPERATOR),
    ("POST", "/incidents/{id}/proof-links", OPERATOR),
    (
        "POST",
        "/incidents/{id}/proof-links/{link}/revoke",
        OPERATOR,
    ),
    ("GET", "/reprocess-batches/new", OPERATOR),
    ("POST", "/reprocess-batches", OPERATOR),
    ("GET", "/reprocess-batches/{id}", VIEWER),
    ("GET", "/reprocess-batches/{id}/progress", VIEWER),
    ("POST", "/reprocess-batches/{id}/cancel", OPERATOR),
    ("GET", "/events", VIEWER),
    ("GET", "/events/{provider}/{event_id}", VIEWER),
    ("GET", "/settings", ADMIN),
    ("POST", "/settings/general", ADMIN),
    ("POST", "/settings/deadlines", ADMIN),
    ("POST", "/settings/alerts", ADMIN),
    ("POST", "/settings/provider-tap", ADMIN),
    ("POST", "/settings/tracing", ADMIN),
    ("POST", "/settings/slos", ADMIN),
    ("POST", "/settings/alerts/test", ADMIN),
    ("POST", "/settings/signing-secret/rotate", ADMIN),
    ("POST", "/settings/api-keys", ADMIN),
    ("POST", "/settings/api-keys/{id}/revoke", ADMIN),
    ("POST", "/settings/require-2fa", ADMIN),
    ("GET", "/analytics", VIEWER),
    ("GET", "/audit-log", ADMIN),
    ("GET", "/users", ADMIN),
    ("POST", "/users", ADMIN),
    ("POST", "/users/{id}/role", ADMIN),
    ("POST", "/users/{id}/remove", ADMIN),
    ("POST", "/users/{id}/disable", ADMIN),
    ("POST", "/users/{id}/enable", ADMIN),
    ("POST", "/users/{id}/delete", ADMIN),
    ("POST", "/users/{id}/reset-password", ADMIN),
    ("POST", "/users/{id}/reset-2fa", ADMIN),
    ("POST", "/switch-project", Session),
    ("POST", "/logout", Session),
    ("GET", "/account/2fa", Session),
    ("POST", "/account/2fa/confirm", Session),
    ("POST", "/account/2fa/disable", Session),
];

/// The rule of a matched route, if it has one.
pub fn rule(method: &Method, path: &str) -> Option<Need> {
    RULES
        .iter()
        .find(|(m, p, _)| *p == path && method.as_str() == *m)
        .map(|(_, _, need)| *need)
}
