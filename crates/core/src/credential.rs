//! What the server's SigV4 check gets back for an access key: the secret to verify with and
//! the principal it proves — and why a credential is refused, in AWS's terms. The records
//! behind them (access keys, STS sessions) belong to the IAM crate, which answers through
//! [`crate::Directory`].

use time::OffsetDateTime;
use tresor_crypto::SecretBytes;

use crate::ctx::Caller;
use crate::error::ServiceError;

/// What the SigV4 check needs: the secret to verify with and the principal it proves.
#[derive(Clone)]
pub struct ResolvedCredential {
    pub secret: SecretBytes,
    /// Shared: the credential cache hands out clones of this on every request.
    pub caller: std::sync::Arc<Caller>,
    /// For temporary credentials: when they stop working, and the SHA-256 of their token.
    pub session: Option<SessionValidity>,
}

/// What must still be checked on every use of a cached temporary credential.
#[derive(Clone, Debug)]
pub struct SessionValidity {
    pub expiration: OffsetDateTime,
    pub token_sha256: String,
    /// When the session was issued (CloudTrail's `sessionContext.attributes.creationDate`).
    pub created: Option<OffsetDateTime>,
    /// The outside identity the session was issued to (web identity or upstream account).
    pub federation: Option<Federation>,
}

/// The outside identity behind a temporary credential, as CloudTrail's
/// `sessionContext.webIdFederationData` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Federation {
    /// The OIDC provider's ARN (or `upstream:<name>` for an upstream AWS identity).
    pub federated_provider: String,
    /// What identifies the outside principal: issuer, subject and audience, or the upstream
    /// caller's ARN and account.
    pub attributes: Vec<(String, String)>,
}

impl std::fmt::Debug for ResolvedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedCredential")
            .field("secret", &"[redacted]")
            .field("caller", &self.caller)
            .finish()
    }
}

/// Why a credential was refused (AWS STS API reference, "Common Errors").
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Unknown or inactive key, or a session token that does not belong to it:
    /// `UnrecognizedClientException` / `InvalidClientTokenId`.
    #[error("The security token included in the request is invalid.")]
    Invalid,
    /// A temporary credential past its expiration: `ExpiredTokenException` / `ExpiredToken`.
    #[error("The security token included in the request is expired")]
    Expired,
    #[error(transparent)]
    Internal(#[from] ServiceError),
}
