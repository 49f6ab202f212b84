//! API keys (issue #24): create (scope `ingest` unless asked), revoke, and
//! list with what each key was used for, for the API, the console and the
//! CLI alike. Each change is audited ([`super::audit`]).

use sendpromptly_core::Timestamp;
use sendpromptly_core::scope::{ScopeSet, over_privilege_advice};
use serde_json::json;

use super::audit::{self, Change, Who};
use super::{ServiceError, ServiceResult};
use crate::provision;
use crate::store::{ApiKey, Store};

/// A key as listed: the stored key and, if it may do more than it is used
/// for, the advice to replace it.
#[derive(Clone, Debug)]
pub struct ListedKey {
    /// The key (never its secret).
    pub key: ApiKey,
    /// "admin key only used for ingest — create an ingest key …".
    pub advice: Option<String>,
}

fn state(key: &ApiKey) -> serde_json::Value {
    json!({
        "id": key.id,
        "prefix": key.prefix,
        "name": key.name,
        "scopes": key.scopes,
        "revoked_at": key.revoked_at,
    })
}

/// Creates a key with `scopes` and returns it (shown once), as `who`.
pub async fn create(
    store: &dyn Store,
    who: &Who,
    project_id: &str,
    name: Option<String>,
    scopes: ScopeSet,
    now: Timestamp,
) -> ServiceResult<String> {
    if scopes.is_empty() {
        return Err(ServiceError::invalid(
            "scope",
            "a key needs at least one scope: ingest, read, operate or admin",
        ));
    }
    let (stored, key) = provision::new_api_key(project_id, name, scopes, now);
    let change = Change {
        project_id: project_id.to_owned(),
        action: "api_key.create",
        target: stored.id.clone(),
        before: None,
        after: Some(state(&stored)),
    };
    audit::record(store, who, change, now, store.insert_api_key(stored)).await?;
    Ok(key)
}

/// Revokes a key, as `who`; false if the project has no such active key.
pub async fn revoke(
    store: &dyn Store,
    who: &Who,
    project_id: &str,
    key_id: &str,
    now: Timestamp,
) -> ServiceResult<bool> {
    let Some(key) = store
        .list_api_keys(project_id)
        .await?
        .into_iter()
        .find(|k| k.id == key_id && k.revoked_at.is_none())
    else {
        return Ok(false);
    };
    let mut after = key.clone();
    after.revoked_at = Some(now);
    let change = Change {
        project_id: project_id.to_owned(),
        action: "api_key.revoke",
        target: key.id.clone(),
        before: Some(state(&key)),
        after: Some(state(&after)),
    };
    let revoked = audit::record(
        store,
        who,
        change,
        now,
        store.revoke_api_key(project_id, key_id, now),
    )
    .await?;
    Ok(revoked)
}

/// A project's keys, newest first, each with its over-privilege advice.
pub async fn list(store: &dyn Store, project_id: &str) -> ServiceResult<Vec<ListedKey>> {
    Ok(store
        .list_api_keys(project_id)
        .await?
        .into_iter()
        .map(|key| ListedKey {
            advice: key
                .revoked_at
                .is_none()
                .then(|| over_privilege_advice(key.scopes, key.used_classes))
                .flatten(),
            key,
        })
        .collect())
}
