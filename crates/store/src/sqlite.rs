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
//! `k >= prefix AND k < successor(prefix)`.
//!
//! Group commit (not built yet): with `synchronous=FULL` every commit costs an fsync
//! (~6,000 commits/s measured on a development machine, against ~45,000 rows/s when 64 rows
//! share one commit). The writer is a single connection handed out through [`WriterSlot`], so
//! group commit can be added behind the same trait: while one SQLite transaction is open, let
//! the next logical write transactions run inside it as `SAVEPOINT`s (`ROLLBACK TO` on drop),
//! make their `commit()` release the savepoint and block until the group's single `COMMIT`
//! (one fsync) has returned, and fail every member of the group if that `COMMIT` fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::memory::duration_ms;
use crate::range::{LowerBound, lower_bound, prefix_successor};
use crate::{ReadTxn, Store, StoreError, WriteTxn};

/// The schema version this build reads and writes.
const SCHEMA_VERSION: u32 = 1;

const SCHEMA_SQL: &str = "
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
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

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long to wait for a lock (the in-process writer, or SQLite's own locks when another
    /// process uses the file) before failing with [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// How many idle read-only connections to keep for reuse. More concurrent readers than
    /// this still work: the extra connections are opened on demand and closed when returned.
    pub max_idle_readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            max_idle_readers: std::thread::available_parallelism()
                .map_or(4, |n| n.get() * 2)
                .max(4),
        }
    }
}

/// An ordered transactional key-value store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<WriterSlot>,
    writer_released: Condvar,
    readers: Mutex<ReaderPool>,
}

/// The single writer connection and who holds it. A write transaction takes the connection out
/// (so that the transaction owns it and is `Send`) and puts it back when it ends.
struct WriterSlot {
    conn: Option<Connection>,
    in_use: bool,
    closed: bool,
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
        init_schema(&mut writer)?;
        let store = SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(WriterSlot {
                conn: Some(writer),
                in_use: false,
                closed: false,
            }),
            writer_released: Condvar::new(),
            readers: Mutex::new(ReaderPool {
                idle: Vec::new(),
                closed: false,
            }),
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
        conn.execute_batch(READER_PRAGMAS)
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

    fn take_writer(&self) -> Result<Connection, StoreError> {
        let deadline = Instant::now() + self.options.busy_timeout;
        let mut slot = self.writer.lock();
        loop {
            if slot.closed {
                return Err(StoreError::Closed);
            }
            if !slot.in_use {
                if let Some(conn) = slot.conn.take() {
                    slot.in_use = true;
                    return Ok(conn);
                }
                return Err(StoreError::Closed);
            }
            if self
                .writer_released
                .wait_until(&mut slot, deadline)
                .timed_out()
            {
                return Err(StoreError::Busy {
                    timeout_ms: duration_ms(self.options.busy_timeout),
                });
            }
        }
    }

    fn return_writer(&self, conn: Connection) {
        {
            let mut slot = self.writer.lock();
            slot.conn = Some(conn);
            slot.in_use = false;
        }
        self.writer_released.notify_all();
    }
}

impl Store for SqliteStore {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        let txn = SqliteReadTxn {
            store: self,
            conn: Some(self.take_reader()?),
        };
        let conn = txn.conn()?;
        execute_cached(conn, "BEGIN", "beginning a read transaction")?;
        // BEGIN is deferred: SQLite takes the snapshot at the first read, so read now to pin it
        // to this moment rather than to the caller's first get or scan.
        conn.prepare_cached(SELECT_SCHEMA_VERSION)
            .and_then(|mut stmt| stmt.query_row([], |_| Ok(())).optional())
            .map_err(StoreError::sqlite("starting a read snapshot"))?;
        Ok(Box::new(txn))
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        let txn = SqliteWriteTxn {
            store: self,
            conn: Some(self.take_writer()?),
        };
        let conn = txn.conn()?;
        if !conn.is_autocommit() {
            // A previous transaction's rollback failed; heal before starting a new one.
            execute_cached(conn, "ROLLBACK", "rolling back a stale transaction")?;
        }
        execute_cached(conn, "BEGIN IMMEDIATE", "beginning a write transaction")?;
        Ok(Box::new(txn))
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
            let mut slot = self.writer.lock();
            slot.closed = true;
            self.writer_released.notify_all();
            let deadline = Instant::now() + self.options.busy_timeout;
            while slot.in_use {
                if self
                    .writer_released
                    .wait_until(&mut slot, deadline)
                    .timed_out()
                {
                    return Err(StoreError::Busy {
                        timeout_ms: duration_ms(self.options.busy_timeout),
                    });
                }
            }
            slot.conn.take()
        };
        let Some(conn) = writer else {
            return Ok(()); // already closed
        };
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

/// Per-reader settings: a 256 MiB memory map (address space only, not memory).
const READER_PRAGMAS: &str = "PRAGMA mmap_size = 268435456";

fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::sqlite("opening the database"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(StoreError::sqlite("setting busy_timeout"))?;
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
    Ok(conn)
}

fn init_schema(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("beginning schema setup"))?;
    tx.execute_batch(SCHEMA_SQL)
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

struct SqliteReadTxn<'a> {
    store: &'a SqliteStore,
    /// Always `Some` until dropped.
    conn: Option<Connection>,
}

impl SqliteReadTxn<'_> {
    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn.as_ref().ok_or(StoreError::Closed)
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
    /// Always `Some` until dropped.
    conn: Option<Connection>,
}

impl SqliteWriteTxn<'_> {
    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn.as_ref().ok_or(StoreError::Closed)
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
        self.conn()?
            .prepare_cached(UPSERT)
            .and_then(|mut stmt| stmt.execute(params![key, value]))
            .map(drop)
            .map_err(StoreError::sqlite("writing a key"))
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        self.conn()?
            .prepare_cached(DELETE)
            .and_then(|mut stmt| stmt.execute([key]))
            .map(|changed| changed > 0)
            .map_err(StoreError::sqlite("deleting a key"))
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        // On failure the transaction may still be open; `Drop` rolls it back.
        execute_cached(self.conn()?, "COMMIT", "committing")
    }
}

impl Drop for SqliteWriteTxn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !conn.is_autocommit() {
            // If this fails, the next `begin_write` retries the rollback before BEGIN.
            let _ = execute_cached(&conn, "ROLLBACK", "rolling back");
        }
        self.store.return_writer(conn);
    }
}
