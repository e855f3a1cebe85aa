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

use ring::hmac;
use subtle::ConstantTimeEq as _;
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

/// A small thread-safe cache of derived signing keys (derivation is four HMACs; a lookup is
/// a hash-map probe and a constant-time comparison of the secret).
///
/// Entries are keyed by their scope (access key id, date, region, service) and hold the
/// secret they were derived from: a lookup with another secret (the key was rotated, or a
/// caller passes a wrong one) derives anew and replaces the entry, so a stale key is never
/// used. The secret is held only in memory, zeroed when the entry goes, like the derived key
/// itself (which, for its scope, is as good as the secret). An earlier version keyed entries
/// by an HMAC over the scope and the secret: measured, that HMAC cost about 10,000
/// instructions a request, a third of the signature check. When full, entries for other
/// dates go first, then an arbitrary one.
pub struct SigningKeyCache {
    capacity: usize,
    entries: RwLock<HashMap<String, Entry>>,
}

struct Entry {
    scope_date: Box<str>,
    secret: Zeroizing<Box<[u8]>>,
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
        Self {
            capacity: capacity.max(1),
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
        let fields = [access_key_id, date, region, service];
        if fields.iter().any(|f| f.contains('/')) {
            // Not a credential scope's parts (they are separated by '/'): no entry could be
            // told apart from another's; derived, not cached.
            return Arc::new(derive_signing_key(secret, date, region, service));
        }
        let id = fields.join("/");
        if let Some(entry) = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            && bool::from(entry.secret[..].ct_eq(secret))
        {
            return Arc::clone(&entry.key);
        }
        let key = Arc::new(derive_signing_key(secret, date, region, service));
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&id) {
            entries.retain(|_, entry| *entry.scope_date == *date);
            if entries.len() >= self.capacity
                && let Some(victim) = entries.keys().next().cloned()
            {
                entries.remove(&victim);
            }
        }
        entries.insert(
            id,
            Entry {
                scope_date: date.into(),
                secret: Zeroizing::new(secret.into()),
                key: Arc::clone(&key),
            },
        );
        key
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
        assert_eq!(
            rotated.0,
            derive_signing_key(b"another secret", "20120215", "us-east-1", "iam").0
        );
        // The rotated secret's key replaced the old one's; the old secret (or a secret that
        // differs in its last byte, or is a prefix) never gets the other's key.
        assert_eq!(cache.len(), 1);
        let old = cache.get_or_derive("AKID", SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(old.0, first.0);
        let mut near = SECRET.to_vec();
        *near.last_mut().unwrap() ^= 1;
        for other in [&near[..], &SECRET[..SECRET.len() - 1]] {
            let key = cache.get_or_derive("AKID", other, "20120215", "us-east-1", "iam");
            assert_eq!(
                key.0,
                derive_signing_key(other, "20120215", "us-east-1", "iam").0
            );
        }
        // Scopes are told apart by each part, and parts that are no scope's are not cached.
        let other_scope = cache.get_or_derive("AKID", SECRET, "20120215", "us-east-1", "sts");
        assert_ne!(other_scope.0, first.0);
        let odd = cache.get_or_derive("AKID/20120215", SECRET, "us-east-1", "x", "iam");
        assert_eq!(odd.0, derive_signing_key(SECRET, "us-east-1", "x", "iam").0);
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
