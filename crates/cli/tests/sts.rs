//! STS through the real `aws-sdk-sts` client against a spawned `tresor serve`.
#![allow(clippy::expect_used)] // tests: a panic is a failed test

mod common;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
use common::Server;

/// GetCallerIdentity signed with `config`, which must be refused.
async fn refused(config: &aws_config::SdkConfig) -> SdkError<GetCallerIdentityError> {
    aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .expect_err("must be refused")
}

#[tokio::test]
async fn get_caller_identity_returns_the_first_start_administrator() {
    let server = Server::start(&[]);
    let sts = aws_sdk_sts::Client::new(&server.admin_config().await);
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    let account = out.account().expect("Account");
    assert_eq!(account.len(), 12);
    assert!(account.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        out.arn(),
        Some(format!("arn:aws:iam::{account}:user/tresor-admin").as_str())
    );
    let user_id = out.user_id().expect("UserId");
    assert!(
        user_id.starts_with("AIDA") && user_id.len() == 21,
        "{user_id}"
    );
}

#[tokio::test]
async fn wrong_secret_key_is_signature_does_not_match() {
    let server = Server::start(&[]);
    let (akid, _) = server.admin_keys();
    let err = refused(
        &server
            .config(&akid, "0000000000000000000000000000000000000000", None)
            .await,
    )
    .await;
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
}

#[tokio::test]
async fn unknown_access_key_is_invalid_client_token_id() {
    let server = Server::start(&[]);
    let err = refused(
        &server
            .config(
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                None,
            )
            .await,
    )
    .await;
    assert_eq!(err.code(), Some("InvalidClientTokenId"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is invalid.")
    );
}

#[tokio::test]
async fn session_token_on_a_long_term_key_is_refused() {
    let server = Server::start(&[]);
    let (akid, secret) = server.admin_keys();
    let err = refused(&server.config(&akid, &secret, Some("bogus-token")).await).await;
    assert_eq!(err.code(), Some("InvalidClientTokenId"));
}

#[tokio::test]
async fn dev_mode_accepts_test_test_and_verifies_signatures() {
    let server = Server::start(&["--dev"]);
    let ok = aws_sdk_sts::Client::new(&server.config("test", "test", None).await);
    let out = ok
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(out.account(), Some("000000000000"));
    assert_eq!(out.arn(), Some("arn:aws:iam::000000000000:root"));
    let err = refused(&server.config("test", "nottest", None).await).await;
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
}
