//! The Rust SDK against a real server (in-process, SQLite, port 0), with a
//! fault-injecting proxy in between where the test needs one.

mod background;
mod forward;
mod happy;
mod integrations;
mod providers;
mod retries;

use std::time::Duration;

use sendpromptly_client::{Client, ClientOptions, Provider, RetryConfig, TimelineKind};
use sendpromptly_e2e::FaultProxy;
use sendpromptly_server::testing::TestServer;

/// A client for `url` with `api_key` and `retry`.
pub fn client(url: &str, api_key: &str, retry: RetryConfig) -> Client {
    Client::with_options(ClientOptions {
        api_key: Some(api_key.to_owned()),
        base_url: Some(url.to_owned()),
        retry,
        ..ClientOptions::default()
    })
    .expect("a valid client")
}

/// Quick retries with a generous budget, for tests that count attempts.
pub fn quick_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        jitter: 0.5,
        total_budget: Duration::from_secs(20),
        attempt_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

/// A server, a proxy in front of it, and a client going through the proxy.
pub async fn through_proxy(retry: RetryConfig) -> (TestServer, FaultProxy, Client) {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(&server.url()).await;
    let sp = client(&proxy.url(), &server.project.api_key, retry);
    (server, proxy, sp)
}

/// A client straight to the server.
pub fn direct(server: &TestServer) -> Client {
    client(&server.url(), &server.project.api_key, quick_retry())
}

/// How many timeline entries of `kind` the event has (read straight from the server).
pub async fn count_entries(
    server: &TestServer,
    provider: Provider,
    event_id: &str,
    kind: TimelineKind,
) -> usize {
    direct(server)
        .get_event(provider, event_id)
        .await
        .expect("the event exists")
        .timeline
        .iter()
        .filter(|entry| entry.kind == kind)
        .count()
}
