//! An axum app instrumented with SendPromptly: a Stripe webhook handler that
//! sends a receipt and a result, and the repair endpoint that SendPromptly
//! calls to have an event processed again.
//!
//! ```sh
//! SENDPROMPTLY_API_KEY=sp_live_… SENDPROMPTLY_URL=http://127.0.0.1:7700 \
//! STRIPE_WEBHOOK_SECRET=whsec_… SENDPROMPTLY_SIGNING_SECRET=whsec_… \
//!     cargo run -p sendpromptly-client --example axum_stripe_webhook
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use sendpromptly_client::stripe::{self, StripeEvent};
use sendpromptly_client::{Client, EventTarget, verify_repair_request};

#[derive(Clone)]
struct App {
    sp: Client,
    stripe_secret: String,
    repair_secrets: Vec<String>,
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
    // 1. Receipt: the event is durably accepted. Bounded by the retry
    //    budget (3 s by default); a failure to report never fails the handler.
    if let Err(err) = app.sp.receipt_for(&event).effect("credits.add").await {
        eprintln!("SendPromptly receipt not recorded: {err}");
    }
    // 2. The business effect, then the result.
    let outcome = apply(&event).await;
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
    let key = callback.event_key();
    println!(
        "reprocessing {}/{} ({})",
        key.provider, key.event_id, callback.reprocess_id
    );
    // Look the event up in your own store by (provider, event_id) and apply
    // the effect again (idempotently). The result links to the repair:
    match app.sp.success_for(&callback).await {
        Ok(_) => StatusCode::OK,
        // Not recorded: a non-2xx makes SendPromptly deliver the callback again.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn apply(event: &StripeEvent) -> Result<(), String> {
    match event.event_type.as_str() {
        "invoice.paid" | "checkout.session.completed" => Ok(()),
        other => Err(format!("no handler for {other}")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = App {
        sp: Client::from_env()?,
        stripe_secret: std::env::var("STRIPE_WEBHOOK_SECRET")?,
        repair_secrets: vec![std::env::var("SENDPROMPTLY_SIGNING_SECRET")?],
    };
    let router = Router::new()
        .route("/webhooks/stripe", post(stripe_webhook))
        .route("/sendpromptly/repair", post(repair))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
