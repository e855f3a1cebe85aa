//! Wire shapes shared by several operations (botocore model `secretsmanager/2017-10-17`):
//! tags, the DescribeSecret / ListSecrets entry, and serde helpers that keep secret values in
//! zeroizing buffers from the request body to the response body.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use tresor_crypto::SecretString;
use tresor_wire::json::epoch_seconds;

use crate::model::{ReplicationStatus, RotationRules, SecretRecord};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// A `SecretString` member, straight into a zeroizing buffer.
pub fn secret_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
}

pub fn ser_secret_string<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v.expose()),
        None => s.serialize_none(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationStatusOut {
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub last_accessed_date: Option<OffsetDateTime>,
}

impl From<&ReplicationStatus> for ReplicationStatusOut {
    fn from(r: &ReplicationStatus) -> Self {
        ReplicationStatusOut {
            region: r.region.clone(),
            // AWS shows the default key by its alias (API reference examples).
            kms_key_id: Some(
                r.kms_key_id
                    .clone()
                    .unwrap_or_else(|| "alias/aws/secretsmanager".to_string()),
            ),
            status: r.status.clone(),
            status_message: r.status_message.clone(),
            last_accessed_date: r.last_accessed,
        }
    }
}

/// DescribeSecret's output and ListSecrets' `SecretListEntry`: the same members, except that
/// the version map is `VersionIdsToStages` in one and `SecretVersionsToStages` in the other
/// (botocore model). `ReplicationStatus` exists only in DescribeSecret.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretDescription {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(rename = "RotationLambdaARN", skip_serializing_if = "Option::is_none")]
    pub rotation_lambda_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<RotationRules>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub last_rotated_date: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub last_changed_date: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub last_accessed_date: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub deleted_date: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub next_rotation_date: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_ids_to_stages: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_versions_to_stages: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owning_service: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub created_date: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<Vec<ReplicationStatusOut>>,
}

impl SecretDescription {
    /// `list_entry`: the ListSecrets form (`SecretVersionsToStages`, no replication status).
    pub fn of(rec: &SecretRecord, list_entry: bool) -> SecretDescription {
        let stages = rec.version_stages();
        let stages = (!stages.is_empty()).then_some(stages);
        let (version_ids_to_stages, secret_versions_to_stages) = if list_entry {
            (None, stages)
        } else {
            (stages, None)
        };
        let tags: Vec<Tag> = rec
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        SecretDescription {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            r#type: rec.secret_type.clone(),
            description: rec.description.clone(),
            kms_key_id: rec.kms_key_id.clone(),
            rotation_enabled: rec.rotation_enabled,
            rotation_lambda_arn: rec.rotation_lambda_arn.clone(),
            rotation_rules: rec.rotation_rules.clone(),
            // "If the secret isn't configured for rotation or rotation has been disabled,
            // Secrets Manager returns null" (API reference, DescribeSecret).
            last_rotated_date: rec
                .last_rotated
                .filter(|_| rec.rotation_enabled == Some(true)),
            last_changed_date: Some(rec.last_changed),
            last_accessed_date: rec.last_accessed,
            deleted_date: rec.deleted,
            next_rotation_date: rec
                .next_rotation
                .filter(|_| rec.rotation_enabled == Some(true)),
            tags: (!tags.is_empty()).then_some(tags),
            version_ids_to_stages,
            secret_versions_to_stages,
            owning_service: rec.owning_service.clone(),
            created_date: Some(rec.created),
            primary_region: Some(
                rec.primary_region
                    .clone()
                    .unwrap_or_else(|| rec.region.clone()),
            ),
            replication_status: (!list_entry && !rec.replication_status.is_empty()).then(|| {
                rec.replication_status
                    .iter()
                    .map(ReplicationStatusOut::from)
                    .collect()
            }),
        }
    }
}

/// The output of the operations that answer with the secret's ARN and name only.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArnNameOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}
