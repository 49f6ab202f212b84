//! [`AppState`]: what every request handler and background task shares.

use std::sync::Arc;

use sendpromptly_core::Timestamp;
use sendpromptly_core::ids;
use sendpromptly_core::machine::{Context, Effect};
use sendpromptly_core::model::Actor;
use tokio::sync::Notify;

use crate::auth::key_cache::SignalKeyCache;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::ratelimit::KeyedBuckets;
use crate::signing_cache::SigningSecretCache;
use crate::store::ProviderTapSettings;
use crate::store::Store;
use crate::ttl_cache::TtlCache;

/// Shared state of a running server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: ServerConfig,
    public_url: String,
    metrics: Metrics,
    dispatcher_wakeup: Notify,
    rate_limits: Option<KeyedBuckets>,
    signal_keys: SignalKeyCache,
    key_usage: crate::auth::usage::KeyUsage,
    signing_secrets: SigningSecretCache,
    tap_settings: TtlCache<TapSettingsEntry>,
    health: crate::health::Health,
}

/// A project's provider-tap settings as the tap reads them: `None` when
/// there is no such project, else what is stored (`None` inside: never set).
pub type TapSettingsEntry = Option<Option<Arc<ProviderTapSettings>>>;

/// How long the tap uses a project's settings before reading them again
/// (a change through another instance is seen within this).
pub const TAP_SETTINGS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl AppState {
    /// Shared state over a store and a clock; `public_url` is the base of links to this server.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: ServerConfig,
        public_url: String,
    ) -> Self {
        let rate_limits = config.api_rate_limit.map(KeyedBuckets::new);
        AppState {
            inner: Arc::new(Inner {
                rate_limits,
                store,
                clock,
                config,
                public_url,
                metrics: Metrics::default(),
                dispatcher_wakeup: Notify::new(),
                signal_keys: SignalKeyCache::default(),
                key_usage: crate::auth::usage::KeyUsage::default(),
                signing_secrets: SigningSecretCache::default(),
                tap_settings: TtlCache::new(TAP_SETTINGS_TTL),
                health: crate::health::Health::default(),
            }),
        }
    }

    /// The storage backend.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The resolver outbound calls use (the outbound policy, the static hosts).
    pub fn outbound_resolver(&self) -> crate::outbound::GuardedResolver {
        let config = &self.inner.config;
        crate::outbound::GuardedResolver::new(config.outbound, config.static_hosts.clone())
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Takes one request from `key_id`'s rate-limit bucket; `Err(wait)` when
    /// the key is over its limit.
    pub fn take_rate_token(&self, key_id: &str) -> Result<(), std::time::Duration> {
        match &self.inner.rate_limits {
            Some(buckets) => buckets.take(key_id, std::time::Instant::now()),
            None => Ok(()),
        }
    }

    /// The API keys the signal endpoints authenticate from (see
    /// [`crate::auth::key_cache`]).
    pub fn signal_keys(&self) -> &SignalKeyCache {
        &self.inner.signal_keys
    }

    /// API keys' uses not yet written (see [`crate::auth::usage`]).
    pub fn key_usage(&self) -> &crate::auth::usage::KeyUsage {
        &self.inner.key_usage
    }

    /// The signing secrets the senders sign with (see [`crate::signing_cache`]).
    pub fn signing_secrets(&self) -> &SigningSecretCache {
        &self.inner.signing_secrets
    }

    /// Each project's provider-tap settings, cached for the tap (see
    /// [`crate::service::provider_tap::tap_config_for_delivery`]).
    pub fn tap_settings(&self) -> &TtlCache<TapSettingsEntry> {
        &self.inner.tap_settings
    }

    /// What the background loops and the watchdog know of the server's health.
    pub fn health(&self) -> &crate::health::Health {
        &self.inner.health
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Wakes the dispatcher (a callback was queued).
    pub fn wake_dispatcher(&self) {
        self.inner.dispatcher_wakeup.notify_one();
    }

    /// Waits until [`AppState::wake_dispatcher`] is called.
    pub async fn dispatcher_woken(&self) {
        self.inner.dispatcher_wakeup.notified().await;
    }

    /// A state-machine context for `actor` at the current time.
    pub fn context(&self, actor: Actor) -> Context {
        let now = self.now();
        Context {
            now,
            actor,
            new_incident_id: ids::new_id(ids::INCIDENT, now, &mut rand::thread_rng()),
        }
    }

    /// Reacts to a transition's effects outside storage: metrics and waking the dispatcher.
    pub fn after_transition(&self, effects: &[Effect]) {
        self.metrics().observe_effects(effects);
        if effects
            .iter()
            .any(|e| matches!(e, Effect::DeliverCallback { .. }))
        {
            self.wake_dispatcher();
        }
    }

    /// The public URL of a path on this server.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{}", self.inner.public_url, path)
    }
}
