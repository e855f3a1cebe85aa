//! The dispatch table's edges, through real clients and raw HTTP against a spawned
//! `tresor serve`: operations tresor does not implement, operations AWS accepts unsigned, and
//! services tresor does not serve.
#![allow(clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::io::{Read, Write};

use aws_sdk_kms::error::ProvideErrorMetadata;
use common::Server;

/// Sends `request` (a complete HTTP/1.1 request) and returns the whole response text.
fn raw(server: &Server, request: &str) -> String {
    let addr = server.endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read");
    out
}

#[tokio::test]
async fn an_unimplemented_operation_says_which_one_instead_of_an_empty_message() {
    let server = Server::start(&[]);
    let kms = aws_sdk_kms::Client::new(&server.admin_config().await);
    // Custom key stores are not built.
    let err = kms
        .describe_custom_key_stores()
        .send()
        .await
        .expect_err("not implemented");
    assert_eq!(err.code(), Some("UnknownOperationException"));
    let message = err.message().expect("a message");
    assert!(message.contains("DescribeCustomKeyStores"), "{message}");
}

#[tokio::test]
async fn unsigned_assume_role_with_saml_is_an_unknown_action_not_a_missing_signature() {
    let server = Server::start(&[]);
    let sts = aws_sdk_sts::Client::new(&server.admin_config().await);
    // The SDK sends this operation unsigned, as AWS accepts it.
    let err = sts
        .assume_role_with_saml()
        .role_arn("arn:aws:iam::123456789012:role/ci")
        .principal_arn("arn:aws:iam::123456789012:saml-provider/idp")
        .saml_assertion("PHNhbWw+PC9zYW1sPg==")
        .send()
        .await
        .expect_err("not implemented");
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(&err),
        Some("InvalidAction")
    );
    let message = aws_sdk_sts::error::ProvideErrorMetadata::message(&err).expect("message");
    assert!(message.contains("AssumeRoleWithSAML"), "{message}");
}

#[tokio::test]
async fn unsigned_assume_role_with_web_identity_reaches_the_token_check() {
    let server = Server::start(&[]);
    let sts = aws_sdk_sts::Client::new(&server.admin_config().await);
    // Unsigned, as the SDK sends it: the token is judged, not the missing signature.
    let err = sts
        .assume_role_with_web_identity()
        .role_arn("arn:aws:iam::123456789012:role/ci")
        .role_session_name("job")
        .web_identity_token("eyJhbGciOiJSUzI1NiJ9.e30.sig")
        .send()
        .await
        .expect_err("not a valid token");
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(&err),
        Some("InvalidIdentityToken")
    );
    let message = aws_sdk_sts::error::ProvideErrorMetadata::message(&err).expect("message");
    assert!(message.contains("not a valid JWT"), "{message}");
}

#[test]
fn a_service_tresor_does_not_serve_is_named_in_a_clear_error() {
    let server = Server::start(&[]);
    // What `aws ec2 describe-instances` sends: awsQuery, scoped to ec2. The refusal comes
    // before any signature check, so the signature itself does not matter here.
    let body = "Action=DescribeInstances&Version=2016-11-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         X-Amz-Date: 20261126T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261126/us-east-1/ec2/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        "0".repeat(64),
        body.len()
    );
    let response = raw(&server, &request);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("does not serve the AWS service &apos;ec2&apos;")
            || response.contains("does not serve the AWS service 'ec2'"),
        "{response}"
    );
    assert!(!response.contains("SignatureDoesNotMatch"), "{response}");
}
