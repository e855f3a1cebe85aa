//! The verification error kinds and the messages AWS sends with them.
//!
//! This module owns the user-visible text of every SigV4 failure (observed AWS wording where
//! known). It must not decide the wire error *code* (the server maps each kind to the code of
//! its protocol), and no message built here may contain a secret access key, a signing key, a session token or the
//! signature the server computed: messages go back to unauthenticated callers and into logs.

/// AWS's text for a signature that does not match (observed behavior).
pub const MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// AWS's text for a request without any authentication (the awsJson1.1 services and API Gateway
/// send this; the awsQuery services say `Request is missing Authentication Token`) (observed
/// behavior).
pub const MISSING_MESSAGE: &str = "Missing Authentication Token";

/// The text of an expired pre-signed URL (unconfirmed).
pub const PRESIGNED_EXPIRED_MESSAGE: &str = "Request has expired";

/// Why a request failed SigV4 authentication.
///
/// The server maps each kind to its protocol's code:
///
/// | kind | awsJson1.1 | awsQuery |
/// |---|---|---|
/// | `Missing` | `MissingAuthenticationTokenException` | `MissingAuthenticationToken` |
/// | `Incomplete` | `IncompleteSignatureException` | `IncompleteSignature` |
/// | `Skew`, `Scope`, `Mismatch` | `InvalidSignatureException` | `SignatureDoesNotMatch` |
/// | `PresignedExpired` | `InvalidSignatureException` | `AccessDenied` |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor a pre-signed query.
    #[error("{MISSING_MESSAGE}")]
    Missing,
    /// The authentication data is syntactically incomplete or malformed.
    #[error("{0}")]
    Incomplete(String),
    /// The request time is more than five minutes away from the server's clock.
    #[error("{0}")]
    Skew(String),
    /// A pre-signed URL used after `X-Amz-Date + X-Amz-Expires`.
    #[error("{PRESIGNED_EXPIRED_MESSAGE}")]
    PresignedExpired,
    /// The credential scope names the wrong service, date or terminator.
    #[error("{0}")]
    Scope(String),
    /// The signature (or a payload hash the signature covers) does not match.
    #[error("{MISMATCH_MESSAGE}")]
    Mismatch,
}

impl SigV4Error {
    /// The message to send in the error body, in AWS's wording.
    pub fn message(&self) -> String {
        self.to_string()
    }
}
