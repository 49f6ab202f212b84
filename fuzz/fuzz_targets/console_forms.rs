//! The console's form parsing on arbitrary bodies: the bulk-reprocess form,
//! the per-event-type deadlines, the provider tap form, the times typed in
//! filters and the sign-in redirect. Each answers a value or the message
//! the page shows, never a panic; the redirect stays on this site.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_server::console::fuzzing;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = fuzzing::batch_form(data);
    let _ = fuzzing::provider_tap_form(data);
    if let Ok(table) = fuzzing::deadlines(&text) {
        assert!(table.keys().all(|k| k.trim() == k));
    }
    let _ = fuzzing::form_time(&text);
    let next = fuzzing::login_next(&text);
    assert!(next.starts_with('/') && !next.starts_with("//") && !next.contains('\\'));
});
