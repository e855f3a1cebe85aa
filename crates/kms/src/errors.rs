//! KMS's errors: [`KmsError`], one variant per error code of the KMS API (botocore model
//! `kms` 2014-11-01) that tresor returns, with AWS's wording built by the constructors below.
//! Every modeled error is a client fault (HTTP 400) rendered with the lowercase `message` key;
//! storage, crypto and corrupt-record failures become [`KmsError::Internal`], rendered as
//! AWS's generic internal error and logged server-side, never with details.
//!
//! Messages never carry plaintexts, key material or encryption-context values.

use tresor_core::error::{AuthzError, ServiceError};
use tresor_wire::AwsError;

/// A KMS operation's failure, as AWS names it.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("AccessDeniedException: {0}")]
    AccessDenied(String),
    #[error("AlreadyExistsException: {0}")]
    AlreadyExists(String),
    #[error("DisabledException: {0}")]
    Disabled(String),
    #[error("DryRunOperationException: {0}")]
    DryRunOperation(String),
    #[error("IncorrectKeyException: {0}")]
    IncorrectKey(String),
    /// Tampered blob, foreign blob or wrong encryption context: AWS sends no message
    /// (aws/aws-sdk-java#1323 shows a null message for a context mismatch).
    #[error("InvalidCiphertextException")]
    InvalidCiphertext,
    #[error("InvalidKeyUsageException: {0}")]
    InvalidKeyUsage(String),
    #[error("InvalidMarkerException: {0}")]
    InvalidMarker(String),
    #[error("KMSInvalidStateException: {0}")]
    InvalidState(String),
    #[error("LimitExceededException: {0}")]
    LimitExceeded(String),
    #[error("MalformedPolicyDocumentException: {0}")]
    MalformedPolicyDocument(String),
    /// The reserved `alias/aws/` prefix; sent without a message (observed behavior of
    /// emulators measured against AWS; the code is not in the model).
    #[error("NotAuthorizedException")]
    NotAuthorized,
    #[error("NotFoundException: {0}")]
    NotFound(String),
    #[error("TagException: {0}")]
    Tag(String),
    #[error("UnsupportedOperationException: {0}")]
    UnsupportedOperation(String),
    /// A constraint of the model (length, range, enum, pattern) or a documented rule.
    #[error("ValidationException: {0}")]
    Validation(String),
    /// A storage, crypto or corrupt-record failure; the details were logged where it
    /// happened.
    #[error("internal failure")]
    Internal,
}

impl KmsError {
    /// The AWS error code (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::DryRunOperation(_) => "DryRunOperationException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::InvalidCiphertext => "InvalidCiphertextException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::InvalidMarker(_) => "InvalidMarkerException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::NotAuthorized => "NotAuthorizedException",
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Tag(_) => "TagException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::Internal => "InternalFailure",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            KmsError::Internal => 500,
            _ => 400,
        }
    }

    /// The message AWS sends, `None` where it sends none.
    pub fn message(&self) -> Option<&str> {
        match self {
            KmsError::AccessDenied(m)
            | KmsError::AlreadyExists(m)
            | KmsError::Disabled(m)
            | KmsError::DryRunOperation(m)
            | KmsError::IncorrectKey(m)
            | KmsError::InvalidKeyUsage(m)
            | KmsError::InvalidMarker(m)
            | KmsError::InvalidState(m)
            | KmsError::LimitExceeded(m)
            | KmsError::MalformedPolicyDocument(m)
            | KmsError::NotFound(m)
            | KmsError::Tag(m)
            | KmsError::UnsupportedOperation(m)
            | KmsError::Validation(m) => Some(m),
            KmsError::InvalidCiphertext | KmsError::NotAuthorized => None,
            KmsError::Internal => Some(INTERNAL_MESSAGE),
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, KmsError::Internal)
    }
}

/// AWS's generic internal-error text.
const INTERNAL_MESSAGE: &str =
    "The request processing has failed because of an unknown error, exception or failure.";

/// The wire's view of the error: rendered (and, when internal, logged) by
/// [`tresor_wire::error::to_aws_error`], as every service's errors are.
impl tresor_wire::error::ServiceError for KmsError {
    fn code(&self) -> &str {
        KmsError::code(self)
    }

    fn http_status(&self) -> u16 {
        KmsError::http_status(self)
    }

    fn message(&self) -> Option<std::borrow::Cow<'_, str>> {
        KmsError::message(self).map(std::borrow::Cow::Borrowed)
    }

    fn is_internal(&self) -> bool {
        KmsError::is_internal(self)
    }
}

impl From<KmsError> for AwsError {
    fn from(e: KmsError) -> AwsError {
        tresor_wire::error::to_aws_error(&e)
    }
}

impl From<AuthzError> for KmsError {
    fn from(e: AuthzError) -> KmsError {
        match e {
            AuthzError::Denied { message, .. } => KmsError::AccessDenied(message),
            AuthzError::Internal => KmsError::Internal,
        }
    }
}

impl From<KmsError> for ServiceError {
    fn from(e: KmsError) -> ServiceError {
        ServiceError::Aws(e.into())
    }
}

/// Storage/crypto/record failures: logged server-side, generic on the wire.
pub(crate) fn internal(e: impl Into<ServiceError>) -> KmsError {
    match e.into() {
        // An AWS error that travelled through a ServiceError (none of ours do).
        ServiceError::Aws(a) if !a.is_server_fault() => {
            tracing::error!(error = %a, "unexpected AWS error in an internal path");
            KmsError::Internal
        }
        other => {
            tracing::error!(error = %other, "internal failure");
            KmsError::Internal
        }
    }
}

/// Maps a failed [`tresor_wire::validate::Validator`] (always a validation error).
pub(crate) fn from_validator(e: AwsError) -> KmsError {
    KmsError::Validation(e.message.unwrap_or_default())
}

/// `Key '<arn>' does not exist` (observed behavior).
pub(crate) fn key_not_found(key_arn: &str) -> KmsError {
    KmsError::NotFound(format!("Key '{key_arn}' does not exist"))
}

/// `Alias <alias arn> is not found.` (observed behavior).
pub(crate) fn alias_not_found(alias_arn: &str) -> KmsError {
    KmsError::NotFound(format!("Alias {alias_arn} is not found."))
}

/// A `KeyId` that is neither a key id, key ARN, alias name nor alias ARN (or an alias where
/// the operation takes only keys).
pub(crate) fn invalid_key_id(key_id: &str) -> KmsError {
    KmsError::NotFound(format!("Invalid keyId {key_id}"))
}

pub(crate) fn disabled(key_arn: &str) -> KmsError {
    KmsError::Disabled(format!("{key_arn} is disabled."))
}

pub(crate) fn pending_deletion(key_arn: &str) -> KmsError {
    invalid_state(format!("{key_arn} is pending deletion."))
}

pub(crate) fn invalid_state(message: impl Into<String>) -> KmsError {
    KmsError::InvalidState(message.into())
}

pub(crate) fn invalid_ciphertext() -> KmsError {
    KmsError::InvalidCiphertext
}

/// `KeyId` given to Decrypt/ReEncrypt names another key than the blob's. Wording as reported
/// against real AWS in floci-io/floci#1844.
pub(crate) fn incorrect_key() -> KmsError {
    KmsError::IncorrectKey(
        "The key ID in the request does not identify a KMS key that can perform this operation."
            .into(),
    )
}

pub(crate) fn invalid_key_usage(message: impl Into<String>) -> KmsError {
    KmsError::InvalidKeyUsage(message.into())
}

pub(crate) fn already_exists(message: impl Into<String>) -> KmsError {
    KmsError::AlreadyExists(message.into())
}

pub(crate) fn malformed_policy(message: impl Into<String>) -> KmsError {
    KmsError::MalformedPolicyDocument(message.into())
}

/// The lockout safety check (KMS API reference, PutKeyPolicy `BypassPolicyLockoutSafetyCheck`).
pub(crate) fn policy_lockout() -> KmsError {
    malformed_policy(
        "The new key policy will not allow you to update the key policy in the future.",
    )
}

pub(crate) fn validation(message: impl Into<String>) -> KmsError {
    KmsError::Validation(message.into())
}

pub(crate) fn invalid_marker() -> KmsError {
    KmsError::InvalidMarker("Invalid marker".into())
}

pub(crate) fn tag_error(message: impl Into<String>) -> KmsError {
    KmsError::Tag(message.into())
}

pub(crate) fn limit_exceeded(message: impl Into<String>) -> KmsError {
    KmsError::LimitExceeded(message.into())
}

pub(crate) fn unsupported(message: impl Into<String>) -> KmsError {
    KmsError::UnsupportedOperation(message.into())
}

/// `DryRun: true` on an operation that would have succeeded.
pub(crate) fn dry_run() -> KmsError {
    KmsError::DryRunOperation(
        "The request would have succeeded, but the DryRun option is set.".into(),
    )
}
