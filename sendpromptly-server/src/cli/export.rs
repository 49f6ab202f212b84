//! `sendpromptly export incidents`: the incident export (the API's and the
//! console's, [`crate::service::export`]) written to standard output, page
//! by page, in constant memory.

use std::io::Write;

use clap::{Args, Subcommand};
use sendpromptly_core::export::ExportFormat;
use sendpromptly_core::wire::IncidentFilter;

use super::error::CliError;
use super::reprocess::{parsed, time};
use crate::service::export::Export;
use crate::service::incidents::store_filter;
use crate::store::Store;

/// What `sendpromptly export` exports.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Incidents with their full timelines, as JSON Lines or CSV (the
    /// formats are in docs/export.md), newest first, to standard output.
    Incidents(ExportIncidentsArgs),
}

/// Arguments of `sendpromptly export incidents` (the incident list's filters).
#[derive(Debug, Args)]
pub struct ExportIncidentsArgs {
    /// Project name or `prj_` id.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// jsonl or csv.
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// Only incidents in this state: open, reprocessing or resolved.
    #[arg(long)]
    pub state: Option<String>,
    /// Only this kind: missing_result, failed_result or missing_receipt.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this provider: stripe, shopify or custom.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only this event type (e.g. invoice.paid).
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only this subject (customer/account).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only incidents opened at or after this RFC 3339 time.
    #[arg(long)]
    pub opened_after: Option<String>,
    /// Only incidents opened before this RFC 3339 time.
    #[arg(long)]
    pub opened_before: Option<String>,
    /// true: live-mode incidents only; false: test-mode only.
    #[arg(long)]
    pub livemode: Option<String>,
}

/// Runs `sendpromptly export incidents`.
pub async fn run(
    store: &dyn Store,
    project_id: &str,
    args: &ExportIncidentsArgs,
) -> Result<(), CliError> {
    let format: ExportFormat = args
        .format
        .parse()
        .map_err(|e| CliError::new(format!("--format: {e}")))?;
    let filter = IncidentFilter {
        state: parsed("state", args.state.as_ref())?,
        kind: parsed("kind", args.kind.as_ref())?,
        provider: parsed("provider", args.provider.as_ref())?,
        event_type: args.event_type.clone(),
        subject: args.subject.clone(),
        opened_after: time("opened-after", args.opened_after.as_ref())?,
        opened_before: time("opened-before", args.opened_before.as_ref())?,
        livemode: parsed("livemode", args.livemode.as_ref())?,
        limit: None,
        cursor: None,
    };
    let mut export = Export::new(project_id, store_filter(&filter, None), format);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Some(chunk) = export.next_chunk(store).await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}
