//! CloudTrail's errors (botocore model `cloudtrail` 2013-11-01). Its modeled exceptions have
//! no members; tresor adds a message saying what was wrong. Storage failures become
//! [`CloudTrailError::Internal`], logged where they happen, never detailed on the wire.

use tresor_core::error::AuthzError;
use tresor_wire::AwsError;

#[derive(Debug, thiserror::Error)]
pub enum CloudTrailError {
    #[error("InvalidLookupAttributesException: {0}")]
    InvalidLookupAttributes(String),
    #[error("InvalidTimeRangeException: {0}")]
    InvalidTimeRange(String),
    #[error("InvalidMaxResultsException: {0}")]
    InvalidMaxResults(String),
    #[error("InvalidNextTokenException: {0}")]
    InvalidNextToken(String),
    #[error("InvalidEventCategoryException: {0}")]
    InvalidEventCategory(String),
    /// A missing required member or another constraint of the model.
    #[error("ValidationException: {0}")]
    Validation(String),
    /// Another service's error on the way (ListSecretReaders reads the secret's versions
    /// through Secrets Manager as the caller): passed through as that service reported it.
    #[error("{}", .0.code)]
    Dependency(AwsError),
    #[error("internal failure")]
    Internal,
}

/// AWS's generic internal-error text.
const INTERNAL_MESSAGE: &str =
    "The request processing has failed because of an unknown error, exception or failure.";

impl CloudTrailError {
    pub fn code(&self) -> &str {
        match self {
            CloudTrailError::InvalidLookupAttributes(_) => "InvalidLookupAttributesException",
            CloudTrailError::InvalidTimeRange(_) => "InvalidTimeRangeException",
            CloudTrailError::InvalidMaxResults(_) => "InvalidMaxResultsException",
            CloudTrailError::InvalidNextToken(_) => "InvalidNextTokenException",
            CloudTrailError::InvalidEventCategory(_) => "InvalidEventCategoryException",
            CloudTrailError::Validation(_) => "ValidationException",
            CloudTrailError::Dependency(e) => &e.code,
            CloudTrailError::Internal => "InternalFailure",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            CloudTrailError::Internal => 500,
            CloudTrailError::Dependency(e) => e.status,
            _ => 400,
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            CloudTrailError::InvalidLookupAttributes(m)
            | CloudTrailError::InvalidTimeRange(m)
            | CloudTrailError::InvalidMaxResults(m)
            | CloudTrailError::InvalidNextToken(m)
            | CloudTrailError::InvalidEventCategory(m)
            | CloudTrailError::Validation(m) => Some(m),
            CloudTrailError::Dependency(e) => e.message.as_deref(),
            CloudTrailError::Internal => Some(INTERNAL_MESSAGE),
        }
    }
}

impl tresor_wire::error::ServiceError for CloudTrailError {
    fn code(&self) -> &str {
        CloudTrailError::code(self)
    }

    fn http_status(&self) -> u16 {
        CloudTrailError::http_status(self)
    }

    fn message(&self) -> Option<std::borrow::Cow<'_, str>> {
        CloudTrailError::message(self).map(std::borrow::Cow::Borrowed)
    }

    fn is_internal(&self) -> bool {
        matches!(self, CloudTrailError::Internal)
    }
}

impl From<CloudTrailError> for AwsError {
    fn from(e: CloudTrailError) -> AwsError {
        match e {
            CloudTrailError::Dependency(e) => e,
            other => tresor_wire::error::to_aws_error(&other),
        }
    }
}

impl From<AuthzError> for CloudTrailError {
    fn from(e: AuthzError) -> CloudTrailError {
        match e {
            AuthzError::Internal => CloudTrailError::Internal,
            denied => CloudTrailError::Dependency(denied.into()),
        }
    }
}

impl From<tresor_store::StoreError> for CloudTrailError {
    fn from(e: tresor_store::StoreError) -> CloudTrailError {
        tracing::error!(error = %e, "audit log storage failure");
        CloudTrailError::Internal
    }
}
