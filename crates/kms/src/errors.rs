//! KMS's error codes and AWS's wording for them, in one place. Every error here is a client
//! fault (HTTP 400) rendered with the lowercase `message` key (spec §1.1); storage and crypto
//! failures become AWS's generic internal error through [`internal`], never with details.
//!
//! Messages never carry plaintexts, key material or encryption-context values.

use tresor_core::error::ServiceError;
use tresor_wire::{AwsError, Protocol};

/// Storage/crypto/record failures: logged server-side, generic on the wire.
pub(crate) fn internal(e: impl Into<ServiceError>) -> AwsError {
    e.into().into_aws(Protocol::AwsJson11)
}

/// `Key '<arn>' does not exist` (spec §6.1, observed).
pub(crate) fn key_not_found(key_arn: &str) -> AwsError {
    AwsError::client(
        "NotFoundException",
        format!("Key '{key_arn}' does not exist"),
    )
}

/// `Alias <alias arn> is not found.` (spec §6.1, observed).
pub(crate) fn alias_not_found(alias_arn: &str) -> AwsError {
    AwsError::client(
        "NotFoundException",
        format!("Alias {alias_arn} is not found."),
    )
}

/// A `KeyId` that is neither a key id, key ARN, alias name nor alias ARN (or an alias where
/// the operation takes only keys).
pub(crate) fn invalid_key_id(key_id: &str) -> AwsError {
    AwsError::client("NotFoundException", format!("Invalid keyId {key_id}"))
}

pub(crate) fn disabled(key_arn: &str) -> AwsError {
    AwsError::client("DisabledException", format!("{key_arn} is disabled."))
}

pub(crate) fn pending_deletion(key_arn: &str) -> AwsError {
    invalid_state(format!("{key_arn} is pending deletion."))
}

pub(crate) fn invalid_state(message: impl Into<String>) -> AwsError {
    AwsError::client("KMSInvalidStateException", message)
}

/// Tampered blob, foreign blob or wrong encryption context: AWS sends no message (spec §1.1;
/// aws/aws-sdk-java#1323 shows a null message for a context mismatch).
pub(crate) fn invalid_ciphertext() -> AwsError {
    AwsError::bare("InvalidCiphertextException", 400)
}

/// `KeyId` given to Decrypt/ReEncrypt names another key than the blob's. Wording as reported
/// against real AWS in floci-io/floci#1844.
pub(crate) fn incorrect_key() -> AwsError {
    AwsError::client(
        "IncorrectKeyException",
        "The key ID in the request does not identify a KMS key that can perform this operation.",
    )
}

pub(crate) fn invalid_key_usage(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidKeyUsageException", message)
}

pub(crate) fn already_exists(message: impl Into<String>) -> AwsError {
    AwsError::client("AlreadyExistsException", message)
}

pub(crate) fn malformed_policy(message: impl Into<String>) -> AwsError {
    AwsError::client("MalformedPolicyDocumentException", message)
}

/// The lockout safety check (KMS API reference, PutKeyPolicy `BypassPolicyLockoutSafetyCheck`).
pub(crate) fn policy_lockout() -> AwsError {
    malformed_policy(
        "The new key policy will not allow you to update the key policy in the future.",
    )
}

pub(crate) fn validation(message: impl Into<String>) -> AwsError {
    AwsError::validation(Protocol::AwsJson11, message)
}

pub(crate) fn invalid_marker() -> AwsError {
    AwsError::client("InvalidMarkerException", "Invalid marker")
}

pub(crate) fn tag_error(message: impl Into<String>) -> AwsError {
    AwsError::client("TagException", message)
}

pub(crate) fn limit_exceeded(message: impl Into<String>) -> AwsError {
    AwsError::client("LimitExceededException", message)
}

pub(crate) fn unsupported(message: impl Into<String>) -> AwsError {
    AwsError::client("UnsupportedOperationException", message)
}

/// `DryRun: true` on an operation that would have succeeded.
pub(crate) fn dry_run() -> AwsError {
    AwsError::client(
        "DryRunOperationException",
        "The request would have succeeded, but the DryRun option is set.",
    )
}
