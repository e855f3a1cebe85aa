//! A store wrapper that counts committed changes to identity data (IAM entities, access keys,
//! STS sessions), so that caches of credentials and compiled identity policies can be reused
//! until — and only until — an identity change commits. The counter is bumped after the
//! backend's `commit()` has returned — with group commit, after the physical `COMMIT` that
//! made the change visible — and before the writing request answers, so the very next request
//! sees the change, and no cache can be refilled with the old data under the new count.
//!
//! Read snapshots keep the backend's tag ([`ReadTxn::snapshot_generation`]): the backend
//! numbers its own physical commits (SQLite: seqlock-style around each `COMMIT`, see
//! `tresor_store`'s sqlite module), because only it knows when a group of logical commits
//! becomes visible. A wrapper counting logical commits could not: under group commit a
//! logical commit changes nothing a reader can see, and the physical one happens later, on
//! another thread.
//!
//! Several processes on one store: when the backend shares a marked generation
//! ([`Store::shared_marked_generation`], PostgreSQL: a column of the generation row bumped by
//! the write transactions that [`WriteTxn::mark`] marks, learned from the other nodes by
//! LISTEN/NOTIFY, polling and [`Store::sync_generations`]), this wrapper marks every write
//! transaction that changes identity data, and the backend's counter is used instead of the
//! in-process one: like on a single node, only identity changes move it. It is never stale
//! for a request, because every authenticated request first syncs it with the database
//! ([`crate::Services::resolve_credential`]).
//!
//! The wrapper also notes which keys each commit wrote ([`KeyChanges`]), so that the cache of
//! decoded records keeps an entry across commits that did not touch its key: a write of one
//! secret no longer costs the reads of every other secret their cache. Only for backends
//! whose snapshot tags count this process's own commits ([`Store::visible_generation`]); on a
//! store shared by several processes, other processes' writes are not seen key by key, and
//! an entry is only used for snapshots of exactly its own tag.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use tresor_store::{ReadTxn, Store, StoreError, WriteTxn};

/// Whether a key holds identity data whose change must invalidate identity caches: the
/// deployment's own records (`sys/…`: accounts, access keys, sessions) and IAM's records of an
/// account (`acct/<account>/iam/…`). Matched by exact prefix, never by a substring: a secret
/// named `x/iam/y` is not identity data.
pub fn is_identity_key(key: &str) -> bool {
    if key.starts_with("sys/") {
        return true;
    }
    let mut parts = key.splitn(4, '/');
    parts.next() == Some("acct") && parts.next().is_some() && parts.next() == Some("iam")
}

/// A new STS session is written under a fresh, random access key id that no cache can hold
/// yet, and sessions are never rewritten: creating one invalidates nothing. (Deleting one
/// does.)
fn is_session_creation(key: &str) -> bool {
    key.starts_with(SESSION_PREFIX)
}

const SESSION_PREFIX: &str = "sys/session/";

/// How many keys [`KeyChanges`] remembers before it forgets them all (and, with them, every
/// cache entry tagged before that moment).
const MAX_CHANGED_KEYS: usize = 65_536;

/// When each key was last written by a commit of this process, in the backend's snapshot
/// tags ([`ReadTxn::snapshot_generation`]): a value read under tag `a` is still the value
/// under tag `b` when no commit that wrote its key became visible between them.
///
/// A commit marks its keys *pending* before the backend's `commit()` (so before any snapshot
/// can see it) and, once `commit()` has returned, records [`Store::visible_generation`] —
/// at least the tag of every snapshot that sees the change — as the key's last change. While
/// a key is pending, no entry of it is valid, whatever its tag. Bounded: past
/// [`MAX_CHANGED_KEYS`] the map is emptied and a floor raised; entries tagged below the floor
/// are then invalid.
#[derive(Default)]
pub struct KeyChanges {
    state: RwLock<Changes>,
}

#[derive(Default)]
struct Changes {
    /// Every change not in `keys` became visible at or before this tag.
    floor: u64,
    keys: HashMap<String, Change>,
}

#[derive(Default)]
struct Change {
    /// Commits of this key under way.
    pending: u32,
    /// The tag at which its last finished commit was visible.
    at: u64,
}

impl KeyChanges {
    /// Whether the value under `key` is the same in the snapshots tagged `a` and `b`.
    pub fn unchanged_between(&self, key: &str, a: u64, b: u64) -> bool {
        let low = a.min(b);
        let state = self.state.read();
        if low < state.floor {
            return false;
        }
        state
            .keys
            .get(key)
            .is_none_or(|c| c.pending == 0 && c.at <= low)
    }

    pub(crate) fn begin(&self, keys: &[String]) {
        let mut state = self.state.write();
        for key in keys {
            state.keys.entry(key.clone()).or_default().pending += 1;
        }
    }

    pub(crate) fn end(&self, keys: &[String], visible: u64) {
        let mut state = self.state.write();
        for key in keys {
            if let Some(c) = state.keys.get_mut(key) {
                c.pending = c.pending.saturating_sub(1);
                c.at = c.at.max(visible);
            }
        }
        if state.keys.len() > MAX_CHANGED_KEYS && visible != u64::MAX {
            state.keys.retain(|_, c| c.pending > 0);
            state.floor = state.floor.max(visible);
        }
    }
}

pub struct GenerationStore {
    inner: Arc<dyn Store>,
    generation: Arc<AtomicU64>,
    /// Whether this wrapper counts identity commits itself (no shared counter).
    counts: bool,
    /// The keys of committed changes, when the backend's tags allow per-key validity.
    changes: Option<Arc<KeyChanges>>,
}

impl GenerationStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        let shared = inner.shared_marked_generation();
        let changes = (inner.shared_generation().is_none()
            && shared.is_none()
            && inner.visible_generation().is_some())
        .then(|| Arc::new(KeyChanges::default()));
        GenerationStore {
            counts: shared.is_none(),
            generation: shared.unwrap_or_else(|| Arc::new(AtomicU64::new(0))),
            changes,
            inner,
        }
    }

    pub fn counter(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    /// Which keys changed when, for the record cache (`None` on a shared store).
    pub fn key_changes(&self) -> Option<Arc<KeyChanges>> {
        self.changes.clone()
    }
}

impl Store for GenerationStore {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        // The backend's snapshot, with the backend's tag.
        self.inner.begin_read()
    }

    fn begin_read_lazy(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        self.inner.begin_read_lazy()
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        Ok(Box::new(CountingTxn {
            inner: self.inner.begin_write()?,
            touched: false,
            generation: self.counts.then_some(&*self.generation),
            changes: self.changes.as_deref().map(|c| (c, &*self.inner)),
            written: Vec::new(),
        }))
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }

    fn shared_generation(&self) -> Option<Arc<AtomicU64>> {
        self.inner.shared_generation()
    }

    fn visible_generation(&self) -> Option<u64> {
        self.inner.visible_generation()
    }

    fn shared_marked_generation(&self) -> Option<Arc<AtomicU64>> {
        self.inner.shared_marked_generation()
    }

    fn sync_generations(&self) -> Result<(), StoreError> {
        self.inner.sync_generations()
    }

    fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.inner.counters()
    }
}

struct CountingTxn<'a> {
    inner: Box<dyn WriteTxn + 'a>,
    touched: bool,
    /// `None` when the backend's shared counter moves by itself on commit (of a transaction
    /// marked with [`WriteTxn::mark`]).
    generation: Option<&'a AtomicU64>,
    /// Where the written keys are noted at commit, and the backend that says when the commit
    /// became visible.
    changes: Option<(&'a KeyChanges, &'a dyn Store)>,
    written: Vec<String>,
}

impl ReadTxn for CountingTxn<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.scan(prefix, start_after, limit)
    }
}

impl WriteTxn for CountingTxn<'_> {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.touched |= is_identity_key(key) && !is_session_creation(key);
        self.inner.put(key, value)?;
        if self.changes.is_some() {
            self.written.push(key.to_string());
        }
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        self.touched |= is_identity_key(key);
        let existed = self.inner.delete(key)?;
        if self.changes.is_some() {
            self.written.push(key.to_string());
        }
        Ok(existed)
    }

    fn mark(&mut self) {
        self.touched = true;
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let CountingTxn {
            mut inner,
            touched,
            generation,
            changes,
            written,
        } = *self;
        if touched {
            // A shared backend bumps its marked generation in the same transaction.
            inner.mark();
        }
        let changes = changes.filter(|_| !written.is_empty());
        if let Some((changes, _)) = changes {
            changes.begin(&written);
        }
        // Returns once the change is visible to new snapshots (after its group's COMMIT).
        let committed = inner.commit();
        if let Some((changes, store)) = changes {
            // On failure nothing became visible; marking the keys changed anyway only costs
            // their cache entries.
            changes.end(&written, store.visible_generation().unwrap_or(u64::MAX));
        }
        committed?;
        if touched && let Some(generation) = generation {
            generation.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_store::MemoryStore;

    #[test]
    fn only_committed_identity_writes_bump_the_generation() {
        let store = GenerationStore::new(Arc::new(MemoryStore::new()));
        let counter = store.counter();
        let mut t = store.begin_write().unwrap();
        t.put("acct/1/region/us-east-1/secretsmanager/x", b"v")
            .unwrap();
        t.commit().unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), 0);
        let mut t = store.begin_write().unwrap();
        t.put("acct/1/iam/role/x", b"v").unwrap();
        drop(t); // rolled back
        assert_eq!(counter.load(Ordering::SeqCst), 0);
        let mut t = store.begin_write().unwrap();
        t.put("acct/1/iam/role/x", b"v").unwrap();
        t.commit().unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), 1);
        let mut t = store.begin_write().unwrap();
        assert!(t.delete("sys/session/ASIAX").is_ok());
        t.commit().unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn read_snapshots_are_tagged_and_every_committed_write_moves_the_tag() {
        let store = GenerationStore::new(Arc::new(MemoryStore::new()));
        let before = store.begin_read().unwrap().snapshot_generation();
        assert!(before.is_some());
        let mut t = store.begin_write().unwrap();
        assert_eq!(
            t.snapshot_generation(),
            None,
            "a write transaction sees uncommitted data"
        );
        t.put("acct/1/region/r/kms/k", b"v").unwrap();
        drop(t);
        assert_eq!(
            store.begin_read().unwrap().snapshot_generation(),
            before,
            "rollback"
        );
        let mut t = store.begin_write().unwrap();
        t.put("acct/1/region/r/kms/k", b"v").unwrap();
        t.commit().unwrap();
        let after = store.begin_read().unwrap().snapshot_generation();
        assert_ne!(after, before);
        let t = store.begin_write().unwrap();
        t.commit().unwrap();
        assert_eq!(
            store.begin_read().unwrap().snapshot_generation(),
            after,
            "an empty commit changes nothing"
        );
        // The same through the SQLite backend, whose commits are grouped.
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir);
        let before = store.begin_read().unwrap().snapshot_generation();
        assert!(before.is_some());
        let mut t = store.begin_write().unwrap();
        t.put("k", b"v").unwrap();
        drop(t);
        assert_eq!(store.begin_read().unwrap().snapshot_generation(), before);
        let mut t = store.begin_write().unwrap();
        t.put("k", b"v").unwrap();
        t.commit().unwrap();
        let after = store.begin_read().unwrap().snapshot_generation();
        assert!(after.is_some() && after != before);
        store.begin_write().unwrap().commit().unwrap();
        assert_eq!(store.begin_read().unwrap().snapshot_generation(), after);
    }

    fn sqlite(dir: &tempfile::TempDir) -> Arc<GenerationStore> {
        let store = tresor_store::SqliteStore::open(&dir.path().join("t.db")).unwrap();
        Arc::new(GenerationStore::new(Arc::new(store)))
    }

    /// Many writers (so that the SQLite backend groups their commits and hands its writer
    /// from one logical transaction to the next while a group is still uncommitted) and
    /// readers: two snapshots with the same tag must see the same data. Every transaction
    /// writes one counter of its own and the shared `n`; a snapshot's data is summed up as
    /// the values it reads.
    #[test]
    fn snapshots_sharing_a_tag_see_the_same_data_under_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir);
        const WRITERS: u64 = 8;
        const COMMITS: u64 = 60;
        let seen = parking_lot::Mutex::new(std::collections::HashMap::<u64, Vec<Vec<u8>>>::new());
        let done = std::sync::atomic::AtomicBool::new(false);
        let tagged = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    while !done.load(Ordering::SeqCst) {
                        let r = store.begin_read().unwrap();
                        let Some(tag) = r.snapshot_generation() else {
                            continue;
                        };
                        let data: Vec<Vec<u8>> = r
                            .scan("", None, 1000)
                            .unwrap()
                            .into_iter()
                            .flat_map(|(k, v)| [k.into_bytes(), v])
                            .collect();
                        tagged.fetch_add(1, Ordering::SeqCst);
                        let mut seen = seen.lock();
                        let first = seen.entry(tag).or_insert_with(|| data.clone());
                        assert_eq!(*first, data, "two snapshots tagged {tag} differ");
                    }
                });
            }
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let store = &store;
                    s.spawn(move || {
                        for i in 0..COMMITS {
                            let mut t = store.begin_write().unwrap();
                            let n = t
                                .get("n")
                                .unwrap()
                                .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
                                + 1u64;
                            t.put("n", n.to_string().as_bytes()).unwrap();
                            t.put(&format!("w/{w}"), i.to_string().as_bytes()).unwrap();
                            if i % 5 == 4 {
                                drop(t); // rolled back: must change no tag's data
                            } else {
                                t.commit().unwrap();
                            }
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        assert!(
            tagged.load(Ordering::SeqCst) > 0,
            "no snapshot was ever tagged"
        );
        let r = store.begin_read().unwrap();
        let n = r.get("n").unwrap().unwrap();
        assert_eq!(n, (WRITERS * COMMITS * 4 / 5).to_string().into_bytes());
    }

    /// Under group commit, an identity change's commit returns only after the change is
    /// visible, and the identity generation has moved by then: a request that starts after
    /// the acknowledgement can never cache the old identity data under the new generation.
    #[test]
    fn an_identity_commit_is_visible_and_counted_when_commit_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir);
        let counter = store.counter();
        std::thread::scope(|s| {
            for w in 0..8u64 {
                let store = &store;
                let counter = &counter;
                s.spawn(move || {
                    for i in 0..40u64 {
                        let key = format!("acct/1/iam/user/u{w}");
                        let value = i.to_string();
                        let before = counter.load(Ordering::SeqCst);
                        let mut t = store.begin_write().unwrap();
                        t.put(&key, value.as_bytes()).unwrap();
                        t.commit().unwrap();
                        assert!(counter.load(Ordering::SeqCst) > before);
                        let r = store.begin_read().unwrap();
                        assert_eq!(r.get(&key).unwrap(), Some(value.into_bytes()));
                    }
                });
            }
        });
        assert_eq!(counter.load(Ordering::SeqCst), 8 * 40);
    }

    /// On a store shared by several processes (PostgreSQL) the identity generation is the
    /// backend's marked generation: moved by identity changes of any node, and by nothing
    /// else (the all-commits generation moves on every change).
    #[test]
    fn on_postgres_only_identity_changes_of_any_node_move_the_identity_generation() {
        let db = tresor_store::testing::TestDatabase::create();
        let node = |url: &str| {
            GenerationStore::new(Arc::new(tresor_store::PostgresStore::open(url).unwrap()))
        };
        let (a, b) = (node(&db.url), node(&db.url));
        let (a_identity, b_identity) = (a.counter(), b.counter());
        let b_all = b.shared_generation().unwrap();
        let write = |store: &GenerationStore, key: &str| {
            let mut t = store.begin_write().unwrap();
            t.put(key, b"v").unwrap();
            t.commit().unwrap();
        };
        let identity = || {
            b.sync_generations().unwrap();
            (
                a_identity.load(Ordering::SeqCst),
                b_identity.load(Ordering::SeqCst),
            )
        };
        let all_before = b_all.load(Ordering::SeqCst);
        write(&a, "acct/1/region/r/secretsmanager/x/iam/y");
        write(&a, "sys/session/ASIANEW");
        assert_eq!(identity(), (0, 0), "no identity change");
        assert_eq!(b_all.load(Ordering::SeqCst), all_before + 2);
        write(&a, "acct/1/iam/user/u");
        assert_eq!(identity(), (1, 1), "an identity change on a, seen by b");
        let mut t = b.begin_write().unwrap();
        assert!(t.delete("sys/session/ASIANEW").unwrap());
        t.commit().unwrap();
        a.sync_generations().unwrap();
        assert_eq!(identity(), (2, 2), "an identity change on b, seen by a");
    }

    #[test]
    fn identity_keys_are_matched_by_exact_prefix_and_new_sessions_invalidate_nothing() {
        assert!(is_identity_key("sys/accesskey/AKIA1"));
        assert!(is_identity_key("acct/123456789012/iam/role/x"));
        assert!(!is_identity_key(
            "acct/123456789012/region/us-east-1/secretsmanager/x/iam/y"
        ));
        assert!(!is_identity_key("acct/1/region/r/ssm/param/iam/z"));
        let store = GenerationStore::new(Arc::new(MemoryStore::new()));
        let counter = store.counter();
        let mut t = store.begin_write().unwrap();
        t.put("acct/1/region/r/secretsmanager/x/iam/y", b"v")
            .unwrap();
        t.put("sys/session/ASIANEW", b"v").unwrap();
        t.commit().unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), 0);
    }
}
