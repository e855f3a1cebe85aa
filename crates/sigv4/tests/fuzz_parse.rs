//! Fuzz-style robustness tests of the SigV4 parser and verifier, run on stable Rust with
//! proptest: arbitrary and structurally plausible `Authorization` headers, pre-signed query
//! strings, dates, paths and bodies must never panic and must finish in bounded time.
//!
//! A normal `cargo test` runs 2,000 cases per property; `PROPTEST_CASES=200000 cargo test -p
//! tresor-sigv4 --test fuzz_parse` is the long mode (see docs/robustness.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use time::OffsetDateTime;
use tresor_sigv4::{
    HttpRequest, SigningKeyCache, VerifyOptions, canonical_forms, derive_signing_key, parse, verify,
};

/// Per-case wall-time bound: generous for a debug build on a loaded 2-core machine, far below
/// what a pathological (quadratic or exponential) input would take.
const CASE_BUDGET: Duration = Duration::from_secs(5);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Any Unicode text up to `max` characters (cheaper to generate than a `\\PC*` regex).
fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a slow case could take far longer than the suite's budget.
        max_shrink_iters: 256,
        // No regression files: the suite must not write into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Fragments a real or hostile `Authorization` header is made of.
fn auth_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("AWS4-HMAC-SHA256".to_owned()),
        Just("AWS4-HMAC-SHA512".to_owned()),
        Just("Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request".to_owned()),
        Just("Credential=".to_owned()),
        Just("Credential=a/b".to_owned()),
        Just("Credential=//////".to_owned()),
        Just("Credential=AKID/2015083/us-east-1/sts/aws4_request".to_owned()),
        Just("Credential=AKID/99999999/us-east-1/sts/aws4_request".to_owned()),
        Just("SignedHeaders=host;x-amz-date".to_owned()),
        Just("SignedHeaders=".to_owned()),
        Just("SignedHeaders=;;;".to_owned()),
        Just("SignedHeaders=HOST;X-AMZ-DATE;content-type".to_owned()),
        Just(
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".to_owned()
        ),
        Just("Signature=".to_owned()),
        Just("Signature=zz".to_owned()),
        Just("=".to_owned()),
        Just(",".to_owned()),
        Just(" ".to_owned()),
        Just("\t".to_owned()),
        "[ -~]{0,40}",
        any_text(20),
        // A very long token: the header must not be scanned quadratically. (Built by
        // repetition: generating it character by character would dominate the run time.)
        (
            1000usize..5000,
            prop::sample::select(vec!["a", "=", "/", ";", ",", "a=b"])
        )
            .prop_map(|(n, unit)| unit.repeat(n)),
    ]
}

fn authorization() -> impl Strategy<Value = String> {
    prop::collection::vec(auth_fragment(), 0..12).prop_map(|parts| {
        let mut out = String::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                out.push_str(if i % 3 == 0 { ", " } else { " " });
            }
            out.push_str(p);
        }
        out
    })
}

fn date_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("20150830T123600Z".to_owned()),
        Just("20150830T123600".to_owned()),
        Just("99999999T999999Z".to_owned()),
        Just("00000000T000000Z".to_owned()),
        Just("Sun, 30 Aug 2015 12:36:00 GMT".to_owned()),
        Just("".to_owned()),
        "[0-9TZ]{0,20}",
        "[ -~]{0,40}",
    ]
}

/// Query-string fragments: pre-signing parameters (valid, hostile, repeated) and noise.
fn query_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("X-Amz-Algorithm=AWS4-HMAC-SHA256".to_owned()),
        Just("X-Amz-Algorithm=".to_owned()),
        Just(
            "X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request"
                .to_owned()
        ),
        Just("X-Amz-Credential=%2F%2F%2F%2F".to_owned()),
        Just("X-Amz-Date=20150830T123600Z".to_owned()),
        Just("X-Amz-Expires=86400".to_owned()),
        Just("X-Amz-Expires=-1".to_owned()),
        Just("X-Amz-Expires=99999999999999999999999".to_owned()),
        Just("X-Amz-SignedHeaders=host".to_owned()),
        Just(
            "X-Amz-Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .to_owned()
        ),
        Just("X-Amz-Security-Token=tok".to_owned()),
        Just("Action=GetCallerIdentity".to_owned()),
        Just("%".to_owned()),
        Just("%zz".to_owned()),
        Just("%C3%28".to_owned()),
        Just("=".to_owned()),
        Just("&".to_owned()),
        "[ -~]{0,30}",
        "[A-Za-z0-9%=&+.-]{0,60}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(query_fragment(), 0..10).prop_map(|parts| parts.join("&"))
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just("".to_owned()),
        Just("//".to_owned()),
        Just("/./../a/../../b/%2F%252F".to_owned()),
        Just("/%".to_owned()),
        "/[ -~]{0,60}",
        "(/\\.\\.){0,200}",
    ]
}

/// Arbitrary extra headers (names must be valid HTTP tokens; values any visible bytes).
fn extra_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop_oneof![
        Just("host".to_owned()),
        Just("x-amz-date".to_owned()),
        Just("date".to_owned()),
        Just("x-amz-security-token".to_owned()),
        Just("x-amz-content-sha256".to_owned()),
        Just("authorization".to_owned()),
        Just("content-type".to_owned()),
        "[a-z][a-z0-9-]{0,15}",
    ];
    let value = prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..40),
    ];
    prop::collection::vec((name, value), 0..6)
}

struct Input {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn build(
    method: String,
    path: String,
    query: String,
    authorization: Option<Vec<u8>>,
    date: Option<String>,
    extra: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
) -> Input {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    if let Some(a) = authorization
        && let Ok(v) = HeaderValue::from_bytes(&a)
    {
        headers.append(http::header::AUTHORIZATION, v);
    }
    if let Some(d) = date
        && let Ok(v) = HeaderValue::from_str(&d)
    {
        headers.append("x-amz-date", v);
    }
    for (name, value) in extra {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(n, v);
        }
    }
    Input {
        method,
        path,
        query,
        headers,
        body,
    }
}

/// Runs the parser, then (when it accepts) the canonicalizer and verifier, as the server does.
fn exercise(input: &Input) {
    let started = Instant::now();
    let req = HttpRequest {
        method: &input.method,
        path: &input.path,
        query: &input.query,
        headers: &input.headers,
        body: &input.body,
    };
    match parse(&req) {
        Ok(auth) => {
            // Whatever a parsed request holds must be safe to print.
            let _ = format!("{auth:?}");
            let _ = canonical_forms(&auth, &req, &VerifyOptions::default());
            let key = derive_signing_key(b"secret", &auth.scope_date, &auth.region, &auth.service);
            let cache = SigningKeyCache::new(4);
            let _ = cache.get_or_derive(
                &auth.access_key_id,
                b"secret",
                &auth.scope_date,
                &auth.region,
                &auth.service,
            );
            for now in [auth.request_time, OffsetDateTime::UNIX_EPOCH] {
                if let Err(e) = verify(&auth, &req, &key, &auth.service, now) {
                    let _ = e.to_string();
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let took = started.elapsed();
    assert!(took < CASE_BUDGET, "one request took {took:?}");
}

proptest! {
    #![proptest_config(config())]

    /// Structurally plausible header-signed requests.
    #[test]
    fn header_auth_never_panics(
        method in prop_oneof![Just("POST".to_owned()), Just("GET".to_owned()), "[A-Z]{0,8}"],
        path in path(),
        query in query(),
        authorization in authorization(),
        date in prop::option::of(date_value()),
        extra in extra_headers(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        exercise(&build(method, path, query, Some(authorization.into_bytes()), date, extra, body));
    }

    /// Pre-signed (query-string) requests without an Authorization header.
    #[test]
    fn presigned_never_panics(
        path in path(),
        query in query(),
        date in prop::option::of(date_value()),
        extra in extra_headers(),
    ) {
        exercise(&build("GET".to_owned(), path, query, None, date, extra, Vec::new()));
    }

    /// Arbitrary bytes wherever the wire allows bytes.
    #[test]
    fn arbitrary_bytes_never_panic(
        authorization in prop::option::of(prop::collection::vec(any::<u8>(), 0..512)),
        query in prop::collection::vec(any::<u8>(), 0..512),
        path in prop::collection::vec(any::<u8>(), 0..128),
        date in prop::option::of(any_text(40)),
        extra in extra_headers(),
    ) {
        let query = String::from_utf8_lossy(&query).into_owned();
        let path = String::from_utf8_lossy(&path).into_owned();
        exercise(&build("POST".to_owned(), path, query, authorization, date, extra, Vec::new()));
    }
}

/// A handful of hand-picked extremes the generators reach only rarely.
#[test]
fn extreme_inputs_are_bounded() {
    let huge_token = "a".repeat(1 << 20);
    let many_commas = ",".repeat(1 << 20);
    let many_headers = (0..10_000)
        .map(|i| format!("h{i}"))
        .collect::<Vec<_>>()
        .join(";");
    let many_params = (0..20_000)
        .map(|i| format!("X-Amz-P{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    let auths = [
        format!("AWS4-HMAC-SHA256 {huge_token}"),
        format!("AWS4-HMAC-SHA256 {many_commas}"),
        format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sts/aws4_request, SignedHeaders={many_headers}, Signature=00"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={huge_token}/20150830/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00"
        ),
    ];
    for auth in auths {
        exercise(&build(
            "POST".to_owned(),
            "/".to_owned(),
            String::new(),
            Some(auth.into_bytes()),
            Some("20150830T123600Z".to_owned()),
            Vec::new(),
            Vec::new(),
        ));
    }
    exercise(&build(
        "GET".to_owned(),
        "/".to_owned(),
        format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&{many_params}&X-Amz-Signature=00"),
        None,
        None,
        Vec::new(),
        Vec::new(),
    ));
}
