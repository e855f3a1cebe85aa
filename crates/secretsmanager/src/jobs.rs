//! The purge of secrets whose recovery window has ended.
//!
//! DeleteSecret writes a [`PurgeJob`] under `sys/jobs/secretsmanager/purge/<due>/…` in the
//! same transaction that schedules the deletion, RestoreSecret and a forced delete remove it.
//! [`run_due_jobs`] — called by the server's worker loop — purges each due secret in its own
//! transaction. It is idempotent: a job whose secret was restored, re-created (other ARN) or
//! already purged is simply dropped. A job that fails is kept and retried with backoff.

use time::{Duration, OffsetDateTime};
use tresor_core::error::ServiceError;
use tresor_core::{Services, record};

use crate::model::{PurgeJob, SecretRecord, keys};

/// Jobs handled per call, so one call never holds the store for long.
const BATCH: usize = 100;

/// Purges every secret whose deletion is due at `now`; returns how many jobs completed.
pub fn run_due_jobs(services: &Services, now: OffsetDateTime) -> Result<usize, ServiceError> {
    let due: Vec<(String, PurgeJob)> = {
        let txn = services.store().begin_read()?;
        record::scan::<PurgeJob>(&*txn, keys::JOBS_PREFIX, None, BATCH)?
            .into_iter()
            .take_while(|(key, _)| due_time(key).is_some_and(|t| t <= now.unix_timestamp()))
            .filter(|(_, job)| job.retry_after.is_none_or(|t| t <= now))
            .collect()
    };
    let mut done = 0;
    for (key, job) in due {
        match run_one(services, &key, now) {
            Ok(()) => done += 1,
            Err(e) => {
                tracing::warn!(error = %e, secret = %job.arn, "purging a deleted secret failed; will retry");
                let _ = note_failure(services, &key, now);
            }
        }
    }
    Ok(done)
}

fn due_time(key: &str) -> Option<i64> {
    key.strip_prefix(keys::JOBS_PREFIX)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

fn run_one(services: &Services, key: &str, now: OffsetDateTime) -> Result<(), ServiceError> {
    let mut txn = services.store().begin_write()?;
    // Re-read inside the transaction: another worker may have done it already.
    let Some(job) = record::get::<PurgeJob>(&*txn, key)? else {
        return Ok(());
    };
    let secret_key = keys::secret(&job.account, &job.region, &job.name);
    let rec: Option<SecretRecord> = record::get(&*txn, &secret_key)?;
    match rec {
        Some(rec) if rec.arn == job.arn && rec.deletion_due.is_some_and(|d| d <= now) => {
            crate::access::purge(&mut *txn, &rec).map_err(ServiceError::from)?;
            audit_event(services, &mut *txn, &rec, "EndSecretVersionDelete", "", now)
                .map_err(ServiceError::from)?;
            tracing::info!(secret = %rec.arn, "purged a secret after its recovery window");
        }
        _ => {}
    }
    txn.delete(key)?;
    txn.commit()?;
    Ok(())
}

/// Records a service event about `rec` (AWS Secrets Manager User Guide, "AWS CloudTrail
/// entries for Secrets Manager": rotation and deletion entries) in `txn`.
pub(crate) fn audit_event(
    services: &Services,
    txn: &mut dyn tresor_store::WriteTxn,
    rec: &SecretRecord,
    event_name: &str,
    version_id: &str,
    now: OffsetDateTime,
) -> Result<(), crate::errors::SecretsManagerError> {
    let additional =
        (!version_id.is_empty()).then(|| serde_json::json!({ "versionId": version_id }));
    audit_event_with(services, txn, rec, event_name, additional, now)
}

/// [`audit_event`] with the event's `additionalEventData` given.
pub(crate) fn audit_event_with(
    services: &Services,
    txn: &mut dyn tresor_store::WriteTxn,
    rec: &SecretRecord,
    event_name: &str,
    additional_event_data: Option<serde_json::Value>,
    now: OffsetDateTime,
) -> Result<(), crate::errors::SecretsManagerError> {
    let event = tresor_core::audit::ServiceEvent {
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: event_name.into(),
        account: rec.account.clone(),
        region: rec.region.clone(),
        time: now,
        resources: vec![tresor_core::audit::AuditResource {
            resource_type: "AWS::SecretsManager::Secret".into(),
            arn: rec.arn.clone(),
        }],
        additional_event_data,
    };
    tresor_core::audit::record_service_event(services, txn, &event).map_err(crate::errors::internal)
}

fn note_failure(services: &Services, key: &str, now: OffsetDateTime) -> Result<(), ServiceError> {
    let mut txn = services.store().begin_write()?;
    let Some(mut job) = record::get::<PurgeJob>(&*txn, key)? else {
        return Ok(());
    };
    job.attempts = job.attempts.saturating_add(1);
    // Exponential backoff, 1 minute doubling up to a day.
    let minutes = 1i64 << job.attempts.min(10);
    job.retry_after = Some(now + Duration::minutes(minutes.min(24 * 60)));
    record::put(&mut *txn, key, &job)?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a failed test

    use std::sync::Arc;

    use tresor_core::{Caller, RequestCtx};
    use tresor_crypto::RootKey;
    use tresor_store::MemoryStore;

    use super::*;

    fn services() -> Services {
        let root = RootKey::from_bytes(&[7u8; 32]).expect("root key");
        Services::new(
            Arc::new(MemoryStore::new()),
            Arc::new(root),
            Arc::new(tresor_iam::IamDirectory),
        )
    }

    fn ctx(now: OffsetDateTime) -> RequestCtx {
        RequestCtx {
            request_id: "test".into(),
            region: "eu-west-1".into(),
            now,
            source_ip: None,
            secure_transport: true,
            caller: std::sync::Arc::new(Caller::root("111122223333", "AKIAEXAMPLE")),
            deferred: Default::default(),
            audit: Default::default(),
        }
    }

    fn call<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> T {
        serde_json::from_value(body).expect("input")
    }

    fn exists(services: &Services, name: &str) -> bool {
        let txn = services.store().begin_read().expect("read");
        txn.get(&keys::secret("111122223333", "eu-west-1", name))
            .expect("get")
            .is_some()
    }

    fn value_keys(services: &Services) -> usize {
        let txn = services.store().begin_read().expect("read");
        txn.scan(
            "acct/111122223333/region/eu-west-1/secretsmanager/value/",
            None,
            100,
        )
        .expect("scan")
        .len()
    }

    #[test]
    fn due_secrets_are_purged_once_and_restored_ones_are_kept() {
        let s = services();
        let t0 = OffsetDateTime::now_utc();
        for name in ["gone", "kept"] {
            crate::secrets::create_secret(
                &s,
                &ctx(t0),
                call(serde_json::json!({"Name": name, "SecretString": "v"})),
            )
            .expect("create");
            crate::deletion::delete_secret(
                &s,
                &ctx(t0),
                call(serde_json::json!({"SecretId": name, "RecoveryWindowInDays": 7})),
            )
            .expect("delete");
        }
        assert_eq!(value_keys(&s), 2);
        crate::deletion::restore_secret(
            &s,
            &ctx(t0),
            call(serde_json::json!({"SecretId": "kept"})),
        )
        .expect("restore");

        // Not yet due.
        assert_eq!(run_due_jobs(&s, t0 + Duration::days(6)).expect("run"), 0);
        assert!(exists(&s, "gone"));
        // Due: purged with its values; the restored secret stays; running again does nothing.
        assert_eq!(
            run_due_jobs(&s, t0 + Duration::days(7) + Duration::seconds(1)).expect("run"),
            1
        );
        assert!(!exists(&s, "gone"));
        assert!(exists(&s, "kept"));
        assert_eq!(value_keys(&s), 1);
        assert_eq!(run_due_jobs(&s, t0 + Duration::days(30)).expect("run"), 0);
        let txn = s.store().begin_read().expect("read");
        assert!(
            txn.scan(keys::JOBS_PREFIX, None, 10)
                .expect("scan")
                .is_empty()
        );
    }

    #[test]
    fn a_job_for_a_recreated_secret_leaves_the_new_one_alone() {
        let s = services();
        let t0 = OffsetDateTime::now_utc();
        let create = |name: &str| {
            crate::secrets::create_secret(
                &s,
                &ctx(t0),
                call(serde_json::json!({"Name": name, "SecretString": "v"})),
            )
            .expect("create")
        };
        create("n");
        crate::deletion::delete_secret(
            &s,
            &ctx(t0),
            call(serde_json::json!({"SecretId": "n", "RecoveryWindowInDays": 7})),
        )
        .expect("delete");
        // A job left behind (as if a crash happened between purge and job removal) must not
        // purge a secret re-created under the same name.
        let stale = {
            let txn = s.store().begin_read().expect("read");
            txn.scan(keys::JOBS_PREFIX, None, 10).expect("scan")
        };
        crate::deletion::delete_secret(
            &s,
            &ctx(t0),
            call(serde_json::json!({"SecretId": "n", "ForceDeleteWithoutRecovery": true})),
        )
        .expect("force");
        create("n");
        {
            let mut txn = s.store().begin_write().expect("write");
            for (k, v) in &stale {
                txn.put(k, v).expect("put");
            }
            txn.commit().expect("commit");
        }
        assert_eq!(run_due_jobs(&s, t0 + Duration::days(8)).expect("run"), 1);
        assert!(exists(&s, "n"));
    }
}
