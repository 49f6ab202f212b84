//! The `sendpromptly` command line: argument parsing and the commands.
//! `reprocess` (bulk reprocess) lives in [`reprocess`]; [`CliError`], the
//! one place where errors become the operator's words and an exit status,
//! in `error.rs`. The commands work on the [`Store`] and the service layer
//! ([`crate::service`]), never on the HTTP API's modules.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use sendpromptly_core::Timestamp;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, GlobalArgs, LogFormat, ServeArgs};
use crate::provision;
use crate::secrets::{self, Keyring};
use crate::server;
use crate::store::postgres::{PoolSettings, PostgresStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

pub mod chain;
mod error;
pub mod export;
pub mod reconcile;
pub mod reprocess;
pub mod stats;
pub mod users;

pub use error::CliError;

/// SendPromptly: know when a paid webhook's business effect was never applied.
#[derive(Debug, Parser)]
#[command(name = "sendpromptly", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: HTTP API, deadline sweeper, repair-callback dispatcher.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage console users.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Bulk-reprocess incidents after an outage: plan (--dry-run), start, follow with a progress bar.
    Reprocess(reprocess::ReprocessArgs),
    /// A development repair endpoint: verifies and prints repair callbacks (like `stripe listen`).
    Listen(crate::listen::ListenArgs),
    /// Alert channels.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Reconcile with a provider's own event list (backfill).
    #[command(subcommand)]
    Reconcile(reconcile::ReconcileCommand),
    /// Print a project's audit log (settings, keys, secrets, proof links,
    /// bulk actions), newest first.
    Audit(AuditArgs),
    /// The provider tap (never-received webhooks): its URLs, secrets (shown
    /// as hints only), tracked event types and receipt grace.
    #[command(subcommand, name = "provider-tap")]
    ProviderTap(ProviderTapCommand),
    /// Check every timeline's hash chain (tamper evidence); exits 1 naming
    /// each broken entry (event, seq, why).
    #[command(name = "verify-timelines")]
    VerifyTimelines(chain::VerifyArgs),
    /// Export data: `export incidents --format jsonl|csv [filters] > file`.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Time to effect (p50/p95/p99), delivery lag, time to repair and SLO
    /// status over a window; `stats slos --set` sets the SLOs.
    Stats(stats::StatsArgs),
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    /// Project name or `prj_` id.
    #[arg(long, default_value = "default")]
    project: String,
    /// Only entries at or after this time (RFC 3339, e.g. 2026-01-31T00:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Only this action, e.g. `project.update`.
    #[arg(long)]
    action: Option<String>,
    /// Only this actor, e.g. `cli`, `user:ops@example.com`, `api_key:key_…`.
    #[arg(long)]
    actor: Option<String>,
    /// At most this many entries (default 100).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON Lines (one entry per line, as `GET /v1/audit-log` shows it).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ProviderTapCommand {
    /// Print a project's provider tap settings as JSON: the URLs to paste
    /// into Stripe and Shopify (from --public-url), hints of the secrets,
    /// the tracked event types and the receipt grace.
    Show {
        /// Project name or `prj_` id.
        #[arg(long, default_value = "default")]
        project: String,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
    /// Change a project's provider tap settings, validated like `PATCH
    /// /v1/project`'s `provider_tap` object, e.g. `{"stripe_endpoint_secrets":
    /// ["whsec_…"], "receipt_grace_seconds": 900}`; `-` reads it from
    /// standard input (keeps secrets out of the shell history).
    Set {
        /// Project name or `prj_` id.
        #[arg(long, default_value = "default")]
        project: String,
        /// The change as a JSON object, or `-` for standard input.
        #[arg(long)]
        settings: String,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Print a project's alert channels (the `alert_channels` JSON list).
    Show {
        /// Project name or `prj_` id.
        #[arg(long, default_value = "default")]
        project: String,
    },
    /// Replace a project's alert channels, validated like `PATCH
    /// /v1/project`: a JSON list such as
    /// `[{"type": "email", "to": "ops@example.com"}, {"type": "slack",
    /// "webhook_url": "https://hooks.slack.com/…", "on": ["incident.opened",
    /// "incident.resolved"]}]`; `-` reads it from standard input; `[]` removes
    /// them all. URLs are checked with the `serve` settings
    /// (--allow-private-urls) from the same flags, environment and config file.
    Set {
        /// Project name or `prj_` id.
        #[arg(long, default_value = "default")]
        project: String,
        /// The channels as a JSON list, or `-` for standard input.
        #[arg(long)]
        channels: String,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
    /// Send a clearly marked test alert to a project's alert channels now and
    /// print each outcome (exit status 1 if any channel failed). Takes the
    /// `serve` settings (SMTP, --allow-private-urls, --public-url) from the
    /// same flags, environment and config file.
    Test {
        /// Project name or `prj_` id.
        #[arg(long, default_value = "default")]
        project: String,
        /// Only this channel (0-based index into alert_channels).
        #[arg(long)]
        channel: Option<usize>,
        /// Print the outcomes as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a project with an API key and a signing secret (shown once).
    Create {
        /// Unique project name.
        #[arg(long)]
        name: String,
        /// Where repair callbacks are POSTed. Checked like `PATCH
        /// /v1/project` with the `serve` settings (--allow-private-urls) from
        /// the same flags, environment and config file: a URL `serve` would
        /// refuse to call is refused here.
        #[arg(long)]
        repair_url: Option<String>,
        /// Print `{"project_id", "api_key", "ingest_api_key", "signing_secret"}`
        /// as JSON (`api_key` is the admin key).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
    /// List projects.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or set the trace URL template that links timeline entries to
    /// their trace, e.g. `https://jaeger.example.com/trace/{trace_id}`
    /// (http or https, with `{trace_id}`, optionally `{span_id}`).
    TraceUrl {
        /// Project name or `prj_` id.
        #[arg(long, default_value = "default")]
        project: String,
        /// The new template; without it (and without --clear) prints the current one.
        #[arg(long, conflicts_with = "clear")]
        template: Option<String>,
        /// Remove the template.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an API key for a project (shown once).
    Create {
        /// Project name or `prj_` id.
        #[arg(long)]
        project: String,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        /// What the key may do, comma-separated: ingest (receipts and
        /// results: for webhook handlers), read, operate, admin (implies
        /// all). See docs/access-control.md.
        #[arg(long, default_value = "ingest")]
        scope: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a project's API keys (ids and prefixes only), their scopes, last
    /// use, and which are over-privileged for what they are used for.
    List {
        /// Project name or `prj_` id.
        #[arg(long)]
        project: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key at once.
    Revoke {
        /// Project name or `prj_` id.
        #[arg(long)]
        project: String,
        /// The `key_` id.
        #[arg(long)]
        key_id: String,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Work still running (a stuck database call) does not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.status)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SENDPROMPTLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Builds the keyring from the key settings. With no key configured, an
/// SQLite database gets a key file beside it (created on first use, mode
/// 0600, logged); PostgreSQL is refused with an error naming the settings.
pub fn load_keyring(
    keys: &config::SecretKeyConfig,
    database_url: &str,
) -> Result<Arc<Keyring>, CliError> {
    let current = match &keys.current {
        config::SecretKeySource::Value(key) => *key,
        config::SecretKeySource::File(path) => secrets::read_key_file(path)?,
        config::SecretKeySource::Unset if database_url.starts_with("sqlite:") => {
            match secrets::key_file_beside(database_url) {
                Some(path) => {
                    let (key, created) = secrets::read_or_create_key_file(&path)?;
                    if created {
                        tracing::warn!(
                            path = %path.display(),
                            "no secret key configured: generated a new one (mode 0600); it \
                             encrypts the signing secrets, so back it up with the database \
                             (or set --secret-key-file)"
                        );
                    }
                    key
                }
                // An in-memory database dies with the process; so may its key.
                None => {
                    let mut key = [0u8; secrets::MASTER_KEY_BYTES];
                    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
                    key
                }
            }
        }
        config::SecretKeySource::Unset => return Err(secrets::SecretError::KeyRequired.into()),
    };
    let previous: Vec<_> = keys.previous.iter().map(|k| k.0).collect();
    Ok(Arc::new(Keyring::new(&current, &previous)))
}

/// Opens (without migrating) the store named by a database URL, sealing
/// secrets with `keyring`.
pub async fn open_store_with(
    database_url: &str,
    pool: PoolSettings,
    keyring: Arc<Keyring>,
) -> Result<Arc<dyn Store>, CliError> {
    if database_url.starts_with("sqlite:") {
        let store = SqliteStore::connect(database_url).await?;
        return Ok(Arc::new(store.with_keyring(keyring)));
    }
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let store = PostgresStore::connect_with(database_url, pool)
            .await
            .map_err(|err| {
                CliError::new(format!(
                    "cannot connect to PostgreSQL at {}: {}",
                    redact_password(database_url),
                    match err {
                        StoreError::Database(db) => db.to_string(),
                        other => other.to_string(),
                    }
                ))
            })?;
        return Ok(Arc::new(store.with_keyring(keyring)));
    }
    Err(CliError::new(format!(
        "unsupported database URL `{database_url}`: use sqlite://FILE or postgres://…"
    )))
}

/// Seals plaintext signing secrets and re-encrypts those sealed with a
/// previous key; a secret no configured key opens stops the start.
pub async fn reseal_secrets(store: &dyn Store) -> Result<(), CliError> {
    let report = store.reseal_signing_secrets().await.map_err(|err| {
        CliError::new(format!(
            "cannot decrypt the stored signing secrets: {err} (see --secret-key, \
             --secret-key-file and --previous-secret-keys in docs/configuration.md)"
        ))
    })?;
    if report.sealed_plaintext > 0 {
        tracing::info!(
            secrets = report.sealed_plaintext,
            "signing secrets stored in plaintext are now encrypted"
        );
    }
    if report.resealed > 0 {
        tracing::info!(
            secrets = report.resealed,
            "signing secrets re-encrypted with the current secret key"
        );
    }
    Ok(())
}

/// The URL with its password (if any) replaced by `***`, for messages.
fn redact_password(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "the configured URL".to_owned(),
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let file = config::load_file(&cli.global)?;
    let common = config::resolve_common(&cli.global, &file)?;
    init_logging(common.log_format);
    if let Command::Listen(args) = &cli.command {
        return crate::listen::run(args)
            .await
            .map_err(|e| CliError::new(e.to_string()));
    }
    let keyring = load_keyring(&common.secret_key, &common.database_url)?;
    let store = open_store_with(&common.database_url, common.pool, keyring).await?;
    store.migrate().await?;
    reseal_secrets(store.as_ref()).await?;
    let now = SystemClock.now();
    match cli.command {
        Command::Serve(args) => serve(store, config::resolve_server(&args, &file)?, now).await,
        Command::Migrate => {
            println!("database is up to date: {}", common.database_url);
            Ok(())
        }
        Command::Project(command) => project(store.as_ref(), command, &file, now).await,
        Command::Key(command) => key(store.as_ref(), command, now).await,
        Command::Audit(args) => audit(store.as_ref(), args).await,
        Command::Listen(_) => Ok(()),
        Command::Reprocess(args) => {
            let project = resolve_project(store.as_ref(), &args.project).await?;
            reprocess::run(store.as_ref(), &project.id, args, now).await
        }
        Command::Alerts(AlertsCommand::Show { project }) => {
            let project = resolve_project(store.as_ref(), &project).await?;
            println!("{}", serde_json::to_string_pretty(&project.alert_channels)?);
            Ok(())
        }
        Command::Alerts(AlertsCommand::Set {
            project,
            channels,
            serve,
        }) => {
            let project = resolve_project(store.as_ref(), &project).await?;
            let config = config::resolve_server(&serve, &file)?;
            alerts_set(store.as_ref(), config.outbound, &project.id, &channels).await
        }
        Command::Alerts(AlertsCommand::Test {
            project,
            channel,
            json,
            serve,
        }) => {
            let project = resolve_project(store.as_ref(), &project).await?;
            let config = config::resolve_server(&serve, &file)?;
            alerts_test(store, config, &project.id, channel, json).await
        }
        Command::Reconcile(reconcile::ReconcileCommand::Stripe(args)) => {
            let project = resolve_project(store.as_ref(), &args.project).await?;
            reconcile::run(store, &project.id, &args, &file).await
        }
        Command::Stats(args) => match &args.command {
            Some(stats::StatsCommand::Slos { project, set }) => {
                let project = resolve_project(store.as_ref(), project).await?;
                stats::set_slos(store, &project.id, set).await
            }
            None => {
                let project = resolve_project(store.as_ref(), &args.project).await?;
                stats::run(store, &project.id, &args).await
            }
        },
        Command::Reconcile(reconcile::ReconcileCommand::Status { project, json }) => {
            let project = resolve_project(store.as_ref(), &project).await?;
            reconcile::status(store.as_ref(), &project.id, json).await
        }
        Command::ProviderTap(ProviderTapCommand::Show { project, serve }) => {
            let project = resolve_project(store.as_ref(), &project).await?;
            let config = config::resolve_server(&serve, &file)?;
            provider_tap(store, config, &project.id, None).await
        }
        Command::ProviderTap(ProviderTapCommand::Set {
            project,
            settings,
            serve,
        }) => {
            let project = resolve_project(store.as_ref(), &project).await?;
            let config = config::resolve_server(&serve, &file)?;
            provider_tap(store, config, &project.id, Some(&settings)).await
        }
        Command::Export(export::ExportCommand::Incidents(args)) => {
            let project = resolve_project(store.as_ref(), &args.project).await?;
            export::run(store.as_ref(), &project.id, &args).await
        }
        Command::VerifyTimelines(args) => {
            let project = match &args.project {
                Some(p) => Some(resolve_project(store.as_ref(), p).await?.id),
                None => None,
            };
            chain::run(store.as_ref(), project.as_deref(), args.json).await
        }
        Command::User(command) => {
            users::run(store.as_ref(), command, file.public_url.as_deref(), now).await
        }
    }
}

async fn serve(
    store: Arc<dyn Store>,
    config: config::ServerConfig,
    now: Timestamp,
) -> Result<(), CliError> {
    let first = provision::first_start(store.as_ref(), now).await?;
    let running = server::start(store, Arc::new(SystemClock), config).await?;
    let url = running.state.public_url("");
    if first.project.is_some() || first.admin.is_some() {
        let mut out = String::from(
            "\nSendPromptly set up this database. These secrets are shown ONCE; store them now.\n",
        );
        if let Some(project) = &first.project {
            out.push_str(&format!(
                "  project:         {} ({})\n  API key:         {}\n  ingest API key:  {}\n  signing secret:  {}\n",
                project.name,
                project.project_id,
                project.api_key,
                project.ingest_api_key,
                project.signing_secret
            ));
        }
        if let Some((email, password)) = &first.admin {
            out.push_str(&format!("  console login:   {email} / {password}\n"));
        }
        out.push_str(&format!("  console:         {url}/\n"));
        if first.project.is_some() {
            // Notes on lines of their own: scripts read the value after
            // `API key:` to the end of its line.
            out.push_str(
                "The API key is `admin` (settings, keys, audit log): keep it off app servers.\n\
                 Give your webhook handler the ingest API key: it sends receipts and results only.\n",
            );
        }
        println!("{out}");
    }
    println!("SendPromptly is listening on {url} (Ctrl-C to stop)");
    let _ = std::io::stdout().flush();
    running
        .run_until_signal()
        .await
        .map_err(|fatal| CliError::temporary_failure(fatal.to_string()))
}

/// Replaces a project's alert channels with `channels` (JSON, or `-` for
/// standard input), validated by the API's own settings check.
async fn alerts_set(
    store: &dyn Store,
    outbound: crate::outbound::OutboundPolicy,
    project_id: &str,
    channels: &str,
) -> Result<(), CliError> {
    let text = if channels == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        channels.to_owned()
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::new(format!("--channels is not valid JSON: {e}")))?;
    let update = sendpromptly_core::wire::ProjectUpdate {
        alert_channels: Some(value),
        ..Default::default()
    };
    let patch = crate::service::project::patch_from_update(outbound, update)?;
    let before = resolve_project(store, project_id).await?;
    let change = crate::service::audit::Change {
        project_id: project_id.to_owned(),
        action: "project.update",
        target: project_id.to_owned(),
        before: Some(serde_json::json!({ "alert_channels": before.alert_channels })),
        after: Some(serde_json::json!({ "alert_channels": patch.alert_channels })),
    };
    let write = store.update_project(project_id, patch);
    let who = crate::service::audit::Who::cli();
    let project =
        crate::service::audit::record(store, &who, change, SystemClock.now(), write).await?;
    let count = project.alert_channels.as_array().map_or(0, Vec::len);
    println!(
        "project {} now has {count} alert channel(s); try them with `sendpromptly alerts test --project {}`",
        project.name, project.name
    );
    Ok(())
}

/// Prints a project's provider tap settings, after applying `change` (JSON,
/// or `-` for standard input) when given.
async fn provider_tap(
    store: Arc<dyn Store>,
    config: config::ServerConfig,
    project_id: &str,
    change: Option<&str>,
) -> Result<(), CliError> {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let state = crate::app::AppState::new(store, Arc::new(SystemClock), config, public_url);
    let view = match change {
        Some(change) => {
            let text = if change == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                change.to_owned()
            };
            let update: sendpromptly_core::wire::ProviderTapUpdate = serde_json::from_str(&text)
                .map_err(|e| {
                    CliError::new(format!("--settings is not a provider_tap JSON object: {e}"))
                })?;
            crate::service::provider_tap::update_tap_settings(
                &state,
                &crate::service::audit::Who::cli(),
                project_id,
                update,
            )
            .await?
        }
        None => crate::service::provider_tap::tap_config(&state, project_id)
            .await?
            .view(&state, project_id),
    };
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(())
}

async fn alerts_test(
    store: Arc<dyn Store>,
    config: config::ServerConfig,
    project_id: &str,
    channel: Option<usize>,
    json: bool,
) -> Result<(), CliError> {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let state = crate::app::AppState::new(store, Arc::new(SystemClock), config, public_url);
    let outcomes = crate::service::project::test_alerts(&state, project_id, channel).await?;
    if outcomes.is_empty() {
        return Err(CliError::new(
            "the project has no alert_channels; set them with `sendpromptly alerts set`, PATCH /v1/project or in the console settings",
        ));
    }
    if json {
        println!("{}", serde_json::to_string(&outcomes)?);
    } else {
        for o in &outcomes {
            let status = o.status.map_or_else(String::new, |s| format!(" HTTP {s}"));
            if o.delivered {
                println!(
                    "channel {} ({}): sent{status} in {} ms",
                    o.channel, o.kind, o.latency_ms
                );
            } else {
                println!(
                    "channel {} ({}): FAILED{status}: {}",
                    o.channel,
                    o.kind,
                    o.error.as_deref().unwrap_or("not accepted")
                );
            }
        }
    }
    if outcomes.iter().all(|o| o.delivered) {
        Ok(())
    } else {
        Err(CliError::new("some alert channels failed the test"))
    }
}

pub(crate) async fn resolve_project(
    store: &dyn Store,
    name_or_id: &str,
) -> Result<crate::store::Project, CliError> {
    let found = if name_or_id.starts_with(sendpromptly_core::ids::PROJECT) {
        store.project(name_or_id).await?
    } else {
        store.project_by_name(name_or_id).await?
    };
    found.ok_or_else(|| CliError::new(format!("no project named `{name_or_id}`")))
}

/// `project trace-url`: prints, sets or clears the trace URL template,
/// validated by the API's own settings check.
async fn trace_url(
    store: &dyn Store,
    project: &str,
    template: Option<String>,
    clear: bool,
) -> Result<(), CliError> {
    let project = resolve_project(store, project).await?;
    let project = if template.is_some() || clear {
        let update = sendpromptly_core::wire::ProjectUpdate {
            trace_url_template: Some(template),
            ..Default::default()
        };
        // The template is not an outbound URL: the policy does not apply.
        let policy = crate::outbound::OutboundPolicy::default();
        let patch = crate::service::project::patch_from_update(policy, update)?;
        store.update_project(&project.id, patch).await?
    } else {
        project
    };
    match &project.trace_url_template {
        Some(template) => println!("{template}"),
        None => println!(
            "project {} has no trace URL template; set one with `sendpromptly project trace-url --project {} --template 'https://jaeger.example.com/trace/{{trace_id}}'`",
            project.name, project.name
        ),
    }
    Ok(())
}

async fn project(
    store: &dyn Store,
    command: ProjectCommand,
    file: &config::FileConfig,
    now: Timestamp,
) -> Result<(), CliError> {
    match command {
        ProjectCommand::Create {
            name,
            repair_url,
            json,
            serve,
        } => {
            if let Some(url) = &repair_url {
                let outbound = config::resolve_server(&serve, file)?.outbound;
                crate::service::project::validate_outbound_url(outbound, "repair_url", url)?;
            }
            let name = name.trim();
            if name.is_empty() || name.len() > 100 {
                return Err(CliError::new("the project name must be 1–100 characters"));
            }
            let created = provision::create_project(store, name, repair_url, now)
                .await
                .map_err(|err| match err {
                    StoreError::Conflict(_) => {
                        CliError::new(format!("a project named `{name}` already exists"))
                    }
                    other => CliError::new(other.to_string()),
                })?;
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!(
                    "created project {} ({})\n  API key:         {}  (admin: settings, keys, audit log)\n  ingest API key:  {}  (for your webhook handler)\n  signing secret:  {}\nThese are shown once.",
                    created.name,
                    created.project_id,
                    created.api_key,
                    created.ingest_api_key,
                    created.signing_secret
                );
            }
            Ok(())
        }
        ProjectCommand::TraceUrl {
            project,
            template,
            clear,
        } => trace_url(store, &project, template, clear).await,
        ProjectCommand::List { json } => {
            let projects = store.list_projects().await?;
            if json {
                let list: Vec<_> = projects
                    .iter()
                    .map(|p| serde_json::json!({"project_id": p.id, "name": p.name, "repair_url": p.repair_url}))
                    .collect();
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for p in projects {
                    println!("{}\t{}\t{}", p.id, p.name, p.repair_url.unwrap_or_default());
                }
            }
            Ok(())
        }
    }
}

async fn key(store: &dyn Store, command: KeyCommand, now: Timestamp) -> Result<(), CliError> {
    let who = crate::service::audit::Who::cli();
    match command {
        KeyCommand::Create {
            project,
            name,
            scope,
            json,
        } => {
            let scopes: sendpromptly_core::scope::ScopeSet = scope
                .parse()
                .map_err(|e| CliError::new(format!("--scope: {e}")))?;
            let project = resolve_project(store, &project).await?;
            let key =
                crate::service::keys::create(store, &who, &project.id, name, scopes, now).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"project_id": project.id, "api_key": key, "scopes": scopes})
                );
            } else {
                println!(
                    "API key for {} (scope {scopes}): {key}\nIt is shown once.",
                    project.name
                );
            }
            Ok(())
        }
        KeyCommand::List { project, json } => {
            let project = resolve_project(store, &project).await?;
            for listed in crate::service::keys::list(store, &project.id).await? {
                let key = listed.key;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": key.id,
                            "prefix": key.prefix,
                            "name": key.name,
                            "scopes": key.scopes,
                            "created_at": key.created_at,
                            "revoked_at": key.revoked_at,
                            "last_used_at": key.last_used_at,
                            "last_used_class": key.last_used_class,
                            "used_for": key.used_classes,
                            "advice": listed.advice,
                        })
                    );
                    continue;
                }
                let state = key
                    .revoked_at
                    .map_or_else(|| "active".to_owned(), |at| format!("revoked {at}"));
                let used = match (key.last_used_at, key.last_used_class) {
                    (Some(at), Some(class)) => format!("last used {at} ({class})"),
                    _ => "never used".to_owned(),
                };
                println!(
                    "{}\t{}…\t{}\t{}\t{}\t{}{}",
                    key.id,
                    key.prefix,
                    key.name.unwrap_or_default(),
                    key.scopes,
                    state,
                    used,
                    listed
                        .advice
                        .map(|advice| format!("\t⚠ {advice}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        KeyCommand::Revoke { project, key_id } => {
            let project = resolve_project(store, &project).await?;
            if crate::service::keys::revoke(store, &who, &project.id, &key_id, now).await? {
                println!("revoked {key_id}");
                Ok(())
            } else {
                Err(CliError::new(format!(
                    "project {} has no active key {key_id}",
                    project.name
                )))
            }
        }
    }
}

/// `sendpromptly audit`: the project's audit log, newest first.
async fn audit(store: &dyn Store, args: AuditArgs) -> Result<(), CliError> {
    let project = resolve_project(store, &args.project).await?;
    let since = args
        .since
        .as_deref()
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| Timestamp::from_datetime(t.with_timezone(&chrono::Utc)))
                .map_err(|e| {
                    CliError::new(format!(
                        "--since `{text}` is not an RFC 3339 time (e.g. 2026-01-31T00:00:00Z): {e}"
                    ))
                })
        })
        .transpose()?;
    let filter = crate::store::AuditFilter {
        action: args.action,
        actor: args.actor,
        since,
        until: None,
    };
    let mut left = args.limit;
    let mut cursor = None;
    while left > 0 {
        let page = store
            .audit_page(
                &project.id,
                &filter,
                crate::store::PageRequest {
                    limit: left.min(100),
                    cursor,
                },
            )
            .await?;
        left = left.saturating_sub(u32::try_from(page.data.len()).unwrap_or(u32::MAX));
        for entry in page.data {
            let view = crate::service::audit::view(entry);
            if args.json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                let change = |v: &Option<serde_json::Value>| {
                    v.as_ref()
                        .map_or_else(|| "-".to_owned(), ToString::to_string)
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\tbefore={}\tafter={}",
                    view.at,
                    view.actor,
                    view.ip.as_deref().unwrap_or("-"),
                    view.action,
                    view.target,
                    view.id,
                    change(&view.before),
                    change(&view.after)
                );
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(())
}

pub(crate) fn read_password() -> Result<String, CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (at least 10 characters): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(CliError::new("no password given"));
    }
    Ok(password)
}
