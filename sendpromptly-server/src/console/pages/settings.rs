//! Settings: the settings page and its forms (general, deadlines, alert
//! channels, test alert, signing-secret rotation, API keys), and the
//! project switcher.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::{Done, PageResult, fail, non_empty, respond, see_other, time};
use crate::app::AppState;
use crate::console::PageError;
use crate::console::auth::{self};
use crate::console::{Layout, Notice, PROJECT_COOKIE, Workspace, render};
use crate::render::display_time;
use crate::service::project::{self as project_service, rotate};
use crate::views::ProjectUpdate;

/// A signing secret in the list (never the secret itself).
pub struct SecretItem {
    pub created_at: String,
    pub expires_at: String,
}

/// An API key in the list.
pub struct KeyItem {
    pub id: String,
    pub prefix: String,
    pub name: String,
    pub scopes: String,
    pub last_used: String,
    pub advice: Option<String>,
    pub created_at: String,
    pub revoked: bool,
    pub revoked_at: String,
}

/// A secret shown once.
pub struct Shown {
    pub label: &'static str,
    pub value: String,
    pub hint: &'static str,
}

/// A console user in the list.
pub struct UserItem {
    pub email: String,
    pub created_at: String,
}

/// The reconciler's last outcome as the settings page shows it (a key
/// Stripe refuses is said here, not only in `/metrics`).
struct ReconcileStatus {
    /// The last pass's error in words, when it failed.
    failing: Option<String>,
    /// When a pass last succeeded.
    last_success: String,
    /// Stripe events the passes have checked.
    events_fed: u64,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    layout: Layout,
    project_id: String,
    repair_url: String,
    /// Why the saved repair URL will be refused when a callback is sent
    /// (saved before, or the server now runs without --allow-private-urls).
    repair_url_refused: Option<String>,
    default_deadline_seconds: String,
    proof_show_metadata: bool,
    deadlines: String,
    alerts: String,
    secrets: Vec<SecretItem>,
    keys: Vec<KeyItem>,
    users: Vec<UserItem>,
    shown: Option<Shown>,
    tap: sendpromptly_core::wire::ProviderTapView,
    /// Every trackable event type and whether it is tracked.
    tap_types: Vec<(String, bool)>,
    tap_grace: String,
    tap_grace_by_type: String,
    /// The Stripe reconciler's last outcome, once it has run for the project.
    reconcile: Option<ReconcileStatus>,
    /// The trace URL template (empty: none).
    trace_url_template: String,
    slos: String,
}

/// Form values to show again after a failed save.
#[derive(Default)]
struct Draft {
    repair_url: Option<String>,
    default_deadline_seconds: Option<String>,
    deadlines: Option<String>,
    alerts: Option<String>,
    tap_grace: Option<String>,
    tap_grace_by_type: Option<String>,
    trace_url_template: Option<String>,
    slos: Option<String>,
}

fn deadlines_text(table: &BTreeMap<String, u32>) -> String {
    table
        .iter()
        .map(|(event_type, seconds)| format!("{event_type} = {seconds}\n"))
        .collect()
}

async fn settings_page(
    state: &AppState,
    ws: &Workspace,
    status: StatusCode,
    notice: Option<Notice>,
    shown: Option<Shown>,
    draft: Draft,
) -> PageResult {
    let store = state.store();
    let project = store
        .project(&ws.project.id)
        .await
        .map_err(fail(ws))?
        .ok_or_else(|| fail(ws)(PageError::not_found("project")))?;
    let secrets = store
        .signing_secrets(&project.id, state.now())
        .await
        .map_err(fail(ws))?
        .into_iter()
        .map(|s| SecretItem {
            created_at: display_time(s.created_at),
            expires_at: s.expires_at.map_or_else(|| "—".to_owned(), display_time),
        })
        .collect();
    let keys = crate::service::keys::list(store, &project.id)
        .await
        .map_err(fail(ws))?
        .into_iter()
        .map(|listed| {
            let k = listed.key;
            KeyItem {
                id: k.id,
                prefix: k.prefix,
                name: k.name.unwrap_or_default(),
                scopes: k.scopes.to_string(),
                last_used: match (k.last_used_at, k.last_used_class) {
                    (Some(at), Some(class)) => format!("{} ({class})", display_time(at)),
                    _ => "never".to_owned(),
                },
                advice: listed.advice,
                created_at: display_time(k.created_at),
                revoked: k.revoked_at.is_some(),
                revoked_at: time(k.revoked_at),
            }
        })
        .collect();
    let users = store
        .members(&project.id)
        .await
        .map_err(fail(ws))?
        .into_iter()
        .map(|(u, _)| UserItem {
            email: u.email,
            created_at: display_time(u.created_at),
        })
        .collect();
    let tap = crate::service::provider_tap::tap_config(state, &project.id)
        .await
        .map_err(|e| fail(ws)(PageError::from(e)))?
        .view(state, &project.id);
    let tap_types = crate::service::provider_tap::TRACKABLE_EVENT_TYPES
        .iter()
        .map(|(_, t)| {
            (
                (*t).to_owned(),
                tap.tracked_event_types.iter().any(|x| x == t),
            )
        })
        .collect();
    let tap_grace = draft
        .tap_grace
        .unwrap_or_else(|| tap.receipt_grace_seconds.to_string());
    let tap_grace_by_type = draft
        .tap_grace_by_type
        .unwrap_or_else(|| deadlines_text(&tap.receipt_grace_by_event_type));
    let reconcile = store
        .reconcile_state(&project.id)
        .await
        .map_err(fail(ws))?
        .filter(|r| r.last_run_at.is_some())
        .map(|r| ReconcileStatus {
            failing: r.last_error,
            last_success: r
                .last_success_at
                .map_or_else(|| "never".to_owned(), display_time),
            events_fed: r.events_fed,
        });
    let repair_url_refused = project_service::repair_url_refusal(state, &project)
        .await
        .map(|refused| refused.to_string());
    let mut layout = ws.layout("Settings", "settings");
    layout.notice = notice;
    Ok(render(
        status,
        &SettingsPage {
            layout,
            project_id: project.id.clone(),
            repair_url_refused,
            repair_url: draft
                .repair_url
                .unwrap_or_else(|| project.repair_url.clone().unwrap_or_default()),
            default_deadline_seconds: draft
                .default_deadline_seconds
                .unwrap_or_else(|| project.default_deadline_seconds.to_string()),
            proof_show_metadata: project.proof_show_metadata,
            deadlines: draft
                .deadlines
                .unwrap_or_else(|| deadlines_text(&project.deadlines_by_event_type)),
            alerts: draft.alerts.unwrap_or_else(|| {
                serde_json::to_string_pretty(&project.alert_channels)
                    .unwrap_or_else(|_| "[]".to_owned())
            }),
            secrets,
            keys,
            users,
            shown,
            tap,
            tap_types,
            tap_grace,
            tap_grace_by_type,
            reconcile,
            trace_url_template: draft
                .trace_url_template
                .unwrap_or_else(|| project.trace_url_template.clone().unwrap_or_default()),
            slos: match draft.slos {
                Some(text) => text,
                None => sendpromptly_core::stats::slo_lines(
                    &store.slo_objectives(&project.id).await.map_err(fail(ws))?,
                ),
            },
        },
    ))
}

/// `GET /settings`.
pub async fn settings(
    State(state): State<AppState>,
    ws: Workspace,
    Query(done): Query<Done>,
) -> Response {
    respond(async move {
        settings_page(
            &state,
            &ws,
            StatusCode::OK,
            done.notice(),
            None,
            Draft::default(),
        )
        .await
    })
    .await
}

/// Re-renders the settings page with a form's error and what was typed.
async fn settings_error(
    state: &AppState,
    ws: &Workspace,
    err: PageError,
    draft: Draft,
) -> PageResult {
    settings_page(
        state,
        ws,
        err.status(),
        Notice::bad(err.message()),
        None,
        draft,
    )
    .await
}

/// Applies a settings form: its parsed change through the service layer's
/// validation, then back to the settings; or the page again with why not.
async fn save(
    state: &AppState,
    ws: &Workspace,
    parsed: Result<ProjectUpdate, PageError>,
    draft: Draft,
) -> PageResult {
    let saved = match parsed {
        Ok(update) => project_service::update(state, &ws.who(), &ws.project.id, update)
            .await
            .map_err(PageError::from),
        Err(err) => Err(err),
    };
    match saved {
        Ok(_) => Ok(see_other("/settings?done=saved")),
        Err(err) => settings_error(state, ws, err, draft).await,
    }
}

/// The general settings form.
#[derive(Debug, Default, Deserialize)]
pub struct GeneralForm {
    #[serde(default)]
    repair_url: String,
    #[serde(default)]
    default_deadline_seconds: String,
    #[serde(default)]
    proof_show_metadata: Option<String>,
}

/// `POST /settings/general`: repair URL, default deadline, proof metadata.
pub async fn save_general(
    State(state): State<AppState>,
    ws: Workspace,
    Form(form): Form<GeneralForm>,
) -> Response {
    respond(async move {
        let draft = Draft {
            repair_url: Some(form.repair_url.clone()),
            default_deadline_seconds: Some(form.default_deadline_seconds.clone()),
            ..Draft::default()
        };
        let parsed = form
            .default_deadline_seconds
            .trim()
            .parse::<u32>()
            .map_err(|_| {
                PageError::invalid(
                    "default_deadline_seconds",
                    "must be a whole number of seconds (1 – 604800)",
                )
            })
            .map(|seconds| ProjectUpdate {
                repair_url: Some(non_empty(Some(form.repair_url))),
                default_deadline_seconds: Some(seconds),
                proof_show_metadata: Some(form.proof_show_metadata.is_some()),
                ..ProjectUpdate::default()
            });
        save(&state, &ws, parsed, draft).await
    })
    .await
}

/// The per-event-type deadlines form: one `event.type = seconds` per line.
#[derive(Debug, Default, Deserialize)]
pub struct DeadlinesForm {
    #[serde(default)]
    deadlines: String,
}

pub(super) fn parse_deadlines(text: &str) -> Result<BTreeMap<String, u32>, PageError> {
    let mut table = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (event_type, seconds) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .ok_or_else(|| {
                PageError::invalid(
                    "deadlines_by_event_type",
                    format!("line {}: write `event.type = seconds`", n + 1),
                )
            })?;
        let seconds = seconds.trim().parse::<u32>().map_err(|_| {
            PageError::invalid(
                "deadlines_by_event_type",
                format!(
                    "line {}: `{}` is not a number of seconds",
                    n + 1,
                    seconds.trim()
                ),
            )
        })?;
        table.insert(event_type.trim().to_owned(), seconds);
    }
    Ok(table)
}

/// `POST /settings/deadlines`.
pub async fn save_deadlines(
    State(state): State<AppState>,
    ws: Workspace,
    Form(form): Form<DeadlinesForm>,
) -> Response {
    respond(async move {
        let draft = Draft {
            deadlines: Some(form.deadlines.clone()),
            ..Draft::default()
        };
        let parsed = parse_deadlines(&form.deadlines).map(|table| ProjectUpdate {
            deadlines_by_event_type: Some(table),
            ..ProjectUpdate::default()
        });
        save(&state, &ws, parsed, draft).await
    })
    .await
}

/// The tracing form: the trace URL template.
#[derive(Debug, Default, Deserialize)]
pub struct TracingForm {
    #[serde(default)]
    trace_url_template: String,
}

/// `POST /settings/tracing`: the trace URL template (empty removes it).
pub async fn save_tracing(
    State(state): State<AppState>,
    ws: Workspace,
    Form(form): Form<TracingForm>,
) -> Response {
    respond(async move {
        let draft = Draft {
            trace_url_template: Some(form.trace_url_template.clone()),
            ..Draft::default()
        };
        let template = form.trace_url_template.trim().to_owned();
        let parsed = Ok(ProjectUpdate {
            trace_url_template: Some((!template.is_empty()).then_some(template)),
            ..ProjectUpdate::default()
        });
        save(&state, &ws, parsed, draft).await
    })
    .await
}

/// The SLO form: one SLO per line.
#[derive(Debug, Default, Deserialize)]
pub struct SloForm {
    #[serde(default)]
    slos: String,
}

/// `POST /settings/slos`: the fulfilment SLOs (the whole list; empty
/// removes them), one per line as `sendpromptly_core::stats::slo_lines`
/// writes them.
pub async fn save_slos(
    State(state): State<AppState>,
    ws: Workspace,
    Form(form): Form<SloForm>,
) -> Response {
    respond(async move {
        let draft = Draft {
            slos: Some(form.slos.clone()),
            ..Draft::default()
        };
        let parsed = sendpromptly_core::stats::parse_slo_lines(&form.slos)
            .map(|slos| ProjectUpdate {
                slos: Some(slos),
                ..ProjectUpdate::default()
            })
            .map_err(|e| PageError::invalid("slos", e.message));
        save(&state, &ws, parsed, draft).await
    })
    .await
}

/// The provider tap form. Secret fields left blank keep the stored
/// secret; the `clear_…` boxes remove it.
#[derive(Default)]
pub struct ProviderTapForm {
    stripe_endpoint_secrets: String,
    clear_stripe_endpoint_secrets: Option<String>,
    shopify_client_secret: String,
    clear_shopify_client_secret: Option<String>,
    stripe_restricted_key: String,
    clear_stripe_restricted_key: Option<String>,
    tracked: Vec<String>,
    receipt_grace_seconds: String,
    receipt_grace_by_event_type: String,
}

impl ProviderTapForm {
    /// Reads the form body (the `tracked` boxes repeat their name, which
    /// `Form` cannot collect).
    pub(super) fn parse(body: &[u8]) -> ProviderTapForm {
        let mut form = ProviderTapForm::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            let value = value.into_owned();
            match name.as_ref() {
                "stripe_endpoint_secrets" => form.stripe_endpoint_secrets = value,
                "clear_stripe_endpoint_secrets" => form.clear_stripe_endpoint_secrets = Some(value),
                "shopify_client_secret" => form.shopify_client_secret = value,
                "clear_shopify_client_secret" => form.clear_shopify_client_secret = Some(value),
                "stripe_restricted_key" => form.stripe_restricted_key = value,
                "clear_stripe_restricted_key" => form.clear_stripe_restricted_key = Some(value),
                "tracked" => form.tracked.push(value),
                "receipt_grace_seconds" => form.receipt_grace_seconds = value,
                "receipt_grace_by_event_type" => form.receipt_grace_by_event_type = value,
                _ => {}
            }
        }
        form
    }
}

pub(super) fn tap_update(form: &ProviderTapForm) -> Result<ProjectUpdate, PageError> {
    use sendpromptly_core::wire::ProviderTapUpdate;
    let secret = |text: &str, clear: &Option<String>| -> Option<Option<String>> {
        if clear.is_some() {
            Some(None)
        } else {
            let text = text.trim();
            (!text.is_empty()).then(|| Some(text.to_owned()))
        }
    };
    let endpoint_secrets = if form.clear_stripe_endpoint_secrets.is_some() {
        Some(None)
    } else {
        let list: Vec<String> = form
            .stripe_endpoint_secrets
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        (!list.is_empty()).then_some(Some(list))
    };
    let grace = form.receipt_grace_seconds.trim();
    let receipt_grace_seconds = if grace.is_empty() {
        None
    } else {
        Some(grace.parse::<u32>().map_err(|_| {
            PageError::invalid(
                "provider_tap.receipt_grace_seconds",
                format!("`{grace}` is not a number of seconds"),
            )
        })?)
    };
    let by_type = parse_deadlines(&form.receipt_grace_by_event_type).map_err(|err| {
        PageError::invalid("provider_tap.receipt_grace_by_event_type", err.message())
    })?;
    let tracked = if form.tracked.is_empty() {
        return Err(PageError::invalid(
            "provider_tap.tracked_event_types",
            "tick at least one event type to track",
        ));
    } else {
        Some(Some(form.tracked.clone()))
    };
    Ok(ProjectUpdate {
        provider_tap: Some(ProviderTapUpdate {
            stripe_endpoint_secrets: endpoint_secrets,
            shopify_client_secret: secret(
                &form.shopify_client_secret,
                &form.clear_shopify_client_secret,
            ),
            stripe_restricted_key: secret(
                &form.stripe_restricted_key,
                &form.clear_stripe_restricted_key,
            ),
            tracked_event_types: tracked,
            receipt_grace_seconds,
            receipt_grace_by_event_type: Some(by_type),
        }),
        ..ProjectUpdate::default()
    })
}

/// `POST /settings/provider-tap`.
pub async fn save_provider_tap(
    State(state): State<AppState>,
    ws: Workspace,
    body: axum::body::Bytes,
) -> Response {
    let form = ProviderTapForm::parse(&body);
    respond(async move {
        let draft = Draft {
            tap_grace: Some(form.receipt_grace_seconds.clone()),
            tap_grace_by_type: Some(form.receipt_grace_by_event_type.clone()),
            ..Draft::default()
        };
        let parsed = tap_update(&form);
        save(&state, &ws, parsed, draft).await
    })
    .await
}

/// The alert channels form: the JSON list of the contract.
#[derive(Debug, Default, Deserialize)]
pub struct AlertsForm {
    #[serde(default)]
    alert_channels: String,
}

/// `POST /settings/alerts`.
pub async fn save_alerts(
    State(state): State<AppState>,
    ws: Workspace,
    Form(form): Form<AlertsForm>,
) -> Response {
    respond(async move {
        let draft = Draft {
            alerts: Some(form.alert_channels.clone()),
            ..Draft::default()
        };
        let text = form.alert_channels.trim();
        let parsed = if text.is_empty() {
            Ok(serde_json::Value::Array(Vec::new()))
        } else {
            serde_json::from_str::<serde_json::Value>(text).map_err(|err| {
                PageError::invalid("alert_channels", format!("is not valid JSON: {err}"))
            })
        };
        let parsed = parsed.map(|channels| ProjectUpdate {
            alert_channels: Some(channels),
            ..ProjectUpdate::default()
        });
        save(&state, &ws, parsed, draft).await
    })
    .await
}

/// `POST /settings/alerts/test`: sends a test alert to every saved channel
/// and shows each outcome.
pub async fn test_alerts(State(state): State<AppState>, ws: Workspace) -> Response {
    respond(async move {
        let outcomes = project_service::test_alerts(&state, &ws.project.id, None)
            .await
            .map_err(fail(&ws))?;
        let summary: Vec<String> = outcomes
            .iter()
            .map(|o| {
                let status = o
                    .status
                    .map_or_else(String::new, |s| format!(" (HTTP {s})"));
                if o.delivered {
                    format!("channel {} ({}): sent{status}", o.channel, o.kind)
                } else {
                    format!(
                        "channel {} ({}): failed{status}: {}",
                        o.channel,
                        o.kind,
                        o.error.as_deref().unwrap_or("not accepted")
                    )
                }
            })
            .collect();
        let notice = if outcomes.is_empty() {
            Notice::bad("No alert channels are saved yet.")
        } else if outcomes.iter().all(|o| o.delivered) {
            Notice::ok(format!("Test alert sent. {}", summary.join("; ")))
        } else {
            Notice::bad(format!("Test alert: {}", summary.join("; ")))
        };
        settings_page(&state, &ws, StatusCode::OK, notice, None, Draft::default()).await
    })
    .await
}

/// `POST /settings/signing-secret/rotate`: shows the new secret once.
pub async fn rotate_secret(State(state): State<AppState>, ws: Workspace) -> Response {
    respond(async move {
        let rotated = rotate(&state, &ws.who(), &ws.project.id).await.map_err(fail(&ws))?;
        tracing::info!(user = %ws.signed_in.user.email, project = %ws.project.id, "signing secret rotated from the console");
        settings_page(
            &state,
            &ws,
            StatusCode::CREATED,
            Notice::ok(format!(
                "New signing secret created. The previous secrets keep signing until {}.",
                display_time(rotated.previous_secrets_expire_at)
            )),
            Some(Shown {
                label: "New signing secret",
                value: rotated.secret,
                hint: "Copy it into your app's configuration now: it is shown only once.",
            }),
            Draft::default(),
        )
        .await
    })
    .await
}

/// The new API key form.
#[derive(Debug, Default, Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    name: String,
    /// Comma-separated scopes; empty is `ingest`.
    #[serde(default)]
    scope: String,
}

/// `POST /settings/api-keys`: shows the new key once.
pub async fn create_api_key(
    State(state): State<AppState>,
    ws: Workspace,
    Form(form): Form<KeyForm>,
) -> Response {
    respond(async move {
        let name = non_empty(Some(form.name));
        if name.as_ref().is_some_and(|n| n.len() > 100) {
            let err = PageError::invalid("name", "must be at most 100 characters");
            return settings_error(&state, &ws, err, Draft::default()).await;
        }
        let scopes = if form.scope.trim().is_empty() {
            sendpromptly_core::scope::ScopeSet::INGEST
        } else {
            match form.scope.parse::<sendpromptly_core::scope::ScopeSet>() {
                Ok(scopes) => scopes,
                Err(err) => {
                    let err = PageError::invalid("scope", err.to_string());
                    return settings_error(&state, &ws, err, Draft::default()).await;
                }
            }
        };
        let key = crate::service::keys::create(
            state.store(),
            &ws.who(),
            &ws.project.id,
            name,
            scopes,
            state.now(),
        )
        .await
        .map_err(fail(&ws))?;
        tracing::info!(user = %ws.signed_in.user.email, project = %ws.project.id, "API key created from the console");
        settings_page(
            &state,
            &ws,
            StatusCode::CREATED,
            Notice::ok(format!("API key created (scope {scopes}).")),
            Some(Shown {
                label: "New API key",
                value: key,
                hint: "Copy it now: it is shown only once and stored only as a hash.",
            }),
            Draft::default(),
        )
        .await
    })
    .await
}

/// `POST /settings/api-keys/{id}/revoke`.
pub async fn revoke_api_key(
    State(state): State<AppState>,
    ws: Workspace,
    Path(id): Path<String>,
) -> Response {
    respond(async move {
        let revoked = crate::service::keys::revoke(
            state.store(),
            &ws.who(),
            &ws.project.id,
            &id,
            state.now(),
        )
        .await
        .map_err(fail(&ws))?;
        if !revoked {
            return Err(fail(&ws)(PageError::not_found("API key")));
        }
        state.signal_keys().forget_all();
        tracing::info!(user = %ws.signed_in.user.email, project = %ws.project.id, key = %id, "API key revoked from the console");
        Ok(see_other("/settings?done=key_revoked"))
    })
    .await
}

/// The project switcher.
#[derive(Debug, Default, Deserialize)]
pub struct SwitchForm {
    #[serde(default)]
    project_id: String,
}

/// `POST /switch-project`: remembers the chosen project in a cookie.
pub async fn switch_project(
    State(state): State<AppState>,
    ws: Workspace,
    headers: HeaderMap,
    Form(form): Form<SwitchForm>,
) -> Response {
    let secure = auth::is_secure(&state, &headers);
    respond(async move {
        let project = ws
            .projects
            .iter()
            .find(|p| p.id == form.project_id)
            .ok_or_else(|| fail(&ws)(PageError::not_found("project")))?;
        let mut response = see_other("/");
        response.headers_mut().append(
            header::SET_COOKIE,
            auth::set_cookie(PROJECT_COOKIE, &project.id, 365 * 24 * 3600, "Lax", secure),
        );
        Ok(response)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_parse_one_per_line() {
        let table =
            parse_deadlines("invoice.paid = 3600\n\n# comment\ncheckout.session.completed: 600\n")
                .unwrap();
        assert_eq!(table.get("invoice.paid"), Some(&3600));
        assert_eq!(table.get("checkout.session.completed"), Some(&600));
        assert!(parse_deadlines("invoice.paid").is_err());
        assert!(parse_deadlines("invoice.paid = soon").is_err());
        assert_eq!(
            deadlines_text(&table),
            "checkout.session.completed = 600\ninvoice.paid = 3600\n"
        );
    }
}
