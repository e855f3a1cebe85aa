//! `AssumeRoleWithWebIdentity` through the Rust SDK against a spawned `tresor serve` whose
//! issuer keys are configured offline (`[[federation.offline_jwks]]`): the provider registered
//! with aws-sdk-iam, the role assumed unsigned with aws-sdk-sts, the session used.
//!
//! The tokens are fixed ES256 vectors (made once with `openssl ecparam -name prime256v1` and
//! `openssl dgst -sha256 -sign`) that expire in 2100, so the test needs no signing code.
#![allow(clippy::expect_used)] // tests: a panic is a failed test

mod common;

use common::{Admin, Server, code};

const ISSUER: &str = "https://ci.offline.test";
const JWKS: &str = r#"{"keys": [{"kty": "EC", "kid": "offline-1", "crv": "P-256", "x": "olpcbT2lA5Q1OUUm7hG-PpunrD7L0VC_6W8-JPiCliQ", "y": "nJZWy7t6a70QBWptXxcg83QycjBVxxaza8p3A4uUGWU"}]}"#;
/// `sub` `organization:acme:pipeline:deploy:ref:refs/heads/main`, `aud` `sts.amazonaws.com`.
const TOKEN: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Im9mZmxpbmUtMSIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2NpLm9mZmxpbmUudGVzdCIsInN1YiI6Im9yZ2FuaXphdGlvbjphY21lOnBpcGVsaW5lOmRlcGxveTpyZWY6cmVmcy9oZWFkcy9tYWluIiwiYXVkIjoic3RzLmFtYXpvbmF3cy5jb20iLCJpYXQiOjE3NjQwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.sEXaELz82E9ftXbsDgnTVKDHyqDyvV5KuWElvGiMOZwE6VBJF8sTaftWbicORBaV2W-wY7vCRoqSZoJ7t-S2qg";
/// The same issuer and key, `sub` `organization:evil:pipeline:x`.
const OTHER_SUBJECT: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Im9mZmxpbmUtMSIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2NpLm9mZmxpbmUudGVzdCIsInN1YiI6Im9yZ2FuaXphdGlvbjpldmlsOnBpcGVsaW5lOngiLCJhdWQiOiJzdHMuYW1hem9uYXdzLmNvbSIsImlhdCI6MTc2NDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.2GfK2xdyGFBbEnIMeHDvXBll8DXTPxuxHiZaxx_h-8K_yEpcNIF2sat7wIiJ5dKZ85XWEd0Tq6j1aOJCdl1iMQ";
/// `exp` in November 2025.
const EXPIRED: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Im9mZmxpbmUtMSIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2NpLm9mZmxpbmUudGVzdCIsInN1YiI6Im9yZ2FuaXphdGlvbjphY21lOnBpcGVsaW5lOmRlcGxveTpyZWY6cmVmcy9oZWFkcy9tYWluIiwiYXVkIjoic3RzLmFtYXpvbmF3cy5jb20iLCJpYXQiOjE3NjQwMDAwMDAsImV4cCI6MTc2NDAwMDMwMH0.aaphPIokRnY8IH0_saJusaEhmKT2SY0ZsjtiKFa7_4ScS2RtkyM2kZ94XqXKSeYZeuKbhBF84spjZOcZOtbJhg";

fn server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, JWKS).expect("jwks");
    let config = dir.path().join("tresor.toml");
    std::fs::write(
        &config,
        format!(
            "[[federation.offline_jwks]]\nissuer = \"{ISSUER}\"\njwks_file = \"{}\"\n",
            jwks.display()
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8 path").to_string();
    (Server::start(&["--config", &config]), dir)
}

#[tokio::test]
async fn a_ci_token_becomes_a_role_session_through_the_sdk() {
    let (server, _dir) = server();
    let admin = Admin::new(&server).await;
    let provider = admin
        .iam
        .create_open_id_connect_provider()
        .url(ISSUER)
        .client_id_list("sts.amazonaws.com")
        .send()
        .await
        .expect("CreateOpenIDConnectProvider");
    let provider_arn = provider
        .open_id_connect_provider_arn()
        .expect("arn")
        .to_string();
    assert_eq!(
        provider_arn,
        format!(
            "arn:aws:iam::{}:oidc-provider/ci.offline.test",
            admin.account
        )
    );
    let got = admin
        .iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(&provider_arn)
        .send()
        .await
        .expect("GetOpenIDConnectProvider");
    assert_eq!(got.url(), Some("ci.offline.test"));
    assert_eq!(got.client_id_list(), ["sts.amazonaws.com"]);
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"{provider_arn}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringLike":{{"ci.offline.test:sub":"organization:acme:pipeline:deploy:*"}},"StringEquals":{{"ci.offline.test:aud":"sts.amazonaws.com"}}}}}}]}}"#
    );
    let role_arn = admin
        .iam
        .create_role()
        .role_name("deploy")
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("CreateRole")
        .role()
        .expect("Role")
        .arn()
        .to_string();

    let sts = aws_sdk_sts::Client::new(&admin.config);
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(&role_arn)
        .role_session_name("build-1")
        .web_identity_token(TOKEN)
        .send()
        .await
        .expect("AssumeRoleWithWebIdentity");
    assert_eq!(
        out.subject_from_web_identity_token(),
        Some("organization:acme:pipeline:deploy:ref:refs/heads/main")
    );
    assert_eq!(out.provider(), Some(ISSUER));
    assert_eq!(out.audience(), Some("sts.amazonaws.com"));
    let creds = out.credentials().expect("Credentials");
    let session = aws_sdk_sts::Client::new(&server.session_config(creds).await);
    let me = session
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(
        me.arn(),
        Some(format!("arn:aws:sts::{}:assumed-role/deploy/build-1", admin.account).as_str())
    );

    for (token, expected) in [
        (OTHER_SUBJECT, "AccessDenied"),
        (EXPIRED, "ExpiredTokenException"),
    ] {
        let err = sts
            .assume_role_with_web_identity()
            .role_arn(&role_arn)
            .role_session_name("build-2")
            .web_identity_token(token)
            .send()
            .await
            .expect_err("refused");
        assert_eq!(code(&err.into_service_error()), expected);
    }

    // Without the provider, the issuer is unknown.
    admin
        .iam
        .delete_open_id_connect_provider()
        .open_id_connect_provider_arn(&provider_arn)
        .send()
        .await
        .expect("DeleteOpenIDConnectProvider");
    let err = sts
        .assume_role_with_web_identity()
        .role_arn(&role_arn)
        .role_session_name("build-3")
        .web_identity_token(TOKEN)
        .send()
        .await
        .expect_err("no provider");
    assert_eq!(code(&err.into_service_error()), "InvalidIdentityToken");
}
