//! Background work of Parameter Store: deleting parameters whose Expiration policy is due
//! (an outbox). The job record is written in the same transaction as the PutParameter
//! that set the policy; the parameter record names its pending job, so a job made stale by a
//! later change (new policies, deletion, re-creation) is recognised and just removed.
//!
//! Each job runs in its own write transaction that re-reads the job and the parameter:
//! running the worker twice, on two nodes, or after a crash does the work once.

use time::OffsetDateTime;
use tresor_core::Services;
use tresor_core::record;

use crate::model::{ExpirationJob, ParameterRecord, keys};

const BATCH: usize = 100;

/// Runs every Parameter Store job due at `now`; returns how many were completed (stale ones
/// included). A job that fails is logged and left for the next run.
pub fn run_due_jobs(services: &Services, now: OffsetDateTime) -> Result<usize, String> {
    let mut done = 0;
    let mut after: Option<String> = None;
    loop {
        let due: Vec<String> = {
            let txn = services.store().begin_read().map_err(|e| e.to_string())?;
            txn.scan(keys::JOB_PREFIX, after.as_deref(), BATCH)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(k, _)| k)
                .take_while(|k| keys::due_of(k).is_some_and(|d| d <= now.unix_timestamp()))
                .collect()
        };
        let Some(last) = due.last().cloned() else {
            return Ok(done);
        };
        for job_key in &due {
            match run_one(services, job_key) {
                Ok(()) => done += 1,
                Err(e) => tracing::warn!(job = %job_key, error = %e, "SSM job failed; will retry"),
            }
        }
        if due.len() < BATCH {
            return Ok(done);
        }
        after = Some(last);
    }
}

fn run_one(services: &Services, job_key: &str) -> Result<(), String> {
    let mut txn = services.store().begin_write().map_err(|e| e.to_string())?;
    let job = match record::get::<ExpirationJob>(&*txn, job_key) {
        Ok(Some(job)) => job,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::error!(job = %job_key, error = %e, "unreadable SSM job record removed");
            txn.delete(job_key).map_err(|e| e.to_string())?;
            return txn.commit().map_err(|e| e.to_string());
        }
    };
    let param_key = keys::param(&job.account, &job.region, &job.canonical);
    let rec = record::get::<ParameterRecord>(&*txn, &param_key).map_err(|e| e.to_string())?;
    match rec {
        Some(rec) if rec.expiration_job.as_deref() == Some(job_key) => {
            crate::params::remove(&mut *txn, &job.account, &job.region, &rec)
                .map_err(|e| e.to_string())?;
            tracing::info!(account = %job.account, region = %job.region, "deleted an expired parameter");
        }
        _ => {}
    }
    txn.delete(job_key).map_err(|e| e.to_string())?;
    txn.commit().map_err(|e| e.to_string())
}
