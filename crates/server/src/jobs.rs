//! The background worker: runs each service's due durable jobs (KMS key deletion, secret
//! purges after the recovery window, …) on an interval. The jobs themselves are records in the
//! store written in the same transaction as the change that caused them (an outbox); the
//! runners are idempotent, so a crash between a job's work and its removal only repeats it.
//!
//! Secrets Manager rotations run apart from that loop, on the rotation worker
//! ([`spawn_rotation_worker`]): invoking a rotation function takes seconds, and the function
//! calls back into tresor, so rotations get their own threads (a bounded number at once) and
//! never delay purges or KMS deletions. The worker sleeps until the next rotation job is due,
//! or until a write that queued one due now wakes it (`Services::job_wakeup`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tresor_core::Services;

/// One service's job runner: does the work that is due at `now`, returns how many jobs ran.
pub type JobRunner = fn(&Services, OffsetDateTime) -> Result<usize, String>;

/// How often due jobs are looked for.
pub const JOB_INTERVAL: Duration = Duration::from_secs(30);

/// The runners of every service that has durable jobs.
pub fn runners() -> Vec<(&'static str, JobRunner)> {
    vec![
        ("kms", |services, now| {
            tresor_kms::run_due_jobs(services, now).map_err(|e| e.to_string())
        }),
        ("secretsmanager", |services, now| {
            tresor_secretsmanager::run_due_jobs(services, now).map_err(|e| e.to_string())
        }),
        ("ssm", tresor_ssm::run_due_jobs),
    ]
}

/// Runs every runner once (on a blocking thread: jobs write to the store).
pub async fn run_once(services: &Arc<Services>, runners: &[(&'static str, JobRunner)]) {
    for (name, runner) in runners {
        let services = services.clone();
        let runner = *runner;
        let result =
            tokio::task::spawn_blocking(move || runner(&services, OffsetDateTime::now_utc())).await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(service = name, jobs = n, "background jobs done"),
            // Left in the store: the next round retries it.
            Ok(Err(e)) => {
                tracing::warn!(service = name, error = %e, "background job failed; will retry")
            }
            Err(e) => tracing::error!(service = name, error = %e, "background job runner panicked"),
        }
    }
}

/// Runs the jobs every `interval` until `stop` fires.
pub async fn worker(services: Arc<Services>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let runners = runners();
    if runners.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => run_once(&services, &runners).await,
        }
    }
}

/// The longest the rotation worker sleeps before it looks at the rotation jobs again.
pub const ROTATION_POLL: Duration = Duration::from_secs(30);

/// The same on a store shared by several nodes.
pub const SHARED_ROTATION_POLL: Duration = Duration::from_secs(2);

/// A running rotation worker; [`RotationWorker::stop`] ends its loop. Rotations in flight are
/// not waited for: a rotation cut short by a shutdown resumes after the restart (its job
/// records the steps already done).
pub struct RotationWorker {
    stop: Arc<AtomicBool>,
    services: Arc<Services>,
}

impl RotationWorker {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.services.job_wakeup().wake();
    }
}

/// Starts the rotation worker thread, running at most `concurrency` rotations at once.
pub fn spawn_rotation_worker(
    services: Arc<Services>,
    concurrency: usize,
) -> std::io::Result<RotationWorker> {
    use tresor_secretsmanager::rotation_run;
    let stop = Arc::new(AtomicBool::new(false));
    let runner = Arc::new(rotation_run::Runner::new(concurrency));
    let (thread_stop, thread_services) = (stop.clone(), services.clone());
    std::thread::Builder::new()
        .name("rotation-worker".into())
        .spawn(move || {
            let services = thread_services;
            while !thread_stop.load(Ordering::SeqCst) {
                let now = OffsetDateTime::now_utc();
                let wait = match rotation_run::dispatch(&services, &runner, now) {
                    Ok(Some(due)) => {
                        let ms = (due - now).whole_milliseconds().clamp(10, 30_000);
                        Duration::from_millis(u64::try_from(ms).unwrap_or(30_000))
                    }
                    Ok(None) => ROTATION_POLL,
                    Err(e) => {
                        tracing::warn!(error = %e, "looking for due rotations failed; will retry");
                        ROTATION_POLL
                    }
                };
                // With other nodes on the store, their writes do not wake this worker: look
                // at least every SHARED_ROTATION_POLL (a rotation queued on another node, or
                // one whose node died and whose lease expired, is picked up within that).
                let poll = if tresor_core::lease::required(&services) {
                    SHARED_ROTATION_POLL
                } else {
                    ROTATION_POLL
                };
                services.job_wakeup().wait(wait.min(poll));
            }
        })?;
    Ok(RotationWorker { stop, services })
}

/// How often the replication worker looks for replication jobs when nothing woke it (API
/// writes wake it after their commit; this bounds the wait of the others, e.g. a rotation
/// step's bookkeeping).
pub const REPLICATION_POLL: Duration = Duration::from_millis(100);

/// A running replication worker (Secrets Manager replicas, see
/// `tresor_secretsmanager::replication_sync`); [`ReplicationWorker::stop`] ends its loop.
pub struct ReplicationWorker {
    stop: Arc<AtomicBool>,
}

impl ReplicationWorker {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        tresor_secretsmanager::replication_outbox::signal().wake();
    }
}

/// Starts the replication worker thread. Jobs survive restarts in the store; a failing
/// replica waits for its job's backoff.
pub fn spawn_replication_worker(services: Arc<Services>) -> std::io::Result<ReplicationWorker> {
    use tresor_secretsmanager::{replication_outbox, replication_sync};
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    std::thread::Builder::new()
        .name("replication-worker".into())
        .spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                match replication_sync::run_due(&services, OffsetDateTime::now_utc()) {
                    // More may have been queued meanwhile: look again at once.
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    // A round cut short by the shutdown closing the store is not a failure.
                    Err(_) if thread_stop.load(Ordering::SeqCst) => break,
                    Err(e) => tracing::warn!(error = %e, "replication round failed; will retry"),
                }
                replication_outbox::signal().wait(REPLICATION_POLL);
            }
        })?;
    Ok(ReplicationWorker { stop })
}
