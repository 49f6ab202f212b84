//! The events and incidents page cursors (`?cursor=`) on arbitrary text:
//! an unreadable cursor is an error, never a panic; one that reads back
//! is the cursor of the position it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_server::store::cursors;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(pk) = cursors::parse_events(&text) {
        assert_eq!(cursors::parse_events(&cursors::events(pk)).ok(), Some(pk));
    }
    if let Ok((at, id)) = cursors::parse_incidents(&text) {
        assert!(!id.contains('\0'));
        let again = cursors::parse_incidents(&cursors::incidents(at, &id)).ok();
        assert_eq!(again, Some((at, id)));
    }
});
