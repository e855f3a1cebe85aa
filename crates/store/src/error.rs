//! The storage error type. It describes what failed (which operation, which file, the
//! backend's error code) and never carries a key's value: callers may log it, and services
//! turn it into an opaque `InternalServiceError` for clients.

use std::path::PathBuf;

/// Why a storage operation failed. No variant holds a stored value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store was closed with [`crate::Store::close`].
    #[error("the store is closed")]
    Closed,

    /// Another writer (another transaction of this process, or another process using the same
    /// database) held the lock for longer than the busy timeout. Retrying may succeed.
    #[error("the store is busy: the write lock was not acquired within {timeout_ms} ms")]
    Busy { timeout_ms: u64 },

    /// Creating or inspecting the database file failed.
    #[error("storage file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The database was written by an incompatible version of tresor.
    #[error("unsupported storage schema version {found} (this build reads version {expected})")]
    UnsupportedSchema { found: String, expected: u32 },

    /// The backend cannot provide a guarantee the store relies on.
    #[error("the storage backend does not support {what}")]
    Unsupported { what: &'static str },

    /// SQLite rolled the open write transaction back after an error (a full disk, an I/O
    /// error), so nothing of it, or of the group it ran in, will commit.
    #[error("the write transaction was rolled back after a storage error")]
    TransactionLost,

    /// The `COMMIT` of the group this write transaction was committed in failed (group commit:
    /// several transactions share one `COMMIT`), so none of the group's changes are durable
    /// or visible.
    #[error("the group commit of this write transaction failed: {source}")]
    GroupCommit {
        #[source]
        source: std::sync::Arc<StoreError>,
    },

    /// The backend reported an error. SQLite's messages name tables, columns and error codes,
    /// never bound values.
    #[error("sqlite error while {context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// PostgreSQL reported an error. Its messages name the statement's failure, never bound
    /// values (keys and sealed values are parameters).
    #[error("postgres error while {context}: {source}")]
    Postgres {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The database cannot be reached or did not answer in time. Nothing is known to have
    /// been written by the operation that got this error unless it was a commit.
    #[error("the database is unavailable: {reason}")]
    Unavailable { reason: String },
}

impl StoreError {
    /// Whether the same transaction, retried from the start, may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Busy { .. } => true,
            StoreError::GroupCommit { source } => source.is_retryable(),
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            StoreError::Postgres { source, .. } => source.code().is_some_and(|c| {
                *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                    || *c == tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE
            }),
            StoreError::Unavailable { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { context, source }
    }
}
