//! `sendpromptly reconcile stripe`: backfills on demand what the Stripe
//! reconciler does in the background: lists the project's Stripe events of
//! the last `--since` (at most 30 days, what Stripe keeps) with the
//! project's restricted key and records each as expected, through the same
//! service as the running server (idempotent: events already known are
//! left as they are). `--dry-run` lists what would be recorded and writes
//! nothing. The watermark of the background reconciler is not touched.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::error::CliError;
use crate::app::AppState;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, FileConfig, ServerConfig};
use crate::reconcile::stripe_api::{self, EventsClient};
use crate::reconcile::{
    self, BackfillItem, DryRunSink, ExpectedSink, RestrictedKeys, ServiceSink, SinkOutcome,
    StoredKeys,
};
use crate::store::Store;

/// `sendpromptly reconcile …`.
#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Backfill from Stripe's event list: record every tracked event of the last --since as expected (a missing receipt then opens an incident).
    Stripe(StripeArgs),
    /// Show the background Stripe reconciler's status for a project: watermark, last run and success, last error, the pass in progress and who holds its lease.
    Status {
        /// Project name or `prj_` id.
        #[arg(long, default_value = "default")]
        project: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `sendpromptly reconcile status`.
pub async fn status(store: &dyn Store, project_id: &str, json: bool) -> Result<(), CliError> {
    let state = store.reconcile_state(project_id).await?;
    let at = |t: Option<sendpromptly_core::Timestamp>| t.map(|t| t.to_rfc3339());
    let created = |s: Option<i64>| at(s.map(sendpromptly_core::Timestamp::from_unix_seconds));
    let Some(state) = state else {
        if json {
            println!("{}", json!({"project_id": project_id, "ran": false}));
        } else {
            println!("the Stripe reconciler has not run for this project yet");
        }
        return Ok(());
    };
    let value = json!({
        "project_id": project_id,
        "ran": true,
        "watermark": created(state.watermark),
        "last_run_at": at(state.last_run_at),
        "last_success_at": at(state.last_success_at),
        "last_error_kind": state.last_error_kind,
        "last_error": state.last_error,
        "events_fed": state.events_fed,
        "pass_in_progress": state.pass.as_ref().map(|p| json!({
            "since": created(Some(p.lower)),
            "until": created(Some(p.upper)),
            "after_event": p.cursor,
        })),
        "lease_owner": state.lease_owner,
        "lease_until": at(state.lease_until),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let or_never = |v: Option<String>| v.unwrap_or_else(|| "never".to_owned());
    println!("watermark:        {}", or_never(created(state.watermark)));
    println!("last run:         {}", or_never(at(state.last_run_at)));
    println!("last success:     {}", or_never(at(state.last_success_at)));
    match (&state.last_error_kind, &state.last_error) {
        (Some(kind), Some(error)) => println!("last error:       {kind}: {error}"),
        _ => println!("last error:       none"),
    }
    println!("events fed:       {}", state.events_fed);
    if let Some(pass) = &state.pass {
        println!(
            "pass in progress: {} to {}, after {}",
            or_never(created(Some(pass.lower))),
            or_never(created(Some(pass.upper))),
            pass.cursor.as_deref().unwrap_or("the start")
        );
    }
    if let Some(owner) = &state.lease_owner {
        println!(
            "lease:            {owner} until {}",
            or_never(at(state.lease_until))
        );
    }
    Ok(())
}

/// Arguments of `sendpromptly reconcile stripe`.
#[derive(Debug, Args)]
pub struct StripeArgs {
    /// Project name or `prj_` id.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// How far back to list: a number with a unit, s, m, h or d (e.g. 72h, 7d); at most 30d, Stripe keeps events 30 days.
    #[arg(long, default_value = "72h")]
    pub since: String,
    /// List what would be recorded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// The Stripe API (default https://api.stripe.com).
    #[arg(long, env = "SENDPROMPTLY_STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
}

/// Parses `72h`, `30m`, `7d`, `90s` into a duration.
pub fn parse_since(text: &str) -> Result<Duration, CliError> {
    let bad = || {
        CliError::new(format!(
            "--since `{text}` is not a duration: use a number with a unit, s, m, h or d (e.g. 72h or 7d)"
        ))
    };
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let seconds = number.checked_mul(unit_seconds).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(bad());
    }
    let since = Duration::from_secs(seconds);
    if since > stripe_api::RETENTION {
        return Err(CliError::new(format!(
            "--since {text} reaches back further than Stripe keeps events (30 days); use at most 30d"
        )));
    }
    Ok(since)
}

/// Runs `sendpromptly reconcile stripe`.
pub async fn run(
    store: Arc<dyn Store>,
    project_id: &str,
    args: &StripeArgs,
    file: &FileConfig,
) -> Result<(), CliError> {
    let since = parse_since(&args.since)?;
    let base = match args
        .stripe_api_base
        .clone()
        .or_else(|| file.stripe_api_base.clone())
    {
        Some(base) => config::stripe_api_base(&base)?,
        None => stripe_api::DEFAULT_API_BASE.to_owned(),
    };
    let config = ServerConfig {
        stripe_api_base: base.clone(),
        ..ServerConfig::default()
    };
    let public_url = format!("http://{}", config.listen);
    let state = AppState::new(store, Arc::new(SystemClock), config, public_url);
    let access = StoredKeys(state.clone())
        .stripe_access(project_id)
        .await
        .map_err(|e| CliError::new(e.to_string()))?
        .ok_or_else(|| {
            CliError::new(
                "the project has no Stripe restricted key: set one with Events: Read permission \
                 (PATCH /v1/project `provider_tap.stripe_restricted_key`, or the console's settings)",
            )
        })?;
    let client = EventsClient::new(&base, Duration::from_secs(30))?;
    let now = SystemClock.now().unix_seconds();
    let since_seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let from = (now - since_seconds).max(reconcile::oldest_listable(SystemClock.now()));
    let sink: Box<dyn ExpectedSink> = if args.dry_run {
        Box::new(DryRunSink(state.clone()))
    } else {
        Box::new(ServiceSink(state.clone()))
    };
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(u64::try_from(now - from).unwrap_or(0))
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent}% of the window  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let items = reconcile::backfill(
        &client,
        &access.key,
        &access.types,
        from,
        now,
        project_id,
        sink.as_ref(),
        |oldest, count| {
            bar.set_position(u64::try_from(now - oldest).unwrap_or(0));
            bar.set_message(format!("{count} events"));
        },
    )
    .await?;
    bar.finish_and_clear();
    print(&items, project_id, from, now, args)
}

fn word(outcome: SinkOutcome, dry_run: bool) -> &'static str {
    match (outcome, dry_run) {
        (SinkOutcome::Recorded, true) => "would_record",
        (outcome, _) => outcome.as_str(),
    }
}

fn print(
    items: &[BackfillItem],
    project_id: &str,
    from: i64,
    until: i64,
    args: &StripeArgs,
) -> Result<(), CliError> {
    let count = |o: SinkOutcome| items.iter().filter(|i| i.outcome == o).count();
    let (recorded, known, untracked) = (
        count(SinkOutcome::Recorded),
        count(SinkOutcome::AlreadyKnown),
        count(SinkOutcome::NotTracked),
    );
    let at = |s: i64| sendpromptly_core::Timestamp::from_unix_seconds(s).to_rfc3339();
    if args.json {
        let events: Vec<_> = items
            .iter()
            .map(|i| {
                let mut value = serde_json::to_value(&i.reference).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert("outcome".into(), word(i.outcome, args.dry_run).into());
                }
                value
            })
            .collect();
        let recorded_key = if args.dry_run {
            "would_record"
        } else {
            "recorded"
        };
        let out = json!({
            "project_id": project_id,
            "dry_run": args.dry_run,
            "since": at(from),
            "until": at(until),
            "listed": items.len(),
            recorded_key: recorded,
            "already_known": known,
            "not_tracked": untracked,
            "events": events,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for item in items {
        let r = &item.reference;
        let amount = match (r.amount, &r.currency) {
            (Some(amount), Some(currency)) => format!("{amount} {currency}"),
            (Some(amount), None) => amount.to_string(),
            _ => "-".to_owned(),
        };
        println!(
            "{:<14} {}  {}  {}  {}  {}",
            word(item.outcome, args.dry_run),
            r.event_id,
            r.event_type,
            r.occurred_at
                .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
            amount,
            r.subject.as_deref().unwrap_or("-"),
        );
    }
    let verb = if args.dry_run {
        "would be recorded"
    } else {
        "recorded"
    };
    println!(
        "{} Stripe events from {} to {}: {recorded} {verb}, {known} already known, {untracked} not tracked",
        items.len(),
        at(from),
        at(until),
    );
    Ok(())
}
