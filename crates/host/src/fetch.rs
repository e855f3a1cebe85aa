//! `tresor fetch`: a parameter or a secret into a file, for a boot script that must not go on
//! with an empty token.
//!
//! The value is written atomically (a temporary file in the same directory, fsync, rename,
//! fsync of the directory) with mode 0600, raw, as an env file or by replacing one
//! `key=value` line of an existing config file. It is never printed. A failure exits non-zero
//! with one line on stderr and leaves the old file as it was; transient failures are retried
//! with backoff until a deadline. `--watch` keeps the file current: it compares the current
//! version id (Secrets Manager's AWSCURRENT version, the parameter's version) at an interval
//! and rewrites the file and runs a reload command when it changes.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::time::Instant;

use crate::clients::{Clients, REFERENCE_PREFIX, current_version_id};
use crate::errors::{Failure, classify};
use crate::source::ClientArgs;

/// AWS's text for a refusal by a service a reference read depends on (observed behavior).
const DEPENDENCY_FAILURE: &str = "An error occurred while calling one AWS dependency service.";

/// Exit codes: distinct per failure so a boot script can tell them apart.
pub mod exit {
    /// Another failure: the service rejected the request, or the value cannot be written in
    /// the asked format.
    pub const OTHER: u8 = 1;
    /// Bad usage (also clap's code for a malformed command line).
    pub const USAGE: u8 = 2;
    /// Access denied (the message names the hop: ssm, secretsmanager or kms).
    pub const DENIED: u8 = 3;
    /// The parameter or secret does not exist.
    pub const NOT_FOUND: u8 = 4;
    /// tresor could not be reached (or no credentials were found) before the deadline.
    pub const UNREACHABLE: u8 = 5;
    /// The output file could not be written.
    pub const WRITE: u8 = 6;
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// The value's bytes, nothing added.
    Raw,
    /// One `NAME=value` line (`--env-name`).
    Env,
    /// Replace the `KEY=…` line (`--key`) of an existing file with `KEY="value"`; other lines
    /// stay as they are.
    Line,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Parameter name or ARN, `/aws/reference/secretsmanager/<secret-id>`, or with --secret a
    /// secret's name or ARN.
    pub name: String,
    /// NAME is a Secrets Manager secret (read with GetSecretValue).
    #[arg(long)]
    pub secret: bool,
    /// File to write (mode 0600).
    #[arg(long, short)]
    pub out: PathBuf,
    /// How to write the value.
    #[arg(long, value_enum, default_value = "raw")]
    pub format: Format,
    /// Variable name of --format env.
    #[arg(long)]
    pub env_name: Option<String>,
    /// Key whose line --format line replaces (the Buildkite agent's `token`).
    #[arg(long, default_value = "token")]
    pub key: String,
    /// Seconds to keep retrying an unreachable endpoint before giving up.
    #[arg(long, default_value_t = 60)]
    pub deadline: u64,
    /// Keep running: rewrite the file when a new version becomes current.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between version checks with --watch.
    #[arg(long, default_value_t = 30)]
    pub interval: u64,
    /// Pass the value to the reload command in this environment variable (it is never in
    /// its arguments).
    #[arg(long)]
    pub reload_value_env: Option<String>,
    /// Assume this role (with the default credential chain) instead of using the chain's
    /// own identity.
    #[arg(long)]
    pub role_arn: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// With --watch: the command run (without a shell) after each rewrite, after `--`.
    #[arg(last = true)]
    pub reload: Vec<String>,
}

/// A failure of the command: its exit code and one line for stderr.
#[derive(Debug)]
pub struct FetchError {
    pub code: u8,
    pub reason: String,
}

impl FetchError {
    fn new(code: u8, reason: impl Into<String>) -> Self {
        FetchError {
            code,
            reason: reason.into(),
        }
    }
}

/// What is read.
#[derive(Debug, Clone)]
enum Target {
    Parameter(String),
    Secret(String),
}

impl Target {
    /// The service called first, named in an access denial that does not say otherwise.
    fn hop(&self) -> &'static str {
        match self {
            Target::Parameter(_) => "ssm",
            Target::Secret(_) => "secretsmanager",
        }
    }

    fn reference_secret(&self) -> Option<&str> {
        match self {
            Target::Parameter(n) => n.strip_prefix(REFERENCE_PREFIX),
            Target::Secret(_) => None,
        }
    }
}

/// A value and the version it is.
struct Fetched {
    value: Vec<u8>,
    version: String,
}

impl Drop for Fetched {
    fn drop(&mut self) {
        self.value.iter_mut().for_each(|b| *b = 0);
    }
}

/// Runs `tresor fetch`.
pub async fn run(args: FetchArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tresor fetch: {}", e.reason);
            ExitCode::from(e.code)
        }
    }
}

async fn run_inner(args: FetchArgs) -> Result<(), FetchError> {
    let target = check_usage(&args)?;
    let clients = Clients::new(&args.client, args.role_arn.as_deref()).await;
    let deadline = Duration::from_secs(args.deadline);
    let first = with_retries(deadline, target.hop(), || read(&clients, &target)).await?;
    write_value(&args, &first.value)?;
    eprintln!(
        "tresor fetch: wrote {} (version {})",
        args.out.display(),
        first.version
    );
    if !args.watch {
        return Ok(());
    }
    let mut current = first.version.clone();
    drop(first);
    let mut describe_allowed = true;
    loop {
        tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
        let version = match current_version(&clients, &target, &mut describe_allowed).await {
            Ok(v) => v,
            Err(f) => {
                tracing::warn!(error = %f.summary(), "version check failed; keeping the current file");
                continue;
            }
        };
        if version == current {
            continue;
        }
        let fetched = match with_retries(deadline, target.hop(), || read(&clients, &target)).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e.reason, "could not read the new version; keeping the current file");
                continue;
            }
        };
        if let Err(e) = write_value(&args, &fetched.value) {
            tracing::error!(error = %e.reason, "could not write the new version");
            continue;
        }
        tracing::info!(out = %args.out.display(), from = %current, to = %fetched.version, "wrote a new version");
        current = fetched.version.clone();
        reload(&args, &fetched.value).await;
    }
}

fn check_usage(args: &FetchArgs) -> Result<Target, FetchError> {
    let usage = |m: &str| Err(FetchError::new(exit::USAGE, m));
    if args.name.is_empty() {
        return usage("the parameter or secret name is empty");
    }
    if args.format == Format::Env && args.env_name.as_deref().is_none_or(str::is_empty) {
        return usage("--format env needs --env-name");
    }
    if args.format == Format::Line && !args.out.is_file() {
        return usage(&format!(
            "--format line replaces a line of an existing file; {} does not exist",
            args.out.display()
        ));
    }
    if !args.reload.is_empty() && !args.watch {
        return usage("a reload command runs after a rewrite by --watch; add --watch");
    }
    Ok(if args.secret {
        Target::Secret(args.name.clone())
    } else {
        Target::Parameter(args.name.clone())
    })
}

/// Calls `op` until it succeeds, fails for good, or `deadline` passes; exponential backoff
/// from 0.5 s to 8 s between attempts.
async fn with_retries<F, Fut>(
    deadline: Duration,
    hop: &str,
    mut op: F,
) -> Result<Fetched, FetchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Fetched, Failure>>,
{
    let end = Instant::now() + deadline;
    let mut backoff = Duration::from_millis(500);
    loop {
        let remaining = end.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(remaining.max(Duration::from_millis(100)), op()).await;
        let failure = match attempt {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(f)) => f,
            Err(_) => Failure::Timeout,
        };
        if !failure.is_transient() {
            return Err(final_error(&failure, hop));
        }
        if Instant::now() + backoff >= end {
            return Err(FetchError::new(
                exit::UNREACHABLE,
                format!(
                    "unreachable (or no credentials) after {} s: {}",
                    deadline.as_secs(),
                    failure.summary()
                ),
            ));
        }
        tracing::debug!(error = %failure.summary(), "retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(8));
    }
}

/// The exit code and line of a failure that retrying cannot fix.
fn final_error(f: &Failure, default_hop: &str) -> FetchError {
    let Failure::Service { code, message, .. } = f else {
        return FetchError::new(exit::UNREACHABLE, f.summary());
    };
    match code.as_str() {
        "ParameterNotFound" | "ResourceNotFoundException" => {
            FetchError::new(exit::NOT_FOUND, format!("not found: {message}"))
        }
        "AccessDeniedException" | "AccessDenied" => {
            // "… is not authorized to perform: <service>:<Action> on resource: …"
            let hop = message
                .split_once("perform: ")
                .and_then(|(_, rest)| rest.split_once(':'))
                .map(|(service, _)| service.trim())
                .filter(|s| matches!(*s, "ssm" | "secretsmanager" | "kms"))
                .unwrap_or(default_hop);
            FetchError::new(exit::DENIED, format!("access denied by {hop}: {message}"))
        }
        "DecryptionFailure" => {
            FetchError::new(exit::DENIED, format!("access denied by kms: {message}"))
        }
        "ValidationException" if message == DEPENDENCY_FAILURE => FetchError::new(
            exit::DENIED,
            "access denied by secretsmanager: Parameter Store's read of the referenced secret \
             was refused (secretsmanager:GetSecretValue on the secret, or kms:Decrypt on its key)",
        ),
        _ => FetchError::new(exit::OTHER, format!("{code}: {message}")),
    }
}

/// Reads the value and its version.
async fn read(clients: &Clients, target: &Target) -> Result<Fetched, Failure> {
    match target {
        Target::Parameter(name) => {
            let p = clients.get_parameter(name, true).await?;
            let value = p
                .value()
                .ok_or_else(|| Failure::Response("GetParameter returned no Value".into()))?;
            let version = match (target.reference_secret(), p.source_result()) {
                (Some(_), Some(src)) => version_of_source_result(src)
                    .ok_or_else(|| Failure::Response("SourceResult has no VersionId".into()))?,
                _ => p.version().to_string(),
            };
            Ok(Fetched {
                value: value.as_bytes().to_vec(),
                version,
            })
        }
        Target::Secret(id) => {
            let out = clients
                .sm
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            let value = match (out.secret_string(), out.secret_binary()) {
                (Some(s), _) => s.as_bytes().to_vec(),
                (None, Some(b)) => b.as_ref().to_vec(),
                (None, None) => {
                    return Err(Failure::Response("GetSecretValue returned no value".into()));
                }
            };
            Ok(Fetched {
                value,
                version: out.version_id().unwrap_or_default().to_string(),
            })
        }
    }
}

fn version_of_source_result(src: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(src).ok()?;
    v.get("VersionId")?.as_str().map(str::to_string)
}

/// The version that is current now, read cheaply: DescribeSecret's AWSCURRENT version for a
/// secret (and a reference path), the parameter's version without decryption. Without
/// secretsmanager:DescribeSecret, a reference or secret falls back to a full read.
async fn current_version(
    clients: &Clients,
    target: &Target,
    describe_allowed: &mut bool,
) -> Result<String, Failure> {
    let secret_id = match target {
        Target::Secret(id) => Some(id.as_str()),
        Target::Parameter(_) => target.reference_secret(),
    };
    if let Some(id) = secret_id
        && *describe_allowed
    {
        match current_version_id(&clients.sm, id, "AWSCURRENT").await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(Failure::Service { code, .. }) if code == "AccessDeniedException" => {
                tracing::info!(
                    "no secretsmanager:DescribeSecret; checking versions with full reads"
                );
                *describe_allowed = false;
            }
            Err(f) => return Err(f),
        }
    }
    match target {
        Target::Parameter(name) if target.reference_secret().is_none() => Ok(clients
            .get_parameter(name, false)
            .await?
            .version()
            .to_string()),
        _ => Ok(read(clients, target).await?.version.clone()),
    }
}

/// Writes the value in the asked format.
fn write_value(args: &FetchArgs, value: &[u8]) -> Result<(), FetchError> {
    let text = || {
        std::str::from_utf8(value).map_err(|_| {
            FetchError::new(
                exit::OTHER,
                "the value is binary; only --format raw can write it",
            )
        })
    };
    match args.format {
        Format::Raw => write_atomic(&args.out, value, None),
        Format::Env => {
            let v = text()?;
            if v.contains('\n') || v.contains('\r') {
                return Err(FetchError::new(
                    exit::OTHER,
                    "the value spans lines; an env file holds one line per variable",
                ));
            }
            let name = args.env_name.as_deref().unwrap_or_default();
            let mut content = format!("{name}={v}\n").into_bytes();
            let r = write_atomic(&args.out, &content, None);
            content.iter_mut().for_each(|b| *b = 0);
            r
        }
        Format::Line => {
            let v = text()?;
            if v.contains(['\n', '\r', '"']) {
                return Err(FetchError::new(
                    exit::OTHER,
                    "the value contains a quote or a line break; it cannot be a quoted config line",
                ));
            }
            let meta = std::fs::metadata(&args.out).map_err(|e| {
                FetchError::new(
                    exit::WRITE,
                    format!("cannot read {}: {e}", args.out.display()),
                )
            })?;
            let old = std::fs::read_to_string(&args.out).map_err(|e| {
                FetchError::new(
                    exit::WRITE,
                    format!("cannot read {}: {e}", args.out.display()),
                )
            })?;
            let mut content = replace_line(&old, &args.key, v).into_bytes();
            let r = write_atomic(&args.out, &content, Some(&meta));
            content.iter_mut().for_each(|b| *b = 0);
            r
        }
    }
}

/// `old` with every `key=…` line (spaces allowed around `=`) replaced by `key="value"`, or the
/// line appended when there is none. The other lines, and the line endings, stay as they are.
pub fn replace_line(old: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(old.len() + value.len() + key.len() + 4);
    let mut found = false;
    for line in old.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let indent = &body[..body.len() - body.trim_start().len()];
        let is_key = body
            .trim_start()
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_key {
            found = true;
            out.push_str(&format!("{indent}{key}=\"{value}\"{ending}"));
        } else {
            out.push_str(line);
        }
    }
    if !found {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{key}=\"{value}\"\n"));
    }
    out
}

/// Replaces `path` with `content`: a new 0600 file in the same directory, synced, renamed over
/// `path`, then the directory synced. With `owner_of`, the new file keeps that file's owner
/// and group where the process may set them.
pub fn write_atomic(
    path: &Path,
    content: &[u8],
    owner_of: Option<&std::fs::Metadata>,
) -> Result<(), FetchError> {
    let fail = |what: &str, e: std::io::Error| {
        FetchError::new(
            exit::WRITE,
            format!("cannot {what} {}: {e}", path.display()),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            FetchError::new(
                exit::USAGE,
                format!("{} is not a file path", path.display()),
            )
        })?;
    let mut nonce = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| FetchError::new(exit::WRITE, "no randomness for a temporary name"))?;
    let tmp = dir.join(format!(
        ".{file_name}.tresor-{}.tmp",
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail("create a temporary file next to", e))?;
        if let Some(m) = owner_of {
            // Best effort: only root may give a file away.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.write_all(content).map_err(|e| fail("write", e))?;
        f.sync_all().map_err(|e| fail("sync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| fail("replace", e))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Runs the reload command (no shell), the value in its environment only when asked.
async fn reload(args: &FetchArgs, value: &[u8]) {
    let Some((program, rest)) = args.reload.split_first() else {
        return;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest).stdin(std::process::Stdio::null());
    if let Some(name) = &args.reload_value_env
        && let Ok(v) = std::str::from_utf8(value)
    {
        cmd.env(name, v);
    }
    match cmd.status().await {
        Ok(s) if s.success() => tracing::info!(command = %program, "reload command succeeded"),
        Ok(s) => tracing::warn!(command = %program, status = %s, "reload command failed"),
        Err(e) => tracing::warn!(command = %program, error = %e, "cannot run the reload command"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_key_line() {
        let old = "name=\"%hostname-%spawn\"\ntoken=\"old\"\n  tags=\"queue=default\"\ntokens=x\n";
        let new = replace_line(old, "token", "bkua_new");
        assert_eq!(
            new,
            "name=\"%hostname-%spawn\"\ntoken=\"bkua_new\"\n  tags=\"queue=default\"\ntokens=x\n"
        );
    }

    #[test]
    fn appends_a_missing_key_and_keeps_crlf() {
        assert_eq!(replace_line("a=1", "token", "t"), "a=1\ntoken=\"t\"\n");
        assert_eq!(
            replace_line("token = x\r\nb=2\r\n", "token", "t"),
            "token=\"t\"\r\nb=2\r\n"
        );
    }

    #[test]
    fn exit_codes_by_failure() {
        let svc = |code: &str, message: &str| Failure::Service {
            status: 400,
            code: code.into(),
            message: message.into(),
        };
        assert_eq!(
            final_error(&svc("ParameterNotFound", "x"), "ssm").code,
            exit::NOT_FOUND
        );
        let kms = final_error(
            &svc(
                "AccessDeniedException",
                "User: r is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:1:key/k",
            ),
            "ssm",
        );
        assert_eq!(kms.code, exit::DENIED);
        assert!(kms.reason.contains("by kms"));
        let dep = final_error(&svc("ValidationException", DEPENDENCY_FAILURE), "ssm");
        assert!(dep.reason.contains("by secretsmanager"), "{}", dep.reason);
        assert_eq!(
            final_error(&svc("ValidationException", "bad"), "ssm").code,
            exit::OTHER
        );
    }
}
