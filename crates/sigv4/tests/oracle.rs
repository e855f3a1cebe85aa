//! Differential test against AWS's own signer: requests signed by the `aws-sigv4` crate (what
//! aws-sdk-rust uses) must verify, and must fail with `Mismatch` under any other secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use proptest::prelude::*;
use time::OffsetDateTime;
use tresor_sigv4::{HttpRequest, SigV4Error, SigningKeyCache, derive_signing_key, parse, verify};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[derive(Debug, Clone)]
struct Case {
    service: &'static str,
    target: String,
    region: String,
    host: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    session_token: Option<String>,
    unix_seconds: u64,
    presigned_expires: Option<u64>,
    content_sha256_header: bool,
}

/// Segments with unreserved characters, percent escapes, dots and empty segments, so that
/// path normalization and double encoding are exercised against the SDK.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("/".to_owned()),
        1 => prop::collection::vec(
            prop_oneof![
                "([a-zA-Z0-9_~-]|%[0-9A-F]{2}|%2[fF]){1,6}",
                Just(".".to_owned()),
                Just("..".to_owned()),
                Just(String::new()),
            ],
            1..5,
        )
        .prop_map(|segments| format!("/{}", segments.join("/"))),
    ]
}

/// Escapes of ASCII and of whole UTF-8 sequences only. aws-sigv4 decodes the query lossily
/// (`%A0` alone becomes U+FFFD, re-encoded as `%EF%BF%BD`); tresor keeps the raw byte so that two
/// different queries never share a canonical form. No SDK sends such a query.
fn query_component() -> impl Strategy<Value = String> {
    "([a-zA-Z0-9._~-]|%[2-7][0-9A-F]|%E1%88%B4|%C3%A9){0,6}"
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![
            ("ssm", "AmazonSSM"),
            ("secretsmanager", "secretsmanager"),
            ("kms", "TrentService"),
        ]),
        "[A-Z][a-zA-Z]{2,20}",
        prop::sample::select(vec!["us-east-1", "eu-west-3", "ap-southeast-2", "local-1"]),
        prop::sample::select(vec![
            "localhost:4566",
            "ssm.us-east-1.amazonaws.com",
            "127.0.0.1:8443",
        ]),
        path(),
        prop::collection::vec((query_component(), query_component()), 0..4),
        prop::collection::vec(("x-tresor-[a-z]{1,8}", "[ -~]{0,24}"), 0..4),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::option::of("[A-Za-z0-9+/=]{16,64}"),
        1_500_000_000u64..2_000_000_000,
        prop::option::of(1u64..=604_800),
        any::<bool>(),
    )
        .prop_map(
            |(
                (service, prefix),
                operation,
                region,
                host,
                path,
                query,
                headers,
                body,
                session_token,
                unix_seconds,
                presigned_expires,
                content_sha256_header,
            )| Case {
                service,
                target: format!("{prefix}.{operation}"),
                region: region.to_owned(),
                host: host.to_owned(),
                path,
                query,
                headers,
                body,
                session_token,
                unix_seconds,
                presigned_expires,
                content_sha256_header,
            },
        )
}

/// Signs `case` with aws-sigv4 and returns the request as a server receives it.
fn signed(case: &Case) -> http::Request<Vec<u8>> {
    let mut uri = format!("https://{}{}", case.host, case.path);
    if !case.query.is_empty() {
        let pairs: Vec<String> = case.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        uri = format!("{uri}?{}", pairs.join("&"));
    }
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), case.host.clone()),
        ("content-type".into(), "application/x-amz-json-1.1".into()),
        ("content-length".into(), case.body.len().to_string()),
        ("x-amz-target".into(), case.target.clone()),
        ("user-agent".into(), "aws-sdk-rust/1.0 (unsigned)".into()),
    ];
    headers.extend(case.headers.iter().cloned());

    let mut settings = SigningSettings::default();
    if let Some(seconds) = case.presigned_expires {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(seconds));
    } else if case.content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity = Credentials::new(
        "AKIDEXAMPLE",
        SECRET,
        case.session_token.clone(),
        None,
        "test",
    )
    .into();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(case.unix_seconds);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&case.region)
        .name(case.service)
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        uri.clone(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&case.body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();

    let mut request = http::Request::builder().method("POST").uri(&uri);
    for (k, v) in &headers {
        request = request.header(k, v);
    }
    let mut request = request.body(case.body.clone()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request
}

fn now_of(case: &Case) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(i64::try_from(case.unix_seconds).unwrap()).unwrap()
}

fn verify_with_secret(
    request: &http::Request<Vec<u8>>,
    secret: &str,
    service: &str,
    now: OffsetDateTime,
) -> Result<(), SigV4Error> {
    let http = HttpRequest {
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query().unwrap_or_default(),
        headers: request.headers(),
        body: request.body(),
    };
    let auth = parse(&http)?;
    let key = derive_signing_key(
        secret.as_bytes(),
        &auth.scope_date,
        &auth.region,
        &auth.service,
    );
    verify(&auth, &http, &key, service, now)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn requests_signed_by_aws_sigv4_verify(case in case()) {
        let request = signed(&case);
        let now = now_of(&case);
        prop_assert_eq!(verify_with_secret(&request, SECRET, case.service, now), Ok(()));

        let http = HttpRequest {
            method: request.method().as_str(),
            path: request.uri().path(),
            query: request.uri().query().unwrap_or_default(),
            headers: request.headers(),
            body: request.body(),
        };
        let auth = parse(&http).unwrap();
        prop_assert_eq!(&auth.access_key_id, "AKIDEXAMPLE");
        prop_assert_eq!(&auth.region, &case.region);
        prop_assert_eq!(auth.session_token.as_ref(), case.session_token.as_ref());
        prop_assert_eq!(auth.presigned, case.presigned_expires.is_some());
        // The cached key verifies the same way.
        let cache = SigningKeyCache::new(4);
        let key = cache.get_or_derive("AKIDEXAMPLE", SECRET.as_bytes(), &auth.scope_date, &auth.region, &auth.service);
        prop_assert_eq!(verify(&auth, &http, &key, case.service, now), Ok(()));
    }

    #[test]
    fn requests_signed_with_another_secret_are_a_mismatch(case in case(), flip in 0usize..40) {
        let request = signed(&case);
        let mut other = SECRET.as_bytes().to_vec();
        other[flip] ^= 0x01;
        let other = String::from_utf8(other).unwrap();
        prop_assert_eq!(
            verify_with_secret(&request, &other, case.service, now_of(&case)),
            Err(SigV4Error::Mismatch)
        );
    }
}

#[test]
fn unsigned_payload_is_rejected() {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity = Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test").into();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("ssm")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let body = br#"{"Name":"x"}"#.to_vec();
    let uri = "https://localhost:4566/";
    let signable = SignableRequest::new(
        "POST",
        uri,
        [("host", "localhost:4566")].into_iter(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("host", "localhost:4566")
        .body(body)
        .unwrap();
    instructions.apply_to_request_http1x(&mut request);
    assert_eq!(
        request.headers()["x-amz-content-sha256"].to_str().unwrap(),
        "UNSIGNED-PAYLOAD"
    );
    let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    assert_eq!(
        verify_with_secret(&request, SECRET, "ssm", now),
        Err(SigV4Error::Mismatch)
    );
}
