//! SigV4 signing keys: derivation and a bounded cache.
//!
//! This module owns `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service),
//! "aws4_request")` ("Create a signed AWS API request", IAM User Guide) and a cache of derived
//! keys (derivation is four HMACs and the key only changes with secret, date, region and
//! service). It must not look up secrets or decide whether a key is
//! valid, and it must never print, log or expose key bytes: `SigningKey` has no byte accessor
//! outside the crate and is zeroed on drop.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use ring::{hmac, rand};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::parse::SCOPE_TERMINATOR;

/// A derived SigV4 signing key (32 bytes), zeroed when dropped.
///
/// `ring`'s HMAC key schedule made from it while signing is not zeroed by `ring`; it lives only
/// for the duration of one verification.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SigningKey([u8; 32]);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// HMAC-SHA256 of `message` under this key.
    pub(crate) fn sign(&self, message: &[u8]) -> hmac::Tag {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0), message)
    }
}

/// Derives the signing key for one `date/region/service` scope ("Create a signed AWS API
/// request", IAM User Guide, step 4: calculate the signature).
pub fn derive_signing_key(
    secret_access_key: &[u8],
    scope_date: &str,
    region: &str,
    service: &str,
) -> SigningKey {
    let mut secret = Zeroizing::new(Vec::with_capacity(4 + secret_access_key.len()));
    secret.extend_from_slice(b"AWS4");
    secret.extend_from_slice(secret_access_key);
    let mut key = Zeroizing::new([0u8; 32]);
    let step = |key_bytes: &[u8], data: &[u8]| -> Zeroizing<[u8; 32]> {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key_bytes), data);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(tag.as_ref());
        out
    };
    let date_key = step(&secret, scope_date.as_bytes());
    let region_key = step(date_key.as_ref(), region.as_bytes());
    let service_key = step(region_key.as_ref(), service.as_bytes());
    key.copy_from_slice(step(service_key.as_ref(), SCOPE_TERMINATOR.as_bytes()).as_ref());
    SigningKey(*key)
}

/// Capacity of [`SigningKeyCache::default`]: one entry per active access key and
/// (date, region, service); a few hundred callers fit comfortably.
pub const DEFAULT_SIGNING_KEY_CACHE_CAPACITY: usize = 1024;

/// A small thread-safe cache of derived signing keys (derivation is four HMACs, the cache
/// lookup one).
///
/// Entries are keyed by a keyed hash over (access key id, date, region, service, secret): a
/// rotated secret maps to a new entry and never reuses a stale key, and the cache holds no value
/// from which the secret could be checked offline (the hash key is random per process). When
/// full, entries for other dates go first, then an arbitrary one.
pub struct SigningKeyCache {
    capacity: usize,
    fingerprint_key: hmac::Key,
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    scope_date: Box<str>,
    key: Arc<SigningKey>,
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new(DEFAULT_SIGNING_KEY_CACHE_CAPACITY)
    }
}

impl SigningKeyCache {
    /// A cache holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        let rng = rand::SystemRandom::new();
        let mut seed = Zeroizing::new([0u8; 32]);
        if rand::SecureRandom::fill(&rng, seed.as_mut()).is_err() {
            // Without randomness the fingerprint is an unkeyed (still collision-resistant) hash:
            // correctness is unchanged, only the offline-guessing protection is lost.
            seed.zeroize();
        }
        Self {
            capacity: capacity.max(1),
            fingerprint_key: hmac::Key::new(hmac::HMAC_SHA256, seed.as_ref()),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The signing key for this access key, secret and scope, derived on a miss.
    pub fn get_or_derive(
        &self,
        access_key_id: &str,
        secret: &[u8],
        date: &str,
        region: &str,
        service: &str,
    ) -> Arc<SigningKey> {
        let id = self.fingerprint(access_key_id, secret, date, region, service);
        if let Some(entry) = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Arc::clone(&entry.key);
        }
        let key = Arc::new(derive_signing_key(secret, date, region, service));
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&id) {
            entries.retain(|_, entry| *entry.scope_date == *date);
            if entries.len() >= self.capacity
                && let Some(victim) = entries.keys().next().copied()
            {
                entries.remove(&victim);
            }
        }
        let entry = entries.entry(id).or_insert_with(|| Entry {
            scope_date: date.into(),
            key,
        });
        Arc::clone(&entry.key)
    }

    /// Length-prefixed fields so that no two different tuples hash the same input.
    fn fingerprint(
        &self,
        access_key_id: &str,
        secret: &[u8],
        date: &str,
        region: &str,
        service: &str,
    ) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.fingerprint_key);
        for field in [
            access_key_id.as_bytes(),
            date.as_bytes(),
            region.as_bytes(),
            service.as_bytes(),
            secret,
        ] {
            context.update(&(field.len() as u64).to_be_bytes());
            context.update(field);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn derivation_matches_the_aws_documentation_example() {
        // AWS's "Examples of how to derive a signing key" (iam service, us-east-1, 20120215).
        let key = derive_signing_key(SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(
            hex::encode(key.0),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn debug_does_not_show_key_bytes() {
        let key = derive_signing_key(SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }

    #[test]
    fn cache_returns_the_same_key_and_separates_rotated_secrets() {
        let cache = SigningKeyCache::new(8);
        let first = cache.get_or_derive("AKID", SECRET, "20120215", "us-east-1", "iam");
        let again = cache.get_or_derive("AKID", SECRET, "20120215", "us-east-1", "iam");
        assert!(Arc::ptr_eq(&first, &again));
        let rotated =
            cache.get_or_derive("AKID", b"another secret", "20120215", "us-east-1", "iam");
        assert!(!Arc::ptr_eq(&first, &rotated));
        assert_ne!(first.0, rotated.0);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn cache_is_bounded_and_evicts_other_dates_first() {
        let cache = SigningKeyCache::new(3);
        for date in ["20240101", "20240102", "20240103", "20240104", "20240105"] {
            cache.get_or_derive("AKID", SECRET, date, "us-east-1", "ssm");
            assert!(cache.len() <= 3);
        }
        for region in ["a", "b", "c", "d"] {
            cache.get_or_derive("AKID", SECRET, "20240106", region, "ssm");
            assert!(cache.len() <= 3);
        }
        let key = cache.get_or_derive("AKID", SECRET, "20240106", "d", "ssm");
        assert_eq!(key.0, derive_signing_key(SECRET, "20240106", "d", "ssm").0);
    }
}
