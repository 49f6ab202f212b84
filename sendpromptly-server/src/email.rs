//! Email alerts: the multipart (plain text + HTML) message and the SMTP
//! transport built from `--smtp-url` (STARTTLS, implicit TLS or plain; AUTH
//! when the URL has credentials).

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sendpromptly_core::alert::AlertMessage;

use crate::config::{SmtpSettings, SmtpTls};

/// Why an email alert could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The From or To address is not a valid mailbox.
    #[error("invalid address {address:?}: {reason}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The message could not be assembled.
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    /// STARTTLS is required (`smtp://` to a host that is not loopback, or
    /// `?tls=starttls`) and the server does not offer it (a plain relay):
    /// says what to change.
    #[error(
        "SMTP: the server at {host}:{port} does not offer STARTTLS, which smtp_url requires here \
         (smtp:// to a host that is not loopback, or ?tls=starttls). For a trusted relay on your private \
         network or this host, set ?tls=none in smtp_url (smtp://{host}:{port}?tls=none, keeping any \
         user and password); for a remote server, use smtps:// or a server that offers STARTTLS"
    )]
    StartTlsNotOffered {
        /// The SMTP host.
        host: String,
        /// Its port.
        port: u16,
    },
    /// The SMTP exchange failed (connection, TLS, AUTH or a refusal).
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl EmailError {
    /// Names a missing STARTTLS for what it is: lettre reports it as a
    /// client error whose text names STARTTLS, before anything is sent.
    fn from_send(smtp: &SmtpSettings, err: lettre::transport::smtp::Error) -> Self {
        if smtp.tls == SmtpTls::StartTls && err.is_client() && err.to_string().contains("STARTTLS")
        {
            return EmailError::StartTlsNotOffered {
                host: smtp.host.clone(),
                port: smtp.port,
            };
        }
        EmailError::Smtp(err)
    }
}

fn mailbox(address: &str) -> Result<Mailbox, EmailError> {
    address
        .parse()
        .map_err(|err: lettre::address::AddressError| EmailError::Address {
            address: address.to_owned(),
            reason: err.to_string(),
        })
}

/// The email for `alert` to `to`: subject is the alert's title, body a
/// `multipart/alternative` with the plain-text and HTML renderings.
pub fn build_message(
    smtp: &SmtpSettings,
    to: &str,
    alert: &AlertMessage,
) -> Result<Message, EmailError> {
    Ok(Message::builder()
        .from(mailbox(&smtp.from)?)
        .to(mailbox(to)?)
        .subject(alert.title())
        .multipart(MultiPart::alternative_plain_html(
            alert.text(),
            alert.html(),
        ))?)
}

/// The SMTP transport for these settings; one connection per send (no pool).
pub fn transport(
    smtp: &SmtpSettings,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
    let mut builder = match smtp.tls {
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
        SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
    }
    .port(smtp.port)
    .timeout(Some(timeout));
    if let Some((user, password)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// Sends `alert` to `to` through the configured SMTP server.
pub async fn send(
    smtp: &SmtpSettings,
    timeout: Duration,
    to: &str,
    alert: &AlertMessage,
) -> Result<(), EmailError> {
    let message = build_message(smtp, to, alert)?;
    transport(smtp, timeout)?
        .send(message)
        .await
        .map_err(|err| EmailError::from_send(smtp, err))?;
    Ok(())
}

/// Sends a plain-text email (a console invitation or password-reset link)
/// through the configured SMTP server.
pub async fn send_text(
    smtp: &SmtpSettings,
    timeout: Duration,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), EmailError> {
    let message = Message::builder()
        .from(mailbox(&smtp.from)?)
        .to(mailbox(to)?)
        .subject(subject)
        .body(body.to_owned())?;
    transport(smtp, timeout)?
        .send(message)
        .await
        .map_err(|err| EmailError::from_send(smtp, err))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendpromptly_core::alert::{AlertEvent, IncidentFacts};
    use sendpromptly_core::model::{IncidentKind, Provider};
    use sendpromptly_core::time::Timestamp;

    #[test]
    fn the_email_has_a_subject_and_both_parts() {
        let smtp = SmtpSettings::parse(
            "smtp://127.0.0.1:2525?tls=none",
            "SendPromptly <alerts@example.com>",
        )
        .unwrap();
        let alert = AlertMessage::Single {
            event: AlertEvent::IncidentOpened,
            facts: IncidentFacts {
                incident_id: "inc_1".into(),
                provider: Provider::Stripe,
                event_id: "evt_1".into(),
                event_type: "invoice.paid".into(),
                subject: Some("cus_9".into()),
                kind: IncidentKind::MissingResult,
                reason: None,
                received_at: Timestamp::from_unix_seconds(0),
                console_url: "https://sp.example/incidents/inc_1".into(),
            },
            at: Timestamp::from_unix_seconds(600),
        };
        let raw = String::from_utf8(
            build_message(&smtp, "ops@example.com", &alert)
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(
            raw.contains("Subject: Incident opened: stripe invoice.paid (missing_result)"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("To: ops@example.com"));
        assert!(matches!(
            build_message(&smtp, "not an address", &alert),
            Err(EmailError::Address { .. })
        ));
        assert!(transport(&smtp, Duration::from_secs(5)).is_ok());
    }
}
