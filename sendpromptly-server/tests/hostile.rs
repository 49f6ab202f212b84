//! Hostile clients at the socket level: slow headers (slowloris), slow
//! bodies, idle connections, huge and numerous headers. None may hold a
//! connection forever or get a 5xx. (Malformed JSON, deep JSON, invalid
//! UTF-8 and oversized bodies: `tests/api_e2e.rs::bad_input_gets_clear_errors_never_5xx`.)

use std::time::{Duration, Instant};

use sendpromptly_server::config::ServerConfig;
use sendpromptly_server::testing::{TestServer, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: the server's limits below are 1 s and 2 s.
const CLOSED_WITHIN: Duration = Duration::from_secs(20);

async fn server() -> TestServer {
    TestServer::start_with(ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        ..test_config()
    })
    .await
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        match tokio::time::timeout(CLOSED_WITHIN, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slowloris_headers_are_cut_off() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.running.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header byte every 200 ms, never finishing the head.
    let mut closed = false;
    for _ in 0..100 {
        if stream.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0_u8; 1024];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickled header held the connection for 20 s");
    assert!(started.elapsed() < CLOSED_WITHIN);
    // The server still serves others.
    let r = reqwest::get(format!("{}/healthz", server.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.running.addr).await.unwrap();
    let sent = read_until_closed(&mut stream).await;
    assert!(sent.is_empty() || sent.contains("408"), "{sent}");
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.running.addr).await.unwrap();
    let head = format!(
        "POST /v1/receipt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"provider\":",
        server.project.api_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a stalled body: {answer}"
    );
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn huge_and_numerous_headers_are_refused_without_a_5xx() {
    let server = server().await;
    let http = reqwest::Client::new();
    let huge = "a".repeat(512 * 1024);
    let r = http
        .get(format!("{}/v1/incidents", server.url()))
        .header("x-huge", &huge)
        .send()
        .await;
    // hyper answers 431 or closes the connection; either way no 5xx.
    if let Ok(r) = r {
        assert!(
            r.status().is_client_error(),
            "512 KiB header: {}",
            r.status()
        );
    }
    let mut many = http.get(format!("{}/v1/incidents", server.url()));
    for i in 0..500 {
        many = many.header(format!("x-h{i}"), "v");
    }
    if let Ok(r) = many.send().await {
        assert!(r.status().is_client_error(), "500 headers: {}", r.status());
    }
    let r = http
        .get(format!("{}/v1/incidents", server.url()))
        .bearer_auth(&server.project.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the server is still healthy");
}
