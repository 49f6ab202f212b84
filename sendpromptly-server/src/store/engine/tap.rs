//! The provider tap's storage: the look-up by fingerprint (the
//! `provider_copies` row of an event's first provider copy is written with
//! the event rows, `group::copy_rows`: one change, one event), and the project's tap
//! settings with their sealed secrets.

use std::collections::BTreeMap;

use sendpromptly_core::model::{EventKey, Provider};

use super::super::codec::{self, encode_json, ms};
use super::super::rows::RowExt;
use super::super::sql::{self, Queries, args};
use super::super::{ProviderTapSettings, StoreError, StoreResult};
use super::{Backend, Engine};
use crate::secrets::{Keyring, provider_secret_context};

pub(super) async fn event_by_fingerprint<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    provider: Provider,
    fingerprint: &str,
) -> StoreResult<Option<EventKey>> {
    let params = args![project_id, provider.as_str(), fingerprint];
    let Some(row) = engine
        .read_optional(sql::EVENT_BY_FINGERPRINT, params)
        .await?
    else {
        return Ok(None);
    };
    let provider = row
        .text("provider")?
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("events.provider: {e}")))?;
    Ok(Some(EventKey {
        provider,
        event_id: row.text("event_id")?,
    }))
}

const ENDPOINT_SECRETS: &str = "stripe_endpoint_secrets";
const SHOPIFY_SECRET: &str = "shopify_client_secret";
const RESTRICTED_KEY: &str = "stripe_restricted_key";

fn seal(keyring: &Keyring, project_id: &str, setting: &str, value: &str) -> String {
    keyring.seal(
        &provider_secret_context(project_id, setting),
        value.as_bytes(),
    )
}

fn open(
    keyring: &Keyring,
    project_id: &str,
    setting: &str,
    stored: Option<String>,
) -> StoreResult<Option<String>> {
    stored
        .map(|sealed| {
            keyring
                .open_text(&provider_secret_context(project_id, setting), &sealed)
                .map_err(StoreError::from)
        })
        .transpose()
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) async fn provider_tap_settings<B: Backend>(
    engine: &Engine<B>,
    keyring: &Keyring,
    project_id: &str,
) -> StoreResult<Option<ProviderTapSettings>> {
    let Some(row) = engine
        .read_optional(sql::PROVIDER_TAP_SETTINGS, args![project_id])
        .await?
    else {
        return Ok(None);
    };
    let tracked_event_types = row
        .opt_text("tracked_event_types")?
        .map(|text| json::<Vec<String>>(&text, "tracked_event_types"))
        .transpose()?;
    let grace_by_event_type: BTreeMap<String, u32> =
        json(&row.text("grace_by_event_type")?, "grace_by_event_type")?;
    let endpoint_secrets = open(
        keyring,
        project_id,
        ENDPOINT_SECRETS,
        row.opt_text("stripe_endpoint_secrets")?,
    )?
    .map(|text| json::<Vec<String>>(&text, ENDPOINT_SECRETS))
    .transpose()?
    .unwrap_or_default();
    let grace = row.int("receipt_grace_seconds")?;
    Ok(Some(ProviderTapSettings {
        tracked_event_types,
        receipt_grace_seconds: u32::try_from(grace)
            .map_err(|_| StoreError::Corrupt(format!("receipt_grace_seconds {grace}")))?,
        grace_by_event_type,
        stripe_endpoint_secrets: endpoint_secrets,
        shopify_client_secret: open(
            keyring,
            project_id,
            SHOPIFY_SECRET,
            row.opt_text("shopify_client_secret")?,
        )?,
        stripe_restricted_key: open(
            keyring,
            project_id,
            RESTRICTED_KEY,
            row.opt_text("stripe_restricted_key")?,
        )?,
        updated_at: codec::ts(row.int("updated_at")?),
    }))
}

pub(super) async fn put_provider_tap_settings<B: Backend>(
    engine: &Engine<B>,
    keyring: &Keyring,
    project_id: &str,
    settings: &ProviderTapSettings,
) -> StoreResult<()> {
    let tracked = settings
        .tracked_event_types
        .as_ref()
        .map(|types| encode_json(types, "tracked_event_types"))
        .transpose()?;
    let grace_by_type = encode_json(&settings.grace_by_event_type, "grace_by_event_type")?;
    let endpoint_secrets = (!settings.stripe_endpoint_secrets.is_empty())
        .then(|| encode_json(&settings.stripe_endpoint_secrets, ENDPOINT_SECRETS))
        .transpose()?
        .map(|list| seal(keyring, project_id, ENDPOINT_SECRETS, &list));
    let shopify = settings
        .shopify_client_secret
        .as_deref()
        .map(|secret| seal(keyring, project_id, SHOPIFY_SECRET, secret));
    let restricted = settings
        .stripe_restricted_key
        .as_deref()
        .map(|key| seal(keyring, project_id, RESTRICTED_KEY, key));
    let row = args![
        project_id,
        tracked.as_deref(),
        i64::from(settings.receipt_grace_seconds),
        grace_by_type.as_str(),
        endpoint_secrets.as_deref(),
        shopify.as_deref(),
        restricted.as_deref(),
        ms(settings.updated_at)
    ];
    let mut tx = engine.backend.write().await?;
    B::Db::execute(&mut tx, sql::UPSERT_PROVIDER_TAP_SETTINGS, row)
        .await
        .map_err(|e| codec::insert_error(e, "provider tap settings conflict", "project"))?;
    super::audit::write_pending::<B>(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn stripe_restricted_key<B: Backend>(
    engine: &Engine<B>,
    keyring: &Keyring,
    project_id: &str,
) -> StoreResult<Option<String>> {
    let row = engine
        .read_optional(sql::STRIPE_RESTRICTED_KEY, args![project_id])
        .await?;
    match row {
        Some(row) => open(
            keyring,
            project_id,
            RESTRICTED_KEY,
            row.opt_text("stripe_restricted_key")?,
        ),
        None => Ok(None),
    }
}
