//! An operations script: list open incidents, reprocess the failed ones,
//! and share a proof link for the rest.
//!
//! ```sh
//! SENDPROMPTLY_API_KEY=sp_live_… SENDPROMPTLY_URL=http://127.0.0.1:7700 \
//!     cargo run -p sendpromptly-client --example ops_incidents -- --reprocess
//! ```

use std::time::Duration;

use sendpromptly_client::{Client, IncidentFilter, IncidentKind, IncidentState, RetryConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A script can afford to wait longer than a webhook handler.
    let sp = Client::from_env()?.with_retry(RetryConfig {
        total_budget: Duration::from_secs(30),
        max_attempts: 6,
        ..RetryConfig::default()
    });
    let reprocess = std::env::args().any(|a| a == "--reprocess");

    let mut filter = IncidentFilter {
        state: Some(IncidentState::Open),
        limit: Some(100),
        ..IncidentFilter::default()
    };
    loop {
        let page = sp.list_incidents(&filter).await?;
        for incident in &page.data {
            let event = &incident.event;
            println!(
                "{} {:?} {}/{} subject={}",
                incident.id,
                incident.kind,
                event.provider,
                event.event_id,
                event.subject.as_deref().unwrap_or("-")
            );
            if reprocess && incident.kind == IncidentKind::FailedResult {
                match sp
                    .reprocess(&incident.id, Some("bulk reprocess from ops script"))
                    .await
                {
                    Ok(requested) => println!("  reprocess requested: {}", requested.reprocess_id),
                    Err(err) if err.status() == Some(409) => println!("  skipped: {err}"),
                    Err(err) => return Err(err.into()),
                }
            } else {
                let link = sp
                    .create_proof_link(&incident.id, Some(Duration::from_secs(24 * 3600)))
                    .await?;
                println!("  proof link (24 h): {}", link.url);
            }
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    Ok(())
}
