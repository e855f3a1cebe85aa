//! Running rotations: the background side of RotateSecret and of rotation schedules.
//!
//! A rotation job (`sys/jobs/secretsmanager/rotate/<due>/…`, see [`crate::rotation`]) is
//! picked up when due by the server's rotation worker, which calls [`dispatch`]: each due job
//! runs on its own thread (a bounded number at once), so one slow function neither delays
//! other secrets' rotations nor the other background jobs.
//!
//! One run ([`run_job`]):
//! 1. *start* (one transaction): a scheduled job picks its version — the pending version of an
//!    incomplete rotation, which it re-attempts, or a new placeholder with `AWSPENDING`;
//! 2. each step (`createSecret`, `setSecret`, `testSecret`, `finishSecret`; only `testSecret`
//!    for `RotateImmediately=false`) is invoked through [`tresor_core::Functions`] as
//!    `secretsmanager.amazonaws.com`, with no transaction open; after each, one small
//!    transaction records the step as done, so a server restarted mid-rotation resumes at the
//!    step after the last completed one (the steps of AWS's templates are idempotent, and
//!    the step in flight at the crash runs again);
//! 3. *finish* (one transaction): `AWSCURRENT` must now be on the new version — a function
//!    that did not move it failed, as on AWS — then `LastRotatedDate`, `NextRotationDate` and
//!    the next scheduled job are written. `RotateImmediately=false` instead removes the
//!    placeholder.
//!
//! A failed step fails the rotation: `AWSPENDING` stays where it is (as on AWS), the failure
//! is logged (secret ARN, version id, step, error type — never a value) and the whole rotation
//! is retried from `createSecret` with the same version after a backoff (1, 2, 4, 8, 16
//! minutes); after that the next scheduled window re-attempts it. A job whose secret was
//! deleted, re-created or had rotation cancelled is dropped.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use time::{Duration, OffsetDateTime};
use tresor_core::error::ServiceError;
use tresor_core::lease::{self, Lease};
use tresor_core::{FunctionError, ServiceInvoke, Services, record};

use crate::access::save;
use crate::errors::{OrInternal, SecretsManagerError};
use crate::model::{AWSCURRENT, AWSPENDING, RotationJob, RotationKind, SecretRecord, keys};
use crate::rotation::{
    SERVICE_PRINCIPAL, add_placeholder, incomplete_pending, replace_job, schedule_next, unix_ms,
};
use crate::schedule;

/// The four steps, in order (AWS Secrets Manager User Guide, "Rotation by Lambda function").
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// Retries of a failed rotation before it waits for the next scheduled window.
pub const MAX_RETRIES: u32 = 5;

/// Rotations running at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Due jobs looked at per [`dispatch`].
const BATCH: usize = 100;

/// The rotations this process is running, by secret (`account/region/name`).
pub struct Runner {
    running: Mutex<HashSet<String>>,
    max: usize,
}

impl Runner {
    pub fn new(max: usize) -> Runner {
        Runner {
            running: Mutex::new(HashSet::new()),
            max: max.max(1),
        }
    }

    /// How many rotations run now.
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }
}

/// The secret part (`account/region/name`) and due time (unix ms) of a job key.
pub(crate) fn parse_key(key: &str) -> Option<(i64, &str)> {
    let rest = key.strip_prefix(keys::ROTATION_JOBS_PREFIX)?;
    let (due, secret) = rest.split_once('/')?;
    Some((due.parse().ok()?, secret))
}

/// Starts every due rotation that is not already running (on its own thread, at most
/// `runner.max` at once); returns when the next job not yet due is due, if any. Each thread
/// calls `services.job_wakeup().wake()` when it ends, so the worker looks again.
pub fn dispatch(
    services: &Arc<Services>,
    runner: &Arc<Runner>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ServiceError> {
    let jobs = {
        let txn = services.store().begin_read()?;
        txn.scan(keys::ROTATION_JOBS_PREFIX, None, BATCH)?
    };
    let now_ms = unix_ms(now);
    let mut next_due: Option<OffsetDateTime> = None;
    for (key, value) in jobs {
        let Some((due, secret)) = parse_key(&key) else {
            continue;
        };
        if due > now_ms {
            let due = OffsetDateTime::from_unix_timestamp_nanos(i128::from(due) * 1_000_000)
                .unwrap_or(now);
            next_due = Some(next_due.map_or(due, |n| n.min(due)));
            break;
        }
        // Another node runs it: look again when its lease ends.
        if let Some(lease) = serde_json::from_slice::<RotationJob>(&value)
            .ok()
            .and_then(|j| j.lease)
            .filter(|l| l.held_by_other(now))
        {
            let until = lease.until();
            next_due = Some(next_due.map_or(until, |n| n.min(until)));
            continue;
        }
        {
            let mut running = runner.running.lock();
            if running.len() >= runner.max {
                break;
            }
            if !running.insert(secret.to_string()) {
                continue;
            }
        }
        let services = services.clone();
        let runner = runner.clone();
        let secret = secret.to_string();
        let spawned = std::thread::Builder::new()
            .name("rotation".into())
            .spawn(move || {
                run_job(&services, &key);
                runner.running.lock().remove(&secret);
                services.job_wakeup().wake();
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a rotation thread");
        }
    }
    Ok(next_due)
}

/// Runs the rotation job at `key` to its end: completed, failed (retry scheduled) or dropped.
pub fn run_job(services: &Services, key: &str) {
    let result = (|| -> Result<(), SecretsManagerError> {
        let Some(start) = start(services, key, OffsetDateTime::now_utc())? else {
            return Ok(());
        };
        let steps: &[&str] = match start.job.kind {
            RotationKind::TestOnly => &STEPS[2..3],
            _ => &STEPS,
        };
        let rotation_token = tresor_crypto::ids::uuid_v4();
        for (i, step) in steps.iter().enumerate().skip(start.job.next_step) {
            tracing::info!(secret = %start.job.arn, version_id = %start.token, step, "rotation step started");
            let payload = serde_json::json!({
                "Step": step,
                "SecretId": start.job.arn,
                "ClientRequestToken": start.token,
                "RotationToken": rotation_token,
            });
            let payload = payload.to_string().into_bytes();
            let call = ServiceInvoke {
                function_arn: &start.lambda,
                service_principal: SERVICE_PRINCIPAL,
                source_account: &start.job.account,
                source_arn: &start.job.arn,
            };
            let outcome = match services.functions() {
                Ok(f) => f.invoke_as_service(services, &call, &payload).map(|_| ()),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(secret = %start.job.arn, version_id = %start.token, step, "rotation step succeeded");
                    if !record_step(services, key, i + 1)? {
                        tracing::info!(secret = %start.job.arn, version_id = %start.token, "rotation cancelled while running");
                        return Ok(());
                    }
                }
                Err(e) => {
                    return fail(services, key, &start, step, &error_type(&e));
                }
            }
        }
        finish(services, key, &start)
    })();
    if let Err(e) = result {
        // The job stays; the next round runs it again.
        tracing::warn!(job = key, error = %e, "rotation job could not be run; will retry");
    }
}

/// What a function failure is called in the log: Lambda's `errorType`, or the kind of
/// failure. Never the message, which is the function's own text.
fn error_type(e: &FunctionError) -> String {
    match e {
        FunctionError::NotFound(_) => "ResourceNotFoundException".into(),
        FunctionError::AccessDenied(_) => "AccessDeniedException".into(),
        FunctionError::Failed { error_type, .. } => error_type.clone(),
        FunctionError::Unavailable(_) => "ServiceUnavailable".into(),
    }
}

struct Started {
    job: RotationJob,
    token: String,
    lambda: String,
}

/// Reads the job and its secret; drops jobs that no longer apply; makes a scheduled job pick
/// its version.
fn start(
    services: &Services,
    key: &str,
    now: OffsetDateTime,
) -> Result<Option<Started>, SecretsManagerError> {
    let mut txn = services.store().begin_write().or_internal()?;
    let Some(mut job) = record::get::<RotationJob>(&*txn, key).or_internal()? else {
        return Ok(None);
    };
    let leased = lease::required(services);
    if leased && job.lease.as_ref().is_some_and(|l| l.held_by_other(now)) {
        // Another node runs this rotation.
        return Ok(None);
    }
    let secret_key = keys::secret(&job.account, &job.region, &job.name);
    let rec: Option<SecretRecord> = record::get(&*txn, &secret_key).or_internal()?;
    let live = rec.filter(|r| {
        r.arn == job.arn && !r.is_scheduled_for_deletion() && r.rotation_job.as_deref() == Some(key)
    });
    let Some(mut rec) = live else {
        txn.delete(key).or_internal()?;
        txn.commit().or_internal()?;
        tracing::info!(secret = %job.arn, "rotation job dropped: the secret is gone or has another job");
        return Ok(None);
    };
    let lambda = match (&rec.rotation_lambda_arn, rec.rotation_enabled) {
        (Some(l), Some(true)) => l.clone(),
        _ => {
            replace_job(&mut *txn, &mut rec, None)?;
            save(&mut *txn, &rec)?;
            txn.commit().or_internal()?;
            return Ok(None);
        }
    };
    let mut changed = false;
    let token = match (&job.kind, &job.token) {
        (RotationKind::Scheduled, _) | (_, None) => {
            let token = match incomplete_pending(&rec) {
                Some(p) => p,
                None => {
                    let t = tresor_crypto::ids::uuid_v4();
                    add_placeholder(&mut rec, &t, now);
                    changed = true;
                    t
                }
            };
            job.kind = RotationKind::Rotate;
            job.token = Some(token.clone());
            job.next_step = 0;
            record::put(&mut *txn, key, &job).or_internal()?;
            token
        }
        (_, Some(t)) => {
            if !rec.versions.contains_key(t) && incomplete_pending(&rec).is_none() {
                // The placeholder was removed by hand: put it back for the re-attempt.
                add_placeholder(&mut rec, t, now);
                changed = true;
            }
            t.clone()
        }
    };
    if leased {
        if job.lease.as_ref().is_some_and(|l| !l.mine()) {
            tracing::info!(secret = %job.arn, step = job.next_step, "taking over a rotation whose node's lease expired");
        }
        job.lease = Some(Lease::new(now));
        record::put(&mut *txn, key, &job).or_internal()?;
    }
    if changed {
        rec.last_changed = now;
        save(&mut *txn, &rec)?;
    }
    if job.next_step == 0 {
        crate::jobs::audit_event(services, &mut *txn, &rec, "RotationStarted", &token, now)?;
    }
    txn.commit().or_internal()?;
    Ok(Some(Started { job, token, lambda }))
}

/// Records that the steps before `next` are done; `false` when the job is gone (rotation
/// cancelled or the secret deleted).
fn record_step(services: &Services, key: &str, next: usize) -> Result<bool, SecretsManagerError> {
    let mut txn = services.store().begin_write().or_internal()?;
    let Some(mut job) = record::get::<RotationJob>(&*txn, key).or_internal()? else {
        return Ok(false);
    };
    if lease::required(services) {
        if job.lease.as_ref().is_some_and(|l| !l.mine()) {
            // Our lease expired and another node took the rotation over.
            return Ok(false);
        }
        job.lease = Some(Lease::new(OffsetDateTime::now_utc()));
    }
    job.next_step = next;
    record::put(&mut *txn, key, &job).or_internal()?;
    txn.commit().or_internal()?;
    Ok(true)
}

/// Loads the job's secret for a closing transaction, if the job still applies.
fn load_for(
    txn: &dyn tresor_store::ReadTxn,
    key: &str,
    job: &RotationJob,
) -> Result<Option<SecretRecord>, SecretsManagerError> {
    match record::get::<RotationJob>(txn, key).or_internal()? {
        None => return Ok(None),
        // Another node took the rotation over (our lease had expired): it finishes it.
        Some(current) if current.lease.as_ref().is_some_and(|l| !l.mine()) => return Ok(None),
        Some(_) => {}
    }
    let rec: Option<SecretRecord> =
        record::get(txn, &keys::secret(&job.account, &job.region, &job.name)).or_internal()?;
    Ok(rec.filter(|r| r.arn == job.arn && r.rotation_job.as_deref() == Some(key)))
}

fn finish(services: &Services, key: &str, start: &Started) -> Result<(), SecretsManagerError> {
    let now = OffsetDateTime::now_utc();
    let mut txn = services.store().begin_write().or_internal()?;
    let Some(mut rec) = load_for(&*txn, key, &start.job)? else {
        return Ok(());
    };
    match start.job.kind {
        RotationKind::TestOnly => {
            // "This test creates an AWSPENDING version of the secret and then removes it"
            // (API reference, RotateSecret, RotateImmediately).
            if rec.holder_of(AWSPENDING) == Some(start.token.as_str()) {
                rec.detach_label(AWSPENDING, &start.token);
            }
            tracing::info!(secret = %rec.arn, version_id = %start.token, "rotation test (testSecret) succeeded");
            let base = rec.last_rotated.unwrap_or(now);
            schedule_next(&mut *txn, &mut rec, base)?;
        }
        _ => {
            if rec.holder_of(AWSCURRENT) != Some(start.token.as_str()) {
                drop(txn);
                return fail(services, key, start, "finishSecret", "AWSCURRENTNotMoved");
            }
            rec.last_rotated = Some(now);
            schedule_next(&mut *txn, &mut rec, now)?;
            tracing::info!(secret = %rec.arn, version_id = %start.token, next_rotation = ?rec.next_rotation, "rotation succeeded");
        }
    }
    rec.last_changed = now;
    save(&mut *txn, &rec)?;
    let outcome = match start.job.kind {
        RotationKind::TestOnly => "TestRotationSucceeded",
        _ => "RotationSucceeded",
    };
    crate::jobs::audit_event(services, &mut *txn, &rec, outcome, &start.token, now)?;
    txn.commit().or_internal()
}

/// The delay before retry `attempt` (1-based): 1, 2, 4, 8, 16 minutes, shortened with the
/// schedule's test knob.
pub fn backoff(attempt: u32) -> Duration {
    let minutes = 1i64 << attempt.saturating_sub(1).min(10);
    let secs = minutes * 60 * schedule::hour_seconds() / 3600;
    Duration::seconds(secs.max(1))
}

fn fail(
    services: &Services,
    key: &str,
    start: &Started,
    step: &str,
    error_type: &str,
) -> Result<(), SecretsManagerError> {
    let now = OffsetDateTime::now_utc();
    let mut txn = services.store().begin_write().or_internal()?;
    let Some(mut rec) = load_for(&*txn, key, &start.job)? else {
        return Ok(());
    };
    let mut job = start.job.clone();
    job.attempts = job.attempts.saturating_add(1);
    job.next_step = 0;
    job.lease = None;
    // A configuration test (RotateImmediately=false) is not retried.
    if job.kind != RotationKind::TestOnly && job.attempts <= MAX_RETRIES {
        let due = now + backoff(job.attempts);
        tracing::warn!(
            secret = %rec.arn, version_id = %start.token, step, error_type,
            attempt = job.attempts, retry_at = %due,
            "rotation failed; AWSPENDING stays and the rotation will be retried"
        );
        replace_job(&mut *txn, &mut rec, Some((due, job)))?;
    } else {
        if job.kind == RotationKind::TestOnly {
            tracing::warn!(
                secret = %rec.arn, version_id = %start.token, step, error_type,
                "rotation test (RotateImmediately=false) failed; the placeholder is removed"
            );
        } else {
            tracing::warn!(
                secret = %rec.arn, version_id = %start.token, step, error_type,
                attempts = job.attempts,
                "rotation failed again; the next scheduled rotation re-attempts it"
            );
        }
        if job.kind == RotationKind::TestOnly
            && rec.holder_of(AWSPENDING) == Some(start.token.as_str())
        {
            rec.detach_label(AWSPENDING, &start.token);
        }
        let base = rec.last_rotated.unwrap_or(now);
        // Without a schedule, only a new RotateSecret re-attempts it.
        schedule_next(&mut *txn, &mut rec, base.max(now))?;
    }
    save(&mut *txn, &rec)?;
    let outcome = match start.job.kind {
        RotationKind::TestOnly => "TestRotationFailed",
        _ => "RotationFailed",
    };
    crate::jobs::audit_event(services, &mut *txn, &rec, outcome, &start.token, now)?;
    txn.commit().or_internal()
}
