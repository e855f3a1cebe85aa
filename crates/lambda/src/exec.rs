//! Running a function on the host, without containers.
//!
//! The package is unpacked once per code version into a private (0700) directory under the
//! configured work directory; each invocation starts the host's `python3` or `node` with a
//! small bootstrap shipped inside the binary ([`PYTHON_BOOTSTRAP`], [`NODE_BOOTSTRAP`]),
//! which imports the handler and calls it with the event and a context object. Protocol:
//! one JSON request on stdin; one line `<marker> {"result": …}` or `<marker> {"error": …}`
//! on stdout (the marker is random per invocation); everything else the process writes is
//! its log, logged by tresor with the request id and returned (last 4 KB) for `LogType=Tail`.
//!
//! The process environment is built from nothing (the server's own environment is not
//! passed on, except `PATH`): temporary credentials of the execution role issued by
//! tresor's STS, the region, the endpoint of tresor itself, Lambda's defined variables and
//! the function's `Environment.Variables`. `Timeout` is enforced by killing the process.
//! Concurrent invocations of one function are bounded.
//!
//! A function may instead be routed to an HTTP endpoint speaking the Lambda Invoke API (the
//! Lambda Runtime Interface Emulator's `POST /2015-03-31/functions/function/invocations`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use time::OffsetDateTime;
use tresor_core::Services;

use crate::errors::LambdaError;
use crate::model::LAMBDA_PRINCIPAL;
use crate::model::{self, FunctionRecord, RuntimeFamily};

pub const PYTHON_BOOTSTRAP: &str = include_str!("bootstrap/python.py");
pub const NODE_BOOTSTRAP: &str = include_str!("bootstrap/node.js");

/// The most of a function's output kept per invocation (the rest is dropped from the
/// middle: the head goes to the log as it comes, the tail is kept for `LogType=Tail`).
const MAX_LOG_BYTES: usize = 1024 * 1024;
/// `LogType=Tail`: the last 4 KB of the log (Invoke API reference, `LogResult`).
const LOG_TAIL_BYTES: usize = 4096;
/// The largest response payload of a synchronous invocation (Lambda quotas: 6 MB).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Credentials handed to a function live this long (at least the function's timeout).
const CREDENTIAL_SECONDS: i64 = 3600;

/// A function routed to an HTTP endpoint instead of a local process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    /// The function's name, or `None` for every function of `runtime`.
    pub function: Option<String>,
    pub runtime: Option<String>,
    /// Base URL; tresor posts to `<url>/2015-03-31/functions/function/invocations`.
    pub url: String,
}

/// How functions run on this host.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// The Python interpreter (default `python3` from `PATH`).
    pub python: String,
    /// The Node.js interpreter (default `node` from `PATH`).
    pub node: String,
    /// Where packages are unpacked (created 0700).
    pub work_dir: PathBuf,
    /// tresor's own endpoint as functions reach it (`http://127.0.0.1:4566`).
    pub endpoint: String,
    /// Concurrent invocations per function.
    pub max_concurrency: usize,
    /// When tresor serves HTTPS: its certificate file, handed to functions as
    /// `AWS_CA_BUNDLE` (and `NODE_EXTRA_CA_CERTS`) so that their SDK trusts the endpoint.
    pub ca_bundle: Option<PathBuf>,
    pub http_routes: Vec<HttpRoute>,
}

pub const DEFAULT_MAX_CONCURRENCY: usize = 10;

/// What an invocation produced.
#[derive(Default)]
pub struct Outcome {
    /// The HTTP status of the invocation (200; an HTTP-routed function's own status).
    pub status: u16,
    pub payload: Vec<u8>,
    /// `Unhandled` when the function failed.
    pub function_error: Option<String>,
    /// The log (complete up to [`MAX_LOG_BYTES`]).
    pub log: Vec<u8>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("status", &self.status)
            .field("payload_bytes", &self.payload.len())
            .field("function_error", &self.function_error)
            .finish_non_exhaustive()
    }
}

impl Outcome {
    /// The last 4 KB of the log, base64, for `X-Amz-Log-Result`.
    pub fn log_tail(&self) -> String {
        let start = self.log.len().saturating_sub(LOG_TAIL_BYTES);
        STANDARD.encode(&self.log[start..])
    }
}

/// The executor: configuration plus the per-function concurrency counters.
pub struct Executor {
    config: ExecutorConfig,
    running: Mutex<HashMap<String, usize>>,
}

/// A held concurrency slot; released on drop.
struct Slot<'a> {
    executor: &'a Executor,
    arn: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut running = self.executor.running.lock();
        if let Some(n) = running.get_mut(&self.arn) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.arn);
            }
        }
    }
}

/// One invocation's inputs.
pub struct Invocation<'a> {
    pub request_id: &'a str,
    pub record: &'a FunctionRecord,
    pub code: &'a [u8],
    pub payload: &'a [u8],
}

impl Executor {
    /// The work directory is created (0700, parents included) at the first invocation.
    pub fn new(config: ExecutorConfig) -> Result<Executor, std::io::Error> {
        Ok(Executor {
            config,
            running: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    fn try_slot(&self, arn: &str) -> Option<Slot<'_>> {
        let mut running = self.running.lock();
        let n = running.entry(arn.to_string()).or_insert(0);
        if *n >= self.config.max_concurrency.max(1) {
            return None;
        }
        *n += 1;
        Some(Slot {
            executor: self,
            arn: arn.to_string(),
        })
    }

    /// Removes a deleted function's unpacked code.
    pub fn forget(&self, arn: &str) {
        if let Some(dir) = self.function_dir_of_arn(arn)
            && dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(function = arn, error = %e, "lambda: removing unpacked code failed");
        }
    }

    fn function_dir(&self, record: &FunctionRecord) -> PathBuf {
        self.config
            .work_dir
            .join(&record.account)
            .join(&record.region)
            .join(&record.name)
    }

    fn function_dir_of_arn(&self, arn: &str) -> Option<PathBuf> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", _, "lambda", region, account, "function", name] => {
                Some(self.config.work_dir.join(account).join(region).join(name))
            }
            _ => None,
        }
    }

    /// Runs a synchronous invocation, holding a concurrency slot; over the bound it is
    /// `TooManyRequestsException` as Lambda answers (Invoke API reference).
    pub fn invoke(
        &self,
        services: &Services,
        inv: &Invocation<'_>,
    ) -> Result<Outcome, LambdaError> {
        let _slot = self
            .try_slot(&inv.record.arn)
            .ok_or_else(|| LambdaError::TooManyRequests("Rate Exceeded.".into()))?;
        self.run(services, inv)
    }

    /// Waits for a concurrency slot (an asynchronous invocation is queued, not refused).
    pub fn invoke_queued(
        &self,
        services: &Services,
        inv: &Invocation<'_>,
    ) -> Result<Outcome, LambdaError> {
        let give_up = Instant::now() + Duration::from_secs(model::MAX_TIMEOUT as u64);
        loop {
            if let Some(_slot) = self.try_slot(&inv.record.arn) {
                return self.run(services, inv);
            }
            if Instant::now() > give_up {
                return Err(LambdaError::TooManyRequests("Rate Exceeded.".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn route_of(&self, record: &FunctionRecord) -> Option<&HttpRoute> {
        self.config
            .http_routes
            .iter()
            .find(|r| r.function.as_deref() == Some(record.name.as_str()))
            .or_else(|| {
                self.config.http_routes.iter().find(|r| {
                    r.function.is_none() && r.runtime.as_deref() == Some(record.runtime.as_str())
                })
            })
    }

    fn run(&self, services: &Services, inv: &Invocation<'_>) -> Result<Outcome, LambdaError> {
        if let Some(route) = self.route_of(inv.record) {
            return invoke_http(route, inv);
        }
        let family = model::runtime_family(&inv.record.runtime).ok_or_else(|| {
            LambdaError::InvalidRuntime(format!(
                "The runtime parameter of {} is not supported by tresor.",
                inv.record.runtime
            ))
        })?;
        let task_root = self.unpack(inv.record, inv.code)?;
        let home = self.function_dir(inv.record).join("home");
        create_private_dir(&home).map_err(|e| io_failure("creating the function's home", &e))?;
        let (credentials, _) = tresor_iam::sts::assume_role_for_service(
            services,
            &inv.record.role,
            LAMBDA_PRINCIPAL,
            &inv.record.name,
            CREDENTIAL_SECONDS.max(inv.record.timeout + 60),
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| match e {
            tresor_iam::error::StsError::AccessDenied(_) => LambdaError::InvalidParameterValue(
                "The role defined for the function cannot be assumed by Lambda.".into(),
            ),
            other => {
                tracing::error!(error = %other, "lambda: issuing the execution role's credentials failed");
                LambdaError::Internal
            }
        })?;
        let (program, script, flag) = match family {
            RuntimeFamily::Python => (&self.config.python, PYTHON_BOOTSTRAP, "-c"),
            RuntimeFamily::Node => (&self.config.node, NODE_BOOTSTRAP, "-e"),
        };
        let r = inv.record;
        let log_stream = format!(
            "{}/[$LATEST]{}",
            OffsetDateTime::now_utc()
                .date()
                .to_string()
                .replace('-', "/"),
            inv.request_id.replace('-', "")
        );
        let log_group = format!("/aws/lambda/{}", r.name);
        let mut cmd = Command::new(program);
        // Its own process group, so that a timeout ends whatever the function started too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg(flag)
            .arg(script)
            .env_clear()
            .current_dir(&task_root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let memory = r.memory_size.to_string();
        let timeout = r.timeout.to_string();
        let exec_env = format!("AWS_Lambda_{}", r.runtime);
        let task_root_text = task_root.to_string_lossy().to_string();
        let home_text = home.to_string_lossy().to_string();
        let fixed: [(&str, &str); 25] = [
            ("PATH", &path),
            ("HOME", &home_text),
            ("TMPDIR", &home_text),
            ("LANG", "C.UTF-8"),
            ("TZ", ":UTC"),
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("AWS_ACCESS_KEY_ID", &credentials.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &credentials.secret_access_key),
            ("AWS_SESSION_TOKEN", &credentials.session_token),
            ("AWS_REGION", &r.region),
            ("AWS_DEFAULT_REGION", &r.region),
            ("AWS_ENDPOINT_URL", &self.config.endpoint),
            ("SECRETS_MANAGER_ENDPOINT", &self.config.endpoint),
            ("AWS_LAMBDA_FUNCTION_NAME", &r.name),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", &memory),
            ("AWS_LAMBDA_FUNCTION_TIMEOUT", &timeout),
            ("AWS_LAMBDA_LOG_GROUP_NAME", &log_group),
            ("AWS_LAMBDA_LOG_STREAM_NAME", &log_stream),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            ("AWS_EXECUTION_ENV", &exec_env),
            ("_HANDLER", &r.handler),
            ("LAMBDA_TASK_ROOT", &task_root_text),
            ("LAMBDA_RUNTIME_DIR", &task_root_text),
            ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
        ];
        for (k, v) in r.environment.iter().flatten() {
            cmd.env(k, v);
        }
        for (k, v) in fixed {
            cmd.env(k, v);
        }
        if let Some(ca) = &self.config.ca_bundle {
            cmd.env("AWS_CA_BUNDLE", ca).env("NODE_EXTRA_CA_CERTS", ca);
        }
        let marker = format!("TRESOR-RESULT-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let deadline = started + Duration::from_secs(u64::try_from(r.timeout).unwrap_or(3));
        let deadline_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
            + i128::from(r.timeout) * 1000;
        let event: serde_json::Value = if inv.payload.iter().all(u8::is_ascii_whitespace) {
            serde_json::json!({})
        } else {
            serde_json::from_slice(inv.payload).map_err(|_| {
                LambdaError::InvalidRequestContent("Could not parse request body into json".into())
            })?
        };
        let request = serde_json::json!({
            "marker": marker,
            "event": event,
            "context": {
                "aws_request_id": inv.request_id,
                "function_name": r.name,
                "function_version": "$LATEST",
                "invoked_function_arn": r.arn,
                "memory_limit_in_mb": memory,
                "log_group_name": log_group,
                "log_stream_name": log_stream,
                "deadline_ms": deadline_ms as f64,
            },
        });
        let request = serde_json::to_vec(&request).map_err(|_| LambdaError::Internal)?;

        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(function = %r.arn, program = %program, error = %e, "lambda: the runtime cannot be started");
                return Err(LambdaError::InvalidRuntime(format!(
                    "The runtime {} is not available on this host: {program} cannot be started ({}).",
                    r.runtime,
                    e.kind()
                )));
            }
        };
        let mut log = Vec::new();
        let _ = writeln!(log, "START RequestId: {} Version: $LATEST", inv.request_id);
        let stdin = child.stdin.take();
        let writer = std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&request);
            }
        });
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let out_buf = Arc::new(Mutex::new(Vec::new()));
        let err_buf = Arc::new(Mutex::new(Vec::new()));
        spawn_reader(
            child.stdout.take(),
            out_buf.clone(),
            MAX_RESPONSE_BYTES * 2,
            done_tx.clone(),
        );
        spawn_reader(child.stderr.take(), err_buf.clone(), MAX_LOG_BYTES, done_tx);

        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "lambda: waiting for the function failed");
                    break None;
                }
            }
            if Instant::now() >= deadline {
                timed_out = true;
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = started.elapsed();
        let _ = writer.join();
        // The streams end when the process is gone, unless something it started still holds
        // them: that is given a moment, then its process group is ended.
        let grace = Instant::now() + STREAM_GRACE;
        let mut open = 2;
        while open > 0 {
            let left = grace.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                kill_group(child.id());
                break;
            }
            open -= 1;
        }
        let stdout = std::mem::take(&mut *out_buf.lock());
        let stderr = std::mem::take(&mut *err_buf.lock());

        // Lines on stdout other than the result line are the function's output too.
        let mut result_line: Option<&[u8]> = None;
        let mut function_log = Vec::new();
        for line in stdout.split(|b| *b == b'\n') {
            if let Some(rest) = line.strip_prefix(marker.as_bytes()) {
                result_line = Some(rest.strip_prefix(b" ").unwrap_or(rest));
            } else if !line.is_empty() {
                function_log.extend_from_slice(line);
                function_log.push(b'\n');
            }
        }
        function_log.extend_from_slice(&stderr);
        // The function's own output is its log (CloudWatch Logs on AWS), under a target of its
        // own so that an operator can route or silence it (`--log` filter
        // `tresor_function_log=off`): what a user's function prints is the user's business,
        // and tresor itself never prints a value.
        for line in String::from_utf8_lossy(&function_log).lines() {
            tracing::info!(target: "tresor_function_log", request_id = inv.request_id, function = %r.name, "{line}");
        }
        log.extend_from_slice(&function_log);

        let mut outcome = Outcome {
            status: 200,
            ..Outcome::default()
        };
        if timed_out {
            let now = OffsetDateTime::now_utc();
            let message = format!(
                "{} {} Task timed out after {}.00 seconds",
                rfc3339_millis(now),
                inv.request_id,
                r.timeout
            );
            let _ = writeln!(log, "{message}");
            outcome.function_error = Some("Unhandled".into());
            outcome.payload = serde_json::to_vec(&serde_json::json!({ "errorMessage": message }))
                .unwrap_or_default();
        } else {
            match result_line.and_then(|l| serde_json::from_slice::<serde_json::Value>(l).ok()) {
                Some(serde_json::Value::Object(mut m)) if m.contains_key("result") => {
                    let value = m.remove("result").unwrap_or(serde_json::Value::Null);
                    outcome.payload = serde_json::to_vec(&value).unwrap_or_default();
                    if outcome.payload.len() > MAX_RESPONSE_BYTES {
                        outcome.function_error = Some("Unhandled".into());
                        outcome.payload = serde_json::to_vec(&serde_json::json!({
                            "errorMessage": format!("Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).", outcome.payload.len()),
                            "errorType": "Function.ResponseSizeTooLarge",
                        }))
                        .unwrap_or_default();
                    }
                }
                Some(serde_json::Value::Object(mut m)) if m.contains_key("error") => {
                    let value = m.remove("error").unwrap_or(serde_json::Value::Null);
                    outcome.function_error = Some("Unhandled".into());
                    outcome.payload = serde_json::to_vec(&value).unwrap_or_default();
                }
                _ => {
                    // The process ended without a result: Lambda's Runtime.ExitError.
                    let code = status
                        .map(|s| match s.code() {
                            Some(c) => format!("exit status {c}"),
                            None => "signal: killed".to_string(),
                        })
                        .unwrap_or_else(|| "unknown".into());
                    let message = format!(
                        "RequestId: {} Error: Runtime exited with error: {code}",
                        inv.request_id
                    );
                    let _ = writeln!(log, "{message}");
                    outcome.function_error = Some("Unhandled".into());
                    outcome.payload = serde_json::to_vec(&serde_json::json!({
                        "errorType": "Runtime.ExitError",
                        "errorMessage": message,
                    }))
                    .unwrap_or_default();
                }
            }
        }
        let ms = elapsed.as_secs_f64() * 1000.0;
        let _ = writeln!(log, "END RequestId: {}", inv.request_id);
        let _ = writeln!(
            log,
            "REPORT RequestId: {}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\t",
            inv.request_id,
            ms.ceil() as u64,
            r.memory_size
        );
        tracing::info!(
            request_id = inv.request_id,
            function = %r.arn,
            duration_ms = format!("{ms:.2}"),
            error = outcome.function_error.as_deref().unwrap_or("none"),
            timed_out,
            "lambda: invocation finished"
        );
        outcome.log = log;
        Ok(outcome)
    }

    /// The package unpacked under `<work>/<account>/<region>/<name>/code-<sha256 hex>`,
    /// once per code version; older versions of the function's code are removed.
    fn unpack(&self, record: &FunctionRecord, zip: &[u8]) -> Result<PathBuf, LambdaError> {
        let dir = self.function_dir(record);
        let hex: String = STANDARD
            .decode(&record.code_sha256)
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let target = dir.join(format!("code-{hex}"));
        if target.is_dir() {
            return Ok(target);
        }
        create_private_dir(&self.config.work_dir)
            .map_err(|e| io_failure("creating the Lambda work directory", &e))?;
        create_private_dir(&dir)
            .map_err(|e| io_failure("creating the function's directory", &e))?;
        let staging = dir.join(format!(".unpack-{}", uuid::Uuid::new_v4().simple()));
        create_private_dir(&staging)
            .map_err(|e| io_failure("creating the unpack directory", &e))?;
        let unpacked =
            zip::ZipArchive::new(std::io::Cursor::new(zip)).and_then(|mut a| a.extract(&staging));
        if let Err(e) = unpacked {
            let _ = std::fs::remove_dir_all(&staging);
            tracing::warn!(function = %record.arn, error = %e, "lambda: unpacking the package failed");
            return Err(LambdaError::InvalidParameterValue(
                crate::model::UNZIP_MESSAGE.into(),
            ));
        }
        if std::fs::rename(&staging, &target).is_err() {
            // Another invocation unpacked the same version first.
            let _ = std::fs::remove_dir_all(&staging);
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("code-") && p != target {
                    let _ = std::fs::remove_dir_all(&p);
                }
            }
        }
        Ok(target)
    }
}

/// `2019-08-21T19:51:59.839Z`.
fn rfc3339_millis(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn io_failure(what: &str, e: &std::io::Error) -> LambdaError {
    tracing::error!(error = %e, "lambda: {what} failed");
    LambdaError::Internal
}

/// Creates `dir` (and parents) with mode 0700, and tightens an existing one.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// How long the output streams may stay open after the process ended.
const STREAM_GRACE: Duration = Duration::from_millis(500);

/// Reads a stream to its end on a thread, keeping the first `cap` bytes in `into` (the rest
/// is drained); signals `done` at the end.
fn spawn_reader<R: Read + Send + 'static>(
    stream: Option<R>,
    into: Arc<Mutex<Vec<u8>>>,
    cap: usize,
    done: std::sync::mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        if let Some(mut stream) = stream {
            let mut buf = [0u8; 8192];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut kept = into.lock();
                        let room = cap.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
        }
        let _ = done.send(());
    });
}

/// Ends the process group `pgid` (the function and whatever it started) with SIGKILL, through
/// the system's `kill` (no `unsafe` signal call in tresor).
fn kill_group(pgid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = status {
        tracing::warn!(error = %e, "lambda: ending a function's process group failed");
    }
}

/// Invokes through an HTTP endpoint speaking the Lambda Invoke API; its status, body and
/// `X-Amz-Function-Error` are passed through.
fn invoke_http(route: &HttpRoute, inv: &Invocation<'_>) -> Result<Outcome, LambdaError> {
    let url = format!(
        "{}/2015-03-31/functions/function/invocations",
        route.url.trim_end_matches('/')
    );
    let timeout = Duration::from_secs(u64::try_from(inv.record.timeout).unwrap_or(3));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let body = if inv.payload.is_empty() {
        b"{}".as_slice()
    } else {
        inv.payload
    };
    let started = Instant::now();
    let response = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .header("X-Amz-Request-Id", inv.request_id)
        .send(body);
    let mut response = match response {
        Ok(r) => r,
        Err(ureq::Error::Timeout(_)) => {
            let message = format!(
                "{} {} Task timed out after {}.00 seconds",
                rfc3339_millis(OffsetDateTime::now_utc()),
                inv.request_id,
                inv.record.timeout
            );
            return Ok(Outcome {
                status: 200,
                payload: serde_json::to_vec(&serde_json::json!({ "errorMessage": message }))
                    .unwrap_or_default(),
                function_error: Some("Unhandled".into()),
                log: message.into_bytes(),
            });
        }
        Err(e) => {
            tracing::warn!(function = %inv.record.arn, url = %url, error = %e, "lambda: the function's HTTP endpoint failed");
            return Err(LambdaError::Service(format!(
                "tresor could not reach the HTTP endpoint configured for function {}.",
                inv.record.name
            )));
        }
    };
    let status = response.status().as_u16();
    let function_error = response
        .headers()
        .get("X-Amz-Function-Error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let payload = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES as u64)
        .read_to_vec()
        .map_err(|e| {
            tracing::warn!(function = %inv.record.arn, error = %e, "lambda: reading the HTTP endpoint's response failed");
            LambdaError::Service(format!(
                "tresor could not read the response of the HTTP endpoint configured for function {}.",
                inv.record.name
            ))
        })?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let log = format!(
        "START RequestId: {id} Version: $LATEST\nEND RequestId: {id}\nREPORT RequestId: {id}\tDuration: {ms:.2} ms\t\n",
        id = inv.request_id
    );
    tracing::info!(request_id = inv.request_id, function = %inv.record.arn, status, "lambda: HTTP invocation finished");
    Ok(Outcome {
        status,
        payload,
        function_error,
        log: log.into_bytes(),
    })
}

/// The executor of a deployment, as the server plugged it in.
pub fn executor(services: &Services) -> Result<Arc<Executor>, LambdaError> {
    services.extension::<Executor>().ok_or_else(|| {
        LambdaError::Service("Function execution is not configured on this server.".into())
    })
}
