//! Several `tresor serve` nodes on one PostgreSQL database (always PostgreSQL, whatever
//! `TRESOR_TEST_STORE` says): caches stay coherent across nodes, a killed node loses no
//! acknowledged write.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a panic is a failed test

mod common;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use common::{TestDatabase, spawn_node};

/// Nodes on one database, each with its own data directory and the first one's root key.
struct Cluster {
    nodes: Vec<Option<Child>>,
    endpoints: Vec<String>,
    first_dir: PathBuf,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let db = TestDatabase::create();
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut endpoints = Vec::new();
        let first_dir = dir.path().join("node0");
        for i in 0..n {
            let data = dir.path().join(format!("node{i}"));
            if i > 0 {
                std::fs::create_dir_all(&data).unwrap();
                std::fs::copy(first_dir.join("root.key"), data.join("root.key")).unwrap();
            }
            let (child, endpoint) = spawn_node(&data, &["--store", &db.url], &[]);
            nodes.push(Some(child));
            endpoints.push(endpoint);
        }
        Cluster {
            nodes,
            endpoints,
            first_dir,
            _db: db,
            _dir: dir,
        }
    }

    fn admin_keys(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.first_dir.join("credentials")).unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name)
                        .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
                })
                .unwrap()
        };
        (value("aws_access_key_id"), value("aws_secret_access_key"))
    }

    async fn config(&self, node: usize, akid: &str, secret: &str) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoints[node])
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await
    }

    async fn admin(&self, node: usize) -> aws_config::SdkConfig {
        let (a, s) = self.admin_keys();
        self.config(node, &a, &s).await
    }

    fn kill(&mut self, node: usize) {
        if let Some(mut c) = self.nodes[node].take() {
            // SIGKILL: no shutdown, no flush.
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permission_revoked_on_one_node_is_enforced_by_the_other_at_once() {
    let cluster = Cluster::start(2);
    let a_iam = aws_sdk_iam::Client::new(&cluster.admin(0).await);
    let a_sm = aws_sdk_secretsmanager::Client::new(&cluster.admin(0).await);
    let arn = a_sm
        .create_secret()
        .name("coherent")
        .secret_string("v1")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    a_iam
        .create_user()
        .user_name("reader")
        .send()
        .await
        .unwrap();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"{arn}"}}]}}"#
    );
    let mut delays = Vec::new();
    let key = a_iam
        .create_access_key()
        .user_name("reader")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    let b_reader = aws_sdk_secretsmanager::Client::new(
        &cluster
            .config(1, key.access_key_id(), key.secret_access_key())
            .await,
    );
    for round in 0..10 {
        a_iam
            .put_user_policy()
            .user_name("reader")
            .policy_name("read")
            .policy_document(&policy)
            .send()
            .await
            .unwrap();
        // Granted on A: B serves it (and caches the credential and compiled policies).
        let granted = Instant::now();
        loop {
            match b_reader.get_secret_value().secret_id(&arn).send().await {
                Ok(v) => {
                    assert_eq!(v.secret_string(), Some("v1"));
                    break;
                }
                Err(e) => {
                    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
                    assert!(
                        granted.elapsed() < Duration::from_secs(1),
                        "grant not seen in 1 s"
                    );
                }
            }
        }
        for _ in 0..5 {
            b_reader
                .get_secret_value()
                .secret_id(&arn)
                .send()
                .await
                .unwrap();
        }
        // Revoked on A; from the moment A answered, how long until B denies?
        a_iam
            .delete_user_policy()
            .user_name("reader")
            .policy_name("read")
            .send()
            .await
            .unwrap();
        let revoked = Instant::now();
        let mut allowed_after = 0;
        loop {
            match b_reader.get_secret_value().secret_id(&arn).send().await {
                Ok(_) => {
                    allowed_after += 1;
                    assert!(
                        revoked.elapsed() < Duration::from_secs(1),
                        "round {round}: node B still allows the read 1 s after the revocation"
                    );
                }
                Err(e) => {
                    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
                    break;
                }
            }
        }
        delays.push((revoked.elapsed(), allowed_after));
    }
    let mut sorted: Vec<Duration> = delays.iter().map(|d| d.0).collect();
    sorted.sort();
    println!(
        "revocation on node A -> denial on node B: median {:?}, max {:?}; reads still allowed after the revocation per round: {:?}",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        delays.iter().map(|d| d.1).collect::<Vec<_>>()
    );
    assert!(sorted[sorted.len() - 1] < Duration::from_secs(1));
}

/// The strict form of coherence: not "within a second" but the very next request. Every
/// authenticated request first reads the database's generations (one round trip), so node B
/// never serves a request from caches older than a change node A acknowledged before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_very_next_request_on_the_other_node_sees_an_identity_change() {
    let cluster = Cluster::start(2);
    let a_iam = aws_sdk_iam::Client::new(&cluster.admin(0).await);
    let a_sm = aws_sdk_secretsmanager::Client::new(&cluster.admin(0).await);
    let arn = a_sm
        .create_secret()
        .name("strict")
        .secret_string("v1")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    a_iam.create_user().user_name("u").send().await.unwrap();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"{arn}"}}]}}"#
    );
    a_iam
        .put_user_policy()
        .user_name("u")
        .policy_name("read")
        .policy_document(&policy)
        .send()
        .await
        .unwrap();
    let key = a_iam
        .create_access_key()
        .user_name("u")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    let b = aws_sdk_secretsmanager::Client::new(
        &cluster
            .config(1, key.access_key_id(), key.secret_access_key())
            .await,
    );
    let read = || b.get_secret_value().secret_id(&arn).send();
    for round in 0..5 {
        // B caches the credential and the compiled policies.
        for _ in 0..3 {
            assert_eq!(read().await.unwrap().secret_string(), Some("v1"));
        }
        a_iam
            .update_access_key()
            .user_name("u")
            .access_key_id(key.access_key_id())
            .status(aws_sdk_iam::types::StatusType::Inactive)
            .send()
            .await
            .unwrap();
        let err = read().await.unwrap_err();
        assert_eq!(
            err.code(),
            Some("UnrecognizedClientException"),
            "round {round}: a key deactivated on A still works on B: {err:?}"
        );
        a_iam
            .update_access_key()
            .user_name("u")
            .access_key_id(key.access_key_id())
            .status(aws_sdk_iam::types::StatusType::Active)
            .send()
            .await
            .unwrap();
        assert_eq!(read().await.unwrap().secret_string(), Some("v1"));
        a_iam
            .delete_user_policy()
            .user_name("u")
            .policy_name("read")
            .send()
            .await
            .unwrap();
        let err = read().await.unwrap_err();
        assert_eq!(
            err.code(),
            Some("AccessDeniedException"),
            "round {round}: a policy deleted on A still allows on B: {err:?}"
        );
        a_iam
            .put_user_policy()
            .user_name("u")
            .policy_name("read")
            .policy_document(&policy)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_disabled_on_one_node_cannot_be_used_through_the_other() {
    let cluster = Cluster::start(2);
    let a_kms = aws_sdk_kms::Client::new(&cluster.admin(0).await);
    let b_kms = aws_sdk_kms::Client::new(&cluster.admin(1).await);
    let key = a_kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_string();
    let blob = b_kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();
    // B has used (and cached) the key.
    b_kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap();
    a_kms.disable_key().key_id(&key_id).send().await.unwrap();
    // The very next use through B is refused: the decoded key record is tagged with the
    // snapshot's generation, which A's commit moved.
    let err = b_kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("DisabledException"), "{err:?}");
    a_kms.enable_key().key_id(&key_id).send().await.unwrap();
    b_kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_during_writes_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(2);
    let clients = [
        aws_sdk_ssm::Client::new(&cluster.admin(0).await),
        aws_sdk_ssm::Client::new(&cluster.admin(1).await),
    ];
    // Four writers per node, each writing its own parameters until told to stop; every
    // acknowledged name is remembered.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (node, client) in clients.iter().enumerate() {
        for w in 0..4 {
            let (client, stop) = (client.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut failed = 0;
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) || failed > 20 {
                        break;
                    }
                    let name = format!("/load/n{node}/w{w}/p{i}");
                    match client
                        .put_parameter()
                        .name(&name)
                        .value(format!("v{i}"))
                        .r#type(aws_sdk_ssm::types::ParameterType::String)
                        .send()
                        .await
                    {
                        Ok(_) => acked.push((name, format!("v{i}"))),
                        Err(_) => failed += 1,
                    }
                }
                acked
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.kill(0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let on_a = acked
        .iter()
        .filter(|(n, _)| n.starts_with("/load/n0/"))
        .count();
    assert!(on_a > 0, "node A acknowledged nothing before it was killed");
    // Every acknowledged write, wherever it was acknowledged, is there on the survivor.
    let b = &clients[1];
    for chunk in acked.chunks(10) {
        let names: Vec<String> = chunk.iter().map(|(n, _)| n.clone()).collect();
        let got = b
            .get_parameters()
            .set_names(Some(names))
            .send()
            .await
            .unwrap();
        assert!(
            got.invalid_parameters().is_empty(),
            "lost: {:?}",
            got.invalid_parameters()
        );
        for p in got.parameters() {
            let want = chunk
                .iter()
                .find(|(n, _)| Some(n.as_str()) == p.name())
                .unwrap();
            assert_eq!(p.value(), Some(want.1.as_str()));
        }
    }
    println!(
        "{} writes acknowledged ({} by the killed node); all present on the survivor",
        acked.len(),
        on_a
    );
}

#[test]
fn health_is_ready_only_while_the_database_answers() {
    // The node reaches PostgreSQL through a TCP relay this test can cut.
    let db = TestDatabase::create();
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = relay.local_addr().unwrap().port();
    let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upstream: String = tresor_store::testing::pg_admin_url()
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    {
        let cut = cut.clone();
        std::thread::spawn(move || {
            let live: std::sync::Arc<parking_lot_free::Conns> = Default::default();
            for client in relay.incoming() {
                let Ok(client) = client else { continue };
                if cut.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                live.add(&client, &server);
                let watch = (live.clone(), cut.clone());
                std::thread::spawn(move || {
                    while !watch.1.load(std::sync::atomic::Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    watch.0.shut_all();
                });
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
    }
    let url = db.url.replacen(
        db.url.split('@').nth(1).unwrap().split('/').next().unwrap(),
        &format!("127.0.0.1:{relay_port}"),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut child, endpoint) = spawn_node(&dir.path().join("data"), &["--store", &url], &[]);
    let health = || -> String {
        let addr = endpoint.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(health().starts_with("HTTP/1.1 200"), "{}", health());
    cut.store(true, std::sync::atomic::Ordering::SeqCst);
    let start = Instant::now();
    while !health().starts_with("HTTP/1.1 503") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still ready without a database"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let down_after = start.elapsed();
    // A request during the outage is a clear server error, promptly, never a wrong answer.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (akid, secret) = {
        let text = std::fs::read_to_string(dir.path().join("data/credentials")).unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name)
                        .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
                })
                .unwrap()
        };
        (value("aws_access_key_id"), value("aws_secret_access_key"))
    };
    let sm = rt.block_on(async {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(&akid, &secret, None, None, "test"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        aws_sdk_secretsmanager::Client::new(&config)
    });
    let asked = Instant::now();
    let err = rt
        .block_on(sm.list_secrets().send())
        .expect_err("a listing without a database");
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert!(matches!(raw, Some(500..=503)), "{err:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "took {:?}",
        asked.elapsed()
    );
    cut.store(false, std::sync::atomic::Ordering::SeqCst);
    let start = Instant::now();
    while !health().starts_with("HTTP/1.1 200") {
        assert!(start.elapsed() < Duration::from_secs(10), "did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Recovered by itself: the same client succeeds.
    rt.block_on(sm.list_secrets().send()).unwrap();
    println!(
        "database cut: /health 503 after {down_after:?}; restored: 200 after {:?}",
        start.elapsed()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The relay's open connections, so that cutting the database ends them too.
mod parking_lot_free {
    use std::net::{Shutdown, TcpStream};
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Conns(Mutex<Vec<TcpStream>>);

    impl Conns {
        pub fn add(&self, a: &TcpStream, b: &TcpStream) {
            let mut v = self.0.lock().unwrap();
            v.push(a.try_clone().unwrap());
            v.push(b.try_clone().unwrap());
        }

        pub fn shut_all(&self) {
            for s in self.0.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}
