//! `tresor imds` with the AWS SDK for Rust: `aws-config`'s IMDS credential provider takes the
//! instance role's credentials from the endpoint (IMDSv2), and `aws-sdk-ssm` reads the agent
//! token through the reference path with them.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test: a panic is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::ProvideCredentials;
use common::{Admin, Server};

struct Imds {
    child: Child,
    url: String,
}

impl Drop for Imds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_imds(server: &Server, role_arn: &str, key: (&str, &str), extra: &[&str]) -> Imds {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").expect("empty file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args([
            "imds",
            "--role-arn",
            role_arn,
            "--endpoint-url",
            &server.endpoint,
        ])
        .args(["--region", "us-east-1", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tresor imds");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines.next().expect("imds exited").expect("read");
        if let Some(rest) = line.strip_prefix("tresor imds listening on ") {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Imds { child, url }
}

#[tokio::test]
async fn the_sdk_takes_the_instance_role_from_tresor_imds() {
    let server = Server::start(&[]);
    let admin = Admin::new(&server).await;
    let sm = aws_sdk_secretsmanager::Client::new(&admin.config);
    let token = "bkua_rust_sdk_boot";
    let secret = sm
        .create_secret()
        .name("buildkite/agent-token")
        .secret_string(token)
        .send()
        .await
        .expect("CreateSecret");
    let path = "/aws/reference/secretsmanager/buildkite/agent-token";

    // The host's source credential: a user that may assume the instance role, nothing else.
    let role_arn = format!("arn:aws:iam::{}:role/instance", admin.account);
    admin
        .iam
        .create_user()
        .user_name("host")
        .send()
        .await
        .expect("CreateUser");
    admin
        .iam
        .put_user_policy()
        .user_name("host")
        .policy_name("assume")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{role_arn}"}}]}}"#
        ))
        .send()
        .await
        .expect("PutUserPolicy");
    let key = admin
        .iam
        .create_access_key()
        .user_name("host")
        .send()
        .await
        .expect("CreateAccessKey");
    let key = key.access_key().expect("AccessKey");
    let user_arn = format!("arn:aws:iam::{}:user/host", admin.account);
    admin
        .iam
        .create_role()
        .role_name("instance")
        .assume_role_policy_document(common::trust_for(&user_arn))
        .send()
        .await
        .expect("CreateRole");
    let secret_arn = secret.arn().expect("ARN");
    admin
        .iam
        .put_role_policy()
        .role_name("instance")
        .policy_name("read")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"arn:aws:ssm:us-east-1:{}:parameter{path}"}},
                {{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"{secret_arn}"}}]}}"#,
            admin.account
        ))
        .send()
        .await
        .expect("PutRolePolicy");

    let imds = start_imds(
        &server,
        &role_arn,
        (key.access_key_id(), key.secret_access_key()),
        &["--duration-seconds", "900", "--refresh-before", "897"],
    );
    let client = aws_config::imds::Client::builder()
        .endpoint(&imds.url)
        .expect("endpoint")
        .build();
    let provider = aws_config::imds::credentials::ImdsCredentialsProvider::builder()
        .imds_client(client.clone())
        .build();
    let creds = provider
        .provide_credentials()
        .await
        .expect("IMDS credentials");
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert!(creds.expiry().is_some());
    assert_eq!(
        client
            .get("/latest/meta-data/placement/region")
            .await
            .expect("region")
            .as_ref(),
        "us-east-1"
    );

    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&server.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(provider)
        .load()
        .await;
    let who = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert!(
        who.arn()
            .expect("Arn")
            .contains(":assumed-role/instance/i-"),
        "{who:?}"
    );
    let value = aws_sdk_ssm::Client::new(&config)
        .get_parameter()
        .name(path)
        .with_decryption(true)
        .send()
        .await
        .expect("GetParameter")
        .parameter()
        .and_then(|p| p.value().map(str::to_string));
    assert_eq!(value.as_deref(), Some(token));

    // Sessions renew every few seconds here: a new access key id appears.
    let fresh = aws_config::imds::credentials::ImdsCredentialsProvider::builder()
        .imds_client(client)
        .build();
    let mut renewed = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let c = fresh.provide_credentials().await.expect("IMDS credentials");
        if c.access_key_id() != creds.access_key_id() {
            renewed = true;
            break;
        }
    }
    assert!(renewed, "no renewed session within 20 s");
}
