//! What only the SQLite backend promises: durability, file permissions, the schema guard,
//! connection reuse.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use tresor_store::{SqliteOptions, SqliteStore, Store, StoreError};

#[test]
fn committed_writes_survive_reopen_and_rolled_back_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tresor.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        common::put_all(&store, &[("a", b"1"), ("b", b"2")]);
        let mut txn = store.begin_write().unwrap();
        txn.delete("a").unwrap();
        txn.put("c", b"3").unwrap();
        drop(txn);
        store.close().unwrap();
    }
    {
        // Without close: dropping the store must be just as durable.
        let store = SqliteStore::open(&path).unwrap();
        let read = store.begin_read().unwrap();
        assert_eq!(read.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(read.get("c").unwrap(), None);
        drop(read);
        common::put_all(&store, &[("d", b"4")]);
    }
    let store = SqliteStore::open(&path).unwrap();
    let read = store.begin_read().unwrap();
    assert_eq!(
        common::keys(&read.scan("", None, 10).unwrap()),
        ["a", "b", "d"]
    );
}

#[test]
fn describe_names_the_file() {
    let fixture = common::sqlite(Duration::from_secs(1));
    let path = fixture.dir.as_ref().unwrap().path().join("tresor.db");
    assert_eq!(
        fixture.store.describe(),
        format!("sqlite:{}", path.display())
    );
}

#[cfg(unix)]
#[test]
fn the_database_and_its_wal_are_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tresor.db");
    let store = SqliteStore::open(&path).unwrap();
    common::put_all(&store, &[("k", b"v")]);
    for name in ["tresor.db", "tresor.db-wal", "tresor.db-shm"] {
        let file = dir.path().join(name);
        if let Ok(meta) = std::fs::metadata(&file) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        } else {
            assert_ne!(name, "tresor.db");
        }
    }
}

#[test]
fn a_database_with_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tresor.db");
    SqliteStore::open(&path).unwrap().close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE meta SET v = '99' WHERE k = 'schema_version'", [])
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(
        matches!(&err, StoreError::UnsupportedSchema { found, expected: 1 } if found == "99"),
        "{err}"
    );
}

#[test]
fn opening_in_a_missing_directory_fails_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/tresor.db");
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.to_string().contains("tresor.db"));
}

#[test]
fn more_concurrent_readers_than_the_pool_keeps_all_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(
        &dir.path().join("tresor.db"),
        SqliteOptions {
            max_idle_readers: 2,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    common::put_all(&store, &[("k", b"v")]);
    let readers: Vec<_> = (0..10).map(|_| store.begin_read().unwrap()).collect();
    for r in &readers {
        assert_eq!(r.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }
    drop(readers);
    // Reused connections still take fresh snapshots.
    common::put_all(&store, &[("k", b"w")]);
    for _ in 0..5 {
        let r = store.begin_read().unwrap();
        assert_eq!(r.get("k").unwrap().as_deref(), Some(&b"w"[..]));
    }
}

#[test]
fn the_file_does_not_contain_values_of_rolled_back_or_deleted_keys_after_close() {
    // Not a security property of the store (values reach it sealed), but a check that close()
    // checkpoints: the WAL is gone or empty afterwards.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tresor.db");
    let store = SqliteStore::open(&path).unwrap();
    common::put_all(&store, &[("k", b"v")]);
    store.close().unwrap();
    let wal = dir.path().join("tresor.db-wal");
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0));
}

/// Writes `rounds` transactions of `per_txn` values of 4 KiB each (distinct keys).
fn write_pages(store: &SqliteStore, rounds: usize, per_txn: usize) {
    let value = vec![7u8; 4096];
    for round in 0..rounds {
        let mut txn = store.begin_write().unwrap();
        for i in 0..per_txn {
            txn.put(&format!("bulk/{round:06}/{i:03}"), &value).unwrap();
        }
        txn.commit().unwrap();
    }
}

fn wal_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("tresor.db-wal")).map_or(0, |m| m.len())
}

#[test]
fn the_wal_is_checkpointed_in_the_background_and_its_contents_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tresor.db")).unwrap();
    // ~1,500 pages of log: past the 1,000 pages that wake the checkpoint thread.
    write_pages(&store, 150, 10);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.background_checkpoints() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background checkpoint within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Every value is still there, from the database file or the log.
    let r = store.begin_read().unwrap();
    assert_eq!(r.scan("bulk/", None, 10_000).unwrap().len(), 1500);
    drop(r);
    store.close().unwrap();
    assert_eq!(wal_len(dir.path()), 0, "close() truncates the log");
    let reopened = SqliteStore::open(&dir.path().join("tresor.db")).unwrap();
    let r = reopened.begin_read().unwrap();
    assert_eq!(r.scan("bulk/", None, 10_000).unwrap().len(), 1500);
}

#[test]
fn the_wal_stays_bounded_under_writes_that_never_pause() {
    // A reader pinned on an old snapshot would keep any checkpoint from finishing; without
    // one, the log must be started over now and then even though commits never stop: 40 MiB
    // of values written back to back leave a log far smaller than what was written.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tresor.db")).unwrap();
    write_pages(&store, 1000, 10);
    let wal = wal_len(dir.path());
    assert!(
        wal < 24 * 1024 * 1024,
        "the log grew to {wal} bytes for 40 MiB written"
    );
}

/// The `kv` table's definition in the file at `path`.
fn kv_schema(path: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT sql FROM sqlite_master WHERE name = 'kv'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn large_values_creates_a_rowid_table_and_an_existing_database_keeps_its_layout() {
    let dir = tempfile::tempdir().unwrap();
    let large = SqliteOptions {
        large_values: true,
        ..SqliteOptions::default()
    };
    let created = dir.path().join("large.db");
    let store = SqliteStore::open_with(&created, large.clone()).unwrap();
    let big = vec![7u8; 300_000];
    common::put_all(&store, &[("a", &big), ("b", b"small")]);
    drop(store);
    assert!(!kv_schema(&created).contains("WITHOUT ROWID"));
    let store = SqliteStore::open_with(&created, SqliteOptions::default()).unwrap();
    assert_eq!(store.begin_read().unwrap().get("a").unwrap(), Some(big));
    drop(store);
    assert!(
        !kv_schema(&created).contains("WITHOUT ROWID"),
        "the layout stays"
    );

    let clustered = dir.path().join("clustered.db");
    let store = SqliteStore::open(&clustered).unwrap();
    common::put_all(&store, &[("k", b"v")]);
    drop(store);
    let store = SqliteStore::open_with(&clustered, large).unwrap();
    assert_eq!(
        store.begin_read().unwrap().get("k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    drop(store);
    assert!(
        kv_schema(&clustered).contains("WITHOUT ROWID"),
        "the layout stays"
    );
}
