//! Internal failures of services. Storage and crypto errors become AWS's generic internal
//! error on the wire without leaking details; the details go to the server log only.

use tresor_wire::{AwsError, Protocol};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("storage: {0}")]
    Store(#[from] tresor_store::StoreError),
    #[error("crypto: {0}")]
    Crypto(#[from] tresor_crypto::CryptoError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl ServiceError {
    /// The wire error for this failure. Internal details are logged, not returned.
    pub fn into_aws(self, protocol: Protocol) -> AwsError {
        match self {
            ServiceError::Aws(e) => e,
            other => {
                tracing::error!(error = %other, "internal failure");
                AwsError::internal(protocol)
            }
        }
    }
}

/// The Authorizer's answer when it is not "allow": a denial in AWS's wording, or an internal
/// failure (a stored policy that no longer parses, a storage error) whose details are logged.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// The policies do not allow the request. `message` is AWS's access-denied text naming
    /// the caller, action, resource and reason; `protocol` is that of the action's service.
    #[error("{message}")]
    Denied { protocol: Protocol, message: String },
    #[error("internal failure while authorizing")]
    Internal,
}

impl From<AuthzError> for AwsError {
    fn from(e: AuthzError) -> AwsError {
        match e {
            AuthzError::Denied { protocol, message } => AwsError::access_denied(protocol, message),
            AuthzError::Internal => AwsError::internal(Protocol::AwsJson11),
        }
    }
}

impl From<AuthzError> for ServiceError {
    fn from(e: AuthzError) -> ServiceError {
        ServiceError::Aws(e.into())
    }
}
