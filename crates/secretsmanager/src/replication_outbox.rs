//! The outbox of replication: the hook every saved change of a primary with replicas goes
//! through ([`enqueue`], called by [`crate::access::save`]), and the wake-up of the
//! replication worker. Kept apart from the operations in [`crate::replication`] so that the
//! store helpers every operation uses depend on nothing above them.

use time::OffsetDateTime;
use tresor_core::record;
use tresor_core::registry::JobWakeup;
use tresor_store::WriteTxn;

use crate::errors::{OrInternal, SecretsManagerError};
use crate::model::{ReplicationJob, SecretRecord, keys};

/// The replication worker's wake-up. One per process: a spurious wake-up only costs the
/// worker a look at its jobs.
pub fn signal() -> &'static JobWakeup {
    static SIGNAL: std::sync::OnceLock<JobWakeup> = std::sync::OnceLock::new();
    SIGNAL.get_or_init(JobWakeup::default)
}

/// Wakes the replication worker after a commit that queued replication jobs.
pub(crate) fn wake() {
    signal().wake();
}

/// After the commit of a change saved through [`crate::access::save`]: wakes the worker if
/// that change queued replication jobs.
pub(crate) fn committed(rec: &SecretRecord) {
    if rec.primary_region.is_none() && !rec.replication_status.is_empty() {
        wake();
    }
}

/// The outbox hook: called by [`crate::access::save`] for every saved change of a primary
/// with replicas. Raises the secret's replication sequence number and makes sure each
/// replica region has a job that carries it, in the caller's transaction.
pub(crate) fn enqueue(
    txn: &mut dyn WriteTxn,
    rec: &mut SecretRecord,
) -> Result<(), SecretsManagerError> {
    rec.repl_seq = rec.repl_seq.saturating_add(1);
    let now = OffsetDateTime::now_utc();
    for st in &rec.replication_status {
        let key = keys::replication_job(&rec.account, &rec.region, &st.region, &rec.name);
        let job = match record::get::<ReplicationJob>(&*txn, &key).or_internal()? {
            Some(mut job) if job.arn == rec.arn => {
                job.seq = job.seq.max(rec.repl_seq);
                job.remove = false;
                job
            }
            _ => ReplicationJob::new(rec, &st.region, false, now),
        };
        record::put(txn, &key, &job).or_internal()?;
    }
    Ok(())
}
