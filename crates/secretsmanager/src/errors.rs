//! Secrets Manager's errors in AWS's words. Every modeled error is a client fault (HTTP 400)
//! whose body uses `Message` (spec §1.1, §5.7); the wire layer renders them.
//!
//! Messages marked [O] are quoted from real AWS responses in public issue threads, [E] from
//! emulators measured against AWS, [M] from the botocore model's shape documentation, [?] are
//! ours where no public source gives the text.

use tresor_core::error::ServiceError;
use tresor_wire::{AwsError, Protocol};

/// [O] `Secrets Manager can't find the specified secret.`
pub fn secret_not_found() -> AwsError {
    AwsError::client(
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

/// [E] `…can't find the specified secret value for staging label: <stage>`.
pub fn value_not_found_for_stage(stage: &str) -> AwsError {
    AwsError::client(
        "ResourceNotFoundException",
        format!("Secrets Manager can't find the specified secret value for staging label: {stage}"),
    )
}

/// [E] `…can't find the specified secret value for VersionId: <id>`.
pub fn value_not_found_for_version(version_id: &str) -> AwsError {
    AwsError::client(
        "ResourceNotFoundException",
        format!(
            "Secrets Manager can't find the specified secret value for VersionId: {version_id}"
        ),
    )
}

/// [O] Reads and writes of a secret scheduled for deletion.
pub fn marked_for_deletion() -> AwsError {
    AwsError::client(
        "InvalidRequestException",
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
}

pub fn invalid_parameter(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidParameterException", message)
}

pub fn invalid_request(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidRequestException", message)
}

/// [O] What Secrets Manager answers when KMS refuses the caller.
pub fn kms_access_denied() -> AwsError {
    AwsError::client("AccessDeniedException", "Access to KMS is not allowed")
}

/// [M] DecryptionFailure's model documentation.
pub fn decryption_failure() -> AwsError {
    AwsError::client(
        "DecryptionFailure",
        "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
    )
}

/// [M] EncryptionFailure's model documentation.
pub fn encryption_failure() -> AwsError {
    AwsError::client(
        "EncryptionFailure",
        "Secrets Manager can't encrypt the protected secret text using the provided KMS key. Check that the KMS key is available, enabled, and not in an invalid state.",
    )
}

pub fn invalid_next_token() -> AwsError {
    AwsError::client(
        "InvalidNextTokenException",
        "The NextToken value is invalid.",
    )
}

/// A storage, crypto or record failure: AWS's internal error, details to the log only.
pub fn internal(e: impl Into<ServiceError>) -> AwsError {
    e.into().into_aws(Protocol::AwsJson11)
}

/// `?`-friendly conversion for store results.
pub trait OrInternal<T> {
    fn or_internal(self) -> Result<T, AwsError>;
}

impl<T, E: Into<ServiceError>> OrInternal<T> for Result<T, E> {
    fn or_internal(self) -> Result<T, AwsError> {
        self.map_err(internal)
    }
}

/// A stored policy that no longer rewrites: a server fault.
pub fn internal_policy(e: tresor_policy::PolicyError) -> AwsError {
    tracing::error!(error = %e, "a stored resource policy does not parse");
    AwsError::internal(Protocol::AwsJson11)
}
