//! The repair callback payload, signing and verify_repair_request.

use rand::SeedableRng;
use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::{
    REPROCESS_REQUESTED, RepairCallback, RepairCallbackError, RepairCallbackEvent,
    sign_repair_callback, sign_repair_request, verify_repair_request,
};
use sendpromptly_core::model::Provider;
use sendpromptly_core::standard_webhooks::{
    ErrorCategory, SigningSecret, StandardWebhooksError, sign_headers,
};
use serde_json::json;

const NOW: i64 = 1_795_860_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(secs)
}

fn secrets() -> (SigningSecret, SigningSecret) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    (
        SigningSecret::generate(&mut rng),
        SigningSecret::generate(&mut rng),
    )
}

fn contract_example() -> serde_json::Value {
    json!({"type": "reprocess.requested", "reprocess_id": "rep_01JDX4ZQ0000000000000000", "incident_id": "inc_01JDX4ZP0000000000000000",
     "attempt": 1, "requested_at": "2026-11-28T10:00:00.000Z", "requested_by": "console:alice@example.com",
     "event": {"provider": "stripe", "event_id": "evt_1Q2w3E", "event_type": "invoice.paid",
               "subject": "cus_9s8d7f", "effect": "credits.add", "metadata": {"credits": 500}}})
}

#[test]
fn contract_example_round_trips() {
    let value = contract_example();
    let callback: RepairCallback = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(callback.kind, REPROCESS_REQUESTED);
    assert_eq!(callback.attempt, 1);
    assert_eq!(callback.requested_at, at(NOW));
    assert_eq!(callback.event.provider, Provider::Stripe);
    assert_eq!(callback.event.subject.as_deref(), Some("cus_9s8d7f"));
    assert_eq!(callback.event.metadata.as_ref().unwrap()["credits"], 500);
    assert_eq!(serde_json::to_value(&callback).unwrap(), value);
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    let mut value = contract_example();
    let event = value["event"].as_object_mut().unwrap();
    event.remove("subject");
    event.insert("effect".into(), serde_json::Value::Null);
    event.remove("metadata");
    value["future_field"] = json!("ignored");
    let callback: RepairCallback = serde_json::from_value(value).unwrap();
    assert_eq!(callback.event.subject, None);
    assert_eq!(callback.event.effect, None);
    let out = serde_json::to_value(&callback).unwrap();
    assert!(out["event"].get("subject").is_none());
}

#[test]
fn server_signs_app_verifies() {
    let (current, previous) = secrets();
    let mut event = RepairCallbackEvent::new(Provider::Shopify, "98880550-7158", "orders/paid");
    event.subject = Some("115310627314723954".into());
    let callback = RepairCallback::new(
        "rep_01JDX4ZQ",
        "inc_01JDX4ZP",
        3,
        at(NOW - 100),
        "api:key_1",
        event,
    );
    let (body, headers) =
        sign_repair_callback(&callback, &[current.clone(), previous.clone()], at(NOW)).unwrap();
    assert_eq!(headers.webhook_id, "rep_01JDX4ZQ");
    assert_eq!(headers.webhook_timestamp, NOW.to_string());
    assert_eq!(headers.webhook_signature.split(' ').count(), 2);
    // The app may still hold only the previous secret during rotation.
    let got = verify_repair_request(&body, &headers, &[previous], at(NOW + 60)).unwrap();
    assert_eq!(got, callback);
    // Pairs, as an HTTP client would send them.
    let pairs = headers.to_pairs();
    let got = verify_repair_request(&body, &pairs, &[current], at(NOW)).unwrap();
    assert_eq!(got.attempt, 3);
}

#[test]
fn signature_errors_are_wrapped_with_their_cause() {
    let (secret, other) = secrets();
    let body = serde_json::to_vec(&contract_example()).unwrap();
    let id = "rep_01JDX4ZQ0000000000000000";
    let headers = sign_repair_request(&body, id, std::slice::from_ref(&secret), at(NOW)).unwrap();

    let err = verify_repair_request(&body, &headers, &[other], at(NOW)).unwrap_err();
    assert!(matches!(
        err,
        RepairCallbackError::Signature(StandardWebhooksError::NoMatchingSignature { .. })
    ));
    assert_eq!(err.category(), ErrorCategory::BadSignature);

    let err = verify_repair_request(
        &body,
        &headers,
        std::slice::from_ref(&secret),
        at(NOW + 301),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        RepairCallbackError::Signature(StandardWebhooksError::TimestampTooOld { .. })
    ));
    assert_eq!(err.category(), ErrorCategory::StaleTimestamp);
    assert!(err.to_string().contains("signature check failed"));

    let err = verify_repair_request(
        &body,
        &headers,
        std::slice::from_ref(&secret),
        at(NOW - 301),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        RepairCallbackError::Signature(StandardWebhooksError::TimestampInFuture { .. })
    ));

    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(matches!(
        verify_repair_request(&tampered, &headers, std::slice::from_ref(&secret), at(NOW))
            .unwrap_err(),
        RepairCallbackError::Signature(StandardWebhooksError::NoMatchingSignature { .. })
    ));

    let no_headers: [(&str, &str); 0] = [];
    let err = verify_repair_request(&body, &no_headers, &[secret], at(NOW)).unwrap_err();
    assert!(matches!(
        err,
        RepairCallbackError::Signature(StandardWebhooksError::MissingHeader { name: "webhook-id" })
    ));
    assert_eq!(err.category(), ErrorCategory::Malformed);
}

#[test]
fn malformed_body_wrong_type_and_id_mismatch() {
    let (secret, _) = secrets();
    let secrets = [secret];
    let sign = |body: &[u8], id: &str| sign_headers(id, at(NOW), body, &secrets).unwrap();

    let body = b"{not json";
    let err = verify_repair_request(body, &sign(body, "rep_1"), &secrets, at(NOW)).unwrap_err();
    assert!(
        matches!(err, RepairCallbackError::MalformedBody { .. }),
        "{err}"
    );
    assert_eq!(err.category(), ErrorCategory::Malformed);

    let mut missing_field = contract_example();
    missing_field.as_object_mut().unwrap().remove("incident_id");
    let body = serde_json::to_vec(&missing_field).unwrap();
    let err = verify_repair_request(
        &body,
        &sign(&body, "rep_01JDX4ZQ0000000000000000"),
        &secrets,
        at(NOW),
    )
    .unwrap_err();
    assert!(err.to_string().contains("incident_id"), "{err}");

    let mut bad_provider = contract_example();
    bad_provider["event"]["provider"] = json!("paypal");
    let body = serde_json::to_vec(&bad_provider).unwrap();
    assert!(matches!(
        verify_repair_request(
            &body,
            &sign(&body, "rep_01JDX4ZQ0000000000000000"),
            &secrets,
            at(NOW)
        )
        .unwrap_err(),
        RepairCallbackError::MalformedBody { .. }
    ));

    let mut other_type = contract_example();
    other_type["type"] = json!("incident.opened");
    let body = serde_json::to_vec(&other_type).unwrap();
    let err = verify_repair_request(
        &body,
        &sign(&body, "rep_01JDX4ZQ0000000000000000"),
        &secrets,
        at(NOW),
    )
    .unwrap_err();
    assert!(
        matches!(err, RepairCallbackError::UnexpectedType { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("incident.opened"));

    let body = serde_json::to_vec(&contract_example()).unwrap();
    let err = verify_repair_request(&body, &sign(&body, "rep_someone_else"), &secrets, at(NOW))
        .unwrap_err();
    assert!(
        matches!(err, RepairCallbackError::IdMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("rep_someone_else"));
}

#[test]
fn signing_needs_a_secret() {
    assert_eq!(
        sign_repair_request(b"{}", "rep_1", &[], at(NOW)).unwrap_err(),
        StandardWebhooksError::NoSecrets
    );
}
