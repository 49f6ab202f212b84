//! `sendpromptly stats`: time-to-effect analytics and SLO status in the
//! terminal (issue #25), from [`crate::service::stats::report`]; and
//! `sendpromptly stats slos`, which sets a project's SLOs.

use std::sync::Arc;

use clap::{Args, Subcommand};
use sendpromptly_core::wire::{DurationStats, ProjectUpdate, SloObjective, StatsQuery};

use super::error::CliError;
use crate::app::AppState;
use crate::clock::SystemClock;
use crate::config::ServerConfig;
use crate::store::Store;

/// `sendpromptly stats`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StatsArgs {
    /// Project name or `prj_` id.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// How far back: 24h, 7d, 30d, Nd or Nh.
    #[arg(long, default_value = "7d")]
    pub window: String,
    /// Only this event type.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Print the `GET /v1/stats` JSON.
    #[arg(long)]
    pub json: bool,
    /// `slos`: set the SLOs instead of printing.
    #[command(subcommand)]
    pub command: Option<StatsCommand>,
}

/// `sendpromptly stats …` subcommands.
#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Replace a project's SLOs with a JSON list, e.g.
    /// `[{"event_type": "invoice.paid", "objective_percent": 99.5, "threshold_seconds": 300}]`
    /// (`-` reads it from standard input; `[]` removes them).
    Slos {
        /// Project name or `prj_` id.
        #[arg(long, default_value = "default")]
        project: String,
        /// The SLO list as JSON.
        #[arg(long)]
        set: String,
    },
}

fn state(store: Arc<dyn Store>) -> AppState {
    let config = ServerConfig::default();
    let public_url = format!("http://{}", config.listen);
    AppState::new(store, Arc::new(SystemClock), config, public_url)
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.0} ms"))
}

fn line(label: &str, d: &DurationStats) -> String {
    format!(
        "{label:<28} {:>8} {:>12} {:>12} {:>12}",
        d.count,
        ms(d.p50_ms),
        ms(d.p95_ms),
        ms(d.p99_ms)
    )
}

/// Prints the report.
pub async fn run(
    store: Arc<dyn Store>,
    project_id: &str,
    args: &StatsArgs,
) -> Result<(), CliError> {
    let query = StatsQuery {
        window: Some(args.window.clone()),
        event_type: args.event_type.clone(),
        ..StatsQuery::default()
    };
    let report = crate::service::stats::report(&state(store), project_id, &query).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} to {} ({})",
        report.from.to_rfc3339(),
        report.to.to_rfc3339(),
        args.window
    );
    println!(
        "{:<28} {:>8} {:>12} {:>12} {:>12}",
        "", "count", "p50", "p95", "p99"
    );
    let o = &report.overall;
    println!("{}", line("time to effect", &o.time_to_effect));
    println!("{}", line("delivery lag", &o.delivery_lag));
    println!("{}", line("time to repair", &o.time_to_repair));
    for t in &report.by_event_type {
        println!(
            "{}",
            line(&format!("  {}", t.event_type), &t.figures.time_to_effect)
        );
    }
    let r = &o.repairs;
    println!(
        "incidents: {} opened, {} repaired by Reprocess, {} resolved by hand, {} otherwise, {} still open",
        r.opened, r.repaired_by_reprocess, r.resolved_manually, r.resolved_otherwise, r.still_open
    );
    for s in &report.slos {
        let pct = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}%"));
        println!(
            "SLO {}: {}% within {} s over {} d: attainment {} ({} of {} due), error budget left {}, burn rate 1h {:.1}x{}",
            s.objective.event_type,
            s.objective.objective_percent,
            s.objective.threshold_seconds,
            s.objective.window_days,
            pct(s.attainment_percent),
            s.good,
            s.due,
            pct(s.error_budget_left_percent),
            s.burn_rate_1h,
            if s.burning { " — BURNING" } else { "" }
        );
    }
    Ok(())
}

/// Replaces a project's SLOs (validated like `PATCH /v1/project`'s `slos`).
pub async fn set_slos(store: Arc<dyn Store>, project_id: &str, json: &str) -> Result<(), CliError> {
    let text = if json == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        json.to_owned()
    };
    let slos: Vec<SloObjective> = serde_json::from_str(&text).map_err(|e| {
        CliError::new(format!(
            "--set is not a JSON list of SLOs ({e}); e.g. [{{\"event_type\": \"invoice.paid\", \"objective_percent\": 99.5, \"threshold_seconds\": 300}}]"
        ))
    })?;
    let count = slos.len();
    let update = ProjectUpdate {
        slos: Some(slos),
        ..ProjectUpdate::default()
    };
    crate::service::project::update(
        &state(store),
        &crate::service::audit::Who::cli(),
        project_id,
        update,
    )
    .await?;
    println!("{count} SLO(s) set; see them with `sendpromptly stats`");
    Ok(())
}
