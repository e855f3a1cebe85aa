//! Shared harness for the integration tests: spawns the real `tresor serve` binary on an
//! ephemeral port with its own data directory and builds `aws-sdk-*` configs against it.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)] // test harness: a panic is a failed test

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;

pub struct Server {
    child: Child,
    /// The second node (two-node mode), on the same database.
    second: Option<Child>,
    pub endpoint: String,
    /// Each node's own endpoint (one entry on a single node).
    pub node_endpoints: Vec<String>,
    pub data_dir: PathBuf,
    /// The PostgreSQL database of this server (`TRESOR_TEST_STORE=postgres`).
    pub database: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

/// The backend the suite runs on: `TRESOR_TEST_STORE=postgres` (with `TRESOR_TEST_NODES=2`
/// for two nodes on one database behind a proxy that alternates requests between them), or
/// SQLite (the default).
pub fn test_store() -> &'static str {
    match std::env::var("TRESOR_TEST_STORE").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

pub fn test_nodes() -> usize {
    match std::env::var("TRESOR_TEST_NODES").as_deref() {
        Ok("2") if test_store() == "postgres" => 2,
        _ => 1,
    }
}

pub use tresor_store::testing::TestDatabase;

/// Spawns `tresor serve` on `data_dir` with `args`; returns it and its endpoint.
pub fn spawn_node(
    data_dir: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env_remove("TRESOR_CONFIG")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tresor");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let endpoint = loop {
        let line = lines
            .next()
            .expect("tresor exited before listening")
            .expect("read stdout");
        if let Some(rest) = line.strip_prefix("tresor listening on ") {
            break rest.trim().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, endpoint)
}

impl Server {
    /// A server with `extra` flags: on the backend of [`test_store`]. `--dev` servers and TLS
    /// servers are single-node (a throwaway store; a TLS stream cannot be split per request).
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with(extra, &[])
    }

    pub fn start_with(extra: &[&str], envs: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let dev = extra.contains(&"--dev");
        let database = (test_store() == "postgres" && !dev).then(TestDatabase::create);
        let url = database.as_ref().map(|d| d.url.clone());
        let mut args: Vec<&str> = extra.to_vec();
        if let Some(url) = &url {
            args.extend(["--store", url.as_str()]);
        }
        let (child, first) = spawn_node(&data_dir, &args, envs);
        let tls = extra.iter().any(|a| a.starts_with("--tls"));
        let mut server = Server {
            child,
            second: None,
            endpoint: first.clone(),
            node_endpoints: vec![first.clone()],
            data_dir,
            database,
            _dir: dir,
        };
        if test_nodes() == 2 && server.database.is_some() && !tls {
            let second_dir = server._dir.path().join("data2");
            std::fs::create_dir_all(&second_dir).unwrap();
            // Every node needs the first node's root key.
            std::fs::copy(
                server.data_dir.join("root.key"),
                second_dir.join("root.key"),
            )
            .unwrap();
            let (child, second) = spawn_node(&second_dir, &args, envs);
            server.second = Some(child);
            server.node_endpoints.push(second.clone());
            server.endpoint = alternating_proxy(&first, &second);
        }
        server
    }

    /// The administrator's access key pair from the generated AWS CLI profile.
    pub fn admin_keys(&self) -> (String, String) {
        let text =
            std::fs::read_to_string(self.data_dir.join("credentials")).expect("credentials file");
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

    pub async fn config(
        &self,
        akid: &str,
        secret: &str,
        token: Option<&str>,
    ) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                akid,
                secret,
                token.map(str::to_string),
                None,
                "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await
    }

    pub async fn admin_config(&self) -> aws_config::SdkConfig {
        let (a, s) = self.admin_keys();
        self.config(&a, &s, None).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(c) = &mut self.second {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A loopback HTTP/1.1 proxy that sends each request to the next of the two nodes in turn
/// (per request, not per connection: SDK clients keep their connections). Requests and
/// responses are framed by `Content-Length`, which is what tresor and the SDKs use.
pub fn alternating_proxy(a: &str, b: &str) -> String {
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let addr = |e: &str| {
        e.trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    };
    let backends = Arc::new([addr(a), addr(b)]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let turn = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let (backends, turn) = (backends.clone(), turn.clone());
            std::thread::spawn(move || {
                let _ = (|| -> std::io::Result<()> {
                    let mut reader = BufReader::new(client.try_clone()?);
                    let mut client = client;
                    let mut conns: [Option<(BufReader<TcpStream>, TcpStream)>; 2] = [None, None];
                    loop {
                        let Some((head, body)) = read_message(&mut reader, None)? else {
                            return Ok(());
                        };
                        let is_head = head.starts_with(b"HEAD ");
                        let n = turn.fetch_add(1, Ordering::SeqCst) % 2;
                        if conns[n].is_none() {
                            let s = TcpStream::connect(&backends[n])?;
                            conns[n] = Some((BufReader::new(s.try_clone()?), s));
                        }
                        let (back_r, back_w) = conns[n].as_mut().unwrap();
                        use std::io::Write;
                        back_w.write_all(&head)?;
                        back_w.write_all(&body)?;
                        let Some((rhead, rbody)) = read_message(back_r, Some(is_head))? else {
                            return Ok(());
                        };
                        client.write_all(&rhead)?;
                        client.write_all(&rbody)?;
                        let close = |h: &[u8]| {
                            String::from_utf8_lossy(h)
                                .to_ascii_lowercase()
                                .contains("\r\nconnection: close")
                        };
                        if close(&head) || close(&rhead) {
                            // Either side ends the exchange: end the client's connection.
                            return Ok(());
                        }
                    }
                })();
            });
        }
    });
    endpoint
}

/// One HTTP/1.1 message (head with its blank line, and body) framed by `Content-Length`;
/// `None` at a clean end of stream. `response`: whether it answers a HEAD request (no body).
fn read_message(
    r: &mut impl BufRead,
    response: Option<bool>,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let end = line == b"\r\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let bodyless = response == Some(true)
        || text.starts_with("http/1.1 204")
        || text.starts_with("http/1.1 304");
    let mut body = vec![0; if bodyless { 0 } else { len }];
    r.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

impl Server {
    /// An SDK config signed with an assumed role's temporary credentials.
    pub async fn session_config(
        &self,
        creds: &aws_sdk_sts::types::Credentials,
    ) -> aws_config::SdkConfig {
        self.config(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token()),
        )
        .await
    }
}

/// A trust policy that lets `principal` call `sts:AssumeRole`.
pub fn trust_for(principal: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}}"#
    )
}

/// The error code of a service error (empty when there is none).
pub fn code<E: aws_sdk_sts::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_string()
}

/// The administrator's IAM and STS clients and identity, and the role and user plumbing
/// the authorization tests share.
pub struct Admin<'a> {
    pub server: &'a Server,
    pub config: aws_config::SdkConfig,
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub arn: String,
    pub account: String,
}

impl<'a> Admin<'a> {
    pub async fn new(server: &'a Server) -> Admin<'a> {
        let config = server.admin_config().await;
        let sts = aws_sdk_sts::Client::new(&config);
        let me = sts
            .get_caller_identity()
            .send()
            .await
            .expect("GetCallerIdentity");
        Admin {
            server,
            iam: aws_sdk_iam::Client::new(&config),
            arn: me.arn().expect("Arn").to_string(),
            account: me.account().expect("Account").to_string(),
            sts,
            config,
        }
    }

    /// A role the administrator may assume, with no policy.
    pub async fn create_role(&self, name: &str) -> aws_sdk_iam::types::Role {
        self.iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust_for(&self.arn))
            .send()
            .await
            .expect("CreateRole")
            .role()
            .cloned()
            .expect("Role")
    }

    /// A role the administrator may assume, with one inline policy; returns its ARN.
    pub async fn role_with_policy(&self, name: &str, policy: &str) -> String {
        let role = self.create_role(name).await;
        self.iam
            .put_role_policy()
            .role_name(name)
            .policy_name("inline")
            .policy_document(policy)
            .send()
            .await
            .expect("PutRolePolicy");
        role.arn().to_string()
    }

    /// Assumes `role_arn` as the administrator: an SDK config signed as that session.
    pub async fn assume(&self, role_arn: &str, session_name: &str) -> aws_config::SdkConfig {
        let creds = self
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .send()
            .await
            .expect("AssumeRole")
            .credentials()
            .cloned()
            .expect("Credentials");
        self.server.session_config(&creds).await
    }

    /// A new IAM user with an inline identity policy and an access key: its ARN and an SDK
    /// config signed as that user.
    pub async fn user_with_policy(
        &self,
        name: &str,
        policy_name: &str,
        policy: &str,
    ) -> (String, aws_config::SdkConfig) {
        let user = self
            .iam
            .create_user()
            .user_name(name)
            .send()
            .await
            .expect("CreateUser");
        let arn = user.user().expect("User").arn().to_string();
        self.iam
            .put_user_policy()
            .user_name(name)
            .policy_name(policy_name)
            .policy_document(policy)
            .send()
            .await
            .expect("PutUserPolicy");
        let key = self
            .iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .expect("CreateAccessKey");
        let key = key.access_key().expect("AccessKey");
        let config = self
            .server
            .config(key.access_key_id(), key.secret_access_key(), None)
            .await;
        (arn, config)
    }
}

/// Asserts that no file below `dir` (the SQLite database, its WAL, anything else) holds
/// `needle`, and that there is something there to look at; `what` names it in the failure.
pub fn assert_not_on_disk(dir: &std::path::Path, needle: &[u8], what: &str) {
    let mut stack = vec![dir.to_path_buf()];
    let (mut files, mut bytes_read) = (0, 0);
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                // A journal the server removed between listing and reading.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("read {}: {e}", path.display()),
            };
            files += 1;
            bytes_read += bytes.len();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {what}",
                path.display()
            );
        }
    }
    assert!(files > 0 && bytes_read > 0, "nothing in {}", dir.display());
}
