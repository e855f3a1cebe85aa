//! The typed errors of IAM and STS: one variant per AWS error code the botocore models list
//! for the operations tresor implements, with the model's HTTP status
//! (`error.httpStatusCode`), plus `AccessDenied` (the Authorizer's refusal) and `Internal`
//! (storage, crypto or a corrupt record: logged, generic on the wire).
//!
//! The message a variant carries is what the client reads; `Display` is that message, except
//! for `Internal`, whose `Display` (with its source) goes to the server log only.

use std::borrow::Cow;

use tresor_core::error::{AuthzError, ServiceError as CoreError};
use tresor_wire::AwsError;
use tresor_wire::error::{INTERNAL_MESSAGE, ServiceError, to_aws_error};

/// An IAM operation's failure (IAM API reference, "Common Errors" and each action's
/// "Errors" section).
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// 404: the named entity does not exist.
    #[error("{0}")]
    NoSuchEntity(String),
    /// 409.
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// 409: the entity still has what must be removed first.
    #[error("{0}")]
    DeleteConflict(String),
    /// 409: a quota.
    #[error("{0}")]
    LimitExceeded(String),
    /// 400.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// 400.
    #[error("{0}")]
    InvalidInput(String),
    /// 400: a member violates the model's constraints (awsQuery's `ValidationError`).
    #[error("{0}")]
    ValidationError(String),
    /// 400: the entity is not the caller's to change (AWS managed policies, service roles).
    #[error("{0}")]
    UnmodifiableEntity(String),
    /// 409.
    #[error("{0}")]
    ConcurrentModification(String),
    /// 409.
    #[error("{0}")]
    EntityTemporarilyUnmodifiable(String),
    /// 400.
    #[error("{0}")]
    PolicyNotAttachable(String),
    /// 500.
    #[error("{0}")]
    PolicyEvaluation(String),
    /// 403: the Authorizer's refusal, in AWS's access-denied wording.
    #[error("{0}")]
    AccessDenied(String),
    /// An error of the request itself, raised before the operation decodes its input
    /// (`MalformedQueryString`, `MissingParameter`, …), passed through as it is.
    #[error("{0}")]
    Request(AwsError),
    /// The server's fault; details are logged, never sent.
    #[error("internal failure: {0}")]
    Internal(#[source] CoreError),
}

impl ServiceError for IamError {
    fn code(&self) -> &str {
        match self {
            IamError::NoSuchEntity(_) => "NoSuchEntity",
            IamError::EntityAlreadyExists(_) => "EntityAlreadyExists",
            IamError::DeleteConflict(_) => "DeleteConflict",
            IamError::LimitExceeded(_) => "LimitExceeded",
            IamError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            IamError::InvalidInput(_) => "InvalidInput",
            IamError::ValidationError(_) => "ValidationError",
            IamError::UnmodifiableEntity(_) => "UnmodifiableEntity",
            IamError::ConcurrentModification(_) => "ConcurrentModification",
            IamError::EntityTemporarilyUnmodifiable(_) => "EntityTemporarilyUnmodifiable",
            IamError::PolicyNotAttachable(_) => "PolicyNotAttachable",
            IamError::PolicyEvaluation(_) => "PolicyEvaluation",
            IamError::AccessDenied(_) => "AccessDenied",
            IamError::Request(e) => &e.code,
            IamError::Internal(_) => "InternalFailure",
        }
    }

    fn http_status(&self) -> u16 {
        match self {
            IamError::NoSuchEntity(_) => 404,
            IamError::EntityAlreadyExists(_)
            | IamError::DeleteConflict(_)
            | IamError::LimitExceeded(_)
            | IamError::ConcurrentModification(_)
            | IamError::EntityTemporarilyUnmodifiable(_) => 409,
            IamError::AccessDenied(_) => 403,
            IamError::PolicyEvaluation(_) | IamError::Internal(_) => 500,
            IamError::Request(e) => e.status,
            IamError::MalformedPolicyDocument(_)
            | IamError::InvalidInput(_)
            | IamError::ValidationError(_)
            | IamError::UnmodifiableEntity(_)
            | IamError::PolicyNotAttachable(_) => 400,
        }
    }

    fn message(&self) -> Option<Cow<'_, str>> {
        match self {
            IamError::Internal(_) => Some(Cow::Borrowed(INTERNAL_MESSAGE)),
            IamError::Request(e) => e.message.as_deref().map(Cow::Borrowed),
            other => Some(Cow::Owned(other.to_string())),
        }
    }

    fn is_internal(&self) -> bool {
        matches!(self, IamError::Internal(_))
    }
}

impl From<IamError> for AwsError {
    fn from(e: IamError) -> AwsError {
        to_aws_error(&e)
    }
}

/// Errors of the shared wire helpers (`Validator`, `query::decode`) arrive as `AwsError`s;
/// the ones IAM models become their variant, anything else passes through.
impl From<AwsError> for IamError {
    fn from(e: AwsError) -> IamError {
        let message = e.message.clone().unwrap_or_default();
        match &*e.code {
            "ValidationError" => IamError::ValidationError(message),
            "InvalidInput" => IamError::InvalidInput(message),
            "AccessDenied" => IamError::AccessDenied(message),
            _ => IamError::Request(e),
        }
    }
}

impl From<AuthzError> for IamError {
    fn from(e: AuthzError) -> IamError {
        match e {
            AuthzError::Denied { message, .. } => IamError::AccessDenied(message),
            AuthzError::Internal => IamError::Internal(CoreError::Corrupt(
                "internal failure while authorizing".to_string(),
            )),
        }
    }
}

impl From<CoreError> for IamError {
    fn from(e: CoreError) -> IamError {
        match e {
            CoreError::Aws(a) => a.into(),
            other => IamError::Internal(other),
        }
    }
}

impl From<tresor_store::StoreError> for IamError {
    fn from(e: tresor_store::StoreError) -> IamError {
        IamError::Internal(e.into())
    }
}

impl From<tresor_crypto::CryptoError> for IamError {
    fn from(e: tresor_crypto::CryptoError) -> IamError {
        IamError::Internal(e.into())
    }
}

/// For the kernel's questions answered by IAM code (`Directory::identity_policies`) and the
/// handlers still on the kernel's error type.
impl From<IamError> for CoreError {
    fn from(e: IamError) -> CoreError {
        match e {
            IamError::Internal(inner) => inner,
            other => CoreError::Aws(to_aws_error(&other)),
        }
    }
}

/// An STS operation's failure (AWS STS API reference, each action's "Errors" section).
#[derive(Debug, thiserror::Error)]
pub enum StsError {
    /// 400: a session policy does not parse or names a policy that cannot be used.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// 400: the session policies and tags exceed the packed size limit.
    #[error("{0}")]
    PackedPolicyTooLarge(String),
    /// 403: STS is not activated in the region.
    #[error("{0}")]
    RegionDisabledException(String),
    /// 400: the web identity or SAML token has expired.
    #[error("{0}")]
    ExpiredTokenException(String),
    /// 400: the web identity token could not be validated (not a JWT, unknown provider, bad
    /// signature, wrong audience).
    #[error("{0}")]
    InvalidIdentityToken(String),
    /// 400: the identity provider could not be reached to verify the token.
    #[error("{0}")]
    IdpCommunicationError(String),
    /// 400: a member violates the model's constraints.
    #[error("{0}")]
    ValidationError(String),
    /// 403: the Authorizer's refusal or STS's own (a root caller assuming a role, …).
    #[error("{0}")]
    AccessDenied(String),
    /// An error of the request itself, raised before the operation decodes its input.
    #[error("{0}")]
    Request(AwsError),
    /// The server's fault; details are logged, never sent.
    #[error("internal failure: {0}")]
    Internal(#[source] CoreError),
}

impl ServiceError for StsError {
    fn code(&self) -> &str {
        match self {
            StsError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            StsError::PackedPolicyTooLarge(_) => "PackedPolicyTooLarge",
            StsError::RegionDisabledException(_) => "RegionDisabledException",
            StsError::ExpiredTokenException(_) => "ExpiredTokenException",
            StsError::InvalidIdentityToken(_) => "InvalidIdentityToken",
            StsError::IdpCommunicationError(_) => "IDPCommunicationError",
            StsError::ValidationError(_) => "ValidationError",
            StsError::AccessDenied(_) => "AccessDenied",
            StsError::Request(e) => &e.code,
            StsError::Internal(_) => "InternalFailure",
        }
    }

    fn http_status(&self) -> u16 {
        match self {
            StsError::RegionDisabledException(_) | StsError::AccessDenied(_) => 403,
            StsError::Request(e) => e.status,
            StsError::Internal(_) => 500,
            StsError::MalformedPolicyDocument(_)
            | StsError::PackedPolicyTooLarge(_)
            | StsError::ExpiredTokenException(_)
            | StsError::InvalidIdentityToken(_)
            | StsError::IdpCommunicationError(_)
            | StsError::ValidationError(_) => 400,
        }
    }

    fn message(&self) -> Option<Cow<'_, str>> {
        match self {
            StsError::Internal(_) => Some(Cow::Borrowed(INTERNAL_MESSAGE)),
            StsError::Request(e) => e.message.as_deref().map(Cow::Borrowed),
            other => Some(Cow::Owned(other.to_string())),
        }
    }

    fn is_internal(&self) -> bool {
        matches!(self, StsError::Internal(_))
    }
}

impl From<StsError> for AwsError {
    fn from(e: StsError) -> AwsError {
        to_aws_error(&e)
    }
}

impl From<AwsError> for StsError {
    fn from(e: AwsError) -> StsError {
        let message = e.message.clone().unwrap_or_default();
        match &*e.code {
            "ValidationError" => StsError::ValidationError(message),
            "AccessDenied" => StsError::AccessDenied(message),
            _ => StsError::Request(e),
        }
    }
}

impl From<AuthzError> for StsError {
    fn from(e: AuthzError) -> StsError {
        match e {
            AuthzError::Denied { message, .. } => StsError::AccessDenied(message),
            AuthzError::Internal => StsError::Internal(CoreError::Corrupt(
                "internal failure while authorizing".to_string(),
            )),
        }
    }
}

impl From<CoreError> for StsError {
    fn from(e: CoreError) -> StsError {
        match e {
            CoreError::Aws(a) => a.into(),
            other => StsError::Internal(other),
        }
    }
}

/// IAM look-ups STS makes (a role's trust policy, a managed session policy).
impl From<IamError> for StsError {
    fn from(e: IamError) -> StsError {
        match e {
            IamError::Internal(inner) => StsError::Internal(inner),
            IamError::AccessDenied(m) => StsError::AccessDenied(m),
            IamError::ValidationError(m) => StsError::ValidationError(m),
            IamError::MalformedPolicyDocument(m) => StsError::MalformedPolicyDocument(m),
            other => StsError::Request(to_aws_error(&other)),
        }
    }
}

impl From<tresor_store::StoreError> for StsError {
    fn from(e: tresor_store::StoreError) -> StsError {
        StsError::Internal(e.into())
    }
}

impl From<tresor_crypto::CryptoError> for StsError {
    fn from(e: tresor_crypto::CryptoError) -> StsError {
        StsError::Internal(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_wire::Protocol;

    #[test]
    fn iam_codes_and_statuses_follow_the_model() {
        for (e, code, status) in [
            (IamError::NoSuchEntity("m".into()), "NoSuchEntity", 404),
            (
                IamError::EntityAlreadyExists("m".into()),
                "EntityAlreadyExists",
                409,
            ),
            (IamError::DeleteConflict("m".into()), "DeleteConflict", 409),
            (IamError::LimitExceeded("m".into()), "LimitExceeded", 409),
            (
                IamError::MalformedPolicyDocument("m".into()),
                "MalformedPolicyDocument",
                400,
            ),
            (IamError::InvalidInput("m".into()), "InvalidInput", 400),
            (
                IamError::ValidationError("m".into()),
                "ValidationError",
                400,
            ),
            (IamError::AccessDenied("m".into()), "AccessDenied", 403),
        ] {
            let a = AwsError::from(e);
            assert_eq!((&*a.code, a.status), (code, status));
            assert_eq!(a.message.as_deref(), Some("m"));
        }
    }

    #[test]
    fn internal_details_never_reach_the_wire() {
        let e = IamError::Internal(CoreError::Corrupt("user record /secret/path".into()));
        let a = AwsError::from(e);
        assert_eq!(a.status, 500);
        assert_eq!(a.message.as_deref(), Some(INTERNAL_MESSAGE));
        let s = AwsError::from(StsError::Internal(CoreError::Corrupt("x".into())));
        assert_eq!(s.message.as_deref(), Some(INTERNAL_MESSAGE));
    }

    #[test]
    fn denials_are_access_denied_403() {
        let denied = AuthzError::Denied {
            protocol: Protocol::AwsQuery,
            message: "no".into(),
        };
        let a = AwsError::from(IamError::from(denied));
        assert_eq!((&*a.code, a.status), ("AccessDenied", 403));
        let a = AwsError::from(StsError::PackedPolicyTooLarge("p".into()));
        assert_eq!((&*a.code, a.status), ("PackedPolicyTooLarge", 400));
    }
}
