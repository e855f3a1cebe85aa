//! IAM's errors as the operations raise them: IAM's codes and statuses (botocore model) and
//! its wording (IAM API Reference, each action's "Errors" section).

use tresor_policy::PolicyError;

use crate::error::IamError;

pub(crate) fn no_such_entity(message: impl Into<String>) -> IamError {
    IamError::NoSuchEntity(message.into())
}

pub(crate) fn already_exists(message: impl Into<String>) -> IamError {
    IamError::EntityAlreadyExists(message.into())
}

pub(crate) fn delete_conflict(message: impl Into<String>) -> IamError {
    IamError::DeleteConflict(message.into())
}

pub(crate) fn limit_exceeded(message: impl Into<String>) -> IamError {
    IamError::LimitExceeded(message.into())
}

/// `InvalidInput`, as whichever error type the caller returns.
pub(crate) fn invalid_input<E: From<IamError>>(message: impl Into<String>) -> E {
    IamError::InvalidInput(message.into()).into()
}

pub(crate) fn malformed_policy(message: impl Into<String>) -> IamError {
    IamError::MalformedPolicyDocument(message.into())
}

/// awsQuery's `ValidationError`, as whichever error type the caller returns.
pub(crate) fn validation<E: From<IamError>>(message: impl Into<String>) -> E {
    IamError::ValidationError(message.into()).into()
}

/// A policy-engine refusal as IAM reports it: grammar errors are `MalformedPolicyDocument`,
/// size quotas `LimitExceeded` (`Cannot exceed quota for PolicySize: 6144`).
pub(crate) fn policy_error<E: From<IamError>>(e: PolicyError) -> E {
    match e {
        PolicyError::Malformed(m) => malformed_policy(m),
        too_large @ PolicyError::TooLarge { .. } => limit_exceeded(too_large.to_string()),
    }
    .into()
}
