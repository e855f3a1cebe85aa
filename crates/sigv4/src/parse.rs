//! Phase 1 of authentication: find the SigV4 credentials in a request, syntax only.
//!
//! This module owns reading the `Authorization` header or the pre-signed query parameters
//! (IAM User Guide, "Elements of an AWS API request signature"; the `X-Amz-*` query parameters
//! of the AWS STS API Reference's "Common Parameters") into a [`ParsedAuth`], with AWS's
//! `IncompleteSignature` messages. It needs no secret and must not judge validity beyond syntax:
//! key lookup, session tokens, clock skew, scope and the signature itself belong to the server
//! and to `verify`.

use std::fmt;

use http::header::{AUTHORIZATION, DATE};
use time::OffsetDateTime;

use crate::query::query_pairs;
use crate::time_format::{format_amz_date, parse_amz_date, parse_http_date};
use crate::{HttpRequest, SigV4Error};

/// The only algorithm tresor accepts.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The credential scope's fixed last element.
pub(crate) const SCOPE_TERMINATOR: &str = "aws4_request";
/// Longest lifetime of a pre-signed URL: seven days ("Common Parameters", AWS STS API
/// Reference: `X-Amz-Expires`).
pub const MAX_PRESIGNED_EXPIRES_SECONDS: u32 = 604_800;

pub(crate) const X_AMZ_ALGORITHM: &str = "X-Amz-Algorithm";
pub(crate) const X_AMZ_CREDENTIAL: &str = "X-Amz-Credential";
pub(crate) const X_AMZ_DATE: &str = "X-Amz-Date";
pub(crate) const X_AMZ_EXPIRES: &str = "X-Amz-Expires";
pub(crate) const X_AMZ_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
pub(crate) const X_AMZ_SIGNATURE: &str = "X-Amz-Signature";
pub(crate) const X_AMZ_SECURITY_TOKEN: &str = "X-Amz-Security-Token";

/// The SigV4 data of a request after syntax checks.
///
/// The public fields are what the server needs to look up the caller; the rest only feeds
/// [`crate::verify`]. `Debug` leaves out the session token and the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    /// The access key id from the credential (`AKIA…`, `ASIA…`).
    pub access_key_id: String,
    /// The scope's date, `YYYYMMDD`, as sent.
    pub scope_date: String,
    /// The scope's region, as sent; the request's region.
    pub region: String,
    /// The scope's service name, as sent.
    pub service: String,
    /// The request time from `X-Amz-Date` (or the `Date` header).
    pub request_time: OffsetDateTime,
    /// `X-Amz-Security-Token` from the header (header auth) or the query (pre-signed).
    pub session_token: Option<String>,
    /// Whether the credentials came from the query string.
    pub presigned: bool,
    scope_terminator: String,
    credential_scope: String,
    signed_headers_line: String,
    signature: String,
    expires_seconds: Option<u32>,
    amz_date: String,
}

impl fmt::Debug for ParsedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedAuth")
            .field("access_key_id", &self.access_key_id)
            .field("credential_scope", &self.credential_scope)
            .field("request_time", &self.amz_date)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("presigned", &self.presigned)
            .field("signed_headers", &self.signed_headers_line)
            .field("expires_seconds", &self.expires_seconds)
            .finish_non_exhaustive()
    }
}

impl ParsedAuth {
    /// The signed header names, in the client's order (none is empty: checked when parsed).
    pub fn signed_headers(&self) -> std::str::Split<'_, char> {
        self.signed_headers_line.split(';')
    }

    /// The `SignedHeaders` value exactly as the client sent it.
    pub fn signed_headers_line(&self) -> &str {
        &self.signed_headers_line
    }

    /// `<date>/<region>/<service>/<terminator>`, the third line of the string to sign.
    pub fn credential_scope(&self) -> &str {
        &self.credential_scope
    }

    /// The scope's last element (must be `aws4_request`; checked by `verify`).
    pub fn scope_terminator(&self) -> &str {
        &self.scope_terminator
    }

    /// The request time in `YYYYMMDD'T'HHMMSS'Z'` form, as it enters the string to sign.
    pub fn amz_date(&self) -> &str {
        &self.amz_date
    }

    /// `X-Amz-Expires` of a pre-signed request.
    pub fn expires_seconds(&self) -> Option<u32> {
        self.expires_seconds
    }

    pub(crate) fn signature(&self) -> &str {
        &self.signature
    }
}

/// Finds and syntax-checks the SigV4 credentials of `req` (phase 1; no secret needed).
///
/// - No `Authorization` header and no `X-Amz-Algorithm`/`X-Amz-Signature` query parameter →
///   [`SigV4Error::Missing`].
/// - Both forms at once, or a malformed one → [`SigV4Error::Incomplete`] with AWS's message.
pub fn parse(req: &HttpRequest<'_>) -> Result<ParsedAuth, SigV4Error> {
    let mut authorization = req.headers.get_all(AUTHORIZATION).iter();
    let header = authorization.next();
    let presigned = has_presigned_parameters(req.query);
    match header {
        Some(_) if presigned => Err(SigV4Error::Incomplete(
            // S3's wording for the same conflict (observed behavior); other services'
            // wording is unconfirmed.
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified"
                .to_owned(),
        )),
        Some(_) if authorization.next().is_some() => Err(SigV4Error::Incomplete(
            "Only one Authorization header is allowed.".to_owned(), // unconfirmed wording
        )),
        Some(value) => parse_authorization_header(&lossy_text(value.as_bytes()), req.headers),
        None if presigned => parse_presigned(req),
        None => Err(SigV4Error::Missing),
    }
}

fn has_presigned_parameters(query: &str) -> bool {
    // Cheap pre-filter: the JSON protocols post with an empty query.
    query.contains("X-Amz-")
        && query_pairs(query).any(|(name, _)| {
            name.as_ref() == X_AMZ_ALGORITHM.as_bytes()
                || name.as_ref() == X_AMZ_SIGNATURE.as_bytes()
        })
}

/// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` ("Elements
/// of an AWS API request signature", IAM User Guide).
///
/// AWS splits everything after the algorithm on commas and whitespace and reports the first
/// token without `=` (observed behavior):
/// `'<AKID>/20181128/eu-central-1/cloud9/aws4_request' not a valid
/// key=value pair (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 Credential=
/// <AKID>/…'.` Missing parameters are all listed, followed by `Authorization=<header>` (observed
/// behavior).
fn parse_authorization_header(
    header: &str,
    headers: &http::HeaderMap,
) -> Result<ParsedAuth, SigV4Error> {
    let trimmed = header.trim();
    let (algorithm, rest) = trimmed
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((trimmed, ""));

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for token in rest
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|token| !token.is_empty())
    {
        let Some((key, value)) = token.split_once('=') else {
            return Err(SigV4Error::Incomplete(format!(
                "'{token}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'."
            )));
        };
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        slot.get_or_insert(value);
    }

    let amz_date = headers.get(crate::X_AMZ_DATE_HEADER);
    let date = headers.get(DATE);
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed_headers.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    if amz_date.is_none() && date.is_none() {
        missing.push(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), true) =
        (credential, signed_headers, signature, missing.is_empty())
    else {
        return Err(SigV4Error::Incomplete(format!(
            "{} Authorization={header}",
            missing.join(" ")
        )));
    };

    if algorithm != ALGORITHM {
        // AWS's text for this case is not public; this names what is accepted (unconfirmed).
        return Err(SigV4Error::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'. Only '{ALGORITHM}' is supported."
        )));
    }

    let (request_time, amz_date) = match (amz_date, date) {
        (Some(value), _) => {
            let text = lossy_text(value.as_bytes());
            let time = parse_amz_date(&text).ok_or_else(|| bad_amz_date(&text))?;
            (time, text.into_owned())
        }
        (None, Some(value)) => {
            // botocore signs with the ISO form of the `Date` header's time (observed in
            // botocore's signer).
            let text = lossy_text(value.as_bytes());
            let time = parse_http_date(&text).ok_or_else(|| {
                SigV4Error::Incomplete(format!(
                    "Date must be in RFC 1123 format in header 'Date'. Got '{text}'." // unconfirmed
                ))
            })?;
            (time, format_amz_date(time))
        }
        (None, None) => return Err(SigV4Error::Missing), // excluded above
    };

    let session_token = headers
        .get(crate::X_AMZ_SECURITY_TOKEN_HEADER)
        .map(|value| lossy_text(value.as_bytes()).into_owned());

    build(Fields {
        credential,
        signed_headers,
        signature,
        request_time,
        amz_date,
        session_token,
        expires_seconds: None,
    })
}

/// The pre-signed form: every SigV4 parameter in the query string ("Common Parameters",
/// AWS STS API Reference).
fn parse_presigned(req: &HttpRequest<'_>) -> Result<ParsedAuth, SigV4Error> {
    const NAMES: [&str; 7] = [
        X_AMZ_ALGORITHM,
        X_AMZ_CREDENTIAL,
        X_AMZ_SIGNATURE,
        X_AMZ_DATE,
        X_AMZ_SIGNED_HEADERS,
        X_AMZ_EXPIRES,
        X_AMZ_SECURITY_TOKEN,
    ];
    let mut values: [Option<String>; 7] = Default::default();
    for (name, value) in query_pairs(req.query) {
        let Some(index) = NAMES.iter().position(|n| n.as_bytes() == name.as_ref()) else {
            continue;
        };
        if values[index].is_some() {
            // Two values would let the canonical query and our reading of it disagree.
            return Err(SigV4Error::Incomplete(format!(
                "Duplicate query parameter '{}'. Re-examine the query-string parameters.", // unconfirmed
                NAMES[index]
            )));
        }
        values[index] = Some(lossy_text(&value).into_owned());
    }
    let [
        algorithm,
        credential,
        signature,
        date,
        signed_headers,
        expires,
        session_token,
    ] = values;

    let missing: Vec<String> = [
        &algorithm,
        &credential,
        &signature,
        &date,
        &signed_headers,
        &expires,
    ]
    .iter()
    .zip(NAMES)
    .filter(|(value, _)| value.is_none())
    .map(|(_, name)| format!("'{name}'"))
    .collect();
    let (
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(date),
        Some(signed_headers),
        Some(expires),
    ) = (
        algorithm,
        credential,
        signature,
        date,
        signed_headers,
        expires,
    )
    else {
        // AWS's wording for STS and API Gateway pre-signed URLs (unconfirmed).
        return Err(SigV4Error::Incomplete(format!(
            "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
            missing.join(", ")
        )));
    };
    if algorithm != ALGORITHM {
        // S3's message (observed behavior).
        return Err(SigV4Error::Incomplete(format!(
            "X-Amz-Algorithm only supports '{ALGORITHM}'"
        )));
    }
    let request_time = parse_amz_date(&date).ok_or_else(|| bad_amz_date(&date))?;
    let expires_seconds = match expires.parse::<i64>() {
        Ok(seconds) if seconds > i64::from(MAX_PRESIGNED_EXPIRES_SECONDS) => {
            // S3's message (observed behavior).
            return Err(SigV4Error::Incomplete(format!(
                "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES_SECONDS}"
            )));
        }
        Ok(seconds) if seconds >= 1 => u32::try_from(seconds).ok(),
        Ok(_) => {
            return Err(SigV4Error::Incomplete(
                "X-Amz-Expires must be greater than 0".to_owned(), // unconfirmed
            ));
        }
        Err(_) => {
            return Err(SigV4Error::Incomplete(
                "X-Amz-Expires should be a number".to_owned(), // S3's message (observed behavior)
            ));
        }
    };
    build(Fields {
        credential: &credential,
        signed_headers: &signed_headers,
        signature: &signature,
        request_time,
        amz_date: date,
        session_token,
        expires_seconds,
    })
}

fn bad_amz_date(value: &str) -> SigV4Error {
    // AWS's wording (observed behavior; trailing link omitted).
    SigV4Error::Incomplete(format!(
        "Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
    ))
}

struct Fields<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
    request_time: OffsetDateTime,
    amz_date: String,
    session_token: Option<String>,
    expires_seconds: Option<u32>,
}

/// The checks both forms share: the credential's five parts, a non-empty signed-header list that
/// includes `host` ("Create a signed
/// AWS API request", step 1).
fn build(fields: Fields<'_>) -> Result<ParsedAuth, SigV4Error> {
    let mut parts = fields.credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        // S3's wording (observed behavior); the JSON services' text for this case is unconfirmed.
        return Err(SigV4Error::Incomplete(
            "The Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
                .to_owned(),
        ));
    };
    if access_key_id.is_empty() {
        return Err(SigV4Error::Incomplete(
            "Authorization header requires 'Credential' parameter.".to_owned(),
        ));
    }
    if region.is_empty() {
        return Err(SigV4Error::Incomplete(
            "Credential should be scoped to a valid region, not ''. ".to_owned(),
        ));
    }

    let mut signed_headers = fields.signed_headers.split(';');
    if signed_headers.clone().any(str::is_empty) {
        return Err(SigV4Error::Incomplete(format!(
            "Invalid SignedHeaders: '{}'.", // unconfirmed
            fields.signed_headers
        )));
    }
    if !signed_headers.any(|name| name.eq_ignore_ascii_case("host")) {
        // AWS's wording (observed behavior).
        return Err(SigV4Error::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }

    Ok(ParsedAuth {
        access_key_id: access_key_id.to_owned(),
        scope_date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        request_time: fields.request_time,
        session_token: fields.session_token,
        presigned: fields.expires_seconds.is_some(),
        scope_terminator: terminator.to_owned(),
        credential_scope: fields
            .credential
            .split_once('/')
            .map(|(_, scope)| scope.to_owned())
            .unwrap_or_default(),
        signed_headers_line: fields.signed_headers.to_owned(),
        signature: fields.signature.to_owned(),
        expires_seconds: fields.expires_seconds,
        amz_date: fields.amz_date,
    })
}

/// Checks whether `name` is a SigV4 query parameter (the server may want to hide them from the
/// awsQuery decoder).
pub fn is_presign_parameter(name: &str) -> bool {
    [
        X_AMZ_ALGORITHM,
        X_AMZ_CREDENTIAL,
        X_AMZ_DATE,
        X_AMZ_EXPIRES,
        X_AMZ_SIGNED_HEADERS,
        X_AMZ_SIGNATURE,
        X_AMZ_SECURITY_TOKEN,
    ]
    .contains(&name)
}

/// `String::from_utf8_lossy`, checked first with `str::from_utf8`, which validates the (in
/// practice always) ASCII header text word by word instead of in chunks: the same text, in
/// fewer instructions on every request.
fn lossy_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lossy_text_is_from_utf8_lossy() {
        for bytes in [
            &b"AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request"[..],
            b"",
            "caf\u{e9} \u{1f600}".as_bytes(),
            b"bad \xff\xfe byte",
            b"cut \xe2\x82",
        ] {
            assert_eq!(lossy_text(bytes), String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn debug_hides_token_and_signature() {
        let auth = build(Fields {
            credential: "AKID/20150830/us-east-1/service/aws4_request",
            signed_headers: "host",
            signature: "deadbeefsignature",
            request_time: OffsetDateTime::UNIX_EPOCH,
            amz_date: "19700101T000000Z".to_owned(),
            session_token: Some("secret-session-token".to_owned()),
            expires_seconds: None,
        })
        .unwrap();
        let debug = format!("{auth:?}");
        assert!(!debug.contains("secret-session-token"), "{debug}");
        assert!(!debug.contains("deadbeef"), "{debug}");
        assert!(debug.contains("AKID"));
    }
}
