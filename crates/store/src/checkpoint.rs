//! WAL checkpoints off the commit path.
//!
//! SQLite's default is an automatic checkpoint inside the `COMMIT` that takes the write-ahead
//! log past 1,000 pages: the committing thread — here the one that commits a whole group of
//! writers, who all wait for it — copies the log into the database file and fsyncs it. That
//! copy was about 5–7 % of a write's CPU in a profile of 16 concurrent writers, and a latency
//! spike for every member of the group that paid for it.
//!
//! [`Checkpointer`] replaces it: the writer connection's WAL hook (which replaces the
//! automatic checkpoint) only wakes a thread of its own, which runs a `PASSIVE` checkpoint on
//! a connection of its own while writers go on appending to the log. A passive checkpoint
//! that races with writers may leave the newest frames un-copied, and SQLite only starts the
//! log over once every frame is copied; so that the log cannot grow without bound under a
//! write load that never pauses, a log past [`INLINE_PAGES`] is checkpointed inside the
//! commit again, as SQLite would (the writer holds the connection then, so that checkpoint can
//! copy every frame).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// The log size (pages) at which the background thread is woken: SQLite's own default
/// automatic-checkpoint threshold.
pub(crate) const WAKE_PAGES: i32 = 1000;
/// The log size (pages) past which the committing thread checkpoints itself.
pub(crate) const INLINE_PAGES: i32 = 4 * WAKE_PAGES;
/// Once woken, the thread is woken again only after the log has grown by this many pages.
/// A passive checkpoint sorts the page numbers of the whole log, not only of the frames new
/// since the last one, and under readers that never pause the log is not started over: woken
/// after every commit past [`WAKE_PAGES`], the thread sorted a log of thousands of frames to
/// copy a few pages each time (measured: 16 writers of PutParameter under callgrind, 208
/// checkpoints for 677 writes, ~700,000 instructions each, a fifth of a write's cost).
pub(crate) const WAKE_STEP_PAGES: i32 = 256;

#[derive(Default)]
struct State {
    pending: bool,
    stopped: bool,
}

/// What the WAL hook and the thread share.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<State>,
    /// The log's size when the thread was last woken (0: not since the log was small).
    woken_at: std::sync::atomic::AtomicI32,
    wake: Condvar,
    /// Checkpoints run by the thread (for tests and diagnostics).
    pub(crate) runs: AtomicU64,
    /// Checkpoints the thread could not run (retried at the next wake-up).
    pub(crate) failures: AtomicU64,
}

impl Signal {
    /// Called from the WAL hook after each commit with the log's size in pages. Never blocks
    /// on the checkpoint itself.
    pub(crate) fn committed(&self, pages: i32) {
        if pages < WAKE_PAGES {
            self.woken_at.store(0, Ordering::Relaxed);
            return;
        }
        let last = self.woken_at.load(Ordering::Relaxed);
        // Woken for this log already, and it has not grown enough since (or it started over
        // and grew past the threshold again: `pages < last`).
        if last != 0 && pages >= last && pages - last < WAKE_STEP_PAGES {
            return;
        }
        self.woken_at.store(pages, Ordering::Relaxed);
        {
            let mut state = self.state.lock();
            if !state.pending {
                state.pending = true;
                self.wake.notify_one();
            }
        }
    }
}

/// The background checkpoint thread of one database.
pub(crate) struct Checkpointer {
    signal: Arc<Signal>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Opens a connection of its own to `path` (a database in WAL mode) and starts the thread.
    pub(crate) fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::sqlite("opening the checkpoint connection"))?;
        // A checkpoint fsyncs the database file (as the automatic one did) before the log may
        // be started over.
        conn.execute_batch("PRAGMA synchronous = FULL")
            .map_err(StoreError::sqlite("setting synchronous=FULL"))?;
        let signal = Arc::new(Signal::default());
        let shared = signal.clone();
        let thread = std::thread::Builder::new()
            .name("tresor-checkpoint".into())
            .spawn(move || run(&conn, &shared))
            .map_err(|source| StoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Checkpointer {
            signal,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn signal(&self) -> Arc<Signal> {
        self.signal.clone()
    }

    /// Stops the thread after the checkpoint it may be running; idempotent.
    pub(crate) fn stop(&self) {
        {
            let mut state = self.signal.state.lock();
            state.stopped = true;
            self.signal.wake.notify_one();
        }
        if let Some(thread) = self.thread.lock().take() {
            // The thread only runs SQLite calls; a panic there is not ours to propagate.
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(conn: &Connection, signal: &Signal) {
    loop {
        {
            let mut state = signal.state.lock();
            while !state.pending && !state.stopped {
                signal.wake.wait(&mut state);
            }
            if state.stopped {
                return;
            }
            state.pending = false;
        }
        // PASSIVE: copies what it can without waiting for readers or the writer.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => signal.runs.fetch_add(1, Ordering::Relaxed),
            Err(_) => signal.failures.fetch_add(1, Ordering::Relaxed),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(signal: &Signal) -> bool {
        std::mem::take(&mut signal.state.lock().pending)
    }

    #[test]
    fn the_thread_is_woken_past_the_threshold_then_once_per_step_of_growth() {
        let signal = Signal::default();
        signal.committed(WAKE_PAGES - 1);
        assert!(!take(&signal), "a small log needs no checkpoint");
        signal.committed(WAKE_PAGES);
        assert!(take(&signal));
        for pages in WAKE_PAGES + 1..WAKE_PAGES + WAKE_STEP_PAGES {
            signal.committed(pages);
        }
        assert!(
            !take(&signal),
            "not per commit while the log grows by less than a step"
        );
        signal.committed(WAKE_PAGES + WAKE_STEP_PAGES);
        assert!(take(&signal));
        // The log started over and grew past the threshold again: woken at once.
        signal.committed(10);
        signal.committed(WAKE_PAGES + 5);
        assert!(take(&signal));
        // … as when it started over between two commits without a small one seen.
        signal.committed(WAKE_PAGES + WAKE_STEP_PAGES + 9);
        assert!(take(&signal));
        signal.committed(WAKE_PAGES + 2);
        assert!(take(&signal));
    }
}
