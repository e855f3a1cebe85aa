//! Secrets Manager (awsJson1.1, target prefix `secretsmanager`): secrets, versions and staging
//! labels, envelope encryption through KMS, resource policies with principal capture, and the
//! deletion lifecycle with its durable purge job.
//!
//! Each operation resolves the `SecretId`, names its IAM action (`secretsmanager:<Op>`), the
//! secret ARN and the condition keys to the Authorizer together with the secret's resource
//! policy, and never decides access itself ([`access`]). Every write is one store transaction,
//! KMS data-key generation included. No secret value reaches a log line, an error, a `Debug`
//! output or the store unencrypted.
//!
//! Rotation and replication operations (RotateSecret, CancelRotateSecret,
//! ReplicateSecretToRegions, RemoveRegionsFromReplication, StopReplicationToReplica) are not
//! registered yet; the records already carry their state.

mod access;
pub mod deletion;
mod envelope;
pub mod errors;
mod jobs;
pub mod listing;
mod model;
pub mod password;
pub mod policy;
pub mod secrets;
pub mod shapes;
pub mod tags;
mod validate;
pub mod versions;

use tresor_core::JsonHandler;

pub use errors::SecretsManagerError;
pub use jobs::run_due_jobs;
pub use versions::{SecretValue, read_secret_value};

/// The Secrets Manager operation named `op`, if tresor implements it.
pub fn handler(op: &str) -> Option<JsonHandler> {
    Some(match op {
        "CreateSecret" => tresor_core::json_handler!(secrets::create_secret),
        "DescribeSecret" => tresor_core::json_handler!(secrets::describe_secret),
        "UpdateSecret" => tresor_core::json_handler!(secrets::update_secret),
        "DeleteSecret" => tresor_core::json_handler!(deletion::delete_secret),
        "RestoreSecret" => tresor_core::json_handler!(deletion::restore_secret),
        "ListSecrets" => tresor_core::json_handler!(listing::list_secrets),
        "TagResource" => tresor_core::json_handler!(tags::tag_resource),
        "UntagResource" => tresor_core::json_handler!(tags::untag_resource),
        "GetSecretValue" => tresor_core::json_handler!(versions::get_secret_value),
        "BatchGetSecretValue" => tresor_core::json_handler!(versions::batch_get_secret_value),
        "PutSecretValue" => tresor_core::json_handler!(versions::put_secret_value),
        "UpdateSecretVersionStage" => {
            tresor_core::json_handler!(versions::update_secret_version_stage)
        }
        "ListSecretVersionIds" => tresor_core::json_handler!(versions::list_secret_version_ids),
        "PutResourcePolicy" => tresor_core::json_handler!(policy::put_resource_policy),
        "GetResourcePolicy" => tresor_core::json_handler!(policy::get_resource_policy),
        "DeleteResourcePolicy" => tresor_core::json_handler!(policy::delete_resource_policy),
        "ValidateResourcePolicy" => {
            tresor_core::json_handler!(policy::validate_resource_policy)
        }
        "GetRandomPassword" => tresor_core::json_handler!(password::get_random_password),
        _ => return None,
    })
}
