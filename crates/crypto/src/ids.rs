//! Random identifiers in AWS's formats: IAM unique ids, access key ids, secret access keys,
//! account ids, Secrets Manager ARN suffixes, UUIDs. Only the string formats live here; which
//! prefix an entity gets is the caller's business.
//!
//! Every character is drawn uniformly from the OS generator (rejection sampling, no modulo
//! bias). The functions are infallible: if the OS generator fails they panic (see
//! [`crate::random_bytes`] for a fallible source); on Linux that cannot happen once
//! `getrandom(2)` exists.

use zeroize::Zeroizing;

use crate::random::{fill, push_from_alphabet};

/// Base32 as in RFC 4648, the alphabet of AWS unique ids and access key ids.
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+";
const DIGITS: &[u8] = b"0123456789";
const NONZERO_DIGITS: &[u8] = b"123456789";

/// An IAM unique id: `prefix` (`AIDA` user, `AROA` role, `ANPA` managed policy, `AGPA` group,
/// `AIPA` instance profile) followed by 17 base32 characters; 21 characters for a 4-character
/// prefix, e.g. `AIDACKCEVSQ6C2EXAMPLE`.
pub fn unique_id(prefix: &str) -> String {
    with_prefix(prefix, BASE32, 17)
}

/// An access key id: `prefix` (`AKIA` long-term, `ASIA` temporary) followed by 16 base32
/// characters; 20 characters for a 4-character prefix, e.g. `AKIAIOSFODNN7EXAMPLE`.
pub fn access_key_id(prefix: &str) -> String {
    with_prefix(prefix, BASE32, 16)
}

/// A secret access key: 40 characters from `[A-Za-z0-9/+]`.
pub fn secret_access_key() -> Zeroizing<String> {
    let mut key = Zeroizing::new(String::with_capacity(40));
    push_from_alphabet(&mut key, SECRET_KEY_CHARS, 40);
    key
}

/// A 12-digit AWS account id whose first digit is not zero.
pub fn account_id() -> String {
    let mut id = String::with_capacity(12);
    push_from_alphabet(&mut id, NONZERO_DIGITS, 1);
    push_from_alphabet(&mut id, DIGITS, 11);
    id
}

/// The 6 random characters `[A-Za-z0-9]` that Secrets Manager appends to a secret's ARN
/// (`arn:aws:secretsmanager:…:secret:MyName-a1B2c3`).
pub fn secret_suffix() -> String {
    let mut suffix = String::with_capacity(6);
    push_from_alphabet(&mut suffix, ALPHANUMERIC, 6);
    suffix
}

/// A random (version 4) UUID in lowercase hyphenated form, e.g. request ids and secret
/// version ids (none of them a secret). Its 16 bytes come from a per-thread pool of bytes of
/// the OS generator, refilled [`UUID_POOL`] bytes at a time: one `getrandom` per 16 UUIDs
/// instead of one each, and no `format!` (every request has a request id and an audit event
/// id).
pub fn uuid_v4() -> String {
    let mut b = uuid_bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    uuid_string(&b)
}

/// The lowercase hyphenated (8-4-4-4-12) form of 16 bytes, e.g. a KMS key id.
pub fn uuid_string(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, part) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            s.push('-');
        }
        crate::push_hex(&mut s, part);
    }
    s
}

/// The bytes of the OS generator a thread keeps for UUIDs.
const UUID_POOL: usize = 256;

thread_local! {
    /// Unused bytes from `used` on.
    static POOL: std::cell::RefCell<([u8; UUID_POOL], usize)> =
        const { std::cell::RefCell::new(([0; UUID_POOL], UUID_POOL)) };
}

fn uuid_bytes() -> [u8; 16] {
    POOL.with_borrow_mut(|(pool, used)| {
        if *used + 16 > UUID_POOL {
            if fill(pool).is_err() {
                panic!("the system random number generator failed");
            }
            *used = 0;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&pool[*used..*used + 16]);
        // Handed out once: not kept where a later caller could see it.
        pool[*used..*used + 16].fill(0);
        *used += 16;
        b
    })
}

fn with_prefix(prefix: &str, alphabet: &[u8], n: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + n);
    id.push_str(prefix);
    push_from_alphabet(&mut id, alphabet, n);
    id
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const SAMPLES: usize = 2000;

    fn all_in(s: &str, alphabet: &[u8]) -> bool {
        s.bytes().all(|b| alphabet.contains(&b))
    }

    #[test]
    fn unique_ids_are_prefix_and_17_base32_characters() {
        for prefix in ["AIDA", "AROA", "ANPA", "AGPA", "AIPA"] {
            for _ in 0..SAMPLES / 5 {
                let id = unique_id(prefix);
                assert_eq!(id.len(), 21, "{id}");
                assert!(id.starts_with(prefix));
                assert!(all_in(&id[4..], BASE32), "{id}");
            }
        }
    }

    #[test]
    fn access_key_ids_are_prefix_and_16_base32_characters() {
        for prefix in ["AKIA", "ASIA"] {
            for _ in 0..SAMPLES / 2 {
                let id = access_key_id(prefix);
                assert_eq!(id.len(), 20, "{id}");
                assert!(id.starts_with(prefix));
                assert!(all_in(&id[4..], BASE32), "{id}");
            }
        }
    }

    #[test]
    fn secret_access_keys_are_40_characters_of_the_base64_alphabet() {
        let mut seen = HashSet::new();
        let mut chars_seen = HashSet::new();
        for _ in 0..SAMPLES {
            let key = secret_access_key();
            assert_eq!(key.len(), 40);
            assert!(all_in(&key, SECRET_KEY_CHARS));
            chars_seen.extend(key.bytes());
            assert!(seen.insert(key.to_string()), "repeated key");
        }
        assert_eq!(chars_seen.len(), 64, "every symbol occurs");
    }

    #[test]
    fn account_ids_are_12_digits_not_starting_with_zero() {
        let mut first_digits = HashSet::new();
        for _ in 0..SAMPLES {
            let id = account_id();
            assert_eq!(id.len(), 12, "{id}");
            assert!(all_in(&id, DIGITS), "{id}");
            assert_ne!(&id[..1], "0", "{id}");
            first_digits.insert(id.as_bytes()[0]);
        }
        assert_eq!(first_digits.len(), 9);
    }

    #[test]
    fn secret_suffixes_are_6_alphanumerics() {
        for _ in 0..SAMPLES {
            let s = secret_suffix();
            assert_eq!(s.len(), 6, "{s}");
            assert!(all_in(&s, ALPHANUMERIC), "{s}");
        }
    }

    #[test]
    fn uuids_are_lowercase_version_4() {
        let mut seen = HashSet::new();
        for _ in 0..SAMPLES {
            let u = uuid_v4();
            assert_eq!(u.len(), 36, "{u}");
            let groups: Vec<&str> = u.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(all_in(&u.replace('-', ""), b"0123456789abcdef"), "{u}");
            assert_eq!(&groups[2][..1], "4", "{u}");
            assert!("89ab".contains(&groups[3][..1]), "{u}");
            assert!(seen.insert(u));
        }
    }

    #[test]
    fn uuids_drawn_on_many_threads_are_distinct() {
        let all: Vec<String> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..500).map(|_| uuid_v4()).collect::<Vec<_>>()))
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        // Bytes are uniform: every hex digit appears in the random positions.
        let digits: HashSet<char> = all.iter().flat_map(|u| u[..8].chars()).collect();
        assert_eq!(digits.len(), 16);
    }
}
