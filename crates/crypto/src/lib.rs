//! tresor's cryptography: the root key, authenticated encryption (AES-256-GCM with associated
//! data) in one versioned format, zeroizing secret buffers, constant-time comparison and the
//! random identifiers AWS uses.
//!
//! It owns every use of key material and of the random number generator, and the byte formats
//! of sealed data. It must not know AWS shapes (records, ARNs, error codes: the id formats in
//! [`ids`] are only strings) nor do any I/O except reading and creating the root key file.
//! Nothing secret may leave it through `Debug`, `Display` or an error: key bytes and
//! plaintexts are printed as `[redacted]` or not at all.
//!
//! Built on `ring` (the fastest AES-256-GCM measured on the development machine, and its
//! `SystemRandom` is the OS generator).

mod aead;
mod error;
mod fingerprint;
pub mod ids;
mod random;
mod root_key;
mod secret;

pub use aead::{AeadKey, FORMAT_VERSION, KEY_LEN, NONCE_LEN, SEALED_OVERHEAD, TAG_LEN};
pub use error::CryptoError;
pub use fingerprint::fingerprint;
pub use random::random_bytes;
pub use root_key::{ROOT_KEY_FILE, RootKey};
pub use secret::{SecretBytes, SecretString};
pub use zeroize::{Zeroize, Zeroizing};

/// Compares two byte strings in time that depends only on their lengths, not on where they
/// differ. Use it for every comparison against a secret (tokens, signatures, keys). The
/// lengths themselves are not hidden.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimizer from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// Hex-encoded SHA-256 of `data` (ring), e.g. the stored digest of an STS session token.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"\x80bc", b"\x00bc"));
    }
}
