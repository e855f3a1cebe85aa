//! Backends under test, built the same way by every test file.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a subset; unwrap fails the test

use std::time::Duration;

use tempfile::TempDir;
use tresor_store::{MemoryStore, SqliteOptions, SqliteStore, Store};

/// A store and whatever must outlive it.
pub struct Fixture {
    pub store: Box<dyn Store>,
    pub dir: Option<TempDir>,
}

pub fn memory(busy_timeout: Duration) -> Fixture {
    Fixture {
        store: Box::new(MemoryStore::with_busy_timeout(busy_timeout)),
        dir: None,
    }
}

pub fn sqlite(busy_timeout: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(
        &dir.path().join("tresor.db"),
        SqliteOptions {
            busy_timeout,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    Fixture {
        store: Box::new(store),
        dir: Some(dir),
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
