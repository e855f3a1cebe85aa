//! Systems Manager Parameter Store (awsJson1.1, target prefix `AmazonSSM`): String,
//! StringList and SecureString parameters with hierarchies, versions, labels, tiers,
//! parameter policies and tags, and the `/aws/reference/secretsmanager/…` path that reads
//! Secrets Manager secrets through Parameter Store (AWS Systems Manager User Guide, "AWS
//! Systems Manager Parameter Store").
//!
//! Each operation names its IAM action (`ssm:<Op>`), the parameter ARN and the condition
//! keys to the Authorizer and never decides access itself ([`access`]). SecureString values
//! are sealed under a fresh data key per version that KMS generates *as the caller*
//! ([`secure`]). Every write is one store transaction. No SecureString value reaches a log
//! line, an error, a `Debug` output or the store unencrypted.
//!
//! - [`handler`]: the operations, wired into the server's dispatch table.
//! - [`run_due_jobs`]: the background work (parameters whose Expiration policy is due).

mod access;
pub mod errors;
pub mod filters;
mod jobs;
pub mod labels;
pub mod listing;
mod model;
mod names;
pub mod params;
mod policies;
mod reference;
mod secure;
pub mod shapes;
pub mod tags;
mod values;

use tresor_core::{JsonHandler, json_handler};

pub use errors::SsmError;
pub use jobs::run_due_jobs;

/// The SSM operation named `op`, if tresor implements it.
pub fn handler(op: &str) -> Option<JsonHandler> {
    let h: JsonHandler = match op {
        "PutParameter" => json_handler!(params::put_parameter),
        "GetParameter" => json_handler!(params::get_parameter),
        "GetParameters" => json_handler!(params::get_parameters),
        "DeleteParameter" => json_handler!(params::delete_parameter),
        "DeleteParameters" => json_handler!(params::delete_parameters),
        "GetParametersByPath" => json_handler!(listing::get_parameters_by_path),
        "DescribeParameters" => json_handler!(listing::describe_parameters),
        "GetParameterHistory" => json_handler!(listing::get_parameter_history),
        "LabelParameterVersion" => json_handler!(labels::label_parameter_version),
        "UnlabelParameterVersion" => json_handler!(labels::unlabel_parameter_version),
        "AddTagsToResource" => json_handler!(tags::add_tags_to_resource),
        "RemoveTagsFromResource" => json_handler!(tags::remove_tags_from_resource),
        "ListTagsForResource" => json_handler!(tags::list_tags_for_resource),
        _ => return None,
    };
    Some(h)
}

#[cfg(test)]
mod tests;
