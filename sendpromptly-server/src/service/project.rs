//! Project settings: their validation (shared with the CLI), the settings
//! change, signing-secret rotation and test alerts.

use sendpromptly_core::standard_webhooks::SigningSecret;
use sendpromptly_core::validation::validate_deadline_seconds;

use super::audit::{self, Change, Who};
use super::{ServiceError, ServiceResult};
use crate::app::AppState;
use crate::outbound::{OutboundPolicy, RefusedSetting};
use crate::store::{Project, ProjectPatch};
use crate::views::{ProjectUpdate, ProjectView, RotatedSecret};

/// How long the previous signing secrets keep signing after a rotation.
pub const ROTATION_OVERLAP_SECONDS: i64 = 24 * 3600;

/// Checks a repair or alert URL with [`OutboundPolicy::check_setting`] (the
/// check the dispatcher and the alert sender repeat at send time), as an
/// refusal naming the setting.
pub fn validate_outbound_url(
    policy: OutboundPolicy,
    param: &str,
    value: &str,
) -> ServiceResult<()> {
    policy
        .check_setting(param, value)
        .map(drop)
        .map_err(ServiceError::UrlRefused)
}

/// How long [`repair_url_refusal`] waits for a name to resolve.
const REFUSAL_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the project's stored repair URL would be refused if a callback were
/// sent now: the send-time check, the name resolved as the dispatcher
/// would (a URL stored before the policy changed, or a name that now
/// resolves to a private address). `None` when it would be sent.
pub async fn repair_url_refusal(state: &AppState, project: &Project) -> Option<RefusedSetting> {
    let url = project.repair_url.as_deref()?;
    state
        .outbound_resolver()
        .check_setting_now("repair_url", url, REFUSAL_LOOKUP_TIMEOUT)
        .await
        .err()
}

fn validate_alert_channels(
    policy: OutboundPolicy,
    channels: &serde_json::Value,
) -> ServiceResult<()> {
    fn invalid(param: impl Into<String>, message: impl Into<String>) -> ServiceError {
        ServiceError::invalid(param, message)
    }
    let list = channels
        .as_array()
        .ok_or_else(|| invalid("alert_channels", "must be a list of channels"))?;
    if list.len() > 20 {
        return Err(invalid("alert_channels", "at most 20 channels"));
    }
    for (i, channel) in list.iter().enumerate() {
        let param = |field: &str| format!("alert_channels[{i}].{field}");
        let object = channel
            .as_object()
            .ok_or_else(|| invalid(format!("alert_channels[{i}]"), "must be an object"))?;
        let field = |name: &str| object.get(name).and_then(|v| v.as_str());
        let required = |name: &str, kind: &str| {
            field(name)
                .ok_or_else(|| invalid(param(name), format!("is required for {kind} channels")))
        };
        match field("type") {
            Some("email") => {
                let to = required("to", "email")?;
                if !to.contains('@') || to.len() > 254 {
                    return Err(invalid(param("to"), "must be an email address"));
                }
            }
            Some("slack") => {
                let url = required("webhook_url", "slack")?;
                validate_outbound_url(policy, &param("webhook_url"), url)?;
            }
            Some("webhook") => {
                let url = required("url", "webhook")?;
                validate_outbound_url(policy, &param("url"), url)?;
            }
            _ => return Err(invalid(param("type"), "must be email, slack or webhook")),
        }
        if let Some(on) = object.get("on") {
            let events = on
                .as_array()
                .ok_or_else(|| invalid(param("on"), "must be a list of event names"))?;
            for event in events {
                if event
                    .as_str()
                    .and_then(sendpromptly_core::alert::AlertEvent::parse)
                    .is_none()
                {
                    let expected: Vec<&str> = sendpromptly_core::alert::AlertEvent::ALL
                        .iter()
                        .map(|e| e.as_str())
                        .collect();
                    return Err(invalid(
                        param("on"),
                        format!("unknown event {event}; expected {}", expected.join(", ")),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Validates a settings change and turns it into a storage patch.
pub fn patch_from_update(
    policy: OutboundPolicy,
    update: ProjectUpdate,
) -> ServiceResult<ProjectPatch> {
    if let Some(Some(url)) = &update.repair_url {
        validate_outbound_url(policy, "repair_url", url)?;
    }
    if let Some(seconds) = update.default_deadline_seconds {
        validate_deadline_seconds("default_deadline_seconds", seconds)?;
    }
    if let Some(table) = &update.deadlines_by_event_type {
        if table.len() > 200 {
            return Err(ServiceError::invalid(
                "deadlines_by_event_type",
                "at most 200 event types",
            ));
        }
        for (event_type, seconds) in table {
            if event_type.is_empty() || event_type.len() > 255 {
                return Err(ServiceError::invalid(
                    "deadlines_by_event_type",
                    "event types must be 1–255 characters",
                ));
            }
            validate_deadline_seconds(&format!("deadlines_by_event_type.{event_type}"), *seconds)?;
        }
    }
    if let Some(channels) = &update.alert_channels {
        validate_alert_channels(policy, channels)?;
    }
    if let Some(Some(template)) = &update.trace_url_template {
        sendpromptly_core::trace::validate_trace_url_template(template)
            .map_err(|e| ServiceError::invalid("trace_url_template", e.to_string()))?;
    }
    // An empty template (a cleared console field) removes it.
    let trace_url_template = update
        .trace_url_template
        .map(|t| t.filter(|t| !t.trim().is_empty()));
    Ok(ProjectPatch {
        repair_url: update.repair_url,
        default_deadline_seconds: update.default_deadline_seconds,
        deadlines_by_event_type: update.deadlines_by_event_type,
        alert_channels: update.alert_channels,
        proof_show_metadata: update.proof_show_metadata,
        trace_url_template,
    })
}

/// The project, or [`ServiceError::NotFound`].
pub async fn project(state: &AppState, project_id: &str) -> ServiceResult<Project> {
    state
        .store()
        .project(project_id)
        .await?
        .ok_or(ServiceError::NotFound("project"))
}

/// The project's settings as the API shows them.
pub async fn view(state: &AppState, project_id: &str) -> ServiceResult<ProjectView> {
    let project = project(state, project_id).await?;
    let secrets = state
        .store()
        .signing_secrets(project_id, state.now())
        .await?;
    let mut view = crate::views::project_view(&project, &secrets);
    let tap = super::provider_tap::tap_config(state, project_id).await?;
    view.provider_tap = Some(tap.view(state, project_id));
    view.slos = state.store().slo_objectives(project_id).await?;
    Ok(view)
}

/// Validates and applies a settings change, as `who` (audited:
/// `project.update`, and `provider_tap.update` for its tap part); the
/// signal key cache forgets its entries (they hold the project's deadlines).
pub async fn update(
    state: &AppState,
    who: &Who,
    project_id: &str,
    mut update: ProjectUpdate,
) -> ServiceResult<Project> {
    let tap = update.provider_tap.take();
    let slos = update.slos.take();
    if let Some(slos) = &slos {
        sendpromptly_core::stats::validate_slos(slos)?;
    }
    let patch = patch_from_update(state.config().outbound, update)?;
    // Validated before anything is written: a bad tap setting changes nothing.
    let tap = match tap {
        Some(tap) => {
            let before = super::provider_tap::tap_config(state, project_id).await?;
            let mut config = before.clone();
            super::provider_tap::apply_patch(&mut config.settings, tap)?;
            Some((before, config))
        }
        None => None,
    };
    let before = project(state, project_id).await?;
    let mut after = before.clone();
    patch.apply_to(&mut after);
    let project = if after == before {
        before
    } else {
        let change = Change {
            project_id: project_id.to_owned(),
            action: "project.update",
            target: project_id.to_owned(),
            before: Some(settings_state(&before)),
            after: Some(settings_state(&after)),
        };
        let write = state.store().update_project(project_id, patch);
        audit::record(state.store(), who, change, state.now(), write).await?
    };
    if let Some((before, mut config)) = tap {
        super::provider_tap::store_tap_config(state, who, project_id, &before, &mut config).await?;
    }
    if let Some(slos) = slos {
        let before = state.store().slo_objectives(project_id).await?;
        let mut sorted = slos.clone();
        sorted.sort_by(|a, b| a.event_type.cmp(&b.event_type));
        if before != sorted {
            let change = Change {
                project_id: project_id.to_owned(),
                action: "slo.update",
                target: project_id.to_owned(),
                before: serde_json::to_value(&before).ok(),
                after: serde_json::to_value(&slos).ok(),
            };
            let write = state.store().put_slo_objectives(project_id, &slos);
            audit::record(state.store(), who, change, state.now(), write).await?;
        }
    }
    state.signal_keys().forget_all();
    Ok(project)
}

/// A project's settings as the audit log keeps them (redacted by
/// [`audit::record`]).
fn settings_state(project: &Project) -> serde_json::Value {
    serde_json::json!({
        "repair_url": project.repair_url,
        "default_deadline_seconds": project.default_deadline_seconds,
        "deadlines_by_event_type": project.deadlines_by_event_type,
        "alert_channels": project.alert_channels,
        "proof_show_metadata": project.proof_show_metadata,
        "trace_url_template": project.trace_url_template,
    })
}

/// Creates a new signing secret for a project, as `who` (audited:
/// `signing_secret.rotate`, the new secret as a hint); the previous ones
/// keep signing for [`ROTATION_OVERLAP_SECONDS`].
pub async fn rotate(state: &AppState, who: &Who, project_id: &str) -> ServiceResult<RotatedSecret> {
    let now = state.now();
    let secret = SigningSecret::generate(&mut rand::rngs::OsRng);
    let overlap_ends = now.plus_seconds(ROTATION_OVERLAP_SECONDS);
    let change = Change {
        project_id: project_id.to_owned(),
        action: "signing_secret.rotate",
        target: project_id.to_owned(),
        before: None,
        after: Some(serde_json::json!({
            "secret": secret.expose(),
            "previous_secrets_expire_at": overlap_ends,
        })),
    };
    let secret_text = secret.expose();
    let write = state
        .store()
        .add_signing_secret(project_id, &secret_text, now, overlap_ends);
    audit::record(state.store(), who, change, now, write).await?;
    state.signing_secrets().forget(project_id);
    Ok(RotatedSecret {
        secret: secret.expose(),
        created_at: now,
        previous_secrets_expire_at: overlap_ends,
    })
}

/// Sends a clearly marked test alert to the project's channels (or one of
/// them) now, without the outbox, and reports each outcome (none without
/// channels). A channel index out of range is an invalid `channel`.
pub async fn test_alerts(
    state: &AppState,
    project_id: &str,
    only: Option<usize>,
) -> ServiceResult<Vec<crate::alerts::TestSendOutcome>> {
    let project = project(state, project_id).await?;
    let channels = sendpromptly_core::alert::parse_channels(&project.alert_channels)
        .map_err(|err| ServiceError::invalid("alert_channels", err.to_string()))?;
    if let Some(index) = only
        && index >= channels.len()
    {
        return Err(ServiceError::invalid(
            "channel",
            format!(
                "no channel {index}; the project has {} (0-based)",
                channels.len()
            ),
        ));
    }
    let http = crate::dispatcher::http_client(state)
        .map_err(|err| ServiceError::Internal(format!("cannot build the HTTP client: {err}")))?;
    Ok(crate::alerts::send_test(state, &http, project_id, &channels, only).await)
}
