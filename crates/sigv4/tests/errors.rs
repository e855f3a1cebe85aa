//! Error paths: which kind each malformed, stale or wrong request gets, with AWS's messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{OwnedRequest, load_cases, parse_raw_request};
use http::HeaderMap;
use ring::{digest, hmac};
use time::{Duration, OffsetDateTime};
use tresor_sigv4::{HttpRequest, SigV4Error, derive_signing_key, parse, verify};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const VANILLA_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

fn vector(name: &str, form: &str) -> OwnedRequest {
    let case = load_cases().into_iter().find(|c| c.name == name).unwrap();
    parse_raw_request(&case.read(&format!("{form}-signed-request.txt")))
}

fn vector_time() -> OffsetDateTime {
    time::macros::datetime!(2015-08-30 12:36:00 UTC)
}

fn outcome(req: &OwnedRequest, service: &str, now: OffsetDateTime) -> Result<(), SigV4Error> {
    req.with(|http| {
        let auth = parse(http)?;
        let key = derive_signing_key(
            SECRET.as_bytes(),
            &auth.scope_date,
            &auth.region,
            &auth.service,
        );
        verify(&auth, http, &key, service, now)
    })
}

fn parse_headers(
    headers: &[(&str, &str)],
    query: &str,
) -> Result<tresor_sigv4::ParsedAuth, SigV4Error> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    parse(&HttpRequest {
        method: "POST",
        path: "/",
        query,
        headers: &map,
        body: b"",
    })
}

fn incomplete(result: Result<tresor_sigv4::ParsedAuth, SigV4Error>) -> String {
    match result {
        Err(SigV4Error::Incomplete(message)) => message,
        other => panic!("expected Incomplete, got {other:?}"),
    }
}

#[test]
fn no_credentials_at_all_is_missing() {
    assert_eq!(
        parse_headers(&[("host", "h")], "").unwrap_err(),
        SigV4Error::Missing
    );
    assert_eq!(
        parse_headers(
            &[("host", "h")],
            "Action=GetCallerIdentity&X-Amz-Date=20150830T123600Z"
        )
        .unwrap_err(),
        SigV4Error::Missing
    );
    assert_eq!(
        SigV4Error::Missing.message(),
        "Missing Authentication Token"
    );
}

#[test]
fn missing_parameters_are_listed_with_the_header() {
    let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date";
    let message = incomplete(parse_headers(
        &[
            ("authorization", header),
            ("x-amz-date", "20150830T123600Z"),
        ],
        "",
    ));
    assert_eq!(
        message,
        format!("Authorization header requires 'Signature' parameter. Authorization={header}")
    );
    // A bearer token sent to a SigV4 endpoint: every part is missing (API Gateway's reply, observed behavior).
    let message = incomplete(parse_headers(
        &[("authorization", "eyJhbGciOi.eyJzdWIi.sig")],
        "",
    ));
    assert_eq!(
        message,
        "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=eyJhbGciOi.eyJzdWIi.sig"
    );
}

#[test]
fn token_without_equal_sign_is_reported_verbatim() {
    let header = "AWS4-HMAC-SHA256 Credential= AKIDEXAMPLE/20181128/eu-central-1/cloud9/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
    assert_eq!(
        incomplete(parse_headers(
            &[
                ("authorization", header),
                ("x-amz-date", "20181128T000000Z")
            ],
            ""
        )),
        format!(
            "'AKIDEXAMPLE/20181128/eu-central-1/cloud9/aws4_request' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'."
        )
    );
    assert_eq!(
        incomplete(parse_headers(&[("authorization", "Bearer abc.def")], "")),
        "'abc.def' not a valid key=value pair (missing equal-sign) in Authorization header: 'Bearer abc.def'."
    );
}

#[test]
fn malformed_headers_are_incomplete() {
    let date = ("x-amz-date", "20150830T123600Z");
    let cases: [(&str, &str); 6] = [
        (
            "AWS4-HMAC-SHA512 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=00",
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/aws4_request, SignedHeaders=host, Signature=00",
            "The Credential is mal-formed",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=x-amz-date, Signature=00",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host;;x-amz-date, Signature=00",
            "Invalid SignedHeaders",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=00",
            "Authorization header requires 'Credential' parameter.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830//service/aws4_request, SignedHeaders=host, Signature=00",
            "Credential should be scoped to a valid region, not ''. ",
        ),
    ];
    for (header, expected) in cases {
        let message = incomplete(parse_headers(&[("authorization", header), date], ""));
        assert!(message.starts_with(expected), "{header}: {message}");
    }
    assert_eq!(
        incomplete(parse_headers(
            &[
                ("authorization", VANILLA_AUTH),
                ("x-amz-date", "2015-08-30T12:36:00Z")
            ],
            ""
        )),
        "Date must be in ISO-8601 'basic format'. Got '2015-08-30T12:36:00Z'. See http://en.wikipedia.org/wiki/ISO_8601"
    );
    assert!(
        incomplete(parse_headers(
            &[("authorization", VANILLA_AUTH), ("date", "yesterday")],
            ""
        ))
        .contains("'yesterday'")
    );
    assert!(
        incomplete(parse_headers(
            &[("authorization", VANILLA_AUTH), date],
            "X-Amz-Signature=00&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        ))
        .starts_with("Only one auth mechanism allowed")
    );
    assert!(
        incomplete(parse_headers(
            &[
                ("authorization", VANILLA_AUTH),
                ("authorization", VANILLA_AUTH),
                date
            ],
            ""
        ))
        .contains("Only one Authorization header")
    );
}

#[test]
fn malformed_presigned_queries_are_incomplete() {
    let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
    let host = [("host", "example.amazonaws.com")];
    assert_eq!(
        incomplete(parse_headers(&host, base)),
        "AWS query-string parameters must include 'X-Amz-Expires'. Re-examine the query-string parameters."
    );
    assert_eq!(
        incomplete(parse_headers(&host, "X-Amz-Signature=00&X-Amz-Expires=60")),
        "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-SignedHeaders'. Re-examine the query-string parameters."
    );
    for (expires, expected) in [
        ("0", "X-Amz-Expires must be greater than 0"),
        ("-5", "X-Amz-Expires must be greater than 0"),
        (
            "604801",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ),
        ("soon", "X-Amz-Expires should be a number"),
    ] {
        assert_eq!(
            incomplete(parse_headers(
                &host,
                &format!("{base}&X-Amz-Expires={expires}")
            )),
            expected
        );
    }
    assert!(parse_headers(&host, &format!("{base}&X-Amz-Expires=604800")).is_ok());
    assert!(parse_headers(&host, &format!("{base}&X-Amz-Expires=1")).is_ok());
    assert_eq!(
        incomplete(parse_headers(
            &host,
            &format!("{}&X-Amz-Expires=60", base.replace("SHA256", "SHA1"))
        )),
        "X-Amz-Algorithm only supports 'AWS4-HMAC-SHA256'"
    );
    assert!(
        incomplete(parse_headers(
            &host,
            &format!("{base}&X-Amz-Expires=60&X-Amz-Date=20150830T123600Z")
        ))
        .starts_with("Duplicate query parameter 'X-Amz-Date'")
    );
}

#[test]
fn clock_skew_beyond_five_minutes_is_rejected_with_aws_text() {
    let req = vector("get-vanilla", "header");
    let t = vector_time();
    // Exactly five minutes either way is still accepted.
    assert_eq!(outcome(&req, "service", t + Duration::minutes(5)), Ok(()));
    assert_eq!(outcome(&req, "service", t - Duration::minutes(5)), Ok(()));
    assert_eq!(
        outcome(&req, "service", t + Duration::minutes(5) + Duration::seconds(1)),
        Err(SigV4Error::Skew(
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)"
                .to_owned()
        ))
    );
    assert_eq!(
        outcome(&req, "service", t - Duration::minutes(5) - Duration::seconds(1)),
        Err(SigV4Error::Skew(
            "Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z (20150830T123059Z + 5 min.)"
                .to_owned()
        ))
    );
    // Sub-second parts of the server clock do not move the boundary.
    assert_eq!(
        outcome(
            &req,
            "service",
            t + Duration::minutes(5) + Duration::milliseconds(999)
        ),
        Ok(())
    );
}

#[test]
fn skew_is_checked_before_scope_and_signature() {
    let mut req = vector("get-vanilla", "header");
    for (name, value) in &mut req.headers {
        if name == "Authorization" {
            *value = String::from_utf8(value.clone())
                .unwrap()
                .replace("Signature=5", "Signature=6")
                .into_bytes();
        }
    }
    let late = vector_time() + Duration::hours(1);
    assert!(matches!(
        outcome(&req, "ssm", late),
        Err(SigV4Error::Skew(_))
    ));
    assert!(matches!(
        outcome(&req, "ssm", vector_time()),
        Err(SigV4Error::Scope(_))
    ));
    assert_eq!(
        outcome(&req, "service", vector_time()),
        Err(SigV4Error::Mismatch)
    );
}

#[test]
fn wrong_service_in_scope_is_a_scope_error() {
    let req = vector("get-vanilla", "header");
    let result = outcome(&req, "ssm", vector_time());
    assert_eq!(
        result,
        Err(SigV4Error::Scope(
            "Credential should be scoped to correct service: 'ssm'. ".to_owned()
        ))
    );
}

#[test]
fn scope_date_must_equal_request_date() {
    let mut req = vector("get-vanilla", "header");
    for (name, value) in &mut req.headers {
        if name == "Authorization" {
            *value = String::from_utf8(value.clone())
                .unwrap()
                .replace("/20150830/", "/20150831/")
                .into_bytes();
        }
    }
    assert_eq!(
        outcome(&req, "service", vector_time()),
        Err(SigV4Error::Scope(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150831' != '20150830', from '20150830T123600Z'."
                .to_owned()
        ))
    );
}

#[test]
fn presigned_url_expires_after_x_amz_expires() {
    let req = vector("get-vanilla", "query"); // X-Amz-Expires=3600
    let t = vector_time();
    assert_eq!(
        outcome(&req, "service", t + Duration::seconds(3600)),
        Ok(())
    );
    assert_eq!(
        outcome(&req, "service", t + Duration::seconds(3601)),
        Err(SigV4Error::PresignedExpired)
    );
    assert_eq!(
        SigV4Error::PresignedExpired.message(),
        "Request has expired"
    );
    assert!(matches!(
        outcome(&req, "service", t - Duration::minutes(6)),
        Err(SigV4Error::Skew(m)) if m.starts_with("Signature not yet current")
    ));
}

#[test]
fn absent_signed_header_is_a_mismatch() {
    let mut req = vector("get-header-key-duplicate", "header");
    req.headers.retain(|(name, _)| name != "My-Header1");
    assert_eq!(
        outcome(&req, "service", vector_time()),
        Err(SigV4Error::Mismatch)
    );
    assert_eq!(
        SigV4Error::Mismatch.message(),
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    );
}

#[test]
fn content_sha256_header_must_match_the_body() {
    let mut req = vector("post-x-www-form-urlencoded", "header");
    assert_eq!(outcome(&req, "service", vector_time()), Ok(()));
    req.body = b"Param1=value2".to_vec();
    assert_eq!(
        outcome(&req, "service", vector_time()),
        Err(SigV4Error::Mismatch)
    );
}

#[test]
fn date_header_is_used_without_x_amz_date() {
    // Signed independently of the crate: the canonical request written out by hand, the
    // string to sign carrying the ISO form of the `Date` header's time (botocore).
    let canonical = "GET\n/\nAction=ListUsers&Version=2010-05-08\ndate:Sun, 30 Aug 2015 12:36:00 GMT\nhost:iam.amazonaws.com\n\ndate;host\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let hash = hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n{hash}");
    let mut key = format!("AWS4{SECRET}").into_bytes();
    for part in ["20150830", "us-east-1", "iam", "aws4_request"] {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes())
            .as_ref()
            .to_vec();
    }
    let signature = hex::encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        string_to_sign.as_bytes(),
    ));
    let req = OwnedRequest {
        method: "GET".into(),
        path: "/".into(),
        query: "Version=2010-05-08&Action=ListUsers".into(),
        headers: vec![
            ("Host".into(), b"iam.amazonaws.com".to_vec()),
            ("Date".into(), b"Sun, 30 Aug 2015 12:36:00 GMT".to_vec()),
            (
                "Authorization".into(),
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=date;host, Signature={signature}").into_bytes(),
            ),
        ],
        body: Vec::new(),
    };
    let auth = req.with(parse).unwrap();
    assert_eq!(auth.request_time, vector_time());
    assert_eq!(auth.amz_date(), "20150830T123600Z");
    assert_eq!(outcome(&req, "iam", vector_time()), Ok(()));
    assert!(matches!(
        outcome(&req, "iam", vector_time() + Duration::minutes(6)),
        Err(SigV4Error::Skew(_))
    ));
}

#[test]
fn session_token_comes_from_header_or_query() {
    let header = vector("get-vanilla-with-session-token", "header");
    let query = vector("get-vanilla-with-session-token", "query");
    for req in [header, query] {
        let auth = req.with(parse).unwrap();
        assert_eq!(
            auth.session_token.as_deref(),
            Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267")
        );
        assert!(!format!("{auth:?}").contains("6e86291e"));
    }
}

#[test]
fn messages_never_contain_the_computed_signature() {
    // Tamper the signature; the error must not reveal the right one (5fa00fa3…).
    let mut req = vector("get-vanilla", "header");
    for (name, value) in &mut req.headers {
        if name == "Authorization" {
            *value = String::from_utf8(value.clone())
                .unwrap()
                .replace("Signature=5fa00fa3", "Signature=00000000")
                .into_bytes();
        }
    }
    let error = outcome(&req, "service", vector_time()).unwrap_err();
    assert_eq!(error, SigV4Error::Mismatch);
    assert!(!error.message().contains("5fa00fa3"));
    assert!(!format!("{error:?}").contains("5fa00fa3"));
}

#[test]
fn hostile_values_fail_cleanly() {
    // A signed header name that is not a valid header name, and a pre-signed URL dated at the
    // end of year 9999 (expiry arithmetic must not overflow).
    let mut req = vector("get-vanilla", "header");
    for (name, value) in &mut req.headers {
        if name == "Authorization" {
            *value = String::from_utf8(value.clone())
                .unwrap()
                .replace(
                    "SignedHeaders=host;x-amz-date",
                    "SignedHeaders=host;x-amz-date;b@d",
                )
                .into_bytes();
        }
    }
    assert_eq!(
        outcome(&req, "service", vector_time()),
        Err(SigV4Error::Mismatch)
    );

    let mut req = vector("get-vanilla", "query");
    req.query = req
        .query
        .replace("20150830T123600Z", "99991231T235959Z")
        .replace("%2F20150830%2F", "%2F99991231%2F")
        .replace("X-Amz-Expires=3600", "X-Amz-Expires=604800");
    assert!(matches!(
        outcome(&req, "service", vector_time()),
        Err(SigV4Error::Skew(_))
    ));
}
