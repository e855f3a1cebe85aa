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
