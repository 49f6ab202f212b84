//! `sendpromptly verify-timelines`: checks every timeline's hash chain in
//! the database (streamed, page by page), naming each broken entry.

use clap::Args;
use sendpromptly_core::Timestamp;
use sendpromptly_core::chain::BreakReason;

use super::error::CliError;
use crate::service::chain::verify_all;
use crate::store::Store;

/// Arguments of `sendpromptly verify-timelines`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this project (name or `prj_` id); default: every project.
    #[arg(long)]
    pub project: Option<String>,
    /// Print one JSON object per broken entry, then a summary object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sendpromptly verify-timelines`; fails (exit status 1) when a chain
/// is broken.
pub async fn run(store: &dyn Store, project_id: Option<&str>, json: bool) -> Result<(), CliError> {
    let mut out = Vec::new();
    let summary = verify_all(store, project_id, |event, verdict| {
        for b in &verdict.breaks {
            let at = b
                .at_millis
                .map(|at| Timestamp::from_unix_millis(at).to_rfc3339());
            if json {
                let line = serde_json::json!({
                    "project_id": event.project_id,
                    "provider": event.provider,
                    "event_id": event.event_id,
                    "incident_id": event.incident_id,
                    "position": b.position,
                    "seq": b.seq,
                    "at": at,
                    "reason": reason_code(&b.why),
                    "why": b.why.to_string(),
                });
                out.push(line.to_string());
            } else {
                let incident = event
                    .incident_id
                    .as_deref()
                    .map(|i| format!(" (incident {i})"))
                    .unwrap_or_default();
                let entry = match (b.seq, at) {
                    (Some(seq), Some(at)) => {
                        format!("entry {} (seq {seq}, recorded {at})", b.position)
                    }
                    _ => format!("after entry {}", b.position - 1),
                };
                out.push(format!(
                    "BROKEN {}/{} in {}{incident}: {entry}: {}",
                    event.provider, event.event_id, event.project_id, b.why
                ));
            }
        }
        // Printed as found: constant memory however many breaks there are.
        for line in out.drain(..) {
            println!("{line}");
        }
    })
    .await?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} events, {} entries: {} verified, {} recorded before chaining (not covered), {} broken events",
            summary.events,
            summary.entries,
            summary.verified,
            summary.unchained,
            summary.broken_events
        );
    }
    if summary.broken_events > 0 {
        return Err(CliError::new(format!(
            "{} timeline chain breaks in {} events: the database was edited outside SendPromptly \
             (see docs/tamper-evidence.md)",
            summary.breaks, summary.broken_events
        )));
    }
    Ok(())
}

/// A stable code for `why`, for `--json`.
fn reason_code(why: &BreakReason) -> &'static str {
    match why {
        BreakReason::ContentMismatch => "content_mismatch",
        BreakReason::MissingHash => "missing_hash",
        BreakReason::MalformedHash => "malformed_hash",
        BreakReason::DetailNotJson => "detail_not_json",
        BreakReason::HeadMismatch => "head_mismatch",
    }
}
