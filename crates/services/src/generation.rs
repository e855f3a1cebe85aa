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
//! Single-process only: several tresor nodes sharing one PostgreSQL store would need the
//! counter in the store (a later backend's concern).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tresor_store::{ReadTxn, Store, StoreError, WriteTxn};

/// Whether a key holds identity data whose change must invalidate identity caches.
pub fn is_identity_key(key: &str) -> bool {
    key.starts_with("sys/") || key.contains("/iam/")
}

pub struct GenerationStore {
    inner: Arc<dyn Store>,
    generation: Arc<AtomicU64>,
    writes: AtomicU64,
}

impl GenerationStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        GenerationStore {
            inner,
            generation: Arc::new(AtomicU64::new(0)),
            writes: AtomicU64::new(0),
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
        self.touched |= is_identity_key(key);
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
        } = *self;
        if !wrote {
            return inner.commit();
        }
        writes.fetch_add(1, Ordering::SeqCst); // odd: a commit is under way
        let committed = inner.commit();
        writes.fetch_add(1, Ordering::SeqCst); // even again, whatever the outcome
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
}
