//! Test support shared by the store's own tests and the server's integration tests: a
//! throwaway PostgreSQL database. Not part of the storage API.

use std::hash::BuildHasher;

use crate::PostgresStore;

/// The administrative URL of the PostgreSQL the tests use (`TRESOR_TEST_PG_URL`, by default
/// the local server with trust authentication). Tests create a database of their own in it
/// and drop it afterwards. There is no silent skip: without a reachable server these tests
/// fail (`scripts/test` starts a throwaway server when none listens).
pub fn pg_admin_url() -> String {
    std::env::var("TRESOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database `tresor_test_<random>`, dropped (with its sessions) on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates the database; panics (failing the test) when PostgreSQL cannot be reached.
    pub fn create() -> TestDatabase {
        let admin = pg_admin_url();
        let name = format!(
            "tresor_test_{:016x}",
            std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
        );
        if let Err(e) = PostgresStore::create_database(&admin, &name) {
            panic!("PostgreSQL at {admin} (TRESOR_TEST_PG_URL) is needed by this test: {e}");
        }
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
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
