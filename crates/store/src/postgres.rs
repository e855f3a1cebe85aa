//! [`PostgresStore`]: the scale-out backend. Several tresor processes share one PostgreSQL
//! database; each keeps a small connection pool.
//!
//! Schema (version 2, applied at open under an advisory lock, so nodes starting together do
//! not race; a database with a newer version is refused; an older one is upgraded):
//!
//! ```sql
//! CREATE TABLE tresor_schema (id int PRIMARY KEY, version int NOT NULL);
//! CREATE TABLE tresor_kv   (k bytea PRIMARY KEY, v bytea NOT NULL);
//! CREATE TABLE tresor_meta (id int PRIMARY KEY, generation bigint NOT NULL,   -- one row
//!                           marked_generation bigint NOT NULL);              -- (version 2)
//! ```
//!
//! A version 1 node does not move `marked_generation`: upgrade every node of a cluster
//! together (stop them all, start the new version), not one at a time.
//!
//! Keys are stored as their UTF-8 bytes in `bytea` (which compares with `memcmp`, so the
//! order is the bytewise order of the [`crate::Store`] contract, and NUL is allowed).
//!
//! **Transactions.** A read transaction is `REPEATABLE READ, READ ONLY` (one snapshot), begun
//! with the read of the generation row in one round trip. [`Store::begin_read_lazy`] sends
//! nothing: its tag is the generation this process knows of (see below), and the snapshot is
//! begun at its first read, pipelined with that read (one round trip); a read served entirely
//! from caches therefore costs no transaction (and no `COMMIT`). A write transaction takes one cluster-wide transaction-scoped advisory lock
//! first (`pg_advisory_xact_lock`, waiting at most the busy timeout, then
//! [`StoreError::Busy`]): write transactions run one at a time across every node, exactly
//! as on SQLite, so they are serializable by construction and never fail with a
//! serialization error that the services (which do not re-run transactions) would have to
//! retry. Reads in a write transaction see the latest commit (`READ COMMITTED` with no
//! concurrent writer). The price is that write throughput is that of one writer (one commit
//! round trip plus PostgreSQL's WAL flush per write).
//!
//! **Generations.** Every write transaction that changed something bumps the generation row
//! in its own transaction (a transaction marked with [`WriteTxn::mark`] bumps
//! `marked_generation` too) and sends `NOTIFY tresor_commit, '<generation>,<marked>'`. A read
//! snapshot reads that row, so [`ReadTxn::snapshot_generation`] names exactly the committed
//! data it sees (the decoded-record caches of every node are therefore exact). The store's
//! [`Store::shared_generation`] and [`Store::shared_marked_generation`] counters are the
//! highest values this process knows of: its own commits (before `commit()` returns), every
//! `NOTIFY` (a listener connection per process), [`Store::sync_generations`] (one plain
//! `SELECT` of the row, outside any transaction: tresor does it once at the start of every
//! authenticated request, so that the request sees every change acknowledged before it
//! arrived, whichever node made it), a poll of the row every [`POLL_INTERVAL`] (the fallback
//! when notifications are lost, e.g. while the listener reconnects) and every read snapshot.
//!
//! A lazy read's tag is the generation counter at [`Store::begin_read_lazy`], a committed
//! generation: a cache entry tagged with it was read from a snapshot of exactly that state.
//! When the snapshot is begun (at the first read) it reads the generation row too; if the row
//! moved in between, the tag becomes the snapshot's own when it was never handed out, and
//! `None` when it was (data newer than a tag already used must not be cached under it).
//!
//! **Threads.** The [`Store`] trait is synchronous and tresor calls it inline on tokio
//! worker threads. The connections (tokio-postgres) are driven by a small runtime of this
//! module's own (`tresor-pg` threads); a caller only waits, parked, for the reply future
//! (tokio-postgres's client side is plain channels, executor independent). Nothing calls a
//! runtime's `block_on` on the caller's thread, so this works from any thread, inside a
//! runtime or not.

use std::future::Future;
use std::pin::pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Socket, Statement};

use crate::memory::duration_ms;
use crate::range::{LowerBound, lower_bound, prefix_successor};
use crate::{ReadTxn, Store, StoreError, WriteTxn};

/// The schema version this build reads and writes.
const SCHEMA_VERSION: i32 = 2;

/// Advisory lock keys (arbitrary constants, "tresor" in ASCII-ish digits).
const WRITER_LOCK: i64 = 0x7472_6573_6f72_0001;
const MIGRATION_LOCK: i64 = 0x7472_6573_6f72_0002;

/// The notification channel of committed generations.
const CHANNEL: &str = "tresor_commit";

/// How often each process reads the generation row besides listening (the fallback that
/// bounds how late a lost notification can be noticed).
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Migration `i` takes a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE tresor_kv (k bytea PRIMARY KEY, v bytea NOT NULL);
    CREATE TABLE tresor_meta (id int PRIMARY KEY, generation bigint NOT NULL);
    INSERT INTO tresor_meta (id, generation) VALUES (1, 0);
",
    // Starts at 0; every process of this version reads it at start, after the migration.
    "
    ALTER TABLE tresor_meta ADD COLUMN marked_generation bigint NOT NULL DEFAULT 0;
",
];

const SELECT_VALUE: &str = "SELECT v FROM tresor_kv WHERE k = $1";
const SCAN_FROM: &str = "SELECT k, v FROM tresor_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3";
const SCAN_AFTER: &str = "SELECT k, v FROM tresor_kv WHERE k > $1 AND k < $2 ORDER BY k LIMIT $3";
const SCAN_REV: &str =
    "SELECT k, v FROM tresor_kv WHERE k >= $1 AND k < $2 ORDER BY k DESC LIMIT $3";
const UPSERT_MANY: &str = "INSERT INTO tresor_kv (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v";
const DELETE_MANY: &str = "DELETE FROM tresor_kv WHERE k = ANY($1::bytea[])";
const SELECT_GENERATION: &str =
    "SELECT generation, marked_generation FROM tresor_meta WHERE id = 1";
const BUMP_GENERATION: &str = "WITH g AS (UPDATE tresor_meta SET generation = generation + 1 \
     WHERE id = 1 RETURNING generation, marked_generation) \
     SELECT generation, marked_generation, \
     pg_notify('tresor_commit', generation::text || ',' || marked_generation::text)::text FROM g";
const BUMP_MARKED: &str = "WITH g AS (UPDATE tresor_meta SET generation = generation + 1, \
     marked_generation = marked_generation + 1 \
     WHERE id = 1 RETURNING generation, marked_generation) \
     SELECT generation, marked_generation, \
     pg_notify('tresor_commit', generation::text || ',' || marked_generation::text)::text FROM g";

/// Above every key: `0xFF` never occurs in UTF-8.
const TOP: &[u8] = &[0xFF];

/// Tuning of a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections per process (readers and the writer share them).
    pub pool_size: usize,
    /// How long a write transaction waits for the cluster-wide writer lock, and a caller for
    /// a free pooled connection, before [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// How long one statement may take before the connection is given up (a database that
    /// stopped answering): the caller gets [`StoreError::Unavailable`].
    pub statement_timeout: Duration,
    /// Connecting (TCP, TLS and authentication) gives up after this long.
    pub connect_timeout: Duration,
    /// PEM file of certificate authorities trusted for the database's TLS certificate, in
    /// addition to the system's (`sslmode=require` in the URL turns TLS on).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            busy_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

/// The runtime driving every PostgreSQL connection of the process. Never dropped (a runtime
/// must not be dropped on a runtime thread, and stores may be dropped anywhere).
fn runtime() -> Result<&'static tokio::runtime::Runtime, StoreError> {
    // Built inside `get_or_init`, which runs one initializer at a time: a runtime built by a
    // losing racer would be dropped here, which panics on a runtime thread.
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("tresor-pg")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| StoreError::Unavailable {
            reason: format!("cannot start the PostgreSQL I/O threads: {e}"),
        })
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread, parking between polls, until it completes or `deadline`
/// passes (`None`). The futures polled here only wait on channels fed by the `tresor-pg`
/// runtime, so no runtime context is needed on this thread.
fn wait<F: Future>(fut: F, deadline: Instant) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// The database's error, without values: tokio-postgres's messages name the statement's
/// failure (and the server's message, detail and hint), never bound parameters.
fn pg(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| {
        if source.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return StoreError::Busy { timeout_ms: 0 };
        }
        StoreError::Postgres { context, source }
    }
}

struct Statements {
    get: Statement,
    scan_from: Statement,
    scan_after: Statement,
    scan_rev: Statement,
    generation: Statement,
    bump: Statement,
    bump_marked: Statement,
    put_many: Statement,
    delete_many: Statement,
}

/// A pooled connection with its prepared statements.
struct Conn {
    client: Client,
    stmts: Statements,
    /// The writer's own connection (outside the pool, so that readers that filled the pool
    /// while waiting for the writer can never starve it).
    writer: bool,
}

#[derive(Clone)]
enum Tls {
    None,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

struct Shared {
    config: Config,
    tls: Tls,
    options: PostgresOptions,
    description: String,
    idle: Mutex<Vec<Conn>>,
    freed: Condvar,
    /// Whether a write transaction of this process holds (or waits for) the cluster-wide
    /// writer lock: the others wait here, holding no pooled connection, so that writers
    /// queued behind the lock never take the readers' connections.
    writing: Mutex<bool>,
    writer_done: Condvar,
    /// The writer's connection between write transactions.
    writer_conn: Mutex<Option<Conn>>,
    /// Connections that exist (idle, lent out, or being returned).
    open: AtomicUsize,
    /// The highest committed generation this process knows of.
    generation: Arc<AtomicU64>,
    /// The highest committed marked generation this process knows of.
    marked: Arc<AtomicU64>,
    /// Whether the listener connection is up (LISTEN active).
    listening: AtomicBool,
    closed: AtomicBool,
    /// Exchanges with the database (a pipelined batch counts once) and transactions.
    round_trips: AtomicU64,
    transactions: AtomicU64,
}

/// The PostgreSQL backend. Cheap to share: clones are handles of one pool.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.shared.description)
            .finish_non_exhaustive()
    }
}

/// `postgres://user@host:port/db`, never the password or other parameters.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{}:{}/{}",
        config.get_user().unwrap_or(""),
        host,
        port,
        config.get_dbname().unwrap_or("")
    )
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// libpq's TLS parameters in a URL's query that tokio-postgres does not parse: `sslrootcert`
/// (a PEM file of certificate authorities, as for Amazon RDS, whose CA is not among the
/// system's roots) becomes [`PostgresOptions::ca_file`] unless one is set, and `sslmode`
/// `verify-ca` / `verify-full` become `require` (tresor always verifies the server's
/// certificate and name when TLS is on). See PostgreSQL's "Connection Strings" documentation.
fn libpq_tls_params(url: &str, options: &PostgresOptions) -> (String, PostgresOptions) {
    let mut options = options.clone();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), options);
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslrootcert", value)) => {
                let path = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                if options.ca_file.is_none() && !path.is_empty() {
                    options.ca_file = Some(std::path::PathBuf::from(path.into_owned()));
                }
            }
            Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, options)
}

fn parse_config(url: &str, options: &PostgresOptions) -> Result<Config, StoreError> {
    let mut config = Config::from_str(url).map_err(|e| StoreError::Unavailable {
        reason: format!("invalid PostgreSQL URL: {e}"),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("tresor");
    }
    // TLS only when asked for (`sslmode=require`), and then with the server's certificate
    // verified; `prefer` (tokio-postgres's default) would try an unverified handshake first.
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Prefer {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    Ok(config)
}

fn make_tls(config: &Config, options: &PostgresOptions) -> Result<Tls, StoreError> {
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        return Ok(Tls::None);
    }
    let unavailable = |reason: String| StoreError::Unavailable { reason };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &options.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| unavailable(format!("CA file {}: {e}", path.display())))?;
        for cert in rustls_pemfile_certs(&pem) {
            roots
                .add(cert)
                .map_err(|e| unavailable(format!("CA file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(
        tls,
    )))
}

/// The certificates of a PEM file (other blocks are ignored).
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// Connects and hands the connection to the runtime; `on_message` sees notifications.
async fn connect_with<T>(
    config: Config,
    tls: T,
    notify: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        loop {
            let msg = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match msg {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(tx) = &notify {
                        let _ = tx.send(n.payload().to_string());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    });
    Ok(client)
}

async fn connect(
    config: Config,
    tls: Tls,
    notify: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<Client, tokio_postgres::Error> {
    match tls {
        Tls::None => connect_with(config, NoTls, notify).await,
        Tls::Rustls(t) => connect_with(config, t, notify).await,
    }
}

impl PostgresStore {
    /// Connects to the database at `url`, applies the schema migrations and starts listening
    /// for other processes' commits.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, PostgresOptions::default())
    }

    pub fn open_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let (url, options) = libpq_tls_params(url, &options);
        let config = parse_config(&url, &options)?;
        let tls = make_tls(&config, &options)?;
        let store = PostgresStore {
            shared: Arc::new(Shared {
                description: describe(&config),
                config,
                tls,
                options,
                idle: Mutex::new(Vec::new()),
                freed: Condvar::new(),
                writing: Mutex::new(false),
                writer_done: Condvar::new(),
                writer_conn: Mutex::new(None),
                open: AtomicUsize::new(0),
                generation: Arc::new(AtomicU64::new(0)),
                marked: Arc::new(AtomicU64::new(0)),
                listening: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                round_trips: AtomicU64::new(0),
                transactions: AtomicU64::new(0),
            }),
        };
        store.migrate()?;
        store.sync_generations()?;
        spawn_listener(Arc::downgrade(&store.shared))?;
        Ok(store)
    }

    /// Waits for `fut` up to the statement timeout.
    fn run<F: Future>(&self, fut: F) -> Result<F::Output, StoreError> {
        self.shared.round_trips.fetch_add(1, Ordering::Relaxed);
        wait(fut, Instant::now() + self.shared.options.statement_timeout).ok_or_else(|| {
            StoreError::Unavailable {
                reason: format!(
                    "the database did not answer within {} ms",
                    duration_ms(self.shared.options.statement_timeout)
                ),
            }
        })
    }

    fn new_conn(&self) -> Result<Conn, StoreError> {
        let shared = &self.shared;
        let rt = runtime()?;
        let (config, tls) = (shared.config.clone(), shared.tls.clone());
        let task = rt.spawn(async move {
            let client = connect(config, tls, None).await?;
            let stmts = prepare(&client).await?;
            // Statements that stall (a lock held by a wedged session) end with an error
            // rather than holding a request forever; the writer lock has its own timeout.
            Ok::<_, tokio_postgres::Error>(Conn {
                client,
                stmts,
                writer: false,
            })
        });
        let deadline = Instant::now() + shared.options.connect_timeout + Duration::from_secs(1);
        match wait(task, deadline) {
            Some(Ok(Ok(conn))) => Ok(conn),
            Some(Ok(Err(e))) => Err(StoreError::Unavailable {
                reason: format!("cannot connect to {}: {e}", shared.description),
            }),
            Some(Err(e)) => Err(StoreError::Unavailable {
                reason: format!("connecting to {} failed: {e}", shared.description),
            }),
            None => Err(StoreError::Unavailable {
                reason: format!("connecting to {} timed out", shared.description),
            }),
        }
    }

    /// A connection from the pool, a new one while the pool is below its size, or the next
    /// one returned (up to the busy timeout).
    fn checkout(&self) -> Result<Conn, StoreError> {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.options.busy_timeout;
        let mut idle = shared.idle.lock();
        loop {
            if shared.closed.load(Ordering::SeqCst) {
                return Err(StoreError::Closed);
            }
            while let Some(conn) = idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(conn);
                }
                shared.open.fetch_sub(1, Ordering::SeqCst);
            }
            if shared.open.load(Ordering::SeqCst) < shared.options.pool_size.max(1) {
                shared.open.fetch_add(1, Ordering::SeqCst);
                drop(idle);
                return self.new_conn().inspect_err(|_| {
                    shared.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
            if shared.freed.wait_until(&mut idle, deadline).timed_out() {
                return Err(StoreError::Busy {
                    timeout_ms: duration_ms(shared.options.busy_timeout),
                });
            }
        }
    }

    fn checkin(&self, conn: Conn) {
        self.shared.checkin(conn);
    }

    /// Ends the connection's transaction off the caller's thread (`sql` is `ROLLBACK` or
    /// `COMMIT` of a read-only transaction) and returns the connection to the pool after.
    fn finish_async(&self, conn: Conn, sql: &'static str) {
        let shared = self.shared.clone();
        shared.round_trips.fetch_add(1, Ordering::Relaxed);
        let writer = conn.writer;
        match runtime() {
            Ok(rt) => {
                rt.spawn(async move {
                    if conn.client.batch_execute(sql).await.is_ok() {
                        shared.checkin(conn);
                    } else {
                        shared.discard_conn(writer);
                    }
                });
            }
            Err(_) => self.shared.discard_conn(writer),
        }
    }

    /// The writer's connection (made when there is none or it broke).
    fn writer_conn(&self) -> Result<Conn, StoreError> {
        if let Some(conn) = self.shared.writer_conn.lock().take()
            && !conn.client.is_closed()
        {
            return Ok(conn);
        }
        let mut conn = self.new_conn()?;
        conn.writer = true;
        Ok(conn)
    }

    /// Applies the migrations this build knows, under a session advisory lock so that nodes
    /// starting together apply them once.
    fn migrate(&self) -> Result<(), StoreError> {
        let shared = &self.shared;
        let (config, tls) = (shared.config.clone(), shared.tls.clone());
        let description = shared.description.clone();
        let task = runtime()?.spawn(async move {
            let client = connect(config, tls, None)
                .await
                .map_err(|e| StoreError::Unavailable {
                    reason: format!("cannot connect to {description}: {e}"),
                })?;
            let lock = format!("SELECT pg_advisory_lock({MIGRATION_LOCK})");
            client
                .batch_execute(&lock)
                .await
                .map_err(pg("taking the migration lock"))?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS tresor_schema \
                     (id int PRIMARY KEY, version int NOT NULL)",
                )
                .await
                .map_err(pg("creating the schema table"))?;
            let found: i32 = client
                .query_opt("SELECT version FROM tresor_schema WHERE id = 1", &[])
                .await
                .map_err(pg("reading the schema version"))?
                .map_or(0, |r| r.get(0));
            if found > SCHEMA_VERSION {
                return Err(StoreError::UnsupportedSchema {
                    found: found.to_string(),
                    expected: SCHEMA_VERSION.unsigned_abs(),
                });
            }
            for (i, sql) in MIGRATIONS
                .iter()
                .enumerate()
                .skip(found.unsigned_abs() as usize)
            {
                let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
                let script = format!(
                    "BEGIN; {sql}; INSERT INTO tresor_schema (id, version) VALUES (1, {version}) \
                     ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version; COMMIT;"
                );
                client
                    .batch_execute(&script)
                    .await
                    .map_err(pg("applying a schema migration"))?;
            }
            // The session lock ends with the connection.
            Ok(())
        });
        let deadline = Instant::now() + shared.options.connect_timeout + Duration::from_secs(60);
        match wait(task, deadline) {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(StoreError::Unavailable {
                reason: format!("schema migration task failed: {e}"),
            }),
            None => Err(StoreError::Unavailable {
                reason: "the schema migration did not finish within a minute".into(),
            }),
        }
    }

    /// Whether the database answers now (for a readiness probe): one round trip on a pooled
    /// connection, bounded by `timeout`.
    pub fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        let conn = self.checkout()?;
        match wait(
            conn.client.simple_query("SELECT 1"),
            Instant::now() + timeout,
        ) {
            Some(Ok(_)) => {
                self.checkin(conn);
                Ok(())
            }
            Some(Err(e)) => {
                self.shared.discard();
                Err(pg("checking the database")(e))
            }
            None => {
                self.shared.discard();
                Err(StoreError::Unavailable {
                    reason: "the database did not answer the health check".into(),
                })
            }
        }
    }

    /// Whether this process currently receives other processes' commit notifications.
    pub fn listening(&self) -> bool {
        self.shared.listening.load(Ordering::SeqCst)
    }

    /// The highest committed generation this process knows of.
    pub fn known_generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    /// The highest committed marked generation this process knows of.
    pub fn known_marked_generation(&self) -> u64 {
        self.shared.marked.load(Ordering::SeqCst)
    }

    /// Creates the database `name` through the administrative connection `admin_url` (tests
    /// and `tresor migrate`). `name` must be a plain identifier.
    pub fn create_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
        Self::admin(
            admin_url,
            &format!("CREATE DATABASE \"{}\"", identifier(name)?),
        )
    }

    /// Drops the database `name` (and ends its sessions).
    pub fn drop_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
        Self::admin(
            admin_url,
            &format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                identifier(name)?
            ),
        )
    }

    fn admin(admin_url: &str, sql: &str) -> Result<(), StoreError> {
        let (admin_url, options) = libpq_tls_params(admin_url, &PostgresOptions::default());
        let config = parse_config(&admin_url, &options)?;
        let tls = make_tls(&config, &options)?;
        let sql = sql.to_string();
        let task = runtime()?.spawn(async move {
            let client = connect(config, tls, None)
                .await
                .map_err(|e| StoreError::Unavailable {
                    reason: format!("cannot connect to the administrative database: {e}"),
                })?;
            client
                .batch_execute(&sql)
                .await
                .map_err(pg("administering databases"))
        });
        match wait(task, Instant::now() + Duration::from_secs(60)) {
            Some(Ok(r)) => r,
            _ => Err(StoreError::Unavailable {
                reason: "the administrative statement did not finish".into(),
            }),
        }
    }
}

fn identifier(name: &str) -> Result<&str, StoreError> {
    if !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(name)
    } else {
        Err(StoreError::Unavailable {
            reason: "a database name must be 1-63 ASCII letters, digits or underscores".into(),
        })
    }
}

impl Shared {
    fn checkin(&self, conn: Conn) {
        if conn.writer {
            if !conn.client.is_closed() && !self.closed.load(Ordering::SeqCst) {
                *self.writer_conn.lock() = Some(conn);
            }
            return;
        }
        if conn.client.is_closed() || self.closed.load(Ordering::SeqCst) {
            self.discard();
            return;
        }
        self.idle.lock().push(conn);
        self.freed.notify_one();
    }

    /// A lent connection was dropped; the writer's is not counted in the pool.
    fn discard_conn(&self, writer: bool) {
        if !writer {
            self.discard();
        }
    }

    /// A lent connection was dropped (broken, or in an unknown state).
    fn discard(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.freed.notify_one();
    }

    /// Notes a committed (generation, marked generation) pair; returns the generation.
    fn saw_generation(&self, generation: i64, marked: i64) -> u64 {
        let generation = u64::try_from(generation).unwrap_or(0);
        self.generation.fetch_max(generation, Ordering::SeqCst);
        self.marked
            .fetch_max(u64::try_from(marked).unwrap_or(0), Ordering::SeqCst);
        generation
    }

    /// Notes the generation row as a query returned it (generation, marked generation).
    fn saw_row(&self, row: &tokio_postgres::Row) -> u64 {
        self.saw_generation(row.get(0), row.get(1))
    }
}

async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
    // Prepared together: pipelined, one round trip.
    let (put_many, delete_many) =
        tokio::join!(client.prepare(UPSERT_MANY), client.prepare(DELETE_MANY));
    let (get, scan_from, scan_after, scan_rev, generation, bump, bump_marked) = tokio::join!(
        client.prepare(SELECT_VALUE),
        client.prepare(SCAN_FROM),
        client.prepare(SCAN_AFTER),
        client.prepare(SCAN_REV),
        client.prepare(SELECT_GENERATION),
        client.prepare(BUMP_GENERATION),
        client.prepare(BUMP_MARKED),
    );
    Ok(Statements {
        get: get?,
        scan_from: scan_from?,
        scan_after: scan_after?,
        scan_rev: scan_rev?,
        generation: generation?,
        bump: bump?,
        bump_marked: bump_marked?,
        put_many: put_many?,
        delete_many: delete_many?,
    })
}

/// The listener: `LISTEN tresor_commit` on a connection of its own, plus a poll of the
/// generation row every [`POLL_INTERVAL`]; reconnects after a failure. Ends when the store
/// is dropped or closed.
fn spawn_listener(shared: std::sync::Weak<Shared>) -> Result<(), StoreError> {
    runtime()?.spawn(async move {
        loop {
            let (config, tls) = match shared.upgrade() {
                Some(s) if !s.closed.load(Ordering::SeqCst) => (s.config.clone(), s.tls.clone()),
                _ => return,
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let client = match connect(config, tls, Some(tx)).await {
                Ok(c) => c,
                Err(e) => {
                    tracing_free_log(&format!("listener cannot connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let Some(s) = shared.upgrade() else { return };
                if s.closed.load(Ordering::SeqCst) {
                    return;
                }
                s.listening.store(true, Ordering::SeqCst);
                drop(s);
                tokio::select! {
                    payload = rx.recv() => match payload {
                        Some(p) => {
                            if let (Some((g, m)), Some(s)) = (parse_payload(&p), shared.upgrade()) {
                                s.saw_generation(g, m);
                            }
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        let polled = tokio::time::timeout(
                            Duration::from_secs(2),
                            client.query_one(SELECT_GENERATION, &[]),
                        ).await;
                        match (polled, shared.upgrade()) {
                            (Ok(Ok(row)), Some(s)) => {
                                s.saw_row(&row);
                            }
                            (_, None) => return,
                            _ => break,
                        }
                    }
                }
            }
            if let Some(s) = shared.upgrade() {
                s.listening.store(false, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Ok(())
}

/// A notification's `<generation>,<marked generation>`.
fn parse_payload(payload: &str) -> Option<(i64, i64)> {
    let (g, m) = payload.split_once(',')?;
    Some((g.parse().ok()?, m.parse().ok()?))
}

/// The store crate does not log (it has no tracing dependency); a lost listener shows as
/// [`PostgresStore::listening`] being false and is retried every 200 ms.
fn tracing_free_log(_message: &str) {}

impl Store for PostgresStore {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let conn = self.checkout()?;
        self.shared.transactions.fetch_add(1, Ordering::Relaxed);
        // The snapshot is taken here (by the generation read, pipelined with BEGIN: one
        // round trip), not at the first read.
        let client = &conn.client;
        let begun = self.run(async {
            tokio::join!(
                client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
                client.query_one(&conn.stmts.generation, &[]),
            )
        });
        let generation = match begun {
            Ok((Ok(()), Ok(row))) => self.shared.saw_row(&row),
            Ok((Err(e), _) | (_, Err(e))) => {
                if conn.client.is_closed() {
                    self.shared.discard();
                } else {
                    self.finish_async(conn, "ROLLBACK");
                }
                return Err(pg("beginning a read transaction")(e));
            }
            Err(e) => {
                self.shared.discard();
                return Err(e);
            }
        };
        Ok(Box::new(PgReadTxn {
            store: self,
            conn: std::cell::OnceCell::from(conn),
            generation: std::cell::Cell::new(Some(generation)),
            handed_out: std::cell::Cell::new(false),
            failed: std::cell::Cell::new(false),
        }))
    }

    fn begin_read_lazy(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        // Nothing is sent: the tag is the newest generation this process knows of (a
        // committed one), the snapshot is begun at the first read.
        Ok(Box::new(PgReadTxn {
            store: self,
            conn: std::cell::OnceCell::new(),
            generation: std::cell::Cell::new(Some(self.shared.generation.load(Ordering::SeqCst))),
            handed_out: std::cell::Cell::new(false),
            failed: std::cell::Cell::new(false),
        }))
    }

    fn sync_generations(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let conn = self.checkout()?;
        // A single statement outside any transaction: it sees every transaction committed
        // before it started.
        match self.run(conn.client.query_one(&conn.stmts.generation, &[])) {
            Ok(Ok(row)) => {
                self.shared.saw_row(&row);
                self.checkin(conn);
                Ok(())
            }
            Ok(Err(e)) => {
                if conn.client.is_closed() {
                    self.shared.discard();
                } else {
                    self.checkin(conn);
                }
                Err(pg("reading the generation")(e))
            }
            Err(e) => {
                self.shared.discard();
                Err(e)
            }
        }
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let gate = WriterGate::enter(&self.shared)?;
        let conn = self.writer_conn()?;
        let timeout_ms = duration_ms(self.shared.options.busy_timeout).max(1);
        let begin = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = {timeout_ms}; \
             SELECT pg_advisory_xact_lock({WRITER_LOCK}); SET LOCAL lock_timeout = 0"
        );
        let deadline = self.shared.options.statement_timeout + self.shared.options.busy_timeout;
        self.shared.round_trips.fetch_add(1, Ordering::Relaxed);
        self.shared.transactions.fetch_add(1, Ordering::Relaxed);
        match wait(conn.client.batch_execute(&begin), Instant::now() + deadline) {
            Some(Ok(())) => Ok(Box::new(PgWriteTxn {
                store: self,
                _gate: gate,
                pending: std::collections::BTreeMap::new(),
                conn: Some(conn),
                dirty: false,
                marked: false,
                failed: std::cell::Cell::new(false),
            })),
            Some(Err(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                self.finish_async(conn, "ROLLBACK");
                Err(StoreError::Busy { timeout_ms })
            }
            Some(Err(e)) => {
                if conn.client.is_closed() {
                    self.shared.discard_conn(true);
                } else {
                    self.finish_async(conn, "ROLLBACK");
                }
                Err(pg("beginning a write transaction")(e))
            }
            None => {
                self.shared.discard_conn(true);
                Err(StoreError::Unavailable {
                    reason: "the database did not answer BEGIN".into(),
                })
            }
        }
    }

    fn describe(&self) -> String {
        self.shared.description.clone()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.shared.closed.store(true, Ordering::SeqCst);
        let idle = std::mem::take(&mut *self.shared.idle.lock());
        for _ in &idle {
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
        }
        drop(idle);
        *self.shared.writer_conn.lock() = None;
        self.shared.freed.notify_all();
        Ok(())
    }

    fn shared_generation(&self) -> Option<Arc<AtomicU64>> {
        Some(self.shared.generation.clone())
    }

    fn shared_marked_generation(&self) -> Option<Arc<AtomicU64>> {
        Some(self.shared.marked.clone())
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "round_trips",
                self.shared.round_trips.load(Ordering::Relaxed),
            ),
            (
                "transactions",
                self.shared.transactions.load(Ordering::Relaxed),
            ),
        ]
    }

    /// Never blocks (it serves load-balancer probes): ready while the listener connection
    /// is up, which polls the database every [`POLL_INTERVAL`] and drops within seconds of
    /// the database going away.
    fn ready(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        if self.listening() {
            Ok(())
        } else {
            Err(StoreError::Unavailable {
                reason: "the database does not answer".into(),
            })
        }
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn rows(rows: Vec<tokio_postgres::Row>) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    rows.into_iter()
        .map(|row| {
            let k: Vec<u8> = row.get(0);
            let v: Vec<u8> = row.get(1);
            String::from_utf8(k)
                .map(|k| (k, v))
                .map_err(|_| StoreError::Unavailable {
                    reason: "a key in the database is not UTF-8".into(),
                })
        })
        .collect()
}

enum ScanKind {
    Forward,
    Reverse,
}

/// Which prepared statement a read runs.
#[derive(Clone, Copy)]
enum Which {
    Get,
    ScanFrom,
    ScanAfter,
    ScanRev,
}

impl Statements {
    fn pick(&self, which: Which) -> &Statement {
        match which {
            Which::Get => &self.get,
            Which::ScanFrom => &self.scan_from,
            Which::ScanAfter => &self.scan_after,
            Which::ScanRev => &self.scan_rev,
        }
    }
}

/// The statement and parameters (lower bound, upper bound) of a scan.
fn scan_params<'a>(
    kind: ScanKind,
    prefix: &'a str,
    bound: Option<&'a str>,
) -> (Which, &'a [u8], Vec<u8>) {
    let mut upper = prefix_successor(prefix).map_or_else(|| TOP.to_vec(), String::into_bytes);
    match kind {
        ScanKind::Forward => match lower_bound(prefix, bound) {
            LowerBound::Inclusive(p) => (Which::ScanFrom, p.as_bytes(), upper),
            LowerBound::Exclusive(a) => (Which::ScanAfter, a.as_bytes(), upper),
        },
        ScanKind::Reverse => {
            if let Some(before) = bound
                && before.as_bytes() < upper.as_slice()
            {
                upper = before.as_bytes().to_vec();
            }
            (Which::ScanRev, prefix.as_bytes(), upper)
        }
    }
}

/// A read transaction. [`Store::begin_read`] begins its snapshot at once; one of
/// [`Store::begin_read_lazy`] has no connection until its first read, which begins the
/// snapshot, reads the generation row and runs the read in one round trip (see the module
/// docs for the tag rules).
struct PgReadTxn<'a> {
    store: &'a PostgresStore,
    /// Set when the snapshot is begun.
    conn: std::cell::OnceCell<Conn>,
    /// See [`ReadTxn::snapshot_generation`].
    generation: std::cell::Cell<Option<u64>>,
    /// Whether `snapshot_generation` returned a tag before the snapshot was begun.
    handed_out: std::cell::Cell<bool>,
    /// A statement failed: the transaction is aborted (rolled back at the end).
    failed: std::cell::Cell<bool>,
}

impl PgReadTxn<'_> {
    fn query(
        &self,
        which: Which,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        if self.failed.get() {
            return Err(StoreError::TransactionLost);
        }
        let Some(conn) = self.conn.get() else {
            return self.begin_with(which, params);
        };
        match self
            .store
            .run(conn.client.query(conn.stmts.pick(which), params))
        {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                self.failed.set(true);
                Err(pg("reading")(e))
            }
            Err(e) => {
                self.failed.set(true);
                Err(e)
            }
        }
    }

    /// The first read of a lazy transaction: `BEGIN`, the generation row and the read,
    /// pipelined.
    fn begin_with(
        &self,
        which: Which,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let store = self.store;
        let conn = store.checkout()?;
        store.shared.transactions.fetch_add(1, Ordering::Relaxed);
        let client = &conn.client;
        let begun = store.run(async {
            tokio::join!(
                client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
                client.query_one(&conn.stmts.generation, &[]),
                client.query(conn.stmts.pick(which), params),
            )
        });
        match begun {
            Ok((Ok(()), Ok(row), Ok(rows))) => {
                let snapshot = store.shared.saw_row(&row);
                if self.generation.get() != Some(snapshot) {
                    // The row moved since the begin call: a tag already used for cached data
                    // must not name this newer data.
                    self.generation
                        .set((!self.handed_out.get()).then_some(snapshot));
                }
                let _ = self.conn.set(conn);
                Ok(rows)
            }
            Ok((Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e))) => {
                self.failed.set(true);
                if conn.client.is_closed() {
                    store.shared.discard();
                } else {
                    store.finish_async(conn, "ROLLBACK");
                }
                Err(pg("reading")(e))
            }
            Err(e) => {
                self.failed.set(true);
                store.shared.discard();
                Err(e)
            }
        }
    }
}

impl ReadTxn for PgReadTxn<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query(Which::Get, &[&key.as_bytes()])?;
        Ok(rows.into_iter().next().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit_n: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if limit_n == 0 {
            return Ok(Vec::new());
        }
        let (which, lower, upper) = scan_params(ScanKind::Forward, prefix, start_after);
        rows(self.query(which, &[&lower, &upper.as_slice(), &limit(limit_n)])?)
    }

    fn scan_rev(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit_n: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if limit_n == 0 {
            return Ok(Vec::new());
        }
        let (which, lower, upper) = scan_params(ScanKind::Reverse, prefix, before);
        rows(self.query(which, &[&lower, &upper.as_slice(), &limit(limit_n)])?)
    }

    fn snapshot_generation(&self) -> Option<u64> {
        if self.failed.get() {
            return None;
        }
        let generation = self.generation.get();
        if generation.is_some() && self.conn.get().is_none() {
            self.handed_out.set(true);
        }
        generation
    }
}

impl Drop for PgReadTxn<'_> {
    fn drop(&mut self) {
        // A lazy transaction that never read has nothing to end.
        if let Some(conn) = self.conn.take() {
            let end = if self.failed.get() {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            self.store.finish_async(conn, end);
        }
    }
}

/// This process's turn at the writer lock; the next local writer may go when it is dropped.
struct WriterGate<'a> {
    shared: &'a Shared,
}

impl<'a> WriterGate<'a> {
    fn enter(shared: &'a Shared) -> Result<WriterGate<'a>, StoreError> {
        let deadline = Instant::now() + shared.options.busy_timeout;
        let mut writing = shared.writing.lock();
        while *writing {
            if shared
                .writer_done
                .wait_until(&mut writing, deadline)
                .timed_out()
                && *writing
            {
                return Err(StoreError::Busy {
                    timeout_ms: duration_ms(shared.options.busy_timeout),
                });
            }
        }
        *writing = true;
        Ok(WriterGate { shared })
    }
}

impl Drop for WriterGate<'_> {
    fn drop(&mut self) {
        *self.shared.writing.lock() = false;
        self.shared.writer_done.notify_one();
    }
}

struct PgWriteTxn<'a> {
    store: &'a PostgresStore,
    /// Dropped after `conn` (fields drop in order): the next local writer goes once this
    /// one's connection has been handed back (its COMMIT or ROLLBACK sent).
    conn: Option<Conn>,
    _gate: WriterGate<'a>,
    /// This transaction's writes (`None`: deleted), sent with its `COMMIT` in one round trip;
    /// reads in the transaction see them over the database's rows.
    pending: std::collections::BTreeMap<String, Option<Vec<u8>>>,
    /// Whether anything was written (an empty commit bumps no generation).
    dirty: bool,
    /// Whether the commit bumps the marked generation too ([`WriteTxn::mark`]).
    marked: bool,
    /// A statement failed: PostgreSQL aborted the transaction, nothing of it can commit.
    failed: std::cell::Cell<bool>,
}

impl PgWriteTxn<'_> {
    fn conn(&self) -> Result<&Conn, StoreError> {
        if self.failed.get() {
            return Err(StoreError::TransactionLost);
        }
        self.conn.as_ref().ok_or(StoreError::TransactionLost)
    }

    fn checked<T>(
        &self,
        context: &'static str,
        r: Result<Result<T, tokio_postgres::Error>, StoreError>,
    ) -> Result<T, StoreError> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.failed.set(true);
                Err(pg(context)(e))
            }
            Err(e) => {
                self.failed.set(true);
                Err(e)
            }
        }
    }
}

impl ReadTxn for PgWriteTxn<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.pending.get(key) {
            return Ok(pending.clone());
        }
        let conn = self.conn()?;
        let r = self
            .store
            .run(conn.client.query_opt(&conn.stmts.get, &[&key.as_bytes()]));
        Ok(self.checked("reading", r)?.map(|r| r.get::<_, Vec<u8>>(0)))
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit_n: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if limit_n == 0 {
            return Ok(Vec::new());
        }
        let conn = self.conn()?;
        let in_range = |k: &str| k.starts_with(prefix) && start_after.is_none_or(|a| k > a);
        let overlay: Vec<(&String, &Option<Vec<u8>>)> = self
            .pending
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| in_range(k))
            .collect();
        // Each pending entry in range can hide at most one database row: fetch that many more.
        let fetch = limit_n.saturating_add(overlay.len());
        let (which, lower, upper) = scan_params(ScanKind::Forward, prefix, start_after);
        let r = self.store.run(conn.client.query(
            conn.stmts.pick(which),
            &[&lower, &upper.as_slice(), &limit(fetch)],
        ));
        let found = rows(self.checked("scanning", r)?)?;
        if overlay.is_empty() {
            return Ok(found);
        }
        let complete = found.len() < fetch;
        let last_fetched = found.last().map(|(k, _)| k.clone());
        let mut merged: std::collections::BTreeMap<String, Vec<u8>> = found.into_iter().collect();
        for (k, v) in overlay {
            // Past the last fetched row of a truncated page, the database's rows are unknown:
            // a pending write there must not jump ahead of them.
            if !complete && last_fetched.as_ref().is_some_and(|l| k > l) {
                break;
            }
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().take(limit_n).collect())
    }
}

impl WriteTxn for PgWriteTxn<'_> {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn()?;
        self.pending.insert(key.to_string(), Some(value.to_vec()));
        self.dirty = true;
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        let existed = self.get(key)?.is_some();
        if existed {
            self.pending.insert(key.to_string(), None);
            self.dirty = true;
        }
        Ok(existed)
    }

    fn mark(&mut self) {
        self.marked = true;
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if self.failed.get() {
            return Err(StoreError::TransactionLost);
        }
        let Some(conn) = self.conn.take() else {
            return Err(StoreError::TransactionLost);
        };
        let store = self.store;
        if !self.dirty {
            store.finish_async(conn, "COMMIT");
            return Ok(());
        }
        let client = &conn.client;
        let mut put_keys: Vec<&[u8]> = Vec::new();
        let mut put_values: Vec<&[u8]> = Vec::new();
        let mut deleted: Vec<&[u8]> = Vec::new();
        for (k, v) in &self.pending {
            match v {
                Some(v) => {
                    put_keys.push(k.as_bytes());
                    put_values.push(v);
                }
                None => deleted.push(k.as_bytes()),
            }
        }
        // Writes, the generation bump and COMMIT pipelined: one round trip.
        let delete_params: [&(dyn ToSql + Sync); 1] = [&deleted];
        let put_params: [&(dyn ToSql + Sync); 2] = [&put_keys, &put_values];
        let bump = if self.marked {
            &conn.stmts.bump_marked
        } else {
            &conn.stmts.bump
        };
        let result = store.run(async {
            tokio::join!(
                client.execute(&conn.stmts.delete_many, &delete_params),
                client.execute(&conn.stmts.put_many, &put_params),
                client.query_one(bump, &[]),
                client.batch_execute("COMMIT"),
            )
        });
        let result = result.map(|(d, p, bump, commit)| {
            let writes = d.and(p).map(|_| ());
            match (writes, bump, commit) {
                (Ok(()), Ok(row), Ok(())) => (Ok(row), Ok(())),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => (Err(e), Ok(())),
            }
        });
        match result {
            Ok((Ok(row), Ok(()))) => {
                store.shared.saw_row(&row);
                store.checkin(conn);
                Ok(())
            }
            // The bump failed, so the transaction was aborted and `COMMIT` rolled it back.
            Ok((Err(e), _)) | Ok((_, Err(e))) => {
                if conn.client.is_closed() {
                    store.shared.discard_conn(true);
                } else {
                    store.finish_async(conn, "ROLLBACK");
                }
                Err(pg("committing")(e))
            }
            Err(e) => {
                store.shared.discard_conn(true);
                Err(e)
            }
        }
    }
}

impl Drop for PgWriteTxn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.store.finish_async(conn, "ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_taken_from_the_url() {
        let none = PostgresOptions::default();
        let (url, o) = libpq_tls_params(
            "postgres://u@db.example:5432/t?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Frds%20ca.pem&application_name=x",
            &none,
        );
        assert_eq!(
            url,
            "postgres://u@db.example:5432/t?sslmode=require&application_name=x"
        );
        assert_eq!(
            o.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ssl/rds ca.pem"))
        );
        let (url, o) = libpq_tls_params("postgres://u@h/t?sslrootcert=/a.pem", &none);
        assert_eq!(url, "postgres://u@h/t");
        assert_eq!(o.ca_file.as_deref(), Some(std::path::Path::new("/a.pem")));
        // A CA file given in the options wins; URLs without TLS parameters are unchanged.
        let given = PostgresOptions {
            ca_file: Some("/given.pem".into()),
            ..PostgresOptions::default()
        };
        let (_, o) = libpq_tls_params("postgres://u@h/t?sslrootcert=/a.pem", &given);
        assert_eq!(
            o.ca_file.as_deref(),
            Some(std::path::Path::new("/given.pem"))
        );
        let (url, o) = libpq_tls_params("postgres://u@h/t?sslmode=verify-ca", &none);
        assert_eq!(
            (url.as_str(), o.ca_file),
            ("postgres://u@h/t?sslmode=require", None)
        );
        let (url, _) = libpq_tls_params("postgres://u@h/t", &none);
        assert_eq!(url, "postgres://u@h/t");
    }

    #[test]
    fn a_missing_ca_file_named_in_the_url_is_a_clear_error() {
        let err = PostgresStore::open(
            "postgres://u@127.0.0.1:1/t?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("CA file /nonexistent/ca.pem"), "{err}");
    }
}
