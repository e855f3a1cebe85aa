//! The server: the listener (HTTP/1.1 over TCP or rustls), request routing to the wire
//! codecs, SigV4 authentication, dispatch to the services, and graceful shutdown. It wires
//! the layers together and holds no service rules of its own.

pub mod auth;
pub mod config;
pub mod handler;
pub mod jobs;
pub mod setup;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{Config, ConfigError, Overrides};
pub use setup::{Deployment, StartupReport};

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("start-up: {0}")]
    Setup(String),
}

/// A running server: its bound address and a handle to stop it.
pub struct Running {
    pub local_addr: SocketAddr,
    pub report: StartupReport,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after `trigger_shutdown`, or never).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Opens the store, runs first-start set-up, binds the listener and starts serving.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let mut deployment = setup::open(&config)?;
    let tls = match &config.tls {
        Some(files) => Some(tls::acceptor(files)?),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    deployment.write_profile(local_addr, tls.is_some())?;
    let report = deployment.report(local_addr, tls.is_some());
    let state = Arc::new(handler::State::new(deployment, &config, tls.is_some()));
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(jobs::worker(
        state.services().clone(),
        jobs::JOB_INTERVAL,
        rx.clone(),
    ));
    let task = tokio::spawn(async move {
        serve(listener, tls, state, rx).await;
        let _ = worker.await;
    });
    Ok(Running {
        local_addr,
        report,
        shutdown: tx,
        task,
    })
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<handler::State>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                match &tls {
                    None => {
                        let svc = hyper::service::service_fn(move |req| handler::serve_request(state.clone(), req, remote, false));
                        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                        let fut = graceful.watch(conn);
                        tokio::spawn(async move {
                            if let Err(e) = fut.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, %remote, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let svc = hyper::service::service_fn(move |req| handler::serve_request(state.clone(), req, remote, true));
                            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests did not finish within {:?}",
            SHUTDOWN_GRACE
        );
    }
    state.close();
    tracing::info!("store closed; bye");
}
