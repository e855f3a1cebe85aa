//! Output shapes shared by several operations (botocore model `Parameter`,
//! `ParameterInlinePolicy`, `Tag`). Members without a value are omitted, as AWS does. None of
//! these derive `Debug`: `Value` may hold a decrypted SecureString.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use tresor_crypto::Zeroizing;

use crate::model::PolicyRecord;

/// Serializes a value that may be a decrypted SecureString, kept in a zeroizing buffer.
pub fn ser_secret<S: serde::Serializer>(
    v: &Option<Zeroizing<String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(text) => s.serialize_str(text),
        None => s.serialize_none(),
    }
}

/// The same for a member that is always present.
pub fn ser_secret_str<S: serde::Serializer>(
    v: &Zeroizing<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterOut {
    pub name: String,
    #[serde(rename = "Type")]
    pub param_type: String,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_secret")]
    pub value: Option<Zeroizing<String>>,
    pub version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_secret")]
    pub source_result: Option<Zeroizing<String>>,
    #[serde(with = "tresor_wire::json::epoch_seconds")]
    pub last_modified_date: OffsetDateTime,
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InlinePolicy {
    pub policy_text: String,
    pub policy_type: String,
    pub policy_status: String,
}

pub fn inline_policies(policies: &[PolicyRecord]) -> Vec<InlinePolicy> {
    policies
        .iter()
        .map(|p| InlinePolicy {
            policy_text: p.text.clone(),
            policy_type: p.policy_type.clone(),
            policy_status: p.status.clone(),
        })
        .collect()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Serialize, Default)]
pub struct Empty {}
