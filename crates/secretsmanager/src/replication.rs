//! Multi-Region replication: ReplicateSecretToRegions, RemoveRegionsFromReplication,
//! StopReplicationToReplica, `CreateSecret.AddReplicaRegions`, and the outbox hook every
//! saved change of a primary goes through ([`enqueue`]).
//!
//! A replica is a read-only copy of the primary in another region, with the same name and
//! random suffix (AWS Secrets Manager User Guide, "Replicate an AWS Secrets Manager secret
//! to other AWS Regions"): its versions re-encrypted under the replica region's KMS key, its
//! version ids, staging labels, description, tags and resource policy copied. The copying
//! itself is done by the replication worker ([`crate::replication_sync`]), from durable jobs
//! written in the same transaction as the change they carry.
//!
//! Regions are served by this deployment, or by a peer deployment ([`Topology`]); the worker
//! copies to a peer over its API.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tresor_core::authz::AuthzRequest;
use tresor_core::{RequestCtx, Services, record};
use tresor_store::{ReadTxn, WriteTxn};
use tresor_wire::validate::Validator;

use crate::access::{begin_authorized_write, load_authorized, load_live, refuse_replica, save};
use crate::errors::{self, OrInternal, SecretsManagerError};
use crate::model::{ReplicationJob, ReplicationStatus, SecretRecord, keys};
use crate::replication_outbox::wake;
use crate::shapes::ReplicationStatusOut;
use crate::validate;

/// `ReplicationStatusType.Status` values (botocore model `StatusType`).
pub const IN_PROGRESS: &str = "InProgress";
pub const IN_SYNC: &str = "InSync";
pub const FAILED: &str = "Failed";

/// The `StatusMessage` of a replica in sync (AWS's API reference examples).
pub const SUCCEEDED_MESSAGE: &str = "Replication succeeded";

/// Where each region is served: by this deployment, or by a peer deployment reached through
/// a [`PeerLink`]. Set by the server as a [`Services`] extension; without one (unit tests),
/// every region is served here.
pub struct Topology {
    /// The regions this deployment serves.
    pub local: Vec<String>,
    /// Regions served by a peer deployment.
    pub peers: BTreeMap<String, Arc<dyn PeerLink>>,
}

impl Topology {
    pub fn is_local(&self, region: &str) -> bool {
        self.local.iter().any(|r| r == region) && !self.peers.contains_key(region)
    }
}

/// How a peer deployment failed to take a replica update.
#[derive(Debug)]
pub enum PeerError {
    /// No answer (connection refused, timeout, TLS failure): retried.
    Unreachable(String),
    /// The peer answered with an AWS-style error.
    Refused { code: String, message: String },
}

/// A connection to the peer deployment that serves a region: sends one signed request with
/// the internal operation [`crate::replication_sync::PEER_OPERATION`] and returns the body
/// of its answer.
pub trait PeerLink: Send + Sync {
    fn send(&self, region: &str, body: &[u8]) -> Result<Vec<u8>, PeerError>;
    /// The peer's endpoint, for status messages and logs.
    fn endpoint(&self) -> &str;
}

pub(crate) fn topology(services: &Services) -> Option<Arc<Topology>> {
    services.extension::<Topology>()
}

/// Whether `region` can hold a replica: served here or by a configured peer.
fn region_known(services: &Services, region: &str) -> bool {
    topology(services)
        .is_none_or(|t| t.local.iter().any(|r| r == region) || t.peers.contains_key(region))
}

/// Whether `region` is served by a peer deployment.
pub(crate) fn peer_of(services: &Services, region: &str) -> Option<Arc<dyn PeerLink>> {
    topology(services).and_then(|t| t.peers.get(region).cloned())
}

/// The replica's ARN: the primary's with the replica's region.
pub(crate) fn replica_arn(primary_arn: &str, region: &str) -> String {
    // arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<suffix>
    let parts: Vec<&str> = primary_arn.splitn(5, ':').collect();
    match parts.as_slice() {
        [arn, partition, service, _region, rest] => {
            format!("{arn}:{partition}:{service}:{region}:{rest}")
        }
        _ => primary_arn.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Input shapes and validation

/// `ReplicaRegionType`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaRegion {
    pub region: Option<String>,
    pub kms_key_id: Option<String>,
}

/// The `Region` pattern of `ReplicaRegionType` / `RegionType` (botocore model).
fn valid_region(r: &str) -> bool {
    let Some((head, digits)) = r.rsplit_once('-') else {
        return false;
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && head
            .split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

fn validate_region(v: &mut Validator, member: &str, r: &str) {
    v.length(member, Some(r), 1, 128);
    if !valid_region(r) {
        v.fail(
            member,
            Some(r),
            "Member must satisfy regular expression pattern: ^([a-z]+-)+\\d+$",
        );
    }
}

/// Checks `AddReplicaRegions` for a primary in `primary_region`: returns (region, key) pairs.
pub(crate) fn check_add_regions(
    services: &Services,
    v: &mut Validator,
    regions: &[ReplicaRegion],
    primary_region: &str,
) -> Result<Vec<(String, Option<String>)>, SecretsManagerError> {
    if regions.is_empty() {
        v.fail(
            "addReplicaRegions",
            None,
            "Member must have length greater than or equal to 1",
        );
    }
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for (i, r) in regions.iter().enumerate() {
        let member = format!("addReplicaRegions.{}.member.region", i + 1);
        let Some(region) = r.region.as_deref() else {
            return Err(errors::invalid_parameter("Invalid replica region."));
        };
        validate_region(v, &member, region);
        validate::kms_key_id(v, r.kms_key_id.as_deref());
        if !valid_region(region) {
            continue;
        }
        if region == primary_region
            || !region_known(services, region)
            || out.iter().any(|(o, _)| o == region)
        {
            // Emulators' text for the primary's own region; tresor uses it for a region no
            // deployment it knows serves, and for a region listed twice.
            return Err(errors::invalid_parameter("Invalid replica region."));
        }
        out.push((
            region.to_string(),
            r.kms_key_id.clone().filter(|k| !k.is_empty()),
        ));
    }
    Ok(out)
}

/// Condition keys of a request that adds replica regions (Service Authorization Reference,
/// AWS Secrets Manager: `secretsmanager:AddReplicaRegions`,
/// `secretsmanager:ForceOverwriteReplicaSecret`).
pub(crate) fn add_regions_context(
    regions: &[(String, Option<String>)],
    force: bool,
) -> Vec<(String, String)> {
    let mut c: Vec<(String, String)> = regions
        .iter()
        .map(|(r, _)| ("secretsmanager:AddReplicaRegions".to_string(), r.clone()))
        .collect();
    c.push((
        "secretsmanager:ForceOverwriteReplicaSecret".to_string(),
        force.to_string(),
    ));
    c
}

/// Adds (or retries) replica regions on `rec`: each becomes `InProgress`, replicated as the
/// caller. The caller saves `rec` (which queues the jobs) and wakes the worker after commit.
pub(crate) fn add_regions(
    ctx: &RequestCtx,
    rec: &mut SecretRecord,
    regions: &[(String, Option<String>)],
    force: bool,
) -> Vec<ReplicationStatusOut> {
    let mut added = Vec::new();
    for (region, key) in regions {
        let entry = ReplicationStatus {
            region: region.clone(),
            kms_key_id: key.clone(),
            status: IN_PROGRESS.to_string(),
            status_message: None,
            last_accessed: None,
            force_overwrite: force,
            by: Some(tresor_core::ctx::Caller::clone(&ctx.caller)),
            synced_seq: 0,
        };
        match rec
            .replication_status
            .iter_mut()
            .find(|s| s.region == *region)
        {
            // Adding a region again retries it (the console's "Retry replication").
            Some(slot) => {
                let last_accessed = slot.last_accessed;
                *slot = entry;
                slot.last_accessed = last_accessed;
                added.push(ReplicationStatusOut::from(&*slot));
            }
            None => {
                added.push(ReplicationStatusOut::from(&entry));
                rec.replication_status.push(entry);
            }
        }
    }
    added
}

// ---------------------------------------------------------------------------------------
// ReplicateSecretToRegions

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateSecretToRegionsInput {
    pub secret_id: String,
    #[serde(default)]
    pub add_replica_regions: Vec<ReplicaRegion>,
    pub force_overwrite_replica_secret: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub replication_status: Vec<ReplicationStatusOut>,
}

pub fn replicate_secret_to_regions(
    services: &Services,
    ctx: &RequestCtx,
    input: ReplicateSecretToRegionsInput,
) -> Result<ReplicationOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    let regions = check_add_regions(services, &mut v, &input.add_replica_regions, &ctx.region)?;
    validate::finish(v)?;
    let force = input.force_overwrite_replica_secret.unwrap_or(false);
    let context = add_regions_context(&regions, force);
    let (mut txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:ReplicateSecretToRegions",
            &input.secret_id,
            context.clone(),
        )
    })?;
    refuse_replica(&rec)?;
    let added = add_regions(ctx, &mut rec, &regions, force);
    save(&mut *txn, &rec)?;
    txn.commit().or_internal()?;
    wake();
    tracing::info!(secret = %rec.arn, regions = ?regions.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(), "replication to regions added");
    Ok(ReplicationOutput {
        arn: rec.arn,
        replication_status: added,
    })
}

// ---------------------------------------------------------------------------------------
// RemoveRegionsFromReplication

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveRegionsInput {
    pub secret_id: String,
    #[serde(default)]
    pub remove_replica_regions: Vec<String>,
}

pub fn remove_regions_from_replication(
    services: &Services,
    ctx: &RequestCtx,
    input: RemoveRegionsInput,
) -> Result<ReplicationOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    if input.remove_replica_regions.is_empty() {
        v.fail(
            "removeReplicaRegions",
            None,
            "Member must have length greater than or equal to 1",
        );
    }
    for (i, r) in input.remove_replica_regions.iter().enumerate() {
        validate_region(&mut v, &format!("removeReplicaRegions.{}.member", i + 1), r);
    }
    validate::finish(v)?;
    let context: Vec<(String, String)> = input
        .remove_replica_regions
        .iter()
        .map(|r| ("secretsmanager:RemoveReplicaRegions".to_string(), r.clone()))
        .collect();
    let (mut txn, mut rec) = begin_authorized_write(services, |txn| {
        load_authorized(
            services,
            txn,
            ctx,
            "secretsmanager:RemoveRegionsFromReplication",
            &input.secret_id,
            context.clone(),
        )
    })?;
    refuse_replica(&rec)?;
    for region in &input.remove_replica_regions {
        if !rec.replication_status.iter().any(|s| s.region == *region) {
            // Unconfirmed wording.
            return Err(errors::invalid_parameter(format!(
                "Region {region} is not a replica region of secret {}.",
                rec.name
            )));
        }
    }
    let now = ctx.now;
    for region in &input.remove_replica_regions {
        rec.replication_status.retain(|s| s.region != *region);
        let job_key = keys::replication_job(&rec.account, &rec.region, region, &rec.name);
        if peer_of(services, region).is_some() {
            // The peer deletes its replica when the job reaches it.
            let job = ReplicationJob::new(&rec, region, true, now);
            record::put(&mut *txn, &job_key, &job).or_internal()?;
        } else {
            // Deleted at once, without a recovery window (API reference,
            // RemoveRegionsFromReplication).
            txn.delete(&job_key).or_internal()?;
            delete_local_replica(&mut *txn, &rec, region)?;
        }
    }
    rec.last_changed = now;
    save(&mut *txn, &rec)?;
    txn.commit().or_internal()?;
    wake();
    tracing::info!(secret = %rec.arn, regions = ?input.remove_replica_regions, "replica regions removed");
    Ok(ReplicationOutput {
        arn: rec.arn.clone(),
        replication_status: rec
            .replication_status
            .iter()
            .map(ReplicationStatusOut::from)
            .collect(),
    })
}

/// Deletes the replica of `primary` in `region` from this deployment's store, if it is one.
pub(crate) fn delete_local_replica(
    txn: &mut dyn WriteTxn,
    primary: &SecretRecord,
    region: &str,
) -> Result<(), SecretsManagerError> {
    let key = keys::secret(&primary.account, region, &primary.name);
    if let Some(replica) = record::get::<SecretRecord>(&*txn, &key).or_internal()?
        && replica.arn == replica_arn(&primary.arn, region)
        && replica.primary_region.as_deref() == Some(primary.region.as_str())
    {
        crate::access::purge(txn, &replica)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// StopReplicationToReplica

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StopReplicationInput {
    pub secret_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StopReplicationOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
}

/// Promotes a replica to a standalone secret (called in the replica's region).
pub fn stop_replication_to_replica(
    services: &Services,
    ctx: &RequestCtx,
    input: StopReplicationInput,
) -> Result<StopReplicationOutput, SecretsManagerError> {
    let (mut txn, mut rec) = crate::access::begin_write_on(
        services,
        ctx,
        "secretsmanager:StopReplicationToReplica",
        &input.secret_id,
    )?;
    let Some(primary_region) = rec.primary_region.take() else {
        // Unconfirmed wording.
        return Err(errors::invalid_request(
            "StopReplicationToReplica can only be called on a replica secret.",
        ));
    };
    // The primary in this deployment forgets the region in the same transaction; a primary
    // on a peer learns it when its next update is refused.
    if peer_of(services, &primary_region).is_none() {
        let pkey = keys::secret(&rec.account, &primary_region, &rec.name);
        if let Some(mut primary) = record::get::<SecretRecord>(&*txn, &pkey).or_internal()?
            && replica_arn(&primary.arn, &rec.region) == rec.arn
        {
            primary
                .replication_status
                .retain(|s| s.region != rec.region);
            txn.delete(&keys::replication_job(
                &primary.account,
                &primary.region,
                &rec.region,
                &primary.name,
            ))
            .or_internal()?;
            primary.last_changed = ctx.now;
            save(&mut *txn, &primary)?;
        }
    }
    rec.repl_seq = 0;
    rec.last_changed = ctx.now;
    save(&mut *txn, &rec)?;
    txn.commit().or_internal()?;
    tracing::info!(secret = %rec.arn, primary_region, "replica promoted to a standalone secret");
    Ok(StopReplicationOutput { arn: rec.arn })
}

// ---------------------------------------------------------------------------------------
// DescribeSecret support

/// Fills each replica's `LastAccessedDate` from the replica itself when this deployment
/// serves its region.
pub(crate) fn fill_replica_access(
    txn: &dyn ReadTxn,
    rec: &mut SecretRecord,
) -> Result<(), SecretsManagerError> {
    let (account, name, arn) = (rec.account.clone(), rec.name.clone(), rec.arn.clone());
    for st in &mut rec.replication_status {
        let key = keys::secret(&account, &st.region, &name);
        if let Some(replica) = record::get::<SecretRecord>(txn, &key).or_internal()?
            && replica.arn == replica_arn(&arn, &st.region)
        {
            st.last_accessed = replica.last_accessed.or(st.last_accessed);
        }
    }
    Ok(())
}

/// Authorization of `secretsmanager:ReplicateSecretToRegions` at CreateSecret (replica regions
/// need it, CreateSecret API reference).
pub(crate) fn authorize_create_replicas(
    services: &Services,
    ctx: &RequestCtx,
    arn: &str,
    context: Vec<(String, String)>,
) -> Result<(), SecretsManagerError> {
    services
        .authorize(
            ctx,
            &AuthzRequest {
                action: "secretsmanager:ReplicateSecretToRegions",
                resource: arn,
                context: tresor_core::owned_conditions(context),
                resource_policy: None,
            },
        )
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_pattern_follows_the_model() {
        for ok in ["us-east-1", "eu-west-3", "us-gov-west-1", "ap-southeast-12"] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in ["", "us-east", "US-east-1", "1", "us--1", "-1", "us-east-1a"] {
            assert!(!valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn replica_arns_change_only_the_region() {
        assert_eq!(
            replica_arn(
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:ci/token-AbC123",
                "eu-west-1"
            ),
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/token-AbC123"
        );
    }
}
