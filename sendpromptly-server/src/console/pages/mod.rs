//! The console's pages and form actions, one module per area of routes:
//! [`overview`] (`/`), [`incidents`] (the list), [`incident`] (one
//! incident and its actions), [`events`] (look-ups), [`settings`] (and the
//! project switcher), [`batches`] (bulk reprocess). Actions call the
//! service layer ([`crate::service`]) as `console:<email>`; a form that
//! fails re-renders its page with the reason in the console's words
//! ([`PageError`]). A handler takes the [`Workspace`] (its extractor
//! answers the error page when there is none); what several pages share
//! (list items, event facts, form parsing, notices) is here.

use axum::response::{IntoResponse, Redirect, Response};
use sendpromptly_core::Timestamp;
use sendpromptly_core::machine::EventRecord;
use sendpromptly_core::model::EventState;
use serde::Deserialize;

use super::PageError;
use super::{Notice, Workspace, error_page};
use crate::render::display_time;

mod analytics;
mod audit;
mod batches;
mod events;
mod incident;
mod incidents;
mod overview;
mod settings;
mod users;

pub use analytics::analytics;
pub use audit::audit_log;
pub use batches::{batch, batch_cancel, batch_new, batch_progress, batch_start};

/// The console's form parsers on raw input, for the fuzz targets (`fuzz/`):
/// each answers what the page would (the parsed value, or the message the
/// page shows), never a panic.
#[cfg(feature = "test-support")]
pub mod fuzzing {
    use std::collections::BTreeMap;

    use sendpromptly_core::Timestamp;
    use sendpromptly_core::wire::{ProjectUpdate, ReprocessBatchRequest};

    /// A bulk-reprocess form body (`application/x-www-form-urlencoded`).
    pub fn batch_form(body: &[u8]) -> Result<ReprocessBatchRequest, String> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        super::batches::batch_request(&pairs).map_err(|e| e.message())
    }

    /// The per-event-type deadlines text (`event.type = seconds` lines).
    pub fn deadlines(text: &str) -> Result<BTreeMap<String, u32>, String> {
        super::settings::parse_deadlines(text).map_err(|e| e.message())
    }

    /// A provider tap form body.
    pub fn provider_tap_form(body: &[u8]) -> Result<ProjectUpdate, String> {
        super::settings::tap_update(&super::settings::ProviderTapForm::parse(body))
            .map_err(|e| e.message())
    }

    /// A time typed in a filter or batch form.
    pub fn form_time(text: &str) -> Result<Option<Timestamp>, String> {
        super::form_time("opened_after", Some(text)).map_err(|e| e.message())
    }

    /// Where sign-in sends the user for a `next` parameter.
    pub fn login_next(next: &str) -> String {
        crate::console::auth::safe_next(Some(next))
    }
}
pub use events::{event, events};
pub use incident::{
    create_proof_link, incident, incident_live, reprocess, resolve, revoke_proof_link,
};
pub use incidents::{incidents, incidents_export};
pub use overview::overview;
pub use settings::{
    create_api_key, revoke_api_key, rotate_secret, save_alerts, save_deadlines, save_general,
    save_provider_tap, save_slos, save_tracing, settings, switch_project, test_alerts,
};
pub(crate) use users::audited;
pub use users::{
    create_user, save_require_2fa, user_delete, user_disable, user_enable, user_remove,
    user_reset_2fa, user_reset_password, user_role, users,
};

type PageResult = Result<Response, Response>;

/// Runs a page body; an `Err` is already a response (an error page).
async fn respond(body: impl Future<Output = PageResult>) -> Response {
    match body.await {
        Ok(response) | Err(response) => response,
    }
}

/// Maps an error (a [`PageError`], or what becomes one) to the console's error page.
fn fail<E: Into<PageError>>(ws: &Workspace) -> impl Fn(E) -> Response + '_ {
    move |err| error_page(Some(&ws.signed_in), &err.into())
}

fn time(at: Option<sendpromptly_core::Timestamp>) -> String {
    at.map_or_else(|| "—".to_owned(), display_time)
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn state_label(state: EventState) -> &'static str {
    match state {
        EventState::AwaitingReceipt => "awaiting receipt",
        EventState::AwaitingResult => "awaiting result",
        EventState::Succeeded => "succeeded",
        EventState::Failed => "failed",
        EventState::Overdue => "overdue",
    }
}

/// An incident in a list.
pub struct IncidentItem {
    pub id: String,
    pub state: &'static str,
    pub kind: String,
    pub provider: String,
    pub event_type: String,
    pub event_id: String,
    pub subject: String,
    pub opened_at: String,
    pub last_error: String,
    /// A test-mode event's incident.
    pub test_mode: bool,
}

impl IncidentItem {
    fn of(record: &EventRecord) -> Option<IncidentItem> {
        let incident = record.incident.as_ref()?;
        Some(IncidentItem {
            id: incident.id.clone(),
            state: incident.state.as_str(),
            kind: incident.kind.as_str().replace('_', " "),
            provider: record.provider.to_string(),
            event_type: record.event_type.clone().unwrap_or_else(|| "—".into()),
            event_id: record.event_id.clone(),
            subject: record.subject.clone().unwrap_or_else(|| "—".into()),
            opened_at: display_time(incident.opened_at),
            last_error: incident.last_error.clone().unwrap_or_default(),
            test_mode: !incident.livemode,
        })
    }
}

/// The facts of an event, for people.
pub struct EventFacts {
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub subject: String,
    pub effect: String,
    pub amount: Option<String>,
    pub state: &'static str,
    pub state_label: &'static str,
    pub occurred_at: String,
    pub received_at: String,
    pub deadline_at: String,
    pub deliveries: u32,
    pub result_at: String,
    pub answer: String,
    pub answer_tone: &'static str,
    pub metadata: Option<String>,
    pub link: String,
    pub incident_id: Option<String>,
    /// The provider's own copy, when the tap or the reconciler saw it.
    pub copy: Option<CopyFacts>,
    /// The provider's copy says this is a test-mode event.
    pub test_mode: bool,
}

/// The provider's own copy of an event, for people.
pub struct CopyFacts {
    pub event_id: String,
    pub event_type: String,
    pub customer: String,
    pub amount: String,
    pub sent_at: String,
    pub learned_via: &'static str,
    pub receipt_due_at: String,
}

impl CopyFacts {
    fn of(record: &EventRecord) -> Option<CopyFacts> {
        let copy = record.provider_copy.as_ref()?;
        Some(CopyFacts {
            event_id: copy.event_id.clone(),
            event_type: copy.event_type.clone(),
            customer: copy.subject.clone().unwrap_or_else(|| "—".into()),
            amount: copy.amount_text().unwrap_or_else(|| "—".into()),
            sent_at: time(copy.created),
            learned_via: match copy.learned_via {
                sendpromptly_core::model::LearnedVia::Tap => "provider tap",
                sendpromptly_core::model::LearnedVia::Reconciler => "reconciler",
            },
            receipt_due_at: time(record.receipt_due_at),
        })
    }
}

/// Minor units per major unit for ISO 4217 currencies without decimals.
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// The amount of an event when its metadata carries one (`amount` or
/// `amount_total` in minor units, with an optional `currency`).
fn amount(record: &EventRecord) -> Option<String> {
    let metadata = record.metadata.as_ref()?;
    let value = metadata
        .get("amount")
        .or_else(|| metadata.get("amount_total"))?;
    let currency = metadata
        .get("currency")
        .and_then(|c| c.as_str())
        .map(str::to_lowercase);
    match (value.as_i64(), currency) {
        (Some(minor), Some(currency)) if ZERO_DECIMAL.contains(&currency.as_str()) => {
            Some(format!("{minor} {}", currency.to_uppercase()))
        }
        (Some(minor), Some(currency)) => Some(format!(
            "{}{}.{:02} {}",
            if minor < 0 { "-" } else { "" },
            minor.unsigned_abs() / 100,
            minor.unsigned_abs() % 100,
            currency.to_uppercase()
        )),
        (Some(minor), None) => Some(format!("{minor} (minor units)")),
        (None, _) => Some(value.to_string()),
    }
}

impl EventFacts {
    fn of(record: &EventRecord) -> EventFacts {
        let (answer, answer_tone) = match record.state {
            EventState::Succeeded => (
                format!(
                    "Yes. The app reported success at {}.",
                    time(record.result_at)
                ),
                "ok",
            ),
            EventState::Failed => (
                format!(
                    "No. The app reported a failure{}.",
                    record
                        .last_result
                        .as_ref()
                        .and_then(|r| r.error.as_deref())
                        .map_or_else(String::new, |e| format!(": {e}"))
                ),
                "bad",
            ),
            EventState::Overdue => (
                format!(
                    "Unknown. No result arrived by the deadline ({}).",
                    time(record.deadline_at)
                ),
                "bad",
            ),
            EventState::AwaitingResult => (
                format!(
                    "Not yet. The app has accepted it; its result is due by {}.",
                    time(record.deadline_at)
                ),
                "warn",
            ),
            EventState::AwaitingReceipt if record.incident.is_some() => (
                "No. The provider sent it and the app never sent a receipt.".to_owned(),
                "bad",
            ),
            EventState::AwaitingReceipt => (
                format!(
                    "Not yet. The provider sent it; the app's receipt is due by {}.",
                    time(record.receipt_due_at)
                ),
                "warn",
            ),
        };
        EventFacts {
            provider: record.provider.to_string(),
            event_id: record.event_id.clone(),
            event_type: record.event_type.clone().unwrap_or_else(|| "—".into()),
            subject: record.subject.clone().unwrap_or_else(|| "—".into()),
            effect: record.effect.clone().unwrap_or_else(|| "—".into()),
            amount: amount(record),
            state: record.state.as_str(),
            state_label: state_label(record.state),
            occurred_at: time(record.occurred_at),
            received_at: time(record.received_at),
            deadline_at: time(record.deadline_at),
            deliveries: record.deliveries,
            result_at: time(record.result_at),
            answer,
            answer_tone,
            metadata: record
                .metadata
                .as_ref()
                .filter(|m| !m.is_empty())
                .and_then(|m| serde_json::to_string_pretty(m).ok()),
            link: format!(
                "/events/{}/{}",
                record.provider.as_str(),
                path_segment(&record.event_id)
            ),
            incident_id: record.incident.as_ref().map(|i| i.id.clone()),
            copy: CopyFacts::of(record),
            test_mode: !record.is_live(),
        }
    }
}

fn parse_choice<T: std::str::FromStr>(
    name: &str,
    value: &Option<String>,
) -> Result<Option<T>, PageError> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| PageError::invalid(name, format!("`{v}` is not a known value"))),
    }
}

/// A time from a console form: RFC 3339, or what a `datetime-local` input
/// sends (`2026-11-22T09:00`, seconds optional), read as UTC.
fn form_time(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, PageError> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = Timestamp::parse_rfc3339(text) {
        return Ok(Some(at));
    }
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
    .map(|naive| Some(Timestamp::from_datetime(naive.and_utc())))
    .ok_or_else(|| {
        PageError::invalid(
            name,
            format!("`{text}` is not a time like 2026-11-22T09:00 (UTC)"),
        )
    })
}

/// A time as a `datetime-local` input value (UTC, seconds kept).
fn form_time_value(at: Option<Timestamp>) -> String {
    at.map(|at| at.to_datetime().format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Notices after a redirect (`?done=…`): fixed texts, never echoed input.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

impl Done {
    fn notice(&self) -> Option<Notice> {
        let text = match self.done.as_deref()? {
            "reprocess" => {
                "Reprocess requested: the repair callback is on its way. This page refreshes until it settles."
            }
            "resolved" => "Incident resolved. The note is on the timeline.",
            "revoked" => "Proof link revoked: it no longer opens.",
            "saved" => "Settings saved.",
            "key_revoked" => "API key revoked.",
            _ => return None,
        };
        Notice::ok(text)
    }
}

/// Redirect after a successful POST (303: the browser GETs the page).
fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_encoded_as_one_path_segment() {
        assert_eq!(path_segment("evt/1 2?"), "evt%2F1%202%3F");
    }

    #[test]
    fn form_times_are_datetime_local_or_rfc3339_in_utc() {
        let at = |text: &str| form_time("opened_after", Some(text)).unwrap().unwrap();
        let expected = Timestamp::parse_rfc3339("2026-11-22T09:00:00Z").unwrap();
        assert_eq!(at("2026-11-22T09:00"), expected);
        assert_eq!(at(" 2026-11-22T09:00:00 "), expected);
        assert_eq!(at("2026-11-22T10:00:00+01:00"), expected);
        assert_eq!(
            at("2026-11-22T09:00:00.250").unix_millis(),
            expected.unix_millis() + 250
        );
        assert_eq!(form_time("opened_after", Some("  ")).unwrap(), None);
        assert_eq!(form_time("opened_after", None).unwrap(), None);
        for bad in ["yesterday", "2026-11-22", "22/11/2026 09:00"] {
            assert!(form_time("opened_before", Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(form_time_value(Some(expected)), "2026-11-22T09:00:00");
        assert_eq!(form_time_value(None), "");
    }
}
