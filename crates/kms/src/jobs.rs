//! KMS background work, driven by durable job records (an outbox): key deletion when the
//! waiting period ends, and automatic rotation. Jobs are written in the same transaction as
//! the change that causes them (ScheduleKeyDeletion, EnableKeyRotation, managed-key creation).
//!
//! Each job runs in its own write transaction that re-reads the job and the key, so running
//! the worker twice, on two nodes, or after a crash does the work once; a job made stale by a
//! later change (CancelKeyDeletion, DisableKeyRotation) is just removed.

use time::OffsetDateTime;
use tresor_core::Services;
use tresor_core::error::ServiceError;
use tresor_core::record;
use tresor_store::WriteTxn;

use crate::keys;
use crate::model::{self, JOB_PREFIX, JobKind, JobRecord, KeyState};

const BATCH: usize = 100;

/// The due time encoded in a job key (`sys/jobs/kms/<20-digit seconds>/…`).
fn due_of(job_key: &str) -> Option<i64> {
    job_key
        .strip_prefix(JOB_PREFIX)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Runs every KMS job due at `now`; returns how many were completed (including stale ones
/// removed). A job that fails is logged and left for the next run; the others still run.
pub fn run_due_jobs(services: &Services, now: OffsetDateTime) -> Result<usize, ServiceError> {
    let mut done = 0;
    let mut after: Option<String> = None;
    loop {
        let due: Vec<String> = {
            let txn = services.store().begin_read()?;
            txn.scan(JOB_PREFIX, after.as_deref(), BATCH)?
                .into_iter()
                .map(|(k, _)| k)
                .take_while(|k| due_of(k).is_some_and(|d| d <= now.unix_timestamp()))
                .collect()
        };
        let Some(last) = due.last().cloned() else {
            return Ok(done);
        };
        for job_key in &due {
            match run_one(services, job_key, now) {
                Ok(()) => done += 1,
                Err(e) => tracing::warn!(job = %job_key, error = %e, "KMS job failed; will retry"),
            }
        }
        if due.len() < BATCH {
            return Ok(done);
        }
        after = Some(last);
    }
}

fn run_one(services: &Services, job_key: &str, now: OffsetDateTime) -> Result<(), ServiceError> {
    let mut txn = services.store().begin_write()?;
    let job = match record::get::<JobRecord>(&*txn, job_key) {
        Ok(Some(job)) => job,
        // Someone else ran it already.
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::error!(job = %job_key, error = %e, "unreadable KMS job record removed");
            txn.delete(job_key)?;
            txn.commit()?;
            return Ok(());
        }
    };
    match job.kind {
        JobKind::DeleteKey => delete_key(&mut *txn, &job, now)?,
        JobKind::RotateKey => rotate_key(services, &mut *txn, &job, now)?,
    }
    txn.delete(job_key)?;
    txn.commit()?;
    Ok(())
}

/// Destroys the key and its aliases if it is still pending deletion and due. The key
/// material is inside the key record, so it goes with it.
fn delete_key(
    txn: &mut dyn WriteTxn,
    job: &JobRecord,
    now: OffsetDateTime,
) -> Result<(), ServiceError> {
    let Some(key) = model::load_key(&*txn, &job.account, &job.region, &job.key_id)
        .map_err(ServiceError::from)?
    else {
        return Ok(());
    };
    let due = key.deletion_date.is_some_and(|d| d <= now);
    if key.state != KeyState::PendingDeletion || !due {
        return Ok(());
    }
    for alias in &key.aliases {
        txn.delete(&model::alias_key(&key.account, &key.region, alias))?;
    }
    if let Some(next) = key.rotation.next_rotation {
        model::delete_job(txn, next, &key, JobKind::RotateKey).map_err(ServiceError::from)?;
    }
    txn.delete(&model::key_key(&key.account, &key.region, &key.key_id))?;
    tracing::info!(key = %key.arn, "deleted KMS key at the end of its waiting period");
    Ok(())
}

/// Adds new material if automatic rotation is still enabled and this job is the current
/// schedule; schedules the next rotation. Keys that are not enabled are not rotated (KMS
/// Developer Guide, "How automatic key rotation works": disabled keys are not rotated); the
/// schedule moves on.
fn rotate_key(
    services: &Services,
    txn: &mut dyn WriteTxn,
    job: &JobRecord,
    now: OffsetDateTime,
) -> Result<(), ServiceError> {
    let aws = ServiceError::from;
    let Some(mut key) =
        model::load_key(&*txn, &job.account, &job.region, &job.key_id).map_err(aws)?
    else {
        return Ok(());
    };
    let current = key
        .rotation
        .next_rotation
        .is_some_and(|n| n.unix_timestamp() == job.due.unix_timestamp());
    if !key.rotation.enabled || !current {
        return Ok(());
    }
    if key.state == KeyState::Enabled {
        keys::add_material(services, &mut key, now, "AUTOMATIC").map_err(aws)?;
        tracing::info!(key = %key.arn, "rotated key material automatically");
    }
    let period = key.rotation.period_days.unwrap_or(365);
    keys::schedule_rotation(txn, &mut key, period, now).map_err(aws)?;
    model::save_key(txn, &key).map_err(aws)?;
    Ok(())
}
