//! Dev mode: what a client does instead of calling the server (see
//! [`DevMode`] for when it is on). Each signal is logged, with the JSON it
//! would have sent, and answered locally as the server would answer a first
//! delivery; every other call is a configuration error saying dev mode is on.
//!
//! Logs go to `tracing` (target `sendpromptly::dev`); when no `tracing`
//! subscriber is installed (the usual case under the Python and Node
//! bindings) they are written to stderr instead, so they are never lost.

use sendpromptly_core::model::{EventState, Receipt, ResultSignal, ResultStatus, ResultSummary};
use sendpromptly_core::wire::EventView;

use crate::client::{Call, now};
use crate::config::{DevMode, ENV_DEV};
use crate::error::Error;
use crate::types::{ResponseMeta, SignalResponse};

/// Writes one dev-mode line to `tracing`, or to stderr without a subscriber.
fn emit(warning: bool, line: &str) {
    if tracing::dispatcher::has_been_set() {
        if warning {
            tracing::warn!(target: "sendpromptly::dev", "{line}");
        } else {
            tracing::info!(target: "sendpromptly::dev", "{line}");
        }
    } else {
        eprintln!("{line}");
    }
}

/// The warning logged when a client is built in dev mode.
pub(crate) fn announce(reason: DevMode) {
    let why = match reason {
        DevMode::Requested => format!("{ENV_DEV}=1"),
        DevMode::NoApiKeyInDevelopment => {
            "no API key is configured and the environment says development".to_owned()
        }
        DevMode::Forced => format!("{ENV_DEV}=force (even in production)"),
    };
    emit(
        true,
        &format!(
            "sendpromptly: DEV MODE ({why}): signals are logged, NOT sent, and no incident will ever open. Turn it off by unsetting {ENV_DEV} (or {ENV_DEV}=0) and setting SENDPROMPTLY_API_KEY and SENDPROMPTLY_URL."
        ),
    );
}

fn path(call: &Call) -> String {
    format!("/{}", call.segments.join("/"))
}

/// The error of any non-signal call in dev mode.
pub(crate) fn no_server(call: &Call) -> Error {
    Error::config(format!(
        "dev mode is on ({ENV_DEV}): {} {} was not sent, as there is no server to ask; configure SENDPROMPTLY_API_KEY and SENDPROMPTLY_URL and unset {ENV_DEV}",
        call.method,
        path(call)
    ))
}

/// Logs the signal `call` would send and answers it locally.
pub(crate) fn log_signal(call: &Call) -> Result<SignalResponse, Error> {
    let body = call.body.as_deref().unwrap_or_default();
    emit(
        false,
        &format!(
            "sendpromptly dev mode: would POST {} {}",
            path(call),
            String::from_utf8_lossy(body)
        ),
    );
    let undecodable =
        |err: serde_json::Error| Error::config(format!("dev mode: unreadable signal: {err}"));
    let received = Some(now());
    let (event, status) = if call.segments.last().is_some_and(|s| s == "receipt") {
        let receipt: Receipt = serde_json::from_slice(body).map_err(undecodable)?;
        let view = EventView {
            provider: receipt.provider.into(),
            event_id: receipt.event_id,
            event_type: Some(receipt.event_type),
            subject: receipt.subject,
            effect: receipt.effect,
            metadata: receipt.metadata,
            occurred_at: receipt.occurred_at,
            state: EventState::AwaitingResult.into(),
            received_at: received,
            deadline_at: None,
            deliveries: 1,
            result_at: None,
            last_result: None,
            incident_id: None,
            receipt_due_at: None,
            provider_copy: None,
        };
        (view, 201)
    } else {
        let result: ResultSignal = serde_json::from_slice(body).map_err(undecodable)?;
        let state = match result.status {
            ResultStatus::Success => EventState::Succeeded,
            ResultStatus::Failure => EventState::Failed,
        };
        let view = EventView {
            provider: result.provider.into(),
            event_id: result.event_id,
            event_type: None,
            subject: None,
            effect: None,
            metadata: result.metadata,
            occurred_at: None,
            state: state.into(),
            received_at: None,
            deadline_at: None,
            deliveries: 0,
            result_at: received,
            last_result: Some(ResultSummary {
                status: result.status,
                error: result.error,
                reprocess_id: result.reprocess_id,
            }),
            incident_id: None,
            receipt_due_at: None,
            provider_copy: None,
        };
        (view, 200)
    };
    Ok(SignalResponse {
        event,
        incident: None,
        meta: ResponseMeta {
            status,
            request_id: None,
            replayed: false,
            attempts: 0,
            idempotency_key: call.idempotency_key.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sendpromptly_core::model::Provider;

    use crate::{Client, ClientOptions, DevMode, EventState};

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn build(pairs: &[(&str, &str)]) -> Result<Client, crate::Error> {
        Client::with_options_in(ClientOptions::default(), &env(pairs))
    }

    #[tokio::test]
    async fn dev_mode_answers_signals_without_a_server() {
        let sp = build(&[("SENDPROMPTLY_DEV", "1")]).expect("no key or URL needed");
        assert_eq!(sp.dev_mode(), Some(DevMode::Requested));
        let receipt = sp
            .receipt(Provider::Stripe, "evt_dev", "invoice.paid")
            .subject("cus_dev")
            .await
            .expect("logged, not sent");
        assert!(receipt.created());
        assert_eq!(receipt.event.state, EventState::AwaitingResult);
        assert_eq!(receipt.event.subject.as_deref(), Some("cus_dev"));
        let failed = sp
            .failure(Provider::Stripe, "evt_dev", "boom")
            .await
            .expect("logged, not sent");
        assert_eq!(failed.event.state, EventState::Failed);
        // Invalid signals are still refused, as they would be in production.
        assert!(sp.receipt(Provider::Stripe, "", "x").await.is_err());
        // Anything that needs the server says dev mode is on.
        let err = sp.health().await.unwrap_err();
        assert!(err.to_string().contains("dev mode"), "{err}");
    }

    #[tokio::test]
    async fn background_mode_delivers_to_the_log_in_dev_mode() {
        let sp = build(&[("SENDPROMPTLY_DEV", "true")]).unwrap();
        let background = sp.background(crate::BackgroundConfig::default()).unwrap();
        sp.success(Provider::Custom, "job-1")
            .enqueue(&background)
            .unwrap();
        let stats = background
            .shutdown(std::time::Duration::from_secs(10))
            .await;
        assert_eq!((stats.delivered, stats.dropped()), (1, 0));
    }

    #[test]
    fn no_key_without_dev_mode_is_a_clear_error() {
        let err = build(&[("SENDPROMPTLY_URL", "http://127.0.0.1:9")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("SENDPROMPTLY_API_KEY"), "{text}");
        assert!(text.contains("SENDPROMPTLY_DEV=1"), "{text}");
    }

    #[test]
    fn no_key_in_development_is_dev_mode() {
        for var in ["SENDPROMPTLY_ENV", "NODE_ENV"] {
            let sp = build(&[(var, "development")]).unwrap();
            assert_eq!(sp.dev_mode(), Some(DevMode::NoApiKeyInDevelopment));
        }
        // With a key, development sends for real.
        let sp = build(&[
            ("NODE_ENV", "development"),
            ("SENDPROMPTLY_API_KEY", "sp_test_key"),
            ("SENDPROMPTLY_URL", "http://127.0.0.1:9"),
        ])
        .unwrap();
        assert_eq!(sp.dev_mode(), None);
    }

    #[test]
    fn production_refuses_dev_mode_unless_forced() {
        for var in ["SENDPROMPTLY_ENV", "NODE_ENV"] {
            let err = build(&[("SENDPROMPTLY_DEV", "1"), (var, "production")]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("{var}=production")), "{text}");
            assert!(text.contains("SENDPROMPTLY_DEV=force"), "{text}");
        }
        let explicit = Client::with_options_in(
            ClientOptions {
                dev: Some(true),
                ..ClientOptions::default()
            },
            &env(&[("SENDPROMPTLY_ENV", "production")]),
        );
        assert!(explicit.is_err());
        let forced = build(&[("SENDPROMPTLY_DEV", "force"), ("NODE_ENV", "production")]).unwrap();
        assert_eq!(forced.dev_mode(), Some(DevMode::Forced));
    }

    #[test]
    fn dev_mode_can_be_turned_off() {
        let on = [
            ("SENDPROMPTLY_DEV", "1"),
            ("SENDPROMPTLY_API_KEY", "sp_test_key"),
            ("SENDPROMPTLY_URL", "http://127.0.0.1:9"),
        ];
        let off = Client::with_options_in(
            ClientOptions {
                dev: Some(false),
                ..ClientOptions::default()
            },
            &env(&on),
        )
        .unwrap();
        assert_eq!(off.dev_mode(), None);
        let zero = build(&[("SENDPROMPTLY_DEV", "0"), ("NODE_ENV", "development")]);
        assert!(zero.is_err(), "SENDPROMPTLY_DEV=0 and no key: an error");
        let bad = build(&[("SENDPROMPTLY_DEV", "maybe")]).unwrap_err();
        assert!(bad.to_string().contains("SENDPROMPTLY_DEV"), "{bad}");
    }
}
