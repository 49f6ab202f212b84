//! The Users page (project admins): the project's members with their role
//! and status, adding (a password or an invitation link), changing roles,
//! removing, disabling, enabling, deleting, password and 2FA resets, and
//! the project's "require 2FA" setting. Every change goes through
//! [`crate::service::users`]; a one-time link is shown once on the page.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use sendpromptly_core::roles::Role;
use serde::Deserialize;

use super::{PageResult, fail, respond, time};
use crate::app::AppState;
use crate::console::PageError;
use crate::console::{Layout, Notice, Workspace, render};
use crate::service::users::{self as user_service, By, Credential, UserChange};

/// A member in the list.
pub struct MemberItem {
    pub id: String,
    pub email: String,
    pub status: &'static str,
    pub role: &'static str,
    pub owner: bool,
    pub totp: bool,
    pub created_at: String,
    pub is_self: bool,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    layout: Layout,
    members: Vec<MemberItem>,
    roles: Vec<&'static str>,
    require_2fa: bool,
    /// A one-time link to pass on, shown once.
    link: Option<String>,
}

async fn users_page(
    state: &AppState,
    ws: &Workspace,
    status: StatusCode,
    notice: Option<Notice>,
    link: Option<String>,
) -> PageResult {
    let store = state.store();
    let members = store
        .members(&ws.project.id)
        .await
        .map_err(fail(ws))?
        .into_iter()
        .map(|(user, role)| MemberItem {
            is_self: user.id == ws.signed_in.user.id,
            status: if user.disabled_at.is_some() {
                "disabled"
            } else if user.password_hash.is_empty() {
                "invited"
            } else {
                "active"
            },
            role: role.as_str(),
            owner: user.owner,
            totp: user.totp_enabled,
            created_at: time(Some(user.created_at)),
            id: user.id,
            email: user.email,
        })
        .collect();
    let mut layout = ws.layout("Users", "users");
    layout.notice = notice;
    Ok(render(
        status,
        &UsersPage {
            layout,
            members,
            roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
            require_2fa: ws.requires_2fa,
            link,
        },
    ))
}

/// `GET /users`.
pub async fn users(State(state): State<AppState>, ws: Workspace) -> Response {
    respond(async move { users_page(&state, &ws, StatusCode::OK, None, None).await }).await
}

/// Emails a one-time link when an SMTP server is configured (`--smtp-url`);
/// answers what to tell the admin ("" without SMTP: the page shows the link).
async fn email_link(state: &AppState, to: &str, subject: &str, body: &str) -> String {
    let Some(smtp) = state.config().smtp.as_ref() else {
        return String::new();
    };
    match crate::email::send_text(smtp, state.config().callback_timeout, to, subject, body).await {
        Ok(()) => "The link was emailed to them. ".to_owned(),
        Err(err) => {
            tracing::warn!(to, error = %err, "could not email a one-time link");
            format!("Emailing it failed ({err}). ")
        }
    }
}

/// Records a change in the audit log (a failure to record is logged: the
/// change itself is done).
pub(crate) async fn audited(state: &AppState, change: &UserChange, ip: Option<String>) {
    if let Err(err) = user_service::audit(state.store(), change, ip, state.now()).await {
        tracing::error!(action = change.action, error = %err, "could not record a user change in the audit log");
    }
}

/// The outcome of an action: the page again with a notice (and a link).
async fn after(
    state: &AppState,
    ws: &Workspace,
    outcome: Result<(UserChange, String, Option<String>), PageError>,
) -> PageResult {
    match outcome {
        Ok((change, text, link)) => {
            audited(state, &change, ws.ip.clone()).await;
            users_page(state, ws, StatusCode::OK, Notice::ok(text), link).await
        }
        Err(err) => users_page(state, ws, err.status(), Notice::bad(err.message()), None).await,
    }
}

/// The add-a-user form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    /// `invite` or `password`.
    #[serde(default)]
    mode: String,
    #[serde(default)]
    password: String,
}

fn parse_role(text: &str) -> Result<Role, PageError> {
    text.parse::<Role>()
        .map_err(|e| PageError::invalid("role", e.to_string()))
}

/// `POST /users`: adds a user to the project (new: with a password or an
/// invitation link; existing: just the membership).
pub async fn create_user(
    State(state): State<AppState>,
    ws: Workspace,
    Form(form): Form<CreateForm>,
) -> Response {
    respond(async move {
        let outcome = async {
            let role = parse_role(&form.role)?;
            let credential = match form.mode.as_str() {
                "password" => Credential::Password(form.password.clone()),
                _ => Credential::Invite,
            };
            let (change, link) = user_service::create(
                state.store(),
                By::Console(&ws.signed_in.user),
                &ws.project.id,
                &form.email,
                role,
                credential,
                state.now(),
            )
            .await?;
            let email = change
                .after
                .as_ref()
                .map_or("", |u| u.email.as_str())
                .to_owned();
            Ok(match link {
                Some(link) => {
                    let url = state.public_url(&link.path);
                    let until = time(Some(link.expires_at));
                    let sent = email_link(
                        &state,
                        &email,
                        "Your SendPromptly console invitation",
                        &format!(
                            "You were invited to the SendPromptly console as {role} of {}.\n\nSet your password with this link (it works once, until {until}):\n{url}\n",
                            ws.project.name
                        ),
                    )
                    .await;
                    (
                        change,
                        format!(
                            "Invited {email} as {role}. {sent}Send them this link (it works once, until {until}):"
                        ),
                        Some(url),
                    )
                }
                None => (change, format!("Added {email} as {role}."), None),
            })
        }
        .await;
        after(&state, &ws, outcome).await
    })
    .await
}

/// The role form.
#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /users/{id}/role`.
pub async fn user_role(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    respond(async move {
        let outcome = async {
            let role = parse_role(&form.role)?;
            let by = By::Console(&ws.signed_in.user);
            let change =
                user_service::set_role(state.store(), by, &ws.project.id, &id, role, state.now())
                    .await?;
            let email = change
                .after
                .as_ref()
                .map_or("", |u| u.email.as_str())
                .to_owned();
            Ok((
                change,
                format!("{email} is now {role} of this project."),
                None,
            ))
        }
        .await;
        after(&state, &ws, outcome).await
    })
    .await
}

macro_rules! account_action {
    ($name:ident, $doc:literal, |$state:ident, $ws:ident, $id:ident| $call:expr, $done:literal) => {
        #[doc = $doc]
        pub async fn $name(
            State($state): State<AppState>,
            $ws: Workspace,
            Path($id): Path<String>,
        ) -> Response {
            respond(async move {
                let outcome: Result<_, PageError> = async {
                    let (change, link): (UserChange, Option<String>) = $call;
                    let email = change
                        .before
                        .as_ref()
                        .map_or("", |u| u.email.as_str())
                        .to_owned();
                    Ok((change, format!($done, email = email), link))
                }
                .await;
                after(&$state, &$ws, outcome).await
            })
            .await
        }
    };
}

account_action!(
    user_remove,
    "`POST /users/{id}/remove`: removes the member from this project.",
    |state, ws, id| (
        user_service::remove_from_project(
            state.store(),
            By::Console(&ws.signed_in.user),
            &ws.project.id,
            &id,
            state.now()
        )
        .await?,
        None
    ),
    "Removed {email} from this project."
);

account_action!(
    user_disable,
    "`POST /users/{id}/disable`: every session of the user ends at once.",
    |state, ws, id| (
        user_service::disable(
            state.store(),
            By::Console(&ws.signed_in.user),
            &id,
            state.now()
        )
        .await?,
        None
    ),
    "Disabled {email}: they are signed out everywhere and cannot sign in."
);

account_action!(
    user_enable,
    "`POST /users/{id}/enable`.",
    |state, ws, id| (
        user_service::enable(state.store(), By::Console(&ws.signed_in.user), &id).await?,
        None
    ),
    "Enabled {email}."
);

account_action!(
    user_delete,
    "`POST /users/{id}/delete`: deletes the account everywhere.",
    |state, ws, id| (
        user_service::delete(state.store(), By::Console(&ws.signed_in.user), &id).await?,
        None
    ),
    "Deleted {email}."
);

/// `POST /users/{id}/reset-password`: the old password stops working and
/// every session ends; a one-time link (emailed when SMTP is configured,
/// always shown) sets a new one.
pub async fn user_reset_password(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
) -> Response {
    respond(async move {
        let outcome: Result<_, PageError> = async {
            let (change, link) = user_service::reset_password(
                state.store(),
                By::Console(&ws.signed_in.user),
                &id,
                state.now(),
            )
            .await?;
            let url = state.public_url(&link.path);
            let email = change.before.as_ref().map_or("", |u| u.email.as_str()).to_owned();
            let sent = email_link(
                &state,
                &email,
                "Reset your SendPromptly console password",
                &format!(
                    "An admin reset your SendPromptly console password.\n\nSet a new one with this link (it works once, for 24 hours):\n{url}\n"
                ),
            )
            .await;
            Ok((
                change,
                format!(
                    "Reset the password of {email}: they are signed out. {sent}Send them this link (it works once, for 24 hours):"
                ),
                Some(url),
            ))
        }
        .await;
        after(&state, &ws, outcome).await
    })
    .await
}

account_action!(
    user_reset_2fa,
    "`POST /users/{id}/reset-2fa`: turns the user's TOTP off (a lost phone).",
    |state, ws, id| (
        user_service::totp_disable(state.store(), By::Console(&ws.signed_in.user), &id).await?,
        None
    ),
    "Two-factor sign-in of {email} is off; they can enrol again."
);

/// The require-2FA form.
#[derive(Debug, Deserialize)]
pub struct Require2faForm {
    #[serde(default)]
    require_2fa: Option<String>,
}

/// `POST /settings/require-2fa`: whether members need TOTP to open the project.
pub async fn save_require_2fa(
    State(state): State<AppState>,
    mut ws: Workspace,
    Form(form): Form<Require2faForm>,
) -> Response {
    respond(async move {
        let required = form.require_2fa.is_some();
        let by = By::Console(&ws.signed_in.user);
        let who = ws.who();
        match user_service::set_require_2fa(
            state.store(),
            by,
            &who,
            &ws.project.id,
            required,
            state.now(),
        )
        .await
        {
            Ok(_before) => {
                ws.requires_2fa = required;
                let text = if required {
                    "Members now need two-factor sign-in to open this project."
                } else {
                    "Two-factor sign-in is no longer required for this project."
                };
                users_page(&state, &ws, StatusCode::OK, Notice::ok(text), None).await
            }
            Err(err) => Err(fail(&ws)(err)),
        }
    })
    .await
}
