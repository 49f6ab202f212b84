//! Alerts: which channels want an alert, grouping of bursts, and the
//! message bodies (plain text, HTML, Slack Block Kit, signed-webhook JSON).
//!
//! Pure: no I/O and no clock. The server enqueues alerts in its outbox and
//! delivers them; this module decides *what* is sent and *when* a burst is
//! collapsed into one digest.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{IncidentKind, Provider};
use crate::time::Timestamp;

/// What an alert is about (the `on` values of a channel and the `type` of
/// webhook alert bodies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertEvent {
    /// An incident opened (or reopened).
    #[serde(rename = "incident.opened")]
    IncidentOpened,
    /// An incident was resolved.
    #[serde(rename = "incident.resolved")]
    IncidentResolved,
    /// A repair callback gave up after its retries.
    #[serde(rename = "reprocess.failed")]
    ReprocessFailed,
    /// A repair callback was delivered but the app reported no result
    /// before the result deadline; the incident is open again.
    #[serde(rename = "reprocess.no_result")]
    ReprocessNoResult,
    /// An event type's fulfilment SLO burns its error budget too fast
    /// (multi-window burn rate); once per burn episode.
    #[serde(rename = "slo.burning")]
    SloBurning,
}

impl AlertEvent {
    /// Every alert event.
    pub const ALL: [AlertEvent; 5] = [
        AlertEvent::IncidentOpened,
        AlertEvent::IncidentResolved,
        AlertEvent::ReprocessFailed,
        AlertEvent::ReprocessNoResult,
        AlertEvent::SloBurning,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertEvent::IncidentOpened => "incident.opened",
            AlertEvent::IncidentResolved => "incident.resolved",
            AlertEvent::ReprocessFailed => "reprocess.failed",
            AlertEvent::ReprocessNoResult => "reprocess.no_result",
            AlertEvent::SloBurning => "slo.burning",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

fn default_on() -> Vec<AlertEvent> {
    vec![AlertEvent::IncidentOpened]
}

/// Where a channel delivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelTarget {
    /// Email over the operator's SMTP server.
    Email {
        /// The recipient address.
        to: String,
    },
    /// A Slack incoming webhook (Block Kit message).
    Slack {
        /// The incoming-webhook URL.
        webhook_url: String,
    },
    /// A generic webhook signed with the Standard Webhooks scheme.
    Webhook {
        /// The receiver URL.
        url: String,
    },
}

/// One entry of the project setting `alert_channels`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertChannel {
    /// Where it delivers.
    #[serde(flatten)]
    pub target: ChannelTarget,
    /// Which events it wants (default `["incident.opened"]`).
    #[serde(default = "default_on")]
    pub on: Vec<AlertEvent>,
}

impl AlertChannel {
    /// Whether this channel wants alerts about `event`.
    pub fn wants(&self, event: AlertEvent) -> bool {
        self.on.contains(&event)
    }

    /// The channel type's wire name (`email`, `slack`, `webhook`).
    pub fn kind(&self) -> &'static str {
        match self.target {
            ChannelTarget::Email { .. } => "email",
            ChannelTarget::Slack { .. } => "slack",
            ChannelTarget::Webhook { .. } => "webhook",
        }
    }
}

/// Parses the stored `alert_channels` setting (already validated by the API).
/// A `null` setting is an empty list.
pub fn parse_channels(value: &Value) -> Result<Vec<AlertChannel>, serde_json::Error> {
    if value.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(value.clone())
}

/// Indexes (into the channel list) of the channels that want `event`.
pub fn channels_for(channels: &[AlertChannel], event: AlertEvent) -> Vec<usize> {
    channels
        .iter()
        .enumerate()
        .filter(|(_, c)| c.wants(event))
        .map(|(i, _)| i)
        .collect()
}

/// Collapses bursts: the first `incident.opened` alert for an event type goes
/// out at once; further ones within `window_seconds` of it are held and sent
/// together as one digest when the window closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupingPolicy {
    /// The window length in seconds (0 turns grouping off).
    pub window_seconds: i64,
}

/// What to do with a new alert under a [`GroupingPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupDecision {
    /// Send it now, on its own; it opens a new window.
    SendNow,
    /// Hold it; the held alerts go out as one digest at `flush_at`.
    HoldUntil {
        /// When the window closes.
        flush_at: Timestamp,
    },
}

impl GroupingPolicy {
    /// Decides for an alert raised at `now`, given when the current window for
    /// the same (project, event type, alert event) opened, if any.
    pub fn decide(&self, window_opened_at: Option<Timestamp>, now: Timestamp) -> GroupDecision {
        match window_opened_at {
            Some(opened) if self.window_seconds > 0 => {
                let flush_at = opened.plus_seconds(self.window_seconds);
                if now < flush_at {
                    GroupDecision::HoldUntil { flush_at }
                } else {
                    GroupDecision::SendNow
                }
            }
            _ => GroupDecision::SendNow,
        }
    }
}

/// The facts an alert about one incident carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentFacts {
    /// The `inc_` id.
    pub incident_id: String,
    /// The provider of the webhook.
    pub provider: Provider,
    /// The provider's event id.
    pub event_id: String,
    /// The event type (`invoice.paid`).
    pub event_type: String,
    /// The customer or object the event is about, when known.
    pub subject: Option<String>,
    /// Why the incident opened.
    pub kind: IncidentKind,
    /// The failure reason, when one was reported or observed.
    pub reason: Option<String>,
    /// When the webhook was received (the customer has waited since).
    pub received_at: Timestamp,
    /// A link to the incident in the console.
    pub console_url: String,
}

/// The facts a `slo.burning` alert carries (stored as the alert row's
/// JSON in place of incident facts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloFacts {
    /// The event type whose SLO burns.
    pub event_type: String,
    /// The objective, in percent.
    pub objective_percent: f64,
    /// The threshold, in seconds after receipt.
    pub threshold_seconds: u32,
    /// The rule that fired: long and short window in minutes, and its factor.
    pub long_minutes: i64,
    /// The short window, in minutes.
    pub short_minutes: i64,
    /// The factor both windows reached.
    pub factor: f64,
    /// The burn rate over the long window.
    pub burn_rate_long: f64,
    /// The burn rate over the short window.
    pub burn_rate_short: f64,
    /// A link to the console's Analytics page.
    pub console_url: String,
}

impl SloFacts {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Event type", event_type_label(&self.event_type).to_owned()),
            (
                "Objective",
                format!(
                    "{}% within {}s of receipt",
                    self.objective_percent, self.threshold_seconds
                ),
            ),
            (
                "Burn rate",
                format!(
                    "{:.1}x over {} min and {:.1}x over {} min (alert at {}x)",
                    self.burn_rate_long,
                    self.long_minutes,
                    self.burn_rate_short,
                    self.short_minutes,
                    self.factor
                ),
            ),
        ]
    }
}

/// One message to send: about one incident, or a digest of a burst.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertMessage {
    /// About one incident.
    Single {
        /// What happened.
        event: AlertEvent,
        /// The incident.
        facts: IncidentFacts,
        /// When the alert was raised.
        at: Timestamp,
    },
    /// Several incidents of the same event type within a window.
    Digest {
        /// What happened (to each).
        event: AlertEvent,
        /// The shared event type.
        event_type: String,
        /// The incidents, oldest first.
        incidents: Vec<IncidentFacts>,
        /// The window length in seconds.
        window_seconds: i64,
        /// A link to the console's incident list.
        console_url: String,
    },
    /// An SLO burns its error budget too fast.
    Slo {
        /// The SLO and the rule that fired.
        facts: SloFacts,
    },
}

/// How messages name an event type that is not known: a result arrived
/// before any receipt, so nothing said what the event was.
pub const UNKNOWN_EVENT_TYPE: &str = "unknown type (result arrived before any receipt)";

/// An event type as people read it: itself, or [`UNKNOWN_EVENT_TYPE`] when
/// empty (the machine-readable webhook body keeps the empty string).
pub fn event_type_label(event_type: &str) -> &str {
    if event_type.trim().is_empty() {
        UNKNOWN_EVENT_TYPE
    } else {
        event_type
    }
}

/// Human duration: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn human_duration(millis: i64) -> String {
    let s = millis.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

fn window_phrase(seconds: i64) -> String {
    match seconds {
        60 => "minute".to_string(),
        s if s > 0 && s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

fn event_verb(event: AlertEvent) -> &'static str {
    match event {
        AlertEvent::IncidentOpened => "opened",
        AlertEvent::IncidentResolved => "resolved",
        AlertEvent::ReprocessFailed => "repair callback failed",
        AlertEvent::ReprocessNoResult => "repair delivered, no result",
        AlertEvent::SloBurning => "SLO burning",
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Slack mrkdwn escaping (`&`, `<`, `>`).
fn escape_slack(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl IncidentFacts {
    fn fields(&self, at: Timestamp) -> Vec<(&'static str, String)> {
        vec![
            ("Provider", self.provider.as_str().to_string()),
            ("Event type", event_type_label(&self.event_type).to_owned()),
            ("Event", self.event_id.clone()),
            (
                "Subject",
                self.subject.clone().unwrap_or_else(|| "—".into()),
            ),
            ("Kind", self.kind.as_str().to_string()),
            (
                "Reason",
                self.reason.clone().unwrap_or_else(|| match self.kind {
                    IncidentKind::MissingResult => "no result before the deadline".into(),
                    IncidentKind::FailedResult => "the app reported a failure".into(),
                    IncidentKind::MissingReceipt => {
                        "the provider sent the event; the app never sent a receipt".into()
                    }
                }),
            ),
            (
                "Customer waiting",
                human_duration(at.millis_since(self.received_at)),
            ),
        ]
    }
}

impl AlertMessage {
    /// The alert event.
    pub fn event(&self) -> AlertEvent {
        match self {
            AlertMessage::Single { event, .. } | AlertMessage::Digest { event, .. } => *event,
            AlertMessage::Slo { .. } => AlertEvent::SloBurning,
        }
    }

    /// One line: the email subject and the Slack fallback text.
    pub fn title(&self) -> String {
        match self {
            AlertMessage::Single { event, facts, .. } => format!(
                "Incident {}: {} {} ({})",
                event_verb(*event),
                facts.provider.as_str(),
                event_type_label(&facts.event_type),
                facts.kind.as_str()
            ),
            AlertMessage::Digest {
                event,
                event_type,
                incidents,
                window_seconds,
                ..
            } => format!(
                "{} {} incidents {} in the last {}",
                incidents.len(),
                event_type_label(event_type),
                event_verb(*event),
                window_phrase(*window_seconds)
            ),
            AlertMessage::Slo { facts } => format!(
                "SLO burning: {} ({}% within {}s) at {:.1}x the sustainable rate",
                event_type_label(&facts.event_type),
                facts.objective_percent,
                facts.threshold_seconds,
                facts.burn_rate_long
            ),
        }
    }

    fn link(&self) -> &str {
        match self {
            AlertMessage::Single { facts, .. } => &facts.console_url,
            AlertMessage::Digest { console_url, .. } => console_url,
            AlertMessage::Slo { facts } => &facts.console_url,
        }
    }

    /// The plain-text body (email text part).
    pub fn text(&self) -> String {
        let mut out = format!("{}\n\n", self.title());
        match self {
            AlertMessage::Single { facts, at, .. } => {
                for (name, value) in facts.fields(*at) {
                    out.push_str(&format!("{name}: {value}\n"));
                }
            }
            AlertMessage::Slo { facts } => {
                for (name, value) in facts.fields() {
                    out.push_str(&format!("{name}: {value}\n"));
                }
            }
            AlertMessage::Digest { incidents, .. } => {
                for f in incidents {
                    out.push_str(&format!(
                        "- {} {} {}: {}\n",
                        f.incident_id,
                        f.event_id,
                        f.subject.as_deref().unwrap_or("—"),
                        f.reason.as_deref().unwrap_or(f.kind.as_str())
                    ));
                }
            }
        }
        out.push_str(&format!("\nOpen in the console: {}\n", self.link()));
        out
    }

    /// The HTML body (email HTML part); every value is escaped.
    pub fn html(&self) -> String {
        let mut out = format!("<h2>{}</h2>\n", escape_html(&self.title()));
        match self {
            AlertMessage::Single { facts, at, .. } => {
                out.push_str("<table>\n");
                for (name, value) in facts.fields(*at) {
                    out.push_str(&format!(
                        "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                        escape_html(name),
                        escape_html(&value)
                    ));
                }
                out.push_str("</table>\n");
            }
            AlertMessage::Slo { facts } => {
                out.push_str("<table>\n");
                for (name, value) in facts.fields() {
                    out.push_str(&format!(
                        "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                        escape_html(name),
                        escape_html(&value)
                    ));
                }
                out.push_str("</table>\n");
            }
            AlertMessage::Digest { incidents, .. } => {
                out.push_str("<ul>\n");
                for f in incidents {
                    out.push_str(&format!(
                        "<li><a href=\"{}\">{}</a> {} {}: {}</li>\n",
                        escape_html(&f.console_url),
                        escape_html(&f.incident_id),
                        escape_html(&f.event_id),
                        escape_html(f.subject.as_deref().unwrap_or("—")),
                        escape_html(f.reason.as_deref().unwrap_or(f.kind.as_str()))
                    ));
                }
                out.push_str("</ul>\n");
            }
        }
        out.push_str(&format!(
            "<p><a href=\"{}\">Open in the console</a></p>\n",
            escape_html(self.link())
        ));
        out
    }

    /// The Slack incoming-webhook payload (Block Kit, with fallback `text`).
    pub fn slack_payload(&self) -> Value {
        let mut blocks = vec![json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&self.title(), 150)}
        })];
        match self {
            AlertMessage::Single { facts, at, .. } => {
                let fields: Vec<Value> = facts
                    .fields(*at)
                    .into_iter()
                    .map(|(name, value)| {
                        json!({"type": "mrkdwn", "text": truncate(&format!("*{name}*\n{}", escape_slack(&value)), 2000)})
                    })
                    .collect();
                // Slack allows at most 10 fields per section.
                for chunk in fields.chunks(10) {
                    blocks.push(json!({"type": "section", "fields": chunk}));
                }
            }
            AlertMessage::Slo { facts } => {
                let fields: Vec<Value> = facts
                    .fields()
                    .into_iter()
                    .map(|(name, value)| {
                        json!({"type": "mrkdwn", "text": truncate(&format!("*{name}*\n{}", escape_slack(&value)), 2000)})
                    })
                    .collect();
                blocks.push(json!({"type": "section", "fields": fields}));
            }
            AlertMessage::Digest { incidents, .. } => {
                let lines: Vec<String> = incidents
                    .iter()
                    .take(20)
                    .map(|f| {
                        format!(
                            "• <{}|{}> {}: {}",
                            f.console_url,
                            f.incident_id,
                            escape_slack(f.subject.as_deref().unwrap_or(&f.event_id)),
                            escape_slack(f.reason.as_deref().unwrap_or(f.kind.as_str()))
                        )
                    })
                    .collect();
                let mut text = lines.join("\n");
                if incidents.len() > 20 {
                    text.push_str(&format!("\n… and {} more", incidents.len() - 20));
                }
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 3000)}}));
            }
        }
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in the console"},
                "url": self.link()
            }]
        }));
        json!({"text": self.title(), "blocks": blocks})
    }

    /// The generic webhook body: `{"type": …, "title": …, "incident": {…}}`
    /// for one incident, `{"type": …, "title": …, "incidents": [...], "count":
    /// n}` for a digest; `title` is the line people read (the Slack text,
    /// the email subject), the rest is for machines.
    pub fn webhook_body(&self) -> Value {
        let incident = |f: &IncidentFacts, at: Option<Timestamp>| {
            let mut v = json!({
                "id": f.incident_id,
                "provider": f.provider.as_str(),
                "event_id": f.event_id,
                "event_type": f.event_type,
                "subject": f.subject,
                "kind": f.kind.as_str(),
                "reason": f.reason,
                "received_at": f.received_at.to_rfc3339(),
                "console_url": f.console_url,
            });
            if let Some(at) = at {
                v["waiting_seconds"] = json!(at.millis_since(f.received_at).max(0) / 1000);
            }
            v
        };
        match self {
            AlertMessage::Single { event, facts, at } => json!({
                "type": event.as_str(),
                "title": self.title(),
                "incident": incident(facts, Some(*at)),
            }),
            AlertMessage::Digest {
                event,
                event_type,
                incidents,
                window_seconds,
                ..
            } => json!({
                "type": event.as_str(),
                "title": self.title(),
                "event_type": event_type,
                "count": incidents.len(),
                "window_seconds": window_seconds,
                "incidents": incidents.iter().map(|f| incident(f, None)).collect::<Vec<_>>(),
            }),
            AlertMessage::Slo { facts } => json!({
                "type": AlertEvent::SloBurning.as_str(),
                "title": self.title(),
                "slo": facts,
            }),
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max_chars - 1).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(id: &str) -> IncidentFacts {
        IncidentFacts {
            incident_id: id.into(),
            provider: Provider::Stripe,
            event_id: "evt_1".into(),
            event_type: "invoice.paid".into(),
            subject: Some("cus_<b>".into()),
            kind: IncidentKind::FailedResult,
            reason: Some("db down & out".into()),
            received_at: Timestamp::from_unix_seconds(1000),
            console_url: format!("https://sp.example/incidents/{id}"),
        }
    }

    #[test]
    fn an_unknown_event_type_is_named_in_every_rendering_but_kept_empty_in_json() {
        let mut f = facts("inc_9");
        f.event_type = String::new();
        let at = Timestamp::from_unix_seconds(1060);
        let single = AlertMessage::Single {
            event: AlertEvent::IncidentOpened,
            facts: f.clone(),
            at,
        };
        assert_eq!(
            single.title(),
            "Incident opened: stripe unknown type (result arrived before any receipt) (failed_result)"
        );
        for body in [
            single.text(),
            single.html(),
            single.slack_payload().to_string(),
        ] {
            assert!(body.contains(UNKNOWN_EVENT_TYPE), "{body}");
            assert!(!body.contains("stripe  ("), "{body}");
        }
        assert_eq!(single.webhook_body()["incident"]["event_type"], "");
        assert_eq!(single.webhook_body()["title"], single.title());
        let digest = AlertMessage::Digest {
            event: AlertEvent::IncidentOpened,
            event_type: String::new(),
            incidents: vec![f.clone(), f],
            window_seconds: 300,
            console_url: "https://sp.example/incidents".into(),
        };
        assert!(
            digest.title().contains(UNKNOWN_EVENT_TYPE),
            "{}",
            digest.title()
        );
        assert_eq!(digest.webhook_body()["title"], digest.title());
    }

    #[test]
    fn channels_default_to_opened_and_filter_by_event() {
        let value = json!([
            {"type": "email", "to": "ops@example.com"},
            {"type": "slack", "webhook_url": "https://hooks.slack.com/x", "on": ["incident.resolved"]},
            {"type": "webhook", "url": "https://a.example/h", "on": ["incident.opened", "reprocess.failed"]}
        ]);
        let channels = parse_channels(&value).unwrap();
        assert_eq!(channels[0].on, vec![AlertEvent::IncidentOpened]);
        assert_eq!(channels[1].kind(), "slack");
        assert_eq!(
            channels_for(&channels, AlertEvent::IncidentOpened),
            vec![0, 2]
        );
        assert_eq!(
            channels_for(&channels, AlertEvent::IncidentResolved),
            vec![1]
        );
        assert_eq!(
            channels_for(&channels, AlertEvent::ReprocessFailed),
            vec![2]
        );
        assert!(parse_channels(&Value::Null).unwrap().is_empty());
        assert!(parse_channels(&json!([{"type": "pager"}])).is_err());
    }

    #[test]
    fn grouping_sends_first_then_holds_until_window_closes() {
        let policy = GroupingPolicy {
            window_seconds: 300,
        };
        let t0 = Timestamp::from_unix_seconds(10_000);
        assert_eq!(policy.decide(None, t0), GroupDecision::SendNow);
        assert_eq!(
            policy.decide(Some(t0), t0.plus_seconds(299)),
            GroupDecision::HoldUntil {
                flush_at: t0.plus_seconds(300)
            }
        );
        assert_eq!(
            policy.decide(Some(t0), t0.plus_seconds(300)),
            GroupDecision::SendNow
        );
        let off = GroupingPolicy { window_seconds: 0 };
        assert_eq!(off.decide(Some(t0), t0), GroupDecision::SendNow);
    }

    #[test]
    fn single_message_carries_every_fact_escaped() {
        let msg = AlertMessage::Single {
            event: AlertEvent::IncidentOpened,
            facts: facts("inc_1"),
            at: Timestamp::from_unix_seconds(1000 + 3 * 3600 + 5 * 60),
        };
        assert_eq!(
            msg.title(),
            "Incident opened: stripe invoice.paid (failed_result)"
        );
        let text = msg.text();
        for needle in [
            "Provider: stripe",
            "Event type: invoice.paid",
            "Subject: cus_<b>",
            "Kind: failed_result",
            "Reason: db down & out",
            "Customer waiting: 3h 5m",
            "https://sp.example/incidents/inc_1",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        let html = msg.html();
        assert!(html.contains("cus_&lt;b&gt;") && html.contains("db down &amp; out"));
        assert!(!html.contains("<b>"));
        let slack = msg.slack_payload();
        assert_eq!(slack["blocks"][0]["type"], "header");
        assert!(slack.to_string().contains("cus_&lt;b&gt;"));
        assert_eq!(
            slack["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["url"],
            "https://sp.example/incidents/inc_1"
        );
        let body = msg.webhook_body();
        assert_eq!(body["type"], "incident.opened");
        assert_eq!(body["incident"]["id"], "inc_1");
        assert_eq!(body["incident"]["waiting_seconds"], 3 * 3600 + 5 * 60);
    }

    #[test]
    fn digest_counts_the_burst() {
        let incidents: Vec<_> = (0..37).map(|i| facts(&format!("inc_{i}"))).collect();
        let msg = AlertMessage::Digest {
            event: AlertEvent::IncidentOpened,
            event_type: "invoice.paid".into(),
            incidents,
            window_seconds: 300,
            console_url: "https://sp.example/incidents".into(),
        };
        assert_eq!(
            msg.title(),
            "37 invoice.paid incidents opened in the last 5 minutes"
        );
        assert_eq!(msg.webhook_body()["count"], 37);
        assert!(msg.slack_payload().to_string().contains("and 17 more"));
        assert_eq!(msg.text().matches("\n- inc_").count(), 37);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(45_000), "45s");
        assert_eq!(human_duration(12 * 60_000), "12m");
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration((2 * 86_400 + 4 * 3600) * 1000), "2d 4h");
    }
}
