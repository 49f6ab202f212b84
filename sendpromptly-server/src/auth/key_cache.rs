//! A short-lived cache of API keys for the two signal endpoints
//! (`POST /v1/receipt` and `/v1/result`), the hot path: a cached key skips
//! the key and project reads before the write.
//!
//! It never lets a revoked key write: the signals are stored with
//! [`Store::apply_with_key`](crate::store::Store::apply_with_key), which
//! checks the key inside the write's own transaction. What an entry can
//! hold stale, for at most [`TTL`], is the project's deadline settings
//! when they were changed by another process (another instance, the CLI);
//! a change through this server forgets every entry at once. Every other
//! endpoint reads the key afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Caller;
use crate::store::Project;

/// How long an entry is used before the key is read again.
pub const TTL: Duration = Duration::from_secs(1);
/// Most keys held; past this the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// The project of a signal's caller, as the signal routes' authentication
/// found it (possibly from the cache), for the handler.
#[derive(Clone, Debug)]
pub struct SignalProject(pub Arc<Project>);

/// The cache (see the module docs), keyed by the SHA-256 of the API key.
#[derive(Debug, Default)]
pub struct SignalKeyCache {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
}

#[derive(Debug)]
struct Entry {
    caller: Caller,
    project: Arc<Project>,
    fetched: Instant,
}

impl SignalKeyCache {
    /// The caller and project of the key with this hash, if read less than
    /// [`TTL`] before `now`.
    pub fn get(&self, key_hash: &[u8], now: Instant) -> Option<(Caller, Arc<Project>)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(key_hash)?;
        (now.saturating_duration_since(entry.fetched) < TTL)
            .then(|| (entry.caller.clone(), Arc::clone(&entry.project)))
    }

    /// Remembers a key just read from the store.
    pub fn put(&self, key_hash: Vec<u8>, caller: Caller, project: Arc<Project>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key_hash) {
            entries.clear();
        }
        entries.insert(
            key_hash,
            Entry {
                caller,
                project,
                fetched: now,
            },
        );
    }

    /// Forgets every entry (a project's settings or keys changed here).
    pub fn forget_all(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Arc<Project> {
        Arc::new(Project {
            id: "prj_1".to_owned(),
            name: "p".to_owned(),
            repair_url: None,
            default_deadline_seconds: 60,
            deadlines_by_event_type: Default::default(),
            alert_channels: serde_json::json!([]),
            proof_show_metadata: false,
            created_at: sendpromptly_core::Timestamp::from_unix_seconds(0),
            trace_url_template: None,
        })
    }

    fn caller() -> Caller {
        Caller {
            project_id: "prj_1".to_owned(),
            key_id: "key_1".to_owned(),
            scopes: sendpromptly_core::scope::ScopeSet::INGEST,
            ip: None,
        }
    }

    #[test]
    fn an_entry_is_used_for_its_ttl_then_read_again() {
        let cache = SignalKeyCache::default();
        let start = Instant::now();
        assert!(cache.get(&[1; 32], start).is_none());
        cache.put(vec![1; 32], caller(), project(), start);
        let (hit, _) = cache.get(&[1; 32], start + TTL / 2).expect("fresh");
        assert_eq!(hit.key_id, "key_1");
        assert!(cache.get(&[1; 32], start + TTL).is_none(), "expired");
        assert!(cache.get(&[2; 32], start).is_none(), "another key");
    }

    #[test]
    fn forget_all_empties_it() {
        let cache = SignalKeyCache::default();
        let now = Instant::now();
        cache.put(vec![1; 32], caller(), project(), now);
        cache.forget_all();
        assert!(cache.get(&[1; 32], now).is_none());
    }
}
