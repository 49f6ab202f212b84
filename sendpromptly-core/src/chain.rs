//! The tamper-evident timeline: each entry of an event's timeline carries
//! `hash = SHA-256(prev_hash || canonical content)`, so editing, deleting or
//! reordering a stored entry breaks the chain from there on.
//!
//! # Encoding `v1` (what an outside verifier recomputes)
//!
//! `frame(s)` is the 4-byte big-endian length of the UTF-8 bytes of `s`,
//! then those bytes. Hashes are SHA-256, written as 64 lowercase hex digits.
//!
//! - The chain of an event starts at its **genesis**:
//!   `SHA-256("sendpromptly-timeline-genesis" || frame("v1") ||
//!   frame(project_id) || frame(provider) || frame(event_id))`, so entries
//!   cannot be moved to another event's chain.
//! - Each entry, oldest first: `hash = SHA-256(prev || frame("v1") ||
//!   frame(at) || frame(kind) || frame(actor) || frame(detail))`, where
//!   `prev` is the 32 raw bytes of the previous entry's hash (the genesis
//!   for the first entry), `at` the entry's time in Unix milliseconds as a
//!   decimal integer (`-` for negative), `kind` the kind's wire string
//!   (`receipt`, `result.failure`…), `actor` its wire string (`system:sweeper`,
//!   `api_key:key_…`…), and `detail` the detail object in canonical JSON
//!   ([`canonical_json`]).
//! - The **chain head** is the hash of the last entry.
//!
//! Canonical JSON: no whitespace; object members sorted by key, comparing
//! the keys' UTF-8 bytes; arrays in order; strings in double quotes with
//! `"` → `\"`, `\` → `\\`, U+0008 → `\b`, U+000C → `\f`, U+000A → `\n`,
//! U+000D → `\r`, U+0009 → `\t`, other characters below U+0020 → `\u00xx`
//! (lowercase hex), everything else as its UTF-8 bytes; integers in
//! decimal; other numbers in the shortest form that reads back the same
//! (as `serde_json` prints them); `true`, `false`, `null`.

use sha2::{Digest, Sha256};

use crate::model::{JsonObject, TimelineEntry};

/// The version of the encoding, hashed into every entry.
pub const VERSION: &str = "v1";

/// A SHA-256 hash of the chain.
pub type ChainHash = [u8; 32];

fn frame(hasher: &mut Sha256, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    hasher.update(len.to_be_bytes());
    hasher.update(bytes);
}

/// The hash an event's chain starts from.
pub fn genesis(project_id: &str, provider: &str, event_id: &str) -> ChainHash {
    let mut h = Sha256::new();
    h.update(b"sendpromptly-timeline-genesis");
    frame(&mut h, VERSION.as_bytes());
    frame(&mut h, project_id.as_bytes());
    frame(&mut h, provider.as_bytes());
    frame(&mut h, event_id.as_bytes());
    h.finalize().into()
}

/// The hash of an entry given as its stored parts (see the module docs).
pub fn entry_hash_parts(
    prev: &ChainHash,
    at_millis: i64,
    kind: &str,
    actor: &str,
    detail: &JsonObject,
) -> ChainHash {
    let mut h = Sha256::new();
    h.update(prev);
    frame(&mut h, VERSION.as_bytes());
    frame(&mut h, at_millis.to_string().as_bytes());
    frame(&mut h, kind.as_bytes());
    frame(&mut h, actor.as_bytes());
    frame(&mut h, canonical_object(detail).as_bytes());
    h.finalize().into()
}

/// The hash of `entry` following `prev`.
pub fn entry_hash(prev: &ChainHash, entry: &TimelineEntry) -> ChainHash {
    entry_hash_parts(
        prev,
        entry.at.unix_millis(),
        entry.kind.as_str(),
        &entry.actor.to_string(),
        &entry.detail,
    )
}

/// `value` in canonical JSON (see the module docs).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn canonical_object(object: &JsonObject) -> String {
    let mut out = String::new();
    write_object(&mut out, object);
    out
}

fn write_object(out: &mut String, object: &JsonObject) {
    let mut members: Vec<_> = object.iter().collect();
    members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_canonical(out, value);
    }
    out.push('}');
}

fn write_canonical(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => write_object(out, object),
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `hash` as 64 lowercase hex digits.
pub fn to_hex(hash: &ChainHash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in hash {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// A hash from 64 hex digits; `None` if it is not one.
pub fn from_hex(text: &str) -> Option<ChainHash> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0_u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Why a stored entry breaks its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakReason {
    /// The entry's content (or an earlier entry's) does not give its hash:
    /// it was edited, or an entry before it was deleted or moved.
    ContentMismatch,
    /// The entry has no hash although it was recorded after chaining began.
    MissingHash,
    /// The stored hash is not 64 hex digits.
    MalformedHash,
    /// The stored detail is not a JSON object.
    DetailNotJson,
    /// The event's recorded chain head is not its last entry's hash:
    /// entries were removed from the end, or the head was edited.
    HeadMismatch,
}

impl std::fmt::Display for BreakReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BreakReason::ContentMismatch => "content does not match its hash",
            BreakReason::MissingHash => "its hash is missing",
            BreakReason::MalformedHash => "its hash is not 64 hex digits",
            BreakReason::DetailNotJson => "its detail is not a JSON object",
            BreakReason::HeadMismatch => {
                "the event's chain head does not match its last entry (entries removed from the end?)"
            }
        })
    }
}

/// Checks one event's chain entry by entry, in stored order.
#[derive(Clone, Debug)]
pub struct ChainCheck {
    prev: ChainHash,
    /// Entries checked against their hash.
    pub verified: u64,
    /// Entries recorded before chaining began (no hash, not covered).
    pub unchained: u64,
    started: bool,
}

impl ChainCheck {
    /// A check of the chain of the event `(project_id, provider, event_id)`.
    pub fn new(project_id: &str, provider: &str, event_id: &str) -> Self {
        ChainCheck {
            prev: genesis(project_id, provider, event_id),
            verified: 0,
            unchained: 0,
            started: false,
        }
    }

    /// Checks the next entry. `stored_hash` is its stored hash; `pre_chain`
    /// whether it was recorded before chaining began (only such an entry,
    /// and only before the first hashed one, may lack a hash). After a
    /// break the chain continues from the stored hash, so each later break
    /// is reported on its own.
    pub fn next(
        &mut self,
        at_millis: i64,
        kind: &str,
        actor: &str,
        detail: &JsonObject,
        stored_hash: Option<&str>,
        pre_chain: bool,
    ) -> Result<(), BreakReason> {
        let Some(stored_hash) = stored_hash else {
            if pre_chain && !self.started {
                self.unchained += 1;
                return Ok(());
            }
            return Err(BreakReason::MissingHash);
        };
        self.started = true;
        let stored = from_hex(stored_hash).ok_or(BreakReason::MalformedHash)?;
        let computed = entry_hash_parts(&self.prev, at_millis, kind, actor, detail);
        self.prev = stored;
        if computed != stored {
            return Err(BreakReason::ContentMismatch);
        }
        self.verified += 1;
        Ok(())
    }

    /// The head so far: the last entry's stored hash, or `None` when no
    /// entry has a hash yet.
    pub fn head(&self) -> Option<String> {
        self.started.then(|| to_hex(&self.prev))
    }
}

/// One stored timeline row as a verifier reads it (raw, so that an edited
/// row that no longer decodes is still checked).
#[derive(Clone, Debug)]
pub struct StoredLink<'a> {
    /// The row's sequence number (its order on the timeline).
    pub seq: i64,
    /// `at`, Unix milliseconds.
    pub at_millis: i64,
    /// The kind's wire string.
    pub kind: &'a str,
    /// The actor's wire string.
    pub actor: &'a str,
    /// The detail as stored (JSON text).
    pub detail: &'a str,
    /// The stored hash.
    pub hash: Option<&'a str>,
}

/// Where a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// The entry's position on the timeline, from 1; for
    /// [`BreakReason::HeadMismatch`], the position after the last entry.
    pub position: u64,
    /// The row's sequence number (`None` for a head mismatch).
    pub seq: Option<i64>,
    /// When the entry says it was recorded, Unix milliseconds.
    pub at_millis: Option<i64>,
    /// Why.
    pub why: BreakReason,
}

/// How a published chain head (one handed out earlier, e.g. in a proof
/// link) relates to the timeline now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishedHead {
    /// It is the current head: nothing was added since.
    Current,
    /// It is the hash of an intact entry, `added` entries were appended since.
    Extended {
        /// Entries after it.
        added: u64,
    },
    /// It is no intact entry's hash: the timeline up to it was rewritten,
    /// or entries were removed.
    Changed,
}

/// The result of checking one event's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventVerdict {
    /// Entries on the timeline.
    pub entries: u64,
    /// Entries whose hash checks.
    pub verified: u64,
    /// Entries recorded before chaining began (not covered).
    pub unchained: u64,
    /// The last entry's hash, if any entry has one.
    pub head: Option<String>,
    /// Every break, in timeline order.
    pub breaks: Vec<ChainBreak>,
    /// The published head's status, when one was given.
    pub published: Option<PublishedHead>,
}

impl EventVerdict {
    /// Whether the chain is intact.
    pub fn intact(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// Checks one event's timeline `rows` (in stored order): each entry against
/// its hash, the event's recorded `stored_head` against the last hash, and
/// `published` (a head handed out earlier) against the intact entries.
/// Rows with `seq <= unchained_through` were recorded before chaining began
/// and may lack a hash.
pub fn verify_event(
    project_id: &str,
    provider: &str,
    event_id: &str,
    stored_head: Option<&str>,
    unchained_through: i64,
    rows: &[StoredLink<'_>],
    published: Option<&str>,
) -> EventVerdict {
    let mut check = ChainCheck::new(project_id, provider, event_id);
    let mut breaks = Vec::new();
    let mut published_at: Option<usize> = None;
    for (i, row) in rows.iter().enumerate() {
        let outcome = match serde_json::from_str::<JsonObject>(row.detail) {
            Ok(detail) => check.next(
                row.at_millis,
                row.kind,
                row.actor,
                &detail,
                row.hash,
                row.seq <= unchained_through,
            ),
            Err(_) => {
                if let Some(hash) = row.hash.and_then(from_hex) {
                    check.prev = hash;
                    check.started = true;
                }
                Err(BreakReason::DetailNotJson)
            }
        };
        match outcome {
            Ok(()) => {
                if breaks.is_empty() && published.is_some() && row.hash == published {
                    published_at = Some(i);
                }
            }
            Err(why) => breaks.push(ChainBreak {
                position: i as u64 + 1,
                seq: Some(row.seq),
                at_millis: Some(row.at_millis),
                why,
            }),
        }
    }
    let head = check.head();
    if head.as_deref() != stored_head {
        breaks.push(ChainBreak {
            position: rows.len() as u64 + 1,
            seq: None,
            at_millis: None,
            why: BreakReason::HeadMismatch,
        });
    }
    let published = published.map(|_| match published_at {
        Some(i) if i + 1 == rows.len() => PublishedHead::Current,
        Some(i) => PublishedHead::Extended {
            added: (rows.len() - i - 1) as u64,
        },
        None => PublishedHead::Changed,
    });
    EventVerdict {
        entries: rows.len() as u64,
        verified: check.verified,
        unchained: check.unchained,
        head,
        breaks,
        published,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use crate::model::{Actor, TimelineKind};
    use serde_json::json;

    fn entry(at: i64, kind: TimelineKind, detail: serde_json::Value) -> TimelineEntry {
        TimelineEntry::new(
            Timestamp::from_unix_millis(at),
            kind,
            Actor::System("sweeper".into()),
            detail,
        )
    }

    #[test]
    fn canonical_json_sorts_keys_and_escapes() {
        let v = json!({"b": [1, 2.5, "x\"\n\u{1}é"], "a": {"z": null, "y": true}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"y":true,"z":null},"b":[1,2.5,"x\"\n\u0001é"]}"#
        );
    }

    /// A fixed vector: an outside verifier can check its implementation
    /// against these hex digits.
    #[test]
    fn known_vector() {
        let g = genesis("proj_1", "stripe", "evt_1");
        let e = entry(
            1_700_000_000_000,
            TimelineKind::ReceiptRecorded,
            json!({"b": 1, "a": "x"}),
        );
        let h = entry_hash(&g, &e);
        // Recomputed by hand from the spec with Python's hashlib (docs/tamper-evidence.md).
        let mut manual = Sha256::new();
        manual.update(g);
        for part in [
            "v1",
            "1700000000000",
            "receipt.recorded",
            "system:sweeper",
            r#"{"a":"x","b":1}"#,
        ] {
            manual.update((part.len() as u32).to_be_bytes());
            manual.update(part.as_bytes());
        }
        let manual: ChainHash = manual.finalize().into();
        assert_eq!(h, manual);
        assert_eq!(
            to_hex(&h),
            "0726efd8c6a20effbd0118d4e1960bc73738a3572a490d19dfacbd352c830886"
        );
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
    }

    fn chain(entries: &[TimelineEntry]) -> Vec<String> {
        let mut prev = genesis("p", "stripe", "e");
        entries
            .iter()
            .map(|e| {
                prev = entry_hash(&prev, e);
                to_hex(&prev)
            })
            .collect()
    }

    fn check(entries: &[TimelineEntry], hashes: &[Option<String>]) -> Vec<(usize, BreakReason)> {
        let mut c = ChainCheck::new("p", "stripe", "e");
        let mut breaks = Vec::new();
        for (i, (e, h)) in entries.iter().zip(hashes).enumerate() {
            if let Err(why) = c.next(
                e.at.unix_millis(),
                e.kind.as_str(),
                &e.actor.to_string(),
                &e.detail,
                h.as_deref(),
                false,
            ) {
                breaks.push((i, why));
            }
        }
        breaks
    }

    fn three() -> Vec<TimelineEntry> {
        vec![
            entry(1, TimelineKind::ReceiptRecorded, json!({})),
            entry(2, TimelineKind::ResultFailure, json!({"error": "boom"})),
            entry(3, TimelineKind::IncidentOpened, json!({"n": 1})),
        ]
    }

    #[test]
    fn intact_chain_verifies() {
        let e = three();
        let hashes: Vec<_> = chain(&e).into_iter().map(Some).collect();
        assert!(check(&e, &hashes).is_empty());
    }

    #[test]
    fn edited_entry_is_named() {
        let mut e = three();
        let hashes: Vec<_> = chain(&e).into_iter().map(Some).collect();
        e[1].detail.insert("error".into(), json!("fine"));
        assert_eq!(check(&e, &hashes), vec![(1, BreakReason::ContentMismatch)]);
    }

    #[test]
    fn deleted_and_reordered_entries_break() {
        let e = three();
        let hashes: Vec<_> = chain(&e).into_iter().map(Some).collect();
        let gone = [e[0].clone(), e[2].clone()];
        let gone_h = [hashes[0].clone(), hashes[2].clone()];
        assert_eq!(
            check(&gone, &gone_h),
            vec![(1, BreakReason::ContentMismatch)]
        );
        let swapped = [e[1].clone(), e[0].clone(), e[2].clone()];
        let swapped_h = [hashes[1].clone(), hashes[0].clone(), hashes[2].clone()];
        assert_eq!(check(&swapped, &swapped_h)[0].0, 0);
    }

    fn links<'a>(
        e: &'a [TimelineEntry],
        details: &'a [String],
        hashes: &'a [String],
    ) -> Vec<StoredLink<'a>> {
        e.iter()
            .zip(details)
            .zip(hashes)
            .enumerate()
            .map(|(i, ((e, d), h))| StoredLink {
                seq: 10 + i as i64,
                at_millis: e.at.unix_millis(),
                kind: e.kind.as_str(),
                actor: "system:sweeper",
                detail: d,
                hash: Some(h),
            })
            .collect()
    }

    #[test]
    fn verify_event_reports_edits_tail_deletion_and_published_heads() {
        let e = three();
        let hashes = chain(&e);
        let details: Vec<String> = e
            .iter()
            .map(|e| serde_json::to_string(&e.detail).unwrap())
            .collect();
        let head = hashes[2].clone();
        let ok = verify_event(
            "p",
            "stripe",
            "e",
            Some(&head),
            0,
            &links(&e, &details, &hashes),
            Some(&hashes[1]),
        );
        assert!(ok.intact());
        assert_eq!((ok.verified, ok.head.as_deref()), (3, Some(head.as_str())));
        assert_eq!(ok.published, Some(PublishedHead::Extended { added: 1 }));

        let mut edited = details.clone();
        edited[1] = r#"{"error":"nothing happened"}"#.into();
        let v = verify_event(
            "p",
            "stripe",
            "e",
            Some(&head),
            0,
            &links(&e, &edited, &hashes),
            Some(&head),
        );
        assert_eq!(v.breaks.len(), 1);
        assert_eq!((v.breaks[0].position, v.breaks[0].seq), (2, Some(11)));
        assert_eq!(v.breaks[0].why, BreakReason::ContentMismatch);
        assert_eq!(v.published, Some(PublishedHead::Changed));

        // The last entry deleted: only the recorded head (or a published one) shows it.
        let v = verify_event(
            "p",
            "stripe",
            "e",
            Some(&head),
            0,
            &links(&e[..2], &details[..2], &hashes[..2]),
            Some(&head),
        );
        assert_eq!(v.breaks.last().unwrap().why, BreakReason::HeadMismatch);
        assert_eq!(v.published, Some(PublishedHead::Changed));
    }

    #[test]
    fn missing_hash_after_chaining_breaks_but_pre_chain_does_not() {
        let e = three();
        let mut c = ChainCheck::new("p", "stripe", "e");
        let d = &e[0];
        let kind = d.kind.as_str();
        let actor = d.actor.to_string();
        assert_eq!(c.next(1, kind, &actor, &d.detail, None, true), Ok(()));
        assert_eq!(c.unchained, 1);
        assert_eq!(
            c.next(1, kind, &actor, &d.detail, None, false),
            Err(BreakReason::MissingHash)
        );
    }
}
