//! The records Parameter Store keeps and the keys they live under.
//!
//! - `acct/<a>/region/<r>/ssm/param/<canonical name>` → [`ParameterRecord`]: the current
//!   metadata, labels (label → version), tags and the id of the pending expiration job.
//!   Canonical names sort like the hierarchy, so GetParametersByPath and DescribeParameters
//!   are prefix scans.
//! - `acct/<a>/region/<r>/ssm/version/<canonical name>#<20-digit version>` →
//!   [`VersionRecord`]: one per retained version (at most 100), with its value. `#` cannot
//!   occur in a name, so one parameter's versions never share a prefix with another's.
//! - `sys/jobs/ssm/<20-digit unix seconds>/<account>/<region>/<canonical name>` →
//!   [`ExpirationJob`]: the durable job of an Expiration policy (see [`crate::jobs`]).
//!
//! A SecureString value is never stored in the clear: [`StoredValue::Sealed`] holds the
//! KMS-encrypted data key and the AES-256-GCM sealed value (see [`crate::secure`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub const RECORD_VERSION: u32 = 1;

/// Parameter Store retains this many versions (botocore model,
/// ParameterMaxVersionLimitExceeded).
pub const MAX_VERSIONS: i64 = 100;

/// Tags per parameter (AddTagsToResource's documentation in the botocore model).
pub const MAX_TAGS: usize = 50;

/// Labels per version (botocore model, LabelParameterVersion).
pub const MAX_LABELS_PER_VERSION: usize = 10;

pub const STANDARD_MAX_VALUE: usize = 4096;
pub const ADVANCED_MAX_VALUE: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParameterType {
    String,
    StringList,
    SecureString,
}

impl ParameterType {
    pub const NAMES: &'static str = "[SecureString, StringList, String]";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "String" => Some(Self::String),
            "StringList" => Some(Self::StringList),
            "SecureString" => Some(Self::SecureString),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::StringList => "StringList",
            Self::SecureString => "SecureString",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    Standard,
    Advanced,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Advanced => "Advanced",
        }
    }
}

/// One parameter policy as stored: its JSON text as the caller wrote it, its type and its
/// status (`Pending` until it has acted, then `Finished`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub text: String,
    pub policy_type: String,
    pub status: String,
}

/// A version's value: plain for String/StringList, sealed for SecureString.
#[derive(Clone, Serialize, Deserialize)]
pub enum StoredValue {
    Plain(String),
    Sealed {
        /// The data key, encrypted by KMS under the parameter's key.
        #[serde(with = "tresor_wire::blob")]
        data_key: Vec<u8>,
        /// The value sealed with the data key (AAD: [`value_aad`]).
        #[serde(with = "tresor_wire::blob")]
        sealed: Vec<u8>,
    },
}

impl std::fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // A String value is not secret, but there is no reason to print it either.
            StoredValue::Plain(_) => f.write_str("Plain([redacted])"),
            StoredValue::Sealed { .. } => f.write_str("Sealed([redacted])"),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParameterRecord {
    pub v: u32,
    /// The name as the caller created it (echoed in responses).
    pub name: String,
    pub param_type: ParameterType,
    /// The latest version.
    pub version: i64,
    /// The oldest retained version.
    pub oldest_version: i64,
    pub tier: Tier,
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    /// SecureString only: the KMS key as the caller named it (`alias/aws/ssm` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default)]
    pub policies: Vec<PolicyRecord>,
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_date: OffsetDateTime,
    pub last_modified_user: String,
    /// Label → the version it is on (a label lives on at most one version).
    #[serde(default)]
    pub labels: BTreeMap<String, i64>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The store key of the pending Expiration job, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_job: Option<String>,
}

impl ParameterRecord {
    pub fn labels_of(&self, version: i64) -> Vec<String> {
        self.labels
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(l, _)| l.clone())
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionRecord {
    pub v: u32,
    pub version: i64,
    pub param_type: ParameterType,
    pub value: StoredValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    pub tier: Tier,
    #[serde(default)]
    pub policies: Vec<PolicyRecord>,
    pub data_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_date: OffsetDateTime,
    pub last_modified_user: String,
}

/// The durable job that deletes a parameter when its Expiration policy is due.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExpirationJob {
    pub v: u32,
    pub account: String,
    pub region: String,
    pub canonical: String,
}

/// The AAD binding a sealed value to its account, region, parameter and version, so a
/// sealed value copied to another record does not open.
pub fn value_aad(account: &str, region: &str, arn: &str, version: i64) -> Vec<u8> {
    format!("tresor-ssm-value/v1\0{account}\0{region}\0{arn}\0{version}").into_bytes()
}

pub mod keys {
    use crate::names::canonical;

    pub const JOB_PREFIX: &str = "sys/jobs/ssm/";

    pub fn param_prefix(account: &str, region: &str) -> String {
        format!("acct/{account}/region/{region}/ssm/param/")
    }

    pub fn param(account: &str, region: &str, name: &str) -> String {
        format!("{}{}", param_prefix(account, region), canonical(name))
    }

    pub fn version_prefix(account: &str, region: &str, name: &str) -> String {
        format!(
            "acct/{account}/region/{region}/ssm/version/{}#",
            canonical(name)
        )
    }

    pub fn version(account: &str, region: &str, name: &str, version: i64) -> String {
        format!("{}{version:020}", version_prefix(account, region, name))
    }

    pub fn job(due_unix: i64, account: &str, region: &str, name: &str) -> String {
        format!(
            "{JOB_PREFIX}{:020}/{account}/{region}/{}",
            due_unix.max(0),
            canonical(name)
        )
    }

    /// The due time encoded in a job key.
    pub fn due_of(job_key: &str) -> Option<i64> {
        job_key
            .strip_prefix(JOB_PREFIX)?
            .split('/')
            .next()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sealed values keep their encoding: standard base64 with padding, byte for byte, so
    /// existing data directories still open.
    #[test]
    fn sealed_values_keep_their_stored_json() {
        let stored = r#"{"Sealed":{"data_key":"AAH/","sealed":"+/8="}}"#;
        let value: StoredValue = serde_json::from_str(stored).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            &value,
            StoredValue::Sealed { data_key, sealed } if data_key == &[0, 1, 255] && sealed == &[251, 255]
        ));
        assert_eq!(serde_json::to_string(&value).ok().as_deref(), Some(stored));
    }
}
