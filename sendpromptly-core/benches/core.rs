//! Micro-benchmarks of the pure core: Standard Webhooks verification of a
//! repair callback, Stripe verification, and one state-machine step.
//!
//! `cargo bench -p sendpromptly-core --bench core` (no extra dependency: a
//! warm-up, then `BENCH_ROUNDS` rounds of `BENCH_ITERS` calls each, printed as
//! nanoseconds per call, min/median/max). `BENCH_ITERS=100 BENCH_ROUNDS=2` is
//! a smoke run, and so is any run without `--bench` (`cargo test --benches`).
//! Never a timed assertion.

use std::hint::black_box;
use std::time::Instant;

use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::verify_repair_request;
use sendpromptly_core::machine::{Command, Context, apply};
use sendpromptly_core::model::{Actor, Provider, Receipt};
use sendpromptly_core::standard_webhooks::{SigningSecret, sign_headers};
use sendpromptly_core::stripe::{construct_event, generate_test_header};

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench(name: &str, mut f: impl FnMut()) {
    let full = std::env::args().any(|arg| arg == "--bench");
    let iters = env("BENCH_ITERS", if full { 20_000 } else { 100 });
    let rounds = env("BENCH_ROUNDS", if full { 7 } else { 2 });
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let mut per_call: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters.max(1))
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    println!(
        "{name:<48} min {:>9.0} ns  median {:>9.0} ns  max {:>9.0} ns",
        per_call[0],
        per_call[per_call.len() / 2],
        per_call[per_call.len() - 1]
    );
}

fn callback_body(size: usize) -> Vec<u8> {
    let head = r#"{"type":"reprocess.requested","reprocess_id":"rep_01BENCH","incident_id":"inc_01BENCH","attempt":1,"requested_at":"2026-11-22T10:00:00Z","requested_by":"console:alice@example.com","event":{"provider":"stripe","event_id":"evt_1","event_type":"invoice.paid","subject":"cus_1","metadata":{"pad":""#;
    let tail = r#""}}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad)).into_bytes()
}

fn stripe_payload(size: usize) -> Vec<u8> {
    let head = r#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1763800000,"livemode":false,"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_9s8d7f","amount_paid":500,"description":""#;
    let tail = r#""}}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad)).into_bytes()
}

fn main() {
    let now = Timestamp::from_unix_seconds(1_790_000_000);
    let secret = SigningSecret::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap();
    let secrets = [secret];
    for size in [1024, 16384] {
        let body = callback_body(size);
        let headers = sign_headers("rep_01BENCH", now, &body, &secrets).unwrap();
        assert!(verify_repair_request(&body, &headers, &secrets, now).is_ok());
        bench(
            &format!("standard webhooks verify_repair_request {size} B"),
            || {
                black_box(
                    verify_repair_request(black_box(&body), &headers, &secrets, now).unwrap(),
                );
            },
        );
        let payload = stripe_payload(size);
        let header = generate_test_header(&payload, "whsec_bench", now.unix_seconds());
        assert!(construct_event(&payload, &header, "whsec_bench", now).is_ok());
        bench(&format!("stripe construct_event {size} B"), || {
            black_box(construct_event(black_box(&payload), &header, "whsec_bench", now).unwrap());
        });
    }
    let ctx = Context {
        now,
        actor: Actor::ApiKey("key_bench".into()),
        new_incident_id: "inc_01BENCH".into(),
    };
    let receipt = Receipt {
        traceparent: None,
        tracestate: None,
        provider: Provider::Stripe,
        event_id: "evt_1".into(),
        event_type: "invoice.paid".into(),
        subject: Some("cus_1".into()),
        effect: None,
        deadline_seconds: None,
        metadata: None,
        occurred_at: None,
    };
    bench("machine::apply receipt (new record)", || {
        let command = Command::Receipt {
            receipt: receipt.clone(),
            deadline_seconds: 1800,
        };
        black_box(apply(None, command, &ctx).unwrap());
    });
}
