//! The signed-in user's own account: TOTP enrolment (QR code, base32
//! secret, confirmation with a code, 10 recovery codes shown once) and
//! turning it off; and the one-time invitation / reset links that set a
//! password (no session).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, SignedIn};
use super::{PageError, error_page, render};
use crate::app::AppState;
use crate::service::users::{self as user_service, By};

#[derive(Template)]
#[template(path = "console/account_2fa.html")]
struct TotpPage {
    email: String,
    csrf: String,
    enabled: bool,
    secret: String,
    qr_svg: String,
    recovery_codes: Vec<String>,
    codes_left: u64,
    notice: Option<super::Notice>,
}

/// The QR code of `text` as an inline SVG (no script, no network).
fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(err) => {
            tracing::warn!(error = %err, "QR code failed");
            String::new()
        }
    }
}

/// `?required=1` when a project sent the user here.
#[derive(Debug, Default, Deserialize)]
pub struct TotpQuery {
    required: Option<String>,
}

async fn totp_view(
    state: &AppState,
    signed_in: &SignedIn,
    status: StatusCode,
    notice: Option<super::Notice>,
    recovery_codes: Vec<String>,
) -> Response {
    let store = state.store();
    let user = match store.user_by_id(&signed_in.user.id).await {
        Ok(Some(user)) => user,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(err) => return error_page(Some(signed_in), &err.into()),
    };
    let mut page = TotpPage {
        email: user.email.clone(),
        csrf: signed_in.csrf.clone(),
        enabled: user.totp_enabled,
        secret: String::new(),
        qr_svg: String::new(),
        recovery_codes,
        codes_left: 0,
        notice,
    };
    if user.totp_enabled {
        page.codes_left = store.recovery_codes_left(&user.id).await.unwrap_or(0);
    } else {
        match user_service::totp_start(store, &user).await {
            Ok(enrolment) => {
                page.qr_svg = qr_svg(&enrolment.uri);
                page.secret = enrolment.secret_base32;
            }
            Err(err) => return error_page(Some(signed_in), &err.into()),
        }
    }
    render(status, &page)
}

/// `GET /account/2fa`: enrol (QR code and secret) or see the status.
pub async fn totp_page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<TotpQuery>,
) -> Response {
    let required = query.required.is_some();
    let notice = if required && !signed_in.user.totp_enabled {
        super::Notice::bad("This project requires two-factor sign-in. Set it up here to continue.")
    } else {
        None
    };
    totp_view(&state, &signed_in, StatusCode::OK, notice, Vec::new()).await
}

/// A code form.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// `POST /account/2fa/confirm`: the first code turns TOTP on; the recovery
/// codes are shown once.
pub async fn totp_confirm(
    State(state): State<AppState>,
    super::auth::ClientIp(ip): super::auth::ClientIp,
    signed_in: SignedIn,
    Form(form): Form<CodeForm>,
) -> Response {
    let store = state.store();
    match user_service::totp_confirm(store, &signed_in.user, &form.code, state.now()).await {
        Ok((change, codes)) => {
            super::pages::audited(&state, &change, Some(ip)).await;
            totp_view(
                &state,
                &signed_in,
                StatusCode::OK,
                super::Notice::ok(
                    "Two-factor sign-in is on. Store these recovery codes now: each works once, and they are not shown again.",
                ),
                codes,
            )
            .await
        }
        Err(err) => {
            let err = PageError::from(err);
            totp_view(
                &state,
                &signed_in,
                err.status(),
                super::Notice::bad(err.message()),
                Vec::new(),
            )
            .await
        }
    }
}

/// `POST /account/2fa/disable`: turns TOTP off after a current code (or a
/// recovery code).
pub async fn totp_disable(
    State(state): State<AppState>,
    super::auth::ClientIp(ip): super::auth::ClientIp,
    signed_in: SignedIn,
    Form(form): Form<CodeForm>,
) -> Response {
    let store = state.store();
    let user = &signed_in.user;
    let outcome = async {
        user_service::second_factor(store, user, &form.code, state.now()).await?;
        user_service::totp_disable(store, By::Console(user), &user.id).await
    }
    .await;
    match outcome {
        Ok(change) => {
            super::pages::audited(&state, &change, Some(ip)).await;
            let mut fresh = signed_in.clone();
            fresh.user.totp_enabled = false;
            totp_view(
                &state,
                &fresh,
                StatusCode::OK,
                super::Notice::ok("Two-factor sign-in is off."),
                Vec::new(),
            )
            .await
        }
        Err(err) => {
            let err = PageError::from(err);
            totp_view(
                &state,
                &signed_in,
                err.status(),
                super::Notice::bad(err.message()),
                Vec::new(),
            )
            .await
        }
    }
}

// ---------------------------------------------------------------------------
// One-time links: set a password

#[derive(Template)]
#[template(path = "console/setup.html")]
struct SetupPage {
    csrf: String,
    token: String,
    error: Option<String>,
    done: bool,
}

fn setup_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    token: String,
    error: Option<String>,
    done: bool,
) -> Response {
    let csrf = crate::secrets::new_proof_token();
    let mut response = render(
        status,
        &SetupPage {
            csrf: csrf.clone(),
            token,
            error,
            done,
        },
    );
    auth::set_login_csrf(&mut response, state, headers, &csrf);
    response
}

/// `GET /account/setup/{token}`: the set-a-password form of an invitation or reset link.
pub async fn setup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    setup_form(&state, &headers, StatusCode::OK, token, None, false)
}

/// The set-a-password form.
#[derive(Debug, Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /account/setup/{token}`: sets the password, once.
pub async fn setup(
    State(state): State<AppState>,
    super::auth::ClientIp(ip): super::auth::ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<SetupForm>,
) -> Response {
    let expected = auth::cookie(&headers, auth::LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::tokens_match(&form.csrf, expected) {
        return super::forbidden_page();
    }
    if form.password != form.confirm {
        return setup_form(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            token,
            Some("The two passwords differ; type the same password twice.".into()),
            false,
        );
    }
    match user_service::accept_link(state.store(), &token, &form.password, state.now()).await {
        Ok(change) => {
            super::pages::audited(&state, &change, Some(ip)).await;
            setup_form(&state, &headers, StatusCode::OK, String::new(), None, true)
        }
        Err(err) => {
            let err = PageError::from(err);
            setup_form(
                &state,
                &headers,
                err.status(),
                token,
                Some(err.message()),
                false,
            )
        }
    }
}
