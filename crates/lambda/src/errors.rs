//! Lambda's errors: [`LambdaError`], one variant per error code of the Lambda API (botocore
//! model `lambda` 2015-03-31) that tresor returns, with the model's HTTP status. Storage and
//! crypto failures become [`LambdaError::Internal`] (logged where they happen, rendered as
//! Lambda's `ServiceException` without details). No variant carries a secret value, code or
//! a credential.

use tresor_core::error::{AuthzError, ServiceError};
use tresor_wire::AwsError;

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// 403; Lambda renders IAM denials as `AccessDeniedException` (observed behavior).
    #[error("AccessDeniedException: {0}")]
    AccessDenied(String),
    #[error("InvalidParameterValueException: {0}")]
    InvalidParameterValue(String),
    #[error("InvalidRequestContentException: {0}")]
    InvalidRequestContent(String),
    /// 502: the runtime could not be started on the host.
    #[error("InvalidRuntimeException: {0}")]
    InvalidRuntime(String),
    #[error("ResourceConflictException: {0}")]
    ResourceConflict(String),
    #[error("ResourceNotFoundException: {0}")]
    ResourceNotFound(String),
    #[error("RequestTooLargeException: {0}")]
    RequestTooLarge(String),
    /// 429: the function's concurrent invocations are at their bound.
    #[error("TooManyRequestsException: {0}")]
    TooManyRequests(String),
    /// A constraint of the model (length, range, pattern).
    #[error("ValidationException: {0}")]
    Validation(String),
    /// 500 `ServiceException` with a message that tells the caller what failed (never a
    /// secret): e.g. an HTTP-routed function's endpoint cannot be reached.
    #[error("ServiceException: {0}")]
    Service(String),
    /// A storage, crypto or corrupt-record failure; details were logged where it happened.
    #[error("internal failure")]
    Internal,
}

const INTERNAL_MESSAGE: &str = "An error occurred and the request cannot be processed.";

impl LambdaError {
    pub fn code(&self) -> &'static str {
        match self {
            LambdaError::AccessDenied(_) => "AccessDeniedException",
            LambdaError::InvalidParameterValue(_) => "InvalidParameterValueException",
            LambdaError::InvalidRequestContent(_) => "InvalidRequestContentException",
            LambdaError::InvalidRuntime(_) => "InvalidRuntimeException",
            LambdaError::ResourceConflict(_) => "ResourceConflictException",
            LambdaError::ResourceNotFound(_) => "ResourceNotFoundException",
            LambdaError::RequestTooLarge(_) => "RequestTooLargeException",
            LambdaError::TooManyRequests(_) => "TooManyRequestsException",
            LambdaError::Validation(_) => "ValidationException",
            LambdaError::Service(_) | LambdaError::Internal => "ServiceException",
        }
    }

    /// The model's `httpStatusCode` of each error shape.
    pub fn http_status(&self) -> u16 {
        match self {
            LambdaError::AccessDenied(_) => 403,
            LambdaError::InvalidParameterValue(_)
            | LambdaError::InvalidRequestContent(_)
            | LambdaError::Validation(_) => 400,
            LambdaError::InvalidRuntime(_) => 502,
            LambdaError::ResourceConflict(_) => 409,
            LambdaError::ResourceNotFound(_) => 404,
            LambdaError::RequestTooLarge(_) => 413,
            LambdaError::TooManyRequests(_) => 429,
            LambdaError::Service(_) | LambdaError::Internal => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            LambdaError::AccessDenied(m)
            | LambdaError::InvalidParameterValue(m)
            | LambdaError::InvalidRequestContent(m)
            | LambdaError::InvalidRuntime(m)
            | LambdaError::ResourceConflict(m)
            | LambdaError::ResourceNotFound(m)
            | LambdaError::RequestTooLarge(m)
            | LambdaError::TooManyRequests(m)
            | LambdaError::Validation(m)
            | LambdaError::Service(m) => m,
            LambdaError::Internal => INTERNAL_MESSAGE,
        }
    }
}

impl tresor_wire::error::ServiceError for LambdaError {
    fn code(&self) -> &str {
        LambdaError::code(self)
    }

    fn http_status(&self) -> u16 {
        LambdaError::http_status(self)
    }

    fn message(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(std::borrow::Cow::Borrowed(LambdaError::message(self)))
    }

    fn is_internal(&self) -> bool {
        matches!(self, LambdaError::Internal)
    }
}

impl From<LambdaError> for AwsError {
    fn from(e: LambdaError) -> AwsError {
        match e {
            // Rendered as ServiceException, not the wire's generic InternalFailure.
            LambdaError::Internal => AwsError::new("ServiceException", 500, INTERNAL_MESSAGE),
            other => tresor_wire::error::to_aws_error(&other),
        }
    }
}

impl From<AuthzError> for LambdaError {
    fn from(e: AuthzError) -> LambdaError {
        match e {
            AuthzError::Denied { message, .. } => LambdaError::AccessDenied(message),
            AuthzError::Internal => LambdaError::Internal,
        }
    }
}

impl From<ServiceError> for LambdaError {
    fn from(e: ServiceError) -> LambdaError {
        match e {
            ServiceError::Aws(a) => LambdaError::Service(a.message.unwrap_or_default()),
            other => {
                tracing::error!(error = %other, "lambda: internal failure");
                LambdaError::Internal
            }
        }
    }
}

impl From<tresor_store::StoreError> for LambdaError {
    fn from(e: tresor_store::StoreError) -> LambdaError {
        tracing::error!(error = %e, "lambda: storage failure");
        LambdaError::Internal
    }
}

impl From<tresor_crypto::CryptoError> for LambdaError {
    fn from(e: tresor_crypto::CryptoError) -> LambdaError {
        tracing::error!(error = %e, "lambda: crypto failure");
        LambdaError::Internal
    }
}

/// `Function not found: <arn>` (observed behavior).
pub fn function_not_found(arn: &str) -> LambdaError {
    LambdaError::ResourceNotFound(format!("Function not found: {arn}"))
}

pub fn invalid_parameter(message: impl Into<String>) -> LambdaError {
    LambdaError::InvalidParameterValue(message.into())
}
