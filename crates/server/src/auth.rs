//! SigV4 authentication of a request: parse the signature, look up the credential, verify,
//! and map every failure to the protocol's AWS error code.

use time::OffsetDateTime;
use tresor_core::{Caller, CredentialError, Services};
use tresor_sigv4::{HttpRequest, SigV4Error, SigningKeyCache};
use tresor_wire::{AwsError, Protocol, ServiceId};

/// A successfully authenticated request.
pub struct Authenticated {
    /// Shared with the credential cache and the request's audit record (no deep copies).
    pub caller: std::sync::Arc<Caller>,
    pub region: String,
    /// When the temporary credential's session was issued (for the audit record).
    pub session_created: Option<OffsetDateTime>,
    /// The outside identity the session was issued to (for the audit record).
    pub federation: Option<tresor_core::credential::Federation>,
}

/// The scope's service name from the parsed signature, for routing awsQuery requests
/// (IAM and STS share a body format; only the signing name tells them apart).
pub fn scope_service(req: &HttpRequest<'_>) -> Option<String> {
    tresor_sigv4::parse(req).ok().map(|a| a.service)
}

pub fn authenticate(
    services: &Services,
    keys: &SigningKeyCache,
    regions: &[String],
    service: ServiceId,
    req: &HttpRequest<'_>,
    now: OffsetDateTime,
) -> Result<Authenticated, AwsError> {
    let protocol = service.protocol();
    let parsed = tresor_sigv4::parse(req).map_err(|e| sigv4_error(protocol, &e))?;
    require_signed(req, parsed.signed_headers()).map_err(|e| sigv4_error(protocol, &e))?;
    let resolved = services
        .resolve_credential(&parsed.access_key_id, parsed.session_token.as_deref(), now)
        .map_err(|e| credential_error(protocol, e))?;
    if !regions.iter().any(|r| r == &parsed.region) {
        // AWS's wording for a scope naming a region the endpoint does not serve.
        return Err(sigv4_error(
            protocol,
            &SigV4Error::Scope(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                parsed.region
            )),
        ));
    }
    let key = keys.get_or_derive(
        &parsed.access_key_id,
        resolved.secret.as_bytes(),
        &parsed.scope_date,
        &parsed.region,
        &parsed.service,
    );
    tresor_sigv4::verify(&parsed, req, &key, service.signing_name(), now)
        .map_err(|e| sigv4_error(protocol, &e))?;
    Ok(Authenticated {
        session_created: resolved.session.as_ref().and_then(|s| s.created),
        federation: resolved.session.as_ref().and_then(|s| s.federation.clone()),
        caller: resolved.caller,
        region: parsed.region,
    })
}

/// Headers that decide what a request does: `X-Amz-Target` names the operation of an
/// awsJson request and `Content-Type` how its body is read. Every AWS SDK signs both; a
/// signature that leaves one out would let whoever sees the request re-target it (observed
/// behavior of the AWS SDKs' signers, which sign every header but a few hop-by-hop ones).
const MUST_BE_SIGNED: &[(&str, &str)] = &[
    ("x-amz-target", "X-Amz-Target"),
    ("content-type", "Content-Type"),
];

/// Refuses a request that carries one of [`MUST_BE_SIGNED`] without signing it.
fn require_signed(
    req: &HttpRequest<'_>,
    signed: std::str::Split<'_, char>,
) -> Result<(), SigV4Error> {
    for (name, display) in MUST_BE_SIGNED {
        if req.headers.contains_key(*name) && !signed.clone().any(|h| h.eq_ignore_ascii_case(name))
        {
            return Err(SigV4Error::Incomplete(format!(
                "'{display}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    Ok(())
}

/// The code and status AWS uses for each SigV4 failure, by protocol (the "Common Errors"
/// pages of the AWS API references, and observed behavior).
pub fn sigv4_error(protocol: Protocol, e: &SigV4Error) -> AwsError {
    let json = protocol == Protocol::AwsJson11;
    let message = e.message();
    match e {
        SigV4Error::Missing => {
            if json {
                AwsError::client(
                    "MissingAuthenticationTokenException",
                    "Missing Authentication Token",
                )
            } else {
                AwsError::new(
                    "MissingAuthenticationToken",
                    403,
                    "Request is missing Authentication Token",
                )
            }
        }
        SigV4Error::Incomplete(_) => {
            if json {
                AwsError::client("IncompleteSignatureException", message)
            } else {
                AwsError::client("IncompleteSignature", message)
            }
        }
        SigV4Error::PresignedExpired => {
            if json {
                AwsError::client("InvalidSignatureException", message)
            } else {
                AwsError::new("AccessDenied", 403, message)
            }
        }
        SigV4Error::Skew(_) | SigV4Error::Scope(_) | SigV4Error::Mismatch => {
            if json {
                AwsError::client("InvalidSignatureException", message)
            } else {
                AwsError::new("SignatureDoesNotMatch", 403, message)
            }
        }
    }
}

pub fn credential_error(protocol: Protocol, e: CredentialError) -> AwsError {
    let json = protocol == Protocol::AwsJson11;
    match e {
        CredentialError::Invalid => {
            let m = "The security token included in the request is invalid.";
            if json {
                AwsError::client("UnrecognizedClientException", m)
            } else {
                AwsError::new("InvalidClientTokenId", 403, m)
            }
        }
        CredentialError::Expired => {
            let m = "The security token included in the request is expired";
            if json {
                AwsError::client("ExpiredTokenException", m)
            } else {
                AwsError::new("ExpiredToken", 403, m)
            }
        }
        CredentialError::Internal(e) => e.into_aws(protocol),
    }
}
