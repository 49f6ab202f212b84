//! What each API key is used for, cheaply: a request notes its key's
//! endpoint class in memory (one short lock, no I/O); [`run`] writes what
//! was noted at most once per `key_usage_interval` (a minute), off the
//! request path, so the console and `sendpromptly key list` can say which
//! keys are over-privileged for their use. A crash loses at most the last
//! interval's notes (the key's last-used time is a hint, not a record).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use sendpromptly_core::Timestamp;
use sendpromptly_core::scope::{Scope, ScopeSet};
use tokio::sync::watch;

use crate::app::AppState;
use crate::store::KeyUse;

/// Uses noted since the last write, by key id.
#[derive(Debug, Default)]
pub struct KeyUsage {
    pending: Mutex<HashMap<String, KeyUse>>,
}

impl KeyUsage {
    /// Notes that `key_id` was used for `class` at `now`.
    pub fn note(&self, key_id: &str, class: Scope, now: Timestamp) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(key_id) {
            Some(seen) => {
                seen.at = now;
                seen.class = class;
                seen.classes = seen.classes.with(class);
            }
            None => {
                pending.insert(
                    key_id.to_owned(),
                    KeyUse {
                        key_id: key_id.to_owned(),
                        at: now,
                        class,
                        classes: ScopeSet::only(class),
                    },
                );
            }
        }
    }

    /// Takes every noted use.
    pub fn drain(&self) -> Vec<KeyUse> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.drain().map(|(_, key_use)| key_use).collect()
    }
}

/// Writes the noted uses now (also on shutdown).
pub async fn flush(state: &AppState) {
    let uses = state.key_usage().drain();
    if let Err(err) = state.store().record_key_uses(&uses).await {
        tracing::warn!(error = %err, keys = uses.len(), "could not record API key use; dropped");
    }
}

/// The loop writing key uses every `key_usage_interval`, until shutdown.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let interval = state.config().key_usage_interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
        flush(&state).await;
        if *shutdown.borrow() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_merge_per_key_until_drained() {
        let usage = KeyUsage::default();
        let t = |s| Timestamp::from_unix_seconds(s);
        usage.note("key_a", Scope::Ingest, t(1));
        usage.note("key_a", Scope::Read, t(2));
        usage.note("key_b", Scope::Admin, t(3));
        let mut drained = usage.drain();
        drained.sort_by(|x, y| x.key_id.cmp(&y.key_id));
        assert_eq!(drained.len(), 2, "one write per key, however many requests");
        assert_eq!(drained[0].at, t(2));
        assert_eq!(drained[0].class, Scope::Read);
        assert_eq!(
            drained[0].classes,
            ScopeSet::only(Scope::Ingest).with(Scope::Read)
        );
        assert!(usage.drain().is_empty());
    }
}
