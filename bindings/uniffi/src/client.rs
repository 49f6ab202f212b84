//! `Client`: the Rust SDK's client. Every signal call comes twice: blocking
//! (`receipt`) and awaitable (`receipt_async`: a Kotlin `suspend` function,
//! a Swift `async` one); both run the same SDK future on the runtime.

use std::future::Future;
use std::sync::{Arc, Mutex};

use sendpromptly_client::{self as sdk, ClientOptions};

use crate::background::{Background, BackgroundConfig, DropHandler};
use crate::errors::{SendPromptlyError, invalid};
use crate::rt;
use crate::types::{
    EventRef, Provider, Receipt, ResultSignal, ResultStatus, RetryConfig, SignalResponse, json_text,
};

/// A SendPromptly client: thread-safe, build one per process and share it.
/// A client used after `fork()` (Puma cluster mode, Unicorn) rebuilds its
/// SDK client in the child: the parent's connection pool belongs to the
/// parent's I/O threads, which the child does not have.
#[derive(Debug, uniffi::Object)]
pub struct Client {
    options: ClientOptions,
    live: Mutex<(u32, sdk::Client)>,
}

type Answer<T> = Result<T, SendPromptlyError>;

/// Awaits a signal's SDK future (or its conversion error) and converts the answer.
async fn signal(
    send: Answer<impl Future<Output = Result<sdk::SignalResponse, sdk::Error>> + Send + 'static>,
) -> Answer<SignalResponse> {
    SignalResponse::try_from(send?.await?)
}

impl Client {
    fn build(options: ClientOptions) -> Answer<Arc<Self>> {
        let client = sdk::Client::with_options(options.clone())?;
        Ok(Arc::new(Client {
            options,
            live: Mutex::new((std::process::id(), client)),
        }))
    }

    /// The SDK client of this process.
    pub fn sdk(&self) -> Answer<sdk::Client> {
        let pid = std::process::id();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.0 != pid {
            let fresh = sdk::Client::with_options(self.options.clone())?;
            // Abandoned, not dropped: its connection tasks lived on threads
            // that do not exist in this process.
            std::mem::forget(std::mem::replace(&mut live.1, fresh));
            live.0 = pid;
        }
        Ok(live.1.clone())
    }

    fn receipt_future(
        &self,
        receipt: &Receipt,
    ) -> impl Future<Output = Answer<SignalResponse>> + Send + 'static {
        signal(
            self.sdk()
                .and_then(|c| receipt.builder(&c))
                .map(sdk::ReceiptBuilder::send),
        )
    }

    fn result_future(
        &self,
        result: &ResultSignal,
    ) -> impl Future<Output = Answer<SignalResponse>> + Send + 'static {
        signal(
            self.sdk()
                .and_then(|c| result.builder(&c))
                .map(sdk::ResultBuilder::send),
        )
    }

    /// Runs an operations call and answers its JSON.
    fn json<T: serde::Serialize>(
        &self,
        call: impl Future<Output = Result<T, sdk::Error>> + Send + 'static,
    ) -> Answer<String> {
        rt::block_on(async move { json_text(&call.await?) })
    }
}

#[uniffi::export]
impl Client {
    /// A client for `base_url` with `api_key`; either falls back to
    /// `SENDPROMPTLY_URL` / `SENDPROMPTLY_API_KEY`. `retry` fields left
    /// null keep the SDK's defaults (after `SENDPROMPTLY_RETRY_*`).
    #[uniffi::constructor(default(api_key = None, base_url = None, retry = None))]
    pub fn new(
        api_key: Option<String>,
        base_url: Option<String>,
        retry: Option<RetryConfig>,
    ) -> Answer<Arc<Self>> {
        let mut options = ClientOptions::from_env()?;
        if api_key.is_some() {
            options.api_key = api_key;
        }
        if base_url.is_some() {
            options.base_url = base_url;
        }
        if let Some(retry) = retry {
            options.retry = retry.apply(options.retry)?;
        }
        options.user_agent_suffix = Some("uniffi".to_owned());
        Client::build(options)
    }

    /// The same client (same connection pool) with another retry policy.
    pub fn with_retry(&self, retry: RetryConfig) -> Answer<Arc<Self>> {
        let retry = retry.apply(self.options.retry.clone())?;
        let client = self.sdk()?.with_retry(retry.clone());
        Ok(Arc::new(Client {
            options: ClientOptions {
                retry,
                ..self.options.clone()
            },
            live: Mutex::new((std::process::id(), client)),
        }))
    }

    /// The retry policy in force, every field filled.
    pub fn retry_config(&self) -> RetryConfig {
        (&self.options.retry).into()
    }

    /// The base URL (with a trailing slash).
    pub fn base_url(&self) -> String {
        // Normalised by the SDK (a trailing slash added).
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .base_url()
            .to_owned()
    }

    /// Sends a receipt: the app durably accepted this event.
    pub fn receipt(&self, receipt: Receipt) -> Answer<SignalResponse> {
        rt::block_on(self.receipt_future(&receipt))
    }

    /// Sends a `success` result: the business effect was applied.
    #[uniffi::method(default(metadata_json = None, idempotency_key = None))]
    pub fn success(
        &self,
        target: EventRef,
        metadata_json: Option<String>,
        idempotency_key: Option<String>,
    ) -> Answer<SignalResponse> {
        self.result(ResultSignal::of(
            target,
            ResultStatus::Success,
            None,
            metadata_json,
            idempotency_key,
        ))
    }

    /// Sends a `failure` result (`error` says why): opens an incident at once.
    #[uniffi::method(default(metadata_json = None, idempotency_key = None))]
    pub fn failure(
        &self,
        target: EventRef,
        error: String,
        metadata_json: Option<String>,
        idempotency_key: Option<String>,
    ) -> Answer<SignalResponse> {
        self.result(ResultSignal::of(
            target,
            ResultStatus::Failure,
            Some(error),
            metadata_json,
            idempotency_key,
        ))
    }

    /// Sends a result with every field given.
    pub fn result(&self, result: ResultSignal) -> Answer<SignalResponse> {
        rt::block_on(self.result_future(&result))
    }

    /// `receipt`, awaitable.
    pub async fn receipt_async(&self, receipt: Receipt) -> Answer<SignalResponse> {
        rt::spawn(self.receipt_future(&receipt)).await
    }

    /// `success`, awaitable.
    #[uniffi::method(default(metadata_json = None, idempotency_key = None))]
    pub async fn success_async(
        &self,
        target: EventRef,
        metadata_json: Option<String>,
        idempotency_key: Option<String>,
    ) -> Answer<SignalResponse> {
        self.result_async(ResultSignal::of(
            target,
            ResultStatus::Success,
            None,
            metadata_json,
            idempotency_key,
        ))
        .await
    }

    /// `failure`, awaitable.
    #[uniffi::method(default(metadata_json = None, idempotency_key = None))]
    pub async fn failure_async(
        &self,
        target: EventRef,
        error: String,
        metadata_json: Option<String>,
        idempotency_key: Option<String>,
    ) -> Answer<SignalResponse> {
        self.result_async(ResultSignal::of(
            target,
            ResultStatus::Failure,
            Some(error),
            metadata_json,
            idempotency_key,
        ))
        .await
    }

    /// `result`, awaitable.
    pub async fn result_async(&self, result: ResultSignal) -> Answer<SignalResponse> {
        rt::spawn(self.result_future(&result)).await
    }

    /// Starts background mode: signals go into a bounded queue and return at
    /// once; SDK threads deliver them under `config.retry` (default 20
    /// attempts within 5 minutes). `on_drop` hears of every signal dropped.
    #[uniffi::method(default(config = None, on_drop = None))]
    pub fn background(
        &self,
        config: Option<BackgroundConfig>,
        on_drop: Option<Box<dyn DropHandler>>,
    ) -> Answer<Arc<Background>> {
        Background::start(&self.sdk()?, config.unwrap_or_default(), on_drop).map(Arc::new)
    }

    /// `GET /v1/events/{provider}/{event_id}`: the event, its timeline and incident (JSON).
    pub fn get_event(&self, provider: Provider, event_id: String) -> Answer<String> {
        let c = self.sdk()?;
        self.json(async move { c.get_event(provider.into(), &event_id).await })
    }

    /// `GET /v1/incidents/{id}` (JSON).
    pub fn get_incident(&self, incident_id: String) -> Answer<String> {
        let c = self.sdk()?;
        self.json(async move { c.get_incident(&incident_id).await })
    }

    /// Asks for the incident's repair callback to be sent (JSON answer).
    #[uniffi::method(default(note = None))]
    pub fn reprocess(&self, incident_id: String, note: Option<String>) -> Answer<String> {
        let c = self.sdk()?;
        self.json(async move { c.reprocess(&incident_id, note.as_deref()).await })
    }

    /// Resolves the incident by hand, saying why (JSON answer).
    pub fn resolve(&self, incident_id: String, note: String) -> Answer<String> {
        let c = self.sdk()?;
        self.json(async move { c.resolve(&incident_id, &note).await })
    }

    /// The project's settings (JSON).
    pub fn project(&self) -> Answer<String> {
        let c = self.sdk()?;
        self.json(async move { c.project().await })
    }

    /// Changes project settings: `update_json` is the body of
    /// `PATCH /v1/project`, e.g. `{"repair_url": "https://…"}`.
    pub fn update_project(&self, update_json: String) -> Answer<String> {
        let update: sdk::ProjectUpdate = serde_json::from_str(&update_json)
            .map_err(|err| invalid("update_json", format!("is not a project update: {err}")))?;
        let c = self.sdk()?;
        self.json(async move { c.update_project(&update).await })
    }

    /// `GET /healthz` (JSON).
    pub fn health(&self) -> Answer<String> {
        let c = self.sdk()?;
        self.json(async move { c.health().await })
    }
}
