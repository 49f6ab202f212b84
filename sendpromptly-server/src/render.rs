//! Turning timeline entries into rows a person reads. Shared by the proof
//! page and (later) the console, so both describe events the same way.

use sendpromptly_core::model::{Actor, TimelineEntry, TimelineKind};
use serde_json::Value;

/// One rendered timeline row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineRow {
    /// RFC 3339 time.
    pub at: String,
    /// A short title, e.g. "Incident opened".
    pub title: String,
    /// One line of specifics.
    pub summary: String,
    /// Who acted (for the public page: "the app", "the team", "SendPromptly").
    pub actor: String,
    /// `ok`, `bad`, `warn` or `info`: the row's colour.
    pub tone: &'static str,
}

fn text(detail: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match detail.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn public_actor(actor: &Actor) -> String {
    match actor {
        Actor::ApiKey(_) => "the app".into(),
        Actor::Console(_) => "the team".into(),
        Actor::System(_) => "SendPromptly".into(),
    }
}

/// Rows for `entries`. `internal` (console) shows who acted and notes,
/// error texts and response excerpts; the public proof page shows neither.
pub fn timeline_rows(entries: &[TimelineEntry], internal: bool) -> Vec<TimelineRow> {
    entries.iter().map(|entry| row(entry, internal)).collect()
}

fn row(entry: &TimelineEntry, internal: bool) -> TimelineRow {
    let d = &entry.detail;
    let (title, summary, tone) = match entry.kind {
        TimelineKind::ReceiptRecorded => (
            "Receipt: event accepted by the app",
            text(d, "deadline_at").map_or_else(String::new, |due| format!("result due by {due}")),
            "info",
        ),
        TimelineKind::ReceiptDuplicate => (
            "Duplicate delivery",
            text(d, "deliveries").map_or_else(String::new, |n| {
                format!("delivery #{n}; deadline unchanged")
            }),
            "info",
        ),
        TimelineKind::ResultSuccess => (
            "Result: success",
            "the business effect was applied".to_owned(),
            "ok",
        ),
        TimelineKind::ResultFailure => {
            let ignored = d.contains_key("ignored");
            let summary = if internal {
                text(d, "error").unwrap_or_else(|| "no error message".into())
            } else {
                "the app reported a failure".into()
            };
            if ignored {
                (
                    "Result: failure (ignored, success already recorded)",
                    summary,
                    "info",
                )
            } else {
                ("Result: failure", summary, "bad")
            }
        }
        TimelineKind::ResultDuplicate => ("Duplicate result", String::new(), "info"),
        TimelineKind::DeadlinePassed => ("Deadline passed without a result", String::new(), "bad"),
        TimelineKind::IncidentOpened => (
            "Incident opened",
            text(d, "kind").unwrap_or_default().replace('_', " "),
            "bad",
        ),
        TimelineKind::IncidentReopened => (
            "Incident reopened",
            "a new failure was reported".into(),
            "bad",
        ),
        TimelineKind::IncidentReturnedToOpen => (
            "Incident back to open",
            text(d, "reason").unwrap_or_default(),
            "warn",
        ),
        TimelineKind::IncidentResolved => {
            let how = match text(d, "resolution").as_deref() {
                Some("manual") if internal => {
                    format!("by hand: {}", text(d, "note").unwrap_or_default())
                }
                Some("manual") => "by the team".into(),
                _ => "a success result arrived".into(),
            };
            ("Incident resolved", how, "ok")
        }
        TimelineKind::ReprocessRequested => {
            let note = if internal { text(d, "note") } else { None };
            (
                "Reprocess requested",
                note.map_or_else(
                    || "a repair callback was queued".into(),
                    |n| format!("note: {n}"),
                ),
                "info",
            )
        }
        TimelineKind::CallbackAttempt => {
            let attempt = text(d, "attempt").unwrap_or_default();
            let status =
                text(d, "status").map_or_else(|| "no response".into(), |s| format!("HTTP {s}"));
            let latency =
                text(d, "latency_ms").map_or_else(String::new, |ms| format!(" in {ms} ms"));
            let mut summary = format!("attempt {attempt}: {status}{latency}");
            if let Some(error) = text(d, "error").filter(|_| internal) {
                summary.push_str(&format!(" ({error})"));
            }
            let tone = match text(d, "outcome").as_deref() {
                Some("delivered") => "ok",
                Some("retry_scheduled") | Some("gave_up") => "warn",
                _ => "info",
            };
            ("Repair callback attempt", summary, tone)
        }
        TimelineKind::CallbackGaveUp => (
            "Repair callback gave up",
            text(d, "reason").unwrap_or_default(),
            "bad",
        ),
        TimelineKind::ReprocessNoResult => {
            ("No result after the repair callback", String::new(), "warn")
        }
        TimelineKind::ProofLinkCreated => ("Proof link created", String::new(), "info"),
        TimelineKind::ProofLinkRevoked => ("Proof link revoked", String::new(), "info"),
    };
    TimelineRow {
        at: entry.at.to_rfc3339(),
        title: title.to_owned(),
        summary,
        actor: if internal {
            entry.actor.to_string()
        } else {
            public_actor(&entry.actor)
        },
        tone,
    }
}
