//! Secrets Manager's errors: [`SecretsManagerError`], one variant per error code of the
//! Secrets Manager API (botocore model `secretsmanager` 2017-10-17) that tresor returns, and
//! AWS's wording for them. Every modeled error is a client fault (HTTP 400) whose body uses
//! `Message`; storage, crypto and corrupt-record failures become
//! [`SecretsManagerError::Internal`], rendered as AWS's generic internal error and logged
//! server-side, never with details.
//!
//! Where the texts come from: quoted from real AWS responses in public issue threads, from
//! the model's shape documentation, or from emulators measured against AWS; the doc comment of
//! each constructor says which.

use tresor_core::error::{AuthzError, ServiceError};
use tresor_wire::AwsError;

/// A Secrets Manager operation's failure, as AWS names it. No variant ever carries a secret
/// value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsManagerError {
    #[error("AccessDeniedException: {0}")]
    AccessDenied(String),
    #[error("DecryptionFailure: {0}")]
    DecryptionFailure(String),
    #[error("EncryptionFailure: {0}")]
    EncryptionFailure(String),
    #[error("InvalidNextTokenException: {0}")]
    InvalidNextToken(String),
    #[error("InvalidParameterException: {0}")]
    InvalidParameter(String),
    #[error("InvalidRequestException: {0}")]
    InvalidRequest(String),
    #[error("LimitExceededException: {0}")]
    LimitExceeded(String),
    #[error("MalformedPolicyDocumentException: {0}")]
    MalformedPolicyDocument(String),
    #[error("PublicPolicyException: {0}")]
    PublicPolicy(String),
    #[error("ResourceExistsException: {0}")]
    ResourceExists(String),
    #[error("ResourceNotFoundException: {0}")]
    ResourceNotFound(String),
    /// A constraint of the model (length, range, pattern).
    #[error("ValidationException: {0}")]
    Validation(String),
    /// A storage, crypto or corrupt-record failure; the details were logged where it
    /// happened.
    #[error("internal failure")]
    Internal,
}

/// AWS's generic internal-error text.
const INTERNAL_MESSAGE: &str =
    "The request processing has failed because of an unknown error, exception or failure.";

impl SecretsManagerError {
    /// The AWS error code (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            SecretsManagerError::AccessDenied(_) => "AccessDeniedException",
            SecretsManagerError::DecryptionFailure(_) => "DecryptionFailure",
            SecretsManagerError::EncryptionFailure(_) => "EncryptionFailure",
            SecretsManagerError::InvalidNextToken(_) => "InvalidNextTokenException",
            SecretsManagerError::InvalidParameter(_) => "InvalidParameterException",
            SecretsManagerError::InvalidRequest(_) => "InvalidRequestException",
            SecretsManagerError::LimitExceeded(_) => "LimitExceededException",
            SecretsManagerError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            SecretsManagerError::PublicPolicy(_) => "PublicPolicyException",
            SecretsManagerError::ResourceExists(_) => "ResourceExistsException",
            SecretsManagerError::ResourceNotFound(_) => "ResourceNotFoundException",
            SecretsManagerError::Validation(_) => "ValidationException",
            SecretsManagerError::Internal => "InternalFailure",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            SecretsManagerError::Internal => 500,
            _ => 400,
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            SecretsManagerError::AccessDenied(m)
            | SecretsManagerError::DecryptionFailure(m)
            | SecretsManagerError::EncryptionFailure(m)
            | SecretsManagerError::InvalidNextToken(m)
            | SecretsManagerError::InvalidParameter(m)
            | SecretsManagerError::InvalidRequest(m)
            | SecretsManagerError::LimitExceeded(m)
            | SecretsManagerError::MalformedPolicyDocument(m)
            | SecretsManagerError::PublicPolicy(m)
            | SecretsManagerError::ResourceExists(m)
            | SecretsManagerError::ResourceNotFound(m)
            | SecretsManagerError::Validation(m) => Some(m),
            SecretsManagerError::Internal => Some(INTERNAL_MESSAGE),
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, SecretsManagerError::Internal)
    }
}

/// The wire's view of the error: rendered (and, when internal, logged) by
/// [`tresor_wire::error::to_aws_error`], as every service's errors are.
impl tresor_wire::error::ServiceError for SecretsManagerError {
    fn code(&self) -> &str {
        SecretsManagerError::code(self)
    }

    fn http_status(&self) -> u16 {
        SecretsManagerError::http_status(self)
    }

    fn message(&self) -> Option<std::borrow::Cow<'_, str>> {
        SecretsManagerError::message(self).map(std::borrow::Cow::Borrowed)
    }

    fn is_internal(&self) -> bool {
        SecretsManagerError::is_internal(self)
    }
}

impl From<SecretsManagerError> for AwsError {
    fn from(e: SecretsManagerError) -> AwsError {
        tresor_wire::error::to_aws_error(&e)
    }
}

impl From<AuthzError> for SecretsManagerError {
    fn from(e: AuthzError) -> SecretsManagerError {
        match e {
            AuthzError::Denied { message, .. } => SecretsManagerError::AccessDenied(message),
            AuthzError::Internal => SecretsManagerError::Internal,
        }
    }
}

impl From<SecretsManagerError> for ServiceError {
    fn from(e: SecretsManagerError) -> ServiceError {
        ServiceError::Aws(e.into())
    }
}

/// Maps a failed [`tresor_wire::validate::Validator`] (always a validation error).
pub(crate) fn from_validator(e: AwsError) -> SecretsManagerError {
    SecretsManagerError::Validation(e.message.unwrap_or_default())
}

/// Quoted from AWS: `Secrets Manager can't find the specified secret.`
pub fn secret_not_found() -> SecretsManagerError {
    SecretsManagerError::ResourceNotFound("Secrets Manager can't find the specified secret.".into())
}

/// Emulators' text: `…can't find the specified secret value for staging label: <stage>`.
pub fn value_not_found_for_stage(stage: &str) -> SecretsManagerError {
    SecretsManagerError::ResourceNotFound(format!(
        "Secrets Manager can't find the specified secret value for staging label: {stage}"
    ))
}

/// Emulators' text: `…can't find the specified secret value for VersionId: <id>`.
pub fn value_not_found_for_version(version_id: &str) -> SecretsManagerError {
    SecretsManagerError::ResourceNotFound(format!(
        "Secrets Manager can't find the specified secret value for VersionId: {version_id}"
    ))
}

/// Quoted from AWS: reads and writes of a secret scheduled for deletion.
pub fn marked_for_deletion() -> SecretsManagerError {
    SecretsManagerError::InvalidRequest(
        "You can't perform this operation on the secret because it was marked for deletion.".into(),
    )
}

pub fn invalid_parameter(message: impl Into<String>) -> SecretsManagerError {
    SecretsManagerError::InvalidParameter(message.into())
}

pub fn invalid_request(message: impl Into<String>) -> SecretsManagerError {
    SecretsManagerError::InvalidRequest(message.into())
}

pub fn validation(message: impl Into<String>) -> SecretsManagerError {
    SecretsManagerError::Validation(message.into())
}

/// Quoted from AWS: what Secrets Manager answers when KMS refuses the caller.
pub fn kms_access_denied() -> SecretsManagerError {
    SecretsManagerError::AccessDenied("Access to KMS is not allowed".into())
}

/// DecryptionFailure's model documentation.
pub fn decryption_failure() -> SecretsManagerError {
    SecretsManagerError::DecryptionFailure(
        "Secrets Manager can't decrypt the protected secret text using the provided KMS key."
            .into(),
    )
}

/// EncryptionFailure's model documentation.
pub fn encryption_failure() -> SecretsManagerError {
    SecretsManagerError::EncryptionFailure(
        "Secrets Manager can't encrypt the protected secret text using the provided KMS key. Check that the KMS key is available, enabled, and not in an invalid state.".into(),
    )
}

pub fn invalid_next_token() -> SecretsManagerError {
    SecretsManagerError::InvalidNextToken("The NextToken value is invalid.".into())
}

/// A storage, crypto or record failure: AWS's internal error, details to the log only.
pub fn internal(e: impl Into<ServiceError>) -> SecretsManagerError {
    tracing::error!(error = %e.into(), "internal failure");
    SecretsManagerError::Internal
}

/// `?`-friendly conversion for store results.
pub trait OrInternal<T> {
    fn or_internal(self) -> Result<T, SecretsManagerError>;
}

impl<T, E: Into<ServiceError>> OrInternal<T> for Result<T, E> {
    fn or_internal(self) -> Result<T, SecretsManagerError> {
        self.map_err(internal)
    }
}

/// A stored policy that no longer rewrites: a server fault.
pub fn internal_policy(e: tresor_policy::PolicyError) -> SecretsManagerError {
    tracing::error!(error = %e, "a stored resource policy does not parse");
    SecretsManagerError::Internal
}

/// Observed AWS behavior (code and text, e.g. PutSecretValue, DeleteSecret, PutResourcePolicy
/// on a replica): every write to a replica secret.
pub fn replica_write() -> SecretsManagerError {
    SecretsManagerError::InvalidParameter(
        "Operation not permitted on a replica secret. Call must be made in primary secret's region."
            .into(),
    )
}
