//! `sendpromptly reprocess`: bulk reprocess from the command line (outage
//! recovery). Like the other CLI commands it works on the database through
//! the [`Store`]: it plans and creates the batch with the same functions as
//! `POST /v1/reprocess-batches`, then follows it with a progress bar. The
//! callbacks themselves are sent by the pacer of a running `sendpromptly
//! serve` on the same database (the batch is durable: it goes on if this
//! command is interrupted).

use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sendpromptly_core::Timestamp;
use sendpromptly_core::model::Actor;
use sendpromptly_core::wire::{ReprocessBatchRequest, ReprocessBatchView};

use super::error::CliError;
use crate::service::batches;
use crate::store::Store;

/// Arguments of `sendpromptly reprocess`.
#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// Project name or `prj_` id.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// Only incidents of this event type (e.g. invoice.paid).
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only incidents in this state: open, reprocessing or resolved.
    #[arg(long)]
    pub state: Option<String>,
    /// Only this kind: missing_result or failed_result.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this provider: stripe, shopify or custom.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only this subject (customer/account).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only incidents opened at or after this RFC 3339 time.
    #[arg(long)]
    pub opened_after: Option<String>,
    /// Only incidents opened before this RFC 3339 time.
    #[arg(long)]
    pub opened_before: Option<String>,
    /// Explicit incident ids instead of a filter (repeatable).
    #[arg(long = "incident")]
    pub incidents: Vec<String>,
    /// Print the plan and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Repair callbacks started per second (default 10).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Callbacks of the batch in flight at most (default 5).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// A note for each incident's timeline.
    #[arg(long)]
    pub note: Option<String>,
    /// Start the batch and exit without following it.
    #[arg(long)]
    pub no_wait: bool,
    /// Cancel this batch (`rpb_…`) instead of starting one.
    #[arg(long, conflicts_with_all = ["dry_run", "incidents", "event_type"])]
    pub cancel: Option<String>,
    /// Print JSON (the plan, or the batch when it ends) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn parsed<T: std::str::FromStr>(
    flag: &str,
    value: Option<&String>,
) -> Result<Option<T>, CliError>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| CliError::new(format!("--{flag}: {e}")))
        })
        .transpose()
}

pub(super) fn time(flag: &str, value: Option<&String>) -> Result<Option<Timestamp>, CliError> {
    value
        .map(|v| {
            Timestamp::parse_rfc3339(v).map_err(|e| {
                CliError::new(format!(
                    "--{flag}: not an RFC 3339 time like 2026-11-22T09:00:00Z ({e})"
                ))
            })
        })
        .transpose()
}

/// Runs `sendpromptly reprocess`.
pub async fn run(
    store: &dyn Store,
    project_id: &str,
    args: ReprocessArgs,
    now: Timestamp,
) -> Result<(), CliError> {
    if let Some(batch_id) = &args.cancel {
        let view = batches::cancel_batch(
            store,
            &crate::service::audit::Who::cli(),
            project_id,
            batch_id,
            now,
        )
        .await?;
        print_end(&view, args.json)?;
        return Ok(());
    }
    let request = ReprocessBatchRequest {
        incident_ids: (!args.incidents.is_empty()).then(|| args.incidents.clone()),
        state: parsed("state", args.state.as_ref())?,
        kind: parsed("kind", args.kind.as_ref())?,
        provider: parsed("provider", args.provider.as_ref())?,
        event_type: args.event_type.clone(),
        subject: args.subject.clone(),
        opened_after: time("opened-after", args.opened_after.as_ref())?,
        opened_before: time("opened-before", args.opened_before.as_ref())?,
        dry_run: args.dry_run,
        rate_per_second: args.rate,
        concurrency: args.concurrency,
        note: args.note.clone(),
    };
    let planned = batches::plan_batch(store, project_id, &request).await?;
    let plan = planned.plan();
    if args.dry_run {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
            return Ok(());
        }
        println!(
            "would send {} repair callbacks ({} incidents selected, {} skipped)",
            plan.to_send, plan.total, plan.skipped
        );
        for (event_type, n) in &plan.by_event_type {
            println!(
                "  {n:>6}  {}",
                if event_type.is_empty() {
                    "(no event type)"
                } else {
                    event_type
                }
            );
        }
        for (reason, n) in &plan.skipped_by_reason {
            println!("  {n:>6}  skipped: {reason}");
        }
        return Ok(());
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
    let actor = Actor::System(format!("cli:{user}"));
    let view = batches::start_batch(
        store,
        project_id,
        &request,
        &planned,
        &actor,
        &crate::service::audit::Who::cli(),
        now,
    )
    .await?;
    eprintln!(
        "started batch {} ({} to send at {}/s, {} at a time); a running `sendpromptly serve` on this database sends it",
        view.id, plan.to_send, view.rate_per_second, view.concurrency
    );
    if args.no_wait {
        println!("{}", view.id);
        return Ok(());
    }
    let view = follow(store, project_id, &view.id).await?;
    print_end(&view, args.json)
}

/// Polls the batch until it is no longer running, with a progress bar.
async fn follow(
    store: &dyn Store,
    project_id: &str,
    batch_id: &str,
) -> Result<ReprocessBatchView, CliError> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} started  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        let view = batches::batch_view(store, project_id, batch_id).await?;
        let c = view.counts;
        bar.set_length(c.total - c.skipped);
        bar.set_position(c.sent + c.cancelled);
        bar.set_message(format!(
            "delivered {}  failed {}  resolved {}  in flight {}",
            c.delivered, c.failed, c.resolved, c.in_flight
        ));
        if view.state != "running" {
            bar.finish();
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_end(view: &ReprocessBatchView, json: bool) -> Result<(), CliError> {
    if json {
        println!("{}", serde_json::to_string_pretty(view)?);
        return Ok(());
    }
    let c = view.counts;
    println!(
        "batch {} {}: sent {}, delivered {}, failed {}, resolved {}, in flight {}, skipped {}, cancelled {}",
        view.id,
        view.state,
        c.sent,
        c.delivered,
        c.failed,
        c.resolved,
        c.in_flight,
        c.skipped,
        c.cancelled
    );
    Ok(())
}
