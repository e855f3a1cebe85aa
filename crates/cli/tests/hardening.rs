//! Single-node and SQLite only: these tests start `tresor serve` on data directories they
//! inspect and tamper with (the SQLite file, its lock, the root key file), so they run the
//! same under `TRESOR_TEST_STORE=postgres`; the PostgreSQL operations cases (readiness, a
//! database outage, joining nodes) are in `scaleout.rs`.
//! Start-up, data-directory and connection hardening, against real `tresor serve` processes:
//! what a first start does when it cannot listen, how a lost administrator profile is
//! recovered, the root-key check, the data-directory lock, connection timeouts and limits,
//! signed-header requirements, and logging.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a panic is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;

const STARTUP: Duration = Duration::from_secs(60);

fn tresor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tresor"));
    for var in [
        "TRESOR_CONFIG",
        "TRESOR_ROOT_KEY",
        "TRESOR_LISTEN",
        "TRESOR_DATA_DIR",
        "TRESOR_LOG",
        "TRESOR_LOG_FORMAT",
        "NO_COLOR",
    ] {
        c.env_remove(var);
    }
    c
}

fn serve_cmd(data_dir: &Path, listen: &str, extra: &[&str]) -> Command {
    let mut c = tresor();
    c.args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(extra);
    c
}

/// A running `tresor serve`, its output collected as it comes.
struct Proc {
    child: Child,
    endpoint: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// A process that exited before it was listening.
#[derive(Debug)]
struct Exited {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn collect(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
    ready: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let (Some(tx), Some(rest)) =
                (ready.as_ref(), line.strip_prefix("tresor listening on "))
            {
                let _ = tx.send(rest.trim().to_string());
            }
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    })
}

fn start(mut cmd: Command) -> Result<Proc, Exited> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tresor");
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let out = collect(child.stdout.take().unwrap(), stdout.clone(), Some(tx));
    let err = collect(child.stderr.take().unwrap(), stderr.clone(), None);
    match rx.recv_timeout(STARTUP) {
        Ok(endpoint) => Ok(Proc {
            child,
            endpoint,
            stdout,
            stderr,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.wait().unwrap();
            let _ = out.join();
            let _ = err.join();
            let stdout = stdout.lock().unwrap().clone();
            let stderr = stderr.lock().unwrap().clone();
            Err(Exited {
                status,
                stdout,
                stderr,
            })
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            panic!("tresor neither listened nor exited");
        }
    }
}

fn must_start(cmd: Command) -> Proc {
    match start(cmd) {
        Ok(p) => p,
        Err(e) => panic!("tresor exited: {e:?}"),
    }
}

fn must_fail(cmd: Command) -> Exited {
    match start(cmd) {
        Ok(mut p) => {
            let _ = p.child.kill();
            panic!("tresor started on {} but should have refused", p.endpoint)
        }
        Err(e) => {
            assert!(!e.status.success(), "{e:?}");
            e
        }
    }
}

impl Proc {
    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn addr(&self) -> String {
        self.endpoint.trim_start_matches("http://").to_string()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The administrator's key pair from the data directory's `credentials` file.
fn admin_keys(data_dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(data_dir.join("credentials")).expect("credentials file");
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            })
            .expect("key in credentials file")
    };
    (value("aws_access_key_id"), value("aws_secret_access_key"))
}

async fn sdk_config(endpoint: &str, akid: &str, secret: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// GetCallerIdentity with the data directory's administrator profile: the caller's ARN.
async fn whoami(endpoint: &str, data_dir: &Path) -> Result<String, String> {
    let (a, s) = admin_keys(data_dir);
    let sts = aws_sdk_sts::Client::new(&sdk_config(endpoint, &a, &s).await);
    sts.get_caller_identity()
        .send()
        .await
        .map(|r| r.arn().unwrap_or_default().to_string())
        .map_err(|e| format!("{e:?}"))
}

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    (t, d)
}

// ---- 1. first start, lost profile -------------------------------------------------------

#[tokio::test]
async fn a_first_start_that_cannot_listen_creates_nothing_and_the_next_one_works() {
    let (_t, dir) = data_dir();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let e = must_fail(serve_cmd(&dir, &busy_addr, &[]));
    assert!(e.stderr.contains("cannot listen on"), "{e:?}");
    assert!(!e.stdout.contains("created account"), "{e:?}");
    assert!(!dir.join("tresor.db").exists(), "a store was created");
    assert!(!dir.join("root.key").exists(), "a root key was created");

    let e = must_fail(serve_cmd(
        &dir,
        "127.0.0.1:0",
        &[
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ],
    ));
    assert!(e.stderr.contains("cannot read certificate"), "{e:?}");
    assert!(!dir.join("tresor.db").exists(), "a store was created");

    drop(busy);
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    assert!(p.stdout().contains("created account"), "{}", p.stdout());
    let arn = whoami(&p.endpoint, &dir).await.unwrap();
    assert!(arn.ends_with(":user/tresor-admin"), "{arn}");
}

#[tokio::test]
async fn credentials_staged_before_a_crash_after_the_first_commit_are_moved_into_place() {
    // The first start writes `.credentials.new` before its commit and renames it after; a
    // crash in between leaves the committed administrator's secret in the staged file only.
    let (_t, dir) = data_dir();
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    let (akid, _) = admin_keys(&dir);
    p.stop();
    std::fs::rename(dir.join("credentials"), dir.join(".credentials.new")).unwrap();

    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    assert!(!p.stdout().contains("is missing"), "{}", p.stdout());
    assert!(!dir.join(".credentials.new").exists());
    assert_eq!(admin_keys(&dir).0, akid);
    let arn = whoami(&p.endpoint, &dir).await.unwrap();
    assert!(arn.ends_with(":user/tresor-admin"), "{arn}");
}

#[tokio::test]
async fn a_lost_profile_is_reported_with_the_way_back_and_admin_new_key_recovers_it() {
    let (_t, dir) = data_dir();
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    let (old_akid, _) = admin_keys(&dir);
    p.stop();
    std::fs::remove_file(dir.join("credentials")).unwrap();

    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    let out = p.stdout();
    let way_back = format!("tresor admin new-key --data-dir {}", dir.display());
    assert!(out.contains("is missing"), "{out}");
    assert!(out.contains(&way_back), "{out}");
    // stderr is read by a thread of its own: give it a moment to catch up with stdout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !p.stderr().contains(&way_back) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(p.stderr().contains(&way_back), "{}", p.stderr());

    // While the server runs, the data directory is locked.
    let running_pid = p.child.id();
    let out = tresor()
        .args(["admin", "new-key", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("PID {running_pid}")), "{err}");
    let addr = p.addr();
    p.stop();

    let out = tresor()
        .args(["admin", "new-key", "--data-dir"])
        .arg(&dir)
        .args(["--listen", &addr])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&dir.join("credentials").display().to_string()),
        "{stdout}"
    );
    let (new_akid, new_secret) = admin_keys(&dir);
    assert_ne!(new_akid, old_akid);
    assert!(!stdout.contains(&new_secret), "the secret is printed");

    let p = must_start(serve_cmd(&dir, &addr, &[]));
    assert!(!p.stdout().contains("is missing"), "{}", p.stdout());
    let arn = whoami(&p.endpoint, &dir).await.unwrap();
    assert!(arn.ends_with(":user/tresor-admin"), "{arn}");
    p.stop();

    // The administrator now has two keys, IAM's maximum: a third needs --revoke-existing,
    // which deletes both old keys.
    let out = tresor()
        .args(["admin", "new-key", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--revoke-existing"));
    let out = tresor()
        .args(["admin", "new-key", "--revoke-existing", "--data-dir"])
        .arg(&dir)
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("deleted access key {old_akid}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("deleted access key {new_akid}")),
        "{stdout}"
    );
    let p = must_start(serve_cmd(&dir, &addr, &[]));
    whoami(&p.endpoint, &dir).await.unwrap();
    let sts = aws_sdk_sts::Client::new(&sdk_config(&p.endpoint, &new_akid, &new_secret).await);
    assert!(sts.get_caller_identity().send().await.is_err());
}

// ---- 3. root key -------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_or_wrong_root_key_is_refused_and_never_replaced() {
    let (_t, dir) = data_dir();
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    p.stop();
    let key = std::fs::read(dir.join("root.key")).unwrap();

    std::fs::remove_file(dir.join("root.key")).unwrap();
    let e = must_fail(serve_cmd(&dir, "127.0.0.1:0", &[]));
    assert!(e.stderr.contains("no root key"), "{e:?}");
    assert!(!dir.join("root.key").exists(), "a new root key was created");

    let mut wrong = serve_cmd(&dir, "127.0.0.1:0", &[]);
    wrong.env("TRESOR_ROOT_KEY", "11".repeat(32));
    let e = must_fail(wrong);
    assert!(e.stderr.contains("does not open the store"), "{e:?}");
    assert!(e.stderr.contains("TRESOR_ROOT_KEY"), "{e:?}");

    // The same wrong key as a file.
    write_private(&dir.join("root.key"), &[0x22; 32]);
    let e = must_fail(serve_cmd(&dir, "127.0.0.1:0", &[]));
    assert!(e.stderr.contains("does not open the store"), "{e:?}");

    std::fs::remove_file(dir.join("root.key")).unwrap();
    write_private(&dir.join("root.key"), &key);
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    whoami(&p.endpoint, &dir).await.unwrap();
}

#[test]
fn an_empty_store_file_is_refused() {
    let (_t, dir) = data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tresor.db"), b"").unwrap();
    let e = must_fail(serve_cmd(&dir, "127.0.0.1:0", &[]));
    assert!(e.stderr.contains("is empty (0 bytes)"), "{e:?}");
    assert!(!dir.join("root.key").exists());
    assert!(!dir.join("credentials").exists());
}

fn write_private(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

// ---- 4. one process per data directory ---------------------------------------------------

#[test]
fn a_second_process_on_the_same_data_directory_is_refused_with_the_first_ones_pid() {
    let (_t, dir) = data_dir();
    let first = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    let e = must_fail(serve_cmd(&dir, "127.0.0.1:0", &[]));
    assert!(
        e.stderr.contains(&format!(
            "in use by another tresor process (PID {})",
            first.child.id()
        )),
        "{e:?}"
    );
    // The lock goes with the process.
    first.stop();
    must_start(serve_cmd(&dir, "127.0.0.1:0", &[])).stop();
}

// ---- 2. connection timeouts and limits ---------------------------------------------------

/// Reads until the server closes the connection (or `limit` passes): how long that took,
/// `None` if it did not close.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Sends a keep-alive `GET /health` and reads its response.
fn health_on(stream: &mut TcpStream, host: &str) {
    write!(stream, "GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(15).any(|w| w == b"{\"status\":\"ok\"}") {
        let n = stream.read(&mut buf).expect("health response");
        assert!(n > 0, "connection closed before the response");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
}

#[test]
fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let (_t, dir) = data_dir();
    let p = must_start(serve_cmd(
        &dir,
        "127.0.0.1:0",
        &["--header-read-timeout", "1", "--idle-timeout", "3"],
    ));
    let addr = p.addr();

    // A client that never finishes its headers.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
    let t = closed_within(&mut slow, Duration::from_secs(10)).expect("slow client not closed");
    assert!(t < Duration::from_secs(5), "{t:?}");

    // A client that connects and says nothing.
    let mut silent = TcpStream::connect(&addr).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(10)).is_some());

    // A keep-alive connection: kept past the header timeout while idle, closed after the
    // idle timeout.
    let mut idle = TcpStream::connect(&addr).unwrap();
    health_on(&mut idle, &addr);
    std::thread::sleep(Duration::from_millis(1500));
    health_on(&mut idle, &addr);
    let t = closed_within(&mut idle, Duration::from_secs(15)).expect("idle connection not closed");
    assert!(t >= Duration::from_secs(2), "closed after {t:?}");
}

#[test]
fn at_the_open_file_limit_health_still_answers_and_accept_errors_do_not_flood_the_log() {
    let (_t, dir) = data_dir();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_tresor"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .args(["--idle-timeout", "2", "--header-read-timeout", "2"]);
    for var in ["TRESOR_CONFIG", "TRESOR_ROOT_KEY", "TRESOR_LOG"] {
        cmd.env_remove(var);
    }
    let p = must_start(cmd);
    let addr = p.addr();
    // More idle connections than the server has file descriptors.
    let hogs: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(hogs.len() > 250, "only {} connections", hogs.len());
    let started = Instant::now();
    let mut h = TcpStream::connect(&addr).unwrap();
    health_on(&mut h, &addr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_secs(2));
    let log = p.stderr();
    let accept_failures = log.matches("accept failed").count();
    assert!(
        accept_failures <= 3,
        "{accept_failures} accept failures logged:\n{log}"
    );
    drop(hogs);
}

// ---- 5. signed headers -------------------------------------------------------------------

/// A raw awsJson1.1 request, signed by AWS's own signer over every header but `unsigned`.
fn signed_json_request(
    addr: &str,
    akid: &str,
    secret: &str,
    signed_target: &str,
    sent_target: &str,
    body: &str,
    unsigned: &[&'static str],
) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let mut settings = SigningSettings::default();
    let mut excluded = settings.excluded_headers.take().unwrap_or_default();
    excluded.extend(unsigned.iter().map(|h| std::borrow::Cow::Borrowed(*h)));
    settings.excluded_headers = Some(excluded);
    let identity = Credentials::new(akid, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("secretsmanager")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let headers = [
        ("host", addr.to_string()),
        ("content-type", "application/x-amz-json-1.1".to_string()),
        ("x-amz-target", signed_target.to_string()),
    ];
    let signable = SignableRequest::new(
        "POST",
        format!("http://{addr}/"),
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let (signature_headers, _) = instructions.into_parts();
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: {sent_target}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in &signature_headers {
        req.push_str(&format!("{}: {}\r\n", h.name(), h.value()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[tokio::test]
async fn an_unsigned_x_amz_target_or_content_type_is_refused() {
    let (_t, dir) = data_dir();
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    let (akid, secret) = admin_keys(&dir);
    let sm = aws_sdk_secretsmanager::Client::new(&sdk_config(&p.endpoint, &akid, &secret).await);
    sm.create_secret()
        .name("kept")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let addr = p.addr();
    let body = r#"{"SecretId":"kept","ForceDeleteWithoutRecovery":true}"#;

    // Signed over host and x-amz-date only, then re-targeted to DeleteSecret.
    let resp = signed_json_request(
        &addr,
        &akid,
        &secret,
        "secretsmanager.DescribeSecret",
        "secretsmanager.DeleteSecret",
        body,
        &["x-amz-target", "content-type"],
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("IncompleteSignatureException"), "{resp}");
    assert!(
        resp.contains("'X-Amz-Target' must be a 'SignedHeader'"),
        "{resp}"
    );

    let resp = signed_json_request(
        &addr,
        &akid,
        &secret,
        "secretsmanager.DescribeSecret",
        "secretsmanager.DescribeSecret",
        body,
        &["content-type"],
    );
    assert!(
        resp.contains("'Content-Type' must be a 'SignedHeader'"),
        "{resp}"
    );

    sm.describe_secret().secret_id("kept").send().await.unwrap();

    // Signed properly, the same raw request works (so the refusals above are about the
    // headers, not the harness).
    let resp = signed_json_request(
        &addr,
        &akid,
        &secret,
        "secretsmanager.DescribeSecret",
        "secretsmanager.DescribeSecret",
        r#"{"SecretId":"kept"}"#,
        &[],
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

// ---- 6. newcomer friction ----------------------------------------------------------------

#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let (_t, dir) = data_dir();
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    std::thread::sleep(Duration::from_millis(200));
    let log = p.stderr();
    assert!(log.contains("tresor listening on"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a non-terminal log: {log:?}"
    );
    p.stop();

    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &["--log-format", "json"]));
    std::thread::sleep(Duration::from_millis(200));
    let log = p.stderr();
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
}

#[test]
fn the_profile_follows_the_port_of_each_start() {
    let (_t, dir) = data_dir();
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    let first = p.endpoint.clone();
    p.stop();
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    assert_ne!(p.endpoint, first, "the OS gave the same port twice");
    let config = std::fs::read_to_string(dir.join("config")).unwrap();
    assert!(
        config.contains(&format!("endpoint_url = {}\n", p.endpoint)),
        "{config}"
    );
}

#[test]
fn a_loose_data_directory_is_tightened_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let (_t, dir) = data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = must_start(serve_cmd(&dir, "127.0.0.1:0", &[]));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(
        p.stderr().contains("restricted it to 0700"),
        "{}",
        p.stderr()
    );
}

#[test]
fn help_shows_each_default_once() {
    let out = tresor().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let log_help: String = help
        .split("--log <LOG>")
        .nth(1)
        .unwrap()
        .split("--log-format")
        .next()
        .unwrap()
        .to_string();
    assert_eq!(log_help.matches("[default: info]").count(), 1, "{help}");
    for flag in [
        "--header-read-timeout",
        "--idle-timeout",
        "--max-connections",
        "--writer-nice",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn a_writer_priority_out_of_range_is_refused_at_start() {
    let out = tresor()
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--writer-nice",
            "20",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("writer_nice must be 0 to 19"), "{stderr}");
}
