//! A short-lived cache of each project's signing secrets, so that a
//! repair callback or a webhook alert does not read them from the store on
//! every attempt.
//!
//! A rotation through this server ([`crate::service::project::rotate`])
//! forgets the project's entry at once; a rotation by another instance is
//! seen within [`TTL`] (the previous secrets keep signing for 24 h after a
//! rotation, so a callback signed meanwhile still verifies with them). An
//! entry is filtered by expiry at each use, so a secret that expires while
//! cached stops signing on time. Who may call it: the senders
//! ([`crate::dispatcher`], [`crate::alerts`]) and the service layer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sendpromptly_core::Timestamp;
use sendpromptly_core::standard_webhooks::SigningSecret;

use crate::store::{SigningSecretRecord, Store, StoreResult};
use crate::ttl_cache::TtlCache;

/// How long an entry is used before the secrets are read again.
pub const TTL: Duration = Duration::from_secs(5);

/// The cache (see the module docs), keyed by project id.
#[derive(Debug)]
pub struct SigningSecretCache {
    entries: TtlCache<Arc<Vec<SigningSecretRecord>>>,
}

impl Default for SigningSecretCache {
    fn default() -> Self {
        SigningSecretCache {
            entries: TtlCache::new(TTL),
        }
    }
}

impl SigningSecretCache {
    /// The secrets that sign for `project_id` at `now`: from the cache while
    /// fresh, else read from `store` (and cached).
    pub async fn secrets(
        &self,
        store: &dyn Store,
        project_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<SigningSecret>> {
        let records = match self.entries.fresh(project_id, Instant::now()) {
            Some(records) => records,
            None => {
                let fetched_at = Instant::now();
                let records = Arc::new(store.signing_secrets(project_id, now).await?);
                self.entries
                    .put(project_id, Arc::clone(&records), fetched_at);
                records
            }
        };
        Ok(records
            .iter()
            .filter(|r| r.expires_at.is_none_or(|expires| expires > now))
            .filter_map(|r| SigningSecret::parse(&r.secret).ok())
            .collect())
    }

    /// Forgets a project's secrets (after a rotation).
    pub fn forget(&self, project_id: &str) {
        self.entries.forget(project_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(secret: &str, expires_at: Option<Timestamp>) -> SigningSecretRecord {
        SigningSecretRecord {
            id: 1,
            secret: secret.to_owned(),
            created_at: Timestamp::from_unix_millis(0),
            expires_at,
        }
    }

    #[test]
    fn entries_expire_after_the_ttl_and_are_forgotten_on_rotation() {
        let cache = SigningSecretCache::default();
        let t0 = Instant::now();
        cache
            .entries
            .put("prj_1", Arc::new(vec![record("whsec_x", None)]), t0);
        assert!(cache.entries.fresh("prj_1", t0 + TTL / 2).is_some());
        assert!(cache.entries.fresh("prj_1", t0 + TTL).is_none());
        cache.forget("prj_1");
        assert!(cache.entries.fresh("prj_1", t0).is_none());
    }
}
