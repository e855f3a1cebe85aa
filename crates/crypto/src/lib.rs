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

/// Appends the lowercase hex of `bytes` to `out`. Ids and digests on the request path use
/// this rather than `hex::encode`, which builds its string a `char` at a time.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Hex-encoded SHA-256 of `data` (ring), e.g. the stored digest of an STS session token
/// (every request signed with temporary credentials computes one).
pub fn sha256_hex(data: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    push_hex(
        &mut out,
        ring::digest::digest(&ring::digest::SHA256, data).as_ref(),
    );
    out
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

    #[test]
    fn sha256_hex_is_the_fips_180_digest_in_lowercase() {
        // FIPS 180-2, appendix B.1 ("abc") and the empty message.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
