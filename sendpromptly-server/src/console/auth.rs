//! Console sign-in: sessions, cookies, CSRF tokens and login throttling.
//!
//! - A session is a 256-bit random token in the `sp_session` cookie
//!   (`HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` when the console is
//!   served over TLS: a `https://` public URL or `X-Forwarded-Proto: https`).
//!   The store keeps only its SHA-256, with an absolute expiry of
//!   [`SESSION_SECONDS`]; sign-out deletes it.
//! - The CSRF token of a session is derived from its token (SHA-256 with a
//!   domain prefix), so it needs no storage and changes with every session.
//! - The sign-in form has no session yet: it uses a double-submit cookie
//!   (`sp_login_csrf`, random, `SameSite=Strict`) that must equal the form field.
//! - Failed sign-ins are throttled per (email, client IP): after
//!   [`MAX_FAILURES`] failures in [`THROTTLE_WINDOW`] further attempts are
//!   refused without checking the password until the window passes. The
//!   counters live in memory: they reset on restart and are not shared
//!   between several server processes (good enough for one server; a shared
//!   store would be needed behind a load balancer).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::PageError;
use super::{forbidden_page, render};
use crate::app::AppState;
use crate::secrets;
use crate::store::{Session, User};

/// The session cookie.
pub const SESSION_COOKIE: &str = "sp_session";
/// The cookie of a signed-in-by-password session still waiting for its TOTP code.
pub const PENDING_COOKIE: &str = "sp_2fa";
/// How long the TOTP step of a sign-in may take.
pub const PENDING_SECONDS: i64 = 10 * 60;
/// The sign-in form's double-submit CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "sp_login_csrf";
/// How long a session lasts: 12 hours from sign-in.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Failed sign-ins allowed per (email, IP) within [`THROTTLE_WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// The window of the sign-in throttle.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A signed-in console user and the CSRF token of their session.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The user.
    pub user: User,
    /// The session's CSRF token (hidden `csrf` field of every form).
    pub csrf: String,
    /// SHA-256 of the session token.
    pub token_hash: Vec<u8>,
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SignedIn>()
            .cloned()
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// The CSRF token of a session token.
pub fn csrf_for(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"sendpromptly console csrf\0");
    hasher.update(session_token.as_bytes());
    hex::encode(hasher.finalize())
}

/// Compares two tokens in constant time.
pub fn tokens_match(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The value of a cookie in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// Whether cookies must be `Secure`: the console is reached over TLS.
pub fn is_secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.public_url("").starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age: i64,
    same_site: &str,
    secure: bool,
) -> HeaderValue {
    let mut cookie =
        format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={same_site}");
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The signed-in user of a request, if its session cookie is valid.
pub async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SignedIn>, PageError> {
    let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty() && t.len() <= 100)
    else {
        return Ok(None);
    };
    let token_hash = secrets::hash_token(token);
    let user = state.store().session_user(&token_hash, state.now()).await?;
    Ok(user.map(|user| SignedIn {
        user,
        csrf: csrf_for(token),
        token_hash,
    }))
}

// ---------------------------------------------------------------------------
// Throttle

/// In-memory counters of failed sign-ins per (email, IP).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<(String, String), (u32, Instant)>>,
}

impl LoginThrottle {
    /// `Err(wait)` while `key` has used up its failures in the current window.
    fn check(&self, key: &(String, String)) -> Result<(), Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((count, since)) if *count >= MAX_FAILURES => {
                let elapsed = since.elapsed();
                if elapsed < THROTTLE_WINDOW {
                    Err(THROTTLE_WINDOW - elapsed)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn fail(&self, key: (String, String)) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, since)| since.elapsed() < THROTTLE_WINDOW);
        }
        let entry = map.entry(key).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= THROTTLE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn succeed(&self, key: &(String, String)) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The client's IP address (from the connection), or `unknown`.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string()),
        ))
    }
}

// ---------------------------------------------------------------------------
// Pages

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

/// Query of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only same-site paths are followed after sign-in.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.starts_with("/login")
                && path.len() <= 2000 =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: String,
    email: String,
    error: Option<String>,
) -> Response {
    let csrf = secrets::new_proof_token();
    let mut response = render(
        status,
        &LoginPage {
            csrf: csrf.clone(),
            next,
            email,
            error,
        },
    );
    set_login_csrf(&mut response, state, headers, &csrf);
    response
}

/// Sets the CSRF cookie of a signed-out form (sign-in, second factor,
/// account setup): the token the form carries in its hidden field.
pub(crate) fn set_login_csrf(
    response: &mut Response,
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) {
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf,
            3600,
            "Strict",
            is_secure(state, headers),
        ),
    );
}

/// `GET /login`.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if let Ok(Some(_)) = signed_in(&state, &headers).await {
        return Redirect::to(&next).into_response();
    }
    login_form(&state, &headers, StatusCode::OK, next, String::new(), None)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// A hash to verify against when the email is unknown, so both cases take as long.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| secrets::hash_password("not a real password").unwrap_or_default())
}

/// `POST /login`.
pub async fn login(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<LoginThrottle>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !tokens_match(&form.csrf, expected) {
        return forbidden_page();
    }
    let next = safe_next(form.next.as_deref());
    let email = form.email.trim().to_lowercase();
    let key = (email.clone(), ip);
    if let Err(wait) = throttle.check(&key) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        tracing::warn!(%email, ip = %key.1, "console sign-in throttled");
        let mut response = login_form(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            email,
            Some(format!(
                "Too many failed sign-ins for this email from your address. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let user = match state.store().user_by_email(&email).await {
        Ok(user) => user,
        Err(err) => return super::error_page(None, &err.into()),
    };
    let phc = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        throttle.fail(key);
        tracing::info!(%email, "console sign-in failed");
        return login_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            next,
            email,
            Some("Wrong email or password.".to_owned()),
        );
    };
    if user.disabled_at.is_some() {
        tracing::info!(%email, "console sign-in of a disabled user");
        return login_form(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            next,
            email,
            Some("This account is disabled. Ask an admin of your project to enable it.".to_owned()),
        );
    }
    if user.totp_enabled {
        // The password was right; the session opens nothing until the code is given.
        return start_session(&state, &headers, &user, &next, true).await;
    }
    throttle.succeed(&key);
    start_session(&state, &headers, &user, &next, false).await
}

/// Stores a new session and sets its cookie: a full one (redirect to
/// `next`), or one waiting for the TOTP code (redirect to `/login/2fa`).
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
    next: &str,
    pending_2fa: bool,
) -> Response {
    let token = secrets::new_proof_token();
    let now = state.now();
    let seconds = if pending_2fa {
        PENDING_SECONDS
    } else {
        SESSION_SECONDS
    };
    let session = Session {
        token_hash: secrets::hash_token(&token),
        user_id: user.id.clone(),
        created_at: now,
        expires_at: now.plus_seconds(seconds),
        pending_2fa,
    };
    if let Err(err) = state.store().create_session(session).await {
        return super::error_page(None, &err.into());
    }
    let secure = is_secure(state, headers);
    if pending_2fa {
        tracing::info!(email = %user.email, "console sign-in: password right, TOTP code due");
        let target = format!(
            "/login/2fa?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        let mut response = Redirect::to(&target).into_response();
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(PENDING_COOKIE, &token, PENDING_SECONDS, "Strict", secure),
        );
        return response;
    }
    tracing::info!(email = %user.email, "console sign-in");
    let mut response = Redirect::to(next).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, SESSION_SECONDS, "Lax", secure),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, "", 0, "Strict", secure),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(PENDING_COOKIE, "", 0, "Strict", secure),
    );
    response
}

// ---------------------------------------------------------------------------
// The second step of sign-in: the TOTP (or recovery) code

#[derive(Template)]
#[template(path = "console/login_2fa.html")]
struct SecondFactorPage {
    csrf: String,
    next: String,
    error: Option<String>,
}

/// The user of the request's TOTP-pending session, and its token hash.
async fn pending_user(state: &AppState, headers: &HeaderMap) -> Option<(User, Vec<u8>)> {
    let token = cookie(headers, PENDING_COOKIE).filter(|t| !t.is_empty() && t.len() <= 100)?;
    let hash = secrets::hash_token(token);
    let user = state
        .store()
        .pending_session_user(&hash, state.now())
        .await
        .ok()??;
    Some((user, hash))
}

fn second_factor_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: String,
    error: Option<String>,
) -> Response {
    let csrf = secrets::new_proof_token();
    let mut response = render(
        status,
        &SecondFactorPage {
            csrf: csrf.clone(),
            next,
            error,
        },
    );
    set_login_csrf(&mut response, state, headers, &csrf);
    response
}

/// `GET /login/2fa`: asks for the code (no pending sign-in: back to sign-in).
pub async fn second_factor_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if pending_user(&state, &headers).await.is_none() {
        return Redirect::to("/login").into_response();
    }
    second_factor_form(&state, &headers, StatusCode::OK, next, None)
}

/// The code form.
#[derive(Debug, Deserialize)]
pub struct SecondFactorForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login/2fa`: a right code (or an unused recovery code) turns the
/// pending sign-in into a session; wrong codes count in the sign-in throttle.
pub async fn second_factor(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<LoginThrottle>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SecondFactorForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !tokens_match(&form.csrf, expected) {
        return forbidden_page();
    }
    let next = safe_next(form.next.as_deref());
    let Some((user, pending_hash)) = pending_user(&state, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    let key = (user.email.clone(), ip.clone());
    if let Err(wait) = throttle.check(&key) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        return second_factor_form(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            Some(format!(
                "Too many wrong codes. Try again in {minutes} minute(s)."
            )),
        );
    }
    let now = state.now();
    match crate::service::users::second_factor(state.store(), &user, &form.code, now).await {
        Ok(Some(recovery_code_used)) => {
            super::pages::audited(&state, &recovery_code_used, Some(ip.clone())).await;
        }
        Ok(None) => {}
        Err(err) => {
            throttle.fail(key);
            let err = PageError::from(err);
            return second_factor_form(&state, &headers, err.status(), next, Some(err.message()));
        }
    }
    throttle.succeed(&key);
    if let Err(err) = state.store().delete_session(&pending_hash).await {
        return super::error_page(None, &err.into());
    }
    start_session(&state, &headers, &user, &next, false).await
}

/// `POST /logout`: deletes the session and its cookie.
pub async fn logout(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
) -> Response {
    if let Err(err) = state.store().delete_session(&signed_in.token_hash).await {
        return super::error_page(Some(&signed_in), &err.into());
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, "Lax", is_secure(&state, &headers)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths_stay_on_site() {
        assert_eq!(
            safe_next(Some("/incidents?state=open")),
            "/incidents?state=open"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(Some("/login")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_parse_and_tokens_compare() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sp_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
        assert!(tokens_match(&csrf_for("abc"), &csrf_for("abc")));
        assert!(!tokens_match(&csrf_for("abc"), &csrf_for("abd")));
        assert!(!tokens_match("", &csrf_for("abc")));
    }

    #[test]
    fn the_throttle_locks_after_max_failures() {
        let throttle = LoginThrottle::default();
        let key = ("a@example.com".to_owned(), "127.0.0.1".to_owned());
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(&key).is_ok());
            throttle.fail(key.clone());
        }
        assert!(throttle.check(&key).is_err());
        let other_ip = ("a@example.com".to_owned(), "10.0.0.1".to_owned());
        assert!(throttle.check(&other_ip).is_ok());
        throttle.succeed(&key);
        assert!(throttle.check(&key).is_ok());
    }
}
