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
    pub endpoint: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tresor"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(extra)
            .env_remove("TRESOR_CONFIG")
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
        Server {
            child,
            endpoint,
            data_dir,
            _dir: dir,
        }
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
    }
}
