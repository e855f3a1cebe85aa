//! The replication worker's side: bringing replicas up to date from the jobs
//! [`crate::replication_outbox::enqueue`] writes.
//!
//! A job names a secret, a replica region and the primary's sequence number that must reach
//! the replica. Running it copies the primary's *current* state (so one run catches up any
//! number of changes, in order); the replica records the sequence number it shows and never
//! takes an older one, so a repeated or late run changes nothing (idempotent, never
//! backwards).
//!
//! - A region of this deployment ([`sync_local`]): one write transaction reads the primary,
//!   opens each version the replica lacks (kms:Decrypt on the primary's key) and seals it
//!   under the replica region's key (kms:GenerateDataKey there), both as the principal that
//!   added the region and via Secrets Manager; the replica and the primary's
//!   `ReplicationStatus` change together, or not at all.
//! - A region of a peer deployment ([`sync_peer`]): the primary's state and the values are
//!   sent to the peer's internal operation [`PEER_OPERATION`] (SigV4-signed by the
//!   replication principal of that deployment, see the server's peer link); the peer
//!   authorizes it with its own IAM and seals the values under its own key
//!   ([`apply_peer_update`]).
//!
//! A failure leaves the replica as it was, marks the region `Failed` with the reason and
//! retries with backoff (1 s doubling to 30 s), for as long as the job exists; the next
//! success marks it `InSync` again and logs the lag.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_core::error::ServiceError;
use tresor_core::{Caller, RequestCtx, Services, record};
use tresor_crypto::{SecretBytes, SecretString};
use tresor_store::WriteTxn;
use tresor_wire::json::epoch_seconds;

use crate::access::{authorize, save};
use crate::errors::{self, OrInternal, SecretsManagerError};
use crate::model::{
    ReplicationJob, ReplicationStatus, SecretRecord, ValueKind, ValueRecord, VersionMeta, keys,
};
use crate::replication::{
    FAILED, IN_SYNC, PeerError, PeerLink, SUCCEEDED_MESSAGE, peer_of, replica_arn,
};
use crate::shapes::Tag;

/// The internal operation a deployment calls on a peer to update a replica there (target
/// `secretsmanager.TresorApplyReplicaUpdate`, IAM action
/// `secretsmanager:TresorApplyReplicaUpdate` on the replica's ARN). Not an AWS operation.
pub const PEER_OPERATION: &str = "TresorApplyReplicaUpdate";

/// Jobs looked at per round.
const BATCH: usize = 200;
/// Longest wait between retries of a failing replica.
const MAX_BACKOFF_MS: i64 = 30_000;

/// Why a replica could not be brought up to date.
#[derive(Debug)]
enum SyncError {
    /// Shown as the region's `StatusMessage`; retried.
    Status(String),
    /// A storage or record failure (logged where it happened); retried.
    Internal(ServiceError),
}

impl From<SecretsManagerError> for SyncError {
    fn from(e: SecretsManagerError) -> Self {
        match e {
            SecretsManagerError::Internal => SyncError::Internal(ServiceError::Corrupt(
                "internal failure while replicating".into(),
            )),
            other => SyncError::Status(failed_message(other.message().unwrap_or_default())),
        }
    }
}

fn failed_message(reason: &str) -> String {
    format!("Replication failed: {reason}")
}

// ---------------------------------------------------------------------------------------
// Lag and status, for the operator

/// The latest replication figures of one replica, for a metrics endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaLag {
    pub secret_arn: String,
    pub region: String,
    pub status: String,
    /// Commit of the oldest change the last catch-up carried → the replica's commit.
    pub last_lag_ms: Option<u64>,
    pub max_lag_ms: u64,
    pub syncs: u64,
    pub failures: u64,
    pub last_failure: Option<String>,
    /// How long the oldest change not yet on the replica has waited (none pending: `None`).
    pub pending_ms: Option<u64>,
}

/// Replication figures of this deployment (a [`Services`] extension).
#[derive(Default)]
pub struct ReplicationMetrics {
    by_replica: parking_lot::Mutex<BTreeMap<(String, String), ReplicaLag>>,
}

impl ReplicationMetrics {
    fn entry<R>(&self, arn: &str, region: &str, f: impl FnOnce(&mut ReplicaLag) -> R) -> R {
        let mut all = self.by_replica.lock();
        let e = all
            .entry((arn.to_string(), region.to_string()))
            .or_insert_with(|| ReplicaLag {
                secret_arn: arn.to_string(),
                region: region.to_string(),
                status: String::new(),
                last_lag_ms: None,
                max_lag_ms: 0,
                syncs: 0,
                failures: 0,
                last_failure: None,
                pending_ms: None,
            });
        f(e)
    }
}

fn metrics(services: &Services) -> Arc<ReplicationMetrics> {
    if let Some(m) = services.extension::<ReplicationMetrics>() {
        return m;
    }
    let m = Arc::new(ReplicationMetrics::default());
    services.set_extension(m.clone());
    m
}

/// Every replica's latest status and lag, for the operator (a metrics endpoint can render
/// it; `tresor_replication_lag_ms{secret,region}` and friends).
pub fn lag_snapshot(services: &Services) -> Vec<ReplicaLag> {
    let m = metrics(services);
    // Replicas with changes waiting (a failing one's lag keeps growing until it catches up).
    let now = OffsetDateTime::now_utc();
    let txn = services.store().begin_read().ok();
    let pending: Vec<ReplicationJob> = txn
        .as_ref()
        .and_then(|txn| {
            record::scan::<ReplicationJob>(&**txn, keys::REPLICATION_JOBS_PREFIX, None, 10_000).ok()
        })
        .map(|jobs| jobs.into_iter().map(|(_, j)| j).collect())
        .unwrap_or_default();
    let mut out: Vec<ReplicaLag> = m.by_replica.lock().values().cloned().collect();
    // The status is the primary's record's (what DescribeSecret says), not this process's
    // last observation: on several nodes sharing a store, another node may have brought the
    // replica back in sync since this one saw it fail.
    if let Some(txn) = &txn {
        for e in &mut out {
            if let Some(status) = stored_status(&**txn, &e.secret_arn, &e.region) {
                e.status = status;
            }
        }
    }
    for job in pending {
        let waited =
            u64::try_from((now - job.pending_since).whole_milliseconds().max(0)).unwrap_or(0);
        match out
            .iter_mut()
            .find(|e| e.secret_arn == job.arn && e.region == job.target)
        {
            Some(e) => e.pending_ms = Some(waited),
            None => out.push(ReplicaLag {
                secret_arn: job.arn.clone(),
                region: job.target.clone(),
                status: crate::replication::IN_PROGRESS.into(),
                last_lag_ms: None,
                max_lag_ms: 0,
                syncs: 0,
                failures: 0,
                last_failure: None,
                pending_ms: Some(waited),
            }),
        }
    }
    out
}

/// The replication status of `region` in the record of the primary secret `arn`.
fn stored_status(txn: &dyn tresor_store::ReadTxn, arn: &str, region: &str) -> Option<String> {
    crate::access::find_by_arn(txn, arn)
        .ok()
        .flatten()?
        .replication_status
        .iter()
        .find(|s| s.region == region)
        .map(|s| s.status.clone())
}

// ---------------------------------------------------------------------------------------
// The worker's round

/// Runs every replication job that is due at `now`; returns how many replicas were brought
/// up to date (or removed).
pub fn run_due(services: &Services, now: OffsetDateTime) -> Result<usize, ServiceError> {
    let due: Vec<(String, ReplicationJob)> = {
        let txn = services.store().begin_read()?;
        record::scan::<ReplicationJob>(&*txn, keys::REPLICATION_JOBS_PREFIX, None, BATCH)?
            .into_iter()
            .filter(|(_, job)| job.retry_after.is_none_or(|t| t <= now))
            .collect()
    };
    let mut done = 0;
    for (key, job) in due {
        let served_here =
            crate::replication::topology(services).is_none_or(|t| t.is_local(&job.target));
        let result = match peer_of(services, &job.target) {
            Some(peer) => sync_peer(services, &key, &job, peer.as_ref(), now),
            None if served_here => sync_local(services, &key, now),
            // The configuration changed since the region was added.
            None => Err(SyncError::Status(failed_message(&format!(
                "region {} is served neither by this deployment nor by a configured peer.",
                job.target
            )))),
        };
        match result {
            Ok(true) => done += 1,
            Ok(false) => {}
            Err(e) => {
                let message = match &e {
                    SyncError::Status(m) => m.clone(),
                    SyncError::Internal(err) => {
                        tracing::error!(error = %err, secret = %job.arn, region = %job.target, "replication failed");
                        failed_message("An internal error occurred; retrying.")
                    }
                };
                tracing::warn!(secret = %job.arn, region = %job.target, status_message = %message, "replica not updated; will retry");
                metrics(services).entry(&job.arn, &job.target, |m| {
                    m.status = FAILED.into();
                    m.failures += 1;
                    m.last_failure = Some(message.clone());
                });
                if let Err(e) = note_failure(services, &key, &message, now) {
                    tracing::warn!(error = %e, "could not record a replication failure");
                }
            }
        }
    }
    Ok(done)
}

/// Marks the region `Failed` with `message` and schedules the job's retry.
fn note_failure(
    services: &Services,
    key: &str,
    message: &str,
    now: OffsetDateTime,
) -> Result<(), SecretsManagerError> {
    let mut txn = services.store().begin_write().or_internal()?;
    let Some(mut job) = record::get::<ReplicationJob>(&*txn, key).or_internal()? else {
        return Ok(());
    };
    job.attempts = job.attempts.saturating_add(1);
    let ms = (1000i64 << job.attempts.saturating_sub(1).min(5)).min(MAX_BACKOFF_MS);
    job.retry_after = Some(now + time::Duration::milliseconds(ms));
    record::put(&mut *txn, key, &job).or_internal()?;
    let pkey = keys::secret(&job.account, &job.region, &job.name);
    if let Some(mut primary) = record::get::<SecretRecord>(&*txn, &pkey).or_internal()?
        && primary.arn == job.arn
        && let Some(st) = primary
            .replication_status
            .iter_mut()
            .find(|s| s.region == job.target)
    {
        let newly_failed = st.status != FAILED;
        st.status = FAILED.into();
        st.status_message = Some(message.to_string());
        // Not `save`: a status change is not a change to replicate.
        record::put(&mut *txn, &pkey, &primary).or_internal()?;
        if newly_failed {
            // One service event per failure episode, not one per retry.
            replication_event(
                services,
                &mut *txn,
                &primary,
                "ReplicationFailed",
                &job.target,
                Some(message),
                now,
            )?;
        }
    }
    txn.commit().or_internal()
}

/// A replication service event about `primary`'s replica in `target` (AWS Secrets Manager
/// User Guide, "AWS CloudTrail entries for Secrets Manager", replication entries), recorded
/// in `txn` with the status change it reports.
fn replication_event(
    services: &Services,
    txn: &mut dyn WriteTxn,
    primary: &SecretRecord,
    event_name: &str,
    target: &str,
    status_message: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), SecretsManagerError> {
    let mut data = serde_json::json!({
        "replicaRegion": target,
        "replicaArn": crate::replication::replica_arn(&primary.arn, target),
    });
    if let Some(m) = status_message {
        data["statusMessage"] = m.into();
    }
    crate::jobs::audit_event_with(services, txn, primary, event_name, Some(data), now)
}

/// Records a successful catch-up of `job` (in `txn`): the region `InSync`, the job removed
/// unless a newer change arrived meanwhile, the lag measured and logged after a failure.
fn note_success(
    services: &Services,
    txn: &mut dyn WriteTxn,
    key: &str,
    primary: &mut SecretRecord,
    target: &str,
    synced_seq: u64,
    last_accessed: Option<OffsetDateTime>,
) -> Result<(), SyncError> {
    let now = OffsetDateTime::now_utc();
    let Some(job) = record::get::<ReplicationJob>(&*txn, key).or_internal()? else {
        return Ok(());
    };
    let mut was_failed = false;
    if let Some(st) = primary
        .replication_status
        .iter_mut()
        .find(|s| s.region == target)
    {
        was_failed = st.status == FAILED;
        st.status = IN_SYNC.into();
        st.status_message = Some(SUCCEEDED_MESSAGE.into());
        st.synced_seq = st.synced_seq.max(synced_seq);
        if last_accessed.is_some() {
            st.last_accessed = last_accessed;
        }
    }
    record::put(
        txn,
        &keys::secret(&primary.account, &primary.region, &primary.name),
        &*primary,
    )
    .or_internal()?;
    if job.seq <= synced_seq {
        txn.delete(key).or_internal()?;
    }
    replication_event(
        services,
        txn,
        primary,
        "ReplicationSucceeded",
        target,
        None,
        now,
    )?;
    let lag_ms = u64::try_from((now - job.pending_since).whole_milliseconds().max(0)).unwrap_or(0);
    if was_failed || job.attempts > 0 {
        tracing::info!(secret = %primary.arn, region = target, lag_ms, attempts = job.attempts, "replica caught up after a failure");
    } else {
        tracing::debug!(secret = %primary.arn, region = target, lag_ms, "replica updated");
    }
    metrics(services).entry(&primary.arn, target, |m| {
        m.status = IN_SYNC.into();
        m.last_lag_ms = Some(lag_ms);
        m.max_lag_ms = m.max_lag_ms.max(lag_ms);
        m.syncs += 1;
    });
    Ok(())
}

/// The context replication acts in: the principal that added the region (the account's root
/// for a region added before principals were recorded), in `region`.
fn acting_ctx(
    st: &ReplicationStatus,
    account: &str,
    region: &str,
    now: OffsetDateTime,
) -> RequestCtx {
    let caller = st.by.clone().unwrap_or_else(|| Caller::root(account, ""));
    RequestCtx {
        request_id: format!("replication-{}", tresor_crypto::ids::uuid_v4()),
        region: region.to_string(),
        now,
        source_ip: None,
        secure_transport: true,
        caller: std::sync::Arc::new(caller),
        deferred: Default::default(),
        audit: Default::default(),
    }
}

// ---------------------------------------------------------------------------------------
// The state a replica takes

/// The primary's state as a replica takes it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaUpdate {
    /// The primary's ARN.
    pub primary_arn: String,
    pub name: String,
    pub primary_region: String,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub force_overwrite: bool,
    #[serde(default)]
    pub remove: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The resource policy with ARNs (as GetResourcePolicy shows it): the receiving
    /// deployment captures its principals against its own IAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
    #[serde(with = "epoch_seconds")]
    pub created_date: OffsetDateTime,
    #[serde(with = "epoch_seconds")]
    pub last_changed_date: OffsetDateTime,
    #[serde(default)]
    pub versions: Vec<VersionUpdate>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionUpdate {
    pub version_id: String,
    #[serde(default)]
    pub version_stages: Vec<String>,
    #[serde(with = "epoch_seconds")]
    pub created_date: OffsetDateTime,
    /// false: a label-only placeholder (rotation's AWSPENDING before createSecret).
    pub has_value: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::shapes::ser_secret_string",
        deserialize_with = "crate::shapes::secret_string"
    )]
    pub secret_string: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "tresor_wire::blob::option"
    )]
    pub secret_binary: Option<SecretBytes>,
}

/// How the replica gets the resource policy.
enum PolicySource<'a> {
    /// Same deployment, same IAM: the stored form and its principals as they are.
    Stored(&'a SecretRecord),
    /// Another deployment: the text with ARNs, captured here.
    Text(Option<&'a str>),
}

/// The outcome of applying an update.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The replica now shows this sequence number.
    Synced { seq: u64 },
    /// The replica was promoted to a standalone secret (StopReplicationToReplica).
    Promoted,
    /// The replica was deleted.
    Removed,
}

/// Yields the plaintext (and kind) of a version, by id.
type ValueSource<'a> =
    dyn FnMut(&str) -> Result<(ValueKind, SecretBytes), SecretsManagerError> + 'a;

/// Brings the replica of `update` in `ctx.region` to the update's state, inside `txn`,
/// sealing values as `ctx.caller`. `value_of(version_id)` yields the plaintext of a version
/// the replica does not hold yet.
fn apply_update(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    update: &ReplicaUpdate,
    policy: PolicySource<'_>,
    value_of: &mut ValueSource<'_>,
) -> Result<Applied, SecretsManagerError> {
    let region = ctx.region.as_str();
    let account = ctx.caller.account.clone();
    let arn = replica_arn(&update.primary_arn, region);
    let key = keys::secret(&account, region, &update.name);
    let existing: Option<SecretRecord> = record::get(&*txn, &key).or_internal()?;
    let ours = |r: &SecretRecord| {
        r.arn == arn && r.primary_region.as_deref() == Some(update.primary_region.as_str())
    };
    if update.remove {
        if let Some(r) = existing.as_ref().filter(|r| ours(r)) {
            crate::access::purge(txn, r)?;
        }
        return Ok(Applied::Removed);
    }
    let mut replica = match existing {
        Some(r) if ours(&r) => r,
        Some(r) if r.arn == arn && r.primary_region.is_none() => return Ok(Applied::Promoted),
        Some(r) => {
            if !update.force_overwrite {
                // Emulators' wording, AWS's meaning (ReplicationStatusType.StatusMessage).
                return Err(SecretsManagerError::ResourceExists(format!(
                    "Secret name {} already exists in region {region}.",
                    update.name
                )));
            }
            // Overwriting deletes that secret: the acting principal must be allowed to.
            authorize(services, ctx, "secretsmanager:DeleteSecret", &r, vec![])?;
            crate::access::purge(txn, &r)?;
            new_replica(&account, region, &arn, update, ctx.now)
        }
        None => new_replica(&account, region, &arn, update, ctx.now),
    };
    if replica.repl_seq >= update.seq && replica.kms_key_id == update.kms_key_id {
        return Ok(Applied::Synced {
            seq: replica.repl_seq,
        });
    }
    let reseal_all = replica.kms_key_id != update.kms_key_id;
    replica.kms_key_id = update.kms_key_id.clone();
    let mut versions: BTreeMap<String, VersionMeta> = BTreeMap::new();
    for v in &update.versions {
        let held = replica
            .versions
            .get(&v.version_id)
            .filter(|m| m.has_value && !reseal_all)
            .cloned();
        let meta = match (v.has_value, held) {
            (true, Some(mut m)) => {
                m.stages = v.version_stages.clone();
                m
            }
            (true, None) => {
                let (kind, plain) = value_of(&v.version_id)?;
                let (sealed, key_arn) = crate::envelope::seal(
                    services,
                    txn,
                    ctx,
                    &replica,
                    Some(update.kms_key_id.as_deref()),
                    &v.version_id,
                    (kind, plain.expose()),
                )?;
                record::put(
                    txn,
                    &keys::value(&account, region, &arn, &v.version_id),
                    &sealed,
                )
                .or_internal()?;
                VersionMeta {
                    stages: v.version_stages.clone(),
                    created: v.created_date,
                    last_accessed: replica
                        .versions
                        .get(&v.version_id)
                        .and_then(|m| m.last_accessed),
                    kms_key_arn: Some(key_arn),
                    default_key: update.kms_key_id.is_none(),
                    has_value: true,
                }
            }
            (false, _) => VersionMeta {
                stages: v.version_stages.clone(),
                created: v.created_date,
                last_accessed: None,
                kms_key_arn: None,
                default_key: update.kms_key_id.is_none(),
                has_value: false,
            },
        };
        versions.insert(v.version_id.clone(), meta);
    }
    for (id, m) in &replica.versions {
        if m.has_value && !versions.get(id).is_some_and(|n| n.has_value) {
            txn.delete(&keys::value(&account, region, &arn, id))
                .or_internal()?;
        }
    }
    replica.versions = versions;
    replica.description = update.description.clone();
    replica.secret_type = update.r#type.clone();
    replica.tags = update
        .tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    match policy {
        PolicySource::Stored(p) => {
            replica.policy = p.policy.clone();
            replica.policy_principals = p.policy_principals.clone();
        }
        PolicySource::Text(None) => {
            replica.policy = None;
            replica.policy_principals.clear();
        }
        PolicySource::Text(Some(text)) => {
            let (stored, captured) = crate::policy::capture_replicated(&*txn, text)?;
            replica.policy = Some(stored);
            replica.policy_principals = captured;
        }
    }
    replica.last_changed = update.last_changed_date;
    replica.repl_seq = update.seq;
    save(txn, &replica)?;
    Ok(Applied::Synced { seq: update.seq })
}

fn new_replica(
    account: &str,
    region: &str,
    arn: &str,
    update: &ReplicaUpdate,
    now: OffsetDateTime,
) -> SecretRecord {
    SecretRecord {
        kms_key_id: update.kms_key_id.clone(),
        primary_region: Some(update.primary_region.clone()),
        ..SecretRecord::new(account, region, &update.name, arn, now)
    }
}

/// The update describing `primary` for the replica in `st.region` (without values).
fn update_of(
    primary: &SecretRecord,
    st: &ReplicationStatus,
    policy_text: Option<String>,
) -> ReplicaUpdate {
    ReplicaUpdate {
        primary_arn: primary.arn.clone(),
        name: primary.name.clone(),
        primary_region: primary.region.clone(),
        seq: primary.repl_seq,
        kms_key_id: st.kms_key_id.clone(),
        force_overwrite: st.force_overwrite,
        remove: false,
        description: primary.description.clone(),
        r#type: primary.secret_type.clone(),
        tags: primary
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        resource_policy: policy_text,
        created_date: primary.created,
        last_changed_date: primary.last_changed,
        versions: primary
            .versions
            .iter()
            .map(|(id, m)| VersionUpdate {
                version_id: id.clone(),
                version_stages: m.stages.clone(),
                created_date: m.created,
                has_value: m.has_value,
                secret_string: None,
                secret_binary: None,
            })
            .collect(),
    }
}

/// The plaintext of version `id` of `primary`, opened as `ctx.caller`.
fn open_primary(
    services: &Services,
    txn: &dyn tresor_store::ReadTxn,
    ctx: &RequestCtx,
    primary: &SecretRecord,
    id: &str,
) -> Result<(ValueKind, SecretBytes), SecretsManagerError> {
    let stored: Option<ValueRecord> = record::get(
        txn,
        &keys::value(&primary.account, &primary.region, &primary.arn, id),
    )
    .or_internal()?;
    let Some(stored) = stored else {
        return Err(errors::value_not_found_for_version(id));
    };
    let plain = crate::envelope::open(services, txn, ctx, primary, id, &stored)?;
    Ok((stored.kind, plain))
}

// ---------------------------------------------------------------------------------------
// A region of this deployment

/// Runs the job under `key` for a replica region of this deployment. `Ok(false)`: nothing
/// to do (job gone, secret gone or re-created, region removed).
fn sync_local(services: &Services, key: &str, now: OffsetDateTime) -> Result<bool, SyncError> {
    let mut txn = services.store().begin_write().or_internal()?;
    let Some(job) = record::get::<ReplicationJob>(&*txn, key).or_internal()? else {
        return Ok(false);
    };
    let pkey = keys::secret(&job.account, &job.region, &job.name);
    let primary = record::get::<SecretRecord>(&*txn, &pkey).or_internal()?;
    let st = primary
        .as_ref()
        .filter(|p| p.arn == job.arn && p.primary_region.is_none())
        .and_then(|p| p.replication_status.iter().find(|s| s.region == job.target))
        .cloned();
    let (Some(mut primary), Some(st)) = (primary, st) else {
        txn.delete(key).or_internal()?;
        txn.commit().or_internal()?;
        return Ok(false);
    };
    let read_ctx = acting_ctx(&st, &primary.account, &primary.region, now);
    let write_ctx = acting_ctx(&st, &primary.account, &job.target, now);
    let update = update_of(&primary, &st, None);
    // The values the replica lacks, opened in this transaction (the latest commit is visible
    // here first).
    let replica: Option<SecretRecord> = record::get(
        &*txn,
        &keys::secret(&primary.account, &job.target, &primary.name),
    )
    .or_internal()?;
    let replica = replica.filter(|r| {
        r.arn == replica_arn(&primary.arn, &job.target)
            && r.primary_region.as_deref() == Some(primary.region.as_str())
            && r.kms_key_id == st.kms_key_id
    });
    let mut opened: BTreeMap<String, (ValueKind, SecretBytes)> = BTreeMap::new();
    for (id, m) in &primary.versions {
        let held = replica
            .as_ref()
            .and_then(|r| r.versions.get(id))
            .is_some_and(|r| r.has_value);
        if m.has_value && !held {
            opened.insert(
                id.clone(),
                open_primary(services, &*txn, &read_ctx, &primary, id)?,
            );
        }
    }
    let snapshot = primary.clone();
    let applied = apply_update(
        services,
        &mut *txn,
        &write_ctx,
        &update,
        PolicySource::Stored(&snapshot),
        &mut |id| {
            opened
                .remove(id)
                .ok_or_else(|| errors::value_not_found_for_version(id))
        },
    )?;
    match applied {
        Applied::Synced { seq } => {
            note_success(
                services,
                &mut *txn,
                key,
                &mut primary,
                &job.target,
                seq,
                None,
            )?;
        }
        Applied::Promoted | Applied::Removed => {
            forget_region(&mut *txn, key, &mut primary, &job.target)?;
        }
    }
    txn.commit().or_internal()?;
    Ok(true)
}

/// The replica of `target` no longer follows `primary`: drop the region and its job.
fn forget_region(
    txn: &mut dyn WriteTxn,
    key: &str,
    primary: &mut SecretRecord,
    target: &str,
) -> Result<(), SyncError> {
    primary.replication_status.retain(|s| s.region != target);
    record::put(
        txn,
        &keys::secret(&primary.account, &primary.region, &primary.name),
        &*primary,
    )
    .or_internal()?;
    txn.delete(key).or_internal()?;
    tracing::info!(secret = %primary.arn, region = target, "replica promoted in its region; replication to it stopped");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// A region of a peer deployment

/// The peer's answer to [`PEER_OPERATION`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerAnswer {
    #[serde(rename = "ARN")]
    pub arn: String,
    /// `Synced`, `Promoted` or `Removed`.
    pub outcome: String,
    #[serde(default)]
    pub seq: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub last_accessed_date: Option<OffsetDateTime>,
}

fn sync_peer(
    services: &Services,
    key: &str,
    job: &ReplicationJob,
    peer: &dyn PeerLink,
    now: OffsetDateTime,
) -> Result<bool, SyncError> {
    // 1. The state to send, from one read snapshot.
    let body = {
        let txn = services.store().begin_read().or_internal()?;
        let primary =
            record::get::<SecretRecord>(&*txn, &keys::secret(&job.account, &job.region, &job.name))
                .or_internal()?
                .filter(|p| p.arn == job.arn && p.primary_region.is_none());
        let mut update = match (&primary, job.remove) {
            (_, true) | (None, false) => ReplicaUpdate {
                primary_arn: job.arn.clone(),
                name: job.name.clone(),
                primary_region: job.region.clone(),
                seq: job.seq,
                kms_key_id: None,
                force_overwrite: false,
                remove: true,
                description: None,
                r#type: None,
                tags: Vec::new(),
                resource_policy: None,
                created_date: now,
                last_changed_date: now,
                versions: Vec::new(),
            },
            (Some(p), false) => {
                let Some(st) = p.replication_status.iter().find(|s| s.region == job.target) else {
                    drop_job(services, key)?;
                    return Ok(false);
                };
                let ctx = acting_ctx(st, &p.account, &p.region, now);
                let mut u = update_of(p, st, crate::policy::render(&*txn, p)?);
                for v in &mut u.versions {
                    if v.has_value {
                        let (kind, plain) = open_primary(services, &*txn, &ctx, p, &v.version_id)?;
                        match kind {
                            ValueKind::String => {
                                v.secret_string =
                                    Some(SecretString::from_utf8(plain).map_err(errors::internal)?)
                            }
                            ValueKind::Binary => v.secret_binary = Some(plain),
                        }
                    }
                }
                u
            }
        };
        if primary.is_none() {
            update.remove = true;
        }
        SecretBytes::from(serde_json::to_vec(&update).map_err(|_| {
            SyncError::Internal(ServiceError::Corrupt(
                "replica update does not encode".into(),
            ))
        })?)
    };
    // 2. Over the wire, with no transaction open.
    let answer = match peer.send(&job.target, body.expose()) {
        Ok(a) => a,
        Err(PeerError::Unreachable(detail)) => {
            return Err(SyncError::Status(failed_message(&format!(
                "the deployment serving region {} ({}) is unreachable: {detail}. Retrying.",
                job.target,
                peer.endpoint()
            ))));
        }
        Err(PeerError::Refused { code, message }) => {
            return Err(SyncError::Status(failed_message(&format!(
                "{message} ({code})"
            ))));
        }
    };
    let answer: PeerAnswer = serde_json::from_slice(&answer).map_err(|_| {
        SyncError::Status(failed_message(&format!(
            "the deployment serving region {} sent an answer that is not a replica update result.",
            job.target
        )))
    })?;
    // 3. Record the outcome.
    let mut txn = services.store().begin_write().or_internal()?;
    let pkey = keys::secret(&job.account, &job.region, &job.name);
    let primary = record::get::<SecretRecord>(&*txn, &pkey)
        .or_internal()?
        .filter(|p| p.arn == job.arn);
    match (answer.outcome.as_str(), primary) {
        ("Synced", Some(mut p)) => note_success(
            services,
            &mut *txn,
            key,
            &mut p,
            &job.target,
            answer.seq,
            answer.last_accessed_date,
        )?,
        ("Promoted", Some(mut p)) => forget_region(&mut *txn, key, &mut p, &job.target)?,
        _ => {
            // Removed, or the primary is gone: the job is done unless it was re-queued.
            if let Some(current) = record::get::<ReplicationJob>(&*txn, key).or_internal()?
                && current.remove == job.remove
                && current.seq <= job.seq
            {
                txn.delete(key).or_internal()?;
            }
        }
    }
    txn.commit().or_internal()?;
    Ok(true)
}

fn drop_job(services: &Services, key: &str) -> Result<(), SyncError> {
    let mut txn = services.store().begin_write().or_internal()?;
    txn.delete(key).or_internal()?;
    txn.commit().or_internal()?;
    Ok(())
}

/// The receiving side of [`PEER_OPERATION`]: a peer deployment's replication principal
/// updates (or removes) a replica in the request's region. Authorized as
/// `secretsmanager:TresorApplyReplicaUpdate` on the replica's ARN by this deployment's IAM;
/// the values are sealed under this region's key as that principal.
pub fn apply_peer_update(
    services: &Services,
    ctx: &RequestCtx,
    input: ReplicaUpdate,
) -> Result<PeerAnswer, SecretsManagerError> {
    let mut v = tresor_wire::validate::Validator::new();
    crate::validate::name(&mut v, &input.name)?;
    for version in &input.versions {
        crate::validate::version_id(&mut v, "VersionId", Some(&version.version_id));
        for stage in &version.version_stages {
            crate::validate::version_stage(&mut v, "VersionStage", Some(stage));
        }
    }
    crate::validate::kms_key_id(&mut v, input.kms_key_id.as_deref());
    crate::validate::description(&mut v, input.description.as_deref());
    crate::validate::tags(&mut v, &input.tags)?;
    crate::validate::finish(v)?;
    let arn = replica_arn(&input.primary_arn, &ctx.region);
    let parts: Vec<&str> = input.primary_arn.split(':').collect();
    if parts.len() < 7
        || parts.get(4).copied() != Some(ctx.caller.account.as_str())
        || input.primary_region == ctx.region
        || parts
            .get(6)
            .is_none_or(|r| !r.starts_with(input.name.as_str()))
    {
        return Err(errors::invalid_parameter(
            "The replica update names a secret of another account or region.",
        ));
    }
    let (mut txn, _) = crate::access::begin_authorized_write(services, |txn| {
        // A primary this deployment holds is replicated by this deployment, never by a peer.
        let local_primary: Option<SecretRecord> = record::get(
            txn,
            &keys::secret(&ctx.caller.account, &input.primary_region, &input.name),
        )
        .or_internal()?;
        if local_primary.is_some_and(|p| p.arn == input.primary_arn) {
            return Err(errors::invalid_request(
                "The primary of this replica is held by this deployment; it is not replicated by a peer.",
            ));
        }
        let existing: Option<SecretRecord> = record::get(
            txn,
            &keys::secret(&ctx.caller.account, &ctx.region, &input.name),
        )
        .or_internal()?;
        match existing.filter(|r| r.arn == arn) {
            Some(r) => authorize(
                services,
                ctx,
                "secretsmanager:TresorApplyReplicaUpdate",
                &r,
                vec![],
            ),
            None => services
                .authorize(
                    ctx,
                    &tresor_core::AuthzRequest {
                        action: "secretsmanager:TresorApplyReplicaUpdate",
                        resource: &arn,
                        context: vec![tresor_core::cond("secretsmanager:SecretId", arn.as_str())],
                        resource_policy: None,
                    },
                )
                .map_err(Into::into),
        }
    })?;
    let mut values: BTreeMap<&str, (ValueKind, &[u8])> = BTreeMap::new();
    for v in &input.versions {
        match (&v.secret_string, &v.secret_binary) {
            (Some(s), None) => {
                values.insert(&v.version_id, (ValueKind::String, s.expose().as_bytes()));
            }
            (None, Some(b)) => {
                values.insert(&v.version_id, (ValueKind::Binary, b.expose()));
            }
            _ => {}
        }
    }
    let applied = apply_update(
        services,
        &mut *txn,
        ctx,
        &input,
        PolicySource::Text(input.resource_policy.as_deref()),
        &mut |id| match values.get(id) {
            Some((kind, bytes)) => Ok((*kind, SecretBytes::from(bytes.to_vec()))),
            None => Err(errors::value_not_found_for_version(id)),
        },
    )?;
    let last_accessed = record::get::<SecretRecord>(
        &*txn,
        &keys::secret(&ctx.caller.account, &ctx.region, &input.name),
    )
    .or_internal()?
    .filter(|r| r.arn == arn)
    .and_then(|r| r.last_accessed);
    txn.commit().or_internal()?;
    let (outcome, seq) = match applied {
        Applied::Synced { seq } => ("Synced", seq),
        Applied::Promoted => ("Promoted", 0),
        Applied::Removed => ("Removed", 0),
    };
    tracing::info!(secret = %arn, primary_region = %input.primary_region, seq, outcome, "replica update from a peer deployment");
    Ok(PeerAnswer {
        arn,
        outcome: outcome.into(),
        seq,
        last_accessed_date: last_accessed,
    })
}
