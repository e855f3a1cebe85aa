//! Group commit in the SQLite backend: logical write transactions share one physical COMMIT
//! and still behave, to the services and to readers, as one transaction each.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tresor_store::{SqliteOptions, SqliteStore, Store, StoreError};

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open_with(
        path,
        SqliteOptions {
            busy_timeout: Duration::from_secs(20),
            ..SqliteOptions::default()
        },
    )
    .unwrap()
}

/// A small deterministic generator (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn parse(v: Option<Vec<u8>>) -> u64 {
    v.map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

/// Threads run random transactions — puts and deletes of their own keys, an increment of a
/// shared counter, a mark naming the transaction — and commit or roll back at random, against
/// a model of what each committed. Checked throughout:
/// - inside a transaction, its own keys are the model's plus its own pending changes (nothing
///   of its earlier rolled-back transactions leaks back);
/// - as soon as `commit()` returns, a new read snapshot (another connection) sees the change;
/// - no reader and no later transaction ever sees the mark of a rolled-back transaction;
/// - the shared counter counts exactly the committed increments (no lost update between
///   savepoints of one group);
/// - at the end, and after reopening the file, the store equals the model.
#[test]
fn random_concurrent_transactions_with_commits_and_rollbacks_match_a_model() {
    const THREADS: u64 = 12;
    const TXNS: u64 = 60;
    const KEYS: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = open(&path);
    let models: Mutex<BTreeMap<String, Vec<u8>>> = Mutex::new(BTreeMap::new());
    let rolled_back: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let observed: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let increments = std::sync::atomic::AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Readers: record every mark they see.
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    let r = store.begin_read().unwrap();
                    let marks = r.scan("mark/", None, 1000).unwrap();
                    let mut seen = observed.lock();
                    for (_, v) in marks {
                        seen.insert(String::from_utf8(v).unwrap());
                    }
                }
            });
        }
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (store, models, rolled_back, observed, increments) =
                    (&store, &models, &rolled_back, &observed, &increments);
                s.spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1).wrapping_mul(0x1234_5678));
                    let mut mine: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for n in 0..TXNS {
                        let id = format!("{t}.{n}");
                        let mut txn = store.begin_write().unwrap();
                        // Marks other transactions left: never a rolled-back one.
                        for (_, v) in txn.scan("mark/", None, 1000).unwrap() {
                            observed.lock().insert(String::from_utf8(v).unwrap());
                        }
                        let mut pending = mine.clone();
                        for _ in 0..=rng.below(4) {
                            let key = format!("t/{t}/{}", rng.below(KEYS));
                            if rng.below(3) == 0 {
                                let existed = txn.delete(&key).unwrap();
                                assert_eq!(existed, pending.remove(&key).is_some(), "{key}");
                            } else {
                                let value = format!("{id}:{}", rng.next()).into_bytes();
                                txn.put(&key, &value).unwrap();
                                pending.insert(key, value);
                            }
                        }
                        let bump = rng.below(2) == 0;
                        if bump {
                            let n = parse(txn.get("shared/n").unwrap());
                            txn.put("shared/n", (n + 1).to_string().as_bytes()).unwrap();
                        }
                        txn.put(&format!("mark/{t}"), id.as_bytes()).unwrap();
                        // Read-your-writes, and exactly this thread's committed state under it.
                        let own = txn.scan(&format!("t/{t}/"), None, 100).unwrap();
                        assert_eq!(own, pending.clone().into_iter().collect::<Vec<_>>());
                        if rng.below(10) < 7 {
                            txn.commit().unwrap();
                            mine = pending;
                            if bump {
                                increments.fetch_add(1, Ordering::SeqCst);
                            }
                            // Durable and visible on acknowledgement.
                            let r = store.begin_read().unwrap();
                            let own = r.scan(&format!("t/{t}/"), None, 100).unwrap();
                            assert_eq!(own, mine.clone().into_iter().collect::<Vec<_>>());
                            assert_eq!(r.get(&format!("mark/{t}")).unwrap(), Some(id.into_bytes()));
                        } else {
                            drop(txn);
                            rolled_back.lock().insert(id);
                        }
                    }
                    models.lock().extend(mine);
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    let leaked: Vec<_> = observed
        .lock()
        .intersection(&rolled_back.lock())
        .cloned()
        .collect();
    assert!(leaked.is_empty(), "rolled-back marks seen: {leaked:?}");
    let expect_n = increments.load(Ordering::SeqCst);
    let check = |store: &SqliteStore| {
        let r = store.begin_read().unwrap();
        assert_eq!(parse(r.get("shared/n").unwrap()), expect_n);
        let all = r.scan("t/", None, 10_000).unwrap();
        assert_eq!(all, models.lock().clone().into_iter().collect::<Vec<_>>());
    };
    check(&store);
    drop(store);
    check(&open(&path));
}

/// Starts a write transaction on another thread, and returns once it waits for the writer.
fn queue_writer<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    store: &'s SqliteStore,
    key: &'static str,
) -> std::thread::ScopedJoinHandle<'s, Result<(), StoreError>> {
    let waiting = store.waiting_writers();
    let handle = s.spawn(move || {
        let mut txn = store.begin_write()?;
        txn.put(key, b"v")?;
        txn.commit()
    });
    wait_for_waiters(store, waiting + 1);
    handle
}

fn wait_for_waiters(store: &SqliteStore, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.waiting_writers() < n {
        assert!(std::time::Instant::now() < deadline, "no writer queued up");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn writers_that_wait_for_each_other_share_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("t.db"));
    let before = store.physical_commits();
    std::thread::scope(|s| {
        let mut first = store.begin_write().unwrap();
        first.put("a", b"v").unwrap();
        let b = queue_writer(s, &store, "b");
        let c = queue_writer(s, &store, "c");
        // Hands the writer to b and waits; b hands it to c; c, with nobody waiting, commits
        // all three.
        first.commit().unwrap();
        b.join().unwrap().unwrap();
        c.join().unwrap().unwrap();
    });
    assert_eq!(store.physical_commits() - before, 1);
    let r = store.begin_read().unwrap();
    assert_eq!(common_keys(&r.scan("", None, 10).unwrap()), ["a", "b", "c"]);
}

fn common_keys(rows: &[(String, Vec<u8>)]) -> Vec<&str> {
    rows.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn a_group_is_bounded_by_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(
        &dir.path().join("t.db"),
        SqliteOptions {
            group_commit_max: 1,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    let before = store.physical_commits();
    std::thread::scope(|s| {
        let mut first = store.begin_write().unwrap();
        first.put("a", b"v").unwrap();
        let b = queue_writer(s, &store, "b");
        first.commit().unwrap();
        b.join().unwrap().unwrap();
    });
    assert_eq!(store.physical_commits() - before, 2, "one COMMIT each");
}

/// The COMMIT of a group fails (as a failed fsync would make it): every member's `commit()`
/// reports it, none of the group's changes is visible or survives a reopen, and the store
/// works again for the next transaction.
#[test]
fn a_failed_group_commit_fails_every_member_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = open(&path);
    {
        let mut t = store.begin_write().unwrap();
        t.put("kept", b"1").unwrap();
        t.commit().unwrap();
    }
    let tag_before = store.begin_read().unwrap().snapshot_generation();
    store.fail_next_commits(1);
    let (a, b, c) = std::thread::scope(|s| {
        let mut first = store.begin_write().unwrap();
        first.put("a", b"v").unwrap();
        first.put("kept", b"changed").unwrap();
        let b = queue_writer(s, &store, "b");
        let c = queue_writer(s, &store, "c");
        let a = first.commit();
        (a, b.join().unwrap(), c.join().unwrap())
    });
    for (name, outcome) in [("a", a), ("b", b), ("c", c)] {
        let err = outcome.err().unwrap_or_else(|| panic!("{name} committed"));
        assert!(
            matches!(err, StoreError::GroupCommit { .. }),
            "{name}: {err}"
        );
        assert!(!err.is_retryable());
    }
    let check = |store: &SqliteStore| {
        let r = store.begin_read().unwrap();
        assert_eq!(common_keys(&r.scan("", None, 10).unwrap()), ["kept"]);
        assert_eq!(r.get("kept").unwrap().as_deref(), Some(&b"1"[..]));
    };
    check(&store);
    // A failed COMMIT changes nothing a reader can see, and moves the tag on anyway.
    assert_ne!(
        store.begin_read().unwrap().snapshot_generation(),
        tag_before
    );
    let mut t = store.begin_write().unwrap();
    t.put("after", b"1").unwrap();
    t.commit().unwrap();
    assert!(store.begin_read().unwrap().get("after").unwrap().is_some());
    drop(store);
    let store = open(&path);
    let r = store.begin_read().unwrap();
    assert_eq!(
        common_keys(&r.scan("", None, 10).unwrap()),
        ["after", "kept"]
    );
}

#[test]
fn a_failed_commit_of_a_lone_transaction_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("t.db"));
    store.fail_next_commits(1);
    let mut t = store.begin_write().unwrap();
    t.put("x", b"1").unwrap();
    assert!(t.commit().is_err());
    assert_eq!(store.begin_read().unwrap().get("x").unwrap(), None);
    let mut t = store.begin_write().unwrap();
    t.put("x", b"2").unwrap();
    t.commit().unwrap();
    assert_eq!(
        store.begin_read().unwrap().get("x").unwrap().as_deref(),
        Some(&b"2"[..])
    );
}

/// A transaction that read another's change which is not durable yet returns only after that
/// change is durable — even when it rolls back — so no answer rests on data that could still
/// be lost.
#[test]
fn a_rollback_that_saw_uncommitted_changes_waits_for_their_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("t.db"));
    std::thread::scope(|s| {
        let mut first = store.begin_write().unwrap();
        first.put("a", b"v").unwrap();
        let second = s.spawn(|| {
            let txn = store.begin_write().unwrap();
            let seen = txn.get("a").unwrap();
            drop(txn);
            // Dropped: by now what it saw is committed.
            let visible = store.begin_read().unwrap().get("a").unwrap();
            (seen, visible)
        });
        wait_for_waiters(&store, 1);
        first.commit().unwrap();
        let (seen, visible) = second.join().unwrap();
        assert_eq!(seen.as_deref(), Some(&b"v"[..]));
        assert_eq!(visible.as_deref(), Some(&b"v"[..]));
    });
}

#[test]
fn close_commits_the_open_group_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = open(&path);
    std::thread::scope(|s| {
        let mut first = store.begin_write().unwrap();
        first.put("a", b"v").unwrap();
        let b = queue_writer(s, &store, "b");
        first.commit().unwrap();
        b.join().unwrap().unwrap();
        store.close().unwrap();
    });
    drop(store);
    let store = open(&path);
    let r = store.begin_read().unwrap();
    assert_eq!(common_keys(&r.scan("", None, 10).unwrap()), ["a", "b"]);
}
