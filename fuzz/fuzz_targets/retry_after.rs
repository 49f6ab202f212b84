//! `Retry-After` parsing (delay-seconds or an HTTP date) on arbitrary
//! header values: never panics, and delay-seconds read back exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::Timestamp;
use sendpromptly_core::retry::parse_retry_after;

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let now = Timestamp::from_unix_seconds(1_790_000_000);
    let parsed = parse_retry_after(&value, now);
    if let Ok(seconds) = value.trim().parse::<u64>() {
        assert_eq!(parsed.map(|d| d.as_secs()), Some(seconds));
    }
});
