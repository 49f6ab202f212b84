//! Client settings: [`ClientOptions`] and the retry policy [`RetryConfig`].
//!
//! Every setting is a plain public field with a documented default and an
//! environment variable that overrides it when the settings are read with
//! `from_env()`. Invalid environment values are reported as
//! [`Error::Config`](crate::Error::Config) naming the variable, never ignored.

use std::time::Duration;

use crate::error::Error;

/// Environment variable holding the API key (`sp_…`).
pub const ENV_API_KEY: &str = "SENDPROMPTLY_API_KEY";
/// Environment variable holding the server's base URL.
pub const ENV_URL: &str = "SENDPROMPTLY_URL";
/// Environment variable turning dev mode on (`1`, `true`), off (`0`,
/// `false`), or on even where the environment says production (`force`).
pub const ENV_DEV: &str = "SENDPROMPTLY_DEV";
/// Environment variable naming the deployment environment (`development`,
/// `production`, …); `NODE_ENV` is read too.
pub const ENV_ENVIRONMENT: &str = "SENDPROMPTLY_ENV";
/// Prefix of the retry variables of the direct (awaited) calls.
pub const ENV_RETRY_PREFIX: &str = "SENDPROMPTLY_RETRY_";
/// Prefix of the retry variables of background mode.
pub const ENV_BACKGROUND_RETRY_PREFIX: &str = "SENDPROMPTLY_BACKGROUND_RETRY_";

/// Which failures are worth another attempt.
///
/// Other 4xx answers (400, 401, 404, 409, 413, 415, 422, …) are **never**
/// retried: sending the same request again cannot change the answer. The one
/// exception is `409 idempotency_key_in_flight`, which only a retry of this
/// very call can cause (the server is still working on an earlier attempt)
/// and which is retried whenever `server_errors` is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryOn {
    /// Connection refused, reset or closed before a complete answer.
    /// Default `true`.
    pub connection_errors: bool,
    /// An attempt took longer than [`RetryConfig::attempt_timeout`].
    /// Default `true`.
    pub timeouts: bool,
    /// `429 Too Many Requests` (waiting at least its `Retry-After`).
    /// Default `true`.
    pub too_many_requests: bool,
    /// Any `5xx` answer (waiting at least its `Retry-After`, if any).
    /// Default `true`.
    pub server_errors: bool,
}

impl Default for RetryOn {
    fn default() -> Self {
        RetryOn {
            connection_errors: true,
            timeouts: true,
            too_many_requests: true,
            server_errors: true,
        }
    }
}

impl RetryOn {
    /// Retry nothing: one attempt per call.
    pub const NOTHING: RetryOn = RetryOn {
        connection_errors: false,
        timeouts: false,
        too_many_requests: false,
        server_errors: false,
    };

    /// Parses a comma-separated list of `connect`, `timeout`, `429`, `5xx`
    /// (or `none`), as in `SENDPROMPTLY_RETRY_ON=connect,timeout,429,5xx`.
    pub fn parse(text: &str) -> Result<RetryOn, String> {
        let mut on = RetryOn::NOTHING;
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "connect" | "connection" | "connection_errors" => on.connection_errors = true,
                "timeout" | "timeouts" => on.timeouts = true,
                "429" | "too_many_requests" => on.too_many_requests = true,
                "5xx" | "server_errors" => on.server_errors = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown failure class `{other}`; expected a comma-separated list of connect, timeout, 429, 5xx, or none"
                    ));
                }
            }
        }
        Ok(on)
    }
}

/// The retry policy: how often and how long one logical call may try.
///
/// One call (a receipt, a result, any API request) makes at most
/// `max_attempts` attempts and never takes longer than `total_budget` in all,
/// waits included. Between attempts it waits an exponential backoff
/// (`initial_backoff`, doubled each time, at most `max_backoff`), shortened by
/// a random fraction of up to `jitter`, or longer when the server sends
/// `Retry-After`. If the next wait would cross the budget, the call stops at
/// once and returns the last error: the budget is never overrun by sleeping.
///
/// Every POST carries one `Idempotency-Key`, generated once per logical call
/// and sent unchanged on every retry, so a retry after a lost answer is
/// replayed by the server instead of being recorded twice.
///
/// The defaults suit a webhook handler that must answer its provider within a
/// few seconds (Shopify allows 5 s): at most 3 attempts within 3 s.
/// Background mode ([`crate::BackgroundConfig`]) uses
/// [`RetryConfig::background`], which keeps trying for minutes.
///
/// ```
/// use std::time::Duration;
/// use sendpromptly_client::RetryConfig;
///
/// let retry = RetryConfig {
///     total_budget: Duration::from_millis(1500),
///     ..RetryConfig::default()
/// };
/// assert_eq!(retry.max_attempts, 3);
/// assert!(retry.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    /// Most attempts per call, the first included (1 = never retry).
    /// Default `3`; env `SENDPROMPTLY_RETRY_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled before each further one.
    /// Default 100 ms; env `SENDPROMPTLY_RETRY_INITIAL_BACKOFF_MS`.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts (a longer `Retry-After` still wins).
    /// Default 1 s; env `SENDPROMPTLY_RETRY_MAX_BACKOFF_MS`.
    pub max_backoff: Duration,
    /// Fraction (0.0 – 1.0) of each backoff removed at random, so many
    /// clients retrying at once spread out. Default `0.5`;
    /// env `SENDPROMPTLY_RETRY_JITTER`.
    pub jitter: f64,
    /// Longest time one call may take, all attempts and waits included.
    /// Default 3 s; env `SENDPROMPTLY_RETRY_TOTAL_BUDGET_MS`.
    pub total_budget: Duration,
    /// Longest time one attempt may take (connect, send, read the answer);
    /// always cut to what is left of `total_budget`.
    /// Default 2 s; env `SENDPROMPTLY_RETRY_ATTEMPT_TIMEOUT_MS`.
    pub attempt_timeout: Duration,
    /// Which failures are retried. Default: connection errors, timeouts, 429
    /// and 5xx; env `SENDPROMPTLY_RETRY_ON` (e.g. `connect,timeout,429,5xx`
    /// or `none`).
    pub retry_on: RetryOn,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            jitter: 0.5,
            total_budget: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(2),
            retry_on: RetryOn::default(),
        }
    }
}

impl RetryConfig {
    /// The policy of background mode, where nobody waits for the call: up to
    /// 20 attempts within 5 minutes, backoff from 500 ms up to 30 s, 10 s per
    /// attempt. Its environment overrides use the prefix
    /// `SENDPROMPTLY_BACKGROUND_RETRY_` (e.g.
    /// `SENDPROMPTLY_BACKGROUND_RETRY_TOTAL_BUDGET_MS`).
    pub fn background() -> Self {
        RetryConfig {
            max_attempts: 20,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            jitter: 0.5,
            total_budget: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(10),
            retry_on: RetryOn::default(),
        }
    }

    /// A policy that makes exactly one attempt within `timeout`.
    pub fn no_retries(timeout: Duration) -> Self {
        RetryConfig {
            max_attempts: 1,
            total_budget: timeout,
            attempt_timeout: timeout,
            ..RetryConfig::default()
        }
    }

    /// [`RetryConfig::default`] with the `SENDPROMPTLY_RETRY_*` environment
    /// overrides applied.
    pub fn from_env() -> Result<Self, Error> {
        Self::default().with_overrides(ENV_RETRY_PREFIX, &|name| std::env::var(name).ok())
    }

    /// Applies the overrides found by `lookup` under `prefix` (e.g.
    /// `SENDPROMPTLY_RETRY_`) to `self`, then validates the result.
    ///
    /// `lookup` stands in for the environment, which makes this testable and
    /// lets language bindings pass their own settings source.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sendpromptly_client::RetryConfig;
    ///
    /// let retry = RetryConfig::default()
    ///     .with_overrides("SENDPROMPTLY_RETRY_", &|name| {
    ///         (name == "SENDPROMPTLY_RETRY_TOTAL_BUDGET_MS").then(|| "1500".to_owned())
    ///     })
    ///     .unwrap();
    /// assert_eq!(retry.total_budget, Duration::from_millis(1500));
    /// ```
    pub fn with_overrides(
        mut self,
        prefix: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let var = |suffix: &str| {
            let name = format!("{prefix}{suffix}");
            lookup(&name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .map(|value| (name, value))
        };
        let bad = |name: &str, value: &str, expected: &str| {
            Error::config(format!("{name}={value:?} is invalid: expected {expected}"))
        };
        let millis = |suffix: &str| -> Result<Option<Duration>, Error> {
            var(suffix)
                .map(|(name, value)| {
                    value
                        .parse::<u64>()
                        .map(Duration::from_millis)
                        .map_err(|_| bad(&name, &value, "a whole number of milliseconds"))
                })
                .transpose()
        };
        if let Some((name, value)) = var("MAX_ATTEMPTS") {
            self.max_attempts = value
                .parse()
                .map_err(|_| bad(&name, &value, "a whole number of attempts, at least 1"))?;
        }
        if let Some(d) = millis("INITIAL_BACKOFF_MS")? {
            self.initial_backoff = d;
        }
        if let Some(d) = millis("MAX_BACKOFF_MS")? {
            self.max_backoff = d;
        }
        if let Some((name, value)) = var("JITTER") {
            self.jitter = value
                .parse()
                .map_err(|_| bad(&name, &value, "a fraction from 0.0 to 1.0"))?;
        }
        if let Some(d) = millis("TOTAL_BUDGET_MS")? {
            self.total_budget = d;
        }
        if let Some(d) = millis("ATTEMPT_TIMEOUT_MS")? {
            self.attempt_timeout = d;
        }
        if let Some((name, value)) = var("ON") {
            self.retry_on = RetryOn::parse(&value).map_err(|reason| {
                Error::config(format!("{name}={value:?} is invalid: {reason}"))
            })?;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks that the policy makes sense: at least one attempt, a jitter
    /// between 0 and 1, a non-zero budget and attempt timeout.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_attempts == 0 {
            return Err(Error::config(
                "retry max_attempts must be at least 1 (1 means no retries)",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::config(format!(
                "retry jitter must be between 0.0 and 1.0, got {}",
                self.jitter
            )));
        }
        if self.total_budget.is_zero() || self.attempt_timeout.is_zero() {
            return Err(Error::config(
                "retry total_budget and attempt_timeout must be greater than zero",
            ));
        }
        Ok(())
    }

    /// The backoff before retry number `retry` (1 = the first retry), before
    /// any `Retry-After`: `initial_backoff * 2^(retry-1)`, at most
    /// `max_backoff`, minus `jitter * jitter_unit` of it. `jitter_unit` is a
    /// random number in `[0, 1)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sendpromptly_client::RetryConfig;
    ///
    /// let retry = RetryConfig { jitter: 0.0, ..RetryConfig::default() };
    /// assert_eq!(retry.backoff(1, 0.5), Duration::from_millis(100));
    /// assert_eq!(retry.backoff(3, 0.5), Duration::from_millis(400));
    /// assert_eq!(retry.backoff(30, 0.5), Duration::from_secs(1));
    /// ```
    pub fn backoff(&self, retry: u32, jitter_unit: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        let cut = self.jitter.clamp(0.0, 1.0) * jitter_unit.clamp(0.0, 1.0);
        base.mul_f64(1.0 - cut)
    }
}

/// Everything a [`Client`](crate::Client) is built from.
///
/// ```
/// use sendpromptly_client::{Client, ClientOptions};
///
/// let client = Client::with_options(ClientOptions {
///     api_key: Some("sp_live_example".into()),
///     base_url: Some("https://sendpromptly.example.com".into()),
///     ..ClientOptions::default()
/// })
/// .unwrap();
/// # let _ = client;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ClientOptions {
    /// The project's API key (`sp_…`). `None`: read `SENDPROMPTLY_API_KEY`.
    pub api_key: Option<String>,
    /// The server's base URL, e.g. `https://sendpromptly.example.com` (a
    /// path prefix is kept). `None`: read `SENDPROMPTLY_URL`.
    pub base_url: Option<String>,
    /// The retry policy of every call. Default [`RetryConfig::default`]
    /// ([`ClientOptions::from_env`] applies the `SENDPROMPTLY_RETRY_*`
    /// overrides).
    pub retry: RetryConfig,
    /// Longest time to open a connection (also cut to the attempt timeout).
    /// Default 1 s; env `SENDPROMPTLY_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// Appended to the `User-Agent` (`sendpromptly-rust/<version>`), e.g. by
    /// language bindings (`sendpromptly-python/0.1.0`). Default none.
    pub user_agent_suffix: Option<String>,
    /// Dev mode: signals are logged instead of sent (see [`DevMode`]).
    /// `Some(false)` turns it off whatever the environment says;
    /// `Some(true)` turns it on (still refused in production unless
    /// `SENDPROMPTLY_DEV=force`); `None` (default): `SENDPROMPTLY_DEV`.
    pub dev: Option<bool>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            api_key: None,
            base_url: None,
            retry: RetryConfig::default(),
            connect_timeout: Duration::from_secs(1),
            user_agent_suffix: None,
            dev: None,
        }
    }
}

impl ClientOptions {
    /// Options read from the environment: `SENDPROMPTLY_API_KEY`,
    /// `SENDPROMPTLY_URL`, `SENDPROMPTLY_CONNECT_TIMEOUT_MS` and the
    /// `SENDPROMPTLY_RETRY_*` overrides.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Like [`ClientOptions::from_env`], with `lookup` standing in for the
    /// environment.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut options = ClientOptions {
            retry: RetryConfig::default().with_overrides(ENV_RETRY_PREFIX, lookup)?,
            ..ClientOptions::default()
        };
        options.fill_from(lookup)?;
        Ok(options)
    }

    /// Fills `api_key` and `base_url` from `lookup` where they are `None`,
    /// and reads `SENDPROMPTLY_CONNECT_TIMEOUT_MS`.
    pub(crate) fn fill_from(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), Error> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if self.api_key.is_none() {
            self.api_key = get(ENV_API_KEY);
        }
        if self.base_url.is_none() {
            self.base_url = get(ENV_URL);
        }
        if let Some(value) = get("SENDPROMPTLY_CONNECT_TIMEOUT_MS") {
            let millis: u64 = value.parse().map_err(|_| {
                Error::config(format!(
                    "SENDPROMPTLY_CONNECT_TIMEOUT_MS={value:?} is invalid: expected a whole number of milliseconds"
                ))
            })?;
            self.connect_timeout = Duration::from_millis(millis);
        }
        Ok(())
    }
}

/// Why a client runs in dev mode, where it logs each signal it would send
/// instead of sending it (so instrumentation can be added before a server is
/// set up).
///
/// The rule, decided once by [`DevMode::resolve`]:
///
/// - `SENDPROMPTLY_DEV=1` (or `true`, or [`ClientOptions::dev`] `Some(true)`)
///   turns it on; `SENDPROMPTLY_DEV=0` / `false` / unset leaves it off.
/// - No API key while `SENDPROMPTLY_ENV` or `NODE_ENV` is `development`
///   turns it on too; anywhere else a missing key is a configuration error.
/// - Where `SENDPROMPTLY_ENV` or `NODE_ENV` is `production`, dev mode is
///   refused (a configuration error, so the app does not start silently
///   unmonitored) unless `SENDPROMPTLY_DEV=force`.
/// - A client in dev mode logs a warning when it is built, saying how to
///   turn it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevMode {
    /// `SENDPROMPTLY_DEV=1` or `ClientOptions::dev = Some(true)`.
    Requested,
    /// No API key while the environment says `development`.
    NoApiKeyInDevelopment,
    /// `SENDPROMPTLY_DEV=force`: on although the environment says production.
    Forced,
}

impl DevMode {
    /// Whether the client runs in dev mode, and why, given the explicit
    /// setting, whether an API key is configured, and `lookup` standing in
    /// for the environment. An error names the variable to change.
    ///
    /// ```
    /// use sendpromptly_client::DevMode;
    ///
    /// let env = |name: &str| (name == "SENDPROMPTLY_DEV").then(|| "1".to_owned());
    /// assert_eq!(DevMode::resolve(None, false, &env).unwrap(), Some(DevMode::Requested));
    /// let prod = |name: &str| match name {
    ///     "SENDPROMPTLY_DEV" => Some("1".to_owned()),
    ///     "NODE_ENV" => Some("production".to_owned()),
    ///     _ => None,
    /// };
    /// assert!(DevMode::resolve(None, true, &prod).is_err());
    /// ```
    pub fn resolve(
        explicit: Option<bool>,
        has_api_key: bool,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<DevMode>, Error> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_ascii_lowercase())
                .filter(|v| !v.is_empty())
        };
        // `Some(None)`: explicitly off.
        let flag = match get(ENV_DEV).as_deref() {
            None => None,
            Some("1" | "true" | "yes" | "on") => Some(Some(DevMode::Requested)),
            Some("0" | "false" | "no" | "off") => Some(None),
            Some("force") => Some(Some(DevMode::Forced)),
            Some(other) => {
                return Err(Error::config(format!(
                    "{ENV_DEV}={other:?} is invalid: expected 1 (dev mode: log signals instead of sending them), 0 (off) or force (dev mode even in production)"
                )));
            }
        };
        let environment = [ENV_ENVIRONMENT, "NODE_ENV"]
            .into_iter()
            .find_map(|name| get(name).map(|value| (name, value)));
        let in_production = environment
            .as_ref()
            .filter(|(_, value)| value == "production" || value == "prod");
        let in_development = environment
            .as_ref()
            .is_some_and(|(_, value)| value == "development" || value == "dev");
        let wanted = match (explicit, flag) {
            (Some(false), _) | (None, Some(None)) => None,
            (_, Some(Some(DevMode::Forced))) => return Ok(Some(DevMode::Forced)),
            (Some(true), _) | (None, Some(Some(_))) => Some(DevMode::Requested),
            (None, None) if !has_api_key && in_development => Some(DevMode::NoApiKeyInDevelopment),
            (None, None) => None,
        };
        match (wanted, in_production) {
            (Some(_), Some((name, value))) => Err(Error::config(format!(
                "dev mode (signals logged, not sent) is refused because {name}={value}: unset {ENV_DEV} and configure SENDPROMPTLY_API_KEY and SENDPROMPTLY_URL, or set {ENV_DEV}=force if you really mean it"
            ))),
            (wanted, _) => Ok(wanted),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn every_retry_field_has_an_override() {
        let env = lookup(&[
            ("SENDPROMPTLY_RETRY_MAX_ATTEMPTS", "7"),
            ("SENDPROMPTLY_RETRY_INITIAL_BACKOFF_MS", "10"),
            ("SENDPROMPTLY_RETRY_MAX_BACKOFF_MS", "20"),
            ("SENDPROMPTLY_RETRY_JITTER", "0.25"),
            ("SENDPROMPTLY_RETRY_TOTAL_BUDGET_MS", "900"),
            ("SENDPROMPTLY_RETRY_ATTEMPT_TIMEOUT_MS", "300"),
            ("SENDPROMPTLY_RETRY_ON", "5xx, timeout"),
        ]);
        let retry = RetryConfig::default()
            .with_overrides(ENV_RETRY_PREFIX, &env)
            .unwrap();
        assert_eq!(
            retry,
            RetryConfig {
                max_attempts: 7,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(20),
                jitter: 0.25,
                total_budget: Duration::from_millis(900),
                attempt_timeout: Duration::from_millis(300),
                retry_on: RetryOn {
                    connection_errors: false,
                    timeouts: true,
                    too_many_requests: false,
                    server_errors: true,
                },
            }
        );
    }

    #[test]
    fn background_prefix_is_separate() {
        let env = lookup(&[
            ("SENDPROMPTLY_RETRY_MAX_ATTEMPTS", "2"),
            ("SENDPROMPTLY_BACKGROUND_RETRY_MAX_ATTEMPTS", "9"),
        ]);
        let retry = RetryConfig::background()
            .with_overrides(ENV_BACKGROUND_RETRY_PREFIX, &env)
            .unwrap();
        assert_eq!(retry.max_attempts, 9);
        assert_eq!(retry.total_budget, Duration::from_secs(300));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("SENDPROMPTLY_RETRY_MAX_ATTEMPTS", "many"),
            ("SENDPROMPTLY_RETRY_MAX_ATTEMPTS", "0"),
            ("SENDPROMPTLY_RETRY_JITTER", "1.5"),
            ("SENDPROMPTLY_RETRY_TOTAL_BUDGET_MS", "-1"),
            ("SENDPROMPTLY_RETRY_ON", "4xx"),
        ] {
            let err = RetryConfig::default()
                .with_overrides(ENV_RETRY_PREFIX, &lookup(&[(name, value)]))
                .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(name) || text.contains("max_attempts") || text.contains("jitter"),
                "{name}={value}: {text}"
            );
        }
    }

    #[test]
    fn backoff_grows_caps_and_jitters_down() {
        let retry = RetryConfig {
            jitter: 0.5,
            ..RetryConfig::default()
        };
        assert_eq!(retry.backoff(1, 0.0), Duration::from_millis(100));
        assert_eq!(retry.backoff(2, 0.0), Duration::from_millis(200));
        assert_eq!(retry.backoff(1, 1.0), Duration::from_millis(50));
        assert_eq!(retry.backoff(10, 0.0), Duration::from_secs(1));
        assert_eq!(retry.backoff(u32::MAX, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn client_options_fall_back_to_the_environment() {
        let env = lookup(&[
            ("SENDPROMPTLY_API_KEY", "sp_test_1"),
            ("SENDPROMPTLY_URL", "http://127.0.0.1:7700"),
            ("SENDPROMPTLY_CONNECT_TIMEOUT_MS", "250"),
        ]);
        let options = ClientOptions::from_lookup(&env).unwrap();
        assert_eq!(options.api_key.as_deref(), Some("sp_test_1"));
        assert_eq!(options.base_url.as_deref(), Some("http://127.0.0.1:7700"));
        assert_eq!(options.connect_timeout, Duration::from_millis(250));

        let mut explicit = ClientOptions {
            api_key: Some("sp_given".into()),
            ..ClientOptions::default()
        };
        explicit.fill_from(&env).unwrap();
        assert_eq!(explicit.api_key.as_deref(), Some("sp_given"));
        assert_eq!(explicit.base_url.as_deref(), Some("http://127.0.0.1:7700"));
    }
}
