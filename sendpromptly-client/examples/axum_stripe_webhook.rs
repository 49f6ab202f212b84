//! An axum app instrumented with SendPromptly: a Stripe webhook handler that
//! sends a receipt and a result, and the repair endpoint that SendPromptly
//! calls to have an event processed again.
//!
//! ```sh
//! SENDPROMPTLY_API_KEY=sp_live_… SENDPROMPTLY_URL=http://127.0.0.1:7700 \
//! STRIPE_WEBHOOK_SECRET=whsec_… SENDPROMPTLY_SIGNING_SECRET=whsec_… \
//!     cargo run -p sendpromptly-client --example axum_stripe_webhook
//! ```
//!
//! `PORT` picks the port (default 3000; `0` for any free one). It is run end
//! to end by `scripts/test-examples.sh`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use sendpromptly_client::stripe::{self, StripeEvent};
use sendpromptly_client::{Client, verify_repair_request};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct App {
    sp: Client,
    stripe_secret: String,
    repair_secrets: Vec<String>,
    credits: Arc<Mutex<Credits>>,
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
fn fulfil(app: &App, event_id: &str, customer: Option<&str>, credits: u64) -> Result<(), String> {
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

/// What a Stripe event is worth: 25 credits per dollar paid.
fn credits_of(event: &StripeEvent) -> u64 {
    let amount = event
        .object
        .get("amount_paid")
        .or_else(|| event.object.get("amount_total"));
    amount.and_then(|v| v.as_u64()).unwrap_or(0) / 100 * 25
}

/// `POST /webhooks/stripe`
async fn stripe_webhook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get(stripe::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let event = match stripe::construct_event(
        &body,
        signature,
        &app.stripe_secret,
        sendpromptly_client::now(),
    ) {
        Ok(event) => event,
        Err(err) => {
            eprintln!("rejected Stripe webhook: {err}");
            return StatusCode::BAD_REQUEST;
        }
    };
    if !matches!(
        event.event_type.as_str(),
        "invoice.paid" | "checkout.session.completed"
    ) {
        return StatusCode::OK; // not an event this app acts on
    }
    // (Store the event in your inbox table here: that commit is the durable acceptance.)
    // 1. Receipt, with what the repair will need. Bounded by the retry budget
    //    (3 s by default); a failure to report never fails the handler.
    let credits = credits_of(&event);
    let receipt = app
        .sp
        .receipt_for(&event)
        .effect("credits.add")
        .metadata_value("credits", credits);
    if let Err(err) = receipt.await {
        eprintln!("SendPromptly receipt not recorded: {err}");
    }
    // 2. The business effect, then the result.
    let customer = event.object.get("customer").and_then(|v| v.as_str());
    let outcome = fulfil(&app, &event.id, customer, credits);
    let report = match &outcome {
        Ok(()) => app.sp.success_for(&event).await,
        Err(reason) => app.sp.failure_for(&event, reason.as_str()).await,
    };
    if let Err(err) = report {
        eprintln!("SendPromptly result not recorded: {err}");
    }
    // Stripe retries on non-2xx; a failed effect is now an incident that
    // can be reprocessed, so acknowledge either way.
    StatusCode::OK
}

/// `POST /sendpromptly/repair`: SendPromptly asks to process an event again.
async fn repair(State(app): State<App>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let callback = match verify_repair_request(&body, &headers, &app.repair_secrets) {
        Ok(callback) => callback,
        Err(err) => {
            eprintln!("rejected repair callback ({:?}): {err}", err.category());
            return StatusCode::BAD_REQUEST;
        }
    };
    let event = &callback.event;
    println!(
        "reprocessing {}/{} ({})",
        event.provider, event.event_id, callback.reprocess_id
    );
    // The same idempotent fulfilment, from what the receipt recorded. The
    // result links to the repair through the callback.
    let credits = event
        .metadata
        .as_ref()
        .and_then(|m| m.get("credits"))
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let report = match fulfil(&app, &event.event_id, event.subject.as_deref(), credits) {
        Ok(()) => app.sp.success_for(&callback).await,
        Err(reason) => app.sp.failure_for(&callback, reason.as_str()).await,
    };
    match report {
        Ok(_) => StatusCode::OK,
        // Not recorded: a non-2xx makes SendPromptly deliver the callback again.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = App {
        sp: Client::from_env()?,
        stripe_secret: std::env::var("STRIPE_WEBHOOK_SECRET")?,
        repair_secrets: vec![std::env::var("SENDPROMPTLY_SIGNING_SECRET")?],
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
