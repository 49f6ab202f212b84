//! Engine-independent encoding shared by the SQLite and PostgreSQL stores:
//! times as unix milliseconds, records as JSON, opaque page cursors, error
//! classification and fresh ids. One copy, so the two engines cannot drift.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sendpromptly_core::Timestamp;
use sendpromptly_core::ids;
use sendpromptly_core::machine::EventRecord;

use super::{StoreError, StoreResult};

pub(super) fn ms(t: Timestamp) -> i64 {
    t.unix_millis()
}

pub(super) fn ts(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis)
}

pub(super) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn to_u32(value: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {value}")))
}

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(super) fn decode_record(json: &str) -> StoreResult<EventRecord> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("event record: {e}")))
}

pub(super) fn encode_record(record: &EventRecord) -> StoreResult<String> {
    serde_json::to_string(record).map_err(|e| StoreError::Corrupt(format!("event record: {e}")))
}

pub(super) fn encode_json<T: serde::Serialize>(value: &T, what: &str) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether `err` is the unique fingerprint of `provider_copies` refusing a
/// second event of the same change (its index's name on PostgreSQL, the
/// constrained column on SQLite).
pub(super) fn is_fingerprint_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation()
        && (db.constraint() == Some("provider_copies_by_fingerprint")
            || db.message().contains("provider_copies.fingerprint")))
}

pub(super) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Maps a failed insert: uniqueness → `Conflict(conflict)`, a missing
/// referenced row → `NotFound(missing)`, anything else → `Database`.
pub(super) fn insert_error(err: sqlx::Error, conflict: &str, missing: &'static str) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::Conflict(conflict.to_owned())
    } else if is_foreign_key_violation(&err) {
        StoreError::NotFound(missing)
    } else {
        StoreError::Database(err)
    }
}

/// A `LIKE` pattern matching `text` anywhere, with `\`, `%` and `_`
/// escaped with `\` (PostgreSQL's default `LIKE` escape; SQLite needs `ESCAPE '\'`).
pub(super) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(super) const MILLIS_PER_DAY: i64 = 86_400_000;

pub(super) fn day_of(days_since_epoch: i64) -> StoreResult<chrono::NaiveDate> {
    chrono::DateTime::from_timestamp(days_since_epoch * 86_400, 0)
        .map(|t| t.date_naive())
        .ok_or_else(|| StoreError::Corrupt(format!("day out of range: {days_since_epoch}")))
}

pub(super) fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, 100)
}

pub(super) fn encode_cursor(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes an opaque cursor; anything unreadable is `NotFound("cursor")`.
pub(super) fn decode_cursor(cursor: &str, tag: &str) -> StoreResult<String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::NotFound("cursor"))?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::NotFound("cursor"))?;
    text.strip_prefix(tag)
        .map(str::to_owned)
        .ok_or(StoreError::NotFound("cursor"))
}

pub(super) fn events_cursor(pk: i64) -> String {
    encode_cursor(&format!("e:{pk}"))
}

pub(super) fn parse_events_cursor(cursor: &str) -> StoreResult<i64> {
    decode_cursor(cursor, "e:")?
        .parse()
        .map_err(|_| StoreError::NotFound("cursor"))
}

pub(super) fn incidents_cursor(opened_at: i64, id: &str) -> String {
    encode_cursor(&format!("i:{opened_at}:{id}"))
}

pub(super) fn parse_incidents_cursor(cursor: &str) -> StoreResult<(i64, String)> {
    let raw = decode_cursor(cursor, "i:")?;
    let (at, id) = raw.split_once(':').ok_or(StoreError::NotFound("cursor"))?;
    let at = at.parse().map_err(|_| StoreError::NotFound("cursor"))?;
    if id.contains('\0') {
        // PostgreSQL text cannot hold NUL: no id we handed out has one.
        return Err(StoreError::NotFound("cursor"));
    }
    Ok((at, id.to_owned()))
}

/// A fresh `inc_` id for an incident opened by a store operation.
pub(super) fn new_incident_id(now: Timestamp) -> String {
    ids::new_id(ids::INCIDENT, now, &mut rand::thread_rng())
}

/// The store's keyring, or the error of a store opened without one.
pub(super) fn keyring(
    keyring: Option<&crate::secrets::Keyring>,
) -> StoreResult<&crate::secrets::Keyring> {
    keyring.ok_or(StoreError::Secret(crate::secrets::SecretError::NoKeyring))
}

/// Seals a project's signing secret for storage.
pub(super) fn seal_signing_secret(
    keyring: &crate::secrets::Keyring,
    project_id: &str,
    secret: &str,
) -> String {
    keyring.seal(
        &crate::secrets::signing_secret_context(project_id),
        secret.as_bytes(),
    )
}

/// Opens a stored signing secret.
pub(super) fn open_signing_secret(
    keyring: &crate::secrets::Keyring,
    project_id: &str,
    stored: &str,
) -> StoreResult<String> {
    Ok(keyring.open_text(&crate::secrets::signing_secret_context(project_id), stored)?)
}

/// What to write back for a stored signing secret at start-up: `None` when
/// it is sealed with the current key (and opens), else the value sealed
/// with the current key and whether it was plaintext.
pub(super) fn reseal_signing_secret(
    keyring: &crate::secrets::Keyring,
    project_id: &str,
    stored: &str,
) -> StoreResult<Option<(String, bool)>> {
    if !crate::secrets::Keyring::is_sealed(stored.as_bytes()) {
        return Ok(Some((
            seal_signing_secret(keyring, project_id, stored),
            true,
        )));
    }
    let plain = open_signing_secret(keyring, project_id, stored)?;
    Ok(keyring
        .is_stale(stored)
        .then(|| (seal_signing_secret(keyring, project_id, &plain), false)))
}

/// Seals an idempotent response body for storage.
pub(super) fn seal_response(
    keyring: &crate::secrets::Keyring,
    project_id: &str,
    key: &str,
    body: &[u8],
) -> Vec<u8> {
    keyring
        .seal(&crate::secrets::idempotency_context(project_id, key), body)
        .into_bytes()
}

/// Opens a stored idempotent response (bodies stored before encryption at
/// rest are returned as they are).
pub(super) fn open_response(
    keyring: &crate::secrets::Keyring,
    project_id: &str,
    key: &str,
    stored: Vec<u8>,
) -> StoreResult<Vec<u8>> {
    if !crate::secrets::Keyring::is_sealed(&stored) {
        return Ok(stored);
    }
    let text = std::str::from_utf8(&stored)
        .map_err(|_| StoreError::Secret(crate::secrets::SecretError::Malformed))?;
    Ok(keyring.open(&crate::secrets::idempotency_context(project_id, key), text)?)
}
