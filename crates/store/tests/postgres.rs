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

fn put(store: &PostgresStore, key: &str, value: &[u8]) {
    let mut t = store.begin_write().unwrap();
    t.put(key, value).unwrap();
    t.commit().unwrap();
}

fn round_trips(store: &PostgresStore) -> u64 {
    store
        .counters()
        .into_iter()
        .find(|(name, _)| *name == "round_trips")
        .unwrap()
        .1
}

/// Two stores ("nodes") on one fresh database.
fn two_nodes() -> (common::TestDatabase, PostgresStore, PostgresStore) {
    let db = common::TestDatabase::create();
    let a = PostgresStore::open(&db.url).unwrap();
    let b = PostgresStore::open(&db.url).unwrap();
    (db, a, b)
}

#[test]
fn a_lazy_read_served_from_its_tag_sends_nothing_and_keeps_the_tag_when_nothing_moved() {
    let (_db, a, b) = two_nodes();
    put(&b, "k", b"1");
    a.sync_generations().unwrap();
    assert_eq!(a.known_generation(), b.known_generation(), "sync");
    let before = round_trips(&a);
    {
        let lazy = a.begin_read_lazy().unwrap();
        assert_eq!(lazy.snapshot_generation(), Some(b.known_generation()));
    }
    assert_eq!(
        round_trips(&a),
        before,
        "a lazy read that never reads sends nothing (no BEGIN, no ROLLBACK)"
    );
    let lazy = a.begin_read_lazy().unwrap();
    let tag = lazy.snapshot_generation();
    assert_eq!(lazy.get("k").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(lazy.snapshot_generation(), tag, "no commit: the tag stays");
    assert_eq!(
        round_trips(&a),
        before + 1,
        "BEGIN, the generation row and the first read: one round trip"
    );
}

#[test]
fn a_lazy_tag_handed_out_is_withdrawn_when_another_node_commits_before_the_first_read() {
    let (_db, a, b) = two_nodes();
    put(&b, "k", b"1");
    a.sync_generations().unwrap();
    let lazy = a.begin_read_lazy().unwrap();
    let tag = lazy.snapshot_generation();
    assert!(tag.is_some());
    // Another node commits between the begin call and the first read.
    put(&b, "k", b"2");
    assert_eq!(
        lazy.get("k").unwrap().as_deref(),
        Some(&b"2"[..]),
        "the snapshot is begun at the first read"
    );
    assert_eq!(
        lazy.snapshot_generation(),
        None,
        "data newer than the tag handed out must not be cached under it"
    );
    put(&b, "k", b"3");
    assert_eq!(
        lazy.get("k").unwrap().as_deref(),
        Some(&b"2"[..]),
        "one snapshot"
    );
    assert_eq!(lazy.snapshot_generation(), None);
}

#[test]
fn a_lazy_tag_never_handed_out_becomes_the_snapshots_own() {
    let (_db, a, b) = two_nodes();
    put(&b, "k", b"1");
    a.sync_generations().unwrap();
    let lazy = a.begin_read_lazy().unwrap();
    put(&b, "k", b"2");
    assert_eq!(lazy.get("k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(lazy.snapshot_generation(), Some(b.known_generation()));
    // An eager snapshot of the same state carries the same tag.
    assert_eq!(
        a.begin_read().unwrap().snapshot_generation(),
        Some(b.known_generation())
    );
}

#[test]
fn sync_learns_another_nodes_commit_in_one_round_trip() {
    let (_db, a, b) = two_nodes();
    for i in 0..20u32 {
        let mut t = b.begin_write().unwrap();
        t.put("k", i.to_string().as_bytes()).unwrap();
        if i % 2 == 0 {
            t.mark();
        }
        t.commit().unwrap();
        let before = round_trips(&a);
        a.sync_generations().unwrap();
        assert_eq!(round_trips(&a), before + 1);
        // Whatever the notification's delay: b's commit returned before a's sync began.
        assert_eq!(a.known_generation(), b.known_generation(), "commit {i}");
        assert_eq!(a.known_marked_generation(), b.known_marked_generation());
        let lazy = a.begin_read_lazy().unwrap();
        assert_eq!(lazy.snapshot_generation(), Some(b.known_generation()));
        assert_eq!(lazy.get("k").unwrap(), Some(i.to_string().into_bytes()));
        assert_eq!(lazy.snapshot_generation(), Some(b.known_generation()));
    }
}

#[test]
fn only_marked_transactions_move_the_marked_generation_on_every_node() {
    let (_db, a, b) = two_nodes();
    let (g0, m0) = (a.known_generation(), a.known_marked_generation());
    put(&a, "k", b"1");
    assert_eq!(a.known_generation(), g0 + 1);
    assert_eq!(a.known_marked_generation(), m0, "an unmarked commit");
    let mut t = a.begin_write().unwrap();
    t.put("i", b"1").unwrap();
    t.mark();
    drop(t);
    assert_eq!(a.known_marked_generation(), m0, "rolled back");
    let mut t = a.begin_write().unwrap();
    t.mark();
    t.commit().unwrap();
    assert_eq!(
        a.known_marked_generation(),
        m0,
        "a marked transaction that changed nothing"
    );
    let mut t = a.begin_write().unwrap();
    t.put("i", b"2").unwrap();
    t.mark();
    t.commit().unwrap();
    assert_eq!(
        a.known_marked_generation(),
        m0 + 1,
        "known before commit() returns"
    );
    assert_eq!(a.known_generation(), g0 + 2);
    // The other node learns both from the notification, without asking.
    let deadline = Instant::now() + Duration::from_secs(1);
    while b.known_marked_generation() < m0 + 1 || b.known_generation() < g0 + 2 {
        assert!(Instant::now() < deadline, "no notification within 1 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(b.known_marked_generation(), m0 + 1);
    let marked = b.shared_marked_generation().unwrap();
    assert_eq!(marked.load(std::sync::atomic::Ordering::SeqCst), m0 + 1);
}

#[test]
fn a_version_1_database_is_upgraded_and_keeps_its_data_and_generation() {
    let db = common::TestDatabase::create();
    // The schema exactly as version 1 of this module created it, with a record.
    let v1 = "BEGIN;
        CREATE TABLE tresor_schema (id int PRIMARY KEY, version int NOT NULL);
        CREATE TABLE tresor_kv (k bytea PRIMARY KEY, v bytea NOT NULL);
        CREATE TABLE tresor_meta (id int PRIMARY KEY, generation bigint NOT NULL);
        INSERT INTO tresor_meta (id, generation) VALUES (1, 7);
        INSERT INTO tresor_kv (k, v) VALUES ('acct/1/x'::bytea, '\\x0001'::bytea);
        INSERT INTO tresor_schema (id, version) VALUES (1, 1);
        COMMIT;";
    let status = std::process::Command::new("psql")
        .args([&db.url, "-qv", "ON_ERROR_STOP=1", "-c", v1])
        .status()
        .unwrap();
    assert!(status.success());
    let a = PostgresStore::open(&db.url).unwrap();
    assert_eq!(a.known_generation(), 7);
    assert_eq!(a.known_marked_generation(), 0);
    let r = a.begin_read().unwrap();
    assert_eq!(r.get("acct/1/x").unwrap(), Some(vec![0, 1]));
    assert_eq!(r.snapshot_generation(), Some(7));
    drop(r);
    let version = std::process::Command::new("psql")
        .args([&db.url, "-tAc", "SELECT version FROM tresor_schema"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "2");
    let mut t = a.begin_write().unwrap();
    t.put("acct/1/iam/user/u", b"u").unwrap();
    t.mark();
    t.commit().unwrap();
    assert_eq!((a.known_generation(), a.known_marked_generation()), (8, 1));
    // Opening again applies nothing twice.
    drop(a);
    let b = PostgresStore::open(&db.url).unwrap();
    assert_eq!((b.known_generation(), b.known_marked_generation()), (8, 1));
}
