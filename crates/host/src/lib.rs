//! The fleet's side of tresor: what runs on a host that reads secrets.
//!
//! - `imds`: the EC2 instance metadata service's credential paths (IMDSv2) and the
//!   container-credentials route, for one role, so unmodified AWS CLIs and SDKs on any host
//!   act as that role with no key on disk but the host's source credential;
//! - `credential-process`: the same role's credentials for `credential_process`;
//! - `fetch`: a parameter or secret written atomically (0600) to a file, with exit codes a
//!   boot script can act on, and `--watch` across rotations;
//! - `agent`: a loopback caching agent with the AWS Secrets Manager Agent's API that follows
//!   rotation by version id;
//! - `host init`: the configuration a host needs, printed.

pub mod agent;
pub mod clients;
pub mod errors;
pub mod fetch;
pub mod http;
pub mod imds;
pub mod init;
pub mod process;
pub mod signed;
pub mod source;

pub use agent::AgentArgs;
pub use fetch::FetchArgs;
pub use imds::ImdsArgs;
pub use init::HostInitArgs;
pub use process::CredentialProcessArgs;

use std::process::ExitCode;

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("tresor: cannot start the async runtime: {e}");
            None
        }
    }
}

fn finish(name: &str, r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tresor {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `tresor imds`.
pub fn imds_main(args: ImdsArgs) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    finish("imds", rt.block_on(imds::run(args)))
}

/// `tresor credential-process`: the JSON on stdout, or one line on stderr and exit 1.
pub fn credential_process_main(args: CredentialProcessArgs) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(process::run(args)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => finish("credential-process", Err(e)),
    }
}

/// `tresor fetch`.
pub fn fetch_main(args: FetchArgs) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(fetch::run(args))
}

/// `tresor agent`.
pub fn agent_main(args: AgentArgs) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    finish("agent", rt.block_on(agent::run(args)))
}

/// `tresor host init`.
pub fn host_init_main(args: HostInitArgs) -> ExitCode {
    finish("host init", init::run(&args))
}
