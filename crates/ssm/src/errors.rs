//! Parameter Store's errors in AWS's words. Every modeled error is a client fault (HTTP 400);
//! which key carries the message (`message` or `Message`) is the wire layer's business
//! (spec §1.1).
//!
//! Provenance of the texts: [O] quoted from real AWS responses in public issue threads, [M]
//! from the botocore model's shape documentation, [E] from emulators measured against AWS,
//! [?] ours where no public source gives the text.

use tresor_core::error::ServiceError;
use tresor_wire::{AwsError, Protocol};

/// [O] What AWS answers for a name that breaks the naming rules (bad character, interior
/// space, slash without a leading slash, `ssm` prefix) — the text mentions `ssm` whatever
/// the actual fault (aws/aws-sdk-php#1952, boto/boto3#1499, localstack#11538).
pub const NAME_RULES: &str = "Parameter name: can't be prefixed with \"ssm\" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_";

pub fn validation(message: impl Into<String>) -> AwsError {
    AwsError::client("ValidationException", message)
}

pub fn invalid_name() -> AwsError {
    validation(NAME_RULES)
}

/// [O] Writes to a name starting with `aws` (`/aws/…`, `awslimitschecker`):
/// `AccessDeniedException: No access to reserved parameter name: aws/test.` — the name is
/// shown without its leading slash (cfn-lint#4089, aws-deployment-framework#119).
pub fn reserved_name(name: &str) -> AwsError {
    AwsError::client(
        "AccessDeniedException",
        format!(
            "No access to reserved parameter name: {}.",
            name.strip_prefix('/').unwrap_or(name)
        ),
    )
}

/// [O] `ParameterNotFound` carries no message at all (spec §9.2).
pub fn parameter_not_found() -> AwsError {
    AwsError::bare("ParameterNotFound", 400)
}

/// [E] `Systems Manager could not find version 5 of /x. Verify the version and try again.`
pub fn version_not_found(name: &str, version: i64) -> AwsError {
    AwsError::client(
        "ParameterVersionNotFound",
        format!(
            "Systems Manager could not find version {version} of {name}. Verify the version and try again."
        ),
    )
}

/// [?] Same shape as the version text, for a label selector.
pub fn label_not_found(name: &str, label: &str) -> AwsError {
    AwsError::client(
        "ParameterVersionNotFound",
        format!(
            "Systems Manager could not find label {label} of {name}. Verify the label and try again."
        ),
    )
}

/// [E] spec §3.3: more than one selector colon, or an empty selector.
pub fn bad_selector() -> AwsError {
    validation(
        "Invalid parameter name. Please use correct syntax for referencing a version/label <name>:<version/label>",
    )
}

/// [E] `The parameter already exists. To overwrite this value, set the overwrite option in
/// the request to true.`
pub fn already_exists() -> AwsError {
    AwsError::client(
        "ParameterAlreadyExists",
        "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
    )
}

/// [M] HierarchyLevelLimitExceededException's member documentation.
pub fn hierarchy_too_deep() -> AwsError {
    AwsError::client(
        "HierarchyLevelLimitExceededException",
        "A hierarchy can have a maximum of 15 levels. For more information, see About requirements and constraints for parameter names in the Amazon Web Services Systems Manager User Guide.",
    )
}

/// [M] ParameterMaxVersionLimitExceeded's documentation quotes the message.
pub fn max_versions(name: &str, oldest: i64) -> AwsError {
    AwsError::client(
        "ParameterMaxVersionLimitExceeded",
        format!(
            "You attempted to create a new version of {name} by calling the PutParameter API with the overwrite flag. Version {oldest}, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again."
        ),
    )
}

/// [M] InvalidAllowedPatternException's member documentation.
pub fn invalid_allowed_pattern() -> AwsError {
    AwsError::client(
        "InvalidAllowedPatternException",
        "The request doesn't meet the regular expression requirement.",
    )
}

/// [E] `Parameter value, cannot be validated against allowedPattern: <pattern>` — never the
/// value itself.
pub fn pattern_mismatch(pattern: &str) -> AwsError {
    AwsError::client(
        "ParameterPatternMismatchException",
        format!("Parameter value, cannot be validated against allowedPattern: {pattern}"),
    )
}

/// [M] ParameterVersionLabelLimitExceeded's documentation.
pub fn label_limit() -> AwsError {
    AwsError::client(
        "ParameterVersionLabelLimitExceeded",
        "A parameter version can have a maximum of ten labels.",
    )
}

pub fn invalid_filter_key() -> AwsError {
    // The model's InvalidFilterKey has no members: no message.
    AwsError::bare("InvalidFilterKey", 400)
}

/// [E] `The following filter option is not valid: Contains. Valid options include:
/// [Equals, BeginsWith].`
pub fn invalid_filter_option(option: &str, valid: &[&str]) -> AwsError {
    AwsError::client(
        "InvalidFilterOption",
        format!(
            "The following filter option is not valid: {option}. Valid options include: [{}].",
            valid.join(", ")
        ),
    )
}

/// [E] Same shape as the option text.
pub fn invalid_filter_value(value: &str, valid: &str) -> AwsError {
    AwsError::client(
        "InvalidFilterValue",
        format!("The following filter value is not valid: {value}. Valid values include: {valid}."),
    )
}

/// [M] InvalidNextToken's documentation.
pub fn invalid_next_token() -> AwsError {
    AwsError::client("InvalidNextToken", "The specified token isn't valid.")
}

/// The model's InvalidResourceType / InvalidResourceId / TooManyTagsError have no members.
pub fn invalid_resource_type() -> AwsError {
    AwsError::bare("InvalidResourceType", 400)
}

pub fn invalid_resource_id() -> AwsError {
    AwsError::bare("InvalidResourceId", 400)
}

pub fn too_many_tags() -> AwsError {
    AwsError::bare("TooManyTagsError", 400)
}

/// A storage or crypto failure: logged, never shown.
pub fn internal(e: impl Into<ServiceError>) -> AwsError {
    e.into().into_aws(Protocol::AwsJson11)
}
