//! The two signals: typed builders for receipts and results, and the
//! helpers that fill them from verified provider events.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use sendpromptly_core::Timestamp;
use sendpromptly_core::callback::{RepairCallback, RepairCallbackEvent};
use sendpromptly_core::model::{
    EventKey, JsonObject, Provider, Receipt, ResultSignal, ResultStatus,
};
use sendpromptly_core::provider_event::EventReference;
use sendpromptly_core::shopify::ShopifyDelivery;
use sendpromptly_core::stripe::StripeEvent;

use crate::background::{Background, EnqueueError, Signal};
use crate::client::Client;
use crate::error::Error;
use crate::types::SignalResponse;

/// Something that names one event: `(provider, event_id)`, and possibly the
/// repair callback that asked for it to be processed again.
///
/// Implemented for verified provider events ([`StripeEvent`],
/// [`ShopifyDelivery`], [`EventReference`]), for a verified
/// [`RepairCallback`] (which also links the result to its `reprocess_id`),
/// and for [`EventKey`] and [`Receipt`].
pub trait EventTarget {
    /// The event's `(provider, event_id)`.
    fn event_key(&self) -> EventKey;
    /// The repair callback this event is being processed for, if any.
    fn reprocess_id(&self) -> Option<&str> {
        None
    }
}

impl<T: EventTarget + ?Sized> EventTarget for &T {
    fn event_key(&self) -> EventKey {
        (**self).event_key()
    }
    fn reprocess_id(&self) -> Option<&str> {
        (**self).reprocess_id()
    }
}

impl EventTarget for EventKey {
    fn event_key(&self) -> EventKey {
        self.clone()
    }
}

impl EventTarget for EventReference {
    fn event_key(&self) -> EventKey {
        EventKey {
            provider: self.provider,
            event_id: self.event_id.clone(),
        }
    }
}

impl EventTarget for StripeEvent {
    fn event_key(&self) -> EventKey {
        EventReference::from_stripe_event(self).event_key()
    }
}

impl EventTarget for ShopifyDelivery {
    fn event_key(&self) -> EventKey {
        EventReference::from_shopify_delivery(self).event_key()
    }
}

impl EventTarget for RepairCallbackEvent {
    fn event_key(&self) -> EventKey {
        EventKey {
            provider: self.provider,
            event_id: self.event_id.clone(),
        }
    }
}

impl EventTarget for RepairCallback {
    fn event_key(&self) -> EventKey {
        self.event.event_key()
    }
    fn reprocess_id(&self) -> Option<&str> {
        Some(&self.reprocess_id)
    }
}

impl EventTarget for Receipt {
    fn event_key(&self) -> EventKey {
        EventKey {
            provider: self.provider,
            event_id: self.event_id.clone(),
        }
    }
}

/// Something a receipt can be filled from: provider, event id, event type,
/// subject, when it happened, and metadata about the object (id, amount,
/// currency, status).
///
/// Implemented for a verified [`StripeEvent`], a verified
/// [`ShopifyDelivery`] and an [`EventReference`]; the field choices per
/// event type are those of [`EventReference`] (see `docs/providers.md`).
pub trait ReceiptSource {
    /// The receipt for this event.
    fn to_receipt(&self) -> Receipt;
}

impl<T: ReceiptSource + ?Sized> ReceiptSource for &T {
    fn to_receipt(&self) -> Receipt {
        (**self).to_receipt()
    }
}

impl ReceiptSource for EventReference {
    fn to_receipt(&self) -> Receipt {
        let metadata = self.receipt_metadata();
        Receipt {
            traceparent: None,
            tracestate: None,
            provider: self.provider,
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            subject: self.subject.clone(),
            effect: None,
            deadline_seconds: None,
            metadata: (!metadata.is_empty()).then_some(metadata),
            occurred_at: self.occurred_at,
        }
    }
}

impl ReceiptSource for StripeEvent {
    fn to_receipt(&self) -> Receipt {
        EventReference::from_stripe_event(self).to_receipt()
    }
}

impl ReceiptSource for ShopifyDelivery {
    fn to_receipt(&self) -> Receipt {
        EventReference::from_shopify_delivery(self).to_receipt()
    }
}

type SignalFuture = Pin<Box<dyn Future<Output = Result<SignalResponse, Error>> + Send>>;

/// A receipt being built; `.await` it (or call [`ReceiptBuilder::send`]) to
/// record it, or [`ReceiptBuilder::enqueue`] it in background mode.
///
/// ```no_run
/// # async fn run(sp: sendpromptly_client::Client) -> Result<(), sendpromptly_client::Error> {
/// use std::time::Duration;
/// use sendpromptly_client::Provider;
///
/// let recorded = sp
///     .receipt(Provider::Stripe, "evt_1Q2w3E", "invoice.paid")
///     .subject("cus_9s8d7f")
///     .effect("credits.add")
///     .deadline(Duration::from_secs(900))
///     .metadata_value("credits", 500)
///     .await?;
/// if !recorded.created() {
///     // Stripe delivered this event before: it was counted as a duplicate.
/// }
/// # Ok(()) }
/// ```
#[must_use = "a receipt is only sent when awaited, sent or enqueued"]
#[derive(Debug, Clone)]
pub struct ReceiptBuilder {
    client: Client,
    receipt: Receipt,
    idempotency_key: Option<String>,
}

impl ReceiptBuilder {
    pub(crate) fn new(client: Client, receipt: Receipt) -> Self {
        ReceiptBuilder {
            client,
            receipt,
            idempotency_key: None,
        }
    }

    /// The customer or account the effect is for (e.g. `cus_…`).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.receipt.subject = Some(subject.into());
        self
    }

    /// A label for the expected business effect, e.g. `credits.add`.
    pub fn effect(mut self, effect: impl Into<String>) -> Self {
        self.receipt.effect = Some(effect.into());
        self
    }

    /// Seconds until the result is due (1 – 604800), overriding the
    /// project's settings for this event.
    pub fn deadline_seconds(mut self, seconds: u32) -> Self {
        self.receipt.deadline_seconds = Some(seconds);
        self
    }

    /// [`ReceiptBuilder::deadline_seconds`] from a `Duration` (rounded up to
    /// whole seconds).
    pub fn deadline(self, deadline: Duration) -> Self {
        let seconds = deadline.as_secs() + u64::from(deadline.subsec_nanos() > 0);
        self.deadline_seconds(u32::try_from(seconds).unwrap_or(u32::MAX))
    }

    /// Replaces the metadata (a JSON object, at most 8 KiB serialised).
    pub fn metadata(mut self, metadata: JsonObject) -> Self {
        self.receipt.metadata = Some(metadata);
        self
    }

    /// Adds one metadata entry.
    pub fn metadata_value(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.receipt
            .metadata
            .get_or_insert_with(JsonObject::new)
            .insert(key.into(), value.into());
        self
    }

    /// When the provider says the event happened.
    pub fn occurred_at(mut self, at: Timestamp) -> Self {
        self.receipt.occurred_at = Some(at);
        self
    }

    /// The W3C `traceparent` of the span sending this signal (e.g. the
    /// current OpenTelemetry span's), stored on the event's timeline; a
    /// repair callback continues its trace. Validated by the server (and by
    /// [`sendpromptly_core::trace::TraceParent::parse`]).
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.receipt.traceparent = Some(traceparent.into());
        self
    }

    /// The W3C `tracestate` that goes with [`Self::traceparent`].
    pub fn tracestate(mut self, tracestate: impl Into<String>) -> Self {
        self.receipt.tracestate = Some(tracestate.into());
        self
    }

    /// Uses this `Idempotency-Key` instead of a generated one (e.g. to make
    /// a retry of the whole handler replay the same call).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The receipt as built so far.
    pub fn as_receipt(&self) -> &Receipt {
        &self.receipt
    }

    /// The receipt, without sending it.
    pub fn into_receipt(self) -> Receipt {
        self.receipt
    }

    /// Records the receipt (`POST /v1/receipt`) under the client's retry
    /// policy. Same as `.await` on the builder.
    pub async fn send(self) -> Result<SignalResponse, Error> {
        let call = Client::receipt_call(&self.receipt, self.idempotency_key)?;
        self.client
            .send_signal(&call, self.client.retry_config())
            .await
    }

    /// Puts the receipt on `background`'s queue and returns at once.
    pub fn enqueue(self, background: &Background) -> Result<(), EnqueueError> {
        background.enqueue_with_key(Signal::Receipt(self.receipt), self.idempotency_key)
    }
}

impl IntoFuture for ReceiptBuilder {
    type Output = Result<SignalResponse, Error>;
    type IntoFuture = SignalFuture;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A result being built; `.await` it (or call [`ResultBuilder::send`]) to
/// record it, or [`ResultBuilder::enqueue`] it in background mode.
///
/// ```no_run
/// # async fn run(sp: sendpromptly_client::Client) -> Result<(), sendpromptly_client::Error> {
/// use sendpromptly_client::Provider;
///
/// sp.failure(Provider::Stripe, "evt_1Q2w3E", "tenant acct_42 not found")
///     .metadata_value("tenant", "acct_42")
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a result is only sent when awaited, sent or enqueued"]
#[derive(Debug, Clone)]
pub struct ResultBuilder {
    client: Client,
    result: ResultSignal,
    idempotency_key: Option<String>,
}

impl ResultBuilder {
    pub(crate) fn new(client: Client, result: ResultSignal) -> Self {
        ResultBuilder {
            client,
            result,
            idempotency_key: None,
        }
    }

    /// What went wrong (expected with `failure`, at most 4 KiB).
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.result.error = Some(error.into());
        self
    }

    /// Links the result to the repair callback (`rep_…`) that produced it.
    pub fn reprocess_id(mut self, reprocess_id: impl Into<String>) -> Self {
        self.result.reprocess_id = Some(reprocess_id.into());
        self
    }

    /// Replaces the metadata (a JSON object, at most 8 KiB serialised).
    pub fn metadata(mut self, metadata: JsonObject) -> Self {
        self.result.metadata = Some(metadata);
        self
    }

    /// Adds one metadata entry.
    pub fn metadata_value(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.result
            .metadata
            .get_or_insert_with(JsonObject::new)
            .insert(key.into(), value.into());
        self
    }

    /// The W3C `traceparent` of the span sending this signal (e.g. the
    /// current OpenTelemetry span's), stored on the event's timeline; a
    /// repair callback continues its trace. Validated by the server (and by
    /// [`sendpromptly_core::trace::TraceParent::parse`]).
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.result.traceparent = Some(traceparent.into());
        self
    }

    /// The W3C `tracestate` that goes with [`Self::traceparent`].
    pub fn tracestate(mut self, tracestate: impl Into<String>) -> Self {
        self.result.tracestate = Some(tracestate.into());
        self
    }

    /// Uses this `Idempotency-Key` instead of a generated one.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The result as built so far.
    pub fn as_result(&self) -> &ResultSignal {
        &self.result
    }

    /// The result, without sending it.
    pub fn into_result(self) -> ResultSignal {
        self.result
    }

    /// Records the result (`POST /v1/result`) under the client's retry
    /// policy. Same as `.await` on the builder.
    pub async fn send(self) -> Result<SignalResponse, Error> {
        let call = Client::result_call(&self.result, self.idempotency_key)?;
        self.client
            .send_signal(&call, self.client.retry_config())
            .await
    }

    /// Puts the result on `background`'s queue and returns at once.
    pub fn enqueue(self, background: &Background) -> Result<(), EnqueueError> {
        background.enqueue_with_key(Signal::Result(self.result), self.idempotency_key)
    }
}

impl IntoFuture for ResultBuilder {
    type Output = Result<SignalResponse, Error>;
    type IntoFuture = SignalFuture;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

fn result_signal(key: EventKey, status: ResultStatus, reprocess_id: Option<&str>) -> ResultSignal {
    ResultSignal {
        traceparent: None,
        tracestate: None,
        provider: key.provider,
        event_id: key.event_id,
        status,
        error: None,
        reprocess_id: reprocess_id.map(str::to_owned),
        metadata: None,
    }
}

impl Client {
    /// A receipt: the app durably accepted this event. Add optional fields
    /// with the builder's methods, then `.await` it.
    pub fn receipt(
        &self,
        provider: Provider,
        event_id: impl Into<String>,
        event_type: impl Into<String>,
    ) -> ReceiptBuilder {
        ReceiptBuilder::new(
            self.clone(),
            Receipt {
                traceparent: None,
                tracestate: None,
                provider,
                event_id: event_id.into(),
                event_type: event_type.into(),
                subject: None,
                effect: None,
                deadline_seconds: None,
                metadata: None,
                occurred_at: None,
            },
        )
    }

    /// A receipt filled from a verified provider event: provider, event id,
    /// type, subject, `occurred_at`, and object metadata (id, amount,
    /// currency, status).
    ///
    /// ```no_run
    /// # async fn run(sp: sendpromptly_client::Client, payload: &[u8], signature: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// use sendpromptly_client::stripe;
    ///
    /// let event = stripe::construct_event(payload, signature, "whsec_…", sendpromptly_client::now())?;
    /// sp.receipt_for(&event).effect("credits.add").await?;
    /// // ... apply the effect ...
    /// sp.success_for(&event).await?;
    /// # Ok(()) }
    /// ```
    pub fn receipt_for(&self, source: &impl ReceiptSource) -> ReceiptBuilder {
        ReceiptBuilder::new(self.clone(), source.to_receipt())
    }

    /// A result with an explicit status.
    pub fn result(
        &self,
        provider: Provider,
        event_id: impl Into<String>,
        status: ResultStatus,
    ) -> ResultBuilder {
        let key = EventKey {
            provider,
            event_id: event_id.into(),
        };
        ResultBuilder::new(self.clone(), result_signal(key, status, None))
    }

    /// A result for `target` (a provider event, a repair callback, …) with
    /// an explicit status; a repair callback also sets `reprocess_id`.
    pub fn result_for(&self, target: &impl EventTarget, status: ResultStatus) -> ResultBuilder {
        ResultBuilder::new(
            self.clone(),
            result_signal(target.event_key(), status, target.reprocess_id()),
        )
    }

    /// A `success` result: the business effect was applied.
    pub fn success(&self, provider: Provider, event_id: impl Into<String>) -> ResultBuilder {
        self.result(provider, event_id, ResultStatus::Success)
    }

    /// A `success` result for `target`.
    ///
    /// ```no_run
    /// # async fn run(sp: sendpromptly_client::Client, callback: sendpromptly_client::RepairCallback) -> Result<(), sendpromptly_client::Error> {
    /// // In a repair endpoint, after processing the event again:
    /// sp.success_for(&callback).await?; // provider, event id and reprocess_id
    /// # Ok(()) }
    /// ```
    pub fn success_for(&self, target: &impl EventTarget) -> ResultBuilder {
        self.result_for(target, ResultStatus::Success)
    }

    /// A `failure` result: the business effect could not be applied;
    /// `error` says why (at most 4 KiB). Opens an incident at once.
    pub fn failure(
        &self,
        provider: Provider,
        event_id: impl Into<String>,
        error: impl Into<String>,
    ) -> ResultBuilder {
        self.result(provider, event_id, ResultStatus::Failure)
            .error(error)
    }

    /// A `failure` result for `target`.
    pub fn failure_for(
        &self,
        target: &impl EventTarget,
        error: impl Into<String>,
    ) -> ResultBuilder {
        self.result_for(target, ResultStatus::Failure).error(error)
    }
}

#[cfg(test)]
mod tests {
    use sendpromptly_core::callback::RepairCallback;

    use super::*;

    fn sp() -> Client {
        Client::with_options(crate::ClientOptions {
            api_key: Some("sp_test".into()),
            base_url: Some("http://127.0.0.1:9".into()),
            ..crate::ClientOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn builders_fill_every_field() {
        let receipt = sp()
            .receipt(Provider::Custom, "job-1", "job.done")
            .subject("acct_1")
            .effect("export.create")
            .deadline(Duration::from_millis(1500))
            .metadata_value("rows", 10)
            .occurred_at(Timestamp::from_unix_seconds(1_800_000_000))
            .into_receipt();
        assert_eq!(receipt.deadline_seconds, Some(2));
        assert_eq!(receipt.subject.as_deref(), Some("acct_1"));
        assert_eq!(receipt.metadata.unwrap()["rows"], 10);

        let failure = sp()
            .failure(Provider::Stripe, "evt_1", "boom")
            .into_result();
        assert_eq!(failure.status, ResultStatus::Failure);
        assert_eq!(failure.error.as_deref(), Some("boom"));
    }

    #[test]
    fn repair_callbacks_link_the_result() {
        let callback = RepairCallback::new(
            "rep_01",
            "inc_01",
            1,
            Timestamp::from_unix_seconds(1_800_000_000),
            "console:alice@example.com",
            RepairCallbackEvent::new(Provider::Shopify, "98880550", "orders/paid"),
        );
        let result = sp().success_for(&callback).into_result();
        assert_eq!(result.provider, Provider::Shopify);
        assert_eq!(result.event_id, "98880550");
        assert_eq!(result.reprocess_id.as_deref(), Some("rep_01"));
    }

    #[tokio::test]
    async fn invalid_fields_fail_before_sending() {
        let err = sp()
            .receipt(Provider::Stripe, "", "invoice.paid")
            .await
            .unwrap_err();
        match err {
            Error::Validation(v) => assert_eq!(v.param, "event_id"),
            other => panic!("expected a validation error, got {other}"),
        }
    }
}
