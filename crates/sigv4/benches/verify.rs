//! Cost of verifying one aws-sdk-style JSON POST (the budget is a few microseconds).
//!
//! The request is signed by `aws-sigv4` (what aws-sdk-rust uses) with a session token, so the
//! signed headers are `content-type;host;x-amz-date;x-amz-security-token;x-amz-target` and the
//! body is a ~100-byte JSON document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use criterion::{Criterion, criterion_group, criterion_main};
use time::OffsetDateTime;
use tresor_sigv4::{HttpRequest, SigningKeyCache, derive_signing_key, parse, verify};

const ACCESS_KEY_ID: &str = "ASIAEXAMPLEEXAMPLE12";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampleexampleexampleexampleexampleexampleexampleexampleexample==";
const UNIX_SECONDS: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn signed_request() -> http::Request<Vec<u8>> {
    let body = br#"{"SecretId":"arn:aws:secretsmanager:us-east-1:123456789012:secret:ci/agent-token-AbCdEf"}"#.to_vec();
    let uri = "https://secretsmanager.us-east-1.amazonaws.com/";
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("host", "secretsmanager.us-east-1.amazonaws.com"),
        ("x-amz-target", "secretsmanager.GetSecretValue"),
        ("user-agent", "aws-sdk-rust/1.3.0 os/linux lang/rust/1.95.0"),
    ];
    let identity =
        Credentials::new(ACCESS_KEY_ID, SECRET, Some(TOKEN.to_owned()), None, "bench").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("secretsmanager")
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(UNIX_SECONDS))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable =
        SignableRequest::new("POST", uri, headers.into_iter(), SignableBody::Bytes(&body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method("POST").uri(uri);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut request = request.body(body).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request
}

fn benches(c: &mut Criterion) {
    let request = signed_request();
    let http = HttpRequest {
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query().unwrap_or_default(),
        headers: request.headers(),
        body: request.body(),
    };
    let now = OffsetDateTime::from_unix_timestamp(UNIX_SECONDS as i64).unwrap();
    let auth = parse(&http).unwrap();
    assert_eq!(
        auth.signed_headers_line(),
        "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
    );
    let cache = SigningKeyCache::default();
    let key = cache.get_or_derive(
        ACCESS_KEY_ID,
        SECRET.as_bytes(),
        &auth.scope_date,
        &auth.region,
        &auth.service,
    );
    verify(&auth, &http, &key, "secretsmanager", now).unwrap();

    c.bench_function("parse_and_verify_cached_key", |b| {
        b.iter(|| {
            let auth = parse(black_box(&http)).unwrap();
            let key = cache.get_or_derive(
                &auth.access_key_id,
                SECRET.as_bytes(),
                &auth.scope_date,
                &auth.region,
                &auth.service,
            );
            verify(&auth, black_box(&http), &key, "secretsmanager", now).unwrap();
        });
    });
    c.bench_function("parse_and_verify_uncached_key", |b| {
        b.iter(|| {
            let auth = parse(black_box(&http)).unwrap();
            let key = derive_signing_key(
                SECRET.as_bytes(),
                &auth.scope_date,
                &auth.region,
                &auth.service,
            );
            verify(&auth, black_box(&http), &key, "secretsmanager", now).unwrap();
        });
    });
    c.bench_function("verify_only", |b| {
        b.iter(|| {
            verify(
                black_box(&auth),
                black_box(&http),
                &key,
                "secretsmanager",
                now,
            )
            .unwrap()
        });
    });
    c.bench_function("parse_only", |b| {
        b.iter(|| parse(black_box(&http)).unwrap())
    });
    c.bench_function("cache_hit_only", |b| {
        b.iter(|| {
            cache.get_or_derive(
                ACCESS_KEY_ID,
                SECRET.as_bytes(),
                "20260101",
                "us-east-1",
                "secretsmanager",
            )
        });
    });
    c.bench_function("derive_signing_key", |b| {
        b.iter(|| {
            derive_signing_key(
                black_box(SECRET.as_bytes()),
                "20260101",
                "us-east-1",
                "secretsmanager",
            )
        });
    });
}

criterion_group!(verify_benches, benches);
criterion_main!(verify_benches);
