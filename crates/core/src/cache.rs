//! Per-access-key caches of the hot path: the resolved credential (secret + caller) and the
//! caller's compiled identity policies. Entries are tagged with the store's identity
//! generation ([`crate::generation`]) and are only used while no identity change has
//! committed since they were filled — so an IAM change takes effect on the very next request.
//! Temporary credentials are re-checked on every use: their token (SHA-256, constant time)
//! and their expiration.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use time::OffsetDateTime;
use tresor_policy::Policy;

use crate::credential::{CredentialError, ResolvedCredential};

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

/// Decoded records by store key, valid for read snapshots of one tagged generation
/// ([`tresor_store::ReadTxn::snapshot_generation`]): parsing a record's JSON is most of the
/// cost of a hot read (a KMS key, a secret), and an entry can only ever be served to a
/// snapshot that sees exactly the data it was decoded from. Holds what the store holds —
/// sealed values, never plaintext.
#[derive(Default)]
pub struct RecordCache {
    map: RwLock<HashMap<String, (u64, AnyRecord)>>,
}

type AnyRecord = Arc<dyn std::any::Any + Send + Sync>;

impl RecordCache {
    /// [`crate::record::get`], through the cache when `txn`'s snapshot is tagged.
    pub fn get<T>(
        &self,
        txn: &dyn tresor_store::ReadTxn,
        key: &str,
    ) -> Result<Option<Arc<T>>, crate::error::ServiceError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let Some(generation) = txn.snapshot_generation() else {
            return Ok(crate::record::get::<T>(txn, key)?.map(Arc::new));
        };
        if let Some((tag, value)) = self.map.read().get(key)
            && *tag == generation
            && let Ok(hit) = value.clone().downcast::<T>()
        {
            return Ok(Some(hit));
        }
        let value = crate::record::get::<T>(txn, key)?.map(Arc::new);
        if let Some(v) = &value {
            let mut map = self.map.write();
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(
                key.to_string(),
                (
                    generation,
                    v.clone() as Arc<dyn std::any::Any + Send + Sync>,
                ),
            );
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
