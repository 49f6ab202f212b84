//! Validation of the signals' fields against the contract's limits.
//!
//! One home for these rules: the server rejects with 422 and names the field;
//! the SDKs run the same checks before sending, so a bad call fails fast.

use crate::model::{JsonObject, Receipt, ResultSignal};

/// Longest accepted `event_id`, in characters.
pub const MAX_EVENT_ID_CHARS: usize = 255;
/// Longest accepted `event_type`, `subject` or `effect`, in characters.
pub const MAX_LABEL_CHARS: usize = 255;
/// Largest accepted `metadata`, serialised, in bytes.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Largest accepted result `error`, in bytes.
pub const MAX_ERROR_BYTES: usize = 4 * 1024;
/// Smallest accepted `deadline_seconds`.
pub const MIN_DEADLINE_SECONDS: u32 = 1;
/// Largest accepted `deadline_seconds` (7 days).
pub const MAX_DEADLINE_SECONDS: u32 = 604_800;
/// Longest accepted `Idempotency-Key`, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// Longest accepted note on reprocess or resolve, in bytes.
pub const MAX_NOTE_BYTES: usize = 4 * 1024;

/// A field that breaks the contract's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ValidationError {
    /// The offending field, e.g. `event_id` or `metadata`.
    pub param: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl ValidationError {
    /// A validation error for `param`.
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// Checks an event id: 1–255 printable characters (no control characters).
pub fn validate_event_id(event_id: &str) -> Result<(), ValidationError> {
    validate_label("event_id", event_id, MAX_EVENT_ID_CHARS)
}

fn validate_label(param: &str, value: &str, max_chars: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(param, "must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(ValidationError::new(
            param,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            param,
            "must contain only printable characters",
        ));
    }
    if value.trim() != value {
        return Err(ValidationError::new(
            param,
            "must not start or end with whitespace",
        ));
    }
    Ok(())
}

fn validate_optional_label(param: &str, value: Option<&str>) -> Result<(), ValidationError> {
    value.map_or(Ok(()), |v| validate_label(param, v, MAX_LABEL_CHARS))
}

/// Checks `metadata`: at most 8 KiB serialised.
pub fn validate_metadata(metadata: Option<&JsonObject>) -> Result<(), ValidationError> {
    let Some(metadata) = metadata else {
        return Ok(());
    };
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_METADATA_BYTES {
        return Err(ValidationError::new(
            "metadata",
            format!("is {size} bytes serialised; the limit is {MAX_METADATA_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Checks `deadline_seconds`: 1 – 604800.
pub fn validate_deadline_seconds(param: &str, seconds: u32) -> Result<(), ValidationError> {
    if !(MIN_DEADLINE_SECONDS..=MAX_DEADLINE_SECONDS).contains(&seconds) {
        return Err(ValidationError::new(
            param,
            format!(
                "must be between {MIN_DEADLINE_SECONDS} and {MAX_DEADLINE_SECONDS} seconds (7 days), got {seconds}"
            ),
        ));
    }
    Ok(())
}

/// Checks an `Idempotency-Key` header value: 1–255 printable ASCII characters.
pub fn validate_idempotency_key(key: &str) -> Result<(), ValidationError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(ValidationError::new(
            "Idempotency-Key",
            format!("must be 1–{MAX_IDEMPOTENCY_KEY_CHARS} characters"),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError::new(
            "Idempotency-Key",
            "must contain only printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// Checks a human note (reprocess, resolve): at most 4 KiB.
pub fn validate_note(note: Option<&str>) -> Result<(), ValidationError> {
    if note.is_some_and(|n| n.len() > MAX_NOTE_BYTES) {
        return Err(ValidationError::new(
            "note",
            format!("must be at most {MAX_NOTE_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Page size of a list (`limit`) when none is given.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// Largest page size of a list (`limit`).
pub const MAX_PAGE_LIMIT: u32 = 100;

/// Checks a page size: 1 – [`MAX_PAGE_LIMIT`].
pub fn validate_page_limit(limit: u32) -> Result<(), ValidationError> {
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(ValidationError::new(
            "limit",
            format!("must be a whole number from 1 to {MAX_PAGE_LIMIT}"),
        ));
    }
    Ok(())
}

/// Checks the note of a manual resolve: required (not blank, it says why
/// the incident is resolved without a success result) and at most 4 KiB.
/// The server and every client apply this one rule.
pub fn validate_resolve_note(note: &str) -> Result<(), ValidationError> {
    if note.trim().is_empty() {
        return Err(ValidationError::new(
            "note",
            "must say why the incident is resolved",
        ));
    }
    validate_note(Some(note))
}

impl Receipt {
    /// Checks every field against the contract's limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_event_id(&self.event_id)?;
        validate_label("event_type", &self.event_type, MAX_LABEL_CHARS)?;
        validate_optional_label("subject", self.subject.as_deref())?;
        validate_optional_label("effect", self.effect.as_deref())?;
        if let Some(seconds) = self.deadline_seconds {
            validate_deadline_seconds("deadline_seconds", seconds)?;
        }
        validate_metadata(self.metadata.as_ref())?;
        validate_trace(self.traceparent.as_deref(), self.tracestate.as_deref())
    }
}

/// Checks a signal's trace context: `traceparent` strictly W3C, `tracestate`
/// only with a `traceparent` and within the W3C list rules.
pub fn validate_trace(
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> Result<(), ValidationError> {
    match (traceparent, tracestate) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(ValidationError::new(
            "tracestate",
            "needs a traceparent: send both, or neither",
        )),
        (Some(parent), state) => {
            crate::trace::TraceParent::parse(parent)
                .map_err(|e| ValidationError::new("traceparent", e.to_string()))?;
            if let Some(state) = state {
                crate::trace::validate_tracestate(state)
                    .map_err(|e| ValidationError::new("tracestate", e.to_string()))?;
            }
            Ok(())
        }
    }
}

impl ResultSignal {
    /// Checks every field against the contract's limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_event_id(&self.event_id)?;
        if self
            .error
            .as_ref()
            .is_some_and(|e| e.len() > MAX_ERROR_BYTES)
        {
            return Err(ValidationError::new(
                "error",
                format!("must be at most {MAX_ERROR_BYTES} bytes"),
            ));
        }
        let malformed_reprocess_id = |id: &String| {
            !id.starts_with("rep_")
                || id.len() > 64
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if self
            .reprocess_id
            .as_ref()
            .is_some_and(malformed_reprocess_id)
        {
            return Err(ValidationError::new(
                "reprocess_id",
                "must be a `rep_` id as sent in the repair callback",
            ));
        }
        validate_metadata(self.metadata.as_ref())?;
        validate_trace(self.traceparent.as_deref(), self.tracestate.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Provider, ResultStatus};

    fn receipt() -> Receipt {
        Receipt {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: "evt_1".into(),
            event_type: "invoice.paid".into(),
            subject: None,
            effect: None,
            deadline_seconds: None,
            metadata: None,
            occurred_at: None,
        }
    }

    #[test]
    fn accepts_a_plain_receipt() {
        assert_eq!(receipt().validate(), Ok(()));
    }

    #[test]
    fn names_the_bad_field() {
        let mut r = receipt();
        r.event_id = String::new();
        assert_eq!(r.validate().unwrap_err().param, "event_id");
        let mut r = receipt();
        r.event_id = "x".repeat(256);
        assert_eq!(r.validate().unwrap_err().param, "event_id");
        let mut r = receipt();
        r.event_id = "evt\n1".into();
        assert_eq!(r.validate().unwrap_err().param, "event_id");
        let mut r = receipt();
        r.deadline_seconds = Some(0);
        assert_eq!(r.validate().unwrap_err().param, "deadline_seconds");
        let mut r = receipt();
        r.deadline_seconds = Some(604_801);
        assert_eq!(r.validate().unwrap_err().param, "deadline_seconds");
        let mut r = receipt();
        let mut big = JsonObject::new();
        big.insert("blob".into(), "x".repeat(9000).into());
        r.metadata = Some(big);
        assert_eq!(r.validate().unwrap_err().param, "metadata");
    }

    #[test]
    fn event_id_limit_counts_characters_not_bytes() {
        let mut r = receipt();
        r.event_id = "é".repeat(255);
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn result_limits() {
        let mut s = ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: Provider::Custom,
            event_id: "job-1".into(),
            status: ResultStatus::Failure,
            error: Some("x".repeat(4097)),
            reprocess_id: None,
            metadata: None,
        };
        assert_eq!(s.validate().unwrap_err().param, "error");
        s.error = Some("boom".into());
        s.reprocess_id = Some("inc_123".into());
        assert_eq!(s.validate().unwrap_err().param, "reprocess_id");
        s.reprocess_id = Some("rep_01ABC".into());
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn idempotency_keys() {
        assert!(validate_idempotency_key("abc-123").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key(&"k".repeat(256)).is_err());
    }
}
