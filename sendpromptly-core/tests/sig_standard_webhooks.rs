//! Standard Webhooks signing and verification.

use std::collections::HashMap;

use rand::SeedableRng;
use sendpromptly_core::Timestamp;
use sendpromptly_core::standard_webhooks::{
    ErrorCategory, SigningSecret, StandardWebhooksError, TOLERANCE_SECONDS, sign, sign_headers,
    signature_header, verify, verify_with_tolerance,
};

/// The published Standard Webhooks / Svix example.
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TS: i64 = 1_614_265_330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn spec_secret() -> SigningSecret {
    SPEC_SECRET.parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(secs)
}

fn headers(id: &str, ts: &str, sig: &str) -> Vec<(String, String)> {
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.into()),
        ("webhook-signature".into(), sig.into()),
    ]
}

#[test]
fn published_example_signs_and_verifies() {
    let secret = spec_secret();
    assert_eq!(sign(&secret, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
    let h = headers(SPEC_ID, &SPEC_TS.to_string(), SPEC_SIG);
    let verified = verify(&h, SPEC_BODY, &[secret], at(SPEC_TS)).unwrap();
    assert_eq!(verified.id, SPEC_ID);
    assert_eq!(verified.timestamp, at(SPEC_TS));
}

#[test]
fn header_names_are_case_insensitive_in_any_container() {
    let mut map = http::HeaderMap::new();
    map.insert("Webhook-Id", SPEC_ID.parse().unwrap());
    map.insert("Webhook-Timestamp", SPEC_TS.to_string().parse().unwrap());
    map.insert("Webhook-Signature", SPEC_SIG.parse().unwrap());
    verify(&map, SPEC_BODY, &[spec_secret()], at(SPEC_TS)).unwrap();

    let hash: HashMap<String, String> = [
        ("WEBHOOK-ID".to_owned(), SPEC_ID.to_owned()),
        ("WEBHOOK-TIMESTAMP".to_owned(), SPEC_TS.to_string()),
        ("WEBHOOK-SIGNATURE".to_owned(), SPEC_SIG.to_owned()),
    ]
    .into();
    verify(&hash, SPEC_BODY, &[spec_secret()], at(SPEC_TS)).unwrap();
}

#[test]
fn generated_secrets_round_trip_and_are_distinct() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let a = SigningSecret::generate(&mut rng);
    let b = SigningSecret::generate(&mut rng);
    assert_ne!(a, b);
    let text = a.expose();
    assert!(text.starts_with("whsec_"));
    assert_eq!(text.parse::<SigningSecret>().unwrap(), a);
    assert_eq!(a.expose_bytes().len(), 32);
    let mut os = rand::rngs::OsRng;
    let _ = SigningSecret::generate(&mut os);
}

#[test]
fn debug_never_prints_the_secret() {
    let secret = spec_secret();
    let shown = format!("{secret:?} {:?}", vec![secret.clone()]);
    assert!(
        !shown.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{shown}"
    );
    assert!(shown.contains("REDACTED"));
}

#[test]
fn secret_parsing_errors_are_clear() {
    let err = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        .parse::<SigningSecret>()
        .unwrap_err();
    assert!(err.to_string().contains("whsec_"), "{err}");
    let err = "whsec_not base64!".parse::<SigningSecret>().unwrap_err();
    assert!(err.to_string().contains("base64"), "{err}");
    let err = "whsec_c2hvcnQ=".parse::<SigningSecret>().unwrap_err();
    assert!(err.to_string().contains("5 bytes"), "{err}");
    assert_eq!(err.category(), ErrorCategory::Configuration);
    // Too long: 65 bytes.
    assert!(SigningSecret::from_bytes(&[1u8; 65]).is_err());
    assert!(SigningSecret::from_bytes(&[1u8; 64]).is_ok());
    assert!(SigningSecret::from_bytes(&[1u8; 24]).is_ok());
    assert!(SigningSecret::from_bytes(&[1u8; 23]).is_err());
    // Whitespace from env files is tolerated.
    assert_eq!(
        format!("  {SPEC_SECRET}\n")
            .parse::<SigningSecret>()
            .unwrap(),
        spec_secret()
    );
}

#[test]
fn rotation_any_secret_any_signature() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let old = SigningSecret::generate(&mut rng);
    let new = SigningSecret::generate(&mut rng);
    let now = at(1_790_000_000);
    let body = b"{}";
    let sent = sign_headers("rep_1", now, body, &[new.clone(), old.clone()]).unwrap();
    assert_eq!(sent.webhook_signature.split(' ').count(), 2);
    assert_eq!(
        sent.webhook_signature,
        signature_header(
            &[new.clone(), old.clone()],
            "rep_1",
            now.unix_seconds(),
            body
        )
    );
    // A receiver that knows only the old, only the new, or both, accepts.
    verify(&sent, body, std::slice::from_ref(&old), now).unwrap();
    verify(&sent, body, std::slice::from_ref(&new), now).unwrap();
    verify(&sent, body, &[old.clone(), new.clone()], now).unwrap();
    // A sender that signs only with the new secret reaches a receiver that
    // already lists both.
    let only_new = sign_headers("rep_1", now, body, std::slice::from_ref(&new)).unwrap();
    verify(&only_new, body, &[old.clone(), new.clone()], now).unwrap();
    // A third secret matches nothing.
    let other = SigningSecret::generate(&mut rng);
    assert_eq!(
        verify(&sent, body, &[other], now).unwrap_err(),
        StandardWebhooksError::NoMatchingSignature {
            checked: 2,
            secrets: 1
        }
    );
}

#[test]
fn other_versions_are_ignored() {
    let sig = format!("v1a,AAAA {SPEC_SIG} v2,zzz");
    let h = headers(SPEC_ID, &SPEC_TS.to_string(), &sig);
    verify(&h, SPEC_BODY, &[spec_secret()], at(SPEC_TS)).unwrap();
    // The right MAC under another version label does not count.
    let relabelled = SPEC_SIG.replacen("v1,", "v1a,", 1);
    let h = headers(SPEC_ID, &SPEC_TS.to_string(), &relabelled);
    assert_eq!(
        verify(&h, SPEC_BODY, &[spec_secret()], at(SPEC_TS)).unwrap_err(),
        StandardWebhooksError::NoMatchingSignature {
            checked: 0,
            secrets: 1
        }
    );
}

#[test]
fn missing_headers_are_named() {
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let h: Vec<(String, String)> = headers(SPEC_ID, &SPEC_TS.to_string(), SPEC_SIG)
            .into_iter()
            .filter(|(name, _)| name != missing)
            .collect();
        let err = verify(&h, SPEC_BODY, &[spec_secret()], at(SPEC_TS)).unwrap_err();
        assert!(
            matches!(err, StandardWebhooksError::MissingHeader { name } if name == missing),
            "{err}"
        );
        assert!(err.to_string().contains(missing));
        assert_eq!(err.category(), ErrorCategory::Malformed);
    }
}

#[test]
fn malformed_headers() {
    let secret = [spec_secret()];
    for bad in ["", "abc", "-5", "1.5", "1e9", "99999999999999999999999"] {
        let h = headers(SPEC_ID, bad, SPEC_SIG);
        let err = verify(&h, SPEC_BODY, &secret, at(SPEC_TS)).unwrap_err();
        assert!(
            matches!(err, StandardWebhooksError::MalformedTimestamp { .. }),
            "{bad}: {err}"
        );
    }
    for bad in ["", "   ", "v1", "garbage", ",abc", "v1,"] {
        let h = headers(SPEC_ID, &SPEC_TS.to_string(), bad);
        let err = verify(&h, SPEC_BODY, &secret, at(SPEC_TS)).unwrap_err();
        assert!(
            matches!(
                err,
                StandardWebhooksError::MalformedHeader {
                    name: "webhook-signature",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
    let h = headers("", &SPEC_TS.to_string(), SPEC_SIG);
    let err = verify(&h, SPEC_BODY, &secret, at(SPEC_TS)).unwrap_err();
    assert!(matches!(
        err,
        StandardWebhooksError::MalformedHeader {
            name: "webhook-id",
            ..
        }
    ));
    let h = headers(SPEC_ID, &SPEC_TS.to_string(), SPEC_SIG);
    assert_eq!(
        verify(&h, SPEC_BODY, &[], at(SPEC_TS)).unwrap_err(),
        StandardWebhooksError::NoSecrets
    );
}

#[test]
fn tolerance_is_five_minutes_both_ways() {
    let secret = [spec_secret()];
    let h = headers(SPEC_ID, &SPEC_TS.to_string(), SPEC_SIG);
    verify(&h, SPEC_BODY, &secret, at(SPEC_TS + TOLERANCE_SECONDS)).unwrap();
    verify(&h, SPEC_BODY, &secret, at(SPEC_TS - TOLERANCE_SECONDS)).unwrap();
    let err = verify(&h, SPEC_BODY, &secret, at(SPEC_TS + TOLERANCE_SECONDS + 1)).unwrap_err();
    assert!(
        matches!(
            err,
            StandardWebhooksError::TimestampTooOld {
                age_seconds: 301,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.category(), ErrorCategory::StaleTimestamp);
    let err = verify(&h, SPEC_BODY, &secret, at(SPEC_TS - TOLERANCE_SECONDS - 1)).unwrap_err();
    assert!(
        matches!(
            err,
            StandardWebhooksError::TimestampInFuture {
                ahead_seconds: 301,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("clock"));
    // Custom tolerance.
    verify_with_tolerance(&h, SPEC_BODY, &secret, at(SPEC_TS + 3600), 3600).unwrap();
    assert!(verify_with_tolerance(&h, SPEC_BODY, &secret, at(SPEC_TS + 1), 0).is_err());
    verify_with_tolerance(&h, SPEC_BODY, &secret, at(SPEC_TS), -10).unwrap();
}

#[test]
fn tampering_is_detected() {
    let secret = [spec_secret()];
    let now = at(SPEC_TS);
    let ts = SPEC_TS.to_string();
    let cases = [
        (
            headers(SPEC_ID, &ts, SPEC_SIG),
            br#"{"test": 2432232315}"#.as_slice(),
        ),
        (headers("msg_other", &ts, SPEC_SIG), SPEC_BODY),
        (
            headers(SPEC_ID, &(SPEC_TS + 1).to_string(), SPEC_SIG),
            SPEC_BODY,
        ),
        (
            headers(
                SPEC_ID,
                &ts,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
            ),
            SPEC_BODY,
        ),
    ];
    for (h, body) in cases {
        let err = verify(&h, body, &secret, now).unwrap_err();
        assert!(
            matches!(err, StandardWebhooksError::NoMatchingSignature { .. }),
            "{err}"
        );
        assert_eq!(err.category(), ErrorCategory::BadSignature);
    }
}

#[test]
fn signing_rejects_unusable_input() {
    let now = at(SPEC_TS);
    assert_eq!(
        sign_headers("rep_1", now, b"{}", &[]).unwrap_err(),
        StandardWebhooksError::NoSecrets
    );
    assert!(sign_headers("", now, b"{}", &[spec_secret()]).is_err());
    assert!(sign_headers("rep\n1", now, b"{}", &[spec_secret()]).is_err());
    let sent = sign_headers("rep_1", now, b"{}", &[spec_secret()]).unwrap();
    let pairs = sent.to_pairs();
    assert_eq!(pairs[0], ("webhook-id", "rep_1".to_owned()));
    assert_eq!(pairs[1], ("webhook-timestamp", SPEC_TS.to_string()));
    assert!(pairs[2].1.starts_with("v1,"));
}
