//! Phase 2 of authentication: time, credential scope and signature, in that order (IAM User
//! Guide: "Elements of an AWS API request signature",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-signing-elements.html>, and
//! "Create a signed AWS API request",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).
//!
//! This module owns the decision "this request was signed by the holder of this key, for this
//! service, recently enough". It must run only after the server has resolved the access key and
//! checked the session token, must compare signatures in constant time, and must not
//! reveal the signature it computed in any error.

use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::canonical::{PresignedQuery, VerifyOptions, canonical_request, string_to_sign};
use crate::parse::{ParsedAuth, SCOPE_TERMINATOR};
use crate::time_format::format_amz_date;
use crate::{HttpRequest, SigV4Error, SigningKey};

/// Allowed difference between the request time and the server clock for the services tresor
/// serves: five minutes (observed behavior; the AWS error text quotes `- 5 min.`).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// Verifies a parsed request with the default options (non-S3 path canonicalization).
///
/// Checks, in order: clock skew (±5 minutes; for a pre-signed URL, expiry after
/// `X-Amz-Expires`), the credential scope (service equals `expected_service`, date equals the
/// request date, terminator `aws4_request`), then the signature.
pub fn verify(
    auth: &ParsedAuth,
    req: &HttpRequest<'_>,
    key: &SigningKey,
    expected_service: &str,
    now: OffsetDateTime,
) -> Result<(), SigV4Error> {
    verify_with(
        auth,
        req,
        key,
        expected_service,
        now,
        &VerifyOptions::default(),
    )
}

/// [`verify`] with explicit [`VerifyOptions`].
pub fn verify_with(
    auth: &ParsedAuth,
    req: &HttpRequest<'_>,
    key: &SigningKey,
    expected_service: &str,
    now: OffsetDateTime,
    options: &VerifyOptions,
) -> Result<(), SigV4Error> {
    check_time(auth, now)?;
    check_scope(auth, expected_service)?;
    if signature_matches(auth, req, key, options, PresignedQuery::TokenSigned)? {
        return Ok(());
    }
    // See `PresignedQuery::TokenAppendedAfterSigning` for why this second form is safe.
    if auth.presigned
        && auth.session_token.is_some()
        && signature_matches(
            auth,
            req,
            key,
            options,
            PresignedQuery::TokenAppendedAfterSigning,
        )?
    {
        return Ok(());
    }
    Err(SigV4Error::Mismatch)
}

fn signature_matches(
    auth: &ParsedAuth,
    req: &HttpRequest<'_>,
    key: &SigningKey,
    options: &VerifyOptions,
    presigned_query: PresignedQuery,
) -> Result<bool, SigV4Error> {
    let canonical = canonical_request(auth, req, options, presigned_query)?;
    let string_to_sign = string_to_sign(auth, &canonical);
    let mut computed = [0u8; 64];
    let tag = key.sign(&string_to_sign);
    // Writing into a fixed buffer cannot fail for 32 bytes; a failure would only mean "no match".
    if hex::encode_to_slice(tag.as_ref(), &mut computed).is_err() {
        return Ok(false);
    }
    let provided = auth.signature().as_bytes();
    // Lengths are public (64 hex digits); only the contents must not leak through timing.
    Ok(provided.len() == computed.len() && bool::from(computed.ct_eq(provided)))
}

fn check_time(auth: &ParsedAuth, now: OffsetDateTime) -> Result<(), SigV4Error> {
    // AWS reports whole seconds; sub-second precision of `now` must not change the outcome.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let request_time = auth.request_time;
    if let Some(expires) = auth.expires_seconds() {
        // Checked: a request dated 9999-12-31 must not overflow (it fails the future check).
        if request_time
            .checked_add(Duration::seconds(i64::from(expires)))
            .is_some_and(|deadline| now > deadline)
        {
            return Err(SigV4Error::PresignedExpired);
        }
    } else if request_time < now - MAX_CLOCK_SKEW {
        // "Signature expired: 20190430T075732Z is now earlier than 20190430T105409Z
        // (20190430T105909Z - 5 min.)" (observed behavior)
        return Err(SigV4Error::Skew(format!(
            "Signature expired: {} is now earlier than {} ({} - 5 min.)",
            format_amz_date(request_time),
            format_amz_date(now - MAX_CLOCK_SKEW),
            format_amz_date(now)
        )));
    }
    if request_time > now + MAX_CLOCK_SKEW {
        return Err(SigV4Error::Skew(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            format_amz_date(request_time),
            format_amz_date(now + MAX_CLOCK_SKEW),
            format_amz_date(now)
        )));
    }
    Ok(())
}

/// AWS's scope messages end with a space (observed behavior).
fn check_scope(auth: &ParsedAuth, expected_service: &str) -> Result<(), SigV4Error> {
    if auth.service != expected_service {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped to correct service: '{expected_service}'. "
        )));
    }
    let request_date = auth.amz_date().get(..8).unwrap_or_default();
    if auth.scope_date != request_date {
        return Err(SigV4Error::Scope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            auth.scope_date,
            request_date,
            auth.amz_date()
        )));
    }
    if auth.scope_terminator() != SCOPE_TERMINATOR {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not '{}'. ",
            auth.scope_terminator()
        )));
    }
    Ok(())
}
