//! The Stripe reconciler (issue #20, the pull side): reads each project's
//! Stripe event list with the project's restricted key and feeds every
//! tracked event to the expected-events sink, so a payment whose webhook
//! never reached SendPromptly (nor the app) is still expected, and a
//! missing receipt opens an incident.
//!
//! - **Watermark**: Stripe's event ids are not ordered, so progress is the
//!   newest `created` fed by a finished pass; the next pass lists from it
//!   minus an overlap (default 10 min: events become listable a little
//!   after their `created`). Re-seen events are harmless: the sink is
//!   idempotent by event id.
//! - **Resumable passes**: Stripe lists newest first, so a pass fixes its
//!   window (`created[gte]`, `created[lte]`) at its start and saves its
//!   cursor (the last event id handled) after each page; a pass cut short by
//!   a restart or an error resumes after that cursor, and only a finished
//!   pass raises the watermark.
//! - **Lease**: a pass holds the project's lease in the database (owner and
//!   expiry, extended with each page), so among several instances on one
//!   PostgreSQL database one runs a project's pass at a time, and a dead
//!   instance's lease runs out.
//! - **Errors** (a 401 for a revoked key, Stripe rate limits that outlast
//!   the retries, …) end the pass, are stored as the project's reconcile
//!   status and counted in `/metrics`; the loop goes on.
//!
//! The Stripe client is [`stripe_api`]; the loop is [`run`]; `sendpromptly
//! reconcile stripe` (the CLI's backfill) uses [`backfill`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sendpromptly_core::Timestamp;
use sendpromptly_core::model::Provider;
use sendpromptly_core::provider_event::EventReference;
use tokio::sync::watch;

use crate::app::AppState;
use crate::health::Loop;
use crate::store::{ReconcileOutcome, ReconcilePass, Store, StoreError};

pub mod stripe_api;

use stripe_api::{EventsClient, EventsQuery, StripeApiError};

/// The Stripe event types listed when a project names none: the Stripe
/// types the provider tap tracks by default
/// ([`TRACKABLE_EVENT_TYPES`](crate::service::provider_tap::TRACKABLE_EVENT_TYPES)).
pub fn default_tracked_types() -> Vec<String> {
    crate::service::provider_tap::TRACKABLE_EVENT_TYPES
        .iter()
        .filter(|(provider, _)| *provider == Provider::Stripe)
        .map(|(_, event_type)| (*event_type).to_owned())
        .collect()
}

/// What the sink did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkOutcome {
    /// It was not known: it is now expected.
    Recorded,
    /// It was known already (a receipt, a webhook, an earlier pass, another
    /// event id of the same change).
    AlreadyKnown,
    /// The project does not track its type: nothing was stored.
    NotTracked,
}

impl SinkOutcome {
    /// The word for it (`recorded`, `already_known`, `not_tracked`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SinkOutcome::Recorded => "recorded",
            SinkOutcome::AlreadyKnown => "already_known",
            SinkOutcome::NotTracked => "not_tracked",
        }
    }
}

/// Why the sink could not record an event.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where the reconciler feeds the events it finds: the expected-events
/// service (`service::expected::record_expected` with
/// `LearnedVia::Reconciler`). Idempotent by event id.
#[async_trait]
pub trait ExpectedSink: Send + Sync {
    /// Records that `reference` (of `project_id`) was delivered by Stripe.
    async fn record(
        &self,
        project_id: &str,
        reference: &EventReference,
    ) -> Result<SinkOutcome, SinkError>;
}

/// How the reconciler reads a project's Stripe account.
#[derive(Clone)]
pub struct StripeAccess {
    /// The restricted key (`rk_live_…`/`rk_test_…`) with Events: Read.
    pub key: String,
    /// The event types to list (`types[]`; at most 20).
    pub types: Vec<String>,
}

impl std::fmt::Debug for StripeAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeAccess")
            .field("key", &"redacted")
            .field("types", &self.types)
            .finish()
    }
}

/// Where the reconciler finds a project's Stripe access.
#[async_trait]
pub trait RestrictedKeys: Send + Sync {
    /// The project's key and tracked types; `None`: the project has no
    /// restricted key and is not reconciled.
    async fn stripe_access(&self, project_id: &str) -> Result<Option<StripeAccess>, SinkError>;
}

/// The server's sink: `service::expected::record_expected` with
/// `LearnedVia::Reconciler`.
#[derive(Clone)]
pub struct ServiceSink(pub AppState);

#[async_trait]
impl ExpectedSink for ServiceSink {
    async fn record(
        &self,
        project_id: &str,
        reference: &EventReference,
    ) -> Result<SinkOutcome, SinkError> {
        use crate::service::expected::{ExpectedOutcome, LearnedVia, record_expected};
        match record_expected(&self.0, project_id, reference, LearnedVia::Reconciler).await {
            Ok(ExpectedOutcome::Created) => Ok(SinkOutcome::Recorded),
            Ok(
                ExpectedOutcome::Duplicate
                | ExpectedOutcome::AlreadyReceived
                | ExpectedOutcome::LinkedByFingerprint,
            ) => Ok(SinkOutcome::AlreadyKnown),
            Ok(ExpectedOutcome::NotTracked) => Ok(SinkOutcome::NotTracked),
            Err(err) => Err(SinkError(err.to_string())),
        }
    }
}

/// The server's key source: the project's provider-tap settings (the
/// restricted key, sealed at rest, and the tracked Stripe types).
#[derive(Clone)]
pub struct StoredKeys(pub AppState);

#[async_trait]
impl RestrictedKeys for StoredKeys {
    async fn stripe_access(&self, project_id: &str) -> Result<Option<StripeAccess>, SinkError> {
        let store = self.0.store();
        let Some(settings) = store
            .provider_tap_settings(project_id)
            .await
            .map_err(|e| SinkError(e.to_string()))?
        else {
            return Ok(None);
        };
        let Some(key) = settings.stripe_restricted_key.filter(|k| !k.is_empty()) else {
            return Ok(None);
        };
        let types: Vec<String> = match settings.tracked_event_types {
            // Shopify topics (`orders/paid`) are not Stripe types.
            Some(types) => types.into_iter().filter(|t| !t.contains('/')).collect(),
            None => default_tracked_types(),
        };
        if types.is_empty() {
            // No Stripe type is tracked: nothing to reconcile (an empty
            // `types[]` would list every type).
            return Ok(None);
        }
        Ok(Some(StripeAccess { key, types }))
    }
}

/// Why a pass (or a backfill) stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Stripe refused or failed.
    #[error(transparent)]
    Stripe(#[from] StripeApiError),
    /// The sink failed.
    #[error("recording an expected event failed: {0}")]
    Sink(#[from] SinkError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pass's lease ran out and another instance took it.
    #[error(
        "the reconciler lease of project {0} ran out during the pass; another instance runs it"
    )]
    LeaseLost(String),
}

impl ReconcileError {
    /// A stable word for metrics and the stored status.
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Stripe(err) => err.kind(),
            ReconcileError::Sink(_) => "sink",
            ReconcileError::Store(_) => "store",
            ReconcileError::LeaseLost(_) => "lease_lost",
        }
    }
}

/// The reconciler's settings.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// How far before the watermark each pass lists again.
    pub overlap: Duration,
    /// How far back a project's first pass lists.
    pub first_lookback: Duration,
    /// How long a lease lasts without a page (each page extends it).
    pub lease: Duration,
    /// Events per page (1–100).
    pub page_limit: u32,
    /// How often each project gets a pass.
    pub interval: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            overlap: Duration::from_secs(600),
            first_lookback: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(120),
            page_limit: stripe_api::MAX_PAGE_LIMIT,
            interval: Duration::from_secs(300),
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug)]
pub struct PassReport {
    /// Events fed to the sink.
    pub fed: u64,
    /// Of those, how many the sink did not know.
    pub recorded: u64,
    /// Pages listed.
    pub pages: u32,
    /// The window listed (`created[gte]`, `created[lte]`).
    pub window: (i64, i64),
    /// Whether the pass resumed an interrupted one.
    pub resumed: bool,
    /// The watermark after the pass.
    pub watermark: Option<i64>,
    /// When (on this process's clock) the lease was known taken and when
    /// the pass was about to free it: inside the lease's real span.
    pub held: (Instant, Instant),
}

/// How a pass call ended.
#[derive(Clone, Debug)]
pub enum PassOutcome {
    /// The pass ran to the end.
    Ran(PassReport),
    /// Another instance holds the project's lease.
    LeaseBusy,
}

/// Everything a pass needs besides the store and the clock.
pub struct Reconciler {
    /// The Stripe client.
    pub client: EventsClient,
    /// Where events go.
    pub sink: Arc<dyn ExpectedSink>,
    /// Where keys come from.
    pub keys: Arc<dyn RestrictedKeys>,
    /// Settings.
    pub settings: ReconcileSettings,
    /// This instance's lease owner id.
    pub owner: String,
}

impl Reconciler {
    /// The server's reconciler: settings from `config`, a fresh owner id.
    pub fn from_config(
        config: &crate::config::ServerConfig,
        sink: Arc<dyn ExpectedSink>,
        keys: Arc<dyn RestrictedKeys>,
    ) -> Result<Reconciler, StripeApiError> {
        let settings = ReconcileSettings {
            overlap: config.reconcile_overlap,
            interval: config
                .reconcile_interval
                .unwrap_or(Duration::from_secs(300)),
            ..ReconcileSettings::default()
        };
        Ok(Reconciler {
            client: EventsClient::new(&config.stripe_api_base, Duration::from_secs(30))?,
            sink,
            keys,
            settings,
            owner: new_owner_id(),
        })
    }
}

/// A fresh owner id for this process's leases.
pub fn new_owner_id() -> String {
    format!("{}-{:08x}", std::process::id(), rand::random::<u32>())
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The oldest `created` Stripe still lists at `now` (with a minute's margin).
pub fn oldest_listable(now: Timestamp) -> i64 {
    now.unix_seconds() - seconds(stripe_api::RETENTION) + 60
}

impl Reconciler {
    /// One pass over `project_id` with `key`: takes the lease, lists the
    /// window (resuming an interrupted pass), feeds each event to the sink,
    /// saves progress after each page, and records the outcome. An error
    /// is recorded as the project's status before it is returned.
    pub async fn pass(
        &self,
        store: &dyn Store,
        clock: &(dyn Fn() -> Timestamp + Send + Sync),
        project_id: &str,
        access: &StripeAccess,
        mut on_page: impl FnMut() + Send,
    ) -> Result<PassOutcome, ReconcileError> {
        let settings = &self.settings;
        let now = clock();
        let Some(state) = store
            .take_reconcile_lease(project_id, &self.owner, now, settings.lease)
            .await?
        else {
            return Ok(PassOutcome::LeaseBusy);
        };
        let taken = Instant::now();
        let floor = oldest_listable(now);
        // An interrupted pass whose cursor Stripe may no longer keep is
        // started afresh (its window is re-listed from the watermark).
        let interrupted = state.pass.filter(|pass| pass.upper > floor + 86_400);
        let resumed = interrupted.is_some();
        let mut pass = interrupted.unwrap_or_else(|| {
            let lower = match state.watermark {
                Some(watermark) => watermark - seconds(settings.overlap),
                None => now.unix_seconds() - seconds(settings.first_lookback),
            };
            ReconcilePass {
                lower,
                upper: now.unix_seconds(),
                cursor: None,
                newest: None,
            }
        });
        if pass.lower < floor {
            tracing::warn!(
                project_id,
                "the reconciler's window starts more than 30 days ago; Stripe no longer lists older events"
            );
            pass.lower = floor;
        }
        let listed = self
            .list_pass(store, clock, project_id, access, &mut pass, &mut on_page)
            .await;
        let (outcome, result) = match listed {
            Ok((fed, recorded, pages)) => (
                ReconcileOutcome::Succeeded {
                    watermark: pass.newest,
                },
                Ok((fed, recorded, pages)),
            ),
            Err(ReconcileError::LeaseLost(p)) => return Err(ReconcileError::LeaseLost(p)),
            Err(err) => (
                ReconcileOutcome::Failed {
                    kind: err.kind().to_owned(),
                    message: err.to_string(),
                },
                Err(err),
            ),
        };
        let freeing = Instant::now();
        if !store
            .finish_reconcile(project_id, &self.owner, clock(), &outcome)
            .await?
        {
            return Err(ReconcileError::LeaseLost(project_id.to_owned()));
        }
        let (fed, recorded, pages) = result?;
        let watermark = match (state.watermark, pass.newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(PassOutcome::Ran(PassReport {
            fed,
            recorded,
            pages,
            window: (pass.lower, pass.upper),
            resumed,
            watermark,
            held: (taken, freeing),
        }))
    }

    async fn list_pass(
        &self,
        store: &dyn Store,
        clock: &(dyn Fn() -> Timestamp + Send + Sync),
        project_id: &str,
        access: &StripeAccess,
        pass: &mut ReconcilePass,
        on_page: &mut (impl FnMut() + Send),
    ) -> Result<(u64, u64, u32), ReconcileError> {
        let query = EventsQuery {
            types: access.types.clone(),
            created_gte: pass.lower,
            created_lte: Some(pass.upper),
            limit: self.settings.page_limit,
        };
        let (mut fed, mut recorded, mut pages) = (0_u64, 0_u64, 0_u32);
        loop {
            let page = self
                .client
                .list_events(&access.key, &query, pass.cursor.as_deref())
                .await?;
            pages += 1;
            for event in &page.events {
                let reference = EventReference::from_stripe_event(event);
                if self.sink.record(project_id, &reference).await? == SinkOutcome::Recorded {
                    recorded += 1;
                }
                if let Some(created) = event.created {
                    let created = created.unix_seconds();
                    pass.newest = Some(pass.newest.map_or(created, |n| n.max(created)));
                }
                pass.cursor = Some(event.id.clone());
            }
            let count = u64::try_from(page.events.len()).unwrap_or(u64::MAX);
            fed += count;
            if !store
                .save_reconcile_progress(
                    project_id,
                    &self.owner,
                    pass,
                    count,
                    clock(),
                    self.settings.lease,
                )
                .await?
            {
                return Err(ReconcileError::LeaseLost(project_id.to_owned()));
            }
            on_page();
            if !page.has_more || page.events.is_empty() {
                return Ok((fed, recorded, pages));
            }
        }
    }
}

/// What a backfill found.
#[derive(Clone, Debug)]
pub struct BackfillItem {
    /// The event's reference.
    pub reference: EventReference,
    /// What the sink did (or, in a dry run, would do) with it.
    pub outcome: SinkOutcome,
}

/// Lists `since..=until` (unix seconds) of `types` and feeds each event to
/// `sink`. Leaves the watermark alone (a backfill is not a pass). Calls
/// `on_page` after each page with the oldest `created` reached (Stripe
/// lists newest first) and the number of events so far.
#[allow(clippy::too_many_arguments)]
pub async fn backfill(
    client: &EventsClient,
    key: &str,
    types: &[String],
    since: i64,
    until: i64,
    project_id: &str,
    sink: &dyn ExpectedSink,
    mut on_page: impl FnMut(i64, usize),
) -> Result<Vec<BackfillItem>, ReconcileError> {
    let query = EventsQuery {
        types: types.to_vec(),
        created_gte: since,
        created_lte: Some(until),
        limit: stripe_api::MAX_PAGE_LIMIT,
    };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client.list_events(key, &query, cursor.as_deref()).await?;
        for event in &page.events {
            let reference = EventReference::from_stripe_event(event);
            let outcome = sink.record(project_id, &reference).await?;
            items.push(BackfillItem { reference, outcome });
            cursor = Some(event.id.clone());
        }
        let oldest = page
            .events
            .iter()
            .filter_map(|e| e.created)
            .map(Timestamp::unix_seconds)
            .min()
            .unwrap_or(since);
        on_page(oldest, items.len());
        if !page.has_more || page.events.is_empty() {
            return Ok(items);
        }
    }
}

/// A sink that writes nothing (`--dry-run`): an event the project already
/// holds (by event id, or another id of the same change by fingerprint) is
/// [`SinkOutcome::AlreadyKnown`], a type it does not track
/// [`SinkOutcome::NotTracked`], anything else [`SinkOutcome::Recorded`]
/// (would be).
#[derive(Clone)]
pub struct DryRunSink(pub AppState);

#[async_trait]
impl ExpectedSink for DryRunSink {
    async fn record(
        &self,
        project_id: &str,
        reference: &EventReference,
    ) -> Result<SinkOutcome, SinkError> {
        let words = |e: StoreError| SinkError(e.to_string());
        let config = crate::service::provider_tap::tap_config(&self.0, project_id)
            .await
            .map_err(|e| SinkError(e.to_string()))?;
        if !config.tracks(reference.provider, &reference.event_type) {
            return Ok(SinkOutcome::NotTracked);
        }
        let store = self.0.store();
        let key = sendpromptly_core::model::EventKey {
            provider: reference.provider,
            event_id: reference.event_id.clone(),
        };
        if store
            .event(project_id, &key)
            .await
            .map_err(words)?
            .is_some()
            || store
                .event_by_fingerprint(project_id, reference.provider, &reference.fingerprint)
                .await
                .map_err(words)?
                .is_some()
        {
            return Ok(SinkOutcome::AlreadyKnown);
        }
        Ok(SinkOutcome::Recorded)
    }
}

/// Runs the reconciler until `shutdown` turns true: every tick it reports
/// to the health checks (a tick reads the projects: the database answers),
/// and each project with a restricted key whose interval has passed gets a
/// pass. A failing project does not stop the others.
pub async fn run(
    state: AppState,
    reconciler: Arc<Reconciler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let enabled = state.config().reconcile_interval.is_some();
    let interval = reconciler.settings.interval;
    // Often enough for the health check (half its bound), at most 5 s.
    let tick = interval
        .min(Duration::from_secs(5))
        .min(state.config().health_loop_bound / 2);
    let mut next_due: std::collections::HashMap<String, Instant> = Default::default();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let ticked = if enabled {
            tick_once(
                &state,
                &reconciler,
                &mut next_due,
                (interval, tick),
                &mut shutdown,
            )
            .await
        } else {
            // Off: nothing to do, and nothing late.
            Ok(())
        };
        match ticked {
            Ok(()) => state.health().pass(Loop::Reconciler),
            Err(err) => tracing::warn!(error = %err, "reconciler tick failed; retrying next tick"),
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn tick_once(
    state: &AppState,
    reconciler: &Reconciler,
    next_due: &mut std::collections::HashMap<String, Instant>,
    (interval, tick): (Duration, Duration),
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let projects = state.store().list_projects().await?;
    for project in projects {
        if *shutdown.borrow() {
            return Ok(());
        }
        if next_due
            .get(&project.id)
            .is_some_and(|due| Instant::now() < *due)
        {
            continue;
        }
        next_due.insert(project.id.clone(), Instant::now() + interval);
        let access = match reconciler.keys.stripe_access(&project.id).await {
            Ok(Some(access)) => access,
            Ok(None) => continue,
            Err(err) => {
                tracing::warn!(project_id = %project.id, error = %err, "cannot read the restricted key");
                continue;
            }
        };
        let clock = || state.now();
        let health = || state.health().pass(Loop::Reconciler);
        let pass = reconciler.pass(state.store(), &clock, &project.id, &access, health);
        tokio::pin!(pass);
        // While Stripe makes the pass wait (429 backoff, a slow answer), the
        // loop is still alive: it reports so while the database answers. A
        // shutdown does not wait for Stripe: the pass stops where it is (its
        // progress is saved page by page; its lease runs out).
        let outcome = loop {
            tokio::select! {
                outcome = &mut pass => break outcome,
                _ = shutdown.changed() => return Ok(()),
                () = tokio::time::sleep(tick) => {
                    if state.store().ping().await.is_ok() {
                        state.health().pass(Loop::Reconciler);
                    }
                }
            }
        };
        match outcome {
            Ok(PassOutcome::Ran(report)) => {
                state.metrics().reconcile_pass(report.fed, state.now());
                tracing::debug!(project_id = %project.id, fed = report.fed, recorded = report.recorded, "reconciler pass");
            }
            Ok(PassOutcome::LeaseBusy) => {}
            Err(err) => {
                state.metrics().reconcile_error(err.kind());
                tracing::warn!(project_id = %project.id, kind = err.kind(), "reconciler pass failed: {err}");
            }
        }
    }
    Ok(())
}
