//! The API's JSON bodies and their validation on arbitrary bytes: receipts,
//! results, project updates and bulk-reprocess requests deserialize and
//! validate without panicking; a valid receipt or result serializes and
//! parses back equal. The first line is also tried as an `Idempotency-Key`
//! and an event id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendpromptly_core::model::{Receipt, ResultSignal};
use sendpromptly_core::validation::{validate_event_id, validate_idempotency_key};
use sendpromptly_core::wire::{ProjectUpdate, ReprocessBatchRequest};

fuzz_target!(|data: &[u8]| {
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first_line);
    if validate_idempotency_key(&line).is_ok() {
        assert!(!line.is_empty() && line.bytes().all(|b| b.is_ascii_graphic()));
    }
    let _ = validate_event_id(&line);

    if let Ok(receipt) = serde_json::from_slice::<Receipt>(data)
        && receipt.validate().is_ok()
    {
        let json = serde_json::to_vec(&receipt).expect("serialize");
        assert_eq!(serde_json::from_slice::<Receipt>(&json).expect("reparse"), receipt);
    }
    if let Ok(result) = serde_json::from_slice::<ResultSignal>(data)
        && result.validate().is_ok()
    {
        let json = serde_json::to_vec(&result).expect("serialize");
        assert_eq!(serde_json::from_slice::<ResultSignal>(&json).expect("reparse"), result);
    }
    let _ = serde_json::from_slice::<ProjectUpdate>(data);
    let _ = serde_json::from_slice::<ReprocessBatchRequest>(data);
});
