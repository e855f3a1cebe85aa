//! The `tresor` binary: `tresor serve` runs the server; further client subcommands build on
//! the same crates. Nothing here duplicates server logic — it parses flags and environment
//! variables and hands them to `tresor-server`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc instead of glibc's allocator: the request path allocates and frees many small
/// buffers across threads, where glibc's arenas showed up as ~20% of a GetSecretValue profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tresor_server::{Config, Overrides, StartupReport};

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
    /// Serve SSM, Secrets Manager, KMS, IAM and STS on one endpoint.
    Serve(ServeArgs),
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
    /// Request-handling threads [default: twice the CPU cores: requests read SQLite inline,
    /// so a thread briefly blocked in a read should not idle a core].
    #[arg(long, env = "TRESOR_WORKER_THREADS")]
    worker_threads: Option<std::num::NonZeroUsize>,
    /// Log filter (tracing EnvFilter syntax) [default: info].
    #[arg(long, env = "TRESOR_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let overrides = Overrides {
        config_file: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        dev: args.dev,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        insecure_http: args.insecure_http.then_some(true),
        account_id: args.account_id,
        regions: args.regions,
        max_body_bytes: args.max_body_bytes,
        // Read here rather than as a flag: a key on the command line would show in `ps`.
        root_key: std::env::var("TRESOR_ROOT_KEY")
            .ok()
            .filter(|v| !v.is_empty()),
    };
    let config = match Config::resolve(overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tresor: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
