//! The background worker: runs each service's due durable jobs (KMS key deletion, secret
//! purges after the recovery window, …) on an interval. The jobs themselves are records in the
//! store written in the same transaction as the change that caused them (an outbox); the
//! runners are idempotent, so a crash between a job's work and its removal only repeats it.

use std::sync::Arc;
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
