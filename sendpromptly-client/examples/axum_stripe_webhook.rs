//! An axum app instrumented with SendPromptly's integrations: the
//! `StripeWebhook` extractor verifies the event and sends the receipt,
//! `.track()` reports the result of the future that adds the credits, and
//! `RepairRequest` is the repair endpoint SendPromptly calls to have an event
//! processed again. (Underneath: `receipt_for`, `success_for` /
//! `failure_for`, `verify_repair_request`; see docs/rust.md.)
//!
//! ```sh
//! SENDPROMPTLY_API_KEY=sp_live_… SENDPROMPTLY_URL=http://127.0.0.1:7700 \
//! STRIPE_WEBHOOK_SECRET=whsec_… SENDPROMPTLY_SIGNING_SECRET=whsec_… \
//!     cargo run -p sendpromptly-client --features axum --example axum_stripe_webhook
//! ```
//!
//! `PORT` picks the port (default 3000; `0` for any free one). It is run end
//! to end by `scripts/test-examples.sh`.

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use sendpromptly_client::axum::{RepairRequest, StripeWebhook, Webhooks};
use sendpromptly_client::stripe::StripeEvent;
use sendpromptly_client::{Client, TrackExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct App {
    /// SendPromptly: where signals go and the secrets the extractors verify with.
    webhooks: Webhooks,
    credits: Arc<Mutex<Credits>>,
}

impl FromRef<App> for Webhooks {
    fn from_ref(app: &App) -> Webhooks {
        app.webhooks.clone()
    }
}

/// The business effect: credit balances per Stripe customer. A real app keeps
/// this in its database, in one transaction with the set of applied event ids.
#[derive(Default)]
struct Credits {
    balances: HashMap<String, u64>,
    applied: HashSet<String>,
}

/// Adds the credits once per event id; the webhook handler and the repair
/// endpoint both call it, so a retry or a repair never credits twice.
async fn fulfil(
    app: &App,
    event_id: &str,
    customer: Option<&str>,
    credits: u64,
) -> Result<(), String> {
    let customer = customer.ok_or_else(|| format!("event {event_id} has no customer"))?;
    let mut store = app
        .credits
        .lock()
        .map_err(|_| "credits store poisoned".to_string())?;
    if store.applied.insert(event_id.to_string()) {
        *store.balances.entry(customer.to_string()).or_default() += credits;
    }
    Ok(())
}

/// The event types this app acts on.
fn acts_on(event: &StripeEvent) -> bool {
    matches!(
        event.event_type.as_str(),
        "invoice.paid" | "checkout.session.completed"
    )
}

/// What a Stripe event is worth: 25 credits per dollar paid.
fn credits_of(event: &StripeEvent) -> u64 {
    let amount = event
        .object
        .get("amount_paid")
        .or_else(|| event.object.get("amount_total"));
    amount.and_then(|v| v.as_u64()).unwrap_or(0) / 100 * 25
}

/// `POST /webhooks/stripe`. `StripeWebhook` has verified the signature (a
/// bad one is answered 400 before this runs) and sent the receipt.
async fn stripe_webhook(State(app): State<App>, StripeWebhook(event): StripeWebhook) -> StatusCode {
    if !acts_on(&event) {
        return StatusCode::OK; // not an event this app acts on
    }
    // The business effect; `track` reports success or failure from how it
    // ends, within the client's time budget, and never changes its outcome.
    let customer = event.object.get("customer").and_then(|v| v.as_str());
    let outcome = fulfil(&app, &event.id, customer, credits_of(&event))
        .track(app.webhooks.reporter(), &event)
        .await;
    if let Err(reason) = outcome {
        eprintln!("credits not added for {}: {reason}", event.id);
    }
    // Stripe retries on non-2xx; a failed effect is now an incident that
    // can be reprocessed, so acknowledge either way.
    StatusCode::OK
}

/// `POST /sendpromptly/repair`: SendPromptly asks to process an event again.
/// `RepairRequest` has verified the callback (a forged one is answered 400).
async fn repair(State(app): State<App>, request: RepairRequest) -> StatusCode {
    let event = &request.callback.event;
    println!(
        "reprocessing {}/{} ({})",
        event.provider, event.event_id, request.callback.reprocess_id
    );
    // The same idempotent fulfilment, from what the receipt recorded.
    let credits = event
        .metadata
        .as_ref()
        .and_then(|m| m.get("credits"))
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let outcome = fulfil(&app, &event.event_id, event.subject.as_deref(), credits).await;
    // Reports the result linked to the repair; 503 if it was not recorded,
    // so SendPromptly delivers the callback again.
    request.finish(&app.webhooks, &outcome).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SENDPROMPTLY_DEV=1 instead of the API key and URL logs each signal
    // instead of sending it (refused where SENDPROMPTLY_ENV=production).
    let sp = Client::from_env()?;
    let webhooks = Webhooks::new(&sp)
        .stripe_secret(std::env::var("STRIPE_WEBHOOK_SECRET")?)
        .repair_secret(std::env::var("SENDPROMPTLY_SIGNING_SECRET")?)
        // The receipt is filled from the event; add what the repair needs,
        // and send none for events the app ignores.
        .stripe_receipt(|event, receipt| {
            acts_on(event).then(|| {
                receipt
                    .effect("credits.add")
                    .metadata_value("credits", credits_of(event))
            })
        });
    let app = App {
        webhooks,
        credits: Arc::default(),
    };
    let router = Router::new()
        .route("/webhooks/stripe", post(stripe_webhook))
        .route("/sendpromptly/repair", post(repair))
        .with_state(app);
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
