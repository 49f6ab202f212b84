//! A small per-process cache whose entries are used for a fixed time and
//! then read again: the home of "read it once, not on every request" for
//! per-project settings ([`crate::signing_cache`], the provider tap's
//! settings in [`crate::service::provider_tap`]). A change made through
//! this instance forgets the entry at once; another instance's change is
//! seen within the TTL.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most entries held; past this the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// Values by key, each used for `ttl` after it was fetched.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> TtlCache<V> {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key` if it was fetched less than the TTL before `now`.
    pub fn fresh(&self, key: &str, now: Instant) -> Option<V> {
        self.lock()
            .get(key)
            .filter(|(_, fetched)| now.duration_since(*fetched) < self.ttl)
            .map(|(value, _)| value.clone())
    }

    /// Remembers `value` for `key`, fetched at `fetched` (taken before the
    /// read, so a slow read does not extend the entry's life).
    pub fn put(&self, key: &str, value: V, fetched: Instant) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_owned(), (value, fetched));
    }

    /// Forgets `key` (after this instance changed what it caches).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl_and_can_be_forgotten() {
        let ttl = Duration::from_secs(5);
        let cache = TtlCache::new(ttl);
        let t0 = Instant::now();
        cache.put("prj_1", 7, t0);
        assert_eq!(cache.fresh("prj_1", t0 + ttl / 2), Some(7));
        assert_eq!(cache.fresh("prj_1", t0 + ttl), None);
        cache.forget("prj_1");
        assert_eq!(cache.fresh("prj_1", t0), None);
    }
}
