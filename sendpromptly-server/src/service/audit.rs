//! The audit log (issue #24): who changed what, when, from where, with the
//! state before and after (secrets as hints only). [`record`] is the one
//! entry point: the service layer wraps each audited store write in it, and
//! the store inserts the entry in that write's own transaction.
//!
//! Audited: project settings, API key create/revoke, signing-secret
//! rotation, provider tap settings, proof link create/revoke, reprocess
//! batches (start, cancel). Console user changes call [`record`] with
//! [`Who::user`].

use std::future::Future;

use sendpromptly_core::Timestamp;
use sendpromptly_core::ids;
use sendpromptly_core::wire::{AuditEntryView, AuditLogFilter, AuditLogPage};
use serde_json::Value;

use crate::store::{AuditEntry, AuditFilter, PageRequest, Store, StoreResult, with_audit};

/// Who made a change, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    /// `api_key:key_…`, `user:<email>` or `cli`.
    pub actor: String,
    /// The client IP as the server saw it (`None` for the CLI).
    pub ip: Option<String>,
}

impl Who {
    /// An API key (the caller of a `/v1` request).
    pub fn api_key(key_id: &str, ip: Option<String>) -> Who {
        Who {
            actor: format!("api_key:{key_id}"),
            ip,
        }
    }

    /// A console user.
    pub fn user(email: &str, ip: Option<String>) -> Who {
        Who {
            actor: format!("user:{email}"),
            ip,
        }
    }

    /// The command line (an operator with the database).
    pub fn cli() -> Who {
        Who {
            actor: "cli".to_owned(),
            ip: None,
        }
    }
}

/// One audited change: what, on what, before and after (already redacted:
/// see [`redact`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The project it concerns.
    pub project_id: String,
    /// E.g. `project.update`, `api_key.create` (see `docs/access-control.md`).
    pub action: &'static str,
    /// The id of what changed.
    pub target: String,
    /// The state before, if any.
    pub before: Option<Value>,
    /// The state after, if any.
    pub after: Option<Value>,
}

/// Runs `write` (a store write) and records `change` by `who` at `now`: in
/// the write's own transaction when the store method takes part (every
/// audited write of the store does), else right after it succeeded (its
/// own transaction). Nothing is recorded if the write fails.
pub async fn record<T, F>(
    store: &dyn Store,
    who: &Who,
    change: Change,
    now: Timestamp,
    write: F,
) -> StoreResult<T>
where
    F: Future<Output = StoreResult<T>>,
{
    let entry = entry(who, change, now);
    let (result, left) = with_audit(entry, write).await;
    let value = result?;
    if let Some(entry) = left {
        store.insert_audit(&entry).await?;
    }
    Ok(value)
}

/// The stored entry of `change` by `who` at `now` (redacted).
pub fn entry(who: &Who, change: Change, now: Timestamp) -> AuditEntry {
    AuditEntry {
        id: ids::new_id(ids::AUDIT, now, &mut rand::thread_rng()),
        project_id: change.project_id,
        at: now,
        actor: who.actor.clone(),
        ip: who.ip.clone(),
        action: change.action.to_owned(),
        target: change.target,
        before: change.before.map(redact),
        after: change.after.map(redact),
    }
}

/// Field names whose values are secrets wherever they appear.
const SECRET_FIELDS: [&str; 6] = [
    "secret",
    "signing_secret",
    "stripe_endpoint_secrets",
    "shopify_client_secret",
    "stripe_restricted_key",
    "webhook_url",
];

/// A state with every secret replaced by its hint (`…` and the last four
/// characters): values under [`SECRET_FIELDS`], and anything that looks
/// like a secret wherever it is (`whsec_`, `sk_`, `rk_`, `sp_live_`, a
/// URL's password or query string).
pub fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if SECRET_FIELDS.contains(&k.as_str()) {
                        hint_all(v)
                    } else {
                        redact(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        Value::String(text) if looks_secret(&text) => Value::String(hint(&text)),
        other => other,
    }
}

fn hint_all(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(hint(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(hint_all).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, hint_all(v))).collect())
        }
        other => other,
    }
}

fn looks_secret(text: &str) -> bool {
    const PREFIXES: [&str; 6] = ["whsec_", "sk_", "rk_", "sp_live_", "sp_test_", "shpss_"];
    PREFIXES.iter().any(|p| text.starts_with(p))
        || url::Url::parse(text).is_ok_and(|url| url.password().is_some() || url.query().is_some())
}

/// `…` and the last four characters (the same hint the settings show).
fn hint(secret: &str) -> String {
    super::provider_tap::hint(secret)
}

/// An entry as the API, the console and the CLI show it.
pub fn view(entry: AuditEntry) -> AuditEntryView {
    AuditEntryView {
        id: entry.id,
        at: entry.at,
        actor: entry.actor,
        ip: entry.ip,
        action: entry.action,
        target: entry.target,
        before: entry.before,
        after: entry.after,
    }
}

/// A page of a project's audit log, newest first.
pub async fn page(
    store: &dyn Store,
    project_id: &str,
    filter: &AuditLogFilter,
) -> super::ServiceResult<AuditLogPage> {
    let found = store
        .audit_page(
            project_id,
            &AuditFilter {
                action: filter.action.clone(),
                actor: filter.actor.clone(),
                since: filter.since,
                until: filter.until,
            },
            PageRequest {
                limit: filter.page_limit(),
                cursor: filter.cursor.clone(),
            },
        )
        .await?;
    Ok(AuditLogPage {
        data: found.data.into_iter().map(view).collect(),
        next_cursor: found.next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_keeps_hints_only() {
        let state = serde_json::json!({
            "repair_url": "https://app.example/repair?token=abcd1234",
            "alert_channels": [{"type": "slack", "webhook_url": "https://hooks.slack.com/T/B/xyzw9876"}],
            "stripe_endpoint_secrets": ["whsec_aaaabbbbcccc"],
            "name": "default",
        });
        let text = redact(state).to_string();
        for secret in ["abcd1234", "xyzw9876", "whsec_aaaabbbbcccc"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("…9876") && text.contains("default"), "{text}");
    }
}
