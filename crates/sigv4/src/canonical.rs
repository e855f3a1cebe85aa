//! The canonical request and the string to sign, rebuilt from the request as received (IAM User
//! Guide, "Create a signed AWS API request",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).
//!
//! This module owns the byte-exact SigV4 canonicalization: the URI path (normalized and encoded
//! again for non-S3 services), the sorted query string, the trimmed header block, the payload
//! hash and the string to sign. It must not touch keys or compare signatures (that is
//! `verify`), and it must not trust anything from the request beyond reproducing it: every
//! decision here only changes *which bytes* are hashed, so a wrong choice shows up as a
//! signature mismatch, never as an accepted forgery.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use ring::digest;

use crate::parse::{ALGORITHM, ParsedAuth, X_AMZ_SECURITY_TOKEN, X_AMZ_SIGNATURE};
use crate::query::query_pairs;
use crate::{HttpRequest, SigV4Error};

/// RFC 3986 unreserved characters are kept; everything else is `%XX` with upper-case hex
/// (AWS "UriEncode", "Create a signed AWS API request").
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The same for a path, where `/` separates segments and is kept.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// For S3's single encoding: a wire path is already encoded, so its `%XX` escapes stay as they
/// are; only characters a client could not have sent raw (space in the test vectors) are encoded.
const UNRESERVED_SLASH_AND_PERCENT: &AsciiSet = &UNRESERVED_AND_SLASH.remove(b'%');

/// Hex SHA-256 of the empty body, the payload hash of every GET.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// How the URI path enters the canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UriPathMode {
    /// Every service except S3 (and tresor only serves such services): remove empty and dot
    /// segments, then URI-encode the path *as received* once more, so an `%2F` on the wire is
    /// `%252F` in the canonical request. This is what botocore, aws-sdk-rust and aws-c-auth do
    /// for non-S3 services (observed in their signers).
    #[default]
    NormalizeAndEncodeAgain,
    /// S3's rule: the path is neither normalized nor encoded again (aws-sdk-rust's
    /// `PercentEncodingMode::Single`). Only the test vectors with `"normalize": false` need it.
    AsIsEncodeOnce,
}

/// Options of the verifier beyond what the request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyOptions {
    /// How the URI path is canonicalized; the default is right for every service tresor serves.
    pub uri_path: UriPathMode,
}

/// The canonical request and string to sign as the verifier computes them, for tests and
/// diagnostics.
///
/// Both contain signed header values — possibly an `X-Amz-Security-Token` — so they must not be
/// logged or returned to a caller other than the one who sent the request.
#[derive(Clone, PartialEq, Eq)]
pub struct CanonicalForm {
    /// The canonical request , non-UTF-8 header bytes replaced by U+FFFD.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
}

impl std::fmt::Debug for CanonicalForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // May contain a session token in a signed header; see the type's docs.
        f.write_str("CanonicalForm(..)")
    }
}

/// Which query parameters a pre-signed request's canonical query leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PresignedQuery {
    /// Every parameter except `X-Amz-Signature`: botocore, aws-sdk-rust, STS.
    TokenSigned,
    /// Also without `X-Amz-Security-Token`: clients for AWS IoT append the token after signing
    /// (aws-c-auth `omit_session_token`, vector `post-sts-header-after`). Accepting it is as safe
    /// as an unsigned token header: the server still checks the token belongs to the access key,
    /// and only the holder of that key's secret can sign.
    TokenAppendedAfterSigning,
}

/// Computes the canonical request and string to sign of `req` under `auth`: the first form
/// [`crate::verify_with`] checks.
///
/// Fails with [`SigV4Error::Mismatch`] when a signed header is absent or a signed payload hash
/// does not match the body, exactly as [`crate::verify_with`] would.
pub fn canonical_form(
    auth: &ParsedAuth,
    req: &HttpRequest<'_>,
    options: &VerifyOptions,
) -> Result<CanonicalForm, SigV4Error> {
    canonical_form_for(auth, req, options, PresignedQuery::TokenSigned)
}

/// Every canonical form [`crate::verify_with`] accepts a signature for, in the order it tries
/// them: one, or two for a pre-signed request carrying `X-Amz-Security-Token` (with and without
/// the token in the canonical query).
pub fn canonical_forms(
    auth: &ParsedAuth,
    req: &HttpRequest<'_>,
    options: &VerifyOptions,
) -> Result<Vec<CanonicalForm>, SigV4Error> {
    let mut forms = vec![canonical_form_for(
        auth,
        req,
        options,
        PresignedQuery::TokenSigned,
    )?];
    if auth.presigned && auth.session_token.is_some() {
        forms.push(canonical_form_for(
            auth,
            req,
            options,
            PresignedQuery::TokenAppendedAfterSigning,
        )?);
    }
    Ok(forms)
}

fn canonical_form_for(
    auth: &ParsedAuth,
    req: &HttpRequest<'_>,
    options: &VerifyOptions,
    presigned_query: PresignedQuery,
) -> Result<CanonicalForm, SigV4Error> {
    let canonical_request = canonical_request(auth, req, options, presigned_query)?;
    let string_to_sign = string_to_sign(auth, &canonical_request);
    Ok(CanonicalForm {
        canonical_request: String::from_utf8_lossy(&canonical_request).into_owned(),
        string_to_sign: String::from_utf8_lossy(&string_to_sign).into_owned(),
    })
}

/// Builds the canonical request bytes ("Create a signed AWS API request", step 1). Bytes, not a
/// `String`: header values may
/// carry obs-text (bytes ≥ 0x80) that the client signed as they were.
pub(crate) fn canonical_request(
    auth: &ParsedAuth,
    req: &HttpRequest<'_>,
    options: &VerifyOptions,
    presigned_query: PresignedQuery,
) -> Result<Vec<u8>, SigV4Error> {
    let mut out = Vec::with_capacity(
        256 + req.path.len() + req.query.len() + 64 * auth.signed_headers().count(),
    );
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    push_canonical_uri(req.path, options.uri_path, &mut out);
    out.push(b'\n');
    let excluded: &[&str] = match (auth.presigned, presigned_query) {
        (false, _) => &[],
        (true, PresignedQuery::TokenSigned) => &[X_AMZ_SIGNATURE],
        (true, PresignedQuery::TokenAppendedAfterSigning) => {
            &[X_AMZ_SIGNATURE, X_AMZ_SECURITY_TOKEN]
        }
    };
    push_canonical_query(req.query, excluded, &mut out);
    out.push(b'\n');
    push_canonical_headers(req.headers, auth.signed_headers(), &mut out)?;
    out.push(b'\n');
    out.extend_from_slice(auth.signed_headers_line().as_bytes());
    out.push(b'\n');
    push_payload_hash(req, &mut out)?;
    Ok(out)
}

/// `AWS4-HMAC-SHA256 \n <time> \n <scope> \n hex(sha256(canonical request))` ("Create a
/// signed AWS API request", step 2).
pub(crate) fn string_to_sign(auth: &ParsedAuth, canonical_request: &[u8]) -> Vec<u8> {
    let hash = digest::digest(&digest::SHA256, canonical_request);
    let mut out = Vec::with_capacity(ALGORITHM.len() + 16 + auth.credential_scope().len() + 68);
    out.extend_from_slice(ALGORITHM.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(auth.amz_date().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(auth.credential_scope().as_bytes());
    out.push(b'\n');
    push_hex(hash.as_ref(), &mut out);
    out
}

fn push_hex(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

fn push_canonical_uri(path: &str, mode: UriPathMode, out: &mut Vec<u8>) {
    match mode {
        UriPathMode::NormalizeAndEncodeAgain => {
            let normalized = normalize_path(path);
            out.extend(
                percent_encode(normalized.as_bytes(), UNRESERVED_AND_SLASH).flat_map(str::bytes),
            );
        }
        UriPathMode::AsIsEncodeOnce => {
            let path = if path.is_empty() { "/" } else { path };
            out.extend(
                percent_encode(path.as_bytes(), UNRESERVED_SLASH_AND_PERCENT).flat_map(str::bytes),
            );
        }
    }
}

/// Removes empty and `.` segments and resolves `..`, keeping a trailing slash, as aws-sdk-rust
/// and aws-c-auth do for non-S3 services (vectors `get-slashes-normalized`,
/// `get-relative-relative-normalized`, …).
pub(crate) fn normalize_path(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    if path.starts_with('/') && !path.contains("//") && !path.contains('.') {
        return Cow::Borrowed(path);
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut result = String::with_capacity(path.len() + 1);
    for segment in &segments {
        result.push('/');
        result.push_str(segment);
    }
    let ends_with_slash = ["/", "/.", "/..", "/./", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if result.is_empty() || (ends_with_slash && !result.ends_with('/')) {
        result.push('/');
    }
    Cow::Owned(result)
}

/// Every parameter, decoded then encoded again with the unreserved set, sorted by name then
/// value, `name=value` joined by `&`; for a pre-signed request every parameter except
/// `X-Amz-Signature` ("Create a signed AWS API request", step 1).
fn push_canonical_query(query: &str, excluded: &[&str], out: &mut Vec<u8>) {
    if query.is_empty() {
        return;
    }
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .filter(|(name, _)| !excluded.iter().any(|e| e.as_bytes() == name.as_ref()))
        .map(|(name, value)| {
            (
                percent_encode(&name, UNRESERVED).to_string(),
                percent_encode(&value, UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort_unstable();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
}

/// `name:value\n` for each signed header in the client's order, values trimmed with inner runs
/// of spaces collapsed and repeated headers joined with `,` ("Create a signed AWS
/// API request", step 1).
///
/// A signed header that is absent is a [`SigV4Error::Mismatch`]: AWS recomputes the canonical
/// request without it and reports the mismatch; it does not say which header was missing.
fn push_canonical_headers(
    headers: &http::HeaderMap,
    signed_headers: std::str::Split<'_, char>,
    out: &mut Vec<u8>,
) -> Result<(), SigV4Error> {
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            return Err(SigV4Error::Mismatch);
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(value.as_bytes(), out);
        }
        out.push(b'\n');
    }
    Ok(())
}

/// AWS's "Trimall": strip leading and trailing spaces, collapse runs of spaces to one. Only
/// spaces (and tabs at the ends, which HTTP/1 parsers strip anyway), as the AWS documentation,
/// aws-sdk-rust and aws-c-auth do; botocore also collapses inner tabs, which no client sends.
fn push_trimmed(value: &[u8], out: &mut Vec<u8>) {
    let is_edge_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value
        .iter()
        .position(|b| !is_edge_space(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_edge_space(b))
        .map_or(start, |i| i + 1);
    let mut previous_space = false;
    for &b in &value[start..end] {
        if b == b' ' {
            if !previous_space {
                out.push(b);
            }
            previous_space = true;
        } else {
            out.push(b);
            previous_space = false;
        }
    }
}

/// The payload hash line: hex SHA-256 of the body, or the `X-Amz-Content-Sha256` header value
/// verbatim when present (botocore uses the header whenever it exists). The header
/// must then describe this very body, so `UNSIGNED-PAYLOAD` and stale hashes fail as a mismatch:
/// the services tresor serves sign their bodies.
fn push_payload_hash(req: &HttpRequest<'_>, out: &mut Vec<u8>) -> Result<(), SigV4Error> {
    let declared = req.headers.get(X_AMZ_CONTENT_SHA256);
    if declared.is_none() && req.body.is_empty() {
        out.extend_from_slice(EMPTY_SHA256.as_bytes());
        return Ok(());
    }
    let body_hash = digest::digest(&digest::SHA256, req.body);
    let start = out.len();
    push_hex(body_hash.as_ref(), out);
    if let Some(declared) = declared {
        let computed = &out[start..];
        if !declared.as_bytes().eq_ignore_ascii_case(computed) {
            return Err(SigV4Error::Mismatch);
        }
        out.truncate(start);
        out.extend_from_slice(declared.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn normalization_matches_the_sdk_rules() {
        for (input, expected) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("//example//", "/example/"),
            ("/./example", "/example"),
            ("/foo/bar/..", "/foo/"),
            ("/foo/bar/.", "/foo/bar/"),
            ("/a.b/c", "/a.b/c"),
            ("/../..", "/"),
            ("relative/path", "/relative/path"),
        ] {
            assert_eq!(normalize_path(input), expected, "{input:?}");
        }
    }

    #[test]
    fn normalized_path_is_encoded_again() {
        let mut out = Vec::new();
        push_canonical_uri(
            "/a%2Fb/c d/\u{1234}",
            UriPathMode::NormalizeAndEncodeAgain,
            &mut out,
        );
        assert_eq!(out, b"/a%252Fb/c%20d/%E1%88%B4");
        out.clear();
        push_canonical_uri("/a%2Fb//c d", UriPathMode::AsIsEncodeOnce, &mut out);
        assert_eq!(out, b"/a%2Fb//c%20d");
    }

    #[test]
    fn query_is_decoded_encoded_and_sorted_by_name_then_value() {
        let mut out = Vec::new();
        push_canonical_query("b=2&a-b=3&a=z&a=y&c&d=x+y%2By&&e=%7e", &[], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a=y&a=z&a-b=3&b=2&c=&d=x%20y%2By&e=~"
        );
    }

    #[test]
    fn presigned_query_drops_only_the_signature() {
        let mut out = Vec::new();
        push_canonical_query(
            "X-Amz-Signature=ab&X-Amz-Date=1&Z=2",
            &[X_AMZ_SIGNATURE],
            &mut out,
        );
        assert_eq!(out, b"X-Amz-Date=1&Z=2");
    }

    #[test]
    fn header_values_are_trimmed_and_spaces_collapsed() {
        let mut out = Vec::new();
        push_trimmed(b" \t a   b \t  c  ", &mut out);
        assert_eq!(out, b"a b \t c");
        out.clear();
        push_trimmed(b"   ", &mut out);
        assert_eq!(out, b"");
    }
}
