//! A store wrapper that counts committed changes to identity data (IAM entities, access keys,
//! STS sessions), so that caches of credentials and compiled identity policies can be reused
//! until — and only until — an identity change commits. The counter is bumped after the
//! commit and before the writing request answers, so the very next request sees the change.
//!
//! A second counter numbers every committed write of any kind, seqlock-style: a write
//! transaction moves it to odd just before its commit and to even right after. A read
//! transaction reads it before and after taking its snapshot; when both reads give the same
//! even number, no commit overlapped the snapshot, and every snapshot tagged with that number
//! sees exactly the same data ([`ReadTxn::snapshot_generation`]) — so a decoded record
//! cached under the tag can be served to any of them. Otherwise the snapshot is untagged and
//! nothing is cached through it.
//!
//! The two bumps of one commit happen under a lock that other commits take too, so a reader
//! can never see an even count while some COMMIT is still under way.
//!
//! Single-process only: several tresor nodes sharing one PostgreSQL store would need the
//! counter in the store (a later backend's concern).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
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

pub struct GenerationStore {
    inner: Arc<dyn Store>,
    generation: Arc<AtomicU64>,
    writes: AtomicU64,
    /// Held across bump–commit–bump, so that the two bumps of one commit are never
    /// interleaved with another writer's: a backend may hand its writer to the next
    /// transaction inside `commit()`, and without this the next writer's first bump could make
    /// the counter even while the previous COMMIT is still running.
    committing: Mutex<()>,
}

impl GenerationStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        GenerationStore {
            inner,
            generation: Arc::new(AtomicU64::new(0)),
            writes: AtomicU64::new(0),
            committing: Mutex::new(()),
        }
    }

    pub fn counter(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }
}

impl Store for GenerationStore {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        let before = self.writes.load(Ordering::SeqCst);
        let inner = self.inner.begin_read()?;
        let after = self.writes.load(Ordering::SeqCst);
        let generation = (before == after && before.is_multiple_of(2)).then_some(before);
        Ok(Box::new(TaggedReadTxn { inner, generation }))
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        Ok(Box::new(CountingTxn {
            inner: self.inner.begin_write()?,
            touched: false,
            wrote: false,
            generation: &self.generation,
            writes: &self.writes,
            committing: &self.committing,
        }))
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }
}

struct TaggedReadTxn<'a> {
    inner: Box<dyn ReadTxn + 'a>,
    generation: Option<u64>,
}

impl ReadTxn for TaggedReadTxn<'_> {
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

    fn snapshot_generation(&self) -> Option<u64> {
        self.generation
    }
}

struct CountingTxn<'a> {
    inner: Box<dyn WriteTxn + 'a>,
    touched: bool,
    wrote: bool,
    generation: &'a AtomicU64,
    writes: &'a AtomicU64,
    committing: &'a Mutex<()>,
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
        self.wrote = true;
        self.inner.put(key, value)
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        self.touched |= is_identity_key(key);
        self.wrote = true;
        self.inner.delete(key)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let CountingTxn {
            inner,
            touched,
            wrote,
            generation,
            writes,
            committing,
        } = *self;
        if !wrote {
            return inner.commit();
        }
        let committed = {
            let _one_commit_at_a_time = committing.lock();
            writes.fetch_add(1, Ordering::SeqCst); // odd: a commit is under way
            let committed = inner.commit();
            writes.fetch_add(1, Ordering::SeqCst); // even again, whatever the outcome
            committed
        };
        committed?;
        if touched {
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
    }

    /// A backend that hands its writer to the next transaction inside `commit()` (as the
    /// SQLite store does, from its transaction's `Drop`) and then lingers before returning —
    /// the window in which the next writer used to make the counter even mid-commit.
    struct HandOverStore {
        inner: MemoryStore,
        linger: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
        handed_over: std::sync::mpsc::SyncSender<()>,
    }

    struct HandOverTxn<'a> {
        inner: Option<Box<dyn WriteTxn + 'a>>,
        store: &'a HandOverStore,
    }

    impl Store for HandOverStore {
        fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
            self.inner.begin_read()
        }
        fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
            Ok(Box::new(HandOverTxn {
                inner: Some(self.inner.begin_write()?),
                store: self,
            }))
        }
        fn describe(&self) -> String {
            "hand-over".into()
        }
        fn close(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    impl ReadTxn for HandOverTxn<'_> {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.as_ref().map_or(Ok(None), |t| t.get(key))
        }
        fn scan(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.inner
                .as_ref()
                .map_or(Ok(Vec::new()), |t| t.scan(prefix, start_after, limit))
        }
    }

    impl WriteTxn for HandOverTxn<'_> {
        fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            match self.inner.as_mut() {
                Some(t) => t.put(key, value),
                None => Ok(()),
            }
        }
        fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
            self.inner.as_mut().map_or(Ok(false), |t| t.delete(key))
        }
        fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
            if let Some(t) = self.inner.take() {
                t.commit()?; // the writer is free for the next transaction from here on
            }
            let _ = self.store.handed_over.send(());
            let _ = self.store.linger.lock().unwrap().recv();
            Ok(())
        }
    }

    #[test]
    fn no_snapshot_is_tagged_while_a_commit_is_under_way_even_when_the_writer_is_handed_over_early()
    {
        let (handed_over, handed_over_rx) = std::sync::mpsc::sync_channel(8);
        let (release, linger) = std::sync::mpsc::channel();
        let store = Arc::new(GenerationStore::new(Arc::new(HandOverStore {
            inner: MemoryStore::new(),
            linger: std::sync::Mutex::new(linger),
            handed_over,
        })));
        let a = {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut t = store.begin_write().unwrap();
                t.put("acct/1/region/r/secretsmanager/a", b"1").unwrap();
                t.commit().unwrap();
            })
        };
        // A has committed and handed the writer over, but its commit() has not returned.
        handed_over_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let b = {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut t = store.begin_write().unwrap();
                t.put("acct/1/region/r/secretsmanager/b", b"2").unwrap();
                t.commit().unwrap();
            })
        };
        // Whatever B does meanwhile, a reader must not get a tagged snapshot: some commit is
        // still under way, so two snapshots with the same tag could see different data.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < deadline {
            assert_eq!(store.begin_read().unwrap().snapshot_generation(), None);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        release.send(()).unwrap();
        handed_over_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        release.send(()).unwrap();
        a.join().unwrap();
        b.join().unwrap();
        let tag = store.begin_read().unwrap().snapshot_generation();
        assert_eq!(tag, Some(4), "two commits, two bumps each");
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
