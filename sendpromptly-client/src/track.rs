//! [`TrackExt::track`]: the result of a future that applies one event's
//! business effect, reported from how the future ends.
//!
//! ```no_run
//! # async fn run(sp: sendpromptly_client::Client, event: sendpromptly_client::stripe::StripeEvent) {
//! use sendpromptly_client::TrackExt;
//!
//! // `success` when it returns Ok, `failure` (with the error's text) when it
//! // returns Err; the app gets its own Result back, unchanged.
//! let outcome = add_credits(&event).track(&sp, &event).await;
//! # let _ = outcome;
//! # }
//! # async fn add_credits(_: &sendpromptly_client::stripe::StripeEvent) -> Result<(), String> { Ok(()) }
//! ```

use std::fmt::Display;
use std::future::Future;

use crate::background::Background;
use crate::client::Client;
use crate::error::Error;
use crate::signals::EventTarget;

/// The longest `error` a result may carry (the contract's limit, 4 KiB).
const MAX_ERROR_BYTES: usize = 4096;

/// Where tracked results and webhook receipts go: sent at once under the
/// client's retry budget (3 s by default), or queued in [`Background`] mode
/// (returns at once). Either way a SendPromptly failure is logged, never
/// returned to the app's code.
#[derive(Clone, Debug)]
pub enum Reporter {
    /// Sent and awaited, bounded by the client's [`crate::RetryConfig`].
    Direct(Client),
    /// Queued; delivered by the background task.
    Background(Background),
}

impl From<Client> for Reporter {
    fn from(client: Client) -> Self {
        Reporter::Direct(client)
    }
}

impl From<&Client> for Reporter {
    fn from(client: &Client) -> Self {
        Reporter::Direct(client.clone())
    }
}

impl From<Background> for Reporter {
    fn from(background: Background) -> Self {
        Reporter::Background(background)
    }
}

impl From<&Background> for Reporter {
    fn from(background: &Background) -> Self {
        Reporter::Background(background.clone())
    }
}

impl From<&Reporter> for Reporter {
    fn from(reporter: &Reporter) -> Self {
        reporter.clone()
    }
}

/// A `failure` result's `error` from an error value: its text, cut to the
/// contract's 4 KiB on a character boundary.
fn error_text(error: &impl Display) -> String {
    let mut text = error.to_string();
    if text.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    if text.trim().is_empty() {
        text = "error (no message)".to_owned();
    }
    text
}

impl Reporter {
    /// The client behind this reporter.
    pub fn client(&self) -> Client {
        match self {
            Reporter::Direct(client) => client.clone(),
            Reporter::Background(background) => background.client(),
        }
    }

    /// Reports `outcome` for `target`: `success` for `Ok`, `failure` with
    /// the error's text (and its Rust type as metadata `error_type`) for
    /// `Err`. A repair callback as `target` links the result to its
    /// `reprocess_id`. `Err` when it was not recorded (or not queued); the
    /// caller decides whether that matters (a repair endpoint answers 503 so
    /// the callback is delivered again).
    pub async fn report<T, E: Display>(
        &self,
        target: &impl EventTarget,
        outcome: &Result<T, E>,
    ) -> Result<(), Error> {
        let client = self.client();
        let builder = match outcome {
            Ok(_) => client.success_for(target),
            Err(error) => client
                .failure_for(target, error_text(error))
                .metadata_value("error_type", std::any::type_name::<E>()),
        };
        match self {
            Reporter::Direct(_) => builder.send().await.map(|_| ()),
            Reporter::Background(background) => builder
                .enqueue(background)
                .map_err(|err| Error::config(format!("not queued: {err}"))),
        }
    }

    /// [`Reporter::report`], logging instead of returning a failure to
    /// record it.
    pub(crate) async fn report_or_log<T, E: Display>(
        &self,
        target: &impl EventTarget,
        outcome: &Result<T, E>,
    ) {
        if let Err(err) = self.report(target, outcome).await {
            let key = target.event_key();
            tracing::warn!(
                provider = %key.provider,
                event_id = %key.event_id,
                %err,
                "sendpromptly: result not recorded; the app's outcome is unchanged"
            );
        }
    }
}

/// Reports the result of a future that applies one event's business effect.
///
/// Implemented for every future returning a `Result` whose error can be
/// displayed. The tracked future returns exactly what the original returns;
/// reporting happens after it ends and can only add time (at most the
/// client's retry budget, nothing in background mode), never change the
/// outcome: a failure to report is logged with `tracing`.
pub trait TrackExt<T, E>: Future<Output = Result<T, E>> + Sized
where
    E: Display,
{
    /// Awaits `self`, then reports `success` or `failure` for `target` (a
    /// verified provider event, an [`crate::EventReference`], an
    /// [`crate::EventKey`], or a repair callback, which links the result to
    /// its `reprocess_id`) to `reporter` (a [`Client`], a [`Background`] or a
    /// [`Reporter`]).
    fn track(
        self,
        reporter: impl Into<Reporter>,
        target: &(impl EventTarget + ?Sized),
    ) -> impl Future<Output = Result<T, E>> {
        let reporter = reporter.into();
        let key = target.event_key();
        let reprocess_id = target.reprocess_id().map(str::to_owned);
        async move {
            let outcome = self.await;
            let target = Target { key, reprocess_id };
            reporter.report_or_log(&target, &outcome).await;
            outcome
        }
    }
}

impl<F, T, E> TrackExt<T, E> for F
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
}

/// An owned copy of a target (the tracked future may outlive the borrow).
struct Target {
    key: sendpromptly_core::model::EventKey,
    reprocess_id: Option<String>,
}

impl EventTarget for Target {
    fn event_key(&self) -> sendpromptly_core::model::EventKey {
        self.key.clone()
    }
    fn reprocess_id(&self) -> Option<&str> {
        self.reprocess_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let text = error_text(&"é".repeat(3000));
        assert!(text.len() <= MAX_ERROR_BYTES);
        assert!(text.len() > MAX_ERROR_BYTES - 2);
        assert_eq!(error_text(&""), "error (no message)");
    }
}
