//! Alert channel settings (`sendpromptly_core::alert::parse_channels`) on
//! arbitrary JSON: never panics; parsed channels serialize and parse back
//! to the same list, and channel selection stays in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::alert::{AlertEvent, channels_for, parse_channels};

fuzz_target!(|data: &[u8]| {
    if let Some(name) = std::str::from_utf8(data).ok().and_then(AlertEvent::parse) {
        assert_eq!(AlertEvent::parse(name.as_str()), Some(name));
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(channels) = parse_channels(&value) else {
        return;
    };
    let again = serde_json::to_value(&channels).expect("channels serialize");
    assert_eq!(parse_channels(&again).expect("round trip"), channels);
    for event in AlertEvent::ALL {
        for index in channels_for(&channels, event) {
            assert!(channels[index].wants(event));
        }
    }
});
