//! The [Standard Webhooks](https://www.standardwebhooks.com/) signature scheme,
//! used for SendPromptly's repair callbacks and webhook alerts.
//!
//! - A secret is `whsec_` followed by the standard (padded) base64 of 24–64
//!   random bytes ([`SigningSecret`]).
//! - The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`, the MAC
//!   is HMAC-SHA256 keyed with the decoded secret bytes, and the
//!   `webhook-signature` header carries `v1,<base64 MAC>`; during key rotation it
//!   holds several of them separated by single spaces.
//! - A receiver accepts the message when `webhook-timestamp` is within ±5
//!   minutes ([`TOLERANCE_SECONDS`]) of its clock and any `v1` signature matches
//!   one of its secrets. Other versions (`v1a,…` asymmetric signatures, future
//!   schemes) are ignored.
//!
//! What this module signs is verified unchanged by the official
//! `standardwebhooks` packages, and it verifies what they sign (see
//! `tests/interop_python.rs`).
//!
//! ```
//! use sendpromptly_core::standard_webhooks::{sign_headers, verify, SigningSecret};
//! use sendpromptly_core::Timestamp;
//!
//! let secret: SigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
//! let now = Timestamp::from_unix_seconds(1_700_000_000);
//! let body = br#"{"hello":"world"}"#;
//! let headers = sign_headers("msg_1", now, body, std::slice::from_ref(&secret)).unwrap();
//! let verified = verify(&headers, body, &[secret], now).unwrap();
//! assert_eq!(verified.id, "msg_1");
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Timestamp;
use crate::headers::HeaderLookup;

/// The prefix of every Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The fewest secret bytes accepted (the spec's lower bound).
pub const MIN_SECRET_BYTES: usize = 24;
/// The most secret bytes accepted (the spec's upper bound).
pub const MAX_SECRET_BYTES: usize = 64;
/// How many random bytes [`SigningSecret::generate`] draws.
pub const GENERATED_SECRET_BYTES: usize = 32;
/// Allowed distance, in seconds, between `webhook-timestamp` and `now`, both
/// into the past and into the future.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// The message id header.
pub const HEADER_ID: &str = "webhook-id";
/// The unix-seconds timestamp header.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The signature list header.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Longest piece of untrusted input quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// Quotes untrusted input for an error message, cut to a readable length.
pub(crate) fn quote(value: &str) -> String {
    let mut out: String = value.chars().take(MAX_QUOTED).collect();
    if value.chars().nth(MAX_QUOTED).is_some() {
        out.push('…');
    }
    format!("{out:?}")
}

/// Why a Standard Webhooks message (or secret) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandardWebhooksError {
    /// A required header is absent.
    #[error(
        "missing `{name}` header: the request was not sent as a signed Standard Webhooks message"
    )]
    MissingHeader {
        /// The header that is missing.
        name: &'static str,
    },
    /// A header is present but unusable.
    #[error("malformed `{name}` header: {reason}")]
    MalformedHeader {
        /// The offending header.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `webhook-timestamp` is not a whole number of unix seconds.
    #[error(
        "malformed `webhook-timestamp` header {value}: expected unix seconds such as 1700000000"
    )]
    MalformedTimestamp {
        /// The header value, quoted and shortened.
        value: String,
    },
    /// The message was signed more than the tolerance ago (a replay, a delayed
    /// delivery, or a slow clock on the receiver).
    #[error(
        "`webhook-timestamp` {timestamp} is {age_seconds} s older than now ({now}); at most {tolerance_seconds} s are allowed: check this host's clock, or the message is a replay"
    )]
    TimestampTooOld {
        /// The message's timestamp (unix seconds).
        timestamp: i64,
        /// The verifier's `now` (unix seconds).
        now: i64,
        /// How old the message is.
        age_seconds: i64,
        /// The allowed age.
        tolerance_seconds: i64,
    },
    /// The message claims to have been signed in the future beyond the
    /// tolerance (a skewed clock on either side).
    #[error(
        "`webhook-timestamp` {timestamp} is {ahead_seconds} s in the future of now ({now}); at most {tolerance_seconds} s are allowed: check the clocks of the sender and this host"
    )]
    TimestampInFuture {
        /// The message's timestamp (unix seconds).
        timestamp: i64,
        /// The verifier's `now` (unix seconds).
        now: i64,
        /// How far ahead the message is.
        ahead_seconds: i64,
        /// The allowed skew.
        tolerance_seconds: i64,
    },
    /// No `v1` signature matched any of the secrets.
    #[error(
        "no matching signature: none of the {checked} v1 signature(s) in `webhook-signature` matches any of the {secrets} configured secret(s); check that the signing secret is the project's current `whsec_` secret and that the body is passed byte-for-byte as received"
    )]
    NoMatchingSignature {
        /// How many `v1` signatures the header carried.
        checked: usize,
        /// How many secrets were tried.
        secrets: usize,
    },
    /// No secret was given to sign or verify with.
    #[error("no signing secret configured: pass at least one `whsec_` secret")]
    NoSecrets,
    /// A secret string could not be parsed.
    #[error("invalid signing secret: {reason}")]
    InvalidSecret {
        /// What is wrong with it (never the secret itself).
        reason: String,
    },
}

impl StandardWebhooksError {
    /// The coarse category, for mapping to SDK exception types.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::TimestampTooOld { .. } | Self::TimestampInFuture { .. } => {
                ErrorCategory::StaleTimestamp
            }
            Self::NoMatchingSignature { .. } => ErrorCategory::BadSignature,
            Self::MissingHeader { .. }
            | Self::MalformedHeader { .. }
            | Self::MalformedTimestamp { .. } => ErrorCategory::Malformed,
            Self::NoSecrets | Self::InvalidSecret { .. } => ErrorCategory::Configuration,
        }
    }
}

/// Coarse reasons a signed message is rejected, shared by the SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// Headers missing or unparseable, or the body is not the expected JSON.
    Malformed,
    /// The timestamp is outside the tolerance window.
    StaleTimestamp,
    /// The signature does not match.
    BadSignature,
    /// The verifier itself is misconfigured (no or invalid secret).
    Configuration,
}

/// A Standard Webhooks signing secret (`whsec_…`).
///
/// `Debug` never prints the key; use [`SigningSecret::expose`] to get the
/// `whsec_` string when it must be shown once or stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// A fresh secret of [`GENERATED_SECRET_BYTES`] random bytes.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        rng.fill_bytes(&mut key);
        SigningSecret { key }
    }

    /// A secret from raw key bytes (24–64 of them).
    pub fn from_bytes(key: &[u8]) -> Result<Self, StandardWebhooksError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(StandardWebhooksError::InvalidSecret {
                reason: format!(
                    "the key is {} bytes long; it must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes",
                    key.len()
                ),
            });
        }
        Ok(SigningSecret { key: key.to_vec() })
    }

    /// Parses `whsec_<base64>`; surrounding whitespace (a stray newline from
    /// an environment file) is ignored.
    pub fn parse(text: &str) -> Result<Self, StandardWebhooksError> {
        let text = text.trim();
        let Some(encoded) = text.strip_prefix(SECRET_PREFIX) else {
            return Err(StandardWebhooksError::InvalidSecret {
                reason: format!(
                    "it must start with `{SECRET_PREFIX}` (copy the whole secret as shown when it was created)"
                ),
            });
        };
        let key = STANDARD
            .decode(encoded)
            .map_err(|err| StandardWebhooksError::InvalidSecret {
                reason: format!("the part after `{SECRET_PREFIX}` is not standard base64 ({err})"),
            })?;
        Self::from_bytes(&key)
    }

    /// The `whsec_…` string form. Handle with care: this is the secret.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The raw key bytes. Handle with care: this is the secret.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.key
    }

    fn mac(&self, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length; the fallback is unreachable but
        // keeps this path free of panics.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return [0; 32];
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Signs one message: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(msg_id, timestamp_secs, body))
        )
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningSecret(whsec_[REDACTED; {} bytes])",
            self.key.len()
        )
    }
}

impl FromStr for SigningSecret {
    type Err = StandardWebhooksError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Signs one message with one secret; see [`SigningSecret::sign`].
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    secret.sign(msg_id, timestamp_secs, body)
}

/// The `webhook-signature` value for several secrets (key rotation): one
/// `v1,…` per secret, separated by single spaces, in the order given.
pub fn signature_header(
    secrets: &[SigningSecret],
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(msg_id, timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three signature headers of one signed message.
///
/// It implements [`HeaderLookup`], so it can be handed straight to
/// [`verify`] in tests, and [`SignedHeaders::to_pairs`] gives name/value pairs
/// for an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub webhook_id: String,
    /// `webhook-timestamp` (unix seconds).
    pub webhook_timestamp: String,
    /// `webhook-signature` (`v1,…` per secret, space-separated).
    pub webhook_signature: String,
}

impl SignedHeaders {
    /// `[(name, value)]` for the three headers, names in lower case.
    pub fn to_pairs(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, self.webhook_id.clone()),
            (HEADER_TIMESTAMP, self.webhook_timestamp.clone()),
            (HEADER_SIGNATURE, self.webhook_signature.clone()),
        ]
    }
}

impl HeaderLookup for SignedHeaders {
    fn header(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case(HEADER_ID) {
            Some(&self.webhook_id)
        } else if name.eq_ignore_ascii_case(HEADER_TIMESTAMP) {
            Some(&self.webhook_timestamp)
        } else if name.eq_ignore_ascii_case(HEADER_SIGNATURE) {
            Some(&self.webhook_signature)
        } else {
            None
        }
    }
}

fn check_msg_id(msg_id: &str) -> Result<(), StandardWebhooksError> {
    if msg_id.is_empty() {
        return Err(StandardWebhooksError::MalformedHeader {
            name: HEADER_ID,
            reason: "it is empty".to_owned(),
        });
    }
    if msg_id.chars().any(|c| c.is_control()) {
        return Err(StandardWebhooksError::MalformedHeader {
            name: HEADER_ID,
            reason: format!("{} contains control characters", quote(msg_id)),
        });
    }
    Ok(())
}

/// Signs `body` as message `msg_id` at `now` with every secret, producing
/// the headers to send. Fails without secrets or with an empty or
/// control-character message id (which could not travel in a header).
pub fn sign_headers(
    msg_id: &str,
    now: Timestamp,
    body: &[u8],
    secrets: &[SigningSecret],
) -> Result<SignedHeaders, StandardWebhooksError> {
    if secrets.is_empty() {
        return Err(StandardWebhooksError::NoSecrets);
    }
    check_msg_id(msg_id)?;
    let timestamp = now.unix_seconds();
    Ok(SignedHeaders {
        webhook_id: msg_id.to_owned(),
        webhook_timestamp: timestamp.to_string(),
        webhook_signature: signature_header(secrets, msg_id, timestamp, body),
    })
}

/// What a successful [`verify`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMessage {
    /// The `webhook-id` (stable across retries of one message).
    pub id: String,
    /// The `webhook-timestamp` of this attempt.
    pub timestamp: Timestamp,
}

fn parse_timestamp(value: &str) -> Result<i64, StandardWebhooksError> {
    let trimmed = value.trim();
    let malformed = || StandardWebhooksError::MalformedTimestamp {
        value: quote(value),
    };
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    trimmed.parse::<i64>().map_err(|_| malformed())
}

/// Verifies a Standard Webhooks message with the default ±5 minute tolerance.
///
/// Checks, in order (the order of the official libraries): the three headers
/// are present, the timestamp is a number within tolerance of `now`, and some
/// `v1` signature matches some secret (constant-time comparison).
pub fn verify(
    headers: &(impl HeaderLookup + ?Sized),
    body: &[u8],
    secrets: &[SigningSecret],
    now: Timestamp,
) -> Result<VerifiedMessage, StandardWebhooksError> {
    verify_with_tolerance(headers, body, secrets, now, TOLERANCE_SECONDS)
}

/// [`verify`] with a custom tolerance in seconds (applied both ways; a
/// negative value is treated as 0, meaning the timestamp must equal `now`'s
/// second).
pub fn verify_with_tolerance(
    headers: &(impl HeaderLookup + ?Sized),
    body: &[u8],
    secrets: &[SigningSecret],
    now: Timestamp,
    tolerance_seconds: i64,
) -> Result<VerifiedMessage, StandardWebhooksError> {
    let get = |name: &'static str| {
        headers
            .header(name)
            .ok_or(StandardWebhooksError::MissingHeader { name })
    };
    let msg_id = get(HEADER_ID)?;
    let timestamp_value = get(HEADER_TIMESTAMP)?;
    let signature_value = get(HEADER_SIGNATURE)?;
    if secrets.is_empty() {
        return Err(StandardWebhooksError::NoSecrets);
    }
    check_msg_id(msg_id)?;

    let timestamp = parse_timestamp(timestamp_value)?;
    let now_secs = now.unix_seconds();
    let tolerance = tolerance_seconds.max(0);
    if timestamp < now_secs.saturating_sub(tolerance) {
        return Err(StandardWebhooksError::TimestampTooOld {
            timestamp,
            now: now_secs,
            age_seconds: now_secs.saturating_sub(timestamp),
            tolerance_seconds: tolerance,
        });
    }
    if timestamp > now_secs.saturating_add(tolerance) {
        return Err(StandardWebhooksError::TimestampInFuture {
            timestamp,
            now: now_secs,
            ahead_seconds: timestamp.saturating_sub(now_secs),
            tolerance_seconds: tolerance,
        });
    }

    let mut well_formed = 0usize;
    let mut candidates: Vec<&str> = Vec::new();
    for entry in signature_value.split_ascii_whitespace() {
        let Some((version, signature)) = entry.split_once(',') else {
            continue;
        };
        if version.is_empty() || signature.is_empty() {
            continue;
        }
        well_formed += 1;
        if version == "v1" {
            candidates.push(signature);
        }
    }
    if well_formed == 0 {
        return Err(StandardWebhooksError::MalformedHeader {
            name: HEADER_SIGNATURE,
            reason: format!(
                "{} holds no `<version>,<signature>` entry; expected e.g. `v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=`",
                quote(signature_value)
            ),
        });
    }

    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = STANDARD.encode(secret.mac(msg_id, timestamp, body));
        for candidate in &candidates {
            matched |= expected.as_bytes().ct_eq(candidate.as_bytes());
        }
    }
    if bool::from(matched) {
        Ok(VerifiedMessage {
            id: msg_id.to_owned(),
            timestamp: Timestamp::from_unix_seconds(timestamp),
        })
    } else {
        Err(StandardWebhooksError::NoMatchingSignature {
            checked: candidates.len(),
            secrets: secrets.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let secret: SigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("MfKQ"), "{shown}");
        assert_eq!(secret.expose(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    }

    #[test]
    fn quote_shortens() {
        let long = "x".repeat(500);
        assert!(quote(&long).len() < 80);
        assert_eq!(quote("ab"), "\"ab\"");
    }
}
