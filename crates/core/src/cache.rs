//! Per-access-key caches of the hot path: the resolved credential (secret + caller) and the
//! caller's compiled identity policies. Entries are tagged with the store's identity
//! generation ([`crate::generation`]) and are only used while no identity change has
//! committed since they were filled — so an IAM change takes effect on the very next request.
//! Temporary credentials are re-checked on every use: their token (SHA-256, constant time)
//! and their expiration.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::OnceLock;

use parking_lot::RwLock;
use time::OffsetDateTime;
use tresor_policy::{Policy, Principal};

use crate::credential::{CredentialError, ResolvedCredential};
use crate::ctx::Caller;
use crate::generation::KeyChanges;
use crate::record::decode;

/// The hasher of the caches looked up with long keys on every request (policy texts, store
/// keys, sealed blobs): foldhash instead of the standard library's SipHash, which costs a few
/// instructions per byte of the key. Its seeds come from the standard library's randomly keyed
/// hasher (operating-system randomness) rather than foldhash's own seed (addresses and the
/// clock), so colliding keys cannot be worked out in advance.
#[derive(Clone)]
pub struct FastHash(foldhash::fast::SeedableRandomState);

impl Default for FastHash {
    fn default() -> Self {
        static SHARED: OnceLock<foldhash::SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(random_u64()));
        FastHash(foldhash::fast::SeedableRandomState::with_seed(
            random_u64(),
            shared,
        ))
    }
}

impl BuildHasher for FastHash {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A random number from the standard library's `RandomState` (keyed from the operating
/// system's randomness, a fresh key per call).
fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Bound on entries; on overflow the map is cleared (refilled from the store on demand).
const MAX_ENTRIES: usize = 8192;

struct Tagged<T> {
    generation: u64,
    value: T,
}

/// An access key's resolved credential.
#[derive(Default)]
pub struct CredentialCache {
    map: RwLock<HashMap<String, Tagged<ResolvedCredential>>>,
}

impl CredentialCache {
    /// A cached credential still valid for `token` at `now`; `Err` when the cache proves the
    /// request must be refused (wrong token, expired), `Ok(None)` on a miss.
    pub fn get(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        generation: u64,
        now: OffsetDateTime,
    ) -> Result<Option<ResolvedCredential>, CredentialError> {
        let map = self.map.read();
        let Some(entry) = map
            .get(access_key_id)
            .filter(|e| e.generation == generation)
        else {
            return Ok(None);
        };
        let cred = &entry.value;
        match (&cred.session, session_token) {
            (None, None) => Ok(Some(cred.clone())),
            (None, Some(_)) | (Some(_), None) => Err(CredentialError::Invalid),
            (Some(session), Some(token)) => {
                let digest = tresor_crypto::sha256_hex(token.as_bytes());
                if !tresor_crypto::constant_time_eq(
                    digest.as_bytes(),
                    session.token_sha256.as_bytes(),
                ) {
                    return Err(CredentialError::Invalid);
                }
                if now >= session.expiration {
                    return Err(CredentialError::Expired);
                }
                Ok(Some(cred.clone()))
            }
        }
    }

    pub fn insert(&self, access_key_id: &str, generation: u64, cred: &ResolvedCredential) {
        let mut map = self.map.write();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            access_key_id.to_string(),
            Tagged {
                generation,
                value: cred.clone(),
            },
        );
    }
}

/// A caller's identity policies in compiled form, with the principal tags.
pub struct CompiledIdentity {
    pub identity: Vec<(String, Arc<Policy>)>,
    pub boundary: Option<Arc<Policy>>,
    pub session: Vec<Arc<Policy>>,
    pub principal_tags: Vec<(String, String)>,
    /// The caller the entry was filled for and the policy engine's view of it (with
    /// `principal_tags`), built once instead of per authorization. It is a function of the
    /// caller and the tags alone, so it is used only for a request by an identical caller.
    pub principal: (std::sync::Arc<Caller>, Principal),
}

impl CompiledIdentity {
    /// Whether an identity, boundary or session policy of the entry reads the clock
    /// ([`Policy::reads_clock`]).
    pub fn reads_clock(&self) -> bool {
        self.identity
            .iter()
            .map(|(_, p)| p)
            .chain(&self.boundary)
            .chain(&self.session)
            .any(|p| p.reads_clock())
    }
}

#[derive(Default)]
pub struct IdentityCache {
    map: RwLock<HashMap<String, Tagged<Arc<CompiledIdentity>>>>,
}

impl IdentityCache {
    pub fn get(&self, access_key_id: &str, generation: u64) -> Option<Arc<CompiledIdentity>> {
        self.map
            .read()
            .get(access_key_id)
            .filter(|e| e.generation == generation)
            .map(|e| e.value.clone())
    }

    pub fn insert(&self, access_key_id: &str, generation: u64, value: Arc<CompiledIdentity>) {
        let mut map = self.map.write();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(access_key_id.to_string(), Tagged { generation, value });
    }
}

/// Decoded records by store key, tagged with the read snapshot they were decoded under
/// ([`tresor_store::ReadTxn::snapshot_generation`]): parsing a record's JSON is most of the
/// cost of a hot read (a KMS key, a secret), and an entry can only ever be served to a
/// snapshot that sees exactly the data it was decoded from — one of the same tag, or, where
/// the store wrapper notes which keys each commit wrote ([`KeyChanges`]), one between which
/// and the entry's tag no commit wrote its key. Holds what the store holds — sealed values,
/// never plaintext.
///
/// A transaction without a tag (a write transaction, which may see uncommitted changes of its
/// own or of its commit group) is served an entry only when the bytes it reads under the key
/// have the fingerprint of the bytes the entry was decoded from (a 128-bit keyed universal
/// hash, [`tresor_crypto::fingerprint`]): decoding is a pure function of the bytes, so the
/// entry is what decoding them again would give.
#[derive(Default)]
pub struct RecordCache {
    map: RwLock<HashMap<String, CachedRecord, FastHash>>,
    changes: Option<Arc<KeyChanges>>,
}

struct CachedRecord {
    /// The snapshot tag it was decoded under; `None` when a transaction without a tag read
    /// it (then only its fingerprint can match).
    tag: Option<u64>,
    /// The fingerprint of the stored bytes it was decoded from ([`tresor_crypto::fingerprint`]).
    fingerprint: Option<[u8; 16]>,
    value: AnyRecord,
}

type AnyRecord = Arc<dyn std::any::Any + Send + Sync>;

impl RecordCache {
    /// A cache whose entries outlive commits that did not write their key (see
    /// [`KeyChanges`]); with `None`, every commit makes every entry stale.
    pub fn new(changes: Option<Arc<KeyChanges>>) -> Self {
        RecordCache {
            map: RwLock::default(),
            changes,
        }
    }

    /// [`crate::record::get`], through the cache when `txn`'s snapshot is tagged.
    pub fn get<T>(
        &self,
        txn: &dyn tresor_store::ReadTxn,
        key: &str,
    ) -> Result<Option<Arc<T>>, crate::error::ServiceError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        // The exact tag, or (with per-key validity only) the tag of the state this
        // transaction agrees with on every key not being committed right now.
        let (generation, exact) = match (txn.snapshot_generation(), &self.changes) {
            (Some(generation), _) => (generation, true),
            (None, Some(_)) => match txn.snapshot_floor() {
                Some(floor) => (floor, false),
                None => return self.get_by_fingerprint(txn, key),
            },
            (None, None) => return self.get_by_fingerprint(txn, key),
        };
        if let Some(entry) = self.map.read().get(key)
            && let Some(tag) = entry.tag
            && ((exact && tag == generation)
                || self
                    .changes
                    .as_ref()
                    .is_some_and(|c| c.unchanged_between(key, tag, generation)))
            && let Ok(hit) = entry.value.clone().downcast::<T>()
        {
            return Ok(Some(hit));
        }
        let Some(bytes) = txn.get(key)? else {
            return Ok(None);
        };
        let value = Arc::new(decode::<T>(key, &bytes)?);
        // Cache what was read under an exact tag. A lazily opened snapshot may show a later
        // state than the tag it began with (see `ReadTxn::snapshot_generation`): its tag is
        // then that state's, or none when the old one was already handed out.
        if let Some(tag) = txn.snapshot_generation()
            && (!exact || tag == generation)
        {
            self.keep(
                key,
                CachedRecord {
                    tag: Some(tag),
                    fingerprint: tresor_crypto::fingerprint(&bytes),
                    value: value.clone() as AnyRecord,
                },
            );
        }
        Ok(Some(value))
    }

    /// For a transaction without a tag: the entry when the bytes read have its fingerprint, else
    /// the bytes decoded — and kept, untagged, in place of the entry that did not match (a
    /// record only write transactions read, such as the KMS key of a write load, is then
    /// decoded once per change too; a snapshot that finds an untagged entry decodes and tags
    /// its own).
    fn get_by_fingerprint<T>(
        &self,
        txn: &dyn tresor_store::ReadTxn,
        key: &str,
    ) -> Result<Option<Arc<T>>, crate::error::ServiceError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let Some(bytes) = txn.get(key)? else {
            return Ok(None);
        };
        let fingerprint = tresor_crypto::fingerprint(&bytes);
        if let Some(entry) = self.map.read().get(key)
            && fingerprint.is_some()
            && entry.fingerprint == fingerprint
            && let Ok(hit) = entry.value.clone().downcast::<T>()
        {
            return Ok(Some(hit));
        }
        let value = Arc::new(decode::<T>(key, &bytes)?);
        if fingerprint.is_some() {
            self.keep(
                key,
                CachedRecord {
                    tag: None,
                    fingerprint,
                    value: value.clone() as AnyRecord,
                },
            );
        }
        Ok(Some(value))
    }

    /// Stores an entry, emptying the map first when it is full (cheap to refill).
    fn keep(&self, key: &str, entry: CachedRecord) {
        let mut map = self.map.write();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key.to_string(), entry);
    }
}

/// Plaintext data keys of recently read envelope-sealed values (Secrets Manager versions,
/// SecureString parameters), so that a repeated read skips the KMS unwrap (root-key unseal of
/// the key material, then AES-GCM open of the data key blob). Only ever consulted *after* the
/// request was authenticated, authorized (identity, resource and key policies) and the KMS key
/// found usable in the current key record: the cache saves cryptography, never a decision.
///
/// An entry is found by the exact blob and encryption context that opened it, and carries the
/// KMS key's ARN and a stamp of its state and material: a lookup under another stamp (the key
/// was disabled, scheduled for deletion, re-keyed, or the record is another deployment's)
/// drops every entry of that key. Bounded ([`DATA_KEY_ENTRIES`]) and aged out after
/// [`DATA_KEY_MAX_AGE`]; plaintexts are zeroized when dropped.
pub struct DataKeyCache {
    map: parking_lot::Mutex<HashMap<Vec<u8>, DataKeyEntry, FastHash>>,
    swept: parking_lot::Mutex<std::time::Instant>,
}

/// How often an insert also drops the entries past their age.
const DATA_KEY_SWEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// The most data keys held at once; on overflow the cache is emptied (and zeroized).
pub const DATA_KEY_ENTRIES: usize = 4096;
/// How long an unwrapped data key is kept at most.
pub const DATA_KEY_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

struct DataKeyEntry {
    owner: String,
    stamp: String,
    plaintext: tresor_crypto::Zeroizing<Vec<u8>>,
    at: std::time::Instant,
}

impl Default for DataKeyCache {
    fn default() -> Self {
        DataKeyCache {
            map: parking_lot::Mutex::new(HashMap::default()),
            swept: parking_lot::Mutex::new(std::time::Instant::now()),
        }
    }
}

impl DataKeyCache {
    /// The cache key of a blob opened with an encryption context.
    pub fn lookup_key(
        blob: &[u8],
        context: &std::collections::BTreeMap<String, String>,
    ) -> Vec<u8> {
        let context_len: usize = context.iter().map(|(n, v)| 16 + n.len() + v.len()).sum();
        let mut k = Vec::with_capacity(8 + blob.len() + context_len);
        k.extend_from_slice(&(blob.len() as u64).to_le_bytes());
        k.extend_from_slice(blob);
        for (name, value) in context {
            k.extend_from_slice(&(name.len() as u64).to_le_bytes());
            k.extend_from_slice(name.as_bytes());
            k.extend_from_slice(&(value.len() as u64).to_le_bytes());
            k.extend_from_slice(value.as_bytes());
        }
        k
    }

    /// The plaintext cached under `key` for `owner` in state `stamp`.
    pub fn get(
        &self,
        key: &[u8],
        owner: &str,
        stamp: &str,
    ) -> Option<tresor_crypto::Zeroizing<Vec<u8>>> {
        let mut map = self.map.lock();
        let entry = map.get(key)?;
        if entry.owner == owner && entry.stamp == stamp && entry.at.elapsed() < DATA_KEY_MAX_AGE {
            return Some(entry.plaintext.clone());
        }
        if entry.owner == owner && entry.stamp != stamp {
            // The key's state or material changed: forget everything unwrapped under it.
            map.retain(|_, e| e.owner != owner);
        } else {
            map.remove(key);
        }
        None
    }

    pub fn insert(&self, key: Vec<u8>, owner: &str, stamp: &str, plaintext: &[u8]) {
        let mut map = self.map.lock();
        let mut swept = self.swept.lock();
        if map.len() >= DATA_KEY_ENTRIES || swept.elapsed() >= DATA_KEY_SWEEP {
            // Entries past their age are zeroized within about DATA_KEY_MAX_AGE + SWEEP while
            // reads continue (and are never served anyway).
            map.retain(|_, e| e.at.elapsed() < DATA_KEY_MAX_AGE);
            *swept = std::time::Instant::now();
            if map.len() >= DATA_KEY_ENTRIES {
                map.clear();
            }
        }
        drop(swept);
        map.insert(
            key,
            DataKeyEntry {
                owner: owner.to_string(),
                stamp: stamp.to_string(),
                plaintext: tresor_crypto::Zeroizing::new(plaintext.to_vec()),
                at: std::time::Instant::now(),
            },
        );
    }

    /// Drops (and zeroizes) every data key of `owner`.
    pub fn forget(&self, owner: &str) {
        self.map.lock().retain(|_, e| e.owner != owner);
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_hash_is_seeded_per_map() {
        let (a, b) = (FastHash::default(), FastHash::default());
        let key = "acct/111122223333/region/us-east-1/secretsmanager/secret/x";
        assert_eq!(a.hash_one(key), a.hash_one(key));
        assert_ne!(a.hash_one(key), b.hash_one(key));
    }
    use crate::generation::GenerationStore;
    use tresor_store::{MemoryStore, Store};

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Rec {
        v: u32,
    }

    #[test]
    fn a_cached_record_is_served_only_to_snapshots_of_its_generation() {
        let store = GenerationStore::new(Arc::new(MemoryStore::new()));
        let cache = RecordCache::default();
        let mut w = store.begin_write().unwrap();
        crate::record::put(&mut *w, "k", &Rec { v: 1 }).unwrap();
        w.commit().unwrap();
        let r = store.begin_read().unwrap();
        assert_eq!(cache.get::<Rec>(&*r, "k").unwrap().map(|r| r.v), Some(1));
        drop(r);
        let mut w = store.begin_write().unwrap();
        crate::record::put(&mut *w, "k", &Rec { v: 2 }).unwrap();
        // Inside the write transaction: never cached, sees its own write.
        assert_eq!(cache.get::<Rec>(&*w, "k").unwrap().map(|r| r.v), Some(2));
        w.commit().unwrap();
        let r = store.begin_read().unwrap();
        assert_eq!(
            cache.get::<Rec>(&*r, "k").unwrap().map(|r| r.v),
            Some(2),
            "a commit invalidates"
        );
        assert_eq!(cache.get::<Rec>(&*r, "absent").unwrap(), None);
    }

    /// A write transaction has no tag: it is served the entry a snapshot decoded only while
    /// the bytes under the key are the ones the entry came from (by fingerprint) — not after its
    /// own write, and not for another record type.
    #[test]
    fn a_write_transaction_is_served_an_entry_only_for_the_same_bytes() {
        #[derive(serde::Deserialize)]
        struct Other {
            v: u32,
        }
        let store = GenerationStore::new(Arc::new(MemoryStore::new()));
        let cache = RecordCache::default();
        let mut w = store.begin_write().unwrap();
        crate::record::put(&mut *w, "k", &Rec { v: 1 }).unwrap();
        w.commit().unwrap();
        let r = store.begin_read().unwrap();
        let seen = cache.get::<Rec>(&*r, "k").unwrap().unwrap();
        drop(r);

        let mut w = store.begin_write().unwrap();
        let hit = cache.get::<Rec>(&*w, "k").unwrap().unwrap();
        assert!(Arc::ptr_eq(&seen, &hit), "same bytes: the decoded entry");
        assert_eq!(cache.get::<Other>(&*w, "k").unwrap().map(|o| o.v), Some(1));
        crate::record::put(&mut *w, "k", &Rec { v: 2 }).unwrap();
        let changed = cache.get::<Rec>(&*w, "k").unwrap().unwrap();
        assert_eq!(changed.v, 2, "its own write");
        assert!(!Arc::ptr_eq(&seen, &changed));
        assert_eq!(cache.get::<Rec>(&*w, "absent").unwrap(), None);
        w.commit().unwrap();

        // Another writer's change between the snapshot and the write transaction.
        let r = store.begin_read().unwrap();
        let seen = cache.get::<Rec>(&*r, "k").unwrap().unwrap();
        drop(r);
        let mut w = store.begin_write().unwrap();
        crate::record::put(&mut *w, "k", &Rec { v: 3 }).unwrap();
        w.commit().unwrap();
        let w = store.begin_write().unwrap();
        let now = cache.get::<Rec>(&*w, "k").unwrap().unwrap();
        assert_eq!((seen.v, now.v), (2, 3));
        drop(w);

        // A key only write transactions read is kept, untagged: the next write transaction
        // with the same bytes gets it; a snapshot never does (it decodes and tags its own).
        let mut w = store.begin_write().unwrap();
        crate::record::put(&mut *w, "only", &Rec { v: 9 }).unwrap();
        w.commit().unwrap();
        let w = store.begin_write().unwrap();
        let first = cache.get::<Rec>(&*w, "only").unwrap().unwrap();
        drop(w);
        let w = store.begin_write().unwrap();
        let second = cache.get::<Rec>(&*w, "only").unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        drop(w);
        let r = store.begin_read().unwrap();
        let snap = cache.get::<Rec>(&*r, "only").unwrap().unwrap();
        assert_eq!(snap.v, 9);
        assert!(
            !Arc::ptr_eq(&first, &snap),
            "an untagged entry is not a snapshot's"
        );
        assert!(cache.map.read().get("only").unwrap().tag.is_some());
    }

    fn keyed(store: Arc<dyn Store>) -> (GenerationStore, RecordCache) {
        let store = GenerationStore::new(store);
        let cache = RecordCache::new(store.key_changes());
        (store, cache)
    }

    fn put(store: &GenerationStore, key: &str, v: u32) {
        let mut w = store.begin_write().unwrap();
        crate::record::put(&mut *w, key, &Rec { v }).unwrap();
        w.commit().unwrap();
    }

    /// Reads `key` through the cache and, in the same snapshot, straight from the store.
    fn both(store: &GenerationStore, cache: &RecordCache, key: &str) -> (Option<u32>, Option<u32>) {
        let r = store.begin_read().unwrap();
        let cached = cache.get::<Rec>(&*r, key).unwrap().map(|r| r.v);
        let direct = crate::record::get::<Rec>(&*r, key).unwrap().map(|r| r.v);
        (cached, direct)
    }

    #[test]
    fn an_entry_outlives_commits_of_other_keys_and_only_those() {
        let (store, cache) = keyed(Arc::new(MemoryStore::new()));
        assert!(store.key_changes().is_some());
        put(&store, "a", 1);
        put(&store, "b", 1);
        assert_eq!(both(&store, &cache, "a"), (Some(1), Some(1)));
        // Fill the entry, then make the store's tag move with commits of other keys.
        put(&store, "b", 2);
        put(&store, "c", 1);
        let r = store.begin_read().unwrap();
        let tag = r.snapshot_generation().unwrap();
        // Served from the entry tagged before those commits: proven by a store that no longer
        // holds what the entry holds would be a lie, so check the entry's tag is older instead.
        let entry_tag = cache.map.read().get("a").and_then(|e| e.tag).unwrap();
        assert!(entry_tag < tag);
        assert_eq!(cache.get::<Rec>(&*r, "a").unwrap().map(|r| r.v), Some(1));
        assert_eq!(
            cache.map.read().get("a").and_then(|e| e.tag),
            Some(entry_tag),
            "a hit, not a refill"
        );
        drop(r);
        // A commit of the entry's own key makes it stale at once.
        put(&store, "a", 2);
        assert_eq!(both(&store, &cache, "a"), (Some(2), Some(2)));
        // An older snapshot is never served the newer entry.
        let old = store.begin_read().unwrap();
        put(&store, "a", 3);
        assert_eq!(both(&store, &cache, "a"), (Some(3), Some(3)));
        assert_eq!(cache.get::<Rec>(&*old, "a").unwrap().map(|r| r.v), Some(2));
        // A rolled-back write changes nothing.
        let mut w = store.begin_write().unwrap();
        crate::record::put(&mut *w, "a", &Rec { v: 9 }).unwrap();
        drop(w);
        assert_eq!(both(&store, &cache, "a"), (Some(3), Some(3)));
        // A deletion is a change.
        let mut w = store.begin_write().unwrap();
        w.delete("a").unwrap();
        w.commit().unwrap();
        assert_eq!(both(&store, &cache, "a"), (None, None));
    }

    /// A transaction begun while a commit ran has no exact tag, only a floor: an entry is
    /// served to it when no commit wrote its key since the floor — never while its key is
    /// being committed, and never without per-key validity.
    #[test]
    fn a_transaction_with_only_a_floor_is_served_keys_that_no_commit_under_way_writes() {
        struct FloorOnly<'a>(Box<dyn tresor_store::ReadTxn + 'a>);
        impl tresor_store::ReadTxn for FloorOnly<'_> {
            fn get(&self, key: &str) -> Result<Option<Vec<u8>>, tresor_store::StoreError> {
                self.0.get(key)
            }
            fn scan(
                &self,
                prefix: &str,
                start_after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<(String, Vec<u8>)>, tresor_store::StoreError> {
                self.0.scan(prefix, start_after, limit)
            }
            fn snapshot_floor(&self) -> Option<u64> {
                self.0.snapshot_generation()
            }
        }
        let (store, cache) = keyed(Arc::new(MemoryStore::new()));
        put(&store, "a", 1);
        put(&store, "b", 1);
        assert_eq!(both(&store, &cache, "a"), (Some(1), Some(1)));
        assert_eq!(both(&store, &cache, "b"), (Some(1), Some(1)));
        let r = FloorOnly(store.begin_read().unwrap());
        // Entries are recognisable by a value the store never held.
        if let Some(e) = cache.map.write().get_mut("a") {
            e.value = Arc::new(Rec { v: 55 });
        }
        assert_eq!(
            cache.get::<Rec>(&r, "a").unwrap().map(|r| r.v),
            Some(55),
            "served from the cache"
        );
        // "b" is being committed: not served, read from the snapshot instead.
        let changes = store.key_changes().unwrap();
        changes.begin(&["b".to_string()]);
        if let Some(e) = cache.map.write().get_mut("b") {
            e.value = Arc::new(Rec { v: 77 });
        }
        assert_eq!(cache.get::<Rec>(&r, "b").unwrap().map(|r| r.v), Some(1));
        changes.end(&["b".to_string()], store.visible_generation().unwrap() + 2);
        assert_eq!(
            cache.get::<Rec>(&r, "b").unwrap().map(|r| r.v),
            Some(1),
            "changed after the floor: not served"
        );
        // Without per-key validity, a floor is never used.
        let plain = RecordCache::default();
        let w = FloorOnly(store.begin_read().unwrap());
        assert_eq!(plain.get::<Rec>(&w, "a").unwrap().map(|r| r.v), Some(1));
        assert!(
            plain.map.read().values().all(|e| e.tag.is_none()),
            "nothing cached under a tag without an exact tag"
        );
    }

    #[test]
    fn a_shared_store_keeps_exact_tags() {
        // No per-key validity on a backend that does not count its own commits.
        struct Shared(MemoryStore, Arc<std::sync::atomic::AtomicU64>);
        impl Store for Shared {
            fn begin_read(
                &self,
            ) -> Result<Box<dyn tresor_store::ReadTxn + '_>, tresor_store::StoreError> {
                self.0.begin_read()
            }
            fn begin_write(
                &self,
            ) -> Result<Box<dyn tresor_store::WriteTxn + '_>, tresor_store::StoreError>
            {
                self.0.begin_write()
            }
            fn describe(&self) -> String {
                "shared".into()
            }
            fn close(&self) -> Result<(), tresor_store::StoreError> {
                Ok(())
            }
            fn shared_generation(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
                Some(self.1.clone())
            }
            fn visible_generation(&self) -> Option<u64> {
                self.0.visible_generation()
            }
        }
        let store = GenerationStore::new(Arc::new(Shared(MemoryStore::new(), Arc::default())));
        assert!(store.key_changes().is_none());
    }

    /// Writers commit (grouped, on SQLite) changes of a few keys while readers read them
    /// through the cache: every cached answer equals the store's answer in the same snapshot.
    #[test]
    fn under_concurrent_commits_the_cache_never_answers_other_than_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = tresor_store::SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let (store, cache) = keyed(Arc::new(sqlite));
        const KEYS: u32 = 6;
        for k in 0..KEYS {
            put(&store, &format!("k{k}"), 0);
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        let hits = std::sync::atomic::AtomicU64::new(0);
        let checks = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    let mut i = 0u32;
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        let key = format!("k{}", i % KEYS);
                        i += 1;
                        let r = store.begin_read().unwrap();
                        let before = cache.map.read().get(&key).and_then(|e| e.tag);
                        let cached = cache.get::<Rec>(&*r, &key).unwrap().map(|r| r.v);
                        let after = cache.map.read().get(&key).and_then(|e| e.tag);
                        let direct = crate::record::get::<Rec>(&*r, &key).unwrap().map(|r| r.v);
                        assert_eq!(cached, direct, "{key}: cache and snapshot differ");
                        checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if r.snapshot_generation().is_some()
                            && before.is_some()
                            && before == after
                            && before != r.snapshot_generation()
                        {
                            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
            let writers: Vec<_> = (0..6u32)
                .map(|w| {
                    let store = &store;
                    s.spawn(move || {
                        for i in 1..=60u32 {
                            // Writers 0..3 write the read keys; the others write keys of their own.
                            let key = if w < 3 {
                                format!("k{}", (w + i) % KEYS)
                            } else {
                                format!("other{w}")
                            };
                            let mut t = store.begin_write().unwrap();
                            crate::record::put(&mut *t, &key, &Rec { v: i }).unwrap();
                            if i % 7 == 0 {
                                drop(t);
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
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(checks.load(std::sync::atomic::Ordering::SeqCst) > 100);
        assert!(
            hits.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "no entry was ever served across a commit"
        );
    }

    #[test]
    fn a_data_key_is_served_only_for_its_blob_context_owner_and_stamp() {
        let cache = DataKeyCache::default();
        let ctx = |v: &str| std::collections::BTreeMap::from([("a".to_string(), v.to_string())]);
        let k1 = DataKeyCache::lookup_key(b"blob", &ctx("1"));
        assert_ne!(
            k1,
            DataKeyCache::lookup_key(b"blob", &ctx("2")),
            "the context is part of the key"
        );
        assert_ne!(
            DataKeyCache::lookup_key(b"blo", &ctx("bx")),
            DataKeyCache::lookup_key(b"blob", &ctx("x")),
            "lengths delimit the parts"
        );
        cache.insert(k1.clone(), "key-a", "Enabled/m1", b"secret");
        let k2 = DataKeyCache::lookup_key(b"other", &ctx("1"));
        cache.insert(k2.clone(), "key-a", "Enabled/m1", b"secret2");
        assert_eq!(
            cache
                .get(&k1, "key-a", "Enabled/m1")
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"secret"[..])
        );
        assert!(
            cache.get(&k1, "key-b", "Enabled/m1").is_none(),
            "another key's blob"
        );
        assert_eq!(cache.len(), 1, "the mismatching entry is dropped");
        assert!(
            cache.get(&k2, "key-a", "Disabled/m1").is_none(),
            "a state change"
        );
        assert!(
            cache.is_empty(),
            "a state change drops every entry of the key"
        );
        cache.insert(k1.clone(), "key-a", "Enabled/m1", b"secret");
        cache.forget("key-a");
        assert!(cache.get(&k1, "key-a", "Enabled/m1").is_none());
    }
}
