//! `sendpromptly listen`: a development repair endpoint that verifies each
//! repair callback with the project's signing secret and prints it, so the
//! whole workflow can be tried with curl alone.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use sendpromptly_core::callback::verify_repair_request;
use sendpromptly_core::standard_webhooks::SigningSecret;

use crate::clock::{Clock, SystemClock};

/// Flags of `sendpromptly listen`.
#[derive(Clone, Debug, Args)]
pub struct ListenArgs {
    /// Address to listen on; the repair URL is http://ADDR/repair.
    #[arg(long, default_value = "127.0.0.1:7701")]
    pub listen: SocketAddr,
    /// The project's signing secret (`whsec_…`).
    #[arg(long, env = "SENDPROMPTLY_SIGNING_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The status to answer verified callbacks with (e.g. 503 to watch retries).
    #[arg(long, default_value_t = 200)]
    pub status: u16,
}

/// Why `listen` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The secret is not a `whsec_` secret.
    #[error("--secret: {0}")]
    Secret(String),
    /// The status is not an HTTP status.
    #[error("--status {0} is not an HTTP status code")]
    Status(u16),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

struct Listener {
    secret: SigningSecret,
    status: StatusCode,
}

/// Runs until Ctrl-C.
pub async fn run(args: &ListenArgs) -> Result<(), ListenError> {
    let secret =
        SigningSecret::parse(&args.secret).map_err(|e| ListenError::Secret(e.to_string()))?;
    let status = StatusCode::from_u16(args.status).map_err(|_| ListenError::Status(args.status))?;
    let state = Arc::new(Listener { secret, status });
    let app = axum::Router::new()
        .route("/repair", axum::routing::post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| ListenError::Bind(args.listen, e))?;
    println!(
        "listening for repair callbacks on http://{}/repair (Ctrl-C to stop)",
        args.listen
    );
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}

async fn receive(
    State(state): State<Arc<Listener>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let verified = verify_repair_request(
        &body,
        &headers,
        std::slice::from_ref(&state.secret),
        SystemClock.now(),
    );
    match verified {
        Ok(callback) => {
            println!(
                "verified repair callback {} (attempt {}) for incident {}: {} {} {} subject={}",
                callback.reprocess_id,
                callback.attempt,
                callback.incident_id,
                callback.event.provider,
                callback.event.event_type,
                callback.event.event_id,
                callback.event.subject.as_deref().unwrap_or("-"),
            );
            println!(
                "  report the repair with: reprocess_id={}",
                callback.reprocess_id
            );
            (
                state.status,
                format!("{{\"received\":\"{}\"}}", callback.reprocess_id),
            )
        }
        Err(err) => {
            println!("REJECTED a request: {err}");
            (StatusCode::BAD_REQUEST, format!("{{\"error\":\"{err}\"}}"))
        }
    }
}
