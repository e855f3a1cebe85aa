//! [`MemoryStore`]: the in-memory backend. It is the reference model the SQLite backend is
//! tested against and the store behind unit tests of the services, so its semantics are the
//! contract: snapshot reads, one writer at a time, read-your-writes, rollback on drop.
//!
//! It must stay simple enough to be obviously right; it is not meant for production data
//! (nothing is persisted).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::range::{LowerBound, lower_bound};
use crate::{ReadTxn, Store, StoreError, WriteTxn};

type Map = BTreeMap<String, Vec<u8>>;

/// The committed map and how many commits made it.
#[derive(Default)]
struct Versioned {
    map: Arc<Map>,
    commits: u64,
}

/// How long [`Store::begin_write`] waits for the current writer by default.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An ordered map behind a lock. Readers share an immutable snapshot (`Arc`), and the writer
/// buffers its changes and applies them copy-on-write at commit, so a reader never observes a
/// partial commit and never blocks the writer for longer than the swap. Each transaction
/// commits on its own (no group commit). Snapshots are tagged with the number of commits
/// they include ([`ReadTxn::snapshot_generation`]).
pub struct MemoryStore {
    data: RwLock<Versioned>,
    state: Mutex<WriterState>,
    writer_released: Condvar,
    busy_timeout: Duration,
}

#[derive(Default)]
struct WriterState {
    writer_active: bool,
    closed: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_busy_timeout(DEFAULT_BUSY_TIMEOUT)
    }

    /// A store whose `begin_write` gives up after `busy_timeout` with [`StoreError::Busy`].
    pub fn with_busy_timeout(busy_timeout: Duration) -> Self {
        MemoryStore {
            data: RwLock::new(Versioned::default()),
            state: Mutex::new(WriterState::default()),
            writer_released: Condvar::new(),
            busy_timeout,
        }
    }

    fn release_writer(&self) {
        self.state.lock().writer_active = false;
        self.writer_released.notify_all();
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl Store for MemoryStore {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        if self.state.lock().closed {
            return Err(StoreError::Closed);
        }
        let data = self.data.read();
        Ok(Box::new(MemoryReadTxn {
            snapshot: Arc::clone(&data.map),
            generation: data.commits,
        }))
    }

    fn visible_generation(&self) -> Option<u64> {
        Some(self.data.read().commits)
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        let deadline = Instant::now() + self.busy_timeout;
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return Err(StoreError::Closed);
            }
            if !state.writer_active {
                break;
            }
            if self
                .writer_released
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return Err(StoreError::Busy {
                    timeout_ms: duration_ms(self.busy_timeout),
                });
            }
        }
        state.writer_active = true;
        drop(state);
        Ok(Box::new(MemoryWriteTxn {
            store: self,
            base: Arc::clone(&self.data.read().map),
            pending: BTreeMap::new(),
        }))
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.state.lock().closed = true;
        self.writer_released.notify_all();
        Ok(())
    }
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

struct MemoryReadTxn {
    snapshot: Arc<Map>,
    generation: u64,
}

impl ReadTxn for MemoryReadTxn {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.snapshot.get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(range_from(&self.snapshot, prefix, start_after)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_rev(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // The tighter of `before` and the first key past the prefix.
        let successor = crate::range::prefix_successor(prefix);
        let upper = match (before, successor.as_deref()) {
            (Some(b), Some(p)) => Bound::Excluded(if b < p { b } else { p }),
            (Some(b), None) | (None, Some(b)) => Bound::Excluded(b),
            (None, None) => Bound::Unbounded,
        };
        Ok(self
            .snapshot
            .range::<str, _>((Bound::Included(prefix), upper))
            .rev()
            .filter(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn snapshot_generation(&self) -> Option<u64> {
        Some(self.generation)
    }
}

/// Entries of `map` starting with `prefix` and after `start_after`, ascending.
fn range_from<'m, V>(
    map: &'m BTreeMap<String, V>,
    prefix: &'m str,
    start_after: Option<&'m str>,
) -> impl Iterator<Item = (&'m String, &'m V)> + 'm {
    let lower = match lower_bound(prefix, start_after) {
        LowerBound::Inclusive(k) => Bound::Included(k),
        LowerBound::Exclusive(k) => Bound::Excluded(k),
    };
    map.range::<str, _>((lower, Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

struct MemoryWriteTxn<'a> {
    store: &'a MemoryStore,
    /// The committed state when this transaction began; as the only writer, it is also the
    /// committed state at commit time.
    base: Arc<Map>,
    /// This transaction's changes: `Some` for a put, `None` for a delete.
    pending: BTreeMap<String, Option<Vec<u8>>>,
}

impl ReadTxn for MemoryWriteTxn<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(match self.pending.get(key) {
            Some(change) => change.clone(),
            None => self.base.get(key).cloned(),
        })
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut base = range_from(&self.base, prefix, start_after).peekable();
        let mut pending = range_from(&self.pending, prefix, start_after).peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            // Merge two ascending streams; on equal keys the pending change wins.
            let next = match (base.peek(), pending.peek()) {
                (None, None) => break,
                (Some(_), None) => base.next().map(|(k, v)| (k, Some(v))),
                (None, Some(_)) => pending.next().map(|(k, v)| (k, v.as_ref())),
                (Some((bk, _)), Some((pk, _))) => {
                    if bk < pk {
                        base.next().map(|(k, v)| (k, Some(v)))
                    } else {
                        if bk == pk {
                            base.next();
                        }
                        pending.next().map(|(k, v)| (k, v.as_ref()))
                    }
                }
            };
            if let Some((key, Some(value))) = next {
                out.push((key.clone(), value.clone()));
            }
        }
        Ok(out)
    }
}

impl WriteTxn for MemoryWriteTxn<'_> {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.pending.insert(key.to_owned(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        let existed = self.get(key)?.is_some();
        self.pending.insert(key.to_owned(), None);
        Ok(existed)
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        // Let go of our own reference first, or `make_mut` would always copy.
        drop(std::mem::take(&mut self.base));
        let mut data = self.store.data.write();
        data.commits += 1;
        // Copies the map only if a reader still holds the current snapshot.
        let map = Arc::make_mut(&mut data.map);
        for (key, change) in pending {
            match change {
                Some(value) => {
                    map.insert(key, value);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
        // Dropping `self` releases the writer.
    }
}

impl Drop for MemoryWriteTxn<'_> {
    fn drop(&mut self) {
        self.store.release_writer();
    }
}
