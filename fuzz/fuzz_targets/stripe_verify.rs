//! Stripe-Signature parsing and verification on arbitrary headers and
//! bodies; a body signed by us always verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::Timestamp;
use sendpromptly_core::stripe;

const SECRET: &str = "whsec_fuzz";

fuzz_target!(|data: &[u8]| {
    // First line: the header; the rest: the body.
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let now = Timestamp::from_unix_seconds(1_790_000_000);
    let _ = stripe::parse_signature_header(&header);
    let _ = stripe::construct_event(body, &header, SECRET, now);
    let _ = stripe::construct_event_with_tolerance(body, &header, SECRET, 0, now);

    let signed = stripe::generate_test_header(body, SECRET, now.unix_seconds());
    assert!(stripe::verify_header(body, &signed, SECRET, 300, now).is_ok());
    if let Ok(event) = stripe::construct_event(body, &signed, SECRET, now) {
        assert!(!event.id.is_empty());
    }
});
