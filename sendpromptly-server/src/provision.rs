//! Creating projects, API keys and console users: used by the first start of
//! `serve` and by the `project`, `key` and `user` commands alike.

use sendpromptly_core::Timestamp;
use sendpromptly_core::ids;
use sendpromptly_core::scope::ScopeSet;
use sendpromptly_core::standard_webhooks::SigningSecret;
use serde::Serialize;

use crate::secrets;
use crate::store::{ApiKey, NewProject, Store, StoreError, StoreResult, User};

/// Default deadline of new projects: 30 minutes.
pub const DEFAULT_DEADLINE_SECONDS: u32 = 1800;
/// The name of the project created on first start.
pub const DEFAULT_PROJECT: &str = "default";
/// The email of the console admin created on first start.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

/// What a new project's owner must store: shown once.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectCredentials {
    /// The `prj_` id.
    pub project_id: String,
    /// The project name.
    #[serde(skip)]
    pub name: String,
    /// The project's first API key (`sp_live_…`), scope `admin`: for the
    /// operator (settings, keys, the audit log), not for a webhook handler.
    pub api_key: String,
    /// A second key, scope `ingest` (receipts and results only): the one a
    /// webhook handler should hold.
    pub ingest_api_key: String,
    /// The repair-callback signing secret (`whsec_…`).
    pub signing_secret: String,
}

/// Creates a project with one API key and one signing secret.
pub async fn create_project(
    store: &dyn Store,
    name: &str,
    repair_url: Option<String>,
    now: Timestamp,
) -> StoreResult<ProjectCredentials> {
    let project = store
        .create_project(NewProject {
            id: ids::new_id(ids::PROJECT, now, &mut rand::thread_rng()),
            name: name.to_owned(),
            repair_url,
            default_deadline_seconds: DEFAULT_DEADLINE_SECONDS,
            created_at: now,
        })
        .await?;
    let api_key = create_api_key(
        store,
        &project.id,
        Some("initial key".into()),
        ScopeSet::ADMIN,
        now,
    )
    .await?;
    let ingest_api_key = create_api_key(
        store,
        &project.id,
        Some("webhook handler".into()),
        ScopeSet::INGEST,
        now,
    )
    .await?;
    let secret = SigningSecret::generate(&mut rand::rngs::OsRng).expose();
    store
        .add_signing_secret(&project.id, &secret, now, now)
        .await?;
    Ok(ProjectCredentials {
        project_id: project.id,
        name: project.name,
        api_key,
        ingest_api_key,
        signing_secret: secret,
    })
}

/// Creates an API key with `scopes` for a project and returns it (the only
/// time it is visible). Front ends default to [`ScopeSet::INGEST`].
pub async fn create_api_key(
    store: &dyn Store,
    project_id: &str,
    name: Option<String>,
    scopes: ScopeSet,
    now: Timestamp,
) -> StoreResult<String> {
    let (stored, key) = new_api_key(project_id, name, scopes, now);
    store.insert_api_key(stored).await?;
    Ok(key)
}

/// A new API key: the row to store (its hash) and the key itself.
pub fn new_api_key(
    project_id: &str,
    name: Option<String>,
    scopes: ScopeSet,
    now: Timestamp,
) -> (ApiKey, String) {
    let key = secrets::new_api_key();
    let id = ids::new_id(ids::API_KEY, now, &mut rand::thread_rng());
    let stored = ApiKey {
        id,
        project_id: project_id.to_owned(),
        key_hash: secrets::hash_token(&key),
        prefix: secrets::key_display_prefix(&key),
        name,
        created_at: now,
        revoked_at: None,
        scopes,
        last_used_at: None,
        last_used_class: None,
        used_classes: ScopeSet::EMPTY,
    };
    (stored, key)
}

/// Why a console user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The email is not an address.
    #[error("`{0}` is not an email address")]
    InvalidEmail(String),
    /// The password is too short.
    #[error("the password must be at least 10 characters")]
    WeakPassword,
    /// Hashing failed.
    #[error("could not hash the password: {0}")]
    Hash(String),
    /// Storage failed (e.g. the email exists).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a console user with an Argon2id password hash, `admin` of every
/// existing project (what `sendpromptly user create` without `--project`
/// does, as before roles existed).
pub async fn create_user(
    store: &dyn Store,
    email: &str,
    password: &str,
    now: Timestamp,
) -> Result<User, UserError> {
    let user = new_user(store, email, Some(password), false, now).await?;
    for project in store.list_projects().await? {
        store
            .set_member(
                &project.id,
                &user.id,
                Some(sendpromptly_core::roles::Role::Admin),
                now,
            )
            .await?;
    }
    Ok(user)
}

/// The email rule: one `@`, something either side, no spaces, at most 254.
pub fn normalise_email(email: &str) -> Result<String, UserError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !email.contains(char::is_whitespace)
        });
    if valid {
        Ok(email)
    } else {
        Err(UserError::InvalidEmail(email))
    }
}

/// The password policy (at least 10 characters), then its Argon2id hash.
pub fn hash_new_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < 10 {
        return Err(UserError::WeakPassword);
    }
    secrets::hash_password(password).map_err(|e| UserError::Hash(e.to_string()))
}

/// Creates a console user; without a password it cannot sign in until an
/// invitation link sets one. `owner` makes it admin of every project.
pub async fn new_user(
    store: &dyn Store,
    email: &str,
    password: Option<&str>,
    owner: bool,
    now: Timestamp,
) -> Result<User, UserError> {
    let email = normalise_email(email)?;
    let password_hash = match password {
        Some(password) => hash_new_password(password)?,
        None => String::new(),
    };
    // The first console user is the server-wide owner, however it was made.
    let owner = owner || store.count_users().await? == 0;
    let user = User {
        id: ids::new_id(ids::USER, now, &mut rand::thread_rng()),
        email,
        password_hash,
        created_at: now,
        disabled_at: None,
        owner,
        totp_enabled: false,
    };
    store.create_user(user.clone()).await?;
    Ok(user)
}

/// What the first start created (printed once).
#[derive(Clone, Debug)]
pub struct FirstStart {
    /// The `default` project's credentials, if it was created now.
    pub project: Option<ProjectCredentials>,
    /// The console admin `(email, password)`, if created now.
    pub admin: Option<(String, String)>,
}

/// On an empty database: creates the `default` project and a console admin.
pub async fn first_start(store: &dyn Store, now: Timestamp) -> Result<FirstStart, UserError> {
    // Several instances may start together on one empty database: the one
    // whose insert wins prints the credentials; for the others the unique
    // name or email says it is already done.
    let project = if store.list_projects().await?.is_empty() {
        match create_project(store, DEFAULT_PROJECT, None, now).await {
            Ok(created) => Some(created),
            Err(StoreError::Conflict(_)) => None,
            Err(err) => return Err(err.into()),
        }
    } else {
        None
    };
    let admin = if store.count_users().await? == 0 {
        let password = secrets::new_password();
        // The first user is the server-wide owner: admin of every project.
        match new_user(store, DEFAULT_ADMIN_EMAIL, Some(&password), true, now).await {
            Ok(_) => Some((DEFAULT_ADMIN_EMAIL.to_owned(), password)),
            Err(UserError::Store(StoreError::Conflict(_))) => None,
            Err(err) => return Err(err),
        }
    } else {
        None
    };
    Ok(FirstStart { project, admin })
}
