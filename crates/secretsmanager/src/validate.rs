//! Input constraints from the botocore model (lengths, ranges, patterns), the name rule AWS
//! reports as `ValidationException`, and the checks it reports as `InvalidParameterException`.

use crate::errors::SecretsManagerError;
use tresor_crypto::{SecretBytes, SecretString};
use tresor_wire::validate::Validator;

use crate::errors;
use crate::model::ValueKind;
use crate::shapes::Tag;

/// Secret values: 1–65,536 bytes, string or binary (model `SecretStringType`,
/// `SecretBinaryType`; quotas page: "Secret value size 65,536 bytes").
pub const MAX_VALUE_BYTES: usize = 65_536;
/// Tags per secret (Secrets Manager User Guide, quotas / tagging restrictions).
pub const MAX_TAGS: usize = 50;

pub struct NewValue {
    pub kind: ValueKind,
    pub bytes: SecretBytes,
}

/// The value of a Create/Put/Update request: at most one of string and binary; `required`
/// for PutSecretValue.
pub fn new_value(
    v: &mut Validator,
    string: Option<SecretString>,
    binary: Option<SecretBytes>,
    required: bool,
) -> Result<Option<NewValue>, SecretsManagerError> {
    let value = match (string, binary) {
        (Some(_), Some(_)) => {
            // Moto's wording, said to follow AWS's (unconfirmed).
            return Err(errors::invalid_parameter(
                "You can't specify both a binary secret value and a string secret value in the same secret.",
            ));
        }
        (Some(s), None) => Some((
            "SecretString",
            NewValue {
                kind: ValueKind::String,
                bytes: SecretBytes::from(s),
            },
        )),
        (None, Some(b)) => Some((
            "SecretBinary",
            NewValue {
                kind: ValueKind::Binary,
                bytes: b,
            },
        )),
        (None, None) if required => {
            return Err(errors::invalid_parameter(
                "You must provide either SecretString or SecretBinary.",
            ));
        }
        (None, None) => None,
    };
    if let Some((member, nv)) = &value {
        // Never echo a secret in a validation message.
        if nv.bytes.is_empty() {
            v.fail(
                member,
                None,
                "Member must have length greater than or equal to 1",
            );
        } else if nv.bytes.len() > MAX_VALUE_BYTES {
            v.fail(
                member,
                None,
                &format!("Member must have length less than or equal to {MAX_VALUE_BYTES}"),
            );
        }
    }
    Ok(value.map(|(_, nv)| nv))
}

pub fn secret_id(v: &mut Validator, id: &str) {
    v.length("SecretId", Some(id), 1, 2048);
}

pub fn client_request_token(v: &mut Validator, token: Option<&str>) {
    v.length("ClientRequestToken", token, 32, 64);
}

pub fn version_id(v: &mut Validator, member: &str, id: Option<&str>) {
    v.length(member, id, 32, 64);
}

pub fn version_stage(v: &mut Validator, member: &str, stage: Option<&str>) {
    v.length(member, stage, 1, 256);
}

pub fn description(v: &mut Validator, d: Option<&str>) {
    v.length("Description", d, 0, 2048);
}

pub fn kms_key_id(v: &mut Validator, k: Option<&str>) {
    v.length("KmsKeyId", k, 0, 2048);
}

/// Names: 1–512 characters of ASCII letters, digits and `/_+=.@-` (CreateSecret `Name`).
pub fn name(v: &mut Validator, name: &str) -> Result<(), SecretsManagerError> {
    v.length("Name", Some(name), 1, 512);
    if !name.is_empty()
        && !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
    {
        // AWS's code and text (observed behavior, quoted in smithy-lang/smithy-typescript#1546).
        return Err(errors::validation(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
        ));
    }
    Ok(())
}

/// AWS's answer to more tags than a secret may hold.
pub fn too_many_tags() -> SecretsManagerError {
    errors::invalid_parameter("Number of tags exceeds Secrets Manager limit of 50.")
}

/// Tags: key 1–128, value 0–256, at most 50, `aws:` reserved. The count is checked first,
/// so an oversized list costs nothing more than its parsing.
pub fn tags(v: &mut Validator, tags: &[Tag]) -> Result<(), SecretsManagerError> {
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    for (i, t) in tags.iter().enumerate() {
        let i = i + 1;
        v.length(&format!("Tags.{i}.member.key"), Some(&t.key), 1, 128);
        v.length(&format!("Tags.{i}.member.value"), Some(&t.value), 0, 256);
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            // AWS reserves the prefix (Tagging best practices: "aws: prefix is reserved"); that
            // Secrets Manager refuses it with this code and text is unconfirmed.
            return Err(errors::invalid_parameter(
                "Invalid tag key: the aws: prefix is reserved for AWS use.",
            ));
        }
    }
    Ok(())
}

/// `TagKeys` of UntagResource: each key 1–128 characters. A secret holds at most 50 tags, so
/// a longer list is refused before anything else (and before any key is looked at) with
/// the constraint wording of a list member; the keys are not quoted back.
pub fn tag_keys(v: &mut Validator, keys: &[String]) -> Result<(), SecretsManagerError> {
    if keys.len() > MAX_TAGS {
        return Err(errors::validation(format!(
            "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}"
        )));
    }
    for (i, k) in keys.iter().enumerate() {
        v.length(&format!("TagKeys.{}.member", i + 1), Some(k), 1, 128);
    }
    Ok(())
}

pub fn finish(v: Validator) -> Result<(), SecretsManagerError> {
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(errors::from_validator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_allow_awss_character_set_only() {
        let mut v = Validator::new();
        assert!(name(&mut v, "ci/agent_token+x=1.a@b-c").is_ok());
        assert!(v.is_empty());
        let e = name(&mut Validator::new(), "bad name")
            .err()
            .map(|e| e.code().to_string());
        assert_eq!(e.as_deref(), Some("ValidationException"));
    }

    #[test]
    fn tag_counts_are_checked_before_the_tags() {
        let tag = |k: &str| Tag {
            key: k.to_string(),
            value: String::new(),
        };
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"))).collect();
        let e = tags(&mut Validator::new(), &many).err();
        assert_eq!(
            e.map(|e| e.code().to_string()).as_deref(),
            Some("InvalidParameterException")
        );
        let mut v = Validator::new();
        assert!(tags(&mut v, &many[..50]).is_ok());
        assert!(v.is_empty());
        let mut v = Validator::new();
        assert!(tags(&mut v, &[tag(&"k".repeat(129))]).is_ok());
        assert!(finish(v).is_err());

        let keys: Vec<String> = (0..100_000).map(|i| format!("k{i}")).collect();
        let e = tag_keys(&mut Validator::new(), &keys).err();
        assert_eq!(
            e.map(|e| e.code().to_string()).as_deref(),
            Some("ValidationException")
        );
        let mut v = Validator::new();
        assert!(tag_keys(&mut v, &keys[..50]).is_ok());
        assert!(v.is_empty());
    }

    #[test]
    fn values_are_checked_without_echoing_them() {
        let mut v = Validator::new();
        let big = SecretString::from("x".repeat(MAX_VALUE_BYTES + 1));
        assert!(new_value(&mut v, Some(big), None, false).is_ok());
        let e = finish(v)
            .err()
            .and_then(|e| e.message().map(str::to_string))
            .unwrap_or_default();
        assert!(e.contains("'***' at 'secretString'"), "{e}");
        let both = new_value(
            &mut Validator::new(),
            Some("a".into()),
            Some(SecretBytes::new(vec![1])),
            false,
        );
        assert_eq!(
            both.err().map(|e| e.code().to_string()).as_deref(),
            Some("InvalidParameterException")
        );
        let none = new_value(&mut Validator::new(), None, None, true);
        assert!(none.is_err());
    }
}
