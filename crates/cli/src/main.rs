//! The `tresor` binary: `tresor serve` runs the server; `tresor admin` works directly on a
//! stopped server's data directory; further client subcommands build on the same crates. Nothing here duplicates server logic — it parses flags and environment
//! variables and hands them to `tresor-server`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// mimalloc instead of glibc's allocator: the request path allocates and frees many small
/// buffers across threads, where glibc's arenas showed up as ~20% of a GetSecretValue profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tresor_server::{Config, Overrides, StartupReport};

mod who_reads;

#[derive(Parser)]
#[command(
    name = "tresor",
    version,
    about = "A self-hosted secrets service that speaks AWS's APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve SSM, Secrets Manager, KMS, IAM, STS and Lambda on one endpoint.
    Serve(Box<ServeArgs>),
    /// Administration on a stopped server's data directory.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// EC2 instance-metadata (IMDSv2) and container credentials of one role for this host.
    Imds(Box<tresor_host::ImdsArgs>),
    /// Print a role's credentials for `credential_process` in the AWS config file.
    CredentialProcess(Box<tresor_host::CredentialProcessArgs>),
    /// Write a parameter or secret to a file (atomically, 0600), optionally keeping it current.
    Fetch(Box<tresor_host::FetchArgs>),
    /// A loopback caching agent with the AWS Secrets Manager Agent's API.
    Agent(Box<tresor_host::AgentArgs>),
    /// Host setup: the configuration a host needs to act as a role.
    #[command(subcommand)]
    Host(HostCommand),
    /// Copy a stopped SQLite deployment's store into an empty PostgreSQL database.
    Migrate(MigrateArgs),
    /// Who read which version of a secret (directly or through Parameter Store's reference
    /// path), from the audit log, and whether the old version is safe to revoke.
    WhoReads(who_reads::WhoReadsArgs),
}

#[derive(Subcommand)]
enum HostCommand {
    /// Print (or write) the environment, systemd unit and profile a host needs.
    Init(Box<tresor_host::HostInitArgs>),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Issue the administrator (tresor-admin) a new access key and write it to the data
    /// directory's AWS CLI profile — the way back when the profile was lost. The server must be
    /// stopped.
    NewKey(NewKeyArgs),
}

#[derive(Args)]
struct NewKeyArgs {
    /// TOML configuration file (for data_dir, listen and TLS, used in the profile).
    #[arg(long, env = "TRESOR_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ~/.local/share/tresor].
    #[arg(long, env = "TRESOR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address the server listens on, for the profile's endpoint_url [default: 127.0.0.1:4566].
    #[arg(long, env = "TRESOR_LISTEN")]
    listen: Option<String>,
    /// The store: a postgres:// URL for a shared PostgreSQL store [default: SQLite in the data
    /// directory].
    #[arg(long, env = "TRESOR_STORE")]
    store: Option<String>,
    /// Delete the administrator's existing access keys in the same transaction.
    #[arg(long)]
    revoke_existing: bool,
}

#[derive(Args)]
struct MigrateArgs {
    /// The stopped deployment's data directory (its tresor.db is copied).
    #[arg(long, env = "TRESOR_DATA_DIR")]
    data_dir: PathBuf,
    /// The PostgreSQL database to copy into (empty; its schema is created).
    #[arg(long = "to", env = "TRESOR_STORE")]
    to: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines (coloured only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (flags and TRESOR_* variables take precedence over it).
    #[arg(long, env = "TRESOR_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:4566].
    #[arg(long, env = "TRESOR_LISTEN")]
    listen: Option<String>,
    /// Data directory: store, root key, administrator profile [default: ~/.local/share/tresor].
    #[arg(long, env = "TRESOR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: `postgres://user[:password]@host[:port]/database[?sslmode=require]` for a
    /// PostgreSQL database shared by several nodes (each with its own data directory and the
    /// same root key) [default: SQLite in the data directory].
    #[arg(long, env = "TRESOR_STORE")]
    store: Option<String>,
    /// Throwaway store, account 000000000000, credentials test/test (signatures still verified).
    #[arg(long, env = "TRESOR_DEV")]
    dev: bool,
    /// PEM certificate chain for TLS.
    #[arg(long, env = "TRESOR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "TRESOR_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "TRESOR_INSECURE_HTTP")]
    insecure_http: bool,
    /// Account id for a new data directory [default: random 12 digits].
    #[arg(long, env = "TRESOR_ACCOUNT_ID")]
    account_id: Option<String>,
    /// Regions served, comma-separated [default: AWS's commercial regions].
    #[arg(long, env = "TRESOR_REGIONS", value_delimiter = ',')]
    regions: Option<Vec<String>>,
    /// Largest request body accepted, in bytes [default: 1048576].
    #[arg(long, env = "TRESOR_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Seconds a client may take to send a request's headers [default: 10].
    #[arg(long, env = "TRESOR_HEADER_READ_TIMEOUT", value_name = "SECONDS")]
    header_read_timeout: Option<u64>,
    /// Seconds a connection may stay without traffic (idle keep-alive) [default: 60].
    #[arg(long, env = "TRESOR_IDLE_TIMEOUT", value_name = "SECONDS")]
    idle_timeout: Option<u64>,
    /// Most connections served at once; more wait to be accepted [default: 1024, lowered to
    /// fit the open-file limit].
    #[arg(long, env = "TRESOR_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Nice value of the threads that run writes, 0 (the request threads' priority) to 19: under
    /// a read load that keeps every core busy, writes get about a tenth of a core at 10 instead
    /// of an equal share [default: 10].
    #[arg(long, env = "TRESOR_WRITER_NICE", value_name = "NICE")]
    writer_nice: Option<i32>,
    /// Interpreter of Lambda functions with a python3.x runtime [default: python3 on PATH].
    #[arg(long, env = "TRESOR_LAMBDA_PYTHON")]
    lambda_python: Option<String>,
    /// Interpreter of Lambda functions with a nodejs runtime [default: node on PATH].
    #[arg(long, env = "TRESOR_LAMBDA_NODE")]
    lambda_node: Option<String>,
    /// Request-handling threads [default: one per CPU core. Measured on 2 cores under reads
    /// with 16 writers: twice the cores gave 7–20 % fewer reads and 18–26 % fewer writes a
    /// second — the extra threads take turns on the cores with the writes' own threads; the
    /// reads' SQLite pages are in the OS's cache, so a read seldom blocks a thread].
    #[arg(long, env = "TRESOR_WORKER_THREADS")]
    worker_threads: Option<std::num::NonZeroUsize>,
    /// Also append every audit record (one CloudTrail JSON record a line) to this file.
    #[arg(long, env = "TRESOR_AUDIT_FILE")]
    audit_file: Option<PathBuf>,
    /// Days audit records are kept [default: 90].
    #[arg(long, env = "TRESOR_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    audit_retention_days: Option<u64>,
    /// When the record of a request that changes nothing (a read, a denial) counts as
    /// written: `batch` — written to the segment file before the response, fdatasynced in the
    /// background every 50 ms (a power loss can cost the last interval's read records);
    /// `always` — fdatasynced before the response [default: batch].
    #[arg(long, env = "TRESOR_AUDIT_SYNC", value_name = "MODE", value_parser = ["batch", "always"])]
    audit_sync: Option<String>,
    /// Record nothing (benchmarks only): no audit log, LookupEvents finds nothing.
    #[arg(long, env = "TRESOR_NO_AUDIT")]
    no_audit: bool,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "TRESOR_LOG", default_value = "info")]
    log: String,
    /// Log line format.
    #[arg(long, env = "TRESOR_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Admin(AdminCommand::NewKey(args)) => new_key(args),
        Command::Imds(args) => host(tresor_host::imds_main, *args, "info"),
        Command::CredentialProcess(args) => {
            host(tresor_host::credential_process_main, *args, "warn")
        }
        Command::Fetch(args) => host(tresor_host::fetch_main, *args, "warn,tresor_host=info"),
        Command::Agent(args) => host(tresor_host::agent_main, *args, "info"),
        Command::Host(HostCommand::Init(args)) => tresor_host::host_init_main(*args),
        Command::WhoReads(args) => who_reads::run(args),
        Command::Migrate(args) => migrate(args),
    }
}

fn migrate(args: MigrateArgs) -> ExitCode {
    init_logging("warn", LogFormat::Text);
    match tresor_server::migrate_to_postgres(&args.data_dir, &args.to) {
        Ok(m) => {
            println!(
                "copied {} records from {} into {}",
                m.records,
                args.data_dir.join("tresor.db").display(),
                m.database
            );
            println!(
                "start every node with --store and this deployment's root key ({} or TRESOR_ROOT_KEY)",
                args.data_dir.join("root.key").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tresor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A host-side command (crate `tresor-host`), logging at `log` to stderr.
fn host<A>(run: fn(A) -> ExitCode, args: A, log: &str) -> ExitCode {
    init_logging(log, LogFormat::Text);
    run(args)
}

/// Logs to stderr: ANSI colours only when stderr is a terminal, never into a file or journald.
fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// The root key from the environment: a key on the command line would show in `ps`.
fn root_key_from_env() -> Option<String> {
    std::env::var("TRESOR_ROOT_KEY")
        .ok()
        .filter(|v| !v.is_empty())
}

/// `TRESOR_ROTATION_HOUR_SECONDS` (testing only): seconds per hour of a Secrets Manager
/// rotation schedule (`rate(…)`, `AutomaticallyAfterDays`), so a schedule fires within seconds.
fn rotation_hour_seconds_from_env() -> Result<Option<u64>, String> {
    match std::env::var("TRESOR_ROTATION_HOUR_SECONDS") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Some)
            .map_err(|_| format!("TRESOR_ROTATION_HOUR_SECONDS '{v}' is not a number of seconds")),
        _ => Ok(None),
    }
}

fn new_key(args: NewKeyArgs) -> ExitCode {
    init_logging("warn", LogFormat::Text);
    let overrides = Overrides {
        config_file: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        store: args.store,
        root_key: root_key_from_env(),
        ..Overrides::default()
    };
    let config = match Config::resolve(overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tresor: {e}");
            return ExitCode::from(2);
        }
    };
    match tresor_server::admin_new_key(&config, args.revoke_existing) {
        Ok(k) => {
            for id in &k.revoked {
                println!("deleted access key {id}");
            }
            println!("issued access key {} for {}", k.access_key_id, k.admin_arn);
            println!(
                "wrote profile 'tresor' to {} (mode 0600) and {}",
                k.credentials_file.display(),
                k.config_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tresor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logging(&args.log, args.log_format);
    let worker_threads = args.worker_threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        std::num::NonZeroUsize::get,
    );
    let overrides = Overrides {
        config_file: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        store: args.store,
        dev: args.dev,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        insecure_http: args.insecure_http.then_some(true),
        account_id: args.account_id,
        regions: args.regions,
        max_body_bytes: args.max_body_bytes,
        header_read_timeout_secs: args.header_read_timeout,
        idle_timeout_secs: args.idle_timeout,
        max_connections: args.max_connections,
        writer_nice: args.writer_nice,
        root_key: root_key_from_env(),
        rotation_hour_seconds: match rotation_hour_seconds_from_env() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("tresor: {e}");
                return ExitCode::from(2);
            }
        },
        lambda_python: args.lambda_python,
        lambda_node: args.lambda_node,
        audit_file: args.audit_file,
        audit_retention_days: args.audit_retention_days,
        audit_enabled: args.no_audit.then_some(false),
        audit_sync: args.audit_sync,
    };
    let config = match Config::resolve(overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tresor: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tresor: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let running = match tresor_server::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("tresor: {e}");
                return ExitCode::FAILURE;
            }
        };
        announce(&running.report);
        let trigger = running.shutdown_trigger();
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = trigger.send(true);
        });
        running.wait().await;
        ExitCode::SUCCESS
    })
}

/// The start-up log (store, regions, authentication) and, on first start, how to use the
/// generated administrator profile.
fn announce(r: &StartupReport) {
    let regions = if r.regions.len() > 4 {
        format!(
            "{} regions ({}, …)",
            r.regions.len(),
            r.regions[..3].join(", ")
        )
    } else {
        r.regions.join(", ")
    };
    tracing::info!(
        store = %r.store,
        account = %r.account,
        regions = %regions,
        "tresor listening on {}; every request is SigV4-authenticated (authentication enforced)",
        r.endpoint
    );
    if r.dev {
        println!(
            "dev mode: throwaway store, account {}, credentials test/test. Try:",
            r.account
        );
        println!("  {}", r.try_it_command());
    } else if r.created {
        println!(
            "created account {} with administrator {}",
            r.account, r.admin_arn
        );
        println!(
            "its access key is in the AWS CLI profile 'tresor' (mode 0600); the secret is not shown again. Try:"
        );
        println!("  {}", r.try_it_command());
    } else if r.profile_missing {
        let missing = r
            .credentials_file
            .as_ref()
            .map(|c| c.display().to_string())
            .unwrap_or_default();
        tracing::warn!(
            "the administrator profile {missing} is missing; to issue a new administrator key, \
             stop tresor and run: {}",
            r.recovery_command()
        );
        println!(
            "account {}; the administrator profile {missing} is missing. Stop tresor and run\n  {}\nto issue a new administrator access key.",
            r.account,
            r.recovery_command()
        );
    } else if let Some(c) = &r.credentials_file {
        println!(
            "account {}; administrator profile 'tresor' in {}",
            r.account,
            c.display()
        );
    }
    // Last, one plain line on stdout for scripts and tests that wait for readiness.
    println!("tresor listening on {}", r.endpoint);
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
