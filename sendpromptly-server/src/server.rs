//! Starting and stopping a server: bind, serve the router, run the sweeper,
//! dispatcher and alert sender, shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower_service::Service;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::store::Store;
use crate::{
    alerts, dispatcher, health, pacer, reconcile, retention, rollup_fold, slo_burn, sweeper,
};

/// A server that is running.
pub struct RunningServer {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Its shared state (tests use it to reach the store or run a sweep).
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    /// Turns to a reason when the watchdog finds the server cannot work
    /// (see [`crate::health`]).
    fatal: watch::Receiver<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why a running server stopped itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(String);

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    /// The Stripe reconciler could not be set up.
    #[error("cannot set up the Stripe reconciler: {0}")]
    Reconciler(#[from] crate::reconcile::stripe_api::StripeApiError),
}

/// Binds `config.listen` and starts serving with background tasks.
pub async fn start(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: ServerConfig,
) -> Result<RunningServer, StartError> {
    if let Some(endpoint) = &config.otlp_endpoint {
        match crate::otlp::start(endpoint, &config.listen.to_string()) {
            Ok(()) => {
                tracing::info!(endpoint = %crate::otlp::traces_url(endpoint), "exporting spans over OTLP/HTTP")
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not start the OTLP exporter; spans are not exported")
            }
        }
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let state = AppState::new(store, clock, config, public_url);
    let http = dispatcher::http_client(&state)?;
    let (shutdown, watcher) = watch::channel(false);

    let app = crate::router::router(state.clone());
    let serve = tokio::spawn(serve_http(
        listener,
        app,
        state.config().header_read_timeout,
        state.config().shutdown_grace,
        watcher.clone(),
    ));
    let sweeper = supervise("sweeper", &watcher, {
        let (state, watcher) = (state.clone(), watcher.clone());
        move || sweeper::run(state.clone(), watcher.clone())
    });
    let pacer = supervise("pacer", &watcher, {
        let (state, watcher) = (state.clone(), watcher.clone());
        move || pacer::run(state.clone(), watcher.clone())
    });
    let retention = supervise("retention", &watcher, {
        let (state, watcher) = (state.clone(), watcher.clone());
        move || retention::run(state.clone(), watcher.clone())
    });
    let key_usage = supervise("key-usage", &watcher, {
        let (state, watcher) = (state.clone(), watcher.clone());
        move || crate::auth::usage::run(state.clone(), watcher.clone())
    });
    let slo_burn = supervise("slo_burn", &watcher, {
        let (state, watcher) = (state.clone(), watcher.clone());
        move || slo_burn::run(state.clone(), watcher.clone())
    });
    let rollups = supervise("rollups", &watcher, {
        let (state, watcher) = (state.clone(), watcher.clone());
        move || rollup_fold::run(state.clone(), watcher.clone())
    });
    let alerts = supervise("alerts", &watcher, {
        let (state, http, watcher) = (state.clone(), http.clone(), watcher.clone());
        move || alerts::run(state.clone(), http.clone(), watcher.clone())
    });
    let (fatal_sender, fatal) = watch::channel(None);
    let watchdog = tokio::spawn(health::run(
        state.clone(),
        health::Watchdog {
            fatal: fatal_sender,
        },
        watcher.clone(),
    ));
    let reconciler = Arc::new(reconcile::Reconciler::from_config(
        state.config(),
        Arc::new(reconcile::ServiceSink(state.clone())),
        Arc::new(reconcile::StoredKeys(state.clone())),
    )?);
    let reconciler = supervise("reconciler", &watcher, {
        let (state, watcher) = (state.clone(), watcher.clone());
        move || reconcile::run(state.clone(), reconciler.clone(), watcher.clone())
    });
    let dispatcher = supervise("dispatcher", &watcher, {
        let (state, watcher) = (state.clone(), watcher.clone());
        move || dispatcher::run(state.clone(), http.clone(), watcher.clone())
    });
    tracing::info!(%addr, "listening");
    Ok(RunningServer {
        addr,
        state,
        shutdown,
        fatal,
        tasks: vec![
            serve, sweeper, pacer, retention, dispatcher, alerts, watchdog, reconciler, key_usage,
            slo_burn, rollups,
        ],
    })
}

/// How long a background loop that panicked waits before it starts again.
const RESTART_PAUSE: Duration = Duration::from_millis(200);

/// Runs the background loop `start` makes, and starts it again if it
/// panics (a bug or an injected fault in one pass must not stop deadlines,
/// callbacks or alerts until the next restart); its state is in the
/// database, so a new loop picks up where the old one stopped.
fn supervise<F, Fut>(
    name: &'static str,
    shutdown: &watch::Receiver<bool>,
    start: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            match tokio::spawn(start()).await {
                Err(err) if err.is_panic() && !*shutdown.borrow() => {
                    tracing::error!(task = name, "a background loop panicked; starting it again");
                    tokio::time::sleep(RESTART_PAUSE).await;
                }
                _ => return,
            }
        }
    })
}

/// The HTTP/1.1 accept loop. Unlike `axum::serve` it gives hyper a timer, so
/// a client must send a request's headers within `header_read_timeout`
/// (slowloris) and an idle keep-alive connection is closed after it.
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    header_read_timeout: Duration,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = app.clone();
        // Connection info gives the console's sign-in throttle the client address.
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            let mut router = router.clone();
            async move { router.call(request.map(axum::body::Body::new)).await }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(graceful.watch(connection));
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

impl RunningServer {
    /// The base URL, e.g. `http://127.0.0.1:7700`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests and callbacks
    /// finish (up to the grace period), and returns. Pending work stays in
    /// the database.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // One grace period for all of them, not one each.
        let until = tokio::time::Instant::now() + self.state.config().shutdown_grace;
        for task in self.tasks {
            let _ = tokio::time::timeout_at(until, task).await;
        }
    }

    /// Waits for SIGTERM or Ctrl-C, then shuts down; or, when the
    /// watchdog finds the server cannot work (a writer stuck past
    /// `exit_after_writer_stall`), shuts down and returns why.
    pub async fn run_until_signal(self) -> Result<(), Fatal> {
        let mut fatal = self.fatal.clone();
        let reason = tokio::select! {
            () = wait_for_signal() => None,
            found = fatal.wait_for(Option::is_some) => found.ok().and_then(|r| r.clone()),
        };
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await;
        tracing::info!("stopped");
        match reason {
            Some(why) => Err(Fatal(why)),
            None => Ok(()),
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
