//! Stripe-Signature verification against the published vectors and every
//! error case of the official SDKs.

use sendpromptly_core::Timestamp;
use sendpromptly_core::standard_webhooks::ErrorCategory;
use sendpromptly_core::stripe::{
    DEFAULT_TOLERANCE_SECONDS, StripeError, StripeEvent, compute_signature, construct_event,
    construct_event_with_tolerance, generate_test_header, parse_signature_header, verify_header,
};

const VECTOR1: &[u8] = include_bytes!("fixtures/vectors/stripe_vector1_payload.json");
const VECTOR1_SECRET: &str = "webhook_secret";
const VECTOR1_SIG: &str = "82216eca827bcb7b34b8055eb2d2d9e6bc13b9ac39ded14a61e69f70c565f53a";
const VECTOR2: &[u8] = include_bytes!("fixtures/vectors/stripe_vector2_payload.json");
const VECTOR2_SECRET: &str = "secret";
const VECTOR2_SIG: &str = "d7373bc68f4bd320b253cd7461f87af6e1cdf1b4d7db1614d8d1d746972d2d0a";
const T: i64 = 1_533_204_620;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(secs)
}

fn header(sig: &str) -> String {
    format!("t={T},v1={sig}")
}

#[test]
fn vector1_verifies() {
    assert_eq!(VECTOR1.len(), 756);
    assert_eq!(compute_signature(VECTOR1, VECTOR1_SECRET, T), VECTOR1_SIG);
    let event = construct_event(VECTOR1, &header(VECTOR1_SIG), VECTOR1_SECRET, at(T)).unwrap();
    assert_eq!(event.id, "evt_123");
    assert_eq!(event.event_type, "invoiceitem.created");
    assert_eq!(event.created, Some(at(T)));
    assert!(!event.livemode);
    assert_eq!(event.api_version.as_deref(), Some("2017-05-25"));
    assert_eq!(event.account.as_deref(), Some("acct_123"));
    assert_eq!(event.object_id(), Some("ii_123"));
    assert_eq!(event.object_type(), Some("invoiceitem"));
    assert_eq!(event.object["amount"], 1000);
    assert_eq!(event.raw["request"]["id"], "req_123");
}

#[test]
fn vector2_verifies() {
    assert_eq!(VECTOR2.len(), 569);
    assert_eq!(compute_signature(VECTOR2, VECTOR2_SECRET, T), VECTOR2_SIG);
    let event = construct_event(VECTOR2, &header(VECTOR2_SIG), VECTOR2_SECRET, at(T + 10)).unwrap();
    assert_eq!(event.id, "evt_123");
}

#[test]
fn vector1_without_trailing_newline_fails() {
    let trimmed = VECTOR1.strip_suffix(b"\n").unwrap();
    assert_eq!(
        construct_event(trimmed, &header(VECTOR1_SIG), VECTOR1_SECRET, at(T)).unwrap_err(),
        StripeError::NoMatchingSignature
    );
    // Re-serialising the JSON also breaks the signature.
    let value: serde_json::Value = serde_json::from_slice(VECTOR1).unwrap();
    let reserialised = serde_json::to_vec(&value).unwrap();
    assert_eq!(
        verify_header(
            &reserialised,
            &header(VECTOR1_SIG),
            VECTOR1_SECRET,
            300,
            at(T)
        )
        .unwrap_err(),
        StripeError::NoMatchingSignature
    );
}

#[test]
fn any_v1_may_match_and_other_schemes_are_ignored() {
    let h = format!(
        "t={T},v1=deadbeef,v1={VECTOR2_SIG},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39,v2=zz,foo=bar,nonsense"
    );
    construct_event(VECTOR2, &h, VECTOR2_SECRET, at(T)).unwrap();
    let h = format!("v1={VECTOR2_SIG},t={T}");
    construct_event(VECTOR2, &h, VECTOR2_SECRET, at(T)).unwrap();
    // The right hex under v0 does not count.
    let h = format!("t={T},v0={VECTOR2_SIG}");
    assert_eq!(
        construct_event(VECTOR2, &h, VECTOR2_SECRET, at(T)).unwrap_err(),
        StripeError::NoV1Signature
    );
    // Like the SDKs, a key with surrounding spaces is not `v1`.
    let h = format!("t={T}, v1={VECTOR2_SIG}");
    assert_eq!(
        construct_event(VECTOR2, &h, VECTOR2_SECRET, at(T)).unwrap_err(),
        StripeError::NoV1Signature
    );
    // The first t wins.
    let h = format!("t={T},t=5,v1={VECTOR2_SIG}");
    construct_event(VECTOR2, &h, VECTOR2_SECRET, at(T)).unwrap();
}

#[test]
fn header_parsing() {
    let parsed = parse_signature_header(&format!("t={T},v1=a,v1=b,v0=c")).unwrap();
    assert_eq!(parsed.timestamp, T);
    assert_eq!(parsed.v1_signatures, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(
        parse_signature_header("").unwrap_err(),
        StripeError::MissingHeader
    );
    assert_eq!(
        parse_signature_header(" ").unwrap_err(),
        StripeError::MissingHeader
    );
    for garbled in [
        "garbage",
        "v1=abc",
        "t=,v1=abc",
        "t=abc,v1=abc",
        "t,v1=abc",
        "t=1.5,v1=a",
    ] {
        let err = parse_signature_header(garbled).unwrap_err();
        assert!(
            matches!(err, StripeError::MalformedHeader { .. }),
            "{garbled}: {err}"
        );
        assert_eq!(err.category(), ErrorCategory::Malformed);
    }
    assert_eq!(
        parse_signature_header(&format!("t={T}")).unwrap_err(),
        StripeError::NoV1Signature
    );
    assert_eq!(
        parse_signature_header(&format!("t={T},v1=")).unwrap_err(),
        StripeError::NoV1Signature
    );
}

#[test]
fn every_error_variant() {
    let good = header(VECTOR2_SIG);
    assert_eq!(
        construct_event(VECTOR2, "", VECTOR2_SECRET, at(T)).unwrap_err(),
        StripeError::MissingHeader
    );
    assert!(matches!(
        construct_event(VECTOR2, "nope", VECTOR2_SECRET, at(T)).unwrap_err(),
        StripeError::MalformedHeader { .. }
    ));
    assert_eq!(
        construct_event(VECTOR2, &format!("t={T},v0=abc"), VECTOR2_SECRET, at(T)).unwrap_err(),
        StripeError::NoV1Signature
    );
    let err = construct_event(VECTOR2, &good, "whsec_wrong", at(T)).unwrap_err();
    assert_eq!(err, StripeError::NoMatchingSignature);
    assert_eq!(err.category(), ErrorCategory::BadSignature);
    assert!(err.to_string().contains("raw request body"));
    let err = construct_event(VECTOR2, &good, VECTOR2_SECRET, at(T + 301)).unwrap_err();
    assert_eq!(
        err,
        StripeError::TimestampOutsideTolerance {
            timestamp: T,
            age_seconds: 301,
            tolerance_seconds: DEFAULT_TOLERANCE_SECONDS
        }
    );
    assert_eq!(err.category(), ErrorCategory::StaleTimestamp);
    assert_eq!(
        construct_event(VECTOR2, &good, "  ", at(T)).unwrap_err(),
        StripeError::MissingSecret
    );
    let not_json = b"not json";
    let h = generate_test_header(not_json, "whsec_x", T);
    let err = construct_event(not_json, &h, "whsec_x", at(T)).unwrap_err();
    assert!(matches!(err, StripeError::InvalidPayload { .. }), "{err}");
    assert!(err.to_string().contains("JSON"));
}

#[test]
fn payload_must_be_a_snapshot_event() {
    for body in [
        br#"[1,2]"#.as_slice(),
        br#"{"object":"event","type":"x"}"#,
        br#"{"object":"event","id":"evt_1"}"#,
        br#"{"object":"v2.core.event","id":"evt_1","type":"v1.billing.meter.error_report_triggered"}"#,
        b"\xff\xfe",
    ] {
        let h = generate_test_header(body, "whsec_x", T);
        let err = construct_event(body, &h, "whsec_x", at(T)).unwrap_err();
        assert!(matches!(err, StripeError::InvalidPayload { .. }), "{err}");
    }
    // Minimal envelopes work; absent fields are None/Null.
    let body = br#"{"id":"evt_1","type":"ping"}"#;
    let event = StripeEvent::from_slice(body).unwrap();
    assert_eq!(event.created, None);
    assert!(event.object.is_null());
    assert_eq!(event.object_id(), None);
}

#[test]
fn tolerance_semantics() {
    let good = header(VECTOR2_SIG);
    // Exactly at the edge passes; a second more fails.
    construct_event(VECTOR2, &good, VECTOR2_SECRET, at(T + 300)).unwrap();
    // Future timestamps are accepted, as in the SDKs.
    construct_event(VECTOR2, &good, VECTOR2_SECRET, at(T - 3600)).unwrap();
    // Zero does not disable the check: it allows no age at all.
    construct_event_with_tolerance(VECTOR2, &good, VECTOR2_SECRET, 0, at(T)).unwrap();
    assert!(matches!(
        construct_event_with_tolerance(VECTOR2, &good, VECTOR2_SECRET, 0, at(T + 1)).unwrap_err(),
        StripeError::TimestampOutsideTolerance {
            age_seconds: 1,
            tolerance_seconds: 0,
            ..
        }
    ));
    // A custom wide tolerance (e.g. replaying a stored delivery).
    construct_event_with_tolerance(
        VECTOR2,
        &good,
        VECTOR2_SECRET,
        86_400 * 3,
        at(T + 86_400 * 2),
    )
    .unwrap();
    // u64::MAX does not overflow.
    construct_event_with_tolerance(
        VECTOR2,
        &good,
        VECTOR2_SECRET,
        u64::MAX,
        at(i64::MAX / 1000),
    )
    .unwrap();
    // The signature is checked before the age, as in the SDKs.
    assert_eq!(
        construct_event(VECTOR2, &good, "whsec_wrong", at(T + 10_000)).unwrap_err(),
        StripeError::NoMatchingSignature
    );
}

#[test]
fn test_header_helper_round_trips() {
    let body = br#"{"id":"evt_9","type":"charge.refunded","data":{"object":{"id":"ch_9"}}}"#;
    let h = generate_test_header(body, "whsec_abc", 1_790_000_000);
    assert!(h.starts_with("t=1790000000,v1="));
    let verified = verify_header(body, &h, "whsec_abc", 300, at(1_790_000_000)).unwrap();
    assert_eq!(verified, at(1_790_000_000));
    // Signed with the canonical decimal of t, like the SDKs' "%d".
    let sig = compute_signature(body, "whsec_abc", 1_790_000_000);
    verify_header(
        body,
        &format!("t=+1790000000,v1={sig}"),
        "whsec_abc",
        300,
        at(1_790_000_000),
    )
    .unwrap();
}
