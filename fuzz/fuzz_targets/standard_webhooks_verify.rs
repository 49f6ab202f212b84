//! Standard Webhooks verification on arbitrary headers and bodies; what we
//! sign always verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::Timestamp;
use sendpromptly_core::standard_webhooks::{self, SigningSecret};

fuzz_target!(|data: &[u8]| {
    let secret: SigningSecret = match "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse() {
        Ok(secret) => secret,
        Err(_) => return,
    };
    let secrets = [secret];
    // Lines: id, timestamp, signature, then body.
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (id, ts, sig) = (next(), next(), next());
    let body = parts.next().unwrap_or_default();
    let now = Timestamp::from_unix_seconds(1_790_000_000);
    let headers = [
        ("webhook-id", id.as_str()),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    let _ = standard_webhooks::verify(&headers, body, &secrets, now);
    let _ = SigningSecret::parse(&sig);

    if let Ok(signed) = standard_webhooks::sign_headers(id.trim(), now, body, &secrets) {
        assert!(standard_webhooks::verify(&signed, body, &secrets, now).is_ok());
    }
});
