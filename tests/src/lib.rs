//! Helpers shared by the cross-crate end-to-end tests.
//!
//! [`FaultProxy`]: a small HTTP/1.1 proxy on a loopback port that sits
//! between the SDK and a real server and, request by request, forwards,
//! answers an injected status, closes the connection (before or after
//! forwarding), or hangs. It can also go down (refusing connections) and come
//! back on the same port. Real sockets throughout: the client is not mocked.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// What the proxy does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward it to the server and relay the answer.
    Forward,
    /// Answer this status without forwarding (with a JSON error body and an
    /// optional `Retry-After` in seconds).
    Respond {
        /// The status.
        status: u16,
        /// `Retry-After` seconds, if any.
        retry_after: Option<u64>,
    },
    /// Read the request and close the connection without forwarding it.
    Close,
    /// Forward it (the server records it), then close the connection
    /// without relaying the answer: the answer is lost.
    ForwardThenClose,
    /// Read the request and never answer.
    Hang,
}

impl Fault {
    /// `Respond` with `status` and no `Retry-After`.
    pub fn status(status: u16) -> Fault {
        Fault::Respond {
            status,
            retry_after: None,
        }
    }
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// What the proxy did with it.
    pub fault: Fault,
}

struct State {
    upstream: Mutex<String>,
    script: Mutex<VecDeque<Fault>>,
    default: Mutex<Fault>,
    seen: Mutex<Vec<SeenRequest>>,
    connections: Mutex<Vec<AbortHandle>>,
    http: reqwest::Client,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fault-injecting HTTP proxy in front of a real server.
pub struct FaultProxy {
    /// Where it listens (kept across [`FaultProxy::go_down`] /
    /// [`FaultProxy::come_back`]).
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: Mutex<Option<AbortHandle>>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream`
    /// (e.g. `http://127.0.0.1:1234`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream: Mutex::new(upstream.trim_end_matches('/').to_owned()),
            script: Mutex::default(),
            default: Mutex::new(Fault::Forward),
            seen: Mutex::default(),
            connections: Mutex::default(),
            http: reqwest::Client::new(),
        });
        let proxy = FaultProxy {
            addr,
            state,
            accept: Mutex::new(None),
        };
        proxy.listen(listener);
        proxy
    }

    fn listen(&self, listener: TcpListener) {
        let state = Arc::clone(&self.state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let connection = tokio::spawn(serve(stream, Arc::clone(&state)));
                lock(&state.connections).push(connection.abort_handle());
            }
        });
        *lock(&self.accept) = Some(task.abort_handle());
    }

    /// The base URL to give the client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where requests are forwarded (e.g. after a server restart).
    pub fn set_upstream(&self, upstream: &str) {
        *lock(&self.state.upstream) = upstream.trim_end_matches('/').to_owned();
    }

    /// The next requests' faults, in order; then the default.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.script).extend(faults);
    }

    /// What to do once the script is used up (initially `Forward`).
    pub fn set_default(&self, fault: Fault) {
        *lock(&self.state.default) = fault;
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        lock(&self.state.seen).clone()
    }

    /// How many requests were seen so far.
    pub fn count(&self) -> usize {
        lock(&self.state.seen).len()
    }

    /// Stops listening and drops every open connection: connections are
    /// refused until [`FaultProxy::come_back`].
    pub fn go_down(&self) {
        if let Some(accept) = lock(&self.accept).take() {
            accept.abort();
        }
        for connection in lock(&self.state.connections).drain(..) {
            connection.abort();
        }
    }

    /// Listens again on the same address.
    pub async fn come_back(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(err) => {
                    tries += 1;
                    assert!(tries < 100, "could not rebind {}: {err}", self.addr);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        };
        self.listen(listener);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.go_down();
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await.ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const HOP_BY_HOP: [&str; 5] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

async fn forward(state: &State, request: &Request) -> Answer {
    let upstream = lock(&state.upstream).clone();
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or_default();
    let mut outgoing = state
        .http
        .request(method, format!("{upstream}{}", request.path))
        .body(request.body.clone());
    for (name, value) in &request.headers {
        if !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            outgoing = outgoing.header(name, value);
        }
    }
    match outgoing.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        value.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let body = response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            Answer {
                status,
                headers,
                body,
            }
        }
        Err(err) => injected(
            502,
            None,
            &format!("the proxy could not reach the server: {err}"),
        ),
    }
}

fn injected(status: u16, retry_after: Option<u64>, message: &str) -> Answer {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(seconds) = retry_after {
        headers.push(("retry-after".to_owned(), seconds.to_string()));
    }
    let body = format!(
        "{{\"error\":{{\"type\":\"injected\",\"message\":{}}}}}",
        serde_json::Value::from(message)
    );
    Answer {
        status,
        headers,
        body: body.into_bytes(),
    }
}

async fn write_answer(stream: &mut TcpStream, answer: &Answer) -> std::io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", answer.status);
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", answer.body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&answer.body).await?;
    stream.flush().await
}

async fn serve(stream: TcpStream, state: Arc<State>) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader).await {
        let fault = lock(&state.script)
            .pop_front()
            .unwrap_or_else(|| lock(&state.default).clone());
        let idempotency_key = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"))
            .map(|(_, value)| value.clone());
        lock(&state.seen).push(SeenRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            idempotency_key,
            fault: fault.clone(),
        });
        let answer = match fault {
            Fault::Forward => forward(&state, &request).await,
            Fault::Respond {
                status,
                retry_after,
            } => injected(status, retry_after, "injected by the fault proxy"),
            Fault::Close => return,
            Fault::ForwardThenClose => {
                let _ = forward(&state, &request).await;
                return;
            }
            Fault::Hang => std::future::pending().await,
        };
        if write_answer(reader.get_mut(), &answer).await.is_err() {
            return;
        }
    }
}
