//! PostgreSQL-only behaviour: several stores (processes) on one database.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use tresor_store::{PostgresStore, Store, StoreError};

#[test]
fn another_store_on_the_database_learns_of_a_commit_within_milliseconds() {
    let db = common::TestDatabase::create();
    let a = PostgresStore::open(&db.url).unwrap();
    let b = PostgresStore::open(&db.url).unwrap();
    let b_counter = b.shared_generation().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.listening() {
        assert!(Instant::now() < deadline, "b never started listening");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut delays = Vec::new();
    for i in 0..20u32 {
        let before = b_counter.load(std::sync::atomic::Ordering::SeqCst);
        let mut t = a.begin_write().unwrap();
        t.put("k", i.to_string().as_bytes()).unwrap();
        t.commit().unwrap();
        let committed = a.known_generation();
        assert!(committed > before);
        let start = Instant::now();
        while b_counter.load(std::sync::atomic::Ordering::SeqCst) < committed {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "no notification within 1 s"
            );
            std::thread::yield_now();
        }
        delays.push(start.elapsed());
        // A snapshot on b now sees the commit, tagged with its generation.
        let r = b.begin_read().unwrap();
        assert_eq!(r.snapshot_generation(), Some(committed));
        assert_eq!(r.get("k").unwrap(), Some(i.to_string().into_bytes()));
    }
    delays.sort();
    println!(
        "commit on a -> b's generation moved: median {:?}, max {:?} (20 commits)",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}

#[test]
fn writers_on_two_stores_exclude_each_other() {
    let db = common::TestDatabase::create();
    let options = || tresor_store::PostgresOptions {
        busy_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let a = PostgresStore::open_with(&db.url, options()).unwrap();
    let b = PostgresStore::open_with(&db.url, options()).unwrap();
    let held = a.begin_write().unwrap();
    let err = b.begin_write().err().unwrap();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    drop(held);
    // Counters incremented from both stores at once never lose an update.
    std::thread::scope(|s| {
        for store in [&a, &b] {
            s.spawn(move || {
                for _ in 0..50 {
                    let mut t = store.begin_write().unwrap();
                    let n: u64 = t
                        .get("n")
                        .unwrap()
                        .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap());
                    t.put("n", (n + 1).to_string().as_bytes()).unwrap();
                    t.commit().unwrap();
                }
            });
        }
    });
    let r = a.begin_read().unwrap();
    assert_eq!(r.get("n").unwrap(), Some(b"100".to_vec()));
}

#[test]
fn a_database_of_a_newer_schema_is_refused() {
    let db = common::TestDatabase::create();
    drop(PostgresStore::open(&db.url).unwrap());
    let admin = std::process::Command::new("psql")
        .args([&db.url, "-qc", "UPDATE tresor_schema SET version = 99"])
        .status()
        .unwrap();
    assert!(admin.success());
    let err = PostgresStore::open(&db.url).err().unwrap();
    assert!(matches!(err, StoreError::UnsupportedSchema { .. }), "{err}");
}

#[test]
fn an_unreachable_database_is_a_clear_error_not_a_hang() {
    let start = Instant::now();
    let err = PostgresStore::open_with(
        "postgres://postgres@127.0.0.1:1/none",
        tresor_store::PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("connect"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}
