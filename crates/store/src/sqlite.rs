//! [`SqliteStore`]: the embedded backend, one SQLite file in WAL mode with
//! `synchronous=FULL`.
//!
//! It owns the on-disk schema and the connections to it: one writer connection, lent to one
//! write transaction at a time (`BEGIN IMMEDIATE`), and a small pool of read-only connections
//! that are reused, never opened per request. It must not interpret keys or values.
//!
//! Schema (version 1):
//!
//! ```sql
//! CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID; -- 'schema_version' = '1'
//! CREATE TABLE kv   (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
//! ```
//!
//! `kv` is clustered on `k` with SQLite's BINARY collation (memcmp), so its order is the
//! bytewise key order of the [`crate::Store`] contract, and a prefix scan is one index range
//! `k >= prefix AND k < successor(prefix)`. A database created with
//! [`SqliteOptions::large_values`] has `kv` as a rowid table instead (`CREATE TABLE kv (k TEXT
//! PRIMARY KEY, v BLOB NOT NULL)`: the values in the table's B-tree, the keys in the primary
//! key's index, in the same order); the statements are the same for both layouts.
//!
//! Group commit: with `synchronous=FULL` every COMMIT costs an fsync, so concurrent write
//! transactions share one. The services still see one transaction per request; underneath,
//! while one SQLite transaction (`BEGIN IMMEDIATE`) is open, each logical write transaction
//! runs inside it as a `SAVEPOINT`:
//! - a logical rollback is `ROLLBACK TO` that savepoint, which undoes exactly that transaction's
//!   changes and none of the earlier ones in the group;
//! - a logical commit is `RELEASE` of the savepoint. If other writers are waiting for the
//!   connection (and the group is below [`SqliteOptions::group_commit_max`] transactions and
//!   younger than [`SqliteOptions::group_commit_window`]), the connection goes to the next of
//!   them and `commit()` waits; otherwise the committing thread issues the group's single
//!   `COMMIT` (one fsync) itself. Either way `commit()` returns only after the `COMMIT` that
//!   contains its changes has returned, and if that `COMMIT` fails, every member of the group
//!   gets the error — an acknowledged write is as durable as without grouping;
//! - a transaction that saw changes of earlier members which are not durable yet (a read of
//!   them, even if it then rolls back) also waits for the group's `COMMIT` before it returns,
//!   so that no answer depends on data that could still be lost;
//! - readers use other connections and WAL snapshots, so they only ever see physically
//!   committed groups, never a part of one.
//!
//! The store numbers physical commits seqlock-style for [`ReadTxn::snapshot_generation`]: the
//! count is odd while a `COMMIT` runs, and a read snapshot taken while it was even and
//! unchanged is tagged with it. Only the thread holding the writer connection commits, so the
//! two bumps of one `COMMIT` are never interleaved with another's.

use std::cell::{Cell, OnceCell};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::checkpoint::{self, Checkpointer};
use crate::memory::duration_ms;
use crate::range::{LowerBound, lower_bound, prefix_successor};
use crate::{ReadTxn, Store, StoreError, WriteTxn};

/// The schema version this build reads and writes.
const SCHEMA_VERSION: u32 = 1;

const SCHEMA_SQL: &str = "
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
";
/// The schema of a database created with [`SqliteOptions::large_values`]: `kv` a rowid table,
/// its key in a separate index (the same statements work on both).
const SCHEMA_SQL_LARGE_VALUES: &str = "
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL);
";
const SELECT_SCHEMA_VERSION: &str = "SELECT v FROM meta WHERE k = 'schema_version'";
const SELECT_VALUE: &str = "SELECT v FROM kv WHERE k = ?1";
const UPSERT: &str =
    "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v";
const DELETE: &str = "DELETE FROM kv WHERE k = ?1";
const SCAN_FROM_BELOW: &str = "SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3";
const SCAN_AFTER_BELOW: &str = "SELECT k, v FROM kv WHERE k > ?1 AND k < ?2 ORDER BY k LIMIT ?3";
const SCAN_FROM: &str = "SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2";
const SCAN_AFTER: &str = "SELECT k, v FROM kv WHERE k > ?1 ORDER BY k LIMIT ?2";
const SCAN_REV_BELOW: &str =
    "SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k DESC LIMIT ?3";
const SCAN_REV: &str = "SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k DESC LIMIT ?2";

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long to wait for a lock (the in-process writer, or SQLite's own locks when another
    /// process uses the file) before failing with [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// How many idle read-only connections to keep for reuse. More concurrent readers than
    /// this still work: the extra connections are opened on demand and closed when returned.
    pub max_idle_readers: usize,
    /// The most write transactions one `COMMIT` carries (group commit). 1 commits every
    /// transaction on its own.
    pub group_commit_max: usize,
    /// How long a group keeps taking in waiting writers after its first transaction committed;
    /// bounds the extra commit latency of that first transaction.
    pub group_commit_window: Duration,
    /// The page size of a database this open creates (SQLite's default, 4096, when `None`);
    /// an existing database keeps its own. Larger pages keep larger values inside the B-tree
    /// (a value over about a quarter of a page spills into overflow pages of its own).
    pub page_size: Option<u32>,
    /// A database this open creates keeps its values apart from its keys (`kv` a rowid
    /// table with an index on the key, instead of one B-tree clustered on the key); an
    /// existing database keeps its own layout. For stores of values much larger than a
    /// page's share (a quarter of a page): in the clustered layout, finding a key's place
    /// compares it with the entries on the way, and SQLite reads an entry's whole value to
    /// compare with an entry that spills into overflow pages — measured on the audit log's
    /// chunks of 100 KiB, most of the cost of an insert.
    pub large_values: bool,
    /// Whether connections read the file through a memory map of its first [`MMAP_SIZE`]
    /// bytes (the pages touched through it count as the process's resident memory). Off for
    /// a store that is mostly appended to and seldom read, such as the audit log's: its map
    /// was 16 MiB of the server's resident memory under a read load. Off too for a store
    /// written to while it is read: in WAL mode SQLite unmaps a connection's whole map when
    /// any commit came since its last read transaction (`pagerBeginReadTransaction`), so
    /// each read after a write pays `munmap`, `mmap` and a page fault per page.
    pub memory_map: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            max_idle_readers: std::thread::available_parallelism()
                .map_or(4, |n| n.get() * 2)
                .max(4),
            group_commit_max: DEFAULT_GROUP_COMMIT_MAX,
            group_commit_window: DEFAULT_GROUP_COMMIT_WINDOW,
            page_size: None,
            large_values: false,
            memory_map: true,
        }
    }
}

/// Enough to amortize an fsync over a busy server's writers without letting one group grow
/// without end.
const DEFAULT_GROUP_COMMIT_MAX: usize = 64;
const DEFAULT_GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(10);
/// How often a transaction waiting for its group's `COMMIT` looks again even if nobody woke it
/// (a safety net; every state change wakes the waiters).
const GROUP_RECHECK: Duration = Duration::from_millis(10);
/// The savepoint a logical write transaction runs in.
const SAVEPOINT: &str = "SAVEPOINT w";
const RELEASE: &str = "RELEASE w";
const ROLLBACK_TO: &str = "ROLLBACK TO w";

/// An ordered transactional key-value store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<Writer>,
    /// Wakes a `begin_write` waiting for the writer connection.
    writer_free: Condvar,
    /// Wakes transactions waiting for their group's `COMMIT` (its outcome, or their turn to
    /// issue it).
    group_changed: Condvar,
    readers: Mutex<ReaderPool>,
    /// Physical commits, seqlock-style: odd while a `COMMIT` runs (see the module doc).
    commits: AtomicU64,
    /// Fault injection for tests: how many of the next `COMMIT`s the commit hook turns into a
    /// rollback.
    fail_commits: Arc<AtomicU64>,
    /// Copies the write-ahead log into the database file off the commit path.
    checkpointer: Checkpointer,
}

/// The single writer connection, the open group and who waits for what. A write transaction
/// takes the connection out (so that the transaction owns it and is `Send`) and puts it back
/// when it ends.
struct Writer {
    /// `Some` while no transaction holds it.
    conn: Option<Connection>,
    closed: bool,
    /// Whether `close` has taken the connection for good.
    shut: bool,
    /// `begin_write` calls waiting for the connection.
    waiting: usize,
    /// The number of the open group; it goes up by one whenever a group ends (committed or
    /// failed).
    group: u64,
    /// Logical commits with changes in the open group: not durable yet.
    members: usize,
    /// Threads waiting for the open group's outcome.
    waiters: usize,
    /// When the open group's first member committed.
    opened_at: Option<Instant>,
    /// Whether the connection's open SQLite transaction is the current group's (begun by
    /// `BEGIN IMMEDIATE` and neither committed nor lost since). An open transaction that is
    /// not (a rollback that failed) is rolled back before the next group begins.
    in_group: bool,
    /// Failed groups whose waiters have not all read the error yet.
    failures: Vec<GroupFailure>,
}

struct GroupFailure {
    group: u64,
    error: Arc<StoreError>,
    unread: usize,
}

impl Writer {
    /// Whether the open group must commit now rather than take in another transaction.
    fn group_full(&self, options: &SqliteOptions) -> bool {
        self.members > 0
            && (self.members >= options.group_commit_max.max(1)
                || self
                    .opened_at
                    .is_some_and(|t| t.elapsed() >= options.group_commit_window))
    }

    /// Whether a waiting member should take the free connection and commit the group.
    fn wants_leader(&self, options: &SqliteOptions) -> bool {
        self.conn.is_some()
            && self.members > 0
            && (self.waiting == 0 || self.closed || self.group_full(options))
    }

    /// Ends the open group (after its `COMMIT` or its loss) and records a failure for every
    /// thread still waiting for it.
    fn end_group(&mut self, failure: Option<Arc<StoreError>>) {
        if let Some(error) = failure
            && self.waiters > 0
        {
            self.failures.push(GroupFailure {
                group: self.group,
                error,
                unread: self.waiters,
            });
        }
        self.group += 1;
        self.in_group = false;
        self.members = 0;
        self.waiters = 0;
        self.opened_at = None;
    }

    /// The outcome of an ended group, for one of its waiters.
    fn outcome(&mut self, group: u64) -> Result<(), StoreError> {
        let Some(i) = self.failures.iter().position(|f| f.group == group) else {
            return Ok(());
        };
        let failure = &mut self.failures[i];
        let error = failure.error.clone();
        failure.unread -= 1;
        if failure.unread == 0 {
            self.failures.swap_remove(i);
        }
        Err(StoreError::GroupCommit { source: error })
    }
}

struct ReaderPool {
    idle: Vec<Connection>,
    closed: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it (mode 0600 on Unix) and its schema if needed.
    /// The parent directory must exist.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        create_private_file(path)?;
        let mut writer = open_writer(path, &options)?;
        init_schema(&mut writer, options.large_values)?;
        let fail_commits = Arc::new(AtomicU64::new(0));
        let fail = fail_commits.clone();
        writer
            .commit_hook(Some(move || {
                // Returning true turns this COMMIT into a rollback (SQLITE_CONSTRAINT_COMMITHOOK).
                fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            }))
            .map_err(StoreError::sqlite("installing the commit hook"))?;
        // Replaces SQLite's automatic checkpoint (see the checkpoint module).
        let checkpointer = Checkpointer::start(path)?;
        let signal = checkpointer.signal();
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
                if pages >= checkpoint::INLINE_PAGES {
                    // The log outgrew the background thread: copy it now, while no other
                    // commit can append to it. A busy checkpoint is not this commit's failure.
                    let _ = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE);
                } else {
                    signal.committed(pages);
                }
                Ok(())
            }))
            .map_err(StoreError::sqlite("installing the WAL hook"))?;
        let store = SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn: Some(writer),
                closed: false,
                shut: false,
                waiting: 0,
                group: 0,
                members: 0,
                waiters: 0,
                opened_at: None,
                in_group: false,
                failures: Vec::new(),
            }),
            writer_free: Condvar::new(),
            group_changed: Condvar::new(),
            readers: Mutex::new(ReaderPool {
                idle: Vec::new(),
                closed: false,
            }),
            commits: AtomicU64::new(0),
            fail_commits,
            checkpointer,
            options,
        };
        // Fail now, not on the first request, if read-only connections cannot be opened.
        let reader = store.open_reader()?;
        store.return_reader(reader);
        Ok(store)
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::sqlite("opening a read connection"))?;
        conn.busy_timeout(self.options.busy_timeout)
            .map_err(StoreError::sqlite("setting busy_timeout"))?;
        // Reads through a memory map instead of a read() system call per page: the hot path
        // (one point read per request) is dominated by per-call overheads.
        set_mmap_size(&conn, &self.options)
            .map_err(StoreError::sqlite("setting reader pragmas"))?;
        Ok(conn)
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        let pooled = {
            let mut pool = self.readers.lock();
            if pool.closed {
                return Err(StoreError::Closed);
            }
            pool.idle.pop()
        };
        match pooled {
            Some(conn) => Ok(conn),
            None => self.open_reader(),
        }
    }

    fn return_reader(&self, conn: Connection) {
        let mut pool = self.readers.lock();
        if !pool.closed && pool.idle.len() < self.options.max_idle_readers {
            pool.idle.push(conn);
            return;
        }
        drop(pool);
        drop(conn); // closed outside the lock
    }

    /// How many physical `COMMIT`s (successful or not) this store has issued: with group
    /// commit, fewer than the write transactions committed.
    pub fn physical_commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst) / 2
    }

    /// How many write-ahead-log checkpoints the background thread has run (for tests).
    #[doc(hidden)]
    pub fn background_checkpoints(&self) -> u64 {
        self.checkpointer.signal().runs.load(Ordering::Relaxed)
    }

    /// How many `begin_write` calls are waiting for the writer (for tests that line writers
    /// up).
    #[doc(hidden)]
    pub fn waiting_writers(&self) -> usize {
        self.writer.lock().waiting
    }

    /// Fault injection for tests: the next `n` physical `COMMIT`s fail (SQLite rolls them
    /// back), as a failed fsync would make them fail.
    #[doc(hidden)]
    pub fn fail_next_commits(&self, n: u64) {
        self.fail_commits.store(n, Ordering::SeqCst);
    }

    /// Wakes whoever can make progress with the writer's current state.
    fn wake(&self, w: &Writer) {
        if w.conn.is_none() {
            return;
        }
        if w.wants_leader(&self.options) || w.closed {
            self.group_changed.notify_all();
        } else if w.waiting > 0 {
            self.writer_free.notify_one();
        }
    }

    /// Takes the writer connection, waiting up to the busy timeout. A group that is full must
    /// commit before anyone else gets the connection.
    fn take_writer(&self) -> Result<(Connection, bool), StoreError> {
        let deadline = Instant::now() + self.options.busy_timeout;
        let mut w = self.writer.lock();
        w.waiting += 1;
        let mut timed_out = false;
        let taken = loop {
            if w.closed {
                break Err(StoreError::Closed);
            }
            if w.conn.is_some() && !w.group_full(&self.options) {
                let in_group = w.in_group;
                // The taker begins the group's transaction if there is none; if that fails it
                // says so in `abandon_begin`.
                w.in_group = true;
                break w
                    .conn
                    .take()
                    .map(|c| (c, in_group))
                    .ok_or(StoreError::Closed);
            }
            if timed_out {
                break Err(StoreError::Busy {
                    timeout_ms: duration_ms(self.options.busy_timeout),
                });
            }
            if w.conn.is_some() {
                // Full group: let its members commit it.
                self.group_changed.notify_all();
            }
            timed_out = self.writer_free.wait_until(&mut w, deadline).timed_out();
        };
        w.waiting -= 1;
        if taken.is_err() {
            self.wake(&w);
        }
        taken
    }

    /// Puts the writer connection back after `begin_write` failed. `group_intact` says whether
    /// a group transaction is still open on it (one existed before, and nothing was lost).
    fn abandon_begin(&self, conn: Connection, group_intact: bool) {
        let mut w = self.writer.lock();
        if !group_intact {
            w.in_group = false;
        }
        w.conn = Some(conn);
        self.wake(&w);
    }

    /// Puts the writer connection back, with no group transaction open on it.
    fn return_idle_writer(&self, conn: Connection) {
        let mut w = self.writer.lock();
        w.in_group = false;
        w.conn = Some(conn);
        self.wake(&w);
    }

    /// Ends a logical write transaction whose savepoint is already released (`committed`, with
    /// `wrote` telling whether it changed anything) or rolled back. `broken` says the physical
    /// transaction was lost (SQLite rolled it back after an error): then every member of the
    /// open group fails. Returns once everything this transaction saw or wrote is durable.
    fn end_logical(
        &self,
        conn: Connection,
        committed: bool,
        wrote: bool,
        broken: Option<StoreError>,
    ) -> Result<(), StoreError> {
        let mut w = self.writer.lock();
        if let Some(error) = broken {
            drop(w);
            if !conn.is_autocommit() {
                let _ = execute_cached(&conn, "ROLLBACK", "rolling back a lost transaction");
            }
            let mut w = self.writer.lock();
            let error = Arc::new(error);
            w.end_group(Some(error.clone()));
            w.conn = Some(conn);
            self.group_changed.notify_all();
            self.wake(&w);
            return Err(StoreError::GroupCommit { source: error });
        }
        if committed && wrote {
            w.members += 1;
            if w.opened_at.is_none() {
                w.opened_at = Some(Instant::now());
            }
        }
        if w.members == 0 {
            // Nothing in the open transaction needs committing (every earlier member rolled
            // back, or there was none).
            if w.waiting == 0 || w.closed {
                // End it so that it holds no lock while the writer is idle.
                drop(w);
                let ended = if conn.is_autocommit() {
                    Ok(())
                } else {
                    execute_cached(&conn, "ROLLBACK", "ending an empty transaction")
                };
                self.return_idle_writer(conn);
                return ended;
            }
            w.conn = Some(conn);
            self.wake(&w);
            return Ok(());
        }
        // This transaction's changes, or earlier members' changes it could see, are not
        // durable yet: it returns only after the group's COMMIT.
        let group = w.group;
        w.waiters += 1;
        if w.waiting > 0 && !w.closed && !w.group_full(&self.options) {
            w.conn = Some(conn);
            self.wake(&w);
            self.await_group(w, group)
        } else {
            self.commit_group(w, conn, group)
        }
    }

    /// Waits for `group`'s outcome as one of its waiters, and commits it when it is this
    /// thread's turn (the connection is free and nobody else wants it).
    fn await_group(
        &self,
        mut w: parking_lot::MutexGuard<'_, Writer>,
        group: u64,
    ) -> Result<(), StoreError> {
        loop {
            if w.group > group {
                return w.outcome(group);
            }
            if w.wants_leader(&self.options)
                && let Some(conn) = w.conn.take()
            {
                return self.commit_group(w, conn, group);
            }
            self.group_changed.wait_for(&mut w, GROUP_RECHECK);
        }
    }

    /// Issues the open group's `COMMIT` on behalf of all its members; `w.waiters` counts this
    /// thread.
    fn commit_group(
        &self,
        mut w: parking_lot::MutexGuard<'_, Writer>,
        conn: Connection,
        group: u64,
    ) -> Result<(), StoreError> {
        debug_assert_eq!(w.group, group);
        w.waiters -= 1;
        drop(w);
        self.commits.fetch_add(1, Ordering::SeqCst); // odd: a COMMIT is under way
        let committed = execute_cached(&conn, "COMMIT", "committing");
        if committed.is_err() && !conn.is_autocommit() {
            // Still open (e.g. the disk is full): undo it. If even that fails, the next
            // `begin_write` retries before it begins (the group is over: `in_group` is false).
            let _ = execute_cached(&conn, "ROLLBACK", "rolling back a failed commit");
        }
        self.commits.fetch_add(1, Ordering::SeqCst); // even again, whatever the outcome
        let mut w = self.writer.lock();
        let outcome = match committed {
            Ok(()) => {
                w.end_group(None);
                Ok(())
            }
            Err(error) => {
                let error = Arc::new(error);
                w.end_group(Some(error.clone()));
                Err(StoreError::GroupCommit { source: error })
            }
        };
        w.conn = Some(conn);
        self.group_changed.notify_all();
        self.wake(&w);
        outcome
    }
}

impl Store for SqliteStore {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        let txn = self.read_txn()?;
        // The snapshot is taken now: every write committed before this call, none after.
        txn.conn()?;
        Ok(Box::new(txn))
    }

    fn visible_generation(&self) -> Option<u64> {
        // Tags are even (odd while a COMMIT runs): round an odd count up to the tag that the
        // COMMIT under way ends at.
        let commits = self.commits.load(Ordering::SeqCst);
        Some(commits + (commits & 1))
    }

    fn begin_read_lazy(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        // No connection and no SQLite transaction until the first get or scan, so that a read
        // served entirely from caches tagged with this generation costs none.
        Ok(Box::new(self.read_txn()?))
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        let (conn, in_group) = self.take_writer()?;
        let in_group = in_group && !conn.is_autocommit();
        if !in_group {
            let begun = if conn.is_autocommit() {
                Ok(())
            } else {
                // A previous rollback failed; heal before starting a new group.
                execute_cached(&conn, "ROLLBACK", "rolling back a stale transaction")
            }
            .and_then(|()| {
                execute_cached(&conn, "BEGIN IMMEDIATE", "beginning a write transaction")
            });
            if let Err(e) = begun {
                self.abandon_begin(conn, false);
                return Err(e);
            }
        }
        if let Err(e) = execute_cached(&conn, SAVEPOINT, "beginning a write transaction") {
            // Nothing of the group is lost by a savepoint that was not created.
            self.abandon_begin(conn, true);
            return Err(e);
        }
        Ok(Box::new(SqliteWriteTxn {
            store: self,
            conn: Some(conn),
            wrote: false,
        }))
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn close(&self) -> Result<(), StoreError> {
        let idle = {
            let mut pool = self.readers.lock();
            pool.closed = true;
            std::mem::take(&mut pool.idle)
        };
        drop(idle);

        let writer = {
            let mut w = self.writer.lock();
            if w.shut {
                return Ok(()); // already closed
            }
            w.closed = true;
            self.writer_free.notify_all();
            self.group_changed.notify_all();
            // Wait for the transaction holding the writer, and for the open group's COMMIT
            // (its members issue it as soon as the connection is free).
            let deadline = Instant::now() + self.options.busy_timeout;
            while w.conn.is_none() || w.members > 0 {
                if Instant::now() >= deadline {
                    return Err(StoreError::Busy {
                        timeout_ms: duration_ms(self.options.busy_timeout),
                    });
                }
                self.group_changed.wait_for(&mut w, GROUP_RECHECK);
            }
            w.shut = true;
            w.conn.take()
        };
        let Some(conn) = writer else {
            return Ok(());
        };
        self.checkpointer.stop();
        if !conn.is_autocommit() {
            // An empty group transaction left open for a writer that then gave up.
            execute_cached(&conn, "ROLLBACK", "ending an empty transaction")?;
        }
        // Returns (busy, log pages, checkpointed pages); a reader still open makes it partial,
        // which is not an error: the rest is checkpointed by the next open.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(StoreError::sqlite("checkpointing the WAL"))?;
        conn.close().map_err(|(_, source)| StoreError::Sqlite {
            context: "closing the database",
            source,
        })
    }
}

/// Creates `path` with mode 0600 if it does not exist, so that SQLite (which copies the
/// database file's mode to its `-wal` and `-shm` files) never creates it with the umask's
/// default. An existing file is left as it is.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Read settings of every connection: a memory map of the file's first 16 MiB. The pages a
/// connection touches through the map stay in the process's resident set (VmRSS counts them as
/// RssFile) for as long as the map exists: with the former 256 MiB map, 1,000 reads on a
/// 10,000-secret, 10,000-parameter database (102 MiB) left 45 MiB of it resident. Beyond the
/// map SQLite reads pages with `pread()` into its own bounded page cache (`cache_size`, 2 MiB
/// per connection by default), and the kernel's page cache, which is not the process's memory.
const MMAP_SIZE: i64 = 16 * 1024 * 1024;

fn set_mmap_size(conn: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    let size = if options.memory_map { MMAP_SIZE } else { 0 };
    conn.pragma_update(None, "mmap_size", size)
}

fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::sqlite("opening the database"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(StoreError::sqlite("setting busy_timeout"))?;
    if let Some(size) = options.page_size {
        // Takes effect only while the file is empty (before WAL and the schema exist).
        conn.execute_batch(&format!("PRAGMA page_size = {size}"))
            .map_err(StoreError::sqlite("setting page_size"))?;
    }
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(StoreError::sqlite("enabling WAL"))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        // Without WAL, readers would block the writer and snapshots would not hold.
        return Err(StoreError::Unsupported {
            what: "write-ahead logging (journal_mode=WAL) on this file system",
        });
    }
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(StoreError::sqlite("setting synchronous=FULL"))?;
    // The writer reads pages (the B-tree path to each key it writes) through the memory map
    // too, instead of a pread() system call per page; writes still go to the WAL.
    set_mmap_size(&conn, options).map_err(StoreError::sqlite("setting the memory map"))?;
    Ok(conn)
}

fn init_schema(conn: &mut Connection, large_values: bool) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("beginning schema setup"))?;
    tx.execute_batch(if large_values {
        SCHEMA_SQL_LARGE_VALUES
    } else {
        SCHEMA_SQL
    })
    .map_err(StoreError::sqlite("creating the schema"))?;
    tx.execute(
        "INSERT INTO meta (k, v) VALUES ('schema_version', ?1) ON CONFLICT (k) DO NOTHING",
        params![SCHEMA_VERSION.to_string()],
    )
    .map_err(StoreError::sqlite("recording the schema version"))?;
    let found: String = tx
        .query_row(SELECT_SCHEMA_VERSION, [], |row| row.get(0))
        .map_err(StoreError::sqlite("reading the schema version"))?;
    if found != SCHEMA_VERSION.to_string() {
        return Err(StoreError::UnsupportedSchema {
            found,
            expected: SCHEMA_VERSION,
        });
    }
    tx.commit()
        .map_err(StoreError::sqlite("committing schema setup"))
}

fn execute_cached(conn: &Connection, sql: &str, context: &'static str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(StoreError::sqlite(context))
}

fn get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    conn.prepare_cached(SELECT_VALUE)
        .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
        .map_err(StoreError::sqlite("reading a key"))
}

/// Keys with `prefix` before `before`, descending (see [`ReadTxn::scan_rev`]).
fn scan_rev(
    conn: &Connection,
    prefix: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // The tighter of `before` and the first key past the prefix.
    let upper = match (before, prefix_successor(prefix)) {
        (Some(b), Some(p)) => Some(if b < p.as_str() { b.to_string() } else { p }),
        (Some(b), None) => Some(b.to_string()),
        (None, p) => p,
    };
    let run = || -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
        let read_row = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?));
        match &upper {
            Some(upper) => {
                let mut stmt = conn.prepare_cached(SCAN_REV_BELOW)?;
                let rows = stmt.query_map(params![prefix, upper, limit], read_row)?;
                rows.collect()
            }
            None => {
                let mut stmt = conn.prepare_cached(SCAN_REV)?;
                let rows = stmt.query_map(params![prefix, limit], read_row)?;
                rows.collect()
            }
        }
    };
    run().map_err(StoreError::sqlite("scanning keys backwards"))
}

fn scan(
    conn: &Connection,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (lower, exclusive) = match lower_bound(prefix, start_after) {
        LowerBound::Inclusive(k) => (k, false),
        LowerBound::Exclusive(k) => (k, true),
    };
    let upper = prefix_successor(prefix);
    let run = || -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
        let read_row = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?));
        match &upper {
            Some(upper) => {
                let sql = if exclusive {
                    SCAN_AFTER_BELOW
                } else {
                    SCAN_FROM_BELOW
                };
                let mut stmt = conn.prepare_cached(sql)?;
                let rows = stmt.query_map(params![lower, upper, limit], read_row)?;
                rows.collect()
            }
            // No successor: every key >= prefix starts with it (the prefix is empty or made
            // only of U+10FFFF).
            None => {
                let sql = if exclusive { SCAN_AFTER } else { SCAN_FROM };
                let mut stmt = conn.prepare_cached(sql)?;
                let rows = stmt.query_map(params![lower, limit], read_row)?;
                rows.collect()
            }
        }
    };
    run().map_err(StoreError::sqlite("scanning keys"))
}

/// A read transaction. [`Store::begin_read`] opens it at once; [`Store::begin_read_lazy`]
/// only notes the commit count, and the SQLite snapshot (a pooled connection, `BEGIN`, a first
/// read to pin it) is taken at the first `get` or `scan`. Its tag
/// ([`ReadTxn::snapshot_generation`]) is the commit count at the begin call; when the snapshot opened later shows exactly that state (no `COMMIT` started
/// in between) the tag stays. Otherwise it is replaced by the snapshot's own tag if it was
/// never handed out, or dropped (`None`) if a caller may already have served cached data
/// under it: data read afterwards is newer than that tag and must not be cached under it.
struct SqliteReadTxn<'a> {
    store: &'a SqliteStore,
    /// Set at the first read.
    conn: OnceCell<Connection>,
    /// See [`ReadTxn::snapshot_generation`].
    generation: Cell<Option<u64>>,
    /// Whether `snapshot_generation` returned a tag before the snapshot was opened.
    handed_out: Cell<bool>,
    /// Begun while a `COMMIT` ran: the tag before it (see [`ReadTxn::snapshot_floor`]).
    floor: Option<u64>,
}

impl SqliteStore {
    /// A read transaction not opened yet, tagged with the commit count now.
    fn read_txn(&self) -> Result<SqliteReadTxn<'_>, StoreError> {
        if self.readers.lock().closed {
            return Err(StoreError::Closed);
        }
        let begun_at = self.commits.load(Ordering::SeqCst);
        Ok(SqliteReadTxn {
            store: self,
            conn: OnceCell::new(),
            generation: Cell::new(begun_at.is_multiple_of(2).then_some(begun_at)),
            handed_out: Cell::new(false),
            floor: (!begun_at.is_multiple_of(2)).then(|| begun_at - 1),
        })
    }
}

impl SqliteReadTxn<'_> {
    fn conn(&self) -> Result<&Connection, StoreError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn);
        }
        let before = self.store.commits.load(Ordering::SeqCst);
        let conn = self.store.take_reader()?;
        let begun = execute_cached(&conn, "BEGIN", "beginning a read transaction").and_then(|()| {
            // BEGIN is deferred: SQLite takes the snapshot at the first read, so read now to
            // pin it to this moment.
            conn.prepare_cached(SELECT_SCHEMA_VERSION)
                .and_then(|mut stmt| stmt.query_row([], |_| Ok(())).optional())
                .map(drop)
                .map_err(StoreError::sqlite("starting a read snapshot"))
        });
        if let Err(e) = begun {
            if conn.is_autocommit() {
                self.store.return_reader(conn);
            } // else: a connection in an unknown state is closed, not reused
            return Err(e);
        }
        // No COMMIT ran while the snapshot was taken: it shows exactly the first after/2
        // physical commits, as does every other snapshot tagged the same.
        let after = self.store.commits.load(Ordering::SeqCst);
        let snapshot = (before == after && after.is_multiple_of(2)).then_some(after);
        if snapshot != self.generation.get() {
            self.generation.set(if self.handed_out.get() {
                None
            } else {
                snapshot
            });
        }
        Ok(self.conn.get_or_init(|| conn))
    }
}

impl ReadTxn for SqliteReadTxn<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        get(self.conn()?, key)
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        scan(self.conn()?, prefix, start_after, limit)
    }

    fn scan_rev(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        scan_rev(self.conn()?, prefix, before, limit)
    }

    fn snapshot_generation(&self) -> Option<u64> {
        let generation = self.generation.get();
        if generation.is_some() && self.conn.get().is_none() {
            self.handed_out.set(true);
        }
        generation
    }

    fn snapshot_floor(&self) -> Option<u64> {
        match self.snapshot_generation() {
            Some(generation) => Some(generation),
            // Once opened, the snapshot may show commits begun after this transaction.
            None if self.conn.get().is_none() => self.floor,
            None => None,
        }
    }
}

impl Drop for SqliteReadTxn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !conn.is_autocommit() && execute_cached(&conn, "ROLLBACK", "ending a read").is_err() {
            return; // a connection in an unknown state is closed, not reused
        }
        if conn.is_autocommit() {
            self.store.return_reader(conn);
        }
    }
}

struct SqliteWriteTxn<'a> {
    store: &'a SqliteStore,
    /// Always `Some` until the transaction ends.
    conn: Option<Connection>,
    /// Whether a put or delete ran: only then does a commit need the group's COMMIT.
    wrote: bool,
}

impl SqliteWriteTxn<'_> {
    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn.as_ref().ok_or(StoreError::Closed)
    }

    /// The connection for a change, unless SQLite has rolled the whole transaction back after
    /// an error (a full disk, an I/O error): then a change would run outside any transaction
    /// and commit on its own.
    fn conn_for_change(&mut self) -> Result<&Connection, StoreError> {
        self.wrote = true;
        let conn = self.conn()?;
        if conn.is_autocommit() {
            return Err(StoreError::TransactionLost);
        }
        Ok(conn)
    }

    /// Ends the savepoint (released on commit, rolled back otherwise) and then the logical
    /// transaction; see the module doc.
    fn finish(&mut self, commit: bool) -> Result<(), StoreError> {
        let conn = self.conn.take().ok_or(StoreError::Closed)?;
        let mut own_error = None;
        let mut committed = false;
        if commit {
            match execute_cached(&conn, RELEASE, "committing") {
                Ok(()) => committed = true,
                Err(e) => own_error = Some(e),
            }
        }
        let mut broken = None;
        if !committed {
            // Undo this transaction's changes, and only them.
            let undone = execute_cached(&conn, ROLLBACK_TO, "rolling back")
                .and_then(|()| execute_cached(&conn, RELEASE, "rolling back"));
            if let Err(e) = undone {
                broken = Some(e);
            }
        }
        if conn.is_autocommit() {
            // SQLite rolled the group's transaction back after an error: earlier members'
            // changes are gone too.
            broken = Some(broken.unwrap_or(StoreError::TransactionLost));
        }
        let ended = self.store.end_logical(conn, committed, self.wrote, broken);
        match own_error {
            Some(e) => Err(e),
            None => ended,
        }
    }
}

impl ReadTxn for SqliteWriteTxn<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        get(self.conn()?, key)
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        scan(self.conn()?, prefix, start_after, limit)
    }
}

impl WriteTxn for SqliteWriteTxn<'_> {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn_for_change()?
            .prepare_cached(UPSERT)
            .and_then(|mut stmt| stmt.execute(params![key, value]))
            .map(drop)
            .map_err(StoreError::sqlite("writing a key"))
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        self.conn_for_change()?
            .prepare_cached(DELETE)
            .and_then(|mut stmt| stmt.execute([key]))
            .map(|changed| changed > 0)
            .map_err(StoreError::sqlite("deleting a key"))
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        // Returns after the COMMIT of this transaction's group (see the module doc).
        self.finish(true)
    }
}

impl Drop for SqliteWriteTxn<'_> {
    fn drop(&mut self) {
        if self.conn.is_some() {
            // Rolls back. If this transaction saw another's changes that are not durable yet,
            // this waits for their COMMIT. Errors are the group members' to report.
            let _ = self.finish(false);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
    use super::*;

    fn mmap_size(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA mmap_size", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn the_memory_map_of_readers_and_the_writer_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tresor.db")).unwrap();
        let reader = store.open_reader().unwrap();
        assert_eq!(mmap_size(&reader), MMAP_SIZE);
        let writer = open_writer(&dir.path().join("tresor.db"), &SqliteOptions::default()).unwrap();
        assert_eq!(mmap_size(&writer), MMAP_SIZE);
        drop((reader, writer, store));
        // Without a memory map, on both kinds of connection.
        let options = SqliteOptions {
            memory_map: false,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(&dir.path().join("log.db"), options.clone()).unwrap();
        assert_eq!(mmap_size(&store.open_reader().unwrap()), 0);
        let writer = open_writer(&dir.path().join("log.db"), &options).unwrap();
        assert_eq!(mmap_size(&writer), 0);
    }
}
