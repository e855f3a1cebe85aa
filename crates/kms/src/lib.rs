//! KMS (awsJson1.1, target prefix `TrentService`): customer and AWS-managed keys, key
//! policies, and the envelope encryption every secret and SecureString rests on.
//!
//! - [`handler`]: the HTTP operations, wired into the server's dispatch table.
//! - [`envelope`]: the service-to-service API Secrets Manager and Parameter Store call *as
//!   the original caller* (same Authorizer, `kms:ViaService`).
//! - [`run_due_jobs`]: the background work (key deletion, automatic rotation).
//!
//! This crate never decides access (it asks `Services::authorize` with the key policy), never
//! parses HTTP, and never lets key material or plaintext reach the store unsealed, a log line,
//! an error message or `Debug` output. Ciphertext and material formats are documented in
//! [`blob`].

pub mod blob;
pub mod envelope;
pub mod errors;
mod jobs;
mod keys;
mod model;
pub mod ops;

pub use envelope::{DataKey, decrypt, generate_data_key, resolve_key_arn};
pub use errors::KmsError;
pub use jobs::run_due_jobs;

use tresor_core::{JsonHandler, json_handler};

/// The KMS operation named `op`, if tresor implements it.
pub fn handler(op: &str) -> Option<JsonHandler> {
    use ops::{aliases, crypto, keys, policy, rotation, tags};
    let h: JsonHandler = match op {
        "CreateKey" => json_handler!(keys::create_key),
        "DescribeKey" => json_handler!(keys::describe_key),
        "ListKeys" => json_handler!(keys::list_keys),
        "EnableKey" => json_handler!(keys::enable_key),
        "DisableKey" => json_handler!(keys::disable_key),
        "ScheduleKeyDeletion" => json_handler!(keys::schedule_key_deletion),
        "CancelKeyDeletion" => json_handler!(keys::cancel_key_deletion),
        "UpdateKeyDescription" => json_handler!(keys::update_key_description),
        "CreateAlias" => json_handler!(aliases::create_alias),
        "UpdateAlias" => json_handler!(aliases::update_alias),
        "DeleteAlias" => json_handler!(aliases::delete_alias),
        "ListAliases" => json_handler!(aliases::list_aliases),
        "Encrypt" => json_handler!(crypto::encrypt),
        "Decrypt" => json_handler!(crypto::decrypt),
        "ReEncrypt" => json_handler!(crypto::re_encrypt),
        "GenerateDataKey" => json_handler!(crypto::generate_data_key),
        "GenerateDataKeyWithoutPlaintext" => {
            json_handler!(crypto::generate_data_key_without_plaintext)
        }
        "GenerateRandom" => json_handler!(crypto::generate_random),
        "GetKeyPolicy" => json_handler!(policy::get_key_policy),
        "PutKeyPolicy" => json_handler!(policy::put_key_policy),
        "ListKeyPolicies" => json_handler!(policy::list_key_policies),
        "EnableKeyRotation" => json_handler!(rotation::enable_key_rotation),
        "DisableKeyRotation" => json_handler!(rotation::disable_key_rotation),
        "GetKeyRotationStatus" => json_handler!(rotation::get_key_rotation_status),
        "RotateKeyOnDemand" => json_handler!(rotation::rotate_key_on_demand),
        "ListKeyRotations" => json_handler!(rotation::list_key_rotations),
        "TagResource" => json_handler!(tags::tag_resource),
        "UntagResource" => json_handler!(tags::untag_resource),
        "ListResourceTags" => json_handler!(tags::list_resource_tags),
        _ => return None,
    };
    Some(h)
}

#[cfg(test)]
mod tests;
