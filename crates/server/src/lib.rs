//! The server: the listener (HTTP/1.1 over TCP or rustls), request routing to the wire
//! codecs, SigV4 authentication, dispatch to the services, and graceful shutdown. It wires
//! the layers together and holds no service rules of its own.

pub mod audit;
pub mod auth;
pub mod config;
pub mod conn;
pub mod dispatch;
pub mod federation;
#[cfg(test)]
mod golden_iam_tests;
pub mod handler;
pub mod jobs;
pub mod metrics;
pub mod peer;
pub mod setup;
pub mod tls;
pub mod writes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{Config, ConfigError, Overrides, StoreLocation};
pub use setup::{Deployment, Migrated, NewKey, StartupReport, admin_new_key, migrate_to_postgres};

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

/// Takes the data directory, binds the listener and loads TLS — all before anything is created
/// in the store, so that a busy port or a bad certificate leaves a first start undone — then
/// opens the store, runs first-start set-up, writes the administrator profile and serves.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let partition = config
        .regions
        .first()
        .map_or("aws", |r| tresor_policy::arn::partition_of_region(r));
    tresor_policy::arn::set_partition(partition).map_err(|set| {
        ServerError::Setup(format!(
            "this process already serves partition {set}, not {partition}"
        ))
    })?;
    let dir = setup::prepare(&config)?;
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
    let mut deployment = setup::open(dir, &config)?;
    deployment.write_profile(local_addr, tls.is_some())?;
    setup::install_lambda(&deployment, &config, local_addr, tls.is_some())?;
    federation::install(&deployment.services, &config.federation)?;
    let report = deployment.report(local_addr, tls.is_some());
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
        max_connections: config.max_connections,
    };
    let metrics = Arc::new(metrics::Metrics::new(deployment.store_files()));
    metrics.register(Box::new(metrics::replication));
    metrics.register(Box::new(metrics::store_counters));
    let log_store = deployment.open_audit_log()?;
    let auditor = audit::Auditor::start(
        deployment.services.clone(),
        log_store,
        Some(&deployment.data_dir),
        &config.audit,
        metrics,
    )
    .map_err(ServerError::Setup)?;
    let state = Arc::new(
        handler::State::new(deployment, &config, tls.is_some(), auditor.clone())
            .map_err(|e| ServerError::Setup(format!("cannot start the writer threads: {e}")))?,
    );
    let (tx, rx) = watch::channel(false);
    let retention = tokio::spawn(auditor.retention(config.audit.retention_days, rx.clone()));
    let worker = tokio::spawn(jobs::worker(
        state.services().clone(),
        jobs::JOB_INTERVAL,
        rx.clone(),
    ));
    tresor_secretsmanager::schedule::set_hour_seconds(config.rotation_hour_seconds);
    let rotations = jobs::spawn_rotation_worker(
        state.services().clone(),
        tresor_secretsmanager::rotation_run::DEFAULT_CONCURRENCY,
    )
    .map_err(|e| ServerError::Setup(format!("cannot start the rotation worker: {e}")))?;
    state
        .services()
        .set_extension(Arc::new(config.replication.topology(&config.regions)));
    let replications = jobs::spawn_replication_worker(state.services().clone())
        .map_err(|e| ServerError::Setup(format!("cannot start the replication worker: {e}")))?;
    // The accept loop and /health run on a thread of their own (see `conn`, the health lane);
    // requests run on this runtime's workers.
    let workers = tokio::runtime::Handle::current();
    let listener = listener
        .into_std()
        .map_err(|e| ServerError::Setup(e.to_string()))?;
    let lane = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::Setup(format!("cannot start the accept thread: {e}")))?;
    let (served, lane_done) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("tresor-accept".into())
        .spawn(move || {
            lane.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, tls, state, limits, rx, workers).await,
                    Err(e) => tracing::error!(error = %e, "cannot listen on the accept thread"),
                }
            });
            let _ = served.send(());
        })
        .map_err(|e| ServerError::Setup(format!("cannot start the accept thread: {e}")))?;
    let task = tokio::spawn(async move {
        let _ = lane_done.await;
        rotations.stop();
        replications.stop();
        let _ = worker.await;
        let _ = retention.await;
    });
    Ok(Running {
        local_addr,
        report,
        shutdown: tx,
        task,
    })
}

#[derive(Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
}

/// How often a recurring accept or connection-limit warning may be logged.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Back-off after an accept error caused by exhausted resources (file descriptors).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where a connection comes from, and — when it is served on the health lane — the runtime
/// its other requests run on.
struct Peer {
    remote: SocketAddr,
    tls: bool,
    workers: Option<tokio::runtime::Handle>,
}

/// Serves one connection: `Guarded` applies the timeouts, the service marks where each
/// request is handled.
async fn serve_connection<S>(
    stream: S,
    state: Arc<handler::State>,
    peer: Peer,
    limits: Limits,
    watcher: hyper_util::server::graceful::Watcher,
    mut pressure: watch::Receiver<u64>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Peer {
        remote,
        tls,
        workers,
    } = peer;
    let activity = conn::Activity::new();
    let svc_activity = activity.clone();
    let io = conn::Guarded::new(
        stream,
        activity.clone(),
        limits.header_read_timeout,
        limits.idle_timeout,
    );
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let activity = svc_activity.clone();
        let workers = workers.clone();
        async move {
            activity.enter_service();
            let response = match workers {
                // On the health lane: anything but /health runs on the workers.
                Some(workers) if !conn::is_health(req.method(), req.uri().path()) => workers
                    .spawn(handler::serve_request(state, req, remote, tls))
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!(error = %e, "a request's task failed");
                        let mut resp = hyper::Response::new(Default::default());
                        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                        Ok(resp)
                    }),
                _ => handler::serve_request(state, req, remote, tls).await,
            };
            activity.leave_service();
            response
        }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(io), svc);
    let served = watcher.watch(conn);
    tokio::pin!(served);
    let mut pressure_open = true;
    loop {
        tokio::select! {
            result = &mut served => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %remote, "connection ended with an error");
                }
                return;
            }
            changed = pressure.changed(), if pressure_open => {
                if changed.is_err() {
                    pressure_open = false;
                } else if activity.is_idle() {
                    // The server is at its connection cap and a new client waits: an idle
                    // keep-alive (or silent new) connection makes room. Dropping it closes
                    // the socket; no request is in flight on it.
                    tracing::debug!(%remote, "idle connection closed to make room");
                    return;
                }
            }
        }
    }
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<handler::State>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    workers: tokio::runtime::Handle,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut accept_log = conn::RateLimitedLog::new(WARN_EVERY);
    let mut full_log = conn::RateLimitedLog::new(WARN_EVERY);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    // Bumped when the server is at its cap and a new client waits: idle connections close.
    let (pressure, _) = watch::channel(0u64);
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(x) => {
                backoff = ACCEPT_BACKOFF_MIN;
                x
            }
            Err(e) => {
                let exhausted = conn::is_resource_exhaustion(&e);
                if let Some(held_back) = accept_log.allow() {
                    tracing::warn!(error = %e, held_back, "accept failed");
                }
                if exhausted {
                    // Retrying at once would fail again: wait for descriptors to free up.
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
                continue;
            }
        };
        // Back-pressure: at the cap, idle keep-alive connections are asked to make room (as
        // nginx reuses idle keep-alive connections), and accepting pauses until a slot frees;
        // a client that cannot get one within the header-read timeout is closed.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(held_back) = full_log.allow() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        held_back,
                        "at the connection limit; idle connections are closed to make room"
                    );
                }
                pressure.send_modify(|n| *n = n.wrapping_add(1));
                let waited = tokio::select! {
                    _ = stop.changed() => break,
                    p = tokio::time::timeout(
                        limits.header_read_timeout,
                        slots.clone().acquire_owned(),
                    ) => p,
                };
                match waited {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::debug!(%remote, "no connection slot freed in time; closed");
                        continue;
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let watcher = graceful.watcher();
        let pressure = pressure.subscribe();
        match &tls {
            None => {
                let workers = workers.clone();
                tokio::spawn(async move {
                    if conn::first_request_is_health(&stream).await {
                        let peer = Peer {
                            remote,
                            tls: false,
                            workers: Some(workers),
                        };
                        serve_connection(stream, state, peer, limits, watcher, pressure).await;
                        drop(permit);
                        return;
                    }
                    let stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(error = %e, %remote, "cannot hand a connection over");
                            return;
                        }
                    };
                    workers.spawn(async move {
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => {
                                let peer = Peer {
                                    remote,
                                    tls: false,
                                    workers: None,
                                };
                                serve_connection(stream, state, peer, limits, watcher, pressure)
                                    .await;
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, %remote, "cannot hand a connection over");
                            }
                        }
                        drop(permit);
                    });
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, %remote, "cannot hand a connection over");
                        continue;
                    }
                };
                workers.spawn(async move {
                    let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                        return;
                    };
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %remote, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let peer = Peer {
                        remote,
                        tls: true,
                        workers: None,
                    };
                    serve_connection(stream, state, peer, limits, watcher, pressure).await;
                    drop(permit);
                });
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
