//! tresor's storage layer: an ordered key-value store with transactions, the shape HashiCorp
//! Vault uses for its physical backends.
//!
//! This crate owns the [`Store`] trait and its backends: [`SqliteStore`] (the embedded
//! default) and [`MemoryStore`] (the reference model, and the backend for unit tests of the
//! services). Keys are UTF-8 strings ordered bytewise (which for UTF-8 is code point order),
//! values are opaque bytes.
//!
//! It must not know AWS or cryptography: key layouts, record formats and encryption belong to
//! the services and to `tresor-crypto`. Everything that reaches this crate as a value is
//! already sealed, and no value ever appears in a [`StoreError`].
//!
//! Transactions are synchronous and meant to be used inline on the calling thread (measured
//! here: a reused connection used inline is about twice as fast as a `spawn_blocking` hand-off
//! per request, which is why the server runs reads inline and only writes on the blocking pool). Every transaction is `Send`, so it may be held
//! across an `.await`, but a write transaction excludes every other writer for as long as it
//! lives: keep them short and never await something slow while holding one.

mod checkpoint;
mod error;
mod memory;
mod postgres;
mod range;
mod sqlite;
#[doc(hidden)]
pub mod testing;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use postgres::{POLL_INTERVAL, PostgresOptions, PostgresStore, is_postgres_url};
pub use sqlite::{SqliteOptions, SqliteStore};

/// A transactional, ordered key-value store. Object safe: services hold an `Arc<dyn Store>`.
pub trait Store: Send + Sync + 'static {
    /// Starts a read-only transaction that sees one consistent snapshot (every write committed
    /// before this call, none committed after) for as long as it lives.
    ///
    /// A long-lived read transaction pins its snapshot: on SQLite it stops the WAL from being
    /// checkpointed past it. Drop it as soon as the reads are done.
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError>;

    /// A read-only transaction whose snapshot may be taken at its first read rather than at
    /// this call: for the hot read paths, which are mostly served from caches keyed by
    /// [`ReadTxn::snapshot_generation`] and then cost no store transaction at all. It still
    /// sees one consistent snapshot, of a state no older than what this process knew of at
    /// this call: for a single-process store every commit before the call; for a store shared
    /// by several processes every commit of this process and every commit of the others that
    /// the latest [`Store::sync_generations`] before this call (or a notification) brought
    /// news of. The default is [`Store::begin_read`]; SQLite and PostgreSQL open lazily (see
    /// their modules).
    fn begin_read_lazy(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        self.begin_read()
    }

    /// Starts the write transaction. There is one writer at a time: this waits for the current
    /// writer to finish, up to the backend's busy timeout, and then fails with
    /// [`StoreError::Busy`]. Calling it again on a thread that already holds the write
    /// transaction therefore fails after the timeout instead of deadlocking.
    ///
    /// The transaction sees its own writes. Dropping it without [`WriteTxn::commit`] rolls
    /// everything back.
    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError>;

    /// A one-line description for the start-up log, e.g. `sqlite:/var/lib/tresor/tresor.db`.
    fn describe(&self) -> String;

    /// Shuts the store down cleanly (SQLite: waits for the writer, checkpoints and truncates
    /// the WAL). Later `begin_*` calls fail with [`StoreError::Closed`]; transactions still
    /// open may finish.
    fn close(&self) -> Result<(), StoreError>;

    /// For a store shared by several processes (PostgreSQL): a counter that this process
    /// sees move, soon after, whenever any process commits a change (its own commits before
    /// their `commit()` returns). Caches of data that other processes may change are tagged
    /// with it. `None` (the default) for single-process backends, where the wrapper that
    /// counts commits in-process is exact.
    fn shared_generation(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        None
    }

    /// For a backend whose read snapshots are tagged by counting this process's own commits
    /// ([`ReadTxn::snapshot_generation`]; not a store shared by several processes): a tag no
    /// larger than that of any snapshot begun after this call, which is at least that of every
    /// commit that returned before it. A cache that knows which keys each commit wrote can
    /// then keep an entry across commits that did not touch its key. `None` (the default)
    /// when the backend cannot say.
    fn visible_generation(&self) -> Option<u64> {
        None
    }

    /// For a store shared by several processes: a second counter like
    /// [`Store::shared_generation`] that moves only on commits of write transactions that
    /// called [`WriteTxn::mark`] (tresor marks the changes of identity data, so that caches
    /// of credentials and policies survive other commits). `None` (the default) for
    /// single-process backends.
    fn shared_marked_generation(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        None
    }

    /// For a store shared by several processes: brings [`Store::shared_generation`] and
    /// [`Store::shared_marked_generation`] up to date with every commit of every process that
    /// completed before this call (PostgreSQL: one round trip, a read of the generation row
    /// outside any transaction). A request that calls it first, and then serves reads from
    /// caches tagged with those counters, sees every change acknowledged before it arrived,
    /// whichever process made it. A no-op (the default) for single-process backends, whose
    /// counters are exact at all times.
    fn sync_generations(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether the store can serve requests now (a readiness probe): embedded backends are
    /// always ready; a networked one checks that its database answers.
    fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Monotonic counters of the backend's work, for the metrics endpoint and benchmarks
    /// (PostgreSQL: `round_trips`, the exchanges with the database; `transactions`). Empty
    /// for the embedded backends.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Reads inside a transaction.
pub trait ReadTxn: Send {
    /// The value stored under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Keys starting with `prefix`, in ascending order, strictly after `start_after` when
    /// given, at most `limit` of them. An empty prefix matches every key.
    ///
    /// To page through a prefix, pass the last key of the previous page as `start_after`.
    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Keys starting with `prefix` and strictly before `before` (when given), in *descending*
    /// order, at most `limit` of them: the newest-first reading of a time-ordered log. To page
    /// backwards, pass the last key of the previous page as `before`.
    ///
    /// Read transactions of the built-in backends implement it; others (and write
    /// transactions) answer [`StoreError::Unsupported`].
    fn scan_rev(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let _ = (prefix, before, limit);
        Err(StoreError::Unsupported {
            what: "reverse scans in this transaction",
        })
    }

    /// A number that identifies this transaction's snapshot for caching: two read
    /// transactions with the same `Some(n)` see the same committed data. `None` (the default,
    /// and always for write transactions, which see their own uncommitted writes) means the
    /// snapshot cannot be named and nothing read through it may be cached.
    ///
    /// A transaction of [`Store::begin_read_lazy`] may open its snapshot at the first read. Its
    /// tag then names the state at `begin_read_lazy`; if the snapshot opened later shows
    /// another state, the tag becomes `None` (when it was already returned) or the snapshot's
    /// own. A cache therefore checks the tag again after reading through the transaction
    /// before it keeps what it read.
    fn snapshot_generation(&self) -> Option<u64> {
        None
    }

    /// For caches that know which keys each commit of this process wrote (see
    /// [`Store::visible_generation`]): a tag `n` such that this transaction agrees with the
    /// snapshots tagged `n` on every key that no commit under way when it began writes. The
    /// default is [`ReadTxn::snapshot_generation`]. A lazy SQLite transaction begun while a
    /// `COMMIT` ran has no exact tag (it may see the state before or after that `COMMIT`) and
    /// answers the tag before it, until its snapshot is opened.
    fn snapshot_floor(&self) -> Option<u64> {
        self.snapshot_generation()
    }
}

/// Writes inside the (single) write transaction.
pub trait WriteTxn: ReadTxn {
    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Removes `key`; returns whether it existed.
    fn delete(&mut self, key: &str) -> Result<bool, StoreError>;

    /// Marks the transaction: if it commits a change, the store's marked generation
    /// ([`Store::shared_marked_generation`]) moves too. Ignored (the default) by stores
    /// without one; a wrapper forwards it to the transaction it wraps.
    fn mark(&mut self) {}

    /// Makes every write of this transaction durable and visible, atomically. On error nothing
    /// of this transaction is visible.
    ///
    /// A backend may commit several transactions together (SQLite: group commit). Then this
    /// returns once the shared commit has returned — the guarantee above holds on return —
    /// and it may wait for the transactions that took the writer after this one, which is one
    /// more reason to keep write transactions short.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
