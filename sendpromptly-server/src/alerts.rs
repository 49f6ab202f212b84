//! The alert sender: claims due alerts from the alert outbox (grouping
//! bursts into digests as it claims, see [`Store::claim_alerts`]), sends
//! them to their channel (Slack Block Kit, a Standard-Webhooks-signed
//! webhook, or email over SMTP), and records every attempt on the timeline
//! of each incident the alert is about.
//!
//! Like the repair-callback dispatcher: no transaction is open while
//! sending; retries follow the callback retry schedule (with `Retry-After`);
//! pending alerts live in the database, so a restart resumes them.
//!
//! [`Store::claim_alerts`]: crate::store::Store::claim_alerts

use std::time::{Duration, Instant};

use sendpromptly_core::Timestamp;
use sendpromptly_core::alert::{
    AlertChannel, AlertEvent, AlertMessage, ChannelTarget, IncidentFacts,
};
use sendpromptly_core::machine::AttemptReport;
use sendpromptly_core::model::{IncidentKind, Provider};
use sendpromptly_core::retry::AttemptClass;
use sendpromptly_core::standard_webhooks;
use serde::Serialize;
use tokio::sync::watch;

use crate::app::AppState;
use crate::dispatcher::{elapsed_ms, failed, post_json};
use crate::metrics::AttemptOutcome;
use crate::outbox::Outbox;
use crate::store::{AlertJob, alert_attempt_entry};

/// Alerts sent at once.
const CONCURRENCY: usize = 4;

/// Runs the sender until `shutdown` turns true, then waits for sends in
/// flight (the loop is [`crate::outbox`]'s).
pub async fn run(state: AppState, http: reqwest::Client, shutdown: watch::Receiver<bool>) {
    let outbox = Outbox {
        what: "alerts",
        health: crate::health::Loop::Alerts,
        concurrency: CONCURRENCY,
        wake_on_dispatch: false,
    };
    crate::outbox::run(
        state,
        http,
        outbox,
        shutdown,
        |state, free| async move {
            state
                .store()
                .claim_alerts(
                    state.now(),
                    state.config().callback_lease,
                    free,
                    state.config().alert_group_window_seconds,
                )
                .await
        },
        |state, http, job| async move { deliver(&state, &http, job).await },
    )
    .await;
}

/// Sends one attempt of `job` and records it.
pub async fn deliver(state: &AppState, http: &reqwest::Client, job: AlertJob) {
    skip_point!("alerts.before_send");
    let now = state.now();
    let message = alert_message(
        &job,
        state.config().alert_group_window_seconds,
        |path| state.public_url(path),
        now,
    );
    let (report, class, retry_after) = send(
        state,
        http,
        &job.project_id,
        &job.channel,
        &job.id,
        &message,
    )
    .await;
    skip_point!("alerts.after_send");
    let now = state.now();
    let next = state.config().callback_schedule.next_step(
        job.attempt,
        class,
        retry_after,
        rand::random::<f64>(),
        now,
    );
    state.metrics().alert_attempt(AttemptOutcome::of(&next));
    tracing::info!(
        alert_id = %job.id,
        channel = job.channel.kind(),
        incidents = job.incidents.len(),
        attempt = job.attempt,
        status = ?report.status,
        error = ?report.error,
        outcome = ?next,
        "alert attempt"
    );
    let entry = alert_attempt_entry(&job, &report, next, now);
    match state
        .store()
        .finish_alert_attempt(&job, &entry, next, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::debug!(alert_id = %job.id, "alert no longer held under this lease"),
        Err(err) => {
            tracing::warn!(error = %err, alert_id = %job.id, "could not record an alert attempt; it is retried when its lease ends")
        }
    }
}

/// Sends `message` to `channel` once: the attempt's report, class and any
/// `Retry-After`. `msg_id` is the webhook's `webhook-id`.
pub async fn send(
    state: &AppState,
    http: &reqwest::Client,
    project_id: &str,
    channel: &AlertChannel,
    msg_id: &str,
    message: &AlertMessage,
) -> (AttemptReport, AttemptClass, Option<Duration>) {
    let started = Instant::now();
    let now = state.now();
    match &channel.target {
        ChannelTarget::Slack { webhook_url } => {
            if let Err(refused) = state
                .config()
                .outbound
                .check_setting("webhook_url", webhook_url)
            {
                return failed(started, format!("refused before sending: {refused}"));
            }
            let body = message.slack_payload().to_string().into_bytes();
            post_json(http, webhook_url, body, &[], now, started, "Slack").await
        }
        ChannelTarget::Webhook { url } => {
            if let Err(refused) = state.config().outbound.check_setting("url", url) {
                return failed(started, format!("refused before sending: {refused}"));
            }
            let secrets = match state
                .signing_secrets()
                .secrets(state.store(), project_id, now)
                .await
            {
                Ok(secrets) => secrets,
                Err(err) => {
                    return failed(started, format!("could not load signing secrets: {err}"));
                }
            };
            let body = message.webhook_body().to_string().into_bytes();
            let headers = match standard_webhooks::sign_headers(msg_id, now, &body, &secrets) {
                Ok(headers) => headers,
                Err(err) => return failed(started, format!("could not sign the alert: {err}")),
            };
            post_json(
                http,
                url,
                body,
                &headers.to_pairs(),
                now,
                started,
                "the alert webhook",
            )
            .await
        }
        ChannelTarget::Email { to } => {
            let Some(smtp) = state.config().smtp.as_ref() else {
                return failed(
                    started,
                    "no SMTP server is configured (--smtp-url, --smtp-from)".into(),
                );
            };
            match crate::email::send(smtp, state.config().callback_timeout, to, message).await {
                Ok(()) => (
                    AttemptReport {
                        trace: None,
                        status: None,
                        latency_ms: elapsed_ms(started),
                        response_excerpt: None,
                        error: None,
                    },
                    AttemptClass::Delivered,
                    None,
                ),
                Err(err) => {
                    // A bad address or a permanent SMTP refusal will not
                    // fix itself: stop at once, like `410 Gone`. A relay
                    // without STARTTLS is retried: the operator may fix
                    // --smtp-url and restart before the retries run out.
                    let permanent = match &err {
                        crate::email::EmailError::Smtp(e) => e.is_permanent(),
                        crate::email::EmailError::StartTlsNotOffered { .. } => false,
                        _ => true,
                    };
                    let (report, class, _) = failed(started, err.to_string());
                    let class = if permanent { AttemptClass::Gone } else { class };
                    (report, class, None)
                }
            }
        }
    }
}

/// The outcome of a test send to one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TestSendOutcome {
    /// The channel's index in `alert_channels`.
    pub channel: usize,
    /// `email`, `slack` or `webhook`.
    pub kind: String,
    /// Whether the receiver accepted it.
    pub delivered: bool,
    /// The HTTP status, for Slack and webhooks.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long the attempt took.
    pub latency_ms: u64,
}

/// The clearly marked message of a test send; its link opens the settings
/// of `project_id`.
pub fn test_message(state: &AppState, project_id: &str, now: Timestamp) -> AlertMessage {
    AlertMessage::Single {
        event: AlertEvent::IncidentOpened,
        facts: IncidentFacts {
            incident_id: "inc_test".into(),
            provider: Provider::Stripe,
            event_id: "evt_test".into(),
            event_type: "sendpromptly.test_alert".into(),
            subject: Some("test".into()),
            kind: IncidentKind::FailedResult,
            reason: Some(
                "TEST ALERT from SendPromptly: nothing is wrong, this channel works".into(),
            ),
            received_at: now,
            console_url: state.public_url(&crate::links::settings_link_path(project_id)),
        },
        at: now,
    }
}

/// Sends a test alert synchronously to every channel of the project (or
/// only `only`, an index), without the outbox; one outcome per channel.
pub async fn send_test(
    state: &AppState,
    http: &reqwest::Client,
    project_id: &str,
    channels: &[AlertChannel],
    only: Option<usize>,
) -> Vec<TestSendOutcome> {
    let now = state.now();
    let message = test_message(state, project_id, now);
    let mut out = Vec::new();
    for (index, channel) in channels.iter().enumerate() {
        if only.is_some_and(|i| i != index) {
            continue;
        }
        let msg_id = sendpromptly_core::ids::new_id(
            sendpromptly_core::ids::ALERT,
            now,
            &mut rand::thread_rng(),
        );
        let (report, class, _) = send(state, http, project_id, channel, &msg_id, &message).await;
        out.push(TestSendOutcome {
            channel: index,
            kind: channel.kind().to_owned(),
            delivered: class == AttemptClass::Delivered,
            status: report.status,
            error: report.error,
            latency_ms: report.latency_ms,
        });
    }
    out
}

/// The message to send at `now`: a single alert, or a digest when the
/// job carries several incidents. `console` turns a console path
/// (`/incidents/inc_…?project=prj_…`, see
/// [`crate::links::incident_link_path`]) into an
/// absolute link.
pub fn alert_message(
    job: &AlertJob,
    window_seconds: i64,
    console: impl Fn(&str) -> String,
    now: Timestamp,
) -> AlertMessage {
    if let Some(facts) = &job.slo {
        return AlertMessage::Slo {
            facts: facts.clone(),
        };
    }
    let mut incidents = job.incidents.clone();
    for facts in &mut incidents {
        facts.console_url = console(&crate::links::incident_link_path(
            &job.project_id,
            &facts.incident_id,
        ));
    }
    if incidents.len() == 1 {
        let facts = incidents.remove(0);
        AlertMessage::Single {
            event: job.event,
            facts,
            at: now,
        }
    } else {
        AlertMessage::Digest {
            event: job.event,
            event_type: incidents
                .first()
                .map(|f| f.event_type.clone())
                .unwrap_or_default(),
            incidents,
            window_seconds,
            console_url: console(crate::links::INCIDENTS_PATH),
        }
    }
}
