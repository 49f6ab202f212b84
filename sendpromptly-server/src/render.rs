//! Turning timeline entries into rows a person reads: the one place that
//! describes entries, shared by the proof page and the console (through the
//! `templates/timeline.html` partial), so both describe events the same way.
//!
//! Repair-callback attempts (and a give-up) are grouped under the
//! "Reprocess requested" row of their `reprocess_id`, so each reprocess
//! reads as one step with its delivery attempts inside it.

use sendpromptly_core::model::{Actor, TimelineEntry, TimelineKind};
use serde_json::Value;

/// One rendered timeline row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineRow {
    /// RFC 3339 time.
    pub at: String,
    /// The time for people: `2026-11-22 10:00:05 UTC`.
    pub at_display: String,
    /// The entry kind's wire name (e.g. `callback.attempt`), for styling and tests.
    pub kind: String,
    /// A short title, e.g. "Incident opened".
    pub title: String,
    /// One line of specifics.
    pub summary: String,
    /// Who acted (for the public page: "the app", "the team", "SendPromptly").
    pub actor: String,
    /// `ok`, `bad`, `warn` or `info`: the row's colour.
    pub tone: &'static str,
    /// Internal only: the first part of a callback response body.
    pub excerpt: Option<String>,
    /// Rows grouped under this one (a reprocess's callback attempts).
    pub children: Vec<TimelineRow>,
    /// Internal only: the entry's trace context (a traced signal, or a
    /// repair callback that continued its trace).
    pub trace: Option<TraceLink>,
}

/// A timeline entry's trace, with the project's link to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLink {
    /// The trace id, 32 hex digits.
    pub trace_id: String,
    /// The span id the entry is about.
    pub span_id: String,
    /// The project's trace URL template filled in; none without a template.
    pub url: Option<String>,
}

/// Links each traced row (and child row) to its trace with the project's
/// `template` (see [`sendpromptly_core::trace::trace_url`]).
pub fn link_traces(mut rows: Vec<TimelineRow>, template: Option<&str>) -> Vec<TimelineRow> {
    fn fill(row: &mut TimelineRow, template: &str) {
        if let Some(trace) = row.trace.as_mut() {
            trace.url = Some(sendpromptly_core::trace::trace_url(
                template,
                &trace.trace_id,
                &trace.span_id,
            ));
        }
        for child in &mut row.children {
            fill(child, template);
        }
    }
    if let Some(template) = template {
        for row in &mut rows {
            fill(row, template);
        }
    }
    rows
}

/// Formats a time for people, in UTC to the second.
pub fn display_time(at: sendpromptly_core::Timestamp) -> String {
    at.to_datetime().format("%Y-%m-%d %H:%M:%S UTC").to_string()
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
        Actor::System(_) | Actor::Other(_) => "SendPromptly".into(),
    }
}

/// Rows for `entries`. `internal` (console) shows who acted and notes,
/// error texts and response excerpts; the public proof page shows neither.
///
/// Callback attempts and give-ups whose `reprocess_id` matches an earlier
/// "Reprocess requested" entry become that row's `children`; the rest stay
/// top-level, in timeline order. Alert attempts are shown only internally.
pub fn timeline_rows(entries: &[TimelineEntry], internal: bool) -> Vec<TimelineRow> {
    let mut rows: Vec<TimelineRow> = Vec::with_capacity(entries.len());
    // reprocess_id -> index of its "Reprocess requested" row in `rows`.
    let mut parents: Vec<(String, usize)> = Vec::new();
    for entry in entries {
        // Alerts are the team's business, not the customer's.
        // Nor are kinds this version does not know (written by a newer one).
        if !internal && (entry.kind == TimelineKind::AlertAttempt || !entry.kind.is_known()) {
            continue;
        }
        let rendered = row(entry, internal);
        let reprocess_id = text(&entry.detail, "reprocess_id");
        match &entry.kind {
            TimelineKind::ReprocessRequested => {
                if let Some(id) = reprocess_id {
                    parents.push((id, rows.len()));
                }
                rows.push(rendered);
            }
            TimelineKind::CallbackAttempt | TimelineKind::CallbackGaveUp => {
                let parent = reprocess_id
                    .and_then(|id| parents.iter().rev().find(|(p, _)| *p == id).map(|p| p.1));
                match parent {
                    Some(index) => rows[index].children.push(rendered),
                    None => rows.push(rendered),
                }
            }
            _ => rows.push(rendered),
        }
    }
    rows
}

fn row(entry: &TimelineEntry, internal: bool) -> TimelineRow {
    let d = &entry.detail;
    let (title, summary, tone) = match &entry.kind {
        TimelineKind::ReceiptRecorded => (
            "Receipt: event accepted by the app",
            text(d, "deadline_at").map_or_else(String::new, |due| {
                let due =
                    sendpromptly_core::Timestamp::parse_rfc3339(&due).map_or(due, display_time);
                format!("result due by {due}")
            }),
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
                Some("receipt_arrived") => "the app's receipt arrived".into(),
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
        TimelineKind::ProviderCopyRecorded => {
            let via = match text(d, "learned_via").as_deref() {
                Some("reconciler") => "found by the reconciler",
                _ => "seen by the provider tap",
            };
            let mut summary = via.to_owned();
            if internal {
                summary.push_str(&copy_facts(d));
            }
            ("Provider sent the event", summary, "info")
        }
        TimelineKind::ProviderCopyDuplicate => (
            "Provider copy again",
            text(d, "note").unwrap_or_default(),
            "info",
        ),
        TimelineKind::ReceiptGracePassed => (
            "No receipt from the app",
            "the receipt grace passed".to_owned(),
            "bad",
        ),
        TimelineKind::ProofLinkCreated => ("Proof link created", String::new(), "info"),
        TimelineKind::ProofLinkRevoked => ("Proof link revoked", String::new(), "info"),
        TimelineKind::AlertAttempt => {
            let channel = text(d, "channel").unwrap_or_default();
            let status = text(d, "status").map_or_else(
                || {
                    if text(d, "outcome").as_deref() == Some("delivered") {
                        "sent".into()
                    } else {
                        "not sent".into()
                    }
                },
                |s| format!("HTTP {s}"),
            );
            let mut summary = format!(
                "{channel} alert, attempt {}: {status}",
                text(d, "attempt").unwrap_or_default()
            );
            if let Some(error) = text(d, "error").filter(|_| internal) {
                summary.push_str(&format!(" ({error})"));
            }
            let tone = match text(d, "outcome").as_deref() {
                Some("delivered") => "ok",
                _ => "warn",
            };
            ("Alert attempt", summary, tone)
        }
        // Written by a newer version (after a downgrade): shown by name.
        TimelineKind::Other(name) => ("Entry", name.clone(), "info"),
    };
    let excerpt = if internal && entry.kind == TimelineKind::CallbackAttempt {
        text(d, "response_excerpt").filter(|e| !e.is_empty())
    } else {
        None
    };
    TimelineRow {
        at: entry.at.to_rfc3339(),
        at_display: display_time(entry.at),
        kind: entry.kind.as_str().to_owned(),
        title: title.to_owned(),
        summary,
        actor: if internal {
            entry.actor.to_string()
        } else {
            public_actor(&entry.actor)
        },
        tone,
        excerpt,
        children: Vec::new(),
        trace: internal
            .then(|| sendpromptly_core::trace::TraceContextView::from_detail(d))
            .flatten()
            .map(|t| TraceLink {
                trace_id: t.trace_id,
                span_id: t.span_id,
                url: None,
            }),
    }
}

/// `: invoice.paid, cus_…, 1999 USD (test mode)` from a provider copy's detail.
fn copy_facts(d: &sendpromptly_core::model::JsonObject) -> String {
    let mut parts = Vec::new();
    if let Some(event_type) = text(d, "event_type") {
        parts.push(event_type);
    }
    if let Some(subject) = text(d, "subject") {
        parts.push(subject);
    }
    if let (Some(amount), Some(currency)) = (text(d, "amount"), text(d, "currency")) {
        parts.push(format!("{amount} {currency} (minor units)"));
    }
    if d.get("livemode") == Some(&serde_json::Value::Bool(false)) {
        parts.push("test mode".to_owned());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendpromptly_core::Timestamp;
    use serde_json::json;

    fn entry(kind: TimelineKind, actor: Actor, detail: serde_json::Value) -> TimelineEntry {
        TimelineEntry::new(
            Timestamp::from_unix_seconds(1_800_000_000),
            kind,
            actor,
            detail,
        )
    }

    #[test]
    fn attempts_are_grouped_under_their_reprocess() {
        let console = Actor::Console("alice@example.com".into());
        let dispatcher = Actor::System("dispatcher".into());
        let entries = vec![
            entry(
                TimelineKind::IncidentOpened,
                Actor::System("sweeper".into()),
                json!({"kind": "missing_result"}),
            ),
            entry(
                TimelineKind::ReprocessRequested,
                console.clone(),
                json!({"reprocess_id": "rep_1", "note": "retry"}),
            ),
            entry(
                TimelineKind::CallbackAttempt,
                dispatcher.clone(),
                json!({"reprocess_id": "rep_1", "attempt": 1, "status": 503, "latency_ms": 12, "outcome": "retry_scheduled", "response_excerpt": "busy"}),
            ),
            entry(
                TimelineKind::CallbackAttempt,
                dispatcher.clone(),
                json!({"reprocess_id": "rep_1", "attempt": 2, "status": 200, "latency_ms": 9, "outcome": "delivered"}),
            ),
            entry(
                TimelineKind::CallbackAttempt,
                dispatcher,
                json!({"reprocess_id": "rep_unknown", "attempt": 1}),
            ),
            entry(
                TimelineKind::IncidentResolved,
                console,
                json!({"resolution": "success_result"}),
            ),
        ];
        let rows = timeline_rows(&entries, true);
        let kinds: Vec<_> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "incident.opened",
                "reprocess.requested",
                "callback.attempt",
                "incident.resolved"
            ]
        );
        let reprocess = &rows[1];
        assert_eq!(reprocess.actor, "console:alice@example.com");
        assert_eq!(reprocess.summary, "note: retry");
        assert_eq!(reprocess.children.len(), 2);
        assert_eq!(
            reprocess.children[0].summary,
            "attempt 1: HTTP 503 in 12 ms"
        );
        assert_eq!(reprocess.children[0].excerpt.as_deref(), Some("busy"));
        assert_eq!(reprocess.children[1].tone, "ok");
        assert_eq!(rows[0].at_display, "2027-01-15 08:00:00 UTC");

        let public = timeline_rows(&entries, false);
        assert_eq!(public[1].actor, "the team");
        assert_eq!(public[1].summary, "a repair callback was queued");
        assert_eq!(public[1].children[0].excerpt, None);
    }
}
