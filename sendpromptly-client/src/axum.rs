//! axum extractors for the routes SendPromptly instruments (feature `axum`).
//!
//! - [`StripeWebhook`] / [`ShopifyWebhook`]: verify the provider's signature
//!   on the raw body, send the receipt filled from the event, and hand the
//!   handler the verified, typed event; a bad signature is answered `400`
//!   before the handler runs.
//! - [`RepairRequest`]: verifies SendPromptly's signed repair callback and
//!   hands the handler the event reference and `reprocess_id`;
//!   [`RepairRequest::finish`] reports the result and picks the answer.
//!
//! - [`stripe_middleware`]: the same as a layer, for routes whose handlers
//!   read the event from the request extensions (`Extension<StripeEvent>`).
//!
//! They read their settings, a [`Webhooks`], from the router's state
//! (`Webhooks: FromRef<S>`). With [`TrackExt::track`](crate::TrackExt::track)
//! on the future that applies the effect, a handler is one line of
//! SendPromptly:
//!
//! ```
//! use axum::{Router, extract::FromRef, http::StatusCode, routing::post};
//! use sendpromptly_client::axum::{RepairRequest, StripeWebhook, Webhooks};
//! use sendpromptly_client::{Client, TrackExt};
//!
//! #[derive(Clone)]
//! struct App { webhooks: Webhooks }
//! impl FromRef<App> for Webhooks {
//!     fn from_ref(app: &App) -> Webhooks { app.webhooks.clone() }
//! }
//!
//! async fn stripe(axum::extract::State(app): axum::extract::State<App>, StripeWebhook(event): StripeWebhook) -> StatusCode {
//!     // The receipt is already recorded (or logged as not recorded).
//!     let _ = add_credits(&event).track(app.webhooks.reporter(), &event).await;
//!     StatusCode::OK
//! }
//!
//! async fn repair(axum::extract::State(app): axum::extract::State<App>, request: RepairRequest) -> StatusCode {
//!     let outcome = add_credits_again(&request.callback.event.event_id).await;
//!     request.finish(&app.webhooks, &outcome).await
//! }
//! # async fn add_credits(_: &sendpromptly_client::stripe::StripeEvent) -> Result<(), String> { Ok(()) }
//! # async fn add_credits_again(_: &str) -> Result<(), String> { Ok(()) }
//!
//! # fn build(sp: Client) -> Router {
//! let webhooks = Webhooks::new(&sp)
//!     .stripe_secret("whsec_from_the_stripe_dashboard")
//!     .repair_secret("whsec_from_sendpromptly");
//! Router::new()
//!     .route("/webhooks/stripe", post(stripe))
//!     .route("/sendpromptly/repair", post(repair))
//!     .with_state(App { webhooks })
//! # }
//! ```
//!
//! Instrumentation never changes what the app answers: a receipt or result
//! that cannot be recorded is logged with `tracing` within the client's
//! retry budget (or queued, with a [`Background`](crate::Background)
//! reporter), and the handler runs as it would have.

use std::fmt::{self, Display};
use std::sync::Arc;

use ::axum::body::Bytes;
use ::axum::extract::{FromRef, FromRequest, Request, State};
use ::axum::http::{HeaderMap, StatusCode};
use ::axum::middleware::Next;
use ::axum::response::{IntoResponse, Response};
use sendpromptly_core::callback::RepairCallback;
use sendpromptly_core::shopify::{self, ShopifyDelivery};
use sendpromptly_core::stripe::{self, StripeEvent};

use crate::signals::{EventTarget, ReceiptBuilder, ReceiptSource};
use crate::track::Reporter;

type ReceiptHook<E> = Arc<dyn Fn(&E, ReceiptBuilder) -> Option<ReceiptBuilder> + Send + Sync>;

/// The extractors' settings: where signals go and the secrets to verify
/// with. Put it in the router's state (with a `FromRef` impl).
#[derive(Clone)]
pub struct Webhooks {
    reporter: Reporter,
    stripe_secrets: Vec<String>,
    shopify_secrets: Vec<String>,
    repair_secrets: Vec<String>,
    stripe_receipt: Option<ReceiptHook<StripeEvent>>,
    shopify_receipt: Option<ReceiptHook<ShopifyDelivery>>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field("reporter", &self.reporter)
            .field("stripe_secrets", &self.stripe_secrets.len())
            .field("shopify_secrets", &self.shopify_secrets.len())
            .field("repair_secrets", &self.repair_secrets.len())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Settings sending to `reporter` (a [`Client`](crate::Client), a
    /// [`Background`](crate::Background) or a [`Reporter`]), with no secrets
    /// yet.
    pub fn new(reporter: impl Into<Reporter>) -> Self {
        Webhooks {
            reporter: reporter.into(),
            stripe_secrets: Vec::new(),
            shopify_secrets: Vec::new(),
            repair_secrets: Vec::new(),
            stripe_receipt: None,
            shopify_receipt: None,
        }
    }

    /// Adds a Stripe endpoint secret (`whsec_…`); add the old one too
    /// while rolling a secret.
    pub fn stripe_secret(mut self, secret: impl Into<String>) -> Self {
        self.stripe_secrets.push(secret.into());
        self
    }

    /// Adds a Shopify app secret.
    pub fn shopify_secret(mut self, secret: impl Into<String>) -> Self {
        self.shopify_secrets.push(secret.into());
        self
    }

    /// Adds a SendPromptly repair-callback signing secret (`whsec_…`);
    /// during a rotation add both.
    pub fn repair_secret(mut self, secret: impl Into<String>) -> Self {
        self.repair_secrets.push(secret.into());
        self
    }

    /// Adjusts the receipt of each verified Stripe event (e.g. `.effect()`,
    /// `.metadata_value()`), or returns `None` to send none (an event type
    /// the app does not act on). By default every verified event gets the
    /// receipt [`Client::receipt_for`](crate::Client::receipt_for) fills.
    pub fn stripe_receipt(
        mut self,
        hook: impl Fn(&StripeEvent, ReceiptBuilder) -> Option<ReceiptBuilder> + Send + Sync + 'static,
    ) -> Self {
        self.stripe_receipt = Some(Arc::new(hook));
        self
    }

    /// [`Webhooks::stripe_receipt`] for Shopify deliveries.
    pub fn shopify_receipt(
        mut self,
        hook: impl Fn(&ShopifyDelivery, ReceiptBuilder) -> Option<ReceiptBuilder>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.shopify_receipt = Some(Arc::new(hook));
        self
    }

    /// Where signals go; pass it to [`TrackExt::track`](crate::TrackExt::track).
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Sends (or queues) the receipt of `event`, adjusted by `hook`; a
    /// failure is logged.
    async fn receipt<E: ReceiptSource + EventTarget>(
        &self,
        event: &E,
        hook: Option<&ReceiptHook<E>>,
    ) {
        let builder = self.reporter.client().receipt_for(event);
        let Some(builder) = (match hook {
            Some(hook) => hook(event, builder),
            None => Some(builder),
        }) else {
            return;
        };
        let outcome = match &self.reporter {
            Reporter::Direct(_) => builder.send().await.map(|_| ()).map_err(|e| e.to_string()),
            Reporter::Background(background) => {
                builder.enqueue(background).map_err(|e| e.to_string())
            }
        };
        if let Err(err) = outcome {
            let key = event.event_key();
            tracing::warn!(
                provider = %key.provider,
                event_id = %key.event_id,
                %err,
                "sendpromptly: receipt not recorded; the handler runs anyway"
            );
        }
    }
}

/// Why an extractor refused a request. Answers `400` with the reason for a
/// request that fails verification, `500` when the app configured no secret
/// (logged), or the body rejection's own answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookRejection {
    /// The body could not be read.
    #[error("could not read the request body: {0}")]
    Body(#[from] ::axum::extract::rejection::BytesRejection),
    /// The Stripe signature did not verify (or the payload is not an event).
    #[error("Stripe webhook rejected: {0}")]
    Stripe(#[from] stripe::StripeError),
    /// The Shopify HMAC or headers did not verify.
    #[error("Shopify webhook rejected: {0}")]
    Shopify(#[from] shopify::ShopifyError),
    /// The repair callback did not verify.
    #[error("repair callback rejected: {0}")]
    Repair(#[from] sendpromptly_core::callback::RepairCallbackError),
    /// No secret configured for this kind of request.
    #[error("no {0} secret configured: add one with Webhooks::{0}_secret")]
    NoSecret(&'static str),
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        match self {
            WebhookRejection::Body(rejection) => rejection.into_response(),
            WebhookRejection::NoSecret(_) => {
                tracing::error!(error = %self, "sendpromptly: webhook route misconfigured");
                (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
            }
            other => {
                tracing::warn!(error = %other, "sendpromptly: request rejected");
                (StatusCode::BAD_REQUEST, other.to_string()).into_response()
            }
        }
    }
}

async fn read<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<(HeaderMap, Bytes), WebhookRejection> {
    let headers = request.headers().clone();
    let body = Bytes::from_request(request, state).await?;
    Ok((headers, body))
}

/// A verified Stripe event whose receipt was sent (see the module docs).
#[derive(Clone, Debug)]
pub struct StripeWebhook(pub StripeEvent);

impl<S> FromRequest<S> for StripeWebhook
where
    Webhooks: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let webhooks = Webhooks::from_ref(state);
        let (headers, body) = read(request, state).await?;
        let signature = headers
            .get(stripe::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let now = crate::now();
        let mut last = WebhookRejection::NoSecret("stripe");
        let mut verified = None;
        for secret in &webhooks.stripe_secrets {
            match stripe::construct_event(&body, signature, secret, now) {
                Ok(event) => {
                    verified = Some(event);
                    break;
                }
                Err(err) => last = err.into(),
            }
        }
        let event = verified.ok_or(last)?;
        webhooks
            .receipt(&event, webhooks.stripe_receipt.as_ref())
            .await;
        Ok(StripeWebhook(event))
    }
}

/// A verified Shopify delivery whose receipt was sent (see the module docs).
#[derive(Clone, Debug)]
pub struct ShopifyWebhook(pub ShopifyDelivery);

impl<S> FromRequest<S> for ShopifyWebhook
where
    Webhooks: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let webhooks = Webhooks::from_ref(state);
        if webhooks.shopify_secrets.is_empty() {
            return Err(WebhookRejection::NoSecret("shopify"));
        }
        let (headers, body) = read(request, state).await?;
        let delivery = shopify::verify(&body, &headers, &webhooks.shopify_secrets)?;
        webhooks
            .receipt(&delivery, webhooks.shopify_receipt.as_ref())
            .await;
        Ok(ShopifyWebhook(delivery))
    }
}

/// A verified repair callback: SendPromptly asks the app to process
/// `callback.event` again. Process it (idempotently), then call
/// [`RepairRequest::finish`] with the outcome.
#[derive(Clone, Debug)]
pub struct RepairRequest {
    /// The callback: `event` (provider, id, type, subject, the receipt's
    /// metadata), `reprocess_id`, `incident_id`, `attempt`.
    pub callback: RepairCallback,
    /// The callback's W3C `traceparent` header: it continues the trace of
    /// the failing signal, so make it the parent of the repair handler's
    /// span (with OpenTelemetry, extract it with a `TraceContextPropagator`).
    pub traceparent: Option<String>,
    /// The callback's `tracestate` header.
    pub tracestate: Option<String>,
}

impl RepairRequest {
    /// Reports `outcome` linked to this repair (`reprocess_id`) and returns
    /// the answer for SendPromptly: `200` when the result was recorded (or
    /// queued), `503` when it was not, so the callback is delivered again.
    pub async fn finish<T, E: Display>(
        &self,
        webhooks: &Webhooks,
        outcome: &Result<T, E>,
    ) -> StatusCode {
        match webhooks.reporter.report(&self.callback, outcome).await {
            Ok(()) => StatusCode::OK,
            Err(err) => {
                tracing::warn!(
                    reprocess_id = %self.callback.reprocess_id,
                    %err,
                    "sendpromptly: repair result not recorded; answering 503 so it is retried"
                );
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl<S> FromRequest<S> for RepairRequest
where
    Webhooks: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let webhooks = Webhooks::from_ref(state);
        if webhooks.repair_secrets.is_empty() {
            return Err(WebhookRejection::NoSecret("repair"));
        }
        let (headers, body) = read(request, state).await?;
        let callback = crate::verify_repair_request(&body, &headers, &webhooks.repair_secrets)?;
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        // Kept only when valid W3C (as a receiver must).
        let traceparent = header("traceparent")
            .filter(|v| sendpromptly_core::trace::TraceParent::parse(v).is_ok());
        let tracestate = traceparent.as_ref().and(header("tracestate"));
        Ok(RepairRequest {
            callback,
            traceparent,
            tracestate,
        })
    }
}

/// Middleware doing what [`StripeWebhook`] does, as a layer: verifies the
/// signature (`400` otherwise), sends the receipt, and passes the request on
/// with its body intact and the verified [`StripeEvent`] in its extensions.
///
/// ```
/// use axum::{Extension, Router, middleware, routing::post};
/// use sendpromptly_client::axum::{Webhooks, stripe_middleware};
/// use sendpromptly_client::stripe::StripeEvent;
///
/// async fn handler(Extension(event): Extension<StripeEvent>) -> String {
///     event.id
/// }
/// # fn build(webhooks: Webhooks) -> Router {
/// Router::new()
///     .route("/webhooks/stripe", post(handler))
///     .route_layer(middleware::from_fn_with_state(webhooks, stripe_middleware))
/// # }
/// ```
pub async fn stripe_middleware(
    State(webhooks): State<Webhooks>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers.clone();
    let bytes = match Bytes::from_request(Request::new(body), &()).await {
        Ok(bytes) => bytes,
        Err(rejection) => return WebhookRejection::from(rejection).into_response(),
    };
    let mut copy = Request::new(::axum::body::Body::from(bytes.clone()));
    *copy.headers_mut() = headers;
    let event = match StripeWebhook::from_request(copy, &webhooks).await {
        Ok(StripeWebhook(event)) => event,
        Err(rejection) => return rejection.into_response(),
    };
    let mut request = Request::from_parts(parts, ::axum::body::Body::from(bytes));
    request.extensions_mut().insert(event);
    next.run(request).await
}
