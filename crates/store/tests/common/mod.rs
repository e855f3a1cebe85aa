//! Backends under test, built the same way by every test file.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a subset; unwrap fails the test

use std::time::Duration;

use tempfile::TempDir;
use tresor_store::{
    MemoryStore, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store,
};

/// A store and whatever must outlive it (fields drop in order: the store first).
pub struct Fixture {
    pub store: Box<dyn Store>,
    pub dir: Option<TempDir>,
    pub db: Option<TestDatabase>,
}

pub use tresor_store::testing::TestDatabase;

pub fn postgres(busy_timeout: Duration) -> Fixture {
    let db = TestDatabase::create();
    let store = PostgresStore::open_with(
        &db.url,
        PostgresOptions {
            busy_timeout,
            ..PostgresOptions::default()
        },
    )
    .unwrap();
    Fixture {
        store: Box::new(store),
        dir: None,
        db: Some(db),
    }
}

pub fn memory(busy_timeout: Duration) -> Fixture {
    Fixture {
        store: Box::new(MemoryStore::with_busy_timeout(busy_timeout)),
        dir: None,
        db: None,
    }
}

pub fn sqlite(busy_timeout: Duration) -> Fixture {
    sqlite_with(SqliteOptions {
        busy_timeout,
        ..SqliteOptions::default()
    })
}

/// SQLite with the layout for large values ([`SqliteOptions::large_values`]).
pub fn sqlite_large_values(busy_timeout: Duration) -> Fixture {
    sqlite_with(SqliteOptions {
        busy_timeout,
        large_values: true,
        ..SqliteOptions::default()
    })
}

fn sqlite_with(options: SqliteOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(&dir.path().join("tresor.db"), options).unwrap();
    Fixture {
        store: Box::new(store),
        dir: Some(dir),
        db: None,
    }
}

pub fn put_all(store: &dyn Store, entries: &[(&str, &[u8])]) {
    let mut txn = store.begin_write().unwrap();
    for (k, v) in entries {
        txn.put(k, v).unwrap();
    }
    txn.commit().unwrap();
}

pub fn keys(entries: &[(String, Vec<u8>)]) -> Vec<&str> {
    entries.iter().map(|(k, _)| k.as_str()).collect()
}
