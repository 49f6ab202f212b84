//! Background mode: the handler enqueues signals and returns at once; a
//! task delivers them with retries, and shutdown drains the queue.
//!
//! ```sh
//! SENDPROMPTLY_API_KEY=sp_live_… SENDPROMPTLY_URL=http://127.0.0.1:7700 \
//!     cargo run -p sendpromptly-client --example background_mode
//! ```

use std::sync::Arc;
use std::time::Duration;

use sendpromptly_client::{Background, BackgroundConfig, Client, Provider};

/// What a webhook handler does: never waits for SendPromptly.
fn handle_job(sp: &Client, background: &Background, job_id: &str) {
    if let Err(err) = sp
        .receipt(Provider::Custom, job_id, "export.requested")
        .enqueue(background)
    {
        eprintln!("not queued: {err}"); // also logged, counted and passed to on_drop
    }
    let outcome: Result<(), String> = Ok(()); // ... do the work ...
    let result = match outcome {
        Ok(()) => sp.success(Provider::Custom, job_id),
        Err(reason) => sp.failure(Provider::Custom, job_id, reason),
    };
    let _ = result.enqueue(background);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sp = Client::from_env()?;
    let background = sp.background(BackgroundConfig {
        on_drop: Some(Arc::new(|dropped| {
            // Keep it quick: e.g. bump a metric or write to a dead-letter log.
            eprintln!(
                "SendPromptly dropped {} (key {}): {}",
                dropped.signal.describe(),
                dropped.idempotency_key,
                dropped.reason.describe()
            );
        })),
        ..BackgroundConfig::from_env()?
    })?;

    for i in 0..10 {
        handle_job(&sp, &background, &format!("job-{i}"));
    }

    let stats = background.shutdown(Duration::from_secs(10)).await;
    println!(
        "delivered {}, dropped {}, still pending {}",
        stats.delivered,
        stats.dropped(),
        stats.pending
    );
    Ok(())
}
