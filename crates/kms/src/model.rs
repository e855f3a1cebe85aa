//! KMS records and where they live in the store. Every record is a versioned
//! JSON struct (`v`); key material appears only sealed under the root key.
//!
//! Layout (regional, per account):
//!
//! ```text
//! acct/<account>/region/<region>/kms/key/<key-id>        KeyRecord
//! acct/<account>/region/<region>/kms/alias/<name>        AliasRecord   (<name> without "alias/")
//! sys/jobs/kms/<due, 20-digit unix seconds>/<account>/<region>/<key-id>/<kind>   JobRecord
//! ```
//!
//! Job keys sort by due time, so the worker reads only the due prefix of the queue.

use crate::errors::KmsError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;
use tresor_core::cache::RecordCache;
use tresor_core::record;
use tresor_policy::arn::partition_of_region;
use tresor_store::{ReadTxn, WriteTxn};

use crate::errors::internal;

pub(crate) const RECORD_VERSION: u32 = 1;

pub(crate) fn key_key(account: &str, region: &str, key_id: &str) -> String {
    ["acct/", account, "/region/", region, "/kms/key/", key_id].concat()
}

pub(crate) fn key_prefix(account: &str, region: &str) -> String {
    format!("acct/{account}/region/{region}/kms/key/")
}

/// `alias_name` is the full `alias/<name>`.
pub(crate) fn alias_key(account: &str, region: &str, alias_name: &str) -> String {
    let bare = alias_name.strip_prefix("alias/").unwrap_or(alias_name);
    format!("acct/{account}/region/{region}/kms/alias/{bare}")
}

pub(crate) fn alias_prefix(account: &str, region: &str) -> String {
    format!("acct/{account}/region/{region}/kms/alias/")
}

pub(crate) const JOB_PREFIX: &str = "sys/jobs/kms/";

pub(crate) fn job_key(
    due: OffsetDateTime,
    account: &str,
    region: &str,
    key_id: &str,
    kind: JobKind,
) -> String {
    let due = due.unix_timestamp().max(0);
    format!(
        "{JOB_PREFIX}{due:020}/{account}/{region}/{key_id}/{}",
        kind.as_str()
    )
}

pub(crate) fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!(
        "arn:{}:kms:{region}:{account}:key/{key_id}",
        partition_of_region(region)
    )
}

/// `alias_name` is the full `alias/<name>`.
pub(crate) fn alias_arn(region: &str, account: &str, alias_name: &str) -> String {
    format!(
        "arn:{}:kms:{region}:{account}:{alias_name}",
        partition_of_region(region)
    )
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum KeyManager {
    Customer,
    Aws,
}

impl KeyManager {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeyManager::Customer => "CUSTOMER",
            KeyManager::Aws => "AWS",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tag {
    pub key: String,
    pub value: String,
}

/// One generation of a key's material. The bytes are sealed under the root key with AAD
/// binding the key ARN and the material id ([`crate::blob::material_aad`]).
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Material {
    /// 64 lowercase hex characters (AWS's `KeyMaterialId` shape).
    pub id: String,
    /// Root-key-sealed material, standard base64.
    pub sealed: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// `AUTOMATIC` / `ON_DEMAND` for rotated material; `None` for the original.
    #[serde(default)]
    pub rotation_type: Option<String>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("id", &self.id)
            .field("sealed", &"[sealed]")
            .finish()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub(crate) struct Rotation {
    pub enabled: bool,
    #[serde(default)]
    pub period_days: Option<i64>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_rotation: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub on_demand_started: Option<OffsetDateTime>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct KeyRecord {
    pub v: u32,
    pub key_id: String,
    pub account: String,
    pub region: String,
    pub arn: String,
    #[serde(with = "time::serde::rfc3339")]
    pub creation_date: OffsetDateTime,
    pub description: String,
    pub key_manager: KeyManager,
    pub state: KeyState,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deletion_date: Option<OffsetDateTime>,
    #[serde(default)]
    pub pending_window_days: Option<i64>,
    pub policy: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub rotation: Rotation,
    /// Oldest first; the last one is current. Never empty.
    pub materials: Vec<Material>,
    /// Full alias names (`alias/x`) pointing at this key, kept in the same transaction as the
    /// alias records (for `kms:ResourceAliases` without a scan).
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl KeyRecord {
    pub(crate) fn current_material(&self) -> Result<&Material, KmsError> {
        self.materials.last().ok_or_else(|| {
            tracing::error!(key = %self.arn, "key record without material");
            KmsError::Internal
        })
    }

    pub(crate) fn is_aws_managed(&self) -> bool {
        self.key_manager == KeyManager::Aws
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct AliasRecord {
    pub v: u32,
    /// Full name, `alias/<name>`.
    pub name: String,
    pub target_key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub creation_date: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_updated: OffsetDateTime,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// Destroy a key whose deletion window ended.
    DeleteKey,
    /// Automatic rotation of a key's material.
    RotateKey,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::DeleteKey => "delete",
            JobKind::RotateKey => "rotate",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct JobRecord {
    pub v: u32,
    pub kind: JobKind,
    pub account: String,
    pub region: String,
    pub key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
}

pub(crate) fn load_key(
    txn: &dyn ReadTxn,
    account: &str,
    region: &str,
    key_id: &str,
) -> Result<Option<KeyRecord>, KmsError> {
    record::get(txn, &key_key(account, region, key_id)).map_err(internal)
}

/// [`load_key`] through the record cache: decoded once per change of the record, also in a
/// write transaction while the record's bytes are unchanged (see `RecordCache`).
pub(crate) fn find_key(
    records: &RecordCache,
    txn: &dyn ReadTxn,
    account: &str,
    region: &str,
    key_id: &str,
) -> Result<Option<KeyRecord>, KmsError> {
    find(records, txn, &key_key(account, region, key_id))
}

/// [`load_alias`] through the record cache.
pub(crate) fn find_alias(
    records: &RecordCache,
    txn: &dyn ReadTxn,
    account: &str,
    region: &str,
    alias_name: &str,
) -> Result<Option<AliasRecord>, KmsError> {
    find(records, txn, &alias_key(account, region, alias_name))
}

fn find<T>(records: &RecordCache, txn: &dyn ReadTxn, key: &str) -> Result<Option<T>, KmsError>
where
    T: Clone + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    Ok(records
        .get::<T>(txn, key)
        .map_err(internal)?
        .map(Arc::unwrap_or_clone))
}

pub(crate) fn save_key(txn: &mut dyn WriteTxn, key: &KeyRecord) -> Result<(), KmsError> {
    record::put(txn, &key_key(&key.account, &key.region, &key.key_id), key).map_err(internal)
}

pub(crate) fn load_alias(
    txn: &dyn ReadTxn,
    account: &str,
    region: &str,
    alias_name: &str,
) -> Result<Option<AliasRecord>, KmsError> {
    record::get(txn, &alias_key(account, region, alias_name)).map_err(internal)
}

pub(crate) fn save_alias(
    txn: &mut dyn WriteTxn,
    account: &str,
    region: &str,
    alias: &AliasRecord,
) -> Result<(), KmsError> {
    record::put(txn, &alias_key(account, region, &alias.name), alias).map_err(internal)
}

pub(crate) fn put_job(txn: &mut dyn WriteTxn, job: &JobRecord) -> Result<(), KmsError> {
    let key = job_key(job.due, &job.account, &job.region, &job.key_id, job.kind);
    record::put(txn, &key, job).map_err(internal)
}

pub(crate) fn delete_job(
    txn: &mut dyn WriteTxn,
    due: OffsetDateTime,
    key: &KeyRecord,
    kind: JobKind,
) -> Result<(), KmsError> {
    txn.delete(&job_key(due, &key.account, &key.region, &key.key_id, kind))
        .map_err(internal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The store layout is on disk and `kms:ViaService` is matched by policies: both keep
    /// their exact text.
    #[test]
    fn key_records_and_via_service_keep_their_text() {
        assert_eq!(
            super::key_key("111122223333", "eu-west-1", "1234abcd-12ab"),
            "acct/111122223333/region/eu-west-1/kms/key/1234abcd-12ab"
        );
        assert_eq!(
            crate::keys::via_service("secretsmanager", "eu-west-1"),
            "secretsmanager.eu-west-1.amazonaws.com"
        );
    }
}
