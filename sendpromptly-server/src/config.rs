//! Server configuration: command-line flags, `SENDPROMPTLY_*` environment
//! variables and an optional TOML file, in that order of precedence.
//! Every setting is documented in `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use sendpromptly_core::retry::CallbackSchedule;
use serde::Deserialize;

use crate::store::postgres::PoolSettings;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// Default database URL: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sendpromptly.db";

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings that every subcommand shares.
#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// Database URL: `sqlite://FILE` (created if missing) or `postgres://…`.
    #[arg(long, global = true, env = "SENDPROMPTLY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A TOML file with settings (flags and environment variables win over it).
    #[arg(long, global = true, env = "SENDPROMPTLY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, env = "SENDPROMPTLY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// PostgreSQL: most connections this process opens (default 10).
    #[arg(long, global = true, env = "SENDPROMPTLY_DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<u32>,
    /// PostgreSQL: seconds to wait for a free connection, and for the server at start (default 10).
    #[arg(
        long,
        global = true,
        env = "SENDPROMPTLY_DATABASE_ACQUIRE_TIMEOUT_SECONDS"
    )]
    pub database_acquire_timeout_seconds: Option<u64>,
    /// Master key that encrypts signing secrets at rest: 32 random bytes in base64 (`openssl rand -base64 32`). Required with PostgreSQL; SQLite generates `<database>.secret-key` when no key is set.
    #[arg(
        long,
        global = true,
        env = "SENDPROMPTLY_SECRET_KEY",
        hide_env_values = true,
        conflicts_with = "secret_key_file"
    )]
    pub secret_key: Option<String>,
    /// A file holding the master key (base64), instead of --secret-key.
    #[arg(long, global = true, env = "SENDPROMPTLY_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Earlier master keys (base64, comma-separated), accepted for decryption during a key rotation; signing secrets sealed with them are re-encrypted with the current key at start.
    #[arg(
        long,
        global = true,
        env = "SENDPROMPTLY_PREVIOUS_SECRET_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub previous_secret_keys: Option<Vec<String>>,
}

/// Flags of `sendpromptly serve`.
#[derive(Clone, Debug, Default, Args)]
pub struct ServeArgs {
    /// Allow repair and alert URLs on loopback and private networks (10/8, 192.168/16, …).
    #[arg(long, env = "SENDPROMPTLY_ALLOW_PRIVATE_URLS")]
    pub allow_private_urls: bool,
    /// Address to listen on.
    #[arg(long, env = "SENDPROMPTLY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The public base URL of this server, used in proof links and console links (default: http://LISTEN).
    #[arg(long, env = "SENDPROMPTLY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Export the server's own spans (HTTP requests, group commits, sweeper
    /// ticks, repair callbacks) over OTLP/HTTP protobuf to this collector,
    /// e.g. http://localhost:4318 (`/v1/traces` is added). Off by default.
    #[arg(long, env = "SENDPROMPTLY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// How often the sweeper looks for due deadlines, in milliseconds.
    #[arg(long, env = "SENDPROMPTLY_SWEEP_INTERVAL_MS")]
    pub sweep_interval_ms: Option<u64>,
    /// How many repair callbacks may be in flight at once.
    #[arg(long, env = "SENDPROMPTLY_CALLBACK_CONCURRENCY")]
    pub callback_concurrency: Option<usize>,
    /// Timeout of one repair-callback attempt, in seconds.
    #[arg(long, env = "SENDPROMPTLY_CALLBACK_TIMEOUT_SECONDS")]
    pub callback_timeout_seconds: Option<u64>,
    /// Delays between repair-callback attempts, in seconds, comma-separated (default 5,30,120,600,1800,3600).
    #[arg(
        long,
        env = "SENDPROMPTLY_CALLBACK_RETRY_DELAYS",
        value_delimiter = ','
    )]
    pub callback_retry_delays: Option<Vec<u64>>,
    /// How long one instance's claim on a repair callback lasts, in seconds; after it, another instance may send it (default 60, at least twice the callback timeout).
    #[arg(long, env = "SENDPROMPTLY_CALLBACK_LEASE_SECONDS")]
    pub callback_lease_seconds: Option<u64>,
    /// Sustained API requests per second allowed per API key, per instance (default 10000; 0 turns the limit off).
    #[arg(long, env = "SENDPROMPTLY_API_RATE_LIMIT")]
    pub api_rate_limit: Option<u32>,
    /// API requests one key may send at once after an idle period (default 20000).
    #[arg(long, env = "SENDPROMPTLY_API_RATE_BURST")]
    pub api_rate_burst: Option<u32>,
    /// Hours idempotency keys are kept before the retention job deletes them (default 48, at least 24).
    #[arg(long, env = "SENDPROMPTLY_IDEMPOTENCY_RETENTION_HOURS")]
    pub idempotency_retention_hours: Option<u64>,
    /// Days finished history (resolved incidents, successes without one) is kept before the retention job deletes it (default 0: kept forever).
    #[arg(long, env = "SENDPROMPTLY_RESOLVED_RETENTION_DAYS")]
    pub resolved_retention_days: Option<u64>,
    /// Days audit log entries are kept before the retention job deletes them (default 365; 0 keeps them forever).
    #[arg(long, env = "SENDPROMPTLY_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u64>,
    /// Seconds a client has to send a request's headers; idle connections close after it too (default 10).
    #[arg(long, env = "SENDPROMPTLY_HEADER_READ_TIMEOUT_SECONDS")]
    pub header_read_timeout_seconds: Option<u64>,
    /// Seconds a whole request may take, body upload included, before a 408 (default 30).
    #[arg(long, env = "SENDPROMPTLY_REQUEST_TIMEOUT_SECONDS")]
    pub request_timeout_seconds: Option<u64>,
    /// SMTP server for email alerts: smtp://user:pass@host:587 (STARTTLS required), smtps://… (TLS from the start), smtp://…?tls=none (plain: only for a trusted relay on your private network). A loopback host (smtp://127.0.0.1:25, smtp://localhost:25) is plain unless ?tls=starttls.
    #[arg(long, env = "SENDPROMPTLY_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The From address of email alerts (required with --smtp-url).
    #[arg(long, env = "SENDPROMPTLY_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Window in seconds in which alerts about incidents of the same event type are grouped into one message (default 300; 0 turns grouping off).
    #[arg(long, env = "SENDPROMPTLY_ALERT_GROUP_WINDOW_SECONDS")]
    pub alert_group_window_seconds: Option<u64>,
    /// Seconds a write transaction (and a pooled read) may take before `/healthz` reports the writer (the database) unhealthy (default 5).
    #[arg(long, env = "SENDPROMPTLY_HEALTH_WRITER_BOUND_SECONDS")]
    pub health_writer_bound_seconds: Option<u64>,
    /// Seconds a background loop (sweeper, dispatcher, alerts, pacer, reconciler, rollups) may go without a completed pass before `/healthz` reports it unhealthy (default 60).
    #[arg(long, env = "SENDPROMPTLY_HEALTH_LOOP_BOUND_SECONDS")]
    pub health_loop_bound_seconds: Option<u64>,
    /// Seconds the writer may stay unhealthy before the server exits with status 75 for its supervisor to restart it (default 120; 0 never exits).
    #[arg(long, env = "SENDPROMPTLY_EXIT_AFTER_WRITER_STALL_SECONDS")]
    pub exit_after_writer_stall_seconds: Option<u64>,
    /// Seconds between two Stripe reconciler passes over a project that has a restricted key (default 300; 0 turns the reconciler off).
    #[arg(long, env = "SENDPROMPTLY_RECONCILE_INTERVAL_SECONDS")]
    pub reconcile_interval_seconds: Option<u64>,
    /// Seconds before the watermark each reconciler pass lists again, for events Stripe lists late (default 600).
    #[arg(long, env = "SENDPROMPTLY_RECONCILE_OVERLAP_SECONDS")]
    pub reconcile_overlap_seconds: Option<u64>,
    /// The Stripe API the reconciler reads (default https://api.stripe.com; tests point it at a local server).
    #[arg(long, env = "SENDPROMPTLY_STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
}

/// The TOML file: the same settings as the flags, snake_case.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--database-url`.
    pub database_url: Option<String>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// See `--database-max-connections`.
    pub database_max_connections: Option<u32>,
    /// See `--database-acquire-timeout-seconds`.
    pub database_acquire_timeout_seconds: Option<u64>,
    /// See `--secret-key-file` (the key itself is not read from this file).
    pub secret_key_file: Option<PathBuf>,
    /// See `--previous-secret-keys`.
    pub previous_secret_keys: Option<Vec<String>>,
    /// See `--allow-private-urls`.
    pub allow_private_urls: Option<bool>,
    /// See `--listen`.
    pub listen: Option<SocketAddr>,
    /// See `--public-url`.
    pub public_url: Option<String>,
    /// See `--sweep-interval-ms`.
    pub sweep_interval_ms: Option<u64>,
    /// See `--callback-concurrency`.
    pub callback_concurrency: Option<usize>,
    /// See `--callback-timeout-seconds`.
    pub callback_timeout_seconds: Option<u64>,
    /// See `--callback-retry-delays`.
    pub callback_retry_delays: Option<Vec<u64>>,
    /// See `--callback-lease-seconds`.
    pub callback_lease_seconds: Option<u64>,
    /// See `--api-rate-limit`.
    pub api_rate_limit: Option<u32>,
    /// See `--api-rate-burst`.
    pub api_rate_burst: Option<u32>,
    /// See `--idempotency-retention-hours`.
    pub idempotency_retention_hours: Option<u64>,
    /// See `--resolved-retention-days`.
    pub resolved_retention_days: Option<u64>,
    /// See `--audit-retention-days`.
    pub audit_retention_days: Option<u64>,
    /// See `--header-read-timeout-seconds`.
    pub header_read_timeout_seconds: Option<u64>,
    /// See `--request-timeout-seconds`.
    pub request_timeout_seconds: Option<u64>,
    /// See `--smtp-url`.
    pub smtp_url: Option<String>,
    /// See `--smtp-from`.
    pub smtp_from: Option<String>,
    /// See `--alert-group-window-seconds`.
    pub alert_group_window_seconds: Option<u64>,
    /// See `--health-writer-bound-seconds`.
    pub health_writer_bound_seconds: Option<u64>,
    /// See `--health-loop-bound-seconds`.
    pub health_loop_bound_seconds: Option<u64>,
    /// See `--exit-after-writer-stall-seconds`.
    pub exit_after_writer_stall_seconds: Option<u64>,
    /// See `--reconcile-interval-seconds`.
    pub reconcile_interval_seconds: Option<u64>,
    /// See `--reconcile-overlap-seconds`.
    pub reconcile_overlap_seconds: Option<u64>,
    /// See `--stripe-api-base`.
    pub stripe_api_base: Option<String>,
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://` to a host that is not loopback, or `smtp://…?tls=starttls`:
    /// STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://…?tls=none`, or `smtp://` to a loopback host (the mail never
    /// leaves the machine): no encryption.
    None,
}

/// The resolved `--smtp-url` and `--smtp-from`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Server host name.
    pub host: String,
    /// Server port (default 587 for STARTTLS and plain, 465 for `smtps`).
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// User name and password for AUTH, when the URL has them.
    pub credentials: Option<(String, String)>,
    /// The From address.
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("from", &self.from)
            .finish()
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`).
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl SmtpSettings {
    /// Parses `--smtp-url` (the From address is given separately).
    pub fn parse(smtp_url: &str, from: &str) -> Result<SmtpSettings, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            name: "smtp_url",
            message,
        };
        // Never echo the URL: it may hold a password.
        let url = url::Url::parse(smtp_url).map_err(|err| {
            invalid(format!(
                "not a URL ({err}); expected smtp://user:pass@host:port"
            ))
        })?;
        let mut tls = match url.scheme() {
            "smtp" => SmtpTls::StartTls,
            "smtps" => SmtpTls::Implicit,
            other => return Err(invalid(format!("scheme `{other}` is not smtp or smtps"))),
        };
        let mut tls_named = false;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "none") if tls == SmtpTls::StartTls => {
                    tls = SmtpTls::None;
                    tls_named = true;
                }
                ("tls", "starttls") if tls == SmtpTls::StartTls => tls_named = true,
                _ => {
                    return Err(invalid(format!(
                        "unknown parameter `{key}={value}`; only tls=none or tls=starttls with smtp://"
                    )));
                }
            }
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        // A relay on this machine: nothing crosses a network, so plain SMTP
        // is the default there (a local Postfix rarely has a certificate
        // for 127.0.0.1); `?tls=starttls` still requires STARTTLS.
        if tls == SmtpTls::StartTls && !tls_named && is_loopback_host(&host) {
            tls = SmtpTls::None;
        }
        let port = url.port().unwrap_or(match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls | SmtpTls::None => 587,
        });
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some((
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or("")),
            ))
        };
        let from = from.trim();
        if from.is_empty() || !from.contains('@') {
            return Err(ConfigError::Invalid {
                name: "smtp_from",
                message: "must be an email address (`alerts@example.com` or `SendPromptly <alerts@example.com>`)".into(),
            });
        }
        Ok(SmtpSettings {
            host,
            port,
            tls,
            credentials,
            from: from.to_owned(),
        })
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A setting has an unusable value.
    #[error("invalid setting {name}: {message}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        message: String,
    },
}

impl FileConfig {
    /// Reads the TOML file at `path`.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

/// What a master key must look like (never echoing the value).
const KEY_FORMAT: &str =
    "must be 32 random bytes in base64 (make one with `openssl rand -base64 32`)";

/// Where the master key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretKeySource {
    /// `--secret-key`: the key itself.
    Value([u8; crate::secrets::MASTER_KEY_BYTES]),
    /// `--secret-key-file`.
    File(PathBuf),
    /// Nothing configured: SQLite generates a key file beside the database;
    /// PostgreSQL refuses to start.
    Unset,
}

impl std::fmt::Debug for SecretKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        match self {
            SecretKeySource::Value(_) => f.write_str("Value([redacted])"),
            SecretKeySource::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretKeySource::Unset => f.write_str("Unset"),
        }
    }
}

/// The master-key settings, resolved (see `docs/configuration.md`).
#[derive(Clone, Debug)]
pub struct SecretKeyConfig {
    /// The current key.
    pub current: SecretKeySource,
    /// Keys accepted for decryption only.
    pub previous: Vec<RedactedKey>,
}

/// A decoded master key whose `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedKey(pub [u8; crate::secrets::MASTER_KEY_BYTES]);

impl std::fmt::Debug for RedactedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The settings every command needs, resolved.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// Database URL.
    pub database_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Connection pool settings (PostgreSQL).
    pub pool: PoolSettings,
    /// The master key that encrypts secrets at rest.
    pub secret_key: SecretKeyConfig,
}

/// The resolved settings of `sendpromptly serve`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Which addresses repair callbacks may reach.
    pub outbound: crate::outbound::OutboundPolicy,
    /// Names answered without the system resolver (no flag sets it; tests
    /// use it). The outbound policy checks these answers like any other.
    pub static_hosts: crate::outbound::StaticHosts,
    /// Public base URL without a trailing slash; `None` means `http://` + the bound address.
    pub public_url: Option<String>,
    /// The OTLP/HTTP collector spans are exported to; `None`: no export.
    pub otlp_endpoint: Option<String>,
    /// Sweeper period.
    pub sweep_interval: Duration,
    /// Records per sweeper transaction.
    pub sweep_batch: u32,
    /// Dispatcher polling period (it is also woken when a callback is queued).
    pub dispatch_interval: Duration,
    /// Repair callbacks in flight at once.
    pub callback_concurrency: usize,
    /// Timeout of one callback attempt.
    pub callback_timeout: Duration,
    /// Connect timeout of one callback attempt.
    pub callback_connect_timeout: Duration,
    /// The retry schedule of repair callbacks.
    pub callback_schedule: CallbackSchedule,
    /// How long a dispatcher's claim on a callback lasts.
    pub callback_lease: Duration,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// A client must send a request's headers within this (and an idle
    /// keep-alive connection is closed after it).
    pub header_read_timeout: Duration,
    /// The longest a request may take, body upload included; then 408.
    pub request_timeout: Duration,
    /// How long idempotency keys are kept (at least 24 h).
    pub idempotency_retention: Duration,
    /// How often the retention job runs.
    pub retention_interval: Duration,
    /// How often the SLO burn-rate loop evaluates every SLO.
    pub slo_interval: Duration,
    /// How long finished history is kept; `None` keeps it forever.
    pub resolved_retention: Option<Duration>,
    /// How long audit log entries are kept (`None`: forever).
    pub audit_retention: Option<Duration>,
    /// How often API keys' last use is written (at most once per key per interval).
    pub key_usage_interval: Duration,
    /// The per-API-key rate limit; `None` turns it off.
    pub api_rate_limit: Option<crate::ratelimit::RateLimit>,
    /// The SMTP server for email alerts; `None`: email channels cannot send.
    pub smtp: Option<SmtpSettings>,
    /// The alert grouping window, in seconds (0: no grouping).
    pub alert_group_window_seconds: i64,
    /// How often the health watchdog probes the writer and the pool.
    pub health_interval: Duration,
    /// How long a write transaction (or a pooled read) may take before the
    /// writer (the database) counts as unhealthy.
    pub health_writer_bound: Duration,
    /// How long a background loop may go without a completed pass before
    /// it counts as unhealthy.
    pub health_loop_bound: Duration,
    /// How long the writer may stay unhealthy before the server exits
    /// non-zero; `None`: never.
    pub exit_after_writer_stall: Option<Duration>,
    /// The Stripe reconciler's interval between passes over a project;
    /// `None`: off.
    pub reconcile_interval: Option<Duration>,
    /// How far before its watermark each reconciler pass lists again.
    pub reconcile_overlap: Duration,
    /// The Stripe API base URL, without a trailing slash.
    pub stripe_api_base: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let listen: SocketAddr = DEFAULT_LISTEN
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7700)));
        ServerConfig {
            listen,
            outbound: crate::outbound::OutboundPolicy::default(),
            static_hosts: std::sync::Arc::from([]),
            public_url: None,
            otlp_endpoint: None,
            sweep_interval: Duration::from_millis(250),
            sweep_batch: 500,
            dispatch_interval: Duration::from_millis(250),
            callback_concurrency: 8,
            callback_timeout: Duration::from_secs(15),
            callback_connect_timeout: Duration::from_secs(5),
            callback_schedule: CallbackSchedule::default(),
            callback_lease: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            idempotency_retention: Duration::from_secs(48 * 3600),
            retention_interval: Duration::from_secs(600),
            slo_interval: Duration::from_secs(60),
            resolved_retention: None,
            audit_retention: Some(Duration::from_secs(365 * 86_400)),
            key_usage_interval: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            api_rate_limit: Some(crate::ratelimit::RateLimit::default()),
            smtp: None,
            alert_group_window_seconds: 300,
            health_interval: Duration::from_secs(1),
            health_writer_bound: Duration::from_secs(5),
            health_loop_bound: Duration::from_secs(60),
            exit_after_writer_stall: Some(Duration::from_secs(120)),
            reconcile_interval: Some(Duration::from_secs(300)),
            reconcile_overlap: Duration::from_secs(600),
            stripe_api_base: crate::reconcile::stripe_api::DEFAULT_API_BASE.to_owned(),
        }
    }
}

/// Loads the file named by `--config`, if any.
pub fn load_file(global: &GlobalArgs) -> Result<FileConfig, ConfigError> {
    global
        .config
        .as_deref()
        .map_or_else(|| Ok(FileConfig::default()), FileConfig::load)
}

/// Resolves the shared settings: flag or env, then file, then default.
pub fn resolve_common(global: &GlobalArgs, file: &FileConfig) -> Result<CommonConfig, ConfigError> {
    let mut pool = PoolSettings::default();
    if let Some(n) = global
        .database_max_connections
        .or(file.database_max_connections)
    {
        if n == 0 {
            return Err(ConfigError::Invalid {
                name: "database_max_connections",
                message: "must be at least 1".into(),
            });
        }
        pool.max_connections = n;
        pool.min_connections = pool.min_connections.min(n);
    }
    if let Some(secs) = global
        .database_acquire_timeout_seconds
        .or(file.database_acquire_timeout_seconds)
    {
        if secs == 0 {
            return Err(ConfigError::Invalid {
                name: "database_acquire_timeout_seconds",
                message: "must be at least 1".into(),
            });
        }
        pool.acquire_timeout = Duration::from_secs(secs);
    }
    let current = match (&global.secret_key, &global.secret_key_file) {
        (Some(value), _) => SecretKeySource::Value(
            crate::secrets::parse_master_key(value, "secret_key").map_err(|_| {
                ConfigError::Invalid {
                    name: "secret_key",
                    message: KEY_FORMAT.into(),
                }
            })?,
        ),
        (None, Some(path)) => SecretKeySource::File(path.clone()),
        (None, None) => file
            .secret_key_file
            .clone()
            .map_or(SecretKeySource::Unset, SecretKeySource::File),
    };
    let previous = global
        .previous_secret_keys
        .clone()
        .or_else(|| file.previous_secret_keys.clone())
        .unwrap_or_default()
        .iter()
        .filter(|k| !k.trim().is_empty())
        .map(|k| {
            crate::secrets::parse_master_key(k, "previous_secret_keys")
                .map(RedactedKey)
                .map_err(|_| ConfigError::Invalid {
                    name: "previous_secret_keys",
                    message: KEY_FORMAT.into(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CommonConfig {
        secret_key: SecretKeyConfig { current, previous },
        database_url: global
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        log_format: global.log_format.or(file.log_format).unwrap_or_default(),
        pool,
    })
}

/// Checks `--public-url`, the base every link this server hands out is
/// joined to (`{public_url}/incidents/…`): an `http(s)://` URL without a
/// query or fragment (they would end up in the middle of each link); the
/// trailing `/` is dropped.
fn parse_public_url(public_url: &str) -> Result<String, ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        name: "public_url",
        message: format!(
            "`{public_url}` {why}; expected the address users open the console at, such as https://sendpromptly.example.com"
        ),
    };
    let url = url::Url::parse(public_url).map_err(|_| invalid("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("is not an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "has a query or fragment, which would end up inside every link",
        ));
    }
    Ok(public_url.trim_end_matches('/').to_owned())
}

/// Resolves `serve`'s settings: flag or env, then file, then default.
pub fn resolve_server(args: &ServeArgs, file: &FileConfig) -> Result<ServerConfig, ConfigError> {
    let mut config = ServerConfig::default();
    config.outbound.allow_private =
        args.allow_private_urls || file.allow_private_urls.unwrap_or(false);
    if let Some(listen) = args.listen.or(file.listen) {
        config.listen = listen;
    }
    if let Some(public_url) = args.public_url.clone().or_else(|| file.public_url.clone()) {
        config.public_url = Some(parse_public_url(&public_url)?);
    }
    if let Some(endpoint) = &args.otlp_endpoint {
        let valid = url::Url::parse(endpoint)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !valid {
            return Err(ConfigError::Invalid {
                name: "otlp_endpoint",
                message: format!(
                    "`{endpoint}` is not an http:// or https:// URL; expected the collector's OTLP/HTTP address, such as http://localhost:4318"
                ),
            });
        }
        config.otlp_endpoint = Some(endpoint.clone());
    }
    if let Some(ms) = args.sweep_interval_ms.or(file.sweep_interval_ms) {
        if ms == 0 {
            return Err(ConfigError::Invalid {
                name: "sweep_interval_ms",
                message: "must be at least 1".into(),
            });
        }
        config.sweep_interval = Duration::from_millis(ms);
    }
    if let Some(n) = args.callback_concurrency.or(file.callback_concurrency) {
        if n == 0 {
            return Err(ConfigError::Invalid {
                name: "callback_concurrency",
                message: "must be at least 1".into(),
            });
        }
        config.callback_concurrency = n;
    }
    if let Some(secs) = args
        .callback_timeout_seconds
        .or(file.callback_timeout_seconds)
    {
        if secs == 0 {
            return Err(ConfigError::Invalid {
                name: "callback_timeout_seconds",
                message: "must be at least 1".into(),
            });
        }
        config.callback_timeout = Duration::from_secs(secs);
        config.callback_connect_timeout =
            config.callback_connect_timeout.min(config.callback_timeout);
        config.callback_lease = config.callback_lease.max(config.callback_timeout * 2);
    }
    if let Some(delays) = args
        .callback_retry_delays
        .clone()
        .or_else(|| file.callback_retry_delays.clone())
    {
        config.callback_schedule.delays = delays.into_iter().map(Duration::from_secs).collect();
    }
    if let Some(secs) = args.callback_lease_seconds.or(file.callback_lease_seconds) {
        let lease = Duration::from_secs(secs);
        if lease < config.callback_timeout * 2 {
            return Err(ConfigError::Invalid {
                name: "callback_lease_seconds",
                message: format!(
                    "must be at least twice the callback timeout ({} s)",
                    config.callback_timeout.as_secs() * 2
                ),
            });
        }
        config.callback_lease = lease;
    }
    let mut limit = crate::ratelimit::RateLimit::default();
    if let Some(per_second) = args.api_rate_limit.or(file.api_rate_limit) {
        limit.per_second = per_second;
    }
    if let Some(burst) = args.api_rate_burst.or(file.api_rate_burst) {
        if burst == 0 {
            return Err(ConfigError::Invalid {
                name: "api_rate_burst",
                message: "must be at least 1".into(),
            });
        }
        limit.burst = burst;
    }
    config.api_rate_limit = (limit.per_second > 0).then_some(limit);
    if let Some(hours) = args
        .idempotency_retention_hours
        .or(file.idempotency_retention_hours)
    {
        if hours < 24 {
            return Err(ConfigError::Invalid {
                name: "idempotency_retention_hours",
                message: "must be at least 24 (keys replay for 24 h)".into(),
            });
        }
        config.idempotency_retention = Duration::from_secs(hours.saturating_mul(3600));
    }
    if let Some(days) = args
        .resolved_retention_days
        .or(file.resolved_retention_days)
    {
        if days > 36_500 {
            return Err(ConfigError::Invalid {
                name: "resolved_retention_days",
                message: "must be at most 36500 (0 keeps history forever)".into(),
            });
        }
        config.resolved_retention = (days > 0).then(|| Duration::from_secs(days * 86_400));
    }
    if let Some(days) = args.audit_retention_days.or(file.audit_retention_days) {
        if days > 36_500 {
            return Err(ConfigError::Invalid {
                name: "audit_retention_days",
                message: "must be at most 36500 (0 keeps the audit log forever)".into(),
            });
        }
        config.audit_retention = (days > 0).then(|| Duration::from_secs(days * 86_400));
    }
    for (name, value, target) in [
        (
            "header_read_timeout_seconds",
            args.header_read_timeout_seconds
                .or(file.header_read_timeout_seconds),
            &mut config.header_read_timeout,
        ),
        (
            "request_timeout_seconds",
            args.request_timeout_seconds
                .or(file.request_timeout_seconds),
            &mut config.request_timeout,
        ),
    ] {
        if let Some(secs) = value {
            if secs == 0 {
                return Err(ConfigError::Invalid {
                    name,
                    message: "must be at least 1".into(),
                });
            }
            *target = Duration::from_secs(secs);
        }
    }
    let smtp_from = args.smtp_from.clone().or_else(|| file.smtp_from.clone());
    match (
        args.smtp_url.clone().or_else(|| file.smtp_url.clone()),
        smtp_from,
    ) {
        (Some(url), Some(from)) => config.smtp = Some(SmtpSettings::parse(&url, &from)?),
        (Some(_), None) => {
            return Err(ConfigError::Invalid {
                name: "smtp_from",
                message: "is required with smtp_url".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid {
                name: "smtp_url",
                message: "is required with smtp_from".into(),
            });
        }
        (None, None) => {}
    }
    if let Some(secs) = args
        .alert_group_window_seconds
        .or(file.alert_group_window_seconds)
    {
        if secs > 86_400 {
            return Err(ConfigError::Invalid {
                name: "alert_group_window_seconds",
                message: "must be at most 86400 (one day)".into(),
            });
        }
        config.alert_group_window_seconds = secs as i64;
    }
    for (name, value, target) in [
        (
            "health_writer_bound_seconds",
            args.health_writer_bound_seconds
                .or(file.health_writer_bound_seconds),
            &mut config.health_writer_bound,
        ),
        (
            "health_loop_bound_seconds",
            args.health_loop_bound_seconds
                .or(file.health_loop_bound_seconds),
            &mut config.health_loop_bound,
        ),
    ] {
        if let Some(secs) = value {
            if !(1..=86_400).contains(&secs) {
                return Err(ConfigError::Invalid {
                    name,
                    message: "must be from 1 to 86400 seconds".into(),
                });
            }
            *target = Duration::from_secs(secs);
        }
    }
    if let Some(secs) = args
        .exit_after_writer_stall_seconds
        .or(file.exit_after_writer_stall_seconds)
    {
        if secs > 0 && secs < config.health_writer_bound.as_secs() {
            return Err(ConfigError::Invalid {
                name: "exit_after_writer_stall_seconds",
                message: format!(
                    "must be 0 (never exit) or at least health_writer_bound_seconds ({})",
                    config.health_writer_bound.as_secs()
                ),
            });
        }
        config.exit_after_writer_stall = (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some(secs) = args
        .reconcile_interval_seconds
        .or(file.reconcile_interval_seconds)
    {
        config.reconcile_interval = (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some(secs) = args
        .reconcile_overlap_seconds
        .or(file.reconcile_overlap_seconds)
    {
        if secs > 86_400 {
            return Err(ConfigError::Invalid {
                name: "reconcile_overlap_seconds",
                message: "must be at most 86400 seconds".into(),
            });
        }
        config.reconcile_overlap = Duration::from_secs(secs);
    }
    if let Some(base) = args
        .stripe_api_base
        .clone()
        .or_else(|| file.stripe_api_base.clone())
    {
        config.stripe_api_base = stripe_api_base(&base)?;
    }
    Ok(config)
}

/// Checks a `--stripe-api-base`: an absolute http(s) URL, returned without
/// its trailing slash.
pub fn stripe_api_base(base: &str) -> Result<String, ConfigError> {
    match url::Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(base.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::Invalid {
            name: "stripe_api_base",
            message: format!("`{base}` is not an absolute http(s) URL"),
        }),
    }
}

#[cfg(test)]
mod smtp_tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_with_tls_modes_and_credentials() {
        let s = SmtpSettings::parse("smtp://ops%40x.io:p%3Ass@mail.example.com", "a@x.io").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("mail.example.com", 587, SmtpTls::StartTls)
        );
        assert_eq!(s.credentials, Some(("ops@x.io".into(), "p:ss".into())));
        assert!(!format!("{s:?}").contains("p:ss"));
        let s = SmtpSettings::parse("smtps://mail.example.com", "a@x.io").unwrap();
        assert_eq!(
            (s.port, s.tls, s.credentials),
            (465, SmtpTls::Implicit, None)
        );
        let s = SmtpSettings::parse("smtp://127.0.0.1:2525?tls=none", "a@x.io").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("127.0.0.1", 2525, SmtpTls::None)
        );
    }

    #[test]
    fn a_loopback_relay_is_plain_unless_starttls_is_asked_for() {
        for url in [
            "smtp://127.0.0.1:25",
            "smtp://127.0.0.2",
            "smtp://[::1]:25",
            "smtp://LocalHost:25",
        ] {
            let s = SmtpSettings::parse(url, "a@x.io").unwrap();
            assert_eq!(s.tls, SmtpTls::None, "{url}");
        }
        for (url, tls) in [
            ("smtp://127.0.0.1:25?tls=starttls", SmtpTls::StartTls),
            ("smtps://127.0.0.1", SmtpTls::Implicit),
            ("smtp://10.0.0.5:25", SmtpTls::StartTls),
            ("smtp://192.0.2.2:25", SmtpTls::StartTls),
            ("smtp://localhost.example.com", SmtpTls::StartTls),
            ("smtp://mail.example.com", SmtpTls::StartTls),
        ] {
            assert_eq!(
                SmtpSettings::parse(url, "a@x.io").unwrap().tls,
                tls,
                "{url}"
            );
        }
    }

    #[test]
    fn public_url_is_an_http_base_for_links() {
        let resolve = |url: &str| {
            let args = ServeArgs {
                public_url: Some(url.into()),
                ..ServeArgs::default()
            };
            resolve_server(&args, &FileConfig::default()).map(|c| c.public_url)
        };
        for (given, kept) in [
            ("https://sp.example.com/", "https://sp.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ] {
            assert_eq!(resolve(given).unwrap().as_deref(), Some(kept));
        }
        for bad in [
            "sp.example.com",
            "localhost:8080",
            "ftp://sp.example.com",
            "https://sp.example.com/?x=1",
            "https://sp.example.com/#top",
        ] {
            match resolve(bad) {
                Err(ConfigError::Invalid { name, message }) => {
                    assert_eq!(name, "public_url");
                    assert!(
                        message.contains(bad) && message.contains("https://"),
                        "{message}"
                    );
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_smtp_settings_name_the_setting_without_the_password() {
        for (url, from, name) in [
            ("http://mail.example.com", "a@x.io", "smtp_url"),
            ("smtps://mail.example.com?tls=none", "a@x.io", "smtp_url"),
            ("smtp://u:secret@/", "a@x.io", "smtp_url"),
            ("smtp://mail.example.com", "nobody", "smtp_from"),
        ] {
            match SmtpSettings::parse(url, from) {
                Err(ConfigError::Invalid { name: got, message }) => {
                    assert_eq!(got, name, "{url}");
                    assert!(!message.contains("secret"), "{message}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        let args = ServeArgs {
            smtp_url: Some("smtp://mail.example.com".into()),
            ..ServeArgs::default()
        };
        assert!(matches!(
            resolve_server(&args, &FileConfig::default()),
            Err(ConfigError::Invalid {
                name: "smtp_from",
                ..
            })
        ));
        let args = ServeArgs {
            smtp_url: Some("smtp://mail.example.com".into()),
            smtp_from: Some("SendPromptly <alerts@example.com>".into()),
            alert_group_window_seconds: Some(60),
            ..ServeArgs::default()
        };
        let config = resolve_server(&args, &FileConfig::default()).unwrap();
        assert_eq!(config.smtp.unwrap().host, "mail.example.com");
        assert_eq!(config.alert_group_window_seconds, 60);
    }
}
