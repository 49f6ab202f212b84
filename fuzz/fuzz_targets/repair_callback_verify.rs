//! verify_repair_request on arbitrary headers, and on arbitrary bodies that
//! are correctly signed (so the JSON path is exercised).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::{sign_repair_request, verify_repair_request};
use sendpromptly_core::standard_webhooks::SigningSecret;

fuzz_target!(|data: &[u8]| {
    let secret: SigningSecret = match "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse() {
        Ok(secret) => secret,
        Err(_) => return,
    };
    let secrets = [secret];
    let now = Timestamp::from_unix_seconds(1_790_000_000);
    // First line: the reprocess id; the rest: the body.
    let (id, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => ("rep_fuzz".to_owned(), data),
    };
    let garbage = [
        ("webhook-id", id.as_str()),
        ("webhook-timestamp", "1790000000"),
        ("webhook-signature", id.as_str()),
    ];
    let _ = verify_repair_request(body, &garbage, &secrets, now);
    if let Ok(headers) = sign_repair_request(body, id.trim(), &secrets, now)
        && let Ok(callback) = verify_repair_request(body, &headers, &secrets, now)
    {
        assert_eq!(callback.reprocess_id, id.trim());
    }
});
