//! The `Store` contract, checked the same way against every backend.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, keys, put_all};
use tresor_store::StoreError;

const SHORT: Duration = Duration::from_millis(200);

fn get_of_a_missing_key_is_none(f: Fixture) {
    let txn = f.store.begin_read().unwrap();
    assert_eq!(txn.get("nope").unwrap(), None);
    let txn = f.store.begin_write().unwrap();
    assert_eq!(txn.get("nope").unwrap(), None);
}

fn write_transaction_sees_its_own_writes_and_commit_publishes_them(f: Fixture) {
    let mut txn = f.store.begin_write().unwrap();
    txn.put("a", b"1").unwrap();
    assert_eq!(txn.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    txn.put("a", b"2").unwrap();
    assert_eq!(txn.get("a").unwrap().as_deref(), Some(&b"2"[..]));
    txn.commit().unwrap();
    let read = f.store.begin_read().unwrap();
    assert_eq!(read.get("a").unwrap().as_deref(), Some(&b"2"[..]));
}

fn put_replaces_a_committed_value(f: Fixture) {
    put_all(&*f.store, &[("k", b"old")]);
    put_all(&*f.store, &[("k", b"new")]);
    let read = f.store.begin_read().unwrap();
    assert_eq!(read.get("k").unwrap().as_deref(), Some(&b"new"[..]));
}

fn delete_reports_whether_the_key_existed(f: Fixture) {
    put_all(&*f.store, &[("committed", b"x")]);
    let mut txn = f.store.begin_write().unwrap();
    assert!(txn.delete("committed").unwrap());
    assert!(!txn.delete("committed").unwrap());
    assert!(!txn.delete("missing").unwrap());
    txn.put("pending", b"y").unwrap();
    assert!(txn.delete("pending").unwrap());
    assert_eq!(txn.get("pending").unwrap(), None);
    txn.commit().unwrap();
    let read = f.store.begin_read().unwrap();
    assert_eq!(read.get("committed").unwrap(), None);
    assert_eq!(read.get("pending").unwrap(), None);
}

fn empty_and_binary_values_and_unusual_keys_round_trip(f: Fixture) {
    let all_bytes: Vec<u8> = (0..=255).collect();
    let keys = ["", " ", "é/ü/∑", "\u{10FFFF}", "a\0b", "😀"];
    let mut txn = f.store.begin_write().unwrap();
    txn.put("empty", b"").unwrap();
    txn.put("bytes", &all_bytes).unwrap();
    for k in keys {
        txn.put(k, k.as_bytes()).unwrap();
    }
    txn.commit().unwrap();
    let read = f.store.begin_read().unwrap();
    assert_eq!(read.get("empty").unwrap(), Some(Vec::new()));
    assert_eq!(read.get("bytes").unwrap(), Some(all_bytes));
    for k in keys {
        assert_eq!(read.get(k).unwrap().as_deref(), Some(k.as_bytes()), "{k:?}");
    }
    let everything = read.scan("", None, usize::MAX).unwrap();
    let mut sorted = everything.clone();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    assert_eq!(everything, sorted, "scan order is bytewise");
}

fn scan_returns_exactly_the_prefixed_keys_in_bytewise_order(f: Fixture) {
    // Neighbours of "a/" on both sides: '.' < '/' < '0'.
    put_all(
        &*f.store,
        &[
            ("a0", b"n"),
            ("a/b", b"y"),
            ("a.", b"n"),
            ("a/", b"y"),
            ("a//", b"y"),
            ("a/a", b"y"),
            ("a", b"n"),
            ("b/a", b"n"),
            ("a/\u{10FFFF}", b"y"),
        ],
    );
    let read = f.store.begin_read().unwrap();
    let found = read.scan("a/", None, 100).unwrap();
    assert_eq!(keys(&found), ["a/", "a//", "a/a", "a/b", "a/\u{10FFFF}"]);
    assert!(found.iter().all(|(_, v)| v == b"y"));
}

fn scan_pages_with_start_after_and_limit(f: Fixture) {
    let names: Vec<String> = (0..25).map(|i| format!("p/{i:02}")).collect();
    let mut txn = f.store.begin_write().unwrap();
    for n in &names {
        txn.put(n, n.as_bytes()).unwrap();
    }
    txn.put("q", b"").unwrap();
    txn.commit().unwrap();

    let read = f.store.begin_read().unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = read.scan("p/", after.as_deref(), 7).unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|(k, _)| k.clone());
        seen.extend(page.into_iter().map(|(k, _)| k));
    }
    assert_eq!(seen, names);

    assert!(read.scan("p/", None, 0).unwrap().is_empty());
    // start_after before the prefix behaves like no start_after.
    assert_eq!(
        keys(&read.scan("p/", Some("a"), 2).unwrap()),
        ["p/00", "p/01"]
    );
    // start_after between keys, and equal to a key (exclusive).
    assert_eq!(keys(&read.scan("p/", Some("p/05x"), 1).unwrap()), ["p/06"]);
    assert_eq!(keys(&read.scan("p/", Some("p/05"), 1).unwrap()), ["p/06"]);
    // start_after past the prefix's range.
    assert!(read.scan("p/", Some("p0"), 10).unwrap().is_empty());
    assert!(read.scan("p/", Some("z"), 10).unwrap().is_empty());
}

fn scan_rev_reads_the_prefixed_keys_backwards_in_pages(f: Fixture) {
    let names: Vec<String> = (0..25).map(|i| format!("p/{i:02}")).collect();
    let mut txn = f.store.begin_write().unwrap();
    for n in &names {
        txn.put(n, n.as_bytes()).unwrap();
    }
    txn.put("p", b"").unwrap();
    txn.put("q", b"").unwrap();
    txn.put("p0", b"").unwrap();
    txn.commit().unwrap();
    let read = f.store.begin_read().unwrap();
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = read.scan_rev("p/", before.as_deref(), 7).unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        before = page.last().map(|(k, _)| k.clone());
        seen.extend(page.into_iter().map(|(k, v)| {
            assert_eq!(k.as_bytes(), &v[..]);
            k
        }));
    }
    let mut expected = names.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    assert_eq!(
        keys(&read.scan_rev("p/", Some("p/10"), 2).unwrap()),
        ["p/09", "p/08"]
    );
    // A `before` past the prefix is no tighter than the prefix.
    assert_eq!(keys(&read.scan_rev("p/", Some("z"), 1).unwrap()), ["p/24"]);
    assert!(read.scan_rev("p/", None, 0).unwrap().is_empty());
}

fn scan_handles_prefixes_at_utf8_boundaries(f: Fixture) {
    let entries = [
        "\u{7f}",
        "\u{7f}a",
        "\u{80}",
        "\u{7FF}",
        "\u{800}",
        "\u{D7FF}",
        "\u{D7FF}x",
        "\u{E000}",
        "\u{FFFF}",
        "\u{10000}",
        "\u{10FFFF}",
        "\u{10FFFF}\u{10FFFF}",
        "x\u{10FFFF}",
        "y",
    ];
    let mut txn = f.store.begin_write().unwrap();
    for k in entries {
        txn.put(k, b"").unwrap();
    }
    txn.commit().unwrap();
    let read = f.store.begin_read().unwrap();
    for prefix in [
        "\u{7f}",
        "\u{7FF}",
        "\u{D7FF}",
        "\u{FFFF}",
        "\u{10FFFF}",
        "x\u{10FFFF}",
        "",
    ] {
        let want: Vec<&str> = {
            let mut v: Vec<&str> = entries
                .iter()
                .copied()
                .filter(|k| k.starts_with(prefix))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            keys(&read.scan(prefix, None, 100).unwrap()),
            want,
            "{prefix:?}"
        );
    }
}

fn scan_in_a_write_transaction_merges_pending_changes(f: Fixture) {
    put_all(&*f.store, &[("s/1", b"a"), ("s/2", b"b"), ("s/3", b"c")]);
    let mut txn = f.store.begin_write().unwrap();
    txn.delete("s/2").unwrap();
    txn.put("s/3", b"C").unwrap();
    txn.put("s/0", b"z").unwrap();
    txn.put("s/4", b"d").unwrap();
    let found = txn.scan("s/", None, 10).unwrap();
    assert_eq!(
        found,
        vec![
            ("s/0".to_owned(), b"z".to_vec()),
            ("s/1".to_owned(), b"a".to_vec()),
            ("s/3".to_owned(), b"C".to_vec()),
            ("s/4".to_owned(), b"d".to_vec()),
        ]
    );
    assert_eq!(
        keys(&txn.scan("s/", Some("s/1"), 2).unwrap()),
        ["s/3", "s/4"]
    );
}

fn dropping_a_write_transaction_rolls_it_back(f: Fixture) {
    put_all(&*f.store, &[("keep", b"1"), ("gone?", b"2")]);
    {
        let mut txn = f.store.begin_write().unwrap();
        txn.put("keep", b"changed").unwrap();
        txn.put("new", b"3").unwrap();
        txn.delete("gone?").unwrap();
    }
    let read = f.store.begin_read().unwrap();
    assert_eq!(read.get("keep").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(read.get("new").unwrap(), None);
    assert_eq!(read.get("gone?").unwrap().as_deref(), Some(&b"2"[..]));
    // The writer is free again.
    f.store.begin_write().unwrap().commit().unwrap();
}

fn a_read_transaction_keeps_its_snapshot(f: Fixture) {
    put_all(&*f.store, &[("k", b"before"), ("del", b"x")]);
    let old = f.store.begin_read().unwrap();
    let mut txn = f.store.begin_write().unwrap();
    txn.put("k", b"after").unwrap();
    txn.put("added", b"y").unwrap();
    txn.delete("del").unwrap();
    // Uncommitted writes are invisible to readers.
    assert_eq!(old.get("k").unwrap().as_deref(), Some(&b"before"[..]));
    txn.commit().unwrap();
    // Committed after the reader began: still invisible to it.
    assert_eq!(old.get("k").unwrap().as_deref(), Some(&b"before"[..]));
    assert_eq!(old.get("added").unwrap(), None);
    assert_eq!(old.get("del").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(keys(&old.scan("", None, 10).unwrap()), ["del", "k"]);
    let new = f.store.begin_read().unwrap();
    assert_eq!(new.get("k").unwrap().as_deref(), Some(&b"after"[..]));
    assert_eq!(keys(&new.scan("", None, 10).unwrap()), ["added", "k"]);
}

fn the_snapshot_is_taken_at_begin_read_not_at_the_first_read(f: Fixture) {
    let read = f.store.begin_read().unwrap();
    put_all(&*f.store, &[("late", b"1")]);
    assert_eq!(read.get("late").unwrap(), None);
}

fn a_second_writer_waits_then_times_out_with_busy(f: Fixture) {
    let store = &*f.store;
    let first = store.begin_write().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            let err = store.begin_write().err().unwrap();
            assert!(matches!(err, StoreError::Busy { .. }), "{err}");
            assert!(err.is_retryable());
            assert!(start.elapsed() >= SHORT.mul_f32(0.9));
        });
    });
    drop(first);
    store.begin_write().unwrap();
}

fn a_waiting_writer_proceeds_when_the_first_commits(f: Fixture) {
    let store = &*f.store;
    let mut first = store.begin_write().unwrap();
    first.put("n", b"1").unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut txn = store.begin_write().unwrap();
            // It starts after the first commit, so it sees it.
            assert_eq!(txn.get("n").unwrap().as_deref(), Some(&b"1"[..]));
            txn.put("n", b"2").unwrap();
            txn.commit().unwrap();
        });
        std::thread::sleep(SHORT / 4);
        first.commit().unwrap();
        waiter.join().unwrap();
    });
    let read = store.begin_read().unwrap();
    assert_eq!(read.get("n").unwrap().as_deref(), Some(&b"2"[..]));
}

fn transactions_can_move_between_threads(f: Fixture) {
    fn assert_send<T: Send>(_: &T) {}
    let read = f.store.begin_read().unwrap();
    assert_send(&read);
    std::thread::scope(|s| {
        s.spawn(move || assert_eq!(read.get("x").unwrap(), None));
    });
    let mut write = f.store.begin_write().unwrap();
    assert_send(&write);
    std::thread::scope(|s| {
        s.spawn(move || {
            write.put("x", b"1").unwrap();
            write.commit().unwrap();
        });
    });
    assert!(f.store.begin_read().unwrap().get("x").unwrap().is_some());
}

fn close_refuses_new_transactions(f: Fixture) {
    put_all(&*f.store, &[("k", b"v")]);
    assert!(!f.store.describe().is_empty());
    f.store.close().unwrap();
    assert!(matches!(
        f.store.begin_read().err(),
        Some(StoreError::Closed)
    ));
    assert!(matches!(
        f.store.begin_write().err(),
        Some(StoreError::Closed)
    ));
    f.store.close().unwrap();
}

fn errors_never_show_values(f: Fixture) {
    let _first = f.store.begin_write().unwrap();
    let err = std::thread::scope(|s| s.spawn(|| f.store.begin_write().err()).join().unwrap());
    let text = format!("{} {:?}", err.as_ref().unwrap(), err.as_ref().unwrap());
    assert!(text.contains("busy"), "{text}");
}

macro_rules! conformance {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    super::$case(super::common::$backend(super::SHORT));
                }
            )*
        }
    };
    ($($backend:ident),*) => {
        $(conformance!($backend:
            get_of_a_missing_key_is_none,
            write_transaction_sees_its_own_writes_and_commit_publishes_them,
            put_replaces_a_committed_value,
            delete_reports_whether_the_key_existed,
            empty_and_binary_values_and_unusual_keys_round_trip,
            scan_returns_exactly_the_prefixed_keys_in_bytewise_order,
            scan_pages_with_start_after_and_limit,
            scan_handles_prefixes_at_utf8_boundaries,
            scan_rev_reads_the_prefixed_keys_backwards_in_pages,
            scan_in_a_write_transaction_merges_pending_changes,
            dropping_a_write_transaction_rolls_it_back,
            a_read_transaction_keeps_its_snapshot,
            the_snapshot_is_taken_at_begin_read_not_at_the_first_read,
            a_second_writer_waits_then_times_out_with_busy,
            a_waiting_writer_proceeds_when_the_first_commits,
            transactions_can_move_between_threads,
            close_refuses_new_transactions,
            errors_never_show_values,
        );)*
    };
}

conformance!(memory, sqlite, sqlite_large_values, postgres);
