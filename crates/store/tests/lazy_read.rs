//! `Store::begin_read_lazy` on SQLite: no snapshot until the first read, one consistent
//! snapshot from then on, and a tag (`snapshot_generation`) that never names data it does not
//! show.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use tresor_store::{SqliteStore, Store};

fn put(store: &SqliteStore, key: &str, value: &[u8]) {
    let mut t = store.begin_write().unwrap();
    t.put(key, value).unwrap();
    t.commit().unwrap();
}

#[test]
fn a_lazy_read_keeps_its_tag_when_nothing_committed_in_between() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    put(&store, "k", b"1");
    let eager = store.begin_read().unwrap().snapshot_generation();
    let lazy = store.begin_read_lazy().unwrap();
    assert_eq!(lazy.snapshot_generation(), eager);
    assert_eq!(lazy.get("k").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        lazy.snapshot_generation(),
        eager,
        "no commit: the tag stays"
    );
}

#[test]
fn a_handed_out_tag_is_withdrawn_when_the_snapshot_opens_on_later_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    put(&store, "k", b"1");
    let lazy = store.begin_read_lazy().unwrap();
    let tag = lazy.snapshot_generation();
    assert!(tag.is_some());
    put(&store, "k", b"2");
    // The snapshot opens now: a state no older than the begin call, consistent from here on.
    assert_eq!(lazy.get("k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(
        lazy.snapshot_generation(),
        None,
        "data newer than the tag handed out must not be cached under it"
    );
    put(&store, "k", b"3");
    assert_eq!(
        lazy.get("k").unwrap().as_deref(),
        Some(&b"2"[..]),
        "one snapshot"
    );
}

#[test]
fn a_tag_never_handed_out_becomes_the_snapshots_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    put(&store, "k", b"1");
    let lazy = store.begin_read_lazy().unwrap();
    put(&store, "k", b"2");
    assert_eq!(lazy.get("k").unwrap().as_deref(), Some(&b"2"[..]));
    let now = store.begin_read().unwrap().snapshot_generation();
    assert!(now.is_some());
    assert_eq!(lazy.snapshot_generation(), now);
}

#[test]
fn a_lazy_read_after_close_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    store.close().unwrap();
    assert!(store.begin_read_lazy().is_err());
}
