//! The reconciler's requests checked against Stripe's published OpenAPI
//! description, by stripe-mock (Stripe's mock server, which validates every
//! request's parameters against that description and answers 400 to
//! unknown or ill-typed ones).
//!
//! Needs the stripe-mock binary: `STRIPE_MOCK_BIN`, else
//! `~/.cache/sendpromptly/bin/stripe-mock` (`scripts/lib/stripe-mock.sh`
//! installs it; `scripts/test-stripe-mock.sh` installs it and runs this
//! file). Without it the test prints `SKIPPED …` unless
//! `SENDPROMPTLY_REQUIRE_STRIPE_MOCK=1`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sendpromptly_server::reconcile::stripe_api::{EventsClient, EventsQuery, MAX_PAGE_LIMIT};
use sendpromptly_server::reconcile::{
    ExpectedSink, SinkError, SinkOutcome, backfill, default_tracked_types,
};

/// A sink that keeps nothing (only the requests are checked here).
struct Nowhere;

#[async_trait::async_trait]
impl ExpectedSink for Nowhere {
    async fn record(
        &self,
        _project_id: &str,
        _reference: &sendpromptly_core::provider_event::EventReference,
    ) -> Result<SinkOutcome, SinkError> {
        Ok(SinkOutcome::Recorded)
    }
}

/// stripe-mock accepts any well-formed test-mode key.
const KEY: &str = "rk_test_stripemockcheck";

struct StripeMock {
    child: Child,
    url: String,
}

impl Drop for StripeMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("STRIPE_MOCK_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/sendpromptly/bin/stripe-mock"))
        })
        .filter(|p| p.is_file());
    if path.is_none() {
        assert!(
            std::env::var("SENDPROMPTLY_REQUIRE_STRIPE_MOCK").as_deref() != Ok("1"),
            "SENDPROMPTLY_REQUIRE_STRIPE_MOCK=1 but no stripe-mock binary was found \
             (set STRIPE_MOCK_BIN or run scripts/lib/stripe-mock.sh)"
        );
        eprintln!(
            "SKIPPED: no stripe-mock binary (run scripts/test-stripe-mock.sh, or set STRIPE_MOCK_BIN)"
        );
    }
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start(binary: &PathBuf) -> StripeMock {
    let (http, https) = (free_port(), free_port());
    let child = Command::new(binary)
        .args([
            "-http-port",
            &http.to_string(),
            "-https-port",
            &https.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stripe-mock");
    let mock = StripeMock {
        child,
        url: format!("http://127.0.0.1:{http}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", http))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "stripe-mock did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mock
}

async fn raw_status(mock: &StripeMock, query: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/events?{query}", mock.url))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("stripe-mock answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_reconciler_requests_match_stripes_openapi_description() {
    let Some(binary) = binary() else {
        return;
    };
    let mock = start(&binary).await;

    // The check is real: stripe-mock refuses what the description does not allow.
    assert_eq!(raw_status(&mock, "types%5B%5D=invoice.paid").await, 200);
    assert_eq!(raw_status(&mock, "not_a_parameter=1").await, 400);
    assert_eq!(raw_status(&mock, "created%5Bgte%5D=yesterday").await, 400);

    let client = EventsClient::new(&mock.url, Duration::from_secs(10)).unwrap();
    let query = EventsQuery {
        types: default_tracked_types(),
        created_gte: 1_700_000_000,
        created_lte: Some(1_700_086_400),
        limit: MAX_PAGE_LIMIT,
    };
    // The first page, and a following page (`starting_after`).
    for after in [None, Some("evt_1NG8Du2eZvKYlo2CUI79vXWy")] {
        let page = client
            .list_events(KEY, &query, after)
            .await
            .unwrap_or_else(|e| panic!("stripe-mock refused the request ({after:?}): {e}"));
        // Its fixture event parses with the core's parser.
        assert!(!page.events.is_empty());
        assert!(page.events.iter().all(|e| e.id.starts_with("evt_")));
    }
    // The open-ended window (the CLI's backfill, the first pass) too.
    let items = backfill(
        &client,
        KEY,
        &default_tracked_types(),
        1_700_000_000,
        1_700_086_400,
        "prj_check",
        &Nowhere,
        |_, _| {},
    )
    .await
    .expect("a backfill against stripe-mock");
    assert!(!items.is_empty());
}
