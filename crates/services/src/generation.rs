//! A store wrapper that counts committed changes to identity data (IAM entities, access keys,
//! STS sessions), so that caches of credentials and compiled identity policies can be reused
//! until — and only until — an identity change commits. The counter is bumped after the
//! commit and before the writing request answers, so the very next request sees the change.
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
}

impl GenerationStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        GenerationStore {
            inner,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn counter(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }
}

impl Store for GenerationStore {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        self.inner.begin_read()
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        Ok(Box::new(CountingTxn {
            inner: self.inner.begin_write()?,
            touched: false,
            generation: &self.generation,
        }))
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }
}

struct CountingTxn<'a> {
    inner: Box<dyn WriteTxn + 'a>,
    touched: bool,
    generation: &'a AtomicU64,
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
        self.inner.put(key, value)
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        self.touched |= is_identity_key(key);
        self.inner.delete(key)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let CountingTxn {
            inner,
            touched,
            generation,
        } = *self;
        inner.commit()?;
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
}
