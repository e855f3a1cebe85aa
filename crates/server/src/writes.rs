//! Where write operations run: threads of their own, at a lower CPU priority than the request
//! workers.
//!
//! A read runs inline on a request worker; a write (a store transaction with a durable
//! commit) runs off the workers so that no read waits for it. Writes used to run on the
//! runtime's shared blocking pool, at the workers' priority: under a sustained write load
//! (16 clients writing in a loop) the writer threads took an equal share of the cores from the
//! workers, and read throughput fell to about half of its read-only figure. Here they run on
//! the blocking pool of a runtime of their own whose threads lower their own priority
//! (Linux: nice [`WRITER_NICE`], see setpriority(2); a thread's nice value is its own under
//! NPTL). The kernel still gives them the cores whenever reads leave any idle, and a share
//! of about a tenth of a core when reads keep every core busy (the weight of nice 10 against
//! nice 0), so writes keep making progress; what they lose is the equal share.
//!
//! The writer threads take SQLite's single write lock one at a time; a read never takes it
//! (WAL readers see their snapshot), so the lower priority cannot make a read wait behind a
//! preempted writer. Writes that a read asks for on the side (`RequestCtx::deferred`) stay on
//! the workers' blocking pool: the read's answer waits for them. So does Lambda `Invoke`
//! (`Access::Run`): a function's process inherits the priority of the thread that starts it.

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

/// The writer threads' nice value by default (0 is the workers'; 19 the lowest priority);
/// `writer_nice` in the configuration.
pub const WRITER_NICE: i32 = 10;

/// The runtime whose blocking pool runs write operations. Its scheduler is never driven: only
/// `spawn_blocking` is used, and the handle it returns is awaited from the request's task.
pub struct WritePool {
    runtime: Option<Runtime>,
}

impl WritePool {
    /// Writer threads at nice value `nice` (or the process's, if that is lower in priority).
    pub fn new(nice: i32) -> std::io::Result<WritePool> {
        let runtime = Builder::new_current_thread()
            .thread_name("tresor-writer")
            .on_thread_start(move || lower_priority(nice))
            .build()?;
        Ok(WritePool {
            runtime: Some(runtime),
        })
    }

    /// Runs `f` on a writer thread.
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match &self.runtime {
            Some(rt) => rt.spawn_blocking(f),
            // Only after drop began; never reached while the pool is shared.
            None => tokio::task::spawn_blocking(f),
        }
    }
}

impl Drop for WritePool {
    fn drop(&mut self) {
        // Dropping a runtime blocks; the state may be dropped inside an async context.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    let tid = rustix::thread::gettid();
    // Only ever lower: a process started at a lower priority keeps it.
    if rustix::process::getpriority_process(Some(tid)).is_ok_and(|own| own >= nice) {
        return;
    }
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::debug!(error = %e, "a writer thread could not lower its priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

/// The calling thread's nice value (Linux), for tests.
#[cfg(all(test, target_os = "linux"))]
fn own_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_runs_on_a_thread_of_lower_priority_than_the_caller() {
        let pool = WritePool::new(WRITER_NICE).unwrap();
        let caller = own_nice();
        let (name, nice) = pool
            .spawn(|| {
                (
                    std::thread::current().name().map(str::to_string),
                    own_nice(),
                )
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("tresor-writer"));
        assert_eq!(nice, caller.max(WRITER_NICE));
        assert!(nice > caller || caller >= WRITER_NICE);
        // Dropped inside the async test: must not panic or block.
        drop(pool);
        // Nice 0: the caller's priority (never raised above it).
        let same = WritePool::new(0).unwrap();
        assert_eq!(same.spawn(own_nice).await.unwrap(), caller.max(0));
    }
}
