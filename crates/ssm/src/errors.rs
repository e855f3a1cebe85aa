//! Parameter Store's errors: [`SsmError`], one variant per error code of the Systems Manager
//! API (botocore model `ssm` 2014-11-06) that tresor returns, and AWS's wording for them.
//! Every modeled error is a client fault (HTTP 400); which key carries the message
//! (`message` or `Message`) is the wire layer's business. Storage, crypto and corrupt-record
//! failures become [`SsmError::Internal`], rendered as AWS's generic internal error and logged
//! server-side, never with details.
//!
//! Where the texts come from: quoted from real AWS responses in public issue threads, from
//! the model's shape documentation, or from emulators measured against AWS; the doc comment
//! of each constructor says which where it matters.

use tresor_core::error::{AuthzError, ServiceError};
use tresor_wire::AwsError;

/// A Parameter Store operation's failure, as AWS names it. No variant ever carries a
/// SecureString value.
#[derive(Debug, thiserror::Error)]
pub enum SsmError {
    #[error("AccessDeniedException: {0}")]
    AccessDenied(String),
    #[error("HierarchyLevelLimitExceededException: {0}")]
    HierarchyLevelLimitExceeded(String),
    #[error("IncompatiblePolicyException: {0}")]
    IncompatiblePolicy(String),
    #[error("InvalidAllowedPatternException: {0}")]
    InvalidAllowedPattern(String),
    /// The model's InvalidFilterKey has no members: no message.
    #[error("InvalidFilterKey")]
    InvalidFilterKey,
    #[error("InvalidFilterOption: {0}")]
    InvalidFilterOption(String),
    #[error("InvalidFilterValue: {0}")]
    InvalidFilterValue(String),
    #[error("InvalidKeyId: {0}")]
    InvalidKeyId(String),
    #[error("InvalidNextToken: {0}")]
    InvalidNextToken(String),
    #[error("InvalidPolicyAttributeException: {0}")]
    InvalidPolicyAttribute(String),
    #[error("InvalidPolicyTypeException: {0}")]
    InvalidPolicyType(String),
    /// No members in the model: no message.
    #[error("InvalidResourceId")]
    InvalidResourceId,
    /// No members in the model: no message.
    #[error("InvalidResourceType")]
    InvalidResourceType,
    #[error("ParameterAlreadyExists: {0}")]
    ParameterAlreadyExists(String),
    #[error("ParameterMaxVersionLimitExceeded: {0}")]
    ParameterMaxVersionLimitExceeded(String),
    /// A parameter that does not exist: AWS sends no message at all.
    #[error("ParameterNotFound")]
    ParameterNotFound,
    /// `ParameterNotFound` with AWS's text for a missing secret behind
    /// `/aws/reference/secretsmanager/…`.
    #[error("ParameterNotFound: {0}")]
    ReferencedSecretNotFound(String),
    #[error("ParameterPatternMismatchException: {0}")]
    ParameterPatternMismatch(String),
    #[error("ParameterVersionLabelLimitExceeded: {0}")]
    ParameterVersionLabelLimitExceeded(String),
    #[error("ParameterVersionNotFound: {0}")]
    ParameterVersionNotFound(String),
    #[error("PoliciesLimitExceededException: {0}")]
    PoliciesLimitExceeded(String),
    /// No members in the model: no message.
    #[error("TooManyTagsError")]
    TooManyTagsError,
    /// A constraint of the model (length, range, pattern) or a documented rule.
    #[error("ValidationException: {0}")]
    Validation(String),
    /// `ValidationException` with AWS's text for a refusal by a service Parameter Store
    /// depends on (Secrets Manager or KMS behind a reference read); it fails a whole
    /// GetParameters call.
    #[error("ValidationException: {DEPENDENCY_FAILURE}")]
    DependencyFailure,
    /// A storage, crypto or corrupt-record failure; the details were logged where it
    /// happened.
    #[error("internal failure")]
    Internal,
}

/// Emulators' text for [`SsmError::DependencyFailure`].
const DEPENDENCY_FAILURE: &str = "An error occurred while calling one AWS dependency service.";

/// AWS's generic internal-error text.
const INTERNAL_MESSAGE: &str =
    "The request processing has failed because of an unknown error, exception or failure.";

impl SsmError {
    /// The AWS error code (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            SsmError::AccessDenied(_) => "AccessDeniedException",
            SsmError::HierarchyLevelLimitExceeded(_) => "HierarchyLevelLimitExceededException",
            SsmError::IncompatiblePolicy(_) => "IncompatiblePolicyException",
            SsmError::InvalidAllowedPattern(_) => "InvalidAllowedPatternException",
            SsmError::InvalidFilterKey => "InvalidFilterKey",
            SsmError::InvalidFilterOption(_) => "InvalidFilterOption",
            SsmError::InvalidFilterValue(_) => "InvalidFilterValue",
            SsmError::InvalidKeyId(_) => "InvalidKeyId",
            SsmError::InvalidNextToken(_) => "InvalidNextToken",
            SsmError::InvalidPolicyAttribute(_) => "InvalidPolicyAttributeException",
            SsmError::InvalidPolicyType(_) => "InvalidPolicyTypeException",
            SsmError::InvalidResourceId => "InvalidResourceId",
            SsmError::InvalidResourceType => "InvalidResourceType",
            SsmError::ParameterAlreadyExists(_) => "ParameterAlreadyExists",
            SsmError::ParameterMaxVersionLimitExceeded(_) => "ParameterMaxVersionLimitExceeded",
            SsmError::ParameterNotFound | SsmError::ReferencedSecretNotFound(_) => {
                "ParameterNotFound"
            }
            SsmError::ParameterPatternMismatch(_) => "ParameterPatternMismatchException",
            SsmError::ParameterVersionLabelLimitExceeded(_) => "ParameterVersionLabelLimitExceeded",
            SsmError::ParameterVersionNotFound(_) => "ParameterVersionNotFound",
            SsmError::PoliciesLimitExceeded(_) => "PoliciesLimitExceededException",
            SsmError::TooManyTagsError => "TooManyTagsError",
            SsmError::Validation(_) | SsmError::DependencyFailure => "ValidationException",
            SsmError::Internal => "InternalFailure",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            SsmError::Internal => 500,
            _ => 400,
        }
    }

    /// The message AWS sends, `None` where it sends none.
    pub fn message(&self) -> Option<&str> {
        match self {
            SsmError::AccessDenied(m)
            | SsmError::HierarchyLevelLimitExceeded(m)
            | SsmError::IncompatiblePolicy(m)
            | SsmError::InvalidAllowedPattern(m)
            | SsmError::InvalidFilterOption(m)
            | SsmError::InvalidFilterValue(m)
            | SsmError::InvalidKeyId(m)
            | SsmError::InvalidNextToken(m)
            | SsmError::InvalidPolicyAttribute(m)
            | SsmError::InvalidPolicyType(m)
            | SsmError::ParameterAlreadyExists(m)
            | SsmError::ParameterMaxVersionLimitExceeded(m)
            | SsmError::ReferencedSecretNotFound(m)
            | SsmError::ParameterPatternMismatch(m)
            | SsmError::ParameterVersionLabelLimitExceeded(m)
            | SsmError::ParameterVersionNotFound(m)
            | SsmError::PoliciesLimitExceeded(m)
            | SsmError::Validation(m) => Some(m),
            SsmError::DependencyFailure => Some(DEPENDENCY_FAILURE),
            SsmError::InvalidFilterKey
            | SsmError::InvalidResourceId
            | SsmError::InvalidResourceType
            | SsmError::ParameterNotFound
            | SsmError::TooManyTagsError => None,
            SsmError::Internal => Some(INTERNAL_MESSAGE),
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, SsmError::Internal)
    }
}

/// The wire's view of the error: rendered (and, when internal, logged) by
/// [`tresor_wire::error::to_aws_error`], as every service's errors are.
impl tresor_wire::error::ServiceError for SsmError {
    fn code(&self) -> &str {
        SsmError::code(self)
    }

    fn http_status(&self) -> u16 {
        SsmError::http_status(self)
    }

    fn message(&self) -> Option<std::borrow::Cow<'_, str>> {
        SsmError::message(self).map(std::borrow::Cow::Borrowed)
    }

    fn is_internal(&self) -> bool {
        SsmError::is_internal(self)
    }
}

impl From<SsmError> for AwsError {
    fn from(e: SsmError) -> AwsError {
        tresor_wire::error::to_aws_error(&e)
    }
}

impl From<AuthzError> for SsmError {
    fn from(e: AuthzError) -> SsmError {
        match e {
            AuthzError::Denied { message, .. } => SsmError::AccessDenied(message),
            AuthzError::Internal => SsmError::Internal,
        }
    }
}

impl From<SsmError> for ServiceError {
    fn from(e: SsmError) -> ServiceError {
        ServiceError::Aws(e.into())
    }
}

/// Maps a failed [`tresor_wire::validate::Validator`] (always a validation error).
pub(crate) fn from_validator(e: AwsError) -> SsmError {
    SsmError::Validation(e.message.unwrap_or_default())
}

/// Quoted from AWS: What AWS answers for a name that breaks the naming rules (bad character, interior
/// space, slash without a leading slash, `ssm` prefix) — the text mentions `ssm` whatever
/// the actual fault (aws/aws-sdk-php#1952, boto/boto3#1499, localstack#11538).
pub const NAME_RULES: &str = "Parameter name: can't be prefixed with \"ssm\" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_";

pub fn validation(message: impl Into<String>) -> SsmError {
    SsmError::Validation(message.into())
}

pub fn invalid_name() -> SsmError {
    validation(NAME_RULES)
}

/// Quoted from AWS: Writes to a name starting with `aws` (`/aws/…`, `awslimitschecker`):
/// `AccessDeniedException: No access to reserved parameter name: aws/test.` — the name is
/// shown without its leading slash (cfn-lint#4089, aws-deployment-framework#119).
pub fn reserved_name(name: &str) -> SsmError {
    SsmError::AccessDenied(format!(
        "No access to reserved parameter name: {}.",
        name.strip_prefix('/').unwrap_or(name)
    ))
}

/// Quoted from AWS: `ParameterNotFound` carries no message at all.
pub fn parameter_not_found() -> SsmError {
    SsmError::ParameterNotFound
}

/// Emulators' text: `Systems Manager could not find version 5 of /x. Verify the version and try again.`
pub fn version_not_found(name: &str, version: i64) -> SsmError {
    SsmError::ParameterVersionNotFound(format!(
        "Systems Manager could not find version {version} of {name}. Verify the version and try again."
    ))
}

/// Our wording: Same shape as the version text, for a label selector.
pub fn label_not_found(name: &str, label: &str) -> SsmError {
    SsmError::ParameterVersionNotFound(format!(
        "Systems Manager could not find label {label} of {name}. Verify the label and try again."
    ))
}

/// Emulators' text: more than one selector colon, or an empty selector.
pub fn bad_selector() -> SsmError {
    validation(
        "Invalid parameter name. Please use correct syntax for referencing a version/label <name>:<version/label>",
    )
}

/// Emulators' text: `The parameter already exists. To overwrite this value, set the overwrite option in
/// the request to true.`
pub fn already_exists() -> SsmError {
    SsmError::ParameterAlreadyExists("The parameter already exists. To overwrite this value, set the overwrite option in the request to true.".into(),
    )
}

/// From the model's documentation: HierarchyLevelLimitExceededException's member documentation.
pub fn hierarchy_too_deep() -> SsmError {
    SsmError::HierarchyLevelLimitExceeded("A hierarchy can have a maximum of 15 levels. For more information, see About requirements and constraints for parameter names in the Amazon Web Services Systems Manager User Guide.".into(),
    )
}

/// From the model's documentation: ParameterMaxVersionLimitExceeded's documentation quotes the message.
pub fn max_versions(name: &str, oldest: i64) -> SsmError {
    SsmError::ParameterMaxVersionLimitExceeded(format!(
        "You attempted to create a new version of {name} by calling the PutParameter API with the overwrite flag. Version {oldest}, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again."
    ))
}

/// From the model's documentation: InvalidAllowedPatternException's member documentation.
pub fn invalid_allowed_pattern() -> SsmError {
    SsmError::InvalidAllowedPattern(
        "The request doesn't meet the regular expression requirement.".into(),
    )
}

/// Emulators' text: `Parameter value, cannot be validated against allowedPattern: <pattern>` — never the
/// value itself.
pub fn pattern_mismatch(pattern: &str) -> SsmError {
    SsmError::ParameterPatternMismatch(format!(
        "Parameter value, cannot be validated against allowedPattern: {pattern}"
    ))
}

/// From the model's documentation: ParameterVersionLabelLimitExceeded's documentation.
pub fn label_limit() -> SsmError {
    SsmError::ParameterVersionLabelLimitExceeded(
        "A parameter version can have a maximum of ten labels.".into(),
    )
}

pub fn invalid_filter_key() -> SsmError {
    // The model's InvalidFilterKey has no members: no message.
    SsmError::InvalidFilterKey
}

/// Emulators' text: `The following filter option is not valid: Contains. Valid options include:
/// [Equals, BeginsWith].`
pub fn invalid_filter_option(option: &str, valid: &[&str]) -> SsmError {
    SsmError::InvalidFilterOption(format!(
        "The following filter option is not valid: {option}. Valid options include: [{}].",
        valid.join(", ")
    ))
}

/// Emulators' text: Same shape as the option text.
pub fn invalid_filter_value(value: &str, valid: &str) -> SsmError {
    SsmError::InvalidFilterValue(format!(
        "The following filter value is not valid: {value}. Valid values include: {valid}."
    ))
}

/// From the model's documentation: InvalidNextToken's documentation.
pub fn invalid_next_token() -> SsmError {
    SsmError::InvalidNextToken("The specified token isn't valid.".into())
}

/// The model's InvalidResourceType / InvalidResourceId / TooManyTagsError have no members.
pub fn invalid_resource_type() -> SsmError {
    SsmError::InvalidResourceType
}

pub fn invalid_resource_id() -> SsmError {
    SsmError::InvalidResourceId
}

pub fn too_many_tags() -> SsmError {
    SsmError::TooManyTagsError
}

/// A storage or crypto failure: logged, never shown.
pub fn internal(e: impl Into<ServiceError>) -> SsmError {
    tracing::error!(error = %e.into(), "internal failure");
    SsmError::Internal
}
