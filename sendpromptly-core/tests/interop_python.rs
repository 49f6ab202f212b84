//! Interop with the official Python packages `stripe` and `standardwebhooks`,
//! both directions: what Python signs, Rust verifies; what Rust signs, Python
//! verifies; tampered messages fail on both sides with the same category.
//!
//! Needs a Python with both packages:
//!
//! ```sh
//! python3 -m venv .venv && .venv/bin/pip install stripe standardwebhooks
//! SENDPROMPTLY_PYTHON=$PWD/.venv/bin/python cargo test -p sendpromptly-core --test interop_python
//! ```
//!
//! Without `SENDPROMPTLY_PYTHON` the test prints `SKIPPED` and passes, unless
//! `SENDPROMPTLY_REQUIRE_INTEROP=1`, which makes a missing interpreter a
//! failure (for CI).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::SeedableRng;
use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::{
    RepairCallback, RepairCallbackEvent, sign_repair_callback, verify_repair_request,
};
use sendpromptly_core::model::Provider;
use sendpromptly_core::standard_webhooks::{self, SigningSecret, StandardWebhooksError};
use sendpromptly_core::stripe::{self, StripeError};
use serde_json::{Value, json};

const STRIPE_SECRET: &str = "whsec_interop_endpoint_secret";
const STRIPE_OLD_SECRET: &str = "whsec_interop_previous_secret";
const INVOICE_PAID: &[u8] = include_bytes!("fixtures/stripe/invoice_paid.json");

/// The interpreter to use, or `None` when the test should be skipped.
fn python() -> Option<PathBuf> {
    match std::env::var_os("SENDPROMPTLY_PYTHON") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            let required = std::env::var("SENDPROMPTLY_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "SENDPROMPTLY_REQUIRE_INTEROP=1 but SENDPROMPTLY_PYTHON is not set: point it at a Python with `stripe` and `standardwebhooks` installed"
            );
            println!(
                "SKIPPED: set SENDPROMPTLY_PYTHON to a Python with `pip install stripe standardwebhooks` to run the interop tests"
            );
            None
        }
    }
}

/// Runs a batch of operations through tests/interop/interop.py.
fn run_python(python: &PathBuf, ops: &[Value]) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/interop.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run SENDPROMPTLY_PYTHON={python:?}: {err}"));
    // A write error (the interpreter exited early) shows up in the status below.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(ops).unwrap().as_bytes());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "interop.py failed (are `stripe` and `standardwebhooks` installed in {python:?}?):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.len(), ops.len());
    results
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(millis).unwrap())
}

fn stripe_category(err: &StripeError) -> &'static str {
    match err {
        StripeError::MissingHeader => "missing_header",
        StripeError::MalformedHeader { .. } => "malformed_header",
        StripeError::NoV1Signature => "no_v1_signature",
        StripeError::NoMatchingSignature => "no_matching_signature",
        StripeError::TimestampOutsideTolerance { .. } => "timestamp_outside_tolerance",
        StripeError::InvalidPayload { .. } => "invalid_payload",
        StripeError::MissingSecret => "missing_secret",
    }
}

fn sw_category(err: &StandardWebhooksError) -> &'static str {
    match err {
        StandardWebhooksError::MissingHeader { .. } => "missing_header",
        StandardWebhooksError::MalformedHeader { .. } => "malformed_header",
        StandardWebhooksError::MalformedTimestamp { .. } => "malformed_timestamp",
        StandardWebhooksError::TimestampTooOld { .. } => "timestamp_too_old",
        StandardWebhooksError::TimestampInFuture { .. } => "timestamp_in_future",
        StandardWebhooksError::NoMatchingSignature { .. } => "no_matching_signature",
        StandardWebhooksError::NoSecrets => "no_secrets",
        StandardWebhooksError::InvalidSecret { .. } => "invalid_secret",
    }
}

/// One Stripe verification case, run through both verifiers.
struct StripeCase {
    name: String,
    payload: Vec<u8>,
    header: String,
    secret: &'static str,
    expected: &'static str,
}

/// Builds the Stripe cases around one valid (payload, header-maker) pair.
/// `sign(payload, secret, t)` produces a `t=..,v1=..` header.
fn stripe_cases(
    origin: &str,
    now: i64,
    sign: &dyn Fn(&[u8], &str, i64) -> String,
) -> Vec<StripeCase> {
    let v1_of = |header: &str| header.split_once(",v1=").unwrap().1.to_owned();
    let good = sign(INVOICE_PAID, STRIPE_SECRET, now);
    let old = sign(INVOICE_PAID, STRIPE_OLD_SECRET, now);
    let mut tampered = INVOICE_PAID.to_vec();
    tampered.pop();
    let not_json = b"this is not json".to_vec();
    let case = |name: &str, payload: &[u8], header: String, secret, expected| StripeCase {
        name: format!("{origin}: {name}"),
        payload: payload.to_vec(),
        header,
        secret,
        expected,
    };
    vec![
        case("valid", INVOICE_PAID, good.clone(), STRIPE_SECRET, "ok"),
        case(
            "rolling secret, two v1",
            INVOICE_PAID,
            format!("t={now},v1={},v1={}", v1_of(&old), v1_of(&good)),
            STRIPE_SECRET,
            "ok",
        ),
        case(
            "v1 plus v0 and unknown scheme",
            INVOICE_PAID,
            format!("{good},v0={},v9=zz", v1_of(&old)),
            STRIPE_SECRET,
            "ok",
        ),
        case(
            "tampered body",
            &tampered,
            good.clone(),
            STRIPE_SECRET,
            "no_matching_signature",
        ),
        case(
            "wrong secret",
            INVOICE_PAID,
            good.clone(),
            "whsec_someone_else",
            "no_matching_signature",
        ),
        case(
            "only v0",
            INVOICE_PAID,
            format!("t={now},v0={}", v1_of(&good)),
            STRIPE_SECRET,
            "no_v1_signature",
        ),
        case(
            "garbled header",
            INVOICE_PAID,
            "definitely not a signature".into(),
            STRIPE_SECRET,
            "malformed_header",
        ),
        case(
            "empty header",
            INVOICE_PAID,
            String::new(),
            STRIPE_SECRET,
            "missing_header",
        ),
        case(
            "stale timestamp",
            INVOICE_PAID,
            sign(INVOICE_PAID, STRIPE_SECRET, now - 1000),
            STRIPE_SECRET,
            "timestamp_outside_tolerance",
        ),
        case(
            "body not json",
            &not_json,
            sign(&not_json, STRIPE_SECRET, now),
            STRIPE_SECRET,
            "invalid_payload",
        ),
    ]
}

#[test]
fn stripe_both_directions() {
    let Some(python) = python() else { return };
    let now = now().unix_seconds();

    // Python signs the payloads the Python-origin cases need.
    let payloads: Vec<(Vec<u8>, &str, i64)> = vec![
        (INVOICE_PAID.to_vec(), STRIPE_SECRET, now),
        (INVOICE_PAID.to_vec(), STRIPE_OLD_SECRET, now),
        (INVOICE_PAID.to_vec(), STRIPE_SECRET, now - 1000),
        (b"this is not json".to_vec(), STRIPE_SECRET, now),
    ];
    let ops: Vec<Value> = payloads
        .iter()
        .map(|(p, s, t)| json!({"op": "stripe_sign", "payload": B64.encode(p), "secret": s, "timestamp": t}))
        .collect();
    let signed = run_python(&python, &ops);
    let python_sign = |payload: &[u8], secret: &str, t: i64| -> String {
        let index = payloads
            .iter()
            .position(|(p, s, pt)| p == payload && *s == secret && *pt == t)
            .expect("payload signed by python");
        signed[index]["header"].as_str().unwrap().to_owned()
    };
    // The Python header is exactly what the Rust helper produces.
    assert_eq!(
        python_sign(INVOICE_PAID, STRIPE_SECRET, now),
        stripe::generate_test_header(INVOICE_PAID, STRIPE_SECRET, now)
    );

    let mut cases = stripe_cases("python-signed", now, &python_sign);
    cases.extend(stripe_cases("rust-signed", now, &|p, s, t| {
        stripe::generate_test_header(p, s, t)
    }));

    let ops: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"op": "stripe_verify", "payload": B64.encode(&c.payload), "header": c.header,
                   "secret": c.secret, "tolerance": 300})
        })
        .collect();
    let python_results = run_python(&python, &ops);
    let rust_now = Timestamp::from_unix_seconds(now);
    for (case, py) in cases.iter().zip(&python_results) {
        let rust = stripe::construct_event(&case.payload, &case.header, case.secret, rust_now);
        let rust_category = match &rust {
            Ok(event) => {
                assert_eq!(py["event_id"], event.id.as_str(), "{}", case.name);
                "ok"
            }
            Err(err) => stripe_category(err),
        };
        let py_category = if py["ok"] == true {
            "ok"
        } else {
            py["category"].as_str().unwrap()
        };
        assert_eq!(
            rust_category, case.expected,
            "rust, {}: {rust:?}",
            case.name
        );
        assert_eq!(py_category, case.expected, "python, {}: {py}", case.name);
    }
}

fn header_map(h: &[(&str, String)]) -> Value {
    Value::Object(
        h.iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(v.clone())))
            .collect(),
    )
}

#[test]
fn standard_webhooks_both_directions() {
    let Some(python) = python() else { return };
    let now = now();
    let t = now.unix_seconds();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let current = SigningSecret::generate(&mut rng);
    let previous = SigningSecret::generate(&mut rng);
    let stranger = SigningSecret::generate(&mut rng);

    let mut event = RepairCallbackEvent::new(Provider::Stripe, "evt_1Q2w3E", "invoice.paid");
    event.subject = Some("cus_9s8d7f".into());
    event.effect = Some("credits.add".into());
    event.metadata = json!({"credits": 500, "note": "ünïcödé ✓"})
        .as_object()
        .cloned();
    let callback = RepairCallback::new(
        "rep_01JDX4ZQ5K3V7ZC1",
        "inc_01JDX4ZP",
        2,
        now,
        "console:alice@example.com",
        event,
    );

    // Rust signs a repair callback with both secrets (rotation).
    let (body, rust_headers) =
        sign_repair_callback(&callback, &[current.clone(), previous.clone()], now).unwrap();
    let rust_pairs = rust_headers.to_pairs();

    // Python signs the same body as the same message, and a few variants.
    let sign_op = |secret: &SigningSecret, msg_id: &str, ts: i64, payload: &[u8]| {
        json!({"op": "sw_sign", "secret": secret.expose(), "msg_id": msg_id, "timestamp": ts,
               "payload": B64.encode(payload)})
    };
    let signed = run_python(
        &python,
        &[
            sign_op(&current, &callback.reprocess_id, t, &body),
            sign_op(&previous, &callback.reprocess_id, t, &body),
            sign_op(&current, &callback.reprocess_id, t - 400, &body),
            sign_op(&current, &callback.reprocess_id, t + 400, &body),
        ],
    );
    let sig = |i: usize| signed[i]["signature"].as_str().unwrap().to_owned();
    // Python's signature equals Rust's for the same inputs.
    assert_eq!(
        sig(0),
        current.sign(&callback.reprocess_id, t, &body),
        "signatures differ"
    );
    let python_pairs = |signature: String, ts: i64| {
        vec![
            ("webhook-id", callback.reprocess_id.clone()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", signature),
        ]
    };

    struct Case {
        name: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        secret: SigningSecret,
        expected: &'static str,
    }
    let mut tampered = body.clone();
    tampered.pop();
    tampered.extend_from_slice(b" }");
    let with = |mut h: Vec<(&'static str, String)>, name: &str, value: &str| {
        for pair in &mut h {
            if pair.0 == name {
                pair.1 = value.to_owned();
            }
        }
        h
    };
    let rust_vec = rust_pairs.to_vec();
    let cases = vec![
        Case {
            name: "rust-signed, verifier has current",
            headers: rust_vec.clone(),
            body: body.clone(),
            secret: current.clone(),
            expected: "ok",
        },
        Case {
            name: "rust-signed, verifier has previous",
            headers: rust_vec.clone(),
            body: body.clone(),
            secret: previous.clone(),
            expected: "ok",
        },
        Case {
            name: "rust-signed, stranger secret",
            headers: rust_vec.clone(),
            body: body.clone(),
            secret: stranger.clone(),
            expected: "no_matching_signature",
        },
        Case {
            name: "rust-signed, tampered body",
            headers: rust_vec.clone(),
            body: tampered.clone(),
            secret: current.clone(),
            expected: "no_matching_signature",
        },
        Case {
            name: "rust-signed, other id",
            headers: with(rust_vec.clone(), "webhook-id", "rep_other"),
            body: body.clone(),
            secret: current.clone(),
            expected: "no_matching_signature",
        },
        Case {
            name: "rust-signed, timestamp moved",
            headers: with(rust_vec.clone(), "webhook-timestamp", &(t + 1).to_string()),
            body: body.clone(),
            secret: current.clone(),
            expected: "no_matching_signature",
        },
        Case {
            name: "rust-signed, missing signature",
            headers: rust_vec
                .iter()
                .filter(|(k, _)| *k != "webhook-signature")
                .cloned()
                .collect(),
            body: body.clone(),
            secret: current.clone(),
            expected: "missing_header",
        },
        Case {
            name: "rust-signed, bad timestamp",
            headers: with(rust_vec.clone(), "webhook-timestamp", "soon"),
            body: body.clone(),
            secret: current.clone(),
            expected: "malformed_timestamp",
        },
        Case {
            name: "python-signed",
            headers: python_pairs(sig(0), t),
            body: body.clone(),
            secret: current.clone(),
            expected: "ok",
        },
        Case {
            name: "python-signed rotation",
            headers: python_pairs(format!("{} {}", sig(1), sig(0)), t),
            body: body.clone(),
            secret: current.clone(),
            expected: "ok",
        },
        Case {
            name: "python-signed, tampered body",
            headers: python_pairs(sig(0), t),
            body: tampered.clone(),
            secret: current.clone(),
            expected: "no_matching_signature",
        },
        Case {
            name: "python-signed, wrong secret",
            headers: python_pairs(sig(1), t),
            body: body.clone(),
            secret: current.clone(),
            expected: "no_matching_signature",
        },
        Case {
            name: "python-signed, too old",
            headers: python_pairs(sig(2), t - 400),
            body: body.clone(),
            secret: current.clone(),
            expected: "timestamp_too_old",
        },
        Case {
            name: "python-signed, too new",
            headers: python_pairs(sig(3), t + 400),
            body: body.clone(),
            secret: current.clone(),
            expected: "timestamp_in_future",
        },
    ];

    let ops: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"op": "sw_verify", "secret": c.secret.expose(), "headers": header_map(&c.headers),
                   "payload": B64.encode(&c.body)})
        })
        .collect();
    let python_results = run_python(&python, &ops);
    for (case, py) in cases.iter().zip(&python_results) {
        let rust = standard_webhooks::verify(
            &case.headers,
            &case.body,
            std::slice::from_ref(&case.secret),
            now,
        );
        let rust_category = match &rust {
            Ok(_) => {
                // The full repair-callback path agrees, and Python parsed the
                // same payload.
                let parsed = verify_repair_request(
                    &case.body,
                    &case.headers,
                    std::slice::from_ref(&case.secret),
                    now,
                )
                .unwrap();
                assert_eq!(parsed, callback, "{}", case.name);
                assert_eq!(
                    py["body"],
                    serde_json::to_value(&callback).unwrap(),
                    "{}",
                    case.name
                );
                "ok"
            }
            Err(err) => sw_category(err),
        };
        let py_category = if py["ok"] == true {
            "ok"
        } else {
            py["category"].as_str().unwrap()
        };
        assert_eq!(
            rust_category, case.expected,
            "rust, {}: {rust:?}",
            case.name
        );
        assert_eq!(py_category, case.expected, "python, {}: {py}", case.name);
    }
}
