//! Readers running while a writer commits: no errors, and every reader sees whole commits.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Fixture;

/// The writer keeps `c/a` and `c/b` equal and bumps both in one transaction per commit; a
/// reader that saw them differ would have observed half a commit.
fn readers_see_only_whole_commits_while_one_thread_writes(f: Fixture) {
    let store = &*f.store;
    common::put_all(store, &[("c/a", b"0"), ("c/b", b"0")]);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut reads = 0u64;
                    let mut last_seen = 0u64;
                    while !done.load(Ordering::Relaxed) || reads == 0 {
                        let txn = store.begin_read().unwrap();
                        let a = txn.get("c/a").unwrap().unwrap();
                        let rows = txn.scan("c/", None, 10).unwrap();
                        assert_eq!(rows.len(), 2);
                        assert_eq!(rows[0].1, a);
                        assert_eq!(rows[1].1, a);
                        let n: u64 = String::from_utf8(a).unwrap().parse().unwrap();
                        assert!(n >= last_seen, "time went backwards");
                        last_seen = n;
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for i in 1..=200u64 {
            let mut txn = store.begin_write().unwrap();
            let value = i.to_string();
            txn.put("c/a", value.as_bytes()).unwrap();
            txn.put("c/b", value.as_bytes()).unwrap();
            txn.commit().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    });
    let txn = store.begin_read().unwrap();
    assert_eq!(txn.get("c/b").unwrap().as_deref(), Some(&b"200"[..]));
}

#[test]
fn memory_readers_see_only_whole_commits_while_one_thread_writes() {
    readers_see_only_whole_commits_while_one_thread_writes(common::memory(Duration::from_secs(5)));
}

#[test]
fn sqlite_readers_see_only_whole_commits_while_one_thread_writes() {
    readers_see_only_whole_commits_while_one_thread_writes(common::sqlite(Duration::from_secs(5)));
}

#[test]
fn postgres_readers_see_only_whole_commits_while_one_thread_writes() {
    readers_see_only_whole_commits_while_one_thread_writes(common::postgres(Duration::from_secs(
        5,
    )));
}
