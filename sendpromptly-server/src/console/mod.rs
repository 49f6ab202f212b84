//! The console: server-rendered HTML for the people who review incidents,
//! read timelines and click Reprocess, served at `/` by `sendpromptly serve`.
//!
//! - Pages are askama templates under `templates/console/`; the one piece
//!   of JavaScript is htmx (vendored in `assets/`, served from the binary),
//!   used only to refresh an incident page while a reprocess is in flight.
//!   Everything else works without JavaScript.
//! - Sign-in with email and password ([`auth`]); sessions are cookies
//!   holding a random token stored hashed with an absolute expiry.
//! - Every POST carries a per-session CSRF token (hidden `csrf` field or
//!   `X-CSRF-Token` header, which htmx sends); a missing or wrong token is a
//!   403 page. The sign-in form uses a double-submit cookie instead.
//! - Actions call the service layer ([`crate::service`]: `request_reprocess`,
//!   `manual_resolve`, `create_link`, …), as the API does, with
//!   [`Actor::Console`], so the timeline names the user's email; a failure
//!   is shown in the console's own words ([`PageError`], `error.rs`).
//! - A console user sees only the projects they are a member of, with a
//!   role in each (`viewer`, `operator`, `admin`; the owner is admin of
//!   all). The project a page shows is `?project=` or the switcher's cookie,
//!   else their first project. The guard checks every protected route
//!   against one table ([`access::RULES`]): not signed in is a redirect to
//!   sign-in, a role too low or another project is a 403 page that says so.
//! - Two-factor sign-in (TOTP) and the Users page: [`account`], `pages/users.rs`.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sendpromptly_core::model::Actor;

use crate::app::AppState;
use crate::service::users as user_service;
use crate::store::Project;
use sendpromptly_core::roles::Role;

pub mod access;
mod account;
mod analytics_chart;
pub mod auth;
mod chart;
mod error;
mod pages;
#[cfg(feature = "test-support")]
pub use pages::fuzzing;

pub(crate) use error::PageError;

use auth::{LoginThrottle, SignedIn};

pub use crate::links::{INCIDENTS_PATH, SETTINGS_PATH, incident_link_path, incident_path};

/// The console's routes (merged into the main router at `/`).
pub fn router(state: AppState) -> Router<AppState> {
    let throttle = Arc::new(LoginThrottle::default());
    let protected = Router::new()
        .route("/", get(pages::overview))
        .route("/incidents", get(pages::incidents))
        .route("/incidents/export", get(pages::incidents_export))
        .route("/incidents/{id}", get(pages::incident))
        .route("/incidents/{id}/live", get(pages::incident_live))
        .route("/incidents/{id}/reprocess", post(pages::reprocess))
        .route("/incidents/{id}/resolve", post(pages::resolve))
        .route(
            "/incidents/{id}/proof-links",
            post(pages::create_proof_link),
        )
        .route(
            "/incidents/{id}/proof-links/{link}/revoke",
            post(pages::revoke_proof_link),
        )
        .route("/reprocess-batches/new", get(pages::batch_new))
        .route("/reprocess-batches", post(pages::batch_start))
        .route("/reprocess-batches/{id}", get(pages::batch))
        .route(
            "/reprocess-batches/{id}/progress",
            get(pages::batch_progress),
        )
        .route("/reprocess-batches/{id}/cancel", post(pages::batch_cancel))
        .route("/analytics", get(pages::analytics))
        .route("/events", get(pages::events))
        .route("/events/{provider}/{event_id}", get(pages::event))
        .route("/audit-log", get(pages::audit_log))
        .route("/settings", get(pages::settings))
        .route("/settings/general", post(pages::save_general))
        .route("/settings/deadlines", post(pages::save_deadlines))
        .route("/settings/tracing", post(pages::save_tracing))
        .route("/settings/slos", post(pages::save_slos))
        .route("/settings/alerts", post(pages::save_alerts))
        .route("/settings/provider-tap", post(pages::save_provider_tap))
        .route("/settings/alerts/test", post(pages::test_alerts))
        .route(
            "/settings/signing-secret/rotate",
            post(pages::rotate_secret),
        )
        .route("/settings/api-keys", post(pages::create_api_key))
        .route(
            "/settings/api-keys/{id}/revoke",
            post(pages::revoke_api_key),
        )
        .route("/settings/require-2fa", post(pages::save_require_2fa))
        .route("/users", get(pages::users).post(pages::create_user))
        .route("/users/{id}/role", post(pages::user_role))
        .route("/users/{id}/remove", post(pages::user_remove))
        .route("/users/{id}/disable", post(pages::user_disable))
        .route("/users/{id}/enable", post(pages::user_enable))
        .route("/users/{id}/delete", post(pages::user_delete))
        .route(
            "/users/{id}/reset-password",
            post(pages::user_reset_password),
        )
        .route("/users/{id}/reset-2fa", post(pages::user_reset_2fa))
        .route("/account/2fa", get(account::totp_page))
        .route("/account/2fa/confirm", post(account::totp_confirm))
        .route("/account/2fa/disable", post(account::totp_disable))
        .route("/switch-project", post(pages::switch_project))
        .route("/logout", post(auth::logout))
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route(
            "/login/2fa",
            get(auth::second_factor_page).post(auth::second_factor),
        )
        .route(
            "/account/setup/{token}",
            get(account::setup_page).post(account::setup),
        )
        .route("/assets/htmx.min.js", get(htmx_js))
        .route("/assets/console.css", get(console_css))
        .merge(protected)
        .layer(axum::Extension(throttle))
        .layer(middleware::from_fn(security_headers))
}

// ---------------------------------------------------------------------------
// Assets (vendored, served from the binary)

/// htmx 2 (<https://htmx.org>, Zero-Clause BSD licence; see `assets/NOTICE`),
/// `dist/htmx.min.js` from the npm package `htmx.org`.
const HTMX_JS: &str = include_str!("../../assets/htmx.min.js");
/// The console's stylesheet, followed by the shared timeline component's.
const CONSOLE_CSS: &str = concat!(
    include_str!("../../assets/console.css"),
    "\n",
    include_str!("../../templates/timeline.css")
);

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Not fingerprinted: cache for a day, revalidate after.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

async fn htmx_js() -> Response {
    asset("text/javascript; charset=utf-8", HTMX_JS)
}

async fn console_css() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

/// Headers on every console response: no framing, a strict CSP (scripts
/// only from this server), no caching of pages.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}

// ---------------------------------------------------------------------------
// The guard: a session for every protected route, a CSRF token on every POST

/// Largest form body the console accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let signed_in = match auth::signed_in(&state, request.headers()).await {
        Ok(Some(signed_in)) => signed_in,
        Ok(None) => return sign_in_first(&request),
        Err(err) => return error_page(None, &err),
    };
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let Some(need) = matched
        .as_deref()
        .and_then(|path| access::rule(request.method(), path))
    else {
        tracing::error!(path = %request.uri().path(), "console route without an access rule");
        return refused_page(
            "This page has no access rule, so it is refused to everyone. This is a bug; please report it.",
        );
    };
    let ws = match workspace(
        &state,
        request.headers(),
        request.uri().query(),
        signed_in.clone(),
    )
    .await
    {
        Ok(ws) => ws,
        Err(err) => return error_page(Some(&signed_in), &err),
    };
    if let access::Need::Role(needed) = need {
        let Some(ws) = &ws else {
            return refused_page(
                "You are not a member of any project yet. Ask an admin of a project to add you.",
            );
        };
        if !ws.role.allows(needed) {
            return refused_page(&format!(
                "This needs the {needed} role in project {}; your role there is {}. Ask an admin of the project.",
                ws.project.name, ws.role
            ));
        }
        if ws.requires_2fa && !signed_in.user.totp_enabled {
            return Redirect::to("/account/2fa?required=1").into_response();
        }
    }
    let (mut parts, body) = request.into_parts();
    if let Some(ws) = ws {
        parts.extensions.insert(ws);
    }
    let request = if parts.method == Method::POST {
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return error_page(Some(&signed_in), &PageError::payload_too_large());
            }
        };
        let header_token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let field_token = url::form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.into_owned());
        let given = field_token.or(header_token);
        if !given.is_some_and(|token| auth::tokens_match(&token, &signed_in.csrf)) {
            tracing::warn!(user = %signed_in.user.email, path = %parts.uri.path(), "console POST without a valid CSRF token");
            return forbidden_page();
        }
        parts.extensions.insert(signed_in);
        Request::from_parts(parts, Body::from(bytes))
    } else {
        parts.extensions.insert(signed_in);
        Request::from_parts(parts, body)
    };
    next.run(request).await
}

/// Not signed in: a redirect to the sign-in page (which comes back here),
/// or for htmx requests an `HX-Redirect`.
fn sign_in_first(request: &Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let back = if request.method() == Method::GET && !path.ends_with("/live") {
        path
    } else {
        "/".to_owned()
    };
    let target = format!(
        "/login?next={}",
        url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
    );
    if request.headers().contains_key("hx-request") {
        return (
            StatusCode::UNAUTHORIZED,
            [(HeaderName::from_static("hx-redirect"), target)],
        )
            .into_response();
    }
    Redirect::to(&target).into_response()
}

// ---------------------------------------------------------------------------
// Layout, notices and error pages

/// What the base template needs: who is signed in, the project switcher,
/// the CSRF token for forms, the active navigation item and a notice.
pub(crate) struct Layout {
    pub title: String,
    pub email: String,
    pub csrf: String,
    pub nav: &'static str,
    pub projects: Vec<ProjectChoice>,
    pub project_name: String,
    pub notice: Option<Notice>,
    /// The user's role in the project (the navigation shows what it allows).
    pub role: Role,
}

/// One entry of the project switcher.
pub(crate) struct ProjectChoice {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

/// A message at the top of a page: `ok` or `bad`.
pub(crate) struct Notice {
    pub tone: &'static str,
    pub text: String,
}

impl Notice {
    pub fn ok(text: impl Into<String>) -> Option<Notice> {
        Some(Notice {
            tone: "ok",
            text: text.into(),
        })
    }
    pub fn bad(text: impl Into<String>) -> Option<Notice> {
        Some(Notice {
            tone: "bad",
            text: text.into(),
        })
    }
}

/// The signed-in user, the project they are working on and their role in
/// it, and the projects they may switch to (only their own).
#[derive(Clone)]
pub(crate) struct Workspace {
    pub signed_in: SignedIn,
    pub project: Project,
    pub projects: Vec<Project>,
    pub role: Role,
    pub requires_2fa: bool,
    /// The client IP (the TCP peer, as the login throttle sees it).
    pub ip: Option<String>,
}

impl Workspace {
    /// The user in the audit log.
    pub fn who(&self) -> crate::service::audit::Who {
        crate::service::audit::Who::user(&self.signed_in.user.email, self.ip.clone())
    }

    /// The user's actor on timelines: `console:<email>`.
    pub fn actor(&self) -> Actor {
        Actor::Console(self.signed_in.user.email.clone())
    }

    pub fn layout(&self, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            email: self.signed_in.user.email.clone(),
            csrf: self.signed_in.csrf.clone(),
            nav,
            projects: self
                .projects
                .iter()
                .map(|p| ProjectChoice {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    selected: p.id == self.project.id,
                })
                .collect(),
            project_name: self.project.name.clone(),
            notice: None,
            role: self.role,
        }
    }
}

/// A page handler's workspace, as the guard resolved and checked it; a
/// user with no project gets the 403 page.
impl axum::extract::FromRequestParts<AppState> for Workspace {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let _ = SignedIn::from_request_parts(parts, state).await?;
        let mut ws = parts.extensions.get::<Workspace>().cloned().ok_or_else(|| {
            refused_page(
                "You are not a member of any project yet. Ask an admin of a project to add you.",
            )
        })?;
        ws.ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string());
        Ok(ws)
    }
}

/// The name of the cookie remembering the chosen project.
pub(crate) const PROJECT_COOKIE: &str = "sp_project";

/// Resolves the project a request works on among the user's own: the
/// `?project=` parameter (another project's is refused), else the
/// cookie's (ignored if not theirs), else their first. `None` when they
/// belong to no project.
pub(crate) async fn workspace(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    signed_in: SignedIn,
) -> Result<Option<Workspace>, PageError> {
    let store = state.store();
    let mine = user_service::projects_of(store, &signed_in.user).await?;
    let asked = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(name, _)| name == "project")
            .map(|(_, value)| value.into_owned())
    });
    let chosen = match asked {
        Some(wanted) => Some(mine.iter().find(|(p, _)| p.id == wanted).ok_or_else(|| {
            PageError::from(crate::service::ServiceError::Forbidden(
                "You are not a member of that project. Ask one of its admins to add you.".into(),
            ))
        })?),
        None => auth::cookie(headers, PROJECT_COOKIE)
            .and_then(|id| mine.iter().find(|(p, _)| p.id == id))
            .or_else(|| mine.first()),
    };
    let Some((project, role)) = chosen.cloned() else {
        return Ok(None);
    };
    let requires_2fa = store.project_requires_2fa(&project.id).await?;
    Ok(Some(Workspace {
        signed_in,
        project,
        projects: mine.into_iter().map(|(p, _)| p).collect(),
        role,
        requires_2fa,
        ip: None,
    }))
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    title: String,
    message: String,
    signed_in: bool,
}

/// Renders a template, or a plain 500 if the template fails.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// An error as an HTML page with the API's status and message.
pub(crate) fn error_page(signed_in: Option<&SignedIn>, err: &PageError) -> Response {
    let status = err.status();
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Not possible right now",
        StatusCode::UNPROCESSABLE_ENTITY => "Please check the form",
        StatusCode::SERVICE_UNAVAILABLE => "Storage unavailable",
        _ if status.is_server_error() => "Something went wrong",
        _ => "Request refused",
    };
    if status.is_server_error() {
        tracing::warn!(error = %err, "console request failed");
    }
    render(
        status,
        &ErrorPage {
            title: title.to_owned(),
            message: err.message(),
            signed_in: signed_in.is_some(),
        },
    )
}

/// The 403 page of a signed-in user refused by their role or project.
pub(crate) fn refused_page(message: &str) -> Response {
    render(
        StatusCode::FORBIDDEN,
        &ErrorPage {
            title: "Not allowed".to_owned(),
            message: message.to_owned(),
            signed_in: true,
        },
    )
}

/// The 403 page of a POST without a valid CSRF token.
pub(crate) fn forbidden_page() -> Response {
    render(
        StatusCode::FORBIDDEN,
        &ErrorPage {
            title: "Form expired".to_owned(),
            message: "This form was missing its security token or it did not match your session \
                      (CSRF protection). Nothing was changed. Go back, reload the page and try again."
                .to_owned(),
            signed_in: true,
        },
    )
}
