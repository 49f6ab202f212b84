//! Idempotency keys as a write transaction sees them: a stored key's
//! verdict on a new request, and the rows that remember responses (shared
//! by both backends' group commit and one-by-one paths).

use std::sync::Arc;

use sendpromptly_core::Timestamp;

use super::codec::{encode_json, ms, open_response, seal_response};
use super::{IdempotentOutcome, IdempotentRequest, StoreError, StoreResult, StoredResponse};
use crate::secrets::Keyring;

/// How long an idempotency key is remembered.
pub(super) const IDEMPOTENCY_TTL_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// A job's idempotency key and the keyring that seals its response.
#[derive(Debug)]
pub(super) struct JobKey {
    pub request: IdempotentRequest,
    pub keyring: Arc<Keyring>,
}

/// A stored idempotency key, as a write transaction reads it.
#[derive(Clone, Debug)]
pub(super) struct StoredKey {
    pub project_id: String,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub status: Option<u16>,
    /// The sealed response.
    pub response: Option<Vec<u8>>,
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

/// What a stored key says of a new request.
#[allow(clippy::large_enum_variant)] // short-lived, moved once: boxing buys nothing
pub(super) enum KeyVerdict {
    /// Unknown, expired, or abandoned by a crashed request: run it.
    Run,
    /// Answer this (the same request ran before).
    Answer(IdempotentOutcome),
}

/// The verdict of `stored` on a request with `request_hash` at `now`.
pub(super) fn key_verdict(
    stored: &StoredKey,
    request_hash: &[u8],
    now: Timestamp,
    keyring: &Keyring,
) -> StoreResult<KeyVerdict> {
    if stored.created_at <= ms(now).saturating_sub(IDEMPOTENCY_TTL_MILLIS) {
        return Ok(KeyVerdict::Run);
    }
    if stored.request_hash != request_hash {
        return Ok(KeyVerdict::Answer(IdempotentOutcome::Mismatch));
    }
    if let Some(status) = stored.status {
        let body = open_response(
            keyring,
            &stored.project_id,
            &stored.key,
            stored.response.clone().unwrap_or_default(),
        )?;
        return Ok(KeyVerdict::Answer(IdempotentOutcome::Replay(
            StoredResponse { status, body },
        )));
    }
    if stored.locked_until.is_some_and(|until| until > ms(now)) {
        return Ok(KeyVerdict::Answer(IdempotentOutcome::InFlight));
    }
    Ok(KeyVerdict::Run)
}

/// One idempotency key to remember: `[project_id, key, request hash (hex),
/// status, sealed response (hex), created_at]`, the row the engines'
/// set-based upsert unpacks.
pub(super) type KeyRow = (String, String, String, u16, String, i64);

/// The row remembering `response` for `job`'s key at `now`.
pub(super) fn key_row(
    job_key: &JobKey,
    project_id: &str,
    response: &StoredResponse,
    now: Timestamp,
) -> KeyRow {
    let sealed = seal_response(
        &job_key.keyring,
        project_id,
        &job_key.request.key,
        &response.body,
    );
    (
        project_id.to_owned(),
        job_key.request.key.clone(),
        to_hex(&job_key.request.request_hash),
        response.status,
        to_hex(&sealed),
        ms(now),
    )
}

/// `bytes` as lowercase hex. `hex::encode` builds its string a `char` at
/// a time, which the SQLite server's profile showed at ~2 % of its CPU
/// with an `Idempotency-Key` on every request (the sealed responses).
fn to_hex(bytes: &[u8]) -> String {
    let mut digits = vec![0; bytes.len() * 2];
    // It fails only for a buffer not twice the input's length; hex digits
    // are ASCII, so `from_utf8` cannot fail either.
    let _ = hex::encode_to_slice(bytes, &mut digits);
    String::from_utf8(digits).unwrap_or_default()
}

/// A stored status, checked.
pub(super) fn stored_status(status: Option<i64>) -> StoreResult<Option<u16>> {
    status
        .map(|s| {
            u16::try_from(s)
                .map_err(|_| StoreError::Corrupt(format!("idempotency status out of range: {s}")))
        })
        .transpose()
}

/// The idempotency keys a group remembers, as one JSON array of
/// [`KeyRow`]s for the engine's set-based upsert.
pub(super) struct KeyRows {
    /// The rows.
    pub json: String,
    /// How many.
    pub count: usize,
    /// A stored key created at or before this (milliseconds) has expired
    /// and may be replaced.
    pub expired_at_or_before: i64,
    /// A stored key without a response whose lock ended at or before this
    /// (milliseconds) was abandoned and may be replaced.
    pub now: i64,
}

impl KeyRows {
    /// `rows` at `now`; `None` when there are none.
    pub(super) fn new(rows: &[KeyRow], now: Timestamp) -> StoreResult<Option<KeyRows>> {
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(KeyRows {
            json: encode_json(&rows, "idempotency keys")?,
            count: rows.len(),
            expired_at_or_before: ms(now).saturating_sub(IDEMPOTENCY_TTL_MILLIS),
            now: ms(now),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::to_hex;

    #[test]
    fn to_hex_writes_what_hex_encode_writes() {
        for bytes in [&[][..], &[0x00], &[0xff, 0x10, 0xab], &[7; 517]] {
            assert_eq!(to_hex(bytes), hex::encode(bytes));
        }
    }
}
