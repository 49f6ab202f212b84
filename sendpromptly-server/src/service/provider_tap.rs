//! The provider tap's project settings: Stripe endpoint secrets, the
//! Shopify client secret, the Stripe restricted API key (for the
//! reconciler), the tracked event types and the receipt grace. Validation
//! lives here once, for the API, the console and the CLI; secrets are
//! write-only (only a hint of their last four characters is shown).

use std::collections::BTreeMap;

use sendpromptly_core::model::Provider;

use sendpromptly_core::wire::{ProviderTapUpdate, ProviderTapView};

use super::{ServiceError, ServiceResult};
use crate::app::AppState;
use crate::store::ProviderTapSettings;

/// Seconds the app gets to send its receipt after the provider's copy,
/// unless the project says otherwise.
pub const DEFAULT_RECEIPT_GRACE_SECONDS: u32 = 600;
/// The longest receipt grace (7 days, like the result deadline).
pub const MAX_RECEIPT_GRACE_SECONDS: u32 = 604_800;
/// The most Stripe endpoint secrets at once (rotation keeps a few).
pub const MAX_ENDPOINT_SECRETS: usize = 5;

/// The event types the tap can track (and tracks by default): the Stripe
/// types and Shopify topics `docs/providers.md` tabulates.
pub const TRACKABLE_EVENT_TYPES: [(Provider, &str); 11] = [
    (Provider::Stripe, "checkout.session.completed"),
    (Provider::Stripe, "checkout.session.async_payment_succeeded"),
    (Provider::Stripe, "invoice.paid"),
    (Provider::Stripe, "customer.subscription.updated"),
    (Provider::Stripe, "customer.subscription.deleted"),
    (Provider::Stripe, "charge.refunded"),
    (Provider::Stripe, "charge.dispute.created"),
    (Provider::Shopify, "orders/paid"),
    (Provider::Shopify, "orders/fulfilled"),
    (Provider::Shopify, "customers/create"),
    (Provider::Shopify, "checkouts/create"),
];

fn allowed_types() -> String {
    TRACKABLE_EVENT_TYPES
        .iter()
        .map(|(_, t)| *t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The project's tap settings as the tap uses them (defaults filled in).
#[derive(Clone, Debug)]
pub struct TapConfig {
    /// What is stored (defaults when nothing is).
    pub settings: ProviderTapSettings,
}

impl TapConfig {
    /// Whether the tap records events of this type.
    pub fn tracks(&self, provider: Provider, event_type: &str) -> bool {
        match &self.settings.tracked_event_types {
            Some(types) => types.iter().any(|t| t == event_type),
            None => TRACKABLE_EVENT_TYPES
                .iter()
                .any(|(p, t)| *p == provider && *t == event_type),
        }
    }

    /// The receipt grace for this event type.
    pub fn grace_for(&self, event_type: &str) -> u32 {
        self.settings
            .grace_by_event_type
            .get(event_type)
            .copied()
            .unwrap_or(self.settings.receipt_grace_seconds)
    }
}

fn defaults(now: sendpromptly_core::Timestamp) -> ProviderTapSettings {
    ProviderTapSettings {
        tracked_event_types: None,
        receipt_grace_seconds: DEFAULT_RECEIPT_GRACE_SECONDS,
        grace_by_event_type: BTreeMap::new(),
        stripe_endpoint_secrets: Vec::new(),
        shopify_client_secret: None,
        stripe_restricted_key: None,
        updated_at: now,
    }
}

/// The project's tap settings, defaults where never set.
pub async fn tap_config(state: &AppState, project_id: &str) -> ServiceResult<TapConfig> {
    let settings = state
        .store()
        .provider_tap_settings(project_id)
        .await?
        .unwrap_or_else(|| defaults(state.now()));
    Ok(TapConfig { settings })
}

/// The project's tap settings for a delivery, from the per-process cache
/// ([`AppState::tap_settings`], read again after
/// [`crate::app::TAP_SETTINGS_TTL`]); `None` when there is no such project.
/// One read of the project and its settings per TTL instead of per delivery.
pub async fn tap_config_for_delivery(
    state: &AppState,
    project_id: &str,
) -> ServiceResult<Option<TapConfig>> {
    let cache = state.tap_settings();
    let entry = match cache.fresh(project_id, std::time::Instant::now()) {
        Some(entry) => entry,
        None => {
            let fetched = std::time::Instant::now();
            let entry = match state.store().project(project_id).await? {
                None => None,
                Some(_) => Some(
                    state
                        .store()
                        .provider_tap_settings(project_id)
                        .await?
                        .map(std::sync::Arc::new),
                ),
            };
            cache.put(project_id, entry.clone(), fetched);
            entry
        }
    };
    Ok(entry.map(|settings| TapConfig {
        settings: settings.map_or_else(|| defaults(state.now()), |s| (*s).clone()),
    }))
}

/// Stores `config` as the project's tap settings (was `before`), as `who`
/// (audited: `provider_tap.update`, secrets as hints), and forgets the
/// cached copy the tap reads.
pub async fn store_tap_config(
    state: &AppState,
    who: &super::audit::Who,
    project_id: &str,
    before: &TapConfig,
    config: &mut TapConfig,
) -> ServiceResult<()> {
    config.settings.updated_at = state.now();
    let change = super::audit::Change {
        project_id: project_id.to_owned(),
        action: "provider_tap.update",
        target: project_id.to_owned(),
        before: serde_json::to_value(before.view(state, project_id)).ok(),
        after: serde_json::to_value(config.view(state, project_id)).ok(),
    };
    let write = state
        .store()
        .put_provider_tap_settings(project_id, &config.settings);
    super::audit::record(state.store(), who, change, state.now(), write).await?;
    state.tap_settings().forget(project_id);
    Ok(())
}

/// `…` and the last four characters.
pub fn hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

/// The tap URL of a provider for a project.
pub fn tap_url(state: &AppState, provider: Provider, project_id: &str) -> String {
    state.public_url(&format!(
        "/v1/providers/{}/webhooks/{project_id}",
        provider.as_str()
    ))
}

impl TapConfig {
    /// What may be shown of it.
    pub fn view(&self, state: &AppState, project_id: &str) -> ProviderTapView {
        let s = &self.settings;
        ProviderTapView {
            stripe_webhook_url: tap_url(state, Provider::Stripe, project_id),
            shopify_webhook_url: tap_url(state, Provider::Shopify, project_id),
            stripe_endpoint_secrets: s.stripe_endpoint_secrets.iter().map(|x| hint(x)).collect(),
            shopify_client_secret: s.shopify_client_secret.as_deref().map(hint),
            stripe_restricted_key: s.stripe_restricted_key.as_deref().map(|key| {
                let mode = if key.starts_with("rk_live_") {
                    "rk_live_"
                } else {
                    "rk_test_"
                };
                format!("{mode}{}", hint(key))
            }),
            tracked_event_types: match &s.tracked_event_types {
                Some(types) => types.clone(),
                None => TRACKABLE_EVENT_TYPES
                    .iter()
                    .map(|(_, t)| (*t).to_owned())
                    .collect(),
            },
            tracked_event_types_default: s.tracked_event_types.is_none(),
            receipt_grace_seconds: s.receipt_grace_seconds,
            receipt_grace_by_event_type: s.grace_by_event_type.clone(),
        }
    }
}

fn invalid(param: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(param, message)
}

fn validate_secret_text(param: &str, value: &str) -> ServiceResult<()> {
    if value.len() > 512 || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            param,
            "must be at most 512 characters without spaces or control characters",
        ));
    }
    Ok(())
}

fn validate_grace(param: &str, seconds: u32) -> ServiceResult<()> {
    if seconds == 0 || seconds > MAX_RECEIPT_GRACE_SECONDS {
        return Err(invalid(
            param,
            format!("must be between 1 and {MAX_RECEIPT_GRACE_SECONDS} seconds"),
        ));
    }
    Ok(())
}

fn validate_type(param: &str, event_type: &str) -> ServiceResult<()> {
    if TRACKABLE_EVENT_TYPES.iter().any(|(_, t)| *t == event_type) {
        return Ok(());
    }
    Err(invalid(
        param,
        format!(
            "`{event_type}` is not an event type the provider tap tracks; allowed values: {}",
            allowed_types()
        ),
    ))
}

/// Applies `patch` to `settings`, validating every field first.
pub fn apply_patch(
    settings: &mut ProviderTapSettings,
    patch: ProviderTapUpdate,
) -> ServiceResult<()> {
    if let Some(secrets) = &patch.stripe_endpoint_secrets {
        let list = secrets.as_deref().unwrap_or_default();
        const PARAM: &str = "provider_tap.stripe_endpoint_secrets";
        if list.len() > MAX_ENDPOINT_SECRETS {
            return Err(invalid(
                PARAM,
                format!(
                    "at most {MAX_ENDPOINT_SECRETS} secrets; remove the oldest after a rotation"
                ),
            ));
        }
        for (i, secret) in list.iter().enumerate() {
            let param = format!("{PARAM}[{i}]");
            validate_secret_text(&param, secret)?;
            if !secret.starts_with("whsec_") || secret.len() <= "whsec_".len() {
                return Err(invalid(
                    &param,
                    "must be a Stripe endpoint signing secret starting with `whsec_` (Stripe \
                     dashboard → Developers → Webhooks → your endpoint → Signing secret)",
                ));
            }
        }
    }
    if let Some(Some(secret)) = &patch.shopify_client_secret {
        const PARAM: &str = "provider_tap.shopify_client_secret";
        validate_secret_text(PARAM, secret)?;
        if secret.is_empty() {
            return Err(invalid(PARAM, "must not be empty; send null to remove it"));
        }
    }
    if let Some(Some(key)) = &patch.stripe_restricted_key {
        const PARAM: &str = "provider_tap.stripe_restricted_key";
        validate_secret_text(PARAM, key)?;
        let ok = ["rk_live_", "rk_test_"]
            .iter()
            .any(|prefix| key.starts_with(prefix) && key.len() > prefix.len());
        if !ok {
            let why = if key.starts_with("sk_") {
                "is a secret key; create a restricted key (`rk_live_…` or `rk_test_…`) with read \
                 access to Events instead"
            } else {
                "must be a Stripe restricted API key starting with `rk_live_` or `rk_test_`"
            };
            return Err(invalid(PARAM, why));
        }
    }
    if let Some(Some(types)) = &patch.tracked_event_types {
        if types.is_empty() {
            return Err(invalid(
                "provider_tap.tracked_event_types",
                "must name at least one event type; send null for the defaults",
            ));
        }
        for (i, event_type) in types.iter().enumerate() {
            validate_type(
                &format!("provider_tap.tracked_event_types[{i}]"),
                event_type,
            )?;
        }
    }
    if let Some(seconds) = patch.receipt_grace_seconds {
        validate_grace("provider_tap.receipt_grace_seconds", seconds)?;
    }
    if let Some(table) = &patch.receipt_grace_by_event_type {
        for (event_type, seconds) in table {
            let param = format!("provider_tap.receipt_grace_by_event_type.{event_type}");
            validate_type(&param, event_type)?;
            validate_grace(&param, *seconds)?;
        }
    }
    if let Some(secrets) = patch.stripe_endpoint_secrets {
        settings.stripe_endpoint_secrets = secrets.unwrap_or_default();
    }
    if let Some(secret) = patch.shopify_client_secret {
        settings.shopify_client_secret = secret;
    }
    if let Some(key) = patch.stripe_restricted_key {
        settings.stripe_restricted_key = key;
    }
    if let Some(types) = patch.tracked_event_types {
        settings.tracked_event_types = types;
    }
    if let Some(seconds) = patch.receipt_grace_seconds {
        settings.receipt_grace_seconds = seconds;
    }
    if let Some(table) = patch.receipt_grace_by_event_type {
        settings.grace_by_event_type = table;
    }
    Ok(())
}

/// Validates and stores a change to the project's tap settings; returns
/// what may be shown of the result.
pub async fn update_tap_settings(
    state: &AppState,
    who: &super::audit::Who,
    project_id: &str,
    patch: ProviderTapUpdate,
) -> ServiceResult<ProviderTapView> {
    let before = tap_config(state, project_id).await?;
    let mut config = before.clone();
    apply_patch(&mut config.settings, patch)?;
    store_tap_config(state, who, project_id, &before, &mut config).await?;
    Ok(config.view(state, project_id))
}
