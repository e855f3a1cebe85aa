//! Backends under test, built the same way by every test file.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a subset; unwrap fails the test

use std::hash::BuildHasher;
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

/// The administrative URL of the PostgreSQL the tests use (`TRESOR_TEST_PG_URL`, by default
/// the local server with trust authentication). Tests create a database of their own in it
/// and drop it afterwards. There is no silent skip: without a reachable server these tests
/// fail (`scripts/test` starts a throwaway server when none listens).
pub fn pg_admin_url() -> String {
    std::env::var("TRESOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database `tresor_test_<random>`, dropped on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create() -> TestDatabase {
        let admin = pg_admin_url();
        let name = format!(
            "tresor_test_{:016x}",
            std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
        );
        PostgresStore::create_database(&admin, &name).unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} (TRESOR_TEST_PG_URL) is needed by this test: {e}")
        });
        let (base, _) = admin.rsplit_once('/').unwrap();
        TestDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = PostgresStore::drop_database(&pg_admin_url(), &self.name);
    }
}

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
