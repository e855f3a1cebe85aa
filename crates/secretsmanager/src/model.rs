//! The records Secrets Manager keeps in the store and the keys they live under.
//!
//! One [`SecretRecord`] per secret holds every piece of metadata, including the version map
//! (version id → staging labels, dates, KMS key) and the resource policy. The sealed value of
//! each version lives in its own [`ValueRecord`] so that metadata operations never load
//! ciphertexts. Nothing here holds a plaintext: values are sealed under a per-version data
//! key, and only the KMS-encrypted data key is stored next to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Format version of the records below.
pub const RECORD_VERSION: u32 = 1;

/// `AWSCURRENT`, `AWSPREVIOUS`, `AWSPENDING`: the staging labels Secrets Manager itself moves.
pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
pub const AWSPENDING: &str = "AWSPENDING";

/// Secret metadata. Secret names are case-sensitive in Secrets Manager, so the key is the
/// name as given.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecretRecord {
    pub v: u32,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The KMS key as the caller named it (key id, key ARN, alias or alias ARN); `None` for
    /// the AWS managed key `aws/secretsmanager`, which DescribeSecret omits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The resource policy as stored: user and role ARNs replaced by their unique ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Unique id → the ARN it was captured from (its account tells where to look it up).
    #[serde(default)]
    pub policy_principals: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_changed: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_accessed: Option<OffsetDateTime>,
    /// When DeleteSecret scheduled the deletion (shown as `DeletedDate`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deleted: Option<OffsetDateTime>,
    /// When the purge is due (DeleteSecret's `DeletionDate`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deletion_due: Option<OffsetDateTime>,
    /// Rotation and replication state, kept for the rotation/replication operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_lambda_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<RotationRules>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_rotated: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_rotation: Option<OffsetDateTime>,
    /// The key of the secret's pending rotation job (`sys/jobs/secretsmanager/rotate/…`), so
    /// the operations that cancel or replace it find it without a scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owning_service: Option<String>,
    /// `None` means this region (the secret is its own primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    #[serde(default)]
    pub replication_status: Vec<ReplicationStatus>,
    /// Replication sequence number: on a primary with replicas, bumped by every saved change
    /// (see [`crate::replication_outbox::enqueue`]); on a replica, the primary's number it shows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repl_seq: u64,
    /// Every version, by id: labelled ones, deprecated ones (no label) and label-only
    /// placeholders (no value).
    #[serde(default)]
    pub versions: BTreeMap<String, VersionMeta>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One replica region of a primary secret (`ReplicationStatus` entry) and what replicating
/// to it needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicationStatus {
    pub region: String,
    /// The replica's KMS key as the caller named it; `None` = that region's
    /// `aws/secretsmanager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `InProgress`, `InSync` or `Failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// The replica's `LastAccessedDate` as last reported by a peer deployment (a replica in
    /// this deployment is read directly).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_accessed: Option<OffsetDateTime>,
    /// Whether a secret of the same name already in that region may be replaced
    /// (`ForceOverwriteReplicaSecret`).
    #[serde(default)]
    pub force_overwrite: bool,
    /// The principal replication acts as: whoever added the region. Re-authorized by KMS
    /// (and, for a peer, the peer's IAM) on every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<tresor_core::Caller>,
    /// The primary's [`SecretRecord::repl_seq`] the replica is known to show.
    #[serde(default)]
    pub synced_seq: u64,
}

/// A durable replication job (the outbox of every saved change of a primary with replicas):
/// bring the replica in `target` up to at least `seq`. One job per (secret, target region):
/// a later change raises `seq` instead of queueing another, so a replica catches up in one
/// step and never sees states out of order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicationJob {
    pub v: u32,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub target: String,
    /// The primary's sequence number that must reach the replica.
    pub seq: u64,
    /// Remove the replica instead (RemoveRegionsFromReplication to a peer's region).
    #[serde(default)]
    pub remove: bool,
    /// When the oldest change not yet replicated was committed (lag is measured from it).
    #[serde(with = "time::serde::rfc3339")]
    pub pending_since: OffsetDateTime,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retry_after: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionMeta {
    #[serde(default)]
    pub stages: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_accessed: Option<OffsetDateTime>,
    /// The KMS key ARN the version's data key is encrypted under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// Whether the data key came from the AWS managed key `aws/secretsmanager`.
    #[serde(default)]
    pub default_key: bool,
    /// Whether a [`ValueRecord`] exists (false for a rotation placeholder).
    pub has_value: bool,
}

/// The sealed value of one version.
#[derive(Clone, Serialize, Deserialize)]
pub struct ValueRecord {
    pub v: u32,
    pub kind: ValueKind,
    /// The KMS ciphertext blob of the data key.
    #[serde(with = "tresor_wire::blob")]
    pub data_key: Vec<u8>,
    /// The value sealed (AES-256-GCM) under the data key, AAD per [`value_aad`].
    #[serde(with = "tresor_wire::blob")]
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for ValueRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueRecord")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    String,
    Binary,
}

/// A durable purge job (the outbox of DeleteSecret).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PurgeJob {
    pub v: u32,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retry_after: Option<OffsetDateTime>,
}

/// What a rotation job runs.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RotationKind {
    /// The four steps, for the version `token` (RotateSecret, or a retry).
    Rotate,
    /// `testSecret` only, then the placeholder is removed (RotateSecret with
    /// `RotateImmediately=false`).
    TestOnly,
    /// The next scheduled rotation: it picks its version when it starts (a fresh one, or the
    /// pending version of an incomplete rotation, which it re-attempts).
    Scheduled,
}

/// A durable rotation job (the outbox of RotateSecret, of a completed rotation scheduling the
/// next one, and of a failed one scheduling its retry).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotationJob {
    pub v: u32,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub kind: RotationKind,
    /// The version being rotated to (`ClientRequestToken` of the steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Steps completed in the current attempt: a restarted server resumes at the next one.
    #[serde(default)]
    pub next_step: usize,
    /// Failed attempts of this rotation so far.
    #[serde(default)]
    pub attempts: u32,
    /// The node running this rotation, when several nodes share the store
    /// ([`tresor_core::lease`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<tresor_core::lease::Lease>,
}

impl ReplicationJob {
    /// A fresh job carrying `rec`'s current sequence number to `target`.
    pub fn new(rec: &SecretRecord, target: &str, remove: bool, now: OffsetDateTime) -> Self {
        ReplicationJob {
            v: RECORD_VERSION,
            account: rec.account.clone(),
            region: rec.region.clone(),
            name: rec.name.clone(),
            arn: rec.arn.clone(),
            target: target.to_string(),
            seq: rec.repl_seq,
            remove,
            pending_since: now,
            attempts: 0,
            retry_after: None,
        }
    }
}

impl SecretRecord {
    /// A secret with no description, key, tags, policy, rotation, replication or versions.
    pub fn new(account: &str, region: &str, name: &str, arn: &str, now: OffsetDateTime) -> Self {
        SecretRecord {
            v: RECORD_VERSION,
            account: account.to_string(),
            region: region.to_string(),
            name: name.to_string(),
            arn: arn.to_string(),
            description: None,
            kms_key_id: None,
            secret_type: None,
            tags: Vec::new(),
            policy: None,
            policy_principals: BTreeMap::new(),
            created: now,
            last_changed: now,
            last_accessed: None,
            deleted: None,
            deletion_due: None,
            rotation_enabled: None,
            rotation_lambda_arn: None,
            rotation_rules: None,
            last_rotated: None,
            next_rotation: None,
            rotation_job: None,
            owning_service: None,
            primary_region: None,
            replication_status: Vec::new(),
            repl_seq: 0,
            versions: BTreeMap::new(),
        }
    }

    /// The version holding `label`, if any.
    pub fn holder_of(&self, label: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, m)| m.stages.iter().any(|s| s == label))
            .map(|(id, _)| id.as_str())
    }

    pub fn is_scheduled_for_deletion(&self) -> bool {
        self.deleted.is_some()
    }

    /// `VersionIdsToStages`: versions that carry at least one label, placeholders included.
    pub fn version_stages(&self) -> BTreeMap<String, Vec<String>> {
        self.versions
            .iter()
            .filter(|(_, m)| !m.stages.is_empty())
            .map(|(id, m)| (id.clone(), m.stages.clone()))
            .collect()
    }

    /// Attaches `label` to `to`, taking it from whichever version held it. Moving AWSCURRENT
    /// drags AWSPREVIOUS to the version it left (Secrets Manager API reference,
    /// PutSecretValue / UpdateSecretVersionStage).
    pub fn attach_label(&mut self, label: &str, to: &str) {
        let previous = self.holder_of(label).map(str::to_string);
        if previous.as_deref() == Some(to) {
            return;
        }
        if let Some(prev) = &previous {
            self.detach_label(label, prev);
        }
        if let Some(m) = self.versions.get_mut(to) {
            m.stages.push(label.to_string());
        }
        if label == AWSCURRENT
            && let Some(prev) = previous
        {
            self.attach_label(AWSPREVIOUS, &prev);
        }
    }

    /// Removes `label` from version `from`; a placeholder left without labels disappears.
    pub fn detach_label(&mut self, label: &str, from: &str) {
        let mut drop_version = false;
        if let Some(m) = self.versions.get_mut(from) {
            m.stages.retain(|s| s != label);
            drop_version = m.stages.is_empty() && !m.has_value;
        }
        if drop_version {
            self.versions.remove(from);
        }
    }
}

/// Midnight UTC of `t`: Secrets Manager keeps `LastAccessedDate` at day resolution
/// (API reference, SecretVersionsListEntry: "the resolution of this field is at the date
/// level and does not include the time").
pub fn day_of(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_time(time::Time::MIDNIGHT)
}

/// The associated data binding a sealed value to its account, region, secret and version
/// (its AEAD associated data), so a sealed value copied to another record does not open.
pub fn value_aad(account: &str, region: &str, arn: &str, version_id: &str) -> Vec<u8> {
    [
        "tresor/secretsmanager/value/v1\0",
        account,
        "\0",
        region,
        "\0",
        arn,
        "\0",
        version_id,
    ]
    .concat()
    .into_bytes()
}

pub mod keys {
    //! Key layout: `acct/<account>/region/<region>/secretsmanager/…`. The keys read on every
    //! request are joined from their parts in one allocation (no `format!`).

    /// `acct/<account>/region/<region>/secretsmanager/` followed by `rest`.
    fn under_base(account: &str, region: &str, rest: &[&str]) -> String {
        let base = ["acct/", account, "/region/", region, "/secretsmanager/"];
        let len = base.iter().chain(rest).map(|s| s.len()).sum();
        let mut key = String::with_capacity(len);
        for part in base.iter().chain(rest) {
            key.push_str(part);
        }
        key
    }

    /// The secret record, by exact (case-sensitive) name.
    pub fn secret(account: &str, region: &str, name: &str) -> String {
        under_base(account, region, &["secret/", name])
    }

    pub fn secret_prefix(account: &str, region: &str) -> String {
        under_base(account, region, &["secret/"])
    }

    /// The sealed value of a version. Keyed by the ARN's resource part (name + random suffix)
    /// so a re-created secret with the same name never meets an old value.
    pub fn value(account: &str, region: &str, arn: &str, version_id: &str) -> String {
        let resource = arn.rsplit_once(":secret:").map_or(arn, |(_, r)| r);
        under_base(account, region, &["value/", version_id, "/", resource])
    }

    pub const JOBS_PREFIX: &str = "sys/jobs/secretsmanager/purge/";

    pub const ROTATION_JOBS_PREFIX: &str = "sys/jobs/secretsmanager/rotate/";

    pub const REPLICATION_JOBS_PREFIX: &str = "sys/jobs/secretsmanager/replicate/";

    /// The replication job of one secret and one replica region (the name last: it may
    /// contain `/`).
    pub fn replication_job(account: &str, region: &str, target: &str, name: &str) -> String {
        format!("{REPLICATION_JOBS_PREFIX}{account}/{region}/{target}/{name}")
    }

    /// A rotation job, ordered by due time (unix milliseconds) so the worker scans only what
    /// is due.
    pub fn rotation_job(due_unix_ms: i64, account: &str, region: &str, name: &str) -> String {
        format!(
            "{ROTATION_JOBS_PREFIX}{:020}/{account}/{region}/{name}",
            due_unix_ms.max(0)
        )
    }

    /// A purge job, ordered by due time so the worker scans only what is due.
    pub fn purge_job(due_unix: i64, account: &str, region: &str, name: &str) -> String {
        format!(
            "{JOBS_PREFIX}{:020}/{account}/{region}/{name}",
            due_unix.max(0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store layout is on disk: the joined keys are exactly the documented ones.
    #[test]
    fn record_keys_keep_their_layout() {
        assert_eq!(
            keys::secret("111122223333", "us-east-1", "a/b"),
            "acct/111122223333/region/us-east-1/secretsmanager/secret/a/b"
        );
        assert_eq!(
            keys::secret_prefix("111122223333", "us-east-1"),
            "acct/111122223333/region/us-east-1/secretsmanager/secret/"
        );
        assert_eq!(
            keys::value(
                "111122223333",
                "us-east-1",
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:a/b-AbCdEf",
                "v1"
            ),
            "acct/111122223333/region/us-east-1/secretsmanager/value/v1/a/b-AbCdEf"
        );
        assert_eq!(
            value_aad("111122223333", "us-east-1", "arn:x", "v1"),
            b"tresor/secretsmanager/value/v1\x00111122223333\x00us-east-1\x00arn:x\x00v1"
        );
    }

    /// Stored values keep their encoding: standard base64 with padding, byte for byte, so
    /// existing data directories still open.
    #[test]
    fn value_records_keep_their_stored_json() {
        let stored = r#"{"v":1,"kind":"binary","data_key":"AAH/","sealed":"+/8="}"#;
        let rec: ValueRecord = serde_json::from_str(stored).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rec.data_key, [0, 1, 255]);
        assert_eq!(rec.sealed, [251, 255]);
        assert_eq!(serde_json::to_string(&rec).ok().as_deref(), Some(stored));
        assert!(serde_json::from_str::<ValueRecord>(&stored.replace("+/8=", "-_8")).is_err());
    }

    fn record() -> SecretRecord {
        let now = OffsetDateTime::UNIX_EPOCH;
        let meta = |stages: &[&str]| VersionMeta {
            stages: stages.iter().map(|s| s.to_string()).collect(),
            created: now,
            last_accessed: None,
            kms_key_arn: None,
            default_key: true,
            has_value: true,
        };
        let mut versions = BTreeMap::new();
        versions.insert("v1".to_string(), meta(&["AWSPREVIOUS"]));
        versions.insert("v2".to_string(), meta(&["AWSCURRENT"]));
        versions.insert("v3".to_string(), meta(&[]));
        SecretRecord {
            versions,
            ..SecretRecord::new(
                "111122223333",
                "us-east-1",
                "n",
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:n-AbCdEf",
                now,
            )
        }
    }

    #[test]
    fn moving_awscurrent_drags_awsprevious_to_the_old_current() {
        let mut r = record();
        r.attach_label(AWSCURRENT, "v3");
        assert_eq!(r.holder_of(AWSCURRENT), Some("v3"));
        assert_eq!(r.holder_of(AWSPREVIOUS), Some("v2"));
        assert!(r.versions["v1"].stages.is_empty(), "v1 is deprecated now");
        // Rolling back to the previous version swaps the two.
        r.attach_label(AWSCURRENT, "v2");
        assert_eq!(r.holder_of(AWSCURRENT), Some("v2"));
        assert_eq!(r.holder_of(AWSPREVIOUS), Some("v3"));
    }

    #[test]
    fn a_placeholder_without_labels_disappears() {
        let mut r = record();
        r.versions.insert(
            "p".into(),
            VersionMeta {
                stages: vec![AWSPENDING.into()],
                created: OffsetDateTime::UNIX_EPOCH,
                last_accessed: None,
                kms_key_arn: None,
                default_key: true,
                has_value: false,
            },
        );
        r.detach_label(AWSPENDING, "p");
        assert!(!r.versions.contains_key("p"));
        r.detach_label(AWSPREVIOUS, "v1");
        assert!(
            r.versions.contains_key("v1"),
            "a version with a value stays, deprecated"
        );
    }

    #[test]
    fn value_keys_separate_recreated_secrets() {
        let a = keys::value(
            "1",
            "r",
            "arn:aws:secretsmanager:r:1:secret:a/b-AbCdEf",
            "v",
        );
        let b = keys::value(
            "1",
            "r",
            "arn:aws:secretsmanager:r:1:secret:a/b-XyZ123",
            "v",
        );
        assert_ne!(a, b);
        assert!(a.ends_with("value/v/a/b-AbCdEf"));
    }
}
