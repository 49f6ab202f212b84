//! Console users, their roles per project and their second factor: every
//! change goes through one function here, called by the console and the
//! CLI alike, and answers a [`UserChange`] (who, before, after) for the
//! audit log.
//!
//! Who may do what:
//! - [`By::Cli`] is the operator at the server (database access): anything.
//! - [`By::Console`] is a signed-in user. Membership changes (create,
//!   invite, role, remove) need `admin` of that project; account changes
//!   (disable, enable, delete, reset password, clear 2FA) need `admin` of
//!   *every* project the target belongs to, and only the owner acts on the
//!   owner. Nobody disables or deletes themselves (no lock-out by mistake).
//! - The owner (the first user, printed on first start) is `admin` of
//!   every project, new ones included.

use sendpromptly_core::Timestamp;
use sendpromptly_core::roles::Role;
use sendpromptly_core::totp;
use serde::Serialize;

use super::{ServiceError, ServiceResult};
use crate::provision;
use crate::secrets;
use crate::store::{Project, Store, User, UserToken};

/// How long an invitation link works.
pub const INVITE_SECONDS: i64 = 7 * 24 * 3600;
/// How long a password-reset link works.
pub const RESET_SECONDS: i64 = 24 * 3600;
/// Recovery codes made when TOTP is confirmed.
pub const RECOVERY_CODES: usize = 10;
/// Link kinds in `user_tokens`.
pub const INVITE: &str = "invite";
/// See [`INVITE`].
pub const RESET: &str = "reset";

/// Who asks for a change.
#[derive(Clone, Copy, Debug)]
pub enum By<'a> {
    /// The operator at the server (the CLI): no checks.
    Cli,
    /// A signed-in console user.
    Console(&'a User),
}

impl By<'_> {
    /// The actor's name for logs and the audit log (`cli`, `console:<email>`).
    pub fn name(&self) -> String {
        match self {
            By::Cli => "cli".into(),
            By::Console(user) => format!("console:{}", user.email),
        }
    }
}

/// What a user looks like to the audit log and the lists: no secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// `usr_` id.
    pub id: String,
    /// Email.
    pub email: String,
    /// `active`, `invited` (no password yet) or `disabled`.
    pub status: &'static str,
    /// Server-wide owner.
    pub owner: bool,
    /// TOTP enrolled.
    pub totp: bool,
    /// Role per project id.
    pub roles: Vec<(String, Role)>,
}

/// One change for the audit log: the actor, the action, the target user and
/// the user before and after (`None` when created or deleted).
#[derive(Clone, Debug, Serialize)]
pub struct UserChange {
    /// `cli` or `console:<email>`.
    pub actor: String,
    /// e.g. `user.create`, `user.role`, `user.totp_confirm`.
    pub action: &'static str,
    /// The project the change is about, for membership changes.
    pub project_id: Option<String>,
    /// Before.
    pub before: Option<UserSummary>,
    /// After.
    pub after: Option<UserSummary>,
}

/// How a new user gets a password.
#[derive(Clone, Debug)]
pub enum Credential {
    /// Set now (the policy applies).
    Password(String),
    /// A one-time link with [`INVITE_SECONDS`] expiry lets them set one.
    Invite,
}

/// A made one-time link: the path to show (or send) once.
#[derive(Clone, Debug)]
pub struct OneTimeLink {
    /// `/account/setup/<token>`, to put after the public URL.
    pub path: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// The path of a one-time link page.
pub fn link_path(token: &str) -> String {
    format!("/account/setup/{token}")
}

/// The summary of a user (their memberships read from the store).
pub async fn summary(store: &dyn Store, user: &User) -> ServiceResult<UserSummary> {
    Ok(UserSummary {
        id: user.id.clone(),
        email: user.email.clone(),
        status: status(user),
        owner: user.owner,
        totp: user.totp_enabled,
        roles: store.memberships(&user.id).await?,
    })
}

fn status(user: &User) -> &'static str {
    if user.disabled_at.is_some() {
        "disabled"
    } else if user.password_hash.is_empty() {
        "invited"
    } else {
        "active"
    }
}

/// A user's role in a project: `admin` for the owner, else their membership.
pub async fn role_in(
    store: &dyn Store,
    user: &User,
    project_id: &str,
) -> ServiceResult<Option<Role>> {
    if user.owner {
        return Ok(Some(Role::Admin));
    }
    Ok(store
        .memberships(&user.id)
        .await?
        .into_iter()
        .find(|(project, _)| project == project_id)
        .map(|(_, role)| role))
}

/// The projects a user may open, with their role in each, in list order.
pub async fn projects_of(store: &dyn Store, user: &User) -> ServiceResult<Vec<(Project, Role)>> {
    let projects = store.list_projects().await?;
    if user.owner {
        return Ok(projects.into_iter().map(|p| (p, Role::Admin)).collect());
    }
    let memberships = store.memberships(&user.id).await?;
    Ok(projects
        .into_iter()
        .filter_map(|p| {
            let role = memberships.iter().find(|(id, _)| *id == p.id)?.1;
            Some((p, role))
        })
        .collect())
}

async fn require_admin(store: &dyn Store, by: By<'_>, project_id: &str) -> ServiceResult<()> {
    if let By::Console(actor) = by
        && role_in(store, actor, project_id).await? != Some(Role::Admin)
    {
        return Err(ServiceError::Forbidden(
            "only an admin of this project can manage its users".into(),
        ));
    }
    Ok(())
}

/// Account changes: admin of every project the target is in; owner only by the owner.
async fn require_over(store: &dyn Store, by: By<'_>, target: &User) -> ServiceResult<()> {
    let By::Console(actor) = by else {
        return Ok(());
    };
    if actor.owner {
        return Ok(());
    }
    if target.owner {
        return Err(ServiceError::Forbidden(
            "only the owner can change the owner's account".into(),
        ));
    }
    for (project, _) in store.memberships(&target.id).await? {
        if role_in(store, actor, &project).await? != Some(Role::Admin) {
            return Err(ServiceError::Forbidden(format!(
                "{} is also a member of a project you do not administer; ask the owner or an admin of every project they are in",
                target.email
            )));
        }
    }
    Ok(())
}

fn not_self(by: By<'_>, target: &User, what: &str) -> ServiceResult<()> {
    if let By::Console(actor) = by
        && actor.id == target.id
    {
        return Err(ServiceError::Conflict {
            kind: "own_account",
            message: format!("you cannot {what} your own account; ask another admin"),
        });
    }
    Ok(())
}

/// Finds a user by `usr_` id or email.
pub async fn find(store: &dyn Store, id_or_email: &str) -> ServiceResult<User> {
    let found = if id_or_email.starts_with(sendpromptly_core::ids::USER) {
        store.user_by_id(id_or_email).await?
    } else {
        store.user_by_email(id_or_email).await?
    };
    found.ok_or(ServiceError::NotFound("user"))
}

async fn new_link(
    store: &dyn Store,
    user_id: &str,
    kind: &str,
    seconds: i64,
    now: Timestamp,
) -> ServiceResult<OneTimeLink> {
    let token = secrets::new_proof_token();
    let expires_at = now.plus_seconds(seconds);
    store
        .create_user_token(UserToken {
            token_hash: secrets::hash_token(&token),
            user_id: user_id.to_owned(),
            kind: kind.to_owned(),
            created_at: now,
            expires_at,
        })
        .await?;
    Ok(OneTimeLink {
        path: link_path(&token),
        expires_at,
    })
}

/// Every user, or a project's members, with their status and roles.
pub async fn list(store: &dyn Store, project_id: Option<&str>) -> ServiceResult<Vec<UserSummary>> {
    let users = match project_id {
        Some(project) => store
            .members(project)
            .await?
            .into_iter()
            .map(|(user, _)| user)
            .collect(),
        None => store.list_users().await?,
    };
    let mut out = Vec::with_capacity(users.len());
    for user in &users {
        out.push(summary(store, user).await?);
    }
    Ok(out)
}

/// Creates a user with `role` in `project_id`, or adds an existing one to
/// it; with [`Credential::Invite`] answers the one-time link to pass on.
pub async fn create(
    store: &dyn Store,
    by: By<'_>,
    project_id: &str,
    email: &str,
    role: Role,
    credential: Credential,
    now: Timestamp,
) -> ServiceResult<(UserChange, Option<OneTimeLink>)> {
    require_admin(store, by, project_id).await?;
    store
        .project(project_id)
        .await?
        .ok_or(ServiceError::NotFound("project"))?;
    let email = provision::normalise_email(email)?;
    let (user, before) = match store.user_by_email(&email).await? {
        Some(existing) => {
            let before = summary(store, &existing).await?;
            if before.roles.iter().any(|(p, _)| p == project_id) {
                return Err(ServiceError::Conflict {
                    kind: "already_member",
                    message: format!(
                        "{email} is already a member of this project; change their role instead"
                    ),
                });
            }
            (existing, Some(before))
        }
        None => {
            let password = match &credential {
                Credential::Password(password) => Some(password.as_str()),
                Credential::Invite => None,
            };
            (
                provision::new_user(store, &email, password, false, now).await?,
                None,
            )
        }
    };
    store
        .set_member(project_id, &user.id, Some(role), now)
        .await?;
    let link = match (&credential, user.password_hash.is_empty()) {
        (Credential::Invite, true) => {
            Some(new_link(store, &user.id, INVITE, INVITE_SECONDS, now).await?)
        }
        _ => None,
    };
    let change = UserChange {
        actor: by.name(),
        action: if before.is_some() {
            "user.add_to_project"
        } else {
            "user.create"
        },
        project_id: Some(project_id.to_owned()),
        before,
        after: Some(summary(store, &user).await?),
    };
    Ok((change, link))
}

/// Sets a member's role in a project.
pub async fn set_role(
    store: &dyn Store,
    by: By<'_>,
    project_id: &str,
    user_id: &str,
    role: Role,
    now: Timestamp,
) -> ServiceResult<UserChange> {
    require_admin(store, by, project_id).await?;
    let user = find(store, user_id).await?;
    let before = summary(store, &user).await?;
    if !before.roles.iter().any(|(p, _)| p == project_id) {
        return Err(ServiceError::NotFound("member of this project"));
    }
    if let By::Console(actor) = by
        && actor.id == user.id
        && role != Role::Admin
        && !actor.owner
    {
        return Err(ServiceError::Conflict {
            kind: "own_account",
            message: "you cannot lower your own role; ask another admin".into(),
        });
    }
    store
        .set_member(project_id, &user.id, Some(role), now)
        .await?;
    Ok(UserChange {
        actor: by.name(),
        action: "user.role",
        project_id: Some(project_id.to_owned()),
        before: Some(before),
        after: Some(summary(store, &user).await?),
    })
}

/// Removes a member from a project (the account stays).
pub async fn remove_from_project(
    store: &dyn Store,
    by: By<'_>,
    project_id: &str,
    user_id: &str,
    now: Timestamp,
) -> ServiceResult<UserChange> {
    require_admin(store, by, project_id).await?;
    let user = find(store, user_id).await?;
    not_self(by, &user, "remove from a project")?;
    let before = summary(store, &user).await?;
    if !before.roles.iter().any(|(p, _)| p == project_id) {
        return Err(ServiceError::NotFound("member of this project"));
    }
    store.set_member(project_id, &user.id, None, now).await?;
    Ok(UserChange {
        actor: by.name(),
        action: "user.remove_from_project",
        project_id: Some(project_id.to_owned()),
        before: Some(before),
        after: Some(summary(store, &user).await?),
    })
}

/// Disables a user: every session of theirs ends at once.
pub async fn disable(
    store: &dyn Store,
    by: By<'_>,
    user_id: &str,
    now: Timestamp,
) -> ServiceResult<UserChange> {
    let user = find(store, user_id).await?;
    require_over(store, by, &user).await?;
    not_self(by, &user, "disable")?;
    let before = summary(store, &user).await?;
    store.set_user_disabled(&user.id, Some(now)).await?;
    let after = find(store, &user.id).await?;
    Ok(UserChange {
        actor: by.name(),
        action: "user.disable",
        project_id: None,
        before: Some(before),
        after: Some(summary(store, &after).await?),
    })
}

/// Enables a disabled user.
pub async fn enable(store: &dyn Store, by: By<'_>, user_id: &str) -> ServiceResult<UserChange> {
    let user = find(store, user_id).await?;
    require_over(store, by, &user).await?;
    let before = summary(store, &user).await?;
    store.set_user_disabled(&user.id, None).await?;
    let after = find(store, &user.id).await?;
    Ok(UserChange {
        actor: by.name(),
        action: "user.enable",
        project_id: None,
        before: Some(before),
        after: Some(summary(store, &after).await?),
    })
}

/// Deletes a user and everything of theirs (sessions, memberships, codes).
pub async fn delete(store: &dyn Store, by: By<'_>, user_id: &str) -> ServiceResult<UserChange> {
    let user = find(store, user_id).await?;
    require_over(store, by, &user).await?;
    not_self(by, &user, "delete")?;
    if user.owner {
        return Err(ServiceError::Conflict {
            kind: "owner",
            message: "the owner cannot be deleted; disable the account instead".into(),
        });
    }
    let before = summary(store, &user).await?;
    store.delete_user(&user.id).await?;
    Ok(UserChange {
        actor: by.name(),
        action: "user.delete",
        project_id: None,
        before: Some(before),
        after: None,
    })
}

/// Resets a password: the old one stops working and every session ends at
/// once; a one-time link ([`RESET_SECONDS`]) lets the user set a new one.
pub async fn reset_password(
    store: &dyn Store,
    by: By<'_>,
    user_id: &str,
    now: Timestamp,
) -> ServiceResult<(UserChange, OneTimeLink)> {
    let user = find(store, user_id).await?;
    require_over(store, by, &user).await?;
    let before = summary(store, &user).await?;
    store.set_user_password(&user.id, "").await?;
    let link = new_link(store, &user.id, RESET, RESET_SECONDS, now).await?;
    let after = find(store, &user.id).await?;
    Ok((
        UserChange {
            actor: by.name(),
            action: "user.reset_password",
            project_id: None,
            before: Some(before),
            after: Some(summary(store, &after).await?),
        },
        link,
    ))
}

/// Sets a password through a one-time link (invitation or reset), once.
pub async fn accept_link(
    store: &dyn Store,
    token: &str,
    password: &str,
    now: Timestamp,
) -> ServiceResult<UserChange> {
    let password_hash = provision::hash_new_password(password)?;
    let hash = secrets::hash_token(token);
    let mut user_id = None;
    for kind in [INVITE, RESET] {
        if let Some(id) = store.take_user_token(kind, &hash, now).await? {
            user_id = Some(id);
            break;
        }
    }
    let Some(user_id) = user_id else {
        return Err(ServiceError::Conflict {
            kind: "link_used",
            message: "this link was used already or has expired; ask an admin for a new one".into(),
        });
    };
    let user = find(store, &user_id).await?;
    let before = summary(store, &user).await?;
    store.set_user_password(&user.id, &password_hash).await?;
    let after = find(store, &user.id).await?;
    Ok(UserChange {
        actor: format!("console:{}", user.email),
        action: "user.set_password",
        project_id: None,
        before: Some(before),
        after: Some(summary(store, &after).await?),
    })
}

// ---------------------------------------------------------------------------
// TOTP

/// What the enrolment page shows: the secret (base32) and its `otpauth://` URI.
#[derive(Clone, Debug)]
pub struct Enrolment {
    /// Base32 secret for typing in.
    pub secret_base32: String,
    /// The URI the QR code carries.
    pub uri: String,
}

/// Starts (or shows again) an unconfirmed TOTP enrolment.
pub async fn totp_start(store: &dyn Store, user: &User) -> ServiceResult<Enrolment> {
    if user.totp_enabled {
        return Err(ServiceError::Conflict {
            kind: "totp_enabled",
            message: "two-factor sign-in is already on; turn it off first to enrol again".into(),
        });
    }
    let secret = match store.user_totp(&user.id).await? {
        Some(state) if !state.enabled => state.secret,
        _ => {
            let secret = totp::new_secret(&mut rand::rngs::OsRng);
            store.set_user_totp(&user.id, Some(&secret), false).await?;
            secret
        }
    };
    Ok(Enrolment {
        secret_base32: totp::base32_encode(&secret),
        uri: totp::otpauth_uri("SendPromptly", &user.email, &secret),
    })
}

fn wrong_code() -> ServiceError {
    ServiceError::invalid(
        "code",
        "is not the current code of your authenticator app (or was used already); wait for the next code and try again",
    )
}

/// Confirms an enrolment with a code; answers the recovery codes (shown once).
pub async fn totp_confirm(
    store: &dyn Store,
    user: &User,
    code: &str,
    now: Timestamp,
) -> ServiceResult<(UserChange, Vec<String>)> {
    let state = store
        .user_totp(&user.id)
        .await?
        .filter(|s| !s.enabled)
        .ok_or_else(|| ServiceError::Conflict {
            kind: "no_enrolment",
            message: "start the enrolment first (open the two-factor page again)".into(),
        })?;
    let step = totp::verify(&state.secret, code, now.to_datetime().timestamp(), None)
        .ok_or_else(wrong_code)?;
    let before = summary(store, user).await?;
    store
        .set_user_totp(&user.id, Some(&state.secret), true)
        .await?;
    store.claim_totp_step(&user.id, step).await?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    store
        .replace_recovery_codes(&user.id, codes.iter().map(|c| recovery_hash(c)).collect())
        .await?;
    let after = find(store, &user.id).await?;
    Ok((
        UserChange {
            actor: format!("console:{}", user.email),
            action: "user.totp_confirm",
            project_id: None,
            before: Some(before),
            after: Some(summary(store, &after).await?),
        },
        codes,
    ))
}

/// Turns TOTP off for a user (themselves, or an admin over them, e.g. a lost phone).
pub async fn totp_disable(
    store: &dyn Store,
    by: By<'_>,
    user_id: &str,
) -> ServiceResult<UserChange> {
    let user = find(store, user_id).await?;
    if !matches!(by, By::Console(actor) if actor.id == user.id) {
        require_over(store, by, &user).await?;
    }
    let before = summary(store, &user).await?;
    store.set_user_totp(&user.id, None, false).await?;
    store.replace_recovery_codes(&user.id, Vec::new()).await?;
    let after = find(store, &user.id).await?;
    Ok(UserChange {
        actor: by.name(),
        action: "user.totp_disable",
        project_id: None,
        before: Some(before),
        after: Some(summary(store, &after).await?),
    })
}

/// Checks a sign-in code: a TOTP code (each step once) or, failing that,
/// a recovery code (each once). `Ok(Some(change))` when accepted (a
/// recovery code's use is a change for the audit log), `Err` when not.
pub async fn second_factor(
    store: &dyn Store,
    user: &User,
    code: &str,
    now: Timestamp,
) -> ServiceResult<Option<UserChange>> {
    let state = store
        .user_totp(&user.id)
        .await?
        .filter(|s| s.enabled)
        .ok_or_else(|| ServiceError::Conflict {
            kind: "no_totp",
            message: "two-factor sign-in is not on for this account".into(),
        })?;
    if let Some(step) = totp::verify(
        &state.secret,
        code,
        now.to_datetime().timestamp(),
        state.last_step,
    ) {
        if store.claim_totp_step(&user.id, step).await? {
            return Ok(None);
        }
        return Err(wrong_code());
    }
    use_recovery_code(store, user, code, now).await.map(Some)
}

/// Uses one recovery code in place of a TOTP code.
pub async fn use_recovery_code(
    store: &dyn Store,
    user: &User,
    code: &str,
    now: Timestamp,
) -> ServiceResult<UserChange> {
    let normalised = normalise_recovery(code);
    if normalised.is_empty()
        || !store
            .use_recovery_code(&user.id, &recovery_hash(&normalised), now)
            .await?
    {
        return Err(wrong_code());
    }
    let left = store.recovery_codes_left(&user.id).await?;
    tracing::info!(user = %user.email, left, "recovery code used");
    let after = summary(store, user).await?;
    Ok(UserChange {
        actor: format!("console:{}", user.email),
        action: "user.recovery_code_used",
        project_id: None,
        before: Some(after.clone()),
        after: Some(after),
    })
}

/// Sets whether a project's members must use TOTP (admins only).
/// The change is recorded in the project's audit log as `project.require_2fa`.
pub async fn set_require_2fa(
    store: &dyn Store,
    by: By<'_>,
    who: &super::audit::Who,
    project_id: &str,
    required: bool,
    now: Timestamp,
) -> ServiceResult<bool> {
    require_admin(store, by, project_id).await?;
    let before = store.project_requires_2fa(project_id).await?;
    let change = super::audit::Change {
        project_id: project_id.to_owned(),
        action: "project.require_2fa",
        target: project_id.to_owned(),
        before: Some(serde_json::json!({ "require_2fa": before })),
        after: Some(serde_json::json!({ "require_2fa": required })),
    };
    super::audit::record(store, who, change, now, async {
        store.set_project_requires_2fa(project_id, required).await
    })
    .await?;
    Ok(before)
}

/// A recovery code: 10 base32 characters in two groups (`ABCDE-FGHIJ`, 50 bits).
fn new_recovery_code() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 7];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = totp::base32_encode(&bytes);
    format!("{}-{}", &text[..5], &text[5..10])
}

fn normalise_recovery(code: &str) -> String {
    let plain: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if plain.len() != 10 {
        return String::new();
    }
    format!("{}-{}", &plain[..5], &plain[5..])
}

fn recovery_hash(code: &str) -> Vec<u8> {
    secrets::hash_token(&format!("recovery\0{code}"))
}

/// Records `change` in the audit log of each project it concerns: its own
/// project for a membership change, else every project the user belonged
/// to before or after (account changes: disable, delete, password, 2FA).
/// Written right after the change, in its own transaction (user changes
/// span several tables and projects). `ip` is the client's, `None` from
/// the CLI.
pub async fn audit(
    store: &dyn Store,
    change: &UserChange,
    ip: Option<String>,
    now: Timestamp,
) -> ServiceResult<()> {
    let who = match change.actor.strip_prefix("console:") {
        Some(email) => super::audit::Who::user(email, ip),
        None => super::audit::Who::cli(),
    };
    let user = change.after.as_ref().or(change.before.as_ref());
    let target = user.map_or_else(String::new, |u| u.id.clone());
    let mut projects: Vec<String> = match &change.project_id {
        Some(project) => vec![project.clone()],
        None => [&change.before, &change.after]
            .into_iter()
            .flatten()
            .flat_map(|u| u.roles.iter().map(|(project, _)| project.clone()))
            .collect(),
    };
    projects.sort();
    projects.dedup();
    let state =
        |summary: &Option<UserSummary>| summary.as_ref().and_then(|s| serde_json::to_value(s).ok());
    for project_id in projects {
        let entry = super::audit::entry(
            &who,
            super::audit::Change {
                project_id,
                action: change.action,
                target: target.clone(),
                before: state(&change.before),
                after: state(&change.after),
            },
            now,
        );
        store.insert_audit(&entry).await?;
    }
    Ok(())
}
