//! Which alerts a state change raises, and how they group: the pure rules
//! behind the alert outbox (the store only writes the rows they plan).

use crate::Timestamp;
use crate::alert::{
    AlertChannel, AlertEvent, GroupDecision, GroupingPolicy, IncidentFacts, channels_for,
};
use crate::ids;
use crate::machine::{Effect, Transition};
use crate::model::TimelineKind;

/// An alert row to enqueue, planned by [`plan_alerts`] from a transition's
/// effects.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAlert {
    /// The `alr_` id (the `webhook-id` of a signed webhook alert).
    pub id: String,
    /// The channel's position in the project's `alert_channels`.
    pub channel_index: i64,
    /// The channel as configured when the alert was raised (JSON).
    pub channel_json: String,
    /// What happened.
    pub event: AlertEvent,
    /// Grouping key: project, channel, alert event and event type.
    pub group_key: String,
    /// `new` (an `incident.opened` alert, grouping decided when first
    /// claimed) or `single` (never grouped).
    pub role: &'static str,
    /// The incident's facts (a JSON array of one [`IncidentFacts`]).
    pub incidents_json: String,
}

/// The alert events a transition's effects raise, with their incident:
/// opened and reopened → `incident.opened`, resolved → `incident.resolved`,
/// a repair callback that gave up → `reprocess.failed`, a delivered one that
/// produced no result in time → `reprocess.no_result`.
pub fn alert_events(effects: &[Effect]) -> Vec<(AlertEvent, &str)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::IncidentOpened { incident_id, .. }
            | Effect::IncidentReopened { incident_id } => {
                Some((AlertEvent::IncidentOpened, incident_id.as_str()))
            }
            Effect::IncidentResolved { incident_id, .. } => {
                Some((AlertEvent::IncidentResolved, incident_id.as_str()))
            }
            Effect::CallbackGaveUp { incident_id, .. } => {
                Some((AlertEvent::ReprocessFailed, incident_id.as_str()))
            }
            Effect::ReprocessNoResult { incident_id, .. } => {
                Some((AlertEvent::ReprocessNoResult, incident_id.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// The grouping key of an alert (see [`NewAlert::group_key`]).
pub fn alert_group_key(
    project_id: &str,
    channel_index: usize,
    event: AlertEvent,
    event_type: &str,
) -> String {
    format!(
        "{project_id}|{channel_index}|{}|{event_type}",
        event.as_str()
    )
}

/// The alert rows a transition asks for: one per (raised alert event,
/// channel of the project's `channels` whose `on` wants it). The console
/// link is left empty here and filled in when the alert is sent (it
/// depends on `--public-url`).
pub fn plan_alerts(
    project_id: &str,
    channels: &[AlertChannel],
    transition: &Transition,
    now: Timestamp,
) -> Vec<NewAlert> {
    let record = &transition.record;
    let raised = alert_events(&transition.effects);
    let Some(incident) = record.incident.as_ref() else {
        return Vec::new();
    };
    // A test-mode event's incident (the provider's copy says
    // `livemode: false`) is never a live-mode incident: it alerts nobody.
    if !incident.livemode {
        return Vec::new();
    }
    let event_type = record.event_type.clone().unwrap_or_default();
    let mut rng = rand::thread_rng();
    let mut out = Vec::new();
    for (event, incident_id) in raised {
        let facts = IncidentFacts {
            incident_id: incident_id.to_owned(),
            provider: record.provider,
            event_id: record.event_id.clone(),
            event_type: event_type.clone(),
            subject: record.subject.clone(),
            kind: incident.kind,
            reason: if event == AlertEvent::ReprocessFailed {
                // Why the repair failed, from the give-up entry.
                transition
                    .entries
                    .iter()
                    .find(|e| e.kind == TimelineKind::CallbackGaveUp)
                    .and_then(|e| e.detail.get("reason"))
                    .and_then(|r| r.as_str())
                    .map(|r| format!("repair callback gave up: {r}"))
                    .or_else(|| incident.last_error.clone())
            } else if event == AlertEvent::ReprocessNoResult {
                Some(
                    "the repair callback was delivered but no result arrived before the result deadline"
                        .to_owned(),
                )
            } else {
                incident.last_error.clone()
            },
            received_at: record.received_at.unwrap_or(record.created_at),
            console_url: String::new(),
        };
        let incidents_json = serde_json::to_string(&[&facts]).unwrap_or_else(|_| "[]".into());
        for index in channels_for(channels, event) {
            out.push(NewAlert {
                id: ids::new_id(ids::ALERT, now, &mut rng),
                channel_index: i64::try_from(index).unwrap_or(i64::MAX),
                channel_json: serde_json::to_string(&channels[index])
                    .unwrap_or_else(|_| "{}".into()),
                event,
                group_key: alert_group_key(project_id, index, event, &event_type),
                role: if event == AlertEvent::IncidentOpened {
                    "new"
                } else {
                    "single"
                },
                incidents_json: incidents_json.clone(),
            });
        }
    }
    out
}

/// The `slo.burning` alert rows of one burn episode: one per channel
/// whose `on` wants `slo.burning`, sent at once (never grouped); the row
/// carries the [`SloFacts`](crate::alert::SloFacts) instead of incidents.
pub fn plan_slo_alerts(
    project_id: &str,
    channels: &[AlertChannel],
    facts: &crate::alert::SloFacts,
    now: Timestamp,
) -> Vec<NewAlert> {
    let event = AlertEvent::SloBurning;
    let json = serde_json::to_string(facts).unwrap_or_else(|_| "{}".into());
    let mut rng = rand::thread_rng();
    channels_for(channels, event)
        .into_iter()
        .map(|index| NewAlert {
            id: ids::new_id(ids::ALERT, now, &mut rng),
            channel_index: i64::try_from(index).unwrap_or(i64::MAX),
            channel_json: serde_json::to_string(&channels[index]).unwrap_or_else(|_| "{}".into()),
            event,
            group_key: alert_group_key(project_id, index, event, &facts.event_type),
            role: "single",
            incidents_json: json.clone(),
        })
        .collect()
}

/// What the alert sender does with a claimed row of role `new`: send it as
/// the first of its window, or hold it until the window of the latest
/// `single` row of its group (`window_opened_at`) closes.
pub fn alert_grouping(
    window_seconds: i64,
    window_opened_at: Option<Timestamp>,
    raised_at: Timestamp,
) -> GroupDecision {
    GroupingPolicy { window_seconds }.decide(window_opened_at, raised_at)
}

/// Concatenates the facts of several rows (JSON arrays) into one array,
/// oldest first, as a digest carries them.
pub fn merge_alert_incidents(parts: &[String]) -> Result<String, serde_json::Error> {
    let mut all: Vec<IncidentFacts> = Vec::new();
    for part in parts {
        let mut facts: Vec<IncidentFacts> = serde_json::from_str(part)?;
        all.append(&mut facts);
    }
    serde_json::to_string(&all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::parse_channels;
    use crate::machine::{Context, apply};
    use crate::model::{Actor, Provider, ResultSignal, ResultStatus};

    fn opened() -> Transition {
        let ctx = Context {
            now: Timestamp::from_unix_seconds(1_800_000_000),
            actor: Actor::System("test".to_owned()),
            new_incident_id: "inc_1".to_owned(),
        };
        let command = crate::machine::Command::Result(ResultSignal {
            traceparent: None,
            tracestate: None,
            provider: Provider::Stripe,
            event_id: "evt_1".to_owned(),
            status: ResultStatus::Failure,
            error: Some("boom".to_owned()),
            reprocess_id: None,
            metadata: None,
        });
        apply(None, command, &ctx).expect("a failure opens an incident")
    }

    #[test]
    fn an_opened_incident_raises_one_alert_per_wanting_channel() {
        let transition = opened();
        assert_eq!(
            alert_events(&transition.effects),
            vec![(AlertEvent::IncidentOpened, "inc_1")]
        );
        let channels = parse_channels(&serde_json::json!([
            {"type": "webhook", "url": "https://a.example/hook", "on": ["incident.opened"]},
            {"type": "webhook", "url": "https://b.example/hook", "on": ["incident.resolved"]},
        ]))
        .expect("channels");
        let alerts = plan_alerts(
            "prj_1",
            &channels,
            &transition,
            Timestamp::from_unix_seconds(1),
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].channel_index, 0);
        assert_eq!(alerts[0].role, "new");
        assert_eq!(alerts[0].group_key, "prj_1|0|incident.opened|");
        assert!(alerts[0].incidents_json.contains("inc_1"));
    }

    #[test]
    fn digests_concatenate_their_facts_oldest_first() {
        let transition = opened();
        let channels = parse_channels(&serde_json::json!([
            {"type": "webhook", "url": "https://a.example/hook"},
        ]))
        .expect("channels");
        let one = plan_alerts(
            "prj_1",
            &channels,
            &transition,
            Timestamp::from_unix_seconds(1),
        );
        let part = one[0].incidents_json.clone();
        let merged = merge_alert_incidents(&[part.clone(), part]).expect("merge");
        let facts: Vec<IncidentFacts> = serde_json::from_str(&merged).expect("facts");
        assert_eq!(facts.len(), 2);
        assert!(merge_alert_incidents(&["not json".to_owned()]).is_err());
    }
}
